//! Compiling subscriber CSV into a [`super::SubscriberList`] snapshot, in one streaming
//! pass and linear time:
//!
//! 1. the input is read in 64 MB windows, cut into chunks of whole lines and parsed on
//!    every core into 16-byte rows (subscriber key; entry class, digits and action);
//! 2. each chunk is sorted (stable, so a later row for the same entry wins) and deduplicated
//!    on its own, in parallel;
//! 3. the chunks are merged (a heap over the chunks that overlap: sorted or nearly sorted
//!    input, as exported from a database, merges at the cost of a copy), each subscriber's
//!    rows become a record, records become blocks, and blocks are written to the file as
//!    they are made, hashed on the way; the directory is kept in memory (about 0.15 bytes
//!    per subscriber) and written after the data.
//!
//! Memory is the rows (16 bytes each) and one window of input; see the parent module for
//! the format.

use super::format::{BlockEncoder, Digits, DirectoryBuilder, Kind, Record, ALIGN};
use super::{encode_header, Sections, SubscriberListInfo, HEADER_LEN};
use crate::numbers::{Caller, NumberingProfile};
use rayon::prelude::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A row the compiler skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberRowError {
    /// `file:line`.
    pub at: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for SubscriberRowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.reason)
    }
}

/// What a compile did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubscriberCompileReport {
    /// Data rows read.
    pub rows: u64,
    /// Entries written (after later rows replaced earlier ones).
    pub entries: u64,
    /// Distinct subscribers.
    pub subscribers: u64,
    /// File bytes.
    pub bytes: u64,
    /// Rows skipped.
    #[serde(skip)]
    pub errors: Vec<SubscriberRowError>,
    /// Rows skipped, counted.
    pub error_count: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Of which reading and parsing the rows.
    pub parse_seconds: f64,
    /// Sorting the keys.
    pub sort_seconds: f64,
    /// Building the index, hashing and writing the file.
    pub build_seconds: f64,
}

/// Why a compile failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SubscriberCompileError {
    /// An input or the output cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The header row is not `subscriber,caller,action`.
    #[error("{at}: the header row must be `subscriber,caller,action`")]
    BadHeader {
        /// `file:line`.
        at: String,
    },
    /// More bad rows than `--max-errors`.
    #[error("{count} bad rows, more than --max-errors {max} allows; the first: {first}")]
    TooManyErrors {
        /// Bad rows seen.
        count: u64,
        /// The limit.
        max: u64,
        /// The first.
        first: String,
    },
    /// Building the index failed.
    #[error("building the index: {0}")]
    Index(String),
}

/// Compile options.
#[derive(Debug, Clone)]
pub struct SubscriberCompileOptions {
    /// Reads national forms.
    pub profile: NumberingProfile,
    /// Bad rows tolerated.
    pub max_errors: u64,
    /// The version written (default: the creation time).
    pub version: Option<u64>,
    /// Creation time (default: now).
    pub created: Option<u64>,
}

impl Default for SubscriberCompileOptions {
    fn default() -> Self {
        SubscriberCompileOptions {
            // The blocklist compiler's default profile (`generic`).
            profile: crate::blocklist::CompileOptions::default().profile,
            max_errors: 1000,
            version: None,
            created: None,
        }
    }
}

/// One parsed row: the subscriber's key and the entry (class, digits, action), packed so
/// that rows sort by subscriber, then entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Row {
    sub: u64,
    /// class << 60 | digit count << 56 | digits << 2 | action.
    ent: u64,
}

/// Entry classes: the level (`*`), an exact number, a prefix.
const LEVEL: u64 = 0;
const EXACT: u64 = 1;
const PREFIX: u64 = 2;
/// Actions: 1 allow, 2 tag (levels only), 3 block.
const ALLOW: u64 = 1;
const TAG: u64 = 2;
const BLOCK: u64 = 3;

impl Row {
    fn new(sub: Digits, class: u64, entry: Digits, action: u64) -> Row {
        Row {
            sub: sub.key(),
            ent: class << 60 | u64::from(entry.len) << 56 | entry.value << 2 | action,
        }
    }
    /// What a later row replaces: the same subscriber and entry, whatever the action.
    fn id(&self) -> (u64, u64) {
        (self.sub, self.ent >> 2)
    }
    fn class(&self) -> u64 {
        self.ent >> 60
    }
    fn action(&self) -> u64 {
        self.ent & 3
    }
    fn digits(&self) -> Digits {
        Digits {
            len: ((self.ent >> 56) & 15) as u8,
            value: (self.ent >> 2) & ((1 << 54) - 1),
        }
    }
}

fn digits_of(n: &[u8]) -> Result<Digits, String> {
    Digits::parse(n).ok_or_else(|| format!("{} must be 1 to 15 digits", String::from_utf8_lossy(n)))
}

fn parse_row(profile: &NumberingProfile, line: &[u8]) -> Result<Row, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let mut fields = text.split(',').map(str::trim);
    let (Some(sub), Some(caller), Some(action), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("expected 3 fields: subscriber,caller,action".into());
    };
    let sub = match profile.normalize(sub.as_bytes()) {
        Caller::Number(n) => digits_of(n.as_bytes())?,
        _ => return Err(format!("subscriber {sub:?} is not a number")),
    };
    let is = |name: &str| action.eq_ignore_ascii_case(name);
    if caller == "*" {
        let level = match () {
            () if is("allow") => ALLOW,
            () if is("tag") => TAG,
            () if is("block") => BLOCK,
            () => return Err(format!("level {action:?}: use allow, tag or block for `*`")),
        };
        return Ok(Row::new(sub, LEVEL, Digits::default(), level));
    }
    let action = match () {
        () if is("allow") => ALLOW,
        () if is("block") => BLOCK,
        () => {
            return Err(format!(
                "action {action:?}: a personal entry is allow or block (tag is a level: use `*`)"
            ))
        }
    };
    if let Some(p) = caller.strip_suffix('*') {
        let digits = profile
            .normalize_prefix(p.as_bytes())
            .map_err(|r| format!("caller prefix {caller:?}: {r:?}"))?;
        if digits.is_empty() || digits.len() > 15 {
            return Err(format!("caller prefix {caller:?} must have 1 to 15 digits"));
        }
        return Ok(Row::new(sub, PREFIX, digits_of(&digits)?, action));
    }
    match profile.normalize(caller.as_bytes()) {
        Caller::Number(n) => Ok(Row::new(sub, EXACT, digits_of(n.as_bytes())?, action)),
        _ => Err(format!(
            "caller {caller:?} is not a number, a prefix (+86170*) or *"
        )),
    }
}

/// Bytes of CSV parsed per parallel task.
const CHUNK_BYTES: usize = 4 << 20;

/// `data` cut into pieces of about `size` bytes that end at a line end, each with the
/// number of lines before it.
fn line_chunks(data: &[u8], size: usize) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let (mut start, mut line) = (0usize, 0usize);
    while start < data.len() {
        let end = match memchr::memchr(b'\n', &data[(start + size).min(data.len())..]) {
            Some(i) => (start + size).min(data.len()) + i + 1,
            None => data.len(),
        };
        let chunk = &data[start..end];
        out.push((line, chunk));
        line += memchr::memchr_iter(b'\n', chunk).count();
        start = end;
    }
    out
}

/// What one chunk of rows gave.
struct ParsedChunk {
    rows: Vec<Row>,
    read: u64,
    errors: Vec<SubscriberRowError>,
    error_count: u64,
}

/// Parses the rows of `chunk`, whose first line is line `first_line` of file `name`.
fn parse_chunk(
    profile: &NumberingProfile,
    name: &str,
    first_line: usize,
    chunk: &[u8],
) -> ParsedChunk {
    let mut out = ParsedChunk {
        rows: Vec::with_capacity(chunk.len() / 32),
        read: 0,
        errors: Vec::new(),
        error_count: 0,
    };
    for (i, line) in chunk.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) || line.first() == Some(&b'#') {
            continue;
        }
        out.read += 1;
        match parse_row(profile, line) {
            Ok(r) => out.rows.push(r),
            Err(reason) => {
                out.error_count += 1;
                if out.errors.len() < 100 {
                    out.errors.push(SubscriberRowError {
                        at: format!("{name}:{}", first_line + i),
                        reason,
                    });
                }
            }
        }
    }
    out
}

/// Sorts a chunk's rows (stable: rows for the same entry stay in file order) and keeps the
/// last row of each entry.
fn sort_chunk(rows: &mut Vec<Row>) {
    if !rows.windows(2).all(|w| w[0].id() < w[1].id()) {
        rows.sort_by_key(Row::id);
        let mut kept = 0usize;
        for i in 0..rows.len() {
            if kept > 0 && rows[kept - 1].id() == rows[i].id() {
                rows[kept - 1] = rows[i];
            } else {
                rows[kept] = rows[i];
                kept += 1;
            }
        }
        rows.truncate(kept);
    }
    rows.shrink_to_fit();
}

/// Calls `f` with every row of the sorted `chunks` in order; rows for the same entry come
/// in chunk order (so the last one is the latest in the input). Only chunks whose first row
/// is not past the current row are in the heap, so sorted or nearly sorted input costs a
/// heap of one or two.
fn merge_chunks(
    chunks: Vec<Vec<Row>>,
    mut f: impl FnMut(Row) -> Result<(), SubscriberCompileError>,
) -> Result<(), SubscriberCompileError> {
    let mut queue: Vec<(u64, u64, usize)> = chunks
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.first().map(|r| (r.id().0, r.id().1, i)))
        .collect();
    queue.sort_unstable();
    let mut queue = queue.into_iter().peekable();
    let mut pos = vec![0usize; chunks.len()];
    let mut heap: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
    loop {
        let top = heap.peek().map(|r| r.0);
        while let Some(&q) = queue.peek() {
            if top.is_some_and(|t| q > t) {
                break;
            }
            heap.push(Reverse(q));
            queue.next();
            if top.is_none() {
                break;
            }
        }
        let Some(Reverse((_, _, c))) = heap.pop() else {
            return Ok(());
        };
        let chunk = &chunks[c];
        // Emit this chunk's rows while they stay below every other candidate.
        let bound = match (heap.peek(), queue.peek()) {
            (Some(h), Some(q)) => Some(h.0.min(*q)),
            (Some(h), None) => Some(h.0),
            (None, Some(q)) => Some(*q),
            (None, None) => None,
        };
        let mut p = pos[c];
        while let Some(r) = chunk.get(p) {
            let (s, e) = r.id();
            if bound.is_some_and(|b| (s, e, c) > b) {
                break;
            }
            f(*r)?;
            p += 1;
        }
        pos[c] = p;
        if let Some(r) = chunk.get(p) {
            heap.push(Reverse((r.id().0, r.id().1, c)));
        }
    }
}

/// Bytes read from an input at a time.
const WINDOW_BYTES: usize = 64 << 20;

/// Totals over the inputs.
#[derive(Default)]
struct Parsed {
    chunks: Vec<Vec<Row>>,
    rows: u64,
    errors: Vec<SubscriberRowError>,
    error_count: u64,
    sort_seconds: f64,
}

/// Reads one input window by window, parsing and sorting its chunks.
fn read_input(
    path: &Path,
    opts: &SubscriberCompileOptions,
    out: &mut Parsed,
) -> Result<(), SubscriberCompileError> {
    let io = |source| SubscriberCompileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.display().to_string();
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buf: Vec<u8> = Vec::with_capacity(WINDOW_BYTES + (1 << 16));
    // The number of the first line in `buf`; 0 until the header is read.
    let mut line = 0usize;
    let mut eof = false;
    while !eof {
        let have = buf.len();
        buf.resize(have + WINDOW_BYTES, 0);
        let mut got = have;
        while got < buf.len() {
            match file.read(&mut buf[got..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        buf.truncate(got);
        let mut start = 0usize;
        if line == 0 {
            let end = memchr::memchr(b'\n', &buf).map_or(buf.len(), |i| i + 1);
            let ok = std::str::from_utf8(&buf[..end])
                .map(|h| {
                    h.trim()
                        .trim_start_matches('\u{feff}')
                        .eq_ignore_ascii_case("subscriber,caller,action")
                })
                .unwrap_or(false);
            if !ok {
                return Err(SubscriberCompileError::BadHeader {
                    at: format!("{name}:1"),
                });
            }
            start = end;
            line = 2;
        }
        // Whole lines only, unless this is the end of the file.
        let end = match eof {
            true => buf.len(),
            false => memchr::memrchr(b'\n', &buf[start..]).map_or(start, |i| start + i + 1),
        };
        let chunks = line_chunks(&buf[start..end], CHUNK_BYTES);
        let mut parsed: Vec<ParsedChunk> = chunks
            .par_iter()
            .map(|&(first, chunk)| parse_chunk(&opts.profile, &name, line + first, chunk))
            .collect();
        line += chunks.last().map_or(0, |(first, c)| {
            first + memchr::memchr_iter(b'\n', c).count()
        });
        let sorting = Instant::now();
        parsed.par_iter_mut().for_each(|c| sort_chunk(&mut c.rows));
        out.sort_seconds += sorting.elapsed().as_secs_f64();
        for chunk in parsed {
            out.rows += chunk.read;
            out.error_count += chunk.error_count;
            let room = 100usize.saturating_sub(out.errors.len());
            out.errors.extend(chunk.errors.into_iter().take(room));
            if out.error_count > opts.max_errors {
                return Err(SubscriberCompileError::TooManyErrors {
                    count: out.error_count,
                    max: opts.max_errors,
                    first: out
                        .errors
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                });
            }
            if !chunk.rows.is_empty() {
                out.chunks.push(chunk.rows);
            }
        }
        buf.drain(..end);
    }
    Ok(())
}

/// The data section as it is written: blocks go to the file through a buffer that is
/// hashed before each write.
struct Body {
    file: std::fs::File,
    buf: Vec<u8>,
    hash: blake3::Hasher,
    len: u64,
}

impl Body {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        if self.buf.len() >= 8 << 20 {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.hash.update_rayon(&self.buf);
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// Turns sorted rows into records, blocks and the directory, writing the blocks.
struct Builder {
    body: Body,
    dir: DirectoryBuilder,
    block: BlockEncoder,
    sub: Option<u64>,
    level: u8,
    entries: Vec<(Kind, Digits)>,
    pending: Option<Row>,
    subscribers: u64,
    kept: u64,
}

impl Builder {
    /// The next row in order (a row for the same entry as the one before replaces it).
    fn row(&mut self, r: Row) -> std::io::Result<()> {
        match self.pending {
            Some(p) if p.id() == r.id() => {}
            Some(p) => self.take(p)?,
            None => {}
        }
        self.pending = Some(r);
        Ok(())
    }

    fn take(&mut self, r: Row) -> std::io::Result<()> {
        if self.sub != Some(r.sub) {
            self.end_subscriber()?;
            self.sub = Some(r.sub);
            self.subscribers += 1;
        }
        self.kept += 1;
        match r.class() {
            LEVEL => self.level = r.action() as u8,
            class => self
                .entries
                .push((Kind::of(class == EXACT, r.action() == BLOCK), r.digits())),
        }
        Ok(())
    }

    fn end_subscriber(&mut self) -> std::io::Result<()> {
        let Some(key) = self.sub.take() else {
            return Ok(());
        };
        let full = self.block.push(&Record {
            key,
            level: self.level,
            entries: &self.entries,
        });
        self.level = 0;
        self.entries.clear();
        if full {
            self.end_block()?;
        }
        Ok(())
    }

    fn end_block(&mut self) -> std::io::Result<()> {
        let Some(first) = self.block.first_key() else {
            return Ok(());
        };
        self.dir.block(first, self.body.len);
        let bytes = self.block.finish();
        self.body.put(bytes)
    }

    fn finish(mut self) -> std::io::Result<(Body, DirectoryBuilder, u64, u64)> {
        if let Some(p) = self.pending.take() {
            self.take(p)?;
        }
        self.end_subscriber()?;
        if !self.block.is_empty() {
            self.end_block()?;
        }
        Ok((self.body, self.dir, self.subscribers, self.kept))
    }
}

/// Compiles subscriber CSV files into a snapshot at `out` (written to a temporary file and
/// renamed, so a reader never sees half a file). Rows are parsed and sorted on every core
/// (rayon); memory is about 16 bytes per row and a 64 MB window of input.
pub fn compile_subscribers(
    inputs: &[PathBuf],
    opts: &SubscriberCompileOptions,
    out: &Path,
) -> Result<SubscriberCompileReport, SubscriberCompileError> {
    let started = Instant::now();
    let mut parsed = Parsed::default();
    for path in inputs {
        read_input(path, opts, &mut parsed)?;
    }
    let parsed_at = Instant::now();
    let io = |source| SubscriberCompileError::Io {
        path: out.to_path_buf(),
        source,
    };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    let mut file = tmp.as_file().try_clone().map_err(io)?;
    file.write_all(&[0u8; HEADER_LEN]).map_err(io)?;
    let mut b = Builder {
        body: Body {
            file,
            buf: Vec::with_capacity(9 << 20),
            hash: blake3::Hasher::new(),
            len: 0,
        },
        dir: DirectoryBuilder::default(),
        block: BlockEncoder::default(),
        sub: None,
        level: 0,
        entries: Vec::new(),
        pending: None,
        subscribers: 0,
        kept: 0,
    };
    merge_chunks(std::mem::take(&mut parsed.chunks), |r| b.row(r).map_err(io))?;
    let (mut body, dirs, subscribers, entries) = b.finish().map_err(io)?;
    let data_len = body.len;
    // The directory starts on a cache line (an empty list has neither data nor directory).
    let pad = match data_len {
        0 => 0,
        _ => (ALIGN - (HEADER_LEN + data_len as usize) % ALIGN) % ALIGN,
    };
    body.put(&vec![0u8; pad]).map_err(io)?;
    let sections = Sections {
        data_len: body.len,
        node_count: dirs.top.len() as u64,
    };
    body.put(&dirs.nodes).map_err(io)?;
    let top: Vec<u8> = dirs.top.iter().flat_map(|k| k.to_le_bytes()).collect();
    body.put(&top).map_err(io)?;
    body.flush().map_err(io)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let created = opts.created.unwrap_or(now);
    let info = SubscriberListInfo {
        version: opts.version.unwrap_or(created),
        created,
        entries,
        subscribers,
        bytes: HEADER_LEN as u64 + body.len,
    };
    let header = encode_header(&info, body.len, body.hash.finalize().as_bytes(), sections);
    let mut file = body.file;
    file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&header).map_err(io)?;
    drop(file);
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(out).map_err(|e| io(e.error))?;
    let build_seconds = parsed_at.elapsed().as_secs_f64();
    Ok(SubscriberCompileReport {
        rows: parsed.rows,
        entries: info.entries,
        subscribers,
        bytes: info.bytes,
        errors: parsed.errors,
        error_count: parsed.error_count,
        seconds: started.elapsed().as_secs_f64(),
        parse_seconds: (parsed_at - started).as_secs_f64() - parsed.sort_seconds,
        sort_seconds: parsed.sort_seconds,
        build_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_line_ends_and_count_the_lines_before_them() {
        let data = b"a,1\nbb,22\nccc,333\nd\n";
        for size in [1, 3, 5, 100] {
            let chunks = line_chunks(data, size);
            let joined: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.iter().copied()).collect();
            assert_eq!(joined, data.to_vec(), "size {size}");
            let mut line = 0;
            for (first, c) in &chunks {
                assert_eq!(*first, line);
                assert!(c.ends_with(b"\n"));
                line += c.iter().filter(|&&b| b == b'\n').count();
            }
        }
        assert_eq!(line_chunks(b"x,1", 1), vec![(0, &b"x,1"[..])]);
    }

    fn row(sub: u64, ent: u64, action: u64) -> Row {
        Row {
            sub,
            ent: ent << 2 | action,
        }
    }

    /// Overlapping, disjoint and equal chunks merge in order, later chunks last on a tie.
    #[test]
    fn chunks_merge_in_order_with_the_later_chunk_last_on_a_tie() {
        let chunks = vec![
            vec![row(1, 1, 1), row(3, 1, 1), row(5, 0, 1)],
            vec![row(2, 0, 2), row(3, 1, 2)],
            vec![row(6, 0, 1)],
            vec![row(0, 9, 1), row(3, 1, 3), row(7, 0, 1)],
        ];
        let mut seen = Vec::new();
        merge_chunks(chunks, |r| {
            seen.push((r.sub, r.ent >> 2, r.ent & 3));
            Ok(())
        })
        .expect("merge");
        assert_eq!(
            seen,
            [
                (0, 9, 1),
                (1, 1, 1),
                (2, 0, 2),
                (3, 1, 1),
                (3, 1, 2),
                (3, 1, 3),
                (5, 0, 1),
                (6, 0, 1),
                (7, 0, 1)
            ]
        );
    }

    #[test]
    fn a_chunk_keeps_the_last_row_of_each_entry() {
        let mut rows = vec![row(2, 1, 1), row(1, 1, 3), row(2, 1, 3), row(1, 0, 2)];
        sort_chunk(&mut rows);
        assert_eq!(rows, [row(1, 0, 2), row(1, 1, 3), row(2, 1, 3)]);
    }
}
