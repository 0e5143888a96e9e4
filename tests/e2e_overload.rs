//! Issue 14, overload policy end to end: the built `fraudwall` binary with one UDP worker,
//! a backlog injected by stopping the process (SIGSTOP) while a caller and a next hop keep
//! sending, then letting it run (SIGCONT). Every queued datagram then carries a kernel
//! receive timestamp far older than `overload.max_queue_delay`, so:
//!
//! * each new INVITE is answered `503 Service Unavailable` with `Retry-After`, never
//!   forwarded, and counted in `fraudwall_overload_shed_total{action="reject"}`;
//! * the BYEs and the next hop's responses queued with them are relayed all the same;
//! * once the backlog has drained a new INVITE is forwarded again (recovery).
//!
//! Loopback only, bounded in datagrams (a few dozen) and time (every wait has a deadline).

mod sipp_support;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use sipp_support::{Options, Setup, CLEAN};

/// An INVITE (or, with `to_tag`, an in-dialog `method`) from `me` through the proxy.
fn request(method: &str, uri: &str, me: SocketAddr, n: usize, to_tag: Option<&str>) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-ovl-{method}-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+{CLEAN}@127.0.0.1>;tag=caller-{n}\r\n\
         To: <sip:+15550001@127.0.0.1>{to_tag}\r\n\
         Call-ID: ovl-{n}@e2e-overload\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:+{CLEAN}@{me}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A response to the forwarded request `req`, as the next hop sends it (Vias copied).
fn response(req: &str, status: &str) -> String {
    let mut r = format!("SIP/2.0 {status}\r\n");
    for l in req.split("\r\n") {
        let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
        if matches!(name.as_str(), "via" | "from" | "call-id" | "cseq") {
            r.push_str(l);
            r.push_str("\r\n");
        }
        if name == "to" {
            r.push_str(l);
            r.push_str(";tag=callee\r\n");
        }
    }
    r.push_str("Content-Length: 0\r\n\r\n");
    r
}

/// Every datagram arriving on `sock` until `quiet` passes without one (at most `limit`).
fn drain(sock: &UdpSocket, quiet: Duration, limit: Duration) -> Vec<String> {
    sock.set_read_timeout(Some(quiet)).expect("timeout");
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 65535];
    let mut got = Vec::new();
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    got
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn a_backlog_sheds_new_invites_with_503_and_relays_byes_and_responses() {
    let hop = UdpSocket::bind("127.0.0.1:0").expect("hop");
    let hop_addr = hop.local_addr().expect("addr");
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            extra_config: "[overload]\nmax_queue_delay = \"20ms\"\nsustain = \"0s\"\n\
                           resume_queue_delay = \"2ms\"\ndrop_queue_delay = \"0s\"\nretry_after = 7\n",
            extra_args: vec![
                "--workers".into(),
                "1".into(),
                "--next-hop".into(),
                hop_addr.to_string(),
            ],
            next_hop: false,
            ..Options::default()
        },
    );
    let proxy: SocketAddr = format!("127.0.0.1:{}", s.sip).parse().expect("addr");
    let uri = format!("sip:+15550001@{proxy}");
    let caller = UdpSocket::bind("127.0.0.1:0").expect("caller");
    let me = caller.local_addr().expect("addr");

    // A call set up before the backlog: its INVITE reaches the hop.
    caller
        .send_to(request("INVITE", &uri, me, 0, None).as_bytes(), proxy)
        .expect("send");
    let first = drain(&hop, Duration::from_millis(500), Duration::from_secs(5));
    let forwarded = first
        .iter()
        .find(|m| m.starts_with("INVITE "))
        .expect("the first INVITE is forwarded")
        .clone();

    // The node stops; callers and the hop keep sending.
    let pid = s.fw.0.as_ref().expect("child").id();
    signal(pid, "STOP");
    const NEW: usize = 30;
    const BYES: usize = 10;
    for n in 1..=NEW {
        caller
            .send_to(request("INVITE", &uri, me, n, None).as_bytes(), proxy)
            .expect("send");
    }
    let bye_uri = format!("sip:+15550001@{hop_addr}");
    for n in 100..100 + BYES {
        caller
            .send_to(
                request("BYE", &bye_uri, me, n, Some("callee")).as_bytes(),
                proxy,
            )
            .expect("send");
    }
    for status in ["180 Ringing", "200 OK"] {
        hop.send_to(response(&forwarded, status).as_bytes(), proxy)
            .expect("send");
    }
    std::thread::sleep(Duration::from_millis(100));
    signal(pid, "CONT");

    let at_caller = drain(&caller, Duration::from_millis(700), Duration::from_secs(10));
    let at_hop = drain(&hop, Duration::from_millis(300), Duration::from_secs(5));
    let unavailable: Vec<_> = at_caller
        .iter()
        .filter(|m| m.starts_with("SIP/2.0 503 Service Unavailable\r\n"))
        .collect();
    assert_eq!(
        unavailable.len(),
        NEW,
        "every new INVITE answered 503: {at_caller:#?}"
    );
    assert!(unavailable
        .iter()
        .all(|m| m.contains("\r\nRetry-After: 7\r\n")));
    for status in ["SIP/2.0 180 Ringing", "SIP/2.0 200 OK"] {
        assert!(
            at_caller.iter().any(|m| m.starts_with(status)),
            "{status} relayed to the caller: {at_caller:#?}"
        );
    }
    assert_eq!(
        at_hop.iter().filter(|m| m.starts_with("BYE ")).count(),
        BYES,
        "every BYE relayed: {at_hop:#?}"
    );
    assert!(
        !at_hop.iter().any(|m| m.starts_with("INVITE ")),
        "no shed INVITE forwarded: {at_hop:#?}"
    );

    // Recovered: a fresh INVITE waits for nothing and is forwarded.
    caller
        .send_to(request("INVITE", &uri, me, 999, None).as_bytes(), proxy)
        .expect("send");
    let after = drain(&hop, Duration::from_millis(500), Duration::from_secs(5));
    assert!(
        after.iter().any(|m| m.starts_with("INVITE ")),
        "forwarded after the backlog: {after:#?}"
    );

    let series = "fraudwall_overload_shed_total{action=\"reject\"}";
    assert_eq!(s.metric(series), NEW as f64);
    // The timer publishes the state once a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.metric("fraudwall_overload_episodes_total") < 1.0 {
        assert!(Instant::now() < deadline, "{}", s.http("/metrics"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.metric("fraudwall_overload"), 0.0);
    assert!(s.metric("fraudwall_queue_delay_seconds_bucket{le=\"+Inf\"}") >= (NEW + BYES) as f64);
    assert!(s.metric("fraudwall_udp_worker_messages_total{worker=\"0\"}") >= (NEW + BYES) as f64);
}
