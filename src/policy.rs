//! Policy: from a call to a [`Verdict`].
//!
//! The proxy core asks one question per initial INVITE, through the [`Screen`] trait: "what
//! should happen to this call?". The question is a [`CallContext`] (the caller identity
//! being screened, the callee, the ingress peer group, the transport, `verstat`, Privacy
//! and the time), built once per call by the front end; the answer is a [`Verdict`]: the
//! [`Action`], the [`Rule`] that decided and the [`Reason`] within it, and for a list entry
//! its category, score, source and text plus the list version, so the decision log can say
//! exactly why a call was acted on.
//!
//! [`Policy`] is the production screen: the rule chain of [`chain`], in a fixed order
//! (protected callee, impersonation, international spoof, personal, global, verstat,
//! behaviour, anonymous/invalid, international origin, default) over the hot-swapped blocklist,
//! subscriber list and protected list ([`lists`]). With no blocklist loaded it fails open:
//! [`Action::Allow`] with [`Reason::NoSnapshot`].
//!
//! ```
//! use fraudwall::numbers::{Caller, E164};
//! use fraudwall::peers::PeerGroup;
//! use fraudwall::policy::{CallContext, Reason, Screen, Verdict};
//! use fraudwall::blocklist::Action;
//!
//! /// A screen that blocks one number: handy in tests.
//! struct One(E164);
//! impl Screen for One {
//!     fn screen(&self, call: &CallContext<'_>) -> Verdict {
//!         match call.caller {
//!             Caller::Number(n) if *n == self.0 => Verdict::listed(Action::Block, "police", 95),
//!             _ => Verdict::unlisted(),
//!         }
//!     }
//! }
//! let s = One("+8613800000001".parse().unwrap());
//! let caller = Caller::Number("+8613800000001".parse().unwrap());
//! let group = PeerGroup::default_group();
//! let v = s.screen(&CallContext::for_caller(&caller, &group));
//! assert_eq!((v.action, v.reason), (Action::Block, Reason::Listed));
//! ```
//!
//! Memory: a [`Verdict`] for an unlisted caller holds no heap data; a listed one holds the
//! category, source and entry text (a few short strings, one call in many).

pub mod chain;
pub mod context;
pub mod lists;
pub mod rules;
pub mod trace;

pub use chain::{Policy, PolicyConfig, Rule, Rules};
pub use context::{CallContext, Callee, IdentitySource, Verstat, Visited};
pub use trace::{Explanation, StageOutcome, StageRecord};

use crate::blocklist::{Action, Match, Snapshot};
use crate::numbers::{Caller, E164};
use lists::Level;
use std::fmt;

/// Decides what happens to a call. Implementations must be cheap (called once per screened
/// identity value of an initial INVITE, on the packet path) and must never block.
///
/// A panic inside `screen` is caught by the proxy core, which then fails open.
pub trait Screen: Send + Sync {
    /// The verdict for this call.
    fn screen(&self, call: &CallContext<'_>) -> Verdict;
}

/// Why a verdict was reached: a low-cardinality label for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The caller matched a list entry (a number or a range).
    Listed,
    /// The caller is a valid number that no entry matches.
    Unlisted,
    /// No usable identity, or an identity that says anonymous.
    Anonymous,
    /// An identity that is not a valid number.
    Invalid,
    /// An identity that is not a valid number as presented, but whose lenient reading (a
    /// decorated listed number: `*67…`, `…p123`, `+0…`) matched a list entry.
    Evasion,
    /// No snapshot is loaded yet: failed open.
    NoSnapshot,
    /// Something failed inside the check (a panic, a corrupt entry): failed open.
    InternalError,
    /// The callee is an emergency or service number: never screened.
    ProtectedCallee,
    /// A protected number presented by a peer group not entitled to it.
    Impersonation,
    /// A home-country number entering from an international peer group.
    SpoofedDomestic,
    /// The callee's own entry for this caller.
    Personal,
    /// The network asserts `TN-Validation-Failed`.
    VerstatFailed,
    /// A call from abroad, labelled with its country.
    InternationalOrigin,
    /// The caller's recent calls match a behavioural detection rule.
    Behaviour,
}

impl Reason {
    /// Every reason, for pre-registering metric handles.
    pub const ALL: [Reason; 14] = [
        Reason::Listed,
        Reason::Unlisted,
        Reason::Anonymous,
        Reason::Invalid,
        Reason::Evasion,
        Reason::NoSnapshot,
        Reason::InternalError,
        Reason::ProtectedCallee,
        Reason::Impersonation,
        Reason::SpoofedDomestic,
        Reason::Personal,
        Reason::VerstatFailed,
        Reason::InternationalOrigin,
        Reason::Behaviour,
    ];

    /// The stage a verdict with this reason comes from (an internal error: `default`,
    /// unless the chain names the stage that failed).
    pub fn rule(self) -> Rule {
        match self {
            Reason::Listed | Reason::Evasion => Rule::Global,
            Reason::Unlisted | Reason::NoSnapshot | Reason::InternalError => Rule::Default,
            Reason::Anonymous => Rule::Anonymous,
            Reason::Invalid => Rule::Invalid,
            Reason::ProtectedCallee => Rule::ProtectedCallee,
            Reason::Impersonation => Rule::Impersonation,
            Reason::SpoofedDomestic => Rule::InternationalSpoof,
            Reason::Personal => Rule::Personal,
            Reason::VerstatFailed => Rule::Verstat,
            Reason::InternationalOrigin => Rule::InternationalOrigin,
            Reason::Behaviour => Rule::Behaviour,
        }
    }

    /// The snake_case label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Listed => "listed",
            Reason::Unlisted => "unlisted",
            Reason::Anonymous => "anonymous",
            Reason::Invalid => "invalid",
            Reason::Evasion => "evasion",
            Reason::NoSnapshot => "no_snapshot",
            Reason::InternalError => "internal_error",
            Reason::ProtectedCallee => "protected_callee",
            Reason::Impersonation => "impersonation",
            Reason::SpoofedDomestic => "spoofed_domestic",
            Reason::Personal => "personal",
            Reason::VerstatFailed => "verstat_failed",
            Reason::InternationalOrigin => "international_origin",
            Reason::Behaviour => "behaviour",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a call, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// The action to take.
    pub action: Action,
    /// The stage of the rule chain that decided.
    pub rule: Rule,
    /// Why, within that stage.
    pub reason: Reason,
    /// The matched entry's category (`impersonation`, `loan`, ...), if listed.
    pub category: Option<Box<str>>,
    /// The matched entry's score (0 to 100), if listed.
    pub score: Option<u8>,
    /// Where the matched entry came from (`police`, `reports`, ...), if listed.
    pub source: Option<Box<str>>,
    /// The matched entry as written in the list (`+8613800000001`, `+86138*`), if listed.
    pub entry: Option<Box<str>>,
    /// The version of the list that decided (or of the blocklist consulted), if any.
    pub snapshot_version: Option<u64>,
    /// The callee's level when it changed what the global list said.
    pub level: Option<Level>,
    /// A display label of the verdict's own (`Intl: Myanmar`), written instead of
    /// `actions.tag_display_label` when the call is tagged.
    pub label: Option<Box<str>>,
}

impl Verdict {
    /// A verdict with no list data: `action` for `reason`.
    pub fn new(action: Action, reason: Reason) -> Self {
        Verdict {
            action,
            rule: reason.rule(),
            reason,
            category: None,
            score: None,
            source: None,
            entry: None,
            snapshot_version: None,
            level: None,
            label: None,
        }
    }

    /// Allow, unlisted.
    pub fn unlisted() -> Self {
        Verdict::new(Action::Allow, Reason::Unlisted)
    }

    /// Allow because something failed (fail open).
    pub fn internal_error() -> Self {
        Verdict::new(Action::Allow, Reason::InternalError)
    }

    /// Allow because no snapshot is loaded (fail open).
    pub fn no_snapshot() -> Self {
        Verdict::new(Action::Allow, Reason::NoSnapshot)
    }

    /// A listed verdict with a category and score (source, entry and version left empty).
    pub fn listed(action: Action, category: &str, score: u8) -> Self {
        Verdict {
            category: Some(category.into()),
            score: Some(score),
            ..Verdict::new(action, Reason::Listed)
        }
    }
}

/// The actions for callers that are not numbers. Both default to allow (counted, logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerActions {
    /// For calls without a usable identity (`anonymous`, `Privacy: id` without a trusted
    /// P-Asserted-Identity, no identity header at all).
    pub anonymous: Action,
    /// For identities that are present but not a valid number.
    pub invalid: Action,
}

impl Default for CallerActions {
    fn default() -> Self {
        CallerActions {
            anonymous: Action::Allow,
            invalid: Action::Allow,
        }
    }
}

impl CallerActions {
    /// The verdict for a caller that is not a number, or `None` for a number.
    pub fn for_non_number(&self, caller: &Caller) -> Option<Verdict> {
        match caller {
            Caller::Number(_) => None,
            Caller::Anonymous => Some(Verdict::new(self.anonymous, Reason::Anonymous)),
            Caller::Invalid(_) | Caller::Decorated { .. } => {
                Some(Verdict::new(self.invalid, Reason::Invalid))
            }
        }
    }
}

/// What the global stage looks callers up in: a single [`Snapshot`] (the default), or a
/// central feed's base and deltas ([`crate::feed::layered::Layered`]).
pub trait Lookup: Send + Sync + 'static {
    /// The version reported in verdicts and decision logs.
    fn version(&self) -> u64;
    /// The longest entry matching `number`, if any (a tombstone counts as no entry).
    fn lookup(&self, number: &E164) -> Option<Match<'_>>;
}

impl Lookup for Snapshot {
    fn version(&self) -> u64 {
        Snapshot::version(self)
    }
    fn lookup(&self, number: &E164) -> Option<Match<'_>> {
        Snapshot::lookup(self, number)
    }
}

impl Verdict {
    /// The verdict for a list entry (no snapshot version).
    pub fn from_match(m: &Match<'_>) -> Verdict {
        let text = |s: &str| (!s.is_empty()).then(|| Box::<str>::from(s));
        Verdict {
            category: text(m.category),
            score: Some(m.score),
            source: text(m.source),
            entry: Some(m.entry.to_string().into_boxed_str()),
            ..Verdict::new(m.action, Reason::Listed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numbers::InvalidReason;

    #[test]
    fn caller_actions_default_allow_and_apply() {
        let a = CallerActions::default();
        let v = a.for_non_number(&Caller::Anonymous).unwrap();
        assert_eq!((v.action, v.reason), (Action::Allow, Reason::Anonymous));
        let b = CallerActions {
            anonymous: Action::Tag,
            invalid: Action::Block,
        };
        let v = b
            .for_non_number(&Caller::Invalid(InvalidReason::TooShort))
            .unwrap();
        assert_eq!((v.action, v.reason), (Action::Block, Reason::Invalid));
        let n = Caller::Number("+12025550123".parse().unwrap());
        assert!(b.for_non_number(&n).is_none());
    }

    #[test]
    fn the_chain_fails_open_without_a_snapshot_and_applies_caller_actions() {
        use arc_swap::ArcSwapOption;
        use std::sync::Arc;
        let screen = Policy::<Snapshot>::over(
            Arc::new(ArcSwapOption::empty()),
            CallerActions {
                anonymous: Action::Block,
                invalid: Action::Tag,
            },
        );
        let group = crate::peers::PeerGroup::default_group();
        let screen_one = |c: Caller| screen.screen(&CallContext::for_caller(&c, &group));
        let v = screen_one(Caller::Number("+12025550123".parse().unwrap()));
        assert_eq!((v.action, v.reason), (Action::Allow, Reason::NoSnapshot));
        assert_eq!(v.rule, Rule::Default);
        let v = screen_one(Caller::Anonymous);
        assert_eq!((v.action, v.reason), (Action::Block, Reason::Anonymous));
        assert_eq!(v.rule, Rule::Anonymous);
        let v = screen_one(Caller::Invalid(InvalidReason::NotANumber));
        assert_eq!(
            (v.action, v.reason, v.rule),
            (Action::Tag, Reason::Invalid, Rule::Invalid)
        );
    }

    #[test]
    fn every_reason_names_its_rule() {
        for r in Reason::ALL {
            assert!(Rule::ALL.contains(&r.rule()), "{r}");
        }
        assert_eq!(Verdict::unlisted().rule, Rule::Default);
        assert_eq!(Verdict::listed(Action::Block, "x", 1).rule, Rule::Global);
    }

    #[test]
    fn reason_labels_are_distinct() {
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
        // Telemetry indexes its counters by discriminant.
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r}");
        }
    }
}
