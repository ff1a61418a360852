//! Clone the container process and look after it: clone3(2) into the new namespaces (and,
//! on cgroup v2, straight into its cgroup), id maps and cgroup membership written by the
//! parent before the child is released, setup failures reported back over a CLOEXEC
//! socketpair (EOF means exec succeeded), then signal forwarding and the exit status.

use crate::cgroup::Cgroup;
use crate::child::{self, Failure, Plan};
use crate::error::{Error, IoContext, Result, EXIT_FAILED};
use crate::spec::{IdMap, IdMaps};
use crate::syscall::Linux;
use std::ffi::c_int;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// The namespaces a container gets, user first (it owns the others) and mount last, the
/// order in which they must be joined with setns(2).
pub const NAMESPACES: [(u64, &str); 7] = [
    (libc::CLONE_NEWUSER as u64, "user"),
    (libc::CLONE_NEWCGROUP as u64, "cgroup"),
    (libc::CLONE_NEWIPC as u64, "ipc"),
    (libc::CLONE_NEWUTS as u64, "uts"),
    (libc::CLONE_NEWNET as u64, "net"),
    (libc::CLONE_NEWPID as u64, "pid"),
    (libc::CLONE_NEWNS as u64, "mnt"),
];

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Signals that mrun passes on to the container (Docker's sig-proxy).
pub const FORWARDED: [c_int; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Which namespaces to create: everything but the user namespace (only when asked) and the
/// network namespace (not with `--net host`). The cgroup namespace is unshared by the child
/// after it is in its cgroup, so it is not among the clone flags.
pub fn clone_flags(userns: bool, netns: bool) -> u64 {
    NAMESPACES
        .iter()
        .map(|&(f, _)| f)
        .filter(|&f| f != libc::CLONE_NEWCGROUP as u64)
        .filter(|&f| userns || f != libc::CLONE_NEWUSER as u64)
        .filter(|&f| netns || f != libc::CLONE_NEWNET as u64)
        .fold(0, |a, f| a | f)
}

pub struct Child {
    pub pid: i32,
    pidfd: OwnedFd,
}

/// How the container's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// Docker's convention: the code, or 128+N for signal N.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

const MSG_SETUP: u8 = b'S';
const MSG_EXEC: u8 = b'E';
/// `mrun exec`'s helper: the pid of the process it forked in the container.
pub(crate) const MSG_PID: u8 = b'P';
const MSG_MAX: usize = 1024;

/// What the child sends when it cannot go on: kind, errno, then the text. Written without
/// allocating (the child must not).
pub(crate) fn send_failure(sock: c_int, f: &Failure<'_>) {
    let mut buf = [0u8; MSG_MAX];
    buf[0] = if f.exec { MSG_EXEC } else { MSG_SETUP };
    buf[1..5].copy_from_slice(&f.errno.to_le_bytes());
    let text = f.what.to_bytes();
    let n = text.len().min(MSG_MAX - 5);
    buf[5..5 + n].copy_from_slice(&text[..n]);
    // SAFETY: buf is valid for 5 + n bytes.
    unsafe { libc::send(sock, buf.as_ptr().cast(), 5 + n, libc::MSG_NOSIGNAL) };
}

fn decode(buf: &[u8]) -> Error {
    let errno = i32::from_le_bytes(buf[1..5].try_into().unwrap());
    let text = String::from_utf8_lossy(&buf[5..]).into_owned();
    if buf[0] == MSG_EXEC {
        Error::Exec { path: text, errno }
    } else {
        Error::Setup { step: text, errno }
    }
}

fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(Error::last_os("socketpair"));
    }
    // SAFETY: both were just returned by the kernel and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A started container process and, with a terminal, the terminal's master side.
pub struct Spawned {
    pub child: Child,
    pub pty: Option<OwnedFd>,
}

/// What both start paths share. clone3 (like fork, with a pidfd; `flags` add namespaces,
/// `cgroup_fd` places the child straight in a v2 cgroup); the child dies with us, waits for
/// the release byte on its end of a setup socket, then runs `child_run` with that socket,
/// which must not return (it execs or _exits). Here `prepare` gets the child's pid before the release; then the
/// setup messages are collected until EOF (every copy of the child's end closed on exec):
/// a terminal's master, a pid (exec's helper), or a failure, returned as the error it was.
fn clone_and_release(
    flags: u64,
    cgroup_fd: Option<c_int>,
    what: &'static str,
    child_run: impl FnOnce(c_int),
    prepare: impl FnOnce(i32) -> Result<()>,
) -> Result<(Child, Option<OwnedFd>, Option<i32>)> {
    let (parent_sock, child_sock) = socketpair()?;
    let mut pidfd: c_int = -1;
    let mut args = CloneArgs {
        flags: flags | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    let parent_pid = std::process::id() as i32;
    // SAFETY: clone3 without a stack behaves like fork: the child runs on a copy of this
    // stack. From here to execve it only makes raw system calls on data prepared before.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        return Err(Error::Sys("clone3", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let sock = child_sock.as_raw_fd();
        // SAFETY (the child): raw system calls only, no allocation, no unwinding.
        unsafe {
            libc::close(parent_sock.as_raw_fd());
            // Die with mrun; and if mrun died before this line, do not run unsupervised
            // (getppid is 0 in a new PID namespace).
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != parent_pid && libc::getppid() != 0 {
                libc::_exit(EXIT_FAILED);
            }
            let mut b = [0u8; 1];
            loop {
                let n = libc::read(sock, b.as_mut_ptr().cast(), 1);
                if n == 1 {
                    break;
                }
                if n < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                libc::_exit(EXIT_FAILED);
            }
        }
        child_run(sock);
        // SAFETY: child_run never returns; if it ever did, leave without unwinding.
        unsafe { libc::_exit(EXIT_FAILED) };
    }
    let pid = pid as i32;
    drop(child_sock);
    // SAFETY: CLONE_PIDFD stored a new descriptor owned by us.
    let child = Child {
        pid,
        pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
    };
    let released = prepare(pid).and_then(|()| {
        // SAFETY: writing one byte from a valid buffer.
        if unsafe { libc::write(parent_sock.as_raw_fd(), [1u8].as_ptr().cast(), 1) } != 1 {
            return Err(Error::last_os(what));
        }
        Ok(())
    });
    if let Err(e) = released {
        child.kill(libc::SIGKILL);
        let _ = child.wait(false);
        return Err(e);
    }
    let (mut pty, mut reported) = (None, None);
    loop {
        match setup_message(&parent_sock) {
            Ok(SetupMsg::Exec) => break,
            Ok(SetupMsg::Pty(fd)) => pty = Some(fd),
            Ok(SetupMsg::Pid(p)) => reported = Some(p),
            Ok(SetupMsg::Failed(e)) => {
                let _ = child.wait(false);
                return Err(e);
            }
            Err(e) => {
                child.kill(libc::SIGKILL);
                let _ = child.wait(false);
                return Err(e);
            }
        }
    }
    Ok((child, pty, reported))
}

/// Clone the child into `flags` namespaces, set it up as `plan` says and exec it. Returns
/// once the command runs; a failure before exec is returned as the error it was.
/// `before_release` runs once the child exists (its namespaces too: the network is wired
/// here) and before it starts its setup; an error there kills it.
pub fn spawn(
    plan: &Plan,
    flags: u64,
    userns: Option<&IdMaps>,
    cgroup: Option<&Cgroup>,
    before_release: &mut dyn FnMut(i32) -> Result<()>,
) -> Result<Spawned> {
    let cgroup_fd = match cgroup.and_then(|c| c.v2_dir()) {
        Some(dir) => Some(std::fs::File::open(dir).ctx("open cgroup", dir)?),
        None => None,
    };
    let (child, pty, _) = clone_and_release(
        flags,
        cgroup_fd.as_ref().map(|f| f.as_raw_fd()),
        "release the container process",
        |sock| {
            let f = child::setup(&Linux, plan, sock);
            send_failure(sock, &f);
            // SAFETY: leaving the child without unwinding.
            unsafe { libc::_exit(if f.exec { 127 } else { EXIT_FAILED }) }
        },
        |pid| {
            if let Some(maps) = userns {
                write_id_maps(pid, maps)?;
            }
            if let Some(cg) = cgroup {
                if cgroup_fd.is_none() {
                    cg.add_pid(pid)?;
                }
            }
            before_release(pid)
        },
    )?;
    Ok(Spawned { child, pty })
}

/// `mrun exec`'s processes: the helper (our child, whose exit status is the command's) and
/// the command itself (inside the container), and the command's terminal.
pub struct Joined {
    pub helper: Child,
    /// None when the command ended before we could open it (the helper reaps it at once);
    /// signals then have nowhere to go.
    pub command: Option<Child>,
    pub pty: Option<OwnedFd>,
}

/// Clone the helper of `mrun exec` (see `exec`): it joins `namespaces` and `root` once
/// `before_release` (given its pid) has put it in the container's cgroup, then forks the
/// command. Returns once the command runs.
pub fn spawn_joined(
    cmd: &crate::child::Command,
    namespaces: &[(c_int, OwnedFd)],
    root: std::os::fd::BorrowedFd<'_>,
    before_release: impl FnOnce(i32) -> Result<()>,
) -> Result<Joined> {
    let ns: Vec<(c_int, c_int)> = namespaces
        .iter()
        .map(|(f, fd)| (*f, fd.as_raw_fd()))
        .collect();
    let (helper, pty, reported) = clone_and_release(
        0,
        None,
        "release the exec process",
        |sock| crate::exec::helper_main(cmd, &ns, root.as_raw_fd(), sock),
        before_release,
    )?;
    let Some(pid) = reported else {
        let _ = helper.wait(false);
        return Err(Error::invalid("the exec process ended before it started"));
    };
    Ok(Joined {
        command: crate::exec::child_of_pid(pid).ok(),
        helper,
        pty,
    })
}

enum SetupMsg {
    /// EOF: every copy of the child's end closed on exec.
    Exec,
    Pty(OwnedFd),
    Pid(i32),
    Failed(Error),
}

/// The next message from a child over the setup socket.
fn setup_message(sock: &OwnedFd) -> Result<SetupMsg> {
    use crate::tty::Msg;
    loop {
        match crate::tty::recv_msg(sock.as_fd()) {
            Ok(Msg::Eof) => return Ok(SetupMsg::Exec),
            Ok(Msg::Fd(fd)) => return Ok(SetupMsg::Pty(fd)),
            Ok(Msg::Data(buf)) if buf.len() == 5 && buf[0] == MSG_PID => {
                let pid = i32::from_le_bytes(buf[1..5].try_into().expect("4 bytes"));
                return Ok(SetupMsg::Pid(pid));
            }
            Ok(Msg::Data(buf)) if buf.len() >= 5 => return Ok(SetupMsg::Failed(decode(&buf))),
            Ok(Msg::Data(_)) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(Error::Sys("read from the container process", e)),
        }
    }
}

impl Child {
    pub fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Reap the process after its pidfd polled readable.
    pub fn reap(&self) -> Result<Exit> {
        loop {
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: waitid on our own pidfd with a valid siginfo.
            let r = unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    self.pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED,
                )
            };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(Error::last_os("waitid"));
            }
            let status = unsafe { info.si_status() };
            return Ok(match info.si_code {
                libc::CLD_EXITED => Exit::Code(status),
                _ => Exit::Signal(status),
            });
        }
    }

    pub fn kill(&self, sig: c_int) {
        // pidfd_send_signal targets exactly our child, never a recycled pid.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }

    pub fn from_pidfd(pid: i32, pidfd: OwnedFd) -> Child {
        Child { pid, pidfd }
    }

    /// Wait for the process to end. With `forward`, the signals in FORWARDED that reach
    /// this thread are passed on to it (they must have been blocked by `block_forwarded`
    /// before the clone, so none slips by).
    pub fn wait(&self, forward: bool) -> Result<Exit> {
        if !forward {
            return self.wait_quietly();
        }
        self.wait_forwarding(Some(self))
    }

    fn wait_quietly(&self) -> Result<Exit> {
        let mut p = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; then reap.
        while unsafe { libc::poll(&mut p, 1, -1) } < 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(Error::last_os("poll"));
            }
        }
        self.reap()
    }

    /// Wait for this process to end, passing the forwarded signals on to `to`.
    pub fn wait_forwarding(&self, to: Option<&Child>) -> Result<Exit> {
        let sigfd = if to.is_some() {
            Some(signalfd()?)
        } else {
            None
        };
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: sigfd.as_ref().map_or(-1, |f| f.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: fds is a valid array of two pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(Error::last_os("poll"));
            }
            if fds[1].revents & libc::POLLIN != 0 {
                if let Some(sig) = sigfd.as_ref().and_then(|fd| read_signal(fd.as_fd())) {
                    if let Some(t) = to {
                        t.kill(sig);
                    }
                }
            }
            if fds[0].revents & libc::POLLIN != 0 {
                return self.reap();
            }
        }
    }
}

/// Block the forwarded signals in this thread, so that they queue for `Child::wait` instead
/// of killing mrun. The child unblocks them before exec.
pub fn block_forwarded() -> Result<()> {
    let set = forwarded_set();
    // SAFETY: a valid sigset.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(Error::last_os("block signals"));
    }
    Ok(())
}

fn forwarded_set() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// The next signal from a signalfd, if one is there.
pub fn read_signal(fd: std::os::fd::BorrowedFd<'_>) -> Option<c_int> {
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    // SAFETY: reading one siginfo into our own struct.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            std::mem::size_of_val(&info),
        )
    };
    (n == std::mem::size_of_val(&info) as isize).then_some(info.ssi_signo as c_int)
}

/// A signalfd for the forwarded signals (block them first with `block_forwarded`).
pub fn signalfd() -> Result<OwnedFd> {
    let set = forwarded_set();
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::last_os("signalfd"));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect()
}

/// Map the caller to root in a new user namespace, plus its /etc/subuid range when the
/// setuid helpers are there to write it.
pub fn rootless_maps() -> IdMaps {
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut maps = IdMaps {
        uid: vec![IdMap {
            inside: 0,
            outside: uid,
            count: 1,
        }],
        gid: vec![IdMap {
            inside: 0,
            outside: gid,
            count: 1,
        }],
    };
    // The name of our uid, not $USER: newuidmap(1) checks the ranges of the real uid's name,
    // and $USER may be stale (setpriv, su without -), naming someone else's ranges.
    let pw = unsafe { libc::getpwuid(uid) };
    let user = (!pw.is_null())
        .then(|| {
            unsafe { std::ffi::CStr::from_ptr((*pw).pw_name) }
                .to_string_lossy()
                .into_owned()
        })
        .or_else(|| std::env::var("USER").ok());
    let have = |t: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).exists()))
    };
    if let Some(user) = user {
        if have("newuidmap") && have("newgidmap") {
            let sub = |file: &str, id: u32| -> Option<IdMap> {
                let text = std::fs::read_to_string(file).ok()?;
                text.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() == 3 && (f[0] == user || f[0] == id.to_string()))
                        .then(|| {
                            Some(IdMap {
                                inside: 1,
                                outside: f[1].parse().ok()?,
                                count: f[2].parse().ok()?,
                            })
                        })
                        .flatten()
                })
            };
            if let (Some(u), Some(g)) = (sub("/etc/subuid", uid), sub("/etc/subgid", gid)) {
                maps.uid.push(u);
                maps.gid.push(g);
            }
        }
    }
    maps
}

/// Write the child's uid and gid maps (user_namespaces(7)). An unprivileged writer must
/// deny setgroups before it may write gid_map — the step the classic hand-made container
/// missed, which left its gid at 65534. Ranges beyond our own ids go through the setuid
/// helpers newuidmap/newgidmap, which check /etc/subuid and /etc/subgid.
pub fn write_id_maps(pid: i32, maps: &IdMaps) -> Result<()> {
    let proc = format!("/proc/{pid}");
    let euid = unsafe { libc::geteuid() };
    let egid = unsafe { libc::getegid() };
    let only_self = |m: &[IdMap], id: u32| m.len() == 1 && m[0].outside == id && m[0].count == 1;
    if euid == 0 || (only_self(&maps.uid, euid) && only_self(&maps.gid, egid)) {
        if euid != 0 {
            std::fs::write(format!("{proc}/setgroups"), "deny")
                .ctx("write", format!("{proc}/setgroups"))?;
        }
        std::fs::write(format!("{proc}/gid_map"), map_text(&maps.gid))
            .ctx("write", format!("{proc}/gid_map"))?;
        std::fs::write(format!("{proc}/uid_map"), map_text(&maps.uid))
            .ctx("write", format!("{proc}/uid_map"))?;
        return Ok(());
    }
    for (tool, m) in [("newgidmap", &maps.gid), ("newuidmap", &maps.uid)] {
        let mut c = std::process::Command::new(tool);
        c.arg(pid.to_string());
        for x in m.iter() {
            c.args([
                x.inside.to_string(),
                x.outside.to_string(),
                x.count.to_string(),
            ]);
        }
        let o = c.output().map_err(|e| Error::Sys(tool, e))?;
        if !o.status.success() {
            let msg = String::from_utf8_lossy(&o.stderr).trim().to_string();
            // The helpers name themselves in their messages already.
            let msg = if msg.starts_with(tool) {
                msg
            } else {
                format!("{tool}: {msg}")
            };
            return Err(Error::invalid(msg.replace('\n', " ")));
        }
    }
    Ok(())
}

/// True when setgroups(2) will be denied inside the namespace the maps describe.
pub fn setgroups_denied(maps: Option<&IdMaps>) -> bool {
    let euid = unsafe { libc::geteuid() };
    maps.is_some_and(|m| euid != 0 && m.uid.len() == 1 && m.uid[0].count == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_flags_follow_the_options() {
        let all = clone_flags(true, true);
        for f in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNS,
        ] {
            assert_ne!(all & f as u64, 0);
        }
        assert_eq!(
            all & libc::CLONE_NEWCGROUP as u64,
            0,
            "cgroupns is unshared by the child, once in its cgroup"
        );
        assert_eq!(clone_flags(false, true) & libc::CLONE_NEWUSER as u64, 0);
        assert_eq!(clone_flags(true, false) & libc::CLONE_NEWNET as u64, 0);
    }

    #[test]
    fn exit_codes_follow_docker() {
        assert_eq!(Exit::Code(3).code(), 3);
        assert_eq!(Exit::Signal(9).code(), 137);
        assert_eq!(Exit::Signal(15).code(), 143);
    }

    #[test]
    fn failure_messages_round_trip() {
        let mut buf = vec![MSG_SETUP];
        buf.extend_from_slice(&libc::EPERM.to_le_bytes());
        buf.extend_from_slice(b"mount proc on /proc");
        assert_eq!(
            decode(&buf).to_string(),
            "mount proc on /proc: operation not permitted"
        );
        let mut buf = vec![MSG_EXEC];
        buf.extend_from_slice(&libc::ENOENT.to_le_bytes());
        buf.extend_from_slice(b"nosuch");
        let e = decode(&buf);
        assert_eq!(
            e.to_string(),
            "exec nosuch: executable file not found in $PATH"
        );
        assert_eq!(e.exit_code(), 127);
    }
}
