//! The message view: one scan over the bytes builds a start line and a header index.

use bytes::Bytes;

use super::error::{ParseError, ValueError};
use super::header::HeaderName;
use super::limits::Limits;
use super::method::Method;
use super::scan::{find_unquoted, is_token, parse_u32, trim, CommaSplit};
use super::value::{CSeq, NameAddr, Privacy, RemotePartyId, Unchecked, Via};

/// A byte range into the message buffer (u32 keeps the index small; messages are capped
/// far below 4 GiB by [`Limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        // Lossless: parse() rejects messages over Limits::max_message_size, and the
        // constructor clamps anything that would not fit.
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One entry of the header index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderEntry {
    pub(crate) kind: HeaderName,
    pub(crate) name: Span,
    pub(crate) value: Span,
    /// The whole field, from the name to the end of the value (before the line break).
    pub(crate) line: Span,
}

/// The start line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartLine {
    Request {
        method: Method,
        method_span: Span,
        uri: Span,
    },
    Response {
        status: u16,
        reason: Span,
    },
}

/// A borrowed header field: its kind, name as written and [`Unchecked`] value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The recognised kind (compact and any-case names resolved).
    pub kind: HeaderName,
    /// The name as written.
    pub name: &'a [u8],
    /// The value as written (folded lines included), trimmed.
    pub value: Unchecked<'a>,
}

/// A parsed SIP message: the original [`Bytes`] plus an index of where everything is.
///
/// Parsing validates only the framing: start line, header lines, Content-Length, limits.
/// Header values are read on demand by the typed accessors, which return
/// [`ValueError`] for a value that does not parse, so one bad header costs nothing unless
/// someone asks for it.
#[derive(Debug, Clone)]
pub struct SipMessage {
    buf: Bytes,
    start: StartLine,
    /// Where the start line ends (before its line break).
    start_line: Span,
    headers: Vec<HeaderEntry>,
    body: Span,
    content_length: Option<usize>,
    via_count: usize,
    /// Whether any Proxy-Require line is present (most requests have none: the check then
    /// costs nothing).
    has_proxy_require: bool,
    /// The first of the single-value headers found on a second header line (see
    /// [`SipMessage::repeated_singleton`]).
    repeated: Option<HeaderName>,
}

impl SipMessage {
    /// Parses one message (a datagram, or one message framed off a stream by
    /// [`framing::message_len`](super::framing::message_len)).
    ///
    /// Leading CRLFs are skipped (RFC 3261 §7.5). Lines may end in CRLF or bare LF. With
    /// Content-Length the body is that many bytes (extra bytes are ignored, fewer is
    /// [`ParseError::BodyTruncated`]); without it the body is the rest of the buffer.
    pub fn parse(buf: Bytes, limits: &Limits) -> Result<SipMessage, ParseError> {
        if buf.len() > limits.max_message_size || buf.len() > u32::MAX as usize {
            return Err(ParseError::TooLarge {
                len: buf.len(),
                max: limits.max_message_size,
            });
        }
        let b: &[u8] = &buf;
        let mut pos = b
            .iter()
            .position(|&c| c != b'\r' && c != b'\n')
            .ok_or(ParseError::Empty)?;

        // Start line.
        let (line_end, next) = next_line(b, pos).ok_or(ParseError::Truncated)?;
        if line_end - pos > limits.max_header_line {
            return Err(ParseError::LineTooLong {
                max: limits.max_header_line,
            });
        }
        let start = parse_start_line(b, pos, line_end)?;
        let start_line = Span::new(pos, line_end);
        pos = next;

        // Header fields.
        let mut headers: Vec<HeaderEntry> = Vec::with_capacity(limits.max_headers.min(24));
        let mut line_no = 1;
        let body_start = loop {
            line_no += 1;
            let (end, next) = next_line(b, pos).ok_or(ParseError::Truncated)?;
            if end == pos {
                break next;
            }
            if end - pos > limits.max_header_line {
                return Err(ParseError::LineTooLong {
                    max: limits.max_header_line,
                });
            }
            if b[pos] == b' ' || b[pos] == b'\t' {
                // Continuation of the previous field (folding, RFC 3261 §7.3.1).
                let last = headers
                    .last_mut()
                    .ok_or(ParseError::BadHeader { line: line_no })?;
                let value_end = trim_end(b, last.value.start as usize, end);
                if value_end > last.value.end as usize {
                    if last.value.start == last.value.end {
                        // The value started on this continuation line.
                        let first = skip_space(b, pos, end);
                        last.value.start = Span::new(first, first).start;
                    }
                    last.value.end = Span::new(value_end, value_end).end;
                }
                last.line.end = last.value.end.max(last.line.end);
                if last.line.range().len() > limits.max_header_line {
                    return Err(ParseError::LineTooLong {
                        max: limits.max_header_line,
                    });
                }
                pos = next;
                continue;
            }
            if headers.len() == limits.max_headers {
                return Err(ParseError::TooManyHeaders {
                    max: limits.max_headers,
                });
            }
            // field-name = token, then optional whitespace, then ':' (RFC 3261 HCOLON).
            let name_end = pos
                + b[pos..end]
                    .iter()
                    .position(|&c| !is_token(c))
                    .unwrap_or(end - pos);
            let colon = skip_space(b, name_end, end);
            if name_end == pos || b.get(colon) != Some(&b':') || colon >= end {
                return Err(ParseError::BadHeader { line: line_no });
            }
            let name = &b[pos..name_end];
            let value_start = skip_space(b, colon + 1, end);
            let value_end = trim_end(b, value_start, end);
            headers.push(HeaderEntry {
                kind: HeaderName::from_bytes(name),
                name: Span::new(pos, name_end),
                value: Span::new(value_start, value_end),
                line: Span::new(pos, value_end.max(colon + 1)),
            });
            pos = next;
        };

        // Limits that need the whole index, and Content-Length framing.
        let mut via_count = 0;
        let mut has_proxy_require = false;
        let mut content_length: Option<usize> = None;
        let mut seen = Singletons::default();
        let mut repeated = None;
        for h in &headers {
            if repeated.is_none()
                && (seen.repeats(h.kind)
                    || matches!(h.kind, HeaderName::From | HeaderName::To)
                        && find_unquoted(&b[h.value.range()], b',').is_some())
            {
                repeated = Some(h.kind);
            }
            match h.kind {
                HeaderName::Via => {
                    via_count += CommaSplit::new(&b[h.value.range()]).count();
                    if via_count > limits.max_vias {
                        return Err(ParseError::TooManyVias {
                            max: limits.max_vias,
                        });
                    }
                }
                HeaderName::ProxyRequire => has_proxy_require = true,
                HeaderName::ContentLength => {
                    let n = parse_u32(trim(&b[h.value.range()]))
                        .ok_or(ParseError::BadContentLength)? as usize;
                    if content_length.is_some_and(|prev| prev != n) {
                        return Err(ParseError::BadContentLength);
                    }
                    content_length = Some(n);
                }
                _ => {}
            }
        }
        let available = b.len() - body_start;
        let body = match content_length {
            Some(n) if n > available => {
                return Err(ParseError::BodyTruncated {
                    expected: n,
                    got: available,
                })
            }
            Some(n) => Span::new(body_start, body_start + n),
            None => Span::new(body_start, b.len()),
        };
        Ok(SipMessage {
            buf,
            start,
            start_line,
            headers,
            body,
            content_length,
            via_count,
            has_proxy_require,
            repeated,
        })
    }

    // ----- whole message ---------------------------------------------------------------

    /// The buffer the message was parsed from (cheap clone).
    pub fn bytes(&self) -> &Bytes {
        &self.buf
    }

    /// The message bytes, from the start line to the end of the body (leading CRLFs and
    /// bytes past Content-Length excluded).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start_line.start as usize..self.body.end as usize]
    }

    pub(crate) fn buf(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn entries(&self) -> &[HeaderEntry] {
        &self.headers
    }

    pub(crate) fn start_line_span(&self) -> Span {
        self.start_line
    }

    pub(crate) fn body_span(&self) -> Span {
        self.body
    }

    pub(crate) fn request_uri_span(&self) -> Option<Span> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    fn slice(&self, s: Span) -> &[u8] {
        &self.buf[s.range()]
    }

    // ----- start line ------------------------------------------------------------------

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The method of a request (`None` for a response).
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The method token as written (useful for [`Method::Other`]).
    pub fn method_bytes(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Request { method_span, .. } => Some(self.slice(method_span)),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI, unchecked (`None` for a response). Parse it with
    /// [`Unchecked::parse_uri`] for the user part and host.
    pub fn request_uri(&self) -> Option<Unchecked<'_>> {
        self.request_uri_span().map(|s| Unchecked(self.slice(s)))
    }

    /// The status code of a response (`None` for a request).
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response.
    pub fn reason_phrase(&self) -> Option<Unchecked<'_>> {
        match self.start {
            StartLine::Response { reason, .. } => Some(Unchecked(self.slice(reason))),
            StartLine::Request { .. } => None,
        }
    }

    // ----- generic header access -------------------------------------------------------

    /// All header fields in order.
    pub fn headers_all(&self) -> impl Iterator<Item = Header<'_>> + '_ {
        self.headers.iter().map(|h| self.header_at(h))
    }

    fn header_at(&self, h: &HeaderEntry) -> Header<'_> {
        Header {
            kind: h.kind,
            name: self.slice(h.name),
            value: Unchecked(self.slice(h.value)),
        }
    }

    /// Values of every field of one kind, in order (one per header line, not split at
    /// commas; use [`Unchecked::split_commas`] for list headers).
    pub fn headers_of(&self, kind: HeaderName) -> impl Iterator<Item = Unchecked<'_>> + Clone + '_ {
        self.headers
            .iter()
            .filter(move |h| h.kind == kind)
            .map(|h| Unchecked(self.slice(h.value)))
    }

    /// Values of every field with this name (full or compact, any case), in order.
    pub fn headers<'s>(&'s self, name: &'s str) -> impl Iterator<Item = Unchecked<'s>> + 's {
        let kind = HeaderName::from_bytes(name.as_bytes());
        self.headers
            .iter()
            .filter(move |h| {
                h.kind == kind
                    && (kind != HeaderName::Other
                        || self.slice(h.name).eq_ignore_ascii_case(name.as_bytes()))
            })
            .map(|h| Unchecked(self.slice(h.value)))
    }

    /// The first field with this name (full or compact, any case).
    pub fn header(&self, name: &str) -> Option<Unchecked<'_>> {
        let kind = HeaderName::from_bytes(name.as_bytes());
        self.headers
            .iter()
            .find(|h| {
                h.kind == kind
                    && (kind != HeaderName::Other
                        || self.slice(h.name).eq_ignore_ascii_case(name.as_bytes()))
            })
            .map(|h| Unchecked(self.slice(h.value)))
    }

    fn first_of(&self, kind: HeaderName) -> Option<Unchecked<'_>> {
        self.headers_of(kind).next()
    }

    fn list_of(&self, kind: HeaderName) -> impl Iterator<Item = Unchecked<'_>> + Clone + '_ {
        self.headers_of(kind).flat_map(|v| v.split_commas())
    }

    // ----- typed accessors -------------------------------------------------------------

    /// Call-ID, unchecked (`None` if missing).
    pub fn call_id(&self) -> Option<Unchecked<'_>> {
        self.first_of(HeaderName::CallId)
    }

    /// CSeq (`Ok(None)` if missing).
    pub fn cseq(&self) -> Result<Option<CSeq<'_>>, ValueError> {
        self.first_of(HeaderName::CSeq)
            .map(|v| v.parse_cseq())
            .transpose()
    }

    /// Max-Forwards (`Ok(None)` if missing).
    pub fn max_forwards(&self) -> Result<Option<u32>, ValueError> {
        self.first_of(HeaderName::MaxForwards)
            .map(|v| v.parse_u32())
            .transpose()
    }

    /// Every Via value in order, across header lines and comma-separated values.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ValueError>> + Clone + '_ {
        self.list_of(HeaderName::Via).map(|v| v.parse_via())
    }

    /// Number of Via values (counted at parse time).
    pub fn via_count(&self) -> usize {
        self.via_count
    }

    /// The top (first) Via (`Ok(None)` if there is none).
    pub fn top_via(&self) -> Result<Option<Via<'_>>, ValueError> {
        self.vias().next().transpose()
    }

    /// From (`Ok(None)` if missing).
    pub fn from(&self) -> Result<Option<NameAddr<'_>>, ValueError> {
        self.first_of(HeaderName::From)
            .map(|v| v.parse_name_addr())
            .transpose()
    }

    /// To (`Ok(None)` if missing).
    pub fn to(&self) -> Result<Option<NameAddr<'_>>, ValueError> {
        self.first_of(HeaderName::To)
            .map(|v| v.parse_name_addr())
            .transpose()
    }

    /// Every P-Asserted-Identity value (sip, sips and tel), across header lines and
    /// comma-separated values, in order.
    pub fn p_asserted_identities(
        &self,
    ) -> impl Iterator<Item = Result<NameAddr<'_>, ValueError>> + Clone + '_ {
        self.list_of(HeaderName::PAssertedIdentity)
            .map(|v| v.parse_name_addr())
    }

    /// Every Remote-Party-ID value, in order.
    pub fn remote_party_ids(
        &self,
    ) -> impl Iterator<Item = Result<RemotePartyId<'_>, ValueError>> + Clone + '_ {
        self.list_of(HeaderName::RemotePartyId)
            .map(|v| v.parse_name_addr().map(RemotePartyId))
    }

    /// The Privacy values of all Privacy headers merged (`None` if there is no Privacy
    /// header).
    pub fn privacy(&self) -> Option<Privacy> {
        let mut values = self.headers_of(HeaderName::Privacy).peekable();
        values.peek()?;
        let mut p = Privacy::default();
        for v in values {
            p.merge(v.as_bytes());
        }
        Some(p)
    }

    /// Every Route value, in order.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ValueError>> + Clone + '_ {
        self.list_of(HeaderName::Route).map(|v| v.parse_name_addr())
    }

    /// Every Record-Route value, in order.
    pub fn record_routes(
        &self,
    ) -> impl Iterator<Item = Result<NameAddr<'_>, ValueError>> + Clone + '_ {
        self.list_of(HeaderName::RecordRoute)
            .map(|v| v.parse_name_addr())
    }

    /// From, To, Call-ID, CSeq, Max-Forwards or Content-Length when one of them appears on
    /// more than one header line (full and compact names alike: `f:` then `From:` is two
    /// Froms, `l:` then `Content-Length:` two Content-Lengths, even with equal values), or a
    /// From or To line holds a comma-separated second value (outside quotes and `<...>`),
    /// else `None`; the first repeat in message order. None of the six is a list header, so
    /// a repeat is never legitimate (RFC 3261 §7.3.1, RFC 4475 §3.3.8), and for the identity
    /// headers it is an attack: a proxy that reads the first From but forwards both lets the
    /// switch believe the other. A proxy answers such a request 400. Found during parsing.
    pub fn repeated_singleton(&self) -> Option<HeaderName> {
        self.repeated
    }

    /// The option tags of every Proxy-Require line (RFC 3261 §20.29), split at commas and
    /// trimmed, empty items skipped; in message order. Each is a token in a well-formed
    /// request; the caller checks.
    pub fn proxy_require(&self) -> impl Iterator<Item = Unchecked<'_>> + Clone + '_ {
        let headers = if self.has_proxy_require {
            &self.headers[..]
        } else {
            &[]
        };
        headers
            .iter()
            .filter(|h| h.kind == HeaderName::ProxyRequire)
            .flat_map(|h| Unchecked(self.slice(h.value)).split_commas())
            .map(|v| Unchecked(trim(v.as_bytes())))
            .filter(|v| !v.as_bytes().is_empty())
    }

    /// The first header a request (or response) must carry but lacks (RFC 3261 §8.1.1:
    /// Via, From, To, Call-ID, CSeq; Max-Forwards is not required here because a proxy
    /// adds it), or `None` if all are present. A proxy answers such a request 400.
    pub fn missing_mandatory(&self) -> Option<HeaderName> {
        const REQUIRED: [HeaderName; 5] = [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ];
        REQUIRED
            .into_iter()
            .find(|&k| !self.headers.iter().any(|h| h.kind == k))
    }

    /// Whether the CSeq method equals the request method (RFC 4475 §3.1.2.15); `false`
    /// for a request with no or an unparsable CSeq, `true` for a response.
    pub fn cseq_matches_method(&self) -> bool {
        match self.method_bytes() {
            None => true,
            Some(m) => matches!(self.cseq(), Ok(Some(c)) if c.method_bytes == m),
        }
    }

    /// The Content-Length header's value (validated at parse time), if present.
    pub fn content_length(&self) -> Option<usize> {
        self.content_length
    }

    /// The body (zero-copy slice of the buffer).
    pub fn body(&self) -> Bytes {
        self.buf.slice(self.body.range())
    }

    /// The body as a byte slice.
    pub fn body_bytes(&self) -> &[u8] {
        self.slice(self.body)
    }
}

/// Which of the headers that must appear at most once have been seen.
#[derive(Default)]
struct Singletons {
    from: bool,
    to: bool,
    call_id: bool,
    cseq: bool,
    max_forwards: bool,
    content_length: bool,
}

impl Singletons {
    /// Notes one header line of `kind`; whether it is a second From, To, Call-ID, CSeq,
    /// Max-Forwards or Content-Length.
    #[inline]
    fn repeats(&mut self, kind: HeaderName) -> bool {
        let seen = match kind {
            HeaderName::From => &mut self.from,
            HeaderName::To => &mut self.to,
            HeaderName::CallId => &mut self.call_id,
            HeaderName::CSeq => &mut self.cseq,
            HeaderName::MaxForwards => &mut self.max_forwards,
            HeaderName::ContentLength => &mut self.content_length,
            _ => return false,
        };
        std::mem::replace(seen, true)
    }
}

/// Finds the end of the line starting at `pos`: (index of the line break, index after it).
/// Returns `None` if there is no line break (incomplete message).
#[inline]
fn next_line(b: &[u8], pos: usize) -> Option<(usize, usize)> {
    let lf = pos + memchr::memchr(b'\n', b.get(pos..)?)?;
    let end = if lf > pos && b[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    Some((end, lf + 1))
}

#[inline]
fn is_space(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Index of the first byte in `b[start..end]` that is not a space or tab (or `end`).
#[inline]
fn skip_space(b: &[u8], start: usize, end: usize) -> usize {
    start
        + b[start..end]
            .iter()
            .position(|&c| !is_space(c))
            .unwrap_or(end - start)
}

/// Index after the last byte in `b[start..end]` that is not linear whitespace (or `start`).
#[inline]
fn trim_end(b: &[u8], start: usize, mut end: usize) -> usize {
    // CR and LF count too: a whitespace-only continuation line must not leave the line
    // break before it inside the value (found by fuzzing).
    while end > start && matches!(b[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        end -= 1;
    }
    end
}

fn is_sip_version(s: &[u8]) -> bool {
    s.eq_ignore_ascii_case(b"SIP/2.0")
}

fn looks_like_version(s: &[u8]) -> bool {
    s.len() > 4 && s[..4].eq_ignore_ascii_case(b"SIP/")
}

fn parse_start_line(b: &[u8], start: usize, end: usize) -> Result<StartLine, ParseError> {
    let line = &b[start..end];
    let sp1 = line
        .iter()
        .position(|&c| c == b' ')
        .ok_or(ParseError::BadStartLine)?;
    let first = &line[..sp1];
    if looks_like_version(first) {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        if !is_sip_version(first) {
            return Err(ParseError::UnsupportedVersion);
        }
        let rest = &line[sp1 + 1..];
        let code = rest.get(..3).ok_or(ParseError::BadStatusCode)?;
        if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&c| c != b' ') {
            return Err(ParseError::BadStatusCode);
        }
        let status = u16::from(code[0] - b'0') * 100
            + u16::from(code[1] - b'0') * 10
            + u16::from(code[2] - b'0');
        if !(100..=699).contains(&status) {
            return Err(ParseError::BadStatusCode);
        }
        let reason_start = (start + sp1 + 1 + 4).min(end);
        return Ok(StartLine::Response {
            status,
            reason: Span::new(reason_start, end),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version
    if first.is_empty() || !first.iter().all(|&c| is_token(c)) {
        return Err(ParseError::BadMethod);
    }
    let rest = &line[sp1 + 1..];
    let sp2 = rest
        .iter()
        .position(|&c| c == b' ')
        .ok_or(ParseError::BadStartLine)?;
    let uri = &rest[..sp2];
    let version = &rest[sp2 + 1..];
    if version.contains(&b' ') {
        // A space inside the Request-URI (RFC 4475 §3.1.2.11) or trailing garbage.
        return Err(ParseError::BadRequestUri);
    }
    if !is_sip_version(version) {
        return if looks_like_version(version) {
            Err(ParseError::UnsupportedVersion)
        } else {
            Err(ParseError::BadStartLine)
        };
    }
    // Request-URI: scheme ":" ..., no whitespace, no control characters, no `<...>`
    // (RFC 4475 §3.1.2.5).
    let scheme_len = uri.iter().position(|&c| c == b':').unwrap_or(0);
    let scheme_ok = scheme_len > 0
        && uri[0].is_ascii_alphabetic()
        && uri[..scheme_len]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    if !scheme_ok
        || uri
            .iter()
            .any(|&c| c < 0x21 || c == 0x7f || c == b'<' || c == b'>')
    {
        return Err(ParseError::BadRequestUri);
    }
    let uri_start = start + sp1 + 1;
    Ok(StartLine::Request {
        method: Method::from_bytes(first),
        method_span: Span::new(start, start + sp1),
        uri: Span::new(uri_start, uri_start + sp2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits::DEFAULT;

    fn parse(s: &[u8]) -> Result<SipMessage, ParseError> {
        SipMessage::parse(Bytes::copy_from_slice(s), &L)
    }

    fn ok(s: &[u8]) -> SipMessage {
        parse(s).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(s)))
    }

    const INVITE: &[u8] = b"INVITE sip:+15550001@carrier.example;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKa1;rport, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKa0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK00;received=10.0.0.9\r\n\
Max-Forwards: 69\r\n\
From: \"Lender, Quick\" <sip:+8613800000002@gw.example;user=phone>;tag=f1\r\n\
t: <sip:+15550001@carrier.example>\r\n\
i: abc@198.51.100.7\r\n\
CSeq: 10 INVITE\r\n\
P-Asserted-Identity: \"Quick\" <sip:+8613800000002@gw.example>, <tel:+8613800000002>\r\n\
p-asserted-identity: tel:+8613800000003\r\n\
Remote-Party-ID: <sip:+8613800000004@gw.example>;party=calling;screen=no;privacy=off\r\n\
Privacy: none\r\n\
Route: <sip:fw.example;lr>, <sip:sw.example;lr>\r\n\
Record-Route: <sip:edge.example;lr>\r\n\
X-Custom: a\r\n\x20 b\r\n\
Content-Type: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\r\nEXTRA";

    #[test]
    fn request_fields() {
        let m = ok(INVITE);
        assert!(m.is_request());
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.method_bytes(), Some(&b"INVITE"[..]));
        let ruri = m.request_uri().map(|u| u.parse_uri());
        let ruri = ruri.and_then(Result::ok).unwrap_or_else(|| panic!("ruri"));
        assert_eq!(ruri.user(), Some(&b"+15550001"[..]));
        assert_eq!(ruri.host(), b"carrier.example");
        assert_eq!(m.status(), None);
        assert_eq!(
            m.call_id().map(|c| c.as_bytes()),
            Some(&b"abc@198.51.100.7"[..])
        );
        let cseq = m.cseq().ok().flatten().unwrap_or_else(|| panic!("cseq"));
        assert_eq!((cseq.seq, cseq.method), (10, Method::Invite));
        assert_eq!(m.max_forwards(), Ok(Some(69)));
        assert_eq!(m.via_count(), 3);
        let vias: Vec<_> = m
            .vias()
            .map(|v| v.map(|v| (v.transport(), v.branch())))
            .collect();
        assert_eq!(
            vias,
            vec![
                Ok((&b"UDP"[..], Some(&b"z9hG4bKa1"[..]))),
                Ok((&b"TCP"[..], Some(&b"z9hG4bKa0"[..]))),
                Ok((&b"UDP"[..], Some(&b"z9hG4bK00"[..]))),
            ]
        );
        let top = m.top_via().ok().flatten().unwrap_or_else(|| panic!("via"));
        assert_eq!(top.rport(), Some(None));
        let from = m.from().ok().flatten().unwrap_or_else(|| panic!("from"));
        assert_eq!(from.display_name(), Some(&b"Lender, Quick"[..]));
        assert_eq!(from.tag(), Some(&b"f1"[..]));
        let to = m.to().ok().flatten().unwrap_or_else(|| panic!("to"));
        assert_eq!(to.tag(), None);
        let pai: Vec<_> = m
            .p_asserted_identities()
            .map(|p| p.map(|p| p.uri().user()))
            .collect();
        assert_eq!(
            pai,
            vec![
                Ok(Some(&b"+8613800000002"[..])),
                Ok(Some(&b"+8613800000002"[..])),
                Ok(Some(&b"+8613800000003"[..])),
            ]
        );
        let rpid = m.remote_party_ids().next();
        let rpid = rpid.and_then(Result::ok).unwrap_or_else(|| panic!("rpid"));
        assert_eq!(rpid.party(), Some(&b"calling"[..]));
        assert_eq!(rpid.screened(), Some(false));
        assert_eq!(m.privacy().map(|p| p.none), Some(true));
        let routes: Vec<_> = m
            .routes()
            .map(|r| r.map(|r| (r.uri().host(), r.lr())))
            .collect();
        assert_eq!(
            routes,
            vec![
                Ok((&b"fw.example"[..], true)),
                Ok((&b"sw.example"[..], true))
            ]
        );
        assert_eq!(m.record_routes().count(), 1);
        assert_eq!(
            m.header("x-custom").map(|v| v.as_bytes()),
            Some(&b"a\r\n  b"[..])
        );
        assert_eq!(
            m.header("Content-Type").map(|v| v.as_bytes()),
            Some(&b"application/sdp"[..])
        );
        assert_eq!(
            m.header("c").map(|v| v.as_bytes()),
            Some(&b"application/sdp"[..])
        );
        assert_eq!(m.header("X-Missing"), None);
        assert_eq!(m.content_length(), Some(4));
        assert_eq!(m.body_bytes(), b"v=0\r");
        assert_eq!(&m.body()[..], b"v=0\r");
        assert_eq!(m.headers_all().count(), 16);
    }

    #[test]
    fn response_fields() {
        let m = ok(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\r\n");
        assert!(!m.is_request());
        assert_eq!(m.status(), Some(180));
        assert_eq!(
            m.reason_phrase().map(|r| r.as_bytes()),
            Some(&b"Ringing"[..])
        );
        assert_eq!(m.method(), None);
        assert_eq!(m.request_uri(), None);
        let m = ok(b"SIP/2.0 200 \r\n\r\n");
        assert_eq!(m.reason_phrase().map(|r| r.as_bytes()), Some(&b""[..]));
        let m = ok(b"sip/2.0 404 Not Found\r\n\r\n");
        assert_eq!(m.status(), Some(404));
    }

    #[test]
    fn bare_lf_leading_crlf_and_missing_values() {
        let m = ok(b"\r\n\r\nOPTIONS sip:p.example SIP/2.0\nCall-ID: x\nSubject:\n\nbody");
        assert_eq!(m.method(), Some(Method::Options));
        assert_eq!(m.header("s").map(|v| v.as_bytes()), Some(&b""[..]));
        assert_eq!(m.body_bytes(), b"body");
        assert_eq!(m.content_length(), None);
        assert_eq!(m.max_forwards(), Ok(None));
        assert_eq!(m.cseq(), Ok(None));
        assert_eq!(m.from(), Ok(None));
        assert_eq!(m.top_via(), Ok(None));
        assert_eq!(m.privacy(), None);
        assert_eq!(m.as_bytes()[0], b'O');
    }

    #[test]
    fn whitespace_only_continuation_is_not_part_of_the_value() {
        let m = ok(b"BYE sip:a@b SIP/2.0\r\nSubject: x\r\n\t\nTo: <sip:b@c>\r\n \r\n\r\n");
        assert_eq!(m.header("Subject").map(|v| v.as_bytes()), Some(&b"x"[..]));
        assert_eq!(
            m.header("To").map(|v| v.as_bytes()),
            Some(&b"<sip:b@c>"[..])
        );
    }

    #[test]
    fn folded_value_starting_on_continuation() {
        let m = ok(b"BYE sip:a@b SIP/2.0\r\nSubject:\r\n   folded\r\n\tmore \r\n\r\n");
        assert_eq!(
            m.header("Subject").map(|v| v.as_bytes()),
            Some(&b"folded\r\n\tmore"[..])
        );
    }

    #[test]
    fn rejects() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"\r\n\r\n", "empty"),
            (b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n", "truncated"),
            (b"INVITE sip:a@b SIP/2.0", "truncated"),
            (b"INVITE sip:a@b SIP/3.0\r\n\r\n", "unsupported_version"),
            (b"SIP/7.0 200 OK\r\n\r\n", "unsupported_version"),
            (b"INVITE sip:a b@c SIP/2.0\r\n\r\n", "bad_request_uri"),
            (b"INVITE noscheme SIP/2.0\r\n\r\n", "bad_request_uri"),
            (b"INV(TE sip:a@b SIP/2.0\r\n\r\n", "bad_method"),
            (b"INVITE sip:a@b\r\n\r\n", "bad_start_line"),
            (b"INVITE sip:a@b HTTP/1.1\r\n\r\n", "bad_start_line"),
            (b"SIP/2.0 99 Low\r\n\r\n", "bad_status_code"),
            (b"SIP/2.0 700 High\r\n\r\n", "bad_status_code"),
            (b"SIP/2.0 2000 OK\r\n\r\n", "bad_status_code"),
            (b"SIP/2.0 2x0 OK\r\n\r\n", "bad_status_code"),
            (b"BYE sip:a@b SIP/2.0\r\nNoColon\r\n\r\n", "bad_header"),
            (b"BYE sip:a@b SIP/2.0\r\n : x\r\n\r\n", "bad_header"),
            (b"BYE sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n", "bad_header"),
            (
                b"BYE sip:a@b SIP/2.0\r\nl: 10\r\n\r\nshort",
                "body_truncated",
            ),
            (
                b"BYE sip:a@b SIP/2.0\r\nl: -1\r\n\r\n",
                "bad_content_length",
            ),
            (
                b"BYE sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab",
                "bad_content_length",
            ),
        ];
        for (raw, reason) in cases {
            match parse(raw) {
                Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(raw)),
                Err(e) => assert_eq!(e.reason(), *reason, "{:?}", String::from_utf8_lossy(raw)),
            }
        }
    }

    #[test]
    fn limits() {
        let tight = Limits {
            max_message_size: 200,
            max_headers: 2,
            max_header_line: 60,
            max_vias: 2,
        };
        let p = |s: &[u8]| SipMessage::parse(Bytes::copy_from_slice(s), &tight).map(|_| ());
        assert_eq!(
            p(&[b'a'; 201]),
            Err(ParseError::TooLarge { len: 201, max: 200 })
        );
        assert_eq!(
            p(b"BYE sip:a@b SIP/2.0\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n"),
            Err(ParseError::TooManyHeaders { max: 2 })
        );
        assert_eq!(
            p(b"BYE sip:a@b SIP/2.0\r\nSubject: 012345678901234567890123456789012345678901234567890123456789\r\n\r\n"),
            Err(ParseError::LineTooLong { max: 60 })
        );
        assert_eq!(
            p(b"BYE sip:a@b SIP/2.0\r\nSubject: 0123456789\r\n 0123456789\r\n 0123456789\r\n 0123456789\r\n 0123456789\r\n\r\n"),
            Err(ParseError::LineTooLong { max: 60 })
        );
        assert_eq!(
            p(b"BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP a, SIP/2.0/UDP b, SIP/2.0/UDP c\r\n\r\n"),
            Err(ParseError::TooManyVias { max: 2 })
        );
        assert!(p(b"BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP a, SIP/2.0/UDP b\r\n\r\n").is_ok());
    }

    #[test]
    fn non_utf8_is_carried_not_fatal() {
        let m = ok(
            b"MESSAGE sip:a@b SIP/2.0\r\nSubject: \xff\xfe\r\nFrom: \"\xc3\x28\" <sip:a@b>\r\n\r\n",
        );
        assert_eq!(
            m.header("Subject").map(|v| v.to_str()),
            Some(Err(ValueError::NotUtf8))
        );
        let from = m.from().ok().flatten().unwrap_or_else(|| panic!("from"));
        assert_eq!(from.display_name(), Some(&b"\xc3\x28"[..]));
    }

    #[test]
    fn repeated_single_value_headers_are_found_in_any_spelling() {
        let base =
            "BYE sip:a@b SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\n\
                    CSeq: 1 BYE\r\nMax-Forwards: 70\r\nl: 0\r\n";
        assert_eq!(
            ok(format!("{base}\r\n").as_bytes()).repeated_singleton(),
            None
        );
        for (extra, kind) in [
            ("From: <sip:c@x>;tag=2\r\n", HeaderName::From),
            ("f: <sip:c@x>;tag=2\r\n", HeaderName::From),
            ("FROM: <sip:c@x>\r\n", HeaderName::From),
            ("t: <sip:c@x>\r\n", HeaderName::To),
            ("To: <sip:b@x>\r\n", HeaderName::To),
            ("i: d\r\n", HeaderName::CallId),
            ("call-id: c\r\n", HeaderName::CallId),
            ("CSeq: 2 BYE\r\n", HeaderName::CSeq),
            ("cseq: 1 BYE\r\n", HeaderName::CSeq),
            ("Max-Forwards: 70\r\n", HeaderName::MaxForwards),
            ("MAX-FORWARDS: 69\r\n", HeaderName::MaxForwards),
            ("Content-Length: 0\r\n", HeaderName::ContentLength),
            ("l: 0\r\n", HeaderName::ContentLength),
        ] {
            let m = ok(format!("{base}{extra}\r\n").as_bytes());
            assert_eq!(m.repeated_singleton(), Some(kind), "{extra:?}");
        }
        // The compact one first, the full one second; and the first repeat is reported.
        let m = ok(
            b"BYE sip:a@b SIP/2.0\r\ni: c\r\nt: <sip:b@x>\r\nTo: <sip:b@x>\r\nCall-ID: c\r\n\r\n",
        );
        assert_eq!(m.repeated_singleton(), Some(HeaderName::To));
        // Two values on one line, but not a comma inside a quoted display name or a URI.
        let m = ok(b"BYE sip:a@b SIP/2.0\r\nFrom: <sip:a@x>;tag=1, <sip:c@x>\r\n\r\n");
        assert_eq!(m.repeated_singleton(), Some(HeaderName::From));
        let m = ok(b"BYE sip:a@b SIP/2.0\r\nt: <sip:a@x>, sip:c@x\r\n\r\n");
        assert_eq!(m.repeated_singleton(), Some(HeaderName::To));
        let m = ok(b"BYE sip:a@b SIP/2.0\r\nFrom: \"Lender, Quick\" <sip:a,b@x>;tag=1\r\n\r\n");
        assert_eq!(m.repeated_singleton(), None);
        // Repeats of list headers are normal.
        let m = ok(b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP a\r\nv: SIP/2.0/UDP b\r\nRoute: <sip:r>\r\nRoute: <sip:s>\r\n\r\n");
        assert_eq!(m.repeated_singleton(), None);
    }

    #[test]
    fn generic_lookup_by_other_name_is_exact_and_case_insensitive() {
        let m = ok(b"BYE sip:a@b SIP/2.0\r\nX-A: 1\r\nx-a: 2\r\nX-B: 3\r\n\r\n");
        let v: Vec<_> = m.headers("X-a").map(|v| v.as_bytes()).collect();
        assert_eq!(v, vec![&b"1"[..], &b"2"[..]]);
        assert_eq!(m.headers_of(HeaderName::Other).count(), 3);
    }
}
