//! Synthetic subscriber lists at any size, for benchmarks and load tests.
//!
//! Subscriber `i` is `+8613` followed by `i` in nine digits (so up to 1,000,000,000
//! subscribers, all valid Chinese mobile numbers), with two rows each, as a carrier's opt-in
//! base might look: a personal block of one number in `+86170…` (a reported scam number),
//! and either a personal allow of one `+86400…` number (a bank's line) or a level (`tag` for
//! one subscriber in three, `block` for one in six). Deterministic for a given seed.
//!
//! ```text
//! cargo run --release --example gen_subscribers -- 100000000 1 > /work/data/subs-100m.csv
//! ```

use std::io::{self, Write};

/// The number of subscriber `i`.
pub fn subscriber(i: u64) -> String {
    format!("+8613{:09}", i % 1_000_000_000)
}

/// A small, fast, deterministic generator (xorshift64*).
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Writes the header and two rows for each of `subscribers` subscribers.
pub fn write_csv(subscribers: u64, seed: u64, w: &mut impl Write) -> io::Result<()> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    w.write_all(b"subscriber,caller,action\n")?;
    for i in 0..subscribers {
        let sub = subscriber(i);
        let r = next(&mut state);
        writeln!(w, "{sub},+86170{:08},block", r % 100_000_000)?;
        match (r >> 32) % 6 {
            0 => writeln!(w, "{sub},*,block")?,
            1 | 2 => writeln!(w, "{sub},*,tag")?,
            _ => writeln!(w, "{sub},+86400{:07},allow", (r >> 40) % 10_000_000)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_compile_without_a_rejection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = dir.path().join("s.csv");
        let mut out = Vec::new();
        write_csv(1_000, 7, &mut out).expect("write");
        std::fs::write(&csv, &out).expect("csv");
        let fwb = dir.path().join("s.fwb");
        let r = crate::subscribers::compile_subscribers(&[csv], &Default::default(), &fwb)
            .expect("compile");
        assert_eq!((r.error_count, r.subscribers, r.entries), (0, 1_000, 2_000));
        assert_eq!(subscriber(42), "+8613000000042");
    }
}
