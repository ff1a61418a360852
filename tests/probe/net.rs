//! The probe's network attacks and checks, for tests/e2e/security/{ipv6,build_network}.rs:
//! `ra-attack` puts a real IPv6 router advertisement on eth0 through a packet socket (what
//! CAP_NET_RAW allows, whatever IPv6 settings the container has), `ra-listen` waits for one
//! on eth0 and then reports the container's IPv6 addresses, and `connect` tries a TCP or an
//! abstract unix socket of the host and prints what the server sent. Standard library and
//! the few libc calls declared here; nothing else.

use std::ffi::{c_int, c_void};
use std::io::{Read, Write};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

extern "C" {
    fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    fn bind(fd: c_int, addr: *const SockaddrLl, len: u32) -> c_int;
    fn sendto(
        fd: c_int,
        buf: *const c_void,
        n: usize,
        flags: c_int,
        addr: *const SockaddrLl,
        len: u32,
    ) -> isize;
    fn recv(fd: c_int, buf: *mut c_void, n: usize, flags: c_int) -> isize;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: u32) -> c_int;
    fn close(fd: c_int) -> c_int;
}

/// struct sockaddr_ll (packet(7)).
#[repr(C)]
struct SockaddrLl {
    family: u16,
    protocol: u16,
    ifindex: i32,
    hatype: u16,
    pkttype: u8,
    halen: u8,
    addr: [u8; 8],
}

#[repr(C)]
struct Timeval {
    sec: i64,
    usec: i64,
}

const AF_PACKET: c_int = 17;
const SOCK_RAW: c_int = 3;
const SOL_SOCKET: c_int = 1;
const SO_RCVTIMEO: c_int = 20;
const ETH_P_IPV6: u16 = 0x86dd;
const ICMPV6: u8 = 58;
const ROUTER_ADVERTISEMENT: u8 = 134;
/// All-nodes multicast, ff02::1, and its Ethernet address (RFC 2464).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

type Res<T = ()> = Result<T, String>;

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn sys(p: &str) -> Res<String> {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("read {p}: {e}"))
}

/// eth0's index and MAC address, from sysfs (the container's own network namespace's).
fn eth0() -> Res<(i32, [u8; 6])> {
    let index = sys("/sys/class/net/eth0/ifindex")?
        .parse()
        .map_err(|_| "eth0: bad ifindex".to_string())?;
    let text = sys("/sys/class/net/eth0/address")?;
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("eth0: bad address {text:?}"));
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("eth0: bad address {text:?}"))?;
    }
    Ok((index, mac))
}

/// The link-local address the kernel would derive from `mac` (EUI-64, RFC 4291).
fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let b = [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 2,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ];
    Ipv6Addr::from(b)
}

/// A packet socket for IPv6 frames on interface `index`.
fn packet_socket(index: i32) -> Res<c_int> {
    let fd = unsafe { socket(AF_PACKET, SOCK_RAW, ETH_P_IPV6.to_be() as c_int) };
    if fd < 0 {
        return Err(os_err("socket(AF_PACKET)"));
    }
    let sa = SockaddrLl {
        family: AF_PACKET as u16,
        protocol: ETH_P_IPV6.to_be(),
        ifindex: index,
        hatype: 0,
        pkttype: 0,
        halen: 0,
        addr: [0; 8],
    };
    if unsafe { bind(fd, &sa, std::mem::size_of::<SockaddrLl>() as u32) } != 0 {
        return Err(os_err("bind eth0"));
    }
    Ok(fd)
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame holding a router advertisement from `src` (MAC `mac`) to all nodes:
/// router lifetime 30 s (a default router), and `prefix`/64 on-link and autonomous (take an
/// address in it), valid 60 s. Short lifetimes: what a test run leaves expires by itself.
fn ra_frame(mac: [u8; 6], src: Ipv6Addr, prefix: Ipv6Addr) -> Vec<u8> {
    let mut icmp = vec![ROUTER_ADVERTISEMENT, 0, 0, 0, 64, 0];
    icmp.extend_from_slice(&30u16.to_be_bytes()); // router lifetime
    icmp.extend_from_slice(&[0; 8]); // reachable time, retrans timer
    icmp.extend_from_slice(&[1, 1]); // source link-layer address
    icmp.extend_from_slice(&mac);
    icmp.extend_from_slice(&[3, 4, 64, 0xc0]); // prefix information: /64, L and A
    icmp.extend_from_slice(&60u32.to_be_bytes()); // valid lifetime
    icmp.extend_from_slice(&30u32.to_be_bytes()); // preferred lifetime
    icmp.extend_from_slice(&[0; 4]);
    icmp.extend_from_slice(&prefix.octets());
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&ALL_NODES.octets());
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
    pseudo.extend_from_slice(&icmp);
    let sum = checksum(&pseudo);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::new();
    f.extend_from_slice(&ALL_NODES_MAC);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[ICMPV6, 255]); // next header, hop limit 255 (RFC 4861)
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&ALL_NODES.octets());
    f.extend_from_slice(&icmp);
    f
}

fn parse_prefix(s: &str) -> Res<Ipv6Addr> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IPv6 prefix like fd01:2:3:4::"))
}

/// `ra-attack PREFIX`: send the advertisement three times, 300 ms apart; print its source.
pub fn ra_attack(prefix: &str) -> Res {
    let prefix = parse_prefix(prefix)?;
    let (index, mac) = eth0()?;
    let src = link_local(mac);
    let fd = packet_socket(index)?;
    let frame = ra_frame(mac, src, prefix);
    let mut to = SockaddrLl {
        family: AF_PACKET as u16,
        protocol: ETH_P_IPV6.to_be(),
        ifindex: index,
        hatype: 0,
        pkttype: 0,
        halen: 6,
        addr: [0; 8],
    };
    to.addr[..6].copy_from_slice(&ALL_NODES_MAC);
    for i in 0..3 {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        let n = unsafe {
            sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                &to,
                std::mem::size_of::<SockaddrLl>() as u32,
            )
        };
        if n != frame.len() as isize {
            return Err(os_err("send the router advertisement"));
        }
    }
    unsafe { close(fd) };
    println!("sent router advertisement from {src}");
    Ok(())
}

/// The (source, prefixes) of a router advertisement in Ethernet frame `f`, if it is one.
fn advertisement(f: &[u8]) -> Option<(Ipv6Addr, Vec<Ipv6Addr>)> {
    let ip = f.get(14..)?;
    if f.get(12..14)? != ETH_P_IPV6.to_be_bytes() || *ip.get(6)? != ICMPV6 {
        return None;
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(ip.get(8..24)?).ok()?);
    let icmp = ip.get(40..)?;
    if *icmp.first()? != ROUTER_ADVERTISEMENT {
        return None;
    }
    let mut prefixes = Vec::new();
    let mut opts = icmp.get(16..)?;
    while opts.len() >= 8 {
        let len = opts[1] as usize * 8;
        if len == 0 || len > opts.len() {
            break;
        }
        if opts[0] == 3 && len == 32 {
            prefixes.push(Ipv6Addr::from(<[u8; 16]>::try_from(&opts[16..32]).ok()?));
        }
        opts = &opts[len..];
    }
    Some((src, prefixes))
}

/// `ra-listen PREFIX SECS`: print `listening`, wait (at most SECS) for a router advertisement
/// of PREFIX on eth0, then 2 s more for the kernel to act on it, and print `seen from SRC`
/// and each IPv6 address of this namespace as `inet6 ADDR IFNAME`. Exit 1 if none came.
pub fn ra_listen(prefix: &str, secs: u64) -> Res {
    let prefix = parse_prefix(prefix)?;
    let (index, _) = eth0()?;
    let fd = packet_socket(index)?;
    let tv = Timeval {
        sec: 0,
        usec: 200_000,
    };
    if unsafe {
        setsockopt(
            fd,
            SOL_SOCKET,
            SO_RCVTIMEO,
            (&tv as *const Timeval).cast(),
            std::mem::size_of::<Timeval>() as u32,
        )
    } != 0
    {
        return Err(os_err("setsockopt SO_RCVTIMEO"));
    }
    println!("listening");
    let _ = std::io::stdout().flush();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = vec![0u8; 65536];
    let from = loop {
        if Instant::now() > deadline {
            return Err(format!("no router advertisement of {prefix} in {secs}s"));
        }
        let n = unsafe { recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            continue;
        }
        if let Some((src, prefixes)) = advertisement(&buf[..n as usize]) {
            if prefixes.contains(&prefix) {
                break src;
            }
        }
    };
    unsafe { close(fd) };
    std::thread::sleep(Duration::from_secs(2));
    println!("seen from {from}");
    // /proc/net/if_inet6: address (32 hex digits), index, prefix length, scope, flags, name.
    let text = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(hex), Some(name)) = (f.first(), f.last()) else {
            continue;
        };
        let Ok(n) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        println!("inet6 {} {name}", Ipv6Addr::from(n));
    }
    Ok(())
}

/// `connect tcp HOST:PORT` or `connect unix @NAME` (an abstract socket): print
/// `connected: TEXT`, TEXT being what the server sent before closing.
pub fn connect(kind: &str, addr: &str) -> Res {
    let timeout = Duration::from_secs(5);
    let mut text = String::new();
    match kind {
        "tcp" => {
            let a: std::net::SocketAddr = addr
                .parse()
                .map_err(|_| format!("{addr:?} is not HOST:PORT"))?;
            let mut s = std::net::TcpStream::connect_timeout(&a, timeout)
                .map_err(|e| format!("connect tcp {addr}: {e}"))?;
            s.set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            s.read_to_string(&mut text)
                .map_err(|e| format!("read from tcp {addr}: {e}"))?;
        }
        "unix" => {
            use std::os::linux::net::SocketAddrExt;
            let name = addr
                .strip_prefix('@')
                .ok_or_else(|| format!("{addr:?} is not an abstract name (@NAME)"))?;
            let sa = std::os::unix::net::SocketAddr::from_abstract_name(name)
                .map_err(|e| e.to_string())?;
            let mut s = std::os::unix::net::UnixStream::connect_addr(&sa)
                .map_err(|e| format!("connect unix {addr}: {e}"))?;
            s.set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            s.read_to_string(&mut text)
                .map_err(|e| format!("read from unix {addr}: {e}"))?;
        }
        k => return Err(format!("connect: unknown kind {k:?} (tcp or unix)")),
    }
    println!("connected: {}", text.trim());
    Ok(())
}
