//! The overload policy (`[overload]`): when the node falls behind, new calls are shed first
//! so the calls already set up keep working.
//!
//! # The signal
//!
//! Each message comes with how long it waited in this node before the core saw it
//! ([`Inbound::queued`](crate::proxy::Inbound::queued): for UDP, the kernel's receive
//! timestamp to the moment of handling, so the socket queue and the worker's lag both
//! count). A node that keeps up handles a datagram within a millisecond or two; one that is
//! offered more than it can do lets the queue, and the delay, grow without bound until SIP
//! timers (T1 = 500 ms) make every caller retransmit and the load double.
//!
//! # The states
//!
//! - **normal**: everything is handled.
//! - **overloaded**: entered when messages have waited longer than `max_queue_delay` for
//!   `sustain` in a row (a stall of the whole machine, where the backlog drains as soon as
//!   the workers run again, does not count); left as soon as a message waited no longer than
//!   `resume_queue_delay` (the hysteresis band between the two bounds keeps the state from
//!   flapping), or when no message waited longer than `max_queue_delay` for a second (the
//!   traffic stopped).
//!
//! While overloaded, each **new** INVITE (no To-tag) is shed: answered `503 Service
//! Unavailable` with `Retry-After: <retry_after>` (`action = "reject"`, so the caller's
//! switch tries another route at once and retransmits nothing), or dropped unanswered
//! (`action = "drop"`, the cheapest for this node, but the caller retransmits). With
//! `reject`, an INVITE that waited longer than `drop_queue_delay` is dropped instead: its
//! caller has retransmitted it already, and answering costs what the node no longer has.
//! Responses, ACK, CANCEL, BYE and every other in-dialog request are never shed, nor an
//! INVITE with a To-tag (a re-INVITE). Shedding costs a parse and, with `reject`, one small
//! answer, a fraction of what a call costs, so the node keeps most of its capacity for the
//! calls it takes.
//!
//! The state is a few atomics shared by every worker, judged with the `now` the transport
//! hands in (no clock read here), so the rules are tested with stepped time.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// After this long without a message over `max_queue_delay`, the overload is over.
const QUIET: Duration = Duration::from_secs(1);

/// `[overload]`: when and how new calls are shed (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverloadConfig {
    /// Messages that waited longer than this (for `sustain` in a row) mean the node is
    /// behind. `0s` turns the policy off (and the receive timestamps with it).
    #[serde(with = "crate::config::value::duration")]
    pub max_queue_delay: Duration,
    /// How long the delay must stay over `max_queue_delay` before calls are shed.
    #[serde(with = "crate::config::value::duration")]
    pub sustain: Duration,
    /// A message that waited no longer than this ends the overload.
    #[serde(with = "crate::config::value::duration")]
    pub resume_queue_delay: Duration,
    /// What happens to a shed INVITE.
    pub action: ShedAction,
    /// With `action = "reject"`, an INVITE that waited longer than this is dropped instead
    /// of answered. `0s`: always answered.
    #[serde(with = "crate::config::value::duration")]
    pub drop_queue_delay: Duration,
    /// The `Retry-After` of the 503, in seconds (1 to 3600).
    pub retry_after: u32,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig {
            max_queue_delay: Duration::from_millis(50),
            sustain: Duration::from_millis(20),
            resume_queue_delay: Duration::from_millis(10),
            action: ShedAction::Reject,
            drop_queue_delay: Duration::from_millis(300),
            retry_after: 1,
        }
    }
}

/// A value of `[overload]` that cannot work: names the key and says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("overload.{key}: {reason}")]
pub struct OverloadConfigError {
    /// The key, e.g. `resume_queue_delay`.
    pub key: &'static str,
    /// What is wrong and how to fix it.
    pub reason: String,
}

impl OverloadConfig {
    /// Whether the policy runs (`max_queue_delay` is not `0s`).
    pub fn enabled(&self) -> bool {
        !self.max_queue_delay.is_zero()
    }

    /// Checks the bounds against each other.
    pub fn validate(&self) -> Result<(), OverloadConfigError> {
        let bad = |key, reason: String| Err(OverloadConfigError { key, reason });
        if !self.enabled() {
            return Ok(());
        }
        if self.resume_queue_delay >= self.max_queue_delay {
            return bad(
                "resume_queue_delay",
                format!(
                    "{:?} must be below max_queue_delay ({:?}), or the state would flap",
                    self.resume_queue_delay, self.max_queue_delay
                ),
            );
        }
        if !self.drop_queue_delay.is_zero() && self.drop_queue_delay <= self.max_queue_delay {
            return bad(
                "drop_queue_delay",
                format!(
                    "{:?} must be above max_queue_delay ({:?}), or \"0s\" to always answer",
                    self.drop_queue_delay, self.max_queue_delay
                ),
            );
        }
        if self.sustain > Duration::from_secs(10) {
            return bad(
                "sustain",
                format!("{:?} is too long (at most 10s)", self.sustain),
            );
        }
        if !(1..=3600).contains(&self.retry_after) {
            return bad(
                "retry_after",
                format!("{} is out of range 1 to 3600 seconds", self.retry_after),
            );
        }
        Ok(())
    }
}

/// `overload.action`: what happens to a shed INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShedAction {
    /// `503 Service Unavailable` with `Retry-After`.
    #[default]
    Reject,
    /// Dropped unanswered.
    Drop,
}

impl ShedAction {
    /// Every value, in label order.
    pub const ALL: [ShedAction; 2] = [ShedAction::Reject, ShedAction::Drop];

    /// The config and metric label: `reject`, `drop`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShedAction::Reject => "reject",
            ShedAction::Drop => "drop",
        }
    }
}

/// The overload state shared by every worker.
pub(crate) struct Overload {
    config: OverloadConfig,
    /// The first `now` seen: times below are nanoseconds after it, plus one (0 = unset).
    base: OnceLock<Instant>,
    overloaded: AtomicBool,
    /// Since when messages have waited longer than `max_queue_delay` (0: they have not).
    over_since: AtomicU64,
    /// The last message that waited longer than `max_queue_delay`.
    last_over: AtomicU64,
    /// Times the node entered overload.
    episodes: AtomicU64,
}

impl Overload {
    pub(crate) fn new(config: OverloadConfig) -> Overload {
        Overload {
            config,
            base: OnceLock::new(),
            overloaded: AtomicBool::new(false),
            over_since: AtomicU64::new(0),
            last_over: AtomicU64::new(0),
            episodes: AtomicU64::new(0),
        }
    }

    fn ticks(&self, now: Instant) -> u64 {
        let base = *self.base.get_or_init(|| now);
        u64::try_from(now.saturating_duration_since(base).as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// Takes one message's queue delay into the state (`None`: unknown, changes nothing).
    pub(crate) fn observe(&self, queued: Option<Duration>, now: Instant) {
        let Some(q) = queued else { return };
        if !self.config.enabled() {
            return;
        }
        if q > self.config.max_queue_delay {
            let t = self.ticks(now);
            self.last_over.store(t, Ordering::Relaxed);
            let since =
                match self
                    .over_since
                    .compare_exchange(0, t, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => t,
                    Err(earlier) => earlier,
                };
            if t.saturating_sub(since) >= duration_ns(self.config.sustain)
                && !self.overloaded.swap(true, Ordering::Relaxed)
            {
                self.episodes.fetch_add(1, Ordering::Relaxed);
            }
        } else if q <= self.config.resume_queue_delay {
            if self.over_since.load(Ordering::Relaxed) != 0 {
                self.over_since.store(0, Ordering::Relaxed);
            }
            if self.overloaded.load(Ordering::Relaxed) {
                self.overloaded.store(false, Ordering::Relaxed);
            }
        }
    }

    /// What to do with a new INVITE that waited `queued`: `None` to handle it.
    pub(crate) fn shed(&self, queued: Option<Duration>) -> Option<ShedAction> {
        if !self.overloaded.load(Ordering::Relaxed) {
            return None;
        }
        let c = &self.config;
        let too_late =
            !c.drop_queue_delay.is_zero() && queued.is_some_and(|q| q > c.drop_queue_delay);
        Some(if too_late { ShedAction::Drop } else { c.action })
    }

    /// Ends an overload no message has confirmed for a second (the traffic stopped).
    pub(crate) fn poll(&self, now: Instant) {
        if !self.overloaded.load(Ordering::Relaxed) {
            return;
        }
        let t = self.ticks(now);
        if t.saturating_sub(self.last_over.load(Ordering::Relaxed)) >= duration_ns(QUIET) {
            self.overloaded.store(false, Ordering::Relaxed);
            self.over_since.store(0, Ordering::Relaxed);
        }
    }

    /// Whether new INVITEs are being shed now, and how many times the node entered overload.
    pub(crate) fn status(&self) -> OverloadStatus {
        OverloadStatus {
            overloaded: self.overloaded.load(Ordering::Relaxed),
            episodes: self.episodes.load(Ordering::Relaxed),
        }
    }

    /// The `Retry-After` value of the 503.
    pub(crate) fn retry_after(&self) -> u32 {
        self.config.retry_after
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The overload state, for metrics and `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OverloadStatus {
    /// New INVITEs are being shed.
    pub overloaded: bool,
    /// Times the node entered overload since it started.
    pub episodes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn o() -> Overload {
        Overload::new(OverloadConfig::default())
    }

    #[test]
    fn a_sustained_delay_enters_and_a_short_one_leaves() {
        let o = o();
        let t0 = Instant::now();
        // Normal traffic.
        o.observe(Some(2 * MS), t0);
        assert_eq!(o.shed(Some(2 * MS)), None);
        // Over the bound, but not for `sustain` yet.
        o.observe(Some(60 * MS), t0 + MS);
        o.observe(Some(70 * MS), t0 + 10 * MS);
        assert!(!o.status().overloaded);
        // Still over 20 ms later: overloaded.
        o.observe(Some(80 * MS), t0 + 21 * MS);
        assert_eq!(
            o.status(),
            OverloadStatus {
                overloaded: true,
                episodes: 1
            }
        );
        assert_eq!(o.shed(Some(80 * MS)), Some(ShedAction::Reject));
        // Way too late: dropped even with reject.
        assert_eq!(o.shed(Some(400 * MS)), Some(ShedAction::Drop));
        // Inside the hysteresis band: still overloaded.
        o.observe(Some(30 * MS), t0 + 30 * MS);
        assert!(o.status().overloaded);
        // Under resume_queue_delay: normal again.
        o.observe(Some(5 * MS), t0 + 40 * MS);
        assert!(!o.status().overloaded);
        assert_eq!(o.shed(Some(5 * MS)), None);
        // A new streak needs `sustain` again, and counts a second episode.
        o.observe(Some(60 * MS), t0 + 50 * MS);
        assert!(!o.status().overloaded);
        o.observe(Some(60 * MS), t0 + 75 * MS);
        assert_eq!(o.status().episodes, 2);
    }

    #[test]
    fn a_stall_whose_backlog_drains_at_once_is_not_overload() {
        let o = o();
        let t0 = Instant::now();
        // The machine stalled 200 ms; the backlog is then handled within a few ms, each
        // message having waited less than the one before.
        for i in 0..10u32 {
            o.observe(Some(MS * (200 - 20 * i)), t0 + i * MS / 2);
        }
        o.observe(Some(MS), t0 + 6 * MS);
        assert!(!o.status().overloaded);
        assert_eq!(o.status().episodes, 0);
    }

    #[test]
    fn unknown_delays_change_nothing_and_quiet_ends_it() {
        let o = o();
        let t0 = Instant::now();
        o.observe(Some(60 * MS), t0);
        o.observe(Some(60 * MS), t0 + 30 * MS);
        assert!(o.status().overloaded);
        o.observe(None, t0 + 40 * MS);
        assert!(o.status().overloaded);
        o.poll(t0 + 500 * MS);
        assert!(o.status().overloaded);
        o.poll(t0 + 1100 * MS);
        assert!(!o.status().overloaded);
    }

    #[test]
    fn off_and_drop() {
        let off = Overload::new(OverloadConfig {
            max_queue_delay: Duration::ZERO,
            ..OverloadConfig::default()
        });
        let t0 = Instant::now();
        off.observe(Some(Duration::from_secs(5)), t0);
        off.observe(Some(Duration::from_secs(5)), t0 + Duration::from_secs(1));
        assert_eq!(off.shed(Some(Duration::from_secs(5))), None);
        let drop = Overload::new(OverloadConfig {
            action: ShedAction::Drop,
            ..OverloadConfig::default()
        });
        drop.observe(Some(60 * MS), t0);
        drop.observe(Some(60 * MS), t0 + 20 * MS);
        assert_eq!(drop.shed(Some(60 * MS)), Some(ShedAction::Drop));
    }

    #[test]
    fn validation_names_the_key() {
        let c = |f: fn(&mut OverloadConfig)| {
            let mut c = OverloadConfig::default();
            f(&mut c);
            c.validate().map_err(|e| e.key)
        };
        assert_eq!(c(|_| {}), Ok(()));
        assert_eq!(
            c(|c| c.resume_queue_delay = c.max_queue_delay),
            Err("resume_queue_delay")
        );
        assert_eq!(
            c(|c| c.drop_queue_delay = Duration::from_millis(10)),
            Err("drop_queue_delay")
        );
        assert_eq!(c(|c| c.retry_after = 0), Err("retry_after"));
        assert_eq!(c(|c| c.sustain = Duration::from_secs(60)), Err("sustain"));
        assert_eq!(
            c(|c| {
                c.max_queue_delay = Duration::ZERO;
                c.retry_after = 0;
            }),
            Ok(())
        );
    }
}
