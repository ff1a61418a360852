//! A container's life in the foreground: its directory (upper, work, merged, short layer
//! links), its cgroup, the clone, the wait, and the cleanup that leaves nothing behind. The
//! overlay and every other mount are made inside the container's own mount namespace, so
//! they vanish with it, whatever happens to mrun.

use crate::cgroup::{self, Cgroup};
use crate::child::Plan;
use crate::error::{Error, IoContext, Result};
use crate::process::{self, Child, Exit};
use crate::rootfs::{cstr, CgroupMount, Rootfs};
use crate::spec::Spec;
use layers::image::Image;
use layers::Store;
use std::ffi::CString;
use std::fs;

use std::ffi::c_int;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

pub struct RunOptions {
    /// Pass SIGINT, SIGTERM, ... received by this thread on to the container (mrun).
    pub forward_signals: bool,
    /// Keep the container's directory (its upper dir) after it exits (the builder's RUN).
    pub keep: bool,
    /// Called with a one-line note when something the user did not ask for is unavailable.
    pub warn: fn(&str),
}

#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub exit: Exit,
    /// The kernel's OOM killer ended a process of the container.
    pub oom_killed: bool,
    pub memory_limit: Option<u64>,
}

/// A new container id: 64 hex digits from the kernel's random pool.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: writing into our own buffer.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
        if n > 0 {
            got += n as usize;
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The layer directories of an image, bottom first, extracting any not yet extracted, and
/// the digests a container of it must keep from GC.
pub fn image_layers(store: &Store, img: &Image) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let mut dirs = Vec::new();
    let mut pins = vec![img.manifest_desc.digest().to_string(), img.id().to_string()];
    for l in img.layers()? {
        pins.push(l.digest.to_string());
        pins.push(l.diff_id.to_string());
        dirs.push(store.ensure_layer(&l.descriptor(), &l.diff_id)?);
    }
    Ok((dirs, pins))
}

/// Removes a container's directory when dropped, unless kept.
struct DirGuard {
    dir: PathBuf,
    keep: bool,
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if self.keep {
            // The merged/ and work/ dirs mean nothing once the mount namespace is gone.
            let _ = layers::store::remove_all(&self.dir.join("work"));
            let _ = layers::store::remove_all(&self.dir.join("l"));
        } else {
            let _ = layers::store::remove_all(&self.dir);
        }
    }
}

/// upper/, work/, merged/ and l/<n> -> layer, n in base 36: short names keep the overlay
/// option string of a 500-layer image inside one page.
fn prepare(spec: &Spec) -> Result<Vec<String>> {
    for d in ["upper", "work", "merged", "l"] {
        let p = spec.dir.join(d);
        match fs::DirBuilder::new().mode(0o755).create(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).ctx("create", &p),
        }
    }
    let mut names = Vec::with_capacity(spec.layers.len());
    for (i, layer) in spec.layers.iter().enumerate() {
        let name = base36(i);
        let link = spec.dir.join("l").join(&name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(layer, &link).ctx("link layer", &link)?;
        names.push(name);
    }
    Ok(names)
}

fn base36(mut n: usize) -> String {
    const D: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(D[n % 36]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

/// Where execve should look for argv[0]: itself when it has a '/', else each $PATH entry.
fn candidates(spec: &Spec) -> Result<Vec<CString>> {
    let arg0 = &spec.process.args[0];
    if arg0.contains('/') {
        return Ok(vec![cstr(arg0)?]);
    }
    let path = spec
        .process
        .env_value("PATH")
        .unwrap_or(crate::config::DEFAULT_PATH);
    path.split(':')
        .map(|d| if d.is_empty() { "." } else { d })
        .map(|d| cstr(format!("{}/{arg0}", d.trim_end_matches('/'))))
        .collect()
}

/// The cgroup for the container, or None with a note when cgroups are out of reach and no
/// limit was asked for. Asking for a limit that cannot be applied is an error: never run
/// silently unlimited.
fn make_cgroup(
    spec: &Spec,
    id: &str,
    opts: &RunOptions,
) -> Result<Option<(Cgroup, Vec<CgroupMount>)>> {
    let made = cgroup::detect().and_then(|h| Ok((Cgroup::create(&h, id, &spec.limits)?, h)));
    match made {
        // cgroup v1 filesystems cannot be mounted from a user namespace.
        Ok((c, h)) if spec.userns.is_some() && matches!(h, cgroup::Hierarchy::V1 { .. }) => {
            Ok(Some((c, vec![])))
        }
        Ok((c, h)) => Ok(Some((c, CgroupMount::for_hierarchy(&h)))),
        Err(cgroup::Error::Unavailable(why)) if spec.limits.is_empty() => {
            (opts.warn)(&format!("resource limits are not available: {why}"));
            Ok(None)
        }
        Err(cgroup::Error::Unavailable(why)) => Err(Error::invalid(format!(
            "cannot apply the requested limits: {why}"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// How the container's process is started beyond what its `Spec` says.
pub struct Start<'a> {
    /// Descriptors for its fds 0-2 (-1: inherit ours).
    pub stdio: [c_int; 3],
    /// A terminal of its own (the master comes back in `Started::pty`).
    pub pty: bool,
    /// `--init`: mrun's own PID 1 in front of the command.
    pub init: bool,
    /// Runs after the clone, before the container's setup (see `process::spawn`).
    pub before_release: Option<&'a mut dyn FnMut(i32) -> Result<()>>,
}

impl Default for Start<'_> {
    fn default() -> Self {
        Start {
            stdio: [-1; 3],
            pty: false,
            init: false,
            before_release: None,
        }
    }
}

/// A running container: its process, its terminal, its cgroup. `finish` once it exited.
pub struct Started {
    pub child: Child,
    pub pty: Option<OwnedFd>,
    cgroup: Option<Cgroup>,
    memory_limit: Option<u64>,
    _dir: DirGuard,
}

impl Started {
    /// Where the cgroup is, for the state file (None without cgroups).
    pub fn cgroup(&self) -> Option<cgroup::Record> {
        self.cgroup.as_ref().map(Cgroup::record)
    }

    /// After the process ended with `exit`: read the OOM state, remove the cgroup, and the
    /// directory unless kept.
    pub fn finish(mut self, exit: Exit) -> Result<Outcome> {
        let oom_killed = self.cgroup.as_ref().is_some_and(|c| c.oom_killed());
        if let Some(c) = self.cgroup.as_mut() {
            c.destroy()?;
        }
        Ok(Outcome {
            exit,
            oom_killed,
            memory_limit: self.memory_limit,
        })
    }
}

/// Start `spec` and return once its command runs. The container's directory is `spec.dir`
/// (see `create_dir`); on failure it is removed unless `opts.keep`.
pub fn start(spec: &Spec, opts: &RunOptions, how: Start<'_>) -> Result<Started> {
    let dir = DirGuard {
        dir: spec.dir.clone(),
        keep: opts.keep,
    };
    match spec.process.args.first().map(String::as_str) {
        None => return Err(Error::invalid("no command specified")),
        // execvp(3) would try "$dir/" for each PATH entry and report EACCES; Docker says 127.
        Some("") => {
            return Err(Error::Exec {
                path: String::new(),
                errno: libc::ENOENT,
            })
        }
        Some(_) => {}
    }
    let id = spec
        .dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("container")
        .to_string();
    let groups = if process::setgroups_denied(spec.userns.as_ref()) {
        None
    } else {
        Some(spec.process.groups.clone())
    };
    if let Some(maps) = &spec.userns {
        let p = &spec.process;
        crate::config::check_mapped(p.uid, p.gid, groups.as_deref(), maps)?;
    }
    let links = prepare(spec)?;
    let (cgroup, cgroupfs) = match make_cgroup(spec, &id, opts)? {
        Some((c, m)) => (Some(c), m),
        None => (None, vec![]),
    };
    let rootfs = Rootfs::plan(spec, &spec.dir.join("l"), &links, &cgroupfs)?;
    let mut plan = Plan::new(
        rootfs,
        cstr(&spec.hostname)?,
        spec.network.own_namespace(),
        true,
        (spec.process.uid, spec.process.gid, groups),
        spec.caps,
        cstr(&spec.process.cwd)?,
        candidates(spec)?,
        spec.process.args.iter().map(cstr).collect::<Result<_>>()?,
        spec.process.env.iter().map(cstr).collect::<Result<_>>()?,
    );
    plan.cmd.stdio = how.stdio;
    plan.cmd.pty = how.pty;
    plan.cmd.init = how.init;
    plan.cmd.seccomp = spec.seccomp.clone();
    // Held until the spawn returned: the child execs through it.
    let trampoline = crate::trampoline::memfd();
    plan.cmd.trampoline = trampoline.as_ref().map_or(-1, |f| f.as_raw_fd());
    plan.cmd.no_new_privs = spec.no_new_privs;
    if opts.forward_signals {
        process::block_forwarded()?;
    }
    let flags = process::clone_flags(spec.userns.is_some(), spec.network.own_namespace());
    let spawned = process::spawn(
        &plan,
        flags,
        spec.userns.as_ref(),
        cgroup.as_ref(),
        how.before_release.unwrap_or(&mut |_| Ok(())),
    )
    .map_err(|e| e.with_command(&spec.process.args[0]))?;
    drop(trampoline);
    Ok(Started {
        child: spawned.child,
        pty: spawned.pty,
        cgroup,
        memory_limit: spec.limits.memory,
        _dir: dir,
    })
}

/// Run `spec` to the end in the foreground, its stdio ours.
pub fn run(spec: &Spec, opts: &RunOptions) -> Result<Outcome> {
    let started = start(spec, opts, Start::default())?;
    let exit = started.child.wait(opts.forward_signals);
    match exit {
        Ok(exit) => started.finish(exit),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_links_keep_500_layers_in_a_page() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        let all: Vec<String> = (0..500).map(base36).collect();
        let opts = all.join(":").len() + "lowerdir=,upperdir=,workdir=".len() + 2 * 120;
        assert!(opts < 4096, "{opts}");
    }

    #[test]
    fn ids_are_64_hex_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
