//! Hostile input through `ProxyCore::handle`: arbitrary bytes and mutated INVITEs and
//! responses never panic, never produce more than one message, and anything produced parses.

use bytes::Bytes;
use fraudwall::policy::{CallContext, Screen, Verdict};
use fraudwall::proxy::core::{CoreConfig, Disposition, ProxyCore};
use fraudwall::proxy::{Inbound, Transport};
use fraudwall::sip::{Limits, SipMessage};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Instant;

struct BlockAll;
impl Screen for BlockAll {
    fn screen(&self, _: &CallContext<'_>) -> Verdict {
        Verdict::listed(fraudwall::blocklist::Action::Block, "x", 1)
    }
}

const INVITE: &str = "INVITE sip:+15550001@127.0.0.1 SIP/2.0\r\n\
    Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\nMax-Forwards: 70\r\n\
    From: \"A\" <sip:+8613800000001@192.0.2.1>;tag=1\r\nTo: <sip:+15550001@127.0.0.1>\r\n\
    Call-ID: c@h\r\nCSeq: 1 INVITE\r\nP-Asserted-Identity: <tel:+8613800000001>\r\n\
    Route: <sip:127.0.0.1;lr>\r\nContent-Length: 3\r\n\r\nabc";

const RESPONSE: &str = "SIP/2.0 180 Ringing\r\n\
    Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfw0123456789abcdef01234567\r\n\
    Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;received=192.0.2.1;rport=5060\r\n\
    From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c@h\r\nCSeq: 1 INVITE\r\n\r\n";

fn core(tcp: bool) -> ProxyCore {
    let mut c = CoreConfig::default();
    c.proxy.trusted_peers = vec!["0.0.0.0/0".parse().unwrap()];
    c.proxy.record_route = true;
    c.actions.tag_display_label = "FRAUD?".into();
    if tcp {
        c.proxy.next_hops[0].transport = Some(Transport::Tcp);
    }
    ProxyCore::new(c, Arc::new(BlockAll)).unwrap()
}

fn check(core: &ProxyCore, data: Vec<u8>, transport: Transport) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    let o = core.handle(
        Inbound {
            data: Bytes::from(data),
            source: "192.0.2.1:5060".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
            transport,
            verified_peer: false,
            queued: None,
        },
        Instant::now(),
        &mut out,
    );
    prop_assert!(out.len() <= 1);
    if let Some(m) = out.first() {
        prop_assert!(SipMessage::parse(m.data.clone(), &Limits::default()).is_ok());
        prop_assert!(!matches!(
            o.disposition,
            Disposition::Dropped(_) | Disposition::Absorbed
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        check(&core(false), data, Transport::Udp)?;
    }

    #[test]
    fn mutated_messages(
        base in prop_oneof![Just(INVITE), Just(RESPONSE)],
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        tcp in any::<bool>(),
    ) {
        let mut data = base.as_bytes().to_vec();
        for (i, b) in edits {
            let at = i.index(data.len());
            data[at] = b;
        }
        if truncate {
            data.truncate(cut.index(data.len() + 1));
        }
        let t = if tcp { Transport::Tcp } else { Transport::Udp };
        check(&core(tcp), data, t)?;
    }

    #[test]
    fn spliced_header_text(
        insert in "[ -~\r\n]{0,80}",
        at in any::<prop::sample::Index>(),
    ) {
        let mut data = INVITE.as_bytes().to_vec();
        let pos = at.index(data.len());
        data.splice(pos..pos, insert.bytes());
        check(&core(false), data, Transport::Udp)?;
    }
}
