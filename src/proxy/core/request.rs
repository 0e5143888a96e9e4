//! The request path: validate, absorb, answer, or screen and forward (see the module guide
//! in [`super`] for the rules in order).

use super::branch::{self, Branch, FieldHasher};
use super::config::ForeignRoute;
use super::dialog;
use super::identity;
use super::net::{self, uri_destination};
use super::reply::ReplyTo;
use super::{
    actions, Checks, Decision, Disposition, MessageClass, Outcome, ProofCheck, ProxyCore,
    RequestError, RequestRefusal, RoutingRefusal,
};
use crate::blocklist::Action;
use crate::detection::{CallEventKind, CallKey};
use crate::numbers::{Caller, NumberingProfile};
use crate::policy::{CallContext, Callee, Verstat, Visited};
use crate::proxy::{Inbound, Outbound, Transport};
use crate::sip::{
    derive_to_tag, is_token, CSeq, HeaderName, Method, NameAddr, RequestEditor, ResponseBuilder,
    Scheme, SipMessage, Uri, Via,
};
use std::net::SocketAddr;
use std::time::Instant;

/// Max-Forwards written when a request has none (RFC 3261 §16.6 step 3).
const DEFAULT_MAX_FORWARDS: u32 = 70;

/// The parts of a request every rule needs, read once and checked.
pub(super) struct Checked<'m> {
    pub(super) call_id: &'m [u8],
    cseq: CSeq<'m>,
    pub(super) from: NameAddr<'m>,
    to: NameAddr<'m>,
    max_forwards: Option<u32>,
    uri: Uri<'m>,
    pub(super) uri_raw: &'m [u8],
}

impl<'m> Checked<'m> {
    /// Reads the mandatory headers (RFC 3261 §8.1.1), or the reason they are unusable.
    fn read(msg: &'m SipMessage) -> Result<Checked<'m>, RequestError> {
        let uri_raw = msg.request_uri().ok_or(RequestError::BadRequestUri)?;
        let uri = uri_raw
            .parse_uri()
            .map_err(|_| RequestError::BadRequestUri)?;
        // Two Froms (or `f:` and `From:`) would be screened one way and read another way by
        // the switch; two To or Call-ID lines are as ambiguous, and two CSeq, Max-Forwards
        // or Content-Length lines leave the transaction, hop count or framing to whoever
        // reads which (RFC 4475 §3.3.8, §3.3.9).
        match msg.repeated_singleton() {
            None => {}
            Some(HeaderName::From) => return Err(RequestError::DuplicateFrom),
            Some(HeaderName::To) => return Err(RequestError::DuplicateTo),
            Some(HeaderName::CSeq) => return Err(RequestError::DuplicateCSeq),
            Some(HeaderName::MaxForwards) => return Err(RequestError::DuplicateMaxForwards),
            Some(HeaderName::ContentLength) => return Err(RequestError::DuplicateContentLength),
            // The parser reports no other kind.
            Some(_) => return Err(RequestError::DuplicateCallId),
        }
        let call_id = msg
            .call_id()
            .map(|c| c.as_bytes().trim_ascii())
            .filter(|c| !c.is_empty())
            .ok_or(RequestError::NoCallId)?;
        let cseq = match msg.cseq() {
            Ok(Some(c)) if Some(c.method_bytes) == msg.method_bytes() => c,
            _ => return Err(RequestError::BadCSeq),
        };
        let from = match msg.from() {
            Ok(Some(f)) => f,
            _ => return Err(RequestError::BadFrom),
        };
        let to = match msg.to() {
            Ok(Some(t)) => t,
            _ => return Err(RequestError::BadTo),
        };
        let max_forwards = msg
            .max_forwards()
            .map_err(|_| RequestError::BadMaxForwards)?;
        Ok(Checked {
            call_id,
            cseq,
            from,
            to,
            max_forwards,
            uri,
            uri_raw: uri_raw.as_bytes().trim_ascii(),
        })
    }

    /// The §16.11 branch for this request (see [`branch`]).
    fn branch(&self, top: &Via<'_>) -> Branch {
        let mut tx = FieldHasher::new();
        match top.branch() {
            Some(b) if b.starts_with(branch::COOKIE) => {
                tx.field(b)
                    .field(top.host())
                    .field(&top.port().unwrap_or(0).to_le_bytes())
                    .field(top.transport());
            }
            // RFC 2543 client: no unique branch, hash what identifies the transaction.
            _ => {
                tx.field(top.raw())
                    .field(self.to.tag().unwrap_or_default())
                    .field(self.from.tag().unwrap_or_default())
                    .field(self.call_id)
                    .field(&self.cseq.seq.to_le_bytes())
                    .field(self.uri_raw);
            }
        }
        let lp = FieldHasher::new()
            .field(self.uri_raw)
            .field(self.from.tag().unwrap_or_default())
            .field(self.call_id)
            .field(&self.cseq.seq.to_le_bytes())
            .finish();
        Branch::new(tx.finish(), lp)
    }
}

impl ProxyCore {
    pub(super) fn request(
        &self,
        inbound: &Inbound,
        msg: &SipMessage,
        now: Instant,
        out: &mut Vec<Outbound>,
    ) -> Outcome {
        let method = msg.method().unwrap_or(Method::Other);
        let class = MessageClass::Request(method);
        let top = match msg.top_via() {
            Ok(Some(v)) => v,
            Ok(None) => return malformed(class, RequestError::NoVia),
            Err(_) => return malformed(class, RequestError::BadVia),
        };
        let reply = ReplyTo::new(&self.compiled, inbound, &top);
        let req = match Checked::read(msg) {
            Ok(r) => r,
            Err(reason) => {
                let mut o = self.answer(msg, method, 400, "Bad Request", reply, out);
                o.error = Some(reason.as_str());
                return o;
            }
        };
        let to_tag = req.to.tag();

        // An ACK for a final response this proxy generated: the To-tag is the one derived
        // from the same Call-ID, From-tag and top Via.
        if method == Method::Ack {
            if let Some(tag) = to_tag {
                if tag == derive_to_tag(msg) {
                    return Outcome::new(class, Disposition::Absorbed);
                }
            }
        }

        // Overload: new calls are shed first (the `overload` module); nothing else is.
        if method == Method::Invite && to_tag.is_none() {
            if let Some(action) = self.overload.shed(inbound.queued) {
                return self.shed(msg, class, action, reply, out);
            }
        }

        // §16.3 step 2: a scheme we cannot route. tel: (RFC 3966) is a carrier's everyday
        // Request-URI and goes to the next hop like sip:; sips: is sip: over TLS (§19.1).
        if !matches!(req.uri.scheme(), Scheme::Sip | Scheme::Sips | Scheme::Tel) {
            return self.refuse(
                msg,
                method,
                RequestRefusal::UnsupportedUriScheme,
                None,
                reply,
                out,
            );
        }

        // A redirect server is the UAS of every OPTIONS (RFC 3261 §11).
        if method == Method::Options && self.compiled.redirect.is_some() {
            return self.redirect_plain(
                msg,
                class,
                200,
                "OK",
                super::redirect::AllowHeader::Optional,
                reply,
                out,
            );
        }

        // OPTIONS addressed to the proxy itself (RFC 3261 §11, §16.3 step 3).
        if method == Method::Options
            && to_tag.is_none()
            && self
                .compiled
                .is_us(req.uri.host(), req.uri.port(), inbound.local)
            && (req.uri.user().is_none() || req.max_forwards == Some(0))
        {
            return self.answer(msg, method, 200, "OK", reply, out);
        }

        let max_forwards = match req.max_forwards {
            Some(0) => {
                return self.refuse(msg, method, RequestRefusal::TooManyHops, None, reply, out)
            }
            Some(n) => n - 1,
            None => DEFAULT_MAX_FORWARDS,
        };

        let branch = req.branch(&top);
        let ours = |via: &Via<'_>| {
            via.branch()
                .and_then(branch::loop_part_of)
                .is_some_and(|lp| lp == branch.loop_part())
                && self.compiled.is_us(via.host(), via.port(), inbound.local)
        };
        // The top Via is already parsed; the others only when there are others.
        let mut looped = ours(&top);
        if msg.via_count() > 1 {
            for via in msg.vias().skip(1) {
                match via {
                    Ok(v) => looped |= ours(&v),
                    Err(_) => {
                        let mut o = self.answer(msg, method, 400, "Bad Request", reply, out);
                        o.error = Some(RequestError::BadVia.as_str());
                        return o;
                    }
                }
            }
        }
        if looped {
            return self.refuse(msg, method, RequestRefusal::Loop, None, reply, out);
        }

        // §16.3 step 5: this proxy supports no option tag, so any Proxy-Require is refused,
        // but on ACK and CANCEL, where it MUST be ignored (§8.2.2.3).
        if !matches!(method, Method::Ack | Method::Cancel) && msg.proxy_require().next().is_some() {
            return match unsupported(msg) {
                Some(tags) => self.refuse(
                    msg,
                    method,
                    RequestRefusal::BadExtension,
                    Some(&tags),
                    reply,
                    out,
                ),
                None => {
                    let mut o = self.answer(msg, method, 400, "Bad Request", reply, out);
                    o.error = Some(RequestError::BadProxyRequire.as_str());
                    o
                }
            };
        }

        // Redirect mode: every request is answered here, nothing is forwarded.
        if let Some(cfg) = self.compiled.redirect {
            return self.redirect(inbound, msg, &req, method, cfg, reply, now, out);
        }

        // Route (RFC 3261 §16.4, §16.6 steps 6-7), confined to the next hops and peers.
        let mut ed = RequestEditor::new(msg);
        let popped = ed.pop_top_route_if(|na| {
            self.compiled
                .is_us(na.uri().host(), na.uri().port(), inbound.local)
        });
        let mut checks = Checks::default();
        // An INVITE with a To-tag is in-dialog only with our proof (rule 7).
        if let (Method::Invite, Some(tag)) = (method, to_tag) {
            let proof = popped
                .then(|| msg.routes().next().and_then(Result::ok))
                .flatten()
                .and_then(|na| na.uri().params().get(dialog::PARAM).flatten());
            let ok = proof.is_some_and(|p| {
                self.dialog_key
                    .verifies(p, req.call_id, req.from.tag(), Some(tag))
            });
            checks.proof = Some(if ok {
                ProofCheck::Accepted
            } else {
                ProofCheck::Refused
            });
        }
        let initial = to_tag.is_none() || checks.proof == Some(ProofCheck::Refused);
        let pending_key = (method == Method::Invite && initial).then(|| branch::key(&branch));
        if let Some(key) = pending_key {
            self.hops.invite_arrived(key, now);
        }
        let (hop_index, hop) = self.hops.select_index(now);
        let hop_dest = (hop.address, hop.transport);
        let next_route = msg.routes().nth(usize::from(popped));
        let mut dest = if initial || (method == Method::Ack && !popped) {
            // Initial requests (and the ACK of a non-2xx answer) go to a next hop only.
            match next_route {
                None => hop_dest,
                Some(route) => match route
                    .ok()
                    .and_then(|r| uri_destination(r.uri(), Transport::Udp))
                    .filter(|d| self.compiled.is_hop(d.0))
                {
                    Some(d) => d,
                    None if self.config.proxy.foreign_route == ForeignRoute::Reject => {
                        let mut o = self.answer(msg, method, 403, "Forbidden", reply, out);
                        o.checks.routing = Some(RoutingRefusal::RouteRejected);
                        o.checks.proof = checks.proof;
                        return o;
                    }
                    None => {
                        ed.remove_headers("Route");
                        checks.routing = Some(RoutingRefusal::RouteIgnored);
                        hop_dest
                    }
                },
            }
        } else {
            // In-dialog: the next Route, else the Request-URI, when an IP literal; only to a
            // next hop, the warn service or a configured peer.
            let (target, refusal) = match next_route {
                Some(Ok(route)) => (
                    uri_destination(route.uri(), Transport::Udp),
                    RoutingRefusal::InDialogRoute,
                ),
                Some(Err(_)) => (None, RoutingRefusal::InDialogRoute),
                None if self
                    .compiled
                    .is_us(req.uri.host(), req.uri.port(), inbound.local) =>
                {
                    (None, RoutingRefusal::InDialogRequestUri)
                }
                None => (
                    uri_destination(&req.uri, Transport::Udp),
                    RoutingRefusal::InDialogRequestUri,
                ),
            };
            match target {
                None => hop_dest,
                Some(d) if self.compiled.may_reach_in_dialog(d.0) => d,
                Some(_) => {
                    let mut o = self.answer(msg, method, 403, "Forbidden", reply, out);
                    o.checks.routing = Some(refusal);
                    return o;
                }
            }
        };

        // SIPS: TLS on every hop (RFC 3261 §26.2.2), never forwarded in the clear.
        if req.uri.scheme() == Scheme::Sips && dest.1 != Transport::Tls {
            let mut o = self.refuse(
                msg,
                method,
                RequestRefusal::SipsWithoutTls,
                None,
                reply,
                out,
            );
            o.checks.proof = checks.proof;
            o.checks.routing = o.checks.routing.or(checks.routing);
            return o;
        }

        // The caller check (initial INVITEs, and INVITEs with a To-tag but no proof).
        let mut decision = None;
        let mut observed = None;
        if method == Method::Invite && initial {
            let (d, visited) = self.screen_call(inbound, msg, &req, now);
            observed = self.observe_invite(req.call_id, &d, visited, now);
            let applied = match d.applied {
                Action::Block => {
                    let mut o = self.block(msg, class, d, reply, out);
                    o.detection = observed;
                    o.checks.proof = checks.proof;
                    o.checks.routing = o.checks.routing.or(checks.routing);
                    return o;
                }
                Action::Warn => match (
                    self.compiled.warn_dest,
                    actions::warn(
                        &mut ed,
                        &self.compiled.warn,
                        &self.compiled.tag.value,
                        &d.verdict,
                        req.uri_raw,
                    ),
                ) {
                    (Some(w), Ok(())) => {
                        dest = w;
                        Action::Warn
                    }
                    // Unreachable with a validated config; fail open.
                    _ => {
                        checks.fail_open = true;
                        Action::Allow
                    }
                },
                Action::Tag => match actions::tag(&mut ed, msg, &self.compiled.tag, &d.verdict) {
                    Ok(()) => Action::Tag,
                    Err(_) => {
                        checks.fail_open = true;
                        Action::Allow
                    }
                },
                Action::Allow => Action::Allow,
            };
            decision = Some(Decision { applied, ..d });
        }

        // Forward (RFC 3261 §16.6), without identity an untrusted sender asserted.
        let identity_removed = identity::strip_untrusted(
            &self.compiled,
            &mut ed,
            msg,
            inbound.source.ip(),
            inbound.verified_peer,
        );
        self.write_vias(&mut ed, &top, inbound, dest.1, &branch);
        ed.set_max_forwards(max_forwards);
        // Behavioural detection needs each call's BYE (its duration): it record-routes
        // INVITEs whatever `proxy.record_route` says.
        let detecting = self.detector.is_some() && method == Method::Invite;
        if (self.config.proxy.record_route || detecting)
            && to_tag.is_none()
            && matches!(method, Method::Invite | Method::Subscribe | Method::Refer)
        {
            self.record_route(&mut ed, inbound.local, inbound.transport, &req);
        }
        let data = ed.finish().freeze();
        if !fits_transport(data.len(), dest.0, dest.1) {
            // Ours, not the hop's: answered, never sent, never counted against the hop.
            let mut o = self.answer(msg, method, 513, "Message Too Large", reply, out);
            o.decision = decision;
            o.detection = observed;
            return o;
        }
        if let Some(key) = pending_key.filter(|_| dest == hop_dest) {
            self.hops.invite_sent(key, hop_index, now);
        }
        let observed = match method {
            Method::Invite => decision.as_ref().and(observed),
            Method::Cancel => self.observe(req.call_id, CallEventKind::Cancelled, now),
            Method::Bye => self.observe(req.call_id, CallEventKind::Bye, now),
            _ => None,
        };
        out.push(Outbound {
            data,
            destination: dest.0,
            transport: dest.1,
            source: Some(inbound.local.ip()),
        });
        Outcome {
            class,
            disposition: Disposition::Forwarded,
            error: None,
            decision,
            identity_removed,
            detection: observed,
            checks,
        }
    }

    /// Screens every believable identity value (see the `identity` module) and decides the
    /// action to apply.
    ///
    /// With detection on, when the caller the detector will count is known before screening
    /// (every believable identity value reads as the same number: the common call), the
    /// INVITE is counted and the caller judged in one visit ([`Detector::visit`]), whose
    /// judgement (before this call) the policy's `behaviour` stage reads from the context.
    /// `true` in the answer: the INVITE is counted already.
    ///
    /// [`Detector::visit`]: crate::detection::Detector::visit
    pub(super) fn screen_call(
        &self,
        inbound: &Inbound,
        msg: &SipMessage,
        req: &Checked<'_>,
        now: Instant,
    ) -> (Decision, bool) {
        let group = self.compiled.peers.of(inbound.source.ip());
        let trusted = inbound.verified_peer || group.trust_identity;
        let profile = group.profile.as_ref().unwrap_or(&self.compiled.profile);
        let callee = callee_of(profile, &req.uri, req.uri_raw, &req.to);
        let verstat = if trusted {
            verstat_of(msg, &req.from)
        } else {
            Verstat::Absent
        };
        let anonymous = Caller::Anonymous;
        let call = CallContext {
            caller: &anonymous,
            caller_raw: b"",
            caller_source: None,
            callee,
            peer: group,
            transport: inbound.transport,
            verstat,
            privacy: msg.privacy().unwrap_or_default(),
            now,
            visited: None,
        };
        let order = &self.config.proxy.identity_order;
        let sole = match &self.detector {
            Some(_) => self
                .compiled
                .sole_caller(order, msg, &req.from, trusted, profile),
            None => None,
        };
        let finding;
        let (call, known) = match (&self.detector, sole) {
            (Some(detector), Some((raw, caller, n))) => {
                let key = CallKey::of_call_id(req.call_id);
                finding = detector.visit(key, &n, &callee.number.unwrap_or(n), now);
                let visited = Visited {
                    caller: n,
                    finding: finding.as_ref(),
                };
                (
                    CallContext {
                        visited: Some(visited),
                        ..call
                    },
                    Some((raw, caller)),
                )
            }
            _ => (call, None),
        };
        let id = self.compiled.screen_identity(
            order,
            msg,
            &req.from,
            &call,
            trusted,
            profile,
            &*self.screen,
            known,
        );
        let applied = match id.verdict.action {
            Action::Warn if self.compiled.warn_dest.is_none() => Action::Tag,
            a => a,
        };
        let decision = Decision {
            call_id: String::from_utf8_lossy(req.call_id).into_owned(),
            identity: id.source,
            caller_raw: String::from_utf8_lossy(id.raw).into_owned(),
            caller: id.caller,
            callee: callee.number,
            callee_raw: String::from_utf8_lossy(req.uri_raw).into_owned(),
            peer_group: group.name.clone(),
            verstat,
            verdict: id.verdict,
            applied,
        };
        (decision, known.is_some())
    }

    /// Tells the detector a screened INVITE: the deciding caller (a decorated number by its
    /// lenient reading) and the callee (the caller itself when the callee is no number: the
    /// call then counts for volume, not as a distinct callee), unless `visited`: screening
    /// counted it already ([`ProxyCore::screen_call`]). A call the verdict blocks is
    /// answered here, so its end is told too: failed with the block status.
    pub(super) fn observe_invite(
        &self,
        call_id: &[u8],
        d: &Decision,
        visited: bool,
        now: Instant,
    ) -> Option<CallEventKind> {
        self.detector.as_ref()?;
        let caller = match &d.caller {
            Caller::Number(n) => *n,
            Caller::Decorated { lenient, .. } => *lenient,
            Caller::Anonymous | Caller::Invalid(_) => return None,
        };
        let callee = d.callee.unwrap_or(caller);
        let invite = CallEventKind::Invite { caller, callee };
        let told = if visited {
            Some(invite)
        } else {
            self.observe(call_id, invite, now)
        };
        if d.applied == Action::Block {
            let (status, _) = actions::block_status(&self.compiled.block);
            self.observe(call_id, CallEventKind::Failed { status }, now);
        }
        told
    }

    /// Answers a blocked call (608, or 603+); if a header cannot be written (never with a
    /// validated config) the bare answer is sent: the call stays blocked.
    pub(super) fn block(
        &self,
        msg: &SipMessage,
        class: MessageClass,
        d: Decision,
        reply: ReplyTo,
        out: &mut Vec<Outbound>,
    ) -> Outcome {
        let cfg = &self.compiled.block;
        let (status, phrase) = actions::block_status(cfg);
        // From the full answer down to the bare one while it would outgrow the request
        // (rule 9); built only as far as needed.
        let candidates = actions::BlockShape::LADDER.into_iter().map(|shape| {
            actions::block(msg, cfg, &d.verdict, shape).unwrap_or_else(|_| {
                // The redress URL is validated at start; the bare answer still blocks.
                ResponseBuilder::new(msg, status, phrase).finish()
            })
        });
        let fit = reply.send_fitting(candidates, out);
        let mut o = Outcome::answered(class, status, fit);
        o.decision = Some(d);
        o
    }

    /// Sheds a new INVITE while overloaded: `503 Service Unavailable` with `Retry-After`
    /// (without it if the answer would outgrow the request, rule 9), or nothing.
    fn shed(
        &self,
        msg: &SipMessage,
        class: MessageClass,
        action: super::ShedAction,
        reply: ReplyTo,
        out: &mut Vec<Outbound>,
    ) -> Outcome {
        let mut o = match action {
            super::ShedAction::Drop => Outcome::new(class, Disposition::Dropped("overload")),
            super::ShedAction::Reject => {
                const PHRASE: &str = "Service Unavailable";
                let mut b = ResponseBuilder::new(msg, 503, PHRASE);
                let mut secs = itoa_buf();
                // Digits only: it cannot fail the header checks.
                let _ = b.header(
                    "Retry-After",
                    fmt_u32(self.overload.retry_after(), &mut secs),
                );
                let fit = reply.send(
                    b.finish(),
                    || ResponseBuilder::new(msg, 503, PHRASE).finish(),
                    out,
                );
                Outcome::answered(class, 503, fit)
            }
        };
        o.checks.shed = Some(action);
        o
    }

    /// Answers a request with a status of our own; an ACK is never answered (dropped).
    fn answer(
        &self,
        msg: &SipMessage,
        method: Method,
        status: u16,
        reason: &str,
        reply: ReplyTo,
        out: &mut Vec<Outbound>,
    ) -> Outcome {
        let class = MessageClass::Request(method);
        if method == Method::Ack {
            return Outcome::new(class, Disposition::Dropped(drop_reason(status)));
        }
        let mut b = ResponseBuilder::new(msg, status, reason);
        if status == 200 {
            // Header values are static; they cannot fail the checks.
            let _ = b.header("Allow", b"INVITE, ACK, CANCEL, BYE, OPTIONS");
        }
        // Without Allow when the answer would outgrow the request (rule 9).
        let fit = reply.send(
            b.finish(),
            || ResponseBuilder::new(msg, status, reason).finish(),
            out,
        );
        Outcome::answered(class, status, fit)
    }

    /// Refuses a request by a §16.3 check (416, 420, 482, 483), with `unsupported` as the
    /// `Unsupported` value of a 420; an ACK is never answered (dropped). The answer has no
    /// optional header: if it outgrows the request (rule 9) it is withheld, never sent
    /// without what the RFC requires in it.
    fn refuse(
        &self,
        msg: &SipMessage,
        method: Method,
        refusal: RequestRefusal,
        unsupported: Option<&[u8]>,
        reply: ReplyTo,
        out: &mut Vec<Outbound>,
    ) -> Outcome {
        let class = MessageClass::Request(method);
        let mut o = if method == Method::Ack {
            Outcome::new(class, Disposition::Dropped(refusal.as_str()))
        } else {
            let (status, phrase) = refusal.status();
            let build = || {
                let mut b = ResponseBuilder::new(msg, status, phrase);
                if let Some(tags) = unsupported {
                    // Tokens joined by ", ": they cannot fail the header checks.
                    let _ = b.header("Unsupported", tags);
                }
                b.finish()
            };
            let fit = reply.send(build(), build, out);
            Outcome::answered(class, status, fit)
        };
        o.checks.request = Some(refusal);
        o
    }

    /// Inserts `Record-Route: <sip:SENT-BY;lr;fwd=PROOF>` (built on the stack), the proof
    /// bound to this dialog's Call-ID and the caller's From-tag (see [`dialog`]).
    fn record_route(
        &self,
        ed: &mut RequestEditor<'_>,
        local: SocketAddr,
        transport: Transport,
        req: &Checked<'_>,
    ) {
        let sent_by = self.sent_by_text(local);
        let token = self
            .dialog_key
            .token(req.call_id, req.from.tag().unwrap_or_default());
        let mut rr = net::StackText::<340>::new();
        if let Some(sb) = sent_by.bytes() {
            rr.push(b"<sip:").push(sb);
            // A stream transport is named, so in-dialog requests come back over it (UDP is
            // the default of a sip: URI).
            match transport {
                Transport::Udp => {}
                Transport::Tcp => {
                    rr.push(b";transport=tcp");
                }
                Transport::Tls => {
                    rr.push(b";transport=tls");
                }
            }
            rr.push(b";lr;")
                .push(dialog::PARAM.as_bytes())
                .push(b"=")
                .push(&token)
                .push(b">");
        }
        if let Some(value) = rr.bytes().filter(|v| !v.is_empty()) {
            ed.insert_record_route(value);
        }
    }

    /// Writes our Via on top and, when needed, `received` (and `rport`) on the sender's Via
    /// (RFC 3261 §18.2.1, RFC 3581 §4): `received` when the sent-by is not the packet's
    /// source address or `rport` was asked for; `rport` when asked for, and always on a
    /// stream, whose responses must go back over the same connection.
    fn write_vias(
        &self,
        ed: &mut RequestEditor<'_>,
        top: &Via<'_>,
        inbound: &Inbound,
        out_transport: Transport,
        branch: &Branch,
    ) {
        let sent_by = self.sent_by_text(self.compiled.local_for(
            inbound.local,
            inbound.transport,
            out_transport,
        ));
        let mut via = net::StackText::<400>::new();
        via.push(b"SIP/2.0/")
            .push(out_transport.via_token().as_bytes())
            .push(b" ")
            .push(sent_by.bytes().unwrap_or(b"invalid"))
            .push(b";branch=")
            .push(branch.as_bytes());
        if let Some(v) = via.bytes() {
            ed.push_via(v);
        }
        let source = inbound.source;
        let rport = inbound.transport.is_stream() || top.rport().is_some();
        if !rport && net::parse_ip(top.host()) == Some(source.ip()) {
            return;
        }
        let mut ip = net::StackText::<64>::new();
        match source.ip() {
            // The common case without `fmt`.
            std::net::IpAddr::V4(v4) => {
                for (i, o) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        ip.push(b".");
                    }
                    ip.push(crate::sip::Decimal::new(u64::from(o)).as_bytes());
                }
            }
            v6 => {
                if std::fmt::Write::write_fmt(&mut ip, format_args!("{v6}")).is_err() {
                    return;
                }
            }
        }
        if let Some(ip) = ip.text() {
            // The top Via parsed above and the address is plain text: this cannot fail.
            let _ = ed.set_top_via_source(ip, rport.then_some(source.port()));
        }
    }
}

/// The largest UDP payload over IPv4: 65,535 minus the 20-byte IP and 8-byte UDP headers.
const MAX_UDP_PAYLOAD_V4: usize = 65_507;
/// The largest UDP payload over IPv6 (no jumbograms): 65,535 minus the 8-byte UDP header.
const MAX_UDP_PAYLOAD_V6: usize = 65_527;

/// Whether a forwarded request of `len` bytes can be sent to `dest` over `transport`.
///
/// A UDP datagram cannot carry more than [`MAX_UDP_PAYLOAD_V4`] (IPv4) or
/// [`MAX_UDP_PAYLOAD_V6`] (IPv6) bytes; the kernel would refuse the send (`EMSGSIZE`), and
/// that refusal is this node's, not the next hop's. RFC 3261 §18.1.1 would move a large
/// request to a congestion-controlled transport, but the hop's transport is configured, not
/// negotiated, so such a request is answered `513 Message Too Large` instead (IP
/// fragmentation still carries anything up to the limit). A stream has no such bound.
/// Room for a `u32` in decimal.
fn itoa_buf() -> [u8; 10] {
    [0; 10]
}

/// `n` in decimal, written into `buf`.
fn fmt_u32(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

fn fits_transport(len: usize, dest: SocketAddr, transport: Transport) -> bool {
    match transport {
        Transport::Tcp | Transport::Tls => true,
        Transport::Udp if dest.is_ipv4() => len <= MAX_UDP_PAYLOAD_V4,
        Transport::Udp => len <= MAX_UDP_PAYLOAD_V6,
    }
}

fn malformed(class: MessageClass, reason: RequestError) -> Outcome {
    let mut o = Outcome::new(class, Disposition::Dropped(reason.as_str()));
    o.error = Some(reason.as_str());
    o
}

/// The `Unsupported` value for a request's Proxy-Require tags (all of them: this proxy
/// supports none), joined by `, `; `None` when one of them is not a token (a 400, not 420).
fn unsupported(msg: &SipMessage) -> Option<Vec<u8>> {
    let mut tags = Vec::new();
    for tag in msg.proxy_require() {
        let tag = tag.as_bytes();
        if !tag.iter().all(|&b| is_token(b)) {
            return None;
        }
        if !tags.is_empty() {
            tags.extend_from_slice(b", ");
        }
        tags.extend_from_slice(tag);
    }
    Some(tags)
}

fn drop_reason(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        403 => "forbidden",
        513 => "too_large",
        _ => "ack_not_answered",
    }
}

/// The callee: the Request-URI's number, else To's (a Request-URI rewritten to a routing
/// number or a host keeps the dialled number in To).
fn callee_of<'m>(
    profile: &NumberingProfile,
    uri: &Uri<'m>,
    uri_raw: &'m [u8],
    to: &NameAddr<'m>,
) -> Callee<'m> {
    if let Caller::Number(n) = profile.normalize(uri_raw) {
        return Callee {
            user: uri.user().unwrap_or_default(),
            number: Some(n),
        };
    }
    let to_uri = to.uri();
    if let Caller::Number(n) = profile.normalize(to_uri.raw()) {
        return Callee {
            user: to_uri.user().unwrap_or_default(),
            number: Some(n),
        };
    }
    Callee {
        user: uri.user().unwrap_or_default(),
        number: None,
    }
}

/// What the network asserts about the caller ID: the `verstat` of the first
/// P-Asserted-Identity that has one, else of From. Only asked for a trusted sender.
fn verstat_of(msg: &SipMessage, from: &NameAddr<'_>) -> Verstat {
    msg.p_asserted_identities()
        .filter_map(Result::ok)
        .map(|na| Verstat::of_uri(na.uri().raw()))
        .find(|v| *v != Verstat::Absent)
        .unwrap_or_else(|| Verstat::of_uri(from.uri().raw()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Limits;
    use bytes::Bytes;

    fn parse(s: &str) -> SipMessage {
        SipMessage::parse(Bytes::copy_from_slice(s.as_bytes()), &Limits::default()).unwrap()
    }

    fn branch_of(s: &str) -> Branch {
        let m = parse(s);
        let top = m.top_via().unwrap().unwrap();
        Checked::read(&m).unwrap().branch(&top)
    }

    const INVITE: &str = "INVITE sip:b@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n\
                          From: <sip:a@192.0.2.1>;tag=f\r\nTo: <sip:b@10.0.0.1>\r\nCall-ID: c\r\nCSeq: 5 INVITE\r\n\r\n";

    #[test]
    fn the_method_is_not_part_of_the_branch() {
        let cancel = INVITE
            .replace("INVITE sip", "CANCEL sip")
            .replace("5 INVITE", "5 CANCEL");
        assert_eq!(branch_of(INVITE), branch_of(&cancel));
        // The ACK for a non-2xx response carries the response's To-tag: same branch still.
        let ack = INVITE
            .replace("INVITE sip", "ACK sip")
            .replace("5 INVITE", "5 ACK")
            .replace("To: <sip:b@10.0.0.1>", "To: <sip:b@10.0.0.1>;tag=t");
        assert_eq!(branch_of(INVITE), branch_of(&ack));
    }

    #[test]
    fn the_loop_key_ignores_the_top_via_and_follows_the_request_uri() {
        let via = INVITE.replace("branch=z9hG4bKabc", "branch=z9hG4bKother");
        let (a, b) = (branch_of(INVITE), branch_of(&via));
        assert_ne!(a, b);
        assert_eq!(a.loop_part(), b.loop_part());
        let spiral = INVITE.replace("INVITE sip:b@10.0.0.1", "INVITE sip:c@10.0.0.1");
        assert_ne!(a.loop_part(), branch_of(&spiral).loop_part());
        // Another sender using the same client branch gets another branch.
        let other = INVITE.replace("192.0.2.1:5060;branch", "192.0.2.2:5060;branch");
        assert_ne!(a, branch_of(&other));
    }

    #[test]
    fn udp_limits_per_family() {
        let v4: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
        assert!(fits_transport(65_507, v4, Transport::Udp));
        assert!(!fits_transport(65_508, v4, Transport::Udp));
        assert!(fits_transport(65_527, v6, Transport::Udp));
        assert!(!fits_transport(65_528, v6, Transport::Udp));
        assert!(fits_transport(200_000, v4, Transport::Tcp));
    }

    #[test]
    fn mandatory_header_problems_have_reasons() {
        let no_uri = INVITE.replace("INVITE sip:b@10.0.0.1", "INVITE b@10.0.0.1");
        if let Ok(m) = SipMessage::parse(Bytes::from(no_uri), &Limits::default()) {
            assert_eq!(Checked::read(&m).err(), Some(RequestError::BadRequestUri));
        }
        let m = parse(&INVITE.replace("Call-ID: c\r\n", "Call-ID:  \r\n"));
        assert_eq!(Checked::read(&m).err(), Some(RequestError::NoCallId));
    }
}
