//! `recvmmsg`/`sendmmsg` batches over reused buffers (Linux).

use super::Outbound;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

/// How often one message is tried again after a pending (earlier datagram's) error.
const MAX_RETRIES: u32 = 3;

/// Receive side: `n` buffers, addresses, iovecs and headers, allocated once.
pub(super) struct RecvBatch {
    bufs: Vec<u8>,
    size: usize,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside point into the struct's own heap buffers, which never
// move while it lives; the struct is used by one thread at a time.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub(super) fn new(n: usize, size: usize) -> RecvBatch {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs; all-zero is valid.
        let mut b = RecvBatch {
            bufs: vec![0u8; n * size],
            size,
            addrs: vec![unsafe { zeroed() }; n],
            iovs: vec![unsafe { zeroed() }; n],
            hdrs: vec![unsafe { zeroed() }; n],
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
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
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
}

/// Send side: headers, iovecs and addresses, reused across batches.
pub(super) struct SendBatch {
    addrs: Vec<libc::sockaddr_storage>,
    lens: Vec<libc::socklen_t>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
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
        }
    }

    /// Sends every message, calling `sent(msg)` for each one sent and `failed(msg, error)`
    /// for each one the kernel refused; when `failed` returns `true` (the error was a
    /// pending one, now cleared) the message is tried again, a few times at most.
    pub(super) fn send_all(
        &mut self,
        sock: &UdpSocket,
        msgs: &[Outbound],
        mut sent: impl FnMut(&Outbound),
        mut failed: impl FnMut(&Outbound, &io::Error) -> bool,
    ) {
        self.addrs.clear();
        self.iovs.clear();
        self.hdrs.clear();
        self.lens.clear();
        for m in msgs {
            let (st, len) = to_storage(m.destination);
            self.addrs.push(st);
            self.lens.push(len);
            self.iovs.push(libc::iovec {
                iov_base: m.data.as_ptr() as *mut libc::c_void,
                iov_len: m.data.len(),
            });
        }
        for ((addr, iov), &len) in self
            .addrs
            .iter_mut()
            .zip(self.iovs.iter_mut())
            .zip(&self.lens)
        {
            // SAFETY: all-zero is a valid mmsghdr.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = len;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
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
