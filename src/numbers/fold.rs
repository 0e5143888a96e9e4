//! Folding non-ASCII digits and signs to ASCII, so that `＋１２０２…` or `٢٠٢…` is the number
//! it shows and not a way around the blocklist.
//!
//! Two Unicode rules, each from a maintained table rather than a list kept here:
//!
//! 1. **NFKC** (compatibility decomposition, `unicode-normalization`): fullwidth `０`–`９`
//!    and `＋`, superscripts, circled and mathematical digits, fullwidth hyphen and the
//!    ideographic space all decompose to ASCII.
//! 2. **Decimal digits** (General_Category `Nd`, `unicode-properties`): Arabic-Indic
//!    `٠`–`٩`, Extended Arabic-Indic `۰`–`۹`, Devanagari, Bengali and every other script's
//!    digits. Unicode's stability policy encodes each script's `Nd` digits as a contiguous
//!    run of ten, `0` to `9` in order, so a digit's value is its distance from the start of
//!    its run, modulo 10 (runs of ten may sit back to back, as the mathematical digits do).
//!
//! Only what folds to ASCII digits, `+` or a visual separator (`-`, `.`, `(`, `)`, space) is
//! read; any other character stays a reason the value is not a number. Nothing here
//! allocates, and it runs only for bytes ≥ 0x80, so an ASCII caller never reaches it.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Most ASCII bytes one character folds to (`⑳` is `20`, `⑽` is `(10)`).
pub(crate) const MAX_FOLD: usize = 4;

/// The ASCII a non-ASCII character stands for in a number, or `None` when it stands for
/// nothing a number may hold.
pub(crate) fn fold(c: char) -> Option<Folded> {
    if c.is_ascii() {
        return None;
    }
    if c.general_category() == GeneralCategory::DecimalNumber {
        return decimal_value(c).map(|d| Folded::one(b'0' + d));
    }
    let mut out = Folded::empty();
    let mut ok = true;
    unicode_normalization::char::decompose_compatible(c, |d| {
        ok &= d.is_ascii() && is_number_char(d as u8) && out.push(d as u8);
    });
    (ok && out.len > 0).then_some(out)
}

/// The ASCII bytes a character folded to (1 to [`MAX_FOLD`]).
#[derive(Clone, Copy)]
pub(crate) struct Folded {
    len: u8,
    buf: [u8; MAX_FOLD],
}

impl Folded {
    const fn empty() -> Self {
        Folded {
            len: 0,
            buf: [0; MAX_FOLD],
        }
    }

    pub(crate) const fn one(b: u8) -> Self {
        Folded {
            len: 1,
            buf: [b, 0, 0, 0],
        }
    }

    fn push(&mut self, b: u8) -> bool {
        match self.buf.get_mut(self.len as usize) {
            Some(slot) => {
                *slot = b;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// What a number may hold once folded: digits, `+`, the RFC 3966 visual separators and space.
fn is_number_char(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'+' | b'-' | b'.' | b'(' | b')' | b' ')
}

/// The value of an `Nd` character: its offset from the first `Nd` of its run, modulo 10.
fn decimal_value(c: char) -> Option<u8> {
    let mut start = c as u32;
    // Runs are at most a few tens long (five back-to-back runs of mathematical digits).
    for _ in 0..64 {
        match start.checked_sub(1).and_then(char::from_u32) {
            Some(prev) if prev.general_category() == GeneralCategory::DecimalNumber => start -= 1,
            _ => return Some(((c as u32 - start) % 10) as u8),
        }
    }
    None
}

/// Decodes the UTF-8 character whose lead byte `lead` was just read, taking its continuation
/// bytes from `next` (each raw or percent-escaped, as the scanner sees them). `None` for a
/// malformed sequence.
pub(crate) fn utf8_char(lead: u8, mut next: impl FnMut() -> Option<u8>) -> Option<char> {
    let (len, init) = match lead {
        0xC2..=0xDF => (1, u32::from(lead & 0x1F)),
        0xE0..=0xEF => (2, u32::from(lead & 0x0F)),
        0xF0..=0xF4 => (3, u32::from(lead & 0x07)),
        _ => return None,
    };
    let mut cp = init;
    for _ in 0..len {
        let b = next()?;
        if b & 0xC0 != 0x80 {
            return None;
        }
        cp = (cp << 6) | u32::from(b & 0x3F);
    }
    // Overlong encodings and surrogates are no characters.
    let min = [0, 0x80, 0x800, 0x1_0000][len];
    if cp < min {
        return None;
    }
    char::from_u32(cp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(c: char) -> Option<Vec<u8>> {
        fold(c).map(|f| f.as_slice().to_vec())
    }

    #[test]
    fn fullwidth_digits_and_plus_fold_by_nfkc() {
        for (i, c) in ('０'..='９').enumerate() {
            assert_eq!(folded(c), Some(vec![b'0' + i as u8]), "{c}");
        }
        assert_eq!(folded('＋'), Some(b"+".to_vec()));
        assert_eq!(folded('－'), Some(b"-".to_vec()));
        assert_eq!(folded('\u{3000}'), Some(b" ".to_vec()));
        assert_eq!(folded('¹'), Some(b"1".to_vec()));
        assert_eq!(folded('⑳'), Some(b"20".to_vec()));
        assert_eq!(folded('𝟗'), Some(b"9".to_vec()));
    }

    #[test]
    fn decimal_digits_of_every_script_fold_by_value() {
        let runs = ['٠', '۰', '०', '০', '๐', '߀', '᠐', '𝟎', '𝟘', '𝟶'];
        for zero in runs {
            for v in 0..10u8 {
                let c = char::from_u32(zero as u32 + u32::from(v)).expect("a digit");
                assert_eq!(folded(c), Some(vec![b'0' + v]), "U+{:04X}", c as u32);
            }
        }
    }

    #[test]
    fn other_characters_do_not_fold() {
        for c in ['a', '1', 'é', '中', '＊', '＃', '；', '\u{200B}', 'Ⅻ', '½'] {
            assert!(fold(c).is_none(), "{c}");
        }
    }

    #[test]
    fn utf8_sequences() {
        let decode = |bytes: &[u8]| {
            let mut it = bytes[1..].iter().copied();
            utf8_char(bytes[0], || it.next())
        };
        assert_eq!(decode("１".as_bytes()), Some('１'));
        assert_eq!(decode("٢".as_bytes()), Some('٢'));
        assert_eq!(decode("𝟎".as_bytes()), Some('𝟎'));
        assert_eq!(decode(&[0xEF, 0xBC]), None);
        assert_eq!(decode(&[0xC0, 0x80]), None);
        assert_eq!(decode(&[0xE0, 0x80, 0x80]), None);
        assert_eq!(decode(&[0xED, 0xA0, 0x80]), None);
        assert_eq!(decode(&[0xEF, 0x41, 0x80]), None);
        assert_eq!(decode(&[0x80]), None);
    }
}
