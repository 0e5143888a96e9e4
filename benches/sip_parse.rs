//! SIP hot path: the zero-copy view against rsip on a realistic carrier INVITE, and the
//! cost of building the forwarded copy.
//!
//! Run: `cargo bench --bench sip_parse`.
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time:
//! the build box is shared by several jobs on 2 cores, and wall time there mostly measures
//! how often the thread was preempted. Set `SIP_BENCH_WALL=1` for wall-clock time.

use std::hint::black_box;

use bytes::Bytes;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};
use fraudwall::sip::{HeaderName, Limits, RequestEditor, SipMessage};
use rsip::headers::ToTypedHeader;
use rsip::message::HeadersExt;

/// An INVITE as a carrier's SBC sends it: 2 Vias, PAI (sip + tel), Privacy, SDP body.
const INVITE: &[u8] = b"INVITE sip:+15550001234@core.carrier.example;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-524287-1---d4a5c7e3b2a1f009;rport\r\n\
Via: SIP/2.0/UDP 203.0.113.20:5060;received=203.0.113.20;branch=z9hG4bK7f3a9c2e1d\r\n\
Max-Forwards: 69\r\n\
Record-Route: <sip:198.51.100.7;lr;ftag=as5f1c2b3d>\r\n\
From: \"Unknown\" <sip:+8613800000002@gw.intl.example;user=phone>;tag=as5f1c2b3d\r\n\
To: <sip:+15550001234@core.carrier.example;user=phone>\r\n\
Call-ID: 3c26700b5b7f-9d2a1e@198.51.100.7\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:+8613800000002@203.0.113.20:5060;transport=udp>\r\n\
P-Asserted-Identity: <sip:+8613800000002@gw.intl.example;user=phone>\r\n\
P-Asserted-Identity: <tel:+8613800000002>\r\n\
Privacy: none\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE, PRACK\r\n\
Supported: replaces, timer, 100rel\r\n\
Session-Expires: 1800;refresher=uac\r\n\
User-Agent: CarrierSBC 9.4\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 250\r\n\
\r\n\
v=0\r\n\
o=SBC 1706000000 1706000001 IN IP4 203.0.113.20\r\n\
s=SIP Call\r\n\
c=IN IP4 203.0.113.21\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 8 0 18 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// What the caller check reads: caller identities, Call-ID, CSeq, top Via branch.
fn view_caller_fields(buf: &Bytes, limits: &Limits) -> usize {
    let Ok(m) = SipMessage::parse(buf.clone(), limits) else {
        return 0;
    };
    let mut n = 0;
    for pai in m.p_asserted_identities().flatten() {
        n += pai.uri().user().map_or(0, <[u8]>::len);
    }
    if let Ok(Some(from)) = m.from() {
        n += from.uri().user().map_or(0, <[u8]>::len);
    }
    n += m.call_id().map_or(0, |c| c.as_bytes().len());
    n += m.cseq().ok().flatten().map_or(0, |c| c.seq as usize);
    n += m
        .top_via()
        .ok()
        .flatten()
        .and_then(|v| v.branch())
        .map_or(0, <[u8]>::len);
    n += m.max_forwards().ok().flatten().unwrap_or(0) as usize;
    n
}

/// The same reads through rsip (which has no typed P-Asserted-Identity: the raw header).
fn rsip_caller_fields(buf: &Bytes) -> usize {
    let Ok(rsip::SipMessage::Request(req)) = rsip::SipMessage::try_from(buf.clone()) else {
        return 0;
    };
    let mut n = 0;
    for h in req.headers.iter() {
        if let rsip::Header::Other(name, value) = h {
            if name.eq_ignore_ascii_case("P-Asserted-Identity") {
                n += value.len();
            }
        }
    }
    if let Ok(from) = req.from_header().and_then(|f| f.typed()) {
        n += from.uri.user().map_or(0, str::len);
    }
    n += req.call_id_header().map_or(0, |c| c.to_string().len());
    n += req
        .cseq_header()
        .and_then(|c| c.typed())
        .map_or(0, |c| c.seq as usize);
    n += req
        .via_header()
        .and_then(|v| v.typed())
        .ok()
        .and_then(|v| v.branch().map(|b| b.to_string().len()))
        .unwrap_or(0);
    n
}

/// Criterion measurement: CPU time consumed by the calling thread, in nanoseconds.
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is supported on
    // Linux. On failure the value stays zero and the sample is meaningless but harmless.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are nanoseconds, like wall time: reuse its formatting.
        WALL.formatter()
    }
}

fn bench<M: Measurement>(c: &mut Criterion<M>) {
    let limits = Limits::default();
    let buf = Bytes::from_static(INVITE);
    assert!(view_caller_fields(&buf, &limits) > 0);
    assert!(rsip_caller_fields(&buf) > 0);

    let mut g = c.benchmark_group("sip_parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("view_parse_only", |b| {
        b.iter(|| SipMessage::parse(black_box(buf.clone()), &limits).map(|m| m.via_count()))
    });
    g.bench_function("view_parse_caller_fields", |b| {
        b.iter(|| view_caller_fields(black_box(&buf), &limits))
    });
    g.bench_function("rsip_parse_only", |b| {
        b.iter(|| rsip::SipMessage::try_from(black_box(buf.clone())).is_ok())
    });
    g.bench_function("rsip_parse_caller_fields", |b| {
        b.iter(|| rsip_caller_fields(black_box(&buf)))
    });
    g.finish();

    let msg = match SipMessage::parse(buf.clone(), &limits) {
        Ok(m) => m,
        Err(e) => panic!("bench INVITE must parse: {e}"),
    };
    let mut g = c.benchmark_group("sip_edit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("via_push_max_forwards_label", |b| {
        b.iter(|| {
            let mut ed = RequestEditor::new(black_box(&msg));
            ed.push_via_fmt(format_args!(
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{:016x}",
                black_box(0x5eed_u64)
            ));
            ed.set_max_forwards(68);
            let _ = ed.add_header("X-Fraud-Label", b"suspected-fraud;category=loan;score=70");
            ed.finish()
        })
    });
    g.bench_function("tag_with_display_names", |b| {
        b.iter(|| {
            let mut ed = RequestEditor::new(black_box(&msg));
            ed.push_via(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK0000000000005eed");
            ed.set_max_forwards(68);
            let _ = ed.add_header("X-Fraud-Label", b"suspected-fraud;category=loan;score=70");
            let _ = ed.set_display_name(HeaderName::PAssertedIdentity, "SCAM? Unknown");
            let _ = ed.set_display_name(HeaderName::From, "SCAM? Unknown");
            ed.finish()
        })
    });
    g.finish();
}

fn main() {
    if std::env::var_os("SIP_BENCH_WALL").is_some() {
        let mut c = Criterion::default().configure_from_args();
        bench(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpuTime)
            .configure_from_args();
        bench(&mut c);
        c.final_summary();
    }
}
