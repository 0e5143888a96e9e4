//! The TLS module on its own, over loopback TCP, with certificates made by rcgen at test time:
//! handshakes, refusals by reason, client certificates and identity, bad input, reload.

mod tls_support;

use fraudwall::proxy::tls::{
    HandshakeFailure, TlsConfig, TlsConnectError, TlsMetrics, TlsReload, TlsServer, TlsVersion,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NAME: &str = "sip.test";

fn failure(e: TlsConnectError) -> HandshakeFailure {
    match e {
        TlsConnectError::Handshake { reason, .. } => reason,
        other => panic!("expected a handshake failure, got {other}"),
    }
}

async fn server_with(pki: &Pki, config: impl FnOnce(&mut TlsConfig)) -> (EchoServer, Metrics) {
    let leaf = pki.leaf(NAME, &[NAME, "127.0.0.1"], Validity::Current);
    let mut c = server_config(&leaf);
    config(&mut c);
    let metrics = Metrics::new();
    let server = TlsServer::new(&c, metrics.tls.clone()).unwrap();
    (EchoServer::start(server).await, metrics)
}

#[tokio::test]
async fn handshake_ok_by_name_and_by_ip_literal() {
    let pki = Pki::new("test CA");
    let (mut server, metrics) = server_with(&pki, |_| {}).await;
    let client = client(&pki.ca_path, None);
    for name in [NAME, "127.0.0.1"] {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut tls = client.connect(tcp, name).await.unwrap();
        assert_eq!(echo(&mut tls, b"OPTIONS\r\n").await, b"OPTIONS\r\n");
        assert_eq!(server_identity(&tls), vec![NAME.to_string()]);
        let peer = server.next_seen().await.unwrap();
        assert!(peer.names.is_empty() && !peer.trusted, "{peer:?}");
    }
    assert_eq!(
        metrics.value("fraudwall_tls_handshakes_total{side=\"inbound\"}"),
        2
    );
}

/// What the stream-connection loop shared with TCP needs of a byte stream.
fn is_stream<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static>(_: &T) {}

#[tokio::test]
async fn accepted_and_connected_streams_fit_the_generic_stream_loop() {
    let pki = Pki::new("test CA");
    let leaf = pki.leaf(NAME, &[NAME], Validity::Current);
    let tls = TlsServer::new(&server_config(&leaf), TlsMetrics::noop()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let accepted = tls.accept(tcp).await.unwrap();
        is_stream(&accepted.stream);
        assert_eq!(accepted.inner().local_addr().unwrap(), addr);
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = client(&pki.ca_path, None).connect(tcp, NAME).await.unwrap();
    is_stream(&stream);
    accept.await.unwrap();
}

#[tokio::test]
async fn wrong_server_name_refused() {
    let pki = Pki::new("test CA");
    let (mut server, metrics) = server_with(&pki, |_| {}).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let e = client(&pki.ca_path, None)
        .connect(tcp, "other.test")
        .await
        .unwrap_err();
    assert_eq!(failure(e), HandshakeFailure::UntrustedCertificate);
    // The server sees the client's certificate alert.
    assert_eq!(
        server.next_seen().await.unwrap_err(),
        HandshakeFailure::PeerRefused
    );
    assert_eq!(metrics.inbound_failures(HandshakeFailure::PeerRefused), 1);
    // An IP literal the certificate does not carry is refused too.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let e = client(&pki.ca_path, None)
        .connect(tcp, "127.0.0.2")
        .await
        .unwrap_err();
    assert_eq!(failure(e), HandshakeFailure::UntrustedCertificate);
}

#[tokio::test]
async fn untrusted_ca_and_expired_certificate_refused() {
    let pki = Pki::new("test CA");
    let other = Pki::new("other CA");
    let (server, _m) = server_with(&pki, |_| {}).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let e = client(&other.ca_path, None)
        .connect(tcp, NAME)
        .await
        .unwrap_err();
    assert_eq!(failure(e), HandshakeFailure::UntrustedCertificate);

    let expired = pki.leaf(NAME, &[NAME], Validity::Expired);
    let server = TlsServer::new(&server_config(&expired), TlsMetrics::noop()).unwrap();
    let server = EchoServer::start(server).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let e = client(&pki.ca_path, None)
        .connect(tcp, NAME)
        .await
        .unwrap_err();
    assert_eq!(failure(e), HandshakeFailure::ExpiredCertificate);
}

#[tokio::test]
async fn default_roots_refuse_a_private_ca() {
    // next_hop_ca = "" means the built-in Mozilla roots: a test CA is not among them.
    let pki = Pki::new("test CA");
    let (server, _m) = server_with(&pki, |_| {}).await;
    let c = TlsConfig::default();
    let client = fraudwall::proxy::tls::TlsClient::new(&c, None, TlsMetrics::noop()).unwrap();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let e = client.connect(tcp, NAME).await.unwrap_err();
    assert_eq!(failure(e), HandshakeFailure::UntrustedCertificate);
}

#[tokio::test]
async fn client_certificates_identity_and_trust() {
    let pki = Pki::new("test CA");
    let (mut server, metrics) = server_with(&pki, |c| {
        c.client_ca = pki.ca_path.clone();
        c.trusted_identities = vec!["SBC1.carrier.test".into()];
    })
    .await;
    let trusted = pki.leaf("ignored cn", &["sbc1.carrier.test"], Validity::Current);
    let stranger = pki.leaf("x", &["sbc9.other.test"], Validity::Current);
    let cn_only = pki.leaf("cn-only.carrier.test", &[], Validity::Current);

    let cases: [(Option<&Leaf>, &[&str], bool); 4] = [
        (Some(&trusted), &["sbc1.carrier.test"], true),
        (Some(&stranger), &["sbc9.other.test"], false),
        (Some(&cn_only), &["cn-only.carrier.test"], false),
        (None, &[], false),
    ];
    for (leaf, names, is_trusted) in cases {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut tls = client(&pki.ca_path, leaf).connect(tcp, NAME).await.unwrap();
        assert_eq!(echo(&mut tls, b"x").await, b"x");
        let peer = server.next_seen().await.unwrap();
        assert_eq!(peer.names, names, "{leaf:?}");
        assert_eq!(peer.trusted, is_trusted, "{leaf:?}");
    }

    // Expired, or from another CA: refused by the server, counted by reason.
    let expired = pki.leaf("old", &["sbc1.carrier.test"], Validity::Expired);
    let other = Pki::new("other CA");
    let foreign = other.leaf("f", &["sbc1.carrier.test"], Validity::Current);
    for (leaf, reason) in [
        (&expired, HandshakeFailure::ExpiredCertificate),
        (&foreign, HandshakeFailure::UntrustedCertificate),
    ] {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        // TLS 1.3: the client's side may finish before the server judges its certificate.
        if let Ok(mut tls) = client(&pki.ca_path, Some(leaf)).connect(tcp, NAME).await {
            let _ = tls.write_all(b"x").await;
            let mut b = [0u8; 1];
            assert!(
                !matches!(tls.read(&mut b).await, Ok(1)),
                "no echo after refusal"
            );
        }
        assert_eq!(server.next_seen().await.unwrap_err(), reason);
        assert_eq!(metrics.inbound_failures(reason), 1);
    }
}

#[tokio::test]
async fn required_client_certificate_missing_is_refused() {
    let pki = Pki::new("test CA");
    let (mut server, metrics) = server_with(&pki, |c| {
        c.client_ca = pki.ca_path.clone();
        c.require_client_certificate = true;
    })
    .await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    if let Ok(mut tls) = client(&pki.ca_path, None).connect(tcp, NAME).await {
        let _ = tls.write_all(b"x").await;
        let mut b = [0u8; 1];
        assert!(!matches!(tls.read(&mut b).await, Ok(1)));
    }
    assert_eq!(
        server.next_seen().await.unwrap_err(),
        HandshakeFailure::NoCertificate
    );
    assert_eq!(metrics.inbound_failures(HandshakeFailure::NoCertificate), 1);
    // With one, fine.
    let leaf = pki.leaf("c", &["client.test"], Validity::Current);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut tls = client(&pki.ca_path, Some(&leaf))
        .connect(tcp, NAME)
        .await
        .unwrap();
    assert_eq!(echo(&mut tls, b"y").await, b"y");
    assert_eq!(server.next_seen().await.unwrap().names, ["client.test"]);
}

#[tokio::test]
async fn garbage_stall_and_early_close_are_closed_and_classified_without_blocking_others() {
    let pki = Pki::new("test CA");
    let (mut server, metrics) = server_with(&pki, |c| {
        c.handshake_timeout = Duration::from_millis(400);
    })
    .await;

    // A client that stops mid-handshake: opened first, silent, holds only its own task.
    let started = Instant::now();
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    // A partial ClientHello record header, then nothing.
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();

    // Meanwhile a good client completes at once.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut tls = client(&pki.ca_path, None).connect(tcp, NAME).await.unwrap();
    assert_eq!(echo(&mut tls, b"ok").await, b"ok");
    assert!(server.next_seen().await.is_ok());
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "good client was held up"
    );

    // Plain SIP on the TLS port.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"OPTIONS sip:sip.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        server.next_seen().await.unwrap_err(),
        HandshakeFailure::BadHandshake
    );
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), plain.read_to_end(&mut rest))
        .await
        .expect("garbage connection closed");

    // The stalled one times out and is closed.
    assert_eq!(
        server.next_seen().await.unwrap_err(),
        HandshakeFailure::Timeout
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stalled.read_to_end(&mut rest))
        .await
        .expect("stalled connection closed");

    // One that closes mid-handshake.
    let mut early = TcpStream::connect(server.addr).await.unwrap();
    early.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    drop(early);
    assert_eq!(
        server.next_seen().await.unwrap_err(),
        HandshakeFailure::Closed
    );

    for r in [
        HandshakeFailure::Timeout,
        HandshakeFailure::BadHandshake,
        HandshakeFailure::Closed,
    ] {
        assert_eq!(metrics.inbound_failures(r), 1, "{r:?}");
    }
}

#[tokio::test]
async fn tls12_only_client_refused_by_a_tls13_minimum() {
    let pki = Pki::new("test CA");
    let (mut server, metrics) = server_with(&pki, |c| c.min_version = TlsVersion::V1_3).await;
    // A rustls client offering TLS 1.2 only.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_file_iter(&pki.ca_path).unwrap() {
        let cert: rustls_pki_types::CertificateDer<'static> = cert.unwrap();
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(NAME).unwrap();
    assert!(connector.connect(name, tcp).await.is_err());
    assert_eq!(
        server.next_seen().await.unwrap_err(),
        HandshakeFailure::ProtocolVersion
    );
    assert_eq!(
        metrics.inbound_failures(HandshakeFailure::ProtocolVersion),
        1
    );
}

fn client_fresh(pki: &Pki) -> fraudwall::proxy::tls::TlsClient {
    client(&pki.ca_path, None)
}

#[tokio::test]
async fn reload_swaps_certificate_without_dropping_open_connections() {
    let pki = Pki::new("test CA");
    let first = pki.leaf("first", &[NAME, "first.test"], Validity::Current);
    let c = server_config(&first);
    let metrics = Metrics::new();
    let tls = TlsServer::new(&c, metrics.tls.clone()).unwrap();
    let mut server = EchoServer::start(tls.clone()).await;
    let client = client(&pki.ca_path, None);

    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut open = client.connect(tcp, NAME).await.unwrap();
    assert_eq!(server_identity(&open), [NAME, "first.test"]);
    assert!(server.next_seen().await.is_ok());
    assert!(matches!(tls.reload_if_changed(), TlsReload::Unchanged));

    // New pair written over the same paths.
    let second = pki.leaf("second", &[NAME, "second.test"], Validity::Current);
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    assert!(matches!(tls.reload_if_changed(), TlsReload::Reloaded));
    assert!(matches!(tls.reload_if_changed(), TlsReload::Unchanged));

    // A fresh client each time: a resumed session would not show the certificate again.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let new = client_fresh(&pki).connect(tcp, NAME).await.unwrap();
    assert_eq!(server_identity(&new), [NAME, "second.test"]);
    // The connection opened before the swap still works.
    assert_eq!(echo(&mut open, b"still here").await, b"still here");

    // A broken PEM: the old (second) pair stays, logged and counted.
    std::fs::write(
        &first.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    match tls.reload_if_changed() {
        TlsReload::Failed(e) => assert!(e.to_string().starts_with("tls.certificate:"), "{e}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    // A certificate that does not match the key: refused as well.
    let third = pki.leaf("third", &[NAME], Validity::Current);
    std::fs::copy(&third.cert, &first.cert).unwrap();
    match tls.reload_if_changed() {
        TlsReload::Failed(e) => assert!(e.to_string().starts_with("tls.private_key:"), "{e}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(matches!(tls.reload_if_changed(), TlsReload::Unchanged));
    assert_eq!(metrics.value("fraudwall_tls_reload_failures_total"), 2);
    assert_eq!(metrics.value("fraudwall_tls_reloads_total"), 1);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let after = client_fresh(&pki).connect(tcp, NAME).await.unwrap();
    assert_eq!(server_identity(&after), [NAME, "second.test"]);
    assert_eq!(echo(&mut open, b"and still").await, b"and still");
}

#[tokio::test]
async fn config_errors_name_the_key_and_the_file() {
    let pki = Pki::new("test CA");
    let leaf = pki.leaf("a", &[NAME], Validity::Current);
    let other = pki.leaf("b", &[NAME], Validity::Current);
    let check = |c: TlsConfig| c.validate(true, true).unwrap_err().to_string();

    let mut c = server_config(&leaf);
    c.private_key = other.key.clone();
    assert!(check(c).starts_with("tls.private_key: "), "mismatched key");

    let mut c = server_config(&leaf);
    c.private_key = leaf.cert.clone();
    let e = check(c);
    assert!(
        e.starts_with("tls.private_key: ") && e.contains("PRIVATE KEY"),
        "{e}"
    );

    let mut c = server_config(&leaf);
    c.certificate = leaf.key.clone();
    let e = check(c);
    assert!(
        e.starts_with("tls.certificate: ") && e.contains("CERTIFICATE"),
        "{e}"
    );

    let mut c = server_config(&leaf);
    c.client_ca = pki.dir.path().join("missing.pem");
    let e = check(c);
    assert!(e.starts_with("tls.client_ca: cannot read "), "{e}");

    let mut c = server_config(&leaf);
    c.next_hop_ca = leaf.key.clone();
    let e = check(c);
    assert!(e.starts_with("tls.next_hop_ca: "), "{e}");

    let mut c = server_config(&leaf);
    c.client_ca = pki.ca_path.clone();
    c.next_hop_ca = pki.ca_path.clone();
    c.validate(true, true).unwrap();
}

/// Renegotiation: `openssl s_client -tls1_2` asks for it ("R" on its stdin); there is no second
/// ServerHello, the connection is closed and counted, and the server goes on serving others.
#[tokio::test]
async fn renegotiation_is_refused() {
    let pki = Pki::new("test CA");
    let (mut server, metrics) = server_with(&pki, |_| {}).await;
    let mut child = tokio::process::Command::new("openssl")
        // Not -quiet: it implies -ign_eof, which disables the "R" command.
        .args(["s_client", "-tls1_2", "-no_ign_eof", "-msg"])
        .arg("-connect")
        .arg(server.addr.to_string())
        .arg("-servername")
        .arg(NAME)
        .arg("-CAfile")
        .arg(&pki.ca_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl is needed for the renegotiation test");
    assert!(server.next_seen().await.is_ok());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut b = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("\nhello\n") {
            let n = stdout.read(&mut b).await.unwrap();
            assert!(n > 0, "s_client ended early");
            seen.extend_from_slice(&b[..n]);
        }
    })
    .await
    .expect("echo through s_client");
    // Ask for renegotiation: fraudwall closes the connection, so s_client ends by itself.
    stdin.write_all(b"R\n").await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .expect("s_client ends when the server closes")
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), stdout.read_to_end(&mut rest)).await;
    seen.extend_from_slice(&rest);
    let stdout = String::from_utf8_lossy(&seen).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RENEGOTIATING"),
        "s_client did not try: {stderr}"
    );
    // -msg shows every handshake message: the renegotiation ClientHello gets no ServerHello,
    // so the first handshake's is the only one.
    let after_reneg = &stdout[stdout.rfind("ClientHello").unwrap_or(0)..];
    let server_hellos = |t: &str| t.lines().filter(|l| l.ends_with(", ServerHello")).count();
    assert_eq!(server_hellos(after_reneg), 0, "renegotiated: {after_reneg}");
    assert_eq!(server_hellos(&stdout), 1, "{stdout}");
    // Closed and counted; exactly one handshake, ever; the server still serves a new client.
    assert_eq!(
        server.next_seen().await.unwrap_err(),
        HandshakeFailure::Renegotiation
    );
    assert_eq!(metrics.inbound_failures(HandshakeFailure::Renegotiation), 1);
    assert_eq!(
        metrics.value("fraudwall_tls_handshakes_total{side=\"inbound\"}"),
        1
    );
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut tls = client(&pki.ca_path, None).connect(tcp, NAME).await.unwrap();
    assert_eq!(echo(&mut tls, b"z").await, b"z");
}
