//! Building outgoing messages from a parsed one, without re-parsing.
//!
//! An editor records edits against the [`SipMessage`]'s index (a handful of small
//! records plus a scratch buffer for new text), then [`finish`](RequestEditor::finish)
//! copies the original into one preallocated [`BytesMut`] in a single pass, splicing the
//! edits in. Untouched header lines are copied byte for byte (compact names, case and
//! folding preserved); every line written ends in CRLF; Content-Length is always rewritten
//! to the length of the body actually sent (bytes past Content-Length in a datagram are
//! dropped).
//!
//! ```
//! use bytes::Bytes;
//! use fraudwall::sip::{Limits, RequestEditor, SipMessage};
//!
//! let raw = Bytes::from_static(
//!     b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n\
//!       Max-Forwards: 70\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@a.example>;tag=1\r\n\
//!       To: <sip:b@example.com>\r\nContent-Length: 0\r\n\r\n",
//! );
//! let msg = SipMessage::parse(raw, &Limits::default()).unwrap();
//! let mut ed = RequestEditor::new(&msg);
//! ed.push_via(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp1");
//! ed.set_max_forwards(69);
//! ed.add_header("X-Fraud-Label", b"suspected-fraud;category=loan;score=70").unwrap();
//! let out = SipMessage::parse(ed.finish().freeze(), &Limits::default()).unwrap();
//! assert_eq!(out.via_count(), 2);
//! assert_eq!(out.max_forwards(), Ok(Some(69)));
//! ```

use std::fmt::Write as _;

use bytes::BytesMut;

use super::error::EditError;
use super::header::HeaderName;
use super::message::{HeaderEntry, SipMessage, Span};
use super::scan::{find_unquoted, is_token, trim, CommaSplit};
use super::value::{NameAddr, Unchecked};

/// The longest display-name label (CNAM shows 15 characters).
pub const MAX_LABEL_CHARS: usize = 15;

/// Where an edit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The Request-URI.
    StartUri,
    /// A new line right after the start line.
    Top,
    /// A new line before header `i`.
    Before(usize),
    /// Header `i` itself.
    Header(usize),
    /// A new line after the last header.
    End,
}

impl Target {
    /// Position in the output: new lines before header `i` come right before it.
    fn order(self) -> usize {
        match self {
            Target::StartUri => 0,
            Target::Top => 1,
            Target::Before(i) => 2 + 2 * i,
            Target::Header(i) => 3 + 2 * i,
            Target::End => usize::MAX,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Write the scratch text (a whole line without CRLF, or a new Request-URI).
    Insert(Span),
    /// Replace the value of the target header with the scratch text.
    ReplaceValue(Span),
    /// Drop the target header.
    Remove,
}

#[derive(Debug, Clone, Copy)]
struct Edit {
    target: Target,
    op: Op,
}

/// The shared machinery of the request and response editors.
#[derive(Debug)]
struct Editor<'m> {
    msg: &'m SipMessage,
    scratch: BytesMut,
    edits: Vec<Edit>,
}

impl<'m> Editor<'m> {
    fn new(msg: &'m SipMessage) -> Self {
        Editor {
            msg,
            scratch: BytesMut::with_capacity(256),
            edits: Vec::with_capacity(8),
        }
    }

    fn scratch_span(&self, start: usize) -> Span {
        Span::new(start, self.scratch.len())
    }

    fn push(&mut self, target: Target, op: Op) {
        self.edits.push(Edit { target, op });
    }

    /// Records a new line `name: value` at `target`.
    fn insert_line(&mut self, target: Target, name: &[u8], value: &[u8]) {
        let start = self.scratch.len();
        self.scratch.extend_from_slice(name);
        self.scratch.extend_from_slice(b": ");
        self.scratch.extend_from_slice(value);
        let span = self.scratch_span(start);
        self.push(target, Op::Insert(span));
    }

    fn insert_line_fmt(&mut self, target: Target, name: &[u8], value: std::fmt::Arguments<'_>) {
        let start = self.scratch.len();
        self.scratch.extend_from_slice(name);
        self.scratch.extend_from_slice(b": ");
        // Writing into a BytesMut cannot fail.
        let _ = self.scratch.write_fmt(value);
        let span = self.scratch_span(start);
        self.push(target, Op::Insert(span));
    }

    fn replace_value(&mut self, index: usize, value: &[u8]) {
        let start = self.scratch.len();
        self.scratch.extend_from_slice(value);
        let span = self.scratch_span(start);
        self.push(Target::Header(index), Op::ReplaceValue(span));
    }

    fn first_index(&self, kind: HeaderName) -> Option<usize> {
        self.msg.entries().iter().position(|h| h.kind == kind)
    }

    fn value_of(&self, h: &HeaderEntry) -> &'m [u8] {
        &self.msg.buf()[h.value.range()]
    }

    /// Removes the first value of the first header of `kind`: the whole line if it holds
    /// one value, else the value and its comma. Returns whether there was one.
    fn pop_first_value(&mut self, kind: HeaderName) -> bool {
        let Some(i) = self.first_index(kind) else {
            return false;
        };
        let value = self.value_of(&self.msg.entries()[i]);
        let rest = match find_unquoted(value, b',') {
            Some(comma) => trim(&value[comma + 1..]),
            None => &value[value.len()..],
        };
        if rest.is_empty() {
            self.push(Target::Header(i), Op::Remove);
        } else {
            self.replace_value(i, rest);
        }
        true
    }

    fn remove_where(&mut self, mut pred: impl FnMut(&HeaderEntry) -> bool) -> usize {
        let mut n = 0;
        for (i, h) in self.msg.entries().iter().enumerate() {
            if pred(h) {
                self.edits.push(Edit {
                    target: Target::Header(i),
                    op: Op::Remove,
                });
                n += 1;
            }
        }
        n
    }

    fn remove_named(&mut self, name: &str) -> usize {
        let kind = HeaderName::from_bytes(name.as_bytes());
        let buf = self.msg.buf();
        self.remove_where(|h| {
            h.kind == kind
                && (kind != HeaderName::Other
                    || buf[h.name.range()].eq_ignore_ascii_case(name.as_bytes()))
        })
    }

    /// Copies the message with the edits applied.
    fn finish(mut self) -> BytesMut {
        self.edits.sort_by_key(|e| e.target.order());
        let msg = self.msg;
        let buf = msg.buf();
        let body = &buf[msg.body_span().range()];
        let mut out = BytesMut::with_capacity(msg.as_bytes().len() + self.scratch.len() + 64);
        let mut edits = self.edits.iter().peekable();
        let scratch = &self.scratch[..];

        // Start line, with the Request-URI replaced if asked (the last replacement wins).
        let line = msg.start_line_span();
        let mut new_uri = None;
        while let Some(e) = edits.next_if(|e| e.target == Target::StartUri) {
            if let Op::Insert(s) = e.op {
                new_uri = Some(&scratch[s.range()]);
            }
        }
        match (new_uri, msg.request_uri_span()) {
            (Some(uri), Some(old)) => {
                out.extend_from_slice(&buf[line.start as usize..old.start as usize]);
                out.extend_from_slice(uri);
                out.extend_from_slice(&buf[old.end as usize..line.end as usize]);
            }
            _ => out.extend_from_slice(&buf[line.range()]),
        }
        out.extend_from_slice(b"\r\n");

        let write_inserts = |out: &mut BytesMut,
                             edits: &mut std::iter::Peekable<std::slice::Iter<'_, Edit>>,
                             target: Target| {
            while let Some(e) = edits.next_if(|e| e.target == target) {
                if let Op::Insert(s) = e.op {
                    out.extend_from_slice(&scratch[s.range()]);
                    out.extend_from_slice(b"\r\n");
                }
            }
        };

        write_inserts(&mut out, &mut edits, Target::Top);
        let mut wrote_length = false;
        for (i, h) in msg.entries().iter().enumerate() {
            write_inserts(&mut out, &mut edits, Target::Before(i));
            let mut removed = false;
            let mut replacement = None;
            while let Some(e) = edits.next_if(|e| e.target == Target::Header(i)) {
                match e.op {
                    Op::Remove => removed = true,
                    Op::ReplaceValue(s) => replacement = Some(&scratch[s.range()]),
                    Op::Insert(_) => {}
                }
            }
            if removed {
                continue;
            }
            if h.kind == HeaderName::ContentLength {
                if !wrote_length {
                    out.extend_from_slice(&buf[h.name.range()]);
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(Decimal::new(body.len() as u64).as_bytes());
                    out.extend_from_slice(b"\r\n");
                    wrote_length = true;
                }
                continue;
            }
            match replacement {
                Some(value) => {
                    out.extend_from_slice(&buf[h.name.range()]);
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value);
                }
                None => out.extend_from_slice(&buf[h.line.range()]),
            }
            out.extend_from_slice(b"\r\n");
        }
        write_inserts(&mut out, &mut edits, Target::End);
        if !wrote_length {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(Decimal::new(body.len() as u64).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }
}

/// Rejects CR, LF and other control characters (header injection).
fn check_text(s: &[u8]) -> Result<(), EditError> {
    if s.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        Err(EditError::ControlCharacter)
    } else {
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), EditError> {
    if name.is_empty() || !name.bytes().all(is_token) {
        Err(EditError::BadHeaderName)
    } else {
        Ok(())
    }
}

/// Writes `"label" <uri>;params` for one name-addr value.
fn write_with_display_name(out: &mut BytesMut, label: &str, na: &NameAddr<'_>) {
    out.extend_from_slice(b"\"");
    for b in label.bytes() {
        if b == b'"' || b == b'\\' {
            out.extend_from_slice(b"\\");
        }
        out.extend_from_slice(&[b]);
    }
    out.extend_from_slice(b"\" <");
    out.extend_from_slice(na.uri().raw());
    out.extend_from_slice(b">");
    let params = na.params().raw();
    if !params.is_empty() {
        out.extend_from_slice(b";");
        out.extend_from_slice(params);
    }
}

/// Copies a request with edits: what a proxy forwards (RFC 3261 §16.6).
///
/// Edits are applied in message order whatever order they are called in; several new
/// lines at the same place keep their call order. Removing a header wins over other
/// edits of the same header.
#[derive(Debug)]
pub struct RequestEditor<'m> {
    inner: Editor<'m>,
}

impl<'m> RequestEditor<'m> {
    /// Starts editing a copy of `msg` (a request).
    pub fn new(msg: &'m SipMessage) -> Self {
        RequestEditor {
            inner: Editor::new(msg),
        }
    }

    /// Inserts a Via line at the top (before every other header): `value` is e.g.
    /// `SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK...`.
    pub fn push_via(&mut self, value: &[u8]) {
        self.inner.insert_line(Target::Top, b"Via", value);
    }

    /// Like [`push_via`](Self::push_via), formatting the value straight into the output
    /// scratch (no intermediate `String`).
    pub fn push_via_fmt(&mut self, value: std::fmt::Arguments<'_>) {
        self.inner.insert_line_fmt(Target::Top, b"Via", value);
    }

    /// Records where the request really came from on the sender's (top) Via, in place:
    /// `;received=<received>` (RFC 3261 §18.2.1) and, when `rport` is given, `;rport=<port>`
    /// (RFC 3581 §4); any earlier `received`/`rport` parameters are replaced, everything
    /// else is kept as written. Call it before [`push_via`](Self::push_via) or after: the
    /// new Via line always comes first. Returns `false` (and changes nothing) when there is
    /// no top Via or it does not parse.
    pub fn set_top_via_source(
        &mut self,
        received: &str,
        rport: Option<u16>,
    ) -> Result<bool, EditError> {
        if received.is_empty()
            || !received
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-' | b'[' | b']'))
        {
            return Err(EditError::ControlCharacter);
        }
        let Some(i) = self.inner.first_index(HeaderName::Via) else {
            return Ok(false);
        };
        let value = self.inner.value_of(&self.inner.msg.entries()[i]);
        let (first, rest) = match find_unquoted(value, b',') {
            Some(comma) => (&value[..comma], &value[comma..]),
            None => (value, &value[value.len()..]),
        };
        let Ok(via) = Unchecked(first).parse_via() else {
            return Ok(false);
        };
        let start = self.inner.scratch.len();
        let out = &mut self.inner.scratch;
        out.extend_from_slice(via.without_params());
        for (name, value) in via.params().iter() {
            if name.eq_ignore_ascii_case(b"received") || name.eq_ignore_ascii_case(b"rport") {
                continue;
            }
            out.extend_from_slice(b";");
            out.extend_from_slice(name);
            if let Some(v) = value {
                out.extend_from_slice(b"=");
                out.extend_from_slice(v);
            }
        }
        out.extend_from_slice(b";received=");
        out.extend_from_slice(received.as_bytes());
        if let Some(port) = rport {
            out.extend_from_slice(b";rport=");
            out.extend_from_slice(Decimal::new(u64::from(port)).as_bytes());
        }
        out.extend_from_slice(rest);
        let span = self.inner.scratch_span(start);
        self.inner.push(Target::Header(i), Op::ReplaceValue(span));
        Ok(true)
    }

    /// Sets Max-Forwards (replacing the first one, or adding one at the top).
    pub fn set_max_forwards(&mut self, n: u32) {
        match self.inner.first_index(HeaderName::MaxForwards) {
            Some(i) => {
                let start = self.inner.scratch.len();
                self.inner
                    .scratch
                    .extend_from_slice(Decimal::new(u64::from(n)).as_bytes());
                let span = self.inner.scratch_span(start);
                self.inner.push(Target::Header(i), Op::ReplaceValue(span));
            }
            None => self
                .inner
                .insert_line_fmt(Target::Top, b"Max-Forwards", format_args!("{n}")),
        }
    }

    /// Inserts a Record-Route line before the first Record-Route (or at the top):
    /// `value` is e.g. `<sip:10.0.0.1:5060;lr>`.
    pub fn insert_record_route(&mut self, value: &[u8]) {
        let target = match self.inner.first_index(HeaderName::RecordRoute) {
            Some(i) => Target::Before(i),
            None => Target::Top,
        };
        self.inner.insert_line(target, b"Record-Route", value);
    }

    /// Removes the top Route value if `is_ours` says it names this proxy (RFC 3261
    /// §16.4). Returns whether one was removed; an unparsable top Route is left alone.
    pub fn pop_top_route_if(&mut self, is_ours: impl FnOnce(&NameAddr<'_>) -> bool) -> bool {
        let msg = self.inner.msg;
        let top = match msg.routes().next() {
            Some(Ok(na)) => na,
            _ => return false,
        };
        is_ours(&top) && self.inner.pop_first_value(HeaderName::Route)
    }

    /// Replaces the Request-URI.
    pub fn set_request_uri(&mut self, uri: &[u8]) -> Result<(), EditError> {
        if uri.is_empty() || uri.iter().any(|&b| b <= b' ' || b == 0x7f) {
            return Err(EditError::ControlCharacter);
        }
        let start = self.inner.scratch.len();
        self.inner.scratch.extend_from_slice(uri);
        let span = self.inner.scratch_span(start);
        self.inner.push(Target::StartUri, Op::Insert(span));
        Ok(())
    }

    /// Adds `name: value` after the last header, e.g.
    /// `X-Fraud-Label: suspected-fraud;category=loan;score=70`.
    pub fn add_header(&mut self, name: &str, value: &[u8]) -> Result<(), EditError> {
        check_name(name)?;
        check_text(value)?;
        self.inner.insert_line(Target::End, name.as_bytes(), value);
        Ok(())
    }

    /// Like [`add_header`](Self::add_header), formatting the value into the scratch. The
    /// formatted text must not contain line breaks (not checked: use for values built from
    /// trusted parts only).
    pub fn add_header_fmt(
        &mut self,
        name: &str,
        value: std::fmt::Arguments<'_>,
    ) -> Result<(), EditError> {
        check_name(name)?;
        self.inner
            .insert_line_fmt(Target::End, name.as_bytes(), value);
        Ok(())
    }

    /// Removes every header with this name (full or compact, any case). Returns how many
    /// lines were removed.
    pub fn remove_headers(&mut self, name: &str) -> usize {
        self.inner.remove_named(name)
    }

    /// Sets the display name of every value of the `kind` headers (From,
    /// P-Asserted-Identity ...) to `label` (at most [`MAX_LABEL_CHARS`] characters,
    /// quoted and escaped here). Values that do not parse are left as they are. Returns
    /// how many values were relabelled.
    pub fn set_display_name(&mut self, kind: HeaderName, label: &str) -> Result<usize, EditError> {
        let chars = label.chars().count();
        if chars > MAX_LABEL_CHARS {
            return Err(EditError::LabelTooLong { len: chars });
        }
        check_text(label.as_bytes())?;
        let msg = self.inner.msg;
        let mut count = 0;
        for (i, h) in msg.entries().iter().enumerate() {
            if h.kind != kind {
                continue;
            }
            let value = self.inner.value_of(h);
            let start = self.inner.scratch.len();
            for (n, item) in CommaSplit::new(value).enumerate() {
                if n > 0 {
                    self.inner.scratch.extend_from_slice(b", ");
                }
                match Unchecked(item).parse_name_addr() {
                    Ok(na) => {
                        write_with_display_name(&mut self.inner.scratch, label, &na);
                        count += 1;
                    }
                    Err(_) => self.inner.scratch.extend_from_slice(item),
                }
            }
            let span = self.inner.scratch_span(start);
            self.inner.push(Target::Header(i), Op::ReplaceValue(span));
        }
        Ok(count)
    }

    /// The edited request, ready to send.
    pub fn finish(self) -> BytesMut {
        self.inner.finish()
    }
}

/// Copies a response with edits: what a proxy returns upstream (RFC 3261 §16.7).
#[derive(Debug)]
pub struct ResponseEditor<'m> {
    inner: Editor<'m>,
}

impl<'m> ResponseEditor<'m> {
    /// Starts editing a copy of `msg` (a response).
    pub fn new(msg: &'m SipMessage) -> Self {
        ResponseEditor {
            inner: Editor::new(msg),
        }
    }

    /// Removes the top Via value (ours). Returns whether there was one.
    pub fn pop_top_via(&mut self) -> bool {
        self.inner.pop_first_value(HeaderName::Via)
    }

    /// Removes every header with this name (full or compact, any case).
    pub fn remove_headers(&mut self, name: &str) -> usize {
        self.inner.remove_named(name)
    }

    /// The edited response, ready to send.
    pub fn finish(self) -> BytesMut {
        self.inner.finish()
    }
}

/// Builds a response to a request (RFC 3261 §8.2.6): status line, every Via, From, To
/// (with a To-tag derived from the request when it has none, so a retransmitted request
/// gets the same tag), Call-ID, CSeq, extra headers, `Content-Length: 0`.
///
/// ```
/// use bytes::Bytes;
/// use fraudwall::sip::{Limits, ResponseBuilder, SipMessage};
///
/// let req = SipMessage::parse(Bytes::from_static(
///     b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a@a>;tag=1\r\n\
///       To: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"), &Limits::default()).unwrap();
/// let mut b = ResponseBuilder::new(&req, 608, "Rejected");
/// b.header("Call-Info", b"<https://redress.example/r>;purpose=jcard").unwrap();
/// let resp = SipMessage::parse(b.finish().freeze(), &Limits::default()).unwrap();
/// assert_eq!(resp.status(), Some(608));
/// assert!(resp.to().unwrap().unwrap().tag().is_some());
/// ```
#[derive(Debug)]
pub struct ResponseBuilder<'m> {
    req: &'m SipMessage,
    out: BytesMut,
    to_tag: Option<[u8; 16]>,
}

impl<'m> ResponseBuilder<'m> {
    /// Starts a response with this status code and reason phrase. Reason text with line
    /// breaks is cut at the first control character.
    pub fn new(req: &'m SipMessage, status: u16, reason: &str) -> Self {
        let mut out = BytesMut::with_capacity(req.as_bytes().len().min(2048) + 256);
        let reason = reason
            .split(|c: char| c.is_control())
            .next()
            .unwrap_or_default();
        out.extend_from_slice(b"SIP/2.0 ");
        out.extend_from_slice(Decimal::new(u64::from(status)).as_bytes());
        out.extend_from_slice(b" ");
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        let buf = req.buf();
        for h in req.entries() {
            if matches!(
                h.kind,
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq
            ) {
                out.extend_from_slice(&buf[h.line.range()]);
                out.extend_from_slice(b"\r\n");
            } else if h.kind == HeaderName::To {
                out.extend_from_slice(&buf[h.line.range()]);
                let has_tag = Unchecked(&buf[h.value.range()])
                    .parse_name_addr()
                    .is_ok_and(|na| na.tag().is_some());
                if !has_tag && status > 100 {
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(&derive_to_tag(req));
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        ResponseBuilder {
            req,
            out,
            to_tag: None,
        }
    }

    /// Adds `name: value`, e.g. `Reason: SIP;cause=603;text="v=analytics1";location=RLN` or
    /// `Server: fraudwall`.
    pub fn header(&mut self, name: &str, value: &[u8]) -> Result<&mut Self, EditError> {
        check_name(name)?;
        check_text(value)?;
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
        Ok(self)
    }

    /// The To-tag this response carries when the request had none (derived from the
    /// request's Call-ID, From-tag and top Via).
    pub fn derived_to_tag(&mut self) -> [u8; 16] {
        *self.to_tag.get_or_insert_with(|| derive_to_tag(self.req))
    }

    /// The finished response.
    pub fn finish(mut self) -> BytesMut {
        self.out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        self.out
    }
}

/// 16 lowercase hex characters from a hash of the request's Call-ID, From-tag and top
/// Via (which includes the branch), so the same request always gets the same tag.
///
/// The tag [`ResponseBuilder`] puts on a response it builds; a stateless proxy recomputes
/// it from an ACK to recognise the ACK for its own final response, with no allocation.
pub fn derive_to_tag(req: &SipMessage) -> [u8; 16] {
    // SipHash-1-3 under a fixed key, so every node derives the same tag.
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(
        u64::from_le_bytes(*b"fraudwal"),
        u64::from_le_bytes(*b"l to-tag"),
    );
    if let Some(c) = req.call_id() {
        h.write(trim(c.as_bytes()));
    }
    h.write(b"\0");
    if let Ok(Some(from)) = req.from() {
        h.write(from.tag().unwrap_or_default());
    }
    h.write(b"\0");
    if let Some(v) = req.headers_of(HeaderName::Via).next() {
        if let Some(top) = v.split_commas().next() {
            h.write(top.as_bytes());
        }
    }
    let digest = h.finish().to_le_bytes();
    let mut tag = [0u8; 16];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in digest.iter().enumerate() {
        tag[2 * i] = HEX[usize::from(byte >> 4)];
        tag[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    tag
}

/// A number in decimal, on the stack (the per-message paths avoid `fmt`).
pub(crate) struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    pub(crate) fn new(mut n: u64) -> Decimal {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Decimal { buf, start }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 69, 100, 65535, 4_294_967_295, u64::MAX] {
            assert_eq!(Decimal::new(n).as_bytes(), n.to_string().as_bytes());
        }
    }
    use crate::sip::{Limits, Method};
    use bytes::Bytes;

    const L: Limits = Limits::DEFAULT;

    fn parse(s: &[u8]) -> SipMessage {
        SipMessage::parse(Bytes::copy_from_slice(s), &L)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(s)))
    }

    fn reparse(out: BytesMut) -> SipMessage {
        let text = String::from_utf8_lossy(&out).into_owned();
        SipMessage::parse(out.freeze(), &L).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    const REQ: &[u8] = b"INVITE sip:+15550001@carrier.example SIP/2.0\n\
v: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKa1\n\
Max-Forwards: 70\n\
f: \"Old\" <sip:+8613800000002@gw.example>;tag=f1\n\
To: <sip:+15550001@carrier.example>\n\
Call-ID: c1\n\
CSeq: 1 INVITE\n\
P-Asserted-Identity: <sip:+8613800000002@gw.example>, tel:+8613800000002;x=1\n\
Route: <sip:fw.example;lr>, <sip:sw.example;lr>\n\
Record-Route: <sip:edge.example;lr>\n\
X-Drop: 1\n\
Content-Length: 3\n\
\n\
abcJUNK";

    #[test]
    fn proxy_forwarding_edits() {
        let m = parse(REQ);
        let mut ed = RequestEditor::new(&m);
        ed.add_header("X-Fraud-Label", b"suspected-fraud;category=loan;score=70")
            .unwrap_or_else(|e| panic!("{e}"));
        ed.set_max_forwards(69);
        ed.push_via_fmt(format_args!(
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{}",
            42
        ));
        ed.insert_record_route(b"<sip:10.0.0.1:5060;lr>");
        assert!(!ed.pop_top_route_if(|r| r.uri().host() == b"other.example"));
        assert!(ed.pop_top_route_if(|r| r.uri().host() == b"fw.example"));
        ed.set_request_uri(b"sip:+15550001@10.0.0.5:5080")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ed.remove_headers("x-drop"), 1);
        let out = reparse(ed.finish());
        assert_eq!(out.method(), Some(Method::Invite));
        assert_eq!(
            out.request_uri().map(|u| u.as_bytes()),
            Some(&b"sip:+15550001@10.0.0.5:5080"[..])
        );
        let branches: Vec<_> = out
            .vias()
            .map(|v| v.ok().and_then(|v| v.branch()))
            .collect();
        assert_eq!(
            branches,
            vec![Some(&b"z9hG4bK42"[..]), Some(&b"z9hG4bKa1"[..])]
        );
        assert_eq!(out.max_forwards(), Ok(Some(69)));
        let rr: Vec<_> = out
            .record_routes()
            .map(|r| r.map(|r| r.uri().host()))
            .collect();
        assert_eq!(rr, vec![Ok(&b"10.0.0.1"[..]), Ok(&b"edge.example"[..])]);
        let routes: Vec<_> = out.routes().map(|r| r.map(|r| r.uri().host())).collect();
        assert_eq!(routes, vec![Ok(&b"sw.example"[..])]);
        assert_eq!(out.header("X-Drop"), None);
        assert_eq!(
            out.header("X-Fraud-Label").map(|v| v.as_bytes()),
            Some(&b"suspected-fraud;category=loan;score=70"[..])
        );
        assert_eq!(out.content_length(), Some(3));
        assert_eq!(out.body_bytes(), b"abc");
        assert!(!out.as_bytes().windows(4).any(|w| w == b"JUNK"));
        // Untouched lines are copied as written (compact name kept).
        assert!(out.as_bytes().windows(3).any(|w| w == b"\r\nf"));
    }

    #[test]
    fn top_via_source_is_rewritten_in_place() {
        let m = parse(
            b"INVITE sip:b@x SIP/2.0\r\nv: SIP/2.0/UDP host.a:5062;rport;branch=z9hG4bK1;received=9.9.9.9, SIP/2.0/TCP b;branch=z9hG4bK0\r\nVia: SIP/2.0/UDP c;branch=z9hG4bKc\r\n\r\n",
        );
        let mut ed = RequestEditor::new(&m);
        assert_eq!(ed.set_top_via_source("192.0.2.7", Some(40000)), Ok(true));
        ed.push_via(b"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp");
        let out = reparse(ed.finish());
        let vias: Vec<_> = out
            .vias()
            .map(|v| v.map(|v| (v.host(), v.branch(), v.received(), v.rport())))
            .collect();
        assert_eq!(
            vias,
            vec![
                Ok((&b"10.0.0.1"[..], Some(&b"z9hG4bKp"[..]), None, None)),
                Ok((
                    &b"host.a"[..],
                    Some(&b"z9hG4bK1"[..]),
                    Some(&b"192.0.2.7"[..]),
                    Some(Some(40000))
                )),
                Ok((&b"b"[..], Some(&b"z9hG4bK0"[..]), None, None)),
                Ok((&b"c"[..], Some(&b"z9hG4bKc"[..]), None, None)),
            ]
        );
        let mut ed = RequestEditor::new(&m);
        assert_eq!(
            ed.set_top_via_source("1.2.3.4\r\nX: y", None),
            Err(EditError::ControlCharacter)
        );
        let none = parse(b"OPTIONS sip:p SIP/2.0\r\n\r\n");
        assert_eq!(
            RequestEditor::new(&none).set_top_via_source("1.2.3.4", None),
            Ok(false)
        );
    }

    #[test]
    fn display_name_labels() {
        let m = parse(REQ);
        let mut ed = RequestEditor::new(&m);
        assert_eq!(
            ed.set_display_name(HeaderName::From, "Fraud \"Risk\""),
            Ok(1)
        );
        assert_eq!(
            ed.set_display_name(HeaderName::PAssertedIdentity, "SCAM? Old"),
            Ok(2)
        );
        let out = reparse(ed.finish());
        let from = out.from().ok().flatten().unwrap_or_else(|| panic!("from"));
        assert_eq!(from.display_name(), Some(&br#"Fraud \"Risk\""#[..]));
        assert_eq!(from.tag(), Some(&b"f1"[..]));
        let pai: Vec<_> = out
            .p_asserted_identities()
            .map(|p| p.map(|p| (p.display_name(), p.uri().scheme(), p.params().raw())))
            .collect();
        assert_eq!(
            pai,
            vec![
                Ok((Some(&b"SCAM? Old"[..]), crate::sip::Scheme::Sip, &b""[..])),
                Ok((
                    Some(&b"SCAM? Old"[..]),
                    crate::sip::Scheme::Tel,
                    &b"x=1"[..]
                )),
            ]
        );
        let mut ed = RequestEditor::new(&m);
        assert_eq!(
            ed.set_display_name(HeaderName::From, "sixteen chars!!!"),
            Err(EditError::LabelTooLong { len: 16 })
        );
        assert_eq!(
            ed.set_display_name(HeaderName::From, "a\r\nVia: x"),
            Err(EditError::ControlCharacter)
        );
        assert_eq!(
            ed.add_header("X-A", b"1\r\nX-B: 2"),
            Err(EditError::ControlCharacter)
        );
        assert_eq!(
            ed.add_header("Bad Name", b"1"),
            Err(EditError::BadHeaderName)
        );
        assert_eq!(
            ed.set_request_uri(b"sip:a b"),
            Err(EditError::ControlCharacter)
        );
    }

    #[test]
    fn missing_headers_are_added() {
        let m = parse(b"OPTIONS sip:p SIP/2.0\r\nCall-ID: x\r\n\r\nbody");
        let mut ed = RequestEditor::new(&m);
        ed.set_max_forwards(70);
        ed.insert_record_route(b"<sip:p;lr>");
        assert!(!ed.pop_top_route_if(|_| true));
        let out = reparse(ed.finish());
        assert_eq!(out.max_forwards(), Ok(Some(70)));
        assert_eq!(out.record_routes().count(), 1);
        assert_eq!(out.content_length(), Some(4));
        assert_eq!(out.body_bytes(), b"body");
    }

    #[test]
    fn response_editor_pops_top_via() {
        let two_lines =
            parse(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP p;branch=z9hG4bKp\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKa\r\nContent-Length: 0\r\n\r\n");
        let one_line =
            parse(b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP p;branch=z9hG4bKp , SIP/2.0/UDP a;branch=z9hG4bKa\r\n\r\n");
        for m in [two_lines, one_line] {
            let mut ed = ResponseEditor::new(&m);
            assert!(ed.pop_top_via());
            let out = reparse(ed.finish());
            assert_eq!(out.status(), Some(200));
            let b: Vec<_> = out
                .vias()
                .map(|v| v.ok().and_then(|v| v.branch()))
                .collect();
            assert_eq!(b, vec![Some(&b"z9hG4bKa"[..])]);
            assert_eq!(out.content_length(), Some(0));
        }
        let none = parse(b"SIP/2.0 200 OK\r\n\r\n");
        assert!(!ResponseEditor::new(&none).pop_top_via());
    }

    #[test]
    fn response_builder() {
        let m = parse(REQ);
        let mut b = ResponseBuilder::new(&m, 603, "Decline");
        b.header("Reason", br#"SIP;cause=603;text="Network Blocked""#)
            .and_then(|b| b.header("Server", b"fraudwall"))
            .unwrap_or_else(|e| panic!("{e}"));
        let tag = b.derived_to_tag();
        let out = reparse(b.finish());
        assert_eq!(out.status(), Some(603));
        assert_eq!(
            out.reason_phrase().map(|r| r.as_bytes()),
            Some(&b"Decline"[..])
        );
        assert_eq!(out.via_count(), 1);
        assert_eq!(out.call_id().map(|c| c.as_bytes()), Some(&b"c1"[..]));
        assert_eq!(out.cseq().ok().flatten().map(|c| c.seq), Some(1));
        let from = out.from().ok().flatten().unwrap_or_else(|| panic!("from"));
        assert_eq!(from.tag(), Some(&b"f1"[..]));
        let to = out.to().ok().flatten().unwrap_or_else(|| panic!("to"));
        assert_eq!(to.tag(), Some(&tag[..]));
        assert_eq!(out.content_length(), Some(0));
        assert_eq!(
            out.header("Reason").map(|r| r.as_bytes()),
            Some(&br#"SIP;cause=603;text="Network Blocked""#[..])
        );
        assert_eq!(out.routes().count(), 0);

        // A retransmission gets the same tag; another call gets another.
        let again = ResponseBuilder::new(&parse(REQ), 603, "Decline").derived_to_tag();
        assert_eq!(again, tag);
        let other = String::from_utf8_lossy(REQ).replace("Call-ID: c1", "Call-ID: c2");
        let other = ResponseBuilder::new(&parse(other.as_bytes()), 603, "Decline").derived_to_tag();
        assert_ne!(other, tag);

        // An existing To-tag is kept; 100 Trying gets none.
        let tagged = String::from_utf8_lossy(REQ).replace(
            "To: <sip:+15550001@carrier.example>",
            "To: <sip:+15550001@carrier.example>;tag=t9",
        );
        let out = reparse(
            ResponseBuilder::new(&parse(tagged.as_bytes()), 487, "Request Terminated").finish(),
        );
        assert_eq!(
            out.to().ok().flatten().and_then(|t| t.tag()),
            Some(&b"t9"[..])
        );
        let out = reparse(ResponseBuilder::new(&m, 100, "Trying").finish());
        assert_eq!(out.to().ok().flatten().and_then(|t| t.tag()), None);
        let out = reparse(ResponseBuilder::new(&m, 400, "Bad\r\nX: y").finish());
        assert_eq!(out.reason_phrase().map(|r| r.as_bytes()), Some(&b"Bad"[..]));
    }
}
