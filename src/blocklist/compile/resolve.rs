//! The sorted record stream (in memory or merged from runs), resolved key by key into the
//! snapshot file.

use super::compiler::Compiler;
use super::records::{record_key, record_value, KEY_MASK, PROTECTED_BIT};
use super::values::U64Map;
use super::{CompileError, CompileReport};
use crate::blocklist::body::BodyWriter;
use crate::blocklist::format::{Counts, Header};
use crate::blocklist::write::{HashingWriter, Pending};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

/// Sorted records from memory or merged runs.
pub(super) enum Sorted {
    Memory(std::vec::IntoIter<u128>),
    Merge {
        readers: Vec<BufReader<File>>,
        heap: BinaryHeap<std::cmp::Reverse<(u128, usize)>>,
    },
}

pub(super) fn read_record(r: &mut BufReader<File>) -> io::Result<Option<u128>> {
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

/// Resolves groups of equal keys and streams the FST into the output file.
pub(super) fn write_snapshot(
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
    let fst_tmp = tempfile::tempfile_in(crate::blocklist::write::parent_dir(out))
        .map_err(Compiler::io(out))?;
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
        let exact = crate::blocklist::key::is_exact_key(&k[..len]);
        counts.add(exact, v.action, v.tombstone);
        if !exact {
            let odd = u16::from(k[len - 1] >= crate::blocklist::key::ODD_BASE);
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
