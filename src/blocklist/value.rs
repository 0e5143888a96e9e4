//! Entry values, packed into the low bits of the FST output.
//!
//! The FST stores a `u64` per key and shares output bytes along common prefixes; the smaller
//! the value, the fewer bytes each node spends. So the fields that vary most and matter most
//! sit in the lowest bits, and the whole value for a typical entry fits in two or three bytes:
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
