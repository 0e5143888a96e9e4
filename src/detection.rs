//! Behavioural detection: catch the fraud numbers no list holds yet, from the calls
//! themselves.
//!
//! A sans-I/O core in the quinn manner: the front end tells the [`Detector`] what happened to
//! each call ([`CallEvent`]: INVITE, ringing, answer, CANCEL, error, BYE) with the time as an
//! [`Instant`] it read itself; the detector answers with a [`Finding`] when a caller's recent
//! behaviour matches a rule. It reads no clock and does no I/O, so every feature and rule is
//! tested with stepped time, and the simulator (`fraudwall simulate`) replays a whole carrier
//! day through it in minutes.
//!
//! ```
//! use fraudwall::detection::{CallEvent, CallEventKind, CallKey, DetectionConfig, Detector};
//! use std::time::{Duration, Instant};
//!
//! let d = Detector::new(&DetectionConfig { enabled: true, ..DetectionConfig::default() })?;
//! let caller = "+8613800000001".parse()?;
//! let t0 = Instant::now();
//! let mut flagged_at = None;
//! // A robocaller: a new callee every 600 ms, each call answered and hung up after 3 s.
//! for i in 0..100u64 {
//!     let call = CallKey::new(i + 1);
//!     let at = t0 + Duration::from_millis(600 * i);
//!     let callee = format!("+86139{:08}", i * 7919).parse()?;
//!     let f = d.observe(CallEvent { call, kind: CallEventKind::Invite { caller, callee } }, at);
//!     if f.is_some() && flagged_at.is_none() {
//!         flagged_at = Some(i + 1);
//!     }
//!     d.observe(CallEvent { call, kind: CallEventKind::Answered }, at + Duration::from_secs(1));
//!     d.observe(CallEvent { call, kind: CallEventKind::Bye }, at + Duration::from_secs(4));
//! }
//! assert!(flagged_at.is_some_and(|n| n < 60));
//! // Tagged early, blocked once the hundredth call is in (the escalation ladder).
//! let s = d.suspects(t0 + Duration::from_secs(61));
//! assert_eq!((s[0].category.as_ref(), s[0].rule.as_ref()), ("robocall", "robocall-block"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What it measures, in what memory
//!
//! Every INVITE is counted in a blocked count-min sketch with lazy exponential decay
//! (`sketch_mb`, one cache miss per call). A caller the sketch counts `track_after` recent
//! calls from becomes a *tracked caller* (a heavy hitter) with full [`Features`]: calls in the
//! last minute, 10 minutes and hour (a ring of 60 minute buckets), distinct callees (a 128-bit
//! linear-counting map per `distinct_window` generation, two generations), sequential
//! dialling (callees one `sequential_step` apart), answer ratio, short-call ratio and
//! one-ring-cancel ratio (decayed counters, half-life `half_life`). Tracked callers live in a
//! set-associative table of `max_tracked_callers` slots; a newcomer takes an empty slot or
//! displaces the weakest of its set only if it is at least as strong (space-saving), so
//! one-off callers never push a campaign out. A pending-call table of `pending_calls`
//! entries puts ringing, answer, CANCEL, error and BYE down to the tracked caller who made
//! the call (and recognises retransmitted INVITEs); when a bucket is full the oldest call is
//! forgotten. An untracked caller's INVITE costs one cache line, its sketch block, and no lock
//! (the sketch's counters are relaxed atomics written with plain stores); its outcomes are
//! not needed. A caller whose sketch estimate is below what any rule's volume needs is
//! judged from that same block, without looking it up ([`Detector::judge`]).
//!
//! # One visit per INVITE, and what a finding rests on
//!
//! A front end that counts calls (the proxy core, the redirect server) makes one call per
//! INVITE, [`Detector::visit`]: it counts the INVITE and returns the caller's finding
//! **before this call is counted**, exactly what [`Detector::judge`] would have said just
//! before it. The policy's `behaviour` stage reads that finding from the call context
//! ([`crate::policy::Visited`]) instead of asking again, so the verdict of a caller's n-th
//! call rests on its first n-1 calls, as when the stage called `judge` and the core then
//! called `observe`; `fraudwall simulate` counts a call the same way (a call is blocked on
//! the finding of the calls before it). A front end that does not count (the HTTP API,
//! `fraudwall explain`), or the core when the call's identity values name different numbers
//! (the counted caller is then known only after screening), still calls `judge` and, for the
//! core, `observe` after the verdict. [`Detector::observe`]'s own answer for an INVITE is the
//! finding with the call counted.
//!
//! Memory is fixed by the configuration, whatever the number of callers
//! ([`Detector::memory_bytes`], checked against `memory_mb` by
//! [`DetectionConfig::validate`]):
//!
//! | what | bytes |
//! |---|---|
//! | a tracked caller | [`TRACKED_CALLER_BYTES`] = 168 (160-byte slot + 8-byte key), +36 with `redis` |
//! | a pending call | [`PENDING_CALL_BYTES`] = 32, plus a quarter byte (one summary byte per bucket of four, read without the lock so that events for calls that are not pending touch nothing else) |
//! | the sketch | `sketch_mb` MiB (64-byte blocks of 31 counters) |
//!
//! The default (524,288 tracked callers, 262,144 pending calls, 16 MiB sketch) is 112 MiB.
//!
//! Garbage, missing and out-of-order events (a 200 without an INVITE, a CANCEL for an unknown
//! call, a BYE before the answer, a time before an earlier one) are ignored and counted in
//! [`DetectorStats`]; they never panic and never allocate. Counters saturate, never wrap.
//!
//! # The default rules, and where their figures come from
//!
//! | rule | action | conditions |
//! |---|---|---|
//! | `robocall` | tag | ≥ 17 calls in 10 min, ≥ 8 ended, distinct ratio ≥ 0.6, short-call ratio ≥ 0.7 |
//! | `robocall-block` | block | ≥ 100 calls in 60 min, ≥ 30 ended, distinct ratio ≥ 0.6, short-call ratio ≥ 0.8 |
//! | `wangiri` | tag | ≥ 10 calls in 10 min, ≥ 6 ended, distinct ratio ≥ 0.6, one-ring ratio ≥ 0.6 |
//! | `wangiri-block` | block | ≥ 50 calls in 60 min, ≥ 20 ended, distinct ratio ≥ 0.6, one-ring ratio ≥ 0.7 |
//! | `sequential-dialling` | tag | ≥ 10 calls in 10 min, distinct ratio ≥ 0.6, sequential ratio ≥ 0.6 |
//!
//! - Hubei Mobile flags a number making more than 100 calls in an hour, most of them 10 s or
//!   shorter: `robocall-block` is that rule over TransNexus ClearIP's 60-minute window
//!   (`short_call = 10s`, "most" read as 80 %). `robocall` tags the same pattern at the same
//!   pace measured over 10 minutes (100/h is 16.7 per 10 min), so a campaign is tagged within
//!   its first twenty-odd calls instead of after a hundred, and blocked once the hour's
//!   evidence is in: the escalation ladder.
//! - Robocalls dial harvested or sequential lists: a distinct-callee ratio of 0.6 keeps a
//!   caller redialling one busy number (5 calls a minute to one callee) out of every rule.
//! - Wangiri rings once and hangs up so the victim calls back: `one_ring = 6s` is one to two
//!   ring cycles (ITU-T E.180 ring cadences repeat every 3 to 6 s); ten such cancels to
//!   different numbers in 10 minutes, 60 % of the attempts, is no person's behaviour.
//! - Sequential dialling (OpenSIPS `fraud_detection` counts sequential calls): ten calls
//!   stepping through a range in 10 minutes.
//!
//! Callers the global list allows (verified businesses, call centres) and protected numbers
//! are exempt: the policy decides that, before asking the detector.
//!
//! # Metrics
//!
//! The detector counts into [`DetectorStats`] (read with [`Detector::stats`]); the runtime
//! exports them as `fraudwall_detection_events_total{kind}`,
//! `fraudwall_detection_retransmissions_total`, `fraudwall_detection_unmatched_total`,
//! `fraudwall_detection_garbage_total`, `fraudwall_detection_admitted_total`,
//! `fraudwall_detection_evicted_total`, `fraudwall_detection_pending_forgotten_total`,
//! `fraudwall_detection_tracked`, `fraudwall_detection_pending` and
//! `fraudwall_detection_memory_bytes`.

mod config;
mod event;
mod pending;
mod rules;
mod shared;
mod sketch;
mod table;

pub use config::{DetectionConfig, DetectionConfigError, DetectionRule};
pub use event::{CallEvent, CallEventKind, CallKey};
pub use rules::{Features, Finding};
pub use shared::CounterDelta;
pub(crate) use sketch::{huge_vec, mix64};

use crate::blocklist::Action;
use crate::numbers::E164;
use pending::{Inserted, Pending, PendingTags};
use rules::Compiled;
use serde::Serialize;
use sketch::CountMin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;
use table::{DeltaAcc, Increment, Params, Place, Tracked};

/// Bytes one tracked caller costs (its slot and its key).
pub const TRACKED_CALLER_BYTES: usize = std::mem::size_of::<table::Slot>() + 8;
/// Bytes one pending call costs.
pub const PENDING_CALL_BYTES: usize = std::mem::size_of::<pending::Entry>();

/// Shards of the caller and pending tables (each behind its own lock). Few enough that each
/// shard's tables span whole 2 MiB huge pages at the default sizes, enough that the UDP
/// workers rarely meet on one (a lock is held for about a hundred nanoseconds).
const SHARDS: usize = 8;

fn shard_of(h: u64) -> usize {
    ((h >> 40) as usize) % SHARDS
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard leaves consistent-enough counters: carry on.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the detector has counted since it started (summed over shards).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DetectorStats {
    /// INVITEs counted (retransmissions excluded).
    pub invites: u64,
    /// INVITEs for a call already pending (not counted again).
    pub retransmissions: u64,
    /// Callers admitted to the tracked table.
    pub admitted: u64,
    /// Tracked callers displaced by a stronger one.
    pub evicted: u64,
    /// Pending calls forgotten to make room (their outcome will not be counted).
    pub pending_forgotten: u64,
    /// Events for a call that is not pending: most are the outcomes of untracked callers'
    /// calls (only tracked callers' calls are pending), the rest a 200 without an INVITE, a
    /// CANCEL for an unknown call, an outcome after the call was forgotten.
    pub unmatched: u64,
    /// Events that make no sense for the call's state (a BYE before the answer, a second
    /// answer, a status that is no final error).
    pub garbage: u64,
    /// Remote deltas merged.
    pub remote_deltas: u64,
    /// Callers tracked now.
    pub tracked: u64,
    /// Calls pending now.
    pub pending: u64,
}

/// A tracked caller that a rule held on within `suspect_retention`: what `/suspects`
/// shows. Times are ages (the detector has no wall clock): the admin endpoint turns them
/// into timestamps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suspect {
    /// The caller.
    #[serde(serialize_with = "ser_number")]
    pub number: E164,
    /// The most severe rule that held.
    #[serde(serialize_with = "rules::arc_str")]
    pub rule: Arc<str>,
    /// Its category.
    #[serde(serialize_with = "rules::arc_str")]
    pub category: Arc<str>,
    /// Its action.
    pub action: Action,
    /// Its score.
    pub score: u8,
    /// The features now.
    pub features: Features,
    /// Seconds since the caller's first tracked call.
    pub first_seen_secs_ago: u64,
    /// Seconds since its last call.
    pub last_seen_secs_ago: u64,
    /// Seconds since a rule first held.
    pub first_flagged_secs_ago: u64,
    /// Seconds since a rule last held.
    pub last_flagged_secs_ago: u64,
}

fn ser_number<S: serde::Serializer>(n: &E164, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}

#[derive(Default)]
struct CallerStats {
    invites: u64,
    retransmissions: u64,
    admitted: u64,
    evicted: u64,
    tracked: u64,
    remote_deltas: u64,
}

/// One shard of callers: its part of the tracked table (its part of the sketch, which
/// takes no lock, is [`Detector::sketches`]).
struct Callers {
    tracked: Tracked,
    /// Per-slot shared-counter accumulators and the slots that have one (with `redis` only).
    acc: Vec<DeltaAcc>,
    dirty: Vec<u32>,
    stats: CallerStats,
}

impl Callers {
    /// The bookkeeping of a caller just admitted to slot `index` (displacing another when
    /// `evicted`), for a local INVITE and a remote delta alike: the counters, a fresh
    /// shared-counter accumulator (its dirty mark kept: the slot may already be listed in
    /// `dirty`), and the slot seeded with the `seed` calls the sketch saw before.
    fn admit(&mut self, index: usize, evicted: bool, seed: u16) {
        self.stats.admitted += 1;
        if evicted {
            self.stats.evicted += 1;
        } else {
            self.stats.tracked += 1;
        }
        if let Some(a) = self.acc.get_mut(index) {
            *a = DeltaAcc {
                dirty: a.dirty,
                ..DeltaAcc::default()
            };
        }
        self.tracked.slots[index].seed(seed);
    }
}

#[derive(Default)]
struct PendingStats {
    forgotten: u64,
    unmatched: u64,
    garbage: u64,
    pending: u64,
}

struct Calls {
    table: Pending,
    stats: PendingStats,
}

/// A shard lock on its own cache line.
#[repr(align(64))]
struct Padded<T>(Mutex<T>);

/// Slots of [`Detector::untracked_invites`]: one per thread up to this many threads.
const COUNT_SLOTS: usize = 64;

/// A counter on its own cache line.
#[derive(Default)]
#[repr(align(64))]
struct Slot64(AtomicU64);

/// Adds one to this thread's slot of a per-thread counter. One writer per slot (up to
/// [`COUNT_SLOTS`] threads): a plain store, no locked add.
fn count_in(slots: &[Slot64]) {
    if let Some(c) = slots.get(thread_slot()) {
        c.0.store(c.0.load(Relaxed).wrapping_add(1), Relaxed);
    }
}

/// This thread's slot in per-thread counters (threads numbered in the order they first
/// count; beyond [`COUNT_SLOTS`] threads share slots).
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Relaxed) % COUNT_SLOTS;
    }
    SLOT.with(|s| *s)
}

/// The behavioural detector: `Send + Sync`, shared by every worker thread (8 shards; an
/// untracked caller's INVITE and judgement take no lock, a tracked caller's take a few short
/// ones). See the [module docs](self).
pub struct Detector {
    params: Params,
    rules: Vec<Compiled>,
    shared: bool,
    origin: OnceLock<Instant>,
    /// The count-min sketch, outside the shard locks (it takes none): an untracked
    /// caller's INVITE (nearly every call) touches its sketch block and nothing else.
    sketch: CountMin,
    /// The lowest sketch estimate at which a rule can hold ([`rules::probe_from`]): below
    /// it [`Detector::judge`] answers `None` without looking the caller up.
    probe_from: u16,
    /// Below this estimate after the call, an INVITE is an untracked caller's and takes no
    /// lock: `min(track_after, probe_from)`.
    skip_below: u16,
    /// INVITEs of untracked callers, per thread (one writer per slot: plain stores).
    untracked_invites: Box<[Slot64]>,
    callers: Box<[Padded<Callers>]>,
    calls: Box<[Padded<Calls>]>,
    /// Which calls may be pending, read without the shard locks: an event for a call that is
    /// not (nearly every ringing, answer and BYE: only tracked callers' calls are pending)
    /// takes no lock and does not touch the table.
    pending_tags: PendingTags,
    /// Events for no pending call that the tags answered, per thread (plain stores).
    unmatched_untouched: Box<[Slot64]>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("rules", &self.rules.len())
            .field("memory_bytes", &self.memory_bytes())
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// A detector for a configuration (checked with [`DetectionConfig::validate`]; `enabled`
    /// is the caller's business). Allocates all its memory now.
    pub fn new(config: &DetectionConfig) -> Result<Detector, DetectionConfigError> {
        config.validate()?;
        let shared = config.redis.is_some();
        let tracked_per = (config.max_tracked_callers as usize).div_ceil(SHARDS);
        let pending_per = (config.pending_calls as usize).div_ceil(SHARDS);
        let callers: Box<[Padded<Callers>]> = (0..SHARDS)
            .map(|_| {
                let tracked = Tracked::new(tracked_per);
                let n = if shared { tracked.slots.len() } else { 0 };
                Padded(Mutex::new(Callers {
                    tracked,
                    acc: vec![DeltaAcc::default(); n],
                    dirty: Vec::with_capacity(n),
                    stats: CallerStats::default(),
                }))
            })
            .collect();
        let sketch = CountMin::new(config.sketch_bytes() as usize / sketch::BLOCK_BYTES);
        let calls: Box<[Padded<Calls>]> = (0..SHARDS)
            .map(|_| {
                Padded(Mutex::new(Calls {
                    table: Pending::new(pending_per),
                    stats: PendingStats::default(),
                }))
            })
            .collect();
        let pending_tags = PendingTags::new(SHARDS, lock(&calls[0].0).table.buckets());
        let params = Params::of(config);
        let probe_from = rules::probe_from(&config.rules, params.half_life_ds);
        Ok(Detector {
            params,
            rules: config.rules.iter().map(Compiled::new).collect(),
            shared,
            origin: OnceLock::new(),
            sketch,
            probe_from,
            skip_below: probe_from.min(params.track_after),
            untracked_invites: (0..COUNT_SLOTS).map(|_| Slot64::default()).collect(),
            callers,
            calls,
            pending_tags,
            unmatched_untouched: (0..COUNT_SLOTS).map(|_| Slot64::default()).collect(),
        })
    }

    /// Deciseconds since the first time the detector was given (earlier times read as 0).
    fn tick(&self, now: Instant) -> u32 {
        let origin = *self.origin.get_or_init(|| now);
        now.checked_duration_since(origin).map_or(0, |d| {
            let ds = d.as_secs() * 10 + u64::from(d.subsec_nanos() / 100_000_000);
            ds.min(u64::from(u32::MAX - 2)) as u32
        })
    }

    /// Learns from one event. For an [`CallEventKind::Invite`] returns the caller's finding
    /// with this call counted (what [`Detector::judge`] would say next), so a call costs one
    /// visit; other events return `None`.
    pub fn observe(&self, event: CallEvent, now: Instant) -> Option<Finding> {
        let t = self.tick(now);
        let call = event.call.get();
        match event.kind {
            CallEventKind::Invite { caller, callee } => self.invite(call, &caller, &callee, t),
            kind => {
                self.outcome(call, kind, t);
                None
            }
        }
    }

    /// One initial INVITE, counted and judged in one visit: what a front end that counts
    /// calls (the proxy core, the redirect server) does per call, instead of
    /// [`Detector::judge`] then [`Detector::observe`]. It hashes the caller, reads the clock
    /// offset and decodes the sketch block once.
    ///
    /// Returns the caller's finding **before this INVITE is counted**: exactly what
    /// [`Detector::judge`] would have answered just before the call (and, like it, the flag
    /// is recorded for `/suspects`), so the verdict of a caller's n-th call rests on its
    /// first n-1 calls, as it always has. The INVITE is then counted exactly as
    /// [`Detector::observe`] counts it (a retransmission of a tracked caller's call is
    /// recognised and not counted twice); the finding with this call counted is recorded for
    /// `/suspects` but not returned.
    pub fn visit(
        &self,
        call: CallKey,
        caller: &E164,
        callee: &E164,
        now: Instant,
    ) -> Option<Finding> {
        let t = self.tick(now);
        let key = event::number_key(caller);
        let h = mix64(key);
        let counted = self.sketch.add(h, 1, self.params.epoch(t));
        if counted.after < self.skip_below {
            // `before < after < skip_below <= probe_from`: `judge` would have said `None`.
            self.count_untracked();
            return None;
        }
        self.visit_locked(call.get(), key, h, counted, callee, t)
    }

    /// The rest of a visit, for a caller the sketch counts often enough that it may be
    /// tracked: judged as before the call, then the call counted.
    #[inline(never)]
    fn visit_locked(
        &self,
        call: u64,
        key: u64,
        h: u64,
        counted: sketch::Counted,
        callee: &E164,
        t: u32,
    ) -> Option<Finding> {
        let before = if counted.before >= self.probe_from {
            self.judge_locked(key, h, t)
        } else {
            None
        };
        self.invite_locked(call, key, h, counted.after, callee, t);
        before
    }

    /// Records a tracked caller's call in the pending table: `false` for a retransmission.
    fn pend(&self, call: u64, key: u64, t: u32) -> bool {
        let shard = shard_of(mix64(call));
        let mut c = lock(&self.calls[shard].0);
        let inserted = c.table.insert(call, key, t);
        self.pending_tags.update(shard, &c.table, call);
        match inserted {
            Inserted::New(forgotten) => {
                if forgotten {
                    c.stats.forgotten += 1;
                } else {
                    c.stats.pending += 1;
                }
                true
            }
            Inserted::Duplicate => false,
        }
    }

    /// An INVITE. The hot path (a caller that is not tracked, almost every call) takes no
    /// lock and touches one cache line, the caller's sketch block: when the sketch's
    /// estimate stays below `track_after` (and below [`rules::probe_from`]) the caller can
    /// be neither admitted nor judged guilty, so the tracked table is not even looked at.
    /// One edge follows: a tracked caller that fell silent until its estimate decayed below
    /// `track_after` (about two half-lives without a call) is handled like an untracked one
    /// for its first calls back, counted by the sketch only, as every caller's first calls
    /// are; its slot keeps its history and takes its calls again from the `track_after`th.
    ///
    /// Only tracked callers' calls enter the pending table (which also tells
    /// retransmissions apart). Every INVITE counts in the sketch, before the caller is
    /// looked up: an untracked caller's retransmission counts again, which at worst tracks
    /// it a call or two early; a tracked caller's raises only the sketch's estimate, which
    /// decides admission and a tracked caller is past it (its slot and `invites` count the
    /// call once).
    fn invite(&self, call: u64, caller: &E164, callee: &E164, t: u32) -> Option<Finding> {
        let key = event::number_key(caller);
        let h = mix64(key);
        let p = &self.params;
        let est = self.sketch.add(h, 1, p.epoch(t)).after;
        if est < self.skip_below {
            self.count_untracked();
            return None;
        }
        self.invite_locked(call, key, h, est, callee, t)
    }

    /// Counts an untracked caller's INVITE in this thread's slot.
    fn count_untracked(&self) {
        count_in(&self.untracked_invites);
    }

    /// An INVITE whose caller the sketch counts often enough that it may be tracked.
    #[inline(never)]
    fn invite_locked(
        &self,
        call: u64,
        key: u64,
        h: u64,
        est: u16,
        callee: &E164,
        t: u32,
    ) -> Option<Finding> {
        let shard = shard_of(h);
        let p = &self.params;
        let callee = event::number_key(callee);
        let mut guard = lock(&self.callers[shard].0);
        let tracked = guard.tracked.find(key, h).is_some();
        let mut fresh = true;
        if tracked {
            // A tracked caller: the pending table first (never both locks at once this way).
            drop(guard);
            fresh = self.pend(call, key, t);
            guard = lock(&self.callers[shard].0);
        }
        let c = &mut *guard;
        if !fresh {
            c.stats.retransmissions += 1;
            let i = c.tracked.find(key, h)?;
            return self.judge_slot(c, i, t);
        }
        c.stats.invites += 1;
        let i = match c.tracked.place(key, h, est, t, p) {
            Place::Found(i) => i,
            Place::Admitted { index, evicted } => {
                // The calls the sketch saw before this one.
                c.admit(index, evicted, est.saturating_sub(1).min(p.track_after));
                if !tracked {
                    // Lock order: a caller shard, then a pending shard (the other paths
                    // never hold both).
                    self.pend(call, key, t);
                }
                index
            }
            Place::Absent => return None,
        };
        let slot = &mut c.tracked.slots[i];
        let inc = slot.invite(callee, p);
        slot.apply(&inc, t, p);
        self.accumulate(c, i, &inc);
        self.judge_slot(c, i, t)
    }

    /// Adds an increment to a slot's shared-counter accumulator (with `redis` only).
    fn accumulate(&self, c: &mut Callers, i: usize, inc: &Increment) {
        if !self.shared {
            return;
        }
        let Some(a) = c.acc.get_mut(i) else { return };
        a.callees |= inc.callees;
        a.calls = a.calls.saturating_add(inc.calls);
        a.ended = a.ended.saturating_add(inc.ended);
        a.answered = a.answered.saturating_add(inc.answered);
        a.short = a.short.saturating_add(inc.short);
        a.one_ring = a.one_ring.saturating_add(inc.one_ring);
        a.sequential = a.sequential.saturating_add(inc.sequential);
        if !a.dirty {
            a.dirty = true;
            c.dirty.push(i as u32);
        }
    }

    fn outcome(&self, call: u64, kind: CallEventKind, t: u32) {
        let p = &self.params;
        let shard = shard_of(mix64(call));
        if !self.pending_tags.may_hold(shard, call) {
            count_in(&self.unmatched_untouched);
            return;
        }
        let (caller, inc) = {
            let mut guard = lock(&self.calls[shard].0);
            let c = &mut *guard;
            let Some(e) = c.table.get(call) else {
                c.stats.unmatched += 1;
                return;
            };
            let answered = e.answer_at != 0;
            let caller = e.caller;
            let inc = match kind {
                CallEventKind::Invite { .. } => return,
                CallEventKind::Ringing => {
                    if e.ring_at == 0 && !answered && e.cancelled == 0 {
                        e.ring_at = t + 1;
                    }
                    return;
                }
                CallEventKind::Answered => {
                    if answered || e.cancelled != 0 {
                        c.stats.garbage += 1;
                        return;
                    }
                    e.answer_at = t + 1;
                    Increment {
                        ended: 1,
                        answered: 1,
                        ..Increment::default()
                    }
                }
                CallEventKind::Cancelled => {
                    if answered || e.cancelled != 0 {
                        c.stats.garbage += 1;
                        return;
                    }
                    e.cancelled = 1;
                    let from = if e.ring_at != 0 {
                        e.ring_at - 1
                    } else {
                        e.invite_at
                    };
                    Increment {
                        ended: 1,
                        short: 1,
                        one_ring: u16::from(t.saturating_sub(from) <= p.one_ring_ds),
                        ..Increment::default()
                    }
                }
                CallEventKind::Failed { status } => {
                    if !(300..700).contains(&status) || answered {
                        c.stats.garbage += 1;
                        return;
                    }
                    let cancelled = e.cancelled != 0;
                    c.table.remove(call);
                    self.pending_tags.update(shard, &c.table, call);
                    c.stats.pending = c.stats.pending.saturating_sub(1);
                    if cancelled {
                        // The 487 that answers a CANCEL already counted.
                        return;
                    }
                    Increment {
                        ended: 1,
                        short: 1,
                        ..Increment::default()
                    }
                }
                CallEventKind::Bye => {
                    if !answered {
                        c.stats.garbage += 1;
                        return;
                    }
                    let talk = t.saturating_sub(e.answer_at - 1);
                    c.table.remove(call);
                    self.pending_tags.update(shard, &c.table, call);
                    c.stats.pending = c.stats.pending.saturating_sub(1);
                    Increment {
                        short: u16::from(talk <= p.short_ds),
                        ..Increment::default()
                    }
                }
            };
            (caller, inc)
        };
        let h = mix64(caller);
        let mut guard = lock(&self.callers[shard_of(h)].0);
        let c = &mut *guard;
        if let Some(i) = c.tracked.find(caller, h) {
            c.tracked.slots[i].apply(&inc, t, p);
            self.accumulate(c, i, &inc);
        }
    }

    fn judge_slot(&self, c: &mut Callers, i: usize, t: u32) -> Option<Finding> {
        let slot = &mut c.tracked.slots[i];
        // Volume and evidence first: cheap, and short of every rule's for almost every
        // tracked caller.
        let (volume, ended) = (slot.volume(t), slot.ended(t, &self.params));
        if !self
            .rules
            .iter()
            .any(|r| r.volume_and_evidence_hold(volume, ended))
        {
            return None;
        }
        let f = slot.features(t, &self.params);
        let r = rules::most_severe(&self.rules, &f)?;
        let rule = &self.rules[r];
        let prev = usize::from(slot.flag_rule).checked_sub(1);
        if prev.is_none_or(|p| self.rules.get(p).is_none_or(|p| rule.action >= p.action)) {
            slot.flag_rule = (r + 1) as u8;
        }
        if slot.flag_first == 0 {
            slot.flag_first = t + 1;
        }
        slot.flag_last = t + 1;
        Some(rule.finding(f))
    }

    /// The caller's finding now, without counting anything (`None`: not tracked, or no rule
    /// holds). Records the flag for `/suspects` like [`Detector::observe`] does.
    ///
    /// A caller whose sketch estimate is below what any rule's volume needs (nearly every
    /// caller) is answered from its sketch block alone, without a lock or a table lookup.
    pub fn judge(&self, caller: &E164, now: Instant) -> Option<Finding> {
        let t = self.tick(now);
        let key = event::number_key(caller);
        let h = mix64(key);
        if self.sketch.estimate(h, self.params.epoch(t)) < self.probe_from {
            return None;
        }
        self.judge_locked(key, h, t)
    }

    #[inline(never)]
    fn judge_locked(&self, key: u64, h: u64, t: u32) -> Option<Finding> {
        let mut guard = lock(&self.callers[shard_of(h)].0);
        let c = &mut *guard;
        let i = c.tracked.find(key, h)?;
        self.judge_slot(c, i, t)
    }

    /// The caller's features now, if it is tracked (for `explain` and tests).
    pub fn features(&self, caller: &E164, now: Instant) -> Option<Features> {
        let t = self.tick(now);
        let key = event::number_key(caller);
        let h = mix64(key);
        let c = lock(&self.callers[shard_of(h)].0);
        let i = c.tracked.find(key, h)?;
        Some(c.tracked.slots[i].features(t, &self.params))
    }

    /// The tracked callers a rule held on within `suspect_retention`, by number.
    pub fn suspects(&self, now: Instant) -> Vec<Suspect> {
        let t = self.tick(now);
        let p = &self.params;
        let secs = |then: u32| u64::from(t.saturating_sub(then)) / 10;
        let mut out = Vec::new();
        for shard in self.callers.iter() {
            let c = lock(&shard.0);
            for (i, s) in c.tracked.slots.iter().enumerate() {
                if s.flag_rule == 0 || t.saturating_sub(s.flag_last - 1) > p.retention_ds {
                    continue;
                }
                let (Some(number), Some(rule)) = (
                    event::number_of_key(c.tracked.key(i)),
                    self.rules.get(usize::from(s.flag_rule) - 1),
                ) else {
                    continue;
                };
                out.push(Suspect {
                    number,
                    rule: rule.name.clone(),
                    category: rule.category.clone(),
                    action: rule.action,
                    score: rule.score,
                    features: s.features(t, p),
                    first_seen_secs_ago: secs(s.first_seen),
                    last_seen_secs_ago: secs(s.last_seen),
                    first_flagged_secs_ago: secs(s.flag_first - 1),
                    last_flagged_secs_ago: secs(s.flag_last - 1),
                });
            }
        }
        out.sort_by_key(|s| s.number);
        out
    }

    /// Takes what this node observed from tracked callers since the last drain (empty
    /// unless `detection.redis` is set). For the Redis task, every `redis_flush_interval`.
    pub fn drain_deltas(&self) -> Vec<CounterDelta> {
        let mut out = Vec::new();
        if !self.shared {
            return out;
        }
        for shard in self.callers.iter() {
            let mut guard = lock(&shard.0);
            let c = &mut *guard;
            for i in c.dirty.drain(..) {
                let i = i as usize;
                let Some(a) = c.acc.get_mut(i) else { continue };
                let a = std::mem::take(a);
                let Some(caller) = event::number_of_key(c.tracked.key(i)) else {
                    continue;
                };
                if a.calls == 0 && a.ended == 0 && a.short == 0 {
                    continue;
                }
                out.push(CounterDelta {
                    caller,
                    calls: a.calls.into(),
                    callees: CounterDelta::split_bits(a.callees),
                    ended: a.ended.into(),
                    answered: a.answered.into(),
                    short: a.short.into(),
                    one_ring: a.one_ring.into(),
                    sequential: a.sequential.into(),
                });
            }
        }
        out
    }

    /// Adds other nodes' deltas as if observed now (never echoed back by
    /// [`Detector::drain_deltas`]). A caller not tracked here is counted in the sketch and
    /// tracked if that earns it a slot.
    pub fn merge_remote(&self, deltas: &[CounterDelta], now: Instant) {
        let t = self.tick(now);
        let p = &self.params;
        let sat = |v: u32| v.min(u32::from(u16::MAX)) as u16;
        for d in deltas {
            let key = event::number_key(&d.caller);
            let h = mix64(key);
            let mut guard = lock(&self.callers[shard_of(h)].0);
            let c = &mut *guard;
            c.stats.remote_deltas += 1;
            let sketch = &self.sketch;
            let est = if d.calls > 0 {
                sketch.add(h, sat(d.calls), p.epoch(t)).after
            } else {
                sketch.estimate(h, p.epoch(t))
            };
            let i = match c.tracked.place(key, h, est, t, p) {
                Place::Found(i) => i,
                Place::Admitted { index, evicted } => {
                    // The calls the sketch saw before these.
                    c.admit(
                        index,
                        evicted,
                        est.saturating_sub(sat(d.calls)).min(p.track_after),
                    );
                    index
                }
                Place::Absent => continue,
            };
            let inc = Increment {
                calls: sat(d.calls),
                callees: d.callee_bits(),
                ended: sat(d.ended),
                answered: sat(d.answered),
                short: sat(d.short),
                one_ring: sat(d.one_ring),
                sequential: sat(d.sequential),
            };
            c.tracked.slots[i].apply(&inc, t, p);
        }
    }

    /// Bytes allocated: fixed by the configuration at [`Detector::new`].
    pub fn memory_bytes(&self) -> usize {
        let mut total = std::mem::size_of::<Detector>()
            + self.rules.len() * std::mem::size_of::<Compiled>()
            + SHARDS
                * (std::mem::size_of::<Padded<Callers>>() + std::mem::size_of::<Padded<Calls>>());
        for s in self.callers.iter() {
            let c = lock(&s.0);
            total += c.tracked.bytes()
                + c.acc.capacity() * std::mem::size_of::<DeltaAcc>()
                + c.dirty.capacity() * 4;
        }
        for s in self.calls.iter() {
            total += lock(&s.0).table.bytes();
        }
        total += self.sketch.bytes()
            + self.pending_tags.bytes()
            + 2 * COUNT_SLOTS * std::mem::size_of::<Slot64>();
        total
    }

    /// The counters so far.
    pub fn stats(&self) -> DetectorStats {
        let mut s = DetectorStats {
            invites: self
                .untracked_invites
                .iter()
                .map(|c| c.0.load(Relaxed))
                .sum(),
            unmatched: self
                .unmatched_untouched
                .iter()
                .map(|c| c.0.load(Relaxed))
                .sum(),
            ..DetectorStats::default()
        };
        for shard in self.callers.iter() {
            let c = lock(&shard.0);
            s.invites += c.stats.invites;
            s.retransmissions += c.stats.retransmissions;
            s.admitted += c.stats.admitted;
            s.evicted += c.stats.evicted;
            s.tracked += c.stats.tracked;
            s.remote_deltas += c.stats.remote_deltas;
        }
        for shard in self.calls.iter() {
            let c = lock(&shard.0);
            s.pending_forgotten += c.stats.forgotten;
            s.unmatched += c.stats.unmatched;
            s.garbage += c.stats.garbage;
            s.pending += c.stats.pending;
        }
        s
    }
}

#[cfg(test)]
mod tests;
