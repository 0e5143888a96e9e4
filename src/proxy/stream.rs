//! The stream-connection loop shared by every stream transport (TCP, TLS): framing by
//! Content-Length, per-message and idle deadlines, a bounded write queue, RFC 5626 keep-alives,
//! connection limits, and one connection table for inbound and outbound connections.
//!
//! A transport is a [`StreamLayer`]: how an accepted or connected TCP socket becomes the byte
//! stream messages ride on (itself for TCP; a TLS handshake for TLS). [`StreamTransport`]
//! does the rest, over any `AsyncRead + AsyncWrite + Unpin + Send` stream:
//!
//! * **Accept.** Each listen address (IPv4 or IPv6) accepts connections only from sources the
//!   handler takes ([`Handler::accepts_source`]: `sip.allowed_sources`; others are closed at
//!   once, unread, as [`DropReason::SourceNotAllowed`]), and within two limits of the
//!   [`StreamPool`], checked in order: per source IP address ([`SourceLimiter`];
//!   [`DropReason::SourceConnectionLimit`], and other sources still connect), then in all
//!   (accepted plus opened, over every stream transport sharing the pool;
//!   [`DropReason::ConnectionLimit`]). The layer's [`StreamLayer::accept`] (a handshake)
//!   then runs in the connection's own task, so a slow one blocks no other connection.
//! * **Read.** A connection's task reads into one buffer, cuts complete messages off it with
//!   the [`Framer`] (the SIP framing, which enforces the message size cap), and hands each to
//!   the [`Handler`] with [`Inbound::local`] set to the socket's own local address (the
//!   address the peer connected to, even on a listener bound to `0.0.0.0`). What the handler
//!   produces goes out through the [`Dispatch`]. A framing error or a buffer that exceeds the
//!   cap without holding a complete message closes the connection (a stream cannot be
//!   resynchronised). RFC 5626 CRLF keep-alives are answered.
//! * **Deadlines** ([`StreamDeadlines`]) close a connection that holds a slot without using
//!   it, whatever trickle of bytes it sends (slowloris): a message must arrive whole within
//!   `message_timeout` of its first byte, and a connection that completes no message or
//!   keep-alive for `idle_timeout` is closed. Bytes that do not complete a message restart
//!   neither clock.
//! * **Send.** Every connection is registered in the pool's table under its transport and
//!   peer address, so a response whose destination is the peer goes back over the connection
//!   its request came on, and messages to a next hop reuse one outbound connection (opened on
//!   first use, from the message's [`Outbound::source`] or the listener's address, so that
//!   what comes back over it is addressed to the sent-by our Via names: TCP connect plus
//!   [`StreamLayer::connect`], both within `connect_timeout`; a
//!   connect that is refused or times out, or a write the peer breaks, is reported to
//!   [`Handler::on_send_error`]; the connection limit or a full queue is this node's fault and
//!   goes to [`Handler::local_send_error`], blaming nobody).
//!
//! Memory per connection: its read buffer (at most `max_message` plus one read) and a bounded
//! queue of [`WRITE_QUEUE`] outbound messages (full: the message is dropped and counted).

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{
    report_send_error, ConnectionOrigin, Dispatch, DropReason, Handler, Inbound, LocalSendError,
    Outbound, Route, Transport,
};

/// Outbound messages queued per connection before further ones count as send errors.
pub const WRITE_QUEUE: usize = 1024;

/// Cuts one message off the front of a stream buffer: `Ok(Some(len))` when a complete message
/// of `len` bytes is there, `Ok(None)` when more bytes are needed, `Err(reason)` when the
/// stream is malformed (the reason is a short snake_case token for the metrics).
pub type Framer = Arc<dyn Fn(&[u8]) -> Result<Option<usize>, &'static str> + Send + Sync>;

/// How a TCP socket becomes the stream a transport's messages ride on.
pub trait StreamLayer: Send + Sync + 'static {
    /// The byte stream (a `TcpStream` itself, or a TLS stream over it).
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The transport this layer carries (the key of its route and connections).
    fn transport(&self) -> Transport;

    /// Turns an accepted socket from `peer` into a stream (a server handshake). Runs in the
    /// connection's own task; it should bound its own time (a handshake timeout). `Err`
    /// closes the connection, reported to [`Handler::dropped`] with the reason. With the
    /// stream comes whether the layer authenticated the peer as trusted (a TLS client
    /// certificate in `tls.trusted_identities`): [`Inbound::verified_peer`] of its messages.
    fn accept(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = Result<(Self::Stream, bool), DropReason>> + Send;

    /// Turns a socket connected to `destination` into a stream (a client handshake), within
    /// the transport's `connect_timeout`. `Err` is reported against the destination as
    /// [`report_send_error`] classifies it.
    fn connect(
        &self,
        tcp: TcpStream,
        destination: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain TCP: the socket is the stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcp;

impl StreamLayer for PlainTcp {
    type Stream = TcpStream;

    fn transport(&self) -> Transport {
        Transport::Tcp
    }

    async fn accept(
        &self,
        tcp: TcpStream,
        _peer: SocketAddr,
    ) -> Result<(TcpStream, bool), DropReason> {
        Ok((tcp, false))
    }

    async fn connect(&self, tcp: TcpStream, _destination: SocketAddr) -> io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// One stream transport's settings (its limits live in the shared [`StreamPool`]).
#[derive(Clone)]
pub struct StreamSettings {
    /// Close a connection that completes no message for this long.
    pub idle_timeout: Duration,
    /// Close a connection whose message is not complete this long after its first byte.
    pub message_timeout: Duration,
    /// Time allowed to connect to a destination (TCP connect plus the layer's handshake).
    pub connect_timeout: Duration,
    /// Largest message accepted.
    pub max_message: usize,
    /// The message framing.
    pub framer: Framer,
}

impl std::fmt::Debug for StreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSettings")
            .field("idle_timeout", &self.idle_timeout)
            .field("message_timeout", &self.message_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_message", &self.max_message)
            .finish_non_exhaustive()
    }
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
    /// The reason reported to [`Handler::dropped`].
    pub fn reason(self) -> DropReason {
        match self {
            StreamExpiry::Idle => DropReason::IdleTimeout,
            StreamExpiry::Message => DropReason::MessageTimeout,
        }
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        self.reason().as_str()
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

/// The connections of every stream transport sharing one set of limits: how many are open
/// (accepted plus opened, against `max_connections`), how many per source IP address, and
/// which connection carries messages to a given (transport, peer).
pub struct StreamPool {
    conns: Mutex<HashMap<(Transport, SocketAddr), mpsc::Sender<Bytes>>>,
    open: AtomicUsize,
    max: usize,
    per_source: Arc<SourceLimiter>,
}

impl std::fmt::Debug for StreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamPool")
            .field("open", &self.open_connections())
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl StreamPool {
    /// At most `max` connections in all, `max_per_source` accepted from one source IP.
    pub fn new(max: usize, max_per_source: usize) -> Arc<StreamPool> {
        Arc::new(StreamPool {
            conns: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
            max,
            per_source: SourceLimiter::new(max_per_source),
        })
    }

    /// Connections open now, over every transport in the pool.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The per-source limiter.
    pub fn per_source(&self) -> &Arc<SourceLimiter> {
        &self.per_source
    }

    fn table(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(Transport, SocketAddr), mpsc::Sender<Bytes>>> {
        // Nothing panics while the lock is held; a poisoned map is still consistent.
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a connection against the limit; `false` (and nothing counted) when at it.
    fn reserve(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Shared<L: StreamLayer, H: Handler> {
    layer: L,
    /// The bound listen addresses (ports resolved).
    listen: Vec<SocketAddr>,
    handler: Arc<H>,
    pool: Arc<StreamPool>,
    settings: StreamSettings,
    dispatch: Arc<Dispatch>,
    runtime: tokio::runtime::Handle,
}

impl<L: StreamLayer, H: Handler> Shared<L, H> {
    fn transport(&self) -> Transport {
        self.layer.transport()
    }

    /// This transport's listener of `dest`'s address family.
    fn listener_for(&self, dest: SocketAddr) -> Option<SocketAddr> {
        self.listen
            .iter()
            .find(|l| l.is_ipv4() == dest.is_ipv4())
            .copied()
    }

    /// The local IP a new connection for `msg` is opened from: the message's source (the
    /// address its Via names), else the listener's own address when it has a specific one,
    /// else the kernel's choice (`None`).
    fn connect_from(&self, msg: &Outbound) -> Option<IpAddr> {
        let family =
            |ip: &IpAddr| ip.is_ipv4() == msg.destination.is_ipv4() && !ip.is_unspecified();
        msg.source.filter(family).or_else(|| {
            self.listener_for(msg.destination)
                .map(|l| l.ip())
                .filter(family)
        })
    }
}

/// Connects to `dest`, from `from` when given.
async fn connect_tcp(dest: SocketAddr, from: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(ip) = from else {
        return TcpStream::connect(dest).await;
    };
    let sock = if dest.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.bind(SocketAddr::new(ip, 0))?;
    sock.connect(dest).await
}

/// A running stream transport (TCP, or TLS with its layer): listeners, connections, and
/// the [`Route`] installed in the [`Dispatch`] for its transport.
pub struct StreamTransport<L: StreamLayer, H: Handler> {
    shared: Arc<Shared<L, H>>,
    local: Vec<SocketAddr>,
    accept_tasks: Vec<JoinHandle<()>>,
}

/// A listening socket for a stream transport (`SO_REUSEADDR`, IPv6 only on IPv6).
pub fn stream_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
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

impl<L: StreamLayer, H: Handler> StreamTransport<L, H> {
    /// Binds every `listen` address, installs this transport's route in `dispatch`, and
    /// starts accepting, on the current tokio runtime. What received messages produce is
    /// sent through `dispatch`.
    pub async fn start(
        listen: &[SocketAddr],
        layer: L,
        settings: StreamSettings,
        handler: Arc<H>,
        pool: Arc<StreamPool>,
        dispatch: Arc<Dispatch>,
    ) -> io::Result<StreamTransport<L, H>> {
        let mut listeners = Vec::new();
        for &addr in listen {
            let l = TcpListener::from_std(stream_listener(addr)?)?;
            listeners.push((l.local_addr()?, l));
        }
        let shared = Arc::new(Shared {
            layer,
            listen: listeners.iter().map(|(a, _)| *a).collect(),
            handler,
            pool,
            settings,
            dispatch,
            runtime: tokio::runtime::Handle::current(),
        });
        shared.dispatch.install(
            shared.transport(),
            Arc::new(StreamRoute {
                shared: shared.clone(),
            }),
        );
        let local = listeners.iter().map(|(a, _)| *a).collect();
        let accept_tasks = listeners
            .into_iter()
            .map(|(a, l)| tokio::spawn(accept_loop(shared.clone(), a, l)))
            .collect();
        Ok(StreamTransport {
            shared,
            local,
            accept_tasks,
        })
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// Open connections in the pool (every transport sharing it).
    pub fn open_connections(&self) -> usize {
        self.shared.pool.open_connections()
    }

    /// The pool this transport's connections count against.
    pub fn pool(&self) -> &Arc<StreamPool> {
        &self.shared.pool
    }

    /// Stops accepting (open connections end when idle or at process exit).
    pub fn shutdown(&mut self) {
        for t in self.accept_tasks.drain(..) {
            t.abort();
        }
    }
}

impl<L: StreamLayer, H: Handler> Drop for StreamTransport<L, H> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct StreamRoute<L: StreamLayer, H: Handler> {
    shared: Arc<Shared<L, H>>,
}

impl<L: StreamLayer, H: Handler> Route for StreamRoute<L, H> {
    fn send(&self, msg: Outbound, now: Instant) {
        send_stream(&self.shared, msg, now);
    }
}

async fn accept_loop<L: StreamLayer, H: Handler>(
    shared: Arc<Shared<L, H>>,
    local: SocketAddr,
    l: TcpListener,
) {
    let transport = shared.transport();
    loop {
        let (stream, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("{} accept on {local}: {e}", transport.config_name());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !shared.handler.accepts_source(peer.ip()) {
            shared
                .handler
                .dropped(peer, transport, DropReason::SourceNotAllowed);
            continue;
        }
        let Some(permit) = shared.pool.per_source.try_acquire(peer.ip()) else {
            shared
                .handler
                .dropped(peer, transport, DropReason::SourceConnectionLimit);
            continue;
        };
        if !shared.pool.reserve() {
            shared
                .handler
                .dropped(peer, transport, DropReason::ConnectionLimit);
            continue;
        }
        let _ = stream.set_nodelay(true);
        // The address the peer connected to: on a listener bound to 0.0.0.0, the one
        // interface address it reached (written in Via and Record-Route).
        let conn_local = stream.local_addr().unwrap_or(local);
        let s = shared.clone();
        tokio::spawn(async move {
            match s.layer.accept(stream, peer).await {
                Ok((stream, verified)) => {
                    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
                    s.pool.table().insert((transport, peer), tx);
                    s.handler
                        .connection_opened(transport, ConnectionOrigin::Accepted);
                    run_connection(&s, stream, conn_local, peer, verified, rx).await;
                }
                Err(reason) => {
                    s.handler.dropped(peer, transport, reason);
                    s.pool.release();
                }
            }
            drop(permit);
        });
    }
}

/// Sends one message over this transport: over the open connection to its destination, or
/// a new one.
fn send_stream<L: StreamLayer, H: Handler>(
    shared: &Arc<Shared<L, H>>,
    msg: Outbound,
    now: Instant,
) {
    let transport = shared.transport();
    let dest = msg.destination;
    let existing = shared.pool.table().get(&(transport, dest)).cloned();
    if let Some(tx) = existing {
        match tx.try_send(msg.data.clone()) {
            Ok(()) => shared.handler.sent(&msg),
            // A full write queue is a burst here, not proof the peer is gone.
            Err(mpsc::error::TrySendError::Full(_)) => {
                shared
                    .handler
                    .local_send_error(dest, transport, LocalSendError::NoBuffers)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                shared.handler.on_send_error(dest, transport, now)
            }
        }
        return;
    }
    if !shared.pool.reserve() {
        // Our limit, not the destination's fault.
        shared
            .handler
            .local_send_error(dest, transport, LocalSendError::ConnectionLimit);
        return;
    }
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    // Queued now, written once connected; later messages join the same queue.
    let _ = tx.try_send(msg.data.clone());
    shared.handler.sent(&msg);
    shared.pool.table().insert((transport, dest), tx);
    let s = shared.clone();
    let from = shared.connect_from(&msg);
    shared.runtime.spawn(async move {
        let connect = async {
            let tcp = connect_tcp(dest, from).await?;
            let _ = tcp.set_nodelay(true);
            // Messages that come back over this connection (responses to what we sent) are
            // addressed to the sent-by our Via wrote: this IP at the listening port.
            let ip = tcp.local_addr()?.ip();
            let local = match s.listener_for(dest) {
                Some(l) => SocketAddr::new(ip, l.port()),
                None => tcp.local_addr()?,
            };
            let stream = s.layer.connect(tcp, dest).await?;
            io::Result::Ok((stream, local))
        };
        match tokio::time::timeout(s.settings.connect_timeout, connect).await {
            Ok(Ok((stream, local))) => {
                s.handler
                    .connection_opened(transport, ConnectionOrigin::Opened);
                run_connection(&s, stream, local, dest, false, rx).await;
            }
            failed => {
                s.pool.table().remove(&(transport, dest));
                s.pool.release();
                match failed {
                    Ok(Err(e)) => {
                        report_send_error(&*s.handler, dest, transport, &e, Instant::now())
                    }
                    // Timed out: the destination's fault.
                    _ => s.handler.on_send_error(dest, transport, Instant::now()),
                }
            }
        }
    });
}

/// Serves one registered connection until it closes: reads, frames and handles messages,
/// writes what is queued for it; then unregisters it and frees its slot.
async fn run_connection<L: StreamLayer, H: Handler>(
    shared: &Arc<Shared<L, H>>,
    stream: L::Stream,
    local: SocketAddr,
    peer: SocketAddr,
    verified_peer: bool,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let transport = shared.transport();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let writer_handler = shared.handler.clone();
    let write_task = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if let Err(e) = writer.write_all(&data).await {
                report_send_error(&*writer_handler, peer, transport, &e, Instant::now());
                break;
            }
        }
        let _ = writer.shutdown().await;
    });

    let mut buf = BytesMut::with_capacity(8192);
    let mut out = Vec::new();
    let cap = shared.settings.max_message;
    let mut deadlines = StreamDeadlines::new(
        shared.settings.idle_timeout,
        shared.settings.message_timeout,
        Instant::now(),
    );
    'conn: loop {
        let (until, expiry) = deadlines.next();
        let until = tokio::time::Instant::from_std(until);
        let read = tokio::time::timeout_at(until, reader.read_buf(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Err(_) => {
                shared.handler.dropped(peer, transport, expiry.reason());
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
                send_stream(
                    shared,
                    Outbound {
                        data: Bytes::from_static(b"\r\n"),
                        destination: peer,
                        transport,
                        source: None,
                    },
                    now,
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
            match (shared.settings.framer)(&buf) {
                Ok(Some(n)) if n > 0 && n <= buf.len() => {
                    let data = buf.split_to(n).freeze();
                    deadlines.message_done(now);
                    shared.handler.handle(
                        Inbound {
                            data,
                            source: peer,
                            local,
                            transport,
                            verified_peer,
                            queued: None,
                        },
                        now,
                        &mut out,
                    );
                    shared.dispatch.send_all(&mut out, now);
                }
                Ok(Some(_)) => {
                    shared
                        .handler
                        .dropped(peer, transport, DropReason::Malformed("framing"));
                    break 'conn;
                }
                Ok(None) => {
                    if buf.len() > cap {
                        shared
                            .handler
                            .dropped(peer, transport, DropReason::TooLarge);
                        break 'conn;
                    }
                    break;
                }
                Err(reason) => {
                    shared
                        .handler
                        .dropped(peer, transport, DropReason::Malformed(reason));
                    break 'conn;
                }
            }
        }
        deadlines.buffered(!buf.is_empty(), now);
    }
    shared.pool.table().remove(&(transport, peer));
    shared.pool.release();
    shared.handler.connection_closed(transport);
    // The queue's sender is gone from the table: the writer drains what is queued, then ends.
    let _ = write_task.await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
