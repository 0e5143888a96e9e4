//! `fraudwall feed …` and `fraudwall publish`: the operator's side of the central feed.

use clap::Subcommand;
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
