//! IPv6 off on the bridge, its host-side veths and the containers' eth0, written into
//! /proc/sys/net/ipv6/conf/<link>/ before each link comes up. minibox's networks are IPv4
//! only, and a container keeps CAP_NET_RAW (as in Docker), so it can put any frame on the
//! bridge. A router advertisement from it would otherwise give the host (accept_ra=1 is the
//! kernel's default) an address, a route and a default route through the container, and do
//! the same to every other container: CVE-2020-13401, which Docker fixed with accept_ra=0 on
//! its bridges; Docker also disables IPv6 on a container's interface when its network has
//! none (moby's osl setIPv6), which is what stops the other containers. It must not touch
//! IPv4 settings, addresses or routes.

use crate::error::{IoContext, Result};
use std::io::ErrorKind;

/// The settings of a host-side link (the bridge, a container's veth): no router
/// advertisements, no address autoconfiguration, not a router, and no IPv6 at all, so the
/// host drops every IPv6 packet that arrives on it (ip-sysctl.rst: disable_ipv6) whatever
/// the host-wide `all.forwarding` says.
const HOST_LINK: [(&str, &str); 4] = [
    ("accept_ra", "0"),
    ("autoconf", "0"),
    ("forwarding", "0"),
    ("disable_ipv6", "1"),
];

/// The settings of a container's eth0: no IPv6 (as Docker's IPv4-only networks), so an
/// advertisement from a neighbour changes nothing; its lo keeps ::1.
const CONTAINER_LINK: [(&str, &str); 1] = [("disable_ipv6", "1")];

/// Keep IPv6 off host-side link `name` (before it is brought up).
pub fn harden_host_link(name: &str) -> Result<()> {
    write(name, &HOST_LINK)
}

/// Keep IPv6 off the container's link `name`; run in its network namespace (/proc/sys/net
/// is the opening thread's namespace's).
pub fn harden_container_link(name: &str) -> Result<()> {
    write(name, &CONTAINER_LINK)
}

fn write(link: &str, settings: &[(&str, &str)]) -> Result<()> {
    let dir = format!("/proc/sys/net/ipv6/conf/{link}");
    for (key, value) in settings {
        let p = format!("{dir}/{key}");
        match std::fs::write(&p, value) {
            Ok(()) => {}
            // A kernel without IPv6 (ipv6.disable=1) has nothing to protect.
            Err(e) if e.kind() == ErrorKind::NotFound && !std::path::Path::new(&dir).exists() => {
                return Ok(())
            }
            Err(e) => return Err(e).ctx("write", &p),
        }
    }
    Ok(())
}
