//! What to run, fully resolved: the layer directories, the process, mounts, devices,
//! limits and namespaces. Built from an image and the command line (see `config`), or by the
//! builder for a RUN step. Plain data; nothing here touches the system.

use crate::cgroup::{DeviceAccess, DeviceKind, DeviceRule, Limits};
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Spec {
    /// Read-only layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// The container's own directory: upper/, work/, merged/ and the short layer links.
    pub dir: PathBuf,
    pub process: Process,
    pub hostname: String,
    pub mounts: Vec<Mount>,
    pub devices: Vec<Device>,
    pub read_only: bool,
    pub network: Network,
    /// Run in a new user namespace with these maps (rootless, or `--userns`).
    pub userns: Option<IdMaps>,
    pub limits: Limits,
    /// The xattr overlay reads opaque markers from: `userxattr` mounts in a user namespace
    /// use user.overlay.*.
    pub userxattr: bool,
    /// The capabilities its processes keep (bounding set; effective and permitted for
    /// root), Docker's default set unless changed.
    pub caps: u64,
    /// The seccomp program its processes run under (see `seccomp`); None: unconfined.
    pub seccomp: Option<Vec<libc::sock_filter>>,
    /// `--security-opt no-new-privileges`: setuid bits and file capabilities give nothing.
    pub no_new_privs: bool,
    /// Docker's masked and read-only /proc and /sys paths (off with `--privileged`).
    pub masked_paths: bool,
    /// Device nodes in the image, or made inside with CAP_MKNOD, cannot be opened: the root,
    /// /dev and volumes are mounted nodev, in depth behind the devices cgroup (see
    /// `Limits::devices`); only the standard nodes and `--device`s (bind mounts of the
    /// host's) work. Off with `--privileged`.
    pub nodev: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Process {
    /// argv; args[0] is looked up in the container's PATH when it has no '/'.
    pub args: Vec<String>,
    /// KEY=VALUE
    pub env: Vec<String>,
    /// Absolute path inside the container; created when missing, as Docker does.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Process {
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// `-v HOST:CTR[:ro]`
    Bind { source: PathBuf, readonly: bool },
    /// `--tmpfs CTR[:OPTIONS]`
    Tmpfs { options: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the container.
    pub dest: String,
    pub kind: MountKind,
}

/// One device node of `--device HOST[:CTR][:PERMS]` (a directory gives one per node below
/// it): the host node is bind-mounted at `dest`, and the devices cgroup lets the container
/// use it for `access` (see `Device::rule`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub host: PathBuf,
    pub dest: String,
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
    pub access: DeviceAccess,
}

impl Device {
    /// Its devices cgroup rule.
    pub fn rule(&self) -> DeviceRule {
        DeviceRule::node(self.kind, self.major, self.minor, self.access)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// A new network namespace with only `lo`, up.
    None,
    /// The host's network namespace.
    Host,
    /// A new network namespace with `lo` and an `eth0` on the `minibox0` bridge (wired by
    /// the parent before the container is released; see `net`).
    Bridge,
    /// A new network namespace with `lo` and a `tap0` that slirp4netns serves (rootless).
    Slirp,
}

impl Network {
    /// The container gets a network namespace of its own.
    pub fn own_namespace(self) -> bool {
        self != Network::Host
    }

    pub fn name(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Host => "host",
            Network::Bridge => "bridge",
            Network::Slirp => "slirp4netns",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdMaps {
    pub uid: Vec<IdMap>,
    pub gid: Vec<IdMap>,
}
