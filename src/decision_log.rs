//! The decision log: one JSON line per screened call, written off the packet path.
//!
//! The packet path builds a [`DecisionRecord`] and hands it to [`DecisionLog::record`], which
//! never blocks: the record goes into a bounded queue (`std::sync::mpsc::sync_channel`), and
//! when the queue is full it is dropped and counted (`fraudwall_decision_log_dropped_total`).
//! A separate thread formats the lines and writes them through a buffered writer, flushing
//! whenever the queue runs dry, so a burst costs one write per batch.
//!
//! A line looks like:
//!
//! ```text
//! {"time":"2026-11-22T01:30:00.123Z","call_id":"a84b4c76e66710","caller_raw":"sip:+8613800000001@example.com","caller":"+8613800000001","callee":"sip:+8610555@switch","verdict":"block","category":"impersonation","matched":"+8613800000001","snapshot_version":3}
//! ```
//!
//! Memory: at most `queue` records (each a few short strings) are held at once.

use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use crate::telemetry::Telemetry;

/// One screened call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionRecord {
    /// When the decision was made.
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    /// The call's Call-ID.
    pub call_id: String,
    /// The caller value as received (lossy UTF-8).
    pub caller_raw: String,
    /// The normalized E.164 caller, or `anonymous` / `invalid`.
    pub caller: String,
    /// The callee (Request-URI).
    pub callee: String,
    /// The action taken: allow, tag, warn, block.
    pub verdict: String,
    /// Category of the matched entry (empty when not listed).
    pub category: String,
    /// The matched entry (a number or a prefix), empty when not listed.
    pub matched: String,
    /// Version of the snapshot the lookup ran against (0 = none loaded: fail open).
    pub snapshot_version: u64,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

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
    /// Nowhere: [`DecisionLog::record`] does nothing.
    Off,
    /// Any writer (stdout, a file, a test buffer).
    Writer(Box<dyn Write + Send>),
}

impl Sink {
    /// Opens a [`crate::config::LogTarget`].
    pub fn open(target: &crate::config::LogTarget) -> Result<Sink, DecisionLogError> {
        use crate::config::LogTarget;
        Ok(match target {
            LogTarget::Off => Sink::Off,
            LogTarget::Stdout => Sink::Writer(Box::new(std::io::stdout())),
            LogTarget::Stderr => Sink::Writer(Box::new(std::io::stderr())),
            LogTarget::File(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| DecisionLogError {
                        path: path.clone(),
                        source,
                    })?;
                Sink::Writer(Box::new(f))
            }
        })
    }
}

/// The sending side of the decision log; cheap to share (`Arc`).
pub struct DecisionLog {
    tx: Option<SyncSender<DecisionRecord>>,
    telemetry: Arc<Telemetry>,
    include_allowed: bool,
}

/// The writer thread; joining it flushes every queued line.
pub struct DecisionLogWriter {
    thread: Option<JoinHandle<()>>,
}

impl DecisionLog {
    /// Starts the writer thread (none for [`Sink::Off`]).
    pub fn start(
        sink: Sink,
        queue: usize,
        include_allowed: bool,
        telemetry: Arc<Telemetry>,
    ) -> (DecisionLog, DecisionLogWriter) {
        match sink {
            Sink::Off => (
                DecisionLog {
                    tx: None,
                    telemetry,
                    include_allowed,
                },
                DecisionLogWriter { thread: None },
            ),
            Sink::Writer(w) => {
                let (tx, rx) = sync_channel(queue.max(1));
                let thread = std::thread::Builder::new()
                    .name("decision-log".into())
                    .spawn(move || write_loop(rx, w))
                    .map_err(|e| {
                        tracing::error!("decision log thread not started, lines dropped: {e}")
                    })
                    .ok();
                let tx = thread.as_ref().map(|_| tx);
                (
                    DecisionLog {
                        tx,
                        telemetry,
                        include_allowed,
                    },
                    DecisionLogWriter { thread },
                )
            }
        }
    }

    /// Whether allowed calls are logged (callers can skip building their records when not).
    pub fn wants(&self, verdict_is_allow: bool) -> bool {
        self.tx.is_some() && (self.include_allowed || !verdict_is_allow)
    }

    /// Queues a record; never blocks. A full queue drops it and counts the drop.
    pub fn record(&self, rec: DecisionRecord) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(rec) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.telemetry.decision_log_dropped(1)
            }
        }
    }

    /// Stops accepting records: the writer drains the queue and exits once every clone of the
    /// sender is gone.
    pub fn close(&mut self) {
        self.tx = None;
    }
}

impl DecisionLogWriter {
    /// Waits for the writer to drain the queue (call after every [`DecisionLog`] is closed or dropped).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(rx: Receiver<DecisionRecord>, w: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, w);
    let mut failed = false;
    while let Ok(rec) = rx.recv() {
        let mut next = Some(rec);
        while let Some(rec) = next {
            let written = serde_json::to_writer(&mut out, &rec).map_err(std::io::Error::from);
            if written.and_then(|()| out.write_all(b"\n")).is_err() && !failed {
                failed = true;
                tracing::error!("decision log write failed; further lines may be lost");
            }
            next = rx.try_recv().ok();
        }
        if out.flush().is_err() && !failed {
            failed = true;
            tracing::error!("decision log flush failed; further lines may be lost");
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn rec(verdict: &str) -> DecisionRecord {
        DecisionRecord {
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
            call_id: "abc@host".into(),
            caller_raw: "sip:+8613800000001@x".into(),
            caller: "+8613800000001".into(),
            callee: "sip:100@switch".into(),
            verdict: verdict.into(),
            category: "impersonation".into(),
            matched: "+8613800000001".into(),
            snapshot_version: 3,
        }
    }

    #[test]
    fn writes_json_lines() {
        let buf = Shared::default();
        let t = Arc::new(Telemetry::new());
        let (mut log, writer) =
            DecisionLog::start(Sink::Writer(Box::new(buf.clone())), 16, false, t);
        assert!(log.wants(false) && !log.wants(true));
        log.record(rec("block"));
        log.record(rec("tag"));
        log.close();
        writer.join();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(lines[0]["verdict"], "block");
        assert_eq!(lines[1]["verdict"], "tag");
        assert_eq!(lines[0]["snapshot_version"], 3);
        assert_eq!(lines[0]["call_id"], "abc@host");
    }

    /// A writer that blocks until released, so the queue fills.
    struct Gate(Arc<Mutex<()>>);
    impl Write for Gate {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            drop(self.0.lock());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let t = Arc::new(Telemetry::new());
        let (mut log, writer) = DecisionLog::start(
            Sink::Writer(Box::new(Gate(gate.clone()))),
            2,
            true,
            t.clone(),
        );
        for _ in 0..50 {
            log.record(rec("allow"));
        }
        let dropped = t
            .render()
            .lines()
            .find_map(|l| {
                l.strip_prefix("fraudwall_decision_log_dropped_total ")?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        // The writer holds at most one record plus a batch it took; the queue holds 2.
        assert!(dropped >= 40.0, "dropped {dropped}");
        drop(held);
        log.close();
        writer.join();
    }

    #[test]
    fn off_does_nothing() {
        let t = Arc::new(Telemetry::new());
        let (log, writer) = DecisionLog::start(Sink::Off, 4, true, t);
        assert!(!log.wants(false));
        log.record(rec("block"));
        writer.join();
    }
}
