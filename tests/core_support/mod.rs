//! Shared pieces of the sans-I/O proxy core tests (`tests/proxy_core_*.rs`): a fixed-table
//! screen, a core built from a tweaked default config, one message in and what came out, and
//! a realistic initial INVITE.
#![allow(dead_code)]

use bytes::Bytes;
use fraudwall::blocklist::Action;
use fraudwall::numbers::Caller;
use fraudwall::policy::{CallContext, Reason, Screen, Verdict};
use fraudwall::proxy::core::{CoreConfig, ProxyCore};
use fraudwall::proxy::{Inbound, Outbound, Transport};
use fraudwall::sip::{Limits, SipMessage};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The proxy's address.
pub const LOCAL: &str = "127.0.0.1:5060";
/// An untrusted caller's address.
pub const CALLER: &str = "192.0.2.1:5060";
/// The default next hop.
pub const HOP: &str = "127.0.0.1:5080";
/// Digits [`Table::standard`] blocks.
pub const BLOCKED: &str = "8613800000001";
/// Digits it tags.
pub const TAGGED: &str = "8613800000002";
/// Digits it warns.
pub const WARNED: &str = "8613800000003";

/// A screen with fixed verdicts per number; counts its calls.
pub struct Table {
    pub verdicts: HashMap<String, Verdict>,
    pub calls: AtomicUsize,
}

impl Table {
    /// Blocks [`BLOCKED`], tags [`TAGGED`], warns [`WARNED`].
    pub fn standard() -> Arc<Table> {
        let mut verdicts = HashMap::new();
        verdicts.insert(
            BLOCKED.to_string(),
            Verdict::listed(Action::Block, "impersonation", 95),
        );
        verdicts.insert(TAGGED.to_string(), Verdict::listed(Action::Tag, "loan", 70));
        verdicts.insert(
            WARNED.to_string(),
            Verdict::listed(Action::Warn, "investment", 80),
        );
        Arc::new(Table {
            verdicts,
            calls: AtomicUsize::new(0),
        })
    }
}

impl Screen for Table {
    fn screen(&self, call: &CallContext<'_>) -> Verdict {
        let caller = call.caller;
        self.calls.fetch_add(1, Ordering::Relaxed);
        match caller {
            Caller::Number(n) => self
                .verdicts
                .get(n.digits())
                .cloned()
                .unwrap_or_else(Verdict::unlisted),
            Caller::Anonymous => Verdict::new(Action::Allow, Reason::Anonymous),
            Caller::Invalid(_) | Caller::Decorated { .. } => {
                Verdict::new(Action::Allow, Reason::Invalid)
            }
        }
    }
}

/// A socket address literal.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A core on the default config changed by `f`, over [`Table::standard`].
pub fn core_with(f: impl FnOnce(&mut CoreConfig)) -> (ProxyCore, Arc<Table>) {
    let mut c = CoreConfig::default();
    f(&mut c);
    let t = Table::standard();
    (ProxyCore::new(c, t.clone()).unwrap(), t)
}

/// A core on the default config.
pub fn core() -> ProxyCore {
    core_with(|_| {}).0
}

/// What the core said about one message, and what it sent.
#[derive(Debug)]
pub struct Sent {
    pub outcome: fraudwall::proxy::Outcome,
    pub out: Vec<Outbound>,
}

impl Sent {
    /// The one message sent (fails if there is not exactly one).
    pub fn one(&self) -> &Outbound {
        assert_eq!(
            self.out.len(),
            1,
            "expected one message out: {:?}",
            self.outcome
        );
        &self.out[0]
    }
    /// The one message sent, parsed.
    pub fn msg(&self) -> SipMessage {
        SipMessage::parse(self.one().data.clone(), &Limits::default()).unwrap()
    }
    /// The one message sent, as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.one().data.to_vec()).unwrap()
    }
}

/// Hands `data` to the core as received from `source` on `local` at `now`.
pub fn send_at(
    core: &ProxyCore,
    data: &str,
    source: &str,
    local: &str,
    t: Transport,
    now: Instant,
) -> Sent {
    send_verified(core, data, source, local, t, false, now)
}

/// Like [`send_at`], from a peer the transport verified (a trusted TLS client certificate)
/// when `verified`.
pub fn send_verified(
    core: &ProxyCore,
    data: &str,
    source: &str,
    local: &str,
    t: Transport,
    verified: bool,
    now: Instant,
) -> Sent {
    let mut out = Vec::new();
    let outcome = core.handle(
        Inbound {
            data: Bytes::copy_from_slice(data.as_bytes()),
            source: addr(source),
            local: addr(local),
            transport: t,
            verified_peer: verified,
            queued: None,
        },
        now,
        &mut out,
    );
    Sent { outcome, out }
}

/// Hands `data` to the core as a UDP datagram from `source`, now.
pub fn send(core: &ProxyCore, data: &str, source: &str) -> Sent {
    send_at(core, data, source, LOCAL, Transport::Udp, Instant::now())
}

/// An initial INVITE from `caller` (digits) with optional extra header lines.
pub fn invite(caller: &str, extra: &str) -> String {
    format!(
        "INVITE sip:+15550001@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-inv-1\r\n\
         Max-Forwards: 70\r\n\
         From: \"Caller\" <sip:+{caller}@192.0.2.1>;tag=from-1\r\n\
         To: <sip:+15550001@127.0.0.1>\r\n\
         Call-ID: call-1@192.0.2.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:+{caller}@192.0.2.1:5060>\r\n\
         {extra}\
         Content-Type: application/sdp\r\n\
         Content-Length: 4\r\n\r\nv=0\n"
    )
}

/// The first value of header `name`, as text.
pub fn header(m: &SipMessage, name: &str) -> Option<String> {
    m.header(name)
        .map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap())
}
