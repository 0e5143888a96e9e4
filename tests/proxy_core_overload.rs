//! The overload policy (`[overload]`), byte in, bytes out, with stepped time and injected
//! queue delays: new INVITEs are shed (503 with Retry-After, or dropped) while responses,
//! ACK, CANCEL, BYE and re-INVITEs keep flowing.

mod core_support;

use bytes::Bytes;
use core_support::*;
use fraudwall::proxy::core::{Disposition, OverloadConfig, ProxyCore, ShedAction};
use fraudwall::proxy::{Inbound, Transport};
use fraudwall::sip::SipMessage;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

/// Hands `data` to the core from `source` at `now`, as a datagram that waited `queued`.
fn send_queued(core: &ProxyCore, data: &str, source: &str, now: Instant, queued: Duration) -> Sent {
    let mut out = Vec::new();
    let outcome = core.handle(
        Inbound {
            data: Bytes::copy_from_slice(data.as_bytes()),
            source: addr(source),
            local: addr(LOCAL),
            transport: Transport::Udp,
            verified_peer: false,
            queued: Some(queued),
        },
        now,
        &mut out,
    );
    Sent { outcome, out }
}

/// An initial INVITE from an unlisted caller with its own Call-ID and branch.
fn new_invite(n: u32) -> String {
    invite("12025550123", "")
        .replace("call-1@", &format!("call-{n}@"))
        .replace("z9hG4bK-inv-1", &format!("z9hG4bK-inv-{n}"))
}

/// A response from the next hop to a forwarded request (its Vias copied).
fn response_to(forwarded: &SipMessage, status: &str) -> String {
    let mut s = format!("SIP/2.0 {status}\r\n");
    for v in forwarded.vias() {
        let v = v.unwrap();
        s.push_str(&format!("Via: {}\r\n", String::from_utf8_lossy(v.raw())));
    }
    for name in ["From", "Call-ID", "CSeq"] {
        s.push_str(&format!("{name}: {}\r\n", header(forwarded, name).unwrap()));
    }
    s.push_str(&format!(
        "To: {};tag=callee-1\r\nContent-Length: 0\r\n\r\n",
        header(forwarded, "To").unwrap()
    ));
    s
}

/// Drives `core` into overload at `t0` (two over-bound delays `sustain` apart).
fn overload(core: &ProxyCore, t0: Instant) {
    let options = "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-o1\r\n\
                   Max-Forwards: 70\r\nFrom: <sip:probe@192.0.2.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\n\
                   Call-ID: probe-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    send_queued(core, options, CALLER, t0, 80 * MS);
    assert!(!core.overload_status().overloaded, "not before `sustain`");
    send_queued(core, options, CALLER, t0 + 25 * MS, 80 * MS);
    assert!(core.overload_status().overloaded);
}

#[test]
fn under_backlog_new_invites_get_503_and_everything_else_is_relayed() {
    let (core, table) = core_with(|_| {});
    let t0 = Instant::now();

    // A call set up before the overload.
    let s = send_queued(&core, &new_invite(1), CALLER, t0, 2 * MS);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    let forwarded = s.msg();
    assert_eq!(table.calls.load(Ordering::Relaxed), 1);

    overload(&core, t0 + MS);
    let t = t0 + 40 * MS;

    // A new INVITE: 503 with Retry-After, unscreened, no decision.
    let s = send_queued(&core, &new_invite(2), CALLER, t, 80 * MS);
    assert_eq!(s.outcome.disposition, Disposition::Answered(503));
    assert_eq!(s.outcome.checks.shed, Some(ShedAction::Reject));
    assert!(s.outcome.decision.is_none());
    assert_eq!(table.calls.load(Ordering::Relaxed), 1, "not screened");
    assert_eq!(s.one().destination, addr(CALLER));
    let answer = s.msg();
    assert!(s.text().starts_with("SIP/2.0 503 Service Unavailable\r\n"));
    assert_eq!(header(&answer, "Retry-After").as_deref(), Some("1"));
    let to = header(&answer, "To").unwrap();
    let tag = to.split(";tag=").nth(1).expect("a To-tag").to_string();

    // Its ACK is absorbed.
    let ack = new_invite(2)
        .replace("INVITE sip:", "ACK sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace(
            "To: <sip:+15550001@127.0.0.1>",
            &format!("To: <sip:+15550001@127.0.0.1>;tag={tag}"),
        );
    let s = send_queued(&core, &ack, CALLER, t, 80 * MS);
    assert_eq!(s.outcome.disposition, Disposition::Absorbed);

    // Responses of the call in progress are relayed.
    for status in ["180 Ringing", "200 OK"] {
        let s = send_queued(&core, &response_to(&forwarded, status), HOP, t, 80 * MS);
        assert_eq!(s.outcome.disposition, Disposition::Forwarded, "{status}");
        assert_eq!(s.one().destination, addr(CALLER));
    }

    // The caller's ACK and BYE (in dialog: To-tag, sent to the switch's Contact) go on.
    for (method, cseq) in [("ACK", "1 ACK"), ("BYE", "2 BYE")] {
        let req = new_invite(1)
            .replace(
                "INVITE sip:+15550001@127.0.0.1:5060",
                &format!("{method} sip:+15550001@{HOP}"),
            )
            .replace("CSeq: 1 INVITE", &format!("CSeq: {cseq}"))
            .replace("z9hG4bK-inv-1", &format!("z9hG4bK-{method}-1"))
            .replace(
                "To: <sip:+15550001@127.0.0.1>",
                "To: <sip:+15550001@127.0.0.1>;tag=callee-1",
            );
        let s = send_queued(&core, &req, CALLER, t, 80 * MS);
        assert_eq!(s.outcome.disposition, Disposition::Forwarded, "{method}");
        assert_eq!(s.outcome.checks.shed, None);
        assert_eq!(s.one().destination, addr(HOP));
    }

    // A CANCEL goes to the next hop.
    let cancel = new_invite(3)
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let s = send_queued(&core, &cancel, CALLER, t, 80 * MS);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);

    // A re-INVITE (To-tag) is not shed.
    let reinvite = new_invite(1)
        .replace("CSeq: 1 INVITE", "CSeq: 3 INVITE")
        .replace(
            "To: <sip:+15550001@127.0.0.1>",
            "To: <sip:+15550001@127.0.0.1>;tag=callee-1",
        );
    let s = send_queued(&core, &reinvite, CALLER, t, 80 * MS);
    assert_eq!(s.outcome.checks.shed, None);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);

    // An INVITE that waited past drop_queue_delay is dropped, unanswered.
    let s = send_queued(&core, &new_invite(4), CALLER, t, 400 * MS);
    assert_eq!(s.outcome.disposition, Disposition::Dropped("overload"));
    assert_eq!(s.outcome.checks.shed, Some(ShedAction::Drop));
    assert!(s.out.is_empty());

    // The backlog drains: a short wait ends the overload and calls are taken again.
    let s = send_queued(&core, &new_invite(5), CALLER, t + 10 * MS, 3 * MS);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert!(!core.overload_status().overloaded);
    assert_eq!(core.overload_status().episodes, 1);
}

#[test]
fn drop_action_and_the_policy_off() {
    let (core, _) = core_with(|c| {
        c.overload = OverloadConfig {
            action: ShedAction::Drop,
            ..OverloadConfig::default()
        }
    });
    let t0 = Instant::now();
    overload(&core, t0);
    let s = send_queued(&core, &new_invite(2), CALLER, t0 + 30 * MS, 80 * MS);
    assert_eq!(s.outcome.disposition, Disposition::Dropped("overload"));
    assert!(s.out.is_empty());

    let (off, _) = core_with(|c| c.overload.max_queue_delay = Duration::ZERO);
    for i in 0..5u32 {
        let s = send_queued(&off, &new_invite(i), CALLER, t0 + 30 * MS * i, 900 * MS);
        assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    }
    assert!(!off.overload_status().overloaded);
}

#[test]
fn the_503_fits_the_reflection_rule() {
    // A caller that is neither trusted nor a next hop gets nothing larger than its INVITE:
    // a tiny INVITE still gets a 503, without Retry-After if need be, or none.
    let (core, _) = core_with(|c| c.overload.retry_after = 3600);
    let t0 = Instant::now();
    overload(&core, t0);
    let s = send_queued(&core, &new_invite(7), CALLER, t0 + 30 * MS, 80 * MS);
    assert_eq!(header(&s.msg(), "Retry-After").as_deref(), Some("3600"));
    assert!(s.one().data.len() <= new_invite(7).len());
}

#[test]
fn bad_overload_config_names_the_key() {
    let mut c = fraudwall::proxy::core::CoreConfig::default();
    c.overload.resume_queue_delay = Duration::from_secs(1);
    let e = c.validate().unwrap_err();
    assert_eq!(e.key(), "overload.resume_queue_delay");
    assert!(e.to_string().contains("below max_queue_delay"), "{e}");
}
