//! The monitoring kit in `integration/monitoring`, against promtool and a running node:
//!
//! * `promtool check config` (the example scrape config and the rules it loads) and
//!   `promtool test rules` (the alerts' unit tests) pass;
//! * every query of the Grafana dashboard is valid PromQL (promtool checks each one as a
//!   recording rule, Grafana's variables replaced by values);
//! * every `fraudwall_*` metric the rules and the dashboard name is one a node exports, and every
//!   label they match on (with its value, for `=`) is on its series: a node
//!   started with a feed and behavioural detection on is scraped once.
//!
//! promtool comes with the Debian package `prometheus` (`.ci/run` installs it); these tests
//! fail without it.

mod sipp_support;

use sipp_support::{free_port, Guard};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Metrics a node registers on first use (their label is a reason met at run time), so a fresh
/// node does not export them yet: they must at least be named in `src/telemetry.rs`.
const ON_FIRST_USE: [&str; 2] = ["fraudwall_parse_errors_total", "fraudwall_dropped_total"];

fn kit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/monitoring")
}

fn promtool(args: &[&str], dir: &Path) -> Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool is required for the monitoring tests (Debian package prometheus): {e}")
        })
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_scrape_config_and_rules_pass_promtool_and_the_alerts_their_unit_tests() {
    assert_ok(
        &promtool(&["check", "config", "prometheus.yml"], &kit()),
        "promtool check config",
    );
    let out = promtool(&["test", "rules", "fraudwall.rules.test.yml"], &kit());
    assert_ok(&out, "promtool test rules");
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS"));
}

/// Every `expr` in the dashboard, with Grafana's variables replaced by values PromQL accepts.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(kit().join("fraudwall-dashboard.json")).expect("read");
    let v: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(e)) = m.get("expr") {
                    out.push(e.clone());
                }
                m.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&v, &mut out);
    out.into_iter()
        .map(|e| {
            e.replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
        })
        .collect()
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "only {} queries", queries.len());
    // promtool parses the PromQL of rule files: each query becomes a recording rule. A JSON
    // string is a valid YAML double-quoted scalar.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        let quoted = serde_json::to_string(q).expect("a string");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("dashboard.rules.yml"), rules).expect("write");
    let out = promtool(&["check", "rules", "dashboard.rules.yml"], dir.path());
    assert_ok(&out, "promtool check rules (the dashboard's queries)");
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(&format!("SUCCESS: {} rules found", queries.len())));
}

/// Every `fraudwall_<name>` in `text` (recording rules, `fraudwall:...`, are not metrics).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("fraudwall_") {
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..len].to_string());
        rest = &tail[len..];
    }
    names
}

/// GET `path` from `port` on 127.0.0.1: the body of a 200, `None` otherwise.
fn get(port: u16, path: &str) -> Option<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut r = String::new();
    c.read_to_string(&mut r).ok()?;
    let (head, body) = r.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// What a node exports: every metric name (with each histogram's and summary's `_bucket`,
/// `_sum` and `_count` series) and, per series name, the label sets of its samples.
struct Exported {
    names: BTreeSet<String>,
    series: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

/// The labels of one sample line's `{...}` (`None` for a line without labels).
fn sample_labels(line: &str) -> Option<(String, BTreeMap<String, String>)> {
    let (name, rest) = line.split_once('{')?;
    let (inner, _) = rest.rsplit_once('}')?;
    let mut labels = BTreeMap::new();
    for pair in inner.split("\",") {
        let (k, v) = pair.split_once("=\"")?;
        labels.insert(
            k.trim_start_matches(',').to_string(),
            v.trim_end_matches('"').to_string(),
        );
    }
    Some((name.to_string(), labels))
}

/// What a node started with a feed (unreachable: its metrics are registered at start all
/// the same) and behavioural detection exports.
fn exported() -> Exported {
    let dir = tempfile::tempdir().expect("tempdir");
    let keygen = Command::new(env!("CARGO_BIN_EXE_fraudwall"))
        .args(["keygen", "--output"])
        .arg(dir.path().join("op"))
        .output()
        .expect("run keygen");
    assert_ok(&keygen, "fraudwall keygen");
    let config = dir.path().join("fraudwall.toml");
    std::fs::write(
        &config,
        "[detection]\nenabled = true\n[feed]\nlists = [\"blocklist\", \"subscribers\", \"protected\"]\n",
    )
    .expect("write config");
    let (sip, hop, admin, feed) = (
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_fraudwall"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(["--feed", &format!("http://127.0.0.1:{feed}/manifest.json")])
        .arg("--feed-key")
        .arg(dir.path().join("op.pub"))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["--listen", &format!("127.0.0.1:{sip}")])
        .args(["--next-hop", &format!("127.0.0.1:{hop}")])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .args(["--api", "", "--decision-log", "off", "--log-level", "error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fraudwall");
    let _guard = Guard(Some(child));
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        if let Some(t) = get(admin, "/metrics") {
            if t.contains("fraudwall_feed_active_version") {
                break t;
            }
        }
        assert!(Instant::now() < deadline, "no /metrics from the node");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut names = BTreeSet::new();
    let mut series: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((name, labels)) = sample_labels(line) {
            series.entry(name).or_default().push(labels);
        }
        let mut f = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (f.next(), f.next(), f.next(), f.next())
        {
            names.insert(name.to_string());
            match kind {
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{s}"));
                    }
                }
                "summary" => {
                    for s in ["_sum", "_count"] {
                        names.insert(format!("{name}{s}"));
                    }
                }
                _ => {}
            }
        }
    }
    Exported { names, series }
}

/// Every label matcher on a `fraudwall_*` selector in `query`: (metric, label, op, value).
fn matchers(query: &str) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for name in metric_names(query) {
        let pattern = format!("{name}{{");
        let mut rest = query;
        while let Some(at) = rest.find(&pattern) {
            // Only the whole name: `fraudwall_x{` must not match inside `fraudwall_xy{`.
            let before = rest[..at].chars().next_back();
            let tail = &rest[at + pattern.len()..];
            let Some(end) = tail.find('}') else { break };
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                for m in tail[..end]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                {
                    let op_at = m.find(['=', '!']).unwrap_or(m.len());
                    let (label, rest_m) = m.split_at(op_at);
                    let op: String = rest_m.chars().take_while(|c| "=!~".contains(*c)).collect();
                    let value = rest_m[op.len()..].trim_matches('"').to_string();
                    out.push((name.clone(), label.trim().to_string(), op, value));
                }
            }
            rest = &tail[end..];
        }
    }
    out
}

#[test]
fn the_rules_and_the_dashboard_name_only_metrics_a_node_exports() {
    let rules = std::fs::read_to_string(kit().join("fraudwall.rules.yml")).expect("read rules");
    let mut used = metric_names(&rules);
    used.extend(dashboard_queries().iter().flat_map(|q| metric_names(q)));
    assert!(used.len() >= 30, "only {} metrics named", used.len());
    let node = exported();
    let exported = &node.names;
    let telemetry =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/telemetry.rs"))
            .expect("read telemetry.rs");
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !exported.contains(*n))
        .filter(|n| {
            !(ON_FIRST_USE.contains(&n.as_str()) && telemetry.contains(&format!("\"{n}\"")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "named by the monitoring kit but not exported: {missing:?}\nexported: {exported:?}"
    );
    // Each metric the node exports is on the dashboard or in an alert, or deliberately left
    // to /metrics: this list says which, so a new metric is a decision, not an accident.
    let left_out = [
        "fraudwall_admin_refused_total",
        "fraudwall_detection_admitted_total",
        "fraudwall_detection_evicted_total",
        "fraudwall_detection_events_total",
        "fraudwall_detection_garbage_total",
        "fraudwall_detection_memory_bytes",
        "fraudwall_detection_pending_forgotten_total",
        "fraudwall_detection_redis_deltas_total",
        "fraudwall_detection_remote_deltas_total",
        "fraudwall_detection_retransmissions_total",
        "fraudwall_detection_unmatched_total",
        "fraudwall_dialog_proofs_total",
        "fraudwall_feed_swap_duration_seconds",
        "fraudwall_identity_headers_removed_total",
        "fraudwall_reflection_limited_total",
        "fraudwall_routing_refused_total",
    ];
    let unplaced: Vec<&String> = exported
        .iter()
        .filter(|n| !used.contains(*n) && !left_out.contains(&n.as_str()))
        .filter(|n| !["_bucket", "_sum", "_count"].iter().any(|s| n.ends_with(s)))
        .filter(|n| !n.ends_with("_seconds") || !used.contains(&format!("{n}_bucket")))
        .collect();
    assert!(
        unplaced.is_empty(),
        "exported but neither on the dashboard, in an alert, nor listed as left out: {unplaced:?}"
    );

    // Every label a selector matches on exists on that metric's series, and an exact value
    // (`label="value"`) is one a series has: a typo would leave a panel empty or an alert
    // silent. `instance` and `job` come from Prometheus; metrics registered on first use
    // have no series to compare with yet.
    let mut queries = dashboard_queries();
    queries.push(rules);
    let mut wrong = Vec::new();
    for (metric, label, op, value) in queries.iter().flat_map(|q| matchers(q)) {
        // An alert's text may name a selector with a template for its value.
        let templated = value.contains("{{");
        if templated
            || label == "instance"
            || label == "job"
            || ON_FIRST_USE.contains(&metric.as_str())
        {
            continue;
        }
        let samples = node.series.get(&metric).map(Vec::as_slice).unwrap_or(&[]);
        let has_label = samples.iter().any(|l| l.contains_key(&label));
        let has_value = op != "=" || samples.iter().any(|l| l.get(&label) == Some(&value));
        if !has_label || !has_value {
            wrong.push(format!("{metric}{{{label}{op}\"{value}\"}}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "selectors that match no exported series: {wrong:?}"
    );
}
