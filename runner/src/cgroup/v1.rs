//! The cgroup v1 manager (one hierarchy per controller or group of co-mounted controllers;
//! the kernel's cgroup-v1/cgroups.rst) and one function per controller — memory, cpu,
//! pids, blkio — each taking that controller's directory of the container's cgroup, so the
//! tests run them against a fake cgroupfs in a temp dir.
//!
//! It must not decide placement beyond the rules in the module header (`mod.rs`), and never
//! touches v2 files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{
    cpu_quota_usec, ensure_dir, keyed, kill_all, make_fresh, remove_tree, uid, write, write_lines,
    DeviceRate, Error, Limits, Result, V1Mount, CPU_PERIOD_USEC, DESTROY_BUDGET, V1_CONTROLLERS,
};

/// `memory.limit_in_bytes` at or above this reads as no limit: the kernel shows "unlimited"
/// as its page-counter maximum (LONG_MAX rounded down to a page), which depends on page size.
const UNLIMITED: u64 = 1 << 62;

#[derive(Debug, Default)]
pub(super) struct Manager {
    /// One per hierarchy, in the order of `V1_CONTROLLERS`; only directories we made.
    dirs: Vec<Dir>,
}

#[derive(Debug)]
struct Dir {
    path: PathBuf,
    /// The controllers of ours mounted in this hierarchy (`cpu` and `cpuacct` often share).
    controllers: Vec<&'static str>,
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
        ] {
            if asked && !hierarchies.contains_key(c) {
                return Err(Error::Unavailable(format!(
                    "the {c} controller is not mounted (cgroup v1)"
                )));
            }
        }
        let mut planned: Vec<Dir> = Vec::new();
        for c in V1_CONTROLLERS {
            let Some(h) = hierarchies.get(c) else {
                continue;
            };
            let path = h.mount.join(&h.own).join("minibox").join(id);
            match planned.iter_mut().find(|d| d.path == path) {
                Some(d) => d.controllers.push(c),
                None => planned.push(Dir {
                    path,
                    controllers: vec![c],
                }),
            }
        }
        let mut m = Manager::default();
        if let Err(e) = m.make(planned, limits) {
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

    fn make(&mut self, planned: Vec<Dir>, limits: &Limits) -> Result<()> {
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
        for d in planned {
            if let Some(parent) = d.path.parent() {
                ensure_dir(parent).map_err(unwritable)?;
            }
            // Pushed only once made: a failure must never destroy a cgroup we did not make
            // (an in-use leftover is refused, not killed).
            make_fresh(&d.path).map_err(unwritable)?;
            self.dirs.push(d);
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
        Ok(())
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.controllers.contains(&controller))
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
}
