//! Redirect mode (`sip.mode = "redirect"`): fraudwall as a SIP redirect server (RFC 3261
//! §8.3), the way analytics services such as TransNexus ClearIP are deployed: the switch
//! sends each INVITE here and applies the answer; nothing is ever forwarded.
//!
//! A request goes through the same checks as in the proxy (parsing and the mandatory
//! headers, the source filter, §16.3 steps 2 to 5, the reflection rule), then:
//!
//! - INVITE: screened exactly as the proxy screens it (same identity reading and trust,
//!   same [`Screen`](crate::policy::Screen), same [`Decision`]) and answered:
//!   * allow: `redirect.allow_response`: `302 Moved Temporarily` with
//!     `Contact: <Request-URI>` and `Reason: SIP;cause=302;text="no-fraud-detected"`, or a
//!     bare `404 Not Found` / `503 Service Unavailable`;
//!   * tag: 302 with `Contact: <Request-URI>;category=<c>;score=<s>`, the tag header
//!     (`X-Fraud-Label`, the proxy's value) and, when a display label applies, a
//!     `P-Asserted-Identity` whose display name is the label the proxy would write;
//!   * warn: 302 with `Contact: <actions.warn_uri>` and the tag header;
//!   * block: the proxy's own answer (608 with the redress jCard, or 603+);
//! - ACK: absorbed; OPTIONS: `200 OK` with `Allow`; CANCEL: `200 OK` (the INVITE was
//!   answered at once, so there is nothing to cancel); anything else:
//!   `redirect.other_response`, `405 Method Not Allowed` with `Allow` or `403 Forbidden`.
//!
//! Stateless and retransmission-safe: an answer depends only on the request and the lists,
//! and its To-tag is derived from the Call-ID, From-tag and top Via
//! ([`crate::sip::derive_to_tag`]), so a retransmitted INVITE gets the same bytes, and its
//! ACK is recognised. An answer that cannot be written (never with a validated config)
//! falls back to the allow answer (fail open), counted in [`super::Checks::fail_open`].

use super::actions::{self, EditFailed, Label, LabelParams};
use super::config::RedirectConfig;
use super::reply::ReplyTo;
use super::request::Checked;
use super::{Decision, Disposition, MessageClass, Outcome, ProxyCore};
use crate::blocklist::Action;
use crate::proxy::{Inbound, Outbound};
use crate::sip::{Method, NameAddr, ResponseBuilder, SipMessage};
use bytes::BytesMut;
use std::time::Instant;

/// The methods a redirect server takes (`Allow` of its 200 to OPTIONS and its 405).
pub(crate) const ALLOW: &[u8] = b"INVITE, ACK, CANCEL, OPTIONS";

/// The Reason of the 302 to an allowed call (ClearIP's form).
pub(crate) const NO_FRAUD_REASON: &[u8] = b"SIP;cause=302;text=\"no-fraud-detected\"";

/// Whether an answer carries `Allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AllowHeader {
    /// No Allow (200 to CANCEL, 403).
    None,
    /// Allow, dropped if the answer would outgrow the request (200 to OPTIONS).
    Optional,
    /// Allow, required (405, RFC 3261 §21.4.6): withheld rather than sent without it.
    Required,
}

impl ProxyCore {
    /// Answers a request that passed the proxy's checks, as a redirect server.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn redirect(
        &self,
        inbound: &Inbound,
        msg: &SipMessage,
        req: &Checked<'_>,
        method: Method,
        cfg: RedirectConfig,
        reply: ReplyTo,
        now: Instant,
        out: &mut Vec<Outbound>,
    ) -> Outcome {
        let class = MessageClass::Request(method);
        match method {
            Method::Ack => Outcome::new(class, Disposition::Absorbed),
            Method::Invite => self.redirect_invite(inbound, msg, req, cfg, reply, now, out),
            Method::Options => {
                self.redirect_plain(msg, class, 200, "OK", AllowHeader::Optional, reply, out)
            }
            Method::Cancel => {
                self.redirect_plain(msg, class, 200, "OK", AllowHeader::None, reply, out)
            }
            _ => {
                let (status, phrase) = cfg.other_response.status();
                let allow = if status == 405 {
                    AllowHeader::Required
                } else {
                    AllowHeader::None
                };
                self.redirect_plain(msg, class, status, phrase, allow, reply, out)
            }
        }
    }

    /// An answer without a verdict: `status`, optionally with [`ALLOW`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn redirect_plain(
        &self,
        msg: &SipMessage,
        class: MessageClass,
        status: u16,
        phrase: &str,
        allow: AllowHeader,
        reply: ReplyTo,
        out: &mut Vec<Outbound>,
    ) -> Outcome {
        let build = |with_allow: bool| {
            let mut b = ResponseBuilder::new(msg, status, phrase);
            if with_allow {
                // A static value: it cannot fail the header checks.
                let _ = b.header("Allow", ALLOW);
            }
            b.finish()
        };
        let full = build(allow != AllowHeader::None);
        let fit = reply.send(full, || build(allow == AllowHeader::Required), out);
        Outcome::answered(class, status, fit)
    }

    /// Screens an INVITE and answers it with the verdict.
    #[allow(clippy::too_many_arguments)]
    fn redirect_invite(
        &self,
        inbound: &Inbound,
        msg: &SipMessage,
        req: &Checked<'_>,
        cfg: RedirectConfig,
        reply: ReplyTo,
        now: Instant,
        out: &mut Vec<Outbound>,
    ) -> Outcome {
        let class = MessageClass::Request(Method::Invite);
        let (d, visited) = self.screen_call(inbound, msg, req, now);
        let observed = self.observe_invite(req.call_id, &d, visited, now);
        let built = match d.applied {
            // Exactly the proxy's block answer.
            Action::Block => {
                let mut o = self.block(msg, class, d, reply, out);
                o.detection = observed;
                return o;
            }
            Action::Tag => Some(self.tag_answer(inbound, msg, req, &d)),
            Action::Warn => Some(self.warn_answer(msg, &d)),
            Action::Allow => None,
        };
        let (applied, fail_open, (status, answers)) = match built {
            Some(Ok(answer)) => (d.applied, false, answer),
            None => (Action::Allow, false, allow_answer(msg, req, cfg)),
            Some(Err(EditFailed)) => (Action::Allow, true, allow_answer(msg, req, cfg)),
        };
        let fit = reply.send_fitting(answers.into_iter(), out);
        let mut o = Outcome::answered(class, status, fit);
        o.checks.fail_open = fail_open;
        o.decision = Some(Decision { applied, ..d });
        o.detection = observed;
        o
    }

    /// The tag answer: 302 back to the Request-URI with the label as Contact parameters, the
    /// tag header and the labelled P-Asserted-Identity; then the Contact alone.
    fn tag_answer(
        &self,
        inbound: &Inbound,
        msg: &SipMessage,
        req: &Checked<'_>,
        d: &Decision,
    ) -> Result<(u16, Vec<BytesMut>), EditFailed> {
        let tag = &self.compiled.tag;
        let mut contact = contact_of(req.uri_raw);
        contact.extend_from_slice(LabelParams(&d.verdict).to_string().as_bytes());
        let label = Label {
            value: &tag.value,
            verdict: &d.verdict,
        }
        .to_string();
        // The proxy's label: the verdict's own, else the configured one.
        let display = d.verdict.label.as_deref().unwrap_or(&tag.display_label);
        let pai = (!display.is_empty())
            .then(|| self.labelled_identity(inbound, msg, req, display))
            .flatten();
        let mut full = ResponseBuilder::new(msg, 302, "Moved Temporarily");
        actions::edit(full.header("Contact", &contact))?;
        actions::edit(full.header(&tag.header, label.as_bytes()))?;
        if let Some(pai) = pai {
            actions::edit(full.header("P-Asserted-Identity", &pai))?;
        }
        let mut minimal = ResponseBuilder::new(msg, 302, "Moved Temporarily");
        actions::edit(minimal.header("Contact", &contact))?;
        Ok((302, vec![full.finish(), minimal.finish()]))
    }

    /// `"<label> <old name>" <uri>`: the identity the call would carry through the proxy with
    /// its display name labelled: the first P-Asserted-Identity of a trusted sender, else
    /// From.
    fn labelled_identity(
        &self,
        inbound: &Inbound,
        msg: &SipMessage,
        req: &Checked<'_>,
        label: &str,
    ) -> Option<Vec<u8>> {
        let trusted =
            inbound.verified_peer || self.compiled.peers.of(inbound.source.ip()).trust_identity;
        let pai = trusted
            .then(|| msg.p_asserted_identities().next().and_then(Result::ok))
            .flatten();
        let na: &NameAddr<'_> = pai.as_ref().unwrap_or(&req.from);
        let name = actions::prefixed(label, na.display_name());
        let mut v = Vec::with_capacity(name.len() + na.uri().raw().len() + 8);
        v.push(b'"');
        for b in name.bytes() {
            if b == b'"' || b == b'\\' {
                v.push(b'\\');
            }
            v.push(b);
        }
        v.extend_from_slice(b"\" <");
        push_uri(&mut v, na.uri().raw());
        v.push(b'>');
        Some(v)
    }

    /// The warn answer: 302 to the announcement service with the tag header; then the
    /// Contact alone.
    fn warn_answer(
        &self,
        msg: &SipMessage,
        d: &Decision,
    ) -> Result<(u16, Vec<BytesMut>), EditFailed> {
        let contact = contact_of(self.compiled.warn.service_uri.as_bytes());
        let label = Label {
            value: &self.compiled.tag.value,
            verdict: &d.verdict,
        }
        .to_string();
        let mut full = ResponseBuilder::new(msg, 302, "Moved Temporarily");
        actions::edit(full.header("Contact", &contact))?;
        actions::edit(full.header(&self.compiled.tag.header, label.as_bytes()))?;
        let mut minimal = ResponseBuilder::new(msg, 302, "Moved Temporarily");
        actions::edit(minimal.header("Contact", &contact))?;
        Ok((302, vec![full.finish(), minimal.finish()]))
    }
}

/// The allow answer (`redirect.allow_response`): 302 back to the Request-URI with the
/// no-fraud Reason, then without it; or a bare 404/503. If a header cannot be written (a
/// Request-URI the checks refuse) the bare status is sent: the call still goes on.
fn allow_answer(msg: &SipMessage, req: &Checked<'_>, cfg: RedirectConfig) -> (u16, Vec<BytesMut>) {
    let (status, phrase) = cfg.allow_response.status();
    if status != 302 {
        return (
            status,
            vec![ResponseBuilder::new(msg, status, phrase).finish()],
        );
    }
    let contact = contact_of(req.uri_raw);
    let build = |reason: bool| {
        let mut b = ResponseBuilder::new(msg, status, phrase);
        if b.header("Contact", &contact).is_err() {
            return ResponseBuilder::new(msg, status, phrase).finish();
        }
        if reason {
            let _ = b.header("Reason", NO_FRAUD_REASON);
        }
        b.finish()
    };
    (status, vec![build(true), build(false)])
}

/// `<uri>` for a Contact value.
fn contact_of(uri: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(uri.len() + 48);
    v.push(b'<');
    push_uri(&mut v, uri);
    v.push(b'>');
    v
}

/// Appends a URI for use between `<` and `>`: the characters that would end or confuse the
/// angle brackets (never valid in a URI, RFC 3261 §25.1) are percent-encoded, so a hostile
/// Request-URI cannot add parameters or headers to the answer.
fn push_uri(v: &mut Vec<u8>, uri: &[u8]) {
    for &b in uri {
        match b {
            b'<' => v.extend_from_slice(b"%3C"),
            b'>' => v.extend_from_slice(b"%3E"),
            b'"' => v.extend_from_slice(b"%22"),
            b' ' => v.extend_from_slice(b"%20"),
            b'\t' => v.extend_from_slice(b"%09"),
            b => v.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_uri_cannot_leave_its_angle_brackets() {
        assert_eq!(contact_of(b"sip:+1@x"), b"<sip:+1@x>");
        assert_eq!(
            contact_of(b"sip:a>;evil=1<\"@x"),
            b"<sip:a%3E;evil=1%3C%22@x>".to_vec()
        );
    }
}
