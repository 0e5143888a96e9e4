//! The sans-I/O stateless proxy core (RFC 3261 §16, stateless per §16.11).
//!
//! # What
//!
//! [`ProxyCore::handle`] takes one received message ([`Inbound`]: bytes, source, local
//! address, transport) and the current time, pushes what must be sent onto a `Vec<Outbound>`
//! and returns an [`Outcome`] saying what happened (for metrics and the decision log). It
//! does no I/O, reads no clock and keeps no per-call state, so every rule below is tested
//! byte in, bytes out, and one `Arc<ProxyCore>` serves every transport thread.
//!
//! Requests:
//!
//! 0. from a source outside `allowed_sources` (when set; the next hops, the warn service and
//!    the trusted peers always count as allowed): dropped before parsing, unanswered,
//!    counted (`source_not_allowed`);
//! 1. parsed with the zero-copy [`SipMessage`] view (RFC 3261 §16.3 step 1); a request with a
//!    readable top Via but a bad Call-ID, CSeq, From, To, Max-Forwards, Proxy-Require or
//!    lower Via, a second From, To, Call-ID, CSeq, Max-Forwards or Content-Length line
//!    (compact `f`, `t`, `i`, `l` count alike, equal values too: `duplicate_from` ...
//!    `duplicate_content_length`, see [`RequestError`]), or one the parser refused (a broken
//!    header line, a short body, Content-Lengths that disagree: the `salvage` module), is
//!    answered `400` (`505` for another SIP version); anything else unparsable is dropped;
//!    the reason is counted either way, and an ACK is never answered, only dropped;
//! 2. an ACK whose To-tag is the one this proxy derived for its own final response (608,
//!    603, 4xx) is absorbed: the tag is recomputed from the ACK (Call-ID, From-tag and top
//!    Via, identical in the ACK for a non-2xx response), so no state is needed;
//! 3. a Request-URI scheme other than `sip`, `sips` and `tel` (§16.3 step 2; `tel:`, RFC
//!    3966, is how carriers address numbers, and goes to the next hop like `sip:`):
//!    `416 Unsupported URI Scheme`. Then OPTIONS addressed to the proxy (Request-URI host is
//!    us, with no user part or with Max-Forwards 0) is answered `200 OK` so switches can
//!    health-check it;
//! 4. Max-Forwards 0 (step 3): `483 Too Many Hops`; otherwise decremented (70 inserted if
//!    absent);
//! 5. loop (step 4): one of our Vias already carries the loop key this request would get
//!    (see the `branch` module): `482 Loop Detected`; a changed Request-URI is a spiral and
//!    is forwarded. Then Proxy-Require (step 5): this proxy supports no option tag, so a
//!    request naming any (several lines and comma lists alike) is answered `420 Bad
//!    Extension` with `Unsupported:` listing them all; on ACK and CANCEL, Proxy-Require is
//!    ignored and forwarded as it is (§8.2.2.3: it MUST be ignored there). Refusals of
//!    rules 3 to 5 are counted by [`RequestRefusal`];
//! 6. routing, confined: the top Route is popped if it names us. An *initial* request
//!    (no To-tag, or an INVITE whose To-tag comes without our dialog proof, rule 7; also
//!    CANCEL and an ACK without our Route) goes only to a next hop: to the next Route if that
//!    names a next hop, else to the first healthy next hop (the choice depends only on hop
//!    health, so retransmissions, CANCEL and a non-2xx ACK follow their INVITE). A Route
//!    naming anything else (another address, a host name, a strict route alike) is never
//!    followed: with `foreign_route = "ignore"` (the default) the Route headers are removed
//!    and the request goes to the next hop, with `"reject"` it is answered `403`. An
//!    *in-dialog* request goes to the next Route, else to the Request-URI when that is an IP
//!    literal that is not us, else to the next hop; a Route or Request-URI naming an address
//!    that is not a next hop, the warn service or in `trusted_peers`/`allowed_sources` is
//!    answered `403` (an ACK dropped). Refusals are counted by [`RoutingRefusal`];
//! 7. an initial INVITE is screened; an INVITE with a To-tag passes unscreened only when its
//!    top Route is ours and carries the proof this proxy wrote into its Record-Route (the
//!    `dialog` module: a keyed hash of the Call-ID and the caller's tag), else it is
//!    screened (and routed) like an initial one: a To-tag alone means nothing. Every
//!    identity value the configured sources hold is normalized by the numbering profile and
//!    put to the [`Screen`]: all P-Asserted-Identity values and all Remote-Party-ID values
//!    but `party=called` (both only from a trusted peer; `Privacy: id` does not stop the
//!    check, the network knows the number), and From. The most severe verdict wins (a
//!    verdict about a number before one about its absence, then block > warn > tag > allow,
//!    then the earlier source in `identity_order`), and the decision names the header that
//!    decided (the `identity` module). A panic in the screen is caught and that value
//!    allowed (fail open). Then the action:
//!    * allow: forwarded unchanged but for Via, Max-Forwards (and Record-Route if on);
//!    * tag: `X-Fraud-Label: suspected-fraud;category=<c>;score=<s>` added, and optionally the
//!      display name of P-Asserted-Identity (and From) prefixed with a label, 15 characters
//!      at most in all;
//!    * warn: the Request-URI is rewritten to the announcement service, the original
//!      Request-URI carried in `X-Fraud-Original-To: <uri>` and the reason in
//!      `X-Fraud-Reason: suspected-fraud;category=<c>;score=<s>`, and the request sent to
//!      the service (warn without a configured service falls back to tag);
//!    * block: never forwarded; answered `608 Rejected` with
//!      `Call-Info: <redress-url>;purpose=jcard` (RFC 8688), or with 603+ (ATIS-1000099,
//!      the profile US rules, 47 CFR 64.1200(k)(9), require for calls blocked on
//!      analytics): `603 Network Blocked` with
//!      `Reason: SIP;cause=603;text="v=analytics1;url=<redress-url>";location=RLN` and,
//!      with a redress URL, the same `Call-Info` as the 608;
//! 8. a `sips:` Request-URI whose destination is not reached over TLS is answered `416`
//!    (`sips_without_tls`): SIPS means TLS on every hop (RFC 3261 §26.2.2, RFC 5630), so it
//!    is never forwarded in the clear. Otherwise forwarded with `received` (and `rport` when asked for, or always on TCP) set on the
//!    sender's Via, our Via pushed with a §16.11 branch, and, if configured,
//!    `Record-Route: <sip:ADDR;lr;fwd=PROOF>` on dialog-creating requests (with
//!    `;transport=tcp` or `;transport=tls` when the request came over a stream; a request
//!    crossing between TLS and UDP/TCP gets the leaving side's port in its Via, since the
//!    TLS listener has its own, `tls.port`); a peer the transport verified
//!    ([`Inbound::verified_peer`]: a TLS client certificate in `tls.trusted_identities`)
//!    counts as a trusted peer;
//!    P-Asserted-Identity and Remote-Party-ID from a sender that is not a trusted peer are
//!    removed first (RFC 3325 §5), counted in [`Outcome::identity_removed`]; a forwarded
//!    copy too big for a UDP datagram (65,507 bytes of payload over IPv4, 65,527 over IPv6)
//!    is not sent but answered `513 Message Too Large`, so the kernel's refusal is never
//!    blamed on the next hop;
//! 9. every answer the core generates (rules 1-7) to a UDP source that is neither a trusted
//!    peer nor a next hop is at most as large as the request that drew it: built without
//!    its optional headers if needed, else not sent (the `reply` module; a size cap rather
//!    than a rate limit, so no state and no amplification for any source), counted by
//!    [`ReplyFit`].
//!
//! In redirect mode (`sip.mode = "redirect"`) rules 1 to 5 and 9 apply as they are, and then
//! nothing is forwarded: every INVITE is screened as in rule 7 and answered with its verdict
//! (302, 404/503, the block answer), OPTIONS and CANCEL get 200, ACK is absorbed, other
//! methods get 405 or 403 (the `redirect` module).
//!
//! Behavioural detection (`[detection] enabled`, [`ProxyCore::with_detector`]): the core
//! tells the [`Detector`] what it sees of each call, keyed by a hash of the Call-ID, with the
//! `now` it was given (no clock, no I/O, no allocation): a screened INVITE with its deciding
//! caller and callee (after the verdict; a blocked call is also told as failed with the block
//! status, since its answer is ours), a 180/183, 2xx or 3xx-6xx response to an INVITE that
//! it relays, a CANCEL, and a BYE that it forwards: with detection on, initial INVITEs are
//! record-routed even when `proxy.record_route` is off, so the BYE comes back through the
//! proxy (a call's duration is what tells a 3-second robocall from a conversation). Redirect mode tells
//! only the INVITEs (it sees no outcome, so only the volume, distinct-callee and sequential
//! features grow from its calls). The policy's `behaviour` stage judges the caller from what
//! the detector learnt from the earlier calls. [`Outcome::detection`] says what was told.
//!
//! Responses: the top Via must be ours (our branch prefix and sent-by), else the response is
//! dropped; answers to our own health probes are absorbed and mark the hop up; otherwise our
//! Via is popped and the response sent to the next Via's `received`/`rport`/sent-by over its
//! transport.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use fraudwall::policy::{CallContext, Screen, Verdict};
//! use fraudwall::proxy::core::{CoreConfig, Disposition, ProxyCore};
//! use fraudwall::proxy::{Inbound, Transport};
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! struct AllowAll;
//! impl Screen for AllowAll {
//!     fn screen(&self, _: &CallContext<'_>) -> Verdict { Verdict::unlisted() }
//! }
//! let core = ProxyCore::new(CoreConfig::default(), Arc::new(AllowAll)).unwrap();
//! let invite = Bytes::from_static(
//!     b"INVITE sip:+15550001@127.0.0.1 SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776\r\n\
//!       From: <sip:+12025550123@192.0.2.1>;tag=a\r\nTo: <sip:+15550001@127.0.0.1>\r\n\
//!       Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
//! let mut out = Vec::new();
//! let outcome = core.handle(
//!     Inbound {
//!         data: invite,
//!         source: "192.0.2.1:5060".parse().unwrap(),
//!         local: "127.0.0.1:5060".parse().unwrap(),
//!         transport: Transport::Udp,
//!         verified_peer: false,
//!         queued: None,
//!     },
//!     Instant::now(),
//!     &mut out,
//! );
//! assert_eq!(outcome.disposition, Disposition::Forwarded);
//! assert_eq!(out[0].destination, "127.0.0.1:5080".parse().unwrap());
//! assert!(outcome.decision.is_some());
//! ```
//!
//! # Memory and cost
//!
//! Per message: the parser's header index and the editor's output buffer (a few small
//! allocations); no `String` except the [`Decision`] of an initial INVITE. Shared state is the
//! immutable config and a few atomics per next hop.
//!
//! # Quirks
//!
//! - The core does no DNS: next hops are socket addresses, and a Route, Request-URI or Via
//!   whose host is a name is not used as a destination (an initial request's foreign Route
//!   is ignored or refused by rule 6; an in-dialog Route/Request-URI falls back to the next
//!   hop; a response whose next Via names a host without `received` is dropped).
//! - The dialog key is drawn at random in [`ProxyCore::new`] unless
//!   [`CoreConfig::dialog_key`] is given (the runtime reads `proxy.dialog_key_file`): the
//!   one place the core touches the system, at construction, never per message.
//! - Identity: no value hides another. Every believable value is screened, so a clean
//!   first PAI cannot hide a listed second one, and a junk or anonymous PAI cannot hide a
//!   listed From (a number outranks the lack of one); `identity_order` only breaks ties.
//!   Untrusted PAI and RPID are neither believed nor forwarded. The common call (one From,
//!   or a trusted PAI equal to From) still costs one lookup.
//! - `received`/`rport` are written into the sender's Via in place; every other header line
//!   is copied byte for byte (compact names, case and folding kept).

pub(crate) mod actions;
pub(crate) mod branch;
pub(crate) mod config;
mod dialog;
mod hops;
mod identity;
mod net;
pub(crate) mod overload;
mod redirect;
mod reply;
mod request;
mod response;
mod salvage;

pub use config::{
    ActionsConfig, BlockResponse, CoreConfig, CoreConfigError, ForeignRoute, HealthConfig,
    IdentitySource, LimitsConfig, NextHop, NextHopEntry, OtherResponse, ProxyConfig, RedirectAllow,
    RedirectConfig, MAX_DISPLAY_LABEL,
};
pub use dialog::DialogKey;
pub use identity::IdentityRemoved;
pub use overload::{OverloadConfig, OverloadConfigError, OverloadStatus, ShedAction};

use crate::blocklist::Action;
use crate::detection::{CallEvent, CallEventKind, CallKey, Detector};
use crate::numbers::{Caller, E164};
use crate::policy::{Screen, Verdict, Verstat};
use crate::proxy::{Inbound, Outbound, Transport};
use crate::sip::{Limits, Method, SipMessage};
use config::Compiled;
use hops::Hops;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// What kind of message came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// A request, by method.
    Request(Method),
    /// A response, by status code.
    Response(u16),
    /// Not parsable as SIP.
    Unparsed,
}

impl MessageClass {
    /// A low-cardinality label: the method token (`INVITE`, `other` for extensions), the
    /// status class (`1xx` .. `6xx`), or `unparsed`.
    pub fn label(self) -> &'static str {
        match self {
            MessageClass::Request(m) => m.as_str().unwrap_or("other"),
            MessageClass::Response(code) => match code / 100 {
                1 => "1xx",
                2 => "2xx",
                3 => "3xx",
                4 => "4xx",
                5 => "5xx",
                _ => "6xx",
            },
            MessageClass::Unparsed => "unparsed",
        }
    }
}

/// What the core did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Relayed: a request to its next hop (or the announcement service), a response upstream.
    Forwarded,
    /// Answered by the proxy itself with this status (200 to OPTIONS, 400, 403, 416, 420,
    /// 482, 483, 505, 513, 603, 608).
    Answered(u16),
    /// Consumed: an ACK for our own final response, an answer to our own probe.
    Absorbed,
    /// Dropped, and why (`parse`, `bad_via`, `via_not_ours`, `no_route_back`, ...).
    Dropped(&'static str),
}

impl Disposition {
    /// A low-cardinality label: `forwarded`, `answered`, `absorbed` or `dropped`.
    pub fn label(self) -> &'static str {
        match self {
            Disposition::Forwarded => "forwarded",
            Disposition::Answered(_) => "answered",
            Disposition::Absorbed => "absorbed",
            Disposition::Dropped(_) => "dropped",
        }
    }
}

/// The dialog proof of an INVITE with a To-tag (rule 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProofCheck {
    /// Our Route carried a valid proof: passed as in-dialog, unscreened.
    Accepted,
    /// No proof, or a wrong one: screened and routed like an initial INVITE.
    Refused,
}

impl ProofCheck {
    /// Every value, in label order.
    pub const ALL: [ProofCheck; 2] = [ProofCheck::Accepted, ProofCheck::Refused];

    /// The metric label: `accepted`, `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProofCheck::Accepted => "accepted",
            ProofCheck::Refused => "refused",
        }
    }
}

/// A destination the core would not route to (rule 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoutingRefusal {
    /// An initial request's Route named neither us nor a next hop: Route removed, sent to
    /// the next hop (`foreign_route = "ignore"`).
    RouteIgnored,
    /// The same, answered 403 (`foreign_route = "reject"`).
    RouteRejected,
    /// An in-dialog request's Route named a destination that is not a next hop, the warn
    /// service or a configured peer: 403.
    InDialogRoute,
    /// An in-dialog request's Request-URI did: 403.
    InDialogRequestUri,
}

impl RoutingRefusal {
    /// Every value, in label order.
    pub const ALL: [RoutingRefusal; 4] = [
        RoutingRefusal::RouteIgnored,
        RoutingRefusal::RouteRejected,
        RoutingRefusal::InDialogRoute,
        RoutingRefusal::InDialogRequestUri,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingRefusal::RouteIgnored => "route_ignored",
            RoutingRefusal::RouteRejected => "route_rejected",
            RoutingRefusal::InDialogRoute => "in_dialog_route",
            RoutingRefusal::InDialogRequestUri => "in_dialog_request_uri",
        }
    }
}

/// Why a request was malformed (RFC 3261 §16.3 step 1): answered `400 Bad Request`, or
/// dropped when it is an ACK or has no usable top Via. Counted as
/// `fraudwall_parse_errors_total{reason}`, with the parser's own [`ParseError`] reasons.
///
/// [`ParseError`]: crate::sip::ParseError
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestError {
    /// No Via at all.
    NoVia,
    /// A Via value that does not parse.
    BadVia,
    /// The Request-URI is not a URI.
    BadRequestUri,
    /// Two From values (lines, or a comma list; `f` counts).
    DuplicateFrom,
    /// Two To values (`t` counts).
    DuplicateTo,
    /// Two Call-ID lines (`i` counts).
    DuplicateCallId,
    /// Two CSeq lines.
    DuplicateCSeq,
    /// Two Max-Forwards lines.
    DuplicateMaxForwards,
    /// Two Content-Length lines (`l` counts), even with one value.
    DuplicateContentLength,
    /// No or an empty Call-ID.
    NoCallId,
    /// No CSeq, one that does not parse, or one whose method is not the request's.
    BadCSeq,
    /// No From, or one that does not parse.
    BadFrom,
    /// No To, or one that does not parse.
    BadTo,
    /// Max-Forwards is not a number.
    BadMaxForwards,
    /// A Proxy-Require value that is not a comma-separated list of option tags (tokens).
    BadProxyRequire,
}

impl RequestError {
    /// Every value, in label order.
    pub const ALL: [RequestError; 15] = [
        RequestError::NoVia,
        RequestError::BadVia,
        RequestError::BadRequestUri,
        RequestError::DuplicateFrom,
        RequestError::DuplicateTo,
        RequestError::DuplicateCallId,
        RequestError::DuplicateCSeq,
        RequestError::DuplicateMaxForwards,
        RequestError::DuplicateContentLength,
        RequestError::NoCallId,
        RequestError::BadCSeq,
        RequestError::BadFrom,
        RequestError::BadTo,
        RequestError::BadMaxForwards,
        RequestError::BadProxyRequire,
    ];

    /// The metric label (`reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            RequestError::NoVia => "no_via",
            RequestError::BadVia => "bad_via",
            RequestError::BadRequestUri => "bad_request_uri",
            RequestError::DuplicateFrom => "duplicate_from",
            RequestError::DuplicateTo => "duplicate_to",
            RequestError::DuplicateCallId => "duplicate_call_id",
            RequestError::DuplicateCSeq => "duplicate_cseq",
            RequestError::DuplicateMaxForwards => "duplicate_max_forwards",
            RequestError::DuplicateContentLength => "duplicate_content_length",
            RequestError::NoCallId => "no_call_id",
            RequestError::BadCSeq => "bad_cseq",
            RequestError::BadFrom => "bad_from",
            RequestError::BadTo => "bad_to",
            RequestError::BadMaxForwards => "bad_max_forwards",
            RequestError::BadProxyRequire => "bad_proxy_require",
        }
    }
}

/// A well-formed request the proxy refused by a check of RFC 3261 §16.3 (steps 2 to 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestRefusal {
    /// Step 2: the Request-URI scheme is not sip, sips or tel: `416 Unsupported URI Scheme`.
    UnsupportedUriScheme,
    /// Step 3: Max-Forwards 0: `483 Too Many Hops`.
    TooManyHops,
    /// Step 4: the request has been here before: `482 Loop Detected`.
    Loop,
    /// Step 5: Proxy-Require names an option tag (the proxy supports none): `420 Bad
    /// Extension` with `Unsupported` listing them.
    BadExtension,
    /// A `sips:` Request-URI whose next hop is not reached over TLS: SIPS asks for TLS on
    /// every hop (RFC 3261 §26.2.2, RFC 5630 §3.1.3), which this node cannot give it, so
    /// it is refused rather than forwarded in the clear: `416 Unsupported URI Scheme`.
    SipsWithoutTls,
}

impl RequestRefusal {
    /// Every value, in label order.
    pub const ALL: [RequestRefusal; 5] = [
        RequestRefusal::UnsupportedUriScheme,
        RequestRefusal::TooManyHops,
        RequestRefusal::Loop,
        RequestRefusal::BadExtension,
        RequestRefusal::SipsWithoutTls,
    ];

    /// The metric label (`reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            RequestRefusal::UnsupportedUriScheme => "unsupported_uri_scheme",
            RequestRefusal::TooManyHops => "too_many_hops",
            RequestRefusal::Loop => "loop",
            RequestRefusal::BadExtension => "bad_extension",
            RequestRefusal::SipsWithoutTls => "sips_without_tls",
        }
    }

    /// The status and reason phrase the refusal is answered with.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            RequestRefusal::UnsupportedUriScheme => (416, "Unsupported URI Scheme"),
            RequestRefusal::TooManyHops => (483, "Too Many Hops"),
            RequestRefusal::Loop => (482, "Loop Detected"),
            RequestRefusal::BadExtension => (420, "Bad Extension"),
            RequestRefusal::SipsWithoutTls => (416, "Unsupported URI Scheme"),
        }
    }
}

/// How an answer to an untrusted UDP source was fitted under the request's size (rule 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyFit {
    /// Sent without its optional headers.
    Trimmed,
    /// Not sent: even the minimal answer was larger than the request.
    Withheld,
}

impl ReplyFit {
    /// Every value, in label order.
    pub const ALL: [ReplyFit; 2] = [ReplyFit::Trimmed, ReplyFit::Withheld];

    /// The metric label: `trimmed`, `withheld`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyFit::Trimmed => "trimmed",
            ReplyFit::Withheld => "withheld",
        }
    }
}

/// What the core's protections did with one message, for metrics; all empty when none
/// applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checks {
    /// The source is not in `allowed_sources` (the message was dropped unparsed).
    pub source_refused: bool,
    /// The dialog proof of an INVITE with a To-tag.
    pub proof: Option<ProofCheck>,
    /// A destination refused or ignored.
    pub routing: Option<RoutingRefusal>,
    /// An answer trimmed or withheld by the reflection rule.
    pub reply: Option<ReplyFit>,
    /// A §16.3 check that refused the request (416, 420, 482, 483).
    pub request: Option<RequestRefusal>,
    /// The verdict's action could not be carried out (an answer or header that could not
    /// be written) and the call was allowed instead: fail open.
    pub fail_open: bool,
    /// A new INVITE shed by the overload policy, and how (the `overload` module).
    pub shed: Option<ShedAction>,
}

/// What happened to one message: for metrics and, with a [`Decision`], the decision log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What came in (direction "in").
    pub class: MessageClass,
    /// What the core did.
    pub disposition: Disposition,
    /// Why the message was malformed (dropped or answered 400): the label of a
    /// [`ParseError`](crate::sip::ParseError) (`bad_start_line`, `truncated` ...) or of a
    /// [`RequestError`] (`no_call_id`, `duplicate_cseq` ...).
    pub error: Option<&'static str>,
    /// The caller check of an initial INVITE.
    pub decision: Option<Decision>,
    /// P-Asserted-Identity and Remote-Party-ID lines removed from a forwarded request
    /// because its sender is not a trusted peer (RFC 3325 §5).
    pub identity_removed: IdentityRemoved,
    /// What the core told the behavioural detector about this message (with
    /// `[detection] enabled`): the INVITE of a screened call, a ringing, answer or final
    /// error response to an INVITE, a forwarded CANCEL or BYE.
    pub detection: Option<CallEventKind>,
    /// What the source, routing, dialog-proof and reflection checks did.
    pub checks: Checks,
}

impl Outcome {
    fn new(class: MessageClass, disposition: Disposition) -> Outcome {
        Outcome {
            class,
            disposition,
            error: None,
            decision: None,
            identity_removed: IdentityRemoved::default(),
            detection: None,
            checks: Checks::default(),
        }
    }

    /// An answer with `status` that the reflection rule fitted as `fit`: a withheld answer
    /// is a drop (`reflection_limit`).
    fn answered(class: MessageClass, status: u16, fit: Option<ReplyFit>) -> Outcome {
        let disposition = match fit {
            Some(ReplyFit::Withheld) => Disposition::Dropped("reflection_limit"),
            _ => Disposition::Answered(status),
        };
        let mut o = Outcome::new(class, disposition);
        o.checks.reply = fit;
        o
    }

    /// What was sent because of this message (direction "out"): the same class when
    /// forwarded, the response when answered, nothing when absorbed or dropped.
    pub fn sent(&self) -> Option<MessageClass> {
        match self.disposition {
            Disposition::Forwarded => Some(self.class),
            Disposition::Answered(code) => Some(MessageClass::Response(code)),
            Disposition::Absorbed | Disposition::Dropped(_) => None,
        }
    }
}

/// The caller check of one initial INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The Call-ID.
    pub call_id: String,
    /// Which header decided: the one whose value drew the winning verdict (`None`: no
    /// identity value at all, screened as anonymous).
    pub identity: Option<IdentitySource>,
    /// The deciding value as received (the URI), empty when there was none.
    pub caller_raw: String,
    /// The deciding value, normalized.
    pub caller: Caller,
    /// The callee, normalized (from the Request-URI, else To), when it is a number.
    pub callee: Option<E164>,
    /// The Request-URI as received.
    pub callee_raw: String,
    /// The peer group the call entered from (`default`: a source in no group).
    pub peer_group: std::sync::Arc<str>,
    /// What the network asserted about the caller ID (believed from trusted peers only).
    pub verstat: Verstat,
    /// The screen's verdict for the deciding value (the most severe of all values).
    pub verdict: Verdict,
    /// What the core did: the verdict's action, except warn without a configured
    /// announcement service (tag) or an action that could not be carried out (allow).
    pub applied: Action,
}

/// The stateless proxy core. Build one with [`ProxyCore::new`] and share it in an `Arc`.
pub struct ProxyCore {
    config: CoreConfig,
    compiled: Compiled,
    limits: Limits,
    hops: Hops,
    screen: Arc<dyn Screen>,
    /// The behavioural detector told about each call's events (`None`: detection off).
    detector: Option<Arc<Detector>>,
    /// The key of the dialog proofs written into Record-Route.
    dialog_key: DialogKey,
    /// The first local address seen per transport (UDP, TCP): the sent-by of probes when no
    /// `advertise` is configured.
    seen_local: [OnceLock<SocketAddr>; Transport::ALL.len()],
    /// Sent-by text per local address (a few listen addresses), so the hot path does not
    /// format socket addresses.
    sent_by_cache: [OnceLock<(SocketAddr, net::SentByText)>; 4],
    /// The overload state (`[overload]`).
    overload: overload::Overload,
}

impl std::fmt::Debug for ProxyCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyCore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ProxyCore {
    /// Checks the configuration and builds the core around a [`Screen`].
    pub fn new(config: CoreConfig, screen: Arc<dyn Screen>) -> Result<Self, CoreConfigError> {
        let compiled = config.compile()?;
        let overload = overload::Overload::new(config.overload);
        let dialog_key = match config.dialog_key {
            Some(k) => k,
            None => DialogKey::random().map_err(|e| CoreConfigError::NoRandomKey(e.to_string()))?,
        };
        Ok(ProxyCore {
            dialog_key,
            limits: config.limits.to_limits(),
            hops: Hops::new(&compiled.hops, compiled.health),
            compiled,
            config,
            screen,
            detector: None,
            seen_local: Default::default(),
            sent_by_cache: Default::default(),
            overload,
        })
    }

    /// The core telling `detector` what happens to each call (`None`: detection off, no
    /// cost). The detector is sans-I/O too: the core passes it the `now` it was given.
    pub fn with_detector(mut self, detector: Option<Arc<Detector>>) -> Self {
        self.detector = detector;
        self
    }

    /// Tells the detector one event of the call `call_id` (nothing when detection is off).
    /// Returns the kind told, for the metrics.
    fn observe(&self, call_id: &[u8], kind: CallEventKind, now: Instant) -> Option<CallEventKind> {
        let d = self.detector.as_ref()?;
        let call = CallKey::of_call_id(call_id);
        d.observe(CallEvent { call, kind }, now);
        Some(kind)
    }

    /// Our sent-by (`advertise`, else the local address) as text, from the cache when the
    /// local address has been seen before.
    fn sent_by_text(&self, local: SocketAddr) -> net::SentByText {
        let format = || {
            let mut t = net::SentByText::new();
            let _ = std::fmt::Write::write_fmt(
                &mut t,
                format_args!("{}", self.compiled.sent_by(local)),
            );
            t
        };
        for slot in &self.sent_by_cache {
            match slot.get() {
                Some((addr, text)) if *addr == local => return *text,
                Some(_) => continue,
                None => return slot.get_or_init(|| (local, format())).1,
            }
        }
        format()
    }

    /// The configuration in use.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// How this node stands on the SIP path (`sip.mode`): an inline proxy or a redirect
    /// server. Its name is the decision log's `front`.
    pub fn mode(&self) -> crate::proxy::listen::SipMode {
        self.config.sip.mode
    }

    /// Whether messages from `ip` are taken (`allowed_sources`, with the next hops, the warn
    /// service and the trusted peers; everyone when `allowed_sources` is empty). Stream
    /// transports ask it at accept.
    pub fn source_allowed(&self, ip: std::net::IpAddr) -> bool {
        self.compiled.source_allowed(ip)
    }

    /// Handles one received message: pushes what to send onto `out`, returns what happened.
    pub fn handle(&self, msg: Inbound, now: Instant, out: &mut Vec<Outbound>) -> Outcome {
        let slot = &self.seen_local[transport_slot(msg.transport)];
        if slot.get().is_none() {
            let _ = slot.set(msg.local);
        }
        self.overload.observe(msg.queued, now);
        if !self.compiled.source_allowed(msg.source.ip()) {
            let mut o = Outcome::new(
                MessageClass::Unparsed,
                Disposition::Dropped("source_not_allowed"),
            );
            o.checks.source_refused = true;
            return o;
        }
        let parsed = match SipMessage::parse(msg.data.clone(), &self.limits) {
            Ok(p) => p,
            Err(e) => return self.unparsed(&msg, &e, out),
        };
        if parsed.is_request() {
            self.request(&msg, &parsed, now, out)
        } else {
            self.response(&msg, &parsed, now, out)
        }
    }

    /// A message the parser refused: answered 400 (505 for another SIP version) when it is
    /// a request whose top Via can still be read, else dropped; counted by reason either way.
    fn unparsed(
        &self,
        msg: &Inbound,
        e: &crate::sip::ParseError,
        out: &mut Vec<Outbound>,
    ) -> Outcome {
        let mut o = Outcome::new(MessageClass::Unparsed, Disposition::Dropped("parse"));
        o.error = Some(e.reason());
        if let Some(s) = salvage::salvage(msg, e, &self.limits) {
            if let Ok(Some(top)) = s.message.top_via() {
                let to = reply::ReplyTo::new(&self.compiled, msg, &top);
                // The answer has no optional header to drop.
                let fit = to.send(salvage::answer(&s), || salvage::answer(&s), out);
                let answered = Outcome::answered(o.class, s.status, fit);
                o.disposition = answered.disposition;
                o.checks = answered.checks;
            }
        }
        o
    }

    /// Sends the next-hop health probes that are due: an `OPTIONS` to each hop every
    /// `health.probe_interval`; any answer marks the hop up, `health.max_missed`
    /// unanswered in a row mark it down. Call about once a second.
    pub fn poll_timeout(&self, now: Instant, out: &mut Vec<Outbound>) {
        self.overload.poll(now);
        // Without a sent-by (no `advertise`, no message received yet) a probe could not be
        // answered; probing then would only count misses and mark healthy hops down.
        let any_local = self.seen_local.iter().find_map(|s| s.get()).copied();
        if self.compiled.advertise.is_none() && any_local.is_none() {
            return;
        }
        self.hops.due_probes(now, |p| {
            let local = self.seen_local[transport_slot(p.hop.transport)]
                .get()
                .copied()
                .or(any_local);
            if let Some(data) = net::probe(&self.compiled, local, &p) {
                out.push(Outbound {
                    data,
                    destination: p.hop.address,
                    transport: p.hop.transport,
                    // From the address its Via names, so the answer (over a stream: the
                    // connection) comes back to a sent-by that is ours.
                    source: local.map(|l| l.ip()),
                });
            }
        });
    }

    /// The transport could not send to `destination` (ICMP port unreachable, connection
    /// refused): a next hop at that address is marked down and the next one takes over.
    pub fn on_send_error(&self, destination: SocketAddr, transport: Transport, now: Instant) {
        self.hops.send_error(destination, transport, now);
    }

    /// Whether new INVITEs are being shed (`[overload]`), and how often that began.
    pub fn overload_status(&self) -> OverloadStatus {
        self.overload.status()
    }

    /// Whether next hop `index` (config order) is considered up now.
    pub fn hop_is_up(&self, index: usize, now: Instant) -> bool {
        self.hops.is_up(index, now)
    }
}

fn transport_slot(t: Transport) -> usize {
    t.index()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_is_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ProxyCore>();
        send_sync::<Outcome>();
    }

    #[test]
    fn refusal_metrics_are_indexed_by_discriminant() {
        for (i, r) in RequestRefusal::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i);
        }
        let labels: std::collections::HashSet<_> =
            RequestError::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(labels.len(), RequestError::ALL.len());
    }

    #[test]
    fn labels() {
        assert_eq!(MessageClass::Request(Method::Other).label(), "other");
        assert_eq!(MessageClass::Response(183).label(), "1xx");
        assert_eq!(MessageClass::Unparsed.label(), "unparsed");
        assert_eq!(Disposition::Answered(608).label(), "answered");
        assert_eq!(Disposition::Dropped("x").label(), "dropped");
    }
}
