//! Synthetic subscriber lists at any size, for benchmarks and load tests.
//!
//! Subscriber `i` is `+8613` followed by `i` in nine digits (so up to 1,000,000,000
//! subscribers, all valid Chinese mobile numbers), with two rows each, as a carrier's opt-in
//! base might look: a personal block of one number in `+86170…` (a scam number that called
//! them), and either a personal allow of one `+86400…` number (a bank's or a doctor's line)
//! or a level (`tag` for one subscriber in three, `block` for one in six). Deterministic for
//! a given seed.
//!
//! Where the numbers come from is the [`Shape`]: [`Shape::UNIQUE`] draws each from all
//! 100,000,000 `+86170` and 10,000,000 `+86400` numbers (every subscriber's entries differ:
//! the worst case for size), [`Shape::SHARED`] from the numbers that actually call many
//! people: 1,000,000 scam numbers (three times the 337,810 numbers of the FTC's 90-day
//! reported-number list in `../shared/data`) and 100,000 business lines.
//!
//! ```text
//! cargo run --release --example gen_subscribers -- 100000000 1 unique > /work/data/subs-100m.csv
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

/// How many distinct numbers the personal entries are drawn from, and whether levels are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Whether half the subscribers set a level (`*` row) instead of a personal allow.
    /// Without levels a list changes no verdict for callers outside `+86170` and `+86400`
    /// (the load harness's check of every verdict still holds).
    pub levels: bool,
    /// Distinct blocked (`+86170…`) numbers, at most 100,000,000.
    pub blocked: u64,
    /// Distinct allowed (`+86400…`) numbers, at most 10,000,000.
    pub allowed: u64,
}

impl Shape {
    /// Every entry drawn from the whole range: nearly all distinct.
    pub const UNIQUE: Shape = Shape {
        levels: true,
        blocked: 100_000_000,
        allowed: 10_000_000,
    };
    /// Entries drawn from the numbers that call many people.
    pub const SHARED: Shape = Shape {
        levels: true,
        blocked: 1_000_000,
        allowed: 100_000,
    };
}

/// Writes the header and two rows for each of `subscribers` subscribers.
pub fn write_csv(subscribers: u64, seed: u64, w: &mut impl Write) -> io::Result<()> {
    write_csv_from(subscribers, seed, Shape::UNIQUE, w)
}

/// [`write_csv`] with the entries drawn from `shape`.
pub fn write_csv_from(
    subscribers: u64,
    seed: u64,
    shape: Shape,
    w: &mut impl Write,
) -> io::Result<()> {
    // A pool is spread over its range so that pooled numbers look like any others.
    let blocked_step = 100_000_000 / shape.blocked.clamp(1, 100_000_000);
    let allowed_step = 10_000_000 / shape.allowed.clamp(1, 10_000_000);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    w.write_all(b"subscriber,caller,action\n")?;
    for i in 0..subscribers {
        let sub = subscriber(i);
        let r = next(&mut state);
        let blocked = (r % shape.blocked.max(1)) * blocked_step;
        writeln!(w, "{sub},+86170{blocked:08},block")?;
        match (r >> 32) % 6 {
            0 if shape.levels => writeln!(w, "{sub},*,block")?,
            1 | 2 if shape.levels => writeln!(w, "{sub},*,tag")?,
            _ => {
                let allowed = ((r >> 40) % shape.allowed.max(1)) * allowed_step;
                writeln!(w, "{sub},+86400{allowed:07},allow")?
            }
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
