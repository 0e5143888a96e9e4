//! Property tests for the SIP view: it never panics on hostile bytes (arbitrary input,
//! mutations and truncations of valid messages, through every accessor, editor and the
//! stream framer), and it agrees with rsip on messages rsip builds.

use bytes::Bytes;
use fraudwall::sip::{
    framing, HeaderName, Limits, RequestEditor, ResponseBuilder, ResponseEditor, SipMessage,
};
use proptest::prelude::*;

/// Valid messages the mutations start from.
const SEEDS: &[&[u8]] = &[
    b"INVITE sip:+15550001@carrier.example;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKa1;rport, SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKa0\r\n\
Max-Forwards: 70\r\n\
f: \"Lender, Quick\" <sip:+8613800000002@gw.example;user=phone>;tag=f1\r\n\
t: <sip:+15550001@carrier.example>\r\n\
i: abc@198.51.100.7\r\n\
CSeq: 10 INVITE\r\n\
P-Asserted-Identity: \"Quick\" <sip:+8613800000002@gw.example>, <tel:+8613800000002>\r\n\
Remote-Party-ID: <sip:+8613800000004@gw.example>;party=calling;screen=no;privacy=off\r\n\
Privacy: id\r\n\
Route: <sip:fw.example;lr>, <sip:sw.example;lr>\r\n\
Record-Route: <sip:edge.example;lr>\r\n\
Subject: folded\r\n value\r\n\
Content-Type: application/sdp\r\n\
l: 10\r\n\
\r\n\
v=0\r\ns=-\r\n",
    b"SIP/2.0 180 Ringing\nv: SIP/2.0/UDP a.example;branch=z9hG4bK1\nFrom: sip:a@b;tag=1\nTo: <sip:c@d>;tag=2\nCall-ID: x\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
    b"\r\n\r\nOPTIONS sip:proxy.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKo\r\nMax-Forwards: 0\r\nCall-ID: o\r\nCSeq: 2 OPTIONS\r\nFrom: <sip:a@b>;tag=o\r\nTo: <sip:proxy.example>\r\n\r\n",
];

/// Touches every accessor and editor; results are ignored, only panics matter.
fn exercise(m: &SipMessage) {
    let _ = (m.method(), m.method_bytes(), m.status(), m.reason_phrase());
    if let Some(uri) = m.request_uri() {
        let _ = uri
            .parse_uri()
            .map(|u| (u.user(), u.host(), u.port(), u.params().iter().count()));
        let _ = uri.to_str();
    }
    let _ = (
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
        m.via_count(),
        m.top_via(),
    );
    for v in m.vias() {
        let _ = v.map(|v| (v.branch(), v.received(), v.rport(), v.host(), v.port()));
    }
    let _ = m
        .from()
        .map(|f| f.map(|f| (f.tag(), f.display_name(), f.uri().user())));
    let _ = m.to().map(|t| t.map(|t| t.tag()));
    for p in m.p_asserted_identities() {
        let _ = p.map(|p| p.uri().user());
    }
    for r in m.remote_party_ids() {
        let _ = r.map(|r| (r.party(), r.screened(), r.privacy(), r.hides_identity()));
    }
    let _ = (m.privacy(), m.missing_mandatory(), m.cseq_matches_method());
    let _ = (m.routes().count(), m.record_routes().count());
    let _ = (
        m.content_length(),
        m.body(),
        m.header("Subject"),
        m.headers("X-A").count(),
    );
    for h in m.headers_all() {
        let _ = h.value.split_commas().count();
        let _ = h.value.parse_u32();
    }
    let check = |out: bytes::BytesMut| {
        let out = SipMessage::parse(
            out.freeze(),
            &Limits {
                // Room for what the edits add: a Via, a few lines, longer display names.
                max_message_size: 1 << 20,
                max_vias: Limits::default().max_vias + 1,
                max_headers: Limits::default().max_headers + 8,
                max_header_line: 1 << 20,
            },
        );
        assert!(
            out.is_ok(),
            "an edited copy of a parsed message must parse: {out:?}"
        );
    };
    if m.is_request() {
        let mut ed = RequestEditor::new(m);
        ed.push_via(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp");
        ed.set_max_forwards(69);
        ed.insert_record_route(b"<sip:10.0.0.1;lr>");
        ed.pop_top_route_if(|_| true);
        let _ = ed.set_display_name(HeaderName::From, "SCAM?");
        let _ = ed.set_display_name(HeaderName::PAssertedIdentity, "SCAM?");
        let _ = ed.add_header("X-Fraud-Label", b"suspected-fraud;category=loan;score=70");
        ed.remove_headers("Privacy");
        check(ed.finish());
        let mut b = ResponseBuilder::new(m, 608, "Rejected");
        let _ = b.header("Call-Info", b"<https://r.example/>;purpose=jcard");
        check(b.finish());
    } else {
        let mut ed = ResponseEditor::new(m);
        ed.pop_top_via();
        check(ed.finish());
    }
}

fn parse_and_exercise(data: Vec<u8>) {
    let limits = Limits::default();
    let _ = framing::message_len(&data, &limits);
    let _ = framing::keepalive_len(&data);
    if let Ok(m) = SipMessage::parse(Bytes::from(data), &limits) {
        exercise(&m);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Delete(usize),
    Insert(usize, u8),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        Just(b'\r'),
        Just(b'\n'),
        Just(b' '),
        Just(b':'),
        Just(b';'),
        Just(b','),
        Just(b'"'),
        Just(b'<'),
        Just(b'>'),
        Just(b'\\'),
        Just(b'0'),
        any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), interesting.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), interesting).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1..64usize).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    let len = data.len().max(1);
    match *m {
        Mutation::Set(i, b) => {
            if let Some(x) = data.get_mut(i % len) {
                *x = b;
            }
        }
        Mutation::Delete(i) => {
            if !data.is_empty() {
                data.remove(i % len);
            }
        }
        Mutation::Insert(i, b) => data.insert(i % (data.len() + 1), b),
        Mutation::Truncate(i) => data.truncate(i % len),
        Mutation::Duplicate(i, n) => {
            let start = i % len;
            let end = (start + n).min(data.len());
            let chunk = data.get(start..end).map(<[u8]>::to_vec).unwrap_or_default();
            data.splice(start..start, chunk);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        parse_and_exercise(data);
    }

    #[test]
    fn sip_shaped_noise_never_panics(
        lines in proptest::collection::vec("[ -~\t]{0,40}", 0..12),
        lf in any::<bool>(),
    ) {
        let eol = if lf { "\n" } else { "\r\n" };
        let mut text = String::from("INVITE sip:a@b SIP/2.0");
        text.push_str(eol);
        for l in lines {
            text.push_str(&l);
            text.push_str(eol);
        }
        text.push_str(eol);
        parse_and_exercise(text.into_bytes());
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        seed in 0..SEEDS.len(),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let mut data = SEEDS[seed].to_vec();
        for m in &mutations {
            apply(&mut data, m);
        }
        parse_and_exercise(data);
    }

    #[test]
    fn every_truncation_is_handled(seed in 0..SEEDS.len(), cut in any::<usize>()) {
        let full = SEEDS[seed];
        let cut = cut % full.len();
        let data = &full[..cut];
        // The stream framer never claims a truncated message is complete.
        prop_assert_eq!(framing::message_len(data, &Limits::default()).ok().flatten(), None);
        parse_and_exercise(data.to_vec());
    }
}

/// Inputs the fuzzer (`fuzz/fuzz_targets/parse.rs`) found, kept as regressions.
#[test]
fn fuzz_regressions() {
    let found: &[&[u8]] = &[
        // A whitespace-only continuation line left a CRLF at the end of the To value, so
        // the copied To line (and its added tag) ended the header section early.
        b"INVITE sip:+0?7775000@carrier.example SIP/2.0\r\nVia: v>6138>\r\n\
Route: i<sfp:w;kl:+8\nt: 550tkl\xc2\xd4\xc7\xc9\xce\xcc\xc7\xcbb: 4\xffP/2.0\r\n\t\n\r\nv=0\r\n",
    ];
    for data in found {
        parse_and_exercise(data.to_vec());
    }
}

#[test]
fn seeds_are_valid() {
    for seed in SEEDS {
        let m = SipMessage::parse(Bytes::from_static(seed), &Limits::default());
        assert!(m.is_ok(), "{m:?}");
        if let Ok(m) = m {
            exercise(&m);
        }
    }
}

// ---- differential against rsip -------------------------------------------------------

mod differential {
    use super::*;
    use rsip::headers::{ToTypedHeader, UntypedHeader};
    use rsip::message::HeadersExt;

    #[derive(Debug, Clone)]
    struct Spec {
        method: rsip::Method,
        ruri_user: String,
        ruri_host: String,
        via_host: String,
        branch: String,
        from_user: String,
        from_host: String,
        from_name: Option<String>,
        from_tag: String,
        to_user: String,
        to_host: String,
        call_id: String,
        seq: u32,
        body: String,
    }

    fn method() -> impl Strategy<Value = rsip::Method> {
        prop_oneof![
            Just(rsip::Method::Invite),
            Just(rsip::Method::Ack),
            Just(rsip::Method::Bye),
            Just(rsip::Method::Cancel),
            Just(rsip::Method::Options),
            Just(rsip::Method::Register),
            Just(rsip::Method::Info),
            Just(rsip::Method::Update),
        ]
    }

    prop_compose! {
        fn spec()(
            method in method(),
            ruri_user in "\\+?[0-9]{3,15}",
            ruri_host in "[a-z]{1,10}\\.(com|net|example)",
            via_host in "[a-z]{1,10}\\.example",
            branch in "z9hG4bK[A-Za-z0-9]{1,20}",
            from_user in "[a-z0-9+]{1,12}",
            from_host in "[a-z]{1,10}\\.org",
            from_name in proptest::option::of("[A-Za-z]{1,12}"),
            from_tag in "[a-z0-9]{1,12}",
            to_user in "[a-z0-9]{1,12}",
            to_host in "[a-z]{1,10}\\.com",
            call_id in "[A-Za-z0-9]{1,24}@[a-z]{1,8}",
            seq in 0u32..(1 << 31),
            body in "[a-z=0-9 ]{0,40}",
        ) -> Spec {
            Spec { method, ruri_user, ruri_host, via_host, branch, from_user, from_host,
                   from_name, from_tag, to_user, to_host, call_id, seq, body }
        }
    }

    fn sip_uri(user: &str, host: &str) -> rsip::Uri {
        rsip::Uri {
            scheme: Some(rsip::Scheme::Sip),
            auth: Some(rsip::Auth {
                user: user.into(),
                password: None,
            }),
            host_with_port: rsip::Host::from(host).into(),
            ..Default::default()
        }
    }

    fn build(s: &Spec) -> Vec<u8> {
        let mut headers = rsip::Headers::default();
        headers.push(
            rsip::typed::Via {
                version: rsip::Version::V2,
                transport: rsip::Transport::Udp,
                uri: rsip::Uri {
                    host_with_port: rsip::Host::from(s.via_host.as_str()).into(),
                    ..Default::default()
                },
                params: vec![rsip::Param::Branch(rsip::param::Branch::new(&s.branch))],
            }
            .into(),
        );
        headers.push(rsip::headers::MaxForwards::new("70").into());
        headers.push(
            rsip::typed::From {
                display_name: s.from_name.clone(),
                uri: sip_uri(&s.from_user, &s.from_host),
                params: vec![rsip::Param::Tag(rsip::param::Tag::new(&s.from_tag))],
            }
            .into(),
        );
        headers.push(
            rsip::typed::To {
                display_name: None,
                uri: sip_uri(&s.to_user, &s.to_host),
                params: vec![],
            }
            .into(),
        );
        headers.push(rsip::headers::CallId::new(&s.call_id).into());
        headers.push(
            rsip::typed::CSeq {
                seq: s.seq,
                method: s.method,
            }
            .into(),
        );
        headers.push(rsip::headers::ContentLength::new(s.body.len().to_string()).into());
        let req = rsip::Request {
            method: s.method,
            uri: sip_uri(&s.ruri_user, &s.ruri_host),
            version: rsip::Version::V2,
            headers,
            body: s.body.clone().into_bytes(),
        };
        Vec::<u8>::from(req)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn agrees_with_rsip(s in spec()) {
            let raw = build(&s);
            let ours = SipMessage::parse(Bytes::from(raw.clone()), &Limits::default());
            let ours = ours.map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&raw))))?;
            let theirs = rsip::Request::try_from(raw.clone())
                .map_err(|e| TestCaseError::fail(format!("rsip: {e}")))?;

            // Method and Request-URI.
            prop_assert_eq!(ours.method_bytes().map(<[u8]>::to_vec), Some(theirs.method.to_string().into_bytes()));
            let ruri = ours.request_uri().map(|u| u.parse_uri());
            let ruri = ruri.and_then(Result::ok);
            prop_assert_eq!(ruri.and_then(|u| u.user()), theirs.uri.user().map(str::as_bytes));
            prop_assert_eq!(ruri.map(|u| u.host().to_vec()), Some(theirs.uri.host().to_string().into_bytes()));

            // Call-ID.
            let cid = theirs.call_id_header().map(|h| h.value().to_string());
            prop_assert_eq!(ours.call_id().map(|c| c.as_bytes().to_vec()), cid.ok().map(String::into_bytes));

            // CSeq.
            let cseq = theirs.cseq_header().and_then(|h| h.typed());
            let cseq = cseq.map_err(|e| TestCaseError::fail(format!("rsip cseq: {e}")))?;
            let mine = ours.cseq().ok().flatten();
            prop_assert_eq!(mine.map(|c| c.seq), Some(cseq.seq));
            prop_assert_eq!(mine.map(|c| c.method_bytes.to_vec()), Some(cseq.method.to_string().into_bytes()));

            // Top Via branch and host.
            let via = theirs.via_header().and_then(|h| h.typed());
            let via = via.map_err(|e| TestCaseError::fail(format!("rsip via: {e}")))?;
            let top = ours.top_via().ok().flatten();
            let their_branch = via.branch().map(|b| b.to_string().into_bytes());
            prop_assert_eq!(top.and_then(|v| v.branch()).map(<[u8]>::to_vec), their_branch);
            prop_assert_eq!(top.map(|v| v.host().to_vec()), Some(via.uri.host().to_string().into_bytes()));

            // From / To URIs and tags.
            let from = theirs.from_header().and_then(|h| h.typed());
            let from = from.map_err(|e| TestCaseError::fail(format!("rsip from: {e}")))?;
            let my_from = ours.from().ok().flatten();
            prop_assert_eq!(my_from.and_then(|f| f.uri().user()), from.uri.user().map(str::as_bytes));
            prop_assert_eq!(my_from.map(|f| f.uri().host().to_vec()), Some(from.uri.host().to_string().into_bytes()));
            let their_tag = from.tag().map(|t| t.to_string().into_bytes());
            prop_assert_eq!(my_from.and_then(|f| f.tag()).map(<[u8]>::to_vec), their_tag);
            let to = theirs.to_header().and_then(|h| h.typed());
            let to = to.map_err(|e| TestCaseError::fail(format!("rsip to: {e}")))?;
            let my_to = ours.to().ok().flatten();
            prop_assert_eq!(my_to.and_then(|t| t.uri().user()), to.uri.user().map(str::as_bytes));
            prop_assert_eq!(my_to.and_then(|t| t.tag()), None);

            // Body.
            prop_assert_eq!(ours.body_bytes(), &theirs.body[..]);
            // And against the spec itself, so both cannot be wrong together.
            prop_assert_eq!(ours.call_id().map(|c| c.as_bytes()), Some(s.call_id.as_bytes()));
            prop_assert_eq!(top.and_then(|v| v.branch()), Some(s.branch.as_bytes()));
        }
    }
}

// ---- stream framing ------------------------------------------------------------------

/// A valid message with a body of `body_len` bytes and Content-Length (compact or not).
fn stream_message(i: usize, body_len: usize, compact: bool) -> Vec<u8> {
    let body: Vec<u8> = (0..body_len).map(|j| b'a' + ((i + j) % 26) as u8).collect();
    let cl = if compact { "l" } else { "Content-Length" };
    let mut m = format!(
        "MESSAGE sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK{i}\r\nCall-ID: m{i}\r\nCSeq: {i} MESSAGE\r\n{cl}: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    m.extend_from_slice(&body);
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Messages written back to back on a stream (with keep-alive CRLFs between some of
    /// them) and read in arbitrary chunks come out framed exactly as they were sent.
    #[test]
    fn framing_recovers_every_message(
        specs in proptest::collection::vec((0..300usize, any::<bool>(), 0..3usize), 1..8),
        chunks in proptest::collection::vec(1..200usize, 1..64),
    ) {
        let limits = Limits::default();
        let mut stream = Vec::new();
        let mut sent = Vec::new();
        for (i, (body_len, compact, keepalives)) in specs.iter().enumerate() {
            stream.extend(std::iter::repeat_n(b"\r\n", *keepalives).flatten());
            let m = stream_message(i, *body_len, *compact);
            stream.extend_from_slice(&m);
            sent.push(m);
        }
        let mut buf: Vec<u8> = Vec::new();
        let mut received = Vec::new();
        let mut offset = 0;
        let mut chunk_sizes = chunks.iter().cycle();
        while offset < stream.len() {
            let n = chunk_sizes.next().copied().unwrap_or(1).min(stream.len() - offset);
            buf.extend_from_slice(&stream[offset..offset + n]);
            offset += n;
            loop {
                match framing::message_len(&buf, &limits) {
                    Ok(Some(len)) => {
                        let frame: Vec<u8> = buf.drain(..len).collect();
                        let m = SipMessage::parse(Bytes::from(frame), &limits);
                        let m = m.map_err(|e| TestCaseError::fail(e.to_string()))?;
                        received.push(m.as_bytes().to_vec());
                    }
                    Ok(None) => break,
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
            }
        }
        prop_assert_eq!(framing::keepalive_len(&buf), buf.len());
        prop_assert_eq!(received, sent);
    }
}
