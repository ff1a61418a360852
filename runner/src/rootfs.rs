//! The container's filesystem as a plan: the overlay mount, then every mount, directory and
//! link inside the new root, in order, as C strings prepared by the parent. The child walks
//! the plan (`child::setup`) without allocating. Destinations are resolved inside the root
//! with openat2(RESOLVE_IN_ROOT), so a symlink in the image can never send a mount out of
//! it (CVE-2021-30465), and each mount goes onto the resolved fd through /proc/self/fd.

use crate::error::{Error, Result};
use crate::spec::{MountKind, Spec};
use crate::syscall::Sys;
use std::ffi::CString;
use std::path::Path;

const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_NOSUID: u64 = libc::MS_NOSUID;
const MS_NODEV: u64 = libc::MS_NODEV;
const MS_NOEXEC: u64 = libc::MS_NOEXEC;
const MS_BIND: u64 = libc::MS_BIND;
const MS_REC: u64 = libc::MS_REC;
const MS_STRICTATIME: u64 = libc::MS_STRICTATIME;

/// The most a mount option string may hold (one page, mount(2)).
const PAGE: usize = 4096;
/// What Docker hides from a container (moby's oci defaults; /proc/interrupts too): kernel
/// memory, keys, timers and scheduler internals, hardware details, firmware.
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// What a container may read but not change (Docker's read-only paths).
pub const READ_ONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// overlayfs's limit on stacked lower layers (OVL_MAX_STACK).
const MAX_LAYERS: usize = 500;

/// A path inside the new root, with what is needed to create it: each prefix and its last
/// component ("dev", "dev/pts" / "dev", "pts").
#[derive(Debug, Clone)]
pub struct Target {
    /// What the user would call it, for messages: "/dev/pts".
    pub shown: CString,
    pub rel: CString,
    pub steps: Vec<(CString, CString)>,
    /// Create it as an empty file (bind mounts of files and device nodes), not a directory.
    pub file: bool,
    /// Follow no symlink at all on the way, not even one inside the root.
    pub no_symlinks: bool,
}

#[derive(Debug, Clone)]
pub enum Step {
    Mount {
        what: CString,
        source: Option<CString>,
        fstype: Option<CString>,
        flags: u64,
        data: Option<CString>,
        target: Target,
        /// Bind mounts: remount with these flags afterwards (a bind mount ignores MS_RDONLY,
        /// MS_NODEV...); 0 for none.
        remount: u64,
        /// Bind mounts: make the mount and every mount below it read-only with
        /// mount_setattr(2) (AT_RECURSIVE), as Docker 25 does for `:ro`; the text is what
        /// a failure names. None for none.
        recursive_ro: Option<CString>,
    },
    /// Make an existing mount read-only (MS_REMOUNT|MS_BIND: this mount only).
    RemountRo {
        what: CString,
        target: Target,
    },
    Mkdir(Target),
    /// Hide a path when it exists (Docker's masked paths): a read-only empty tmpfs over a
    /// directory, /dev/null over a file. Nothing is created.
    Mask(Target),
    /// Make a path read-only when it exists (Docker's read-only paths): bind it on itself,
    /// then remount that bind read-only.
    ReadOnlyPath(Target),
    Symlink {
        target: CString,
        link: Target,
    },
}

#[derive(Debug)]
pub struct Rootfs {
    /// The directory holding short links to the layers; relative lowerdirs are resolved from
    /// it, which keeps 500 layers inside one page of mount options.
    pub links_dir: CString,
    pub merged: CString,
    /// "mount overlay on <merged>", for the message when that fails.
    pub overlay_what: CString,
    pub overlay_data: CString,
    pub steps: Vec<Step>,
    pub read_only: bool,
    /// Mount the root (and /dev) nodev: see `Spec::nodev`.
    pub nodev: bool,
}

pub(crate) fn cstr(s: impl AsRef<[u8]>) -> Result<CString> {
    CString::new(s.as_ref()).map_err(|_| {
        Error::invalid(format!(
            "{:?}: contains a NUL byte",
            String::from_utf8_lossy(s.as_ref())
        ))
    })
}

fn path_bytes(p: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes()
}

/// A container path ("/dev/pts", "dev/./pts/") as a `Target`. `..` is refused: it has no
/// business in a mount destination.
pub fn target(dest: &str, file: bool) -> Result<Target> {
    let mut parts = Vec::new();
    for c in dest.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(Error::invalid(format!(
                    "{dest}: destination must not contain '..'"
                )))
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(Error::invalid(format!(
            "{dest:?}: cannot mount over the container's root"
        )));
    }
    let mut steps = Vec::new();
    for i in 0..parts.len() {
        steps.push((cstr(parts[..=i].join("/"))?, cstr(parts[i])?));
    }
    Ok(Target {
        shown: cstr(format!("/{}", parts.join("/")))?,
        rel: cstr(parts.join("/"))?,
        steps,
        file,
        no_symlinks: false,
    })
}

fn mount(
    what: &str,
    source: Option<&[u8]>,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
    dest: &str,
    file: bool,
) -> Result<Step> {
    Ok(Step::Mount {
        what: cstr(what)?,
        source: source.map(cstr).transpose()?,
        fstype: fstype.map(cstr).transpose()?,
        flags,
        data: data.map(cstr).transpose()?,
        target: target(dest, file)?,
        remount: 0,
        recursive_ro: None,
    })
}

/// Whether this kernel can make a mount read-only with every mount below it
/// (mount_setattr(2), Linux 5.12): asked about fd -1, the call fails with EBADF where it
/// exists. Checked by the parent before anything is made, so `:ro` on an older kernel is a
/// clear refusal instead of a volume whose submounts stay writable.
pub fn check_recursive_ro<S: Sys>(sys: &S) -> Result<()> {
    match sys.mount_setattr(-1, libc::MOUNT_ATTR_RDONLY, false) {
        Ok(()) | Err(libc::EBADF) => Ok(()),
        Err(e) => Err(Error::invalid(format!(
            "this kernel cannot make a volume read-only with the mounts below it (mount_setattr(2), Linux 5.12 or later): {}",
            layers::error::io_message(&std::io::Error::from_raw_os_error(e))
        ))),
    }
}

/// Docker's --tmpfs options: mount flags by name, the rest passed to tmpfs.
fn tmpfs_options(opts: &str) -> (u64, String) {
    let mut flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    let mut data = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => flags |= MS_RDONLY,
            "rw" => flags &= !MS_RDONLY,
            "exec" => flags &= !MS_NOEXEC,
            "noexec" => flags |= MS_NOEXEC,
            "suid" => flags &= !MS_NOSUID,
            "nosuid" => flags |= MS_NOSUID,
            "dev" => flags &= !MS_NODEV,
            "nodev" => flags |= MS_NODEV,
            o => data.push(o.to_string()),
        }
    }
    if !data.iter().any(|d| d.starts_with("mode=")) {
        data.push("mode=1777".into());
    }
    (flags, data.join(","))
}

/// The standard device nodes, bind-mounted from the host (mknod would need CAP_MKNOD in the
/// initial user namespace; a bind works as root and rootless alike).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// A cgroup filesystem to mount read-only under /sys/fs/cgroup, as Docker does: with the
/// container in its own cgroup namespace, each shows the container's cgroup as its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMount {
    /// "" for cgroup2 (mounted on /sys/fs/cgroup itself), else the v1 hierarchy's directory
    /// name ("memory", "cpu,cpuacct").
    pub name: String,
    /// v1: the controllers of the hierarchy ("cpu,cpuacct").
    pub controllers: String,
}

impl CgroupMount {
    /// The cgroup filesystems of `h`: one cgroup2 mount, or one per v1 hierarchy.
    pub fn for_hierarchy(h: &crate::cgroup::Hierarchy) -> Vec<CgroupMount> {
        use crate::cgroup::Hierarchy;
        match h {
            Hierarchy::V2 { .. } => vec![CgroupMount {
                name: String::new(),
                controllers: String::new(),
            }],
            Hierarchy::V1 { controllers } => {
                let mut by_mount: std::collections::BTreeMap<&Path, Vec<&str>> = Default::default();
                for (c, m) in controllers {
                    by_mount.entry(m.mount.as_path()).or_default().push(c);
                }
                by_mount
                    .into_iter()
                    .filter_map(|(mount, cs)| {
                        let name = mount.file_name()?.to_str()?.to_string();
                        Some(CgroupMount {
                            name,
                            controllers: cs.join(","),
                        })
                    })
                    .collect()
            }
        }
    }
}

impl Rootfs {
    /// `links` are the short link names (relative to `links_dir`) of the layers, bottom first.
    pub fn plan(
        spec: &Spec,
        links_dir: &Path,
        links: &[String],
        cgroups: &[CgroupMount],
    ) -> Result<Rootfs> {
        let upper = spec.dir.join("upper");
        let work = spec.dir.join("work");
        let merged = spec.dir.join("merged");
        if links.is_empty() {
            // An image without layers (FROM scratch with nothing added) has no root at all.
            return Err(Error::invalid("the image has no layers"));
        }
        if links.len() > MAX_LAYERS {
            return Err(Error::invalid(format!(
                "the image has {} layers; overlayfs stacks at most {MAX_LAYERS}",
                links.len()
            )));
        }
        // overlayfs(5): the first lowerdir is the top layer. `volatile`: the upper dir is
        // thrown away (or packed at once, for a build step), so unmounting need not write back
        // every dirty page of the host filesystem it lives on, which otherwise stalls exit.
        let lower: Vec<&str> = links.iter().rev().map(String::as_str).collect();
        let mut data = format!(
            "lowerdir={},upperdir={},workdir={},volatile",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        if spec.userxattr {
            data.push_str(",userxattr");
        }
        if data.len() >= PAGE {
            return Err(Error::invalid(format!(
                "{} layers do not fit in one overlay mount ({} bytes of options)",
                links.len(),
                data.len()
            )));
        }

        let mut steps = Vec::new();
        steps.push(mount(
            "mount proc on /proc",
            Some(b"proc"),
            Some("proc"),
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
            None,
            "proc",
            false,
        )?);
        match spec.network {
            // sysfs shows the network namespace of whoever mounts it, and mounting it takes
            // CAP_SYS_ADMIN over that namespace: a fresh, read-only one wherever we can (with
            // our own network namespace, or as root in the host's, as runc does), so no
            // submount of the host's /sys (debugfs, tracefs, bpf...) comes along.
            n if n.own_namespace() || spec.userns.is_none() => steps.push(mount(
                "mount sysfs on /sys",
                Some(b"sysfs"),
                Some("sysfs"),
                MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                None,
                "sys",
                false,
            )?),
            // Rootless with the host's network: only a bind of the host's /sys works, read-only
            // with every mount below it where the kernel can do that (mount_setattr(2)).
            _ => {
                let mut s = mount(
                    "bind /sys on /sys",
                    Some(b"/sys"),
                    None,
                    MS_BIND | MS_REC,
                    None,
                    "sys",
                    false,
                )?;
                if let Step::Mount {
                    remount,
                    recursive_ro,
                    ..
                } = &mut s
                {
                    *remount = MS_RDONLY;
                    if check_recursive_ro(&crate::syscall::Linux).is_ok() {
                        *recursive_ro = Some(cstr("make /sys read-only with the mounts below it")?);
                    }
                }
                steps.push(s);
            }
        }
        let ro = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY;
        for c in cgroups {
            if c.name.is_empty() {
                steps.push(mount(
                    "mount cgroup2 on /sys/fs/cgroup",
                    Some(b"cgroup2"),
                    Some("cgroup2"),
                    ro,
                    None,
                    "sys/fs/cgroup",
                    false,
                )?);
                continue;
            }
            if c == &cgroups[0] {
                steps.push(mount(
                    "mount tmpfs on /sys/fs/cgroup",
                    Some(b"tmpfs"),
                    Some("tmpfs"),
                    MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    Some("mode=755"),
                    "sys/fs/cgroup",
                    false,
                )?);
            }
            let dest = format!("/sys/fs/cgroup/{}", c.name);
            steps.push(mount(
                &format!("mount cgroup on {dest}"),
                Some(b"cgroup"),
                Some("cgroup"),
                ro,
                Some(&c.controllers),
                &dest,
                false,
            )?);
        }
        if cgroups.len() > 1 || cgroups.first().is_some_and(|c| !c.name.is_empty()) {
            // The tmpfs holding the v1 mount points goes read-only once they are made.
            steps.push(Step::RemountRo {
                what: cstr("remount /sys/fs/cgroup read-only")?,
                target: target("sys/fs/cgroup", false)?,
            });
        }
        steps.push(mount(
            "mount tmpfs on /dev",
            Some(b"tmpfs"),
            Some("tmpfs"),
            // The standard nodes are bind mounts of the host's, which keep working.
            MS_NOSUID | MS_STRICTATIME | if spec.nodev { MS_NODEV } else { 0 },
            Some("mode=755,size=65536k"),
            "dev",
            false,
        )?);
        for d in DEVICES {
            let host = format!("/dev/{d}");
            steps.push(mount(
                &format!("bind {host} on {host}"),
                Some(host.as_bytes()),
                None,
                MS_BIND,
                None,
                &host,
                true,
            )?);
        }
        for (link, to) in [
            ("dev/fd", "/proc/self/fd"),
            ("dev/stdin", "/proc/self/fd/0"),
            ("dev/stdout", "/proc/self/fd/1"),
            ("dev/stderr", "/proc/self/fd/2"),
            ("dev/ptmx", "pts/ptmx"),
        ] {
            steps.push(Step::Symlink {
                target: cstr(to)?,
                link: target(link, true)?,
            });
        }
        steps.push(mount(
            "mount devpts on /dev/pts",
            Some(b"devpts"),
            Some("devpts"),
            MS_NOSUID | MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
            "dev/pts",
            false,
        )?);
        steps.push(mount(
            "mount tmpfs on /dev/shm",
            Some(b"shm"),
            Some("tmpfs"),
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
            Some("mode=1777,size=65536k"),
            "dev/shm",
            false,
        )?);
        steps.push(mount(
            "mount mqueue on /dev/mqueue",
            Some(b"mqueue"),
            Some("mqueue"),
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
            None,
            "dev/mqueue",
            false,
        )?);

        // The runtime's own mounts must land on plain directories of the image: a /dev or /sys
        // that is a symlink (to /proc, say) would hide the real one (runc refuses the same).
        for st in &mut steps {
            match st {
                Step::Mount { target, .. } | Step::RemountRo { target, .. } => {
                    target.no_symlinks = true
                }
                Step::Symlink { link, .. } => link.no_symlinks = true,
                _ => {}
            }
        }
        for m in &spec.mounts {
            match &m.kind {
                MountKind::Bind { source, readonly } => {
                    let is_file = !source.is_dir();
                    let mut s = mount(
                        &format!("bind {} on {}", source.display(), m.dest),
                        Some(path_bytes(source)),
                        None,
                        MS_BIND | MS_REC,
                        None,
                        &m.dest,
                        is_file,
                    )?;
                    // nodev as for the root: behind the devices cgroup, a node made with
                    // CAP_MKNOD in a volume still cannot open a host disk.
                    if let Step::Mount {
                        remount,
                        recursive_ro,
                        ..
                    } = &mut s
                    {
                        *remount = if *readonly { MS_RDONLY } else { 0 }
                            | if spec.nodev { MS_NODEV } else { 0 };
                        // A mount below the source (a tmpfs, /proc under `-v /:/host:ro`)
                        // would stay writable with the top made read-only alone.
                        if *readonly {
                            *recursive_ro = Some(cstr(format!(
                                "make {} read-only with the mounts below it",
                                m.dest
                            ))?);
                        }
                    }
                    steps.push(s);
                }
                MountKind::Tmpfs { options } => {
                    let (flags, data) = tmpfs_options(options);
                    steps.push(mount(
                        &format!("mount tmpfs on {}", m.dest),
                        Some(b"tmpfs"),
                        Some("tmpfs"),
                        flags,
                        Some(&data),
                        &m.dest,
                        false,
                    )?);
                }
            }
        }
        // The devices cgroup decides what each node may be used for (a read-only mount would
        // not stop writes to a device node anyway); the bind keeps the host mount's flags.
        for d in &spec.devices {
            steps.push(mount(
                &format!("bind {} on {}", d.host.display(), d.dest),
                Some(path_bytes(&d.host)),
                None,
                MS_BIND,
                None,
                &d.dest,
                true,
            )?);
        }
        if spec.masked_paths {
            // Last, over anything mounted before: no volume can bring them back.
            for p in MASKED_PATHS {
                steps.push(Step::Mask(target(p, false)?));
            }
            for p in READ_ONLY_PATHS {
                steps.push(Step::ReadOnlyPath(target(p, false)?));
            }
        }
        if spec.process.cwd != "/" {
            steps.push(Step::Mkdir(target(&spec.process.cwd, false)?));
        }
        Ok(Rootfs {
            links_dir: cstr(path_bytes(links_dir))?,
            merged: cstr(path_bytes(&merged))?,
            overlay_what: cstr(format!("mount overlay on {}", merged.display()))?,
            overlay_data: cstr(data)?,
            steps,
            read_only: spec.read_only,
            nodev: spec.nodev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_split_and_refuse_dotdot() {
        let t = target("/dev//./pts/", false).unwrap();
        assert_eq!(t.rel.to_str().unwrap(), "dev/pts");
        assert_eq!(t.shown.to_str().unwrap(), "/dev/pts");
        let steps: Vec<_> = t
            .steps
            .iter()
            .map(|(a, b)| (a.to_str().unwrap(), b.to_str().unwrap()))
            .collect();
        assert_eq!(steps, vec![("dev", "dev"), ("dev/pts", "pts")]);
        assert!(target("/a/../../etc", false).is_err());
        assert!(target("/", false).is_err());
    }

    #[test]
    fn tmpfs_options_follow_docker() {
        assert_eq!(
            tmpfs_options(""),
            (MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777".into())
        );
        assert_eq!(
            tmpfs_options("exec,size=1m,mode=755"),
            (MS_NOSUID | MS_NODEV, "size=1m,mode=755".into())
        );
        assert_eq!(tmpfs_options("ro").0 & MS_RDONLY, MS_RDONLY);
    }
}
