//! `fraudwall suspects`: the behavioural detector's suspects, from a running node's admin
//! listener, as JSON or as blocklist CSV rows for review.
//!
//! ```text
//! fraudwall suspects --admin 127.0.0.1:9060 [--csv]
//! ```
//!
//! `GET /suspects` is a read-only admin endpoint (like `/status`), open to whoever reaches
//! the admin listener, so no token is needed; `--token-file` sends `Authorization: Bearer`
//! with the file's first token for an admin listener put behind an authenticating proxy.
//! With `--csv` the output is a blocklist CSV (`number,action,category,score,source`, with
//! `source` = `behaviour`), one row per suspect with its rule's action, category and score:
//! review it, then `fraudwall compile` and publish it like any other list.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::behaviour::SuspectsDocument;

/// `fraudwall suspects`.
#[derive(Debug, Args)]
pub struct SuspectsArgs {
    /// The admin listener of a running `fraudwall run` (`admin.listen`), `IP:PORT` or a URL.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9060")]
    admin: String,
    /// Print blocklist CSV rows (`source` = `behaviour`) instead of JSON.
    #[arg(long)]
    csv: bool,
    /// A file of bearer tokens (`admin.tokens_file`): its first token is sent.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// How long to wait for the answer.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Why the suspects could not be fetched.
#[derive(Debug, thiserror::Error)]
enum SuspectsError {
    #[error("{url}: {source} (is `fraudwall run` up with admin.listen = {admin:?}?)")]
    Fetch {
        url: String,
        admin: String,
        source: reqwest::Error,
    },
    #[error("{url}: {status}: {body}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("{url}: not a /suspects document: {0}", url = .1)]
    Document(serde_json::Error, String),
    #[error("--token-file {0}: {1}")]
    Token(String, String),
    #[error("cannot start: {0}")]
    Start(std::io::Error),
}

/// Runs `fraudwall suspects`.
pub fn run(args: SuspectsArgs) -> ExitCode {
    match fetch(&args) {
        Ok(doc) => {
            if args.csv {
                print!("{}", doc.to_csv());
            } else {
                match serde_json::to_string_pretty(&doc) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fetch(args: &SuspectsArgs) -> Result<SuspectsDocument, SuspectsError> {
    let base = if args.admin.contains("://") {
        args.admin.trim_end_matches('/').to_string()
    } else {
        format!("http://{}", args.admin)
    };
    let url = format!("{base}/suspects");
    let token = match &args.token_file {
        Some(p) => {
            let shown = p.display().to_string();
            let text = std::fs::read_to_string(p)
                .map_err(|e| SuspectsError::Token(shown.clone(), e.to_string()))?;
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .ok_or_else(|| SuspectsError::Token(shown, "holds no token".into()))?;
            Some(first.to_string())
        }
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SuspectsError::Start)?;
    rt.block_on(async {
        let fetch_err = |source| SuspectsError::Fetch {
            url: url.clone(),
            admin: args.admin.clone(),
            source,
        };
        let client = reqwest::Client::builder()
            .timeout(args.timeout)
            .build()
            .map_err(fetch_err)?;
        let mut req = client.get(&url);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(fetch_err)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(fetch_err)?;
        if !status.is_success() {
            return Err(SuspectsError::Status {
                url: url.clone(),
                status,
                body: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| SuspectsError::Document(e, url.clone()))
    })
}
