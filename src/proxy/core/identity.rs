//! The caller identity of an initial INVITE.
//!
//! Sources are tried in the configured order ([`IdentitySource`]); the first one that is
//! present decides:
//!
//! * `pai`: P-Asserted-Identity, only when the message came from a trusted peer (RFC 3325
//!   §5: anyone else's assertion is meaningless). `Privacy: id` does not hide it from the
//!   check: the network knows the number, and a fraudster must not evade screening by asking
//!   for privacy. Of several values (a sip and a tel URI), the first that normalizes to a
//!   number wins.
//! * `rpid`: Remote-Party-ID values other than `party=called`.
//! * `from`: From.
//!
//! No source present: the caller is [`Caller::Anonymous`]. A present value that does not
//! parse is screened as invalid (with the invalid-caller action, counted) rather than
//! silently replaced by a lower-priority header.

use super::config::{Compiled, IdentitySource};
use crate::numbers::{Caller, InvalidReason};
use crate::sip::{NameAddr, SipMessage, ValueError};
use std::net::IpAddr;

/// A caller identity and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity<'m> {
    /// The header it was read from; `None` when there was none.
    pub(crate) source: Option<IdentitySource>,
    /// The value as received (a URI), empty when there was none.
    pub(crate) raw: &'m [u8],
    /// The normalized caller.
    pub(crate) caller: Caller,
}

impl Compiled {
    /// Reads the caller of `msg` (whose From is `from`, already parsed), received from
    /// `peer`.
    pub(crate) fn identity<'m>(
        &self,
        order: &[IdentitySource],
        msg: &'m SipMessage,
        from: &NameAddr<'m>,
        peer: IpAddr,
    ) -> Identity<'m> {
        for &source in order {
            let found = match source {
                IdentitySource::Pai if self.trusted(peer) => {
                    self.first_number(msg.p_asserted_identities())
                }
                IdentitySource::Pai => None,
                IdentitySource::Rpid => self.first_number(
                    msg.remote_party_ids()
                        .filter(|r| {
                            !r.as_ref().is_ok_and(|r| {
                                r.party().is_some_and(|p| p.eq_ignore_ascii_case(b"called"))
                            })
                        })
                        .map(|r| r.map(|r| r.0)),
                ),
                IdentitySource::From => self.first_number(std::iter::once(Ok(*from))),
            };
            if let Some((raw, caller)) = found {
                return Identity {
                    source: Some(source),
                    raw,
                    caller,
                };
            }
        }
        Identity {
            source: None,
            raw: b"",
            caller: Caller::Anonymous,
        }
    }

    /// Of the values given, the first that normalizes to a number; else the first value's
    /// outcome; `None` when there are no values.
    fn first_number<'m>(
        &self,
        values: impl Iterator<Item = Result<NameAddr<'m>, ValueError>>,
    ) -> Option<(&'m [u8], Caller)> {
        let mut first = None;
        for v in values {
            let (raw, caller) = match v {
                Ok(na) => (na.uri().raw(), self.profile.normalize(na.uri().raw())),
                Err(_) => (&b""[..], Caller::Invalid(InvalidReason::MalformedUri)),
            };
            if matches!(caller, Caller::Number(_)) {
                return Some((raw, caller));
            }
            first.get_or_insert((raw, caller));
        }
        first
    }
}
