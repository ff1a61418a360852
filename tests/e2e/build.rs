//! `mbuild` builds end to end: the real binary builds Minifiles against a fresh store and the
//! tests assert what a user sees — the step lines, CACHED, the one-line errors and exit codes,
//! the files and owners inside the image (through `mrun`), `inspect` and `history`, and the
//! digests. The examples in Minifile-examples/ are each built and run here, from copies of
//! their contexts. Every process a test starts is ended by its own handle if it overruns.

use crate::common::*;
use crate::run::{cgroups_of, containers_of, mounts_of};
use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const BUSYBOX: &str = "/bin/busybox";

/// How long a build or run without debootstrap may take on a loaded 2-core machine.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(120);

/// A debootstrap plus apt-get builds (the Debian examples).
const DEBIAN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The tag of the busybox base image each test imports into its store.
pub(crate) const BASE: &str = "base:1";

// ---------------------------------------------------------------------------------------
// Running the binaries

/// Run `c` to the end, or end it and fail the test after `limit`: SIGTERM first (mbuild and
/// mrun pass it on to the container and clean up), SIGKILL if that is not enough.
pub(crate) fn output_within(mut c: Command, limit: Duration) -> Output {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{c:?}");
    let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            // The child is not reaped yet, so its pid is still its own.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let grace = Instant::now();
            while grace.elapsed() < Duration::from_secs(10) && child.try_wait().unwrap().is_none() {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn mbuild_env(env: &Env, vars: &[(&str, &str)], args: &[&str], limit: Duration) -> Output {
    let mut c = env.mbuild_cmd(args);
    for (k, v) in vars {
        c.env(k, v);
    }
    output_within(c, limit)
}

fn mbuild(env: &Env, args: &[&str]) -> Output {
    mbuild_env(env, &[], args, TIMEOUT)
}

/// mbuild that must succeed; its stdout.
fn mbuild_ok(env: &Env, args: &[&str]) -> String {
    let o = mbuild(env, args);
    assert!(
        o.status.success(),
        "mbuild {args:?} failed ({}):\n{}\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// `mbuild -t TAG CONTEXT` (the Minifile in the context), which must succeed; its stdout.
fn build(env: &Env, tag: &str, ctx: &Path) -> String {
    mbuild_ok(env, &["-t", tag, ctx.to_str().unwrap()])
}

fn mrun(env: &Env, args: &[&str]) -> Output {
    let mut c = Command::new(MRUN);
    c.arg("--root").arg(&env.root).arg("--rm").args(args);
    c.env_remove("MINIBOX_ROOT");
    output_within(c, TIMEOUT)
}

/// mrun that must exit 0; its stdout.
fn mrun_ok(env: &Env, args: &[&str]) -> String {
    let o = mrun(env, args);
    assert!(
        o.status.success(),
        "mrun {args:?} failed ({}):\n{}\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn inspect(env: &Env, image: &str) -> Value {
    let v = json(&mbuild_ok(env, &["inspect", image]));
    v[0].clone()
}

/// `history.created_by` of each entry, oldest first.
fn created_by(env: &Env, image: &str) -> Vec<String> {
    inspect(env, image)["Config"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["created_by"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The image id from "Successfully built sha256:...".
fn built_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap_or_else(|| panic!("no image id in {out:?}"))
        .to_string()
}

fn cached_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.contains("] CACHED ")).collect()
}

// ---------------------------------------------------------------------------------------
// Stores, images and contexts

/// A fresh store holding the busybox base image as `base:1`, or None (with `skipped:`) when
/// this machine cannot run builds.
pub(crate) fn setup() -> Option<Env> {
    if skip_unless(
        is_root(),
        "builds need root (RUN uses overlay, namespaces, cgroups)",
    ) || skip_unless(
        Path::new(BUSYBOX).exists(),
        "/bin/busybox missing (scripts/install-deps installs busybox-static)",
    ) {
        return None;
    }
    let env = Env::new();
    let tree = env.path("base-tree");
    base_tree(&tree);
    env.ok(["import", tree.to_str().unwrap(), "-t", BASE]);
    Some(env)
}

/// A busybox userland: every applet linked in /bin, root and app (1000:1000) in
/// /etc/passwd and /etc/group, /tmp, /root and /home/app.
fn base_tree(dir: &Path) {
    for d in ["bin", "etc", "tmp", "root", "home/app"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in text(&list.stdout).lines().filter(|a| *a != "busybox") {
        symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
}

/// A build context `name` in the test's directory with a Minifile and files.
fn context(env: &Env, name: &str, minifile: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.path(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("Minifile"), minifile).unwrap();
    for (p, content) in files {
        let p = dir.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    dir
}

/// Copy an example's directory (recursively, links as links) into the test's directory, so
/// the repository tree stays clean.
fn example(env: &Env, name: &str) -> PathBuf {
    let src = workspace().join("Minifile-examples").join(name);
    let dest = env.path(&format!("example-{}", name.replace('/', "-")));
    let o = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cp -a {}: {}",
        src.display(),
        text(&o.stderr)
    );
    // A busybox an earlier `scripts/quickstart` left in the example is replaced with ours.
    let _ = fs::remove_file(dest.join("busybox"));
    dest
}

fn write_minifile(ctx: &Path, minifile: &str) {
    fs::write(ctx.join("Minifile"), minifile).unwrap();
}

/// A name no other test or earlier run uses, for files the tests look for on the host.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("minibox-e2e-{what}-{}-{nanos}", std::process::id())
}

/// Everything a finished build may leave: nothing in containers/ and tmp/, no mount under
/// the store.
fn assert_store_clean(env: &Env, after: &str) {
    assert_eq!(
        containers_of(env),
        Vec::<PathBuf>::new(),
        "container directories left after {after}"
    );
    let tmp: Vec<_> = fs::read_dir(env.root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(tmp, Vec::<PathBuf>::new(), "tmp/ not empty after {after}");
    assert_eq!(
        mounts_of(env),
        Vec::<String>::new(),
        "mounts left after {after}"
    );
}

// ---------------------------------------------------------------------------------------
// The examples

#[test]
fn hello_example_builds_in_well_under_a_second_and_runs() {
    let Some(env) = setup() else { return };
    let ctx = example(&env, "hello");
    fs::copy(BUSYBOX, ctx.join("busybox")).unwrap();

    let start = Instant::now();
    let out = build(&env, "hello", &ctx);
    let took = start.elapsed();
    eprintln!("hello: cold build took {took:?}");
    // "Well under a second" is the benchmark's figure; here only a generous bound, for a
    // loaded CI machine running a debug build.
    assert!(took < Duration::from_secs(5), "hello took {took:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].split(" (").next(), Some("[1/6] FROM scratch"));
    assert_eq!(lines[1], "[2/6] ADD busybox /bin/busybox");
    assert!(lines[2].starts_with("[2/6] done ("), "{out}");
    assert_eq!(
        lines[3],
        r#"[3/6] RUN ["/bin/busybox","--install","-s","/bin"]"#
    );
    assert!(built_id(&out).starts_with("sha256:"));
    assert_eq!(lines.last(), Some(&"Successfully tagged hello:latest"));

    let greeting = mrun_ok(&env, &["hello"]);
    assert!(
        greeting.starts_with("hello from minibox: Linux ") && greeting.ends_with(", pid 1\n"),
        "{greeting:?}"
    );
    assert_store_clean(&env, "the hello example");
}

#[test]
fn layered_app_example_chains_three_minifiles() {
    let Some(env) = setup() else { return };
    let ctx = example(&env, "layered-app");
    fs::copy(BUSYBOX, ctx.join("base/busybox")).unwrap();
    for (tag, dir) in [
        ("layered-base", "base"),
        ("layered-runtime", "runtime"),
        ("layered-app", "app"),
    ] {
        build(&env, tag, &ctx.join(dir));
    }

    let out = mrun_ok(&env, &["layered-app"]);
    assert_eq!(
        out,
        "[app] layered demo running as app in /app, layers: base -> runtime -> app\n"
    );

    // The app's history tells the whole chain, one entry per instruction of each Minifile.
    let h = created_by(&env, "layered-app");
    let want = [
        "ADD busybox /bin/busybox",
        r#"RUN ["/bin/busybox","--install","-s","/bin"]"#,
        "ADD rootfs/ /",
        "ENV PATH=/usr/local/bin:/bin LAYER=base",
        r#"ENTRYPOINT ["/bin/sh"]"#,
        "ENV RUNTIME_HOME=/opt/runtime LAYER=runtime",
        "ADD runtime.sh lib.sh /opt/runtime/",
        r#"RUN /bin/sh -c mkdir -p /usr/local/bin && ln -s "$RUNTIME_HOME/runtime.sh" /usr/local/bin/run-app"#,
        r#"ENTRYPOINT ["run-app"]"#,
        "ENV LAYER=app APP_NAME=layered demo",
        "ADD main.sh /app/main.sh",
        "USER app",
        "WORKDIR /app",
        r#"ENTRYPOINT ["run-app","/app/main.sh"]"#,
    ];
    assert_eq!(h, want);
    let table = mbuild_ok(&env, &["history", "--no-trunc", "layered-app"]);
    for by in [
        "ADD busybox /bin/busybox",
        "ADD runtime.sh lib.sh /opt/runtime/",
        "ADD main.sh /app/main.sh",
    ] {
        assert!(table.contains(by), "history lacks {by:?}:\n{table}");
    }

    // Each image is its parent's layers plus its own.
    let layers = |img: &str| -> Vec<Value> {
        inspect(&env, img)["Manifest"]["layers"]
            .as_array()
            .unwrap()
            .clone()
    };
    let (base, runtime, app) = (
        layers("layered-base"),
        layers("layered-runtime"),
        layers("layered-app"),
    );
    assert_eq!((base.len(), runtime.len(), app.len()), (3, 5, 6));
    assert_eq!(runtime[..3], base[..]);
    assert_eq!(app[..5], runtime[..]);
}

/// Both Debian examples in one store, so debootstrap runs once per test run.
#[test]
fn debian_examples_curl_and_multistage_c() {
    if skip_unless(is_root(), "builds need root")
        || skip_unless(
            have("debootstrap"),
            "debootstrap missing (scripts/install-deps installs it)",
        )
    {
        return;
    }
    let env = Env::new();
    let start = Instant::now();
    let curl = example(&env, "debian-curl");
    let o = mbuild_env(
        &env,
        &[],
        &["-t", "debian-curl", curl.to_str().unwrap()],
        DEBIAN_TIMEOUT,
    );
    assert!(
        o.status.success(),
        "debian-curl: {}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let out = text(&o.stdout);
    assert!(out.contains("bootstrapping debian:bookworm"), "{out}");
    eprintln!("debian-curl (with debootstrap): {:?}", start.elapsed());
    // apt-get update and install ran on the default network (a namespace of its own on the
    // bridge, NAT out: the header names no other), with the step's own /etc/hosts and
    // /etc/resolv.conf, which are no part of its layer.
    assert!(
        out.lines()
            .any(|l| l.starts_with("[2/") && l.contains("] RUN /bin/sh -c apt-get update")),
        "{out}"
    );
    let diff_ids = inspect(&env, "debian-curl")["Config"]["rootfs"]["diff_ids"].clone();
    let top = diff_ids
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap();
    let etc = env
        .root
        .join("layers")
        .join(top.strip_prefix("sha256:").unwrap())
        .join("etc");
    for f in ["hosts", "hostname", "resolv.conf"] {
        assert!(!etc.join(f).exists(), "etc/{f} is in the RUN step's layer");
    }
    let version = mrun_ok(&env, &["debian-curl", "--version"]);
    assert!(version.starts_with("curl "), "{version}");
    // CMD ["--version"] is the default argument.
    assert!(mrun_ok(&env, &["debian-curl"]).starts_with("curl "));

    // The base is kept as a tagged image and reused: nothing is bootstrapped again, and the
    // rebuild runs nothing.
    let again = Instant::now();
    let out = build(&env, "debian-curl", &curl);
    assert!(!out.contains("bootstrapping"), "{out}");
    assert_eq!(cached_lines(&out).len(), 1, "{out}");
    eprintln!("debian-curl cached rebuild: {:?}", again.elapsed());

    let t = Instant::now();
    let mc = example(&env, "multistage-c");
    let o = mbuild_env(
        &env,
        &[],
        &["-t", "multistage-c", mc.to_str().unwrap()],
        DEBIAN_TIMEOUT,
    );
    assert!(
        o.status.success(),
        "multistage-c: {}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(!text(&o.stdout).contains("bootstrapping"));
    eprintln!("multistage-c: {:?}", t.elapsed());
    let out = mrun_ok(&env, &["multistage-c", "one", "two"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("hello from a static C binary in a scratch image (host "),
        "{out}"
    );
    assert_eq!(&lines[1..], ["arg 1: one", "arg 2: two"]);
    // Only the binary is shipped: one layer, no trace of the Debian stage.
    let img = inspect(&env, "multistage-c");
    assert_eq!(img["Manifest"]["layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        img["Config"]["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        created_by(&env, "multistage-c"),
        [
            "COPY --from=build /hello /hello",
            r#"ENTRYPOINT ["/hello"]"#
        ]
    );
    assert_store_clean(&env, "the Debian examples");
}

// ---------------------------------------------------------------------------------------
// The cache

#[test]
fn cache_skips_unchanged_steps_and_reruns_from_the_first_change() {
    let Some(env) = setup() else { return };
    let minifile = "FROM base:1
RUN echo marker-one
ADD a.txt /a.txt
RUN echo marker-two && cat /a.txt
COPY b.txt /b.txt
RUN echo marker-three
ENV X=1
";
    let ctx = context(
        &env,
        "ctx",
        minifile,
        &[("a.txt", "first\n"), ("b.txt", "bee\n")],
    );
    let sde = [("SOURCE_DATE_EPOCH", "1700000000")];
    let go = |extra: &[&str]| -> String {
        let mut args = vec!["-t", "c:1"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        let o = mbuild_env(&env, &sde, &args, TIMEOUT);
        assert!(
            o.status.success(),
            "{}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    };

    let first = go(&[]);
    for m in ["marker-one", "marker-two", "first", "marker-three"] {
        assert!(first.lines().any(|l| l == m), "{m} missing:\n{first}");
    }
    assert_eq!(cached_lines(&first), Vec::<&str>::new());
    assert!(first.contains("[2/7] RUN /bin/sh -c echo marker-one\nmarker-one\n[2/7] done ("));

    // Nothing changed: every RUN/ADD/COPY is CACHED, nothing runs, same image.
    let second = go(&[]);
    assert_eq!(
        cached_lines(&second),
        [
            "[2/7] CACHED RUN /bin/sh -c echo marker-one",
            "[3/7] CACHED ADD a.txt /a.txt",
            "[4/7] CACHED RUN /bin/sh -c echo marker-two && cat /a.txt",
            "[5/7] CACHED COPY b.txt /b.txt",
            "[6/7] CACHED RUN /bin/sh -c echo marker-three",
        ]
    );
    assert!(
        !second.lines().any(|l| l.starts_with("marker-")),
        "{second}"
    );
    assert!(!second.contains("done ("), "{second}");
    assert_eq!(built_id(&second), built_id(&first));

    // A new mtime is not a change.
    let o = Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06"])
        .arg(ctx.join("a.txt"))
        .status()
        .unwrap();
    assert!(o.success());
    let touched = go(&[]);
    assert_eq!(cached_lines(&touched).len(), 5, "{touched}");
    assert_eq!(built_id(&touched), built_id(&first));

    // New bytes in a.txt: the steps before it stay cached, it and everything after rerun.
    fs::write(ctx.join("a.txt"), "second\n").unwrap();
    let changed = go(&[]);
    assert_eq!(
        cached_lines(&changed),
        ["[2/7] CACHED RUN /bin/sh -c echo marker-one"]
    );
    assert!(!changed.lines().any(|l| l == "marker-one"), "{changed}");
    assert!(
        changed.contains("[3/7] ADD a.txt /a.txt\n[3/7] done ("),
        "{changed}"
    );
    assert!(changed.contains("marker-two\nsecond\n"), "{changed}");
    assert!(changed.contains("[5/7] COPY b.txt /b.txt\n"), "{changed}");
    assert!(changed.contains("marker-three\n"), "{changed}");
    assert_ne!(built_id(&changed), built_id(&first));

    // --no-cache runs everything again, and (deterministic steps) lands on the same image.
    let fresh = go(&["--no-cache"]);
    assert_eq!(cached_lines(&fresh), Vec::<&str>::new());
    for m in ["marker-one", "marker-two", "second", "marker-three"] {
        assert!(fresh.lines().any(|l| l == m), "{m} missing:\n{fresh}");
    }
    assert_eq!(built_id(&fresh), built_id(&changed));
    assert_eq!(
        mrun_ok(&env, &["c:1", "cat", "/a.txt", "/b.txt"]),
        "second\nbee\n"
    );
}

#[test]
fn copy_flags_are_part_of_the_cache_key() {
    let Some(env) = setup() else { return };
    let ctx = context(
        &env,
        "ctx",
        "FROM base:1\nCOPY --chmod=640 f /f\n",
        &[("f", "x")],
    );
    build(&env, "m:1", &ctx);
    write_minifile(&ctx, "FROM base:1\nCOPY --chmod=755 f /f\n");
    let out = build(&env, "m:1", &ctx);
    assert_eq!(cached_lines(&out), Vec::<&str>::new(), "{out}");
    assert!(out.contains("[2/2] COPY --chmod=755 f /f\n"), "{out}");
    assert_eq!(mrun_ok(&env, &["m:1", "stat", "-c", "%a", "/f"]), "755\n");
}

// ---------------------------------------------------------------------------------------
// A failing RUN

#[test]
fn failing_run_names_the_step_commits_nothing_and_leaves_nothing() {
    let Some(env) = setup() else { return };
    let ctx = context(
        &env,
        "ctx",
        "FROM base:1\nRUN echo ok > /ok\nRUN hostname; nosuchcommand 2>/dev/null\nRUN echo never\n",
        &[],
    );
    // The tags and their images (the CREATED column moves with the clock).
    let images = || -> Vec<String> {
        mbuild_ok(&env, &["images", "--no-trunc"])
            .lines()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let before = images();

    let o = mbuild(&env, &["-t", "broken:1", ctx.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        assert_one_line_error(&o, "exit code 127"),
        "mbuild: step 3/4 RUN /bin/sh -c hostname; nosuchcommand 2>/dev/null: exit code 127"
    );
    let out = text(&o.stdout);
    assert!(
        !out.contains("never") && !out.contains("Successfully"),
        "{out}"
    );
    // The step ran: the container's hostname is the prefix of its id.
    let hostname = out
        .lines()
        .skip_while(|l| !l.starts_with("[3/4] RUN "))
        .nth(1)
        .unwrap_or_else(|| panic!("no hostname line in {out}"))
        .to_string();
    assert!(
        hostname.len() == 12 && hostname.bytes().all(|c| c.is_ascii_hexdigit()),
        "{hostname:?}"
    );

    // Nothing committed, nothing left.
    assert_one_line_error(&mbuild(&env, &["inspect", "broken:1"]), "broken:1");
    assert_eq!(images(), before);
    assert_store_clean(&env, "a failed RUN");
    assert_eq!(
        cgroups_of(&hostname),
        Vec::<PathBuf>::new(),
        "cgroups left after a failed RUN"
    );

    // The next build works, and reuses the step that succeeded.
    write_minifile(&ctx, "FROM base:1\nRUN echo ok > /ok\nRUN echo fixed\n");
    let out = build(&env, "broken:1", &ctx);
    assert_eq!(
        cached_lines(&out),
        ["[2/3] CACHED RUN /bin/sh -c echo ok > /ok"]
    );
    assert!(out.contains("\nfixed\n"), "{out}");
    assert_eq!(mrun_ok(&env, &["broken:1", "cat", "/ok"]), "ok\n");
    assert_store_clean(&env, "the build after a failed RUN");
}

// ---------------------------------------------------------------------------------------
// ADD and COPY

#[test]
fn sources_never_leave_the_context() {
    let Some(env) = setup() else { return };
    fs::write(env.path("outside"), "secret").unwrap();
    let ctx = context(&env, "ctx", "", &[("in/f", "f")]);
    symlink("/etc/passwd", ctx.join("abs")).unwrap();
    symlink("../outside", ctx.join("rel")).unwrap();
    symlink("../../outside", ctx.join("in/up")).unwrap();

    let minifile = ctx.join("Minifile");
    let file = minifile.to_str().unwrap();
    for (copy, needle) in [
        (
            "COPY ../outside /x",
            "../outside: source is outside the build context",
        ),
        (
            "COPY abs /x",
            "abs: symlink abs points outside the build context (/etc/passwd)",
        ),
        (
            "ADD rel /x",
            "rel: symlink rel points outside the build context (../outside)",
        ),
        (
            "COPY in/up /x",
            "in/up: symlink in/up points outside the build context",
        ),
    ] {
        write_minifile(&ctx, &format!("FROM base:1\nRUN true\n{copy}\n"));
        let o = mbuild(&env, &["-t", "escape:1", ctx.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{copy}");
        let line = assert_one_line_error(&o, needle);
        assert!(
            line.starts_with(&format!("mbuild: {file}:3: {copy}: ")),
            "{line}"
        );
    }
    assert_one_line_error(&mbuild(&env, &["inspect", "escape:1"]), "escape:1");
    assert_store_clean(&env, "refused sources");
}

#[test]
fn copy_follows_dockers_destination_rules() {
    let Some(env) = setup() else { return };
    let ctx = context(
        &env,
        "ctx",
        "",
        &[
            ("one", "1\n"),
            ("two", "2\n"),
            ("dir/g", "g\n"),
            ("dir/sub/h", "h\n"),
        ],
    );
    symlink("g", ctx.join("dir/lnk")).unwrap();
    symlink("../../elsewhere", ctx.join("dir/far")).unwrap();

    // Several sources need a directory destination ending in /.
    write_minifile(&ctx, "FROM base:1\nCOPY one two /multi\n");
    let o = mbuild(&env, &["-t", "d:1", ctx.to_str().unwrap()]);
    let line = assert_one_line_error(
        &o,
        "when using COPY with more than one source file, the destination must be a directory and end with a /",
    );
    assert!(line.contains("Minifile:2: COPY one two /multi: "), "{line}");

    write_minifile(
        &ctx,
        "FROM base:1
COPY one two /multi/
WORKDIR /work
COPY one relative
COPY two .
COPY dir /tree
COPY --chown=1000:1000 dir /owned
COPY --chown=app one /new/parents/
",
    );
    build(&env, "d:1", &ctx);
    let sh = |script: &str| mrun_ok(&env, &["d:1", "sh", "-c", script]);
    assert_eq!(sh("cat /multi/one /multi/two"), "1\n2\n");
    // Relative destinations are resolved against WORKDIR.
    assert_eq!(sh("cat /work/relative /work/two"), "1\n2\n");
    // A directory's contents are copied, symlinks as symlinks (even one pointing out).
    assert_eq!(
        sh("cd /tree && find . | sort"),
        ".\n./far\n./g\n./lnk\n./sub\n./sub/h\n"
    );
    assert_eq!(
        sh("readlink /tree/lnk; readlink /tree/far"),
        "g\n../../elsewhere\n"
    );
    assert_eq!(sh("cat /tree/lnk"), "g\n");
    // Owners: 0:0 by default; --chown for everything copied and every directory created.
    assert_eq!(
        sh("stat -c '%u:%g %n' /tree /tree/g /tree/lnk /tree/sub/h"),
        "0:0 /tree\n0:0 /tree/g\n0:0 /tree/lnk\n0:0 /tree/sub/h\n"
    );
    assert_eq!(
        sh("stat -c '%u:%g %n' /owned /owned/g /owned/lnk /owned/sub /owned/sub/h"),
        "1000:1000 /owned\n1000:1000 /owned/g\n1000:1000 /owned/lnk\n1000:1000 /owned/sub\n1000:1000 /owned/sub/h\n"
    );
    assert_eq!(
        sh("stat -c '%u:%g %n' /new /new/parents /new/parents/one /"),
        "1000:1000 /new\n1000:1000 /new/parents\n1000:1000 /new/parents/one\n0:0 /\n"
    );
}

#[test]
fn minignore_excludes_and_reincludes() {
    let Some(env) = setup() else { return };
    let ctx = context(
        &env,
        "ctx",
        "FROM base:1\nCOPY . /ctx/\n",
        &[
            (
                ".minignore",
                "# build output and logs\n*.log\n!keep.log\nsecret\n!secret/public.txt\nbuild/\n",
            ),
            ("a.log", "x"),
            ("keep.log", "x"),
            ("src/main.c", "x"),
            ("src/debug.log", "x"),
            ("secret/key", "x"),
            ("secret/public.txt", "x"),
            ("build/out", "x"),
        ],
    );
    build(&env, "ign:1", &ctx);
    assert_eq!(
        mrun_ok(&env, &["ign:1", "sh", "-c", "cd /ctx && find . | sort"]),
        // Patterns are anchored at the context's root, as in .dockerignore: `*.log` does not
        // reach src/debug.log.
        ".\n./.minignore\n./Minifile\n./keep.log\n./secret\n./secret/public.txt\n./src\n./src/debug.log\n./src/main.c\n"
    );
    // Naming an excluded file is an error; editing one is not a change.
    fs::write(ctx.join("build/out"), "changed").unwrap();
    let out = build(&env, "ign:1", &ctx);
    assert_eq!(cached_lines(&out), ["[2/2] CACHED COPY . /ctx/"], "{out}");
    write_minifile(&ctx, "FROM base:1\nCOPY a.log /\n");
    let o = mbuild(&env, &["-t", "ign:2", ctx.to_str().unwrap()]);
    assert_one_line_error(
        &o,
        "Minifile:2: COPY a.log /: a.log: excluded by .minignore",
    );
}

#[test]
fn add_unpacks_tar_gzip_and_xz_archives_and_copy_does_not() {
    let Some(env) = setup() else { return };
    if skip_unless(
        have("xz"),
        "xz missing (scripts/install-deps installs xz-utils)",
    ) {
        return;
    }
    let ctx = context(&env, "ctx", "", &[("tree/top/inside.txt", "inside\n")]);
    for (name, flag) in [("a.tar", "-cf"), ("a.tar.gz", "-czf"), ("a.tar.xz", "-cJf")] {
        let o = Command::new("tar")
            .arg(flag)
            .arg(ctx.join(name))
            .arg("-C")
            .arg(ctx.join("tree"))
            .arg("top")
            .output()
            .unwrap();
        assert!(o.status.success(), "tar {flag}: {}", text(&o.stderr));
    }
    write_minifile(
        &ctx,
        "FROM base:1
ADD a.tar /t1/
ADD a.tar.gz /t2
ADD a.tar.xz /t3/
COPY a.tar /t4/
",
    );
    build(&env, "arch:1", &ctx);
    assert_eq!(
        mrun_ok(
            &env,
            &[
                "arch:1",
                "sh",
                "-c",
                "cat /t1/top/inside.txt /t2/top/inside.txt /t3/top/inside.txt; ls /t4"
            ]
        ),
        "inside\ninside\ninside\na.tar\n"
    );
}

/// A one-file HTTP server on 127.0.0.1 for ADD of a URL: answers GET /file.txt with `body`
/// and anything else with 404, until dropped (or after a minute, whichever comes first).
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(body: &'static str) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && Instant::now() < until {
                let (mut conn, _) = match listener.accept() {
                    Ok(c) => c,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, body) = if req.starts_with(b"GET /file.txt ") {
                    ("200 OK", body)
                } else {
                    ("404 Not Found", "not found\n")
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
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

#[test]
fn add_downloads_a_url() {
    let Some(env) = setup() else { return };
    let server = Server::start("served over http\n");
    let ctx = context(
        &env,
        "ctx",
        &format!(
            "FROM base:1\nADD {} /downloads/\nADD {} /named\n",
            server.url("file.txt"),
            server.url("file.txt")
        ),
        &[],
    );
    build(&env, "url:1", &ctx);
    assert_eq!(
        mrun_ok(
            &env,
            &[
                "url:1",
                "sh",
                "-c",
                "cat /downloads/file.txt /named; stat -c '%a %u:%g' /named"
            ]
        ),
        "served over http\nserved over http\n600 0:0\n"
    );

    let missing = server.url("nosuch");
    write_minifile(&ctx, &format!("FROM base:1\nADD {missing} /x\n"));
    let o = mbuild(&env, &["-t", "url:2", ctx.to_str().unwrap()]);
    let line = assert_one_line_error(&o, "404");
    assert!(
        line.contains(&format!("Minifile:2: ADD {missing} /x: ")),
        "{line}"
    );
    assert_store_clean(&env, "a failed download");
}

#[test]
fn destinations_resolve_inside_the_image_through_its_symlinks() {
    let Some(env) = setup() else { return };
    let name = unique("dest");
    let ctx = context(&env, "ctx", "", &[("f", "payload\n")]);
    write_minifile(
        &ctx,
        &format!(
            "FROM base:1
RUN ln -s /etc /link && ln -s /../../tmp /abs && ln -s ../../../etc /up
COPY f /link/{name}
COPY f /abs/{name}
COPY f /up/{name}.up
"
        ),
    );
    build(&env, "dest:1", &ctx);
    let script =
        format!("cat /etc/{name} /tmp/{name} /etc/{name}.up; readlink /link; readlink /abs");
    assert_eq!(
        mrun_ok(&env, &["dest:1", "sh", "-c", &script]),
        "payload\npayload\npayload\n/etc\n/../../tmp\n"
    );
    // The host's own /tmp and /etc never saw the file.
    for p in [
        format!("/tmp/{name}"),
        format!("/etc/{name}"),
        format!("/etc/{name}.up"),
    ] {
        assert!(!Path::new(&p).exists(), "{p} was written on the host");
    }
}

// ---------------------------------------------------------------------------------------
// Config, ARG and substitution

#[test]
fn config_instructions_land_in_the_image_config_and_history() {
    let Some(env) = setup() else { return };
    let ctx = context(
        &env,
        "ctx",
        r#"ARG BASE=base:1
FROM $BASE
ARG V=defv
ARG W
ENV E1=${V} E2=${W:-wdef} E3=${NOPE:-fallback} E4=${V:+alt}
WORKDIR /w/$V
COPY f ${V}.txt
RUN X=inner; echo "shell sees $X, HOME=$HOME, V=$V, W=$W" > /run.txt
USER 1000:1000
LABEL org.example.name="some app" plain=yes
EXPOSE 80 443/udp
VOLUME /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c", "echo \"$(id -u):$(id -g) $(pwd) $E1 $0\""]
CMD ["from-cmd"]
"#,
        &[("f", "f\n")],
    );
    let out = mbuild_ok(
        &env,
        &[
            "--build-arg",
            "W=given",
            "-t",
            "cfg:1",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.contains("[1/14] FROM base:1"), "{out}");

    let cfg = inspect(&env, "cfg:1")["Config"]["config"].clone();
    let env_list: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(env_list, ["E1=defv", "E2=given", "E3=fallback", "E4=alt"]);
    assert_eq!(cfg["WorkingDir"], "/w/defv");
    assert_eq!(cfg["User"], "1000:1000");
    assert_eq!(
        cfg["Labels"],
        serde_json::json!({"org.example.name": "some app", "plain": "yes"})
    );
    assert_eq!(
        cfg["ExposedPorts"],
        serde_json::json!({"80/tcp": {}, "443/udp": {}})
    );
    assert_eq!(cfg["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(cfg["StopSignal"], "SIGTERM");
    assert_eq!(
        cfg["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c", "echo \"$(id -u):$(id -g) $(pwd) $E1 $0\""])
    );
    assert_eq!(cfg["Cmd"], serde_json::json!(["from-cmd"]));

    // One history entry per instruction, in its canonical form (after substitution, but
    // RUN as written: the shell expands it).
    let h = created_by(&env, "cfg:1");
    assert_eq!(
        h[1..],
        [
            "ARG V=defv",
            "ARG W=given",
            "ENV E1=defv E2=given E3=fallback E4=alt",
            "WORKDIR /w/defv",
            "COPY f /w/defv/defv.txt",
            r#"RUN /bin/sh -c X=inner; echo "shell sees $X, HOME=$HOME, V=$V, W=$W" > /run.txt"#,
            "USER 1000:1000",
            "LABEL org.example.name=some app plain=yes",
            "EXPOSE 80/tcp 443/udp",
            r#"VOLUME ["/data"]"#,
            "STOPSIGNAL SIGTERM",
            r#"ENTRYPOINT ["/bin/sh","-c","echo \"$(id -u):$(id -g) $(pwd) $E1 $0\""]"#,
            r#"CMD ["from-cmd"]"#,
        ]
    );
    assert_eq!(h[0], "mbuild import");
    let table = mbuild_ok(&env, &["history", "cfg:1"]);
    assert_eq!(table.lines().count(), 1 + h.len(), "{table}");

    // RUN saw the build args in its environment, and its own shell did the expanding.
    assert_eq!(
        mrun_ok(
            &env,
            &[
                "--entrypoint",
                "cat",
                "cfg:1",
                "/run.txt",
                "/w/defv/defv.txt"
            ]
        ),
        "shell sees inner, HOME=/root, V=defv, W=given\nf\n"
    );
    // ENTRYPOINT + CMD, as USER, in WORKDIR, with ENV.
    assert_eq!(
        mrun_ok(&env, &["cfg:1"]),
        "1000:1000 /w/defv defv from-cmd\n"
    );

    // Without --build-arg, W has no value and the default applies.
    let out = mbuild_ok(&env, &["-t", "cfg:2", ctx.to_str().unwrap()]);
    assert!(
        out.contains("[4/14] ENV E1=defv E2=wdef E3=fallback E4=alt\n"),
        "{out}"
    );
    assert!(out.contains("[3/14] ARG W\n"), "{out}");
    // A new build arg value is a new RUN environment: the RUN is not taken from the cache.
    assert!(out.contains("[7/14] RUN "), "{out}");
    assert_eq!(
        mrun_ok(&env, &["--entrypoint", "cat", "cfg:2", "/run.txt"]),
        "shell sees inner, HOME=/root, V=defv, W=\n"
    );
}

// ---------------------------------------------------------------------------------------
// Multi-stage

#[test]
fn multi_stage_copies_from_stages_and_images() {
    let Some(env) = setup() else { return };
    let ctx = context(
        &env,
        "ctx",
        "FROM base:1 AS Build
RUN mkdir /out && echo a > /out/a && echo gone > /out/gone && ln -s a /out/link
RUN echo b > /out/b && rm /out/gone

FROM scratch
COPY --from=build /out/ /o/
COPY --from=base:1 /bin/busybox /bin/busybox
COPY --from=0 /etc/passwd /etc/passwd
ENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox ls /o; /bin/busybox readlink /o/link; /bin/busybox cat /o/a /o/b /etc/passwd\"]
",
        &[],
    );
    build(&env, "ms:1", &ctx);
    // The stage's directory as its layers together show it: both RUNs' files, not the one
    // the second RUN deleted.
    assert_eq!(
        mrun_ok(&env, &["ms:1"]),
        "a\nb\nlink\na\na\nb\nroot:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
    );
    let img = inspect(&env, "ms:1");
    assert_eq!(img["Manifest"]["layers"].as_array().unwrap().len(), 3);

    // A change in a lower layer of the stage reaches the copy (no stale cache hit).
    let minifile = fs::read_to_string(ctx.join("Minifile")).unwrap();
    write_minifile(
        &ctx,
        &minifile.replace("echo a > /out/a", "echo A > /out/a"),
    );
    let out = build(&env, "ms:1", &ctx);
    assert!(out.contains("[5/8] COPY --from=build /out/ /o/\n"), "{out}");
    assert!(mrun_ok(&env, &["ms:1"]).starts_with("a\nb\nlink\na\nA\nb\n"));

    // An image the store lacks is pulled (here from Docker Hub, not counted on).
    write_minifile(&ctx, "FROM scratch\nCOPY --from=nosuch:2 /x /x\n");
    let o = mbuild(&env, &["-t", "ms:2", ctx.to_str().unwrap()]);
    assert_one_line_error(
        &o,
        "Minifile:2: COPY --from=nosuch:2 /x /x: --from=nosuch:2: pull docker.io/library/nosuch:2: ",
    );
}

// ---------------------------------------------------------------------------------------
// Reproducible builds

#[test]
fn same_minifile_and_context_give_the_same_digest_in_two_stores() {
    if skip_unless(is_root(), "builds need root")
        || skip_unless(Path::new(BUSYBOX).exists(), "/bin/busybox missing")
    {
        return;
    }
    let minifile = r#"FROM scratch
ADD busybox /bin/busybox
ADD data /data/
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /out && /bin/busybox echo deterministic > /out/f"]
ENV A=b
ENTRYPOINT ["/bin/busybox", "cat", "/out/f", "/data/d.txt"]
"#;
    let digest = |env: &Env, ctx: &Path| -> String {
        let o = mbuild_env(
            env,
            &[("SOURCE_DATE_EPOCH", "1700000000")],
            &["-q", "-t", "repro:1", ctx.to_str().unwrap()],
            TIMEOUT,
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
        inspect(env, "repro:1")["Digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Two stores, two copies of the context made at different times.
    let (a, b) = (Env::new(), Env::new());
    let ctx_a = context(&a, "ctx", minifile, &[("data/d.txt", "data\n")]);
    fs::copy(BUSYBOX, ctx_a.join("busybox")).unwrap();
    thread::sleep(Duration::from_millis(1100));
    let ctx_b = context(&b, "ctx", minifile, &[("data/d.txt", "data\n")]);
    fs::copy(BUSYBOX, ctx_b.join("busybox")).unwrap();
    let (da, db) = (digest(&a, &ctx_a), digest(&b, &ctx_b));
    assert!(da.starts_with("sha256:"), "{da}");
    assert_eq!(da, db);
    assert_eq!(mrun_ok(&a, &["repro:1"]), "deterministic\ndata\n");

    // Different bytes, different digest.
    fs::write(ctx_b.join("data/d.txt"), "other\n").unwrap();
    assert_ne!(digest(&b, &ctx_b), da);
}

// ---------------------------------------------------------------------------------------
// Errors and -q

#[test]
fn minifile_and_base_errors_are_one_line() {
    let Some(env) = setup() else { return };
    let ctx = context(&env, "ctx", "FROM base:1\nFOO bar\n", &[]);
    let file = ctx.join("Minifile");
    let file = file.to_str().unwrap();
    let o = mbuild(&env, &["-t", "e:1", ctx.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let line = assert_one_line_error(&o, "unknown instruction: FOO");
    assert!(line.starts_with(&format!("mbuild: {file}:2:1: ")), "{line}");
    assert!(
        text(&o.stdout).is_empty(),
        "parse errors come before any step"
    );

    let empty = env.path("empty");
    fs::create_dir(&empty).unwrap();
    let o = mbuild(&env, &["-t", "e:1", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        assert_one_line_error(&o, "Minifile"),
        format!(
            "mbuild: {}: read: no such file or directory",
            empty.join("Minifile").display()
        )
    );

    // An image the store lacks is pulled, as docker does; from Docker Hub, which this
    // test does not count on reaching: the one line names what was tried.
    write_minifile(&ctx, "FROM nosuch:1\n");
    let o = mbuild(&env, &["-t", "e:1", ctx.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(
        &o,
        &format!("mbuild: {file}:1: FROM nosuch:1: pull docker.io/library/nosuch:1: "),
    );
    assert_store_clean(&env, "refused builds");
}

#[test]
fn quiet_prints_only_the_image_id() {
    let Some(env) = setup() else { return };
    let ctx = context(
        &env,
        "ctx",
        "FROM base:1\nRUN echo noise && echo more noise >&2\nCOPY f /f\n",
        &[("f", "x")],
    );
    let o = mbuild(&env, &["-q", "-t", "q:1", ctx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let id = inspect(&env, "q:1")["Id"].as_str().unwrap().to_string();
    assert_eq!(text(&o.stdout), format!("{id}\n"));
    assert_eq!(text(&o.stderr), "");

    // A failure still explains itself: the step's output, then the error.
    write_minifile(&ctx, "FROM base:1\nRUN echo why it failed >&2; exit 3\n");
    let o = mbuild(&env, &["-q", "-t", "q:2", ctx.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "");
    assert_eq!(
        text(&o.stderr),
        "why it failed\nmbuild: step 2/2 RUN /bin/sh -c echo why it failed >&2; exit 3: exit code 3\n"
    );
}

#[test]
fn a_fully_cached_rebuild_is_the_same_image_even_without_source_date_epoch() {
    let Some(env) = setup() else { return };
    let ctx = context(
        &env,
        "ctx",
        "FROM base:1\nENV A=1\nADD a.txt /a.txt\nRUN echo ran\nLABEL x=y\n",
        &[("a.txt", "a\n")],
    );
    let go = |extra: &[&str]| {
        let mut args = vec!["-t", "same:1"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        let o = mbuild_env(&env, &[], &args, TIMEOUT);
        assert!(o.status.success(), "{}", text(&o.stderr));
        built_id(&text(&o.stdout)).to_string()
    };
    let first = go(&[]);
    // History times have a resolution of one second: let the clock move on.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let blobs = std::fs::read_dir(env.root.join("oci/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(go(&[]), first, "a cached rebuild made a new image");
    assert_eq!(
        std::fs::read_dir(env.root.join("oci/blobs/sha256"))
            .unwrap()
            .count(),
        blobs,
        "a cached rebuild wrote new blobs"
    );
    assert_ne!(go(&["--no-cache"]), first, "--no-cache rebuilt nothing new");
}
