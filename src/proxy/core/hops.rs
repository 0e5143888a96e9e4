//! Next hops: an ordered list with failover, health kept in atomics.
//!
//! The hop for a request is the first one in config order that is not marked down. Because the
//! choice depends only on health, never on the message, a retransmission, the CANCEL and the
//! ACK for a non-2xx response follow their INVITE for as long as that hop stays up.
//!
//! A hop is marked down for [`HealthConfig::down_for`] when the transport reports a send
//! error ([`super::ProxyCore::on_send_error`], e.g. ICMP port unreachable) or when
//! [`HealthConfig::max_missed`] OPTIONS probes in a row go unanswered; any answer to a probe
//! brings it back at once. Probes keep going to a down hop, so a hop that comes back is used
//! again at its first answer; without probes it comes back when `down_for` is over. When
//! every hop is down the first is used anyway: a call is never refused for want of a hop.
//!
//! Unanswered INVITEs count too, for a hop that dies without an ICMP error (a host that is
//! off): each initial INVITE sent to a hop is noted in a small fixed table of
//! [`PENDING_SLOTS`] atomics, keyed by its branch; any response on that branch clears it and
//! the hop's count of unanswered INVITEs. When the caller retransmits the INVITE (the same
//! branch) more than T1 (500 ms) after it went to a hop that has not answered, that hop has
//! one more unanswered INVITE; `max_missed` in a row mark it down, and that very
//! retransmission already goes to the next hop. Under load a dead hop is thus found within
//! T1 plus a few calls. The table is bounded: a slot reused by another INVITE only loses one
//! observation, never state.
//!
//! Only the destination's failures count (the transports tell ours, such as a datagram too
//! big to send, from the hop's): a sender cannot steer traffic off a healthy hop.
//!
//! Time is passed in ([`Instant`]) and kept as milliseconds since the first instant seen, so
//! the state is a few atomics per hop, shared by every transport thread without a lock.

use super::config::{HealthConfig, NextHop};
use crate::proxy::Transport;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Slots in the table of INVITEs awaiting a first response.
pub(crate) const PENDING_SLOTS: usize = 1024;
/// RFC 3261 T1: a retransmission later than this after the first send, with no response,
/// counts as unanswered.
const T1_MS: u64 = 500;
/// Bits of a slot holding the time (milliseconds, wrapping every 4.6 hours).
const TIME_BITS: u32 = 24;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

/// The health of one hop.
#[derive(Debug)]
struct HopState {
    hop: NextHop,
    /// Milliseconds (see [`Hops::ms`]) until which the hop is down; 0: up.
    down_until: AtomicU64,
    /// Probes sent since the last answer.
    missed: AtomicU32,
    /// When the next probe is due.
    next_probe: AtomicU64,
    /// Sequence number of the last probe, for its CSeq.
    probe_seq: AtomicU32,
    /// INVITEs retransmitted past T1 without an answer since the last response.
    unanswered: AtomicU32,
}

/// The hop list and its health.
#[derive(Debug)]
pub(crate) struct Hops {
    hops: Box<[HopState]>,
    epoch: OnceLock<Instant>,
    health: HealthConfig,
    /// INVITEs awaiting a first response: key (32 bits) | hop (8 bits) | time (24 bits); 0 empty.
    pending: Box<[AtomicU64]>,
}

/// A probe to send: which hop, and its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) index: usize,
    pub(crate) hop: NextHop,
    pub(crate) seq: u32,
}

impl Hops {
    pub(crate) fn new(hops: &[NextHop], health: HealthConfig) -> Hops {
        Hops {
            hops: hops
                .iter()
                .map(|&hop| HopState {
                    hop,
                    down_until: AtomicU64::new(0),
                    missed: AtomicU32::new(0),
                    next_probe: AtomicU64::new(0),
                    probe_seq: AtomicU32::new(0),
                    unanswered: AtomicU32::new(0),
                })
                .collect(),
            epoch: OnceLock::new(),
            health,
            pending: (0..PENDING_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot(&self, key: u64) -> (&AtomicU64, u64) {
        let tag = (key >> 32) | 1; // never 0, so a used slot is never "empty"
        (&self.pending[(key as usize) % PENDING_SLOTS], tag)
    }

    /// An initial INVITE with branch `key` arrived: if it is a retransmission of one sent to
    /// a hop more than T1 ago and still unanswered, that hop has one more unanswered INVITE
    /// (`max_missed` in a row mark it down). Call before [`Hops::select`].
    pub(crate) fn invite_arrived(&self, key: u64, now: Instant) {
        let (slot, tag) = self.slot(key);
        let v = slot.load(Ordering::Relaxed);
        if v >> 32 != tag {
            return;
        }
        let t = self.ms(now);
        if (t.wrapping_sub(v) & TIME_MASK) < T1_MS {
            return;
        }
        // Counted once per send; the slot is noted again when the INVITE is forwarded.
        if slot
            .compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let index = ((v >> TIME_BITS) & 0xff) as usize;
        if let Some(h) = self.hops.get(index) {
            let n = h.unanswered.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= self.health.max_missed.max(1) {
                h.unanswered.store(0, Ordering::Relaxed);
                h.down_until.store(
                    t + (self.health.down_for.as_millis() as u64),
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// An initial INVITE with branch `key` was sent to hop `index`: noted until answered.
    pub(crate) fn invite_sent(&self, key: u64, index: usize, now: Instant) {
        let (slot, tag) = self.slot(key);
        if slot.load(Ordering::Relaxed) >> 32 == tag {
            return; // already noted: keep the first send's time
        }
        let v = (tag << 32) | ((index as u64 & 0xff) << TIME_BITS) | (self.ms(now) & TIME_MASK);
        slot.store(v, Ordering::Relaxed);
    }

    /// A response on branch `key` came back: the hop it was sent to answers.
    pub(crate) fn response_seen(&self, key: u64) {
        let (slot, tag) = self.slot(key);
        let v = slot.load(Ordering::Relaxed);
        if v >> 32 != tag {
            return;
        }
        let _ = slot.compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed);
        if let Some(h) = self.hops.get(((v >> TIME_BITS) & 0xff) as usize) {
            h.unanswered.store(0, Ordering::Relaxed);
        }
    }

    /// Milliseconds since the first instant seen, plus one (so 0 never means "now").
    fn ms(&self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_init(|| now);
        now.saturating_duration_since(epoch).as_millis() as u64 + 1
    }

    /// The hop to use now.
    #[cfg(test)]
    pub(crate) fn select(&self, now: Instant) -> NextHop {
        self.select_index(now).1
    }

    /// The hop to use now, with its index in config order.
    pub(crate) fn select_index(&self, now: Instant) -> (usize, NextHop) {
        let t = self.ms(now);
        self.hops
            .iter()
            .enumerate()
            .find(|(_, h)| h.down_until.load(Ordering::Relaxed) <= t)
            .or(self.hops.first().map(|h| (0, h)))
            .map(|(i, h)| (i, h.hop))
            // `CoreConfig::compile` refuses an empty list; this default is never reached.
            .unwrap_or((
                0,
                NextHop {
                    address: SocketAddr::from(([127, 0, 0, 1], 5080)),
                    transport: Transport::Udp,
                },
            ))
    }

    /// Whether the hop at `index` is up now.
    pub(crate) fn is_up(&self, index: usize, now: Instant) -> bool {
        let t = self.ms(now);
        self.hops
            .get(index)
            .is_some_and(|h| h.down_until.load(Ordering::Relaxed) <= t)
    }

    /// Marks every hop at `destination` (over `transport`) down; returns how many matched.
    pub(crate) fn send_error(
        &self,
        destination: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> usize {
        let until = self.ms(now) + (self.health.down_for.as_millis() as u64);
        let mut n = 0;
        for h in self.hops.iter() {
            if h.hop.address == destination && h.hop.transport == transport {
                h.down_until.store(until, Ordering::Relaxed);
                n += 1;
            }
        }
        n
    }

    /// A probe answer from hop `index`: it is up.
    pub(crate) fn answered(&self, index: usize) {
        if let Some(h) = self.hops.get(index) {
            h.missed.store(0, Ordering::Relaxed);
            h.down_until.store(0, Ordering::Relaxed);
        }
    }

    /// The probes due now. Each due hop's clock is advanced by a compare-exchange, so two
    /// threads polling at once never send the same probe twice. A hop with `max_missed`
    /// probes outstanding is marked down.
    pub(crate) fn due_probes(&self, now: Instant, mut emit: impl FnMut(Probe)) {
        let interval = self.health.probe_interval.as_millis() as u64;
        if interval == 0 {
            return;
        }
        let t = self.ms(now);
        for (index, h) in self.hops.iter().enumerate() {
            let due = h.next_probe.load(Ordering::Relaxed);
            if due > t
                || h.next_probe
                    .compare_exchange(due, t + interval, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let missed = h.missed.fetch_add(1, Ordering::Relaxed);
            if missed >= self.health.max_missed {
                h.down_until.store(
                    t + (self.health.down_for.as_millis() as u64),
                    Ordering::Relaxed,
                );
            }
            let seq = h.probe_seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            emit(Probe {
                index,
                hop: h.hop,
                seq,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn two() -> Hops {
        Hops::new(
            &[
                NextHop {
                    address: "10.0.0.1:5060".parse().unwrap(),
                    transport: Transport::Udp,
                },
                NextHop {
                    address: "10.0.0.2:5060".parse().unwrap(),
                    transport: Transport::Udp,
                },
            ],
            HealthConfig {
                probe_interval: Duration::from_secs(1),
                max_missed: 2,
                down_for: Duration::from_secs(10),
            },
        )
    }

    #[test]
    fn first_up_hop_and_failover_on_send_error() {
        let h = two();
        let t0 = Instant::now();
        assert_eq!(h.select(t0).address.port(), 5060);
        assert_eq!(h.select(t0).address, "10.0.0.1:5060".parse().unwrap());
        assert_eq!(
            h.send_error("10.0.0.1:5060".parse().unwrap(), Transport::Udp, t0),
            1
        );
        assert_eq!(h.select(t0).address, "10.0.0.2:5060".parse().unwrap());
        // Still down after 5 s, back after 10 s.
        assert_eq!(
            h.select(t0 + Duration::from_secs(5)).address,
            "10.0.0.2:5060".parse().unwrap()
        );
        assert_eq!(
            h.select(t0 + Duration::from_secs(11)).address,
            "10.0.0.1:5060".parse().unwrap()
        );
        // A send error for an unknown address or another transport changes nothing.
        assert_eq!(
            h.send_error("10.0.0.1:5060".parse().unwrap(), Transport::Tcp, t0),
            0
        );
    }

    #[test]
    fn unanswered_retransmissions_mark_down_and_a_response_resets() {
        let h = two();
        let t0 = Instant::now();
        let late = t0 + Duration::from_millis(600);
        // One call answered: nothing counted.
        h.invite_sent(1 << 40, 0, t0);
        h.response_seen(1 << 40);
        h.invite_arrived(1 << 40, late);
        // A retransmission within T1: not counted.
        h.invite_sent(2 << 40, 0, t0);
        h.invite_arrived(2 << 40, t0 + Duration::from_millis(100));
        assert!(h.is_up(0, late));
        // Two calls retransmitted past T1, unanswered (max_missed = 2): down.
        h.invite_arrived(2 << 40, late);
        assert!(h.is_up(0, late));
        h.invite_sent(3 << 40, 0, t0);
        h.invite_arrived(3 << 40, late);
        assert!(!h.is_up(0, late));
        assert_eq!(h.select(late).address, "10.0.0.2:5060".parse().unwrap());
        // A response in between resets the count.
        let h = two();
        h.invite_sent(4 << 40, 0, t0);
        h.invite_arrived(4 << 40, late);
        h.invite_sent(5 << 40, 0, t0);
        h.response_seen(5 << 40);
        h.invite_sent(6 << 40, 0, t0);
        h.invite_arrived(6 << 40, late);
        assert!(h.is_up(0, late));
    }

    #[test]
    fn all_down_uses_the_first() {
        let h = two();
        let t0 = Instant::now();
        h.send_error("10.0.0.1:5060".parse().unwrap(), Transport::Udp, t0);
        h.send_error("10.0.0.2:5060".parse().unwrap(), Transport::Udp, t0);
        assert_eq!(h.select(t0).address, "10.0.0.1:5060".parse().unwrap());
    }

    #[test]
    fn missed_probes_mark_down_and_an_answer_brings_back() {
        let h = two();
        let t0 = Instant::now();
        let mut probes = Vec::new();
        for s in 0..3 {
            h.due_probes(t0 + Duration::from_secs(s), |p| probes.push(p));
        }
        // Twice 2 hops in 3 polls 1 s apart? Every poll is due: 3 polls x 2 hops.
        assert_eq!(probes.len(), 6);
        assert_eq!(probes[4].seq, 3);
        // Third probe found 2 outstanding: both hops down.
        assert!(!h.is_up(0, t0 + Duration::from_secs(2)));
        h.answered(0);
        assert!(h.is_up(0, t0 + Duration::from_secs(2)));
        assert!(!h.is_up(1, t0 + Duration::from_secs(2)));
        // Not due again within the interval.
        let mut more = 0;
        h.due_probes(t0 + Duration::from_millis(2500), |_| more += 1);
        assert_eq!(more, 0);
    }
}
