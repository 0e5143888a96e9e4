//! Issue 9, "Admin API" and "TCP", end to end: the built `fraudwall` binary on loopback, driven
//! by raw HTTP and TCP clients (the abuse here is below what sipp can be told to do).
//!
//! * `POST /reload` needs a bearer token from `admin.tokens_file` (401 without or with a wrong
//!   one, 200 with the right one, a rotated file picked up without a restart), a browser's
//!   cross-origin request is refused even with a valid token, and without a tokens file the
//!   endpoint is off (403); `/metrics` stays open.
//! * A client sending one byte a second is closed at `sip.tcp_message_timeout`.
//! * One source opening more than `sip.tcp_max_connections_per_source` connections is
//!   refused while a second loopback source (127.0.0.2) is still served.
//! * A source outside `sip.allowed_sources` is closed at accept (TCP) and unanswered (UDP).
//!
//! Every client is bounded in time (read timeouts, deadlines of a few seconds).

mod sipp_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use sipp_support::{Options, Setup};

const T1: &str = "e2e-token-one-0123456789abcdef0123456789";
const T2: &str = "e2e-token-two-fedcba9876543210fedcba9876";

/// Writes the tokens file by renaming a new one over it, as an operator should.
fn publish_tokens(path: &Path, tokens: &[&str]) {
    let tmp = path.with_extension("tmp");
    let mut text = String::from("# fraudwall admin tokens\n");
    for t in tokens {
        text.push_str(t);
        text.push('\n');
    }
    std::fs::write(&tmp, text).expect("write tokens");
    std::fs::rename(&tmp, path).expect("rename tokens");
}

/// `POST /reload` with extra header lines; returns (status, whole response).
fn post_reload(s: &Setup, headers: &str) -> (u16, String) {
    let mut c = TcpStream::connect(("127.0.0.1", s.admin)).expect("connect admin");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        c,
        "POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

#[test]
fn reload_needs_a_bearer_token_and_refuses_cross_origin_requests() {
    let tokens = tempfile::tempdir().expect("tempdir");
    let path = tokens.path().join("admin.tokens");
    publish_tokens(&path, &[T1]);
    let extra = format!("[admin]\ntokens_file = \"{}\"\n", path.display());
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            extra_config: &extra,
            ..Options::default()
        },
    );

    let (code, r) = post_reload(&s, "");
    assert_eq!(code, 401, "no token: {r}");
    assert!(
        r.to_ascii_lowercase().contains("www-authenticate: bearer"),
        "{r}"
    );
    let (code, r) = post_reload(&s, &bearer(T2));
    assert_eq!(code, 401, "wrong token: {r}");
    let (code, r) = post_reload(&s, &bearer(T1));
    assert_eq!(code, 200, "right token: {r}");

    // A browser-style cross-origin request (a "simple" request: no preflight) with a valid
    // token is refused all the same.
    let browser = format!(
        "{}Origin: http://evil.example\r\nContent-Type: text/plain\r\n",
        bearer(T1)
    );
    let (code, r) = post_reload(&s, &browser);
    assert_eq!(code, 403, "cross-origin: {r}");
    let (code, r) = post_reload(&s, &format!("{}Sec-Fetch-Site: cross-site\r\n", bearer(T1)));
    assert_eq!(code, 403, "cross-site fetch: {r}");

    // Read-only endpoints stay open, and count the refusals.
    let m = s.http("/metrics");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert_eq!(
        s.metric("fraudwall_admin_refused_total{reason=\"missing_token\"}"),
        1.0
    );
    assert_eq!(
        s.metric("fraudwall_admin_refused_total{reason=\"invalid_token\"}"),
        1.0
    );
    assert_eq!(
        s.metric("fraudwall_admin_refused_total{reason=\"cross_origin\"}"),
        2.0
    );
    assert!(s.http("/status").starts_with("HTTP/1.1 200"));

    // Rotation: the new token works and the old one stops working, without a restart.
    publish_tokens(&path, &[T2]);
    let rotated = Instant::now();
    loop {
        let (code, r) = post_reload(&s, &bearer(T2));
        if code == 200 {
            break;
        }
        assert_eq!(code, 401, "{r}");
        assert!(
            rotated.elapsed() < Duration::from_secs(5),
            "rotated token not picked up within 5 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "rotated token accepted {:?} after the rename",
        rotated.elapsed()
    );
    let (code, r) = post_reload(&s, &bearer(T1));
    assert_eq!(code, 401, "revoked token: {r}");
}

/// Connects from `source` (an address on loopback) to `to`.
fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    let from: SocketAddr = format!("{source}:0").parse().expect("addr");
    sock.bind(&from.into()).expect("bind client");
    sock.connect_timeout(&to.into(), Duration::from_secs(2))
        .expect("connect");
    sock.into()
}

/// Whether the peer closes `c` within `limit` (reads and discards anything it sends first).
fn closed_within(c: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        c.set_read_timeout(Some(left)).expect("timeout");
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// An OPTIONS to the proxy itself over `c`; the status line of its answer.
fn options(c: &mut TcpStream, s: &Setup, tag: &str) -> String {
    let local = c.local_addr().expect("local");
    let msg = format!(
        "OPTIONS sip:{ip}:{port} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-{tag}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{lip}>;tag={tag}\r\n\
         To: <sip:{ip}:{port}>\r\n\
         Call-ID: {tag}@e2e-admin-tcp\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        ip = s.ip,
        port = s.sip,
        lip = local.ip()
    );
    c.write_all(msg.as_bytes()).expect("send OPTIONS");
    c.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.lines().next().unwrap_or("").to_string()
}

#[test]
fn a_byte_a_second_is_closed_at_the_message_deadline() {
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            sip_config: "tcp_message_timeout = \"2s\"\n",
            ..Options::default()
        },
    );
    // No tokens file on this node: state-changing endpoints are off, whatever is sent.
    let (code, r) = post_reload(&s, &bearer(T1));
    assert_eq!(code, 403, "{r}");
    assert!(r.contains("admin.tokens_file"), "{r}");

    let to: SocketAddr = format!("127.0.0.1:{}", s.sip).parse().expect("addr");
    let mut c = connect_from("127.0.0.1", to);
    let first = Instant::now();
    let mut closed = false;
    for &b in b"INVITE sip:+8613900000000@127.0.0.1 SIP/2.0\r\n" {
        if c.write_all(&[b]).is_err() || closed_within(&mut c, Duration::from_secs(1)) {
            closed = true;
            break;
        }
        if first.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let took = first.elapsed();
    assert!(closed, "a byte a second kept the connection {took:?}");
    eprintln!("slowloris connection closed {took:?} after its first byte (deadline 2 s)");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(
        s.metric("fraudwall_dropped_total{reason=\"message_timeout\"}"),
        1.0
    );

    // A client sending whole messages is served.
    let mut ok = connect_from("127.0.0.1", to);
    assert_eq!(options(&mut ok, &s, "whole"), "SIP/2.0 200 OK");
}

#[test]
fn one_source_cannot_lock_others_out() {
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            sip_config: "tcp_max_connections_per_source = 4\n",
            ..Options::default()
        },
    );
    let to: SocketAddr = format!("127.0.0.1:{}", s.sip).parse().expect("addr");
    let mut held = Vec::new();
    for i in 0..4 {
        let mut c = connect_from("127.0.0.1", to);
        assert_eq!(
            options(&mut c, &s, &format!("held{i}")),
            "SIP/2.0 200 OK",
            "connection {i} within the limit"
        );
        held.push(c);
    }
    let mut over = connect_from("127.0.0.1", to);
    assert!(
        closed_within(&mut over, Duration::from_secs(3)),
        "a fifth connection from one source was kept"
    );
    assert_eq!(
        s.metric("fraudwall_dropped_total{reason=\"source_connection_limit\"}"),
        1.0
    );
    // Another source is still served.
    let mut other = connect_from("127.0.0.2", to);
    assert_eq!(options(&mut other, &s, "other"), "SIP/2.0 200 OK");
    // The held ones still work.
    assert_eq!(options(&mut held[0], &s, "again"), "SIP/2.0 200 OK");
}

/// `sip.allowed_sources`: a TCP connection from elsewhere is closed at accept, before a byte
/// is read, and a datagram from elsewhere gets no answer; both are counted, and a listed
/// source is served over both transports.
#[test]
fn sources_outside_allowed_sources_are_refused_at_accept_and_unanswered() {
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            sip_config: "allowed_sources = [\"127.0.0.3\"]\n",
            ..Options::default()
        },
    );
    let to: SocketAddr = format!("127.0.0.1:{}", s.sip).parse().expect("addr");
    let mut stranger = connect_from("127.0.0.2", to);
    assert!(
        closed_within(&mut stranger, Duration::from_secs(3)),
        "a connection from outside allowed_sources was kept"
    );
    let mut listed = connect_from("127.0.0.3", to);
    assert_eq!(options(&mut listed, &s, "listed-tcp"), "SIP/2.0 200 OK");

    let udp_options = |from: &str, tag: &str| -> Option<String> {
        let sock = std::net::UdpSocket::bind((from, 0)).expect("bind udp");
        sock.set_read_timeout(Some(Duration::from_millis(700)))
            .expect("timeout");
        let local = sock.local_addr().expect("local");
        let msg = format!(
            "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{tag}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@{from}>;tag={tag}\r\nTo: <sip:127.0.0.1:{port}>\r\n\
             Call-ID: {tag}@e2e-sources\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            port = s.sip
        );
        sock.send_to(msg.as_bytes(), to).expect("send");
        let mut buf = [0u8; 2048];
        let n = sock.recv(&mut buf).ok()?;
        Some(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        )
    };
    assert_eq!(udp_options("127.0.0.2", "stranger-udp"), None);
    assert_eq!(
        udp_options("127.0.0.3", "listed-udp").as_deref(),
        Some("SIP/2.0 200 OK")
    );
    assert_eq!(
        s.metric("fraudwall_dropped_total{reason=\"source_not_allowed\"}"),
        2.0
    );
    assert_eq!(s.metric("fraudwall_source_refused_total"), 1.0);
}
