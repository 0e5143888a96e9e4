//! The transport floor on io_uring: the same relay as `examples/udp_floor.rs`, without tokio.
//!
//! This is a measuring tool for the proxy issue's CPU target, not a proxy. It answers one
//! question: how much of the per-call cost of `udp_floor` (fraudwall's tokio UDP transport with
//! a relay that does almost no SIP work) is the transport's way of waiting for datagrams, and
//! how much an io_uring transport would save. Its handler does what `udp_floor`'s does:
//! - pushes a fixed `Via` line after the request line of every request and sends it to the
//!   next hop;
//! - drops the first `Via` line of every response and sends it to the address the first
//!   request came from (one caller, as in the sipp harness).
//!
//! Structure: `--workers N` threads (default 2), each with its own ring and its own socket
//! bound to the listen address with `SO_REUSEPORT` (or one socket shared by all, `--shared`).
//! Every ring has a provided-buffer ring and one multishot `RecvMsg` (re-armed when the
//! kernel ends it, e.g. when it ran out of buffers); replies go out with `SendMsg` from a pool
//! of send slots that are recycled on completion (no allocation per datagram once the pool
//! has grown to the load). Completions are drained in batches; the sends a batch produces are
//! submitted together with the wait for the next one (`submit_and_wait(1)`).
//!
//! `--ring-flags none|coop|defer` picks the ring's setup flags: none, `COOP_TASKRUN`, or
//! `COOP_TASKRUN | SINGLE_ISSUER | DEFER_TASKRUN` (the default). `--wait N --min-wait-us US`
//! makes a worker wait for N completions, or for one once US microseconds have passed
//! (`min_wait_usec`, Linux 6.13), instead of waking for each: fewer wake-ups, more latency.
//!
//! ```text
//! cargo run --release --example uring_floor -- 127.0.0.1:5060 127.0.0.1:5070 [--workers N] [--shared]
//! ```
//!
//! What it showed (2026-12-07, `run_floor.sh` with `FLOOR2`, 6,000 calls/s, CPU per call with
//! two workers): Kamailio 52 µs, `udp_floor` 30-35 µs, this relay 26 µs; with one worker both
//! relays fell to 19-24 µs. perf still puts a third of this relay's samples in
//! `finish_task_switch`: at this rate a worker sleeps and wakes for nearly every datagram
//! whichever way it waits, so io_uring alone saves a few µs per call, not the half that
//! issue 14's CPU target needs. The proxy's transport stays on `recvmmsg`.
//!
//! It runs until killed (Ctrl-C, SIGTERM). A datagram it cannot relay (no line end, truncated,
//! unknown source address family) is dropped and counted; the counts are printed every
//! ten seconds on stderr when they are not zero.

#[cfg(target_os = "linux")]
mod linux {
    use io_uring::{cqueue, opcode, squeue, types, IoUring};
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::{AsRawFd, RawFd};
    use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
    use std::sync::{Arc, OnceLock};

    const VIA: &[u8] = b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-floor\r\n";

    /// Provided buffers per ring (a power of two).
    const RECV_BUFFERS: u16 = 512;
    /// Bytes per provided buffer: the `io_uring_recvmsg_out` header, the source address and
    /// the datagram. A datagram that does not fit is truncated by the kernel and dropped here.
    const RECV_BUFFER_LEN: usize = 4096;
    /// Room for the source address in a provided buffer (an IPv6 socket address).
    const NAME_LEN: usize = std::mem::size_of::<libc::sockaddr_in6>();
    /// Send slots a ring may have in flight; a datagram beyond this is dropped.
    const MAX_SEND_SLOTS: usize = 4096;
    /// `user_data` of the multishot receive; sends carry their slot index.
    const RECV_TAG: u64 = u64::MAX;

    /// How the rings are set up.
    #[derive(Clone, Copy, Debug)]
    enum RingFlags {
        None,
        Coop,
        Defer,
    }

    struct Config {
        listen: SocketAddr,
        next_hop: SocketAddr,
        workers: usize,
        shared: bool,
        flags: RingFlags,
        wait: Wait,
    }

    /// How long a worker waits for completions before handling them.
    #[derive(Clone, Copy, Debug)]
    struct Wait {
        /// Completions to wait for (1: handle each as soon as it comes).
        want: usize,
        /// With `want` > 1: once this long has passed, one completion is enough.
        min_wait_us: u32,
    }

    /// Shared by every worker.
    struct Relay {
        next_hop: SockAddr,
        /// The first request's source: the one caller.
        caller: OnceLock<SockAddr>,
        dropped: AtomicU64,
        send_errors: AtomicU64,
        recv_errors: AtomicU64,
    }

    /// What to do with one datagram: the bytes to send and where.
    fn relay_into(
        relay: &Relay,
        source: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<SockAddr> {
        let first_eol = memchr::memchr(b'\n', data)? + 1;
        out.clear();
        if data.starts_with(b"SIP/2.0 ") {
            // Response: drop the line after the status line if it is a Via (ours).
            let rest = &data[first_eol..];
            let skip = if rest.starts_with(b"Via:") {
                memchr::memchr(b'\n', rest).map_or(0, |i| i + 1)
            } else {
                0
            };
            let destination = relay.caller.get()?.clone();
            out.extend_from_slice(&data[..first_eol]);
            out.extend_from_slice(&rest[skip..]);
            Some(destination)
        } else {
            let _ = relay.caller.get_or_init(|| SockAddr::from(source));
            out.extend_from_slice(&data[..first_eol]);
            out.extend_from_slice(VIA);
            out.extend_from_slice(&data[first_eol..]);
            Some(relay.next_hop.clone())
        }
    }

    /// A socket address as the kernel wrote it into a receive buffer.
    fn parse_sockaddr(name: &[u8]) -> Option<SocketAddr> {
        let family = u16::from_ne_bytes(name.get(0..2)?.try_into().ok()?);
        let port = u16::from_be_bytes(name.get(2..4)?.try_into().ok()?);
        match i32::from(family) {
            libc::AF_INET => {
                let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
                Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
            }
            libc::AF_INET6 => {
                let flow = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
                let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
                let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(ip),
                    port,
                    flow,
                    scope,
                )))
            }
            _ => None,
        }
    }

    /// One `SendMsg` in flight: its bytes, address and header live here until it completes.
    struct SendSlot {
        buf: Vec<u8>,
        addr: SockAddr,
        iov: libc::iovec,
        hdr: libc::msghdr,
    }

    /// The provided-buffer ring and the buffers it hands out.
    struct BufRing {
        /// Page-aligned ring of `RECV_BUFFERS` entries, registered with the ring.
        entries: *mut types::BufRingEntry,
        layout: std::alloc::Layout,
        /// `RECV_BUFFERS * RECV_BUFFER_LEN` bytes.
        buffers: Vec<u8>,
        /// Our copy of the ring's tail, published once per batch.
        tail: u16,
    }

    impl BufRing {
        fn new() -> std::io::Result<Self> {
            let size = usize::from(RECV_BUFFERS) * std::mem::size_of::<types::BufRingEntry>();
            let layout = std::alloc::Layout::from_size_align(size, 4096)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            // SAFETY: the layout has a non-zero size.
            let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
            if entries.is_null() {
                return Err(std::io::Error::other("cannot allocate the buffer ring"));
            }
            let mut ring = BufRing {
                entries,
                layout,
                buffers: vec![0; usize::from(RECV_BUFFERS) * RECV_BUFFER_LEN],
                tail: 0,
            };
            for bid in 0..RECV_BUFFERS {
                ring.give(bid);
            }
            ring.publish();
            Ok(ring)
        }

        /// Hands buffer `bid` back to the kernel (visible after `publish`).
        fn give(&mut self, bid: u16) {
            if bid >= RECV_BUFFERS {
                return;
            }
            let index = usize::from(self.tail & (RECV_BUFFERS - 1));
            let start = usize::from(bid) * RECV_BUFFER_LEN;
            // SAFETY: index < RECV_BUFFERS, the ring's length; the entry is ours until the tail
            // passes it.
            let entry = unsafe { &mut *self.entries.add(index) };
            entry.set_addr(self.buffers[start..].as_ptr() as u64);
            entry.set_len(RECV_BUFFER_LEN as u32);
            entry.set_bid(bid);
            self.tail = self.tail.wrapping_add(1);
        }

        fn publish(&self) {
            // SAFETY: `entries` is the ring's first entry; the tail field is an aligned u16 the
            // kernel only reads.
            let tail = unsafe { &*(types::BufRingEntry::tail(self.entries).cast::<AtomicU16>()) };
            tail.store(self.tail, Ordering::Release);
        }

        fn buffer(&self, bid: u16, len: usize) -> Option<&[u8]> {
            let start = usize::from(bid).checked_mul(RECV_BUFFER_LEN)?;
            self.buffers.get(start..start + len.min(RECV_BUFFER_LEN))
        }
    }

    impl Drop for BufRing {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout. The ring is dropped first.
            unsafe { std::alloc::dealloc(self.entries.cast(), self.layout) };
        }
    }

    fn bind(listen: SocketAddr) -> std::io::Result<Socket> {
        let s = Socket::new(
            Domain::for_address(listen),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        s.set_reuse_port(true)?;
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.bind(&listen.into())?;
        Ok(s)
    }

    fn build_ring(flags: RingFlags) -> std::io::Result<IoUring> {
        let mut b = IoUring::builder();
        b.setup_cqsize(8192);
        match flags {
            RingFlags::None => {}
            RingFlags::Coop => {
                b.setup_coop_taskrun();
            }
            RingFlags::Defer => {
                b.setup_coop_taskrun()
                    .setup_single_issuer()
                    .setup_defer_taskrun();
            }
        }
        b.build(1024)
    }

    /// Pushes `entry`, flushing the submission queue first if it is full.
    fn push(ring: &mut IoUring, entry: &squeue::Entry) -> std::io::Result<()> {
        loop {
            // SAFETY: every pointer in the entries we push (msghdr, iovec, address, buffers)
            // stays valid until its completion: they live in boxed slots or in the worker.
            if unsafe { ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            ring.submit()?;
        }
    }

    fn worker(fd: RawFd, relay: Arc<Relay>, flags: RingFlags, wait: Wait) -> std::io::Result<()> {
        const BGID: u16 = 0;
        // Declared before the ring, so they outlive it.
        let mut bufs = BufRing::new()?;
        // The receive header: only the name and control lengths matter for multishot.
        // SAFETY: msghdr is plain data; all-zero is valid.
        let mut recv_hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_hdr.msg_namelen = NAME_LEN as libc::socklen_t;
        let mut slots: Vec<Box<SendSlot>> = Vec::new();
        // Built here: with SINGLE_ISSUER the creating thread is the only submitter.
        let mut ring = build_ring(flags)?;
        // SAFETY: the ring memory lives in `bufs`, dropped after `ring` (declared earlier).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.entries as u64,
                RECV_BUFFERS,
                BGID,
                0,
            )?;
        }
        let recv_entry = opcode::RecvMsgMulti::new(types::Fd(fd), &*recv_hdr, BGID)
            .build()
            .user_data(RECV_TAG);
        push(&mut ring, &recv_entry)?;

        let mut free: Vec<usize> = Vec::new();
        let mut batch: Vec<cqueue::Entry> = Vec::with_capacity(1024);
        // With `wait.want` > 1: at most a second asleep when idle (then the loop comes round).
        let idle = types::Timespec::new().sec(1);
        let args = types::SubmitArgs::new()
            .timespec(&idle)
            .min_wait_usec(wait.min_wait_us);
        loop {
            let waited = if wait.want > 1 {
                ring.submitter().submit_with_args(wait.want, &args)
            } else {
                ring.submit_and_wait(1)
            };
            match waited {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EBUSY | libc::ETIME)
                    ) => {}
                Err(e) => return Err(e),
            }
            batch.clear();
            batch.extend(ring.completion());
            let mut rearm = false;
            for cqe in &batch {
                if cqe.user_data() != RECV_TAG {
                    // A send finished: its slot is free again.
                    if cqe.result() < 0 {
                        relay.send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(i) = usize::try_from(cqe.user_data()) {
                        if i < slots.len() {
                            free.push(i);
                        }
                    }
                    continue;
                }
                if !cqueue::more(cqe.flags()) {
                    rearm = true;
                }
                let Some(bid) = cqueue::buffer_select(cqe.flags()) else {
                    // No buffer: an error such as ENOBUFS (out of buffers) ended the receive.
                    if cqe.result() != -libc::ENOBUFS {
                        relay.recv_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                };
                let len = usize::try_from(cqe.result()).unwrap_or(0);
                let slot = bufs.buffer(bid, len).and_then(|buf| {
                    let msg = types::RecvMsgOut::parse(buf, &recv_hdr).ok()?;
                    if msg.is_payload_truncated() || msg.is_name_data_truncated() {
                        return None;
                    }
                    let source = parse_sockaddr(msg.name_data())?;
                    let i = match free.pop() {
                        Some(i) => i,
                        None if slots.len() < MAX_SEND_SLOTS => {
                            slots.push(Box::new(SendSlot {
                                buf: Vec::with_capacity(RECV_BUFFER_LEN + VIA.len()),
                                addr: relay.next_hop.clone(),
                                // SAFETY: plain data; set before every use.
                                iov: unsafe { std::mem::zeroed() },
                                hdr: unsafe { std::mem::zeroed() },
                            }));
                            slots.len() - 1
                        }
                        None => return None,
                    };
                    let slot = &mut slots[i];
                    match relay_into(&relay, source, msg.payload_data(), &mut slot.buf) {
                        Some(addr) => {
                            slot.addr = addr;
                            Some(i)
                        }
                        None => {
                            free.push(i);
                            None
                        }
                    }
                });
                bufs.give(bid);
                let Some(i) = slot else {
                    relay.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let slot = &mut *slots[i];
                slot.iov.iov_base = slot.buf.as_mut_ptr().cast();
                slot.iov.iov_len = slot.buf.len();
                slot.hdr.msg_name = slot.addr.as_ptr() as *mut libc::c_void;
                slot.hdr.msg_namelen = slot.addr.len();
                slot.hdr.msg_iov = &mut slot.iov;
                slot.hdr.msg_iovlen = 1;
                let send = opcode::SendMsg::new(types::Fd(fd), &slot.hdr)
                    .build()
                    .user_data(i as u64);
                push(&mut ring, &send)?;
            }
            bufs.publish();
            if rearm {
                push(&mut ring, &recv_entry)?;
            }
        }
    }

    fn parse_args() -> Result<Config, Box<dyn std::error::Error>> {
        let usage = "usage: uring_floor LISTEN NEXT_HOP [--workers N] [--shared] \
                     [--ring-flags none|coop|defer] [--wait N --min-wait-us US] \
                     (e.g. 127.0.0.1:5060 127.0.0.1:5070)";
        let mut args = std::env::args().skip(1);
        let listen: SocketAddr = args.next().ok_or(usage)?.parse()?;
        let next_hop: SocketAddr = args.next().ok_or(usage)?.parse()?;
        let mut config = Config {
            listen,
            next_hop,
            workers: 2,
            shared: false,
            flags: RingFlags::Defer,
            wait: Wait {
                want: 1,
                min_wait_us: 0,
            },
        };
        while let Some(a) = args.next() {
            match a.as_str() {
                "--workers" => {
                    config.workers = args.next().ok_or(usage)?.parse()?;
                    if config.workers == 0 {
                        return Err("--workers must be at least 1".into());
                    }
                }
                "--shared" => config.shared = true,
                "--wait" => config.wait.want = args.next().ok_or(usage)?.parse()?,
                "--min-wait-us" => config.wait.min_wait_us = args.next().ok_or(usage)?.parse()?,
                "--ring-flags" => {
                    config.flags = match args.next().as_deref() {
                        Some("none") => RingFlags::None,
                        Some("coop") => RingFlags::Coop,
                        Some("defer") => RingFlags::Defer,
                        _ => return Err(usage.into()),
                    }
                }
                _ => return Err(usage.into()),
            }
        }
        Ok(config)
    }

    pub fn main() -> Result<(), Box<dyn std::error::Error>> {
        let config = parse_args()?;
        let relay = Arc::new(Relay {
            next_hop: SockAddr::from(config.next_hop),
            caller: OnceLock::new(),
            dropped: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            recv_errors: AtomicU64::new(0),
        });
        let mut sockets = Vec::new();
        for _ in 0..(if config.shared { 1 } else { config.workers }) {
            sockets.push(bind(config.listen)?);
        }
        for w in 0..config.workers {
            let fd = sockets[w % sockets.len()].as_raw_fd();
            let relay = relay.clone();
            let (flags, wait) = (config.flags, config.wait);
            std::thread::Builder::new()
                .name(format!("uring-{w}"))
                .spawn(move || {
                    if let Err(e) = worker(fd, relay, flags, wait) {
                        eprintln!("uring_floor: worker {w}: {e}");
                        std::process::exit(1);
                    }
                })?;
        }
        eprintln!(
            "uring_floor: {} -> {}, {} workers, {} socket(s), ring flags {:?}, {:?}, pid {}",
            config.listen,
            config.next_hop,
            config.workers,
            sockets.len(),
            config.flags,
            config.wait,
            std::process::id()
        );
        loop {
            std::thread::sleep(std::time::Duration::from_secs(10));
            let (d, s, r) = (
                relay.dropped.load(Ordering::Relaxed),
                relay.send_errors.load(Ordering::Relaxed),
                relay.recv_errors.load(Ordering::Relaxed),
            );
            if d + s + r > 0 {
                eprintln!("uring_floor: dropped {d}, send errors {s}, receive errors {r}");
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("uring_floor is Linux-only (io_uring)");
    std::process::exit(2);
}
