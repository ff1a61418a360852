//! Docker's security defaults, each attacked from inside a container: capabilities (and
//! `--cap-add`, `--cap-drop`, `--privileged`), the default seccomp filter and Docker-format
//! profiles, no-new-privileges, and the masked and read-only /proc and /sys paths.

use crate::common::*;
use crate::run::{image_tree, is_root_and_busybox, mrun, mrun_ok, IMG};
use std::os::unix::fs::PermissionsExt;

/// The test image plus a setuid-root copy of the probe.
fn setup() -> Option<Env> {
    if !is_root_and_busybox() {
        return None;
    }
    let env = Env::new();
    let tree = env.path("image");
    image_tree(&tree);
    std::fs::copy(tree.join("probe"), tree.join("suid-probe")).unwrap();
    std::fs::set_permissions(
        tree.join("suid-probe"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    env.ok(["import", tree.to_str().unwrap(), "-t", IMG]);
    Some(env)
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
        .to_string()
}

fn status(env: &Env, flags: &[&str]) -> String {
    let mut a = vec!["--net", "none"];
    a.extend_from_slice(flags);
    a.extend([IMG, "/probe", "cat", "/proc/self/status"]);
    mrun_ok(env, &a)
}

#[test]
fn capabilities_are_dockers_and_follow_cap_add_cap_drop_and_privileged() {
    let Some(env) = setup() else { return };
    let s = status(&env, &[]);
    assert_eq!(status_field(&s, "CapEff"), "00000000a80425fb");
    assert_eq!(status_field(&s, "CapPrm"), "00000000a80425fb");
    assert_eq!(status_field(&s, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(&s, "CapAmb"), "0000000000000000");
    // NET_ADMIN (12) added, CHOWN (0) dropped.
    let s = status(&env, &["--cap-add", "NET_ADMIN", "--cap-drop", "CAP_CHOWN"]);
    assert_eq!(
        status_field(&s, "CapEff"),
        format!("{:016x}", (0xa80425fbu64 | 1 << 12) & !1)
    );
    let s = status(
        &env,
        &["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"],
    );
    assert_eq!(status_field(&s, "CapEff"), format!("{:016x}", 1u64 << 10));
    assert_eq!(status_field(&s, "CapBnd"), format!("{:016x}", 1u64 << 10));
    // --privileged: every capability mrun has itself.
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let s = status(&env, &["--privileged"]);
    assert_eq!(status_field(&s, "CapEff"), status_field(&own, "CapBnd"));
    assert_eq!(status_field(&s, "Seccomp"), "0");

    // mount(2) needs CAP_SYS_ADMIN (and the filter lets it through only with it).
    let o = mrun(
        &env,
        &[
            "--net",
            "none",
            IMG,
            "sh",
            "-c",
            "mkdir /m && mount -t tmpfs t /m",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o.stderr).contains("denied"), "{}", text(&o.stderr));
    let out = mrun_ok(
        &env,
        &[
            "--net",
            "none",
            "--cap-add",
            "SYS_ADMIN",
            IMG,
            "sh",
            "-c",
            "mkdir /m && mount -t tmpfs t /m && echo mounted",
        ],
    );
    assert_eq!(out, "mounted\n");

    let o = mrun(&env, &["--cap-add", "NOPE", IMG, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert_one_line_error(&o, "invalid --cap-add \"NOPE\"");
}

fn syscalls(env: &Env, flags: &[&str]) -> Vec<(String, i32)> {
    let mut a = vec!["--net", "none"];
    a.extend_from_slice(flags);
    a.extend([IMG, "/probe", "syscalls"]);
    mrun_ok(env, &a)
        .lines()
        .map(|l| {
            let (n, e) = l.split_once(' ').unwrap();
            (n.to_string(), e.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_default_seccomp_filter_blocks_what_docker_blocks() {
    let Some(env) = setup() else { return };
    let confined = syscalls(&env, &[]);
    assert_eq!(confined.len(), 24);
    for (name, errno) in &confined {
        let want = if name == "clone3" {
            libc::ENOSYS
        } else {
            libc::EPERM
        };
        assert_eq!(*errno, want, "{name}");
    }
    let s = status(&env, &[]);
    assert_eq!(status_field(&s, "Seccomp"), "2");
    // Unconfined, the same calls get as far as the kernel's own checks: proof that the
    // EPERMs above are the filter's, not only missing capabilities.
    let free = syscalls(&env, &["--security-opt", "seccomp=unconfined"]);
    for name in [
        "keyctl",
        "add_key",
        "request_key",
        "perf_event_open",
        "userfaultfd",
        "open_by_handle_at",
        "clock_settime",
        "setns",
        "clone3",
        "get_mempolicy",
    ] {
        let e = free.iter().find(|(n, _)| n == name).unwrap().1;
        assert_ne!(e, libc::EPERM, "{name} unconfined");
    }
    // With CAP_SYS_ADMIN the filter lets namespaces and mounts through, as Docker's does.
    let admin = syscalls(&env, &["--cap-add", "SYS_ADMIN"]);
    for name in ["unshare", "mount"] {
        assert_eq!(
            admin.iter().find(|(n, _)| n == name).unwrap().1,
            0,
            "{name}"
        );
    }
    assert_eq!(
        admin.iter().find(|(n, _)| n == "keyctl").unwrap().1,
        libc::EPERM
    );
}

#[test]
fn docker_format_profiles_and_bad_ones() {
    let Some(env) = setup() else { return };
    let profile = env.path("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = mrun(
        &env,
        &["--net", "none", "--security-opt", &opt, IMG, "mkdir", "/x"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("Permission denied"),
        "{}",
        text(&o.stderr)
    );
    // The profile replaces the default: keyctl is allowed again.
    let calls = syscalls(&env, &["--security-opt", &opt]);
    assert_eq!(calls.iter().find(|(n, _)| n == "keyctl").unwrap().1, 0);

    let bad = env.path("bad.json");
    std::fs::write(&bad, "{\"defaultAction\": ").unwrap();
    let o = mrun(
        &env,
        &[
            "--security-opt",
            &format!("seccomp={}", bad.display()),
            IMG,
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(125));
    assert_one_line_error(&o, "seccomp profile");
    let o = mrun(&env, &["--security-opt", "bogus", IMG, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert_one_line_error(&o, "invalid --security-opt");
}

#[test]
fn no_new_privileges_keeps_setuid_from_raising_privileges() {
    let Some(env) = setup() else { return };
    let euid = |flags: &[&str]| {
        let mut a = vec!["--net", "none", "-u", "app"];
        a.extend_from_slice(flags);
        a.extend([IMG, "/suid-probe", "cat", "/proc/self/status"]);
        let s = mrun_ok(&env, &a);
        let uid = status_field(&s, "Uid");
        (
            uid.split_whitespace().nth(1).unwrap().to_string(),
            status_field(&s, "NoNewPrivs"),
        )
    };
    assert_eq!(
        euid(&[]),
        ("0".to_string(), "0".to_string()),
        "setuid works by default"
    );
    assert_eq!(
        euid(&["--security-opt", "no-new-privileges"]),
        ("1000".to_string(), "1".to_string())
    );
}

#[test]
fn proc_and_sys_paths_are_masked_or_read_only() {
    let Some(env) = setup() else { return };
    let script = "wc -c < /proc/interrupts; ls /sys/firmware | wc -l; \
                  (echo x > /proc/sys/kernel/domainname) 2>/dev/null && echo WROTE-SYS; \
                  (echo h > /proc/sysrq-trigger) 2>/dev/null && echo WROTE-SYSRQ; \
                  cat /proc/sys/kernel/ostype";
    let out = mrun_ok(&env, &["--net", "none", IMG, "sh", "-c", script]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["0", "0", "Linux"], "{out}");
    // --privileged shows them.
    let out = mrun_ok(
        &env,
        &[
            "--net",
            "none",
            "--privileged",
            IMG,
            "sh",
            "-c",
            "wc -c < /proc/interrupts",
        ],
    );
    assert!(out.trim().parse::<u64>().unwrap() > 0, "{out}");
}
