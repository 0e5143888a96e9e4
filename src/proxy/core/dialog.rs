//! Dialog proofs: how an INVITE with a To-tag shows it belongs to a dialog this proxy let
//! through (rule 7 of the module guide in [`super`]).
//!
//! A To-tag alone proves nothing: anyone can write one, and an INVITE carrying one used to
//! pass unscreened. So when the proxy Record-Routes a dialog-creating request it writes a
//! proof into its own Record-Route URI, `<sip:ADDR;lr;fwd=TOKEN>`: TOKEN is 16 hex digits of
//! SipHash-1-3, keyed with the [`DialogKey`], over the Call-ID and the caller's From-tag.
//! Both ends copy the Record-Route into their route set (RFC 3261 §12.1) and send it back as
//! the top Route of every request in the dialog. The caller's tag is the From-tag of the
//! caller's requests and the To-tag of the callee's, so a proof is checked against both.
//!
//! An INVITE with a To-tag whose top Route is ours and carries a matching token passes as
//! in-dialog, unscreened; any other is screened and routed like an initial INVITE.
//!
//! The key: `proxy.dialog_key_file` (a file of at least 16 random bytes, e.g.
//! `head -c 32 /dev/urandom`), so that every node behind a load balancer, and every restart,
//! checks the same proofs. Without it each process draws a random key: dialogs then do not
//! survive a restart (their next re-INVITE is screened like a new call).
//!
//! What a proof does not stop: a caller sees the Record-Route of its own dialogs, so it can
//! re-use its own proof for a request with the same Call-ID and tags. That request belongs
//! to a dialog the switch knows; it is not a new call.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// The URI parameter carrying the proof.
pub(crate) const PARAM: &str = "fwd";

/// Length of a proof token (hex digits).
pub(crate) const TOKEN_LEN: usize = 16;

/// The secret behind the dialog proofs. Build it from a key file's contents
/// ([`DialogKey::from_secret`]) or draw one ([`DialogKey::random`]). Its `Debug` output
/// does not show the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DialogKey([u8; 16]);

impl std::fmt::Debug for DialogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DialogKey(..)")
    }
}

impl DialogKey {
    /// The shortest secret accepted, in bytes.
    pub const MIN_SECRET: usize = 16;

    /// Derives the key from a secret (the contents of `proxy.dialog_key_file`, used as they
    /// are, at least [`MIN_SECRET`](Self::MIN_SECRET) bytes): `None` when it is shorter.
    pub fn from_secret(secret: &[u8]) -> Option<DialogKey> {
        if secret.len() < Self::MIN_SECRET {
            return None;
        }
        let k = blake3::derive_key("fraudwall dialog proof v1", secret);
        let mut key = [0u8; 16];
        key.copy_from_slice(&k[..16]);
        Some(DialogKey(key))
    }

    /// A key from the system's random source.
    pub fn random() -> Result<DialogKey, getrandom::Error> {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key)?;
        Ok(DialogKey(key))
    }

    /// The proof token of the dialog `call_id` whose caller's tag is `caller_tag`.
    pub(crate) fn token(&self, call_id: &[u8], caller_tag: &[u8]) -> [u8; TOKEN_LEN] {
        let (a, b) = self.0.split_at(8);
        let word = |s: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(s);
            u64::from_le_bytes(w)
        };
        let mut h = SipHasher13::new_with_keys(word(a), word(b));
        for field in [call_id, caller_tag] {
            h.write(&(field.len() as u32).to_le_bytes());
            h.write(field);
        }
        let digest = h.finish().to_le_bytes();
        let mut out = [0u8; TOKEN_LEN];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, byte) in digest.iter().enumerate() {
            out[2 * i] = HEX[usize::from(byte >> 4)];
            out[2 * i + 1] = HEX[usize::from(byte & 15)];
        }
        out
    }

    /// Whether `proof` (the `fwd` parameter of our Route) is the token of dialog `call_id`
    /// with the caller's tag being either `from_tag` or `to_tag`. Compared in constant time.
    pub(crate) fn verifies(
        &self,
        proof: &[u8],
        call_id: &[u8],
        from_tag: Option<&[u8]>,
        to_tag: Option<&[u8]>,
    ) -> bool {
        if proof.len() != TOKEN_LEN {
            return false;
        }
        [from_tag, to_tag].into_iter().flatten().any(|tag| {
            let t = self.token(call_id, tag);
            t.iter().zip(proof).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_verifies_from_either_side_and_only_for_its_dialog() {
        let k = DialogKey::from_secret(b"0123456789abcdef0123").unwrap();
        let t = k.token(b"call-1", b"caller");
        assert!(k.verifies(&t, b"call-1", Some(b"caller"), None));
        // The callee's requests carry the caller's tag as To-tag.
        assert!(k.verifies(&t, b"call-1", Some(b"callee"), Some(b"caller")));
        assert!(!k.verifies(&t, b"call-2", Some(b"caller"), None));
        assert!(!k.verifies(&t, b"call-1", Some(b"other"), Some(b"x")));
        assert!(!k.verifies(&t[..15], b"call-1", Some(b"caller"), None));
        // Another key, another token.
        let k2 = DialogKey::from_secret(b"another secret of 16+ bytes").unwrap();
        assert!(!k2.verifies(&t, b"call-1", Some(b"caller"), None));
        // Fields are length-prefixed.
        assert_ne!(k.token(b"ab", b"c"), k.token(b"a", b"bc"));
    }

    #[test]
    fn short_secrets_are_refused_and_debug_hides_the_key() {
        assert!(DialogKey::from_secret(b"short").is_none());
        let k = DialogKey::random().unwrap();
        assert_eq!(format!("{k:?}"), "DialogKey(..)");
        assert_ne!(k, DialogKey::random().unwrap());
    }
}
