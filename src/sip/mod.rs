//! Zero-copy SIP message view for the hot path.
//!
//! # What
//!
//! [`SipMessage::parse`] scans a datagram (or one message framed off a stream by
//! [`framing::message_len`]) once and keeps the original [`bytes::Bytes`] plus a small
//! index: the start line and, per header field, its [`HeaderName`] kind and byte ranges.
//! Nothing is copied. Header values are handed out as [`Unchecked`] bytes and parsed on
//! demand by typed accessors ([`SipMessage::top_via`], [`SipMessage::p_asserted_identities`],
//! [`SipMessage::cseq`] ...), whose results ([`Via`], [`NameAddr`], [`Uri`], [`CSeq`])
//! borrow from the buffer.
//!
//! Outgoing messages are built by copying the original with edits, without re-parsing:
//! [`RequestEditor`] (push Via, Max-Forwards, Record-Route, pop Route, Request-URI, labels,
//! display names), [`ResponseEditor`] (pop our Via) and [`ResponseBuilder`] (a response to a
//! request, e.g. 608 or 603 with Call-Info/Reason). Content-Length is always rewritten to
//! the body actually sent.
//!
//! # Why
//!
//! A general SIP library (rsip) allocates per header and takes microseconds per INVITE; it
//! also misses compact header names, `tel:` URIs and Content-Length framing, which a fraud
//! check cannot afford (a compact `f:` From must not slip past a From-based check).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use fraudwall::sip::{Limits, Method, SipMessage};
//!
//! let raw = Bytes::from_static(
//!     b"INVITE sip:+15550001@carrier.example SIP/2.0\r\n\
//!       v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
//!       f: \"Bank\" <sip:+8613800000001@gw.example>;tag=a\r\n\
//!       t: <sip:+15550001@carrier.example>\r\n\
//!       i: call-1\r\n\
//!       CSeq: 1 INVITE\r\n\
//!       P-Asserted-Identity: <sip:+8613800000001@gw.example>, <tel:+8613800000001>\r\n\
//!       l: 0\r\n\r\n",
//! );
//! let msg = SipMessage::parse(raw, &Limits::default()).unwrap();
//! assert_eq!(msg.method(), Some(Method::Invite));
//! assert_eq!(msg.call_id().unwrap().as_bytes(), b"call-1");
//! let from = msg.from().unwrap().unwrap();
//! assert_eq!(from.uri().user(), Some(&b"+8613800000001"[..]));
//! assert_eq!(msg.p_asserted_identities().count(), 2);
//! ```
//!
//! # Memory
//!
//! One `Vec` of header entries per message (28 bytes each, capacity min(24, max_headers)
//! up front), plus the shared buffer. Editors write into one preallocated `BytesMut`.
//!
//! # Quirks
//!
//! - Folded values keep their CR/LF bytes; every value parser treats them as whitespace.
//! - Header values are split at commas only by list accessors (Via, Route, PAI ...);
//!   commas inside quoted strings and `<...>` never split.
//! - Methods are case-sensitive, header names and URI schemes are not.
//! - Without Content-Length (UDP) the body is the rest of the datagram.

mod edit;
mod error;
pub mod framing;
mod header;
mod limits;
mod message;
mod method;
mod scan;
mod uri;
mod value;

pub(crate) use edit::Decimal;
pub use edit::{derive_to_tag, RequestEditor, ResponseBuilder, ResponseEditor, MAX_LABEL_CHARS};
pub use error::{EditError, FramingError, ParseError, ValueError};
pub use header::HeaderName;
pub use limits::Limits;
pub use message::{Header, SipMessage};
pub use method::Method;
pub(crate) use scan::is_token;
pub use scan::{ParamIter, Params};
pub use uri::{Scheme, Uri};
pub use value::{CSeq, NameAddr, Privacy, RemotePartyId, Unchecked, Via};
