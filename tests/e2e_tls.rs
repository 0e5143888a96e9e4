//! End to end over TLS with real peers: a TLS client in front of the running `fraudwall`
//! binary (`sip.transports` with "tls"), and Kamailio with Debian's kamailio-tls-modules as
//! the switch behind it (`proxy.next_hops` over TLS, its certificate verified by name).
//! Certificates are made at test time by rcgen. Fails without sipp or kamailio.

mod kamailio_tls;
mod sipp_support;
mod tls_support;

use kamailio_tls::{free_tcp_port, KamailioTls, KamailioTlsOptions};
use sipp_support::{Options, Setup, BLOCKED, CLEAN};
use std::net::SocketAddr;
use std::time::Duration;
use tls_support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SWITCH: &str = "switch.test";
const NODE: &str = "fraudwall.test";

/// An INVITE over TLS from `caller` (digits) to `user`.
fn invite_from(caller: &str, user: &str, local: SocketAddr, call_id: &str) -> String {
    format!(
        "INVITE sip:{user}@{NODE} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK-{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+{caller}@client.test>;tag=t-{call_id}\r\n\
         To: <sip:{user}@{NODE}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{local};transport=tls>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

struct Node {
    _pki: Pki,
    kamailio: KamailioTls,
    fw: Setup,
    tls_port: u16,
    ca: std::path::PathBuf,
}

fn start() -> Node {
    let pki = Pki::new("e2e test CA");
    let switch = pki.leaf(SWITCH, &[SWITCH], Validity::Current);
    let node = pki.leaf(NODE, &[NODE, "127.0.0.1"], Validity::Current);
    let klisten: SocketAddr = format!("127.0.0.1:{}", free_tcp_port("127.0.0.1"))
        .parse()
        .unwrap();
    let kamailio = KamailioTls::start(&KamailioTlsOptions {
        listen: klisten,
        certificate: switch.cert.clone(),
        private_key: switch.key.clone(),
        client_ca: None,
    });
    let tls_port = free_tcp_port("127.0.0.1");
    let extra = format!(
        "[proxy]\nnext_hops = [{{ address = \"{klisten}\", transport = \"tls\", server_name = \"{SWITCH}\" }}]\n\
         [tls]\ncertificate = {:?}\nprivate_key = {:?}\nport = {tls_port}\nnext_hop_ca = {:?}\n\
         [health]\nprobe_interval = \"1s\"\n",
        node.cert.display().to_string(),
        node.key.display().to_string(),
        pki.ca_path.display().to_string(),
    );
    let fw = Setup::start_with(
        "127.0.0.1",
        Options {
            sip_config: "transports = [\"udp\", \"tls\"]",
            extra_config: &extra,
            next_hop: false,
            ..Options::default()
        },
    );
    let ca = pki.ca_path.clone();
    Node {
        _pki: pki,
        kamailio,
        fw,
        tls_port,
        ca,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_tls_both_sides_are_screened_and_relayed() {
    let n = start();
    let addr: SocketAddr = format!("127.0.0.1:{}", n.tls_port).parse().unwrap();
    let client = client(&n.ca, None);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = client
        .connect(tcp, NODE)
        .await
        .expect("fraudwall's certificate verifies");

    // A clean caller reaches the switch over TLS and its answers come back: 200, then 486
    // on the same connection.
    for (user, status, call_id) in [
        ("+15550001", "SIP/2.0 200 OK", "tls-clean"),
        ("busy", "SIP/2.0 486 Busy Here", "tls-busy"),
    ] {
        tls.write_all(invite_from(CLEAN, user, local, call_id).as_bytes())
            .await
            .unwrap();
        let answer = read_sip_message(&mut tls, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with(status),
            "{call_id}: {answer}\nkamailio:\n{}",
            n.kamailio.log()
        );
        assert!(answer.contains(&format!("Call-ID: {call_id}")), "{answer}");
    }
    // A listed caller is blocked by fraudwall and never reaches the switch.
    tls.write_all(invite_from(BLOCKED, "+15550001", local, "tls-blocked").as_bytes())
        .await
        .unwrap();
    let answer = read_sip_message(&mut tls, Duration::from_secs(5)).await;
    assert!(answer.starts_with("SIP/2.0 608"), "{answer}");

    let seen = n.kamailio.received();
    let invites: Vec<_> = seen.iter().filter(|l| l.starts_with("INVITE")).collect();
    assert_eq!(invites.len(), 2, "{seen:?}");
    let via = format!("SIP/2.0/TLS 127.0.0.1:{}", n.tls_port);
    assert!(
        invites.iter().all(|l| l.contains(&via)),
        "Kamailio should see fraudwall's TLS Via {via}: {invites:?}"
    );
    assert!(
        !invites.iter().any(|l| l.contains("tls-blocked")),
        "{invites:?}"
    );
    // The switch's health is probed over TLS too (OPTIONS answered by Kamailio), once a
    // second.
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while !n
        .kamailio
        .received()
        .iter()
        .any(|l| l.starts_with("OPTIONS"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no probe reached the switch: {:?}",
            n.kamailio.received()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = n.fw.http("/status");
    assert!(status.contains("\"transport\":\"tls\""), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_garbage_is_closed_and_counted_while_tls_calls_go_on() {
    let n = start();
    let addr: SocketAddr = format!("127.0.0.1:{}", n.tls_port).parse().unwrap();
    // Plain SIP on the TLS port: closed, counted by reason.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(invite_from(CLEAN, "+15550001", addr, "plain").as_bytes())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while n
        .fw
        .metric("fraudwall_tls_handshake_failures_total{side=\"inbound\",reason=\"bad_handshake\"}")
        < 1.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            n.fw.http("/metrics")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A good client still gets through.
    let answer = sip_over_tls(
        addr,
        NODE,
        &n.ca,
        &invite_from(CLEAN, "+15550001", addr, "after-garbage"),
    )
    .await;
    assert!(answer.starts_with("SIP/2.0 200 OK"), "{answer}");
    assert!(n.fw.metric("fraudwall_dropped_total{reason=\"tls_handshake\"}") >= 1.0);
}
