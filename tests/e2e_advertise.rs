//! End to end: `sip.advertise` is what the running node writes as its own address, in Via and
//! Record-Route, and responses to it still find their way back (the switch answers the Via,
//! fraudwall recognises the advertised name as itself and relays the answer to the caller).

mod sipp_support;

use sipp_support::{Options, Setup};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Receives the next datagram that is not an OPTIONS probe, within 5 s.
fn next_request(sock: &UdpSocket) -> (String, std::net::SocketAddr) {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65535];
    while Instant::now() < deadline {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("OPTIONS ") {
                return (text, from);
            }
        }
    }
    panic!("nothing but probes arrived within 5 s");
}

#[test]
fn the_advertised_name_is_written_and_answers_come_back() {
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            sip_config: "advertise = \"sbc.example.net\"",
            extra_config: "[proxy]\nrecord_route = true",
            ..Options::default()
        },
    );
    let switch = UdpSocket::bind(("127.0.0.1", s.switch)).unwrap();
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cport = caller.local_addr().unwrap().port();
    let invite = format!(
        "INVITE sip:+15550001@127.0.0.1:{sip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bKadv1;rport\r\n\
         From: <sip:+12025550123@127.0.0.1>;tag=a\r\nTo: <sip:+15550001@127.0.0.1>\r\n\
         Call-ID: adv-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:c@127.0.0.1:{cport}>\r\nContent-Length: 0\r\n\r\n",
        sip = s.sip
    );
    caller
        .send_to(invite.as_bytes(), ("127.0.0.1", s.sip))
        .unwrap();
    let (fwd, from) = next_request(&switch);
    let via = format!("Via: SIP/2.0/UDP sbc.example.net:{};branch=z9hG4bK", s.sip);
    assert!(fwd.contains(&via), "no advertised Via in:\n{fwd}");
    let rr = format!("Record-Route: <sip:sbc.example.net:{};lr", s.sip);
    assert!(fwd.contains(&rr), "no advertised Record-Route in:\n{fwd}");

    // The switch answers 486 with the Vias it got, to where the request came from.
    let vias: Vec<&str> = fwd
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("via:"))
        .collect();
    let answer = format!(
        "SIP/2.0 486 Busy Here\r\n{}\r\nFrom: <sip:+12025550123@127.0.0.1>;tag=a\r\n\
         To: <sip:+15550001@127.0.0.1>;tag=sw\r\nCall-ID: adv-1\r\nCSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n",
        vias.join("\r\n")
    );
    switch.send_to(answer.as_bytes(), from).unwrap();
    caller
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = caller
        .recv_from(&mut buf)
        .expect("the 486 reaches the caller");
    let back = String::from_utf8_lossy(&buf[..n]);
    assert!(back.starts_with("SIP/2.0 486"), "{back}");
    assert!(
        !back.contains("sbc.example.net"),
        "our Via was not popped:\n{back}"
    );
}
