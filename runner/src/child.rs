//! The cloned child: one linear function that turns the new namespaces into the container
//! and execs the command, in the order crun and youki use: private mounts → overlay root →
//! proc/sys/dev → volumes/devices → pivot → hostname → network → capabilities → ids → cwd
//! → exec. It runs between clone and execve in a copy of a possibly multi-threaded parent,
//! so it never allocates: everything it needs was prepared by the parent (`Plan`).

use crate::rootfs::{Rootfs, Step, Target};
use crate::syscall::{Sys, SysResult};
use std::ffi::{c_char, c_int, CStr, CString};

const RESOLVE_IN_ROOT: u64 = 0x10;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;

/// Capability numbers (linux/capability.h); the libc crate does not carry them.
pub mod cap {
    pub const CHOWN: u32 = 0;
    pub const DAC_OVERRIDE: u32 = 1;
    pub const FOWNER: u32 = 3;
    pub const FSETID: u32 = 4;
    pub const KILL: u32 = 5;
    pub const SETGID: u32 = 6;
    pub const SETUID: u32 = 7;
    pub const SETPCAP: u32 = 8;
    pub const NET_BIND_SERVICE: u32 = 10;
    pub const NET_RAW: u32 = 13;
    pub const SYS_CHROOT: u32 = 18;
    pub const SYS_ADMIN: u32 = 21;
    pub const MKNOD: u32 = 27;
    pub const AUDIT_WRITE: u32 = 29;
    pub const SETFCAP: u32 = 31;
}

/// Docker's default capabilities (moby oci/caps/defaults.go).
pub const DEFAULT_CAPS: u64 = (1 << cap::CHOWN)
    | (1 << cap::DAC_OVERRIDE)
    | (1 << cap::FSETID)
    | (1 << cap::FOWNER)
    | (1 << cap::MKNOD)
    | (1 << cap::NET_RAW)
    | (1 << cap::SETGID)
    | (1 << cap::SETUID)
    | (1 << cap::SETFCAP)
    | (1 << cap::SETPCAP)
    | (1 << cap::NET_BIND_SERVICE)
    | (1 << cap::SYS_CHROOT)
    | (1 << cap::KILL)
    | (1 << cap::AUDIT_WRITE);

/// Everything the child does, prepared by the parent.
pub struct Plan {
    pub rootfs: Rootfs,
    pub hostname: CString,
    pub loopback: bool,
    pub cgroupns: bool,
    pub cmd: Command,
}

/// The process part, shared with `mrun exec`: who it runs as, with what, and what it runs.
pub struct Command {
    pub uid: u32,
    pub gid: u32,
    /// None when setgroups(2) is denied (a user namespace whose setgroups file says deny).
    pub groups: Option<Vec<libc::gid_t>>,
    pub caps: u64,
    pub last_cap: u32,
    pub cwd: CString,
    /// Paths to try in order: argv[0] itself, or each $PATH entry joined with it.
    pub candidates: Vec<CString>,
    pub arg0: CString,
    /// Descriptors to put on fds 0, 1 and 2 before anything else; -1 keeps the one inherited.
    pub stdio: [c_int; 3],
    /// Open a pseudo-terminal in the container's devpts for fds 0-2 (its master goes to the
    /// parent over the setup socket).
    pub pty: bool,
    /// Stay as the container's PID 1, forwarding signals and reaping orphans, and run the
    /// command as its child (`--init`).
    pub init: bool,
    /// Loaded last thing before the ids change (or, with no_new_privs, before exec).
    pub seccomp: Option<Vec<libc::sock_filter>>,
    pub no_new_privs: bool,
    /// The sealed memfd holding the trampoline (`trampoline::memfd`), -1 for none.
    pub trampoline: c_int,
    /// For each candidate: its path, then argv — the trampoline's argv.
    tramp_argv: Vec<Vec<*const c_char>>,
    argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp: Vec<CString>,
    envp_ptrs: Vec<*const c_char>,
}

impl Command {
    pub fn new(
        (uid, gid, groups): (u32, u32, Option<Vec<libc::gid_t>>),
        caps: u64,
        cwd: CString,
        candidates: Vec<CString>,
        argv: Vec<CString>,
        envp: Vec<CString>,
    ) -> Command {
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        // Pointers into the CStrings' own buffers, which stay put when the Vecs move.
        let tramp_argv = candidates
            .iter()
            .map(|c| {
                std::iter::once(c.as_ptr())
                    .chain(argv.iter().map(|a| a.as_ptr()))
                    .chain(std::iter::once(std::ptr::null()))
                    .collect()
            })
            .collect();
        Command {
            uid,
            gid,
            groups,
            caps,
            last_cap,
            cwd,
            candidates,
            arg0: argv.first().cloned().unwrap_or_default(),
            stdio: [-1; 3],
            pty: false,
            init: false,
            seccomp: None,
            no_new_privs: false,
            trampoline: -1,
            tramp_argv,
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            argv,
            envp,
        }
    }

    pub fn argv(&self) -> &[CString] {
        &self.argv
    }
    pub fn envp(&self) -> &[CString] {
        &self.envp
    }
}

impl Plan {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rootfs: Rootfs,
        hostname: CString,
        loopback: bool,
        cgroupns: bool,
        ids: (u32, u32, Option<Vec<libc::gid_t>>),
        caps: u64,
        cwd: CString,
        candidates: Vec<CString>,
        argv: Vec<CString>,
        envp: Vec<CString>,
    ) -> Plan {
        Plan {
            rootfs,
            hostname,
            loopback,
            cgroupns,
            cmd: Command::new(ids, caps, cwd, candidates, argv, envp),
        }
    }
}

/// Why the child stopped: a step and the C string it was about, and the errno.
pub struct Failure<'a> {
    pub exec: bool,
    pub what: &'a CStr,
    pub errno: i32,
}

/// `/proc/self/fd/N` in a stack buffer.
pub(crate) struct FdPath([u8; 32]);

impl FdPath {
    pub(crate) fn new(fd: c_int) -> FdPath {
        let mut b = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        b[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd as u32;
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let d = &digits[i..];
        b[prefix.len()..prefix.len() + d.len()].copy_from_slice(d);
        FdPath(b)
    }
    pub(crate) fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.0).expect("NUL-terminated")
    }
}

const C_ROOT: &CStr = c"/";
const C_DOT: &CStr = c".";
const C_OVERLAY: &CStr = c"overlay";
const C_PRIVATE: &CStr = c"make / private";
const C_PIVOT: &CStr = c"pivot_root into the container's root";
const C_RO: &CStr = c"remount / read-only";
const C_HOSTNAME: &CStr = c"sethostname";
const C_LO: &CStr = c"bring up lo";
const C_CAPS: &CStr = c"drop capabilities";
const C_IDS: &CStr = c"set uid/gid";
const C_CGROUPNS: &CStr = c"unshare cgroup namespace";
const C_PREPARE: &CStr = c"prepare for exec";
const C_OPEN_ROOT: &CStr = c"open the container's root";
const C_STDIO: &CStr = c"set up stdin/stdout/stderr";
const C_PTY: &CStr = c"open a pseudo-terminal in the container";
const C_SETSID: &CStr = c"setsid";
const C_NNP: &CStr = c"set no_new_privs";
const C_SECCOMP: &CStr = c"load the seccomp filter";
const C_INIT: &CStr = c"start the init process";

fn fail(what: &CStr, errno: i32) -> Failure<'_> {
    Failure {
        exec: false,
        what,
        errno,
    }
}

/// Open `t` inside the root if it exists; never creates anything.
fn open_existing<S: Sys>(sys: &S, root: c_int, t: &Target) -> SysResult<c_int> {
    sys.openat2(
        root,
        &t.rel,
        (libc::O_PATH | libc::O_CLOEXEC) as u64,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

/// Open (creating what is missing) the first `upto` components of `t` inside the root.
fn open_in_root<S: Sys>(sys: &S, root: c_int, t: &Target, upto: usize) -> SysResult<c_int> {
    let resolve = RESOLVE_IN_ROOT
        | RESOLVE_NO_MAGICLINKS
        | if t.no_symlinks {
            RESOLVE_NO_SYMLINKS
        } else {
            0
        };
    let path = |i: usize| -> &CStr { &t.steps[i - 1].0 };
    if upto == 0 {
        return sys.openat2(
            root,
            C_DOT,
            (libc::O_PATH | libc::O_CLOEXEC) as u64,
            0,
            RESOLVE_BENEATH,
        );
    }
    match sys.openat2(
        root,
        path(upto),
        (libc::O_PATH | libc::O_CLOEXEC) as u64,
        0,
        resolve,
    ) {
        Err(libc::ENOENT) => {}
        r => return r,
    }
    let mut parent = sys.openat2(
        root,
        C_DOT,
        (libc::O_PATH | libc::O_CLOEXEC) as u64,
        0,
        RESOLVE_BENEATH,
    )?;
    for i in 1..=upto {
        let next = match sys.openat2(
            root,
            path(i),
            (libc::O_PATH | libc::O_CLOEXEC) as u64,
            0,
            resolve,
        ) {
            Ok(fd) => fd,
            Err(libc::ENOENT) => {
                let name = &t.steps[i - 1].1;
                let made = if i == t.steps.len() && t.file {
                    sys.openat2(
                        parent,
                        name,
                        (libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC) as u64,
                        0o644,
                        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
                    )
                    .map(|fd| sys.close(fd))
                } else {
                    sys.mkdirat(parent, name, 0o755)
                };
                if let Err(e) = made {
                    sys.close(parent);
                    return Err(e);
                }
                match sys.openat2(
                    root,
                    path(i),
                    (libc::O_PATH | libc::O_CLOEXEC) as u64,
                    0,
                    resolve,
                ) {
                    Ok(fd) => fd,
                    Err(e) => {
                        sys.close(parent);
                        return Err(e);
                    }
                }
            }
            Err(e) => {
                sys.close(parent);
                return Err(e);
            }
        };
        sys.close(parent);
        parent = next;
    }
    Ok(parent)
}

fn make_read_only<'p, S: Sys>(
    sys: &S,
    root: c_int,
    what: &'p CStr,
    target: &Target,
) -> Result<(), Failure<'p>> {
    remount(sys, root, what, target, libc::MS_RDONLY)
}

/// Remount the bind mount at `target` with `extra` flags, keeping those the kernel locked.
fn remount<'p, S: Sys>(
    sys: &S,
    root: c_int,
    what: &'p CStr,
    target: &Target,
    extra: u64,
) -> Result<(), Failure<'p>> {
    let fd = open_in_root(sys, root, target, target.steps.len()).map_err(|e| fail(what, e))?;
    let r = remount_fd(sys, fd, extra);
    sys.close(fd);
    r.map_err(|e| fail(what, e))
}

/// Remount the mount `fd` is on (MS_REMOUNT|MS_BIND: that mount only) with `extra`.
fn remount_fd<S: Sys>(sys: &S, fd: c_int, extra: u64) -> SysResult {
    let p = FdPath::new(fd);
    let locked = sys.mount_flags(fd)?;
    sys.mount(
        None,
        p.as_cstr(),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | extra | locked,
        None,
    )
}

fn run_step<'p, S: Sys>(sys: &S, root: c_int, step: &'p Step) -> Result<(), Failure<'p>> {
    match step {
        Step::Mount {
            what,
            source,
            fstype,
            flags,
            data,
            target,
            remount: extra,
            recursive_ro,
        } => {
            let fd =
                open_in_root(sys, root, target, target.steps.len()).map_err(|e| fail(what, e))?;
            let r = sys.mount(
                source.as_deref(),
                FdPath::new(fd).as_cstr(),
                fstype.as_deref(),
                *flags,
                data.as_deref(),
            );
            sys.close(fd);
            r.map_err(|e| fail(what, e))?;
            if *extra != 0 || recursive_ro.is_some() {
                // The fd opened before the mount names the directory under it: open again,
                // for the new mount itself.
                let fd = open_in_root(sys, root, target, target.steps.len())
                    .map_err(|e| fail(what, e))?;
                let r = match recursive_ro {
                    // Every mount the bind brought along, not only its top (the remount
                    // below changes one mount: mount(2), MS_REMOUNT|MS_BIND).
                    Some(msg) => sys
                        .mount_setattr(fd, libc::MOUNT_ATTR_RDONLY, true)
                        .map_err(|e| fail(msg, e)),
                    None => Ok(()),
                }
                .and_then(|()| match *extra {
                    0 => Ok(()),
                    x => remount_fd(sys, fd, x).map_err(|e| fail(what, e)),
                });
                sys.close(fd);
                r?;
            }
        }
        Step::RemountRo { what, target } => make_read_only(sys, root, what, target)?,
        Step::Mask(t) => {
            let fd = match open_existing(sys, root, t) {
                Ok(fd) => fd,
                Err(libc::ENOENT) => return Ok(()),
                Err(e) => return Err(fail(&t.shown, e)),
            };
            let r = sys.mask(fd);
            sys.close(fd);
            r.map_err(|e| fail(&t.shown, e))?;
        }
        Step::ReadOnlyPath(t) => {
            let fd = match open_existing(sys, root, t) {
                Ok(fd) => fd,
                Err(libc::ENOENT) => return Ok(()),
                Err(e) => return Err(fail(&t.shown, e)),
            };
            let p = FdPath::new(fd);
            let r = sys.mount(
                Some(p.as_cstr()),
                p.as_cstr(),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            );
            sys.close(fd);
            r.map_err(|e| fail(&t.shown, e))?;
            make_read_only(sys, root, &t.shown, t)?;
        }
        Step::Mkdir(t) => {
            let fd = open_in_root(sys, root, t, t.steps.len()).map_err(|e| fail(&t.shown, e))?;
            sys.close(fd);
        }
        Step::Symlink { target, link } => {
            let n = link.steps.len();
            let parent = open_in_root(sys, root, link, n - 1).map_err(|e| fail(&link.shown, e))?;
            let r = sys.symlinkat(target, parent, &link.steps[n - 1].1);
            sys.close(parent);
            r.map_err(|e| fail(&link.shown, e))?;
        }
    }
    Ok(())
}

/// Set up the container and exec its command. Returns only on failure. `sock` is the setup
/// socket to the parent (failures, and the terminal's master with `pty`).
pub fn setup<'p, S: Sys>(sys: &S, p: &'p Plan, sock: c_int) -> Failure<'p> {
    if let Err(f) = setup_inner(sys, p) {
        return f;
    }
    become_command(sys, &p.cmd, sock)
}

/// The last steps, in the container's root: terminal, capabilities, ids, cwd, `--init`,
/// exec. Returns only on failure.
pub fn become_command<'p, S: Sys>(sys: &S, p: &'p Command, sock: c_int) -> Failure<'p> {
    if let Err(f) = drop_privileges(sys, p, sock) {
        return f;
    }
    if p.init {
        match sys.fork_init() {
            // The command's process: on to exec.
            Ok(0) => {}
            Ok(main) => init_loop(main, sock),
            Err(e) => return fail(C_INIT, e),
        }
    }
    exec(sys, p, sock)
}

/// `--init`: PID 1 of the container, as tini is for Docker. Every signal is blocked and
/// taken with sigwaitinfo: SIGCHLD reaps whatever exited (orphans are reparented to us),
/// anything else is passed on to the command. When the command ends, so does init, with
/// the command's status (128+N for signal N); the kernel then kills the rest of the PID
/// namespace. Nothing of mrun's stays open in here.
fn init_loop(main: i32, sock: c_int) -> ! {
    // SAFETY (whole function): raw system calls on our own stack data; never returns.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::close(sock);
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        // Our executable is mrun's, on the host: keep /proc/1/exe out of the container's
        // reach (CVE-2019-5736).
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&all, &mut info);
            if sig < 0 {
                continue;
            }
            if sig != libc::SIGCHLD {
                libc::kill(main, sig);
                continue;
            }
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                if pid == main {
                    if libc::WIFEXITED(status) {
                        libc::_exit(libc::WEXITSTATUS(status));
                    }
                    libc::_exit(128 + libc::WTERMSIG(status));
                }
            }
        }
    }
}

fn setup_inner<'p, S: Sys>(sys: &S, p: &'p Plan) -> Result<(), Failure<'p>> {
    for (target, &fd) in p.cmd.stdio.iter().enumerate() {
        if fd >= 0 {
            sys.dup2(fd, target as c_int)
                .map_err(|e| fail(C_STDIO, e))?;
        }
    }
    // The parent put us in our cgroup before releasing us: this makes it our cgroup root.
    if p.cgroupns {
        sys.unshare(libc::CLONE_NEWCGROUP)
            .map_err(|e| fail(C_CGROUPNS, e))?;
    }
    // Nothing we mount may propagate back to the host (mount_namespaces(7)).
    sys.mount(None, C_ROOT, None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(|e| fail(C_PRIVATE, e))?;
    let r = &p.rootfs;
    sys.chdir(&r.links_dir).map_err(|e| fail(&r.links_dir, e))?;
    sys.mount(
        Some(C_OVERLAY),
        &r.merged,
        Some(C_OVERLAY),
        if r.nodev { libc::MS_NODEV } else { 0 },
        Some(&r.overlay_data),
    )
    .map_err(|e| fail(&r.overlay_what, e))?;
    let root = sys
        .openat2(
            libc::AT_FDCWD,
            &r.merged,
            (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
            0,
            0,
        )
        .map_err(|e| fail(C_OPEN_ROOT, e))?;
    for step in &r.steps {
        run_step(sys, root, step)?;
    }
    // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves the
    // container no path back to the host's mounts (pivot_root(2), "NOTES").
    sys.fchdir(root).map_err(|e| fail(C_PIVOT, e))?;
    sys.pivot_root(C_DOT, C_DOT).map_err(|e| fail(C_PIVOT, e))?;
    sys.umount2(C_DOT, libc::MNT_DETACH)
        .map_err(|e| fail(C_PIVOT, e))?;
    sys.chdir(C_ROOT).map_err(|e| fail(C_PIVOT, e))?;
    sys.close(root);
    if r.read_only {
        sys.mount(
            None,
            C_ROOT,
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            None,
        )
        .map_err(|e| fail(C_RO, e))?;
    }
    sys.sethostname(p.hostname.to_bytes())
        .map_err(|e| fail(C_HOSTNAME, e))?;
    if p.loopback {
        sys.loopback_up().map_err(|e| fail(C_LO, e))?;
    }
    Ok(())
}

fn drop_privileges<'p, S: Sys>(sys: &S, p: &'p Command, sock: c_int) -> Result<(), Failure<'p>> {
    // In the container's own devpts, so the terminal has a name there; before the ids
    // change, as root still owns the session.
    if p.pty {
        sys.open_pty(sock, p.uid).map_err(|e| fail(C_PTY, e))?;
    } else {
        sys.setsid().map_err(|e| fail(C_SETSID, e))?;
    }
    if p.no_new_privs {
        sys.no_new_privs().map_err(|e| fail(C_NNP, e))?;
    }
    // Without no_new_privs, loading a filter takes CAP_SYS_ADMIN: load it while root still
    // holds it, before the ids change (runc's order).
    if let (Some(f), false) = (&p.seccomp, p.no_new_privs) {
        sys.seccomp(f).map_err(|e| fail(C_SECCOMP, e))?;
    }
    // The bounding set can only shrink while we still hold CAP_SETPCAP, so before the ids.
    sys.drop_bounding(p.caps, p.last_cap)
        .map_err(|e| fail(C_CAPS, e))?;
    // (uid_t)-1 tells setresuid(2) and setresgid(2) to leave the id as it is: root. The
    // parent refuses such ids (config::resolve_user); never rely on that alone.
    if p.uid > crate::config::MAX_ID || p.gid > crate::config::MAX_ID {
        return Err(fail(C_IDS, libc::EINVAL));
    }
    sys.set_ids(p.uid, p.gid, p.groups.as_deref())
        .map_err(|e| fail(C_IDS, e))?;
    // Changing ids clears the parent-death signal (prctl(2)); set it again.
    sys.set_pdeathsig(libc::SIGKILL)
        .map_err(|e| fail(C_IDS, e))?;
    // Root in the container keeps Docker's default set; any other uid lost its capabilities
    // when setresuid moved it away from 0, as with Docker.
    if p.uid == 0 {
        sys.set_caps(p.caps).map_err(|e| fail(C_CAPS, e))?;
    }
    // Resolved inside the root, never through a magic link: `-w /proc/self/fd/N` must not
    // reach a directory some fd of ours still names on the host (CVE-2024-21626).
    let root = sys
        .openat2(
            libc::AT_FDCWD,
            C_ROOT,
            (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
            0,
            0,
        )
        .map_err(|e| fail(&p.cwd, e))?;
    let dir = sys.openat2(
        root,
        &p.cwd,
        (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    );
    sys.close(root);
    let dir = dir.map_err(|e| fail(&p.cwd, e))?;
    let r = sys.fchdir(dir);
    sys.close(dir);
    r.map_err(|e| fail(&p.cwd, e))?;
    // With no_new_privs, as late as possible: the filter then covers the least of ours.
    if let (Some(f), true) = (&p.seccomp, p.no_new_privs) {
        sys.seccomp(f).map_err(|e| fail(C_SECCOMP, e))?;
    }
    sys.prepare_exec().map_err(|e| fail(C_PREPARE, e))?;
    Ok(())
}

/// execvp's search: ENOENT/ENOTDIR move on, EACCES is remembered, anything else stops.
fn exec<'p, S: Sys>(sys: &S, p: &'p Command, sock: c_int) -> Failure<'p> {
    let failed = |errno| Failure {
        exec: true,
        what: &p.arg0,
        errno,
    };
    let mut denied = false;
    for (i, c) in p.candidates.iter().enumerate() {
        let errno = if p.trampoline < 0 {
            sys.execve(c, &p.argv_ptrs, &p.envp_ptrs)
        } else {
            // The same search, but the file found is exec'd by the trampoline (see
            // `trampoline`), so the command never starts from a process whose exe is mrun's;
            // once found, the exec's result is final.
            match sys.exec_probe(c) {
                Ok(()) => {
                    let e = sys.exec_via(p.trampoline, sock, &p.tramp_argv[i], &p.envp_ptrs);
                    // The trampoline itself could not run (memfds not executable here):
                    // exec directly rather than not at all.
                    if e == libc::EACCES || e == libc::EPERM || e == libc::ENOSYS {
                        return failed(sys.execve(c, &p.argv_ptrs, &p.envp_ptrs));
                    }
                    return failed(e);
                }
                Err(e) => e,
            }
        };
        match errno {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => denied = true,
            e => return failed(e),
        }
    }
    failed(if denied { libc::EACCES } else { libc::ENOENT })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::*;
    use crate::syscall::Recording;
    use std::path::PathBuf;

    fn spec() -> Spec {
        Spec {
            layers: vec![PathBuf::from("/s/layers/a"), PathBuf::from("/s/layers/b")],
            dir: PathBuf::from("/s/containers/c1"),
            process: Process {
                args: vec!["sh".into(), "-c".into(), "true".into()],
                env: vec!["PATH=/usr/bin:/bin".into()],
                cwd: "/work".into(),
                uid: 0,
                gid: 0,
                groups: vec![],
            },
            hostname: "c1".into(),
            mounts: vec![Mount {
                dest: "/data".into(),
                kind: MountKind::Bind {
                    source: "/srv/data".into(),
                    readonly: true,
                },
            }],
            devices: vec![],
            read_only: true,
            network: Network::None,
            userns: None,
            limits: Default::default(),
            userxattr: false,
            caps: DEFAULT_CAPS,
            seccomp: None,
            no_new_privs: false,
            masked_paths: true,
            nodev: true,
        }
    }

    fn plan(s: &Spec) -> Plan {
        let cg = [
            crate::rootfs::CgroupMount {
                name: "cpu,cpuacct".into(),
                controllers: "cpu,cpuacct".into(),
            },
            crate::rootfs::CgroupMount {
                name: "memory".into(),
                controllers: "memory".into(),
            },
        ];
        let rootfs = Rootfs::plan(s, &s.dir.join("l"), &["0".into(), "1".into()], &cg).unwrap();
        Plan::new(
            rootfs,
            c"c1".into(),
            true,
            true,
            (0, 0, Some(vec![])),
            DEFAULT_CAPS,
            c"/work".into(),
            vec![c"/usr/bin/sh".into(), c"/bin/sh".into()],
            vec![c"sh".into()],
            vec![c"PATH=/usr/bin:/bin".into()],
        )
    }

    #[test]
    fn the_sequence_is_in_order() {
        let s = spec();
        let p = plan(&s);
        let sys = Recording::default();
        sys.missing
            .borrow_mut()
            .push("/s/containers/c1/merged/work".into());
        let f = setup(&sys, &p, 99);
        assert!(f.exec && f.errno == libc::ENOENT);
        let calls = sys.calls();
        let pos = |needle: &str| {
            calls
                .iter()
                .position(|c| c == needle)
                .or_else(|| calls.iter().position(|c| c.starts_with(needle)))
                .unwrap_or_else(|| panic!("{needle:?} not in {calls:#?}"))
        };
        // Top layer first in lowerdir, short relative links.
        assert_eq!(
            calls[pos("mount overlay")],
            "mount overlay /s/containers/c1/merged overlay 0x4 lowerdir=1:0,upperdir=/s/containers/c1/upper,workdir=/s/containers/c1/work,volatile"
        );
        let order = [
            "unshare 0x2000000",
            "mount - / - 0x44000",
            "chdir /s/containers/c1/l",
            "mount overlay",
            "mount proc <",
            "mount sysfs <",
            "mount tmpfs </s/containers/c1/merged/sys/fs/cgroup>",
            "mount cgroup </s/containers/c1/merged/sys/fs/cgroup/cpu,cpuacct> cgroup 0xf cpu,cpuacct",
            "mount cgroup </s/containers/c1/merged/sys/fs/cgroup/memory> cgroup 0xf memory",
            "mount - </s/containers/c1/merged/sys/fs/cgroup> - 0x1027",
            "mount tmpfs </s/containers/c1/merged/dev>",
            "mount /dev/null <",
            "symlink ",
            "mount devpts <",
            "mount /srv/data <",
            "mkdir /s/containers/c1/merged/work",
            "fchdir",
            "pivot_root . .",
            "umount2 . 0x2",
            "chdir /",
            "mount - / - 0x1021",
            "sethostname c1",
            "loopback up",
            "bounding",
            "ids 0:0",
            "pdeathsig 9",
            "caps",
            "fchdir </work>",
            "prepare exec",
            "execve /usr/bin/sh",
            "execve /bin/sh",
        ];
        let positions: Vec<usize> = order.iter().map(|n| pos(n)).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "out of order: {order:?} at {positions:?}\n{calls:#?}"
        );
        // The ro volume is made read-only with every mount below it (Docker's rro), on the
        // new mount (opened again after the bind), then remounted read-only and nodev,
        // keeping locked flags.
        let data = pos("mount /srv/data <");
        assert_eq!(
            calls[data + 1],
            "mount_setattr </s/containers/c1/merged/data> set 0x1 recursive"
        );
        assert!(
            calls[data + 2].starts_with("mount - <") && calls[data + 2].contains("0x1027"),
            "{}",
            calls[data + 2]
        );
        // Nothing else is made recursively read-only.
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.starts_with("mount_setattr"))
                .count(),
            1
        );
        assert!(calls
            .iter()
            .any(|c| c == "symlink <dev>/ptmx -> pts/ptmx" || c.contains("ptmx -> pts/ptmx")));
    }

    #[test]
    fn a_kernel_without_mount_setattr_refuses_ro_volumes() {
        let s = spec();
        let p = plan(&s);
        let sys = Recording::default();
        sys.mount_setattr_fails.set(Some(libc::ENOSYS));
        // The parent's check, before anything is made.
        let e = crate::rootfs::check_recursive_ro(&sys)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mount_setattr(2), Linux 5.12 or later): function not implemented"),
            "{e}"
        );
        // The child, should a caller skip that check: it stops at the volume.
        let f = setup(&sys, &p, 99);
        assert!(!f.exec && f.errno == libc::ENOSYS);
        assert_eq!(
            f.what.to_str().unwrap(),
            "make /data read-only with the mounts below it"
        );
        let calls = sys.calls();
        assert!(
            !calls.iter().any(|c| c.starts_with("pivot_root")),
            "{calls:#?}"
        );
        // Where the call exists, fd -1 gives EBADF: supported.
        assert!(crate::rootfs::check_recursive_ro(&Recording::default()).is_ok());
    }

    #[test]
    fn an_id_of_minus_one_never_reaches_setresuid() {
        let s = spec();
        for (uid, gid) in [(u32::MAX, 0), (65534, u32::MAX)] {
            let mut p = plan(&s);
            p.cmd.uid = uid;
            p.cmd.gid = gid;
            let sys = Recording::default();
            let f = become_command(&sys, &p.cmd, 99);
            assert!(!f.exec && f.errno == libc::EINVAL, "{uid}:{gid}");
            assert_eq!(f.what, C_IDS);
            assert!(
                !sys.calls().iter().any(|c| c.starts_with("ids ")),
                "{:?}",
                sys.calls()
            );
            assert!(!sys.calls().iter().any(|c| c.starts_with("execve")));
        }
    }

    #[test]
    fn exec_tries_every_candidate_and_names_argv0() {
        let s = spec();
        let p = plan(&s);
        let sys = Recording::default();
        let f = exec(&sys, &p.cmd, 99);
        assert_eq!(f.errno, libc::ENOENT);
        assert_eq!(f.what.to_str().unwrap(), "sh");
        assert_eq!(sys.calls(), ["execve /usr/bin/sh", "execve /bin/sh"]);
    }

    #[test]
    fn fd_paths() {
        assert_eq!(
            FdPath::new(0).as_cstr().to_str().unwrap(),
            "/proc/self/fd/0"
        );
        assert_eq!(
            FdPath::new(1234).as_cstr().to_str().unwrap(),
            "/proc/self/fd/1234"
        );
    }
}
