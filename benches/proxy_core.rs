//! ns per message through `ProxyCore::handle`: an initial INVITE that is allowed, tagged or
//! blocked (parse, identity, normalization, snapshot lookup through arc-swap, action,
//! output bytes), and a response relayed back upstream.
//!
//! Run: `cargo bench --bench proxy_core`.
//!
//! Each sample is timed in the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, via
//! `iter_custom`): the build box is shared by several jobs on 2 cores, where wall time mostly
//! measures preemption. Set `PROXY_BENCH_WALL=1` for wall-clock time.

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fraudwall::blocklist::{compile_csv_text, CompileOptions, Snapshot};
use fraudwall::policy::{CallerActions, Policy};
use fraudwall::proxy::core::{CoreConfig, Disposition, ProxyCore};
use fraudwall::proxy::{Inbound, Transport};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// This thread's CPU time, or wall time when `PROXY_BENCH_WALL` is set.
fn clock() -> Duration {
    if std::env::var_os("PROXY_BENCH_WALL").is_some() {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        return START.get_or_init(Instant::now).elapsed();
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is supported on Linux; on
    // failure it stays zero and the sample is meaningless but harmless.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` `iters` times and returns the time it took (see [`clock`]).
fn timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = clock();
    for _ in 0..iters {
        f();
    }
    clock().saturating_sub(start)
}

const CSV: &str = "number,action,category,score,source\n\
                   +8613800000001,block,impersonation,95,police\n\
                   +8613800000002,tag,loan,70,reports\n\
                   +8617012*,block,fraud-range,80,reports\n";

/// A realistic carrier INVITE with an SDP body, from `caller`.
fn invite(caller: &str) -> Bytes {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
               m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
               a=rtpmap:101 telephone-event/8000\r\n";
    Bytes::from(format!(
        "INVITE sip:+8675512345678@127.0.0.1:5060;user=phone SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-524287-1---77d5d9d1fe0e40a8;rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Caller\" <sip:{caller}@192.0.2.1;user=phone>;tag=8f3a2c1d\r\n\
         To: <sip:+8675512345678@127.0.0.1;user=phone>\r\n\
         Call-ID: 3c26700d5bf4-1d2f@192.0.2.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{caller}@192.0.2.1:5060>\r\n\
         P-Asserted-Identity: <sip:{caller}@192.0.2.1;user=phone>\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE\r\n\
         Supported: 100rel, timer\r\n\
         User-Agent: carrier-sbc/1.0\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ))
}

fn inbound(data: Bytes, source: &str) -> Inbound {
    Inbound {
        data,
        source: source.parse().expect("bench address"),
        local: "127.0.0.1:5060".parse().expect("bench address"),
        transport: Transport::Udp,
        verified_peer: false,
        queued: None,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.fwb");
    compile_csv_text(CSV, &CompileOptions::default(), &path).expect("compile bench list");
    let snapshot = Snapshot::open(&path).expect("open bench list");
    let slot = Arc::new(ArcSwapOption::from_pointee(snapshot));
    let screen = Arc::new(Policy::over(slot, CallerActions::default()));
    let mut config = CoreConfig::default();
    config.proxy.trusted_peers = vec!["192.0.2.0/24".parse().expect("network")];
    let core = ProxyCore::new(config, screen).expect("bench config");
    let now = Instant::now();
    let mut out = Vec::with_capacity(4);

    let mut g = c.benchmark_group("proxy_core");
    g.throughput(Throughput::Elements(1));
    for (name, caller, expected) in [
        ("invite_allow", "+12025550123", Disposition::Forwarded),
        ("invite_tag", "+8613800000002", Disposition::Forwarded),
        ("invite_block", "+8613800000001", Disposition::Answered(608)),
    ] {
        let msg = inbound(invite(caller), "192.0.2.1:5060");
        out.clear();
        let o = core.handle(msg.clone(), now, &mut out);
        assert_eq!(o.disposition, expected, "{name}");
        let tagged = out[0].data.windows(13).any(|w| w == b"X-Fraud-Label");
        assert_eq!(tagged, name == "invite_tag", "{name}");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(iters, || {
                    out.clear();
                    black_box(core.handle(msg.clone(), now, &mut out));
                })
            })
        });
    }

    // A 180 for a forwarded INVITE, as the switch sends it back.
    out.clear();
    core.handle(
        inbound(invite("+12025550123"), "192.0.2.1:5060"),
        now,
        &mut out,
    );
    let forwarded = String::from_utf8(out[0].data.to_vec()).expect("utf-8");
    let vias: Vec<&str> = forwarded
        .lines()
        .filter(|l| l.starts_with("Via: "))
        .collect();
    let ringing = Bytes::from(format!(
        "SIP/2.0 180 Ringing\r\n{}\r\nFrom: \"Caller\" <sip:+12025550123@192.0.2.1;user=phone>;tag=8f3a2c1d\r\n\
         To: <sip:+8675512345678@127.0.0.1;user=phone>;tag=sw-1\r\nCall-ID: 3c26700d5bf4-1d2f@192.0.2.1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:switch@127.0.0.1:5080>\r\nContent-Length: 0\r\n\r\n",
        vias.join("\r\n")
    ));
    let msg = inbound(ringing, "127.0.0.1:5080");
    out.clear();
    let o = core.handle(msg.clone(), now, &mut out);
    assert_eq!(o.disposition, Disposition::Forwarded, "response relay");
    g.bench_function("response_relay", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                out.clear();
                black_box(core.handle(msg.clone(), now, &mut out));
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
