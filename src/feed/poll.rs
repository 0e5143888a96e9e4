//! The node's update state machine: when to poll, what to fetch, what to refuse.
//!
//! [`Poller`] does no I/O and reads no clock, in the style of quinn's connection state: the
//! driver (see [`super::node`]) passes in the monotonic time (`Instant`), the wall-clock time
//! as Unix seconds (for manifest expiry), and a random number (for jitter), and does what the
//! poller says. Every rule is therefore tested deterministically below.
//!
//! One cycle:
//!
//! 1. [`Poller::poll_due`] says whether a manifest request is due, and with which
//!    `If-None-Match` value.
//! 2. The driver fetches. `304 Not Modified` goes to [`Poller::on_not_modified`]; a verified
//!    manifest goes to [`Poller::on_manifest`], which answers with a [`Decision`]: up to
//!    date, refused (rollback, pin mismatch, version reuse) or a [`FetchPlan`] naming the
//!    files to download (only those the active state does not already hold).
//! 3. After the driver has downloaded, checked, cached, mapped and swapped, it calls
//!    [`Poller::on_applied`]; any fault along the way goes to [`Poller::on_error`], which
//!    backs off exponentially (one interval after the first failure, then doubling up to
//!    [`PollConfig::max_backoff`]). The ETag is remembered only once a manifest is applied (or
//!    found current), so a failed download is retried in full on the next poll rather than
//!    answered `304`.
//!
//! Jitter only ever shortens the interval (a delay in `[interval·(1−jitter), interval]`), so
//! a node never polls later than its configured interval: that is what bounds "a new number
//! is enforced within the poll interval plus the download".

use super::manifest::{FileRef, Manifest};
use std::time::{Duration, Instant};

/// How a node polls its feed.
#[derive(Debug, Clone, PartialEq)]
pub struct PollConfig {
    /// Time between polls when all is well.
    pub interval: Duration,
    /// Fraction of the interval removed at random to spread nodes (0.0 to 1.0).
    pub jitter: f64,
    /// Ceiling of the exponential backoff after errors.
    pub max_backoff: Duration,
    /// Accept only this manifest version (a deliberate rollback or freeze), if set.
    pub pinned: Option<u64>,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            interval: Duration::from_secs(30),
            jitter: 0.1,
            max_backoff: Duration::from_secs(300),
            pinned: None,
        }
    }
}

/// A manifest request the driver should send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRequest {
    /// Value for `If-None-Match`, when the node holds the feed's current manifest.
    pub if_none_match: Option<String>,
}

/// What to download to move to a new manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPlan {
    /// Files to download, in manifest order (base first, if it changed).
    pub fetch: Vec<FileRef>,
    /// Whether the base changed (every layer is rebuilt) or only deltas were added.
    pub new_base: bool,
}

/// Why a verified manifest is not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Older than the active version, and no pin asks for it.
    #[error("manifest version {offered} is older than the active version {active}: refusing a rollback (pin the version in config to roll back on purpose)")]
    Rollback {
        /// Offered version.
        offered: u64,
        /// Active version.
        active: u64,
    },
    /// Same version as the active one, different files.
    #[error("manifest version {0} is already active with different files: the publisher reused a version number")]
    VersionReuse(u64),
    /// Config pins another version.
    #[error("manifest version {offered} is not the pinned version {pinned}")]
    NotPinned {
        /// Offered version.
        offered: u64,
        /// Pinned version.
        pinned: u64,
    },
}

impl Refusal {
    /// Short reason for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Rollback { .. } => "rollback",
            Refusal::VersionReuse(_) => "version_reuse",
            Refusal::NotPinned { .. } => "not_pinned",
        }
    }
}

/// The poller's answer to a verified manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do: the active state is this manifest.
    UpToDate {
        /// The manifest's expiry has passed: the feed looks frozen (warn, keep serving).
        expired: bool,
    },
    /// Download these files, then apply.
    Fetch {
        /// What to download.
        plan: FetchPlan,
        /// The manifest's expiry has passed (apply, but warn).
        expired: bool,
    },
    /// Do not apply (the poller has already scheduled the next poll).
    Refuse(Refusal),
}

/// The update state machine of one node and one feed. See the module docs.
#[derive(Debug, Clone)]
pub struct Poller {
    config: PollConfig,
    active: Option<Manifest>,
    etag: Option<String>,
    pending_etag: Option<String>,
    next_poll: Instant,
    in_flight: bool,
    failures: u32,
}

impl Poller {
    /// A poller that polls at once (`now`), holding nothing yet.
    pub fn new(config: PollConfig, now: Instant) -> Self {
        Poller {
            config,
            active: None,
            etag: None,
            pending_etag: None,
            next_poll: now,
            in_flight: false,
            failures: 0,
        }
    }

    /// Records the state restored from the cache at start (no ETag: the first poll asks
    /// for the full manifest).
    pub fn restore(&mut self, manifest: Manifest) {
        self.active = Some(manifest);
    }

    /// The manifest in use, if any.
    pub fn active(&self) -> Option<&Manifest> {
        self.active.as_ref()
    }

    /// Consecutive failed polls (0 when the last one succeeded).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When the next poll is due.
    pub fn next_poll(&self) -> Instant {
        self.next_poll
    }

    /// Asks for a poll right away (`POST /reload`, `SIGHUP`).
    pub fn poll_now(&mut self, now: Instant) {
        if !self.in_flight {
            self.next_poll = now;
        }
    }

    /// Returns the request to send if a poll is due at `now` and none is in flight.
    pub fn poll_due(&mut self, now: Instant) -> Option<PollRequest> {
        if self.in_flight || now < self.next_poll {
            return None;
        }
        self.in_flight = true;
        Some(PollRequest {
            if_none_match: self.etag.clone(),
        })
    }

    /// The feed answered `304 Not Modified`.
    pub fn on_not_modified(&mut self, now: Instant, random: u64) -> Decision {
        self.succeeded(now, random);
        Decision::UpToDate { expired: false }
    }

    /// A manifest arrived and its signature verified. `etag` is the response's ETag.
    pub fn on_manifest(
        &mut self,
        now: Instant,
        now_unix: u64,
        random: u64,
        manifest: &Manifest,
        etag: Option<String>,
    ) -> Decision {
        let expired = manifest.is_expired(now_unix);
        if let Some(pinned) = self.config.pinned {
            if manifest.version != pinned {
                self.succeeded(now, random);
                return Decision::Refuse(Refusal::NotPinned {
                    offered: manifest.version,
                    pinned,
                });
            }
        }
        let Some(active) = &self.active else {
            self.pending_etag = etag;
            return Decision::Fetch {
                plan: FetchPlan {
                    fetch: manifest.files().cloned().collect(),
                    new_base: true,
                },
                expired,
            };
        };
        if manifest.version == active.version {
            if manifest.base == active.base && manifest.deltas == active.deltas {
                // Keep the newer expiry: a republished, unchanged list refreshes it.
                self.active = Some(manifest.clone());
                self.etag = etag;
                self.succeeded(now, random);
                return Decision::UpToDate { expired };
            }
            self.succeeded(now, random);
            return Decision::Refuse(Refusal::VersionReuse(manifest.version));
        }
        if manifest.version < active.version && self.config.pinned.is_none() {
            let active = active.version;
            self.succeeded(now, random);
            return Decision::Refuse(Refusal::Rollback {
                offered: manifest.version,
                active,
            });
        }
        let plan = if manifest.base == active.base {
            // Same base: download only deltas the node does not hold (by name and hash).
            let fetch = manifest
                .deltas
                .iter()
                .filter(|d| !active.deltas.contains(d))
                .cloned()
                .collect();
            FetchPlan {
                fetch,
                new_base: false,
            }
        } else {
            FetchPlan {
                fetch: manifest.files().cloned().collect(),
                new_base: true,
            }
        };
        self.pending_etag = etag;
        Decision::Fetch { plan, expired }
    }

    /// The manifest from the last [`Decision::Fetch`] is now active.
    pub fn on_applied(&mut self, now: Instant, random: u64, manifest: Manifest) {
        self.active = Some(manifest);
        self.etag = self.pending_etag.take();
        self.succeeded(now, random);
    }

    /// The poll or the update failed: back off. Returns the delay until the next try.
    pub fn on_error(&mut self, now: Instant, random: u64) -> Duration {
        self.in_flight = false;
        self.pending_etag = None;
        self.failures = self.failures.saturating_add(1);
        let factor = 1u32 << (self.failures - 1).min(16);
        let backoff = self
            .config
            .interval
            .saturating_mul(factor)
            .min(self.config.max_backoff)
            .max(self.config.interval);
        let delay = self.jittered(backoff, random);
        self.next_poll = now + delay;
        delay
    }

    fn succeeded(&mut self, now: Instant, random: u64) {
        self.in_flight = false;
        self.failures = 0;
        self.next_poll = now + self.jittered(self.config.interval, random);
    }

    /// `base` minus up to `jitter` of it, chosen by `random`.
    fn jittered(&self, base: Duration, random: u64) -> Duration {
        let jitter = self.config.jitter.clamp(0.0, 1.0);
        let unit = (random % 1_000_001) as f64 / 1_000_000.0;
        base.mul_f64(1.0 - jitter * unit)
    }
}

#[cfg(test)]
mod tests {
    use super::super::manifest::tests::{file, manifest};
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn config() -> PollConfig {
        PollConfig {
            interval: 2 * SEC,
            jitter: 0.25,
            max_backoff: 60 * SEC,
            pinned: None,
        }
    }

    fn applied(p: &mut Poller, now: Instant, m: &Manifest, etag: &str) {
        assert!(p.poll_due(now).is_some());
        let d = p.on_manifest(now, 1_500, 0, m, Some(etag.into()));
        assert!(matches!(d, Decision::Fetch { .. }), "{d:?}");
        p.on_applied(now, 0, m.clone());
    }

    #[test]
    fn first_poll_is_immediate_and_fetches_everything() {
        let t0 = Instant::now();
        let mut p = Poller::new(config(), t0);
        let req = p.poll_due(t0).expect("due at start");
        assert_eq!(req.if_none_match, None);
        assert_eq!(p.poll_due(t0), None, "one request in flight at a time");
        let m = manifest(3, &[2, 3]);
        let d = p.on_manifest(t0, 1_500, 0, &m, Some("\"e1\"".into()));
        let Decision::Fetch { plan, expired } = d else {
            panic!("{d:?}")
        };
        assert!(!expired && plan.new_base);
        let names: Vec<_> = plan.fetch.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["base-1.fwb", "delta-2.fwb", "delta-3.fwb"]);
    }

    #[test]
    fn etag_is_sent_only_after_apply() {
        let t0 = Instant::now();
        let mut p = Poller::new(config(), t0);
        let m = manifest(3, &[]);
        p.poll_due(t0);
        p.on_manifest(t0, 1_500, 0, &m, Some("\"e1\"".into()));
        p.on_error(t0, 0); // download failed
        let t1 = p.next_poll();
        assert_eq!(p.poll_due(t1).expect("due").if_none_match, None);
        p.on_manifest(t1, 1_500, 0, &m, Some("\"e1\"".into()));
        p.on_applied(t1, 0, m);
        let t2 = p.next_poll();
        assert_eq!(
            p.poll_due(t2).expect("due").if_none_match.as_deref(),
            Some("\"e1\"")
        );
        assert_eq!(
            p.on_not_modified(t2, 0),
            Decision::UpToDate { expired: false }
        );
        assert_eq!(p.next_poll(), t2 + 2 * SEC);
    }

    #[test]
    fn jitter_only_shortens_the_interval() {
        let t0 = Instant::now();
        let mut p = Poller::new(config(), t0);
        p.poll_due(t0);
        p.on_not_modified(t0, 0);
        assert_eq!(p.next_poll() - t0, 2 * SEC);
        p.poll_due(p.next_poll());
        let t1 = p.next_poll();
        p.on_not_modified(t1, 1_000_000);
        assert_eq!(p.next_poll() - t1, Duration::from_millis(1_500));
        p.poll_due(p.next_poll());
        let t2 = p.next_poll();
        p.on_not_modified(t2, 500_000);
        assert_eq!(p.next_poll() - t2, Duration::from_millis(1_750));
    }

    #[test]
    fn errors_back_off_exponentially_up_to_the_ceiling_then_reset() {
        let t0 = Instant::now();
        let mut p = Poller::new(config(), t0);
        let mut delays = vec![];
        for _ in 0..8 {
            let now = p.next_poll();
            assert!(p.poll_due(now).is_some());
            delays.push(p.on_error(now, 0).as_secs());
        }
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(p.failures(), 8);
        let now = p.next_poll();
        p.poll_due(now);
        p.on_not_modified(now, 0);
        assert_eq!(p.failures(), 0);
        assert_eq!(p.next_poll() - now, 2 * SEC);
    }

    #[test]
    fn not_due_before_next_poll_but_poll_now_forces_it() {
        let t0 = Instant::now();
        let mut p = Poller::new(config(), t0);
        p.poll_due(t0);
        p.on_not_modified(t0, 0);
        assert_eq!(p.poll_due(t0 + SEC), None);
        p.poll_now(t0 + SEC);
        assert!(p.poll_due(t0 + SEC).is_some());
    }

    #[test]
    fn only_new_deltas_are_fetched_on_the_same_base() {
        let t0 = Instant::now();
        let mut p = Poller::new(config(), t0);
        applied(&mut p, t0, &manifest(2, &[2]), "a");
        let t1 = p.next_poll();
        p.poll_due(t1);
        let d = p.on_manifest(t1, 1_500, 0, &manifest(4, &[2, 3, 4]), None);
        let Decision::Fetch { plan, .. } = d else {
            panic!("{d:?}")
        };
        assert!(!plan.new_base);
        let names: Vec<_> = plan.fetch.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["delta-3.fwb", "delta-4.fwb"]);
    }

    #[test]
    fn a_new_base_fetches_everything() {
        let t0 = Instant::now();
        let mut p = Poller::new(config(), t0);
        applied(&mut p, t0, &manifest(2, &[2]), "a");
        let mut m = manifest(5, &[]);
        m.base = file("base-5.fwb", 5, b"new base");
        p.poll_due(p.next_poll());
        let d = p.on_manifest(p.next_poll(), 1_500, 0, &m, None);
        let Decision::Fetch { plan, .. } = d else {
            panic!("{d:?}")
        };
        assert!(plan.new_base);
        assert_eq!(plan.fetch, vec![m.base.clone()]);
    }

    #[test]
    fn rollback_is_refused_and_the_schedule_goes_on() {
        let t0 = Instant::now();
        let mut p = Poller::new(config(), t0);
        applied(&mut p, t0, &manifest(5, &[2, 3]), "a");
        let t1 = p.next_poll();
        p.poll_due(t1);
        let d = p.on_manifest(t1, 1_500, 0, &manifest(3, &[2]), None);
        assert_eq!(
            d,
            Decision::Refuse(Refusal::Rollback {
                offered: 3,
                active: 5
            })
        );
        assert_eq!(p.active().map(|m| m.version), Some(5));
        assert_eq!(p.next_poll(), t1 + 2 * SEC);
    }

    #[test]
    fn same_version_with_other_files_is_refused() {
        let t0 = Instant::now();
        let mut p = Poller::new(config(), t0);
        applied(&mut p, t0, &manifest(5, &[2]), "a");
        let mut m = manifest(5, &[2]);
        m.deltas[0].blake3 = super::super::manifest::Hash::of(b"other");
        p.poll_due(p.next_poll());
        let d = p.on_manifest(p.next_poll(), 1_500, 0, &m, None);
        assert_eq!(d, Decision::Refuse(Refusal::VersionReuse(5)));
    }

    #[test]
    fn expired_manifest_is_flagged_not_dropped() {
        let t0 = Instant::now();
        let mut p = Poller::new(config(), t0);
        let m = manifest(5, &[]);
        p.poll_due(t0);
        let d = p.on_manifest(t0, 2_000, 0, &m, None);
        assert!(matches!(d, Decision::Fetch { expired: true, .. }), "{d:?}");
        p.on_applied(t0, 0, m.clone());
        p.poll_due(p.next_poll());
        let d = p.on_manifest(p.next_poll(), 5_000, 0, &m, None);
        assert_eq!(d, Decision::UpToDate { expired: true });
    }

    #[test]
    fn pin_allows_a_deliberate_rollback_and_refuses_the_rest() {
        let t0 = Instant::now();
        let mut cfg = config();
        cfg.pinned = Some(3);
        let mut p = Poller::new(cfg, t0);
        p.restore(manifest(5, &[2, 3]));
        p.poll_due(t0);
        let d = p.on_manifest(t0, 1_500, 0, &manifest(5, &[2, 3]), None);
        assert_eq!(
            d,
            Decision::Refuse(Refusal::NotPinned {
                offered: 5,
                pinned: 3
            })
        );
        let t1 = p.next_poll();
        p.poll_due(t1);
        let d = p.on_manifest(t1, 1_500, 0, &manifest(3, &[2, 3]), None);
        assert!(matches!(d, Decision::Fetch { .. }), "{d:?}");
    }
}
