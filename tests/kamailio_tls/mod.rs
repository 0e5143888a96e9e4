//! Kamailio as a real SIP-over-TLS peer (the switch behind fraudwall in the e2e tests).
//!
//! [`KamailioTls::start`] writes a `kamailio.cfg` and a `tls.cfg` into a temp dir and runs
//! `kamailio -DD -E -f kamailio.cfg` (5.6: `-DD` stays in the foreground, `-E` logs to stderr),
//! listening on `tls:ADDR`. It answers OPTIONS 200, INVITE to user `busy` 486, any other
//! INVITE 200 (stateless, `sl_send_reply`), ACK silently, and 405 otherwise; each request it
//! answers is logged to `kamailio.log` (`xlog`) as `KAMAILIO-RECV <method> <ruri> <via1>`
//! so a test can see what reached it. Needs `kamailio` and `kamailio-tls-modules`; a test fails,
//! never skips, without them. The child is killed on drop.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs Kamailio's modules.
pub const MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules";

/// How the Kamailio TLS peer is set up.
#[derive(Debug, Clone)]
pub struct KamailioTlsOptions {
    /// TLS listen address (loopback).
    pub listen: SocketAddr,
    /// Its certificate (PEM) and key (PEM, PKCS#8 is fine).
    pub certificate: PathBuf,
    /// Its key.
    pub private_key: PathBuf,
    /// When set, client certificates are required and verified against this CA bundle.
    pub client_ca: Option<PathBuf>,
}

/// A running Kamailio; killed on drop.
pub struct KamailioTls {
    child: Child,
    /// The temp dir with the configs and the log.
    pub dir: tempfile::TempDir,
    /// Where it listens.
    pub listen: SocketAddr,
}

impl Drop for KamailioTls {
    fn drop(&mut self) {
        // Kamailio forks its workers: end the whole process group, politely first.
        let group = -(self.child.id() as libc::pid_t);
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The `kamailio.cfg` text.
pub fn kamailio_cfg(listen: SocketAddr, tls_cfg: &Path, log: &Path) -> String {
    let _ = log;
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
memdbg=5
memlog=5
log_facility=LOG_LOCAL0
fork=yes
children=1
tcp_children=2
auto_aliases=no
enable_tls=yes
disable_tcp=no
tcp_connection_lifetime=60
listen=tls:{listen}
mpath="{MODULES}/"
loadmodule "tls.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
modparam("tls", "config", "{tls}")

request_route {{
    xlog("L_NOTICE", "KAMAILIO-RECV $rm $ru $hdr(Via)\n");
    if (is_method("ACK")) {{
        exit;
    }}
    if (is_method("OPTIONS")) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (is_method("INVITE")) {{
        if ($rU == "busy") {{
            sl_send_reply("486", "Busy Here");
        }} else {{
            sl_send_reply("200", "OK");
        }}
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
"#,
        tls = tls_cfg.display()
    )
}

/// The `tls.cfg` text (TLS 1.2 and up; client certificates verified when `client_ca` is set).
pub fn tls_cfg(o: &KamailioTlsOptions) -> String {
    let verify = match &o.client_ca {
        Some(ca) => format!(
            "verify_certificate = yes\nrequire_certificate = yes\nca_list = {}\n",
            ca.display()
        ),
        None => "verify_certificate = no\nrequire_certificate = no\n".to_string(),
    };
    format!(
        "[server:default]\nmethod = TLSv1.2+\n{verify}private_key = {}\ncertificate = {}\n\n\
[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n",
        o.private_key.display(),
        o.certificate.display()
    )
}

impl KamailioTls {
    /// Writes the configs and starts Kamailio; returns once its TLS port accepts connections
    /// (panics after 10 s with its log).
    pub fn start(o: &KamailioTlsOptions) -> KamailioTls {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls.cfg");
        let cfg = dir.path().join("kamailio.cfg");
        let log = dir.path().join("kamailio.log");
        std::fs::write(&tls, tls_cfg(o)).unwrap();
        std::fs::write(&cfg, kamailio_cfg(o.listen, &tls, &log)).unwrap();
        let logfile = std::fs::File::create(&log).unwrap();
        use std::os::unix::process::CommandExt;
        let child = Command::new("kamailio")
            .arg("-DD")
            .arg("-E")
            .arg("-f")
            .arg(&cfg)
            .arg("-w")
            .arg(dir.path())
            .arg("-Y")
            .arg(dir.path())
            .args(["-m", "64", "-M", "8"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logfile)
            .process_group(0)
            .spawn()
            .expect("kamailio is needed (apt-get install kamailio kamailio-tls-modules)");
        let mut k = KamailioTls {
            child,
            dir,
            listen: o.listen,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect_timeout(&o.listen, Duration::from_millis(200)).is_ok() {
                return k;
            }
            if let Ok(Some(status)) = k.child.try_wait() {
                panic!("kamailio exited ({status}); log:\n{}", k.log());
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not listen on tls:{} within 10 s; log:\n{}",
                o.listen,
                k.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kamailio's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// The `KAMAILIO-RECV` lines: what reached it.
    pub fn received(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("KAMAILIO-RECV ").map(|(_, r)| r.to_string()))
            .collect()
    }
}

/// A free TCP port on `ip` (bound then released).
pub fn free_tcp_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
