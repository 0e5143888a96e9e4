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
    echo_switch, feed_node, load_counts, metric, sipp_load, status, wait_exit, wait_for_version,
    Lab,
};
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

    // The switch is stopped (guard drop) once the callers are done.
    let (uas, switch) = echo_switch(dir, "150s");
    // The verdict scenario checks the RFC 8688 redress jCard of a 608.
    let config = dir.join("run.toml");
    std::fs::write(
        &config,
        "[actions]\nredress_url = \"https://redress.example.net/jcard\"\n",
    )
    .expect("config");
    let node = feed_node(&lab, &config, feed_port, switch);
    let admin = node.admin;
    wait_for_version(admin, 1);

    // Callers: alternately a blocked number and a clean one, each verdict checked.
    let callers = dir.join("callers.csv");
    std::fs::write(
        &callers,
        "SEQUENTIAL\n8613800000001;block\n8613800000009;allow\n",
    )
    .expect("callers");
    let mut uac = sipp_load(dir, node.sip, "uac_verdict.xml", &callers, CALLS, RATE);

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

    let exit = wait_exit(&mut uac, Duration::from_secs(120), "sipp UAC");
    drop(uas);
    let (ok, failed, retrans) = load_counts(dir);
    eprintln!(
        "{SWAPS} swaps in {swaps_took:?} under {RATE} calls/s: {ok} calls ok, {failed} failed, {retrans} retransmissions"
    );
    assert!(
        exit.success(),
        "sipp UAC exit {exit:?}; errors:\n{}",
        std::fs::read_to_string(dir.join("uac_errors.log")).unwrap_or_default()
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
