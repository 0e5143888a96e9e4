//! The raw layer of the subscriber snapshot: number keys, bit-packed records, blocks and
//! the directory over them. The parent module describes the format as a whole; this one
//! holds the encoder ([`BlockEncoder`], [`DirectoryBuilder`]) and the decoder
//! ([`Layout`], [`answer_in_block`]), which never panics: every offset read from the body
//! is checked, and anything odd is an [`Odd`] (the caller fails open).

use std::ops::Range;

/// Subscribers per block at most: a lookup scans at most this many key deltas.
pub(super) const BLOCK_SUBSCRIBERS: usize = 64;
/// A block is closed once it holds this many entries (a subscriber with more gets a block
/// of their own, however long).
pub(super) const BLOCK_ENTRIES: usize = 192;
/// Blocks per directory node.
pub(super) const NODE_BLOCKS: usize = 16;
/// Bytes per directory node: the data offset of block 0 (u64), then for blocks 1 to 15
/// their first key less the node's first key (u32, `u32::MAX`: no such block), then their
/// start less the node's data offset (u32).
pub(super) const NODE_LEN: usize = 128;
const HEADS_AT: usize = 8;
const STARTS_AT: usize = HEADS_AT + 4 * (NODE_BLOCKS - 1);
/// Sections after the data start on a cache line (counted from the start of the file).
pub(super) const ALIGN: usize = 64;

/// Most digits in a number or prefix (E.164).
const MAX_DIGITS: u8 = 15;
/// Bits of the entry kind, the shared-digit count and the suffix digit count.
const KIND_BITS: u32 = 2;
const COUNT_BITS: u32 = 4;
const ENTRY_HEAD_BITS: u32 = KIND_BITS + 2 * COUNT_BITS;
/// Bits of the level in a record's head.
const LEVEL_BITS: u32 = 2;
/// Bits that hold any `d`-digit suffix: `ceil(d * log2(10))`.
const SUFFIX_BITS: [u32; 16] = [0, 4, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40, 44, 47, 50];
const POW10: [u64; 16] = {
    let mut p = [1u64; 16];
    let mut i = 1;
    while i < 16 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// Something in the body is not what the encoder writes: the lookup fails open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Odd;

/// A number or prefix as the format holds it: its digits as an integer and their count
/// (so `+1` and `+10` differ, and a zero digit inside is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(super) struct Digits {
    pub len: u8,
    pub value: u64,
}

impl Digits {
    /// From ASCII digits (1 to 15 of them).
    pub fn parse(ascii: &[u8]) -> Option<Digits> {
        if ascii.is_empty() || ascii.len() > usize::from(MAX_DIGITS) {
            return None;
        }
        let mut value = 0u64;
        for &c in ascii {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            value = value * 10 + u64::from(d);
        }
        Some(Digits {
            len: ascii.len() as u8,
            value,
        })
    }

    /// The first `n` digits (`n <= len`).
    pub fn head(self, n: u8) -> u64 {
        self.value / POW10[usize::from(self.len - n)]
    }

    /// The key of a subscriber number: the digits' value, then their count in the low four
    /// bits. Sorted keys are sorted numbers (for the same count) and never collide.
    pub fn key(self) -> u64 {
        (self.value << 4) | u64::from(self.len)
    }
}

/// What a personal entry is: exact or prefix, allow or block (two bits in the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Kind {
    ExactAllow = 0,
    ExactBlock = 1,
    PrefixAllow = 2,
    PrefixBlock = 3,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::ExactAllow,
        Kind::ExactBlock,
        Kind::PrefixAllow,
        Kind::PrefixBlock,
    ];
    pub fn of(exact: bool, block: bool) -> Kind {
        Kind::ALL[usize::from(!exact) * 2 + usize::from(block)]
    }
    pub fn exact(self) -> bool {
        matches!(self, Kind::ExactAllow | Kind::ExactBlock)
    }
    pub fn block(self) -> bool {
        matches!(self, Kind::ExactBlock | Kind::PrefixBlock)
    }
}

// ---------------------------------------------------------------------------------------
// Bits and varints.

/// Appends LSB-first bit fields to a byte vector.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    bits: u32,
    total: u64,
}

impl BitWriter {
    /// Appends the low `n` bits of `v` (`n <= 56`).
    fn put(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 56 && (n == 64 || v >> n == 0));
        self.acc |= v << self.bits;
        self.bits += n;
        self.total += u64::from(n);
        while self.bits >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }
    fn finish(mut self) -> Vec<u8> {
        if self.bits > 0 {
            self.bytes.push(self.acc as u8);
        }
        self.bytes
    }
}

/// Reads LSB-first bit fields from `buf`, between bit `pos` and bit `end`.
struct BitReader<'a> {
    buf: &'a [u8],
    pos: u64,
    end: u64,
}

impl BitReader<'_> {
    /// The next `n` bits (`n <= 56`), or `Odd` past the end.
    #[inline]
    fn get(&mut self, n: u32) -> Result<u64, Odd> {
        let next = self.pos + u64::from(n);
        if next > self.end {
            return Err(Odd);
        }
        let byte = (self.pos / 8) as usize;
        let shift = (self.pos % 8) as u32;
        let word = match self.buf.get(byte..byte + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().map_err(|_| Odd)?),
            None => {
                let mut w = [0u8; 8];
                let tail = self.buf.get(byte..).ok_or(Odd)?;
                w[..tail.len()].copy_from_slice(tail);
                u64::from_le_bytes(w)
            }
        };
        self.pos = next;
        Ok((word >> shift) & ((1u64 << n) - 1))
    }
    fn left(&self) -> u64 {
        self.end - self.pos
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn get_varint(buf: &[u8], at: &mut usize) -> Result<u64, Odd> {
    // Key deltas and record lengths are nearly always one byte.
    let first = *buf.get(*at).ok_or(Odd)?;
    if first < 0x80 {
        *at += 1;
        return Ok(u64::from(first));
    }
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or(Odd)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Odd)
}

// ---------------------------------------------------------------------------------------
// Blocks.

/// One subscriber's record, as the encoder is given it.
pub(super) struct Record<'a> {
    /// The number's key ([`Digits::key`]).
    pub key: u64,
    /// The level: 0 none, 1 allow, 2 tag, 3 block.
    pub level: u8,
    /// The personal entries, any order.
    pub entries: &'a [(Kind, Digits)],
}

/// Gathers the records of one block and encodes it.
#[derive(Default)]
pub(super) struct BlockEncoder {
    keys: Vec<(u64, u8, usize, usize)>,
    entries: Vec<(Kind, Digits)>,
    out: Vec<u8>,
}

impl BlockEncoder {
    /// Adds a record (keys ascending). Returns whether the block is full.
    pub fn push(&mut self, r: &Record<'_>) -> bool {
        let at = self.entries.len();
        self.entries.extend_from_slice(r.entries);
        self.keys.push((r.key, r.level, at, self.entries.len()));
        self.keys.len() >= BLOCK_SUBSCRIBERS || self.entries.len() >= BLOCK_ENTRIES
    }

    /// Whether no record was added since the last [`BlockEncoder::finish`].
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The first key of the block.
    pub fn first_key(&self) -> Option<u64> {
        self.keys.first().map(|k| k.0)
    }

    /// Encodes the block and starts the next one. The bytes are valid until the next call.
    pub fn finish(&mut self) -> &[u8] {
        let mut refs: [Option<Digits>; 4] = [None; 4];
        for &(kind, d) in &self.entries {
            refs[kind as usize].get_or_insert(d);
        }
        let out = &mut self.out;
        out.clear();
        out.push(self.keys.len() as u8);
        let mask = refs
            .iter()
            .enumerate()
            .fold(0u8, |m, (i, r)| m | (u8::from(r.is_some()) << i));
        out.push(mask);
        for r in refs.iter().flatten() {
            out.push(r.len);
            put_varint(out, r.value);
        }
        let mut bits = BitWriter::default();
        let mut keys = Vec::with_capacity(self.keys.len() * 2);
        let mut prev = None;
        for &(key, level, from, to) in &self.keys {
            let start = bits.total;
            bits.put(u64::from(level), LEVEL_BITS);
            for &(kind, d) in &self.entries[from..to] {
                // Shared leading digits with the block's reference for this kind, then the
                // rest as an integer of just enough bits.
                let r = refs[kind as usize].unwrap_or_default();
                let mut shared = 0u8;
                while shared < r.len.min(d.len) && r.head(shared + 1) == d.head(shared + 1) {
                    shared += 1;
                }
                let rest = d.len - shared;
                bits.put(kind as u64, KIND_BITS);
                bits.put(u64::from(shared), COUNT_BITS);
                bits.put(u64::from(rest), COUNT_BITS);
                bits.put(
                    d.value % POW10[usize::from(rest)],
                    SUFFIX_BITS[usize::from(rest)],
                );
            }
            if let Some(p) = prev {
                put_varint(&mut keys, key - p);
            }
            put_varint(&mut keys, bits.total - start);
            prev = Some(key);
        }
        put_varint(out, keys.len() as u64);
        out.extend_from_slice(&keys);
        out.extend_from_slice(&bits.finish());
        self.keys.clear();
        self.entries.clear();
        &self.out
    }
}

/// What one subscriber's record says about a caller: the level (0 to 3) and the best entry
/// (its digit count and kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Found {
    pub level: u8,
    pub entry: Option<(u8, Kind)>,
}

/// What a lookup in `block` (first key `first`) reads: the key section ends at the
/// returned offset, and `record(key, end)` is called for each subscriber with the offset
/// past the last byte its record's decoding reads.
fn block_reach(block: &[u8], first: u64, mut record: impl FnMut(u64, usize)) -> Result<usize, Odd> {
    let count = *block.first().ok_or(Odd)?;
    let mask = *block.get(1).ok_or(Odd)?;
    let mut at = 2usize;
    for i in 0..4 {
        if mask & (1 << i) != 0 {
            at += 1;
            get_varint(block, &mut at)?;
        }
    }
    let keys_len = usize::try_from(get_varint(block, &mut at)?).map_err(|_| Odd)?;
    let records_at = at.checked_add(keys_len).ok_or(Odd)?;
    let keys = block.get(at..records_at).ok_or(Odd)?;
    let (mut k, mut kat, mut bit) = (first, 0usize, 0u64);
    for i in 0..count {
        if i > 0 {
            k = k.checked_add(get_varint(keys, &mut kat)?).ok_or(Odd)?;
        }
        let bits = get_varint(keys, &mut kat)?;
        let end = bit.checked_add(bits).ok_or(Odd)?;
        // The bit reader reads a word (8 bytes) at the byte of its last field.
        let last = usize::try_from(end.saturating_sub(1) / 8).map_err(|_| Odd)?;
        record(k, (records_at + last + 8).min(block.len()));
        bit = end;
    }
    Ok(records_at.min(block.len()))
}

/// A block's header, read: its subscriber count, its reference numbers (by kind, `mask`
/// saying which are present), its key section and its records.
struct BlockHead<'b> {
    count: u8,
    mask: u8,
    refs: [Digits; 4],
    keys: &'b [u8],
    records: &'b [u8],
}

impl<'b> BlockHead<'b> {
    fn read(block: &'b [u8]) -> Result<BlockHead<'b>, Odd> {
        let count = *block.first().ok_or(Odd)?;
        let mask = *block.get(1).ok_or(Odd)?;
        let mut at = 2usize;
        let mut refs = [Digits::default(); 4];
        for (i, r) in refs.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                let len = *block.get(at).ok_or(Odd)?;
                at += 1;
                let value = get_varint(block, &mut at)?;
                if len == 0 || len > MAX_DIGITS || value >= POW10[usize::from(len)] {
                    return Err(Odd);
                }
                *r = Digits { len, value };
            }
        }
        let keys_len = usize::try_from(get_varint(block, &mut at)?).map_err(|_| Odd)?;
        let records_at = at.checked_add(keys_len).ok_or(Odd)?;
        Ok(BlockHead {
            count,
            mask,
            refs,
            keys: block.get(at..records_at).ok_or(Odd)?,
            records: block.get(records_at..).ok_or(Odd)?,
        })
    }
}

/// Calls `entry` with every personal entry of every record in `block` (levels are not
/// entries): what the caller filter is built from. An odd block stops at the first odd
/// field, after the entries before it.
pub(super) fn block_entries(block: &[u8], mut entry: impl FnMut(Kind, Digits)) -> Result<(), Odd> {
    let head = BlockHead::read(block)?;
    let (mut kat, mut bit) = (0usize, 0u64);
    for i in 0..head.count {
        if i > 0 {
            get_varint(head.keys, &mut kat)?;
        }
        let bits = get_varint(head.keys, &mut kat)?;
        let end = bit.checked_add(bits).ok_or(Odd)?;
        if end > head.records.len() as u64 * 8 {
            return Err(Odd);
        }
        let mut r = BitReader {
            buf: head.records,
            pos: bit,
            end,
        };
        r.get(LEVEL_BITS)?;
        while r.left() > 0 {
            let (kind, d) = next_entry(&mut r, &head.refs, head.mask)?;
            entry(kind, d);
        }
        bit = end;
    }
    Ok(())
}

/// Looks up `key` in the block `block` (whose first key is `first`) and matches `caller`
/// against its entries: longest entry wins, exact beats a prefix of the same digits.
/// `Ok(None)`: the subscriber is not in this block.
#[inline]
pub(super) fn answer_in_block(
    block: &[u8],
    first: u64,
    key: u64,
    caller: Digits,
) -> Result<Option<Found>, Odd> {
    let BlockHead {
        count,
        mask,
        refs,
        keys,
        records,
    } = BlockHead::read(block)?;
    // The key section: for each subscriber, its key less the previous one (none for the
    // first, which the directory gives) and its record's length in bits.
    let (mut k, mut kat, mut bit) = (first, 0usize, 0u64);
    for i in 0..count {
        if i > 0 {
            k = k.checked_add(get_varint(keys, &mut kat)?).ok_or(Odd)?;
        }
        let bits = get_varint(keys, &mut kat)?;
        if k == key {
            let end = bit.checked_add(bits).ok_or(Odd)?;
            if end > records.len() as u64 * 8 {
                return Err(Odd);
            }
            let r = BitReader {
                buf: records,
                pos: bit,
                end,
            };
            return decode_record(r, &refs, mask, caller).map(Some);
        }
        if k > key {
            return Ok(None);
        }
        bit = bit.checked_add(bits).ok_or(Odd)?;
    }
    Ok(None)
}

#[inline]
fn decode_record(
    mut r: BitReader<'_>,
    refs: &[Digits; 4],
    mask: u8,
    caller: Digits,
) -> Result<Found, Odd> {
    let level = r.get(LEVEL_BITS)? as u8;
    let mut best: Option<(u8, Kind)> = None;
    while r.left() > 0 {
        let (kind, Digits { len, value }) = next_entry(&mut r, refs, mask)?;
        let hit = if kind.exact() {
            len == caller.len && value == caller.value
        } else {
            len <= caller.len && caller.head(len) == value
        };
        if hit {
            let better = match best {
                None => true,
                Some((l, k)) => len > l || (len == l && kind.exact() && !k.exact()),
            };
            if better {
                best = Some((len, kind));
            }
        }
    }
    Ok(Found { level, entry: best })
}

/// The next personal entry of a record: its kind and its digits (the shared leading digits
/// of the block's reference for that kind, then the suffix).
#[inline]
fn next_entry(r: &mut BitReader<'_>, refs: &[Digits; 4], mask: u8) -> Result<(Kind, Digits), Odd> {
    let head = r.get(ENTRY_HEAD_BITS)?;
    let kind = Kind::ALL[(head & 3) as usize];
    let shared = ((head >> KIND_BITS) & 15) as u8;
    let rest = ((head >> (KIND_BITS + COUNT_BITS)) & 15) as u8;
    let suffix = r.get(SUFFIX_BITS[usize::from(rest)])?;
    let len = shared + rest;
    let reference = refs[kind as usize];
    if len == 0
        || len > MAX_DIGITS
        || suffix >= POW10[usize::from(rest)]
        || (shared > 0 && (mask >> (kind as u8)) & 1 == 0)
        || shared > reference.len
    {
        return Err(Odd);
    }
    let value = reference.head(shared) * POW10[usize::from(rest)] + suffix;
    Ok((kind, Digits { len, value }))
}

// ---------------------------------------------------------------------------------------
// The directory.

/// Builds the directory while blocks are written: the top keys and the nodes.
#[derive(Default)]
pub(super) struct DirectoryBuilder {
    pub top: Vec<u64>,
    pub nodes: Vec<u8>,
    in_node: usize,
    base: u64,
}

impl DirectoryBuilder {
    /// Notes a block whose first key is `first` (ascending) at data offset `at`.
    pub fn block(&mut self, first: u64, at: u64) {
        let node_first = self.top.last().copied().unwrap_or(0);
        let head = first - node_first;
        let start = at - self.base;
        if self.in_node == 0
            || self.in_node == NODE_BLOCKS
            || head >= u64::from(u32::MAX)
            || start > u64::from(u32::MAX)
        {
            self.top.push(first);
            let mut node = [0u8; NODE_LEN];
            node[..8].copy_from_slice(&at.to_le_bytes());
            node[HEADS_AT..STARTS_AT].fill(0xff);
            self.nodes.extend_from_slice(&node);
            self.base = at;
            self.in_node = 1;
            return;
        }
        let node = self.nodes.len() - NODE_LEN;
        let i = self.in_node - 1;
        let h = node + HEADS_AT + 4 * i;
        self.nodes[h..h + 4].copy_from_slice(&(head as u32).to_le_bytes());
        let s = node + STARTS_AT + 4 * i;
        self.nodes[s..s + 4].copy_from_slice(&(start as u32).to_le_bytes());
        self.in_node += 1;
    }
}

/// Cache lines of a block fetched at once: a typical block (64 subscribers with two entries
/// each) is about 600 bytes, and the record is found only after the key section is read,
/// so fetching the block's lines together costs one memory round trip instead of two.
const PREFETCH_LINES: usize = 12;

/// Asks the CPU to bring the first [`PREFETCH_LINES`] cache lines of `bytes` in.
#[inline]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for at in (0..bytes.len().min(PREFETCH_LINES * 64)).step_by(64) {
        // SAFETY: a prefetch is a hint: it reads nothing into the program and never faults;
        // the address is inside `bytes` anyway. SSE is part of the x86_64 baseline.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().add(at).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Asks the CPU to bring in every cache line that holds a byte of `items`.
#[inline]
fn prefetch_all<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = items.as_ptr().cast::<u8>();
        let start = bytes as usize;
        let end = start + std::mem::size_of_val(items);
        let mut line = start & !63;
        while line < end {
            // SAFETY: as in `prefetch`: a hint that never faults. The address is the byte of
            // `items` that starts this line (the first byte for the first line).
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                let at = line.max(start) - start;
                _mm_prefetch::<_MM_HINT_T0>(bytes.add(at).cast());
            }
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, Odd> {
    Ok(u64::from_le_bytes(
        b.get(at..at + 8).ok_or(Odd)?.try_into().map_err(|_| Odd)?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, Odd> {
    Ok(u32::from_le_bytes(
        b.get(at..at + 4).ok_or(Odd)?.try_into().map_err(|_| Odd)?,
    ))
}

/// Where the sections are in the body, and the top level of the directory (copied out at
/// open: a few hundred kilobytes at 100M subscribers, which stay in cache).
#[derive(Debug)]
pub(super) struct Layout {
    pub data: Range<usize>,
    pub nodes: Range<usize>,
    pub top: Vec<u64>,
    /// Every [`SUMMARY_STEP`]th top key: searched first, so a lookup touches a few cache
    /// lines of `top` instead of one per step of a binary search over all of it.
    summary: Vec<u64>,
    /// Per node (and one past the last): where its data starts, in cache lines, and how far
    /// around the line a key is predicted at its block may lie ([`Guess`]).
    guesses: Vec<Guess>,
    /// The body's address modulo a cache line, when the guesses were made: lines are the
    /// machine's, not the file's.
    skew: usize,
}

/// Top keys per summary key.
const SUMMARY_STEP: usize = 16;

/// Most cache lines a predicted window may span; a node whose blocks cannot be predicted
/// within that (a gap in its numbers, a long block) is looked up through its node first.
pub(super) const GUESS_LINES: i64 = 20;

/// The directory's prediction for one node: numbers are allocated in dense ranges, so
/// within a node a key's data position is nearly linear in the key. From the node's first
/// key and line and the next node's, a key's line is interpolated; every block of the node
/// reads within `lo..=hi` lines of the line predicted for any key it could hold (from the
/// block's first line to the end of its key section, and of the key's record: checked at
/// open against every block and record, so the bound holds whatever the numbers). A lookup then
/// fetches the block's lines together with the node, in one memory round trip, instead of
/// reading the node first. 8 bytes per node (781 KB at 100M subscribers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Guess {
    /// The node's first data line (its block 0's offset, in the machine's cache lines).
    line: u32,
    /// Lines before the predicted one where a block may start ([`NO_GUESS`]: none; look
    /// the node up first).
    lo: i16,
    /// Lines after the predicted one where a block may end.
    hi: i16,
}

const NO_GUESS: i16 = i16::MIN;

/// The line predicted for `key` in a node whose keys start at `k0` and data at line `l0`,
/// the next node's at `k1` and `l1` (`k0 <= key < k1`, `l0 <= l1`). Monotone in `key`.
#[inline]
fn predict(key: u64, k0: u64, k1: u64, l0: u32, l1: u32) -> i64 {
    let f = (key - k0) as f64 / (k1 - k0) as f64;
    i64::from(l0) + (f * f64::from(l1 - l0)) as i64
}

impl Layout {
    /// Checks the directory of `body` (data, nodes and top, of the given sizes): every
    /// node's offsets inside the data and ascending, every key ascending. Blocks are
    /// checked when read.
    pub fn check(body: &[u8], data_len: u64, node_count: u64) -> Result<Layout, String> {
        let n = usize::try_from(node_count).map_err(|_| "node count too large")?;
        let data_len = usize::try_from(data_len).map_err(|_| "data too large")?;
        let nodes_len = n.checked_mul(NODE_LEN).ok_or("node count too large")?;
        let top_len = n * 8;
        let want = data_len
            .checked_add(nodes_len)
            .and_then(|l| l.checked_add(top_len))
            .ok_or("sections too large")?;
        if want != body.len() {
            return Err(format!(
                "the sections ({data_len} + {nodes_len} + {top_len} bytes) do not fill the body ({} bytes)",
                body.len()
            ));
        }
        if (data_len == 0) != (n == 0) {
            return Err("data without a directory, or a directory without data".into());
        }
        let nodes = data_len..data_len + nodes_len;
        let top: Vec<u64> = body[nodes.end..]
            .chunks_exact(8)
            .map(|c| u64_at(c, 0).unwrap_or(0))
            .collect();
        if top.windows(2).any(|w| w[0] >= w[1]) {
            return Err("the top-level keys are not ascending".into());
        }
        let mut prev_end = 0u64;
        for i in 0..n {
            let node = &body[nodes.start + i * NODE_LEN..nodes.start + (i + 1) * NODE_LEN];
            let base = u64_at(node, 0).map_err(|_| "node")?;
            if (i == 0 && base != 0) || (i > 0 && base <= prev_end) {
                return Err(format!("node {i}: its data offset {base} is out of order"));
            }
            let end = match i + 1 < n {
                true => u64_at(body, nodes.start + (i + 1) * NODE_LEN).map_err(|_| "node")?,
                false => data_len as u64,
            };
            if base >= end {
                return Err(format!("node {i}: no data"));
            }
            let (mut last_head, mut last_start, mut ended) = (0u64, 0u64, false);
            for b in 0..NODE_BLOCKS - 1 {
                let head = u32_at(node, HEADS_AT + 4 * b).map_err(|_| "node")?;
                let start = u64::from(u32_at(node, STARTS_AT + 4 * b).map_err(|_| "node")?);
                if head == u32::MAX {
                    ended = true;
                    continue;
                }
                let head = u64::from(head);
                if ended
                    || head <= last_head
                    || start <= last_start
                    || base + start >= end
                    || (i + 1 < n && top[i] + head >= top[i + 1])
                {
                    return Err(format!("node {i}: block {} is out of order", b + 1));
                }
                (last_head, last_start) = (head, start);
            }
            prev_end = base;
        }
        let skew = body.as_ptr() as usize % 64;
        let guesses = guesses(body, data_len, &nodes, &top, skew);
        Ok(Layout {
            data: 0..data_len,
            nodes,
            summary: top.iter().step_by(SUMMARY_STEP).copied().collect(),
            top,
            guesses,
            skew,
        })
    }

    /// The node whose key range holds `key`, or `None` below the first key.
    #[inline]
    fn node_of(&self, key: u64) -> Result<Option<usize>, Odd> {
        let s = self.summary.partition_point(|&t| t <= key);
        if s == 0 {
            return Ok(None);
        }
        let from = (s - 1) * SUMMARY_STEP;
        // The span's guesses are read next: fetch them while the span is searched.
        if let Some(g) = self
            .guesses
            .get(from..(from + SUMMARY_STEP + 1).min(self.guesses.len()))
        {
            prefetch_all(g);
        }
        let span = self
            .top
            .get(from..(from + SUMMARY_STEP).min(self.top.len()))
            .ok_or(Odd)?;
        // The span's first key is at most `key`, so the node is in the span.
        Ok(Some(from + span.partition_point(|&t| t <= key).max(1) - 1))
    }

    /// The data bytes predicted to hold `key`'s block in node `i` (already checked to lie
    /// inside the data), or `None` where the node has no guess.
    #[inline]
    fn window(&self, i: usize, key: u64) -> Option<Range<usize>> {
        let g = *self.guesses.get(i)?;
        if g.lo == NO_GUESS {
            return None;
        }
        let next = self.guesses.get(i + 1)?;
        let k1 = *self.top.get(i + 1)?;
        let p = predict(key, self.top[i], k1, g.line, next.line);
        let from = ((p + i64::from(g.lo)) * 64 - self.skew as i64).max(0) as usize;
        let to = ((p + i64::from(g.hi) + 1) * 64 - self.skew as i64).max(0) as usize;
        Some(from.min(self.data.end)..to.min(self.data.end))
    }

    /// Starts fetching what a lookup of `key` reads: with a guess, the node's lines and the
    /// predicted block lines at once, reading nothing; without one, the node is read and the
    /// block's lines fetched ([`Layout::block`]).
    #[inline]
    pub fn prefetch(&self, body: &[u8], key: u64) {
        let Ok(Some(i)) = self.node_of(key) else {
            return;
        };
        match self.window(i, key) {
            Some(w) => {
                let at = self.nodes.start + i * NODE_LEN;
                // The node, and the next node's first offset (where this node's data ends).
                if let (Some(node), Some(block)) = (body.get(at..at + NODE_LEN + 8), body.get(w)) {
                    prefetch_all(node);
                    prefetch_all(block);
                }
            }
            None => {
                let _ = self.block(body, key);
            }
        }
    }

    /// Whether the predicted window of `key`'s node holds what a lookup of `key` reads in
    /// the block the node names: its start through its key section, and through the key's
    /// record (`None`: the node has no guess, or no block holds the key).
    #[cfg(test)]
    pub fn covers(&self, body: &[u8], key: u64) -> Option<bool> {
        let i = self.node_of(key).ok()??;
        let w = self.window(i, key)?;
        let (block, first) = self.block(body, key).ok()??;
        let start = block.as_ptr() as usize - body.as_ptr() as usize;
        let mut end = None;
        let keys_end = block_reach(block, first, |k, record_end| {
            if k == key {
                end = Some(record_end);
            }
        })
        .ok()?;
        let end = start + end.unwrap_or(keys_end).max(keys_end);
        // Lines, not bytes: the window is whole lines.
        let line = |at: usize| (at + self.skew) / 64;
        Some(line(w.start) <= line(start) && line(end - 1) < line(w.end - 1) + 1)
    }

    /// Nodes with a guess, of all nodes.
    #[cfg(test)]
    pub fn guessed(&self) -> (usize, usize) {
        let n = self.top.len();
        let g = self.guesses[..n]
            .iter()
            .filter(|g| g.lo != NO_GUESS)
            .count();
        (g, n)
    }

    /// The block that would hold `key` and its first key, or `None` below the first key.
    #[inline]
    pub fn block<'b>(&self, body: &'b [u8], key: u64) -> Result<Option<(&'b [u8], u64)>, Odd> {
        let Some(i) = self.node_of(key)? else {
            return Ok(None);
        };
        let at = self.nodes.start + i * NODE_LEN;
        // The predicted block lines travel with the node's (asked for first).
        let predicted = match self.window(i, key).and_then(|w| body.get(w)) {
            Some(block) => {
                if let Some(node) = body.get(at..at + NODE_LEN + 8) {
                    prefetch_all(node);
                }
                prefetch_all(block);
                true
            }
            None => false,
        };
        let node = body.get(at..at + NODE_LEN).ok_or(Odd)?;
        let base = u64_at(node, 0)?;
        let node_end = match i + 1 < self.top.len() {
            true => u64_at(body, at + NODE_LEN)?,
            false => self.data.end as u64,
        };
        let delta = key - self.top[i];
        // Blocks 1.. whose first key is at most the key: the last of them holds it.
        let mut b = 0usize;
        while b < NODE_BLOCKS - 1 {
            let h = u32_at(node, HEADS_AT + 4 * b)?;
            if h == u32::MAX || u64::from(h) > delta {
                break;
            }
            b += 1;
        }
        let (start, first) = match b {
            0 => (base, self.top[i]),
            _ => (
                base + u64::from(u32_at(node, STARTS_AT + 4 * (b - 1))?),
                self.top[i] + u64::from(u32_at(node, HEADS_AT + 4 * (b - 1))?),
            ),
        };
        let next = match b < NODE_BLOCKS - 1 {
            true => match u32_at(node, HEADS_AT + 4 * b)? {
                u32::MAX => node_end,
                _ => base + u64::from(u32_at(node, STARTS_AT + 4 * b)?),
            },
            false => node_end,
        };
        let (start, next) = (
            usize::try_from(start).map_err(|_| Odd)?,
            usize::try_from(next).map_err(|_| Odd)?,
        );
        if start >= next || next > self.data.end {
            return Err(Odd);
        }
        let block = body.get(start..next).ok_or(Odd)?;
        if !predicted {
            prefetch(block);
        }
        Ok(Some((block, first)))
    }
}

impl Layout {
    /// Directory nodes.
    pub fn node_count(&self) -> usize {
        self.top.len()
    }

    /// Calls `f` with each block of node `node`, in order (an odd offset: `Odd`).
    pub fn node_blocks(
        &self,
        body: &[u8],
        node: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<(), Odd> {
        let at = self.nodes.start + node * NODE_LEN;
        let n = body.get(at..at + NODE_LEN).ok_or(Odd)?;
        let base = u64_at(n, 0)?;
        let end = match node + 1 < self.top.len() {
            true => u64_at(body, at + NODE_LEN)?,
            false => self.data.end as u64,
        };
        let slice = |from: u64, to: u64| -> Result<&[u8], Odd> {
            let from = usize::try_from(from).map_err(|_| Odd)?;
            let to = usize::try_from(to).map_err(|_| Odd)?;
            body.get(from..to.min(self.data.end)).ok_or(Odd)
        };
        let mut start = base;
        for b in 0..NODE_BLOCKS - 1 {
            if u32_at(n, HEADS_AT + 4 * b)? == u32::MAX {
                break;
            }
            let next = base + u64::from(u32_at(n, STARTS_AT + 4 * b)?);
            f(slice(start, next)?);
            start = next;
        }
        f(slice(start, end)?);
        Ok(())
    }
}

/// Makes the per-node [`Guess`]es of a checked directory: for each block of a node, the
/// lines it spans against the lines predicted for its smallest and largest possible key.
fn guesses(
    body: &[u8],
    data_len: usize,
    nodes: &Range<usize>,
    top: &[u64],
    skew: usize,
) -> Vec<Guess> {
    let n = top.len();
    let line = |offset: u64| (offset + skew as u64) / 64;
    let base = |i: usize| -> u64 {
        match i < n {
            true => u64_at(body, nodes.start + i * NODE_LEN).unwrap_or(0),
            false => data_len as u64,
        }
    };
    // Lines past u32 (data over 256 GB): no guesses at all.
    if line(data_len as u64) > u64::from(u32::MAX) {
        return vec![
            Guess {
                line: 0,
                lo: NO_GUESS,
                hi: 0,
            };
            n + 1
        ];
    }
    let mut out: Vec<Guess> = (0..=n)
        .map(|i| Guess {
            line: line(base(i)) as u32,
            lo: NO_GUESS,
            hi: 0,
        })
        .collect();
    // The last node's keys have no upper bound to interpolate to: it has no guess.
    for i in 0..n.saturating_sub(1) {
        let node = &body[nodes.start + i * NODE_LEN..nodes.start + (i + 1) * NODE_LEN];
        let (k0, k1, b0) = (top[i], top[i + 1], base(i));
        let (l0, l1) = (out[i].line, out[i + 1].line);
        // Blocks as (first key, start), then the node's end.
        let mut blocks = vec![(k0, b0)];
        for b in 0..NODE_BLOCKS - 1 {
            let head = u32_at(node, HEADS_AT + 4 * b).unwrap_or(u32::MAX);
            if head == u32::MAX {
                break;
            }
            let start = u64::from(u32_at(node, STARTS_AT + 4 * b).unwrap_or(0));
            blocks.push((k0 + u64::from(head), b0 + start));
        }
        blocks.push((k1, base(i + 1)));
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let mut odd = false;
        for w in blocks.windows(2) {
            let ((first, start), (next_first, end)) = (w[0], w[1]);
            // A key of this block (first..next_first) reads from the block's first line to
            // the end of the key section, and to the end of its record if it has one.
            let p = |k: u64| predict(k, k0, k1, l0, l1);
            let p_low = p(first);
            lo = lo.min(line(start) as i64 - p(next_first - 1));
            let Some(block) = body.get(start as usize..end as usize) else {
                odd = true;
                break;
            };
            let line_of = |at: usize| line(start + at.saturating_sub(1) as u64) as i64;
            let reach = block_reach(block, first, |k, record_end| {
                hi = hi.max(line_of(record_end) - p(k));
            });
            match reach {
                Ok(keys_end) => hi = hi.max(line_of(keys_end) - p_low),
                Err(Odd) => {
                    odd = true;
                    break;
                }
            }
        }
        if !odd && hi - lo < GUESS_LINES {
            out[i].lo = lo as i16;
            out[i].hi = hi as i16;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digits {
        Digits::parse(s.as_bytes()).expect("digits")
    }

    #[test]
    fn bits_and_varints_round_trip_at_every_offset() {
        let mut w = BitWriter::default();
        let fields: Vec<(u64, u32)> = (0..200u64)
            .map(|i| {
                let n = (i % 56 + 1) as u32;
                ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) & ((1 << n) - 1), n)
            })
            .collect();
        for &(v, n) in &fields {
            w.put(v, n);
        }
        let total = w.total;
        let bytes = w.finish();
        let mut r = BitReader {
            buf: &bytes,
            pos: 0,
            end: total,
        };
        for &(v, n) in &fields {
            assert_eq!(r.get(n), Ok(v));
        }
        assert_eq!(r.get(1), Err(Odd));
        let mut out = Vec::new();
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            put_varint(&mut out, v);
        }
        let mut at = 0;
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(get_varint(&out, &mut at), Ok(v));
        }
        assert_eq!(get_varint(&out, &mut at), Err(Odd));
        assert_eq!(get_varint(&[0xff; 11], &mut 0), Err(Odd));
    }

    #[test]
    fn suffix_bits_hold_every_suffix() {
        for (n, &bits) in SUFFIX_BITS.iter().enumerate() {
            assert!(POW10[n] - 1 < (1u64 << bits), "{n}");
            assert!(n == 0 || POW10[n] > (1u64 << (bits - 1)), "{n}");
        }
    }

    #[test]
    fn keys_keep_lengths_apart_and_order_numbers() {
        assert_ne!(d("1").key(), d("01").key());
        assert!(d("8613900000001").key() < d("8613900000002").key());
        assert_eq!(Digits::parse(b""), None);
        assert_eq!(Digits::parse(b"1234567890123456"), None);
        assert_eq!(Digits::parse(b"12a"), None);
    }

    /// Every kind, shared and unshared digits, zeros inside, a subscriber with no entry.
    #[test]
    fn a_block_answers_every_kind_and_misses_between_its_keys() {
        let e1 = [
            (Kind::ExactAllow, d("8613800000001")),
            (Kind::PrefixBlock, d("86170")),
            (Kind::PrefixAllow, d("8617012")),
            (Kind::ExactBlock, d("8617012345678")),
            (Kind::PrefixBlock, d("8617012345678")),
        ];
        let e2 = [
            (Kind::ExactBlock, d("4420700000")),
            (Kind::PrefixBlock, d("1")),
        ];
        let mut enc = BlockEncoder::default();
        let recs = [
            Record {
                key: d("8613900000001").key(),
                level: 2,
                entries: &e1,
            },
            Record {
                key: d("8613900000003").key(),
                level: 0,
                entries: &e2,
            },
            Record {
                key: d("8613900000007").key(),
                level: 3,
                entries: &[],
            },
        ];
        for r in &recs {
            assert!(!enc.push(r));
        }
        let first = enc.first_key().expect("first");
        let block = enc.finish().to_vec();
        assert!(enc.is_empty());
        let ask = |sub: &str, caller: &str| {
            answer_in_block(&block, first, d(sub).key(), d(caller)).expect("well formed")
        };
        let s1 = "8613900000001";
        let f = ask(s1, "8613800000001").expect("found");
        assert_eq!((f.level, f.entry), (2, Some((13, Kind::ExactAllow))));
        assert_eq!(
            ask(s1, "8617099999999").and_then(|f| f.entry),
            Some((5, Kind::PrefixBlock))
        );
        assert_eq!(
            ask(s1, "8617012000000").and_then(|f| f.entry),
            Some((7, Kind::PrefixAllow))
        );
        // Exact beats the prefix of the same digits; the prefix covers longer numbers.
        assert_eq!(
            ask(s1, "8617012345678").and_then(|f| f.entry),
            Some((13, Kind::ExactBlock))
        );
        assert_eq!(
            ask(s1, "86170123456789").and_then(|f| f.entry),
            Some((13, Kind::PrefixBlock))
        );
        assert_eq!(ask(s1, "8618800000000").and_then(|f| f.entry), None);
        let f = ask("8613900000003", "4420700000").expect("found");
        assert_eq!((f.level, f.entry), (0, Some((10, Kind::ExactBlock))));
        assert_eq!(
            ask("8613900000003", "12025550100").and_then(|f| f.entry),
            Some((1, Kind::PrefixBlock))
        );
        let f = ask("8613900000007", "12025550100").expect("found");
        assert_eq!((f.level, f.entry), (3, None));
        for missing in ["8613900000002", "8613900000005", "8613900000009"] {
            assert_eq!(ask(missing, "8613800000001"), None, "{missing}");
        }
    }

    #[test]
    fn odd_blocks_are_errors_never_panics() {
        let e = [(Kind::ExactBlock, d("8613800000001"))];
        let mut enc = BlockEncoder::default();
        enc.push(&Record {
            key: 16,
            level: 1,
            entries: &e,
        });
        let block = enc.finish().to_vec();
        let caller = d("8613800000001");
        assert!(answer_in_block(&block, 16, 16, caller).is_ok());
        for cut in 0..block.len() {
            let _ = answer_in_block(&block[..cut], 16, 16, caller);
        }
        for i in 0..block.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut b = block.clone();
                b[i] ^= x;
                let _ = answer_in_block(&b, 16, 16, caller);
            }
        }
        assert_eq!(answer_in_block(&[], 16, 16, caller), Err(Odd));
    }
}
