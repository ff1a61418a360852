//! The cgroup v1 manager (one hierarchy per controller or group of co-mounted controllers;
//! the kernel's cgroup-v1/cgroups.rst) and one function per controller — memory, cpu,
//! pids, blkio, cpuset, devices — each taking that controller's directory of the
//! container's cgroup, so the tests run them against a fake cgroupfs in a temp dir.
//!
//! It must not decide placement beyond the rules in the module header (`mod.rs`), and never
//! touches v2 files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{
    cpu_quota_usec, ensure_dir, keyed, kill_all, make_fresh, read, remove_tree, uid, write,
    write_lines, DeviceRate, DeviceRule, Error, Limits, Result, V1Mount, CPU_PERIOD_USEC,
    DESTROY_BUDGET,
};

/// `memory.limit_in_bytes` at or above this reads as no limit: the kernel shows "unlimited"
/// as its page-counter maximum (LONG_MAX rounded down to a page), which depends on page size.
const UNLIMITED: u64 = 1 << 62;

#[derive(Debug, Default)]
pub(super) struct Manager {
    /// One per hierarchy, in the order of `plan`; only directories we made.
    dirs: Vec<Dir>,
}

#[derive(Debug)]
struct Dir {
    path: PathBuf,
    /// The controllers mounted in this hierarchy (`cpu` and `cpuacct` often share one).
    controllers: Vec<String>,
}

/// Where container `id`'s cgroup goes: `<own>/minibox/<id>` in every hierarchy, each with
/// the controllers it holds (co-mounted ones share a directory), in controller-name order.
pub(super) fn plan(
    hierarchies: &BTreeMap<String, V1Mount>,
    id: &str,
) -> Vec<(PathBuf, Vec<String>)> {
    let mut planned: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for (c, h) in hierarchies {
        let path = h.mount.join(&h.own).join("minibox").join(id);
        match planned.iter_mut().find(|(p, _)| *p == path) {
            Some((_, cs)) => cs.push(c.clone()),
            None => planned.push((path, vec![c.clone()])),
        }
    }
    planned
}

impl Manager {
    pub(super) fn create(
        hierarchies: &BTreeMap<String, V1Mount>,
        id: &str,
        limits: &Limits,
    ) -> Result<Manager> {
        for (asked, c) in [
            (limits.memory.is_some(), "memory"),
            (limits.cpus.is_some(), "cpu"),
            (limits.pids.is_some(), "pids"),
            (limits.has_rates(), "blkio"),
            (limits.restricts_devices(), "devices"),
        ] {
            if asked && !hierarchies.contains_key(c) {
                return Err(Error::Unavailable(format!(
                    "the {c} controller is not mounted (cgroup v1)"
                )));
            }
        }
        let mut m = Manager::default();
        if let Err(e) = m.make(plan(hierarchies, id), limits) {
            let _ = m.destroy();
            return Err(e);
        }
        Ok(m)
    }

    /// The directories of a cgroup made by another process; only joining and destroying
    /// need no controller names.
    pub(super) fn reopen(dirs: Vec<PathBuf>) -> Manager {
        Manager {
            dirs: dirs
                .into_iter()
                .map(|path| Dir {
                    path,
                    controllers: vec![],
                })
                .collect(),
        }
    }

    fn make(&mut self, planned: Vec<(PathBuf, Vec<String>)>, limits: &Limits) -> Result<()> {
        let unwritable = |e: Error| {
            if e.is_permission() {
                Error::Unavailable(format!(
                    "cgroup v1 hierarchies are not writable by uid {}",
                    uid()
                ))
            } else {
                e
            }
        };
        for (path, controllers) in planned {
            let is_cpuset = controllers.iter().any(|c| c == "cpuset");
            if let Some(parent) = path.parent() {
                ensure_dir(parent).map_err(unwritable)?;
                if is_cpuset {
                    cpuset(parent).map_err(unwritable)?;
                }
            }
            // Pushed only once made: a failure must never destroy a cgroup we did not make
            // (an in-use leftover is refused, not killed).
            make_fresh(&path).map_err(unwritable)?;
            self.dirs.push(Dir {
                path: path.clone(),
                controllers,
            });
            if is_cpuset {
                cpuset(&path).map_err(unwritable)?;
            }
        }
        if let Some(bytes) = limits.memory {
            memory(self.need("memory")?, bytes)?;
        }
        if let Some(cpus) = limits.cpus {
            cpu(self.need("cpu")?, cpus)?;
        }
        if let Some(n) = limits.pids {
            pids(self.need("pids")?, n)?;
        }
        if limits.has_rates() {
            blkio(self.need("blkio")?, &limits.read_bps, &limits.write_bps)?;
        }
        // Without a devices hierarchy (and no rule that needs one: see `create`), the nodev
        // mounts alone keep device nodes closed.
        if let (Some(rules), Some(dir)) = (limits.device_rules(), self.dir_of("devices")) {
            devices(dir, &rules)?;
        }
        Ok(())
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.path.as_path())
    }

    fn need(&self, controller: &str) -> Result<&Path> {
        self.dir_of(controller).ok_or_else(|| {
            Error::Unavailable(format!(
                "the {controller} controller is not mounted (cgroup v1)"
            ))
        })
    }

    pub(super) fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|d| d.path.as_path())
    }

    pub(super) fn add_pid(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            write(&d.path.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    pub(super) fn oom_killed(&self) -> bool {
        self.dir_of("memory")
            .and_then(|d| fs::read_to_string(d.join("memory.oom_control")).ok())
            .is_some_and(|t| oom_killed_in(&t))
    }

    pub(super) fn cpu_usage_usec(&self) -> Option<u64> {
        let text = fs::read_to_string(self.dir_of("cpuacct")?.join("cpuacct.usage")).ok()?;
        Some(text.trim().parse::<u64>().ok()? / 1000)
    }

    pub(super) fn memory_limit(&self) -> Option<u64> {
        let text = fs::read_to_string(self.dir_of("memory")?.join("memory.limit_in_bytes")).ok()?;
        text.trim().parse().ok().filter(|&v| v < UNLIMITED)
    }

    pub(super) fn destroy(&mut self) -> Result<()> {
        if self.dirs.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + DESTROY_BUDGET;
        let paths: Vec<&Path> = self.dirs().collect();
        kill_all(&paths, deadline)?;
        let mut first_error = None;
        self.dirs.retain(|d| match remove_tree(&d.path, deadline) {
            Ok(()) => false,
            Err(e) => {
                first_error.get_or_insert(e);
                true
            }
        });
        first_error.map_or(Ok(()), Err)
    }
}

/// `memory.limit_in_bytes`, then the memory+swap limit at the same value so the limit is not
/// dodged by swapping. memsw must never be below limit_in_bytes (cgroup-v1/memory.rst, 2.5),
/// hence the order. Without swap accounting there is no memsw file, and `memory.swappiness`
/// = 0 keeps the cgroup's anonymous memory out of swap instead.
pub fn memory(dir: &Path, bytes: u64) -> Result<()> {
    write(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    if memsw.exists() {
        write(&memsw, &bytes.to_string())
    } else {
        write(&dir.join("memory.swappiness"), "0")
    }
}

/// `cpu.cfs_period_us` and `cpu.cfs_quota_us`: `cpus` CPUs' worth of time in every period
/// (the kernel's sched-bwc.rst).
pub fn cpu(dir: &Path, cpus: f64) -> Result<()> {
    write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_USEC.to_string())?;
    write(
        &dir.join("cpu.cfs_quota_us"),
        &cpu_quota_usec(cpus).to_string(),
    )
}

/// `pids.max`; `n <= 0` is "max".
pub fn pids(dir: &Path, n: i64) -> Result<()> {
    let value = if n <= 0 {
        "max".to_string()
    } else {
        n.to_string()
    };
    write(&dir.join("pids.max"), &value)
}

/// `blkio.throttle.{read,write}_bps_device`: one "MAJ:MIN N" line per device, each its own
/// write; a rate of 0 removes the device's limit (cgroup-v1/blkio-controller.rst).
pub fn blkio(dir: &Path, read: &[DeviceRate], write: &[DeviceRate]) -> Result<()> {
    for (file, rates) in [
        ("blkio.throttle.read_bps_device", read),
        ("blkio.throttle.write_bps_device", write),
    ] {
        if rates.is_empty() {
            continue;
        }
        let lines: Vec<String> = rates
            .iter()
            .map(|r| format!("{}:{} {}\n", r.major, r.minor, r.bytes_per_sec))
            .collect();
        write_lines(&dir.join(file), &lines)?;
    }
    Ok(())
}

/// `cpuset.cpus` and `cpuset.mems` from the parent's when they are empty, as they are in a
/// new cpuset: until both are set, no task may join it (ENOSPC; cgroup-v1/cpusets.rst 1.7).
pub fn cpuset(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if read(&dir.join(file))?.trim().is_empty() {
            write(&dir.join(file), read(&parent.join(file))?.trim())?;
        }
    }
    Ok(())
}

/// `devices.deny` = `a`, which denies every device and drops the exceptions inherited from
/// the parent, then one `devices.allow` line per rule, each its own write
/// (cgroup-v1/devices.rst). Written before any task joins, so none ever runs with more.
pub fn devices(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    write(&dir.join("devices.deny"), "a")?;
    let lines: Vec<String> = rules.iter().map(|r| format!("{r}\n")).collect();
    write_lines(&dir.join("devices.allow"), &lines)
}

/// Whether `memory.oom_control` counts an OOM kill ("oom_kill N", Linux 4.13).
pub fn oom_killed_in(oom_control: &str) -> bool {
    keyed(oom_control, "oom_kill").is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path, files: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for name in files {
            fs::write(dir.join(name), "").unwrap();
        }
    }

    fn text(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).unwrap()
    }

    #[test]
    fn memory_limits_memory_and_swap_together() {
        let t = tempfile::tempdir().unwrap();
        fake(
            t.path(),
            &[
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "memory.swappiness",
            ],
        );
        memory(t.path(), 5 << 20).unwrap();
        assert_eq!(text(t.path(), "memory.limit_in_bytes"), "5242880");
        assert_eq!(text(t.path(), "memory.memsw.limit_in_bytes"), "5242880");
        assert_eq!(text(t.path(), "memory.swappiness"), "");
    }

    #[test]
    fn memory_without_swap_accounting_turns_swappiness_off() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), &["memory.limit_in_bytes", "memory.swappiness"]);
        memory(t.path(), 5 << 20).unwrap();
        assert_eq!(text(t.path(), "memory.limit_in_bytes"), "5242880");
        assert_eq!(text(t.path(), "memory.swappiness"), "0");
    }

    #[test]
    fn cpu_sets_period_and_quota() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), &["cpu.cfs_period_us", "cpu.cfs_quota_us"]);
        cpu(t.path(), 0.1).unwrap();
        assert_eq!(text(t.path(), "cpu.cfs_period_us"), "100000");
        assert_eq!(text(t.path(), "cpu.cfs_quota_us"), "10000");
        cpu(t.path(), 0.0001).unwrap();
        assert_eq!(text(t.path(), "cpu.cfs_quota_us"), "1000");
    }

    #[test]
    fn pids_writes_the_limit_or_max() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), &["pids.max"]);
        pids(t.path(), 20).unwrap();
        assert_eq!(text(t.path(), "pids.max"), "20");
        pids(t.path(), -1).unwrap();
        assert_eq!(text(t.path(), "pids.max"), "max");
    }

    #[test]
    fn blkio_writes_one_line_per_device_and_only_the_files_asked_for() {
        let t = tempfile::tempdir().unwrap();
        fake(
            t.path(),
            &[
                "blkio.throttle.read_bps_device",
                "blkio.throttle.write_bps_device",
            ],
        );
        let rate = |minor, bytes_per_sec| DeviceRate {
            major: 8,
            minor,
            bytes_per_sec,
        };
        blkio(t.path(), &[rate(0, 1 << 20), rate(16, 4096)], &[]).unwrap();
        assert_eq!(
            text(t.path(), "blkio.throttle.read_bps_device"),
            "8:0 1048576\n8:16 4096\n"
        );
        assert_eq!(text(t.path(), "blkio.throttle.write_bps_device"), "");
    }

    #[test]
    fn a_failed_write_names_value_and_file() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), &["cpu.cfs_period_us"]);
        let err = cpu(t.path(), 0.5).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "write 50000 to {}: no such file or directory",
                t.path().join("cpu.cfs_quota_us").display()
            )
        );
    }

    #[test]
    fn oom_kills_are_read_from_oom_control() {
        assert!(!oom_killed_in(
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"
        ));
        assert!(oom_killed_in(
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
        ));
        // Before Linux 4.13 there is no count to read.
        assert!(!oom_killed_in("oom_kill_disable 0\nunder_oom 1\n"));
    }

    #[test]
    fn limits_without_their_hierarchy_are_unavailable_and_nothing_is_made() {
        let t = tempfile::tempdir().unwrap();
        let mut hierarchies = BTreeMap::new();
        hierarchies.insert(
            "memory".to_string(),
            V1Mount {
                mount: t.path().join("memory"),
                own: PathBuf::new(),
            },
        );
        let limits = Limits {
            pids: Some(20),
            ..Limits::default()
        };
        let err = Manager::create(&hierarchies, "c1", &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cgroups unavailable: the pids controller is not mounted (cgroup v1)"
        );
        assert!(!t.path().join("memory").exists());
    }

    use crate::cgroup::{
        fake, Cgroup, DeviceAccess, DeviceKind, Hierarchy, Record, DEFAULT_ALLOWED_LINES,
    };

    /// A fake machine shaped like this one (v1, every controller in its own hierarchy but
    /// cpu and cpuacct co-mounted, memory confining us to a child cgroup), in `root`.
    fn fake_machine(root: &Path) -> BTreeMap<String, V1Mount> {
        let procs = ("cgroup.procs", "");
        // (directory, controllers, the interface files of each cgroup)
        type Fake<'a> = (&'a str, &'a [&'a str], Vec<(&'a str, &'a str)>);
        let hierarchies: [Fake; 7] = [
            ("blkio", &["blkio"], vec![procs]),
            (
                "cpu,cpuacct",
                &["cpu", "cpuacct"],
                vec![
                    procs,
                    ("cpu.cfs_period_us", "100000"),
                    ("cpu.cfs_quota_us", "-1"),
                    ("cpuacct.usage", "0"),
                ],
            ),
            (
                "cpuset",
                &["cpuset"],
                vec![procs, ("cpuset.cpus", ""), ("cpuset.mems", "")],
            ),
            (
                "devices",
                &["devices"],
                vec![procs, ("devices.allow", ""), ("devices.deny", "")],
            ),
            ("freezer", &["freezer"], vec![procs]),
            (
                "memory",
                &["memory"],
                vec![
                    procs,
                    ("memory.limit_in_bytes", ""),
                    ("memory.swappiness", "60"),
                ],
            ),
            ("pids", &["pids"], vec![procs, ("pids.max", "max")]),
        ];
        let mut map = BTreeMap::new();
        for (dir, controllers, files) in hierarchies {
            let mount = root.join(dir);
            fake::hierarchy(&mount, &files);
            let own = if dir == "memory" {
                for d in ["process_api", "process_api/x"] {
                    fs::create_dir(mount.join(d)).unwrap();
                    fake::after_mkdir(&mount.join(d));
                }
                PathBuf::from("process_api/x")
            } else {
                PathBuf::new()
            };
            for c in controllers {
                map.insert(
                    c.to_string(),
                    V1Mount {
                        mount: mount.clone(),
                        own: own.clone(),
                    },
                );
            }
        }
        // The kernel's root cpuset holds every CPU and memory node.
        fs::write(root.join("cpuset/cpuset.cpus"), "0-3\n").unwrap();
        fs::write(root.join("cpuset/cpuset.mems"), "0\n").unwrap();
        map
    }

    /// The journal of writes since the last call, as "path relative to root: value".
    fn writes(root: &Path) -> Vec<String> {
        fake::take()
            .into_iter()
            .map(|(p, v)| format!("{}: {v}", p.strip_prefix(root).unwrap().display()))
            .collect()
    }

    fn loop0_read_only() -> DeviceRule {
        DeviceRule::node(DeviceKind::Block, 7, 0, DeviceAccess::READ)
    }

    #[test]
    fn plan_puts_the_cgroup_in_every_hierarchy_once() {
        let t = tempfile::tempdir().unwrap();
        let planned = plan(&fake_machine(t.path()), "c1");
        let shown: Vec<(String, String)> = planned
            .iter()
            .map(|(p, cs)| {
                (
                    p.strip_prefix(t.path()).unwrap().display().to_string(),
                    cs.join(","),
                )
            })
            .collect();
        let want = [
            ("blkio/minibox/c1", "blkio"),
            ("cpu,cpuacct/minibox/c1", "cpu,cpuacct"),
            ("cpuset/minibox/c1", "cpuset"),
            ("devices/minibox/c1", "devices"),
            ("freezer/minibox/c1", "freezer"),
            ("memory/process_api/x/minibox/c1", "memory"),
            ("pids/minibox/c1", "pids"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(shown, want);
    }

    #[test]
    fn create_writes_cpuset_limits_then_devices_in_order_and_destroy_removes_all() {
        let t = tempfile::tempdir().unwrap();
        let h = Hierarchy::V1 {
            controllers: fake_machine(t.path()),
        };
        let limits = Limits {
            memory: Some(5 << 20),
            pids: Some(20),
            devices: vec![loop0_read_only()],
            ..Limits::default()
        };
        fake::take();
        let mut cg = Cgroup::create(&h, "c1", &limits).unwrap();
        let mut want = vec![
            // The shared parent gets its CPUs and memory nodes once, then the container's.
            "cpuset/minibox/cpuset.cpus: 0-3".to_string(),
            "cpuset/minibox/cpuset.mems: 0".to_string(),
            "cpuset/minibox/c1/cpuset.cpus: 0-3".to_string(),
            "cpuset/minibox/c1/cpuset.mems: 0".to_string(),
            "memory/process_api/x/minibox/c1/memory.limit_in_bytes: 5242880".to_string(),
            "memory/process_api/x/minibox/c1/memory.swappiness: 0".to_string(),
            "pids/minibox/c1/pids.max: 20".to_string(),
            // Deny everything first, then allow Docker's list and the --device.
            "devices/minibox/c1/devices.deny: a".to_string(),
        ];
        for line in DEFAULT_ALLOWED_LINES.iter().chain(["b 7:0 r"].iter()) {
            want.push(format!("devices/minibox/c1/devices.allow: {line}"));
        }
        assert_eq!(writes(t.path()), want);
        let dirs = cg.record().dirs;
        assert_eq!(dirs.len(), 7);
        for d in &dirs {
            assert!(d.is_dir(), "{}", d.display());
        }

        cg.add_pid(2147483646).unwrap();
        let joined = writes(t.path());
        assert_eq!(joined.len(), 7, "{joined:?}");
        assert!(joined
            .iter()
            .all(|w| w.ends_with("/c1/cgroup.procs: 2147483646")));

        for d in &dirs {
            fs::write(d.join("cgroup.procs"), "").unwrap();
        }
        cg.destroy().unwrap();
        for d in &dirs {
            assert!(!d.exists(), "{} is left", d.display());
            assert!(d.parent().unwrap().is_dir(), "the shared minibox/ stays");
        }
    }

    #[test]
    fn a_cpuset_already_set_is_kept() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("c");
        fake(&dir, &["cpuset.cpus", "cpuset.mems"]);
        fs::write(t.path().join("cpuset.cpus"), "0-7\n").unwrap();
        fs::write(t.path().join("cpuset.mems"), "0-1\n").unwrap();
        fs::write(dir.join("cpuset.cpus"), "2\n").unwrap();
        fake::take();
        cpuset(&dir).unwrap();
        assert_eq!(text(&dir, "cpuset.cpus"), "2\n");
        assert_eq!(text(&dir, "cpuset.mems"), "0-1");
        assert_eq!(fake::take().len(), 1);
    }

    #[test]
    fn privileged_writes_no_device_rules() {
        let t = tempfile::tempdir().unwrap();
        let h = Hierarchy::V1 {
            controllers: fake_machine(t.path()),
        };
        let limits = Limits {
            all_devices: true,
            devices: vec![loop0_read_only()],
            ..Limits::default()
        };
        fake::take();
        drop(Cgroup::create(&h, "c1", &limits).unwrap());
        let w = writes(t.path());
        assert!(!w.iter().any(|w| w.contains("devices.")), "{w:?}");
        assert!(!t.path().join("devices/minibox/c1").exists());
    }

    #[test]
    fn without_a_devices_hierarchy_only_a_restricted_device_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let mut controllers = fake_machine(t.path());
        controllers.remove("devices");
        let h = Hierarchy::V1 { controllers };
        // Docker's defaults are then left to the nodev mounts...
        drop(Cgroup::create(&h, "c1", &Limits::default()).unwrap());
        // ...but `:r` has nothing to enforce it.
        let limits = Limits {
            devices: vec![loop0_read_only()],
            ..Limits::default()
        };
        let err = Cgroup::create(&h, "c2", &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cgroups unavailable: the devices controller is not mounted (cgroup v1)"
        );
        assert!(!t.path().join("pids/minibox/c2").exists());
    }

    #[test]
    fn leftover_and_reopen_reach_every_hierarchy() {
        let t = tempfile::tempdir().unwrap();
        let h = Hierarchy::V1 {
            controllers: fake_machine(t.path()),
        };
        let cg = Cgroup::create(&h, "c1", &Limits::default()).unwrap();
        let record = cg.record();
        // A monitor killed before it could clean up.
        std::mem::forget(cg);
        assert_eq!(Cgroup::leftover(&h, "c1").unwrap().record(), record);
        let json = serde_json::to_string(&record).unwrap();
        let back: Record = serde_json::from_str(&json).unwrap();
        Cgroup::reopen(&back).unwrap().destroy().unwrap();
        for d in &record.dirs {
            assert!(!d.exists(), "{} is left", d.display());
        }
    }
}
