//! 50 swaps under load: a `fraudwall run` node following a feed (`--feed-poll 200ms`) while a
//! sipp UAC places verdict-checked calls through it to a sipp switch, and the publisher
//! publishes 50 new versions (deltas, and a new base every few: `--max-deltas 3`), each
//! waited for on the node's `/status` so that every one is swapped in during the load.
//!
//! Passes only if every call got its expected verdict (a blocked caller answered 608, a
//! clean caller forwarded and answered 200 with its headers intact), no call failed, and
//! sipp counted no retransmission. sipp is required: without it this test FAILS.

mod feed_support;

use feed_support::{
    free_port, last_stats, manifest_url, metric, sipp, sipp_dir, stat, status, wait_for_tcp,
    wait_for_version, Guard, Lab, BIN,
};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SWAPS: u64 = 50;
const RATE: u32 = 50;
const CALLS: u32 = 2_000;

/// The list of round `i`: the fixed callers' entries plus 300 numbers that change every
/// round (so each version really differs), in the `+86139` range no caller uses.
fn list(i: u64) -> String {
    let mut rows = String::from(
        "+8613800000001,block,impersonation,95,police\n+8613800000002,tag,loan,70,reports\n",
    );
    for j in 0..300u64 {
        let n = (i * 7_919 + j * 104_729) % 100_000_000;
        rows.push_str(&format!("+86139{n:08},block,robocall,80,reports\n"));
    }
    rows
}

#[test]
fn fifty_swaps_under_load_lose_no_call() {
    let lab = Lab::new();
    let dir = lab.dir.path();
    let policy = ["--max-deltas", "3", "--max-delta-fraction", "10"];
    lab.publish("v1", &list(1), &policy);
    let (_origin, feed_port) = lab.feed_serve();

    let (sip, switch, admin) = (free_port(), free_port(), free_port());
    let uas = sipp(
        &[
            "-sf".into(),
            sipp_dir().join("uas_echo.xml").display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            switch.to_string(),
            // No call count: sipp's UAS count includes stray retransmissions; the
            // switch is stopped (guard drop) once the callers are done.
            "-timeout".into(),
            "150s".into(),
            "-nostdin".into(),
        ],
        dir,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while UdpSocket::bind(("127.0.0.1", switch)).is_ok() {
        assert!(Instant::now() < deadline, "sipp UAS did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The verdict scenario checks the RFC 8688 redress jCard of a 608.
    let config = dir.join("run.toml");
    std::fs::write(
        &config,
        "[actions]\nredress_url = \"https://redress.example.net/jcard\"\n",
    )
    .expect("config");
    let node = Command::new(BIN)
        .args([
            "run",
            "--config",
            &config.display().to_string(),
            "--feed",
            &manifest_url(feed_port),
            "--feed-key",
            &lab.path("op.pub"),
            "--feed-poll",
            "200ms",
            "--cache-dir",
            &lab.path("cache"),
            "--listen",
            &format!("127.0.0.1:{sip}"),
            "--next-hop",
            &format!("127.0.0.1:{switch}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--decision-log",
            "off",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fraudwall run");
    let _node = Guard(node);
    wait_for_tcp(admin);
    wait_for_version(admin, 1);

    // Callers: alternately a blocked number and a clean one, each verdict checked.
    let callers = dir.join("callers.csv");
    std::fs::write(
        &callers,
        "SEQUENTIAL\n8613800000001;block\n8613800000009;allow\n",
    )
    .expect("callers");
    let stats = dir.join("uac_stats.csv");
    let errors = dir.join("uac_errors.log");
    let mut uac = sipp(
        &[
            format!("127.0.0.1:{sip}"),
            "-sf".into(),
            sipp_dir().join("uac_verdict.xml").display().to_string(),
            "-inf".into(),
            callers.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            free_port().to_string(),
            "-m".into(),
            CALLS.to_string(),
            "-r".into(),
            RATE.to_string(),
            "-s".into(),
            "svc".into(),
            "-d".into(),
            "50".into(),
            "-nostdin".into(),
            "-timeout".into(),
            "120s".into(),
            "-timeout_error".into(),
            "-trace_stat".into(),
            "-stf".into(),
            stats.display().to_string(),
            "-fd".into(),
            "1".into(),
            "-trace_err".into(),
            "-error_file".into(),
            errors.display().to_string(),
        ],
        dir,
    );

    // 50 new versions while the calls flow, each one swapped in before the next.
    let started = Instant::now();
    for v in 2..=SWAPS + 1 {
        lab.publish(&format!("v{v}"), &list(v), &policy);
        wait_for_version(admin, v);
    }
    let swaps_took = started.elapsed();
    let load_running = uac.0.try_wait().expect("try_wait").is_none();
    assert!(
        load_running,
        "the load ended before the 50 swaps did ({swaps_took:?}): raise CALLS"
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    let exit = loop {
        if let Some(s) = uac.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "sipp UAC did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(uas);
    let s = last_stats(&stats);
    let (ok, failed, retrans) = (
        stat(&s, "SuccessfulCall(C)"),
        stat(&s, "FailedCall(C)"),
        stat(&s, "Retransmissions(C)"),
    );
    eprintln!(
        "{SWAPS} swaps in {swaps_took:?} under {RATE} calls/s: {ok} calls ok, {failed} failed, {retrans} retransmissions"
    );
    assert!(
        exit.success(),
        "sipp UAC exit {exit:?}; errors:\n{}",
        std::fs::read_to_string(&errors).unwrap_or_default()
    );
    assert_eq!(failed, 0);
    assert_eq!(retrans, 0);
    assert_eq!(ok, u64::from(CALLS));
    let st = status(admin);
    assert_eq!(st["feed"]["active_version"], SWAPS + 1, "{st}");
    // Bases and deltas both: every fourth version folds the deltas into a new base.
    let bases = metric(
        admin,
        "fraudwall_feed_updates_total{list=\"blocklist\",kind=\"base\"}",
    );
    let deltas = metric(
        admin,
        "fraudwall_feed_updates_total{list=\"blocklist\",kind=\"delta\"}",
    );
    eprintln!("applied: {bases} bases, {deltas} deltas");
    assert!(
        bases >= 10 && deltas >= 30,
        "bases {bases}, deltas {deltas}"
    );
    assert_eq!(bases + deltas, SWAPS + 1);
}
