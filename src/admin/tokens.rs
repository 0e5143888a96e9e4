//! The admin bearer tokens (`admin.tokens_file`): who may call a state-changing endpoint.
//!
//! # The file
//!
//! One token per line; leading and trailing whitespace is ignored, and so are blank lines and
//! lines starting with `#`. A token is at least [`MIN_TOKEN_LEN`] characters of the RFC 6750
//! `b64token` alphabet (letters, digits, `-._~+/`, trailing `=`), so `openssl rand -hex 32`
//! makes a good one:
//!
//! ```text
//! # fraudwall admin tokens: one per line. Rotate by adding the new one, then removing the old.
//! 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! ```
//!
//! A client sends it as `Authorization: Bearer <token>`.
//!
//! # Rotation
//!
//! [`TokenFile::check`] looks at the file's modification time, size and inode at most once a
//! second and rereads it when one changed, so a token added or removed takes effect within a
//! second, without a restart. Replace the file by renaming a new one over it (as editors
//! and `mv` do) so it is never read half written.
//!
//! A file that becomes unreadable or malformed while running fails closed: every token is
//! refused until the file is fixed (logged, and counted as `tokens_file_error`). Keeping the
//! old tokens instead would keep a token the operator was trying to revoke.
//!
//! # Secrets
//!
//! Tokens are kept only as BLAKE3 hashes, compared in constant time against every entry (no
//! early exit, no length leak), and never logged: errors name the line, not its text.

use crate::file_stamp::FileStamp;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shortest token accepted in the file.
pub const MIN_TOKEN_LEN: usize = 16;

/// How often the file is checked for a change, at most.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Why a tokens file cannot be used. The messages never quote a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read admin tokens file {path}: {reason} (create it with one token per line, e.g. `openssl rand -hex 32 > {path}`)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error's text.
        reason: String,
    },
    /// A line is not a usable token.
    #[error("admin tokens file {path}, line {line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it (never its text).
        reason: &'static str,
    },
    /// No token in the file: nobody could use the state-changing endpoints.
    #[error("admin tokens file {path} holds no token (one per line; `#` starts a comment)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Why a presented token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No token was presented (or not as `Authorization: Bearer ...`).
    Missing,
    /// A token was presented that is not in the file.
    Invalid,
    /// The file is unreadable or malformed: nothing is accepted until it is fixed.
    FileError,
}

/// Parses the text of a tokens file into the hashes of its tokens.
pub fn parse_tokens(path: &Path, text: &str) -> Result<Vec<blake3::Hash>, TokenFileError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let token = line.trim();
        if token.is_empty() || token.starts_with('#') {
            continue;
        }
        let bad = |reason| TokenFileError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        if token.len() < MIN_TOKEN_LEN {
            return Err(bad(
                "token shorter than 16 characters (make one with `openssl rand -hex 32`)",
            ));
        }
        if !is_b64token(token) {
            return Err(bad(
                "not a bearer token: only letters, digits, -._~+/ and trailing = are allowed, one token per line",
            ));
        }
        out.push(blake3::hash(token.as_bytes()));
    }
    if out.is_empty() {
        return Err(TokenFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// Reads and parses a tokens file.
pub fn read_tokens(path: &Path) -> Result<Vec<blake3::Hash>, TokenFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenFileError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_tokens(path, &text)
}

struct Loaded {
    /// `Err`: the last read failed; everything is refused.
    tokens: Result<Vec<blake3::Hash>, TokenFileError>,
    stamp: Option<FileStamp>,
    checked: Instant,
}

/// The tokens of `admin.tokens_file`, reread when the file changes (see the module docs).
pub struct TokenFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hashes stay out of debug output too.
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl TokenFile {
    /// Reads the file; an unreadable, malformed or empty file is an error (at start, the
    /// operator should hear about it at once).
    pub fn open(path: &Path, now: Instant) -> Result<TokenFile, TokenFileError> {
        let stamp = FileStamp::of(path);
        let tokens = read_tokens(path)?;
        Ok(TokenFile {
            path: path.to_path_buf(),
            loaded: Mutex::new(Loaded {
                tokens: Ok(tokens),
                stamp,
                checked: now,
            }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `presented` (the token text after `Bearer `) is in the file, rereading the
    /// file first if it changed and it was last checked [`RECHECK`] or more before `now`.
    pub fn check(&self, presented: &[u8], now: Instant) -> Result<(), TokenRefusal> {
        let Ok(mut l) = self.loaded.lock() else {
            return Err(TokenRefusal::FileError);
        };
        if now.saturating_duration_since(l.checked) >= RECHECK {
            l.checked = now;
            let s = FileStamp::of(&self.path);
            if s != l.stamp || s.is_none() {
                l.stamp = s;
                l.tokens = read_tokens(&self.path);
                match &l.tokens {
                    Ok(t) => tracing::info!(
                        "admin tokens file {} reread: {} token(s)",
                        self.path.display(),
                        t.len()
                    ),
                    Err(e) => tracing::error!("{e}; state-changing admin requests are refused"),
                }
            }
        }
        let tokens = l.tokens.as_ref().map_err(|_| TokenRefusal::FileError)?;
        if presented.is_empty() {
            return Err(TokenRefusal::Missing);
        }
        let h = blake3::hash(presented);
        // Every entry is compared (constant-time each), with no early exit.
        let found = tokens.iter().fold(false, |found, t| found | (*t == h));
        if found {
            Ok(())
        } else {
            Err(TokenRefusal::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn parses_tokens_comments_and_blank_lines() {
        let p = Path::new("t");
        let text = format!("# admin tokens\n\n  {A}  \n\t# old: {B}\n{B}==\r\n");
        let t = parse_tokens(p, &text).unwrap();
        assert_eq!(
            t,
            vec![
                blake3::hash(A.as_bytes()),
                blake3::hash(format!("{B}==").as_bytes())
            ]
        );
    }

    #[test]
    fn refuses_bad_lines_by_number_without_quoting_them() {
        let p = Path::new("/etc/fw.tokens");
        let cases = [
            (format!("{A}\nshort-secret\n"), 2),
            (format!("{A} {B}\n"), 1),
            (format!("# c\n{A}\"\n"), 2),
            (format!("{A}\n==================\n"), 2),
        ];
        for (text, line) in cases {
            let e = parse_tokens(p, &text).unwrap_err();
            assert!(
                matches!(&e, TokenFileError::Line { line: l, .. } if *l == line),
                "{text:?}: {e}"
            );
            let msg = e.to_string();
            assert!(!msg.contains(A) && !msg.contains("short-secret"), "{msg}");
            assert!(msg.contains("/etc/fw.tokens"), "{msg}");
        }
        assert!(matches!(
            parse_tokens(p, "# nothing\n\n"),
            Err(TokenFileError::Empty { .. })
        ));
        let e = read_tokens(Path::new("/nonexistent/fw.tokens")).unwrap_err();
        assert!(e.to_string().contains("openssl rand"), "{e}");
    }

    /// Writes `text` to `path` by renaming a new file over it (a new inode).
    fn publish(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn checks_and_rereads_at_most_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        publish(&path, &format!("{A}\n"));
        let t0 = Instant::now();
        let f = TokenFile::open(&path, t0).unwrap();
        assert_eq!(f.check(A.as_bytes(), t0), Ok(()));
        assert_eq!(f.check(B.as_bytes(), t0), Err(TokenRefusal::Invalid));
        assert_eq!(f.check(b"", t0), Err(TokenRefusal::Missing));
        // A prefix or an extension of a token is not the token.
        assert_eq!(f.check(&A.as_bytes()[..20], t0), Err(TokenRefusal::Invalid));
        assert_eq!(
            f.check(format!("{A}a").as_bytes(), t0),
            Err(TokenRefusal::Invalid)
        );

        // Rotated: not seen within the second, seen after it.
        publish(&path, &format!("{B}\n"));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(f.check(A.as_bytes(), t1), Ok(()));
        let t2 = t0 + RECHECK;
        assert_eq!(f.check(A.as_bytes(), t2), Err(TokenRefusal::Invalid));
        assert_eq!(f.check(B.as_bytes(), t2), Ok(()));

        // Broken: fails closed until fixed.
        publish(&path, "too-short\n");
        let t3 = t2 + RECHECK;
        assert_eq!(f.check(B.as_bytes(), t3), Err(TokenRefusal::FileError));
        std::fs::remove_file(&path).unwrap();
        let t4 = t3 + RECHECK;
        assert_eq!(f.check(B.as_bytes(), t4), Err(TokenRefusal::FileError));
        publish(&path, &format!("{A}\n{B}\n"));
        let t5 = t4 + RECHECK;
        assert_eq!(f.check(B.as_bytes(), t5), Ok(()));
        assert_eq!(f.check(A.as_bytes(), t5), Ok(()));
        assert!(!format!("{f:?}").contains(A));
    }
}
