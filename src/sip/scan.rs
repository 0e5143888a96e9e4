//! Byte-level helpers shared by the value parsers: linear whitespace, list splitting that
//! respects quotes and angle brackets, `;name=value` parameters.

/// Linear whitespace, including the CR/LF of folded (continuation) lines, which stay in
/// header values because the view never copies them out.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A `token` character (RFC 3261 §25.1).
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Lookup table for [`is_token`]: alphanumerics and `-.!%*_+`'~`.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

/// Strips linear whitespace from both ends.
#[inline]
pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_lws(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_lws(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Finds the first `sep` that is outside a quoted string and outside `<...>`.
///
/// Jumps between interesting bytes with `memchr` rather than walking every byte.
pub(crate) fn find_unquoted(s: &[u8], sep: u8) -> Option<usize> {
    let mut i = 0;
    loop {
        i += memchr::memchr3(sep, b'"', b'<', s.get(i..)?)?;
        match s[i] {
            b'"' => {
                // Skip the quoted string, honouring backslash escapes.
                i += 1;
                loop {
                    i += memchr::memchr2(b'"', b'\\', s.get(i..)?)?;
                    if s[i] == b'\\' {
                        i += 2;
                    } else {
                        i += 1;
                        break;
                    }
                }
            }
            b'<' if sep != b'<' => {
                i += 1;
                i += memchr::memchr(b'>', s.get(i..)?)? + 1;
            }
            _ => return Some(i),
        }
    }
}

/// Iterator over the comma-separated elements of a header value (RFC 3261 §7.3.1), each
/// trimmed, empty elements skipped. Commas inside quoted strings and `<...>` do not split.
#[derive(Debug, Clone)]
pub(crate) struct CommaSplit<'a> {
    rest: &'a [u8],
}

impl<'a> CommaSplit<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        CommaSplit { rest: s }
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (item, rest) = match find_unquoted(self.rest, b',') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &self.rest[..0]),
            };
            self.rest = rest;
            let item = trim(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// Removes surrounding double quotes, if any (escapes are left as they are).
pub(crate) fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

/// Parses a decimal number of at most 10 digits without sign or whitespace.
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    u32::try_from(n).ok()
}

/// `;name[=value]` parameters following a URI, a Via or a name-addr, kept raw.
///
/// Names compare case-insensitively; values are returned as written (quoted values keep
/// their quotes; use [`Params::get_unquoted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a [u8],
}

impl<'a> Params<'a> {
    /// Wraps raw parameter text, with or without its leading `;`.
    pub fn new(raw: &'a [u8]) -> Self {
        Params { raw }
    }

    /// The raw text as written.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Iterates `(name, value)` pairs; `value` is `None` for a bare flag like `lr`.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter { rest: self.raw }
    }

    /// Looks a parameter up by name (case-insensitive): `None` if absent, `Some(None)` for a
    /// flag without value, `Some(Some(v))` otherwise.
    pub fn get(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Like [`get`](Params::get) but strips surrounding quotes from the value.
    pub fn get_unquoted(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.get(name).map(|v| v.map(unquote))
    }

    /// Whether the parameter is present (with or without a value).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Iterator over [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (item, rest) = match find_unquoted(self.rest, b';') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &self.rest[..0]),
            };
            self.rest = rest;
            let item = trim(item);
            if item.is_empty() {
                continue;
            }
            return Some(match item.iter().position(|&b| b == b'=') {
                Some(eq) => (trim(&item[..eq]), Some(trim(&item[eq + 1..]))),
                None => (item, None),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        let v: Vec<&[u8]> =
            CommaSplit::new(br#""Doe, John" <sip:a@b;x=1,2>, <tel:+1>;p="a,b" ,, sip:c@d"#)
                .collect();
        assert_eq!(
            v,
            vec![
                &br#""Doe, John" <sip:a@b;x=1,2>"#[..],
                &br#"<tel:+1>;p="a,b""#[..],
                &b"sip:c@d"[..]
            ]
        );
    }

    #[test]
    fn find_unquoted_edges() {
        assert_eq!(find_unquoted(b"a,b", b','), Some(1));
        assert_eq!(find_unquoted(b"\"a,b\",c", b','), Some(5));
        assert_eq!(find_unquoted(b"<a,b>,c", b','), Some(5));
        assert_eq!(find_unquoted(b"\"a,b", b','), None);
        assert_eq!(find_unquoted(b"<a,b", b','), None);
        assert_eq!(find_unquoted(b"\"a\\", b','), None);
        assert_eq!(find_unquoted(b"\"a\\\"\",x", b','), Some(5));
        assert_eq!(find_unquoted(b"", b','), None);
        assert_eq!(find_unquoted(b"x;y", b';'), Some(1));
    }

    #[test]
    fn escaped_quote_does_not_close() {
        let v: Vec<&[u8]> = CommaSplit::new(br#""a\",b" <sip:x@y>, <sip:z@w>"#).collect();
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn params_lookup() {
        let p = Params::new(b";branch=z9hG4bK1; rport ;received=1.2.3.4;text=\"a;b\"");
        assert_eq!(p.get("BRANCH"), Some(Some(&b"z9hG4bK1"[..])));
        assert_eq!(p.get("rport"), Some(None));
        assert_eq!(p.get("missing"), None);
        assert_eq!(p.get_unquoted("text"), Some(Some(&b"a;b"[..])));
        assert_eq!(p.iter().count(), 4);
    }

    #[test]
    fn trim_and_numbers() {
        assert_eq!(trim(b" \r\n\tx y \r\n"), b"x y");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(parse_u32(b"70"), Some(70));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
    }
}
