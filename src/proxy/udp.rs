//! UDP transport for carrier scale: one socket per worker thread, batched system calls.
//!
//! Every listen address gets `workers` sockets bound to the same address with `SO_REUSEPORT`,
//! so the kernel spreads datagrams over them by flow hash (or, with `reuseport: false`, one
//! socket shared by the workers, see [`UdpConfig::reuseport`]), and one blocking OS thread per
//! socket (not tokio: a thread that only receives, handles and sends needs no scheduler). On
//! Linux a thread receives up to `batch` datagrams per `recvmmsg` call (blocking for the
//! first, `MSG_WAITFORONE`), hands each to the [`Handler`], and sends everything the batch
//! produced with one `sendmmsg` call; elsewhere it falls back to `recv_from`/`send_to`.
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
//! Scheduling: by default the workers are normal threads, so a datagram may wait for a CPU
//! while other tasks run (which also makes batches bigger and the CPU per message smaller).
//! With [`UdpConfig::realtime_priority`] they run under `SCHED_FIFO` and take each datagram
//! at once: several times shorter transit, more CPU per call (figures in the
//! `sip.udp_realtime_priority` entry of `fraudwall config default`).
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
    /// `true`: one socket per worker (`SO_REUSEPORT`, the kernel spreads datagrams by flow
    /// hash). `false`: the workers share one socket and take whichever datagram comes next,
    /// which balances better when few peers (a handful of SBCs and switches) send everything.
    pub reuseport: bool,
    /// Run the workers under `SCHED_FIFO` at this priority (1 to 99), so they run as soon as
    /// a datagram arrives (lower transit, more CPU per call: smaller batches). `None`: the
    /// normal scheduler. If it cannot be set (no `CAP_SYS_NICE`), a warning is logged and the
    /// workers run at normal priority.
    pub realtime_priority: Option<u8>,
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

fn bind_one(addr: SocketAddr) -> io::Result<Socket> {
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
            let first = bind_one(addr)?;
            let actual = first.local_addr()?.as_socket().unwrap_or(addr);
            let mut group = vec![UdpSocket::from(first)];
            for _ in 1..workers {
                let next = if config.reuseport {
                    UdpSocket::from(bind_one(actual)?)
                } else {
                    group[0].try_clone()?
                };
                group.push(next);
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
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("sip-udp-{i}"))
                        .spawn(move || {
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
                            w.run(batch)
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
    fn run(&mut self, _batch: usize) {
        let mut buf = vec![0u8; self.max_message + 1];
        while !self.stop.load(Ordering::Relaxed) {
            match self.sock.recv_from(&mut buf) {
                Ok((n, source)) => {
                    let now = Instant::now();
                    let data = &buf[..n];
                    self.on_datagram(data, source, None, now);
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
    fn run(&mut self, batch: usize) {
        let mut rx = mmsg::RecvBatch::new(batch, self.max_message + 1, self.wildcard);
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
            for i in 0..n {
                let (data, source, truncated) = rx.get(i);
                match source {
                    Some(source) if truncated => {
                        self.handler
                            .dropped(source, Transport::Udp, DropReason::TooLarge)
                    }
                    Some(source) => {
                        let local_ip = rx.destination(i);
                        self.on_datagram(data, source, local_ip, now)
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
    }

    impl Handler for Echo {
        fn handle(&self, msg: Inbound, _now: Instant, out: &mut Vec<Outbound>) {
            self.locals.lock().unwrap().push(msg.local);
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
        let bound = UdpBound::bind(UdpConfig {
            listen: vec![listen.parse().unwrap()],
            workers: 2,
            batch: 8,
            max_message: 1000,
            reuseport: !listen.starts_with('['),
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
