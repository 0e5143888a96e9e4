//! Feed benches: what deltas cost a lookup, what a swap costs, and how big a delta is.
//!
//! A realistic 1M-row list (see `fraudwall::blocklist::synth`) is the base; two whole lists
//! each add 1,000 numbers and drop 100, and the two deltas between them are compiled with
//! `feed::delta`. Measured, on the same queries (half listed, half probes in the same blocks):
//!
//! - `feed/lookup/base`: a [`Layered`] view with no delta (one plain snapshot walk);
//! - `feed/lookup/base+2deltas`: the same list as base + 2 deltas (newest layer decides);
//! - `feed/swap`: one `ArcSwapOption::swap` of a prepared view (what the packet path can
//!   observe of an update: the rest happens on the updater);
//! - `feed/load_swap_lookup`: an `ArcSwapOption` load + layered lookup, as the screen does.
//!
//! The delta sizes are printed at setup (`delta 1: N bytes for M changes`).
//!
//! ```text
//! cargo bench --bench feed
//! ```

use arc_swap::ArcSwapOption;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fraudwall::blocklist::synth::Synth;
use fraudwall::blocklist::{compile_files, CompileOptions, Snapshot};
use fraudwall::feed::delta::{compile_delta, DeltaHeader};
use fraudwall::feed::layered::{Layer, Layered};
use fraudwall::numbers::E164;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const ROWS: u64 = 1_000_000;
const QUERIES: usize = 1 << 18;

fn write_csv(path: &Path, synth: &Synth, rows: u64, skip: u64) {
    let mut all = Vec::new();
    synth.write_csv(rows, &mut all).expect("generate");
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create csv"));
    // Drop `skip` rows after the header (removals from one list to the next).
    let text = String::from_utf8_lossy(&all);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    writeln!(w, "{header}").expect("write");
    for line in lines.skip(skip as usize) {
        writeln!(w, "{line}").expect("write");
    }
}

fn compile(dir: &Path, name: &str, csvs: &[PathBuf], version: u64) -> Arc<Snapshot> {
    let out = dir.join(name);
    let opts = CompileOptions {
        version: Some(version),
        ..CompileOptions::default()
    };
    compile_files(csvs, &opts, &out).expect("compile");
    Arc::new(Snapshot::open(&out).expect("open"))
}

fn delta(
    dir: &Path,
    name: &str,
    prev: &Snapshot,
    new: &Snapshot,
    base: &Snapshot,
) -> Arc<Snapshot> {
    let out = dir.join(name);
    let header = DeltaHeader {
        version: new.version(),
        created: 0,
        base_version: base.version(),
        base_hash: base.hash(),
    };
    let report = compile_delta(prev, new, header, u64::MAX, &out).expect("delta");
    eprintln!(
        "{name}: {} bytes for {} changes ({} added, {} changed, {} removed) on a {}-entry base of {} bytes",
        report.bytes,
        report.changes(),
        report.added,
        report.changed,
        report.removed,
        base.len(),
        std::fs::metadata(base.path()).map(|m| m.len()).unwrap_or(0)
    );
    Arc::new(Snapshot::open(&out).expect("open delta"))
}

fn queries(synth: &Synth) -> Vec<E164> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..QUERIES)
        .map(|i| {
            let text = if i % 2 == 0 {
                let n = synth.number(rnd() % ROWS);
                match n.strip_suffix('*') {
                    Some(p) => format!("{p}{:04}", rnd() % 10_000),
                    None => n,
                }
            } else {
                synth.probe(rnd())
            };
            text.parse().expect("generated numbers are valid E.164")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let synth = Synth::new(ROWS, 1);
    let (c0, c1, c2) = (d.join("l0.csv"), d.join("a1.csv"), d.join("a2.csv"));
    write_csv(&c0, &synth, ROWS, 0);
    write_csv(&c1, &Synth::new(1_000, 2), 1_000, 0);
    write_csv(&c2, &Synth::new(1_000, 3), 1_000, 0);
    let c0b = d.join("l0b.csv");
    write_csv(&c0b, &synth, ROWS, 100);
    let l0 = compile(d, "l0.fwb", std::slice::from_ref(&c0), 1);
    let l1 = compile(d, "l1.fwb", &[c0.clone(), c1.clone()], 2);
    let l2 = compile(d, "l2.fwb", &[c0b, c1, c2], 3);
    let d1 = delta(d, "delta-1.fwb", &l0, &l1, &l0);
    let d2 = delta(d, "delta-2.fwb", &l1, &l2, &l0);
    let layer = |n: &str, s: &Arc<Snapshot>| Layer::new(n, None, Arc::clone(s));
    let single = Layered::single(layer("l2", &l2), 3);
    let stacked = Layered::new(
        layer("l0", &l0),
        vec![layer("d1", &d1), layer("d2", &d2)],
        3,
    )
    .expect("stack");
    let qs = queries(&synth);
    let differ = qs
        .iter()
        .filter(|q| single.lookup(q).map(|m| m.action) != stacked.lookup(q).map(|m| m.action))
        .count();
    assert_eq!(differ, 0, "layered view must answer as the whole list");

    let mut g = c.benchmark_group("feed");
    g.throughput(Throughput::Elements(1));
    for (name, view) in [("lookup/base", &single), ("lookup/base+2deltas", &stacked)] {
        g.bench_function(name, |b| {
            let mut i = 0usize;
            b.iter(|| {
                let q = &qs[i & (QUERIES - 1)];
                i = i.wrapping_add(1);
                black_box(view.lookup(black_box(q)).map(|m| m.action))
            })
        });
    }
    let slot = ArcSwapOption::new(Some(Arc::new(stacked.clone())));
    g.bench_function("load_swap_lookup", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let q = &qs[i & (QUERIES - 1)];
            i = i.wrapping_add(1);
            let guard = slot.load();
            black_box(guard.as_ref().and_then(|v| v.lookup(q)).map(|m| m.action))
        })
    });
    let views = [Arc::new(single.clone()), Arc::new(stacked.clone())];
    g.bench_function("swap", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(slot.swap(Some(Arc::clone(&views[i & 1]))))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
