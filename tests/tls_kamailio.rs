//! Kamailio (Debian's kamailio-tls-modules) as a real TLS peer: our TLS client, as fraudwall
//! will use it towards a next hop, reaches it with name verification and gets SIP answers.
//! Fails without kamailio.

mod kamailio_tls;
mod tls_support;

use kamailio_tls::{free_tcp_port, KamailioTls, KamailioTlsOptions};
use std::net::SocketAddr;
use std::time::Duration;
use tls_support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SWITCH: &str = "switch.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_answers_our_tls_client() {
    let pki = Pki::new("test CA");
    let leaf = pki.leaf(SWITCH, &[SWITCH, "127.0.0.1"], Validity::Current);
    let listen: SocketAddr = format!("127.0.0.1:{}", free_tcp_port("127.0.0.1"))
        .parse()
        .unwrap();
    let k = KamailioTls::start(&KamailioTlsOptions {
        listen,
        certificate: leaf.cert.clone(),
        private_key: leaf.key.clone(),
        client_ca: None,
    });

    // One connection, two requests (a reused connection), by name.
    let client = client(&pki.ca_path, None);
    let tcp = TcpStream::connect(listen).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = client.connect(tcp, SWITCH).await.unwrap();
    for (user, status) in [
        ("+12025550123", "SIP/2.0 200 OK"),
        ("busy", "SIP/2.0 486 Busy Here"),
    ] {
        let call_id = format!("kam-{user}");
        tls.write_all(invite(SWITCH, user, local, &call_id).as_bytes())
            .await
            .unwrap();
        let answer = read_sip_message(&mut tls, Duration::from_secs(5)).await;
        assert!(answer.starts_with(status), "{answer}\nlog:\n{}", k.log());
        assert!(answer.contains(&format!("Call-ID: {call_id}")), "{answer}");
        assert!(answer.contains("SIP/2.0/TLS"), "Via kept: {answer}");
    }

    // A second connection by IP literal (IP SAN), OPTIONS.
    let options = format!(
        "OPTIONS sip:{SWITCH} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK-opt\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@client.test>;tag=o1\r\nTo: <sip:{SWITCH}>\r\n\
Call-ID: kam-options\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let answer = sip_over_tls(listen, "127.0.0.1", &pki.ca_path, &options).await;
    assert!(answer.starts_with("SIP/2.0 200 OK"), "{answer}");

    // It saw all three, over TLS.
    let got = k.received();
    assert_eq!(got.len(), 3, "{got:?}\n{}", k.log());
    assert!(
        got[0].starts_with("INVITE sip:+12025550123@switch.test SIP/2.0/TLS"),
        "{got:?}"
    );

    // And a wrong name is refused before any SIP is sent.
    let tcp = TcpStream::connect(listen).await.unwrap();
    assert!(client.connect(tcp, "other.test").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_requiring_client_certificates_accepts_ours() {
    let pki = Pki::new("test CA");
    let leaf = pki.leaf(SWITCH, &[SWITCH], Validity::Current);
    let ours = pki.leaf("fraudwall.test", &["fraudwall.test"], Validity::Current);
    let listen: SocketAddr = format!("127.0.0.1:{}", free_tcp_port("127.0.0.1"))
        .parse()
        .unwrap();
    let k = KamailioTls::start(&KamailioTlsOptions {
        listen,
        certificate: leaf.cert.clone(),
        private_key: leaf.key.clone(),
        client_ca: Some(pki.ca_path.clone()),
    });
    let tcp = TcpStream::connect(listen).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = client(&pki.ca_path, Some(&ours))
        .connect(tcp, SWITCH)
        .await
        .unwrap();
    tls.write_all(invite(SWITCH, "busy", local, "kam-mtls").as_bytes())
        .await
        .unwrap();
    let answer = read_sip_message(&mut tls, Duration::from_secs(5)).await;
    assert!(answer.starts_with("SIP/2.0 486"), "{answer}\n{}", k.log());

    // Without a certificate Kamailio closes the connection: no answer.
    let tcp = TcpStream::connect(listen).await.unwrap();
    if let Ok(mut tls) = client(&pki.ca_path, None).connect(tcp, SWITCH).await {
        let _ = tls
            .write_all(invite(SWITCH, "busy", local, "kam-nocert").as_bytes())
            .await;
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut tls, &mut buf),
        )
        .await
        .expect("kamailio closes");
        assert!(
            !matches!(r, Ok(n) if n > 0),
            "answered without a client certificate"
        );
    }
}
