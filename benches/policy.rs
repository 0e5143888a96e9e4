//! The rule chain's cost over today's single lookup, for an unlisted caller (issue 11's
//! target: at most 300 ns more, warm).
//!
//! Two screens over the same blocklist, called with the same mostly-unlisted callers and
//! random callees:
//! - `global-only`: the chain reduced to the global list ([`Rules::global_only`]), which is
//!   today's single lookup plus the anonymous/invalid actions;
//! - `chain`: every stage, with a home country, the origin label, a subscriber list (two
//!   entries per subscriber, [`fraudwall::subscribers::synth`]) and a protected list loaded;
//!   every callee is a subscriber with entries, so the personal stage finds the subscriber's
//!   block and decodes their record on every call;
//!   (unlisted callers are named by no personal entry, so the personal stage answers from
//!   the list's caller filter, one line, and reads no record);
//! - `chain-named-callers`: `chain`, with callers drawn from the numbers the personal
//!   entries name (`+86170…`): the filter says "maybe", and the callee's record is read and
//!   decoded (the path every call took before the filter);
//! - `chain-without-subscribers`: every stage, but no subscriber list loaded;
//! - `subscriber-lookup`: the subscriber list's lookup alone, for the same calls;
//! - `global-and-one-line`: `global-only` plus one random cache line of a 1 GiB region in
//!   huge pages (the size of a 100M-subscriber list), its address computed from the callee
//!   with no other read, fetched before the global lookup and read after it. That is the
//!   least any subscriber list can add to the chain: a layout that reads a single line per
//!   lookup, found from nothing but the number.
//!
//! By default a 1M-row blocklist and a 1M-subscriber list are generated. For the 100M
//! figures, point the bench at compiled files:
//!
//! ```text
//! cargo run --release --example gen_blocklist -- 100_000_000 1 > /work/data/bl-100m.csv
//! fraudwall compile --output /work/data/bl-100m.fwb /work/data/bl-100m.csv
//! cargo run --release --example gen_subscribers -- 100_000_000 1 > /work/data/subs-100m.csv
//! fraudwall compile --kind subscribers --output /work/data/subs-100m.fwb /work/data/subs-100m.csv
//! FRAUDWALL_BENCH_SNAPSHOT=/work/data/bl-100m.fwb FRAUDWALL_BENCH_ROWS=100000000 \
//! FRAUDWALL_BENCH_SUBSCRIBERS=/work/data/subs-100m.fwb FRAUDWALL_BENCH_SUBSCRIBER_COUNT=100000000 \
//!     cargo bench --bench policy
//! ```

use arc_swap::ArcSwapOption;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fraudwall::blocklist::synth::Synth;
use fraudwall::blocklist::{compile_files, Action, CompileOptions, Snapshot};
use fraudwall::numbers::{Caller, E164};
use fraudwall::peers::PeerGroup;
use fraudwall::policy::{CallContext, Callee, CallerActions, Policy, PolicyConfig, Rules, Screen};
use fraudwall::protected::ProtectedList;
use fraudwall::subscribers::{synth, SubscriberList};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_ROWS: u64 = 1_000_000;
const QUERIES: usize = 1 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// The blocklist: the given snapshot, or a generated 1M-row one (kept in `dir`).
fn blocklist(dir: &tempfile::TempDir) -> (Arc<Snapshot>, u64) {
    if let Ok(p) = std::env::var("FRAUDWALL_BENCH_SNAPSHOT") {
        let rows = env_u64("FRAUDWALL_BENCH_ROWS", DEFAULT_ROWS);
        return (
            Arc::new(Snapshot::open(PathBuf::from(p)).expect("open")),
            rows,
        );
    }
    let csv = dir.path().join("list.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&csv).expect("create csv"));
    Synth::new(DEFAULT_ROWS, 1)
        .write_csv(DEFAULT_ROWS, &mut w)
        .expect("write csv");
    drop(w);
    let out = dir.path().join("list.fwb");
    compile_files(std::slice::from_ref(&csv), &CompileOptions::default(), &out).expect("compile");
    (Arc::new(Snapshot::open(&out).expect("open")), DEFAULT_ROWS)
}

/// The subscriber list: the given one, or a generated 1M-subscriber one (kept in `dir`).
fn subscriber_list(dir: &tempfile::TempDir) -> (Arc<SubscriberList>, u64) {
    if let Ok(p) = std::env::var("FRAUDWALL_BENCH_SUBSCRIBERS") {
        let count = env_u64("FRAUDWALL_BENCH_SUBSCRIBER_COUNT", DEFAULT_ROWS);
        return (
            Arc::new(SubscriberList::open(p).expect("open subscribers")),
            count,
        );
    }
    let csv = dir.path().join("subs.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&csv).expect("create csv"));
    synth::write_csv(DEFAULT_ROWS, 1, &mut w).expect("write csv");
    drop(w);
    let out = dir.path().join("subs.fwb");
    fraudwall::subscribers::compile_subscribers(
        std::slice::from_ref(&csv),
        &Default::default(),
        &out,
    )
    .expect("compile subscribers");
    (
        Arc::new(SubscriberList::open(&out).expect("open")),
        DEFAULT_ROWS,
    )
}

/// A protected list of a thousand bank and government lines (none of them a caller here).
fn protected_list(dir: &tempfile::TempDir) -> Arc<ProtectedList> {
    let csv = dir.path().join("protected.csv");
    let mut rows = String::from("number,entitled,category\n");
    for i in 0..1_000 {
        rows.push_str(&format!("+86955{i:03}*,core,bank-impersonation\n"));
    }
    std::fs::write(&csv, rows).expect("protected csv");
    let out = dir.path().join("protected.fwb");
    fraudwall::protected::compile_protected(
        std::slice::from_ref(&csv),
        &CompileOptions::default(),
        &out,
    )
    .expect("compile protected");
    Arc::new(ProtectedList::open(&out, None).expect("open protected"))
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (snapshot, rows) = blocklist(&dir);
    let (subscribers, subscriber_count) = subscriber_list(&dir);
    let protected = protected_list(&dir);
    let synth = Synth::new(rows, 1);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Unlisted callers (probes in the list's allocation blocks that the list does not hold:
    // the target is for an unlisted caller; a listed one needs the callee's level), callees
    // drawn from the subscribers (each with two entries and maybe a level).
    let mut listed = 0usize;
    let mut calls: Vec<(Caller, E164)> = Vec::with_capacity(QUERIES);
    while calls.len() < QUERIES {
        let caller: E164 = synth.probe(rnd()).parse().expect("probe");
        if snapshot.lookup(&caller).is_some() {
            listed += 1;
            continue;
        }
        let callee: E164 = synth::subscriber(rnd() % subscriber_count)
            .parse()
            .expect("callee");
        calls.push((Caller::Number(caller), callee));
    }
    eprintln!(
        "{listed} listed probes skipped for {QUERIES} unlisted callers; caller filter {} MB",
        subscribers.filter_bytes() >> 20
    );
    let global = Arc::new(ArcSwapOption::from(Some(snapshot)));
    let callers = CallerActions::default();
    let full = PolicyConfig {
        home_country: vec!["86".into()],
        international_origin: Action::Tag,
        verstat_failed: Action::Tag,
        ..PolicyConfig::default()
    }
    .compile()
    .expect("policy");
    type Screen3 = Policy<Snapshot, SubscriberList, ProtectedList>;
    let lists = Arc::clone(&subscribers);
    let screens: [(&str, Screen3); 3] = [
        (
            "global-only",
            Policy::new(
                Arc::clone(&global),
                Arc::new(ArcSwapOption::empty()),
                Arc::new(ArcSwapOption::empty()),
                Rules::global_only(),
                callers,
            ),
        ),
        (
            "chain-without-subscribers",
            Policy::new(
                Arc::clone(&global),
                Arc::new(ArcSwapOption::empty()),
                Arc::new(ArcSwapOption::from(Some(Arc::clone(&protected)))),
                full.clone(),
                callers,
            ),
        ),
        (
            "chain",
            Policy::new(
                Arc::clone(&global),
                Arc::new(ArcSwapOption::from(Some(subscribers))),
                Arc::new(ArcSwapOption::from(Some(protected))),
                full,
                callers,
            ),
        ),
    ];
    let group = PeerGroup::default_group();
    let mut g = c.benchmark_group("policy");
    g.measurement_time(Duration::from_secs(5));
    // Built once: `for_caller` reads the clock, which the packet path does not do per value.
    let base = CallContext::for_caller(&calls[0].0, &group);
    for (name, policy) in &screens {
        g.bench_function(
            BenchmarkId::new(*name, format!("{rows}x{subscriber_count}")),
            |b| screen_each(b, policy, &calls, base),
        );
    }
    // Callers some personal entry names: the filter's "maybe" path.
    let named: Vec<(Caller, E164)> = calls
        .iter()
        .map(|(_, callee)| {
            let caller: E164 = format!("+86170{:08}", rnd() % 100_000_000)
                .parse()
                .expect("named caller");
            (Caller::Number(caller), *callee)
        })
        .collect();
    let chain = &screens[2].1;
    g.bench_function(
        BenchmarkId::new("chain-named-callers", format!("{rows}x{subscriber_count}")),
        |b| screen_each(b, chain, &named, base),
    );
    // The subscriber lookup alone (what `chain` adds over `chain-without-subscribers`).
    g.bench_function(
        BenchmarkId::new("subscriber-lookup", format!("{rows}x{subscriber_count}")),
        |b| {
            let mut i = 0usize;
            b.iter(|| {
                let (caller, callee) = &calls[i & (QUERIES - 1)];
                i = i.wrapping_add(1);
                let Caller::Number(caller) = caller else {
                    return None;
                };
                black_box(lists.answer(black_box(callee), caller).level)
            })
        },
    );
    // The floor for any subscriber layout: one line, its address from the callee alone.
    let mut region = memmap2::MmapMut::map_anon(REGION).expect("anonymous map");
    #[cfg(target_os = "linux")]
    region
        .advise(memmap2::Advice::HugePage)
        .expect("madvise huge pages");
    region.fill(1);
    let floor = &screens[0].1;
    g.bench_function(
        BenchmarkId::new("global-and-one-line", format!("{rows}x{subscriber_count}")),
        |b| {
            let mut i = 0usize;
            b.iter(|| {
                let (caller, callee) = &calls[i & (QUERIES - 1)];
                i = i.wrapping_add(1);
                let at = line_of(black_box(callee));
                prefetch_line(&region[at..]);
                let call = CallContext {
                    caller,
                    callee: Callee {
                        user: b"",
                        number: Some(*callee),
                    },
                    ..base
                };
                black_box(floor.screen(black_box(&call)).action);
                black_box(region[at])
            })
        },
    );
    g.finish();
}

/// Screens `calls` in turn, one per iteration (`base` gives the rest of the context).
fn screen_each<'a>(
    b: &mut criterion::Bencher<'_>,
    policy: &impl Screen,
    calls: &'a [(Caller, E164)],
    base: CallContext<'a>,
) {
    let mut i = 0usize;
    b.iter(|| {
        let (caller, callee) = &calls[i & (QUERIES - 1)];
        i = i.wrapping_add(1);
        let call = CallContext {
            caller,
            callee: Callee {
                user: b"",
                number: Some(*callee),
            },
            ..base
        };
        black_box(policy.screen(black_box(&call)).action)
    })
}

/// The region `global-and-one-line` reads from: about a 100M-subscriber list.
const REGION: usize = 1 << 30;

/// A cache line of [`REGION`] picked by the callee's digits (FNV-1a).
fn line_of(callee: &E164) -> usize {
    let h = callee
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    (h as usize % (REGION / 64)) * 64
}

/// Asks the CPU to fetch the line at the start of `bytes`.
fn prefetch_line(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing into the program and never faults; SSE is part of
    // the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

criterion_group!(benches, bench);
criterion_main!(benches);
