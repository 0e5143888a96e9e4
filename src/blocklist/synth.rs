//! Realistic synthetic blocklists at any size, deterministic from a seed.
//!
//! Real fraud lists are not uniform random numbers: numbers are allocated to operators in
//! blocks (a Chinese mobile HLR block `+86 138 1234 xxxx`, a NANP `NPA-NXX` exchange, a UK
//! `+44 7xxxx` range), and fraud concentrates in some blocks (virtual operators, cheap
//! prepaid ranges). The generator therefore draws every row from a set of allocation blocks
//! of 10,000 numbers, chosen with a skew (a few blocks are dense, most are sparse), over a
//! country mix of about 60% `+86` mobiles, 25% `+1`, 15% others. One row in 50,000 lists a
//! whole block as a prefix (`+8617012345*`, about 3% of blocks) and 0.05% are exact `allow`
//! carve-outs. Most
//! rows of a block share the block's source, category, score (a multiple of 5) and action,
//! as reports about one campaign do; 15% of rows have values of their own.
//!
//! Row `i` depends only on `(seed, i)`, so chunks are generated in parallel and a benchmark
//! can regenerate the listed numbers without reading the file back. Duplicate rows occur,
//! as in real reports; `compile` folds them.
//!
//! Memory: constant; speed: tens of millions of rows per second per core.

use std::io::{self, Write};

/// The CSV header the generator writes.
pub const HEADER: &str = "number,action,category,score,source\n";

const CATEGORIES: [&str; 12] = [
    "impersonation",
    "loan",
    "investment",
    "telecom-fraud",
    "robocall",
    "tech-support",
    "lottery",
    "kidnapping-scam",
    "customer-service-scam",
    "one-ring-scam",
    "sales",
    "phishing",
];
const SOURCES: [&str; 5] = ["police", "reports", "carrier", "ftc", "partner"];
const CN_MOBILE: [&str; 24] = [
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
    "156", "158", "159", "166", "170", "171", "176", "177", "180", "186", "188",
];
const OTHER: [&str; 6] = ["447", "4915", "919", "23480", "3361", "8525"];

/// A generator for a list of `rows` rows.
#[derive(Debug, Clone, Copy)]
pub struct Synth {
    seed: u64,
    blocks: u64,
}

fn mix(mut z: u64) -> u64 {
    // splitmix64 finaliser
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn push_digits(buf: &mut Vec<u8>, mut v: u64, width: usize) {
    let start = buf.len();
    buf.resize(start + width, b'0');
    for i in (0..width).rev() {
        buf[start + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

impl Synth {
    /// A generator sized for `rows` rows (about 1,500 rows per allocation block).
    pub fn new(rows: u64, seed: u64) -> Synth {
        Synth {
            seed,
            blocks: (rows / 1500).max(16),
        }
    }

    /// Appends block `b`'s digits (country code first, no `+`): every number in the block is
    /// these digits plus 4 more.
    pub fn block_digits(&self, b: u64, buf: &mut Vec<u8>) {
        let h = mix(self.seed ^ mix(b ^ 0xB10C));
        let pick = h % 100;
        let r = h >> 8;
        if pick < 60 {
            buf.extend_from_slice(b"86");
            buf.extend_from_slice(CN_MOBILE[(r % CN_MOBILE.len() as u64) as usize].as_bytes());
            push_digits(buf, (r >> 8) % 10_000, 4);
        } else if pick < 85 {
            buf.push(b'1');
            // NPA: [2-9][0-8][0-9] (avoids N11 and 9xx service codes); NXX: [2-9][0-9][0-9].
            let npa = 200 + (r % 800);
            let npa = if npa % 100 == 11 { npa + 1 } else { npa };
            push_digits(buf, npa, 3);
            push_digits(buf, 200 + (r >> 12) % 800, 3);
        } else {
            let cc = OTHER[(r % OTHER.len() as u64) as usize];
            buf.extend_from_slice(cc.as_bytes());
            push_digits(buf, (r >> 8) % 100_000, 9 - cc.len().min(5));
        }
    }

    /// A block index with skew: low indices are dense, high ones sparse.
    fn block_of(&self, h: u64) -> u64 {
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u) * self.blocks as f64) as u64 % self.blocks
    }

    /// Appends row `i` (with its newline) to `buf`; returns the row's number field's range.
    pub fn row(&self, i: u64, buf: &mut Vec<u8>) -> std::ops::Range<usize> {
        let h = mix(self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ i);
        let h2 = mix(h);
        // 1 row in 50,000 lists a whole block (any block, uniformly); 0.05% are carve-outs.
        let prefix = h % 100_000 < 2;
        let carve_out = (h >> 17) % 10_000 < 5;
        let block = if prefix {
            h2 % self.blocks
        } else {
            self.block_of(h2)
        };
        let start = buf.len();
        buf.push(b'+');
        self.block_digits(block, buf);
        // A fraud campaign works a range: most reports about a block share its source,
        // category, score and action; 15% of rows carry values of their own.
        let attrs = if (h >> 40) % 100 < 15 {
            mix(h2 ^ 0xA77)
        } else {
            mix(self.seed ^ mix(block ^ 0xA77))
        };
        let action = if prefix {
            buf.push(b'*');
            if (h >> 40) % 10 < 7 {
                "block"
            } else {
                "tag"
            }
        } else {
            push_digits(buf, (h2 >> 3) % 10_000, 4);
            match (carve_out, (attrs >> 20) % 100) {
                (true, _) => "allow",
                (_, 0..=59) => "block",
                (_, 60..=84) => "tag",
                (_, 85..=94) => "warn",
                _ => "allow",
            }
        };
        let end = buf.len();
        buf.push(b',');
        buf.extend_from_slice(action.as_bytes());
        buf.push(b',');
        buf.extend_from_slice(CATEGORIES[(attrs % 12) as usize].as_bytes());
        buf.push(b',');
        let score = if action == "allow" {
            0
        } else {
            30 + 5 * ((attrs >> 8) % 15)
        };
        push_digits(buf, score, if score >= 100 { 3 } else { 2 });
        buf.push(b',');
        buf.extend_from_slice(SOURCES[((attrs >> 16) % 5) as usize].as_bytes());
        buf.push(b'\n');
        start..end
    }

    /// The number of row `i` (exact or prefix), as written in the file (`+...`, maybe `*`).
    pub fn number(&self, i: u64) -> String {
        let mut buf = Vec::with_capacity(64);
        let r = self.row(i, &mut buf);
        String::from_utf8_lossy(&buf[r]).into_owned()
    }

    /// A number in the same allocation blocks that is probably not listed (a random line in
    /// a random block: unlisted unless the dice land on a listed one).
    pub fn probe(&self, i: u64) -> String {
        let h = mix(self.seed ^ 0x5EED ^ mix(i));
        let mut buf = Vec::with_capacity(20);
        buf.push(b'+');
        self.block_digits(h % self.blocks, &mut buf);
        push_digits(&mut buf, (h >> 40) % 10_000, 4);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Writes `rows` rows with the header, generating chunks on all cores.
    pub fn write_csv(&self, rows: u64, w: &mut impl Write) -> io::Result<()> {
        use rayon::prelude::*;
        const CHUNK: u64 = 1 << 16;
        w.write_all(HEADER.as_bytes())?;
        let mut next = 0u64;
        while next < rows {
            // A batch of chunks per round keeps memory bounded (~ 64 MiB) and cores busy.
            let batch: Vec<u64> = (0..16)
                .map(|k| next + k * CHUNK)
                .filter(|&s| s < rows)
                .collect();
            let bufs: Vec<Vec<u8>> = batch
                .par_iter()
                .map(|&s| {
                    let mut buf = Vec::with_capacity(CHUNK as usize * 48);
                    for i in s..(s + CHUNK).min(rows) {
                        self.row(i, &mut buf);
                    }
                    buf
                })
                .collect();
            for b in bufs {
                w.write_all(&b)?;
            }
            next += 16 * CHUNK;
        }
        w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_valid_and_clustered() {
        let s = Synth::new(200_000, 7);
        let mut a = Vec::new();
        s.write_csv(200_000, &mut a).unwrap();
        let mut b = Vec::new();
        s.write_csv(200_000, &mut b).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(HEADER.trim_end()));
        let mut prefixes = 0;
        let mut blocks = std::collections::HashSet::new();
        for (i, l) in lines.enumerate() {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 5, "{l}");
            assert_eq!(f[0], s.number(i as u64));
            let digits = f[0].trim_start_matches('+').trim_end_matches('*');
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{l}");
            if f[0].ends_with('*') {
                prefixes += 1;
                assert!((7..=11).contains(&digits.len()), "{l}");
            } else {
                assert!((11..=15).contains(&digits.len()), "{l}");
                blocks.insert(digits[..digits.len() - 4].to_string());
            }
            assert!(f[3].parse::<u8>().unwrap() <= 100);
        }
        assert!(prefixes > 0);
        // Clustered: far fewer blocks than rows.
        assert!(blocks.len() < 200_000 / 100, "{} blocks", blocks.len());
        assert!(s.probe(1).starts_with('+'));
    }
}
