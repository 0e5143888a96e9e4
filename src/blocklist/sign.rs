//! Operator keys and detached snapshot signatures (ed25519).
//!
//! A signature covers the snapshot's header bytes, which hold the blake3 hash of the body,
//! so it authenticates the whole file while signing never rewrites the big file. It lives
//! next to the snapshot as `<file>.sig`.
//!
//! Text formats (one value per line, `#` lines are comments):
//!
//! ```text
//! <prefix>.key  (mode 0600)      <prefix>.pub                   <file>.sig
//! fraudwall-secret-key v1        fraudwall-public-key v1        fraudwall-signature v1
//! <64 hex: ed25519 seed>         <64 hex: ed25519 public key>   key <64 hex: public key>
//!                                                               sig <128 hex: signature>
//! ```
//!
//! The message signed is `"fraudwall snapshot v1\0"` followed by the header bytes (domain
//! separation: a snapshot signature can never be replayed as some other fraudwall signature).

use super::hex;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::io::Write;
use std::path::{Path, PathBuf};

const SECRET_TAG: &str = "fraudwall-secret-key v1";
const PUBLIC_TAG: &str = "fraudwall-public-key v1";
const SIG_TAG: &str = "fraudwall-signature v1";
const DOMAIN: &[u8] = b"fraudwall snapshot v1\0";

/// A set of trusted public keys.
pub type VerifyingKeys = [VerifyingKey];

/// Why a key or signature operation failed. Every variant says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// I/O on a key or signature file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No `.sig` file.
    #[error(
        "{path}: no signature file (sign the snapshot with `fraudwall sign --key OP.key FILE`)"
    )]
    Missing {
        /// The expected signature path.
        path: PathBuf,
    },
    /// A key or signature file in the wrong format.
    #[error(
        "{path}: {reason} (expected the format written by `fraudwall keygen` / `fraudwall sign`)"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// The signature does not verify under any trusted key.
    #[error("signature {path} does not match this snapshot under any trusted key (the file was changed after signing, or it was signed with another key: re-sign it or configure the right public key)")]
    Invalid {
        /// The signature file.
        path: PathBuf,
    },
    /// The OS random source failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// Refusing to overwrite.
    #[error("{path} already exists (remove it first, or choose another --output)")]
    Exists {
        /// The file.
        path: PathBuf,
    },
}

/// `<file>.sig`.
pub fn sig_path(snapshot: &Path) -> PathBuf {
    let mut s = snapshot.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SignError + '_ {
    move |source| SignError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Content lines of a text file (comments and blanks skipped).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn read_text(path: &Path) -> Result<String, SignError> {
    std::fs::read_to_string(path).map_err(io(path))
}

fn malformed(path: &Path, reason: &'static str) -> SignError {
    SignError::Malformed {
        path: path.to_path_buf(),
        reason,
    }
}

/// Generates a key pair and writes `<prefix>.key` (0600) and `<prefix>.pub`; returns the
/// public key.
pub fn keygen(prefix: &Path, overwrite: bool) -> Result<VerifyingKey, SignError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SignError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let (key_path, pub_path) = key_paths(prefix);
    for p in [&key_path, &pub_path] {
        if !overwrite && p.exists() {
            return Err(SignError::Exists { path: p.clone() });
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&key_path).map_err(io(&key_path))?;
    writeln!(f, "{SECRET_TAG}\n{}", hex::encode(&seed)).map_err(io(&key_path))?;
    f.sync_all().map_err(io(&key_path))?;
    let public = key.verifying_key();
    std::fs::write(
        &pub_path,
        format!("{PUBLIC_TAG}\n{}\n", hex::encode(public.as_bytes())),
    )
    .map_err(io(&pub_path))?;
    Ok(public)
}

/// `<prefix>.key` and `<prefix>.pub`.
pub fn key_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let mut k = prefix.as_os_str().to_owned();
    k.push(".key");
    let mut p = prefix.as_os_str().to_owned();
    p.push(".pub");
    (PathBuf::from(k), PathBuf::from(p))
}

/// Reads a secret key file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, SignError> {
    let text = read_text(path)?;
    let mut l = lines(&text);
    if l.next() != Some(SECRET_TAG) {
        return Err(malformed(path, "not a fraudwall secret key (first line)"));
    }
    let seed = l
        .next()
        .and_then(hex::decode::<32>)
        .ok_or_else(|| malformed(path, "second line is not 64 hex digits"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a public key file (or, for convenience, derives it from a secret key file).
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, SignError> {
    let text = read_text(path)?;
    let mut l = lines(&text);
    match l.next() {
        Some(PUBLIC_TAG) => {
            let b = l
                .next()
                .and_then(hex::decode::<32>)
                .ok_or_else(|| malformed(path, "second line is not 64 hex digits"))?;
            VerifyingKey::from_bytes(&b).map_err(|_| malformed(path, "not a valid ed25519 key"))
        }
        Some(SECRET_TAG) => Ok(read_signing_key(path)?.verifying_key()),
        _ => Err(malformed(path, "not a fraudwall public key (first line)")),
    }
}

fn message(header: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + header.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(header);
    m
}

/// Signs header bytes and writes the signature file (temporary file + rename).
pub fn sign_to_file(key: &SigningKey, header: &[u8], sig: &Path) -> Result<(), SignError> {
    let s = key.sign(&message(header));
    let text = format!(
        "{SIG_TAG}\nkey {}\nsig {}\n",
        hex::encode(key.verifying_key().as_bytes()),
        hex::encode(&s.to_bytes())
    );
    super::write::atomic_write(sig, text.as_bytes()).map_err(io(sig))
}

/// Verifies a signature file over header bytes against any of `keys`; returns the key used.
pub fn verify_file(
    sig: &Path,
    header: &[u8],
    keys: &VerifyingKeys,
) -> Result<VerifyingKey, SignError> {
    let text = match std::fs::read_to_string(sig) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SignError::Missing {
                path: sig.to_path_buf(),
            })
        }
        Err(e) => return Err(io(sig)(e)),
    };
    let mut l = lines(&text);
    if l.next() != Some(SIG_TAG) {
        return Err(malformed(sig, "not a fraudwall signature (first line)"));
    }
    let mut signature = None;
    for line in l {
        if let Some(h) = line.strip_prefix("sig ") {
            signature = hex::decode::<64>(h.trim()).map(|b| Signature::from_bytes(&b));
        }
    }
    let signature = signature.ok_or_else(|| malformed(sig, "no `sig <128 hex>` line"))?;
    let msg = message(header);
    keys.iter()
        .find(|k| k.verify(&msg, &signature).is_ok())
        .copied()
        .ok_or_else(|| SignError::Invalid {
            path: sig.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_sign_verify() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("op");
        let public = keygen(&prefix, false).unwrap();
        assert!(matches!(
            keygen(&prefix, false),
            Err(SignError::Exists { .. })
        ));
        let (kp, pp) = key_paths(&prefix);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&kp).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(read_verifying_key(&pp).unwrap(), public);
        let sk = read_signing_key(&kp).unwrap();
        let sig = dir.path().join("x.sig");
        sign_to_file(&sk, b"header", &sig).unwrap();
        assert_eq!(verify_file(&sig, b"header", &[public]).unwrap(), public);
        assert!(matches!(
            verify_file(&sig, b"headeR", &[public]),
            Err(SignError::Invalid { .. })
        ));
        let other = keygen(&dir.path().join("other"), false).unwrap();
        assert!(matches!(
            verify_file(&sig, b"header", &[other]),
            Err(SignError::Invalid { .. })
        ));
        assert!(matches!(
            verify_file(&dir.path().join("none.sig"), b"header", &[public]),
            Err(SignError::Missing { .. })
        ));
        std::fs::write(&sig, "garbage").unwrap();
        assert!(matches!(
            verify_file(&sig, b"header", &[public]),
            Err(SignError::Malformed { .. })
        ));
        assert!(matches!(
            read_verifying_key(&sig),
            Err(SignError::Malformed { .. })
        ));
    }
}
