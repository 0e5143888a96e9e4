//! Reading the subscriber out of a raw caller value: URI scheme, user part, percent-escapes,
//! RFC 3966 visual separators and the `phone-context` parameter.
//!
//! Nothing here knows national rules; the output is the digits as presented plus whether they
//! were global (`+`) and under which context. [`super::profile`] resolves them. Nothing here
//! allocates: percent-escapes are decoded in place while scanning.

use super::{fold, InvalidReason};

/// Digits kept while scanning. Longer than E.164 so that "too long" is told apart from
/// garbage; anything past this is counted as overflow.
pub(crate) const SCAN_DIGITS: usize = 32;

/// Values that mean the caller withheld the number (compared case-insensitively).
const ANONYMOUS_WORDS: [&[u8]; 6] = [
    b"anonymous",
    b"unknown",
    b"restricted",
    b"private",
    b"withheld",
    b"unavailable",
];

/// RFC 3323 §4.1.1.3: the host of an anonymous URI.
const ANONYMOUS_HOST: &[u8] = b"anonymous.invalid";

/// A small stack buffer of ASCII digits.
#[derive(Clone, Copy)]
pub(crate) struct Digits {
    len: u8,
    overflow: bool,
    buf: [u8; SCAN_DIGITS],
}

impl Digits {
    pub(crate) const fn new() -> Self {
        Digits {
            len: 0,
            overflow: false,
            buf: [0; SCAN_DIGITS],
        }
    }

    /// Builds from parts, concatenated (overflow is recorded, never a panic).
    pub(crate) fn from_parts(parts: &[&[u8]]) -> Self {
        let mut d = Digits::new();
        for part in parts {
            for &b in *part {
                d.push(b);
            }
        }
        d
    }

    /// Appends one digit; past [`SCAN_DIGITS`] the digit is dropped and overflow recorded.
    pub(crate) fn push(&mut self, b: u8) {
        match self.buf.get_mut(self.len as usize) {
            Some(slot) => {
                *slot = b;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// More digits were presented than fit the buffer.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflow
    }
}

/// The `phone-context` a local number was presented under (RFC 3966 §5.1.5).
#[derive(Clone, Copy)]
pub(crate) enum Context {
    /// No `phone-context`: the number is read under the profile's national rules.
    None,
    /// `phone-context=+<digits>`: the digits are prepended to the local number.
    Global(Digits),
    /// `phone-context=<domain>`: a network name, so the profile's national rules apply.
    Domain,
}

/// A subscriber number as presented: digits (separators removed), global or local.
#[derive(Clone, Copy)]
pub(crate) struct Subscriber {
    /// The number started with `+` (or `%2B`).
    pub(crate) global: bool,
    pub(crate) digits: Digits,
    pub(crate) context: Context,
}

/// A caller value that is not a number at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotNumber {
    Anonymous,
    Invalid(InvalidReason),
}

impl From<InvalidReason> for NotNumber {
    fn from(r: InvalidReason) -> Self {
        NotNumber::Invalid(r)
    }
}

/// Reads a raw caller value: a `sip:`/`sips:`/`tel:` URI, optionally in `<...>`, or a bare
/// number (with or without `@host`).
pub(crate) fn subscriber(raw: &[u8]) -> Result<Subscriber, NotNumber> {
    let raw = raw.trim_ascii();
    // The common case: a bare URI, as the SIP layer hands it over (a URI never holds `<`).
    if let Some(read) = uri(raw) {
        return read;
    }
    let raw = unwrap_angle(raw);
    if raw.is_empty() {
        return Err(NotNumber::Anonymous);
    }
    if let Some(read) = uri(raw) {
        return read;
    }
    if has_scheme(raw) {
        return Err(InvalidReason::MalformedUri.into());
    }
    match telephone_subscriber(raw) {
        // A scheme-less `user@host`, as some PBXes write it.
        Err(NotNumber::Invalid(InvalidReason::NotANumber)) if raw.contains(&b'@') => sip_user(raw),
        read => read,
    }
}

/// A `sip:`, `sips:` or `tel:` URI (scheme case-insensitive), or `None` for anything else.
fn uri(raw: &[u8]) -> Option<Result<Subscriber, NotNumber>> {
    if let Some(rest) = strip_prefix_ci(raw, b"sip:").or_else(|| strip_prefix_ci(raw, b"sips:")) {
        return Some(sip_user(rest));
    }
    let rest = strip_prefix_ci(raw, b"tel:")?;
    // A tel: URI has no headers, but tolerate a stray `?...` rather than read it.
    Some(telephone_subscriber(split_at_byte(rest, b'?').0))
}

/// Scans a blocklist prefix: `+`, digits and visual separators only (no URI, no parameters).
pub(crate) fn prefix_digits(raw: &[u8]) -> Result<(bool, Digits), InvalidReason> {
    let raw = raw.trim_ascii();
    if raw.is_empty() {
        return Err(InvalidReason::Empty);
    }
    match number(raw)? {
        (plus, digits, end) if end == raw.len() => Ok((plus, digits)),
        _ => Err(InvalidReason::NotANumber),
    }
}

/// The user part of a `sip:`/`sips:` URI (what follows the scheme).
fn sip_user(rest: &[u8]) -> Result<Subscriber, NotNumber> {
    // One pass: `@` cannot appear unescaped in the user part, headers (`?`) come after the
    // host, and the first `:` before `@` starts a password.
    let (mut at, mut colon, mut end) = (None, None, rest.len());
    for (i, &b) in rest.iter().enumerate() {
        match b {
            b'@' => {
                at = Some(i);
                break;
            }
            b'?' => {
                end = i;
                break;
            }
            b':' if colon.is_none() => colon = Some(i),
            _ => {}
        }
    }
    let Some(at) = at else {
        let host = &rest[..end];
        // No user part: `sip:host`. Tolerate a number written as the host with a `+`.
        if host.first() == Some(&b'+') {
            return telephone_subscriber(host);
        }
        // `sip:6788675309` (Asterisk writes the caller so): a host of digits alone is no
        // hostname or IPv4 address (RFC 3261 §25.1), so it is the number.
        let name = host_name(host);
        if !name.is_empty() && name.iter().all(u8::is_ascii_digit) {
            return telephone_subscriber(name);
        }
        if is_anonymous_host(host) {
            return Err(NotNumber::Anonymous);
        }
        return Err(InvalidReason::Empty.into());
    };
    // `user:password@host`: the password is no part of the number.
    let user = &rest[..colon.unwrap_or(at)];
    if is_anonymous_host(&rest[at + 1..]) {
        // RFC 3323's anonymous host hides nothing when the user part is a number: the
        // number is screened (`sip:+12025550100@anonymous.invalid` must not pass as
        // anonymous); any other user there is anonymous.
        return telephone_subscriber(user).map_err(|_| NotNumber::Anonymous);
    }
    if user.is_empty() {
        return Err(InvalidReason::Empty.into());
    }
    telephone_subscriber(user)
}

/// A host without its `:port` and `;parameters`.
pub(crate) fn host_name(host: &[u8]) -> &[u8] {
    let end = host
        .iter()
        .position(|&b| matches!(b, b':' | b';' | b'?'))
        .unwrap_or(host.len());
    &host[..end]
}

/// `anonymous.invalid` followed by nothing, a port, parameters or headers.
fn is_anonymous_host(host: &[u8]) -> bool {
    strip_prefix_ci(host, ANONYMOUS_HOST)
        .is_some_and(|after| matches!(after.first(), None | Some(b':' | b';' | b'?' | b'>')))
}

/// RFC 3966 `telephone-subscriber`: `number *(;param)`, also the user part of a SIP URI.
fn telephone_subscriber(s: &[u8]) -> Result<Subscriber, NotNumber> {
    match s.first() {
        None | Some(b';') => return Err(InvalidReason::Empty.into()),
        Some(b) if b.is_ascii_alphabetic() => {
            let word = split_at_byte(s, b';').0.trim_ascii();
            if ANONYMOUS_WORDS.iter().any(|w| eq_ci(word, w)) {
                return Err(NotNumber::Anonymous);
            }
            return Err(InvalidReason::NotANumber.into());
        }
        Some(_) => {}
    }
    let (global, digits, end) = number(s)?;
    let mut context = Context::None;
    if let Some(params) = s.get(end + 1..) {
        for param in params.split(|&b| b == b';') {
            if let Some(value) = strip_prefix_ci(param.trim_ascii(), b"phone-context=") {
                context = phone_context(value)?;
                break;
            }
        }
    }
    Ok(Subscriber {
        global,
        digits,
        context,
    })
}

/// The value of `phone-context`: `+digits` (global) or a domain name.
fn phone_context(value: &[u8]) -> Result<Context, InvalidReason> {
    if value.is_empty() {
        return Err(InvalidReason::MalformedUri);
    }
    let starts_global = value.first() == Some(&b'+') || strip_prefix_ci(value, b"%2b").is_some();
    if !starts_global {
        return Ok(Context::Domain);
    }
    match number(value) {
        Ok((true, d, end)) if end == value.len() && !d.overflowed() => Ok(Context::Global(d)),
        _ => Err(InvalidReason::MalformedUri),
    }
}

/// Scans `[+]digits` with visual separators and percent-escapes, up to the first `;` or the
/// end, whose index it returns with the digits. A non-ASCII character (raw UTF-8 or
/// percent-escaped, `%EF%BC%91`) is read as the ASCII it folds to ([`fold`]): `１` is `1`,
/// `٢` is `2`, `＋` is `+`.
fn number(s: &[u8]) -> Result<(bool, Digits, usize), InvalidReason> {
    let mut digits = Digits::new();
    let (mut len, mut plus, mut i) = (0usize, false, 0usize);
    while let Some(&raw) = s.get(i) {
        let b = if raw == b'%' {
            i += 3;
            percent_escape(s, i - 3)?
        } else {
            i += 1;
            raw
        };
        match b {
            b'0'..=b'9' => {
                if let Some(slot) = digits.buf.get_mut(len) {
                    *slot = b;
                    len += 1;
                } else {
                    digits.overflow = true;
                }
            }
            b'+' if len == 0 && !plus => plus = true,
            // RFC 3966 visual separators, plus the space written in displayed numbers.
            b'-' | b'.' | b'(' | b')' | b' ' => {}
            // A raw `;` ends the number (an escaped one is no delimiter).
            b';' if raw == b';' => {
                i -= 1;
                break;
            }
            0x80.. => {
                let c = fold::utf8_char(b, || next_byte(s, &mut i));
                let folded = c.and_then(fold::fold).ok_or(InvalidReason::NotANumber)?;
                for &a in folded.as_slice() {
                    match a {
                        b'0'..=b'9' => {
                            if let Some(slot) = digits.buf.get_mut(len) {
                                *slot = a;
                                len += 1;
                            } else {
                                digits.overflow = true;
                            }
                        }
                        b'+' if len == 0 && !plus => plus = true,
                        b'-' | b'.' | b'(' | b')' | b' ' => {}
                        _ => return Err(InvalidReason::NotANumber),
                    }
                }
            }
            _ => return Err(InvalidReason::NotANumber),
        }
    }
    if digits.overflow {
        return Err(InvalidReason::TooLong);
    }
    if len == 0 {
        return Err(InvalidReason::NotANumber);
    }
    digits.len = len as u8;
    Ok((plus, digits, i))
}

/// The byte at `s[*i]`, raw or percent-decoded, advancing `*i`; `None` at the end or on a
/// broken escape.
pub(crate) fn next_byte(s: &[u8], i: &mut usize) -> Option<u8> {
    let &raw = s.get(*i)?;
    if raw == b'%' {
        let b = percent_escape(s, *i).ok()?;
        *i += 3;
        Some(b)
    } else {
        *i += 1;
        Some(raw)
    }
}

/// Decodes the `%XX` escape at `s[at]` (RFC 3986 §2.1).
fn percent_escape(s: &[u8], at: usize) -> Result<u8, InvalidReason> {
    let hex = |j: usize| s.get(j).and_then(|&h| (h as char).to_digit(16));
    match (hex(at + 1), hex(at + 2)) {
        (Some(hi), Some(lo)) => Ok((hi * 16 + lo) as u8),
        _ => Err(InvalidReason::MalformedUri),
    }
}

/// The URI inside `<...>`, when a name-addr (`"Name" <sip:...>;tag=x`) or a bracketed URI is
/// handed over whole. A URI never holds a raw `<`, so the last one opens it.
pub(crate) fn unwrap_angle(s: &[u8]) -> &[u8] {
    match s.iter().rposition(|&b| b == b'<') {
        Some(open) => split_at_byte(&s[open + 1..], b'>').0.trim_ascii(),
        None => s,
    }
}

/// `scheme ":"` at the start (RFC 3986 §3.1): a URI of a scheme we do not read.
fn has_scheme(s: &[u8]) -> bool {
    if !s.first().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let Some(colon) = s.iter().position(|&b| b == b':') else {
        return false;
    };
    s[..colon]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn split_at_byte(s: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == sep) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

pub(crate) fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn eq_ci(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_escape(b"%2B86", 0), Ok(b'+'));
        assert_eq!(percent_escape(b"a%2b", 1), Ok(b'+'));
        assert_eq!(percent_escape(b"%FF", 0), Ok(0xff));
        assert_eq!(percent_escape(b"%2", 0), Err(InvalidReason::MalformedUri));
        assert_eq!(percent_escape(b"%zz1", 0), Err(InvalidReason::MalformedUri));
        assert_eq!(percent_escape(b"%", 0), Err(InvalidReason::MalformedUri));
    }

    #[test]
    fn numbers_with_escapes_and_separators() {
        let read = |s: &[u8]| number(s).map(|(plus, d, _)| (plus, d.as_slice().to_vec()));
        assert_eq!(
            read(b"%2B1%20(212)%20555-0100"),
            Ok((true, b"12125550100".to_vec()))
        );
        assert_eq!(read(b"(+1) 212"), Ok((true, b"1212".to_vec())));
        assert_eq!(read(b"1+1"), Err(InvalidReason::NotANumber));
        assert_eq!(read(b"12%3"), Err(InvalidReason::MalformedUri));
        assert_eq!(read(b"12%41"), Err(InvalidReason::NotANumber));
        assert_eq!(read(b"12%3B"), Err(InvalidReason::NotANumber));
        assert_eq!(number(b"12-3;ext=4").map(|(_, _, end)| end), Ok(4));
        assert_eq!(number(b"+;").err(), Some(InvalidReason::NotANumber));
    }

    #[test]
    fn digits_overflow_is_recorded() {
        let long = [b'1'; SCAN_DIGITS + 3];
        let d = Digits::from_parts(&[&long]);
        assert!(d.overflowed());
        assert_eq!(d.as_slice().len(), SCAN_DIGITS);
    }

    #[test]
    fn scheme_detection() {
        assert!(has_scheme(b"mailto:a@b"));
        assert!(has_scheme(b"urn:service:sos"));
        assert!(!has_scheme(b"+1 212 555 0100"));
        assert!(!has_scheme(b"1:2"));
    }

    #[test]
    fn context_forms() {
        assert!(
            matches!(phone_context(b"+1-212"), Ok(Context::Global(d)) if d.as_slice() == b"1212")
        );
        assert!(matches!(phone_context(b"%2B86"), Ok(Context::Global(d)) if d.as_slice() == b"86"));
        assert!(matches!(
            phone_context(b"ims.mnc000.mcc460.3gppnetwork.org"),
            Ok(Context::Domain)
        ));
        assert_eq!(phone_context(b"").err(), Some(InvalidReason::MalformedUri));
        assert_eq!(phone_context(b"+").err(), Some(InvalidReason::MalformedUri));
    }
}
