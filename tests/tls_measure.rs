//! Handshake cost against a reused connection, both ends in this process on loopback. Prints
//! figures (run with `--nocapture`); asserts nothing about time.
//!
//! `cargo nextest run --test tls_measure --no-capture` (dependencies are built optimised in the
//! test profile; for release figures: `cargo test --release --test tls_measure -- --nocapture`).

mod tls_support;

use fraudwall::proxy::tls::{TlsMetrics, TlsServer};
use std::time::{Duration, Instant};
use tls_support::*;
use tokio::net::TcpStream;

const NAME: &str = "sip.test";
const HANDSHAKES: u32 = 200;
const MESSAGES: u32 = 2000;

fn cpu_time() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    t(ru.ru_utime) + t(ru.ru_stime)
}

async fn measure(label: &str, kind: KeyKind) {
    let pki = Pki::new("measure CA");
    let leaf = pki.leaf_with(NAME, &[NAME], Validity::Current, kind);
    let server = TlsServer::new(&server_config(&leaf), TlsMetrics::noop()).unwrap();
    let server = EchoServer::start(server).await;
    let msg = invite(
        NAME,
        "+12025550123",
        "127.0.0.1:5061".parse().unwrap(),
        "measure",
    );

    // Full handshakes: a new client (no session cache) per connection.
    let (wall, cpu) = (Instant::now(), cpu_time());
    for _ in 0..HANDSHAKES {
        let client = client(&pki.ca_path, None);
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut tls = client.connect(tcp, NAME).await.unwrap();
        echo(&mut tls, b"x").await;
    }
    let (full_wall, full_cpu) = (wall.elapsed() / HANDSHAKES, (cpu_time() - cpu) / HANDSHAKES);

    // Resumed handshakes: one client whose session tickets are reused.
    let client = client(&pki.ca_path, None);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut first = client.connect(tcp, NAME).await.unwrap();
    echo(&mut first, b"x").await;
    let (wall, cpu) = (Instant::now(), cpu_time());
    for _ in 0..HANDSHAKES {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut tls = client.connect(tcp, NAME).await.unwrap();
        echo(&mut tls, b"x").await;
    }
    let (res_wall, res_cpu) = (wall.elapsed() / HANDSHAKES, (cpu_time() - cpu) / HANDSHAKES);

    // A reused connection: one INVITE-sized message and its echo per round trip.
    let (wall, cpu) = (Instant::now(), cpu_time());
    for _ in 0..MESSAGES {
        echo(&mut first, msg.as_bytes()).await;
    }
    let (msg_wall, msg_cpu) = (wall.elapsed() / MESSAGES, (cpu_time() - cpu) / MESSAGES);

    // The same round trip over plain TCP, for the TLS overhead per message.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = plain.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = plain.accept().await.unwrap();
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let (wall, cpu) = (Instant::now(), cpu_time());
    for _ in 0..MESSAGES {
        echo(&mut tcp, msg.as_bytes()).await;
    }
    let (tcp_wall, tcp_cpu) = (wall.elapsed() / MESSAGES, (cpu_time() - cpu) / MESSAGES);

    println!(
        "tls-measure {label}: full handshake+1 rtt {full_wall:?} wall {full_cpu:?} cpu (both ends) | \
resumed {res_wall:?} wall {res_cpu:?} cpu | reused conn {}B rtt {msg_wall:?} wall {msg_cpu:?} cpu | \
plain tcp rtt {tcp_wall:?} wall {tcp_cpu:?} cpu",
        msg.len()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn handshake_cost_ecdsa_p256_and_rsa_2048() {
    measure("ECDSA P-256", KeyKind::EcdsaP256).await;
    measure("RSA 2048", KeyKind::Rsa2048).await;
}
