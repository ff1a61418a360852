//! The typed project: what a compose file means once it is parsed, merged, interpolated and
//! resolved. Short syntaxes are already in their long form here (ports, volumes, depends_on,
//! environment), paths are absolute, and names are final. These types hold data only; the
//! engine decides how to run them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Loc;

/// A project: the services, networks and volumes of one or more compose files.
#[derive(Clone, Debug)]
pub struct Project {
    /// `-p`, `COMPOSE_PROJECT_NAME`, the top-level `name:`, or the project directory's name,
    /// normalized to `[a-z0-9_-]` as compose does.
    pub name: String,
    /// The project directory (absolute): relative paths in the files are relative to it.
    pub dir: PathBuf,
    /// The compose files, in the order they were merged.
    pub files: Vec<PathBuf>,
    pub services: BTreeMap<String, Service>,
    /// The project's networks, including `default` when a service uses it.
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    /// Top-level `x-` keys, kept for `config`.
    pub extensions: BTreeMap<String, Value>,
    /// The variables interpolation saw: the shell's environment over the `.env` file.
    pub environment: BTreeMap<String, String>,
    /// Things compose warns about (unset variables): one line each, for stderr.
    pub warnings: Vec<String>,
    /// Service names, dependencies first.
    pub(crate) order: Vec<String>,
}

/// One service, resolved.
#[derive(Clone, Debug, Default)]
pub struct Service {
    pub name: String,
    /// The container's name: `container_name`, or `PROJECT-SERVICE-1`.
    pub container: String,
    pub container_name: Option<String>,
    pub image: Option<String>,
    pub build: Option<Build>,
    /// `None`: the image's. `Some(vec![])`: cleared. A string in the file is split as a
    /// shell would (quotes, backslashes), without running a shell.
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// `env_file`s first, then `environment` over them. `None`: the file named the variable
    /// without a value and neither the environment nor `.env` has it: the container does not
    /// get it.
    pub environment: BTreeMap<String, Option<String>>,
    /// The `env_file`s (absolute), already read into `environment`.
    pub env_file: Vec<EnvFile>,
    pub volumes: Vec<Mount>,
    pub devices: Vec<Device>,
    pub ports: Vec<Port>,
    /// Container ports, as written (`"3000"`, `"8000-8010/udp"`).
    pub expose: Vec<String>,
    /// Networks by their key in the project's `networks` (`default` when none is named).
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    pub depends_on: BTreeMap<String, Dependency>,
    pub healthcheck: Option<Healthcheck>,
    pub restart: Option<Restart>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    /// Bytes.
    pub mem_limit: Option<u64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub deploy: Option<Deploy>,
    pub init: Option<bool>,
    /// `None` is false; kept apart so that a later file can set it back to false.
    pub tty: Option<bool>,
    pub stdin_open: Option<bool>,
    pub ipc: Option<String>,
    pub group_add: Vec<String>,
    /// Bytes.
    pub shm_size: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub read_only: Option<bool>,
    /// `/run` or `/run:size=64m,mode=1777`, as written.
    pub tmpfs: Vec<String>,
    /// (host, ip) pairs.
    pub extra_hosts: Vec<(String, String)>,
    pub dns: Vec<String>,
    /// `x-` keys of the service, kept for `config`.
    pub extensions: BTreeMap<String, Value>,
    /// Where the service is defined (its key in the first file that has it).
    pub(crate) at: Option<Loc>,
    /// Where some of its keys are (`env_file`, `networks.NAME`), for errors found later.
    pub(crate) locs: BTreeMap<String, Loc>,
}

impl Service {
    /// The image to run: `image`, or for a service that only builds, `PROJECT-SERVICE`
    /// as compose names it.
    pub fn image_name(&self, project: &str) -> String {
        match &self.image {
            Some(i) => i.clone(),
            None => format!("{project}-{}", self.name),
        }
    }

    /// The memory limit in bytes: `mem_limit`, else `deploy.resources.limits.memory`.
    pub fn memory_limit(&self) -> Option<u64> {
        self.mem_limit
            .or_else(|| self.deploy.as_ref()?.limits.memory)
    }

    /// The CPU limit: `cpus`, else `deploy.resources.limits.cpus`.
    pub fn cpu_limit(&self) -> Option<f64> {
        self.cpus.or_else(|| self.deploy.as_ref()?.limits.cpus)
    }

    /// The pids limit: `pids_limit`, else `deploy.resources.limits.pids`.
    pub fn pids(&self) -> Option<i64> {
        self.pids_limit
            .or_else(|| self.deploy.as_ref()?.limits.pids)
    }

    /// `KEY=VALUE` for each variable the container gets, sorted by key.
    pub fn env(&self) -> Vec<String> {
        self.environment
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect()
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Build {
    /// Absolute.
    pub context: PathBuf,
    /// The Minifile, relative to the context (or absolute) as written. When the file gives
    /// none: `Minifile` if the context has one, else `Dockerfile` if it has that, else
    /// `Minifile`.
    pub dockerfile: String,
    /// `None`: named without a value and not in the environment.
    pub args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    pub(crate) context_set: bool,
    pub(crate) dockerfile_set: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EnvFile {
    /// Absolute.
    pub path: PathBuf,
    /// A missing file that is not required is skipped.
    pub required: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Volume,
    Tmpfs,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// An entry of a service's `volumes`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    pub kind: MountType,
    /// Bind: an absolute host path (`~` expanded). Volume: the key of the volume in the
    /// project's `volumes` (see [`Project::volume_name`]), or `None` for an anonymous one.
    /// Tmpfs: `None`.
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
    /// Bind only: create the host path when it is missing (compose's default for the short
    /// syntax; the long syntax says `bind: {create_host_path: true}`).
    pub create_host_path: bool,
    /// Bind only: `rprivate`, `shared`, ...
    pub propagation: Option<String>,
    /// Bind only: `z` or `Z`.
    pub selinux: Option<String>,
    /// Volume only: do not copy the image's content into a new volume.
    pub nocopy: bool,
    /// Tmpfs only: bytes.
    pub tmpfs_size: Option<u64>,
    /// Tmpfs only.
    pub tmpfs_mode: Option<u32>,
    /// The long syntax's sub-maps, as written, for `config`.
    pub(crate) style: MountStyle,
    pub(crate) at: Option<Loc>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MountStyle {
    pub bind: bool,
    pub volume: bool,
    pub tmpfs: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub source: String,
    pub target: String,
    /// `rwm` unless given.
    pub permissions: String,
    /// As written, for `config`.
    pub(crate) spec: String,
}

/// One published or exposed port, in the long form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub target: u16,
    /// A host port, a host range (`8000-8010`), or `None` for an ephemeral one.
    pub published: Option<String>,
    pub host_ip: Option<String>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// `ingress` (compose's default) or `host`.
    pub mode: String,
    pub name: Option<String>,
    pub app_protocol: Option<String>,
}

impl Port {
    /// The published host port range, when there is one: `8080` is `(8080, 8080)`.
    pub fn published_range(&self) -> Option<(u16, u16)> {
        let p = self.published.as_deref()?;
        match p.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => {
                let n = p.parse().ok()?;
                Some((n, n))
            }
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceNetwork {
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "service_started",
            Condition::Healthy => "service_healthy",
            Condition::CompletedSuccessfully => "service_completed_successfully",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dependency {
    pub condition: Condition,
    /// A dependency that is not required may be missing from the project.
    pub required: bool,
    /// Restart this service when the dependency is restarted.
    pub restart: bool,
    pub(crate) at: Loc,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`. A string in the file is
    /// `CMD-SHELL`. Empty when the file only sets timings.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u64>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub disable: bool,
}

impl Healthcheck {
    /// `disable: true` or a test of `NONE`: the image's healthcheck is turned off too.
    pub fn is_disabled(&self) -> bool {
        self.disable || self.test.first().map(String::as_str) == Some("NONE")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    No,
    Always,
    /// At most this many restarts, when given.
    OnFailure(Option<u32>),
    UnlessStopped,
}

impl std::fmt::Display for Restart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Restart::No => f.write_str("no"),
            Restart::Always => f.write_str("always"),
            Restart::OnFailure(None) => f.write_str("on-failure"),
            Restart::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
            Restart::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deploy {
    pub limits: Limits,
}

/// `deploy.resources.limits`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    pub cpus: Option<f64>,
    /// Bytes.
    pub memory: Option<u64>,
    pub pids: Option<i64>,
}

/// A top-level network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Network {
    /// The real name: `name:`, the key for an external network, else `PROJECT_KEY`.
    pub name: String,
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub external: bool,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub extensions: BTreeMap<String, Value>,
    pub(crate) name_set: bool,
}

/// A top-level volume.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Volume {
    /// The real name: `name:`, the key for an external volume, else `PROJECT_KEY`.
    pub name: String,
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub external: bool,
    pub labels: BTreeMap<String, String>,
    pub extensions: BTreeMap<String, Value>,
    pub(crate) name_set: bool,
}

/// Any YAML value, for `x-` extensions.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Value>),
    Map(Vec<(String, Value)>),
}
