//! Containers that outlive the command that started them: `mrun -d` and its monitor,
//! ps/logs/stop/kill/rm/wait/inspect/exec, `--init`, terminals, bridge networking and
//! published ports, and what a SIGKILLed monitor leaves. Each test names its containers,
//! removes them with `rm -f` when it ends (also when it fails), and checks that nothing of
//! them is left: no mount, cgroup, veth, lease or directory.

use crate::common::*;
use crate::run::{cgroups_of, mounts_of, mrun_cmd, setup, Running, IMG, TIMEOUT};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `mrun --root STORE args...` (no `--rm`: the lifecycle is the point here).
pub(crate) fn mr(env: &Env, args: &[&str]) -> Output {
    let mut c = mrun_cmd(env);
    c.args(args);
    Running::spawn(c).output(TIMEOUT)
}

pub(crate) fn mr_ok(env: &Env, args: &[&str]) -> String {
    let o = mr(env, args);
    assert!(
        o.status.success(),
        "mrun {args:?}: {}\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Removes the named containers (`rm -f`) when dropped, whatever happened.
struct Containers<'e> {
    env: &'e Env,
    names: Vec<String>,
}

impl<'e> Containers<'e> {
    fn new(env: &'e Env) -> Self {
        Containers { env, names: vec![] }
    }

    /// `mrun -d --name NAME args...`; returns the id it printed.
    fn detach(&mut self, name: &str, args: &[&str]) -> String {
        self.names.push(name.to_string());
        let mut all = vec!["-d", "--name", name];
        all.extend_from_slice(args);
        let out = mr_ok(self.env, &all);
        let id = out.trim().to_string();
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "mrun -d printed {out:?}"
        );
        id
    }
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        if !self.names.is_empty() {
            let mut c = mrun_cmd(self.env);
            c.arg("rm").arg("-f").args(&self.names);
            c.stdout(Stdio::null()).stderr(Stdio::null());
            let _ = c.status();
        }
    }
}

fn inspect(env: &Env, name: &str) -> serde_json::Value {
    let v = json(&mr_ok(env, &["inspect", name]));
    v[0].clone()
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
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GET / from `addr`, with retries while the server comes up; the body.
fn http_get(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r)
        })();
        match attempt {
            Ok(r) if r.contains("200") => {
                return r.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
            }
            _ if Instant::now() > deadline => {
                let net = Command::new("sh")
                    .arg("-c")
                    .arg("ip -br link; ip -br addr; ip neigh; ip route")
                    .output()
                    .unwrap();
                panic!(
                    "no HTTP answer from {addr}: {attempt:?}\n{}",
                    text(&net.stdout)
                )
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The host end of a container's veth, as minibox names it.
fn veth(id: &str) -> String {
    format!("mb{}", &id[..11])
}

/// Lease files naming `id`, wherever the machine keeps them.
fn leases_of(id: &str) -> Vec<String> {
    let mut out = vec![];
    for dir in ["/run/minibox/network/leases"] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if std::fs::read_to_string(e.path()).is_ok_and(|t| t.trim() == id) {
                    out.push(e.path().display().to_string());
                }
            }
        }
    }
    out
}

/// Nothing of container `id` anywhere: directory, cgroup, veth, lease, mounts.
fn assert_gone(env: &Env, id: &str) {
    assert!(
        !env.root.join("containers").join(id).exists(),
        "container directory of {id} left"
    );
    assert_eq!(
        cgroups_of(&id[..12]),
        Vec::<std::path::PathBuf>::new(),
        "cgroups left"
    );
    assert!(
        !Path::new("/sys/class/net").join(veth(id)).exists(),
        "veth {} left",
        veth(id)
    );
    assert_eq!(leases_of(id), Vec::<String>::new(), "leases left");
    assert_eq!(mounts_of(env), Vec::<String>::new(), "mounts left");
}

const HTTPD: &str =
    "mkdir -p /www && echo hello from httpd > /www/index.html && exec httpd -f -v -p 80 -h /www";

#[test]
fn detached_httpd_answers_on_a_published_port_logs_stops_and_is_removed() {
    let Some(env) = setup() else { return };
    let mut cs = Containers::new(&env);
    let id = cs.detach("web", &["-p", "127.0.0.1:18080:80", IMG, "sh", "-c", HTTPD]);
    assert_eq!(http_get("127.0.0.1:18080"), "hello from httpd\n");

    // ps shows it running, by name and short id.
    let ps = mr_ok(&env, &["ps"]);
    let row = ps
        .lines()
        .find(|l| l.contains("web"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(row.contains(" Up "), "{row}");
    assert!(row.contains("127.0.0.1:18080:80"), "{row}");
    let v = inspect(&env, "web");
    assert_eq!(v["State"]["Running"], true);
    assert_eq!(v["Name"], "/web");

    // httpd -v logs each request on stderr: the log has it, from the stderr stream.
    assert!(
        eventually(Duration::from_secs(10), || {
            let o = mr(&env, &["logs", "web"]);
            text(&o.stderr).contains("response:200")
        }),
        "no request in the log"
    );
    let log = std::fs::read_to_string(env.root.join("containers").join(&id).join("log")).unwrap();
    let first = json(log.lines().next().unwrap());
    assert_eq!(first["stream"], "stderr");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));

    // A name is unique.
    let o = mr(&env, &["-d", "--name", "web", IMG, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert_one_line_error(&o, "is already in use by container");

    // httpd as PID 1 has no SIGTERM handler: stop waits its 2 s, then SIGKILL.
    let t = Instant::now();
    assert_eq!(mr_ok(&env, &["stop", "-t", "2", "web"]).trim(), "web");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    let ps = mr_ok(&env, &["ps", "-a"]);
    let row = ps
        .lines()
        .find(|l| l.contains("web"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(row.contains("Exited (137)"), "{row}");
    assert!(row.contains("ago"), "{row}");
    assert!(!mr_ok(&env, &["ps"]).contains("web"));
    let v = inspect(&env, "web");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 137);
    assert!(v["State"]["FinishedAt"].as_str().unwrap().starts_with("20"));
    // The port is free again.
    assert!(TcpListener::bind("127.0.0.1:18080").is_ok());

    assert_eq!(mr_ok(&env, &["rm", "web"]).trim(), "web");
    assert_gone(&env, &id);
    let o = mr(&env, &["logs", "web"]);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(&o, "No such container: web");
}

#[test]
fn foreground_containers_are_kept_without_rm_and_removed_with_it() {
    let Some(env) = setup() else { return };
    let mut cs = Containers::new(&env);
    cs.names.push("kept".into());
    let o = mr(
        &env,
        &[
            "--name",
            "kept",
            "--net",
            "none",
            IMG,
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(text(&o.stdout), "out\n");
    assert_eq!(text(&o.stderr), "err\n");
    let ps = mr_ok(&env, &["ps", "-a"]);
    assert!(
        ps.lines()
            .any(|l| l.contains("kept") && l.contains("Exited (3)")),
        "{ps}"
    );
    let o = mr(&env, &["logs", "kept"]);
    assert_eq!(
        (text(&o.stdout).as_str(), text(&o.stderr).as_str()),
        ("out\n", "err\n")
    );
    assert_eq!(mr_ok(&env, &["wait", "kept"]).trim(), "3");
    let o = mr(&env, &["rm", "nosuch", "kept"]);
    assert_eq!(o.status.code(), Some(1), "one of two failed");
    assert_eq!(text(&o.stdout).trim(), "kept");

    let o = mr(
        &env,
        &["--rm", "--name", "gone", "--net", "none", IMG, "true"],
    );
    assert!(o.status.success());
    assert!(!mr_ok(&env, &["ps", "-a"]).contains("gone"));
    assert_eq!(
        std::fs::read_dir(env.root.join("containers"))
            .unwrap()
            .count(),
        0
    );

    // An image called like a subcommand runs with `run`.
    env.ok(["tag", IMG, "ps:latest"]);
    assert_eq!(
        mr_ok(
            &env,
            &["run", "--rm", "--net", "none", "ps", "echo", "image ps"]
        ),
        "image ps\n"
    );
}

#[test]
fn logs_follow_until_the_container_stops_and_tail_counts_lines() {
    let Some(env) = setup() else { return };
    let mut cs = Containers::new(&env);
    cs.detach(
        "talker",
        &[
            "--net",
            "none",
            IMG,
            "sh",
            "-c",
            "for i in 1 2 3 4; do echo line$i; sleep 0.4; done; echo bye >&2",
        ],
    );
    // Started while the container still talks: -f prints each line as it comes and
    // returns once the container stopped.
    let t = Instant::now();
    let o = mr(&env, &["logs", "-f", "talker"]);
    assert!(o.status.success());
    assert_eq!(text(&o.stdout), "line1\nline2\nline3\nline4\n");
    assert_eq!(text(&o.stderr), "bye\n");
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "returned before the end"
    );
    assert_eq!(mr_ok(&env, &["logs", "--tail", "2", "talker"]), "line4\n");
    let o = mr(&env, &["logs", "-t", "talker"]);
    let first = text(&o.stdout).lines().next().unwrap().to_string();
    assert!(
        first.starts_with("20") && first.ends_with("Z line1"),
        "{first}"
    );
}

#[test]
fn stdin_is_streamed_with_i_and_closed_without() {
    let Some(env) = setup() else { return };
    let run = |flags: &[&str]| {
        let mut c = mrun_cmd(&env);
        c.args(flags)
            .args(["--rm", "--net", "none", IMG, "sh", "-c", "cat; echo end"]);
        c.stdin(Stdio::piped());
        let mut r = Running::spawn(c);
        let mut stdin = r.child.stdin.take().unwrap();
        stdin.write_all(b"line one\nline two\n").unwrap();
        drop(stdin);
        r.output(TIMEOUT)
    };
    let o = run(&["-i"]);
    assert_eq!(text(&o.stdout), "line one\nline two\nend\n");
    // Without -i the container's stdin is /dev/null, as with docker run.
    let o = run(&[]);
    assert_eq!(text(&o.stdout), "end\n");
}

#[test]
fn exec_sees_the_containers_hostname_pids_filesystem_and_limits() {
    let Some(env) = setup() else { return };
    let mut cs = Containers::new(&env);
    let id = cs.detach(
        "box",
        &[
            "-h",
            "boxhost",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            IMG,
            "sh",
            "-c",
            "echo ready > /tmp/mark; exec sleep 1000",
        ],
    );
    let ex = |args: &[&str]| -> String {
        let mut a = vec!["exec", "box"];
        a.extend_from_slice(args);
        mr_ok(&env, &a)
    };
    assert_eq!(ex(&["hostname"]), "boxhost\n");
    // Its PID namespace: PID 1 is the container's sleep.
    assert_eq!(ex(&["cat", "/proc/1/comm"]), "sleep\n");
    // Its filesystem, both ways.
    assert_eq!(ex(&["cat", "/tmp/mark"]), "ready\n");
    ex(&["sh", "-c", "echo from-exec > /tmp/second"]);
    assert_eq!(ex(&["cat", "/tmp/second"]), "from-exec\n");
    // Its cgroup and limits.
    let mem = ex(&["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"]);
    assert_eq!(mem.trim(), (64 << 20).to_string());
    let pids = ex(&[
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(pids.trim(), "50");
    let pid = inspect(&env, "box")["State"]["Pid"].as_i64().unwrap();
    let me = ex(&["sh", "-c", "cat /proc/self/cgroup"]);
    let host = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(host.contains(&id), "{host}");
    // cgroupns: the exec'd process sees the container's cgroup as its root, like PID 1.
    assert!(me.lines().all(|l| l.ends_with(":/")), "{me}");
    // The container's capabilities and ids, or -u's.
    assert_eq!(ex(&["id", "-u"]), "0\n");
    assert_eq!(
        mr_ok(&env, &["exec", "-u", "app", "box", "id", "-u"]),
        "1000\n"
    );
    // Its seccomp filter too.
    assert!(ex(&["grep", "Seccomp:", "/proc/self/status"]).contains('2'));
    let caps = ex(&["/probe", "caps"]);
    assert!(caps.contains("CapEff: 00000000a80425fb"), "{caps}");
    // -e and -w.
    assert_eq!(
        mr_ok(
            &env,
            &[
                "exec",
                "-e",
                "X=1",
                "-w",
                "/tmp",
                "box",
                "sh",
                "-c",
                "echo $X $(pwd)"
            ]
        ),
        "1 /tmp\n"
    );
    // Exit codes come back; a missing command is 127.
    let o = mr(&env, &["exec", "box", "sh", "-c", "exit 9"]);
    assert_eq!(o.status.code(), Some(9));
    let o = mr(&env, &["exec", "box", "nosuch"]);
    assert_eq!(o.status.code(), Some(127));
    assert_one_line_error(&o, "nosuch");

    mr_ok(&env, &["rm", "-f", "box"]);
    assert_gone(&env, &id);
    let o = mr(&env, &["exec", "box", "true"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn init_reaps_orphans_and_passes_sigterm_on() {
    let Some(env) = setup() else { return };
    // 100 orphans, reparented to PID 1 as they die: --init reaps every one.
    let script = "for i in $(seq 100); do sh -c 'sleep 0.2 &'; done; sleep 2; \
                  z=0; for s in /proc/[0-9]*/stat; do read -r l < $s; case \"$l\" in *') Z '*) z=$((z+1));; esac; done; \
                  echo zombies=$z; head -c 20 /proc/1/cmdline | tr '\\0' ' '; echo";
    let out = crate::run::mrun_ok(&env, &["--init", "--net", "none", IMG, "sh", "-c", script]);
    assert!(out.contains("zombies=0"), "{out}");
    // Without --init, PID 1 is the shell: the orphans' zombies are reaped only by it.
    // (Not asserted: busybox sh happens to reap them too.)

    let mut cs = Containers::new(&env);
    // `sleep` as PID 1 ignores SIGTERM (no handler, PID 1 of its namespace); behind
    // --init it gets it and dies of it at once.
    cs.detach(
        "withinit",
        &["--init", "--net", "none", IMG, "sleep", "1000"],
    );
    cs.detach("without", &["--net", "none", IMG, "sleep", "1000"]);
    let t = Instant::now();
    mr_ok(&env, &["stop", "-t", "5", "withinit"]);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(inspect(&env, "withinit")["State"]["ExitCode"], 143);
    let t = Instant::now();
    mr_ok(&env, &["stop", "-t", "1", "without"]);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(inspect(&env, "without")["State"]["ExitCode"], 137);
    // kill -s sends what it is told.
    cs.detach("killme", &["--init", "--net", "none", IMG, "sleep", "1000"]);
    mr_ok(&env, &["kill", "-s", "USR1", "killme"]);
    assert_eq!(
        mr_ok(&env, &["wait", "killme"]).trim(),
        (128 + libc::SIGUSR1).to_string()
    );
    let o = mr(&env, &["kill", "killme"]);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(&o, "is not running");
}

#[test]
fn bridge_containers_reach_each_other_and_the_host_and_none_has_only_lo() {
    let Some(env) = setup() else { return };
    let mut cs = Containers::new(&env);
    let a = cs.detach("net-a", &[IMG, "sh", "-c", HTTPD]);
    let va = inspect(&env, "net-a");
    let ip_a = va["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let gw = va["NetworkSettings"]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!ip_a.is_empty() && !gw.is_empty(), "{va}");
    // The host reaches it directly.
    assert_eq!(http_get(&format!("{ip_a}:80")), "hello from httpd\n");

    // Another container reaches it by address. (busybox-static's wget crashes with -q -T:
    // plain wget with its progress on stderr dropped.)
    let out = crate::run::mrun_ok(
        &env,
        &[
            IMG,
            "sh",
            "-c",
            &format!("ip -o -4 addr show eth0; wget -O - http://{ip_a}/ 2>/dev/null"),
        ],
    );
    assert!(out.contains("hello from httpd"), "{out}");
    assert!(out.contains("eth0"), "{out}");

    // A server of ours on the bridge's host address.
    let listener = TcpListener::bind(format!("{gw}:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nfrom-gw\n")
            .unwrap();
    });
    let out = crate::run::mrun_ok(
        &env,
        &[
            IMG,
            "sh",
            "-c",
            &format!("wget -O - http://{gw}:{port}/ 2>/dev/null"),
        ],
    );
    assert_eq!(out, "from-gw\n");
    server.join().unwrap();

    // /etc/hosts names the container; --add-host and --dns land in its files.
    let out = crate::run::mrun_ok(
        &env,
        &[
            "-h",
            "named",
            "--add-host",
            "db:10.1.2.3",
            "--dns",
            "9.9.9.9",
            IMG,
            "sh",
            "-c",
            "cat /etc/hosts /etc/resolv.conf /etc/hostname",
        ],
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("10.1.2.3") && l.contains("db")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("named") && !l.starts_with("127.")),
        "{out}"
    );
    assert!(out.contains("nameserver 9.9.9.9"), "{out}");

    // --net none: only lo.
    assert_eq!(
        crate::run::mrun_ok(&env, &["--net", "none", IMG, "/probe", "ifaces"]),
        "lo\n"
    );
    mr_ok(&env, &["rm", "-f", "net-a"]);
    assert_gone(&env, &a);
}

#[test]
fn sigkill_of_the_monitor_shows_the_container_exited_and_rm_f_cleans_everything() {
    let Some(env) = setup() else { return };
    let mut cs = Containers::new(&env);
    let id = cs.detach(
        "orphan",
        &["-p", "127.0.0.1:18081:80", IMG, "sh", "-c", HTTPD],
    );
    let v = inspect(&env, "orphan");
    let monitor = v["State"]["MonitorPid"].as_i64().unwrap() as i32;
    let pid = v["State"]["Pid"].as_i64().unwrap() as i32;
    assert!(monitor > 0 && pid > 0, "{v}");
    http_get("127.0.0.1:18081");
    // The monitor is not our child: it is identified by pid and start time only through
    // the state file, which is exactly what is being tested; a pidfd pins it here.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, monitor, 0) } as i32;
    assert!(pidfd >= 0);
    assert_eq!(
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, libc::SIGKILL, 0, 0) },
        0
    );
    unsafe { libc::close(pidfd) };
    // The container dies with its monitor (parent-death signal).
    assert!(
        eventually(Duration::from_secs(10), || !Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()),
        "the container outlived its monitor"
    );
    let ps = mr_ok(&env, &["ps", "-a"]);
    let row = ps
        .lines()
        .find(|l| l.contains("orphan"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(row.contains("Exited (255)"), "{row}");
    assert!(!mr_ok(&env, &["ps"]).contains("orphan"));
    let v = inspect(&env, "orphan");
    assert_eq!(v["State"]["Running"], false);
    assert!(
        v["State"]["Error"].as_str().unwrap().contains("monitor"),
        "{v}"
    );

    // mbuild prune clears what the dead monitor left (cgroup, lease, veth) and keeps the
    // record, as Docker keeps exited containers; rm -f then removes it.
    let pruned = env.ok(["prune"]);
    assert!(
        pruned.contains(&format!("container {} had lost its monitor", &id[..12])),
        "{pruned}"
    );
    assert_eq!(cgroups_of(&id[..12]), Vec::<std::path::PathBuf>::new());
    assert_eq!(leases_of(&id), Vec::<String>::new());
    assert!(!Path::new("/sys/class/net").join(veth(&id)).exists());
    assert!(mr_ok(&env, &["ps", "-a"]).contains("orphan"));
    assert!(
        env.ok(["prune"]).lines().all(|l| !l.contains(&id[..12])),
        "reaped twice"
    );

    mr_ok(&env, &["rm", "-f", "orphan"]);
    assert_gone(&env, &id);
}

#[test]
fn fifty_containers_started_at_once_get_distinct_addresses_and_all_answer() {
    let Some(env) = setup() else { return };
    let names: Vec<String> = (0..50).map(|i| format!("many{i}")).collect();
    let mut cs = Containers::new(&env);
    cs.names = names.clone();
    let starts: Vec<Running> = names
        .iter()
        .map(|n| {
            let mut c = mrun_cmd(&env);
            c.args(["-d", "--name", n, IMG, "sh", "-c", HTTPD]);
            Running::spawn(c)
        })
        .collect();
    for r in starts {
        let o = r.output(TIMEOUT);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let mut ips: Vec<String> = names
        .iter()
        .map(|n| {
            inspect(&env, n)["NetworkSettings"]["IPAddress"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for ip in &ips {
        assert_eq!(http_get(&format!("{ip}:80")), "hello from httpd\n", "{ip}");
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 50, "duplicate addresses");
    let ids: Vec<String> = names
        .iter()
        .map(|n| inspect(&env, n)["Id"].as_str().unwrap().to_string())
        .collect();
    let mut c = mrun_cmd(&env);
    c.arg("rm").arg("-f").args(&names);
    let o = Running::spawn(c).output(TIMEOUT);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for id in &ids {
        assert_gone(&env, id);
    }
}

/// tmux, driven with send-keys and read with capture-pane: a real terminal for `-it`.
pub(crate) struct Tmux {
    pub(crate) socket: String,
}

impl Tmux {
    pub(crate) fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }
    pub(crate) fn send(&self, keys: &[&str]) {
        let st = self
            .cmd()
            .args(["send-keys", "-t", "t"])
            .args(keys)
            .status()
            .unwrap();
        assert!(st.success());
    }
    pub(crate) fn screen(&self) -> String {
        text(
            &self
                .cmd()
                .args(["capture-pane", "-p", "-t", "t"])
                .output()
                .unwrap()
                .stdout,
        )
    }
    pub(crate) fn wait_for(&self, what: &str) -> String {
        let mut last = String::new();
        let ok = eventually(Duration::from_secs(20), || {
            last = self.screen();
            last.contains(what)
        });
        assert!(ok, "{what:?} never appeared; screen:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

#[test]
fn interactive_terminal_under_tmux() {
    let Some(env) = setup() else { return };
    if skip_unless(
        have("tmux"),
        "tmux is not installed (scripts/install-deps installs it)",
    ) {
        return;
    }
    // Dropped last: if the test fails with the container still up (a closed terminal
    // leaves a foreground container running, as Docker's client leaves its container),
    // it is removed.
    let mut cs = Containers::new(&env);
    cs.names.push("tty1".into());
    let tmux = Tmux {
        socket: format!("minibox-e2e-{}", std::process::id()),
    };
    // A shell on the host in the pane; its terminal settings before, mrun, after.
    let st = tmux
        .cmd()
        .args(["new-session", "-d", "-s", "t", "-x", "100", "-y", "30"])
        .arg("env PS1='host$ ' sh")
        .status()
        .unwrap();
    assert!(st.success());
    tmux.wait_for("host$");
    tmux.send(&[
        "stty -g > ",
        &env.path("before").display().to_string(),
        "Enter",
    ]);
    let mrun = format!(
        "{} --root {} -it --rm --net none --name tty1 {IMG} sh; stty -g > {}; echo MRUN-$((1+1))-DONE",
        crate::common::MRUN,
        env.root.display(),
        env.path("after").display()
    );
    tmux.send(&[&mrun, "Enter"]);
    // The container's shell prompt (busybox sh as root: "/ # "), on a terminal of its own.
    tmux.wait_for("/ #");
    tmux.send(&["tty; stty size; echo typed-$((6*7))", "Enter"]);
    let screen = tmux.wait_for("typed-42");
    assert!(screen.contains("/dev/pts/0"), "{screen}");
    assert!(screen.contains("30 100"), "window size: {screen}");
    // A resized terminal is passed on (SIGWINCH).
    let st = tmux
        .cmd()
        .args(["resize-window", "-t", "t", "-x", "80", "-y", "20"])
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(300));
    tmux.send(&["echo size-$(stty size | tr ' ' x)", "Enter"]);
    tmux.wait_for("size-20x80");
    // Ctrl-C interrupts a sleep inside; the shell lives on.
    tmux.send(&["sleep 100", "Enter"]);
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    tmux.send(&["C-c"]);
    tmux.send(&["echo after-sleep-$?", "Enter"]);
    let screen = tmux.wait_for("after-sleep-130");
    assert!(t.elapsed() < Duration::from_secs(10), "{screen}");
    tmux.send(&["exit", "Enter"]);
    // (The typed line shows "MRUN-$((1+1))-DONE": only the shell's output matches.)
    tmux.wait_for("MRUN-2-DONE");
    let before = std::fs::read_to_string(env.path("before")).unwrap();
    let after = std::fs::read_to_string(env.path("after")).unwrap();
    assert_eq!(before, after, "the host terminal's settings changed");
    assert!(std::fs::read_dir(env.root.join("containers"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn slirp4netns_serves_a_container_and_its_published_port() {
    let Some(env) = setup() else { return };
    if skip_unless(
        have("slirp4netns"),
        "slirp4netns is not installed (scripts/install-deps installs it)",
    ) {
        return;
    }
    // Rootless containers use it by default; as root it is chosen with --net (this machine's
    // /dev/net/tun is root's only, so the rootless default is tested as "none, with a note").
    let mut cs = Containers::new(&env);
    let id = cs.detach(
        "slirp",
        &[
            "--net",
            "slirp4netns",
            "-p",
            "127.0.0.1:18082:80",
            IMG,
            "sh",
            "-c",
            HTTPD,
        ],
    );
    assert_eq!(http_get("127.0.0.1:18082"), "hello from httpd\n");
    let addrs = mr_ok(&env, &["exec", "slirp", "ip", "-o", "-4", "addr"]);
    assert!(
        addrs.contains("tap0") && addrs.contains("10.0.2.100"),
        "{addrs}"
    );
    let resolv = mr_ok(&env, &["exec", "slirp", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.0.2.3"), "{resolv}");
    mr_ok(&env, &["rm", "-f", "slirp"]);
    assert_gone(&env, &id);
    assert!(
        TcpListener::bind("127.0.0.1:18082").is_ok(),
        "the port is free again"
    );
}
