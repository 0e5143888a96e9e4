//! Conformance table: RFC 4475 torture-test-like messages, each with the expected verdict
//! (accepted with key fields, or rejected with a reason label).
//!
//! Messages are written with explicit `\r\n`. "Accept" cases also check the fields a fraud check reads, because a lenient
//! parser that misreads a field is worse than one that rejects.

use bytes::Bytes;
use fraudwall::sip::{HeaderName, Limits, Method, Scheme, SipMessage, ValueError};

/// What a case expects.
enum Expect {
    /// Parses; the check function asserts on fields.
    Accept(fn(&SipMessage)),
    /// Rejected with this `ParseError::reason()`.
    Reject(&'static str),
}

struct Case {
    name: &'static str,
    raw: &'static [u8],
    expect: Expect,
}

fn text(v: Option<fraudwall::sip::Unchecked<'_>>) -> &[u8] {
    v.map(|v| v.as_bytes()).unwrap_or(b"<missing>")
}

const CASES: &[Case] = &[
    // ---- valid (RFC 4475 §3.1.1) -------------------------------------------------------
    Case {
        name: "3.1.1.1 wsinv: whitespace, folding, HCOLON with spaces, compact names",
        raw: b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n\
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n\
MaX-fOrWaRdS: 0068\r\n\
Call-ID: wsinv.ndaksdj@192.0.2.1\r\n\
Content-Length   : 150\r\n\
cseq: 0009\r\n  INVITE\r\n\
Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n\
s :\r\n\
NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\
UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n\
Content-Type: application/sdp\r\n\
Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n\
v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n\
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33\r\n\
\r\n\
v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n",
        expect: Expect::Accept(|m| {
            assert_eq!(m.method(), Some(Method::Invite));
            assert_eq!(m.max_forwards(), Ok(Some(68)));
            let cseq = m.cseq().ok().flatten().map(|c| (c.seq, c.method));
            assert_eq!(cseq, Some((9, Method::Invite)));
            assert_eq!(m.via_count(), 3);
            let v: Vec<_> = m
                .vias()
                .map(|v| v.map(|v| (v.transport(), v.host(), v.branch())))
                .collect();
            assert_eq!(
                v,
                vec![
                    Ok((&b"UDP"[..], &b"192.0.2.2"[..], Some(&b"390skdjuw"[..]))),
                    Ok((&b"TCP"[..], &b"spindle.example.com"[..], Some(&b"z9hG4bK9ikj8"[..]))),
                    Ok((&b"UDP"[..], &b"192.168.255.111"[..], Some(&b"z9hG4bK30239"[..]))),
                ]
            );
            let to = m.to().ok().flatten().map(|t| (t.uri().user(), t.tag()));
            assert_eq!(to, Some((Some(&b"vivekg"[..]), Some(&b"1918181833n"[..]))));
            let from = m.from().ok().flatten().map(|f| (f.uri().user(), f.tag()));
            assert_eq!(from, Some((Some(&b"jdrosen"[..]), Some(&b"98asjd8"[..]))));
            assert_eq!(m.routes().filter(|r| matches!(r, Ok(r) if r.lr())).count(), 1);
            assert_eq!(m.header("subject").map(|s| s.as_bytes()), Some(&b""[..]));
            assert_eq!(m.content_length(), Some(150));
            assert_eq!(m.body_bytes().len(), 150);
        }),
    },
    Case {
        name: "3.1.1.2 intmeth: extension method with every token character",
        raw: b"!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\r\n\
To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7F\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\r\n\
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\xD1\x80\xD0\xB0\xD0\xB1\xD0\xBE\xD1\x82\xD0\xB0\xD1\x8E\xD1\x89\xD0\xB8\xD0\xB9\";tag=_token~1'+`*%!-.\r\n\
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n\
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\n\
Max-Forwards: 255\r\n\
extensionHeader-!.%*+_`'~:\xEF\xBB\xBF\xE5\xA4\xA7\xE5\x81\x9C\xE9\x9B\xBB\r\n\
Content-Length: 0\r\n\
\r\n",
        expect: Expect::Accept(|m| {
            assert_eq!(m.method(), Some(Method::Other));
            assert_eq!(
                m.method_bytes(),
                Some(&b"!interesting-Method0123456789_*+`.%indeed'~"[..])
            );
            assert!(m.cseq_matches_method());
            assert_eq!(m.max_forwards(), Ok(Some(255)));
            let from = m.from().ok().flatten().map(|f| (f.display_name(), f.tag()));
            assert_eq!(
                from,
                Some((Some(&b"token1~` token2'+_ token3*%!.-"[..]), Some(&b"_token~1'+`*%!-."[..])))
            );
            assert!(m.header("extensionHeader-!.%*+_`'~").is_some());
            assert_eq!(text(m.call_id()), b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
        }),
    },
    Case {
        name: "3.1.1.3 esc01: escaped characters in the user part stay escaped",
        raw: b"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n\
To: sip:%75se%72@example.com\r\n\
From: <sip:I%20have%20spaces@example.net>;tag=938\r\n\
Max-Forwards: 87\r\n\
i: esc01.239409asdfakjkn23onasd0-3234\r\n\
CSeq: 234234 INVITE\r\n\
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\r\n\
C: application/sdp\r\n\
Contact:\r\n  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\r\n\
Content-Length: 0\r\n\r\n",
        expect: Expect::Accept(|m| {
            let ruri = m.request_uri().map(|u| u.parse_uri());
            let user = ruri.and_then(Result::ok).and_then(|u| u.user());
            assert_eq!(user, Some(&b"sips%3Auser%40example.com"[..]));
            assert_eq!(text(m.call_id()), b"esc01.239409asdfakjkn23onasd0-3234");
            assert_eq!(text(m.header("Content-Type")), b"application/sdp");
            let to = m.to().ok().flatten().map(|t| t.uri().user());
            assert_eq!(to, Some(Some(&b"%75se%72"[..])));
        }),
    },
    Case {
        name: "3.1.1.6 lwsdisp: display name without space before <",
        raw: b"OPTIONS sip:user@example.com SIP/2.0\r\n\
To: sip:user@example.com\r\n\
From: caller<sip:caller@example.com>;tag=323\r\n\
Max-Forwards: 70\r\n\
Call-ID: lwsdisp.1234abcd@funky.example.com\r\n\
CSeq: 60 OPTIONS\r\n\
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\r\n\
l: 0\r\n\r\n",
        expect: Expect::Accept(|m| {
            let f = m.from().ok().flatten().map(|f| (f.display_name(), f.tag()));
            assert_eq!(f, Some((Some(&b"caller"[..]), Some(&b"323"[..]))));
            assert!(m.missing_mandatory().is_none());
        }),
    },
    Case {
        name: "3.1.1.8 dblreq: a second message after Content-Length is ignored",
        raw: b"REGISTER sip:example.com SIP/2.0\r\n\
To: sip:j.user@example.com\r\n\
From: sip:j.user@example.com;tag=43251j3j324\r\n\
Max-Forwards: 8\r\n\
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\r\n\
Contact: sip:j.user@host.example.com\r\n\
CSeq: 8 REGISTER\r\n\
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\r\n\
Content-Length: 0\r\n\
\r\n\
INVITE sip:joe@example.com SIP/2.0\r\n\
t: sip:joe@example.com\r\n\
\r\n",
        expect: Expect::Accept(|m| {
            assert_eq!(m.method(), Some(Method::Register));
            assert_eq!(m.body_bytes(), b"");
            // addr-spec form: ;tag is a header parameter.
            let f = m.from().ok().flatten().map(|f| (f.bracketed(), f.tag()));
            assert_eq!(f, Some((false, Some(&b"43251j3j324"[..]))));
        }),
    },
    Case {
        name: "3.1.1.9 semiuri: semicolon in the user part",
        raw: b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\r\n\
To: sip:j_user@example.com\r\n\
From: sip:caller@example.org;tag=33242\r\n\
Max-Forwards: 3\r\n\
Call-ID: semiuri.0ha0isndaksdj\r\n\
CSeq: 8 OPTIONS\r\n\
Accept: application/sdp, application/pkcs7-mime,\r\n multipart/mixed, multipart/signed,\r\n message/sip, message/sipfrag\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\r\n\
l: 0\r\n\r\n",
        expect: Expect::Accept(|m| {
            let ruri = m.request_uri().map(|u| u.parse_uri());
            let parts = ruri.and_then(Result::ok).map(|u| (u.user(), u.host()));
            assert_eq!(parts, Some((Some(&b"user;par=u%40example.net"[..]), &b"example.com"[..])));
            assert_eq!(m.header("Accept").map(|a| a.split_commas().count()), Some(6));
        }),
    },
    Case {
        name: "3.1.1.10 transports: unusual Via transports, several Via lines",
        raw: b"OPTIONS sip:user@example.com SIP/2.0\r\n\
To: sip:user@example.com\r\n\
From: <sip:caller@example.com>;tag=323\r\n\
Max-Forwards: 70\r\n\
Call-ID:  transports.kijh4akdnaqjkwendsasfdj\r\n\
Accept: application/sdp\r\n\
CSeq: 60 OPTIONS\r\n\
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\r\n\
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\r\n\
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\r\n\
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\r\n\
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\r\n\
l: 0\r\n\r\n",
        expect: Expect::Accept(|m| {
            let t: Vec<_> = m.vias().map(|v| v.map(|v| v.transport())).collect();
            assert_eq!(
                t,
                vec![Ok(&b"UDP"[..]), Ok(&b"SCTP"[..]), Ok(&b"TLS"[..]), Ok(&b"UNKNOWN"[..]), Ok(&b"TCP"[..])]
            );
            assert_eq!(text(m.call_id()), b"transports.kijh4akdnaqjkwendsasfdj");
        }),
    },
    Case {
        name: "3.1.1.12 unreason: UTF-8 reason phrase",
        raw: b"SIP/2.0 200 = 2**3 * 5**2 \xD0\xBD\xD0\xBE \xD1\x81\xD1\x82\xD0\xBE\r\n\
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n\
Call-ID: unreason.1234ksdfak3j2erwedfsASdf\r\n\
CSeq: 35 INVITE\r\n\
From: sip:user@example.com;tag=11141343\r\n\
To: sip:user@example.edu;tag=2229\r\n\
Content-Length: 0\r\n\r\n",
        expect: Expect::Accept(|m| {
            assert_eq!(m.status(), Some(200));
            assert!(m.reason_phrase().is_some_and(|r| r.to_str().is_ok()));
        }),
    },
    Case {
        name: "3.1.1.13 noreason: empty reason phrase",
        raw: b"SIP/2.0 100 \r\n\
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n\
Call-ID: noreason.asndj203insdf99223ndf\r\n\
CSeq: 35 INVITE\r\n\
From: <sip:user@example.com>;tag=39ansfi3\r\n\
To: <sip:user@example.edu>;tag=902jndnke3\r\n\
Content-Length: 0\r\n\r\n",
        expect: Expect::Accept(|m| {
            assert_eq!(m.status(), Some(100));
            assert_eq!(m.reason_phrase().map(|r| r.as_bytes()), Some(&b""[..]));
        }),
    },
    Case {
        name: "carrier: PAI sip+tel, Remote-Party-ID, Privacy, compact everything",
        raw: b"INVITE sip:+15550001@carrier.example SIP/2.0\r\n\
v: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKc1;rport\r\n\
f: \"Unknown\" <sip:anonymous@anonymous.invalid>;tag=aa\r\n\
t: <sip:+15550001@carrier.example>\r\n\
i: carrier-1\r\n\
CSeq: 1 INVITE\r\n\
P-Asserted-Identity: \"Real, Caller\" <sip:+8613800000001@gw.example;user=phone>\r\n\
P-Asserted-Identity: <tel:+8613800000001>\r\n\
Remote-Party-ID: \"RP\" <sip:+8613800000009@gw.example>;party=calling;screen=yes;privacy=full\r\n\
Privacy: id;critical\r\n\
l: 0\r\n\r\n",
        expect: Expect::Accept(|m| {
            let pai: Vec<_> = m
                .p_asserted_identities()
                .map(|p| p.map(|p| (p.uri().scheme(), p.uri().user())))
                .collect();
            assert_eq!(
                pai,
                vec![
                    Ok((Scheme::Sip, Some(&b"+8613800000001"[..]))),
                    Ok((Scheme::Tel, Some(&b"+8613800000001"[..]))),
                ]
            );
            let rpid = m.remote_party_ids().next().and_then(Result::ok);
            assert!(rpid.is_some_and(|r| r.hides_identity() && r.screened() == Some(true)));
            assert!(m.privacy().is_some_and(|p| p.id && p.critical));
            assert_eq!(m.from().ok().flatten().and_then(|f| f.uri().user()), Some(&b"anonymous"[..]));
        }),
    },
    Case {
        name: "3.3.7 zeromf: Max-Forwards 0 parses (the proxy answers 483)",
        raw: b"OPTIONS sip:user@example.com SIP/2.0\r\n\
Call-ID: zeromf.1\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:user@example.com>\r\n\
Via: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\nMax-Forwards: 0\r\n\r\n",
        expect: Expect::Accept(|m| assert_eq!(m.max_forwards(), Ok(Some(0)))),
    },
    Case {
        name: "3.3.1 insuf: missing mandatory headers parse, and are reported",
        raw: b"INVITE sip:user@example.com SIP/2.0\r\nCSeq: 193942 INVITE\r\n\
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\r\nContent-Length: 0\r\n\r\n",
        expect: Expect::Accept(|m| {
            assert_eq!(m.missing_mandatory(), Some(HeaderName::From));
            assert_eq!(m.call_id(), None);
        }),
    },
    Case {
        name: "3.3.2 unkscm: unknown Request-URI scheme parses (the proxy answers 416)",
        raw: b"OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\r\n\
To: sip:user@example.com\r\nFrom: sip:caller@example.net;tag=384\r\nMax-Forwards: 3\r\n\
Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34\r\nCSeq: 3923423 OPTIONS\r\n\
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\r\nContent-Length: 0\r\n\r\n",
        expect: Expect::Accept(|m| {
            let uri = m.request_uri().map(|u| u.parse_uri().map(|u| u.scheme()));
            assert_eq!(uri, Some(Ok(Scheme::Other)));
        }),
    },
    Case {
        name: "3.1.2.4 quotbal: unterminated display name fails only that header",
        raw: b"INVITE sip:user@example.com SIP/2.0\r\n\
To: \"Mr. J. User <sip:j.user@example.com>\r\n\
From: sip:caller@example.net;tag=93334\r\nMax-Forwards: 10\r\nCall-ID: quotbal.aksdj\r\n\
CSeq: 0 INVITE\r\nVia: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\r\nl: 0\r\n\r\n",
        expect: Expect::Accept(|m| {
            assert_eq!(m.to().map(|_| ()), Err(ValueError::Unterminated));
            assert!(m.from().is_ok());
        }),
    },
    Case {
        name: "3.1.2.15 mismatch01: CSeq method differs from the request method",
        raw: b"OPTIONS sip:user@example.com SIP/2.0\r\nTo: sip:j.user@example.com\r\n\
From: sip:caller@example.net;tag=34525\r\nMax-Forwards: 6\r\nCall-ID: mismatch01.dj0234sxdfl3\r\n\
CSeq: 8 INVITE\r\nVia: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\r\nl: 0\r\n\r\n",
        expect: Expect::Accept(|m| assert!(!m.cseq_matches_method())),
    },
    Case {
        name: "spaces in addr-spec: the From URI fails to parse",
        raw: b"OPTIONS sip:user@example.com SIP/2.0\r\nFrom: \"Bell\" <sip:a.g.bell@ bell-tel.com>;tag=1\r\n\r\n",
        expect: Expect::Accept(|m| assert_eq!(m.from().map(|_| ()), Err(ValueError::BadUri))),
    },
    Case {
        name: "scalarlg: CSeq over 32 bits fails as a value",
        raw: b"REGISTER sip:example.com SIP/2.0\r\nCSeq: 36893488147419103232 REGISTER\r\n\r\n",
        expect: Expect::Accept(|m| assert_eq!(m.cseq().map(|_| ()), Err(ValueError::BadCSeq))),
    },
    // ---- invalid (RFC 4475 §3.1.2) -----------------------------------------------------
    Case {
        name: "3.1.2.2 clerr: Content-Length larger than the body",
        raw: b"INVITE sip:user@example.com SIP/2.0\r\nMax-Forwards: 80\r\nTo: sip:j.user@example.com\r\n\
From: sip:caller@example.net;tag=93942\r\nCall-ID: clerr.0ha0isndaksdjweiafasdk3\r\nCSeq: 8 INVITE\r\n\
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\r\nContent-Type: application/sdp\r\n\
Content-Length: 9999\r\n\r\nv=0\r\n",
        expect: Expect::Reject("body_truncated"),
    },
    Case {
        name: "3.1.2.3 ncl: negative Content-Length",
        raw: b"INVITE sip:user@example.com SIP/2.0\r\nMax-Forwards: 254\r\nCall-ID: ncl.0ha0isndaksdj2193423r542w35\r\n\
CSeq: 0 INVITE\r\nContent-Length: -999\r\n\r\nv=0\r\n",
        expect: Expect::Reject("bad_content_length"),
    },
    Case {
        name: "scalar02: Content-Length over 32 bits",
        raw: b"REGISTER sip:example.com SIP/2.0\r\nContent-Length: 18446744073709551617\r\n\r\n",
        expect: Expect::Reject("bad_content_length"),
    },
    Case {
        name: "3.1.2.5 ltgtruri: Request-URI in angle brackets",
        raw: b"INVITE <sip:user@example.com> SIP/2.0\r\nTo: sip:user@example.com\r\n\r\n",
        expect: Expect::Reject("bad_request_uri"),
    },
    Case {
        name: "3.1.2.6 lwsruri: whitespace inside the Request-URI",
        raw: b"INVITE sip:user@example.com; lr SIP/2.0\r\nTo: sip:user@example.com;tag=3xfe-9921883-z9f\r\n\r\n",
        expect: Expect::Reject("bad_request_uri"),
    },
    Case {
        name: "3.1.2.7 lwsstart: several spaces between start-line elements",
        raw: b"INVITE  sip:user@example.com  SIP/2.0\r\nMax-Forwards: 8\r\n\r\n",
        expect: Expect::Reject("bad_request_uri"),
    },
    Case {
        name: "3.1.2.8 trws: trailing whitespace after the version",
        raw: b"OPTIONS sip:remote-target@example.com SIP/2.0  \r\nMax-Forwards: 70\r\n\r\n",
        expect: Expect::Reject("bad_request_uri"),
    },
    Case {
        name: "3.1.2.14 badvers: unknown protocol version",
        raw: b"OPTIONS sip:t.watson@example.org SIP/7.0\r\nVia: SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\n\r\n",
        expect: Expect::Reject("unsupported_version"),
    },
    Case {
        name: "3.1.2.17 bigcode: status code over three digits",
        raw: b"SIP/2.0 4294967301 better not break the receiver\r\nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n\r\n",
        expect: Expect::Reject("bad_status_code"),
    },
    Case {
        name: "conflicting Content-Length values",
        raw: b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 2\r\nl: 3\r\n\r\nabc",
        expect: Expect::Reject("bad_content_length"),
    },
    Case {
        name: "header line without a colon",
        raw: b"INVITE sip:a@b SIP/2.0\r\nVia SIP/2.0/UDP a\r\n\r\n",
        expect: Expect::Reject("bad_header"),
    },
    Case {
        name: "continuation line before any header",
        raw: b"INVITE sip:a@b SIP/2.0\r\n folded\r\n\r\n",
        expect: Expect::Reject("bad_header"),
    },
    Case {
        name: "no empty line after the headers",
        raw: b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\n",
        expect: Expect::Reject("truncated"),
    },
    Case {
        name: "only keep-alive CRLFs",
        raw: b"\r\n\r\n",
        expect: Expect::Reject("empty"),
    },
    Case {
        name: "HTTP request sent to the SIP port",
        raw: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        expect: Expect::Reject("bad_start_line"),
    },
];

#[test]
fn conformance_table() {
    let limits = Limits::default();
    let mut failures = Vec::new();
    for case in CASES {
        let result = SipMessage::parse(Bytes::from_static(case.raw), &limits);
        match (&case.expect, result) {
            (Expect::Accept(check), Ok(m)) => {
                if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&m)))
                {
                    let why = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!("{}: field check failed: {why}", case.name));
                }
            }
            (Expect::Accept(_), Err(e)) => failures.push(format!("{}: rejected: {e}", case.name)),
            (Expect::Reject(reason), Ok(_)) => {
                failures.push(format!("{}: accepted, expected {reason}", case.name))
            }
            (Expect::Reject(reason), Err(e)) => {
                if e.reason() != *reason {
                    failures.push(format!(
                        "{}: rejected as {}, expected {reason}",
                        case.name,
                        e.reason()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn limits_are_enforced() {
    let limits = Limits {
        max_message_size: 1024,
        max_headers: 8,
        max_header_line: 128,
        max_vias: 4,
    };
    let big = [b'x'; 2000];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (big.to_vec(), "too_large"),
        (
            [
                &b"INVITE sip:a@b SIP/2.0\r\n"[..],
                &b"a: 1\r\n".repeat(9),
                b"\r\n",
            ]
            .concat(),
            "too_many_headers",
        ),
        (
            [
                &b"INVITE sip:a@b SIP/2.0\r\nSubject: "[..],
                &[b'y'; 200],
                b"\r\n\r\n",
            ]
            .concat(),
            "line_too_long",
        ),
        (
            [
                &b"INVITE sip:a@b SIP/2.0\r\n"[..],
                &b"v: SIP/2.0/UDP a,SIP/2.0/UDP b\r\n".repeat(3),
                b"\r\n",
            ]
            .concat(),
            "too_many_vias",
        ),
    ];
    for (raw, reason) in cases {
        let e = SipMessage::parse(Bytes::from(raw), &limits).map(|_| ());
        assert_eq!(e.map_err(|e| e.reason()), Err(reason));
    }
}
