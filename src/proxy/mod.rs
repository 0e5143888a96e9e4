//! The SIP proxy: a sans-I/O core and the socket transports around it.
//!
//! The core ([`core`], owned by the proxy-core work) does no I/O and reads no clock: the
//! transport hands it one [`Inbound`] message with the time, and it answers with what to send
//! ([`Outbound`]) and what happened ([`Outcome`]), which the runtime turns into metrics and
//! decision-log lines. Every protocol rule is therefore tested byte in, bytes out.
//!
//! The types below are the contract between the core and the transports.

pub mod core;
pub mod listen;
pub mod runtime;
pub mod tcp;
pub mod tls;
pub mod udp;

pub use self::core::Outcome;

use bytes::Bytes;
use std::net::SocketAddr;

/// Which transport a message came in on or must go out on (`udp` or `tcp` in config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Datagrams.
    Udp,
    /// A stream; messages framed by Content-Length.
    Tcp,
}

impl Transport {
    /// The Via transport token (`UDP`, `TCP`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// The lowercase config and status name (`udp`, `tcp`).
    pub fn config_name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
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
    /// The local address it arrived on (the proxy's own sent-by for Via).
    pub local: SocketAddr,
    /// The transport it arrived on.
    pub transport: Transport,
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
}
