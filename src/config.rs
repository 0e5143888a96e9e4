//! The `fraudwall run` configuration: TOML, every key documented, every key optional.
//!
//! [`DEFAULT_CONFIG`] is the commented default configuration (`fraudwall config default` prints
//! it); parsing it gives exactly [`Config::default()`] (a test holds the two together). A file
//! only needs the keys it changes:
//!
//! ```
//! let cfg = fraudwall::config::Config::from_toml_str(
//!     "[proxy]\nnext_hops = [\"192.0.2.10:5060\", \"[2001:db8::10]:5060\"]\n",
//! ).unwrap();
//! let valid = cfg.validate().unwrap();
//! assert_eq!(valid.next_hops.len(), 2);
//! ```
//!
//! Errors name the key and the reason: syntax and type errors come from `toml` with the line,
//! column and key (unknown keys are refused, so a typo is not silently ignored), semantic
//! errors from [`Config::validate`] as `proxy.next_hops[1]: invalid socket address "x": ...`.
//!
//! Two layers: [`Config`] is what the file says (strings as written, so errors can quote
//! them), [`Validated`] is the checked, typed form the runtime starts from.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::blocklist::Action;
use crate::proxy::core::{DialogKey, ForeignRoute};

/// The commented default configuration. Parsing it yields [`Config::default()`].
pub const DEFAULT_CONFIG: &str = r#"# fraudwall configuration (TOML). Every key is optional: the values shown are the defaults.
# Print this file with `fraudwall config default`; check one with `fraudwall config check FILE`.
# Command-line flags of `fraudwall run` (--listen, --next-hop, --blocklist, --admin) override it.

[sip]
# Addresses SIP is received on. Each one gets every transport below. IPv6 as "[::1]:5060".
listen = ["127.0.0.1:5060"]
# Transports on every listen address: "udp", "tcp" (at least one).
transports = ["udp", "tcp"]
# UDP worker threads; each owns one SO_REUSEPORT socket per UDP listen address. 0 = one per core.
udp_workers = 0
# true: each UDP worker owns a socket (SO_REUSEPORT; the kernel spreads datagrams by flow hash).
# false: the workers share one socket per address and take whichever datagram comes next,
# which balances better when a few peers (SBCs, switches) send all the traffic.
udp_reuseport = true
# Datagrams received and sent per system call (recvmmsg/sendmmsg), 1 to 256.
udp_batch = 32
# Real-time priority of the UDP workers, 1 to 99 (SCHED_FIFO, Linux; needs root or
# CAP_SYS_NICE), or 0 for the normal scheduler. A real-time worker runs the moment a datagram
# arrives instead of waiting for the CPU, so transit is several times shorter, at the price of
# smaller batches and more CPU per call (measured at 2,000 calls/s through the sipp harness:
# INVITE transit p50 55-65 µs instead of 210-300, p99 about 290 µs instead of 510-630, CPU per
# call about +35 %, and on a 2-core box shared with the load generator the highest sustained
# rate fell from 13,000 to 9,000 calls/s). The kernel keeps 5 % of each core for other tasks
# (kernel.sched_rt_runtime_us). If the priority cannot be set, a warning is logged and the
# workers run at normal priority.
udp_realtime_priority = 0
# Largest SIP message accepted, in bytes (a datagram, or one framed TCP message), 512 to 65535.
# Larger ones are dropped and counted (parse errors, reason "too_large").
max_message_size = 65535
# TCP connections open at once (accepted plus opened to next hops); beyond it accepts are refused.
tcp_max_connections = 4096
# Connections accepted from one source IP address at once (IPv6: one address, not a prefix);
# beyond it that source's new connections are closed at accept and counted (dropped_total,
# reason "source_connection_limit"), while other sources still connect. Keeps one client from
# taking every slot of tcp_max_connections.
tcp_max_connections_per_source = 64
# A TCP connection that completes no message (nor RFC 5626 keep-alive) for this long is closed
# (humantime: "90s", "2m"). Bytes that do not complete a message do not restart it.
tcp_idle_timeout = "120s"
# Each TCP message must arrive whole (start line, headers and body) within this long of its
# first byte; a connection that misses it is closed and counted (dropped_total, reason
# "message_timeout"). Stops slowloris clients that send a byte now and then to hold a slot.
tcp_message_timeout = "10s"
# Time allowed to open a TCP connection to a next hop before it counts as a send error.
tcp_connect_timeout = "2s"
# Sources (IP addresses or networks such as "10.0.0.0/8") SIP is taken from; messages from
# anyone else are dropped unanswered and counted (fraudwall_source_refused_total).
# Empty = any source. The next hops, the warn service and proxy.trusted_peers are always allowed.
# (Whatever the sources: answers fraudwall generates itself, 608, 603, 400, 403 ..., to a UDP
# source that is neither a trusted peer nor a next hop are never larger than the request that
# drew them. Optional headers such as the 608's Call-Info are dropped to fit, and if it still
# does not fit nothing is sent (fraudwall_reflection_limited_total): no reflection attacks.)
allowed_sources = []

[proxy]
# Where calls are forwarded (the carrier's switches), tried in order with failover. At least one.
next_hops = ["127.0.0.1:5080"]
# Transport towards the next hops: "udp" or "tcp".
next_hop_transport = "udp"
# Insert a Record-Route so in-dialog requests (ACK, BYE) come back through fraudwall.
record_route = false
# Peers (IP addresses or networks such as "10.0.0.0/8") whose P-Asserted-Identity and
# Remote-Party-ID are believed; anyone else's are ignored and removed before forwarding
# (RFC 3325), counted in fraudwall_identity_headers_removed_total.
trusted_peers = []
# An initial request whose Route names neither fraudwall nor a next hop (someone using
# fraudwall as an open relay): "ignore" removes its Route headers and sends it to the next hop,
# "reject" answers 403. It is never sent where that Route points (counted either way in
# fraudwall_routing_refused_total). In-dialog requests go only to the next hops, the warn
# service and the networks of trusted_peers and sip.allowed_sources, else 403: list your SBCs
# there, or a callee's BYE towards them is refused.
foreign_route = "ignore"
# A file of at least 16 random bytes (e.g. `head -c 32 /dev/urandom > dialog.key`) keying the
# dialog proof fraudwall writes into its Record-Route: an INVITE with a To-tag passes
# unscreened only with that proof, else it is screened like a new call. Give every node
# behind a load balancer the same file. Empty = a random key per process: dialogs then do not
# survive a restart (their next re-INVITE is screened like a new call).
dialog_key_file = ""
# The identity headers screened: "pai", "rpid" (Remote-Party-ID), "from". Every value of each
# is screened and the most severe verdict wins (block > warn > tag > allow; a number outranks
# an anonymous or invalid value); this order breaks ties and names the deciding header.
identity_order = ["pai", "rpid", "from"]
# National numbering rules used to normalize callers to E.164: "generic", "cn", "nanp".
numbering_profile = "generic"

[health]
# Next-hop health. A hop is marked down when a send to it fails at the hop (ICMP port or
# host unreachable, read from the socket's error queue at once; a refused or timed-out TCP
# connect) or when `max_missed` OPTIONS probes in a row go unanswered; calls then go to the
# next hop in `proxy.next_hops`, and the callers' retransmissions, CANCELs and ACKs follow.
# Recovery: probes keep going to a down hop, and its first answer brings it back at once.
# A message too big for a datagram is answered 513 and never held against the hop.
# How often each next hop is sent an OPTIONS probe (checked once a second). "0s" = no probes.
probe_interval = "5s"
# Probes in a row a hop may leave unanswered before it is marked down, 1 to 100.
max_missed = 3
# How long a send failure (or missed probes) keeps a hop down when no probe answer brings it
# back first (without probes, the only way back).
down_for = "30s"

[actions]
# Response to blocked callers: 608 (Rejected, with a Call-Info redress jCard, RFC 8688)
# or 603 (Decline, with Reason text "Network Blocked").
block_response = 608
# Redress URL carried in the 608's Call-Info jCard (where a wrongly blocked caller complains).
redress_url = ""
# Header added to tagged calls: "<header>: suspected-fraud;category=<c>;score=<s>".
tag_header = "X-Fraud-Label"
# Label (at most 15 characters, the CNAM limit) prefixed to the display name of tagged callers'
# P-Asserted-Identity. Empty = display names untouched.
tag_display_label = ""
# Also prefix the From display name with that label.
tag_from_display = false
# SIP URI of the warning-announcement service warned calls are sent through.
# Empty = warned calls are tagged instead.
warn_uri = ""
# Action for anonymous callers and for callers that are not a valid number:
# "allow", "tag", "warn" or "block". Either way they are counted.
anonymous = "allow"
invalid = "allow"

[blocklist]
# Compiled blocklist snapshot (see `fraudwall blocklist compile`). Empty = the embedded sample list.
snapshot = ""
# How often the snapshot file is checked for a new version, which is swapped in without
# dropping a call (a bad file never replaces a good list). "0s" = never.
reload_interval = "5s"

[feed]
# A central feed (see `fraudwall publish`): when `url` is set, calls are screened against the
# feed's signed base and deltas instead of `blocklist.snapshot`. Empty = no feed.
url = ""
# Public keys (`fraudwall keygen`'s .pub files) a manifest may be signed with.
keys = []
# Poll interval (a random jitter only ever shortens it).
poll = "30s"
# The last good feed state, served at start before the feed answers.
cache_dir = "/var/lib/fraudwall/feed"
# Stay on (or roll back to) this feed version; 0 = follow the feed.
pin_version = 0

[admin]
# Admin HTTP listener: /metrics (Prometheus), /healthz, /status (JSON), POST /reload. Empty = off.
listen = "127.0.0.1:9060"
# Bearer tokens for the state-changing endpoints (POST /reload): a file with one token per line
# (16 or more characters of letters, digits, -._~+/; `openssl rand -hex 32` makes one; blank
# lines and `#` comments are ignored), sent as `Authorization: Bearer <token>`. The file is
# reread within a second of a change. Empty = state-changing endpoints refused (403), secure
# by default. Read-only endpoints stay open; requests with an Origin header (browsers) are
# always refused on state-changing endpoints.
tokens_file = ""

[decision_log]
# Where a JSON line per screened call goes: "stdout", "stderr", "off", or a file path (appended).
target = "stdout"
# Bound on the batch waiting for the writer thread (written every 100 ms): this many lines
# and this many KiB at most; past it lines are dropped and counted.
queue = 65536
# Also log allowed calls (not only tagged, warned and blocked ones).
include_allowed = true

[log]
# Diagnostics on stderr, a tracing filter: "error", "warn", "info", "debug", "fraudwall=debug".
level = "info"
"#;

/// The whole configuration file, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[sip]`: listeners and transports.
    pub sip: SipSection,
    /// `[proxy]`: forwarding and caller identity.
    pub proxy: ProxySection,
    /// `[health]`: next-hop health and failover.
    pub health: HealthSection,
    /// `[actions]`: what each verdict does.
    pub actions: ActionsSection,
    /// `[blocklist]`: the snapshot.
    pub blocklist: BlocklistSection,
    /// `[feed]`: a central feed instead of a local snapshot.
    pub feed: FeedSection,
    /// `[admin]`: the admin HTTP listener.
    pub admin: AdminSection,
    /// `[decision_log]`: the per-call JSON lines.
    pub decision_log: DecisionLogSection,
    /// `[log]`: diagnostics.
    pub log: LogSection,
}

/// `[sip]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipSection {
    /// `sip.listen`.
    pub listen: Vec<String>,
    /// `sip.transports`.
    pub transports: Vec<String>,
    /// `sip.udp_workers` (0 = cores).
    pub udp_workers: usize,
    /// `sip.udp_reuseport`.
    pub udp_reuseport: bool,
    /// `sip.udp_batch`.
    pub udp_batch: usize,
    /// `sip.udp_realtime_priority` (0 = normal scheduling).
    pub udp_realtime_priority: u8,
    /// `sip.max_message_size`.
    pub max_message_size: usize,
    /// `sip.tcp_max_connections`.
    pub tcp_max_connections: usize,
    /// `sip.tcp_max_connections_per_source`.
    pub tcp_max_connections_per_source: usize,
    /// `sip.tcp_idle_timeout`.
    pub tcp_idle_timeout: String,
    /// `sip.tcp_message_timeout`.
    pub tcp_message_timeout: String,
    /// `sip.tcp_connect_timeout`.
    pub tcp_connect_timeout: String,
    /// `sip.allowed_sources` (empty = any source).
    pub allowed_sources: Vec<String>,
}

impl Default for SipSection {
    fn default() -> Self {
        SipSection {
            listen: vec!["127.0.0.1:5060".into()],
            transports: vec!["udp".into(), "tcp".into()],
            udp_workers: 0,
            udp_reuseport: true,
            udp_batch: 32,
            udp_realtime_priority: 0,
            max_message_size: 65535,
            tcp_max_connections: 4096,
            tcp_max_connections_per_source: 64,
            tcp_idle_timeout: "120s".into(),
            tcp_message_timeout: "10s".into(),
            tcp_connect_timeout: "2s".into(),
            allowed_sources: Vec::new(),
        }
    }
}

/// `[proxy]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySection {
    /// `proxy.next_hops`.
    pub next_hops: Vec<String>,
    /// `proxy.next_hop_transport`.
    pub next_hop_transport: String,
    /// `proxy.record_route`.
    pub record_route: bool,
    /// `proxy.trusted_peers`.
    pub trusted_peers: Vec<String>,
    /// `proxy.foreign_route`: "ignore" or "reject".
    pub foreign_route: String,
    /// `proxy.dialog_key_file` (empty = a random key per process).
    pub dialog_key_file: String,
    /// `proxy.identity_order`.
    pub identity_order: Vec<String>,
    /// `proxy.numbering_profile`.
    pub numbering_profile: String,
}

impl Default for ProxySection {
    fn default() -> Self {
        ProxySection {
            next_hops: vec!["127.0.0.1:5080".into()],
            next_hop_transport: "udp".into(),
            record_route: false,
            trusted_peers: Vec::new(),
            foreign_route: "ignore".into(),
            dialog_key_file: String::new(),
            identity_order: vec!["pai".into(), "rpid".into(), "from".into()],
            numbering_profile: "generic".into(),
        }
    }
}

/// `[health]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSection {
    /// `health.probe_interval` ("0s" = no probes).
    pub probe_interval: String,
    /// `health.max_missed`.
    pub max_missed: u32,
    /// `health.down_for`.
    pub down_for: String,
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection {
            probe_interval: "5s".into(),
            max_missed: 3,
            down_for: "30s".into(),
        }
    }
}

/// `[actions]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsSection {
    /// `actions.block_response` (608 or 603).
    pub block_response: u16,
    /// `actions.redress_url`.
    pub redress_url: String,
    /// `actions.tag_header`.
    pub tag_header: String,
    /// `actions.tag_display_label`.
    pub tag_display_label: String,
    /// `actions.tag_from_display`.
    pub tag_from_display: bool,
    /// `actions.warn_uri`.
    pub warn_uri: String,
    /// `actions.anonymous`.
    pub anonymous: String,
    /// `actions.invalid`.
    pub invalid: String,
}

impl Default for ActionsSection {
    fn default() -> Self {
        ActionsSection {
            block_response: 608,
            redress_url: String::new(),
            tag_header: "X-Fraud-Label".into(),
            tag_display_label: String::new(),
            tag_from_display: false,
            warn_uri: String::new(),
            anonymous: "allow".into(),
            invalid: "allow".into(),
        }
    }
}

/// `[blocklist]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlocklistSection {
    /// `blocklist.snapshot` (empty = embedded sample).
    pub snapshot: String,
    /// `blocklist.reload_interval`.
    pub reload_interval: String,
}

impl Default for BlocklistSection {
    fn default() -> Self {
        BlocklistSection {
            snapshot: String::new(),
            reload_interval: "5s".into(),
        }
    }
}

/// `[feed]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSection {
    /// `feed.url` (empty = no feed).
    pub url: String,
    /// `feed.keys`.
    pub keys: Vec<String>,
    /// `feed.poll`.
    pub poll: String,
    /// `feed.cache_dir`.
    pub cache_dir: String,
    /// `feed.pin_version` (0 = follow the feed).
    pub pin_version: u64,
}

impl Default for FeedSection {
    fn default() -> Self {
        FeedSection {
            url: String::new(),
            keys: Vec::new(),
            poll: "30s".into(),
            cache_dir: "/var/lib/fraudwall/feed".into(),
            pin_version: 0,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// `admin.listen` (empty = off).
    pub listen: String,
    /// `admin.tokens_file` (empty = state-changing endpoints refused).
    pub tokens_file: String,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: "127.0.0.1:9060".into(),
            tokens_file: String::new(),
        }
    }
}

/// `[decision_log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionLogSection {
    /// `decision_log.target`: "stdout", "stderr", "off" or a path.
    pub target: String,
    /// `decision_log.queue`: at most this many lines, and this many KiB, wait for the writer.
    pub queue: usize,
    /// `decision_log.include_allowed`.
    pub include_allowed: bool,
}

impl Default for DecisionLogSection {
    fn default() -> Self {
        DecisionLogSection {
            target: "stdout".into(),
            queue: 65536,
            include_allowed: true,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `log.level`.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
        }
    }
}

/// A configuration that cannot be used; every variant names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax error, wrong type, or unknown key (the message names line, column and key).
    #[error("invalid config{}: {message}", origin.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Syntax {
        /// The file, when read from one.
        origin: Option<PathBuf>,
        /// `toml`'s message, with the offending line.
        message: String,
    },
    /// A value of the right type that makes no sense.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, e.g. `proxy.next_hops[1]`.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Where decision-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Not written.
    Off,
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Appended to a file.
    File(PathBuf),
}

/// The checked configuration the runtime starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// SIP listen addresses (deduplicated, in order).
    pub listen: Vec<SocketAddr>,
    /// UDP enabled.
    pub udp: bool,
    /// TCP enabled.
    pub tcp: bool,
    /// UDP worker threads (resolved: never 0).
    pub udp_workers: usize,
    /// One socket per worker (`SO_REUSEPORT`) rather than one shared socket.
    pub udp_reuseport: bool,
    /// recvmmsg/sendmmsg batch.
    pub udp_batch: usize,
    /// SCHED_FIFO priority of the UDP workers (`None`: normal scheduling).
    pub udp_realtime_priority: Option<u8>,
    /// Largest message accepted.
    pub max_message_size: usize,
    /// TCP connection limit.
    pub tcp_max_connections: usize,
    /// TCP connection limit per source IP address.
    pub tcp_max_connections_per_source: usize,
    /// TCP idle timeout (time without a complete message).
    pub tcp_idle_timeout: Duration,
    /// TCP per-message deadline, from a message's first byte.
    pub tcp_message_timeout: Duration,
    /// TCP connect timeout.
    pub tcp_connect_timeout: Duration,
    /// Next hops, in failover order.
    pub next_hops: Vec<SocketAddr>,
    /// Transport towards the next hops (`true` = TCP).
    pub next_hop_tcp: bool,
    /// Record-Route.
    pub record_route: bool,
    /// Peers (addresses or CIDR networks) whose PAI and RPID are trusted.
    pub trusted_peers: Vec<String>,
    /// Sources (addresses or CIDR networks) SIP is taken from (empty = any).
    pub allowed_sources: Vec<String>,
    /// What an initial request with a foreign Route gets.
    pub foreign_route: ForeignRoute,
    /// The dialog-proof key read from `proxy.dialog_key_file` (`None`: random per process).
    pub dialog_key: Option<DialogKey>,
    /// Identity sources in order (`pai`, `rpid`, `from`).
    pub identity_order: Vec<IdentitySource>,
    /// Numbering profile name (checked against [`crate::numbers::NumberingProfile::by_name`]).
    pub numbering_profile: String,
    /// Next-hop OPTIONS probe period (`None`: no probes).
    pub health_probe_interval: Option<Duration>,
    /// Unanswered probes in a row that mark a hop down.
    pub health_max_missed: u32,
    /// How long a failed hop stays down unless a probe answer brings it back.
    pub health_down_for: Duration,
    /// 608 or 603.
    pub block_response: u16,
    /// RFC 8688 redress URL (may be empty).
    pub redress_url: String,
    /// Tag header name.
    pub tag_header: String,
    /// Display-name label (≤ 15 chars, may be empty).
    pub tag_display_label: String,
    /// Also relabel From.
    pub tag_from_display: bool,
    /// Warning-announcement URI (may be empty).
    pub warn_uri: String,
    /// Action for anonymous callers.
    pub anonymous: Action,
    /// Action for invalid callers.
    pub invalid: Action,
    /// Snapshot path (`None` = embedded sample).
    pub snapshot: Option<PathBuf>,
    /// Reload check period (`None` = never).
    pub reload_interval: Option<Duration>,
    /// The central feed (`None` = screen against `snapshot`).
    pub feed: Option<crate::feed::run::FeedConfig>,
    /// Admin listener (`None` = off).
    pub admin: Option<SocketAddr>,
    /// Admin bearer tokens file (`None` = state-changing endpoints refused); checked by
    /// [`Config::validate`] to hold at least one well-formed token.
    pub admin_tokens_file: Option<PathBuf>,
    /// Decision-log target.
    pub decision_log: LogTarget,
    /// Decision-log queue length.
    pub decision_log_queue: usize,
    /// Log allowed calls too.
    pub decision_log_allowed: bool,
    /// Tracing filter.
    pub log_level: String,
}

/// A source of the caller identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// P-Asserted-Identity (trusted peers only).
    Pai,
    /// Remote-Party-ID (trusted peers only).
    Rpid,
    /// From.
    From,
}

fn parse_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.trim().parse::<SocketAddr>().map_err(|e| {
        invalid(
            key,
            format!("invalid socket address {s:?}: {e} (expected IP:PORT, IPv6 as [::1]:5060)"),
        )
    })
}

/// IP addresses or CIDR networks (`10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`), checked.
fn parse_networks(key: &str, list: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let s = s.trim();
        let (ip, len) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
        let ok = match ip.parse::<IpAddr>() {
            Ok(ip) => {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                len.is_none_or(|l| l.parse::<u8>().is_ok_and(|l| l <= max))
            }
            Err(_) => false,
        };
        if !ok {
            return Err(invalid(
                format!("{key}[{i}]"),
                format!("{s:?} is not an IP address or network (e.g. \"10.0.0.1\", \"10.0.0.0/8\", \"2001:db8::/32\")"),
            ));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

fn parse_duration(key: &str, s: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        invalid(
            key,
            format!("invalid duration {s:?}: {e} (expected e.g. \"30s\", \"2m\")"),
        )
    })
}

fn parse_action(key: &str, s: &str) -> Result<Action, ConfigError> {
    s.parse::<Action>().map_err(|e| invalid(key, e.to_string()))
}

impl Config {
    /// Parses TOML text (syntax, types, unknown keys); see [`Config::validate`] for the rest.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: None,
            message: e.to_string(),
        })
    }

    /// Reads and parses a file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            origin: Some(path.to_path_buf()),
            message: e.to_string(),
        })
    }

    /// Checks every value and resolves it to its typed form.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        let sip = &self.sip;
        if sip.listen.is_empty() {
            return Err(invalid(
                "sip.listen",
                "empty: at least one address is needed",
            ));
        }
        let mut listen = Vec::new();
        for (i, s) in sip.listen.iter().enumerate() {
            let a = parse_addr(&format!("sip.listen[{i}]"), s)?;
            if !listen.contains(&a) {
                listen.push(a);
            }
        }
        let (mut udp, mut tcp) = (false, false);
        for (i, t) in sip.transports.iter().enumerate() {
            match t.trim().to_ascii_lowercase().as_str() {
                "udp" => udp = true,
                "tcp" => tcp = true,
                _ => {
                    return Err(invalid(
                        format!("sip.transports[{i}]"),
                        format!("unknown transport {t:?}: expected \"udp\" or \"tcp\""),
                    ))
                }
            }
        }
        if !udp && !tcp {
            return Err(invalid(
                "sip.transports",
                "empty: enable \"udp\", \"tcp\" or both",
            ));
        }
        let udp_workers = match sip.udp_workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n if n > 1024 => {
                return Err(invalid(
                    "sip.udp_workers",
                    format!("{n} is too many (at most 1024)"),
                ))
            }
            n => n,
        };
        if !(1..=256).contains(&sip.udp_batch) {
            return Err(invalid(
                "sip.udp_batch",
                format!("{} is out of range 1 to 256", sip.udp_batch),
            ));
        }
        if sip.udp_realtime_priority > 99 {
            return Err(invalid(
                "sip.udp_realtime_priority",
                format!(
                    "{} is out of range 1 to 99 (0 = normal scheduling)",
                    sip.udp_realtime_priority
                ),
            ));
        }
        if !(512..=65535).contains(&sip.max_message_size) {
            return Err(invalid(
                "sip.max_message_size",
                format!("{} is out of range 512 to 65535", sip.max_message_size),
            ));
        }
        if sip.tcp_max_connections == 0 {
            return Err(invalid("sip.tcp_max_connections", "must be at least 1"));
        }
        let tcp_idle_timeout = parse_duration("sip.tcp_idle_timeout", &sip.tcp_idle_timeout)?;
        let tcp_connect_timeout =
            parse_duration("sip.tcp_connect_timeout", &sip.tcp_connect_timeout)?;
        if tcp_idle_timeout.is_zero() {
            return Err(invalid("sip.tcp_idle_timeout", "must be more than 0s"));
        }
        if sip.tcp_max_connections_per_source == 0 {
            return Err(invalid(
                "sip.tcp_max_connections_per_source",
                "must be at least 1",
            ));
        }
        let tcp_message_timeout =
            parse_duration("sip.tcp_message_timeout", &sip.tcp_message_timeout)?;
        if tcp_message_timeout.is_zero() {
            return Err(invalid("sip.tcp_message_timeout", "must be more than 0s"));
        }
        if tcp_connect_timeout.is_zero() {
            return Err(invalid("sip.tcp_connect_timeout", "must be more than 0s"));
        }

        let p = &self.proxy;
        if p.next_hops.is_empty() {
            return Err(invalid(
                "proxy.next_hops",
                "empty: at least one next hop is needed",
            ));
        }
        let next_hops = p
            .next_hops
            .iter()
            .enumerate()
            .map(|(i, s)| parse_addr(&format!("proxy.next_hops[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()?;
        let next_hop_tcp = match p.next_hop_transport.trim().to_ascii_lowercase().as_str() {
            "udp" => false,
            "tcp" => true,
            other => {
                return Err(invalid(
                    "proxy.next_hop_transport",
                    format!("unknown transport {other:?}: expected \"udp\" or \"tcp\""),
                ))
            }
        };
        if next_hop_tcp && !tcp {
            return Err(invalid(
                "proxy.next_hop_transport",
                "\"tcp\" needs \"tcp\" in sip.transports",
            ));
        }
        if !next_hop_tcp && !udp {
            return Err(invalid(
                "proxy.next_hop_transport",
                "\"udp\" needs \"udp\" in sip.transports",
            ));
        }
        let trusted_peers = parse_networks("proxy.trusted_peers", &p.trusted_peers)?;
        let allowed_sources = parse_networks("sip.allowed_sources", &sip.allowed_sources)?;
        let foreign_route = match p.foreign_route.trim().to_ascii_lowercase().as_str() {
            "ignore" => ForeignRoute::Ignore,
            "reject" => ForeignRoute::Reject,
            other => {
                return Err(invalid(
                    "proxy.foreign_route",
                    format!("{other:?} is neither \"ignore\" nor \"reject\""),
                ))
            }
        };
        let dialog_key = match p.dialog_key_file.trim() {
            "" => None,
            path => {
                let secret = std::fs::read(path).map_err(|e| {
                    invalid(
                        "proxy.dialog_key_file",
                        format!("cannot read {path:?}: {e}"),
                    )
                })?;
                Some(DialogKey::from_secret(&secret).ok_or_else(|| {
                    invalid(
                        "proxy.dialog_key_file",
                        format!(
                            "{path:?} holds {} bytes, at least {} are needed: write one with `head -c 32 /dev/urandom > {path}`",
                            secret.len(),
                            DialogKey::MIN_SECRET
                        ),
                    )
                })?)
            }
        };
        let mut identity_order = Vec::new();
        for (i, s) in p.identity_order.iter().enumerate() {
            let src = match s.trim().to_ascii_lowercase().as_str() {
                "pai" => IdentitySource::Pai,
                "rpid" => IdentitySource::Rpid,
                "from" => IdentitySource::From,
                _ => {
                    return Err(invalid(
                        format!("proxy.identity_order[{i}]"),
                        format!(
                            "unknown identity source {s:?}: expected \"pai\", \"rpid\" or \"from\""
                        ),
                    ))
                }
            };
            if identity_order.contains(&src) {
                return Err(invalid(
                    format!("proxy.identity_order[{i}]"),
                    format!("{s:?} listed twice"),
                ));
            }
            identity_order.push(src);
        }
        if identity_order.is_empty() {
            return Err(invalid(
                "proxy.identity_order",
                "empty: list at least one of pai, rpid, from",
            ));
        }
        crate::numbers::NumberingProfile::by_name(p.numbering_profile.trim())
            .map_err(|e| invalid("proxy.numbering_profile", e.to_string()))?;

        let h = &self.health;
        let probe_interval = parse_duration("health.probe_interval", &h.probe_interval)?;
        if !probe_interval.is_zero() && probe_interval < Duration::from_secs(1) {
            return Err(invalid(
                "health.probe_interval",
                format!(
                    "{:?} is shorter than 1s (probes are sent from a once-a-second timer); use \"1s\" or more, or \"0s\" for none",
                    h.probe_interval
                ),
            ));
        }
        if !(1..=100).contains(&h.max_missed) {
            return Err(invalid(
                "health.max_missed",
                format!("{} is out of range 1 to 100", h.max_missed),
            ));
        }
        let down_for = parse_duration("health.down_for", &h.down_for)?;
        if down_for < Duration::from_secs(1) {
            return Err(invalid(
                "health.down_for",
                format!(
                    "{:?} is shorter than 1s: a failed hop would be retried at once",
                    h.down_for
                ),
            ));
        }

        let a = &self.actions;
        if a.block_response != 608 && a.block_response != 603 {
            return Err(invalid(
                "actions.block_response",
                format!("{} is not 608 or 603", a.block_response),
            ));
        }
        let header_ok = !a.tag_header.is_empty()
            && a.tag_header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
        if !header_ok {
            return Err(invalid(
                "actions.tag_header",
                format!(
                    "{:?} is not a SIP header name (letters, digits, '-', no colon)",
                    a.tag_header
                ),
            ));
        }
        if a.tag_display_label.chars().count() > 15 {
            return Err(invalid(
                "actions.tag_display_label",
                format!(
                    "{:?} is longer than 15 characters (the CNAM limit)",
                    a.tag_display_label
                ),
            ));
        }
        if a.tag_display_label
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(invalid(
                "actions.tag_display_label",
                "must not hold quotes, backslashes or control characters",
            ));
        }
        if !(a.warn_uri.is_empty()
            || a.warn_uri.starts_with("sip:")
            || a.warn_uri.starts_with("sips:"))
        {
            return Err(invalid(
                "actions.warn_uri",
                format!("{:?} is not a sip: or sips: URI", a.warn_uri),
            ));
        }
        if a.redress_url
            .chars()
            .any(|c| c.is_whitespace() || c == '>' || c == '<')
        {
            return Err(invalid(
                "actions.redress_url",
                "must be a URL without spaces or angle brackets",
            ));
        }
        let anonymous = parse_action("actions.anonymous", &a.anonymous)?;
        let invalid_action = parse_action("actions.invalid", &a.invalid)?;

        let snapshot = match self.blocklist.snapshot.trim() {
            "" => None,
            s => Some(PathBuf::from(s)),
        };
        let reload = parse_duration("blocklist.reload_interval", &self.blocklist.reload_interval)?;
        let feed = match self.feed.url.trim() {
            "" => None,
            url => {
                let f = &self.feed;
                let config = crate::feed::run::FeedConfig::from_flags(
                    url.to_string(),
                    f.keys.iter().map(PathBuf::from).collect(),
                    Some(parse_duration("feed.poll", &f.poll)?),
                    Some(PathBuf::from(f.cache_dir.trim())),
                    (f.pin_version != 0).then_some(f.pin_version),
                );
                config
                    .validate()
                    .map_err(|(key, reason)| invalid(key, reason))?;
                Some(config)
            }
        };
        let admin = match self.admin.listen.trim() {
            "" => None,
            s => Some(parse_addr("admin.listen", s)?),
        };
        let admin_tokens_file = match self.admin.tokens_file.trim() {
            "" => None,
            s => {
                let path = PathBuf::from(s);
                crate::admin::tokens::read_tokens(&path)
                    .map_err(|e| invalid("admin.tokens_file", e.to_string()))?;
                Some(path)
            }
        };
        let d = &self.decision_log;
        let decision_log = match d.target.trim() {
            "off" => LogTarget::Off,
            "stdout" | "-" => LogTarget::Stdout,
            "stderr" => LogTarget::Stderr,
            "" => {
                return Err(invalid(
                    "decision_log.target",
                    "empty: use \"off\", \"stdout\", \"stderr\" or a path",
                ))
            }
            path => LogTarget::File(PathBuf::from(path)),
        };
        if d.queue == 0 || d.queue > 16 * 1024 * 1024 {
            return Err(invalid(
                "decision_log.queue",
                format!("{} is out of range 1 to 16777216", d.queue),
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!(
                    "{:?} is not a tracing filter (e.g. \"info\")",
                    self.log.level
                ),
            ));
        }

        Ok(Validated {
            listen,
            udp,
            tcp,
            udp_workers,
            udp_reuseport: sip.udp_reuseport,
            udp_batch: sip.udp_batch,
            udp_realtime_priority: (sip.udp_realtime_priority > 0)
                .then_some(sip.udp_realtime_priority),
            max_message_size: sip.max_message_size,
            tcp_max_connections: sip.tcp_max_connections,
            tcp_max_connections_per_source: sip.tcp_max_connections_per_source,
            tcp_idle_timeout,
            tcp_message_timeout,
            tcp_connect_timeout,
            next_hops,
            next_hop_tcp,
            record_route: p.record_route,
            trusted_peers,
            allowed_sources,
            foreign_route,
            dialog_key,
            identity_order,
            numbering_profile: p.numbering_profile.trim().to_string(),
            health_probe_interval: (!probe_interval.is_zero()).then_some(probe_interval),
            health_max_missed: h.max_missed,
            health_down_for: down_for,
            block_response: a.block_response,
            redress_url: a.redress_url.clone(),
            tag_header: a.tag_header.clone(),
            tag_display_label: a.tag_display_label.clone(),
            tag_from_display: a.tag_from_display,
            warn_uri: a.warn_uri.clone(),
            anonymous,
            invalid: invalid_action,
            snapshot,
            reload_interval: (!reload.is_zero()).then_some(reload),
            feed,
            admin,
            admin_tokens_file,
            decision_log,
            decision_log_queue: d.queue,
            decision_log_allowed: d.include_allowed,
            log_level: self.log.level.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_text_parses_to_default() {
        let parsed = Config::from_toml_str(DEFAULT_CONFIG).unwrap();
        assert_eq!(parsed, Config::default());
        let v = parsed.validate().unwrap();
        assert_eq!(
            v.listen,
            vec!["127.0.0.1:5060".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            v.next_hops,
            vec!["127.0.0.1:5080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(v.admin, Some("127.0.0.1:9060".parse().unwrap()));
        assert!(v.udp && v.tcp && !v.next_hop_tcp);
        assert!(v.udp_workers >= 1);
        assert_eq!(
            v.identity_order,
            vec![
                IdentitySource::Pai,
                IdentitySource::Rpid,
                IdentitySource::From
            ]
        );
        assert_eq!(v.decision_log, LogTarget::Stdout);
        assert_eq!(v.snapshot, None);
        assert_eq!(v.health_probe_interval, Some(Duration::from_secs(5)));
        assert_eq!(v.health_max_missed, 3);
        assert_eq!(v.health_down_for, Duration::from_secs(30));
        assert_eq!(v.admin_tokens_file, None);
        assert_eq!(v.tcp_message_timeout, Duration::from_secs(10));
        assert_eq!(v.tcp_max_connections_per_source, 64);
    }

    #[test]
    fn health_keys_and_no_probes() {
        let v = Config::from_toml_str(
            "[health]\nprobe_interval = \"0s\"\nmax_missed = 2\ndown_for = \"2m\"",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(v.health_probe_interval, None);
        assert_eq!(v.health_max_missed, 2);
        assert_eq!(v.health_down_for, Duration::from_secs(120));
    }

    #[test]
    fn tokens_file_is_checked_without_quoting_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.tokens");
        let cfg = format!("[admin]\ntokens_file = \"{}\"\n", path.display());
        std::fs::write(&path, "# ok\n0123456789abcdef0123456789abcdef\n").unwrap();
        let v = Config::from_toml_str(&cfg).unwrap().validate().unwrap();
        assert_eq!(v.admin_tokens_file, Some(path.clone()));
        std::fs::write(&path, "secret-but-short\nsecret two\n").unwrap();
        let e = Config::from_toml_str(&cfg)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("admin.tokens_file: "), "{e}");
        assert!(e.contains("line 2") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn every_default_key_is_documented() {
        // Every key the serializer writes appears in the commented default text.
        let written = toml::to_string(&Config::default()).unwrap();
        for line in written.lines() {
            if let Some((key, _)) = line.split_once(" = ") {
                assert!(
                    DEFAULT_CONFIG.contains(&format!("\n{key} = ")),
                    "key {key} undocumented"
                );
            } else if line.starts_with('[') {
                assert!(DEFAULT_CONFIG.contains(line), "section {line} undocumented");
            }
        }
    }

    #[test]
    fn empty_file_is_default() {
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let c = Config::from_toml_str("[proxy]\nnext_hops = [\"127.0.0.1:5080\", \"nowhere\"]")
            .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("proxy.next_hops[1]: invalid socket address \"nowhere\""),
            "{e}"
        );

        let cases = [
            ("[sip]\nlisten = []", "sip.listen"),
            ("[sip]\ntransports = [\"sctp\"]", "sip.transports[0]"),
            ("[sip]\nudp_batch = 0", "sip.udp_batch"),
            (
                "[sip]\nudp_realtime_priority = 100",
                "sip.udp_realtime_priority",
            ),
            ("[sip]\ntcp_idle_timeout = \"soon\"", "sip.tcp_idle_timeout"),
            (
                "[sip]\ntcp_message_timeout = \"0s\"",
                "sip.tcp_message_timeout",
            ),
            (
                "[sip]\ntcp_message_timeout = \"soon\"",
                "sip.tcp_message_timeout",
            ),
            (
                "[sip]\ntcp_max_connections_per_source = 0",
                "sip.tcp_max_connections_per_source",
            ),
            (
                "[admin]\ntokens_file = \"/nonexistent/fraudwall.tokens\"",
                "admin.tokens_file",
            ),
            (
                "[proxy]\ntrusted_peers = [\"10.0.0.300\"]",
                "proxy.trusted_peers[0]",
            ),
            (
                "[sip]\nallowed_sources = [\"10.0.0.0/40\"]",
                "sip.allowed_sources[0]",
            ),
            ("[proxy]\nforeign_route = \"follow\"", "proxy.foreign_route"),
            (
                "[proxy]\ndialog_key_file = \"/nonexistent/fraudwall/dialog.key\"",
                "proxy.dialog_key_file",
            ),
            (
                "[proxy]\nidentity_order = [\"pai\", \"pai\"]",
                "proxy.identity_order[1]",
            ),
            (
                "[proxy]\nnumbering_profile = \"mars\"",
                "proxy.numbering_profile",
            ),
            ("[actions]\nblock_response = 486", "actions.block_response"),
            (
                "[actions]\ntag_header = \"X-Fraud: x\"",
                "actions.tag_header",
            ),
            (
                "[actions]\ntag_display_label = \"a label far too long\"",
                "actions.tag_display_label",
            ),
            ("[actions]\nanonymous = \"drop\"", "actions.anonymous"),
            ("[actions]\nwarn_uri = \"http://x\"", "actions.warn_uri"),
            ("[admin]\nlisten = \"9060\"", "admin.listen"),
            ("[decision_log]\nqueue = 0", "decision_log.queue"),
            (
                "[health]\nprobe_interval = \"200ms\"",
                "health.probe_interval",
            ),
            (
                "[health]\nprobe_interval = \"often\"",
                "health.probe_interval",
            ),
            ("[health]\nmax_missed = 0", "health.max_missed"),
            ("[health]\ndown_for = \"0s\"", "health.down_for"),
            (
                "[proxy]\nnext_hop_transport = \"tcp\"\n[sip]\ntransports = [\"udp\"]",
                "proxy.next_hop_transport",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml_str(text).unwrap().validate().unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { key: k, .. } if k == key),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn syntax_and_unknown_keys_are_refused_with_the_key() {
        let e = Config::from_toml_str("[proxy]\nnext_hop = [\"127.0.0.1:5080\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("next_hop"), "{e}");
        let e = Config::from_toml_str("[sip]\nudp_workers = \"two\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("udp_workers"), "{e}");
        assert!(Config::from_toml_str("[sip\n").is_err());
    }

    #[test]
    fn dialog_key_file_must_hold_16_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        std::fs::write(&short, b"too short").unwrap();
        let text = format!(
            "[proxy]\ndialog_key_file = {:?}",
            short.display().to_string()
        );
        let e = Config::from_toml_str(&text)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { key, reason } if key == "proxy.dialog_key_file" && reason.contains("/dev/urandom")),
            "{e}"
        );
        let good = dir.path().join("good.key");
        std::fs::write(&good, [7u8; 32]).unwrap();
        let text = format!(
            "[proxy]\ndialog_key_file = {:?}\nforeign_route = \"reject\"\n[sip]\nallowed_sources = [\"10.0.0.0/8\"]",
            good.display().to_string()
        );
        let v = Config::from_toml_str(&text).unwrap().validate().unwrap();
        assert_eq!(v.dialog_key, DialogKey::from_secret(&[7u8; 32]));
        assert_eq!(v.foreign_route, ForeignRoute::Reject);
        assert_eq!(v.allowed_sources, vec!["10.0.0.0/8".to_string()]);
    }

    #[test]
    fn ipv6_and_several_listeners() {
        let c = Config::from_toml_str(
            "[sip]\nlisten = [\"127.0.0.1:5060\", \"[::1]:5060\", \"127.0.0.1:5060\"]",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert!(c.listen[1].is_ipv6());
    }

    #[test]
    fn off_and_file_targets() {
        let c = Config::from_toml_str(
            "[decision_log]\ntarget = \"/var/log/fw.jsonl\"\n[admin]\nlisten = \"\"",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(c.decision_log, LogTarget::File("/var/log/fw.jsonl".into()));
        assert_eq!(c.admin, None);
    }
}
