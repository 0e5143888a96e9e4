//! The acceptance path of the central feed, with the real binary on loopback:
//!
//! ```text
//! fraudwall publish --feed-dir F --key op.key new.fwb
//! fraudwall feed serve --listen 127.0.0.1:P F
//! fraudwall run --feed http://127.0.0.1:P/manifest.json --feed-key op.pub --feed-poll 2s \
//!     --cache-dir C --listen 127.0.0.1:S --next-hop 127.0.0.1:N --admin 127.0.0.1:A
//! ```
//!
//! A number published as `block` is refused (608) by the running node within the poll
//! interval plus one second, with no restart; `/status` and `/metrics` show the feed; `POST
//! /reload` polls at once; a restarted node serves its cache while the feed is down, and a
//! bad feed (tampered manifest) leaves the old list answering.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod feed_support;

use feed_support::{
    free_port, http, manifest_url, metric, status, wait_for_tcp, wait_for_version, Guard, Lab, BIN,
};

const L1: &str =
    "+8613800000001,block,impersonation,95,police\n+8613800000002,tag,loan,70,reports\n";
const NEW_FRAUD: &str = "8613800000003";
/// The node's admin bearer token (`admin.tokens_file`), which `POST /reload` needs.
const ADMIN_TOKEN: &str = "feed-run-admin-token-0123456789abcdef";

struct Node {
    child: Guard,
    sip: SocketAddr,
    admin: u16,
    switch: UdpSocket,
    caller: UdpSocket,
}

fn run_node(lab: &Lab, feed_port: u16, cache: &Path) -> Node {
    run_node_polling(lab, feed_port, cache, "2s")
}

fn run_node_polling(lab: &Lab, feed_port: u16, cache: &Path, poll: &str) -> Node {
    let (sip, admin) = (free_port(), free_port());
    let switch = UdpSocket::bind("127.0.0.1:0").expect("switch socket");
    let switch_addr = switch.local_addr().expect("addr");
    let tokens = lab.path("admin.tokens");
    std::fs::write(&tokens, format!("{ADMIN_TOKEN}\n")).expect("write tokens");
    let config = lab.path("node.toml");
    std::fs::write(&config, format!("[admin]\ntokens_file = \"{tokens}\"\n")).expect("config");
    let child = Command::new(BIN)
        .args([
            "run",
            "--config",
            &config,
            "--feed",
            &manifest_url(feed_port),
            "--feed-key",
            &lab.path("op.pub"),
            "--feed-poll",
            poll,
            "--cache-dir",
            &cache.display().to_string(),
            "--listen",
            &format!("127.0.0.1:{sip}"),
            "--next-hop",
            &switch_addr.to_string(),
            "--admin",
            &format!("127.0.0.1:{admin}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fraudwall run");
    let child = Guard(child);
    wait_for_tcp(admin);
    let caller = UdpSocket::bind("127.0.0.1:0").expect("caller socket");
    caller
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    switch
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    Node {
        child,
        sip: format!("127.0.0.1:{sip}").parse().expect("addr"),
        admin,
        switch,
        caller,
    }
}

/// What became of one INVITE.
#[derive(Debug, PartialEq)]
enum Fate {
    /// Answered with this status by the proxy.
    Answered(u16),
    /// Forwarded to the switch.
    Forwarded,
    /// Nothing seen (yet).
    Nothing,
}

fn invite(node: &Node, caller: &str, seq: u32) -> Fate {
    let local = node.caller.local_addr().expect("addr");
    let id = format!("feed-{seq}-{}", std::process::id());
    let msg = format!(
        "INVITE sip:+8613900000000@{sip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+{caller}@127.0.0.1>;tag={id}\r\n\
         To: <sip:+8613900000000@127.0.0.1>\r\n\
         Call-ID: {id}@feed.test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{local}>\r\n\
         Content-Length: 0\r\n\r\n",
        sip = node.sip
    );
    node.caller.send_to(msg.as_bytes(), node.sip).expect("send");
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        if let Ok((n, _)) = node.caller.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            if text.contains(&id) {
                if let Some(code) = text
                    .strip_prefix("SIP/2.0 ")
                    .and_then(|r| r.get(..3))
                    .and_then(|c| c.parse::<u16>().ok())
                {
                    if code >= 200 {
                        return Fate::Answered(code);
                    }
                }
            }
        }
        if let Ok((n, _)) = node.switch.recv_from(&mut buf) {
            if String::from_utf8_lossy(&buf[..n]).contains(&id) {
                return Fate::Forwarded;
            }
        }
    }
    Fate::Nothing
}

#[test]
fn a_published_number_is_blocked_within_the_poll_interval_plus_one_second() {
    acceptance(Lab::feed_serve);
}

#[test]
fn the_same_through_nginx() {
    acceptance(Lab::nginx);
}

#[test]
fn sighup_polls_at_once() {
    let lab = Lab::new();
    lab.publish("l1", L1, &[]);
    let (_feed, port) = lab.feed_serve();
    let node = run_node_polling(&lab, port, &lab.dir.path().join("cache"), "1h");
    wait_for_version(node.admin, 1);
    lab.publish(
        "l2",
        &format!("{L1}+{NEW_FRAUD},block,impersonation,90,police\n"),
        &[],
    );
    let pid = node.child.0.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait_for_version(node.admin, 2);
    assert_eq!(invite(&node, NEW_FRAUD, 1), Fate::Answered(608));
}

/// The acceptance path against the origin `serve` starts.
fn acceptance(serve: fn(&Lab) -> (Guard, u16)) {
    let lab = Lab::new();
    lab.publish("l1", L1, &[]);
    let (feed, port) = serve(&lab);
    let cache = lab.dir.path().join("cache");
    let node = run_node(&lab, port, &cache);
    wait_for_version(node.admin, 1);
    assert_eq!(invite(&node, "8613800000001", 1), Fate::Answered(608));
    assert_eq!(invite(&node, NEW_FRAUD, 2), Fate::Forwarded);

    // The operator adds a fraud number and publishes; the node enforces it within 2 s + 1 s.
    // (Timed from before compiling and publishing: an upper bound.)
    let published = Instant::now();
    lab.publish(
        "l2",
        &format!("{L1}+{NEW_FRAUD},block,impersonation,90,police\n"),
        &[],
    );
    let mut seq = 10;
    loop {
        let fate = invite(&node, NEW_FRAUD, seq);
        if fate == Fate::Answered(608) {
            break;
        }
        assert!(
            published.elapsed() < Duration::from_secs(3),
            "not blocked 3 s after publishing (last: {fate:?})"
        );
        seq += 1;
    }
    let took = published.elapsed();
    eprintln!("new number enforced {took:?} after publishing (poll 2s)");
    assert!(took <= Duration::from_secs(3));

    let s = status(node.admin);
    assert_eq!(s["feed"]["source"], "feed", "{s}");
    assert_eq!(s["feed"]["active_version"], 2, "{s}");
    assert!(s["feed"]["age_secs"].is_u64(), "{s}");
    let (_, metrics) = http(node.admin, "GET", "/metrics");
    for name in [
        "fraudwall_feed_active_version{list=\"blocklist\"} 2",
        "fraudwall_feed_last_success_timestamp_seconds",
        "fraudwall_feed_swap_duration_seconds",
        "fraudwall_feed_update_errors_total{list=\"blocklist\",reason=\"bad_signature\"} 0",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }

    // A tampered manifest is refused; the old list keeps answering.
    let manifest = lab.dir.path().join("feed/manifest.json");
    let text = std::fs::read_to_string(&manifest).expect("read");
    std::fs::write(&manifest, text.replace("\"version\": 2", "\"version\": 99")).expect("tamper");
    assert_eq!(http(node.admin, "POST", "/reload").0, 401, "no token");
    assert_eq!(post_with_token(node.admin, "/reload"), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(
        node.admin,
        "fraudwall_feed_update_errors_total{list=\"blocklist\",reason=\"bad_signature\"}",
    ) == 0
    {
        assert!(Instant::now() < deadline, "tampered manifest not refused");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(invite(&node, NEW_FRAUD, 100), Fate::Answered(608));
    assert_eq!(status(node.admin)["feed"]["active_version"], 2);

    // Restart with the feed down: the cache answers at once.
    drop(node);
    drop(feed);
    let node = run_node(&lab, port, &cache);
    wait_for_version(node.admin, 2);
    assert_eq!(status(node.admin)["feed"]["source"], "cache");
    assert_eq!(invite(&node, NEW_FRAUD, 200), Fate::Answered(608));
}

/// `POST path` with the node's admin bearer token; the status code.
fn post_with_token(port: u16, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
