//! The validated E.164 newtype.

use std::fmt;

use super::{plan, InvalidReason};

/// Maximum digits in an E.164 number (ITU-T E.164 §6.1).
pub const MAX_DIGITS: usize = 15;

/// A validated E.164 number: 1 to 15 ASCII digits, country code first, no `+`.
///
/// `Copy` and allocation-free, so the hot path can pass it around freely.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164 {
    len: u8,
    digits: [u8; MAX_DIGITS],
}

/// Why a string is not an E.164 number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum E164Error {
    /// No digits at all.
    #[error("empty number")]
    Empty,
    /// More than 15 digits.
    #[error("{0} digits is longer than E.164 allows (15)")]
    TooLong(usize),
    /// A byte that is not an ASCII digit.
    #[error("not a digit: {0:?}")]
    NotADigit(char),
    /// E.164 country codes never start with 0.
    #[error("E.164 numbers never start with 0")]
    LeadingZero,
}

impl E164 {
    /// Builds from ASCII digits (country code first, no `+`).
    pub fn from_digits(digits: &[u8]) -> Result<Self, E164Error> {
        if digits.is_empty() {
            return Err(E164Error::Empty);
        }
        if digits.len() > MAX_DIGITS {
            return Err(E164Error::TooLong(digits.len()));
        }
        if let Some(&b) = digits.iter().find(|b| !b.is_ascii_digit()) {
            return Err(E164Error::NotADigit(b as char));
        }
        if digits[0] == b'0' {
            return Err(E164Error::LeadingZero);
        }
        let mut out = [0u8; MAX_DIGITS];
        out[..digits.len()].copy_from_slice(digits);
        Ok(E164 {
            len: digits.len() as u8,
            digits: out,
        })
    }

    /// Builds from the digits of an international number (what follows `+`), checked against
    /// the numbering plans exactly as [`NumberingProfile::normalize`] checks a `+` number,
    /// whatever the profile: `+86`/`+1` numbers by their national rules (with the `+86 0`
    /// quirk dropped), other countries by length (7 to 15). The fast path for a blocklist
    /// compiler reading `+<digits>` rows: same key as a caller presenting that number, no
    /// URI scanning. [`E164::from_digits`] checks only the E.164 form.
    ///
    /// ```
    /// use fraudwall::numbers::{E164, InvalidReason};
    /// assert_eq!(E164::from_international(b"86075512345678").map(|n| n.to_string()),
    ///            Ok("+8675512345678".to_string()));
    /// assert_eq!(E164::from_international(b"86138001"), Err(InvalidReason::TooShort));
    /// ```
    ///
    /// [`NumberingProfile::normalize`]: super::NumberingProfile::normalize
    pub fn from_international(digits: &[u8]) -> Result<Self, InvalidReason> {
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(InvalidReason::NotANumber);
        }
        plan::international(digits)
    }

    /// Country code and national significant number, both already checked to be ASCII
    /// digits with a non-zero first digit (by the numbering plans); only the length is
    /// checked here, so the hot path does not validate twice.
    pub(crate) fn from_cc_nsn(cc: &[u8], nsn: &[u8]) -> Result<Self, E164Error> {
        let len = cc.len() + nsn.len();
        if len > MAX_DIGITS {
            return Err(E164Error::TooLong(len));
        }
        debug_assert!(cc.first().is_some_and(|&b| (b'1'..=b'9').contains(&b)));
        debug_assert!(cc.iter().chain(nsn).all(u8::is_ascii_digit));
        let mut out = [0u8; MAX_DIGITS];
        out[..cc.len()].copy_from_slice(cc);
        out[cc.len()..len].copy_from_slice(nsn);
        Ok(E164 {
            len: len as u8,
            digits: out,
        })
    }

    /// The digits, country code first, without `+`.
    pub fn digits(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The digits as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len as usize]
    }

    /// The digit buffer whole (the first [`E164::len`] bytes are the number), for
    /// fixed-size loads on hot paths.
    pub(crate) fn digit_buffer(&self) -> &[u8; MAX_DIGITS] {
        &self.digits
    }

    /// Number of digits (1 to 15).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len as usize
    }
}

impl fmt::Display for E164 {
    /// Formats as `+` followed by the digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.digits())
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164(+{})", self.digits())
    }
}

impl std::str::FromStr for E164 {
    type Err = E164Error;
    /// Parses `+<digits>` or `<digits>` (already international).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        E164::from_digits(s.strip_prefix('+').unwrap_or(s).as_bytes())
    }
}
