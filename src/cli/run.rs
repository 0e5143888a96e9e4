//! `fraudwall run` (the carrier's proxy) and `fraudwall config` (the configuration file).
//!
//! ```text
//! fraudwall run [--config FILE] [--mode proxy|redirect] [--blocklist SNAPSHOT] [--subscribers SNAPSHOT] [--protected SNAPSHOT]
//!               [--listen ADDR:PORT]... [--next-hop ADDR:PORT]...
//!               [--admin ADDR:PORT] [--api ADDR:PORT --api-tokens FILE] [--workers N] [--decision-log TARGET] [--log-level FILTER]
//!               [--feed URL --feed-key PUB [--feed-poll 2s] [--cache-dir DIR] [--feed-pin V]]
//! fraudwall config default            # prints the commented default configuration
//! fraudwall config check FILE         # validates a file, prints the resolved settings
//! ```
//!
//! Flags override the file; repeated `--listen`/`--next-hop` replace the whole list. With no
//! configuration at all, fraudwall listens on 127.0.0.1:5060 (UDP and TCP), forwards to
//! 127.0.0.1:5080, screens against the embedded sample list and serves admin on
//! 127.0.0.1:9060.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, ConfigError, DEFAULT_CONFIG};
use crate::proxy::runtime::Runtime;

/// The list files `run` and `explain` take, each overriding its config key.
#[derive(Debug, Args)]
pub struct ListFileArgs {
    /// Blocklist snapshot (overrides blocklist.snapshot).
    #[arg(long, value_name = "SNAPSHOT")]
    pub blocklist: Option<PathBuf>,
    /// Subscriber list snapshot (`compile --kind subscribers`; overrides lists.subscribers).
    #[arg(long, value_name = "SNAPSHOT")]
    pub subscribers: Option<PathBuf>,
    /// Protected list snapshot (`compile --kind protected`; overrides lists.protected).
    #[arg(long, value_name = "SNAPSHOT")]
    pub protected: Option<PathBuf>,
}

impl ListFileArgs {
    /// Writes the given files into `cfg`.
    pub fn apply(&self, cfg: &mut Config) {
        if let Some(b) = &self.blocklist {
            cfg.blocklist.snapshot = Some(b.clone());
        }
        if let Some(p) = &self.subscribers {
            cfg.lists.subscribers = Some(p.clone());
        }
        if let Some(p) = &self.protected {
            cfg.lists.protected = Some(p.clone());
        }
    }
}

/// `fraudwall run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML; `fraudwall config default` prints a commented one).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The list files.
    #[command(flatten)]
    lists: ListFileArgs,
    /// "proxy" (inline, forwards to the next hops) or "redirect" (a SIP redirect server:
    /// every INVITE is answered with its verdict, nothing forwarded, no next hop needed;
    /// overrides sip.mode).
    #[arg(long, value_name = "MODE")]
    mode: Option<crate::proxy::listen::SipMode>,
    /// SIP listen address, repeatable (overrides sip.listen), e.g. 127.0.0.1:5060 or [::1]:5060.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<String>,
    /// Next hop, repeatable, in failover order (overrides proxy.next_hops).
    #[arg(long, value_name = "ADDR:PORT")]
    next_hop: Vec<String>,
    /// Admin HTTP listener (overrides admin.listen; "" turns it off).
    #[arg(long, value_name = "ADDR:PORT")]
    admin: Option<String>,
    /// HTTP verdict API listener (overrides api.listen; "" turns it off).
    #[arg(long, value_name = "ADDR:PORT")]
    api: Option<String>,
    /// The API's bearer tokens file, one per line (overrides api.tokens_file).
    #[arg(long, value_name = "FILE")]
    api_tokens: Option<PathBuf>,
    /// UDP worker threads (overrides sip.udp_workers; 0 = one per core).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// UDP workers share one socket per address instead of one SO_REUSEPORT socket each
    /// (sets sip.udp_spread = "shared").
    #[arg(long)]
    shared_socket: bool,
    /// How datagrams are spread over the UDP workers: shared (the default), random, cpu or flow
    /// (overrides sip.udp_spread).
    #[arg(long, value_name = "SPREAD")]
    udp_spread: Option<crate::proxy::udp::UdpSpread>,
    /// SCHED_FIFO priority of the UDP workers, 1 to 99, 0 = normal scheduling (overrides
    /// sip.udp_realtime_priority): lower transit latency, more CPU per call.
    #[arg(long, value_name = "N")]
    realtime_priority: Option<u8>,
    /// Decision log: stdout, stderr, off, or a file path (overrides decision_log.target).
    #[arg(long, value_name = "TARGET")]
    decision_log: Option<String>,
    /// Diagnostics filter (overrides log.level), e.g. info, debug.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Central feed manifest URL (overrides feed.url), e.g. http://127.0.0.1:8080/manifest.json.
    #[arg(long, value_name = "URL")]
    feed: Option<String>,
    /// Public key a feed manifest may be signed with, repeatable (overrides feed.keys).
    #[arg(long, value_name = "PUB")]
    feed_key: Vec<String>,
    /// Feed poll interval (overrides feed.poll), e.g. 2s.
    #[arg(long, value_name = "DURATION")]
    feed_poll: Option<String>,
    /// Feed cache directory (overrides feed.cache_dir).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<String>,
    /// Pin the feed to this version (overrides feed.pin_version; 0 = follow the feed).
    #[arg(long, value_name = "VERSION")]
    feed_pin: Option<u64>,
}

/// `fraudwall config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the commented default configuration.
    Default,
    /// Validate a configuration file and print the resolved settings.
    Check {
        /// The file.
        file: PathBuf,
    },
}

/// A command-line value that does not parse: named by its flag.
fn flag_error(flag: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: flag.to_string(),
        reason: reason.to_string(),
    }
}

/// The configuration `run` would use: the file (or defaults) with the flags applied.
pub fn resolve(args: &RunArgs) -> Result<Config, ConfigError> {
    use crate::config::LogTarget;
    use crate::proxy::core::NextHopEntry;
    use crate::proxy::listen::Listener;
    let mut cfg = match &args.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    args.lists.apply(&mut cfg);
    if let Some(m) = args.mode {
        cfg.sip.mode = m;
    }
    if !args.listen.is_empty() {
        cfg.sip.listen = args
            .listen
            .iter()
            .map(|s| Listener::parse(s).map_err(|e| flag_error("--listen", e)))
            .collect::<Result<_, _>>()?;
    }
    if !args.next_hop.is_empty() {
        cfg.proxy.next_hops = args
            .next_hop
            .iter()
            .map(|s| NextHopEntry::parse(s).map_err(|e| flag_error("--next-hop", e)))
            .collect::<Result<_, _>>()?;
    }
    if let Some(a) = &args.admin {
        cfg.admin.listen = match a.trim() {
            "" => None,
            a => Some(
                crate::config::value::socket_addr::parse(a)
                    .map_err(|e| flag_error("--admin", e))?,
            ),
        };
    }
    if let Some(a) = &args.api {
        cfg.api.listen = match a.trim() {
            "" => None,
            a => Some(
                crate::config::value::socket_addr::parse(a).map_err(|e| flag_error("--api", e))?,
            ),
        };
    }
    if let Some(t) = &args.api_tokens {
        cfg.api.tokens_file = Some(t.clone());
    }
    if let Some(w) = args.workers {
        cfg.sip.udp_workers = w;
    }
    if let Some(s) = args.udp_spread {
        cfg.sip.udp_spread = s;
    }
    if args.shared_socket {
        cfg.sip.udp_spread = crate::proxy::udp::UdpSpread::Shared;
    }
    if let Some(p) = args.realtime_priority {
        cfg.sip.udp_realtime_priority = p;
    }
    if let Some(d) = &args.decision_log {
        cfg.decision_log.target = d
            .parse::<LogTarget>()
            .map_err(|e| flag_error("--decision-log", e))?;
    }
    if let Some(l) = &args.log_level {
        cfg.log.level = l.clone();
    }
    if let Some(url) = &args.feed {
        cfg.feed.url = url.clone();
    }
    if !args.feed_key.is_empty() {
        cfg.feed.keys = args.feed_key.iter().map(PathBuf::from).collect();
    }
    if let Some(p) = &args.feed_poll {
        cfg.feed.poll = humantime::parse_duration(p.trim()).map_err(|e| {
            flag_error(
                "--feed-poll",
                format!("invalid duration {p:?}: {e} (expected e.g. \"2s\")"),
            )
        })?;
    }
    if let Some(d) = &args.cache_dir {
        cfg.feed.cache_dir = PathBuf::from(d);
    }
    if let Some(v) = args.feed_pin {
        cfg.feed.pin_version = v;
    }
    Ok(cfg)
}

/// Runs the proxy until SIGINT/SIGTERM.
pub fn run(args: RunArgs) -> ExitCode {
    let validated = match resolve(&args).and_then(|c| c.validate().map(|()| c)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("fraudwall: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&validated.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let rt = match Runtime::start(&validated) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fraudwall: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.wait_for_signal();
    rt.shutdown();
    ExitCode::SUCCESS
}

/// Runs `fraudwall config ...`.
pub fn config(cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Default => {
            print!("{DEFAULT_CONFIG}");
            ExitCode::SUCCESS
        }
        ConfigCommand::Check { file } => {
            match Config::from_file(&file).and_then(|c| c.validate().map(|()| c)) {
                Ok(v) => {
                    println!("# {}: ok; the resolved configuration:", file.display());
                    print!("{}", v.to_toml());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fraudwall: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("fw.toml");
        std::fs::write(
            &f,
            "[proxy]\nnext_hops = [\"10.0.0.1:5060\"]\n[admin]\nlisten = \"127.0.0.1:9999\"\n",
        )
        .unwrap();
        let t = T::parse_from([
            "t",
            "--config",
            f.to_str().unwrap(),
            "--listen",
            "127.0.0.1:5062",
            "--listen",
            "[::1]:5062",
            "--blocklist",
            "/x/list.fwsnap",
        ]);
        let v = resolve(&t.run).unwrap();
        v.validate().unwrap();
        assert_eq!(v.sip.addresses().len(), 2);
        assert_eq!(v.proxy.hops()[0].address, "10.0.0.1:5060".parse().unwrap());
        assert_eq!(v.admin.listen, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(v.blocklist.snapshot, Some(PathBuf::from("/x/list.fwsnap")));
        let t = T::parse_from(["t", "--next-hop", "nope", "--admin", ""]);
        let e = resolve(&t.run).unwrap_err().to_string();
        assert!(
            e.starts_with("--next-hop: invalid socket address \"nope\""),
            "{e}"
        );
        let t = T::parse_from(["t", "--admin", ""]);
        assert_eq!(resolve(&t.run).unwrap().admin.listen, None);
        let t = T::parse_from(["t", "--mode", "redirect"]);
        let v = resolve(&t.run).unwrap();
        v.validate().unwrap();
        assert_eq!(v.sip.mode, crate::proxy::listen::SipMode::Redirect);
        assert!(T::try_parse_from(["t", "--mode", "relay"]).is_err());
    }
}
