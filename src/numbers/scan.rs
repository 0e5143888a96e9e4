//! Reading the subscriber out of a raw caller value: URI scheme, user part, percent-escapes,
//! RFC 3966 visual separators and the `phone-context` parameter.
//!
//! Nothing here knows national rules; the output is the digits as presented plus whether they
//! were global (`+`) and under which context. [`super::profile`] resolves them. Nothing here
//! allocates: percent-escapes are decoded byte by byte while scanning.

use super::InvalidReason;

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
    let raw = unwrap_angle(raw.trim_ascii());
    if raw.is_empty() {
        return Err(NotNumber::Anonymous);
    }
    if let Some(rest) = strip_prefix_ci(raw, b"sip:").or_else(|| strip_prefix_ci(raw, b"sips:")) {
        return sip_user(rest);
    }
    if let Some(rest) = strip_prefix_ci(raw, b"tel:") {
        // A tel: URI has no headers, but tolerate a stray `?...` rather than read it.
        let body = split_at_byte(rest, b'?').0;
        return telephone_subscriber(body);
    }
    if has_scheme(raw) {
        return Err(InvalidReason::MalformedUri.into());
    }
    if raw.contains(&b'@') {
        // A scheme-less `user@host`, as some PBXes write it.
        return sip_user(raw);
    }
    telephone_subscriber(raw)
}

/// Scans a blocklist prefix: `+`, digits and visual separators only (no URI, no parameters).
pub(crate) fn prefix_digits(raw: &[u8]) -> Result<(bool, Digits), InvalidReason> {
    let raw = raw.trim_ascii();
    if raw.is_empty() {
        return Err(InvalidReason::Empty);
    }
    number(raw)
}

/// The user part of a `sip:`/`sips:` URI (what follows the scheme).
fn sip_user(rest: &[u8]) -> Result<Subscriber, NotNumber> {
    // `@` cannot appear unescaped in the user part, and headers (`?`) come after the host.
    let before_headers = split_at_byte(rest, b'?').0;
    let Some(at) = before_headers.iter().position(|&b| b == b'@') else {
        // No user part: `sip:host`. Tolerate a number written as the host with a `+`.
        if before_headers.first() == Some(&b'+') {
            return telephone_subscriber(before_headers);
        }
        if eq_ci(host_of(before_headers), ANONYMOUS_HOST) {
            return Err(NotNumber::Anonymous);
        }
        return Err(InvalidReason::Empty.into());
    };
    let (userinfo, host) = (&before_headers[..at], &before_headers[at + 1..]);
    // `user:password@host`: the password is no part of the number.
    let user = split_at_byte(userinfo, b':').0;
    if eq_ci(host_of(host), ANONYMOUS_HOST) {
        return Err(NotNumber::Anonymous);
    }
    if user.is_empty() {
        return Err(InvalidReason::Empty.into());
    }
    telephone_subscriber(user)
}

/// The host name of `host[:port][;params]`.
fn host_of(host: &[u8]) -> &[u8] {
    let end = host
        .iter()
        .position(|&b| matches!(b, b':' | b';' | b'>'))
        .unwrap_or(host.len());
    &host[..end]
}

/// RFC 3966 `telephone-subscriber`: `number *(;param)`, also the user part of a SIP URI.
fn telephone_subscriber(s: &[u8]) -> Result<Subscriber, NotNumber> {
    let mut segments = s.split(|&b| b == b';');
    let num = segments.next().unwrap_or_default().trim_ascii();
    if num.is_empty() {
        return Err(InvalidReason::Empty.into());
    }
    if ANONYMOUS_WORDS.iter().any(|w| eq_ci(num, w)) {
        return Err(NotNumber::Anonymous);
    }
    let (global, digits) = number(num)?;
    let mut context = Context::None;
    for param in segments {
        if let Some(value) = strip_prefix_ci(param.trim_ascii(), b"phone-context=") {
            context = phone_context(value)?;
            break;
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
        Ok((true, d)) if !d.as_slice().is_empty() && !d.overflowed() => Ok(Context::Global(d)),
        _ => Err(InvalidReason::MalformedUri),
    }
}

/// Scans `[+]digits` with visual separators and percent-escapes.
fn number(s: &[u8]) -> Result<(bool, Digits), InvalidReason> {
    let mut plus = false;
    let mut digits = Digits::new();
    let mut seen_any = false;
    for b in Decoded::new(s) {
        let b = b?;
        match b {
            b'0'..=b'9' => {
                digits.push(b);
                seen_any = true;
            }
            b'+' if !plus && !seen_any => {
                plus = true;
                seen_any = true;
            }
            // RFC 3966 visual separators, plus the space written in displayed numbers.
            b'-' | b'.' | b'(' | b')' | b' ' => {}
            _ => return Err(InvalidReason::NotANumber),
        }
    }
    if digits.overflowed() {
        return Err(InvalidReason::TooLong);
    }
    if digits.as_slice().is_empty() {
        return Err(InvalidReason::NotANumber);
    }
    Ok((plus, digits))
}

/// Percent-decoding iterator (RFC 3986 §2.1); a malformed escape yields an error and ends.
struct Decoded<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Decoded<'a> {
    fn new(s: &'a [u8]) -> Self {
        Decoded { s, i: 0 }
    }
}

impl Iterator for Decoded<'_> {
    type Item = Result<u8, InvalidReason>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = *self.s.get(self.i)?;
        if b != b'%' {
            self.i += 1;
            return Some(Ok(b));
        }
        let hex = |j: usize| self.s.get(j).and_then(|&h| (h as char).to_digit(16));
        match (hex(self.i + 1), hex(self.i + 2)) {
            (Some(hi), Some(lo)) => {
                self.i += 3;
                Some(Ok((hi * 16 + lo) as u8))
            }
            _ => {
                self.i = self.s.len();
                Some(Err(InvalidReason::MalformedUri))
            }
        }
    }
}

/// Strips one `<...>` wrapper (a name-addr's URI handed over with its brackets).
fn unwrap_angle(s: &[u8]) -> &[u8] {
    match s.strip_prefix(b"<") {
        Some(inner) => split_at_byte(inner, b'>').0.trim_ascii(),
        None => s,
    }
}

/// `scheme ":"` at the start (RFC 3986 §3.1): a URI of a scheme we do not read.
fn has_scheme(s: &[u8]) -> bool {
    let Some(colon) = s.iter().position(|&b| b == b':') else {
        return false;
    };
    let scheme = &s[..colon];
    scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn split_at_byte(s: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == sep) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
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

    fn decoded(s: &[u8]) -> Result<Vec<u8>, InvalidReason> {
        Decoded::new(s).collect()
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(decoded(b"%2B86"), Ok(b"+86".to_vec()));
        assert_eq!(decoded(b"a%2b"), Ok(b"a+".to_vec()));
        assert_eq!(decoded(b"%2"), Err(InvalidReason::MalformedUri));
        assert_eq!(decoded(b"%zz1"), Err(InvalidReason::MalformedUri));
        assert_eq!(decoded(b"%FF"), Ok(vec![0xff]));
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
