//! Operator commands: `compile`, `lookup`, `inspect`, `diff`, `keygen`, `sign`, `verify`.
//!
//! Every command prints a human summary by default and, where a script would want it,
//! `--json`. Errors go to stderr as one line that says how to fix them; the exit code is 0
//! on success, 1 on failure (for `verify`: a tampered file, a missing signature or a wrong
//! key), 2 for a usage error (clap).

use crate::blocklist::diff::diff;
use crate::blocklist::sign;
use crate::blocklist::{
    compile_files, Action, CompileError, CompileOptions, CompileReport, Load, Match, SignError,
    Snapshot, SnapshotError,
};
use crate::feed::ListKind;
use crate::numbers::{Caller, NumberingProfile, ProfileError};
use clap::{Args, Subcommand};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// The operator's blocklist commands.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Compile CSV or plain lists into one snapshot.
    Compile(CompileArgs),
    /// Look numbers up in a snapshot.
    Lookup(LookupArgs),
    /// Show a snapshot's version, counts, size and hash.
    Inspect(InspectArgs),
    /// Show entries added, removed and changed between two snapshots.
    Diff(DiffArgs),
    /// Generate an ed25519 key pair: PREFIX.key (secret, 0600) and PREFIX.pub.
    Keygen(KeygenArgs),
    /// Sign a snapshot: writes FILE.sig.
    Sign(SignArgs),
    /// Verify a snapshot and its signature; non-zero exit on any failure.
    Verify(VerifyArgs),
}

/// `fraudwall compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Input files: CSV with a `number,action,category,score,source` header, or plain lists
    /// (`--kind subscribers`: `subscriber,caller,action`; `--kind protected`:
    /// `number,entitled,category`).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// What the inputs are: the global blocklist, the subscribers' own lists, or the
    /// protected numbers (only entitled peer groups may present them).
    #[arg(long, value_enum, default_value = "blocklist")]
    kind: ListKind,
    /// The snapshot to write (replaced atomically).
    #[arg(short, long)]
    output: PathBuf,
    /// Numbering profile for national forms: cn, nanp, generic.
    #[arg(long, default_value = "generic")]
    profile: String,
    /// Action for plain lists (and CSV rows with an empty action).
    #[arg(long)]
    default_action: Option<Action>,
    /// Category for rows without one.
    #[arg(long, default_value = "reported")]
    default_category: String,
    /// Score for rows without one (0..=100).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    default_score: u8,
    /// Source for rows without one (default: the input's file name).
    #[arg(long)]
    default_source: Option<String>,
    /// File of protected numbers (emergency, service): always allowed, never blocked.
    #[arg(long)]
    protect: Vec<PathBuf>,
    /// Do not add the profile's built-in protected numbers.
    #[arg(long)]
    no_builtin_protect: bool,
    /// Abort when more rows than this are rejected.
    #[arg(long, default_value_t = 10_000)]
    max_errors: u64,
    /// Snapshot version (default: the current Unix time).
    #[arg(long)]
    snapshot_version: Option<u64>,
    /// Memory for sorting, in MiB, before spilling sorted runs to disk.
    #[arg(long, default_value_t = 1024)]
    memory_mb: usize,
    /// Compile a delta on top of this base snapshot: rows add or change entries, rows with
    /// action `remove` are tombstones for the base's entries.
    #[arg(long, value_name = "BASE")]
    delta_of: Option<PathBuf>,
    /// Directory for spilled runs (default: the output's directory).
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
    /// How many rejected rows to print.
    #[arg(long, default_value_t = 10)]
    show_errors: usize,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

/// `fraudwall lookup`.
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// The snapshot.
    snapshot: PathBuf,
    /// Numbers or SIP/tel URIs; none: read one per line from stdin.
    inputs: Vec<String>,
    /// Numbering profile for national forms: cn, nanp, generic.
    #[arg(long, default_value = "generic")]
    profile: String,
    /// Require a valid signature by this public key (repeatable).
    #[arg(long)]
    key: Vec<PathBuf>,
    /// One JSON object per input.
    #[arg(long)]
    json: bool,
}

/// `fraudwall inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The snapshot.
    snapshot: PathBuf,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// `fraudwall diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot.
    old: PathBuf,
    /// The newer snapshot.
    new: PathBuf,
    /// Entries listed per kind of change.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// `fraudwall keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Path prefix: writes PREFIX.key and PREFIX.pub.
    #[arg(short, long)]
    output: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

/// `fraudwall sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The secret key (from keygen).
    #[arg(short, long)]
    key: PathBuf,
    /// The snapshot.
    snapshot: PathBuf,
}

/// `fraudwall verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A trusted public key (repeatable).
    #[arg(short, long, required = true)]
    key: Vec<PathBuf>,
    /// The snapshot.
    snapshot: PathBuf,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// Any failure of an operator command.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Lists(String),
}

/// Runs an operator command.
pub fn run(cmd: OperatorCommand) -> ExitCode {
    let r = match cmd {
        OperatorCommand::Compile(a) => run_compile(a),
        OperatorCommand::Lookup(a) => run_lookup(a),
        OperatorCommand::Inspect(a) => run_inspect(a),
        OperatorCommand::Diff(a) => run_diff(a),
        OperatorCommand::Keygen(a) => run_keygen(a),
        OperatorCommand::Sign(a) => run_sign(a),
        OperatorCommand::Verify(a) => run_verify(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn run_compile(a: CompileArgs) -> Result<(), CliError> {
    if a.kind == ListKind::Subscribers {
        return run_compile_subscribers(a);
    }
    let mut version = a.snapshot_version;
    let kind = match &a.delta_of {
        None => crate::blocklist::Kind::Base,
        Some(base) => {
            let base = Snapshot::open_with(base, Load::Map)?;
            // A delta is always newer than its base, even when compiled in the same second.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            version = version.or(Some(now.max(base.version() + 1)));
            crate::blocklist::Kind::Delta {
                base_version: base.version(),
                base_hash: base.hash(),
            }
        }
    };
    let opts = CompileOptions {
        kind,
        profile: NumberingProfile::by_name(&a.profile)?,
        default_action: a.default_action,
        default_category: a.default_category,
        default_score: a.default_score,
        default_source: a.default_source,
        protect: a.protect,
        builtin_protect: !a.no_builtin_protect,
        max_errors: a.max_errors,
        memory_budget: a.memory_mb.max(1) << 20,
        version,
        tmp_dir: a.tmp_dir,
        progress: !a.quiet,
        ..CompileOptions::default()
    };
    let compiled = match a.kind {
        ListKind::Protected => crate::protected::compile_protected(&a.inputs, &opts, &a.output),
        _ => compile_files(&a.inputs, &opts, &a.output),
    };
    let report = match compiled {
        Ok(r) => r,
        Err(CompileError::TooManyErrors {
            count,
            max,
            first,
            errors,
        }) => {
            for e in errors.iter().take(a.show_errors) {
                eprintln!("rejected {e}");
            }
            return Err(CompileError::TooManyErrors {
                count,
                max,
                first,
                errors: Vec::new(),
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    for e in report.errors.iter().take(a.show_errors) {
        eprintln!("rejected {e}");
    }
    if report.rejected as usize > a.show_errors.min(report.errors.len()) {
        eprintln!(
            "... {} more rejected rows (--show-errors N to list more, --json for all)",
            report.rejected as usize - a.show_errors.min(report.errors.len())
        );
    }
    if a.json {
        print_json(&report)
    } else {
        print_compile_summary(&report)
    }
}

fn run_compile_subscribers(a: CompileArgs) -> Result<(), CliError> {
    use crate::subscribers::{compile_subscribers, SubscriberCompileOptions};
    let opts = SubscriberCompileOptions {
        profile: NumberingProfile::by_name(&a.profile)?,
        max_errors: a.max_errors,
        version: a.snapshot_version,
        created: None,
    };
    let r = compile_subscribers(&a.inputs, &opts, &a.output)
        .map_err(|e| CliError::Lists(e.to_string()))?;
    for e in r.errors.iter().take(a.show_errors) {
        eprintln!("rejected {e}");
    }
    if a.json {
        return print_json(&r);
    }
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "compiled {}: {} entries for {} subscribers, {} bytes ({:.2} bytes/entry), {} rows read, {} rejected, {:.0} rows/s (parse {:.2} s, sort {:.2} s, build {:.2} s)",
        a.output.display(),
        r.entries,
        r.subscribers,
        r.bytes,
        r.bytes as f64 / r.entries.max(1) as f64,
        r.rows,
        r.error_count,
        r.rows as f64 / r.seconds.max(1e-9),
        r.parse_seconds,
        r.sort_seconds,
        r.build_seconds,
    )?;
    Ok(())
}

fn print_compile_summary(r: &CompileReport) -> Result<(), CliError> {
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "compiled {} (version {}): {} entries, {} bytes ({:.2} bytes/entry)",
        r.output.display(),
        r.version,
        r.entries,
        r.bytes,
        r.bytes as f64 / r.entries.max(1) as f64
    )?;
    writeln!(
        o,
        "  rows read {}  rejected {}  duplicates {}  conflicts {}  protected {} (overrode {} rows)",
        r.rows, r.rejected, r.duplicates, r.conflicts, r.protected, r.protected_overrides
    )?;
    let c = &r.counts;
    writeln!(
        o,
        "  block {}  warn {}  tag {}  allow {}  (exact {}, prefixes {})",
        c.block, c.warn, c.tag, c.allow, c.exact, c.prefixes
    )?;
    let t = &r.phase_seconds;
    writeln!(
        o,
        "  {} files in {:.2} s ({:.0} rows/s; parse {:.2} s, sort {:.2} s, build {:.2} s, sync {:.2} s; {} sorted runs spilled)",
        r.files, r.seconds, r.rows_per_second, t.parse, t.sort, t.build, t.sync, r.spilled_runs
    )?;
    Ok(())
}

/// One `lookup --json` line.
#[derive(Debug, serde::Serialize)]
struct LookupLine<'a> {
    input: &'a str,
    number: Option<String>,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    matched: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    /// Only for a delta's tombstone: the base's entry is removed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tombstone: bool,
}

fn lookup_line<'a>(
    snap: &'a Snapshot,
    profile: &NumberingProfile,
    input: &'a str,
) -> LookupLine<'a> {
    let mut line = LookupLine {
        input,
        number: None,
        outcome: "invalid",
        reason: None,
        action: None,
        matched: None,
        category: None,
        score: None,
        source: None,
        tombstone: false,
    };
    // A decorated caller's lenient number is looked up too: listed, it is an evasion.
    let (n, listed) = match profile.normalize(input.trim().as_bytes()) {
        Caller::Anonymous => {
            line.outcome = "anonymous";
            return line;
        }
        Caller::Invalid(r) => {
            line.reason = Some(r.to_string());
            return line;
        }
        Caller::Decorated { reason, lenient } => {
            line.reason = Some(reason.to_string());
            (lenient, "evasion")
        }
        Caller::Number(n) => {
            line.number = Some(n.to_string());
            line.outcome = "unlisted";
            (n, "listed")
        }
    };
    if let Some(Match {
        action,
        category,
        score,
        source,
        entry,
        tombstone,
    }) = snap.lookup(&n)
    {
        line.number = Some(n.to_string());
        line.outcome = listed;
        line.action = Some(action);
        line.matched = Some(entry.to_string());
        line.category = Some(category);
        line.score = Some(score);
        line.source = Some(source);
        line.tombstone = tombstone;
    }
    line
}

fn run_lookup(a: LookupArgs) -> Result<(), CliError> {
    let profile = NumberingProfile::by_name(&a.profile)?;
    let snap = if a.key.is_empty() {
        Snapshot::open_with(&a.snapshot, Load::Map)?
    } else {
        let keys = a
            .key
            .iter()
            .map(|k| sign::read_verifying_key(k))
            .collect::<Result<Vec<_>, _>>()?;
        Snapshot::open_signed_with(&a.snapshot, &keys, Load::Map)?
    };
    let inputs: Vec<String> = if a.inputs.is_empty() {
        std::io::stdin().lock().lines().collect::<Result<_, _>>()?
    } else {
        a.inputs
    };
    let mut out = std::io::stdout().lock();
    for input in &inputs {
        let l = lookup_line(&snap, &profile, input);
        if a.json {
            serde_json::to_writer(&mut out, &l)?;
            writeln!(out)?;
        } else {
            let number = l.number.as_deref().unwrap_or("-");
            match (l.outcome, l.action) {
                ("listed", Some(action)) => writeln!(
                    out,
                    "{input}\t{number}\t{action}\tmatched {} (category {}, score {}, source {})",
                    l.matched.as_deref().unwrap_or(""),
                    l.category.unwrap_or(""),
                    l.score.unwrap_or(0),
                    l.source.unwrap_or("")
                )?,
                (outcome, _) => writeln!(
                    out,
                    "{input}\t{number}\t{outcome}{}",
                    l.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                )?,
            }
        }
    }
    Ok(())
}

fn run_inspect(a: InspectArgs) -> Result<(), CliError> {
    if crate::subscribers::is_subscriber_list(&a.snapshot) {
        let l = crate::subscribers::SubscriberList::open(&a.snapshot)
            .map_err(|e| CliError::Lists(e.to_string()))?;
        let info = l.info();
        if a.json {
            return print_json(&serde_json::json!({ "list": "subscribers", "info": info }));
        }
        println!(
            "{}\n  list      subscribers\n  version   {}\n  entries   {} for {} subscribers\n  bytes     {} ({:.2} bytes/entry)",
            a.snapshot.display(),
            info.version,
            info.entries,
            info.subscribers,
            info.bytes,
            info.bytes as f64 / info.entries.max(1) as f64
        );
        return Ok(());
    }
    let snap = Snapshot::open_with(&a.snapshot, Load::Map)?;
    let info = snap.info();
    if a.json {
        return print_json(&info);
    }
    let mut o = std::io::stdout().lock();
    let kind = match info.kind {
        crate::blocklist::Kind::Base => "base".to_string(),
        crate::blocklist::Kind::Delta { base_version, .. } => {
            format!("delta on base version {base_version}")
        }
    };
    writeln!(o, "{}", a.snapshot.display())?;
    writeln!(o, "  version   {} ({kind})", info.version)?;
    writeln!(o, "  created   {}", info.created_rfc3339)?;
    writeln!(
        o,
        "  entries   {} (exact {}, prefixes {}, tombstones {})",
        info.entries, info.counts.exact, info.counts.prefixes, info.counts.tombstones
    )?;
    writeln!(
        o,
        "  actions   block {}  warn {}  tag {}  allow {}",
        info.counts.block, info.counts.warn, info.counts.tag, info.counts.allow
    )?;
    writeln!(
        o,
        "  size      {} bytes ({} bytes/entry; leaves {}, fst {})",
        info.bytes, info.bytes_per_entry, info.leaf_bytes, info.fst_bytes
    )?;
    writeln!(
        o,
        "  strings   {} categories, {} sources",
        info.categories, info.sources
    )?;
    writeln!(o, "  hash      {}", info.hash)?;
    Ok(())
}

fn run_diff(a: DiffArgs) -> Result<(), CliError> {
    let old = Snapshot::open_with(&a.old, Load::Map)?;
    let new = Snapshot::open_with(&a.new, Load::Map)?;
    let d = diff(&old, &new, a.limit)?;
    if a.json {
        return print_json(&d);
    }
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "{} -> {}: {} added, {} removed, {} changed, {} unchanged",
        old.version(),
        new.version(),
        d.added_count,
        d.removed_count,
        d.changed_count,
        d.unchanged_count
    )?;
    for e in &d.added {
        writeln!(
            o,
            "+ {} {} {} {} {}",
            e.entry, e.action, e.category, e.score, e.source
        )?;
    }
    for e in &d.removed {
        writeln!(
            o,
            "- {} {} {} {} {}",
            e.entry, e.action, e.category, e.score, e.source
        )?;
    }
    for c in &d.changed {
        writeln!(
            o,
            "~ {} {} {} {} -> {} {} {}",
            c.new.entry,
            c.old.action,
            c.old.category,
            c.old.score,
            c.new.action,
            c.new.category,
            c.new.score
        )?;
    }
    Ok(())
}

fn run_keygen(a: KeygenArgs) -> Result<(), CliError> {
    let public = sign::keygen(&a.output, a.force)?;
    let (k, p) = sign::key_paths(&a.output);
    println!(
        "wrote {} (secret, keep it safe) and {} (public key {})",
        k.display(),
        p.display(),
        crate::blocklist::hex::encode(public.as_bytes())
    );
    Ok(())
}

fn run_sign(a: SignArgs) -> Result<(), CliError> {
    let key = sign::read_signing_key(&a.key)?;
    if crate::subscribers::is_subscriber_list(&a.snapshot) {
        let l = crate::subscribers::SubscriberList::open(&a.snapshot)
            .map_err(|e| CliError::Lists(e.to_string()))?;
        let sig = sign::sig_path(&a.snapshot);
        sign::sign_to_file(&key, l.header_bytes(), &sig)?;
        println!(
            "signed {} (subscribers, version {}): {}",
            a.snapshot.display(),
            l.info().version,
            sig.display()
        );
        return Ok(());
    }
    let snap = Snapshot::open_with(&a.snapshot, Load::Map)?;
    let sig = sign::sig_path(&a.snapshot);
    sign::sign_to_file(&key, snap.header_bytes(), &sig)?;
    println!(
        "signed {} (version {}) with key {}: {}",
        a.snapshot.display(),
        snap.version(),
        crate::blocklist::hex::encode(key.verifying_key().as_bytes()),
        sig.display()
    );
    Ok(())
}

fn run_verify(a: VerifyArgs) -> Result<(), CliError> {
    let keys = a
        .key
        .iter()
        .map(|k| sign::read_verifying_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    if crate::subscribers::is_subscriber_list(&a.snapshot) {
        let l = crate::subscribers::SubscriberList::open_signed(&a.snapshot, &keys)
            .map_err(|e| CliError::Lists(e.to_string()))?;
        println!(
            "OK {}: subscribers, version {}, {} entries, signature valid",
            a.snapshot.display(),
            l.info().version,
            l.info().entries
        );
        return Ok(());
    }
    let snap = Snapshot::open_signed_with(&a.snapshot, &keys, Load::Map)?;
    if a.json {
        return print_json(&snap.info());
    }
    println!(
        "OK {}: version {}, {} entries, hash {}, signature valid",
        a.snapshot.display(),
        snap.version(),
        snap.len(),
        crate::blocklist::hex::encode(&snap.hash())
    );
    Ok(())
}
