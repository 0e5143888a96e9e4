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

mod compiler;
mod parse;
mod records;
mod resolve;
mod strings;
mod values;

pub use parse::parse_key;

use super::format::{Counts, Header, Kind};
use super::value::MAX_STRINGS;
use super::Action;
use crate::numbers::NumberingProfile;
use compiler::Compiler;
use rayon::prelude::*;
use resolve::{read_record, write_snapshot, Sorted};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;
use values::{count_values, value_table};

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
