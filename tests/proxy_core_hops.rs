//! Next hops in the sans-I/O core (issue 9, "Next hops"), byte in, bytes out, stepped time.
//!
//! - A forwarded copy too big for a UDP datagram is answered 513 and never sent, so the
//!   kernel's refusal cannot be blamed on the hop (the hop stays up).
//! - A send error from the destination (ICMP port unreachable) marks the hop down: the
//!   caller's retransmission of the same INVITE, its CANCEL and the ACK for the non-2xx
//!   answer all go to hop 2; a probe answer from hop 1 brings it back.

use bytes::Bytes;
use fraudwall::policy::{CallContext, Screen, Verdict};
use fraudwall::proxy::core::{CoreConfig, Disposition, HealthConfig, NextHop, ProxyCore};
use fraudwall::proxy::{Inbound, Outbound, Transport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LOCAL: &str = "127.0.0.1:5060";
const CALLER: &str = "192.0.2.1:5060";
const HOP1: &str = "10.0.0.1:5060";
const HOP2: &str = "10.0.0.2:5060";

struct AllowAll;
impl Screen for AllowAll {
    fn screen(&self, _: &CallContext<'_>) -> Verdict {
        Verdict::unlisted()
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn core(hops: &[&str]) -> ProxyCore {
    let mut c = CoreConfig {
        health: HealthConfig {
            probe_interval: std::time::Duration::from_secs(1),
            max_missed: 3,
            down_for: std::time::Duration::from_secs(30),
        },
        ..CoreConfig::default()
    };
    c.proxy.next_hops = hops
        .iter()
        .map(|h| {
            NextHop {
                address: addr(h),
                transport: Transport::Udp,
            }
            .into()
        })
        .collect();
    ProxyCore::new(c, Arc::new(AllowAll)).unwrap()
}

fn handle(
    core: &ProxyCore,
    data: &[u8],
    source: &str,
    now: Instant,
) -> (Disposition, Vec<Outbound>) {
    let mut out = Vec::new();
    let o = core.handle(
        Inbound {
            data: Bytes::copy_from_slice(data),
            source: addr(source),
            local: addr(LOCAL),
            transport: Transport::Udp,
            verified_peer: false,
            queued: None,
        },
        now,
        &mut out,
    );
    (o.disposition, out)
}

/// A request from the caller; `to_tag` for the ACK of a non-2xx answer.
fn request(method: &str, to_tag: &str, body: usize) -> Vec<u8> {
    let mut m = format!(
        "{method} sip:+15550001@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcall1\r\n\
         From: <sip:+12025550123@192.0.2.1>;tag=a\r\nTo: <sip:+15550001@127.0.0.1>{to_tag}\r\n\
         Call-ID: hops-1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n\
         Content-Type: text/plain\r\nContent-Length: {body}\r\n\r\n"
    )
    .into_bytes();
    m.resize(m.len() + body, b'a');
    m
}

/// An INVITE of exactly `len` bytes.
fn invite_of_len(len: usize) -> Vec<u8> {
    let head = request("INVITE", "", 0).len();
    // Content-Length grows by digits; settle on the body size that makes `len`.
    let mut body = len - head;
    loop {
        let m = request("INVITE", "", body);
        match m.len().cmp(&len) {
            std::cmp::Ordering::Equal => return m,
            std::cmp::Ordering::Greater => body -= m.len() - len,
            std::cmp::Ordering::Less => body += len - m.len(),
        }
    }
}

#[test]
fn an_invite_whose_forwarded_copy_exceeds_a_datagram_is_answered_513_and_the_hop_stays_up() {
    let c = core(&[HOP1, HOP2]);
    let t0 = Instant::now();
    // 65,507 bytes in (the largest IPv4 UDP payload): our Via makes the copy larger.
    let big = invite_of_len(65_507);
    assert_eq!(big.len(), 65_507);
    let (d, out) = handle(&c, &big, CALLER, t0);
    assert_eq!(d, Disposition::Answered(513));
    assert_eq!(out.len(), 1, "only the answer goes out, nothing to the hop");
    assert_eq!(out[0].destination, addr(CALLER));
    assert!(out[0]
        .data
        .starts_with(b"SIP/2.0 513 Message Too Large\r\n"));
    assert!(out[0].data.len() < 1000, "the 513 carries no body");
    assert!(c.hop_is_up(0, t0));

    // A little smaller still fits after our Via: forwarded to hop 1, under the limit.
    let (d, out) = handle(&c, &invite_of_len(65_300), CALLER, t0);
    assert_eq!(d, Disposition::Forwarded);
    assert_eq!(out[0].destination, addr(HOP1));
    assert!(out[0].data.len() <= 65_507);
}

#[test]
fn over_ipv6_the_limit_is_65527() {
    let c = core(&["[2001:db8::1]:5060"]);
    let t0 = Instant::now();
    // How much forwarding adds (our Via), measured on a request of the same shape.
    let probe = invite_of_len(65_000);
    let (_, out) = handle(&c, &probe, CALLER, t0);
    let growth = out[0].data.len() - probe.len();
    // Larger than an IPv4 datagram, but it fits an IPv6 one exactly.
    let (d, out) = handle(&c, &invite_of_len(65_527 - growth), CALLER, t0);
    assert_eq!(d, Disposition::Forwarded, "fits in 65,527");
    assert_eq!(out[0].data.len(), 65_527);
    let (d, _) = handle(&c, &invite_of_len(65_528 - growth), CALLER, t0);
    assert_eq!(d, Disposition::Answered(513));
}

#[test]
fn an_icmp_send_error_moves_the_retransmission_cancel_and_ack_to_hop_2() {
    let c = core(&[HOP1, HOP2]);
    let t0 = Instant::now();
    let invite = request("INVITE", "", 0);
    let (_, first) = handle(&c, &invite, CALLER, t0);
    assert_eq!(first[0].destination, addr(HOP1));

    // The transport read an ICMP port unreachable for hop 1 off the error queue.
    c.on_send_error(addr(HOP1), Transport::Udp, t0 + Duration::from_millis(2));
    assert!(!c.hop_is_up(0, t0 + Duration::from_millis(2)));
    assert!(c.hop_is_up(1, t0 + Duration::from_millis(2)));

    // The caller retransmits at T1: same bytes, same branch, now to hop 2.
    let t1 = t0 + Duration::from_millis(500);
    let (_, retrans) = handle(&c, &invite, CALLER, t1);
    assert_eq!(retrans[0].destination, addr(HOP2));
    assert_eq!(retrans[0].data, first[0].data, "the same request, resent");
    // CANCEL follows, and the ACK for hop 2's 487.
    let (_, cancel) = handle(&c, &request("CANCEL", "", 0), CALLER, t1);
    assert_eq!(cancel[0].destination, addr(HOP2));
    let (_, ack) = handle(&c, &request("ACK", ";tag=hop2", 0), CALLER, t1);
    assert_eq!(ack[0].destination, addr(HOP2));

    // Probes keep going to the down hop; its first answer brings it back.
    let mut probes = Vec::new();
    c.poll_timeout(t1 + Duration::from_secs(1), &mut probes);
    let probe = probes
        .iter()
        .find(|p| p.destination == addr(HOP1))
        .expect("hop 1 is still probed while down");
    let probe = String::from_utf8(probe.data.to_vec()).unwrap();
    let mut answer = String::from("SIP/2.0 200 OK\r\n");
    for l in probe.lines().skip(1).filter(|l| !l.is_empty()) {
        if l.starts_with("To:") {
            answer.push_str(&format!("{l};tag=up\r\n"));
        } else if !l.starts_with("Max-Forwards") {
            answer.push_str(&format!("{l}\r\n"));
        }
    }
    answer.push_str("\r\n");
    let t2 = t1 + Duration::from_millis(1100);
    let (d, _) = handle(&c, answer.as_bytes(), HOP1, t2);
    assert_eq!(d, Disposition::Absorbed);
    assert!(c.hop_is_up(0, t2));
    let (_, next) = handle(&c, &request("INVITE", "", 0), CALLER, t2);
    assert_eq!(next[0].destination, addr(HOP1));
}

/// A hop that dies without an ICMP error (its host is off): INVITEs the callers retransmit
/// past T1 with no response from it count as misses, and `max_missed` of them in a row move
/// the calls, and that very retransmission, to hop 2.
#[test]
fn invites_retransmitted_past_t1_without_an_answer_mark_the_hop_down() {
    let c = core(&[HOP1, HOP2]); // max_missed = 3
    let t0 = Instant::now();
    let invite = |n: u32| {
        String::from_utf8(request("INVITE", "", 0))
            .unwrap()
            .replace("z9hG4bKcall1", &format!("z9hG4bKcall{n}"))
            .replace("Call-ID: hops-1", &format!("Call-ID: hops-{n}"))
            .into_bytes()
    };
    for n in 0..3 {
        let (_, out) = handle(&c, &invite(n), CALLER, t0);
        assert_eq!(out[0].destination, addr(HOP1));
    }
    // Retransmitted within T1: not yet a miss.
    let (_, out) = handle(&c, &invite(0), CALLER, t0 + Duration::from_millis(200));
    assert_eq!(out[0].destination, addr(HOP1));
    let late = t0 + Duration::from_millis(600);
    for n in 0..2 {
        let (_, out) = handle(&c, &invite(n), CALLER, late);
        assert_eq!(out[0].destination, addr(HOP1), "miss {n} of 3");
    }
    let (_, out) = handle(&c, &invite(2), CALLER, late);
    assert_eq!(out[0].destination, addr(HOP2), "third miss: hop 1 down");
    assert!(!c.hop_is_up(0, late));
}

/// A hop that answers is never marked down by retransmissions: any response resets the count.
#[test]
fn a_response_from_the_hop_resets_the_unanswered_count() {
    let c = core(&[HOP1, HOP2]); // max_missed = 3
    let t0 = Instant::now();
    for n in 0..5u64 {
        let t = t0 + Duration::from_secs(n);
        let invite = String::from_utf8(request("INVITE", "", 0))
            .unwrap()
            .replace("z9hG4bKcall1", &format!("z9hG4bKslow{n}"))
            .into_bytes();
        handle(&c, &invite, CALLER, t);
        // A slow hop: the caller retransmits past T1 (one miss each time) ...
        let (_, out) = handle(&c, &invite, CALLER, t + Duration::from_millis(600));
        assert_eq!(out[0].destination, addr(HOP1), "call {n}");
        // ... and then the hop answers 100 Trying, echoing our Via on top.
        let fwd = String::from_utf8(out[0].data.to_vec()).unwrap();
        let mut trying = String::from("SIP/2.0 100 Trying\r\n");
        for l in fwd.lines().skip(1).filter(|l| !l.is_empty()) {
            if ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
            {
                trying.push_str(&format!("{l}\r\n"));
            }
        }
        trying.push_str("Content-Length: 0\r\n\r\n");
        let (d, _) = handle(&c, trying.as_bytes(), HOP1, t + Duration::from_millis(700));
        assert_eq!(d, Disposition::Forwarded);
    }
    // Five misses, never three in a row: still up.
    assert!(c.hop_is_up(0, t0 + Duration::from_secs(5)));
}
