//! Address leases: one file per address in use, `<network dir>/leases/<ip>` (0600, in a
//! 0700 directory), holding the container id. A lease appears whole or not at all (written to a temporary name, then
//! link(2)ed, which fails when the address is taken), and changes only under the network
//! lock. It must not touch links or firewalls.

use super::Subnet;
use crate::error::{IoContext, Result};
use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const TMP_PREFIX: &str = ".tmp-";

pub fn dir(network: &Path) -> PathBuf {
    network.join("leases")
}

/// Every lease: (address, container id), sorted by address. A missing directory is none.
pub fn all(network: &Path) -> Result<Vec<(Ipv4Addr, String)>> {
    let d = dir(network);
    let entries = match fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).ctx("read", &d),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.ctx("read", &d)?;
        let Some(ip) = e.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A lease released between read_dir and here is simply gone.
        match fs::read_to_string(e.path()) {
            Ok(id) => out.push((ip, id.trim().to_string())),
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(err).ctx("read", e.path()),
        }
    }
    out.sort();
    Ok(out)
}

/// Lease the lowest free host address of `subnet` (after the gateway) to `id`, or return
/// the one `id` holds already. The caller holds the network lock; link(2) refusing an existing name guards against anyone who
/// does not.
pub fn acquire(network: &Path, subnet: Subnet, id: &str) -> Result<Ipv4Addr> {
    let d = dir(network);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)
        .ctx("create", &d)?;
    // Under the lock, a temporary file is the leftover of a writer that died.
    for e in fs::read_dir(&d).ctx("read", &d)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let _ = fs::remove_file(e.path());
        }
    }
    let leases = all(network)?;
    // A container started again after a crash that skipped its detach keeps its address;
    // one from another subnet (the subnet was changed since) is dropped.
    for (ip, holder) in &leases {
        if holder == id {
            if subnet.contains(*ip) && *ip != subnet.gateway() {
                return Ok(*ip);
            }
            let _ = fs::remove_file(d.join(ip.to_string()));
        }
    }
    let taken: HashSet<Ipv4Addr> = leases.into_iter().map(|(ip, _)| ip).collect();
    let tmp = d.join(format!("{TMP_PREFIX}{}", std::process::id()));
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{id}\n").as_bytes()))
        .ctx("write", &tmp)?;
    let result = (|| {
        for ip in subnet.hosts().filter(|ip| !taken.contains(ip)) {
            let p = d.join(ip.to_string());
            match fs::hard_link(&tmp, &p) {
                Ok(()) => return Ok(ip),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).ctx("create lease", &p),
            }
        }
        Err(crate::Error::invalid(format!(
            "no free address left in {subnet} ({} in use)",
            taken.iter().filter(|ip| subnet.contains(**ip)).count()
        )))
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// Remove the leases held by `id`; returns their addresses.
pub fn release(network: &Path, id: &str) -> Result<Vec<Ipv4Addr>> {
    let mut gone = Vec::new();
    for (ip, holder) in all(network)? {
        if holder == id {
            let p = dir(network).join(ip.to_string());
            match fs::remove_file(&p) {
                Ok(()) => gone.push(ip),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx("remove lease", &p),
            }
        }
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease_holders(network: &Path) -> Vec<String> {
        all(network)
            .unwrap()
            .into_iter()
            .map(|(_, id)| id)
            .collect()
    }

    #[test]
    fn leases_are_lowest_free_and_released_by_id() {
        let t = tempfile::tempdir().unwrap();
        let net: Subnet = "10.9.0.0/29".parse().unwrap();
        let a = acquire(t.path(), net, "a").unwrap();
        let b = acquire(t.path(), net, "b").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2), "after the gateway .1");
        assert_eq!(b, Ipv4Addr::new(10, 9, 0, 3));
        use std::os::unix::fs::MetadataExt;
        let mode = |p: PathBuf| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(dir(t.path())), 0o700);
        assert_eq!(mode(dir(t.path()).join(a.to_string())), 0o600);
        assert_eq!(
            acquire(t.path(), net, "a").unwrap(),
            a,
            "one lease per container"
        );
        let other: Subnet = "10.8.0.0/29".parse().unwrap();
        let moved = acquire(t.path(), other, "a").unwrap();
        assert_eq!(
            moved,
            Ipv4Addr::new(10, 8, 0, 2),
            "a lease of an old subnet is dropped"
        );
        assert_eq!(release(t.path(), "a").unwrap(), vec![moved]);
        assert_eq!(lease_holders(t.path()), vec!["b"]);
        let a = Ipv4Addr::new(10, 9, 0, 2);
        assert_eq!(
            acquire(t.path(), net, "c").unwrap(),
            a,
            "a freed address is reused"
        );
        // .2 .. .6: five hosts in a /29; b and c hold two.
        for id in ["d", "e", "f"] {
            acquire(t.path(), net, id).unwrap();
        }
        let e = acquire(t.path(), net, "g").unwrap_err().to_string();
        assert_eq!(e, "no free address left in 10.9.0.0/29 (5 in use)");
        assert_eq!(
            all(t.path()).unwrap()[0],
            (Ipv4Addr::new(10, 9, 0, 2), "c".to_string())
        );
        assert!(release(t.path(), "nobody").unwrap().is_empty());
        let names: Vec<_> = fs::read_dir(dir(t.path())).unwrap().collect();
        assert_eq!(names.len(), 5, "no temporary file is left");
    }

    #[test]
    fn a_missing_directory_has_no_leases() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(all(&t.path().join("nope")).unwrap(), vec![]);
        assert!(release(&t.path().join("nope"), "x").unwrap().is_empty());
    }
}
