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
//! cfg.validate().unwrap();
//! assert_eq!(cfg.proxy.hops().len(), 2);
//! ```
//!
//! # One shape per section
//!
//! Each section is the configuration struct of the component that reads it, deserialized
//! once and handed to that component whole: `[sip]` is [`SipConfig`] (the transports),
//! `[proxy]`, `[health]`, `[actions]` and `[limits]` are the proxy core's
//! ([`ProxyConfig`], [`HealthConfig`], [`ActionsConfig`], [`LimitsConfig`]), `[feed]` is
//! [`FeedConfig`], `[admin]` is [`AdminConfig`], `[api]` is [`ApiConfig`], `[decision_log]` is [`DecisionLogConfig`],
//! `[policy]` is the rule chain's [`PolicyConfig`], `[detection]` the behavioural detector's
//! [`DetectionConfig`], `[[peers]]` the peer groups'
//! [`PeerGroupConfig`] entries.
//! This module only assembles them, checks what spans sections, and holds the default text.
//!
//! # Errors
//!
//! Errors name the key and the reason: syntax and type errors (an address, a network, a
//! duration, an action that does not parse, an unknown key) come from `toml` with the line,
//! column and key, so a typo is never silently ignored; range and cross-section errors come
//! from [`Config::validate`] as `health.max_missed: 0 is out of range 1 to 100`.

pub mod value;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::admin::AdminConfig;
pub use crate::api::ApiConfig;
pub use crate::decision_log::{DecisionLogConfig, LogTarget};
pub use crate::detection::DetectionConfig;
pub use crate::feed::run::FeedConfig;
pub use crate::peers::PeerGroupConfig;
pub use crate::policy::PolicyConfig;
pub use crate::proxy::core::{
    ActionsConfig, CoreConfigError, HealthConfig, LimitsConfig, OverloadConfig, ProxyConfig,
    RedirectConfig,
};
pub use crate::proxy::listen::SipConfig;
pub use crate::proxy::tls::TlsConfig;

/// The commented default configuration. Parsing it yields [`Config::default()`].
pub const DEFAULT_CONFIG: &str = r#"# fraudwall configuration (TOML). Every key is optional: the values shown are the defaults.
# Print this file with `fraudwall config default`; check one with `fraudwall config check FILE`.
# Command-line flags of `fraudwall run` (--listen, --next-hop, --blocklist, --admin) override it.

[sip]
# "proxy": fraudwall stands inline and forwards screened calls to proxy.next_hops.
# "redirect": a redirect server (the way TransNexus ClearIP is deployed): the switch sends
# each INVITE here and gets the verdict as the answer, and nothing is forwarded: allow gets
# redirect.allow_response, tag a 302 back to the Request-URI carrying the label, warn a 302
# to actions.warn_uri, block the same 608 or 603+ the proxy sends. See [redirect].
mode = "proxy"
# Addresses SIP is received on. Each one gets every transport below. IPv6 as "[::1]:5060".
# "0.0.0.0:5060" or "[::]:5060" listens on every interface: each message is then answered
# and forwarded from the address it arrived on, and that address is written in Via and
# Record-Route (IP_PKTINFO for UDP, the connection's own address for TCP).
# An entry may also be a table naming what that listener advertises:
#   listen = [{ address = "10.0.0.5:5060", advertise = "sbc.example.net" }]
listen = ["127.0.0.1:5060"]
# host[:port] written in Via and Record-Route instead of the local address, for every listener
# without an advertise of its own: the public name or address when fraudwall sits behind NAT
# or a load balancer. Without a port, the port the message arrived on is written.
# Empty = the address each message arrived on.
advertise = ""
# Transports on every listen address: "udp", "tcp" (at least one).
transports = ["udp", "tcp"]
# UDP worker threads; each owns one SO_REUSEPORT socket per UDP listen address. 0 = one per core.
udp_workers = 0
# How datagrams are spread over the UDP workers (fraudwall_udp_worker_messages_total{worker}
# shows it):
#   "shared": one socket the workers share: whichever worker is free takes the next datagram
#             (one queue, several servers, as Kamailio's children share theirs). Every worker
#             is busy however few peers send the traffic (a carrier node hears from two to
#             four SBCs), and a datagram never waits behind one worker's backlog while another
#             idles. The default: measured through the sipp harness with udp_batch = 1 against
#             "random" with batches of 32, INVITE transit p50/p99 47/209 µs against 86/362 at
#             2,000 calls/s and 66/400 against 149/766 at 6,000 (medians of 3 alternating runs),
#             CPU per call -8 % and +6 %.
#   "random": each datagram to a random worker's own socket (a classic BPF program on the
#             SO_REUSEPORT group): as even a spread, but a datagram queues behind its worker's
#             backlog even when the other is idle, so the transit tail is longer.
#   "cpu":    to the worker of the CPU that received the datagram (NICs spreading flows with
#             RSS/RPS over many peers).
#   "flow":   the kernel's hash of source and destination: one peer keeps one worker busy.
# The messages of one call may be handled by different workers (and back-to-back messages
# relayed in another order, as with any multi-process proxy), except with "flow"; this is safe:
# the proxy keeps no per-call state.
udp_spread = "shared"
# The scheduler time slice UDP workers ask for (Linux 6.12 and later, sched_setattr; older
# kernels ignore it), 100us to 100ms, or "0s" for the kernel's default (about 3 ms). A short
# slice lets a worker that a datagram wakes run before tasks with longer slices finish
# theirs, which keeps milliseconds of scheduler delay out of the transit tail on a busy box.
udp_sched_slice = "100us"
# Datagrams received and sent per system call (recvmmsg/sendmmsg), 1 to 256. With "shared",
# 1 lets the next datagram go to whichever worker is free instead of waiting in a batch that
# one worker took (see udp_spread for the figures). A larger batch saves system calls when
# every worker is saturated, at the price of the tail; with a socket per worker ("random",
# "cpu", "flow"), 32 is the better value.
udp_batch = 1
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
# TCP connections open at once (accepted plus opened to next hops); beyond it accepts are refused.
tcp_max_connections = 4096
# Connections accepted from one source IP address at once (IPv6: one address, not a prefix);
# beyond it that source's new connections are closed at accept and counted (dropped_total,
# reason "source_connection_limit"), while other sources still connect. Keeps one client from
# taking every slot of tcp_max_connections.
tcp_max_connections_per_source = 64
# A TCP connection that completes no message (nor RFC 5626 keep-alive) for this long is closed
# (humantime: "90s", "2m"). Bytes that do not complete a message do not restart it.
tcp_idle_timeout = "2m"
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
# An entry may also be a table with its own transport (and, for TLS, the name its certificate
# must carry): { address = "10.0.0.21:5061", transport = "tls", server_name = "switch.example.net" }
next_hops = ["127.0.0.1:5080"]
# Transport towards next hops that do not name their own: "udp" or "tcp" (it must be in
# sip.transports).
next_hop_transport = "udp"
# Insert a Record-Route so in-dialog requests (ACK, BYE) come back through fraudwall
# ([detection] enabled record-routes INVITEs anyway: it needs each call's BYE).
record_route = false
# Other names of this proxy (host or host:port), besides its addresses and sip.advertise: a
# Route, Request-URI or Via naming one of them means fraudwall (loop detection, OPTIONS
# health checks addressed to it, its own Route).
aliases = []
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
# How often each next hop is sent an OPTIONS probe (checked once a second, whatever the
# transports). "0s" = no probes.
probe_interval = "5s"
# Probes in a row a hop may leave unanswered before it is marked down, 1 to 100.
max_missed = 3
# How long a send failure (or missed probes) keeps a hop down when no probe answer brings it
# back first (without probes, the only way back).
down_for = "30s"

[actions]
# Response to blocked callers: 608 (Rejected, with a Call-Info redress jCard, RFC 8688)
# or 603 for 603+ (ATIS-1000099; US rules, 47 CFR 64.1200(k)(9), require it for calls
# blocked on analytics): "603 Network Blocked" with
# Reason: SIP;cause=603;text="v=analytics1;url=<redress_url>";location=RLN
block_response = 608
# Redress URL: where a wrongly blocked caller asks for redress (an HTTPS page for 603+).
# Sent as the Call-Info jCard with either status, and as the url in the 603+ Reason.
# "{category}" is replaced by the entry's category. A 603+ should always carry one (a
# warning is logged at start without it).
redress_url = ""
# Header added to tagged calls: "<tag_header>: <tag_value>;category=<c>;score=<s>".
tag_header = "X-Fraud-Label"
tag_value = "suspected-fraud"
# Label (at most 15 characters, the CNAM limit) prefixed to the display name of tagged callers'
# P-Asserted-Identity. Empty = display names untouched.
tag_display_label = ""
# Also prefix the From display name with that label.
tag_from_display = false
# SIP URI of the warning-announcement service warned calls are sent through.
# Empty = warned calls are tagged instead.
warn_uri = ""
# Where warned calls are sent (IP:PORT). Empty = the host and port of warn_uri, which must
# then be an IP literal.
warn_address = ""
# Transport to the announcement service: "udp" or "tcp" (it must be in sip.transports).
warn_transport = "udp"
# Headers carrying the original Request-URI and the reason to the announcement service.
warn_original_to_header = "X-Fraud-Original-To"
warn_reason_header = "X-Fraud-Reason"
# Action for anonymous callers and for callers that are not a valid number:
# "allow", "tag", "warn" or "block". Either way they are counted.
anonymous = "allow"
invalid = "allow"

[redirect]
# Used when sip.mode = "redirect".
# The answer to an allowed call: 302 (Contact: the Request-URI, with
# Reason: SIP;cause=302;text="no-fraud-detected"), or 404 or 503 for switches that move to
# their next route on those.
allow_response = 302
# The answer to requests other than INVITE, ACK, CANCEL and OPTIONS (BYE, REGISTER ...):
# 405 (Method Not Allowed, with Allow) or 403 (Forbidden).
other_response = 405

[limits]
# Bounds on what one message may cost, checked while parsing. Sized for carrier paths:
# Max-Forwards 70 (RFC 3261 §8.1.1.6) bounds a legitimate request to 70 proxies, so 71 Vias
# and 70 Record-Routes at most (Kamailio and OpenSIPS cap only the message, at 65535 bytes).
# Raise one only if real traffic is refused: fraudwall_parse_errors_total{reason=...} names
# it (too_large, too_many_headers, line_too_long, too_many_vias).
# Largest message in bytes (the UDP maximum), 512 to 65535. Larger: dropped (UDP),
# connection closed (TCP, TLS).
max_message_size = 65535
# Most header lines in one message (71 Vias + 70 Record-Routes + an INVITE's other headers).
max_headers = 256
# Longest start line or header line in bytes, folded lines included (a 70-entry Via or
# Record-Route list on one line, an Identity header with its PASSporT).
max_header_line = 16384
# Most Via values in one message, lines and comma lists alike (a 70-hop path has 71).
max_vias = 128

[overload]
# What the node does when it is offered more calls than it can handle. Each UDP datagram
# carries the kernel's receive time (SO_TIMESTAMPNS), so the proxy knows how long every
# message waited (socket queue plus worker lag): fraudwall_queue_delay_seconds. When messages
# keep waiting longer than max_queue_delay for `sustain`, the node is overloaded
# (fraudwall_overload 1, fraudwall_overload_episodes_total) and sheds new calls: each INVITE
# without a To-tag is answered 503 Service Unavailable with Retry-After (action = "reject")
# or dropped (action = "drop"), counted in fraudwall_overload_shed_total{action}. Responses,
# ACK, CANCEL, BYE, re-INVITEs and every other in-dialog request are never shed, so calls
# already set up keep working and get their answers. A message that waited no longer than
# resume_queue_delay ends the overload (or a second without a long wait).
#   At 1x capacity (or below) messages wait well under a millisecond on average and a few at
#   the tail: nothing is shed.
#   At 2x capacity the queue delay climbs to max_queue_delay, then swings between the two
#   bounds: the node takes about as many calls as it can carry and answers the rest 503 at
#   a fraction of a call's cost (one small answer, and the caller's ACK, absorbed). Accepted
#   calls see up to max_queue_delay of extra post-dial delay; nothing grows (memory flat).
#   At 5x capacity the 503s themselves take a good share of the CPU: fewer calls get through,
#   INVITEs that waited past drop_queue_delay are dropped unanswered, and when the socket
#   buffer is full the kernel drops datagrams of every kind before fraudwall sees them
#   (callers and switches retransmit). Put several nodes behind the SBCs' routing, which the
#   503 + Retry-After tells to try another one.
# Figures from the sipp harness (integration/bench/run_overload.sh) are in the project notes.
# "0s" turns the policy off (no timestamps are read, nothing is ever shed).
max_queue_delay = "50ms"
# How long the wait must stay over max_queue_delay before shedding begins: a stall of the
# whole machine (whose backlog drains as soon as the workers run) is not overload.
sustain = "20ms"
# A message that waited no longer than this ends the overload (below max_queue_delay: the
# band between the two keeps the state from flapping).
resume_queue_delay = "10ms"
# "reject": 503 Service Unavailable with Retry-After (the caller's switch tries another
# route and retransmits nothing). "drop": no answer (cheapest here; the caller retransmits).
action = "reject"
# With action = "reject", an INVITE that waited longer than this is dropped instead: its
# caller has retransmitted it already (T1 = 500 ms) and answering costs what the node no
# longer has. Above max_queue_delay, or "0s" to always answer.
drop_queue_delay = "300ms"
# Seconds in the 503's Retry-After, 1 to 3600.
retry_after = 1

[tls]
# Used when sip.transports has "tls" (listener) or proxy.next_hop_transport = "tls".
# PEM certificate chain (leaf first, then intermediates) and its private key (PKCS#8, PKCS#1
# or SEC1 PEM). Both are re-read within a second of a change, without dropping connections;
# a pair that fails to load keeps the old one (log line, fraudwall_tls_reload_failures_total).
certificate = ""
private_key = ""
# TLS listener port on each sip.listen address (SIP over TLS, RFC 3261 §26).
port = 5061
# A handshake not finished in this time is closed (humantime: "5s", "500ms").
handshake_timeout = "5s"
# Lowest protocol version accepted and offered: "1.2" or "1.3".
min_version = "1.2"
# PEM bundle of the CAs whose client certificates are verified; "" = none asked for.
client_ca = ""
# Refuse clients that present no certificate (needs client_ca).
require_client_certificate = false
# Certificate identities (DNS SAN, else CN) of trusted peers: their P-Asserted-Identity is
# believed. Needs client_ca. e.g. ["sbc1.carrier.example"]
trusted_identities = []
# PEM bundle of the CAs that next hops' certificates are verified against; "" = the built-in
# Mozilla root set (webpki-roots). A next hop's certificate must name its configured host.
next_hop_ca = ""
# Present our certificate (above) to next hops that ask for one (mutual TLS on trunks).
next_hop_client_certificate = false

[policy]
# The rule chain judges the whole call, stage by stage in a fixed order (`fraudwall explain`
# prints each): protected-callee, impersonation, international-spoof, personal, global,
# verstat, anonymous / invalid, international-origin, default. The first stage that decides wins.
# Home country calling codes: a caller with one of them entering from an `international` peer
# group (see [[peers]] below) is a spoofed domestic number, e.g. ["86"]. Empty = none.
home_country = []
# What a spoofed domestic number gets (category spoofed-domestic); "allow" turns the stage off.
international_spoof = "block"
# What a call gets when a trusted peer's verstat says TN-Validation-Failed; "allow" passes it on
# to the later stages. Every verstat value is counted (fraudwall_verstat_total) either way.
verstat_failed = "allow"
# "tag" labels calls from international groups with their country ("Intl: Myanmar", within the
# 15-character display label); "allow" = off.
international_origin = "allow"
# Callees never screened: emergency and service numbers, as dialled ("110") or in E.164 form;
# a short code also matches behind a home country code (+86110).
protected_callees = ["110", "112", "119", "120", "122", "911", "988", "999", "000", "12110", "12315", "12345"]
# Stages turned off by name (they pass), e.g. ["international-origin"]; "default" cannot be.
disabled_rules = []

[lists]
# The callees' own lists (`fraudwall compile --kind subscribers`): personal allow and block
# entries, and each subscriber's level for the global list. Empty = none.
subscribers = ""
# Numbers only some peer groups may present: banks' service lines, police, Do-Not-Originate
# (`fraudwall compile --kind protected`). Empty = none.
protected = ""
# Both files are checked for a new version every blocklist.reload_interval, and at once on
# SIGHUP or POST /reload. A new version is opened and checked on one thread at a lower
# priority than the SIP workers (for 100M subscribers with two entries each about 24
# CPU-seconds), then swapped in whole; a file that fails is refused and the loaded list stays.

# Peer groups: where a call entered. Every source address belongs to one group; a source in no
# group is in the group "default" (untrusted, domestic). One table per group, e.g.:
#   [[peers]]
#   name = "core"                 # 1-64 of A-Z a-z 0-9 _ - . (the protected list's `entitled` names these)
#   addresses = ["10.0.0.0/8"]    # addresses and networks; an address is in one group only
#   trust_identity = true         # P-Asserted-Identity, Remote-Party-ID and verstat are believed
#   international = false         # the group carries calls from abroad
#   numbering_profile = ""        # national forms read by this profile; empty = proxy.numbering_profile
# A [[peers]] entry named "default" without addresses sets the default group's properties.
# proxy.trusted_peers still works: its networks are the group "trusted_peers" (trust_identity).

[blocklist]
# Compiled blocklist snapshot (see `fraudwall blocklist compile`). Empty = the embedded sample list.
snapshot = ""
# How often the snapshot file (and the [lists] files) are checked for a new version, which
# is swapped in without dropping a call (a bad file never replaces a good list). "0s" = only
# on SIGHUP or POST /reload.
reload_interval = "5s"

[feed]
# A central feed (see `fraudwall publish`): when `url` is set, calls are screened against the
# feed's signed base and deltas instead of `blocklist.snapshot`. Empty = no feed.
url = ""
# Public keys (`fraudwall keygen`'s .pub files) a manifest may be signed with.
keys = []
# Poll interval (a random jitter only ever shortens it), at least 100ms.
poll = "30s"
# The last good feed state, served at start before the feed answers.
cache_dir = "/var/lib/fraudwall/feed"
# Stay on (or roll back to) this feed version; 0 = follow the feed.
pin_version = 0
# Fraction of the poll interval removed at random, 0 to 1, so nodes do not poll in step.
jitter = 0.1
# Longest wait between polls after errors (the backoff doubles up to it).
max_backoff = "5m"
# The feed's lists this node follows, each with its own manifest, version and swap:
# "blocklist" (always; the manifest at `url`), "subscribers" and "protected" (the manifests
# beside it, `subscribers/manifest.json` and `protected/manifest.json`; `fraudwall publish
# --list subscribers|protected` writes them). A list taken from the feed is not also given
# as a file under [lists].
lists = ["blocklist"]

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

[api]
# HTTP verdict API for switches that ask a service per call (Kamailio http_client, OpenSIPS
# rest_client, Asterisk CURL): POST /v1/screen {"caller": ..., "callee": ..., "peer": ...,
# "verstat": ...}, GET /v1/screen?caller=..., POST /v1/screen/batch {"calls": [...]}, answered
# with the verdict and the SIP to apply it. Its own listener, not the admin one. Empty = off.
listen = ""
# Bearer tokens, one per line (same format as admin.tokens_file, reread within a second of a
# change), sent as `Authorization: Bearer <token>`. Required when the API listens.
tokens_file = ""
# Largest request body in bytes (1 to 1048576); a larger one is answered 413.
max_body = 65536
# Most calls in one POST /v1/screen/batch (1 to 100000); more are answered 413.
max_batch = 1000
# A request must arrive and be answered within this long (humantime, 10ms to 5m): a client
# slower to send its headers is disconnected, one slower to send its body is answered 408.
request_timeout = "2s"
# Serve HTTPS instead of HTTP, with the [tls] section's certificate and private_key (rustls,
# tls.min_version, re-read when the files change; tls.client_ca makes clients show a
# certificate).
tls = false

[decision_log]
# Where a JSON line per screened call goes: "stdout", "stderr", "off", or a file path (appended;
# when the path is renamed or removed, e.g. by logrotate, the next lines go to a new file
# there within 100 ms: no signal or copytruncate needed, see integration/deploy/fraudwall.logrotate).
target = "stdout"
# Bound on the batch waiting for the writer thread (written every 100 ms): this many lines
# and this many KiB at most; past it lines are dropped and counted.
queue = 65536
# Also log allowed calls (not only tagged, warned and blocked ones).
include_allowed = true

[detection]
# Behavioural detection: flags numbers that call like robocallers, Wangiri or sequential
# diallers, from the calls themselves (the policy's `behaviour` rule, after personal lists,
# the global list and verstat, before default). Callers the global list allows and protected
# numbers are exempt. The proxy and redirect fronts count calls; the HTTP API only judges.
# The proxy then record-routes INVITEs (whatever proxy.record_route says) to see each BYE.
# GET /suspects on the admin listener lists the flagged callers; `fraudwall suspects --csv`
# turns them into blocklist rows.
# Memory is fixed by the sizes below, whatever the number of callers.
enabled = false
# Upper bound of the detector's memory (MiB): tracked callers, pending calls and the sketch
# must fit in it (the defaults take 112 MiB).
memory_mb = 256
# Callers tracked with full features at once, the heavy hitters (168 bytes each).
max_tracked_callers = 524288
# Calls in progress remembered from INVITE to outcome (32 bytes each).
pending_calls = 262144
# Count-min sketch counting every caller's recent calls (MiB).
sketch_mb = 16
# Recent calls (per the sketch) after which a caller is tracked.
track_after = 3
# Half-life of the outcome ratios and of the sketch.
half_life = "20m"
# Distinct callees are counted over the current and the previous window of this length.
distinct_window = "15m"
# An answered call this short counts as a short call (Hubei Mobile: 10 s or shorter).
short_call = "10s"
# A call cancelled within this long of ringing counts as a one-ring cancel (Wangiri).
one_ring = "6s"
# Consecutive callees at most this far apart count as sequential dialling.
sequential_step = 10
# How long a flagged caller stays in /suspects after a rule last held.
suspect_retention = "1day"
# Shared counters between nodes: a Redis URL such as "redis://127.0.0.1:6379" ("" = local only).
redis = ""
# How often counters are exchanged with Redis (pipelined, off the call path).
redis_flush_interval = "250ms"
# The rules: every condition a rule sets must hold; the most severe action wins. Conditions:
# min_calls_minute, min_calls_10min, min_calls_hour (at least one), min_ended,
# min_distinct_ratio, min_sequential_ratio, min_short_call_ratio, min_one_ring_ratio,
# max_answer_ratio. Actions: tag, warn, block. Figures: see the detection module docs
# (Hubei Mobile >100 calls/h mostly <=10 s, ClearIP's 60-minute window, Wangiri one ring).
rules = [
  { name = "robocall", category = "robocall", action = "tag", score = 70, min_calls_10min = 17, min_ended = 8, min_distinct_ratio = 0.6, min_short_call_ratio = 0.7 },
  { name = "robocall-block", category = "robocall", action = "block", score = 90, min_calls_hour = 100, min_ended = 30, min_distinct_ratio = 0.6, min_short_call_ratio = 0.8 },
  { name = "wangiri", category = "wangiri", action = "tag", score = 70, min_calls_10min = 10, min_ended = 6, min_distinct_ratio = 0.6, min_one_ring_ratio = 0.6 },
  { name = "wangiri-block", category = "wangiri", action = "block", score = 90, min_calls_hour = 50, min_ended = 20, min_distinct_ratio = 0.6, min_one_ring_ratio = 0.7 },
  { name = "sequential-dialling", category = "sequential-dialling", action = "tag", score = 70, min_calls_10min = 10, min_distinct_ratio = 0.6, min_sequential_ratio = 0.6 },
]

[log]
# Diagnostics on stderr, a tracing filter: "error", "warn", "info", "debug", "fraudwall=debug".
level = "info"
"#;

/// The whole configuration file: its sections, each the config of the component that reads
/// it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[sip]`: listeners and transports.
    pub sip: SipConfig,
    /// `[proxy]`: forwarding and caller identity.
    pub proxy: ProxyConfig,
    /// `[health]`: next-hop health and failover.
    pub health: HealthConfig,
    /// `[actions]`: what each verdict does.
    pub actions: ActionsConfig,
    /// `[redirect]`: the answers of redirect mode (`sip.mode = "redirect"`).
    pub redirect: RedirectConfig,
    /// `[limits]`: what one message may cost.
    pub limits: LimitsConfig,
    /// `[overload]`: when and how new calls are shed.
    pub overload: OverloadConfig,
    /// `[tls]`: certificates and peers of SIP over TLS.
    pub tls: TlsConfig,
    /// `[policy]`: the rule chain.
    pub policy: PolicyConfig,
    /// `[lists]`: the subscriber and protected lists.
    pub lists: ListsConfig,
    /// `[[peers]]`: the peer groups.
    pub peers: Vec<PeerGroupConfig>,
    /// `[blocklist]`: the snapshot.
    pub blocklist: BlocklistConfig,
    /// `[feed]`: a central feed instead of a local snapshot.
    pub feed: FeedConfig,
    /// `[admin]`: the admin HTTP listener.
    pub admin: AdminConfig,
    /// `[api]`: the HTTP verdict API.
    pub api: ApiConfig,
    /// `[decision_log]`: the per-call JSON lines.
    pub decision_log: DecisionLogConfig,
    /// `[detection]`: behavioural detection.
    pub detection: DetectionConfig,
    /// `[log]`: diagnostics.
    pub log: LogConfig,
}

/// `[lists]`: the subscriber and protected list files (checked for new versions every
/// `blocklist.reload_interval`; a feed may carry them instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ListsConfig {
    /// The compiled subscriber list (`None`, written `""`: none).
    #[serde(with = "value::empty_none")]
    pub subscribers: Option<PathBuf>,
    /// The compiled protected list (`None`, written `""`: none).
    #[serde(with = "value::empty_none")]
    pub protected: Option<PathBuf>,
}

/// `[blocklist]`: the snapshot file the runtime screens against and reloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlocklistConfig {
    /// The compiled snapshot (`None`, written `""`: the embedded sample list).
    #[serde(with = "value::empty_none")]
    pub snapshot: Option<PathBuf>,
    /// How often the file is checked for a new version (zero: never).
    #[serde(with = "crate::config::value::duration")]
    pub reload_interval: Duration,
}

impl Default for BlocklistConfig {
    fn default() -> Self {
        BlocklistConfig {
            snapshot: None,
            reload_interval: Duration::from_secs(5),
        }
    }
}

/// `[log]`: diagnostics on stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter (`info`, `fraudwall=debug`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
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
    /// TOML syntax error, wrong type, bad value, or unknown key (the message names line,
    /// column and key).
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
        /// The key, e.g. `sip.udp_batch`.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A value the proxy core cannot use.
    #[error(transparent)]
    Core(#[from] CoreConfigError),
    /// The `[tls]` section or its files cannot be used.
    #[error(transparent)]
    Tls(Box<crate::proxy::tls::TlsConfigError>),
}

impl ConfigError {
    /// The key at fault, for the errors that have one.
    pub fn key(&self) -> Option<String> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key.clone()),
            ConfigError::Core(e) => Some(e.key()),
            ConfigError::Tls(e) => Some(e.key()),
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// Parses TOML text (syntax, types, values, unknown keys); see [`Config::validate`] for
    /// the rest.
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

    /// Checks every section (each with its own `validate`), what spans sections, and the
    /// files named (dialog key, admin tokens) without keeping them: the runtime reads them
    /// at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.sip.validate()?;
        crate::proxy::core::CoreConfig::from_file_config(self).validate()?;
        self.policy
            .compile()
            .map_err(|e| invalid(e.key, e.message))?;
        self.dialog_key()?;
        if self.feed.enabled() {
            self.feed
                .validate()
                .map_err(|(key, reason)| invalid(key, reason))?;
            for (list, file, key) in [
                (
                    crate::feed::ListKind::Subscribers,
                    &self.lists.subscribers,
                    "lists.subscribers",
                ),
                (
                    crate::feed::ListKind::Protected,
                    &self.lists.protected,
                    "lists.protected",
                ),
            ] {
                if self.feed.follows(list) && file.is_some() {
                    return Err(invalid(
                        key,
                        format!(
                            "the {list} list comes from the feed (feed.lists names \"{list}\"): drop {key} (or --{list}), or take \"{list}\" out of feed.lists"
                        ),
                    ));
                }
            }
        }
        if self.sip.runs(crate::proxy::Transport::Tls) {
            let client = self
                .proxy
                .hops()
                .iter()
                .any(|h| h.transport == crate::proxy::Transport::Tls);
            self.tls
                .validate(true, client)
                .map_err(|e| ConfigError::Tls(Box::new(e)))?;
        }
        self.admin.validate()?;
        self.api.validate()?;
        if self.api.listen.is_some() && self.api.tls {
            self.tls
                .validate(true, false)
                .map_err(|e| ConfigError::Tls(Box::new(e)))?;
        }
        self.decision_log.validate()?;
        self.detection
            .validate()
            .map_err(|e| invalid(e.key(), e.reason()))?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!(
                    "{:?} is not a tracing filter (e.g. \"info\")",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }

    /// The dialog-proof key from `proxy.dialog_key_file` (`None`: not set, a random key per
    /// process).
    pub fn dialog_key(&self) -> Result<Option<crate::proxy::core::DialogKey>, ConfigError> {
        use crate::proxy::core::DialogKey;
        let Some(path) = &self.proxy.dialog_key_file else {
            return Ok(None);
        };
        let shown = path.display();
        let secret = std::fs::read(path)
            .map_err(|e| invalid("proxy.dialog_key_file", format!("cannot read {shown}: {e}")))?;
        DialogKey::from_secret(&secret).map(Some).ok_or_else(|| {
            invalid(
                "proxy.dialog_key_file",
                format!(
                    "{shown} holds {} bytes, at least {} are needed: write one with `head -c 32 /dev/urandom > {shown}`",
                    secret.len(),
                    DialogKey::MIN_SECRET
                ),
            )
        })
    }

    /// The core's configuration: its sections, and the dialog key read from its file.
    pub fn core(&self) -> Result<crate::proxy::core::CoreConfig, ConfigError> {
        let mut c = crate::proxy::core::CoreConfig::from_file_config(self);
        c.dialog_key = self.dialog_key()?;
        Ok(c)
    }

    /// The resolved configuration as TOML (what `fraudwall config check` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::core::{BlockResponse, DialogKey, ForeignRoute, IdentitySource};
    use crate::proxy::Transport;
    use std::net::SocketAddr;

    #[test]
    fn default_text_parses_to_default() {
        let parsed = Config::from_toml_str(DEFAULT_CONFIG).unwrap();
        assert_eq!(parsed, Config::default());
        parsed.validate().unwrap();
        assert_eq!(
            parsed.sip.addresses(),
            vec!["127.0.0.1:5060".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            parsed.proxy.hops()[0].address,
            "127.0.0.1:5080".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(parsed.admin.listen, Some("127.0.0.1:9060".parse().unwrap()));
        assert!(parsed.sip.runs(Transport::Udp) && parsed.sip.runs(Transport::Tcp));
        assert_eq!(parsed.proxy.next_hop_transport, Transport::Udp);
        assert!(parsed.sip.effective_udp_workers() >= 1);
        assert_eq!(
            parsed.proxy.identity_order,
            vec![
                IdentitySource::Pai,
                IdentitySource::Rpid,
                IdentitySource::From
            ]
        );
        assert_eq!(parsed.decision_log.target, LogTarget::Stdout);
        assert_eq!(parsed.blocklist.snapshot, None);
        assert_eq!(parsed.health.probe_interval, Duration::from_secs(5));
        assert_eq!(parsed.health.max_missed, 3);
        assert_eq!(parsed.health.down_for, Duration::from_secs(30));
        assert_eq!(parsed.admin.tokens_file, None);
        assert_eq!(parsed.sip.tcp_message_timeout, Duration::from_secs(10));
        assert_eq!(parsed.sip.tcp_max_connections_per_source, 64);
        assert_eq!(parsed.limits, LimitsConfig::default());
    }

    /// The `key = value` lines of the default text, as `section.key`.
    fn documented_keys() -> Vec<String> {
        let mut section = String::new();
        let mut keys = Vec::new();
        for line in DEFAULT_CONFIG.lines() {
            if let Some(s) = line.strip_prefix('[') {
                section = s.trim_end_matches(']').to_string();
            } else if let Some((key, _)) = line.split_once(" = ") {
                // Lines of a multi-line array (`rules = [ ... ]`) start with a space.
                if !line.starts_with('#') && !line.starts_with(' ') {
                    keys.push(format!("{section}.{key}"));
                }
            }
        }
        keys
    }

    /// The keys of a TOML text, as `section.key`.
    fn keys_of(text: &str) -> Vec<String> {
        let table: toml::Table = toml::from_str(text).unwrap();
        let mut keys = Vec::new();
        for (section, v) in table {
            // `[[peers]]` is an array of tables, empty by default (documented in comments).
            let Some(t) = v.as_table() else { continue };
            for key in t.keys() {
                keys.push(format!("{section}.{key}"));
            }
        }
        keys
    }

    #[test]
    fn the_issue_example_with_peer_groups_and_policy_parses_and_validates() {
        let text = "[[peers]]\nname = \"core\"\naddresses = [\"127.0.0.1\"]\ntrust_identity = true\n\
                    [[peers]]\nname = \"intl-gw\"\naddresses = [\"127.0.0.2\"]\ntrust_identity = true\n\
                    international = true\n[policy]\nhome_country = [\"86\"]\n\
                    [decision_log]\ntarget = \"/tmp/decisions.jsonl\"\n";
        let c = Config::from_toml_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.peers.len(), 2);
        assert!(c.peers[1].international);
        assert_eq!(c.policy.home_country, vec!["86".to_string()]);
        let back = Config::from_toml_str(&c.to_toml()).unwrap();
        assert_eq!(back.peers, c.peers);
        // A group error names its key.
        let clash = "[[peers]]\nname = \"a\"\naddresses = [\"10.0.0.0/8\"]\n\
                     [[peers]]\nname = \"b\"\naddresses = [\"10.1.0.1\"]\n";
        let e = Config::from_toml_str(clash)
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(e.key().as_deref(), Some("peers[1].addresses"));
        let e = Config::from_toml_str("[policy]\nhome_country = [\"x\"]\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(e.key().as_deref(), Some("policy.home_country"));
    }

    #[test]
    fn every_key_is_documented_and_every_documented_key_round_trips() {
        let documented = documented_keys();
        let written = toml::to_string(&Config::default()).unwrap();
        let mut serialized = keys_of(&written);
        serialized.sort();
        let mut sorted = documented.clone();
        sorted.sort();
        assert_eq!(sorted, serialized, "default text and struct differ");
        // Each documented key, set on its own from the default text, parses and prints
        // back to the same value.
        let defaults: toml::Table = toml::from_str(DEFAULT_CONFIG).unwrap();
        for key in &documented {
            let (section, name) = key.split_once('.').unwrap();
            let value = &defaults[section][name];
            let text = format!("[{section}]\n{name} = {value}\n");
            let c = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{key}: {e}"));
            let back: toml::Table = toml::from_str(&c.to_toml()).unwrap();
            assert_eq!(&back[section][name], value, "{key} does not round-trip");
        }
    }

    #[test]
    fn changed_values_round_trip() {
        let text = r#"
            [sip]
            listen = ["0.0.0.0:5060", { address = "[::1]:5070", advertise = "sbc.example.net:5070" }]
            advertise = "192.0.2.1"
            transports = ["tcp"]
            allowed_sources = ["10.0.0.0/8"]
            tcp_idle_timeout = "90s"
            [proxy]
            next_hops = ["10.0.0.1:5060", { address = "10.0.0.2:5061", transport = "tcp", server_name = "sw.example.net" }]
            next_hop_transport = "tcp"
            aliases = ["proxy.example.net"]
            trusted_peers = ["192.0.2.0/24"]
            foreign_route = "reject"
            [health]
            probe_interval = "0s"
            [actions]
            block_response = 603
            warn_uri = "sip:announce@10.0.0.9"
            warn_transport = "tcp"
            anonymous = "tag"
            [limits]
            max_vias = 100
            [feed]
            url = "http://127.0.0.1:8080/manifest.json"
            keys = ["/etc/fraudwall/op.pub"]
            pin_version = 7
            [admin]
            listen = ""
            [decision_log]
            target = "/var/log/fw.jsonl"
        "#;
        let c = Config::from_toml_str(text).unwrap();
        assert_eq!(c.actions.block_response, BlockResponse::NetworkBlocked603);
        assert_eq!(c.proxy.foreign_route, ForeignRoute::Reject);
        assert_eq!(c.admin.listen, None);
        assert_eq!(
            c.decision_log.target,
            LogTarget::File("/var/log/fw.jsonl".into())
        );
        assert_eq!(c.feed.pinned(), Some(7));
        assert_eq!(c.limits.max_vias, 100);
        assert_eq!(c.sip.listen[1].advertise.as_ref().unwrap().port, Some(5070));
        assert_eq!(
            Config::from_toml_str(&c.to_toml()).unwrap(),
            c,
            "{}",
            c.to_toml()
        );
    }

    #[test]
    fn health_keys_and_no_probes() {
        let c = Config::from_toml_str(
            "[health]\nprobe_interval = \"0s\"\nmax_missed = 2\ndown_for = \"2m\"",
        )
        .unwrap();
        c.validate().unwrap();
        assert!(c.health.probe_interval.is_zero());
        assert_eq!(c.health.max_missed, 2);
        assert_eq!(c.health.down_for, Duration::from_secs(120));
    }

    #[test]
    fn tokens_file_is_checked_without_quoting_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.tokens");
        let cfg = format!("[admin]\ntokens_file = \"{}\"\n", path.display());
        std::fs::write(&path, "# ok\n0123456789abcdef0123456789abcdef\n").unwrap();
        let c = Config::from_toml_str(&cfg).unwrap();
        c.validate().unwrap();
        assert_eq!(c.admin.tokens_file, Some(path.clone()));
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
    fn empty_file_is_default() {
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let cases = [
            ("[sip]\nlisten = []", "sip.listen"),
            ("[sip]\ntransports = []", "sip.transports"),
            ("[sip]\nudp_batch = 0", "sip.udp_batch"),
            (
                "[sip]\nudp_realtime_priority = 100",
                "sip.udp_realtime_priority",
            ),
            (
                "[sip]\ntcp_message_timeout = \"0s\"",
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
                "[proxy]\ndialog_key_file = \"/nonexistent/fraudwall/dialog.key\"",
                "proxy.dialog_key_file",
            ),
            ("[proxy]\nnext_hops = []", "proxy.next_hops"),
            (
                "[proxy]\nidentity_order = [\"pai\", \"pai\"]",
                "proxy.identity_order",
            ),
            (
                "[proxy]\nnumbering_profile = \"mars\"",
                "proxy.numbering_profile",
            ),
            (
                "[actions]\ntag_header = \"X-Fraud: x\"",
                "actions.tag_header",
            ),
            (
                "[actions]\ntag_display_label = \"a label far too long\"",
                "actions.tag_display_label",
            ),
            ("[actions]\nwarn_uri = \"http://x\"", "actions.warn_uri"),
            ("[decision_log]\nqueue = 0", "decision_log.queue"),
            (
                "[health]\nprobe_interval = \"200ms\"",
                "health.probe_interval",
            ),
            ("[health]\nmax_missed = 0", "health.max_missed"),
            ("[health]\ndown_for = \"0s\"", "health.down_for"),
            ("[limits]\nmax_message_size = 100", "limits.max_message_size"),
            ("[limits]\nmax_vias = 0", "limits.max_vias"),
            (
                "[proxy]\nnext_hop_transport = \"tcp\"\n[sip]\ntransports = [\"udp\"]",
                "proxy.next_hop_transport",
            ),
            (
                "[actions]\nwarn_uri = \"sip:a@10.0.0.1\"\nwarn_transport = \"tcp\"\n[sip]\ntransports = [\"udp\"]",
                "actions.warn_transport",
            ),
            ("[feed]\nurl = \"ftp://x\"", "feed.url"),
            ("[feed]\nurl = \"http://x/m.json\"", "feed.keys"),
            ("[log]\nlevel = \"=\"", "log.level"),
        ];
        for (text, key) in cases {
            let e = Config::from_toml_str(text)
                .unwrap_or_else(|e| panic!("{text}: {e}"))
                .validate()
                .unwrap_err();
            assert_eq!(e.key().as_deref(), Some(key), "{text}: {e}");
            assert!(e.to_string().starts_with(key), "{text}: {e}");
        }
    }

    #[test]
    fn type_errors_quote_the_value_and_say_how_to_fix_it() {
        let cases = [
            (
                "[proxy]\nnext_hops = [\"127.0.0.1:5080\", \"nowhere\"]",
                "IP:PORT",
            ),
            ("[sip]\ntransports = [\"sctp\"]", "sctp"),
            ("[sip]\ntcp_idle_timeout = \"soon\"", "tcp_idle_timeout"),
            ("[proxy]\ntrusted_peers = [\"10.0.0.300\"]", "10.0.0.0/8"),
            ("[sip]\nallowed_sources = [\"10.0.0.0/40\"]", "10.0.0.0/40"),
            ("[sip]\nadvertise = \"a b\"", "host[:port]"),
            ("[proxy]\nforeign_route = \"follow\"", "follow"),
            ("[actions]\nblock_response = 486", "608"),
            ("[actions]\nanonymous = \"drop\"", "drop"),
            ("[admin]\nlisten = \"9060\"", "IP:PORT"),
            ("[proxy]\nnext_hop = [\"127.0.0.1:5080\"]", "next_hop"),
            ("[sip]\nudp_workers = \"two\"", "udp_workers"),
            ("[sip]\nmax_message_size = 1024", "max_message_size"),
        ];
        for (text, needle) in cases {
            let e = Config::from_toml_str(text).unwrap_err();
            assert!(matches!(e, ConfigError::Syntax { .. }), "{text}: {e}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
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
        let c = Config::from_toml_str(&text).unwrap();
        c.validate().unwrap();
        let core = c.core().unwrap();
        assert_eq!(core.dialog_key, DialogKey::from_secret(&[7u8; 32]));
        assert_eq!(core.proxy.foreign_route, ForeignRoute::Reject);
        assert_eq!(
            core.sip.allowed_sources,
            vec!["10.0.0.0/8".parse().unwrap()]
        );
    }

    #[test]
    fn the_deployment_example_parses() {
        let text = include_str!("../integration/deploy/fraudwall.toml");
        let c = Config::from_toml_str(text).unwrap();
        assert_eq!(c.proxy.hops().len(), 2);
        assert!(c.proxy.record_route);
    }

    #[test]
    fn the_tls_example_parses_and_names_its_files() {
        let text = include_str!("../integration/deploy/tls.toml");
        let c = Config::from_toml_str(text).unwrap();
        assert!(c.sip.runs(crate::proxy::Transport::Tls));
        assert!(c
            .proxy
            .hops()
            .iter()
            .all(|h| h.transport == crate::proxy::Transport::Tls));
        // The files are not on this machine: validation says which key names one.
        let e = c.validate().unwrap_err();
        assert!(e.key().is_some_and(|k| k.starts_with("tls.")), "{e}");
    }

    #[test]
    fn ipv6_and_several_listeners() {
        let c = Config::from_toml_str(
            "[sip]\nlisten = [\"127.0.0.1:5060\", \"[::1]:5060\", \"127.0.0.1:5060\"]",
        )
        .unwrap();
        let a = c.sip.addresses();
        assert_eq!(a.len(), 2);
        assert!(a[1].is_ipv6());
    }
}
