//! The decision log: one JSON line per screened call, written off the packet path.
//!
//! The packet path formats the line itself (a few hundred bytes, no allocation once its
//! thread's scratch buffer has grown) and appends it to a shared batch under a mutex held for
//! one `memcpy`. It never blocks on I/O and never wakes anybody per call: the writer thread
//! sleeps until [`FLUSH_INTERVAL`] has passed or the batch holds [`WAKE_LINES`] lines, then
//! swaps the batch for an empty one and writes it with one `write` call. At carrier rates
//! that is one wake-up and one system call per 100 ms instead of one (plus a futex wake and
//! a context switch) per call. When the batch is full (`queue` lines, or `queue` KiB) lines
//! are dropped and counted (`fraudwall_decision_log_dropped_total`).
//!
//! A line looks like:
//!
//! ```text
//! {"time":"2026-11-22T01:30:00.123Z","call_id":"a84b4c76e66710","identity":"pai","caller_raw":"sip:+8613800000001@example.com","caller":"+8613800000001","callee":"+8610555","callee_raw":"sip:+8610555@switch","peer_group":"core","verdict":"block","rule":"global","reason":"listed","category":"impersonation","matched":"+8613800000001","snapshot_version":3,"verstat":"absent","front":"proxy"}
//! ```
//!
//! Memory: at most two batches (the one filling, the one being written) of at most `queue`
//! lines and `queue` KiB each.
//!
//! # Rotation
//!
//! A file target is appended to, and before each batch the writer checks that the path still
//! names the file it has open (device and inode): when logrotate (or anyone) has renamed or
//! removed it, the writer opens the path anew and goes on there. No signal and no
//! `copytruncate` is needed; lines written in the last flush interval before the rename land
//! in the renamed file (so rotate with `delaycompress`; `integration/deploy/fraudwall.logrotate`
//! does). A batch that cannot be written (a full disk, a path that cannot be created) is
//! counted as dropped, logged once until writing works again, and the file is reopened for
//! the next batch; what part of it reached the file is cut off again, so no half line is
//! left for the next batch to continue.

use serde::Serialize;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::telemetry::Telemetry;

mod sink;
use sink::Out;
pub use sink::{DecisionLogError, FileSink, Sink};

/// The longest a line waits in the batch before the writer takes it.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// A batch this many lines long wakes the writer before [`FLUSH_INTERVAL`].
pub const WAKE_LINES: usize = 4096;

/// One screened call (borrowed: the packet path builds it from the message without copies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DecisionRecord<'a> {
    /// When the decision was made.
    #[serde(skip)]
    pub time: SystemTime,
    /// The call's Call-ID.
    pub call_id: &'a str,
    /// The header whose value decided (`pai`, `rpid`, `from`; `none` when the call had no
    /// identity value): every value is screened and the most severe verdict wins. `api`: the
    /// caller was given to the HTTP API.
    pub identity: &'a str,
    /// The deciding value as received (lossy UTF-8).
    pub caller_raw: &'a str,
    /// The normalized E.164 caller, or `anonymous` / `invalid`.
    pub caller: &'a str,
    /// The callee normalized to E.164 (from the Request-URI, else To), empty when it is not
    /// a number.
    pub callee: &'a str,
    /// The Request-URI as received (lossy UTF-8).
    pub callee_raw: &'a str,
    /// The peer group the call entered from (`default`: a source in no group).
    pub peer_group: &'a str,
    /// The action taken: allow, tag, warn, block.
    pub verdict: &'a str,
    /// The rule-chain stage that decided (`protected-callee`, `impersonation`,
    /// `international-spoof`, `personal`, `global`, `verstat`, `behaviour`, `anonymous`,
    /// `invalid`, `international-origin`, `default`).
    pub rule: &'a str,
    /// Why: the verdict's [`crate::policy::Reason`] label (`listed`, `unlisted`, `anonymous`,
    /// `invalid`, `evasion`, `no_snapshot`, `internal_error`).
    pub reason: &'a str,
    /// Category of the matched entry (empty when not listed).
    pub category: &'a str,
    /// The matched entry (a number or a prefix), empty when not listed; for `rule` =
    /// `behaviour`, the detection rule that held (`robocall`, `robocall-block`).
    pub matched: &'a str,
    /// Version of the list that decided, or of the blocklist consulted (0 = none).
    pub snapshot_version: u64,
    /// What trusted peers asserted about the caller ID (`absent`, `passed`, `failed`,
    /// `no-validation`, `unknown`).
    pub verstat: &'a str,
    /// The front end that screened the call.
    pub front: Front,
}

/// The front end that screened a call (`front` in the decision log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Front {
    /// The inline SIP proxy.
    Proxy,
    /// The SIP redirect server (`sip.mode = "redirect"`).
    Redirect,
    /// The HTTP verdict API ([`crate::api`]).
    Api,
}

impl DecisionRecord<'_> {
    /// Appends the JSON line (with its `\n`) to `out`.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":\"");
        write_rfc3339_millis(out, self.time);
        out.extend_from_slice(b"\",");
        // serde_json writes the remaining fields as an object; splice its body after "time".
        let start = out.len();
        if serde_json::to_writer(&mut *out, self).is_err() || out.get(start) != Some(&b'{') {
            // Unreachable (every field is a string or an integer); keep the line valid JSON.
            out.truncate(start - 1);
            out.extend_from_slice(b"}\n");
            return;
        }
        out.remove(start);
        out.push(b'\n');
    }
}

/// Writes `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), without `fmt`.
pub fn write_rfc3339_millis(out: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm), for years 1970..=9999.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999) as u64;
    let two = |out: &mut Vec<u8>, v: u64| {
        out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8])
    };
    two(out, year / 100);
    two(out, year % 100);
    out.push(b'-');
    two(out, month as u64);
    out.push(b'-');
    two(out, day as u64);
    out.push(b'T');
    two(out, rem / 3600);
    out.push(b':');
    two(out, rem % 3600 / 60);
    out.push(b':');
    two(out, rem % 60);
    out.push(b'.');
    let ms = u64::from(d.subsec_millis());
    out.push(b'0' + (ms / 100) as u8);
    two(out, ms % 100);
    out.push(b'Z');
}

/// `[decision_log]`: the per-call JSON lines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// Where the lines go.
    pub target: LogTarget,
    /// At most this many lines, and this many KiB, wait for the writer thread, 1 to 16777216.
    pub queue: usize,
    /// Also log allowed calls.
    pub include_allowed: bool,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        DecisionLogConfig {
            target: LogTarget::Stdout,
            queue: 65536,
            include_allowed: true,
        }
    }
}

impl DecisionLogConfig {
    /// Checks the queue bound; the error names the key.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        if self.queue == 0 || self.queue > 16 * 1024 * 1024 {
            return Err(crate::config::ConfigError::Invalid {
                key: "decision_log.queue".into(),
                reason: format!("{} is out of range 1 to 16777216", self.queue),
            });
        }
        Ok(())
    }
}

/// Where decision-log lines go: `"stdout"` (or `"-"`), `"stderr"`, `"off"`, or a file path
/// (appended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Not written.
    Off,
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Appended to a file.
    File(PathBuf),
}

impl std::str::FromStr for LogTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "off" => LogTarget::Off,
            "stdout" | "-" => LogTarget::Stdout,
            "stderr" => LogTarget::Stderr,
            "" => return Err("empty: use \"off\", \"stdout\", \"stderr\" or a path".into()),
            path => LogTarget::File(PathBuf::from(path)),
        })
    }
}

impl std::fmt::Display for LogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogTarget::Off => f.write_str("off"),
            LogTarget::Stdout => f.write_str("stdout"),
            LogTarget::Stderr => f.write_str("stderr"),
            LogTarget::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl serde::Serialize for LogTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for LogTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The batch being filled.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: usize,
    closed: bool,
}

struct Shared {
    batch: Mutex<Batch>,
    wake: Condvar,
    max_lines: usize,
    max_bytes: usize,
}

/// The sending side of the decision log; cheap to share (`Arc`).
pub struct DecisionLog {
    shared: Option<Arc<Shared>>,
    telemetry: Arc<Telemetry>,
    include_allowed: bool,
}

/// The writer thread; joining it flushes every queued line.
pub struct DecisionLogWriter {
    thread: Option<JoinHandle<()>>,
    shared: Option<Arc<Shared>>,
}

thread_local! {
    /// Each packet thread's line buffer (formatting happens outside the lock).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl DecisionLog {
    /// Starts the writer thread (none for [`Sink::Off`]). `queue` bounds the batch: at most
    /// `queue` lines and `queue` KiB wait to be written.
    pub fn start(
        sink: Sink,
        queue: usize,
        include_allowed: bool,
        telemetry: Arc<Telemetry>,
    ) -> (DecisionLog, DecisionLogWriter) {
        let off = |telemetry| {
            (
                DecisionLog {
                    shared: None,
                    telemetry,
                    include_allowed,
                },
                DecisionLogWriter {
                    thread: None,
                    shared: None,
                },
            )
        };
        let out = match sink {
            Sink::Off => return off(telemetry),
            Sink::Writer(w) => Out::Stream(w),
            Sink::File(f) => Out::File(f),
        };
        let queue = queue.max(1);
        let shared = Arc::new(Shared {
            batch: Mutex::new(Batch::default()),
            wake: Condvar::new(),
            max_lines: queue,
            max_bytes: queue.saturating_mul(1024),
        });
        let s2 = Arc::clone(&shared);
        let s3 = Arc::clone(&shared);
        let t2 = Arc::clone(&telemetry);
        match std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_loop(&s2, out, &t2))
        {
            Ok(thread) => (
                DecisionLog {
                    shared: Some(shared),
                    telemetry,
                    include_allowed,
                },
                DecisionLogWriter {
                    thread: Some(thread),
                    shared: Some(s3),
                },
            ),
            Err(e) => {
                tracing::error!("decision log thread not started, lines dropped: {e}");
                off(telemetry)
            }
        }
    }

    /// Whether allowed calls are logged (callers can skip building their records when not).
    pub fn wants(&self, verdict_is_allow: bool) -> bool {
        self.shared.is_some() && (self.include_allowed || !verdict_is_allow)
    }

    /// Queues a record's line; never blocks on I/O. A full batch drops it and counts the drop.
    pub fn record(&self, rec: &DecisionRecord<'_>) {
        let Some(shared) = &self.shared else { return };
        let queued = SCRATCH.with(|scratch| {
            let Ok(mut line) = scratch.try_borrow_mut() else {
                return false;
            };
            line.clear();
            rec.write_line(&mut line);
            let Ok(mut batch) = shared.batch.lock() else {
                return false;
            };
            if batch.closed
                || batch.lines >= shared.max_lines
                || batch.bytes.len() + line.len() > shared.max_bytes
            {
                return false;
            }
            batch.bytes.extend_from_slice(&line);
            batch.lines += 1;
            if batch.lines == WAKE_LINES.min(shared.max_lines) {
                shared.wake.notify_one();
            }
            true
        });
        if !queued {
            self.telemetry.decision_log_dropped(1);
        }
    }

    /// Stops accepting records: the writer writes what is queued and exits.
    pub fn close(&mut self) {
        if let Some(shared) = self.shared.take() {
            if let Ok(mut b) = shared.batch.lock() {
                b.closed = true;
            }
            shared.wake.notify_one();
        }
    }
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        self.close();
    }
}

impl DecisionLogWriter {
    /// Closes the log, waits for the writer to write what is queued, and returns. Lines
    /// recorded after this are dropped (and counted): call it once the packet paths have
    /// stopped. It does not wait for every [`DecisionLog`] to be dropped, so a handle kept
    /// alive elsewhere (a task not yet reaped, a reference cycle) cannot stall a shutdown.
    pub fn join(mut self) {
        if let Some(shared) = self.shared.take() {
            if let Ok(mut b) = shared.batch.lock() {
                b.closed = true;
            }
            shared.wake.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(shared: &Shared, mut out: Out, telemetry: &Telemetry) {
    let mut taken = Vec::new();
    let mut failed = false;
    loop {
        let (closed, lines) = {
            let Ok(mut batch) = shared.batch.lock() else {
                return;
            };
            if !batch.closed && batch.lines < WAKE_LINES.min(shared.max_lines) {
                batch = match shared.wake.wait_timeout(batch, FLUSH_INTERVAL) {
                    Ok((b, _)) => b,
                    Err(_) => return,
                };
            }
            std::mem::swap(&mut taken, &mut batch.bytes);
            (batch.closed, std::mem::take(&mut batch.lines))
        };
        if !taken.is_empty() {
            match out.write_batch(&taken) {
                Ok(()) if failed => {
                    failed = false;
                    tracing::info!("decision log written again");
                }
                Ok(()) => {}
                Err(e) => {
                    // The batch is lost: counted with the lines a full queue drops.
                    telemetry.decision_log_dropped(lines as u64);
                    if !failed {
                        failed = true;
                        tracing::error!(
                            "decision log write failed ({e}): lines are dropped and counted \
                             (fraudwall_decision_log_dropped_total) until it works again"
                        );
                    }
                }
            }
            taken.clear();
            // Do not keep a burst's worth of memory for ever.
            taken.shrink_to(256 * 1024);
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
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

    fn rec(verdict: &str) -> DecisionRecord<'_> {
        DecisionRecord {
            time: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
            call_id: "abc@host",
            identity: "pai",
            caller_raw: "sip:+8613800000001@x",
            caller: "+8613800000001",
            callee: "+86100",
            callee_raw: "sip:100@switch",
            peer_group: "core",
            verdict,
            rule: "global",
            reason: "listed",
            category: "impersonation",
            matched: "+8613800000001",
            snapshot_version: 3,
            verstat: "absent",
            front: Front::Proxy,
        }
    }

    #[test]
    fn join_flushes_and_returns_while_a_log_handle_is_still_alive() {
        let buf = Shared::default();
        let t = Arc::new(Telemetry::new());
        let (log, writer) = DecisionLog::start(Sink::Writer(Box::new(buf.clone())), 16, true, t);
        log.record(&rec("block"));
        // The handle stays alive (as one held by a reference cycle at shutdown would):
        // joining must not wait for it.
        writer.join();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        // After the join, lines are dropped, not queued for a writer that is gone.
        log.record(&rec("tag"));
        assert_eq!(
            String::from_utf8(buf.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .count(),
            1
        );
        drop(log);
    }

    #[test]
    fn writes_json_lines() {
        let buf = Shared::default();
        let t = Arc::new(Telemetry::new());
        let (mut log, writer) =
            DecisionLog::start(Sink::Writer(Box::new(buf.clone())), 16, false, t);
        assert!(log.wants(false) && !log.wants(true));
        log.record(&rec("block"));
        log.record(&rec("tag"));
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
        assert_eq!(lines[0]["reason"], "listed");
        assert_eq!(lines[0]["call_id"], "abc@host");
        assert_eq!(lines[0]["identity"], "pai");
        assert_eq!(lines[0]["rule"], "global");
        assert_eq!(lines[0]["callee"], "+86100");
        assert_eq!(lines[0]["peer_group"], "core");
        assert_eq!(lines[0]["front"], "proxy");
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
            log.record(&rec("allow"));
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

    fn dropped(t: &Telemetry) -> f64 {
        t.render()
            .lines()
            .find_map(|l| {
                l.strip_prefix("fraudwall_decision_log_dropped_total ")?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    }

    /// The file's lines once it has `n` of them (the writer flushes every 100 ms), or what it
    /// has after 3 s.
    fn lines_of(path: &std::path::Path, n: usize) -> Vec<String> {
        let until = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if lines.len() >= n || std::time::Instant::now() > until {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_file_moved_or_removed_is_reopened_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let t = Arc::new(Telemetry::new());
        let sink = Sink::open(&LogTarget::File(path.clone())).unwrap();
        let (log, writer) = DecisionLog::start(sink, 16, true, t.clone());
        log.record(&rec("block"));
        assert_eq!(lines_of(&path, 1).len(), 1);

        // logrotate renames the file: the next lines go to a new file at the path.
        let rotated = dir.path().join("decisions.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.record(&rec("tag"));
        let new = lines_of(&path, 1);
        assert_eq!(new.len(), 1, "a new file at the path");
        assert!(new[0].contains("\"verdict\":\"tag\""), "{new:?}");
        let old = lines_of(&rotated, 1);
        assert_eq!(old.len(), 1);
        assert!(old[0].contains("\"verdict\":\"block\""), "{old:?}");

        // Removed outright: the same.
        std::fs::remove_file(&path).unwrap();
        log.record(&rec("warn"));
        let again = lines_of(&path, 1);
        assert_eq!(again.len(), 1);
        assert!(again[0].contains("\"verdict\":\"warn\""), "{again:?}");
        drop(log);
        writer.join();
        assert_eq!(dropped(&t), 0.0);
    }

    /// A writer whose writes all fail (a full disk).
    struct Failing;
    impl Write for Failing {
        fn write(&mut self, _b: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("no space left on device"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_batch_that_cannot_be_written_is_counted_as_dropped() {
        let t = Arc::new(Telemetry::new());
        let (log, writer) =
            DecisionLog::start(Sink::Writer(Box::new(Failing)), 16, true, t.clone());
        for _ in 0..3 {
            log.record(&rec("block"));
        }
        drop(log);
        writer.join();
        assert_eq!(dropped(&t), 3.0);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_that_cannot_be_reopened_drops_and_counts_then_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let path = logs.join("decisions.jsonl");
        let t = Arc::new(Telemetry::new());
        let sink = Sink::open(&LogTarget::File(path.clone())).unwrap();
        let (log, writer) = DecisionLog::start(sink, 16, true, t.clone());
        // The directory goes away: the path cannot be created, the lines are lost, counted.
        std::fs::remove_dir_all(&logs).unwrap();
        log.record(&rec("block"));
        let until = std::time::Instant::now() + Duration::from_secs(3);
        while dropped(&t) < 1.0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(dropped(&t), 1.0);
        // It comes back: writing resumes there.
        std::fs::create_dir(&logs).unwrap();
        log.record(&rec("tag"));
        let lines = lines_of(&path, 1);
        assert_eq!(lines.len(), 1, "written again once the path can be created");
        assert!(lines[0].contains("\"verdict\":\"tag\""));
        drop(log);
        writer.join();
    }

    #[test]
    fn timestamps_match_humantime() {
        let mut t = 0u64;
        while t < 8_000_000_000_000 {
            let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(t);
            let mut ours = Vec::new();
            write_rfc3339_millis(&mut ours, at);
            let theirs = humantime::format_rfc3339_millis(at).to_string();
            assert_eq!(String::from_utf8(ours).unwrap(), theirs, "at {t} ms");
            t += 86_399_997 + t / 1000;
        }
    }

    #[test]
    fn line_escapes_and_has_every_field() {
        let mut r = rec("allow");
        r.call_id = "a\"b\\c\n";
        let mut out = Vec::new();
        r.write_line(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["call_id"], "a\"b\\c\n");
        assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v.as_object().unwrap().len(), 16);
    }

    #[test]
    fn lines_are_written_without_close_within_the_interval() {
        let buf = Shared::default();
        let t = Arc::new(Telemetry::new());
        let (log, writer) = DecisionLog::start(Sink::Writer(Box::new(buf.clone())), 16, true, t);
        log.record(&rec("allow"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while buf.0.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!buf.0.lock().unwrap().is_empty());
        drop(log);
        writer.join();
    }

    #[test]
    fn off_does_nothing() {
        let t = Arc::new(Telemetry::new());
        let (log, writer) = DecisionLog::start(Sink::Off, 4, true, t);
        assert!(!log.wants(false));
        log.record(&rec("block"));
        writer.join();
    }
}
