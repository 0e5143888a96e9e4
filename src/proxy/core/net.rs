//! Addresses: who we are, what we write as sent-by, where replies and relayed responses go.
//!
//! The core does no DNS, so every destination it derives (a Via's `received` or sent-by, a
//! Route or Request-URI host) must be an IP literal; names yield `None` and the caller falls
//! back or drops, counting why.

use super::config::Compiled;
use super::hops::Probe;
use crate::config::value::HostPort;
use crate::proxy::{Inbound, Transport};
use crate::sip::{Uri, Via};
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

/// The default SIP port (UDP and TCP).
pub(crate) const SIP_PORT: u16 = 5060;

/// Short text built on the stack (Via and Record-Route values, addresses): no allocation on
/// the packet path. Writing past `N` bytes marks it overflowed, and it is then not used.
#[derive(Clone, Copy)]
pub(crate) struct StackText<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> StackText<N> {
    pub(crate) fn new() -> Self {
        StackText {
            buf: [0; N],
            len: 0,
            overflow: false,
        }
    }

    /// Appends bytes (or marks the text overflowed).
    pub(crate) fn push(&mut self, b: &[u8]) -> &mut Self {
        match self.buf.get_mut(self.len..self.len + b.len()) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(b);
                self.len += b.len();
            }
            _ => self.overflow = true,
        }
        self
    }

    /// The text, unless it overflowed.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        (!self.overflow).then(|| &self.buf[..self.len])
    }

    /// The text as `str` (it only ever holds what `fmt::Write` or ASCII pushes put there).
    pub(crate) fn text(&self) -> Option<&str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
}

impl<const N: usize> fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        if self.overflow {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// Room for any sent-by: a 45-character IPv6 text in brackets and a port, or a hostname.
pub(crate) type SentByText = StackText<300>;

/// The `host[:port]` this proxy writes into Via and Record-Route.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SentBy<'a> {
    /// `advertise` from the config (the listener's or `sip.advertise`), and the port to
    /// write: the advertised one, or when it names none or the message came over TLS (whose
    /// listener has its own port, `tls.port`), the port the message arrived on.
    Configured(&'a HostPort, u16),
    /// The local address the message arrived on.
    Local(SocketAddr),
}

impl fmt::Display for SentBy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SentBy::Configured(hp, port) => {
                if hp.host.contains(':') {
                    write!(f, "[{}]", hp.host)?;
                } else {
                    f.write_str(&hp.host)?;
                }
                write!(f, ":{port}")
            }
            // SocketAddr's Display brackets IPv6 addresses.
            SentBy::Local(a) => write!(f, "{a}"),
        }
    }
}

impl Compiled {
    /// The `advertise` that applies to a message that arrived on `local`: the listener's own
    /// (bound to exactly `local`, or to the unspecified address of its family on its port),
    /// else `sip.advertise`.
    pub(crate) fn advertise_for(&self, local: SocketAddr) -> Option<&HostPort> {
        let own = self.listener_advertise.iter().find(|l| l.address == local);
        let own = own.or_else(|| {
            self.listener_advertise.iter().find(|l| {
                l.address.ip().is_unspecified()
                    && l.address.port() == local.port()
                    && l.address.is_ipv4() == local.is_ipv4()
            })
        });
        own.map(|l| &l.advertise).or(self.advertise.as_ref())
    }

    /// What to write as our sent-by for a message that arrived on `local`.
    pub(crate) fn sent_by(&self, local: SocketAddr) -> SentBy<'_> {
        match self.advertise_for(local) {
            Some(hp) => SentBy::Configured(hp, self.advertised_port(hp, local)),
            None => SentBy::Local(local),
        }
    }

    /// The port written with an advertised host for a message on `local`.
    fn advertised_port(&self, hp: &HostPort, local: SocketAddr) -> u16 {
        match hp.port {
            Some(p) if local.port() != self.tls_port => p,
            _ => local.port(),
        }
    }

    /// Our address on the side a message leaves by: the one it arrived on, unless it
    /// crosses between TLS and UDP/TCP, whose listeners have different ports (`tls.port`
    /// and the `sip.listen` port of that address). Written in the Via of what we forward,
    /// so the answer, which comes back on the leaving side, is recognised as ours.
    pub(crate) fn local_for(
        &self,
        local: SocketAddr,
        arrived: Transport,
        leaving: Transport,
    ) -> SocketAddr {
        match (arrived == Transport::Tls, leaving == Transport::Tls) {
            (false, true) => SocketAddr::new(local.ip(), self.tls_port),
            (true, false) => {
                let port = self
                    .listen
                    .iter()
                    .find(|l| l.ip() == local.ip())
                    .or_else(|| self.listen.iter().find(|l| l.ip().is_unspecified()))
                    .map_or(SIP_PORT, |l| l.port());
                SocketAddr::new(local.ip(), port)
            }
            _ => local,
        }
    }

    /// Whether `host[:port]` (from a Via, Route or Request-URI) names this proxy, which
    /// received the message on `local`.
    pub(crate) fn is_us(&self, host: &[u8], port: Option<u16>, local: SocketAddr) -> bool {
        let host = strip_brackets(host);
        let port = port.unwrap_or(SIP_PORT);
        if let Some(ip) = parse_ip(host) {
            if ip == local.ip() && port == local.port() {
                return true;
            }
        }
        let same = |hp: &HostPort| host_eq(hp, host);
        let advertised = self
            .advertise
            .iter()
            .chain(self.listener_advertise.iter().map(|l| &l.advertise));
        for adv in advertised {
            if same(adv) && self.advertised_port(adv, local) == port {
                return true;
            }
        }
        self.aliases
            .iter()
            .any(|a| same(a) && a.port.is_none_or(|p| p == port))
    }

    /// Whether P-Asserted-Identity from `ip` is trusted (its peer group has
    /// `trust_identity`).
    pub(crate) fn trusted(&self, ip: IpAddr) -> bool {
        self.peers.trusted(ip)
    }

    /// Whether messages from `ip` are taken (`allowed_sources`, with the next hops, the warn
    /// service and the trusted peers; everyone when `allowed_sources` is empty).
    pub(crate) fn source_allowed(&self, ip: IpAddr) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|n| n.contains(ip))
    }

    /// Whether `dest` is a next hop.
    pub(crate) fn is_hop(&self, dest: SocketAddr) -> bool {
        self.hop_addrs.contains(&dest)
    }

    /// Whether an in-dialog request may go to `dest`: a next hop, the warn service, or an
    /// address of a configured peer group (`[[peers]]`, `trusted_peers`) or in
    /// `allowed_sources`.
    pub(crate) fn may_reach_in_dialog(&self, dest: SocketAddr) -> bool {
        self.is_hop(dest)
            || self.warn_dest.is_some_and(|(w, _)| w == dest)
            || self.source_allowed_explicitly(dest.ip())
    }

    /// A configured peer group or `allowed_sources` network holds `ip`.
    fn source_allowed_explicitly(&self, ip: IpAddr) -> bool {
        self.peers.configured(ip) || (!self.sources.is_empty() && self.source_allowed(ip))
    }
}

fn host_eq(hp: &HostPort, host: &[u8]) -> bool {
    if hp.host.as_bytes().eq_ignore_ascii_case(host) {
        return true;
    }
    // Different spellings of one IP address (`::1` and `0:0::1`).
    match (hp.host.parse::<IpAddr>(), parse_ip(host)) {
        (Ok(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `[v6]` to `v6`; anything else unchanged.
pub(crate) fn strip_brackets(host: &[u8]) -> &[u8] {
    match host {
        [b'[', inner @ .., b']'] => inner,
        _ => host,
    }
}

/// An IP literal (IPv6 with or without brackets), or `None` for a name.
pub(crate) fn parse_ip(host: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(strip_brackets(host)).ok()?.parse().ok()
}

/// The transport named by a Via transport token or a `transport=` URI parameter.
pub(crate) fn transport_of(token: &[u8]) -> Option<Transport> {
    if token.eq_ignore_ascii_case(b"udp") {
        Some(Transport::Udp)
    } else if token.eq_ignore_ascii_case(b"tcp") {
        Some(Transport::Tcp)
    } else if token.eq_ignore_ascii_case(b"tls") {
        Some(Transport::Tls)
    } else {
        None
    }
}

/// Where a URI (a Route or Request-URI) sends a request, if its host is an IP literal:
/// its port (default 5060) and its `transport=` parameter (default `default`).
pub(crate) fn uri_destination(
    uri: &Uri<'_>,
    default: Transport,
) -> Option<(SocketAddr, Transport)> {
    let ip = parse_ip(uri.host())?;
    let transport = match uri.params().get("transport") {
        Some(Some(t)) => transport_of(t)?,
        _ => default,
    };
    Some((
        SocketAddr::new(ip, uri.port().unwrap_or(SIP_PORT)),
        transport,
    ))
}

/// Where a relayed response goes (RFC 3261 §18.2.2, RFC 3581 §4): the Via's `received`
/// (else its sent-by host), port from `rport` (else its sent-by port, else 5060), over the
/// Via's transport.
pub(crate) fn response_destination(via: &Via<'_>) -> Result<(SocketAddr, Transport), &'static str> {
    let transport = transport_of(via.transport()).ok_or("unsupported_transport")?;
    let ip = match via.received() {
        Some(r) => parse_ip(r).ok_or("bad_received")?,
        None => parse_ip(via.host()).ok_or("unresolvable_via")?,
    };
    let port = match via.rport() {
        Some(Some(p)) => p,
        _ => via.port().unwrap_or(SIP_PORT),
    };
    Ok((SocketAddr::new(ip, port), transport))
}

/// Where the proxy's own answer to a request goes (RFC 3261 §18.2.2, RFC 3581): back over
/// the stream it came on; for UDP to the source address, at the source port if `rport` was
/// asked for, else at the Via's sent-by port.
pub(crate) fn reply_destination(inbound: &Inbound, top: &Via<'_>) -> SocketAddr {
    match inbound.transport {
        Transport::Tcp | Transport::Tls => inbound.source,
        Transport::Udp => {
            if top.rport().is_some() {
                inbound.source
            } else {
                SocketAddr::new(inbound.source.ip(), top.port().unwrap_or(SIP_PORT))
            }
        }
    }
}

/// The health probe for `p`: an OPTIONS to the hop, with a probe branch so its answer is
/// recognised. `None` when no sent-by is known yet (no `advertise`, no message seen).
pub(crate) fn probe(c: &Compiled, local: Option<SocketAddr>, p: &Probe) -> Option<Bytes> {
    let sent_by = match (&c.advertise, local) {
        (_, Some(l)) => c.sent_by(l),
        (Some(hp), None) => SentBy::Configured(hp, hp.port.unwrap_or(SIP_PORT)),
        (None, None) => return None,
    };
    let branch = super::branch::probe_branch(p.index, p.seq);
    let branch = std::str::from_utf8(&branch).ok()?;
    let mut out = BytesMut::with_capacity(400).writer();
    let hop = p.hop.address;
    let t = p.hop.transport.via_token();
    let seq = p.seq;
    let idx = p.index;
    write!(
        out.get_mut(),
        "OPTIONS sip:{hop} SIP/2.0\r\n\
         Via: SIP/2.0/{t} {sent_by};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:fraudwall@{sent_by}>;tag=fwprobe{idx}\r\n\
         To: <sip:{hop}>\r\n\
         Call-ID: fwprobe-{idx}-{seq}@{sent_by}\r\n\
         CSeq: {seq} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .ok()?;
    Some(out.into_inner().freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::core::config::CoreConfig;

    #[test]
    fn stack_text_refuses_overflow() {
        let mut t = StackText::<8>::new();
        t.push(b"abc").push(b"de");
        assert_eq!(t.text(), Some("abcde"));
        t.push(b"fghi");
        assert_eq!(t.bytes(), None);
        let mut t = StackText::<64>::new();
        write!(t, "{}", "2001:db8::1".parse::<IpAddr>().unwrap()).unwrap();
        assert_eq!(t.text(), Some("2001:db8::1"));
    }

    fn compiled(f: impl FnOnce(&mut CoreConfig)) -> Compiled {
        let mut c = CoreConfig::default();
        f(&mut c);
        c.compile().unwrap()
    }

    #[test]
    fn us_by_local_address_advertise_and_alias() {
        let c = compiled(|c| {
            c.sip.advertise = HostPort::parse("[2001:db8::10]:5062");
            c.proxy.aliases = ["proxy.example.net", "10.9.9.9:5070"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
        });
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        assert!(c.is_us(b"127.0.0.1", None, local));
        assert!(c.is_us(b"127.0.0.1", Some(5060), local));
        assert!(!c.is_us(b"127.0.0.1", Some(5080), local));
        assert!(c.is_us(b"[2001:db8::10]", Some(5062), local));
        assert!(c.is_us(b"[2001:DB8:0::10]", Some(5062), local));
        assert!(!c.is_us(b"[2001:db8::10]", None, local));
        assert!(c.is_us(b"PROXY.example.net", Some(5999), local));
        assert!(c.is_us(b"10.9.9.9", Some(5070), local));
        assert!(!c.is_us(b"10.9.9.9", None, local));
        assert!(!c.is_us(b"other.example.net", None, local));
        let v6: SocketAddr = "[::1]:5060".parse().unwrap();
        assert!(c.is_us(b"[::1]", None, v6));
    }

    #[test]
    fn sent_by_forms() {
        let c = compiled(|_| {});
        assert_eq!(
            c.sent_by("[::1]:5060".parse().unwrap()).to_string(),
            "[::1]:5060"
        );
        let c = compiled(|c| c.sip.advertise = HostPort::parse("2001:db8::1"));
        assert_eq!(
            c.sent_by("[::1]:5070".parse().unwrap()).to_string(),
            "[2001:db8::1]:5070"
        );
        // A listener's own advertise wins, matched exactly or through its wildcard bind.
        let c = compiled(|c| {
            c.sip.advertise = HostPort::parse("sbc.example.net:5999");
            c.sip.listen = vec![
                crate::proxy::listen::Listener {
                    address: "0.0.0.0:5070".parse().unwrap(),
                    advertise: HostPort::parse("pub.example.net"),
                },
                crate::proxy::listen::Listener {
                    address: "10.0.0.1:5060".parse().unwrap(),
                    advertise: HostPort::parse("192.0.2.9:5062"),
                },
            ];
        });
        let text = |l: &str| c.sent_by(l.parse().unwrap()).to_string();
        assert_eq!(text("10.1.1.1:5070"), "pub.example.net:5070");
        assert_eq!(text("10.0.0.1:5060"), "192.0.2.9:5062");
        assert_eq!(text("10.0.0.2:5060"), "sbc.example.net:5999");
        assert!(c.is_us(
            b"pub.example.net",
            Some(5070),
            "10.1.1.1:5070".parse().unwrap()
        ));
        assert!(c.is_us(b"192.0.2.9", Some(5062), "10.0.0.1:5060".parse().unwrap()));
    }

    #[test]
    fn response_destinations() {
        let v = Via::parse(
            b"SIP/2.0/UDP host.example:5070;branch=z9hG4bKx;received=192.0.2.7;rport=40000",
        )
        .unwrap();
        assert_eq!(
            response_destination(&v),
            Ok(("192.0.2.7:40000".parse().unwrap(), Transport::Udp))
        );
        let v = Via::parse(b"SIP/2.0/TCP [2001:db8::5];branch=z9hG4bKx").unwrap();
        assert_eq!(
            response_destination(&v),
            Ok(("[2001:db8::5]:5060".parse().unwrap(), Transport::Tcp))
        );
        let v = Via::parse(b"SIP/2.0/UDP host.example;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(response_destination(&v), Err("unresolvable_via"));
        let v = Via::parse(b"SIP/2.0/SCTP 192.0.2.1;branch=z9hG4bKx").unwrap();
        assert_eq!(response_destination(&v), Err("unsupported_transport"));
    }

    #[test]
    fn uri_destinations() {
        let u = Uri::parse(b"sip:10.0.0.9:5090;transport=tcp;lr").unwrap();
        assert_eq!(
            uri_destination(&u, Transport::Udp),
            Some(("10.0.0.9:5090".parse().unwrap(), Transport::Tcp))
        );
        let u = Uri::parse(b"sip:+1555@[2001:db8::2]").unwrap();
        assert_eq!(
            uri_destination(&u, Transport::Udp),
            Some(("[2001:db8::2]:5060".parse().unwrap(), Transport::Udp))
        );
        let u = Uri::parse(b"sip:switch.example.net").unwrap();
        assert_eq!(uri_destination(&u, Transport::Udp), None);
    }
}
