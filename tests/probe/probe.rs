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

fn run(args: &[String]) -> Res<u8> {
    let cmd = arg(args, 1, "COMMAND (hostname pid ids maps procs ifaces msgq alloc spin cpu-usage forkbomb caps cat write exit env cwd write-direct syscalls)")?;
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
        "write-direct" => write_direct(arg(args, 2, "PATH")?, num(arg(args, 3, "MIB")?, "MIB")?)?,
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
