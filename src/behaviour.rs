//! Behavioural detection in the running product: the [`crate::detection`] core's metrics,
//! the `/suspects` document, and the shared counters over Redis.
//!
//! The detector itself is sans-I/O (see [`crate::detection`]); this module is everything
//! around it that reads a clock or a socket:
//!
//! * [`DetectionMetrics`]: `fraudwall_detection_*` (events by kind, findings by rule,
//!   tracked callers, bytes, Redis merge outcomes), registered once on the telemetry's
//!   recorder, refreshed from [`Detector::stats`] once a second by [`spawn`]'s task;
//! * [`SuspectsDocument`]: what `GET /suspects` on the admin listener serves, with ages
//!   turned into timestamps, and the blocklist CSV rows `fraudwall suspects --csv` prints;
//! * [`shared`]: the Redis task that merges counters between nodes (`detection.redis`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `detection_events_total` | counter | `kind` (`invite`, `ringing`, `answered`, `cancelled`, `failed`, `bye`): what the proxy core told the detector |
//! | `detection_findings_total` | counter | `rule` (the detection rule's name): calls the `behaviour` stage decided |
//! | `detection_tracked` | gauge | callers tracked now |
//! | `detection_pending` | gauge | calls pending now |
//! | `detection_memory_bytes` | gauge | the detector's memory (fixed at start) |
//! | `detection_retransmissions_total`, `detection_unmatched_total`, `detection_garbage_total`, `detection_admitted_total`, `detection_evicted_total`, `detection_pending_forgotten_total`, `detection_remote_deltas_total` | counter | the detector's own counts ([`crate::detection::DetectorStats`]) |
//! | `detection_redis_total` | counter | `outcome` (`ok`, `slow`, `down`, `garbage`): one per Redis exchange |
//! | `detection_redis_deltas_total` | counter | `direction` (`pushed`, `merged`, `unsent`: drained while Redis was unreachable, kept local only, `garbage`: entries ignored) |

pub mod shared;

use crate::blocklist::Action;
use crate::detection::{CallEventKind, Detector, DetectorStats, Features, Suspect};
use metrics::{Counter, Gauge, Key, Label};
use metrics_exporter_prometheus::PrometheusRecorder;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The event kinds in metric-label order.
const KINDS: [&str; 6] = [
    "invite",
    "ringing",
    "answered",
    "cancelled",
    "failed",
    "bye",
];

fn kind_index(k: &CallEventKind) -> usize {
    match k {
        CallEventKind::Invite { .. } => 0,
        CallEventKind::Ringing => 1,
        CallEventKind::Answered => 2,
        CallEventKind::Cancelled => 3,
        CallEventKind::Failed { .. } => 4,
        CallEventKind::Bye => 5,
    }
}

/// How one exchange with Redis went: the `outcome` label of
/// `fraudwall_detection_redis_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisOutcome {
    /// Pushed and pulled.
    Ok = 0,
    /// No answer within the timeout: local counts only this round.
    Slow = 1,
    /// Unreachable (refused, reset, closed): local counts only until it is back.
    Down = 2,
    /// An answer that is not what was asked for (counted, ignored).
    Garbage = 3,
}

impl RedisOutcome {
    /// Every outcome, in discriminant order.
    pub const ALL: [RedisOutcome; 4] = [
        RedisOutcome::Ok,
        RedisOutcome::Slow,
        RedisOutcome::Down,
        RedisOutcome::Garbage,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RedisOutcome::Ok => "ok",
            RedisOutcome::Slow => "slow",
            RedisOutcome::Down => "down",
            RedisOutcome::Garbage => "garbage",
        }
    }
}

/// Deltas by what became of them: the `direction` label of
/// `fraudwall_detection_redis_deltas_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaFate {
    /// Pushed to Redis.
    Pushed = 0,
    /// Another node's, merged here.
    Merged = 1,
    /// Drained while Redis could not be reached: counted locally only.
    Unsent = 2,
    /// An entry in the stream that does not parse: ignored.
    Garbage = 3,
}

impl DeltaFate {
    /// Every fate, in discriminant order.
    pub const ALL: [DeltaFate; 4] = [
        DeltaFate::Pushed,
        DeltaFate::Merged,
        DeltaFate::Unsent,
        DeltaFate::Garbage,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DeltaFate::Pushed => "pushed",
            DeltaFate::Merged => "merged",
            DeltaFate::Unsent => "unsent",
            DeltaFate::Garbage => "garbage",
        }
    }
}

/// The detection metrics, registered once (see the module docs).
pub struct DetectionMetrics {
    events: [Counter; KINDS.len()],
    /// By detection rule name (a handful, from the configuration).
    findings: Vec<(Box<str>, Counter)>,
    findings_other: Counter,
    tracked: Gauge,
    pending: Gauge,
    memory: Gauge,
    retransmissions: Counter,
    unmatched: Counter,
    garbage: Counter,
    admitted: Counter,
    evicted: Counter,
    forgotten: Counter,
    remote: Counter,
    redis: [Counter; RedisOutcome::ALL.len()],
    deltas: [Counter; DeltaFate::ALL.len()],
}

impl std::fmt::Debug for DetectionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectionMetrics").finish_non_exhaustive()
    }
}

impl DetectionMetrics {
    /// Registers the metrics on `recorder`, a findings counter per rule name.
    pub fn register<'a>(
        recorder: &PrometheusRecorder,
        rules: impl IntoIterator<Item = &'a str>,
    ) -> DetectionMetrics {
        use metrics::Recorder;
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &meta)
        };
        let gauge = |name: &'static str| recorder.register_gauge(&Key::from_name(name), &meta);
        let finding = |rule: &str| {
            counter(
                "fraudwall_detection_findings_total",
                vec![Label::new("rule", rule.to_string())],
            )
        };
        DetectionMetrics {
            events: KINDS.map(|k| {
                counter(
                    "fraudwall_detection_events_total",
                    vec![Label::new("kind", k)],
                )
            }),
            findings: rules
                .into_iter()
                .map(|r| (Box::from(r), finding(r)))
                .collect(),
            findings_other: finding("other"),
            tracked: gauge("fraudwall_detection_tracked"),
            pending: gauge("fraudwall_detection_pending"),
            memory: gauge("fraudwall_detection_memory_bytes"),
            retransmissions: counter("fraudwall_detection_retransmissions_total", vec![]),
            unmatched: counter("fraudwall_detection_unmatched_total", vec![]),
            garbage: counter("fraudwall_detection_garbage_total", vec![]),
            admitted: counter("fraudwall_detection_admitted_total", vec![]),
            evicted: counter("fraudwall_detection_evicted_total", vec![]),
            forgotten: counter("fraudwall_detection_pending_forgotten_total", vec![]),
            remote: counter("fraudwall_detection_remote_deltas_total", vec![]),
            redis: RedisOutcome::ALL.map(|o| {
                counter(
                    "fraudwall_detection_redis_total",
                    vec![Label::new("outcome", o.as_str())],
                )
            }),
            deltas: DeltaFate::ALL.map(|d| {
                counter(
                    "fraudwall_detection_redis_deltas_total",
                    vec![Label::new("direction", d.as_str())],
                )
            }),
        }
    }

    /// Counts one event the core told the detector.
    #[inline]
    pub fn event(&self, kind: &CallEventKind) {
        self.events[kind_index(kind)].increment(1);
    }

    /// Counts one call the `behaviour` stage decided, by the detection rule's name.
    pub fn finding(&self, rule: &str) {
        match self.findings.iter().find(|(name, _)| &**name == rule) {
            Some((_, c)) => c.increment(1),
            None => self.findings_other.increment(1),
        }
    }

    /// Counts one Redis exchange.
    pub fn redis(&self, outcome: RedisOutcome) {
        self.redis[outcome as usize].increment(1);
    }

    /// Counts deltas by fate.
    pub fn deltas(&self, fate: DeltaFate, n: usize) {
        self.deltas[fate as usize].increment(n as u64);
    }

    /// Sets the gauges and the detector's own counters from its stats.
    pub fn stats(&self, s: &DetectorStats, memory_bytes: usize) {
        self.tracked.set(s.tracked as f64);
        self.pending.set(s.pending as f64);
        self.memory.set(memory_bytes as f64);
        self.retransmissions.absolute(s.retransmissions);
        self.unmatched.absolute(s.unmatched);
        self.garbage.absolute(s.garbage);
        self.admitted.absolute(s.admitted);
        self.evicted.absolute(s.evicted);
        self.forgotten.absolute(s.pending_forgotten);
        self.remote.absolute(s.remote_deltas);
    }
}

/// Starts the detector's background work on `tokio`: the metrics refreshed once a second
/// and, with `detection.redis`, the shared-counter task. Both stop when `stop` is dropped
/// or sent.
pub fn spawn(
    tokio: &tokio::runtime::Handle,
    detector: Arc<Detector>,
    metrics: Arc<DetectionMetrics>,
    redis: Option<shared::SharedConfig>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    {
        let (d, m, mut stop) = (detector.clone(), metrics.clone(), stop.clone());
        tokio.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let memory = d.memory_bytes();
            loop {
                tokio::select! {
                    _ = tick.tick() => m.stats(&d.stats(), memory),
                    _ = stop.changed() => return,
                }
            }
        });
    }
    if let Some(cfg) = redis {
        tokio.spawn(shared::run(cfg, detector, metrics, stop));
    }
}

/// One suspect as `/suspects` shows it: the detector's [`Suspect`] with timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspectEntry {
    /// The caller, E.164.
    pub number: String,
    /// The most severe detection rule that held (`robocall-block`).
    pub rule: String,
    /// Its category (`robocall`).
    pub category: String,
    /// Its action (`tag`, `warn`, `block`).
    pub action: Action,
    /// Its score.
    pub score: u8,
    /// The caller's features now.
    pub features: Features,
    /// The caller's first tracked call (RFC 3339, UTC).
    pub first_seen: String,
    /// Its last call.
    pub last_seen: String,
    /// When a rule first held.
    pub first_flagged: String,
    /// When a rule last held.
    pub last_flagged: String,
}

/// The `/suspects` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspectsDocument {
    /// When it was made (RFC 3339, UTC).
    pub generated: String,
    /// The callers a detection rule held on within `detection.suspect_retention`, by
    /// number.
    pub suspects: Vec<SuspectEntry>,
}

fn timestamp(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    crate::decision_log::write_rfc3339_millis(&mut out, t);
    String::from_utf8_lossy(&out).into_owned()
}

impl SuspectsDocument {
    /// The document for `suspects` listed at `now` (their ages counted back from it).
    pub fn new(suspects: Vec<Suspect>, now: SystemTime) -> SuspectsDocument {
        let ago = |secs: u64| timestamp(now - Duration::from_secs(secs));
        SuspectsDocument {
            generated: timestamp(now),
            suspects: suspects
                .into_iter()
                .map(|s| SuspectEntry {
                    number: s.number.to_string(),
                    rule: s.rule.to_string(),
                    category: s.category.to_string(),
                    action: s.action,
                    score: s.score,
                    features: s.features,
                    first_seen: ago(s.first_seen_secs_ago),
                    last_seen: ago(s.last_seen_secs_ago),
                    first_flagged: ago(s.first_flagged_secs_ago),
                    last_flagged: ago(s.last_flagged_secs_ago),
                })
                .collect(),
        }
    }

    /// The suspects as blocklist CSV (`blocklists/FORMAT.md`): the header, then one row per
    /// suspect with its action, category and score and `source` = `behaviour`, ready for an
    /// operator to review and `fraudwall compile`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("number,action,category,score,source\n");
        for s in &self.suspects {
            // Numbers are `+` and digits; rule names and categories come from the
            // configuration: keep the row a row whatever they hold.
            let clean = |t: &str| -> String {
                t.chars()
                    .filter(|c| !matches!(c, ',' | '"' | '\r' | '\n' | '#'))
                    .collect()
            };
            out.push_str(&format!(
                "{},{},{},{},behaviour\n",
                clean(&s.number),
                s.action.as_str(),
                clean(&s.category),
                s.score
            ));
        }
        out
    }
}
