//! Header values: [`Unchecked`] bytes off the wire and the typed values parsed from them.

use super::error::ValueError;
use super::method::Method;
use super::scan::{find_unquoted, is_lws, is_token, parse_u32, trim, CommaSplit, Params};
use super::uri::{split_host_port, Uri};

/// A header value exactly as it arrived, not yet validated. Folded values keep their
/// line breaks (the parsers treat them as whitespace). Turn it into something typed with
/// one of the `parse_*` methods; nothing here trusts the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Unchecked<'a>(pub &'a [u8]);

impl<'a> Unchecked<'a> {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The bytes as text, if they are UTF-8.
    pub fn to_str(&self) -> Result<&'a str, ValueError> {
        std::str::from_utf8(self.0).map_err(|_| ValueError::NotUtf8)
    }

    /// The comma-separated elements (RFC 3261 §7.3.1), not splitting inside quotes or `<>`.
    pub fn split_commas(&self) -> impl Iterator<Item = Unchecked<'a>> + Clone + 'a {
        CommaSplit::new(self.0).map(Unchecked)
    }

    /// A decimal number (Max-Forwards, Content-Length, Expires ...).
    pub fn parse_u32(&self) -> Result<u32, ValueError> {
        let t = trim(self.0);
        if t.is_empty() {
            return Err(ValueError::Empty);
        }
        parse_u32(t).ok_or(ValueError::BadNumber)
    }

    /// A URI.
    pub fn parse_uri(&self) -> Result<Uri<'a>, ValueError> {
        Uri::parse(self.0)
    }

    /// One name-addr or addr-spec value (From, To, P-Asserted-Identity, Route ...).
    pub fn parse_name_addr(&self) -> Result<NameAddr<'a>, ValueError> {
        NameAddr::parse(self.0)
    }

    /// One Via value (a single element, not a comma-separated list).
    pub fn parse_via(&self) -> Result<Via<'a>, ValueError> {
        Via::parse(self.0)
    }

    /// A CSeq value.
    pub fn parse_cseq(&self) -> Result<CSeq<'a>, ValueError> {
        CSeq::parse(self.0)
    }
}

/// `number METHOD` of a CSeq header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number.
    pub seq: u32,
    /// The method.
    pub method: Method,
    /// The method token as written.
    pub method_bytes: &'a [u8],
}

impl<'a> CSeq<'a> {
    /// Parses `number LWS method`.
    pub fn parse(raw: &'a [u8]) -> Result<CSeq<'a>, ValueError> {
        let t = trim(raw);
        if t.is_empty() {
            return Err(ValueError::Empty);
        }
        let split = t
            .iter()
            .position(|&b| is_lws(b))
            .ok_or(ValueError::BadCSeq)?;
        let seq = parse_u32(&t[..split]).ok_or(ValueError::BadCSeq)?;
        let method_bytes = trim(&t[split..]);
        if method_bytes.is_empty() || !method_bytes.iter().all(|&b| is_token(b)) {
            return Err(ValueError::BadCSeq);
        }
        Ok(CSeq {
            seq,
            method: Method::from_bytes(method_bytes),
            method_bytes,
        })
    }
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...;received=...;rport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    raw: &'a [u8],
    head: &'a [u8],
    protocol: &'a [u8],
    version: &'a [u8],
    transport: &'a [u8],
    host: &'a [u8],
    port: Option<u16>,
    params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via element.
    pub fn parse(raw: &'a [u8]) -> Result<Via<'a>, ValueError> {
        let raw = trim(raw);
        if raw.is_empty() {
            return Err(ValueError::Empty);
        }
        let (protocol, rest) = take_token(raw).ok_or(ValueError::BadVia)?;
        let rest = expect_byte(rest, b'/').ok_or(ValueError::BadVia)?;
        let (version, rest) = take_token(rest).ok_or(ValueError::BadVia)?;
        let rest = expect_byte(rest, b'/').ok_or(ValueError::BadVia)?;
        let (transport, rest) = take_token(rest).ok_or(ValueError::BadVia)?;
        if !rest.first().is_some_and(|&b| is_lws(b)) {
            return Err(ValueError::BadVia);
        }
        let rest = trim(rest);
        let (sent_by, params) = match find_unquoted(rest, b';') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let head = trim(&raw[..raw.len() - rest.len() + sent_by.len()]);
        let (host, port) = split_host_port(sent_by).map_err(|_| ValueError::BadVia)?;
        let host_ok = host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
        if !host_ok {
            return Err(ValueError::BadVia);
        }
        Ok(Via {
            raw,
            head,
            protocol,
            version,
            transport,
            host,
            port,
            params: Params::new(params),
        })
    }

    /// The whole element as written.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The element without its parameters: `SIP/2.0/UDP host:port` as written.
    pub fn without_params(&self) -> &'a [u8] {
        self.head
    }

    /// Protocol name (`SIP`).
    pub fn protocol(&self) -> &'a [u8] {
        self.protocol
    }

    /// Protocol version (`2.0`).
    pub fn version(&self) -> &'a [u8] {
        self.version
    }

    /// Transport token (`UDP`, `TCP`, `TLS`, `WS` ...), as written.
    pub fn transport(&self) -> &'a [u8] {
        self.transport
    }

    /// sent-by host (IPv6 references keep their brackets).
    pub fn host(&self) -> &'a [u8] {
        self.host
    }

    /// sent-by port, if written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// All parameters.
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a [u8]> {
        self.params.get("branch").flatten()
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a [u8]> {
        self.params.get("received").flatten()
    }

    /// The `rport` parameter (RFC 3581): `None` absent, `Some(None)` requested (no value),
    /// `Some(Some(port))` filled in. A value that is not a port counts as absent.
    pub fn rport(&self) -> Option<Option<u16>> {
        match self.params.get("rport")? {
            None => Some(None),
            Some(v) => parse_u32(v).and_then(|n| u16::try_from(n).ok()).map(Some),
        }
    }
}

fn take_token(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let s = trim(s);
    let end = s.iter().position(|&b| !is_token(b)).unwrap_or(s.len());
    if end == 0 {
        None
    } else {
        Some((&s[..end], &s[end..]))
    }
}

fn expect_byte(s: &[u8], b: u8) -> Option<&[u8]> {
    match trim(s) {
        [first, rest @ ..] if *first == b => Some(rest),
        _ => None,
    }
}

/// A name-addr (`"Display" <uri>;params`) or addr-spec (`uri;params`) value: From, To,
/// Contact, Route, Record-Route, P-Asserted-Identity, Remote-Party-ID.
///
/// In addr-spec form, everything after the first `;` is a header parameter (RFC 3261
/// §20.10), so `sip:a@b;tag=1` has the tag as a parameter, not in the URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    raw: &'a [u8],
    display_name: Option<&'a [u8]>,
    quoted: bool,
    uri: Uri<'a>,
    bracketed: bool,
    params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one value.
    pub fn parse(raw: &'a [u8]) -> Result<NameAddr<'a>, ValueError> {
        let raw = trim(raw);
        if raw.is_empty() {
            return Err(ValueError::Empty);
        }
        let (display_name, quoted, rest) = if raw[0] == b'"' {
            let close = closing_quote(raw).ok_or(ValueError::Unterminated)?;
            (Some(&raw[1..close]), true, trim(&raw[close + 1..]))
        } else {
            match raw.iter().position(|&b| b == b'<') {
                Some(lt) => {
                    let name = trim(&raw[..lt]);
                    let name = (!name.is_empty()).then_some(name);
                    (name, false, &raw[lt..])
                }
                None => (None, false, raw),
            }
        };
        if let Some(after_lt) = rest.strip_prefix(b"<") {
            let gt = after_lt
                .iter()
                .position(|&b| b == b'>')
                .ok_or(ValueError::Unterminated)?;
            let uri = Uri::parse(&after_lt[..gt])?;
            let after = trim(&after_lt[gt + 1..]);
            let params = match after {
                [] => after,
                [b';', p @ ..] => p,
                _ => return Err(ValueError::BadNameAddr),
            };
            return Ok(NameAddr {
                raw,
                display_name,
                quoted,
                uri,
                bracketed: true,
                params: Params::new(params),
            });
        }
        if display_name.is_some() {
            // A quoted display name must be followed by `<uri>`.
            return Err(ValueError::BadNameAddr);
        }
        let (uri_text, params) = match rest.iter().position(|&b| b == b';') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let uri = Uri::parse(uri_text)?;
        Ok(NameAddr {
            raw,
            display_name: None,
            quoted: false,
            uri,
            bracketed: false,
            params: Params::new(params),
        })
    }

    /// The whole value as written.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The display name without quotes (escapes as written), if any.
    pub fn display_name(&self) -> Option<&'a [u8]> {
        self.display_name
    }

    /// Whether the display name was a quoted string.
    pub fn display_name_quoted(&self) -> bool {
        self.quoted
    }

    /// The URI.
    pub fn uri(&self) -> &Uri<'a> {
        &self.uri
    }

    /// Whether the URI was written in `<...>`.
    pub fn bracketed(&self) -> bool {
        self.bracketed
    }

    /// Header parameters after the URI.
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.params.get("tag").flatten()
    }

    /// Whether the URI has the `lr` parameter (loose routing, Route/Record-Route).
    pub fn lr(&self) -> bool {
        self.uri.params().contains("lr")
    }
}

/// Index of the quote closing the quoted string that starts at `s[0]`.
fn closing_quote(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// A Remote-Party-ID value: a name-addr with `party`, `screen` and `privacy` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemotePartyId<'a>(pub NameAddr<'a>);

impl<'a> RemotePartyId<'a> {
    /// The `party` parameter (`calling`, `called` ...).
    pub fn party(&self) -> Option<&'a [u8]> {
        self.0.params().get_unquoted("party").flatten()
    }

    /// The `screen` parameter: `Some(true)` for `yes`, `Some(false)` for `no`.
    pub fn screened(&self) -> Option<bool> {
        let v = self.0.params().get_unquoted("screen").flatten()?;
        if v.eq_ignore_ascii_case(b"yes") {
            Some(true)
        } else if v.eq_ignore_ascii_case(b"no") {
            Some(false)
        } else {
            None
        }
    }

    /// The `privacy` parameter (`off`, `full`, `name`, `uri` ...).
    pub fn privacy(&self) -> Option<&'a [u8]> {
        self.0.params().get_unquoted("privacy").flatten()
    }

    /// Whether the caller asked to hide their identity (`privacy=full` or `uri`).
    pub fn hides_identity(&self) -> bool {
        self.privacy()
            .is_some_and(|p| p.eq_ignore_ascii_case(b"full") || p.eq_ignore_ascii_case(b"uri"))
    }
}

/// Privacy values requested (RFC 3323, RFC 3325 `id`), merged over all Privacy headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Privacy {
    /// `none`: no privacy requested.
    pub none: bool,
    /// `id`: hide the asserted identity (RFC 3325).
    pub id: bool,
    /// `header`: hide identifying headers.
    pub header: bool,
    /// `session`: hide the media.
    pub session: bool,
    /// `user`: user-level privacy.
    pub user: bool,
    /// `critical`: fail rather than reveal.
    pub critical: bool,
    /// Some other (unknown) value was present.
    pub other: bool,
}

impl Privacy {
    /// Adds the values of one Privacy header (`;`- or `,`-separated, any case).
    pub fn merge(&mut self, raw: &[u8]) {
        for item in raw.split(|&b| b == b';' || b == b',') {
            let v = trim(item);
            if v.is_empty() {
                continue;
            }
            let flag = if v.eq_ignore_ascii_case(b"none") {
                &mut self.none
            } else if v.eq_ignore_ascii_case(b"id") {
                &mut self.id
            } else if v.eq_ignore_ascii_case(b"header") {
                &mut self.header
            } else if v.eq_ignore_ascii_case(b"session") {
                &mut self.session
            } else if v.eq_ignore_ascii_case(b"user") {
                &mut self.user
            } else if v.eq_ignore_ascii_case(b"critical") {
                &mut self.critical
            } else {
                &mut self.other
            };
            *flag = true;
        }
    }

    /// Whether the identity must be withheld from untrusted parties (`id`, `user` or `header`).
    pub fn hides_identity(&self) -> bool {
        self.id || self.user || self.header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn na(s: &str) -> NameAddr<'_> {
        NameAddr::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn name_addr_forms() {
        let a = na(r#""Doe, John" <sip:+8613800000001@ims.example;user=phone>;tag=abc"#);
        assert_eq!(a.display_name(), Some(&b"Doe, John"[..]));
        assert!(a.display_name_quoted());
        assert_eq!(a.uri().user(), Some(&b"+8613800000001"[..]));
        assert_eq!(a.tag(), Some(&b"abc"[..]));
        let b = na("Bob Smith <tel:+15551234567>");
        assert_eq!(b.display_name(), Some(&b"Bob Smith"[..]));
        assert!(!b.display_name_quoted());
        assert_eq!(b.uri().user(), Some(&b"+15551234567"[..]));
        let c = na("sip:alice@a.example;tag=x1");
        assert_eq!(c.display_name(), None);
        assert!(!c.bracketed());
        assert_eq!(c.uri().host(), b"a.example");
        assert_eq!(c.tag(), Some(&b"x1"[..]));
        let d = na("<sip:p1.example.com;lr>");
        assert!(d.lr());
        let e = na(r#""esc \" quote" <sip:a@b>"#);
        assert_eq!(e.display_name(), Some(&br#"esc \" quote"#[..]));
    }

    #[test]
    fn name_addr_errors() {
        assert_eq!(NameAddr::parse(b""), Err(ValueError::Empty));
        assert_eq!(
            NameAddr::parse(b"\"open <sip:a@b>"),
            Err(ValueError::Unterminated)
        );
        assert_eq!(NameAddr::parse(b"<sip:a@b"), Err(ValueError::Unterminated));
        assert_eq!(
            NameAddr::parse(b"\"x\" sip:a@b"),
            Err(ValueError::BadNameAddr)
        );
        assert_eq!(
            NameAddr::parse(b"<sip:a@b> junk"),
            Err(ValueError::BadNameAddr)
        );
    }

    #[test]
    fn via_parts() {
        let v = Via::parse(
            b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport=5062;received=10.0.0.1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.transport(), b"UDP");
        assert_eq!(v.host(), b"192.0.2.1");
        assert_eq!(v.port(), Some(5060));
        assert_eq!(v.branch(), Some(&b"z9hG4bK776"[..]));
        assert_eq!(v.rport(), Some(Some(5062)));
        assert_eq!(v.received(), Some(&b"10.0.0.1"[..]));
        assert_eq!(v.without_params(), b"SIP/2.0/UDP 192.0.2.1:5060");
        let v = Via::parse(b"SIP / 2.0 / TCP [2001:db8::9] ; rport ;branch=z9hG4bKx")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.transport(), b"TCP");
        assert_eq!(v.host(), b"[2001:db8::9]");
        assert_eq!(v.port(), None);
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.branch(), Some(&b"z9hG4bKx"[..]));
        assert_eq!(v.without_params(), b"SIP / 2.0 / TCP [2001:db8::9]");
        let v = Via::parse(b"SIP/2.0/UDP h").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.without_params(), b"SIP/2.0/UDP h");
    }

    #[test]
    fn via_errors() {
        assert_eq!(Via::parse(b""), Err(ValueError::Empty));
        assert_eq!(Via::parse(b"SIP/2.0 host"), Err(ValueError::BadVia));
        assert_eq!(Via::parse(b"SIP/2.0/UDP"), Err(ValueError::BadVia));
        assert_eq!(Via::parse(b"SIP/2.0/UDP :5060"), Err(ValueError::BadVia));
        assert_eq!(
            Via::parse(b"SIP/2.0/UDP host:99999"),
            Err(ValueError::BadVia)
        );
    }

    #[test]
    fn cseq() {
        let c = CSeq::parse(b" 314159   INVITE ").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.seq, 314159);
        assert_eq!(c.method, Method::Invite);
        assert_eq!(CSeq::parse(b"INVITE"), Err(ValueError::BadCSeq));
        assert_eq!(CSeq::parse(b"-1 INVITE"), Err(ValueError::BadCSeq));
        assert_eq!(CSeq::parse(b"99999999999 INVITE"), Err(ValueError::BadCSeq));
        assert_eq!(CSeq::parse(b"1 IN VITE"), Err(ValueError::BadCSeq));
    }

    #[test]
    fn rpid_and_privacy() {
        let r = RemotePartyId(na(
            r#""Alice" <sip:+15551234567@gw.example>;party=calling;screen=yes;privacy=full"#,
        ));
        assert_eq!(r.party(), Some(&b"calling"[..]));
        assert_eq!(r.screened(), Some(true));
        assert!(r.hides_identity());
        let mut p = Privacy::default();
        p.merge(b"id; Header");
        p.merge(b"critical");
        assert!(p.id && p.header && p.critical && !p.none && !p.other);
        assert!(p.hides_identity());
        let mut q = Privacy::default();
        q.merge(b"none");
        assert!(q.none && !q.hides_identity());
    }
}
