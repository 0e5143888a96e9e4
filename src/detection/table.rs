//! The tracked callers (heavy hitters): a set-associative table of fixed-size slots, one per
//! caller with full features, and the per-caller feature arithmetic.
//!
//! Each shard holds `sets × 8` slots. A caller's set comes from its hash; within the set the
//! keys sit in one 64-byte line, probed in one cache miss. A caller is admitted when the
//! count-min sketch counts `track_after` recent calls from it, taking an empty slot or the
//! slot with the lowest decayed call count if that is lower than the newcomer's estimate
//! (space-saving's rule, per set), so a campaign number is never displaced by one-off
//! callers and memory never grows.

use super::config::DetectionConfig;
use super::sketch::{callee_bit, distinct_estimate, reduce};
use super::Features;

/// Ways per set.
pub(crate) const WAYS: usize = 8;
/// Fixed-point scale of the decayed counters (quarter events).
const FP: u16 = 4;
/// Minute buckets of the call-volume ring (one hour).
const MINUTES: u32 = 60;
/// Distinct-callee estimate from which the map counts as saturated (about 17 of its 128
/// bits still clear): the distinct ratio is then 1.
const SATURATED: f32 = 256.0;
/// Deciseconds per minute.
const MINUTE_DS: u32 = 600;

/// Derived constants, in deciseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    pub half_life_ds: u32,
    pub gen_ds: u32,
    pub short_ds: u32,
    pub one_ring_ds: u32,
    pub seq_step: u64,
    pub retention_ds: u32,
    pub track_after: u16,
}

fn ds(d: std::time::Duration) -> u32 {
    (d.as_millis() / 100).clamp(1, u128::from(u32::MAX)) as u32
}

impl Params {
    pub(crate) fn of(c: &DetectionConfig) -> Params {
        Params {
            half_life_ds: ds(c.half_life),
            gen_ds: ds(c.distinct_window),
            short_ds: ds(c.short_call),
            one_ring_ds: ds(c.one_ring),
            seq_step: u64::from(c.sequential_step),
            retention_ds: ds(c.suspect_retention),
            track_after: c.track_after.min(u32::from(u16::MAX)) as u16,
        }
    }

    /// The decay epoch of a time (wraps after 65536 half-lives; see the sketch).
    pub(crate) fn epoch(&self, now: u32) -> u16 {
        (now / self.half_life_ds) as u16
    }
}

/// Decayed outcome counters, in quarter events, halved every half-life.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Outcomes {
    pub attempts: u16,
    pub ended: u16,
    pub answered: u16,
    pub short: u16,
    pub one_ring: u16,
    pub sequential: u16,
}

impl Outcomes {
    fn each(&mut self) -> [&mut u16; 6] {
        [
            &mut self.attempts,
            &mut self.ended,
            &mut self.answered,
            &mut self.short,
            &mut self.one_ring,
            &mut self.sequential,
        ]
    }

    fn halve(&mut self, shift: u32) {
        for c in self.each() {
            *c = c.checked_shr(shift).unwrap_or(0);
        }
    }
}

/// One tracked caller's features. 160 bytes; with its key, [`super::TRACKED_CALLER_BYTES`].
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct Slot {
    /// Distinct-callee maps of the current and previous generation.
    distinct: [u128; 2],
    /// The previous callee (for sequential steps).
    last_callee: u64,
    /// First and last INVITE, deciseconds since the origin.
    pub first_seen: u32,
    pub last_seen: u32,
    /// Absolute minute of the newest bucket of `minutes`.
    minute_head: u32,
    /// Generation of `distinct[0]`.
    generation: u32,
    /// Half-life period of `outcomes`.
    decay_epoch: u32,
    /// When a rule first and last held (deciseconds + 1; 0 = never).
    pub flag_first: u32,
    pub flag_last: u32,
    /// Calls of the current and previous generation.
    gen_calls: [u16; 2],
    pub outcomes: Outcomes,
    /// Calls per minute over the last hour (saturating at 255 a minute).
    minutes: [u8; MINUTES as usize],
    /// The most severe rule that held (index + 1; 0 = none).
    pub flag_rule: u8,
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            distinct: [0; 2],
            last_callee: 0,
            first_seen: 0,
            last_seen: 0,
            minute_head: 0,
            generation: 0,
            decay_epoch: 0,
            flag_first: 0,
            flag_last: 0,
            gen_calls: [0; 2],
            outcomes: Outcomes::default(),
            minutes: [0; MINUTES as usize],
            flag_rule: 0,
        }
    }
}

/// What a shared-counter delta accumulates per slot (only with `detection.redis`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DeltaAcc {
    pub callees: u128,
    pub calls: u16,
    pub ended: u16,
    pub answered: u16,
    pub short: u16,
    pub one_ring: u16,
    pub sequential: u16,
    pub dirty: bool,
}

/// Increments applied to a slot, from a local event or a remote delta.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Increment {
    pub calls: u16,
    pub callees: u128,
    pub ended: u16,
    pub answered: u16,
    pub short: u16,
    pub one_ring: u16,
    pub sequential: u16,
}

impl Slot {
    pub(crate) fn fresh(now: u32, p: &Params) -> Slot {
        Slot {
            first_seen: now,
            last_seen: now,
            minute_head: now / MINUTE_DS,
            generation: now / p.gen_ds,
            decay_epoch: now / p.half_life_ds,
            ..Slot::default()
        }
    }

    /// Rolls the windows forward to `now` (a time before the newest seen counts as the
    /// newest: out-of-order events never move anything back).
    fn advance(&mut self, now: u32, p: &Params) {
        let m = now / MINUTE_DS;
        if m > self.minute_head {
            let gap = m - self.minute_head;
            if gap >= MINUTES {
                self.minutes = [0; MINUTES as usize];
            } else {
                for i in 1..=gap {
                    self.minutes[((self.minute_head + i) % MINUTES) as usize] = 0;
                }
            }
            self.minute_head = m;
        }
        let g = now / p.gen_ds;
        if g > self.generation {
            if g == self.generation + 1 {
                self.distinct = [0, self.distinct[0]];
                self.gen_calls = [0, self.gen_calls[0]];
            } else {
                self.distinct = [0, 0];
                self.gen_calls = [0, 0];
            }
            self.generation = g;
        }
        let e = now / p.half_life_ds;
        if e > self.decay_epoch {
            self.outcomes.halve((e - self.decay_epoch).min(16));
            self.decay_epoch = e;
        }
        self.last_seen = self.last_seen.max(now);
    }

    /// Applies increments at `now`.
    pub(crate) fn apply(&mut self, inc: &Increment, now: u32, p: &Params) {
        self.advance(now, p);
        let b = &mut self.minutes[(self.minute_head % MINUTES) as usize];
        *b = b.saturating_add(inc.calls.min(255) as u8);
        self.gen_calls[0] = self.gen_calls[0].saturating_add(inc.calls);
        self.distinct[0] |= inc.callees;
        let o = &mut self.outcomes;
        let fp = |n: u16| n.saturating_mul(FP);
        o.attempts = o.attempts.saturating_add(fp(inc.calls));
        o.ended = o.ended.saturating_add(fp(inc.ended));
        o.answered = o.answered.saturating_add(fp(inc.answered));
        o.short = o.short.saturating_add(fp(inc.short));
        o.one_ring = o.one_ring.saturating_add(fp(inc.one_ring));
        o.sequential = o.sequential.saturating_add(fp(inc.sequential));
    }

    /// The increments of one INVITE to `callee`.
    pub(crate) fn invite(&mut self, callee: u64, p: &Params) -> Increment {
        let step = self.last_callee != 0
            && callee != self.last_callee
            && callee.abs_diff(self.last_callee) <= p.seq_step;
        self.last_callee = callee;
        Increment {
            calls: 1,
            callees: callee_bit(callee),
            sequential: u16::from(step),
            ..Increment::default()
        }
    }

    /// Seeds the volume ring with calls the sketch counted before the caller was tracked.
    pub(crate) fn seed(&mut self, calls: u16) {
        let b = &mut self.minutes[(self.minute_head % MINUTES) as usize];
        *b = b.saturating_add(calls.min(255) as u8);
    }

    /// Calls in the last `k` minute buckets (the current one and `k - 1` before it).
    fn calls_in(&self, now_minute: u32, k: u32) -> u32 {
        // Buckets newer than the head are empty; the window ends `skip` minutes past it.
        let skip = now_minute.saturating_sub(self.minute_head);
        let Some(n) = k.min(MINUTES).checked_sub(skip).filter(|&n| n > 0) else {
            return 0;
        };
        // The newest `n` buckets end at the head: at most two runs of the ring.
        let head = (self.minute_head % MINUTES) as usize;
        let n = n as usize;
        let sum = |b: &[u8]| b.iter().map(|&x| u32::from(x)).sum::<u32>();
        if n <= head + 1 {
            sum(&self.minutes[head + 1 - n..=head])
        } else {
            let wrap = n - (head + 1);
            sum(&self.minutes[..=head]) + sum(&self.minutes[MINUTES as usize - wrap..])
        }
    }

    /// Calls in the last minute (two buckets), 10 minutes and hour, at `now`.
    pub(crate) fn volume(&self, now: u32) -> (u32, u32, u32) {
        let m = (now / MINUTE_DS).max(self.minute_head);
        (
            self.calls_in(m, 2),
            self.calls_in(m, 10),
            self.calls_in(m, MINUTES),
        )
    }

    /// The decayed call count at `now`, in quarter calls (the eviction score).
    pub(crate) fn score(&self, now: u32, p: &Params) -> u16 {
        let age = (now / p.half_life_ds).saturating_sub(self.decay_epoch);
        self.outcomes.attempts.checked_shr(age.min(16)).unwrap_or(0)
    }

    /// Ended attempts (decayed) at `now`: [`Features::ended`].
    pub(crate) fn ended(&self, now: u32, p: &Params) -> u32 {
        let age = (now / p.half_life_ds).saturating_sub(self.decay_epoch);
        u32::from(self.outcomes.ended.checked_shr(age.min(16)).unwrap_or(0) / FP)
    }

    /// The features at `now`, without changing anything.
    pub(crate) fn features(&self, now: u32, p: &Params) -> Features {
        let g = (now / p.gen_ds).max(self.generation);
        let (bits, gen_calls) = match g - self.generation {
            0 => (
                self.distinct[0] | self.distinct[1],
                u32::from(self.gen_calls[0]) + u32::from(self.gen_calls[1]),
            ),
            1 => (self.distinct[0], u32::from(self.gen_calls[0])),
            _ => (0, 0),
        };
        let distinct = distinct_estimate(bits);
        let ratio = |num: u16, den: u16| {
            if den == 0 {
                0.0
            } else {
                (f32::from(num) / f32::from(den)).min(1.0)
            }
        };
        let o = &self.outcomes;
        let ended = self.ended(now, p);
        let (calls_minute, calls_10min, calls_hour) = self.volume(now);
        Features {
            calls_minute,
            calls_10min,
            calls_hour,
            distinct_callees: distinct.round() as u32,
            distinct_ratio: if gen_calls == 0 {
                0.0
            } else if distinct >= SATURATED {
                // The 128-bit map is nearly full: hundreds of distinct callees, whatever the
                // call count (the estimate itself is no longer precise).
                1.0
            } else {
                (distinct / gen_calls as f32).min(1.0)
            },
            sequential_ratio: ratio(o.sequential, o.attempts),
            answer_ratio: ratio(o.answered, o.ended),
            short_call_ratio: ratio(o.short, o.ended),
            one_ring_ratio: ratio(o.one_ring, o.ended),
            ended,
        }
    }
}

/// Slots of one shard.
pub(crate) struct Tracked {
    /// Caller keys, `WAYS` per set (0 = empty).
    keys: Vec<u64>,
    pub slots: Vec<Slot>,
    sets: usize,
}

/// The outcome of looking a caller up for an update.
pub(crate) enum Place {
    /// Already tracked at this index.
    Found(usize),
    /// Newly admitted at this index (a previous caller may have been evicted).
    Admitted { index: usize, evicted: bool },
    /// Not tracked.
    Absent,
}

impl Tracked {
    pub(crate) fn new(slots: usize) -> Tracked {
        let sets = slots.div_ceil(WAYS).max(1);
        Tracked {
            keys: super::sketch::huge_vec(sets * WAYS, 0),
            slots: super::sketch::huge_vec(sets * WAYS, Slot::default()),
            sets,
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.keys.len() * 8 + self.slots.len() * std::mem::size_of::<Slot>()
    }

    fn set_of(&self, h: u64) -> usize {
        reduce(h as u32, self.sets) * WAYS
    }

    /// The slot of a tracked caller.
    pub(crate) fn find(&self, key: u64, h: u64) -> Option<usize> {
        let base = self.set_of(h);
        self.keys[base..base + WAYS]
            .iter()
            .position(|&k| k == key)
            .map(|i| base + i)
    }

    /// The caller's slot, admitting it if its sketch estimate `est` earns one.
    pub(crate) fn place(&mut self, key: u64, h: u64, est: u16, now: u32, p: &Params) -> Place {
        let base = self.set_of(h);
        if let Some(i) = self.keys[base..base + WAYS].iter().position(|&k| k == key) {
            return Place::Found(base + i);
        }
        if est < p.track_after {
            return Place::Absent;
        }
        let mut victim = None;
        let mut low = u16::MAX;
        for i in base..base + WAYS {
            if self.keys[i] == 0 {
                victim = Some(i);
                low = 0;
                break;
            }
            let s = self.slots[i].score(now, p);
            if s < low {
                low = s;
                victim = Some(i);
            }
        }
        // Space-saving: displace the weakest only for a caller at least as strong.
        let Some(i) = victim else {
            return Place::Absent;
        };
        if low > est.saturating_mul(FP) {
            return Place::Absent;
        }
        let evicted = self.keys[i] != 0;
        self.keys[i] = key;
        self.slots[i] = Slot::fresh(now, p);
        Place::Admitted { index: i, evicted }
    }

    pub(crate) fn key(&self, i: usize) -> u64 {
        self.keys[i]
    }

    /// Tracked callers now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.iter().filter(|&&k| k != 0).count()
    }
}

/// Bytes a configuration's tracked table needs.
pub(crate) fn bytes_for(c: &DetectionConfig) -> u64 {
    let shared = if c.redis.is_some() {
        std::mem::size_of::<DeltaAcc>() + 4
    } else {
        0
    };
    u64::from(c.max_tracked_callers) * (super::TRACKED_CALLER_BYTES + shared) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params::of(&DetectionConfig::default())
    }

    #[test]
    fn slot_is_160_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 160);
    }

    #[test]
    fn minute_ring_counts_windows_and_forgets_after_an_hour() {
        let p = params();
        let mut s = Slot::fresh(0, &p);
        // One call every 30 s for 20 minutes.
        for i in 0..40u32 {
            let inc = s.invite(8613900000000 + u64::from(i) * 1000, &p);
            s.apply(&inc, i * 300, &p);
        }
        let f = s.features(39 * 300, &p);
        assert_eq!(f.calls_hour, 40);
        assert_eq!(f.calls_10min, 20);
        assert_eq!(f.calls_minute, 4);
        // Fifty minutes later only minutes 10-19 are still within the hour.
        let f = s.features(39 * 300 + 50 * 600, &p);
        assert_eq!(f.calls_hour, 20);
        let f = s.features(39 * 300 + 61 * 600, &p);
        assert_eq!((f.calls_hour, f.calls_10min), (0, 0));
    }

    #[test]
    fn out_of_order_times_never_move_back() {
        let p = params();
        let mut s = Slot::fresh(10_000, &p);
        let inc = s.invite(1, &p);
        s.apply(&inc, 10_000, &p);
        let inc = s.invite(2, &p);
        s.apply(&inc, 5, &p);
        assert_eq!(s.features(10_000, &p).calls_minute, 2);
        assert_eq!(s.last_seen, 10_000);
        // A time before the origin of the slot reads as the newest.
        assert_eq!(s.features(0, &p).calls_minute, 2);
    }

    #[test]
    fn sequential_steps_are_counted() {
        let p = params();
        let mut s = Slot::fresh(0, &p);
        for c in 0..20u64 {
            let inc = s.invite(8613900000000 + c, &p);
            s.apply(&inc, c as u32 * 10, &p);
        }
        let f = s.features(200, &p);
        assert!(f.sequential_ratio > 0.9, "{f:?}");
        let mut s = Slot::fresh(0, &p);
        for c in 0..20u64 {
            let inc = s.invite(8613900000000 + c * 7919, &p);
            s.apply(&inc, c as u32 * 10, &p);
        }
        assert_eq!(s.features(200, &p).sequential_ratio, 0.0);
    }

    #[test]
    fn ratios_decay_together_and_evidence_halves() {
        let p = params();
        let mut s = Slot::fresh(0, &p);
        for _ in 0..20 {
            s.apply(
                &Increment {
                    ended: 1,
                    short: 1,
                    answered: 1,
                    ..Increment::default()
                },
                0,
                &p,
            );
        }
        let f = s.features(0, &p);
        assert_eq!(
            (f.ended, f.short_call_ratio, f.answer_ratio),
            (20, 1.0, 1.0)
        );
        let f = s.features(p.half_life_ds, &p);
        assert_eq!(f.ended, 10);
        assert_eq!(f.short_call_ratio, 1.0);
    }

    #[test]
    fn admission_respects_space_saving() {
        let p = params();
        let mut t = Tracked::new(WAYS);
        // Fill the only set with strong callers.
        for k in 1..=WAYS as u64 {
            let Place::Admitted { index, .. } = t.place(k, 0, 3, 0, &p) else {
                panic!("not admitted")
            };
            for _ in 0..50 {
                let inc = t.slots[index].invite(9, &p);
                t.slots[index].apply(&inc, 0, &p);
            }
        }
        assert!(matches!(t.place(100, 0, 3, 0, &p), Place::Absent));
        assert!(matches!(t.place(100, 0, 2, 0, &p), Place::Absent));
        // Two half-lives... sixteen later the old callers are weak: one is displaced.
        let later = 16 * p.half_life_ds;
        assert!(matches!(
            t.place(100, 0, 3, later, &p),
            Place::Admitted { evicted: true, .. }
        ));
        assert_eq!(t.len(), WAYS);
        assert!(t.find(100, 0).is_some());
    }
}
