//! End-to-end: `fraudwall run --mode redirect` between a sipp caller and nothing else.
//!
//! The built binary answers each INVITE with its verdict (the sipp UAC
//! integration/sipp/uac_redirect.xml checks the status, the Contact and, for tagged callers,
//! X-Fraud-Label, and ACKs the answer); a raw UDP socket checks that retransmitted INVITEs get
//! byte-identical answers and that other requests get a redirect server's answers. Nothing is
//! forwarded: the would-be switch's port hears nothing.
//!
//! sipp is required: when it is missing these tests FAIL (install the `sip-tester` package).

mod sipp_support;

use sipp_support::{messages, Options, Setup, BLOCKED, CLEAN, TAGGED};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// The two listed callers of the acceptance example.
const LIST: &str = "number,action,category,score,source
+8613800000001,block,impersonation,95,police
+8613800000002,tag,loan,70,reports
";

fn start(extra_config: &str) -> Setup {
    Setup::start_with(
        "127.0.0.1",
        Options {
            list: LIST,
            extra_config,
            extra_args: vec!["--mode".into(), "redirect".into()],
            // A redirect server needs no next hop.
            next_hop: false,
            ..Options::default()
        },
    )
}

/// The value of header `name` in a message's text.
fn header<'m>(m: &'m str, name: &str) -> Option<&'m str> {
    m.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The responses in a sipp message log whose From names `caller`.
fn answers_to<'a>(msgs: &'a [(String, String)], caller: &str) -> Vec<&'a str> {
    msgs.iter()
        .map(|(_, m)| m.as_str())
        .filter(|m| {
            m.starts_with("SIP/2.0 ") && header(m, "From").is_some_and(|f| f.contains(caller))
        })
        .collect()
}

#[test]
fn sipp_callers_get_their_verdicts_as_answers_over_udp() {
    sipp_callers_get_their_verdicts_as_answers("u1");
}

#[test]
fn sipp_callers_get_their_verdicts_as_answers_over_tcp() {
    sipp_callers_get_their_verdicts_as_answers("t1");
}

fn sipp_callers_get_their_verdicts_as_answers(transport: &str) {
    let s = start("");
    // The port a switch would listen on: nothing may arrive there.
    let switch = UdpSocket::bind(("127.0.0.1", s.switch)).expect("bind switch");
    s.call(
        "uac_redirect.xml",
        &[
            (CLEAN, "302"),
            (TAGGED, "302-label"),
            (BLOCKED, "608"),
            (CLEAN, "302"),
        ],
        transport,
    );
    let msgs = messages(&s.path("caller_msgs.log"));
    let ruri = format!("sip:svc@127.0.0.1:{}", s.sip);

    let tagged = answers_to(&msgs, TAGGED);
    assert_eq!(tagged.len(), 1, "{tagged:?}");
    assert!(tagged[0].starts_with("SIP/2.0 302 "), "{}", tagged[0]);
    assert_eq!(
        header(tagged[0], "Contact"),
        Some(format!("<{ruri}>;category=loan;score=70").as_str())
    );
    assert_eq!(
        header(tagged[0], "X-Fraud-Label"),
        Some("suspected-fraud;category=loan;score=70")
    );

    let blocked = answers_to(&msgs, BLOCKED);
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert!(
        blocked[0].starts_with("SIP/2.0 608 Rejected"),
        "{}",
        blocked[0]
    );
    assert_eq!(
        header(blocked[0], "Call-Info"),
        Some("<https://redress.example.net/jcard>;purpose=jcard")
    );

    let clean = answers_to(&msgs, CLEAN);
    assert_eq!(clean.len(), 2, "{clean:?}");
    for m in clean {
        assert!(m.starts_with("SIP/2.0 302 Moved Temporarily"), "{m}");
        assert_eq!(header(m, "Contact"), Some(format!("<{ruri}>").as_str()));
        assert_eq!(
            header(m, "Reason"),
            Some("SIP;cause=302;text=\"no-fraud-detected\"")
        );
        assert_eq!(header(m, "X-Fraud-Label"), None);
    }

    // Nothing forwarded.
    switch
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(
        switch.recv_from(&mut buf).is_err(),
        "something was forwarded"
    );

    // Metrics and decision log as for proxied calls, with front = redirect.
    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"block\",category=\"impersonation\"}"),
        1.0
    );
    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"tag\",category=\"loan\"}"),
        1.0
    );
    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"allow\",category=\"none\"}"),
        2.0
    );
    let log = std::fs::read_to_string(s.path("decisions.jsonl")).unwrap_or_default();
    for (verdict, caller) in [("block", BLOCKED), ("tag", TAGGED)] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("\"verdict\":\"{verdict}\"")))
            .unwrap_or_else(|| panic!("no {verdict} line in:\n{log}"));
        assert!(line.contains(caller), "{line}");
        assert!(line.contains("\"front\":\"redirect\""), "{line}");
    }
}

/// One request over a raw UDP socket, and its answer.
struct Raw {
    sock: UdpSocket,
    me: SocketAddr,
    fw: SocketAddr,
}

impl Raw {
    fn new(s: &Setup) -> Raw {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let me = sock.local_addr().unwrap();
        let fw = format!("127.0.0.1:{}", s.sip).parse().unwrap();
        Raw { sock, me, fw }
    }

    fn request(&self, method: &str, caller: &str, call: &str) -> String {
        format!(
            "{method} sip:+8610555@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call}\r\n\
             From: <sip:+{caller}@x;user=phone>;tag=1\r\nTo: <sip:+8610555@x>\r\nCall-ID: {call}\r\n\
             CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContact: <sip:caller@{me}>\r\n\
             User-Agent: raw-udp-test-client-with-a-longer-header-than-usual\r\nContent-Length: 0\r\n\r\n",
            p = self.fw.port(),
            me = self.me,
        )
    }

    fn ask(&self, text: &str) -> Vec<u8> {
        self.sock.send_to(text.as_bytes(), self.fw).unwrap();
        let mut buf = [0u8; 8192];
        let (n, _) = self.sock.recv_from(&mut buf).expect("an answer");
        buf[..n].to_vec()
    }
}

#[test]
fn retransmitted_invites_get_identical_answers_and_others_a_redirect_servers() {
    let s = start("");
    let raw = Raw::new(&s);
    for (caller, status) in [
        (CLEAN, "SIP/2.0 302 "),
        (TAGGED, "SIP/2.0 302 "),
        (BLOCKED, "SIP/2.0 608 "),
    ] {
        let invite = raw.request("INVITE", caller, &format!("retrans-{caller}"));
        let first = raw.ask(&invite);
        let second = raw.ask(&invite);
        let text = String::from_utf8_lossy(&first);
        assert!(text.starts_with(status), "{text}");
        assert!(
            header(&text, "To").is_some_and(|t| t.contains(";tag=")),
            "{text}"
        );
        assert_eq!(first, second, "a retransmission must get the same bytes");
    }
    let ok = raw.ask(&raw.request("OPTIONS", CLEAN, "opt-1"));
    let ok = String::from_utf8_lossy(&ok);
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert_eq!(header(&ok, "Allow"), Some("INVITE, ACK, CANCEL, OPTIONS"));
    let bye = raw.ask(&raw.request("BYE", CLEAN, "bye-1"));
    let bye = String::from_utf8_lossy(&bye);
    assert!(bye.starts_with("SIP/2.0 405 Method Not Allowed"), "{bye}");
    let cancel = raw.ask(&raw.request("CANCEL", CLEAN, "cancel-1"));
    assert!(cancel.starts_with(b"SIP/2.0 200 OK"));
}

#[test]
fn the_allow_answer_and_other_answers_are_configurable() {
    let s = start("[redirect]\nallow_response = 503\nother_response = 403\n");
    let raw = Raw::new(&s);
    let clean = raw.ask(&raw.request("INVITE", CLEAN, "cfg-1"));
    assert!(clean.starts_with(b"SIP/2.0 503 Service Unavailable\r\n"));
    let tagged = raw.ask(&raw.request("INVITE", TAGGED, "cfg-2"));
    assert!(tagged.starts_with(b"SIP/2.0 302 "));
    let bye = raw.ask(&raw.request("BYE", CLEAN, "cfg-3"));
    assert!(bye.starts_with(b"SIP/2.0 403 Forbidden\r\n"));
}
