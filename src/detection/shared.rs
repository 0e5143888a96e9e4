//! The merge seam for counters shared between nodes ([`CounterDelta`]).
//!
//! Behind a load balancer each node sees 1/N of a campaign. With `detection.redis` set, the
//! detector accumulates, per tracked caller, what it observed since the last drain; the
//! Redis task (outside the core) drains them every `redis_flush_interval`
//! ([`crate::detection::Detector::drain_deltas`]), pushes them (pipelined) with the node's
//! id, reads the other nodes' deltas since its last read, and hands those to
//! [`crate::detection::Detector::merge_remote`], which adds them to the local features as
//! if observed now. Deltas are increments, so merging is addition (and OR for the
//! distinct-callee map): no node double-counts, no totals need subtracting, and a node
//! that cannot reach Redis simply carries on with its local counts.
//!
//! A suggested layout: one Redis stream `fraudwall:detection` (`XADD … MAXLEN ~ 100000 * node
//! <id> d <json array>`), read with `XREAD` from the last id seen, skipping the node's own
//! entries.

use crate::numbers::E164;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What one node observed from one caller since its last drain. Small and serde-able (JSON:
/// about 150 bytes). Counts saturate at `u16::MAX` per delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterDelta {
    /// The caller, `+` and digits.
    #[serde(serialize_with = "ser_e164", deserialize_with = "de_e164")]
    pub caller: E164,
    /// INVITEs (attempts).
    pub calls: u32,
    /// The distinct-callee map bits set by those calls (128 bits as two words).
    pub callees: [u64; 2],
    /// Attempts that ended (answered, cancelled, failed).
    pub ended: u32,
    /// Of those, answered.
    pub answered: u32,
    /// Of those, no conversation longer than `short_call`.
    pub short: u32,
    /// Of those, cancelled within `one_ring`.
    pub one_ring: u32,
    /// Calls one sequential step from the previous callee.
    pub sequential: u32,
}

impl CounterDelta {
    pub(crate) fn callee_bits(&self) -> u128 {
        (u128::from(self.callees[0]) << 64) | u128::from(self.callees[1])
    }

    pub(crate) fn split_bits(bits: u128) -> [u64; 2] {
        [(bits >> 64) as u64, bits as u64]
    }
}

fn ser_e164<S: Serializer>(n: &E164, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}

fn de_e164<'de, D: Deserializer<'de>>(d: D) -> Result<E164, D::Error> {
    let text = String::deserialize(d)?;
    text.parse()
        .map_err(|e| serde::de::Error::custom(format!("caller {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_round_trip_as_json_and_reject_garbage() {
        let d = CounterDelta {
            caller: "+8613800000001".parse().unwrap(),
            calls: 3,
            callees: CounterDelta::split_bits(1 << 100 | 1 << 3),
            ended: 2,
            answered: 1,
            short: 2,
            one_ring: 0,
            sequential: 1,
        };
        let text = serde_json::to_string(&d).unwrap();
        assert!(text.contains("\"+8613800000001\""), "{text}");
        let back: CounterDelta = serde_json::from_str(&text).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.callee_bits(), 1 << 100 | 1 << 3);
        let bad = text.replace("+8613800000001", "+86abc");
        assert!(serde_json::from_str::<CounterDelta>(&bad).is_err());
        assert!(serde_json::from_str::<CounterDelta>("{\"caller\":\"+1\"}").is_err());
    }
}
