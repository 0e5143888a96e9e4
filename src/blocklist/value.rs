//! Entry values: action, tombstone, score, category and source packed into one `u64`.
//!
//! The FST stores a `u64` per key and shares output bytes along common prefixes; the smaller
//! the output, the fewer bytes each node spends. Two steps keep outputs small:
//!
//! 1. the fields are packed into the low bits (below), so a value is at most 42 bits;
//! 2. the snapshot stores a **value table** of the distinct packed values, most frequent
//!    first, and the FST output is the index into it: the most common value is output 0
//!    (no bytes at all), the next 127 fit one byte. Measured on a 10M-row realistic list
//!    (`gen_blocklist 10000000 1`): 9.43 bytes/entry with packed values as outputs, 7.73 with
//!    the table. The table costs one indexed load per lookup.
//!
//! | bits | field |
//! |---|---|
//! | 0-1 | [`Action`] |
//! | 2 | tombstone (a delta entry that removes the base's entry) |
//! | 3-9 | score, 0..=100 |
//! | 10-25 | category id (index into the snapshot's category table) |
//! | 26-41 | source id (index into the snapshot's source table) |

use super::Action;

/// Maximum score.
pub const MAX_SCORE: u8 = 100;
/// Maximum number of distinct categories (and of sources) in one snapshot.
pub const MAX_STRINGS: usize = 1 << 16;

/// One entry's value, with category and source as ids into the snapshot's string tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackedValue {
    /// What to do with a caller that matches.
    pub action: Action,
    /// A delta's removal of the base entry with the same key.
    pub tombstone: bool,
    /// Confidence, 0..=100.
    pub score: u8,
    /// Category id.
    pub category: u16,
    /// Source id.
    pub source: u16,
}

impl PackedValue {
    /// Packs into the FST output (see the module table).
    pub fn pack(&self) -> u64 {
        (self.action as u64)
            | (u64::from(self.tombstone) << 2)
            | (u64::from(self.score.min(MAX_SCORE)) << 3)
            | (u64::from(self.category) << 10)
            | (u64::from(self.source) << 26)
    }

    /// Unpacks an FST output.
    pub fn unpack(v: u64) -> PackedValue {
        PackedValue {
            action: Action::from_bits(v),
            tombstone: (v >> 2) & 1 == 1,
            score: ((v >> 3) & 0x7F) as u8,
            category: ((v >> 10) & 0xFFFF) as u16,
            source: ((v >> 26) & 0xFFFF) as u16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips() {
        for action in Action::ALL {
            for (tombstone, score, category, source) in [
                (false, 0, 0, 0),
                (true, 100, 65535, 65535),
                (false, 57, 3, 900),
            ] {
                let v = PackedValue {
                    action,
                    tombstone,
                    score,
                    category,
                    source,
                };
                assert_eq!(PackedValue::unpack(v.pack()), v);
            }
        }
        let small = PackedValue {
            action: Action::Block,
            tombstone: false,
            score: 50,
            category: 1,
            source: 0,
        };
        assert!(
            small.pack() < 1 << 11,
            "typical values stay within two bytes"
        );
    }
}
