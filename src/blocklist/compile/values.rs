//! The value table: distinct packed values, counted on all cores and numbered by frequency.

use super::records::record_value;
use rayon::prelude::*;
use std::collections::HashMap;

/// A cheap hasher for `u64` keys (packed values): a multiply, no DoS concern for our own data.
#[derive(Default)]
pub(super) struct U64Hasher(u64);

impl std::hash::Hasher for U64Hasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(super) type U64Map<V> = HashMap<u64, V, std::hash::BuildHasherDefault<U64Hasher>>;

/// Counts packed values in records, on all cores.
pub(super) fn count_values(records: &[u128], into: &mut U64Map<u64>) {
    let counts = records
        .par_chunks(1 << 16)
        .map(|chunk| {
            let mut m = U64Map::default();
            for &r in chunk {
                *m.entry(record_value(r).pack()).or_insert(0) += 1;
            }
            m
        })
        .reduce(U64Map::default, |mut a, b| {
            for (k, v) in b {
                *a.entry(k).or_insert(0) += v;
            }
            a
        });
    for (k, v) in counts {
        *into.entry(k).or_insert(0) += v;
    }
}

/// The value table, most frequent first (ties by value, so it is deterministic), and the
/// index of each value. The most common value gets output 0, which costs no bytes in the FST.
pub(super) fn value_table(counts: &U64Map<u64>) -> (Vec<u64>, U64Map<u64>) {
    let mut by_freq: Vec<(u64, u64)> = counts.iter().map(|(&v, &n)| (v, n)).collect();
    by_freq.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let table: Vec<u64> = by_freq.iter().map(|&(v, _)| v).collect();
    let index = table
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, i as u64))
        .collect();
    (table, index)
}
