//! Published ports (`-p [IP:]HOST:CTR[/PROTO]`): the syntax, and a userland proxy in the
//! process that watches the container, like docker-proxy or rootlesskit's builtin driver.
//! Every listener is bound before `publish` returns, so a port in use is reported before the
//! container starts; then background threads relay TCP connections (half-close kept) and
//! UDP datagrams (one upstream socket per client, dropped when idle) to the container. It
//! must not touch links, leases or firewalls.
//!
//! The threads block every signal, so that the signals mrun forwards to the container
//! (see `process::FORWARDED`) keep reaching the thread that waits for them.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a UDP client may stay silent (both ways) before its upstream socket is closed;
/// docker-proxy's value.
pub const UDP_IDLE: Duration = Duration::from_secs(90);
/// At most this many UDP clients at once per published port; datagrams from more new ones
/// are dropped (each costs a socket and a thread).
const UDP_MAX_FLOWS: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const STACK: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One `-p`: traffic to host_ip:host_port goes to the container's container_port.
/// host_port 0 means any free port (`-p 80`, `-p 127.0.0.1::80`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Publish {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl fmt::Display for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            IpAddr::V4(ip) => write!(f, "{ip}:")?,
            IpAddr::V6(ip) => write!(f, "[{ip}]:")?,
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port,
            self.container_port,
            self.proto.as_str()
        )
    }
}

impl Publish {
    pub fn host_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host_ip, self.host_port)
    }
}

/// `[IP:]HOST:CTR[/tcp|/udp]`, `CTR` alone or `IP::CTR` for a random host port; an IPv6
/// address goes in brackets (`[::1]:8080:80`).
pub fn parse_publish(s: &str) -> Result<Publish> {
    let bad = |why: &str| Error::invalid(format!("invalid publish \"{s}\": {why}"));
    let (spec, proto) = match s.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Proto::Tcp),
        Some((spec, "udp")) => (spec, Proto::Udp),
        Some((_, p)) => return Err(bad(&format!("unknown protocol \"{p}\" (tcp or udp)"))),
        None => (s, Proto::Tcp),
    };
    let (ip, ports): (Option<IpAddr>, Vec<&str>) = if let Some(rest) = spec.strip_prefix('[') {
        let (ip, rest) = rest
            .split_once(']')
            .ok_or_else(|| bad("missing ']' after the IPv6 address"))?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| bad(&format!("\"{ip}\" is not an IPv6 address")))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| bad("expected [IP]:HOST:CONTAINER"))?;
        let ports: Vec<&str> = rest.split(':').collect();
        if ports.len() != 2 {
            return Err(bad("expected [IP]:HOST:CONTAINER"));
        }
        (Some(IpAddr::V6(ip)), ports)
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 => (None, vec!["", parts[0]]),
            2 => (None, parts),
            3 => {
                let ip = parts[0]
                    .parse::<Ipv4Addr>()
                    .map_err(|_| bad(&format!("\"{}\" is not an IPv4 address", parts[0])))?;
                (Some(IpAddr::V4(ip)), parts[1..].to_vec())
            }
            _ => {
                return Err(bad(
                    "too many ':' (put an IPv6 address in brackets: [::1]:8080:80)",
                ))
            }
        }
    };
    let port = |p: &str, what: &str| -> Result<u16> {
        if p.contains('-') {
            return Err(bad("port ranges are not supported"));
        }
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(&format!("\"{p}\" is not a {what} port (1-65535)"))),
        }
    };
    let host_port = if ports[0].is_empty() {
        0
    } else {
        port(ports[0], "host")?
    };
    Ok(Publish {
        host_ip: ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        host_port,
        container_port: port(ports[1], "container")?,
        proto,
    })
}

/// The running proxies of one container. Dropping (or `close`) stops them: the listeners
/// are closed by the time it returns, open connections are shut down.
pub struct Proxies {
    stop: Option<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
    bound: Vec<Publish>,
    udp: Vec<Arc<Flows>>,
}

impl Proxies {
    /// What is published, with the host ports the kernel chose for host port 0.
    pub fn ports(&self) -> &[Publish] {
        &self.bound
    }

    pub fn close(self) {}
}

impl Drop for Proxies {
    fn drop(&mut self) {
        // Closing the write end wakes every thread's poll with POLLHUP.
        self.stop.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Bind every port of `ports`, then relay them to `target` on background threads.
pub fn publish(ports: &[Publish], target: Ipv4Addr) -> Result<Proxies> {
    publish_to(ports, IpAddr::V4(target), UDP_IDLE)
}

enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

pub(crate) fn publish_to(ports: &[Publish], target: IpAddr, udp_idle: Duration) -> Result<Proxies> {
    let mut bound = Vec::with_capacity(ports.len());
    for p in ports {
        let fail = |e: io::Error| {
            Error::invalid(format!("publish {p}: {}", layers::error::io_message(&e)))
        };
        let (sock, port) = match p.proto {
            Proto::Tcp => {
                let l = TcpListener::bind(p.host_addr()).map_err(fail)?;
                let port = l.local_addr().map_err(fail)?.port();
                (Bound::Tcp(l), port)
            }
            Proto::Udp => {
                let u = UdpSocket::bind(p.host_addr()).map_err(fail)?;
                let port = u.local_addr().map_err(fail)?.port();
                (Bound::Udp(u), port)
            }
        };
        bound.push((
            sock,
            Publish {
                host_port: port,
                ..*p
            },
        ));
    }
    let (stop_r, stop_w) = pipe()?;
    let stop_r = Arc::new(stop_r);
    let mut proxies = Proxies {
        stop: Some(stop_w),
        threads: Vec::new(),
        bound: bound.iter().map(|(_, p)| *p).collect(),
        udp: Vec::new(),
    };
    for (sock, p) in bound {
        let to = SocketAddr::new(target, p.container_port);
        let stop = stop_r.clone();
        let t = match sock {
            Bound::Tcp(l) => spawn_quiet(move || serve_tcp(l, to, stop)),
            Bound::Udp(u) => {
                let flows: Arc<Flows> = Arc::default();
                proxies.udp.push(flows.clone());
                spawn_quiet(move || serve_udp(u, to, flows, stop, udp_idle))
            }
        }
        .map_err(|e| Error::Sys("start the port proxy", e))?;
        proxies.threads.push(t);
    }
    Ok(proxies)
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::last_os("pipe"));
    }
    // SAFETY: both are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Start a thread with every signal blocked from its first instruction (a thread inherits
/// the mask of the one that creates it).
pub(crate) fn spawn_quiet<F>(f: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    // SAFETY: sigset operations on local, initialised sets.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let t = std::thread::Builder::new()
            .name("mb-port-proxy".into())
            .stack_size(STACK)
            .spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        t
    }
}

#[derive(PartialEq, Eq)]
enum Wake {
    Ready,
    Stop,
    Timeout,
}

/// Wait until `fd` is readable, the stop pipe is closed, or `timeout` passes.
fn wait(fd: RawFd, stop: RawFd, timeout: Option<Duration>) -> Wake {
    let ms = timeout.map_or(-1, |t| t.as_millis().clamp(1, i32::MAX as u128) as i32);
    let mut fds = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: a valid array of two pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if r < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // poll itself failing leaves nothing sensible to do but stop.
            return Wake::Stop;
        }
        if fds[1].revents != 0 {
            return Wake::Stop;
        }
        return if r == 0 { Wake::Timeout } else { Wake::Ready };
    }
}

/// Live connections of one TCP port, so that stopping can shut them down.
#[derive(Default)]
struct Conns {
    stopped: bool,
    next: u64,
    live: HashMap<u64, Vec<TcpStream>>,
}

fn serve_tcp(l: TcpListener, to: SocketAddr, stop: Arc<OwnedFd>) {
    let conns = Arc::new(Mutex::new(Conns::default()));
    loop {
        if wait(l.as_raw_fd(), stop.as_raw_fd(), None) == Wake::Stop {
            break;
        }
        let client = match l.accept() {
            Ok((c, _)) => c,
            // Out of descriptors, or a client that left before accept: do not spin.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let conns = conns.clone();
        // A connection thread that cannot start closes its client; the port stays.
        let _ = spawn_quiet(move || proxy_tcp(client, to, &conns));
    }
    drop(l);
    let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
    c.stopped = true;
    for s in c.live.values().flatten() {
        let _ = s.shutdown(Shutdown::Both);
    }
}

fn proxy_tcp(client: TcpStream, to: SocketAddr, conns: &Mutex<Conns>) {
    let register = |s: &TcpStream, id: Option<u64>| -> Option<u64> {
        let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
        if c.stopped {
            return None;
        }
        let id = id.unwrap_or_else(|| {
            c.next += 1;
            c.next
        });
        if let Ok(s) = s.try_clone() {
            c.live.entry(id).or_default().push(s);
        }
        Some(id)
    };
    let Some(id) = register(&client, None) else {
        return;
    };
    if let Ok(upstream) = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT) {
        if register(&upstream, Some(id)).is_some() {
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            std::thread::scope(|s| {
                let back = std::thread::Builder::new()
                    .stack_size(STACK)
                    .spawn_scoped(s, || copy(&upstream, &client));
                copy(&client, &upstream);
                if back.is_err() {
                    let _ = upstream.shutdown(Shutdown::Both);
                }
            });
        }
    }
    conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .live
        .remove(&id);
}

/// Copy `from` to `to` until EOF, then half-close `to` so the other side sees the EOF too.
/// On an error both sockets are shut down, which also ends the other direction.
fn copy(mut from: &TcpStream, mut to: &TcpStream) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

struct Flow {
    up: UdpSocket,
    last: Instant,
}

type Flows = Mutex<HashMap<SocketAddr, Arc<Mutex<Flow>>>>;

fn serve_udp(
    sock: UdpSocket,
    to: SocketAddr,
    flows: Arc<Flows>,
    stop: Arc<OwnedFd>,
    idle: Duration,
) {
    let sock = Arc::new(sock);
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        if wait(sock.as_raw_fd(), stop.as_raw_fd(), None) == Wake::Stop {
            break;
        }
        let Ok((n, client)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let mut map = flows.lock().unwrap_or_else(|e| e.into_inner());
        let flow = {
            match map.get(&client) {
                Some(f) => f.clone(),
                None if map.len() >= UDP_MAX_FLOWS => continue,
                None => {
                    let Ok(up) = upstream_udp(to) else { continue };
                    let Ok(up_fd) = up.try_clone() else { continue };
                    let f = Arc::new(Mutex::new(Flow {
                        up,
                        last: Instant::now(),
                    }));
                    let (sock, flows, stop, f2) =
                        (sock.clone(), flows.clone(), stop.clone(), f.clone());
                    threads.retain(|t| !t.is_finished());
                    match spawn_quiet(move || {
                        udp_replies(up_fd, client, &f2, &sock, &flows, &stop, idle)
                    }) {
                        Ok(t) => threads.push(t),
                        Err(_) => continue,
                    }
                    map.insert(client, f.clone());
                    f
                }
            }
        };
        // Refreshed under the map lock, which the idle check takes too (see udp_replies).
        let mut f = flow.lock().unwrap_or_else(|e| e.into_inner());
        f.last = Instant::now();
        let _ = f.up.send(&buf[..n]);
        drop(f);
        drop(map);
    }
    for t in threads {
        let _ = t.join();
    }
}

fn upstream_udp(to: SocketAddr) -> io::Result<UdpSocket> {
    let any: IpAddr = match to {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let up = UdpSocket::bind((any, 0))?;
    up.connect(to)?;
    Ok(up)
}

/// Relay the container's replies to `client` until the flow has been idle for `idle`.
fn udp_replies(
    up: UdpSocket,
    client: SocketAddr,
    flow: &Arc<Mutex<Flow>>,
    sock: &UdpSocket,
    flows: &Flows,
    stop: &OwnedFd,
    idle: Duration,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let left = {
            let f = flow.lock().unwrap_or_else(|e| e.into_inner());
            idle.saturating_sub(f.last.elapsed())
        };
        if left.is_zero() {
            // Decide under the map lock: the receiving thread refreshes `last` under it,
            // so a datagram on its way out through this flow keeps the flow.
            let mut map = flows.lock().unwrap_or_else(|e| e.into_inner());
            let f = flow.lock().unwrap_or_else(|e| e.into_inner());
            if f.last.elapsed() >= idle {
                map.remove(&client);
                return;
            }
            continue;
        }
        match wait(up.as_raw_fd(), stop.as_raw_fd(), Some(left)) {
            Wake::Stop => return,
            Wake::Timeout => {}
            Wake::Ready => {
                // ECONNREFUSED (nothing listens in the container yet) is not the end.
                if let Ok(n) = up.recv(&mut buf) {
                    flow.lock().unwrap_or_else(|e| e.into_inner()).last = Instant::now();
                    let _ = sock.send_to(&buf[..n], client);
                }
            }
        }
    }
}

#[cfg(test)]
fn udp_flows(p: &Proxies) -> usize {
    p.udp
        .iter()
        .map(|f| f.lock().unwrap_or_else(|e| e.into_inner()).len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Publish {
        parse_publish(s).unwrap()
    }

    #[test]
    fn publish_forms() {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            p("8080:80"),
            Publish {
                host_ip: any,
                host_port: 8080,
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        assert_eq!(
            p("127.0.0.1:53:5353/udp"),
            Publish {
                host_ip: "127.0.0.1".parse().unwrap(),
                host_port: 53,
                container_port: 5353,
                proto: Proto::Udp
            }
        );
        assert_eq!(p("80").host_port, 0);
        assert_eq!(p("80").container_port, 80);
        assert_eq!(p("127.0.0.1::80").host_port, 0);
        assert_eq!(p("127.0.0.1::80").host_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let v6 = p("[::1]:8080:80/tcp");
        assert_eq!(v6.host_ip, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(v6.to_string(), "[::1]:8080:80/tcp");
        assert_eq!(p("1.2.3.4:8080:80").to_string(), "1.2.3.4:8080:80/tcp");
        assert_eq!(p("8080:80/udp").to_string(), "0.0.0.0:8080:80/udp");
    }

    #[test]
    fn publish_errors_name_the_value() {
        let e = |s: &str| parse_publish(s).unwrap_err().to_string();
        assert_eq!(
            e("80/sctp"),
            "invalid publish \"80/sctp\": unknown protocol \"sctp\" (tcp or udp)"
        );
        assert_eq!(
            e("8080:0"),
            "invalid publish \"8080:0\": \"0\" is not a container port (1-65535)"
        );
        assert_eq!(
            e("70000:80"),
            "invalid publish \"70000:80\": \"70000\" is not a host port (1-65535)"
        );
        assert_eq!(
            e("8000-8001:80"),
            "invalid publish \"8000-8001:80\": port ranges are not supported"
        );
        assert_eq!(
            e("nohost:1:2"),
            "invalid publish \"nohost:1:2\": \"nohost\" is not an IPv4 address"
        );
        assert_eq!(
            e("::1:8080:80"),
            "invalid publish \"::1:8080:80\": too many ':' (put an IPv6 address in brackets: [::1]:8080:80)"
        );
        assert_eq!(
            e("[::1:8080:80"),
            "invalid publish \"[::1:8080:80\": missing ']' after the IPv6 address"
        );
        assert_eq!(
            e(""),
            "invalid publish \"\": \"\" is not a container port (1-65535)"
        );
    }

    fn echo_tcp() -> (SocketAddr, JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            // Two connections: one echoed until EOF, then one more.
            for _ in 0..2 {
                let (mut s, _) = l.accept().unwrap();
                let mut data = Vec::new();
                s.read_to_end(&mut data).unwrap();
                s.write_all(&data).unwrap();
            }
        });
        (addr, t)
    }

    #[test]
    fn tcp_round_trip_with_half_close() {
        let (echo, server) = echo_tcp();
        let spec = Publish {
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_port: 0,
            container_port: echo.port(),
            proto: Proto::Tcp,
        };
        let proxies = publish(&[spec], Ipv4Addr::LOCALHOST).unwrap();
        let front = proxies.ports()[0].host_addr();
        assert_ne!(front.port(), 0, "the chosen port is reported");
        for round in 0..2 {
            let mut c = TcpStream::connect(front).unwrap();
            let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + round) as u8).collect();
            c.write_all(&data).unwrap();
            // The echo server answers only after EOF: the half-close must pass through.
            c.shutdown(Shutdown::Write).unwrap();
            let mut back = Vec::new();
            c.read_to_end(&mut back).unwrap();
            assert_eq!(back.len(), data.len());
            assert!(back == data);
        }
        server.join().unwrap();
        proxies.close();
        assert!(
            TcpStream::connect(front).is_err(),
            "the listener is closed once close() returns"
        );
    }

    #[test]
    fn stopping_ends_open_connections() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let spec =
            parse_publish(&format!("127.0.0.1::{}", l.local_addr().unwrap().port())).unwrap();
        let proxies = publish(&[spec], Ipv4Addr::LOCALHOST).unwrap();
        let mut c = TcpStream::connect(proxies.ports()[0].host_addr()).unwrap();
        let (_held, _) = l.accept().unwrap();
        drop(proxies);
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        // EOF (or a reset), not a timeout: the proxy shut the connection down.
        match c.read(&mut b) {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_ne!(e.kind(), io::ErrorKind::WouldBlock, "{e}"),
        }
    }

    #[test]
    fn udp_round_trip_and_idle_flows_end() {
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = echo.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut b = [0u8; 2048];
            for _ in 0..3 {
                let (n, from) = echo.recv_from(&mut b).unwrap();
                let mut r = b"re:".to_vec();
                r.extend_from_slice(&b[..n]);
                echo.send_to(&r, from).unwrap();
            }
        });
        let spec = parse_publish(&format!("127.0.0.1::{port}/udp")).unwrap();
        let proxies = publish_to(
            &[spec],
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            Duration::from_millis(300),
        )
        .unwrap();
        let front = proxies.ports()[0].host_addr();
        let ask = |c: &UdpSocket, msg: &[u8]| -> Vec<u8> {
            c.send_to(msg, front).unwrap();
            let mut b = [0u8; 2048];
            let (n, from) = c.recv_from(&mut b).unwrap();
            assert_eq!(from, front, "replies come from the published address");
            b[..n].to_vec()
        };
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        assert_eq!(ask(&a, b"one"), b"re:one");
        assert_eq!(ask(&b, b"two"), b"re:two");
        assert_eq!(udp_flows(&proxies), 2, "one upstream socket per client");
        // After the idle timeout the flows are gone; a new datagram makes a new one.
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(udp_flows(&proxies), 0);
        assert_eq!(ask(&a, b"three"), b"re:three");
        server.join().unwrap();
        assert_eq!(udp_flows(&proxies), 1);
        drop(proxies);
        assert!(UdpSocket::bind(front).is_ok(), "the port is free again");
    }

    #[test]
    fn a_port_in_use_is_one_clear_line() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let free_port = free.local_addr().unwrap().port();
        drop(free);
        let specs = [
            parse_publish(&format!("127.0.0.1:{free_port}:80")).unwrap(),
            parse_publish(&format!("127.0.0.1:{port}:80")).unwrap(),
        ];
        let e = publish(&specs, Ipv4Addr::LOCALHOST)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            format!("publish 127.0.0.1:{port}:80/tcp: address already in use")
        );
        assert!(
            TcpListener::bind(("127.0.0.1", free_port)).is_ok(),
            "the ports bound before the failure are released"
        );
    }
}
