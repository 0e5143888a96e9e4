//! Metrics: every counter the proxy touches per message is registered once, up front.
//!
//! The `metrics` macros (`counter!("name", "label" => v).increment(1)`) look the key up in the
//! recorder on every call, 80 to 120 ns; a pre-registered [`metrics::Counter`] handle is an
//! atomic add, about 10 ns. So [`Telemetry::new`] builds a Prometheus recorder (not installed
//! globally: the handles are registered on it directly, which keeps tests independent), and
//! registers the fixed label sets (methods × directions, actions, transports) at once. Label
//! sets known only at run time (verdict categories from the snapshot's string table, parse
//! error reasons) are registered on first use and cached; their count is bounded
//! ([`MAX_DYNAMIC_LABELS`]), beyond which they are counted under `other`.
//!
//! [`Telemetry::render`] produces the Prometheus text exposition served on `/metrics`.
//!
//! Metric names (all prefixed `fraudwall_`):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sip_messages_total` | counter | `direction` (in, out), `method` (INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, other, response) |
//! | `verdicts_total` | counter | `action`, `category` |
//! | `verdict_reasons_total` | counter | `reason` (`listed`, `unlisted`, `anonymous`, `invalid`, `evasion`, `no_snapshot`, `internal_error`, `protected_callee`, `impersonation`, `spoofed_domestic`, `personal`, `verstat_failed`, `international_origin`, `behaviour`) |
//! | `verdict_rules_total` | counter | `rule` (the rule-chain stage that decided: `protected-callee` ... `default`; a stage that failed open counts here with action `allow`), `action` (applied) |
//! | `verstat_total` | counter | `value` (`absent`, `passed`, `failed`, `no-validation`, `unknown`: what trusted peers asserted per screened call) |
//! | `parse_errors_total` | counter | `reason` (malformed: `truncated`, `too_large`, `bad_start_line`, ...) |
//! | `dropped_total` | counter | `reason` (well-formed but dropped: `no_route_back`, `connection_limit`, `source_connection_limit`, `idle_timeout`, `message_timeout`, ...) |
//! | `lookup_duration_seconds` | histogram | |
//! | `queue_delay_seconds` | histogram | (how long each UDP datagram waited in this node: kernel receive timestamp to handling) |
//! | `build_info` | gauge | `version` (always 1: which version each node runs) |
//! | `udp_worker_messages_total` | counter | `worker` (datagrams received per UDP worker: the spread) |
//! | `next_hop_up` | gauge | `hop`, `transport` (1 while the next hop is considered up, 0 while health checks or send errors have it marked down; proxy mode) |
//! | `overload` | gauge | (1 while new INVITEs are shed, `[overload]`) |
//! | `overload_episodes_total` | counter | (times the node entered overload) |
//! | `overload_shed_total` | counter | `action` (`reject`: answered 503, `drop`: dropped) |
//! | `snapshot_version` | gauge | |
//! | `snapshot_reload_failures_total` | counter | |
//! | `list_reload_failures_total` | counter | `list` (`subscribers`, `protected`: a changed `[lists]` file refused, the loaded list kept) |
//! | `decision_log_dropped_total` | counter | |
//! | `fail_open_total` | counter | |
//! | `send_errors_total` | counter | `transport` (`udp`, `tcp`, `tls`: sends that failed at the destination: refused, unreachable) |
//! | `local_send_errors_total` | counter | `reason` (sends this node refused: `too_large`, `no_buffers`, `connection_limit`, `no_transport` (the message's transport does not run here), `other`; no hop is blamed) |
//! | `tcp_connections` | gauge (open) | |
//! | `tcp_connections_total` | counter | `result` (accepted, refused, outbound) |
//! | `identity_headers_removed_total` | counter | `header` (pai, rpid): identity lines from untrusted senders removed before forwarding (RFC 3325 §5) |
//! | `admin_refused_total` | counter | `reason` ([`AdminRefusal`]: `cross_origin`, `missing_token`, ...) |
//! | `source_refused_total` | counter | (messages from outside `sip.allowed_sources`) |
//! | `dialog_proofs_total` | counter | `result` (accepted, refused) |
//! | `routing_refused_total` | counter | `reason` (route_ignored, route_rejected, in_dialog_route, in_dialog_request_uri) |
//! | `reflection_limited_total` | counter | `result` (trimmed, withheld) |
//! | `detection_*` | | behavioural detection, with `[detection] enabled`: see [`crate::behaviour`] |
//! | `requests_refused_total` | counter | `reason` ([`RequestRefusal`], RFC 3261 §16.3: unsupported_uri_scheme (416), too_many_hops (483), loop (482), bad_extension (420), sips_without_tls (416)) |

use metrics::{Counter, Gauge, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use crate::admin::AdminRefusal;
use crate::blocklist::Action;
use crate::policy::{Reason, Rule, Verstat};
use crate::proxy::core::{Checks, ProofCheck, ReplyFit, RequestRefusal, RoutingRefusal};
use crate::proxy::core::{IdentityRemoved, IdentitySource, OverloadStatus, ShedAction};
use crate::proxy::LocalSendError;
use crate::proxy::Transport;

/// At most this many distinct categories (or parse-error reasons) get their own label value.
pub const MAX_DYNAMIC_LABELS: usize = 256;

/// SIP methods with a label of their own; everything else is `other`.
const METHODS: [&str; 8] = [
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "other", "response",
];

/// Index into the method table from a message's first bytes (no parsing: the start line's first token).
pub fn method_index(data: &[u8]) -> usize {
    let token = data.split(|&b| b == b' ').next().unwrap_or(&[]);
    match token {
        b"INVITE" => 0,
        b"ACK" => 1,
        b"BYE" => 2,
        b"CANCEL" => 3,
        b"OPTIONS" => 4,
        b"REGISTER" => 5,
        b"SIP/2.0" => 7,
        _ => 6,
    }
}

/// Counters of one metric by a `reason` label registered on first use (bounded, cached).
struct ReasonCounters {
    name: &'static str,
    map: RwLock<HashMap<&'static str, Counter>>,
}

impl ReasonCounters {
    fn new(name: &'static str) -> Self {
        ReasonCounters {
            name,
            map: RwLock::new(HashMap::new()),
        }
    }

    fn increment(&self, recorder: &PrometheusRecorder, reason: &'static str) {
        if let Ok(map) = self.map.read() {
            if let Some(c) = map.get(reason) {
                c.increment(1);
                return;
            }
        }
        let Ok(mut map) = self.map.write() else {
            return;
        };
        let reason = if map.len() >= MAX_DYNAMIC_LABELS {
            "other"
        } else {
            reason
        };
        map.entry(reason)
            .or_insert_with(|| {
                let key = Key::from_parts(self.name, vec![Label::new("reason", reason)]);
                recorder.register_counter(&key, &meta())
            })
            .increment(1);
    }
}

/// Upper bounds of the lookup histogram's buckets, in nanoseconds: lookups take well under a
/// microsecond; the buckets resolve that range and the tail.
const LOOKUP_BUCKETS_NS: [u64; 9] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 100_000, 1_000_000,
];

/// Upper bounds of the queue-delay histogram's buckets, in nanoseconds: from what a node that
/// keeps up sees (tens of microseconds) to the overload bounds (tens to hundreds of ms).
const QUEUE_DELAY_BUCKETS_NS: [u64; 12] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
];

/// A histogram of fixed buckets of atomic counters, e.g.
/// `fraudwall_lookup_duration_seconds`. (The exporter's own histogram keeps every sample,
/// with a clock read, until the next scrape or upkeep: memory that grows with the call count
/// when nobody scrapes.) One add per record, fixed memory.
struct FixedHistogram {
    name: &'static str,
    /// Upper bounds in nanoseconds.
    bounds: &'static [u64],
    /// Per bucket (not cumulative), the last one is +Inf.
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl FixedHistogram {
    fn new(name: &'static str, bounds: &'static [u64]) -> FixedHistogram {
        FixedHistogram {
            name,
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    fn record(&self, d: std::time::Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self
            .bounds
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let name = self.name;
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut total = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(&le) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {total}", le as f64 / 1e9);
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
                }
            }
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {total}");
        out.push('\n');
    }
}

/// Message direction relative to fraudwall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received.
    In = 0,
    /// Sent.
    Out = 1,
}

fn meta() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

/// The registered metric handles and the recorder behind them.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    messages: [[Counter; METHODS.len()]; 2],
    lookup: FixedHistogram,
    queue_delay: FixedHistogram,
    udp_workers: std::sync::OnceLock<Vec<Counter>>,
    /// `[subscribers, protected]`.
    list_reload_failures: [Counter; 2],
    next_hops: std::sync::OnceLock<Vec<Gauge>>,
    overload_shed: [Counter; ShedAction::ALL.len()],
    overload: Gauge,
    overload_episodes: Counter,
    snapshot_version: Gauge,
    reload_failures: Counter,
    decision_log_dropped: Counter,
    fail_open: Counter,
    send_errors: [Counter; Transport::ALL.len()],
    local_send_errors: [Counter; LocalSendError::ALL.len()],
    tcp_open: Gauge,
    tcp_accepted: Counter,
    tcp_refused: Counter,
    tcp_outbound: Counter,
    removed_pai: Counter,
    removed_rpid: Counter,
    admin_refused: [Counter; AdminRefusal::ALL.len()],
    source_refused: Counter,
    dialog_proofs: [Counter; ProofCheck::ALL.len()],
    routing_refused: [Counter; RoutingRefusal::ALL.len()],
    reflection_limited: [Counter; ReplyFit::ALL.len()],
    requests_refused: [Counter; RequestRefusal::ALL.len()],
    verdicts: RwLock<[HashMap<String, Counter>; 4]>,
    verdict_reasons: [Counter; Reason::ALL.len()],
    verdict_rules: [[Counter; Action::ALL.len()]; Rule::ALL.len()],
    verstat: [Counter; Verstat::ALL.len()],
    parse_errors: ReasonCounters,
    dropped: ReasonCounters,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Builds the recorder and registers the fixed metrics.
    pub fn new() -> Telemetry {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        recorder
            .register_gauge(
                &Key::from_parts(
                    "fraudwall_build_info",
                    vec![Label::new("version", env!("CARGO_PKG_VERSION"))],
                ),
                &meta(),
            )
            .set(1.0);
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &meta())
        };
        let messages = [Direction::In, Direction::Out].map(|d| {
            let dir = if d == Direction::In { "in" } else { "out" };
            METHODS.map(|m| {
                counter(
                    "fraudwall_sip_messages_total",
                    vec![Label::new("direction", dir), Label::new("method", m)],
                )
            })
        });
        let send_errors = Transport::ALL.map(|t| {
            counter(
                "fraudwall_send_errors_total",
                vec![Label::new("transport", t.config_name())],
            )
        });
        let local_send_errors = LocalSendError::ALL.map(|r| {
            counter(
                "fraudwall_local_send_errors_total",
                vec![Label::new("reason", r.as_str())],
            )
        });
        let tcp_total = |r: &'static str| {
            counter(
                "fraudwall_tcp_connections_total",
                vec![Label::new("result", r)],
            )
        };
        let removed = |h: IdentitySource| {
            counter(
                "fraudwall_identity_headers_removed_total",
                vec![Label::new("header", h.as_str())],
            )
        };
        let t = Telemetry {
            lookup: FixedHistogram::new("fraudwall_lookup_duration_seconds", &LOOKUP_BUCKETS_NS),
            queue_delay: FixedHistogram::new(
                "fraudwall_queue_delay_seconds",
                &QUEUE_DELAY_BUCKETS_NS,
            ),
            udp_workers: std::sync::OnceLock::new(),
            list_reload_failures: ["subscribers", "protected"].map(|l| {
                counter(
                    "fraudwall_list_reload_failures_total",
                    vec![Label::new("list", l)],
                )
            }),
            next_hops: std::sync::OnceLock::new(),
            overload_shed: ShedAction::ALL.map(|a| {
                counter(
                    "fraudwall_overload_shed_total",
                    vec![Label::new("action", a.as_str())],
                )
            }),
            overload: recorder.register_gauge(&Key::from_name("fraudwall_overload"), &meta()),
            overload_episodes: counter("fraudwall_overload_episodes_total", vec![]),
            snapshot_version: recorder
                .register_gauge(&Key::from_name("fraudwall_snapshot_version"), &meta()),
            reload_failures: counter("fraudwall_snapshot_reload_failures_total", vec![]),
            decision_log_dropped: counter("fraudwall_decision_log_dropped_total", vec![]),
            fail_open: counter("fraudwall_fail_open_total", vec![]),
            tcp_open: recorder
                .register_gauge(&Key::from_name("fraudwall_tcp_connections"), &meta()),
            tcp_accepted: tcp_total("accepted"),
            tcp_refused: tcp_total("refused"),
            tcp_outbound: tcp_total("outbound"),
            removed_pai: removed(IdentitySource::Pai),
            removed_rpid: removed(IdentitySource::Rpid),
            admin_refused: AdminRefusal::ALL.map(|r| {
                counter(
                    "fraudwall_admin_refused_total",
                    vec![Label::new("reason", r.as_str())],
                )
            }),
            source_refused: counter("fraudwall_source_refused_total", vec![]),
            dialog_proofs: ProofCheck::ALL.map(|p| {
                counter(
                    "fraudwall_dialog_proofs_total",
                    vec![Label::new("result", p.as_str())],
                )
            }),
            routing_refused: RoutingRefusal::ALL.map(|r| {
                counter(
                    "fraudwall_routing_refused_total",
                    vec![Label::new("reason", r.as_str())],
                )
            }),
            reflection_limited: ReplyFit::ALL.map(|f| {
                counter(
                    "fraudwall_reflection_limited_total",
                    vec![Label::new("result", f.as_str())],
                )
            }),
            requests_refused: RequestRefusal::ALL.map(|r| {
                counter(
                    "fraudwall_requests_refused_total",
                    vec![Label::new("reason", r.as_str())],
                )
            }),
            messages,
            send_errors,
            local_send_errors,
            verdicts: RwLock::new(Default::default()),
            verdict_reasons: Reason::ALL.map(|r| {
                counter(
                    "fraudwall_verdict_reasons_total",
                    vec![Label::new("reason", r.as_str())],
                )
            }),
            verdict_rules: Rule::ALL.map(|r| {
                Action::ALL.map(|a| {
                    counter(
                        "fraudwall_verdict_rules_total",
                        vec![
                            Label::new("rule", r.as_str()),
                            Label::new("action", a.as_str()),
                        ],
                    )
                })
            }),
            verstat: Verstat::ALL.map(|v| {
                counter(
                    "fraudwall_verstat_total",
                    vec![Label::new("value", v.as_str())],
                )
            }),
            parse_errors: ReasonCounters::new("fraudwall_parse_errors_total"),
            dropped: ReasonCounters::new("fraudwall_dropped_total"),
            handle,
            recorder,
        };
        // Pre-create the verdict counters without a category so /metrics shows them from the start.
        for a in Action::ALL {
            let _ = t.verdict_slow(a, "none");
        }
        t
    }

    /// The recorder the fixed handles live on, for other parts (the feed) to register their
    /// own metrics once, up front.
    pub fn recorder(&self) -> &PrometheusRecorder {
        &self.recorder
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        self.lookup.render(&mut text);
        self.queue_delay.render(&mut text);
        // Kept by the subscriber lists themselves (a lookup has no telemetry handle).
        text.push_str(
            "# HELP fraudwall_subscriber_corrupt_lookups_total Subscriber-list lookups that met a damaged block and ignored the callee's choices (fail open).\n\
             # TYPE fraudwall_subscriber_corrupt_lookups_total counter\n",
        );
        text.push_str(&format!(
            "fraudwall_subscriber_corrupt_lookups_total {}\n",
            crate::subscribers::SubscriberList::corrupt_lookups_total()
        ));
        text
    }

    /// Counts one SIP message (method taken from its first token).
    #[inline]
    pub fn message(&self, direction: Direction, data: &[u8]) {
        self.messages[direction as usize][method_index(data)].increment(1);
    }

    /// Counts one verdict. `category` is the matched entry's category (`none` when not listed).
    pub fn verdict(&self, action: Action, category: &str) {
        if let Ok(maps) = self.verdicts.read() {
            if let Some(c) = maps[action as usize].get(category) {
                c.increment(1);
                return;
            }
        }
        self.verdict_slow(action, category).increment(1);
    }

    /// Counts one verdict by why it was reached (`evasion`: a decorated listed number).
    #[inline]
    pub fn verdict_reason(&self, reason: Reason) {
        self.verdict_reasons[reason as usize].increment(1);
    }

    /// Counts one verdict by the rule-chain stage that decided it and the action applied.
    #[inline]
    pub fn verdict_rule(&self, rule: Rule, action: Action) {
        self.verdict_rules[rule as usize][action as usize].increment(1);
    }

    /// Counts one screened call by what the network asserted (`verstat`).
    #[inline]
    pub fn verstat(&self, v: Verstat) {
        self.verstat[v as usize].increment(1);
    }

    fn verdict_slow(&self, action: Action, category: &str) -> Counter {
        let Ok(mut maps) = self.verdicts.write() else {
            return Counter::noop();
        };
        let map = &mut maps[action as usize];
        let category = if map.len() >= MAX_DYNAMIC_LABELS {
            "other"
        } else {
            category
        };
        map.entry(category.to_string())
            .or_insert_with(|| {
                self.recorder.register_counter(
                    &Key::from_parts(
                        "fraudwall_verdicts_total",
                        vec![
                            Label::new("action", action.as_str()),
                            Label::new("category", category.to_string()),
                        ],
                    ),
                    &meta(),
                )
            })
            .clone()
    }

    /// Counts one malformed or refused message by reason (a short snake_case token).
    pub fn parse_error(&self, reason: &'static str) {
        self.parse_errors.increment(&self.recorder, reason);
    }

    /// Counts a well-formed message (or a connection) dropped by rule: no route back, a Via
    /// not ours, a TCP connection over the limit or idle too long.
    pub fn dropped(&self, reason: &'static str) {
        self.dropped.increment(&self.recorder, reason);
    }

    /// Records one blocklist lookup's duration.
    #[inline]
    pub fn lookup_duration(&self, d: std::time::Duration) {
        self.lookup.record(d);
    }

    /// Sets the loaded snapshot's version.
    pub fn snapshot_version(&self, version: u64) {
        self.snapshot_version.set(version as f64);
    }

    /// Counts a snapshot that failed to load or verify (the old one stays).
    pub fn reload_failure(&self) {
        self.reload_failures.increment(1);
    }

    /// Counts decision-log lines dropped because the queue was full.
    pub fn decision_log_dropped(&self, n: u64) {
        self.decision_log_dropped.increment(n);
    }

    /// Counts a call let through because screening could not run.
    pub fn fail_open(&self) {
        self.fail_open.increment(1);
    }

    /// Counts a failed send.
    pub fn send_error(&self, transport: Transport) {
        self.send_errors[transport.index()].increment(1);
    }

    /// Counts a send this node refused (see [`LocalSendError`]).
    pub fn local_send_error(&self, why: LocalSendError) {
        self.local_send_errors[why as usize].increment(1);
    }

    /// An accepted inbound TCP connection (also raises the open gauge).
    pub fn tcp_accepted(&self) {
        self.tcp_accepted.increment(1);
        self.tcp_open.increment(1.0);
    }

    /// An opened outbound TCP connection (also raises the open gauge).
    pub fn tcp_outbound(&self) {
        self.tcp_outbound.increment(1);
        self.tcp_open.increment(1.0);
    }

    /// An inbound connection refused at the limit.
    pub fn tcp_refused(&self) {
        self.tcp_refused.increment(1);
    }

    /// A state-changing admin request refused.
    pub fn admin_refused(&self, reason: AdminRefusal) {
        self.admin_refused[reason as usize].increment(1);
    }

    /// Counts what the core's source, dialog-proof, routing and reflection checks did with
    /// one message.
    #[inline]
    pub fn checks(&self, c: &Checks) {
        if c.source_refused {
            self.source_refused.increment(1);
        }
        if let Some(p) = c.proof {
            self.dialog_proofs[p as usize].increment(1);
        }
        if let Some(r) = c.routing {
            self.routing_refused[r as usize].increment(1);
        }
        if let Some(f) = c.reply {
            self.reflection_limited[f as usize].increment(1);
        }
        if let Some(r) = c.request {
            self.requests_refused[r as usize].increment(1);
        }
        if c.fail_open {
            self.fail_open.increment(1);
        }
        if let Some(a) = c.shed {
            self.overload_shed[a as usize].increment(1);
        }
    }

    /// Counts a changed list file refused (the loaded list is kept): the blocklist file in
    /// `fraudwall_snapshot_reload_failures_total`, the `[lists]` files in
    /// `fraudwall_list_reload_failures_total{list}`.
    pub fn list_reload_failure(&self, list: crate::feed::ListKind) {
        match list {
            crate::feed::ListKind::Blocklist => self.reload_failure(),
            crate::feed::ListKind::Subscribers => self.list_reload_failures[0].increment(1),
            crate::feed::ListKind::Protected => self.list_reload_failures[1].increment(1),
        }
    }

    /// Registers `fraudwall_next_hop_up{hop, transport}` for the next hops, in config order
    /// (once; later calls change nothing), each up until [`Telemetry::next_hop_up`] says.
    pub fn next_hops(&self, hops: &[(std::net::SocketAddr, &'static str)]) {
        let _ = self.next_hops.get_or_init(|| {
            hops.iter()
                .map(|(address, transport)| {
                    let g = self.recorder.register_gauge(
                        &Key::from_parts(
                            "fraudwall_next_hop_up",
                            vec![
                                Label::new("hop", address.to_string()),
                                Label::new("transport", *transport),
                            ],
                        ),
                        &meta(),
                    );
                    g.set(1.0);
                    g
                })
                .collect()
        });
    }

    /// Publishes whether next hop `index` (config order) is up (1) or marked down (0).
    pub fn next_hop_up(&self, index: usize, up: bool) {
        if let Some(g) = self.next_hops.get().and_then(|h| h.get(index)) {
            g.set(if up { 1.0 } else { 0.0 });
        }
    }

    /// Registers `fraudwall_udp_worker_messages_total{worker}` for workers `0..n` (once;
    /// later calls change nothing).
    pub fn udp_workers(&self, n: usize) {
        let _ = self.udp_workers.get_or_init(|| {
            (0..n)
                .map(|i| {
                    self.recorder.register_counter(
                        &Key::from_parts(
                            "fraudwall_udp_worker_messages_total",
                            vec![Label::new("worker", i.to_string())],
                        ),
                        &meta(),
                    )
                })
                .collect()
        });
    }

    /// Counts `messages` datagrams received by UDP worker `worker` (registered by
    /// [`Telemetry::udp_workers`]; others are not counted).
    #[inline]
    pub fn udp_batch(&self, worker: usize, messages: usize) {
        if let Some(c) = self.udp_workers.get().and_then(|w| w.get(worker)) {
            c.increment(messages as u64);
        }
    }

    /// Records how long one message waited before it was handled.
    #[inline]
    pub fn queue_delay(&self, d: std::time::Duration) {
        self.queue_delay.record(d);
    }

    /// Publishes the overload state (`fraudwall_overload`, `_episodes_total`).
    pub fn overload(&self, s: OverloadStatus) {
        self.overload.set(if s.overloaded { 1.0 } else { 0.0 });
        self.overload_episodes.absolute(s.episodes);
    }

    /// A connection closed (lowers the open gauge).
    pub fn tcp_closed(&self) {
        self.tcp_open.decrement(1.0);
    }

    /// Counts identity header lines removed from a forwarded request (untrusted sender).
    #[inline]
    pub fn identity_removed(&self, removed: IdentityRemoved) {
        if removed.is_empty() {
            return;
        }
        self.removed_pai.increment(u64::from(removed.pai));
        self.removed_rpid.increment(u64::from(removed.rpid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn request_refusals_are_counted_by_reason() {
        let t = Telemetry::new();
        let c = Checks {
            request: Some(RequestRefusal::BadExtension),
            ..Checks::default()
        };
        t.checks(&c);
        t.checks(&c);
        let r = t.render();
        assert_eq!(
            value(
                &r,
                "fraudwall_requests_refused_total{reason=\"bad_extension\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &r,
                "fraudwall_requests_refused_total{reason=\"unsupported_uri_scheme\"}"
            ),
            Some(0.0)
        );
    }

    #[test]
    fn subscriber_corrupt_lookups_are_a_counter() {
        let r = Telemetry::new().render();
        assert!(r.contains("# TYPE fraudwall_subscriber_corrupt_lookups_total counter"));
        assert!(
            value(&r, "fraudwall_subscriber_corrupt_lookups_total").is_some(),
            "{r}"
        );
    }

    #[test]
    fn counts_render() {
        let t = Telemetry::new();
        t.message(Direction::In, b"INVITE sip:x SIP/2.0\r\n");
        t.message(Direction::In, b"INVITE sip:x SIP/2.0\r\n");
        t.message(Direction::Out, b"SIP/2.0 608 Rejected\r\n");
        t.message(Direction::In, b"PRACK sip:x SIP/2.0\r\n");
        t.verdict(Action::Block, "impersonation");
        t.verdict(Action::Block, "impersonation");
        t.verdict(Action::Tag, "loan");
        t.verdict_reason(Reason::Evasion);
        t.parse_error("truncated");
        t.dropped("idle_timeout");
        t.snapshot_version(7);
        t.tcp_accepted();
        t.tcp_closed();
        t.decision_log_dropped(3);
        t.lookup_duration(std::time::Duration::from_nanos(300));
        t.identity_removed(IdentityRemoved { pai: 2, rpid: 1 });
        let r = t.render();
        assert_eq!(
            value(
                &r,
                "fraudwall_identity_headers_removed_total{header=\"pai\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &r,
                "fraudwall_identity_headers_removed_total{header=\"rpid\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &r,
                "fraudwall_sip_messages_total{direction=\"in\",method=\"INVITE\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &r,
                "fraudwall_sip_messages_total{direction=\"out\",method=\"response\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &r,
                "fraudwall_sip_messages_total{direction=\"in\",method=\"other\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &r,
                "fraudwall_verdicts_total{action=\"block\",category=\"impersonation\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &r,
                "fraudwall_verdicts_total{action=\"tag\",category=\"loan\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &r,
                "fraudwall_verdicts_total{action=\"allow\",category=\"none\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&r, "fraudwall_verdict_reasons_total{reason=\"evasion\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&r, "fraudwall_verdict_reasons_total{reason=\"listed\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(&r, "fraudwall_parse_errors_total{reason=\"truncated\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&r, "fraudwall_dropped_total{reason=\"idle_timeout\"}"),
            Some(1.0)
        );
        assert_eq!(value(&r, "fraudwall_snapshot_version"), Some(7.0));
        assert_eq!(value(&r, "fraudwall_tcp_connections"), Some(0.0));
        assert_eq!(value(&r, "fraudwall_decision_log_dropped_total"), Some(3.0));
        assert_eq!(
            value(&r, "fraudwall_lookup_duration_seconds_count"),
            Some(1.0)
        );
        assert_eq!(
            value(
                &r,
                "fraudwall_lookup_duration_seconds_bucket{le=\"0.0000001\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &r,
                "fraudwall_lookup_duration_seconds_bucket{le=\"0.0000005\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&r, "fraudwall_lookup_duration_seconds_bucket{le=\"+Inf\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&r, "fraudwall_lookup_duration_seconds_sum"),
            Some(3e-7)
        );
    }

    #[test]
    fn dynamic_labels_are_bounded() {
        let t = Telemetry::new();
        for i in 0..(MAX_DYNAMIC_LABELS * 5) {
            t.verdict(Action::Tag, &format!("c{i}"));
        }
        let n = t
            .verdicts
            .read()
            .map(|m| m[Action::Tag as usize].len())
            .unwrap_or(0);
        assert!(n <= MAX_DYNAMIC_LABELS + 1, "{n}");
        assert!(t.render().contains("category=\"other\""));
    }

    #[test]
    fn methods_by_first_token() {
        assert_eq!(METHODS[method_index(b"BYE sip:a SIP/2.0")], "BYE");
        assert_eq!(METHODS[method_index(b"SIP/2.0 200 OK")], "response");
        assert_eq!(METHODS[method_index(b"")], "other");
        assert_eq!(METHODS[method_index(b"\xff\xfe")], "other");
    }
}
