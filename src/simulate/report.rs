//! What the replay reports: per-class figures, catch figures and the targets.

use crate::detection::DetectorStats;
use serde::Serialize;

/// Calls and flags of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ClassReport {
    /// Calls placed.
    pub calls: u64,
    /// Calls the detector flagged (tag, warn or block).
    pub flagged: u64,
    /// `flagged / calls`.
    pub flagged_ratio: f64,
    /// Of the flagged, blocked.
    pub blocked: u64,
    /// Distinct calling numbers.
    pub numbers: u64,
    /// Numbers flagged at least once.
    pub numbers_flagged: u64,
}

/// Catch figures of a fraud class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CatchReport {
    /// Calls after a number's 30th call.
    pub calls_after_30: u64,
    /// Of those, flagged.
    pub flagged_after_30: u64,
    /// `flagged_after_30 / calls_after_30`.
    pub recall_after_30: f64,
    /// Median over the class's numbers of the call a number was first flagged on (a
    /// number never flagged counts as never; `null` when more than half never were).
    pub median_calls_to_catch: Option<u64>,
    /// Numbers never flagged.
    pub numbers_never_flagged: u64,
}

/// What `fraudwall simulate --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Calls in the day.
    pub calls: u64,
    /// Events replayed (INVITE, 180, 200, BYE, CANCEL, errors).
    pub events: u64,
    /// Legitimate callers: subscribers, busy lines and exempt enterprises.
    pub legitimate: ClassReport,
    /// Ordinary subscribers.
    pub legitimate_subscribers: ClassReport,
    /// Busy lines in no list.
    pub legitimate_busy_lines: ClassReport,
    /// Enterprises allowed by the list (exempt: never flagged; `findings_ignored` says how
    /// often the detector alone would have).
    pub legitimate_enterprises: ClassReport,
    /// Findings on exempt enterprise calls that the exemption overrode.
    pub enterprise_findings_ignored: u64,
    /// Robocall campaigns.
    pub robocall: ClassReport,
    /// Wangiri campaigns.
    pub wangiri: ClassReport,
    /// Number-rotating campaigns.
    pub rotating: ClassReport,
    /// All campaign classes together: recall after a number's 30th call and calls to catch.
    pub campaigns: CatchReport,
    /// Per fraud class.
    pub robocall_catch: CatchReport,
    /// Per fraud class.
    pub wangiri_catch: CatchReport,
    /// Per fraud class.
    pub rotating_catch: CatchReport,
    /// Flagged legitimate calls / legitimate calls.
    pub legitimate_false_positive_ratio: f64,
    /// Legitimate numbers flagged at least once (up to 20 shown in `legitimate_flagged_examples`).
    pub legitimate_flagged_examples: Vec<String>,
    /// Bytes the detector allocated.
    pub detector_bytes: usize,
    /// The detector's counters at the end.
    pub detector_stats: DetectorStats,
    /// Whether each target of issue 13 is met.
    pub targets: Targets,
    /// Seconds spent generating and replaying.
    pub generate_secs: f64,
    /// Seconds spent replaying.
    pub replay_secs: f64,
}

/// The targets on the simulated day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Targets {
    /// At least 95 % of campaign calls after a number's 30th call flagged.
    pub recall_after_30: bool,
    /// At most 0.01 % of legitimate callers' calls flagged.
    pub legitimate_false_positives: bool,
    /// Median campaign number caught within its first 20 calls.
    pub median_calls_to_catch: bool,
    /// Detector memory at most 256 MiB.
    pub memory: bool,
}

impl Targets {
    /// Every target met.
    pub fn all(&self) -> bool {
        self.recall_after_30
            && self.legitimate_false_positives
            && self.median_calls_to_catch
            && self.memory
    }
}
