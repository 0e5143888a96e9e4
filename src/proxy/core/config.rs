//! The proxy core's configuration: the `[proxy]`, `[health]`, `[actions]` and `[limits]`
//! sections of the configuration file, each a struct that *is* its TOML section, and
//! [`CoreConfig`], which hands them (with `[sip]`) to [`super::ProxyCore::new`] whole.
//!
//! Values are typed where they are read (addresses, networks, durations, actions), so the
//! file is checked once, at parse time, with the line and key of any mistake; what serde
//! cannot check (ranges, header tokens, a warn URI's address) is checked by each section's
//! `validate`, which both `fraudwall config check` and [`super::ProxyCore::new`] call. Every
//! error names the key as the file spells it and says how to fix it.
//!
//! ```toml
//! [proxy]
//! next_hops = ["10.0.0.20:5060", { address = "10.0.0.21:5061", transport = "tls", server_name = "switch.example.net" }]
//! next_hop_transport = "udp"          # for entries that do not name their own
//! record_route = false
//! aliases = ["proxy.example.net"]      # other names of this proxy (loop detection, OPTIONS, Route)
//! trusted_peers = ["10.0.0.0/8"]       # PAI and Remote-Party-ID are believed only from these
//! foreign_route = "ignore"             # or "reject": a Route naming neither us nor a next hop
//! identity_order = ["pai", "rpid", "from"]
//! numbering_profile = "generic"
//! [health]
//! probe_interval = "5s"
//! [actions]
//! block_response = 608
//! redress_url = "https://redress.example.net/jcard?c={category}"
//! [limits]
//! max_vias = 70
//! ```

use super::dialog::DialogKey;
use crate::blocklist::Action;
use crate::config::value::{empty_none, socket_addr, Cidr, HostPort};
use crate::numbers::{NumberingProfile, ProfileError};
use crate::peers::{PeerGroupConfig, PeerGroups, PeersError};
use crate::policy::CallerActions;
use crate::proxy::listen::{SipConfig, SipMode};
use crate::proxy::Transport;
use crate::sip::Limits;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The longest display-name label the tag action writes (the CNAM limit).
pub const MAX_DISPLAY_LABEL: usize = 15;

/// Everything the core is built from: the sections it reads, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreConfig {
    /// `[sip]`: the core reads `listen` (and each listener's `advertise`), `advertise` and
    /// `allowed_sources`.
    pub sip: SipConfig,
    /// `[proxy]`.
    pub proxy: ProxyConfig,
    /// `[health]`.
    pub health: HealthConfig,
    /// `[actions]`.
    pub actions: ActionsConfig,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// `[redirect]`: the answers of redirect mode (`sip.mode = "redirect"`).
    pub redirect: RedirectConfig,
    /// `[overload]`: when new calls are shed.
    pub overload: super::OverloadConfig,
    /// `[[peers]]`: the peer groups (with `proxy.trusted_peers`, a group of its own).
    pub peers: Vec<PeerGroupConfig>,
    /// The key of the dialog proofs written into Record-Route (see [`DialogKey`]), read from
    /// `proxy.dialog_key_file` by the runtime. `None`: a random key per process.
    pub dialog_key: Option<DialogKey>,
    /// The TLS listener's port (`tls.port`): the port written for this node on the TLS side.
    pub tls_port: u16,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            sip: SipConfig::default(),
            proxy: ProxyConfig::default(),
            health: HealthConfig::default(),
            actions: ActionsConfig::default(),
            limits: LimitsConfig::default(),
            redirect: RedirectConfig::default(),
            overload: super::OverloadConfig::default(),
            peers: Vec::new(),
            dialog_key: None,
            tls_port: crate::proxy::tls::TlsConfig::default().port,
        }
    }
}

/// `[proxy]`: forwarding and caller identity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Where requests go, in order of preference: the first hop not marked down is used, so
    /// every message of a call follows the same hop while it is up. At least one.
    pub next_hops: Vec<NextHopEntry>,
    /// The transport of next hops that do not name their own.
    pub next_hop_transport: Transport,
    /// Insert `Record-Route: <sip:ADDR;lr>` into dialog-creating requests so in-dialog requests
    /// come back through the proxy.
    pub record_route: bool,
    /// Other hostnames or addresses (`host` or `host:port`) that mean this proxy, for loop
    /// detection, our own Route headers and OPTIONS addressed to the proxy.
    pub aliases: Vec<HostPort>,
    /// Peers (`10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`) whose P-Asserted-Identity and
    /// Remote-Party-ID are believed. From anyone else both are ignored and removed from the
    /// forwarded request (RFC 3325 §5). The older form of a `[[peers]]` group with
    /// `trust_identity = true`: these networks are the group `trusted_peers`.
    pub trusted_peers: Vec<Cidr>,
    /// What an initial request whose Route names neither this proxy nor a next hop gets.
    pub foreign_route: ForeignRoute,
    /// The file keying the dialog proof (`None`, written `""`: a random key per process).
    #[serde(with = "empty_none")]
    pub dialog_key_file: Option<PathBuf>,
    /// The identity headers screened: `pai`, `rpid`, `from`. Every value of every listed
    /// header is screened and the most severe verdict wins; the order breaks ties.
    pub identity_order: Vec<IdentitySource>,
    /// The numbering profile that normalizes callers (`cn`, `nanp`, `generic`).
    pub numbering_profile: String,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            next_hops: vec![NextHopEntry::at(SocketAddr::from(([127, 0, 0, 1], 5080)))],
            next_hop_transport: Transport::Udp,
            record_route: false,
            aliases: Vec::new(),
            trusted_peers: Vec::new(),
            foreign_route: ForeignRoute::Ignore,
            dialog_key_file: None,
            identity_order: vec![
                IdentitySource::Pai,
                IdentitySource::Rpid,
                IdentitySource::From,
            ],
            numbering_profile: "generic".to_string(),
        }
    }
}

impl ProxyConfig {
    /// The next hops with their transports resolved, in failover order.
    pub fn hops(&self) -> Vec<NextHop> {
        self.next_hops
            .iter()
            .map(|h| NextHop {
                address: h.address,
                transport: h.transport.unwrap_or(self.next_hop_transport),
            })
            .collect()
    }
}

/// One `proxy.next_hops` entry: `"IP:PORT"`, or a table
/// `{ address = "IP:PORT", transport = "tls", server_name = "switch.example.net" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHopEntry {
    /// Its address (an IP literal and port: the core does no DNS).
    pub address: SocketAddr,
    /// Its transport (`None`: `proxy.next_hop_transport`).
    pub transport: Option<Transport>,
    /// The name its TLS certificate must carry (`None`: its IP address).
    pub server_name: Option<String>,
}

impl NextHopEntry {
    /// A hop at `address` on the default transport.
    pub fn at(address: SocketAddr) -> NextHopEntry {
        NextHopEntry {
            address,
            transport: None,
            server_name: None,
        }
    }

    /// Parses the text form `IP:PORT` (as `--next-hop` takes it).
    pub fn parse(s: &str) -> Result<NextHopEntry, String> {
        socket_addr::parse(s).map(NextHopEntry::at)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NextHopText {
    Text(String),
    Table(NextHopTable),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NextHopTable {
    #[serde(with = "socket_addr")]
    address: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transport: Option<Transport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_name: Option<String>,
}

impl<'de> Deserialize<'de> for NextHopEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NextHopText::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a next hop is \"IP:PORT\" or { address = \"IP:PORT\", transport = \"udp\"|\"tcp\"|\"tls\", server_name = \"name\" }",
            )
        })? {
            NextHopText::Text(s) => NextHopEntry::parse(&s).map_err(serde::de::Error::custom),
            NextHopText::Table(t) => Ok(NextHopEntry {
                address: t.address,
                transport: t.transport,
                server_name: t.server_name,
            }),
        }
    }
}

impl Serialize for NextHopEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.transport.is_none() && self.server_name.is_none() {
            return s.collect_str(&self.address);
        }
        NextHopTable {
            address: self.address,
            transport: self.transport,
            server_name: self.server_name.clone(),
        }
        .serialize(s)
    }
}

/// A next hop as the core uses it: an address and the transport to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Its address.
    pub address: SocketAddr,
    /// The transport to reach it.
    pub transport: Transport,
}

impl From<NextHop> for NextHopEntry {
    fn from(h: NextHop) -> NextHopEntry {
        NextHopEntry {
            address: h.address,
            transport: Some(h.transport),
            server_name: None,
        }
    }
}

/// What an initial request whose Route names a foreign destination gets (rule 6 of the
/// module guide in [`super`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForeignRoute {
    /// The Route headers are removed and the request goes to the next hop.
    Ignore,
    /// `403 Forbidden`.
    Reject,
}

impl ForeignRoute {
    /// The lowercase config name.
    pub fn as_str(self) -> &'static str {
        match self {
            ForeignRoute::Ignore => "ignore",
            ForeignRoute::Reject => "reject",
        }
    }
}

pub use crate::policy::IdentitySource;

/// `[health]`: OPTIONS probes and passive marking of the next hops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Send an OPTIONS probe to each hop this often (zero: no probes; hops marked down by a
    /// send error come back after `down_for`). At least 1 s when set.
    #[serde(with = "crate::config::value::duration")]
    pub probe_interval: Duration,
    /// A hop that leaves this many probes in a row unanswered is marked down, 1 to 100.
    pub max_missed: u32,
    /// How long a hop stays down after a send error or missed probes, unless a probe answer
    /// brings it back first. At least 1 s.
    #[serde(with = "crate::config::value::duration")]
    pub down_for: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            probe_interval: Duration::from_secs(5),
            max_missed: 3,
            down_for: Duration::from_secs(30),
        }
    }
}

/// `actions.block_response`: which rejection a blocked call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum BlockResponse {
    /// `608 Rejected` with the RFC 8688 redress jCard.
    Rejected608,
    /// 603+ (ATIS-1000099): `603 Network Blocked` with its Reason header (and the jCard).
    NetworkBlocked603,
}

impl BlockResponse {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            BlockResponse::Rejected608 => 608,
            BlockResponse::NetworkBlocked603 => 603,
        }
    }
}

impl From<BlockResponse> for u16 {
    fn from(b: BlockResponse) -> u16 {
        b.code()
    }
}

impl TryFrom<u16> for BlockResponse {
    type Error = String;
    fn try_from(v: u16) -> Result<Self, String> {
        match v {
            608 => Ok(BlockResponse::Rejected608),
            603 => Ok(BlockResponse::NetworkBlocked603),
            other => Err(format!(
                "block_response = {other}: use 608 (Rejected, RFC 8688) or 603 (603+, \"Network Blocked\")"
            )),
        }
    }
}

/// `[actions]`: what each verdict does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsConfig {
    /// The block action's response.
    pub block_response: BlockResponse,
    /// The redress URL sent as `Call-Info: <url>;purpose=jcard` with a block (`{category}`
    /// is replaced by the entry's category). Empty: no Call-Info.
    pub redress_url: String,
    /// The tag header's name.
    pub tag_header: String,
    /// The tag header's value before the `;category=..;score=..` parameters.
    pub tag_value: String,
    /// A label (at most 15 characters, the CNAM limit) written as the display name of
    /// P-Asserted-Identity, e.g. `FRAUD?`. Empty: the display name is left alone.
    pub tag_display_label: String,
    /// Also write the label into From's display name.
    pub tag_from_display: bool,
    /// The announcement service's SIP URI, e.g. `sip:announce@10.0.0.5:5090`. Empty: warned
    /// calls are tagged instead.
    pub warn_uri: String,
    /// Where to send warned calls (`None`, written `""`: the host and port of `warn_uri`,
    /// which must then be an IP literal).
    #[serde(with = "crate::config::value::opt_socket_addr")]
    pub warn_address: Option<SocketAddr>,
    /// The transport to the announcement service.
    pub warn_transport: Transport,
    /// Header carrying the original Request-URI to the announcement service.
    pub warn_original_to_header: String,
    /// Header carrying the reason to the announcement service.
    pub warn_reason_header: String,
    /// Action for anonymous callers.
    pub anonymous: Action,
    /// Action for callers that are not a valid number.
    pub invalid: Action,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        ActionsConfig {
            block_response: BlockResponse::Rejected608,
            redress_url: String::new(),
            tag_header: "X-Fraud-Label".to_string(),
            tag_value: "suspected-fraud".to_string(),
            tag_display_label: String::new(),
            tag_from_display: false,
            warn_uri: String::new(),
            warn_address: None,
            warn_transport: Transport::Udp,
            warn_original_to_header: "X-Fraud-Original-To".to_string(),
            warn_reason_header: "X-Fraud-Reason".to_string(),
            anonymous: Action::Allow,
            invalid: Action::Allow,
        }
    }
}

impl ActionsConfig {
    /// The actions for callers that are not numbers, as the screen takes them.
    pub fn callers(&self) -> CallerActions {
        CallerActions {
            anonymous: self.anonymous,
            invalid: self.invalid,
        }
    }
}

/// `redirect.allow_response`: what an allowed call gets in redirect mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum RedirectAllow {
    /// `302 Moved Temporarily` back to the Request-URI, with
    /// `Reason: SIP;cause=302;text="no-fraud-detected"`.
    Moved302,
    /// `404 Not Found`: the switch moves to its next route.
    NotFound404,
    /// `503 Service Unavailable`: the switch moves to its next route.
    Unavailable503,
}

impl RedirectAllow {
    /// The status code and reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            RedirectAllow::Moved302 => (302, "Moved Temporarily"),
            RedirectAllow::NotFound404 => (404, "Not Found"),
            RedirectAllow::Unavailable503 => (503, "Service Unavailable"),
        }
    }
}

impl From<RedirectAllow> for u16 {
    fn from(a: RedirectAllow) -> u16 {
        a.status().0
    }
}

impl TryFrom<u16> for RedirectAllow {
    type Error = String;
    fn try_from(v: u16) -> Result<Self, String> {
        match v {
            302 => Ok(RedirectAllow::Moved302),
            404 => Ok(RedirectAllow::NotFound404),
            503 => Ok(RedirectAllow::Unavailable503),
            other => Err(format!(
                "allow_response = {other}: use 302 (back to the Request-URI), 404 or 503"
            )),
        }
    }
}

/// `redirect.other_response`: what requests other than INVITE, ACK, CANCEL and OPTIONS get
/// in redirect mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum OtherResponse {
    /// `405 Method Not Allowed` with `Allow: INVITE, ACK, CANCEL, OPTIONS`.
    MethodNotAllowed405,
    /// `403 Forbidden`.
    Forbidden403,
}

impl OtherResponse {
    /// The status code and reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            OtherResponse::MethodNotAllowed405 => (405, "Method Not Allowed"),
            OtherResponse::Forbidden403 => (403, "Forbidden"),
        }
    }
}

impl From<OtherResponse> for u16 {
    fn from(o: OtherResponse) -> u16 {
        o.status().0
    }
}

impl TryFrom<u16> for OtherResponse {
    type Error = String;
    fn try_from(v: u16) -> Result<Self, String> {
        match v {
            405 => Ok(OtherResponse::MethodNotAllowed405),
            403 => Ok(OtherResponse::Forbidden403),
            other => Err(format!("other_response = {other}: use 405 or 403")),
        }
    }
}

/// `[redirect]`: the answers of redirect mode (`sip.mode = "redirect"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedirectConfig {
    /// The answer to an allowed call.
    pub allow_response: RedirectAllow,
    /// The answer to requests other than INVITE, ACK, CANCEL and OPTIONS.
    pub other_response: OtherResponse,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            allow_response: RedirectAllow::Moved302,
            other_response: OtherResponse::MethodNotAllowed405,
        }
    }
}

/// The `[limits]` section: bounds on what one message may cost, checked while parsing.
///
/// Sized for carrier traffic (the reasons are in [`crate::sip::Limits`]): raise them only if
/// real traffic is refused (`fraudwall_parse_errors_total{reason="too_many_vias"}` etc.),
/// lowering them saves nothing on normal calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest message accepted, in bytes, 65,535 by default (the UDP maximum). A larger
    /// datagram is dropped and a larger stream message closes its connection, counted as
    /// `too_large`.
    pub max_message_size: usize,
    /// Most header lines in one message, 256 by default (a 70-hop path writes up to 71 Vias
    /// and 70 Record-Routes). Over it: `too_many_headers`.
    pub max_headers: usize,
    /// Longest start line or header line (folded lines included), in bytes, 16,384 by
    /// default (a Via or Record-Route list on one line, an Identity header). Over it:
    /// `line_too_long`.
    pub max_header_line: usize,
    /// Most Via values in one message (lines and comma-separated values), 128 by default:
    /// Max-Forwards 70 bounds a legitimate path to 71. Over it: `too_many_vias`.
    pub max_vias: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::DEFAULT;
        LimitsConfig {
            max_message_size: l.max_message_size,
            max_headers: l.max_headers,
            max_header_line: l.max_header_line,
            max_vias: l.max_vias,
        }
    }
}

impl LimitsConfig {
    /// The parser's form.
    pub fn to_limits(self) -> Limits {
        Limits {
            max_message_size: self.max_message_size,
            max_headers: self.max_headers,
            max_header_line: self.max_header_line,
            max_vias: self.max_vias,
        }
    }
}

/// A configuration value the core cannot use: names the key and says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreConfigError {
    /// A value of `[overload]`.
    #[error(transparent)]
    Overload(#[from] super::OverloadConfigError),
    /// `proxy.next_hops` is empty.
    #[error(
        "proxy.next_hops: empty: give at least one next hop, e.g. next_hops = [\"127.0.0.1:5080\"]"
    )]
    NoNextHop,
    /// No dialog key was given and the system's random source failed.
    #[error("proxy.dialog_key_file: no key given and the system random source failed ({0}): set proxy.dialog_key_file")]
    NoRandomKey(String),
    /// `identity_order` is empty or repeats a source.
    #[error("proxy.identity_order: list pai, rpid and/or from, each at most once")]
    BadIdentityOrder,
    /// Unknown numbering profile.
    #[error("proxy.numbering_profile: {0}")]
    Profile(#[from] ProfileError),
    /// A `[[peers]]` group (or `proxy.trusted_peers`) is wrong.
    #[error(transparent)]
    Peers(#[from] PeersError),
    /// A header name is not a SIP token.
    #[error("actions.{key}: {value:?} is not a SIP header name (letters, digits, '-', no colon)")]
    BadHeaderName {
        /// The key (`tag_header`, `warn_original_to_header`, `warn_reason_header`).
        key: &'static str,
        /// The value given.
        value: String,
    },
    /// The tag value holds characters a header value cannot.
    #[error(
        "actions.tag_value: {0:?} must be non-empty printable ASCII without ';' or line breaks"
    )]
    BadTagValue(String),
    /// The display label is too long or not printable.
    #[error("actions.tag_display_label: {0:?} must be at most 15 printable ASCII characters (the CNAM limit) without '\"' or '\\\\'")]
    BadDisplayLabel(String),
    /// The warn service URI is not a usable SIP URI.
    #[error("actions.warn_uri: {0:?} must be a sip: URI whose host is an IP literal, or set actions.warn_address")]
    BadWarnService(String),
    /// The redress URL cannot be written into a header.
    #[error("actions.redress_url: {0:?} must be printable ASCII without '<', '>' or spaces")]
    BadRedressUrl(String),
    /// A health value is out of range.
    #[error("health.{key}: {reason}")]
    BadHealth {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// A limit is out of range.
    #[error("limits.{key}: {reason}")]
    BadLimit {
        /// The key.
        key: &'static str,
        /// Why and what is allowed.
        reason: String,
    },
    /// A next hop or the warn service uses a transport that `sip.transports` does not run.
    #[error(
        "{key}: transport {transport:?} is not in sip.transports: add it there or change this"
    )]
    TransportNotRunning {
        /// The key.
        key: String,
        /// The transport.
        transport: Transport,
    },
}

impl CoreConfigError {
    /// The key at fault, as the file spells it (`proxy.next_hops`, `limits.max_vias`).
    pub fn key(&self) -> String {
        match self {
            CoreConfigError::NoNextHop => "proxy.next_hops".into(),
            CoreConfigError::NoRandomKey(_) => "proxy.dialog_key_file".into(),
            CoreConfigError::BadIdentityOrder => "proxy.identity_order".into(),
            CoreConfigError::Profile(_) => "proxy.numbering_profile".into(),
            CoreConfigError::Peers(e) => e.key.clone(),
            CoreConfigError::BadHeaderName { key, .. } => format!("actions.{key}"),
            CoreConfigError::BadTagValue(_) => "actions.tag_value".into(),
            CoreConfigError::BadDisplayLabel(_) => "actions.tag_display_label".into(),
            CoreConfigError::BadWarnService(_) => "actions.warn_uri".into(),
            CoreConfigError::BadRedressUrl(_) => "actions.redress_url".into(),
            CoreConfigError::BadHealth { key, .. } => format!("health.{key}"),
            CoreConfigError::BadLimit { key, .. } => format!("limits.{key}"),
            CoreConfigError::TransportNotRunning { key, .. } => key.clone(),
            CoreConfigError::Overload(e) => format!("overload.{}", e.key),
        }
    }
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'_' | b'!' | b'%' | b'*' | b'+' | b'`' | b'\'' | b'~'
                )
        })
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl ProxyConfig {
    /// Checks what serde cannot: at least one hop, a usable identity order and profile.
    pub fn validate(&self) -> Result<(), CoreConfigError> {
        if self.next_hops.is_empty() {
            return Err(CoreConfigError::NoNextHop);
        }
        self.validate_identity()
    }

    /// The identity order and numbering profile (all a redirect server reads here).
    fn validate_identity(&self) -> Result<(), CoreConfigError> {
        let mut order = self.identity_order.clone();
        order.sort_by_key(|s| *s as u8);
        order.dedup();
        if self.identity_order.is_empty() || order.len() != self.identity_order.len() {
            return Err(CoreConfigError::BadIdentityOrder);
        }
        NumberingProfile::by_name(self.numbering_profile.trim())?;
        Ok(())
    }
}

impl HealthConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), CoreConfigError> {
        let bad = |key, reason: String| Err(CoreConfigError::BadHealth { key, reason });
        if !self.probe_interval.is_zero() && self.probe_interval < Duration::from_secs(1) {
            return bad(
                "probe_interval",
                format!(
                    "{:?} is shorter than 1s (probes are sent from a once-a-second timer); use \"1s\" or more, or \"0s\" for none",
                    self.probe_interval
                ),
            );
        }
        if !(1..=100).contains(&self.max_missed) {
            return bad(
                "max_missed",
                format!("{} is out of range 1 to 100", self.max_missed),
            );
        }
        if self.down_for < Duration::from_secs(1) {
            return bad(
                "down_for",
                format!(
                    "{:?} is shorter than 1s: a failed hop would be retried at once",
                    self.down_for
                ),
            );
        }
        Ok(())
    }
}

impl ActionsConfig {
    /// Checks header names and values, the label, the warn URI and the redress URL; returns
    /// where warned calls go (`None`: warn is not configured).
    pub fn validate(&self) -> Result<Option<(SocketAddr, Transport)>, CoreConfigError> {
        for (key, h) in [
            ("tag_header", &self.tag_header),
            ("warn_original_to_header", &self.warn_original_to_header),
            ("warn_reason_header", &self.warn_reason_header),
        ] {
            if !is_token(h) {
                return Err(CoreConfigError::BadHeaderName {
                    key,
                    value: h.clone(),
                });
            }
        }
        let v = &self.tag_value;
        if v.is_empty() || !printable(v) || v.contains(';') {
            return Err(CoreConfigError::BadTagValue(v.clone()));
        }
        let l = &self.tag_display_label;
        if l.chars().count() > MAX_DISPLAY_LABEL || !printable(l) || l.contains(['"', '\\']) {
            return Err(CoreConfigError::BadDisplayLabel(l.clone()));
        }
        let r = &self.redress_url;
        if !printable(r) || r.contains([' ', '<', '>']) {
            return Err(CoreConfigError::BadRedressUrl(r.clone()));
        }
        let uri = &self.warn_uri;
        if uri.is_empty() {
            return Ok(None);
        }
        let bad = || CoreConfigError::BadWarnService(uri.clone());
        let lower = uri.to_ascii_lowercase();
        if !printable(uri)
            || uri.contains([' ', '<', '>'])
            || !(lower.starts_with("sip:") || lower.starts_with("sips:"))
        {
            return Err(bad());
        }
        let addr = match self.warn_address {
            Some(a) => a,
            None => uri_socket_addr(uri).ok_or_else(bad)?,
        };
        Ok(Some((addr, self.warn_transport)))
    }
}

impl LimitsConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), CoreConfigError> {
        if !(512..=65535).contains(&self.max_message_size) {
            return Err(CoreConfigError::BadLimit {
                key: "max_message_size",
                reason: format!("{} is out of range 512 to 65535", self.max_message_size),
            });
        }
        for (v, key) in [
            (self.max_headers, "max_headers"),
            (self.max_header_line, "max_header_line"),
            (self.max_vias, "max_vias"),
        ] {
            if v == 0 {
                return Err(CoreConfigError::BadLimit {
                    key,
                    reason: "must be greater than zero".into(),
                });
            }
        }
        Ok(())
    }
}

/// The tag action as the hot path uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagConfig {
    pub(crate) header: String,
    pub(crate) value: String,
    pub(crate) display_label: String,
    pub(crate) label_from: bool,
}

/// The warn action as the hot path uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WarnConfig {
    pub(crate) service_uri: String,
    pub(crate) original_to_header: String,
    pub(crate) reason_header: String,
}

/// The block action as the hot path uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockConfig {
    pub(crate) status: u16,
    pub(crate) redress_url: String,
}

/// A listener's own advertised address, matched by the local address messages arrive on.
#[derive(Debug, Clone)]
pub(crate) struct ListenerAdvertise {
    pub(crate) address: SocketAddr,
    pub(crate) advertise: HostPort,
}

/// The configuration in the form the hot path uses: parsed once, checked once.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// `sip.advertise`.
    pub(crate) advertise: Option<HostPort>,
    /// Listeners with an `advertise` of their own.
    pub(crate) listener_advertise: Vec<ListenerAdvertise>,
    pub(crate) aliases: Vec<HostPort>,
    /// The peer groups (`[[peers]]` and `proxy.trusted_peers`).
    pub(crate) peers: PeerGroups,
    /// `allowed_sources` with the next hops and the warn service added; empty: any source.
    pub(crate) sources: Vec<Cidr>,
    /// The next hops, transports resolved.
    pub(crate) hops: Vec<NextHop>,
    /// The next hops' addresses, for routing confinement.
    pub(crate) hop_addrs: Vec<SocketAddr>,
    pub(crate) profile: NumberingProfile,
    /// Where warned calls go, if warn is configured.
    pub(crate) warn_dest: Option<(SocketAddr, Transport)>,
    pub(crate) tag: TagConfig,
    pub(crate) warn: WarnConfig,
    pub(crate) block: BlockConfig,
    /// Next-hop health.
    pub(crate) health: HealthConfig,
    /// `tls.port`.
    pub(crate) tls_port: u16,
    /// The `sip.listen` addresses (UDP and TCP).
    pub(crate) listen: Vec<SocketAddr>,
    /// `sip.mode = "redirect"`: answer every request, forward nothing.
    pub(crate) redirect: Option<RedirectConfig>,
}

impl CoreConfig {
    /// The core's sections out of a whole configuration file.
    pub fn from_file_config(c: &crate::config::Config) -> CoreConfig {
        CoreConfig {
            sip: c.sip.clone(),
            proxy: c.proxy.clone(),
            health: c.health,
            actions: c.actions.clone(),
            limits: c.limits,
            redirect: c.redirect,
            overload: c.overload,
            peers: c.peers.clone(),
            dialog_key: None,
            tls_port: c.tls.port,
        }
    }

    /// Checks every section the core reads (the same checks `fraudwall config check` runs)
    /// and the transports the hops need.
    pub fn validate(&self) -> Result<(), CoreConfigError> {
        self.compile().map(|_| ())
    }

    /// Checks every value and compiles the hot-path form.
    pub(crate) fn compile(&self) -> Result<Compiled, CoreConfigError> {
        let redirect = self.sip.mode == SipMode::Redirect;
        // A redirect server forwards nothing: it needs no next hop, and its configured ones
        // are neither probed nor trusted.
        if redirect {
            self.proxy.validate_identity()?;
        } else {
            self.proxy.validate()?;
        }
        self.health.validate()?;
        self.limits.validate()?;
        self.overload.validate()?;
        let warn_dest = self.actions.validate()?;
        let hops = if redirect {
            Vec::new()
        } else {
            self.proxy.hops()
        };
        for (i, h) in hops.iter().enumerate() {
            if !self.sip.runs(h.transport) {
                return Err(CoreConfigError::TransportNotRunning {
                    key: if self.proxy.next_hops[i].transport.is_some() {
                        format!("proxy.next_hops[{i}].transport")
                    } else {
                        "proxy.next_hop_transport".into()
                    },
                    transport: h.transport,
                });
            }
        }
        if let Some((_, t)) = warn_dest {
            if !self.sip.runs(t) {
                return Err(CoreConfigError::TransportNotRunning {
                    key: "actions.warn_transport".into(),
                    transport: t,
                });
            }
        }
        let profile = NumberingProfile::by_name(self.proxy.numbering_profile.trim())?;
        let peers = PeerGroups::new(&self.peers, &self.proxy.trusted_peers)?;
        let hop_addrs: Vec<SocketAddr> = hops.iter().map(|h| h.address).collect();
        let mut sources = self.sip.allowed_sources.clone();
        if !sources.is_empty() {
            sources.extend(hop_addrs.iter().map(|a| Cidr::host(a.ip())));
            sources.extend(warn_dest.map(|(a, _)| Cidr::host(a.ip())));
            sources.extend(peers.networks().map(|(n, _)| *n));
        }
        let a = &self.actions;
        Ok(Compiled {
            advertise: self.sip.advertise.clone(),
            listener_advertise: self
                .sip
                .listen
                .iter()
                .filter_map(|l| {
                    l.advertise.clone().map(|advertise| ListenerAdvertise {
                        address: l.address,
                        advertise,
                    })
                })
                .collect(),
            aliases: self.proxy.aliases.clone(),
            peers,
            sources,
            hops,
            hop_addrs,
            profile,
            warn_dest,
            tag: TagConfig {
                header: a.tag_header.clone(),
                value: a.tag_value.clone(),
                display_label: a.tag_display_label.clone(),
                label_from: a.tag_from_display,
            },
            warn: WarnConfig {
                service_uri: a.warn_uri.clone(),
                original_to_header: a.warn_original_to_header.clone(),
                reason_header: a.warn_reason_header.clone(),
            },
            block: BlockConfig {
                status: a.block_response.code(),
                redress_url: a.redress_url.clone(),
            },
            health: self.health,
            tls_port: self.tls_port,
            listen: self.sip.addresses(),
            redirect: (self.sip.mode == SipMode::Redirect).then_some(self.redirect),
        })
    }
}

/// The socket address of a `sip:[user@]ip[:port][;params]` URI whose host is an IP literal.
fn uri_socket_addr(uri: &str) -> Option<SocketAddr> {
    let rest = uri.split_once(':')?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = rest.split([';', '?']).next()?;
    let hp = HostPort::parse(hostport)?;
    let ip: IpAddr = hp.host.parse().ok()?;
    Some(SocketAddr::new(ip, hp.port.unwrap_or(5060)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_compiles() {
        let c = CoreConfig::default().compile().unwrap();
        assert!(c.warn_dest.is_none());
        assert_eq!(c.profile.name(), "generic");
        assert_eq!(c.block.status, 608);
    }

    #[test]
    fn sections_with_every_form() {
        let proxy: ProxyConfig = toml::from_str(
            r#"
            next_hops = ["10.0.0.20:5060", { address = "[2001:db8::1]:5070", transport = "tcp" }]
            record_route = true
            aliases = ["proxy.example.net", "[2001:db8::9]:5060"]
            trusted_peers = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]
            identity_order = ["from", "pai"]
            "#,
        )
        .unwrap();
        let actions: ActionsConfig = toml::from_str(
            "tag_display_label = \"FRAUD?\"\ntag_from_display = true\nwarn_uri = \"sip:announce@10.0.0.5:5090\"\nblock_response = 603\nanonymous = \"tag\"",
        )
        .unwrap();
        let c = CoreConfig {
            proxy,
            actions,
            limits: toml::from_str("max_headers = 64").unwrap(),
            health: toml::from_str("probe_interval = \"1s\"").unwrap(),
            ..Default::default()
        };
        let k = c.compile().unwrap();
        assert_eq!(k.hops[0].transport, Transport::Udp);
        assert_eq!(k.hops[1].transport, Transport::Tcp);
        assert_eq!(
            k.warn_dest,
            Some(("10.0.0.5:5090".parse().unwrap(), Transport::Udp))
        );
        assert!(k.peers.trusted("10.1.2.3".parse().unwrap()));
        assert!(k.peers.trusted("2001:db8:1::5".parse().unwrap()));
        assert!(!k.peers.trusted("192.0.2.2".parse().unwrap()));
        assert_eq!(k.aliases[1].host.as_ref(), "2001:db8::9");
        assert_eq!(k.block.status, 603);
        assert_eq!(c.actions.callers().anonymous, Action::Tag);
        assert_eq!(k.health.probe_interval, Duration::from_secs(1));
    }

    #[test]
    fn sections_serialize_to_toml_and_back() {
        let p = ProxyConfig {
            next_hops: vec![
                NextHopEntry::at("127.0.0.1:5080".parse().unwrap()),
                NextHopEntry {
                    address: "127.0.0.1:5061".parse().unwrap(),
                    transport: Some(Transport::Tcp),
                    server_name: Some("switch.example.net".into()),
                },
            ],
            ..Default::default()
        };
        let back: ProxyConfig = toml::from_str(&toml::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let a = ActionsConfig::default();
        let text = toml::to_string(&a).unwrap();
        assert!(text.contains("X-Fraud-Label"), "{text}");
        assert_eq!(toml::from_str::<ActionsConfig>(&text).unwrap(), a);
    }

    #[test]
    fn unknown_key_is_rejected_by_name() {
        let e = toml::from_str::<ProxyConfig>("record_rout = true").unwrap_err();
        assert!(e.to_string().contains("record_rout"), "{e}");
        let e = toml::from_str::<ProxyConfig>("foreign_route = \"follow\"").unwrap_err();
        assert!(e.to_string().contains("follow"), "{e}");
        let e = toml::from_str::<ActionsConfig>("block_response = 486").unwrap_err();
        assert!(e.to_string().contains("608"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = |f: fn(&mut CoreConfig)| {
            let mut c = CoreConfig::default();
            f(&mut c);
            c.compile().unwrap_err()
        };
        let cases: Vec<(CoreConfigError, &str)> = vec![
            (err(|c| c.proxy.next_hops.clear()), "proxy.next_hops"),
            (
                err(|c| c.proxy.identity_order = vec![IdentitySource::Pai, IdentitySource::Pai]),
                "proxy.identity_order",
            ),
            (
                err(|c| c.proxy.numbering_profile = "xx".into()),
                "proxy.numbering_profile",
            ),
            (
                err(|c| c.actions.tag_display_label = "0123456789abcdef".into()),
                "actions.tag_display_label",
            ),
            (
                err(|c| c.actions.warn_uri = "sip:announce@media.example.net".into()),
                "actions.warn_uri",
            ),
            (
                err(|c| c.actions.tag_header = "X Fraud".into()),
                "actions.tag_header",
            ),
            (err(|c| c.limits.max_vias = 0), "limits.max_vias"),
            (
                err(|c| c.health.probe_interval = Duration::from_millis(200)),
                "health.probe_interval",
            ),
            (err(|c| c.health.max_missed = 0), "health.max_missed"),
            (
                err(|c| c.sip.transports = vec![Transport::Tcp]),
                "proxy.next_hop_transport",
            ),
        ];
        for (e, key) in cases {
            assert_eq!(e.key(), key, "{e}");
            assert!(
                e.to_string().starts_with(key),
                "{e} should start with {key}"
            );
        }
    }
}
