//! Records: one `u128` per row, whose integer order is the FST's key order.

// bits 127..56  encoded key, 9 bytes, zero padded   (order = FST byte order)
// bits  55..52  key length in bytes
// bit   51      protected
// bits  50..49  action
// bit   48      tombstone
// bits  47..41  score
// bits  40..25  category id
// bits  24..9   source id

use crate::blocklist::key::{EntryKey, MAX_KEY_BYTES};
use crate::blocklist::value::PackedValue;
use crate::blocklist::Action;

const KEY_SHIFT: u32 = 56;
const LEN_SHIFT: u32 = 52;
pub(super) const PROTECTED_BIT: u128 = 1 << 51;
pub(super) const KEY_MASK: u128 = !((1u128 << LEN_SHIFT) - 1);

#[inline]
pub(super) fn record(key: &EntryKey, v: PackedValue, protected: bool) -> u128 {
    let enc = key.encode();
    let mut k = [0u8; 16];
    k[..enc.as_slice().len()].copy_from_slice(enc.as_slice());
    let key_bits = u128::from_be_bytes(k) >> (128 - 8 * MAX_KEY_BYTES as u32) << KEY_SHIFT;
    key_bits
        | ((enc.as_slice().len() as u128) << LEN_SHIFT)
        | if protected { PROTECTED_BIT } else { 0 }
        | ((v.action as u128) << 49)
        | (u128::from(v.tombstone) << 48)
        | (u128::from(v.score) << 41)
        | (u128::from(v.category) << 25)
        | (u128::from(v.source) << 9)
}

#[inline]
pub(super) fn record_value(r: u128) -> PackedValue {
    PackedValue {
        action: Action::from_bits((r >> 49) as u64),
        tombstone: (r >> 48) & 1 == 1,
        score: ((r >> 41) & 0x7F) as u8,
        category: ((r >> 25) & 0xFFFF) as u16,
        source: ((r >> 9) & 0xFFFF) as u16,
    }
}

#[inline]
pub(super) fn record_key(r: u128) -> ([u8; MAX_KEY_BYTES], usize) {
    let b = (r >> KEY_SHIFT).to_be_bytes();
    let mut k = [0u8; MAX_KEY_BYTES];
    k.copy_from_slice(&b[16 - MAX_KEY_BYTES..]);
    (k, ((r >> LEN_SHIFT) & 0xF) as usize)
}

#[inline]
pub(super) fn with_ids(r: u128, category: u16, source: u16) -> u128 {
    (r & !((0xFFFFu128 << 25) | (0xFFFFu128 << 9)))
        | (u128::from(category) << 25)
        | (u128::from(source) << 9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_order_is_fst_key_order() {
        let keys = [
            EntryKey::prefix(b"86").unwrap(),
            EntryKey::exact(b"86").unwrap(),
            EntryKey::prefix(b"8600").unwrap(),
            EntryKey::prefix(b"861").unwrap(),
            EntryKey::exact(b"8613800000001").unwrap(),
            EntryKey::exact(b"999999999999999").unwrap(),
        ];
        let v = PackedValue {
            action: Action::Block,
            tombstone: false,
            score: 100,
            category: 65535,
            source: 65535,
        };
        let mut recs: Vec<u128> = keys.iter().map(|k| record(k, v, true)).collect();
        recs.sort_unstable();
        let mut encoded: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| k.encode().as_slice().to_vec())
            .collect();
        encoded.sort();
        let from_recs: Vec<Vec<u8>> = recs
            .iter()
            .map(|&r| {
                let (k, l) = record_key(r);
                k[..l].to_vec()
            })
            .collect();
        assert_eq!(from_recs, encoded);
        assert_eq!(record_value(recs[0]), v);
    }
}
