//! The pending-call table: call key to caller and the call's times, so that ringing,
//! answer, CANCEL, error and BYE can be put down to the caller who made the call.
//!
//! Fixed size: buckets of four 32-byte entries (two cache lines). A new call takes a free
//! entry of its bucket or the oldest one (counted as forgotten), so a flood of calls that
//! never end cannot grow it.

use super::config::DetectionConfig;
use super::sketch::{mix64, reduce};

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
        reduce(mix64(call) as u32, self.buckets) * WAYS
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

/// Bytes a configuration's pending table needs.
pub(crate) fn bytes_for(c: &DetectionConfig) -> u64 {
    u64::from(c.pending_calls) * super::PENDING_CALL_BYTES as u64
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
}
