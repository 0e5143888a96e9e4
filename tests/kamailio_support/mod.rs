//! Kamailio as a real peer in front of fraudwall, for the integration kits' tests: starts
//! `kamailio -DD -E` on a kit's script with its placeholders filled in, in its own process
//! group, killed with its children on drop.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs Kamailio's modules.
pub const MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules";

/// Kamailio, killed (with its children: its own process group) on drop.
pub struct Kamailio(pub Child);

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SAFETY: signalling the process group of our own child.
        unsafe {
            libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// Starts Kamailio on `127.0.0.1:listen` (UDP) with the kit script `integration/<kit>/kamailio.cfg`,
/// its `@NAME@` placeholders replaced by `values` (`@LISTEN@` and `@MODULES@` are filled in
/// here), logging to `dir/kamailio.log`; returns once its port is taken. Panics (fails the
/// test) when Kamailio or one of `modules` is missing: they are required peers.
pub fn start_kamailio(
    dir: &Path,
    kit: &str,
    listen: u16,
    values: &[(&str, String)],
    modules: &[&str],
) -> Kamailio {
    for m in modules {
        assert!(
            Path::new(MODULES).join(format!("{m}.so")).exists(),
            "Kamailio's {m} module is needed (apt-get install kamailio kamailio-utils-modules \
             kamailio-json-modules)"
        );
    }
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("integration")
            .join(kit)
            .join("kamailio.cfg"),
    )
    .expect("the kit's kamailio.cfg");
    let mut text = template
        .replace("@LISTEN@", &format!("127.0.0.1:{listen}"))
        .replace("@MODULES@", MODULES);
    for (name, value) in values {
        text = text.replace(&format!("@{name}@"), value);
    }
    let cfg = dir.join("kamailio.cfg");
    std::fs::write(&cfg, text).expect("write cfg");
    let log = std::fs::File::create(dir.join("kamailio.log")).expect("log");
    use std::os::unix::process::CommandExt;
    let child = Command::new("kamailio")
        .args(["-DD", "-E", "-f"])
        .arg(&cfg)
        .arg("-w")
        .arg(dir)
        .arg("-Y")
        .arg(dir)
        .args(["-m", "64", "-M", "8"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("kamailio is needed (apt-get install kamailio)");
    let mut k = Kamailio(child);
    // Kamailio is up once its UDP port is taken.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::UdpSocket::bind(("127.0.0.1", listen)).is_ok() {
        if let Ok(Some(status)) = k.0.try_wait() {
            panic!(
                "kamailio exited ({status}):\n{}",
                std::fs::read_to_string(dir.join("kamailio.log")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "kamailio did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    k
}
