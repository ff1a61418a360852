//! The privileged system calls the container's setup makes, behind a small trait: `Linux`
//! calls the kernel, `Recording` (tests) writes down what would have been done, so the
//! rootfs and namespace sequence has unit tests that run without root (youki's `syscall/`).
//!
//! Every method takes C strings prepared in advance and returns a raw errno: the real
//! implementation runs in the cloned child, where allocating is not safe.

use std::ffi::{c_char, c_int, CStr};

pub type SysResult<T = ()> = Result<T, i32>;

pub trait Sys {
    fn mount(
        &self,
        src: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: u64,
        data: Option<&CStr>,
    ) -> SysResult;
    fn umount2(&self, target: &CStr, flags: c_int) -> SysResult;
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult;
    fn chdir(&self, path: &CStr) -> SysResult;
    fn fchdir(&self, fd: c_int) -> SysResult;
    fn unshare(&self, flags: c_int) -> SysResult;
    fn sethostname(&self, name: &[u8]) -> SysResult;
    /// openat2(2) with `resolve` flags; returns the new fd.
    fn openat2(
        &self,
        dirfd: c_int,
        path: &CStr,
        flags: u64,
        mode: u64,
        resolve: u64,
    ) -> SysResult<c_int>;
    fn mkdirat(&self, dirfd: c_int, name: &CStr, mode: u32) -> SysResult;
    fn symlinkat(&self, target: &CStr, dirfd: c_int, name: &CStr) -> SysResult;
    fn close(&self, fd: c_int);
    /// The mount flags (MS_*) of the mount `fd` is on: a read-only remount must repeat the
    /// ones the kernel locked (nosuid, nodev, noexec) or it fails with EPERM.
    fn mount_flags(&self, fd: c_int) -> SysResult<u64>;
    /// mount_setattr(2) on the mount `fd` (an O_PATH fd of its root) is on: set
    /// `attr_set` (MOUNT_ATTR_*), on every mount below it too when `recursive`
    /// (AT_RECURSIVE). ENOSYS before Linux 5.12.
    fn mount_setattr(&self, fd: c_int, attr_set: u64, recursive: bool) -> SysResult;
    /// Bring the loopback interface up (SIOCSIFFLAGS).
    fn loopback_up(&self) -> SysResult;
    /// Drop every capability not in `keep` from the bounding set; clear the ambient set.
    fn drop_bounding(&self, keep: u64, last_cap: u32) -> SysResult;
    /// setgroups (when `groups` is given), setresgid, setresuid.
    fn set_ids(&self, uid: u32, gid: u32, groups: Option<&[libc::gid_t]>) -> SysResult;
    /// Effective, permitted and inheritable sets (capset(2)).
    fn set_caps(&self, effective: u64) -> SysResult;
    fn set_pdeathsig(&self, sig: c_int) -> SysResult;
    /// Default signal dispositions and an empty mask (ignored signals survive execve, and
    /// Rust ignores SIGPIPE), every fd from 3 up close-on-exec.
    fn prepare_exec(&self) -> SysResult;
    fn dup2(&self, from: c_int, to: c_int) -> SysResult;
    /// Hide what `fd` (O_PATH) names: an empty read-only tmpfs over a directory, /dev/null
    /// bound over anything else.
    fn mask(&self, fd: c_int) -> SysResult;
    fn no_new_privs(&self) -> SysResult;
    /// Load a seccomp filter (seccomp(2), SECCOMP_SET_MODE_FILTER).
    fn seccomp(&self, prog: &[libc::sock_filter]) -> SysResult;
    /// A session of its own, away from the terminal mrun runs in (a Ctrl-C there reaches
    /// the container once, forwarded by mrun, not a second time from the terminal).
    fn setsid(&self) -> SysResult;
    /// Open a terminal in the container (see `tty::child_pty`): master to the parent over
    /// `sock`, the slave on fds 0-2 as the controlling terminal of a new session.
    fn open_pty(&self, sock: c_int, uid: u32) -> SysResult;
    /// fork(2) for `--init`, with every signal blocked in the parent (init) and none in the
    /// child; returns the child's pid, 0 in the child.
    fn fork_init(&self) -> SysResult<i32>;
    /// Whether `path` is something execve could run (execvp's tests: it exists, is a
    /// regular file, is executable for us).
    fn exec_probe(&self, path: &CStr) -> SysResult;
    /// Exec the trampoline in memfd `tramp` with `argv` (path first); `sock` goes to
    /// `trampoline::SOCK_FD` for it to report a failed exec. Returns only on failure.
    fn exec_via(
        &self,
        tramp: c_int,
        sock: c_int,
        argv: &[*const c_char],
        envp: &[*const c_char],
    ) -> i32;
    /// Returns only on failure, with the errno. `argv` and `envp` end with a null pointer.
    fn execve(&self, path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> i32;
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(r: c_int) -> SysResult {
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

fn ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(std::ptr::null(), |s| s.as_ptr())
}

/// The kernel.
pub struct Linux;

impl Sys for Linux {
    fn mount(
        &self,
        src: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: u64,
        data: Option<&CStr>,
    ) -> SysResult {
        // SAFETY: all pointers are NUL-terminated strings or null, valid for the call.
        check(unsafe {
            libc::mount(
                ptr(src),
                target.as_ptr(),
                ptr(fstype),
                flags,
                ptr(data).cast(),
            )
        })
    }
    fn umount2(&self, target: &CStr, flags: c_int) -> SysResult {
        check(unsafe { libc::umount2(target.as_ptr(), flags) })
    }
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult {
        check(
            unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) }
                as c_int,
        )
    }
    fn chdir(&self, path: &CStr) -> SysResult {
        check(unsafe { libc::chdir(path.as_ptr()) })
    }
    fn fchdir(&self, fd: c_int) -> SysResult {
        check(unsafe { libc::fchdir(fd) })
    }
    fn unshare(&self, flags: c_int) -> SysResult {
        check(unsafe { libc::unshare(flags) })
    }
    fn sethostname(&self, name: &[u8]) -> SysResult {
        check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
    }
    fn openat2(
        &self,
        dirfd: c_int,
        path: &CStr,
        flags: u64,
        mode: u64,
        resolve: u64,
    ) -> SysResult<c_int> {
        // struct open_how (openat2(2)); libc's is non-exhaustive, so spelled out here.
        #[repr(C)]
        struct OpenHow {
            flags: u64,
            mode: u64,
            resolve: u64,
        }
        let how = OpenHow {
            flags,
            mode,
            resolve,
        };
        // SAFETY: `how` is a valid open_how of the size passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r < 0 {
            Err(errno())
        } else {
            Ok(r as c_int)
        }
    }
    fn mkdirat(&self, dirfd: c_int, name: &CStr, mode: u32) -> SysResult {
        check(unsafe { libc::mkdirat(dirfd, name.as_ptr(), mode) })
    }
    fn symlinkat(&self, target: &CStr, dirfd: c_int, name: &CStr) -> SysResult {
        check(unsafe { libc::symlinkat(target.as_ptr(), dirfd, name.as_ptr()) })
    }
    fn close(&self, fd: c_int) {
        unsafe { libc::close(fd) };
    }
    fn mount_flags(&self, fd: c_int) -> SysResult<u64> {
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstatvfs(fd, &mut st) })?;
        // The ST_* values equal the MS_* ones they report (statvfs(3)).
        let known = libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC
            | libc::MS_NOATIME
            | libc::MS_NODIRATIME
            | libc::MS_RELATIME;
        Ok(st.f_flag & known)
    }
    fn mount_setattr(&self, fd: c_int, attr_set: u64, recursive: bool) -> SysResult {
        // struct mount_attr (mount_setattr(2)).
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        let attr = MountAttr {
            attr_set,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
        // SAFETY: an empty C string and `attr`, of the size passed, valid for the call.
        check(unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd,
                c"".as_ptr(),
                flags,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        } as c_int)
    }
    fn loopback_up(&self) -> SysResult {
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock < 0 {
            return Err(errno());
        }
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as c_char;
        }
        let r = (|| {
            check(unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) })?;
            unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
            check(unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) })
        })();
        unsafe { libc::close(sock) };
        r
    }
    fn drop_bounding(&self, keep: u64, last_cap: u32) -> SysResult {
        for cap in 0..=last_cap {
            if keep & (1 << cap) == 0 {
                check(unsafe {
                    libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0)
                })?;
            }
        }
        check(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        })
    }
    fn set_ids(&self, uid: u32, gid: u32, groups: Option<&[libc::gid_t]>) -> SysResult {
        if let Some(g) = groups {
            check(unsafe { libc::setgroups(g.len(), g.as_ptr()) })?;
        }
        check(unsafe { libc::setresgid(gid, gid, gid) })?;
        check(unsafe { libc::setresuid(uid, uid, uid) })
    }
    fn set_caps(&self, effective: u64) -> SysResult {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: c_int,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        let h = Header {
            version: VERSION_3,
            pid: 0,
        };
        let lo = effective as u32;
        let hi = (effective >> 32) as u32;
        let d = [
            Data {
                effective: lo,
                permitted: lo,
                inheritable: 0,
            },
            Data {
                effective: hi,
                permitted: hi,
                inheritable: 0,
            },
        ];
        check(unsafe { libc::syscall(libc::SYS_capset, &h as *const Header, d.as_ptr()) } as c_int)
    }
    fn set_pdeathsig(&self, sig: c_int) -> SysResult {
        check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) })
    }
    fn prepare_exec(&self) -> SysResult {
        unsafe {
            for sig in 1..libc::SIGRTMIN() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            check(libc::pthread_sigmask(
                libc::SIG_SETMASK,
                &set,
                std::ptr::null_mut(),
            ))?;
            // CVE-2024-21626: no fd of ours may reach the container (a leaked directory fd
            // is a way back to the host's filesystem through /proc/self/fd).
            check(libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) as c_int)
        }
    }
    fn dup2(&self, from: c_int, to: c_int) -> SysResult {
        check(unsafe { libc::dup2(from, to) })
    }
    fn setsid(&self) -> SysResult {
        check(unsafe { libc::setsid() })
    }
    fn mask(&self, fd: c_int) -> SysResult {
        // SAFETY: fstat into our own struct; the path is built on the stack.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            check(libc::fstat(fd, &mut st))?;
            let fdp = crate::child::FdPath::new(fd);
            let path = fdp.as_cstr();
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                check(libc::mount(
                    c"tmpfs".as_ptr(),
                    path.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    c"size=0,mode=555".as_ptr().cast(),
                ))
            } else {
                check(libc::mount(
                    c"/dev/null".as_ptr(),
                    path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))
            }
        }
    }
    fn no_new_privs(&self) -> SysResult {
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
    }
    fn seccomp(&self, prog: &[libc::sock_filter]) -> SysResult {
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: the program outlives the call; the kernel copies it.
        check(unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                1u32, /* SECCOMP_SET_MODE_FILTER */
                0u32,
                &fprog as *const libc::sock_fprog,
            )
        } as c_int)
    }
    fn open_pty(&self, sock: c_int, uid: u32) -> SysResult {
        crate::tty::child_pty(sock, uid).map_err(|(_, e)| e)
    }
    fn fork_init(&self) -> SysResult<i32> {
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            let mut old: libc::sigset_t = std::mem::zeroed();
            check(libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old))?;
            // The raw system call, not glibc's fork(): no atfork handlers in this child.
            let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0);
            if pid < 0 {
                let e = errno();
                libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                return Err(e);
            }
            if pid == 0 {
                libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                // Die with init, as init dies with the monitor.
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
            }
            Ok(pid as i32)
        }
    }
    fn exec_probe(&self, path: &CStr) -> SysResult {
        // SAFETY: a C string and our own stat buffer.
        unsafe {
            check(libc::faccessat(
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::X_OK,
                libc::AT_EACCESS,
            ))?;
            let mut st: libc::stat = std::mem::zeroed();
            check(libc::stat(path.as_ptr(), &mut st))?;
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Err(libc::EACCES);
            }
        }
        Ok(())
    }
    fn exec_via(
        &self,
        tramp: c_int,
        sock: c_int,
        argv: &[*const c_char],
        envp: &[*const c_char],
    ) -> i32 {
        if !(argv.last().is_some_and(|p| p.is_null()) && envp.last().is_some_and(|p| p.is_null())) {
            return libc::EINVAL;
        }
        // SAFETY: fds of ours; null-terminated arrays of the plan's C strings.
        unsafe {
            if libc::dup3(sock, crate::trampoline::SOCK_FD, 0) < 0 {
                return errno();
            }
            libc::syscall(
                libc::SYS_execveat,
                tramp,
                c"".as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            let e = errno();
            libc::close(crate::trampoline::SOCK_FD);
            e
        }
    }
    fn execve(&self, path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> i32 {
        if argv.last().is_some_and(|p| p.is_null()) && envp.last().is_some_and(|p| p.is_null()) {
            // SAFETY: both arrays are null-terminated and point at the plan's C strings.
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            errno()
        } else {
            libc::EINVAL
        }
    }
}

/// Writes down each call instead of making it. Paths opened with openat2 get fake fds, and
/// `/proc/self/fd/N` in later calls is shown as the path that fd was opened for.
#[cfg(test)]
#[derive(Default)]
pub struct Recording {
    pub calls: std::cell::RefCell<Vec<String>>,
    fds: std::cell::RefCell<Vec<String>>,
    /// Paths (relative to the root fd) that do not exist yet: openat2 fails with ENOENT
    /// until mkdirat creates them.
    pub missing: std::cell::RefCell<Vec<String>>,
    /// What mount_setattr fails with (ENOSYS: a kernel before 5.12); None: it works.
    pub mount_setattr_fails: std::cell::Cell<Option<i32>>,
}

#[cfg(test)]
impl Recording {
    const FD_BASE: c_int = 100;

    fn show(&self, s: &CStr) -> String {
        let s = s.to_string_lossy().into_owned();
        if let Some(n) = s
            .strip_prefix("/proc/self/fd/")
            .and_then(|n| n.parse::<c_int>().ok())
        {
            if let Some(p) = self.fds.borrow().get((n - Self::FD_BASE) as usize) {
                return format!("<{p}>");
            }
        }
        s
    }

    fn path_of(&self, dirfd: c_int) -> String {
        if dirfd == libc::AT_FDCWD {
            return ".".into();
        }
        self.fds
            .borrow()
            .get((dirfd - Self::FD_BASE) as usize)
            .cloned()
            .unwrap_or_else(|| format!("fd{dirfd}"))
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

#[cfg(test)]
impl Sys for Recording {
    fn mount(
        &self,
        src: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: u64,
        data: Option<&CStr>,
    ) -> SysResult {
        let s = |o: Option<&CStr>| o.map(|c| self.show(c)).unwrap_or_else(|| "-".into());
        self.calls.borrow_mut().push(format!(
            "mount {} {} {} {:#x} {}",
            s(src),
            self.show(target),
            s(fstype),
            flags,
            s(data)
        ));
        Ok(())
    }
    fn umount2(&self, target: &CStr, flags: c_int) -> SysResult {
        self.calls
            .borrow_mut()
            .push(format!("umount2 {} {flags:#x}", self.show(target)));
        Ok(())
    }
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult {
        self.calls.borrow_mut().push(format!(
            "pivot_root {} {}",
            self.show(new_root),
            self.show(put_old)
        ));
        Ok(())
    }
    fn chdir(&self, path: &CStr) -> SysResult {
        self.calls
            .borrow_mut()
            .push(format!("chdir {}", self.show(path)));
        Ok(())
    }
    fn fchdir(&self, fd: c_int) -> SysResult {
        self.calls
            .borrow_mut()
            .push(format!("fchdir <{}>", self.path_of(fd)));
        Ok(())
    }
    fn unshare(&self, flags: c_int) -> SysResult {
        self.calls.borrow_mut().push(format!("unshare {flags:#x}"));
        Ok(())
    }
    fn sethostname(&self, name: &[u8]) -> SysResult {
        self.calls
            .borrow_mut()
            .push(format!("sethostname {}", String::from_utf8_lossy(name)));
        Ok(())
    }
    fn openat2(
        &self,
        dirfd: c_int,
        path: &CStr,
        _flags: u64,
        _mode: u64,
        _resolve: u64,
    ) -> SysResult<c_int> {
        let base = self.path_of(dirfd);
        let p = path.to_string_lossy();
        let full = if p.is_empty() || p == "." {
            base.clone()
        } else if base == "." || base == "/" {
            p.to_string()
        } else {
            format!("{base}/{p}")
        };
        if self.missing.borrow().contains(&full) {
            return Err(libc::ENOENT);
        }
        let mut fds = self.fds.borrow_mut();
        fds.push(full);
        Ok(Self::FD_BASE + fds.len() as c_int - 1)
    }
    fn mkdirat(&self, dirfd: c_int, name: &CStr, mode: u32) -> SysResult {
        let base = self.path_of(dirfd);
        let full = format!("{base}/{}", name.to_string_lossy());
        let full = full.trim_start_matches("./").to_string();
        self.missing.borrow_mut().retain(|m| *m != full);
        self.calls
            .borrow_mut()
            .push(format!("mkdir {full} {mode:o}"));
        Ok(())
    }
    fn symlinkat(&self, target: &CStr, dirfd: c_int, name: &CStr) -> SysResult {
        let base = self.path_of(dirfd);
        self.calls.borrow_mut().push(format!(
            "symlink {base}/{} -> {}",
            name.to_string_lossy(),
            target.to_string_lossy()
        ));
        Ok(())
    }
    fn close(&self, _fd: c_int) {}
    fn mount_flags(&self, _fd: c_int) -> SysResult<u64> {
        Ok(libc::MS_NOSUID | libc::MS_NODEV)
    }
    fn mount_setattr(&self, fd: c_int, attr_set: u64, recursive: bool) -> SysResult {
        let at = if fd < 0 {
            format!("fd{fd}")
        } else {
            format!("<{}>", self.path_of(fd))
        };
        self.calls.borrow_mut().push(format!(
            "mount_setattr {at} set {attr_set:#x}{}",
            if recursive { " recursive" } else { "" }
        ));
        match self.mount_setattr_fails.get() {
            Some(e) => Err(e),
            None if fd < 0 => Err(libc::EBADF),
            None => Ok(()),
        }
    }
    fn loopback_up(&self) -> SysResult {
        self.calls.borrow_mut().push("loopback up".into());
        Ok(())
    }
    fn drop_bounding(&self, keep: u64, _last_cap: u32) -> SysResult {
        self.calls.borrow_mut().push(format!("bounding {keep:#x}"));
        Ok(())
    }
    fn set_ids(&self, uid: u32, gid: u32, groups: Option<&[libc::gid_t]>) -> SysResult {
        self.calls
            .borrow_mut()
            .push(format!("ids {uid}:{gid} groups {groups:?}"));
        Ok(())
    }
    fn set_caps(&self, effective: u64) -> SysResult {
        self.calls.borrow_mut().push(format!("caps {effective:#x}"));
        Ok(())
    }
    fn set_pdeathsig(&self, sig: c_int) -> SysResult {
        self.calls.borrow_mut().push(format!("pdeathsig {sig}"));
        Ok(())
    }
    fn prepare_exec(&self) -> SysResult {
        self.calls.borrow_mut().push("prepare exec".into());
        Ok(())
    }
    fn dup2(&self, from: c_int, to: c_int) -> SysResult {
        self.calls.borrow_mut().push(format!("dup2 {from} {to}"));
        Ok(())
    }
    fn setsid(&self) -> SysResult {
        self.calls.borrow_mut().push("setsid".into());
        Ok(())
    }
    fn mask(&self, fd: c_int) -> SysResult {
        let p = self.path_of(fd);
        self.calls.borrow_mut().push(format!("mask {p}"));
        Ok(())
    }
    fn no_new_privs(&self) -> SysResult {
        self.calls.borrow_mut().push("no_new_privs".into());
        Ok(())
    }
    fn seccomp(&self, prog: &[libc::sock_filter]) -> SysResult {
        self.calls
            .borrow_mut()
            .push(format!("seccomp {} instructions", prog.len()));
        Ok(())
    }
    fn open_pty(&self, sock: c_int, uid: u32) -> SysResult {
        self.calls
            .borrow_mut()
            .push(format!("pty via {sock} for {uid}"));
        Ok(())
    }
    fn fork_init(&self) -> SysResult<i32> {
        self.calls.borrow_mut().push("fork init".into());
        Ok(0)
    }
    fn exec_probe(&self, path: &CStr) -> SysResult {
        self.calls
            .borrow_mut()
            .push(format!("probe {}", path.to_string_lossy()));
        Err(libc::ENOENT)
    }
    fn exec_via(
        &self,
        tramp: c_int,
        _sock: c_int,
        _argv: &[*const c_char],
        _envp: &[*const c_char],
    ) -> i32 {
        self.calls.borrow_mut().push(format!("exec via {tramp}"));
        libc::ENOENT
    }
    fn execve(&self, path: &CStr, _argv: &[*const c_char], _envp: &[*const c_char]) -> i32 {
        self.calls
            .borrow_mut()
            .push(format!("execve {}", path.to_string_lossy()));
        libc::ENOENT
    }
}
