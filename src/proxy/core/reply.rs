//! Where the proxy's own answers go, and the reflection rule (rule 9 of the module guide in
//! [`super`]).
//!
//! A UDP source address can be forged, so every answer the core generates (608, 603, 400,
//! 403, 416, 420, 482, 483, 505, 200 to OPTIONS) could be aimed at a victim: a small spoofed
//! request drawing a larger response. The rule: **over UDP, an answer to a source that is
//! neither a trusted peer (`trusted_peers`) nor a next hop is never larger than the datagram
//! that drew it.** The answer is built in full; if it is too large it is built again with
//! less: the 608 without its Call-Info jCard; the 603+ without Call-Info, then without the
//! redress `url` in its Reason, then without Reason; the 200 without Allow. If the smallest
//! is still too large nothing is sent; so is a 420, whose `Unsupported` is required, when it
//! does not fit. Both cases are counted
//! (`fraudwall_reflection_limited_total{result="trimmed"|"withheld"}`).
//!
//! A size cap rather than a per-source rate limit: it keeps the core stateless, costs one
//! comparison, and bounds the amplification factor at 1 for every source, forged or not (a
//! rate limit keyed by a forgeable address limits nothing). Real callers lose nothing: an
//! INVITE with Contact and SDP is far larger than the answer; only a stripped-down request,
//! the shape reflection attacks use, goes unanswered, and its sender's transaction times out
//! as it would if the datagram had been lost. TCP is exempt: its handshake proves the source.

use super::config::Compiled;
use super::ReplyFit;
use crate::proxy::{Inbound, Outbound, Transport};
use crate::sip::Via;
use bytes::BytesMut;
use std::net::SocketAddr;

/// Where an answer to one request goes, and how large it may be.
#[derive(Clone, Copy)]
pub(crate) struct ReplyTo {
    pub(crate) destination: SocketAddr,
    pub(crate) transport: Transport,
    /// The local address to answer from: the one the request arrived on.
    pub(crate) source: std::net::IpAddr,
    /// The largest answer allowed (`None`: any size).
    pub(crate) limit: Option<usize>,
}

impl ReplyTo {
    /// The reply address of `inbound` (whose top Via is `top`) and its size limit.
    pub(crate) fn new(c: &Compiled, inbound: &Inbound, top: &Via<'_>) -> ReplyTo {
        ReplyTo {
            destination: super::net::reply_destination(inbound, top),
            transport: inbound.transport,
            source: inbound.local.ip(),
            limit: c.answer_limit(inbound),
        }
    }

    /// Sends `full` if it fits, else `minimal()` if that fits, else nothing; says which
    /// (`None`: sent in full).
    pub(crate) fn send(
        &self,
        full: BytesMut,
        minimal: impl FnOnce() -> BytesMut,
        out: &mut Vec<Outbound>,
    ) -> Option<ReplyFit> {
        self.send_fitting(
            std::iter::once(full).chain(std::iter::once_with(minimal)),
            out,
        )
    }

    /// Sends the first of `candidates` (the full answer, then ever smaller ones) that fits,
    /// or nothing; says which (`None`: the first, in full). The iterator is advanced only as
    /// far as needed, so smaller answers are built only when the full one is too large.
    pub(crate) fn send_fitting(
        &self,
        mut candidates: impl Iterator<Item = BytesMut>,
        out: &mut Vec<Outbound>,
    ) -> Option<ReplyFit> {
        let Some(full) = candidates.next() else {
            return Some(ReplyFit::Withheld);
        };
        let (data, fit) = match self.limit {
            Some(max) if full.len() > max => match candidates.find(|c| c.len() <= max) {
                Some(smaller) => (smaller, Some(ReplyFit::Trimmed)),
                None => return Some(ReplyFit::Withheld),
            },
            _ => (full, None),
        };
        out.push(Outbound {
            data: data.freeze(),
            destination: self.destination,
            transport: self.transport,
            source: Some(self.source),
        });
        fit
    }
}

impl Compiled {
    /// The largest answer the core may send back for `inbound`: its own size over UDP from
    /// a source that is neither a trusted peer nor a next hop, else no limit.
    pub(crate) fn answer_limit(&self, inbound: &Inbound) -> Option<usize> {
        let ip = inbound.source.ip();
        let known = inbound.verified_peer
            || self.trusted(ip)
            || self.hop_addrs.iter().any(|h| h.ip() == ip);
        (inbound.transport == Transport::Udp && !known).then_some(inbound.data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::core::CoreConfig;
    use bytes::Bytes;

    fn inbound(source: &str, len: usize, transport: Transport) -> Inbound {
        Inbound {
            data: Bytes::from(vec![b'x'; len]),
            source: source.parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
            transport,
            verified_peer: false,
            queued: None,
        }
    }

    #[test]
    fn only_untrusted_udp_sources_are_limited() {
        let c = {
            let mut c = CoreConfig::default();
            c.proxy.trusted_peers = vec!["10.0.0.0/8".parse().unwrap()];
            c
        };
        let c = c.compile().unwrap();
        assert_eq!(
            c.answer_limit(&inbound("192.0.2.1:5060", 140, Transport::Udp)),
            Some(140)
        );
        assert_eq!(
            c.answer_limit(&inbound("192.0.2.1:5060", 140, Transport::Tcp)),
            None
        );
        assert_eq!(
            c.answer_limit(&inbound("10.1.1.1:5060", 140, Transport::Udp)),
            None
        );
        // The default next hop, 127.0.0.1:5080.
        assert_eq!(
            c.answer_limit(&inbound("127.0.0.1:5999", 140, Transport::Udp)),
            None
        );
    }

    #[test]
    fn full_then_minimal_then_nothing() {
        let to = ReplyTo {
            destination: "192.0.2.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            source: "192.0.2.9".parse().unwrap(),
            limit: Some(10),
        };
        let mut out = Vec::new();
        let bytes = |n: usize| BytesMut::from(&vec![b'a'; n][..]);
        assert_eq!(to.send(bytes(10), || bytes(1), &mut out), None);
        assert_eq!(
            to.send(bytes(11), || bytes(9), &mut out),
            Some(ReplyFit::Trimmed)
        );
        assert_eq!(
            to.send(bytes(11), || bytes(11), &mut out),
            Some(ReplyFit::Withheld)
        );
        assert_eq!(
            out.iter().map(|o| o.data.len()).collect::<Vec<_>>(),
            [10, 9]
        );
    }
}
