//! Generates a synthetic subscriber-list CSV (see `fraudwall::subscribers::synth`).
//!
//! ```text
//! cargo run --release --example gen_subscribers -- SUBSCRIBERS [SEED] [unique|shared] > subs.csv
//! cargo run --release --example gen_subscribers -- 100_000_000 1 shared > /work/data/subs-100m.csv
//! ```
//!
//! `unique` (the default) draws every personal entry from the whole number range, `shared`
//! from the numbers that call many people (see `Pools`).

use fraudwall::subscribers::synth::{write_csv_from, Pools};
use std::io::{BufWriter, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parse = |i: usize, default: Option<u64>| -> Option<u64> {
        match args.get(i) {
            Some(s) => s.replace('_', "").parse().ok(),
            None => default,
        }
    };
    let (Some(subscribers), Some(seed)) = (parse(0, None), parse(1, Some(1))) else {
        eprintln!("usage: gen_subscribers SUBSCRIBERS [SEED] [unique|shared] > subs.csv   (2 rows each; _ separators allowed)");
        return ExitCode::from(2);
    };
    let pools = match args.get(2).map(String::as_str) {
        None | Some("unique") => Pools::UNIQUE,
        Some("shared") => Pools::SHARED,
        Some(other) => {
            eprintln!("gen_subscribers: pools {other:?}: use unique or shared");
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut w = BufWriter::with_capacity(8 << 20, stdout.lock());
    match write_csv_from(subscribers, seed, pools, &mut w).and_then(|()| w.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_subscribers: {e}");
            ExitCode::FAILURE
        }
    }
}
