//! The call context: everything the rule chain may read about one call, built once per
//! initial INVITE.
//!
//! The proxy core (or the explain command, or any other front end) fills a [`CallContext`]
//! from the message and where it came from, and hands it to the [`Screen`](super::Screen).
//! Every rule reads from this one value: the caller identity being screened, the callee,
//! the ingress peer group, the transport, what the network asserts (`verstat`), the
//! requested privacy, the time passed in (the core reads no clock), and what the behavioural
//! detector said of the caller when the front end counted the call ([`Visited`]).
//!
//! It borrows everything: building it for an unlisted caller allocates nothing.

use crate::detection::Finding;
use crate::numbers::{Caller, E164};
use crate::peers::PeerGroup;
use crate::proxy::Transport;
use crate::sip::Privacy;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Where a caller identity is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentitySource {
    /// P-Asserted-Identity (RFC 3325), only from trusted peers.
    Pai,
    /// Remote-Party-ID (draft-ietf-sip-privacy-04, still common on trunks), only from
    /// trusted peers.
    Rpid,
    /// From.
    From,
}

impl IdentitySource {
    /// The lowercase config/log name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentitySource::Pai => "pai",
            IdentitySource::Rpid => "rpid",
            IdentitySource::From => "from",
        }
    }
}

/// The number called: from the Request-URI, or from To when the Request-URI names no number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Callee<'a> {
    /// The user part the number was read from, as received (`+8613900000001`, `110`); empty
    /// when neither URI has one.
    pub user: &'a [u8],
    /// The callee normalized to E.164, when it is a number.
    pub number: Option<E164>,
}

impl<'a> Callee<'a> {
    /// No callee known (a front end that only screens callers).
    pub const NONE: Callee<'static> = Callee {
        user: b"",
        number: None,
    };
}

/// How the terminating network's verification service judged the caller ID (the `verstat`
/// parameter of ATIS-1000074 / 3GPP TS 24.229, on the P-Asserted-Identity or From URI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verstat {
    /// No assertion: no `verstat`, or from a peer whose assertions are not believed.
    #[default]
    Absent,
    /// `TN-Validation-Passed` (and `-A`, `-B`, `-C`).
    Passed,
    /// `TN-Validation-Failed` (and `-A`, `-B`, `-C`).
    Failed,
    /// `No-TN-Validation`.
    NoValidation,
    /// A `verstat` value this build does not know: treated as no assertion, counted.
    Unknown,
}

impl Verstat {
    /// Every value, in label order.
    pub const ALL: [Verstat; 5] = [
        Verstat::Absent,
        Verstat::Passed,
        Verstat::Failed,
        Verstat::NoValidation,
        Verstat::Unknown,
    ];

    /// The metric and log label.
    pub fn as_str(self) -> &'static str {
        match self {
            Verstat::Absent => "absent",
            Verstat::Passed => "passed",
            Verstat::Failed => "failed",
            Verstat::NoValidation => "no-validation",
            Verstat::Unknown => "unknown",
        }
    }

    /// Reads a `verstat` value (`TN-Validation-Passed-A`, any case).
    pub fn parse(value: &[u8]) -> Verstat {
        let base = |v: &[u8], name: &[u8]| {
            v.len() >= name.len()
                && v[..name.len()].eq_ignore_ascii_case(name)
                && matches!(
                    &v[name.len()..],
                    b"" | b"-A" | b"-B" | b"-C" | b"-a" | b"-b" | b"-c"
                )
        };
        if base(value, b"TN-Validation-Passed") {
            Verstat::Passed
        } else if base(value, b"TN-Validation-Failed") {
            Verstat::Failed
        } else if value.eq_ignore_ascii_case(b"No-TN-Validation") {
            Verstat::NoValidation
        } else {
            Verstat::Unknown
        }
    }

    /// The `verstat` parameter of a URI as received, wherever the sender put it (in the user
    /// part, `sip:+1202…;verstat=…@host`, or among the URI parameters), or
    /// [`Verstat::Absent`].
    pub fn of_uri(uri: &[u8]) -> Verstat {
        const KEY: &[u8] = b";verstat=";
        let Some(at) = uri
            .windows(KEY.len())
            .position(|w| w.eq_ignore_ascii_case(KEY))
        else {
            return Verstat::Absent;
        };
        let rest = &uri[at + KEY.len()..];
        let end = rest
            .iter()
            .position(|b| matches!(b, b';' | b'>' | b'@' | b'?' | b'&' | b',' | b' '))
            .unwrap_or(rest.len());
        Verstat::parse(&rest[..end])
    }
}

/// The behavioural detector's judgement of a caller, made by a front end that counts calls
/// in the same visit that counted the INVITE ([`crate::detection::Detector::visit`]). The
/// `behaviour` stage uses it for that caller instead of asking the detector again; for any
/// other identity value of the call it asks ([`crate::detection::Detector::judge`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Visited<'a> {
    /// The caller the front end counted (a decorated number by its lenient reading).
    pub caller: E164,
    /// Its finding before this call was counted (`None`: no rule held).
    pub finding: Option<&'a Finding>,
}

/// One call as the rule chain sees it. Cheap to copy: it borrows the message.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// The identity value being screened, normalized (the core screens every believable
    /// value of a call, one context each).
    pub caller: &'a Caller,
    /// That value as received (a URI), empty when there was none.
    pub caller_raw: &'a [u8],
    /// The header it came from (`None`: the call has no identity value at all).
    pub caller_source: Option<IdentitySource>,
    /// Whom the call is for.
    pub callee: Callee<'a>,
    /// The peer group the call entered from (`default` for a source in no group).
    pub peer: &'a PeerGroup,
    /// The transport it arrived on.
    pub transport: Transport,
    /// What the network asserts about the caller ID.
    pub verstat: Verstat,
    /// The privacy the caller asked for.
    pub privacy: Privacy,
    /// When the call arrived (passed in: the cores read no clock).
    pub now: Instant,
    /// The detector's judgement of the caller, when the front end already counted the call
    /// (`None`: the `behaviour` stage asks the detector without counting).
    pub visited: Option<Visited<'a>>,
}

impl<'a> CallContext<'a> {
    /// A context for `caller` alone: no callee, from `peer`, over UDP, no assertion, now.
    /// Handy for tests and for front ends that only know the caller.
    pub fn for_caller(caller: &'a Caller, peer: &'a PeerGroup) -> CallContext<'a> {
        CallContext {
            caller,
            caller_raw: b"",
            caller_source: None,
            callee: Callee::NONE,
            peer,
            transport: Transport::Udp,
            verstat: Verstat::Absent,
            privacy: Privacy::default(),
            now: Instant::now(),
            visited: None,
        }
    }

    /// The same call, screening another identity value.
    pub fn with_caller(
        self,
        caller: &'a Caller,
        raw: &'a [u8],
        source: Option<IdentitySource>,
    ) -> CallContext<'a> {
        CallContext {
            caller,
            caller_raw: raw,
            caller_source: source,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verstat_values_and_variants() {
        assert_eq!(Verstat::parse(b"TN-Validation-Passed"), Verstat::Passed);
        assert_eq!(Verstat::parse(b"tn-validation-passed-a"), Verstat::Passed);
        assert_eq!(Verstat::parse(b"TN-Validation-Failed-C"), Verstat::Failed);
        assert_eq!(Verstat::parse(b"No-TN-Validation"), Verstat::NoValidation);
        assert_eq!(Verstat::parse(b"TN-Validation-Passed-D"), Verstat::Unknown);
        assert_eq!(Verstat::parse(b""), Verstat::Unknown);
        assert_eq!(Verstat::parse(b"\xff\xfe"), Verstat::Unknown);
    }

    #[test]
    fn verstat_is_found_in_the_user_part_or_the_uri_parameters() {
        assert_eq!(
            Verstat::of_uri(
                b"<sip:+12025550100;verstat=TN-Validation-Failed@ims.example;user=phone>"
            ),
            Verstat::Failed
        );
        assert_eq!(
            Verstat::of_uri(
                b"sip:+12025550100@ims.example;user=phone;VERSTAT=TN-Validation-Passed-A"
            ),
            Verstat::Passed
        );
        assert_eq!(
            Verstat::of_uri(b"tel:+12025550100;verstat=No-TN-Validation"),
            Verstat::NoValidation
        );
        assert_eq!(Verstat::of_uri(b"sip:+12025550100@h"), Verstat::Absent);
        assert_eq!(Verstat::of_uri(b"sip:a@h;verstat="), Verstat::Unknown);
    }

    #[test]
    fn labels_are_distinct_and_indexed_by_discriminant() {
        for (i, v) in Verstat::ALL.iter().enumerate() {
            assert_eq!(*v as usize, i);
        }
        let mut l: Vec<_> = Verstat::ALL.iter().map(|v| v.as_str()).collect();
        l.sort_unstable();
        l.dedup();
        assert_eq!(l.len(), Verstat::ALL.len());
    }
}
