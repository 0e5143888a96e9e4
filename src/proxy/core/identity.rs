//! The caller identity of an initial INVITE: every identity value is screened, the most
//! severe verdict wins.
//!
//! # Which values
//!
//! The sources listed in `identity_order` ([`IdentitySource`]), each only when it can be
//! believed:
//!
//! * `pai`: every P-Asserted-Identity value (a sip and a tel URI, several header lines),
//!   only when the message came from a trusted peer (RFC 3325 §5: anyone else's assertion
//!   is meaningless). `Privacy: id` does not hide it from the check: the network knows the
//!   number, and a fraudster must not evade screening by asking for privacy.
//! * `rpid`: every Remote-Party-ID value other than `party=called`, under the same trust
//!   rule as PAI (it is the same kind of network assertion, and anyone can write one).
//! * `from`: From, from anyone (a request with two Froms never gets here: it is answered 400).
//!
//! PAI and RPID from untrusted peers are not only ignored: [`strip_untrusted`] removes them
//! from every request forwarded, so the switch cannot believe them either.
//!
//! # Which verdict
//!
//! Each value is normalized and put to the [`Screen`]. The winner is, in this order:
//!
//! 1. a verdict about a number (listed, unlisted, an evasion match, a failed lookup) beats
//!    one about the lack of a number ([`Reason::Anonymous`], [`Reason::Invalid`]): a trusted
//!    PAI with the real number decides over an anonymous From, and a junk or anonymous PAI
//!    cannot hide a listed From;
//! 2. then the most severe action ([`Action`]'s order: block > warn > tag > allow);
//! 3. then the earlier value: the earlier source in `identity_order`, the earlier value
//!    within a source.
//!
//! With no value at all the caller is [`Caller::Anonymous`] (screened as such). A value that
//! does not parse is screened as invalid. A panic in the screen fails that one value open
//! ([`Verdict::internal_error`]); the others still count.
//!
//! # Cost
//!
//! The common call (one From, no PAI or RPID, or a trusted PAI with the same URI as From) is
//! one normalization and one lookup: a value whose URI equals the current winner's, or that
//! normalizes to the winner's number, is not screened again; and nothing beats a block, so
//! screening stops there.

use super::config::{Compiled, IdentitySource};
use crate::blocklist::Action;
use crate::numbers::{Caller, InvalidReason, NumberingProfile, E164};
use crate::policy::{CallContext, Reason, Screen, Verdict};
use crate::sip::{HeaderName, NameAddr, RequestEditor, SipMessage, ValueError};
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The identity value that decided a call, and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity<'m> {
    /// The header it was read from; `None` when there was no identity value at all.
    pub(crate) source: Option<IdentitySource>,
    /// The value as received (a URI), empty when there was none or it did not parse.
    pub(crate) raw: &'m [u8],
    /// The normalized caller.
    pub(crate) caller: Caller,
    /// The screen's verdict for it.
    pub(crate) verdict: Verdict,
}

impl Identity<'_> {
    /// How this verdict ranks against another (greater wins; equal keeps the earlier).
    fn rank(&self) -> (bool, Action) {
        let about_a_number = !matches!(self.verdict.reason, Reason::Anonymous | Reason::Invalid);
        (about_a_number, self.verdict.action)
    }
}

/// Identity headers removed from a forwarded request because its sender is not a trusted
/// peer (RFC 3325 §5), by header line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IdentityRemoved {
    /// P-Asserted-Identity lines.
    pub pai: u16,
    /// Remote-Party-ID lines.
    pub rpid: u16,
}

impl IdentityRemoved {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.pai == 0 && self.rpid == 0
    }
}

/// Removes P-Asserted-Identity and Remote-Party-ID from a request sent by `peer` unless it
/// is a trusted peer: an identity asserted from outside the trust domain must not be passed
/// on as asserted (RFC 3325 §5). Trusted peers' headers are forwarded as they came.
pub(crate) fn strip_untrusted(
    compiled: &Compiled,
    ed: &mut RequestEditor<'_>,
    msg: &SipMessage,
    peer: IpAddr,
    verified: bool,
) -> IdentityRemoved {
    let present = |kind| msg.headers_of(kind).next().is_some();
    let (pai, rpid) = (
        present(HeaderName::PAssertedIdentity),
        present(HeaderName::RemotePartyId),
    );
    if !(pai || rpid) || verified || compiled.trusted(peer) {
        return IdentityRemoved::default();
    }
    let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    IdentityRemoved {
        pai: if pai {
            count(ed.remove_headers("P-Asserted-Identity"))
        } else {
            0
        },
        rpid: if rpid {
            count(ed.remove_headers("Remote-Party-ID"))
        } else {
            0
        },
    }
}

impl Compiled {
    /// Screens every believable identity value of `msg` (whose From is `from`, already
    /// parsed) in the call `call` (whose caller fields are filled in per value), normalized
    /// by `profile`, and returns the one that decides (see the module docs for the rule).
    /// `trusted`: the sender's P-Asserted-Identity and Remote-Party-ID are believed.
    /// `known`: one value already normalized (its raw URI and reading, from
    /// [`Compiled::sole_caller`]), which is then not normalized again; `None` otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn screen_identity<'m>(
        &self,
        order: &[IdentitySource],
        msg: &'m SipMessage,
        from: &NameAddr<'m>,
        call: &CallContext<'_>,
        trusted: bool,
        profile: &NumberingProfile,
        screen: &dyn Screen,
        known: Option<(&'m [u8], Caller)>,
    ) -> Identity<'m> {
        let mut best: Option<Identity<'m>> = None;
        let screening = Screening {
            call,
            profile,
            screen,
            known,
        };
        for &source in order {
            let done = match source {
                IdentitySource::Pai => {
                    let mut values = msg.p_asserted_identities().peekable();
                    values.peek().is_some()
                        && trusted
                        && screening.values(source, values, &mut best)
                }
                IdentitySource::Rpid => {
                    let mut values = calling_rpids(msg).peekable();
                    values.peek().is_some()
                        && trusted
                        && screening.values(source, values, &mut best)
                }
                IdentitySource::From => {
                    screening.values(source, std::iter::once(Ok(*from)), &mut best)
                }
            };
            if done {
                break;
            }
        }
        best.unwrap_or_else(|| Identity {
            source: None,
            raw: b"",
            caller: Caller::Anonymous,
            verdict: screen_one(screen, &call.with_caller(&Caller::Anonymous, b"", None)),
        })
    }

    /// The caller a front end will count for this INVITE whatever the verdicts, known
    /// before screening: the one number that every believable identity value (the values
    /// [`Compiled::screen_identity`] screens) reads as, a decorated value by its lenient
    /// reading. With it, the first value's raw URI and reading (for
    /// [`Compiled::screen_identity`]). `None` when the values read differently, one
    /// does not parse, or none is a number: the deciding caller is then known only after
    /// screening. The common call (one From, or a trusted PAI naming the same number) has
    /// one.
    pub(crate) fn sole_caller<'m>(
        &self,
        order: &[IdentitySource],
        msg: &'m SipMessage,
        from: &NameAddr<'m>,
        trusted: bool,
        profile: &NumberingProfile,
    ) -> Option<(&'m [u8], Caller, E164)> {
        let mut first: Option<(&'m [u8], Caller)> = None;
        let mut agree = |v: Result<NameAddr<'m>, ValueError>| -> bool {
            let Ok(na) = v else { return false };
            let raw = na.uri().raw();
            match first {
                Some((r, _)) if r == raw => true,
                Some((_, c)) => profile.normalize(raw) == c,
                None => {
                    first = Some((raw, profile.normalize(raw)));
                    true
                }
            }
        };
        for &source in order {
            let all = match source {
                IdentitySource::Pai if trusted => msg.p_asserted_identities().all(&mut agree),
                IdentitySource::Rpid if trusted => calling_rpids(msg).all(&mut agree),
                IdentitySource::Pai | IdentitySource::Rpid => true,
                IdentitySource::From => agree(Ok(*from)),
            };
            if !all {
                return None;
            }
        }
        let (raw, caller) = first?;
        let n = match caller {
            Caller::Number(n) => n,
            Caller::Decorated { lenient, .. } => lenient,
            Caller::Anonymous | Caller::Invalid(_) => return None,
        };
        Some((raw, caller, n))
    }
}

/// The Remote-Party-ID values that name the caller (every one but `party=called`), as both
/// [`Compiled::screen_identity`] and [`Compiled::sole_caller`] read them.
fn calling_rpids<'m>(
    msg: &'m SipMessage,
) -> impl Iterator<Item = Result<NameAddr<'m>, ValueError>> + 'm {
    msg.remote_party_ids()
        .filter(|r| {
            !r.as_ref()
                .is_ok_and(|r| r.party().is_some_and(|p| p.eq_ignore_ascii_case(b"called")))
        })
        .map(|r| r.map(|r| r.0))
}

/// One call's screening: the context, the profile, the screen, and a value already read.
struct Screening<'s, 'c, 'm> {
    call: &'s CallContext<'c>,
    profile: &'s NumberingProfile,
    screen: &'s dyn Screen,
    known: Option<(&'m [u8], Caller)>,
}

impl<'m> Screening<'_, '_, 'm> {
    /// Screens `values` of one source into `best`; returns `true` once nothing can beat it.
    fn values(
        &self,
        source: IdentitySource,
        values: impl Iterator<Item = Result<NameAddr<'m>, ValueError>>,
        best: &mut Option<Identity<'m>>,
    ) -> bool {
        for v in values {
            let (raw, caller) = match v {
                Ok(na) => {
                    let raw = na.uri().raw();
                    if best.as_ref().is_some_and(|b| b.raw == raw) {
                        continue;
                    }
                    let caller = match self.known {
                        Some((r, c)) if r == raw => c,
                        _ => self.profile.normalize(raw),
                    };
                    (raw, caller)
                }
                Err(_) => (&b""[..], Caller::Invalid(InvalidReason::MalformedUri)),
            };
            if let (Some(b), Caller::Number(n)) = (best.as_ref(), caller) {
                if b.caller == Caller::Number(n) {
                    continue;
                }
            }
            let verdict = screen_one(
                self.screen,
                &self.call.with_caller(&caller, raw, Some(source)),
            );
            let candidate = Identity {
                source: Some(source),
                raw,
                verdict,
                caller,
            };
            if best.as_ref().is_none_or(|b| candidate.rank() > b.rank()) {
                *best = Some(candidate);
            }
            if best
                .as_ref()
                .is_some_and(|b| b.rank() == (true, Action::Block))
            {
                return true;
            }
        }
        false
    }
}

/// One screening; a panic in the screen is caught and fails open.
fn screen_one(screen: &dyn Screen, call: &CallContext<'_>) -> Verdict {
    catch_unwind(AssertUnwindSafe(|| screen.screen(call)))
        .unwrap_or_else(|_| Verdict::internal_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::CallerActions;
    use crate::proxy::core::CoreConfig;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Blocks +8613800000001, tags +8613800000002; counts calls.
    #[derive(Default)]
    struct Two(AtomicUsize);
    impl Screen for Two {
        fn screen(&self, call: &CallContext<'_>) -> Verdict {
            let caller = call.caller;
            self.0.fetch_add(1, Ordering::Relaxed);
            let Some(n) = caller.number() else {
                return CallerActions::default()
                    .for_non_number(caller)
                    .unwrap_or_else(Verdict::unlisted);
            };
            match n.digits() {
                "8613800000001" => Verdict::listed(Action::Block, "x", 90),
                "8613800000002" => Verdict::listed(Action::Tag, "y", 50),
                _ => Verdict::unlisted(),
            }
        }
    }

    fn run(
        headers: &str,
        order: &[IdentitySource],
        trusted: bool,
    ) -> (Option<IdentitySource>, String, Action, usize) {
        let raw = format!("INVITE sip:b@h SIP/2.0\r\n{headers}\r\n");
        let msg = SipMessage::parse(Bytes::from(raw), &crate::sip::Limits::default()).unwrap();
        let from = msg.from().unwrap().unwrap();
        let config = {
            let mut c = CoreConfig::default();
            c.proxy.trusted_peers = vec!["10.0.0.0/8".parse().unwrap()];
            c
        };
        let compiled = config.compile().unwrap();
        let peer: IpAddr = if trusted { "10.0.0.1" } else { "192.0.2.1" }
            .parse()
            .unwrap();
        let screen = Two::default();
        let group = compiled.peers.of(peer);
        let anonymous = Caller::Anonymous;
        let call = CallContext::for_caller(&anonymous, group);
        let id = compiled.screen_identity(
            order,
            &msg,
            &from,
            &call,
            group.trust_identity,
            &compiled.profile,
            &screen,
            None,
        );
        (
            id.source,
            String::from_utf8_lossy(id.raw).into_owned(),
            id.verdict.action,
            screen.0.load(Ordering::Relaxed),
        )
    }

    const ALL: [IdentitySource; 3] = [
        IdentitySource::Pai,
        IdentitySource::Rpid,
        IdentitySource::From,
    ];

    /// The caller known before screening, and whether screening with it decides the same
    /// identity (with the value's reading given, one normalization fewer).
    fn sole(headers: &str, trusted: bool) -> Option<String> {
        let raw = format!("INVITE sip:b@h SIP/2.0\r\n{headers}\r\n");
        let msg = SipMessage::parse(Bytes::from(raw), &crate::sip::Limits::default()).unwrap();
        let from = msg.from().unwrap().unwrap();
        let compiled = CoreConfig::default().compile().unwrap();
        let (raw, caller, n) =
            compiled.sole_caller(&ALL, &msg, &from, trusted, &compiled.profile)?;
        let group = compiled.peers.of("192.0.2.1".parse().unwrap());
        let anonymous = Caller::Anonymous;
        let call = CallContext::for_caller(&anonymous, group);
        let screen = Two::default();
        let args = (
            &ALL[..],
            &msg,
            &from,
            &call,
            trusted,
            &compiled.profile,
            &screen,
        );
        let plain =
            compiled.screen_identity(args.0, args.1, args.2, args.3, args.4, args.5, args.6, None);
        let known = compiled.screen_identity(
            args.0,
            args.1,
            args.2,
            args.3,
            args.4,
            args.5,
            args.6,
            Some((raw, caller)),
        );
        assert_eq!(plain, known);
        assert_eq!(known.caller, caller);
        Some(n.to_string())
    }

    #[test]
    fn the_sole_caller_is_the_one_number_every_believable_value_names() {
        let from = "From: <sip:+12025550123@h>;tag=1\r\n";
        assert_eq!(sole(from, false).as_deref(), Some("+12025550123"));
        // A trusted PAI naming the same number (another URI) agrees; another number does
        // not (the deciding caller then depends on the verdicts).
        let same = format!("{from}P-Asserted-Identity: <tel:+12025550123>\r\n");
        assert_eq!(sole(&same, true).as_deref(), Some("+12025550123"));
        let other = format!("{from}P-Asserted-Identity: <sip:+8613800000001@h>\r\n");
        assert_eq!(sole(&other, true), None);
        // An untrusted PAI is not screened, so it does not count either.
        assert_eq!(sole(&other, false).as_deref(), Some("+12025550123"));
        let rpid = format!("{from}Remote-Party-ID: <sip:+8613800000002@h>;party=calling\r\n");
        assert_eq!(sole(&rpid, true), None);
        // No number, or a value that is no number beside one: not known before screening.
        assert_eq!(
            sole("From: <sip:anonymous@anonymous.invalid>;tag=1\r\n", false),
            None
        );
        let junk = format!("{from}P-Asserted-Identity: <sip:anonymous@h>\r\n");
        assert_eq!(sole(&junk, true), None);
    }

    #[test]
    fn one_from_is_one_lookup() {
        let (src, raw, action, calls) = run("From: <sip:+12025550123@h>;tag=1\r\n", &ALL, false);
        assert_eq!(
            (src, raw.as_str(), action, calls),
            (
                Some(IdentitySource::From),
                "sip:+12025550123@h",
                Action::Allow,
                1
            )
        );
        // A trusted PAI with the same URI as From, or the same number: still one lookup.
        let h = "From: <sip:+12025550123@h>;tag=1\r\nP-Asserted-Identity: <sip:+12025550123@h>, <tel:+12025550123>\r\n";
        let (src, _, _, calls) = run(h, &ALL, true);
        assert_eq!((src, calls), (Some(IdentitySource::Pai), 1));
    }

    #[test]
    fn the_most_severe_wins_and_ties_go_to_the_earlier_source() {
        let h = "From: <sip:+8613800000002@h>;tag=1\r\nP-Asserted-Identity: <sip:+12025550199@h>, <tel:+8613800000001>\r\n";
        let (src, raw, action, _) = run(h, &ALL, true);
        assert_eq!(
            (src, raw.as_str(), action),
            (
                Some(IdentitySource::Pai),
                "tel:+8613800000001",
                Action::Block
            )
        );
        // Tag in From beats the allowed PAI; two unlisted values: the earlier source.
        let h =
            "From: <sip:+8613800000002@h>;tag=1\r\nP-Asserted-Identity: <sip:+12025550199@h>\r\n";
        assert_eq!(run(h, &ALL, true).0, Some(IdentitySource::From));
        let h = "From: <sip:+12025550123@h>;tag=1\r\nP-Asserted-Identity: <sip:+12025550199@h>\r\n";
        assert_eq!(run(h, &ALL, true).0, Some(IdentitySource::Pai));
        let order = [IdentitySource::From, IdentitySource::Pai];
        assert_eq!(run(h, &order, true).0, Some(IdentitySource::From));
    }

    #[test]
    fn a_number_beats_the_lack_of_one() {
        // Junk and anonymous PAI from a trusted peer cannot hide a listed From...
        for pai in [
            "<sip:alice@h>",
            "<sip:anonymous@anonymous.invalid>",
            "<junk",
        ] {
            let h = format!("From: <sip:+8613800000001@h>;tag=1\r\nP-Asserted-Identity: {pai}\r\n");
            let (src, _, action, _) = run(&h, &ALL, true);
            assert_eq!(
                (src, action),
                (Some(IdentitySource::From), Action::Block),
                "{pai}"
            );
        }
        // ...and an anonymous From does not hide a trusted PAI's number.
        let h = "From: <sip:anonymous@anonymous.invalid>;tag=1\r\nP-Asserted-Identity: <tel:+12025550123>\r\n";
        assert_eq!(run(h, &ALL, true).0, Some(IdentitySource::Pai));
        // Nothing but non-numbers: the first one in order decides.
        let h =
            "From: <sip:bob@h>;tag=1\r\nP-Asserted-Identity: <sip:anonymous@anonymous.invalid>\r\n";
        assert_eq!(run(h, &ALL, true).0, Some(IdentitySource::Pai));
    }

    #[test]
    fn rpid_and_pai_count_only_from_trusted_peers() {
        let h = "From: <sip:+12025550123@h>;tag=1\r\nRemote-Party-ID: <sip:+8613800000001@h>;party=calling\r\n\
                 P-Asserted-Identity: <tel:+8613800000002>\r\n";
        let (src, _, action, calls) = run(h, &ALL, false);
        assert_eq!(
            (src, action, calls),
            (Some(IdentitySource::From), Action::Allow, 1)
        );
        let (src, _, action, _) = run(h, &ALL, true);
        assert_eq!((src, action), (Some(IdentitySource::Rpid), Action::Block));
        // party=called is the callee.
        let h = "From: <sip:+12025550123@h>;tag=1\r\nRemote-Party-ID: <sip:+8613800000001@h>;party=called\r\n";
        assert_eq!(run(h, &ALL, true).0, Some(IdentitySource::From));
    }

    #[test]
    fn a_block_ends_the_screening() {
        let h = "From: <sip:+8613800000002@h>;tag=1\r\nP-Asserted-Identity: <tel:+8613800000001>, <tel:+12025550199>\r\n";
        let (_, _, action, calls) = run(h, &ALL, true);
        assert_eq!((action, calls), (Action::Block, 1));
    }
}
