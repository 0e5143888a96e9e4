//! Typed errors for messages, framing and header values.

use thiserror::Error;

/// Why a message was rejected by [`SipMessage::parse`](super::SipMessage::parse).
///
/// Every variant has a stable [`reason`](ParseError::reason) label for metrics.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Nothing but line breaks (or nothing at all) was received.
    #[error("empty message: no start line")]
    Empty,
    /// The message is larger than [`Limits::max_message_size`](super::Limits).
    #[error("message is {len} bytes, over the {max}-byte limit (raise limits.max_message_size)")]
    TooLarge {
        /// Size of the message.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The start line is neither `METHOD URI SIP/2.0` nor `SIP/2.0 CODE REASON`.
    #[error("malformed start line: expected `METHOD uri SIP/2.0` or `SIP/2.0 code reason`")]
    BadStartLine,
    /// The method is not a token.
    #[error("malformed request method: not a token")]
    BadMethod,
    /// The Request-URI is empty or holds characters a URI may not hold.
    #[error("malformed Request-URI")]
    BadRequestUri,
    /// The SIP version is not 2.0 (a request gets 505).
    #[error("unsupported SIP version (only SIP/2.0 is supported)")]
    UnsupportedVersion,
    /// The status code is not three digits in 100..=699.
    #[error("malformed status code: expected three digits 100..699")]
    BadStatusCode,
    /// A start line or header field is longer than [`Limits::max_header_line`](super::Limits).
    #[error("a header line is over the {max}-byte limit (raise limits.max_header_line)")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// More header fields than [`Limits::max_headers`](super::Limits).
    #[error("more than {max} header fields (raise limits.max_headers)")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// More Via values than [`Limits::max_vias`](super::Limits).
    #[error("more than {max} Via values (raise limits.max_vias)")]
    TooManyVias {
        /// The limit.
        max: usize,
    },
    /// A header line has no colon, an empty or non-token name, or a continuation line comes
    /// before any header.
    #[error("malformed header line {line}: expected `Name: value`")]
    BadHeader {
        /// 1-based line number within the message.
        line: usize,
    },
    /// The header section never ends with an empty line.
    #[error("header section not terminated by an empty line (truncated message?)")]
    Truncated,
    /// Content-Length is not a decimal number, or several disagree.
    #[error("malformed or conflicting Content-Length")]
    BadContentLength,
    /// The body is shorter than Content-Length says.
    #[error("body is {got} bytes but Content-Length says {expected}")]
    BodyTruncated {
        /// What Content-Length announced.
        expected: usize,
        /// What arrived.
        got: usize,
    },
}

impl ParseError {
    /// A short stable label for metrics (`reason="..."`).
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::TooLarge { .. } => "too_large",
            ParseError::BadStartLine => "bad_start_line",
            ParseError::BadMethod => "bad_method",
            ParseError::BadRequestUri => "bad_request_uri",
            ParseError::UnsupportedVersion => "unsupported_version",
            ParseError::BadStatusCode => "bad_status_code",
            ParseError::LineTooLong { .. } => "line_too_long",
            ParseError::TooManyHeaders { .. } => "too_many_headers",
            ParseError::TooManyVias { .. } => "too_many_vias",
            ParseError::BadHeader { .. } => "bad_header",
            ParseError::Truncated => "truncated",
            ParseError::BadContentLength => "bad_content_length",
            ParseError::BodyTruncated { .. } => "body_truncated",
        }
    }
}

/// Why a stream could not be framed by [`message_len`](super::framing::message_len).
/// The connection cannot be resynchronised after any of these and should be closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramingError {
    /// The message (or the header section still waiting for its end) is over the limit.
    #[error("stream message over the {max}-byte limit (raise limits.max_message_size)")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// No Content-Length header: stream transports require one (RFC 3261 §18.3).
    #[error("no Content-Length on a stream transport (RFC 3261 §18.3 requires it)")]
    MissingContentLength,
    /// Content-Length is not a decimal number, or several disagree.
    #[error("malformed or conflicting Content-Length")]
    BadContentLength,
}

impl FramingError {
    /// A short stable label for metrics (`reason="..."`).
    pub fn reason(&self) -> &'static str {
        match self {
            FramingError::TooLarge { .. } => "too_large",
            FramingError::MissingContentLength => "missing_content_length",
            FramingError::BadContentLength => "bad_content_length",
        }
    }
}

/// Why a header value (taken as [`Unchecked`](super::Unchecked)) failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ValueError {
    /// The value is empty.
    #[error("empty header value")]
    Empty,
    /// Not valid UTF-8 where text was asked for.
    #[error("header value is not UTF-8")]
    NotUtf8,
    /// Not a decimal number in range.
    #[error("not a decimal number in range")]
    BadNumber,
    /// A quoted string or `<...>` is not closed.
    #[error("unterminated quoted string or angle bracket")]
    Unterminated,
    /// A URI without a scheme, or with an empty host.
    #[error("malformed URI")]
    BadUri,
    /// Not `display-name <uri>;params` or `uri;params`.
    #[error("malformed name-addr")]
    BadNameAddr,
    /// Not `SIP/2.0/TRANSPORT host[:port];params`.
    #[error("malformed Via")]
    BadVia,
    /// Not `number METHOD`.
    #[error("malformed CSeq")]
    BadCSeq,
}

impl ValueError {
    /// A short stable label for metrics (`reason="..."`).
    pub fn reason(&self) -> &'static str {
        match self {
            ValueError::Empty => "empty_value",
            ValueError::NotUtf8 => "not_utf8",
            ValueError::BadNumber => "bad_number",
            ValueError::Unterminated => "unterminated",
            ValueError::BadUri => "bad_uri",
            ValueError::BadNameAddr => "bad_name_addr",
            ValueError::BadVia => "bad_via",
            ValueError::BadCSeq => "bad_cseq",
        }
    }
}

/// Why an edit could not be applied by a [`RequestEditor`](super::RequestEditor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EditError {
    /// A display-name label is longer than 15 characters (the CNAM limit).
    #[error("display-name label is {len} characters, over the 15-character CNAM limit")]
    LabelTooLong {
        /// Its length in characters.
        len: usize,
    },
    /// A label, header name or value contains a control character or line break, which
    /// would let it inject header lines.
    #[error("control character or line break in a header name, value or label")]
    ControlCharacter,
    /// A header name is not a token.
    #[error("header name is not a token")]
    BadHeaderName,
}
