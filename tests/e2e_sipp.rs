//! End-to-end: the built `fraudwall` binary between real sipp peers on loopback.
//!
//! Each test compiles a small blocklist, starts `fraudwall run` on free ports, a sipp UAS as
//! the switch (integration/sipp/uas_*.xml) and a sipp UAC as the callers
//! (integration/sipp/uac_*.xml), and checks the verdicts end to end: the UAC scenario fails a
//! call whose answer does not match the caller's expected verdict, the switch's message log
//! shows what reached it, and `/metrics` shows the counters.
//!
//! sipp is required: when it is missing these tests FAIL (install the `sip-tester` package).
//! Every child is bounded (`-m`, `-timeout`) and killed when its guard drops.

mod sipp_support;

use sipp_support::{invites_from, messages, Setup, BLOCKED, CLEAN, TAGGED, WARNED};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Header lines and body of a message without Via, Max-Forwards and Record-Route (what a
/// proxy may change), with the insignificant whitespace around header colons normalized
/// (RFC 3261 §7.3.1).
fn without_via_and_max_forwards(m: &str) -> Vec<String> {
    let (head, body) = m
        .split_once("\n\n")
        .or_else(|| m.split_once("\r\n\r\n"))
        .unwrap_or((m, ""));
    let mut out: Vec<String> = head
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            !["via:", "v:", "max-forwards:", "record-route:"]
                .iter()
                .any(|p| lower.starts_with(p))
        })
        .map(|l| match l.split_once(':') {
            Some((name, value)) if !l.starts_with("INVITE ") => {
                format!("{}: {}", name.trim(), value.trim())
            }
            _ => l.to_string(),
        })
        .collect();
    out.extend(
        body.lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .filter(|l| !l.is_empty()),
    );
    out
}

fn check_verdicts(ip: &'static str, transport: &str, extra: &str) {
    let s = Setup::start(ip, extra);
    let callers = [
        (CLEAN, "allow"),
        (TAGGED, "tag"),
        (BLOCKED, "block"),
        (WARNED, "warn"),
        (CLEAN, "allow"),
    ];
    let switch = s.switch("uas_echo.xml", 4);
    s.call("uac_verdict.xml", &callers, transport);
    let out = switch.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "switch failed: {}",
        std::fs::read_to_string(s.path("switch_err.log")).unwrap_or_default()
    );

    let at_switch = messages(&s.path("switch_msgs.log"));
    assert!(
        invites_from(&at_switch, BLOCKED).is_empty(),
        "a blocked caller reached the switch"
    );
    let tagged = invites_from(&at_switch, TAGGED);
    assert!(!tagged.is_empty());
    assert!(
        tagged[0]
            .lines()
            .any(|l| l.starts_with("X-Fraud-Label: suspected-fraud")),
        "{}",
        tagged[0]
    );
    // Allowed calls arrive unchanged but for Via and Max-Forwards, and without the
    // P-Asserted-Identity the (untrusted) caller asserted (RFC 3325 §5).
    let sent = messages(&s.path("caller_msgs.log"));
    let (sent_clean, got_clean) = (invites_from(&sent, CLEAN), invites_from(&at_switch, CLEAN));
    assert_eq!(got_clean.len(), 2);
    let is_pai = |l: &String| l.to_ascii_lowercase().starts_with("p-asserted-identity:");
    let mut expected = without_via_and_max_forwards(sent_clean[0]);
    assert!(expected.iter().any(is_pai), "the caller sends a PAI");
    expected.retain(|l| !is_pai(l));
    assert_eq!(expected, without_via_and_max_forwards(got_clean[0]));
    assert!(got_clean[0].contains("Max-Forwards: 69"));

    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"block\",category=\"impersonation\"}"),
        1.0
    );
    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"tag\",category=\"loan\"}"),
        1.0
    );
    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"warn\",category=\"investment\"}"),
        1.0
    );
    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"allow\",category=\"none\"}"),
        2.0
    );
    assert!(s.metric("fraudwall_sip_messages_total{direction=\"in\",method=\"BYE\"}") >= 4.0);
    let status = s.http("/status");
    assert!(
        status.contains("\"snapshot\":{") && status.contains("\"healthy\":true"),
        "{status}"
    );
    let log = std::fs::read_to_string(s.path("decisions.jsonl")).unwrap_or_default();
    let blocked: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"verdict\":\"block\""))
        .collect();
    assert_eq!(blocked.len(), 1, "{log}");
    assert!(
        blocked[0].contains("\"caller\":\"+8613800000001\"")
            && blocked[0].contains("\"category\":\"impersonation\"")
            && blocked[0].contains("\"front\":\"proxy\"")
    );
}

#[test]
fn udp_ipv4_allow_tag_warn_block() {
    check_verdicts("127.0.0.1", "u1", "");
}

#[test]
fn tcp_callers_with_record_route() {
    check_verdicts("127.0.0.1", "t1", "[proxy]\nrecord_route = true\n");
}

#[test]
fn udp_ipv6_loopback() {
    check_verdicts("::1", "u1", "");
}

#[test]
fn cancel_follows_the_invite() {
    let s = Setup::start("127.0.0.1", "");
    let switch = s.switch("uas_cancel.xml", 2);
    s.call("uac_cancel.xml", &[(CLEAN, "allow"), (TAGGED, "tag")], "u1");
    let out = switch.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "switch failed: {}",
        std::fs::read_to_string(s.path("switch_err.log")).unwrap_or_default()
    );
    assert!(s.metric("fraudwall_sip_messages_total{direction=\"in\",method=\"CANCEL\"}") >= 2.0);
}

/// A retransmitted INVITE (same branch) is forwarded again with the same branch; retransmitted
/// INVITEs from a blocked caller are answered 608 again, and never forwarded.
#[test]
fn retransmissions_are_stateless_and_consistent() {
    let s = Setup::start("127.0.0.1", "");
    let switch = UdpSocket::bind(("127.0.0.1", s.switch)).expect("bind switch");
    switch
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    caller
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let me: SocketAddr = caller.local_addr().unwrap();
    let proxy: SocketAddr = format!("127.0.0.1:{}", s.sip).parse().unwrap();
    let invite = |n: &str, call: &str| {
        format!(
            "INVITE sip:svc@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call}\r\nFrom: <sip:+{n}@x;user=phone>;tag=1\r\nTo: <sip:svc@x>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            p = s.sip
        )
    };
    let branch_of = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Via:"))
            .and_then(|l| l.split("branch=").nth(1))
            .map(|b| b.trim().to_string())
    };
    let mut buf = [0u8; 4096];
    let mut branches = Vec::new();
    for _ in 0..2 {
        caller
            .send_to(invite(CLEAN, "retrans-1").as_bytes(), proxy)
            .unwrap();
        let (n, _) = switch.recv_from(&mut buf).expect("INVITE at the switch");
        branches.push(branch_of(&String::from_utf8_lossy(&buf[..n])));
    }
    assert!(branches[0].is_some());
    assert_eq!(
        branches[0], branches[1],
        "a retransmission must carry the same branch"
    );
    for _ in 0..2 {
        caller
            .send_to(invite(BLOCKED, "retrans-2").as_bytes(), proxy)
            .unwrap();
        let (n, _) = caller.recv_from(&mut buf).expect("608");
        assert!(
            buf[..n].starts_with(b"SIP/2.0 608"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    switch
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        switch.recv_from(&mut buf).is_err(),
        "the blocked INVITE reached the switch"
    );
    // Garbage is counted, never answered with a crash: the proxy still works afterwards.
    caller.send_to(b"\x00\xffnot sip at all", proxy).unwrap();
    caller
        .send_to(invite(CLEAN, "retrans-3").as_bytes(), proxy)
        .unwrap();
    switch
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    assert!(switch.recv_from(&mut buf).is_ok());
    assert!(s
        .http("/metrics")
        .contains("fraudwall_parse_errors_total{reason="));
}

#[test]
fn sigterm_stops_the_node_promptly_and_flushes_the_decision_log() {
    let mut s = Setup::start("127.0.0.1", "");
    // A blocked call never reaches the switch: no switch needed.
    s.call("uac_verdict.xml", &[(BLOCKED, "block")], "u1");
    let pid = s.fw.0.as_ref().expect("fraudwall child").id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let child = s.fw.0.as_mut().expect("fraudwall child");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fraudwall did not stop within 5 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(s.path("decisions.jsonl")).expect("decision log");
    assert!(
        log.lines()
            .any(|l| l.contains("\"verdict\":\"block\"") && l.contains(BLOCKED)),
        "the blocked call's line was flushed at shutdown:\n{log}"
    );
}
