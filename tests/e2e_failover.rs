//! Next hops end to end (issue 9, "Next hops"): the built `fraudwall` between real sipp peers
//! on loopback.
//!
//! - Failover: two sipp switches as next hops, a sipp caller at 200 calls/s for 10 s, the
//!   first switch killed after 3 s. The proxy must notice at the first datagram the dead
//!   switch refuses (ICMP port unreachable, read from the socket's error queue): at most 1 %
//!   of calls fail, and the second switch sees its first INVITE within 2 s of the kill.
//! - A 65,507-byte INVITE (the largest UDP payload over IPv4) cannot be forwarded once our
//!   Via is added: the caller gets `513 Message Too Large`, and the hop stays up.
//!
//! sipp is required (Debian package sip-tester); without it these tests fail.

mod sipp_support;

use sipp_support::{free_port, sipp_dir, Guard, Options, Setup};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const IP: &str = "127.0.0.1";

/// A sipp switch (uas_echo.xml, OPTIONS auto-answered) on `port`, logging to `log`; times in
/// its log are UTC.
fn switch(dir: &Path, port: u16, log: &str) -> Guard {
    let sf = sipp_dir().join("uas_echo.xml");
    let child = Command::new("sipp")
        .args([
            "-sf",
            sf.to_str().unwrap(),
            "-i",
            IP,
            "-p",
            &port.to_string(),
            "-m",
            "100000",
            "-aa",
            "-nostdin",
            "-timeout",
            "40s",
            "-trace_msg",
            "-message_file",
            dir.join(log).to_str().unwrap(),
        ])
        .env("TZ", "UTC")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run sipp ({e}): these tests need sipp (Debian package sip-tester)")
        });
    let deadline = Instant::now() + Duration::from_secs(5);
    while UdpSocket::bind((IP, port)).is_ok() {
        assert!(Instant::now() < deadline, "sipp UAS did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Guard(Some(child))
}

/// Seconds since midnight UTC of `t`.
fn day_seconds(t: SystemTime) -> f64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    (d.as_secs() % 86_400) as f64 + f64::from(d.subsec_micros()) / 1e6
}

/// When (seconds since midnight UTC) the first INVITE was received, from a sipp message log.
fn first_invite_at(log: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("----------------------------------------------- ")
        .find(|block| block.contains("message received") && block.contains("\nINVITE sip:"))
        .and_then(|block| {
            // "2026-12-01 23:02:06.814202"
            let time = block.lines().next()?.split_whitespace().nth(1)?;
            let mut parts = time.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next()?.parse().ok()?;
            Some(h * 3600.0 + m * 60.0 + s)
        })
}

/// Counts of INVITEs received in a sipp message log (retransmissions included).
fn invites_received(log: &Path) -> usize {
    sipp_support::messages(log)
        .iter()
        .filter(|(dir, m)| dir.contains("received") && m.starts_with("INVITE "))
        .count()
}

/// The last value of `column` in a sipp `-trace_stat` file.
fn stat(path: &Path, column: &str) -> u64 {
    let text = std::fs::read_to_string(path).expect("sipp stat file");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(';').collect();
    let last: Vec<&str> = lines.last().expect("a stat line").split(';').collect();
    let i = header.iter().position(|h| *h == column).expect(column);
    last[i].trim().parse().expect("a count")
}

#[test]
fn killing_the_first_of_two_switches_costs_under_1_percent_and_2_seconds() {
    let (p1, p2) = (free_port(IP), free_port(IP));
    let s = Setup::start_with(
        IP,
        Options {
            next_hop: false,
            extra_args: vec![
                "--next-hop".into(),
                format!("{IP}:{p1}"),
                "--next-hop".into(),
                format!("{IP}:{p2}"),
            ],
            extra_config: "[health]\nprobe_interval = \"1s\"\nmax_missed = 3\n",
            ..Options::default()
        },
    );
    let dir = s.dir.path();
    let mut first = switch(dir, p1, "switch1.log");
    let _second = switch(dir, p2, "switch2.log");

    let calls = 2000;
    let sf = sipp_dir().join("uac_load.xml");
    let stats = dir.join("uac_stat.csv");
    let caller = Command::new("sipp")
        .args([
            &format!("{IP}:{}", s.sip),
            "-sf",
            sf.to_str().unwrap(),
            "-i",
            IP,
            "-p",
            &free_port(IP).to_string(),
            "-r",
            "200",
            "-m",
            &calls.to_string(),
            "-l",
            "2000",
            "-s",
            "svc",
            "-nostdin",
            "-timeout",
            "45s",
            // A call whose BYE went to the killed switch fails after 8 s instead of hanging.
            "-recv_timeout",
            "8000",
            "-trace_stat",
            "-stf",
            stats.to_str().unwrap(),
            "-fd",
            "1",
            "-trace_err",
            "-error_file",
            dir.join("uac_err.log").to_str().unwrap(),
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot run sipp (Debian package sip-tester)");
    let caller = Guard(Some(caller));

    std::thread::sleep(Duration::from_secs(3));
    let killed_at = SystemTime::now();
    if let Some(c) = first.0.as_mut() {
        c.kill().expect("kill switch 1");
        let _ = c.wait();
    }
    // sipp ends by itself (every call done, or its -timeout); on a loaded box give it time,
    // then stop it and judge from its statistics.
    let mut caller = caller;
    let child = caller.0.as_mut().expect("caller");
    let deadline = Instant::now() + Duration::from_secs(50);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ok = stat(&stats, "SuccessfulCall(C)");
    let failed = stat(&stats, "FailedCall(C)");
    let before_kill = invites_received(&dir.join("switch1.log"));
    let reached_second = first_invite_at(&dir.join("switch2.log"));
    let failover = reached_second.map(|t| {
        let d = t - day_seconds(killed_at);
        if d < -43_200.0 {
            d + 86_400.0
        } else {
            d
        }
    });
    eprintln!(
        "failover: {calls} calls at 200/s, switch 1 killed after 3 s ({before_kill} INVITEs \
         there): {ok} succeeded, {failed} failed; first INVITE at switch 2 {failover:?} s \
         after the kill; send errors {}; sipp exit {status:?}",
        s.metric("fraudwall_send_errors_total{transport=\"udp\"}"),
    );
    assert!(before_kill > 0, "switch 1 took no calls before the kill");
    // A call that neither succeeded nor failed when sipp was stopped counts as failed.
    let lost = calls - ok;
    assert!(
        lost * 100 <= calls,
        "{lost} of {calls} calls failed or never ended ({failed} failed; at most 1 % may)"
    );
    let failover = failover.expect("switch 2 never received an INVITE");
    assert!(
        (0.0..=2.0).contains(&failover),
        "first INVITE at switch 2 {failover:.3} s after the kill (at most 2 s)"
    );
    // The dead hop was noticed by the send path (ICMP), and is shown down.
    assert!(s.metric("fraudwall_send_errors_total{transport=\"udp\"}") >= 1.0);
    let status = s.http("/status");
    let body = status.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).expect("status JSON");
    assert_eq!(v["next_hops"][0]["healthy"], false, "{body}");
    assert_eq!(v["next_hops"][1]["healthy"], true, "{body}");
    // The same in /metrics (the gauge follows the health state once a second).
    let up = |p: u16| {
        s.metric(&format!(
            "fraudwall_next_hop_up{{hop=\"{IP}:{p}\",transport=\"udp\"}}"
        ))
    };
    let asked = Instant::now();
    while up(p1) != 0.0 && asked.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(up(p1), 0.0, "the dead hop's gauge");
    assert_eq!(up(p2), 1.0, "the live hop's gauge");
}

/// An INVITE of exactly `len` bytes from `from`, with a body of filler.
fn invite_of_len(len: usize, from: &UdpSocket, proxy: u16) -> Vec<u8> {
    let port = from.local_addr().unwrap().port();
    let head = |body: usize| {
        format!(
            "INVITE sip:+15550001@{IP}:{proxy} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {IP}:{port};branch=z9hG4bKbig1;rport\r\n\
             From: <sip:+8613800000009@{IP}>;tag=big\r\nTo: <sip:+15550001@{IP}>\r\n\
             Call-ID: big-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
             Content-Type: text/plain\r\nContent-Length: {body:05}\r\n\r\n"
        )
    };
    let body = len - head(0).len();
    let mut m = head(body).into_bytes();
    m.resize(len, b'a');
    m
}

#[test]
fn a_65507_byte_invite_is_answered_513_and_the_hop_stays_up() {
    let s = Setup::start(IP, "");
    let _switch = s.switch("uas_echo.xml", 100);
    let c = UdpSocket::bind((IP, 0)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let big = invite_of_len(65_507, &c, s.sip);
    assert_eq!(big.len(), 65_507);
    c.send_to(&big, (IP, s.sip)).unwrap();
    let mut buf = vec![0u8; 70_000];
    let (n, _) = c.recv_from(&mut buf).expect("an answer to the big INVITE");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        answer.starts_with("SIP/2.0 513 "),
        "expected 513, got: {answer}"
    );
    // The hop is not blamed: still up, no send error, and a normal call still goes through.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        s.metric("fraudwall_send_errors_total{transport=\"udp\"}"),
        0.0
    );
    let status = s.http("/status");
    assert!(status.contains("\"healthy\":true"), "{status}");
    s.call("uac_verdict.xml", &[(sipp_support::CLEAN, "allow")], "u1");
}
