//! The `[sip]` section: where SIP is received, on which transports, and how the transports
//! behave ([`SipConfig`]). It is read once from the configuration file and handed whole to the
//! transports and the core (the core reads `listen`, `advertise` and `allowed_sources`).
//!
//! ```toml
//! [sip]
//! listen = ["0.0.0.0:5060", { address = "192.0.2.10:5060", advertise = "sbc.example.net" }]
//! advertise = ""           # host[:port] for Via/Record-Route on every listener without its own
//! transports = ["udp", "tcp"]
//! ```
//!
//! What the proxy writes as its own address (Via sent-by, Record-Route), per message:
//! 1. the listener's own `advertise`, else `sip.advertise`;
//! 2. else the local address the message arrived on: on a listener bound to a specific
//!    address that address, on one bound to `0.0.0.0` or `[::]` the datagram's destination
//!    address (`IP_PKTINFO`) or the accepted connection's local address, so a peer on any
//!    interface gets an address it can answer.
//!
//! An advertised `host` without a port takes the port the message arrived on; with a port,
//! that port is written for UDP and TCP (TLS has its own listener port, written as it is).

use crate::config::value::{empty_none, socket_addr, Cidr, HostPort};
use crate::config::ConfigError;
use crate::proxy::udp::UdpSpread;
use crate::proxy::Transport;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::SocketAddr;
use std::time::Duration;

/// `[sip]`: listeners and transports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// What fraudwall is on the SIP path: an inline proxy (`"proxy"`) or a redirect server
    /// (`"redirect"`) that answers every INVITE with its verdict and forwards nothing.
    pub mode: SipMode,
    /// Addresses SIP is received on, each with every transport of `transports`.
    pub listen: Vec<Listener>,
    /// Transports on every listen address (at least one).
    pub transports: Vec<Transport>,
    /// `host[:port]` written in Via and Record-Route for listeners without their own
    /// `advertise`. `None` (`""`): the address each message arrived on.
    #[serde(with = "empty_none")]
    pub advertise: Option<HostPort>,
    /// UDP worker threads (0 = one per core).
    pub udp_workers: usize,
    /// How datagrams are spread over the UDP workers: `random` (per datagram, the default),
    /// `cpu`, `flow` (the kernel's flow hash) or `shared` (one socket).
    pub udp_spread: UdpSpread,
    /// The scheduler time slice the UDP workers ask for (Linux 6.12+); `0s`: the kernel's.
    #[serde(with = "crate::config::value::duration")]
    pub udp_sched_slice: Duration,
    /// Datagrams per `recvmmsg`/`sendmmsg`, 1 to 256.
    pub udp_batch: usize,
    /// `SCHED_FIFO` priority of the UDP workers, 1 to 99; 0 = normal scheduling.
    pub udp_realtime_priority: u8,
    /// Stream connections open at once (accepted plus opened to next hops).
    pub tcp_max_connections: usize,
    /// Connections accepted from one source IP address at once.
    pub tcp_max_connections_per_source: usize,
    /// A connection that completes no message for this long is closed.
    #[serde(with = "crate::config::value::duration")]
    pub tcp_idle_timeout: Duration,
    /// Each message must arrive whole within this long of its first byte.
    #[serde(with = "crate::config::value::duration")]
    pub tcp_message_timeout: Duration,
    /// Time allowed to open a connection to a next hop.
    #[serde(with = "crate::config::value::duration")]
    pub tcp_connect_timeout: Duration,
    /// Sources SIP is taken from (empty = any source).
    pub allowed_sources: Vec<Cidr>,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            mode: SipMode::Proxy,
            listen: vec![Listener::at(SocketAddr::from(([127, 0, 0, 1], 5060)))],
            transports: vec![Transport::Udp, Transport::Tcp],
            advertise: None,
            udp_workers: 0,
            udp_spread: UdpSpread::Shared,
            udp_sched_slice: Duration::from_micros(100),
            udp_batch: 1,
            udp_realtime_priority: 0,
            tcp_max_connections: 4096,
            tcp_max_connections_per_source: 64,
            tcp_idle_timeout: Duration::from_secs(120),
            tcp_message_timeout: Duration::from_secs(10),
            tcp_connect_timeout: Duration::from_secs(2),
            allowed_sources: Vec::new(),
        }
    }
}

/// `sip.mode`: how fraudwall stands on the SIP path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SipMode {
    /// The inline proxy: screened calls are forwarded to the next hops.
    #[default]
    Proxy,
    /// A redirect server (RFC 3261 §8.3): each initial INVITE is answered with its verdict
    /// (302, 404/503, 608/603+) and nothing is ever forwarded.
    Redirect,
}

impl SipMode {
    /// The config name, which is also the decision log's `front`: `proxy`, `redirect`.
    pub fn as_str(self) -> &'static str {
        match self {
            SipMode::Proxy => "proxy",
            SipMode::Redirect => "redirect",
        }
    }
}

impl std::str::FromStr for SipMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "proxy" => Ok(SipMode::Proxy),
            "redirect" => Ok(SipMode::Redirect),
            other => Err(format!(
                "{other:?} is not a mode: use \"proxy\" or \"redirect\""
            )),
        }
    }
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

impl SipConfig {
    /// Checks the values serde cannot (ranges, emptiness); the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            return Err(invalid(
                "sip.listen",
                "empty: at least one address is needed",
            ));
        }
        if self.transports.is_empty() {
            return Err(invalid(
                "sip.transports",
                "empty: enable \"udp\", \"tcp\" or both",
            ));
        }
        if self.udp_workers > 1024 {
            return Err(invalid(
                "sip.udp_workers",
                format!("{} is too many (at most 1024)", self.udp_workers),
            ));
        }
        if !(1..=256).contains(&self.udp_batch) {
            return Err(invalid(
                "sip.udp_batch",
                format!("{} is out of range 1 to 256", self.udp_batch),
            ));
        }
        if !self.udp_sched_slice.is_zero()
            && !(Duration::from_micros(100)..=Duration::from_millis(100))
                .contains(&self.udp_sched_slice)
        {
            return Err(invalid(
                "sip.udp_sched_slice",
                format!(
                    "{:?} is out of range 100us to 100ms (0s = the kernel's default)",
                    self.udp_sched_slice
                ),
            ));
        }
        if self.udp_realtime_priority > 99 {
            return Err(invalid(
                "sip.udp_realtime_priority",
                format!(
                    "{} is out of range 1 to 99 (0 = normal scheduling)",
                    self.udp_realtime_priority
                ),
            ));
        }
        if self.tcp_max_connections == 0 {
            return Err(invalid("sip.tcp_max_connections", "must be at least 1"));
        }
        if self.tcp_max_connections_per_source == 0 {
            return Err(invalid(
                "sip.tcp_max_connections_per_source",
                "must be at least 1",
            ));
        }
        for (key, d) in [
            ("sip.tcp_idle_timeout", self.tcp_idle_timeout),
            ("sip.tcp_message_timeout", self.tcp_message_timeout),
            ("sip.tcp_connect_timeout", self.tcp_connect_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be more than 0s"));
            }
        }
        Ok(())
    }

    /// Whether `t` is in `transports`.
    pub fn runs(&self, t: Transport) -> bool {
        self.transports.contains(&t)
    }

    /// The listen addresses, each once, in order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::with_capacity(self.listen.len());
        for l in &self.listen {
            if !out.contains(&l.address) {
                out.push(l.address);
            }
        }
        out
    }

    /// UDP worker threads, resolved (0 = one per core).
    pub fn effective_udp_workers(&self) -> usize {
        match self.udp_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// One `sip.listen` entry: `"IP:PORT"`, or `{ address = "IP:PORT", advertise = "host[:port]" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The address bound (`0.0.0.0` or `[::]` for every interface).
    pub address: SocketAddr,
    /// What this listener writes as its own address in Via and Record-Route (`None`: see
    /// `sip.advertise`).
    pub advertise: Option<HostPort>,
}

impl Listener {
    /// A listener on `address` with no advertised name of its own.
    pub fn at(address: SocketAddr) -> Listener {
        Listener {
            address,
            advertise: None,
        }
    }

    /// Parses the text form `IP:PORT` (as `--listen` takes it).
    pub fn parse(s: &str) -> Result<Listener, String> {
        socket_addr::parse(s).map(Listener::at)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ListenerText {
    Text(String),
    Table(ListenerTable),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerTable {
    #[serde(with = "socket_addr")]
    address: SocketAddr,
    #[serde(default, with = "empty_none")]
    advertise: Option<HostPort>,
}

impl<'de> Deserialize<'de> for Listener {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match ListenerText::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a listener is \"IP:PORT\" or { address = \"IP:PORT\", advertise = \"host[:port]\" }",
            )
        })? {
            ListenerText::Text(s) => Listener::parse(&s).map_err(serde::de::Error::custom),
            ListenerText::Table(t) => Ok(Listener {
                address: t.address,
                advertise: t.advertise,
            }),
        }
    }
}

impl Serialize for Listener {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.advertise {
            None => s.collect_str(&self.address),
            Some(a) => ListenerTable {
                address: self.address,
                advertise: Some(a.clone()),
            }
            .serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_in_both_forms() {
        let c: SipConfig = toml::from_str(
            "listen = [\"0.0.0.0:5060\", { address = \"[::]:5070\", advertise = \"sbc.example.net\" }]\nadvertise = \"192.0.2.1\"",
        )
        .unwrap();
        assert_eq!(c.listen[0], Listener::at("0.0.0.0:5060".parse().unwrap()));
        assert_eq!(
            c.listen[1].advertise.as_ref().map(|h| h.host.as_ref()),
            Some("sbc.example.net")
        );
        assert_eq!(c.advertise, HostPort::parse("192.0.2.1"));
        c.validate().unwrap();
        let back: SipConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_values_say_how_to_write_them() {
        let e = toml::from_str::<SipConfig>("listen = [\"nowhere\"]").unwrap_err();
        assert!(e.to_string().contains("IP:PORT"), "{e}");
        let e = toml::from_str::<SipConfig>("transports = [\"sctp\"]").unwrap_err();
        assert!(e.to_string().contains("sctp"), "{e}");
        let e = toml::from_str::<SipConfig>("advertise = \"a b\"").unwrap_err();
        assert!(e.to_string().contains("host[:port]"), "{e}");
        let e = toml::from_str::<SipConfig>("allowed_sources = [\"10.0.0.0/40\"]").unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/40"), "{e}");
    }
}
