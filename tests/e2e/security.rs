//! Escapes, each attempted for real from inside a container or a build — by the probe's
//! attack subcommands (tests/probe/probe.rs) or busybox — against a host path the test made,
//! which is compared (bytes, inode, mtime) before and after: the double-chroot escape, a fake
//! /proc in the image (CVE-2019-16884), volume destinations symlinked out of the root, also
//! raced (CVE-2021-30465), `-w /proc/self/fd/N` (CVE-2024-21626), overwriting the host's mrun
//! through /proc/PID/exe (CVE-2019-5736), reading a host disk through a device node, ADD/COPY
//! through symlinks made by RUN (also raced) or by an earlier source, a context symlink to
//! /etc/shadow, and `--chown` with a hostile /etc/passwd. Where it is safe, a control shows
//! the same attack working where nothing stops it, so a pass means the defence held.

mod build_network;
mod cgroup_view;
mod devices;
mod ids;
mod ipv6;
mod network_lock;
mod rro;
mod seccomp;
mod store_owner;
mod tty;

use crate::common::*;
use crate::run::{code, image_tree, is_root_and_busybox, lines, mountinfo, run_cmd, Running};
use crate::run::{IMG, TIMEOUT};
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// busybox applets the attacks use beyond those of the test image.
const MORE_APPLETS: [&str; 7] = ["ln", "rm", "mv", "chmod", "printf", "mkfifo", "mknod"];

/// The test image's tree (`run::image_tree`) with the applets above, in `env.path(name)`.
fn tree(env: &Env, name: &str) -> PathBuf {
    let dir = env.path(name);
    image_tree(&dir);
    for a in MORE_APPLETS {
        symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    dir
}

fn import(env: &Env, dir: &Path, tag: &str) {
    env.ok(["import", dir.to_str().unwrap(), "-t", tag]);
}

/// A fresh store with the test image as `probe:1`, or None (with `skipped:`).
fn setup() -> Option<Env> {
    if !is_root_and_busybox() {
        return None;
    }
    let env = Env::new();
    let t = tree(&env, "image");
    import(&env, &t, IMG);
    Some(env)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `BIN --root STORE` (BIN: the test's mrun, or a copy of it).
fn mrun_with(env: &Env, bin: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--root").arg(&env.root);
    c.env_remove("MINIBOX_ROOT").stdin(Stdio::null());
    c
}

/// `mrun --rm args...`, bounded by TIMEOUT.
fn mrun(env: &Env, args: &[&str]) -> Output {
    let mut c = mrun_with(env, Path::new(MRUN));
    c.arg("--rm").args(args);
    run_cmd(c)
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

/// mbuild TAG CONTEXT (the Minifile in it), bounded by `limit`.
fn build(env: &Env, tag: &str, ctx: &Path, limit: Duration) -> Output {
    Running::spawn(env.mbuild_cmd(["-t", tag, s(ctx)])).output(limit)
}

/// A build context `env.path(name)` with a Minifile and files.
fn context(env: &Env, name: &str, minifile: &str, files: &[(&str, &str)]) -> PathBuf {
    let ctx = env.path(name);
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Minifile"), minifile).unwrap();
    for (p, body) in files {
        let p = ctx.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }
    ctx
}

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

/// A file on the host only, holding a unique text: whatever reaches the host's root can read
/// it at the same absolute path. Returns (path, text).
fn canary(env: &Env) -> (String, String) {
    let text = unique("canary");
    let p = env.path("canary");
    fs::write(&p, &text).unwrap();
    (s(&p).to_string(), text)
}

/// Everything an attack could change about a host path: for it and each entry below it
/// (nothing followed), type, mode, owner, inode, size, mtime and content digest or link
/// target.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot(Vec<String>);

impl Snapshot {
    fn of(p: &Path) -> Snapshot {
        fn walk(p: &Path, out: &mut Vec<String>) {
            let m = match fs::symlink_metadata(p) {
                Ok(m) => m,
                Err(e) => return out.push(format!("{}: {e}", p.display())),
            };
            let ft = m.file_type();
            let what = if ft.is_file() {
                format!("file {}", layers::digest::sha256(&fs::read(p).unwrap()))
            } else if ft.is_symlink() {
                format!("link {}", fs::read_link(p).unwrap().display())
            } else if ft.is_dir() {
                "dir".to_string()
            } else {
                format!("special rdev {:#x}", m.rdev())
            };
            out.push(format!(
                "{} {what} mode {:o} {}:{} ino {} size {} mtime {}.{:09}",
                p.display(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec()
            ));
            if ft.is_dir() {
                let mut names: Vec<_> = fs::read_dir(p)
                    .unwrap()
                    .flatten()
                    .map(|e| e.file_name())
                    .collect();
                names.sort();
                for n in names {
                    walk(&p.join(n), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(p, &mut out);
        Snapshot(out)
    }
}

/// A directory on the host that attacks aim at, with a file in it; snapshot it with
/// `Snapshot::of`.
fn host_target(env: &Env, name: &str) -> PathBuf {
    let t = env.path(name);
    fs::create_dir_all(&t).unwrap();
    fs::write(t.join("sentinel"), format!("{name} on the host\n")).unwrap();
    t
}

/// Mounts this (the host's) mount namespace has at or below `p`.
fn host_mounts_at(p: &Path) -> Vec<PathBuf> {
    mountinfo()
        .into_iter()
        .map(|m| m.1)
        .filter(|m| m.starts_with(p))
        .collect()
}

/// A detached container `mrun -d --name NAME`, removed (`rm -f`) when dropped, whatever
/// happened.
struct Detached<'e> {
    env: &'e Env,
    bin: PathBuf,
    name: String,
}

impl<'e> Detached<'e> {
    /// Started by `bin`, whose forked copy is then the container's monitor.
    fn start(env: &'e Env, bin: &Path, name: &str, args: &[&str]) -> Detached<'e> {
        let d = Detached {
            env,
            bin: bin.to_path_buf(),
            name: name.to_string(),
        };
        let mut c = mrun_with(env, bin);
        c.args(["-d", "--name", name]).args(args);
        ok(&format!("mrun -d {args:?}"), &run_cmd(c));
        d
    }

    /// `bin exec OPTS NAME CMD...`
    fn exec(&self, bin: &Path, opts: &[&str], cmd: &[&str]) -> Output {
        let mut c = mrun_with(self.env, bin);
        c.arg("exec").args(opts).arg(&self.name).args(cmd);
        run_cmd(c)
    }

    /// `mrun SUB NAME` (wait, logs, ...) with the binary that started it.
    fn sub(&self, sub: &str) -> Output {
        let mut c = mrun_with(self.env, &self.bin);
        c.arg(sub).arg(&self.name);
        run_cmd(c)
    }
}

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        let mut c = mrun_with(self.env, &self.bin);
        c.args(["rm", "-f", &self.name]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let _ = c.status();
    }
}

/// An expected refusal by mrun itself: exit 125 and one line naming `needle`.
fn assert_refused(o: &Output, needle: &str, what: &str) {
    assert_eq!(
        code(o),
        125,
        "{what}: stdout {:?} stderr {:?}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let line = assert_one_line_error(o, needle);
    assert!(line.starts_with("mrun: "), "{what}: {line}");
}

// ---------------------------------------------------------------------------------------
// 1. The double chroot

fn assert_stayed_inside(out: &str, canary_text: &str, how: &str) {
    assert!(
        !out.contains(canary_text),
        "{how}: the container read the host's canary: {out}"
    );
    assert!(
        lines(out).contains(&"canary absent"),
        "{how}: no verdict: {out}"
    );
    let ls = out
        .lines()
        .find_map(|l| l.strip_prefix("ls "))
        .unwrap_or_else(|| panic!("{how}: no listing: {out}"));
    assert!(
        ls.split(' ').any(|n| n == "probe"),
        "{how}: the climb ended outside the container's root: {out}"
    );
}

#[test]
fn the_double_chroot_escape_does_not_reach_the_host_root() {
    let Some(env) = setup() else { return };
    let (canary, secret) = canary(&env);

    // Control: in a plain chroot(2) of the same tree the same attack gets out.
    if !skip_unless(have("chroot"), "chroot missing (coreutils)") {
        let mut c = Command::new("chroot");
        c.arg(env.path("image"))
            .args(["/probe", "chroot-escape", &canary])
            .stdin(Stdio::null());
        let o = run_cmd(c);
        assert!(
            text(&o.stdout).contains(&format!("canary found: {secret}")),
            "the attack does not even escape a plain chroot: {} {}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }

    // pivot_root with the old root detached: above the container's root is nothing.
    let out = ok(
        "chroot-escape in mrun run",
        &mrun(&env, &[IMG, "/probe", "chroot-escape", &canary]),
    );
    assert!(lines(&out).contains(&"chrooted"), "{out}");
    assert_stayed_inside(&out, &secret, "mrun run");

    // mrun exec enters with chroot(2), on top of the container's pivoted root.
    let c = Detached::start(&env, Path::new(MRUN), "box", &[IMG, "sleep", "1000"]);
    let out = ok(
        "chroot-escape in mrun exec",
        &c.exec(Path::new(MRUN), &[], &["/probe", "chroot-escape", &canary]),
    );
    assert!(lines(&out).contains(&"chrooted"), "{out}");
    assert_stayed_inside(&out, &secret, "mrun exec");
}

// ---------------------------------------------------------------------------------------
// 2. A fake /proc (CVE-2019-16884)

/// `/probe cat /proc/self/status` as PID 1: the kernel's, not the image's.
fn assert_real_proc(status: &str, what: &str) {
    let l = lines(status);
    assert!(
        l.contains(&"Name:\tprobe") && l.contains(&"Pid:\t1") && !status.contains("fake"),
        "{what}: /proc/self/status is not the kernel's: {status}"
    );
}

#[test]
fn a_fake_proc_in_the_image_gets_the_real_proc_inside_the_root_or_is_refused() {
    let Some(env) = setup() else { return };
    let host = host_target(&env, "hostproc");
    let before = Snapshot::of(&host);
    let fake = |t: &Path| {
        let d = t.join("tmp/fakeproc/self");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("status"), "Name:\tfake\nPid:\t4242\n").unwrap();
    };
    let up = format!("../../../../../../../..{}", host.display());
    for (i, what) in [
        "a symlink to /tmp/fakeproc",
        "a symlink to a host directory",
        "a relative symlink climbing to a host directory",
        "a directory of fake entries",
        "a regular file",
    ]
    .into_iter()
    .enumerate()
    {
        let t = tree(&env, &format!("proc{i}"));
        let proc = t.join("proc");
        match i {
            0 => {
                fake(&t);
                symlink("/tmp/fakeproc", proc).unwrap();
            }
            1 => symlink(&host, proc).unwrap(),
            2 => symlink(&up, proc).unwrap(),
            3 => {
                fake(&t);
                fs::rename(t.join("tmp/fakeproc"), proc).unwrap();
            }
            _ => fs::write(proc, "Pid:\t4242\n").unwrap(),
        }
        let tag = format!("proc{i}:1");
        import(&env, &t, &tag);
        let o = mrun(&env, &[&tag, "/probe", "cat", "/proc/self/status"]);
        if o.status.success() {
            assert_real_proc(&text(&o.stdout), what);
            // Docker's read-only /proc paths hold wherever proc was mounted.
            let o = mrun(
                &env,
                &[&tag, "/probe", "write", "/proc/sys/kernel/domainname", "x"],
            );
            assert!(
                text(&o.stderr).contains("Read-only file system"),
                "{what}: /proc/sys is writable: {}",
                text(&o.stderr)
            );
            eprintln!("/proc as {what}: the real proc, inside the root");
        } else {
            assert_refused(&o, "mount proc on /proc", what);
            eprintln!("/proc as {what}: refused: {}", text(&o.stderr).trim());
        }
        assert_eq!(Snapshot::of(&host), before, "/proc as {what}");
        assert_eq!(host_mounts_at(&host), Vec::<PathBuf>::new(), "{what}");
    }
}

/// The mounts after proc resolve their own destinations: an image whose /dev or /sys is a
/// symlink to /proc must not get mrun's /dev tmpfs or sysfs put over the container's proc.
#[test]
fn a_dev_or_sys_symlink_onto_proc_does_not_hide_the_real_proc() {
    let Some(env) = setup() else { return };
    for dir in ["dev", "sys"] {
        let t = tree(&env, &format!("{dir}-proc"));
        symlink("/proc", t.join(dir)).unwrap();
        let tag = format!("{dir}-proc:1");
        import(&env, &t, &tag);
        let what = format!("/{dir} -> /proc");
        let o = mrun(&env, &[&tag, "/probe", "cat", "/proc/self/status"]);
        if code(&o) == 125 {
            assert_refused(&o, &format!("/{dir}"), &what);
        } else {
            assert!(
                o.status.success(),
                "{what}: the container has no real /proc: {}{}",
                text(&o.stdout),
                text(&o.stderr)
            );
            assert_real_proc(&text(&o.stdout), &what);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. Volume destinations (CVE-2021-30465)

#[test]
fn a_volume_destination_symlinked_out_of_the_root_never_mounts_on_the_host() {
    let Some(env) = setup() else { return };
    let target = host_target(&env, "target");
    let before = Snapshot::of(&target);
    let vol = env.path("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("v"), "the volume\n").unwrap();
    let up = format!("../../../../../../../..{}", target.display());

    // Symlinks naming the host path, which the image does not have: mounted inside the
    // root, or refused.
    let t = tree(&env, "dangling");
    symlink(&target, t.join("data")).unwrap();
    symlink(&up, t.join("up")).unwrap();
    import(&env, &t, "dangling:1");
    for dest in ["/data", "/up"] {
        let v = format!("{}:{dest}", vol.display());
        let o = mrun(
            &env,
            &[
                "-v",
                &v,
                "dangling:1",
                "/probe",
                "cat",
                &format!("{dest}/v"),
            ],
        );
        if o.status.success() {
            assert_eq!(text(&o.stdout), "the volume\n", "{dest}");
        } else {
            assert_refused(&o, &format!("on {dest}"), dest);
        }
        assert_eq!(Snapshot::of(&target), before, "-v {v}");
    }

    // The image has that path too: the volume lands on the image's directory, while the
    // container runs the host's stays as it was, with nothing mounted on it.
    let t = tree(&env, "present");
    let inside = t.join(target.strip_prefix("/").unwrap());
    fs::create_dir_all(&inside).unwrap();
    fs::write(inside.join("in-image"), "").unwrap();
    symlink(&target, t.join("data")).unwrap();
    import(&env, &t, "present:1");
    let v = format!("{}:/data", vol.display());
    let c = Detached::start(
        &env,
        Path::new(MRUN),
        "vol",
        &["-v", &v, "present:1", "sleep", "1000"],
    );
    let mrun_bin = Path::new(MRUN);
    assert_eq!(
        ok(
            "read the volume",
            &c.exec(mrun_bin, &[], &["/probe", "cat", "/data/v"])
        ),
        "the volume\n"
    );
    ok(
        "write the volume",
        &c.exec(
            mrun_bin,
            &[],
            &["/probe", "write", "/data/w", "from inside"],
        ),
    );
    assert_eq!(fs::read_to_string(vol.join("w")).unwrap(), "from inside");
    let ls = ok(
        "list the image's directory",
        &c.exec(mrun_bin, &[], &["ls", s(&target)]),
    );
    assert_eq!(
        lines(&ls),
        ["v", "w"],
        "the volume is on the image's {target:?}"
    );
    // The container's own mount table has it there, inside its root.
    let mounts = ok(
        "the container's mounts",
        &c.exec(mrun_bin, &[], &["/probe", "cat", "/proc/self/mountinfo"]),
    );
    assert!(
        mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(s(&target))),
        "no mount on {target:?} in the container: {mounts}"
    );
    assert_eq!(host_mounts_at(&target), Vec::<PathBuf>::new());
    assert_eq!(Snapshot::of(&target), before);
    drop(c);
    assert_eq!(Snapshot::of(&target), before);
    assert_eq!(host_mounts_at(&target), Vec::<PathBuf>::new());
}

/// The CVE as attacked: a container swaps a directory in a shared volume for a symlink to a
/// host path, while containers mounting something on that directory start.
#[test]
fn a_volume_destination_raced_between_a_directory_and_a_symlink_stays_in_the_root() {
    let Some(env) = setup() else { return };
    let target = host_target(&env, "target");
    let before = Snapshot::of(&target);
    let shared = env.path("shared");
    let src = env.path("src");
    fs::create_dir_all(&shared).unwrap();
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("s"), "the source\n").unwrap();

    let sh = format!("{}:/shared", shared.display());
    let mut c = crate::run::mrun_cmd(&env);
    c.args(["--rm", "-v", &sh, IMG, "/probe", "swap", "/shared/sub"])
        .arg(&target)
        .arg("60");
    let racer = Running::spawn(c);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fs::symlink_metadata(shared.join("sub.swap")).is_err() {
        assert!(Instant::now() < deadline, "the racer never started");
        std::thread::sleep(Duration::from_millis(20));
    }

    let onto = format!("{}:/shared/sub", src.display());
    let script = format!("cat /shared/sub/s {}/s 2>/dev/null; true", target.display());
    let (mut mounted, mut refused) = (0, 0);
    for _ in 0..20 {
        let o = mrun(&env, &["-v", &sh, "-v", &onto, IMG, "sh", "-c", &script]);
        if o.status.success() {
            mounted += 1;
        } else {
            assert_refused(&o, "on /shared/sub", "a raced destination");
            refused += 1;
        }
        assert_eq!(Snapshot::of(&target), before);
        assert_eq!(host_mounts_at(&target), Vec::<PathBuf>::new());
    }
    fs::write(shared.join("sub.stop"), "").unwrap();
    let out = ok("the racer", &racer.output(TIMEOUT));
    let swaps: u64 = out
        .trim()
        .strip_prefix("swapped ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("racer: {out:?}"));
    eprintln!(
        "{mounted} containers started, {refused} refused, while the racer swapped {swaps} times"
    );
    assert!(swaps > 0);
    assert_eq!(Snapshot::of(&target), before);
}

// ---------------------------------------------------------------------------------------
// 4. -w /proc/self/fd/N (CVE-2024-21626)

/// The probe's `escape` report from a container started in `-w WD`: either mrun refused the
/// directory (one line naming it) or the climb stayed in the container. Returns whether it
/// was refused.
fn check_workdir(o: &Output, wd: &str, secret: &str, how: &str) -> bool {
    let out = text(&o.stdout);
    let start = out
        .lines()
        .find_map(|l| l.strip_prefix("start "))
        .unwrap_or("");
    assert!(
        !out.contains(secret),
        "{how} -w {wd}: the container's cwd started on the host at {start:?} and reached the host's root: {out}"
    );
    if !o.status.success() {
        let line = assert_one_line_error(o, wd);
        assert!(line.starts_with("mrun: "), "{how} -w {wd}: {line}");
        return true;
    }
    assert_stayed_inside(&out, secret, &format!("{how} -w {wd} (from {start:?})"));
    false
}

#[test]
fn a_workdir_through_proc_self_fd_never_lands_on_the_host() {
    let Some(env) = setup() else { return };
    let (canary, secret) = canary(&env);
    let bin = Path::new(MRUN);
    let c = Detached::start(&env, bin, "box", &[IMG, "sleep", "1000"]);
    let mut dirs: Vec<String> = (3..40).map(|n| format!("/proc/self/fd/{n}")).collect();
    dirs.extend(
        [
            "/proc/self/cwd",
            "/proc/self/root",
            "/proc/1/cwd",
            "/proc/thread-self/cwd",
        ]
        .map(String::from),
    );
    let mut refused = 0;
    for wd in &dirs {
        let o = mrun(&env, &["-w", wd, IMG, "/probe", "escape", &canary]);
        refused += check_workdir(&o, wd, &secret, "mrun run") as u32;
        let o = c.exec(bin, &["-w", wd], &["/probe", "escape", &canary]);
        refused += check_workdir(&o, wd, &secret, "mrun exec") as u32;
    }
    eprintln!("{refused} of {} refused", 2 * dirs.len());
}

// ---------------------------------------------------------------------------------------
// 5. /proc/PID/exe (CVE-2019-5736)

/// The files the dynamic loader needs to run `bin` (none for a static one), from ldd.
fn loader_files(bin: &Path) -> Vec<PathBuf> {
    let o = Command::new("ldd").arg(bin).output().unwrap();
    text(&o.stdout)
        .lines()
        .filter_map(|l| {
            let p = match l.split_once("=>") {
                Some((_, r)) => r.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            p.starts_with('/').then(|| PathBuf::from(p))
        })
        .collect()
}

/// (sha256, inode, mtime) of a file.
fn fingerprint(p: &Path) -> (String, u64, i64, i64) {
    let m = fs::metadata(p).unwrap();
    (
        layers::digest::sha256(&fs::read(p).unwrap()).to_string(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
    )
}

#[test]
fn the_container_cannot_overwrite_mrun_through_proc_pid_exe_during_exec() {
    if !is_root_and_busybox() || skip_unless(have("ldd"), "ldd missing (libc-bin)") {
        return;
    }
    let env = Env::new();
    // An image that can run the host's mrun (as an attacker's would: glibc is everywhere).
    let t = tree(&env, "image");
    for f in loader_files(Path::new(MRUN)) {
        let to = t.join(f.strip_prefix("/").unwrap());
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(&f, &to).unwrap();
    }
    import(&env, &t, IMG);
    // Copies of mrun, so that a successful attack hits nothing but them.
    let copy = |name: &str| {
        let p = env.path(name);
        fs::copy(MRUN, &p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        let f = fingerprint(&p);
        (p, f)
    };
    let (monitor_bin, monitor_before) = copy("mrun-a");
    let (other_bin, other_before) = copy("mrun-b");

    // PID 1 is the attacker. /evil makes the kernel run /proc/self/exe — mrun's binary, in the
    // process that execs it — inside the container, where it blocks on the store's lock the
    // attacker holds; the attacker opens its /proc/PID/exe, kills it, and writes through the
    // fd once nothing runs the binary any more.
    let script = "printf '#!/proc/self/exe\\n' > /evil && chmod 755 /evil && mkdir -p /var/lib/minibox && exec /probe exe-attack /var/lib/minibox/lock /stop 80";
    let c = Detached::start(&env, &monitor_bin, "target", &[IMG, "sh", "-c", script]);
    for _ in 0..3 {
        // Both through a script and directly; either way they end (killed by the attacker).
        c.exec(&monitor_bin, &[], &["/evil"]);
        c.exec(&monitor_bin, &[], &["/proc/self/exe"]);
    }
    // A second mrun binary, not the one the container's monitor runs (an upgraded mrun, or
    // a copy elsewhere on $PATH): once its `exec` has returned, nothing keeps it busy. Run
    // once only: afterwards it may be the attacker's program.
    c.exec(&other_bin, &[], &["/evil"]);
    ok(
        "exec after the attack",
        &c.exec(&monitor_bin, &[], &["true"]),
    );
    ok(
        "stop the attacker",
        &c.exec(&monitor_bin, &[], &["touch", "/stop"]),
    );
    ok("wait", &c.sub("wait"));
    let report = ok("logs", &c.sub("logs"));
    eprintln!("the attacker: {report}");
    assert!(
        report
            .lines()
            .find_map(|l| l.strip_prefix("seen "))
            .is_some_and(|s| !s.is_empty()),
        "no binary from outside the image ran in the container; the attack did not happen: {report}"
    );
    for (bin, before) in [(&monitor_bin, monitor_before), (&other_bin, other_before)] {
        let now = fingerprint(bin);
        let head: Vec<u8> = fs::read(bin).unwrap().into_iter().take(48).collect();
        assert_eq!(
            now,
            before,
            "the container overwrote the host's {} through /proc/PID/exe (CVE-2019-5736); it now starts with {:?}; attacker: {report}",
            bin.display(),
            String::from_utf8_lossy(&head)
        );
    }
}

// ---------------------------------------------------------------------------------------
// 6. Device nodes

/// A loop device over a file, detached when dropped.
struct Loop {
    dev: String,
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// Read 512 bytes through a node for `rdev` made at `at`: what the host itself can do.
fn host_reads(at: &Path, rdev: u64) -> bool {
    let c = std::ffi::CString::new(s(at)).unwrap();
    let _ = fs::remove_file(at);
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, rdev) } != 0 {
        return false;
    }
    let mut buf = [0u8; 512];
    let r = fs::File::open(at).and_then(|mut f| std::io::Read::read(&mut f, &mut buf));
    let _ = fs::remove_file(at);
    r.is_ok_and(|n| n == 512)
}

/// A block device the host can read, as (major, minor): its root disk, found through
/// /proc/self/mountinfo and /sys/dev/block, or when the host is itself kept off that (a
/// sandbox), a loop device over a file standing in for it.
fn readable_disk(env: &Env) -> Option<(u32, u32, Option<Loop>)> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(' ').nth(2))
        .and_then(|d| d.split_once(':'))
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    if let Some((ma, mi)) = root {
        let rdev = libc::makedev(ma, mi);
        if Path::new(&format!("/sys/dev/block/{ma}:{mi}")).exists()
            && host_reads(&env.path("host-node"), rdev)
        {
            return Some((ma, mi, None));
        }
        eprintln!("the host cannot read its root disk {ma}:{mi} itself: a loop device stands in");
    }
    if skip_unless(have("losetup"), "losetup missing (util-linux)") {
        return None;
    }
    let file = env.path("disk.img");
    fs::write(&file, unique("disk").repeat(300)).unwrap();
    let o = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&file)
        .output()
        .unwrap();
    if skip_unless(o.status.success(), &format!("losetup: {}", text(&o.stderr))) {
        return None;
    }
    let lo = Loop {
        dev: text(&o.stdout).trim().to_string(),
    };
    let rdev = fs::metadata(&lo.dev).unwrap().rdev();
    let (ma, mi) = (libc::major(rdev), libc::minor(rdev));
    assert!(
        host_reads(&env.path("host-node"), rdev),
        "the host cannot read its own loop device {}",
        lo.dev
    );
    Some((ma, mi, Some(lo)))
}

/// A tar header owned by 0:0, mode 0644, mtime 0 (type, size and name set by the caller).
fn tar_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// The read of the device from inside failed (the node could not be made or opened);
/// otherwise what happened, for the list of holes.
fn no_read(o: &Output, what: &str) -> Result<(), String> {
    let out = text(&o.stdout);
    let err = text(&o.stderr);
    if out.contains("read ") || o.status.success() {
        return Err(format!(
            "{what}: the container read the host's disk: {out:?}"
        ));
    }
    let refused = [
        "Permission denied",
        "Operation not permitted",
        "No such device",
    ];
    if !refused.iter().any(|r| err.contains(r)) {
        return Err(format!("{what}: not refused as expected: {out:?} {err:?}"));
    }
    Ok(())
}

#[test]
fn a_host_disk_cannot_be_read_through_a_device_node_in_a_layer_or_made_inside() {
    let Some(env) = setup() else { return };
    let Some((ma, mi, _lo)) = readable_disk(&env) else {
        return;
    };
    let (ma_s, mi_s) = (ma.to_string(), mi.to_string());
    eprintln!("the host's disk: {ma}:{mi}");
    // Every way in is tried; the holes found are listed together at the end.
    let mut holes = Vec::new();

    // Control: unconfined (--privileged), the same attack reads the disk.
    let o = mrun(
        &env,
        &[
            "--privileged",
            IMG,
            "/probe",
            "mknod-read",
            "/tmp/disk",
            &ma_s,
            &mi_s,
        ],
    );
    assert_eq!(
        ok("the control", &o),
        "mknod ok\nread 512 bytes\n",
        "the attack does not work even unconfined"
    );

    // A node shipped in an image tarball (`mbuild import`).
    let tarball = env.path("disk.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&tarball).unwrap());
        b.follow_symlinks(false);
        b.append_dir_all(".", env.path("image")).unwrap();
        let mut h = tar_header();
        h.set_entry_type(tar::EntryType::Block);
        h.set_device_major(ma).unwrap();
        h.set_device_minor(mi).unwrap();
        h.set_mode(0o666);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, "disk", std::io::empty()).unwrap();
        b.finish().unwrap();
    }
    env.ok(["import", s(&tarball), "-t", "disk:1"]);
    let o = mrun(
        &env,
        &["disk:1", "sh", "-c", "ls -l /disk && /probe read-dev /disk"],
    );
    if text(&o.stdout).starts_with('b') {
        holes.extend(no_read(&o, "a node in the image").err());
    } else {
        // Leaving device nodes out of imported layers would do too.
        assert!(
            text(&o.stderr).contains("No such file"),
            "{}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        eprintln!("the import left the device node out");
    }

    // Made with mknod (CAP_MKNOD is one of Docker's defaults) wherever the container can
    // write: its root, /dev, a --tmpfs, a volume.
    let vol = env.path("vol");
    fs::create_dir_all(&vol).unwrap();
    let v = format!("{}:/vol", vol.display());
    for at in ["/tmp/disk", "/dev/disk", "/t/disk", "/vol/disk"] {
        let o = mrun(
            &env,
            &[
                "--tmpfs",
                "/t",
                "-v",
                &v,
                IMG,
                "/probe",
                "mknod-read",
                at,
                &ma_s,
                &mi_s,
            ],
        );
        holes.extend(no_read(&o, &format!("mknod {at}")).err());
    }

    // In a build: a RUN step reading it, and a node a RUN step left in the image.
    let ctx = context(
        &env,
        "ctx-read",
        &format!("FROM {IMG}\nRUN /probe mknod-read /disk {ma} {mi}\n"),
        &[],
    );
    let o = build(&env, "read:1", &ctx, TIMEOUT);
    if o.status.code() != Some(1) || text(&o.stdout).contains("read 512") {
        holes.push(format!("a RUN step read the disk: {}", text(&o.stdout)));
    }
    let ctx = context(
        &env,
        "ctx-node",
        &format!("FROM {IMG}\nRUN mknod /disk b {ma} {mi}\n"),
        &[],
    );
    ok("build", &build(&env, "node:1", &ctx, TIMEOUT));
    let o = mrun(&env, &["node:1", "/probe", "read-dev", "/disk"]);
    holes.extend(no_read(&o, "a node from RUN").err());
    assert!(
        holes.is_empty(),
        "a container read the host's disk {ma}:{mi}:\n{}",
        holes.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 7. ADD and COPY through symlinks

#[test]
fn add_and_copy_never_write_through_a_symlink_out_of_the_image() {
    let Some(env) = setup() else { return };
    let target = host_target(&env, "target");
    let before = Snapshot::of(&target);
    let t = target.display().to_string();
    let ctx = context(
        &env,
        "ctx",
        &format!(
            "FROM {IMG}
RUN ln -s {t} /x && ln -s ../../../../../../../..{t} /y && mkdir /z && ln -s {t} /z/link
COPY payload /x/
COPY payload /y/payload2
ADD files.tar /x/
COPY payload /z/link/payload3
COPY a b /dst/
ADD links.tar b /dst2/
"
        ),
        &[("payload", "payload\n"), ("b/x/sentinel", "from b\n")],
    );
    // a/x: a symlink to the host directory, which the copy of b/x/ must not write through.
    fs::create_dir_all(ctx.join("a")).unwrap();
    symlink(&target, ctx.join("a/x")).unwrap();
    let tar_of = |name: &str, entries: &[(&str, Option<&str>)]| {
        let mut b = tar::Builder::new(fs::File::create(ctx.join(name)).unwrap());
        for (path, link) in entries {
            let mut h = tar_header();
            match link {
                Some(l) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, l).unwrap();
                }
                None => {
                    h.set_size(8);
                    h.set_cksum();
                    b.append_data(&mut h, path, &b"from tar"[..]).unwrap();
                }
            }
        }
        b.finish().unwrap();
    };
    tar_of("files.tar", &[("from-tar", None), ("sentinel", None)]);
    tar_of("links.tar", &[("x", Some(&t))]);
    ok("build", &build(&env, "copied:1", &ctx, TIMEOUT));
    assert_eq!(Snapshot::of(&target), before, "the build wrote on the host");

    // Everything landed inside the image, where the symlinks lead there.
    let script = format!(
        "cat {t}/payload {t}/payload2 {t}/from-tar {t}/sentinel {t}/payload3 /dst/x/sentinel /dst2/x/sentinel; readlink /x"
    );
    assert_eq!(
        ok("read back", &mrun(&env, &["copied:1", "sh", "-c", &script])),
        format!("payload\npayload\nfrom tarfrom tarpayload\nfrom b\nfrom b\n{t}\n")
    );

    // COPY --from a stage whose tree holds the same trap.
    let ctx = context(
        &env,
        "ctx-from",
        &format!(
            "FROM {IMG} AS src
RUN mkdir -p /s/a /s/b/x && ln -s {t} /s/a/x && echo from-stage > /s/b/x/sentinel
FROM {IMG}
COPY --from=src /s/a /s/b /dst/
"
        ),
        &[],
    );
    ok("build --from", &build(&env, "from:1", &ctx, TIMEOUT));
    assert_eq!(
        Snapshot::of(&target),
        before,
        "COPY --from wrote on the host"
    );
    assert_eq!(
        ok(
            "read back",
            &mrun(&env, &["from:1", "/probe", "cat", "/dst/x/sentinel"])
        ),
        "from-stage\n"
    );
}

/// A RUN step leaves a process swapping a directory for a symlink to a host path; the
/// next COPYs go to that directory.
#[test]
fn a_racing_process_left_by_run_cannot_turn_copy_onto_the_host() {
    let Some(env) = setup() else { return };
    let target = host_target(&env, "target");
    let before = Snapshot::of(&target);
    let t = target.display().to_string();
    let ctx = context(
        &env,
        "ctx",
        &format!(
            "FROM {IMG}
RUN mkdir /r && (/probe swap /r/d {t} 600 &) && sleep 1
COPY payload /r/d/
COPY payload /r/d.swap/
COPY payload /r/d/again
"
        ),
        &[("payload", "payload\n")],
    );
    ok("build", &build(&env, "raced:1", &ctx, TIMEOUT));
    assert_eq!(Snapshot::of(&target), before, "the build wrote on the host");
    // The racer went with its RUN step's container.
    let left: Vec<String> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("swap") && c.contains(&t))
        .collect();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "the RUN step's racer outlived it"
    );
    let out = ok(
        "read back",
        &mrun(
            &env,
            &["raced:1", "sh", "-c", "cat /r/d/payload /r/d/again"],
        ),
    );
    assert_eq!(out, "payload\npayload\n");
}

// ---------------------------------------------------------------------------------------
// 8. A context symlink to /etc/shadow

/// Every byte the store holds: each blob (decompressed when gzip) and each file in the
/// extracted layers.
fn store_contents(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                todo.push(p);
            } else if m.is_file() {
                let b = fs::read(&p).unwrap();
                let b = if b.starts_with(&[0x1f, 0x8b]) {
                    let mut plain = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::MultiGzDecoder::new(&b[..]),
                        &mut plain,
                    )
                    .unwrap();
                    plain
                } else {
                    b
                };
                out.push((p, b));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    (0..hay.len()).any(|i| hay[i] == needle[0] && hay[i..].starts_with(needle))
}

#[test]
fn a_context_symlink_to_etc_shadow_is_refused_and_no_layer_holds_its_bytes() {
    let Some(env) = setup() else { return };
    let secret = unique("secret");
    fs::write(env.path("outside"), &secret).unwrap();
    let ctx = context(&env, "ctx", "", &[("tree/ok", "ok\n")]);
    symlink("/etc/shadow", ctx.join("shadow")).unwrap();
    symlink("/etc", ctx.join("etc")).unwrap();
    symlink("../outside", ctx.join("rel")).unwrap();
    symlink(env.path("outside"), ctx.join("abs")).unwrap();
    symlink("/etc/shadow", ctx.join("tree/shadow")).unwrap();
    let file = ctx.join("Minifile").display().to_string();
    for (copy, needle) in [
        (
            "COPY shadow /s",
            "shadow: symlink shadow points outside the build context (/etc/shadow)",
        ),
        (
            "ADD shadow /s",
            "shadow: symlink shadow points outside the build context",
        ),
        (
            "COPY etc/shadow /s",
            "etc/shadow: symlink etc points outside the build context (/etc)",
        ),
        (
            "COPY rel /s",
            "rel: symlink rel points outside the build context",
        ),
        (
            "COPY abs /s",
            "abs: symlink abs points outside the build context",
        ),
    ] {
        fs::write(ctx.join("Minifile"), format!("FROM {IMG}\n{copy}\n")).unwrap();
        let o = build(&env, "leak:1", &ctx, TIMEOUT);
        assert_eq!(o.status.code(), Some(1), "{copy}: {}", text(&o.stdout));
        let line = assert_one_line_error(&o, needle);
        assert!(
            line.starts_with(&format!("mbuild: {file}:2: {copy}: ")),
            "{line}"
        );
    }
    // A symlink below a copied directory, or matched by a wildcard, is copied as the symlink
    // it is, never as the file it names on the host.
    fs::write(
        ctx.join("Minifile"),
        format!("FROM {IMG}\nCOPY tree /t/\nCOPY shad* /w/\n"),
    )
    .unwrap();
    ok("build", &build(&env, "links:1", &ctx, TIMEOUT));
    assert_eq!(
        ok(
            "read back",
            &mrun(
                &env,
                &[
                    "links:1",
                    "sh",
                    "-c",
                    "readlink /t/shadow; readlink /w/shadow"
                ]
            )
        ),
        "/etc/shadow\n/etc/shadow\n"
    );

    let shadow = fs::read("/etc/shadow").unwrap_or_default();
    for (p, bytes) in store_contents(&env.root) {
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "{} holds the file outside the context",
            p.display()
        );
        assert!(
            shadow.len() < 16 || !contains(&bytes, &shadow),
            "{} holds the host's /etc/shadow",
            p.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// 9. --chown with a hostile /etc/passwd

#[test]
fn chown_with_a_fifo_or_dev_zero_as_etc_passwd_fails_fast_and_leaves_nothing() {
    let Some(env) = setup() else { return };
    let limit = Duration::from_secs(20);
    for (i, (what, run)) in [
        ("a fifo", "rm /etc/passwd && mkfifo /etc/passwd"),
        ("a symlink to /dev/zero", "ln -sf /dev/zero /etc/passwd"),
    ]
    .iter()
    .enumerate()
    {
        let base = format!("hostile{i}:1");
        let ctx = context(
            &env,
            &format!("base{i}"),
            &format!("FROM {IMG}\nRUN {run}\n"),
            &[],
        );
        ok("build", &build(&env, &base, &ctx, TIMEOUT));
        let copy = "COPY --chown=app f /f";
        let ctx = context(
            &env,
            &format!("ctx{i}"),
            &format!("FROM {base}\n{copy}\n"),
            &[("f", "f\n")],
        );
        let start = Instant::now();
        let o = build(&env, "chowned:1", &ctx, limit);
        assert!(start.elapsed() < limit, "{what}: {:?}", start.elapsed());
        assert_eq!(o.status.code(), Some(1), "{what}: {}", text(&o.stdout));
        let file = ctx.join("Minifile").display().to_string();
        let line = assert_one_line_error(&o, "/etc/passwd");
        assert!(
            line.starts_with(&format!("mbuild: {file}:2: {copy}: ")),
            "{what}: {line}"
        );
        eprintln!("/etc/passwd as {what}: {line}");

        // mrun -u reads it the same way.
        let start = Instant::now();
        let mut c = mrun_with(&env, Path::new(MRUN));
        c.args(["--rm", "-u", "app", &base, "true"]);
        let o = Running::spawn(c).output(limit);
        assert!(start.elapsed() < limit);
        assert_refused(&o, "/etc/passwd", what);

        // Nothing left: no image, no container, no staging directory, no mount.
        assert_one_line_error(&env.mbuild(["inspect", "chowned:1"]), "chowned:1");
        let left: Vec<PathBuf> = ["containers", "tmp"]
            .iter()
            .flat_map(|d| fs::read_dir(env.root.join(d)).unwrap().flatten())
            .map(|e| e.path())
            .collect();
        assert_eq!(left, Vec::<PathBuf>::new(), "{what}");
        assert_eq!(crate::run::mounts_of(&env), Vec::<String>::new(), "{what}");
    }
}
