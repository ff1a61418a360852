//! The store's OCI image layout, `ROOT/oci/` (`oci-layout`, `index.json`, `blobs/sha256/`):
//! made when missing, and moved there once from the root of a store made before the layout
//! had a directory of its own. It is kept apart from minibox's working state (`layers/`,
//! `containers/`, `tmp/`...) because OCI tools walk the whole layout directory:
//! `oci-image-tool validate` opens every file under it, and an extracted layer's whiteout (a
//! 0/0 character device, overlayfs(5)) fails that open with ENXIO, while a FIFO from any image
//! blocks it forever.
//!
//! Owns those three names at the root and the staging directory of the move. It must not touch
//! anything else in the root, nor change the layout without the store lock held exclusive.

use crate::error::{Error, IoContext, Result};
use crate::lock;
use crate::store::{canonical_json, empty_index, fsync_dir, mkdir, write_atomic};
use std::fs;
use std::path::Path;

/// The layout directory, relative to the store root.
pub const DIR: &str = "oci";

/// Where an old store's layout is gathered before one rename(2) makes it `DIR`, so that `DIR`
/// never exists half-moved. Not under `tmp/`: other processes remove what they can lock there.
const STAGING: &str = "oci.migrating";

/// What an OCI image layout holds at its top, in the order they are moved.
const ENTRIES: [&str; 3] = ["blobs", "index.json", "oci-layout"];

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Make sure `root/oci` holds a whole layout, moving an old store's layout into it first.
/// Returns true when this call finished such a move, so the caller tells the user once.
pub(crate) fn ensure(root: &Path) -> Result<bool> {
    ensure_with(root, &mut |_| Ok(()))
}

/// `ensure`, calling `step` after each change on disk: the tests end it there, as a SIGKILL
/// would, and check that the next call finishes the job.
fn ensure_with(root: &Path, step: &mut dyn FnMut(&str) -> Result<()>) -> Result<bool> {
    let dir = root.join(DIR);
    // The common case, two stats and no lock: index.json is written last, so it means whole.
    if exists(&dir.join("index.json")) && !exists(&root.join("index.json")) {
        return Ok(false);
    }
    // Every process that opens an old store lands here at once; the first to get the lock
    // moves the layout, the others find it moved.
    let _l = lock::lock_exclusive(&root.join("lock"))?;
    let moved = migrate(root, step)?;
    complete(&dir, step)?;
    Ok(moved)
}

/// Move `oci-layout`, `index.json` and `blobs/` from the root into `STAGING`, one rename(2)
/// each, then `STAGING` to `DIR`. A crash between any two renames leaves each entry either at
/// the root or in `STAGING`, and `DIR` missing: the next call moves the rest.
fn migrate(root: &Path, step: &mut dyn FnMut(&str) -> Result<()>) -> Result<bool> {
    let dir = root.join(DIR);
    let staging = root.join(STAGING);
    if exists(&dir) {
        // Our move never leaves both; an older minibox or `skopeo copy … oci:ROOT:…` writing
        // to the root after it does. Reading on would hide those images without a word.
        if exists(&root.join("index.json")) {
            return Err(Error::file(
                root,
                format!(
                    "holds two OCI layouts, {DIR}/ and one at its top (index.json, blobs/), \
                     written there by an older minibox or by a tool given oci:{}: move \
                     oci-layout, index.json and blobs/ out of the store and `mbuild load -i` \
                     that directory",
                    root.display()
                ),
            ));
        }
        return Ok(false);
    }
    let old: Vec<&str> = ENTRIES
        .into_iter()
        .filter(|n| exists(&root.join(n)))
        .collect();
    if old.is_empty() && !exists(&staging) {
        return Ok(false);
    }
    mkdir(&staging, 0o700)?;
    step("mkdir staging")?;
    for name in old {
        let (from, to) = (root.join(name), staging.join(name));
        fs::rename(&from, &to).ctx("move into the layout directory", &from)?;
        step(name)?;
    }
    // An entry the old store never had (it is made here, so `DIR` still appears whole).
    complete(&staging, step)?;
    fsync_dir(&staging)?;
    fsync_dir(root)?;
    fs::rename(&staging, &dir).ctx("rename into place", &dir)?;
    step("rename staging")?;
    fsync_dir(root)?;
    Ok(true)
}

/// Make what `dir` lacks of a layout, `index.json` last. Runs under the store lock, so a
/// `.NAME.tmp-PID` left there is a write that died (`update_index` stages elsewhere).
fn complete(dir: &Path, step: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
    mkdir(dir, 0o700)?;
    mkdir(&dir.join("blobs"), 0o700)?;
    mkdir(&dir.join("blobs/sha256"), 0o700)?;
    for e in fs::read_dir(dir).ctx("read directory", dir)?.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp-") {
            fs::remove_file(e.path()).ctx("remove", e.path())?;
        }
    }
    let layout = dir.join("oci-layout");
    if !exists(&layout) {
        write_atomic(dir, &layout, OCI_LAYOUT)?;
        step("oci-layout")?;
    }
    let index = dir.join("index.json");
    if !exists(&index) {
        write_atomic(dir, &index, &canonical_json(&empty_index())?)?;
        step("index.json")?;
    }
    Ok(())
}

/// Present under that name, of any type and without following a symlink.
fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// An old store's top: the layout at the root, beside working state.
    fn old_store(root: &Path) {
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        fs::write(root.join("blobs/sha256/ab"), "blob").unwrap();
        fs::write(
            root.join("index.json"),
            r#"{"schemaVersion":2,"manifests":[7]}"#,
        )
        .unwrap();
        fs::write(root.join("oci-layout"), OCI_LAYOUT).unwrap();
        fs::create_dir_all(root.join("layers/x")).unwrap();
    }

    fn names(dir: &Path) -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn assert_migrated(root: &Path) {
        let dir = root.join(DIR);
        assert_eq!(
            names(root),
            BTreeSet::from(["layers", "lock", "oci"].map(String::from))
        );
        assert_eq!(
            names(&dir),
            BTreeSet::from(["blobs", "index.json", "oci-layout"].map(String::from))
        );
        assert_eq!(fs::read(dir.join("blobs/sha256/ab")).unwrap(), b"blob");
        assert_eq!(
            fs::read_to_string(dir.join("index.json")).unwrap(),
            r#"{"schemaVersion":2,"manifests":[7]}"#
        );
        assert_eq!(fs::read(dir.join("oci-layout")).unwrap(), OCI_LAYOUT);
    }

    #[test]
    fn a_new_store_gets_the_layout_in_its_own_directory() {
        let t = tempfile::tempdir().unwrap();
        assert!(!ensure(t.path()).unwrap());
        let dir = t.path().join(DIR);
        assert_eq!(
            names(&dir),
            BTreeSet::from(["blobs", "index.json", "oci-layout"].map(String::from))
        );
        assert!(dir.join("blobs/sha256").is_dir());
        assert!(!ensure(t.path()).unwrap());
    }

    #[test]
    fn an_old_store_is_moved_once() {
        let t = tempfile::tempdir().unwrap();
        old_store(t.path());
        assert!(ensure(t.path()).unwrap());
        assert_migrated(t.path());
        assert!(!ensure(t.path()).unwrap());
        assert_migrated(t.path());
    }

    /// A crash after each change on disk, in turn: the next call finishes the move, says so
    /// once, and nothing is lost.
    #[test]
    fn a_crash_at_any_step_is_finished_by_the_next_call() {
        let mut steps = Vec::new();
        {
            let t = tempfile::tempdir().unwrap();
            old_store(t.path());
            ensure_with(t.path(), &mut |s| {
                steps.push(s.to_string());
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(
            steps,
            [
                "mkdir staging",
                "blobs",
                "index.json",
                "oci-layout",
                "rename staging"
            ]
        );
        for crash_at in &steps {
            let t = tempfile::tempdir().unwrap();
            old_store(t.path());
            let e = ensure_with(t.path(), &mut |s| {
                if s == crash_at {
                    Err(Error::file(s, "killed"))
                } else {
                    Ok(())
                }
            });
            assert!(e.is_err(), "{crash_at}");
            let finished_by_crash = crash_at == "rename staging";
            assert_eq!(ensure(t.path()).unwrap(), !finished_by_crash, "{crash_at}");
            assert_migrated(t.path());
        }
    }

    /// The same for a store whose layout lacks entries (made by hand, or by a crash of the
    /// code that made it): they are made in the staging directory, before the final rename.
    #[test]
    fn a_crash_while_completing_a_partial_old_layout_is_finished_too() {
        for crash_at in ["oci-layout", "index.json"] {
            let t = tempfile::tempdir().unwrap();
            fs::create_dir_all(t.path().join("blobs/sha256")).unwrap();
            let e = ensure_with(t.path(), &mut |s| {
                if s == crash_at {
                    Err(Error::file(s, "killed"))
                } else {
                    Ok(())
                }
            });
            assert!(e.is_err());
            assert!(!t.path().join(DIR).exists(), "{crash_at}");
            assert!(ensure(t.path()).unwrap());
            let dir = t.path().join(DIR);
            assert_eq!(
                names(&dir),
                BTreeSet::from(["blobs", "index.json", "oci-layout"].map(String::from))
            );
        }
    }

    #[test]
    fn a_temp_file_of_a_dead_write_is_cleared() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(DIR);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".index.json.tmp-99999"), "{").unwrap();
        assert!(!ensure(t.path()).unwrap());
        assert_eq!(
            names(&dir),
            BTreeSet::from(["blobs", "index.json", "oci-layout"].map(String::from))
        );
    }

    #[test]
    fn threads_opening_an_old_store_at_once_move_it_once() {
        let t = tempfile::tempdir().unwrap();
        old_store(t.path());
        let moved: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| ensure(t.path()).unwrap()))
                .collect();
            hs.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(moved, 1);
        assert_migrated(t.path());
    }

    #[test]
    fn a_layout_written_at_the_root_after_the_move_is_refused_naming_both() {
        let t = tempfile::tempdir().unwrap();
        ensure(t.path()).unwrap();
        old_store(t.path());
        let e = ensure(t.path()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: holds two OCI layouts", t.path().display())),
            "{e}"
        );
        assert!(e.contains("mbuild load -i"), "{e}");
        // Nothing was moved or lost.
        assert_eq!(fs::read(t.path().join("blobs/sha256/ab")).unwrap(), b"blob");
    }
}
