//! The host-wide network state directory ([`super::STATE_DIR`]) and its locks. The directory
//! is root's alone (0700, its files 0600): flock(2) needs only read access, so any user who
//! could open a lock file could hold it and stall every bridge container start. A lock is
//! waited for at most a bound ([`LOCK_TIMEOUT`] unless configured); then the error names
//! the process holding it, found in /proc/locks. It must not touch links, leases or
//! firewalls.
//!
//! flock, not fcntl record locks: a record lock belongs to the whole process (threads of one
//! process never exclude each other, and closing any descriptor of the file drops it), and
//! an OFD lock reports no holder (F_OFD_GETLK and /proc/locks give pid -1, fcntl(2)). For a
//! flock, /proc/locks names the process that took it.

use crate::error::{Error, IoContext, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a container start waits for a network lock before it gives up. The locks cover
/// only lease files and a few netlink requests (the firewall lock: one run of nft or a few of
/// iptables), so a holder for this long is stuck or hostile.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// Overrides [`LOCK_TIMEOUT`], in seconds (`2`, `0.5`); for tests, which hold a lock on
/// purpose and need not wait half a minute.
pub const TIMEOUT_ENV: &str = "MINIBOX_NETWORK_LOCK_TIMEOUT";

/// The bound from `$MINIBOX_NETWORK_LOCK_TIMEOUT`'s value when set, else [`LOCK_TIMEOUT`].
pub fn timeout_from(env: Option<&str>) -> Result<Duration> {
    let Some(v) = env.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(LOCK_TIMEOUT);
    };
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(Error::invalid(format!(
            "${TIMEOUT_ENV}: invalid value \"{v}\": a number of seconds, like 30 or 0.5"
        ))),
    }
}

/// Create `dir` (0700) when it is missing; refuse one that is not a directory of ours or
/// that others may write to; make one left by an older minibox (0755) private.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).ctx("create", parent)?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).ctx("create", dir),
    }
    let m = std::fs::symlink_metadata(dir).ctx("stat", dir)?;
    let shown = dir.display();
    if !m.is_dir() {
        return Err(Error::invalid(format!(
            "network state directory {shown} is not a directory: remove it"
        )));
    }
    // SAFETY: geteuid(2) cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        let who = if me == 0 {
            "root".to_string()
        } else {
            format!("uid {me}")
        };
        return Err(Error::invalid(format!(
            "network state directory {shown} is owned by uid {}, not {who}: remove it \
             (it is made again)",
            m.uid()
        )));
    }
    let mode = m.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::invalid(format!(
            "network state directory {shown} is writable by others (mode {mode:04o}): \
             remove it (it is made again) or chmod 700 it"
        )));
    }
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .ctx("chmod 700", dir)?;
    }
    Ok(())
}

/// A held lock; dropping it (closing the file) lets go.
#[derive(Debug)]
pub struct Held {
    _file: File,
}

/// Take the exclusive lock `dir/name` (created 0600, made 0600 if an older minibox left it
/// readable), waiting at most `timeout`.
pub fn lock(dir: &Path, name: &str, timeout: Duration) -> Result<Held> {
    prepare_dir(dir)?;
    let path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .ctx("open lock file", &path)?;
    let m = file.metadata().ctx("stat", &path)?;
    if m.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .ctx("chmod 600", &path)?;
    }
    // Polled rather than a blocking flock: the wait must end at the bound, and a signal to
    // interrupt a blocking flock would be a process-wide affair for a library. The holders
    // keep it for microseconds, so the first retries come fast.
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Held { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(std::io::Error::from(e)).ctx("lock", &path),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(timed_out(&path, &m, timeout));
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn timed_out(path: &Path, m: &std::fs::Metadata, timeout: Duration) -> Error {
    let holder = std::fs::read_to_string("/proc/locks")
        .ok()
        .and_then(|text| holder(&text, m.dev(), m.ino()));
    let who = match holder {
        Some(pid) => {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| format!(" ({})", c.trim()))
                .unwrap_or_default();
            format!("process {pid}{comm} holds it")
        }
        None => "its holder is not visible here".to_string(),
    };
    Error::invalid(format!(
        "network lock {} not granted within {}: {who}",
        path.display(),
        seconds(timeout)
    ))
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s}s")
    }
}

/// The pid that holds a flock on the file (`dev`, `ino`), from the text of /proc/locks
/// (proc(5)): `1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF`, waiters marked `->`.
fn holder(locks: &str, dev: u64, ino: u64) -> Option<i32> {
    let want = (
        rustix::fs::major(dev) as u64,
        rustix::fs::minor(dev) as u64,
        ino,
    );
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // id, FLOCK, ADVISORY, WRITE|READ, pid, maj:min:ino, start, end
        if f.len() < 6 || f[1] != "FLOCK" {
            return None;
        }
        let mut d = f[5].split(':');
        let got = (
            u64::from_str_radix(d.next()?, 16).ok()?,
            u64::from_str_radix(d.next()?, 16).ok()?,
            d.next()?.parse().ok()?,
        );
        (got == want).then(|| f[4].parse().ok()).flatten()
    })
}

/// Write `text` to `path` (0600) whole or not at all: a temporary name, then rename(2).
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .ctx("create", &tmp)?;
        f.write_all(text.as_bytes()).ctx("write", &tmp)?;
        std::fs::rename(&tmp, path).ctx("rename into place", path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_comes_from_the_environment_or_is_30_seconds() {
        assert_eq!(timeout_from(None).unwrap(), Duration::from_secs(30));
        assert_eq!(timeout_from(Some(" ")).unwrap(), Duration::from_secs(30));
        assert_eq!(timeout_from(Some("2")).unwrap(), Duration::from_secs(2));
        assert_eq!(
            timeout_from(Some("0.25")).unwrap(),
            Duration::from_millis(250)
        );
        for bad in ["0", "-1", "soon", "inf", "NaN"] {
            assert_eq!(
                timeout_from(Some(bad)).unwrap_err().to_string(),
                format!(
                    "$MINIBOX_NETWORK_LOCK_TIMEOUT: invalid value \"{bad}\": a number of \
                     seconds, like 30 or 0.5"
                )
            );
        }
        assert_eq!(seconds(Duration::from_secs(30)), "30s");
        assert_eq!(seconds(Duration::from_millis(300)), "0.3s");
    }

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let dev = rustix::fs::makedev(0, 0x1a);
        let text = "1: POSIX  ADVISORY  WRITE 99 00:1a:5678 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 777 00:1a:5678 0 EOF\n\
                    3: FLOCK  ADVISORY  READ  4321 08:01:5678 0 EOF\n";
        assert_eq!(holder(text, dev, 5678), Some(1234));
        assert_eq!(holder(text, rustix::fs::makedev(8, 1), 5678), Some(4321));
        assert_eq!(holder(text, dev, 1), None);
        assert_eq!(holder("", dev, 5678), None);
    }

    #[test]
    fn a_held_lock_times_out_naming_its_holder() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("network");
        let held = lock(&dir, "lock", Duration::from_secs(5)).unwrap();
        let start = Instant::now();
        let e = lock(&dir, "lock", Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(start.elapsed() >= Duration::from_millis(300));
        let me = std::process::id();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(
            e,
            format!(
                "network lock {} not granted within 0.3s: process {me} ({}) holds it",
                dir.join("lock").display(),
                comm.trim()
            )
        );
        drop(held);
        lock(&dir, "lock", Duration::from_millis(300)).unwrap();
    }

    #[test]
    fn the_directory_and_lock_are_private_and_old_modes_are_fixed() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("run/minibox/network");
        drop(lock(&dir, "lock", LOCK_TIMEOUT).unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("lock")), 0o600);
        // What an older minibox made: 0755 and 0644.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join("lock"), std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(lock(&dir, "lock", LOCK_TIMEOUT).unwrap());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("lock")), 0o600);
        // Writable by others: refused, left as it is.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(
            lock(&dir, "lock", LOCK_TIMEOUT).unwrap_err().to_string(),
            format!(
                "network state directory {} is writable by others (mode 0777): remove it \
                 (it is made again) or chmod 700 it",
                dir.display()
            )
        );
        assert_eq!(mode(&dir), 0o777);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Not a directory (a symlink to one is not either).
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert_eq!(
            prepare_dir(&link).unwrap_err().to_string(),
            format!(
                "network state directory {} is not a directory: remove it",
                link.display()
            )
        );
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        // SAFETY: geteuid(2) cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            if std::env::var_os("CI").is_some() {
                panic!("a_directory_of_another_user_is_refused needs root, and CI must run it");
            }
            println!("skipped: a_directory_of_another_user_is_refused: needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("network");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            lock(&dir, "lock", LOCK_TIMEOUT).unwrap_err().to_string(),
            format!(
                "network state directory {} is owned by uid 65534, not root: remove it \
                 (it is made again)",
                dir.display()
            )
        );
        assert!(!dir.join("lock").exists());
    }

    #[test]
    fn files_are_written_whole_and_private() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("firewall");
        write_file(&p, "7\n").unwrap();
        write_file(&p, "8\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "8\n");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
