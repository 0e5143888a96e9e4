//! The snapshot body: a small FST over allocation blocks, and dense blocks stored as leaves.
//!
//! ## Why
//!
//! A walk down an FST costs one dependent memory read per key byte. At a hundred million
//! entries the lower levels of a per-number FST miss every cache (7 to 8 misses for a +86
//! mobile, about 950 ns), while the numbers themselves are not random: carriers allocate them
//! in blocks of 10,000 (`+86 138 1234 xxxx`, a NANP `NPA-NXX`), and fraud concentrates in some
//! blocks. So the exact numbers of a **dense** block (at least [`DENSE_MIN`] listed numbers)
//! leave the FST: the FST keeps one key, `head + BLOCK_MARK` (see [`super::key`]), whose
//! output is a [`BlockRef`] to a leaf holding the block's 4-digit tails and values, laid out
//! so that a lookup reads one or two cache lines of it. Sparse blocks, prefixes and short codes stay
//! in the FST as whole keys, where they cost least.
//!
//! ## Layout
//!
//! ```text
//! body = [zero padding to a 64-byte file offset] [leaves, each 64-byte aligned] [fst map]
//! ```
//!
//! The header's `fst_offset` says where the FST starts inside the body. The FST output of a
//! block key is a [`BlockRef`]: the leaf's line and its kind, growing with the keys so that
//! the FST stores small differences and stays in cache (492 KB for 66,000 dense blocks of a
//! 100M list). A leaf is one of:
//!
//! - **array** (at most [`ARRAY_MAX`] numbers): one line with the count, the leaf's value
//!   layout and the first tail of every group of 32 (the fences), then the sorted tails as
//!   little-endian `u16` (a group of 32 fills one line), then the values. A lookup reads the
//!   fence line, then the group's line, and prefetches the group's values meanwhile.
//! - **bitmap** (from [`BITMAP_MIN`] numbers): 53 lines, each with presence bits and
//!   exception bits for 192 tails, the counts of numbers and exceptions before the line, and
//!   the leaf's value layout; then the exceptions' values. A listed number whose value is
//!   the block's common one (most of them: reports about one campaign share their value) is
//!   answered by its one line; an exception costs a second read.
//!
//! Values are value-table indices, 1, 2 or 4 bytes each (whatever the leaf's largest stored
//! index needs); an array whose numbers all share one value stores none.

//! ## Memory
//!
//! An array leaf costs 2 bytes per number for its tails plus 0 to 2 for its values; a bitmap
//! leaf 3,392 bytes (6.6 to 0.34 bytes per number as it fills) plus 1 or 2 bytes per
//! exception. The realistic 100M synthetic list compiles to 2.88 bytes per entry, against
//! 8.03 for the per-number FST of format version 1.

use super::key::{BLOCK_MARK, TAIL_DIGITS};
use std::io::{self, Write};

/// Listed numbers a block needs before it becomes a leaf.
pub const DENSE_MIN: usize = 32;
/// Tails in a block: `10^TAIL_DIGITS`.
pub const SLOTS: usize = 10_000;
/// Numbers from which a block is a bitmap leaf (at most 6.6 bytes a number for its bits).
pub const BITMAP_MIN: usize = 512;
/// Largest array leaf.
pub const ARRAY_MAX: usize = BITMAP_MIN - 1;
const _: () = assert!(TAIL_DIGITS == 4 && SLOTS == 10usize.pow(TAIL_DIGITS as u32));

const LINE: usize = 64;
const GROUP: usize = 32;
/// In an array's first line: the count, the leaf's [`Meta`], then the fences.
const ARRAY_META_AT: usize = 2;
const FENCES_AT: usize = 6;
const _: () = assert!(FENCES_AT + 2 * ARRAY_MAX.div_ceil(GROUP) <= LINE);
const WORDS_PER_LINE: usize = 3;
const SLOTS_PER_LINE: usize = WORDS_PER_LINE * 64;
/// In a bitmap line: presence words, exception words, two ranks, and the leaf's [`Meta`]
/// (in every line, so that one line answers).
const EXCEPTIONS_AT: usize = 8 * WORDS_PER_LINE;
const EXCEPTION_RANK_AT: usize = 2 * EXCEPTIONS_AT;
const PRESENCE_RANK_AT: usize = EXCEPTION_RANK_AT + 4;
const BITMAP_META_AT: usize = PRESENCE_RANK_AT + 4;
const BITMAP_LINES: usize = SLOTS.div_ceil(SLOTS_PER_LINE);
const BITMAP_BYTES: usize = BITMAP_LINES * LINE;

fn round_line(n: usize) -> usize {
    n.div_ceil(LINE) * LINE
}

/// The FST output of a block key: the leaf's offset in the leaves area in 64-byte lines,
/// times two, plus one for a bitmap leaf (else an array).
///
/// Leaves are written in key order, so these outputs grow with the keys and the FST stores
/// them as small differences: the FST stays small enough to stay in cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef(pub u64);

impl BlockRef {
    fn new(line: u64, bitmap: bool) -> Option<BlockRef> {
        Some(BlockRef(line.checked_mul(2)? | u64::from(bitmap)))
    }
    fn is_bitmap(self) -> bool {
        self.0 & 1 != 0
    }
    fn offset(self) -> Option<usize> {
        usize::try_from(self.0 >> 1).ok()?.checked_mul(LINE)
    }
}

/// How a leaf stores values, in a `u32` inside the leaf: bits 0-1 the width of a stored
/// value (0: none; 1, 2, 3: 1, 2 or 4 bytes), bits 2-23 the block's common value. An array
/// stores every value unless all are equal (width 0, the common value for all); a bitmap
/// stores only the values that differ from the common one (its exceptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta(u32);

const COMMON_BITS: u32 = 22;

impl Meta {
    fn new(width_code: u32, common: u64) -> Option<Meta> {
        let common = u32::try_from(common)
            .ok()
            .filter(|c| c >> COMMON_BITS == 0)?;
        Some(Meta(width_code | common << 2))
    }
    fn width(self) -> usize {
        [0, 1, 2, 4][(self.0 & 3) as usize]
    }
    fn common(self) -> u64 {
        u64::from(self.0 >> 2)
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

fn value_at(b: &[u8], start: usize, rank: usize, width: usize) -> Option<u64> {
    let at = start.checked_add(rank.checked_mul(width)?)?;
    let bytes = b.get(at..at.checked_add(width)?)?;
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(bytes);
    Some(u64::from_le_bytes(v))
}

/// Asks for the line at `b[at]` ahead of its use, as a non-temporal load: a leaf line is
/// read once, and keeping it out of the outer caches leaves them to the FST, which every
/// lookup walks.
#[inline(always)]
fn prefetch(b: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = b.get(at) {
        // SAFETY: a prefetch is a hint that never faults; SSE is part of the x86-64 baseline;
        // `p` points into the leaves.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_NTA }>(
                (p as *const u8).cast::<i8>(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (b, at);
}

/// The leaves area of an open snapshot. Every read is bounds-checked: a reference that a
/// corrupt file could hold reads as "no entry", never a panic.
#[derive(Debug, Clone, Copy)]
pub struct Leaves<'a>(pub &'a [u8]);

impl<'a> Leaves<'a> {
    /// The value index of `tail` (0..10,000) in the leaf `r`, if listed.
    #[inline]
    pub fn find(self, r: BlockRef, tail: u16) -> Option<u64> {
        let b = self.0;
        let base = r.offset()?;
        let t = usize::from(tail);
        if t >= SLOTS {
            return None;
        }
        let (meta, values, rank) = if r.is_bitmap() {
            // One line answers for most numbers: absent, or listed with the block's value.
            let line = base.checked_add((t / SLOTS_PER_LINE) * LINE)?;
            prefetch(b, line);
            let within = t % SLOTS_PER_LINE;
            let (k, bit) = (within / 64, within % 64);
            if u64_at(b, line + 8 * k)? >> bit & 1 == 0 {
                return None;
            }
            let meta = Meta(u32_at(b, line + BITMAP_META_AT)?);
            let exceptions = u64_at(b, line + EXCEPTIONS_AT + 8 * k)?;
            if exceptions >> bit & 1 == 0 {
                return Some(meta.common());
            }
            let mut rank = u32_at(b, line + EXCEPTION_RANK_AT)? as usize;
            for j in 0..k {
                rank += u64_at(b, line + EXCEPTIONS_AT + 8 * j)?.count_ones() as usize;
            }
            rank += (exceptions & ((1u64 << bit) - 1)).count_ones() as usize;
            (meta, base.checked_add(BITMAP_BYTES)?, rank)
        } else {
            prefetch(b, base);
            let head = b.get(base..base.checked_add(LINE)?)?;
            let n = usize::from(u16_at(head, 0)?);
            if n == 0 || n > ARRAY_MAX {
                return None;
            }
            let meta = Meta(u32_at(head, ARRAY_META_AT)?);
            let groups = n.div_ceil(GROUP);
            let mut g = 0;
            while g + 1 < groups && u16_at(head, FENCES_AT + 2 * (g + 1))? <= tail {
                g += 1;
            }
            let values = base + LINE + round_line(2 * n);
            if meta.width() != 0 {
                prefetch(b, values + g * GROUP * meta.width());
            }
            let first = g * GROUP;
            let len = GROUP.min(n - first);
            let start = base + LINE + 2 * first;
            prefetch(b, start);
            let tails = b.get(start..start + 2 * len)?;
            let p = tails
                .chunks_exact(2)
                .position(|c| u16::from_le_bytes([c[0], c[1]]) == tail)?;
            if meta.width() == 0 {
                return Some(meta.common());
            }
            (meta, values, first + p)
        };
        match meta.width() {
            0 => None,
            width => value_at(b, values, rank, width),
        }
    }

    /// Every `(tail, value index)` of leaf `r`, in tail order, appended to `out`. `None` if
    /// the leaf is malformed (tails out of order or out of range, counts that disagree).
    pub fn entries(self, r: BlockRef, out: &mut Vec<(u16, u64)>) -> Option<()> {
        let b = self.0;
        let base = r.offset()?;
        let start = out.len();
        if r.is_bitmap() {
            let values = base.checked_add(BITMAP_BYTES)?;
            let meta = Meta(u32_at(b, base + BITMAP_META_AT)?);
            let mut exceptions = 0;
            for l in 0..BITMAP_LINES {
                let line = base + l * LINE;
                if u32_at(b, line + PRESENCE_RANK_AT)? as usize != out.len() - start
                    || u32_at(b, line + EXCEPTION_RANK_AT)? as usize != exceptions
                    || u32_at(b, line + BITMAP_META_AT)? != meta.0
                {
                    return None;
                }
                for k in 0..WORDS_PER_LINE {
                    let mut word = u64_at(b, line + 8 * k)?;
                    let odd = u64_at(b, line + EXCEPTIONS_AT + 8 * k)?;
                    if odd & !word != 0 {
                        return None;
                    }
                    while word != 0 {
                        let bit = word.trailing_zeros();
                        let t = l * SLOTS_PER_LINE + k * 64 + bit as usize;
                        if t >= SLOTS {
                            return None;
                        }
                        let v = if odd >> bit & 1 == 0 {
                            meta.common()
                        } else {
                            exceptions += 1;
                            match meta.width() {
                                0 => return None,
                                w => value_at(b, values, exceptions - 1, w)?,
                            }
                        };
                        out.push((t as u16, v));
                        word &= word - 1;
                    }
                }
            }
            return Some(());
        }
        let n = usize::from(u16_at(b, base)?);
        if n == 0 || n > ARRAY_MAX {
            return None;
        }
        let meta = Meta(u32_at(b, base + ARRAY_META_AT)?);
        let values = base + LINE + round_line(2 * n);
        for i in 0..n {
            let t = u16_at(b, base + LINE + 2 * i)?;
            if usize::from(t) >= SLOTS || out.last().is_some_and(|&(p, _)| i > 0 && p >= t) {
                return None;
            }
            let v = match meta.width() {
                0 => meta.common(),
                w => value_at(b, values, i, w)?,
            };
            out.push((t, v));
        }
        Some(())
    }
}

/// The commonest value (the smallest among equals), sorting a copy in `scratch`.
fn mode(values: &[u64], scratch: &mut Vec<u64>) -> u64 {
    scratch.clear();
    scratch.extend_from_slice(values);
    scratch.sort_unstable();
    let mut best = (0, scratch.first().copied().unwrap_or(0));
    for run in scratch.chunk_by(|a, b| a == b) {
        if run.len() > best.0 {
            best = (run.len(), run[0]);
        }
    }
    best.1
}

/// Streams sorted `(key, value index)` pairs into a body: leaves to `leaves`, the FST to
/// `fst_out`. The caller appends the FST bytes after the leaves (see [`BodyWriter::finish`]).
pub struct BodyWriter<L: Write, F: Write> {
    leaves: L,
    /// Body bytes written so far: the padding, then the leaves.
    leaves_len: u64,
    pad: u64,
    fst: fst::MapBuilder<F>,
    head: Vec<u8>,
    tails: Vec<u16>,
    values: Vec<u64>,
    sorted: Vec<u64>,
    scratch: Vec<u8>,
}

/// What [`BodyWriter::finish`] hands back.
pub struct Finished<L, F> {
    /// The leaves writer, after the leaves.
    pub leaves: L,
    /// The FST writer; its bytes go after the leaves.
    pub fst: F,
    /// Where the FST starts in the body (the padding and leaves before it).
    pub fst_offset: u64,
}

/// Zero bytes that put the first leaf on a 64-byte boundary of the file.
pub fn padding(header_len: usize) -> usize {
    round_line(header_len) - header_len
}

impl<L: Write, F: Write> BodyWriter<L, F> {
    /// Starts a body that will follow a header of `header_len` bytes.
    pub fn new(mut leaves: L, fst_out: F, header_len: usize) -> Result<Self, fst::Error> {
        let pad = padding(header_len);
        leaves.write_all(&[0u8; LINE][..pad])?;
        Ok(BodyWriter {
            leaves,
            leaves_len: pad as u64,
            pad: pad as u64,
            fst: fst::MapBuilder::new(fst_out)?,
            head: Vec::with_capacity(16),
            tails: Vec::with_capacity(SLOTS),
            values: Vec::with_capacity(SLOTS),
            sorted: Vec::with_capacity(SLOTS),
            scratch: Vec::with_capacity(BITMAP_BYTES + 4 * SLOTS),
        })
    }

    /// Adds one entry. Keys must come in strictly increasing byte order (as the FST needs).
    pub fn insert(&mut self, key: &[u8], value: u64) -> Result<(), fst::Error> {
        match key {
            [head @ .., BLOCK_MARK, hi, lo] if *hi < 100 && *lo < 100 => {
                let head = &key[..head.len() + 1];
                if head != self.head.as_slice() {
                    self.flush()?;
                    self.head.extend_from_slice(head);
                }
                self.tails.push(u16::from(*hi) * 100 + u16::from(*lo));
                self.values.push(value);
                Ok(())
            }
            _ => {
                self.flush()?;
                self.fst.insert(key, value)
            }
        }
    }

    /// Bytes written or buffered so far (to cap a delta's size).
    pub fn bytes_written(&self) -> u64 {
        self.leaves_len + self.fst.bytes_written() + 3 * self.tails.len() as u64
    }

    /// Writes the pending block: a leaf when dense, whole keys in the FST when sparse.
    fn flush(&mut self) -> Result<(), fst::Error> {
        let n = self.tails.len();
        if n == 0 {
            self.head.clear();
            return Ok(());
        }
        if n < DENSE_MIN {
            let mut key = [0u8; 16];
            let h = self.head.len();
            key[..h].copy_from_slice(&self.head);
            for (&t, &v) in self.tails.iter().zip(&self.values) {
                key[h] = (t / 100) as u8;
                key[h + 1] = (t % 100) as u8;
                self.fst.insert(&key[..h + 2], v)?;
            }
        } else {
            let r = self.write_leaf()?;
            self.fst.insert(&self.head, r.0)?;
        }
        self.head.clear();
        self.tails.clear();
        self.values.clear();
        Ok(())
    }

    fn write_leaf(&mut self) -> Result<BlockRef, fst::Error> {
        let n = self.tails.len();
        let bitmap = n > ARRAY_MAX;
        let common = if bitmap {
            mode(&self.values, &mut self.sorted)
        } else {
            self.values[0]
        };
        let all_equal = self.values.iter().all(|&v| v == common);
        // An array stores every value (unless all are equal), a bitmap only its exceptions.
        let stored = |v: u64| !all_equal && (!bitmap || v != common);
        let max = self.values.iter().copied().filter(|&v| stored(v)).max();
        let (width, code) = match max {
            None => (0, 0),
            Some(m) if m < 1 << 8 => (1, 1),
            Some(m) if m < 1 << 16 => (2, 2),
            Some(_) => (4, 3),
        };
        let too_large = || {
            fst::Error::Io(io::Error::other(
                "a value index or leaf offset is too large for the snapshot format",
            ))
        };
        let meta = Meta::new(code, common).ok_or_else(too_large)?;
        let s = &mut self.scratch;
        s.clear();
        if bitmap {
            s.resize(BITMAP_BYTES, 0);
            // Numbers and exceptions in each line, summed into counts before each line below.
            let mut per_line = [(0u32, 0u32); BITMAP_LINES];
            for (&t, &v) in self.tails.iter().zip(&self.values) {
                let t = usize::from(t);
                let (l, within) = (t / SLOTS_PER_LINE, t % SLOTS_PER_LINE);
                // Little-endian words: bit `j` of word `k` is byte `8k + j/8`, bit `j%8`.
                s[l * LINE + within / 8] |= 1 << (within % 8);
                if v != common {
                    s[l * LINE + EXCEPTIONS_AT + within / 8] |= 1 << (within % 8);
                }
                per_line[l].0 += 1;
                per_line[l].1 += u32::from(v != common);
            }
            let (mut before, mut odd_before) = (0u32, 0u32);
            for (l, (listed, odd)) in per_line.iter().enumerate() {
                let line = &mut s[l * LINE..(l + 1) * LINE];
                line[EXCEPTION_RANK_AT..EXCEPTION_RANK_AT + 4]
                    .copy_from_slice(&odd_before.to_le_bytes());
                line[PRESENCE_RANK_AT..PRESENCE_RANK_AT + 4].copy_from_slice(&before.to_le_bytes());
                line[BITMAP_META_AT..BITMAP_META_AT + 4].copy_from_slice(&meta.0.to_le_bytes());
                before += listed;
                odd_before += odd;
            }
        } else {
            s.resize(LINE, 0);
            s[..2].copy_from_slice(&(n as u16).to_le_bytes());
            s[ARRAY_META_AT..ARRAY_META_AT + 4].copy_from_slice(&meta.0.to_le_bytes());
            for (g, chunk) in self.tails.chunks(GROUP).enumerate() {
                let at = FENCES_AT + 2 * g;
                s[at..at + 2].copy_from_slice(&chunk[0].to_le_bytes());
            }
            for &t in &self.tails {
                s.extend_from_slice(&t.to_le_bytes());
            }
            s.resize(round_line(s.len()), 0);
        }
        if width != 0 {
            for &v in self.values.iter().filter(|&&v| stored(v)) {
                s.extend_from_slice(&v.to_le_bytes()[..width]);
            }
        }
        s.resize(round_line(s.len()), 0);
        // Leaves are whole lines, so this is exact.
        let line = (self.leaves_len - self.pad) / LINE as u64;
        let r = BlockRef::new(line, bitmap).ok_or_else(too_large)?;
        self.leaves.write_all(s)?;
        self.leaves_len += s.len() as u64;
        Ok(r)
    }

    /// Flushes the last block and finishes the FST.
    pub fn finish(mut self) -> Result<Finished<L, F>, fst::Error> {
        self.flush()?;
        Ok(Finished {
            fst_offset: self.leaves_len,
            fst: self.fst.into_inner()?,
            leaves: self.leaves,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fst::raw::Fst;

    /// Writes one block of `tails` with `values` (as a dense or sparse block under head
    /// `[12, 34, BLOCK_MARK]`), returns the body parts.
    fn build(tails: &[u16], values: &[u64]) -> (Vec<u8>, Fst<Vec<u8>>) {
        let mut w = BodyWriter::new(Vec::new(), Vec::new(), 0).unwrap();
        for (&t, &v) in tails.iter().zip(values) {
            w.insert(&[12, 34, BLOCK_MARK, (t / 100) as u8, (t % 100) as u8], v)
                .unwrap();
        }
        let f = w.finish().unwrap();
        assert_eq!(f.fst_offset as usize, f.leaves.len());
        (f.leaves, Fst::new(f.fst).unwrap())
    }

    fn spread(n: usize, seed: u64) -> Vec<u16> {
        let mut state = seed | 1;
        let mut set = std::collections::BTreeSet::new();
        while set.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            set.insert((state % SLOTS as u64) as u16);
        }
        set.into_iter().collect()
    }

    fn check(n: usize, value: impl Fn(usize) -> u64, expect_bitmap: Option<bool>) {
        let tails = spread(n, n as u64 * 7919);
        let values: Vec<u64> = (0..n).map(&value).collect();
        let (leaves, fst) = build(&tails, &values);
        let leaves = Leaves(&leaves);
        let head_key = [12u8, 34, BLOCK_MARK];
        let Some(r) = fst.get(head_key) else {
            // Sparse: whole keys in the FST.
            assert!(n < DENSE_MIN, "{n} numbers should make a leaf");
            assert_eq!(fst.len(), n);
            return;
        };
        assert!(n >= DENSE_MIN);
        let r = BlockRef(r.value());
        if let Some(b) = expect_bitmap {
            assert_eq!(r.is_bitmap(), b, "container for {n} numbers");
        }
        let listed: std::collections::HashMap<u16, u64> =
            tails.iter().copied().zip(values.iter().copied()).collect();
        for t in 0..SLOTS as u16 {
            assert_eq!(
                leaves.find(r, t),
                listed.get(&t).copied(),
                "tail {t} of {n}"
            );
        }
        assert_eq!(leaves.find(r, SLOTS as u16), None);
        let mut out = Vec::new();
        leaves.entries(r, &mut out).unwrap();
        let want: Vec<(u16, u64)> = tails.iter().copied().zip(values).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn sparse_blocks_stay_in_the_fst() {
        check(1, |_| 3, None);
        check(DENSE_MIN - 1, |i| i as u64, None);
    }

    #[test]
    fn array_leaves_every_width() {
        check(DENSE_MIN, |_| 7, Some(false));
        check(33, |i| (i % 5) as u64, Some(false));
        check(200, |i| 250 + (i % 10) as u64, Some(false));
        check(300, |i| (i as u64) << 12, Some(false));
        check(ARRAY_MAX, |i| 1 + (i % 2) as u64, Some(false));
    }

    #[test]
    fn bitmap_leaves_every_width() {
        check(ARRAY_MAX + 1, |i| (i % 3) as u64, Some(true));
        check(BITMAP_MIN + 1, |_| 5, Some(true));
        check(5000, |_| (1 << 22) - 1, Some(true));
        check(9000, |i| (i as u64 * 31) % 70_000, Some(true));
        check(SLOTS, |i| (i % 256) as u64, Some(true));
    }

    #[test]
    fn corrupt_references_read_as_absent() {
        let tails = spread(500, 5);
        let (leaves, fst) = build(&tails, &vec![9; 500]);
        let r = BlockRef(fst.get([12u8, 34, BLOCK_MARK]).unwrap().value());
        let l = Leaves(&leaves);
        for bad in [
            BlockRef(r.0 | (1 << 40)),
            BlockRef(u64::MAX),
            BlockRef(r.0 ^ 1),
            BlockRef(r.0 + 2),
        ] {
            for t in [0, tails[0], tails[499], 9999] {
                let _ = l.find(bad, t);
            }
            let _ = l.entries(bad, &mut Vec::new());
        }
        assert_eq!(Leaves(&[]).find(r, tails[0]), None);
        // A leaf whose tails go backwards is refused by the entry stream.
        let mut broken = leaves.clone();
        broken[LINE..LINE + 4].copy_from_slice(&[0x0F, 0x27, 0, 0]);
        assert!(Leaves(&broken).entries(r, &mut Vec::new()).is_none());
    }

    #[test]
    fn leaves_are_line_aligned_after_any_header() {
        for header_len in [0, 1, 63, 64, 65, 1000] {
            let mut w = BodyWriter::new(Vec::new(), Vec::new(), header_len).unwrap();
            for t in 0..40u8 {
                w.insert(&[55, BLOCK_MARK, 0, t], 1).unwrap();
            }
            let f = w.finish().unwrap();
            assert_eq!((header_len + f.leaves.len()) % LINE, 0);
            // Count and fences, 40 tails (80 bytes), no values (one value for all).
            assert_eq!(f.leaves.len(), padding(header_len) + 3 * LINE);
        }
    }
}
