//! Via branch values (RFC 3261 §16.6 step 8, §16.11), computed without keeping any state.
//!
//! A forwarded request's branch is `z9hG4bKfw` followed by 24 hex digits:
//!
//! * 16 digits of **transaction key**: a hash of the incoming top Via's branch, sent-by and
//!   transport (for an RFC 3261 branch, one starting with the magic cookie) or, for an old
//!   RFC 2543 client, of the whole top Via, the To and From tags, Call-ID, CSeq number and
//!   Request-URI. The method is left out, so a retransmission, the CANCEL and the ACK for a
//!   non-2xx response all get the branch their INVITE got, which is what lets the next hop
//!   match them to its INVITE transaction (§9.1, §17.2.3).
//! * 8 digits of **loop key**: a hash of the Request-URI as received, the From tag, Call-ID
//!   and CSeq number, the top Via left out. When a request comes back carrying one of our
//!   Vias whose loop key equals the one it would get now, it has looped (§16.3 step 4: 482);
//!   if the Request-URI changed on the way, it is a legitimate spiral and is forwarded.
//!
//! Probes the proxy sends itself carry `z9hG4bKfp` + hop index + sequence number, so their
//! answers are recognised and absorbed.
//!
//! The hash is SipHash-1-3 (the `siphasher` crate: a keyed PRF made for short inputs, about
//! 30 ns for a branch's fields, where BLAKE3 took several times that) under a fixed key: stable across nodes and
//! versions, so a retransmission handled by a sibling node still gets the same branch.
//! (Versions before this one used BLAKE3: a request retransmitted across an upgrade gets a
//! new branch once, which the next hop treats as a new transaction, as after a failover.)

/// The RFC 3261 magic cookie.
pub(crate) const COOKIE: &[u8] = b"z9hG4bK";
/// Prefix of the branches of requests this proxy forwards.
pub(crate) const FORWARD_PREFIX: &[u8] = b"z9hG4bKfw";
/// Prefix of the branches of this proxy's own probes.
pub(crate) const PROBE_PREFIX: &[u8] = b"z9hG4bKfp";
/// Length of a forwarded request's branch.
pub(crate) const FORWARD_LEN: usize = FORWARD_PREFIX.len() + 24;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The fixed key ("fraudwall via v2", as two little-endian words).
const KEY: (u64, u64) = (
    u64::from_le_bytes(*b"fraudwal"),
    u64::from_le_bytes(*b"l via v2"),
);

/// A hasher over length-prefixed fields, so `("ab","c")` and `("a","bc")` differ.
pub(crate) struct FieldHasher(SipHasher13);

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

impl FieldHasher {
    pub(crate) fn new() -> Self {
        FieldHasher(SipHasher13::new_with_keys(KEY.0, KEY.1))
    }

    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.write(&(bytes.len() as u32).to_le_bytes());
        self.0.write(bytes);
        self
    }

    pub(crate) fn finish(&self) -> [u8; 8] {
        self.0.finish().to_le_bytes()
    }
}

fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
}

/// A forwarded request's branch value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Branch([u8; FORWARD_LEN]);

impl Branch {
    /// Builds the branch from the two hashes.
    pub(crate) fn new(transaction: [u8; 8], loop_key: [u8; 8]) -> Branch {
        let mut b = [0u8; FORWARD_LEN];
        b[..FORWARD_PREFIX.len()].copy_from_slice(FORWARD_PREFIX);
        let p = FORWARD_PREFIX.len();
        hex_into(&mut b[p..p + 16], &transaction);
        hex_into(&mut b[p + 16..], &loop_key[..4]);
        Branch(b)
    }

    /// The branch text.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The loop-key digits.
    pub(crate) fn loop_part(&self) -> &[u8] {
        &self.0[FORWARD_LEN - 8..]
    }
}

impl std::fmt::Debug for Branch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// A 64-bit key of a branch value (for the table of unanswered INVITEs).
pub(crate) fn key_of(branch: &[u8]) -> u64 {
    u64::from_le_bytes(FieldHasher::new().field(branch).finish())
}

/// The key of one of our branches, as [`key_of`] its text.
pub(crate) fn key(b: &Branch) -> u64 {
    key_of(b.as_bytes())
}

/// The loop-key digits of a branch we wrote earlier, or `None` if `branch` is not ours.
pub(crate) fn loop_part_of(branch: &[u8]) -> Option<&[u8]> {
    (branch.len() == FORWARD_LEN && branch.starts_with(FORWARD_PREFIX))
        .then(|| &branch[FORWARD_LEN - 8..])
}

/// A probe branch: `z9hG4bKfp` + 4 hex digits of hop index + 8 of sequence number.
pub(crate) fn probe_branch(index: usize, seq: u32) -> [u8; 21] {
    let mut b = [0u8; 21];
    b[..9].copy_from_slice(PROBE_PREFIX);
    hex_into(&mut b[9..13], &(index as u16).to_be_bytes());
    hex_into(&mut b[13..], &seq.to_be_bytes());
    b
}

/// The hop index of a probe branch, or `None` if `branch` is not one of our probes.
pub(crate) fn probe_index(branch: &[u8]) -> Option<usize> {
    if branch.len() != 21 || !branch.starts_with(PROBE_PREFIX) {
        return None;
    }
    let digits = std::str::from_utf8(&branch[9..13]).ok()?;
    u16::from_str_radix(digits, 16).ok().map(usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_length_prefixed() {
        let a = FieldHasher::new().field(b"ab").field(b"c").finish();
        let b = FieldHasher::new().field(b"a").field(b"bc").finish();
        assert_ne!(a, b);
        let c = FieldHasher::new().field(b"ab").field(b"c").finish();
        assert_eq!(a, c);
    }

    #[test]
    fn the_branch_hash_is_pinned() {
        // The branch hash is stable across versions and nodes: a fixed value.
        // Changing it changes every branch: a retransmission across an upgrade or between
        // sibling nodes would then start a new transaction at the next hop.
        let h = FieldHasher::new().field(b"z9hG4bK776").finish();
        assert_eq!(u64::from_le_bytes(h), 17_557_333_852_154_333_721);
    }

    #[test]
    fn branch_layout() {
        let b = Branch::new([0xab; 8], [0x01, 0x02, 0x03, 0x04, 9, 9, 9, 9]);
        assert_eq!(b.as_bytes().len(), FORWARD_LEN);
        assert!(b.as_bytes().starts_with(b"z9hG4bKfwabab"));
        assert_eq!(b.loop_part(), b"01020304");
        assert_eq!(loop_part_of(b.as_bytes()), Some(&b"01020304"[..]));
        assert_eq!(loop_part_of(b"z9hG4bKother"), None);
    }

    #[test]
    fn probe_branch_round_trips() {
        let b = probe_branch(3, 77);
        assert_eq!(probe_index(&b), Some(3));
        assert_eq!(probe_index(b"z9hG4bKfw0003000000aa"), None);
        assert_eq!(probe_index(b"z9hG4bKfpzzzz00000000"), None);
    }
}
