//! Number keys: [`Digits`] (a number or prefix) and the entry [`Kind`].

/// Most digits in a number or prefix (E.164).
pub(super) const MAX_DIGITS: u8 = 15;
/// `10^n` for `n` below 16.
pub(super) const POW10: [u64; 16] = {
    let mut p = [1u64; 16];
    let mut i = 1;
    while i < 16 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// A number or prefix as the format holds it: its digits as an integer and their count
/// (so `+1` and `+10` differ, and a zero digit inside is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(in crate::subscribers) struct Digits {
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
    pub(in crate::subscribers) fn head(self, n: u8) -> u64 {
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
pub(in crate::subscribers) enum Kind {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digits {
        Digits::parse(s.as_bytes()).expect("digits")
    }

    #[test]
    fn keys_keep_lengths_apart_and_order_numbers() {
        assert_ne!(d("1").key(), d("01").key());
        assert!(d("8613900000001").key() < d("8613900000002").key());
        assert_eq!(Digits::parse(b""), None);
        assert_eq!(Digits::parse(b"1234567890123456"), None);
        assert_eq!(Digits::parse(b"12a"), None);
    }
}
