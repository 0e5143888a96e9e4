//! Compiling a delta: what changed between the feed's current list and the operator's new
//! one, as a small snapshot of additions and tombstones.
//!
//! The operator always compiles the whole list. [`compile_delta`] walks the previous full
//! list and the new one side by side (both stream their entries in key order, so this is one
//! merge pass in constant memory) and writes, in the blocklist's own snapshot format with
//! `kind = delta`:
//!
//! - every entry only in the new list, or in both with a different value, as a normal entry;
//! - every entry only in the previous list as a **tombstone** (same key, tombstone flag set),
//!   which hides the entry below it in a layered lookup (see [`super::layered`]).
//!
//! The delta's header names the feed's base (version and hash), so a node refuses to layer it
//! on anything else. The body is built in memory and capped (`max_bytes`): a delta that would
//! outgrow its budget is abandoned early with [`DeltaError::TooLarge`] and the publisher
//! writes a new base instead, so a wholesale change never costs a full in-memory copy.
//!
//! Memory: the delta's FST, string and value tables (a 1,000-number delta is a few
//! kilobytes).

use crate::blocklist::body::{self, BodyWriter};
use crate::blocklist::diff::{paired_entries, Paired};
use crate::blocklist::format::{Counts, Header, Kind};
use crate::blocklist::snapshot::{Match, Snapshot, SnapshotError};
use crate::blocklist::value::PackedValue;
use std::collections::HashMap;
use std::path::Path;

/// Why a delta could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// Reading one of the snapshots failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The delta would exceed its size budget (publish a new base instead).
    #[error("the delta would exceed {0} bytes: publish a new base instead")]
    TooLarge(u64),
    /// More distinct categories or sources than a snapshot can hold.
    #[error("more than {} distinct categories or sources in one delta", u16::MAX)]
    TooManyStrings,
    /// Building the FST failed.
    #[error("building the delta FST failed: {0}")]
    Fst(String),
    /// Writing the file failed.
    #[error("writing the delta {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What went into a delta.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeltaReport {
    /// Entries only in the new list.
    pub added: u64,
    /// Entries in both lists with a different value.
    pub changed: u64,
    /// Entries only in the previous list (written as tombstones).
    pub removed: u64,
    /// Size of the delta file in bytes (0 when nothing changed and no file was written).
    pub bytes: u64,
}

impl DeltaReport {
    /// Entries the delta carries.
    pub fn changes(&self) -> u64 {
        self.added + self.changed + self.removed
    }
}

/// The header fields of a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaHeader {
    /// The delta's snapshot version.
    pub version: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// The feed base's snapshot version.
    pub base_version: u64,
    /// The feed base's hash ([`Snapshot::hash`]).
    pub base_hash: [u8; 32],
}

/// Interned category and source names.
#[derive(Default)]
struct Strings {
    ids: HashMap<String, u16>,
    names: Vec<String>,
}

impl Strings {
    fn id(&mut self, s: &str) -> Result<u16, DeltaError> {
        if let Some(&id) = self.ids.get(s) {
            return Ok(id);
        }
        let id = u16::try_from(self.names.len()).map_err(|_| DeltaError::TooManyStrings)?;
        self.ids.insert(s.to_string(), id);
        self.names.push(s.to_string());
        Ok(id)
    }
}

fn same_value(a: &Match<'_>, b: &Match<'_>) -> bool {
    a.action == b.action
        && a.score == b.score
        && a.category == b.category
        && a.source == b.source
        && a.tombstone == b.tombstone
}

fn fst_err(e: fst::Error) -> DeltaError {
    DeltaError::Fst(e.to_string())
}

/// Compiles the delta from `previous` (the feed's current full list) to `new` into `out`.
///
/// Writes nothing and returns a report with `bytes == 0` when the lists are equal.
pub fn compile_delta(
    previous: &Snapshot,
    new: &Snapshot,
    header: DeltaHeader,
    max_bytes: u64,
    out: &Path,
) -> Result<DeltaReport, DeltaError> {
    let mut report = DeltaReport::default();
    let mut builder = BodyWriter::new(Vec::new(), Vec::new(), 0).map_err(fst_err)?;
    let (mut categories, mut sources) = (Strings::default(), Strings::default());
    let mut counts = Counts::default();
    let (mut values, mut value_ids) = (Vec::<u64>::new(), HashMap::<u64, u64>::new());
    let mut prefix_lengths = 0u16;
    let mut emit = |m: &Match<'_>, tombstone: bool| -> Result<(), DeltaError> {
        let value = PackedValue {
            action: m.action,
            tombstone,
            score: m.score,
            category: categories.id(m.category)?,
            source: sources.id(m.source)?,
        };
        counts.add(m.entry.is_exact(), m.action, tombstone);
        if !m.entry.is_exact() {
            // Bit n: a prefix of n digits exists (the lookup walk skips lengths without).
            prefix_lengths |= 1u16 << (m.entry.digits().len() as u16 & 15);
        }
        // The FST output is an index into the header's value table.
        let packed = value.pack();
        let next = values.len() as u64;
        let index = *value_ids.entry(packed).or_insert(next);
        if index == next {
            values.push(packed);
        }
        builder
            .insert(m.entry.encode().as_slice(), index)
            .map_err(fst_err)?;
        if builder.bytes_written() > max_bytes {
            return Err(DeltaError::TooLarge(max_bytes));
        }
        Ok(())
    };
    for pair in paired_entries(previous, new) {
        match pair? {
            Paired::Removed(p) => {
                emit(&p, true)?;
                report.removed += 1;
            }
            Paired::Added(q) => {
                emit(&q, false)?;
                report.added += 1;
            }
            Paired::Both(p, q) => {
                if !same_value(&p, &q) {
                    emit(&q, false)?;
                    report.changed += 1;
                }
            }
        }
    }
    if report.changes() == 0 {
        return Ok(report);
    }
    // Leaves first, then the FST; the padding that aligns the leaves depends on the header's
    // length, which the header's fixed-width fields do not change.
    let parts = builder.finish().map_err(fst_err)?;
    let mut head = Header {
        version: header.version,
        created: header.created,
        kind: Kind::Delta {
            base_version: header.base_version,
            base_hash: header.base_hash,
        },
        counts,
        prefix_lengths,
        body_len: 0,
        fst_offset: 0,
        body_hash: [0; 32],
        categories: categories.names,
        sources: sources.names,
        values,
    };
    let pad = body::padding(head.encode().len());
    let mut body = vec![0u8; pad];
    body.extend_from_slice(&parts.leaves);
    body.extend_from_slice(&parts.fst);
    head.fst_offset = (pad + parts.leaves.len()) as u64;
    head.body_len = body.len() as u64;
    head.body_hash = *blake3::hash(&body).as_bytes();
    let mut bytes = head.encode();
    bytes.extend_from_slice(&body);
    if bytes.len() as u64 > max_bytes {
        return Err(DeltaError::TooLarge(max_bytes));
    }
    crate::blocklist::write::atomic_write(out, &bytes).map_err(|source| DeltaError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    report.bytes = bytes.len() as u64;
    Ok(report)
}
