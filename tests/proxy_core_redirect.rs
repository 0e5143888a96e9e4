//! Redirect mode (`sip.mode = "redirect"`), byte in, bytes out: every INVITE is screened as
//! the proxy screens it and answered with its verdict (302, 404/503, 608/603+), other
//! requests get what a redirect server returns (RFC 3261 §8.3), and nothing is forwarded.

mod core_support;

use core_support::*;
use fraudwall::blocklist::Action;
use fraudwall::policy::{CallContext, Reason, Screen, Verdict};
use fraudwall::proxy::core::{
    BlockResponse, CoreConfig, Disposition, OtherResponse, ProxyCore, RedirectAllow, ReplyFit,
};
use fraudwall::proxy::listen::SipMode;
use fraudwall::proxy::Transport;
use std::sync::Arc;
use std::time::Instant;

/// The Request-URI of [`invite`].
const RURI: &str = "sip:+15550001@127.0.0.1:5060";
/// A trusted peer (the switch asking for verdicts): no reflection cap on its answers.
const SWITCH: &str = "10.0.0.7:5060";
const REDRESS: &str = "https://redress.example.net/jcard?c={category}";

fn base(c: &mut CoreConfig) {
    c.proxy.trusted_peers = vec!["10.0.0.0/8".parse().unwrap()];
    c.actions.redress_url = REDRESS.into();
}

/// A redirect-mode core on the default config changed by `f`.
fn redirect_with(f: impl FnOnce(&mut CoreConfig)) -> ProxyCore {
    core_with(|c| {
        base(c);
        c.sip.mode = SipMode::Redirect;
        f(c);
    })
    .0
}

fn redirect() -> ProxyCore {
    redirect_with(|_| {})
}

/// The proxy-mode core with the same settings, for comparison.
fn proxy_with(f: impl FnOnce(&mut CoreConfig)) -> ProxyCore {
    core_with(|c| {
        base(c);
        f(c);
    })
    .0
}

/// `invite` as sent by the switch (its Via names the switch).
fn switch_invite(caller: &str, extra: &str) -> String {
    invite(caller, extra).replace("192.0.2.1:5060;branch", "10.0.0.7:5060;branch")
}

fn status_line(s: &Sent) -> String {
    s.text().lines().next().unwrap_or_default().to_string()
}

fn headers(s: &Sent, name: &str) -> Vec<String> {
    let m = s.msg();
    m.headers(name)
        .map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap())
        .collect()
}

#[test]
fn allow_is_a_302_back_to_the_request_uri() {
    let s = send(&redirect(), &switch_invite("12025550123", ""), SWITCH);
    assert_eq!(s.outcome.disposition, Disposition::Answered(302));
    assert_eq!(s.one().destination, addr(SWITCH));
    assert_eq!(status_line(&s), "SIP/2.0 302 Moved Temporarily");
    assert_eq!(headers(&s, "Contact"), [format!("<{RURI}>")]);
    assert_eq!(
        headers(&s, "Reason"),
        ["SIP;cause=302;text=\"no-fraud-detected\""]
    );
    let m = s.msg();
    assert!(m.to().unwrap().unwrap().tag().is_some(), "{}", s.text());
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(d.applied, Action::Allow);
    assert_eq!(d.verdict.reason, Reason::Unlisted);
    assert_eq!(d.callee_raw, RURI);
}

#[test]
fn allow_can_be_a_404_or_a_503() {
    for (allow, line) in [
        (RedirectAllow::NotFound404, "SIP/2.0 404 Not Found"),
        (
            RedirectAllow::Unavailable503,
            "SIP/2.0 503 Service Unavailable",
        ),
    ] {
        let core = redirect_with(|c| c.redirect.allow_response = allow);
        let s = send(&core, &switch_invite("12025550123", ""), SWITCH);
        assert_eq!(status_line(&s), line);
        assert!(headers(&s, "Contact").is_empty());
        assert!(headers(&s, "Reason").is_empty());
        assert_eq!(s.outcome.decision.as_ref().unwrap().applied, Action::Allow);
        // A listed caller still gets its verdict.
        let s = send(&core, &switch_invite(BLOCKED, ""), SWITCH);
        assert_eq!(s.outcome.disposition, Disposition::Answered(608));
    }
}

#[test]
fn tag_is_a_302_with_the_proxys_label() {
    let label = |c: &mut CoreConfig| c.actions.tag_display_label = "FRAUD?".into();
    let input = switch_invite(
        TAGGED,
        "P-Asserted-Identity: \"Bank\" <sip:+8613800000002@10.0.0.7>\r\n",
    );
    let s = send(&redirect_with(label), &input, SWITCH);
    assert_eq!(status_line(&s), "SIP/2.0 302 Moved Temporarily");
    assert_eq!(
        headers(&s, "Contact"),
        [format!("<{RURI}>;category=loan;score=70")]
    );
    // The same label and display name the proxy writes into the forwarded INVITE.
    let p = send(&proxy_with(label), &input, SWITCH);
    assert_eq!(p.outcome.disposition, Disposition::Forwarded);
    let forwarded = p.msg();
    assert_eq!(
        headers(&s, "X-Fraud-Label"),
        [header(&forwarded, "X-Fraud-Label").unwrap()]
    );
    assert_eq!(
        headers(&s, "X-Fraud-Label"),
        ["suspected-fraud;category=loan;score=70"]
    );
    assert_eq!(
        headers(&s, "P-Asserted-Identity"),
        [header(&forwarded, "P-Asserted-Identity").unwrap()]
    );
    assert_eq!(
        headers(&s, "P-Asserted-Identity"),
        ["\"FRAUD? Bank\" <sip:+8613800000002@10.0.0.7>"]
    );
    assert_eq!(s.outcome.decision, {
        let mut d = p.outcome.decision.clone();
        if let Some(d) = d.as_mut() {
            d.applied = Action::Tag;
        }
        d
    });

    // Without a display label: no P-Asserted-Identity.
    let s = send(&redirect(), &switch_invite(TAGGED, ""), SWITCH);
    assert!(headers(&s, "P-Asserted-Identity").is_empty());
    assert_eq!(headers(&s, "X-Fraud-Label").len(), 1);
    // An untrusted sender's PAI is not believed: the label goes on From's identity (over
    // TCP, where no reflection cap trims the answer).
    let s = send_at(
        &redirect_with(label),
        &invite(
            TAGGED,
            "P-Asserted-Identity: \"Bank\" <sip:+8613800000002@192.0.2.1>\r\n",
        ),
        CALLER,
        LOCAL,
        Transport::Tcp,
        Instant::now(),
    );
    assert_eq!(s.outcome.checks.reply, None);
    assert_eq!(
        headers(&s, "P-Asserted-Identity"),
        ["\"FRAUD? Caller\" <sip:+8613800000002@192.0.2.1>"]
    );
}

#[test]
fn warn_is_a_302_to_the_announcement_service() {
    let core = redirect_with(|c| c.actions.warn_uri = "sip:announce@10.0.0.5:5090".into());
    let s = send(&core, &switch_invite(WARNED, ""), SWITCH);
    assert_eq!(s.outcome.disposition, Disposition::Answered(302));
    assert_eq!(s.one().destination, addr(SWITCH));
    assert_eq!(headers(&s, "Contact"), ["<sip:announce@10.0.0.5:5090>"]);
    assert_eq!(
        headers(&s, "X-Fraud-Label"),
        ["suspected-fraud;category=investment;score=80"]
    );
    assert_eq!(s.outcome.decision.as_ref().unwrap().applied, Action::Warn);
    // Without a service, warn is tagged, as in the proxy.
    let s = send(&redirect(), &switch_invite(WARNED, ""), SWITCH);
    assert_eq!(
        headers(&s, "Contact"),
        [format!("<{RURI}>;category=investment;score=80")]
    );
    assert_eq!(s.outcome.decision.as_ref().unwrap().applied, Action::Tag);
}

#[test]
fn block_is_the_proxys_own_answer() {
    for block in [BlockResponse::Rejected608, BlockResponse::NetworkBlocked603] {
        let f = |c: &mut CoreConfig| c.actions.block_response = block;
        let input = switch_invite(BLOCKED, "");
        let s = send(&redirect_with(f), &input, SWITCH);
        let p = send(&proxy_with(f), &input, SWITCH);
        assert_eq!(s.text(), p.text(), "the same bytes as the proxy's answer");
        assert_eq!(s.outcome, p.outcome);
        assert_eq!(s.outcome.disposition, Disposition::Answered(block.code()));
        let text = s.text();
        assert!(
            text.contains(
                "Call-Info: <https://redress.example.net/jcard?c=impersonation>;purpose=jcard"
            ),
            "{text}"
        );
        if block == BlockResponse::NetworkBlocked603 {
            assert!(
                text.starts_with("SIP/2.0 603 Network Blocked\r\n"),
                "{text}"
            );
            assert!(
                text.contains("Reason: SIP;cause=603;text=\"v=analytics1;url="),
                "{text}"
            );
        } else {
            assert!(text.starts_with("SIP/2.0 608 Rejected\r\n"), "{text}");
        }
    }
}

#[test]
fn a_retransmitted_invite_gets_the_same_bytes() {
    let core = redirect_with(|c| c.actions.tag_display_label = "FRAUD?".into());
    for caller in ["12025550123", TAGGED, BLOCKED] {
        let input = switch_invite(caller, "");
        let a = send(&core, &input, SWITCH);
        let b = send(&core, &input, SWITCH);
        assert_eq!(a.one().data, b.one().data, "{}", a.text());
        // Another core (a restart, another node) answers alike: nothing is per process.
        let c = send(
            &redirect_with(|c| c.actions.tag_display_label = "FRAUD?".into()),
            &input,
            SWITCH,
        );
        assert_eq!(a.one().data, c.one().data);
        // Another transaction gets another To-tag.
        let other = send(
            &core,
            &input.replace("z9hG4bK-inv-1", "z9hG4bK-inv-2"),
            SWITCH,
        );
        let tag = |s: &Sent| {
            let m = s.msg();
            let t = m.to().unwrap().unwrap().tag().unwrap().to_vec();
            t
        };
        assert_ne!(tag(&a), tag(&other));
    }
}

#[test]
fn options_cancel_ack_and_others() {
    let core = redirect();
    let req = |method: &str, to_tag: &str| {
        format!(
            "{method} sip:+15550001@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-{method}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:+12025550123@10.0.0.7>;tag=from-1\r\n\
             To: <sip:+15550001@127.0.0.1>{to_tag}\r\n\
             Call-ID: call-9@10.0.0.7\r\n\
             CSeq: 1 {method}\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    // OPTIONS, with a user part (the proxy would forward it): 200 with Allow.
    let s = send(&core, &req("OPTIONS", ""), SWITCH);
    assert_eq!(status_line(&s), "SIP/2.0 200 OK");
    assert_eq!(headers(&s, "Allow"), ["INVITE, ACK, CANCEL, OPTIONS"]);
    assert!(s.outcome.decision.is_none());
    // ACK: absorbed, whatever its To-tag.
    for tag in ["", ";tag=abc"] {
        let s = send(&core, &req("ACK", tag), SWITCH);
        assert!(s.out.is_empty());
        assert_eq!(s.outcome.disposition, Disposition::Absorbed);
    }
    // CANCEL: 200, nothing to cancel.
    let s = send(&core, &req("CANCEL", ""), SWITCH);
    assert_eq!(status_line(&s), "SIP/2.0 200 OK");
    assert!(headers(&s, "Allow").is_empty());
    // BYE and the rest: 405 with Allow, or 403.
    for method in ["BYE", "REGISTER", "SUBSCRIBE"] {
        let s = send(&core, &req(method, ""), SWITCH);
        assert_eq!(status_line(&s), "SIP/2.0 405 Method Not Allowed");
        assert_eq!(headers(&s, "Allow"), ["INVITE, ACK, CANCEL, OPTIONS"]);
        assert_eq!(s.one().destination, addr(SWITCH));
    }
    let core = redirect_with(|c| c.redirect.other_response = OtherResponse::Forbidden403);
    let s = send(&core, &req("BYE", ";tag=t1"), SWITCH);
    assert_eq!(status_line(&s), "SIP/2.0 403 Forbidden");
    assert!(headers(&s, "Allow").is_empty());
}

#[test]
fn the_ack_of_an_answer_is_absorbed() {
    let core = redirect();
    let input = switch_invite(BLOCKED, "");
    let s = send(&core, &input, SWITCH);
    let m = s.msg();
    let tag = String::from_utf8(m.to().unwrap().unwrap().tag().unwrap().to_vec()).unwrap();
    let ack = format!(
        "ACK {RURI} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-inv-1\r\n\
         Max-Forwards: 70\r\nFrom: \"Caller\" <sip:+{BLOCKED}@192.0.2.1>;tag=from-1\r\n\
         To: <sip:+15550001@127.0.0.1>;tag={tag}\r\nCall-ID: call-1@192.0.2.1\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    let a = send(&core, &ack, SWITCH);
    assert!(a.out.is_empty());
    assert_eq!(a.outcome.disposition, Disposition::Absorbed);
}

#[test]
fn nothing_is_ever_forwarded() {
    let core = redirect_with(|c| c.actions.warn_uri = "sip:announce@10.0.0.5:5090".into());
    let mut inputs: Vec<(String, &str)> = Vec::new();
    for caller in ["12025550123", TAGGED, WARNED, BLOCKED] {
        inputs.push((switch_invite(caller, ""), SWITCH));
        inputs.push((invite(caller, ""), CALLER));
        // A re-INVITE with a To-tag and a Route naming a next hop: still answered here.
        inputs.push((
            switch_invite(caller, "Route: <sip:127.0.0.1:5080;lr>\r\n").replace(
                "To: <sip:+15550001@127.0.0.1>",
                "To: <sip:+15550001@127.0.0.1>;tag=x",
            ),
            SWITCH,
        ));
    }
    let now = Instant::now();
    for (input, source) in &inputs {
        let s = send_at(&core, input, source, LOCAL, Transport::Udp, now);
        assert!(
            matches!(s.outcome.disposition, Disposition::Answered(_)),
            "{:?}",
            s.outcome
        );
        for o in &s.out {
            assert_eq!(o.destination, addr(source), "{}", s.text());
            assert!(o.data.starts_with(b"SIP/2.0 "), "only answers are sent");
        }
        assert!(s.outcome.decision.is_some());
    }
    // No health probes to the configured next hop.
    let mut out = Vec::new();
    for i in 0..10 {
        core.poll_timeout(now + std::time::Duration::from_secs(6 * i), &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn hostile_input_gets_the_proxys_refusals() {
    let inv = switch_invite("12025550123", "");
    let cases = [
        inv.replace("Max-Forwards: 70", "Max-Forwards: 0"),
        inv.replace(
            "INVITE sip:+15550001@127.0.0.1:5060",
            "INVITE mailto:x@example.com",
        ),
        inv.replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nProxy-Require: foo, bar\r\n",
        ),
        inv.replace("Call-ID: call-1@192.0.2.1\r\n", ""),
        inv.replace("CSeq: 1 INVITE", "CSeq: 1 BYE"),
        inv.replace("Call-ID: call-1@192.0.2.1\r\n", "Call-ID: a\r\ni: b\r\n"),
        inv.replace(
            "From: \"Caller\" <sip:+12025550123@192.0.2.1>;tag=from-1\r\n",
            "From: <<<\r\n",
        ),
        inv.replace("Content-Length: 4", "Content-Length: 400"),
        inv.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"),
        "INVITE sip:x SIP/2.0\r\n\r\n".to_string(),
        "\u{0}\u{1}garbage".to_string(),
        inv.replace(
            "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-inv-1\r\n",
            "",
        ),
    ];
    for input in &cases {
        for source in [SWITCH, CALLER] {
            let r = send(&redirect(), input, source);
            let p = send(&proxy_with(|_| {}), input, source);
            assert_eq!(r.outcome, p.outcome, "{input:?}");
            assert_eq!(r.out.len(), p.out.len(), "{input:?}");
            for (a, b) in r.out.iter().zip(&p.out) {
                assert_eq!(a.data, b.data);
                assert_eq!(a.destination, b.destination);
            }
            assert!(
                !matches!(r.outcome.disposition, Disposition::Forwarded),
                "{input:?}"
            );
        }
    }
    // Spot checks that these are real refusals.
    let s = send(&redirect(), &cases[0], SWITCH);
    assert_eq!(s.outcome.disposition, Disposition::Answered(483));
    let s = send(&redirect(), &cases[1], SWITCH);
    assert_eq!(s.outcome.disposition, Disposition::Answered(416));
    let s = send(&redirect(), &cases[2], SWITCH);
    assert_eq!(headers(&s, "Unsupported"), ["foo, bar"]);
    let s = send(&redirect(), &cases[3], SWITCH);
    assert_eq!(s.outcome.disposition, Disposition::Answered(400));
}

#[test]
fn a_hostile_request_uri_is_refused_as_the_proxy_refuses_it() {
    let input = switch_invite("12025550123", "").replace(
        "INVITE sip:+15550001@127.0.0.1:5060",
        "INVITE sip:+15550001@127.0.0.1:5060;x=\">",
    );
    let s = send(&redirect(), &input, SWITCH);
    let p = send(&proxy_with(|_| {}), &input, SWITCH);
    assert_eq!(s.outcome.disposition, Disposition::Answered(400));
    assert_eq!(s.outcome, p.outcome);
    assert_eq!(s.one().data, p.one().data);
}

#[test]
fn answers_to_untrusted_udp_sources_never_outgrow_the_request() {
    let core = redirect_with(|c| c.actions.tag_display_label = "FRAUD?".into());
    let request = |pad: usize| {
        format!(
            "INVITE sip:+1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
             From: <sip:+{TAGGED}@192.0.2.1>;tag=f\r\nTo: <sip:+1@127.0.0.1>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\nX-Pad: {}\r\nContent-Length: 0\r\n\r\n",
            "p".repeat(pad)
        )
    };
    // The full answer, over TCP (no cap); the padding is not copied into answers.
    let full = send_at(
        &core,
        &request(1),
        CALLER,
        LOCAL,
        Transport::Tcp,
        Instant::now(),
    );
    assert_eq!(headers(&full, "X-Fraud-Label").len(), 1);
    assert_eq!(headers(&full, "P-Asserted-Identity").len(), 1);
    let full_len = full.one().data.len();
    // A request one byte smaller than the full answer: the Contact-only 302.
    let pad = full_len - 1 - request(0).len();
    let req = request(pad);
    assert_eq!(req.len(), full_len - 1);
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.checks.reply, Some(ReplyFit::Trimmed));
    assert_eq!(s.outcome.disposition, Disposition::Answered(302));
    assert!(s.one().data.len() <= req.len());
    assert_eq!(
        headers(&s, "Contact"),
        ["<sip:+1@127.0.0.1>;category=loan;score=70"]
    );
    assert!(headers(&s, "X-Fraud-Label").is_empty());
    // A request smaller than even that: nothing is sent.
    let s = send(&core, &request(0), CALLER);
    assert_eq!(s.outcome.checks.reply, Some(ReplyFit::Withheld));
    assert!(s.out.is_empty());
    // From the trusted switch the same request gets the full answer.
    let s = send(&core, &request(0), SWITCH);
    assert_eq!(s.outcome.checks.reply, None);
    assert_eq!(headers(&s, "X-Fraud-Label").len(), 1);
}

struct Panics;
impl Screen for Panics {
    fn screen(&self, _: &CallContext<'_>) -> Verdict {
        panic!("lookup failed");
    }
}

#[test]
fn a_failing_screen_gets_the_allow_answer() {
    let mut c = CoreConfig::default();
    base(&mut c);
    c.sip.mode = SipMode::Redirect;
    let core = ProxyCore::new(c, Arc::new(Panics)).unwrap();
    let s = send(&core, &switch_invite(BLOCKED, ""), SWITCH);
    assert_eq!(status_line(&s), "SIP/2.0 302 Moved Temporarily");
    assert_eq!(headers(&s, "Contact"), [format!("<{RURI}>")]);
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(d.applied, Action::Allow);
    assert_eq!(d.verdict.reason, Reason::InternalError);
}

#[test]
fn redirect_mode_needs_no_next_hop() {
    let mut c = CoreConfig::default();
    c.sip.mode = SipMode::Redirect;
    c.proxy.next_hops.clear();
    let core = ProxyCore::new(c.clone(), Table::standard()).unwrap();
    assert_eq!(core.mode(), SipMode::Redirect);
    let s = send(&core, &invite(BLOCKED, ""), CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(608));
    c.sip.mode = SipMode::Proxy;
    assert!(ProxyCore::new(c, Table::standard()).is_err());
}
