//! The store on disk: an OCI image layout in `oci/` (oci-layout, index.json, blobs/sha256/),
//! and beside it, never inside it, minibox's working state: `layers/<diff_id>/` (each layer
//! extracted once, with the whiteout devices, FIFOs and device nodes of images), `containers/`,
//! `cache/`, `tmp/` and `lock`. OCI tools are given `oci/` and walk only image data (see
//! `layout` for why, and for the move of an older store's layout out of the root).
//!
//! Everything lands by rename(2) from a staging directory under `tmp/`, so a crash never
//! leaves a half blob or a half layer under a real name. Each process owns one session
//! directory `tmp/s-<pid>-<nanos>/`, flock(2)ed for as long as it lives: one that can be
//! locked belongs to a dead process and is removed by the next command.
//!
//! GC safety: blobs and layers that a running process has produced or is about to use, but
//! that no tag references yet, are "pinned" in its session's `pins` file. Pinning takes the
//! store lock shared, GC takes it exclusive, so a pin is either seen by GC or lands after it
//! (and the pinning process then finds the blob missing and writes it again).

use crate::digest::{self, Digest, HashReader};
use crate::error::{Error, IoContext, Result};
use crate::layout;
use crate::lock::{self, Locked};
use crate::reference::{ImageName, Reference};
use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub struct Store {
    root: PathBuf,
    /// `root/oci`, the OCI image layout.
    layout: PathBuf,
    /// This `open` moved an older store's layout from the root into `layout`.
    migrated: bool,
    session: PathBuf,
    /// Holds the flock that marks the session as alive.
    _session_lock: File,
    counter: AtomicU64,
}

impl Store {
    /// `/var/lib/minibox` for root, `$XDG_DATA_HOME/minibox` (or `~/.local/share/minibox`)
    /// otherwise.
    pub fn default_root() -> PathBuf {
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/minibox");
        }
        match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x).join("minibox"),
            None => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
                PathBuf::from(home).join(".local/share/minibox")
            }
        }
    }

    /// Open the store at `root`, creating the layout when missing (or moving an older store's
    /// into `oci/`), and clear what dead processes left in `tmp/`. A store another user could
    /// change is refused before anything is written to it or moved in it (see `check_owned`).
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let given = root.as_ref();
        check_root_link(given)?;
        // 0700: layers hold setuid binaries and device nodes of images; host users must not
        // reach them through the store.
        if !given.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(given)
                .ctx("create directory", given)?;
        }
        let root = fs::canonicalize(given).ctx("resolve store root", given)?;
        check_owned(given, &root)?;
        for d in ["layers", "containers", "cache", "tmp"] {
            mkdir(&root.join(d), 0o700)?;
        }
        let migrated = layout::ensure(&root)?;
        clear_stale_sessions(&root.join("tmp"))?;

        let (session, session_lock) = new_session(&root.join("tmp"))?;
        Ok(Store {
            layout: root.join(layout::DIR),
            migrated,
            root,
            session,
            _session_lock: session_lock,
            counter: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The OCI image layout directory, `ROOT/oci`: what to give skopeo (`oci:ROOT/oci:name:tag`),
    /// umoci (`--layout`) and `oci-image-tool validate`.
    pub fn layout_dir(&self) -> &Path {
        &self.layout
    }

    /// The line to tell the user when this `open` moved an older store's layout into
    /// `layout_dir` (only the process that moved it gets one).
    pub fn migration_notice(&self) -> Option<String> {
        self.migrated.then(|| {
            format!(
                "moved the store's OCI layout into {} (one-time migration)",
                self.layout.display()
            )
        })
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.layout.join("blobs/sha256")
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.digest())
    }

    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.digest())
    }

    /// A fresh path inside this process's staging directory (not created).
    pub fn temp_path(&self, what: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.session.join(format!("{what}-{n}"))
    }

    /// A fresh, empty staging directory on the store's filesystem.
    pub fn temp_dir(&self, what: &str) -> Result<PathBuf> {
        let p = self.temp_path(what);
        mkdir(&p, 0o700)?;
        Ok(p)
    }

    pub(crate) fn lock_exclusive(&self) -> Result<Locked> {
        lock::lock_exclusive(&self.root.join("lock"))
    }

    /// Protect `d` (a blob digest or a layer diff_id) from GC for the life of this process.
    pub fn pin(&self, d: &Digest) -> Result<()> {
        let _l = lock::lock_shared(&self.root.join("lock"))?;
        let pins = self.session.join("pins");
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&pins)
            .ctx("open", &pins)?;
        writeln!(f, "{d}").ctx("write", &pins)
    }

    // ---- blobs --------------------------------------------------------------------------

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// A writer for a new blob; `commit` names it by its hash.
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let path = self.temp_path("blob");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .ctx("create", &path)?;
        Ok(BlobWriter {
            store: self,
            inner: Some(digest::HashWriter::new(io::BufWriter::with_capacity(
                256 << 10,
                file,
            ))),
            path,
        })
    }

    pub fn put_blob(&self, bytes: &[u8]) -> Result<(Digest, u64)> {
        let mut w = self.blob_writer()?;
        w.write_all(bytes).ctx("write", &w.path)?;
        w.commit()
    }

    /// Read a blob, verifying its digest when the end is reached.
    pub fn open_blob(&self, d: &Digest) -> Result<VerifiedReader> {
        let path = self.blob_path(d);
        let f = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::BadBlob {
                digest: d.to_string(),
                reason: "missing from the store".into(),
            },
            _ => Error::Io {
                op: "open",
                path: path.clone(),
                source: e,
            },
        })?;
        Ok(VerifiedReader {
            inner: HashReader::new(io::BufReader::with_capacity(256 << 10, f)),
            expected: d.clone(),
            checked: false,
        })
    }

    /// A whole (small) blob, verified.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let mut r = self.open_blob(d)?;
        let mut v = Vec::new();
        r.read_to_end(&mut v).map_err(|e| self.blob_error(d, e))?;
        Ok(v)
    }

    /// Turn an error from a `VerifiedReader` of blob `d` into the store's error.
    pub fn blob_error(&self, d: &Digest, e: io::Error) -> Error {
        match e.get_ref().and_then(|i| i.downcast_ref::<Mismatch>()) {
            Some(m) => Error::DigestMismatch {
                what: "blob",
                digest: d.to_string(),
                actual: m.0.clone(),
            },
            None => Error::Io {
                op: "read",
                path: self.blob_path(d),
                source: e,
            },
        }
    }

    // ---- index.json ---------------------------------------------------------------------

    pub fn read_index(&self) -> Result<ImageIndex> {
        let p = self.layout.join("index.json");
        let bytes = fs::read(&p).ctx("read", &p)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::file(&p, format!("invalid index: {e}")))
    }

    /// Change index.json under the store lock, by write-to-temp and rename.
    pub fn update_index<T>(&self, f: impl FnOnce(&mut Vec<Descriptor>) -> Result<T>) -> Result<T> {
        let _l = self.lock_exclusive()?;
        let mut index = self.read_index()?;
        let mut manifests = index.manifests().clone();
        let out = f(&mut manifests)?;
        index.set_manifests(manifests);
        let p = self.layout.join("index.json");
        let tmp = self.temp_path("index");
        write_atomic_via(&tmp, &p, &canonical_json(&index)?)?;
        Ok(out)
    }

    /// Every tag in the store, in index order.
    pub fn tags(&self) -> Result<Vec<(Reference, Descriptor)>> {
        let mut v = Vec::new();
        for d in self.read_index()?.manifests() {
            if let Some(r) = ref_name(d).and_then(|n| Reference::parse(n).ok()) {
                v.push((r, d.clone()));
            }
        }
        Ok(v)
    }

    /// The manifest descriptor a tag points at. Names compare in their normalized form, so
    /// an entry an older minibox (or another tool) recorded as `docker.io/library/x:1` or
    /// `library/x:1` is found as `x:1`.
    pub fn lookup(&self, r: &Reference) -> Result<Descriptor> {
        self.read_index()?
            .manifests()
            .iter()
            .find(|d| names_tag(d, r))
            .cloned()
            .ok_or_else(|| Error::ImageNotFound(r.to_string()))
    }

    /// Point `r` at `manifest` (replacing what it pointed at before).
    pub fn set_tag(&self, r: &Reference, manifest: &Descriptor) -> Result<()> {
        self.set_name(&ImageName::from(r), manifest)
    }

    /// Record `manifest` under `name` (a tag, or `name@sha256:...` for an image pulled by
    /// digest), replacing the entry of the same name. The index keeps the familiar form
    /// (`debian:latest`), as every minibox before it wrote.
    pub fn set_name(&self, name: &ImageName, manifest: &Descriptor) -> Result<()> {
        let key = name.to_string();
        let mut d = manifest.clone();
        let mut ann = d.annotations().clone().unwrap_or_default();
        ann.insert(REF_NAME.to_string(), key);
        d.set_annotations(Some(ann));
        self.update_index(|m| {
            m.retain(|x| entry_name(x).as_ref() != Some(name));
            m.push(d);
            Ok(())
        })
    }

    /// Remove a tag; returns the descriptor it pointed at.
    pub fn remove_tag(&self, r: &Reference) -> Result<Descriptor> {
        self.remove_name(&ImageName::from(r))
    }

    /// Remove the entry recorded under exactly `name`; returns its descriptor.
    pub fn remove_name(&self, name: &ImageName) -> Result<Descriptor> {
        self.update_index(|m| {
            let i = m
                .iter()
                .position(|x| entry_name(x).as_ref() == Some(name))
                .ok_or_else(|| Error::ImageNotFound(name.to_string()))?;
            Ok(m.remove(i))
        })
    }
}

/// The name an index entry is recorded under, normalized.
pub fn entry_name(d: &Descriptor) -> Option<ImageName> {
    ImageName::parse(ref_name(d)?).ok()
}

fn names_tag(d: &Descriptor, r: &Reference) -> bool {
    entry_name(d).is_some_and(|n| n.digest().is_none() && n.reference().as_ref() == Some(r))
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = remove_all(&self.session);
    }
}

pub fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(|s| s.as_str())
}

pub(crate) fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .expect("a valid empty index")
}

/// JSON with object keys sorted (serde_json's Value map is ordered), so the bytes, and so the
/// digest, never depend on HashMap iteration order.
pub fn canonical_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&serde_json::to_value(v)?)?)
}

/// A new blob being written: hashed as it is written, named by its hash on `commit`.
pub struct BlobWriter<'s> {
    store: &'s Store,
    inner: Option<digest::HashWriter<io::BufWriter<File>>>,
    path: PathBuf,
}

impl BlobWriter<'_> {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flush, fsync and rename to `oci/blobs/sha256/<hash>`. Returns the digest and size.
    pub fn commit(self) -> Result<(Digest, u64)> {
        self.finish(None)
    }

    /// Commit only when the content hashes to `want` (and has `size` bytes, when given):
    /// otherwise the temp file goes and no blob gets a name. For content from elsewhere
    /// (a registry) that claims a digest.
    pub fn commit_verified(self, want: &Digest, size: Option<u64>) -> Result<u64> {
        self.finish(Some((want, size))).map(|(_, n)| n)
    }

    fn finish(mut self, want: Option<(&Digest, Option<u64>)>) -> Result<(Digest, u64)> {
        let path = self.path.clone();
        let (buf, digest, size) = self.inner.take().expect("not yet committed").finish();
        let res = (|| {
            if let Some((w, n)) = want {
                if let Some(n) = n.filter(|n| *n != size) {
                    return Err(Error::BadBlob {
                        digest: w.to_string(),
                        reason: format!("size mismatch: expected {n} bytes, got {size}"),
                    });
                }
                if *w != digest {
                    return Err(Error::DigestMismatch {
                        what: "blob",
                        digest: w.to_string(),
                        actual: digest.to_string(),
                    });
                }
            }
            let file = buf
                .into_inner()
                .map_err(|e| e.into_error())
                .ctx("write", &path)?;
            file.sync_all().ctx("fsync", &path)?;
            drop(file);
            self.store.pin(&digest)?;
            let dest = self.store.blob_path(&digest);
            if dest.is_file() {
                // Blobs are immutable and named by their content: the one there is the same.
                fs::remove_file(&path).ctx("remove", &path)?;
            } else {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o444))
                    .ctx("chmod", &path)?;
                fs::rename(&path, &dest).ctx("rename into the store", &dest)?;
                fsync_dir(dest.parent().unwrap())?;
            }
            Ok((digest, size))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&path);
        }
        res
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.as_mut().expect("not yet committed").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().expect("not yet committed").flush()
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // Not committed: the partial temp file goes, never a half blob under a digest name.
        if self.inner.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The marker inside the io::Error a `VerifiedReader` returns on a digest mismatch.
#[derive(Debug)]
pub struct Mismatch(pub String);
impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "digest mismatch: content hashes to {}", self.0)
    }
}
impl std::error::Error for Mismatch {}

/// Reads a blob and fails at its end if the bytes do not hash to its name: a consumer that
/// reads to EOF never accepts corrupt content.
pub struct VerifiedReader {
    inner: HashReader<io::BufReader<File>>,
    expected: Digest,
    checked: bool,
}

impl VerifiedReader {
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.inner.count()
    }
}

impl Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.checked {
            let got = self.inner.digest();
            if got != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    Mismatch(got.to_string()),
                ));
            }
            self.checked = true;
        }
        Ok(n)
    }
}

// ---- who may change the store ---------------------------------------------------------

/// What the store holds, as minibox makes it (`names/` and `network/` are the runner's),
/// each a directory or a file. A parent comes before what is below it. The OCI layout is in
/// `oci/`; an older store's is at the top (and, during the move, in `oci.migrating/`), and is
/// checked too, before the move renames anything of it.
const LAYOUT: [(&str, bool); 20] = [
    ("oci", true),
    ("oci/blobs", true),
    ("oci/blobs/sha256", true),
    ("oci/oci-layout", false),
    ("oci/index.json", false),
    ("oci.migrating", true),
    ("blobs", true),
    ("blobs/sha256", true),
    ("oci-layout", false),
    ("index.json", false),
    ("layers", true),
    ("containers", true),
    ("cache", true),
    ("tmp", true),
    ("names", true),
    ("network", true),
    ("lock", false),
    ("sources.json", false),
    ("oci.migrating/blobs", true),
    ("oci.migrating/index.json", false),
];

fn unsafe_store(given: &Path, reason: String) -> Error {
    Error::UnsafeStore {
        root: given.display().to_string(),
        reason,
    }
}

/// The store's root given as a symlink must be the caller's own: another user's link could
/// be pointed anywhere, between two commands or during one.
fn check_root_link(given: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    match fs::symlink_metadata(given) {
        Ok(m) if m.file_type().is_symlink() && m.uid() != me => Err(unsafe_store(
            given,
            format!(
                "is a symlink owned by uid {}, not by you (uid {me}): give the directory it points to as the store, or remove the link",
                m.uid()
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuse a store (at `root`, canonical; `given` as the user named it, for messages) that
/// anyone but the caller (and root, who can do anything anyway) could change, as ssh
/// refuses loose key files: the root and every top-level entry of `LAYOUT` that exists must
/// be the caller's, not a symlink, and each directory not writable by group or others.
/// Otherwise a user who made the store's directory beforehand could swap `containers/` or
/// `tmp/` for a symlink and have the caller's writes (and `tmp/`'s cleanup) land wherever
/// it points. Checked on an O_PATH|O_NOFOLLOW|O_DIRECTORY fd of the root with fstat and
/// fstatat(AT_SYMLINK_NOFOLLOW): one open and a dozen stats, on every command.
fn check_owned(given: &Path, root: &Path) -> Result<()> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
    let me = rustix::process::geteuid().as_raw();
    // What is wrong with `st`, the entry at `at` (None: the root), with how to mend it.
    let problem = |st: &Stat, dir: bool, at: Option<&str>| -> Option<String> {
        let path = at.map_or_else(|| given.to_path_buf(), |name| given.join(name));
        let path = path.display();
        let alternative = match at {
            Some(_) => "remove it",
            None => "use a store of your own",
        };
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::Symlink {
            return Some("is a symlink: remove it (a store's own entries are never links)".into());
        }
        if dir && kind != FileType::Directory {
            return Some("is not a directory: remove it".into());
        }
        if !dir && kind != FileType::RegularFile {
            return Some("is not a regular file: remove it".into());
        }
        if st.st_uid != me {
            return Some(format!(
                "is owned by uid {}, not by you (uid {me}): {alternative}, or `chown -R {me} {path}` if you trust its contents",
                st.st_uid
            ));
        }
        if dir && st.st_mode & 0o022 != 0 {
            return Some(format!(
                "is writable by group or others (mode {:04o}): `chmod go-w {path}`",
                st.st_mode & 0o7777
            ));
        }
        None
    };
    let fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
    .ctx("open store root", root)?;
    let st = rustix::fs::fstat(&fd)
        .map_err(io::Error::from)
        .ctx("stat", root)?;
    if let Some(why) = problem(&st, true, None) {
        return Err(unsafe_store(given, why));
    }
    for (name, dir) in LAYOUT {
        let st = match rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(io::Error::from(e)).ctx("stat", root.join(name)),
        };
        if let Some(why) = problem(&st, dir, Some(name)) {
            return Err(unsafe_store(given, format!("{name} {why}")));
        }
    }
    Ok(())
}

// ---- small filesystem helpers ---------------------------------------------------------

pub(crate) fn mkdir(p: &Path, mode: u32) -> Result<()> {
    match fs::DirBuilder::new().mode(mode).create(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => Ok(()),
        Err(e) => Err(e).ctx("create directory", p),
    }
}

pub(crate) fn fsync_dir(p: &Path) -> Result<()> {
    File::open(p).and_then(|f| f.sync_all()).ctx("fsync", p)
}

/// Write `bytes` to `dest` through a temp file beside it in `dir`, fsynced, renamed.
pub(crate) fn write_atomic(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        dest.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    write_atomic_via(&tmp, dest, bytes)
}

pub(crate) fn write_atomic_via(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(tmp)
            .ctx("create", tmp)?;
        f.write_all(bytes).ctx("write", tmp)?;
        f.sync_all().ctx("fsync", tmp)?;
        fs::rename(tmp, dest).ctx("rename into place", dest)?;
        fsync_dir(dest.parent().unwrap())
    })();
    if res.is_err() {
        let _ = fs::remove_file(tmp);
    }
    res
}

/// Remove a tree that may contain read-only directories (layers are made read-only).
pub fn remove_all(p: &Path) -> io::Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            for e in walk_dirs(p) {
                let _ = fs::set_permissions(&e, fs::Permissions::from_mode(0o700));
            }
            fs::remove_dir_all(p)
        }
    }
}

fn walk_dirs(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![p.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let _ = fs::set_permissions(&out[i], fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// Create and lock this process's session directory. Another process clearing stale
/// sessions may lock and remove it between our mkdir and our flock; the inode check
/// afterwards notices that, and we start over under a new name.
fn new_session(tmp: &Path) -> Result<(PathBuf, File)> {
    use std::os::unix::fs::MetadataExt;
    for attempt in 0u32.. {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let session = tmp.join(format!("s-{}-{nanos}-{attempt}", std::process::id()));
        mkdir(&session, 0o700)?;
        // Another process clearing stale sessions may take a new one for dead between our
        // mkdir and our lock, and remove it: then simply make another.
        let f = match File::open(&session) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).ctx("open", &session),
        };
        let locked = lock::try_lock_exclusive(&f).ctx("lock", &session)?;
        let same = match (f.metadata(), fs::symlink_metadata(&session)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if locked && same {
            return Ok((session, f));
        }
    }
    unreachable!()
}

/// Remove the session directories of processes that are gone (their flock is free), and
/// any stray temp file of an interrupted atomic write.
fn clear_stale_sessions(tmp: &Path) -> Result<()> {
    for e in fs::read_dir(tmp).ctx("read directory", tmp)?.flatten() {
        let p = e.path();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !is_dir {
            let _ = fs::remove_file(&p);
            continue;
        }
        let Ok(f) = File::open(&p) else { continue };
        if lock::try_lock_exclusive(&f).unwrap_or(false) {
            let _ = remove_all(&p);
        }
    }
    Ok(())
}

/// The pins of every live session and container: digests GC must keep.
pub(crate) fn live_pins(root: &Path) -> HashMap<String, ()> {
    let mut pins = HashMap::new();
    let mut add = |file: PathBuf| {
        if let Ok(s) = fs::read_to_string(file) {
            for l in s.lines() {
                pins.insert(l.trim().to_string(), ());
            }
        }
    };
    if let Ok(rd) = fs::read_dir(root.join("tmp")) {
        for e in rd.flatten() {
            let p = e.path();
            let Ok(f) = File::open(&p) else { continue };
            // A session we can lock is dead: its pins no longer count.
            if !lock::try_lock_exclusive(&f).unwrap_or(true) {
                add(p.join("pins"));
            }
        }
    }
    if let Ok(rd) = fs::read_dir(root.join("containers")) {
        for e in rd.flatten() {
            add(e.path().join("pins"));
        }
    }
    pins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_created_private_and_valid() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("store");
        let s = Store::open(&root).unwrap();
        for d in [&root, &root.join("oci")] {
            let mode = fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        assert_eq!(s.layout_dir(), root.canonicalize().unwrap().join("oci"));
        assert_eq!(
            fs::read_to_string(root.join("oci/oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        assert!(s.read_index().unwrap().manifests().is_empty());
        assert!(!root.join("index.json").exists() && !root.join("blobs").exists());
        assert_eq!(s.migration_notice(), None);
    }

    #[test]
    fn blobs_are_named_by_hash_and_verified() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let (d, n) = s.put_blob(b"hello").unwrap();
        assert_eq!(n, 5);
        assert_eq!(d, digest::sha256(b"hello"));
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
        let p = s.blob_path(&d);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, b"hellO").unwrap();
        let e = s.read_blob(&d).unwrap_err().to_string();
        assert!(e.contains("digest mismatch"), "{e}");
        assert!(e.contains(&d.to_string()), "{e}");
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let mut w = s.blob_writer().unwrap();
        w.write_all(b"partial").unwrap();
        let p = w.path().to_path_buf();
        drop(w);
        assert!(!p.exists());
        assert_eq!(
            fs::read_dir(s.layout_dir().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn stale_sessions_are_cleared_live_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let live = Store::open(t.path()).unwrap();
        let dead = t.path().join("tmp/s-1-1");
        fs::create_dir_all(dead.join("x")).unwrap();
        let _again = Store::open(t.path()).unwrap();
        assert!(!dead.exists());
        assert!(live.session.exists());
    }

    #[test]
    fn a_store_others_could_change_is_refused_before_anything_is_written() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("store");
        drop(Store::open(&root).unwrap());
        let err = |r: &Path| match Store::open(r) {
            Err(e @ Error::UnsafeStore { .. }) => e.to_string(),
            Err(e) => panic!("another error: {e}"),
            Ok(_) => panic!("opened"),
        };
        let shown = root.display();

        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(
            err(&root),
            format!(
                "store {shown}: is writable by group or others (mode 0777): `chmod go-w {shown}`"
            )
        );
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        Store::open(&root).unwrap();

        let containers = root.join("containers");
        fs::set_permissions(&containers, fs::Permissions::from_mode(0o707)).unwrap();
        assert!(err(&root).ends_with(&format!(
            ": containers is writable by group or others (mode 0707): `chmod go-w {shown}/containers`"
        )));
        fs::remove_dir(&containers).unwrap();
        let elsewhere = t.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &containers).unwrap();
        assert!(err(&root).contains(": containers is a symlink: remove it"));
        fs::remove_file(&containers).unwrap();
        fs::write(&containers, "").unwrap();
        assert!(err(&root).contains(": containers is not a directory"));
        fs::remove_file(&containers).unwrap();
        let index = root.join("oci/index.json");
        fs::rename(&index, t.path().join("index")).unwrap();
        std::os::unix::fs::symlink(t.path().join("index"), &index).unwrap();
        assert!(err(&root).contains(": oci/index.json is a symlink"));
        // Nothing was made or cleared while refusing.
        assert!(!containers.exists());
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        fs::remove_file(&index).unwrap();
        fs::rename(t.path().join("index"), &index).unwrap();

        // Another user's: only root can make one here.
        if rustix::process::geteuid().is_root() {
            let uid = rustix::process::Uid::from_raw(54321);
            rustix::fs::chown(&root, Some(uid), None).unwrap();
            assert_eq!(
                err(&root),
                format!("store {shown}: is owned by uid 54321, not by you (uid 0): use a store of your own, or `chown -R 0 {shown}` if you trust its contents")
            );
            let link = t.path().join("link");
            std::os::unix::fs::symlink(&root, &link).unwrap();
            rustix::fs::chown(&root, Some(rustix::process::Uid::ROOT), None).unwrap();
            Store::open(&link).unwrap();
            std::os::unix::fs::lchown(&link, Some(54321), None).unwrap();
            assert!(err(&link).contains(": is a symlink owned by uid 54321, not by you (uid 0)"));
        }
        Store::open(&root).unwrap();
    }

    #[test]
    fn tags_replace_and_remove() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let (d, n) = s.put_blob(b"{}").unwrap();
        let desc = Descriptor::new(MediaType::ImageManifest, n, d);
        let r = Reference::parse("a:1").unwrap();
        s.set_tag(&r, &desc).unwrap();
        s.set_tag(&r, &desc).unwrap();
        assert_eq!(s.tags().unwrap().len(), 1);
        assert_eq!(s.lookup(&r).unwrap().digest(), desc.digest());
        s.remove_tag(&r).unwrap();
        assert!(matches!(s.lookup(&r), Err(Error::ImageNotFound(_))));
    }
}
