//! `mrun exec`: a new process in a running container. It joins every namespace of the
//! container's first process and its cgroup, takes the container's root, capabilities and
//! ids, and runs the command there.
//!
//! The sequence (runc's, in short): mrun clones a helper, puts it in the container's cgroup
//! and releases it; the helper setns(2)es into the user (if any), cgroup, ipc, uts, net, pid
//! and mount namespaces, chroots into the container's root, and forks the process that
//! will exec — a fork is needed because joining a PID namespace only places children in
//! it. The helper reports that process's pid, waits for it and exits with its status. Both
//! are non-dumpable until exec, so a process of the container cannot open them through
//! /proc/PID/exe (CVE-2019-5736).

use crate::cgroup::Cgroup;
use crate::child::{self, Command, DEFAULT_CAPS};
use crate::config;
use crate::error::{Error, IoContext, Result};
use crate::process::{self, Child, Exit, NAMESPACES};
use crate::rootfs::cstr;
use crate::state::{self, Container};
use crate::syscall::Linux;
use std::ffi::{c_int, CString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    pub tty: bool,
    pub interactive: bool,
    /// `-e KEY=VALUE` / `-e KEY`, over the container's environment.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
}

/// What the exec needs from the container, opened before the clone.
struct Target {
    /// (CLONE_NEW* flag, /proc/PID/ns/* fd), in the order they must be joined.
    namespaces: Vec<(c_int, OwnedFd)>,
    root: OwnedFd,
}

fn same_namespace(pid: i32, name: &str) -> bool {
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{name}"));
    let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
    matches!((theirs, ours), (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev())
}

fn open_target(pid: i32) -> Result<Target> {
    let mut namespaces = Vec::new();
    for &(flag, name) in NAMESPACES.iter() {
        // The host's own (with --net host, or without a user namespace): nothing to join,
        // and joining our own user namespace would fail with EINVAL.
        if same_namespace(pid, name) {
            continue;
        }
        let p = format!("/proc/{pid}/ns/{name}");
        let f = File::open(&p).ctx("open", &p)?;
        namespaces.push((flag as c_int, OwnedFd::from(f)));
    }
    let p = format!("/proc/{pid}/root");
    let root = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(&p)
        .ctx("open", &p)?;
    Ok(Target {
        namespaces,
        root: OwnedFd::from(root),
    })
}

use std::os::unix::fs::OpenOptionsExt;

/// The environment: the container's, then `-e` over it.
fn environment(base: &[String], overrides: &[String]) -> Vec<String> {
    let mut env: Vec<String> = base.to_vec();
    for kv in overrides {
        let kv = match kv.split_once('=') {
            Some(_) => kv.clone(),
            // `-e KEY`: the host's value, or nothing when the host has none (Docker).
            None => match std::env::var(kv) {
                Ok(v) => format!("{kv}={v}"),
                Err(_) => continue,
            },
        };
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    env
}

/// Run `args` in container `c`, in the foreground. Returns how the command ended.
pub fn exec(c: &Container, args: &[String], o: &ExecOptions) -> Result<Exit> {
    if !c.running() {
        return Err(Error::Conflict(format!(
            "container {} is not running",
            c.short_id()
        )));
    }
    let cfg = &c.config;
    if args.is_empty() {
        return Err(Error::invalid("exec needs a command"));
    }
    let pidfd = state::pidfd(&c.state)
        .ok_or_else(|| Error::Conflict(format!("container {} is not running", c.short_id())))?;
    let target = open_target(c.state.pid)?;
    drop(pidfd);
    let cgroup = c.state.cgroup.as_ref().map(Cgroup::reopen).transpose()?;

    let env = environment(&cfg.env, &o.env);
    let (uid, gid, groups) = match &o.user {
        Some(u) => {
            let (uid, gid, groups, _) = config::resolve_user(u, &cfg.layers)?;
            (uid, gid, groups)
        }
        None => (cfg.uid, cfg.gid, cfg.groups.clone()),
    };
    let cwd = o.workdir.clone().unwrap_or_else(|| cfg.cwd.clone());
    if !cwd.starts_with('/') {
        return Err(Error::invalid(format!(
            "the working directory {cwd:?} must be absolute"
        )));
    }
    let path = env
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(config::DEFAULT_PATH)
        .to_string();
    let candidates: Vec<CString> = if args[0].contains('/') {
        vec![cstr(&args[0])?]
    } else {
        path.split(':')
            .map(|d| if d.is_empty() { "." } else { d })
            .map(|d| cstr(format!("{}/{}", d.trim_end_matches('/'), args[0])))
            .collect::<Result<_>>()?
    };
    // Without a user namespace of its own setgroups is allowed; a rootless container's
    // says deny (see process::write_id_maps).
    let groups = (!cfg.userns || unsafe { libc::geteuid() } == 0).then_some(groups);
    if cfg.userns {
        let maps = config::read_id_maps(c.state.pid)?;
        config::check_mapped(uid, gid, groups.as_deref(), &maps)?;
    }
    let mut cmd = Command::new(
        (uid, gid, groups),
        if cfg.caps == 0 {
            DEFAULT_CAPS
        } else {
            cfg.caps
        },
        cstr(&cwd)?,
        candidates,
        args.iter().map(cstr).collect::<Result<_>>()?,
        env.iter().map(cstr).collect::<Result<_>>()?,
    );
    // Without -t, pipes wherever ours are terminals (see tty::PipedStdio); with -t the
    // command's own terminal takes fds 0-2.
    let mut stdio = if o.tty {
        None
    } else {
        Some(
            crate::tty::PipedStdio::new(o.interactive, false)
                .map_err(|e| Error::Sys("set up the command's stdio", e))?,
        )
    };
    if let Some(s) = &stdio {
        cmd.stdio = s.fds;
    }
    cmd.pty = o.tty;
    // The container's own confinement, as runc's exec gives it.
    cmd.seccomp = crate::seccomp::program_for(&cfg.seccomp, cmd.caps)?;
    cmd.no_new_privs = cfg.no_new_privs;
    let trampoline = crate::trampoline::memfd();
    cmd.trampoline = trampoline.as_ref().map_or(-1, |f| f.as_raw_fd());

    process::block_forwarded()?;
    let joined = process::spawn_joined(&cmd, &target.namespaces, target.root.as_fd(), |pid| {
        if let Some(cg) = &cgroup {
            cg.add_pid(pid)?;
        }
        Ok(())
    })
    .map_err(|e| e.with_command(&args[0]))?;
    drop(trampoline);
    let readers = match stdio.as_mut() {
        Some(s) => {
            s.started()
                .map_err(|e| Error::Sys("relay the command's stdin", e))?;
            std::mem::take(&mut s.outputs)
        }
        None => [None, None],
    };
    let exit = match (joined.pty, readers) {
        (Some(master), _) => crate::monitor::watch_terminal(
            &joined.helper,
            joined.command.as_ref(),
            master,
            o.interactive,
        )?,
        (None, [None, None]) => joined.helper.wait_forwarding(joined.command.as_ref())?,
        (None, readers) => {
            crate::monitor::watch_output(&joined.helper, joined.command.as_ref(), readers)?
        }
    };
    Ok(exit)
}

/// What the helper's child runs: everything after the root (see `child::become_command`).
pub(crate) fn helper_main(
    cmd: &Command,
    namespaces: &[(c_int, c_int)],
    root: c_int,
    sock: c_int,
) -> ! {
    // SAFETY (whole function): raw system calls on data prepared before the clone.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        for &(flag, fd) in namespaces {
            if libc::setns(fd, flag) != 0 {
                let f = child::Failure {
                    exec: false,
                    what: c"join the container's namespaces",
                    errno: *libc::__errno_location(),
                };
                process::send_failure(sock, &f);
                libc::_exit(crate::error::EXIT_FAILED);
            }
        }
        if libc::fchdir(root) != 0 || libc::chroot(c".".as_ptr()) != 0 {
            let f = child::Failure {
                exec: false,
                what: c"enter the container's root",
                errno: *libc::__errno_location(),
            };
            process::send_failure(sock, &f);
            libc::_exit(crate::error::EXIT_FAILED);
        }
        let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0);
        if pid == 0 {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            for (target, &fd) in cmd.stdio.iter().enumerate() {
                if fd >= 0 {
                    libc::dup2(fd, target as c_int);
                }
            }
            let f = child::become_command(&Linux, cmd, sock);
            process::send_failure(sock, &f);
            libc::_exit(if f.exec {
                if f.errno == libc::ENOENT || f.errno == libc::ENOTDIR {
                    127
                } else {
                    126
                }
            } else {
                crate::error::EXIT_FAILED
            });
        }
        if pid < 0 {
            let f = child::Failure {
                exec: false,
                what: c"fork in the container",
                errno: *libc::__errno_location(),
            };
            process::send_failure(sock, &f);
            libc::_exit(crate::error::EXIT_FAILED);
        }
        let pid = pid as i32;
        let mut msg = [0u8; 5];
        msg[0] = process::MSG_PID;
        msg[1..].copy_from_slice(&pid.to_le_bytes());
        libc::send(sock, msg.as_ptr().cast(), msg.len(), libc::MSG_NOSIGNAL);
        libc::close(sock);
        let mut status = 0;
        loop {
            let r = libc::waitpid(pid, &mut status, 0);
            if r == pid {
                break;
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(crate::error::EXIT_FAILED);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        libc::_exit(128 + libc::WTERMSIG(status));
    }
}

/// `Child` for a pid that is not our child (the helper's), for forwarding signals.
pub(crate) fn child_of_pid(pid: i32) -> Result<Child> {
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Error::last_os("pidfd_open"));
    }
    // SAFETY: a new descriptor, ours.
    Ok(Child::from_pidfd(pid, unsafe {
        OwnedFd::from_raw_fd(fd as c_int)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_environment_overrides_the_containers() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let env = environment(&base, &["A=2".into(), "B=3".into()]);
        assert_eq!(env, ["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn our_own_namespaces_are_not_joined() {
        let me = std::process::id() as i32;
        let t = open_target(me).unwrap();
        assert!(t.namespaces.is_empty());
    }
}
