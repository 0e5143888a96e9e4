//! One dispatch for every outbound message: a [`Route`] per running transport, chosen by the
//! message's [`Outbound::transport`].
//!
//! Each transport installs its route once it runs ([`Dispatch::install`]); a transport's own
//! I/O loops, the runtime's timer, and the other transports all send through the same
//! [`Dispatch`], so no transport knows another. A message for a transport that is not
//! running is this node's fault: [`Handler::local_send_error`] with
//! [`LocalSendError::NoTransport`], counted, nobody blamed.
//!
//! The UDP workers still batch their own UDP datagrams into one `sendmmsg` (the hot path);
//! only what they cannot send on their own socket comes here.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::{Handler, LocalSendError, Outbound, Transport};

/// Where messages for one transport go.
pub trait Route: Send + Sync + 'static {
    /// Sends (or queues) one message; failures are reported to the handler by the route.
    fn send(&self, msg: Outbound, now: Instant);
}

/// The routes of the running transports, keyed by [`Transport`].
pub struct Dispatch {
    routes: [OnceLock<Arc<dyn Route>>; Transport::ALL.len()],
    handler: Arc<dyn Handler>,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running: Vec<_> = Transport::ALL
            .iter()
            .filter(|t| self.is_running(**t))
            .collect();
        f.debug_struct("Dispatch")
            .field("running", &running)
            .finish()
    }
}

impl Dispatch {
    /// A dispatch with no route yet; failures to route are reported to `handler`.
    pub fn new(handler: Arc<dyn Handler>) -> Arc<Dispatch> {
        Arc::new(Dispatch {
            routes: Default::default(),
            handler,
        })
    }

    /// Installs `transport`'s route. Returns `false` (and keeps the first) if it already has
    /// one.
    pub fn install(&self, transport: Transport, route: Arc<dyn Route>) -> bool {
        self.routes[transport.index()].set(route).is_ok()
    }

    /// Whether `transport` has a route.
    pub fn is_running(&self, transport: Transport) -> bool {
        self.routes[transport.index()].get().is_some()
    }

    /// Sends one message by its transport's route.
    pub fn send(&self, msg: Outbound, now: Instant) {
        match self.routes[msg.transport.index()].get() {
            Some(route) => route.send(msg, now),
            None => self.handler.local_send_error(
                msg.destination,
                msg.transport,
                LocalSendError::NoTransport,
            ),
        }
    }

    /// Sends every message in `out`, leaving it empty.
    pub fn send_all(&self, out: &mut Vec<Outbound>, now: Instant) {
        for msg in out.drain(..) {
            self.send(msg, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{DropReason, Inbound};
    use std::net::SocketAddr;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder {
        local: Mutex<Vec<(Transport, LocalSendError)>>,
        routed: Mutex<Vec<Transport>>,
    }

    impl Handler for Recorder {
        fn handle(&self, _m: Inbound, _n: Instant, _o: &mut Vec<Outbound>) {}
        fn poll_timeout(&self, _n: Instant, _o: &mut Vec<Outbound>) {}
        fn on_send_error(&self, _d: SocketAddr, _t: Transport, _n: Instant) {}
        fn local_send_error(&self, _d: SocketAddr, t: Transport, why: LocalSendError) {
            self.local.lock().unwrap().push((t, why));
        }
        fn dropped(&self, _s: SocketAddr, _t: Transport, _r: DropReason) {}
    }

    struct Record(Arc<Recorder>);

    impl Route for Record {
        fn send(&self, msg: Outbound, _now: Instant) {
            self.0.routed.lock().unwrap().push(msg.transport);
        }
    }

    fn msg(transport: Transport) -> Outbound {
        Outbound {
            data: bytes::Bytes::from_static(b"x"),
            destination: "127.0.0.1:5060".parse().unwrap(),
            transport,
            source: None,
        }
    }

    #[test]
    fn routes_by_transport_and_counts_a_missing_one() {
        let h = Arc::new(Recorder::default());
        let d = Dispatch::new(h.clone());
        assert!(d.install(Transport::Tcp, Arc::new(Record(h.clone()))));
        assert!(!d.install(Transport::Tcp, Arc::new(Record(h.clone()))));
        let now = Instant::now();
        let mut out = vec![
            msg(Transport::Tcp),
            msg(Transport::Udp),
            msg(Transport::Tls),
        ];
        d.send_all(&mut out, now);
        assert!(out.is_empty());
        assert_eq!(*h.routed.lock().unwrap(), vec![Transport::Tcp]);
        assert_eq!(
            *h.local.lock().unwrap(),
            vec![
                (Transport::Udp, LocalSendError::NoTransport),
                (Transport::Tls, LocalSendError::NoTransport)
            ]
        );
        assert!(d.is_running(Transport::Tcp) && !d.is_running(Transport::Udp));
    }
}
