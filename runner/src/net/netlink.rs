//! The few rtnetlink(7) requests container networking needs: look up, create and delete
//! links (bridge, veth with its peer placed straight into another network namespace), bring
//! them up, add IPv4 addresses and a default route. One socket, one request at a time, every
//! request acknowledged (NLM_F_ACK), kernel errors returned with the extended-ack text when
//! the kernel gives one. It must not spawn `ip` or know about leases or firewalls.
//!
//! A netlink socket acts in the network namespace it was created in; `in_netns` runs the
//! opening (and anything else that must happen there) inside another namespace on a
//! short-lived thread (setns(2) changes only the calling thread).

use std::ffi::c_void;
use std::fmt;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// <linux/netlink.h>
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const SOL_NETLINK: i32 = 270;
const NETLINK_CAP_ACK: i32 = 10;
const NETLINK_EXT_ACK: i32 = 11;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const HDR: usize = 16;

// <linux/rtnetlink.h>
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

// <linux/if_link.h>, <linux/if_addr.h>, <linux/veth.h>
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;

/// A failed request: the errno and, when the kernel explains itself (extended ack), its
/// words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlError {
    pub errno: i32,
    pub ext: Option<String>,
}

impl NlError {
    fn io(e: io::Error) -> NlError {
        NlError {
            errno: e.raw_os_error().unwrap_or(libc::EIO),
            ext: None,
        }
    }

    fn last() -> NlError {
        NlError::io(io::Error::last_os_error())
    }
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = io::Error::from_raw_os_error(self.errno);
        write!(f, "{}", layers::error::io_message(&e))?;
        match &self.ext {
            Some(ext) => write!(f, " ({ext})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for NlError {}

pub type NlResult<T> = Result<T, NlError>;

/// What RTM_GETLINK tells about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub up: bool,
    /// IFLA_INFO_KIND: "bridge", "veth", ...; None for plain devices.
    pub kind: Option<String>,
}

/// One request being built: header, fixed struct, attributes (some nested).
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(ty: u16, flags: u16) -> Msg {
        let mut buf = vec![0u8; HDR];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        Msg { buf }
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Msg {
        self.buf.extend_from_slice(b);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    /// struct ifinfomsg: family, type, index, flags, change.
    fn ifinfo(&mut self, index: u32, flags: u32, change: u32) -> &mut Msg {
        let mut b = [0u8; 16];
        b[0] = libc::AF_UNSPEC as u8;
        b[4..8].copy_from_slice(&index.to_ne_bytes());
        b[8..12].copy_from_slice(&flags.to_ne_bytes());
        b[12..16].copy_from_slice(&change.to_ne_bytes());
        self.bytes(&b)
    }

    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Msg {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.bytes(data)
    }

    fn attr_str(&mut self, ty: u16, s: &str) -> &mut Msg {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.attr(ty, &b)
    }

    fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Msg {
        self.attr(ty, &v.to_ne_bytes())
    }

    /// Start a nested attribute; `end` fills in its length.
    fn begin(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.attr(ty | NLA_F_NESTED, &[]);
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// Attributes (struct rtattr / nlattr) in `b`, as (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = &b[len.next_multiple_of(4).min(b.len())..];
        Some((ty, data))
    })
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// A route socket in the caller's network namespace.
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        for opt in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
            let one: i32 = 1;
            // Older kernels lack these; the errors are then plain errnos.
            // SAFETY: a valid int option.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_NETLINK,
                    opt,
                    (&one as *const i32).cast(),
                    4,
                )
            };
        }
        Ok(Netlink { fd, seq: 0 })
    }

    /// Send `msg` and collect the replies up to the acknowledgement (or NLMSG_DONE for a
    /// dump). Each reply is returned without its netlink header.
    fn request(&mut self, msg: &mut Msg) -> NlResult<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let dump = u16::from_ne_bytes([msg.buf[6], msg.buf[7]]) & NLM_F_DUMP == NLM_F_DUMP;
        if !dump {
            let flags = u16::from_ne_bytes([msg.buf[6], msg.buf[7]]) | NLM_F_ACK;
            msg.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        }
        let len = msg.buf.len() as u32;
        msg.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        msg.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        // SAFETY: zeroed sockaddr_nl is the kernel's address (pid 0) once the family is set.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as u16;
        loop {
            // SAFETY: buf and the address are valid for their lengths.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    msg.buf.as_ptr().cast::<c_void>(),
                    msg.buf.len(),
                    0,
                    (&kernel as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as u32,
                )
            };
            if n >= 0 {
                break;
            }
            let e = NlError::last();
            if e.errno != libc::EINTR {
                return Err(e);
            }
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<c_void>(),
                    buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = NlError::last();
                if e.errno == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= HDR {
                let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
                if len < HDR || len > rest.len() {
                    return Err(NlError {
                        errno: libc::EPROTO,
                        ext: Some("truncated netlink reply".into()),
                    });
                }
                let ty = u16::from_ne_bytes([rest[4], rest[5]]);
                let flags = u16::from_ne_bytes([rest[6], rest[7]]);
                let rseq = u32::from_ne_bytes(rest[8..12].try_into().unwrap());
                let body = &rest[HDR..len];
                rest = &rest[len.next_multiple_of(4).min(rest.len())..];
                if rseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_ERROR => {
                        let errno = body
                            .get(0..4)
                            .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                        if errno == 0 {
                            return Ok(out);
                        }
                        return Err(NlError {
                            errno: -errno,
                            ext: ext_ack(body, flags),
                        });
                    }
                    NLMSG_DONE => {
                        let errno = body
                            .get(0..4)
                            .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                        if errno < 0 {
                            return Err(NlError {
                                errno: -errno,
                                ext: None,
                            });
                        }
                        return Ok(out);
                    }
                    _ => out.push(body.to_vec()),
                }
            }
        }
    }

    /// The link called `name`, or None when there is none.
    pub fn link(&mut self, name: &str) -> NlResult<Option<Link>> {
        let mut m = Msg::new(RTM_GETLINK, 0);
        m.ifinfo(0, 0, 0).attr_str(IFLA_IFNAME, name);
        let replies = match self.request(&mut m) {
            Ok(r) => r,
            Err(e) if e.errno == libc::ENODEV => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(body) = replies.iter().find(|b| b.len() >= 16) else {
            return Ok(None);
        };
        let index = u32::from_ne_bytes(body[4..8].try_into().unwrap());
        let flags = u32::from_ne_bytes(body[8..12].try_into().unwrap());
        let kind = attrs(&body[16..])
            .find(|&(t, _)| t == IFLA_LINKINFO)
            .and_then(|(_, info)| attrs(info).find(|&(t, _)| t == IFLA_INFO_KIND))
            .map(|(_, k)| cstr(k));
        Ok(Some(Link {
            index,
            up: flags & libc::IFF_UP as u32 != 0,
            kind,
        }))
    }

    /// Create a bridge with a fixed MAC address: a bridge otherwise takes the lowest MAC of
    /// its ports, so the gateway's address would change as containers come and go.
    pub fn add_bridge(&mut self, name: &str, mac: [u8; 6]) -> NlResult<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(0, 0, 0)
            .attr_str(IFLA_IFNAME, name)
            .attr(IFLA_ADDRESS, &mac);
        let info = m.begin(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "bridge");
        m.end(info);
        self.request(&mut m).map(drop)
    }

    /// Create a veth pair: `name` here, enslaved to `master`, and `peer` created directly
    /// in the network namespace `peer_ns` (so it never exists under that name here).
    pub fn add_veth(
        &mut self,
        name: &str,
        master: u32,
        peer: &str,
        peer_mac: [u8; 6],
        peer_ns: &File,
    ) -> NlResult<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(0, 0, 0)
            .attr_str(IFLA_IFNAME, name)
            .attr_u32(IFLA_MASTER, master);
        let info = m.begin(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        let data = m.begin(IFLA_INFO_DATA);
        let p = m.begin(VETH_INFO_PEER);
        m.ifinfo(0, 0, 0)
            .attr_str(IFLA_IFNAME, peer)
            .attr(IFLA_ADDRESS, &peer_mac)
            .attr_u32(IFLA_NET_NS_FD, peer_ns.as_raw_fd() as u32);
        m.end(p);
        m.end(data);
        m.end(info);
        self.request(&mut m).map(drop)
    }

    pub fn set_up(&mut self, index: u32) -> NlResult<()> {
        let up = libc::IFF_UP as u32;
        let mut m = Msg::new(RTM_SETLINK, 0);
        m.ifinfo(index, up, up);
        self.request(&mut m).map(drop)
    }

    /// Delete the link called `name`; false when there was none.
    pub fn del_link(&mut self, name: &str) -> NlResult<bool> {
        let mut m = Msg::new(RTM_DELLINK, 0);
        m.ifinfo(0, 0, 0).attr_str(IFLA_IFNAME, name);
        match self.request(&mut m) {
            Ok(_) => Ok(true),
            Err(e) if e.errno == libc::ENODEV => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn add_addr4(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> NlResult<()> {
        let mask = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
        let brd = Ipv4Addr::from(u32::from(ip) | !mask);
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        let mut ifa = [0u8; 8];
        ifa[0] = libc::AF_INET as u8;
        ifa[1] = prefix;
        ifa[3] = RT_SCOPE_UNIVERSE;
        ifa[4..8].copy_from_slice(&index.to_ne_bytes());
        m.bytes(&ifa)
            .attr(IFA_LOCAL, &ip.octets())
            .attr(IFA_ADDRESS, &ip.octets())
            .attr(IFA_BROADCAST, &brd.octets());
        self.request(&mut m).map(drop)
    }

    /// The IPv4 addresses (with prefix length) of link `index`.
    pub fn addrs4(&mut self, index: u32) -> NlResult<Vec<(Ipv4Addr, u8)>> {
        Ok(self
            .all_addrs4()?
            .into_iter()
            .filter(|&(i, _, _)| i == index)
            .map(|(_, a, p)| (a, p))
            .collect())
    }

    /// Every IPv4 address of this namespace: (link index, address, prefix length).
    pub fn all_addrs4(&mut self) -> NlResult<Vec<(u32, Ipv4Addr, u8)>> {
        let mut m = Msg::new(RTM_GETADDR, NLM_F_DUMP);
        m.bytes(&[libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        for body in self.request(&mut m)? {
            if body.len() < 8 || body[0] != libc::AF_INET as u8 {
                continue;
            }
            let index = u32::from_ne_bytes(body[4..8].try_into().unwrap());
            let prefix = body[1];
            let mut addr = None;
            for (t, d) in attrs(&body[8..]) {
                if d.len() == 4 && (t == IFA_LOCAL || (t == IFA_ADDRESS && addr.is_none())) {
                    addr = Some(Ipv4Addr::new(d[0], d[1], d[2], d[3]));
                }
            }
            if let Some(a) = addr {
                out.push((index, a, prefix));
            }
        }
        Ok(out)
    }

    /// `default via gateway dev index` in the main table.
    pub fn add_default_route4(&mut self, index: u32, gateway: Ipv4Addr) -> NlResult<()> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        let mut rt = [0u8; 12];
        rt[0] = libc::AF_INET as u8;
        rt[4] = RT_TABLE_MAIN;
        rt[5] = RTPROT_BOOT;
        rt[6] = RT_SCOPE_UNIVERSE;
        rt[7] = RTN_UNICAST;
        m.bytes(&rt)
            .attr(RTA_GATEWAY, &gateway.octets())
            .attr_u32(RTA_OIF, index);
        self.request(&mut m).map(drop)
    }
}

/// Run `f` in the network namespace `ns` (an open /proc/PID/ns/net), on a short-lived
/// thread: setns(2) changes only the calling thread. What `f` opens there (a netlink
/// socket, a file under /proc/sys/net) belongs to that namespace. Err: setns failed.
pub fn in_netns<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid namespace fd; it changes only this thread, which
            // ends when `f` returns.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("network namespace thread panicked")))
    })
}

/// The kernel's explanation in an NLMSG_ERROR (NLMSGERR_ATTR_MSG), when it sent one.
fn ext_ack(body: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || body.len() < 4 + HDR {
        return None;
    }
    let orig_len = if flags & NLM_F_CAPPED != 0 {
        HDR
    } else {
        u32::from_ne_bytes(body[4..8].try_into().unwrap()) as usize
    };
    let tlvs = body.get((4 + orig_len).next_multiple_of(4)..)?;
    attrs(tlvs)
        .find(|&(t, _)| t == NLMSGERR_ATTR_MSG)
        .map(|(_, d)| cstr(d))
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_nested() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE);
        m.ifinfo(0, 0, 0).attr_str(IFLA_IFNAME, "abc");
        let info = m.begin(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "bridge");
        m.end(info);
        assert_eq!(m.buf.len() % 4, 0);
        let a: Vec<(u16, Vec<u8>)> = attrs(&m.buf[HDR + 16..])
            .map(|(t, d)| (t, d.to_vec()))
            .collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], (IFLA_IFNAME, b"abc\0".to_vec()));
        assert_eq!(a[1].0, IFLA_LINKINFO);
        let inner: Vec<(u16, String)> = attrs(&a[1].1).map(|(t, d)| (t, cstr(d))).collect();
        assert_eq!(inner, vec![(IFLA_INFO_KIND, "bridge".to_string())]);
    }

    #[test]
    fn errors_read_like_the_rest() {
        let e = NlError {
            errno: libc::EEXIST,
            ext: None,
        };
        assert_eq!(e.to_string(), "file exists");
        let e = NlError {
            errno: libc::EOPNOTSUPP,
            ext: Some("Unknown device type".into()),
        };
        assert_eq!(
            e.to_string(),
            "operation not supported (Unknown device type)"
        );
    }

    #[test]
    fn loopback_is_found_and_missing_links_are_none() {
        let mut nl = Netlink::open().unwrap();
        let lo = nl.link("lo").unwrap().unwrap();
        assert_eq!(lo.index, 1);
        assert_eq!(nl.link("mb-no-such-if").unwrap(), None);
        let addrs = nl.addrs4(1).unwrap();
        assert!(addrs.contains(&(Ipv4Addr::LOCALHOST, 8)), "{addrs:?}");
    }
}
