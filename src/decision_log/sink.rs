//! Where the decision log's lines go: a stream, or a file that follows its path across
//! renames and removals (see the parent module's Rotation).

use std::io::Write;
use std::path::PathBuf;

use super::LogTarget;
use crate::file_stamp::identity;

/// Could not open the decision-log target.
#[derive(Debug, thiserror::Error)]
#[error("cannot open decision log {path}: {source} (set decision_log.target to a writable path, \"stdout\" or \"off\")")]
pub struct DecisionLogError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Where the lines go.
pub enum Sink {
    /// Nowhere: [`super::DecisionLog::record`] does nothing.
    Off,
    /// Any writer (stdout, a test buffer).
    Writer(Box<dyn Write + Send>),
    /// A file, appended to and reopened when its path no longer names it (module docs).
    File(FileSink),
}

/// An appended log file that follows its path: see the module docs' Rotation.
pub struct FileSink {
    path: PathBuf,
    /// The open file and its (device, inode); `None` after a failure until reopened.
    file: Option<(std::fs::File, (u64, u64))>,
    /// A failed batch may have left half a line that could not be taken back: the next
    /// batch starts on a new line.
    newline: bool,
}

impl FileSink {
    /// Opens `path` for appending (created if missing).
    pub fn open(path: PathBuf) -> Result<FileSink, DecisionLogError> {
        let mut sink = FileSink {
            path,
            file: None,
            newline: false,
        };
        sink.reopen().map_err(|source| DecisionLogError {
            path: sink.path.clone(),
            source,
        })?;
        Ok(sink)
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        self.file = None;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let id = identity(&f.metadata()?);
        self.file = Some((f, id));
        Ok(())
    }

    /// Writes one batch: first reopens the path if it no longer names the open file.
    fn write_batch(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let current = std::fs::metadata(&self.path).ok().map(|m| identity(&m));
        match (&self.file, current) {
            (Some((_, open)), Some(now)) if *open == now => {}
            (had, _) => {
                if had.is_some() {
                    tracing::info!(
                        "decision log {} was moved or removed: writing to a new file there",
                        self.path.display()
                    );
                }
                self.reopen()?;
            }
        }
        let Some((f, _)) = &mut self.file else {
            return Err(std::io::Error::other("not open"));
        };
        if self.newline {
            f.write_all(b"\n")?;
            self.newline = false;
        }
        let before = f.metadata().map(|m| m.len());
        let r = f.write_all(bytes).and_then(|()| f.flush());
        if r.is_err() {
            // Take back what part of the batch was written (the whole batch is counted as
            // dropped), so the next batch does not continue half a line; if that fails too,
            // the next batch starts on a new line. Reopened for the next batch (the disk may
            // have room again, the path may exist again).
            let taken_back = before.and_then(|len| f.set_len(len));
            self.newline = taken_back.is_err();
            self.file = None;
        }
        r
    }
}

/// What the writer thread writes to.
pub(super) enum Out {
    Stream(Box<dyn Write + Send>),
    File(FileSink),
}

impl Out {
    pub(super) fn write_batch(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Stream(w) => w.write_all(bytes).and_then(|()| w.flush()),
            Out::File(f) => f.write_batch(bytes),
        }
    }
}

impl Sink {
    /// Opens a [`LogTarget`].
    pub fn open(target: &LogTarget) -> Result<Sink, DecisionLogError> {
        Ok(match target {
            LogTarget::Off => Sink::Off,
            LogTarget::Stdout => Sink::Writer(Box::new(std::io::stdout())),
            LogTarget::Stderr => Sink::Writer(Box::new(std::io::stderr())),
            LogTarget::File(path) => Sink::File(FileSink::open(path.clone())?),
        })
    }
}
