//! Blocks: the encoder ([`BlockEncoder`]) and the lookup in one block ([`answer_in_block`]).

use super::bits::{get_varint, put_varint, BitReader, BitWriter};
use super::keys::{Digits, Kind, MAX_DIGITS, POW10};
use super::Odd;

/// Subscribers per block at most: a lookup scans at most this many key deltas.
const BLOCK_SUBSCRIBERS: usize = 64;
/// A block is closed once it holds this many entries (a subscriber with more gets a block
/// of their own, however long).
const BLOCK_ENTRIES: usize = 192;

/// Bits of the entry kind, the shared-digit count and the suffix digit count.
const KIND_BITS: u32 = 2;
const COUNT_BITS: u32 = 4;
const ENTRY_HEAD_BITS: u32 = KIND_BITS + 2 * COUNT_BITS;
/// Bits of the level in a record's head.
const LEVEL_BITS: u32 = 2;
/// Bits that hold any `d`-digit suffix: `ceil(d * log2(10))`.
const SUFFIX_BITS: [u32; 16] = [0, 4, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40, 44, 47, 50];

/// One subscriber's record, as the encoder is given it.
pub(in crate::subscribers) struct Record<'a> {
    /// The number's key ([`Digits::key`]).
    pub key: u64,
    /// The level: 0 none, 1 allow, 2 tag, 3 block.
    pub level: u8,
    /// The personal entries, any order.
    pub entries: &'a [(Kind, Digits)],
}

/// Gathers the records of one block and encodes it.
#[derive(Default)]
pub(in crate::subscribers) struct BlockEncoder {
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
pub(in crate::subscribers) struct Found {
    pub level: u8,
    pub entry: Option<(u8, Kind)>,
}

/// What a lookup in `block` (first key `first`) reads: the key section ends at the
/// returned offset, and `record(key, end)` is called for each subscriber with the offset
/// past the last byte its record's decoding reads.
pub(super) fn block_reach(
    block: &[u8],
    first: u64,
    mut record: impl FnMut(u64, usize),
) -> Result<usize, Odd> {
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
pub(in crate::subscribers) fn block_entries(
    block: &[u8],
    mut entry: impl FnMut(Kind, Digits),
) -> Result<(), Odd> {
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
pub(in crate::subscribers) fn answer_in_block(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digits {
        Digits::parse(s.as_bytes()).expect("digits")
    }

    #[test]
    fn suffix_bits_hold_every_suffix() {
        for (n, &bits) in SUFFIX_BITS.iter().enumerate() {
            assert!(POW10[n] - 1 < (1u64 << bits), "{n}");
            assert!(n == 0 || POW10[n] > (1u64 << (bits - 1)), "{n}");
        }
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
