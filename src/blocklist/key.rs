//! Key encoding: two digits per FST byte.
//!
//! A plain FST over ASCII digits spends one transition per digit. Here each byte of a key
//! carries two digits (`10*a + b`, 0..=99), a trailing odd digit is the byte `100 + d`
//! (100..=109), and an **exact** entry ends with [`TERMINATOR`] (`0xFF`). A **prefix** entry
//! has no terminator, so `+8617012*` (prefix) and `+8617012` (exact) are different keys and
//! can coexist. A 13-digit number is a 7-byte key plus the terminator: half the transitions
//! of an ASCII-digit FST, which is what keeps a lookup short.
//!
//! ```
//! use fraudwall::blocklist::EntryKey;
//! let k = EntryKey::prefix(b"8617012").unwrap();
//! assert_eq!(k.encode().as_slice(), &[86, 17, 1, 102]);
//! assert_eq!(k.to_string(), "+8617012*");
//! let e = EntryKey::exact(b"8613800000001").unwrap();
//! assert_eq!(e.encode().as_slice(), &[86, 13, 80, 0, 0, 0, 101, 0xFF]);
//! assert_eq!(EntryKey::decode(e.encode().as_slice()), Some(e));
//! ```

use crate::numbers::E164;
use std::fmt;

/// Ends every exact entry's key.
pub const TERMINATOR: u8 = 0xFF;
/// First byte value used for a lone trailing digit (`100 + d`).
pub const ODD_BASE: u8 = 100;
/// Maximum digits in a key (E.164 limit).
pub const MAX_DIGITS: usize = 15;
/// Maximum encoded key length: 7 pairs, one odd digit and the terminator.
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
        let mut n = 0;
        let mut pairs = d.chunks_exact(2);
        for p in &mut pairs {
            bytes[n] = (p[0] - b'0') * 10 + (p[1] - b'0');
            n += 1;
        }
        if let [last] = pairs.remainder() {
            bytes[n] = ODD_BASE + (last - b'0');
            n += 1;
        }
        if self.exact {
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
        let (exact, body) = match bytes.split_last() {
            Some((&TERMINATOR, body)) => (true, body),
            Some(_) => (false, bytes),
            None => return None,
        };
        let mut d = [0u8; MAX_DIGITS];
        let mut n = 0;
        for (i, &b) in body.iter().enumerate() {
            match b {
                0..=99 if n + 2 <= MAX_DIGITS => {
                    d[n] = b'0' + b / 10;
                    d[n + 1] = b'0' + b % 10;
                    n += 2;
                }
                100..=109 if i + 1 == body.len() && n < MAX_DIGITS => {
                    d[n] = b'0' + (b - ODD_BASE);
                    n += 1;
                }
                _ => return None,
            }
        }
        EntryKey::new(exact, &d[..n])
    }
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
                assert_eq!(
                    enc.as_slice().len(),
                    len.div_ceil(2) + usize::from(k.is_exact())
                );
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
