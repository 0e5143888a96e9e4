//! The caller filter: could any subscriber's personal entry name this caller?
//!
//! Personal entries name few callers (the nuisance numbers subscribers block, the banks
//! they allow), so nearly every call comes from a caller that no entry names. For such a
//! call the subscriber record matters only through its level, and the level matters only
//! when the global list or the behaviour rule has something to say about the caller, which
//! for an unlisted caller it does not. The filter answers "no entry names this caller" from
//! one cache line whose address comes from the caller's number alone, so the chain can fetch
//! it before the global lookup and read it after, instead of finding the callee's record
//! through the directory.
//!
//! It is a blocked Bloom filter: every exact entry's number, and every prefix entry's
//! digits, set [`PROBES`] bits in one 64-byte line. A caller is probed once as a whole
//! number (exact entries and prefixes of its full length) and once for each shorter prefix
//! length that some prefix entry has. "No" is always right: the filter is built from every
//! entry the list can answer (a damaged block's later entries are not in it, and a lookup
//! there fails open anyway). "Maybe" sends the chain to the record as before.
//!
//! It is built when the list is opened, from the records, and lives in memory only: the
//! file format does not change. Size: [`BITS_PER_ENTRY`] bits per entry of the list (levels
//! included), rounded to whole lines: 200 MB for 100M subscribers with two entries each.
//! With every entry naming a different caller, about 2 % of callers that no entry names
//! still get a "maybe"; callers repeat across subscribers, so in practice fewer.

use super::format::{block_entries, Digits, Layout};
use crate::detection::mix64 as mix;

/// Filter bits per entry of the list.
pub(super) const BITS_PER_ENTRY: u64 = 8;
/// Bits set per key, all in the key's line.
const PROBES: u32 = 6;

/// One line of the filter: 512 bits.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([u64; 8]);

/// Which callers some personal entry may name.
#[derive(Debug)]
pub(super) struct CallerFilter {
    lines: Vec<Line>,
    /// Bit `l` is set when some prefix entry has `l` digits.
    prefix_lengths: u16,
}

/// The line (of `lines`) and the bits of `digits`.
#[inline]
fn place(lines: usize, digits: Digits) -> (usize, u64) {
    let h = mix(digits.key());
    let line = ((u128::from(h) * lines as u128) >> 64) as usize;
    (line, mix(h ^ 0x9E37_79B9_7F4A_7C15))
}

/// The filter's words while it is built on several threads: every access goes through an
/// atomic, and nothing else refers to the words until the build ends.
struct Words {
    at: *mut u64,
    lines: usize,
}

// SAFETY: the pointer is only used for atomic access to words inside the allocation.
unsafe impl Sync for Words {}

impl Words {
    fn insert(&self, digits: Digits) {
        let (line, bits) = place(self.lines, digits);
        for i in 0..PROBES {
            let bit = (bits >> (9 * i)) & 511;
            // SAFETY: `line < lines` and `bit / 64 < 8`, so the word is inside the
            // allocation of `lines` lines; it is 8-byte aligned (lines are 64-byte aligned);
            // during the build every access to it is atomic (see `Words`).
            let word = unsafe {
                std::sync::atomic::AtomicU64::from_ptr(self.at.add(line * 8 + (bit / 64) as usize))
            };
            word.fetch_or(1 << (bit % 64), std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl CallerFilter {
    /// The filter of a checked list (`body` and its `layout`) of `entries` entries, built
    /// on every core (about 7 s for 100M subscribers with two entries each on two). The
    /// size is bounded by the body's own (a header cannot make it allocate more).
    pub fn build(layout: &Layout, body: &[u8], entries: u64) -> CallerFilter {
        use rayon::prelude::*;
        let count = (entries.saturating_mul(BITS_PER_ENTRY) / 512)
            .min(body.len() as u64 / 64)
            .max(1) as usize;
        let mut lines = crate::detection::huge_vec(count, Line([0; 8]));
        let words = Words {
            at: lines.as_mut_ptr().cast(),
            lines: count,
        };
        let prefix_lengths = (0..layout.node_count())
            .into_par_iter()
            .with_min_len(64)
            .map(|node| {
                let mut lengths = 0u16;
                // An odd node or block adds what it could read; lookups there fail open.
                let _ = layout.node_blocks(body, node, |block| {
                    let _ = block_entries(block, |kind, digits| {
                        if !kind.exact() {
                            lengths |= 1 << digits.len;
                        }
                        words.insert(digits);
                    });
                });
                lengths
            })
            .reduce(|| 0, |a, b| a | b);
        CallerFilter {
            lines,
            prefix_lengths,
        }
    }

    /// The line and the bits of `digits`.
    #[inline]
    fn place(&self, digits: Digits) -> (usize, u64) {
        place(self.lines.len(), digits)
    }

    #[inline]
    fn contains(&self, digits: Digits) -> bool {
        let (line, bits) = self.place(digits);
        let Some(l) = self.lines.get(line) else {
            return true;
        };
        (0..PROBES).all(|i| {
            let bit = (bits >> (9 * i)) & 511;
            l.0[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }

    /// Whether some personal entry may name `caller` (`false`: certainly none does).
    #[inline]
    pub fn may_name(&self, caller: Digits) -> bool {
        if self.contains(caller) {
            return true;
        }
        // Shorter prefixes, for the lengths some prefix entry has.
        let mut lengths = self.prefix_lengths & ((1u16 << caller.len) - 1);
        while lengths != 0 {
            let len = lengths.trailing_zeros() as u8;
            lengths &= lengths - 1;
            let head = Digits {
                len,
                value: caller.head(len),
            };
            if self.contains(head) {
                return true;
            }
        }
        false
    }

    /// Starts fetching the line [`CallerFilter::may_name`] reads first for `caller`.
    #[inline]
    pub fn prefetch(&self, caller: Digits) {
        let (line, _) = self.place(caller);
        #[cfg(target_arch = "x86_64")]
        if let Some(l) = self.lines.get(line) {
            // SAFETY: a prefetch is a hint: it reads nothing into the program and never
            // faults; SSE is part of the x86_64 baseline.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>((l as *const Line).cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = line;
    }

    /// Bytes of memory the filter holds.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.lines.as_slice())
    }
}
