//! Generates a synthetic subscriber-list CSV (see `fraudwall::subscribers::synth`).
//!
//! ```text
//! cargo run --release --example gen_subscribers -- SUBSCRIBERS [SEED] > subs.csv
//! cargo run --release --example gen_subscribers -- 100_000_000 1 > /work/data/subs-100m.csv
//! ```

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
        eprintln!("usage: gen_subscribers SUBSCRIBERS [SEED] > subs.csv   (2 rows each; _ separators allowed)");
        return ExitCode::from(2);
    };
    let stdout = std::io::stdout();
    let mut w = BufWriter::with_capacity(8 << 20, stdout.lock());
    match fraudwall::subscribers::synth::write_csv(subscribers, seed, &mut w)
        .and_then(|()| w.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_subscribers: {e}");
            ExitCode::FAILURE
        }
    }
}
