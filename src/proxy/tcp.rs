//! TCP transport: the generic stream loop ([`super::stream`]) over plain TCP sockets
//! ([`PlainTcp`]).
//!
//! Its connection limits live in a [`StreamPool`] that the runtime shares with the TLS
//! transport, so `sip.tcp_max_connections` bounds both. See [`super::stream`] for framing,
//! deadlines, limits and the connection table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::stream::{PlainTcp, StreamPool, StreamSettings, StreamTransport};
use super::{Dispatch, Handler};

pub use super::stream::{Framer, WRITE_QUEUE};

/// TCP transport settings.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Addresses to listen on (port 0 picks a free port).
    pub listen: Vec<SocketAddr>,
    /// Connections open at once (accepted plus outbound), shared with TLS (see
    /// [`TcpConfig::pool`]).
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

impl TcpConfig {
    /// A connection pool with these limits (pass the same one to the TLS transport).
    pub fn pool(&self) -> Arc<StreamPool> {
        StreamPool::new(self.max_connections, self.max_connections_per_source)
    }

    /// The stream settings for these timeouts and this framing.
    pub fn settings(&self, framer: Framer) -> StreamSettings {
        StreamSettings {
            idle_timeout: self.idle_timeout,
            message_timeout: self.message_timeout,
            connect_timeout: self.connect_timeout,
            max_message: self.max_message,
            framer,
        }
    }
}

/// The running TCP transport.
pub type TcpTransport<H> = StreamTransport<PlainTcp, H>;

/// Binds every TCP listen address, installs the TCP route in `dispatch` and starts
/// accepting on the current tokio runtime; connections count against `pool`.
pub async fn start_tcp<H: Handler>(
    config: &TcpConfig,
    handler: Arc<H>,
    framer: Framer,
    pool: Arc<StreamPool>,
    dispatch: Arc<Dispatch>,
) -> std::io::Result<TcpTransport<H>> {
    StreamTransport::start(
        &config.listen,
        PlainTcp,
        config.settings(framer),
        handler,
        pool,
        dispatch,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{DropReason, Inbound, LocalSendError, Outbound, Transport};
    use std::sync::Mutex;
    use std::time::Instant;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

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
                source: None,
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
        fn dropped(&self, _s: SocketAddr, _t: Transport, reason: DropReason) {
            self.events
                .lock()
                .unwrap()
                .push(format!("dropped {}", reason.as_str()));
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
        let dispatch = Dispatch::new(h.clone());
        (
            start_tcp(&cfg, h.clone(), line_framer(), cfg.pool(), dispatch)
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
            if t.pool().per_source().open("127.0.0.1".parse().unwrap()) < 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut again = tokio::io::BufReader::new(from("127.0.0.1").await.unwrap());
        again.get_mut().write_all(b"ping\n").await.unwrap();
        assert_eq!(read_line(&mut again).await, "re:ping\n");
    }
}
