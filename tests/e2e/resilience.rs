//! What minibox leaves behind when things go wrong: mrun and its monitor SIGKILLed at each
//! stage of a container's life, Ctrl-C during a build's RUN step, `prune` racing builds, a
//! full disk, and hundreds of short containers. Each test ends by checking that nothing is
//! left: no mount under the store, no cgroup, veth or address lease of its containers, no
//! container directory or name, no session of a dead process in tmp/.
//!
//! mrun has no hook that stops it at a named stage of its start-up, so the SIGKILLs during
//! start-up land at moments spread over the measured start-up time (as
//! `store::sigkill_during_import_leaves_a_valid_store` does for imports), and each test checks
//! that they hit several stages; those during the cleanup are aimed at moments spread after
//! the container's end, watched through a pidfd; one moment too short for either (between
//! the name and the config) is caught with inotify and SIGSTOP.
//! Every process a test starts is ended through its own handle; the monitors and containers
//! mrun starts are signalled through pidfds, never by name. Four of them found runner bugs,
//! since fixed; they stay as regression tests (the old failure is described on each).

use crate::common::*;
use crate::lifecycle::{mr, mr_ok};
use crate::run::{cgroup_parents, image_tree, mounts_of, mrun_cmd, setup, Running, IMG, TIMEOUT};
use std::collections::HashSet;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The environment variable that marks a test's container processes, so the test can tell
/// whether they outlived the mrun that started them (/proc/PID/environ).
const MARK: &str = "MINIBOX_E2E_MARK";

/// Where mrun keeps its address leases (machine-wide, like the bridge).
const LEASES: &str = "/run/minibox/network/leases";

// ---------------------------------------------------------------------------------------
// Processes

/// A process this test started, its output going to files (a pipe would keep a reader
/// waiting for as long as a leaked container holds a copy of it). SIGKILLed through its own
/// handle and reaped when dropped before it ended.
struct Proc {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    fn spawn(env: &Env, mut c: Command, name: &str) -> Proc {
        let out = env.path(&format!("{name}.out"));
        let err = env.path(&format!("{name}.err"));
        c.stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap());
        Proc {
            child: c.spawn().unwrap(),
            out,
            err,
            status: None,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL, while it is our unreaped child (so the pid is still its own).
    fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
        }
    }

    /// Send `sig` while it is our unreaped child.
    fn signal(&mut self, sig: i32) {
        if self.status.is_none() && self.child.try_wait().unwrap().is_none() {
            assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
        }
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.status = Some(s);
                return s;
            }
            if Instant::now() > deadline {
                self.kill();
                let s = self.child.wait().unwrap();
                self.status = Some(s);
                panic!("pid {} still running after {timeout:?}: killed", self.pid());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A pidfd: a process that is not our child (a monitor, a container), signalled and
/// watched without ever reaching another process that got its pid later.
struct Pidfd(OwnedFd);

impl Pidfd {
    /// None when the process is gone already.
    fn open(pid: i32) -> Option<Pidfd> {
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        (fd >= 0).then(|| Pidfd(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    fn kill(&self, sig: i32) {
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }

    /// Wait until the process has ended, at most `timeout`; true when it has.
    fn wait(&self, timeout: Duration) -> bool {
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        unsafe { libc::poll(&mut p, 1, ms) == 1 }
    }
}

/// Poll `f` until it is true or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// The processes (containers' commands) that carry `MARK=mark` in their environment.
fn marked(mark: &str) -> Vec<i32> {
    let want = format!("{MARK}={mark}");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|b| b.split(|&c| c == 0).any(|v| v == want.as_bytes()))
        })
        .collect()
}

/// A mark no other test, round or concurrent test run uses.
fn mark(what: &str, round: u32) -> String {
    format!("{what}-{}-{round}", std::process::id())
}

/// `MARK=mark` as mrun's `-e` argument.
fn mark_env(mark: &str) -> String {
    format!("{MARK}={mark}")
}

/// The first child of process `pid` (the monitor `mrun -d` forks is its only one).
fn first_child(pid: i32) -> Option<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Somebody holds the lock of a container directory of `env` (a monitor looks after it).
fn owned(env: &Env) -> bool {
    entries(&env.root.join("containers")).iter().any(|d| {
        let Ok(f) = File::open(d.join("lock")) else {
            return false;
        };
        // Taken and dropped at once; only the container's own monitor contends for it here.
        let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        !free
    })
}

/// Container `name` runs, as its state says.
fn running(env: &Env, name: &str) -> bool {
    let o = mr(env, &["inspect", name]);
    o.status.success() && json(&text(&o.stdout))[0]["State"]["Running"] == true
}

/// When a test fails part-way: `rm -f` of every container of its store, then `prune`, so
/// that no container, cgroup, veth or lease outlives the store's directory. (A test that
/// passes has checked that nothing is left.)
struct Cleanup<'e>(&'e Env);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !thread::panicking() {
            return;
        }
        let env = self.0;
        let ids: Vec<String> = entries(&env.root.join("containers"))
            .iter()
            .map(|p| file_name(p))
            .collect();
        if !ids.is_empty() {
            let mut c = mrun_cmd(env);
            c.arg("rm").arg("-f").args(&ids);
            let _ = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        // The containers of killed monitors die by their parent-death signal meanwhile.
        thread::sleep(Duration::from_millis(300));
        let _ = env
            .mbuild_cmd(["prune"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// (pid, monitor pid) of a running container, from `mrun inspect`.
fn pids(env: &Env, name: &str) -> (i32, i32) {
    let v = json(&mr_ok(env, &["inspect", name]));
    let s = &v[0]["State"];
    let pid = s["Pid"].as_i64().unwrap_or(0) as i32;
    let monitor = s["MonitorPid"].as_i64().unwrap_or(0) as i32;
    assert!(pid > 0 && monitor > 0, "{v}");
    (pid, monitor)
}

/// Wait until container `name` runs (its state says so); its (pid, monitor pid).
fn wait_running(env: &Env, name: &str) -> (i32, i32) {
    let up = eventually(TIMEOUT, || {
        let up = running(env, name);
        if !up {
            thread::sleep(Duration::from_millis(20));
        }
        up
    });
    assert!(up, "{name} never ran");
    pids(env, name)
}

fn sleep_ms(ms: f64) {
    thread::sleep(Duration::from_secs_f64(ms / 1000.0));
}

/// Kill moments for `rounds` rounds, spread evenly from 0 to `factor` times `span`, in ms.
fn spread(span: Duration, rounds: u32, factor: f64) -> Vec<f64> {
    (0..rounds)
        .map(|i| span.as_secs_f64() * 1000.0 * factor * f64::from(i) / f64::from(rounds - 1))
        .collect()
}

/// The same, denser early on (quadratic): `mrun -d` forks its monitor after a short part of
/// the start-up, and the monitor's own steps before the clone are quick too.
fn early(span: Duration, rounds: u32) -> Vec<f64> {
    let total = span.as_secs_f64() * 1000.0;
    spread(span, rounds, 1.0)
        .into_iter()
        .map(|ms| ms * ms / total)
        .collect()
}

// ---------------------------------------------------------------------------------------
// What a store and its containers may leave behind

/// The entries of a directory; none when it is missing.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The ids of the containers the store knows of, finished or not: containers/<id> and
/// the half-made tmp/<session>/container-<id>.
fn ids_in(env: &Env) -> Vec<String> {
    let mut ids: Vec<String> = entries(&env.root.join("containers"))
        .iter()
        .map(|p| file_name(p))
        .collect();
    for session in entries(&env.root.join("tmp")) {
        for e in entries(&session) {
            if let Some(id) = file_name(&e).strip_prefix("container-") {
                ids.push(id.to_string());
            }
        }
    }
    ids
}

/// What is left: in the store, and of the containers whose ids (or 12-digit prefixes, as
/// their hostnames show them) are `ids` on the machine.
#[derive(Debug, Default, PartialEq)]
struct Left {
    mounts: Vec<String>,
    containers: Vec<PathBuf>,
    tmp: Vec<PathBuf>,
    names: Vec<PathBuf>,
    cgroups: Vec<PathBuf>,
    veths: Vec<String>,
    leases: Vec<String>,
}

fn left(env: &Env, ids: &[String]) -> Left {
    let short: HashSet<&str> = ids.iter().map(|i| &i[..12]).collect();
    let ours = |name: &str| name.get(..12).is_some_and(|p| short.contains(p));
    let cgroups = cgroup_parents()
        .iter()
        .flat_map(|p| entries(p))
        .filter(|p| ours(&file_name(p)))
        .collect();
    // The host end of a veth is `mb` + the first 11 digits of the id.
    let veth_of: HashSet<&str> = short.iter().map(|s| &s[..11]).collect();
    let veths = entries(Path::new("/sys/class/net"))
        .iter()
        .map(|p| file_name(p))
        .filter(|n| n.len() == 13 && n.strip_prefix("mb").is_some_and(|r| veth_of.contains(r)))
        .collect();
    // Leases are named by their address; a `.tmp-PID` file a writer killed mid-lease left is
    // not one (see `assert_no_lease_files_left`).
    let leases = entries(Path::new(LEASES))
        .into_iter()
        .filter(|p| file_name(p).parse::<std::net::Ipv4Addr>().is_ok())
        .filter(|p| fs::read_to_string(p).is_ok_and(|t| ours(t.trim())))
        .map(|p| p.display().to_string())
        .collect();
    Left {
        mounts: mounts_of(env),
        containers: entries(&env.root.join("containers")),
        tmp: entries(&env.root.join("tmp")),
        names: entries(&env.root.join("names")),
        cgroups,
        veths,
        leases,
    }
}

fn assert_nothing_left(env: &Env, ids: &[String], after: &str) {
    assert_eq!(left(env, ids), Left::default(), "left after {after}");
}

/// How long mrun takes here from its start to its container's command (the second of two
/// runs, the first warms the caches): the start-up the kills are spread over.
fn start_up_time(env: &Env) -> Duration {
    let mut took = Duration::ZERO;
    for round in 0..2 {
        let mut c = mrun_cmd(env);
        c.args([
            "--rm",
            IMG,
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo up; sleep 1000 & wait",
        ]);
        let t = Instant::now();
        let mut p = Proc::spawn(env, c, &format!("start-up-{round}"));
        assert!(
            eventually(TIMEOUT, || p.stdout() == "up\n"),
            "no start: {}",
            p.stderr()
        );
        took = t.elapsed();
        p.signal(libc::SIGTERM);
        p.wait(TIMEOUT);
    }
    took
}

/// How far a container of `env` got, as seen from outside after its monitor was killed:
/// the last of its directory (half-made in tmp/, then in containers/), its cgroup, its
/// network (lease, veth), running (its state says so), gone again.
fn stage(env: &Env) -> &'static str {
    let ids = ids_in(env);
    let l = left(env, &ids);
    let state = entries(&env.root.join("containers"))
        .first()
        .and_then(|d| fs::read_to_string(d.join("state.json")).ok())
        .map(|s| json(&s)["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default();
    if ids.is_empty() {
        "nothing"
    } else if state == "running" || state == "exited" {
        "running"
    } else if !l.veths.is_empty() || !l.leases.is_empty() {
        "network"
    } else if !l.cgroups.is_empty() {
        "cgroup"
    } else if !l.containers.is_empty() {
        "directory"
    } else {
        "staging"
    }
}

/// How far a monitor killed during its cleanup got: the container's cgroup still there,
/// then its network, then its exit recorded or its directory removed (`--rm`).
fn cleanup_stage(env: &Env) -> &'static str {
    let ids = ids_in(env);
    let l = left(env, &ids);
    let exited = l.containers.first().is_some_and(|d| {
        fs::read_to_string(d.join("state.json")).is_ok_and(|s| json(&s)["status"] == "exited")
    });
    if !l.cgroups.is_empty() {
        "cgroup"
    } else if !l.veths.is_empty() || !l.leases.is_empty() {
        "network"
    } else if l.containers.is_empty() {
        "removed"
    } else if exited {
        "recorded"
    } else {
        "unrecorded"
    }
}

/// The kills must have landed at different stages, or the test tested less than it says.
fn assert_spread(stages: &[&str]) {
    let distinct: HashSet<&&str> = stages.iter().collect();
    assert!(
        distinct.len() >= 3,
        "the kills hit too few stages: {stages:?}"
    );
}

/// After a SIGKILL: `mrun rm -f` and `mbuild prune`, in either order (`rm_first`), leave
/// nothing of container `name` (whose command carries `mark`). When its monitor is dead
/// (`monitor_dead`) the container must have died with it, before anyone cleans up.
fn clean_up_after_kill(
    env: &Env,
    name: &str,
    mark: &str,
    monitor_dead: bool,
    rm_first: bool,
    after: &str,
) -> Vec<String> {
    let ids = ids_in(env);
    let died = || eventually(Duration::from_secs(10), || marked(mark).is_empty());
    if monitor_dead {
        assert!(
            died(),
            "the container outlived its monitor after {after}: pids {:?}",
            marked(mark)
        );
    }
    let rm = || {
        let o = mr(env, &["rm", "-f", name]);
        // A container killed before its name was recorded is prune's to clear.
        assert!(
            o.status.success() || text(&o.stderr).contains("No such container"),
            "rm -f {name} after {after}: {}\n{}",
            o.status,
            text(&o.stderr)
        );
    };
    if rm_first {
        rm();
    }
    let o = env.mbuild(["prune"]);
    assert!(
        o.status.success(),
        "prune after {after}: {}",
        text(&o.stderr)
    );
    if !rm_first {
        rm();
    }
    assert!(
        died(),
        "the container outlived rm -f and prune after {after}: pids {:?}",
        marked(mark)
    );
    let mut left = left(env, &ids);
    // A name whose container directory is gone: what a kill between the name and the
    // config leaves, a known bug with a test of its own (sigkill_between_the_name_and_the_
    // config_leaves_no_name_behind) that hits that moment every time; here it is seldom hit.
    left.names.retain(|l| {
        fs::read_link(l).map_or(true, |id| env.root.join("containers").join(id).exists())
    });
    // See sigkill_of_stop_or_rm_f_part_way_leaves_nothing_after_rm_f_and_prune.
    let named: HashSet<String> = left
        .names
        .iter()
        .filter_map(|l| Some(file_name(&fs::read_link(l).ok()?)))
        .collect();
    let half_removed = left
        .containers
        .iter()
        .any(|d| d.join("config.json").exists() && !named.contains(&file_name(d)));
    assert_eq!(
        left,
        Left::default(),
        "left after {after}{}",
        if half_removed {
            " (a half-removed container directory: the old remove_dead bug)"
        } else {
            ""
        }
    );
    ids
}

/// A mrun killed while it leased an address may leave the lease's temporary file (the
/// lease itself appears whole or not at all); the next lease, taken under the network lock,
/// clears it. After one more bridge container no file under the leases names `ids`.
fn assert_no_lease_files_left(env: &Env, ids: &[String]) {
    mr_ok(env, &["--rm", IMG, "true"]);
    let short: HashSet<&str> = ids.iter().map(|i| &i[..12]).collect();
    let left: Vec<PathBuf> = entries(Path::new(LEASES))
        .into_iter()
        .filter(|p| {
            fs::read_to_string(p)
                .is_ok_and(|t| t.trim().get(..12).is_some_and(|i| short.contains(i)))
        })
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new(), "lease files left");
}

// ---------------------------------------------------------------------------------------
// 1. SIGKILL of mrun or its monitor

/// mrun in the foreground is the container's monitor: SIGKILLed anywhere from its first
/// instruction to the running container (past the directory, the cgroup, the clone, the
/// veth and lease), with and without `--rm`.
#[test]
fn sigkill_of_foreground_mrun_during_start_up_leaves_nothing_after_prune_and_rm_f() {
    let Some(env) = setup() else { return };
    let _cleanup = Cleanup(&env);
    let mut all = vec![];
    let full = start_up_time(&env);
    let mut stages = vec![];
    for (i, ms) in spread(full, 12, 1.2).into_iter().enumerate() {
        let i = i as u32;
        let name = format!("fg{i}");
        let mark = mark("fg", i);
        let mut c = mrun_cmd(&env);
        if i % 2 == 0 {
            c.arg("--rm");
        }
        c.args([
            "--name",
            &name,
            "-e",
            &mark_env(&mark),
            IMG,
            "sleep",
            "1000",
        ]);
        let mut p = Proc::spawn(&env, c, &name);
        sleep_ms(ms);
        p.kill();
        p.wait(TIMEOUT);
        stages.push(stage(&env));
        all.extend(clean_up_after_kill(
            &env,
            &name,
            &mark,
            true,
            i % 4 >= 2,
            &format!("SIGKILL of mrun {ms:.0} ms into its start-up (of {full:?})"),
        ));
    }
    eprintln!("stages reached: {stages:?}");
    assert_spread(&stages);
    assert_no_lease_files_left(&env, &all);
}

/// `mrun -d` forks the monitor and waits for it to report the container running. SIGKILL
/// of mrun at any moment leaves a container that `rm -f` removes entirely; SIGKILL of the
/// monitor at any moment of its start-up makes mrun fail with one line (or report the
/// container running, when it was quicker) and leaves nothing after prune and `rm -f`.
#[test]
fn sigkill_of_mrun_d_or_its_monitor_during_start_up_leaves_nothing_after_prune_and_rm_f() {
    let Some(env) = setup() else { return };
    let _cleanup = Cleanup(&env);
    let mut all = vec![];
    let t = Instant::now();
    mr_ok(&env, &["-d", "--name", "calibrate", IMG, "sleep", "1000"]);
    let full = t.elapsed();
    mr_ok(&env, &["rm", "-f", "calibrate"]);
    let mut stages = vec![];

    for (i, ms) in early(full, 10).into_iter().enumerate() {
        let i = i as u32;
        let name = format!("d{i}");
        let mark = mark("d", i);
        let mut c = mrun_cmd(&env);
        c.args([
            "-d",
            "--name",
            &name,
            "-e",
            &mark_env(&mark),
            IMG,
            "sleep",
            "1000",
        ]);
        let mut p = Proc::spawn(&env, c, &name);
        sleep_ms(ms);
        let forked = first_child(p.pid()).is_some();
        p.kill();
        p.wait(TIMEOUT);
        // Once forked, the monitor goes on; before, what mrun -d got to is what is left.
        stages.push(if forked { "forked" } else { stage(&env) });
        // A forked monitor goes on starting the container: let it get there (`rm -f` of a
        // container still starting is the next test's case), then rm -f ends it.
        assert!(
            eventually(TIMEOUT, || running(&env, &name) || !owned(&env)),
            "the monitor of {name} never got its container running"
        );
        all.extend(clean_up_after_kill(
            &env,
            &name,
            &mark,
            false,
            true,
            &format!("SIGKILL of mrun -d {ms:.0} ms into its start-up (of {full:?})"),
        ));
    }

    eprintln!("stages reached by SIGKILL of mrun -d: {stages:?}");
    assert_spread(&stages);
    stages.clear();
    for (i, ms) in early(full, 10).into_iter().enumerate() {
        let i = i as u32;
        let name = format!("m{i}");
        let mark = mark("m", i);
        let mut c = mrun_cmd(&env);
        c.args([
            "-d",
            "--name",
            &name,
            "-e",
            &mark_env(&mark),
            IMG,
            "sleep",
            "1000",
        ]);
        let mut p = Proc::spawn(&env, c, &name);
        let mut monitor = None;
        let forked = eventually(TIMEOUT, || {
            monitor = first_child(p.pid()).and_then(Pidfd::open);
            monitor.is_some()
        });
        assert!(forked, "mrun -d never forked: {}", p.stderr());
        sleep_ms(ms);
        monitor.unwrap().kill(libc::SIGKILL);
        let status = p.wait(TIMEOUT);
        stages.push(stage(&env));
        let err = p.stderr();
        assert!(
            status.success()
                || (status.code() == Some(125)
                    && err.lines().count() == 1
                    && err.contains("monitor process died")),
            "mrun -d after SIGKILL of its monitor {ms:.0} ms in: {status}, stderr {err:?}"
        );
        all.extend(clean_up_after_kill(
            &env,
            &name,
            &mark,
            true,
            i % 2 == 1,
            &format!("SIGKILL of the monitor {ms:.0} ms after the fork (start-up {full:?})"),
        ));
    }
    eprintln!("stages reached by SIGKILL of the monitor: {stages:?}");
    assert_spread(&stages);
    assert_no_lease_files_left(&env, &all);
}

/// `mrun rm -f` while the monitor of `mrun -d` is still starting the container (another
/// terminal, a script's cleanup trap): the container is removed, as `docker rm -f` does.
///
/// Found a bug, now fixed: `lifecycle::remove` took the container for "not running" (its
/// state said created, its monitor had not recorded the pid yet), did not kill it and waited
/// 10 s for the monitor's lock: `rm -f` failed and the container ran on. rm -f, stop and kill
/// now wait for a container being started to run first.
#[test]
fn rm_f_while_the_monitor_is_still_starting_the_container_removes_it() {
    let Some(env) = setup() else { return };
    let _cleanup = Cleanup(&env);
    for i in 0..2u32 {
        let name = format!("starting{i}");
        let mark = mark("starting", i);
        let mut c = mrun_cmd(&env);
        c.args([
            "-d",
            "--name",
            &name,
            "-e",
            &mark_env(&mark),
            IMG,
            "sleep",
            "1000",
        ]);
        let mut p = Proc::spawn(&env, c, &name);
        // The monitor is forked once the container's name and config are recorded.
        assert!(
            eventually(TIMEOUT, || first_child(p.pid()).is_some()),
            "mrun -d never forked: {}",
            p.stderr()
        );
        let ids = ids_in(&env);
        let t = Instant::now();
        let o = mr(&env, &["rm", "-f", &name]);
        let took = t.elapsed();
        p.wait(TIMEOUT);
        assert!(
            o.status.success() && eventually(Duration::from_secs(10), || marked(&mark).is_empty()),
            "regression (runner/src/lifecycle.rs remove): rm -f of a container its monitor is \
             still starting did not remove it: {} after {took:?}, stderr {:?}; its process \
             is {}",
            o.status,
            text(&o.stderr),
            if marked(&mark).is_empty() {
                "gone"
            } else {
                "still running"
            }
        );
        assert!(took < Duration::from_secs(5), "rm -f took {took:?}");
        env.ok(["prune"]);
        assert_nothing_left(&env, &ids, "rm -f of a starting container");
    }
}

/// mrun records a container (config.json) before it takes the container's name, so a kill
/// at any moment never leaves names/NAME pointing at nothing. Checked at the very moment the
/// name appears (inotify, then SIGSTOP at once): the config is already there; killed there,
/// `prune` and `rm -f` clear both. A name link left dangling by an older mrun is dropped by
/// `prune`.
#[test]
fn sigkill_right_after_the_name_is_taken_leaves_no_name_behind() {
    let Some(env) = setup() else { return };
    let _cleanup = Cleanup(&env);
    // names/ exists from the first named container on.
    mr_ok(
        &env,
        &["--rm", "--net", "none", "--name", "first", IMG, "true"],
    );
    let names = env.root.join("names");
    for round in 0..6u32 {
        let name = format!("w{round}");
        let mark = mark("window", round);
        let inotify = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        assert!(inotify >= 0);
        let inotify = unsafe { OwnedFd::from_raw_fd(inotify) };
        let dir = std::ffi::CString::new(names.to_str().unwrap()).unwrap();
        assert!(
            unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), dir.as_ptr(), libc::IN_CREATE) }
                >= 0
        );
        let mut c = mrun_cmd(&env);
        c.args([
            "--name",
            &name,
            "--net",
            "none",
            "-e",
            &mark_env(&mark),
            IMG,
            "sleep",
            "1000",
        ]);
        let mut p = Proc::spawn(&env, c, &name);
        let mut event = libc::pollfd {
            fd: inotify.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ready = unsafe { libc::poll(&mut event, 1, TIMEOUT.as_millis() as i32) } == 1;
        p.signal(libc::SIGSTOP);
        assert!(ready, "no inotify event for names/{name}: {}", p.stderr());
        let id = fs::read_link(names.join(&name)).unwrap();
        assert!(
            env.root
                .join("containers")
                .join(&id)
                .join("config.json")
                .exists(),
            "round {round}: the name was taken before the container was recorded"
        );
        p.kill();
        p.wait(TIMEOUT);
        clean_up_after_kill(
            &env,
            &name,
            &mark,
            true,
            round % 2 == 0,
            &format!("round {round}"),
        );
        assert!(
            !names.join(&name).exists() && names.join(&name).symlink_metadata().is_err(),
            "round {round}: names/{name} left behind"
        );
    }
    // A dangling name (from a kill in an older version's window) goes with the next prune.
    std::os::unix::fs::symlink("0".repeat(64), names.join("dangling")).unwrap();
    env.ok(["prune"]);
    assert!(names.join("dangling").symlink_metadata().is_err());
}

/// The cleanup: once the container's process has ended, its monitor (mrun in the
/// foreground, or the detached monitor) reaps it, removes its cgroup, veth and lease, and
/// removes its directory (`--rm`) or records its exit. SIGKILL at moments spread over that
/// work, measured from the container's end (watched through a pidfd).
#[test]
fn sigkill_of_mrun_or_its_monitor_during_its_cleanup_leaves_nothing_after_prune_and_rm_f() {
    let Some(env) = setup() else { return };
    let _cleanup = Cleanup(&env);
    let mut all = vec![];

    // How long a monitor takes from its container's end to its own.
    let cleanup_time = |detached: bool, rm: bool| -> Duration {
        let mark = mark("cal", u32::from(detached));
        let mut c = mrun_cmd(&env);
        if detached {
            c.arg("-d");
        }
        if rm {
            c.arg("--rm");
        }
        c.args([
            "--name",
            "cal",
            "-e",
            &mark_env(&mark),
            IMG,
            "sleep",
            "1000",
        ]);
        let mut p = Proc::spawn(&env, c, "cal");
        let (pid, monitor) = wait_running(&env, "cal");
        let (ctr, mon) = (Pidfd::open(pid).unwrap(), Pidfd::open(monitor).unwrap());
        ctr.kill(libc::SIGKILL);
        assert!(ctr.wait(TIMEOUT));
        let t = Instant::now();
        assert!(mon.wait(TIMEOUT));
        let took = t.elapsed();
        p.wait(TIMEOUT);
        mr(&env, &["rm", "-f", "cal"]);
        assert_nothing_left(&env, &ids_in(&env), "a calibration run");
        took
    };

    for detached in [false, true] {
        let span = cleanup_time(detached, !detached);
        let mut stages = vec![];
        for (i, ms) in spread(span, 6, 1.2).into_iter().enumerate() {
            let i = i as u32;
            let name = format!("c{}{i}", if detached { "d" } else { "f" });
            let mark = mark(&name, i);
            let mut c = mrun_cmd(&env);
            if detached {
                c.arg("-d");
            }
            // Foreground with and without --rm; detached without (the record is kept).
            if !detached && i % 2 == 0 {
                c.arg("--rm");
            }
            c.args([
                "--name",
                &name,
                "-e",
                &mark_env(&mark),
                IMG,
                "sleep",
                "1000",
            ]);
            let mut p = Proc::spawn(&env, c, &name);
            let (pid, monitor) = wait_running(&env, &name);
            let (ctr, mon) = (Pidfd::open(pid).unwrap(), Pidfd::open(monitor).unwrap());
            ctr.kill(libc::SIGKILL);
            assert!(ctr.wait(TIMEOUT));
            sleep_ms(ms);
            mon.kill(libc::SIGKILL);
            assert!(mon.wait(TIMEOUT));
            p.wait(TIMEOUT);
            stages.push(cleanup_stage(&env));
            let who = if detached { "the monitor" } else { "mrun" };
            all.extend(clean_up_after_kill(
                &env,
                &name,
                &mark,
                true,
                i % 2 == 1,
                &format!("SIGKILL of {who} {ms:.0} ms into its cleanup (of {span:?})"),
            ));
        }
        let who = if detached { "the monitor" } else { "mrun" };
        eprintln!("stages reached by SIGKILL of {who} during its cleanup: {stages:?}");
        let distinct: HashSet<&&str> = stages.iter().collect();
        assert!(
            distinct.len() >= 2,
            "the kills hit too few stages: {stages:?}"
        );
    }
    assert_no_lease_files_left(&env, &all);
}

/// `mrun rm -f` and `mrun stop` SIGKILLed part-way: `rm -f` again and `prune` leave nothing.
/// First `rm -f` is SIGKILLed while it removes the directory (made slow to remove by 20000
/// files in the container's upper dir), then at moments spread over `stop` and `rm -f`.
///
/// Found a bug, now fixed: `lifecycle::remove_dead` released the name, then removed the
/// directory entry by entry; killed in between, it left `containers/<id>/` with its config
/// but no name, kept for ever. The directory is now renamed into the session's tmp dir
/// first (cleared when the process is found dead), then removed.
#[test]
fn sigkill_of_stop_or_rm_f_part_way_leaves_nothing_after_rm_f_and_prune() {
    let Some(env) = setup() else { return };
    let _cleanup = Cleanup(&env);
    let mut all = vec![];
    const FILES: usize = 20_000;
    let slow = mark("slow", 0);
    mr_ok(
        &env,
        &[
            "-d",
            "--name",
            "slow",
            "-e",
            &mark_env(&slow),
            "--net",
            "none",
            IMG,
            "sh",
            "-c",
            &format!(
                "mkdir /many && cd /many && touch $(seq {FILES}) && echo ready && exec sleep 1000"
            ),
        ],
    );
    assert!(
        eventually(TIMEOUT, || text(&mr(&env, &["logs", "slow"]).stdout)
            == "ready\n"),
        "the container never got ready"
    );
    let ids = ids_in(&env);
    let many = env.root.join("containers").join(&ids[0]).join("upper/many");
    assert_eq!(fs::read_dir(&many).unwrap().count(), FILES);
    let mut c = mrun_cmd(&env);
    c.args(["rm", "-f", "slow"]);
    let mut p = Proc::spawn(&env, c, "slow-rm");
    let removing = eventually(TIMEOUT, || {
        fs::read_dir(&many).map_or(true, |d| d.count() < FILES)
    });
    p.kill();
    let status = p.wait(TIMEOUT);
    assert!(
        removing && status.signal() == Some(libc::SIGKILL),
        "rm -f was not caught removing the directory: {status}"
    );
    assert!(
        eventually(Duration::from_secs(10), || marked(&slow).is_empty()),
        "the container outlived rm -f"
    );
    let o = mr(&env, &["rm", "-f", "slow"]);
    let rm = format!("{}: {}", o.status, text(&o.stderr).trim());
    env.ok(["prune"]);
    let left = left(&env, &ids);
    assert_eq!(
        left,
        Left::default(),
        "regression (runner/src/lifecycle.rs remove_dead): rm -f SIGKILLed while it removed the \
         container's directory left it half-removed, config.json and no name; `rm -f slow` \
         then said {rm:?} and prune kept it; left: {:?}",
        left.containers
            .first()
            .map(|d| entries(d).iter().map(|e| file_name(e)).collect::<Vec<_>>())
    );

    for cmd in ["stop", "rm"] {
        let args: &[&str] = if cmd == "rm" {
            &["rm", "-f"]
        } else {
            &["stop", "-t", "0"]
        };
        let time = |name: &str| {
            let mut a = args.to_vec();
            a.push(name);
            let t = Instant::now();
            mr_ok(&env, &a);
            t.elapsed()
        };
        mr_ok(&env, &["-d", "--name", "cal", IMG, "sleep", "1000"]);
        let span = time("cal");
        if cmd == "stop" {
            mr_ok(&env, &["rm", "cal"]);
        }
        for (i, ms) in spread(span, 5, 1.2).into_iter().enumerate() {
            let i = i as u32;
            let name = format!("{cmd}{i}");
            let mark = mark(&name, i);
            mr_ok(
                &env,
                &[
                    "-d",
                    "--name",
                    &name,
                    "-e",
                    &mark_env(&mark),
                    IMG,
                    "sleep",
                    "1000",
                ],
            );
            let mut c = mrun_cmd(&env);
            c.args(args).arg(&name);
            let mut p = Proc::spawn(&env, c, &format!("{name}-{cmd}"));
            sleep_ms(ms);
            p.kill();
            p.wait(TIMEOUT);
            // The container may be running still (killed before it signalled): rm -f.
            all.extend(clean_up_after_kill(
                &env,
                &name,
                &mark,
                false,
                true,
                &format!("SIGKILL of mrun {cmd} {ms:.0} ms in (of {span:?})"),
            ));
        }
    }
    assert_no_lease_files_left(&env, &all);
}

// ---------------------------------------------------------------------------------------
// 2. Ctrl-C during a RUN step

/// Wait until `p`'s stdout holds `what`; its stdout.
fn wait_for_output(p: &mut Proc, what: &str) -> String {
    let mut out = String::new();
    let seen = eventually(TIMEOUT, || {
        out = p.stdout();
        out.contains(what) || p.child.try_wait().unwrap().is_some()
    });
    assert!(
        seen && out.contains(what),
        "{what:?} never came: {out}\n{}",
        p.stderr()
    );
    out
}

#[test]
fn sigint_during_a_run_step_kills_its_container_commits_nothing_and_exits_130() {
    let Some(env) = setup() else { return };
    let _cleanup = Cleanup(&env);
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    // The shell stays PID 1 of its container with `sleep` as its child: a PID 1 without a
    // handler for SIGINT never gets it (pid_namespaces(7)), so passing the signal on is not
    // enough to end the step.
    fs::write(
        ctx.join("Minifile"),
        format!(
            "FROM {IMG}\nRUN echo first > /first\nRUN hostname; echo started; sleep 1000; echo slept\nRUN echo never\n"
        ),
    )
    .unwrap();
    let mut p = Proc::spawn(
        &env,
        env.mbuild_cmd(["-t", "cancelled:1", ctx.to_str().unwrap()]),
        "build",
    );
    let out = wait_for_output(&mut p, "started\n");
    let hostname = out
        .lines()
        .skip_while(|l| !l.starts_with("[3/4] RUN "))
        .nth(1)
        .unwrap_or_else(|| panic!("no hostname in {out}"))
        .to_string();
    assert_eq!(hostname.len(), 12, "{out}");
    let ids = ids_in(&env);
    assert_eq!(ids.len(), 1, "the step's container: {ids:?}");
    assert!(ids[0].starts_with(&hostname));

    let sent = Instant::now();
    p.signal(libc::SIGINT);
    let status = p.wait(Duration::from_secs(30));
    let took = sent.elapsed();
    let (out, err) = (p.stdout(), p.stderr());
    assert_eq!(status.code(), Some(130), "{status}\n{out}\n{err}");
    assert!(took < Duration::from_secs(10), "SIGINT took {took:?}");
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        ["mbuild: step 3/4 RUN /bin/sh -c hostname; echo started; sleep 1000; echo slept: interrupted by SIGINT"],
        "stderr"
    );
    assert!(
        !out.lines().any(|l| l == "slept")
            && !out.contains("[4/4]")
            && !out.contains("Successfully"),
        "{out}"
    );
    // Nothing left: no container, no cgroup, no session in tmp/ (looked at before any other
    // command could clear it: mbuild cleared all that itself). Nothing committed.
    assert_nothing_left(&env, &ids, "SIGINT during a RUN step");
    assert!(!env.mbuild(["inspect", "cancelled:1"]).status.success());

    // The next build works, from the cached step before the interrupted one.
    fs::write(
        ctx.join("Minifile"),
        format!("FROM {IMG}\nRUN echo first > /first\nRUN hostname; echo started; echo slept\n"),
    )
    .unwrap();
    let out = env.ok(["-t", "cancelled:1", ctx.to_str().unwrap()]);
    assert!(
        out.contains("[2/3] CACHED RUN /bin/sh -c echo first > /first"),
        "{out}"
    );
    assert!(out.contains("\nslept\n"), "{out}");
    let ids = ids_in(&env);
    assert_nothing_left(&env, &ids, "the build after the interrupted one");
}

/// After a RUN step mbuild gives the signals it blocked for the step back: Ctrl-C during a
/// later COPY ends the build there, instead of waiting, unseen, until the image is tagged.
#[test]
fn sigint_after_a_run_step_still_ends_the_build() {
    let Some(env) = setup() else { return };
    let _cleanup = Cleanup(&env);
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    // Enough incompressible data that its COPY (copy, tar, gzip, hash) takes a while.
    fs::write(ctx.join("big"), noise(64 << 20, 7)).unwrap();
    fs::write(
        ctx.join("Minifile"),
        format!("FROM {IMG}\nRUN echo run > /run-step\nCOPY big /big\n"),
    )
    .unwrap();
    let mut p = Proc::spawn(
        &env,
        env.mbuild_cmd(["-t", "late:1", ctx.to_str().unwrap()]),
        "build",
    );
    wait_for_output(&mut p, "[3/3] COPY big /big\n");
    p.signal(libc::SIGINT);
    let status = p.wait(Duration::from_secs(30));
    let out = p.stdout();
    // Outside a RUN step mbuild dies of the signal, as any program that does not catch it.
    assert!(
        status.signal() == Some(libc::SIGINT) || status.code() == Some(130),
        "{status}\n{out}\n{}",
        p.stderr()
    );
    assert!(!out.contains("Successfully"), "{out}");
    assert!(!env.mbuild(["inspect", "late:1"]).status.success());
    // What the killed process left in tmp/ goes with the next command.
    env.ok(["images"]);
    assert_nothing_left(&env, &[], "SIGINT during a COPY after a RUN");
}

// ---------------------------------------------------------------------------------------
// 3. Builds racing prune

/// `bytes` bytes gzip cannot shrink (xorshift), different for each `seed`.
fn noise(bytes: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(bytes + 8);
    while v.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(bytes);
    v
}

/// How long the builds and the prune loop race.
const RACE: Duration = Duration::from_secs(60);

/// Four builds from one base, each `--no-cache` in a loop, with `mbuild prune` in a loop
/// beside them for a minute: no build fails because prune took something it used, every
/// image as last tagged runs, and fsck is clean.
///
/// Found a bug, now fixed: `prune` itself failed now and then ("create
/// .../containers/<id>/lock: no such file or directory") when a container directory it had
/// listed went away before it looked (a RUN step or `--rm` container ending). Prune
/// failures are collected and reported at the end, after everything else was checked.
#[test]
fn four_builds_on_one_base_with_prune_in_a_loop_all_succeed_and_fsck_is_clean() {
    let Some(env) = setup() else { return };
    let _cleanup = Cleanup(&env);
    let stop = AtomicBool::new(false);
    let failed_build = std::sync::Mutex::new(None::<String>);
    let failed_prunes = std::sync::Mutex::new(Vec::<String>::new());
    let started = Instant::now();
    let (builds, prunes) = thread::scope(|s| {
        let builders: Vec<_> = (0..4)
            .map(|k| {
                let (env, stop, failed_build) = (&env, &stop, &failed_build);
                s.spawn(move || {
                    let ctx = env.path(&format!("ctx{k}"));
                    fs::create_dir_all(&ctx).unwrap();
                    fs::write(
                        ctx.join("Minifile"),
                        format!(
                            "FROM {IMG}\nRUN echo build {k} > /built; cat /etc/passwd > /dev/null\nCOPY data /data\nRUN cat /data /built > /both\n"
                        ),
                    )
                    .unwrap();
                    let mut n = 0u32;
                    while started.elapsed() < RACE && !stop.load(Ordering::SeqCst) {
                        // New content each round: new blobs and layers as well as shared ones.
                        fs::write(ctx.join("data"), format!("data {k} {n}\n")).unwrap();
                        let c = env.mbuild_cmd([
                            "--no-cache",
                            "-t",
                            &format!("b{k}:1"),
                            ctx.to_str().unwrap(),
                        ]);
                        let o = Running::spawn(c).output(TIMEOUT);
                        if !o.status.success() {
                            *failed_build.lock().unwrap() = Some(format!(
                                "build {k} round {n}: {}\n{}\n{}",
                                o.status,
                                text(&o.stdout),
                                text(&o.stderr)
                            ));
                            stop.store(true, Ordering::SeqCst);
                            break;
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let pruner = s.spawn(|| {
            let mut n = 0u32;
            while started.elapsed() < RACE && !stop.load(Ordering::SeqCst) {
                let o = Running::spawn(env.mbuild_cmd(["prune"])).output(TIMEOUT);
                if !o.status.success() {
                    failed_prunes.lock().unwrap().push(format!(
                        "prune {n}: {}: {}",
                        o.status,
                        text(&o.stderr).trim()
                    ));
                }
                n += 1;
                thread::sleep(Duration::from_millis(20));
            }
            n
        });
        let builds: Vec<u32> = builders.into_iter().map(|b| b.join().unwrap()).collect();
        (builds, pruner.join().unwrap())
    });
    if let Some(f) = failed_build.into_inner().unwrap() {
        panic!("a build failed beside prune: {f}");
    }
    let failed_prunes = failed_prunes.into_inner().unwrap();
    eprintln!(
        "builds per builder {builds:?}, prunes {prunes} ({} failed)",
        failed_prunes.len()
    );
    assert!(
        builds.iter().all(|&n| n >= 2) && prunes >= 10,
        "too little raced: builds {builds:?}, prunes {prunes}"
    );

    let fsck = env.mbuild(["fsck"]);
    assert!(
        fsck.status.success() && text(&fsck.stdout).contains(": ok") && fsck.stderr.is_empty(),
        "fsck: {}\n{}",
        text(&fsck.stdout),
        text(&fsck.stderr)
    );
    // Each image as last tagged is whole: its layers are there and it runs.
    for (k, n) in builds.iter().enumerate() {
        let out = mr_ok(
            &env,
            &["--rm", "--net", "none", &format!("b{k}:1"), "cat", "/both"],
        );
        assert_eq!(out, format!("data {k} {}\nbuild {k}\n", n - 1));
    }
    // After one more prune only what the tags use is left, and it still checks out.
    env.ok(["prune"]);
    assert!(env.ok(["fsck"]).contains(": ok"));
    assert_nothing_left(&env, &[], "the race");
    assert!(
        failed_prunes.is_empty(),
        "regression (runner/src/lifecycle.rs sweep, state.rs try_own): {} of {prunes} prunes \
         failed beside the builds:\n{}",
        failed_prunes.len(),
        failed_prunes.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 4. A full disk

/// A tmpfs mounted at `.0`, unmounted when the test ends, however it ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }

    /// Bytes in use.
    fn used(&self) -> u64 {
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        let p = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::statvfs(p.as_ptr(), &mut s) }, 0);
        (s.f_blocks - s.f_bfree) * s.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_build_that_fills_the_disk_fails_with_one_line_and_leaves_a_valid_store() {
    if skip_unless(is_root(), "mounting a small tmpfs needs root")
        || skip_unless(
            Path::new("/bin/busybox").exists(),
            "/bin/busybox missing (scripts/install-deps installs busybox-static)",
        )
    {
        return;
    }
    let mut env = Env::new();
    // Dropped before `env`: unmounted before the directory is removed.
    let disk = Tmpfs::mount(&env.path("disk"), "64m");
    env.root = disk.0.join("store");
    let _cleanup = Cleanup(&env);
    let tree = env.path("image");
    image_tree(&tree);
    env.ok(["import", tree.to_str().unwrap(), "-t", IMG]);
    // Its layer extracted, as any build from it leaves it.
    mr_ok(&env, &["--rm", "--net", "none", IMG, "true"]);
    let before = disk.used();

    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("big"), noise(100 << 20, 3)).unwrap();
    let build = |minifile: &str| {
        fs::write(ctx.join("Minifile"), minifile).unwrap();
        env.mbuild(["-t", "full:1", ctx.to_str().unwrap()])
    };
    let check = |after: &str| {
        let fsck = env.mbuild(["fsck"]);
        assert!(
            fsck.status.success() && text(&fsck.stdout).contains(": ok"),
            "fsck after {after}: {}\n{}",
            text(&fsck.stdout),
            text(&fsck.stderr)
        );
        let images = env.ok(["images"]);
        assert!(images.contains("probe"), "{images}");
        assert!(!images.contains("full"), "{images}");
        assert_nothing_left(&env, &[], after);
        // The space is free again (a little may go to cache and index files).
        let used = disk.used();
        assert!(
            used <= before + (1 << 20),
            "{} KiB more in use after {after}",
            (used - before) >> 10
        );
    };

    // COPY of 100 MB: the staging copy fills the disk.
    let o = build(&format!("FROM {IMG}\nCOPY big /big\n"));
    let line = assert_one_line_error(&o, "no space left on device");
    assert!(line.contains("Minifile:2: COPY big /big: "), "{line}");
    check("a COPY of 100 MB");

    // A RUN that writes 40 MB (it fits) whose layer cannot be packed beside it.
    let o = build(&format!(
        "FROM {IMG}\nRUN head -c 40000000 /dev/urandom > /big\n"
    ));
    let line = assert_one_line_error(&o, "no space left on device");
    assert!(
        line.starts_with("mbuild: step 2/2 RUN /bin/sh -c head -c 40000000 /dev/urandom > /big: "),
        "{line}"
    );
    check("a RUN whose layer does not fit");

    // A RUN that writes 100 MB: the command itself fails and says why; mbuild names the
    // step on one line of its own.
    let o = build(&format!(
        "FROM {IMG}\nRUN dd if=/dev/zero of=/big bs=1M count=100\n"
    ));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with("mbuild: step 2/2 RUN ") && l.ends_with(": exit code 1")),
        "{err}"
    );
    check("a RUN that fills the disk");

    // And the store goes on working.
    let o = build(&format!("FROM {IMG}\nRUN echo fits > /small\n"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = mr_ok(&env, &["--rm", "--net", "none", "full:1", "cat", "/small"]);
    assert_eq!(out, "fits\n");
}

// ---------------------------------------------------------------------------------------
// 5. Many containers

/// Each container prints its hostname, the first 12 digits of its id: that is how its
/// cgroup, veth and lease are found afterwards, whatever other tests run meanwhile.
fn short_id(o: &Output) -> String {
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    let h = text(&o.stdout).trim().to_string();
    assert!(
        h.len() == 12 && h.bytes().all(|c| c.is_ascii_hexdigit()),
        "hostname {h:?}"
    );
    h
}

#[test]
fn five_hundred_sequential_containers_all_succeed_and_leave_nothing() {
    let Some(env) = setup() else { return };
    let _cleanup = Cleanup(&env);
    assert_nothing_left(&env, &[], "setup");
    let t = Instant::now();
    let ids: Vec<String> = (0..500)
        .map(|_| short_id(&mr(&env, &["--rm", "--net", "none", IMG, "hostname"])))
        .collect();
    eprintln!("500 containers in {:?}", t.elapsed());
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 500);
    assert_nothing_left(&env, &ids, "500 sequential containers");
}

#[test]
fn fifty_concurrent_bridge_containers_all_succeed_and_leave_nothing() {
    let Some(env) = setup() else { return };
    let _cleanup = Cleanup(&env);
    assert_nothing_left(&env, &[], "setup");
    let runs: Vec<Running> = (0..50)
        .map(|_| {
            let mut c = mrun_cmd(&env);
            c.args(["--rm", IMG, "hostname"]);
            Running::spawn(c)
        })
        .collect();
    let ids: Vec<String> = runs
        .into_iter()
        .map(|r| short_id(&r.output(TIMEOUT)))
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 50);
    assert_nothing_left(&env, &ids, "50 concurrent containers");
}
