//! The cgroup v2 manager (one unified hierarchy; the kernel's cgroup-v2.rst) and one function
//! per controller — memory, cpu, pids, io — each taking the cgroup's directory, so the tests
//! run them against a fake cgroupfs in a temp dir; the devices controller is an eBPF program
//! (`bpf`), attached once the limits are written.
//!
//! It must not decide placement beyond the rules in the module header (`mod.rs`), and never
//! touches v1 files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fs::{Access, AtFlags, CWD};

use super::{
    bpf, cpu_quota_usec, ensure_dir, keyed, kill_all, make_fresh, read, remove_tree, tokens, uid,
    write, write_lines, DeviceRate, Error, Limits, Result, CPU_PERIOD_USEC, DESTROY_BUDGET,
};

/// The controllers a container's cgroup uses, under their v2 names.
const CONTROLLERS: [&str; 4] = ["memory", "cpu", "pids", "io"];

#[derive(Debug)]
pub(super) struct Manager {
    dir: PathBuf,
    removed: bool,
}

impl Manager {
    pub(super) fn create(mount: &Path, own: &Path, id: &str, limits: &Limits) -> Result<Manager> {
        let needed = needed(limits);
        match create_under(mount, id, limits, &needed) {
            Err(e) if e.is_permission() => {}
            done => return done,
        }
        let Some(base) = delegated_parent(mount, own, &needed) else {
            let wanted = if needed.is_empty() {
                &CONTROLLERS[..]
            } else {
                &needed[..]
            };
            return Err(Error::Unavailable(format!(
                "cgroup v2 at {} has no subtree delegated to uid {} with {}",
                mount.display(),
                uid(),
                wanted.join(", ")
            )));
        };
        create_under(&base, id, limits, &needed)
    }

    pub(super) fn reopen(dir: PathBuf) -> Manager {
        Manager {
            dir,
            removed: false,
        }
    }

    pub(super) fn dir(&self) -> Option<&Path> {
        (!self.removed).then_some(self.dir.as_path())
    }

    pub(super) fn add_pid(&self, pid: i32) -> Result<()> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    pub(super) fn oom_killed(&self) -> bool {
        fs::read_to_string(self.dir.join("memory.events")).is_ok_and(|t| oom_killed_in(&t))
    }

    pub(super) fn cpu_usage_usec(&self) -> Option<u64> {
        keyed(
            &fs::read_to_string(self.dir.join("cpu.stat")).ok()?,
            "usage_usec",
        )
    }

    pub(super) fn memory_limit(&self) -> Option<u64> {
        fs::read_to_string(self.dir.join("memory.max"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub(super) fn destroy(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        let deadline = Instant::now() + DESTROY_BUDGET;
        // cgroup.kill (Linux 5.14) kills the whole subtree at once, with no race against
        // forks; the loop below still waits for the processes to be gone, and is all there
        // is on older kernels.
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() {
            write(&kill, "1")?;
        }
        kill_all(&[&self.dir], deadline)?;
        remove_tree(&self.dir, deadline)?;
        self.removed = true;
        Ok(())
    }
}

/// The controllers the requested limits cannot do without.
fn needed(limits: &Limits) -> Vec<&'static str> {
    [
        (limits.memory.is_some(), "memory"),
        (limits.cpus.is_some(), "cpu"),
        (limits.pids.is_some(), "pids"),
        (limits.has_rates(), "io"),
    ]
    .into_iter()
    .filter_map(|(asked, c)| asked.then_some(c))
    .collect()
}

/// Make `<base>/minibox/<id>` with `limits`; on failure leave no `<id>` directory behind.
fn create_under(base: &Path, id: &str, limits: &Limits, needed: &[&str]) -> Result<Manager> {
    let parent = base.join("minibox");
    enable_controllers(base, needed)?;
    ensure_dir(&parent)?;
    enable_controllers(&parent, needed)?;
    let dir = parent.join(id);
    make_fresh(&dir)?;
    let mut m = Manager {
        dir,
        removed: false,
    };
    if let Err(e) = apply(&m.dir, limits).and_then(|()| restrict_devices(&m.dir, limits)) {
        let _ = m.destroy();
        return Err(e);
    }
    Ok(m)
}

/// Attach the devices program for `limits` to cgroup `dir` (none with `all_devices`).
fn restrict_devices(dir: &Path, limits: &Limits) -> Result<()> {
    let Some(rules) = limits.device_rules() else {
        return Ok(());
    };
    match bpf::restrict(dir, &rules) {
        // Loading a device program needs CAP_SYS_ADMIN (or CAP_BPF) in the initial user
        // namespace, which a user with a delegated subtree lacks; rootless runc and crun go
        // without it too, and the nodev mounts and the user namespace keep nodes closed.
        Err(e) if e.is_permission() && uid() != 0 && !limits.restricts_devices() => Ok(()),
        Err(e) if e.is_permission() && uid() != 0 => Err(Error::Unavailable(format!(
            "device permissions other than rwm need a devices cgroup program, which uid {} \
             may not load ({e})",
            uid()
        ))),
        r => r,
    }
}

/// Let `dir`'s child cgroups use every controller of ours that `dir` offers, by writing them
/// to its `cgroup.subtree_control`. A needed one that `dir` lacks or refuses is Unavailable.
pub fn enable_controllers(dir: &Path, needed: &[&str]) -> Result<()> {
    let offered = tokens(&read(&dir.join("cgroup.controllers"))?);
    if let Some(c) = needed.iter().find(|c| !offered.iter().any(|o| o == *c)) {
        return Err(Error::Unavailable(format!(
            "the {c} controller is not available in {} (cgroup.controllers: {})",
            dir.display(),
            offered.join(" ")
        )));
    }
    let control = dir.join("cgroup.subtree_control");
    let enabled = tokens(&read(&control)?);
    let missing: Vec<&str> = CONTROLLERS
        .into_iter()
        .filter(|c| offered.iter().any(|o| o == c) && !enabled.iter().any(|e| e == c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    match write(&control, &all.join(" ")) {
        Ok(()) => return Ok(()),
        Err(e) if e.is_permission() => return Err(e),
        Err(_) => {}
    }
    // The kernel takes all or nothing; one at a time shows which it refuses (+cpu, say, while
    // realtime tasks run outside the root), and only a needed one is fatal.
    for c in missing {
        match write(&control, &format!("+{c}")) {
            Err(e) if e.errno() == Some(libc::EBUSY) && needed.contains(&c) => {
                return Err(Error::Unavailable(format!(
                    "cannot enable {c} for the children of {}: it holds processes itself \
                     (cgroup v2 no-internal-process rule)",
                    dir.display()
                )))
            }
            Err(e) if needed.contains(&c) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The nearest ancestor of our cgroup `own` (itself included, `mount` last) under which an
/// unprivileged user may make the container's cgroup: writable by us, no processes of its
/// own, and offering every `needed` controller (the rules are in the module header).
pub fn delegated_parent(mount: &Path, own: &Path, needed: &[&str]) -> Option<PathBuf> {
    let mut rel = own.to_path_buf();
    loop {
        let dir = mount.join(&rel);
        if usable(&dir, needed) {
            return Some(dir);
        }
        if !rel.pop() {
            return None;
        }
    }
}

fn usable(dir: &Path, needed: &[&str]) -> bool {
    // EACCESS: the effective ids decide what we may write, not the real ones.
    let writable =
        |p: &Path| rustix::fs::accessat(CWD, p, Access::WRITE_OK, AtFlags::EACCESS).is_ok();
    let procs = dir.join("cgroup.procs");
    writable(dir)
        && writable(&procs)
        && writable(&dir.join("cgroup.subtree_control"))
        && fs::read_to_string(&procs).is_ok_and(|t| t.trim().is_empty())
        && fs::read_to_string(dir.join("cgroup.controllers")).is_ok_and(|t| {
            let offered = tokens(&t);
            needed.iter().all(|c| offered.iter().any(|o| o == c))
        })
}

/// Write every limit in `limits` into cgroup directory `dir`.
pub fn apply(dir: &Path, limits: &Limits) -> Result<()> {
    if let Some(bytes) = limits.memory {
        memory(dir, bytes)?;
    }
    if let Some(cpus) = limits.cpus {
        cpu(dir, cpus)?;
    }
    if let Some(n) = limits.pids {
        pids(dir, n)?;
    }
    if limits.has_rates() {
        io(dir, &limits.read_bps, &limits.write_bps)?;
    }
    Ok(())
}

/// `memory.max`, and `memory.swap.max` = 0 so the limit is not dodged by swapping.
pub fn memory(dir: &Path, bytes: u64) -> Result<()> {
    write(&dir.join("memory.max"), &bytes.to_string())?;
    // Absent without swap accounting (CONFIG_MEMCG_SWAP off, swapaccount=0): then the kernel
    // has no per-cgroup swap limit to set.
    let swap = dir.join("memory.swap.max");
    if swap.exists() {
        write(&swap, "0")?;
    }
    Ok(())
}

/// `cpu.max` = "QUOTA PERIOD": `cpus` CPUs' worth of time in every period.
pub fn cpu(dir: &Path, cpus: f64) -> Result<()> {
    write(
        &dir.join("cpu.max"),
        &format!("{} {CPU_PERIOD_USEC}", cpu_quota_usec(cpus)),
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

/// `io.max`: one "MAJ:MIN rbps=N wbps=M" line per device, each its own write as the kernel
/// takes one device per write; a rate of 0 is "max".
pub fn io(dir: &Path, read: &[DeviceRate], write: &[DeviceRate]) -> Result<()> {
    let mut devices: BTreeMap<(u32, u32), String> = BTreeMap::new();
    let rate = |n: u64| {
        if n == 0 {
            "max".to_string()
        } else {
            n.to_string()
        }
    };
    for (key, rates) in [("rbps", read), ("wbps", write)] {
        for r in rates {
            let line = devices.entry((r.major, r.minor)).or_default();
            line.push_str(&format!(" {key}={}", rate(r.bytes_per_sec)));
        }
    }
    let lines: Vec<String> = devices
        .into_iter()
        .map(|((major, minor), keys)| format!("{major}:{minor}{keys}\n"))
        .collect();
    write_lines(&dir.join("io.max"), &lines)
}

/// Whether `memory.events` counts an OOM kill: `oom_kill` for a process the OOM killer
/// chose, `oom_group_kill` (Linux 6.0) for a whole group killed under `memory.oom.group`.
pub fn oom_killed_in(memory_events: &str) -> bool {
    ["oom_kill", "oom_group_kill"]
        .iter()
        .any(|k| keyed(memory_events, k).is_some_and(|n| n > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{Cgroup, DeviceAccess, DeviceKind, DeviceRule, Hierarchy};

    /// A fake cgroup directory holding the given files (the real kernel makes them on mkdir).
    fn fake(dir: &Path, files: &[(&str, &str)]) {
        fs::create_dir_all(dir).unwrap();
        for (name, text) in files {
            fs::write(dir.join(name), text).unwrap();
        }
    }

    fn text(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).unwrap()
    }

    const LIMIT_FILES: [(&str, &str); 5] = [
        ("memory.max", "max\n"),
        ("memory.swap.max", "max\n"),
        ("cpu.max", "max 100000\n"),
        ("pids.max", "max\n"),
        ("io.max", ""),
    ];

    #[test]
    fn apply_writes_every_limit() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), &LIMIT_FILES);
        let limits = Limits {
            memory: Some(5 << 20),
            cpus: Some(0.1),
            pids: Some(20),
            read_bps: vec![DeviceRate {
                major: 8,
                minor: 0,
                bytes_per_sec: 1 << 20,
            }],
            write_bps: vec![
                DeviceRate {
                    major: 8,
                    minor: 16,
                    bytes_per_sec: 512,
                },
                DeviceRate {
                    major: 8,
                    minor: 0,
                    bytes_per_sec: 2 << 20,
                },
            ],
            ..Limits::default()
        };
        apply(t.path(), &limits).unwrap();
        assert_eq!(text(t.path(), "memory.max"), "5242880");
        assert_eq!(text(t.path(), "memory.swap.max"), "0");
        assert_eq!(text(t.path(), "cpu.max"), "10000 100000");
        assert_eq!(text(t.path(), "pids.max"), "20");
        assert_eq!(
            text(t.path(), "io.max"),
            "8:0 rbps=1048576 wbps=2097152\n8:16 wbps=512\n"
        );
    }

    #[test]
    fn apply_without_limits_writes_nothing() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), &LIMIT_FILES);
        apply(t.path(), &Limits::default()).unwrap();
        for (name, before) in LIMIT_FILES {
            assert_eq!(text(t.path(), name), before, "{name}");
        }
    }

    #[test]
    fn memory_without_swap_accounting_sets_only_memory_max() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), &[("memory.max", "max\n")]);
        memory(t.path(), 6 << 20).unwrap();
        assert_eq!(text(t.path(), "memory.max"), "6291456");
        assert!(!t.path().join("memory.swap.max").exists());
    }

    #[test]
    fn cpu_quota_is_rounded_with_a_floor_of_one_millisecond() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), &[("cpu.max", "")]);
        for (cpus, want) in [
            (0.001, "1000 100000"),
            (0.123456, "12346 100000"),
            (1.5, "150000 100000"),
            (2.0, "200000 100000"),
        ] {
            cpu(t.path(), cpus).unwrap();
            assert_eq!(text(t.path(), "cpu.max"), want, "cpus {cpus}");
        }
    }

    #[test]
    fn pids_at_or_below_zero_is_unlimited() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), &[("pids.max", "")]);
        pids(t.path(), -1).unwrap();
        assert_eq!(text(t.path(), "pids.max"), "max");
        pids(t.path(), 0).unwrap();
        assert_eq!(text(t.path(), "pids.max"), "max");
    }

    #[test]
    fn zero_rate_is_max() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), &[("io.max", "")]);
        io(
            t.path(),
            &[DeviceRate {
                major: 254,
                minor: 0,
                bytes_per_sec: 0,
            }],
            &[],
        )
        .unwrap();
        assert_eq!(text(t.path(), "io.max"), "254:0 rbps=max\n");
    }

    #[test]
    fn a_failed_write_names_value_and_file() {
        let t = tempfile::tempdir().unwrap();
        let err = memory(t.path(), 5 << 20).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "write 5242880 to {}: no such file or directory",
                t.path().join("memory.max").display()
            )
        );
    }

    #[test]
    fn enable_controllers_writes_the_offered_ones_to_subtree_control() {
        let t = tempfile::tempdir().unwrap();
        fake(
            t.path(),
            &[
                (
                    "cgroup.controllers",
                    "cpuset cpu io memory hugetlb pids rdma misc\n",
                ),
                ("cgroup.subtree_control", "\n"),
            ],
        );
        enable_controllers(t.path(), &["memory"]).unwrap();
        assert_eq!(
            text(t.path(), "cgroup.subtree_control"),
            "+memory +cpu +pids +io"
        );
    }

    #[test]
    fn enable_controllers_leaves_enabled_ones_alone() {
        let t = tempfile::tempdir().unwrap();
        fake(
            t.path(),
            &[
                ("cgroup.controllers", "cpu io memory pids\n"),
                ("cgroup.subtree_control", "cpu io memory pids\n"),
            ],
        );
        enable_controllers(t.path(), &["memory", "pids", "cpu", "io"]).unwrap();
        assert_eq!(
            text(t.path(), "cgroup.subtree_control"),
            "cpu io memory pids\n"
        );
    }

    #[test]
    fn a_needed_controller_not_offered_is_unavailable() {
        let t = tempfile::tempdir().unwrap();
        fake(
            t.path(),
            &[
                ("cgroup.controllers", "cpu memory\n"),
                ("cgroup.subtree_control", ""),
            ],
        );
        let err = enable_controllers(t.path(), &["memory", "pids"]).unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "cgroups unavailable: the pids controller is not available in {} \
                 (cgroup.controllers: cpu memory)",
                t.path().display()
            )
        );
        assert_eq!(text(t.path(), "cgroup.subtree_control"), "");
    }

    /// A fake delegated tree: `mount/user.slice/user@1000.service/app.slice/term.scope`,
    /// where only the scope holds a process.
    fn delegated_tree(mount: &Path) -> PathBuf {
        let service = mount.join("user.slice/user@1000.service");
        let all = "cpu io memory pids\n";
        for (dir, procs, controllers) in [
            (mount.to_path_buf(), "1\n", all),
            (mount.join("user.slice"), "", all),
            (service.clone(), "", "cpu memory pids\n"),
            (service.join("app.slice"), "", "memory pids\n"),
            (
                service.join("app.slice/term.scope"),
                "4242\n",
                "memory pids\n",
            ),
        ] {
            fake(
                &dir,
                &[
                    ("cgroup.procs", procs),
                    ("cgroup.controllers", controllers),
                    ("cgroup.subtree_control", ""),
                ],
            );
        }
        PathBuf::from("user.slice/user@1000.service/app.slice/term.scope")
    }

    #[test]
    fn delegated_parent_is_the_nearest_empty_ancestor_with_the_controllers() {
        let t = tempfile::tempdir().unwrap();
        let own = delegated_tree(t.path());
        let service = t.path().join("user.slice/user@1000.service");
        assert_eq!(
            delegated_parent(t.path(), &own, &["memory"]),
            Some(service.join("app.slice"))
        );
        assert_eq!(
            delegated_parent(t.path(), &own, &["memory", "cpu"]),
            Some(service.clone())
        );
        assert_eq!(
            delegated_parent(t.path(), &own, &["io"]),
            Some(t.path().join("user.slice"))
        );
    }

    #[test]
    fn no_delegated_parent_when_every_ancestor_holds_processes() {
        let t = tempfile::tempdir().unwrap();
        fake(
            t.path(),
            &[
                ("cgroup.procs", "1\n"),
                ("cgroup.controllers", "memory\n"),
                ("cgroup.subtree_control", ""),
            ],
        );
        assert_eq!(delegated_parent(t.path(), Path::new(""), &[]), None);
    }

    /// A fake v2 root whose `minibox` child already exists (the fake kernel cannot make the
    /// interface files of a new directory, so limits stay empty in these tests).
    fn fake_root(mount: &Path) {
        let files = [
            ("cgroup.procs", ""),
            ("cgroup.controllers", "cpu io memory pids\n"),
            ("cgroup.subtree_control", ""),
        ];
        fake(mount, &files);
        fake(&mount.join("minibox"), &files);
    }

    /// No devices program: a directory of a temp dir cannot take one (see the test below).
    fn all_devices() -> Limits {
        Limits {
            all_devices: true,
            ..Limits::default()
        }
    }

    #[test]
    fn create_on_a_fake_root_enables_controllers_and_destroy_removes() {
        let t = tempfile::tempdir().unwrap();
        fake_root(t.path());
        let h = Hierarchy::V2 {
            mount: t.path().to_path_buf(),
            own: PathBuf::new(),
        };
        let mut cg = Cgroup::create(&h, "c1", &all_devices()).unwrap();
        let dir = t.path().join("minibox/c1");
        assert_eq!(cg.v2_dir(), Some(dir.as_path()));
        assert!(dir.is_dir());
        for parent in [t.path(), &t.path().join("minibox")] {
            assert_eq!(
                text(parent, "cgroup.subtree_control"),
                "+memory +cpu +pids +io"
            );
        }
        cg.destroy().unwrap();
        assert!(!dir.exists());
        assert_eq!(cg.v2_dir(), None);
        cg.destroy().unwrap();
        assert!(t.path().join("minibox").is_dir(), "the shared parent stays");
    }

    #[test]
    fn a_leftover_cgroup_is_replaced_when_empty_and_refused_when_in_use() {
        let t = tempfile::tempdir().unwrap();
        fake_root(t.path());
        let h = Hierarchy::V2 {
            mount: t.path().to_path_buf(),
            own: PathBuf::new(),
        };
        let stale = t.path().join("minibox/c1");
        fs::create_dir_all(stale.join("nested")).unwrap();
        drop(Cgroup::create(&h, "c1", &all_devices()).unwrap());
        assert!(!stale.exists());

        // A pid no process has: nothing is killed either way, and the fake must stay.
        fake(&stale, &[("cgroup.procs", "2147483646\n")]);
        let err = Cgroup::create(&h, "c1", &all_devices()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cgroup {} already exists and still holds processes",
                stale.display()
            )
        );
        assert_eq!(text(&stale, "cgroup.procs"), "2147483646\n");
    }

    #[test]
    fn a_cgroup_the_kernel_cannot_attach_the_devices_program_to_is_one_line_and_removed() {
        let t = tempfile::tempdir().unwrap();
        fake_root(t.path());
        let h = Hierarchy::V2 {
            mount: t.path().to_path_buf(),
            own: PathBuf::new(),
        };
        let dir = t.path().join("minibox/c1");
        let made = Cgroup::create(&h, "c1", &Limits::default());
        if !rustix::process::geteuid().is_root() {
            // Not allowed to load the program at all: left out, as rootless runc does...
            drop(made.unwrap());
            // ...unless a device needs less than rwm, which only the program could enforce.
            let read_only = Limits {
                devices: vec![DeviceRule::node(
                    DeviceKind::Block,
                    7,
                    0,
                    DeviceAccess::READ,
                )],
                ..Limits::default()
            };
            let err = Cgroup::create(&h, "c1", &read_only).unwrap_err();
            assert!(matches!(err, Error::Unavailable(_)), "{err}");
            assert!(!dir.exists());
            return;
        }
        // The kernel loads the program (it is valid) but finds no cgroup behind the fd.
        let err = made.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "attach the devices cgroup program to {}: not a cgroup v2 directory",
                dir.display()
            )
        );
        assert_eq!(err.lines().count(), 1);
        assert!(!dir.exists(), "the half-made cgroup stays behind");
        assert!(t.path().join("minibox").is_dir());
    }

    /// A cgroup made for a test on a real cgroup2 mount, removed (its processes killed)
    /// when the test ends, pass or fail.
    struct TestCgroup(PathBuf);

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            let deadline = std::time::Instant::now() + DESTROY_BUDGET;
            let _ = kill_all(&[&self.0], deadline);
            let _ = remove_tree(&self.0, deadline);
        }
    }

    /// The cgroup2 mount of this machine (on a hybrid one, `/sys/fs/cgroup/unified`, which
    /// holds no controller but takes BPF programs all the same) and our cgroup in it.
    fn cgroup2() -> Option<(PathBuf, PathBuf)> {
        let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        let own = own.lines().find_map(|l| l.strip_prefix("0::"))?;
        info.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let rel = Path::new(own).strip_prefix(f.get(3)?).ok()?;
            let point = PathBuf::from(f.get(4)?);
            right
                .starts_with("cgroup2 ")
                .then(|| (point, rel.to_path_buf()))
        })
    }

    #[test]
    fn root_the_devices_program_lets_a_process_open_only_the_allowed_nodes() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let skip = |why: &str| {
            if std::env::var_os("CI").is_some() {
                panic!("CI must run this test: {why}");
            }
            println!("skipped: {why}");
        };
        if !rustix::process::geteuid().is_root() {
            return skip("not root");
        }
        let Some((mount, own)) = cgroup2() else {
            return skip("no cgroup2 mount");
        };
        // Next to our own cgroup, not below it: on pure v2 ours holds processes, and a
        // child cgroup may not enable controllers under it ("no internal processes"); a
        // program needs none.
        let parent = mount.join(&own);
        let parent = if own.as_os_str().is_empty() {
            parent
        } else {
            parent.parent().unwrap().to_path_buf()
        };
        let dir = parent.join(format!("minibox-test-{}-devices", std::process::id()));
        fs::create_dir(&dir).unwrap();
        let cg = TestCgroup(dir);
        // /dev/null only: /dev/zero is denied.
        let null = DeviceRule::node(DeviceKind::Char, 1, 3, DeviceAccess::RWM);
        match bpf::restrict(&cg.0, &[null]) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EINVAL) || e.errno() == Some(libc::ENOSYS) => {
                return skip(&format!("the kernel takes no device programs here: {e}"))
            }
            Err(e) => panic!("{e}"),
        }
        let mut sh = Command::new("sh")
            .args([
                "-c",
                "read go; head -c 1 /dev/null; echo null=$?; \
                 head -c 1 /dev/zero 2>&1 >/dev/null | grep -o 'Operation not permitted'; \
                 echo zero=$?",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Killed by the TestCgroup guard if anything below fails.
        write(&cg.0.join("cgroup.procs"), &sh.id().to_string()).unwrap();
        sh.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = sh.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "null=0\nOperation not permitted\nzero=0\n"
        );
        // The same shell outside the cgroup opens /dev/zero: the program made the difference.
        let out = Command::new("sh")
            .args(["-c", "head -c 1 /dev/zero | wc -c"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    }

    #[test]
    fn oom_kills_are_read_from_memory_events() {
        let quiet = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\noom_group_kill 0\n";
        assert!(!oom_killed_in(quiet));
        assert!(oom_killed_in("low 0\nhigh 0\nmax 40\noom 1\noom_kill 1\n"));
        assert!(oom_killed_in("oom 1\noom_kill 0\noom_group_kill 2\n"));
        assert!(!oom_killed_in(""));
    }
}
