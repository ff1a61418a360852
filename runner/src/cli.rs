//! The `mrun` command line: parse Docker-style `run` flags, resolve the image, run the
//! container in the foreground, and turn the result into one line on stderr (if any) and a
//! Docker-compatible exit code. Nothing else lives here.

use crate::cgroup::{self, DeviceRate, Limits};
use crate::config::{self, Overrides};
use crate::container::{self, Outcome, RunOptions};
use crate::error::{Error, Result, EXIT_FAILED};
use crate::process::Exit;
use crate::spec::{Device, Mount, MountKind, Network, Spec};
use clap::Parser;
use layers::{Reference, Store};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "mrun",
    version,
    about = "Run a command in a new container from a minibox image",
    disable_help_flag = true,
    trailing_var_arg = true,
    override_usage = "mrun [OPTIONS] IMAGE [COMMAND [ARG...]]"
)]
pub struct Cli {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Store root (default /var/lib/minibox as root, $XDG_DATA_HOME/minibox otherwise; also
    /// MINIBOX_ROOT)
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE), or pass the host's (KEY)
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Read environment variables from a file
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// uid[:gid] or name[:group], resolved in the image
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Container host name
    #[arg(short = 'h', long = "hostname")]
    hostname: Option<String>,
    /// Container name
    #[arg(long)]
    name: Option<String>,
    /// Override the image's ENTRYPOINT ("" clears it)
    #[arg(long)]
    entrypoint: Option<String>,
    /// Bind mount a volume: HOST:CONTAINER[:ro|rw]
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:ro]")]
    volume: Vec<String>,
    /// Mount a tmpfs: CONTAINER[:OPTIONS]
    #[arg(long, value_name = "CTR[:OPTS]")]
    tmpfs: Vec<String>,
    /// Add a host device: HOST[:CONTAINER][:rwm]
    #[arg(long, value_name = "HOST[:CTR][:rwm]")]
    device: Vec<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    read_only: bool,
    /// Memory limit (e.g. 5m, 1g); swap is off so the limit bites
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Number of CPUs (e.g. 0.1)
    #[arg(long)]
    cpus: Option<f64>,
    /// Maximum number of processes (-1 for unlimited)
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Limit read rate from a device: DEVICE:RATE (e.g. /dev/sda:1mb)
    #[arg(long, value_name = "DEV:RATE")]
    device_read_bps: Vec<String>,
    /// Limit write rate to a device: DEVICE:RATE
    #[arg(long, value_name = "DEV:RATE")]
    device_write_bps: Vec<String>,
    /// Network: none (only lo) or host
    #[arg(long = "net", alias = "network", default_value = "none")]
    net: String,
    /// Remove the container when it exits (the default in this version)
    #[arg(long)]
    rm: bool,
    // One positional for both, so that everything after the image belongs to the command
    // (trailing_var_arg): `mrun img --version` runs `--version` in the container, as
    // `docker run` does, rather than printing mrun's version.
    /// The image, then the command and its arguments (default: the image's Entrypoint and Cmd)
    #[arg(value_name = "IMAGE [COMMAND [ARG...]]", required = true, num_args = 1..)]
    image_and_command: Vec<String>,
}

/// How both binaries answer a command line clap refused: help and version on stdout with
/// success, anything else as one line "TOOL: message (see TOOL --help)" and `code`.
pub fn usage_error(tool: &str, e: &clap::Error, code: u8) -> ExitCode {
    use clap::error::ErrorKind::*;
    if matches!(
        e.kind(),
        DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // clap's first line is the message; the usage block below it is noise here, except that
    // "the following required arguments were not provided:" names them on the next line.
    let msg = e.render().to_string();
    let mut lines = msg.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut first = lines.next().unwrap_or("invalid arguments").to_string();
    if first.ends_with(':') {
        first = format!("{first} {}", lines.next().unwrap_or(""));
    }
    eprintln!(
        "{tool}: {} (see {tool} --help)",
        first.strip_prefix("error: ").unwrap_or(&first)
    );
    ExitCode::from(code)
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error("mrun", &e, EXIT_FAILED as u8),
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("mrun: {}", one_line(&e));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn one_line(e: &dyn std::error::Error) -> String {
    // Every error of ours already quotes its cause in its own message.
    e.to_string().replace('\n', " ")
}

fn warn(msg: &str) {
    eprintln!("mrun: {msg}");
}

/// "5242880" -> "5 MiB" for the OOM line.
fn mib(n: u64) -> String {
    if n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

fn volume(v: &str) -> Result<Mount> {
    let parts: Vec<&str> = v.split(':').collect();
    let (host, dest, readonly) = match parts.as_slice() {
        [h, d] => (*h, *d, false),
        [h, d, "ro"] => (*h, *d, true),
        [h, d, "rw"] => (*h, *d, false),
        _ => {
            return Err(Error::invalid(format!(
                "invalid volume specification: {v:?} (want HOST:CONTAINER[:ro])"
            )))
        }
    };
    if !host.starts_with('/') || !dest.starts_with('/') {
        return Err(Error::invalid(format!(
            "invalid volume specification: {v:?}: both paths must be absolute"
        )));
    }
    let source = PathBuf::from(host);
    if !source.exists() {
        // Docker creates a missing host directory for -v.
        std::fs::create_dir_all(&source).map_err(|e| Error::Io {
            op: "create volume directory",
            path: source.clone(),
            source: e,
        })?;
    }
    Ok(Mount {
        dest: dest.to_string(),
        kind: MountKind::Bind { source, readonly },
    })
}

fn device(d: &str) -> Result<Device> {
    let parts: Vec<&str> = d.split(':').collect();
    let is_perms = |s: &str| !s.is_empty() && s.chars().all(|c| "rwm".contains(c));
    let (host, dest, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perms(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if is_perms(p) => (*h, *c, *p),
        _ => {
            return Err(Error::invalid(format!(
                "invalid device specification: {d:?}"
            )))
        }
    };
    // Docker enforces r/w/m with the device cgroup, which minibox does not set up; and a
    // read-only bind mount does not stop writes to a device node (the kernel refuses writes
    // on a read-only mount to regular files, directories and symlinks only). Refuse rather
    // than grant more than asked.
    if !"rwm".chars().all(|c| perms.contains(c)) {
        return Err(Error::invalid(format!("device permissions {perms:?} in {d:?} cannot be enforced here (no device cgroup): only rwm is supported")));
    }
    let host = PathBuf::from(host);
    if !host.exists() {
        return Err(Error::invalid(format!("error gathering device information while adding custom device {:?}: no such file or directory", host.display().to_string())));
    }
    Ok(Device {
        host,
        dest: dest.to_string(),
        readonly: !perms.contains('w'),
    })
}

fn rate(s: &str) -> Result<DeviceRate> {
    let (dev, r) = s
        .rsplit_once(':')
        .ok_or_else(|| Error::invalid(format!("bad device rate {s:?} (want DEVICE:RATE)")))?;
    let (major, minor) = cgroup::device_numbers(std::path::Path::new(dev))?;
    Ok(DeviceRate {
        major,
        minor,
        bytes_per_sec: cgroup::parse_rate(r)?,
    })
}

pub fn run(cli: Cli) -> Result<i32> {
    // From the first moment, a SIGINT/SIGTERM waits for the container instead of killing mrun
    // half-way through its setup (which would leave the container's directory behind); once
    // the container runs, it is forwarded to it.
    crate::process::block_forwarded()?;
    let root = cli
        .root
        .clone()
        .or_else(|| {
            std::env::var_os("MINIBOX_ROOT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(Store::default_root);
    let rootless = unsafe { libc::geteuid() } != 0;
    let network = match cli.net.as_str() {
        "none" => Network::None,
        "host" => Network::Host,
        n => {
            return Err(Error::invalid(format!(
                "network {n:?} is not supported here (use none or host)"
            )))
        }
    };
    let limits = Limits {
        memory: cli.memory.as_deref().map(cgroup::parse_bytes).transpose()?,
        cpus: cli.cpus,
        pids: cli.pids_limit,
        read_bps: cli
            .device_read_bps
            .iter()
            .map(|s| rate(s))
            .collect::<Result<_>>()?,
        write_bps: cli
            .device_write_bps
            .iter()
            .map(|s| rate(s))
            .collect::<Result<_>>()?,
    };
    let mut mounts: Vec<Mount> = cli
        .volume
        .iter()
        .map(|v| volume(v))
        .collect::<Result<_>>()?;
    for t in &cli.tmpfs {
        let (dest, options) = t.split_once(':').unwrap_or((t, ""));
        if !dest.starts_with('/') {
            return Err(Error::invalid(format!(
                "invalid tmpfs {t:?}: the path must be absolute"
            )));
        }
        mounts.push(Mount {
            dest: dest.to_string(),
            kind: MountKind::Tmpfs {
                options: options.to_string(),
            },
        });
    }
    let devices = cli
        .device
        .iter()
        .map(|d| device(d))
        .collect::<Result<_>>()?;

    let store = Store::open(&root)?;
    let (image, command) = cli
        .image_and_command
        .split_first()
        .expect("clap requires the image");
    let reference = Reference::parse(image)?;
    let img = store.image(&reference)?;
    let (layer_dirs, pins) = container::image_layers(&store, &img)?;
    let id = container::new_id();
    let hostname = cli.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    let overrides = Overrides {
        entrypoint: cli.entrypoint.clone(),
        command: command.to_vec(),
        env: cli.env.clone(),
        env_files: cli.env_file.clone(),
        workdir: cli.workdir.clone(),
        user: cli.user.clone(),
    };
    let process = config::process(
        img.config.config().as_ref(),
        &layer_dirs,
        &hostname,
        &overrides,
    )?;
    let dir = container::create_dir(&store, &id, &pins)?;
    let spec = Spec {
        layers: layer_dirs,
        dir,
        process,
        hostname,
        mounts,
        devices,
        read_only: cli.read_only,
        network,
        userns: rootless.then(crate::process::rootless_maps),
        limits,
        userxattr: rootless,
    };
    let _ = cli.name;
    let outcome = container::run(
        &spec,
        &RunOptions {
            forward_signals: true,
            keep: false,
            warn,
        },
    )?;
    Ok(report(&outcome))
}

fn report(o: &Outcome) -> i32 {
    if o.oom_killed && o.exit == Exit::Signal(libc::SIGKILL) {
        match o.memory_limit {
            Some(l) => eprintln!("mrun: container killed: out of memory (limit {})", mib(l)),
            None => eprintln!("mrun: container killed: out of memory"),
        }
    }
    o.exit.code()
}
