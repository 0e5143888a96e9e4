//! Opening a compiled snapshot and looking numbers up in it.
//!
//! [`Snapshot::open`] maps the file (memmap2), decodes and checks the header, hashes the body
//! (blake3, on all cores) and verifies the FST checksum **before** the first lookup: a
//! corrupt FST that passed a cheap check could otherwise panic inside a lookup.
//! [`Snapshot::open_signed`] also requires a valid detached signature (`<file>.sig`).
//!
//! Memory: the file is mapped, not read; resident memory is what lookups touch (the page
//! cache shares it between processes and across a hot swap).
//!
//! ## Lookup
//!
//! One walk down the FST with the raw API, two digits per step (see [`super::key`]). At each
//! step a final node is a prefix entry covering the number so far, and the odd-digit
//! transition (`100 + next digit`) is peeked for a prefix ending on an odd digit (only at
//! lengths where the header says prefixes exist). At the end of the number's head (all but
//! its last four digits) the block mark leads to the exact entry: a leaf of a dense block
//! (one or two cache lines, see [`super::body`]) or two more FST steps for a sparse one. The walk
//! goes past the head only while longer prefixes can exist. **Longest match wins**: an exact entry
//! beats every prefix, a longer prefix beats a shorter one, so an exact `allow` carves a
//! number out of a blocked range. A prefix matches a number equal to itself (`+8617012*`
//! matches `+8617012`), but the exact entry for that number, if any, still wins.

use super::body::{self, BlockRef, Leaves};
use super::format::{Counts, Header, HeaderError, Kind};
use super::key::{EntryKey, BLOCK_MARK, ODD_BASE, TAIL_DIGITS, TERMINATOR};
use super::sign::{self, SignError, VerifyingKeys};
use super::value::PackedValue;
use super::Action;
use crate::numbers::E164;
use fst::raw::{Fst, Node};
use memmap2::Mmap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The bytes behind the FST: the mapping, from the FST's start.
struct Body {
    map: Mmap,
    start: usize,
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.start..]
    }
}

/// An open, verified snapshot. `Send + Sync`; share it behind an `Arc`/`ArcSwap`.
pub struct Snapshot {
    fst: Fst<Body>,
    /// The leaves of dense blocks, as a range of the mapping.
    leaves: Range<usize>,
    header: Header,
    header_len: usize,
    path: PathBuf,
}

/// The entry that matched a lookup, with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match<'a> {
    /// What to do with the call.
    pub action: Action,
    /// The entry's category (`""` if none).
    pub category: &'a str,
    /// Confidence, 0..=100.
    pub score: u8,
    /// Where the entry came from (`""` if none).
    pub source: &'a str,
    /// The entry that matched: exact number or prefix, displayable as `+8617012*`.
    pub entry: EntryKey,
    /// Only in a delta: this entry removes the base's entry with the same key.
    pub tombstone: bool,
}

/// What `inspect` shows; serialisable.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SnapshotInfo {
    /// Snapshot version.
    pub version: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Creation time, RFC 3339.
    pub created_rfc3339: String,
    /// Base or delta (with the base's version and hash).
    pub kind: Kind,
    /// Entries (tombstones included).
    pub entries: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// File bytes per entry.
    pub bytes_per_entry: f64,
    /// Bytes of leaves (the numbers of dense allocation blocks).
    pub leaf_bytes: u64,
    /// Bytes of FST (prefixes, sparse numbers, block heads).
    pub fst_bytes: u64,
    /// Counts per action, exact/prefix, tombstones.
    pub counts: Counts,
    /// Distinct categories.
    pub categories: usize,
    /// Distinct sources.
    pub sources: usize,
    /// Distinct values (action, score, category, source combinations).
    pub values: usize,
    /// blake3 of the header (which holds the body hash): identifies the whole file.
    pub hash: String,
    /// blake3 of the body.
    pub body_hash: String,
}

/// Why a snapshot was refused. Every variant says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A protected list where a blocklist was expected.
    #[error(
        "{0}: is a protected list, not a blocklist: pass it with --protected (lists.protected)"
    )]
    ProtectedList(PathBuf),
    /// Could not read the file.
    #[error("{path}: {source} (check the path and permissions)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Zero bytes.
    #[error("{path}: empty file, not a snapshot (recompile it with `fraudwall compile`)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Header problem.
    #[error("{path}: {source} ({hint})")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: HeaderError,
        /// How to fix it.
        hint: &'static str,
    },
    /// File shorter or longer than the header says.
    #[error("{path}: file is {actual} bytes, header says {expected} (truncated or partial copy: fetch or compile it again)")]
    Length {
        /// The file.
        path: PathBuf,
        /// Header + body length from the header.
        expected: u64,
        /// Real length.
        actual: u64,
    },
    /// Body hash mismatch.
    #[error("{path}: body hash mismatch, the file is corrupt (fetch or compile it again)")]
    BodyCorrupt {
        /// The file.
        path: PathBuf,
    },
    /// FST structure or checksum failure.
    #[error("{path}: blocklist FST is corrupt: {reason} (fetch or compile it again)")]
    Fst {
        /// The file.
        path: PathBuf,
        /// What fst reported.
        reason: String,
    },
    /// An entry decodes to nonsense (a snapshot not written by fraudwall).
    #[error("{path}: entry {index} is malformed (fetch or compile it again)")]
    BadEntry {
        /// The file.
        path: PathBuf,
        /// Which entry.
        index: u64,
    },
    /// Signature problem.
    #[error("{path}: {source}")]
    Signature {
        /// The snapshot.
        path: PathBuf,
        /// What is wrong with the signature.
        source: SignError,
    },
}

fn header_hint(e: &HeaderError) -> &'static str {
    match e {
        HeaderError::BadMagic => {
            "is this the right file? snapshots are written by `fraudwall compile`"
        }
        HeaderError::UnsupportedVersion { .. } => {
            "recompile it with this fraudwall, or upgrade fraudwall"
        }
        HeaderError::Truncated { .. } => "truncated: fetch or compile it again",
        HeaderError::Corrupt(_) => "the file is corrupt: fetch or compile it again",
    }
}

/// How [`Snapshot::open_with`] loads the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Load {
    /// Map the file (shared page cache, nothing copied). Lookups on large snapshots pay TLB
    /// misses (4 KiB pages): 447 ns against 347 ns for [`Load::HugePages`] at 86M entries.
    Map,
    /// Copy the file into anonymous memory backed by transparent huge pages (2 MiB), then
    /// verify the copy. Costs the file's size in private memory and a copy at open; gives
    /// faster lookups on large snapshots, and later changes to the file (a careless `cp`
    /// over it) can never reach the copy.
    #[default]
    HugePages,
}

/// Reads `len` bytes of `file` into anonymous memory backed by transparent huge pages
/// (2 MiB), read-only once filled ([`Load::HugePages`]; the subscriber list uses it too).
pub(crate) fn load_anon(file: &File, len: usize) -> std::io::Result<Mmap> {
    use std::io::Read;
    let mut m = memmap2::MmapOptions::new().len(len).map_anon()?;
    #[cfg(target_os = "linux")]
    let _ = m.advise(memmap2::Advice::HugePage);
    let mut f = file;
    f.read_exact(&mut m[..])?;
    m.make_read_only()
}

impl Snapshot {
    /// Loads ([`Load::default`]) and fully verifies a snapshot (header, header hash, body
    /// hash, FST checksum).
    pub fn open(path: impl AsRef<Path>) -> Result<Snapshot, SnapshotError> {
        Snapshot::open_with(path, Load::default())
    }

    /// Like [`Snapshot::open`], choosing how the file is loaded.
    pub fn open_with(path: impl AsRef<Path>, load: Load) -> Result<Snapshot, SnapshotError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| SnapshotError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        if file_len == 0 {
            return Err(SnapshotError::Empty { path });
        }
        // SAFETY (Load::Map): the map is read-only. Snapshots are written to a temporary file and renamed
        // into place, never modified in place, so the mapped bytes do not change under us;
        // everything read from them is checked before use.
        let map = match load {
            Load::Map => unsafe { Mmap::map(&file) }.map_err(io)?,
            Load::HugePages => {
                let len = usize::try_from(file_len).map_err(|_| SnapshotError::Length {
                    path: path.clone(),
                    expected: usize::MAX as u64,
                    actual: file_len,
                })?;
                load_anon(&file, len).map_err(io)?
            }
        };
        let (header, header_len) =
            Header::decode(&map).map_err(|source| SnapshotError::Header {
                hint: header_hint(&source),
                source,
                path: path.clone(),
            })?;
        let expected = header_len as u64 + header.body_len;
        if expected != file_len {
            return Err(SnapshotError::Length {
                path,
                expected,
                actual: file_len,
            });
        }
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::WillNeed);
        let body = &map[header_len..];
        // `Header::decode` checked that the FST offset lies in the body, after the padding.
        let fst_start = header_len + header.fst_offset as usize;
        let leaves = header_len + body::padding(header_len)..fst_start;
        let fst_bytes = &map[fst_start..];
        let (hash_ok, fst_check) = rayon::join(
            || {
                let mut h = blake3::Hasher::new();
                h.update_rayon(body);
                h.finalize().as_bytes() == &header.body_hash
            },
            || {
                Fst::new(fst_bytes)
                    .and_then(|f| f.verify())
                    .map_err(|e| e.to_string())
            },
        );
        if !hash_ok {
            return Err(SnapshotError::BodyCorrupt { path });
        }
        if let Err(reason) = fst_check {
            return Err(SnapshotError::Fst { path, reason });
        }
        let fst = Fst::new(Body {
            map,
            start: fst_start,
        })
        .map_err(|e| SnapshotError::Fst {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if fst.len() as u64 > header.counts.entries {
            return Err(SnapshotError::Fst {
                path,
                reason: format!(
                    "{} keys, more than the {} entries the header counts",
                    fst.len(),
                    header.counts.entries
                ),
            });
        }
        // A leaf reference or value whose category or source id lies outside the tables reads as "" (never a
        // panic); the header and body hashes make that impossible for a file we wrote.
        Ok(Snapshot {
            fst,
            leaves,
            header,
            header_len,
            path,
        })
    }

    /// Opens, verifies, and requires `<path>.sig` to be a valid signature of this file by one
    /// of `keys`.
    pub fn open_signed(
        path: impl AsRef<Path>,
        keys: &VerifyingKeys,
    ) -> Result<Snapshot, SnapshotError> {
        Snapshot::open_signed_with(path, keys, Load::default())
    }

    /// Like [`Snapshot::open_signed`], choosing how the file is loaded.
    pub fn open_signed_with(
        path: impl AsRef<Path>,
        keys: &VerifyingKeys,
        load: Load,
    ) -> Result<Snapshot, SnapshotError> {
        let snap = Snapshot::open_with(path, load)?;
        let sig_path = sign::sig_path(&snap.path);
        sign::verify_file(&sig_path, snap.header_bytes(), keys).map_err(|source| {
            SnapshotError::Signature {
                path: snap.path.clone(),
                source,
            }
        })?;
        Ok(snap)
    }

    /// The header bytes (what a signature covers).
    pub fn header_bytes(&self) -> &[u8] {
        &self.fst.as_inner().map[..self.header_len]
    }

    /// The snapshot version.
    pub fn version(&self) -> u64 {
        self.header.version
    }

    /// Base or delta.
    pub fn kind(&self) -> Kind {
        self.header.kind
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hash identifying this file: blake3 of its header (which holds the body's hash).
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(self.header_bytes()).as_bytes()
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.header.counts.entries
    }

    /// Whether the snapshot has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The source names of its entries (the header's string table).
    pub fn source_names(&self) -> &[String] {
        &self.header.sources
    }

    /// Version, counts, size and hash.
    pub fn info(&self) -> SnapshotInfo {
        let bytes = self.fst.as_inner().map.len() as u64;
        let entries = self.header.counts.entries;
        SnapshotInfo {
            version: self.header.version,
            created: self.header.created,
            created_rfc3339: humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.header.created),
            )
            .to_string(),
            kind: self.header.kind,
            entries,
            bytes,
            bytes_per_entry: if entries == 0 {
                0.0
            } else {
                (bytes as f64 / entries as f64 * 100.0).round() / 100.0
            },
            leaf_bytes: self.leaves.len() as u64,
            fst_bytes: self.header.body_len - self.header.fst_offset,
            counts: self.header.counts,
            categories: self.header.categories.len(),
            sources: self.header.sources.len(),
            values: self.header.values.len(),
            hash: super::hex::encode(&self.hash()),
            body_hash: super::hex::encode(&self.header.body_hash),
        }
    }

    /// Builds the match for an FST output (a value-table index). An index outside the table
    /// cannot come from a verified file written by fraudwall; it reads as no match.
    fn make_match(&self, output: u64, entry: EntryKey) -> Option<Match<'_>> {
        let v = PackedValue::unpack(*self.header.values.get(usize::try_from(output).ok()?)?);
        Some(Match {
            action: v.action,
            category: self
                .header
                .categories
                .get(v.category as usize)
                .map_or("", String::as_str),
            score: v.score,
            source: self
                .header
                .sources
                .get(v.source as usize)
                .map_or("", String::as_str),
            entry,
            tombstone: v.tombstone,
        })
    }

    /// The longest entry matching `number` (exact beats prefix, longer prefix beats shorter).
    /// No allocation, never panics.
    #[inline]
    pub fn lookup(&self, number: &E164) -> Option<Match<'_>> {
        let mut best = None;
        self.walk(number, |exact, len, value| best = Some((exact, len, value)));
        let (exact, len, value) = best?;
        let entry = key_of(number, exact, len)?;
        self.make_match(value, entry)
    }

    /// Every entry matching `number`, shortest prefix first and the exact entry last. A
    /// layered lookup (deltas over a base) uses this to skip tombstoned entries.
    pub fn lookup_all<'a>(&'a self, number: &E164, mut visit: impl FnMut(Match<'a>)) {
        self.walk(number, |exact, len, value| {
            if let Some(m) = key_of(number, exact, len).and_then(|e| self.make_match(value, e)) {
                visit(m);
            }
        });
    }

    fn leaves(&self) -> Leaves<'_> {
        Leaves(
            self.fst
                .as_inner()
                .map
                .get(self.leaves.clone())
                .unwrap_or(&[]),
        )
    }

    /// The walk: calls `found(exact, digits, value)` for each matching entry, shortest first
    /// and the exact entry last.
    #[inline]
    fn walk(&self, number: &E164, mut found: impl FnMut(bool, usize, u64)) {
        let fst = &self.fst;
        let prefix_lengths = self.header.prefix_lengths;
        let d = number.as_bytes();
        let n = d.len();
        // The exact entry of a long number hangs off its head; a short one ends in TERMINATOR.
        let head = n.saturating_sub(TAIL_DIGITS);
        // Whether a prefix of `k` to `n` digits may exist (bit `len` of the header's mask).
        let prefix_from = |k: usize| {
            u32::from(prefix_lengths) & ((1u32 << (n + 1)) - 1) & !((1u32 << k) - 1) != 0
        };
        // The walk needs the pair steps up to here for the exact entry.
        let exact_depth = if head == 0 { n } else { head };
        let mut exact = None;
        let mut node: Node<'_> = fst.root();
        let mut out: u64 = 0;
        let mut i = 0;
        loop {
            if i > 0 && node.is_final() {
                found(false, i, out.wrapping_add(node.final_output().value()));
            }
            if i == n {
                // Only a short number gets here with its exact entry still to find.
                if head == 0 {
                    exact = self.terminated(node, out);
                }
                break;
            }
            if head != 0 && i == head {
                exact = self.exact_after_head(node, out, &d[head..]);
            }
            let a = d[i].wrapping_sub(b'0');
            // The odd-digit transition leads to a prefix of i+1 digits, to the exact entry's
            // terminator (a short number) or block mark (an odd-length head); skip the peek
            // when none can exist.
            let odd_prefix = prefix_lengths & (1u16 << ((i + 1) & 15)) != 0;
            let ends_here = i + 1 == n && head == 0;
            let head_here = i + 1 == head;
            if odd_prefix || ends_here || head_here {
                if let Some(t) = node.find_input(ODD_BASE.wrapping_add(a)) {
                    let t = node.transition(t);
                    let odd = fst.node(t.addr);
                    let o = out.wrapping_add(t.out.value());
                    if odd.is_final() {
                        found(false, i + 1, o.wrapping_add(odd.final_output().value()));
                    }
                    if ends_here {
                        exact = self.terminated(odd, o);
                    } else if head_here {
                        exact = self.exact_after_head(odd, o, &d[head..]);
                    }
                }
            }
            // Go on while the exact entry is further down, or a longer prefix may match.
            if i + 2 > n || (i + 2 > exact_depth && !prefix_from(i + 2)) {
                break;
            }
            let b = d[i + 1].wrapping_sub(b'0');
            match node.find_input(a.wrapping_mul(10).wrapping_add(b)) {
                Some(t) => {
                    let t = node.transition(t);
                    out = out.wrapping_add(t.out.value());
                    node = fst.node(t.addr);
                    i += 2;
                }
                None => break,
            }
        }
        if let Some(v) = exact {
            found(true, n, v);
        }
    }

    /// The exact entry of a short number: the terminator transition out of `node`.
    #[inline]
    fn terminated(&self, node: Node<'_>, out: u64) -> Option<u64> {
        let t = node.transition(node.find_input(TERMINATOR)?);
        let end = self.fst.node(t.addr);
        end.is_final().then(|| {
            out.wrapping_add(t.out.value())
                .wrapping_add(end.final_output().value())
        })
    }

    /// The exact entry of a long number, from the node after its head: the block mark leads
    /// to a leaf reference (a dense block) or to the tail's two pair bytes (a sparse one).
    #[inline]
    fn exact_after_head(&self, node: Node<'_>, out: u64, tail: &[u8]) -> Option<u64> {
        let t = node.transition(node.find_input(BLOCK_MARK)?);
        let mut out = out.wrapping_add(t.out.value());
        let mut node = self.fst.node(t.addr);
        let digit = |k: usize| tail.get(k).map_or(0, |c| c.wrapping_sub(b'0'));
        let pair = |k: usize| digit(k).wrapping_mul(10).wrapping_add(digit(k + 1));
        let (hi, lo) = (pair(0), pair(2));
        if node.is_final() {
            let r = BlockRef(out.wrapping_add(node.final_output().value()));
            return self.leaves().find(r, u16::from(hi) * 100 + u16::from(lo));
        }
        for pair in [hi, lo] {
            let t = node.transition(node.find_input(pair)?);
            out = out.wrapping_add(t.out.value());
            node = self.fst.node(t.addr);
        }
        node.is_final()
            .then(|| out.wrapping_add(node.final_output().value()))
    }

    /// Every entry, in key order (for `diff`, deltas and audits).
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            snap: self,
            stream: self.fst.stream(),
            index: 0,
            head: Vec::new(),
            leaf: Vec::new(),
            next_in_leaf: 0,
        }
    }
}

fn key_of(number: &E164, exact: bool, len: usize) -> Option<EntryKey> {
    let d = number.as_bytes().get(..len)?;
    if exact {
        EntryKey::exact(d)
    } else {
        EntryKey::prefix(d)
    }
}

/// Iterator over a snapshot's entries, see [`Snapshot::entries`].
pub struct Entries<'a> {
    snap: &'a Snapshot,
    stream: fst::raw::Stream<'a>,
    index: u64,
    /// The current leaf's FST key (`head + BLOCK_MARK`) and its `(tail, value)` pairs.
    head: Vec<u8>,
    leaf: Vec<(u16, u64)>,
    next_in_leaf: usize,
}

impl<'a> Entries<'a> {
    fn bad(&self) -> SnapshotError {
        SnapshotError::BadEntry {
            path: self.snap.path.clone(),
            index: self.index,
        }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Match<'a>, SnapshotError>;
    fn next(&mut self) -> Option<Self::Item> {
        use fst::Streamer;
        let m = loop {
            if let Some(&(tail, value)) = self.leaf.get(self.next_in_leaf) {
                self.next_in_leaf += 1;
                let mut key = [0u8; 16];
                let h = self.head.len().min(14);
                key[..h].copy_from_slice(&self.head[..h]);
                key[h] = (tail / 100) as u8;
                key[h + 1] = (tail % 100) as u8;
                break EntryKey::decode(&key[..h + 2]).and_then(|k| self.snap.make_match(value, k));
            }
            let (k, v) = self.stream.next()?;
            if k.last() != Some(&BLOCK_MARK) {
                break EntryKey::decode(k).and_then(|key| self.snap.make_match(v.value(), key));
            }
            // A dense block: read its leaf, then yield its numbers one by one.
            self.head.clear();
            self.head.extend_from_slice(k);
            self.leaf.clear();
            self.next_in_leaf = 0;
            let leaves = self.snap.leaves();
            if leaves
                .entries(BlockRef(v.value()), &mut self.leaf)
                .is_none()
            {
                self.leaf.clear();
                break None;
            }
        };
        let r = m.ok_or_else(|| self.bad());
        self.index += 1;
        Some(r)
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("path", &self.path)
            .field("version", &self.header.version)
            .field("entries", &self.header.counts.entries)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn snapshot_is_send_and_sync() {
        assert_send_sync::<Snapshot>();
    }
}
