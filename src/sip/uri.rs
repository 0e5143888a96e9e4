//! SIP, SIPS and tel URIs, split into borrowed parts.

use super::error::ValueError;
use super::scan::{parse_u32, trim, Params};

/// A URI scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Anything else (`http:`, `urn:` ...): only [`Uri::raw`] is meaningful.
    Other,
}

/// A URI split into borrowed parts, without copying or unescaping.
///
/// For `sip:`/`sips:`, [`user`](Uri::user) is the user part before `@` (without password)
/// and [`host`](Uri::host) the host (IPv6 references keep their brackets). For `tel:`,
/// [`user`](Uri::user) is the telephone-subscriber number (before any `;`) and the host is
/// empty. Escapes such as `%2B` are left as written; the numbers layer decodes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    raw: &'a [u8],
    scheme: Scheme,
    user: Option<&'a [u8]>,
    host: &'a [u8],
    port: Option<u16>,
    params: Params<'a>,
    headers: &'a [u8],
}

impl<'a> Uri<'a> {
    /// Parses a URI (surrounding whitespace ignored).
    pub fn parse(raw: &'a [u8]) -> Result<Uri<'a>, ValueError> {
        let raw = trim(raw);
        if raw.is_empty() {
            return Err(ValueError::Empty);
        }
        let colon = raw
            .iter()
            .position(|&b| b == b':')
            .ok_or(ValueError::BadUri)?;
        let scheme_text = &raw[..colon];
        let valid_scheme = scheme_text.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme_text
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(ValueError::BadUri);
        }
        // No whitespace or control characters (a branch-free fold the compiler vectorises).
        if raw.iter().fold(false, |bad, &b| bad | (b <= b' ') | (b == 0x7f)) {
            return Err(ValueError::BadUri);
        }
        let scheme = if scheme_text.eq_ignore_ascii_case(b"sip") {
            Scheme::Sip
        } else if scheme_text.eq_ignore_ascii_case(b"sips") {
            Scheme::Sips
        } else if scheme_text.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        let rest = &raw[colon + 1..];
        let mut uri = Uri {
            raw,
            scheme,
            user: None,
            host: &rest[..0],
            port: None,
            params: Params::default(),
            headers: &rest[..0],
        };
        match scheme {
            Scheme::Other => Ok(uri),
            Scheme::Tel => {
                let (number, params) = split_at_byte(rest, b';');
                if number.is_empty() {
                    return Err(ValueError::BadUri);
                }
                uri.user = Some(number);
                uri.params = Params::new(params);
                Ok(uri)
            }
            Scheme::Sip | Scheme::Sips => {
                let (before_headers, headers) = split_at_byte(rest, b'?');
                uri.headers = headers;
                let host_part = match memchr::memrchr(b'@', before_headers) {
                    Some(at) => {
                        let userinfo = &before_headers[..at];
                        let user = match userinfo.iter().position(|&b| b == b':') {
                            Some(c) => &userinfo[..c],
                            None => userinfo,
                        };
                        uri.user = Some(user);
                        &before_headers[at + 1..]
                    }
                    None => before_headers,
                };
                let (hostport, params) = split_at_byte(host_part, b';');
                uri.params = Params::new(params);
                let (host, port) = split_host_port(hostport)?;
                uri.host = host;
                uri.port = port;
                Ok(uri)
            }
        }
    }

    /// The whole URI as written.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The user part (sip/sips) or the number (tel), as written.
    pub fn user(&self) -> Option<&'a [u8]> {
        self.user
    }

    /// The host (empty for tel and other schemes).
    pub fn host(&self) -> &'a [u8] {
        self.host
    }

    /// The port, if one is written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// URI parameters (`;user=phone;lr`...; for tel, `;phone-context=`...).
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// URI headers after `?`, raw.
    pub fn headers(&self) -> &'a [u8] {
        self.headers
    }
}

/// Splits at the first `sep`: (before, after) with `sep` dropped; after is empty if absent.
fn split_at_byte(s: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match memchr::memchr(sep, s) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &s[s.len()..]),
    }
}

/// Splits `host[:port]` (IPv6 references in brackets). Rejects an empty host or a port that
/// is not a 16-bit number.
pub(crate) fn split_host_port(s: &[u8]) -> Result<(&[u8], Option<u16>), ValueError> {
    let s = trim(s);
    let (host, port_text) = if s.first() == Some(&b'[') {
        let close = s
            .iter()
            .position(|&b| b == b']')
            .ok_or(ValueError::BadUri)?;
        let after = &s[close + 1..];
        match after {
            [] => (&s[..=close], None),
            [b':', port @ ..] => (&s[..=close], Some(port)),
            _ => return Err(ValueError::BadUri),
        }
    } else {
        match s.iter().position(|&b| b == b':') {
            Some(c) => (&s[..c], Some(&s[c + 1..])),
            None => (s, None),
        }
    };
    let host = trim(host);
    if host.is_empty() {
        return Err(ValueError::BadUri);
    }
    let port = match port_text {
        None => None,
        Some(p) => Some(
            parse_u32(trim(p))
                .and_then(|n| u16::try_from(n).ok())
                .ok_or(ValueError::BadUri)?,
        ),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse(b"sip:+8613800000001;npdi@Example.COM:5061;user=phone;lr?subject=x")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.scheme(), Scheme::Sip);
        assert_eq!(u.user(), Some(&b"+8613800000001;npdi"[..]));
        assert_eq!(u.host(), b"Example.COM");
        assert_eq!(u.port(), Some(5061));
        assert_eq!(u.params().get("user"), Some(Some(&b"phone"[..])));
        assert!(u.params().contains("lr"));
        assert_eq!(u.headers(), b"subject=x");
    }

    #[test]
    fn password_ipv6_and_no_user() {
        let u =
            Uri::parse(b"sips:alice:secret@[2001:db8::1]:5061").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.scheme(), Scheme::Sips);
        assert_eq!(u.user(), Some(&b"alice"[..]));
        assert_eq!(u.host(), b"[2001:db8::1]");
        assert_eq!(u.port(), Some(5061));
        let u = Uri::parse(b"SIP:proxy.example.net;lr").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.user(), None);
        assert_eq!(u.host(), b"proxy.example.net");
        assert!(u.params().contains("lr"));
    }

    #[test]
    fn tel_uri() {
        let u = Uri::parse(b"tel:+1-201-555-0123;phone-context=example.com")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.scheme(), Scheme::Tel);
        assert_eq!(u.user(), Some(&b"+1-201-555-0123"[..]));
        assert_eq!(u.host(), b"");
        assert!(u.params().contains("phone-context"));
    }

    #[test]
    fn bad_uris() {
        assert_eq!(Uri::parse(b""), Err(ValueError::Empty));
        assert_eq!(Uri::parse(b"no-scheme"), Err(ValueError::BadUri));
        assert_eq!(Uri::parse(b"sip:@"), Err(ValueError::BadUri));
        assert_eq!(Uri::parse(b"sip:a@b:99999"), Err(ValueError::BadUri));
        assert_eq!(Uri::parse(b"sip:a b@c"), Err(ValueError::BadUri));
        assert_eq!(Uri::parse(b"tel:"), Err(ValueError::BadUri));
        assert_eq!(Uri::parse(b"1sip:a@b"), Err(ValueError::BadUri));
        assert!(Uri::parse(b"https://x.example/r").is_ok());
    }
}
