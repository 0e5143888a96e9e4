//! The behavioural detector's cost per INVITE with 10 million distinct callers plus robocall
//! campaigns, in the default configuration (112 MiB). Target: at most 200 ns per INVITE.
//!
//! What the product does per INVITE is one visit: the proxy core (and the redirect server)
//! counts the INVITE and judges the caller in one call, `Detector::visit`, and the policy's
//! `behaviour` stage reads that judgement from the call context
//! (src/proxy/core/request.rs, src/policy/chain.rs). `detection/judge_and_invite_10M_callers`
//! is that visit, the figure the target is about (the name is kept from when it timed
//! `judge` then `observe`). `judge_then_observe_10M_callers` is that old pair, which the
//! core still makes when the call's identity values name different numbers (the deciding
//! caller is then known only after screening); `invite_10M_callers` is `observe` alone.
//!
//! The traffic generator writes each number's digits arithmetically instead of reading it
//! from a table (a 160 MB table of 10M callers costs the generator a cache and TLB miss
//! per call of its own, which the bench would have charged to the detector; in the proxy
//! the caller comes from the packet, in cache). `traffic_only` is the generator alone,
//! for reference: subtract it.
//!
//! `cargo bench --bench detection`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use fraudwall::detection::{CallEvent, CallEventKind, CallKey, DetectionConfig, Detector};
use fraudwall::numbers::E164;

const CALLERS: u64 = 10_000_000;
const CALLEES: u64 = 1 << 20;
const CAMPAIGN_NUMBERS: u64 = 1000;
/// One INVITE in this many comes from a campaign number.
const CAMPAIGN_EVERY: u64 = 20;

fn number(prefix: u64, i: u64) -> E164 {
    // i * 7919 mod 10^8 is a bijection on 0..10^8: distinct, scattered numbers.
    let mut v = prefix * 100_000_000 + (i * 7919) % 100_000_000;
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    while v > 0 {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    E164::from_digits(&buf[at..]).expect("a valid number")
}

struct Traffic {
    n: u64,
    now: Instant,
}

impl Traffic {
    fn new() -> Traffic {
        Traffic {
            n: 0,
            now: Instant::now(),
        }
    }

    /// The next INVITE: 1,000 calls a second of simulated time (a busy node), each from a
    /// caller drawn at random among the 10 million (so each calls about every 3 hours, like
    /// a subscriber), or from a campaign number (each calling 180 times an hour).
    fn next(&mut self) -> (CallEvent, Instant) {
        self.n += 1;
        let n = self.n;
        self.now += Duration::from_millis(1);
        let caller = if n % CAMPAIGN_EVERY == 0 {
            number(86170, (n / CAMPAIGN_EVERY) % CAMPAIGN_NUMBERS)
        } else {
            let r = (n ^ 0x5851_f42d_4c95_7f2d).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            number(86130, (r >> 11) % CALLERS)
        };
        let callee = number(86150, n.wrapping_mul(0x9e37_79b9) % CALLEES);
        (
            CallEvent {
                call: CallKey::new(n),
                kind: CallEventKind::Invite { caller, callee },
            },
            self.now,
        )
    }
}

fn per_invite(c: &mut Criterion) {
    let d = Detector::new(&DetectionConfig {
        enabled: true,
        ..DetectionConfig::default()
    })
    .expect("the default configuration is valid");
    let mut t = Traffic::new();
    // Warm up to steady state (10M INVITEs, the tables full), timing it in CPU time as well
    // as wall time: on a shared machine, CPU time leaves out the time the thread waited for
    // a core (not the cache other processes evict).
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    for _ in 0..CALLERS {
        let (e, now) = t.next();
        d.observe(e, now);
    }
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    eprintln!(
        "warm-up, {CALLERS} INVITEs: {:.0} ns CPU, {:.0} ns wall per INVITE (traffic generation included)",
        cpu.as_nanos() as f64 / CALLERS as f64,
        wall.as_nanos() as f64 / CALLERS as f64
    );
    // The product's visit in CPU time too, over a fixed batch: on a shared machine the
    // criterion figures below (wall time) also count the time the thread waited for a core.
    const BATCH: u64 = 2_000_000;
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    for _ in 0..BATCH {
        let (e, now) = t.next();
        if let CallEventKind::Invite { caller, callee } = e.kind {
            black_box(d.visit(e.call, black_box(&caller), &callee, now));
        }
    }
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    eprintln!(
        "visit, {BATCH} INVITEs: {:.0} ns CPU, {:.0} ns wall per INVITE (traffic generation included)",
        cpu.as_nanos() as f64 / BATCH as f64,
        wall.as_nanos() as f64 / BATCH as f64
    );
    let mut g = c.benchmark_group("detection");
    g.bench_function("traffic_only", |b| b.iter(|| black_box(t.next())));
    // The product's visit per INVITE: counted and judged at once.
    g.bench_function("judge_and_invite_10M_callers", |b| {
        b.iter(|| {
            let (e, now) = t.next();
            match e.kind {
                CallEventKind::Invite { caller, callee } => {
                    black_box(d.visit(e.call, black_box(&caller), &callee, now))
                }
                _ => None,
            }
        })
    });
    // The pair the core still makes when the deciding caller is known only after screening:
    // the policy's judge, then the core's observe.
    g.bench_function("judge_then_observe_10M_callers", |b| {
        b.iter(|| {
            let (e, now) = t.next();
            if let CallEventKind::Invite { caller, .. } = e.kind {
                black_box(d.judge(black_box(&caller), now));
            }
            black_box(d.observe(black_box(e), now))
        })
    });
    g.bench_function("invite_10M_callers", |b| {
        b.iter(|| {
            let (e, now) = t.next();
            black_box(d.observe(black_box(e), now))
        })
    });
    g.bench_function("invite_and_outcomes_10M_callers", |b| {
        b.iter(|| {
            let (e, now) = t.next();
            let call = e.call;
            black_box(d.observe(black_box(e), now));
            d.observe(
                CallEvent {
                    call,
                    kind: CallEventKind::Failed { status: 486 },
                },
                now,
            );
        })
    });
    // The same work with 10,000 callers whose lines stay in cache: the compute floor, what
    // is left when memory latency is taken out.
    let small = Detector::new(&DetectionConfig {
        enabled: true,
        ..DetectionConfig::default()
    })
    .expect("the default configuration is valid");
    let mut n = 0u64;
    let mut now = Instant::now();
    g.bench_function("invite_10k_callers_in_cache", |b| {
        b.iter(|| {
            n += 1;
            now += Duration::from_millis(1);
            let caller = number(86130, n.wrapping_mul(0x9e37_79b9) % 10_000);
            let callee = number(86150, n % CALLEES);
            black_box(small.observe(
                black_box(CallEvent {
                    call: CallKey::new(n),
                    kind: CallEventKind::Invite { caller, callee },
                }),
                now,
            ))
        })
    });
    g.finish();
    eprintln!(
        "detector memory: {} bytes; stats: {:?}",
        d.memory_bytes(),
        d.stats()
    );
}

/// User and system CPU time of this process.
fn cpu_time() -> Duration {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let u = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr());
        u.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

criterion_group!(benches, per_invite);
criterion_main!(benches);
