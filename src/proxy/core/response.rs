//! The response path: check the top Via is ours, pop it, send along the next Via
//! (RFC 3261 §16.7, §18.2.2; RFC 3581).

use super::branch::{loop_part_of, probe_index};
use super::net::response_destination;
use super::{Disposition, MessageClass, Outcome, ProxyCore};
use crate::proxy::{Inbound, Outbound};
use crate::sip::{ResponseEditor, SipMessage};

impl ProxyCore {
    pub(super) fn response(
        &self,
        inbound: &Inbound,
        msg: &SipMessage,
        out: &mut Vec<Outbound>,
    ) -> Outcome {
        let class = MessageClass::Response(msg.status().unwrap_or(0));
        let dropped = |reason: &'static str, malformed: bool| {
            let mut o = Outcome::new(class, Disposition::Dropped(reason));
            o.error = malformed.then_some(reason);
            o
        };
        // One pass over the Via list: ours on top, then where the response goes.
        let mut vias = msg.vias();
        let top = match vias.next() {
            Some(Ok(v)) => v,
            None => return dropped("no_via", true),
            Some(Err(_)) => return dropped("bad_via", true),
        };
        let branch = top.branch().unwrap_or_default();
        if !self.compiled.is_us(top.host(), top.port(), inbound.local) {
            return dropped("via_not_ours", false);
        }
        if let Some(index) = probe_index(branch) {
            self.hops.answered(index);
            return Outcome::new(class, Disposition::Absorbed);
        }
        if loop_part_of(branch).is_none() {
            return dropped("via_not_ours", false);
        }
        self.hops.response_seen(super::branch::key_of(branch));
        let next = match vias.next() {
            Some(Ok(v)) => v,
            Some(Err(_)) => return dropped("bad_via", true),
            None => return dropped("no_route_back", false),
        };
        let (destination, transport) = match response_destination(&next) {
            Ok(d) => d,
            Err(reason) => return dropped(reason, false),
        };
        let mut ed = ResponseEditor::new(msg);
        ed.pop_top_via();
        out.push(Outbound {
            data: ed.finish().freeze(),
            destination,
            transport,
            // From the address the response reached, which is the one our Via named.
            source: Some(inbound.local.ip()),
        });
        Outcome::new(class, Disposition::Forwarded)
    }
}
