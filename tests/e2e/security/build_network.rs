//! The network of a build's RUN steps. A Minifile from anywhere runs its RUN steps as root:
//! by default they get a network namespace of their own on the bridge (outbound NAT, as
//! mrun's containers), so the host's 127.0.0.1 services and abstract unix sockets are out of
//! reach; `--network host` is the opt-in that reaches them (the control, with the very same
//! Minifile), `--network none` leaves only lo. The network never enters the cache key, and
//! the /etc files a step gets for its network never enter its layer.

use crate::common::*;
use crate::run::{setup, Running, IMG, TIMEOUT};
use std::io::Write;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A server of the host's that answers every connection with `secret` and counts them; it
/// stops when dropped.
struct Server {
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn serve<S: Write>(
        secret: String,
        mut accept: impl FnMut() -> std::io::Result<S> + Send + 'static,
    ) -> Server {
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, st) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match accept() {
                    Ok(mut s) => {
                        a.fetch_add(1, Ordering::Relaxed);
                        let _ = s.write_all(secret.as_bytes());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => break,
                }
            }
        });
        Server {
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

fn context(env: &Env, name: &str, minifile: &str) -> PathBuf {
    let ctx = env.path(name);
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Minifile"), minifile).unwrap();
    ctx
}

fn mbuild(env: &Env, args: &[&str], ctx: &Path) -> Output {
    let mut c = env.mbuild_cmd(args);
    c.arg(ctx);
    Running::spawn(c).output(TIMEOUT)
}

fn ok(what: &str, o: &Output) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// The lines a RUN step printed: between its header and its `done`.
fn step_output(out: &str) -> Vec<&str> {
    out.lines()
        .skip_while(|l| !l.starts_with("[2/"))
        .skip(1)
        .take_while(|l| !l.starts_with("[2/"))
        .collect()
}

/// The extracted directory of each layer of `image`, bottom first.
fn layer_dirs(env: &Env, image: &str) -> Vec<PathBuf> {
    let v = json(&env.ok(["inspect", image]));
    v[0]["Config"]["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let hex = d.as_str().unwrap().strip_prefix("sha256:").unwrap();
            env.root.join("layers").join(hex)
        })
        .collect()
}

#[test]
fn run_steps_cannot_reach_host_loopback_or_abstract_sockets_unless_network_host() {
    let Some(env) = setup() else { return };
    let secret = unique("host-only");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    tcp.set_nonblocking(true).unwrap();
    let tcp_server = Server::serve(secret.clone(), move || tcp.accept().map(|(s, _)| s));
    let name = unique("minibox-e2e");
    let unix = UnixListener::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    unix.set_nonblocking(true).unwrap();
    let unix_server = Server::serve(secret.clone(), move || unix.accept().map(|(s, _)| s));

    let run = format!(
        "/probe ifaces; /probe connect tcp 127.0.0.1:{port} || echo tcp-refused; \
         /probe connect unix @{name} || echo unix-refused; \
         grep -c nameserver /etc/resolv.conf || true"
    );
    let ctx = context(&env, "ctx", &format!("FROM {IMG}\nRUN {run}\n"));

    // The default: a network of its own, with eth0 on the bridge and a resolv.conf.
    let out = ok("default build", &mbuild(&env, &["-t", "net:1"], &ctx));
    assert!(
        out.contains(&format!("[2/2] RUN /bin/sh -c {run}\n")),
        "the header names no network for the default: {out}"
    );
    let lines = step_output(&out);
    for want in ["eth0", "lo", "tcp-refused", "unix-refused"] {
        assert!(lines.contains(&want), "{want} missing: {out}");
    }
    assert!(!out.contains(&secret), "{out}");
    assert!(
        lines
            .last()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n > 0),
        "no nameserver in /etc/resolv.conf: {out}"
    );
    assert_eq!(
        (tcp_server.connections(), unix_server.connections()),
        (0, 0)
    );
    // The step changed nothing: its /etc/hosts, /etc/hostname and /etc/resolv.conf (mount
    // stubs in this image, which has none) are no part of the image.
    assert_eq!(layer_dirs(&env, "net:1"), layer_dirs(&env, IMG));

    // The network is no part of the cache key: the same step with --network host is cached.
    let out = ok(
        "cached build",
        &mbuild(&env, &["--network", "host", "-t", "net:2"], &ctx),
    );
    assert!(
        out.contains(&format!("[2/2] CACHED RUN /bin/sh -c {run}\n")),
        "{out}"
    );

    // The control: the host's network reaches both.
    let out = ok(
        "--network host build",
        &mbuild(
            &env,
            &["--network", "host", "--no-cache", "-t", "net:3"],
            &ctx,
        ),
    );
    assert!(
        out.contains(&format!("[2/2] RUN (network host) /bin/sh -c {run}\n")),
        "{out}"
    );
    let lines = step_output(&out);
    let connected = format!("connected: {secret}");
    assert_eq!(
        lines.iter().filter(|l| **l == connected).count(),
        2,
        "{out}"
    );
    assert_eq!(
        (tcp_server.connections(), unix_server.connections()),
        (1, 1)
    );

    // --network none: only lo.
    let out = ok(
        "--network none build",
        &mbuild(
            &env,
            &["--network", "none", "--no-cache", "-t", "net:4"],
            &ctx,
        ),
    );
    assert!(
        out.contains(&format!("[2/2] RUN (network none) /bin/sh -c {run}\n")),
        "{out}"
    );
    let lines = step_output(&out);
    assert!(lines.contains(&"lo") && !lines.contains(&"eth0"), "{out}");
    assert!(
        lines.contains(&"tcp-refused") && lines.contains(&"unix-refused"),
        "{out}"
    );
    assert_eq!(
        (tcp_server.connections(), unix_server.connections()),
        (1, 1)
    );

    // A bad mode is a usage error.
    let o = mbuild(&env, &["--network", "nat", "-t", "net:5"], &ctx);
    assert_eq!(o.status.code(), Some(125));
    assert_one_line_error(
        &o,
        "mbuild: --network nat: use default, bridge, host, none or slirp4netns",
    );
}

#[test]
fn the_etc_files_of_a_run_step_never_enter_its_layer() {
    let Some(env) = setup() else { return };
    // The image has /etc but no hosts, hostname or resolv.conf: the runner makes stubs to
    // mount on, which must go; what the step itself writes stays.
    let ctx = context(
        &env,
        "ctx",
        &format!(
            "FROM {IMG}\nRUN echo made > /etc/motd && cat /etc/hostname \
             && echo changed >> /etc/hosts\n"
        ),
    );
    let out = ok("build", &mbuild(&env, &["-t", "etc:1"], &ctx));
    let lines = step_output(&out);
    assert!(
        lines.first().is_some_and(|h| h.len() == 12),
        "the step's hostname: {out}"
    );
    let layers = layer_dirs(&env, "etc:1");
    assert_eq!(layers.len(), layer_dirs(&env, IMG).len() + 1);
    let etc = layers.last().unwrap().join("etc");
    let mut names: Vec<String> = std::fs::read_dir(&etc)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["motd"], "{}", etc.display());
    assert_eq!(std::fs::read_to_string(etc.join("motd")).unwrap(), "made\n");
}

const TEST_USER: &str = "minibox-test";

#[test]
fn a_rootless_run_step_cannot_reach_host_loopback_either() {
    use std::os::unix::fs::PermissionsExt;
    let Some(env) = setup() else { return };
    let uid = Command::new("id").args(["-u", TEST_USER]).output().unwrap();
    if skip_unless(have("setpriv"), "setpriv missing (util-linux)")
        || skip_unless(
            uid.status.success(),
            &format!("user {TEST_USER} missing (scripts/ci-user makes it)"),
        )
    {
        return;
    }
    // The user's own corner of the Env: mbuild, the test image, a context, its store.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let home = env.path("user");
    std::fs::create_dir_all(&home).unwrap();
    let mbuild = home.join("mbuild");
    std::fs::copy(MBUILD, &mbuild).unwrap();
    crate::run::image_tree(&home.join("image"));
    let secret = unique("host-only");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    tcp.set_nonblocking(true).unwrap();
    let server = Server::serve(secret.clone(), move || tcp.accept().map(|(s, _)| s));
    // 10.0.2.2 is the host's loopback through slirp4netns unless that is disabled.
    let run = format!(
        "/probe ifaces; /probe connect tcp 127.0.0.1:{port} || echo lo-refused; \
         /probe connect tcp 10.0.2.2:{port} || echo gateway-refused"
    );
    let ctx = home.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Minifile"), format!("FROM {IMG}\nRUN {run}\n")).unwrap();
    let o = Command::new("chown")
        .args(["-R", &format!("{TEST_USER}:{TEST_USER}")])
        .arg(&home)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let as_user = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            TEST_USER,
            "--regid",
            TEST_USER,
            "--init-groups",
            "env",
        ])
        .arg(format!("HOME={}", home.display()))
        .arg(format!("XDG_DATA_HOME={}", home.join("data").display()))
        .arg(format!("USER={TEST_USER}"))
        .arg(format!("LOGNAME={TEST_USER}"))
        .arg(&mbuild)
        .args(args)
        .current_dir(&home)
        .env_remove("MINIBOX_ROOT")
        .stdin(std::process::Stdio::null());
        Running::spawn(c).output(TIMEOUT)
    };
    let image = home.join("image");
    ok(
        "import as the user",
        &as_user(&["import", image.to_str().unwrap(), "-t", IMG]),
    );

    let o = as_user(&["-t", "net:1", ctx.to_str().unwrap()]);
    let out = ok("rootless build", &o);
    let lines = step_output(&out);
    assert!(
        lines.contains(&"lo-refused") && lines.contains(&"gateway-refused"),
        "{out}"
    );
    assert_eq!(server.connections(), 0, "{out}");
    // slirp4netns where it works (a tap0), else no network with a note; never the host's.
    let err = text(&o.stderr);
    if lines.contains(&"tap0") {
        assert!(!lines.contains(&"eth0"), "{out}");
    } else {
        assert_eq!(
            lines
                .iter()
                .take_while(|l| !l.contains("refused"))
                .collect::<Vec<_>>(),
            [&"lo"],
            "{out}"
        );
        assert!(
            err.lines().any(|l| l.starts_with("mbuild: ")
                && l.ends_with(": RUN steps get no network (--network none)")),
            "{err}"
        );
    }

    // The control: asked for, the host's network reaches it, rootless too.
    let o = as_user(&[
        "--network",
        "host",
        "--no-cache",
        "-t",
        "net:2",
        ctx.to_str().unwrap(),
    ]);
    let out = ok("rootless --network host build", &o);
    assert!(
        step_output(&out).contains(&format!("connected: {secret}").as_str()),
        "{out}"
    );
    assert_eq!(server.connections(), 1);
}
