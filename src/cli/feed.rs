//! `fraudwall feed …` and `fraudwall publish`: the operator's side of the central feed.

use crate::feed::policy::PublishPolicy;
use crate::feed::publish::{publish_list, PublishOptions};
use crate::feed::ListKind;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// `fraudwall feed` subcommands.
#[derive(Debug, Subcommand)]
pub enum FeedCommand {
    /// Serve a feed directory over HTTP (for labs and tests; production feeds belong on any
    /// static HTTP server, CDN or object store).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The feed directory (as written by `fraudwall publish`).
        dir: PathBuf,
    },
}

/// `fraudwall publish`: the operator's whole new list into the feed's next version.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The feed directory (created if missing).
    #[arg(long)]
    feed_dir: PathBuf,
    /// The operator's secret key (from `fraudwall keygen`).
    #[arg(long)]
    key: PathBuf,
    /// Name of a new feed (an existing feed keeps its name).
    #[arg(long, default_value = "fraudwall")]
    feed_name: String,
    /// Publish a new base whatever the size of the change (folds all deltas).
    #[arg(long)]
    base: bool,
    /// Fold the deltas into a new base once they would exceed this fraction of the base.
    #[arg(long, default_value_t = 0.25)]
    max_delta_fraction: f64,
    /// Fold into a new base once there would be more deltas than this.
    #[arg(long, default_value_t = 32)]
    max_deltas: usize,
    /// How long the manifest stays fresh (nodes warn that the feed looks frozen past it).
    #[arg(long, default_value = "7d")]
    ttl: humantime::Duration,
    /// Versioned manifests (and their files) kept for pinned nodes.
    #[arg(long, default_value_t = 10)]
    keep: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Which of the feed's lists this is: the blocklist (at the feed's root, base and
    /// deltas), or the subscribers' or protected list (in `subscribers/` or `protected/`,
    /// published whole). Each list has its own manifest and version.
    #[arg(long, value_enum, default_value = "blocklist")]
    list: ListKind,
    /// The whole new list, compiled (`fraudwall compile`, with the matching `--kind`).
    snapshot: PathBuf,
}

/// Runs `fraudwall publish`.
pub fn run_publish(args: PublishArgs) -> ExitCode {
    let key = match crate::blocklist::sign::read_signing_key(&args.key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !(args.max_delta_fraction > 0.0 && args.max_delta_fraction.is_finite()) {
        eprintln!("error: --max-delta-fraction must be a positive number (e.g. 0.25)");
        return ExitCode::from(2);
    }
    let opts = PublishOptions {
        policy: PublishPolicy {
            max_delta_fraction: args.max_delta_fraction,
            max_deltas: args.max_deltas,
            ttl: args.ttl.into(),
        },
        feed_name: args.feed_name,
        force_base: args.base,
        keep: args.keep,
        now_unix: crate::feed::node::unix_now(),
    };
    if let Err(e) = std::fs::create_dir_all(&args.feed_dir) {
        eprintln!("error: cannot create {}: {e}", args.feed_dir.display());
        return ExitCode::FAILURE;
    }
    match publish_list(&args.feed_dir, args.list, &key, &args.snapshot, &opts) {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&report)
                        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
                );
            } else {
                let changes = if report.kind == "base" {
                    String::new()
                } else {
                    format!(
                        "{} added, {} changed, {} removed; ",
                        report.changes.added, report.changes.changed, report.changes.removed
                    )
                };
                println!(
                    "published {} version {} as {}{}: {changes}{} bytes{}; {} delta(s) on the base; {} old file(s) pruned",
                    args.list,
                    report.version,
                    report.kind,
                    report.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
                    report.bytes,
                    report.file.as_deref().map(|f| format!(" in {f}")).unwrap_or_default(),
                    report.deltas,
                    report.pruned,
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a `fraudwall feed` subcommand.
pub fn run(cmd: FeedCommand) -> ExitCode {
    match cmd {
        FeedCommand::Serve { listen, dir } => serve(listen, dir),
    }
}

fn serve(listen: SocketAddr, dir: PathBuf) -> ExitCode {
    init_logging();
    if !dir.is_dir() {
        eprintln!(
            "error: feed directory {} does not exist (create it with `fraudwall publish --feed-dir {}`)",
            dir.display(),
            dir.display()
        );
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(%listen, dir = %dir.display(), "serving feed directory");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match crate::feed::serve::serve(listener, dir, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: feed server failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Logs to stderr, level from `RUST_LOG` (default `info`). Harmless if already set up.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
