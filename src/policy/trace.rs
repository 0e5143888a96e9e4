//! What `fraudwall explain` sees of the rule chain: each stage's outcome as the chain
//! ([`super::chain::Policy::evaluate`]) reports it to a [`Trace`]. The packet path passes
//! [`NoTrace`], which keeps nothing and formats nothing; `explain` keeps a
//! [`StageRecord`] per stage in an [`Explanation`].

use super::rules::Rule;
use super::Verdict;
use serde::Serialize;

/// What a stage did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageOutcome {
    /// The stage decided the verdict.
    Decided,
    /// It had nothing to say; the next stage was asked.
    Passed,
    /// Turned off in `policy.disabled_rules`.
    Disabled,
    /// It panicked: the call was allowed (fail open).
    Failed,
}

/// Receives each stage's outcome (`explain`); the packet path uses [`NoTrace`].
pub trait Trace {
    /// One stage ran. `saw` describes what it looked at (called only by tracers that keep
    /// it, so the packet path formats nothing).
    fn stage(&mut self, rule: Rule, outcome: StageOutcome, saw: &dyn Fn() -> String);
    /// Whether the tracer keeps what the stages saw. One that keeps nothing lets the chain
    /// skip a lookup whose answer could only change the description, never the verdict
    /// (the personal stage's, when no personal entry names the caller).
    fn keeps(&self) -> bool {
        true
    }
}

/// A tracer that keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn stage(&mut self, _: Rule, _: StageOutcome, _: &dyn Fn() -> String) {}
    #[inline(always)]
    fn keeps(&self) -> bool {
        false
    }
}

/// One stage as `explain` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageRecord {
    /// The stage.
    pub rule: Rule,
    /// What it did.
    pub outcome: StageOutcome,
    /// What it looked at.
    pub saw: String,
}

impl Trace for Vec<StageRecord> {
    fn stage(&mut self, rule: Rule, outcome: StageOutcome, saw: &dyn Fn() -> String) {
        self.push(StageRecord {
            rule,
            outcome,
            saw: saw(),
        });
    }
}

/// The verdict and every stage on the way to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The verdict.
    pub verdict: Verdict,
    /// The stages in order, up to the one that decided.
    pub stages: Vec<StageRecord>,
}
