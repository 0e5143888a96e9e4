//! The operator CLI end to end: the acceptance commands on the real FTC file, the
//! sample list, signing and tampering, diff, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_fraudwall");
const FTC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/ftc-dnc-reported-numbers-90d.csv"
);
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/blocklists/sample.csv");

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run fraudwall");
    eprintln!(
        "$ fraudwall {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "fraudwall {args:?} failed");
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn acceptance_on_the_ftc_file() {
    let dir = tempfile::tempdir().unwrap();
    let fwb = dir.path().join("ftc.fwb");
    let out = run(&[
        "compile",
        "--profile",
        "nanp",
        "--default-action",
        "block",
        "--output",
        p(&fwb),
        FTC,
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ftc-dnc-reported-numbers-90d.csv:"),
        "dirty rows with file:line"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rejected"), "{stdout}");

    let lines = json_lines(&ok(&[
        "lookup",
        "--profile",
        "nanp",
        "--json",
        p(&fwb),
        "9349479605",
        "+1 (934) 947-9605",
        "2025550100",
        "0",
        "anonymous",
    ]));
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["input"], "9349479605");
    assert_eq!(lines[0]["number"], "+19349479605");
    assert_eq!(lines[0]["outcome"], "listed");
    assert_eq!(lines[0]["action"], "block");
    assert_eq!(lines[0]["matched"], "+19349479605");
    assert_eq!(lines[0]["category"], "reported");
    assert!(lines[0]["score"].is_u64());
    assert_eq!(lines[1]["number"], "+19349479605");
    assert_eq!(lines[1]["outcome"], "listed");
    assert_eq!(lines[2]["number"], "+12025550100");
    assert_eq!(lines[2]["outcome"], "unlisted");
    assert_eq!(lines[3]["outcome"], "invalid");
    assert!(lines[3]["number"].is_null());
    assert_eq!(lines[4]["outcome"], "anonymous");

    let info: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", p(&fwb)])).unwrap();
    let entries = info["entries"].as_u64().unwrap();
    assert!((290_000..300_000).contains(&entries), "{entries}");
    assert_eq!(
        info["bytes"].as_u64().unwrap(),
        std::fs::metadata(&fwb).unwrap().len()
    );
    assert!(info["version"].is_u64());
    assert!(info["counts"]["block"].as_u64().unwrap() > 290_000);

    let op = dir.path().join("op");
    ok(&["keygen", "--output", p(&op)]);
    let key = dir.path().join("op.key");
    let public = dir.path().join("op.pub");
    assert!(key.exists() && public.exists());
    ok(&["sign", "--key", p(&key), p(&fwb)]);
    ok(&["verify", "--key", p(&public), p(&fwb)]);

    // Wrong key.
    let other = dir.path().join("other");
    ok(&["keygen", "--output", p(&other)]);
    let out = run(&["verify", "--key", p(&dir.path().join("other.pub")), p(&fwb)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("trusted key"));

    // Tampered file: one byte in the body.
    let mut bytes = std::fs::read(&fwb).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&fwb, &bytes).unwrap();
    let out = run(&["verify", "--key", p(&public), p(&fwb)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));
}

#[test]
fn sample_list_compiles_with_generic_and_no_default_action() {
    let dir = tempfile::tempdir().unwrap();
    let fwb = dir.path().join("s.fwb");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "compile",
        "--profile",
        "generic",
        "--json",
        "--quiet",
        "-o",
        p(&fwb),
        SAMPLE,
    ]))
    .unwrap();
    assert_eq!(report["rejected"], 0);
    let lines = json_lines(&ok(&[
        "lookup",
        "--json",
        p(&fwb),
        "+8613800000001",
        "+8613800000002",
        "+8617012000001",
        "+8617012999999",
        "sip:+8613800000001@example.com;user=phone",
    ]));
    assert_eq!(lines[0]["action"], "block");
    assert_eq!(lines[0]["category"], "impersonation");
    assert_eq!(lines[0]["score"], 95);
    assert_eq!(lines[1]["action"], "tag");
    assert_eq!(lines[1]["category"], "loan");
    assert_eq!(lines[2]["action"], "allow");
    assert_eq!(lines[3]["matched"], "+8617012*");
    assert_eq!(lines[4]["action"], "block");
    // Human output too.
    let human = ok(&["lookup", p(&fwb), "+8613800000001"]);
    assert!(
        human.contains("block") && human.contains("impersonation"),
        "{human}"
    );
    let human = ok(&["inspect", p(&fwb)]);
    assert!(
        human.contains("entries") && human.contains("hash"),
        "{human}"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn diff_added_removed_changed() {
    let dir = tempfile::tempdir().unwrap();
    let h = "number,action,category,score,source\n";
    let a = write(
        dir.path(),
        "a.csv",
        &format!("{h}+8613800000001,block,x,90,s\n+8613800000002,tag,x,50,s\n"),
    );
    let b = write(
        dir.path(),
        "b.csv",
        &format!(
            "{h}+8613800000001,block,x,90,s\n+8613800000002,block,x,50,s\n+8617012*,warn,y,60,s\n"
        ),
    );
    let (fa, fb) = (dir.path().join("a.fwb"), dir.path().join("b.fwb"));
    ok(&["compile", "-q", "-o", p(&fa), p(&a)]);
    ok(&["compile", "-q", "-o", p(&fb), p(&b)]);
    let d: serde_json::Value =
        serde_json::from_str(&ok(&["diff", "--json", p(&fa), p(&fb)])).unwrap();
    assert_eq!(d["added_count"], 1);
    assert_eq!(d["removed_count"], 0);
    assert_eq!(d["changed_count"], 1);
    assert_eq!(d["added"][0]["entry"], "+8617012*");
    assert_eq!(d["changed"][0]["new"]["action"], "block");
    let human = ok(&["diff", p(&fa), p(&fb)]);
    assert!(
        human.contains("1 added") && human.contains("+ +8617012*"),
        "{human}"
    );
}

#[test]
fn bad_input_is_clear_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.fwb");
    // Plain list without --default-action.
    let plain = write(dir.path(), "plain.txt", "+8613800000001\n");
    let r = run(&["compile", "-q", "-o", p(&out), p(&plain)]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--default-action"));
    assert!(!out.exists(), "no partial output");

    // Past --max-errors: exit 1, the errors listed with file and line.
    let dirty = write(
        dir.path(),
        "dirty.csv",
        "number,action,category,score,source\n+86abc,block,a,1,s\nxyz,block,a,1,s\n+8613800000001,block,a,1,s\n",
    );
    let r = run(&[
        "compile",
        "-q",
        "--max-errors",
        "1",
        "-o",
        p(&out),
        p(&dirty),
    ]);
    assert_eq!(r.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("dirty.csv:2:") && stderr.contains("--max-errors"),
        "{stderr}"
    );
    let r = run(&["compile", "-q", "-o", p(&out), p(&dirty)]);
    assert!(r.status.success());

    // Not a snapshot; unknown profile; missing file.
    let r = run(&["inspect", p(&dirty)]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("not a fraudwall snapshot"));
    let r = run(&["lookup", "--profile", "mars", p(&out), "1"]);
    assert_eq!(r.status.code(), Some(1));
    let r = run(&["verify", "--key", p(&dirty), p(&out)]);
    assert_eq!(r.status.code(), Some(1));
    let r = run(&["compile", "-o", p(&out), "/nonexistent.csv"]);
    assert_eq!(r.status.code(), Some(1));
}

#[test]
fn delta_of_a_base() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.fwb");
    ok(&["compile", "-q", "-o", p(&base), SAMPLE]);
    let changes = write(
        dir.path(),
        "changes.csv",
        "number,action,category,score,source\n+8613800000001,remove,,,\n+8613800000099,block,x,90,police\n",
    );
    let delta = dir.path().join("delta.fwb");
    ok(&[
        "compile",
        "-q",
        "--delta-of",
        p(&base),
        "-o",
        p(&delta),
        p(&changes),
    ]);
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", p(&delta)])).unwrap();
    let base_info: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", p(&base)])).unwrap();
    assert_eq!(info["kind"]["kind"], "delta");
    assert_eq!(info["kind"]["base_version"], base_info["version"]);
    assert_eq!(info["kind"]["base_hash"], base_info["hash"]);
    assert!(info["version"].as_u64() > base_info["version"].as_u64());
    assert_eq!(info["counts"]["tombstones"], 1);
    let lines = json_lines(&ok(&["lookup", "--json", p(&delta), "+8613800000001"]));
    assert_eq!(lines[0]["tombstone"], true);
    // `remove` in a base is a rejected row.
    let r = run(&[
        "compile",
        "-q",
        "-o",
        p(&dir.path().join("x.fwb")),
        p(&changes),
    ]);
    assert!(r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("only valid in a delta"));
}
