//! End-to-end (issue 9): the built `fraudwall` binary with a sipp switch behind it.
//!
//! - a listed caller's INVITE with a made-up To-tag is answered 608 and never reaches the
//!   switch (a To-tag without fraudwall's dialog proof means nothing);
//! - an INVITE whose Route names another loopback port never reaches that port (open relay):
//!   it reaches the switch (`foreign_route = "ignore"`) or is refused 403 (`"reject"`);
//! - a record-routed call (sipp UAC and UAS) whose re-INVITE, ACKs and BYE carry the proof
//!   still flows.
//!
//! The attacker is a plain UDP socket of the test (it only needs to send one datagram);
//! sipp is required for the switch and the caller: without it these tests FAIL.

mod sipp_support;

use sipp_support::{free_port, invites_from, messages, Setup, BLOCKED, CLEAN};
use std::net::UdpSocket;
use std::time::Duration;

/// A full INVITE (with SDP, so the 608 fits under the reflection rule) from `caller`.
fn invite(s: &Setup, from: &UdpSocket, caller: &str, extra: &str) -> String {
    let me = from.local_addr().unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:+15550001@{ip}:{sip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-e2e-{caller}\r\n\
         {extra}\
         Max-Forwards: 70\r\n\
         From: <sip:+{caller}@{ip}>;tag=attacker\r\n\
         To: <sip:+15550001@{ip}>;tag=made-up\r\n\
         Call-ID: e2e-{caller}-{port}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:+{caller}@{me}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{sdp}",
        ip = s.ip,
        sip = s.sip,
        port = me.port(),
        len = sdp.len(),
    )
}

/// The status codes of the answers `sock` receives within `wait`.
fn statuses(sock: &UdpSocket, wait: Duration) -> Vec<u16> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 65535];
    while std::time::Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            if let Some(code) = text
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse().ok())
            {
                out.push(code);
            }
        }
    }
    out
}

#[test]
fn a_listed_callers_invite_with_a_to_tag_is_answered_608_and_never_reaches_the_switch() {
    let s = Setup::start("127.0.0.1", "[proxy]\nrecord_route = true\n");
    let switch = s.switch("uas_echo.xml", 1);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", s.sip)).unwrap();
    sock.send(invite(&s, &sock, BLOCKED, "").as_bytes())
        .unwrap();
    let got = statuses(&sock, Duration::from_secs(2));
    assert!(got.contains(&608), "answers: {got:?}");
    drop(switch);
    let at_switch = messages(&s.path("switch_msgs.log"));
    assert!(
        invites_from(&at_switch, BLOCKED).is_empty(),
        "a listed caller with a To-tag reached the switch"
    );
    assert!(s.metric("fraudwall_dialog_proofs_total{result=\"refused\"}") >= 1.0);
}

fn relay_attempt(foreign_route: &str) -> (Vec<u16>, usize, usize) {
    let extra = format!("[proxy]\nforeign_route = \"{foreign_route}\"\n");
    let s = Setup::start("127.0.0.1", &extra);
    let switch = s.switch("uas_echo.xml", 1);
    let target_port = free_port("127.0.0.1");
    let target = UdpSocket::bind(("127.0.0.1", target_port)).unwrap();
    target
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", s.sip)).unwrap();
    for route in [
        format!("Route: <sip:127.0.0.1:{target_port};lr>\r\n"),
        format!("Route: <sip:127.0.0.1:{target_port}>\r\n"),
    ] {
        sock.send(
            invite(&s, &sock, CLEAN, &route)
                .replace("tag=made-up", "x=1")
                .as_bytes(),
        )
        .unwrap();
    }
    let got = statuses(&sock, Duration::from_secs(2));
    let mut at_target = 0;
    let mut buf = [0u8; 65535];
    while target.recv(&mut buf).is_ok() {
        at_target += 1;
    }
    drop(switch);
    let at_switch = messages(&s.path("switch_msgs.log"));
    (got, at_target, invites_from(&at_switch, CLEAN).len())
}

#[test]
fn a_route_to_another_port_is_never_followed() {
    let (got, at_target, at_switch) = relay_attempt("ignore");
    assert_eq!(at_target, 0, "the relay target was reached");
    assert!(
        at_switch >= 1,
        "ignore: the INVITE goes to the switch ({got:?})"
    );
    let (got, at_target, at_switch) = relay_attempt("reject");
    assert_eq!(at_target, 0, "the relay target was reached");
    assert_eq!(at_switch, 0);
    assert!(got.contains(&403), "reject: answered 403 ({got:?})");
}

#[test]
fn a_record_routed_call_with_a_re_invite_and_bye_still_flows() {
    let s = Setup::start("127.0.0.1", "[proxy]\nrecord_route = true\n");
    let switch = s.switch("uas_reinvite.xml", 1);
    s.call("uac_reinvite.xml", &[(CLEAN, "allow")], "u1");
    let out = switch.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "switch failed: {}",
        std::fs::read_to_string(s.path("switch_err.log")).unwrap_or_default()
    );
    let at_switch = messages(&s.path("switch_msgs.log"));
    assert_eq!(
        invites_from(&at_switch, CLEAN).len(),
        2,
        "INVITE and re-INVITE"
    );
    assert!(at_switch.iter().any(|(_, m)| m.starts_with("BYE ")));
    assert!(s.metric("fraudwall_dialog_proofs_total{result=\"accepted\"}") >= 1.0);
}
