//! Issue 9, byte in, bytes out: dialog proofs (a To-tag alone means nothing), routing
//! confinement (no open relay), `allowed_sources`, and the reflection rule (answers to
//! untrusted UDP sources are never larger than the request).

use bytes::Bytes;
use fraudwall::blocklist::Action;
use fraudwall::numbers::Caller;
use fraudwall::policy::{CallContext, Reason, Screen, Verdict};
use fraudwall::proxy::core::{
    CoreConfig, DialogKey, Disposition, ForeignRoute, ProofCheck, ProxyCore, ReplyFit,
    RoutingRefusal,
};
use fraudwall::proxy::{Inbound, Outbound, Outcome, Transport};
use fraudwall::sip::{Limits, SipMessage};
use std::net::SocketAddr;
use std::time::Instant;

const LOCAL: &str = "127.0.0.1:5060";
const CALLER: &str = "192.0.2.1:5060";
const HOP: &str = "127.0.0.1:5080";
const LISTED: &str = "12025550100";
const CLEAN: &str = "12025550123";

/// Blocks [`LISTED`], allows everyone else.
struct OneListed;
impl Screen for OneListed {
    fn screen(&self, call: &CallContext<'_>) -> Verdict {
        let caller = call.caller;
        match caller {
            Caller::Number(n) if n.digits() == LISTED => {
                Verdict::listed(Action::Block, "impersonation", 95)
            }
            Caller::Number(_) => Verdict::unlisted(),
            Caller::Anonymous => Verdict::new(Action::Allow, Reason::Anonymous),
            Caller::Invalid(_) | Caller::Decorated { .. } => {
                Verdict::new(Action::Allow, Reason::Invalid)
            }
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn core_with(f: impl FnOnce(&mut CoreConfig)) -> ProxyCore {
    let mut c = CoreConfig {
        dialog_key: DialogKey::from_secret(b"a test key of enough bytes"),
        ..CoreConfig::default()
    };
    c.proxy.record_route = true;
    f(&mut c);
    ProxyCore::new(c, std::sync::Arc::new(OneListed)).unwrap()
}

fn send_over(core: &ProxyCore, data: &str, source: &str, t: Transport) -> (Outcome, Vec<Outbound>) {
    let mut out = Vec::new();
    let o = core.handle(
        Inbound {
            data: Bytes::copy_from_slice(data.as_bytes()),
            source: addr(source),
            local: addr(LOCAL),
            transport: t,
            verified_peer: false,
            queued: None,
        },
        Instant::now(),
        &mut out,
    );
    (o, out)
}

fn send(core: &ProxyCore, data: &str, source: &str) -> (Outcome, Vec<Outbound>) {
    send_over(core, data, source, Transport::Udp)
}

fn parse(o: &Outbound) -> SipMessage {
    SipMessage::parse(o.data.clone(), &Limits::default()).unwrap()
}

fn header(m: &SipMessage, name: &str) -> Option<String> {
    m.header(name)
        .map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap())
}

/// An INVITE from `caller` with a To-tag `to_tag` (empty: none), Call-ID `call`, extra lines.
fn invite(caller: &str, to_tag: &str, call: &str, extra: &str) -> String {
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    format!(
        "INVITE sip:+15550001@127.0.0.1:5080 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-{call}\r\n\
         {extra}\
         Max-Forwards: 70\r\n\
         From: <sip:+{caller}@192.0.2.1>;tag=from-1\r\n\
         To: <sip:+15550001@127.0.0.1>{to_tag}\r\n\
         Call-ID: {call}\r\n\
         CSeq: 2 INVITE\r\n\
         Contact: <sip:+{caller}@192.0.2.1:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Our Record-Route URI for the dialog `call` (from an allowed initial INVITE).
fn our_route(core: &ProxyCore, call: &str) -> String {
    let (o, out) = send(core, &invite(CLEAN, "", call, ""), CALLER);
    assert_eq!(o.disposition, Disposition::Forwarded);
    let rr = header(&parse(&out[0]), "Record-Route").unwrap();
    assert!(rr.starts_with("<sip:127.0.0.1:5060;lr;fwd="), "{rr}");
    rr
}

// ----- dialog proof -----------------------------------------------------------------------

#[test]
fn a_to_tag_without_proof_is_screened_like_an_initial_invite() {
    let core = core_with(|_| {});
    let (o, out) = send(&core, &invite(LISTED, "x", "c1", ""), CALLER);
    assert_eq!(o.disposition, Disposition::Answered(608));
    assert_eq!(o.checks.proof, Some(ProofCheck::Refused));
    assert!(o.decision.is_some());
    assert!(out.iter().all(|m| m.destination != addr(HOP)));
    // Our Route without a proof is no better.
    let r = "Route: <sip:127.0.0.1:5060;lr>\r\n";
    let (o, _) = send(&core, &invite(LISTED, "x", "c1", r), CALLER);
    assert_eq!(o.disposition, Disposition::Answered(608));
    // Nor without record_route, where no proof is ever written.
    let core = core_with(|c| c.proxy.record_route = false);
    let (o, _) = send(&core, &invite(LISTED, "x", "c1", ""), CALLER);
    assert_eq!(o.disposition, Disposition::Answered(608));
}

#[test]
fn a_valid_proof_passes_unscreened_from_either_side() {
    let core = core_with(|_| {});
    let rr = our_route(&core, "c2");
    let route = format!("Route: {rr}\r\n");
    // The caller's re-INVITE (a listed From is not screened again: it is in-dialog).
    let (o, out) = send(&core, &invite(LISTED, "callee", "c2", &route), CALLER);
    assert_eq!(o.disposition, Disposition::Forwarded, "{o:?}");
    assert_eq!(o.checks.proof, Some(ProofCheck::Accepted));
    assert!(o.decision.is_none());
    assert_eq!(out[0].destination, addr(HOP));
    assert!(
        header(&parse(&out[0]), "Route").is_none(),
        "our Route is popped"
    );
    // The callee's re-INVITE: From-tag is the callee's, To-tag the caller's.
    let from_callee = format!(
        "INVITE sip:+{CLEAN}@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKre\r\n\
         Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:+15550001@127.0.0.1>;tag=callee\r\n\
         To: <sip:+{CLEAN}@192.0.2.1>;tag=from-1\r\nCall-ID: c2\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    let core = core_with(|c| c.proxy.trusted_peers = vec!["192.0.2.0/24".parse().unwrap()]);
    let (o, out) = send(&core, &from_callee, HOP);
    assert_eq!(o.checks.proof, Some(ProofCheck::Accepted), "{o:?}");
    assert_eq!(o.disposition, Disposition::Forwarded);
    assert_eq!(out[0].destination, addr(CALLER));
}

#[test]
fn a_forged_or_other_dialogs_proof_is_screened() {
    let core = core_with(|_| {});
    let rr = our_route(&core, "c3");
    // Another dialog's proof.
    let route = format!("Route: {rr}\r\n");
    let (o, _) = send(&core, &invite(LISTED, "t", "other-call", &route), CALLER);
    assert_eq!(o.disposition, Disposition::Answered(608));
    assert_eq!(o.checks.proof, Some(ProofCheck::Refused));
    // A made-up proof.
    let forged = "Route: <sip:127.0.0.1:5060;lr;fwd=0123456789abcdef>\r\n";
    let (o, _) = send(&core, &invite(LISTED, "t", "c3", forged), CALLER);
    assert_eq!(o.disposition, Disposition::Answered(608));
    // The right proof under another node's key.
    let other = core_with(|c| c.dialog_key = DialogKey::from_secret(b"another node's key!!"));
    let (o, _) = send(&other, &invite(LISTED, "t", "c3", &route), CALLER);
    assert_eq!(o.disposition, Disposition::Answered(608));
}

// ----- routing confinement ----------------------------------------------------------------

#[test]
fn a_foreign_route_on_an_initial_invite_is_ignored_or_rejected() {
    for route in [
        "Route: <sip:127.0.0.9:5999;lr>\r\n",
        "Route: <sip:127.0.0.9:5999>\r\n",
        "Route: <sip:127.0.0.1:5060;lr>, <sip:127.0.0.9:5999;lr>\r\n",
        "Route: <sip:relay.example.net;lr>\r\n",
    ] {
        let core = core_with(|_| {});
        let (o, out) = send(&core, &invite(CLEAN, "", "r1", route), CALLER);
        assert_eq!(o.disposition, Disposition::Forwarded, "{route}");
        assert_eq!(o.checks.routing, Some(RoutingRefusal::RouteIgnored));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].destination, addr(HOP), "{route}");
        assert!(header(&parse(&out[0]), "Route").is_none(), "{route}");

        let core = core_with(|c| c.proxy.foreign_route = ForeignRoute::Reject);
        let (o, out) = send(&core, &invite(CLEAN, "", "r1", route), CALLER);
        assert_eq!(o.disposition, Disposition::Answered(403), "{route}");
        assert_eq!(o.checks.routing, Some(RoutingRefusal::RouteRejected));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].destination, addr(CALLER));
    }
    // A Route naming a next hop is followed.
    let core = core_with(|c| c.proxy.foreign_route = ForeignRoute::Reject);
    let (o, out) = send(
        &core,
        &invite(CLEAN, "", "r2", "Route: <sip:127.0.0.1:5080;lr>\r\n"),
        CALLER,
    );
    assert_eq!(o.disposition, Disposition::Forwarded);
    assert_eq!(o.checks.routing, None);
    assert_eq!(out[0].destination, addr(HOP));
}

fn bye(uri: &str, route: &str) -> String {
    format!(
        "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKbye1\r\n{route}\
         Max-Forwards: 70\r\nFrom: <sip:+15550001@127.0.0.1>;tag=callee\r\n\
         To: <sip:+{CLEAN}@192.0.2.1>;tag=from-1\r\nCall-ID: c9\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn in_dialog_requests_go_only_to_next_hops_and_configured_peers() {
    let ours = "Route: <sip:127.0.0.1:5060;lr>\r\n";
    let core = core_with(|c| c.proxy.trusted_peers = vec!["192.0.2.0/24".parse().unwrap()]);
    // To a foreign address by Request-URI, or by Route.
    let (o, out) = send(&core, &bye("sip:x@127.0.0.9:5999", ours), CALLER);
    assert_eq!(o.disposition, Disposition::Answered(403));
    assert_eq!(o.checks.routing, Some(RoutingRefusal::InDialogRequestUri));
    assert!(out.iter().all(|m| m.destination != addr("127.0.0.9:5999")));
    let (o, _) = send(
        &core,
        &bye(
            "sip:x@127.0.0.1:5080",
            "Route: <sip:127.0.0.1:5060;lr>, <sip:198.51.100.7;lr>\r\n",
        ),
        CALLER,
    );
    assert_eq!(o.disposition, Disposition::Answered(403));
    assert_eq!(o.checks.routing, Some(RoutingRefusal::InDialogRoute));
    // To a next hop, and to a configured peer (the callee's BYE towards the caller's SBC).
    let (o, out) = send(&core, &bye("sip:x@127.0.0.1:5080", ours), CALLER);
    assert_eq!(o.disposition, Disposition::Forwarded);
    assert_eq!(out[0].destination, addr(HOP));
    let (o, out) = send(
        &core,
        &bye(&format!("sip:+{CLEAN}@192.0.2.1:5060"), ours),
        HOP,
    );
    assert_eq!(o.disposition, Disposition::Forwarded);
    assert_eq!(out[0].destination, addr(CALLER));
    // allowed_sources networks count as peers too.
    let core = core_with(|c| c.sip.allowed_sources = vec!["192.0.2.0/24".parse().unwrap()]);
    let (o, out) = send(
        &core,
        &bye(&format!("sip:+{CLEAN}@192.0.2.1:5060"), ours),
        HOP,
    );
    assert_eq!(o.disposition, Disposition::Forwarded);
    assert_eq!(out[0].destination, addr(CALLER));
    // Without either, the same BYE is refused.
    let core = core_with(|_| {});
    let (o, _) = send(
        &core,
        &bye(&format!("sip:+{CLEAN}@192.0.2.1:5060"), ours),
        HOP,
    );
    assert_eq!(o.disposition, Disposition::Answered(403));
}

// ----- who may talk to it -----------------------------------------------------------------

#[test]
fn sources_outside_allowed_sources_get_nothing() {
    let core = core_with(|c| c.sip.allowed_sources = vec!["10.0.0.0/8".parse().unwrap()]);
    let (o, out) = send(&core, &invite(LISTED, "", "s1", ""), CALLER);
    assert!(out.is_empty());
    assert_eq!(o.disposition, Disposition::Dropped("source_not_allowed"));
    assert!(o.checks.source_refused);
    let (o, out) = send(&core, &invite(CLEAN, "", "s1", ""), "10.1.2.3:5060");
    assert_eq!(o.disposition, Disposition::Forwarded);
    assert_eq!(out.len(), 1);
    // The next hop is always allowed (its responses and in-dialog requests).
    let (o, _) = send(&core, &bye("sip:x@10.0.0.5", ""), HOP);
    assert!(!o.checks.source_refused);
    // Empty: anyone.
    let core = core_with(|_| {});
    let (o, _) = send(&core, &invite(CLEAN, "", "s1", ""), CALLER);
    assert_eq!(o.disposition, Disposition::Forwarded);
}

// ----- reflection -------------------------------------------------------------------------

#[test]
fn answers_to_untrusted_udp_sources_are_never_larger_than_the_request() {
    let long = format!("https://redress.example.net/{}", "r".repeat(300));
    let core = core_with(|c| c.actions.redress_url = long.clone());
    // A minimal blocked INVITE, about 140 bytes.
    let minimal = format!(
        "INVITE sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         From: <sip:+{LISTED}@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
    );
    assert!((130..=150).contains(&minimal.len()), "{}", minimal.len());
    let (o, out) = send(&core, &minimal, CALLER);
    let sent: usize = out.iter().map(|m| m.data.len()).sum();
    assert!(sent <= minimal.len(), "{sent} > {}", minimal.len());
    assert_eq!(o.checks.reply, Some(ReplyFit::Withheld));
    assert_eq!(o.disposition, Disposition::Dropped("reflection_limit"));
    assert!(o.decision.is_some(), "the block is still logged");
    // A full INVITE gets its 608, without the Call-Info when that would not fit.
    let full = invite(LISTED, "", "f1", "");
    let (o, out) = send(&core, &full, CALLER);
    assert_eq!(o.disposition, Disposition::Answered(608));
    assert_eq!(o.checks.reply, Some(ReplyFit::Trimmed));
    assert!(out[0].data.len() <= full.len());
    assert!(header(&parse(&out[0]), "Call-Info").is_none());
    // Trusted peers and TCP are not limited.
    let trusting = core_with(|c| {
        c.actions.redress_url = long.clone();
        c.proxy.trusted_peers = vec!["192.0.2.1".parse().unwrap()];
    });
    let (o, out) = send(&trusting, &minimal, CALLER);
    assert_eq!(o.disposition, Disposition::Answered(608));
    assert!(header(&parse(&out[0]), "Call-Info").is_some());
    let (o, out) = send_over(&core, &minimal, CALLER, Transport::Tcp);
    assert_eq!(o.disposition, Disposition::Answered(608));
    assert!(out[0].data.len() > minimal.len());

    // Garbage INVITEs answered 400 (salvaged, and with a bad mandatory header).
    for garbage in [
        "INVITE sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nbroken line\r\n\r\n".to_string(),
        "INVITE sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>\r\nCSeq: 1 INVITE\r\n\r\n".to_string(),
        invite(CLEAN, "", "g1", "").replace("Contact: ", "Contact "),
    ] {
        let (o, out) = send(&core, &garbage, CALLER);
        let sent: usize = out.iter().map(|m| m.data.len()).sum();
        assert!(sent <= garbage.len(), "{sent} > {}: {o:?}", garbage.len());
        assert!(
            matches!(
                o.disposition,
                Disposition::Answered(400) | Disposition::Dropped("reflection_limit")
            ),
            "{o:?}"
        );
    }
}
