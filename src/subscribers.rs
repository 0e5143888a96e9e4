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
//! # Snapshot (format 2)
//!
//! Sized for a carrier's whole base: 100M subscribers with two entries each take about
//! 5 bytes per entry, and a lookup reads three or four cache lines and allocates nothing.
//!
//! ```text
//! header (96 bytes)  magic "FWSUBS\0\x02", then u64 LE: version, created, entries,
//!                    subscribers, body length; blake3 of the body (32 bytes);
//!                    data length, node count (u64 LE)
//! body   data        the blocks, back to back (padded to a 64-byte line)
//!        nodes       node count × 128 bytes: the directory's second level
//!        top         node count × u64: the first key of each node
//! ```
//!
//! **Keys.** A subscriber number's key is its digits read as an integer, shifted left four
//! bits, with the digit count in those bits: keys sort as numbers do, and `+1` and `+10`
//! stay apart. Subscribers are sorted by key.
//!
//! **Directory.** Subscribers are grouped into blocks of at most 64 (fewer when their
//! entries are many: a subscriber with thousands of entries gets a block of their own), and
//! blocks into nodes of at most 16. The top level holds each node's first key (copied out at
//! open: under 1 MB at 100M subscribers, so it stays in cache); a binary search there picks
//! the node. A node is two cache lines:
//!
//! ```text
//! node   u64  data offset of its block 0
//!        u32 × 15  first key of blocks 1..15, less the node's first key (u32::MAX: none)
//!        u32 × 15  data offset of blocks 1..15, less the node's data offset
//! ```
//!
//! so one node read picks the block and its bounds. A node ends early when a key or an
//! offset would not fit its u32, so any spread of numbers is held.
//!
//! **Predicted blocks.** Carriers allocate numbers in dense ranges, so within a node a
//! key's place in the data is nearly linear in the key. At open, each node gets a guess
//! (8 bytes, kept in memory beside the top level): its first data line, and how many lines
//! before and after the line interpolated for a key (between this node's first key and line
//! and the next node's) its block can lie, checked against every block of the node. A
//! lookup then fetches the node's two lines and the predicted block lines together: one
//! memory round trip where there were two (the node, then the block). A node whose window
//! would exceed 20 lines (a gap in its numbers, a subscriber with thousands of entries) has no guess and is
//! read first, as before. The guess is only where to fetch from: the answer still comes
//! from the node and the block, so a wrong guess costs time, never a wrong answer.
//!
//! **The caller filter** (`filter.rs`). Built at open from every record and kept in memory
//! (one byte per entry: 190 MB at 100M subscribers with two entries each; the file does not
//! change), it answers [`SubscriberList::may_name`]: could any entry of any subscriber name
//! this caller? "No" is certain, and is the answer for nearly every call, so the chain
//! skips the record for it: the personal stage cannot decide, and the level matters only if
//! the global list or the behaviour rule acts on the caller, which then asks for it. A
//! probe reads one cache line whose address comes from the caller's number, fetched before
//! the global lookup ([`SubscriberList::prefetch_caller`]).
//!
//! **Blocks.** A block holds its subscribers' keys, then their records:
//!
//! ```text
//! block  u8       subscribers (1..=64)
//!        u8       reference mask: bit k set when entry kind k has a reference
//!        per set bit: u8 digit count, varint value   (the block's first entry of that kind)
//!        varint   key-section length in bytes
//!        keys     per subscriber: varint key less the previous key (not for the first,
//!                 whose key the directory gives), varint record length in bits
//!        records  bit stream, LSB first, the records back to back
//! record 2 bits   level: 0 none, 1 allow (opted out), 2 tag, 3 block
//!        entries  until the record's length: 2 bits kind (0 exact allow, 1 exact block,
//!                 2 prefix allow, 3 prefix block), 4 bits digits shared with the block's
//!                 reference for that kind, 4 bits further digits d, then those d digits as
//!                 an integer in ceil(d·log2 10) bits
//! ```
//!
//! A lookup finds the node (top level, in cache), the block (one node read), scans the key
//! section (a callee with no entries is answered there: a block miss), then decodes the one
//! record: the longest entry covering the caller wins, and an exact entry beats a prefix of
//! the same digits. Numbers in a block are neighbours, and a subscriber's entries are often
//! in the same ranges as the block's references, so most entries take 4 to 5 bytes.
//!
//! **Bad bodies.** [`SubscriberList::open`] checks the hash and the whole directory (every
//! offset inside the data, every key ascending); blocks are checked as they are read, and a
//! record that is not what the compiler writes is no answer (the call is screened as if the
//! callee had no entries: fail open), counted in [`SubscriberList::corrupt_lookups`] and
//! logged. Files of format 1 (an FST) are refused with a message to recompile them.
//!
//! The file is signed like a blocklist (`fraudwall sign`: ed25519 over the header, which
//! holds the body's hash and the layout) and checked at open; a body whose hash does not
//! match is refused, so a bad file never replaces a good list.

use crate::blocklist::{EntryKey, Load, SignError};
use crate::numbers::E164;
use crate::policy::lists::{
    Level, PersonalAction, PersonalEntry, SubscriberAnswer, SubscriberLookup,
};
use format::{Digits, Layout};
use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

mod compile;
mod filter;
mod format;
pub mod synth;

pub use compile::{
    compile_subscribers, SubscriberCompileError, SubscriberCompileOptions, SubscriberCompileReport,
    SubscriberRowError,
};

/// The magic of format 2; format 1 files start with [`MAGIC_V1`].
const MAGIC: &[u8; 8] = b"FWSUBS\0\x02";
const MAGIC_V1: &[u8; 8] = b"FWSUBS\0\x01";
/// Header length in bytes.
pub const HEADER_LEN: usize = 96;

/// Corrupt lookups of every list of this process ([`SubscriberList::corrupt_lookups_total`]).
static CORRUPT_LOOKUPS_TOTAL: AtomicU64 = AtomicU64::new(0);

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
    /// A subscriber list in a format this build does not read.
    #[error("{path}: a subscriber list in format {found}, this fraudwall reads format 2: recompile it from its CSV with `fraudwall compile --kind subscribers`")]
    OldFormat {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u8,
    },
    /// The body does not match the header's hash: truncated or altered.
    #[error("{path}: the body does not match its hash: the file is truncated or altered; recompile or fetch it again")]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// The body's directory is not what the compiler writes.
    #[error("{path}: the body is not a valid index ({reason}); recompile it")]
    BadIndex {
        /// The file.
        path: PathBuf,
        /// What is wrong.
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

/// Where the body's sections are (the header's last 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sections {
    data_len: u64,
    node_count: u64,
}

fn encode_header(
    info: &SubscriberListInfo,
    body_len: u64,
    hash: &[u8; 32],
    sections: Sections,
) -> [u8; HEADER_LEN] {
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
    h[80..88].copy_from_slice(&sections.data_len.to_le_bytes());
    h[88..96].copy_from_slice(&sections.node_count.to_le_bytes());
    h
}

fn u64_at(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A subscriber list snapshot, memory-mapped.
pub struct SubscriberList {
    map: Mmap,
    layout: Layout,
    header: [u8; HEADER_LEN],
    info: SubscriberListInfo,
    corrupt: AtomicU64,
    /// Which callers some personal entry may name ([`SubscriberList::may_name`]).
    callers: filter::CallerFilter,
}

impl std::fmt::Debug for SubscriberList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberList")
            .field("info", &self.info)
            .finish()
    }
}

/// Whether a file starts like a subscriber list, of any format (for tools that take any
/// list; [`SubscriberList::open`] says if the format is too old).
pub fn is_subscriber_list(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic[..7] == MAGIC[..7]
}

impl SubscriberList {
    /// Opens and checks a snapshot (header, body hash, directory), copied into huge pages
    /// ([`Load::HugePages`], as a blocklist: at 100M subscribers a lookup on a plain map
    /// pays a TLB miss per cache line it reads).
    pub fn open(path: impl AsRef<Path>) -> Result<SubscriberList, SubscriberListError> {
        SubscriberList::open_with(path, Load::default())
    }

    /// Like [`SubscriberList::open`], choosing how the file is loaded.
    pub fn open_with(
        path: impl AsRef<Path>,
        load: Load,
    ) -> Result<SubscriberList, SubscriberListError> {
        let path = path.as_ref();
        let io = |source| SubscriberListError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let map = match load {
            // SAFETY: the file is mapped read-only; fraudwall replaces lists by rename, never
            // in place, so the mapping's bytes do not change under it (and every read from
            // them is checked).
            Load::Map => unsafe { Mmap::map(&file) }.map_err(io)?,
            Load::HugePages => {
                let len = file.metadata().map_err(io)?.len();
                let len = usize::try_from(len).map_err(|_| {
                    io(std::io::Error::new(
                        std::io::ErrorKind::FileTooLarge,
                        "larger than this machine can address",
                    ))
                })?;
                if len == 0 {
                    return Err(SubscriberListError::NotASubscriberList {
                        path: path.to_path_buf(),
                    });
                }
                crate::blocklist::snapshot::load_anon(&file, len).map_err(io)?
            }
        };
        if map.len() >= 8 && &map[..8] == MAGIC_V1 {
            return Err(SubscriberListError::OldFormat {
                path: path.to_path_buf(),
                found: 1,
            });
        }
        if map.len() < HEADER_LEN || &map[..8] != MAGIC {
            return Err(SubscriberListError::NotASubscriberList {
                path: path.to_path_buf(),
            });
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&map[..HEADER_LEN]);
        let corrupt = || SubscriberListError::Corrupt {
            path: path.to_path_buf(),
        };
        if u64_at(&header, 40) != (map.len() - HEADER_LEN) as u64 {
            return Err(corrupt());
        }
        if blake3::Hasher::new()
            .update_rayon(&map[HEADER_LEN..])
            .finalize()
            .as_bytes()[..]
            != header[48..80]
        {
            return Err(corrupt());
        }
        let info = SubscriberListInfo {
            version: u64_at(&header, 8),
            created: u64_at(&header, 16),
            entries: u64_at(&header, 24),
            subscribers: u64_at(&header, 32),
            bytes: map.len() as u64,
        };
        let layout = Layout::check(&map[HEADER_LEN..], u64_at(&header, 80), u64_at(&header, 88))
            .map_err(|reason| SubscriberListError::BadIndex {
                path: path.to_path_buf(),
                reason,
            })?;
        #[cfg(unix)]
        if load == Load::Map {
            // Lookups land anywhere: read-ahead would only evict other pages.
            let _ = map.advise(memmap2::Advice::Random);
        }
        let callers = filter::CallerFilter::build(&layout, &map[HEADER_LEN..], info.entries);
        Ok(SubscriberList {
            map,
            layout,
            header,
            info,
            corrupt: AtomicU64::new(0),
            callers,
        })
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

    /// Lookups that met a block or record the compiler does not write (and answered
    /// nothing: fail open).
    pub fn corrupt_lookups(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// [`SubscriberList::corrupt_lookups`] summed over every list this process has opened
    /// (it never goes down when a list is replaced): `/metrics` shows it as
    /// `fraudwall_subscriber_corrupt_lookups_total`.
    pub fn corrupt_lookups_total() -> u64 {
        CORRUPT_LOOKUPS_TOTAL.load(Ordering::Relaxed)
    }

    /// Whether some subscriber's personal entry may name `caller`. `false` is certain: no
    /// entry of this list names it (exactly or by prefix), so for every subscriber the
    /// answer's personal entry is none and only the level is left. A blocked Bloom filter
    /// built at open, one cache line per probe (see the module docs).
    #[inline]
    pub fn may_name(&self, caller: &E164) -> bool {
        Digits::parse(caller.as_bytes()).is_none_or(|c| self.callers.may_name(c))
    }

    /// Starts fetching the line [`SubscriberList::may_name`] reads for `caller`.
    #[inline]
    pub fn prefetch_caller(&self, caller: &E164) {
        if let Some(c) = Digits::parse(caller.as_bytes()) {
            self.callers.prefetch(c);
        }
    }

    /// Bytes of memory the caller filter holds (beside the list itself).
    pub fn filter_bytes(&self) -> usize {
        self.callers.bytes()
    }

    /// The answer for one subscriber and caller; see the module docs for the walk.
    pub fn answer(&self, subscriber: &E164, caller: &E164) -> SubscriberAnswer {
        let (Some(sub), Some(c)) = (
            Digits::parse(subscriber.as_bytes()),
            Digits::parse(caller.as_bytes()),
        ) else {
            return SubscriberAnswer::default();
        };
        let body = self.map.get(HEADER_LEN..).unwrap_or_default();
        let key = sub.key();
        let found = self.layout.block(body, key).and_then(|b| match b {
            Some((block, first)) => format::answer_in_block(block, first, key, c),
            None => Ok(None),
        });
        let f = match found {
            Ok(Some(f)) => f,
            Ok(None) => return SubscriberAnswer::default(),
            Err(format::Odd) => {
                let n = self.corrupt.fetch_add(1, Ordering::Relaxed);
                CORRUPT_LOOKUPS_TOTAL.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    tracing::warn!(
                        subscriber = %subscriber,
                        corrupt_lookups = n + 1,
                        "subscriber list: a block is not what the compiler writes; callee's choices ignored (fail open)"
                    );
                }
                return SubscriberAnswer::default();
            }
        };
        let level = match f.level {
            1 => Some(Level::Allow),
            2 => Some(Level::Tag),
            3 => Some(Level::Block),
            _ => None,
        };
        let personal = f.entry.and_then(|(len, kind)| {
            let d = caller.as_bytes().get(..usize::from(len))?;
            let entry = if kind.exact() {
                EntryKey::exact(d)
            } else {
                EntryKey::prefix(d)
            }?;
            let action = if kind.block() {
                PersonalAction::Block
            } else {
                PersonalAction::Allow
            };
            Some(PersonalEntry { action, entry })
        });
        SubscriberAnswer { personal, level }
    }
}

impl SubscriberLookup for SubscriberList {
    fn version(&self) -> u64 {
        self.info.version
    }
    fn lookup(&self, subscriber: &E164, caller: &E164) -> SubscriberAnswer {
        self.answer(subscriber, caller)
    }
    fn may_name(&self, caller: &E164) -> bool {
        SubscriberList::may_name(self, caller)
    }
    fn prefetch_caller(&self, caller: &E164) {
        SubscriberList::prefetch_caller(self, caller)
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

    #[test]
    fn format_1_files_are_refused_with_a_recompile_hint() {
        let d = tempfile::tempdir().expect("tempdir");
        let old = d.path().join("old.fwb");
        let mut bytes = b"FWSUBS\0\x01".to_vec();
        bytes.resize(200, 0);
        std::fs::write(&old, &bytes).expect("write");
        assert!(is_subscriber_list(&old));
        let e = SubscriberList::open(&old).unwrap_err();
        assert!(matches!(e, SubscriberListError::OldFormat { found: 1, .. }));
        assert!(e.to_string().contains("recompile it"), "{e}");
    }

    #[test]
    fn an_empty_list_opens_and_answers_nothing() {
        let (_d, l, r) = compile("subscriber,caller,action\n");
        assert_eq!((r.entries, r.subscribers), (0, 0));
        assert_eq!(l.info().entries, 0);
        assert_eq!(
            l.answer(&n("+8613900000001"), &n("+8613800000001")),
            SubscriberAnswer::default()
        );
    }

    /// The reference model: the CSV's rows in a map, a later row replacing an earlier one.
    #[derive(Default)]
    struct Model {
        levels: std::collections::BTreeMap<String, Level>,
        entries: std::collections::BTreeMap<(String, String, bool), PersonalAction>,
    }

    impl Model {
        fn row(&mut self, sub: &str, caller: &str, action: &str) {
            let sub = sub.trim_start_matches('+').to_string();
            if caller == "*" {
                let l = match action {
                    "allow" => Level::Allow,
                    "tag" => Level::Tag,
                    _ => Level::Block,
                };
                self.levels.insert(sub, l);
                return;
            }
            let a = match action {
                "allow" => PersonalAction::Allow,
                _ => PersonalAction::Block,
            };
            let (digits, exact) = match caller.strip_suffix('*') {
                Some(p) => (p, false),
                None => (caller, true),
            };
            self.entries
                .insert((sub, digits.trim_start_matches('+').to_string(), exact), a);
        }

        fn answer(
            &self,
            sub: &str,
            caller: &str,
        ) -> (Option<Level>, Option<(PersonalAction, String)>) {
            let sub = sub.trim_start_matches('+');
            let caller = caller.trim_start_matches('+');
            let level = self.levels.get(sub).copied();
            let mut best: Option<(usize, bool, PersonalAction, String)> = None;
            for ((s, d, exact), a) in &self.entries {
                let hit = s == sub
                    && if *exact {
                        d == caller
                    } else {
                        caller.starts_with(d.as_str())
                    };
                let better = best
                    .as_ref()
                    .is_none_or(|(l, e, _, _)| d.len() > *l || (d.len() == *l && *exact && !e));
                if hit && better {
                    let text = if *exact {
                        format!("+{d}")
                    } else {
                        format!("+{d}*")
                    };
                    best = Some((d.len(), *exact, *a, text));
                }
            }
            (level, best.map(|(_, _, a, t)| (a, t)))
        }

        fn csv(rows: &[(String, String, String)]) -> (String, Model) {
            let mut m = Model::default();
            let mut csv = String::from("subscriber,caller,action\n");
            for (s, c, a) in rows {
                csv.push_str(&format!("{s},{c},{a}\n"));
                m.row(s, c, a);
            }
            (csv, m)
        }
    }

    fn got(
        l: &SubscriberList,
        sub: &str,
        caller: &str,
    ) -> (Option<Level>, Option<(PersonalAction, String)>) {
        let a = l.answer(&n(sub), &n(caller));
        (a.level, a.personal.map(|p| (p.action, p.entry.to_string())))
    }

    /// Thousands of subscribers: many blocks and nodes, a node cut short by the spread of
    /// the numbers (+1 to +86), numbers of every length, and one subscriber whose entries
    /// fill several blocks' worth.
    #[test]
    fn blocks_nodes_lengths_and_a_huge_record_answer_like_the_model() {
        let mut rows = Vec::new();
        // Numbers of 7 to 14 digits, from countries far apart in the key space.
        let subscriber = |li: usize, i: u64| match li {
            0 => format!("+336100{i}"),
            1 => format!("+44207946{i}"),
            2 => format!("+4930123456{i}"),
            3 => format!("+1202555{i:04}"),
            _ => format!("+8613900{i:06}"),
        };
        for li in 0..5 {
            for i in 0..1500u64 {
                let sub = subscriber(li, i);
                let caller = format!("+86170{:08}", (i * 7919 + li as u64) % 100_000_000);
                rows.push((sub.clone(), caller, "block".to_string()));
                match i % 4 {
                    0 => rows.push((sub, "*".into(), "tag".into())),
                    1 => rows.push((sub, format!("+86400{:07}", i * 31), "allow".into())),
                    2 => rows.push((sub, "+86170*".into(), "allow".into())),
                    _ => {}
                }
            }
        }
        let huge = "+8613999999999";
        for i in 0..3000u64 {
            rows.push((huge.into(), format!("+4477009{:05}", i * 3), "block".into()));
        }
        rows.push((huge.into(), "+447700*".into(), "allow".into()));
        rows.push((huge.into(), "*".into(), "block".into()));
        let (csv, model) = Model::csv(&rows);
        let (_d, l, r) = compile(&csv);
        let subscribers: std::collections::BTreeSet<_> = rows.iter().map(|r| &r.0).collect();
        assert_eq!(r.subscribers as usize, subscribers.len());
        assert!(
            l.layout.top.len() > 5,
            "several nodes: {}",
            l.layout.top.len()
        );
        for (sub, caller, _) in rows.iter().step_by(3) {
            let caller = caller.replace('*', "5555");
            assert_eq!(
                got(&l, sub, &caller),
                model.answer(sub, &caller),
                "{sub} {caller}"
            );
            assert_eq!(
                got(&l, sub, "+12025550100"),
                model.answer(sub, "+12025550100")
            );
        }
        for i in (0..9000u64).step_by(7) {
            let c = format!("+4477009{i:05}");
            assert_eq!(got(&l, huge, &c), model.answer(huge, &c), "{c}");
        }
        for missing in [
            "+1999",
            "+336101500",
            "+99",
            "+8613999999998",
            "+999999999999999",
        ] {
            assert_eq!(
                got(&l, missing, "+8617000000000"),
                (None, None),
                "{missing}"
            );
        }
        assert_eq!(l.corrupt_lookups(), 0);
    }

    /// Compiles `subs` (each with a personal block and, for one in three, a level), checks
    /// that every node's predicted window holds the block its node names for every
    /// subscriber and for the numbers just beside them, and that answers equal the model.
    /// Returns the nodes with a guess and all nodes.
    fn guesses_hold(subs: &[String], extra: &[(String, String, String)]) -> (usize, usize) {
        let mut rows: Vec<(String, String, String)> = Vec::new();
        for (i, s) in subs.iter().enumerate() {
            rows.push((
                s.clone(),
                format!("+86170{:08}", i * 7919 % 100_000_000),
                "block".into(),
            ));
            if i % 3 == 0 {
                rows.push((s.clone(), "*".into(), "tag".into()));
            }
        }
        rows.extend_from_slice(extra);
        let (csv, model) = Model::csv(&rows);
        let (_d, l, r) = compile(&csv);
        assert_eq!(r.error_count, 0, "{:?}", r.errors.first());
        let body = &l.map[HEADER_LEN..];
        let mut checked = 0;
        for s in subs.iter().chain(extra.iter().map(|r| &r.0)) {
            let key = Digits::parse(&s.as_bytes()[1..]).expect("digits").key();
            for k in [key, key - 16, key + 16, key - 1, key + 1] {
                if let Some(c) = l.layout.covers(body, k) {
                    assert!(c, "{s}: the window misses the block of key {k}");
                    checked += 1;
                }
            }
        }
        for (sub, caller, _) in rows.iter().step_by(7) {
            let caller = caller.replace('*', "5555");
            assert_eq!(got(&l, sub, &caller), model.answer(sub, &caller), "{sub}");
        }
        let (guessed, nodes) = l.layout.guessed();
        assert!(guessed == 0 || checked > 0);
        (guessed, nodes)
    }

    #[test]
    fn dense_numbers_are_predicted_in_every_node_but_the_last() {
        let subs: Vec<String> = (0..30_000u64).map(|i| format!("+86139{:08}", i)).collect();
        let (guessed, nodes) = guesses_hold(&subs, &[]);
        assert!(nodes > 20, "{nodes}");
        assert_eq!(
            guessed,
            nodes - 1,
            "dense numbers: every node but the last has a guess"
        );
    }

    #[test]
    fn the_caller_filter_names_every_entry_and_few_others() {
        // 3,000 subscribers, each blocking one of 2,000 callers and allowing a prefix.
        let mut csv = String::from("subscriber,caller,action\n");
        for i in 0..3_000u64 {
            csv.push_str(&format!(
                "+8613{:09},+86170{:08},block\n",
                i,
                (i * 7_919) % 2_000
            ));
            csv.push_str(&format!("+8613{:09},+86400{:03}*,allow\n", i, i % 50));
        }
        let (_d, l, r) = compile(&csv);
        assert_eq!(r.error_count, 0);
        // Every named caller, and every caller under a listed prefix: "maybe".
        for c in 0..2_000u64 {
            assert!(l.may_name(&n(&format!("+86170{c:08}"))), "{c}");
        }
        for p in 0..50u64 {
            assert!(l.may_name(&n(&format!("+86400{p:03}1234"))), "{p}");
        }
        // Callers no entry names: nearly all "no".
        let maybe = (0..10_000u64)
            .filter(|c| l.may_name(&n(&format!("+1202{c:07}"))))
            .count();
        assert!(maybe < 300, "{maybe} of 10,000 unnamed callers got a maybe");
        assert!(l.filter_bytes() >= 64);
    }

    #[test]
    fn gaps_clusters_mixed_lengths_and_a_huge_record_keep_windows_true() {
        // One huge gap in the middle of a node's range.
        let mut subs: Vec<String> = (0..6_000u64).map(|i| format!("+86139{:08}", i)).collect();
        subs.extend((0..6_000u64).map(|i| format!("+86139{:08}", 90_000_000 + i)));
        let (g, n) = guesses_hold(&subs, &[]);
        assert!(
            g + 3 >= n,
            "only the nodes at the gap lose their guess: {g} of {n}"
        );
        // Clustered ranges: small clusters far apart (no node is inside one: none has a
        // guess), then large ones (the nodes inside a cluster have one, those across a gap
        // none).
        let subs: Vec<String> = (0..6_000u64)
            .map(|i| format!("+86139{:08}", (i / 150) * 1_234_567 + i % 150))
            .collect();
        let (g, n) = guesses_hold(&subs, &[]);
        assert_eq!(g, 0, "{g} of {n}");
        let subs: Vec<String> = (0..12_000u64)
            .map(|i| format!("+86139{:08}", (i / 3_000) * 1_234_567 + i % 3_000))
            .collect();
        let (g, n) = guesses_hold(&subs, &[]);
        assert!(g > 0 && g < n, "{g} of {n}");
        // +1 (10 digits) and +86 (13 digits) mixed, sparse and dense.
        let mut subs: Vec<String> = (0..4_000u64).map(|i| format!("+1202555{:04}", i)).collect();
        subs.extend((0..4_000u64).map(|i| format!("+86139{:08}", i * 37)));
        subs.extend((0..2_000u64).map(|i| format!("+44207946{:04}", i * 3)));
        let (g, n) = guesses_hold(&subs, &[]);
        assert!(g > 0 && g < n, "{g} of {n}");
        // One subscriber with thousands of entries amid dense numbers.
        let subs: Vec<String> = (0..8_000u64).map(|i| format!("+86139{:08}", i)).collect();
        let huge = "+8613900004000".to_string();
        let extra: Vec<_> = (0..3_000u64)
            .map(|i| {
                (
                    huge.clone(),
                    format!("+4477009{:05}", i * 3),
                    "block".to_string(),
                )
            })
            .collect();
        let (g, n) = guesses_hold(&subs, &extra);
        assert!(
            g + 3 >= n && g < n,
            "the huge record's node has none: {g} of {n}"
        );
    }

    fn number() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        // 7 to 15 digits (valid outside +1 and +86) from a small alphabet: prefixes and
        // repeats are common.
        (
            7usize..=15,
            proptest::collection::vec(prop_oneof![Just('3'), Just('4'), Just('0')], 15),
        )
            .prop_map(|(len, d)| {
                let mut s: String = d.into_iter().take(len).collect();
                s.replace_range(..1, "3");
                format!("+{s}")
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn lookups_equal_the_reference_model(
            rows in proptest::collection::vec(
                (number(), number(), 0u8..6, 1usize..=15),
                0..300,
            ),
            probes in proptest::collection::vec((number(), number()), 40),
        ) {
            let rows: Vec<(String, String, String)> = rows
                .into_iter()
                .map(|(s, c, k, cut)| {
                    let p = &c[..(cut + 1).min(c.len())];
                    (s, c.clone(), k, p.to_string())
                })
                .map(|(s, c, k, p)| match k {
                    0 => (s, c, "allow".into()),
                    1 => (s, c, "block".into()),
                    2 => (s, format!("{p}*"), "allow".into()),
                    3 => (s, format!("{p}*"), "block".into()),
                    4 => (s, "*".into(), "tag".into()),
                    _ => (s, "*".into(), if c.len() % 2 == 0 { "allow" } else { "block" }.into()),
                })
                .collect();
            let (csv, model) = Model::csv(&rows);
            let (_d, l, r) = compile(&csv);
            proptest::prop_assert_eq!(r.error_count, 0, "{:?}", r.errors.first());
            for (s, c, _) in rows.iter().filter(|r| r.1 != "*") {
                let c = c.trim_end_matches('*');
                proptest::prop_assert_eq!(got(&l, s, c), model.answer(s, c));
            }
            for (s, c) in &probes {
                proptest::prop_assert_eq!(got(&l, s, c), model.answer(s, c));
            }
            // The caller filter's "no" is certain: no subscriber has an entry for the caller.
            let callers = rows
                .iter()
                .filter(|r| r.1 != "*")
                .map(|r| r.1.trim_end_matches('*'))
                .chain(probes.iter().map(|p| p.1.as_str()));
            for c in callers {
                if !l.may_name(&n(c)) {
                    for (s, _, _) in &rows {
                        proptest::prop_assert_eq!(model.answer(s, c).1, None, "{} {}", s, c);
                    }
                }
            }
        }

        /// Whatever the spread of the numbers (random gaps from 1 to 10^9), every guess
        /// holds its block.
        #[test]
        fn predicted_windows_hold_their_blocks_for_any_spread(
            gaps in proptest::collection::vec(
                proptest::prop_oneof![4 => 1u64..3, 2 => 1u64..200, 1 => 1u64..1_000_000_000],
                1..3_000,
            ),
        ) {
            let mut at = 0u64;
            let subs: Vec<String> = gaps
                .iter()
                .map(|g| {
                    at += g;
                    format!("+3{:013}", at)
                })
                .collect();
            let _ = guesses_hold(&subs, &[]);
        }

        /// A body altered after compiling (and re-hashed, as a careless tool would) is
        /// refused at open, or its lookups fail open; nothing panics.
        #[test]
        fn altered_bodies_are_refused_or_fail_open(
            edits in proptest::collection::vec((proptest::prelude::any::<u32>(), 1u8..=255), 1..8),
        ) {
            let (d, _l, _r) = compile(CSV);
            let path = d.path().join("subs.fwb");
            let mut bytes = std::fs::read(&path).expect("read");
            for (at, x) in edits {
                let at = HEADER_LEN + at as usize % (bytes.len() - HEADER_LEN);
                bytes[at] ^= x;
            }
            let hash = *blake3::hash(&bytes[HEADER_LEN..]).as_bytes();
            bytes[48..80].copy_from_slice(&hash);
            let bad = d.path().join("bad.fwb");
            std::fs::write(&bad, &bytes).expect("write");
            if let Ok(l) = SubscriberList::open(&bad) {
                for s in ["+8613900000001", "+8613900000002", "+8613900000003", "+1", "+999999999999999"] {
                    for c in ["+8613800000001", "+8617012345678", "+8617099999999", "+1"] {
                        let _ = l.answer(&n(s), &n(c));
                    }
                }
            }
        }
    }

    /// A damaged block (re-hashed, so it opens) answers nothing, and is counted in the list
    /// and in the process's total that `/metrics` shows.
    #[test]
    fn a_damaged_block_fails_open_and_is_counted() {
        let (d, _l, _r) = compile(CSV);
        let path = d.path().join("subs.fwb");
        let mut bytes = std::fs::read(&path).expect("read");
        // The first block's subscriber count: more than it holds, so a scan runs off its keys.
        bytes[HEADER_LEN] = 60;
        let hash = *blake3::hash(&bytes[HEADER_LEN..]).as_bytes();
        bytes[48..80].copy_from_slice(&hash);
        let bad = d.path().join("bad.fwb");
        std::fs::write(&bad, &bytes).expect("write");
        let l = SubscriberList::open(&bad).expect("the directory is intact");
        let before = SubscriberList::corrupt_lookups_total();
        assert_eq!(
            l.answer(&n("+8613900000009"), &n("+8613800000001")),
            SubscriberAnswer::default()
        );
        assert_eq!(l.corrupt_lookups(), 1);
        assert!(SubscriberList::corrupt_lookups_total() > before);
    }

    #[test]
    fn a_bad_directory_is_refused_at_open() {
        let (d, _l, _r) = compile(CSV);
        let path = d.path().join("subs.fwb");
        let good = std::fs::read(&path).expect("read");
        let bad = d.path().join("bad.fwb");
        // The layout in the header does not fill the body; then a node's offset past the data.
        let mut bytes = good.clone();
        bytes[80] ^= 1;
        std::fs::write(&bad, &bytes).expect("write");
        let e = SubscriberList::open(&bad).unwrap_err();
        assert!(matches!(e, SubscriberListError::BadIndex { .. }), "{e}");
        let mut bytes = good.clone();
        let data_len = u64::from_le_bytes(bytes[80..88].try_into().expect("8")) as usize;
        bytes[HEADER_LEN + data_len] = 9;
        let hash = *blake3::hash(&bytes[HEADER_LEN..]).as_bytes();
        bytes[48..80].copy_from_slice(&hash);
        std::fs::write(&bad, &bytes).expect("write");
        let e = SubscriberList::open(&bad).unwrap_err();
        assert!(e.to_string().contains("recompile it"), "{e}");
    }
}
