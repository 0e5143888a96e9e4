//! The subscriber list: what each callee chose, compiled into a memory-mapped snapshot.
//!
//! Carriers let subscribers keep a personal block list, a personal allow list (my bank's
//! number that someone reported), and a level for what the global list does to their calls
//! ("label but never block", "block everything you would label"). Kamailio's
//! `userblocklist` answers this with a database query per call; fraudwall answers it from
//! a snapshot compiled ahead, with no database on the call path.
//!
//! # Source
//!
//! CSV with a header row: `subscriber,caller,action`.
//!
//! ```text
//! subscriber,caller,action
//! +8613900000001,+8613800000001,allow    # my bank: let it through whatever the list says
//! +8613900000001,+86170*,block           # every number in the range
//! +8613900000001,*,tag                   # label, but never block or divert my calls
//! ```
//!
//! `subscriber` is a number, `caller` an exact number, a prefix (`+86170*`) or `*`; numbers
//! in national form are read by the numbering profile (`--profile`). `allow` or `block` for a
//! number or prefix is a personal entry; `allow` (opted out), `tag` or `block` for `*` is
//! the subscriber's level. A later row for the same subscriber and caller replaces an
//! earlier one. Bad rows are reported as `file:line: reason` and skipped, up to
//! `--max-errors`.
//!
//! # Snapshot
//!
//! ```text
//! header (96 bytes): magic "FWSUBS\0\x01", version, created, entries, subscribers,
//!                    body length (u64 LE each), blake3 of the body (32), reserved (8)
//! body:              an FST map
//! ```
//!
//! The FST's keys are `<subscriber digits> '/' <rest>` where `<rest>` is `#` for the level,
//! `<caller digits> '='` for an exact entry and `<caller digits> '*'` for a prefix; the value
//! is the action (1 allow, 2 tag, 3 block). A lookup walks the subscriber's digits once (a
//! callee with no entries stops there), reads the level, then walks the caller's digits,
//! noting a `*` branch at each depth and a `=` at the end: one pass, no allocation, the
//! longest entry wins and an exact entry beats a prefix of the same digits.
//!
//! The file is signed like a blocklist (`fraudwall sign`: ed25519 over the header, which
//! holds the body's hash) and checked at open; a body whose hash does not match is refused,
//! so a bad file never replaces a good list.

use crate::blocklist::{EntryKey, SignError};
use crate::numbers::E164;
use crate::policy::lists::{
    Level, PersonalAction, PersonalEntry, SubscriberAnswer, SubscriberLookup,
};
use fst::raw::{Fst, Output};
use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};

mod compile;
pub mod synth;

pub use compile::{
    compile_subscribers, SubscriberCompileError, SubscriberCompileOptions, SubscriberCompileReport,
    SubscriberRowError,
};

const MAGIC: &[u8; 8] = b"FWSUBS\0\x01";
/// Header length in bytes.
pub const HEADER_LEN: usize = 96;
const SEP: u8 = b'/';
const LEVEL: u8 = b'#';
const EXACT: u8 = b'=';
const PREFIX: u8 = b'*';
/// Longest key: 15 subscriber digits, `/`, 15 caller digits, a mark.
const MAX_KEY: usize = 32;

/// Why a subscriber snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscriberListError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not a subscriber list.
    #[error("{path}: not a fraudwall subscriber list (compile one with `fraudwall compile --kind subscribers`)")]
    NotASubscriberList {
        /// The file.
        path: PathBuf,
    },
    /// The body does not match the header's hash: truncated or altered.
    #[error("{path}: the body does not match its hash: the file is truncated or altered; recompile or fetch it again")]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// The body is not a valid FST.
    #[error("{path}: the body is not a valid index ({reason}); recompile it")]
    BadIndex {
        /// The file.
        path: PathBuf,
        /// What the FST reader said.
        reason: String,
    },
    /// The signature does not verify.
    #[error(transparent)]
    Signature(#[from] SignError),
}

/// The decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SubscriberListInfo {
    /// Snapshot version.
    pub version: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Entries (personal entries and levels).
    pub entries: u64,
    /// Distinct subscribers.
    pub subscribers: u64,
    /// File size in bytes.
    pub bytes: u64,
}

fn encode_header(info: &SubscriberListInfo, body_len: u64, hash: &[u8; 32]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    for (i, v) in [
        info.version,
        info.created,
        info.entries,
        info.subscribers,
        body_len,
    ]
    .into_iter()
    .enumerate()
    {
        h[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    h[48..80].copy_from_slice(hash);
    h
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A subscriber list snapshot, memory-mapped.
pub struct SubscriberList {
    fst: Fst<BodyMap>,
    header: [u8; HEADER_LEN],
    info: SubscriberListInfo,
}

impl std::fmt::Debug for SubscriberList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberList")
            .field("info", &self.info)
            .finish()
    }
}

/// Whether a file starts like a subscriber list (for tools that take any list).
pub fn is_subscriber_list(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && &magic == MAGIC
}

impl SubscriberList {
    /// Opens and checks a snapshot (header, body hash, index).
    pub fn open(path: impl AsRef<Path>) -> Result<SubscriberList, SubscriberListError> {
        let path = path.as_ref();
        let io = |source| SubscriberListError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the file is mapped read-only; fraudwall replaces lists by rename, never in
        // place, so the mapping's bytes do not change under it.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let not = || SubscriberListError::NotASubscriberList {
            path: path.to_path_buf(),
        };
        if map.len() < HEADER_LEN || &map[..8] != MAGIC {
            return Err(not());
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&map[..HEADER_LEN]);
        let body_len = u64_at(&header, 40);
        if body_len != (map.len() - HEADER_LEN) as u64 {
            return Err(SubscriberListError::Corrupt {
                path: path.to_path_buf(),
            });
        }
        if blake3::hash(&map[HEADER_LEN..]).as_bytes()[..] != header[48..80] {
            return Err(SubscriberListError::Corrupt {
                path: path.to_path_buf(),
            });
        }
        let info = SubscriberListInfo {
            version: u64_at(&header, 8),
            created: u64_at(&header, 16),
            entries: u64_at(&header, 24),
            subscribers: u64_at(&header, 32),
            bytes: map.len() as u64,
        };
        let fst = Fst::new(BodyMap { map }).map_err(|e| SubscriberListError::BadIndex {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(SubscriberList { fst, header, info })
    }

    /// Opens a snapshot whose `.sig` verifies against one of `keys`.
    pub fn open_signed(
        path: impl AsRef<Path>,
        keys: &crate::blocklist::sign::VerifyingKeys,
    ) -> Result<SubscriberList, SubscriberListError> {
        let list = SubscriberList::open(path.as_ref())?;
        crate::blocklist::sign::verify_file(
            &crate::blocklist::sign::sig_path(path.as_ref()),
            &list.header,
            keys,
        )?;
        Ok(list)
    }

    /// The header's facts.
    pub fn info(&self) -> SubscriberListInfo {
        self.info
    }

    /// The header bytes (what a signature covers).
    pub fn header_bytes(&self) -> &[u8] {
        &self.header
    }

    /// The answer for one subscriber and caller; see the module docs for the walk.
    pub fn answer(&self, subscriber: &E164, caller: &E164) -> SubscriberAnswer {
        let fst = &self.fst;
        let mut node = fst.root();
        let mut out = Output::zero();
        for &b in subscriber.as_bytes().iter().chain(std::iter::once(&SEP)) {
            match node.find_input(b) {
                Some(i) => {
                    let t = node.transition(i);
                    out = out.cat(t.out);
                    node = fst.node(t.addr);
                }
                None => return SubscriberAnswer::default(),
            }
        }
        let value_of = |node: fst::raw::Node<'_>, out: Output, mark: u8| {
            let i = node.find_input(mark)?;
            let t = node.transition(i);
            let end = fst.node(t.addr);
            end.is_final()
                .then(|| out.cat(t.out).cat(end.final_output()).value())
        };
        let level = value_of(node, out, LEVEL).and_then(|v| match v {
            1 => Some(Level::Allow),
            2 => Some(Level::Tag),
            3 => Some(Level::Block),
            _ => None,
        });
        let digits = caller.as_bytes();
        let mut best: Option<(usize, bool, u64)> = None;
        for (depth, &b) in digits.iter().enumerate() {
            if let Some(v) = value_of(node, out, PREFIX) {
                best = Some((depth, false, v));
            }
            match node.find_input(b) {
                Some(i) => {
                    let t = node.transition(i);
                    out = out.cat(t.out);
                    node = fst.node(t.addr);
                }
                None => {
                    return SubscriberAnswer {
                        personal: personal(digits, best),
                        level,
                    }
                }
            }
        }
        if let Some(v) = value_of(node, out, EXACT) {
            best = Some((digits.len(), true, v));
        } else if let Some(v) = value_of(node, out, PREFIX) {
            best = Some((digits.len(), false, v));
        }
        SubscriberAnswer {
            personal: personal(digits, best),
            level,
        }
    }
}

/// The personal entry for the longest match, if its action is known (a corrupt value
/// is no entry: fail open).
fn personal(digits: &[u8], best: Option<(usize, bool, u64)>) -> Option<PersonalEntry> {
    let (len, exact, v) = best?;
    let action = match v {
        1 => PersonalAction::Allow,
        3 => PersonalAction::Block,
        _ => return None,
    };
    let d = digits.get(..len)?;
    let entry = if exact {
        EntryKey::exact(d)
    } else {
        EntryKey::prefix(d)
    }?;
    Some(PersonalEntry { action, entry })
}

/// The mapped file, handed to the FST as its body (the bytes after the header).
struct BodyMap {
    map: Mmap,
}

impl AsRef<[u8]> for BodyMap {
    fn as_ref(&self) -> &[u8] {
        self.map.get(HEADER_LEN..).unwrap_or_default()
    }
}

impl SubscriberLookup for SubscriberList {
    fn version(&self) -> u64 {
        self.info.version
    }
    fn lookup(&self, subscriber: &E164, caller: &E164) -> SubscriberAnswer {
        self.answer(subscriber, caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(csv: &str) -> (tempfile::TempDir, SubscriberList, SubscriberCompileReport) {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("subs.csv");
        std::fs::write(&src, csv).expect("write");
        let out = dir.path().join("subs.fwb");
        let report = compile_subscribers(
            &[src],
            &SubscriberCompileOptions {
                version: Some(9),
                ..Default::default()
            },
            &out,
        )
        .expect("compile");
        let list = SubscriberList::open(&out).expect("open");
        (dir, list, report)
    }

    fn n(s: &str) -> E164 {
        s.parse().expect("number")
    }

    const CSV: &str = "subscriber,caller,action\n\
                       +8613900000001,+8613800000001,allow\n\
                       +8613900000001,+86170*,block\n\
                       +8613900000001,+8617012*,allow\n\
                       +8613900000001,+8617012345678,block\n\
                       +8613900000001,*,tag\n\
                       +8613900000002,*,block\n\
                       +8613900000002,*,allow\n\
                       +8613900000003,+8613800000001,block\n";

    #[test]
    fn longest_entry_wins_exact_beats_prefix_and_levels_are_separate() {
        let (_d, l, r) = compile(CSV);
        assert_eq!((r.rows, r.entries, r.subscribers), (8, 7, 3));
        assert_eq!(l.info().version, 9);
        let a = l.answer(&n("+8613900000001"), &n("+8613800000001"));
        assert_eq!(a.level, Some(Level::Tag));
        let p = a.personal.expect("entry");
        assert_eq!(
            (p.action, p.entry.to_string()),
            (PersonalAction::Allow, "+8613800000001".into())
        );
        let p = l
            .answer(&n("+8613900000001"), &n("+8617099999999"))
            .personal
            .expect("prefix");
        assert_eq!(
            (p.action, p.entry.to_string()),
            (PersonalAction::Block, "+86170*".into())
        );
        let p = l
            .answer(&n("+8613900000001"), &n("+8617012000000"))
            .personal
            .expect("longer");
        assert_eq!(
            (p.action, p.entry.to_string()),
            (PersonalAction::Allow, "+8617012*".into())
        );
        let p = l
            .answer(&n("+8613900000001"), &n("+8617012345678"))
            .personal
            .expect("exact");
        assert_eq!(p.action, PersonalAction::Block);
        // No entry, but the level; the later `*` row of subscriber 2 wins.
        let a = l.answer(&n("+8613900000001"), &n("+8618800000000"));
        assert_eq!((a.personal, a.level), (None, Some(Level::Tag)));
        let a = l.answer(&n("+8613900000002"), &n("+8613800000001"));
        assert_eq!((a.personal, a.level), (None, Some(Level::Allow)));
        // Subscriber 3 has no level; an unknown subscriber has nothing.
        let a = l.answer(&n("+8613900000003"), &n("+8613800000001"));
        assert_eq!(a.level, None);
        assert!(a.personal.is_some());
        assert_eq!(
            l.answer(&n("+8613900000009"), &n("+8613800000001")),
            SubscriberAnswer::default()
        );
        // A subscriber whose number prefixes another's is not confused with it.
        assert_eq!(
            l.answer(&n("+861390000000"), &n("+8613800000001")),
            SubscriberAnswer::default()
        );
    }

    #[test]
    fn bad_rows_are_reported_with_file_and_line_and_skipped() {
        let csv = "subscriber,caller,action\n\
                   +8613900000001,+8613800000001,tag\n\
                   nonsense\n\
                   +8613900000001,*,warn\n\
                   abc,+8613800000001,block\n\
                   +8613900000001,+8613800000001,block\n";
        let (_d, l, r) = compile(csv);
        assert_eq!(r.error_count, 4);
        let lines: Vec<_> = r
            .errors
            .iter()
            .map(|e| e.at.rsplit(':').next().unwrap_or("").to_string())
            .collect();
        assert_eq!(lines, ["2", "3", "4", "5"]);
        assert!(
            r.errors[0].reason.contains("tag is a level"),
            "{}",
            r.errors[0]
        );
        assert!(l
            .answer(&n("+8613900000001"), &n("+8613800000001"))
            .personal
            .is_some());
    }

    #[test]
    fn too_many_errors_and_a_bad_header_stop_the_compile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("s.csv");
        std::fs::write(&src, "subscriber,caller,action\nx\ny\n").expect("write");
        let opts = SubscriberCompileOptions {
            max_errors: 1,
            ..Default::default()
        };
        let e = compile_subscribers(std::slice::from_ref(&src), &opts, &dir.path().join("o"))
            .unwrap_err();
        assert!(
            matches!(e, SubscriberCompileError::TooManyErrors { count: 2, .. }),
            "{e}"
        );
        std::fs::write(&src, "number,action\n").expect("write");
        let e = compile_subscribers(&[src], &opts, &dir.path().join("o")).unwrap_err();
        assert!(e.to_string().contains(":1: the header row"), "{e}");
    }

    #[test]
    fn corrupt_truncated_or_foreign_files_are_refused() {
        let (d, _l, _r) = compile(CSV);
        let path = d.path().join("subs.fwb");
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let bad = d.path().join("bad.fwb");
        std::fs::write(&bad, &bytes).expect("write");
        assert!(matches!(
            SubscriberList::open(&bad),
            Err(SubscriberListError::Corrupt { .. })
        ));
        std::fs::write(&bad, &bytes[..bytes.len() / 2]).expect("write");
        assert!(matches!(
            SubscriberList::open(&bad),
            Err(SubscriberListError::Corrupt { .. })
        ));
        std::fs::write(&bad, b"FWSNAP").expect("write");
        let e = SubscriberList::open(&bad).unwrap_err();
        assert!(e.to_string().contains("--kind subscribers"), "{e}");
        assert!(is_subscriber_list(&path) && !is_subscriber_list(&bad));
    }
}
