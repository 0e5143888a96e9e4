//! Header names: the kinds the proxy cares about, compact forms, case-insensitive matching.

/// The kind of a header field, recognised from its full or compact name in any case
/// (RFC 3261 §7.3.3 and the IANA compact-form registry). Unknown names are
/// [`HeaderName::Other`]; look those up by their text with
/// [`SipMessage::headers`](super::SipMessage::headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    /// Via (`v`).
    Via,
    /// From (`f`).
    From,
    /// To (`t`).
    To,
    /// Call-ID (`i`).
    CallId,
    /// CSeq.
    CSeq,
    /// Max-Forwards.
    MaxForwards,
    /// Contact (`m`).
    Contact,
    /// Content-Length (`l`).
    ContentLength,
    /// Content-Type (`c`).
    ContentType,
    /// Content-Encoding (`e`).
    ContentEncoding,
    /// Route.
    Route,
    /// Record-Route.
    RecordRoute,
    /// P-Asserted-Identity (RFC 3325).
    PAssertedIdentity,
    /// P-Preferred-Identity (RFC 3325).
    PPreferredIdentity,
    /// Remote-Party-ID (draft-ietf-sip-privacy-04, still widely deployed).
    RemotePartyId,
    /// Privacy (RFC 3323).
    Privacy,
    /// Supported (`k`).
    Supported,
    /// Subject (`s`).
    Subject,
    /// Session-Expires (`x`).
    SessionExpires,
    /// Accept-Contact (`a`).
    AcceptContact,
    /// Referred-By (`b`).
    ReferredBy,
    /// Request-Disposition (`d`).
    RequestDisposition,
    /// Reject-Contact (`j`).
    RejectContact,
    /// Identity-Info (`n`).
    IdentityInfo,
    /// Event (`o`).
    Event,
    /// Refer-To (`r`).
    ReferTo,
    /// Allow-Events (`u`).
    AllowEvents,
    /// Identity (`y`).
    Identity,
    /// Proxy-Require (RFC 3261 §20.29; no compact form).
    ProxyRequire,
    /// Any other header.
    Other,
}

impl HeaderName {
    /// Classifies a header name (full or compact form, any case).
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if name.len() == 1 {
            return match name[0].to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'e' => HeaderName::ContentEncoding,
                b'k' => HeaderName::Supported,
                b's' => HeaderName::Subject,
                b'x' => HeaderName::SessionExpires,
                b'a' => HeaderName::AcceptContact,
                b'b' => HeaderName::ReferredBy,
                b'd' => HeaderName::RequestDisposition,
                b'j' => HeaderName::RejectContact,
                b'n' => HeaderName::IdentityInfo,
                b'o' => HeaderName::Event,
                b'r' => HeaderName::ReferTo,
                b'u' => HeaderName::AllowEvents,
                b'y' => HeaderName::Identity,
                _ => HeaderName::Other,
            };
        }
        let candidates = BY_LENGTH.get(name.len()).copied().unwrap_or_default();
        // Fast path: the canonical spelling, compared byte for byte.
        let Some(&first) = name.first() else {
            return HeaderName::Other;
        };
        for (full, kind) in candidates {
            let full = full.as_bytes();
            if full[0] == first && full == name {
                return *kind;
            }
        }
        let first = first.to_ascii_lowercase();
        for (full, kind) in candidates {
            let full = full.as_bytes();
            if full[0].to_ascii_lowercase() == first && full.eq_ignore_ascii_case(name) {
                return *kind;
            }
        }
        HeaderName::Other
    }

    /// The canonical (full) name, or `None` for [`HeaderName::Other`].
    pub fn as_str(self) -> Option<&'static str> {
        FULL_NAMES.iter().find(|(_, k)| *k == self).map(|(n, _)| *n)
    }
}

/// Full names, for [`HeaderName::as_str`].
const FULL_NAMES: &[(&str, HeaderName)] = &[
    ("Via", HeaderName::Via),
    ("From", HeaderName::From),
    ("To", HeaderName::To),
    ("Call-ID", HeaderName::CallId),
    ("CSeq", HeaderName::CSeq),
    ("Max-Forwards", HeaderName::MaxForwards),
    ("Contact", HeaderName::Contact),
    ("Content-Length", HeaderName::ContentLength),
    ("Content-Type", HeaderName::ContentType),
    ("Content-Encoding", HeaderName::ContentEncoding),
    ("Route", HeaderName::Route),
    ("Record-Route", HeaderName::RecordRoute),
    ("P-Asserted-Identity", HeaderName::PAssertedIdentity),
    ("P-Preferred-Identity", HeaderName::PPreferredIdentity),
    ("Remote-Party-ID", HeaderName::RemotePartyId),
    ("Privacy", HeaderName::Privacy),
    ("Supported", HeaderName::Supported),
    ("Subject", HeaderName::Subject),
    ("Session-Expires", HeaderName::SessionExpires),
    ("Accept-Contact", HeaderName::AcceptContact),
    ("Referred-By", HeaderName::ReferredBy),
    ("Request-Disposition", HeaderName::RequestDisposition),
    ("Reject-Contact", HeaderName::RejectContact),
    ("Identity-Info", HeaderName::IdentityInfo),
    ("Event", HeaderName::Event),
    ("Refer-To", HeaderName::ReferTo),
    ("Allow-Events", HeaderName::AllowEvents),
    ("Identity", HeaderName::Identity),
    ("Proxy-Require", HeaderName::ProxyRequire),
];

/// Full names grouped by length, so a lookup compares against one to four candidates.
const BY_LENGTH: [&[(&str, HeaderName)]; 21] = [
    &[],
    &[],
    &[("To", HeaderName::To)],
    &[("Via", HeaderName::Via)],
    &[("From", HeaderName::From), ("CSeq", HeaderName::CSeq)],
    &[("Route", HeaderName::Route), ("Event", HeaderName::Event)],
    &[],
    &[
        ("Call-ID", HeaderName::CallId),
        ("Contact", HeaderName::Contact),
        ("Privacy", HeaderName::Privacy),
        ("Subject", HeaderName::Subject),
    ],
    &[
        ("Refer-To", HeaderName::ReferTo),
        ("Identity", HeaderName::Identity),
    ],
    &[("Supported", HeaderName::Supported)],
    &[],
    &[("Referred-By", HeaderName::ReferredBy)],
    &[
        ("Max-Forwards", HeaderName::MaxForwards),
        ("Content-Type", HeaderName::ContentType),
        ("Record-Route", HeaderName::RecordRoute),
        ("Allow-Events", HeaderName::AllowEvents),
    ],
    &[
        ("Identity-Info", HeaderName::IdentityInfo),
        ("Proxy-Require", HeaderName::ProxyRequire),
    ],
    &[
        ("Content-Length", HeaderName::ContentLength),
        ("Accept-Contact", HeaderName::AcceptContact),
        ("Reject-Contact", HeaderName::RejectContact),
    ],
    &[
        ("Remote-Party-ID", HeaderName::RemotePartyId),
        ("Session-Expires", HeaderName::SessionExpires),
    ],
    &[("Content-Encoding", HeaderName::ContentEncoding)],
    &[],
    &[],
    &[
        ("P-Asserted-Identity", HeaderName::PAssertedIdentity),
        ("Request-Disposition", HeaderName::RequestDisposition),
    ],
    &[("P-Preferred-Identity", HeaderName::PPreferredIdentity)],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_any_case_names() {
        assert_eq!(HeaderName::from_bytes(b"i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"I"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"m"), HeaderName::Contact);
        assert_eq!(HeaderName::from_bytes(b"l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_bytes(b"f"), HeaderName::From);
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"call-id"), HeaderName::CallId);
        assert_eq!(
            HeaderName::from_bytes(b"P-ASSERTED-IDENTITY"),
            HeaderName::PAssertedIdentity
        );
        assert_eq!(HeaderName::from_bytes(b"cseq"), HeaderName::CSeq);
        assert_eq!(HeaderName::from_bytes(b"X-Fraud-Label"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"z"), HeaderName::Other);
        assert_eq!(HeaderName::Via.as_str(), Some("Via"));
        assert_eq!(HeaderName::Other.as_str(), None);
    }

    #[test]
    fn length_table_covers_every_full_name() {
        for (name, kind) in FULL_NAMES {
            assert_eq!(HeaderName::from_bytes(name.as_bytes()), *kind, "{name}");
            assert_eq!(
                HeaderName::from_bytes(name.to_ascii_uppercase().as_bytes()),
                *kind
            );
        }
        let listed: usize = BY_LENGTH.iter().map(|c| c.len()).sum();
        assert_eq!(listed, FULL_NAMES.len());
    }
}
