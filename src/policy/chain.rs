//! The rule chain: the whole call, judged by stages in a fixed, documented order.
//!
//! [`Policy`] is the production [`Screen`]. Each stage reads the [`CallContext`] and either
//! **decides** (the verdict is final, and names the stage in [`Verdict::rule`]) or
//! **passes** to the next. The order is fixed, so an operator can always say why a call got
//! what it got (`fraudwall explain` prints each stage):
//!
//! | # | rule | decides when | verdict |
//! |---|---|---|---|
//! | 1 | `protected-callee` | the callee is an emergency or service number (`policy.protected_callees`) | allow: never screened |
//! | 2 | `impersonation` | the caller is on the protected list and the peer group is not entitled to present it | block, category from the list (`impersonation`) |
//! | 3 | `international-spoof` | a home-country caller (`policy.home_country`) enters from an `international` group | `policy.international_spoof` (block), category `spoofed-domestic` |
//! | 4 | `personal` | the callee's own entry covers the caller (exact or prefix) | its allow or block |
//! | 5 | `global` | the blocklist (or feed) lists the caller | the entry's action, adjusted by the callee's level |
//! | 6 | `verstat` | the network asserts `TN-Validation-Failed` | `policy.verstat_failed` (allow: passes) |
//! | 7 | `behaviour` | with `[detection] enabled`, the caller's recent calls match a detection rule, and the caller is neither allowed by the global list nor on the protected list | the finding's action (tag, warn, block) and category, adjusted by the callee's level |
//! | 8 | `anonymous`, `invalid` | the caller is not a number | `actions.anonymous`, `actions.invalid` |
//! | 9 | `international-origin` | a number from an `international` group, when `policy.international_origin = "tag"` | tag, label `Intl: <country>` |
//! | 10 | `default` | nothing decided | allow |
//!
//! **Behaviour** sits after the lists and the network's own assertion (an operator's or
//! subscriber's explicit word, and `verstat`, outrank a statistical finding) and before the
//! international-origin label (a label must not hide a Wangiri block). It asks the
//! [`Detector`] for the caller's finding *without counting the call* ([`Detector::judge`]),
//! unless the front end already did: the front ends that see the call stream (the proxy
//! core, the redirect server) count each call once with the deciding identity. When that
//! identity is known before screening (every believable identity value is the same number,
//! the common call), the front end counts and judges in one visit
//! ([`Detector::visit`]) and passes the judgement in [`CallContext::visited`], which this
//! stage uses for that caller; otherwise it counts after the verdict. Either way the verdict
//! of a caller's n-th call rests on its first n-1. Callers the global list allows (verified businesses,
//! call centres) and numbers on the protected list are exempt, checked here as well, so the
//! exemption holds even with `global` in `policy.disabled_rules`. The verdict reads like a
//! global-list one: `category` and `score` from the rule, `source` = `behaviour`, `entry`
//! (the decision log's `matched`) = the detection rule's name (`robocall-block`).
//!
//! The callee's **level** (the `*` row of their subscriber list) adjusts only what the
//! global list and the behaviour rule decide: `allow` (opted out) makes it allow, `tag` turns a block or warn into
//! a tag, `block` turns a tag or warn into a block. A listed `allow` entry stays allow.
//!
//! **Fail open.** A stage that panics allows the call: the verdict is allow with
//! [`Reason::InternalError`] and the stage's rule, so `fraudwall_verdict_rules_total` counts
//! it under that stage's name, and a warning is logged. A list that is not loaded is a stage
//! with nothing to say (passes); a missing blocklist still gives today's
//! [`Reason::NoSnapshot`].
//!
//! **Cost.** For an unlisted caller the chain does one lookup per list and no allocation:
//! the protected list, the global list, and the subscriber list's caller filter (one cache
//! line; the callee's record is read only when some personal entry may name the caller, or
//! when the global list or the behaviour rule acts and the callee's level is needed). The
//! stages that need no list are a few comparisons. The subscriber list is asked once for
//! both the personal entry and the level.

use super::context::CallContext;
pub use super::lists::NoList;
use super::lists::{Level, PersonalAction, ProtectedLookup, SubscriberAnswer, SubscriberLookup};
pub use super::rules::{PolicyConfig, PolicyConfigError, Rule, Rules, DEFAULT_PROTECTED_CALLEES};
use super::trace::{Explanation, NoTrace, StageOutcome, Trace};
use super::{CallerActions, Lookup, Reason, Screen, Verdict};
use crate::blocklist::{Action, Snapshot};
use crate::detection::Detector;
use crate::numbers::{country, Caller, E164};
use arc_swap::ArcSwapOption;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The production [`Screen`]: the rule chain over the hot-swappable global, subscriber and
/// protected lists.
///
/// Each list lives in an [`ArcSwapOption`] shared with whoever loads new versions (the
/// runtime, the feed): storing a new `Arc` swaps it for the next call without a lock, and
/// calls in flight finish on the version they loaded. `None` means not loaded: the global
/// list then fails open ([`Reason::NoSnapshot`]), the others have nothing to say.
pub struct Policy<L: Lookup = Snapshot, S: SubscriberLookup = NoList, P: ProtectedLookup = NoList> {
    global: Arc<ArcSwapOption<L>>,
    subscribers: Arc<ArcSwapOption<S>>,
    protected: Arc<ArcSwapOption<P>>,
    rules: Rules,
    callers: CallerActions,
    /// The behavioural detector the `behaviour` stage asks (`None`: detection off, the
    /// stage passes).
    detector: Option<Arc<Detector>>,
    /// Panics caught, for the rate of the warning.
    failures: AtomicU64,
}

impl<L: Lookup, S: SubscriberLookup, P: ProtectedLookup> fmt::Debug for Policy<L, S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("global", &self.global.load().as_ref().map(|s| s.version()))
            .field(
                "subscribers",
                &self.subscribers.load().as_ref().map(|s| s.version()),
            )
            .field(
                "protected",
                &self.protected.load().as_ref().map(|s| s.version()),
            )
            .field("rules", &self.rules)
            .field("callers", &self.callers)
            .finish()
    }
}

/// The global list as `evaluate` loaded it, and its answer for the caller when the lookup
/// was done ahead (to overlap the subscriber record's read).
struct Looked<'g, L> {
    list: &'g Option<Arc<L>>,
    early: Option<Option<crate::blocklist::Match<'g>>>,
}

impl<L> Clone for Looked<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L> Copy for Looked<'_, L> {}

impl<L: Lookup> Policy<L, NoList, NoList> {
    /// A chain over the global list alone (no subscriber or protected list), with the
    /// default `[policy]`.
    pub fn over(global: Arc<ArcSwapOption<L>>, callers: CallerActions) -> Self {
        Policy::new(
            global,
            Arc::new(ArcSwapOption::empty()),
            Arc::new(ArcSwapOption::empty()),
            Rules::default(),
            callers,
        )
    }
}

impl<L: Lookup, S: SubscriberLookup, P: ProtectedLookup> Policy<L, S, P> {
    /// A chain over the three list slots (shared with their loaders).
    pub fn new(
        global: Arc<ArcSwapOption<L>>,
        subscribers: Arc<ArcSwapOption<S>>,
        protected: Arc<ArcSwapOption<P>>,
        rules: Rules,
        callers: CallerActions,
    ) -> Self {
        Policy {
            global,
            subscribers,
            protected,
            rules,
            callers,
            detector: None,
            failures: AtomicU64::new(0),
        }
    }

    /// The chain with a behavioural detector for its `behaviour` stage (`None`: off).
    pub fn with_detector(mut self, detector: Option<Arc<Detector>>) -> Self {
        self.detector = detector;
        self
    }

    /// The behavioural detector, if detection is on.
    pub fn detector(&self) -> Option<&Arc<Detector>> {
        self.detector.as_ref()
    }

    /// The global list's slot (store a new one to hot-swap).
    pub fn current(&self) -> &Arc<ArcSwapOption<L>> {
        &self.global
    }

    /// The subscriber list's slot.
    pub fn subscribers(&self) -> &Arc<ArcSwapOption<S>> {
        &self.subscribers
    }

    /// The protected list's slot.
    pub fn protected(&self) -> &Arc<ArcSwapOption<P>> {
        &self.protected
    }

    /// The verdict for `call`, with every stage's outcome.
    pub fn explain(&self, call: &CallContext<'_>) -> Explanation {
        let mut stages = Vec::new();
        let verdict = self.evaluate(call, &mut stages);
        Explanation { verdict, stages }
    }

    /// Runs the chain, reporting each stage to `trace`.
    pub fn evaluate<T: Trace>(&self, call: &CallContext<'_>, trace: &mut T) -> Verdict {
        // The number the list stages look up: the caller's, or a decorated caller's lenient
        // reading (a decoration never hides a listed or protected number).
        let number = match call.caller {
            Caller::Number(n) => Some(n),
            Caller::Decorated { lenient, .. } => Some(lenient),
            _ => None,
        };
        let mut answer: Option<SubscriberAnswer> = None;
        let mut no_snapshot = false;
        let mut version = None;
        // At carrier scale the subscriber list and the caller's blocklist entry are both
        // cold memory. Nearly always no personal entry names the caller, and the personal
        // stage then learns it from one line of the list's caller filter: start fetching
        // that line, then do the global lookup now, while it arrives; the `global` stage
        // uses this answer. (Only when the filter says "maybe" is the callee's record read,
        // after the global lookup.) Precedence is unchanged (the stages still decide in
        // order); only the lookups' work moves earlier. A panic here is ignored: the
        // `global` stage then looks up itself, under its own fail-open guard.
        let global = self.global.load();
        let mut early = None;
        if let (Some(n), Some(_), true, true) = (
            number,
            call.callee.number.as_ref(),
            self.rules.enabled(Rule::Personal),
            self.rules.enabled(Rule::Global),
        ) {
            if let (Some(subs), Some(list)) = (self.subscribers.load().as_ref(), global.as_ref()) {
                subs.prefetch_caller(n);
                early = catch_unwind(AssertUnwindSafe(|| list.lookup(n))).ok();
            }
        }
        for rule in Rule::ALL {
            if !self.rules.enabled(rule) {
                trace.stage(rule, StageOutcome::Disabled, &String::new);
                continue;
            }
            let ran = catch_unwind(AssertUnwindSafe(|| {
                self.stage(
                    rule,
                    call,
                    number,
                    &mut answer,
                    Looked {
                        list: &*global,
                        early,
                    },
                    &mut no_snapshot,
                    &mut version,
                    trace,
                )
            }));
            match ran {
                Ok(Some(v)) => {
                    return Verdict {
                        rule,
                        snapshot_version: v.snapshot_version.or(version),
                        ..v
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    let n = self.failures.fetch_add(1, Ordering::Relaxed);
                    if n.is_power_of_two() || n == 0 {
                        tracing::warn!(
                            rule = rule.as_str(),
                            failures = n + 1,
                            "policy stage panicked: call allowed (fail open)"
                        );
                    }
                    trace.stage(rule, StageOutcome::Failed, &|| "panicked".into());
                    return Verdict {
                        rule,
                        snapshot_version: version,
                        ..Verdict::internal_error()
                    };
                }
            }
        }
        // `default` always decides; not reached.
        Verdict::internal_error()
    }

    /// One stage: `Some` decides.
    #[allow(clippy::too_many_arguments)]
    fn stage<T: Trace>(
        &self,
        rule: Rule,
        call: &CallContext<'_>,
        number: Option<&E164>,
        answer: &mut Option<SubscriberAnswer>,
        global: Looked<'_, L>,
        no_snapshot: &mut bool,
        version: &mut Option<u64>,
        trace: &mut T,
    ) -> Option<Verdict> {
        let decided = |trace: &mut T, v: Verdict, saw: &dyn Fn() -> String| {
            trace.stage(rule, StageOutcome::Decided, saw);
            Some(v)
        };
        let passed = |trace: &mut T, saw: &dyn Fn() -> String| {
            trace.stage(rule, StageOutcome::Passed, saw);
            None
        };
        match rule {
            Rule::ProtectedCallee => {
                match self
                    .rules
                    .protected_callee(call.callee.user, call.callee.number.as_ref())
                {
                    Some(i) => {
                        let code = String::from_utf8_lossy(&self.rules.callees[i]).into_owned();
                        decided(
                            trace,
                            Verdict {
                                entry: Some(code.clone().into()),
                                ..Verdict::new(Action::Allow, Reason::ProtectedCallee)
                            },
                            &|| format!("callee {} is protected ({code})", callee_text(call)),
                        )
                    }
                    None => passed(trace, &|| {
                        format!("callee {} is not protected", callee_text(call))
                    }),
                }
            }
            Rule::Impersonation => {
                let Some(n) = number else {
                    return passed(trace, &|| "no caller number".into());
                };
                let guard = self.protected.load();
                let Some(list) = guard.as_ref() else {
                    return passed(trace, &|| "no protected list loaded".into());
                };
                match list.lookup(n) {
                    Some(m) if !m.entitles(&call.peer.name) => {
                        let category = if m.category.is_empty() {
                            "impersonation"
                        } else {
                            m.category
                        };
                        let v = Verdict {
                            category: Some(category.into()),
                            score: Some(100),
                            source: Some("protected".into()),
                            entry: Some(m.entry.to_string().into()),
                            snapshot_version: Some(list.version()),
                            ..Verdict::new(Action::Block, Reason::Impersonation)
                        };
                        decided(trace, v, &|| {
                            format!(
                                "{n} matches protected {} (entitled: {}), presented by group {}",
                                m.entry,
                                if m.entitled.is_empty() {
                                    "none"
                                } else {
                                    m.entitled
                                },
                                call.peer.name
                            )
                        })
                    }
                    Some(m) => passed(trace, &|| {
                        format!(
                            "{n} matches protected {}, and group {} is entitled to it",
                            m.entry, call.peer.name
                        )
                    }),
                    None => passed(trace, &|| format!("{n} is not on the protected list")),
                }
            }
            Rule::InternationalSpoof => match number {
                Some(n)
                    if call.peer.international
                        && self.rules.spoof != Action::Allow
                        && self.rules.is_home(n.as_bytes()) =>
                {
                    let v = Verdict {
                        category: Some("spoofed-domestic".into()),
                        score: Some(100),
                        ..Verdict::new(self.rules.spoof, Reason::SpoofedDomestic)
                    };
                    decided(trace, v, &|| {
                        format!(
                            "home-country number {n} entered from international group {}",
                            call.peer.name
                        )
                    })
                }
                _ => passed(trace, &|| {
                    format!(
                        "group {} is {}international",
                        call.peer.name,
                        if call.peer.international { "" } else { "not " }
                    )
                }),
            },
            Rule::Personal => {
                let (Some(n), Some(callee)) = (number, call.callee.number.as_ref()) else {
                    return passed(trace, &|| "no caller or callee number".into());
                };
                let guard = self.subscribers.load();
                let Some(list) = guard.as_ref() else {
                    return passed(trace, &|| "no subscriber list loaded".into());
                };
                // No entry names the caller: nothing here can decide. The level, if a later
                // stage needs it, is asked for then (`apply_level`).
                if !trace.keeps() && !list.may_name(n) {
                    return passed(trace, &|| "no personal entry names the caller".into());
                }
                let a = list.lookup(callee, n);
                *answer = Some(a);
                match a.personal {
                    Some(p) => {
                        let action = match p.action {
                            PersonalAction::Allow => Action::Allow,
                            PersonalAction::Block => Action::Block,
                        };
                        let v = Verdict {
                            category: (action == Action::Block).then(|| "personal".into()),
                            source: Some("subscriber".into()),
                            entry: Some(p.entry.to_string().into()),
                            snapshot_version: Some(list.version()),
                            ..Verdict::new(action, Reason::Personal)
                        };
                        decided(trace, v, &|| {
                            format!("{callee}'s entry {} says {}", p.entry, p.action.as_str())
                        })
                    }
                    None => passed(trace, &|| {
                        format!(
                            "{callee} has no entry for {n}{}",
                            a.level.map(|l| format!(" (level {l})")).unwrap_or_default()
                        )
                    }),
                }
            }
            Rule::Global => {
                let Some(n) = number else {
                    return passed(trace, &|| "no caller number".into());
                };
                let Some(list) = global.list.as_ref() else {
                    *no_snapshot = true;
                    return passed(trace, &|| "no blocklist loaded".into());
                };
                *version = Some(list.version());
                let decorated = matches!(call.caller, Caller::Decorated { .. });
                let found = match global.early {
                    Some(found) => found,
                    None => list.lookup(n),
                };
                let m = match found {
                    // A decorated number is acted on only for an entry more severe than the
                    // invalid-caller action (see `numbers`): else `invalid` decides.
                    Some(m) if !m.tombstone && (!decorated || m.action > self.callers.invalid) => m,
                    _ => {
                        return passed(trace, &|| format!("{n} is not on the blocklist"));
                    }
                };
                let mut v = Verdict::from_match(&m);
                if decorated {
                    v.reason = Reason::Evasion;
                }
                let listed = v.action;
                self.apply_level(&mut v, call, n, answer);
                let level = v.level;
                let entry = m.entry;
                decided(trace, v, &|| {
                    let lvl = level
                        .map(|l| format!(", callee level {l}"))
                        .unwrap_or_default();
                    format!("{n} matches {} ({listed}){lvl}", entry)
                })
            }
            Rule::Verstat => {
                let seen = call.verstat;
                if seen == super::context::Verstat::Failed
                    && self.rules.verstat_failed != Action::Allow
                {
                    let v = Verdict {
                        category: Some("verstat-failed".into()),
                        ..Verdict::new(self.rules.verstat_failed, Reason::VerstatFailed)
                    };
                    decided(trace, v, &|| {
                        "the network asserts TN-Validation-Failed".into()
                    })
                } else {
                    passed(trace, &|| format!("verstat {}", seen.as_str()))
                }
            }
            Rule::Behaviour => {
                let Some(detector) = &self.detector else {
                    return passed(trace, &|| "detection is off".into());
                };
                let Some(n) = number else {
                    return passed(trace, &|| "no caller number".into());
                };
                // The front end's visit already judged this caller (and counted the call):
                // use it; else ask without counting.
                let judged = match call.visited {
                    Some(v) if v.caller == *n => v.finding.cloned(),
                    _ => detector.judge(n, call.now),
                };
                let Some(f) = judged else {
                    return passed(trace, &|| {
                        match detector.features(n, call.now) {
                            Some(f) => format!(
                                "{n}: no detection rule holds ({} calls in 10 min, {} in the hour, distinct ratio {:.2}, short-call ratio {:.2}, one-ring ratio {:.2})",
                                f.calls_10min, f.calls_hour, f.distinct_ratio, f.short_call_ratio, f.one_ring_ratio
                            ),
                            None => format!("{n} is not a tracked caller"),
                        }
                    });
                };
                if let Some(why) = self.exempt(n) {
                    return passed(trace, &|| {
                        format!("{n} matches detection rule {} but is exempt: {why}", f.rule)
                    });
                }
                let mut v = Verdict {
                    category: Some(Box::from(&*f.category)),
                    score: Some(f.score),
                    source: Some("behaviour".into()),
                    entry: Some(Box::from(&*f.rule)),
                    ..Verdict::new(f.action, Reason::Behaviour)
                };
                self.apply_level(&mut v, call, n, answer);
                let level = v.level;
                decided(trace, v, &|| {
                    let lvl = level
                        .map(|l| format!(", callee level {l}"))
                        .unwrap_or_default();
                    format!(
                        "{n} matches detection rule {} ({}, {}): {} calls in 10 min, {} in the hour, distinct ratio {:.2}, short-call ratio {:.2}, one-ring ratio {:.2}, sequential ratio {:.2}{lvl}",
                        f.rule,
                        f.category,
                        f.action,
                        f.features.calls_10min,
                        f.features.calls_hour,
                        f.features.distinct_ratio,
                        f.features.short_call_ratio,
                        f.features.one_ring_ratio,
                        f.features.sequential_ratio
                    )
                })
            }
            Rule::Anonymous => match call.caller {
                Caller::Anonymous => decided(
                    trace,
                    Verdict::new(self.callers.anonymous, Reason::Anonymous),
                    &|| "no usable identity".into(),
                ),
                _ => passed(trace, &|| "the caller has an identity".into()),
            },
            Rule::Invalid => match call.caller {
                Caller::Invalid(_) | Caller::Decorated { .. } => decided(
                    trace,
                    Verdict::new(self.callers.invalid, Reason::Invalid),
                    &|| format!("{} is not a valid number", caller_text(call)),
                ),
                _ => passed(trace, &|| "the caller is a number".into()),
            },
            Rule::InternationalOrigin => match number {
                Some(n) if call.peer.international && self.rules.origin == Action::Tag => {
                    let c = country::country_of(n.as_bytes());
                    let v = Verdict {
                        category: Some("international".into()),
                        label: c.map(|c| c.label().into()),
                        ..Verdict::new(Action::Tag, Reason::InternationalOrigin)
                    };
                    decided(trace, v, &|| {
                        format!(
                            "{n} from international group {} ({})",
                            call.peer.name,
                            c.map_or("unknown country", |c| c.name)
                        )
                    })
                }
                _ => passed(trace, &|| "not labelled".into()),
            },
            Rule::Default => {
                let reason = if *no_snapshot && number.is_some() {
                    Reason::NoSnapshot
                } else {
                    Reason::Unlisted
                };
                decided(trace, Verdict::new(Action::Allow, reason), &|| {
                    "no stage decided".into()
                })
            }
        }
    }
}

impl<L: Lookup, S: SubscriberLookup, P: ProtectedLookup> Policy<L, S, P> {
    /// The callee's level adjusts a non-allow verdict of the global list or the behaviour
    /// rule: opted out, label only, or block all: the level is the action.
    fn apply_level(
        &self,
        v: &mut Verdict,
        call: &CallContext<'_>,
        n: &E164,
        answer: &Option<SubscriberAnswer>,
    ) {
        if v.action == Action::Allow {
            return;
        }
        let level = match answer {
            Some(a) => a.level,
            None => self.subscriber_answer(call, n).and_then(|a| a.level),
        };
        if let Some(level) = level {
            v.action = match level {
                Level::Allow => Action::Allow,
                Level::Tag => Action::Tag,
                Level::Block => Action::Block,
            };
            v.level = Some(level);
        }
    }

    /// Why a caller the detector flags is exempt from the `behaviour` rule: the global list
    /// allows it (a verified business), or it is on the protected list.
    fn exempt(&self, n: &E164) -> Option<&'static str> {
        if let Some(list) = self.global.load().as_ref() {
            if list
                .lookup(n)
                .is_some_and(|m| !m.tombstone && m.action == Action::Allow)
            {
                return Some("the global list allows it");
            }
        }
        if let Some(list) = self.protected.load().as_ref() {
            if list.lookup(n).is_some() {
                return Some("it is on the protected list");
            }
        }
        None
    }

    /// What the callee chose about caller `n`, asked of the subscriber list (when the
    /// personal stage did not ask already).
    fn subscriber_answer(&self, call: &CallContext<'_>, n: &E164) -> Option<SubscriberAnswer> {
        let callee = call.callee.number.as_ref()?;
        let guard = self.subscribers.load();
        guard.as_ref().map(|list| list.lookup(callee, n))
    }
}

fn callee_text(call: &CallContext<'_>) -> String {
    match &call.callee.number {
        Some(n) => n.to_string(),
        None if call.callee.user.is_empty() => "(none)".into(),
        None => String::from_utf8_lossy(call.callee.user).into_owned(),
    }
}

fn caller_text(call: &CallContext<'_>) -> String {
    if call.caller_raw.is_empty() {
        format!("{:?}", call.caller)
    } else {
        String::from_utf8_lossy(call.caller_raw).into_owned()
    }
}

impl<L: Lookup, S: SubscriberLookup, P: ProtectedLookup> Screen for Policy<L, S, P> {
    fn screen(&self, call: &CallContext<'_>) -> Verdict {
        self.evaluate(call, &mut NoTrace)
    }
}
