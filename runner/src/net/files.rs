//! The text of a container's /etc/hosts, /etc/hostname and /etc/resolv.conf, Docker's way,
//! and the `--add-host` syntax. Pure functions of their inputs: no file is read or written
//! here (the host's files come through the caller).

use crate::error::{Error, Result};
use crate::spec::Network;
use std::net::{IpAddr, Ipv4Addr};

/// What goes into a container's /etc/hosts, /etc/hostname and /etc/resolv.conf, which are
/// bind-mounted from its directory (by mrun's monitor, and for a build's RUN steps).
pub struct Etc<'a> {
    pub network: Network,
    pub hostname: &'a str,
    /// The container's own address, once known.
    pub ip: Option<Ipv4Addr>,
    /// `--add-host`
    pub add_hosts: &'a [(String, IpAddr)],
    /// `--dns`
    pub dns: &'a [IpAddr],
}

impl Etc<'_> {
    /// The files as (name, text). `read` gives the host's file of that path (its text, or
    /// empty); it is asked only for what is needed. With the host's network the host's
    /// files are taken as they are; slirp4netns answers DNS itself.
    pub fn files(&self, read: impl Fn(&str) -> String) -> [(&'static str, String); 3] {
        let host = self.network == Network::Host;
        let hosts = if host {
            read("/etc/hosts")
        } else {
            hosts(self.hostname, self.ip, self.add_hosts)
        };
        let slirp_dns = [IpAddr::V4(super::SLIRP_DNS)];
        let dns: &[IpAddr] = if self.dns.is_empty() && self.network == Network::Slirp {
            &slirp_dns
        } else {
            self.dns
        };
        let resolv = if host && dns.is_empty() {
            read("/etc/resolv.conf")
        } else {
            resolv_conf(&read("/etc/resolv.conf"), dns, self.network.own_namespace())
        };
        [
            ("hosts", hosts),
            ("hostname", format!("{}\n", self.hostname)),
            ("resolv.conf", resolv),
        ]
    }
}

/// Docker's fallback when none of the host's nameservers is reachable from the container.
pub const FALLBACK_DNS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
    IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
];

/// /etc/hosts for a container: Docker's localhost and IPv6 lines, the `--add-host` entries,
/// then the container's own address and hostname. Without an address (no network of its
/// own) the hostname goes on 127.0.1.1, Debian's convention, so that it still resolves.
pub fn hosts(hostname: &str, ip: Option<Ipv4Addr>, extra: &[(String, IpAddr)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for (name, addr) in extra {
        s.push_str(&format!("{addr}\t{name}\n"));
    }
    let own = ip.unwrap_or(Ipv4Addr::new(127, 0, 1, 1));
    s.push_str(&format!("{own}\t{hostname}\n"));
    s
}

/// `--add-host NAME:IP` (or `NAME=IP`; IPv6 allowed, bracketed or not). `host-gateway`
/// stands for `host_gateway`, the address the host has on the container's network; it is
/// an error when there is none (`None`: no bridge).
pub fn parse_add_host(s: &str, host_gateway: Option<IpAddr>) -> Result<(String, IpAddr)> {
    let bad = |why: &str| Error::invalid(format!("invalid --add-host \"{s}\": {why}"));
    // A name never has ':' or '=', so the first one ends it (the rest may be IPv6).
    let (name, addr) = s
        .split_once(['=', ':'])
        .ok_or_else(|| bad("expected NAME:IP"))?;
    if name.is_empty() {
        return Err(bad("empty host name"));
    }
    if name.chars().any(|c| c.is_whitespace() || c == '#') {
        return Err(bad("a host name has no spaces or '#'"));
    }
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    if addr == "host-gateway" {
        let gw = host_gateway.ok_or_else(|| bad("host-gateway needs a bridge network"))?;
        return Ok((name.to_string(), gw));
    }
    let ip = addr
        .parse::<IpAddr>()
        .map_err(|_| bad(&format!("\"{addr}\" is not an IP address")))?;
    Ok((name.to_string(), ip))
}

/// /etc/resolv.conf for a container with a network namespace of its own, from the host's
/// (Docker's rules): the host's `nameserver`, `search`, `domain` and `options` lines are
/// kept; with `own_netns` the nameservers the container cannot reach are dropped — loopback
/// ones (127.0.0.0/8, ::1: a local resolver such as systemd-resolved's 127.0.0.53 is the
/// host's, not the container's) and IPv6 ones (the bridge is IPv4 only), as Docker does
/// without IPv6 — and if none remains, 8.8.8.8 and 8.8.4.4. `dns` (`--dns`) replaces the
/// nameservers. With `--net host` use the host's file unchanged instead.
pub fn resolv_conf(host_resolv: &str, dns: &[IpAddr], own_netns: bool) -> String {
    let mut servers = Vec::new();
    let mut rest = Vec::new();
    for line in host_resolv.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                // A zone (fe80::1%eth0) names a host interface: not the container's.
                let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
                    continue;
                };
                if own_netns && (ip.is_loopback() || ip.is_ipv6()) {
                    continue;
                }
                servers.push(ip);
            }
            Some("search" | "domain" | "options") => {
                rest.push(line.split_whitespace().collect::<Vec<_>>().join(" "))
            }
            _ => {}
        }
    }
    if !dns.is_empty() {
        servers = dns.to_vec();
    } else if servers.is_empty() {
        servers = FALLBACK_DNS.to_vec();
    }
    let mut s = String::new();
    for ip in servers {
        s.push_str(&format!("nameserver {ip}\n"));
    }
    for l in rest {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_HEAD: &str = "127.0.0.1\tlocalhost\n\
        ::1\tlocalhost ip6-localhost ip6-loopback\n\
        fe00::0\tip6-localnet\n\
        ff00::0\tip6-mcastprefix\n\
        ff02::1\tip6-allnodes\n\
        ff02::2\tip6-allrouters\n";

    #[test]
    fn hosts_follows_docker() {
        let extra = vec![
            ("db".to_string(), "10.1.2.3".parse().unwrap()),
            ("v6".to_string(), "2001:db8::1".parse().unwrap()),
        ];
        let h = hosts("web", Some(Ipv4Addr::new(10, 77, 0, 2)), &extra);
        assert_eq!(
            h,
            format!("{DOCKER_HEAD}10.1.2.3\tdb\n2001:db8::1\tv6\n10.77.0.2\tweb\n")
        );
        assert_eq!(
            hosts("box", None, &[]),
            format!("{DOCKER_HEAD}127.0.1.1\tbox\n")
        );
    }

    #[test]
    fn etc_files_follow_the_network() {
        let host_file = |p: &str| format!("host's {p}\n");
        let extra = vec![("db".to_string(), "10.1.2.3".parse().unwrap())];
        let etc = |network, ip, dns: &'static [IpAddr]| {
            Etc {
                network,
                hostname: "box",
                ip,
                add_hosts: &extra,
                dns,
            }
            .files(host_file)
        };
        let ip = Some(Ipv4Addr::new(10, 77, 0, 2));
        let [(h, hosts), (n, name), (r, resolv)] = etc(Network::Bridge, ip, &[]);
        assert_eq!((h, n, r), ("hosts", "hostname", "resolv.conf"));
        assert_eq!(
            hosts,
            format!("{DOCKER_HEAD}10.1.2.3\tdb\n10.77.0.2\tbox\n")
        );
        assert_eq!(name, "box\n");
        // "host's /etc/resolv.conf" has no nameserver line: the fallback.
        assert_eq!(resolv, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let [(_, hosts), _, (_, resolv)] = etc(Network::Host, None, &[]);
        assert_eq!(hosts, "host's /etc/hosts\n");
        assert_eq!(resolv, "host's /etc/resolv.conf\n");
        let [(_, hosts), _, (_, resolv)] = etc(Network::None, None, &[]);
        assert!(hosts.ends_with("127.0.1.1\tbox\n"), "{hosts}");
        assert_eq!(resolv, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let [_, _, (_, resolv)] = etc(Network::Slirp, None, &[]);
        assert_eq!(resolv, "nameserver 10.0.2.3\n");
        const NINES: [IpAddr; 1] = [IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9))];
        let [_, _, (_, resolv)] = etc(Network::Host, None, &NINES);
        assert_eq!(resolv, "nameserver 9.9.9.9\n");
    }

    #[test]
    fn add_host_forms() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            parse_add_host("db:10.0.0.5", None).unwrap(),
            ("db".into(), ip("10.0.0.5"))
        );
        assert_eq!(
            parse_add_host("db=10.0.0.5", None).unwrap(),
            ("db".into(), ip("10.0.0.5"))
        );
        assert_eq!(
            parse_add_host("v6:2001:db8::1", None).unwrap(),
            ("v6".into(), ip("2001:db8::1"))
        );
        assert_eq!(
            parse_add_host("v6=[::1]", None).unwrap(),
            ("v6".into(), ip("::1"))
        );
        assert_eq!(
            parse_add_host("h:host-gateway", Some(ip("10.77.0.1"))).unwrap(),
            ("h".into(), ip("10.77.0.1"))
        );
        let err = |s: &str| parse_add_host(s, None).unwrap_err().to_string();
        assert_eq!(
            err("h:host-gateway"),
            "invalid --add-host \"h:host-gateway\": host-gateway needs a bridge network"
        );
        assert_eq!(err("db"), "invalid --add-host \"db\": expected NAME:IP");
        assert_eq!(
            err(":1.2.3.4"),
            "invalid --add-host \":1.2.3.4\": empty host name"
        );
        assert_eq!(
            err("db:nope"),
            "invalid --add-host \"db:nope\": \"nope\" is not an IP address"
        );
    }

    #[test]
    fn resolv_conf_drops_what_a_netns_cannot_reach() {
        let host = "# generated by resolvconf\n\
                    nameserver 127.0.0.53\n\
                    nameserver 192.168.1.1\n\
                    nameserver ::1\n\
                    nameserver 2001:db8::53\n\
                    search  example.com corp\n\
                    options edns0 trust-ad\n\
                    sortlist 130.155.160.0\n";
        assert_eq!(
            resolv_conf(host, &[], true),
            "nameserver 192.168.1.1\nsearch example.com corp\noptions edns0 trust-ad\n"
        );
        // Without a namespace of its own every server is reachable.
        assert!(resolv_conf(host, &[], false).starts_with(
            "nameserver 127.0.0.53\nnameserver 192.168.1.1\nnameserver ::1\nnameserver 2001:db8::53\n"
        ));
    }

    #[test]
    fn resolv_conf_falls_back_and_dns_replaces() {
        let local = "nameserver 127.0.0.53\noptions edns0\n";
        assert_eq!(
            resolv_conf(local, &[], true),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf("", &[], true),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let dns: Vec<IpAddr> = vec!["1.1.1.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(
            resolv_conf("nameserver 192.168.1.1\nsearch lan\n", &dns, true),
            "nameserver 1.1.1.1\nnameserver ::1\nsearch lan\n",
            "--dns is taken as given, even loopback"
        );
    }
}
