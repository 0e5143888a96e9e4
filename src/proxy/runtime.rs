//! Wiring: the running proxy. Sockets, the core, the blocklist, metrics and logs, together.
//!
//! [`Runtime::start`] takes a checked [`Config`] and brings up, in order:
//!
//! 1. the metrics ([`Telemetry`]) and the decision-log writer thread;
//! 2. the lists ([`super::lists`]): the blocklist snapshot, memory-mapped into an
//!    `ArcSwapOption` (the embedded sample list when none is configured), or a central feed;
//!    the `[lists]` files; and the thread that swaps in a changed file without dropping or
//!    delaying a call (a file that fails to open or verify is refused, counted, and the old
//!    list stays);
//! 3. the sans-I/O [`ProxyCore`] around a [`Policy`] (timed by [`TimedScreen`] for
//!    the lookup-latency histogram);
//! 4. the UDP workers ([`super::udp`]), the TCP listeners ([`super::tcp`]) and the admin HTTP
//!    listener ([`crate::admin`]) on a small tokio runtime.
//!
//! The transports drive the core through [`Handler`]; [`CoreHandler`] is the production one:
//! it calls the core, counts what came in and went out, and logs each screening decision.
//! Every outbound message goes through one [`Dispatch`] keyed by transport, and one timer
//! thread owned here calls [`Handler::poll_timeout`] once a second (health probes, expiry)
//! whichever transports run.
//!
//! A failure to bind a socket or start a thread is an error at start; once running, nothing
//! from the network stops it (see the transports' docs for limits).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::core::{Checks, CoreConfigError, Disposition, IdentitySource, Outcome, ProxyCore};
use super::lists::{FileReloader, ListSlots, SnapshotSlot};
use super::stream::{StreamPool, StreamSettings, StreamTransport};
use super::tcp::{start_tcp, Framer, TcpConfig, TcpTransport};
use super::tls::{TlsClient, TlsLayer, TlsMetrics, TlsServer};
use super::udp::{UdpBound, UdpConfig, UdpTransport};
use super::{
    ConnectionOrigin, Dispatch, DropReason, Handler, Inbound, LocalSendError, Outbound, Transport,
};
use crate::admin::{AdminState, ListenerStatus, NextHopStatus, Status, StatusSource};
use crate::config::Config;
use crate::decision_log::{DecisionLog, DecisionLogError, DecisionLogWriter, DecisionRecord, Sink};
use crate::feed::run::StartedFeed;
use crate::numbers::{Caller, E164};
use crate::policy::{CallContext, Policy, Reason, Screen, Verdict};
use crate::telemetry::{Direction, Telemetry};

/// The embedded sample blocklist (`blocklists/sample.csv`), compiled at start when no
/// snapshot is configured. Embedding the CSV rather than a compiled snapshot keeps the source
/// readable and always in step with the snapshot format; compiling a few rows takes well
/// under a millisecond.
pub const SAMPLE_CSV: &str = include_str!("../../blocklists/sample.csv");

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The core refused the configuration.
    #[error(transparent)]
    Core(#[from] CoreConfigError),
    /// A configuration value (e.g. the dialog key file) could not be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The decision log could not be opened.
    #[error(transparent)]
    DecisionLog(#[from] DecisionLogError),
    /// A socket could not be bound.
    #[error("cannot listen on {transport} {address}: {source} (is another process using it?)")]
    Bind {
        /// udp, tcp or admin.
        transport: &'static str,
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The embedded sample list could not be compiled.
    #[error("cannot compile the embedded sample blocklist: {0}")]
    Sample(String),
    /// The TLS certificate, key or CA files could not be used.
    #[error(transparent)]
    Tls(#[from] crate::proxy::tls::TlsConfigError),
    /// A subscriber or protected list could not be loaded.
    #[error("{0}")]
    List(String),
    /// `[policy]` is wrong.
    #[error(transparent)]
    Policy(#[from] crate::policy::chain::PolicyConfigError),
    /// The central feed could not start.
    #[error(transparent)]
    Feed(#[from] crate::feed::run::FeedStartError),
    /// `admin.tokens_file` could not be read or holds no usable token.
    #[error("admin.tokens_file: {0}")]
    AdminTokens(#[from] crate::admin::tokens::TokenFileError),
    /// The HTTP verdict API could not start.
    #[error(transparent)]
    Api(#[from] crate::api::ApiStartError),
    /// A thread or the tokio runtime could not start.
    #[error("cannot start: {0}")]
    Start(std::io::Error),
}

/// Times every screening for the `fraudwall_lookup_duration_seconds` histogram.
pub struct TimedScreen<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
}

impl<S: Screen> TimedScreen<S> {
    /// Wraps a screen.
    pub fn new(inner: S, telemetry: Arc<Telemetry>) -> Self {
        TimedScreen { inner, telemetry }
    }
}

impl<S: Screen> Screen for TimedScreen<S> {
    fn screen(&self, call: &CallContext<'_>) -> Verdict {
        let t = Instant::now();
        let v = self.inner.screen(call);
        self.telemetry.lookup_duration(t.elapsed());
        v
    }
}

/// The production [`Handler`]: the core plus metrics and the decision log.
pub struct CoreHandler {
    core: ProxyCore,
    telemetry: Arc<Telemetry>,
    log: DecisionLog,
    /// The detection metrics (`None`: detection off).
    detection: Option<Arc<crate::behaviour::DetectionMetrics>>,
}

impl CoreHandler {
    /// Builds the handler.
    pub fn new(core: ProxyCore, telemetry: Arc<Telemetry>, log: DecisionLog) -> Self {
        CoreHandler {
            core,
            telemetry,
            log,
            detection: None,
        }
    }

    /// The handler counting detection events and findings in `metrics`.
    pub fn with_detection(
        mut self,
        metrics: Option<Arc<crate::behaviour::DetectionMetrics>>,
    ) -> Self {
        self.detection = metrics;
        self
    }

    /// The core (for health queries).
    pub fn core(&self) -> &ProxyCore {
        &self.core
    }

    fn account(&self, outcome: Outcome) {
        if outcome.checks != Checks::default() {
            self.telemetry.checks(&outcome.checks);
        }
        if let Some(reason) = outcome.error {
            self.telemetry.parse_error(reason);
        } else if let Disposition::Dropped(reason) = outcome.disposition {
            self.telemetry.dropped(reason);
        } else if outcome.disposition == Disposition::Answered(513) {
            // Too big to forward over UDP: refused here rather than failing in the kernel.
            self.telemetry.dropped("too_large_to_forward");
        }
        self.telemetry.identity_removed(outcome.identity_removed);
        if let (Some(m), Some(k)) = (&self.detection, &outcome.detection) {
            m.event(k);
        }
        let Some(d) = outcome.decision else { return };
        self.record(&Screened {
            front: match self.core.mode() {
                crate::proxy::listen::SipMode::Proxy => crate::decision_log::Front::Proxy,
                crate::proxy::listen::SipMode::Redirect => crate::decision_log::Front::Redirect,
            },
            call_id: &d.call_id,
            identity: d.identity.map_or("none", IdentitySource::as_str),
            caller_raw: &d.caller_raw,
            caller: &d.caller,
            callee: d.callee.as_ref(),
            callee_raw: &d.callee_raw,
            peer_group: &d.peer_group,
            verstat: d.verstat,
            verdict: &d.verdict,
            applied: d.applied,
        });
    }

    /// Counts one screened call in the verdict metrics and writes its decision-log line,
    /// whichever front end screened it (the proxy, the HTTP API).
    pub(crate) fn record(&self, d: &Screened<'_>) {
        let v = d.verdict;
        self.telemetry
            .verdict(d.applied, v.category.as_deref().unwrap_or("none"));
        self.telemetry.verdict_reason(v.reason);
        self.telemetry.verdict_rule(v.rule, d.applied);
        self.telemetry.verstat(d.verstat);
        if matches!(v.reason, Reason::NoSnapshot | Reason::InternalError) {
            self.telemetry.fail_open();
        }
        if let (Some(m), Reason::Behaviour) = (&self.detection, v.reason) {
            m.finding(v.entry.as_deref().unwrap_or("other"));
        }
        if self.log.wants(d.applied == crate::blocklist::Action::Allow) {
            let (mut caller_text, mut callee_text) = ([0u8; 16], [0u8; 16]);
            let caller = match d.caller {
                Caller::Number(n) => plus_digits(n, &mut caller_text),
                Caller::Anonymous => "anonymous",
                Caller::Invalid(_) | Caller::Decorated { .. } => "invalid",
            };
            let callee = d.callee.map_or("", |n| plus_digits(n, &mut callee_text));
            self.log.record(&DecisionRecord {
                time: SystemTime::now(),
                call_id: d.call_id,
                identity: d.identity,
                caller_raw: d.caller_raw,
                caller,
                callee,
                callee_raw: d.callee_raw,
                peer_group: d.peer_group,
                verdict: d.applied.as_str(),
                rule: v.rule.as_str(),
                reason: v.reason.as_str(),
                category: v.category.as_deref().unwrap_or(""),
                matched: v.entry.as_deref().unwrap_or(""),
                snapshot_version: v.snapshot_version.unwrap_or(0),
                verstat: d.verstat.as_str(),
                front: d.front,
            });
        }
    }
}

/// One screened call as the metrics and the decision log take it, from any front end.
pub(crate) struct Screened<'a> {
    /// Which front end screened the call.
    pub(crate) front: crate::decision_log::Front,
    pub(crate) call_id: &'a str,
    /// The identity header's name (`pai`, `rpid`, `from`, `none`), or `api`.
    pub(crate) identity: &'a str,
    pub(crate) caller_raw: &'a str,
    pub(crate) caller: &'a Caller,
    pub(crate) callee: Option<&'a E164>,
    pub(crate) callee_raw: &'a str,
    pub(crate) peer_group: &'a str,
    pub(crate) verstat: crate::policy::Verstat,
    pub(crate) verdict: &'a Verdict,
    /// The action carried out (warn without a warn service is tagged).
    pub(crate) applied: crate::blocklist::Action,
}

/// `+` and the number's digits, written into `buf` (an E.164 number has at most 15).
fn plus_digits<'b>(n: &E164, buf: &'b mut [u8; 16]) -> &'b str {
    let digits = n.digits().as_bytes();
    let len = (digits.len() + 1).min(buf.len());
    buf[0] = b'+';
    buf[1..len].copy_from_slice(&digits[..len - 1]);
    std::str::from_utf8(&buf[..len]).unwrap_or("invalid")
}

impl Handler for CoreHandler {
    fn handle(&self, msg: Inbound, now: Instant, out: &mut Vec<Outbound>) {
        self.telemetry.message(Direction::In, &msg.data);
        if let Some(q) = msg.queued {
            self.telemetry.queue_delay(q);
        }
        let outcome = self.core.handle(msg, now, out);
        self.account(outcome);
    }

    fn poll_timeout(&self, now: Instant, out: &mut Vec<Outbound>) {
        self.core.poll_timeout(now, out);
        self.telemetry.overload(self.core.overload_status());
    }

    fn udp_batch(&self, worker: usize, messages: usize) {
        self.telemetry.udp_batch(worker, messages);
    }

    fn on_send_error(&self, destination: SocketAddr, transport: Transport, now: Instant) {
        self.telemetry.send_error(transport);
        self.core.on_send_error(destination, transport, now);
    }

    fn local_send_error(&self, _destination: SocketAddr, _t: Transport, why: LocalSendError) {
        self.telemetry.local_send_error(why);
    }

    fn dropped(&self, _source: SocketAddr, _transport: Transport, reason: DropReason) {
        match reason {
            DropReason::SourceNotAllowed
            | DropReason::SourceConnectionLimit
            | DropReason::ConnectionLimit => {
                self.telemetry.tcp_refused();
                self.telemetry.dropped(reason.as_str());
            }
            DropReason::IdleTimeout | DropReason::MessageTimeout | DropReason::TlsHandshake => {
                self.telemetry.dropped(reason.as_str())
            }
            DropReason::TooLarge | DropReason::Malformed(_) => {
                self.telemetry.parse_error(reason.as_str())
            }
        }
    }

    fn accepts_source(&self, source: IpAddr) -> bool {
        self.core.source_allowed(source)
    }

    fn connection_opened(&self, _transport: Transport, origin: ConnectionOrigin) {
        match origin {
            ConnectionOrigin::Accepted => self.telemetry.tcp_accepted(),
            ConnectionOrigin::Opened => self.telemetry.tcp_outbound(),
        }
    }

    fn connection_closed(&self, _transport: Transport) {
        self.telemetry.tcp_closed();
    }

    fn sent(&self, msg: &Outbound) {
        self.telemetry.message(Direction::Out, &msg.data);
    }
}

struct RuntimeStatus {
    started: Instant,
    listeners: Vec<ListenerStatus>,
    hops: Vec<(SocketAddr, &'static str)>,
    handler: Arc<CoreHandler>,
    snapshot: Option<Arc<SnapshotSlot>>,
    feed: Option<StartedFeed>,
}

impl StatusSource for RuntimeStatus {
    fn status(&self) -> Status {
        let now = Instant::now();
        Status {
            version: env!("CARGO_PKG_VERSION"),
            uptime_secs: self.started.elapsed().as_secs(),
            listeners: self.listeners.clone(),
            next_hops: self
                .hops
                .iter()
                .enumerate()
                .map(|(i, (a, t))| NextHopStatus {
                    address: a.to_string(),
                    transport: t,
                    healthy: self.handler.core().hop_is_up(i, now),
                })
                .collect(),
            snapshot: match (&self.feed, &self.snapshot) {
                (Some(f), _) => f
                    .view
                    .load_full()
                    .and_then(|v| serde_json::to_value(v.base().snapshot.info()).ok()),
                (None, Some(s)) => s.info(),
                (None, None) => None,
            },
            feed: self.feed.as_ref().and_then(|f| {
                let now = crate::feed::node::unix_now();
                serde_json::to_value(f.handle.status(now)).ok()
            }),
            feed_lists: self.feed.as_ref().map_or_else(Vec::new, |f| {
                let now = crate::feed::node::unix_now();
                f.lists
                    .iter()
                    .filter_map(|h| serde_json::to_value(h.status(now)).ok())
                    .collect()
            }),
        }
    }
}

/// How often the runtime's timer calls [`Handler::poll_timeout`].
const TICK: Duration = Duration::from_secs(1);
/// How often the timer thread looks at its stop flag.
const TIMER_WAKE: Duration = Duration::from_millis(100);

/// The runtime's one timer: [`Handler::poll_timeout`] once a second (health probes, state
/// expiry), whatever transports run, its messages sent through `dispatch`. Stops within
/// 100 ms of `stop` being set.
pub fn spawn_timer<H: Handler + ?Sized>(
    handler: Arc<H>,
    dispatch: Arc<Dispatch>,
    stop: Arc<AtomicBool>,
    on_tick: Box<dyn Fn() + Send>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("sip-timer".into())
        .spawn(move || {
            let mut out = Vec::new();
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TIMER_WAKE);
                let now = Instant::now();
                if now.duration_since(last) < TICK {
                    continue;
                }
                last = now;
                handler.poll_timeout(now, &mut out);
                dispatch.send_all(&mut out, now);
                on_tick();
            }
        })
}

/// The running proxy.
pub struct Runtime {
    tokio: tokio::runtime::Runtime,
    udp: Option<UdpTransport>,
    tcp: Option<TcpTransport<CoreHandler>>,
    tls: Option<StreamTransport<TlsLayer, CoreHandler>>,
    admin_stop: Option<tokio::sync::oneshot::Sender<()>>,
    admin: Option<SocketAddr>,
    api_stop: Option<tokio::sync::oneshot::Sender<()>>,
    api: Option<SocketAddr>,
    reloader: Option<FileReloader>,
    stop_timer: Arc<AtomicBool>,
    timer: Option<JoinHandle<()>>,
    log_writer: Option<DecisionLogWriter>,
    handler: Arc<CoreHandler>,
    telemetry: Arc<Telemetry>,
    /// Stops the detection tasks (metrics, shared counters); dropping it does too.
    detection_stop: tokio::sync::watch::Sender<bool>,
    udp_addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
}

impl Runtime {
    /// Starts everything (see the module docs).
    pub fn start(v: &Config) -> Result<Runtime, RuntimeError> {
        let redirect = v.sip.mode == crate::proxy::listen::SipMode::Redirect;
        let telemetry = Arc::new(Telemetry::new());
        let (log, log_writer) = DecisionLog::start(
            Sink::open(&v.decision_log.target)?,
            v.decision_log.queue,
            v.decision_log.include_allowed,
            telemetry.clone(),
        );
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads((v.sip.effective_udp_workers() / 2).max(1))
            .thread_name("fraudwall-io")
            .enable_all()
            .build()
            .map_err(RuntimeError::Start)?;

        let core_cfg = v.core()?;
        if core_cfg.actions.block_response == super::core::BlockResponse::NetworkBlocked603
            && core_cfg.actions.redress_url.is_empty()
        {
            tracing::warn!(
                "actions.block_response = 603 without actions.redress_url: ATIS-1000099's 603+ carries a redress contact; set one"
            );
        }
        let callers = core_cfg.actions.callers();
        let rules = v.policy.compile()?;
        // Behavioural detection: one detector for the policy's `behaviour` stage (judge), the
        // core (observe), `/suspects` and the shared counters; all its memory taken now.
        let detector = if v.detection.enabled {
            let d = crate::detection::Detector::new(&v.detection).map_err(|e| {
                crate::config::ConfigError::Invalid {
                    key: e.key(),
                    reason: e.reason(),
                }
            })?;
            tracing::info!(
                "detection on: {} rules, {} MiB fixed, counters {}",
                v.detection.rules.len(),
                d.memory_bytes() >> 20,
                v.detection.redis.as_deref().unwrap_or("local")
            );
            Some(Arc::new(d))
        } else {
            None
        };
        let detection_metrics = detector.as_ref().map(|_| {
            Arc::new(crate::behaviour::DetectionMetrics::register(
                telemetry.recorder(),
                v.detection.rules.iter().map(|r| r.name.as_str()),
            ))
        });
        let (detection_stop, detection_stopped) = tokio::sync::watch::channel(false);
        if let (Some(d), Some(m)) = (&detector, &detection_metrics) {
            crate::behaviour::spawn(
                tokio.handle(),
                d.clone(),
                m.clone(),
                v.detection
                    .redis
                    .clone()
                    .map(|url| crate::behaviour::shared::SharedConfig {
                        url,
                        interval: v.detection.redis_flush_interval,
                    }),
                detection_stopped,
            );
        }
        let groups = crate::peers::PeerGroups::new(&v.peers, &v.proxy.trusted_peers)
            .map_err(CoreConfigError::from)?;
        let lists = Arc::new(ListSlots::load(&v.lists, &groups, telemetry.clone())?);
        // The list: a central feed (its cache restored before any socket opens), or a
        // snapshot file (or the embedded sample).
        let (screen, snapshot, feed): (Arc<dyn Screen>, _, _) = match &v.feed {
            fc if fc.enabled() => {
                let targets = crate::feed::run::ListTargets {
                    subscribers: lists.subscribers(),
                    protected: lists.protected(),
                    groups: groups.clone(),
                };
                let started = crate::feed::run::start(
                    fc,
                    &targets,
                    telemetry.recorder(),
                    tokio.handle(),
                    std::future::pending(),
                )?;
                let screen = Policy::new(
                    Arc::clone(&started.view),
                    lists.subscribers(),
                    lists.protected(),
                    rules.clone(),
                    callers,
                )
                .with_detector(detector.clone());
                let screen = Arc::new(TimedScreen::new(screen, telemetry.clone()));
                (screen, None, Some(started))
            }
            _ => {
                let slot = Arc::new(SnapshotSlot::load(
                    v.blocklist.snapshot.as_deref(),
                    telemetry.clone(),
                )?);
                let screen = Policy::new(
                    slot.shared(),
                    lists.subscribers(),
                    lists.protected(),
                    rules.clone(),
                    callers,
                )
                .with_detector(detector.clone());
                let screen = Arc::new(TimedScreen::new(screen, telemetry.clone()));
                (screen, Some(slot), None)
            }
        };
        // Changed list files are re-read off the packet path (see `super::lists`).
        let file_slot = snapshot.clone().filter(|_| v.blocklist.snapshot.is_some());
        let reloader = if file_slot.is_some() || lists.has_files() {
            Some(
                FileReloader::start(file_slot, Arc::clone(&lists), v.blocklist.reload_interval)
                    .map_err(RuntimeError::Start)?,
            )
        } else {
            None
        };
        // `SIGHUP` and `POST /reload`: poll the feed now and re-read the list files; both
        // only ask, and return at once.
        let reload: Arc<dyn Fn() + Send + Sync> = {
            let feeds: Vec<_> = feed.iter().flat_map(|f| f.handles().cloned()).collect();
            let files = reloader.as_ref().and_then(FileReloader::requester);
            Arc::new(move || {
                feeds.iter().for_each(|h| h.request_reload());
                if let Some(f) = &files {
                    f.request();
                }
            })
        };
        #[cfg(unix)]
        {
            let r = Arc::clone(&reload);
            crate::feed::run::reload_on_sighup(tokio.handle(), move || r())
                .map_err(RuntimeError::Start)?;
        }
        // The HTTP verdict API screens with the same screen and actions as the core.
        let api_parts = match v.api.listen {
            Some(_) => Some((
                Arc::clone(&screen),
                core_cfg.compile()?,
                core_cfg.proxy.identity_order.clone(),
            )),
            None => None,
        };
        let core = ProxyCore::new(core_cfg, screen)?.with_detector(detector.clone());
        let handler = Arc::new(
            CoreHandler::new(core, telemetry.clone(), log).with_detection(detection_metrics),
        );
        let api = match api_parts {
            Some((screen, compiled, order)) => crate::api::start(
                &v.api,
                &v.tls,
                &tokio,
                crate::api::Screener::new(screen, compiled, Some(handler.clone()))
                    .with_identity_order(order),
                &telemetry,
            )?,
            None => None,
        };
        let (api_addr, api_stop) = match api {
            Some((a, stop)) => (Some(a), Some(stop)),
            None => (None, None),
        };
        let dispatch = Dispatch::new(handler.clone());
        // One connection pool for every stream transport (TCP, and TLS when it runs), so
        // `sip.tcp_max_connections` and `_per_source` bound them together.
        let listen = v.sip.addresses();
        let sip = &v.sip;
        let stream_pool =
            StreamPool::new(sip.tcp_max_connections, sip.tcp_max_connections_per_source);
        let udp_bound = if sip.runs(Transport::Udp) {
            telemetry.udp_workers(sip.effective_udp_workers());
            let cfg = UdpConfig {
                listen: listen.clone(),
                workers: sip.effective_udp_workers(),
                batch: sip.udp_batch,
                max_message: v.limits.max_message_size,
                spread: sip.udp_spread,
                queue_delay: v.overload.enabled(),
                slice: (!sip.udp_sched_slice.is_zero()).then_some(sip.udp_sched_slice),
                realtime_priority: (sip.udp_realtime_priority > 0)
                    .then_some(sip.udp_realtime_priority),
            };
            Some(UdpBound::bind(cfg).map_err(|source| RuntimeError::Bind {
                transport: "udp",
                address: listen[0],
                source,
            })?)
        } else {
            None
        };
        let tcp = if sip.runs(Transport::Tcp) {
            let limits = v.limits.to_limits();
            let framer: Framer = Arc::new(move |b: &[u8]| {
                crate::sip::framing::message_len(b, &limits).map_err(|e| e.reason())
            });
            let cfg = TcpConfig {
                listen: listen.clone(),
                max_connections: sip.tcp_max_connections,
                max_connections_per_source: sip.tcp_max_connections_per_source,
                idle_timeout: sip.tcp_idle_timeout,
                message_timeout: sip.tcp_message_timeout,
                connect_timeout: sip.tcp_connect_timeout,
                max_message: v.limits.max_message_size,
            };
            let t = tokio
                .block_on(start_tcp(
                    &cfg,
                    handler.clone(),
                    framer,
                    stream_pool.clone(),
                    dispatch.clone(),
                ))
                .map_err(|source| RuntimeError::Bind {
                    transport: "tcp",
                    address: listen[0],
                    source,
                })?;
            Some(t)
        } else {
            None
        };
        // TLS: its own port on every listen address, the same stream loop and pool as TCP.
        let tls_server = if sip.runs(Transport::Tls) {
            let metrics = TlsMetrics::register(telemetry.recorder());
            Some(Arc::new(TlsServer::new(&v.tls, metrics.clone())?))
        } else {
            None
        };
        let tls = match &tls_server {
            Some(server) => {
                let hops = v.proxy.hops();
                let wants_client = hops.iter().any(|h| h.transport == Transport::Tls)
                    || v.actions.warn_transport == Transport::Tls
                    || !v.proxy.trusted_peers.is_empty()
                    || !v.sip.allowed_sources.is_empty();
                let client = if wants_client {
                    let ours = v.tls.next_hop_client_certificate.then(|| server.certs());
                    let metrics = TlsMetrics::register(telemetry.recorder());
                    Some(Arc::new(TlsClient::new(&v.tls, ours, metrics)?))
                } else {
                    None
                };
                let names = v
                    .proxy
                    .next_hops
                    .iter()
                    .filter_map(|h| h.server_name.clone().map(|n| (h.address, n)))
                    .collect();
                let mut tls_listen: Vec<SocketAddr> = Vec::new();
                for a in &listen {
                    let t = SocketAddr::new(a.ip(), v.tls.port);
                    if !tls_listen.contains(&t) {
                        tls_listen.push(t);
                    }
                }
                let limits = v.limits.to_limits();
                let framer: Framer = Arc::new(move |b: &[u8]| {
                    crate::sip::framing::message_len(b, &limits).map_err(|e| e.reason())
                });
                let settings = StreamSettings {
                    idle_timeout: sip.tcp_idle_timeout,
                    message_timeout: sip.tcp_message_timeout,
                    connect_timeout: sip.tcp_connect_timeout + v.tls.handshake_timeout,
                    max_message: v.limits.max_message_size,
                    framer,
                };
                let layer = TlsLayer::new(server.clone(), client, names);
                let t = tokio
                    .block_on(StreamTransport::start(
                        &tls_listen,
                        layer,
                        settings,
                        handler.clone(),
                        stream_pool.clone(),
                        dispatch.clone(),
                    ))
                    .map_err(|source| RuntimeError::Bind {
                        transport: "tls",
                        address: tls_listen[0],
                        source,
                    })?;
                Some(t)
            }
            None => None,
        };
        let udp = match udp_bound {
            Some(b) => Some(
                b.start(handler.clone(), dispatch.clone())
                    .map_err(RuntimeError::Start)?,
            ),
            None => None,
        };
        // A redirect server has no next hop to report or be healthy for.
        let hops: Vec<(SocketAddr, &'static str)> = if redirect {
            Vec::new()
        } else {
            v.proxy
                .hops()
                .iter()
                .map(|h| (h.address, h.transport.config_name()))
                .collect()
        };
        telemetry.next_hops(&hops);
        let hop_gauges = (handler.clone(), telemetry.clone(), hops.len());
        // One timer for every transport mode (health probes to any next hop).
        let stop_timer = Arc::new(AtomicBool::new(false));
        let timer = Some(
            spawn_timer(
                handler.clone(),
                dispatch.clone(),
                stop_timer.clone(),
                Box::new(move || {
                    // A changed certificate pair is swapped in; a bad one keeps the old.
                    if let Some(s) = &tls_server {
                        s.reload_if_changed();
                    }
                    let (handler, telemetry, n) = &hop_gauges;
                    let now = Instant::now();
                    for i in 0..*n {
                        telemetry.next_hop_up(i, handler.core().hop_is_up(i, now));
                    }
                }),
            )
            .map_err(RuntimeError::Start)?,
        );
        let udp_addrs = udp
            .as_ref()
            .map(|u| u.local_addrs().to_vec())
            .unwrap_or_default();
        let tcp_addrs = tcp
            .as_ref()
            .map(|t| t.local_addrs().to_vec())
            .unwrap_or_default();

        let mut listeners: Vec<ListenerStatus> = udp_addrs
            .iter()
            .map(|a| ListenerStatus {
                address: a.to_string(),
                transport: "udp",
            })
            .collect();
        listeners.extend(tcp_addrs.iter().map(|a| ListenerStatus {
            address: a.to_string(),
            transport: "tcp",
        }));
        let tls_addrs = tls
            .as_ref()
            .map(|t| t.local_addrs().to_vec())
            .unwrap_or_default();
        listeners.extend(tls_addrs.iter().map(|a| ListenerStatus {
            address: a.to_string(),
            transport: "tls",
        }));
        let status = RuntimeStatus {
            started: Instant::now(),
            listeners,
            hops,
            handler: handler.clone(),
            snapshot: snapshot.clone(),
            feed,
        };

        let (admin, admin_stop) = match v.admin.listen {
            Some(addr) => {
                let tokens = match &v.admin.tokens_file {
                    Some(p) => Some(Arc::new(crate::admin::tokens::TokenFile::open(
                        p,
                        Instant::now(),
                    )?)),
                    None => {
                        tracing::info!(
                            "admin.tokens_file not set: POST /reload is refused (SIGHUP reloads)"
                        );
                        None
                    }
                };
                let l = tokio
                    .block_on(tokio::net::TcpListener::bind(addr))
                    .map_err(|source| RuntimeError::Bind {
                        transport: "admin",
                        address: addr,
                        source,
                    })?;
                let bound = l.local_addr().unwrap_or(addr);
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                let state = AdminState {
                    telemetry: telemetry.clone(),
                    source: Arc::new(status),
                    reload: Some(reload),
                    tokens,
                    detector: detector.clone(),
                };
                tokio.spawn(async move {
                    let stop = async {
                        let _ = rx.await;
                    };
                    if let Err(e) = crate::admin::serve(l, state, stop).await {
                        tracing::error!("admin listener stopped: {e}");
                    }
                });
                (Some(bound), Some(tx))
            }
            None => (None, None),
        };

        tracing::info!(
            "fraudwall {} ({} mode) listening on udp {:?} tcp {:?} tls {:?}, next hops {:?}, admin {:?}, api {:?}",
            env!("CARGO_PKG_VERSION"),
            v.sip.mode.as_str(),
            udp_addrs,
            tcp_addrs,
            tls_addrs,
            if redirect {
                Vec::new()
            } else {
                v.proxy.hops().iter().map(|h| h.address).collect::<Vec<_>>()
            },
            admin,
            api_addr
        );
        Ok(Runtime {
            tokio,
            udp,
            tcp,
            tls,
            admin_stop,
            admin,
            api_stop,
            api: api_addr,
            reloader,
            stop_timer,
            timer,
            log_writer: Some(log_writer),
            handler,
            telemetry,
            detection_stop,
            udp_addrs,
            tcp_addrs,
            tls_addrs,
        })
    }

    /// Bound UDP addresses.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// Bound TCP addresses.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// Bound TLS addresses.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The HTTP verdict API's address.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api
    }

    /// The metrics.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Blocks until SIGINT or SIGTERM.
    pub fn wait_for_signal(&self) {
        self.tokio.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
        });
        tracing::info!("stopping");
    }

    /// Stops every listener and thread, and flushes the decision log.
    pub fn shutdown(mut self) {
        let _ = self.detection_stop.send(true);
        if let Some(tx) = self.admin_stop.take() {
            let _ = tx.send(());
        }
        if let Some(tx) = self.api_stop.take() {
            let _ = tx.send(());
        }
        if let Some(u) = self.udp.take() {
            u.shutdown();
        }
        self.stop_timer.store(true, Ordering::Relaxed);
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
        if let Some(mut t) = self.tcp.take() {
            t.shutdown();
        }
        if let Some(mut t) = self.tls.take() {
            t.shutdown();
        }
        drop(self.reloader.take());
        // The decision log's senders live in the handler, shared with the transports' tasks;
        // dropping the tokio runtime ends those tasks, then the writer drains and exits.
        let Runtime {
            tokio,
            handler,
            log_writer,
            ..
        } = self;
        tokio.shutdown_timeout(Duration::from_secs(1));
        drop(handler);
        if let Some(w) = log_writer {
            w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklist::Snapshot;
    use arc_swap::ArcSwapOption;

    #[test]
    fn the_core_gets_every_section_whole() {
        let text = "[proxy]\nnext_hops = [\"127.0.0.1:5080\", \"[::1]:5080\"]\nnext_hop_transport = \"udp\"\n\
                    record_route = true\ntrusted_peers = [\"10.0.0.0/8\"]\nidentity_order = [\"from\"]\n\
                    [actions]\nblock_response = 603\ntag_header = \"X-Scam\"\ntag_display_label = \"FRAUD?\"\n\
                    warn_uri = \"sip:announce@127.0.0.1:5090\"\nanonymous = \"tag\"\n\
                    [health]\nprobe_interval = \"2s\"\nmax_missed = 1\ndown_for = \"10s\"\n\
                    [limits]\nmax_vias = 90\n[sip]\nadvertise = \"sbc.example.net\"\n";
        let v = crate::config::Config::from_toml_str(text).unwrap();
        v.validate().unwrap();
        let c = v.core().unwrap();
        assert_eq!(c.proxy, v.proxy);
        assert_eq!(c.actions, v.actions);
        assert_eq!(c.health, v.health);
        assert_eq!(c.limits, v.limits);
        assert_eq!(c.sip, v.sip);
        // The core accepts what the config validated.
        let screen =
            Policy::<Snapshot>::over(Arc::new(ArcSwapOption::empty()), c.actions.callers());
        assert!(ProxyCore::new(c, Arc::new(screen)).is_ok());
    }
}
