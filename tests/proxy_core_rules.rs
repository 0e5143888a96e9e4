//! The proxy core's rules, byte in, bytes out (RFC 3261 §16, stateless §16.11).
//!
//! Every test feeds raw SIP to `ProxyCore::handle` and checks the bytes it sends, where it
//! sends them and the `Outcome`. The screen is a fixed table (`Table`), so these tests do
//! not depend on the blocklist engine.

mod core_support;

use bytes::Bytes;
use core_support::*;
use fraudwall::blocklist::Action;
use fraudwall::numbers::Caller;
use fraudwall::policy::{CallContext, Reason, Screen, Verdict};
use fraudwall::proxy::core::{
    CoreConfig, Disposition, IdentitySource, MessageClass, NextHop, ProxyCore,
};
use fraudwall::proxy::{Inbound, Transport};
use fraudwall::sip::{Limits, Method, SipMessage};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Panics;
impl Screen for Panics {
    fn screen(&self, _: &CallContext<'_>) -> Verdict {
        panic!("lookup failed");
    }
}

fn vias(m: &SipMessage) -> Vec<String> {
    m.vias()
        .map(|v| String::from_utf8(v.unwrap().raw().to_vec()).unwrap())
        .collect()
}

fn top_branch(m: &SipMessage) -> String {
    let v = m.top_via().unwrap().unwrap();
    String::from_utf8(v.branch().unwrap().to_vec()).unwrap()
}

/// A response to a forwarded request, as the next hop would send it: its Vias copied.
fn response_to(forwarded: &SipMessage, status: &str, to_tag: &str) -> String {
    let mut s = format!("SIP/2.0 {status}\r\n");
    for v in vias(forwarded) {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    let from = header(forwarded, "From").unwrap();
    let to = header(forwarded, "To").unwrap();
    let call_id = header(forwarded, "Call-ID").unwrap();
    let cseq = header(forwarded, "CSeq").unwrap();
    s.push_str(&format!(
        "From: {from}\r\nTo: {to};tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    ));
    s
}

// ----- allow, Via, Max-Forwards ----------------------------------------------------------

#[test]
fn allow_forwards_unchanged_but_for_via_and_max_forwards() {
    let core = core();
    let input = invite("12025550123", "");
    let s = send(&core, &input, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(s.outcome.class, MessageClass::Request(Method::Invite));
    assert_eq!(s.one().destination, addr(HOP));
    assert_eq!(s.one().transport, Transport::Udp);
    let text = s.text();
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next(),
        Some("INVITE sip:+15550001@127.0.0.1:5060 SIP/2.0")
    );
    let ours = lines.next().unwrap();
    assert!(
        ours.starts_with("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfw"),
        "{ours}"
    );
    // Everything else is the input with Max-Forwards decremented.
    let rest: Vec<&str> = lines.collect();
    let expected = input.replace("Max-Forwards: 70", "Max-Forwards: 69");
    let expected: Vec<&str> = expected.split("\r\n").skip(1).collect();
    assert_eq!(rest, expected);
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(d.verdict.reason, Reason::Unlisted);
    assert_eq!(d.applied, Action::Allow);
    assert_eq!(d.call_id, "call-1@192.0.2.1");
    assert_eq!(d.identity, Some(IdentitySource::From));
    assert_eq!(d.caller_raw, "sip:+12025550123@192.0.2.1");
    assert_eq!(d.callee_raw, "sip:+15550001@127.0.0.1:5060");
    // +1 555 0001 is too short for a NANP number: the callee is not a number.
    assert_eq!(d.callee, None);
    assert_eq!(&*d.peer_group, "default");
    assert_eq!(
        s.outcome.sent(),
        Some(MessageClass::Request(Method::Invite))
    );
}

#[test]
fn missing_max_forwards_is_inserted_as_70() {
    let input = invite("12025550123", "").replace("Max-Forwards: 70\r\n", "");
    let s = send(&core(), &input, CALLER);
    assert_eq!(s.msg().max_forwards(), Ok(Some(70)));
}

#[test]
fn max_forwards_zero_is_answered_483_and_an_ack_is_dropped() {
    let core = core();
    let s = send(
        &core,
        &invite("12025550123", "").replace("Max-Forwards: 70", "Max-Forwards: 0"),
        CALLER,
    );
    assert_eq!(s.outcome.disposition, Disposition::Answered(483));
    assert_eq!(s.one().destination, addr(CALLER));
    let m = s.msg();
    assert_eq!(m.status(), Some(483));
    assert!(m.to().unwrap().unwrap().tag().is_some());
    assert!(s.outcome.decision.is_none(), "not screened");
    let ack = "ACK sip:b@10.0.0.9 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\nMax-Forwards: 0\r\n\
               From: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 ACK\r\n\r\n";
    let s = send(&core, ack, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Dropped("too_many_hops"));
    assert!(s.out.is_empty());
}

// ----- §16.11 branch: retransmissions, CANCEL, ACK -----------------------------------------

#[test]
fn retransmission_gets_the_same_branch_and_bytes() {
    let core = core();
    let a = send(&core, &invite("12025550123", ""), CALLER);
    let b = send(&core, &invite("12025550123", ""), CALLER);
    assert_eq!(a.one().data, b.one().data);
    // A new transaction (new client branch) gets a new branch.
    let c = send(
        &core,
        &invite("12025550123", "").replace("z9hG4bK-inv-1", "z9hG4bK-inv-2"),
        CALLER,
    );
    assert_ne!(top_branch(&a.msg()), top_branch(&c.msg()));
}

#[test]
fn cancel_and_non_2xx_ack_follow_the_invite_branch_and_hop() {
    let core = core();
    let inv = send(&core, &invite("12025550123", ""), CALLER);
    let cancel = "CANCEL sip:+15550001@127.0.0.1:5060 SIP/2.0\r\n\
                  Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-inv-1\r\n\
                  Max-Forwards: 70\r\nFrom: \"Caller\" <sip:+12025550123@192.0.2.1>;tag=from-1\r\n\
                  To: <sip:+15550001@127.0.0.1>\r\nCall-ID: call-1@192.0.2.1\r\nCSeq: 1 CANCEL\r\n\
                  Content-Length: 0\r\n\r\n";
    let c = send(&core, cancel, CALLER);
    assert_eq!(c.outcome.disposition, Disposition::Forwarded);
    assert!(c.outcome.decision.is_none(), "CANCEL is not screened");
    assert_eq!(top_branch(&c.msg()), top_branch(&inv.msg()));
    assert_eq!(c.one().destination, inv.one().destination);
    let ack = "ACK sip:+15550001@127.0.0.1:5060 SIP/2.0\r\n\
               Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-inv-1\r\n\
               Max-Forwards: 70\r\nFrom: \"Caller\" <sip:+12025550123@192.0.2.1>;tag=from-1\r\n\
               To: <sip:+15550001@127.0.0.1>;tag=switch-486\r\nCall-ID: call-1@192.0.2.1\r\nCSeq: 1 ACK\r\n\
               Content-Length: 0\r\n\r\n";
    let a = send(&core, ack, CALLER);
    assert_eq!(a.outcome.disposition, Disposition::Forwarded);
    assert_eq!(top_branch(&a.msg()), top_branch(&inv.msg()));
    assert_eq!(a.one().destination, inv.one().destination);
}

#[test]
fn rfc2543_client_without_cookie_still_gets_a_stable_branch() {
    let core = core();
    let input = invite("12025550123", "").replace("branch=z9hG4bK-inv-1", "branch=old1");
    let a = send(&core, &input, CALLER);
    let b = send(&core, &input, CALLER);
    assert_eq!(top_branch(&a.msg()), top_branch(&b.msg()));
    assert!(top_branch(&a.msg()).starts_with("z9hG4bKfw"));
}

// ----- loops -------------------------------------------------------------------------------

/// An INVITE forwarded by `core` and sent straight back to it by the next hop (the hop's
/// Via on top).
fn bounced_back(core: &ProxyCore) -> String {
    let first = send(core, &invite("12025550123", ""), CALLER);
    String::from_utf8(first.one().data.to_vec())
        .unwrap()
        .replacen(
            "Via: ",
            "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKswitch\r\nVia: ",
            1,
        )
}

#[test]
fn a_request_that_comes_back_unchanged_is_a_loop_482() {
    let core = core();
    let back = bounced_back(&core);
    let s = send(&core, &back, HOP);
    assert_eq!(s.outcome.disposition, Disposition::Answered(482));
    assert_eq!(s.msg().status(), Some(482));
    assert_eq!(s.one().destination, addr(HOP));
}

#[test]
fn a_next_hop_pointing_at_the_proxy_itself_is_a_loop_482() {
    let (core, _) = core_with(|c| {
        c.proxy.next_hops = vec![NextHop {
            address: addr(LOCAL),
            transport: Transport::Udp,
        }
        .into()]
    });
    let first = send(&core, &invite("12025550123", ""), CALLER);
    assert_eq!(first.one().destination, addr(LOCAL));
    let again = String::from_utf8(first.one().data.to_vec()).unwrap();
    let s = send(&core, &again, LOCAL);
    assert_eq!(s.outcome.disposition, Disposition::Answered(482));
}

#[test]
fn a_spiral_with_a_new_request_uri_is_forwarded() {
    let core = core();
    let back = bounced_back(&core).replace(
        "INVITE sip:+15550001@127.0.0.1:5060",
        "INVITE sip:+15550002@127.0.0.1:5060",
    );
    let s = send(&core, &back, HOP);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(s.msg().via_count(), 4);
}

// ----- responses ---------------------------------------------------------------------------

#[test]
fn responses_pop_our_via_and_follow_received_and_rport() {
    let core = core();
    // The caller sits behind NAT: Via says 10.1.1.1:5060, the packet came from 203.0.113.5:40000.
    let input = invite("12025550123", "").replace(
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-inv-1",
        "Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK-inv-1;rport",
    );
    let fwd = send(&core, &input, "203.0.113.5:40000");
    let m = fwd.msg();
    let v = vias(&m);
    assert_eq!(v.len(), 2);
    assert_eq!(
        v[1],
        "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK-inv-1;received=203.0.113.5;rport=40000"
    );
    for (status, tag) in [
        ("180 Ringing", "t1"),
        ("200 OK", "t1"),
        ("486 Busy Here", "t2"),
    ] {
        let resp = response_to(&m, status, tag);
        let s = send(&core, &resp, HOP);
        assert_eq!(s.outcome.disposition, Disposition::Forwarded, "{status}");
        assert_eq!(s.one().destination, addr("203.0.113.5:40000"));
        assert_eq!(s.one().transport, Transport::Udp);
        let r = s.msg();
        assert_eq!(vias(&r), vec![v[1].clone()]);
        assert_eq!(s.outcome.class, MessageClass::Response(r.status().unwrap()));
    }
}

#[test]
fn received_is_added_when_the_sent_by_differs_and_responses_use_the_via_port() {
    let core = core();
    let input =
        invite("12025550123", "").replace("192.0.2.1:5060;branch", "gw.example.net:5070;branch");
    let fwd = send(&core, &input, "192.0.2.9:5070");
    let m = fwd.msg();
    assert_eq!(
        vias(&m)[1],
        "SIP/2.0/UDP gw.example.net:5070;branch=z9hG4bK-inv-1;received=192.0.2.9"
    );
    let s = send(&core, &response_to(&m, "180 Ringing", "x"), HOP);
    assert_eq!(s.one().destination, addr("192.0.2.9:5070"));
    // No received needed: the Via is left as it was.
    let fwd = send(&core, &invite("12025550123", ""), CALLER);
    assert_eq!(
        vias(&fwd.msg())[1],
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-inv-1"
    );
}

#[test]
fn responses_whose_top_via_is_not_ours_are_dropped() {
    let core = core();
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKfw0123456789abcdef01234567\r\n\
                Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n\
                Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let s = send(&core, resp, HOP);
    assert_eq!(s.outcome.disposition, Disposition::Dropped("via_not_ours"));
    assert!(s.out.is_empty());
    // Our address but not our branch.
    let resp = resp.replace(
        "10.9.9.9:5060;branch=z9hG4bKfw0123456789abcdef01234567",
        "127.0.0.1:5060;branch=z9hG4bKsomeone",
    );
    let s = send(&core, &resp, HOP);
    assert_eq!(s.outcome.disposition, Disposition::Dropped("via_not_ours"));
    // Ours, but nothing below it.
    let fwd = send(&core, &invite("12025550123", ""), CALLER);
    let ours = vias(&fwd.msg())[0].clone();
    let lone = format!("SIP/2.0 200 OK\r\nVia: {ours}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n");
    let s = send(&core, &lone, HOP);
    assert_eq!(s.outcome.disposition, Disposition::Dropped("no_route_back"));
}

// ----- IPv6, TCP ---------------------------------------------------------------------------

#[test]
fn ipv6_vias_and_response_routing() {
    let (core, _) = core_with(|c| {
        c.proxy.next_hops = vec![NextHop {
            address: addr("[::1]:5080"),
            transport: Transport::Udp,
        }
        .into()]
    });
    let input = invite("12025550123", "").replace("192.0.2.1:5060;branch", "[::1]:5070;branch");
    let fwd = send_at(
        &core,
        &input,
        "[::1]:5070",
        "[::1]:5060",
        Transport::Udp,
        Instant::now(),
    );
    assert_eq!(fwd.one().destination, addr("[::1]:5080"));
    let m = fwd.msg();
    let v = vias(&m);
    assert!(
        v[0].starts_with("SIP/2.0/UDP [::1]:5060;branch=z9hG4bKfw"),
        "{}",
        v[0]
    );
    assert_eq!(v[1], "SIP/2.0/UDP [::1]:5070;branch=z9hG4bK-inv-1");
    let s = send_at(
        &core,
        &response_to(&m, "180 Ringing", "t"),
        "[::1]:5080",
        "[::1]:5060",
        Transport::Udp,
        Instant::now(),
    );
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(s.one().destination, addr("[::1]:5070"));
    // A NATed IPv6 sender gets an unbracketed received (RFC 3261 grammar) and rport.
    let input = invite("12025550123", "").replace(
        "192.0.2.1:5060;branch=z9hG4bK-inv-1",
        "[2001:db8::7]:5060;rport;branch=z9hG4bK-inv-1",
    );
    let fwd = send_at(
        &core,
        &input,
        "[2001:db8::99]:41000",
        "[::1]:5060",
        Transport::Udp,
        Instant::now(),
    );
    let m = fwd.msg();
    assert_eq!(
        vias(&m)[1],
        "SIP/2.0/UDP [2001:db8::7]:5060;branch=z9hG4bK-inv-1;received=2001:db8::99;rport=41000"
    );
    let s = send_at(
        &core,
        &response_to(&m, "200 OK", "t"),
        "[::1]:5080",
        "[::1]:5060",
        Transport::Udp,
        Instant::now(),
    );
    assert_eq!(s.one().destination, addr("[2001:db8::99]:41000"));
}

#[test]
fn tcp_in_and_out() {
    let (core, _) = core_with(|c| {
        c.proxy.next_hops = vec![NextHop {
            address: addr(HOP),
            transport: Transport::Tcp,
        }
        .into()]
    });
    let input = invite("12025550123", "")
        .replace("SIP/2.0/UDP 192.0.2.1:5060", "SIP/2.0/TCP 192.0.2.1:5060");
    let fwd = send_at(
        &core,
        &input,
        "192.0.2.1:49152",
        LOCAL,
        Transport::Tcp,
        Instant::now(),
    );
    assert_eq!(fwd.one().transport, Transport::Tcp);
    let m = fwd.msg();
    let v = vias(&m);
    assert!(
        v[0].starts_with("SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKfw"),
        "{}",
        v[0]
    );
    // On a stream the response must go back over the connection: source port recorded.
    assert_eq!(
        v[1],
        "SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-inv-1;received=192.0.2.1;rport=49152"
    );
    let s = send_at(
        &core,
        &response_to(&m, "180 Ringing", "t"),
        HOP,
        LOCAL,
        Transport::Tcp,
        Instant::now(),
    );
    assert_eq!(s.one().destination, addr("192.0.2.1:49152"));
    assert_eq!(s.one().transport, Transport::Tcp);
    // The proxy's own answers go back over the same connection.
    let s = send_at(
        &core,
        &input.replace("Max-Forwards: 70", "Max-Forwards: 0"),
        "192.0.2.1:49152",
        LOCAL,
        Transport::Tcp,
        Instant::now(),
    );
    assert_eq!(
        (s.one().destination, s.one().transport),
        (addr("192.0.2.1:49152"), Transport::Tcp)
    );
}

// ----- next hops: failover and probes -------------------------------------------------------

fn two_hops(c: &mut CoreConfig) {
    c.proxy.next_hops = vec![
        NextHop {
            address: addr("10.0.0.1:5060"),
            transport: Transport::Udp,
        }
        .into(),
        NextHop {
            address: addr("10.0.0.2:5060"),
            transport: Transport::Udp,
        }
        .into(),
    ];
    c.health.down_for = std::time::Duration::from_secs(30);
}

#[test]
fn failover_when_a_hop_is_marked_down_and_back_after_down_for() {
    let (core, _) = core_with(two_hops);
    let t0 = Instant::now();
    let hop_at = |after: Duration| {
        let s = send_at(
            &core,
            &invite("12025550123", ""),
            CALLER,
            LOCAL,
            Transport::Udp,
            t0 + after,
        );
        s.one().destination
    };
    assert_eq!(hop_at(Duration::ZERO), addr("10.0.0.1:5060"));
    core.on_send_error(addr("10.0.0.1:5060"), Transport::Udp, t0);
    assert!(!core.hop_is_up(0, t0));
    assert_eq!(hop_at(Duration::from_secs(1)), addr("10.0.0.2:5060"));
    assert_eq!(hop_at(Duration::from_secs(31)), addr("10.0.0.1:5060"));
}

#[test]
fn probes_are_options_their_answers_absorbed_and_missed_ones_mark_down() {
    let (core, _) = core_with(|c| {
        two_hops(c);
        c.health.probe_interval = std::time::Duration::from_secs(1);
        c.health.max_missed = 2;
        c.sip.advertise = Some("192.0.2.10:5060".parse().unwrap());
    });
    let t0 = Instant::now();
    let mut out = Vec::new();
    core.poll_timeout(t0, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].destination, addr("10.0.0.1:5060"));
    let probe = SipMessage::parse(out[0].data.clone(), &Limits::default()).unwrap();
    assert_eq!(probe.method(), Some(Method::Options));
    assert!(top_branch(&probe).starts_with("z9hG4bKfp"));
    // Not due again within the interval.
    out.clear();
    core.poll_timeout(t0 + Duration::from_millis(500), &mut out);
    assert!(out.is_empty());
    // Hop 1 answers; hop 2 stays silent for two more rounds and goes down.
    let answer = response_to(&probe, "200 OK", "h1");
    let s = send_at(&core, &answer, "10.0.0.1:5060", LOCAL, Transport::Udp, t0);
    assert_eq!(s.outcome.disposition, Disposition::Absorbed);
    assert!(s.out.is_empty());
    core.poll_timeout(t0 + Duration::from_secs(1), &mut out);
    core.poll_timeout(t0 + Duration::from_secs(2), &mut out);
    assert!(core.hop_is_up(0, t0 + Duration::from_secs(2)));
    assert!(!core.hop_is_up(1, t0 + Duration::from_secs(2)));
    // An answer from hop 2 brings it back.
    let p2 = out
        .iter()
        .rev()
        .find(|o| o.destination == addr("10.0.0.2:5060"))
        .unwrap();
    let p2 = SipMessage::parse(p2.data.clone(), &Limits::default()).unwrap();
    send_at(
        &core,
        &response_to(&p2, "405 Method Not Allowed", "h2"),
        "10.0.0.2:5060",
        LOCAL,
        Transport::Udp,
        t0,
    );
    assert!(core.hop_is_up(1, t0 + Duration::from_secs(2)));
}

#[test]
fn no_probes_before_any_sent_by_is_known() {
    let (core, _) = core_with(|c| {
        c.health.probe_interval = std::time::Duration::from_secs(1);
    });
    let mut out = Vec::new();
    let t0 = Instant::now();
    for s in 0..5 {
        core.poll_timeout(t0 + Duration::from_secs(s), &mut out);
    }
    assert!(out.is_empty());
    assert!(core.hop_is_up(0, t0 + Duration::from_secs(5)));
    // Once a message has arrived, its local address is the probes' sent-by.
    send_at(
        &core,
        &invite("12025550123", ""),
        CALLER,
        LOCAL,
        Transport::Udp,
        t0,
    );
    core.poll_timeout(t0 + Duration::from_secs(6), &mut out);
    assert_eq!(out.len(), 1);
    let text = String::from_utf8(out[0].data.to_vec()).unwrap();
    assert!(
        text.contains("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfp"),
        "{text}"
    );
}

// ----- OPTIONS to the proxy ------------------------------------------------------------------

#[test]
fn options_to_the_proxy_is_answered_200_and_others_are_forwarded() {
    // The monitoring switch is a trusted peer: its answers are not size-capped (rule 9; an
    // untrusted source gets the 200 without Allow when it would outgrow the request).
    let (core, _) = core_with(|c| c.proxy.trusted_peers = vec!["192.0.2.1".parse().unwrap()]);
    let opts = |uri: &str, mf: u32| {
        format!(
            "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKo1\r\nMax-Forwards: {mf}\r\n\
             From: <sip:mon@192.0.2.1>;tag=m\r\nTo: <{uri}>\r\nCall-ID: o1\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let s = send(&core, &opts("sip:127.0.0.1:5060", 70), CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(200));
    let m = s.msg();
    assert_eq!(m.status(), Some(200));
    assert_eq!(m.cseq().unwrap().unwrap().seq, 7);
    assert!(header(&m, "Allow").is_some());
    let s = send(&core, &opts("sip:ping@127.0.0.1", 0), CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(200));
    let s = send(&core, &opts("sip:ping@127.0.0.1", 70), CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(s.one().destination, addr(HOP));
    let s = send(&core, &opts("sip:10.0.0.7", 0), CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(483));
}

// ----- malformed input -----------------------------------------------------------------------

#[test]
fn garbage_is_dropped_with_a_reason() {
    let core = core();
    for junk in [
        "",
        "\r\n\r\n",
        "hello world",
        "INVITE sip:a@b SIP/2.0\r\nVia SIP/2.0/UDP x\r\n\r\n",
        "SIP/2.0 999 Nope\r\n\r\n",
    ] {
        let s = send(&core, junk, CALLER);
        assert_eq!(s.outcome.class, MessageClass::Unparsed, "{junk:?}");
        assert_eq!(s.outcome.disposition, Disposition::Dropped("parse"));
        assert!(s.outcome.error.is_some());
        assert!(s.out.is_empty());
    }
    let mut data = vec![0xffu8; 100];
    data.extend_from_slice(b"\r\n\r\n");
    let mut out = Vec::new();
    let o = core.handle(
        Inbound {
            data: Bytes::from(data),
            source: addr(CALLER),
            local: addr(LOCAL),
            transport: Transport::Udp,
            verified_peer: false,
            queued: None,
        },
        Instant::now(),
        &mut out,
    );
    assert!(matches!(o.disposition, Disposition::Dropped(_)));
    assert!(out.is_empty());
}

#[test]
fn requests_the_parser_refuses_are_answered_when_their_via_is_readable() {
    let core = core();
    let good = invite("12025550123", "");
    for (broken, status, reason) in [
        (good.replace("Contact: ", "Contact "), 400, "bad_header"),
        (
            good.replace("Content-Length: 4", "Content-Length: 40"),
            400,
            "body_truncated",
        ),
        (
            good.replace(
                "INVITE sip:+15550001@127.0.0.1:5060 SIP/2.0",
                "INVITE sip:+15550001@127.0.0.1:5060 SIP/3.0",
            ),
            505,
            "unsupported_version",
        ),
        (
            good.replace("Via: ", "v: ")
                .replace("From: ", "f: ")
                .replace("To: ", "t: ")
                .replace("Call-ID: ", "i: ")
                .replace("Contact: ", "Contact "),
            400,
            "bad_header",
        ),
    ] {
        let s = send(&core, &broken, CALLER);
        assert_eq!(s.outcome.class, MessageClass::Unparsed);
        assert_eq!(
            s.outcome.disposition,
            Disposition::Answered(status),
            "{reason}"
        );
        assert_eq!(s.outcome.error, Some(reason));
        assert_eq!(s.one().destination, addr(CALLER));
        let m = s.msg();
        assert_eq!(m.status(), Some(status));
        assert_eq!(top_branch(&m), "z9hG4bK-inv-1");
        assert_eq!(m.call_id().unwrap().as_bytes(), b"call-1@192.0.2.1");
        assert_eq!(m.cseq().unwrap().unwrap().seq, 1);
    }
    // An ACK, or a request without a readable Via, is only dropped.
    let ack = good
        .replace("INVITE sip:", "ACK sip:")
        .replace("1 INVITE", "1 ACK")
        .replace("Contact: ", "Contact ");
    let s = send(&core, &ack, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Dropped("parse"));
    assert!(s.out.is_empty());
    let no_via = good
        .replace("Contact: ", "Contact ")
        .replace("Via: SIP/2.0/UDP 192.0.2.1:5060", "Via: junk here");
    let s = send(&core, &no_via, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Dropped("parse"));
    assert_eq!(s.outcome.error, Some("bad_header"));
}

#[test]
fn bad_mandatory_headers_are_answered_400_when_routable() {
    let core = core();
    let good = invite("12025550123", "");
    for (broken, reason) in [
        (
            good.replace("Call-ID: call-1@192.0.2.1\r\n", ""),
            "no_call_id",
        ),
        (good.replace("CSeq: 1 INVITE", "CSeq: 1 BYE"), "bad_cseq"),
        (
            good.replace("CSeq: 1 INVITE", "CSeq: one INVITE"),
            "bad_cseq",
        ),
        (
            good.replace("Max-Forwards: 70", "Max-Forwards: many"),
            "bad_max_forwards",
        ),
        (
            good.replace("To: <sip:+15550001@127.0.0.1>\r\n", ""),
            "bad_to",
        ),
        (
            good.replace(
                "From: \"Caller\" <sip:+12025550123@192.0.2.1>;tag=from-1",
                "From: \"unterminated <sip:x@y>",
            ),
            "bad_from",
        ),
        (
            good.replacen(
                "Via: ",
                "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKz\r\nVia: garbage\r\nX-Was: ",
                1,
            ),
            "bad_via",
        ),
    ] {
        let s = send(&core, &broken, CALLER);
        assert_eq!(
            s.outcome.disposition,
            Disposition::Answered(400),
            "{reason}"
        );
        assert_eq!(s.outcome.error, Some(reason));
        assert_eq!(s.msg().status(), Some(400));
        assert_eq!(s.one().destination, addr(CALLER));
    }
    // No usable top Via: no way to answer.
    let s = send(
        &core,
        &good.replace(
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-inv-1\r\n",
            "",
        ),
        CALLER,
    );
    assert_eq!(s.outcome.disposition, Disposition::Dropped("no_via"));
    let s = send(
        &core,
        &good.replace("SIP/2.0/UDP 192.0.2.1:5060", "SIP/2.0/UDP bad host"),
        CALLER,
    );
    assert_eq!(s.outcome.disposition, Disposition::Dropped("bad_via"));
    assert!(s.out.is_empty());
}

// ----- screening: who, and only initial INVITEs ----------------------------------------------

#[test]
fn block_answers_608_with_jcard_and_absorbs_the_ack() {
    let (core, table) = core_with(|c| {
        c.actions.redress_url = "https://redress.example.net/jcard?c={category}".into();
    });
    let s = send(&core, &invite(BLOCKED, ""), CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(608));
    assert_eq!(s.one().destination, addr(CALLER));
    let m = s.msg();
    assert_eq!(m.status(), Some(608));
    assert_eq!(
        header(&m, "Call-Info").as_deref(),
        Some("<https://redress.example.net/jcard?c=impersonation>;purpose=jcard")
    );
    let to_tag = String::from_utf8(m.to().unwrap().unwrap().tag().unwrap().to_vec()).unwrap();
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(
        (d.verdict.action, d.verdict.reason, d.applied),
        (Action::Block, Reason::Listed, Action::Block)
    );
    assert_eq!(d.verdict.category.as_deref(), Some("impersonation"));
    // A retransmitted INVITE gets the same response.
    let again = send(&core, &invite(BLOCKED, ""), CALLER);
    assert_eq!(again.one().data, s.one().data);
    // The caller's ACK for the 608 is absorbed, never reaches the switch.
    let ack = format!(
        "ACK sip:+15550001@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-inv-1\r\n\
         Max-Forwards: 70\r\nFrom: \"Caller\" <sip:+{BLOCKED}@192.0.2.1>;tag=from-1\r\n\
         To: <sip:+15550001@127.0.0.1>;tag={to_tag}\r\nCall-ID: call-1@192.0.2.1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    let a = send(&core, &ack, CALLER);
    assert_eq!(a.outcome.disposition, Disposition::Absorbed);
    assert!(a.out.is_empty());
    assert_eq!(
        table.calls.load(Ordering::Relaxed),
        2,
        "the ACK is not screened"
    );
}

#[test]
fn block_with_603_network_blocked() {
    let (core, _) = core_with(|c| {
        c.actions.block_response = fraudwall::proxy::core::BlockResponse::NetworkBlocked603
    });
    let s = send(&core, &invite(BLOCKED, ""), CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(603));
    let m = s.msg();
    assert_eq!(m.status(), Some(603));
    assert_eq!(
        m.reason_phrase().map(|r| r.as_bytes().to_vec()),
        Some(b"Network Blocked".to_vec())
    );
    // 603+ (ATIS-1000099); the details are in tests/proxy_core_checks.rs.
    assert_eq!(
        header(&m, "Reason").as_deref(),
        Some("SIP;cause=603;text=\"v=analytics1\";location=RLN")
    );
    assert!(header(&m, "Call-Info").is_none());
}

#[test]
fn tag_adds_the_label_header_and_display_names() {
    let (core, _) = core_with(|c| {
        c.proxy.trusted_peers = vec!["192.0.2.0/24".parse().unwrap()];
        c.actions.tag_display_label = "FRAUD?".into();
        c.actions.tag_from_display = true;
    });
    let s = send(
        &core,
        &invite(
            TAGGED,
            &format!("P-Asserted-Identity: \"Loans\" <sip:+{TAGGED}@192.0.2.1>\r\n"),
        ),
        CALLER,
    );
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    let m = s.msg();
    assert_eq!(
        header(&m, "X-Fraud-Label").as_deref(),
        Some("suspected-fraud;category=loan;score=70")
    );
    let pai = m.p_asserted_identities().next().unwrap().unwrap();
    assert_eq!(pai.display_name(), Some(&b"FRAUD? Loans"[..]));
    let from = m.from().unwrap().unwrap();
    assert_eq!(from.display_name(), Some(&b"FRAUD? Caller"[..]));
    assert_eq!(from.tag(), Some(&b"from-1"[..]));
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(
        (d.identity, d.applied),
        (Some(IdentitySource::Pai), Action::Tag)
    );
    // Default config: header only, display names untouched, custom header name honoured.
    let (core, _) = core_with(|c| c.actions.tag_header = "X-Scam".into());
    let s = send(&core, &invite(TAGGED, ""), CALLER);
    let m = s.msg();
    assert_eq!(
        header(&m, "X-Scam").as_deref(),
        Some("suspected-fraud;category=loan;score=70")
    );
    assert!(header(&m, "X-Fraud-Label").is_none());
    assert_eq!(
        m.from().unwrap().unwrap().display_name(),
        Some(&b"Caller"[..])
    );
}

#[test]
fn warn_goes_to_the_announcement_service_with_callee_and_reason() {
    let (core, _) = core_with(|c| c.actions.warn_uri = "sip:announce@10.0.0.5:5090".into());
    let s = send(&core, &invite(WARNED, ""), CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(s.one().destination, addr("10.0.0.5:5090"));
    let text = s.text();
    assert!(
        text.starts_with("INVITE sip:announce@10.0.0.5:5090 SIP/2.0\r\n"),
        "{text}"
    );
    let m = s.msg();
    assert_eq!(
        header(&m, "X-Fraud-Original-To").as_deref(),
        Some("<sip:+15550001@127.0.0.1:5060>")
    );
    assert_eq!(
        header(&m, "X-Fraud-Reason").as_deref(),
        Some("suspected-fraud;category=investment;score=80")
    );
    assert_eq!(s.outcome.decision.as_ref().unwrap().applied, Action::Warn);
    // Without a service, warn falls back to tag and says so.
    let s = send(&core_with(|_| {}).0, &invite(WARNED, ""), CALLER);
    assert_eq!(s.one().destination, addr(HOP));
    assert!(header(&s.msg(), "X-Fraud-Label").is_some());
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!((d.verdict.action, d.applied), (Action::Warn, Action::Tag));
}

#[test]
fn pai_is_trusted_only_from_trusted_peers_and_privacy_does_not_hide_it() {
    let pai = format!("P-Asserted-Identity: <sip:+{BLOCKED}@carrier.example>, <tel:+{BLOCKED}>\r\nPrivacy: id\r\n");
    // Untrusted source: PAI ignored, the From (unlisted) decides.
    let (core, _) = core_with(|c| c.proxy.trusted_peers = vec!["10.0.0.0/8".parse().unwrap()]);
    let s = send(&core, &invite("12025550123", &pai), CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(
        s.outcome.decision.as_ref().unwrap().identity,
        Some(IdentitySource::From)
    );
    // Trusted: PAI decides, despite Privacy: id.
    let s = send(&core, &invite("12025550123", &pai), "10.1.2.3:5060");
    assert_eq!(s.outcome.disposition, Disposition::Answered(608));
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(d.identity, Some(IdentitySource::Pai));
    assert_eq!(d.caller_raw, format!("sip:+{BLOCKED}@carrier.example"));
}

#[test]
fn remote_party_id_and_configurable_order() {
    // Remote-Party-ID is believed from trusted peers only (the identity tests cover the rest).
    let trusted = "10.1.2.3:5060";
    let rpid =
        format!("Remote-Party-ID: <sip:+{TAGGED}@gw>;party=calling;screen=yes;privacy=full\r\n");
    let (core, _) = core_with(|c| c.proxy.trusted_peers = vec!["10.0.0.0/8".parse().unwrap()]);
    let s = send(&core, &invite("12025550123", &rpid), trusted);
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(
        (d.identity, d.applied),
        (Some(IdentitySource::Rpid), Action::Tag)
    );
    // A party=called RPID is the callee, not the caller.
    let called = rpid.replace("party=calling", "party=called");
    let s = send(&core, &invite("12025550123", &called), trusted);
    assert_eq!(
        s.outcome.decision.as_ref().unwrap().identity,
        Some(IdentitySource::From)
    );
    // The order breaks ties only: From first, two unlisted values, From decides; the tagged
    // RPID still wins over an unlisted From whatever the order.
    let (core, _) = core_with(|c| {
        c.proxy.trusted_peers = vec!["10.0.0.0/8".parse().unwrap()];
        c.proxy.identity_order = vec![IdentitySource::From, IdentitySource::Rpid];
    });
    let clean = rpid.replace(TAGGED, "12025550199");
    let s = send(&core, &invite("12025550123", &clean), trusted);
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(
        (d.identity, d.applied),
        (Some(IdentitySource::From), Action::Allow)
    );
    let s = send(&core, &invite("12025550123", &rpid), trusted);
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(
        (d.identity, d.applied),
        (Some(IdentitySource::Rpid), Action::Tag)
    );
}

#[test]
fn compact_from_is_screened() {
    let input = invite(BLOCKED, "")
        .replace("From: ", "f: ")
        .replace("Via: ", "v: ")
        .replace("Call-ID: ", "i: ");
    let s = send(&core(), &input, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(608));
    assert_eq!(s.msg().status(), Some(608));
}

#[test]
fn anonymous_and_invalid_callers_are_screened_as_such() {
    let table = Table::standard();
    let core = ProxyCore::new(CoreConfig::default(), table.clone()).unwrap();
    let anon = invite("12025550123", "").replace(
        "From: \"Caller\" <sip:+12025550123@192.0.2.1>;tag=from-1",
        "From: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=from-1",
    );
    let s = send(&core, &anon, CALLER);
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(
        (d.caller, d.verdict.reason),
        (Caller::Anonymous, Reason::Anonymous)
    );
    let invalid = anon.replace("sip:anonymous@anonymous.invalid", "sip:bob@example.com");
    let s = send(&core, &invalid, CALLER);
    let d = s.outcome.decision.as_ref().unwrap();
    assert!(matches!(d.caller, Caller::Invalid(_)), "{:?}", d.caller);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
}

#[test]
fn a_panicking_screen_fails_open() {
    let core = ProxyCore::new(CoreConfig::default(), Arc::new(Panics)).unwrap();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let s = send(&core, &invite(BLOCKED, ""), CALLER);
    std::panic::set_hook(prev);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(s.one().destination, addr(HOP));
    let d = s.outcome.decision.as_ref().unwrap();
    assert_eq!(
        (d.verdict.reason, d.applied),
        (Reason::InternalError, Action::Allow)
    );
}

#[test]
fn in_dialog_requests_pass_unscreened_and_follow_routes() {
    // The caller's SBC network is a configured peer, so in-dialog requests may go there.
    let (core, table) = core_with(|c| {
        c.proxy.record_route = true;
        c.proxy.trusted_peers = vec!["192.0.2.0/24".parse().unwrap()];
    });
    let s = send(&core, &invite("12025550123", ""), CALLER);
    let rr = header(&s.msg(), "Record-Route").unwrap();
    assert!(rr.starts_with("<sip:127.0.0.1:5060;lr;fwd="), "{rr}");
    assert_eq!(table.calls.load(Ordering::Relaxed), 1);
    // The callee hangs up: BYE from the switch, routed by our Record-Route, to the caller's
    // Contact.
    let bye = format!(
        "BYE sip:+12025550123@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKbye1\r\n\
         Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:+15550001@127.0.0.1>;tag=callee\r\n\
         To: \"Caller\" <sip:+{BLOCKED}@192.0.2.1>;tag=from-1\r\nCall-ID: call-1@192.0.2.1\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let s = send(&core, &bye, HOP);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(s.one().destination, addr("192.0.2.1:5060"));
    let m = s.msg();
    assert!(header(&m, "Route").is_none(), "our Route is popped");
    assert!(
        header(&m, "Record-Route").is_none(),
        "no Record-Route on in-dialog requests"
    );
    assert_eq!(
        table.calls.load(Ordering::Relaxed),
        1,
        "BYE is not screened"
    );
    // A re-INVITE from the caller with our Route (and its proof) and the switch's Route goes
    // to the switch, unscreened.
    let reinvite = invite(
        BLOCKED,
        &format!("Route: {rr}, <sip:127.0.0.1:5080;lr>\r\n"),
    )
    .replace(
        "To: <sip:+15550001@127.0.0.1>",
        "To: <sip:+15550001@127.0.0.1>;tag=callee",
    );
    let s = send(&core, &reinvite, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert!(s.outcome.decision.is_none());
    assert_eq!(s.one().destination, addr(HOP));
    assert_eq!(
        header(&s.msg(), "Route").as_deref(),
        Some("<sip:127.0.0.1:5080;lr>")
    );
}

#[test]
fn sent_reports_what_went_out() {
    let core = core();
    let s = send(&core, &invite(BLOCKED, ""), CALLER);
    assert_eq!(s.outcome.sent(), Some(MessageClass::Response(608)));
    assert_eq!(s.outcome.class.label(), "INVITE");
    assert_eq!(MessageClass::Response(486).label(), "4xx");
}
