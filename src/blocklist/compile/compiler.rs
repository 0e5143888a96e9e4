//! The compiler's state: inputs read block by block, parsed on all cores, records buffered
//! and spilled to sorted runs on disk.

use super::parse::{
    detect_layout, parse_chunk, parse_key, split_lines, ChunkOut, Layout, ParseCtx,
};
use super::records::{record, record_value, with_ids};
use super::strings::Interner;
use super::values::{count_values, U64Map};
use super::{
    builtin_protected, CompileError, CompileOptions, CompileReport, Input, RowError, BLOCK_BYTES,
};
use crate::blocklist::key::EntryKey;
use crate::blocklist::value::PackedValue;
use crate::blocklist::Action;
use rayon::prelude::*;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub(super) struct Compiler<'a> {
    opts: &'a CompileOptions,
    pub(super) categories: Interner,
    pub(super) sources: Interner,
    pub(super) buffer: Vec<u128>,
    cap: usize,
    pub(super) runs: Vec<PathBuf>,
    pub(super) spill_dir: Option<tempfile::TempDir>,
    spill_parent: PathBuf,
    pub(super) value_counts: U64Map<u64>,
    pub(super) report: CompileReport,
    pub(super) progress: indicatif::ProgressBar,
}

impl<'a> Compiler<'a> {
    pub(super) fn new(opts: &'a CompileOptions, out: &Path, total_bytes: u64) -> Compiler<'a> {
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
                .unwrap_or_else(|| crate::blocklist::write::parent_dir(out)),
            report: CompileReport::default(),
            value_counts: U64Map::default(),
            progress,
        }
    }

    pub(super) fn io(path: &Path) -> impl FnOnce(io::Error) -> CompileError + '_ {
        move |source| CompileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(super) fn add_input(&mut self, input: &Input<'_>) -> Result<(), CompileError> {
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

    pub(super) fn spill(&mut self) -> Result<(), CompileError> {
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

    pub(super) fn add_protected(&mut self) -> Result<(), CompileError> {
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
