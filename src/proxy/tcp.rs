//! TCP transport on tokio: framed by Content-Length, connection limits (in all and per
//! source), idle and per-message deadlines, and a connection table shared by inbound and
//! outbound connections.
//!
//! Each listen address (IPv4 or IPv6) accepts connections only from sources the handler
//! takes ([`Handler::accepts_source`]: `sip.allowed_sources`; others are closed at once,
//! unread, as `source_not_allowed`), and up to two limits, checked in order: per source IP address ([`SourceLimiter`]; beyond it the new connection is closed at
//! once and reported to [`Handler::dropped`] as `source_connection_limit`, and other sources
//! still connect), then in all (accepted plus opened; `connection_limit`). A connection's task
//! reads into one buffer, cuts complete messages off it with the [`Framer`] (the SIP framing,
//! which enforces the message size cap), and hands each to the [`Handler`]. A framing error
//! or a buffer that exceeds the cap without holding a complete message closes the connection
//! (a stream cannot be resynchronised), reported with the framer's reason. RFC 5626 CRLF
//! keep-alives are answered.
//!
//! Two deadlines ([`StreamDeadlines`]) close a connection that holds a slot without using it,
//! whatever trickle of bytes it sends (slowloris): a message must arrive whole within
//! `message_timeout` of its first byte (`message_timeout`), and a connection that completes no
//! message or keep-alive for `idle_timeout` is closed (`idle_timeout`). Bytes that do not
//! complete a message restart neither clock.
//!
//! Every connection is registered in the [`ConnTable`] under its peer address, so a response
//! whose destination is the peer goes back over the connection its request came on, and
//! messages to a next hop reuse one outbound connection (opened on first use, within
//! `connect_timeout`; a connect that is refused or times out, or a write the peer breaks, is
//! reported to [`Handler::on_send_error`]; the connection limit or a full queue is this
//! node's fault and goes to [`Handler::local_send_error`], blaming nobody).
//!
//! Memory per connection: its read buffer (at most `max_message` plus one read) and a bounded
//! queue of [`WRITE_QUEUE`] outbound messages (full: the message is dropped and counted).

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::runtime::{report_send_error, Handler, LocalSendError};
use super::udp::{OutboundRoute, UdpSender};
use super::{Inbound, Outbound, Transport};

/// Outbound messages queued per connection before further ones count as send errors.
pub const WRITE_QUEUE: usize = 1024;

/// Cuts one message off the front of a stream buffer: `Ok(Some(len))` when a complete message
/// of `len` bytes is there, `Ok(None)` when more bytes are needed, `Err(reason)` when the
/// stream is malformed (the reason is a short snake_case token for the metrics).
pub type Framer = Arc<dyn Fn(&[u8]) -> Result<Option<usize>, &'static str> + Send + Sync>;

/// TCP transport settings.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Addresses to listen on (port 0 picks a free port).
    pub listen: Vec<SocketAddr>,
    /// Connections open at once (accepted plus outbound).
    pub max_connections: usize,
    /// Accepted connections open at once from one source IP address.
    pub max_connections_per_source: usize,
    /// Close a connection that completes no message for this long.
    pub idle_timeout: Duration,
    /// Close a connection whose message is not complete this long after its first byte.
    pub message_timeout: Duration,
    /// Time allowed to connect to a next hop.
    pub connect_timeout: Duration,
    /// Largest message accepted.
    pub max_message: usize,
}

/// Why a stream connection was closed for want of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamExpiry {
    /// No complete message or keep-alive for the idle timeout.
    Idle,
    /// A message still incomplete at its deadline.
    Message,
}

impl StreamExpiry {
    /// The reason reported to [`Handler::dropped`] (and the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            StreamExpiry::Idle => "idle_timeout",
            StreamExpiry::Message => "message_timeout",
        }
    }
}

/// The read deadlines of one stream connection, sans I/O (the caller passes the time):
///
/// * idle: `idle` after the last complete message (or keep-alive, or the connection's start);
/// * message: `message` after the first byte of a message that is still incomplete.
///
/// Neither restarts on bytes that do not complete a message, so a client sending a byte a
/// second is closed `message` after its first one. The connection's reader waits for data
/// until [`StreamDeadlines::next`], and tells the deadlines what the data did.
#[derive(Debug, Clone)]
pub struct StreamDeadlines {
    idle: Duration,
    message: Duration,
    last_message: Instant,
    message_started: Option<Instant>,
}

impl StreamDeadlines {
    /// A connection opened at `now`.
    pub fn new(idle: Duration, message: Duration, now: Instant) -> Self {
        StreamDeadlines {
            idle,
            message,
            last_message: now,
            message_started: None,
        }
    }

    /// A complete message (or keep-alive) was taken off the buffer at `now`.
    pub fn message_done(&mut self, now: Instant) {
        self.last_message = now;
        self.message_started = None;
    }

    /// The buffer was processed at `now`; `pending`: bytes of an incomplete message remain
    /// (its deadline runs from the first time they are seen).
    pub fn buffered(&mut self, pending: bool, now: Instant) {
        if !pending {
            self.message_started = None;
        } else if self.message_started.is_none() {
            self.message_started = Some(now);
        }
    }

    /// When the connection is to be closed unless a message completes first, and why.
    pub fn next(&self) -> (Instant, StreamExpiry) {
        let idle = self.last_message + self.idle;
        match self.message_started {
            Some(t) if t + self.message < idle => (t + self.message, StreamExpiry::Message),
            _ => (idle, StreamExpiry::Idle),
        }
    }
}

/// Connections open per source IP address, under a limit. An accepted connection holds a
/// [`SourcePermit`] for its life; dropping it frees the slot. Only sources with open
/// connections have an entry, so memory is bounded by the connections themselves.
/// IPv4-mapped IPv6 addresses count as their IPv4 address.
#[derive(Debug)]
pub struct SourceLimiter {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's slot in a [`SourceLimiter`]; freed on drop.
#[derive(Debug)]
pub struct SourcePermit {
    limiter: Arc<SourceLimiter>,
    ip: IpAddr,
}

impl SourceLimiter {
    /// At most `max` connections per source.
    pub fn new(max: usize) -> Arc<SourceLimiter> {
        Arc::new(SourceLimiter {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Nothing panics while the lock is held; a poisoned map is still consistent.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for one more connection from `ip`, or `None` when it has `max` open.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<SourcePermit> {
        let ip = ip.to_canonical();
        let mut m = self.map();
        let n = m.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SourcePermit {
            limiter: Arc::clone(self),
            ip,
        })
    }

    /// Connections open from `ip`.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.map().get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    /// Sources with at least one open connection.
    pub fn sources(&self) -> usize {
        self.map().len()
    }
}

impl Drop for SourcePermit {
    fn drop(&mut self) {
        let mut m = self.limiter.map();
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Open connections by peer address.
pub struct ConnTable {
    conns: Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
    open: AtomicUsize,
}

struct Shared<H: Handler> {
    handler: Arc<H>,
    table: ConnTable,
    per_source: Arc<SourceLimiter>,
    config: TcpConfig,
    framer: Framer,
    udp: Option<UdpSender>,
    runtime: tokio::runtime::Handle,
}

/// The running TCP transport; also the [`OutboundRoute`] the UDP side sends TCP messages by.
pub struct TcpTransport<H: Handler> {
    shared: Arc<Shared<H>>,
    local: Vec<SocketAddr>,
    accept_tasks: Vec<JoinHandle<()>>,
}

fn listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

impl<H: Handler> TcpTransport<H> {
    /// Binds every listen address and starts accepting, on the current tokio runtime.
    /// `udp` sends the UDP messages that TCP-received requests produce.
    pub async fn start(
        config: TcpConfig,
        handler: Arc<H>,
        framer: Framer,
        udp: Option<UdpSender>,
    ) -> io::Result<TcpTransport<H>> {
        let mut listeners = Vec::new();
        for &addr in &config.listen {
            let l = TcpListener::from_std(listener(addr)?)?;
            listeners.push((l.local_addr()?, l));
        }
        let shared = Arc::new(Shared {
            handler,
            table: ConnTable {
                conns: Mutex::new(HashMap::new()),
                open: AtomicUsize::new(0),
            },
            per_source: SourceLimiter::new(config.max_connections_per_source),
            config,
            framer,
            udp,
            runtime: tokio::runtime::Handle::current(),
        });
        let local = listeners.iter().map(|(a, _)| *a).collect();
        let accept_tasks = listeners
            .into_iter()
            .map(|(a, l)| tokio::spawn(accept_loop(shared.clone(), a, l)))
            .collect();
        Ok(TcpTransport {
            shared,
            local,
            accept_tasks,
        })
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// Open connections.
    pub fn open_connections(&self) -> usize {
        self.shared.table.open.load(Ordering::Relaxed)
    }

    /// A route for the UDP transport's TCP-bound messages.
    pub fn route(&self) -> Arc<dyn OutboundRoute> {
        Arc::new(TcpRoute {
            shared: self.shared.clone(),
        })
    }

    /// Stops accepting (open connections end when idle or at process exit).
    pub fn shutdown(&mut self) {
        for t in self.accept_tasks.drain(..) {
            t.abort();
        }
    }
}

impl<H: Handler> Drop for TcpTransport<H> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct TcpRoute<H: Handler> {
    shared: Arc<Shared<H>>,
}

impl<H: Handler> OutboundRoute for TcpRoute<H> {
    fn send(&self, msg: Outbound) {
        send_tcp(&self.shared, msg);
    }
}

/// Counts a connection against the limit; `false` (and nothing counted) when at the limit.
fn reserve(table: &ConnTable, max: usize) -> bool {
    table
        .open
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

async fn accept_loop<H: Handler>(shared: Arc<Shared<H>>, local: SocketAddr, l: TcpListener) {
    loop {
        let (stream, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("TCP accept on {local}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !shared.handler.accepts_source(peer.ip()) {
            shared
                .handler
                .dropped(peer, Transport::Tcp, "source_not_allowed");
            drop(stream);
            continue;
        }
        let Some(permit) = shared.per_source.try_acquire(peer.ip()) else {
            shared
                .handler
                .dropped(peer, Transport::Tcp, "source_connection_limit");
            drop(stream);
            continue;
        };
        if !reserve(&shared.table, shared.config.max_connections) {
            shared
                .handler
                .dropped(peer, Transport::Tcp, "connection_limit");
            drop(stream);
            continue;
        }
        shared.handler.connection_opened(true);
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        if let Ok(mut m) = shared.table.conns.lock() {
            m.insert(peer, tx);
        }
        let s = shared.clone();
        tokio::spawn(async move {
            run_connection(s, stream, local, peer, rx).await;
            drop(permit);
        });
    }
}

/// Sends one message over TCP: over the open connection to its destination, or a new one.
fn send_tcp<H: Handler>(shared: &Arc<Shared<H>>, msg: Outbound) {
    let dest = msg.destination;
    let existing = shared
        .table
        .conns
        .lock()
        .ok()
        .and_then(|m| m.get(&dest).cloned());
    if let Some(tx) = existing {
        match tx.try_send(msg.data.clone()) {
            Ok(()) => shared.handler.sent(&msg),
            // A full write queue is a burst here, not proof the peer is gone.
            Err(mpsc::error::TrySendError::Full(_)) => {
                shared
                    .handler
                    .local_send_error(dest, Transport::Tcp, LocalSendError::NoBuffers)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                shared
                    .handler
                    .on_send_error(dest, Transport::Tcp, Instant::now())
            }
        }
        return;
    }
    if !reserve(&shared.table, shared.config.max_connections) {
        // Our limit, not the destination's fault.
        shared
            .handler
            .local_send_error(dest, Transport::Tcp, LocalSendError::ConnectionLimit);
        return;
    }
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    // Queued now, written once connected; later messages join the same queue.
    let _ = tx.try_send(msg.data.clone());
    shared.handler.sent(&msg);
    if let Ok(mut m) = shared.table.conns.lock() {
        m.insert(dest, tx);
    }
    let s = shared.clone();
    shared.runtime.spawn(async move {
        let connected =
            tokio::time::timeout(s.config.connect_timeout, TcpStream::connect(dest)).await;
        match connected {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                s.handler.connection_opened(false);
                let local = stream.local_addr().unwrap_or(dest);
                run_connection(s, stream, local, dest, rx).await;
            }
            failed => {
                if let Ok(mut m) = s.table.conns.lock() {
                    m.remove(&dest);
                }
                s.table.open.fetch_sub(1, Ordering::AcqRel);
                match failed {
                    Ok(Err(e)) => {
                        report_send_error(&*s.handler, dest, Transport::Tcp, &e, Instant::now())
                    }
                    // Timed out (or, unreachable, connected): the destination's fault.
                    _ => s
                        .handler
                        .on_send_error(dest, Transport::Tcp, Instant::now()),
                }
            }
        }
    });
}

/// Sends what the handler produced for a TCP-received message.
fn dispatch<H: Handler>(shared: &Arc<Shared<H>>, out: &mut Vec<Outbound>, now: Instant) {
    for msg in out.drain(..) {
        match msg.transport {
            Transport::Tcp => send_tcp(shared, msg),
            Transport::Udp => match shared.udp.as_ref() {
                Some(u) => u.send_reporting(&*shared.handler, &msg, now),
                None => shared.handler.local_send_error(
                    msg.destination,
                    Transport::Udp,
                    LocalSendError::Other,
                ),
            },
        }
    }
}

async fn run_connection<H: Handler>(
    shared: Arc<Shared<H>>,
    stream: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let writer_shared = shared.clone();
    let write_task = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if let Err(e) = writer.write_all(&data).await {
                report_send_error(
                    &*writer_shared.handler,
                    peer,
                    Transport::Tcp,
                    &e,
                    Instant::now(),
                );
                break;
            }
        }
        let _ = writer.shutdown().await;
    });

    let mut buf = BytesMut::with_capacity(8192);
    let mut out = Vec::new();
    let cap = shared.config.max_message;
    let mut deadlines = StreamDeadlines::new(
        shared.config.idle_timeout,
        shared.config.message_timeout,
        Instant::now(),
    );
    'conn: loop {
        let (until, expiry) = deadlines.next();
        let until = tokio::time::Instant::from_std(until);
        let read = tokio::time::timeout_at(until, reader.read_buf(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Err(_) => {
                shared
                    .handler
                    .dropped(peer, Transport::Tcp, expiry.as_str());
                break;
            }
            Ok(Ok(_)) => {}
        }
        let now = Instant::now();
        loop {
            // RFC 5626 keep-alive: a double CRLF ping is answered with one CRLF; stray CRLFs
            // between messages are skipped (RFC 3261 §7.5).
            if buf.starts_with(b"\r\n\r\n") {
                let _ = buf.split_to(4);
                deadlines.message_done(now);
                send_tcp(
                    &shared,
                    Outbound {
                        data: Bytes::from_static(b"\r\n"),
                        destination: peer,
                        transport: Transport::Tcp,
                    },
                );
                continue;
            }
            if buf.starts_with(b"\r\n") {
                if buf.len() < 4 && buf[2..].iter().all(|&b| b == b'\r') {
                    break; // perhaps a ping still arriving
                }
                let _ = buf.split_to(2);
                continue;
            }
            if buf.is_empty() {
                break;
            }
            match (shared.framer)(&buf) {
                Ok(Some(n)) if n > 0 && n <= buf.len() => {
                    let data = buf.split_to(n).freeze();
                    deadlines.message_done(now);
                    shared.handler.handle(
                        Inbound {
                            data,
                            source: peer,
                            local,
                            transport: Transport::Tcp,
                        },
                        now,
                        &mut out,
                    );
                    dispatch(&shared, &mut out, now);
                }
                Ok(Some(_)) => {
                    shared.handler.dropped(peer, Transport::Tcp, "framing");
                    break 'conn;
                }
                Ok(None) => {
                    if buf.len() > cap {
                        shared.handler.dropped(peer, Transport::Tcp, "too_large");
                        break 'conn;
                    }
                    break;
                }
                Err(reason) => {
                    shared.handler.dropped(peer, Transport::Tcp, reason);
                    break 'conn;
                }
            }
        }
        deadlines.buffered(!buf.is_empty(), now);
    }
    if let Ok(mut m) = shared.table.conns.lock() {
        m.remove(&peer);
    }
    shared.table.open.fetch_sub(1, Ordering::AcqRel);
    shared.handler.connection_closed();
    // The queue's sender is gone from the table: the writer drains what is queued, then ends.
    let _ = write_task.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    /// Test framing: a message is a line ending in '\n'; longer than 64 bytes is "too_large",
    /// a line starting with '!' is malformed.
    fn line_framer() -> Framer {
        Arc::new(|b: &[u8]| {
            if b.first() == Some(&b'!') {
                return Err("malformed");
            }
            match b.iter().position(|&c| c == b'\n') {
                Some(i) if i < 64 => Ok(Some(i + 1)),
                Some(_) => Err("too_large"),
                None => Ok(None),
            }
        })
    }

    /// Answers "ping" lines to the sender and forwards "fwd" lines to `forward_to` over TCP.
    struct Lines {
        forward_to: Mutex<Option<SocketAddr>>,
        events: Mutex<Vec<String>>,
    }

    impl Handler for Lines {
        fn handle(&self, msg: Inbound, _now: Instant, out: &mut Vec<Outbound>) {
            let fwd = *self.forward_to.lock().unwrap();
            let dest = match fwd {
                Some(a) if msg.data.starts_with(b"fwd") => a,
                _ => msg.source,
            };
            let mut d = b"re:".to_vec();
            d.extend_from_slice(&msg.data);
            out.push(Outbound {
                data: d.into(),
                destination: dest,
                transport: Transport::Tcp,
            });
        }
        fn poll_timeout(&self, _now: Instant, _out: &mut Vec<Outbound>) {}
        fn on_send_error(&self, d: SocketAddr, _t: Transport, _now: Instant) {
            self.events.lock().unwrap().push(format!("send_error {d}"));
        }
        fn local_send_error(&self, d: SocketAddr, _t: Transport, why: LocalSendError) {
            self.events
                .lock()
                .unwrap()
                .push(format!("local_send_error {d} {}", why.as_str()));
        }
        fn dropped(&self, _s: SocketAddr, _t: Transport, reason: &'static str) {
            self.events
                .lock()
                .unwrap()
                .push(format!("dropped {reason}"));
        }
    }

    fn config(listen: &str, max: usize) -> TcpConfig {
        TcpConfig {
            listen: vec![listen.parse().unwrap()],
            max_connections: max,
            max_connections_per_source: 1024,
            idle_timeout: Duration::from_millis(500),
            message_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_millis(500),
            max_message: 64,
        }
    }

    async fn start(listen: &str, max: usize) -> (TcpTransport<Lines>, Arc<Lines>) {
        start_with(config(listen, max)).await
    }

    async fn start_with(cfg: TcpConfig) -> (TcpTransport<Lines>, Arc<Lines>) {
        let h = Arc::new(Lines {
            forward_to: Mutex::new(None),
            events: Mutex::default(),
        });
        (
            TcpTransport::start(cfg, h.clone(), line_framer(), None)
                .await
                .unwrap(),
            h,
        )
    }

    async fn read_line(r: &mut tokio::io::BufReader<TcpStream>) -> String {
        let mut s = String::new();
        tokio::time::timeout(Duration::from_secs(2), r.read_line(&mut s))
            .await
            .unwrap()
            .unwrap();
        s
    }

    async fn wait_for(h: &Lines, what: &str) {
        for _ in 0..200 {
            if h.events.lock().unwrap().iter().any(|e| e.contains(what)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no event {what}: {:?}", h.events.lock().unwrap());
    }

    #[tokio::test]
    async fn frames_answers_and_forwards_over_one_connection() {
        for (listen, upstream) in [("127.0.0.1:0", "127.0.0.1:0"), ("[::1]:0", "[::1]:0")] {
            let (t, h) = start(listen, 8).await;
            let up = TcpListener::bind(upstream).await.unwrap();
            *h.forward_to.lock().unwrap() = Some(up.local_addr().unwrap());
            let addr = t.local_addrs()[0];
            let mut c = tokio::io::BufReader::new(TcpStream::connect(addr).await.unwrap());
            // Two messages in one write, a third split over two writes.
            c.get_mut().write_all(b"ping1\nping2\npi").await.unwrap();
            assert_eq!(read_line(&mut c).await, "re:ping1\n");
            assert_eq!(read_line(&mut c).await, "re:ping2\n");
            c.get_mut().write_all(b"ng3\n").await.unwrap();
            assert_eq!(read_line(&mut c).await, "re:ping3\n");
            // Forwarded messages reuse one outbound connection.
            c.get_mut().write_all(b"fwd1\nfwd2\n").await.unwrap();
            let (s, _) = tokio::time::timeout(Duration::from_secs(2), up.accept())
                .await
                .unwrap()
                .unwrap();
            let mut s = tokio::io::BufReader::new(s);
            assert_eq!(read_line(&mut s).await, "re:fwd1\n");
            assert_eq!(read_line(&mut s).await, "re:fwd2\n");
            assert_eq!(t.open_connections(), 2);
            // A message from the upstream connection is answered over it.
            s.get_mut().write_all(b"ping4\n").await.unwrap();
            assert_eq!(read_line(&mut s).await, "re:ping4\n");
            // Keep-alive.
            c.get_mut().write_all(b"\r\n\r\n").await.unwrap();
            assert_eq!(read_line(&mut c).await, "\r\n");
        }
    }

    #[tokio::test]
    async fn limits_malformed_idle_and_failed_connect() {
        let (t, h) = start("127.0.0.1:0", 1).await;
        let addr = t.local_addrs()[0];
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        wait_for(&h, "dropped connection_limit").await;
        let mut buf = [0u8; 16];
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(2), b.read(&mut buf))
                .await
                .unwrap()
                .unwrap_or(0),
            0
        );
        // Malformed stream: closed, counted.
        a.write_all(b"!bad\n").await.unwrap();
        wait_for(&h, "dropped malformed").await;
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(2), a.read(&mut buf))
                .await
                .unwrap()
                .unwrap_or(0),
            0
        );
        // Oversize without a frame.
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&[b'x'; 200]).await.unwrap();
        wait_for(&h, "dropped too_large").await;
        // Idle.
        let _d = TcpStream::connect(addr).await.unwrap();
        wait_for(&h, "dropped idle_timeout").await;
        // A forward while `e` holds the only connection slot: our limit, blaming nobody.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        *h.forward_to.lock().unwrap() = Some(closed);
        for _ in 0..100 {
            if t.open_connections() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut e = TcpStream::connect(addr).await.unwrap();
        e.write_all(b"fwd\n").await.unwrap();
        wait_for(&h, &format!("local_send_error {closed} connection_limit")).await;
        assert!(!h
            .events
            .lock()
            .unwrap()
            .contains(&format!("send_error {closed}")));
    }

    #[tokio::test]
    async fn a_refused_connect_blames_the_destination() {
        let (t, h) = start("127.0.0.1:0", 2).await;
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        *h.forward_to.lock().unwrap() = Some(closed);
        let mut e = TcpStream::connect(t.local_addrs()[0]).await.unwrap();
        e.write_all(b"fwd\n").await.unwrap();
        wait_for(&h, &format!("send_error {closed}")).await;
    }

    #[test]
    fn deadlines_are_not_restarted_by_a_trickle() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = StreamDeadlines::new(s(120), s(10), t0);
        assert_eq!(d.next(), (t0 + s(120), StreamExpiry::Idle));
        // A byte a second: the message deadline runs from the first one and never moves.
        for i in 1..=9 {
            d.buffered(true, t0 + s(i));
            assert_eq!(d.next(), (t0 + s(11), StreamExpiry::Message), "byte {i}");
        }
        // The message completes: idle restarts from it, no message is pending.
        d.message_done(t0 + s(10));
        d.buffered(false, t0 + s(10));
        assert_eq!(d.next(), (t0 + s(130), StreamExpiry::Idle));
        // A message and the start of the next in one read: the next one's deadline starts.
        d.message_done(t0 + s(20));
        d.buffered(true, t0 + s(20));
        assert_eq!(d.next(), (t0 + s(30), StreamExpiry::Message));
        // Stray bytes consumed without completing a message (a lone CRLF) restart nothing.
        d.buffered(false, t0 + s(25));
        assert_eq!(d.next(), (t0 + s(140), StreamExpiry::Idle));

        // Idle shorter than the message deadline: bytes do not keep the connection past it.
        let mut d = StreamDeadlines::new(s(2), s(10), t0);
        d.buffered(true, t0 + s(1));
        assert_eq!(d.next(), (t0 + s(2), StreamExpiry::Idle));
        assert_eq!(StreamExpiry::Message.as_str(), "message_timeout");
        assert_eq!(StreamExpiry::Idle.as_str(), "idle_timeout");
    }

    #[test]
    fn source_limiter_counts_per_address_and_frees_on_drop() {
        let l = SourceLimiter::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let a_mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let p1 = l.try_acquire(a).unwrap();
        let p2 = l.try_acquire(a_mapped).unwrap();
        assert!(l.try_acquire(a).is_none(), "a at its limit");
        assert_eq!(l.open(a), 2);
        let q = l.try_acquire(b).unwrap();
        assert_eq!(l.sources(), 2);
        drop(p1);
        assert_eq!(l.open(a), 1);
        let p3 = l.try_acquire(a).unwrap();
        drop((p2, p3, q));
        assert_eq!(l.sources(), 0, "no entry for sources without connections");
    }

    async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
        let mut buf = [0u8; 64];
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    #[tokio::test]
    async fn a_trickling_client_is_closed_at_the_message_deadline() {
        let mut cfg = config("127.0.0.1:0", 8);
        cfg.idle_timeout = Duration::from_secs(30);
        cfg.message_timeout = Duration::from_millis(600);
        let (t, h) = start_with(cfg).await;
        let addr = t.local_addrs()[0];
        let mut c = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        // A byte every 100 ms: each read would have restarted the old idle timer.
        for &b in b"ping-ping-ping-ping" {
            if c.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        assert!(closed_within(&mut c, Duration::from_secs(2)).await);
        wait_for(&h, "dropped message_timeout").await;
        assert!(started.elapsed() < Duration::from_secs(3));
        // A client sending whole messages stays.
        let mut ok = tokio::io::BufReader::new(TcpStream::connect(addr).await.unwrap());
        for i in 0..4 {
            ok.get_mut()
                .write_all(format!("ping{i}\n").as_bytes())
                .await
                .unwrap();
            assert_eq!(read_line(&mut ok).await, format!("re:ping{i}\n"));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    #[tokio::test]
    async fn one_source_cannot_take_every_slot() {
        let mut cfg = config("127.0.0.1:0", 16);
        cfg.max_connections_per_source = 2;
        let (t, h) = start_with(cfg).await;
        let addr = t.local_addrs()[0];
        let from = |ip: &str| {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
            s.connect(addr)
        };
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut c = tokio::io::BufReader::new(from("127.0.0.1").await.unwrap());
            c.get_mut().write_all(b"ping\n").await.unwrap();
            assert_eq!(read_line(&mut c).await, "re:ping\n");
            held.push(c);
        }
        let mut third = from("127.0.0.1").await.unwrap();
        assert!(closed_within(&mut third, Duration::from_secs(2)).await);
        wait_for(&h, "dropped source_connection_limit").await;
        // Another source still gets in.
        let mut other = tokio::io::BufReader::new(from("127.0.0.2").await.unwrap());
        other.get_mut().write_all(b"ping\n").await.unwrap();
        assert_eq!(read_line(&mut other).await, "re:ping\n");
        // A freed slot is usable again.
        drop(held.pop());
        for _ in 0..100 {
            if t.shared.per_source.open("127.0.0.1".parse().unwrap()) < 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut again = tokio::io::BufReader::new(from("127.0.0.1").await.unwrap());
        again.get_mut().write_all(b"ping\n").await.unwrap();
        assert_eq!(read_line(&mut again).await, "re:ping\n");
    }
}
