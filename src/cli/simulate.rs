//! `fraudwall simulate`: a generated carrier day replayed through the behavioural detector.
//!
//! ```text
//! fraudwall simulate --scenario integration/traffic/carrier-day.toml [--config FILE]
//!                    [--seed N] [--subscribers N] [--json] [--check]
//! ```
//!
//! The detector runs with the `[detection]` section of `--config` (default: the documented
//! defaults), enabled whatever the file says. `--check` exits 1 when a target of issue 13 is
//! missed (recall after a number's 30th call, legitimate false positives, median calls to
//! catch, memory).

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::simulate::{Report, Scenario};

/// `fraudwall simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The scenario file (mix and rates of the day).
    #[arg(long, value_name = "FILE")]
    scenario: PathBuf,
    /// A `run` configuration whose `[detection]` section to use.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the scenario's subscriber count.
    #[arg(long)]
    subscribers: Option<u32>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Exit 1 when a target is missed.
    #[arg(long)]
    check: bool,
}

/// Runs `fraudwall simulate`.
pub fn run(args: SimulateArgs) -> ExitCode {
    match simulate(&args) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("fraudwall simulate: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                print!("{}", text(&report));
            }
            if args.check && !report.targets.all() {
                eprintln!(
                    "fraudwall simulate: a target is missed: {:?}",
                    report.targets
                );
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fraudwall simulate: {e}");
            ExitCode::from(2)
        }
    }
}

fn simulate(args: &SimulateArgs) -> Result<Report, String> {
    let mut scenario = Scenario::from_file(&args.scenario).map_err(|e| e.to_string())?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Some(n) = args.subscribers {
        scenario.subscribers.count = n;
    }
    let mut detection = match &args.config {
        Some(p) => Config::from_file(p).map_err(|e| e.to_string())?.detection,
        None => Default::default(),
    };
    detection.enabled = true;
    crate::simulate::run(&scenario, &detection).map_err(|e| e.to_string())
}

fn text(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "calls {} (events {})", r.calls, r.events);
    for (name, c) in [
        ("legitimate", &r.legitimate),
        ("  subscribers", &r.legitimate_subscribers),
        ("  busy lines", &r.legitimate_busy_lines),
        ("  enterprises (exempt)", &r.legitimate_enterprises),
        ("robocall", &r.robocall),
        ("wangiri", &r.wangiri),
        ("rotating", &r.rotating),
    ] {
        let _ = writeln!(
            s,
            "{name:<24} calls {:>9}  flagged {:>7} ({:.4} %)  numbers {:>8}  flagged {:>5}",
            c.calls,
            c.flagged,
            c.flagged_ratio * 100.0,
            c.numbers,
            c.numbers_flagged
        );
    }
    let c = &r.campaigns;
    let _ = writeln!(
        s,
        "campaign calls after a number's 30th: {} flagged of {} ({:.2} %); median calls to catch {}; never caught {}",
        c.flagged_after_30,
        c.calls_after_30,
        c.recall_after_30 * 100.0,
        c.median_calls_to_catch.map_or("never".into(), |m| m.to_string()),
        c.numbers_never_flagged
    );
    let _ = writeln!(
        s,
        "legitimate false positives {:.5} %; detector {} bytes; generated in {:.1} s, replayed in {:.1} s",
        r.legitimate_false_positive_ratio * 100.0,
        r.detector_bytes,
        r.generate_secs,
        r.replay_secs
    );
    let _ = writeln!(s, "targets: {:?}", r.targets);
    s
}
