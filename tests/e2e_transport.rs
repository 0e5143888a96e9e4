//! Issue 10, "One dispatch and a runtime-owned clock" and "Addresses that a peer can reach",
//! end to end: the built `fraudwall` binary on loopback, with next hops and callers written
//! here over raw sockets.
//!
//! * With `sip.transports = ["tcp"]` the runtime's timer probes a TCP next hop: OPTIONS
//!   arrive over TCP, and a hop that stops answering is marked down in `/status`.
//! * On a listener bound to `0.0.0.0`, a request that arrives at 127.0.0.2 is forwarded with
//!   `Via: SIP/2.0/UDP 127.0.0.2:PORT` (and sent from 127.0.0.2), and the relayed answer
//!   reaches the caller from 127.0.0.2:PORT; over TCP, the Via names 127.0.0.2 too.
//!
//! Every socket has a read timeout; every wait is bounded.

mod sipp_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use sipp_support::{Options, Setup, CLEAN};

/// The header lines of `msg` named `name` (case-insensitive, long form).
fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
        .collect()
}

/// A response to `req` with `code` (Via, From, To, Call-ID and CSeq copied).
fn answer(req: &str, code: u16, reason: &str) -> String {
    let mut r = format!("SIP/2.0 {code} {reason}\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for l in headers(req, name) {
            r.push_str(l);
            r.push_str("\r\n");
        }
    }
    r.push_str("Content-Length: 0\r\n\r\n");
    r
}

/// An INVITE from a clean caller at `me`, addressed to the proxy at `proxy`.
fn invite(me: SocketAddr, proxy: SocketAddr, transport: &str, tag: &str) -> String {
    format!(
        "INVITE sip:+15550001@{proxy} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {me};branch=z9hG4bK-{tag}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+{CLEAN}@{ip}>;tag={tag}\r\n\
         To: <sip:+15550001@{ip}>\r\n\
         Call-ID: {tag}@e2e-transport\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:+{CLEAN}@{me}>\r\n\
         Content-Length: 0\r\n\r\n",
        ip = proxy.ip(),
    )
}

/// Reads one SIP message (no body: up to the blank line) off a stream, within 5 s.
fn read_message(c: &mut TcpStream) -> String {
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match c.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The first datagram on `sock` within `wait` that starts with `prefix`, with its source.
fn recv_starting(sock: &UdpSocket, prefix: &str, wait: Duration) -> Option<(String, SocketAddr)> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 65535];
    while Instant::now() < deadline {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with(prefix) {
                return Some((text, from));
            }
        }
    }
    None
}

/// Whether `/status` lists the first next hop as healthy.
fn hop_healthy(s: &Setup) -> Option<bool> {
    let r = s.http("/status");
    let body = r.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["next_hops"][0]["healthy"].as_bool()
}

#[test]
fn tcp_only_mode_probes_its_next_hops() {
    let hop = TcpListener::bind("127.0.0.1:0").expect("hop");
    let hop_addr = hop.local_addr().expect("addr");
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            sip_config: "transports = [\"tcp\"]\n",
            // Still in [actions]: the warn service must use a running transport.
            extra_config: "warn_transport = \"tcp\"\n[proxy]\nnext_hop_transport = \"tcp\"\n\
                           [health]\nprobe_interval = \"1s\"\nmax_missed = 1\ndown_for = \"60s\"\n",
            extra_args: vec!["--next-hop".into(), hop_addr.to_string()],
            next_hop: false,
            ..Options::default()
        },
    );
    assert_eq!(hop_healthy(&s), Some(true), "{}", s.http("/status"));
    // The proxy learns its sent-by from the first message it receives (no `advertise`):
    // an OPTIONS to itself over TCP.
    let mut c = TcpStream::connect(("127.0.0.1", s.sip)).expect("connect proxy");
    let me = c.local_addr().expect("local");
    let opts = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bK-seed\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=seed\r\nTo: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: seed@e2e-transport\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        port = s.sip
    );
    c.write_all(opts.as_bytes()).expect("send OPTIONS");
    let _ = read_message(&mut c);

    // The runtime's timer probes the hop over TCP, with no UDP transport running.
    hop.set_nonblocking(false).expect("blocking");
    let (mut conn, _) = {
        let (tx, rx) = std::sync::mpsc::channel();
        let l = hop.try_clone().expect("clone");
        std::thread::spawn(move || {
            let _ = tx.send(l.accept());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("no probe connection within 10 s")
            .expect("accept")
    };
    let probe = read_message(&mut conn);
    assert!(probe.starts_with("OPTIONS "), "probe: {probe}");
    assert!(
        headers(&probe, "Via")
            .first()
            .is_some_and(|v| v.contains("SIP/2.0/TCP 127.0.0.1:")),
        "probe Via: {probe}"
    );
    conn.write_all(answer(&probe, 200, "OK").as_bytes())
        .expect("answer probe");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hop_healthy(&s), Some(true));

    // The hop stops answering: the next probes go unanswered and it is marked down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hop_healthy(&s) != Some(false) {
        assert!(
            Instant::now() < deadline,
            "an unanswering hop is still healthy: {}",
            s.http("/status")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts fraudwall on `0.0.0.0:PORT` with `hop` as next hop over `transport`.
fn wildcard_node(hop: SocketAddr, transport: &str) -> Setup {
    let extra = format!("[proxy]\nnext_hop_transport = \"{transport}\"\n");
    Setup::start_with(
        "0.0.0.0",
        Options {
            extra_config: &extra,
            extra_args: vec!["--next-hop".into(), hop.to_string()],
            next_hop: false,
            ..Options::default()
        },
    )
}

#[test]
fn a_wildcard_udp_listener_names_and_answers_from_the_arrival_address() {
    let hop = UdpSocket::bind("127.0.0.1:0").expect("hop");
    let s = wildcard_node(hop.local_addr().expect("addr"), "udp");
    let arrival: SocketAddr = format!("127.0.0.2:{}", s.sip).parse().expect("addr");
    let caller = UdpSocket::bind("127.0.0.1:0").expect("caller");
    let me = caller.local_addr().expect("addr");
    caller
        .send_to(invite(me, arrival, "UDP", "wild-udp").as_bytes(), arrival)
        .expect("send INVITE");

    let (inv, from) = recv_starting(&hop, "INVITE ", Duration::from_secs(5))
        .expect("the INVITE reaches the next hop");
    let top = headers(&inv, "Via")[0];
    assert!(
        top.contains(&format!("SIP/2.0/UDP {arrival};")),
        "Via names the arrival address: {top}\n{inv}"
    );
    assert_eq!(from, arrival, "forwarded from the arrival address");

    hop.send_to(answer(&inv, 180, "Ringing").as_bytes(), arrival)
        .expect("send 180");
    let (ringing, from) = recv_starting(&caller, "SIP/2.0 180", Duration::from_secs(5))
        .expect("the 180 reaches the caller");
    assert_eq!(
        from, arrival,
        "answered from the arrival address: {ringing}"
    );
    assert_eq!(headers(&ringing, "Via").len(), 1, "{ringing}");
}

#[test]
fn a_wildcard_tcp_listener_names_the_arrival_address() {
    let hop = TcpListener::bind("127.0.0.1:0").expect("hop");
    let s = wildcard_node(hop.local_addr().expect("addr"), "tcp");
    let arrival: SocketAddr = format!("127.0.0.2:{}", s.sip).parse().expect("addr");
    let mut c = TcpStream::connect(arrival).expect("connect");
    let me = c.local_addr().expect("addr");
    c.write_all(invite(me, arrival, "TCP", "wild-tcp").as_bytes())
        .expect("send INVITE");

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Skip probe connections' OPTIONS: take the connection that carries the INVITE.
        loop {
            let Ok((mut conn, _)) = hop.accept() else {
                return;
            };
            let m = read_message(&mut conn);
            if m.starts_with("INVITE ") {
                let _ = tx.send((conn, m));
                return;
            }
        }
    });
    let (mut conn, inv) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the INVITE reaches the next hop");
    let top = headers(&inv, "Via")[0];
    assert!(
        top.contains(&format!("SIP/2.0/TCP {arrival};")),
        "Via names the arrival address: {top}\n{inv}"
    );
    conn.write_all(answer(&inv, 180, "Ringing").as_bytes())
        .expect("send 180");
    let ringing = read_message(&mut c);
    assert!(ringing.starts_with("SIP/2.0 180"), "{ringing}");
    assert_eq!(c.peer_addr().expect("peer"), arrival);
}
