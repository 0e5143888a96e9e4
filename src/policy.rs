//! Policy: from a normalized caller to a [`Verdict`].
//!
//! The proxy core asks one question per initial INVITE, through the [`Screen`] trait: "what
//! should happen to a call from this caller?". The answer is a [`Verdict`]: the [`Action`] to
//! take, the [`Reason`] it was reached (listed, unlisted, anonymous, invalid, evasion, no
//! snapshot, internal error) and, for a listed caller, the list entry's category, score, source and text
//! plus the snapshot version, so the decision log can say exactly why a call was acted on.
//!
//! [`SnapshotScreen`] is the production screen: it reads the current blocklist snapshot through
//! an [`arc_swap::ArcSwapOption`] (a load costs about 12 ns and never blocks, so a hot swap of
//! the list never delays a call) and applies the configured [`CallerActions`] to anonymous and
//! invalid callers. With no snapshot loaded it fails open: [`Action::Allow`] with
//! [`Reason::NoSnapshot`].
//!
//! ```
//! use fraudwall::numbers::{Caller, E164};
//! use fraudwall::policy::{Reason, Screen, Verdict};
//! use fraudwall::blocklist::Action;
//!
//! /// A screen that blocks one number: handy in tests.
//! struct One(E164);
//! impl Screen for One {
//!     fn screen(&self, caller: &Caller) -> Verdict {
//!         match caller {
//!             Caller::Number(n) if *n == self.0 => Verdict::listed(Action::Block, "police", 95),
//!             _ => Verdict::unlisted(),
//!         }
//!     }
//! }
//! let s = One("+8613800000001".parse().unwrap());
//! let v = s.screen(&Caller::Number("+8613800000001".parse().unwrap()));
//! assert_eq!((v.action, v.reason), (Action::Block, Reason::Listed));
//! ```
//!
//! Memory: a [`Verdict`] for an unlisted caller holds no heap data; a listed one holds the
//! category, source and entry text (a few short strings, one call in many).

pub mod lists;

use crate::blocklist::{Action, Match, Snapshot};
use crate::numbers::{Caller, E164};
use arc_swap::ArcSwapOption;
use std::fmt;
use std::sync::Arc;

/// Decides what happens to a call from a caller. Implementations must be cheap (called once
/// per initial INVITE on the packet path) and must never block.
///
/// A panic inside `screen` is caught by the proxy core, which then fails open.
pub trait Screen: Send + Sync {
    /// The verdict for this caller.
    fn screen(&self, caller: &Caller) -> Verdict;
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
}

impl Reason {
    /// Every reason, for pre-registering metric handles.
    pub const ALL: [Reason; 7] = [
        Reason::Listed,
        Reason::Unlisted,
        Reason::Anonymous,
        Reason::Invalid,
        Reason::Evasion,
        Reason::NoSnapshot,
        Reason::InternalError,
    ];

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
    /// Why.
    pub reason: Reason,
    /// The matched entry's category (`impersonation`, `loan`, ...), if listed.
    pub category: Option<Box<str>>,
    /// The matched entry's score (0 to 100), if listed.
    pub score: Option<u8>,
    /// Where the matched entry came from (`police`, `reports`, ...), if listed.
    pub source: Option<Box<str>>,
    /// The matched entry as written in the list (`+8613800000001`, `+86138*`), if listed.
    pub entry: Option<Box<str>>,
    /// The version of the snapshot consulted, if one was.
    pub snapshot_version: Option<u64>,
}

impl Verdict {
    /// A verdict with no list data: `action` for `reason`.
    pub fn new(action: Action, reason: Reason) -> Self {
        Verdict {
            action,
            reason,
            category: None,
            score: None,
            source: None,
            entry: None,
            snapshot_version: None,
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

/// The production [`Screen`]: the current blocklist snapshot, hot-swappable.
///
/// The snapshot lives in an [`ArcSwapOption`] shared with whoever loads new versions (the
/// runtime): storing a new `Arc<Snapshot>` there swaps the list for the next call without
/// a lock, and calls in flight finish on the snapshot they loaded. `None` means no list yet:
/// every number is allowed with [`Reason::NoSnapshot`] (fail open).
///
/// A listed entry's action is the verdict, including `allow` (an exact entry carving a
/// number out of a listed range); anonymous and invalid callers get the configured
/// [`CallerActions`] without a lookup.
///
/// A [`Caller::Decorated`] caller (invalid as presented, a number when read leniently) is
/// looked up by its lenient number: an entry that matches is acted on with
/// [`Reason::Evasion`] when its action is more severe than the invalid-caller action, so a
/// decoration never lets a listed number through and never earns a call more than the
/// invalid action either (an `allow` entry does not lift `invalid = "block"`). No match, or
/// a milder entry: the invalid-caller verdict, as for [`Caller::Invalid`].
///
/// The list is any [`Lookup`]: a single [`Snapshot`] (the default), or a central feed's base
/// and deltas ([`crate::feed::layered::Layered`]).
pub struct SnapshotScreen<L: Lookup = Snapshot> {
    current: Arc<ArcSwapOption<L>>,
    callers: CallerActions,
}

/// What a [`SnapshotScreen`] looks callers up in.
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

impl<L: Lookup> Clone for SnapshotScreen<L> {
    fn clone(&self) -> Self {
        SnapshotScreen {
            current: Arc::clone(&self.current),
            callers: self.callers,
        }
    }
}

impl<L: Lookup> fmt::Debug for SnapshotScreen<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotScreen")
            .field(
                "version",
                &self.current.load().as_ref().map(|s| s.version()),
            )
            .field("callers", &self.callers)
            .finish()
    }
}

impl SnapshotScreen<Snapshot> {
    /// A screen over `current` (shared with the snapshot loader).
    pub fn new(current: Arc<ArcSwapOption<Snapshot>>, callers: CallerActions) -> Self {
        SnapshotScreen { current, callers }
    }
}

impl<L: Lookup> SnapshotScreen<L> {
    /// A screen over any [`Lookup`] (a feed's layered view, say) in `current`.
    pub fn over(current: Arc<ArcSwapOption<L>>, callers: CallerActions) -> Self {
        SnapshotScreen { current, callers }
    }

    /// The shared slot holding the current snapshot (store a new one to hot-swap).
    pub fn current(&self) -> &Arc<ArcSwapOption<L>> {
        &self.current
    }
}

impl<L: Lookup> Screen for SnapshotScreen<L> {
    fn screen(&self, caller: &Caller) -> Verdict {
        let number = match caller {
            Caller::Number(n) => n,
            Caller::Decorated { lenient, .. } => return self.screen_decorated(lenient),
            other => {
                return self
                    .callers
                    .for_non_number(other)
                    .unwrap_or_else(Verdict::internal_error)
            }
        };
        let guard = self.current.load();
        let Some(snapshot) = guard.as_ref() else {
            return Verdict::no_snapshot();
        };
        let version = Some(snapshot.version());
        match snapshot.lookup(number) {
            Some(m) if !m.tombstone => Verdict {
                snapshot_version: version,
                ..Verdict::from_match(&m)
            },
            _ => Verdict {
                snapshot_version: version,
                ..Verdict::unlisted()
            },
        }
    }
}

impl<L: Lookup> SnapshotScreen<L> {
    /// A decorated caller: the entry its lenient number matches, when more severe than the
    /// invalid-caller action; else that action.
    fn screen_decorated(&self, lenient: &E164) -> Verdict {
        let invalid = Verdict::new(self.callers.invalid, Reason::Invalid);
        let guard = self.current.load();
        let Some(snapshot) = guard.as_ref() else {
            return invalid;
        };
        let version = Some(snapshot.version());
        match snapshot.lookup(lenient) {
            Some(m) if !m.tombstone && m.action > self.callers.invalid => Verdict {
                reason: Reason::Evasion,
                snapshot_version: version,
                ..Verdict::from_match(&m)
            },
            _ => Verdict {
                snapshot_version: version,
                ..invalid
            },
        }
    }
}

impl Verdict {
    /// The verdict for a list entry (no snapshot version).
    pub fn from_match(m: &Match<'_>) -> Verdict {
        let text = |s: &str| (!s.is_empty()).then(|| Box::<str>::from(s));
        Verdict {
            action: m.action,
            reason: Reason::Listed,
            category: text(m.category),
            score: Some(m.score),
            source: text(m.source),
            entry: Some(m.entry.to_string().into_boxed_str()),
            snapshot_version: None,
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
    fn snapshot_screen_fails_open_without_a_snapshot_and_applies_caller_actions() {
        let screen = SnapshotScreen::new(
            Arc::new(ArcSwapOption::empty()),
            CallerActions {
                anonymous: Action::Block,
                invalid: Action::Tag,
            },
        );
        let v = screen.screen(&Caller::Number("+12025550123".parse().unwrap()));
        assert_eq!((v.action, v.reason), (Action::Allow, Reason::NoSnapshot));
        let v = screen.screen(&Caller::Anonymous);
        assert_eq!((v.action, v.reason), (Action::Block, Reason::Anonymous));
        let v = screen.screen(&Caller::Invalid(InvalidReason::NotANumber));
        assert_eq!((v.action, v.reason), (Action::Tag, Reason::Invalid));
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
