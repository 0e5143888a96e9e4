//! The feed manifest: what a feed currently holds, signed by the operator.
//!
//! A feed is a directory of static files. `manifest.json` names the base snapshot and the
//! ordered deltas since that base, each with its size and blake3 hash; `manifest.json.sig`
//! is a detached ed25519 signature over the exact bytes of `manifest.json`. A node trusts
//! nothing it downloads until the manifest's signature verifies against one of its
//! configured public keys, and then trusts a snapshot file only once its size and hash match
//! the manifest.
//!
//! ```text
//! {"format":1,"feed":"carrier-x","version":42,"created":1790000000,"expires":1790604800,
//!  "base":{"name":"base-40.fwb","size":81234567,"blake3":"…64 hex…","version":40},
//!  "deltas":[{"name":"delta-41.fwb","size":2048,"blake3":"…","version":41},
//!            {"name":"delta-42.fwb","size":1024,"blake3":"…","version":42}]}
//! ```
//!
//! The signature file is one line of text, so it can be read and diffed by people:
//! `ed25519 <key id: 16 hex> <signature: 128 hex>`. The key id (the first 8 bytes of the
//! blake3 hash of the public key) only picks the key: a signature that names an unknown key
//! is refused as [`ManifestError::UnknownKey`], one whose key is known but which does not
//! verify as [`ManifestError::BadSignature`], so a log says which of the two went wrong.
//!
//! Bytes off the wire stay an [`UncheckedManifest`] until [`UncheckedManifest::verify`]
//! turns them into a [`Manifest`]: signature first, then JSON, then the structural rules in
//! [`Manifest::validate`] (safe file names, well-formed hashes, increasing versions).

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// Largest manifest accepted, in bytes: a manifest lists one base and a bounded number of
/// deltas, so anything bigger is garbage or an attack.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;

/// Longest snapshot file name accepted in a manifest.
const MAX_NAME_LEN: usize = 128;

/// A blake3 hash, printed and parsed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Hashes `bytes` (rayon-parallel above 128 KiB, where it pays).
    pub fn of(bytes: &[u8]) -> Hash {
        let mut h = blake3::Hasher::new();
        if bytes.len() > 128 * 1024 {
            h.update_rayon(bytes);
        } else {
            h.update(bytes);
        }
        Hash(*h.finalize().as_bytes())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Hash> {
        let mut out = [0u8; 32];
        hex_decode_into(s, &mut out).then_some(Hash(out))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("blake3 must be 64 hex digits"))
    }
}

/// One snapshot file named by a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// File name inside the feed directory (no path separators).
    pub name: String,
    /// Exact size in bytes.
    pub size: u64,
    /// blake3 of the whole file.
    pub blake3: Hash,
    /// The feed version this file was published as.
    pub version: u64,
}

/// A feed manifest, verified (see [`UncheckedManifest::verify`]) or about to be signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// The feed's name, for logs and `/status`.
    pub feed: String,
    /// Monotonically increasing feed version; a node refuses a lower one (rollback).
    pub version: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Expiry time, Unix seconds: past it a node warns that the feed looks frozen.
    pub expires: u64,
    /// The base snapshot.
    pub base: FileRef,
    /// Deltas since the base, oldest first; lookup consults them newest first.
    #[serde(default)]
    pub deltas: Vec<FileRef>,
}

/// Why a manifest or its signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest is {0} bytes, more than the {MAX_MANIFEST_BYTES} accepted: not a fraudwall manifest")]
    TooLarge(usize),
    /// The `.sig` file is not `ed25519 <16 hex> <128 hex>`.
    #[error("manifest signature file is malformed ({0}): expected `ed25519 <key id> <signature>`, re-run `fraudwall publish`")]
    MalformedSignature(&'static str),
    /// The signature names a key that is not configured.
    #[error("manifest is signed by key {0}, which is not one of the configured feed keys (check --feed-key)")]
    UnknownKey(String),
    /// The key is known but the signature does not verify: the manifest was altered.
    #[error(
        "manifest signature by key {0} does not verify: the manifest was altered or corrupted"
    )]
    BadSignature(String),
    /// Signed, but not valid JSON of the expected shape.
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    /// Signed and parsed, but breaks a structural rule.
    #[error("manifest is invalid: {0}")]
    Invalid(String),
}

impl ManifestError {
    /// Short reason for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ManifestError::TooLarge(_) | ManifestError::Json(_) | ManifestError::Invalid(_) => {
                "garbage"
            }
            ManifestError::MalformedSignature(_) | ManifestError::BadSignature(_) => {
                "bad_signature"
            }
            ManifestError::UnknownKey(_) => "unknown_key",
        }
    }
}

/// The 8-byte id of a public key (first bytes of its blake3 hash), as 16 hex digits.
pub fn key_id(key: &VerifyingKey) -> String {
    hex_encode(&blake3::hash(key.as_bytes()).as_bytes()[..8])
}

impl Manifest {
    /// Every file the manifest names, base first, then deltas oldest first.
    pub fn files(&self) -> impl Iterator<Item = &FileRef> {
        std::iter::once(&self.base).chain(self.deltas.iter())
    }

    /// Whether the manifest has expired at `now_unix` (Unix seconds).
    pub fn is_expired(&self, now_unix: u64) -> bool {
        now_unix >= self.expires
    }

    /// Checks the structural rules a node relies on before it builds a URL or a cache path
    /// from a name: supported format, safe file names, versions that increase from the base
    /// through the deltas to the manifest, an expiry after creation.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let bad = |m: String| Err(ManifestError::Invalid(m));
        if self.format != MANIFEST_FORMAT {
            return bad(format!(
                "format {} is not supported (this build reads {MANIFEST_FORMAT}); upgrade fraudwall",
                self.format
            ));
        }
        if self.expires <= self.created {
            return bad(format!(
                "expires ({}) is not after created ({})",
                self.expires, self.created
            ));
        }
        let mut last = None::<u64>;
        let mut names = std::collections::HashSet::new();
        for f in self.files() {
            if !is_safe_name(&f.name) {
                return bad(format!(
                    "file name {:?} is not a plain file name ([A-Za-z0-9._-], not starting with '.')",
                    f.name
                ));
            }
            if !names.insert(f.name.as_str()) {
                return bad(format!("file {:?} is listed twice", f.name));
            }
            if let Some(prev) = last {
                if f.version <= prev {
                    return bad(format!(
                        "file {:?} has version {} after version {prev}: versions must increase",
                        f.name, f.version
                    ));
                }
            }
            last = Some(f.version);
        }
        if let Some(last) = last {
            if self.version < last {
                return bad(format!(
                    "manifest version {} is older than its newest file ({last})",
                    self.version
                ));
            }
        }
        Ok(())
    }

    /// Serializes and signs: returns `(manifest.json bytes, manifest.json.sig bytes)`.
    pub fn sign(&self, key: &SigningKey) -> (Vec<u8>, Vec<u8>) {
        // Serializing a struct of strings and integers cannot fail.
        let mut body = serde_json::to_vec_pretty(self).unwrap_or_default();
        body.push(b'\n');
        let sig = sign_bytes(&body, key);
        (body, sig)
    }
}

/// Signs arbitrary bytes in the manifest signature format
/// (`ed25519 <key id> <signature>\n`).
pub fn sign_bytes(body: &[u8], key: &SigningKey) -> Vec<u8> {
    let sig = key.sign(body);
    format!(
        "ed25519 {} {}\n",
        key_id(&key.verifying_key()),
        hex_encode(&sig.to_bytes())
    )
    .into_bytes()
}

/// `true` for a plain file name a node may use in a URL and a cache path.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A manifest and its signature as received: not trusted until [`verify`](Self::verify).
#[derive(Debug, Clone)]
pub struct UncheckedManifest {
    body: Vec<u8>,
    signature: Vec<u8>,
}

impl UncheckedManifest {
    /// Wraps the bytes of `manifest.json` and `manifest.json.sig`.
    pub fn new(body: Vec<u8>, signature: Vec<u8>) -> Self {
        UncheckedManifest { body, signature }
    }

    /// The raw manifest bytes (still unchecked).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The raw signature bytes (still unchecked).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Verifies the signature against `keys`, then parses and validates the manifest.
    pub fn verify(&self, keys: &[VerifyingKey]) -> Result<Manifest, ManifestError> {
        if self.body.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(self.body.len()));
        }
        verify_bytes(&self.body, &self.signature, keys)?;
        let manifest: Manifest =
            serde_json::from_slice(&self.body).map_err(|e| ManifestError::Json(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }
}

/// Verifies `signature` (manifest signature format) over `body` against `keys`.
pub fn verify_bytes(
    body: &[u8],
    signature: &[u8],
    keys: &[VerifyingKey],
) -> Result<(), ManifestError> {
    let text = std::str::from_utf8(signature)
        .map_err(|_| ManifestError::MalformedSignature("not UTF-8"))?;
    let mut parts = text.split_ascii_whitespace();
    if parts.next() != Some("ed25519") {
        return Err(ManifestError::MalformedSignature(
            "does not start with `ed25519`",
        ));
    }
    let id = parts
        .next()
        .filter(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(ManifestError::MalformedSignature(
            "key id is not 16 hex digits",
        ))?
        .to_ascii_lowercase();
    let mut sig = [0u8; 64];
    let sig_hex = parts
        .next()
        .ok_or(ManifestError::MalformedSignature("signature missing"))?;
    if !hex_decode_into(sig_hex, &mut sig) {
        return Err(ManifestError::MalformedSignature(
            "signature is not 128 hex digits",
        ));
    }
    if parts.next().is_some() {
        return Err(ManifestError::MalformedSignature("trailing data"));
    }
    let key = keys
        .iter()
        .find(|k| key_id(k) == id)
        .ok_or_else(|| ManifestError::UnknownKey(id.clone()))?;
    key.verify(body, &Signature::from_bytes(&sig))
        .map_err(|_| ManifestError::BadSignature(id))
}

fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn hex_decode_into(s: &str, out: &mut [u8]) -> bool {
    let s = s.as_bytes();
    if s.len() != out.len() * 2 {
        return false;
    }
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let (Some(h), Some(l)) = (hex_val(pair[0]), hex_val(pair[1])) else {
            return false;
        };
        out[i] = h << 4 | l;
    }
    true
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    pub(crate) fn file(name: &str, version: u64, content: &[u8]) -> FileRef {
        FileRef {
            name: name.into(),
            size: content.len() as u64,
            blake3: Hash::of(content),
            version,
        }
    }

    pub(crate) fn manifest(version: u64, deltas: &[u64]) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            feed: "test".into(),
            version,
            created: 1_000,
            expires: 2_000,
            base: file("base-1.fwb", 1, b"base"),
            deltas: deltas
                .iter()
                .map(|v| file(&format!("delta-{v}.fwb"), *v, format!("d{v}").as_bytes()))
                .collect(),
        }
    }

    #[test]
    fn signed_manifest_round_trips() {
        let m = manifest(3, &[2, 3]);
        let (body, sig) = m.sign(&key(1));
        let got = UncheckedManifest::new(body, sig)
            .verify(&[key(9).verifying_key(), key(1).verifying_key()])
            .expect("verifies");
        assert_eq!(got, m);
        assert_eq!(got.files().count(), 3);
    }

    #[test]
    fn altered_manifest_is_a_bad_signature() {
        let (mut body, sig) = manifest(3, &[]).sign(&key(1));
        let pos = body.iter().position(|&b| b == b'3').expect("version digit");
        body[pos] = b'9';
        let err = UncheckedManifest::new(body, sig)
            .verify(&[key(1).verifying_key()])
            .unwrap_err();
        assert!(matches!(err, ManifestError::BadSignature(_)), "{err}");
        assert_eq!(err.reason(), "bad_signature");
    }

    #[test]
    fn other_key_is_unknown() {
        let (body, sig) = manifest(3, &[]).sign(&key(2));
        let err = UncheckedManifest::new(body, sig)
            .verify(&[key(1).verifying_key()])
            .unwrap_err();
        assert!(matches!(err, ManifestError::UnknownKey(_)), "{err}");
        assert_eq!(err.reason(), "unknown_key");
    }

    #[test]
    fn malformed_signature_files() {
        let (body, good) = manifest(3, &[]).sign(&key(1));
        let keys = [key(1).verifying_key()];
        let good = String::from_utf8(good).expect("utf8");
        let cases: Vec<Vec<u8>> = vec![
            vec![0xff, 0xfe],
            b"".to_vec(),
            b"rsa 0011223344556677 00".to_vec(),
            b"ed25519 zz11223344556677 00".to_vec(),
            b"ed25519 0011223344556677".to_vec(),
            good.trim_end().as_bytes()[..good.len() - 3].to_vec(),
            format!("{} extra", good.trim_end()).into_bytes(),
        ];
        for sig in cases {
            let err = UncheckedManifest::new(body.clone(), sig.clone())
                .verify(&keys)
                .unwrap_err();
            assert!(
                matches!(err, ManifestError::MalformedSignature(_)),
                "{:?}: {err}",
                String::from_utf8_lossy(&sig)
            );
        }
    }

    #[test]
    fn signed_garbage_is_refused_after_the_signature() {
        let k = key(1);
        let body = b"{\"not\": \"a manifest\"".to_vec();
        let sig = sign_bytes(&body, &k);
        let err = UncheckedManifest::new(body, sig)
            .verify(&[k.verifying_key()])
            .unwrap_err();
        assert!(matches!(err, ManifestError::Json(_)), "{err}");
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        let sig = sign_bytes(&big, &k);
        let err = UncheckedManifest::new(big, sig)
            .verify(&[k.verifying_key()])
            .unwrap_err();
        assert_eq!(err, ManifestError::TooLarge(MAX_MANIFEST_BYTES + 1));
    }

    #[test]
    fn structural_rules() {
        let ok = manifest(3, &[2, 3]);
        assert_eq!(ok.validate(), Ok(()));
        let mut m = ok.clone();
        m.base.name = "../etc/passwd".into();
        assert!(m.validate().is_err());
        let mut m = ok.clone();
        m.deltas[0].name = ".hidden".into();
        assert!(m.validate().is_err());
        let mut m = ok.clone();
        m.deltas[1].version = 2;
        assert!(m.validate().is_err());
        let mut m = ok.clone();
        m.version = 2;
        assert!(m.validate().is_err());
        let mut m = ok.clone();
        m.expires = m.created;
        assert!(m.validate().is_err());
        let mut m = ok.clone();
        m.format = 2;
        assert!(m.validate().is_err());
        let mut m = ok.clone();
        m.deltas[1].name = m.deltas[0].name.clone();
        assert!(m.validate().is_err());
        assert!(ok.is_expired(2_000) && !ok.is_expired(1_999));
    }

    #[test]
    fn hash_hex() {
        let h = Hash::of(b"abc");
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex("00"), None);
        assert_eq!(Hash::from_hex(&"g".repeat(64)), None);
        let big = vec![7u8; 300 * 1024];
        assert_eq!(Hash::of(&big).0, *blake3::hash(&big).as_bytes());
    }
}
