//! Fuzz the SIP view: parsing, every accessor, the stream framer and the editors must
//! never panic, and an edited copy of a parsed message must parse again.
//!
//! Run (nightly): `cd fuzz && cargo +nightly fuzz run parse -- -max_total_time=300`

#![no_main]

use bytes::Bytes;
use fraudwall::sip::{
    framing, HeaderName, Limits, RequestEditor, ResponseBuilder, ResponseEditor, SipMessage,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = framing::message_len(data, &limits);
    let Ok(m) = SipMessage::parse(Bytes::copy_from_slice(data), &limits) else {
        return;
    };
    let _ = (
        m.method(),
        m.status(),
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
    );
    if let Some(uri) = m.request_uri() {
        let _ = uri.parse_uri();
    }
    for v in m.vias() {
        let _ = v.map(|v| (v.branch(), v.rport(), v.received()));
    }
    let _ = (m.from(), m.to(), m.privacy(), m.missing_mandatory());
    for p in m.p_asserted_identities() {
        let _ = p.map(|p| p.uri().user());
    }
    for r in m.remote_party_ids() {
        let _ = r.map(|r| (r.party(), r.screened(), r.privacy()));
    }
    let _ = (m.routes().count(), m.record_routes().count(), m.body());
    let relaxed = Limits {
        // Room for what the edits add: a Via, a few lines, longer display names.
        max_message_size: 1 << 20,
        max_vias: Limits::default().max_vias + 1,
        max_headers: Limits::default().max_headers + 8,
        max_header_line: 1 << 20,
    };
    let reparse = |out: bytes::BytesMut| {
        if let Err(e) = SipMessage::parse(out.freeze(), &relaxed) {
            panic!("edited copy does not parse: {e}");
        }
    };
    if m.is_request() {
        let mut ed = RequestEditor::new(&m);
        ed.push_via(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKf");
        ed.set_max_forwards(69);
        ed.insert_record_route(b"<sip:10.0.0.1;lr>");
        ed.pop_top_route_if(|_| true);
        let _ = ed.set_display_name(HeaderName::From, "SCAM?");
        let _ = ed.set_display_name(HeaderName::PAssertedIdentity, "SCAM?");
        let _ = ed.add_header("X-Fraud-Label", b"suspected-fraud;category=loan;score=70");
        reparse(ed.finish());
        reparse(ResponseBuilder::new(&m, 608, "Rejected").finish());
    } else {
        let mut ed = ResponseEditor::new(&m);
        ed.pop_top_via();
        reparse(ed.finish());
    }
});
