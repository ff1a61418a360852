//! What the store knows about containers, with no daemon to ask: each one is a directory
//! `containers/<id>/` holding
//!
//! - `lock`: flock(2)ed for as long as a process looks after the container (mrun in the
//!   foreground, or the monitor of a detached one). Whoever can take it knows the container
//!   has nobody left: that is how a SIGKILLed monitor or a reboot is told apart from a
//!   running container, without trusting pids.
//! - `config.json`: what it was created with (`Config`), written once.
//! - `state.json`: what happened to it (`State`), replaced by rename(2) on every change.
//! - `log`: its output, one JSON object per line as Docker's json-file driver writes it.
//! - `hosts`, `hostname`, `resolv.conf`: bind-mounted over the container's /etc files.
//!
//! and `names/<name>` is a symlink to the id: symlink(2) fails with EEXIST, so two
//! containers can never take one name.

use crate::cgroup;
use crate::error::{Error, IoContext, Result};
use layers::Store;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The container as created: enough to show it (ps, inspect) and to join it (exec).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Config {
    pub id: String,
    pub name: String,
    /// The image as the user named it, and its id (the config digest).
    pub image: String,
    pub image_id: String,
    pub created: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The capability set its processes get (bounding, permitted, effective for root).
    pub caps: u64,
    pub hostname: String,
    /// none, host, bridge or slirp4netns
    pub network: String,
    /// `-p` as given.
    pub ports: Vec<String>,
    pub auto_remove: bool,
    pub stop_signal: String,
    pub tty: bool,
    pub interactive: bool,
    pub init: bool,
    pub detached: bool,
    /// The container has a user namespace (rootless or `--userns`).
    pub userns: bool,
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    /// The image's layer directories, bottom first (for `exec -u NAME`).
    pub layers: Vec<PathBuf>,
    /// "default", "unconfined" or the JSON of `--security-opt seccomp=FILE`.
    #[serde(default)]
    pub seccomp: String,
    #[serde(default)]
    pub no_new_privs: bool,
    #[serde(default)]
    pub privileged: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// What happened to the container so far.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct State {
    pub status: Status,
    /// The container's first process, as the host sees it, and its start time in clock
    /// ticks after boot (/proc/PID/stat field 22): together they name one process even
    /// after the pid is reused.
    pub pid: i32,
    pub pid_start: u64,
    /// The process looking after it (mrun in the foreground, or the detached monitor), and
    /// its start time.
    pub monitor_pid: i32,
    #[serde(default)]
    pub monitor_start: u64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    /// Why it could not start, or that its monitor vanished.
    pub error: Option<String>,
    pub ip: Option<String>,
    pub gateway: Option<String>,
    pub cgroup: Option<cgroup::Record>,
}

/// Exit code recorded for a container whose monitor died before it could learn the real
/// one (Docker uses the same for "unknown").
pub const EXIT_UNKNOWN: i32 = 255;

pub fn containers_dir(store: &Store) -> PathBuf {
    store.root().join("containers")
}

pub fn names_dir(store: &Store) -> PathBuf {
    store.root().join("names")
}

/// The lock of a container directory, held by its owner.
pub struct Owner {
    file: File,
}

impl Owner {
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.file.as_fd()
    }
}

/// Take the lock of `dir` without waiting; None when somebody holds it.
pub fn try_own(dir: &Path) -> Result<Option<Owner>> {
    let p = dir.join("lock");
    let file = match File::options().read(true).write(true).open(&p) {
        Ok(f) => f,
        // A directory without a lock file was never finished by anyone alive.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&p)
            {
                Ok(f) => f,
                // The directory itself went away meanwhile (removed on exit, or by rm):
                // nothing for us to own.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e).ctx("create", &p),
            }
        }
        Err(e) => return Err(e).ctx("open", &p),
    };
    match layers::lock::try_lock_exclusive(&file) {
        Ok(true) => Ok(Some(Owner { file })),
        Ok(false) => Ok(None),
        Err(e) => Err(e).ctx("lock", &p),
    }
}

/// Wait for the owner of `dir` to be gone (at most `timeout`), then own it.
pub fn own_within(dir: &Path, timeout: std::time::Duration) -> Result<Option<Owner>> {
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        if let Some(o) = try_own(dir)? {
            return Ok(Some(o));
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(20));
    }
}

/// Make `containers/<id>/` with its pins and its lock taken. It is put together in this
/// process's session directory and renamed into place already locked, so a concurrent
/// `prune` never sees an unowned half-made container.
pub fn create_dir(store: &Store, id: &str, pins: &[String]) -> Result<(PathBuf, Owner)> {
    let parent = containers_dir(store);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .ctx("create", &parent)?;
    let staging = store.temp_path(&format!("container-{id}"));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .ctx("create", &staging)?;
    let made = (|| {
        let p = staging.join("pins");
        let mut f = File::create(&p).ctx("create", &p)?;
        for d in pins {
            writeln!(f, "{d}").ctx("write", &p)?;
        }
        let owner = try_own(&staging)?.ok_or_else(|| Error::invalid("container lock taken"))?;
        let dir = parent.join(id);
        fs::rename(&staging, &dir).ctx("create", &dir)?;
        Ok((dir, owner))
    })();
    if made.is_err() {
        let _ = layers::store::remove_all(&staging);
    }
    made
}

fn write_json<T: Serialize>(dir: &Path, name: &str, v: &T) -> Result<()> {
    let p = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::invalid(e.to_string()))?;
    fs::write(&tmp, bytes).ctx("write", &tmp)?;
    fs::rename(&tmp, &p).ctx("write", &p)
}

fn read_json<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Result<T> {
    let p = dir.join(name);
    let bytes = fs::read(&p).ctx("read", &p)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("{}: {e}", p.display())))
}

pub fn save_config(dir: &Path, c: &Config) -> Result<()> {
    write_json(dir, "config.json", c)
}

pub fn save_state(dir: &Path, s: &State) -> Result<()> {
    write_json(dir, "state.json", s)
}

pub fn load_config(dir: &Path) -> Result<Config> {
    read_json(dir, "config.json")
}

pub fn load_state(dir: &Path) -> Result<State> {
    read_json(dir, "state.json")
}

/// One container as the store shows it now.
#[derive(Debug, Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub config: Config,
    pub state: State,
    /// A process looks after it (its lock is held).
    pub owned: bool,
}

impl Container {
    pub fn load(dir: &Path) -> Result<Container> {
        let config = load_config(dir)?;
        let mut state = load_state(dir).unwrap_or_default();
        let owned = try_own(dir)?.is_none();
        if !owned && state.status == Status::Running {
            // Its monitor is gone (SIGKILL, reboot); the container died with it (the
            // parent-death signal), or at the latest with the machine.
            state.status = Status::Exited;
            state.exit_code.get_or_insert(EXIT_UNKNOWN);
            state
                .error
                .get_or_insert_with(|| "its monitor process died".to_string());
        }
        Ok(Container {
            dir: dir.to_path_buf(),
            config,
            state,
            owned,
        })
    }

    pub fn running(&self) -> bool {
        self.owned && self.state.status == Status::Running
    }

    pub fn short_id(&self) -> &str {
        &self.config.id[..12.min(self.config.id.len())]
    }
}

/// Every container with a config, newest first. Directories without one (a builder's RUN
/// step, or a container killed while being made) are not containers a user made.
pub fn list(store: &Store) -> Result<Vec<Container>> {
    let dir = containers_dir(store);
    let mut out = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).ctx("read directory", &dir),
    };
    for e in rd.flatten() {
        if e.path().join("config.json").exists() {
            if let Ok(c) = Container::load(&e.path()) {
                out.push(c);
            }
        }
    }
    out.sort_by(|a, b| b.config.created.cmp(&a.config.created));
    Ok(out)
}

/// A container by name, full id or unique id prefix, as Docker finds them.
pub fn find(store: &Store, what: &str) -> Result<Container> {
    let not_found = || Error::NotFound(format!("No such container: {what}"));
    if what.is_empty() || what.contains('/') || what.starts_with('.') {
        return Err(not_found());
    }
    let name = what.strip_prefix('/').unwrap_or(what);
    if let Ok(id) = fs::read_link(names_dir(store).join(name)) {
        let dir = containers_dir(store).join(&id);
        if dir.join("config.json").exists() {
            return Container::load(&dir);
        }
    }
    let dir = containers_dir(store);
    let direct = dir.join(what);
    if what.len() == 64 && direct.join("config.json").exists() {
        return Container::load(&direct);
    }
    let mut hits = Vec::new();
    if let Ok(rd) = fs::read_dir(&dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(what) && e.path().join("config.json").exists() {
                hits.push(e.path());
            }
        }
    }
    match hits.as_slice() {
        [one] => Container::load(one),
        [] => Err(not_found()),
        _ => Err(Error::invalid(format!(
            "multiple containers match {what:?}: give more of the id"
        ))),
    }
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// Take `name` for container `id`. A name whose container is gone is taken over.
pub fn claim_name(store: &Store, name: &str, id: &str) -> Result<()> {
    if !valid_name(name) {
        return Err(Error::invalid(format!(
            "invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    let dir = names_dir(store);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ctx("create", &dir)?;
    let link = dir.join(name);
    for _ in 0..2 {
        match std::os::unix::fs::symlink(id, &link) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = fs::read_link(&link)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if containers_dir(store).join(&holder).exists() {
                    return Err(Error::Conflict(format!(
                        "the container name \"/{name}\" is already in use by container \"{holder}\": remove (or rename) that container to be able to reuse that name"
                    )));
                }
                // The holder is gone: a leftover link, replaced below.
                let _ = fs::remove_file(&link);
            }
            Err(e) => return Err(e).ctx("create", &link),
        }
    }
    Err(Error::invalid(format!("cannot claim the name {name:?}")))
}

/// Remove a container's directory for good: renamed into this process's session directory
/// first (so a kill half-way leaves nothing under containers/ — the next command clears
/// dead sessions), its name given up, then deleted.
pub fn remove_dir(store: &Store, dir: &Path, name: Option<&str>, id: &str) -> Result<()> {
    let gone = store.temp_path("removed-container");
    let target = match fs::rename(dir, &gone) {
        Ok(()) => gone,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(n) = name {
                release_name(store, n, id);
            }
            return Ok(());
        }
        // Another filesystem for tmp/ (it never is) or the like: delete in place.
        Err(_) => dir.to_path_buf(),
    };
    if let Some(n) = name {
        release_name(store, n, id);
    }
    layers::store::remove_all(&target).ctx("remove", &target)
}

/// Name links whose container is gone (a kill between naming and recording it).
pub fn drop_dangling_names(store: &Store) {
    let Ok(rd) = fs::read_dir(names_dir(store)) else {
        return;
    };
    for e in rd.flatten() {
        if let Ok(id) = fs::read_link(e.path()) {
            if !containers_dir(store).join(&id).exists() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Give up `name` if it still names `id`.
pub fn release_name(store: &Store, name: &str, id: &str) {
    let link = names_dir(store).join(name);
    if fs::read_link(&link).is_ok_and(|t| t == Path::new(id)) {
        let _ = fs::remove_file(&link);
    }
}

/// A free generated name, Docker style ("brave_turing"), for a container given none.
pub fn generate_name(store: &Store, id: &str) -> String {
    const ADJ: [&str; 24] = [
        "admiring", "bold", "brave", "calm", "clever", "eager", "elated", "epic", "fervent",
        "gallant", "happy", "jolly", "keen", "lucid", "modest", "nifty", "quirky", "relaxed",
        "serene", "sharp", "stoic", "tender", "vibrant", "zealous",
    ];
    const NOUN: [&str; 24] = [
        "babbage", "bell", "bohr", "curie", "darwin", "dijkstra", "einstein", "euler", "faraday",
        "fermi", "galois", "hopper", "kepler", "knuth", "lamport", "liskov", "lovelace", "noether",
        "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak",
    ];
    let b = |i: usize| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap_or(0) as usize;
    let base = format!("{}_{}", ADJ[b(0) % ADJ.len()], NOUN[b(1) % NOUN.len()]);
    let taken = |n: &str| names_dir(store).join(n).symlink_metadata().is_ok();
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}{i}"))
        .find(|n| !taken(n))
        .expect("some suffix is free")
}

/// Now as RFC 3339 with nanoseconds, as Docker writes times.
pub fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let base = layers::image::rfc3339(d.as_secs() as i64);
    format!("{}.{:09}Z", base.trim_end_matches('Z'), d.subsec_nanos())
}

/// The start time of `pid` in clock ticks after boot, /proc/PID/stat field 22.
pub fn start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// A pidfd for the container's first process, if it is still the process `state` names.
pub fn pidfd(state: &State) -> Option<std::os::fd::OwnedFd> {
    pidfd_of(state.pid, state.pid_start)
}

/// A pidfd for process `pid` if it is still the one that started at `start`.
pub fn pidfd_of(pid: i32, start: u64) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if pid <= 0 || start == 0 {
        return None;
    }
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a new descriptor that nobody else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // Opened first, checked second: if the start time still matches now, the pidfd refers
    // to that very process, whatever happens to the pid afterwards.
    (start_time(pid) == Some(start)).then_some(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker() {
        assert!(valid_name("web"));
        assert!(valid_name("a1_b.c-d"));
        assert!(!valid_name("x"));
        assert!(!valid_name("-web"));
        assert!(!valid_name("we b"));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn start_time_reads_past_odd_command_names() {
        let me = std::process::id() as i32;
        let t = start_time(me).expect("our own start time");
        assert!(t > 0);
        assert_eq!(start_time(me), Some(t));
        assert_eq!(start_time(-5), None);
    }

    #[test]
    fn now_has_nanoseconds() {
        let n = now();
        assert_eq!(n.len(), "2026-11-29T19:21:19.123456789Z".len(), "{n}");
        assert!(layers::image::parse_rfc3339(&n).is_some());
    }

    #[test]
    fn a_name_is_taken_once_and_freed_with_its_container() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path().join("s")).unwrap();
        let id = "a".repeat(64);
        let (dir, _owner) = create_dir(&store, &id, &[]).unwrap();
        claim_name(&store, "web", &id).unwrap();
        let e = claim_name(&store, "web", &"b".repeat(64)).unwrap_err();
        assert!(e.to_string().contains("already in use by container"), "{e}");
        // Its container gone, the name is free again.
        layers::store::remove_all(&dir).unwrap();
        claim_name(&store, "web", &"b".repeat(64)).unwrap();
        release_name(&store, "web", &id);
        assert!(names_dir(&store).join("web").symlink_metadata().is_ok());
        release_name(&store, "web", &"b".repeat(64));
        assert!(names_dir(&store).join("web").symlink_metadata().is_err());
    }

    #[test]
    fn the_lock_tells_an_owned_container_from_an_abandoned_one() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path().join("s")).unwrap();
        let id = "c".repeat(64);
        let (dir, owner) = create_dir(&store, &id, &["sha256:x".into()]).unwrap();
        assert!(try_own(&dir).unwrap().is_none(), "held by its creator");
        let config = Config {
            id: id.clone(),
            created: now(),
            ..Default::default()
        };
        save_config(&dir, &config).unwrap();
        save_state(
            &dir,
            &State {
                status: Status::Running,
                pid: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let c = Container::load(&dir).unwrap();
        assert!(c.running());
        drop(owner);
        // Another test of this binary that forks meanwhile holds a copy of the lock's fd
        // until its child execs or exits: wait for that, as rm does.
        drop(
            own_within(&dir, std::time::Duration::from_secs(10))
                .unwrap()
                .expect("the lock is free once its owner is gone"),
        );
        let c = Container::load(&dir).unwrap();
        assert!(!c.running());
        assert_eq!(c.state.status, Status::Exited);
        assert_eq!(c.state.exit_code, Some(EXIT_UNKNOWN));
        assert_eq!(find(&store, &id[..5]).unwrap().config.id, id);
        assert!(find(&store, "nosuch").is_err());
    }
}
