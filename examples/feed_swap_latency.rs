//! Does a feed swap delay calls? Call latency through `fraudwall run` with and without 50
//! swaps (bases and deltas) going on.
//!
//! ```text
//! cargo build --release --bin fraudwall --example feed_swap_latency
//! target/release/examples/feed_swap_latency [CALLS_PER_SEC [nice]]     # default 1000
//! ```
//!
//! Starts, in a temporary directory, a feed (`fraudwall publish` + `fraudwall feed serve`)
//! and a node (`fraudwall run --feed ... --feed-poll 200ms`, the `fraudwall` binary next to
//! this example). A client sends INVITEs from a blocked caller at a steady rate and times
//! each `608` answer (socket to socket: parse, lookup, answer). Phase 1 runs 5 s with no
//! publish; phase 2 lasts while 50 new versions are published, each waited for on the node's
//! `/status`. Prints p50, p99, max and lost calls per phase. With `nice`, the publisher
//! runs at the lowest CPU priority (it shares this box's cores with the node here; in
//! production it runs elsewhere).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BLOCKED: &str = "8613800000001";

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("fraudwall"))
        .unwrap_or_else(|| PathBuf::from("fraudwall"))
}

fn fw(args: &[&str]) -> Result<(), String> {
    // `nice` as second argument: the publisher (compile, publish) at the lowest CPU priority,
    // as if it ran on another machine, as it does in production.
    let niced = std::env::args().nth(2).as_deref() == Some("nice");
    let mut cmd = if niced {
        let mut c = Command::new("nice");
        c.args(["-n", "19"]).arg(bin());
        c
    } else {
        Command::new(bin())
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", bin().display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "fraudwall {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn port() -> Result<u16, String> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    s.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn list(i: u64) -> String {
    let mut rows = format!("number,action,category,score,source\n+{BLOCKED},block,x,95,police\n");
    for j in 0..2_000u64 {
        let n = (i * 7_919 + j * 104_729) % 100_000_000;
        rows.push_str(&format!("+86139{n:08},block,robocall,80,reports\n"));
    }
    rows
}

fn publish(dir: &Path, v: u64) -> Result<(), String> {
    let csv = dir.join(format!("l{v}.csv"));
    std::fs::write(&csv, list(v)).map_err(|e| e.to_string())?;
    let fwb = dir.join(format!("l{v}.fwb"));
    let s = |p: &Path| p.display().to_string();
    fw(&[
        "compile",
        "--profile",
        "generic",
        "--output",
        &s(&fwb),
        &s(&csv),
    ])?;
    fw(&[
        "publish",
        "--feed-dir",
        &s(&dir.join("feed")),
        "--key",
        &s(&dir.join("op.key")),
        "--max-deltas",
        "3",
        "--max-delta-fraction",
        "10",
        &s(&fwb),
    ])
}

fn active_version(admin: u16) -> Option<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", admin)).ok()?;
    s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let v: serde_json::Value = serde_json::from_str(out.split("\r\n\r\n").nth(1)?).ok()?;
    v["feed"]["active_version"].as_u64()
}

fn wait_version(admin: u16, v: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while active_version(admin) != Some(v) {
        if Instant::now() > deadline {
            return Err(format!("version {v} never became active"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), String> {
    let rate: u64 = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = tmp.path();
    let s = |p: &Path| p.display().to_string();
    fw(&["keygen", "--output", &s(&dir.join("op"))])?;
    publish(dir, 1)?;
    let (feed_port, sip, admin) = (port()?, port()?, port()?);
    let _feed = Kill(
        Command::new(bin())
            .args([
                "feed",
                "serve",
                "--listen",
                &format!("127.0.0.1:{feed_port}"),
            ])
            .arg(dir.join("feed"))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let sink = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let next_hop = sink.local_addr().map_err(|e| e.to_string())?;
    let _node = Kill(
        Command::new(bin())
            .args([
                "run",
                "--feed",
                &format!("http://127.0.0.1:{feed_port}/manifest.json"),
                "--feed-key",
                &s(&dir.join("op.pub")),
                "--feed-poll",
                "200ms",
                "--cache-dir",
                &s(&dir.join("cache")),
                "--listen",
                &format!("127.0.0.1:{sip}"),
                "--next-hop",
                &next_hop.to_string(),
                "--admin",
                &format!("127.0.0.1:{admin}"),
                "--decision-log",
                "off",
                "--log-level",
                "warn",
            ])
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    wait_version(admin, 1)?;

    // The client: one INVITE every 1/rate s; the receiver times each 608 by its Call-ID.
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?);
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let sent: Arc<Mutex<HashMap<u64, (Instant, u8)>>> = Arc::default();
    let samples: Arc<Mutex<[Vec<Duration>; 2]>> = Arc::default();
    let phase = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (sock, sent, samples, stop) =
            (sock.clone(), sent.clone(), samples.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let now = Instant::now();
                let text = String::from_utf8_lossy(&buf[..n]);
                if !text.starts_with("SIP/2.0 608") {
                    continue;
                }
                let id = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Call-ID: lat-"))
                    .and_then(|r| r.split('@').next())
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some((t, p)) = id.and_then(|id| sent.lock().ok()?.remove(&id)) {
                    if let Ok(mut s) = samples.lock() {
                        s[p as usize].push(now - t);
                    }
                }
            }
        })
    };
    let sender = {
        let (sock, sent, phase, stop) = (sock.clone(), sent.clone(), phase.clone(), stop.clone());
        std::thread::spawn(move || {
            let every = Duration::from_nanos(1_000_000_000 / rate.max(1));
            let start = Instant::now();
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = start + every * seq as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let msg = format!(
                    "INVITE sip:+8613900000000@127.0.0.1:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKlat{seq}\r\nMax-Forwards: 70\r\nFrom: <sip:+{BLOCKED}@127.0.0.1>;tag=t{seq}\r\nTo: <sip:+8613900000000@127.0.0.1>\r\nCall-ID: lat-{seq}@bench\r\nCSeq: 1 INVITE\r\nContact: <sip:c@{local}>\r\nContent-Length: 0\r\n\r\n"
                );
                if let Ok(mut m) = sent.lock() {
                    m.insert(seq, (Instant::now(), phase.load(Ordering::Relaxed)));
                }
                let _ = sock.send_to(msg.as_bytes(), ("127.0.0.1", sip));
                seq += 1;
            }
            seq
        })
    };

    std::thread::sleep(Duration::from_secs(5));
    phase.store(1, Ordering::Relaxed);
    let swaps_started = Instant::now();
    for v in 2..=51 {
        publish(dir, v)?;
        wait_version(admin, v)?;
    }
    let swaps_took = swaps_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let total = sender.join().unwrap_or(0);
    std::thread::sleep(Duration::from_millis(300));
    let _ = receiver.join();
    let lost = sent.lock().map(|m| m.len()).unwrap_or(0);
    println!("{total} calls at {rate}/s; 50 swaps in {swaps_took:.1?}; unanswered: {lost}");
    let samples = samples.lock().map_err(|e| e.to_string())?;
    for (name, s) in ["no swaps", "50 swaps"].iter().zip(samples.iter()) {
        let mut s = s.clone();
        s.sort_unstable();
        println!(
            "{name:>9}: {} calls, p50 {:?}, p99 {:?}, max {:?}",
            s.len(),
            percentile(&s, 0.5),
            percentile(&s, 0.99),
            s.last().copied().unwrap_or_default()
        );
    }
    Ok(())
}
