//! Unpack: a layer tar -> a directory in overlay form (whiteouts as 0/0 character devices,
//! opaque directories as an xattr). Hostile input is expected: no entry lands outside the
//! target, nothing is written through a symlink, each refusal names the entry.
//!
//! The tar crate only parses headers here; the extraction loop is ours. Each entry name is
//! cleaned lexically, its parent directory is opened with openat2(2) RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS relative to the target, and the last component is created with *at()
//! calls that never follow it. That closes the classic layer escapes: `..` and absolute
//! names (CVE-2016-6321), writing or linking through a symlink or hard link the same tar
//! created (CVE-2014-6407, CVE-2014-9356), and chmod/chown through a symlink
//! (CVE-2021-32760).

use crate::digest::{Digest, HashReader};
use crate::error::{io_message, Error, Result};
use crate::store::{self, Store};
use crate::whiteout;
use oci_spec::image::Descriptor;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use tar::EntryType;

#[derive(Clone, Debug)]
pub struct UnpackOptions {
    /// The xattr that marks an opaque directory (see `whiteout::opaque_xattr`).
    pub opaque_xattr: &'static str,
    /// Restore owners (needs CAP_CHOWN).
    pub same_owner: bool,
    /// Create character and block devices (needs CAP_MKNOD in the initial user namespace).
    /// When false they are skipped and counted, as rootless Docker and Podman do. Fifos and
    /// whiteout devices are created either way.
    pub devices: bool,
}

impl Default for UnpackOptions {
    /// What this process may do: trusted.* xattrs and device nodes only as real root (not
    /// root of a user namespace), owners whenever the effective uid is 0.
    fn default() -> Self {
        let opaque_xattr = whiteout::opaque_xattr();
        UnpackOptions {
            opaque_xattr,
            same_owner: rustix::process::geteuid().is_root(),
            devices: opaque_xattr == whiteout::OPAQUE_XATTR,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Character and block devices left out because `UnpackOptions::devices` was false.
    pub skipped_devices: u64,
}

/// Extract an uncompressed layer tar from `tar` into `target`, an existing empty directory.
///
/// The root of the tree gets the metadata of the tar's `./` entry, or mode 0755.
pub fn unpack<R: Read>(tar: R, target: &Path, opts: &UnpackOptions) -> Result<UnpackStats> {
    let root = rustix::fs::open(
        target,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Io {
        op: "open",
        path: target.to_path_buf(),
        source: e.into(),
    })?;
    let mut x = Extractor {
        opts,
        target,
        root: Rc::new(root),
        cached: None,
        dirs: HashMap::new(),
        buf: vec![0; 256 << 10],
        stats: UnpackStats::default(),
    };
    x.dirs.insert(
        Vec::new(),
        DirMeta {
            name: b"./".to_vec(),
            meta: Meta {
                mode: 0o755,
                owner: None,
                mtime: None,
                xattrs: Vec::new(),
            },
        },
    );

    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().map_err(tar_error)?;
    for entry in entries {
        let mut entry = entry.map_err(tar_error)?;
        x.entry(&mut entry)?;
    }
    x.finish()
}

fn tar_error(e: io::Error) -> Error {
    Error::file("layer tar", format!("invalid tar: {}", io_message(&e)))
}

/// Metadata applied to what an entry created.
struct Meta {
    /// Permission bits including setuid/setgid/sticky: kept as data, the store is 0700.
    mode: u32,
    owner: Option<(u32, u32)>,
    mtime: Option<Timespec>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A directory whose metadata is applied after everything below it is written: creating
/// children changes its mtime, and a 0555 directory would refuse its own children.
struct DirMeta {
    /// The entry name as in the tar, for errors.
    name: Vec<u8>,
    meta: Meta,
}

struct Extractor<'a> {
    opts: &'a UnpackOptions,
    target: &'a Path,
    /// O_PATH descriptor of the target: every path is resolved beneath it.
    root: Rc<OwnedFd>,
    /// The last parent directory resolved: consecutive entries mostly share it.
    cached: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Cleaned path ("" for the root) -> metadata to apply at the end.
    dirs: HashMap<Vec<u8>, DirMeta>,
    buf: Vec<u8>,
    stats: UnpackStats,
}

/// How `openat2(2)` resolves every path of the layer: beneath the target, through no
/// symlink (so a symlink the tar created earlier can never redirect a later entry), and
/// through no /proc magic link.
fn resolve_flags() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

fn open_beneath(dir: BorrowedFd<'_>, path: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        // EAGAIN: the kernel could not rule out a concurrent rename racing the lookup.
        match rustix::fs::openat2(
            dir,
            path,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            resolve_flags(),
        ) {
            Err(Errno::AGAIN) if tries < 8 => tries += 1,
            r => return r,
        }
    }
}

/// `name` made relative and lexically clean: no empty, `.` or `..` components remain. An
/// absolute name is taken relative to the root, as Docker does; a `..` that would climb
/// above the root is refused rather than clamped, since such a tar is crafted.
fn clean(name: &[u8]) -> std::result::Result<Vec<u8>, &'static str> {
    if name.contains(&0) {
        return Err("name contains a nul byte");
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err("path climbs above the root");
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join(&b'/'))
}

/// ("a/b", "c") for "a/b/c"; ("", "c") for "c".
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&path[..0], path),
    }
}

fn depth(path: &[u8]) -> usize {
    if path.is_empty() {
        0
    } else {
        1 + path.iter().filter(|&&b| b == b'/').count()
    }
}

fn errno_message(e: Errno) -> String {
    io_message(&io::Error::from(e))
}

fn resolve_error(name: &[u8], e: Errno) -> Error {
    let reason = match e {
        Errno::LOOP => "path goes through a symlink".to_string(),
        Errno::NOTDIR => "a parent of the entry is not a directory".to_string(),
        Errno::XDEV => "path escapes the target".to_string(),
        Errno::NOSYS => "openat2 is not available (linux 5.6 or later is needed)".to_string(),
        e => format!("open parent directory: {}", errno_message(e)),
    };
    Error::entry(name, reason)
}

/// "1700000000.5", "-1.25": PAX times are decimal seconds with an optional fraction.
fn pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut secs: i64 = int.parse().ok()?;
    let mut nanos: i64 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + frac.as_bytes().get(i).map_or(0, |b| (b - b'0') as i64);
    }
    if neg {
        secs = -secs;
        if nanos > 0 {
            secs -= 1;
            nanos = 1_000_000_000 - nanos;
        }
    }
    Some(Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    })
}

/// Overlay's own xattrs: an image carrying them could forge whiteouts, opaque directories
/// or redirects in the layers below it (overlayfs(5)).
fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Remove `name` in `dir` and, if it is a directory, everything below it, never following
/// a symlink.
fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Err(Errno::ISDIR) => {}
        r => return r,
    }
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children = Vec::new();
    for e in rustix::fs::Dir::read_from(&fd)? {
        let e = e?;
        let n = e.file_name();
        if n != c"." && n != c".." {
            children.push(n.to_bytes().to_vec());
        }
    }
    for c in children {
        remove_tree(fd.as_fd(), &c)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

impl Extractor<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let name = entry.path_bytes().into_owned();
        let name = &name[..];
        let kind = entry.header().entry_type();
        // Global PAX headers hold archive-wide defaults (comments, mostly); Docker and
        // containerd ignore them too.
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        self.stats.entries += 1;
        let path = clean(name).map_err(|r| Error::entry(name, r))?;
        let (parent, base) = split(&path);

        // AUFS bookkeeping (`.wh..wh.plnk/`, `.wh..wh.aufs`) at the top of old Docker
        // layers describes no file: skip it as Docker does.
        let first = path.split(|&b| b == b'/').next().unwrap_or(b"");
        if first.starts_with(b".wh..wh.") && path != whiteout::OPAQUE.as_bytes() {
            return Ok(());
        }
        if parent
            .split(|&b| b == b'/')
            .any(|c| c.starts_with(whiteout::PREFIX.as_bytes()))
        {
            return Err(Error::entry(
                name,
                "a whiteout cannot have entries below it",
            ));
        }
        if let Some(hidden) = base.strip_prefix(whiteout::PREFIX.as_bytes()) {
            // Docker ignores a whiteout's type; a hard link is refused because it would
            // make the whiteout share an inode with a real file.
            if kind == EntryType::Link {
                return Err(Error::entry(name, "a hard link cannot be a whiteout"));
            }
            if base == whiteout::OPAQUE.as_bytes() {
                return self.opaque(name, parent);
            }
            let reason = match hidden {
                b"" => Some("malformed whiteout: empty name"),
                b"." | b".." => Some("malformed whiteout: names . or .."),
                h if h.starts_with(whiteout::PREFIX.as_bytes()) => {
                    Some("malformed whiteout: hides a reserved .wh. name")
                }
                _ => None,
            };
            if let Some(r) = reason {
                return Err(Error::entry(name, r));
            }
            return self.whiteout(name, parent, hidden);
        }

        let h = entry.header();
        let bad =
            |what: &str, e: io::Error| Error::entry(name, format!("{what}: {}", io_message(&e)));
        let mode = h.mode().map_err(|e| bad("invalid mode", e))? & 0o7777;
        let uid = h.uid().map_err(|e| bad("invalid uid", e))?;
        let gid = h.gid().map_err(|e| bad("invalid gid", e))?;
        // u32::MAX is -1, "no change", to chown(2).
        let (uid, gid) = match (u32::try_from(uid), u32::try_from(gid)) {
            (Ok(u), Ok(g)) if u != u32::MAX && g != u32::MAX => (u, g),
            _ => return Err(Error::entry(name, "uid or gid out of range")),
        };
        let mtime = h.mtime().map_err(|e| bad("invalid mtime", e))?;
        let device = match kind {
            EntryType::Char | EntryType::Block => {
                let major = h
                    .device_major()
                    .map_err(|e| bad("invalid device major", e))?;
                let minor = h
                    .device_minor()
                    .map_err(|e| bad("invalid device minor", e))?;
                rustix::fs::makedev(major.unwrap_or(0), minor.unwrap_or(0))
            }
            _ => 0,
        };
        let mut meta = Meta {
            mode,
            owner: Some((uid, gid)),
            mtime: Some(Timespec {
                tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
                tv_nsec: 0,
            }),
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry
            .pax_extensions()
            .map_err(|e| bad("invalid pax header", e))?
        {
            for ext in pax {
                let ext = ext.map_err(|e| bad("invalid pax header", e))?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    let t = pax_time(ext.value_bytes())
                        .ok_or_else(|| Error::entry(name, "invalid pax mtime"))?;
                    meta.mtime = Some(t);
                } else if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                    if x.is_empty() || x.contains(&0) {
                        return Err(Error::entry(name, "invalid xattr name"));
                    }
                    if !is_overlay_xattr(x) {
                        meta.xattrs.push((x.to_vec(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        let link = entry.link_name_bytes().map(|l| l.into_owned());

        let is_dir = kind == EntryType::Directory
            || (matches!(kind, EntryType::Regular | EntryType::Continuous) && name.ends_with(b"/"));
        if path.is_empty() {
            // Never change the root's type: it is the layer directory itself.
            if !is_dir {
                return Err(Error::entry(name, "the layer root can only be a directory"));
            }
            self.dirs.insert(
                path,
                DirMeta {
                    name: name.to_vec(),
                    meta,
                },
            );
            return Ok(());
        }
        if is_dir {
            return self.dir(name, &path, meta);
        }
        match kind {
            EntryType::Regular | EntryType::Continuous => self.file(name, &path, entry, meta),
            EntryType::Symlink => {
                let target = link
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| Error::entry(name, "symlink without a target"))?;
                if target.contains(&0) {
                    return Err(Error::entry(name, "symlink target contains a nul byte"));
                }
                self.symlink(name, &path, &target, meta)
            }
            EntryType::Link => {
                let target = link
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| Error::entry(name, "hard link without a target"))?;
                self.hardlink(name, &path, &target)
            }
            EntryType::Char | EntryType::Block if !self.opts.devices => {
                self.stats.skipped_devices += 1;
                Ok(())
            }
            EntryType::Char => self.node(name, &path, FileType::CharacterDevice, device, meta),
            EntryType::Block => self.node(name, &path, FileType::BlockDevice, device, meta),
            EntryType::Fifo => self.node(name, &path, FileType::Fifo, 0, meta),
            EntryType::GNUSparse => Err(Error::entry(name, "gnu sparse files are not supported")),
            k => Err(Error::entry(
                name,
                format!("unsupported entry type {:?}", k.as_byte() as char),
            )),
        }
    }

    /// The parent directory `dir` (a cleaned path) as an O_PATH descriptor, resolved beneath
    /// the target without following any symlink. With `create`, missing directories are
    /// made (0755, as Docker does for parents a tar leaves out).
    fn resolve(&mut self, dir: &[u8], create: bool) -> rustix::io::Result<Rc<OwnedFd>> {
        if dir.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some((p, fd)) = &self.cached {
            if p == dir {
                return Ok(fd.clone());
            }
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        let fd = match open_beneath(self.root.as_fd(), dir, flags) {
            Ok(fd) => Rc::new(fd),
            Err(Errno::NOENT) if create => {
                let mut cur = self.root.clone();
                let mut end = 0;
                for c in dir.split(|&b| b == b'/') {
                    end += c.len();
                    cur = match open_beneath(cur.as_fd(), c, flags) {
                        Ok(fd) => Rc::new(fd),
                        Err(Errno::NOENT) => {
                            match rustix::fs::mkdirat(cur.as_fd(), c, Mode::from_raw_mode(0o755)) {
                                Ok(()) | Err(Errno::EXIST) => {}
                                Err(e) => return Err(e),
                            }
                            let key = dir[..end].to_vec();
                            self.dirs.entry(key.clone()).or_insert_with(|| DirMeta {
                                name: key,
                                meta: Meta {
                                    mode: 0o755,
                                    owner: None,
                                    mtime: None,
                                    xattrs: Vec::new(),
                                },
                            });
                            Rc::new(open_beneath(cur.as_fd(), c, flags)?)
                        }
                        Err(e) => return Err(e),
                    };
                    end += 1;
                }
                cur
            }
            Err(e) => return Err(e),
        };
        self.cached = Some((dir.to_vec(), fd.clone()));
        Ok(fd)
    }

    fn parent(&mut self, name: &[u8], path: &[u8]) -> Result<Rc<OwnedFd>> {
        self.resolve(split(path).0, true)
            .map_err(|e| resolve_error(name, e))
    }

    /// A failed syscall on an entry. Out of space stays an I/O error so callers can say so
    /// (`Error::is_no_space`); anything else names the entry.
    fn sys_error(&self, name: &[u8], path: &[u8], op: &'static str, e: Errno) -> Error {
        if matches!(e, Errno::NOSPC | Errno::DQUOT) {
            return Error::Io {
                op,
                path: self.target.join(OsStr::from_bytes(path)),
                source: e.into(),
            };
        }
        Error::entry(name, format!("{op}: {}", errno_message(e)))
    }

    /// Make room for a new entry at `base` in `dir`: a later entry of the same name replaces
    /// the earlier one (a file replaces a symlink, it never writes through it).
    fn remove_existing(
        &mut self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        path: &[u8],
    ) -> rustix::io::Result<()> {
        match rustix::fs::unlinkat(dir, base, AtFlags::empty()) {
            Err(Errno::ISDIR) => {}
            r => return r,
        }
        // Descriptors cached for directories of the removed tree would point at unlinked
        // inodes; their pending metadata belongs to nothing any more.
        self.cached = None;
        self.dirs.retain(|k, _| {
            !(k.as_slice() == path || (k.starts_with(path) && k.get(path.len()) == Some(&b'/')))
        });
        remove_tree(dir, base)
    }

    /// Run `create`; if the name is taken, remove what is there and run it once more.
    fn create_replacing<T>(
        &mut self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        path: &[u8],
        mut create: impl FnMut() -> rustix::io::Result<T>,
    ) -> rustix::io::Result<T> {
        match create() {
            Err(Errno::EXIST) => {
                self.remove_existing(dir, base, path)?;
                create()
            }
            r => r,
        }
    }

    fn dir(&mut self, name: &[u8], path: &[u8], meta: Meta) -> Result<()> {
        let pfd = self.parent(name, path)?;
        let dir = pfd.as_fd();
        let base = split(path).1;
        let mkdir = || rustix::fs::mkdirat(dir, base, Mode::from_raw_mode(0o755));
        match mkdir() {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rustix::fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.sys_error(name, path, "stat", e))?;
                // An existing directory is re-declared: keep it and its contents and only
                // take the new metadata. Anything else, a symlink included, is replaced.
                if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                    self.remove_existing(dir, base, path)
                        .and_then(|()| mkdir())
                        .map_err(|e| self.sys_error(name, path, "create directory", e))?;
                }
            }
            Err(e) => return Err(self.sys_error(name, path, "create directory", e)),
        }
        self.dirs.insert(
            path.to_vec(),
            DirMeta {
                name: name.to_vec(),
                meta,
            },
        );
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        name: &[u8],
        path: &[u8],
        entry: &mut tar::Entry<'_, R>,
        meta: Meta,
    ) -> Result<()> {
        let pfd = self.parent(name, path)?;
        let dir = pfd.as_fd();
        let base = split(path).1;
        // O_EXCL|O_NOFOLLOW: a name that exists (a symlink, a hard link to another file) is
        // removed and the file created anew, so content never lands in another inode.
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = self
            .create_replacing(dir, base, path, || {
                rustix::fs::openat(dir, base, flags, Mode::from_raw_mode(0o600))
            })
            .map_err(|e| self.sys_error(name, path, "create", e))?;
        let mut file = File::from(fd);
        let size = entry.size();
        let mut written = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::entry(
                        name,
                        format!("read content: {}", io_message(&e)),
                    ))
                }
            };
            if let Err(e) = file.write_all(&self.buf[..n]) {
                return Err(match e.raw_os_error() {
                    Some(c) => self.sys_error(name, path, "write", Errno::from_raw_os_error(c)),
                    None => Error::entry(name, format!("write: {}", io_message(&e))),
                });
            }
            written += n as u64;
        }
        if written != size {
            return Err(Error::entry(name, "content is truncated"));
        }
        self.stats.bytes += written;
        self.apply_fd(name, path, file.as_fd(), &meta)
    }

    /// Owner, mode, xattrs and times on an open descriptor: nothing here can be redirected.
    /// chown(2) comes first since it clears setuid bits and security.capability.
    fn apply_fd(&self, name: &[u8], path: &[u8], fd: BorrowedFd<'_>, meta: &Meta) -> Result<()> {
        if let (true, Some((u, g))) = (self.opts.same_owner, meta.owner) {
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(u)),
                Some(rustix::fs::Gid::from_raw(g)),
            )
            .map_err(|e| self.sys_error(name, path, "chown", e))?;
        }
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| self.sys_error(name, path, "chmod", e))?;
        for (k, v) in &meta.xattrs {
            let r = rustix::fs::fsetxattr(fd, k.as_slice(), v, XattrFlags::empty());
            self.xattr_result(name, path, k, r)?;
        }
        if let Some(t) = meta.mtime {
            let ts = Timestamps {
                last_access: t,
                last_modification: t,
            };
            rustix::fs::futimens(fd, &ts)
                .map_err(|e| self.sys_error(name, path, "set times", e))?;
        }
        Ok(())
    }

    /// A filesystem without xattrs loses them (as containerd does); an unprivileged
    /// extraction cannot set trusted.* or security.* and drops them (as GNU tar does).
    fn xattr_result(
        &self,
        name: &[u8],
        path: &[u8],
        key: &[u8],
        r: rustix::io::Result<()>,
    ) -> Result<()> {
        match r {
            Ok(()) | Err(Errno::NOTSUP) => Ok(()),
            Err(Errno::PERM) if !self.opts.same_owner => Ok(()),
            Err(e @ (Errno::NOSPC | Errno::DQUOT)) => {
                Err(self.sys_error(name, path, "set xattr", e))
            }
            Err(e) => Err(Error::entry(
                name,
                format!(
                    "set xattr {}: {}",
                    String::from_utf8_lossy(key),
                    errno_message(e)
                ),
            )),
        }
    }

    /// `/proc/self/fd/<dir>/<base>`: the path an l*xattr(2) call takes to reach `base` in an
    /// already resolved directory without following `base` itself (there is no
    /// lsetxattrat before Linux 6.13).
    fn proc_path(dir: BorrowedFd<'_>, base: &[u8]) -> Vec<u8> {
        let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        p.extend_from_slice(base);
        p
    }

    /// Metadata of a symlink, device or fifo, by name in its directory and never
    /// following it.
    fn apply_at(
        &self,
        name: &[u8],
        path: &[u8],
        dir: BorrowedFd<'_>,
        base: &[u8],
        meta: &Meta,
        symlink: bool,
    ) -> Result<()> {
        if let (true, Some((u, g))) = (self.opts.same_owner, meta.owner) {
            rustix::fs::chownat(
                dir,
                base,
                Some(rustix::fs::Uid::from_raw(u)),
                Some(rustix::fs::Gid::from_raw(g)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.sys_error(name, path, "chown", e))?;
        }
        // Symlink permissions mean nothing on Linux, and fchmodat(2) would follow the link.
        // Devices and fifos cannot be opened for fchmod without side effects, so chmod goes
        // through the /proc magic link of an O_PATH descriptor, which names that inode and
        // no other.
        if !symlink {
            let chmod = || -> rustix::io::Result<()> {
                let fd = rustix::fs::openat(
                    dir,
                    base,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let st = rustix::fs::fstat(&fd)?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                    return Err(Errno::LOOP);
                }
                let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
                rustix::fs::chmod(p.as_str(), Mode::from_raw_mode(meta.mode))
            };
            chmod().map_err(|e| self.sys_error(name, path, "chmod", e))?;
        }
        if !meta.xattrs.is_empty() {
            let p = Self::proc_path(dir, base);
            for (k, v) in &meta.xattrs {
                let r = rustix::fs::lsetxattr(p.as_slice(), k.as_slice(), v, XattrFlags::empty());
                self.xattr_result(name, path, k, r)?;
            }
        }
        if let Some(t) = meta.mtime {
            let ts = Timestamps {
                last_access: t,
                last_modification: t,
            };
            rustix::fs::utimensat(dir, base, &ts, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.sys_error(name, path, "set times", e))?;
        }
        Ok(())
    }

    fn symlink(&mut self, name: &[u8], path: &[u8], target: &[u8], meta: Meta) -> Result<()> {
        let pfd = self.parent(name, path)?;
        let dir = pfd.as_fd();
        let base = split(path).1;
        // The target is stored verbatim: a symlink may point anywhere; it is only never
        // followed while extracting.
        self.create_replacing(dir, base, path, || rustix::fs::symlinkat(target, dir, base))
            .map_err(|e| self.sys_error(name, path, "create symlink", e))?;
        self.apply_at(name, path, dir, base, &meta, true)
    }

    fn node(
        &mut self,
        name: &[u8],
        path: &[u8],
        kind: FileType,
        dev: u64,
        meta: Meta,
    ) -> Result<()> {
        let pfd = self.parent(name, path)?;
        let dir = pfd.as_fd();
        let base = split(path).1;
        let mode = Mode::from_raw_mode(meta.mode & 0o777);
        self.create_replacing(dir, base, path, || {
            rustix::fs::mknodat(dir, base, kind, mode, dev)
        })
        .map_err(|e| self.sys_error(name, path, "mknod", e))?;
        self.apply_at(name, path, dir, base, &meta, false)
    }

    fn hardlink(&mut self, name: &[u8], path: &[u8], target: &[u8]) -> Result<()> {
        let shown = String::from_utf8_lossy(target).into_owned();
        // An absolute target names a path inside the layer, as Docker reads it.
        let tpath = clean(target)
            .map_err(|r| Error::entry(name, format!("hard link target {shown:?}: {r}")))?;
        if tpath.is_empty() {
            return Err(Error::entry(name, "hard link to the layer root"));
        }
        if tpath == path {
            return Err(Error::entry(name, "hard link to itself"));
        }
        let (tparent, tbase) = split(&tpath);
        let missing = || {
            Error::entry(
                name,
                format!("hard link target {shown:?} does not exist in the layer"),
            )
        };
        let tfd = match self.resolve(tparent, false) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(missing()),
            Err(Errno::LOOP) => {
                return Err(Error::entry(
                    name,
                    format!("hard link target {shown:?} goes through a symlink"),
                ))
            }
            Err(e) => return Err(resolve_error(name, e)),
        };
        let pfd = self.parent(name, path)?;
        let dir = pfd.as_fd();
        let base = split(path).1;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself, never what it
        // points at.
        let r = self.create_replacing(dir, base, path, || {
            rustix::fs::linkat(tfd.as_fd(), tbase, dir, base, AtFlags::empty())
        });
        match r {
            Ok(()) => Ok(()),
            Err(Errno::NOENT) => Err(missing()),
            Err(Errno::PERM) => Err(Error::entry(
                name,
                format!("hard link to {shown:?}: not permitted (a directory?)"),
            )),
            Err(e) => Err(self.sys_error(name, path, "create hard link", e)),
        }
    }

    /// `DIR/.wh.NAME` -> a 0/0 character device NAME: overlayfs(5) hides NAME of the lower
    /// layers behind it. Root can always make it; in a user namespace Linux 5.8 and later
    /// allow exactly this device.
    fn whiteout(&mut self, name: &[u8], parent: &[u8], hidden: &[u8]) -> Result<()> {
        let pfd = self
            .resolve(parent, true)
            .map_err(|e| resolve_error(name, e))?;
        let dir = pfd.as_fd();
        let mut path = parent.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(hidden);
        self.create_replacing(dir, hidden, &path, || {
            rustix::fs::mknodat(
                dir,
                hidden,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
        })
        .map_err(|e| self.sys_error(name, &path, "create whiteout device", e))
    }

    /// `DIR/.wh..wh..opq` -> the opaque xattr on DIR. Siblings already extracted stay: in
    /// overlay form the marker hides only the layers below, never this layer's own entries.
    fn opaque(&mut self, name: &[u8], dir: &[u8]) -> Result<()> {
        let pfd = self
            .resolve(dir, true)
            .map_err(|e| resolve_error(name, e))?;
        let set = || -> rustix::io::Result<()> {
            // O_PATH descriptors take no xattrs; reopen the same directory for real.
            let fd = rustix::fs::openat(
                &*pfd,
                c".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            rustix::fs::fsetxattr(&fd, self.opts.opaque_xattr, b"y", XattrFlags::empty())
        };
        set().map_err(|e| {
            let op = format!("set {}", self.opts.opaque_xattr);
            Error::entry(name, format!("{op}: {}", errno_message(e)))
        })
    }

    /// Directory metadata, deepest first so that setting it on a child never disturbs the
    /// parent's. A directory a later entry replaced is skipped: it is re-opened without
    /// following symlinks, so its metadata can never land on what a symlink points at.
    fn finish(mut self) -> Result<UnpackStats> {
        let mut dirs: Vec<(Vec<u8>, DirMeta)> =
            std::mem::take(&mut self.dirs).into_iter().collect();
        dirs.sort_by_key(|(p, _)| Reverse(depth(p)));
        for (path, d) in dirs {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = if path.is_empty() {
                rustix::fs::openat(&*self.root, c".", flags, Mode::empty())
            } else {
                open_beneath(self.root.as_fd(), &path, flags)
            };
            match fd {
                Ok(fd) => self.apply_fd(&d.name, &path, fd.as_fd(), &d.meta)?,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                Err(e) => return Err(self.sys_error(&d.name, &path, "open directory", e)),
            }
        }
        Ok(self.stats)
    }
}

// ---- ensure_layer ---------------------------------------------------------------------

/// Decompressed bytes travel between threads in chunks of this size, at most `DEPTH` in
/// flight: memory stays near a megabyte whatever the layer's size.
const CHUNK: usize = 256 << 10;
const DEPTH: usize = 4;

enum Msg {
    Data(Vec<u8>),
    /// Everything was sent and the blob's digest checked out.
    End,
}

/// The extracting side of the decompression pipeline. A channel closed without `End`
/// means the decompressing thread failed; its own result says why.
struct ChannelReader {
    rx: mpsc::Receiver<Msg>,
    /// Consumed chunks go back to be refilled rather than reallocated.
    back: mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.cur.len() {
                let n = buf.len().min(self.cur.len() - self.pos);
                buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Msg::Data(v)) => {
                    let old = std::mem::replace(&mut self.cur, v);
                    self.pos = 0;
                    if old.capacity() > 0 {
                        let _ = self.back.send(old);
                    }
                }
                Ok(Msg::End) => self.done = true,
                Err(_) => return Err(io::Error::other("layer decompression failed")),
            }
        }
    }
}

enum Decoder<R: Read> {
    Gzip(Box<flate2::read::MultiGzDecoder<R>>),
    Plain(R),
}

impl<R: Read> Decoder<R> {
    fn into_inner(self) -> R {
        match self {
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Plain(r) => r,
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Plain(r) => r.read(buf),
        }
    }
}

/// Read the rest of the blob so its `VerifiedReader` checks the digest.
fn verify_rest<R: Read>(mut r: R) -> io::Result<()> {
    io::copy(&mut r, &mut io::sink()).map(drop)
}

/// Fill `buf` to `CHUNK` bytes unless the stream ends first.
fn fill<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.resize(CHUNK, 0);
    let mut n = 0;
    while n < CHUNK {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(n)
}

/// Decompress `src` on its own thread, as `tar -xz` runs gzip in its own process, so
/// inflating and hashing the blob overlap with writing files. The thread always reads the
/// blob to its end, even when extraction stopped early or the gzip stream is broken: a
/// corrupt blob is then reported as a digest mismatch rather than as whatever garbage it
/// decoded to.
fn spawn_decoder<R: Read + Send + 'static>(
    src: R,
    gzip: bool,
) -> io::Result<(ChannelReader, thread::JoinHandle<io::Result<()>>)> {
    let (tx, rx) = mpsc::sync_channel::<Msg>(DEPTH);
    let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
    let worker = move || -> io::Result<()> {
        let mut dec = if gzip {
            Decoder::Gzip(Box::new(flate2::read::MultiGzDecoder::new(src)))
        } else {
            Decoder::Plain(src)
        };
        loop {
            let mut buf = back_rx
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
            let n = match fill(&mut dec, &mut buf) {
                Ok(n) => n,
                Err(e) => return verify_rest(dec.into_inner()).and(Err(e)),
            };
            if n == 0 {
                break;
            }
            if tx.send(Msg::Data(buf)).is_err() {
                return verify_rest(dec.into_inner());
            }
        }
        verify_rest(dec.into_inner())?;
        let _ = tx.send(Msg::End);
        Ok(())
    };
    let handle = thread::Builder::new()
        .name("layer-decompress".into())
        .spawn(worker)?;
    let reader = ChannelReader {
        rx,
        back: back_tx,
        cur: Vec::new(),
        pos: 0,
        done: false,
    };
    Ok((reader, handle))
}

impl Store {
    /// `layers/<diff_id>/`, extracting the layer blob first if it is not there yet.
    pub fn ensure_layer(&self, layer: &Descriptor, diff_id: &Digest) -> Result<PathBuf> {
        // Pin before looking: GC takes the store lock exclusively, so from here on a layer
        // directory that exists stays, and one we are about to create is not collected.
        self.pin(diff_id)?;
        let dir = self.layer_dir(diff_id);
        if dir.is_dir() {
            return Ok(dir);
        }
        let staging = self.temp_dir("layer")?;
        if let Err(e) = self.extract_layer(layer.digest(), diff_id, &staging) {
            let _ = store::remove_all(&staging);
            return Err(e);
        }
        match std::fs::rename(&staging, &dir) {
            Ok(()) => {}
            // Another process extracted the same layer first; its copy is as good.
            Err(_) if dir.is_dir() => {
                let _ = store::remove_all(&staging);
            }
            Err(e) => {
                let _ = store::remove_all(&staging);
                return Err(Error::Io {
                    op: "rename into the store",
                    path: dir,
                    source: e,
                });
            }
        }
        store::fsync_dir(&self.root().join("layers"))?;
        Ok(dir)
    }

    /// Decompress, extract and verify blob `digest` into `staging`: the blob's digest at
    /// its end (`VerifiedReader`), the diff_id over the uncompressed stream while it is
    /// extracted.
    fn extract_layer(&self, digest: &Digest, diff_id: &Digest, staging: &Path) -> Result<()> {
        let mut blob = self.open_blob(digest)?;
        let mut magic = [0u8; 6];
        let mut n = 0;
        while n < magic.len() {
            match blob.read(&mut magic[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.blob_error(digest, e)),
            }
        }
        let head = &magic[..n];
        let unsupported = |what: &str| Error::BadBlob {
            digest: digest.to_string(),
            reason: format!("unsupported compression {what}"),
        };
        if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(unsupported("zstd"));
        }
        if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            return Err(unsupported("xz"));
        }
        if head.starts_with(b"BZh") {
            return Err(unsupported("bzip2"));
        }
        let gzip = head.starts_with(&[0x1f, 0x8b]);
        let src = io::Cursor::new(head.to_vec()).chain(blob);
        let (reader, worker) = spawn_decoder(src, gzip).map_err(|e| Error::Io {
            op: "start decompression thread for",
            path: self.blob_path(digest),
            source: e,
        })?;

        let mut tar = HashReader::new(reader);
        let extracted = match unpack(&mut tar, staging, &UnpackOptions::default()) {
            Ok(_) => tar.drain().map_err(|e| Error::Io {
                op: "read",
                path: self.blob_path(digest),
                source: e,
            }),
            Err(e) => {
                // Closing the channel tells the thread to stop decoding and only verify.
                drop(tar);
                Err(e)
            }
        };
        let decoded = worker
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("decompression thread panicked")));
        // The blob's own failure explains any error downstream of it.
        decoded.map_err(|e| self.blob_error(digest, e))?;
        let (actual, _) = extracted?;
        if &actual != diff_id {
            return Err(Error::DigestMismatch {
                what: "layer",
                digest: diff_id.to_string(),
                actual: actual.to_string(),
            });
        }
        // The layer lands by rename: make its content durable first, or a crash could leave
        // a complete-looking layer of empty files (one syncfs(2), not an fsync per file).
        rustix::fs::open(
            staging,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|fd| rustix::fs::syncfs(&fd))
        .map_err(|e| Error::Io {
            op: "sync",
            path: staging.to_path_buf(),
            source: e.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use tar::Header;

    /// A tar written by hand, so names `tar::Builder` refuses (`..`, `.wh.`, NUL) can be
    /// written: short names go straight into the header bytes, long ones into PAX records.
    struct Tar(Vec<u8>);

    fn pax_record(k: &[u8], v: &[u8]) -> Vec<u8> {
        let base = k.len() + v.len() + 3;
        let mut len = base + 1;
        while (base + len.to_string().len()) != len {
            len = base + len.to_string().len();
        }
        let mut r = format!("{len} ").into_bytes();
        r.extend_from_slice(k);
        r.push(b'=');
        r.extend_from_slice(v);
        r.push(b'\n');
        r
    }

    impl Tar {
        fn new() -> Tar {
            Tar(Vec::new())
        }

        fn block(&mut self, mut h: Header, data: &[u8]) {
            h.set_cksum();
            self.0.extend_from_slice(h.as_bytes());
            self.0.extend_from_slice(data);
            let pad = (512 - data.len() % 512) % 512;
            self.0.extend(std::iter::repeat(0).take(pad));
        }

        #[allow(clippy::too_many_arguments)]
        fn raw(
            &mut self,
            kind: EntryType,
            name: &[u8],
            link: &[u8],
            mode: u32,
            data: &[u8],
            pax: &[(&[u8], &[u8])],
            edit: impl FnOnce(&mut Header),
        ) -> &mut Tar {
            let mut records: Vec<u8> = pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
            let mut h = Header::new_ustar();
            if name.len() <= 100 {
                h.as_old_mut().name[..name.len()].copy_from_slice(name);
            } else {
                records.extend(pax_record(b"path", name));
                h.as_old_mut().name[..4].copy_from_slice(b"long");
            }
            if link.len() <= 100 {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            } else {
                records.extend(pax_record(b"linkpath", link));
            }
            if !records.is_empty() {
                let mut x = Header::new_ustar();
                x.as_old_mut().name[..6].copy_from_slice(b"PaxHdr");
                x.set_entry_type(EntryType::XHeader);
                x.set_mode(0o644);
                x.set_size(records.len() as u64);
                self.block(x, &records);
            }
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(data.len() as u64);
            h.set_mtime(1_600_000_000);
            h.set_uid(0);
            h.set_gid(0);
            edit(&mut h);
            self.block(h, data);
            self
        }

        fn file(&mut self, name: impl AsRef<[u8]>, data: &[u8]) -> &mut Tar {
            self.raw(
                EntryType::Regular,
                name.as_ref(),
                b"",
                0o644,
                data,
                &[],
                |_| {},
            )
        }
        fn dir(&mut self, name: impl AsRef<[u8]>, mode: u32) -> &mut Tar {
            self.raw(
                EntryType::Directory,
                name.as_ref(),
                b"",
                mode,
                b"",
                &[],
                |_| {},
            )
        }
        fn symlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Tar {
            self.raw(
                EntryType::Symlink,
                name.as_ref(),
                target.as_ref(),
                0o777,
                b"",
                &[],
                |_| {},
            )
        }
        fn hardlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Tar {
            self.raw(
                EntryType::Link,
                name.as_ref(),
                target.as_ref(),
                0o644,
                b"",
                &[],
                |_| {},
            )
        }
        fn bytes(&self) -> Vec<u8> {
            let mut v = self.0.clone();
            v.extend_from_slice(&[0; 1024]);
            v
        }
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    fn opts() -> UnpackOptions {
        UnpackOptions::default()
    }

    /// A temp dir holding `target/` (empty) and, beside it, `canary/` with files, modes and
    /// old mtimes that an escaping entry would change.
    struct Fixture {
        tmp: tempfile::TempDir,
        target: PathBuf,
        canary: PathBuf,
    }

    fn set_mtime(p: &Path, secs: i64) {
        let t = Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        let ts = Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(rustix::fs::CWD, p, &ts, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        let canary = tmp.path().join("canary");
        fs::create_dir(&target).unwrap();
        fs::create_dir_all(canary.join("sub")).unwrap();
        fs::write(canary.join("f1"), b"secret").unwrap();
        fs::write(canary.join("sub/f2"), b"more secret").unwrap();
        fs::set_permissions(canary.join("f1"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::set_permissions(canary.join("sub/f2"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(canary.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
        for p in ["f1", "sub/f2", "sub", ""] {
            set_mtime(&canary.join(p), 1_000_000);
        }
        Fixture {
            tmp,
            target,
            canary,
        }
    }

    /// Everything under `dir` (recursively, never following links): type, mode, owner,
    /// mtime and content or link target.
    fn listing(dir: &Path, skip: Option<&str>) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if d == dir && skip.is_some_and(|s| p.file_name().unwrap() == s) {
                    continue;
                }
                let m = fs::symlink_metadata(&p).unwrap();
                let what = if m.file_type().is_symlink() {
                    format!("link {:?}", fs::read_link(&p).unwrap())
                } else if m.is_file() {
                    format!("file {:?}", String::from_utf8_lossy(&fs::read(&p).unwrap()))
                } else if m.is_dir() {
                    todo.push(p.clone());
                    "dir".to_string()
                } else {
                    format!("special {:o}", m.rdev())
                };
                let desc = format!(
                    "{what} mode {:o} owner {}:{} mtime {}.{} nlink {}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.nlink()
                );
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), desc);
            }
        }
        out
    }

    impl Fixture {
        /// The temp dir without the target: the canary and anything that escaped beside it.
        fn outside(&self) -> BTreeMap<PathBuf, String> {
            let mut l = listing(self.tmp.path(), Some("target"));
            let m = fs::symlink_metadata(&self.canary).unwrap();
            l.insert(
                "canary itself".into(),
                format!("mode {:o} mtime {}", m.mode(), m.mtime()),
            );
            l
        }

        fn unpack(&self, tar: &Tar) -> Result<UnpackStats> {
            unpack(&tar.bytes()[..], &self.target, &opts())
        }

        /// `tar` must be refused with an error naming `entry`, and nothing outside the
        /// target may change.
        fn refused(&self, tar: &Tar, entry: &str) -> String {
            let before = self.outside();
            let err = self
                .unpack(tar)
                .expect_err("hostile tar was accepted")
                .to_string();
            assert!(err.contains(entry), "error {err:?} does not name {entry:?}");
            assert_eq!(before, self.outside(), "outside the target changed: {err}");
            err
        }
    }

    #[test]
    fn clean_names() {
        let ok = |n: &str| String::from_utf8(clean(n.as_bytes()).unwrap()).unwrap();
        assert_eq!(ok("/etc/x"), "etc/x");
        assert_eq!(ok("./a/./b/"), "a/b");
        assert_eq!(ok("a//b/../c"), "a/c");
        assert_eq!(ok("./"), "");
        assert_eq!(ok("a/.."), "");
        assert!(clean(b"../x").is_err());
        assert!(clean(b"a/../../x").is_err());
        assert!(clean(b"/../x").is_err());
        assert!(clean(b"a\0b").is_err());
    }

    #[test]
    fn pax_times() {
        let t = |s: &str| pax_time(s.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1.5"), Some((1, 500_000_000)));
        assert_eq!(t("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(t("12.1234567891"), Some((12, 123_456_789)));
        assert_eq!(t("x"), None);
        assert_eq!(t("1.-2"), None);
    }

    #[test]
    fn regular_tree_is_extracted() {
        let f = fixture();
        let long = format!("{}/file", "d".repeat(150));
        let mut t = Tar::new();
        t.dir("ro/", 0o555)
            .file("ro/inside", b"child of a read-only dir")
            .raw(EntryType::Regular, b"suid", b"", 0o4755, b"#!", &[], |_| {})
            .raw(
                EntryType::Regular,
                b"attrs",
                b"",
                0o600,
                b"x",
                &[
                    (b"SCHILY.xattr.user.note", b"hello"),
                    (b"mtime", b"1234567890.25"),
                ],
                |_| {},
            )
            .symlink("link", "/nowhere/at/all")
            .hardlink("hard", "suid")
            .raw(EntryType::Fifo, b"fifo", b"", 0o620, b"", &[], |_| {})
            .file(&long, b"long name");
        let stats = f.unpack(&t).unwrap();
        assert_eq!(stats.entries, 8);
        assert_eq!(stats.bytes, 24 + 2 + 1 + 9);
        let tg = &f.target;
        let mode = |p: &str| fs::symlink_metadata(tg.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode(""), 0o755, "the root defaults to 0755");
        assert_eq!(mode("ro"), 0o555);
        assert_eq!(
            fs::read(tg.join("ro/inside")).unwrap(),
            b"child of a read-only dir"
        );
        assert_eq!(mode("suid"), 0o4755);
        assert_eq!(mode("attrs"), 0o600);
        let m = fs::metadata(tg.join("attrs")).unwrap();
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_234_567_890, 250_000_000));
        assert_eq!(fs::metadata(tg.join("ro")).unwrap().mtime(), 1_600_000_000);
        assert_eq!(
            xattr::get(tg.join("attrs"), "user.note")
                .unwrap()
                .as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(
            fs::read_link(tg.join("link")).unwrap(),
            Path::new("/nowhere/at/all")
        );
        assert_eq!(
            fs::metadata(tg.join("hard")).unwrap().ino(),
            fs::metadata(tg.join("suid")).unwrap().ino()
        );
        assert!(fs::symlink_metadata(tg.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(mode("fifo"), 0o620);
        assert_eq!(fs::read(tg.join(&long)).unwrap(), b"long name");
    }

    #[test]
    fn root_entry_metadata_is_used() {
        let f = fixture();
        let mut t = Tar::new();
        t.dir("./", 0o711).file("a", b"");
        f.unpack(&t).unwrap();
        let m = fs::metadata(&f.target).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o711);
        assert_eq!(m.mtime(), 1_600_000_000);

        let f = fixture();
        let mut t = Tar::new();
        t.symlink("./", "/etc");
        let e = f.refused(&t, "./");
        assert!(e.contains("root"), "{e}");
        assert!(fs::metadata(&f.target).unwrap().is_dir());
    }

    #[test]
    fn dotdot_traversal_is_refused() {
        for name in [
            "../x",
            "a/../../x",
            "./../canary/f1",
            "a/b/../../../canary/pwned",
        ] {
            let f = fixture();
            let mut t = Tar::new();
            t.file("ok", b"fine").file(name, b"pwned");
            let e = f.refused(&t, name);
            assert!(e.contains("climbs above the root"), "{e}");
        }
    }

    #[test]
    fn absolute_names_are_made_relative() {
        let f = fixture();
        let before = f.outside();
        let mut t = Tar::new();
        t.file("/etc/x", b"inside").file("./a/./b", b"ab");
        f.unpack(&t).unwrap();
        assert_eq!(fs::read(f.target.join("etc/x")).unwrap(), b"inside");
        assert_eq!(fs::read(f.target.join("a/b")).unwrap(), b"ab");
        assert_eq!(before, f.outside());
    }

    #[test]
    fn writing_through_a_symlink_is_refused() {
        let canary = |f: &Fixture| f.canary.to_str().unwrap().to_string();
        let tmpname = |f: &Fixture| {
            f.tmp
                .path()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        };
        type Case = Box<dyn Fn(&Fixture) -> (Tar, String)>;
        let cases: Vec<Case> = vec![
            // absolute target straight at the canary
            Box::new(move |f| {
                let mut t = Tar::new();
                t.symlink("evil", canary(f)).file("evil/pwned", b"x");
                (t, "evil/pwned".into())
            }),
            // absolute target "/" and the canary's full path below it
            Box::new(move |f| {
                let name = format!("evil{}/pwned", canary(f));
                let mut t = Tar::new();
                t.symlink("evil", "/").file(&name, b"x");
                (t, name)
            }),
            // relative target
            Box::new(|_| {
                let mut t = Tar::new();
                t.symlink("evil", "../canary")
                    .file("evil/f1", b"overwritten");
                (t, "evil/f1".into())
            }),
            // relative ../.. out of the temp dir and back in
            Box::new(move |f| {
                let name = format!("up/{}/canary/pwned", tmpname(f));
                let mut t = Tar::new();
                t.symlink("up", "../..").file(&name, b"x");
                (t, name)
            }),
            // chained links a -> b -> ../canary
            Box::new(|_| {
                let mut t = Tar::new();
                t.symlink("a", "b")
                    .symlink("b", "../canary")
                    .file("a/pwned", b"x");
                (t, "a/pwned".into())
            }),
            // a directory entry through the link
            Box::new(|_| {
                let mut t = Tar::new();
                t.symlink("evil", "../canary").dir("evil/newdir/", 0o777);
                (t, "evil/newdir/".into())
            }),
            // a symlink in the middle of a deeper path
            Box::new(|_| {
                let mut t = Tar::new();
                t.dir("d/", 0o755)
                    .symlink("d/evil", "../../canary")
                    .file("d/evil/sub/f2", b"x");
                (t, "d/evil/sub/f2".into())
            }),
        ];
        for case in cases {
            let f = fixture();
            let (t, name) = case(&f);
            let e = f.refused(&t, &name);
            assert!(e.contains("symlink"), "{e}");
        }
    }

    #[test]
    fn same_name_symlink_then_file_replaces_the_link() {
        let f = fixture();
        let before = f.outside();
        let mut t = Tar::new();
        t.symlink("evil", "../canary/f1").file("evil", b"mine");
        t.symlink("abs", f.canary.join("f1").to_str().unwrap())
            .file("abs", b"mine too");
        f.unpack(&t).unwrap();
        assert_eq!(before, f.outside());
        for (n, want) in [("evil", &b"mine"[..]), ("abs", b"mine too")] {
            let m = fs::symlink_metadata(f.target.join(n)).unwrap();
            assert!(m.is_file(), "{n} is still a link");
            assert_eq!(fs::read(f.target.join(n)).unwrap(), want);
        }
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let f = fixture();
        let mut t = Tar::new();
        t.dir("d/", 0o700)
            .file("d/x", b"x")
            .file("d", b"now a file")
            .file("f", b"file")
            .dir("f/", 0o750)
            .file("f/y", b"y")
            .file("h1", b"one")
            .hardlink("h2", "h1")
            .file("h2", b"two");
        f.unpack(&t).unwrap();
        assert_eq!(fs::read(f.target.join("d")).unwrap(), b"now a file");
        assert_eq!(
            fs::metadata(f.target.join("d")).unwrap().mode() & 0o777,
            0o644
        );
        assert_eq!(
            fs::metadata(f.target.join("f")).unwrap().mode() & 0o777,
            0o750
        );
        assert_eq!(fs::read(f.target.join("f/y")).unwrap(), b"y");
        // A file replacing a hard link gets its own inode: the link's other name keeps its
        // content.
        assert_eq!(fs::read(f.target.join("h1")).unwrap(), b"one");
        assert_eq!(fs::read(f.target.join("h2")).unwrap(), b"two");
    }

    #[test]
    fn hardlinks_out_of_the_root_are_refused() {
        let f = fixture();
        let mut t = Tar::new();
        t.hardlink("h", "../canary/f1");
        let e = f.refused(&t, "\"h\"");
        assert!(e.contains("climbs above the root"), "{e}");

        // Absolute targets are read inside the root; /etc/passwd is not in this layer.
        let f = fixture();
        let mut t = Tar::new();
        t.hardlink("h", "/etc/passwd");
        let e = f.refused(&t, "\"h\"");
        assert!(e.contains("does not exist in the layer"), "{e}");

        let f = fixture();
        let mut t = Tar::new();
        t.hardlink("h", f.canary.join("f1").to_str().unwrap());
        let e = f.refused(&t, "\"h\"");
        assert!(e.contains("does not exist in the layer"), "{e}");

        let f = fixture();
        let mut t = Tar::new();
        t.symlink("evil", "../canary").hardlink("h", "evil/f1");
        let e = f.refused(&t, "\"h\"");
        assert!(e.contains("symlink"), "{e}");

        let f = fixture();
        let mut t = Tar::new();
        t.hardlink("h", "h");
        f.refused(&t, "\"h\"");
    }

    #[test]
    fn hardlink_absolute_target_resolves_inside() {
        let f = fixture();
        let mut t = Tar::new();
        t.file("etc/passwd", b"root:x:0:0")
            .hardlink("h", "/etc/passwd");
        t.symlink("s", "/etc/passwd").hardlink("hs", "s");
        f.unpack(&t).unwrap();
        let ino = |p: &str| fs::symlink_metadata(f.target.join(p)).unwrap().ino();
        assert_eq!(ino("h"), ino("etc/passwd"));
        // A link to a symlink is a link to the symlink itself.
        assert_eq!(ino("hs"), ino("s"));
    }

    #[test]
    fn metadata_never_goes_through_a_symlink() {
        let f = fixture();
        let before = f.outside();
        let chown = |h: &mut Header| {
            h.set_uid(4242);
            h.set_gid(4242);
            h.set_mtime(5);
        };
        let mut t = Tar::new();
        // links carrying metadata of their own: lchown/utimes must stay on the link
        t.raw(
            EntryType::Symlink,
            b"evil",
            b"../canary",
            0o777,
            b"",
            &[],
            chown,
        )
        .raw(
            EntryType::Symlink,
            b"evil_f",
            b"../canary/f1",
            0o777,
            b"",
            &[],
            chown,
        )
        .raw(
            EntryType::Symlink,
            b"evil_x",
            b"../canary/sub",
            0o777,
            b"",
            &[(b"SCHILY.xattr.trusted.note", b"x")],
            chown,
        )
        // a directory entry whose name is a link: it replaces the link
        .raw(EntryType::Directory, b"evil/", b"", 0o777, b"", &[], chown)
        // a file entry whose name is a link: it replaces the link
        .raw(EntryType::Regular, b"evil_f", b"", 0o6777, b"x", &[], chown)
        // a directory whose deferred metadata would land on the link that replaced it
        .raw(EntryType::Directory, b"d/", b"", 0o777, b"", &[], chown)
        .symlink("d", "../canary");
        f.unpack(&t).unwrap();
        assert_eq!(before, f.outside());
        let m = fs::symlink_metadata(f.target.join("evil")).unwrap();
        assert!(m.is_dir());
        assert_eq!((m.mode() & 0o7777, m.mtime()), (0o777, 5));
        let m = fs::symlink_metadata(f.target.join("evil_f")).unwrap();
        assert!(m.is_file());
        assert_eq!(m.mode() & 0o7777, 0o6777);
        let m = fs::symlink_metadata(f.target.join("evil_x")).unwrap();
        assert!(m.file_type().is_symlink());
        assert_eq!(m.mtime(), 5);
        if is_root() {
            assert_eq!((m.uid(), m.gid()), (4242, 4242));
            assert_eq!(
                xattr::get(f.target.join("evil_x"), "trusted.note")
                    .unwrap()
                    .as_deref(),
                Some(&b"x"[..])
            );
            assert_eq!(
                fs::symlink_metadata(f.target.join("evil_f")).unwrap().uid(),
                4242
            );
        }
        assert!(fs::symlink_metadata(f.target.join("d"))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn malformed_whiteouts_are_refused() {
        let cases: &[(&[u8], EntryType, &str)] = &[
            (b".wh.", EntryType::Regular, "empty name"),
            (b".wh..", EntryType::Regular, "names . or .."),
            (b".wh...", EntryType::Regular, "names . or .."),
            (b"a/.wh.", EntryType::Regular, "empty name"),
            (b"a/.wh...", EntryType::Directory, "names . or .."),
            (b"a/.wh..wh.x", EntryType::Regular, "reserved"),
            (b".wh.x/y", EntryType::Regular, "below it"),
            (b".wh.h", EntryType::Link, "hard link"),
        ];
        for (name, kind, why) in cases {
            let f = fixture();
            let mut t = Tar::new();
            t.dir("a/", 0o755)
                .file("h0", b"")
                .raw(*kind, name, b"h0", 0o644, b"", &[], |_| {});
            let e = f.refused(&t, std::str::from_utf8(name).unwrap());
            assert!(e.contains(why), "{e}");
        }
        let f = fixture();
        let mut t = Tar::new();
        t.raw(
            EntryType::Regular,
            b"x",
            b"",
            0o644,
            b"",
            &[(b"path", b"a/\0/b")],
            |_| {},
        );
        let e = f.refused(&t, "a/");
        assert!(e.contains("nul"), "{e}");
    }

    #[test]
    fn unsupported_types_are_refused() {
        let f = fixture();
        let mut t = Tar::new();
        t.raw(EntryType::new(b'Z'), b"odd", b"", 0o644, b"", &[], |_| {});
        let e = f.refused(&t, "odd");
        assert!(e.contains("unsupported entry type"), "{e}");

        // GNU sparse entries exist only in GNU headers.
        let f = fixture();
        let mut t = Tar::new();
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..6].copy_from_slice(b"sparse");
        h.set_entry_type(EntryType::GNUSparse);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.as_gnu_mut().unwrap().set_real_size(0);
        t.block(h, b"");
        let e = f.refused(&t, "sparse");
        assert!(e.contains("sparse files are not supported"), "{e}");
    }

    #[test]
    fn opaque_marker_after_siblings_keeps_them() {
        let f = fixture();
        let o = opts();
        let mut t = Tar::new();
        t.dir("d/", 0o755)
            .file("d/keep", b"kept")
            .file("d/.wh..wh..opq", b"")
            .file("new/.wh..wh..opq", b"")
            .raw(
                EntryType::Directory,
                b"forged/",
                b"",
                0o755,
                b"",
                &[
                    (b"SCHILY.xattr.trusted.overlay.opaque", b"y"),
                    (b"SCHILY.xattr.user.overlay.opaque", b"y"),
                ],
                |_| {},
            );
        f.unpack(&t).unwrap();
        assert_eq!(fs::read(f.target.join("d/keep")).unwrap(), b"kept");
        assert!(!f.target.join("d/.wh..wh..opq").exists());
        for d in ["d", "new"] {
            assert_eq!(
                xattr::get(f.target.join(d), o.opaque_xattr)
                    .unwrap()
                    .as_deref(),
                Some(&b"y"[..]),
                "{d}"
            );
        }
        // Overlay xattrs from the tar would forge an opaque directory: they are dropped.
        for x in [whiteout::OPAQUE_XATTR, whiteout::OPAQUE_XATTR_USER] {
            assert_eq!(xattr::get(f.target.join("forged"), x).unwrap(), None);
        }
    }

    #[test]
    fn aufs_metadata_is_skipped() {
        let f = fixture();
        let mut t = Tar::new();
        t.dir(".wh..wh.plnk/", 0o700)
            .file(".wh..wh.plnk/123.456", b"")
            .file(".wh..wh.aufs", b"")
            .file("kept", b"");
        let stats = f.unpack(&t).unwrap();
        assert_eq!(stats.entries, 4);
        let names: Vec<_> = fs::read_dir(&f.target)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["kept"]);
    }

    #[test]
    fn whiteout_becomes_a_char_device() {
        let f = fixture();
        let mut t = Tar::new();
        t.dir("d/", 0o755)
            .file("d/.wh.gone", b"")
            .file(".wh.top", b"");
        // Before 5.8 an unprivileged user namespace cannot mknod even a whiteout.
        match f.unpack(&t) {
            Ok(_) => {}
            Err(e) if !is_root() => {
                assert!(e.to_string().contains(".wh.gone"), "{e}");
                println!("skipped: cannot create whiteout devices here: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        }
        for p in ["d/gone", "top"] {
            let m = fs::symlink_metadata(f.target.join(p)).unwrap();
            assert!(m.file_type().is_char_device(), "{p}");
            assert_eq!(m.rdev(), 0, "{p}");
        }
        assert!(!f.target.join("d/.wh.gone").exists());
    }

    #[test]
    fn devices_follow_the_option() {
        let t = {
            let mut t = Tar::new();
            t.raw(EntryType::Char, b"null", b"", 0o666, b"", &[], |h| {
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
            });
            t
        };
        let f = fixture();
        let o = UnpackOptions {
            devices: false,
            ..opts()
        };
        let stats = unpack(&t.bytes()[..], &f.target, &o).unwrap();
        assert_eq!(stats.skipped_devices, 1);
        assert!(!f.target.join("null").exists());
        if !opts().devices {
            println!("skipped: creating device nodes needs real root");
            return;
        }
        let f = fixture();
        f.unpack(&t).unwrap();
        let m = fs::symlink_metadata(f.target.join("null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
        assert_eq!(m.mode() & 0o7777, 0o666);
    }

    // ---- ensure_layer ---------------------------------------------------------------

    fn layer_tar() -> Vec<u8> {
        let mut t = Tar::new();
        t.dir("./", 0o755)
            .dir("etc/", 0o755)
            .file("etc/hostname", b"minibox\n");
        // Some incompressible bytes, so the gzip stream has real blocks to corrupt.
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        t.file("bin/noise", &noise).file(".wh.gone", b"");
        t.bytes()
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn put_layer(s: &Store, blob: &[u8]) -> Descriptor {
        let (d, n) = s.put_blob(blob).unwrap();
        Descriptor::new(oci_spec::image::MediaType::ImageLayerGzip, n, d)
    }

    /// Nothing left behind: no layer directory, no staging directory.
    fn assert_clean(s: &Store, diff_id: &Digest) {
        assert!(!s.layer_dir(diff_id).exists());
        let session = s.temp_path("probe").parent().unwrap().to_path_buf();
        let left: Vec<_> = fs::read_dir(&session)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("layer"))
            .collect();
        assert!(left.is_empty(), "staging left behind: {left:?}");
    }

    #[test]
    fn ensure_layer_extracts_once() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let tar = layer_tar();
        let diff_id = crate::digest::sha256(&tar);
        for blob in [gzip(&tar), tar.clone()] {
            let desc = put_layer(&s, &blob);
            let dir = s.ensure_layer(&desc, &diff_id).unwrap();
            assert_eq!(dir, s.layer_dir(&diff_id));
            assert_eq!(fs::read(dir.join("etc/hostname")).unwrap(), b"minibox\n");
            assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o755);
            assert_eq!(s.ensure_layer(&desc, &diff_id).unwrap(), dir);
            store::remove_all(&dir).unwrap();
        }
        // Two gzip members (as parallel compressors may write) are one stream.
        let mut two = gzip(&tar[..1024]);
        two.extend(gzip(&tar[1024..]));
        let dir = s.ensure_layer(&put_layer(&s, &two), &diff_id).unwrap();
        assert_eq!(fs::read(dir.join("etc/hostname")).unwrap(), b"minibox\n");
    }

    #[test]
    fn ensure_layer_refuses_a_corrupt_blob() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let tar = layer_tar();
        let diff_id = crate::digest::sha256(&tar);
        let blob = gzip(&tar);
        // A byte in the deflate data, one in the gzip header's OS field (decodes fine, only
        // the digest catches it), one in the trailer's CRC.
        for at in [blob.len() / 2, 9, blob.len() - 6] {
            let desc = put_layer(&s, &blob);
            let p = s.blob_path(desc.digest());
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
            let mut bad = blob.clone();
            bad[at] ^= 0x40;
            fs::write(&p, &bad).unwrap();
            let e = s.ensure_layer(&desc, &diff_id).unwrap_err().to_string();
            assert!(e.contains("digest mismatch"), "flip at {at}: {e}");
            assert!(e.contains(&desc.digest().to_string()), "{e}");
            assert_clean(&s, &diff_id);
            fs::remove_file(&p).unwrap();
        }
    }

    #[test]
    fn ensure_layer_refuses_a_wrong_diff_id() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let desc = put_layer(&s, &gzip(&layer_tar()));
        let wrong = crate::digest::sha256(b"another layer");
        let e = s.ensure_layer(&desc, &wrong).unwrap_err();
        assert!(
            matches!(&e, Error::DigestMismatch { what: "layer", digest, .. } if *digest == wrong.to_string()),
            "{e}"
        );
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        assert_clean(&s, &wrong);
    }

    #[test]
    fn ensure_layer_refuses_hostile_and_unsupported_blobs() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let mut tar = Tar::new();
        tar.file("ok", b"fine").file("../escape", b"x");
        let bytes = tar.bytes();
        let diff_id = crate::digest::sha256(&bytes);
        let e = s
            .ensure_layer(&put_layer(&s, &gzip(&bytes)), &diff_id)
            .unwrap_err();
        assert!(e.to_string().contains("../escape"), "{e}");
        assert_clean(&s, &diff_id);
        assert!(!t.path().join("layers/escape").exists());

        let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0];
        let e = s.ensure_layer(&put_layer(&s, &zstd), &diff_id).unwrap_err();
        assert!(
            e.to_string().contains("unsupported compression zstd"),
            "{e}"
        );
        assert_clean(&s, &diff_id);
    }
}
