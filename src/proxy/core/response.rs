//! The response path: check the top Via is ours, pop it, send along the next Via
//! (RFC 3261 §16.7, §18.2.2; RFC 3581).

use super::branch::{loop_part_of, probe_index};
use super::net::response_destination;
use super::{Disposition, MessageClass, Outcome, ProxyCore};
use crate::detection::CallEventKind;
use crate::proxy::{Inbound, Outbound};
use crate::sip::{Method, ResponseEditor, SipMessage};
use std::time::Instant;

impl ProxyCore {
    pub(super) fn response(
        &self,
        inbound: &Inbound,
        msg: &SipMessage,
        now: Instant,
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
        let mut o = Outcome::new(class, Disposition::Forwarded);
        o.detection = self.observe_response(msg, now);
        o
    }

    /// Tells the detector a relayed response to an INVITE: ringing, answered, or failed.
    fn observe_response(&self, msg: &SipMessage, now: Instant) -> Option<CallEventKind> {
        self.detector.as_ref()?;
        let status = msg.status()?;
        let kind = match status {
            180 | 183 => CallEventKind::Ringing,
            200..=299 => CallEventKind::Answered,
            300..=699 => CallEventKind::Failed { status },
            _ => return None,
        };
        let invite = msg
            .cseq()
            .ok()
            .flatten()
            .is_some_and(|c| c.method == Method::Invite);
        let call_id = msg.call_id()?;
        if !invite {
            return None;
        }
        self.observe(call_id.as_bytes(), kind, now)
    }
}
