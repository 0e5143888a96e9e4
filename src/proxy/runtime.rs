//! The seam between the socket transports and what they drive.
//!
//! The transports ([`super::udp`], [`super::tcp`]) know sockets, batching and framing, and
//! nothing of SIP: every complete message goes to a [`Handler`] with the time, which fills a
//! vector of [`Outbound`] messages the transport then sends. The runtime's handler wraps the
//! sans-I/O proxy core, the metrics and the decision log; tests drive the transports with a
//! closure-like handler of their own.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Inbound, Outbound, Transport};

/// What a transport drives: one message in, messages out.
pub trait Handler: Send + Sync + 'static {
    /// Handles one complete message received at `now`, pushing what to send onto `out`.
    fn handle(&self, msg: Inbound, now: Instant, out: &mut Vec<Outbound>);

    /// Called about once a second: expire state, retry, probe next hops.
    fn poll_timeout(&self, now: Instant, out: &mut Vec<Outbound>);

    /// A message to `destination` could not be sent.
    fn on_send_error(&self, destination: SocketAddr, transport: Transport, now: Instant);

    /// A message was dropped before it reached [`Handler::handle`] (too large, framing error,
    /// connection limit), with a short snake_case reason for the metrics.
    fn dropped(&self, source: SocketAddr, transport: Transport, reason: &'static str);

    /// A TCP connection opened (`inbound`: accepted, else opened to a next hop).
    fn connection_opened(&self, inbound: bool) {
        let _ = inbound;
    }

    /// A TCP connection closed.
    fn connection_closed(&self) {}

    /// Called once per message the transport has sent (for the metrics).
    fn sent(&self, msg: &Outbound) {
        let _ = msg;
    }
}
