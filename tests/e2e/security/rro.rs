//! `:ro` volumes are read-only all the way down (Docker 25's recursive read-only, made with
//! mount_setattr(2) AT_RECURSIVE): a mount below the volume's source on the host — a tmpfs
//! under a bound directory, /proc under `-v /:/host:ro` — must not stay writable inside.
//! Each attack writes from inside and checks the host afterwards.

use super::*;

/// A tmpfs mounted on the host at a path the test made; unmounted when dropped, whatever
/// happened.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn mount(at: &Path) -> HostTmpfs {
        fs::create_dir_all(at).unwrap();
        let c = std::ffi::CString::new(s(at)).unwrap();
        // SAFETY: NUL-terminated strings valid for the call.
        let r = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                c.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"size=1m".as_ptr().cast(),
            )
        };
        assert_eq!(
            r,
            0,
            "mount tmpfs on {at:?}: {}",
            std::io::Error::last_os_error()
        );
        HostTmpfs(at.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(s(&self.0)).unwrap();
        // SAFETY: a NUL-terminated path of ours.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// The probe's `write` failed inside with EROFS (and only with that).
fn assert_read_only(o: &Output, what: &str) {
    assert_ne!(
        code(o),
        0,
        "{what}: the write succeeded: {}",
        text(&o.stdout)
    );
    let err = text(&o.stderr);
    assert!(
        err.contains("Read-only file system"),
        "{what}: not refused as read-only: {err:?}"
    );
}

#[test]
fn a_tmpfs_below_a_read_only_volume_is_read_only_inside() {
    let Some(env) = setup() else { return };
    let vol = env.path("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("top"), "top\n").unwrap();
    let sub = vol.join("sub");
    let _tmpfs = HostTmpfs::mount(&sub);
    let deeper = sub.join("deeper");
    let _tmpfs2 = HostTmpfs::mount(&deeper);
    let spec = format!("{}:/data:ro", s(&vol));

    // The volume's own mount was read-only before too.
    let o = mrun(
        &env,
        &["-v", &spec, IMG, "/probe", "write", "/data/new", "x"],
    );
    assert_read_only(&o, "/data/new");
    // Old code: "ok", and the file appeared in the host's tmpfs.
    let o = mrun(
        &env,
        &["-v", &spec, IMG, "/probe", "write", "/data/sub/f", "x"],
    );
    assert_read_only(&o, "/data/sub/f (a tmpfs below the volume)");
    let o = mrun(
        &env,
        &[
            "-v",
            &spec,
            IMG,
            "/probe",
            "write",
            "/data/sub/deeper/f",
            "x",
        ],
    );
    assert_read_only(&o, "/data/sub/deeper/f (a tmpfs two mounts below)");
    assert!(!sub.join("f").exists(), "written through onto the host");
    assert!(!deeper.join("f").exists(), "written through onto the host");
    // Still readable; the volume itself still nodev as before, each mount below read-only.
    let o = mrun(&env, &["-v", &spec, IMG, "/probe", "cat", "/data/top"]);
    assert_eq!(ok("read /data/top", &o), "top\n");
    let o = mrun(
        &env,
        &["-v", &spec, IMG, "/probe", "cat", "/proc/self/mountinfo"],
    );
    let info = ok("mountinfo", &o);
    let opts = |at: &str| -> Vec<String> {
        info.lines()
            .find(|l| l.split(' ').nth(4) == Some(at))
            .unwrap_or_else(|| panic!("no mount at {at}: {info}"))
            .split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .map(String::from)
            .collect()
    };
    let top = opts("/data");
    assert!(
        top.contains(&"ro".into()) && top.contains(&"nodev".into()),
        "{top:?}"
    );
    assert!(opts("/data/sub").contains(&"ro".into()), "{info}");
    assert!(opts("/data/sub/deeper").contains(&"ro".into()), "{info}");

    // Control: rw, the same write lands on the host's tmpfs (so the ro test above proves
    // the submount was reached and refused).
    let rw = format!("{}:/data", s(&vol));
    let o = mrun(
        &env,
        &["-v", &rw, IMG, "/probe", "write", "/data/sub/f", "x"],
    );
    ok("rw control", &o);
    assert_eq!(fs::read_to_string(sub.join("f")).unwrap(), "x");
}

/// The host's kernel.domainname, read now.
fn host_domainname() -> String {
    fs::read_to_string("/proc/sys/kernel/domainname").unwrap()
}

/// Puts the host's domainname back when dropped, should a broken build have changed it.
struct RestoreDomainname(String);

impl Drop for RestoreDomainname {
    fn drop(&mut self) {
        if host_domainname() != self.0 {
            let _ = fs::write("/proc/sys/kernel/domainname", self.0.trim_end());
        }
    }
}

#[test]
fn proc_below_a_read_only_host_root_cannot_be_written() {
    let Some(env) = setup() else { return };
    let before = host_domainname();
    let _restore = RestoreDomainname(before.clone());
    let evil = unique("evil");
    // Old code: "ok" (the host's /proc was writable at /host/proc).
    let o = mrun(
        &env,
        &[
            "-v",
            "/:/host:ro",
            IMG,
            "/probe",
            "write",
            "/host/proc/sys/kernel/domainname",
            &evil,
        ],
    );
    assert_read_only(&o, "/host/proc/sys/kernel/domainname");
    assert_eq!(host_domainname(), before, "the host's domainname changed");
    // The rest of the host stays read-only below /host too: a tmpfs such as /dev/shm.
    let shm = format!("/host/dev/shm/{evil}");
    let o = mrun(
        &env,
        &["-v", "/:/host:ro", IMG, "/probe", "write", &shm, "x"],
    );
    let landed = Path::new("/dev/shm").join(&evil);
    let wrote = landed.exists();
    let _ = fs::remove_file(&landed);
    assert_read_only(&o, "/host/dev/shm");
    assert!(!wrote, "written through onto the host's /dev/shm");
}

/// Whether `p` is a mount point on the host (its own line in our mountinfo).
fn is_mount_point(p: &Path) -> bool {
    crate::run::mountinfo().iter().any(|(_, at, _, _)| at == p)
}

/// `--net host` gets a fresh read-only sysfs (as root; as runc does), not a bind of the
/// host's /sys whose top alone was read-only: a mount the host has below /sys (debugfs,
/// tracefs, bpf...) must not come along writable.
#[test]
fn net_host_brings_no_writable_mount_from_below_the_hosts_sys() {
    let Some(env) = setup() else { return };
    let spot = ["/sys/fs/bpf", "/sys/kernel/debug", "/sys/kernel/tracing"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_dir() && !is_mount_point(p));
    if skip_unless(
        spot.is_some(),
        "no empty mount point below /sys to put a tmpfs on",
    ) {
        return;
    }
    let spot = spot.unwrap();
    let _tmpfs = HostTmpfs::mount(spot);
    let target = spot.join(unique("written"));
    // Old code: "ok", and the file appeared in the host's tmpfs below /sys.
    let o = mrun(
        &env,
        &["--net", "host", IMG, "/probe", "write", s(&target), "x"],
    );
    let wrote = target.exists();
    assert!(!wrote, "written through onto the host's mount below /sys");
    // A fresh sysfs has no such file and takes none (ENOENT, or EROFS): any refusal will do,
    // what matters is that nothing reached the host.
    assert_ne!(code(&o), 0, "the write succeeded: {}", text(&o.stdout));
    // The host's network is what the new sysfs shows: the interface of the host's default
    // route is there (others come and go with other tests' containers).
    let route = fs::read_to_string("/proc/net/route").unwrap();
    let default_if = route
        .lines()
        .skip(1)
        .find(|l| l.split_whitespace().nth(1) == Some("00000000"))
        .and_then(|l| l.split_whitespace().next())
        .map(String::from);
    let o = mrun(&env, &["--net", "host", IMG, "/probe", "ifaces"]);
    let ifaces = ok("ifaces", &o);
    for name in std::iter::once("lo".to_string()).chain(default_if) {
        assert!(
            ifaces.split_whitespace().any(|i| i == name),
            "interface {name} of the host missing with --net host: {ifaces}"
        );
    }
}
