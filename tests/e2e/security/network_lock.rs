//! The host-wide network state (/run/minibox/network) and its lock. Any user who can open
//! the lock can hold it (flock(2) needs only read access) and so stall every bridge
//! container start: the state must be root's only, and a lock held by anybody must make a
//! start fail within a bound, naming the holder, never wait for ever.

use crate::common::*;
use crate::run::{containers_of, mrun_cmd, mrun_ok, setup, Running, IMG};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STATE_DIR: &str = "/run/minibox/network";
const LOCK: &str = "/run/minibox/network/lock";
const TEST_USER: &str = "minibox-test";

/// `args` run as the unprivileged test user (made by scripts/ci-user).
fn as_user(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid", TEST_USER, "--regid", TEST_USER, "--init-groups"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_unprivileged_user_can_neither_hold_the_network_lock_nor_read_the_state() {
    let Some(env) = setup() else { return };
    let user = Command::new("id")
        .args(["-u", TEST_USER])
        .output()
        .is_ok_and(|o| o.status.success());
    if skip_unless(have("setpriv"), "setpriv missing (util-linux)")
        || skip_unless(have("flock"), "flock missing (util-linux)")
        || skip_unless(
            user,
            &format!("user {TEST_USER} missing (scripts/ci-user makes it)"),
        )
    {
        return;
    }
    // A bridge container has been started, so the state is there as minibox makes it.
    mrun_ok(&env, &[IMG, "true"]);
    // The attack: a shared lock (read access is enough) held by the user would stall
    // every bridge start.
    let o = as_user(&["flock", "--shared", "--nonblock", LOCK, "true"]);
    assert!(
        !o.status.success(),
        "{TEST_USER} took a lock on {LOCK}: {}",
        text(&o.stdout)
    );
    assert!(
        text(&o.stderr).contains("Permission denied"),
        "{}",
        text(&o.stderr)
    );
    let o = as_user(&["ls", STATE_DIR]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("Permission denied"),
        "{TEST_USER} listed {STATE_DIR}: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let dir = std::fs::symlink_metadata(STATE_DIR).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o7777), (0, 0o700), "{STATE_DIR}");
    let lock = std::fs::symlink_metadata(LOCK).unwrap();
    assert_eq!((lock.uid(), lock.mode() & 0o7777), (0, 0o600), "{LOCK}");
}

#[test]
fn a_held_network_lock_fails_a_bridge_start_within_the_bound_naming_the_holder() {
    let Some(env) = setup() else { return };
    // The state is there (a bridge container ran), then this test holds the lock as a
    // stuck or hostile process would.
    mrun_ok(&env, &[IMG, "true"]);
    let held = File::open(LOCK).unwrap();
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);

    // The container's id, seen while mrun waits: to check that nothing of it is left.
    let ids = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (ids, done, dir) = (ids.clone(), done.clone(), env.root.join("containers"));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let id = e.file_name().to_string_lossy().into_owned();
                    let mut ids = ids.lock().unwrap();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut c = mrun_cmd(&env);
    c.env("MINIBOX_NETWORK_LOCK_TIMEOUT", "2")
        .args(["--rm", IMG, "true"]);
    // Old code waited for ever: after 30 s the start is killed and the test fails.
    let o = Running::spawn(c).output(Duration::from_secs(30));
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    drop(held);

    assert_eq!(o.status.code(), Some(125), "{}", text(&o.stderr));
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_one_line_error(
        &o,
        &format!(
            "mrun: network lock {LOCK} not granted within 2s: process {} ({}) holds it",
            std::process::id(),
            comm.trim()
        ),
    );
    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids.len(), 1, "one container directory was made: {ids:?}");
    assert_eq!(containers_of(&env), Vec::<std::path::PathBuf>::new());
    let id = &ids[0];
    let veth = format!("mb{}", &id[..11]);
    assert!(
        !Path::new("/sys/class/net").join(&veth).exists(),
        "veth {veth} left"
    );
    let leases: Vec<String> = std::fs::read_dir(format!("{STATE_DIR}/leases"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.trim() == id))
        .map(|e| e.path().display().to_string())
        .collect();
    assert_eq!(leases, Vec::<String>::new(), "leases left");
}
