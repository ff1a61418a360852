//! The process that looks after one container from start to end, as conmon does for
//! Podman, with no daemon: mrun itself for a foreground container, a forked copy of it for a
//! detached one (`mrun -d`). It starts the container, wires its network, relays or logs its
//! output, records its state, and when the container's first process ends it reaps it,
//! removes its cgroup and network, and records the exit. It holds the container's lock
//! (see `state`) for all that time: when it is gone, whoever looks knows.

use crate::container::{self, Outcome, RunOptions, Start};
use crate::error::{Error, Result};
use crate::net;
use crate::process::{self, Exit};
use crate::spec::{Network, Spec};
use crate::state::{self, Config, State, Status};
use crate::tty;
use layers::Store;
use std::ffi::c_int;
use std::fs::{self, File};
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// Everything mrun prepared for the container.
pub struct Launch {
    pub spec: Spec,
    pub config: Config,
    pub owner: state::Owner,
    pub net: Option<net::NetConfig>,
    pub ports: Vec<net::Publish>,
    pub add_hosts: Vec<(String, IpAddr)>,
    pub dns: Vec<IpAddr>,
}

pub enum Mode {
    /// mrun in the terminal: output to ours (and to the log unless removed on exit),
    /// signals forwarded, a terminal in raw mode with `-t`.
    Foreground,
    /// The forked monitor of `mrun -d`: output only to the log; `ready` gets "ok" once the
    /// command runs, or the error.
    Detached { ready: OwnedFd },
}

/// Bytes a log record holds at most, as Docker's json-file splits long lines.
const LOG_CHUNK: usize = 16 * 1024;

/// The container's log: one JSON object per line (Docker's json-file format), each line
/// of output one record with its stream and time.
struct Log {
    file: File,
    partial: [Vec<u8>; 2],
}

impl Log {
    fn create(path: &std::path::Path) -> Result<Log> {
        use crate::error::IoContext;
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .ctx("create", path)?;
        Ok(Log {
            file,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Output `data` of stream 0 (stdout) or 1 (stderr).
    fn write(&mut self, stream: usize, mut data: &[u8]) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[stream]);
            line.extend_from_slice(&data[..=i]);
            self.record(stream, &line);
            data = &data[i + 1..];
        }
        self.partial[stream].extend_from_slice(data);
        while self.partial[stream].len() >= LOG_CHUNK {
            let rest = self.partial[stream].split_off(LOG_CHUNK);
            let chunk = std::mem::replace(&mut self.partial[stream], rest);
            self.record(stream, &chunk);
        }
    }

    fn flush(&mut self) {
        for s in 0..2 {
            let p = std::mem::take(&mut self.partial[s]);
            if !p.is_empty() {
                self.record(s, &p);
            }
        }
    }

    fn record(&mut self, stream: usize, bytes: &[u8]) {
        let rec = serde_json::json!({
            "log": String::from_utf8_lossy(bytes),
            "stream": if stream == 0 { "stdout" } else { "stderr" },
            "time": state::now(),
        });
        let mut line = rec.to_string();
        line.push('\n');
        // A full disk loses log lines, never the container.
        let _ = self.file.write_all(line.as_bytes());
    }
}

fn write_etc_files(l: &Launch, ip: Option<std::net::Ipv4Addr>) -> Result<()> {
    use crate::error::IoContext;
    let etc = net::Etc {
        network: l.spec.network,
        hostname: &l.spec.hostname,
        ip,
        add_hosts: &l.add_hosts,
        dns: &l.dns,
    };
    for (name, text) in etc.files(|p| fs::read_to_string(p).unwrap_or_default()) {
        let p = l.spec.dir.join(name);
        fs::write(&p, text).ctx("write", &p)?;
    }
    Ok(())
}

/// Run the container to its end. Errors before its command runs are returned (and recorded
/// in its state unless it is removed on exit).
pub fn run(store: &Store, l: Launch, mode: Mode) -> Result<Outcome> {
    let mut st = State::default();
    let result = supervise(&l, &mode, &mut st);
    if let Some(cfg) = &l.net {
        if let Err(e) = net::detach(cfg, &l.config.id) {
            warn_or_note(&mode, &format!("network cleanup: {e}"));
        }
    }
    let dir = &l.spec.dir;
    match &result {
        Ok(o) => {
            st.status = Status::Exited;
            st.exit_code = Some(report_code(o));
            st.oom_killed = o.oom_killed;
        }
        Err(e) => {
            st.status = Status::Exited;
            st.exit_code = Some(e.exit_code());
            st.error = Some(e.to_string());
        }
    }
    st.finished_at = Some(state::now());
    if l.config.auto_remove {
        let _ = state::remove_dir(store, dir, Some(&l.config.name), &l.config.id);
    } else {
        let _ = state::save_state(dir, &st);
    }
    if let (Err(e), Mode::Detached { ready }) = (&result, &mode) {
        let text = e.to_string().replace('\n', " ");
        tell(ready.as_fd(), &format!("{}\t{text}\n", e.exit_code()));
    }
    drop(l.owner);
    result
}

/// The exit code Docker reports for an outcome.
pub fn report_code(o: &Outcome) -> i32 {
    o.exit.code()
}

fn warn_or_note(mode: &Mode, msg: &str) {
    if let Mode::Foreground = mode {
        eprintln!("mrun: {msg}");
    }
}

fn tell(fd: BorrowedFd<'_>, msg: &str) {
    // SAFETY: writing our own buffer to a pipe we hold.
    unsafe { libc::write(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
}

fn warn_stderr(msg: &str) {
    eprintln!("mrun: {msg}");
}

fn supervise(l: &Launch, mode: &Mode, st: &mut State) -> Result<Outcome> {
    let fg = matches!(mode, Mode::Foreground);
    let cfg = &l.config;
    // A foreground container removed on exit has no log to keep: its output goes straight
    // to ours (the fast path: no relay).
    let logging = !(fg && cfg.auto_remove);
    let tty = cfg.tty;
    let known_ip = (l.spec.network == Network::Slirp).then_some(net::SLIRP_GUEST);
    write_etc_files(l, known_ip)?;

    // Without -t, pipes wherever ours are terminals (and for logged output); with -t the
    // container's own terminal takes fds 0-2.
    let mut stdio = if tty {
        None
    } else {
        Some(
            tty::PipedStdio::new(fg && cfg.interactive, logging)
                .map_err(|e| Error::Sys("set up the container's stdio", e))?,
        )
    };

    // Made before the start, so `mrun logs` right after `mrun -d` finds it.
    let log = if logging {
        Some(Log::create(&l.spec.dir.join("log"))?)
    } else {
        None
    };
    let mut attachment = None;
    let mut proxies = None;
    let mut slirp = None;
    let mut wire = |pid: i32| -> Result<()> {
        match l.spec.network {
            Network::Bridge => {
                let netcfg = l.net.as_ref().expect("bridge needs a config");
                let a = net::attach(netcfg, &cfg.id, pid)?;
                write_etc_files(l, Some(a.ip))?;
                if !l.ports.is_empty() {
                    proxies = Some(net::publish(&l.ports, a.ip)?);
                }
                attachment = Some(a);
            }
            Network::Slirp => {
                slirp = Some(net::start_slirp(pid, &l.ports, &l.spec.dir)?);
            }
            Network::None | Network::Host => {}
        }
        Ok(())
    };
    let started = container::start(
        &l.spec,
        &RunOptions {
            // Detached too: a SIGTERM to the monitor reaches the container, as with mrun.
            forward_signals: true,
            keep: true,
            warn: if fg { warn_stderr } else { |_| {} },
        },
        Start {
            stdio: stdio.as_ref().map_or([-1; 3], |s| s.fds),
            pty: tty,
            init: cfg.init,
            before_release: Some(&mut wire),
        },
    )?;
    let readers = match stdio.as_mut() {
        Some(s) => {
            s.started()
                .map_err(|e| Error::Sys("relay the container's stdin", e))?;
            std::mem::take(&mut s.outputs)
        }
        None => [None, None],
    };

    st.status = Status::Running;
    st.pid = started.child.pid;
    st.pid_start = state::start_time(st.pid).unwrap_or(0);
    st.monitor_pid = std::process::id() as i32;
    st.monitor_start = state::start_time(st.monitor_pid).unwrap_or(0);
    st.started_at = Some(state::now());
    st.cgroup = started.cgroup();
    if let Some(a) = &attachment {
        st.ip = Some(a.ip.to_string());
        st.gateway = Some(a.gateway.to_string());
    }
    state::save_state(&l.spec.dir, st)?;
    if let Mode::Detached { ready } = mode {
        tell(ready.as_fd(), "ok\n");
    }

    let exit = match (&started.pty, readers) {
        (Some(master), _) => {
            let master = master.try_clone().map_err(|e| Error::Sys("dup", e))?;
            watch_tty(
                &started.child,
                Some(&started.child),
                master,
                log,
                fg,
                cfg.interactive,
                false,
            )?
        }
        (None, [None, None]) => started.child.wait(fg)?,
        (None, readers) => watch_pipes(&started.child, Some(&started.child), readers, log, fg)?,
    };
    drop(proxies);
    drop(slirp);
    started.finish(exit)
}

/// `mrun exec` without -t: wait for `waited`, its output on `readers` (see
/// `tty::PipedStdio`) copied to ours, our signals passed to `target`.
pub(crate) fn watch_output(
    waited: &process::Child,
    target: Option<&process::Child>,
    readers: [Option<OwnedFd>; 2],
) -> Result<Exit> {
    watch_pipes(waited, target, readers, None, true)
}

/// Wait for `child`, writing what it prints on the pipes `readers` (stdout, stderr; None
/// for one not piped) to the log and, in the foreground, to our stdout and stderr; our
/// signals go to `target`.
fn watch_pipes(
    child: &process::Child,
    target: Option<&process::Child>,
    readers: [Option<OwnedFd>; 2],
    mut log: Option<Log>,
    fg: bool,
) -> Result<Exit> {
    let sigfd = Some(process::signalfd()?);
    let mut open = [readers[0].is_some(), readers[1].is_some()];
    let raw = |s: usize| readers[s].as_ref().map_or(-1, |r| r.as_raw_fd());
    let mut exit = None;
    let mut drain_deadline = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if exit.is_some() && !open[0] && !open[1] {
            break;
        }
        let mut fds = [
            pollfd(child.pidfd().as_raw_fd(), exit.is_none()),
            pollfd(raw(0), open[0]),
            pollfd(raw(1), open[1]),
            pollfd(sigfd.as_ref().map_or(-1, |f| f.as_raw_fd()), exit.is_none()),
        ];
        // Once the process is gone the rest of its PID namespace is too, so the pipes reach
        // EOF at once; a copy of them passed out of the container must not hold us forever.
        let timeout = match drain_deadline {
            Some(d) => {
                let left = d - Instant::now().min(d);
                if left.is_zero() {
                    break;
                }
                left.as_millis() as c_int
            }
            None => -1,
        };
        // SAFETY: a valid array of pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if r < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Error::last_os("poll"));
        }
        for s in 0..2 {
            if let (Some(r), true) = (&readers[s], fds[1 + s].revents != 0) {
                let n = read_some(r.as_fd(), &mut buf);
                if n == 0 {
                    open[s] = false;
                    continue;
                }
                let data = &buf[..n];
                if let Some(l) = log.as_mut() {
                    l.write(s, data);
                }
                if fg {
                    let _ = write_all_fd(if s == 0 { 1 } else { 2 }, data);
                }
            }
        }
        if fds[3].revents & libc::POLLIN != 0 {
            if let Some(sig) = sigfd.as_ref().and_then(|f| process::read_signal(f.as_fd())) {
                if let Some(t) = target {
                    t.kill(sig);
                }
            }
        }
        if fds[0].revents & libc::POLLIN != 0 {
            exit = Some(child.reap()?);
            drain_deadline = Some(Instant::now() + Duration::from_secs(2));
        }
    }
    if let Some(l) = log.as_mut() {
        l.flush();
    }
    Ok(exit.expect("the loop ends after the exit"))
}

fn pollfd(fd: c_int, want: bool) -> libc::pollfd {
    libc::pollfd {
        fd: if want { fd } else { -1 },
        events: libc::POLLIN,
        revents: 0,
    }
}

/// read(2) once; 0 on EOF or error.
fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> usize {
    loop {
        // SAFETY: reading into our own buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return n.max(0) as usize;
    }
}

fn write_all_fd(fd: c_int, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        // SAFETY: writing from our own buffer.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// `mrun exec -t`: wait for `waited`, with the terminal relayed to ours and our signals
/// passed to `target`.
pub(crate) fn watch_terminal(
    waited: &process::Child,
    target: Option<&process::Child>,
    master: OwnedFd,
    interactive: bool,
) -> Result<Exit> {
    watch_tty(waited, target, master, None, true, interactive, true)
}

/// The same with a terminal: the master's output to the log (and our stdout), our stdin
/// to the master with `-i`, our terminal in raw mode meanwhile and its size passed on.
fn watch_tty(
    child: &process::Child,
    target: Option<&process::Child>,
    master: OwnedFd,
    mut log: Option<Log>,
    fg: bool,
    interactive: bool,
    exec: bool,
) -> Result<Exit> {
    let stdin = std::io::stdin();
    let raw = if fg {
        tty::RawMode::enable(stdin.as_fd())
            .map_err(|e| Error::Sys("set the terminal to raw mode", e))?
    } else {
        None
    };
    if fg {
        tty::copy_window_size(stdin.as_fd(), master.as_fd());
    }
    let sink: tty::Sink = Box::new(move |data: &[u8]| {
        if let Some(l) = log.as_mut() {
            l.write(0, data);
        }
        if fg {
            write_all_fd(1, data)?;
        }
        Ok(())
    });
    let input = if fg && interactive {
        Some(
            stdin
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::Sys("dup stdin", e))?,
        )
    } else {
        None
    };
    let relay = tty::relay(master, input, sink).map_err(|e| Error::Sys("relay the terminal", e))?;
    let sigfd = Some(process::signalfd()?);
    let exit = loop {
        let mut fds = [
            pollfd(child.pidfd().as_raw_fd(), true),
            pollfd(sigfd.as_ref().map_or(-1, |f| f.as_raw_fd()), true),
        ];
        // SAFETY: a valid array of pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Error::last_os("poll"));
        }
        if fds[1].revents & libc::POLLIN != 0 {
            match sigfd.as_ref().and_then(|f| process::read_signal(f.as_fd())) {
                // The terminal changed size: the kernel tells the container's foreground
                // process group when its terminal does.
                Some(libc::SIGWINCH) => tty::copy_window_size(stdin.as_fd(), relay.master()),
                Some(sig) => {
                    if let Some(t) = target {
                        t.kill(sig);
                    }
                }
                None => {}
            }
        }
        if fds[0].revents & libc::POLLIN != 0 {
            break child.reap()?;
        }
    };
    if exec {
        // A background job of an exec'd command may hold the terminal after it ended;
        // the container's end would close it, an exec's does not.
        relay.finish_timeout(Duration::from_millis(500));
    } else {
        relay.finish();
    }
    drop(raw);
    Ok(exit)
}

/// For `mrun -d`: fork the monitor, which runs the container; here, wait until it says the
/// command runs (then return the id) or failed (then return its error).
pub fn detach(store: &Store, l: Launch) -> Result<()> {
    let (r, w) = tty::pipe().map_err(|e| Error::Sys("pipe", e))?;
    // SAFETY: mrun is single-threaded here (no thread was started before), so the child
    // may go on running Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::last_os("fork the monitor"));
    }
    if pid == 0 {
        drop(r);
        // SAFETY: plain system calls in the new process.
        unsafe {
            libc::setsid();
            // Hold no directory of the caller's busy (an unmount, a removed cwd).
            libc::chdir(c"/".as_ptr());
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
        let _ = run(store, l, Mode::Detached { ready: w });
        // SAFETY: leave without running the parent's atexit handlers twice.
        unsafe { libc::_exit(0) };
    }
    drop(w);
    drop(l);
    // One line: "ok", or the exit code and the error. EOF first: the monitor died.
    let mut msg = String::new();
    let _ = std::io::BufReader::new(File::from(r)).read_line(&mut msg);
    let msg = msg.trim_end_matches('\n');
    if msg == "ok" {
        return Ok(());
    }
    let (code, text) = msg
        .split_once('\t')
        .map(|(c, t)| (c.parse().unwrap_or(125), t.to_string()))
        .unwrap_or((
            125,
            "the monitor process died before the container started".into(),
        ));
    Err(Error::Detached {
        code,
        message: text,
    })
}
