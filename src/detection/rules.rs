//! What the detector measures per caller ([`Features`]), what it concludes ([`Finding`]), and
//! the rules in the form the hot path evaluates.

use super::config::DetectionRule;
use crate::blocklist::Action;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A tracked caller's features at one moment (also the `features` of a `/suspects` entry,
/// which `fraudwall suspects` reads back).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Features {
    /// Calls in the current minute and the one before.
    pub calls_minute: u32,
    /// Calls in the last 10 minutes.
    pub calls_10min: u32,
    /// Calls in the last 60 minutes.
    pub calls_hour: u32,
    /// Distinct callees over the last one to two `distinct_window`s (linear counting,
    /// accurate to about ±10 % up to a few hundred).
    pub distinct_callees: u32,
    /// Distinct callees per call over the same span (0 to 1; 1 once 256 or more distinct
    /// callees saturate the map).
    pub distinct_ratio: f32,
    /// Share of calls one sequential step from the previous callee.
    pub sequential_ratio: f32,
    /// Share of ended attempts that were answered (ASR).
    pub answer_ratio: f32,
    /// Share of ended attempts that were no conversation longer than `short_call`.
    pub short_call_ratio: f32,
    /// Share of ended attempts cancelled within `one_ring` of ringing.
    pub one_ring_ratio: f32,
    /// Ended attempts (decayed): the evidence behind the ratios.
    pub ended: u32,
}

/// The detector's judgement of a caller: the most severe rule that holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The rule's name (`robocall`).
    #[serde(serialize_with = "arc_str")]
    pub rule: Arc<str>,
    /// The rule's category (`robocall`, `wangiri`, `sequential-dialling`).
    #[serde(serialize_with = "arc_str")]
    pub category: Arc<str>,
    /// The rule's action (`tag`, `warn` or `block`).
    pub action: Action,
    /// The rule's score (0 to 100).
    pub score: u8,
    /// The features the rule held on.
    pub features: Features,
}

pub(crate) fn arc_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub name: Arc<str>,
    pub category: Arc<str>,
    pub action: Action,
    pub score: u8,
    rule: DetectionRule,
}

impl Compiled {
    pub(crate) fn new(rule: &DetectionRule) -> Compiled {
        Compiled {
            name: rule.name.as_str().into(),
            category: rule.category.as_str().into(),
            action: rule.action,
            score: rule.score,
            rule: rule.clone(),
        }
    }

    /// Do the rule's volume conditions hold? (Checked first: cheap, and false for almost
    /// every caller.)
    pub(crate) fn volume_holds(&self, minute: u32, ten: u32, hour: u32) -> bool {
        let r = &self.rule;
        r.min_calls_minute.is_none_or(|m| minute >= m)
            && r.min_calls_10min.is_none_or(|m| ten >= m)
            && r.min_calls_hour.is_none_or(|m| hour >= m)
    }

    /// Do the rule's volume and evidence (`min_ended`) conditions hold? The cheap part of
    /// [`Compiled::holds`], checked before the features are computed.
    pub(crate) fn volume_and_evidence_hold(
        &self,
        (minute, ten, hour): (u32, u32, u32),
        ended: u32,
    ) -> bool {
        self.volume_holds(minute, ten, hour) && self.rule.min_ended.is_none_or(|m| ended >= m)
    }

    /// Does every condition hold?
    pub(crate) fn holds(&self, f: &Features) -> bool {
        let r = &self.rule;
        self.volume_holds(f.calls_minute, f.calls_10min, f.calls_hour)
            && r.min_ended.is_none_or(|m| f.ended >= m)
            && r.min_distinct_ratio
                .is_none_or(|m| f64::from(f.distinct_ratio) >= m)
            && r.min_sequential_ratio
                .is_none_or(|m| f64::from(f.sequential_ratio) >= m)
            && r.min_short_call_ratio
                .is_none_or(|m| f64::from(f.short_call_ratio) >= m)
            && r.min_one_ring_ratio
                .is_none_or(|m| f64::from(f.one_ring_ratio) >= m)
            && r.max_answer_ratio
                .is_none_or(|m| f64::from(f.answer_ratio) <= m)
    }

    pub(crate) fn finding(&self, features: Features) -> Finding {
        Finding {
            rule: self.name.clone(),
            category: self.category.clone(),
            action: self.action,
            score: self.score,
            features,
        }
    }
}

/// The lowest count-min estimate a caller can have while the volume conditions of some
/// rule hold, for a sketch halved every `half_life_ds` deciseconds: below it no rule can
/// hold, and the detector need not look the caller up.
///
/// A rule's `min_calls_*` condition over a window of `k` minute buckets counts calls made
/// less than `k` minutes ago; each has been halved in the sketch at most
/// `ceil(k minutes / half_life)` times since, and the sketch never underestimates, so the
/// caller's estimate is at least `n >> halvings`. (Calls the slot was seeded with at
/// admission were the sketch's own decayed count then, so the same holds for them.) A
/// rule needs all its conditions: its bound is the largest; any rule may hold: the bound
/// is the smallest over rules. The estimate is only a bound while time moves forward; a
/// clock that jumps back by more than a window can hide a caller until its next calls.
pub(crate) fn probe_from(rules: &[DetectionRule], half_life_ds: u32) -> u16 {
    const MINUTE_DS: u32 = 600;
    rules
        .iter()
        .map(|r| {
            [
                (r.min_calls_minute, 2u32),
                (r.min_calls_10min, 10),
                (r.min_calls_hour, 60),
            ]
            .into_iter()
            .filter_map(|(n, minutes)| {
                let halvings = (minutes * MINUTE_DS).div_ceil(half_life_ds.max(1));
                n.map(|n| n.checked_shr(halvings).unwrap_or(0))
            })
            .max()
            .unwrap_or(0)
        })
        .min()
        .map_or(u16::MAX, |b| b.min(u32::from(u16::MAX)) as u16)
}

/// The index of the most severe rule that holds (the first among equals).
pub(crate) fn most_severe(rules: &[Compiled], f: &Features) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, r) in rules.iter().enumerate() {
        if r.holds(f) && best.is_none_or(|b| r.action > rules[b].action) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn robocall_features() -> Features {
        Features {
            calls_minute: 4,
            calls_10min: 20,
            calls_hour: 20,
            distinct_callees: 20,
            distinct_ratio: 1.0,
            sequential_ratio: 0.0,
            answer_ratio: 0.3,
            short_call_ratio: 0.95,
            one_ring_ratio: 0.0,
            ended: 15,
        }
    }

    #[test]
    fn every_default_rule_holds_on_its_pattern_and_not_without_it() {
        let rules: Vec<Compiled> = DetectionRule::defaults()
            .iter()
            .map(Compiled::new)
            .collect();
        let name = |i: Option<usize>| i.map(|i| rules[i].name.to_string());
        let f = robocall_features();
        assert_eq!(name(most_severe(&rules, &f)).as_deref(), Some("robocall"));
        // Escalation: a hundred such calls in the hour blocks.
        let big = Features {
            calls_10min: 30,
            calls_hour: 120,
            ended: 60,
            ..f
        };
        assert_eq!(
            name(most_severe(&rules, &big)).as_deref(),
            Some("robocall-block")
        );
        // Long conversations: nothing.
        let talk = Features {
            short_call_ratio: 0.3,
            ..f
        };
        assert_eq!(most_severe(&rules, &talk), None);
        // One callee redialled: nothing.
        let redial = Features {
            distinct_ratio: 0.05,
            distinct_callees: 1,
            ..f
        };
        assert_eq!(most_severe(&rules, &redial), None);
        // Too few calls: nothing.
        let few = Features {
            calls_10min: 9,
            calls_hour: 9,
            ..f
        };
        assert_eq!(most_severe(&rules, &few), None);
        let wangiri = Features {
            calls_10min: 12,
            calls_hour: 12,
            short_call_ratio: 1.0,
            one_ring_ratio: 0.9,
            answer_ratio: 0.0,
            ended: 8,
            ..f
        };
        // Both robocall (no: 12 < 17 calls) and wangiri apply: wangiri.
        assert_eq!(
            name(most_severe(&rules, &wangiri)).as_deref(),
            Some("wangiri")
        );
        let wangiri_big = Features {
            calls_hour: 80,
            calls_10min: 20,
            ended: 40,
            ..wangiri
        };
        assert_eq!(
            name(most_severe(&rules, &wangiri_big)).as_deref(),
            Some("wangiri-block")
        );
        let seq = Features {
            calls_10min: 12,
            calls_hour: 12,
            short_call_ratio: 0.2,
            sequential_ratio: 0.9,
            ended: 3,
            ..f
        };
        assert_eq!(
            name(most_severe(&rules, &seq)).as_deref(),
            Some("sequential-dialling")
        );
    }

    #[test]
    fn a_max_condition_bounds_from_above() {
        let rule = DetectionRule {
            max_answer_ratio: Some(0.2),
            min_calls_hour: Some(10),
            ..DetectionRule::defaults()[0].clone()
        };
        let c = Compiled::new(&DetectionRule {
            min_calls_10min: None,
            ..rule
        });
        let f = robocall_features();
        assert!(!c.holds(&f), "answer ratio 0.3 is above 0.2");
        assert!(c.holds(&Features {
            answer_ratio: 0.1,
            ..f
        }));
    }
}
