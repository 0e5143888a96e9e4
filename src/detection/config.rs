//! `[detection]`: the behavioural detector's configuration ([`DetectionConfig`]) and its rules
//! ([`DetectionRule`]), checked once by [`DetectionConfig::validate`].

use crate::blocklist::Action;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// `[detection]`: behavioural detection of fraud numbers from the calls themselves.
///
/// Memory is fixed by `max_tracked_callers`, `pending_calls` and `sketch_mb` whatever the
/// number of distinct callers, and must fit in `memory_mb` ([`DetectionConfig::validate`]
/// says by how much it does not). [`DetectionConfig::default`] is the documented default
/// set; see the module docs of [`crate::detection`] for where each figure comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionConfig {
    /// Run the detector and the policy's `behaviour` rule.
    pub enabled: bool,
    /// Upper bound of the detector's memory, in MiB: the tracked callers, the pending calls
    /// and the sketch must fit in it.
    pub memory_mb: u32,
    /// Callers tracked with full features at once (the heavy hitters). Each costs
    /// [`crate::detection::TRACKED_CALLER_BYTES`] bytes.
    pub max_tracked_callers: u32,
    /// Calls in progress remembered between the INVITE and its outcome (ringing, answer,
    /// CANCEL, error, BYE). Each costs [`crate::detection::PENDING_CALL_BYTES`] bytes; when full
    /// the oldest call of a bucket is forgotten (counted).
    pub pending_calls: u32,
    /// Size of the count-min sketch that counts every caller's recent calls (MiB).
    pub sketch_mb: u32,
    /// A caller is tracked with full features once the sketch counts this many recent calls
    /// from it (within about one `half_life`).
    pub track_after: u32,
    /// Half-life of the outcome counters (answer, short-call, one-ring and sequential
    /// ratios) and of the sketch.
    #[serde(with = "crate::config::value::duration")]
    pub half_life: Duration,
    /// Length of one generation of the distinct-callee sketch: distinct callees are counted
    /// over the current and the previous generation.
    #[serde(with = "crate::config::value::duration")]
    pub distinct_window: Duration,
    /// An answered call ended by BYE within this long counts as a short call (Hubei Mobile:
    /// "10 s or shorter"). Unanswered attempts count as short too.
    #[serde(with = "crate::config::value::duration")]
    pub short_call: Duration,
    /// A call cancelled within this long of its first ringing response (or of the INVITE
    /// when no ringing was seen) counts as a one-ring cancel (Wangiri).
    #[serde(with = "crate::config::value::duration")]
    pub one_ring: Duration,
    /// Two consecutive callees at most this far apart (as numbers, same length) count as a
    /// sequential-dialling step.
    pub sequential_step: u32,
    /// How long a flagged caller stays in `/suspects` after it was last flagged (while it
    /// is still tracked).
    #[serde(with = "crate::config::value::duration")]
    pub suspect_retention: Duration,
    /// Shared counters: a Redis URL (`redis://127.0.0.1:6379`), `None` (written `""`) for
    /// local counts only.
    #[serde(with = "crate::config::value::empty_none")]
    pub redis: Option<String>,
    /// How often local increments are pushed to Redis and the others' pulled (pipelined,
    /// never on a call's path).
    #[serde(with = "crate::config::value::duration")]
    pub redis_flush_interval: Duration,
    /// The rules, evaluated on every INVITE of a tracked caller; the most severe action of
    /// the rules that hold wins (the first listed among equals).
    pub rules: Vec<DetectionRule>,
}

/// One detection rule: every condition it sets must hold. At least one call-volume
/// condition (`min_calls_minute`, `min_calls_10min`, `min_calls_hour`) is required, so a
/// rule never fires on a handful of calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionRule {
    /// Unique name, written in the decision log and `/suspects` (`robocall`).
    pub name: String,
    /// Category written with the verdict (`robocall`, `wangiri`, `sequential-dialling`).
    pub category: String,
    /// `tag`, `warn` or `block`.
    pub action: Action,
    /// Score written with the verdict (0 to 100).
    #[serde(default = "default_score")]
    pub score: u8,
    /// Calls in the current minute and the one before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_calls_minute: Option<u32>,
    /// Calls in the last 10 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_calls_10min: Option<u32>,
    /// Calls in the last 60 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_calls_hour: Option<u32>,
    /// Ended attempts observed (decayed): the evidence the ratios rest on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ended: Option<u32>,
    /// Distinct callees per call (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_distinct_ratio: Option<f64>,
    /// Share of calls whose callee is one sequential step from the previous one (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sequential_ratio: Option<f64>,
    /// Share of ended attempts that were not a conversation longer than `short_call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_short_call_ratio: Option<f64>,
    /// Share of ended attempts cancelled within `one_ring` of ringing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_one_ring_ratio: Option<f64>,
    /// Share of ended attempts that were answered (at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_answer_ratio: Option<f64>,
}

fn default_score() -> u8 {
    80
}

impl DetectionRule {
    fn new(name: &str, category: &str, action: Action, score: u8) -> Self {
        DetectionRule {
            name: name.into(),
            category: category.into(),
            action,
            score,
            min_calls_minute: None,
            min_calls_10min: None,
            min_calls_hour: None,
            min_ended: None,
            min_distinct_ratio: None,
            min_sequential_ratio: None,
            min_short_call_ratio: None,
            min_one_ring_ratio: None,
            max_answer_ratio: None,
        }
    }

    /// The documented default rule set (see [`crate::detection`] for the figures):
    /// `robocall` (tag) and `robocall-block`, `wangiri` (tag) and `wangiri-block`,
    /// `sequential-dialling` (tag).
    pub fn defaults() -> Vec<DetectionRule> {
        vec![
            DetectionRule {
                min_calls_10min: Some(17),
                min_ended: Some(8),
                min_distinct_ratio: Some(0.6),
                min_short_call_ratio: Some(0.7),
                ..DetectionRule::new("robocall", "robocall", Action::Tag, 70)
            },
            DetectionRule {
                min_calls_hour: Some(100),
                min_ended: Some(30),
                min_distinct_ratio: Some(0.6),
                min_short_call_ratio: Some(0.8),
                ..DetectionRule::new("robocall-block", "robocall", Action::Block, 90)
            },
            DetectionRule {
                min_calls_10min: Some(10),
                min_ended: Some(6),
                min_distinct_ratio: Some(0.6),
                min_one_ring_ratio: Some(0.6),
                ..DetectionRule::new("wangiri", "wangiri", Action::Tag, 70)
            },
            DetectionRule {
                min_calls_hour: Some(50),
                min_ended: Some(20),
                min_distinct_ratio: Some(0.6),
                min_one_ring_ratio: Some(0.7),
                ..DetectionRule::new("wangiri-block", "wangiri", Action::Block, 90)
            },
            DetectionRule {
                min_calls_10min: Some(10),
                min_distinct_ratio: Some(0.6),
                min_sequential_ratio: Some(0.6),
                ..DetectionRule::new(
                    "sequential-dialling",
                    "sequential-dialling",
                    Action::Tag,
                    70,
                )
            },
        ]
    }

    /// Does the rule set a call-volume condition?
    fn has_volume(&self) -> bool {
        self.min_calls_minute.is_some()
            || self.min_calls_10min.is_some()
            || self.min_calls_hour.is_some()
    }
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            enabled: false,
            memory_mb: 256,
            max_tracked_callers: 524_288,
            pending_calls: 262_144,
            sketch_mb: 16,
            track_after: 3,
            half_life: Duration::from_secs(20 * 60),
            distinct_window: Duration::from_secs(15 * 60),
            short_call: Duration::from_secs(10),
            one_ring: Duration::from_secs(6),
            sequential_step: 10,
            suspect_retention: Duration::from_secs(24 * 3600),
            redis: None,
            redis_flush_interval: Duration::from_millis(250),
            rules: DetectionRule::defaults(),
        }
    }
}

/// A `[detection]` value that cannot be used; every variant names its key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectionConfigError {
    /// The tracked callers, pending calls and sketch do not fit in `memory_mb`.
    #[error(
        "detection.memory_mb: {memory_mb} MiB is below the {needed_mb} MiB the detector needs \
         (max_tracked_callers = {tracked} at {tracked_bytes} bytes each, pending_calls = \
         {pending} at {pending_bytes} bytes each, sketch_mb = {sketch_mb}): raise memory_mb to \
         {needed_mb} or lower max_tracked_callers"
    )]
    MemoryTooSmall {
        /// The configured bound.
        memory_mb: u32,
        /// What the configuration needs.
        needed_mb: u64,
        /// `max_tracked_callers`.
        tracked: u32,
        /// Bytes per tracked caller.
        tracked_bytes: usize,
        /// `pending_calls`.
        pending: u32,
        /// Bytes per pending call.
        pending_bytes: usize,
        /// `sketch_mb`.
        sketch_mb: u32,
    },
    /// A number or duration out of its range.
    #[error("{key}: {value} is out of range {range}")]
    OutOfRange {
        /// The key, e.g. `detection.track_after`.
        key: String,
        /// The value as written.
        value: String,
        /// The allowed range, as text.
        range: &'static str,
    },
    /// A rule that cannot be used.
    #[error("{key}: {reason}")]
    Rule {
        /// The key, e.g. `detection.rules[2].action`.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// `detection.redis` is not a Redis URL.
    #[error("detection.redis: {0:?} is not a Redis URL (expected e.g. \"redis://127.0.0.1:6379\", \"rediss://host:6380\" or \"unix:///run/redis.sock\")")]
    Redis(String),
}

impl DetectionConfigError {
    /// The key at fault, e.g. `detection.memory_mb`.
    pub fn key(&self) -> String {
        match self {
            DetectionConfigError::MemoryTooSmall { .. } => "detection.memory_mb".into(),
            DetectionConfigError::OutOfRange { key, .. }
            | DetectionConfigError::Rule { key, .. } => key.clone(),
            DetectionConfigError::Redis(_) => "detection.redis".into(),
        }
    }

    /// The message without its leading key (for errors that put the key apart).
    pub fn reason(&self) -> String {
        let text = self.to_string();
        let key = self.key();
        text.strip_prefix(&format!("{key}: "))
            .map(str::to_string)
            .unwrap_or(text)
    }
}

fn range_u32(
    key: &str,
    v: u32,
    lo: u32,
    hi: u32,
    range: &'static str,
) -> Result<(), DetectionConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(DetectionConfigError::OutOfRange {
            key: format!("detection.{key}"),
            value: v.to_string(),
            range,
        })
    }
}

fn range_dur(
    key: &str,
    v: Duration,
    lo: Duration,
    hi: Duration,
    range: &'static str,
) -> Result<(), DetectionConfigError> {
    if v >= lo && v <= hi {
        Ok(())
    } else {
        Err(DetectionConfigError::OutOfRange {
            key: format!("detection.{key}"),
            value: humantime::format_duration(v).to_string(),
            range,
        })
    }
}

impl DetectionConfig {
    /// Bytes the detector allocates for this configuration (what
    /// [`crate::detection::Detector::memory_bytes`] reports, within a few KiB of shard
    /// headers).
    pub fn needed_bytes(&self) -> u64 {
        super::table::bytes_for(self) + super::pending::bytes_for(self) + self.sketch_bytes()
    }

    pub(crate) fn sketch_bytes(&self) -> u64 {
        u64::from(self.sketch_mb) * MIB
    }

    /// Checks ranges, the memory bound and the rules; the error names the key.
    pub fn validate(&self) -> Result<(), DetectionConfigError> {
        range_u32("memory_mb", self.memory_mb, 1, 65_536, "1 to 65536")?;
        range_u32(
            "max_tracked_callers",
            self.max_tracked_callers,
            1024,
            1 << 28,
            "1024 to 268435456",
        )?;
        range_u32(
            "pending_calls",
            self.pending_calls,
            1024,
            1 << 28,
            "1024 to 268435456",
        )?;
        range_u32("sketch_mb", self.sketch_mb, 1, 4096, "1 to 4096")?;
        range_u32("track_after", self.track_after, 1, 1000, "1 to 1000")?;
        range_u32(
            "sequential_step",
            self.sequential_step,
            1,
            1_000_000,
            "1 to 1000000",
        )?;
        let s = Duration::from_secs;
        range_dur("half_life", self.half_life, s(60), s(86_400), "1m to 24h")?;
        range_dur(
            "distinct_window",
            self.distinct_window,
            s(60),
            s(1800),
            "1m to 30m",
        )?;
        range_dur("short_call", self.short_call, s(1), s(600), "1s to 10m")?;
        range_dur("one_ring", self.one_ring, s(1), s(120), "1s to 2m")?;
        range_dur(
            "suspect_retention",
            self.suspect_retention,
            s(60),
            s(30 * 86_400),
            "1m to 30 days",
        )?;
        range_dur(
            "redis_flush_interval",
            self.redis_flush_interval,
            Duration::from_millis(10),
            s(60),
            "10ms to 60s",
        )?;
        if let Some(url) = &self.redis {
            let ok = ["redis://", "rediss://", "unix://", "redis+unix://"]
                .iter()
                .any(|p| url.starts_with(p) && url.len() > p.len());
            if !ok {
                return Err(DetectionConfigError::Redis(url.clone()));
            }
        }
        let needed = self.needed_bytes();
        if needed > u64::from(self.memory_mb) * MIB {
            return Err(DetectionConfigError::MemoryTooSmall {
                memory_mb: self.memory_mb,
                needed_mb: needed.div_ceil(MIB),
                tracked: self.max_tracked_callers,
                tracked_bytes: super::TRACKED_CALLER_BYTES,
                pending: self.pending_calls,
                pending_bytes: super::PENDING_CALL_BYTES,
                sketch_mb: self.sketch_mb,
            });
        }
        if self.enabled && self.rules.is_empty() {
            return Err(DetectionConfigError::Rule {
                key: "detection.rules".into(),
                reason: "detection is enabled but no rule is set: drop `rules` for the default set"
                    .into(),
            });
        }
        if self.rules.len() > 250 {
            return Err(DetectionConfigError::Rule {
                key: "detection.rules".into(),
                reason: format!("{} rules: at most 250", self.rules.len()),
            });
        }
        for (i, r) in self.rules.iter().enumerate() {
            let key = |field: &str| format!("detection.rules[{i}].{field}");
            let bad = |field: &str, reason: String| DetectionConfigError::Rule {
                key: key(field),
                reason,
            };
            if r.name.trim().is_empty() {
                return Err(bad(
                    "name",
                    "empty: name the rule (e.g. \"robocall\")".into(),
                ));
            }
            if self.rules[..i].iter().any(|o| o.name == r.name) {
                return Err(bad(
                    "name",
                    format!("{:?} is used by an earlier rule", r.name),
                ));
            }
            if r.category.trim().is_empty() {
                return Err(bad(
                    "category",
                    "empty: e.g. \"robocall\", \"wangiri\"".into(),
                ));
            }
            if r.action == Action::Allow {
                return Err(bad(
                    "action",
                    "\"allow\" acts on nothing: use tag, warn or block".into(),
                ));
            }
            if r.score > 100 {
                return Err(bad(
                    "score",
                    format!("{} is out of range 0 to 100", r.score),
                ));
            }
            if !r.has_volume() {
                return Err(bad(
                    "min_calls_10min",
                    "the rule sets no call volume: set min_calls_minute, min_calls_10min or min_calls_hour".into(),
                ));
            }
            for (field, v) in [
                ("min_distinct_ratio", r.min_distinct_ratio),
                ("min_sequential_ratio", r.min_sequential_ratio),
                ("min_short_call_ratio", r.min_short_call_ratio),
                ("min_one_ring_ratio", r.min_one_ring_ratio),
                ("max_answer_ratio", r.max_answer_ratio),
            ] {
                if let Some(v) = v {
                    if !(0.0..=1.0).contains(&v) {
                        return Err(bad(field, format!("{v} is out of range 0 to 1")));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_fit_256_mib() {
        let c = DetectionConfig::default();
        c.validate().unwrap();
        assert!(c.needed_bytes() <= 256 * MIB);
        let on = DetectionConfig {
            enabled: true,
            ..DetectionConfig::default()
        };
        on.validate().unwrap();
    }

    #[test]
    fn memory_below_top_k_names_the_key() {
        let c = DetectionConfig {
            memory_mb: 32,
            ..DetectionConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.key(), "detection.memory_mb");
        assert!(e.to_string().contains("max_tracked_callers"), "{e}");
    }

    #[test]
    fn bad_rules_name_their_key() {
        let mut c = DetectionConfig::default();
        c.rules[1].action = Action::Allow;
        assert_eq!(c.validate().unwrap_err().key(), "detection.rules[1].action");
        let mut c = DetectionConfig::default();
        c.rules[0].min_calls_10min = None;
        assert_eq!(
            c.validate().unwrap_err().key(),
            "detection.rules[0].min_calls_10min"
        );
        let mut c = DetectionConfig::default();
        c.rules[2].min_one_ring_ratio = Some(1.5);
        assert_eq!(
            c.validate().unwrap_err().key(),
            "detection.rules[2].min_one_ring_ratio"
        );
        let mut c = DetectionConfig::default();
        c.rules[3].name = "robocall".into();
        assert_eq!(c.validate().unwrap_err().key(), "detection.rules[3].name");
        let c = DetectionConfig {
            enabled: true,
            rules: vec![],
            ..DetectionConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key(), "detection.rules");
        let c = DetectionConfig {
            redis: Some("127.0.0.1:6379".into()),
            ..DetectionConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key(), "detection.redis");
        let c = DetectionConfig {
            track_after: 0,
            ..DetectionConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key(), "detection.track_after");
    }

    #[test]
    fn toml_round_trips_and_rejects_unknown_keys() {
        let c = DetectionConfig::default();
        let text = toml::to_string(&c).unwrap();
        let back: DetectionConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert!(toml::from_str::<DetectionConfig>("enabeld = true\n").is_err());
        let r: DetectionConfig = toml::from_str(
            "enabled = true\nredis = \"redis://127.0.0.1:6379\"\n[[rules]]\nname = \"x\"\ncategory = \"robocall\"\naction = \"block\"\nmin_calls_hour = 200\n",
        )
        .unwrap();
        r.validate().unwrap();
        assert_eq!(r.rules.len(), 1);
        assert_eq!(r.rules[0].score, 80);
        assert_eq!(r.redis.as_deref(), Some("redis://127.0.0.1:6379"));
    }
}
