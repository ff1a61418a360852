//! Container networking: the bridge and its address leases, outbound NAT, the container's
//! /etc/hosts and /etc/resolv.conf, published ports, and slirp4netns for rootless runs. It
//! must not clone or exec the container, nor write files inside its root: callers do that
//! with what this module returns.
//!
//! # Use (what `mrun` and `mbuild` call, in order)
//!
//! ```text
//! NetConfig::for_store(root) -> Result<NetConfig>          subnet from $MINIBOX_SUBNET or ROOT/network/subnet
//! parse_publish("127.0.0.1:8080:80/tcp") -> Result<Publish> parse_add_host("db:10.0.0.5", gw) -> Result<(String, IpAddr)>
//!
//! --net bridge (root):
//!   attach(&cfg, id, pid) -> Result<Attachment>    after the clone (the netns exists), before the container
//!                                                 is released to exec; pid = the container's init;
//!                                                 fails after cfg.lock_timeout naming a lock's holder
//!   publish(&ports, att.ip) -> Result<Proxies>     in the process that waits for the container; drop it at exit
//!   detach(&cfg, id) -> Result<()>                 at exit, `rm -f` and prune; idempotent, fine for long-dead containers
//!   lease_of(&cfg, id) -> Option<Ipv4Addr>         leases(&cfg) -> Result<Vec<(Ipv4Addr, String)>>
//!
//! --net slirp (rootless):
//!   slirp_available() -> bool
//!   start_slirp(pid, &ports, run_dir) -> Result<Slirp>   drop it when the container exits
//!
//! Files for the container (mrun's monitor, and mbuild for each RUN step):
//!   Etc { network, hostname, ip, add_hosts, dns }.files(read_host_file) -> [(name, text); 3]
//!     hosts, hostname, resolv.conf, by these rules:
//!   hosts(hostname, Some(att.ip) | None, &extra) -> String
//!   resolv_conf(&host_resolv_conf, &dns, own_netns) -> String   (--net host: the host's file as is;
//!                                                               slirp: dns = [SLIRP_DNS] unless --dns)
//! ```
//!
//! # The bridge
//!
//! A Linux bridge (`minibox0`) holds the subnet's first address (10.77.0.1/16 by default) and
//! one veth per container: the host end `mb` + 11 characters of the id, the other end created
//! directly inside the container's network namespace as `eth0`, with the leased address and
//! a default route through the bridge. NAT is a table of our own (`ip minibox`). The bridge
//! and the table appear with the first lease and go with the last. The bridge, the veths
//! and eth0 have IPv6 off (see `ipv6`): a container's router advertisement must not
//! reconfigure the host or its neighbours.
//!
//! The bridge, the table and the addresses are host-wide, so their state is too: leases and
//! the locks live in [`STATE_DIR`] (on /run: cleared by a reboot, exactly when the bridge
//! goes; root's only, see `lock`), shared by every store. Per-store leases would hand the
//! same address to containers of two stores (the tests' temporary stores, say) and let one
//! tear the bridge down under the other. Only the subnet is read from the store.
//!
//! Two locks, so that no start waits on a slow process: `lock` covers the leases and the
//! bridge's netlink checks (microseconds); `firewall.lock` covers running nft/iptables, and
//! the file `firewall` names the bridge (by link index) whose forwarding and NAT are in
//! place. A start that finds that name right takes only the first lock; the first start on
//! a new bridge sets the firewall up under the second, and the last container out tears it
//! down there, unless somebody joined meanwhile. Each lock is waited for at most
//! `NetConfig::lock_timeout` (30 s; `$MINIBOX_NETWORK_LOCK_TIMEOUT`), then the error names
//! the process that holds it.

mod files;
mod ipv6;
mod lease;
mod lock;
mod nat;
mod netlink;
mod publish;
mod slirp;

pub use files::{hosts, parse_add_host, resolv_conf, Etc, FALLBACK_DNS};
pub use lock::{LOCK_TIMEOUT, TIMEOUT_ENV};
pub use publish::{parse_publish, publish, Proto, Proxies, Publish, UDP_IDLE};
pub use slirp::{
    slirp_available, slirp_problem, start_slirp, Slirp, SLIRP_DNS, SLIRP_GATEWAY, SLIRP_GUEST,
};

use crate::error::{Error, IoContext, Result};
use netlink::{Netlink, NlError};
use std::fmt;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub const DEFAULT_BRIDGE: &str = "minibox0";
pub const DEFAULT_TABLE: &str = "minibox";
/// Podman uses 10.88.0.0/16 and Docker 172.17.0.0/16; this one is ours.
pub const DEFAULT_SUBNET: Subnet = Subnet {
    addr: Ipv4Addr::new(10, 77, 0, 0),
    prefix: 16,
};
/// Host-wide network state, root's only (0700): `leases/<ip>`, `lock`, `firewall.lock`,
/// `firewall`, `iptables-rules`.
pub const STATE_DIR: &str = "/run/minibox/network";
/// The lock over leases and the bridge.
const NET_LOCK: &str = "lock";
/// The lock over running the firewall tools.
const FIREWALL_LOCK: &str = "firewall.lock";
/// The index of the bridge whose forwarding and NAT are in place.
const FIREWALL_FOR: &str = "firewall";
/// The container's end of its veth.
pub const CONTAINER_IF: &str = "eth0";

/// An IPv4 network, `10.77.0.0/16`: host bits zero, prefix 8 to 30 (room for the gateway
/// and at least one container).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    fn mask(self) -> u32 {
        u32::MAX << (32 - self.prefix as u32)
    }

    /// The bridge's address: the first in the subnet.
    pub fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// The two networks share addresses (one holds the other).
    pub fn overlaps(self, other: Subnet) -> bool {
        let wider = self.prefix.min(other.prefix);
        let mask = u32::MAX << (32 - wider as u32);
        u32::from(self.addr) & mask == u32::from(other.addr) & mask
    }

    /// The addresses containers may lease: after the gateway, before the broadcast address.
    pub fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.addr) + 2;
        let broadcast = u32::from(self.addr) | !self.mask();
        (first..broadcast).map(Ipv4Addr::from)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = Error;

    fn from_str(s: &str) -> Result<Subnet> {
        let s = s.trim();
        let bad = |why: &str| Error::invalid(format!("invalid subnet \"{s}\": {why}"));
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX, like 10.77.0.0/16"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| bad(&format!("\"{a}\" is not an IPv4 address")))?;
        let prefix: u8 = match p.parse() {
            Ok(n @ 8..=30) => n,
            _ => return Err(bad("the prefix length must be 8 to 30")),
        };
        let net = Subnet { addr, prefix };
        let base = Ipv4Addr::from(u32::from(addr) & net.mask());
        if base != addr {
            return Err(bad(&format!(
                "host bits are set (the network is {base}/{prefix})"
            )));
        }
        Ok(net)
    }
}

/// Every host-wide name, so that tests can use their own and never touch the real ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The bridge's name (at most 15 bytes, IFNAMSIZ).
    pub bridge: String,
    pub subnet: Subnet,
    /// The name of our nftables table (`ip` family), also the comment on iptables rules.
    pub table: String,
    /// Leases, the locks and the record of iptables rules (see [`STATE_DIR`]).
    pub dir: PathBuf,
    /// How long to wait for a lock of `dir` before failing: [`LOCK_TIMEOUT`], or
    /// `$MINIBOX_NETWORK_LOCK_TIMEOUT` with `for_store`.
    pub lock_timeout: std::time::Duration,
}

impl NetConfig {
    /// The configuration for containers of the store at `root`: the default names and
    /// [`STATE_DIR`], and the subnet from `$MINIBOX_SUBNET`, else from the file
    /// `ROOT/network/subnet` (one line, `10.77.0.0/16`), else 10.77.0.0/16. The lock
    /// timeout from `$MINIBOX_NETWORK_LOCK_TIMEOUT` (seconds), else [`LOCK_TIMEOUT`].
    pub fn for_store(root: &Path) -> Result<NetConfig> {
        let mut cfg = Self::from_sources(std::env::var("MINIBOX_SUBNET").ok(), root)?;
        cfg.lock_timeout = lock::timeout_from(std::env::var(TIMEOUT_ENV).ok().as_deref())?;
        Ok(cfg)
    }

    fn from_sources(env: Option<String>, root: &Path) -> Result<NetConfig> {
        let file = root.join("network").join("subnet");
        let subnet = match env.filter(|v| !v.trim().is_empty()) {
            Some(v) => v
                .parse()
                .map_err(|e| Error::invalid(format!("$MINIBOX_SUBNET: {e}")))?,
            None => match std::fs::read_to_string(&file) {
                Ok(text) => text
                    .parse()
                    .map_err(|e| Error::invalid(format!("{}: {e}", file.display())))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_SUBNET,
                Err(e) => return Err(e).ctx("read", &file),
            },
        };
        NetConfig::new(DEFAULT_BRIDGE, subnet, DEFAULT_TABLE, STATE_DIR)
    }

    pub fn new(
        bridge: impl Into<String>,
        subnet: Subnet,
        table: impl Into<String>,
        dir: impl Into<PathBuf>,
    ) -> Result<NetConfig> {
        let cfg = NetConfig {
            bridge: bridge.into(),
            subnet,
            table: table.into(),
            dir: dir.into(),
            lock_timeout: LOCK_TIMEOUT,
        };
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<()> {
        // Stricter than the kernel (which takes '"' or '$'): the name goes into nft scripts.
        let b = &self.bridge;
        let name_ok = b
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if b.is_empty() || b.len() > 15 || !name_ok {
            return Err(Error::invalid(format!(
                "invalid bridge name \"{b}\": 1 to 15 letters, digits, '_', '.' or '-'"
            )));
        }
        let t = &self.table;
        let ident = t.starts_with(|c: char| c.is_ascii_alphabetic())
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident || t.len() > 28 {
            return Err(Error::invalid(format!(
                "invalid table name \"{t}\": a letter, then letters, digits or '_' (at most 28)"
            )));
        }
        Ok(())
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.subnet.gateway()
    }
}

/// A container's place on the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub host_veth: String,
}

/// The host end of a container's veth: `mb` + the first 11 characters of its id (15 bytes,
/// IFNAMSIZ).
pub fn host_veth(id: &str) -> String {
    format!("mb{}", &id[..id.len().min(11)])
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return Err(Error::invalid(format!("invalid container id \"{id}\"")));
    }
    Ok(())
}

fn nl_err(what: impl fmt::Display) -> impl FnOnce(NlError) -> Error {
    move |e| Error::invalid(format!("{what}: {e}"))
}

fn netlink() -> Result<Netlink> {
    Netlink::open().map_err(|e| Error::Sys("open a netlink socket", e))
}

fn lock(cfg: &NetConfig, name: &str) -> Result<lock::Held> {
    lock::lock(&cfg.dir, name, cfg.lock_timeout)
}

/// Connect the container whose init is `pid` to the bridge: lease an address, make sure the
/// bridge and NAT exist, create the veth pair and configure `eth0` inside the container's
/// network namespace (address, up, default route; `lo` up too). Call it after the clone
/// (the namespace must exist) and before the container's command runs. On failure nothing
/// is left behind.
pub fn attach(cfg: &NetConfig, id: &str, pid: i32) -> Result<Attachment> {
    cfg.check()?;
    check_id(id)?;
    let ns_path = format!("/proc/{pid}/ns/net");
    let netns = File::open(&ns_path).ctx("open", &ns_path)?;
    let ours = std::fs::metadata("/proc/self/ns/net").ctx("stat", "/proc/self/ns/net")?;
    let theirs = netns.metadata().ctx("stat", &ns_path)?;
    if (ours.dev(), ours.ino()) == (theirs.dev(), theirs.ino()) {
        return Err(Error::invalid(format!(
            "attach container {id} to {}: process {pid} is in the host's network namespace",
            cfg.bridge
        )));
    }
    let ip = reserve(cfg, id, &RealHost(cfg))?;
    let att = Attachment {
        ip,
        prefix: cfg.subnet.prefix,
        gateway: cfg.gateway(),
        host_veth: host_veth(id),
    };
    match plug(cfg, &att, &netns, pid) {
        Ok(()) => Ok(att),
        Err(e) => {
            let _ = detach(cfg, id);
            Err(e)
        }
    }
}

/// What joining and leaving do to the host, split by cost. The bridge is a few netlink
/// requests, done under the network lock; the firewall is nft or iptables processes (5-20
/// ms each), done under a lock of its own that ordinary joins never take. A trait so that
/// the lease and lock logic is tested with a fake.
trait Host {
    /// The bridge with the gateway address, up; returns its link index.
    fn bridge_up(&self) -> Result<u32>;
    /// Remove the bridge (the last lease is gone).
    fn bridge_down(&self) -> Result<()>;
    /// Forwarding and NAT for the bridge.
    fn firewall_up(&self) -> Result<()>;
    /// Remove our firewall state.
    fn firewall_down(&self) -> Result<()>;
}

struct RealHost<'a>(&'a NetConfig);

impl Host for RealHost<'_> {
    fn bridge_up(&self) -> Result<u32> {
        ensure_bridge(self.0)
    }

    fn bridge_down(&self) -> Result<()> {
        let br = &self.0.bridge;
        let mut nl = netlink()?;
        // Only our kind: a device of that name that is not a bridge made `bridge_up` fail,
        // and it is not ours to delete.
        match nl
            .link(br)
            .map_err(nl_err(format!("look up bridge {br}")))?
        {
            Some(l) if l.kind.as_deref() == Some("bridge") => nl
                .del_link(br)
                .map(drop)
                .map_err(nl_err(format!("delete bridge {br}"))),
            _ => Ok(()),
        }
    }

    fn firewall_up(&self) -> Result<()> {
        // Again here, once per bridge: a bridge made by an older minibox had IPv6 on.
        ipv6::harden_host_link(&self.0.bridge)?;
        nat::enable_ip_forward()?;
        nat::ensure(self.0, &nat::Tools::find())
    }

    fn firewall_down(&self) -> Result<()> {
        nat::teardown(self.0, &nat::Tools::find())
    }
}

/// The bridge whose firewall is in place, from the file `firewall`; None when there is
/// none (or it cannot be read: then it is set up again, which is idempotent).
fn firewall_for(cfg: &NetConfig) -> Option<u32> {
    std::fs::read_to_string(cfg.dir.join(FIREWALL_FOR))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Lease an address to `id`, make sure the bridge is up (under the network lock), and the
/// firewall for it (under the firewall lock, only when it is not known to be in place).
/// On failure the lease is released again, with everything else if it was the last.
fn reserve(cfg: &NetConfig, id: &str, host: &dyn Host) -> Result<Ipv4Addr> {
    let (ip, bridge) = {
        let _lock = lock(cfg, NET_LOCK)?;
        let ip = lease::acquire(&cfg.dir, cfg.subnet, id)?;
        let bridge = host.bridge_up();
        // Read under the lock that keeps our lease: the firewall it names cannot be torn
        // down before we leave (the last one out decides under this lock).
        if bridge
            .as_ref()
            .is_ok_and(|index| firewall_for(cfg) == Some(*index))
        {
            return Ok(ip);
        }
        (ip, bridge)
    };
    match bridge.and_then(|index| firewall(cfg, index, host)) {
        Ok(()) => Ok(ip),
        Err(e) => {
            let _ = release(cfg, id, host);
            Err(e)
        }
    }
}

/// Set up forwarding and NAT for the bridge `index` unless another start did meanwhile.
fn firewall(cfg: &NetConfig, index: u32, host: &dyn Host) -> Result<()> {
    let _fw = lock(cfg, FIREWALL_LOCK)?;
    if firewall_for(cfg) == Some(index) {
        return Ok(());
    }
    host.firewall_up()?;
    lock::write_file(&cfg.dir.join(FIREWALL_FOR), &format!("{index}\n"))
}

/// Release `id`'s leases; when none is left, remove the bridge (under the network lock)
/// and then the firewall (under the firewall lock), unless somebody joined in between.
/// Tries everything; returns the first failure.
fn release(cfg: &NetConfig, id: &str, host: &dyn Host) -> Result<Vec<Ipv4Addr>> {
    let (gone, bridge) = {
        let _lock = lock(cfg, NET_LOCK)?;
        let gone = lease::release(&cfg.dir, id)?;
        if !lease::all(&cfg.dir)?.is_empty() {
            return Ok(gone);
        }
        (gone, host.bridge_down())
    };
    let firewall = (|| {
        let _fw = lock(cfg, FIREWALL_LOCK)?;
        {
            let _lock = lock(cfg, NET_LOCK)?;
            if !lease::all(&cfg.dir)?.is_empty() {
                return Ok(());
            }
            // Before the teardown starts: a start from now on sets the firewall up again
            // (after this teardown, which holds the firewall lock).
            let p = cfg.dir.join(FIREWALL_FOR);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx("remove", &p),
            }
        }
        host.firewall_down()
    })();
    bridge.and(firewall)?;
    Ok(gone)
}

/// The bridge with the gateway address, up; returns its link index. Run under the network
/// lock at every attach: netlink requests only. A bridge it creates gets IPv6 off before it
/// comes up, so no router advertisement is ever processed on it.
fn ensure_bridge(cfg: &NetConfig) -> Result<u32> {
    let br = &cfg.bridge;
    let (gw, prefix) = (cfg.gateway(), cfg.subnet.prefix);
    let mut nl = netlink()?;
    let link = match nl
        .link(br)
        .map_err(nl_err(format!("look up bridge {br}")))?
    {
        Some(l) => l,
        None => {
            // The bridge's route would hide part of a network the host is on.
            let host = nl
                .all_addrs4()
                .map_err(nl_err("list the host's addresses"))?;
            for (_, a, p) in host {
                let theirs = Subnet {
                    addr: Ipv4Addr::from(
                        u32::from(a) & (u32::MAX.checked_shl(32 - p as u32).unwrap_or(0)),
                    ),
                    prefix: p,
                };
                if p > 0 && cfg.subnet.overlaps(theirs) {
                    return Err(Error::invalid(format!(
                        "subnet {} overlaps the host's address {a}/{p}: choose another one \
                         with $MINIBOX_SUBNET or the store's network/subnet file",
                        cfg.subnet
                    )));
                }
            }
            nl.add_bridge(br, random_mac())
                .map_err(nl_err(format!("create bridge {br}")))?;
            nl.link(br)
                .map_err(nl_err(format!("look up bridge {br}")))?
                .ok_or_else(|| Error::invalid(format!("create bridge {br}: it vanished")))?
        }
    };
    if link.kind.as_deref() != Some("bridge") {
        return Err(Error::invalid(format!(
            "{br} exists and is not a bridge ({})",
            link.kind.as_deref().unwrap_or("a plain device")
        )));
    }
    let addrs = nl
        .addrs4(link.index)
        .map_err(nl_err(format!("list the addresses of bridge {br}")))?;
    if !addrs.contains(&(gw, prefix)) {
        if let Some((a, p)) = addrs.first() {
            return Err(Error::invalid(format!(
                "bridge {br} has address {a}/{p}, not {gw}/{prefix}: the subnet changed to {} \
                 while containers use the bridge; stop them first, or set the subnet back",
                cfg.subnet
            )));
        }
        nl.add_addr4(link.index, gw, prefix)
            .map_err(nl_err(format!("add address {gw}/{prefix} to bridge {br}")))?;
    }
    if !link.up {
        ipv6::harden_host_link(br)?;
        nl.set_up(link.index)
            .map_err(nl_err(format!("bring up bridge {br}")))?;
    }
    Ok(link.index)
}

/// eth0's MAC address: Docker's 02:42 and the four bytes of the IPv4 address. An address
/// that passes to a new container keeps its MAC, so the host's and other containers'
/// neighbour caches stay right (a fresh random MAC would leave them pointing at the old
/// container's for seconds: connections time out until ARP notices).
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// The veth pair, and eth0's configuration inside the container's namespace. Both ends get
/// IPv6 off before they come up (see `ipv6`).
fn plug(cfg: &NetConfig, att: &Attachment, netns: &File, pid: i32) -> Result<()> {
    let (br, veth) = (&cfg.bridge, &att.host_veth);
    let mut nl = netlink()?;
    let bridge = nl
        .link(br)
        .map_err(nl_err(format!("look up bridge {br}")))?
        .ok_or_else(|| Error::invalid(format!("bridge {br} vanished")))?;
    nl.add_veth(veth, bridge.index, CONTAINER_IF, mac_of(att.ip), netns)
        .map_err(nl_err(format!("create veth {veth} for process {pid}")))?;
    let host = nl
        .link(veth)
        .map_err(nl_err(format!("look up veth {veth}")))?
        .ok_or_else(|| Error::invalid(format!("veth {veth} vanished")))?;
    ipv6::harden_host_link(veth)?;
    nl.set_up(host.index)
        .map_err(nl_err(format!("bring up veth {veth}")))?;

    let inside = |what: &str| format!("{what} in the network namespace of process {pid}");
    let (hardened, nl) = netlink::in_netns(netns, || {
        (ipv6::harden_container_link(CONTAINER_IF), Netlink::open())
    })
    .map_err(|e| {
        Error::invalid(format!(
            "{}: {}",
            inside("enter"),
            layers::error::io_message(&e)
        ))
    })?;
    hardened.map_err(|e| Error::invalid(inside(&e.to_string())))?;
    let mut nl = nl.map_err(|e| {
        Error::invalid(format!(
            "{}: {}",
            inside("open a netlink socket"),
            layers::error::io_message(&e)
        ))
    })?;
    let eth = nl
        .link(CONTAINER_IF)
        .map_err(nl_err(inside("look up eth0")))?
        .ok_or_else(|| Error::invalid(inside("eth0 vanished")))?;
    nl.add_addr4(eth.index, att.ip, att.prefix)
        .map_err(nl_err(inside(&format!(
            "add address {}/{} to eth0",
            att.ip, att.prefix
        ))))?;
    nl.set_up(eth.index)
        .map_err(nl_err(inside("bring up eth0")))?;
    if let Ok(Some(lo)) = nl.link("lo") {
        nl.set_up(lo.index).map_err(nl_err(inside("bring up lo")))?;
    }
    nl.add_default_route4(eth.index, att.gateway)
        .map_err(nl_err(inside(&format!(
            "add the default route via {}",
            att.gateway
        ))))?;
    Ok(())
}

/// Disconnect container `id`: delete its host veth if it is still there, release its
/// leases, and remove the bridge and the NAT table when no lease is left. Idempotent, and
/// fine for a container that died long ago (after SIGKILL its veth went with its namespace;
/// after a reboot the bridge and /run are gone too). A container that never had a lease
/// costs one netlink lookup and no privilege.
pub fn detach(cfg: &NetConfig, id: &str) -> Result<()> {
    check_id(id)?;
    let veth = host_veth(id);
    let mut nl = netlink()?;
    if nl
        .link(&veth)
        .map_err(nl_err(format!("look up veth {veth}")))?
        .is_some()
    {
        nl.del_link(&veth)
            .map_err(nl_err(format!("delete veth {veth}")))?;
    }
    if !lease::all(&cfg.dir)?.iter().any(|(_, holder)| holder == id) {
        return Ok(());
    }
    release(cfg, id, &RealHost(cfg)).map(drop)
}

/// The address leased to `id`, if any.
pub fn lease_of(cfg: &NetConfig, id: &str) -> Option<Ipv4Addr> {
    lease::all(&cfg.dir)
        .ok()?
        .into_iter()
        .find_map(|(ip, holder)| (holder == id).then_some(ip))
}

/// Every lease, (address, container id), by address: for prune to find leases of
/// containers that no longer exist.
pub fn leases(cfg: &NetConfig) -> Result<Vec<(Ipv4Addr, String)>> {
    lease::all(&cfg.dir)
}

/// A random, locally administered unicast MAC address.
fn random_mac() -> [u8; 6] {
    let mut b = [0u8; 6];
    // SAFETY: writing into our own buffer; a short read leaves zeros, still valid.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    b[0] = (b[0] & 0xfe) | 0x02;
    b
}

#[cfg(test)]
mod tests;
