//! The pending-call table: call key to caller and the call's times, so that ringing,
//! answer, CANCEL, error and BYE can be put down to the caller who made the call.
//!
//! Fixed size: buckets of four 32-byte entries (two cache lines). A new call takes a free
//! entry of its bucket or the oldest one (counted as forgotten), so a flood of calls that
//! never end cannot grow it.
//!
//! Only tracked callers' calls are pending, so nearly every ringing, answer and BYE the
//! proxy reports belongs to no entry. [`PendingTags`] answers those without the shard lock
//! and without touching the table: one byte per bucket (64 KiB at the default size, cache
//! resident), a bit per call key present, rewritten from the bucket's entries whenever they
//! change.

use super::config::DetectionConfig;
use super::sketch::{mix64, reduce};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// Entries per bucket.
const WAYS: usize = 4;

/// One call in progress.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Entry {
    /// The call key (0 = free).
    call: u64,
    /// The caller's number key.
    pub caller: u64,
    /// INVITE time (deciseconds).
    pub invite_at: u32,
    /// First ringing response, answer (deciseconds + 1; 0 = not yet).
    pub ring_at: u32,
    pub answer_at: u32,
    /// A CANCEL was seen (the 487 that follows ends the entry quietly).
    pub cancelled: u32,
}

/// What became of an INVITE's entry.
pub(crate) enum Inserted {
    /// A new pending call (`true`: an older call was forgotten to make room).
    New(bool),
    /// The call is already pending: a retransmission.
    Duplicate,
}

/// One shard's pending calls.
pub(crate) struct Pending {
    entries: Vec<Entry>,
    buckets: usize,
}

impl Pending {
    pub(crate) fn new(entries: usize) -> Pending {
        let buckets = entries.div_ceil(WAYS).max(1);
        Pending {
            entries: super::sketch::huge_vec(buckets * WAYS, Entry::default()),
            buckets,
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.entries.len() * std::mem::size_of::<Entry>()
    }

    fn bucket(&self, call: u64) -> usize {
        self.bucket_index(call) * WAYS
    }

    /// The call's bucket number.
    fn bucket_index(&self, call: u64) -> usize {
        reduce(mix64(call) as u32, self.buckets)
    }

    /// Buckets in the table.
    pub(crate) fn buckets(&self) -> usize {
        self.buckets
    }

    /// The [`PendingTags`] byte of the call's bucket as its entries are now.
    fn tags_of_bucket(&self, call: u64) -> u8 {
        let base = self.bucket(call);
        self.entries[base..base + WAYS]
            .iter()
            .filter(|e| e.call != 0)
            .fold(0, |t, e| t | tag(e.call))
    }

    /// Records a new call.
    pub(crate) fn insert(&mut self, call: u64, caller: u64, now: u32) -> Inserted {
        let base = self.bucket(call);
        let bucket = &mut self.entries[base..base + WAYS];
        if bucket.iter().any(|e| e.call == call) {
            return Inserted::Duplicate;
        }
        let (i, forgotten) = match bucket.iter().position(|e| e.call == 0) {
            Some(i) => (i, false),
            None => {
                // The oldest call of the bucket (by INVITE time; ties: the first).
                let mut oldest = 0;
                for (i, e) in bucket.iter().enumerate() {
                    if e.invite_at < bucket[oldest].invite_at {
                        oldest = i;
                    }
                }
                (oldest, true)
            }
        };
        bucket[i] = Entry {
            call,
            caller,
            invite_at: now,
            ..Entry::default()
        };
        Inserted::New(forgotten)
    }

    /// The entry of a call, to read and update.
    pub(crate) fn get(&mut self, call: u64) -> Option<&mut Entry> {
        let base = self.bucket(call);
        self.entries[base..base + WAYS]
            .iter_mut()
            .find(|e| e.call == call && call != 0)
    }

    /// Forgets a call, returning its entry.
    pub(crate) fn remove(&mut self, call: u64) -> Option<Entry> {
        let e = self.get(call)?;
        let out = *e;
        *e = Entry::default();
        Some(out)
    }

    /// Calls pending now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.iter().filter(|e| e.call != 0).count()
    }
}

/// The call key's bit in its bucket's [`PendingTags`] byte.
fn tag(call: u64) -> u8 {
    1 << (mix64(call) >> 61)
}

/// A lock-free summary of every shard's pending table: per bucket, one bit per call key
/// present (8 bits, chosen by the key's hash). A clear bit proves the call is not pending;
/// a set bit sends the event to the locked table. Written under the shard's lock after each
/// change to the bucket; read with relaxed loads. A call is inserted before its INVITE is
/// forwarded, so its responses and BYE, which come after, see the bit.
pub(crate) struct PendingTags {
    bytes: Box<[AtomicU8]>,
    buckets: usize,
}

impl PendingTags {
    /// Tags for `shards` tables of `buckets` buckets each, all clear.
    pub(crate) fn new(shards: usize, buckets: usize) -> PendingTags {
        PendingTags {
            bytes: (0..shards * buckets).map(|_| AtomicU8::new(0)).collect(),
            buckets,
        }
    }

    fn index(&self, shard: usize, table: &Pending, call: u64) -> usize {
        shard * self.buckets + table.bucket_index(call)
    }

    /// Whether `call` may be pending in shard `shard`: `false` is certain.
    pub(crate) fn may_hold(&self, shard: usize, call: u64) -> bool {
        let i = shard * self.buckets + reduce(mix64(call) as u32, self.buckets);
        self.bytes
            .get(i)
            .is_none_or(|b| b.load(Relaxed) & tag(call) != 0)
    }

    /// Rewrites the byte of `call`'s bucket from `table` (shard `shard`'s, locked by the
    /// caller) after an insert or a removal.
    pub(crate) fn update(&self, shard: usize, table: &Pending, call: u64) {
        if let Some(b) = self.bytes.get(self.index(shard, table, call)) {
            b.store(table.tags_of_bucket(call), Relaxed);
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// Bytes a configuration's pending table needs (entries, plus the [`PendingTags`] byte of
/// each bucket).
pub(crate) fn bytes_for(c: &DetectionConfig) -> u64 {
    let tags = u64::from(c.pending_calls).div_ceil(WAYS as u64) + 8;
    u64::from(c.pending_calls) * super::PENDING_CALL_BYTES as u64 + tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_32_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn insert_dedupes_and_evicts_the_oldest() {
        let mut p = Pending::new(WAYS);
        for c in 1..=WAYS as u64 {
            assert!(matches!(p.insert(c, 7, c as u32), Inserted::New(false)));
        }
        assert!(matches!(p.insert(2, 7, 50), Inserted::Duplicate));
        assert!(matches!(p.insert(99, 7, 60), Inserted::New(true)));
        assert!(p.get(1).is_none(), "the oldest went");
        assert_eq!(p.len(), WAYS);
        assert_eq!(p.remove(99).map(|e| e.invite_at), Some(60));
        assert!(p.remove(99).is_none());
        assert!(p.get(0).is_none());
    }

    #[test]
    fn tags_follow_the_entries() {
        let mut p = Pending::new(64);
        let tags = PendingTags::new(2, p.buckets());
        for c in 1..=200u64 {
            assert!(!tags.may_hold(1, c), "nothing pending yet");
        }
        for c in 1..=40u64 {
            p.insert(c, 7, c as u32);
            tags.update(1, &p, c);
        }
        // Every pending call is seen (no false "absent"), in its shard only.
        for c in 1..=40u64 {
            if p.get(c).is_some() {
                assert!(tags.may_hold(1, c), "call {c}");
            }
        }
        assert!(
            (1..=200u64).all(|c| !tags.may_hold(0, c)),
            "the other shard is clear"
        );
        // Removed calls clear their bit unless a bucket neighbour shares it.
        for c in 1..=40u64 {
            p.remove(c);
            tags.update(1, &p, c);
        }
        assert!(
            (1..=200u64).all(|c| !tags.may_hold(1, c)),
            "all clear again"
        );
    }
}
