//! Blocklist benches: lookup (warm, random listed and unlisted numbers), open + verify, and
//! compile throughput from CSV.
//!
//! By default a 1M-row realistic list is generated and compiled in a temporary directory.
//! For the 100M-entry figures, generate and compile by hand and point the bench at it:
//!
//! ```text
//! cargo run --release --example gen_blocklist -- 100000000 1 > /work/data/bl-100m.csv
//! fraudwall compile -o /work/data/bl-100m.fwb /work/data/bl-100m.csv
//! FRAUDWALL_BENCH_SNAPSHOT=/work/data/bl-100m.fwb FRAUDWALL_BENCH_ROWS=100000000 \
//!     FRAUDWALL_BENCH_SEED=1 cargo bench --bench blocklist -- lookup
//! ```
//!
//! `FRAUDWALL_BENCH_ROWS` and `_SEED` must be those the list was generated with: the bench
//! regenerates the listed numbers from them (rows are a pure function of seed and index).

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use fraudwall::blocklist::synth::Synth;
use fraudwall::blocklist::{compile_files, CompileOptions, Load, Snapshot};
use fraudwall::numbers::E164;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

const DEFAULT_ROWS: u64 = 1_000_000;

/// Thread CPU time (CLOCK_THREAD_CPUTIME_ID) instead of wall time: on a shared 2-core box
/// the wall clock also counts the time other processes hold the core; this does not.
struct ThreadCpu {
    wall: WallTime,
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = Duration;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns().saturating_sub(start))
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}
const QUERIES: usize = 1 << 20;

struct Fixture {
    _dir: Option<tempfile::TempDir>,
    csv: Option<PathBuf>,
    snapshot: PathBuf,
    rows: u64,
    seed: u64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn fixture() -> Fixture {
    let seed = env_u64("FRAUDWALL_BENCH_SEED", 1);
    if let Ok(p) = std::env::var("FRAUDWALL_BENCH_SNAPSHOT") {
        return Fixture {
            _dir: None,
            csv: None,
            snapshot: PathBuf::from(p),
            rows: env_u64("FRAUDWALL_BENCH_ROWS", DEFAULT_ROWS),
            seed,
        };
    }
    let dir = tempfile::tempdir().expect("temp dir for the bench list");
    let csv = dir.path().join("list.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&csv).expect("create csv"));
    Synth::new(DEFAULT_ROWS, seed)
        .write_csv(DEFAULT_ROWS, &mut w)
        .expect("write csv");
    drop(w);
    let snapshot = dir.path().join("list.fwb");
    let report = compile_files(
        std::slice::from_ref(&csv),
        &CompileOptions::default(),
        &snapshot,
    )
    .expect("compile bench list");
    eprintln!(
        "bench list: {} rows, {} entries, {} bytes, {:.2} bytes/entry",
        report.rows,
        report.entries,
        report.bytes,
        report.bytes as f64 / report.entries as f64
    );
    Fixture {
        csv: Some(csv),
        snapshot,
        rows: DEFAULT_ROWS,
        seed,
        _dir: Some(dir),
    }
}

/// Half listed numbers (rows drawn at random; a prefix row gets 4 random digits), half
/// probes in the same allocation blocks (mostly unlisted), shuffled by construction.
fn queries(f: &Fixture) -> Vec<E164> {
    let s = Synth::new(f.rows, f.seed);
    let mut state = 0x1234_5678_9ABC_DEF0u64 ^ f.seed;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..QUERIES)
        .map(|i| {
            let text = if i % 2 == 0 {
                let n = s.number(rnd() % f.rows);
                match n.strip_suffix('*') {
                    Some(p) => format!("{p}{:04}", rnd() % 10_000),
                    None => n,
                }
            } else {
                s.probe(rnd())
            };
            text.parse().expect("generated numbers are valid E.164")
        })
        .collect()
}

/// One lookup per iteration, cycling through the query set (a million numbers, so the
/// lookups do not all hit cache).
fn bench_lookup<M: Measurement>(g: &mut BenchmarkGroup<'_, M>, snap: &Snapshot, qs: &[E164]) {
    g.bench_function(BenchmarkId::new("lookup", snap.len()), |b| {
        let mut i = 0usize;
        b.iter(|| {
            let q = &qs[i & (QUERIES - 1)];
            i = i.wrapping_add(1);
            black_box(snap.lookup(black_box(q)).map(|m| m.action))
        })
    });
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let load = match std::env::var("FRAUDWALL_BENCH_LOAD").as_deref() {
        Ok("map") => Load::Map,
        _ => Load::HugePages,
    };
    let snap = Snapshot::open_with(&f.snapshot, load).expect("open bench snapshot");
    let info = snap.info();
    eprintln!(
        "snapshot {} ({load:?}): {} entries, {} bytes, {} bytes/entry",
        f.snapshot.display(),
        info.entries,
        info.bytes,
        info.bytes_per_entry
    );
    let qs = queries(&f);
    let listed = qs.iter().filter(|q| snap.lookup(q).is_some()).count();
    eprintln!("queries: {} ({} listed)", qs.len(), listed);

    let mut g = c.benchmark_group("blocklist");
    g.throughput(Throughput::Elements(1));
    bench_lookup(&mut g, &snap, &qs);
    g.finish();

    let mut cpu = Criterion::default()
        .with_measurement(ThreadCpu { wall: WallTime })
        .configure_from_args();
    let mut g = cpu.benchmark_group("blocklist_cputime");
    bench_lookup(&mut g, &snap, &qs);
    g.finish();

    let mut g = c.benchmark_group("blocklist");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function(BenchmarkId::new("open_verify", info.entries), |b| {
        b.iter(|| black_box(Snapshot::open_with(&f.snapshot, load).expect("open").len()))
    });
    if let Some(csv) = &f.csv {
        let out = f.snapshot.with_extension("compiled.fwb");
        g.throughput(Throughput::Elements(f.rows));
        g.bench_function(BenchmarkId::new("compile_csv", f.rows), |b| {
            b.iter(|| {
                compile_files(std::slice::from_ref(csv), &CompileOptions::default(), &out)
                    .expect("compile")
                    .entries
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
