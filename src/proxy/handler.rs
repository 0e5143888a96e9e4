//! What a transport drives ([`Handler`]), and the typed reasons it reports: why a message was
//! dropped before the core saw it ([`DropReason`]), and who is at fault when a send fails
//! ([`SendFault`], [`LocalSendError`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{Inbound, Outbound, Transport};

/// What a transport drives: one message in, messages out.
pub trait Handler: Send + Sync + 'static {
    /// Handles one complete message received at `now`, pushing what to send onto `out`.
    fn handle(&self, msg: Inbound, now: Instant, out: &mut Vec<Outbound>);

    /// Called about once a second by the runtime's timer: expire state, retry, probe next
    /// hops.
    fn poll_timeout(&self, now: Instant, out: &mut Vec<Outbound>);

    /// A message to `destination` could not be sent, and the destination is at fault
    /// ([`SendFault::Destination`]: refused, unreachable, reset): a next hop there is marked
    /// down. Transports classify with [`report_send_error`].
    fn on_send_error(&self, destination: SocketAddr, transport: Transport, now: Instant);

    /// A message to `destination` could not be sent, and this node is at fault
    /// ([`SendFault::Local`]: too big for a datagram, no buffer, connection limit, transport
    /// not running): counted, and nobody is blamed, so no sender can steer traffic off a
    /// healthy hop.
    fn local_send_error(&self, destination: SocketAddr, transport: Transport, why: LocalSendError) {
        let _ = (destination, transport, why);
    }

    /// Something was dropped before it reached [`Handler::handle`]: a message (too large,
    /// framing error) or a whole connection (limits, timeouts).
    fn dropped(&self, source: SocketAddr, transport: Transport, reason: DropReason);

    /// Whether a connection from `source` may be accepted at all (`sip.allowed_sources`):
    /// a stream transport refuses the others at accept, before reading a byte.
    fn accepts_source(&self, source: IpAddr) -> bool {
        let _ = source;
        true
    }

    /// A stream connection opened (accepted, or opened to a next hop).
    fn connection_opened(&self, transport: Transport, origin: ConnectionOrigin) {
        let _ = (transport, origin);
    }

    /// A stream connection closed.
    fn connection_closed(&self, transport: Transport) {
        let _ = transport;
    }

    /// UDP worker `worker` (numbered from 0 on each listen address) received `messages`
    /// datagrams in one batch (for the per-worker metrics that show the spread).
    fn udp_batch(&self, worker: usize, messages: usize) {
        let _ = (worker, messages);
    }

    /// Called once per message the transport has sent (for the metrics).
    fn sent(&self, msg: &Outbound) {
        let _ = msg;
    }
}

/// Who opened a stream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionOrigin {
    /// A peer connected to a listener.
    Accepted,
    /// This node connected (to a next hop, or to a response's destination).
    Opened,
}

/// Why a message, or a whole connection, was dropped before the core saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A datagram, or a stream message, larger than `limits.max_message_size`.
    TooLarge,
    /// The stream's framing is broken (the reason is the framer's metric label); a stream
    /// cannot be resynchronised, so the connection is closed.
    Malformed(&'static str),
    /// The source is outside `sip.allowed_sources`: closed at accept, unread.
    SourceNotAllowed,
    /// The source already holds its share of connections.
    SourceConnectionLimit,
    /// Every connection slot is taken.
    ConnectionLimit,
    /// No complete message or keep-alive for the idle timeout.
    IdleTimeout,
    /// A message still incomplete at its deadline.
    MessageTimeout,
    /// The TLS handshake failed (garbage, a bad or missing client certificate, a timeout);
    /// the reason is counted in `fraudwall_tls_handshake_failures_total{reason}`.
    TlsHandshake,
}

impl DropReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooLarge => "too_large",
            DropReason::Malformed(reason) => reason,
            DropReason::SourceNotAllowed => "source_not_allowed",
            DropReason::SourceConnectionLimit => "source_connection_limit",
            DropReason::ConnectionLimit => "connection_limit",
            DropReason::IdleTimeout => "idle_timeout",
            DropReason::MessageTimeout => "message_timeout",
            DropReason::TlsHandshake => "tls_handshake",
        }
    }

    /// Whether a connection was refused at accept (no byte read).
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            DropReason::SourceNotAllowed
                | DropReason::SourceConnectionLimit
                | DropReason::ConnectionLimit
        )
    }
}

/// Who is at fault when a send fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFault {
    /// The destination: connection refused (for UDP, an ICMP port unreachable), host or
    /// network unreachable, reset, broken pipe, timed out.
    Destination,
    /// This node.
    Local(LocalSendError),
}

/// A send that failed because of this node, by reason (the `reason` label of
/// `fraudwall_local_send_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalSendError {
    /// `EMSGSIZE`: larger than a datagram can carry.
    TooLarge,
    /// `ENOBUFS`, `ENOMEM`, `EAGAIN`, or a full write queue: out of buffer space.
    NoBuffers,
    /// No connection could be opened: the stream connection limit is reached.
    ConnectionLimit,
    /// The message names a transport that is not running here (not in `sip.transports`),
    /// or no listener of the destination's address family.
    NoTransport,
    /// Anything else the socket refused (`EINVAL`, `EACCES`, `EAFNOSUPPORT`, ...).
    Other,
}

impl LocalSendError {
    /// Every reason, in label order.
    pub const ALL: [LocalSendError; 5] = [
        LocalSendError::TooLarge,
        LocalSendError::NoBuffers,
        LocalSendError::ConnectionLimit,
        LocalSendError::NoTransport,
        LocalSendError::Other,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LocalSendError::TooLarge => "too_large",
            LocalSendError::NoBuffers => "no_buffers",
            LocalSendError::ConnectionLimit => "connection_limit",
            LocalSendError::NoTransport => "no_transport",
            LocalSendError::Other => "other",
        }
    }
}

impl SendFault {
    /// Classifies a send error. Unknown errors count as ours: blaming a hop for them would
    /// let any sender who can provoke one move traffic off the hop.
    pub fn of(e: &std::io::Error) -> SendFault {
        use std::io::ErrorKind as K;
        #[cfg(unix)]
        if let Some(code) = e.raw_os_error() {
            return match code {
                libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::ECONNRESET
                | libc::ECONNABORTED
                | libc::EPIPE
                | libc::ETIMEDOUT => SendFault::Destination,
                libc::EMSGSIZE => SendFault::Local(LocalSendError::TooLarge),
                libc::ENOBUFS | libc::ENOMEM | libc::EAGAIN => {
                    SendFault::Local(LocalSendError::NoBuffers)
                }
                _ => SendFault::Local(LocalSendError::Other),
            };
        }
        match e.kind() {
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::TimedOut
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown => SendFault::Destination,
            K::WouldBlock | K::OutOfMemory => SendFault::Local(LocalSendError::NoBuffers),
            K::AddrNotAvailable => SendFault::Local(LocalSendError::NoTransport),
            _ => SendFault::Local(LocalSendError::Other),
        }
    }
}

/// Reports a failed send to the handler as the fault [`SendFault::of`] says.
pub fn report_send_error<H: Handler + ?Sized>(
    h: &H,
    destination: SocketAddr,
    transport: Transport,
    e: &std::io::Error,
    now: Instant,
) {
    match SendFault::of(e) {
        SendFault::Destination => h.on_send_error(destination, transport, now),
        SendFault::Local(why) => h.local_send_error(destination, transport, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct() {
        let labels: std::collections::HashSet<_> =
            LocalSendError::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), LocalSendError::ALL.len());
        assert_eq!(DropReason::Malformed("bad_start").as_str(), "bad_start");
        assert!(DropReason::ConnectionLimit.is_refusal());
        assert!(!DropReason::IdleTimeout.is_refusal());
    }

    #[test]
    fn a_missing_family_listener_is_ours() {
        let e = std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no v6 listener");
        assert_eq!(
            SendFault::of(&e),
            SendFault::Local(LocalSendError::NoTransport)
        );
    }
}
