//! What the unpack targets share: a sandbox directory per process holding the extraction
//! target and, beside it, a canary tree that an escaping entry would change. After every
//! input the sandbox must hold exactly what the target expects and the canary must be as
//! it was; anything else is a layer escape and aborts the run.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct Sandbox {
    pub dir: PathBuf,
    pub canary: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

impl Sandbox {
    /// `<tmp>/minibox-fuzz-<name>-<pid>/` with `canary/` made, after removing the sandboxes
    /// of processes that are gone (libFuzzer exits without running destructors).
    pub fn new(name: &str) -> Sandbox {
        let tmp = std::env::temp_dir();
        let prefix = format!("minibox-fuzz-{name}-");
        for e in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = n.strip_prefix(&prefix) {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = layers::store::remove_all(&e.path());
                }
            }
        }
        let dir = tmp.join(format!("{prefix}{}", std::process::id()));
        let _ = layers::store::remove_all(&dir);
        let canary = dir.join("canary");
        fs::create_dir_all(canary.join("sub")).unwrap();
        fs::write(canary.join("f1"), b"secret").unwrap();
        fs::write(canary.join("sub/f2"), b"more secret").unwrap();
        std::os::unix::fs::symlink("../f1", canary.join("sub/link")).unwrap();
        fs::set_permissions(canary.join("f1"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::set_permissions(canary.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
        let before = listing(&dir.join("canary"));
        Sandbox {
            dir,
            canary,
            before,
        }
    }

    /// Panics unless the sandbox holds exactly `names` and the canary is unchanged.
    pub fn check(&self, names: &[&str], what: &str) {
        let mut found: Vec<String> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        want.push("canary".into());
        want.sort();
        assert_eq!(
            found, want,
            "{what}: something was created beside the target"
        );
        assert_eq!(
            self.before,
            listing(&self.canary),
            "{what}: the canary beside the target changed"
        );
    }
}

/// The canary and everything under it, never following links: type, mode, owner, link
/// count, mtime and content or link target.
fn listing(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    let describe = |p: &Path, m: &fs::Metadata, what: String| {
        format!(
            "{what} mode {:o} owner {}:{} nlink {} mtime {}.{} xattrs {:?} ({})",
            m.mode(),
            m.uid(),
            m.gid(),
            m.nlink(),
            m.mtime(),
            m.mtime_nsec(),
            xattrs(p),
            p.display()
        )
    };
    let m = fs::symlink_metadata(dir).unwrap();
    out.insert(PathBuf::new(), describe(dir, &m, "dir".into()));
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("link {:?}", fs::read_link(&p).unwrap())
            } else if m.is_file() {
                format!("file {:?}", fs::read(&p).unwrap())
            } else if m.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else {
                format!("special {:o}", m.rdev())
            };
            out.insert(
                p.strip_prefix(dir).unwrap().to_path_buf(),
                describe(&p, &m, what),
            );
        }
    }
    out
}

/// The names of the xattrs of `p` itself (a symlink is not followed).
fn xattrs(p: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = xattr::list(p).map(Iterator::collect).unwrap_or_default();
    v.sort();
    v
}

/// Empty `dir` (recreating it), whatever modes the previous input left in it.
pub fn reset(dir: &Path) {
    layers::store::remove_all(dir).unwrap();
    fs::create_dir(dir).unwrap();
}
