//! [`CoreConfig`]: everything the proxy core needs to know, fixed at start.
//!
//! Every field has a default (see [`CoreConfig::default`]), so an empty `[proxy]` table is a
//! working proxy that forwards to `127.0.0.1:5080` over UDP, screens P-Asserted-Identity and
//! Remote-Party-ID (trusted peers only) and From, tags with `X-Fraud-Label` and blocks with
//! `608 Rejected`. [`CoreConfig::validate`] (run by [`super::ProxyCore::new`]) turns a bad value
//! into a [`CoreConfigError`] that names the key and says how to fix it.
//!
//! ```toml
//! next_hops = [{ address = "10.0.0.20:5060" }, { address = "10.0.0.21:5060", transport = "tcp" }]
//! record_route = false
//! advertise = "192.0.2.10:5060"        # host[:port] written in Via and Record-Route
//! aliases = ["proxy.example.net"]      # other names of this proxy (loop detection, OPTIONS, Route)
//! trusted_peers = ["10.0.0.0/8"]       # PAI and Remote-Party-ID are believed only from these
//! allowed_sources = ["10.0.0.0/8"]     # who may send at all (empty: anyone)
//! foreign_route = "ignore"             # or "reject": a Route naming neither us nor a next hop
//! identity_order = ["pai", "rpid", "from"]
//! numbering_profile = "generic"
//! [health]
//! probe_interval_ms = 5000
//! [actions.block]
//! status = 608
//! redress_url = "https://redress.example.net/jcard?c={category}"
//! ```

use super::dialog::DialogKey;
use crate::numbers::{NumberingProfile, ProfileError};
use crate::policy::CallerActions;
use crate::proxy::Transport;
use crate::sip::Limits;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// The longest display-name label the tag action writes (the CNAM limit).
pub const MAX_DISPLAY_LABEL: usize = 15;

/// The proxy core's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoreConfig {
    /// Where requests go, in order of preference: the first hop not marked down is used, so
    /// every message of a call follows the same hop while it is up. At least one.
    pub next_hops: Vec<NextHop>,
    /// Insert `Record-Route: <sip:ADDR;lr>` into dialog-creating requests so in-dialog requests
    /// come back through the proxy.
    pub record_route: bool,
    /// `host[:port]` written into Via and Record-Route. Default: the local address the message
    /// arrived on (set this when listening on a wildcard address or behind NAT).
    pub advertise: Option<String>,
    /// Other hostnames or addresses (`host` or `host:port`) that mean this proxy, for loop
    /// detection, our own Route headers and OPTIONS addressed to the proxy.
    pub aliases: Vec<String>,
    /// Peers (`10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`) whose P-Asserted-Identity and
    /// Remote-Party-ID are believed. From anyone else both are ignored and removed from the
    /// forwarded request (RFC 3325 §5).
    pub trusted_peers: Vec<String>,
    /// Sources (`10.0.0.1`, `10.0.0.0/8`) the proxy takes messages from; anything from
    /// elsewhere is dropped unanswered and counted. Empty (the default): any source. The next
    /// hops, the warn service and `trusted_peers` are always allowed. These networks (with
    /// `trusted_peers`) are also where in-dialog requests may be routed: list the SBCs.
    pub allowed_sources: Vec<String>,
    /// What an initial request whose Route names neither this proxy nor a next hop gets:
    /// `ignore` (the default: its Route headers are removed and it goes to the next hop) or
    /// `reject` (`403 Forbidden`). It is never sent where that Route points.
    pub foreign_route: ForeignRoute,
    /// The key of the dialog proofs written into Record-Route (see [`DialogKey`]); the
    /// runtime reads it from `proxy.dialog_key_file`. `None`: a random key per process.
    #[serde(skip)]
    pub dialog_key: Option<DialogKey>,
    /// The identity headers screened: `pai`, `rpid`, `from`. Every value of every listed
    /// header is screened and the most severe verdict wins; the order breaks ties.
    pub identity_order: Vec<IdentitySource>,
    /// The numbering profile that normalizes callers (`cn`, `nanp`, `generic`).
    pub numbering_profile: String,
    /// Next-hop health probing.
    pub health: HealthConfig,
    /// How each action is carried out.
    pub actions: ActionsConfig,
    /// Message size and header limits.
    pub limits: LimitsConfig,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            next_hops: vec![NextHop {
                address: SocketAddr::from(([127, 0, 0, 1], 5080)),
                transport: Transport::Udp,
            }],
            record_route: false,
            advertise: None,
            aliases: Vec::new(),
            trusted_peers: Vec::new(),
            allowed_sources: Vec::new(),
            foreign_route: ForeignRoute::Ignore,
            dialog_key: None,
            identity_order: vec![
                IdentitySource::Pai,
                IdentitySource::Rpid,
                IdentitySource::From,
            ],
            numbering_profile: "generic".to_string(),
            health: HealthConfig::default(),
            actions: ActionsConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

/// One next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NextHop {
    /// Its address (an IP literal and port: the core does no DNS).
    pub address: SocketAddr,
    /// The transport to reach it (default UDP).
    #[serde(default = "udp")]
    pub transport: Transport,
}

fn udp() -> Transport {
    Transport::Udp
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

/// Where a caller identity is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentitySource {
    /// P-Asserted-Identity (RFC 3325), only from trusted peers.
    Pai,
    /// Remote-Party-ID (draft-ietf-sip-privacy-04, still common on trunks), only from
    /// trusted peers.
    Rpid,
    /// From.
    From,
}

impl IdentitySource {
    /// The lowercase config/log name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentitySource::Pai => "pai",
            IdentitySource::Rpid => "rpid",
            IdentitySource::From => "from",
        }
    }
}

/// Next-hop health: OPTIONS probes and passive marking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Send an OPTIONS probe to each hop this often (0: no probes; hops marked down by a send
    /// error come back after `down_for_ms`).
    pub probe_interval_ms: u64,
    /// A hop that leaves this many probes in a row unanswered is marked down.
    pub max_missed: u32,
    /// How long a hop stays down after a send error or missed probes, unless a probe answer
    /// brings it back first.
    pub down_for_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            probe_interval_ms: 5_000,
            max_missed: 3,
            down_for_ms: 30_000,
        }
    }
}

/// How the actions are carried out, and the actions for callers that are not numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsConfig {
    /// The tag action.
    pub tag: TagConfig,
    /// The warn action.
    pub warn: WarnConfig,
    /// The block action.
    pub block: BlockConfig,
    /// Actions for anonymous and invalid callers (default allow). Used by
    /// [`crate::policy::SnapshotScreen`]; kept here so one config table says it all.
    pub callers: CallerActions,
}

/// The tag action: a header, and optionally a display-name label.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TagConfig {
    /// The header name (default `X-Fraud-Label`).
    pub header: String,
    /// The header value before the `;category=..;score=..` parameters (default
    /// `suspected-fraud`).
    pub value: String,
    /// A label (at most 15 characters, the CNAM limit) written as the display name of
    /// P-Asserted-Identity, e.g. `FRAUD?`. Empty: the display name is left alone.
    pub display_label: String,
    /// Also write the label into From's display name.
    pub label_from: bool,
}

impl Default for TagConfig {
    fn default() -> Self {
        TagConfig {
            header: "X-Fraud-Label".to_string(),
            value: "suspected-fraud".to_string(),
            display_label: String::new(),
            label_from: false,
        }
    }
}

/// The warn action: forward through an announcement service.
///
/// The Request-URI is rewritten to `service_uri`; the original Request-URI travels in the
/// `original_to_header` header (as `<uri>`) and the reason in `reason_header`
/// (`category=..;score=..`), so the service can play its announcement and then complete the
/// call to the original callee. With no `service_uri`, warn falls back to tag (logged as such).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarnConfig {
    /// The announcement service's SIP URI, e.g. `sip:announce@10.0.0.5:5090`.
    pub service_uri: String,
    /// Where to send warned calls. Default: the host and port of `service_uri` (an IP literal).
    pub service_address: Option<SocketAddr>,
    /// The transport to the service.
    #[serde(default = "udp")]
    pub transport: Transport,
    /// Header carrying the original Request-URI (default `X-Fraud-Original-To`).
    pub original_to_header: String,
    /// Header carrying the reason (default `X-Fraud-Reason`).
    pub reason_header: String,
}

impl Default for WarnConfig {
    fn default() -> Self {
        WarnConfig {
            service_uri: String::new(),
            service_address: None,
            transport: Transport::Udp,
            original_to_header: "X-Fraud-Original-To".to_string(),
            reason_header: "X-Fraud-Reason".to_string(),
        }
    }
}

/// The block action: which rejection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockConfig {
    /// `608` (Rejected, RFC 8688, the default) or `603` for 603+ (ATIS-1000099, required in
    /// the US for calls blocked on analytics): `603 Network Blocked` with
    /// `Reason: SIP;cause=603;text="v=analytics1;url=<redress_url>";location=RLN`.
    pub status: u16,
    /// The redress URL (where a wrongly blocked caller asks for redress), sent as
    /// `Call-Info: <url>;purpose=jcard` with either status, and as the `url` of the 603+
    /// Reason (which ATIS-1000099 wants: an HTTPS URL). `{category}` is replaced by the
    /// entry's category. Empty: no Call-Info, and a 603+ Reason without `url`.
    pub redress_url: String,
}

impl Default for BlockConfig {
    fn default() -> Self {
        BlockConfig {
            status: 608,
            redress_url: String::new(),
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
    /// `next_hops` is empty.
    #[error("next_hops is empty: give at least one next hop, e.g. next_hops = [{{ address = \"127.0.0.1:5080\" }}]")]
    NoNextHop,
    /// `advertise` is not `host[:port]`.
    #[error("advertise = {0:?} is not host[:port]: write e.g. \"192.0.2.10:5060\" or \"[2001:db8::1]:5060\"")]
    BadAdvertise(String),
    /// An alias is not `host[:port]`.
    #[error("aliases: {0:?} is not host[:port]")]
    BadAlias(String),
    /// A trusted peer is not an address or CIDR.
    #[error("trusted_peers: {0:?} is not an IP address or CIDR such as 10.0.0.0/8")]
    BadTrustedPeer(String),
    /// An allowed source is not an address or CIDR.
    #[error("allowed_sources: {0:?} is not an IP address or CIDR such as 10.0.0.0/8")]
    BadAllowedSource(String),
    /// No dialog key was given and the system's random source failed.
    #[error("dialog_key: no key given and the system random source failed ({0}): set proxy.dialog_key_file")]
    NoRandomKey(String),
    /// `identity_order` is empty or repeats a source.
    #[error("identity_order must list pai, rpid and/or from, each at most once")]
    BadIdentityOrder,
    /// Unknown numbering profile.
    #[error("numbering_profile: {0}")]
    Profile(#[from] ProfileError),
    /// The tag header name is not a SIP token.
    #[error("actions.tag.header = {0:?} is not a valid header name (letters, digits, '-')")]
    BadTagHeader(String),
    /// The tag value holds characters a header value cannot.
    #[error(
        "actions.tag.value = {0:?} must be non-empty printable ASCII without ';' or line breaks"
    )]
    BadTagValue(String),
    /// The display label is too long or not printable.
    #[error("actions.tag.display_label = {0:?} must be at most 15 printable ASCII characters without '\"' or '\\\\'")]
    BadDisplayLabel(String),
    /// The warn service URI is not a usable SIP URI.
    #[error("actions.warn.service_uri = {0:?} must be a sip: URI whose host is an IP literal, or set actions.warn.service_address")]
    BadWarnService(String),
    /// A warn header name is not a SIP token.
    #[error("actions.warn: header name {0:?} is not valid (letters, digits, '-')")]
    BadWarnHeader(String),
    /// The block status is neither 608 nor 603.
    #[error("actions.block.status = {0}: use 608 (Rejected, RFC 8688) or 603 (603+ \"Network Blocked\", ATIS-1000099)")]
    BadBlockStatus(u16),
    /// The redress URL cannot be written into a header.
    #[error(
        "actions.block.redress_url = {0:?} must be printable ASCII without '<', '>' or spaces"
    )]
    BadRedressUrl(String),
    /// `health.max_missed` is zero while probing.
    #[error("health.max_missed must be at least 1 when health.probe_interval_ms is set")]
    BadMaxMissed,
    /// A limit is zero.
    #[error("limits.{0} must be greater than zero")]
    ZeroLimit(&'static str),
}

/// An IP network (`addr/len`), for trusted peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// The network holding exactly `ip`.
    pub(crate) fn host(ip: IpAddr) -> Cidr {
        Cidr {
            addr: ip,
            len: if ip.is_ipv4() { 32 } else { 128 },
        }
    }

    /// Whether `ip` is inside. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.len),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.len),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

impl FromStr for Cidr {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| ())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l.trim().parse::<u8>().map_err(|_| ())?,
            None => max,
        };
        if len > max {
            return Err(());
        }
        Ok(Cidr { addr, len })
    }
}

/// A `host[:port]` this proxy answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    /// Lowercase host, IPv6 without brackets.
    pub(crate) host: Box<str>,
    /// The port, if given.
    pub(crate) port: Option<u16>,
}

impl HostPort {
    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
    pub(crate) fn parse(s: &str) -> Option<HostPort> {
        let s = s.trim();
        if s.is_empty() || s.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
            return None;
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']')?;
            h.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?.parse().ok()?),
            };
            return Some(HostPort {
                host: h.to_ascii_lowercase().into(),
                port,
            });
        }
        if s.parse::<std::net::Ipv6Addr>().is_ok() {
            return Some(HostPort {
                host: s.to_ascii_lowercase().into(),
                port: None,
            });
        }
        let (h, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (s, None),
        };
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return None;
        }
        Some(HostPort {
            host: h.to_ascii_lowercase().into(),
            port,
        })
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

/// The configuration in the form the hot path uses: parsed once, checked once.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) advertise: Option<HostPort>,
    pub(crate) aliases: Vec<HostPort>,
    pub(crate) trusted: Vec<Cidr>,
    /// `allowed_sources` with the next hops and the warn service added; empty: any source.
    pub(crate) sources: Vec<Cidr>,
    /// The next hops' addresses, for routing confinement.
    pub(crate) hop_addrs: Vec<SocketAddr>,
    pub(crate) profile: NumberingProfile,
    /// Where warned calls go, if warn is configured.
    pub(crate) warn_dest: Option<(SocketAddr, Transport)>,
}

impl CoreConfig {
    /// Checks every value and compiles the hot-path form.
    pub(crate) fn compile(&self) -> Result<Compiled, CoreConfigError> {
        if self.next_hops.is_empty() {
            return Err(CoreConfigError::NoNextHop);
        }
        let advertise = match &self.advertise {
            Some(a) => {
                Some(HostPort::parse(a).ok_or_else(|| CoreConfigError::BadAdvertise(a.clone()))?)
            }
            None => None,
        };
        let aliases = self
            .aliases
            .iter()
            .map(|a| HostPort::parse(a).ok_or_else(|| CoreConfigError::BadAlias(a.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let trusted = self
            .trusted_peers
            .iter()
            .map(|p| {
                p.parse::<Cidr>()
                    .map_err(|()| CoreConfigError::BadTrustedPeer(p.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut sources = self
            .allowed_sources
            .iter()
            .map(|p| {
                p.parse::<Cidr>()
                    .map_err(|()| CoreConfigError::BadAllowedSource(p.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hop_addrs: Vec<SocketAddr> = self.next_hops.iter().map(|h| h.address).collect();
        let mut order = self.identity_order.clone();
        order.sort_by_key(|s| *s as u8);
        order.dedup();
        if self.identity_order.is_empty() || order.len() != self.identity_order.len() {
            return Err(CoreConfigError::BadIdentityOrder);
        }
        let profile = NumberingProfile::by_name(&self.numbering_profile)?;
        let tag = &self.actions.tag;
        if !is_token(&tag.header) {
            return Err(CoreConfigError::BadTagHeader(tag.header.clone()));
        }
        if tag.value.is_empty() || !printable(&tag.value) || tag.value.contains(';') {
            return Err(CoreConfigError::BadTagValue(tag.value.clone()));
        }
        if tag.display_label.chars().count() > MAX_DISPLAY_LABEL
            || !printable(&tag.display_label)
            || tag.display_label.contains(['"', '\\'])
        {
            return Err(CoreConfigError::BadDisplayLabel(tag.display_label.clone()));
        }
        let warn = &self.actions.warn;
        for h in [&warn.original_to_header, &warn.reason_header] {
            if !is_token(h) {
                return Err(CoreConfigError::BadWarnHeader(h.clone()));
            }
        }
        let warn_dest = if warn.service_uri.is_empty() {
            None
        } else {
            let bad = || CoreConfigError::BadWarnService(warn.service_uri.clone());
            if !printable(&warn.service_uri)
                || warn.service_uri.contains([' ', '<', '>'])
                || !warn.service_uri.to_ascii_lowercase().starts_with("sip:")
            {
                return Err(bad());
            }
            let addr = match warn.service_address {
                Some(a) => a,
                None => uri_socket_addr(&warn.service_uri).ok_or_else(bad)?,
            };
            Some((addr, warn.transport))
        };
        let block = &self.actions.block;
        if block.status != 608 && block.status != 603 {
            return Err(CoreConfigError::BadBlockStatus(block.status));
        }
        if !printable(&block.redress_url) || block.redress_url.contains([' ', '<', '>']) {
            return Err(CoreConfigError::BadRedressUrl(block.redress_url.clone()));
        }
        if self.health.probe_interval_ms > 0 && self.health.max_missed == 0 {
            return Err(CoreConfigError::BadMaxMissed);
        }
        if self.limits.max_message_size == 0 {
            return Err(CoreConfigError::ZeroLimit("max_message_size"));
        }
        let l = &self.limits;
        for (v, key) in [
            (l.max_headers, "max_headers"),
            (l.max_header_line, "max_header_line"),
            (l.max_vias, "max_vias"),
        ] {
            if v == 0 {
                return Err(CoreConfigError::ZeroLimit(key));
            }
        }
        if !sources.is_empty() {
            sources.extend(hop_addrs.iter().map(|a| Cidr::host(a.ip())));
            sources.extend(warn_dest.map(|(a, _)| Cidr::host(a.ip())));
            sources.extend(trusted.iter().copied());
        }
        Ok(Compiled {
            advertise,
            aliases,
            trusted,
            sources,
            hop_addrs,
            profile,
            warn_dest,
        })
    }
}

/// The socket address of a `sip:[user@]ip[:port][;params]` URI whose host is an IP literal.
fn uri_socket_addr(uri: &str) -> Option<SocketAddr> {
    let rest = uri.get(4..)?;
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
    }

    #[test]
    fn empty_toml_is_the_default() {
        let c: CoreConfig = toml::from_str("").unwrap();
        assert_eq!(c, CoreConfig::default());
    }

    #[test]
    fn toml_with_every_table() {
        let c: CoreConfig = toml::from_str(
            r#"
            next_hops = [{ address = "10.0.0.20:5060" }, { address = "[2001:db8::1]:5070", transport = "tcp" }]
            record_route = true
            advertise = "192.0.2.10:5060"
            aliases = ["proxy.example.net", "[2001:db8::9]:5060"]
            trusted_peers = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]
            identity_order = ["from", "pai"]
            [health]
            probe_interval_ms = 1000
            [actions.tag]
            display_label = "FRAUD?"
            label_from = true
            [actions.warn]
            service_uri = "sip:announce@10.0.0.5:5090"
            [actions.block]
            status = 603
            [actions.callers]
            anonymous = "tag"
            [limits]
            max_headers = 64
            "#,
        )
        .unwrap();
        assert_eq!(c.next_hops[1].transport, Transport::Tcp);
        let k = c.compile().unwrap();
        assert_eq!(
            k.warn_dest,
            Some(("10.0.0.5:5090".parse().unwrap(), Transport::Udp))
        );
        assert!(k
            .trusted
            .iter()
            .any(|n| n.contains("10.1.2.3".parse().unwrap())));
        assert!(k
            .trusted
            .iter()
            .any(|n| n.contains("2001:db8:1::5".parse().unwrap())));
        assert!(!k
            .trusted
            .iter()
            .any(|n| n.contains("192.0.2.2".parse().unwrap())));
        assert_eq!(k.aliases[1].host.as_ref(), "2001:db8::9");
    }

    #[test]
    fn the_default_serializes_to_toml_and_back() {
        let text = toml::to_string(&CoreConfig::default()).unwrap();
        assert!(text.contains("X-Fraud-Label"), "{text}");
        let back: CoreConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, CoreConfig::default());
    }

    #[test]
    fn unknown_key_is_rejected_by_name() {
        let e = toml::from_str::<CoreConfig>("record_rout = true").unwrap_err();
        assert!(e.to_string().contains("record_rout"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(CoreConfig, &str)> = vec![
            (
                CoreConfig {
                    next_hops: vec![],
                    ..Default::default()
                },
                "next_hops",
            ),
            (
                CoreConfig {
                    advertise: Some("a b".into()),
                    ..Default::default()
                },
                "advertise",
            ),
            (
                CoreConfig {
                    trusted_peers: vec!["10.0.0.0/33".into()],
                    ..Default::default()
                },
                "trusted_peers",
            ),
            (
                CoreConfig {
                    identity_order: vec![IdentitySource::Pai, IdentitySource::Pai],
                    ..Default::default()
                },
                "identity_order",
            ),
            (
                CoreConfig {
                    numbering_profile: "xx".into(),
                    ..Default::default()
                },
                "numbering_profile",
            ),
        ];
        for (c, key) in cases {
            let e = c.compile().unwrap_err().to_string();
            assert!(e.contains(key), "{e} should name {key}");
        }
        let err = |f: fn(&mut CoreConfig)| {
            let mut c = CoreConfig::default();
            f(&mut c);
            c.compile().unwrap_err()
        };
        let e = err(|c| c.actions.tag.display_label = "0123456789abcdef".into());
        assert!(matches!(e, CoreConfigError::BadDisplayLabel(_)));
        let e = err(|c| c.actions.block.status = 486);
        assert!(e.to_string().contains("actions.block.status"));
        let e = err(|c| c.actions.warn.service_uri = "sip:announce@media.example.net".into());
        assert!(matches!(e, CoreConfigError::BadWarnService(_)));
        let e = err(|c| c.actions.tag.header = "X Fraud".into());
        assert!(matches!(e, CoreConfigError::BadTagHeader(_)));
        let e = err(|c| c.allowed_sources = vec!["10.0.0.0/99".into()]);
        assert!(e.to_string().starts_with("allowed_sources"), "{e}");
        let e = toml::from_str::<CoreConfig>("foreign_route = \"follow\"").unwrap_err();
        assert!(e.to_string().contains("foreign_route"), "{e}");
        let e = err(|c| c.limits.max_vias = 0);
        assert_eq!(e.to_string(), "limits.max_vias must be greater than zero");
    }

    #[test]
    fn host_port_forms() {
        let hp = HostPort::parse("[::1]:5060").unwrap();
        assert_eq!((hp.host.as_ref(), hp.port), ("::1", Some(5060)));
        let hp = HostPort::parse("2001:db8::1").unwrap();
        assert_eq!((hp.host.as_ref(), hp.port), ("2001:db8::1", None));
        let hp = HostPort::parse("Proxy.Example.NET").unwrap();
        assert_eq!((hp.host.as_ref(), hp.port), ("proxy.example.net", None));
        assert!(HostPort::parse("host:notaport").is_none());
        assert!(HostPort::parse("").is_none());
    }

    #[test]
    fn cidr_edges() {
        let n: Cidr = "10.1.0.0/15".parse().unwrap();
        assert!(n.contains("10.0.255.255".parse().unwrap()));
        assert!(n.contains("10.1.0.1".parse().unwrap()));
        assert!(!n.contains("10.2.0.0".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(all.contains("::ffff:203.0.113.9".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));
        assert!("10.0.0.1/x".parse::<Cidr>().is_err());
    }
}
