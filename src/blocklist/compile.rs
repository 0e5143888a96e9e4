//! Compiling operator lists into a snapshot.
//!
//! ```no_run
//! use fraudwall::blocklist::{compile_csv_text, CompileOptions, Snapshot};
//! use fraudwall::numbers::E164;
//! let csv = "number,action,category,score,source\n+8613800000001,block,impersonation,95,police\n";
//! let out = std::path::Path::new("/tmp/list.fwb");
//! let report = compile_csv_text(csv, &CompileOptions::default(), out)?;
//! assert_eq!(report.entries, 1);
//! let snap = Snapshot::open(out)?;
//! let m = snap.lookup(&"+8613800000001".parse()?).unwrap();
//! assert_eq!(m.category, "impersonation");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Pipeline and memory
//!
//! Input is read in blocks of [`BLOCK_BYTES`], each block split at line ends and parsed on
//! every core (rayon). A row becomes one `u128` record: the encoded key in the high bits (so
//! integer order is the FST's byte order), then the key length, then the resolution payload.
//! Records collect in a buffer of at most `memory_budget` bytes; a full buffer is sorted
//! (`par_sort_unstable`) and spilled to a temporary run file, and the runs are k-way merged
//! at the end, so unsorted input of any size compiles in bounded memory. The merged stream
//! is resolved (duplicates, conflicts, protected numbers) and streamed into a
//! [`super::body::BodyWriter`]: leaves of dense blocks go through a hashing
//! `BufWriter` into a temporary file, the FST into a second temporary file that is appended
//! after them; the result is fsynced and renamed over the output.
//!
//! ## Rules (also in `blocklists/FORMAT.md`)
//!
//! - Several rows for the same key (same number, or same prefix): the **most severe action
//!   wins** (block > warn > tag > allow); among those, the highest score, then the category
//!   and source seen last. Every extra row counts as a duplicate; a key whose rows disagree on
//!   the action also counts as a conflict.
//! - **Protected numbers** (built in per profile, plus `--protect FILE`) are exact `allow`
//!   entries that override every row for the same number: emergency and service numbers can
//!   never be blocked. Rows they override are counted.
//! - A bad row (malformed, unknown action, impossible number, score over 100) is reported with
//!   file, line and reason and skipped; compile aborts once more than `max_errors` rows are bad.

use super::body::BodyWriter;
use super::format::{Counts, Header, Kind};
use super::key::{EntryKey, MAX_KEY_BYTES};
use super::value::{PackedValue, MAX_SCORE, MAX_STRINGS};
use super::write::{HashingWriter, Pending};
use super::Action;
use crate::numbers::{Caller, NumberingProfile, E164};
use rayon::prelude::*;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bytes read from an input at a time.
pub const BLOCK_BYTES: usize = 16 << 20;

/// How to compile.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// Numbering profile for national forms in the input.
    pub profile: NumberingProfile,
    /// Action for plain one-number-per-line lists (required for them).
    pub default_action: Option<Action>,
    /// Category when a row has none.
    pub default_category: String,
    /// Score when a row has none.
    pub default_score: u8,
    /// Source when a row has none (else the input's file name).
    pub default_source: Option<String>,
    /// Files of protected numbers (one per line, `#` comments).
    pub protect: Vec<PathBuf>,
    /// Include the profile's built-in protected numbers.
    pub builtin_protect: bool,
    /// Abort once more rows than this are rejected.
    pub max_errors: u64,
    /// Record buffer size before spilling a sorted run to disk.
    pub memory_budget: usize,
    /// Snapshot version (default: creation time in seconds).
    pub version: Option<u64>,
    /// Creation time, Unix seconds (default: now).
    pub created: Option<u64>,
    /// Base or delta. A delta may hold `remove` rows (tombstones: the base's entry with the
    /// same key no longer applies); see [`super::Snapshot::lookup_all`].
    pub kind: Kind,
    /// Where sorted runs are spilled (default: the output's directory).
    pub tmp_dir: Option<PathBuf>,
    /// Show a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            profile: NumberingProfile::by_name("generic").unwrap_or_else(|_| unreachable_profile()),
            default_action: None,
            default_category: "reported".to_string(),
            default_score: 50,
            default_source: None,
            protect: Vec::new(),
            builtin_protect: true,
            max_errors: 10_000,
            memory_budget: 1 << 30,
            version: None,
            created: None,
            kind: Kind::Base,
            tmp_dir: None,
            progress: false,
        }
    }
}

#[cold]
fn unreachable_profile() -> NumberingProfile {
    // `generic` always exists; this only keeps `Default` free of unwrap.
    panic!("the generic numbering profile is missing")
}

/// A rejected row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// Input name.
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// What a compile did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CompileReport {
    /// The snapshot written.
    pub output: PathBuf,
    /// Inputs read.
    pub files: usize,
    /// Data rows read (headers, blank and comment lines excluded).
    pub rows: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Extra rows for a key already listed.
    pub duplicates: u64,
    /// Keys whose rows disagreed on the action.
    pub conflicts: u64,
    /// Rows overridden by a protected number.
    pub protected_overrides: u64,
    /// Protected numbers in the snapshot.
    pub protected: u64,
    /// Entries written.
    pub entries: u64,
    /// Counts per action, exact/prefix.
    pub counts: Counts,
    /// Snapshot version.
    pub version: u64,
    /// Snapshot size in bytes.
    pub bytes: u64,
    /// Sorted runs spilled to disk.
    pub spilled_runs: usize,
    /// Wall time.
    pub seconds: f64,
    /// Time per phase: reading and parsing, sorting (and spilling), building the FST,
    /// syncing to disk.
    pub phase_seconds: PhaseSeconds,
    /// Rows per second, end to end.
    pub rows_per_second: f64,
    /// The rejected rows (at most `max_errors + 1`).
    pub errors: Vec<RowError>,
}

/// Wall time per compile phase, in seconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PhaseSeconds {
    /// Reading and parsing the inputs (spills during parsing included).
    pub parse: f64,
    /// The final sort, or preparing the merge of spilled runs.
    pub sort: f64,
    /// Merging, resolving and building the FST.
    pub build: f64,
    /// fsync and rename.
    pub sync: f64,
}

/// Why a compile failed (the output is left untouched).
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// An input or output file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Protected-list rows refused before compiling, more than `--max-errors`.
    #[error("protected list rows rejected (fix the input or raise --max-errors):\n{0}")]
    Protected(String),
    /// Too many bad rows.
    #[error("{count} rows rejected, more than --max-errors {max}; first: {first} (fix the input or raise --max-errors)")]
    TooManyErrors {
        /// Rejected so far.
        count: u64,
        /// The limit.
        max: u64,
        /// The first rejected row.
        first: RowError,
        /// All rejected rows seen.
        errors: Vec<RowError>,
    },
    /// A plain list without a default action.
    #[error(
        "{file} is a plain list of numbers (no `number,action,...` header): give --default-action"
    )]
    NoDefaultAction {
        /// The input.
        file: String,
    },
    /// Too many distinct strings.
    #[error("more than {MAX_STRINGS} distinct {what} values: use fewer, coarser {what} names")]
    TooManyStrings {
        /// `category` or `source`.
        what: &'static str,
    },
    /// A protect file entry.
    #[error("{0} (protected numbers must be exact numbers)")]
    Protect(RowError),
    /// The FST builder failed.
    #[error("building the FST: {0}")]
    Fst(String),
}

// ---- records ------------------------------------------------------------------------------
//
// bits 127..56  encoded key, 9 bytes, zero padded   (order = FST byte order)
// bits  55..52  key length in bytes
// bit   51      protected
// bits  50..49  action
// bit   48      tombstone
// bits  47..41  score
// bits  40..25  category id
// bits  24..9   source id

const KEY_SHIFT: u32 = 56;
const LEN_SHIFT: u32 = 52;
const PROTECTED_BIT: u128 = 1 << 51;
const KEY_MASK: u128 = !((1u128 << LEN_SHIFT) - 1);

fn record(key: &EntryKey, v: PackedValue, protected: bool) -> u128 {
    let enc = key.encode();
    let mut k = [0u8; 16];
    k[..enc.as_slice().len()].copy_from_slice(enc.as_slice());
    let key_bits = u128::from_be_bytes(k) >> (128 - 8 * MAX_KEY_BYTES as u32) << KEY_SHIFT;
    key_bits
        | ((enc.as_slice().len() as u128) << LEN_SHIFT)
        | if protected { PROTECTED_BIT } else { 0 }
        | ((v.action as u128) << 49)
        | (u128::from(v.tombstone) << 48)
        | (u128::from(v.score) << 41)
        | (u128::from(v.category) << 25)
        | (u128::from(v.source) << 9)
}

fn record_value(r: u128) -> PackedValue {
    PackedValue {
        action: Action::from_bits((r >> 49) as u64),
        tombstone: (r >> 48) & 1 == 1,
        score: ((r >> 41) & 0x7F) as u8,
        category: ((r >> 25) & 0xFFFF) as u16,
        source: ((r >> 9) & 0xFFFF) as u16,
    }
}

fn record_key(r: u128) -> ([u8; MAX_KEY_BYTES], usize) {
    let b = (r >> KEY_SHIFT).to_be_bytes();
    let mut k = [0u8; MAX_KEY_BYTES];
    k.copy_from_slice(&b[16 - MAX_KEY_BYTES..]);
    (k, ((r >> LEN_SHIFT) & 0xF) as usize)
}

fn with_ids(r: u128, category: u16, source: u16) -> u128 {
    (r & !((0xFFFFu128 << 25) | (0xFFFFu128 << 9)))
        | (u128::from(category) << 25)
        | (u128::from(source) << 9)
}

// ---- value table -------------------------------------------------------------------------

/// A cheap hasher for `u64` keys (packed values): a multiply, no DoS concern for our own data.
#[derive(Default)]
struct U64Hasher(u64);

impl std::hash::Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type U64Map<V> = HashMap<u64, V, std::hash::BuildHasherDefault<U64Hasher>>;

/// Counts packed values in records, on all cores.
fn count_values(records: &[u128], into: &mut U64Map<u64>) {
    let counts = records
        .par_chunks(1 << 16)
        .map(|chunk| {
            let mut m = U64Map::default();
            for &r in chunk {
                *m.entry(record_value(r).pack()).or_insert(0) += 1;
            }
            m
        })
        .reduce(U64Map::default, |mut a, b| {
            for (k, v) in b {
                *a.entry(k).or_insert(0) += v;
            }
            a
        });
    for (k, v) in counts {
        *into.entry(k).or_insert(0) += v;
    }
}

/// The value table, most frequent first (ties by value, so it is deterministic), and the
/// index of each value. The most common value gets output 0, which costs no bytes in the FST.
fn value_table(counts: &U64Map<u64>) -> (Vec<u64>, U64Map<u64>) {
    let mut by_freq: Vec<(u64, u64)> = counts.iter().map(|(&v, &n)| (v, n)).collect();
    by_freq.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let table: Vec<u64> = by_freq.iter().map(|&(v, _)| v).collect();
    let index = table
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, i as u64))
        .collect();
    (table, index)
}

// ---- string tables ------------------------------------------------------------------------

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u16>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str, what: &'static str) -> Result<u16, CompileError> {
        if let Some(&id) = self.ids.get(s) {
            return Ok(id);
        }
        if self.names.len() >= MAX_STRINGS {
            return Err(CompileError::TooManyStrings { what });
        }
        let id = self.names.len() as u16;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        Ok(id)
    }
}

/// Per-chunk string ids, remapped to global ids after the parallel parse.
#[derive(Default)]
struct LocalStrings {
    names: Vec<String>,
    ids: HashMap<String, u16>,
    last: Option<u16>,
}

impl LocalStrings {
    fn id(&mut self, s: &str) -> u16 {
        // Most rows repeat the previous row's value: check it before hashing.
        if let Some(last) = self.last {
            if self.names[last as usize] == s {
                return last;
            }
        }
        let id = match self.ids.get(s) {
            Some(&id) => id,
            None => {
                // Past u16::MAX distinct values in one chunk the global interner refuses
                // the compile anyway (TooManyStrings); saturate here.
                let id = self.names.len().min(u16::MAX as usize) as u16;
                self.names.push(s.to_string());
                self.ids.insert(s.to_string(), id);
                id
            }
        };
        self.last = Some(id);
        id
    }
}

// ---- parsing ------------------------------------------------------------------------------

/// Column layout of an input.
#[derive(Debug, Clone, Copy)]
enum Layout {
    Csv {
        number: usize,
        action: usize,
        category: Option<usize>,
        score: Option<usize>,
        source: Option<usize>,
        columns: usize,
    },
    Plain,
}

struct ParseCtx<'a> {
    opts: &'a CompileOptions,
    layout: Layout,
    default_action: Action,
    default_source: &'a str,
}

struct ChunkOut {
    records: Vec<u128>,
    categories: LocalStrings,
    sources: LocalStrings,
    errors: Vec<(u64, String)>,
    rejected: u64,
    rows: u64,
    lines: u64,
}

fn unquote(f: &[u8]) -> &[u8] {
    let f = f.trim_ascii();
    match f {
        [b'"', inner @ .., b'"'] => inner.trim_ascii(),
        _ => f,
    }
}

/// Parses a number field: an exact number or a prefix ending in `*`.
pub fn parse_key(profile: &NumberingProfile, field: &[u8]) -> Result<EntryKey, String> {
    if let Some(p) = field.strip_suffix(b"*") {
        let digits = profile
            .normalize_prefix(p)
            .map_err(|e| format!("bad prefix {:?}: {e}", String::from_utf8_lossy(field)))?;
        return EntryKey::prefix(&digits).ok_or_else(|| {
            format!(
                "bad prefix {:?}: 1 to 15 digits expected",
                String::from_utf8_lossy(field)
            )
        });
    }
    // Fast path for the common `+<digits>` row: the same plan checks as `normalize`, without
    // URI scanning. Anything else (or a rejected number, for the full reason) goes through
    // the profile.
    if let [b'+', rest @ ..] = field {
        if let Ok(n) = E164::from_international(rest) {
            return Ok(EntryKey::from_e164(&n));
        }
    }
    match profile.normalize(field) {
        Caller::Number(n) => Ok(EntryKey::from_e164(&n)),
        Caller::Anonymous => Err(format!(
            "{:?} is an anonymous caller, not a number",
            String::from_utf8_lossy(field)
        )),
        Caller::Invalid(r) | Caller::Decorated { reason: r, .. } => Err(format!(
            "invalid number {:?} for profile {}: {r}",
            String::from_utf8_lossy(field),
            profile.name()
        )),
    }
}

fn parse_row(ctx: &ParseCtx<'_>, line: &[u8], out: &mut ChunkOut) -> Result<(), String> {
    let (number, action, category, score, source) = match ctx.layout {
        Layout::Plain => {
            let n = line.split(|&b| b == b',').next().unwrap_or(line);
            (unquote(n), None, None, None, None)
        }
        Layout::Csv {
            number,
            action,
            category,
            score,
            source,
            columns,
        } => {
            let mut fields: [&[u8]; 16] = [&[]; 16];
            let mut n = 0;
            for f in line.split(|&b| b == b',').take(fields.len()) {
                fields[n] = unquote(f);
                n += 1;
            }
            if n <= number.max(action) {
                return Err(format!("{n} fields, expected {columns}"));
            }
            let get = |i: Option<usize>| {
                i.and_then(|i| fields.get(i).copied())
                    .filter(|f| !f.is_empty())
            };
            (
                fields.get(number).copied().unwrap_or_default(),
                Some(fields.get(action).copied().unwrap_or_default()),
                get(category),
                get(score),
                get(source),
            )
        }
    };
    let key = parse_key(&ctx.opts.profile, number)?;
    let mut tombstone = false;
    let action = match action {
        None => ctx.default_action,
        Some(a) => {
            let s = std::str::from_utf8(a).map_err(|_| "action is not UTF-8".to_string())?;
            if s.is_empty() {
                ctx.opts
                    .default_action
                    .ok_or("empty action and no --default-action")?
            } else if s.eq_ignore_ascii_case("remove") {
                if !matches!(ctx.opts.kind, Kind::Delta { .. }) {
                    return Err("action `remove` is only valid in a delta (--delta-of BASE)".into());
                }
                tombstone = true;
                Action::Allow
            } else {
                s.parse::<Action>().map_err(|e| e.to_string())?
            }
        }
    };
    let score = match score {
        None => ctx.opts.default_score,
        Some(s) => std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse::<u8>().ok())
            .filter(|&v| v <= MAX_SCORE)
            .ok_or_else(|| format!("score {:?} is not 0..=100", String::from_utf8_lossy(s)))?,
    };
    fn text<'b>(b: &'b [u8], what: &str) -> Result<&'b str, String> {
        std::str::from_utf8(b).map_err(|_| format!("{what} is not UTF-8"))
    }
    let category = match category {
        None => out.categories.id(&ctx.opts.default_category),
        Some(c) => out.categories.id(text(c, "category")?),
    };
    let source = match source {
        None => out.sources.id(ctx.default_source),
        Some(s) => out.sources.id(text(s, "source")?),
    };
    let v = PackedValue {
        action,
        tombstone,
        score,
        category,
        source,
    };
    out.records.push(record(&key, v, false));
    Ok(())
}

fn parse_chunk(ctx: &ParseCtx<'_>, chunk: &[u8], keep_errors: usize) -> ChunkOut {
    let mut out = ChunkOut {
        records: Vec::with_capacity(chunk.len() / 24),
        categories: LocalStrings::default(),
        sources: LocalStrings::default(),
        errors: Vec::new(),
        rejected: 0,
        rows: 0,
        lines: 0,
    };
    for line in chunk.split(|&b| b == b'\n') {
        out.lines += 1;
        let l = line.trim_ascii();
        if l.is_empty() || l[0] == b'#' {
            continue;
        }
        out.rows += 1;
        if let Err(reason) = parse_row(ctx, l, &mut out) {
            out.rejected += 1;
            if out.errors.len() < keep_errors {
                out.errors.push((out.lines, reason));
            }
        }
    }
    // `split` yields one piece after a trailing newline: not a line.
    if chunk.last() == Some(&b'\n') {
        out.lines -= 1;
    }
    out
}

/// Reads the layout from the first line; returns it and whether that line is a header.
fn detect_layout(first: &[u8]) -> (Layout, bool) {
    let l = first.trim_ascii();
    let lower = l.to_ascii_lowercase();
    let cols: Vec<&[u8]> = lower.split(|&b| b == b',').map(unquote).collect();
    let find = |name: &[u8]| cols.iter().position(|c| *c == name);
    if let (Some(number @ 0..16), Some(action @ 0..16)) = (find(b"number"), find(b"action")) {
        return (
            Layout::Csv {
                number,
                action,
                category: find(b"category"),
                score: find(b"score"),
                source: find(b"source"),
                columns: cols.len(),
            },
            true,
        );
    }
    let header = l.iter().any(|b| b.is_ascii_alphabetic()) && !l.contains(&b'*');
    let header = header && !l.starts_with(b"sip") && !l.starts_with(b"tel");
    (Layout::Plain, header)
}

// ---- the compiler -------------------------------------------------------------------------

/// One input: a file, or text in memory.
pub enum Input<'a> {
    /// A file on disk.
    File(&'a Path),
    /// CSV or plain-list text, with a name for error messages.
    Text {
        /// Name used in errors.
        name: &'a str,
        /// The content.
        text: &'a str,
    },
}

struct Compiler<'a> {
    opts: &'a CompileOptions,
    categories: Interner,
    sources: Interner,
    buffer: Vec<u128>,
    cap: usize,
    runs: Vec<PathBuf>,
    spill_dir: Option<tempfile::TempDir>,
    spill_parent: PathBuf,
    value_counts: U64Map<u64>,
    report: CompileReport,
    progress: indicatif::ProgressBar,
}

impl<'a> Compiler<'a> {
    fn new(opts: &'a CompileOptions, out: &Path, total_bytes: u64) -> Compiler<'a> {
        let cap = (opts.memory_budget / 16).max(1024);
        let progress = if opts.progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let pb = indicatif::ProgressBar::new(total_bytes);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb.set_message("reading");
            pb
        } else {
            indicatif::ProgressBar::hidden()
        };
        Compiler {
            opts,
            categories: Interner::default(),
            sources: Interner::default(),
            buffer: Vec::new(),
            cap,
            runs: Vec::new(),
            spill_dir: None,
            spill_parent: opts
                .tmp_dir
                .clone()
                .unwrap_or_else(|| super::write::parent_dir(out)),
            report: CompileReport::default(),
            value_counts: U64Map::default(),
            progress,
        }
    }

    fn io(path: &Path) -> impl FnOnce(io::Error) -> CompileError + '_ {
        move |source| CompileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn add_input(&mut self, input: &Input<'_>) -> Result<(), CompileError> {
        self.report.files += 1;
        match input {
            Input::Text { name, text } => {
                let bytes = text.as_bytes();
                self.add_stream(name, &mut &bytes[..], Path::new(name))
            }
            Input::File(path) => {
                let f = File::open(path).map_err(Self::io(path))?;
                let name = path.display().to_string();
                self.add_stream(&name, &mut f.take(u64::MAX), path)
            }
        }
    }

    fn add_stream(
        &mut self,
        name: &str,
        r: &mut dyn Read,
        path: &Path,
    ) -> Result<(), CompileError> {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string());
        let default_source = self.opts.default_source.clone().unwrap_or(stem);
        let mut ctx: Option<ParseCtx<'_>> = None;
        let mut block: Vec<u8> = Vec::with_capacity(BLOCK_BYTES + 4096);
        let mut line_base = 0u64; // lines before the current block
        let mut eof = false;
        while !eof {
            // Fill the block up to BLOCK_BYTES.
            let start = block.len();
            block.resize(BLOCK_BYTES.max(start + 4096), 0);
            let mut filled = start;
            while filled < block.len() {
                let n = match r.read(&mut block[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Self::io(path)(e)),
                };
                filled += n;
            }
            block.truncate(filled);
            self.progress.inc((filled - start) as u64);
            // Process up to the last newline; keep the rest for the next block.
            let end = if eof {
                block.len()
            } else {
                match block.iter().rposition(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None => continue, // a line longer than a block: read more
                }
            };
            let mut body = &block[..end];
            if ctx.is_none() {
                let first_end = body
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(body.len(), |i| i + 1);
                let (layout, header) = detect_layout(&body[..first_end]);
                if matches!(layout, Layout::Plain) && self.opts.default_action.is_none() {
                    return Err(CompileError::NoDefaultAction {
                        file: name.to_string(),
                    });
                }
                ctx = Some(ParseCtx {
                    opts: self.opts,
                    layout,
                    default_action: self.opts.default_action.unwrap_or(Action::Block),
                    default_source: &default_source,
                });
                if header {
                    body = &body[first_end..];
                    line_base += 1;
                }
            }
            let Some(c) = ctx.as_ref() else { continue };
            line_base += self.parse_block(c, name, body, line_base)?;
            block.drain(..end);
        }
        Ok(())
    }

    /// Parses one block on all cores; returns its line count.
    fn parse_block(
        &mut self,
        ctx: &ParseCtx<'_>,
        name: &str,
        body: &[u8],
        line_base: u64,
    ) -> Result<u64, CompileError> {
        let pieces = split_lines(body, rayon::current_num_threads() * 4);
        let keep = (self.opts.max_errors + 1).min(100_000) as usize;
        let outs: Vec<ChunkOut> = pieces
            .par_iter()
            .map(|p| parse_chunk(ctx, p, keep))
            .collect();
        let mut lines = line_base;
        for o in outs {
            let cat_map: Vec<u16> = o
                .categories
                .names
                .iter()
                .map(|n| self.categories.id(n, "category"))
                .collect::<Result<_, _>>()?;
            let src_map: Vec<u16> = o
                .sources
                .names
                .iter()
                .map(|n| self.sources.id(n, "source"))
                .collect::<Result<_, _>>()?;
            self.report.rows += o.rows;
            self.report.rejected += o.rejected;
            for (l, reason) in o.errors {
                if (self.report.errors.len() as u64) <= self.opts.max_errors {
                    self.report.errors.push(RowError {
                        file: name.to_string(),
                        line: lines + l,
                        reason,
                    });
                }
            }
            if self.report.rejected > self.opts.max_errors {
                let errors = std::mem::take(&mut self.report.errors);
                return Err(CompileError::TooManyErrors {
                    count: self.report.rejected,
                    max: self.opts.max_errors,
                    first: errors.first().cloned().unwrap_or(RowError {
                        file: name.to_string(),
                        line: lines,
                        reason: "rejected".into(),
                    }),
                    errors,
                });
            }
            lines += o.lines;
            let identity = cat_map.iter().enumerate().all(|(i, &g)| i == g as usize)
                && src_map.iter().enumerate().all(|(i, &g)| i == g as usize);
            for r in o.records {
                let r = if identity {
                    r
                } else {
                    let v = record_value(r);
                    with_ids(
                        r,
                        cat_map.get(v.category as usize).copied().unwrap_or(0),
                        src_map.get(v.source as usize).copied().unwrap_or(0),
                    )
                };
                self.push(r)?;
            }
        }
        Ok(lines - line_base)
    }

    fn push(&mut self, r: u128) -> Result<(), CompileError> {
        if self.buffer.len() >= self.cap {
            self.spill()?;
        }
        if self.buffer.capacity() == 0 {
            self.buffer.reserve(self.cap.min(1 << 20));
        }
        self.buffer.push(r);
        Ok(())
    }

    fn spill(&mut self) -> Result<(), CompileError> {
        if self.spill_dir.is_none() {
            let d = tempfile::Builder::new()
                .prefix(".fraudwall-runs-")
                .tempdir_in(&self.spill_parent)
                .map_err(Self::io(&self.spill_parent))?;
            self.spill_dir = Some(d);
        }
        let dir = self
            .spill_dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default();
        let path = dir.join(format!("run-{}", self.runs.len()));
        count_values(&self.buffer, &mut self.value_counts);
        self.buffer.par_sort_unstable();
        let f = File::create(&path).map_err(Self::io(&path))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        for r in &self.buffer {
            w.write_all(&r.to_le_bytes()).map_err(Self::io(&path))?;
        }
        w.flush().map_err(Self::io(&path))?;
        self.buffer.clear();
        self.runs.push(path);
        Ok(())
    }

    fn add_protected(&mut self) -> Result<(), CompileError> {
        let mut numbers: Vec<(EntryKey, String)> = Vec::new();
        if self.opts.builtin_protect {
            for n in builtin_protected(self.opts.profile.name()) {
                if let Some(k) = EntryKey::exact(n.as_bytes()) {
                    numbers.push((k, format!("builtin:{}", self.opts.profile.name())));
                }
            }
        }
        for path in &self.opts.protect {
            let text = std::fs::read_to_string(path).map_err(Self::io(path))?;
            let src = format!(
                "protect:{}",
                path.file_name()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            );
            for (i, line) in text.lines().enumerate() {
                let l = line.split('#').next().unwrap_or("").trim();
                let l = l.split(',').next().unwrap_or("").trim();
                if l.is_empty() || l.eq_ignore_ascii_case("number") {
                    continue;
                }
                let err = |reason: String| {
                    CompileError::Protect(RowError {
                        file: path.display().to_string(),
                        line: i as u64 + 1,
                        reason,
                    })
                };
                let k = parse_key(&self.opts.profile, l.as_bytes()).map_err(err)?;
                if !k.is_exact() {
                    return Err(err(format!("{k} is a prefix")));
                }
                numbers.push((k, src.clone()));
            }
        }
        let category = self.categories.id("protected", "category")?;
        for (k, src) in numbers {
            let source = self.sources.id(&src, "source")?;
            let v = PackedValue {
                action: Action::Allow,
                tombstone: false,
                score: 0,
                category,
                source,
            };
            self.push(record(&k, v, true))?;
        }
        Ok(())
    }
}

/// Emergency and service numbers a profile protects by default (E.164 digits). They compile
/// as exact `allow` entries that no row can override.
pub fn builtin_protected(profile: &str) -> &'static [&'static str] {
    match profile {
        // Police, fire, ambulance, traffic police, police SMS, consumer and citizen hotlines.
        "cn" => &[
            "86110", "86119", "86120", "86122", "8612110", "8612315", "8612345", "8612395",
        ],
        // 911 and the 988 crisis line, as they can appear in caller ID.
        "nanp" => &["1911", "1988"],
        _ => &[],
    }
}

/// Splits at line ends into about `n` pieces.
fn split_lines(body: &[u8], n: usize) -> Vec<&[u8]> {
    let target = (body.len() / n.max(1)).max(64 << 10);
    let mut out = Vec::with_capacity(n + 1);
    let mut rest = body;
    while rest.len() > target {
        let cut = match rest[target..].iter().position(|&b| b == b'\n') {
            Some(i) => target + i + 1,
            None => rest.len(),
        };
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Sorted records from memory or merged runs.
enum Sorted {
    Memory(std::vec::IntoIter<u128>),
    Merge {
        readers: Vec<BufReader<File>>,
        heap: BinaryHeap<std::cmp::Reverse<(u128, usize)>>,
    },
}

fn read_record(r: &mut BufReader<File>) -> io::Result<Option<u128>> {
    let mut b = [0u8; 16];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(Some(u128::from_le_bytes(b))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

impl Sorted {
    fn next(&mut self) -> io::Result<Option<u128>> {
        match self {
            Sorted::Memory(it) => Ok(it.next()),
            Sorted::Merge { readers, heap } => {
                let Some(std::cmp::Reverse((r, i))) = heap.pop() else {
                    return Ok(None);
                };
                if let Some(next) = read_record(&mut readers[i])? {
                    heap.push(std::cmp::Reverse((next, i)));
                }
                Ok(Some(r))
            }
        }
    }
}

/// Compiles inputs into a snapshot at `out` (atomically replaced).
pub fn compile(
    inputs: &[Input<'_>],
    opts: &CompileOptions,
    out: &Path,
) -> Result<CompileReport, CompileError> {
    let started = Instant::now();
    let total: u64 = inputs
        .iter()
        .map(|i| match i {
            Input::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Input::Text { text, .. } => text.len() as u64,
        })
        .sum();
    let mut c = Compiler::new(opts, out, total);
    c.add_protected()?;
    for input in inputs {
        c.add_input(input)?;
    }
    let parsed = Instant::now();
    c.progress.set_message("sorting");
    let sorted = if c.runs.is_empty() {
        let mut buf = std::mem::take(&mut c.buffer);
        count_values(&buf, &mut c.value_counts);
        buf.par_sort_unstable();
        Sorted::Memory(buf.into_iter())
    } else {
        c.spill()?;
        c.buffer = Vec::new();
        let mut readers = Vec::new();
        let mut heap = BinaryHeap::new();
        for (i, p) in c.runs.iter().enumerate() {
            let mut r = BufReader::with_capacity(1 << 20, File::open(p).map_err(Compiler::io(p))?);
            if let Some(first) = read_record(&mut r).map_err(Compiler::io(p))? {
                heap.push(std::cmp::Reverse((first, i)));
            }
            readers.push(r);
        }
        Sorted::Merge { readers, heap }
    };
    c.report.spilled_runs = c.runs.len();
    let sorted_at = Instant::now();
    c.progress.set_message("building");
    let version = opts.version.unwrap_or_else(now_secs);
    let created = opts.created.unwrap_or_else(now_secs);
    let mut header = Header {
        version,
        created,
        kind: opts.kind,
        counts: Counts::default(),
        prefix_lengths: 0,
        body_len: 0,
        fst_offset: 0,
        body_hash: [0; 32],
        categories: std::mem::take(&mut c.categories.names),
        sources: std::mem::take(&mut c.sources.names),
        values: Vec::new(),
    };
    let (values, value_index) = value_table(&c.value_counts);
    header.values = values;
    let header_len = header.encode().len();
    let spill_dir = c.spill_dir.take();
    let mut report = std::mem::take(&mut c.report);
    let written = write_snapshot(
        out,
        &mut header,
        header_len,
        sorted,
        &value_index,
        &mut report,
    )?;
    drop(spill_dir);
    c.progress.finish_and_clear();
    report.output = out.to_path_buf();
    report.version = version;
    report.counts = header.counts;
    report.entries = header.counts.entries;
    report.bytes = written;
    report.seconds = started.elapsed().as_secs_f64();
    report.phase_seconds.parse = (parsed - started).as_secs_f64();
    report.phase_seconds.sort = (sorted_at - parsed).as_secs_f64();
    report.phase_seconds.build = report.seconds
        - report.phase_seconds.parse
        - report.phase_seconds.sort
        - report.phase_seconds.sync;
    report.rows_per_second = report.rows as f64 / report.seconds.max(1e-9);
    Ok(report)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Resolves groups of equal keys and streams the FST into the output file.
fn write_snapshot(
    out: &Path,
    header: &mut Header,
    header_len: usize,
    mut sorted: Sorted,
    value_index: &U64Map<u64>,
    report: &mut CompileReport,
) -> Result<u64, CompileError> {
    let io_out = Compiler::io(out);
    let mut pending = Pending::new(out).map_err(Compiler::io(out))?;
    pending
        .file()
        .write_all(&vec![0u8; header_len])
        .map_err(Compiler::io(out))?;
    let file = pending.file().try_clone().map_err(Compiler::io(out))?;
    let w = HashingWriter::new(BufWriter::with_capacity(4 << 20, file));
    let fst_tmp =
        tempfile::tempfile_in(super::write::parent_dir(out)).map_err(Compiler::io(out))?;
    let fst_w = BufWriter::with_capacity(4 << 20, fst_tmp);
    let fst_err = |e: fst::Error| CompileError::Fst(e.to_string());
    let mut builder = BodyWriter::new(w, fst_w, header_len).map_err(fst_err)?;
    let mut counts = Counts::default();
    let mut prefix_lengths = 0u16;
    let mut group: Option<(u128, u128, u64, u64)> = None; // (first, best, rows, overridden)
    let mut emit = |builder: &mut BodyWriter<_, _>,
                    counts: &mut Counts,
                    report: &mut CompileReport,
                    (first, best, rows, overridden): (u128, u128, u64, u64)|
     -> Result<(), CompileError> {
        report.duplicates += rows - 1;
        let protected = best & PROTECTED_BIT != 0;
        if protected {
            report.protected += 1;
            report.protected_overrides += overridden;
        } else if record_value(first).action != record_value(best).action {
            report.conflicts += 1;
        }
        let (k, len) = record_key(best);
        let v = record_value(best);
        let exact = super::key::is_exact_key(&k[..len]);
        counts.add(exact, v.action, v.tombstone);
        if !exact {
            let odd = u16::from(k[len - 1] >= super::key::ODD_BASE);
            prefix_lengths |= 1 << (2 * len as u16 - odd);
        }
        // Every value was counted before the build, so it has an index.
        let id = value_index
            .get(&v.pack())
            .copied()
            .ok_or_else(|| CompileError::Fst("value missing from the value table".into()))?;
        builder.insert(&k[..len], id).map_err(fst_err)
    };
    while let Some(r) = sorted.next().map_err(Compiler::io(out))? {
        group = match group {
            Some((first, _, rows, overridden)) if (first ^ r) & KEY_MASK == 0 => {
                let over = u64::from(r & PROTECTED_BIT == 0);
                Some((first, r, rows + 1, overridden + over))
            }
            Some(g) => {
                emit(&mut builder, &mut counts, report, g)?;
                Some((r, r, 1, u64::from(r & PROTECTED_BIT == 0)))
            }
            None => Some((r, r, 1, u64::from(r & PROTECTED_BIT == 0))),
        };
    }
    if let Some(g) = group {
        emit(&mut builder, &mut counts, report, g)?;
    }
    let body = builder.finish().map_err(fst_err)?;
    let mut w = body.leaves;
    let mut fst_file = body
        .fst
        .into_inner()
        .map_err(|e| Compiler::io(out)(e.into_error()))?;
    fst_file
        .seek(SeekFrom::Start(0))
        .map_err(Compiler::io(out))?;
    io::copy(&mut fst_file, &mut w).map_err(Compiler::io(out))?;
    drop(fst_file);
    let (buf, hash, body_len) = w.finish();
    let mut file = buf.into_inner().map_err(|e| io_out(e.into_error()))?;
    header.counts = counts;
    header.prefix_lengths = prefix_lengths;
    header.body_len = body_len;
    header.fst_offset = body.fst_offset;
    header.body_hash = hash;
    let bytes = header.encode();
    debug_assert_eq!(bytes.len(), header_len);
    file.seek(SeekFrom::Start(0)).map_err(Compiler::io(out))?;
    file.write_all(&bytes).map_err(Compiler::io(out))?;
    drop(file);
    let sync = Instant::now();
    pending.commit().map_err(Compiler::io(out))?;
    report.phase_seconds.sync = sync.elapsed().as_secs_f64();
    Ok(header_len as u64 + body_len)
}

/// Compiles CSV (or plain-list) text into a snapshot in one call: handy in tests.
pub fn compile_csv_text(
    csv: &str,
    opts: &CompileOptions,
    out: &Path,
) -> Result<CompileReport, CompileError> {
    compile(
        &[Input::Text {
            name: "<text>",
            text: csv,
        }],
        opts,
        out,
    )
}

/// Compiles files into a snapshot.
pub fn compile_files(
    files: &[PathBuf],
    opts: &CompileOptions,
    out: &Path,
) -> Result<CompileReport, CompileError> {
    let inputs: Vec<Input<'_>> = files.iter().map(|p| Input::File(p)).collect();
    compile(&inputs, opts, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_order_is_fst_key_order() {
        let keys = [
            EntryKey::prefix(b"86").unwrap(),
            EntryKey::exact(b"86").unwrap(),
            EntryKey::prefix(b"8600").unwrap(),
            EntryKey::prefix(b"861").unwrap(),
            EntryKey::exact(b"8613800000001").unwrap(),
            EntryKey::exact(b"999999999999999").unwrap(),
        ];
        let v = PackedValue {
            action: Action::Block,
            tombstone: false,
            score: 100,
            category: 65535,
            source: 65535,
        };
        let mut recs: Vec<u128> = keys.iter().map(|k| record(k, v, true)).collect();
        recs.sort_unstable();
        let mut encoded: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| k.encode().as_slice().to_vec())
            .collect();
        encoded.sort();
        let from_recs: Vec<Vec<u8>> = recs
            .iter()
            .map(|&r| {
                let (k, l) = record_key(r);
                k[..l].to_vec()
            })
            .collect();
        assert_eq!(from_recs, encoded);
        assert_eq!(record_value(recs[0]), v);
    }

    #[test]
    fn split_lines_keeps_every_byte() {
        let text: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let pieces = split_lines(&text, 7);
        assert!(pieces.len() > 1);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.iter().all(|p| p.ends_with(b"\n")));
    }
}
