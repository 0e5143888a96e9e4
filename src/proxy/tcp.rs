//! TCP transport on tokio: framed by Content-Length, a connection limit, idle timeouts, and a
//! connection table shared by inbound and outbound connections.
//!
//! Each listen address (IPv4 or IPv6) accepts connections up to a total limit (accepted plus
//! opened; beyond it a new connection is closed at once and reported to
//! [`Handler::dropped`] as `connection_limit`). A connection's task reads into one buffer,
//! cuts complete messages off it with the [`Framer`] (the SIP framing, which enforces the
//! message size cap), and hands each to the [`Handler`]. A framing error or a buffer that
//! exceeds the cap without holding a complete message closes the connection (a stream cannot
//! be resynchronised), reported with the framer's reason. A connection silent for
//! `idle_timeout` is closed. RFC 5626 CRLF keep-alives are answered.
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
use std::net::SocketAddr;
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
    /// Close a connection silent for this long.
    pub idle_timeout: Duration,
    /// Time allowed to connect to a next hop.
    pub connect_timeout: Duration,
    /// Largest message accepted.
    pub max_message: usize,
}

/// Open connections by peer address.
pub struct ConnTable {
    conns: Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
    open: AtomicUsize,
}

struct Shared<H: Handler> {
    handler: Arc<H>,
    table: ConnTable,
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
        tokio::spawn(run_connection(shared.clone(), stream, local, peer, rx));
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
    'conn: loop {
        let read =
            tokio::time::timeout(shared.config.idle_timeout, reader.read_buf(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Err(_) => {
                shared.handler.dropped(peer, Transport::Tcp, "idle_timeout");
                break;
            }
            Ok(Ok(_)) => {}
        }
        loop {
            // RFC 5626 keep-alive: a double CRLF ping is answered with one CRLF; stray CRLFs
            // between messages are skipped (RFC 3261 §7.5).
            if buf.starts_with(b"\r\n\r\n") {
                let _ = buf.split_to(4);
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
                    let now = Instant::now();
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

    async fn start(listen: &str, max: usize) -> (TcpTransport<Lines>, Arc<Lines>) {
        let h = Arc::new(Lines {
            forward_to: Mutex::new(None),
            events: Mutex::default(),
        });
        let cfg = TcpConfig {
            listen: vec![listen.parse().unwrap()],
            max_connections: max,
            idle_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
            max_message: 64,
        };
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
}
