//! Issue 10, byte in, bytes out: the core's TLS rules. SIPS is never forwarded in the clear
//! (RFC 3261 §26.2.2), a peer the TLS layer verified is trusted like `proxy.trusted_peers`,
//! the Via of a request crossing between UDP/TCP and TLS names the leaving side's port (so
//! its answer is recognised), Record-Route names a stream transport, and an advertised port
//! is not written on the TLS side.

mod core_support;

use core_support::*;
use fraudwall::config::value::HostPort;
use fraudwall::proxy::core::{
    CoreConfig, Disposition, NextHop, NextHopEntry, ProxyCore, RequestRefusal,
};
use fraudwall::proxy::Transport;
use std::time::Instant;

const TLS_LOCAL: &str = "127.0.0.1:5061";

fn tls_hop(c: &mut CoreConfig) {
    c.sip.transports = vec![Transport::Udp, Transport::Tcp, Transport::Tls];
    c.proxy.next_hops = vec![NextHopEntry::from(NextHop {
        address: addr(HOP),
        transport: Transport::Tls,
    })];
}

fn over(core: &ProxyCore, data: &str, local: &str, t: Transport, verified: bool) -> Sent {
    send_verified(core, data, CALLER, local, t, verified, Instant::now())
}

/// The text of the one message sent, which must contain `needle`.
fn sent_with(s: &Sent, needle: &str) -> String {
    let text = s.text();
    assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    text
}

fn sips_invite(caller: &str) -> String {
    invite(caller, "").replacen(
        "INVITE sip:+15550001@127.0.0.1:5060",
        "INVITE sips:+15550001@127.0.0.1:5061",
        1,
    )
}

#[test]
fn sips_is_refused_416_when_the_next_hop_is_not_tls_and_forwarded_over_tls_otherwise() {
    let c = core();
    let s = over(
        &c,
        &sips_invite(CLEAN_CALLER),
        TLS_LOCAL,
        Transport::Tls,
        false,
    );
    assert!(
        s.text().starts_with("SIP/2.0 416 Unsupported URI Scheme"),
        "{}",
        s.text()
    );
    assert_eq!(
        s.outcome.checks.request,
        Some(RequestRefusal::SipsWithoutTls)
    );
    assert_eq!(s.outcome.disposition, Disposition::Answered(416));

    let (c, _) = core_with(tls_hop);
    let s = over(
        &c,
        &sips_invite(CLEAN_CALLER),
        TLS_LOCAL,
        Transport::Tls,
        false,
    );
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(s.one().transport, Transport::Tls);
    sent_with(&s, "Via: SIP/2.0/TLS 127.0.0.1:5061;branch=");
}

#[test]
fn a_verified_tls_peer_is_believed_like_a_trusted_one() {
    let pai = format!("P-Asserted-Identity: <sip:+{BLOCKED}@192.0.2.1>\r\n");
    let (c, _) = core_with(|_| {});
    // Untrusted source, not verified: the PAI is removed and the clean From forwarded.
    let s = over(
        &c,
        &invite(CLEAN_CALLER, &pai),
        TLS_LOCAL,
        Transport::Tls,
        false,
    );
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert!(!s.text().contains("P-Asserted-Identity"), "{}", s.text());
    // The same request from a peer the TLS layer verified: the PAI is believed, blocked.
    let s = over(
        &c,
        &invite(CLEAN_CALLER, &pai),
        TLS_LOCAL,
        Transport::Tls,
        true,
    );
    assert_eq!(s.outcome.disposition, Disposition::Answered(608));
}

#[test]
fn crossing_from_udp_to_tls_writes_the_tls_port_and_the_answer_comes_back() {
    let (c, _) = core_with(tls_hop);
    let s = over(&c, &invite(CLEAN_CALLER, ""), LOCAL, Transport::Udp, false);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    let fwd = sent_with(&s, "Via: SIP/2.0/TLS 127.0.0.1:5061;branch=");
    // The switch answers over the TLS connection (local: our TLS listener's port).
    let vias: Vec<&str> = fwd.lines().filter(|l| l.starts_with("Via:")).collect();
    let answer = format!(
        "SIP/2.0 180 Ringing\r\n{}\r\nFrom: \"Caller\" <sip:+{CLEAN_CALLER}@192.0.2.1>;tag=from-1\r\n\
         To: <sip:+15550001@127.0.0.1>;tag=sw\r\nCall-ID: call-1@192.0.2.1\r\nCSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n",
        vias.join("\r\n")
    );
    let back = send_verified(
        &c,
        &answer,
        HOP,
        TLS_LOCAL,
        Transport::Tls,
        false,
        Instant::now(),
    );
    assert_eq!(
        back.outcome.disposition,
        Disposition::Forwarded,
        "{:?}",
        back.outcome
    );
    assert_eq!(back.one().destination, addr(CALLER));
    assert_eq!(back.one().transport, Transport::Udp);
}

#[test]
fn record_route_names_stream_transports() {
    let (c, _) = core_with(|c| {
        tls_hop(c);
        c.proxy.record_route = true;
    });
    let s = over(
        &c,
        &invite(CLEAN_CALLER, ""),
        TLS_LOCAL,
        Transport::Tls,
        false,
    );
    sent_with(
        &s,
        "Record-Route: <sip:127.0.0.1:5061;transport=tls;lr;fwd=",
    );
    let (c, _) = core_with(|c| c.proxy.record_route = true);
    let s = over(&c, &invite(CLEAN_CALLER, ""), LOCAL, Transport::Udp, false);
    sent_with(&s, "Record-Route: <sip:127.0.0.1:5060;lr;fwd=");
}

#[test]
fn an_advertised_port_is_not_written_on_the_tls_side() {
    let (c, _) = core_with(|c| {
        tls_hop(c);
        c.sip.advertise = HostPort::parse("sbc.example.net:5070");
    });
    let s = over(
        &c,
        &invite(CLEAN_CALLER, ""),
        TLS_LOCAL,
        Transport::Tls,
        false,
    );
    sent_with(&s, "Via: SIP/2.0/TLS sbc.example.net:5061;branch=");
    let (c, _) = core_with(|c| c.sip.advertise = HostPort::parse("sbc.example.net:5070"));
    let s = over(&c, &invite(CLEAN_CALLER, ""), LOCAL, Transport::Udp, false);
    sent_with(&s, "Via: SIP/2.0/UDP sbc.example.net:5070;branch=");
}

/// Digits no list entry names.
const CLEAN_CALLER: &str = "12025550123";
