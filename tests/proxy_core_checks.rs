//! The request checks of RFC 3261 §16.3 and the 603+ answer (ATIS-1000099), byte in, bytes out.
//!
//! - step 1 (syntax): a second CSeq, Max-Forwards or Content-Length line (`l` alike) is
//!   answered 400 like a second From/To/Call-ID; an ACK is dropped, never answered;
//! - step 2: a Request-URI scheme other than sip, sips or tel is answered 416;
//! - step 3: Max-Forwards 0 is answered 483;
//! - step 4: a loop is answered 482;
//! - step 5: a Proxy-Require option tag (the proxy supports none) is answered 420 with
//!   `Unsupported` listing the tags, except on ACK and CANCEL, where RFC 3261 §8.2.2.3 says
//!   Proxy-Require MUST be ignored;
//! - carrier-sized limits: a request with dozens of Vias is forwarded.
//!
//! The RFC 4475 torture messages used here are written out in the tests, in the shape the
//! RFC gives them (section numbers in the test names), not copied.

mod core_support;

use core_support::*;
use fraudwall::proxy::core::{Disposition, RequestRefusal};
use fraudwall::proxy::Transport;
use fraudwall::sip::{Limits, Method, SipMessage};
use std::time::Instant;

/// A request of `method` to `uri` with the usual headers and `extra` lines.
fn request(method: &str, uri: &str, extra: &str) -> String {
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-chk-1\r\n\
         Max-Forwards: 70\r\n\
         From: \"Caller\" <sip:+12025550123@192.0.2.1>;tag=from-1\r\n\
         To: <sip:+15550001@127.0.0.1>\r\n\
         Call-ID: chk-1@192.0.2.1\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:+12025550123@192.0.2.1:5060>\r\n\
         {extra}\
         Content-Length: 0\r\n\r\n"
    )
}

/// The trusted-peer core: answers are not size-capped, so each check shows its full answer.
fn trusting() -> fraudwall::proxy::core::ProxyCore {
    core_with(|c| c.proxy.trusted_peers = vec!["192.0.2.0/24".parse().unwrap()]).0
}

fn status_line(s: &Sent) -> String {
    s.text().lines().next().unwrap_or_default().to_string()
}

// ----- step 1: one CSeq, one Max-Forwards, one Content-Length ------------------------------

#[test]
fn a_second_cseq_max_forwards_or_content_length_is_answered_400() {
    let core = trusting();
    for (extra, reason) in [
        ("CSeq: 2 INVITE\r\n", "duplicate_cseq"),
        ("cseq: 1 INVITE\r\n", "duplicate_cseq"),
        ("Max-Forwards: 69\r\n", "duplicate_max_forwards"),
        ("max-forwards: 70\r\n", "duplicate_max_forwards"),
        // The same value twice is still two lines (RFC 3261 §7.3.1: not a list header).
        ("Content-Length: 0\r\n", "duplicate_content_length"),
        ("l: 0\r\n", "duplicate_content_length"),
    ] {
        let s = send(
            &core,
            &request("INVITE", "sip:+15550001@127.0.0.1", extra),
            CALLER,
        );
        assert_eq!(
            s.outcome.disposition,
            Disposition::Answered(400),
            "{extra:?}"
        );
        assert_eq!(s.outcome.error, Some(reason), "{extra:?}");
        assert_eq!(s.msg().status(), Some(400));
    }
}

#[test]
fn compact_content_length_first_then_full_is_two() {
    let core = trusting();
    let req = request("BYE", "sip:+15550001@127.0.0.1", "l: 0\r\n");
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.error, Some("duplicate_content_length"));
}

#[test]
fn disagreeing_content_lengths_are_answered_400_rfc4475_3_3_9() {
    // mcl01: two Content-Length values that disagree; the framing cannot be trusted.
    let core = trusting();
    let req = request("OPTIONS", "sip:user@example.com", "l: 3\r\n");
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(400));
    assert_eq!(s.outcome.error, Some("bad_content_length"));
}

#[test]
fn multiple_values_in_single_value_headers_rfc4475_3_3_8() {
    // multi01: a request with two of several single-value headers. The first repeat found
    // decides the reason; any of them draws the 400.
    let core = trusting();
    let req = "INVITE sip:user@company.com SIP/2.0\r\n\
               Contact: <sip:caller@host25.example.net>\r\n\
               Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\r\n\
               Max-Forwards: 70\r\n\
               CSeq: 5 INVITE\r\n\
               Call-ID: multi01.98asdh@192.0.2.1\r\n\
               CSeq: 59 INVITE\r\n\
               Call-ID: multi01.98asdh@192.0.2.2\r\n\
               From: sip:caller@example.com;tag=3413415\r\n\
               To: sip:user@example.com\r\n\
               To: sip:other@example.net\r\n\
               From: sip:caller@example.net;tag=2923420123\r\n\
               Content-Type: application/sdp\r\n\
               l: 0\r\n\
               Max-Forwards: 5\r\n\r\n";
    let s = send(&core, req, "192.0.2.25:5060");
    assert_eq!(s.outcome.disposition, Disposition::Answered(400));
    assert_eq!(s.outcome.error, Some("duplicate_cseq"));
}

#[test]
fn an_ack_with_a_second_cseq_is_dropped_never_answered() {
    let core = trusting();
    let req = request("ACK", "sip:+15550001@127.0.0.1", "CSeq: 1 ACK\r\n");
    let s = send(&core, &req, CALLER);
    assert!(s.out.is_empty());
    assert_eq!(s.outcome.disposition, Disposition::Dropped("bad_request"));
    assert_eq!(s.outcome.error, Some("duplicate_cseq"));
}

// ----- step 2: the Request-URI scheme -------------------------------------------------------

#[test]
fn an_unknown_request_uri_scheme_is_answered_416_rfc4475_3_3_2() {
    // unkscm: a Request-URI whose scheme nobody knows.
    let core = trusting();
    let req = request("OPTIONS", "nobodyknowsthisscheme:totallyopaquecontent", "");
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(416));
    assert_eq!(
        s.outcome.checks.request,
        Some(RequestRefusal::UnsupportedUriScheme)
    );
    assert_eq!(status_line(&s), "SIP/2.0 416 Unsupported URI Scheme");
}

#[test]
fn a_known_but_atypical_scheme_is_answered_416_rfc4475_3_3_3() {
    // novelsc: a registered scheme (soap.beep) that a SIP proxy cannot route.
    let core = trusting();
    for uri in [
        "soap.beep://192.0.2.103:3002",
        "http://example.com/x",
        "urn:service:sos",
        "mailto:someone@example.com",
    ] {
        let s = send(&core, &request("INVITE", uri, ""), CALLER);
        assert_eq!(s.outcome.disposition, Disposition::Answered(416), "{uri}");
    }
}

#[test]
fn sip_and_tel_request_uris_are_forwarded() {
    // (sips: needs a TLS next hop: tests/proxy_core_tls.rs.)
    let core = trusting();
    for uri in [
        "sip:+15550001@127.0.0.1",
        "SIP:+15550001@127.0.0.1",
        // RFC 3966: carriers route on tel: Request-URIs.
        "tel:+15550001",
        "TEL:+1-555-0001;phone-context=+1",
    ] {
        let s = send(&core, &request("INVITE", uri, ""), CALLER);
        assert_eq!(s.outcome.disposition, Disposition::Forwarded, "{uri}");
        assert_eq!(s.one().destination, addr(HOP));
    }
}

#[test]
fn an_unknown_scheme_in_to_or_from_is_not_the_proxys_business_rfc4475_3_3_4() {
    // unksm2: the To URI has a scheme the proxy does not know; only the Request-URI counts.
    let core = trusting();
    let req = "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
               Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\r\n\
               Max-Forwards: 70\r\n\
               To: isbn:2983792873\r\n\
               From: <http://www.example.com>;tag=3234233\r\n\
               Call-ID: unksm2.daksdj@hyphenated-host.example.com\r\n\
               CSeq: 234902 REGISTER\r\n\
               Contact: <sip:alias@192.0.2.1>\r\n\
               l: 0\r\n\r\n";
    let s = send(&core, req, CALLER);
    assert_ne!(s.outcome.disposition, Disposition::Answered(416));
}

#[test]
fn an_ack_with_an_unknown_scheme_is_dropped() {
    let core = trusting();
    let s = send(&core, &request("ACK", "urn:service:sos", ""), CALLER);
    assert!(s.out.is_empty());
    assert_eq!(
        s.outcome.disposition,
        Disposition::Dropped("unsupported_uri_scheme")
    );
    assert_eq!(
        s.outcome.checks.request,
        Some(RequestRefusal::UnsupportedUriScheme)
    );
}

// ----- steps 3 and 4: Max-Forwards and loops, as before --------------------------------------

#[test]
fn max_forwards_zero_is_answered_483_rfc4475_3_3_11() {
    // zeromf: an INVITE with Max-Forwards 0.
    let core = trusting();
    let req = request("INVITE", "sip:+15550001@127.0.0.1", "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(483));
    assert_eq!(s.outcome.checks.request, Some(RequestRefusal::TooManyHops));
    assert_eq!(status_line(&s), "SIP/2.0 483 Too Many Hops");
    // Max-Forwards 1 is still forwarded, with 0.
    let req = req.replace("Max-Forwards: 0", "Max-Forwards: 1");
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(header(&s.msg(), "Max-Forwards").as_deref(), Some("0"));
}

#[test]
fn a_request_that_comes_back_is_answered_482() {
    let core = trusting();
    let req = request("INVITE", "sip:+15550001@127.0.0.1", "");
    let first = send(&core, &req, CALLER);
    assert_eq!(first.outcome.disposition, Disposition::Forwarded);
    // The switch sends the forwarded copy straight back.
    let back = first.text();
    let s = send(&core, &back, HOP);
    assert_eq!(s.outcome.disposition, Disposition::Answered(482));
    assert_eq!(s.outcome.checks.request, Some(RequestRefusal::Loop));
}

// ----- step 5: Proxy-Require ----------------------------------------------------------------

#[test]
fn proxy_require_is_answered_420_with_unsupported_rfc4475_3_3_5() {
    // bext01: Require is the UAS's business and passes; Proxy-Require is ours and fails.
    let core = trusting();
    let req = request(
        "OPTIONS",
        "sip:user@example.com",
        "Require: nothingSupportsThis, nothingSupportsThisEither\r\n\
         Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis\r\n",
    );
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(420));
    assert_eq!(s.outcome.checks.request, Some(RequestRefusal::BadExtension));
    assert_eq!(status_line(&s), "SIP/2.0 420 Bad Extension");
    let m = s.msg();
    assert_eq!(
        header(&m, "Unsupported").as_deref(),
        Some("noProxiesSupportThis, norDoAnyProxiesSupportThis")
    );
}

#[test]
fn several_proxy_require_lines_are_all_listed() {
    let core = trusting();
    let req = request(
        "INVITE",
        "sip:+15550001@127.0.0.1",
        "Proxy-Require: sec-agree\r\nproxy-require: foo ,bar\r\nPROXY-REQUIRE: baz\r\n",
    );
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(420));
    assert_eq!(
        header(&s.msg(), "Unsupported").as_deref(),
        Some("sec-agree, foo, bar, baz")
    );
    // The caller is never screened: the request is refused before rule 7.
    assert!(s.outcome.decision.is_none());
}

#[test]
fn an_empty_proxy_require_asks_for_nothing() {
    let core = trusting();
    let req = request("INVITE", "sip:+15550001@127.0.0.1", "Proxy-Require: \r\n");
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
}

#[test]
fn a_proxy_require_that_is_not_a_token_list_is_answered_400() {
    let core = trusting();
    let req = request(
        "INVITE",
        "sip:+15550001@127.0.0.1",
        "Proxy-Require: \"quoted\", a b\r\n",
    );
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(400));
    assert_eq!(s.outcome.error, Some("bad_proxy_require"));
}

#[test]
fn proxy_require_on_ack_and_cancel_is_ignored() {
    // RFC 3261 §8.2.2.3: Require and Proxy-Require MUST NOT be used in CANCEL or in the ACK
    // of a non-2xx response, and MUST be ignored if present.
    let core = trusting();
    for method in ["ACK", "CANCEL"] {
        let req = request(
            method,
            "sip:+15550001@127.0.0.1",
            "Proxy-Require: noProxiesSupportThis\r\n",
        );
        let s = send(&core, &req, CALLER);
        assert_eq!(s.outcome.disposition, Disposition::Forwarded, "{method}");
        assert_eq!(s.outcome.checks.request, None, "{method}");
        // Forwarded unchanged: the next element may know the extension.
        assert!(s.text().contains("Proxy-Require: noProxiesSupportThis\r\n"));
    }
}

#[test]
fn the_420_to_an_untrusted_udp_source_is_capped_by_the_request_size() {
    let core = core();
    let req = request(
        "INVITE",
        "sip:+15550001@127.0.0.1",
        "Proxy-Require: noProxiesSupportThis\r\n",
    );
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(420));
    assert!(s.one().data.len() <= req.len());
    // A minimal request draws no 420 that would be larger: withheld, never half an answer.
    let tiny = "OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.1\r\nf: <sip:c@d>;tag=1\r\n\
                t: <sip:a@b>\r\ni: x\r\nCSeq: 1 OPTIONS\r\nProxy-Require: x\r\n\r\n";
    let s = send(&core, tiny, CALLER);
    assert!(s.out.iter().all(|o| o.data.len() <= tiny.len()));
}

#[test]
fn the_checks_run_in_rfc_order() {
    // Step 2 before step 3 before step 5.
    let core = trusting();
    let req = request("INVITE", "urn:x:y", "Proxy-Require: foo\r\n")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(
        send(&core, &req, CALLER).outcome.disposition,
        Disposition::Answered(416)
    );
    let req = request("INVITE", "sip:a@127.0.0.1", "Proxy-Require: foo\r\n")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(
        send(&core, &req, CALLER).outcome.disposition,
        Disposition::Answered(483)
    );
}

// ----- limits sized for carrier traffic -----------------------------------------------------

/// A request that has already crossed `hops` proxies, one Via each (half of them combined
/// on one line, as some proxies write them).
fn with_vias(hops: usize) -> String {
    let mut lines = String::new();
    let mut combined = Vec::new();
    for i in 0..hops {
        let v = format!(
            "SIP/2.0/UDP 10.{}.{}.1:5060;branch=z9hG4bK-hop-{i}",
            i / 250,
            i % 250
        );
        if i % 2 == 0 {
            lines.push_str(&format!("Via: {v}\r\n"));
        } else {
            combined.push(v);
        }
    }
    let mut all = format!("Via: {}\r\n", combined.join(", "));
    all.push_str(&lines);
    request("INVITE", "sip:+15550001@127.0.0.1", "")
        .replace(
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-chk-1\r\n",
            &format!("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-chk-1\r\n{all}"),
        )
        .replace("Max-Forwards: 70", "Max-Forwards: 2")
}

#[test]
fn a_request_after_seventy_hops_is_forwarded() {
    // Max-Forwards 70 (RFC 3261 §8.1.1.6) bounds a legitimate path to 70 proxies: 71 Vias.
    let core = trusting();
    let req = with_vias(70);
    let parsed = SipMessage::parse(req.clone().into(), &Limits::default()).unwrap();
    assert_eq!(parsed.via_count(), 71);
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
    assert_eq!(s.msg().via_count(), 72);
}

#[test]
fn the_via_limit_still_bounds_the_work() {
    let core = trusting();
    let req = with_vias(Limits::DEFAULT.max_vias + 5);
    let s = send(&core, &req, CALLER);
    assert_eq!(s.outcome.error, Some("too_many_vias"));
    assert_ne!(s.outcome.disposition, Disposition::Forwarded);
}

#[test]
fn a_long_header_line_within_the_limit_is_forwarded() {
    // A PASSporT Identity header plus a 40-hop Record-Route on one line.
    let core = trusting();
    let rr: Vec<String> = (0..40)
        .map(|i| format!("<sip:10.0.{i}.1:5060;lr;ftag=abcdef{i};did=1a2.b3c4>"))
        .collect();
    let extra = format!(
        "Record-Route: {}\r\nIdentity: {};info=<https://cert.example.org/passport.cer>;alg=ES256;ppt=shaken\r\n",
        rr.join(", "),
        "e".repeat(1200)
    );
    let s = send(
        &core,
        &request("INVITE", "sip:+15550001@127.0.0.1", &extra),
        CALLER,
    );
    assert_eq!(s.outcome.disposition, Disposition::Forwarded);
}

#[test]
fn checks_cost_nothing_on_tcp_either() {
    let core = core();
    let req = request("INVITE", "urn:x:y", "");
    let s = send_at(&core, &req, CALLER, LOCAL, Transport::Tcp, Instant::now());
    assert_eq!(s.outcome.disposition, Disposition::Answered(416));
    assert_eq!(s.one().transport, Transport::Tcp);
}

// ----- 603+ (ATIS-1000099) -------------------------------------------------------------------

#[test]
fn block_603_is_603_plus() {
    let (core, _) = core_with(|c| {
        c.proxy.trusted_peers = vec!["192.0.2.0/24".parse().unwrap()];
        c.actions.block_response = fraudwall::proxy::core::BlockResponse::NetworkBlocked603;
        c.actions.redress_url = "https://redress.example.net/r?c={category}".into();
    });
    let s = send(&core, &invite(BLOCKED, ""), CALLER);
    assert_eq!(s.outcome.disposition, Disposition::Answered(603));
    assert_eq!(status_line(&s), "SIP/2.0 603 Network Blocked");
    let m = s.msg();
    assert_eq!(m.status(), Some(603));
    assert_eq!(
        header(&m, "Reason").as_deref(),
        Some(
            "SIP;cause=603;text=\"v=analytics1;url=https://redress.example.net/r?c=impersonation\";location=RLN"
        )
    );
    assert_eq!(
        header(&m, "Call-Info").as_deref(),
        Some("<https://redress.example.net/r?c=impersonation>;purpose=jcard")
    );
    // The Reason comes before the Call-Info.
    let text = s.text();
    assert!(text.find("Reason:").unwrap() < text.find("Call-Info:").unwrap());
    // The caller's ACK is absorbed, as for every answer of ours.
    let ack = invite(BLOCKED, "")
        .replace("INVITE sip", "ACK sip")
        .replace("1 INVITE", "1 ACK")
        .replace(
            "To: <sip:+15550001@127.0.0.1>",
            &format!("To: {}", header(&m, "To").unwrap()),
        );
    let a = send(&core, &ack, CALLER);
    assert_eq!(a.outcome.disposition, Disposition::Absorbed);
    assert_eq!(
        a.outcome.class,
        fraudwall::proxy::core::MessageClass::Request(Method::Ack)
    );
}

#[test]
fn block_603_without_a_redress_url() {
    let (core, _) = core_with(|c| {
        c.proxy.trusted_peers = vec!["192.0.2.0/24".parse().unwrap()];
        c.actions.block_response = fraudwall::proxy::core::BlockResponse::NetworkBlocked603;
    });
    let s = send(&core, &invite(BLOCKED, ""), CALLER);
    assert_eq!(status_line(&s), "SIP/2.0 603 Network Blocked");
    let m = s.msg();
    assert_eq!(
        header(&m, "Reason").as_deref(),
        Some("SIP;cause=603;text=\"v=analytics1\";location=RLN")
    );
    assert!(header(&m, "Call-Info").is_none());
}

#[test]
fn a_redress_url_cannot_break_the_reason_text() {
    let (core, _) = core_with(|c| {
        c.proxy.trusted_peers = vec!["192.0.2.0/24".parse().unwrap()];
        c.actions.block_response = fraudwall::proxy::core::BlockResponse::NetworkBlocked603;
        c.actions.redress_url = "https://r.example/a;b\"c\\d".into();
    });
    let s = send(&core, &invite(BLOCKED, ""), CALLER);
    assert_eq!(
        header(&s.msg(), "Reason").as_deref(),
        Some(
            "SIP;cause=603;text=\"v=analytics1;url=https://r.example/a%3Bb%22c%5Cd\";location=RLN"
        )
    );
}

#[test]
fn the_603_plus_to_an_untrusted_source_drops_call_info_first_then_reason() {
    let (core, _) = core_with(|c| {
        c.actions.block_response = fraudwall::proxy::core::BlockResponse::NetworkBlocked603;
        c.actions.redress_url = format!("https://redress.example.net/{}", "x".repeat(300));
    });
    // A plain INVITE is a few hundred bytes: too small for the full answer, large enough for
    // the Reason.
    let s = send(&core, &invite(BLOCKED, ""), CALLER);
    let sent = s.one();
    assert!(sent.data.len() <= invite(BLOCKED, "").len());
    let m = s.msg();
    assert_eq!(status_line(&s), "SIP/2.0 603 Network Blocked");
    assert!(header(&m, "Call-Info").is_none());
    assert!(
        header(&m, "Reason").is_some_and(|r| r.starts_with("SIP;cause=603;text=\"v=analytics1"))
    );
    assert_eq!(
        s.outcome.checks.reply,
        Some(fraudwall::proxy::core::ReplyFit::Trimmed)
    );
}

#[test]
fn block_608_is_unchanged() {
    let (core, _) = core_with(|c| {
        c.proxy.trusted_peers = vec!["192.0.2.0/24".parse().unwrap()];
        c.actions.redress_url = "https://redress.example.net/j".into();
    });
    let s = send(&core, &invite(BLOCKED, ""), CALLER);
    assert_eq!(status_line(&s), "SIP/2.0 608 Rejected");
    let m = s.msg();
    assert!(header(&m, "Reason").is_none());
    assert_eq!(
        header(&m, "Call-Info").as_deref(),
        Some("<https://redress.example.net/j>;purpose=jcard")
    );
}
