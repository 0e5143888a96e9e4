//! Compiling subscriber CSV into a [`super::SubscriberList`] snapshot: rows parsed in
//! parallel chunks, keys sorted (stable, so a later row for the same key wins), the FST
//! built, the file written atomically. See the parent module for the formats.

use super::{encode_header, SubscriberListInfo, EXACT, HEADER_LEN, LEVEL, MAX_KEY, PREFIX, SEP};
use crate::numbers::{Caller, NumberingProfile};
use rayon::prelude::*;
use std::io::Write;
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

/// One compiled key and its value.
#[derive(Clone, Copy)]
struct Key {
    len: u8,
    bytes: [u8; MAX_KEY],
    value: u8,
}

impl Key {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

fn parse_row(profile: &NumberingProfile, line: &[u8]) -> Result<Key, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let mut fields = text.split(',').map(str::trim);
    let (Some(sub), Some(caller), Some(action), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("expected 3 fields: subscriber,caller,action".into());
    };
    let sub = match profile.normalize(sub.as_bytes()) {
        Caller::Number(n) => n,
        _ => return Err(format!("subscriber {sub:?} is not a number")),
    };
    let mut k = Key {
        len: 0,
        bytes: [0; MAX_KEY],
        value: 0,
    };
    let push = |k: &mut Key, b: &[u8]| {
        let at = usize::from(k.len);
        k.bytes[at..at + b.len()].copy_from_slice(b);
        k.len += b.len() as u8;
    };
    push(&mut k, sub.as_bytes());
    push(&mut k, &[SEP]);
    let is = |name: &str| action.eq_ignore_ascii_case(name);
    if caller == "*" {
        k.value = match () {
            () if is("allow") => 1,
            () if is("tag") => 2,
            () if is("block") => 3,
            () => return Err(format!("level {action:?}: use allow, tag or block for `*`")),
        };
        push(&mut k, &[LEVEL]);
        return Ok(k);
    }
    k.value = match () {
        () if is("allow") => 1,
        () if is("block") => 3,
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
        push(&mut k, &digits);
        push(&mut k, &[PREFIX]);
    } else {
        match profile.normalize(caller.as_bytes()) {
            Caller::Number(n) => push(&mut k, n.as_bytes()),
            _ => {
                return Err(format!(
                    "caller {caller:?} is not a number, a prefix (+86170*) or *"
                ))
            }
        }
        push(&mut k, &[EXACT]);
    }
    Ok(k)
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
    keys: Vec<Key>,
    rows: u64,
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
        keys: Vec::with_capacity(chunk.len() / 32),
        rows: 0,
        errors: Vec::new(),
        error_count: 0,
    };
    for (i, line) in chunk.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) || line.first() == Some(&b'#') {
            continue;
        }
        out.rows += 1;
        match parse_row(profile, line) {
            Ok(k) => out.keys.push(k),
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

/// Compiles subscriber CSV files into a snapshot at `out` (written to a temporary file and
/// renamed, so a reader never sees half a file). Rows are parsed and sorted on every core
/// (rayon); memory is about 34 bytes per row beside the input file.
pub fn compile_subscribers(
    inputs: &[PathBuf],
    opts: &SubscriberCompileOptions,
    out: &Path,
) -> Result<SubscriberCompileReport, SubscriberCompileError> {
    let started = Instant::now();
    let mut keys: Vec<Key> = Vec::new();
    let mut errors = Vec::new();
    let mut error_count = 0u64;
    let mut rows = 0u64;
    for path in inputs {
        let data = std::fs::read(path).map_err(|source| SubscriberCompileError::Io {
            path: path.clone(),
            source,
        })?;
        let name = path.display().to_string();
        let mut lines = data.split(|&b| b == b'\n').enumerate();
        match lines.next() {
            Some((_, h))
                if std::str::from_utf8(h)
                    .map(|h| {
                        h.trim()
                            .trim_start_matches('\u{feff}')
                            .eq_ignore_ascii_case("subscriber,caller,action")
                    })
                    .unwrap_or(false) => {}
            _ => {
                return Err(SubscriberCompileError::BadHeader {
                    at: format!("{name}:1"),
                })
            }
        }
        // The rows after the header, parsed in parallel chunks of whole lines; the chunks
        // come back in file order, so "a later row wins" still holds after a stable sort.
        let body_start = data
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| i + 1);
        let chunks = line_chunks(&data[body_start..], CHUNK_BYTES);
        let parsed: Vec<ParsedChunk> = chunks
            .par_iter()
            .map(|&(first_line, chunk)| parse_chunk(&opts.profile, &name, first_line + 2, chunk))
            .collect();
        drop(chunks);
        drop(data);
        let total: usize = parsed.iter().map(|c| c.keys.len()).sum();
        keys.reserve(total);
        for chunk in parsed {
            rows += chunk.rows;
            error_count += chunk.error_count;
            let room = 100usize.saturating_sub(errors.len());
            errors.extend(chunk.errors.into_iter().take(room));
            if error_count > opts.max_errors {
                return Err(SubscriberCompileError::TooManyErrors {
                    count: error_count,
                    max: opts.max_errors,
                    first: errors.first().map(ToString::to_string).unwrap_or_default(),
                });
            }
            keys.extend_from_slice(&chunk.keys);
        }
    }
    let parsed_at = Instant::now();
    // A stable sort keeps rows in order within a key: the last one wins.
    keys.par_sort_by(|a, b| a.as_slice().cmp(b.as_slice()));
    // In place (no second copy of the keys): the last row of each key wins.
    let mut kept = 0usize;
    for i in 0..keys.len() {
        if kept > 0 && keys[kept - 1].as_slice() == keys[i].as_slice() {
            keys[kept - 1] = keys[i];
        } else {
            keys[kept] = keys[i];
            kept += 1;
        }
    }
    keys.truncate(kept);
    let unique = keys;
    let sorted_at = Instant::now();
    let mut builder = fst::MapBuilder::memory();
    let mut subscribers = 0u64;
    let mut last_sub: &[u8] = &[];
    for k in &unique {
        let s = k.as_slice();
        let sub = s.split(|&b| b == SEP).next().unwrap_or(s);
        if sub != last_sub {
            subscribers += 1;
            last_sub = sub;
        }
        builder
            .insert(s, u64::from(k.value))
            .map_err(|e| SubscriberCompileError::Index(e.to_string()))?;
    }
    let body = builder
        .into_inner()
        .map_err(|e| SubscriberCompileError::Index(e.to_string()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let created = opts.created.unwrap_or(now);
    let info = SubscriberListInfo {
        version: opts.version.unwrap_or(created),
        created,
        entries: unique.len() as u64,
        subscribers,
        bytes: (HEADER_LEN + body.len()) as u64,
    };
    let header = encode_header(&info, body.len() as u64, blake3::hash(&body).as_bytes());
    let io = |source| SubscriberCompileError::Io {
        path: out.to_path_buf(),
        source,
    };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(&header).map_err(io)?;
    tmp.write_all(&body).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(out).map_err(|e| io(e.error))?;
    Ok(SubscriberCompileReport {
        rows,
        entries: info.entries,
        subscribers,
        bytes: info.bytes,
        errors,
        error_count,
        seconds: started.elapsed().as_secs_f64(),
        parse_seconds: (parsed_at - started).as_secs_f64(),
        sort_seconds: (sorted_at - parsed_at).as_secs_f64(),
        build_seconds: sorted_at.elapsed().as_secs_f64(),
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
}
