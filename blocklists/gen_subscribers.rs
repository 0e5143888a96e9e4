//! Generates a synthetic subscriber-list CSV (see `fraudwall::subscribers::synth`).
//!
//! ```text
//! cargo run --release --example gen_subscribers -- SUBSCRIBERS [SEED] [unique|shared] [personal] > subs.csv
//! cargo run --release --example gen_subscribers -- 100_000_000 1 shared > /work/data/subs-100m.csv
//! ```
//!
//! `unique` (the default) draws every personal entry from the whole number range, `shared`
//! from the numbers that call many people (see `Shape`); `personal` sets no levels (every
//! subscriber has two personal entries), so the list changes no verdict of the load harness.

use fraudwall::subscribers::synth::{write_csv_from, Shape};
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
        eprintln!("usage: gen_subscribers SUBSCRIBERS [SEED] [unique|shared] [personal] > subs.csv   (2 rows each; _ separators allowed)");
        return ExitCode::from(2);
    };
    let mut shape = match args.get(2).map(String::as_str) {
        None | Some("unique") => Shape::UNIQUE,
        Some("shared") => Shape::SHARED,
        Some(other) => {
            eprintln!("gen_subscribers: shape {other:?}: use unique or shared");
            return ExitCode::from(2);
        }
    };
    match args.get(3).map(String::as_str) {
        None => {}
        Some("personal") => shape.levels = false,
        Some(other) => {
            eprintln!("gen_subscribers: {other:?}: the fourth argument can only be personal");
            return ExitCode::from(2);
        }
    }
    let stdout = std::io::stdout();
    let mut w = BufWriter::with_capacity(8 << 20, stdout.lock());
    match write_csv_from(subscribers, seed, shape, &mut w).and_then(|()| w.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_subscribers: {e}");
            ExitCode::FAILURE
        }
    }
}
