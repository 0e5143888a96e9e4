//! UDP transport for carrier scale: one socket per worker thread, batched system calls.
//!
//! # Spread
//!
//! Every listen address gets `workers` sockets bound to the same address with `SO_REUSEPORT`
//! (or, with [`UdpSpread::Shared`], one socket the workers share), and one blocking OS thread
//! per socket (not tokio: a thread that only receives, handles and sends needs no scheduler).
//! Which worker gets a datagram is [`UdpConfig::spread`]:
//!
//! - [`UdpSpread::Shared`] (the default, with a batch of 1): one socket, whichever worker is
//!   waiting takes the next datagram. One queue served by every worker (as Kamailio's
//!   children share their socket): every worker is busy however few peers send, and no
//!   datagram waits behind one worker's backlog while another idles, which is what keeps the
//!   transit tail short (figures in the `sip.udp_spread` entry of `fraudwall config default`).
//! - [`UdpSpread::Random`]: a classic BPF program attached to the reuseport group
//!   (`SO_ATTACH_REUSEPORT_CBPF`, `ld rand; mod #workers; ret a`) picks a socket at random for
//!   every datagram, so the work is spread evenly however few peers send it (a carrier node
//!   receives from two to four SBCs; spread by flow hash, the kernel's default, those few
//!   flows would keep as many workers busy and leave the rest idle). Each socket is its own
//!   queue: a datagram can wait behind its worker's backlog while another worker idles.
//! - [`UdpSpread::Cpu`]: the socket of the CPU that received the datagram (`ld cpu`), for
//!   NICs that spread flows over CPUs themselves (RSS/RPS with many peers).
//! - [`UdpSpread::Flow`]: the kernel's 4-tuple hash: one peer, one worker.
//!
//! With a shared socket or a random spread the messages of one transaction (an INVITE, its retransmissions,
//! its CANCEL and ACK) and of one dialog land on different workers and may be relayed in
//! another order than they came (a 180 after its 200, as with any multi-process proxy).
//! That is safe because the core keeps no per-call state: every message is judged and
//! routed on its own bytes, and SIP endpoints already cope with reordering over UDP.
//! `fraudwall_udp_worker_messages_total{worker}` shows the spread.
//!
//! # Batches
//!
//! On Linux a thread receives up to `batch` datagrams per `recvmmsg` call (blocking for the
//! first, `MSG_WAITFORONE`), hands each to the [`Handler`], and sends everything the batch
//! produced with one `sendmmsg` call; elsewhere it falls back to `recv_from`/`send_to`.
//!
//! # Queue delay
//!
//! With [`UdpConfig::queue_delay`] every socket has `SO_TIMESTAMPNS`: the kernel stamps each
//! datagram when it receives it, and the worker hands the core how long the datagram waited
//! ([`Inbound::queued`]: the wall clock at handling minus the stamp), which is what the
//! core's overload policy judges (see `[overload]`). A wall clock stepped back reads as no
//! wait; one stepped forward as a long one for the datagrams already queued.
//!
//! # Scheduling
//!
//! By default the workers are normal threads that ask the kernel for a short time slice
//! ([`UdpConfig::slice`], `sched_setattr` with `sched_runtime` on Linux 6.12 and later:
//! EEVDF then lets a waking worker preempt a task with a longer slice instead of waiting for
//! it to finish its slice, which is what adds milliseconds at p99 on a busy box). With
//! [`UdpConfig::realtime_priority`] they run under `SCHED_FIFO` and take each datagram at
//! once: shorter transit still, more CPU per call (figures in the
//! `sip.udp_realtime_priority` entry of `fraudwall config default`).
//!
//! Memory: each thread owns `batch` receive buffers of `max_message + 1` bytes, allocated once
//! and reused; the only per-datagram allocation is the [`bytes::Bytes`] copy handed to the
//! core. Outbound messages are sent straight from their `Bytes` (no copy).
//!
//! Datagrams longer than `max_message` are dropped and reported to
//! [`Handler::dropped`] ([`DropReason::TooLarge`]). A failed send is classified
//! ([`super::SendFault`]): this node's refusals (`EMSGSIZE`, `ENOBUFS`, `EACCES`,
//! ...) go to [`Handler::local_send_error`] and blame nobody; the destination's go to
//! [`Handler::on_send_error`], which marks a next hop there down. The rest of the batch
//! still goes out.
//!
//! Dead hops: on Linux every socket has `IP_RECVERR` (`IPV6_RECVERR`) on, so an ICMP port or
//! host unreachable for a datagram we sent is queued with the datagram's destination (see
//! `errqueue`). The kernel then fails the socket's next receive or send with a bare
//! `ECONNREFUSED`; the worker reads the error queue at that moment (never otherwise, and
//! never blocking), reports each destination named there, and retries a send that failed only
//! because of the pending error. A hop whose port is closed is thus marked down by the first
//! datagram it refuses, well under a second even under load.
//! Outbound messages a worker cannot send on its own socket (another transport, the other
//! address family) go through the [`Dispatch`]; the UDP transport's own [`Route`] there
//! ([`UdpBound::start`] installs it) sends single datagrams for the timer and the other
//! transports.
//!
//! Addresses a peer can reach: on a socket bound to an unspecified address (`0.0.0.0`,
//! `[::]`), `IP_PKTINFO` (`IPV6_RECVPKTINFO`) is on, every datagram's destination address
//! is read from its control message and handed to the core as [`Inbound::local`] (so Via
//! and Record-Route name the address the peer wrote to), and a message with an
//! [`Outbound::source`] is sent from that address (an `IP_PKTINFO` / `IPV6_PKTINFO`
//! control message on `sendmmsg`), so the peer's answer comes from where it sent. A socket
//! bound to one address builds no control message at all.
//!
//! The runtime's timer (not this transport) calls [`Handler::poll_timeout`]. Workers wake at
//! least every 100 ms (receive timeout) to notice [`UdpTransport::shutdown`].

use bytes::Bytes;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{
    report_send_error, Dispatch, DropReason, Handler, Inbound, Outbound, Route, Transport,
};

/// How often workers look at the stop flag while idle.
const WAKE: Duration = Duration::from_millis(100);

/// UDP transport settings.
#[derive(Debug, Clone)]
pub struct UdpConfig {
    /// Addresses to listen on (port 0 picks a free port, shared by that address's workers).
    pub listen: Vec<SocketAddr>,
    /// Worker threads (sockets) per address, at least 1.
    pub workers: usize,
    /// Datagrams per recvmmsg/sendmmsg call, 1 to 256.
    pub batch: usize,
    /// Largest datagram accepted.
    pub max_message: usize,
    /// How datagrams are spread over the workers (module docs).
    pub spread: UdpSpread,
    /// Read the kernel's receive timestamps and hand the core each datagram's queue delay
    /// ([`Inbound::queued`]; module docs). `false`: `queued` is `None`.
    pub queue_delay: bool,
    /// The scheduler time slice the workers ask for (Linux 6.12+, `sched_setattr`;
    /// module docs). `None`: the kernel's default. Ignored under `realtime_priority`.
    pub slice: Option<Duration>,
    /// Run the workers under `SCHED_FIFO` at this priority (1 to 99), so they run as soon as
    /// a datagram arrives (lower transit, more CPU per call: smaller batches). `None`: the
    /// normal scheduler. If it cannot be set (no `CAP_SYS_NICE`), a warning is logged and the
    /// workers run at normal priority.
    pub realtime_priority: Option<u8>,
}

/// How a listen address's datagrams are spread over its workers (`sip.udp_spread`; see
/// the module docs).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum UdpSpread {
    /// A random socket of the reuseport group per datagram (classic BPF).
    Random,
    /// The socket of the CPU that received the datagram (classic BPF).
    Cpu,
    /// The kernel's flow hash (source and destination address and port).
    Flow,
    /// One socket shared by the workers (the default).
    #[default]
    Shared,
}

impl UdpSpread {
    /// The config name: `random`, `cpu`, `flow`, `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            UdpSpread::Random => "random",
            UdpSpread::Cpu => "cpu",
            UdpSpread::Flow => "flow",
            UdpSpread::Shared => "shared",
        }
    }
}

impl std::str::FromStr for UdpSpread {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "random" => Ok(UdpSpread::Random),
            "cpu" => Ok(UdpSpread::Cpu),
            "flow" => Ok(UdpSpread::Flow),
            "shared" => Ok(UdpSpread::Shared),
            other => Err(format!(
                "{other:?} is not a spread: use \"random\", \"cpu\", \"flow\" or \"shared\""
            )),
        }
    }
}

/// Attaches the classic BPF program that picks a socket of `sock`'s reuseport group of
/// `n` sockets for every datagram: `ld rand` or `ld cpu`, `mod #n`, `ret a`. Nothing for the
/// kernel's own spreads.
#[cfg(target_os = "linux")]
fn attach_spread(sock: &impl std::os::fd::AsRawFd, spread: UdpSpread, n: usize) -> io::Result<()> {
    let ancillary = match spread {
        UdpSpread::Random => libc::SKF_AD_RANDOM,
        UdpSpread::Cpu => libc::SKF_AD_CPU,
        UdpSpread::Flow | UdpSpread::Shared => return Ok(()),
    };
    let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let op = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let mut prog = [
        op(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            (libc::SKF_AD_OFF + ancillary) as u32,
        ),
        op(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, n),
        op(libc::BPF_RET | libc::BPF_A, 0),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: a valid fd and a sock_fprog pointing at a live program of `len` instructions;
    // the kernel copies it.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the scheduler for a time slice of `slice` for the calling thread (normal policy,
/// nice unchanged; `sched_setattr` with `sched_runtime`, honoured by Linux 6.12 and later,
/// clamped by the kernel to 0.1 to 100 ms; older kernels ignore it).
pub fn set_time_slice(slice: Duration) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: pid 0 is the calling thread; getpriority has no memory effects.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let attr = libc::sched_attr {
            size: std::mem::size_of::<libc::sched_attr>() as u32,
            sched_policy: libc::SCHED_OTHER as u32,
            sched_flags: 0,
            sched_nice: nice,
            sched_priority: 0,
            sched_runtime: u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX),
            sched_deadline: 0,
            sched_period: 0,
        };
        // SAFETY: pid 0 is the calling thread; `attr` is a valid sched_attr of `size` bytes.
        let r = unsafe {
            libc::syscall(
                libc::SYS_sched_setattr,
                0,
                &attr as *const libc::sched_attr,
                0,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = slice;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "scheduler slices are only supported on Linux",
        ))
    }
}

/// Puts the calling thread under `SCHED_FIFO` at `priority` (1 to 99).
///
/// Fails with `PermissionDenied` without root or `CAP_SYS_NICE`, `InvalidInput` for a priority
/// out of range, `Unsupported` off Linux.
pub fn set_realtime_priority(priority: u8) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param {
            sched_priority: i32::from(priority),
        };
        // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for the call.
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = priority;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "real-time scheduling is only supported on Linux",
        ))
    }
}

/// One listening socket a [`UdpSender`] sends from, and whether it is bound to an
/// unspecified address (then a message's source is set per datagram).
#[derive(Debug, Clone)]
struct SendSocket {
    sock: Arc<UdpSocket>,
    wildcard: bool,
}

/// Sends single UDP datagrams from the listening sockets (one per address family), for the
/// runtime's timer and the other transports (through the UDP [`Route`]).
#[derive(Debug, Clone)]
pub struct UdpSender {
    v4: Option<SendSocket>,
    v6: Option<SendSocket>,
}

/// Sends one datagram on `s`, from the message's source on a wildcard socket (Linux).
fn send_on(s: &SendSocket, msg: &Outbound) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        mmsg::send_one(&s.sock, msg, s.wildcard)
    }
    #[cfg(not(target_os = "linux"))]
    {
        s.sock.send_to(&msg.data, msg.destination)
    }
}

impl UdpSender {
    /// Sends one datagram; `Err` if no socket of the destination's family exists or the send fails.
    pub fn send(&self, msg: &Outbound) -> io::Result<()> {
        send_on(self.socket_for(msg)?, msg).map(|_| ())
    }

    fn socket_for(&self, msg: &Outbound) -> io::Result<&SendSocket> {
        let sock = if msg.destination.is_ipv4() {
            &self.v4
        } else {
            &self.v6
        };
        sock.as_ref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "no UDP listener of the destination's address family",
            )
        })
    }

    /// Sends one datagram and tells `h` how it went: [`Handler::sent`], or the failure
    /// classified as in the module docs (a pending ICMP error is traced to its destination
    /// through the error queue, and the send retried once).
    pub fn send_reporting<H: Handler + ?Sized>(&self, h: &H, msg: &Outbound, now: Instant) {
        let sock = match self.socket_for(msg) {
            Ok(s) => s,
            Err(e) => return report_send_error(h, msg.destination, Transport::Udp, &e, now),
        };
        for attempt in 0..2 {
            match send_on(sock, msg) {
                Ok(_) => return h.sent(msg),
                Err(e) => {
                    if !send_failed(h, &sock.sock, msg.destination, &e, now) || attempt == 1 {
                        return;
                    }
                }
            }
        }
    }
}

/// The UDP transport's [`Route`] in the [`Dispatch`]: single datagrams.
struct UdpRoute<H: Handler> {
    sender: UdpSender,
    handler: Arc<H>,
}

impl<H: Handler> Route for UdpRoute<H> {
    fn send(&self, msg: Outbound, now: Instant) {
        self.sender.send_reporting(&*self.handler, &msg, now);
    }
}

/// A send to `destination` on `sock` failed with `e`: reports it, and returns whether to
/// retry (the error was an earlier datagram's ICMP error, now read off the error queue and
/// reported against the destination it names).
fn send_failed<H: Handler + ?Sized>(
    h: &H,
    sock: &UdpSocket,
    destination: SocketAddr,
    e: &io::Error,
    now: Instant,
) -> bool {
    #[cfg(target_os = "linux")]
    if errqueue::is_destination_error(e) {
        let queued = errqueue::drain(sock, |u| {
            h.on_send_error(u.destination, Transport::Udp, now)
        });
        if queued > 0 {
            return true;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = sock;
    // Not a queued error: this send's own (no route to it, too big, no buffer).
    report_send_error(h, destination, Transport::Udp, e, now);
    false
}

/// A receive on `sock` failed with `e`: when it is a pending ICMP error, reads the error
/// queue and reports each destination it names. Returns whether it was one.
fn recv_failed<H: Handler + ?Sized>(h: &H, sock: &UdpSocket, e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    if errqueue::is_destination_error(e) {
        let now = Instant::now();
        errqueue::drain(sock, |u| {
            h.on_send_error(u.destination, Transport::Udp, now)
        });
        return true;
    }
    let _ = (h, sock, e);
    false
}

/// Bound sockets, not yet serving (binding first lets the caller learn ports picked for 0).
#[derive(Debug)]
pub struct UdpBound {
    sockets: Vec<(SocketAddr, Vec<UdpSocket>)>,
    config: UdpConfig,
}

/// The running UDP transport.
#[derive(Debug)]
pub struct UdpTransport {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    local: Vec<SocketAddr>,
    sender: UdpSender,
}

fn bind_one(addr: SocketAddr, queue_delay: bool) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_port(true)?;
    // On an unspecified address, learn each datagram's local address (module docs).
    #[cfg(target_os = "linux")]
    if addr.ip().is_unspecified() {
        mmsg::enable_pktinfo(&s, addr.is_ipv6())?;
    }
    // Dead next hops are detected from ICMP errors through the error queue (module docs).
    #[cfg(target_os = "linux")]
    errqueue::enable(&s, addr.is_ipv6())?;
    // Each datagram's queue delay, for the overload policy (module docs).
    #[cfg(target_os = "linux")]
    if queue_delay {
        mmsg::enable_timestamps(&s)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = queue_delay;
    // Best effort: bigger buffers absorb bursts; the kernel caps them at rmem_max/wmem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_read_timeout(Some(WAKE))?;
    s.bind(&SockAddr::from(addr))?;
    Ok(s)
}

impl UdpBound {
    /// Binds `workers` sockets on every address.
    pub fn bind(config: UdpConfig) -> io::Result<UdpBound> {
        let workers = config.workers.max(1);
        let mut sockets = Vec::new();
        for &addr in &config.listen {
            let first = bind_one(addr, config.queue_delay)?;
            let actual = first.local_addr()?.as_socket().unwrap_or(addr);
            let mut group = vec![UdpSocket::from(first)];
            for _ in 1..workers {
                let next = if config.spread == UdpSpread::Shared {
                    group[0].try_clone()?
                } else {
                    UdpSocket::from(bind_one(actual, config.queue_delay)?)
                };
                group.push(next);
            }
            // The group is complete: the program indexes its sockets in bind order.
            #[cfg(target_os = "linux")]
            if workers > 1 {
                attach_spread(&group[0], config.spread, workers)?;
            }
            sockets.push((actual, group));
        }
        Ok(UdpBound { sockets, config })
    }

    /// The bound addresses (ports resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(a, _)| *a).collect()
    }

    /// A sender over these sockets (usable before [`UdpBound::start`]).
    pub fn sender(&self) -> io::Result<UdpSender> {
        let mut sender = UdpSender { v4: None, v6: None };
        for (addr, group) in &self.sockets {
            let slot = if addr.is_ipv4() {
                &mut sender.v4
            } else {
                &mut sender.v6
            };
            if slot.is_none() {
                if let Some(s) = group.first() {
                    *slot = Some(SendSocket {
                        sock: Arc::new(s.try_clone()?),
                        wildcard: addr.ip().is_unspecified(),
                    });
                }
            }
        }
        Ok(sender)
    }

    /// Installs the UDP route in `dispatch` and starts the worker threads; what they cannot
    /// send on their own socket goes through `dispatch`.
    pub fn start<H: Handler>(
        self,
        handler: Arc<H>,
        dispatch: Arc<Dispatch>,
    ) -> io::Result<UdpTransport> {
        let stop = Arc::new(AtomicBool::new(false));
        let sender = self.sender()?;
        dispatch.install(
            Transport::Udp,
            Arc::new(UdpRoute {
                sender: sender.clone(),
                handler: handler.clone(),
            }),
        );
        let local = self.local_addrs();
        let mut threads = Vec::new();
        for (addr, group) in self.sockets {
            for (i, sock) in group.into_iter().enumerate() {
                let mut w = Worker {
                    index: i,
                    sock,
                    local: addr,
                    wildcard: addr.ip().is_unspecified(),
                    handler: handler.clone(),
                    dispatch: dispatch.clone(),
                    stop: stop.clone(),
                    max_message: self.config.max_message,
                    out: Vec::with_capacity(self.config.batch * 2),
                };
                let batch = self.config.batch.clamp(1, 256);
                let realtime = self.config.realtime_priority;
                let slice = self.config.slice;
                let queue_delay = self.config.queue_delay;
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("sip-udp-{i}"))
                        .spawn(move || {
                            if let (None, Some(s)) = (realtime, slice) {
                                if let Err(e) = set_time_slice(s) {
                                    tracing::debug!(
                                        "UDP worker {i} on {addr}: scheduler slice {s:?} not \
                                         set ({e}); the kernel's default applies"
                                    );
                                }
                            }
                            if let Some(p) = realtime {
                                match set_realtime_priority(p) {
                                    Ok(()) => tracing::info!(
                                        "UDP worker {i} on {addr}: SCHED_FIFO priority {p}"
                                    ),
                                    Err(e) => tracing::warn!(
                                        "UDP worker {i} on {addr}: cannot set real-time \
                                         priority {p} ({e}); running at normal priority \
                                         (sip.udp_realtime_priority needs root or CAP_SYS_NICE)"
                                    ),
                                }
                            }
                            w.run(batch, queue_delay)
                        })?,
                );
            }
        }
        Ok(UdpTransport {
            stop,
            threads,
            local,
            sender,
        })
    }
}

impl UdpTransport {
    /// The bound addresses.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// A sender over the listening sockets.
    pub fn sender(&self) -> UdpSender {
        self.sender.clone()
    }

    /// Stops every thread and waits for them (at most about 100 ms).
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for UdpTransport {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Worker<H: Handler> {
    /// The worker's number on its listen address (the metrics' `worker` label).
    index: usize,
    sock: UdpSocket,
    local: SocketAddr,
    /// Bound to an unspecified address: datagrams carry their local address (module docs).
    wildcard: bool,
    handler: Arc<H>,
    dispatch: Arc<Dispatch>,
    stop: Arc<AtomicBool>,
    max_message: usize,
    out: Vec<Outbound>,
}

impl<H: Handler> Worker<H> {
    /// Handles one received datagram sent to `local_ip` (`None`: the socket's own address);
    /// outbound messages accumulate in `self.out`.
    fn on_datagram(
        &mut self,
        data: &[u8],
        source: SocketAddr,
        local_ip: Option<IpAddr>,
        queued: Option<Duration>,
        now: Instant,
    ) {
        if data.len() > self.max_message {
            self.handler
                .dropped(source, Transport::Udp, DropReason::TooLarge);
            return;
        }
        if data.is_empty() || data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            // RFC 5626 keep-alives (CRLF) and empty datagrams: nothing to handle.
            return;
        }
        let msg = Inbound {
            data: Bytes::copy_from_slice(data),
            source,
            local: match local_ip {
                Some(ip) => SocketAddr::new(ip, self.local.port()),
                None => self.local,
            },
            transport: Transport::Udp,
            verified_peer: false,
            queued,
        };
        self.handler.handle(msg, now, &mut self.out);
    }

    /// Moves messages this socket cannot send (another transport, the other address family)
    /// to the dispatch, keeping the rest in `self.out`.
    fn route_foreign(&mut self, now: Instant) {
        let family_v4 = self.local.is_ipv4();
        if self
            .out
            .iter()
            .all(|m| m.transport == Transport::Udp && m.destination.is_ipv4() == family_v4)
        {
            return;
        }
        let mut keep = Vec::with_capacity(self.out.len());
        for msg in self.out.drain(..) {
            if msg.transport == Transport::Udp && msg.destination.is_ipv4() == family_v4 {
                keep.push(msg);
            } else {
                self.dispatch.send(msg, now);
            }
        }
        self.out = keep;
    }

    #[cfg(not(target_os = "linux"))]
    fn run(&mut self, _batch: usize, _queue_delay: bool) {
        let mut buf = vec![0u8; self.max_message + 1];
        while !self.stop.load(Ordering::Relaxed) {
            match self.sock.recv_from(&mut buf) {
                Ok((n, source)) => {
                    let now = Instant::now();
                    let data = &buf[..n];
                    self.handler.udp_batch(self.index, 1);
                    self.on_datagram(data, source, None, None, now);
                    self.route_foreign(now);
                    for msg in std::mem::take(&mut self.out) {
                        match self.sock.send_to(&msg.data, msg.destination) {
                            Ok(_) => self.handler.sent(&msg),
                            Err(e) => {
                                send_failed(&*self.handler, &self.sock, msg.destination, &e, now);
                            }
                        }
                    }
                }
                Err(e) if is_transient(&e) => {}
                Err(e) if recv_failed(&*self.handler, &self.sock, &e) => {}
                Err(e) => {
                    tracing::warn!("UDP receive on {}: {e}", self.local);
                    std::thread::sleep(WAKE);
                }
            }
        }
    }

    #[cfg(target_os = "linux")]
    fn run(&mut self, batch: usize, queue_delay: bool) {
        let mut rx = mmsg::RecvBatch::new(batch, self.max_message + 1, self.wildcard, queue_delay);
        let mut tx = mmsg::SendBatch::new(batch * 2);
        while !self.stop.load(Ordering::Relaxed) {
            let n = match rx.recv(&self.sock) {
                Ok(n) => n,
                Err(e) if is_transient(&e) => continue,
                Err(e) if recv_failed(&*self.handler, &self.sock, &e) => continue,
                Err(e) => {
                    tracing::warn!("UDP receive on {}: {e}", self.local);
                    std::thread::sleep(WAKE);
                    continue;
                }
            };
            let now = Instant::now();
            self.handler.udp_batch(self.index, n);
            for i in 0..n {
                let (data, source, truncated) = rx.get(i);
                match source {
                    Some(source) if truncated => {
                        self.handler
                            .dropped(source, Transport::Udp, DropReason::TooLarge)
                    }
                    Some(source) => {
                        let local_ip = rx.destination(i);
                        // Read per datagram: the later ones of a batch also waited for
                        // the earlier ones to be handled.
                        let queued = rx
                            .received_at(i)
                            .map(|t| mmsg::elapsed_since(&t, &mmsg::realtime_now()));
                        self.on_datagram(data, source, local_ip, queued, now)
                    }
                    None => {}
                }
            }
            self.route_foreign(now);
            if !self.out.is_empty() {
                let out = std::mem::take(&mut self.out);
                let (h, sock) = (&*self.handler, &self.sock);
                tx.send_all(
                    sock,
                    &out,
                    self.wildcard,
                    |msg| h.sent(msg),
                    |msg, e| send_failed(h, sock, msg.destination, e, now),
                );
                self.out = out;
                self.out.clear();
            }
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(target_os = "linux")]
mod errqueue;
#[cfg(target_os = "linux")]
mod mmsg;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::LocalSendError;
    use std::sync::Mutex;

    /// Echoes every message back to its source, prefixed with "re:"; "fwd:" messages go to a
    /// fixed address instead; records send errors and drops.
    struct Echo {
        forward_to: SocketAddr,
        errors: Mutex<Vec<SocketAddr>>,
        local_errors: Mutex<Vec<(SocketAddr, LocalSendError)>>,
        drops: Mutex<Vec<&'static str>>,
        ticks: Mutex<u32>,
        locals: Mutex<Vec<SocketAddr>>,
        /// Datagrams per worker.
        workers: Mutex<[usize; 2]>,
        /// (payload, queue delay) of every message.
        queued: Mutex<Vec<(Vec<u8>, Option<Duration>)>>,
    }

    impl Handler for Echo {
        fn handle(&self, msg: Inbound, _now: Instant, out: &mut Vec<Outbound>) {
            self.locals.lock().unwrap().push(msg.local);
            self.queued
                .lock()
                .unwrap()
                .push((msg.data.to_vec(), msg.queued));
            if msg.data.starts_with(b"sleep") {
                // A worker that falls behind: what queues meanwhile waits.
                std::thread::sleep(Duration::from_millis(150));
            }
            let destination = if msg.data.starts_with(b"fwd:") {
                self.forward_to
            } else {
                msg.source
            };
            let mut d = b"re:".to_vec();
            d.extend_from_slice(&msg.data);
            out.push(Outbound {
                data: d.into(),
                destination,
                transport: Transport::Udp,
                source: Some(msg.local.ip()),
            });
        }
        fn udp_batch(&self, worker: usize, messages: usize) {
            self.workers.lock().unwrap()[worker] += messages;
        }
        fn poll_timeout(&self, _now: Instant, _out: &mut Vec<Outbound>) {
            if let Ok(mut t) = self.ticks.lock() {
                *t += 1;
            }
        }
        fn on_send_error(&self, destination: SocketAddr, _t: Transport, _now: Instant) {
            self.errors.lock().unwrap().push(destination);
        }
        fn local_send_error(&self, destination: SocketAddr, _t: Transport, why: LocalSendError) {
            self.local_errors.lock().unwrap().push((destination, why));
        }
        fn dropped(&self, _s: SocketAddr, _t: Transport, reason: DropReason) {
            self.drops.lock().unwrap().push(reason.as_str());
        }
    }

    fn start(listen: &str, forward_to: SocketAddr) -> (UdpTransport, Arc<Echo>) {
        start_with(listen, forward_to, None)
    }

    fn start_with(
        listen: &str,
        forward_to: SocketAddr,
        realtime_priority: Option<u8>,
    ) -> (UdpTransport, Arc<Echo>) {
        let spread = if listen.starts_with('[') {
            UdpSpread::Shared
        } else {
            UdpSpread::Random
        };
        start_spread(listen, forward_to, realtime_priority, spread)
    }

    fn start_spread(
        listen: &str,
        forward_to: SocketAddr,
        realtime_priority: Option<u8>,
        spread: UdpSpread,
    ) -> (UdpTransport, Arc<Echo>) {
        let bound = UdpBound::bind(UdpConfig {
            listen: vec![listen.parse().unwrap()],
            workers: 2,
            batch: 8,
            max_message: 1000,
            spread,
            queue_delay: true,
            slice: Some(Duration::from_micros(100)),
            realtime_priority,
        })
        .unwrap();
        let h = Arc::new(Echo {
            forward_to,
            errors: Mutex::default(),
            local_errors: Mutex::default(),
            drops: Mutex::default(),
            ticks: Mutex::default(),
            locals: Mutex::default(),
            workers: Mutex::default(),
            queued: Mutex::default(),
        });
        let dispatch = Dispatch::new(h.clone());
        (bound.start(h.clone(), dispatch).unwrap(), h)
    }

    fn client(addr: &str) -> UdpSocket {
        let c = UdpSocket::bind(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c
    }

    #[test]
    fn echoes_batches_and_forwards_v4_v6() {
        for (listen, cl) in [("127.0.0.1:0", "127.0.0.1:0"), ("[::1]:0", "[::1]:0")] {
            let sink = client(cl);
            let (t, _h) = start(listen, sink.local_addr().unwrap());
            let server = t.local_addrs()[0];
            let c = client(cl);
            for i in 0..50 {
                c.send_to(format!("m{i}").as_bytes(), server).unwrap();
            }
            let mut got = std::collections::HashSet::new();
            let mut buf = [0u8; 2000];
            for _ in 0..50 {
                let (n, from) = c.recv_from(&mut buf).unwrap();
                assert_eq!(from, server);
                got.insert(String::from_utf8_lossy(&buf[..n]).to_string());
            }
            assert_eq!(got.len(), 50);
            assert!(got.contains("re:m0") && got.contains("re:m49"));
            c.send_to(b"fwd:x", server).unwrap();
            let (n, _) = sink.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"re:fwd:x");
            t.shutdown();
        }
    }

    /// Sends `n` datagrams from one socket (one peer, one flow) and waits until the workers
    /// have counted them all; returns the count per worker.
    fn spread_of(spread: UdpSpread, n: usize) -> [usize; 2] {
        let sink = client("127.0.0.1:0");
        let (t, h) = start_spread("127.0.0.1:0", sink.local_addr().unwrap(), None, spread);
        let server = t.local_addrs()[0];
        let c = client("127.0.0.1:0");
        let mut buf = [0u8; 100];
        // In rounds the echo can keep up with, so no datagram is lost to a full buffer.
        for round in 0..n / 50 {
            for i in 0..50 {
                c.send_to(format!("s{round}-{i}").as_bytes(), server)
                    .unwrap();
            }
            for _ in 0..50 {
                c.recv_from(&mut buf).unwrap();
            }
        }
        let counts = *h.workers.lock().unwrap();
        t.shutdown();
        counts
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn one_peer_is_spread_over_both_workers() {
        // Random: each worker carries about half; 40 % is six standard
        // deviations below the mean of 1,000 fair coin flips.
        let [a, b] = spread_of(UdpSpread::Random, 1000);
        assert_eq!(a + b, 1000);
        assert!(a >= 400 && b >= 400, "random spread {a}/{b}");
        // The kernel's flow hash keeps one peer on one worker: the program above is what
        // spreads it.
        let [a, b] = spread_of(UdpSpread::Flow, 200);
        assert_eq!(a + b, 200);
        assert!(a == 0 || b == 0, "flow spread {a}/{b}");
        // A shared socket serves both from one queue (no balance promised, all delivered).
        let [a, b] = spread_of(UdpSpread::Shared, 200);
        assert_eq!(a + b, 200);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn datagrams_carry_how_long_they_waited() {
        // Flow spread: every datagram of this peer queues behind the worker that sleeps.
        let sink = client("127.0.0.1:0");
        let (t, h) = start_spread(
            "127.0.0.1:0",
            sink.local_addr().unwrap(),
            None,
            UdpSpread::Flow,
        );
        let server = t.local_addrs()[0];
        let c = client("127.0.0.1:0");
        let mut buf = [0u8; 100];
        c.send_to(b"first", server).unwrap();
        c.recv_from(&mut buf).unwrap();
        c.send_to(b"sleep", server).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        c.send_to(b"behind", server).unwrap();
        for _ in 0..2 {
            c.recv_from(&mut buf).unwrap();
        }
        let q = h.queued.lock().unwrap().clone();
        t.shutdown();
        let of = |name: &[u8]| q.iter().find(|(d, _)| d == name).and_then(|(_, q)| *q);
        let first = of(b"first").expect("a queue delay");
        assert!(first < Duration::from_millis(100), "{first:?}");
        // Sent 20 ms into a 150 ms sleep: it waited at least about 130 ms.
        let behind = of(b"behind").expect("a queue delay");
        assert!(behind >= Duration::from_millis(100), "{behind:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_wildcard_socket_reports_and_answers_from_the_arrival_address() {
        let (t, h) = start("0.0.0.0:0", "127.0.0.1:9".parse().unwrap());
        let port = t.local_addrs()[0].port();
        let c = client("127.0.0.1:0");
        let mut buf = [0u8; 2000];
        for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.1"] {
            let arrival: SocketAddr = format!("{ip}:{port}").parse().unwrap();
            for i in 0..5 {
                c.send_to(format!("w{i}").as_bytes(), arrival).unwrap();
                let (n, from) = c.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], format!("re:w{i}").as_bytes());
                assert_eq!(from, arrival, "answered from the address it was sent to");
            }
            assert_eq!(
                h.locals.lock().unwrap().last(),
                Some(&arrival),
                "Inbound.local"
            );
        }
        // A single datagram through the route (the timer's and other transports' path)
        // is sent from its source too.
        let sender = t.sender();
        let arrival: SocketAddr = format!("127.0.0.4:{port}").parse().unwrap();
        let msg = Outbound {
            data: Bytes::from_static(b"single"),
            destination: c.local_addr().unwrap(),
            transport: Transport::Udp,
            source: Some(arrival.ip()),
        };
        sender.send_reporting(&*h, &msg, Instant::now());
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"single"[..], arrival));
        t.shutdown();
        // IPv6: `[::]` learns `::1` (IPV6_RECVPKTINFO) and answers from it.
        let (t6, h6) = start("[::]:0", "[::1]:9".parse().unwrap());
        let arrival: SocketAddr = format!("[::1]:{}", t6.local_addrs()[0].port())
            .parse()
            .unwrap();
        let c6 = client("[::1]:0");
        c6.send_to(b"v6", arrival).unwrap();
        let (n, from) = c6.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"re:v6"[..], arrival));
        assert_eq!(*h6.locals.lock().unwrap(), vec![arrival], "Inbound.local");
        t6.shutdown();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn realtime_priority_is_set_or_refused_cleanly() {
        // Root (CI) may set it, a plain user may not: either way the answer is exact.
        let (policy, result) = std::thread::spawn(|| {
            let result = set_realtime_priority(1);
            // SAFETY: pid 0 is the calling thread.
            (unsafe { libc::sched_getscheduler(0) }, result)
        })
        .join()
        .unwrap();
        match result {
            Ok(()) => assert_eq!(policy, libc::SCHED_FIFO),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
                assert_eq!(policy, libc::SCHED_OTHER);
            }
        }
        let out_of_range = std::thread::spawn(|| set_realtime_priority(100))
            .join()
            .unwrap();
        assert!(out_of_range.is_err());
    }

    #[test]
    fn realtime_workers_relay() {
        let sink = client("127.0.0.1:0");
        let (t, _h) = start_with("127.0.0.1:0", sink.local_addr().unwrap(), Some(1));
        let server = t.local_addrs()[0];
        let c = client("127.0.0.1:0");
        let mut buf = [0u8; 2000];
        for i in 0..20 {
            c.send_to(format!("rt{i}").as_bytes(), server).unwrap();
            let (n, _) = c.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], format!("re:rt{i}").as_bytes());
        }
        t.shutdown();
    }

    #[test]
    fn oversize_dropped_and_local_send_errors_blame_nobody() {
        // 255.255.255.255 without SO_BROADCAST: the send fails with EACCES, our refusal.
        let (t, h) = start("127.0.0.1:0", "255.255.255.255:9".parse().unwrap());
        let server = t.local_addrs()[0];
        let c = client("127.0.0.1:0");
        c.send_to(&[b'x'; 1500], server).unwrap();
        c.send_to(b"fwd:y", server).unwrap();
        c.send_to(b"ok", server).unwrap();
        let mut buf = [0u8; 2000];
        let (n, _) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"re:ok");
        let deadline = Instant::now() + Duration::from_secs(3);
        while (h.local_errors.lock().unwrap().is_empty() || h.drops.lock().unwrap().is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(*h.drops.lock().unwrap(), vec!["too_large"]);
        assert_eq!(
            *h.local_errors.lock().unwrap(),
            vec![(
                "255.255.255.255:9".parse::<SocketAddr>().unwrap(),
                LocalSendError::Other
            )]
        );
        assert!(h.errors.lock().unwrap().is_empty());
        // The transport runs no timer of its own (the runtime's does).
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(*h.ticks.lock().unwrap(), 0);
        t.shutdown();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_closed_destination_port_is_reported_from_the_error_queue() {
        for ip in ["127.0.0.1:0", "[::1]:0"] {
            let gone = UdpSocket::bind(ip).unwrap();
            let dead = gone.local_addr().unwrap();
            drop(gone);
            let (t, h) = start(ip, dead);
            let server = t.local_addrs()[0];
            let c = client(ip);
            // Each "fwd:" datagram is relayed to the closed port; the ICMP port unreachable
            // comes back asynchronously and must be traced to `dead`, and the echo after it
            // still served.
            // The kernel's global ICMP budget (net.ipv4.icmp_msgs_per_sec, burst 50) is shared
            // with every other test sending to closed loopback ports at the same time, so the
            // error may take a few seconds to come under a parallel test run.
            let mut buf = [0u8; 100];
            let deadline = Instant::now() + Duration::from_secs(15);
            while h.errors.lock().unwrap().is_empty() && Instant::now() < deadline {
                c.send_to(b"fwd:z", server).unwrap();
                c.send_to(b"ping", server).unwrap();
                let (n, _) = c.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], b"re:ping");
                std::thread::sleep(Duration::from_millis(20));
            }
            let errors = h.errors.lock().unwrap().clone();
            assert!(!errors.is_empty(), "{ip}: no ICMP error reported");
            assert!(errors.iter().all(|&e| e == dead), "{errors:?}");
            assert!(h.local_errors.lock().unwrap().is_empty());
            t.shutdown();
        }
    }
}
