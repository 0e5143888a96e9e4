//! Identity you can trust (issue 9, Build §1), byte in, bytes out: Remote-Party-ID and
//! P-Asserted-Identity count only from trusted peers and are removed from everyone else's
//! requests; every identity value is screened and the most severe verdict wins; a second
//! From, To or Call-ID is answered 400.
//!
//! Each bypass of the issue is one test here, and each of them fails on the code before it.

mod core_support;

use core_support::*;
use fraudwall::blocklist::Action;
use fraudwall::proxy::core::{Disposition, IdentityRemoved, IdentitySource, ProxyCore};
use fraudwall::sip::SipMessage;
use std::sync::atomic::Ordering;

/// A peer inside `trusted_peers` of [`trusting`].
const TRUSTED: &str = "10.1.2.3:5060";
/// Not listed.
const CLEAN: &str = "12025550199";

/// A core that trusts 10.0.0.0/8 for identity; CALLER (192.0.2.1) is untrusted.
fn trusting() -> ProxyCore {
    core_with(|c| c.proxy.trusted_peers = vec!["10.0.0.0/8".parse().unwrap()]).0
}

/// Asserts a call was blocked with 608, decided by `by`, and nothing was forwarded.
fn assert_blocked(s: &Sent, source: &str, by: IdentitySource) {
    assert_eq!(s.outcome.disposition, Disposition::Answered(608), "{s:?}");
    assert_eq!(s.one().destination, addr(source), "answered, not forwarded");
    assert_eq!(s.msg().status(), Some(608));
    let d = s.outcome.decision.as_ref().expect("screened");
    assert_eq!((d.identity, d.applied), (Some(by), Action::Block), "{d:?}");
}

/// Asserts a request was answered 400 for `reason`, with nothing forwarded.
fn assert_refused(s: &Sent, reason: &str) {
    assert_eq!(s.outcome.disposition, Disposition::Answered(400), "{s:?}");
    assert_eq!(s.outcome.error, Some(reason));
    assert_eq!(s.one().destination, addr(CALLER), "answered, not forwarded");
    assert_eq!(s.msg().status(), Some(400));
    assert!(s.outcome.decision.is_none(), "not screened");
}

/// The INVITE with its From line replaced by `lines`.
fn with_from(lines: &str) -> String {
    invite(BLOCKED, "").replace(
        &format!("From: \"Caller\" <sip:+{BLOCKED}@192.0.2.1>;tag=from-1\r\n"),
        lines,
    )
}

// ----- Remote-Party-ID is believed from trusted peers only ---------------------------------

#[test]
fn untrusted_clean_rpid_does_not_hide_a_listed_from() {
    let rpid = format!("Remote-Party-ID: <sip:+{CLEAN}@x>;party=calling\r\n");
    let s = send(&trusting(), &invite(BLOCKED, &rpid), CALLER);
    assert_blocked(&s, CALLER, IdentitySource::From);
    // Nor with no peers trusted at all (the default).
    let s = send(&core(), &invite(BLOCKED, &rpid), CALLER);
    assert_blocked(&s, CALLER, IdentitySource::From);
}

#[test]
fn untrusted_junk_rpid_leaves_the_from_to_be_screened() {
    for rpid in [
        "Remote-Party-ID: <sip:alice@x>\r\n",
        "Remote-Party-ID: <sip:anonymous@anonymous.invalid>;party=calling\r\n",
        "Remote-Party-ID: <junk\r\n",
    ] {
        let s = send(&trusting(), &invite(BLOCKED, rpid), CALLER);
        assert_blocked(&s, CALLER, IdentitySource::From);
    }
}

#[test]
fn trusted_rpid_is_screened_with_the_from() {
    let rpid = format!("Remote-Party-ID: <sip:+{BLOCKED}@x>;party=calling\r\n");
    let s = send(&trusting(), &invite(CLEAN, &rpid), TRUSTED);
    assert_blocked(&s, TRUSTED, IdentitySource::Rpid);
    // From the untrusted caller the same RPID means nothing.
    let s = send(&trusting(), &invite(CLEAN, &rpid), CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
}

// ----- Every identity value is screened ----------------------------------------------------

#[test]
fn trusted_pai_with_the_listed_value_second_is_blocked() {
    let core = trusting();
    // One header line, sip then tel.
    let pai = format!("P-Asserted-Identity: <sip:+{CLEAN}@x>, <tel:+{BLOCKED}>\r\n");
    assert_blocked(
        &send(&core, &invite(CLEAN, &pai), TRUSTED),
        TRUSTED,
        IdentitySource::Pai,
    );
    // Two header lines.
    let pai = format!(
        "P-Asserted-Identity: <sip:+{CLEAN}@x>\r\nP-Asserted-Identity: <tel:+{BLOCKED}>\r\n"
    );
    let s = send(&core, &invite(CLEAN, &pai), TRUSTED);
    assert_blocked(&s, TRUSTED, IdentitySource::Pai);
    assert_eq!(
        s.outcome.decision.as_ref().map(|d| d.caller_raw.as_str()),
        Some(format!("tel:+{BLOCKED}").as_str()),
        "the decision names the deciding value"
    );
}

#[test]
fn junk_or_anonymous_trusted_pai_does_not_hide_a_listed_from() {
    let core = trusting();
    for pai in [
        "P-Asserted-Identity: <sip:alice@x>\r\n",
        "P-Asserted-Identity: \"Anonymous\" <sip:anonymous@anonymous.invalid>\r\nPrivacy: id\r\n",
        "P-Asserted-Identity: <tel:not-a-number>\r\n",
        "P-Asserted-Identity: <broken\r\n",
    ] {
        let s = send(&core, &invite(BLOCKED, pai), TRUSTED);
        assert_blocked(&s, TRUSTED, IdentitySource::From);
    }
}

#[test]
fn the_most_severe_verdict_wins_and_the_order_breaks_ties() {
    let core = trusting();
    // A tagged From over a clean PAI: tag, decided by From.
    let pai = format!("P-Asserted-Identity: <tel:+{CLEAN}>\r\n");
    let s = send(&core, &invite(TAGGED, &pai), TRUSTED);
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(
        (d.identity, d.applied),
        (Some(IdentitySource::From), Action::Tag)
    );
    assert!(header(&s.msg(), "X-Fraud-Label").is_some());
    // Block in From over warn in PAI.
    let pai = format!("P-Asserted-Identity: <tel:+{WARNED}>\r\n");
    let s = send(&core, &invite(BLOCKED, &pai), TRUSTED);
    assert_blocked(&s, TRUSTED, IdentitySource::From);
    // Two clean values: the first configured source decides.
    let pai = format!("P-Asserted-Identity: <tel:+{CLEAN}>\r\n");
    let s = send(&core, &invite("12025550123", &pai), TRUSTED);
    assert_eq!(
        s.outcome.decision.as_ref().unwrap().identity,
        Some(IdentitySource::Pai)
    );
    let (core, _) = core_with(|c| {
        c.proxy.trusted_peers = vec!["10.0.0.0/8".parse().unwrap()];
        c.proxy.identity_order = vec![IdentitySource::From, IdentitySource::Pai];
    });
    let s = send(&core, &invite("12025550123", &pai), TRUSTED);
    assert_eq!(
        s.outcome.decision.as_ref().unwrap().identity,
        Some(IdentitySource::From)
    );
}

#[test]
fn an_anonymous_from_does_not_hide_a_trusted_pai_number() {
    let anon = with_from("From: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=from-1\r\n");
    let pai = format!("P-Asserted-Identity: <tel:+{BLOCKED}>\r\nPrivacy: id\r\n");
    let input = anon.replace("Content-Type:", &format!("{pai}Content-Type:"));
    assert_blocked(
        &send(&trusting(), &input, TRUSTED),
        TRUSTED,
        IdentitySource::Pai,
    );
}

#[test]
fn the_common_call_is_one_lookup() {
    let (core, table) = core_with(|c| c.proxy.trusted_peers = vec!["10.0.0.0/8".parse().unwrap()]);
    send(&core, &invite(CLEAN, ""), CALLER);
    assert_eq!(table.calls.load(Ordering::Relaxed), 1);
    // A trusted PAI carrying the From URI, and its tel twin: still one lookup.
    let pai = format!(
        "P-Asserted-Identity: <sip:+{CLEAN}@192.0.2.1>\r\nP-Asserted-Identity: <tel:+{CLEAN}>\r\n"
    );
    send(&core, &invite(CLEAN, &pai), TRUSTED);
    assert_eq!(table.calls.load(Ordering::Relaxed), 2);
}

// ----- Untrusted identity is not passed on --------------------------------------------------

#[test]
fn untrusted_pai_and_rpid_are_removed_before_forwarding_and_counted() {
    let extra = format!(
        "P-Asserted-Identity: <sip:+{CLEAN}@x>\r\np-asserted-identity: <tel:+{CLEAN}>\r\n\
         Remote-Party-ID: <sip:+{CLEAN}@x>;party=calling;screen=yes\r\n"
    );
    let input = invite("12025550123", &extra);
    let s = send(&trusting(), &input, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    let m = s.msg();
    assert_eq!(m.p_asserted_identities().count(), 0, "{}", s.text());
    assert_eq!(m.remote_party_ids().count(), 0, "{}", s.text());
    assert_eq!(
        s.outcome.identity_removed,
        IdentityRemoved { pai: 2, rpid: 1 }
    );
    // Everything else is forwarded as it came.
    assert_eq!(header(&m, "Contact"), header(&parse(&input), "Contact"));
    assert_eq!(header(&m, "From"), header(&parse(&input), "From"));

    // An in-dialog request loses them too.
    let bye = format!(
        "BYE sip:+15550001@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-bye\r\n\
         From: <sip:+12025550123@192.0.2.1>;tag=from-1\r\nTo: <sip:+15550001@127.0.0.1>;tag=sw\r\n\
         Call-ID: call-1@192.0.2.1\r\nCSeq: 2 BYE\r\nP-Asserted-Identity: <tel:+{CLEAN}>\r\n\r\n"
    );
    let s = send(&trusting(), &bye, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(s.msg().p_asserted_identities().count(), 0);
    assert_eq!(
        s.outcome.identity_removed,
        IdentityRemoved { pai: 1, rpid: 0 }
    );
}

#[test]
fn trusted_pai_and_rpid_are_kept() {
    let extra = format!(
        "P-Asserted-Identity: \"Real\" <sip:+{CLEAN}@x>\r\n\
         Remote-Party-ID: <sip:+{CLEAN}@x>;party=calling;screen=yes\r\n"
    );
    let input = invite(CLEAN, &extra);
    let s = send(&trusting(), &input, TRUSTED);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    let (m, orig) = (s.msg(), parse(&input));
    for h in ["P-Asserted-Identity", "Remote-Party-ID"] {
        assert_eq!(header(&m, h), header(&orig, h), "{h}");
    }
    assert!(s.outcome.identity_removed.is_empty());
}

// ----- One From, one To, one Call-ID ---------------------------------------------------------

#[test]
fn two_froms_are_answered_400_and_nothing_is_forwarded() {
    let clean_then_listed = format!(
        "From: <sip:+{CLEAN}@192.0.2.1>;tag=from-1\r\nFrom: <sip:+{BLOCKED}@192.0.2.1>;tag=from-2\r\n"
    );
    let compact_then_full =
        format!("f: <sip:+{CLEAN}@192.0.2.1>;tag=from-1\r\nFrom: <sip:+{BLOCKED}@192.0.2.1>\r\n");
    let far_apart = format!("From: <sip:+{CLEAN}@192.0.2.1>;tag=from-1\r\n");
    let far_apart = with_from(&far_apart).replace(
        "Content-Type:",
        &format!("FROM: <sip:+{BLOCKED}@192.0.2.1>\r\nContent-Type:"),
    );
    let one_line =
        format!("From: <sip:+{CLEAN}@192.0.2.1>;tag=from-1, <sip:+{BLOCKED}@192.0.2.1>\r\n");
    for input in [
        with_from(&clean_then_listed),
        with_from(&compact_then_full),
        far_apart,
        with_from(&one_line),
    ] {
        for core in [core(), trusting()] {
            assert_refused(&send(&core, &input, CALLER), "duplicate_from");
        }
    }
}

#[test]
fn two_to_or_two_call_id_lines_are_answered_400() {
    let base = invite(CLEAN, "");
    let two_to = base.replace(
        "To: <sip:+15550001@127.0.0.1>\r\n",
        "To: <sip:+15550001@127.0.0.1>\r\nt: <sip:+15550002@127.0.0.1>\r\n",
    );
    assert_refused(&send(&core(), &two_to, CALLER), "duplicate_to");
    let two_call_ids = base.replace(
        "Call-ID: call-1@192.0.2.1\r\n",
        "i: call-1@192.0.2.1\r\nCall-ID: call-2@192.0.2.1\r\n",
    );
    assert_refused(&send(&core(), &two_call_ids, CALLER), "duplicate_call_id");
    // In-dialog requests too.
    let bye =
        "BYE sip:b@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-b\r\n\
               From: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nTo: <sip:c@x>;tag=3\r\n\
               Call-ID: c\r\nCSeq: 2 BYE\r\n\r\n";
    // This minimal BYE is smaller than its 400, so from an untrusted UDP source the answer
    // is withheld (the reflection cap) but the refusal still counts; a trusted peer gets it.
    let s = send(&core(), bye, CALLER);
    assert!(s.out.is_empty(), "{s:?}");
    assert_eq!(s.outcome.error, Some("duplicate_to"));
    let trusted = "10.0.0.7:5060";
    let s = send(
        &trusting(),
        &bye.replace("192.0.2.1:5060", trusted),
        trusted,
    );
    assert_eq!(s.outcome.disposition, Disposition::Answered(400), "{s:?}");
    assert_eq!(s.outcome.error, Some("duplicate_to"));
    assert_eq!(s.one().destination, addr(trusted));
}

#[test]
fn an_ack_with_two_froms_is_dropped_not_answered() {
    let ack = "ACK sip:b@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-a\r\n\
               From: <sip:a@192.0.2.1>;tag=1\r\nf: <sip:z@192.0.2.1>;tag=9\r\nTo: <sip:b@x>;tag=2\r\n\
               Call-ID: c\r\nCSeq: 1 ACK\r\n\r\n";
    let s = send(&core(), ack, CALLER);
    assert!(s.out.is_empty(), "{s:?}");
    assert!(matches!(s.outcome.disposition, Disposition::Dropped(_)));
    assert_eq!(s.outcome.error, Some("duplicate_from"));
}

fn parse(s: &str) -> SipMessage {
    SipMessage::parse(
        bytes::Bytes::copy_from_slice(s.as_bytes()),
        &fraudwall::sip::Limits::default(),
    )
    .unwrap()
}
