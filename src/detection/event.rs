//! What the detector is told: one [`CallEvent`] per call-state change the proxy sees.

use crate::numbers::E164;

/// A call's identity inside the detector: a 64-bit hash of its Call-ID, so no Call-ID string
/// is ever stored. Build it with [`CallKey::of_call_id`] (the same bytes give the same key in
/// every process) or from a hash the front end already has ([`CallKey::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallKey(u64);

impl CallKey {
    /// A key from a 64-bit value (0 is reserved and mapped to 1).
    pub fn new(v: u64) -> CallKey {
        CallKey(v.max(1))
    }

    /// The key of a Call-ID's bytes (SipHash-1-3 with a fixed key: stable across nodes).
    pub fn of_call_id(call_id: &[u8]) -> CallKey {
        use std::hash::Hasher;
        let mut h = siphasher::sip::SipHasher13::new_with_keys(
            0x6672_6175_6477_616c,
            0x6465_7465_6374_0001,
        );
        h.write(call_id);
        CallKey::new(h.finish())
    }

    /// The raw value (never 0).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// One thing that happened to a call, as seen by the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallEvent {
    /// The call (from its Call-ID).
    pub call: CallKey,
    /// What happened.
    pub kind: CallEventKind,
}

/// The call-state changes the detector learns from. Events may come missing, twice or out of
/// order (a 200 without an INVITE, a CANCEL for an unknown call): they are then ignored and
/// counted ([`crate::detection::DetectorStats`]), never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEventKind {
    /// The initial INVITE: who calls whom. A retransmission (same call key while the call is
    /// pending) is not counted again.
    Invite {
        /// The screened caller identity, normalized.
        caller: E164,
        /// The callee, normalized (when the Request-URI is not a number, pass the caller's
        /// own number: the call then counts for volume but not as a distinct callee).
        callee: E164,
    },
    /// A 180 or 183: the callee's phone rings (the first one counts).
    Ringing,
    /// A 2xx to the INVITE: answered.
    Answered,
    /// A CANCEL from the caller's side: hung up before the answer.
    Cancelled,
    /// A final error response (4xx/5xx/6xx) to the INVITE: not answered (487 after a CANCEL
    /// is the same call ending and is ignored if the CANCEL was seen).
    Failed {
        /// The status code.
        status: u16,
    },
    /// A BYE (either side) of an answered call: the conversation's end (needs Record-Route).
    Bye,
}

impl CallEventKind {
    /// A low-cardinality label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            CallEventKind::Invite { .. } => "invite",
            CallEventKind::Ringing => "ringing",
            CallEventKind::Answered => "answered",
            CallEventKind::Cancelled => "cancelled",
            CallEventKind::Failed { .. } => "failed",
            CallEventKind::Bye => "bye",
        }
    }
}

/// A number's compact key: its digits read as an integer (injective, since E.164 numbers
/// never start with 0 and have at most 15 digits), never 0.
///
/// Computed with SWAR arithmetic (eight digits per 64-bit word, three multiplies each)
/// instead of a digit-by-digit loop: it runs twice per INVITE (judge and observe).
pub(crate) fn number_key(n: &E164) -> u64 {
    let len = n.len().clamp(1, 15);
    let mut b = [0u8; 16];
    b[..15].copy_from_slice(n.digit_buffer());
    // Digit values, nothing past the number (the borrow of the bytes past it only runs
    // upwards, into bytes the mask clears).
    let v = u128::from_le_bytes(b).wrapping_sub(u128::from_le_bytes([b'0'; 16]))
        & ((1u128 << (8 * len)) - 1);
    // Right-aligned in 16 digits: byte i holds digit i of the zero-padded number.
    let v = v << (8 * (16 - len));
    eight_digits(v as u64) * 100_000_000 + eight_digits((v >> 64) as u64)
}

/// The value of eight digit values, the most significant in the lowest byte.
fn eight_digits(v: u64) -> u64 {
    const MASK: u64 = 0x0000_00ff_0000_00ff;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    ((v & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((v >> 16) & MASK).wrapping_mul(MUL2)))
        >> 32
}

/// The number back from its key (`None` for 0, which no number has).
pub(crate) fn number_of_key(k: u64) -> Option<E164> {
    if k == 0 {
        return None;
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = k;
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    E164::from_digits(&buf[i..]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_keys_round_trip() {
        for s in ["+1", "+8613800000001", "+999999999999999", "+447700900123"] {
            let n: E164 = s.parse().unwrap();
            let k = number_key(&n);
            assert_ne!(k, 0);
            assert_eq!(number_of_key(k), Some(n));
        }
        assert_eq!(number_of_key(0), None);
        assert_eq!(
            number_of_key(u64::MAX),
            None,
            "20 digits is no E.164 number"
        );
    }

    #[test]
    fn number_keys_are_the_numbers_value() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 1..=15u32 {
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let lo = 10u64.pow(len - 1);
                let v = lo + x % (lo * 9);
                let n = E164::from_digits(v.to_string().as_bytes()).unwrap();
                assert_eq!(number_key(&n), v, "{v}");
            }
        }
        for s in [
            "+1",
            "+999999999999999",
            "+100000000000000",
            "+909090909090909",
        ] {
            let n: E164 = s.parse().unwrap();
            assert_eq!(number_key(&n), s[1..].parse::<u64>().unwrap());
        }
    }

    #[test]
    fn call_keys_are_stable_and_never_zero() {
        assert_eq!(CallKey::of_call_id(b"a@b"), CallKey::of_call_id(b"a@b"));
        assert_ne!(CallKey::of_call_id(b"a@b"), CallKey::of_call_id(b"a@c"));
        assert_eq!(CallKey::new(0).get(), 1);
    }
}
