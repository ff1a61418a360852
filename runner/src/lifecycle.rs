//! What `mrun ps/logs/stop/kill/rm/wait/inspect` do, on the store's container directories
//! (see `state`), and the sweep that `rm` and `mbuild prune` use to clear what a dead
//! monitor left: its cgroup, its address lease and network, its directory.

use crate::cgroup::{self, Cgroup};
use crate::error::{Error, IoContext, Result};
use crate::net;
use crate::state::{self, Container, Status};
use layers::Store;
use std::ffi::c_int;
use std::fs;
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long `rm -f` and `stop` wait for a monitor to finish after its container died.
const MONITOR_GRACE: Duration = Duration::from_secs(10);

fn send(pidfd: &OwnedFd, sig: c_int) -> std::io::Result<()> {
    // SAFETY: a pidfd of ours and no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Wait until the process behind `pidfd` has ended; false on timeout.
fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as c_int) };
        if r > 0 {
            return true;
        }
        if r == 0 {
            return false;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
}

/// Wait for the monitor to have recorded the end (its lock free, or the container gone):
/// on its pidfd when it can be named, which wakes at once, then the lock to be sure.
fn wait_monitor(c: &Container, timeout: Duration) -> Result<()> {
    let dir = &c.dir;
    if !dir.exists() {
        return Ok(());
    }
    if let Some(fd) = state::pidfd_of(c.state.monitor_pid, c.state.monitor_start) {
        wait_exit(&fd, timeout);
    }
    match state::own_within(dir, timeout) {
        Ok(_) => Ok(()),
        Err(_) if !dir.exists() => Ok(()),
        Err(e) => Err(e),
    }
}

/// A container whose monitor is still starting it (owned, not yet running): wait until it
/// runs or its monitor is gone, so that stop, kill and rm -f find a process to signal.
fn settle(c: &Container) -> Container {
    let deadline = Instant::now() + MONITOR_GRACE;
    let mut now = c.clone();
    while now.owned && now.state.status == Status::Created && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        match Container::load(&c.dir) {
            Ok(x) => now = x,
            Err(_) => break,
        }
    }
    now
}

/// Signal numbers by name: "SIGTERM", "TERM", "15", "SIGRTMIN+3".
pub fn parse_signal(s: &str) -> Result<c_int> {
    let bad = || Error::invalid(format!("invalid signal: {s}"));
    if let Ok(n) = s.parse::<c_int>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    const NAMES: [(&str, c_int); 31] = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("ILL", libc::SIGILL),
        ("TRAP", libc::SIGTRAP),
        ("ABRT", libc::SIGABRT),
        ("IOT", libc::SIGIOT),
        ("BUS", libc::SIGBUS),
        ("FPE", libc::SIGFPE),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("SEGV", libc::SIGSEGV),
        ("USR2", libc::SIGUSR2),
        ("PIPE", libc::SIGPIPE),
        ("ALRM", libc::SIGALRM),
        ("TERM", libc::SIGTERM),
        ("STKFLT", libc::SIGSTKFLT),
        ("CHLD", libc::SIGCHLD),
        ("CONT", libc::SIGCONT),
        ("STOP", libc::SIGSTOP),
        ("TSTP", libc::SIGTSTP),
        ("TTIN", libc::SIGTTIN),
        ("TTOU", libc::SIGTTOU),
        ("URG", libc::SIGURG),
        ("XCPU", libc::SIGXCPU),
        ("XFSZ", libc::SIGXFSZ),
        ("VTALRM", libc::SIGVTALRM),
        ("PROF", libc::SIGPROF),
        ("WINCH", libc::SIGWINCH),
        ("IO", libc::SIGIO),
        ("SYS", libc::SIGSYS),
    ];
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(n);
    }
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: c_int = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('+')
                .and_then(|r| r.parse().ok())
                .ok_or_else(bad)?
        };
        let n = libc::SIGRTMIN() + off;
        if n <= libc::SIGRTMAX() {
            return Ok(n);
        }
    }
    Err(bad())
}

/// `mrun kill`: send `sig` to the container's first process.
pub fn kill(c: &Container, sig: c_int) -> Result<()> {
    let c = &settle(c);
    let pidfd = c
        .running()
        .then(|| state::pidfd(&c.state))
        .flatten()
        .ok_or_else(|| {
            Error::Conflict(format!(
                "cannot kill container {}: container is not running",
                c.config.name
            ))
        })?;
    send(&pidfd, sig).map_err(|e| Error::Sys("kill", e))
}

/// `mrun stop`: the stop signal, then SIGKILL after `timeout`; returns once the monitor
/// recorded the end. A container that is not running is left as it is.
pub fn stop(c: &Container, timeout: Duration) -> Result<()> {
    stop_all(std::slice::from_ref(c), timeout)
        .pop()
        .unwrap_or(Ok(()))
}

/// `mrun stop` of several containers: all are signalled first, then waited for together, as
/// `docker stop` does; the grace period is one for all. One result per container.
pub fn stop_all(cs: &[Container], timeout: Duration) -> Vec<Result<()>> {
    let cs: Vec<Container> = cs.iter().map(settle).collect();
    let fds: Vec<Option<OwnedFd>> = cs
        .iter()
        .map(|c| {
            let fd = c.running().then(|| state::pidfd(&c.state)).flatten()?;
            let sig = parse_signal(&c.config.stop_signal).unwrap_or(libc::SIGTERM);
            let _ = send(&fd, sig);
            Some(fd)
        })
        .collect();
    let deadline = Instant::now() + timeout;
    for fd in fds.iter().flatten() {
        if !wait_exit(fd, deadline.saturating_duration_since(Instant::now())) {
            let _ = send(fd, libc::SIGKILL);
        }
    }
    cs.iter()
        .zip(&fds)
        .map(|(c, fd)| {
            if let Some(fd) = fd {
                wait_exit(fd, MONITOR_GRACE);
            }
            if c.running() {
                wait_monitor(c, MONITOR_GRACE)
            } else {
                Ok(())
            }
        })
        .collect()
}

/// `mrun wait`: block until the container is not running; its exit code.
pub fn wait(store: &Store, c: &Container) -> Result<i32> {
    if c.running() {
        // The monitor holds the lock until it recorded the end: a shared lock waits for it.
        let p = c.dir.join("lock");
        if let Ok(f) = fs::File::open(&p) {
            let _ = rustix::fs::flock(&f, rustix::fs::FlockOperation::LockShared);
        }
    }
    match Container::load(&c.dir) {
        Ok(now) => Ok(now.state.exit_code.unwrap_or(0)),
        // Removed on exit (--rm): Docker reports what it knew; we know no code.
        Err(_) if !c.dir.exists() => {
            let _ = store;
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

/// Clear everything a container whose monitor is gone may have left, and remove it.
/// The caller owns its lock.
fn remove_dead(store: &Store, dir: &Path, id: &str) -> Result<()> {
    let config = state::load_config(dir).ok();
    let st = state::load_state(dir).ok();
    // Its cgroup: by the record, or where a cgroup for it would be.
    let record = st.as_ref().and_then(|s| s.cgroup.clone());
    let mut cg = match record {
        Some(r) => Some(Cgroup::reopen(&r)?),
        None => cgroup::detect()
            .ok()
            .and_then(|h| Cgroup::leftover(&h, id).ok()),
    };
    if let Some(c) = cg.as_mut() {
        c.destroy()?;
    }
    let netcfg = net::NetConfig::for_store(store.root())?;
    net::detach(&netcfg, id)?;
    state::remove_dir(store, dir, config.as_ref().map(|c| c.name.as_str()), id)
}

/// `mrun rm`: remove a container that is not running (`force`: kill it first).
pub fn remove(store: &Store, c: &Container, force: bool) -> Result<()> {
    let c = &if force { settle(c) } else { c.clone() };
    if c.owned && c.state.status == Status::Created && !force {
        return Err(Error::Conflict(format!(
            "cannot remove container \"/{}\": it is being started: use -f",
            c.config.name
        )));
    }
    if c.running() {
        if !force {
            return Err(Error::Conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                c.config.name
            )));
        }
        if let Some(pidfd) = state::pidfd(&c.state) {
            let _ = send(&pidfd, libc::SIGKILL);
            wait_exit(&pidfd, MONITOR_GRACE);
        }
        if let Some(fd) = state::pidfd_of(c.state.monitor_pid, c.state.monitor_start) {
            wait_exit(&fd, MONITOR_GRACE);
        }
    }
    if !c.dir.exists() {
        return Ok(());
    }
    let owner = match state::own_within(&c.dir, MONITOR_GRACE) {
        Ok(Some(o)) => o,
        Ok(None) => {
            return Err(Error::Conflict(format!(
                "container {} is still being looked after by its monitor",
                c.short_id()
            )))
        }
        Err(_) if !c.dir.exists() => return Ok(()),
        Err(e) => return Err(e),
    };
    let r = remove_dead(store, &c.dir, &c.config.id);
    drop(owner);
    r
}

/// What `sweep` did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Containers found running with their monitor gone, now recorded as exited.
    pub reaped: Vec<String>,
    /// Directories removed: unfinished containers, builder steps, `--rm` leftovers.
    pub removed: Vec<String>,
}

/// For `mbuild prune`: every container directory nobody owns any more is cleaned up. Those
/// a user can still see (`ps -a`) stay, recorded as exited, with their cgroup and network
/// released; the rest (no config, never started, or `--rm`) go entirely.
pub fn sweep(store: &Store) -> Result<Swept> {
    let mut out = Swept::default();
    let dir = state::containers_dir(store);
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).ctx("read directory", &dir),
    };
    for e in rd.flatten() {
        let path = e.path();
        let id = e.file_name().to_string_lossy().into_owned();
        let Some(owner) = state::try_own(&path)? else {
            continue;
        };
        let config = state::load_config(&path).ok();
        // One whose maker died before it ever started (still "created") was never a
        // container anyone saw run: it goes, like one without a config.
        let started = state::load_state(&path).is_ok_and(|s| s.status != Status::Created);
        match config {
            Some(cfg) if !cfg.auto_remove && started => {
                let mut st = state::load_state(&path).unwrap_or_default();
                if st.status != Status::Exited || st.cgroup.is_some() {
                    if let Some(r) = st.cgroup.take() {
                        Cgroup::reopen(&r)?.destroy()?;
                    }
                    let netcfg = net::NetConfig::for_store(store.root())?;
                    net::detach(&netcfg, &id)?;
                    if st.status != Status::Exited {
                        st.status = Status::Exited;
                        st.exit_code.get_or_insert(state::EXIT_UNKNOWN);
                        st.error
                            .get_or_insert_with(|| "its monitor process died".to_string());
                        st.finished_at.get_or_insert_with(state::now);
                        out.reaped.push(id.clone());
                    }
                    state::save_state(&path, &st)?;
                }
            }
            _ => {
                remove_dead(store, &path, &id)?;
                out.removed.push(id);
            }
        }
        drop(owner);
    }
    state::drop_dangling_names(store);
    Ok(out)
}

/// `mrun logs`: the container's output, each record to stdout or stderr as it was
/// written; `follow` keeps reading until the container stops.
pub fn logs(
    c: &Container,
    follow: bool,
    tail: Option<usize>,
    timestamps: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let path = c.dir.join("log");
    let file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if c.config.auto_remove && !c.config.detached {
                return Err(Error::invalid(
                    "this container keeps no log (it runs in the foreground with --rm)",
                ));
            }
            return Ok(());
        }
        Err(e) => return Err(e).ctx("open", &path),
    };
    let mut reader = std::io::BufReader::new(file);
    let show = |line: &str, out: &mut dyn Write, err: &mut dyn Write| -> Result<()> {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return Ok(());
        };
        let text = v["log"].as_str().unwrap_or("");
        let to: &mut dyn Write = if v["stream"] == "stderr" { err } else { out };
        let r = if timestamps {
            write!(to, "{} {text}", v["time"].as_str().unwrap_or(""))
        } else {
            to.write_all(text.as_bytes())
        };
        r.and_then(|()| to.flush())
            .map_err(|e| Error::Sys("write", e))
    };
    let mut first: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| Error::Sys("read the log", e))?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        first.push(line.clone());
    }
    let skip = tail.map_or(0, |t| first.len().saturating_sub(t));
    for l in &first[skip..] {
        show(l, out, err)?;
    }
    if !follow {
        return Ok(());
    }
    // A partial last line is still being written: keep it and read on.
    let mut pending = line.clone();
    loop {
        let mut more = String::new();
        let n = reader
            .read_line(&mut more)
            .map_err(|e| Error::Sys("read the log", e))?;
        if n > 0 {
            pending.push_str(&more);
            if pending.ends_with('\n') {
                show(&pending, out, err)?;
                pending.clear();
            }
            continue;
        }
        let running = Container::load(&c.dir)
            .map(|x| x.running())
            .unwrap_or(false);
        if !running {
            // One more pass: what the monitor wrote before it let go.
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
            pending.push_str(&rest);
            for l in pending.lines() {
                show(&format!("{l}\n"), out, err)?;
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// "Up 5 seconds", "Exited (0) 3 minutes ago", "Created".
pub fn status_text(c: &Container) -> String {
    let since = |t: &Option<String>| {
        let secs = t
            .as_deref()
            .and_then(layers::image::parse_rfc3339)
            .map(|t| now_secs() - t)
            .unwrap_or(0);
        layers::units::human_duration(secs)
    };
    match c.state.status {
        _ if c.running() => format!("Up {}", since(&c.state.started_at)),
        Status::Created => "Created".to_string(),
        _ => format!(
            "Exited ({}) {} ago",
            c.state.exit_code.unwrap_or(0),
            since(&c.state.finished_at)
        ),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `mrun ps`: Docker's columns.
pub fn ps(store: &Store, all: bool, quiet: bool, out: &mut dyn Write) -> Result<()> {
    let list: Vec<Container> = state::list(store)?
        .into_iter()
        .filter(|c| all || c.running())
        .collect();
    let w = |e: std::io::Error| Error::Sys("write", e);
    if quiet {
        for c in &list {
            writeln!(out, "{}", c.short_id()).map_err(w)?;
        }
        return Ok(());
    }
    let mut rows = vec![[
        "CONTAINER ID".to_string(),
        "IMAGE".into(),
        "COMMAND".into(),
        "CREATED".into(),
        "STATUS".into(),
        "PORTS".into(),
        "NAMES".into(),
    ]];
    for c in &list {
        let mut cmd = c.config.args.join(" ");
        if cmd.chars().count() > 20 {
            cmd = cmd.chars().take(19).collect::<String>() + "…";
        }
        rows.push([
            c.short_id().to_string(),
            c.config.image.clone(),
            format!("\"{cmd}\""),
            layers::units::human_duration_since(&c.config.created),
            status_text(c),
            c.config.ports.join(", "),
            c.config.name.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i == 6 {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        writeln!(out, "{}", line.trim_end()).map_err(w)?;
    }
    Ok(())
}

/// `mrun inspect`: Docker's shape, with what minibox knows.
pub fn inspect(c: &Container) -> serde_json::Value {
    let (cfg, st) = (&c.config, &c.state);
    let running = c.running();
    serde_json::json!({
        "Id": cfg.id,
        "Created": cfg.created,
        "Path": cfg.args.first(),
        "Args": cfg.args.get(1..).unwrap_or(&[]),
        "State": {
            "Status": if running { "running" } else { st.status.as_str() },
            "Running": running,
            "Pid": if running { st.pid } else { 0 },
            "MonitorPid": if running { st.monitor_pid } else { 0 },
            "ExitCode": st.exit_code.unwrap_or(0),
            "OOMKilled": st.oom_killed,
            "Error": st.error.clone().unwrap_or_default(),
            "StartedAt": st.started_at.clone().unwrap_or_default(),
            "FinishedAt": st.finished_at.clone().unwrap_or_default(),
        },
        "Image": cfg.image_id,
        "Name": format!("/{}", cfg.name),
        "LogPath": c.dir.join("log"),
        "HostsPath": c.dir.join("hosts"),
        "ResolvConfPath": c.dir.join("resolv.conf"),
        "HostnamePath": c.dir.join("hostname"),
        "HostConfig": {
            "NetworkMode": cfg.network,
            "AutoRemove": cfg.auto_remove,
            "Init": cfg.init,
            "Memory": cfg.memory.unwrap_or(0),
            "NanoCpus": cfg.cpus.map_or(0, |c| (c * 1e9) as i64),
            "PidsLimit": cfg.pids_limit,
            "PortBindings": cfg.ports,
            "CapAdd": serde_json::Value::Null,
        },
        "Config": {
            "Hostname": cfg.hostname,
            "User": format!("{}:{}", cfg.uid, cfg.gid),
            "Tty": cfg.tty,
            "OpenStdin": cfg.interactive,
            "Env": cfg.env,
            "Cmd": cfg.args,
            "Image": cfg.image,
            "WorkingDir": cfg.cwd,
            "StopSignal": cfg.stop_signal,
        },
        "NetworkSettings": {
            "IPAddress": st.ip.clone().unwrap_or_default(),
            "Gateway": st.gateway.clone().unwrap_or_default(),
            "Ports": cfg.ports,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("term").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("99").is_err());
    }
}
