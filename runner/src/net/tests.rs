//! Tests of the whole module. Those that need root run for real, with names of their own
//! (bridge `mbt<pid><tag>`, subnets 10.25x.<pid%250>.0/24, tables `mbtest_<pid>_<tag>`),
//! and a guard that removes everything they made even when an assertion fails.

use super::*;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::Duration;

/// Tests that change host-wide state (ip_forward, the FORWARD policy, iptables' nat table)
/// run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn can(what: &str, ok: bool, why: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what}: {why}, and CI must run it");
    }
    println!("skipped: {what}: {why}");
    false
}

fn root(what: &str) -> bool {
    can(what, unsafe { libc::geteuid() } == 0, "needs root")
}

fn test_cfg(dir: &Path, tag: char, octet: u8) -> NetConfig {
    let pid = std::process::id();
    NetConfig::new(
        format!("mbt{}{tag}", pid % 10_000_000),
        format!("10.{octet}.{}.0/24", pid % 250).parse().unwrap(),
        format!("mbtest_{pid}_{tag}"),
        dir.join("network"),
    )
    .unwrap()
}

fn test_id() -> String {
    let mut b = [0u8; 32];
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `sleep` in a network namespace of its own (and a user namespace, with `userns`).
fn netns_process(userns: bool) -> Child {
    let mut c = Command::new("sleep");
    c.arg("120");
    let flags = libc::CLONE_NEWNET | if userns { libc::CLONE_NEWUSER } else { 0 };
    unsafe {
        c.pre_exec(move || {
            if libc::unshare(flags) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.spawn().expect("spawn sleep in a new network namespace")
}

/// Run `f` on a thread inside the network namespace of `pid`. Sockets it creates stay in
/// that namespace after it returns.
fn in_netns<T: Send>(pid: u32, f: impl FnOnce() -> T + Send) -> T {
    let ns = File::open(format!("/proc/{pid}/ns/net")).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            f()
        })
        .join()
        .unwrap()
    })
}

fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn link_exists(name: &str) -> bool {
    Netlink::open().unwrap().link(name).unwrap().is_some()
}

fn table_exists(family_table: &str) -> bool {
    let mut a = vec!["list", "table"];
    a.extend(family_table.split(' '));
    sh("nft", &a).0
}

/// Puts the machine back as it was: kills the processes we started (by their pid), deletes
/// our links and table, and restores what the test changed host-wide.
struct Cleanup {
    cfg: NetConfig,
    procs: Vec<Child>,
    links: Vec<String>,
    ip_forward: String,
    forward_policy: Option<String>,
    /// nftables tables that iptables-nft creates on first use and never removes.
    created_tables: Vec<&'static str>,
}

impl Cleanup {
    fn new(cfg: &NetConfig) -> Cleanup {
        Cleanup {
            cfg: cfg.clone(),
            procs: vec![],
            links: vec![cfg.bridge.clone()],
            ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
            forward_policy: None,
            created_tables: vec![],
        }
    }

    fn spawn(&mut self, userns: bool) -> u32 {
        let c = netns_process(userns);
        let pid = c.id();
        self.procs.push(c);
        pid
    }

    /// Note that iptables may create these tables, to remove them if they were not there.
    fn watch_tables(&mut self, tables: &[&'static str]) {
        if nat::find_tool("nft").is_none() {
            return;
        }
        for t in tables {
            if !table_exists(t) {
                self.created_tables.push(t);
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        if let Ok(mut nl) = Netlink::open() {
            for l in &self.links {
                let _ = nl.del_link(l);
            }
        }
        let _ = nat::teardown(&self.cfg, &nat::Tools::find());
        // Switch forwarding back off only when it was off and no real container uses the
        // real bridge meanwhile (its NAT needs forwarding).
        let real = NetConfig::new(DEFAULT_BRIDGE, DEFAULT_SUBNET, DEFAULT_TABLE, STATE_DIR);
        if self.ip_forward.trim() == "0"
            && real.is_ok_and(|r| leases(&r).is_ok_and(|l| l.is_empty()))
        {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "0");
        }
        if let Some(p) = &self.forward_policy {
            let _ = sh("iptables", &["-w", "-P", "FORWARD", p]);
        }
        for t in &self.created_tables {
            let mut a = vec!["delete", "table"];
            a.extend(t.split(' '));
            let _ = sh("nft", &a);
        }
    }
}

#[test]
fn subnets_parse_and_validate() {
    let s: Subnet = "10.77.0.0/16".parse().unwrap();
    assert_eq!(s, DEFAULT_SUBNET);
    assert_eq!(s.to_string(), "10.77.0.0/16");
    assert_eq!(s.gateway(), Ipv4Addr::new(10, 77, 0, 1));
    assert!(s.contains(Ipv4Addr::new(10, 77, 255, 1)));
    assert!(!s.contains(Ipv4Addr::new(10, 78, 0, 1)));
    let inner: Subnet = "10.77.3.0/24".parse().unwrap();
    let beside: Subnet = "10.78.0.0/16".parse().unwrap();
    assert!(s.overlaps(inner) && inner.overlaps(s));
    assert!(!s.overlaps(beside) && !beside.overlaps(s));
    let small: Subnet = "192.168.5.0/30".parse().unwrap();
    assert_eq!(
        small.hosts().collect::<Vec<_>>(),
        vec![Ipv4Addr::new(192, 168, 5, 2)]
    );
    assert_eq!(s.hosts().count(), 65536 - 3);
    let e = |v: &str| v.parse::<Subnet>().unwrap_err().to_string();
    assert_eq!(
        e("10.77.0.1/16"),
        "invalid subnet \"10.77.0.1/16\": host bits are set (the network is 10.77.0.0/16)"
    );
    assert_eq!(
        e("10.77.0.0/31"),
        "invalid subnet \"10.77.0.0/31\": the prefix length must be 8 to 30"
    );
    assert_eq!(
        e("10.77.0.0"),
        "invalid subnet \"10.77.0.0\": expected ADDRESS/PREFIX, like 10.77.0.0/16"
    );
    assert_eq!(
        e("ten/8"),
        "invalid subnet \"ten/8\": \"ten\" is not an IPv4 address"
    );
}

#[test]
fn config_comes_from_env_then_store_file_then_default() {
    let t = tempfile::tempdir().unwrap();
    let cfg = NetConfig::from_sources(None, t.path()).unwrap();
    assert_eq!(cfg.subnet, DEFAULT_SUBNET);
    assert_eq!(
        (cfg.bridge.as_str(), cfg.table.as_str()),
        ("minibox0", "minibox")
    );
    assert_eq!(cfg.dir, Path::new(STATE_DIR));
    std::fs::create_dir(t.path().join("network")).unwrap();
    std::fs::write(t.path().join("network/subnet"), "172.30.0.0/24\n").unwrap();
    let cfg = NetConfig::from_sources(None, t.path()).unwrap();
    assert_eq!(cfg.subnet.to_string(), "172.30.0.0/24");
    assert_eq!(cfg.gateway(), Ipv4Addr::new(172, 30, 0, 1));
    let cfg = NetConfig::from_sources(Some("10.5.0.0/16".into()), t.path()).unwrap();
    assert_eq!(
        cfg.subnet.to_string(),
        "10.5.0.0/16",
        "the environment wins"
    );
    let e = NetConfig::from_sources(Some("10.5.0.0/33".into()), t.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "$MINIBOX_SUBNET: invalid subnet \"10.5.0.0/33\": the prefix length must be 8 to 30"
    );
    std::fs::write(t.path().join("network/subnet"), "bogus\n").unwrap();
    let e = NetConfig::from_sources(None, t.path())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: invalid subnet \"bogus\": expected ADDRESS/PREFIX, like 10.77.0.0/16",
            t.path().join("network/subnet").display()
        )
    );
}

#[test]
fn names_are_checked() {
    let s = DEFAULT_SUBNET;
    assert!(NetConfig::new("a-very-long-bridge", s, "t", "/x").is_err());
    assert_eq!(
        NetConfig::new("br\"0", s, "t", "/x")
            .unwrap_err()
            .to_string(),
        "invalid bridge name \"br\"0\": 1 to 15 letters, digits, '_', '.' or '-'"
    );
    assert_eq!(
        NetConfig::new("br0", s, "my-table", "/x")
            .unwrap_err()
            .to_string(),
        "invalid table name \"my-table\": a letter, then letters, digits or '_' (at most 28)"
    );
    assert_eq!(host_veth("0123456789abcdef"), "mb0123456789a");
    assert_eq!(host_veth("abc"), "mbabc");
    assert!(check_id("../x").is_err());
}

/// A host that only counts: the bridge (index `bridge`) and the firewall as calls, the
/// firewall failing with `fail` when set.
#[derive(Default)]
struct Fake {
    bridge: std::sync::atomic::AtomicU32,
    fail: Option<&'static str>,
    bridge_ups: std::sync::atomic::AtomicUsize,
    bridge_downs: std::sync::atomic::AtomicUsize,
    firewall_ups: std::sync::atomic::AtomicUsize,
    firewall_downs: std::sync::atomic::AtomicUsize,
}

impl Fake {
    fn new(bridge: u32) -> Fake {
        let f = Fake::default();
        f.bridge.store(bridge, Relaxed);
        f
    }

    /// (bridge ups, bridge downs, firewall ups, firewall downs)
    fn calls(&self) -> (usize, usize, usize, usize) {
        (
            self.bridge_ups.load(Relaxed),
            self.bridge_downs.load(Relaxed),
            self.firewall_ups.load(Relaxed),
            self.firewall_downs.load(Relaxed),
        )
    }
}

impl Host for Fake {
    fn bridge_up(&self) -> Result<u32> {
        self.bridge_ups.fetch_add(1, Relaxed);
        Ok(self.bridge.load(Relaxed))
    }

    fn bridge_down(&self) -> Result<()> {
        self.bridge_downs.fetch_add(1, Relaxed);
        Ok(())
    }

    fn firewall_up(&self) -> Result<()> {
        self.firewall_ups.fetch_add(1, Relaxed);
        match self.fail {
            Some(e) => Err(Error::invalid(e)),
            None => Ok(()),
        }
    }

    fn firewall_down(&self) -> Result<()> {
        self.firewall_downs.fetch_add(1, Relaxed);
        Ok(())
    }
}

#[test]
fn fifty_concurrent_leases_are_distinct() {
    let t = tempfile::tempdir().unwrap();
    let cfg = test_cfg(t.path(), 'l', 251);
    let n = 50;
    let start = Arc::new(Barrier::new(n));
    let host = Arc::new(Fake::new(7));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (cfg, start, host) = (cfg.clone(), start.clone(), host.clone());
            std::thread::spawn(move || {
                let id = format!("c{i}");
                start.wait();
                let ip = reserve(&cfg, &id, &*host).unwrap();
                assert_eq!(lease_of(&cfg, &id), Some(ip));
                // Everyone holds a lease before anyone lets go.
                start.wait();
                let gone = release(&cfg, &id, &*host).unwrap();
                assert_eq!(gone, vec![ip]);
                ip
            })
        })
        .collect();
    let ips: Vec<Ipv4Addr> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let distinct: HashSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), n, "{ips:?}");
    assert!(ips
        .iter()
        .all(|ip| cfg.subnet.contains(*ip) && *ip != cfg.gateway()));
    assert_eq!(
        host.calls(),
        (n, 1, 1, 1),
        "the bridge checked at every join, the firewall set up once, and only the last \
         release tears down"
    );
    let left: Vec<_> = std::fs::read_dir(lease::dir(&cfg.dir)).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!cfg.dir.join(FIREWALL_FOR).exists());
}

#[test]
fn a_failed_setup_releases_the_lease_and_tears_down() {
    let t = tempfile::tempdir().unwrap();
    let cfg = test_cfg(t.path(), 'f', 251);
    let host = Fake {
        fail: Some("nft: boom"),
        ..Fake::new(7)
    };
    let e = reserve(&cfg, "x", &host).unwrap_err();
    assert_eq!(e.to_string(), "nft: boom");
    assert_eq!(host.calls(), (1, 1, 1, 1));
    assert_eq!(leases(&cfg).unwrap(), vec![]);
    assert!(!cfg.dir.join(FIREWALL_FOR).exists());
}

#[test]
fn ordinary_joins_and_leaves_never_wait_for_the_firewall() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = test_cfg(t.path(), 'w', 251);
    cfg.lock_timeout = Duration::from_millis(300);
    let host = Fake::new(7);
    let a = reserve(&cfg, "a", &host).unwrap();
    assert_eq!(
        std::fs::read_to_string(cfg.dir.join(FIREWALL_FOR)).unwrap(),
        "7\n"
    );
    // A firewall run that hangs (here: its lock, held by this test).
    let fw = lock::lock(&cfg.dir, FIREWALL_LOCK, LOCK_TIMEOUT).unwrap();
    // The bridge whose firewall is in place: a join takes the network lock only, and so
    // does a leave that is not the last.
    let b = reserve(&cfg, "b", &host).unwrap();
    assert_ne!(a, b);
    assert_eq!(release(&cfg, "b", &host).unwrap(), vec![b]);
    assert_eq!(host.calls(), (2, 0, 1, 0));
    // A new bridge (made again after a crash, say) needs its firewall: that start waits for
    // the lock, and after the bound gives up naming the holder, and leaves no lease.
    host.bridge.store(8, Relaxed);
    let e = reserve(&cfg, "c", &host).unwrap_err().to_string();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(
        e,
        format!(
            "network lock {} not granted within 0.3s: process {} ({}) holds it",
            cfg.dir.join(FIREWALL_LOCK).display(),
            std::process::id(),
            comm.trim()
        )
    );
    assert_eq!(lease_of(&cfg, "c"), None);
    assert_eq!(host.calls(), (3, 0, 1, 0));
    drop(fw);
    let c = reserve(&cfg, "c", &host).unwrap();
    assert_eq!(host.calls(), (4, 0, 2, 0));
    assert_eq!(
        std::fs::read_to_string(cfg.dir.join(FIREWALL_FOR)).unwrap(),
        "8\n"
    );
    assert_eq!(release(&cfg, "c", &host).unwrap(), vec![c]);
    assert_eq!(release(&cfg, "a", &host).unwrap(), vec![a]);
    assert_eq!(host.calls(), (4, 1, 2, 1));
}

#[test]
fn a_held_network_lock_fails_a_join_within_the_bound() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = test_cfg(t.path(), 'h', 251);
    cfg.lock_timeout = Duration::from_millis(200);
    let held = lock::lock(&cfg.dir, NET_LOCK, LOCK_TIMEOUT).unwrap();
    let host = Fake::new(7);
    let e = reserve(&cfg, "x", &host).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "network lock {} not granted within 0.2s: process {} (",
            cfg.dir.join(NET_LOCK).display(),
            std::process::id()
        )),
        "{e}"
    );
    assert_eq!(host.calls(), (0, 0, 0, 0));
    assert_eq!(leases(&cfg).unwrap(), vec![]);
    drop(held);
    reserve(&cfg, "x", &host).unwrap();
}

#[test]
fn detach_of_a_container_without_network_does_nothing() {
    // No lease, no veth: no lock is taken and no privilege is needed (rootless `rm`).
    let t = tempfile::tempdir().unwrap();
    let cfg = test_cfg(t.path(), 'n', 251);
    detach(&cfg, &test_id()).unwrap();
    assert!(!cfg.dir.exists());
}

#[test]
fn bridge_connects_containers_and_cleans_up() {
    let what = "bridge_connects_containers_and_cleans_up";
    if !root(what)
        || !can(
            what,
            nat::find_tool("nft").is_some(),
            "nft is not installed",
        )
    {
        return;
    }
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let cfg = test_cfg(t.path(), 'a', 251);
    let mut clean = Cleanup::new(&cfg);
    let (pa, pb, pc) = (clean.spawn(false), clean.spawn(false), clean.spawn(false));
    let (ida, idb, idc) = (test_id(), test_id(), test_id());
    for id in [&ida, &idb, &idc] {
        clean.links.push(host_veth(id));
    }

    let a = attach(&cfg, &ida, pa as i32).unwrap();
    let b = attach(&cfg, &idb, pb as i32).unwrap();
    let gw = cfg.gateway();
    let net = cfg.subnet.addr.octets();
    assert_eq!(a.ip, Ipv4Addr::new(net[0], net[1], net[2], 2));
    assert_eq!(b.ip, Ipv4Addr::new(net[0], net[1], net[2], 3));
    assert_eq!((a.prefix, a.gateway), (24, gw));
    assert_eq!(a.host_veth, host_veth(&ida));
    assert_eq!(lease_of(&cfg, &ida), Some(a.ip));
    assert_eq!(lease_of(&cfg, &idb), Some(b.ip));

    // IPv6 is off on the bridge and the host's veth end (set before they came up), and on
    // eth0 inside: a router advertisement from a container changes nothing.
    let sysctl = |link: &str, key: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{link}/{key}"))
            .unwrap()
            .trim()
            .to_string()
    };
    for link in [&cfg.bridge, &a.host_veth, &b.host_veth] {
        for (key, want) in [
            ("accept_ra", "0"),
            ("autoconf", "0"),
            ("forwarding", "0"),
            ("disable_ipv6", "1"),
        ] {
            assert_eq!(sysctl(link, key), want, "{link} {key}");
        }
    }
    let eth0 = in_netns(pa, || {
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/eth0/disable_ipv6").unwrap()
    });
    assert_eq!(eth0.trim(), "1");
    // The firewall is recorded as this bridge's; the state is root's only.
    let index = Netlink::open()
        .unwrap()
        .link(&cfg.bridge)
        .unwrap()
        .unwrap()
        .index;
    assert_eq!(
        std::fs::read_to_string(cfg.dir.join(FIREWALL_FOR)).unwrap(),
        format!("{index}\n")
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&cfg.dir), 0o700);
    for f in [NET_LOCK, FIREWALL_LOCK, FIREWALL_FOR] {
        assert_eq!(mode(&cfg.dir.join(f)), 0o600, "{f}");
    }

    // Inside: eth0 with the address, up, and the default route.
    let pid = pa.to_string();
    let (ok, out) = sh(
        "nsenter",
        &[
            "-t", &pid, "-n", "ip", "-4", "-o", "addr", "show", "dev", "eth0",
        ],
    );
    assert!(ok && out.contains(&format!("inet {}/24", a.ip)), "{out}");
    let (_, out) = sh("nsenter", &["-t", &pid, "-n", "ip", "-o", "link", "show"]);
    assert!(out.contains("eth0@") && out.contains("state UP"), "{out}");
    let (_, out) = sh("nsenter", &["-t", &pid, "-n", "ip", "-4", "route"]);
    assert!(out.contains(&format!("default via {gw} dev eth0")), "{out}");
    // Outside: the veth on the bridge, the gateway address on the bridge.
    let (_, out) = sh("ip", &["-o", "link", "show", &a.host_veth]);
    assert!(
        out.contains(&format!("master {}", cfg.bridge)) && out.contains(",UP"),
        "{out}"
    );
    let (_, out) = sh("ip", &["-4", "-o", "addr", "show", "dev", &cfg.bridge]);
    assert!(out.contains(&format!("inet {gw}/24")), "{out}");

    // Container to container, without NAT in between.
    let listener = in_netns(pa, || TcpListener::bind("0.0.0.0:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut c = in_netns(pb, || {
        TcpStream::connect_timeout(&SocketAddr::new(a.ip.into(), port), Duration::from_secs(5))
    })
    .expect("b reaches a");
    c.write_all(b"ping").unwrap();
    let (mut s, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), IpAddr::V4(b.ip));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    // Container to the gateway (the host).
    let host = TcpListener::bind((gw, 0)).unwrap();
    let hp = host.local_addr().unwrap().port();
    in_netns(pa, || {
        TcpStream::connect_timeout(&SocketAddr::new(gw.into(), hp), Duration::from_secs(5))
    })
    .expect("a reaches the gateway");
    assert_eq!(host.accept().unwrap().1.ip(), IpAddr::V4(a.ip));

    // NAT for traffic that leaves by another interface.
    let (ok, out) = sh("nft", &["list", "table", "ip", &cfg.table]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "ip saddr {} oifname != \"{}\" masquerade",
            cfg.subnet, cfg.bridge
        )),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );

    // Another subnet while the bridge has this one: a clear error, nothing leased.
    let mut other = cfg.clone();
    other.subnet = format!("10.250.{}.0/24", std::process::id() % 250)
        .parse()
        .unwrap();
    let e = attach(&other, &idc, pc as i32).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "bridge {} has address {gw}/24, not {}/24: the subnet changed to {} while containers \
             use the bridge; stop them first, or set the subnet back",
            cfg.bridge,
            other.gateway(),
            other.subnet
        )
    );
    assert_eq!(lease_of(&cfg, &idc), None);
    assert!(!link_exists(&host_veth(&idc)));

    // Detach a: b keeps the bridge and the table. Twice is fine.
    detach(&cfg, &ida).unwrap();
    detach(&cfg, &ida).unwrap();
    assert!(!link_exists(&a.host_veth));
    assert!(link_exists(&cfg.bridge));
    assert!(table_exists(&format!("ip {}", cfg.table)));
    assert_eq!(lease_of(&cfg, &ida), None);

    // b dies first (stale state, as after SIGKILL): detach still cleans everything.
    let bp = clean.procs.iter_mut().find(|p| p.id() == pb).unwrap();
    bp.kill().unwrap();
    bp.wait().unwrap();
    detach(&cfg, &idb).unwrap();
    assert!(!link_exists(&b.host_veth));
    assert!(
        !link_exists(&cfg.bridge),
        "the last detach removes the bridge"
    );
    assert!(!table_exists(&format!("ip {}", cfg.table)), "and the table");
    assert!(!cfg.dir.join(FIREWALL_FOR).exists());
    assert_eq!(leases(&cfg).unwrap(), vec![]);
    let left: Vec<_> = std::fs::read_dir(lease::dir(&cfg.dir)).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_failed_attach_leaves_nothing() {
    let what = "a_failed_attach_leaves_nothing";
    if !root(what)
        || !can(
            what,
            nat::find_tool("nft").is_some(),
            "nft is not installed",
        )
    {
        return;
    }
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let cfg = test_cfg(t.path(), 'b', 252);
    let mut clean = Cleanup::new(&cfg);
    let p = clean.spawn(false);
    let id = test_id();
    clean.links.push(host_veth(&id));
    // The container already has an eth0: the veth cannot be made.
    let (ok, out) = sh(
        "nsenter",
        &[
            "-t",
            &p.to_string(),
            "-n",
            "ip",
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0p",
        ],
    );
    assert!(ok, "{out}");
    let e = attach(&cfg, &id, p as i32).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "create veth {} for process {p}: file exists",
            host_veth(&id)
        )),
        "{e}"
    );
    assert!(!link_exists(&host_veth(&id)));
    assert!(!link_exists(&cfg.bridge));
    assert!(!table_exists(&format!("ip {}", cfg.table)));
    assert_eq!(leases(&cfg).unwrap(), vec![]);

    // Our own namespace, or no process at all: refused before anything is made.
    let me = std::process::id() as i32;
    let e = attach(&cfg, &id, me).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "attach container {id} to {}: process {me} is in the host's network namespace",
            cfg.bridge
        )
    );
    // A subnet on top of one the host is on (here: the loopback's 127.0.0.0/8).
    let mut lo = cfg.clone();
    lo.subnet = "127.0.0.0/24".parse().unwrap();
    let e = attach(&lo, &id, p as i32).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "subnet 127.0.0.0/24 overlaps the host's address 127.0.0.1/8: choose another"
        ),
        "{e}"
    );
    assert_eq!(leases(&cfg).unwrap(), vec![]);
    let e = attach(&cfg, &id, i32::MAX).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("open /proc/{}/ns/net: no such file or directory", i32::MAX)
    );
    assert!(!link_exists(&cfg.bridge));
}

#[test]
fn a_drop_forward_policy_is_opened_and_closed_again() {
    let what = "a_drop_forward_policy_is_opened_and_closed_again";
    if !root(what)
        || !can(
            what,
            nat::find_tool("nft").is_some(),
            "nft is not installed",
        )
        || !can(
            what,
            nat::find_tool("iptables").is_some(),
            "iptables is not installed",
        )
    {
        return;
    }
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let cfg = test_cfg(t.path(), 'c', 253);
    let mut clean = Cleanup::new(&cfg);
    clean.watch_tables(&["ip filter"]);
    let (_, rules) = sh("iptables", &["-w", "-S", "FORWARD"]);
    if !rules.lines().any(|l| l == "-P FORWARD DROP") {
        clean.forward_policy = Some("ACCEPT".into());
        let (ok, out) = sh("iptables", &["-w", "-P", "FORWARD", "DROP"]);
        assert!(ok, "{out}");
    }
    let (pa, pb) = (clean.spawn(false), clean.spawn(false));
    let (ida, idb) = (test_id(), test_id());
    clean.links.extend([host_veth(&ida), host_veth(&idb)]);
    let a = attach(&cfg, &ida, pa as i32).unwrap();
    attach(&cfg, &idb, pb as i32).unwrap();
    let (_, rules) = sh("iptables", &["-w", "-S", "FORWARD"]);
    let ours: Vec<&str> = rules.lines().filter(|l| l.contains(&cfg.table)).collect();
    assert_eq!(ours.len(), 2, "added once, not once per container: {rules}");
    assert!(
        rules.contains(&format!(
            "-A FORWARD -i {} -m comment --comment {} -j ACCEPT",
            cfg.bridge, cfg.table
        )),
        "{rules}"
    );
    // With br_netfilter, bridged traffic meets the FORWARD chain too: the rules let it by.
    let listener = in_netns(pa, || TcpListener::bind("0.0.0.0:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    in_netns(pb, || {
        TcpStream::connect_timeout(&SocketAddr::new(a.ip.into(), port), Duration::from_secs(5))
    })
    .expect("b reaches a through a DROP forward policy");

    detach(&cfg, &ida).unwrap();
    detach(&cfg, &idb).unwrap();
    let (_, rules) = sh("iptables", &["-w", "-S", "FORWARD"]);
    assert!(!rules.contains(&cfg.table), "{rules}");
    assert!(!cfg.dir.join("iptables-rules").exists());
    assert!(!link_exists(&cfg.bridge));
}

#[test]
fn without_nft_iptables_masquerades() {
    let what = "without_nft_iptables_masquerades";
    if !root(what)
        || !can(
            what,
            nat::find_tool("iptables").is_some(),
            "iptables is not installed",
        )
    {
        return;
    }
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let cfg = test_cfg(t.path(), 'd', 254);
    std::fs::create_dir_all(&cfg.dir).unwrap();
    let mut clean = Cleanup::new(&cfg);
    clean.watch_tables(&["ip nat", "ip filter"]);
    let tools = nat::Tools {
        nft: None,
        iptables: nat::find_tool("iptables"),
    };
    let rule = format!(
        "-A POSTROUTING -s {} ! -o {} -m comment --comment {} -j MASQUERADE",
        cfg.subnet, cfg.bridge, cfg.table
    );
    nat::ensure(&cfg, &tools).unwrap();
    nat::ensure(&cfg, &tools).unwrap();
    let (_, rules) = sh("iptables", &["-w", "-t", "nat", "-S", "POSTROUTING"]);
    assert_eq!(rules.lines().filter(|l| *l == rule).count(), 1, "{rules}");
    nat::teardown(&cfg, &tools).unwrap();
    let (_, rules) = sh("iptables", &["-w", "-t", "nat", "-S", "POSTROUTING"]);
    assert!(!rules.contains(&cfg.table), "{rules}");
    assert!(!cfg.dir.join("iptables-rules").exists());
}

#[test]
fn firewall_errors_are_the_tools_first_line() {
    let what = "firewall_errors_are_the_tools_first_line";
    let Some(nft) = nat::find_tool("nft") else {
        can(what, false, "nft is not installed");
        return;
    };
    // nft explains a syntax error over three lines (message, input, caret).
    let e = nat::run(
        &nft,
        &["-c", "-f", "-"],
        Some("table ip t { chain c { bogus } }\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("nft: ") && !e.contains('\n'), "{e}");
    assert!(!e.starts_with("nft: Error:"), "{e}");
}

#[test]
fn slirp_forwards_ports_into_a_user_namespace() {
    let what = "slirp_forwards_ports_into_a_user_namespace";
    if !root(what)
        || !can(
            what,
            slirp_available(),
            "slirp4netns or /dev/net/tun is missing",
        )
    {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let cfg = test_cfg(t.path(), 's', 251);
    let mut clean = Cleanup::new(&cfg);
    let p = clean.spawn(true);
    std::fs::write(format!("/proc/{p}/uid_map"), "0 0 1").unwrap();
    std::fs::write(format!("/proc/{p}/gid_map"), "0 0 1").unwrap();
    let inside_tcp = in_netns(p, || TcpListener::bind("0.0.0.0:8080")).unwrap();
    let inside_udp = in_netns(p, || UdpSocket::bind("0.0.0.0:8081")).unwrap();
    let specs = [
        parse_publish("127.0.0.1::8080").unwrap(),
        parse_publish("127.0.0.1::8081/udp").unwrap(),
    ];
    let slirp = start_slirp(p as i32, &specs, t.path()).unwrap();
    let ports = slirp.ports().to_vec();
    assert!(ports.iter().all(|p| p.host_port != 0), "{ports:?}");

    let (ok, out) = sh(
        "nsenter",
        &[
            "-t",
            &p.to_string(),
            "-n",
            "ip",
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            "tap0",
        ],
    );
    assert!(
        ok && out.contains(&format!("inet {SLIRP_GUEST}/24")),
        "{out}"
    );

    let mut c = TcpStream::connect(ports[0].host_addr()).unwrap();
    c.write_all(b"over slirp").unwrap();
    let (mut s, _) = inside_tcp.accept().unwrap();
    let mut buf = [0u8; 10];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"over slirp");
    s.write_all(b"back").unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"back");

    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"dgram", ports[1].host_addr()).unwrap();
    inside_udp
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (n, _) = inside_udp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"dgram");

    // A port in use is the same one line as with the bridge's proxy, and starts nothing.
    let e = start_slirp(p as i32, &[ports[0]], t.path())
        .err()
        .unwrap()
        .to_string();
    assert_eq!(e, format!("publish {}: address already in use", ports[0]));

    let pid = slirp.pid();
    drop(slirp);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "slirp4netns is reaped"
    );
    assert!(!t.path().join("slirp.sock").exists());
}

#[test]
fn slirp_that_fails_says_why() {
    let what = "slirp_that_fails_says_why";
    if !root(what)
        || !can(
            what,
            slirp_available(),
            "slirp4netns or /dev/net/tun is missing",
        )
    {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let cfg = test_cfg(t.path(), 'z', 251);
    let mut clean = Cleanup::new(&cfg);
    let p = clean.spawn(false);
    // A tap0 that is not a tap device: slirp4netns cannot open it and gives up.
    let (ok, out) = sh(
        "nsenter",
        &[
            "-t",
            &p.to_string(),
            "-n",
            "ip",
            "link",
            "add",
            "tap0",
            "type",
            "veth",
            "peer",
            "name",
            "tap0p",
        ],
    );
    assert!(ok, "{out}");
    let e = start_slirp(p as i32, &[], t.path())
        .err()
        .map(|e| e.to_string());
    let e = e.expect("slirp4netns cannot configure a busy tap0");
    assert!(e.starts_with("slirp4netns: ") && !e.contains('\n'), "{e}");
}
