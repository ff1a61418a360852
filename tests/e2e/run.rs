//! `mrun` end to end: the real binary runs a FROM-scratch test image holding the static
//! `probe` (tests/probe/probe.rs) and busybox, and the tests assert what a user sees — the
//! exit code, the one line on stderr, what the probe reports from inside — and that nothing
//! (mount, cgroup, container directory) is left afterwards. Every process a test starts is
//! killed by the handle it was started with, and only that, if the test fails.

use crate::common::*;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The tag of the test image in each test's store.
pub(crate) const IMG: &str = "probe:1";

/// How long any single mrun may take before the test kills it and fails (a loaded 2-core
/// machine, but never a hang).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(90);

/// busybox applets the test image links to /bin/busybox.
const APPLETS: [&str; 31] = [
    "sh", "id", "ps", "cat", "ls", "dd", "sleep", "wc", "echo", "grep", "test", "[", "true",
    "false", "env", "pwd", "hostname", "mkdir", "touch", "kill", "mount", "stat", "httpd", "nc",
    "wget", "ip", "seq", "tty", "stty", "readlink", "head",
];

const BUSYBOX: &str = "/bin/busybox";

// ---------------------------------------------------------------------------------------
// The probe and the test image

/// The probe, built static once per test run (it goes into FROM-scratch images).
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(&dir).unwrap();
        let out = dir.join("probe");
        let tmp = dir.join(format!("probe.tmp.{}", std::process::id()));
        let src = workspace().join("tests/probe/probe.rs");
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let o = Command::new(rustc)
            .args([
                "--edition",
                "2021",
                "-O",
                "-C",
                "target-feature=+crt-static",
                "-C",
                "strip=symbols",
            ])
            .arg(&src)
            .arg("-o")
            .arg(&tmp)
            .output()
            .expect("run rustc to build the probe");
        assert!(
            o.status.success(),
            "building {} failed:\n{}",
            src.display(),
            text(&o.stderr)
        );
        // A rename, so a concurrent test run never executes a half-written probe.
        fs::rename(&tmp, &out).unwrap();
        out
    })
}

/// The test image's root: /probe, /bin/busybox with applet links, root and app (1000:1000)
/// in /etc/passwd and /etc/group, and /tmp.
pub fn image_tree(dir: &Path) {
    for d in ["bin", "etc", "tmp", "root", "home/app"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(probe(), dir.join("probe")).unwrap();
    fs::set_permissions(dir.join("probe"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    for a in APPLETS {
        symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
}

/// Whether this machine can run the container tests (root, busybox); says why not.
pub(crate) fn is_root_and_busybox() -> bool {
    !(skip_unless(
        is_root(),
        "mrun tests need root (overlay, namespaces, cgroups)",
    ) || skip_unless(
        Path::new(BUSYBOX).exists(),
        "/bin/busybox missing (scripts/install-deps installs busybox-static)",
    ))
}

/// A fresh store holding the test image as `probe:1`, or None (with `skipped:`) when this
/// machine cannot run containers.
pub(crate) fn setup() -> Option<Env> {
    if !is_root_and_busybox() {
        return None;
    }
    let env = Env::new();
    let tree = env.path("image");
    image_tree(&tree);
    env.ok(["import", tree.to_str().unwrap(), "-t", IMG]);
    Some(env)
}

// ---------------------------------------------------------------------------------------
// Running mrun

pub(crate) fn mrun_cmd(env: &Env) -> Command {
    let mut c = Command::new(MRUN);
    c.arg("--root").arg(&env.root);
    c.env_remove("MINIBOX_ROOT").stdin(Stdio::null());
    c
}

/// A process this test started; killed (by its own handle, so never a recycled pid) and
/// reaped when dropped before it ended.
pub(crate) struct Running {
    pub(crate) child: Child,
    done: bool,
}

impl Running {
    pub(crate) fn spawn(mut c: Command) -> Running {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        Running {
            child: c.spawn().unwrap(),
            done: false,
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait until it exits, at most `timeout`; on timeout kill it and fail.
    pub(crate) fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                self.done = true;
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.done = true;
                panic!("pid {} still running after {timeout:?}: killed", self.pid());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait, with stdout and stderr read to the end (by threads, so a full pipe never
    /// blocks the child).
    pub(crate) fn output(mut self, timeout: Duration) -> Output {
        let drain = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut b = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut b);
                }
                b
            })
        };
        let out = drain(
            self.child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let err = drain(
            self.child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let status = self.wait(timeout);
        Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn run_cmd(c: Command) -> Output {
    Running::spawn(c).output(TIMEOUT)
}

/// `mrun --root STORE --rm args...`: a foreground container removed on exit, as the tests
/// here check that nothing is left.
pub(crate) fn mrun(env: &Env, args: &[&str]) -> Output {
    let mut c = mrun_cmd(env);
    c.arg("--rm").args(args);
    run_cmd(c)
}

pub(crate) fn code(o: &Output) -> i32 {
    o.status
        .code()
        .unwrap_or_else(|| panic!("mrun died of a signal: {:?}\n{}", o.status, text(&o.stderr)))
}

/// Run and insist on exit 0 with nothing on stderr; returns stdout.
pub(crate) fn mrun_ok(env: &Env, args: &[&str]) -> String {
    let o = mrun(env, args);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "mrun {args:?}: {}\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

pub(crate) fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// The number after `key ` on a line of the probe's output ("usage_usec 123").
fn value(out: &str, key: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key:?} in {out:?}"))
}

/// A default container hostname: the first 12 hex digits of the container id.
pub(crate) fn id_prefix(hostname: &str) -> String {
    let h = hostname.trim().to_string();
    assert!(
        h.len() == 12
            && h.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "hostname {h:?}"
    );
    h
}

// ---------------------------------------------------------------------------------------
// What a container may leave behind

/// (mount root, mount point, fstype, super options) of each line of /proc/self/mountinfo.
pub(crate) fn mountinfo() -> Vec<(String, PathBuf, String, String)> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some((
                left[3].to_string(),
                PathBuf::from(left[4]),
                right[0].to_string(),
                right.get(2)?.to_string(),
            ))
        })
        .collect()
}

/// The directories mrun makes container cgroups in, for this process: on cgroup v1
/// `<hierarchy>/<our own cgroup there>/minibox` for each controller hierarchy (every one,
/// named ones such as `name=systemd` aside); on v2 `<mount>/minibox` (as root) and
/// `<mount>/<own>/minibox`.
pub(crate) fn cgroup_parents() -> Vec<PathBuf> {
    let mounts = mountinfo();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut v1 = Vec::new();
    let mut v2_own = None;
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, list, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        if list.is_empty() {
            v2_own = Some(path.to_string());
            continue;
        }
        let ctrls: Vec<&str> = list.split(',').collect();
        if ctrls.iter().all(|c| c.starts_with("name=")) {
            continue;
        }
        let m = mounts.iter().find(|(root, _, fstype, opts)| {
            let opts: Vec<&str> = opts.split(',').collect();
            fstype == "cgroup"
                && ctrls.iter().all(|c| opts.contains(c))
                && path.starts_with(root.as_str())
        });
        if let Some((root, point, _, _)) = m {
            let rel = path
                .strip_prefix(root.as_str())
                .unwrap()
                .trim_start_matches('/');
            v1.push(point.join(rel).join("minibox"));
        }
    }
    if !v1.is_empty() {
        return v1;
    }
    let mut v2 = Vec::new();
    if let Some((root, point, _, _)) = mounts.iter().find(|m| m.2 == "cgroup2") {
        v2.push(point.join("minibox"));
        if let Some(own) = v2_own
            .as_deref()
            .and_then(|o| o.strip_prefix(root.as_str()))
        {
            v2.push(point.join(own.trim_start_matches('/')).join("minibox"));
        }
    }
    v2.dedup();
    v2
}

/// The container cgroups of the container whose id starts with `prefix`.
pub(crate) fn cgroups_of(prefix: &str) -> Vec<PathBuf> {
    cgroup_parents()
        .iter()
        .filter_map(|p| fs::read_dir(p).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

pub(crate) fn mounts_of(env: &Env) -> Vec<String> {
    let root = env.root.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(String::from)
        .collect()
}

pub(crate) fn containers_of(env: &Env) -> Vec<PathBuf> {
    match fs::read_dir(env.root.join("containers")) {
        Ok(d) => d.flatten().map(|e| e.path()).collect(),
        Err(_) => vec![],
    }
}

/// No mount under the store, no cgroup of container `prefix`, no container directory.
pub(crate) fn assert_nothing_left(env: &Env, prefix: &str, after: &str) {
    assert_eq!(
        mounts_of(env),
        Vec::<String>::new(),
        "mounts left after {after}"
    );
    assert_eq!(
        cgroups_of(prefix),
        Vec::<PathBuf>::new(),
        "cgroups left after {after}"
    );
    assert_eq!(
        containers_of(env),
        Vec::<PathBuf>::new(),
        "container directories left after {after}"
    );
}

// ---------------------------------------------------------------------------------------
// Isolation

/// A SysV message queue on the host, removed when dropped.
struct MsgQueue {
    key: i32,
    id: i32,
}

impl MsgQueue {
    /// A new queue under a key no one else uses (IPC_EXCL; parallel tests pick other keys).
    fn create() -> MsgQueue {
        for _ in 0..100 {
            let mut r = [0u8; 4];
            assert_eq!(unsafe { libc::getrandom(r.as_mut_ptr().cast(), 4, 0) }, 4);
            let key = (i32::from_le_bytes(r) & 0x0fff_ffff) | 0x4d00_0000;
            let id = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
            if id >= 0 {
                return MsgQueue { key, id };
            }
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EEXIST)
            );
        }
        panic!("no free message queue key");
    }
}

impl Drop for MsgQueue {
    fn drop(&mut self) {
        unsafe { libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

#[test]
fn container_has_its_own_hostname_pids_ipc_network_and_full_root_maps() {
    let Some(env) = setup() else { return };

    assert_eq!(
        mrun_ok(&env, &["-h", "box", IMG, "/probe", "hostname"]),
        "box\n"
    );
    let id = id_prefix(&mrun_ok(&env, &[IMG, "/probe", "hostname"]));
    // HOSTNAME in the environment agrees, as with Docker.
    assert!(lines(&mrun_ok(&env, &[IMG, "/probe", "env"]))
        .iter()
        .any(|l| l.starts_with("HOSTNAME=") && l.len() == 21));

    // PID 1, and /proc shows the container's processes only.
    assert_eq!(mrun_ok(&env, &[IMG, "/probe", "pid"]), "1\n");
    let procs = mrun_ok(&env, &[IMG, "/probe", "procs"]);
    assert_eq!(lines(&procs), ["1"], "/proc in the container");
    let me = std::process::id().to_string();
    assert!(!lines(&procs).contains(&me.as_str()));
    let ps = mrun_ok(&env, &[IMG, "sh", "-c", "sleep 30 & /probe procs; kill $!"]);
    assert_eq!(lines(&ps).len(), 3, "sh, sleep and the probe: {ps:?}");

    // A message queue on the host is not in the container's IPC namespace.
    let q = MsgQueue::create();
    assert!(
        unsafe { libc::msgget(q.key, 0) } >= 0,
        "the host sees its own queue"
    );
    let key = format!("{:#x}", q.key);
    assert_eq!(mrun_ok(&env, &[IMG, "/probe", "msgq", &key]), "absent\n");
    drop(q);

    // Only lo; with --net host the host's interfaces.
    assert_eq!(
        mrun_ok(&env, &["--net", "none", IMG, "/probe", "ifaces"]),
        "lo\n"
    );
    // Bridges and veths of containers that other tests start and stop meanwhile come and go
    // between the two looks: compare the rest.
    let steady = |n: &str| {
        !(n.starts_with("mb")
            || n.starts_with("minibox")
            || n.starts_with("veth")
            || n.starts_with("podman"))
    };
    let mut host: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| steady(n))
        .collect();
    host.sort();
    let inside = mrun_ok(&env, &["--net", "host", IMG, "/probe", "ifaces"]);
    let inside: Vec<&str> = lines(&inside).into_iter().filter(|n| steady(n)).collect();
    assert_eq!(inside, host);

    // Root without a user namespace: the identity maps; Docker's default capabilities.
    assert_eq!(
        mrun_ok(&env, &[IMG, "/probe", "maps"]),
        "uid 0 0 4294967295\ngid 0 0 4294967295\n"
    );
    let caps = mrun_ok(&env, &[IMG, "/probe", "caps"]);
    assert!(lines(&caps).contains(&"CapEff: 00000000a80425fb"), "{caps}");
    assert!(lines(&caps).contains(&"CapBnd: 00000000a80425fb"), "{caps}");

    assert_nothing_left(&env, &id, "a normal run");
}

// ---------------------------------------------------------------------------------------
// Resource limits

#[test]
fn memory_limit_is_enforced_and_an_oom_kill_exits_137_saying_so() {
    let Some(env) = setup() else { return };
    // `exec` keeps the probe as PID 1, so the kernel's SIGKILL ends the container itself.
    let o = mrun(
        &env,
        &[
            "-m",
            "5m",
            IMG,
            "sh",
            "-c",
            "/probe hostname; exec /probe alloc 10",
        ],
    );
    assert_eq!(
        code(&o),
        137,
        "stdout: {}\nstderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(
        text(&o.stderr),
        "mrun: container killed: out of memory (limit 5 MiB)\n"
    );
    let id = id_prefix(&text(&o.stdout));
    assert_nothing_left(&env, &id, "an OOM kill");

    assert_eq!(
        mrun_ok(&env, &["--memory", "5m", IMG, "/probe", "alloc", "2"]),
        "ok\n"
    );
}

/// (CPU time over wall time, CFS periods throttled) of `spin SECS` in a container, from the
/// container's own cgroup.
fn cpu_share(env: &Env, flags: &[&str], secs: &str) -> (f64, f64) {
    let script = format!("/probe spin {secs}; /probe cpu-usage");
    let mut args = flags.to_vec();
    args.extend([IMG, "sh", "-c", &script]);
    let start = Instant::now();
    let out = mrun_ok(env, &args);
    let wall = start.elapsed().as_micros() as f64;
    let spun = value(&out, "spun_usec");
    let used = value(&out, "usage_usec");
    assert!(
        spun <= wall,
        "the probe spun {spun} µs in {wall} µs of mrun"
    );
    assert!(used > 0.0, "no CPU time accounted: {out}");
    (used / spun, value(&out, "nr_throttled"))
}

#[test]
fn cpus_limit_holds_the_container_to_its_share() {
    let Some(env) = setup() else { return };
    let (limited, throttled) = cpu_share(&env, &["--cpus", "0.1"], "3");
    eprintln!(
        "--cpus 0.1: {:.1}% of a CPU, throttled {throttled} times",
        limited * 100.0
    );
    assert!(
        limited <= 0.15,
        "--cpus 0.1 used {:.0}% of a CPU",
        limited * 100.0
    );
    assert!(throttled > 0.0, "--cpus 0.1 never throttled");

    // Unlimited it takes a whole CPU, unless this shared 2-core machine is busy. So each
    // try also spins a probe on the host meanwhile: when even that one gets less than 80%,
    // a container that was never throttled and got about as much counts (what it lacked,
    // the machine's load took, not a quota).
    let mut got = Vec::new();
    for _ in 0..3 {
        let mut host = Command::new(probe());
        host.args(["spin", "2"]).stdin(Stdio::null());
        let host = Running::spawn(host);
        let (s, throttled) = cpu_share(&env, &[], "2");
        let out = host.output(TIMEOUT);
        assert!(out.status.success());
        let out = text(&out.stdout);
        let h = value(&out, "cpu_usec") / value(&out, "spun_usec");
        eprintln!(
            "without --cpus: {:.1}% of a CPU, throttled {throttled} times (a host process meanwhile: {:.1}%)",
            s * 100.0,
            h * 100.0
        );
        got.push((s, throttled, h));
        if s >= 0.8 || (h < 0.8 && throttled == 0.0 && s >= 0.5 * h) {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!(
        "without --cpus the container got (share, times throttled, host's share meanwhile) {got:?}"
    );
}

#[test]
fn pids_limit_contains_a_fork_bomb() {
    let Some(env) = setup() else { return };
    let start = Instant::now();
    let out = mrun_ok(
        &env,
        &[
            "--pids-limit",
            "20",
            IMG,
            "sh",
            "-c",
            "/probe hostname; exec /probe forkbomb",
        ],
    );
    let l = lines(&out);
    let id = id_prefix(l[0]);
    let forked = value(&out, "forked");
    eprintln!("--pids-limit 20: {out:?}");
    assert!(
        (10.0..20.0).contains(&forked),
        "forked {forked} under --pids-limit 20: {out}"
    );
    assert_eq!(l.get(2), Some(&"fork failed: EAGAIN"), "{out}");
    assert!(start.elapsed() < Duration::from_secs(60));
    // The host can still fork.
    assert!(Command::new("true").status().unwrap().success());
    assert_nothing_left(&env, &id, "a fork bomb");
}

/// A loop device over a sparse file, detached when dropped.
struct Loop {
    dev: String,
}

impl Loop {
    fn new(file: &Path, size: u64) -> Loop {
        fs::File::create(file).unwrap().set_len(size).unwrap();
        let o = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .unwrap();
        assert!(o.status.success(), "losetup: {}", text(&o.stderr));
        Loop {
            dev: text(&o.stdout).trim().to_string(),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

#[test]
fn device_write_bps_throttles_direct_writes() {
    let Some(env) = setup() else { return };
    if skip_unless(have("losetup"), "losetup missing (util-linux)") {
        return;
    }
    let lo = Loop::new(&env.path("disk.img"), 64 << 20);
    let dev = lo.dev.as_str();
    let rate = |flags: &[&str]| {
        let mut args = vec!["--device", dev];
        args.extend_from_slice(flags);
        args.extend([IMG, "/probe", "write-direct", dev, "3"]);
        let out = mrun_ok(&env, &args);
        // "1.002 MiB/s"
        out.split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{out:?}"))
    };
    let limit = format!("{dev}:1mb");
    let limited = rate(&["--device-write-bps", &limit]);
    eprintln!("--device-write-bps {limit}: {limited} MiB/s");
    assert!(
        limited <= 1.2,
        "--device-write-bps {limit}: {limited} MiB/s"
    );
    let free = rate(&[]);
    eprintln!("unthrottled: {free} MiB/s");
    assert!(free >= 5.0, "unthrottled: {free} MiB/s");
}

// ---------------------------------------------------------------------------------------
// Images

#[test]
fn an_image_of_130_layers_runs() {
    use layers::oci_spec::image::Config;
    use layers::pack::PackOptions;
    let Some(env) = setup() else { return };
    const N: usize = 130;
    let store = layers::Store::open(&env.root).unwrap();
    let mut infos = Vec::new();
    for n in 0..N {
        let dir = env.path(&format!("layers/{n}"));
        if n == 0 {
            image_tree(&dir);
        }
        fs::create_dir_all(dir.join("l")).unwrap();
        fs::write(dir.join("l").join(n.to_string()), format!("{n}\n")).unwrap();
        infos.push(store.pack_layer(&dir, &PackOptions::default()).unwrap().0);
    }
    let mut config = layers::image::new_config();
    let mut c = Config::default();
    c.set_cmd(Some(vec![
        "sh".into(),
        "-c".into(),
        "ls /l | wc -l; cat /l/0 /l/129".into(),
    ]));
    config.set_config(Some(c));
    let manifest = store.write_image(&config, &infos).unwrap();
    store
        .set_tag(&layers::Reference::parse("many:1").unwrap(), &manifest)
        .unwrap();
    drop(store);

    let out = mrun_ok(&env, &["many:1"]);
    assert_eq!(
        lines(&out).iter().map(|l| l.trim()).collect::<Vec<_>>(),
        ["130", "0", "129"]
    );
}

// ---------------------------------------------------------------------------------------
// Mounts, devices, process settings

#[test]
fn volumes_tmpfs_read_only_root_and_devices() {
    let Some(env) = setup() else { return };
    let host = env.path("vol");
    fs::create_dir_all(&host).unwrap();
    let rw = format!("{}:/data", host.display());
    let ro = format!("{}:/data:ro", host.display());

    assert_eq!(
        mrun_ok(
            &env,
            &["-v", &rw, IMG, "/probe", "write", "/data/f", "from inside"]
        ),
        "ok\n"
    );
    assert_eq!(fs::read_to_string(host.join("f")).unwrap(), "from inside");
    let o = mrun(&env, &["-v", &ro, IMG, "/probe", "write", "/data/g", "x"]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("Read-only file system"),
        "{}",
        text(&o.stderr)
    );
    assert!(!host.join("g").exists());
    assert_eq!(
        mrun_ok(&env, &["-v", &ro, IMG, "/probe", "cat", "/data/f"]),
        "from inside"
    );

    let out = mrun_ok(
        &env,
        &[
            "--tmpfs",
            "/scratch",
            IMG,
            "sh",
            "-c",
            "/probe write /scratch/f x && /probe cat /proc/mounts",
        ],
    );
    let line = out
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/scratch"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with("tmpfs /scratch tmpfs "), "{line}");

    // --read-only: / and /tmp are read-only, as with Docker, unless a tmpfs is mounted there.
    for path in ["/f", "/tmp/f"] {
        let o = mrun(&env, &["--read-only", IMG, "/probe", "write", path, "x"]);
        assert_eq!(code(&o), 1, "writing {path}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("Read-only file system"),
            "{}",
            text(&o.stderr)
        );
    }
    assert_eq!(
        mrun_ok(
            &env,
            &[
                "--read-only",
                "--tmpfs",
                "/tmp",
                IMG,
                "/probe",
                "write",
                "/tmp/f",
                "x"
            ]
        ),
        "ok\n"
    );

    let out = mrun_ok(
        &env,
        &[
            "--device",
            "/dev/null:/dev/x",
            IMG,
            "sh",
            "-c",
            "[ -c /dev/x ] && /probe write /dev/x hello",
        ],
    );
    assert_eq!(out, "ok\n");
    // Read-only access is the devices cgroup's to enforce (a read-only bind mount of a
    // device node would still let writes through): the write is refused with EPERM. The
    // kernel log (1:11) is not among Docker's default devices, as /dev/null is.
    let o = mrun(
        &env,
        &[
            "--device",
            "/dev/kmsg:/dev/x:r",
            IMG,
            "/probe",
            "write",
            "/dev/x",
            "hello",
        ],
    );
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("Operation not permitted"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(o.stdout, b"");
}

#[test]
fn env_workdir_and_user_follow_docker() {
    let Some(env) = setup() else { return };
    let file = env.path("vars.env");
    fs::write(&file, "# a comment\nFROM_FILE=1\n\nSPACED=two words\n").unwrap();
    let mut c = mrun_cmd(&env);
    c.env("MINIBOX_E2E_PASSED", "from the host")
        .env_remove("MINIBOX_E2E_UNSET");
    c.args([
        "-e",
        "MINIBOX_E2E_PASSED",
        "-e",
        "MINIBOX_E2E_UNSET",
        "-e",
        "K=V",
        "--env-file",
    ])
    .arg(&file);
    c.args([IMG, "/probe", "env"]);
    let o = run_cmd(c);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let vars = lines(&out);
    for want in [
        "MINIBOX_E2E_PASSED=from the host",
        "K=V",
        "FROM_FILE=1",
        "SPACED=two words",
        "HOME=/root",
    ] {
        assert!(vars.contains(&want), "{want:?} not in {vars:?}");
    }
    assert!(!out.contains("MINIBOX_E2E_UNSET"), "{out}");

    assert_eq!(
        mrun_ok(&env, &["-w", "/some/dir", IMG, "/probe", "cwd"]),
        "/some/dir\n"
    );

    let id = mrun_ok(&env, &["-u", "app", IMG, "id"]);
    assert!(id.starts_with("uid=1000(app) gid=1000(app)"), "{id}");
    assert_eq!(
        mrun_ok(&env, &["-u", "app", IMG, "/probe", "ids"]),
        "uid=1000\ngid=1000\ngroups=\n"
    );
    // Not root: no capabilities left, as with Docker.
    let caps = mrun_ok(&env, &["-u", "app", IMG, "/probe", "caps"]);
    assert!(lines(&caps).contains(&"CapEff: 0000000000000000"), "{caps}");
}

// ---------------------------------------------------------------------------------------
// Exit codes and signals

#[test]
fn exit_codes_follow_docker() {
    let Some(env) = setup() else { return };
    assert_eq!(code(&mrun(&env, &[IMG, "/probe", "exit", "0"])), 0);
    assert_eq!(code(&mrun(&env, &[IMG, "sh", "-c", "exit 3"])), 3);

    let o = mrun(&env, &["--pull", "never", "nosuch:1", "true"]);
    assert_eq!(code(&o), 125);
    assert_eq!(
        assert_one_line_error(&o, "no such image"),
        "mrun: no such image: nosuch:1"
    );
    // Without --pull never, a missing image is pulled first, as docker run does (from
    // Docker Hub here, which the test does not count on reaching): a failed pull is 125 too.
    let o = mrun(&env, &["nosuch:1", "true"]);
    assert_eq!(code(&o), 125);
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(lines[0], "Unable to find image 'nosuch:1' locally");
    assert!(
        lines[1].starts_with("mrun: pull docker.io/library/nosuch:1: "),
        "{err}"
    );

    let o = mrun(&env, &[IMG, "/etc/passwd"]);
    assert_eq!(code(&o), 126);
    assert_eq!(
        assert_one_line_error(&o, "/etc/passwd"),
        "mrun: exec /etc/passwd: permission denied"
    );

    let o = mrun(&env, &[IMG, "nosuch"]);
    assert_eq!(code(&o), 127);
    assert_eq!(
        assert_one_line_error(&o, "nosuch"),
        "mrun: exec nosuch: executable file not found in $PATH"
    );

    // 137 is an OOM kill (memory_limit_is_enforced_...); 143 a forwarded SIGTERM (below).
    assert_eq!(containers_of(&env), Vec::<PathBuf>::new());
}

/// Removes what a failed test left of container `.0`'s cgroups once its processes are gone
/// (rmdir never removes a cgroup that still holds one).
struct Sweep(String);

impl Drop for Sweep {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for _ in 0..50 {
                let left = cgroups_of(&self.0);
                if left.iter().all(|d| fs::remove_dir(d).is_ok()) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// `docker stop`'s situation with an init: mrun gets SIGTERM and forwards it to the
/// container's PID 1. PID 1 of a PID namespace is never killed by a signal it has no handler
/// for, so, as `docker run --init` does with tini, PID 1 here is a shell that passes SIGTERM
/// on to its one child and exits with that child's status: killed by SIGTERM, 143.
#[test]
fn sigterm_to_mrun_reaches_the_container_which_exits_143_and_nothing_is_left() {
    let Some(env) = setup() else { return };
    let init = r#"/probe hostname
sleep 100 & child=$!
trap 'kill -TERM $child' TERM
echo ready
wait $child; st=$?
if [ $st -gt 128 ]; then wait $child; st=$?; fi
exit $st"#;
    let mut c = mrun_cmd(&env);
    c.args(["--rm", IMG, "sh", "-c", init]);
    let mut r = Running::spawn(c);
    let mut out = BufReader::new(r.child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let id = id_prefix(&line);
    let _sweep = Sweep(id.clone());
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");

    // While it runs, its cgroups and directory exist where the later checks look.
    let parents = cgroup_parents();
    assert!(
        !parents.is_empty(),
        "no cgroup hierarchy found for this process"
    );
    // One per v1 hierarchy; on v2 one in whichever of the candidates mrun chose.
    let want = if cgroup_v1() { parents.len() } else { 1 };
    assert_eq!(
        cgroups_of(&id).len(),
        want,
        "the running container's cgroups in {parents:?}"
    );
    assert_eq!(containers_of(&env).len(), 1);

    let sent = Instant::now();
    assert_eq!(unsafe { libc::kill(r.pid(), libc::SIGTERM) }, 0);
    let status = r.wait(TIMEOUT);
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "SIGTERM took {:?}",
        sent.elapsed()
    );
    let mut err = String::new();
    r.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // The shell may report its job "Terminated"; mrun itself has nothing to say.
    assert!(!err.contains("mrun"), "{err}");
    assert_nothing_left(&env, &id, "SIGTERM to mrun");
}

// ---------------------------------------------------------------------------------------
// Rootless

pub(crate) const TEST_USER: &str = "minibox-test";

/// The unprivileged test user (made by scripts/ci-user) with a directory it owns inside
/// the test's Env, holding copies of the binaries and its store.
pub(crate) struct User {
    uid: u32,
    gid: u32,
    dir: PathBuf,
    mrun: PathBuf,
}

pub(crate) fn user_entry(name: &str) -> Option<(u32, u32)> {
    let c = std::ffi::CString::new(name).unwrap();
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    (!pw.is_null()).then(|| unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn chown_r(p: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

impl User {
    pub(crate) fn setup(env: &Env) -> Option<User> {
        if skip_unless(
            is_root(),
            "the rootless tests switch to the test user, which needs root",
        ) || skip_unless(have("setpriv"), "setpriv missing (util-linux)")
            || skip_unless(
                Path::new(BUSYBOX).exists(),
                "/bin/busybox missing (scripts/install-deps installs busybox-static)",
            )
        {
            return None;
        }
        let found = user_entry(TEST_USER);
        if skip_unless(
            found.is_some(),
            &format!("user {TEST_USER} missing (.ci/run creates it)"),
        ) {
            return None;
        }
        let (uid, gid) = found.unwrap();
        // The Env's own directory is root's 0700; let the user through to its own part.
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
        let dir = env.path("user");
        fs::create_dir_all(dir.join("bin")).unwrap();
        let copy = |from: &str, name: &str| {
            let to = dir.join("bin").join(name);
            fs::copy(from, &to).unwrap();
            fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).unwrap();
            to
        };
        let mrun = copy(MRUN, "mrun");
        let mbuild = copy(MBUILD, "mbuild");
        image_tree(&dir.join("image"));
        chown_r(&dir, uid, gid);
        let u = User {
            uid,
            gid,
            dir,
            mrun,
        };
        let mut c = u.cmd(&mbuild);
        c.arg("import").arg(u.dir.join("image")).args(["-t", IMG]);
        let o = run_cmd(c);
        assert!(
            o.status.success(),
            "mbuild import as {TEST_USER}: {}",
            text(&o.stderr)
        );
        Some(u)
    }

    /// `prog` as the test user, with the environment a login would give it (then `vars`);
    /// the store is the rootless default, `$XDG_DATA_HOME/minibox`.
    fn cmd_with(&self, prog: &Path, vars: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            TEST_USER,
            "--regid",
            TEST_USER,
            "--init-groups",
            "env",
        ]);
        c.arg(format!("HOME={}", self.dir.display()));
        c.arg(format!("XDG_DATA_HOME={}", self.dir.join("data").display()));
        c.arg(format!("USER={TEST_USER}"))
            .arg(format!("LOGNAME={TEST_USER}"));
        c.args(vars).arg(prog);
        c.current_dir(&self.dir)
            .env_remove("MINIBOX_ROOT")
            .stdin(Stdio::null());
        c
    }

    fn cmd(&self, prog: &Path) -> Command {
        self.cmd_with(prog, &[])
    }

    /// `mrun --rm --net none args...` as the user (the network default has its own test).
    pub(crate) fn mrun(&self, args: &[&str]) -> Output {
        let mut c = self.cmd(&self.mrun);
        c.args(["--rm", "--net", "none"]).args(args);
        run_cmd(c)
    }
}

/// The user's first range in /etc/subuid or /etc/subgid.
fn subids(file: &str, name: &str, id: u32) -> Option<(u32, u32)> {
    fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() == 3 && (f[0] == name || f[0] == id.to_string()))
            .then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))?
    })
}

fn cgroup_v1() -> bool {
    mountinfo().iter().any(|(_, _, fstype, opts)| {
        fstype == "cgroup"
            && opts
                .split(',')
                .any(|o| ["memory", "cpu", "cpuacct", "pids", "blkio"].contains(&o))
    })
}

#[test]
fn rootless_run_is_root_inside_a_user_namespace_and_warns_once_without_cgroups() {
    let env = Env::new();
    let Some(u) = User::setup(&env) else { return };

    let o = u.mrun(&[IMG, "sh", "-c", "id; /probe maps"]);
    assert!(o.status.success(), "{}\n{}", o.status, text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.starts_with("uid=0(root) gid=0(root)"), "{out}");
    let maps = lines(&out);
    assert!(
        maps.contains(&format!("uid 0 {} 1", u.uid).as_str()),
        "{out}"
    );
    assert!(
        maps.contains(&format!("gid 0 {} 1", u.gid).as_str()),
        "{out}"
    );
    let helpers = have("newuidmap") && have("newgidmap");
    match (
        subids("/etc/subuid", TEST_USER, u.uid),
        subids("/etc/subgid", TEST_USER, u.gid),
    ) {
        (Some((us, uc)), Some((gs, gc))) if helpers => {
            assert!(maps.contains(&format!("uid 1 {us} {uc}").as_str()), "{out}");
            assert!(maps.contains(&format!("gid 1 {gs} {gc}").as_str()), "{out}");
            // A stale $USER (setpriv, su without -) must not pick someone else's ranges:
            // newuidmap checks those of the real uid's name.
            let mut c = u.cmd_with(&u.mrun, &["USER=root"]);
            c.args(["--rm", "--net", "none", IMG, "/probe", "maps"]);
            let o = run_cmd(c);
            assert!(
                o.status.success(),
                "with USER=root: {}\n{}",
                o.status,
                text(&o.stderr)
            );
            assert!(
                lines(&text(&o.stdout)).contains(&format!("uid 1 {us} {uc}").as_str()),
                "{}",
                text(&o.stdout)
            );
        }
        _ => {
            let _ = skip_unless(
                false,
                &format!("no /etc/subuid range or newuidmap for {TEST_USER}: only one id mapped"),
            );
        }
    }

    // No cgroup the user may write (v1 here; on v2 nothing delegated to a user switched to
    // by setpriv): one line saying so, and the container still runs.
    let o = u.mrun(&[IMG, "/probe", "hostname"]);
    assert!(o.status.success(), "{}\n{}", o.status, text(&o.stderr));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("mrun: resource limits are not available: "),
        "{err:?}"
    );
    id_prefix(&text(&o.stdout));

    // A user's default network: slirp4netns where it can work (tap0), else none with one
    // note saying why.
    let mut c = u.cmd(&u.mrun);
    c.args(["--rm", IMG, "/probe", "ifaces"]);
    let o = run_cmd(c);
    assert!(o.status.success(), "{}\n{}", o.status, text(&o.stderr));
    let err = text(&o.stderr);
    let ifaces = text(&o.stdout);
    if err.contains("the container gets no network (--net none)") {
        assert_eq!(ifaces, "lo\n");
        assert!(
            err.lines().any(|l| l.starts_with("mrun: /dev/net/tun")
                || l.starts_with("mrun: slirp4netns is not installed")),
            "{err:?}"
        );
    } else {
        assert!(ifaces.lines().any(|l| l == "tap0"), "{ifaces:?} {err:?}");
    }
}

#[test]
fn rootless_limits_without_a_writable_cgroup_are_refused() {
    let env = Env::new();
    let Some(u) = User::setup(&env) else { return };
    let o = u.mrun(&["--memory", "5m", IMG, "/probe", "alloc", "1"]);
    assert_eq!(code(&o), 125, "{}", text(&o.stdout));
    let line = assert_one_line_error(&o, "mrun: cannot apply the requested limits: ");
    if cgroup_v1() {
        assert!(line.contains("not writable"), "{line}");
    }
    assert_eq!(o.stdout, b"", "nothing ran");
    let containers = u.dir.join("data/minibox/containers");
    assert_eq!(
        fs::read_dir(&containers).map(|d| d.count()).unwrap_or(0),
        0,
        "container directory left"
    );
}
