//! Generates a realistic synthetic blocklist CSV (see `fraudwall::blocklist::synth`).
//!
//! ```text
//! cargo run --release --example gen_blocklist -- ROWS [SEED] > list.csv
//! cargo run --release --example gen_blocklist -- 100000000 1 > /work/data/bl-100m.csv
//! ```

use fraudwall::blocklist::synth::Synth;
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
    let (Some(rows), Some(seed)) = (parse(0, None), parse(1, Some(1))) else {
        eprintln!("usage: gen_blocklist ROWS [SEED] > list.csv   (ROWS may use _ separators)");
        return ExitCode::from(2);
    };
    let stdout = std::io::stdout();
    let mut w = BufWriter::with_capacity(8 << 20, stdout.lock());
    match Synth::new(rows, seed)
        .write_csv(rows, &mut w)
        .and_then(|()| w.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_blocklist: {e}");
            ExitCode::FAILURE
        }
    }
}
