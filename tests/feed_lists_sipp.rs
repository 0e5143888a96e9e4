//! The feed's named lists under load: a `fraudwall run` node follows the blocklist, the
//! subscriber list and the protected list of one feed (`feed.lists`), each published with
//! `fraudwall publish --list …`, while a sipp UAC places verdict-checked calls through it.
//!
//! - The load's calls depend on all three lists at once: a subscriber's personal allow over
//!   a global block, an impersonated protected number blocked, a clean caller let through.
//! - While it runs, ten new subscriber lists are published, each swapped in on its own (the
//!   blocklist's version does not move), and after each a probe call shows the new personal
//!   entry in force (a caller blocked by the odd versions, let through by the even ones).
//! - A protected list naming a peer group the node does not have is refused
//!   (`snapshot_invalid`, `list="protected"`), and the one in force keeps blocking.
//!
//! Passes only if no call of the load failed or was retransmitted. sipp is required: without
//! it this test FAILS.

mod feed_support;

use feed_support::{
    echo_switch, feed_node, free_port, load_counts, metric, sipp, sipp_dir, sipp_load, status,
    wait_exit, wait_for_list_version, wait_for_version, Lab, BIN,
};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SWAPS: u64 = 10;
const RATE: u32 = 30;
const CALLS: u32 = 900;

/// Subscriber A: a personal allow for a caller the global list blocks.
const SUB_A: &str = "8613900000001";
/// Subscriber B: a personal entry for `PROBE` that changes with every version.
const SUB_B: &str = "8613900000002";
/// On no global list.
const PROBE: &str = "8613800000009";
/// Blocked by the global list.
const BLOCKED: &str = "8613800000001";
/// On the protected list, entitled to the `bank` group only.
const BANK_LINE: &str = "8695588";

const PEERS: &str = "[[peers]]\nname = \"core\"\naddresses = [\"127.0.0.1\"]\ntrust_identity = true\n\
                     [[peers]]\nname = \"bank\"\naddresses = [\"127.0.0.3\"]\ntrust_identity = true\n\
                     [feed]\nlists = [\"blocklist\", \"subscribers\", \"protected\"]\n\
                     [actions]\nredress_url = \"https://redress.example.net/jcard\"\n";

/// Version `v` of the subscriber list: A's allow, and B's block of `PROBE` in odd versions
/// only (even versions carry an entry of their own, so every version differs).
fn subscribers(v: u64) -> String {
    let mut rows = format!("subscriber,caller,action\n+{SUB_A},+{BLOCKED},allow\n");
    if v % 2 == 1 {
        rows.push_str(&format!("+{SUB_B},+{PROBE},block\n"));
    } else {
        rows.push_str(&format!("+{SUB_B},+86137{v:08},block\n"));
    }
    rows
}

/// Compiles `csv` as `--kind kind` and publishes it with `--list kind`; returns the report.
fn publish_list(lab: &Lab, kind: &str, name: &str, csv: &str) -> serde_json::Value {
    let src = lab.path(&format!("{name}.csv"));
    std::fs::write(&src, csv).expect("csv");
    let fwb = lab.path(&format!("{name}.fwb"));
    lab.cmd(&["compile", "--kind", kind, "--output", &fwb, &src]);
    let feed = lab.feed().display().to_string();
    let out = lab.cmd(&[
        "publish",
        "--feed-dir",
        &feed,
        "--key",
        &lab.path("op.key"),
        "--list",
        kind,
        "--json",
        &fwb,
    ]);
    serde_json::from_str(out.trim()).expect("publish report is JSON")
}

/// One call per row (`caller;callee;expected`) from 127.0.0.1, each verdict checked by
/// `uac_policy.xml`; panics when any call fails.
fn probe(dir: &Path, sip: u16, rows: &[String], tag: &str) {
    let inf = dir.join(format!("probe-{tag}.csv"));
    std::fs::write(&inf, format!("SEQUENTIAL\n{}\n", rows.join("\n"))).expect("probe rows");
    let err = dir.join(format!("probe-{tag}.err"));
    let mut g = sipp(
        &[
            format!("127.0.0.1:{sip}"),
            "-sf".into(),
            sipp_dir().join("uac_policy.xml").display().to_string(),
            "-inf".into(),
            inf.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            free_port().to_string(),
            "-m".into(),
            rows.len().to_string(),
            "-r".into(),
            "20".into(),
            "-s".into(),
            "svc".into(),
            "-d".into(),
            "20".into(),
            "-nostdin".into(),
            "-timeout".into(),
            "20s".into(),
            "-timeout_error".into(),
            "-trace_err".into(),
            "-error_file".into(),
            err.display().to_string(),
        ],
        dir,
    );
    let exit = wait_exit(&mut g, Duration::from_secs(30), "probe");
    assert!(
        exit.success(),
        "probe {tag} ({rows:?}) failed: {exit:?}\n{}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
}

#[test]
fn subscriber_and_protected_lists_from_the_feed_swap_under_load() {
    let lab = Lab::new();
    let dir = lab.dir.path();
    lab.publish(
        "blocklist",
        "+8613800000001,block,impersonation,95,police\n+8613800000002,tag,loan,70,reports\n",
        &[],
    );
    let r = publish_list(&lab, "subscribers", "subs-1", &subscribers(1));
    assert_eq!(
        (r["kind"].as_str(), r["version"].as_u64()),
        (Some("base"), Some(1)),
        "{r}"
    );
    let r = publish_list(
        &lab,
        "protected",
        "prot-1",
        &format!("number,entitled,category\n+{BANK_LINE},bank,bank-impersonation\n"),
    );
    assert_eq!(r["kind"], "base", "{r}");
    // A list published under the wrong name is refused, naming the right one.
    let wrong = Command::new(BIN)
        .args(["publish", "--feed-dir"])
        .arg(lab.feed())
        .args(["--key", &lab.path("op.key"), &lab.path("subs-1.fwb")])
        .output()
        .expect("publish");
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("--list subscribers"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let (_origin, feed_port) = lab.feed_serve();

    let (_uas, switch) = echo_switch(dir, "120s");
    let config = dir.join("run.toml");
    std::fs::write(&config, PEERS).expect("config");
    let node = feed_node(&lab, &config, feed_port, switch);
    let (sip, admin) = (node.sip, node.admin);
    wait_for_version(admin, 1);
    wait_for_list_version(admin, "subscribers", 1);
    wait_for_list_version(admin, "protected", 1);
    probe(
        dir,
        sip,
        &[
            format!("{PROBE};{SUB_B};block"),
            format!("{PROBE};{SUB_A};allow"),
        ],
        "v1",
    );

    // The load: every call's verdict needs the lists from the feed.
    let callers = dir.join("callers.csv");
    std::fs::write(
        &callers,
        format!(
            "SEQUENTIAL\n{BLOCKED};{SUB_A};allow\n{BANK_LINE};{SUB_A};block\n{PROBE};{SUB_A};allow\n"
        ),
    )
    .expect("callers");
    let mut uac = sipp_load(dir, sip, "uac_policy.xml", &callers, CALLS, RATE);

    // Ten subscriber lists while the calls flow; each in force before the next.
    let started = Instant::now();
    for v in 2..=SWAPS + 1 {
        let r = publish_list(&lab, "subscribers", &format!("subs-{v}"), &subscribers(v));
        assert_eq!(
            (r["kind"].as_str(), r["version"].as_u64()),
            (Some("base"), Some(v)),
            "{r}"
        );
        wait_for_list_version(admin, "subscribers", v);
        let expected = if v % 2 == 1 { "block" } else { "allow" };
        probe(
            dir,
            sip,
            &[format!("{PROBE};{SUB_B};{expected}")],
            &format!("v{v}"),
        );
    }
    let swaps_took = started.elapsed();
    // A protected list naming a group this node lacks: refused, the active one stays.
    publish_list(
        &lab,
        "protected",
        "prot-2",
        &format!("number,entitled,category\n+{BANK_LINE},ghost-bank,bank-impersonation\n"),
    );
    let refused =
        "fraudwall_feed_update_errors_total{list=\"protected\",reason=\"snapshot_invalid\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(admin, refused) == 0 {
        assert!(
            Instant::now() < deadline,
            "the bad protected list was not refused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let load_running = uac.0.try_wait().expect("try_wait").is_none();
    assert!(
        load_running,
        "the load ended before the swaps did ({swaps_took:?}): raise CALLS"
    );

    let exit = wait_exit(&mut uac, Duration::from_secs(120), "sipp UAC");
    let (ok, failed, retrans) = load_counts(dir);
    eprintln!(
        "{SWAPS} subscriber swaps in {swaps_took:?} under {RATE} calls/s: {ok} ok, {failed} failed, {retrans} retransmissions"
    );
    assert!(
        exit.success(),
        "sipp UAC exit {exit:?}; errors:\n{}",
        std::fs::read_to_string(dir.join("uac_errors.log")).unwrap_or_default()
    );
    assert_eq!((ok, failed, retrans), (u64::from(CALLS), 0, 0));

    let st = status(admin);
    // Each list moved on its own: the blocklist is still at its first version.
    assert_eq!(st["feed"]["active_version"], 1, "{st}");
    let list = |name: &str| {
        st["feed_lists"]
            .as_array()
            .and_then(|l| l.iter().find(|f| f["list"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from /status: {st}"))
    };
    assert_eq!(list("subscribers")["active_version"], SWAPS + 1);
    assert_eq!(list("protected")["active_version"], 1);
    assert!(
        list("protected")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("ghost-bank")),
        "{st}"
    );
    assert_eq!(
        metric(
            admin,
            "fraudwall_feed_updates_total{list=\"subscribers\",kind=\"base\"}"
        ),
        SWAPS + 1
    );
    assert!(
        metric(
            admin,
            "fraudwall_verdict_rules_total{rule=\"impersonation\",action=\"block\"}"
        ) >= u64::from(CALLS) / 3
    );
    assert!(
        metric(
            admin,
            "fraudwall_verdict_rules_total{rule=\"personal\",action=\"allow\"}"
        ) >= u64::from(CALLS) / 3
    );
}
