//! Cgroups for one container: find the hierarchy this machine runs (cgroup v1 controller
//! hierarchies or the v2 unified one), create `minibox/<id>` in it, apply the limits, report
//! OOM kills and CPU time, and kill and remove it again. `v1` and `v2` each hold one manager
//! and one small function per controller; this file holds what both share.
//!
//! It must never touch a cgroup other than the container's own `minibox/<id>` (and the shared
//! `minibox` directory above it, which it creates but never removes: other containers may be
//! using it), and it only kills pids read from that cgroup's own `cgroup.procs`.
//!
//! # API
//! - [`Limits`], [`DeviceRate`]: what the user asked for (Docker's `--memory`, `--cpus`,
//!   `--pids-limit`, `--device-read-bps`, `--device-write-bps`, and the device nodes of
//!   `--device` as [`DeviceRule`]s). [`parse_bytes`], [`parse_rate`], [`parse_device_rate`]
//!   and [`device_numbers`] read Docker's strings.
//! - [`detect`] (reads `/proc/self/mountinfo` and `/proc/self/cgroup`) and the pure
//!   [`detect_from`] give a [`Hierarchy`].
//! - [`Cgroup::create`] gives a [`Cgroup`]: [`Cgroup::add_pid`], [`Cgroup::v2_dir`] (for
//!   clone3 `CLONE_INTO_CGROUP`), [`Cgroup::oom_killed`], [`Cgroup::cpu_usage_usec`],
//!   [`Cgroup::memory_limit`] and [`Cgroup::destroy`], which Drop also runs.
//!
//! # Which hierarchy
//! v1 as soon as one of the controllers we use (memory, cpu, cpuacct, pids, blkio) is mounted
//! as a v1 hierarchy: on a hybrid machine the cgroup2 mount (`/sys/fs/cgroup/unified`) then
//! holds none of them and is ignored. Otherwise v2.
//!
//! # Where the cgroup goes
//! - v2, privileged: `<mount>/minibox/<id>`, with `+memory +cpu +pids +io` (those the kernel
//!   offers) enabled in `<mount>` and `<mount>/minibox`'s `cgroup.subtree_control`.
//! - v2, unprivileged (that fails with EACCES, EPERM or EROFS): `<A>/minibox/<id>`, where A is
//!   the nearest ancestor of our own cgroup (itself included) that (1) we may write — the
//!   directory, `cgroup.subtree_control` and `cgroup.procs`, the last because moving a process
//!   needs write access to `cgroup.procs` of the common ancestor of source and destination
//!   (cgroup-v2.rst, "Delegation Containment"); (2) holds no process itself, since a
//!   non-root cgroup with processes cannot enable controllers for its children
//!   (cgroup-v2.rst, "No Internal Process Constraint"); (3) offers, in `cgroup.controllers`,
//!   every controller a requested limit needs. This is what systemd's `Delegate=yes` gives a
//!   user (`user@UID.service`). No such A: [`Error::Unavailable`].
//! - v1: in every mounted controller hierarchy (memory, cpu, cpuacct, pids and blkio for the
//!   limits, and all the others: cpuset, devices, freezer, ...), at `<our own cgroup in that
//!   hierarchy>/minibox/<id>`, so containers stay inside whatever the caller is confined to,
//!   and each hierarchy mounted in the container (whose cgroup namespace root is its own
//!   cgroup) shows only the container's own cgroup, as runc does. cpuset's new cgroups get
//!   `cpuset.cpus` and `cpuset.mems` from their parent, without which no task may join
//!   (cgroup-v1/cpusets.rst). Named hierarchies (`name=systemd`) are neither joined nor
//!   mounted. A hierarchy we cannot write: [`Error::Unavailable`].
//! - Controllers are used whenever they exist, limit or not, so accounting (CPU time) and
//!   OOM detection work; a limit whose controller is missing is [`Error::Unavailable`].
//!
//! # Devices
//! Unless [`Limits::all_devices`] (`--privileged`), the container may use only Docker's
//! default devices ([`devices::DEFAULT_ALLOWED`]) and those in [`Limits::devices`]: on v1
//! `devices.deny` = `a`, then one `devices.allow` line per rule; on v2 an eBPF program
//! (`bpf`) attached to the cgroup with BPF_F_ALLOW_MULTI. Without the privilege to load it (a
//! delegated v2 subtree, rootless) the program is left out, as rootless runc and crun do,
//! unless a `--device` asks for less than `rwm`, which then is [`Error::Unavailable`]; as
//! root, a program the kernel refuses is an error, never a silent loss of the default.
//! - A leftover `minibox/<id>` (a crash) that holds no process is removed and made afresh,
//!   so limits and counters (`oom_kill`, usage) start clean; one that still holds processes
//!   is [`Error::InUse`] and nothing in it is killed.
//!
//! # Values
//! Memory below [`MIN_MEMORY`] (1 MiB) is refused: Docker's floor is 6 MiB, but a 5 MiB limit
//! is a fair test of enforcement and the kernel takes any size. Swap is limited to zero so
//! the memory limit bites. `cpus` becomes a CFS quota per 100 ms period, at least 1 ms. A
//! pids limit `<= 0` and a rate of 0 mean "no limit" (Docker's meaning); callers that follow
//! Docker map `--memory 0` and `--cpus 0` to `None`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use layers::error::io_message;

pub mod bpf;
pub mod devices;
mod v1;
mod v2;

pub use devices::{Access as DeviceAccess, Kind as DeviceKind, Rule as DeviceRule};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {}: {}", path.display(), io_message(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write {value} to {}: {}", path.display(), io_message(source))]
    Write {
        value: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// No cgroup can be made here (not root, nothing delegated, controller missing). The
    /// caller refuses to run when limits were asked for and only warns otherwise.
    #[error("cgroups unavailable: {0}")]
    Unavailable(String),
    #[error("cgroup {} already exists and still holds processes", .0.display())]
    InUse(PathBuf),
    #[error("processes remain in {} after SIGKILL", .0.display())]
    Unkillable(PathBuf),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    fn io(op: &'static str, path: &Path, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The OS error behind this one, if any.
    fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Write { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Whether this failed only because we may not write there.
    fn is_permission(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
        )
    }
}

/// The smallest memory limit accepted, in bytes.
pub const MIN_MEMORY: u64 = 1 << 20;

/// The CFS period the cpu quota is expressed in: 100 ms, the kernel's default.
pub const CPU_PERIOD_USEC: u64 = 100_000;

/// The v1 controllers that carry minibox's limits and accounting; a hierarchy holding one of
/// them makes a machine "v1" (the others are joined too, but decide nothing).
const V1_CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "pids", "blkio"];

/// How long `destroy` keeps killing and retrying EBUSY before giving up.
const DESTROY_BUDGET: Duration = Duration::from_secs(5);

/// What the user asked to limit. `Default` limits nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Bytes of memory (RAM; swap is held at zero).
    pub memory: Option<u64>,
    /// CPUs' worth of time per period (`--cpus 0.5`).
    pub cpus: Option<f64>,
    /// Tasks; `<= 0` means no limit.
    pub pids: Option<i64>,
    pub read_bps: Vec<DeviceRate>,
    pub write_bps: Vec<DeviceRate>,
    /// Device nodes the container may use beyond Docker's default list (`--device`).
    pub devices: Vec<DeviceRule>,
    /// No devices cgroup: every device the parent cgroup allows (`--privileged`).
    pub all_devices: bool,
}

/// A byte rate on one block device; a rate of 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRate {
    pub major: u32,
    pub minor: u32,
    pub bytes_per_sec: u64,
}

impl Limits {
    /// True when nothing here restricts the container (so a failure to make a cgroup need
    /// only be a warning).
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.cpus.is_none()
            && self.pids.map_or(true, |p| p <= 0)
            && self.read_bps.iter().all(|r| r.bytes_per_sec == 0)
            && self.write_bps.iter().all(|r| r.bytes_per_sec == 0)
            && !self.restricts_devices()
    }

    /// Whether a `--device` allows less than `rwm`, which only a devices cgroup can enforce
    /// (a read-only mount does not stop writes to a device node).
    pub fn restricts_devices(&self) -> bool {
        !self.all_devices && self.devices.iter().any(|d| d.access != DeviceAccess::RWM)
    }

    /// The devices cgroup's allow-list, or None for no devices cgroup (`--privileged`).
    fn device_rules(&self) -> Option<Vec<DeviceRule>> {
        (!self.all_devices).then(|| devices::allow_list(&self.devices))
    }

    fn has_rates(&self) -> bool {
        !self.read_bps.is_empty() || !self.write_bps.is_empty()
    }

    fn validate(&self) -> Result<()> {
        if let Some(m) = self.memory {
            if m < MIN_MEMORY {
                return Err(Error::Invalid(format!(
                    "memory limit {m} bytes is below the minimum of 1 MiB"
                )));
            }
        }
        if let Some(c) = self.cpus {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::Invalid(format!(
                    "cpus {c} must be a positive number"
                )));
            }
        }
        Ok(())
    }
}

/// The CFS quota for `cpus`, in µs per [`CPU_PERIOD_USEC`]; at least 1 ms, the smallest quota
/// the kernel takes (`min_cfs_quota_period`, sched-bwc.rst).
fn cpu_quota_usec(cpus: f64) -> u64 {
    ((cpus * CPU_PERIOD_USEC as f64).round() as u64).max(1000)
}

/// One v1 controller hierarchy as this process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    /// Where the hierarchy is mounted (`/sys/fs/cgroup/memory`).
    pub mount: PathBuf,
    /// This process's cgroup, relative to `mount` (empty at the hierarchy's root).
    pub own: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Controller name (`memory`, `cpu`, `cpuacct`, …; named hierarchies such as
    /// `name=systemd` left out) → its hierarchy. Co-mounted controllers share a mount.
    V1 {
        controllers: BTreeMap<String, V1Mount>,
    },
    /// The cgroup2 mount, and this process's cgroup relative to it (empty at the root).
    V2 { mount: PathBuf, own: PathBuf },
}

/// The hierarchy of this machine, from `/proc/self/mountinfo` and `/proc/self/cgroup`.
pub fn detect() -> Result<Hierarchy> {
    let read = |p: &str| fs::read_to_string(p).map_err(|e| Error::io("read", Path::new(p), e));
    detect_from(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?)
}

/// [`detect`] on the given texts of `/proc/self/mountinfo` and `/proc/self/cgroup`
/// (formats in proc(5) and cgroups(7)).
pub fn detect_from(mountinfo: &str, proc_self_cgroup: &str) -> Result<Hierarchy> {
    let mounts = parse_mountinfo(mountinfo)?;
    let mut controllers = BTreeMap::new();
    let mut v2_own = None;
    for (n, line) in proc_self_cgroup.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        // "hierarchy-ID:controller-list:cgroup-path"; the path may itself hold ':'.
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(list), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Invalid(format!(
                "parse /proc/self/cgroup line {}: {line:?}",
                n + 1
            )));
        };
        if list.is_empty() {
            v2_own = Some(path);
            continue;
        }
        let names: Vec<&str> = list.split(',').collect();
        // A hierarchy may be mounted more than once (bind mounts); take the first mount whose
        // root contains our cgroup.
        let found = mounts.iter().find_map(|m| {
            let opts: Vec<&str> = m.super_options.split(',').collect();
            let matches = m.fstype == "cgroup" && names.iter().all(|c| opts.contains(c));
            let own = relative_to_root(path, &m.root)?;
            matches.then(|| V1Mount {
                mount: m.point.clone(),
                own,
            })
        });
        if let Some(found) = found {
            for name in names.iter().filter(|c| !c.starts_with("name=")) {
                controllers.insert(name.to_string(), found.clone());
            }
        }
    }
    if V1_CONTROLLERS.iter().any(|c| controllers.contains_key(*c)) {
        return Ok(Hierarchy::V1 { controllers });
    }
    if let Some(path) = v2_own {
        let found = mounts.iter().find_map(|m| {
            let own = relative_to_root(path, &m.root)?;
            (m.fstype == "cgroup2").then(|| Hierarchy::V2 {
                mount: m.point.clone(),
                own,
            })
        });
        if let Some(h) = found {
            return Ok(h);
        }
    }
    Err(Error::Unavailable(
        "no cgroup hierarchy with memory, cpu, pids or blkio is mounted".into(),
    ))
}

struct MountEntry {
    root: String,
    point: PathBuf,
    fstype: String,
    super_options: String,
}

/// proc(5): "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue".
fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = || {
            Error::Invalid(format!(
                "parse /proc/self/mountinfo line {}: {line:?}",
                n + 1
            ))
        };
        let (left, right) = line.split_once(" - ").ok_or_else(bad)?;
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 6 || right.len() < 3 {
            return Err(bad());
        }
        out.push(MountEntry {
            root: unescape_octal(left[3]),
            point: PathBuf::from(unescape_octal(left[4])),
            fstype: right[0].to_string(),
            super_options: right[2].to_string(),
        });
    }
    Ok(out)
}

/// Mountinfo writes space, tab, newline and backslash as `\040`, `\011`, `\012`, `\134`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Our cgroup `path` relative to a mount of the hierarchy whose root is `root`; None when the
/// mount does not contain it (another part of the hierarchy, or a cgroup namespace we sit
/// outside of, where the kernel shows `/..` paths).
fn relative_to_root(path: &str, root: &str) -> Option<PathBuf> {
    let rel = Path::new(path).strip_prefix(root).ok()?;
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(rel.to_path_buf())
}

/// Where a container's cgroup lives, as kept in its state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub v2: bool,
    pub dirs: Vec<PathBuf>,
}

/// The cgroup of one container. Dropping the one `create` made destroys it; one reopened
/// from a record is destroyed only by an explicit `destroy`.
#[derive(Debug)]
pub struct Cgroup {
    manager: Manager,
    owned: bool,
}

#[derive(Debug)]
enum Manager {
    V1(v1::Manager),
    V2(v2::Manager),
}

impl Cgroup {
    /// Create the container's cgroup `minibox/<id>` and apply `limits` (placement: see the
    /// module header). On failure nothing is left behind.
    pub fn create(h: &Hierarchy, id: &str, limits: &Limits) -> Result<Cgroup> {
        check_id(id)?;
        limits.validate()?;
        let manager = match h {
            Hierarchy::V1 { controllers } => {
                Manager::V1(v1::Manager::create(controllers, id, limits)?)
            }
            Hierarchy::V2 { mount, own } => {
                Manager::V2(v2::Manager::create(mount, own, id, limits)?)
            }
        };
        Ok(Cgroup {
            manager,
            owned: true,
        })
    }

    /// Move process `pid` into the cgroup (every hierarchy on v1).
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        match &self.manager {
            Manager::V1(m) => m.add_pid(pid),
            Manager::V2(m) => m.add_pid(pid),
        }
    }

    /// The cgroup's directory on v2, for clone3's `CLONE_INTO_CGROUP` (open it
    /// `O_DIRECTORY|O_PATH`); None on v1 or once destroyed.
    pub fn v2_dir(&self) -> Option<&Path> {
        match &self.manager {
            Manager::V1(_) => None,
            Manager::V2(m) => m.dir(),
        }
    }

    /// Whether the kernel's OOM killer killed a process in this cgroup.
    pub fn oom_killed(&self) -> bool {
        match &self.manager {
            Manager::V1(m) => m.oom_killed(),
            Manager::V2(m) => m.oom_killed(),
        }
    }

    /// CPU time used by the cgroup so far, in µs.
    pub fn cpu_usage_usec(&self) -> Option<u64> {
        match &self.manager {
            Manager::V1(m) => m.cpu_usage_usec(),
            Manager::V2(m) => m.cpu_usage_usec(),
        }
    }

    /// The memory limit in force, in bytes; None when unlimited or unknown.
    pub fn memory_limit(&self) -> Option<u64> {
        match &self.manager {
            Manager::V1(m) => m.memory_limit(),
            Manager::V2(m) => m.memory_limit(),
        }
    }

    /// Kill what is left in the cgroup and remove it. Idempotent: once it succeeded, later
    /// calls do nothing; after a failure, the next call tries again.
    pub fn destroy(&mut self) -> Result<()> {
        match &mut self.manager {
            Manager::V1(m) => m.destroy(),
            Manager::V2(m) => m.destroy(),
        }
    }

    /// What another process needs to join this cgroup or remove it later (`mrun exec`, `mrun
    /// rm` of a container whose monitor died): the directories it lives in.
    pub fn record(&self) -> Record {
        match &self.manager {
            Manager::V1(m) => Record {
                v2: false,
                dirs: m.dirs().map(Path::to_path_buf).collect(),
            },
            Manager::V2(m) => Record {
                v2: true,
                dirs: m.dir().into_iter().map(Path::to_path_buf).collect(),
            },
        }
    }

    /// The cgroup a `record` describes, made by another process. Its directories must lie
    /// be `minibox/<id>` cgroups: a damaged state file cannot point it at another cgroup.
    pub fn reopen(r: &Record) -> Result<Cgroup> {
        for d in &r.dirs {
            let parent_ok = d
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "minibox");
            if !parent_ok {
                return Err(Error::Invalid(format!(
                    "{} is not a minibox cgroup",
                    d.display()
                )));
            }
        }
        let manager = if r.v2 {
            match r.dirs.first() {
                Some(d) => Manager::V2(v2::Manager::reopen(d.clone())),
                None => Manager::V1(v1::Manager::reopen(vec![])),
            }
        } else {
            Manager::V1(v1::Manager::reopen(r.dirs.clone()))
        };
        Ok(Cgroup {
            manager,
            owned: false,
        })
    }

    /// Where `create` would have put container `id`'s cgroup, to remove what a killed
    /// process left without a record (a builder step). Nothing is created.
    pub fn leftover(h: &Hierarchy, id: &str) -> Result<Cgroup> {
        check_id(id)?;
        let dirs = match h {
            Hierarchy::V1 { controllers } => v1::plan(controllers, id)
                .into_iter()
                .map(|(path, _)| path)
                .collect(),
            Hierarchy::V2 { mount, own } => vec![mount.join(own).join("minibox").join(id)],
        };
        Cgroup::reopen(&Record {
            v2: matches!(h, Hierarchy::V2 { .. }),
            dirs,
        })
    }

    #[cfg(test)]
    fn dirs(&self) -> Vec<PathBuf> {
        match &self.manager {
            Manager::V1(m) => m.dirs().map(Path::to_path_buf).collect(),
            Manager::V2(m) => m.dir().into_iter().map(Path::to_path_buf).collect(),
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.owned {
            let _ = self.destroy();
        }
    }
}

/// A container id becomes one directory name.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\0']) {
        return Err(Error::Invalid(format!(
            "container id {id:?} cannot name a cgroup"
        )));
    }
    Ok(())
}

/// Write `value` to an existing cgroup file. Never O_CREAT: cgroupfs creates no files, and
/// a missing one should read "no such file or directory", not "permission denied".
fn write(path: &Path, value: &str) -> Result<()> {
    write_lines(path, &[value.to_string()])
}

/// Write each line with its own write(2) through one open file: files such as `io.max` and
/// `blkio.throttle.*_bps_device` take one device per write, and a plain file (the tests'
/// fake cgroupfs) then holds all the lines.
fn write_lines(path: &Path, lines: &[String]) -> Result<()> {
    let failed = |value: &str, source| Error::Write {
        value: value.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| failed(lines.first().map_or("", |l| l.trim_end()), e))?;
    for line in lines {
        #[cfg(test)]
        fake::record(path, line.trim_end());
        f.write_all(line.as_bytes())
            .map_err(|e| failed(line.trim_end(), e))?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

/// The number after `key` in a flat keyed file ("oom_kill 3" lines: memory.events,
/// memory.oom_control, cpu.stat).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The tokens of a space-separated list such as `cgroup.controllers` (a leading `+` dropped,
/// so a fake `cgroup.subtree_control` holding what was written reads the same).
fn tokens(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|t| t.trim_start_matches('+').to_string())
        .collect()
}

/// mkdir that accepts an existing directory (another container made it first).
fn ensure_dir(dir: &Path) -> Result<()> {
    match mkdir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(Error::io("create cgroup", dir, e))
        }
        _ => Ok(()),
    }
}

/// mkdir(2) of a cgroup; the kernel gives it its interface files (in tests, the fake does).
fn mkdir(dir: &Path) -> io::Result<()> {
    fs::create_dir(dir)?;
    #[cfg(test)]
    fake::after_mkdir(dir);
    Ok(())
}

/// Make `dir` as a new, empty cgroup, replacing a leftover one that holds no process.
fn make_fresh(dir: &Path) -> Result<()> {
    match mkdir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let mut pids = Vec::new();
            procs_under(dir, &mut pids)?;
            if !pids.is_empty() {
                return Err(Error::InUse(dir.to_path_buf()));
            }
            remove_tree(dir, Instant::now() + DESTROY_BUDGET)?;
            mkdir(dir).map_err(|e| Error::io("create cgroup", dir, e))
        }
        Err(e) => Err(Error::io("create cgroup", dir, e)),
    }
}

/// The pids in `dir`'s `cgroup.procs` and in those of its descendants (a container may have
/// made child cgroups); nothing when `dir` is gone.
fn procs_under(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(text) => out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", &procs, e)),
    }
    for sub in subdirs(dir)? {
        procs_under(&sub, out)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read directory", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// SIGKILL every process in `dirs` (and their descendants) until none is left or the
/// deadline passes. Repeated because a process may fork between our read and our kill.
fn kill_all(dirs: &[&Path], deadline: Instant) -> Result<()> {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let mut pause = Duration::from_millis(1);
    loop {
        let mut pids = Vec::new();
        for dir in dirs {
            procs_under(dir, &mut pids)?;
        }
        // Never ourselves: if the caller joined the cgroup, rmdir reports EBUSY instead.
        pids.retain(|&p| p != me && p > 0);
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Unkillable(dirs[0].to_path_buf()));
        }
        for pid in pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                // ESRCH: it exited meanwhile.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// rmdir `dir` and the cgroups below it, deepest first; gone already is fine. EBUSY is
/// retried until the deadline: killed tasks leave the cgroup only once they finish exiting.
fn remove_tree(dir: &Path, deadline: Instant) -> Result<()> {
    for sub in subdirs(dir)? {
        remove_tree(&sub, deadline)?;
    }
    #[cfg(test)]
    fake::before_rmdir(dir);
    let mut pause = Duration::from_millis(1);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(Error::io("remove cgroup", dir, e)),
        }
    }
}

fn uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Bytes from Docker's size strings (`--memory 5m`): a number, optionally with a fraction,
/// then an optional unit b, k, m, g, t or p (1024-based, any case, optionally followed by
/// `b` or `ib`: "512kb", "10MB", "1GiB"), as go-units' `RAMInBytes` reads them.
pub fn parse_bytes(s: &str) -> Result<u64> {
    parse_size(s).map_err(|reason| Error::Invalid(format!("invalid size {s:?}: {reason}")))
}

/// Bytes per second from Docker's rate strings (`--device-write-bps /dev/sda:1mb`); the same
/// grammar as [`parse_bytes`].
pub fn parse_rate(s: &str) -> Result<u64> {
    parse_size(s).map_err(|reason| Error::Invalid(format!("invalid rate {s:?}: {reason}")))
}

fn parse_size(s: &str) -> std::result::Result<u64, String> {
    const EXPECTED: &str = "expected a number and an optional unit (b, k, m, g)";
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        u => match u.strip_suffix("ib").or(u.strip_suffix('b')).unwrap_or(u) {
            "k" => 10,
            "m" => 20,
            "g" => 30,
            "t" => 40,
            "p" => 50,
            _ => return Err(EXPECTED.into()),
        },
    };
    let too_large = || "too large".to_string();
    match num.split_once('.') {
        None => num
            .parse::<u64>()
            .map_err(|_| EXPECTED.to_string())?
            .checked_mul(1 << shift)
            .filter(|&v| v <= i64::MAX as u64)
            .ok_or_else(too_large),
        Some((int, frac)) => {
            if int.is_empty() || frac.is_empty() || frac.contains('.') {
                return Err(EXPECTED.into());
            }
            let v = num.parse::<f64>().map_err(|_| EXPECTED.to_string())? * (1u64 << shift) as f64;
            // Truncated like Docker's int64(size * multiplier).
            (v < i64::MAX as f64)
                .then_some(v as u64)
                .ok_or_else(too_large)
        }
    }
}

/// The (major, minor) numbers of block device `path` (symlinks followed, as Docker does for
/// `--device-read-bps`). A partition gives its own numbers: the kernel throttles whole disks
/// only, and the write of such a limit then fails naming the file.
pub fn device_numbers(path: &Path) -> Result<(u32, u32)> {
    let meta = fs::metadata(path).map_err(|e| Error::io("stat", path, e))?;
    if !meta.file_type().is_block_device() {
        return Err(Error::Invalid(format!(
            "{} is not a block device",
            path.display()
        )));
    }
    Ok((
        rustix::fs::major(meta.rdev()),
        rustix::fs::minor(meta.rdev()),
    ))
}

/// A [`DeviceRate`] from Docker's `DEVICE:RATE` (`/dev/sda:1mb`).
pub fn parse_device_rate(s: &str) -> Result<DeviceRate> {
    let Some((dev, rate)) = s.rsplit_once(':') else {
        return Err(Error::Invalid(format!(
            "invalid device rate {s:?}: expected DEVICE:RATE, such as /dev/sda:1mb"
        )));
    };
    let (major, minor) = device_numbers(Path::new(dev))?;
    Ok(DeviceRate {
        major,
        minor,
        bytes_per_sec: parse_rate(rate)?,
    })
}

/// A fake cgroupfs for the tests: a temp dir whose hierarchy roots hold a `fake.files` file
/// listing the interface files ("name=initial text" per line) that the fake "kernel" gives
/// each new cgroup below, and a journal of every write, in order, per test thread. Real
/// cgroupfs paths have no `fake.files` above them, so the hooks leave them alone.
/// Docker's default devices list as `devices.allow` lines, for the tests.
#[cfg(test)]
pub(crate) const DEFAULT_ALLOWED_LINES: [&str; 12] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

#[cfg(test)]
pub(crate) mod fake {
    use std::cell::RefCell;
    use std::fs;
    use std::path::{Path, PathBuf};

    thread_local! {
        static JOURNAL: RefCell<Vec<(PathBuf, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub fn record(path: &Path, value: &str) {
        JOURNAL.with(|j| j.borrow_mut().push((path.to_path_buf(), value.to_string())));
    }

    /// The writes since the last call, as (path, value).
    pub fn take() -> Vec<(PathBuf, String)> {
        JOURNAL.with(|j| std::mem::take(&mut *j.borrow_mut()))
    }

    fn spec_above(dir: &Path) -> Option<String> {
        dir.ancestors()
            .skip(1)
            .find_map(|a| fs::read_to_string(a.join("fake.files")).ok())
    }

    /// Make a fake hierarchy root at `root` whose new cgroups get `files`.
    pub fn hierarchy(root: &Path, files: &[(&str, &str)]) {
        fs::create_dir_all(root).unwrap();
        let spec: Vec<String> = files.iter().map(|(n, t)| format!("{n}={t}")).collect();
        fs::write(
            root.join("fake.files"),
            spec.join(
                "
",
            ),
        )
        .unwrap();
        for (name, text) in files {
            fs::write(root.join(name), text).unwrap();
        }
    }

    pub fn after_mkdir(dir: &Path) {
        if let Some(spec) = spec_above(dir) {
            for line in spec.lines() {
                let (name, text) = line.split_once('=').unwrap();
                fs::write(dir.join(name), text).unwrap();
            }
        }
    }

    /// rmdir of a cgroup takes its interface files along; a plain directory needs them gone.
    pub fn before_rmdir(dir: &Path) {
        if spec_above(dir).is_some() {
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command, Stdio};

    /// This machine's /proc/self/mountinfo: cgroup v1 hybrid, with a cgroup2 at
    /// /sys/fs/cgroup/unified that holds no controller of ours.
    const HYBRID_MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334492k,nr_inodes=3083623,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684092k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
28 27 0:25 / /mnt/sandboxing/model_tools_env/v1/python ro,nosuid,nodev,relatime - tmpfs model_tools_unavailable ro,size=4k,mode=755
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684092k
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// This machine's /proc/self/cgroup: the memory hierarchy confines us to a child cgroup.
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/8a111e98d32f7c77d4c4c1ae2e3978f1
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    /// A pure v2 machine (systemd, a user's terminal).
    const V2_MOUNTINFO: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
27 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
28 22 0:5 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
";
    const V2_CGROUP: &str =
        "0::/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope\n";

    fn v1(mount: &str, own: &str) -> V1Mount {
        V1Mount {
            mount: mount.into(),
            own: own.into(),
        }
    }

    #[test]
    fn detect_from_this_machine_is_v1_with_unified_ignored() {
        let Hierarchy::V1 { controllers } = detect_from(HYBRID_MOUNTINFO, HYBRID_CGROUP).unwrap()
        else {
            panic!("expected v1");
        };
        let memory = v1(
            "/sys/fs/cgroup/memory",
            "process_api/8a111e98d32f7c77d4c4c1ae2e3978f1",
        );
        assert_eq!(controllers["memory"], memory);
        assert_eq!(controllers["cpu"], v1("/sys/fs/cgroup/cpu", ""));
        assert_eq!(controllers["cpuacct"], v1("/sys/fs/cgroup/cpuacct", ""));
        assert_eq!(controllers["pids"], v1("/sys/fs/cgroup/pids", ""));
        assert_eq!(controllers["blkio"], v1("/sys/fs/cgroup/blkio", ""));
        let names: Vec<&str> = controllers.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"]
        );
    }

    #[test]
    fn detect_from_comounted_cpu_cpuacct_shares_one_mount() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        let cgroup = "3:memory:/docker/abc/inner\n2:cpu,cpuacct:/docker/abc\n0::/\n";
        let Hierarchy::V1 { controllers } = detect_from(mountinfo, cgroup).unwrap() else {
            panic!("expected v1");
        };
        let cpu = v1("/sys/fs/cgroup/cpu,cpuacct", "docker/abc");
        assert_eq!(controllers["cpu"], cpu);
        assert_eq!(controllers["cpuacct"], cpu);
        // Mounted from /docker/abc: our cgroup is relative to that root.
        assert_eq!(controllers["memory"], v1("/sys/fs/cgroup/memory", "inner"));
    }

    #[test]
    fn detect_from_pure_v2() {
        assert_eq!(
            detect_from(V2_MOUNTINFO, V2_CGROUP).unwrap(),
            Hierarchy::V2 {
                mount: "/sys/fs/cgroup".into(),
                own: "user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope"
                    .into(),
            }
        );
    }

    #[test]
    fn detect_from_v2_in_a_cgroup_namespace_and_escaped_mount_point() {
        let mountinfo = "40 30 0:26 / /run/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            detect_from(mountinfo, "0::/\n").unwrap(),
            Hierarchy::V2 {
                mount: "/run/my cgroup".into(),
                own: "".into(),
            }
        );
        // Outside the namespace's root the kernel shows "/.."; that mount cannot reach us.
        assert!(matches!(
            detect_from(mountinfo, "0::/../sibling\n"),
            Err(Error::Unavailable(_))
        ));
    }

    #[test]
    fn detect_from_without_cgroups_is_unavailable() {
        let err = detect_from("22 1 259:2 / / rw - ext4 /dev/sda1 rw\n", "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cgroups unavailable: no cgroup hierarchy with memory, cpu, pids or blkio is mounted"
        );
    }

    #[test]
    fn detect_from_rejects_a_malformed_line() {
        let err = detect_from("22 1 259:2 / /\n", "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "parse /proc/self/mountinfo line 1: \"22 1 259:2 / /\""
        );
    }

    #[test]
    fn detect_reads_this_process() {
        // Whatever this machine runs, detect must describe it rather than fail.
        match detect() {
            Ok(Hierarchy::V1 { controllers }) => assert!(!controllers.is_empty()),
            Ok(Hierarchy::V2 { mount, .. }) => {
                assert!(mount.join("cgroup.controllers").exists())
            }
            Err(e) => println!("skipped: {e}"),
        }
    }

    #[test]
    fn sizes_and_rates_read_like_docker() {
        for (s, want) in [
            ("1048576", 1 << 20),
            ("0", 0),
            ("1b", 1),
            ("512k", 512 << 10),
            ("512kb", 512 << 10),
            ("1mb", 1 << 20),
            ("10MB", 10 << 20),
            ("5m", 5 << 20),
            ("1MiB", 1 << 20),
            ("1 GB", 1 << 30),
            ("2g", 2 << 30),
            ("1t", 1 << 40),
            ("1.5m", 3 << 19),
            (" 7K ", 7 << 10),
        ] {
            assert_eq!(parse_bytes(s).unwrap(), want, "{s:?}");
            assert_eq!(parse_rate(s).unwrap(), want, "{s:?}");
        }
        for s in [
            "", "m", "-1", "1x", "1.m", ".5m", "1.2.3m", "1 2", "1ib", "1kbb", "9e3",
        ] {
            assert!(parse_bytes(s).is_err(), "{s:?}");
        }
        assert_eq!(
            parse_bytes("5q").unwrap_err().to_string(),
            "invalid size \"5q\": expected a number and an optional unit (b, k, m, g)"
        );
        assert_eq!(
            parse_rate("99999999999p").unwrap_err().to_string(),
            "invalid rate \"99999999999p\": too large"
        );
    }

    #[test]
    fn device_numbers_require_a_block_device() {
        assert_eq!(
            device_numbers(Path::new("/dev/null"))
                .unwrap_err()
                .to_string(),
            "/dev/null is not a block device"
        );
        assert_eq!(
            device_numbers(Path::new("/nonexistent/sda"))
                .unwrap_err()
                .to_string(),
            "stat /nonexistent/sda: no such file or directory"
        );
        assert!(parse_device_rate("/dev/null").is_err());
        // Compare with the kernel's own "MAJ:MIN" for the first block device in /sys.
        let Some(entry) = fs::read_dir("/sys/class/block")
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| Path::new("/dev").join(e.file_name()).exists())
        else {
            println!("skipped: no block device node in /dev");
            return;
        };
        let want = fs::read_to_string(entry.path().join("dev")).unwrap();
        let node = Path::new("/dev").join(entry.file_name());
        let (major, minor) = device_numbers(&node).unwrap();
        assert_eq!(format!("{major}:{minor}"), want.trim());
        let rate = parse_device_rate(&format!("{}:1mb", node.display())).unwrap();
        assert_eq!(
            rate,
            DeviceRate {
                major,
                minor,
                bytes_per_sec: 1 << 20
            }
        );
    }

    #[test]
    fn limits_is_empty_when_nothing_restricts() {
        assert!(Limits::default().is_empty());
        let unlimited = Limits {
            pids: Some(-1),
            write_bps: vec![DeviceRate {
                major: 8,
                minor: 0,
                bytes_per_sec: 0,
            }],
            ..Limits::default()
        };
        assert!(unlimited.is_empty());
        for limits in [
            Limits {
                memory: Some(5 << 20),
                ..Limits::default()
            },
            Limits {
                cpus: Some(0.5),
                ..Limits::default()
            },
            Limits {
                pids: Some(20),
                ..Limits::default()
            },
            Limits {
                read_bps: vec![DeviceRate {
                    major: 8,
                    minor: 0,
                    bytes_per_sec: 1,
                }],
                ..Limits::default()
            },
        ] {
            assert!(!limits.is_empty(), "{limits:?}");
        }
    }

    #[test]
    fn create_refuses_bad_ids_and_values_before_touching_anything() {
        let h = Hierarchy::V2 {
            mount: "/nonexistent/cgroup".into(),
            own: "".into(),
        };
        for id in ["", ".", "..", "a/b", "../../etc"] {
            let err = Cgroup::create(&h, id, &Limits::default()).unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{id:?}: {err}");
        }
        let tiny = Limits {
            memory: Some(4096),
            ..Limits::default()
        };
        assert_eq!(
            Cgroup::create(&h, "c1", &tiny).unwrap_err().to_string(),
            "memory limit 4096 bytes is below the minimum of 1 MiB"
        );
        for cpus in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let limits = Limits {
                cpus: Some(cpus),
                ..Limits::default()
            };
            assert!(Cgroup::create(&h, "c1", &limits).is_err(), "{cpus}");
        }
    }

    #[test]
    fn keyed_files_are_read_by_key() {
        let stat = "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n";
        assert_eq!(keyed(stat, "usage_usec"), Some(1234));
        assert_eq!(keyed(stat, "usage"), None);
        assert_eq!(keyed("oom_kill x\n", "oom_kill"), None);
    }

    /// Set when the test below re-runs itself as uid 65534.
    const AS_NOBODY: &str = "MINIBOX_CGROUP_TEST_AS_NOBODY";

    #[test]
    fn unprivileged_create_is_unavailable_with_a_reason() {
        let name = "cgroup::tests::unprivileged_create_is_unavailable_with_a_reason";
        if rustix::process::geteuid().is_root() && std::env::var_os(AS_NOBODY).is_none() {
            use std::os::unix::process::CommandExt;
            // std drops the supplementary groups before setuid when run as root.
            let out = Command::new(std::env::current_exe().unwrap())
                .args([name, "--exact", "--nocapture", "--test-threads=1"])
                .env(AS_NOBODY, "1")
                .uid(65534)
                .gid(65534)
                .output();
            let out = match out {
                Ok(out) => out,
                Err(e) if std::env::var_os("CI").is_none() => {
                    println!("skipped: run the test binary as uid 65534: {e}");
                    return;
                }
                Err(e) => panic!("run the test binary as uid 65534: {e}"),
            };
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "as uid 65534: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            print!("{stdout}");
            return;
        }
        let h = match detect() {
            Ok(h) => h,
            Err(e) => {
                println!("skipped: {e}");
                return;
            }
        };
        match (
            &h,
            Cgroup::create(&h, &test_id("nobody"), &Limits::default()),
        ) {
            (Hierarchy::V1 { .. }, Err(Error::Unavailable(reason))) => assert_eq!(
                reason,
                format!("cgroup v1 hierarchies are not writable by uid {}", uid())
            ),
            (Hierarchy::V2 { .. }, Err(Error::Unavailable(reason))) => {
                println!("unavailable: {reason}")
            }
            // A v2 subtree delegated to this user (systemd's user@UID.service).
            (Hierarchy::V2 { mount, .. }, Ok(mut cg)) => {
                assert!(cg.v2_dir().unwrap().starts_with(mount));
                cg.destroy().unwrap();
            }
            (_, other) => panic!("as uid {}: {other:?}", uid()),
        }
    }

    // ---- root only: this machine's real cgroupfs ----

    /// Root, or `skipped: …` (and false). Under CI, which runs as root, a skip is a failure.
    fn root_or_skip() -> Option<Hierarchy> {
        let reason = if !rustix::process::geteuid().is_root() {
            "not root".to_string()
        } else {
            match detect() {
                Ok(h) => return Some(h),
                Err(e) => e.to_string(),
            }
        };
        if std::env::var_os("CI").is_some() {
            panic!("CI must run this test: {reason}");
        }
        println!("skipped: {reason}");
        None
    }

    fn test_id(name: &str) -> String {
        format!("test-{}-{name}", std::process::id())
    }

    /// A child process killed by its pid and reaped when the test ends, pass or fail.
    struct Guard(Child);

    impl Guard {
        fn spawn(cmd: &mut Command) -> Guard {
            Guard(cmd.spawn().unwrap())
        }

        fn pid(&self) -> i32 {
            self.0.id() as i32
        }

        /// Its exit status, waiting at most `secs`.
        fn wait(&mut self, secs: u64) -> std::process::ExitStatus {
            let deadline = Instant::now() + Duration::from_secs(secs);
            loop {
                if let Some(status) = self.0.try_wait().unwrap() {
                    return status;
                }
                assert!(
                    Instant::now() < deadline,
                    "pid {} still running",
                    self.pid()
                );
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Removes cgroup directories at the end of a test that let go of its `Cgroup`.
    struct Sweep(Vec<PathBuf>);

    impl Drop for Sweep {
        fn drop(&mut self) {
            let deadline = Instant::now() + DESTROY_BUDGET;
            let dirs: Vec<&Path> = self.0.iter().map(PathBuf::as_path).collect();
            let _ = kill_all(&dirs, deadline);
            for d in &self.0 {
                let _ = remove_tree(d, deadline);
            }
        }
    }

    fn file(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(name).display()))
            .trim()
            .to_string()
    }

    /// The directory holding `v1_file` (v1) or the one v2 directory.
    fn dir_with(cg: &Cgroup, v1_file: &str) -> PathBuf {
        cg.dirs()
            .into_iter()
            .find(|d| cg.v2_dir().is_some() || d.join(v1_file).exists())
            .unwrap_or_else(|| panic!("no cgroup directory has {v1_file}"))
    }

    #[test]
    fn root_limits_reach_the_kernel_and_destroy_kills_and_removes() {
        let Some(h) = root_or_skip() else { return };
        let limits = Limits {
            memory: Some(5 << 20),
            cpus: Some(0.1),
            pids: Some(20),
            ..Limits::default()
        };
        let mut cg = Cgroup::create(&h, &test_id("limits"), &limits).unwrap();
        let dirs = cg.dirs();
        if cg.v2_dir().is_some() {
            let d = &dirs[0];
            assert_eq!(file(d, "memory.max"), "5242880");
            assert_eq!(file(d, "cpu.max"), "10000 100000");
            assert_eq!(file(d, "pids.max"), "20");
        } else {
            let memory = dir_with(&cg, "memory.limit_in_bytes");
            assert_eq!(file(&memory, "memory.limit_in_bytes"), "5242880");
            if memory.join("memory.memsw.limit_in_bytes").exists() {
                assert_eq!(file(&memory, "memory.memsw.limit_in_bytes"), "5242880");
            }
            let cpu = dir_with(&cg, "cpu.cfs_quota_us");
            assert_eq!(file(&cpu, "cpu.cfs_quota_us"), "10000");
            assert_eq!(file(&cpu, "cpu.cfs_period_us"), "100000");
            assert_eq!(file(&dir_with(&cg, "pids.max"), "pids.max"), "20");
            // Accounting hierarchies exist even without a limit of their own.
            dir_with(&cg, "cpuacct.usage");
        }
        assert_eq!(cg.memory_limit(), Some(5 << 20));

        let mut sleep = Guard::spawn(Command::new("sleep").arg("30"));
        cg.add_pid(sleep.pid()).unwrap();
        for d in &dirs {
            let procs = file(d, "cgroup.procs");
            assert!(
                procs.lines().any(|l| l == sleep.pid().to_string()),
                "{}: {procs:?}",
                d.display()
            );
        }
        assert!(cg.cpu_usage_usec().is_some());
        assert!(!cg.oom_killed());

        cg.destroy().unwrap();
        assert_eq!(sleep.wait(5).signal(), Some(libc::SIGKILL));
        for d in &dirs {
            assert!(!d.exists(), "{} still exists", d.display());
        }
        assert_eq!(cg.v2_dir(), None);
        cg.destroy().unwrap();
    }

    #[test]
    fn root_the_cgroup_is_in_every_hierarchy_and_its_devices_rules_bite() {
        let Some(h) = root_or_skip() else { return };
        let limits = Limits {
            // The loop control node, read-only: a node outside Docker's list.
            devices: vec![DeviceRule::node(
                DeviceKind::Char,
                10,
                237,
                DeviceAccess::READ,
            )],
            ..Limits::default()
        };
        let cg = Cgroup::create(&h, &test_id("devices"), &limits).unwrap();
        if let Hierarchy::V1 { controllers } = &h {
            let mounts: std::collections::BTreeSet<&Path> =
                controllers.values().map(|m| m.mount.as_path()).collect();
            assert_eq!(cg.dirs().len(), mounts.len(), "{:?}", cg.dirs());
            for m in mounts {
                assert!(
                    cg.dirs().iter().any(|d| d.starts_with(m)),
                    "{}",
                    m.display()
                );
            }
            if controllers.contains_key("cpuset") {
                let d = dir_with(&cg, "cpuset.cpus");
                let parent = d.parent().unwrap();
                assert_eq!(file(&d, "cpuset.cpus"), file(parent, "cpuset.cpus"));
                assert_eq!(file(&d, "cpuset.mems"), file(parent, "cpuset.mems"));
            }
            let list = file(&dir_with(&cg, "devices.list"), "devices.list");
            let mut got: Vec<&str> = list.lines().collect();
            let mut want: Vec<&str> = DEFAULT_ALLOWED_LINES.to_vec();
            want.push("c 10:237 r");
            got.sort();
            want.sort();
            assert_eq!(got, want);
        }
        // A shell in the cgroup: /dev/null opens; /dev/kmsg (1:11, not allowed) does not;
        // /dev/loop-control opens for reading only.
        let mut sh = Guard::spawn(
            Command::new("sh")
                .args([
                    "-c",
                    "read go; true </dev/null && echo null; true </dev/kmsg || echo kmsg-denied; \
                     true </dev/loop-control && echo lc-read; true >>/dev/loop-control || echo lc-write-denied",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        cg.add_pid(sh.pid()).unwrap();
        sh.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
        assert!(sh.wait(10).success());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut sh.0.stdout.take().unwrap(), &mut out).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut sh.0.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(
            out, "null\nkmsg-denied\nlc-read\nlc-write-denied\n",
            "{err}"
        );
        assert_eq!(err.matches("Operation not permitted").count(), 2, "{err}");
    }

    #[test]
    fn root_memory_limit_is_enforced_and_the_oom_kill_reported() {
        let Some(h) = root_or_skip() else { return };
        let limits = Limits {
            memory: Some(5 << 20),
            ..Limits::default()
        };
        let cg = Cgroup::create(&h, &test_id("oom"), &limits).unwrap();
        // The shell waits for a line, so it is in the cgroup before anything allocates;
        // tail keeps the whole newline-free input in memory.
        let mut sh = Guard::spawn(
            Command::new("sh")
                .args([
                    "-c",
                    "read go; head -c 67108864 /dev/zero | tail -n 1 >/dev/null",
                ])
                .stdin(Stdio::piped()),
        );
        cg.add_pid(sh.pid()).unwrap();
        sh.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let status = sh.wait(30);
        assert!(
            !status.success(),
            "64 MiB fit in a 5 MiB cgroup: {status:?}"
        );
        assert!(cg.oom_killed(), "no oom kill counted (exit {status:?})");
    }

    #[test]
    fn root_a_leftover_empty_cgroup_is_made_afresh() {
        let Some(h) = root_or_skip() else { return };
        let id = test_id("stale");
        let pids20 = Limits {
            pids: Some(20),
            ..Limits::default()
        };
        let crashed = Cgroup::create(&h, &id, &pids20).unwrap();
        let _sweep = Sweep(crashed.dirs());
        std::mem::forget(crashed);

        let mut cg = Cgroup::create(&h, &id, &Limits::default()).unwrap();
        assert_eq!(file(&dir_with(&cg, "pids.max"), "pids.max"), "max");
        cg.destroy().unwrap();
    }

    #[test]
    fn root_a_cgroup_in_use_is_refused_and_left_alone() {
        let Some(h) = root_or_skip() else { return };
        let id = test_id("inuse");
        let first = Cgroup::create(&h, &id, &Limits::default()).unwrap();
        let mut sleep = Guard::spawn(Command::new("sleep").arg("30"));
        first.add_pid(sleep.pid()).unwrap();

        let err = Cgroup::create(&h, &id, &Limits::default()).unwrap_err();
        assert!(matches!(err, Error::InUse(_)), "{err}");
        assert!(err
            .to_string()
            .ends_with("already exists and still holds processes"));
        assert!(
            sleep.0.try_wait().unwrap().is_none(),
            "the sleep was killed"
        );
        for d in first.dirs() {
            assert!(d.exists(), "{} was removed", d.display());
        }
        drop(first);
        assert_eq!(sleep.wait(5).signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn root_device_rate_reaches_the_kernel() {
        let Some(h) = root_or_skip() else { return };
        // The disk under / (its partition would be refused: throttling is per whole disk).
        let dev = fs::metadata("/").unwrap().dev();
        let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
        if Path::new(&format!("/sys/dev/block/{major}:{minor}/partition")).exists()
            || !Path::new(&format!("/sys/dev/block/{major}:{minor}")).exists()
        {
            println!("skipped: / is not on a whole block disk ({major}:{minor})");
            return;
        }
        let rate = DeviceRate {
            major,
            minor,
            bytes_per_sec: 1 << 20,
        };
        let limits = Limits {
            read_bps: vec![rate],
            write_bps: vec![DeviceRate {
                bytes_per_sec: 2 << 20,
                ..rate
            }],
            ..Limits::default()
        };
        let cg = Cgroup::create(&h, &test_id("io"), &limits).unwrap();
        if let Some(d) = cg.v2_dir() {
            let io = file(d, "io.max");
            assert!(
                io.contains(&format!("{major}:{minor} rbps=1048576 wbps=2097152")),
                "{io}"
            );
        } else {
            let d = dir_with(&cg, "blkio.throttle.read_bps_device");
            assert_eq!(
                file(&d, "blkio.throttle.read_bps_device"),
                format!("{major}:{minor} 1048576")
            );
            assert_eq!(
                file(&d, "blkio.throttle.write_bps_device"),
                format!("{major}:{minor} 2097152")
            );
        }
    }
}
