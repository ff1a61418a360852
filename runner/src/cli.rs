//! The `mrun` command line: Docker-style `run` flags and the lifecycle subcommands (ps,
//! logs, stop, kill, rm, wait, inspect, exec), each turned into one line on stderr (if
//! anything failed) and a Docker-compatible exit code. The work itself lives in
//! `monitor`, `lifecycle` and `exec`.

use crate::cgroup::{self, DeviceAccess, DeviceKind, DeviceRate, Limits};
use crate::child::DEFAULT_CAPS;
use crate::config::{self, Overrides};
use crate::container::{self, Outcome};
use crate::error::{Error, Result, EXIT_FAILED};
use crate::process::Exit;
use crate::spec::{Device, Mount, MountKind, Network, Spec};
use crate::{lifecycle, monitor, net, state};
use clap::Parser;
use layers::Store;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `mrun [OPTIONS] IMAGE [COMMAND [ARG...]]`: the run form without a subcommand word.
#[derive(Parser, Debug)]
#[command(
    name = "mrun",
    version,
    about = "Run a command in a new container from a minibox image",
    disable_help_flag = true,
    trailing_var_arg = true,
    override_usage = "mrun [OPTIONS] IMAGE [COMMAND [ARG...]]\n       mrun [--root DIR] ps|logs|stop|kill|rm|wait|inspect|exec|run ... (see mrun COMMAND --help)"
)]
pub struct RunCli {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Store root (default /var/lib/minibox as root, $XDG_DATA_HOME/minibox otherwise; also
    /// MINIBOX_ROOT)
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

/// `mrun [--root DIR] COMMAND ...`
#[derive(Parser, Debug)]
#[command(name = "mrun", version, about = "Run and manage minibox containers")]
pub struct Mrun {
    /// Store root (default /var/lib/minibox as root, $XDG_DATA_HOME/minibox otherwise; also
    /// MINIBOX_ROOT)
    #[arg(long, value_name = "DIR", global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Run a command in a new container (the default; needed for an image called like a
    /// command, e.g. `mrun run ps`)
    #[command(disable_help_flag = true, trailing_var_arg = true)]
    Run {
        /// Print help
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        #[command(flatten)]
        run: Box<RunArgs>,
    },
    /// List containers
    Ps {
        /// Show all containers (default shows just running)
        #[arg(short, long)]
        all: bool,
        /// Only show container ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show a container's output
    Logs {
        /// Follow the output until the container stops
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to show from the end ("all" for everything)
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Show the time of each line
        #[arg(short, long)]
        timestamps: bool,
        container: String,
    },
    /// Stop running containers: the stop signal, then SIGKILL after a grace period
    Stop {
        /// Seconds to wait before killing
        #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to running containers
    Kill {
        /// Signal to send (name or number)
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers
    Rm {
        /// Kill and remove running containers
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Wait for containers to stop and print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Show containers' configuration and state as JSON
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    #[command(trailing_var_arg = true)]
    Exec {
        /// Keep stdin open
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a pseudo-terminal
        #[arg(short, long)]
        tty: bool,
        /// Set an environment variable (KEY=VALUE), or pass the host's (KEY)
        #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
        env: Vec<String>,
        /// uid[:gid] or name[:group], resolved in the image
        #[arg(short = 'u', long = "user")]
        user: Option<String>,
        /// Working directory inside the container
        #[arg(short = 'w', long = "workdir")]
        workdir: Option<String>,
        /// The container, then the command and its arguments
        #[arg(value_name = "CONTAINER COMMAND [ARG...]", required = true, num_args = 2..)]
        container_and_command: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Run in the background and print the container id
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep stdin open (stream it to the container)
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short = 't', long)]
    tty: bool,
    /// Run an init process as PID 1 that forwards signals and reaps orphans
    #[arg(long)]
    init: bool,
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
    /// Container name (unique)
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
    /// Add a host device (a directory adds every device below it), allowed for any of r
    /// (read), w (write), m (mknod): HOST[:CONTAINER][:rwm]
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
    /// Network: bridge (default as root), none (only lo), host, slirp4netns (default
    /// rootless, when installed)
    #[arg(long = "net", alias = "network")]
    net: Option<String>,
    /// Publish a container's port: [IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CTR[/PROTO]")]
    publish: Vec<String>,
    /// Add a line to /etc/hosts: NAME:IP
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// DNS server for /etc/resolv.conf
    #[arg(long)]
    dns: Vec<String>,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Add a Linux capability (NAME, CAP_NAME, or ALL)
    #[arg(long = "cap-add", value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop a Linux capability (NAME, CAP_NAME, or ALL)
    #[arg(long = "cap-drop", value_name = "CAP")]
    cap_drop: Vec<String>,
    /// Every capability, no seccomp filter, no masked /proc and /sys paths
    #[arg(long)]
    privileged: bool,
    /// seccomp=unconfined, seccomp=PROFILE.json (Docker's format), no-new-privileges
    #[arg(long = "security-opt", value_name = "OPT")]
    security_opt: Vec<String>,
    /// Pull the image before running: missing (default), always or never
    #[arg(long, value_name = "POLICY", default_value = "missing")]
    pull: layers::registry::PullPolicy,
    /// Platform to pull when the image is an index (os/arch[/variant]; default this machine's)
    #[arg(long, value_name = "PLATFORM", value_parser = layers::registry::Platform::parse)]
    platform: Option<layers::registry::Platform>,
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

/// The first argument after the global `--root DIR` (or `--root=DIR`) of either binary: a
/// subcommand's name, a flag, or the start of the default form; None when there is none.
pub fn first_word(args: &[std::ffi::OsString]) -> Option<&str> {
    let mut i = 1;
    while let Some(a) = args.get(i).and_then(|a| a.to_str()) {
        match a {
            "--root" => i += 2,
            _ if a.starts_with("--root=") => i += 1,
            _ => return Some(a),
        }
    }
    None
}

/// Whether the command line names a subcommand (or asks for the general help). Anything
/// else is the run form (`-h` is `--hostname` there).
fn names_a_command(args: &[std::ffi::OsString]) -> bool {
    use clap::CommandFactory;
    match first_word(args) {
        Some(a) if a.starts_with('-') => matches!(a, "--help" | "-V" | "--version"),
        Some(a) => Mrun::command().get_subcommands().any(|s| s.get_name() == a),
        None => false,
    }
}

/// Exit code of the management subcommands when they fail (Docker's CLI).
const EXIT_CLI: u8 = 1;

pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = if names_a_command(&args) {
        Mrun::try_parse_from(&args)
    } else {
        RunCli::try_parse_from(&args).map(|r| Mrun {
            root: r.root,
            cmd: Cmd::Run {
                help: None,
                run: Box::new(r.run),
            },
        })
    };
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => return usage_error("mrun", &e, EXIT_FAILED as u8),
    };
    let (is_run, is_exec) = (
        matches!(cli.cmd, Cmd::Run { .. }),
        matches!(cli.cmd, Cmd::Exec { .. }),
    );
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("mrun: {}", one_line(&e));
            // Docker: `run` fails with 125 (or 126/127 for the command); `exec` with 126/127
            // for the command and 1 when the container is missing or stopped; the rest with 1.
            let code = match &e {
                _ if is_run => e.exit_code() as u8,
                Error::Exec { .. } if is_exec => e.exit_code() as u8,
                Error::Invalid(_) | Error::NotFound(_) | Error::Conflict(_) => EXIT_CLI,
                _ if is_exec => crate::error::EXIT_CANNOT_EXEC as u8,
                _ => EXIT_CLI,
            };
            ExitCode::from(code)
        }
    }
}

fn store_root(root: Option<PathBuf>) -> PathBuf {
    root.or_else(|| {
        std::env::var_os("MINIBOX_ROOT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(Store::default_root)
}

fn dispatch(cli: Mrun) -> Result<i32> {
    let root = store_root(cli.root);
    if let Cmd::Run { run: args, .. } = cli.cmd {
        return run(&root, *args);
    }
    let store = open_store(&root)?;
    let mut out = std::io::stdout().lock();
    let w = |e: std::io::Error| Error::Sys("write", e);
    // Each name is handled on its own, as Docker does: one failure does not stop the rest,
    // but makes the exit code 1.
    let each = |names: &[String], f: &mut dyn FnMut(&state::Container) -> Result<()>| -> i32 {
        let mut code = 0;
        for n in names {
            if let Err(e) = state::find(&store, n).and_then(|c| f(&c)) {
                eprintln!("mrun: {}", one_line(&e));
                code = EXIT_CLI as i32;
            }
        }
        code
    };
    match cli.cmd {
        Cmd::Run { .. } => unreachable!("handled above"),
        Cmd::Ps { all, quiet } => {
            lifecycle::ps(&store, all, quiet, &mut out)?;
            Ok(0)
        }
        Cmd::Logs {
            follow,
            tail,
            timestamps,
            container,
        } => {
            let tail = match tail.as_str() {
                "all" => None,
                n => Some(n.parse().map_err(|_| {
                    Error::invalid(format!("invalid --tail {n:?}: a number or \"all\""))
                })?),
            };
            let c = state::find(&store, &container)?;
            let mut err = std::io::stderr().lock();
            lifecycle::logs(&c, follow, tail, timestamps, &mut out, &mut err)?;
            Ok(0)
        }
        Cmd::Stop { time, containers } => {
            let (found, code) = find_all(&store, &containers);
            let results = lifecycle::stop_all(&found, std::time::Duration::from_secs(time));
            Ok(code.max(report_each(&containers, &found, results)))
        }
        Cmd::Kill { signal, containers } => {
            let sig = lifecycle::parse_signal(&signal)?;
            Ok(each(&containers, &mut |c| {
                lifecycle::kill(c, sig)?;
                println!("{}", display_name(&containers, c));
                Ok(())
            }))
        }
        Cmd::Rm { force, containers } => {
            let (found, code) = find_all(&store, &containers);
            // Each removal waits on its own container and on the disk: side by side, a few
            // at a time.
            let results: Vec<Result<()>> = std::thread::scope(|s| {
                found
                    .chunks(found.len().div_ceil(8).max(1))
                    .map(|chunk| {
                        let store = &store;
                        s.spawn(move || {
                            chunk
                                .iter()
                                .map(|c| lifecycle::remove(store, c, force))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .flat_map(|h| h.join().expect("rm thread"))
                    .collect()
            });
            Ok(code.max(report_each(&containers, &found, results)))
        }
        Cmd::Wait { containers } => Ok(each(&containers, &mut |c| {
            let code = lifecycle::wait(&store, c)?;
            println!("{code}");
            Ok(())
        })),
        Cmd::Inspect { containers } => {
            let mut all = Vec::new();
            let code = each(&containers, &mut |c| {
                all.push(lifecycle::inspect(c));
                Ok(())
            });
            let text = serde_json::to_string_pretty(&all).expect("JSON values serialize");
            writeln!(out, "{text}").map_err(w)?;
            Ok(code)
        }
        Cmd::Exec {
            interactive,
            tty,
            env,
            user,
            workdir,
            container_and_command,
        } => {
            let (name, command) = container_and_command
                .split_first()
                .expect("clap requires two");
            let c = state::find(&store, name)?;
            drop(out);
            let exit = crate::exec::exec(
                &c,
                command,
                &crate::exec::ExecOptions {
                    tty,
                    interactive,
                    env,
                    user,
                    workdir,
                },
            )?;
            Ok(exit.code())
        }
    }
}

/// Each container acted on by its name as given, each failure on one line; 1 if any failed.
fn report_each(given: &[String], found: &[state::Container], results: Vec<Result<()>>) -> i32 {
    let mut code = 0;
    for (c, r) in found.iter().zip(results) {
        match r {
            Ok(()) => println!("{}", display_name(given, c)),
            Err(e) => {
                eprintln!("mrun: {}", one_line(&e));
                code = EXIT_CLI as i32;
            }
        }
    }
    code
}

/// The named containers that exist; each missing one reported, making the exit code 1.
fn find_all(store: &Store, names: &[String]) -> (Vec<state::Container>, i32) {
    let mut code = 0;
    let mut found = Vec::new();
    for n in names {
        match state::find(store, n) {
            Ok(c) => found.push(c),
            Err(e) => {
                eprintln!("mrun: {}", one_line(&e));
                code = EXIT_CLI as i32;
            }
        }
    }
    (found, code)
}

/// What Docker prints for a container it acted on: the name or id as the user gave it.
fn display_name(given: &[String], c: &state::Container) -> String {
    given
        .iter()
        .find(|g| {
            **g == c.config.name
                || c.config.id.starts_with(g.as_str())
                || g.trim_start_matches('/') == c.config.name
        })
        .cloned()
        .unwrap_or_else(|| c.config.name.clone())
}

fn one_line(e: &dyn std::error::Error) -> String {
    // Every error of ours already quotes its cause in its own message.
    e.to_string().replace('\n', " ")
}

fn warn(msg: &str) {
    eprintln!("mrun: {msg}");
}

/// Open the store; the process that moved an older store's OCI layout into `oci/` says so.
fn open_store(root: &std::path::Path) -> Result<Store> {
    let store = Store::open(root)?;
    if let Some(notice) = store.migration_notice() {
        warn(&notice);
    }
    Ok(store)
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
    // Docker 25's `:ro` is recursive where the kernel can do it; here it must be, or the
    // volume is refused before anything is made (Docker's `rro`).
    if readonly {
        crate::rootfs::check_recursive_ro(&crate::syscall::Linux)
            .map_err(|e| Error::invalid(format!("-v {v}: {e}")))?;
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

/// `--device HOST[:CTR][:PERMS]`, as Docker reads it: PERMS any of r, w, m (default rwm). A
/// device node gives one `Device`; a directory gives every device node below it (symlinks
/// not followed), each at CTR plus its path relative to HOST (moby's `DevicesFromPath`), as
/// `/dev/snd` must; anything else is refused.
fn device(d: &str) -> Result<Vec<Device>> {
    let invalid = || Error::invalid(format!("invalid device specification: {d:?}"));
    let parts: Vec<&str> = d.split(':').collect();
    let (host, dest, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if DeviceAccess::parse(p).is_some() => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => return Err(invalid()),
    };
    let access = DeviceAccess::parse(perms).ok_or_else(invalid)?;
    let gathering = |why: &str| {
        Error::invalid(format!(
            "error gathering device information while adding custom device {host:?}: {why}"
        ))
    };
    // A symlink (/dev/disk/by-id/...) names the node it points to, as with Docker.
    let meta = std::fs::metadata(host).map_err(|e| gathering(&layers::error::io_message(&e)))?;
    let path = Path::new(host);
    if meta.is_dir() {
        let mut found = Vec::new();
        device_nodes_below(path, Path::new(""), &mut found);
        if found.is_empty() {
            return Err(gathering("not a device node"));
        }
        return Ok(found
            .into_iter()
            .map(|(rel, kind, major, minor)| Device {
                host: path.join(&rel),
                dest: format!("{}/{}", dest.trim_end_matches('/'), rel.display()),
                kind,
                major,
                minor,
                access,
            })
            .collect());
    }
    let Some((kind, major, minor)) = node_numbers(&meta) else {
        return Err(gathering("not a device node"));
    };
    Ok(vec![Device {
        host: path.to_path_buf(),
        dest: dest.to_string(),
        kind,
        major,
        minor,
        access,
    }])
}

/// A block or character device's numbers; None for anything else, and for major 0 (no real
/// device has it; overlay whiteouts are 0:0), as containerd's `DeviceFromPath` does.
fn node_numbers(meta: &std::fs::Metadata) -> Option<(DeviceKind, u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let t = meta.file_type();
    let kind = if t.is_block_device() {
        DeviceKind::Block
    } else if t.is_char_device() {
        DeviceKind::Char
    } else {
        return None;
    };
    let (major, minor) = (
        rustix::fs::major(meta.rdev()),
        rustix::fs::minor(meta.rdev()),
    );
    (major != 0).then_some((kind, major, minor))
}

/// The device nodes below `root/rel`, as (path relative to `root`, kind, major, minor), in
/// name order. Symlinks are not followed (lstat, and no descent through them), and what
/// cannot be read is skipped, as Docker's walk does.
fn device_nodes_below(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, DeviceKind, u32, u32)>) {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let Ok(meta) = std::fs::symlink_metadata(root.join(&rel)) else {
            continue;
        };
        if meta.is_dir() {
            device_nodes_below(root, &rel, out);
        } else if let Some((kind, major, minor)) = node_numbers(&meta) {
            out.push((rel, kind, major, minor));
        }
    }
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

/// The network a container gets: what was asked, or the default (bridge as root,
/// slirp4netns rootless when installed, else none with a note).
fn network(asked: Option<&str>, rootless: bool) -> Result<Network> {
    let asked = asked.unwrap_or("default");
    Ok(match asked {
        "default" if rootless => match net::slirp_problem() {
            None => Network::Slirp,
            Some(why) => {
                warn(&format!(
                    "{why}: the container gets no network (--net none)"
                ));
                Network::None
            }
        },
        "default" | "bridge" if !rootless => Network::Bridge,
        "bridge" => {
            return Err(Error::invalid(
                "--net bridge needs root; rootless containers use --net slirp4netns",
            ))
        }
        "none" => Network::None,
        "host" => Network::Host,
        "slirp4netns" => match net::slirp_problem() {
            None => Network::Slirp,
            Some(why) => return Err(Error::invalid(format!("--net slirp4netns: {why}"))),
        },
        n => {
            return Err(Error::invalid(format!(
                "network {n:?} is not supported (use bridge, none, host or slirp4netns)"
            )))
        }
    })
}

/// What the security flags add up to.
struct Security {
    caps: u64,
    /// "default", "unconfined" or a profile's JSON.
    seccomp: String,
    no_new_privs: bool,
    privileged: bool,
}

/// Every capability mrun itself may hand on: its bounding set (a root without
/// CAP_SYS_RESOURCE, say, cannot give it to a container either).
fn all_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(DEFAULT_CAPS)
}

fn cap_set(names: &[String], flag: &str) -> Result<(u64, bool)> {
    let mut set = 0u64;
    let mut all = false;
    for n in names {
        if n.eq_ignore_ascii_case("ALL") {
            all = true;
            continue;
        }
        let c = crate::seccomp::cap_number(n)
            .ok_or_else(|| Error::invalid(format!("invalid {flag} {n:?}: no such capability")))?;
        set |= 1 << c;
    }
    Ok((set, all))
}

/// Docker's rules: `--cap-drop ALL` then `--cap-add` what is wanted; otherwise the default
/// set plus the added minus the dropped.
fn security(cli: &RunArgs) -> Result<Security> {
    let (add, add_all) = cap_set(&cli.cap_add, "--cap-add")?;
    let (drop, drop_all) = cap_set(&cli.cap_drop, "--cap-drop")?;
    let mut caps = if cli.privileged || add_all {
        all_caps()
    } else if drop_all {
        0
    } else {
        DEFAULT_CAPS
    };
    if drop_all && !cli.privileged {
        caps = if add_all { all_caps() } else { add };
    } else {
        caps = (caps | add) & !drop;
    }
    let mut seccomp = if cli.privileged {
        "unconfined"
    } else {
        "default"
    }
    .to_string();
    let mut no_new_privs = false;
    for o in &cli.security_opt {
        let (k, v) = o
            .split_once(['=', ':'])
            .map_or((o.as_str(), None), |(k, v)| (k, Some(v)));
        match (k, v) {
            ("seccomp", Some("unconfined")) => seccomp = "unconfined".into(),
            ("seccomp", Some(file)) if !file.is_empty() => {
                let text = std::fs::read_to_string(file).map_err(|e| Error::Io {
                    op: "read seccomp profile",
                    path: PathBuf::from(file),
                    source: e,
                })?;
                // Checked now, so a bad profile is an error before anything starts.
                crate::seccomp::compile(&crate::seccomp::Profile::parse(&text, file)?, caps)?;
                seccomp = text;
            }
            ("no-new-privileges", None | Some("true")) => no_new_privs = true,
            ("no-new-privileges", Some("false")) => no_new_privs = false,
            ("apparmor" | "label", Some(_)) => warn(&format!(
                "--security-opt {o}: this machine's minibox has no LSM support; ignored"
            )),
            _ => {
                return Err(Error::invalid(format!(
                    "invalid --security-opt {o:?} (seccomp=unconfined|FILE, no-new-privileges)"
                )))
            }
        }
    }
    Ok(Security {
        caps,
        seccomp,
        no_new_privs,
        privileged: cli.privileged,
    })
}

/// The /etc files every container gets, bind-mounted from its directory (as Docker does),
/// unless a volume of the user's already covers them.
fn etc_mounts(dir: &std::path::Path, mounts: &mut Vec<Mount>) {
    for name in ["hosts", "hostname", "resolv.conf"] {
        let dest = format!("/etc/{name}");
        if mounts.iter().any(|m| m.dest == dest) {
            continue;
        }
        mounts.push(Mount {
            dest,
            kind: MountKind::Bind {
                source: dir.join(name),
                readonly: false,
            },
        });
    }
}

pub fn run(root: &std::path::Path, cli: RunArgs) -> Result<i32> {
    // From the first moment, a SIGINT/SIGTERM waits for the container instead of killing mrun
    // half-way through its setup (which would leave the container's directory behind); once
    // the container runs, it is forwarded to it.
    crate::process::block_forwarded()?;
    let rootless = unsafe { libc::geteuid() } != 0;
    let network = network(cli.net.as_deref(), rootless)?;
    let mut ports: Vec<net::Publish> = cli
        .publish
        .iter()
        .map(|p| net::parse_publish(p))
        .collect::<Result<_>>()?;
    if !ports.is_empty() && matches!(network, Network::None | Network::Host) {
        warn(&format!(
            "published ports are discarded with --net {}",
            network.name()
        ));
        ports.clear();
    }
    // First, so nothing is read from a store another user could change (its network/).
    let store = open_store(root)?;
    let netcfg = match network {
        Network::Bridge => Some(net::NetConfig::for_store(root)?),
        _ => None,
    };
    // `host-gateway` in --add-host: the host's address on the container's network.
    let host_gateway = match network {
        Network::Bridge => netcfg.as_ref().map(|c| c.gateway().into()),
        Network::Slirp => Some(net::SLIRP_GATEWAY.into()),
        _ => None,
    };
    let add_hosts = cli
        .add_host
        .iter()
        .map(|h| net::parse_add_host(h, host_gateway))
        .collect::<Result<Vec<_>>>()?;
    let dns = cli
        .dns
        .iter()
        .map(|d| {
            d.parse::<std::net::IpAddr>()
                .map_err(|_| Error::invalid(format!("invalid --dns {d:?}: not an IP address")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut limits = Limits {
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
        ..Limits::default()
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
    let devices: Vec<Device> = cli
        .device
        .iter()
        .map(|d| device(d))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let sec = security(&cli)?;
    limits.devices = devices.iter().map(Device::rule).collect();
    limits.all_devices = sec.privileged;
    let seccomp = crate::seccomp::program_for(&sec.seccomp, sec.caps)?;
    if let Some(n) = &cli.name {
        if !state::valid_name(n) {
            return Err(Error::invalid(format!(
                "invalid container name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
    }

    let (image, command) = cli
        .image_and_command
        .split_first()
        .expect("clap requires the image");
    let pull = layers::registry::PullOptions {
        platform: cli.platform.clone(),
        ..Default::default()
    };
    let progress = layers::registry::progress::Stderr::new();
    let img = layers::registry::ensure(&store, image, cli.pull, &pull, &progress)?;
    if let Some(w) = layers::registry::platform_warning(&img) {
        eprintln!("mrun: {w}");
    }
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
    let image_config = img.config.config().as_ref();
    let process = config::process(image_config, &layer_dirs, &hostname, &overrides)?;
    let stop_signal = image_config
        .and_then(|c| c.stop_signal().clone())
        .unwrap_or_else(|| "SIGTERM".to_string());
    let (dir, owner) = state::create_dir(&store, &id, &pins)?;
    let name = cli
        .name
        .clone()
        .unwrap_or_else(|| state::generate_name(&store, &id));
    let config = state::Config {
        id: id.clone(),
        name: name.clone(),
        image: image.clone(),
        image_id: img.id().to_string(),
        created: state::now(),
        args: process.args.clone(),
        env: process.env.clone(),
        cwd: process.cwd.clone(),
        uid: process.uid,
        gid: process.gid,
        groups: process.groups.clone(),
        caps: sec.caps,
        hostname: hostname.clone(),
        network: network.name().to_string(),
        ports: cli.publish.clone(),
        auto_remove: cli.rm,
        stop_signal,
        tty: cli.tty,
        interactive: cli.interactive,
        init: cli.init,
        detached: cli.detach,
        userns: rootless,
        memory: limits.memory,
        cpus: limits.cpus,
        pids_limit: limits.pids,
        layers: layer_dirs.clone(),
        seccomp: sec.seccomp.clone(),
        no_new_privs: sec.no_new_privs,
        privileged: sec.privileged,
    };
    // Recorded before the name is taken: a kill in between leaves a container `rm` and
    // `prune` know about, never a name pointing at nothing.
    let recorded = state::save_config(&dir, &config)
        .and_then(|()| state::save_state(&dir, &state::State::default()))
        .and_then(|()| state::claim_name(&store, &name, &id));
    if let Err(e) = recorded {
        state::release_name(&store, &name, &id);
        let _ = layers::store::remove_all(&dir);
        return Err(e);
    }
    etc_mounts(&dir, &mut mounts);
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
        caps: sec.caps,
        seccomp,
        no_new_privs: sec.no_new_privs,
        masked_paths: !sec.privileged,
        nodev: !sec.privileged,
    };
    let launch = monitor::Launch {
        spec,
        config,
        owner,
        net: netcfg,
        ports,
        add_hosts,
        dns,
    };
    if cli.detach {
        monitor::detach(&store, launch)?;
        println!("{id}");
        return Ok(0);
    }
    let outcome = monitor::run(&store, launch, monitor::Mode::Foreground)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> Device {
        let mut v = device(spec).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    #[test]
    fn a_device_node_is_read_with_docker_s_forms() {
        let null = one("/dev/null");
        assert_eq!(
            (null.dest.as_str(), null.kind, null.major, null.minor),
            ("/dev/null", DeviceKind::Char, 1, 3)
        );
        assert_eq!(null.access, DeviceAccess::RWM);
        assert_eq!(one("/dev/null:r").access, DeviceAccess::READ);
        let x = one("/dev/null:/dev/x:rw");
        assert_eq!(
            (x.dest.as_str(), x.access.to_string()),
            ("/dev/x", "rw".into())
        );
        assert_eq!(one("/dev/null:/dev/x").access, DeviceAccess::RWM);
        for bad in [
            "/dev/null:/dev/x:q",
            "/dev/null:/dev/x:r:r",
            "/dev/null:/x:rr",
        ] {
            assert_eq!(
                device(bad).unwrap_err().to_string(),
                format!("invalid device specification: {bad:?}")
            );
        }
    }

    #[test]
    fn a_regular_file_missing_path_or_empty_directory_is_not_a_device() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("f");
        std::fs::write(&file, "x").unwrap();
        // A symlink inside a directory is not followed, as Docker's walk does not.
        std::os::unix::fs::symlink("/dev/null", t.path().join("link")).unwrap();
        for (p, why) in [
            (file.clone(), "not a device node"),
            (t.path().to_path_buf(), "not a device node"),
            (t.path().join("missing"), "no such file or directory"),
        ] {
            assert_eq!(
                device(p.to_str().unwrap()).unwrap_err().to_string(),
                format!(
                    "error gathering device information while adding custom device {:?}: {why}",
                    p.display().to_string()
                )
            );
        }
        // A symlink named on the command line is followed to its node.
        let link = one(t.path().join("link").to_str().unwrap());
        assert_eq!((link.major, link.minor), (1, 3));
    }

    #[test]
    fn a_directory_gives_every_node_below_it_under_the_container_path() {
        let all = device("/dev:/hostdev/:r").unwrap();
        let null = all
            .iter()
            .find(|d| d.host == Path::new("/dev/null"))
            .expect("/dev/null among /dev's nodes");
        assert_eq!(null.dest, "/hostdev/null");
        assert_eq!(
            (null.major, null.minor, null.access),
            (1, 3, DeviceAccess::READ)
        );
        assert!(all.iter().all(|d| d.dest.starts_with("/hostdev/")));
        assert!(all.iter().all(|d| d.major != 0));
        // Nested directories keep their relative paths.
        if let Some(tun) = all.iter().find(|d| d.host == Path::new("/dev/net/tun")) {
            assert_eq!(tun.dest, "/hostdev/net/tun");
            assert_eq!(
                (tun.kind, tun.major, tun.minor),
                (DeviceKind::Char, 10, 200)
            );
        }
    }
}
