//! Typed configuration values that deserialize from the text an operator writes, so a value
//! is checked once, where it is read, and an error points at the line and the key.
//!
//! - [`Cidr`]: `"10.0.0.1"`, `"10.0.0.0/8"`, `"2001:db8::/32"`;
//! - [`HostPort`]: `"proxy.example.net"`, `"192.0.2.10:5060"`, `"[2001:db8::1]:5060"`;
//! - [`empty_none`]: a `serde(with)` helper for optional values where `""` means "not set"
//!   (so every key can be written in `fraudwall config default`, even an unset one).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network (`addr/len`); a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// The network holding exactly `ip`.
    pub fn host(ip: IpAddr) -> Cidr {
        Cidr {
            addr: ip,
            len: if ip.is_ipv4() { 32 } else { 128 },
        }
    }

    /// Whether `ip` is inside. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
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

impl Cidr {
    /// Whether the two networks share an address (one holds the other).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let (short, long) = if self.len <= other.len {
            (self, other)
        } else {
            (other, self)
        };
        short.contains(long.addr)
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

/// Why a text is not a [`Cidr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an IP address or network (e.g. \"10.0.0.1\", \"10.0.0.0/8\", \"2001:db8::/32\")"
)]
pub struct BadCidr(pub String);

impl FromStr for Cidr {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(s.to_string());
        let (a, l) = match s.trim().split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if len > max {
            return Err(bad());
        }
        Ok(Cidr { addr, len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.len == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

/// A `host[:port]`: a host name or IP literal, and an optional port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Lowercase host, IPv6 without brackets.
    pub host: Box<str>,
    /// The port, if given.
    pub port: Option<u16>,
}

/// Why a text is not a [`HostPort`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not host[:port]: write e.g. \"192.0.2.10:5060\", \"sbc.example.net\" or \"[2001:db8::1]:5060\"")]
pub struct BadHostPort(pub String);

impl HostPort {
    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
    pub fn parse(s: &str) -> Option<HostPort> {
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

    /// The host as an IP address, when it is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl FromStr for HostPort {
    type Err = BadHostPort;
    fn from_str(s: &str) -> Result<Self, BadHostPort> {
        HostPort::parse(s).ok_or_else(|| BadHostPort(s.to_string()))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

macro_rules! via_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
via_text!(Cidr);
via_text!(HostPort);

/// `#[serde(with = "empty_none")]`: an `Option<T>` written as text, `""` for `None`.
pub mod empty_none {
    use super::*;

    /// Writes `None` as `""`, `Some(v)` as `v` (a value that serializes as text).
    pub fn serialize<T: Serialize, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => v.serialize(s),
            None => s.serialize_str(""),
        }
    }

    /// Reads `""` (or only spaces) as `None`, anything else with `T::from_str`.
    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: fmt::Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        match s.trim() {
            "" => Ok(None),
            t => t
                .parse()
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("{t:?}: {e}"))),
        }
    }
}

/// `#[serde(with = "opt_socket_addr")]`: an optional socket address, `""` for `None`, with
/// an error that says how to write one.
pub mod opt_socket_addr {
    use super::*;
    use std::net::SocketAddr;

    /// Writes `None` as `""`.
    pub fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        empty_none::serialize(v, s)
    }

    /// Reads `""` as `None`, else `IP:PORT`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim() {
            "" => Ok(None),
            t => socket_addr::parse(t)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// `#[serde(with = "duration")]`: a `Duration` written as humantime text (`"5s"`, `"500ms"`,
/// `"2m"`), with an error that quotes the value and shows the form.
pub mod duration {
    use super::*;
    use std::time::Duration;

    /// Writes e.g. `"5s"`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// Reads humantime text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?}: {e} (expected e.g. \"5s\", \"500ms\", \"2m\")"
            ))
        })
    }
}

/// `#[serde(with = "socket_addr")]`: a socket address with an error that says how to write one.
pub mod socket_addr {
    use super::*;
    use std::net::SocketAddr;

    /// Parses `IP:PORT` (IPv6 as `[::1]:5060`), saying how to fix a bad one.
    pub fn parse(s: &str) -> Result<SocketAddr, String> {
        s.trim().parse::<SocketAddr>().map_err(|e| {
            format!("invalid socket address {s:?}: {e} (expected IP:PORT, IPv6 as [::1]:5060)")
        })
    }

    /// Writes the address.
    pub fn serialize<S: Serializer>(v: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// Reads the address.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        let hp = HostPort::parse("[::1]:5060").unwrap();
        assert_eq!((hp.host.as_ref(), hp.port), ("::1", Some(5060)));
        assert_eq!(hp.to_string(), "[::1]:5060");
        let hp = HostPort::parse("2001:db8::1").unwrap();
        assert_eq!((hp.host.as_ref(), hp.port), ("2001:db8::1", None));
        let hp = HostPort::parse("Proxy.Example.NET").unwrap();
        assert_eq!((hp.host.as_ref(), hp.port), ("proxy.example.net", None));
        assert!(HostPort::parse("host:notaport").is_none());
        assert!(HostPort::parse("").is_none());
        assert!("a b".parse::<HostPort>().is_err());
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
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert_eq!("10.0.0.1".parse::<Cidr>().unwrap().to_string(), "10.0.0.1");
        assert_eq!(n.to_string(), "10.1.0.0/15");
    }
}
