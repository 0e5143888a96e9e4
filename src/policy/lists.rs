//! What the rule chain asks of the subscriber and protected lists.
//!
//! The chain does not care how a list is stored (a single memory-mapped snapshot, or a feed's
//! base under its deltas): it asks through these two traits, so the list formats and the
//! feed's layering stay in their own modules.
//!
//! - [`SubscriberLookup`]: what the callee chose about a caller, their personal entry (an
//!   exact number or a prefix, `allow` or `block`) and their level for the global list (the
//!   `*` row of the subscriber CSV).
//! - [`ProtectedLookup`]: whether a caller number is one that only some peer groups may
//!   present (a bank's service line, the police, a Do-Not-Originate number), and which.

use crate::blocklist::EntryKey;
use crate::numbers::E164;
use std::fmt;

/// A subscriber's personal decision about a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonalAction {
    /// Always let this caller through, whatever the global list says.
    Allow,
    /// Always block this caller.
    Block,
}

impl PersonalAction {
    /// The CSV and log spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonalAction::Allow => "allow",
            PersonalAction::Block => "block",
        }
    }
}

/// A subscriber's level for what the global list acts on (the `*` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Opted out: the global list neither labels nor blocks this subscriber's calls.
    Allow,
    /// Label, but never block or divert: a global block or warn becomes a tag.
    Tag,
    /// Block whatever the global list would tag or warn.
    Block,
}

impl Level {
    /// The CSV and log spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Allow => "allow",
            Level::Tag => "tag",
            Level::Block => "block",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The personal entry that matched a caller: the longest of the subscriber's exact numbers and
/// prefixes that covers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalEntry {
    /// What the subscriber chose.
    pub action: PersonalAction,
    /// The entry as written (`+8613800000001` or `+86170*`).
    pub entry: EntryKey,
}

/// What a subscriber's list says about one caller. Both parts are independent: a subscriber
/// may have a personal entry for this caller, a level, both or neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberAnswer {
    /// The longest personal entry covering the caller, if any.
    pub personal: Option<PersonalEntry>,
    /// The subscriber's level (`*` row), if they set one.
    pub level: Option<Level>,
}

/// A subscriber list: what each subscriber chose, keyed by the subscriber's number.
///
/// Must be cheap (asked once per screened identity value on the packet path), must never
/// block, and should not allocate.
pub trait SubscriberLookup: Send + Sync + 'static {
    /// The version reported in verdicts and decision logs.
    fn version(&self) -> u64;
    /// What `subscriber` chose about `caller`.
    fn lookup(&self, subscriber: &E164, caller: &E164) -> SubscriberAnswer;
    /// Whether some subscriber's personal entry may name `caller`. `false` must be certain
    /// (then the chain skips the personal lookup and asks for the level only if a later
    /// stage needs it); `true`, the default, is always safe.
    #[inline]
    fn may_name(&self, caller: &E164) -> bool {
        let _ = caller;
        true
    }
    /// A hint that [`SubscriberLookup::may_name`] will be asked about `caller` soon. Does
    /// nothing by default.
    #[inline]
    fn prefetch_caller(&self, caller: &E164) {
        let _ = caller;
    }
}

/// A protected-list entry that matched a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtectedMatch<'a> {
    /// The entry as written (`+8695588` or `+86955*`).
    pub entry: EntryKey,
    /// The peer groups entitled to present it, `|`-separated (`""`: none, never a
    /// legitimate caller ID).
    pub entitled: &'a str,
    /// The category to block with (`""`: `impersonation`).
    pub category: &'a str,
}

impl ProtectedMatch<'_> {
    /// Whether the peer group `group` may present this number.
    pub fn entitles(&self, group: &str) -> bool {
        !self.entitled.is_empty() && self.entitled.split('|').any(|g| g == group)
    }
}

/// A protected list: numbers only some peer groups may present.
pub trait ProtectedLookup: Send + Sync + 'static {
    /// The version reported in verdicts and decision logs.
    fn version(&self) -> u64;
    /// The longest entry covering `caller`, if any.
    fn lookup(&self, caller: &E164) -> Option<ProtectedMatch<'_>>;
}

/// A list type for a chain without that list: always empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoList;

impl SubscriberLookup for NoList {
    fn version(&self) -> u64 {
        0
    }
    fn lookup(&self, _: &E164, _: &E164) -> SubscriberAnswer {
        SubscriberAnswer::default()
    }
}

impl ProtectedLookup for NoList {
    fn version(&self) -> u64 {
        0
    }
    fn lookup(&self, _: &E164) -> Option<ProtectedMatch<'_>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entitlement_is_an_exact_group_name_and_empty_entitles_nobody() {
        let entry = EntryKey::exact(b"8695588").expect("digits");
        let m = ProtectedMatch {
            entry,
            entitled: "bank-icbc|core",
            category: "",
        };
        assert!(m.entitles("core"));
        assert!(m.entitles("bank-icbc"));
        assert!(!m.entitles("bank"));
        assert!(!m.entitles(""));
        let dno = ProtectedMatch { entitled: "", ..m };
        assert!(!dno.entitles(""));
        assert!(!dno.entitles("core"));
    }
}
