//! The lenient reading of a caller value the strict rules call invalid: what digits does a
//! decorated number hide?
//!
//! A fraudster who knows the blocklist is keyed by E.164 decorates the listed number until
//! the strict reader gives up (`*672025550100`, `2025550100p123`, `+012025550100`), counting
//! on invalid callers being allowed. This reader keeps only the digits that would be dialled:
//!
//! 1. The user part of the URI (for `sip:` without a user, the host), percent-escapes decoded
//!    and Unicode digits folded as in the strict reading.
//! 2. Known dialling prefixes at the start are dropped, repeatedly: [`DIAL_CODES`]
//!    (`*67`, `*82` caller-ID codes, `*31#`, `#31#` their GSM forms).
//! 3. The number ends at a pause or a parameter: `p`, `w`, `x` (after a digit), `,` `;` `#`
//!    (after a digit), `:`, `?`, `@`, `%00` or any other control character.
//! 4. Anything else that is not a digit (letters, stray `*`, `#`, `+` after the start,
//!    unknown characters) is skipped.
//!
//! [`super::NumberingProfile::lenient`] then reads the digits under the profile, and failing
//! that with an international prefix (`00`, `011`, the profile's own) or leading zeros
//! (`+0…`, a trunk `0`) dropped. The result is only ever a candidate: it is acted on when it
//! matches a list entry (reason `evasion`), never to allow a call.

use super::fold;
use super::scan::{self, Digits};

/// Dialling codes that may precede a number and are dropped, as ASCII after decoding.
pub(crate) const DIAL_CODES: [&[u8]; 4] = [b"*67", b"*82", b"*31#", b"#31#"];

/// The digits a decorated value hides, and whether a `+` came before them.
pub(crate) struct Lenient {
    pub(crate) plus: bool,
    pub(crate) digits: Digits,
}

/// Reads `raw` leniently; `None` when no digits are left (or more than a number can have).
pub(crate) fn digits(raw: &[u8]) -> Option<Lenient> {
    let user = user_part(raw);
    let mut r = Reader::new();
    let mut i = 0;
    'scan: while let Some(b) = scan::next_byte(user, &mut i) {
        let mut folded = fold::Folded::one(b);
        if b >= 0x80 {
            match fold::utf8_char(b, || scan::next_byte(user, &mut i)).and_then(fold::fold) {
                Some(f) => folded = f,
                None => continue,
            }
        }
        for &a in folded.as_slice() {
            let ends = match a {
                b'0'..=b'9' | b'*' | b'#' | b'+' => r.symbol(a),
                b'p' | b'P' | b'w' | b'W' | b'x' | b'X' => r.has_digits(),
                b',' | b';' | b':' | b'?' | b'@' | 0..=0x1F | 0x7F => true,
                _ => false,
            };
            if ends {
                break 'scan;
            }
        }
    }
    r.finish()
}

/// Reads the symbols of a dialled number one at a time: dialling codes at the start, then
/// the sign and the digits.
struct Reader {
    /// Still at the start, where dialling codes may stand.
    start: bool,
    /// The symbols since the last code, while they may still begin one.
    pending: [u8; 4],
    pending_len: usize,
    plus: bool,
    digits: Digits,
}

impl Reader {
    fn new() -> Self {
        Reader {
            start: true,
            pending: [0; 4],
            pending_len: 0,
            plus: false,
            digits: Digits::new(),
        }
    }

    fn has_digits(&self) -> bool {
        !self.digits.as_slice().is_empty()
    }

    /// Takes a digit, `*`, `#` or `+`; `true` when the number has ended.
    fn symbol(&mut self, a: u8) -> bool {
        if !self.start {
            return self.body(a);
        }
        let Some(slot) = self.pending.get_mut(self.pending_len) else {
            return self.body(a);
        };
        *slot = a;
        self.pending_len += 1;
        loop {
            let p = &self.pending[..self.pending_len];
            if DIAL_CODES.contains(&p) {
                self.pending_len = 0;
                return false;
            }
            if p.is_empty() || DIAL_CODES.iter().any(|c| c.starts_with(p)) {
                return false;
            }
            // A stray `*` or `#` is dropped and what follows is matched again.
            if matches!(p[0], b'*' | b'#') {
                self.pending.copy_within(1..self.pending_len, 0);
                self.pending_len -= 1;
                continue;
            }
            break;
        }
        // No code here: the number itself begins.
        self.start = false;
        let (pending, len) = (self.pending, self.pending_len);
        self.pending_len = 0;
        pending[..len].iter().any(|&b| self.body(b))
    }

    fn body(&mut self, a: u8) -> bool {
        match a {
            b'0'..=b'9' => self.digits.push(a),
            b'+' if !self.has_digits() => self.plus = true,
            // `#` after a digit ends the dialled number; stray symbols are skipped.
            b'#' => return self.has_digits(),
            _ => {}
        }
        false
    }

    fn finish(self) -> Option<Lenient> {
        // Digits left pending at the end (`*6`) are no code: read them.
        let mut r = self;
        if r.start {
            r.start = false;
            let (pending, len) = (r.pending, r.pending_len);
            for &b in &pending[..len] {
                r.body(b);
            }
        }
        (r.has_digits() && !r.digits.overflowed()).then_some(Lenient {
            plus: r.plus,
            digits: r.digits,
        })
    }
}

/// The part of a caller value that carries the number: a `sip:`/`sips:` URI's user part (its
/// host when it has none), a `tel:` URI's body, or the value itself.
fn user_part(raw: &[u8]) -> &[u8] {
    let raw = raw.trim_ascii();
    let raw = if raw.contains(&b'<') {
        scan::unwrap_angle(raw)
    } else {
        raw
    };
    let sip = scan::strip_prefix_ci(raw, b"sip:").or_else(|| scan::strip_prefix_ci(raw, b"sips:"));
    match sip {
        Some(rest) => match rest.iter().position(|&b| b == b'@') {
            Some(at) => &rest[..at],
            None => Some(scan::host_name(rest))
                .filter(|h| !is_address(h))
                .unwrap_or(b""),
        },
        None => scan::strip_prefix_ci(raw, b"tel:").unwrap_or(raw),
    }
}

/// A host that names a machine, never a number (RFC 3261 §25.1): an IPv4 or IPv6 address,
/// or a hostname, whose top label starts with a letter (`gw1.example.com`, `localhost`).
fn is_address(host: &[u8]) -> bool {
    let is_ipv4 = std::str::from_utf8(host).is_ok_and(|h| h.parse::<std::net::Ipv4Addr>().is_ok());
    let top = host.strip_suffix(b".").unwrap_or(host);
    let top = top.rsplit(|&b| b == b'.').next().unwrap_or(top);
    is_ipv4 || host.first() == Some(&b'[') || top.first().is_some_and(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str) -> Option<(bool, String)> {
        digits(raw.as_bytes()).map(|l| {
            (
                l.plus,
                String::from_utf8_lossy(l.digits.as_slice()).into_owned(),
            )
        })
    }

    #[test]
    fn decorations_are_stripped() {
        let d = |s: &str| Some((false, s.to_string()));
        assert_eq!(read("sip:*672025550100@x"), d("2025550100"));
        assert_eq!(read("sip:*67*822025550100@x"), d("2025550100"));
        assert_eq!(read("sip:#31#2025550100@x"), d("2025550100"));
        assert_eq!(read("sip:%2A672025550100@x"), d("2025550100"));
        assert_eq!(read("sip:2025550100p123@x"), d("2025550100"));
        assert_eq!(read("sip:2025550100W9@x"), d("2025550100"));
        assert_eq!(read("sip:2025550100,123@x"), d("2025550100"));
        assert_eq!(read("sip:2025550100#@x"), d("2025550100"));
        assert_eq!(read("sip:2025550100#55@x"), d("2025550100"));
        assert_eq!(read("sip:2025550100%00@x"), d("2025550100"));
        assert_eq!(read("sip:2025550100%0055@x"), d("2025550100"));
        assert_eq!(read("sip:2025550100;ext=5@x"), d("2025550100"));
        assert_eq!(read("tel:2025550100x55"), d("2025550100"));
        assert_eq!(read("sip:ext2025550100@x"), d("2025550100"));
        assert_eq!(read("<sip:6788675309>"), d("6788675309"));
        assert_eq!(read("sip:6788675309:5060"), d("6788675309"));
        assert_eq!(
            read("sip:.+2025550100p1"),
            Some((true, "2025550100".to_string()))
        );
        assert_eq!(read("sip:10.0.0.1"), None);
        assert_eq!(read("sip:gw1.example.com"), None);
        assert_eq!(read("sip:[2001:db8::1]"), None);
        assert_eq!(
            read("\"A\" <sip:**********2025550100@x>;tag=1"),
            d("2025550100")
        );
        assert_eq!(
            read("sip:+0012025550100@x"),
            Some((true, "0012025550100".to_string()))
        );
        assert_eq!(
            read("sip:*67+12025550100@x"),
            Some((true, "12025550100".to_string()))
        );
        assert_eq!(read("sip:２０２５５５０１００p1@x"), d("2025550100"));
    }

    #[test]
    fn no_digits_no_candidate() {
        assert!(read("sip:alice@example.com").is_none());
        assert!(read("").is_none());
        assert!(read("sip:*67@x").is_none());
        assert!(read("sip:p2@x").is_some());
        assert!(read(&format!("sip:{}@x", "1".repeat(40))).is_none());
        assert!(read(&format!("sip:{}@x", "1*".repeat(40))).is_none());
    }
}
