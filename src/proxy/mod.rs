//! The SIP proxy: a sans-I/O core and the socket transports around it.
//!
//! The core ([`core`], owned by the proxy-core work) does no I/O and reads no clock: the
//! transport hands it one [`Inbound`] message with the time, and it answers with what to send
//! ([`Outbound`]) and what happened ([`Outcome`]), which the runtime turns into metrics and
//! decision-log lines. Every protocol rule is therefore tested byte in, bytes out.
//!
//! The types below are the contract between the core and the transports.

pub mod core;
pub mod dispatch;
pub mod handler;
pub mod listen;
pub mod lists;
pub mod runtime;
pub mod stream;
pub mod tcp;
pub mod tls;
pub mod udp;

pub use self::core::Outcome;
pub use self::dispatch::{Dispatch, Route};
pub use self::handler::{
    report_send_error, ConnectionOrigin, DropReason, Handler, LocalSendError, SendFault,
};

use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};

/// Which transport a message came in on or must go out on (`udp`, `tcp` or `tls` in config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Datagrams.
    Udp,
    /// A stream; messages framed by Content-Length.
    Tcp,
    /// A TCP stream under TLS (RFC 3261 §26); framed as TCP.
    Tls,
}

impl Transport {
    /// Every transport, in [`Transport::index`] order (for arrays indexed by transport).
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

    /// This transport's position in [`Transport::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
        }
    }

    /// The Via transport token (`UDP`, `TCP`, `TLS`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Whether messages ride a connection (TCP, TLS): framed by Content-Length, answered
    /// over the connection they came on, no datagram size limit.
    pub const fn is_stream(self) -> bool {
        match self {
            Transport::Udp => false,
            Transport::Tcp | Transport::Tls => true,
        }
    }

    /// The lowercase config, status and metric name (`udp`, `tcp`, `tls`).
    pub fn config_name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// One complete message as received (a datagram, or one framed message off a stream).
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The raw bytes.
    pub data: Bytes,
    /// Where it came from.
    pub source: SocketAddr,
    /// The local address it arrived on (the proxy's own sent-by for Via): for a UDP socket
    /// bound to an unspecified address (`0.0.0.0`, `[::]`), the datagram's destination
    /// address (`IP_PKTINFO`); for a stream, the accepted socket's local address.
    pub local: SocketAddr,
    /// The transport it arrived on.
    pub transport: Transport,
    /// The transport authenticated the sender as a trusted peer: a TLS client certificate
    /// whose identity is in `tls.trusted_identities`. Its P-Asserted-Identity and
    /// Remote-Party-ID are then believed as from `proxy.trusted_peers`. `false` on UDP and TCP.
    pub verified_peer: bool,
    /// How long the message waited in this node before it was handled: for a UDP datagram,
    /// from the kernel's receive timestamp to now (the socket queue and the worker's lag);
    /// `None` when unknown (streams, timestamps off). The core's overload policy judges it
    /// (`[overload]`); `None` neither enters nor leaves overload.
    pub queued: Option<std::time::Duration>,
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The bytes to send.
    pub data: Bytes,
    /// Where to send them.
    pub destination: SocketAddr,
    /// Over which transport.
    pub transport: Transport,
    /// The local address to send from, when it matters: the address the message being
    /// answered or forwarded arrived on ([`Inbound::local`]'s IP), so a listener bound to an
    /// unspecified address answers from the address the peer wrote to. `None`: the kernel
    /// picks (probes; a socket bound to one address always sends from it; a stream sends
    /// over its connection).
    pub source: Option<IpAddr>,
}

#[cfg(test)]
mod tests {
    use super::Transport;

    #[test]
    fn transport_indexes_match_all() {
        for (i, t) in Transport::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(t.via_token().to_ascii_lowercase(), t.config_name());
        }
    }
}
