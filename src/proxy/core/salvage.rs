//! Answering a request the parser refused, when a response can still be routed.
//!
//! [`SipMessage::parse`] rejects a message as a whole (a header line without a colon, a
//! truncated header section, a body shorter than Content-Length, `SIP/3.0` ...). RFC 3261
//! (§8.2, §16.3) wants such a request answered, not silently lost, when the sender can be
//! reached: so the lines a response needs (Via, From, To, Call-ID, CSeq, in any case or
//! compact form) are copied into a small synthetic request, which is parsed again; if its
//! top Via is readable, the answer is built from it: `505 Version Not Supported` for a
//! version other than SIP/2.0, else `400 Bad Request`. ACKs, responses, oversized messages
//! and anything whose start line is not a request are only dropped.
//!
//! This path allocates (one small buffer), but only for malformed input. Like every answer
//! of the core, the 400 to an untrusted UDP source is never larger than the datagram that
//! drew it (see the `reply` module): garbage cannot be used to reflect traffic.

use crate::proxy::Inbound;
use crate::sip::{HeaderName, Limits, ParseError, ResponseBuilder, SipMessage};
use bytes::BytesMut;

/// A malformed request that can be answered: the status to answer with and the synthetic
/// request (holding the lines a response copies) to build the answer from.
pub(crate) struct Salvaged {
    pub(crate) status: u16,
    pub(crate) message: SipMessage,
}

/// Tries to salvage `inbound` (which failed to parse with `error`).
pub(crate) fn salvage(inbound: &Inbound, error: &ParseError, limits: &Limits) -> Option<Salvaged> {
    let status = match error {
        ParseError::Empty
        | ParseError::TooLarge { .. }
        | ParseError::BadStartLine
        | ParseError::BadMethod
        | ParseError::BadStatusCode => return None,
        ParseError::UnsupportedVersion => 505,
        _ => 400,
    };
    let data: &[u8] = &inbound.data;
    let data = &data[data.iter().position(|&b| b != b'\r' && b != b'\n')?..];
    let line_end = data.iter().position(|&b| b == b'\n')?;
    let start = data[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&data[..line_end]);
    let method = start.split(|&b| b == b' ').next()?;
    if method.starts_with(b"SIP/") || method == b"ACK" || method.is_empty() {
        return None;
    }
    let mut out = BytesMut::with_capacity(512);
    out.extend_from_slice(method);
    out.extend_from_slice(b" sip:invalid SIP/2.0\r\n");
    let mut wanted = 0;
    for line in data[line_end + 1..].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let kind = HeaderName::from_bytes(line[..colon].trim_ascii());
        if matches!(
            kind,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        ) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            wanted += 1;
        }
    }
    if wanted == 0 {
        return None;
    }
    out.extend_from_slice(b"\r\n");
    let message = SipMessage::parse(out.freeze(), limits).ok()?;
    match message.top_via() {
        Ok(Some(_)) => Some(Salvaged { status, message }),
        _ => None,
    }
}

/// The response to a salvaged request (sent under the reflection rule, see `reply`).
pub(crate) fn answer(s: &Salvaged) -> BytesMut {
    let reason = if s.status == 505 {
        "Version Not Supported"
    } else {
        "Bad Request"
    };
    ResponseBuilder::new(&s.message, s.status, reason).finish()
}
