//! Key encoding: two digits per FST byte, and the tail of an exact number after a block mark.
//!
//! A plain FST over ASCII digits spends one transition per digit. Here each byte of a key
//! carries two digits (`10*a + b`, 0..=99) and a trailing odd digit is the byte `100 + d`
//! (100..=109). Three kinds of key share one byte order:
//!
//! - a **prefix** entry (`+8617012*`): its digits, nothing after;
//! - an **exact** number of [`TAIL_DIGITS`] digits or fewer (a short code): its digits, then
//!   [`TERMINATOR`] (`0xFF`);
//! - any other **exact** number: its *head* (every digit but the last [`TAIL_DIGITS`]), then
//!   [`BLOCK_MARK`] (`0xFE`), then the tail as two pair bytes. The head is the number's
//!   allocation block (`+86 138 1234 xxxx`, a NANP `NPA-NXX`): every listed number of one
//!   block sorts together, so the snapshot can store a dense block as one compact leaf (see
//!   [`super::body`]) under a single FST key `head + BLOCK_MARK`.
//!
//! Prefix and exact keys with the same digits never collide, so `+8617012*` (prefix) and
//! `+8617012` (exact) coexist. A key decodes back to exactly one entry.
//!
//! ```
//! use fraudwall::blocklist::EntryKey;
//! let k = EntryKey::prefix(b"8617012").unwrap();
//! assert_eq!(k.encode().as_slice(), &[86, 17, 1, 102]);
//! assert_eq!(k.to_string(), "+8617012*");
//! let e = EntryKey::exact(b"8613800000001").unwrap();
//! assert_eq!(e.encode().as_slice(), &[86, 13, 80, 0, 100, 0xFE, 0, 1]);
//! assert_eq!(EntryKey::decode(e.encode().as_slice()), Some(e));
//! let short = EntryKey::exact(b"110").unwrap();
//! assert_eq!(short.encode().as_slice(), &[11, 100, 0xFF]);
//! ```

use crate::numbers::E164;
use std::fmt;

/// Ends the key of an exact number of at most [`TAIL_DIGITS`] digits.
pub const TERMINATOR: u8 = 0xFF;
/// Separates an exact number's head from its tail.
pub const BLOCK_MARK: u8 = 0xFE;
/// Digits in an exact number's tail: an allocation block holds `10^TAIL_DIGITS` numbers.
pub const TAIL_DIGITS: usize = 4;
/// First byte value used for a lone trailing digit (`100 + d`).
pub const ODD_BASE: u8 = 100;
/// Maximum digits in a key (E.164 limit).
pub const MAX_DIGITS: usize = 15;
/// Maximum encoded key length: an 11-digit head (5 pairs and an odd digit), the block mark
/// and two tail pairs.
pub const MAX_KEY_BYTES: usize = 9;

/// A blocklist entry's key: an exact number or a prefix (a range of numbers), as digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey {
    exact: bool,
    len: u8,
    digits: [u8; MAX_DIGITS],
}

/// An encoded key, at most [`MAX_KEY_BYTES`] bytes, without allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncodedKey {
    len: u8,
    bytes: [u8; MAX_KEY_BYTES],
}

impl EncodedKey {
    /// The encoded bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl EntryKey {
    fn new(exact: bool, digits: &[u8]) -> Option<EntryKey> {
        if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let mut d = [0u8; MAX_DIGITS];
        d[..digits.len()].copy_from_slice(digits);
        Some(EntryKey {
            exact,
            len: digits.len() as u8,
            digits: d,
        })
    }

    /// An exact entry for these ASCII digits (1 to 15), or `None`.
    pub fn exact(digits: &[u8]) -> Option<EntryKey> {
        EntryKey::new(true, digits)
    }

    /// A prefix entry for these ASCII digits (1 to 15), or `None`.
    pub fn prefix(digits: &[u8]) -> Option<EntryKey> {
        EntryKey::new(false, digits)
    }

    /// The exact entry for a number.
    pub fn from_e164(n: &E164) -> EntryKey {
        let mut d = [0u8; MAX_DIGITS];
        d[..n.len()].copy_from_slice(n.as_bytes());
        EntryKey {
            exact: true,
            len: n.len() as u8,
            digits: d,
        }
    }

    /// Whether this is an exact number (else a prefix).
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// The ASCII digits, country code first.
    pub fn digits(&self) -> &[u8] {
        &self.digits[..self.len as usize]
    }

    /// The FST key bytes.
    pub fn encode(&self) -> EncodedKey {
        let d = self.digits();
        let mut bytes = [0u8; MAX_KEY_BYTES];
        let split = self.exact && d.len() > TAIL_DIGITS;
        let (head, tail) = if split {
            d.split_at(d.len() - TAIL_DIGITS)
        } else {
            (d, &[][..])
        };
        let mut n = push_digits(head, &mut bytes);
        if split {
            bytes[n] = BLOCK_MARK;
            n += 1;
            n += push_digits(tail, &mut bytes[n..]);
        } else if self.exact {
            bytes[n] = TERMINATOR;
            n += 1;
        }
        EncodedKey {
            len: n as u8,
            bytes,
        }
    }

    /// Decodes FST key bytes; `None` if they are not a well-formed key.
    pub fn decode(bytes: &[u8]) -> Option<EntryKey> {
        let mut d = [0u8; MAX_DIGITS];
        match bytes {
            [body @ .., TERMINATOR] => {
                let n = pull_digits(body, &mut d)?;
                (n <= TAIL_DIGITS).then_some(())?;
                EntryKey::exact(&d[..n])
            }
            [head @ .., BLOCK_MARK, hi, lo] => {
                let n = pull_digits(head, &mut d)?;
                let t = pull_digits(&[*hi, *lo], &mut d[n..])?;
                (t == TAIL_DIGITS && n > 0).then_some(())?;
                EntryKey::exact(&d[..n + t])
            }
            _ => {
                let n = pull_digits(bytes, &mut d)?;
                EntryKey::prefix(&d[..n])
            }
        }
    }
}

/// Whether encoded key bytes name an exact number (else a prefix).
pub fn is_exact_key(bytes: &[u8]) -> bool {
    matches!(bytes, [.., TERMINATOR] | [.., BLOCK_MARK, _, _])
}

/// Encodes ASCII digits as pair bytes (and a trailing odd byte) into `out`; returns the
/// bytes written. The caller guarantees room.
fn push_digits(d: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    let mut pairs = d.chunks_exact(2);
    for p in &mut pairs {
        out[n] = (p[0] - b'0') * 10 + (p[1] - b'0');
        n += 1;
    }
    if let [last] = pairs.remainder() {
        out[n] = ODD_BASE + (last - b'0');
        n += 1;
    }
    n
}

/// Decodes pair bytes (an odd byte only last) into ASCII digits; `None` on a byte that is
/// not a digit pair or when `out` is too short.
fn pull_digits(bytes: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0..=99 => {
                let slot = out.get_mut(n..n + 2)?;
                slot[0] = b'0' + b / 10;
                slot[1] = b'0' + b % 10;
                n += 2;
            }
            100..=109 if i + 1 == bytes.len() => {
                *out.get_mut(n)? = b'0' + (b - ODD_BASE);
                n += 1;
            }
            _ => return None,
        }
    }
    Some(n)
}

impl fmt::Display for EntryKey {
    /// `+8613800000001` for an exact entry, `+8617012*` for a prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("+")?;
        for &b in self.digits() {
            fmt::Write::write_char(f, b as char)?;
        }
        if !self.exact {
            f.write_str("*")?;
        }
        Ok(())
    }
}

impl fmt::Debug for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryKey({self})")
    }
}

impl serde::Serialize for EntryKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_and_kind() {
        let all = b"123456789012345";
        for len in 1..=MAX_DIGITS {
            for k in [EntryKey::exact(&all[..len]), EntryKey::prefix(&all[..len])] {
                let k = k.unwrap();
                let enc = k.encode();
                assert_eq!(EntryKey::decode(enc.as_slice()), Some(k));
                let expected = match (k.is_exact(), len > TAIL_DIGITS) {
                    (false, _) => len.div_ceil(2),
                    (true, false) => len.div_ceil(2) + 1,
                    (true, true) => (len - TAIL_DIGITS).div_ceil(2) + 3,
                };
                assert_eq!(enc.as_slice().len(), expected);
            }
        }
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(EntryKey::exact(b"").is_none());
        assert!(EntryKey::exact(b"1234567890123456").is_none());
        assert!(EntryKey::prefix(b"12a").is_none());
        assert!(EntryKey::decode(&[]).is_none());
        assert!(EntryKey::decode(&[101, 1]).is_none());
        assert!(EntryKey::decode(&[110]).is_none());
        assert!(EntryKey::decode(&[1, 2, 3, 4, 5, 6, 7, 8, 0xFF]).is_none());
        // A long number must use the block form, a short one the terminator form.
        assert!(EntryKey::decode(&[12, 34, 5, 0xFF]).is_none());
        assert!(EntryKey::decode(&[0xFE, 1, 2]).is_none());
        assert!(EntryKey::decode(&[12, 0xFE, 1, 102]).is_none());
        assert!(EntryKey::decode(&[12, 0xFE, 1]).is_none());
        assert!(EntryKey::decode(&[12, 0xFE, 1, 2, 3]).is_none());
        assert!(EntryKey::decode(&[12, 34, 56, 78, 90, 12, 0xFE, 1, 2]).is_none());
    }

    #[test]
    fn numbers_of_one_block_sort_together_after_longer_prefixes() {
        let enc = |k: EntryKey| k.encode().as_slice().to_vec();
        let a = enc(EntryKey::exact(b"8613800000001").unwrap());
        let b = enc(EntryKey::exact(b"8613800009999").unwrap());
        let longer_prefix = enc(EntryKey::prefix(b"86138000099").unwrap());
        let other_block = enc(EntryKey::exact(b"8613800010000").unwrap());
        assert!(a < b && b < other_block);
        assert!(longer_prefix < a);
        assert_eq!(a[..6], b[..6]);
    }

    #[test]
    fn encoding_order_matches_key_order_within_a_kind() {
        let a = EntryKey::exact(b"86138").unwrap().encode();
        let b = EntryKey::exact(b"861380").unwrap().encode();
        let p = EntryKey::prefix(b"86138").unwrap().encode();
        assert!(p.as_slice() < a.as_slice());
        assert!(b.as_slice() != a.as_slice());
    }
}
