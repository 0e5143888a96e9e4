//! `fraudwall explain`: why a call gets its verdict, stage by stage.
//!
//! ```text
//! fraudwall explain [--config FILE] [--blocklist SNAPSHOT] [--subscribers SNAPSHOT]
//!                   [--protected SNAPSHOT] --caller NUMBER [--callee NUMBER]
//!                   [--peer IP] [--verstat VALUE] [--json]
//! ```
//!
//! An operator answering a complaint ("why was my call blocked?") runs the same rule chain
//! the proxy runs, on the same configuration and lists, for one caller, callee and peer
//! address, and sees each stage in order: what it looked at, whether it decided. The caller
//! and callee are read as the proxy reads them (a URI or a number, by the peer group's
//! numbering profile); `--verstat` counts only from a peer group with `trust_identity`, as
//! on the wire.

use clap::Args;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Config;
use crate::numbers::{Caller, NumberingProfile};
use crate::peers::PeerGroups;
use crate::policy::{CallContext, Callee, Explanation, Policy, Verstat};
use crate::proxy::lists::{ListSlots, SnapshotSlot};
use crate::telemetry::Telemetry;

/// `fraudwall explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Configuration file (the one `run` uses: peer groups, [policy], actions).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The list files (blocklist default: the embedded sample).
    #[command(flatten)]
    lists: super::run::ListFileArgs,
    /// The caller: a number (`+8613800000001`, national forms by the profile) or a URI.
    #[arg(long, value_name = "NUMBER")]
    caller: String,
    /// The callee, as the Request-URI's user part would carry it.
    #[arg(long, value_name = "NUMBER", default_value = "")]
    callee: String,
    /// The address the call would come from (its peer group decides trust and origin).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    peer: IpAddr,
    /// What the network asserts (`TN-Validation-Passed`, `TN-Validation-Failed-A`, ...).
    #[arg(long, value_name = "VALUE")]
    verstat: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `fraudwall explain`.
pub fn run(args: ExplainArgs) -> ExitCode {
    match explain(&args) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fraudwall explain: {e}");
            ExitCode::from(2)
        }
    }
}

/// The explanation as `run` prints it (text or JSON).
pub fn explain(args: &ExplainArgs) -> Result<String, String> {
    let mut cfg = match &args.config {
        Some(p) => Config::from_file(p).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    args.lists.apply(&mut cfg);
    cfg.validate().map_err(|e| e.to_string())?;
    if cfg.feed.enabled() && args.lists.blocklist.is_none() {
        return Err(
            "the configuration screens against a feed: pass the list to explain with --blocklist \
             (the feed's cache directory holds its files)"
                .into(),
        );
    }
    let groups =
        PeerGroups::new(&cfg.peers, &cfg.proxy.trusted_peers).map_err(|e| e.to_string())?;
    let group = groups.of(args.peer);
    let base = NumberingProfile::by_name(cfg.proxy.numbering_profile.trim())
        .map_err(|e| format!("proxy.numbering_profile: {e}"))?;
    let profile = group.profile.as_ref().unwrap_or(&base);

    let telemetry = Arc::new(Telemetry::new());
    let global = SnapshotSlot::load(cfg.blocklist.snapshot.as_deref(), telemetry.clone())
        .map_err(|e| e.to_string())?;
    if global.shared().load().is_none() {
        return Err("the blocklist did not open (see the log line above)".into());
    }
    let lists =
        ListSlots::load(&cfg.lists, &groups, telemetry.clone()).map_err(|e| e.to_string())?;
    let policy = Policy::new(
        global.shared(),
        lists.subscribers(),
        lists.protected(),
        cfg.policy.compile().map_err(|e| e.to_string())?,
        cfg.actions.callers(),
    );

    let caller = profile.normalize(args.caller.as_bytes());
    let callee_user = args.callee.trim().as_bytes();
    let callee = Callee {
        user: callee_user,
        number: match profile.normalize(callee_user) {
            Caller::Number(n) => Some(n),
            _ => None,
        },
    };
    let verstat = match (&args.verstat, group.trust_identity) {
        (Some(v), true) => Verstat::parse(v.as_bytes()),
        _ => Verstat::Absent,
    };
    let mut call = CallContext::for_caller(&caller, group);
    call.caller_raw = args.caller.as_bytes();
    call.callee = callee;
    call.verstat = verstat;
    let e = policy.explain(&call);
    Ok(if args.json {
        json(&e, &caller, &call)
    } else {
        text(&e, &caller, &call, args)
    })
}

fn caller_text(c: &Caller) -> String {
    match c {
        Caller::Number(n) => n.to_string(),
        Caller::Anonymous => "anonymous".into(),
        Caller::Invalid(r) => format!("invalid ({r:?})"),
        Caller::Decorated { lenient, .. } => format!("invalid, decorated {lenient}"),
    }
}

fn json(e: &Explanation, caller: &Caller, call: &CallContext<'_>) -> String {
    let v = &e.verdict;
    serde_json::json!({
        "action": v.action,
        "rule": v.rule,
        "reason": v.reason,
        "category": v.category,
        "score": v.score,
        "entry": v.entry,
        "label": v.label,
        "level": v.level,
        "list_version": v.snapshot_version,
        "caller": caller_text(caller),
        "callee": call.callee.number.map(|n| n.to_string()),
        "peer_group": &*call.peer.name,
        "verstat": call.verstat.as_str(),
        "stages": e.stages,
    })
    .to_string()
}

fn text(e: &Explanation, caller: &Caller, call: &CallContext<'_>, args: &ExplainArgs) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let p = call.peer;
    let _ = writeln!(
        o,
        "call     {} -> {} from {} (group {}{}{})",
        caller_text(caller),
        call.callee
            .number
            .map_or_else(|| args.callee.clone(), |n| n.to_string()),
        args.peer,
        p.name,
        if p.trust_identity { ", trusted" } else { "" },
        if p.international {
            ", international"
        } else {
            ""
        },
    );
    for (i, s) in e.stages.iter().enumerate() {
        let outcome = serde_json::to_value(s.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "{:>2} {:<21} {:<9} {}",
            i + 1,
            s.rule.as_str(),
            outcome,
            s.saw
        );
    }
    let v = &e.verdict;
    let _ = write!(
        o,
        "verdict  {} (rule {}, reason {}{}{})",
        v.action,
        v.rule,
        v.reason,
        v.category
            .as_deref()
            .map(|c| format!(", category {c}"))
            .unwrap_or_default(),
        v.label
            .as_deref()
            .map(|l| format!(", label {l:?}"))
            .unwrap_or_default(),
    );
    o
}
