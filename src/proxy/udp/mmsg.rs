//! `recvmmsg`/`sendmmsg` batches over reused buffers (Linux), and the control messages read
//! with them: on a socket bound to an unspecified address `IP_PKTINFO` / `IPV6_PKTINFO` say
//! which local address a datagram arrived at (and, on send, which one to send it from);
//! with [`enable_timestamps`] every datagram carries the kernel's receive time
//! (`SO_TIMESTAMPNS`), from which the worker learns how long it waited in the socket queue.

use super::Outbound;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

/// Room for one packet-info control message (`in6_pktinfo` is the larger, 20 bytes, plus
/// the 16-byte header: 40 with padding) and one receive timestamp (a 16-byte `timespec`
/// plus the header: 32), in u64 words for alignment. Other control messages the kernel
/// might add do not fit and are cut (`MSG_CTRUNC`), which loses nothing we read.
const CTRL_WORDS: usize = 12;

/// One control-message buffer, aligned for `cmsghdr`.
type Ctrl = [u64; CTRL_WORDS];

/// Turns on `IP_PKTINFO` (IPv4) or `IPV6_RECVPKTINFO` (IPv6): every received datagram then
/// carries its destination address as a control message. Only for sockets bound to an
/// unspecified address; a socket bound to one address knows its address.
pub(super) fn enable_pktinfo(sock: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        set_flag(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
    } else {
        set_flag(sock, libc::IPPROTO_IP, libc::IP_PKTINFO)
    }
}

/// Turns on `SO_TIMESTAMPNS`: every received datagram carries the time the kernel received
/// it (`CLOCK_REALTIME`, nanoseconds) as a control message ([`RecvBatch::received_at`]).
pub(super) fn enable_timestamps(sock: &impl AsRawFd) -> io::Result<()> {
    set_flag(sock, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS)
}

/// `CLOCK_REALTIME` now, the clock of the kernel's receive timestamps.
pub(super) fn realtime_now() -> libc::timespec {
    // SAFETY: all-zero is a valid timespec, and clock_gettime writes one.
    let mut t: libc::timespec = unsafe { zeroed() };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut t) };
    t
}

/// How long before `now` the kernel received a datagram stamped `then` (zero if `then` is
/// later: the wall clock was stepped back).
pub(super) fn elapsed_since(then: &libc::timespec, now: &libc::timespec) -> std::time::Duration {
    let ns = |t: &libc::timespec| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
    let d = ns(now) - ns(then);
    std::time::Duration::from_nanos(u64::try_from(d.max(0)).unwrap_or(u64::MAX))
}

/// Sets an on/off (`c_int` 1) socket option at `level`.
pub(super) fn set_flag(
    sock: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid fd, and a c_int option value of the stated size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The destination address in a received header's packet-info control message.
fn pktinfo_of(h: &libc::msghdr) -> Option<IpAddr> {
    let mut found = None;
    for_each_cmsg(h, |level, kind, data| {
        if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO {
            // SAFETY: an IP_PKTINFO control message carries an in_pktinfo.
            let info: libc::in_pktinfo = unsafe { std::ptr::read_unaligned(data.cast()) };
            found = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                info.ipi_addr.s_addr,
            ))));
        } else if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
            // SAFETY: an IPV6_PKTINFO control message carries an in6_pktinfo.
            let info: libc::in6_pktinfo = unsafe { std::ptr::read_unaligned(data.cast()) };
            found = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
        }
    });
    found
}

/// The kernel's receive time in a received header's `SCM_TIMESTAMPNS` control message.
fn timestamp_of(h: &libc::msghdr) -> Option<libc::timespec> {
    let mut found = None;
    for_each_cmsg(h, |level, kind, data| {
        if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS {
            // SAFETY: an SCM_TIMESTAMPNS control message carries a timespec.
            found = Some(unsafe { std::ptr::read_unaligned(data.cast::<libc::timespec>()) });
        }
    });
    found
}

/// Calls `f(level, type, data)` for every control message of a received header.
fn for_each_cmsg(h: &libc::msghdr, mut f: impl FnMut(libc::c_int, libc::c_int, *const u8)) {
    // `msg_controllen` is a size_t on glibc, a socklen_t on musl.
    #[allow(clippy::unnecessary_cast)]
    let len = h.msg_controllen as usize;
    if h.msg_control.is_null() || len < size_of::<libc::cmsghdr>() {
        return;
    }
    // SAFETY: the kernel filled `msg_controllen` bytes of the header's control buffer with
    // well-formed cmsghdrs; the CMSG_* macros stay within it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            f(
                (*c).cmsg_level,
                (*c).cmsg_type,
                libc::CMSG_DATA(c).cast_const(),
            );
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
}

/// Writes a packet-info control message asking to send from `source` into `ctrl`; returns
/// its length for `msg_controllen`.
fn write_pktinfo(ctrl: &mut Ctrl, source: IpAddr) -> usize {
    // SAFETY: `ctrl` is aligned for cmsghdr and CTRL_WORDS * 8 bytes long, more than
    // CMSG_SPACE of either pktinfo struct; we write one header and its data inside it.
    unsafe {
        let base = ctrl.as_mut_ptr().cast::<u8>();
        let c = base.cast::<libc::cmsghdr>();
        match source {
            IpAddr::V4(ip) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(ip).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                (*c).cmsg_level = libc::IPPROTO_IP;
                (*c).cmsg_type = libc::IP_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
                libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize
            }
            IpAddr::V6(ip) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: ip.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                (*c).cmsg_level = libc::IPPROTO_IPV6;
                (*c).cmsg_type = libc::IPV6_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
                libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as usize
            }
        }
    }
}

/// The source to ask for when sending `msg` on a socket bound to an unspecified address of
/// the destination's family: the message's own, if it is of that family and specified.
fn wanted_source(msg: &Outbound) -> Option<IpAddr> {
    msg.source
        .filter(|s| s.is_ipv4() == msg.destination.is_ipv4() && !s.is_unspecified())
}

/// Sends one datagram from `source` (a local address) on a socket bound to an unspecified
/// address, with a packet-info control message.
pub(super) fn send_from(
    sock: &UdpSocket,
    data: &[u8],
    destination: SocketAddr,
    source: IpAddr,
) -> io::Result<usize> {
    let (mut st, len) = to_storage(destination);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut ctrl: Ctrl = [0; CTRL_WORDS];
    let ctrl_len = write_pktinfo(&mut ctrl, source);
    // SAFETY: all-zero is a valid msghdr; we point it at live locals.
    let mut h: libc::msghdr = unsafe { zeroed() };
    h.msg_name = (&mut st as *mut libc::sockaddr_storage).cast();
    h.msg_namelen = len;
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    h.msg_control = ctrl.as_mut_ptr().cast();
    h.msg_controllen = ctrl_len as _;
    // SAFETY: the header points at the locals above, alive for the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &h, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Sends one datagram: from its [`Outbound::source`] when the socket is bound to an
/// unspecified address (`wildcard`), else plainly.
pub(super) fn send_one(sock: &UdpSocket, msg: &Outbound, wildcard: bool) -> io::Result<usize> {
    match wanted_source(msg).filter(|_| wildcard) {
        Some(src) => send_from(sock, &msg.data, msg.destination, src),
        None => sock.send_to(&msg.data, msg.destination),
    }
}

/// How often one message is tried again after a pending (earlier datagram's) error.
const MAX_RETRIES: u32 = 3;

/// Receive side: `n` buffers, addresses, iovecs and headers, allocated once.
pub(super) struct RecvBatch {
    bufs: Vec<u8>,
    size: usize,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// One control buffer per datagram; empty unless asked for (packet info on wildcard
    /// sockets, receive timestamps).
    ctrls: Vec<Ctrl>,
    /// Read packet info ([`RecvBatch::destination`]).
    pktinfo: bool,
}

// SAFETY: the raw pointers inside point into the struct's own heap buffers, which never
// move while it lives; the struct is used by one thread at a time.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// `n` buffers of `size` bytes; `pktinfo`: also read each datagram's destination address
    /// (the socket has [`enable_pktinfo`]); `timestamps`: room for the receive timestamps
    /// (the socket has [`enable_timestamps`]).
    pub(super) fn new(n: usize, size: usize, pktinfo: bool, timestamps: bool) -> RecvBatch {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs; all-zero is valid.
        let mut b = RecvBatch {
            bufs: vec![0u8; n * size],
            size,
            addrs: vec![unsafe { zeroed() }; n],
            iovs: vec![unsafe { zeroed() }; n],
            hdrs: vec![unsafe { zeroed() }; n],
            ctrls: if pktinfo || timestamps {
                vec![[0; CTRL_WORDS]; n]
            } else {
                Vec::new()
            },
            pktinfo,
        };
        for i in 0..n {
            b.iovs[i].iov_base = b.bufs[i * size..].as_mut_ptr().cast();
            b.iovs[i].iov_len = size;
        }
        b
    }

    /// Blocks (up to the socket's read timeout) for one datagram, then takes what else is queued.
    pub(super) fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        for i in 0..self.hdrs.len() {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            match self.ctrls.get_mut(i) {
                Some(c) => {
                    h.msg_control = c.as_mut_ptr().cast();
                    h.msg_controllen = size_of::<Ctrl>() as _;
                }
                None => {
                    h.msg_control = std::ptr::null_mut();
                    h.msg_controllen = 0;
                }
            }
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the stated lengths owned by self.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last batch: bytes, source, and whether it was truncated.
    pub(super) fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>, bool) {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.size);
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len >= self.size;
        let data = &self.bufs[i * self.size..i * self.size + len];
        (data, from_storage(&self.addrs[i]), truncated)
    }

    /// The local address datagram `i` of the last batch was sent to (with `pktinfo` only).
    pub(super) fn destination(&self, i: usize) -> Option<IpAddr> {
        if !self.pktinfo {
            return None;
        }
        pktinfo_of(&self.hdrs[i].msg_hdr)
    }

    /// When the kernel received datagram `i` of the last batch (`CLOCK_REALTIME`), if the
    /// socket has [`enable_timestamps`].
    pub(super) fn received_at(&self, i: usize) -> Option<libc::timespec> {
        if self.ctrls.is_empty() {
            return None;
        }
        timestamp_of(&self.hdrs[i].msg_hdr)
    }
}

/// Send side: headers, iovecs and addresses, reused across batches.
pub(super) struct SendBatch {
    addrs: Vec<libc::sockaddr_storage>,
    lens: Vec<libc::socklen_t>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    ctrls: Vec<(Ctrl, usize)>,
}

// SAFETY: as for RecvBatch; the iovecs only point at data during `send_all`.
unsafe impl Send for SendBatch {}

impl SendBatch {
    pub(super) fn new(n: usize) -> SendBatch {
        SendBatch {
            addrs: Vec::with_capacity(n),
            lens: Vec::with_capacity(n),
            iovs: Vec::with_capacity(n),
            hdrs: Vec::with_capacity(n),
            ctrls: Vec::new(),
        }
    }

    /// Sends every message, calling `sent(msg)` for each one sent and `failed(msg, error)`
    /// for each one the kernel refused; when `failed` returns `true` (the error was a
    /// pending one, now cleared) the message is tried again, a few times at most.
    ///
    /// `wildcard`: the socket is bound to an unspecified address, so each message with an
    /// [`Outbound::source`] is sent from it (a packet-info control message); otherwise no
    /// control message is built.
    pub(super) fn send_all(
        &mut self,
        sock: &UdpSocket,
        msgs: &[Outbound],
        wildcard: bool,
        mut sent: impl FnMut(&Outbound),
        mut failed: impl FnMut(&Outbound, &io::Error) -> bool,
    ) {
        self.addrs.clear();
        self.iovs.clear();
        self.hdrs.clear();
        self.lens.clear();
        self.ctrls.clear();
        if wildcard {
            for m in msgs {
                let mut c: Ctrl = [0; CTRL_WORDS];
                let len = wanted_source(m).map_or(0, |src| write_pktinfo(&mut c, src));
                self.ctrls.push((c, len));
            }
        }
        for m in msgs {
            let (st, len) = to_storage(m.destination);
            self.addrs.push(st);
            self.lens.push(len);
            self.iovs.push(libc::iovec {
                iov_base: m.data.as_ptr() as *mut libc::c_void,
                iov_len: m.data.len(),
            });
        }
        for (i, ((addr, iov), &len)) in self
            .addrs
            .iter_mut()
            .zip(self.iovs.iter_mut())
            .zip(&self.lens)
            .enumerate()
        {
            // SAFETY: all-zero is a valid mmsghdr.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = len;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            if let Some((c, clen)) = self.ctrls.get_mut(i).filter(|(_, l)| *l > 0) {
                h.msg_hdr.msg_control = c.as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = *clen as _;
            }
            self.hdrs.push(h);
        }
        let mut start = 0;
        let mut retries = 0;
        while start < msgs.len() {
            // SAFETY: headers point at `self.addrs`, `self.iovs` and the messages' bytes,
            // all alive and unmoved for the duration of the call.
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    self.hdrs[start..].as_mut_ptr(),
                    (msgs.len() - start) as libc::c_uint,
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first message of the remaining batch failed: report it, go on.
                if failed(&msgs[start], &e) && retries < MAX_RETRIES {
                    retries += 1;
                    continue;
                }
                retries = 0;
                start += 1;
            } else {
                let n = (n as usize).max(1).min(msgs.len() - start);
                for m in &msgs[start..start + n] {
                    sent(m);
                }
                retries = 0;
                start += n;
            }
        }
    }
}

pub(super) fn from_storage(st: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match st.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(st as *const libc::sockaddr_storage).cast() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(st as *const libc::sockaddr_storage).cast() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

pub(super) fn to_storage(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage; we then write one sockaddr_in(6) into it.
    let mut st: libc::sockaddr_storage = unsafe { zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin) };
            (st, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin6) };
            (st, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for a in ["127.0.0.1:5060", "[::1]:5061", "[fe80::1%2]:7"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(from_storage(&to_storage(a).0), Some(a));
        }
    }
}
