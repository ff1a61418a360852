//! Pack: a directory (or an overlay upper dir) -> a deterministic PAX tar, and the layer
//! pipeline tar -> sha256 (diff_id) -> parallel gzip -> sha256 (digest) -> blob.
//! Never follows symlinks, never crosses filesystems.

use crate::digest::HashWriter;
use crate::error::{Error, IoContext, Result};
use crate::image::LayerInfo;
use crate::pgzip::ParallelGzEncoder;
use crate::store::Store;
use crate::whiteout;
use oci_spec::image::MediaType;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct PackOptions {
    /// Clamp mtimes to this (SOURCE_DATE_EPOCH).
    pub source_date_epoch: Option<i64>,
    /// The directory is an overlay upper dir: 0/0 character devices become `.wh.NAME` and
    /// opaque directories get a `.wh..wh..opq` entry.
    pub overlay: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Entries written.
    pub entries: u64,
    /// The newest mtime written (after clamping); 0 for an empty tree.
    pub newest_mtime: i64,
}

/// gzip level of layer blobs. 5 rather than gzip(1)'s 6: less CPU for a few tenths of a
/// percent more bytes on a Debian rootfs (+0.56% against gzip -6, bench/README.md).
const LEVEL: u32 = 5;
/// File contents are copied through one buffer of this size, whatever the file size.
const COPY_BUF: usize = 256 << 10;
/// tar's unit: every header is one block and file data is padded to whole blocks.
const BLOCK: usize = 512;

/// Write the deterministic tar of `dir` to `out` (end-of-archive marker included). Entry
/// names are relative ("etc/", "etc/passwd"); `dir` itself has no entry.
pub fn write_tar<W: Write>(dir: &Path, opts: &PackOptions, out: W) -> Result<PackStats> {
    pack(
        dir,
        opts,
        out,
        Sink {
            op: "write tar of",
            path: dir,
        },
    )
}

impl Store {
    /// Pack `dir` into a gzip layer blob in the store.
    pub fn pack_layer(&self, dir: &Path, opts: &PackOptions) -> Result<(LayerInfo, PackStats)> {
        // On any error below `blob` is dropped uncommitted, which removes its temp file.
        let mut blob = self.blob_writer()?;
        let blob_path = blob.path().to_path_buf();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut tar = HashWriter::new(ParallelGzEncoder::new(&mut blob, LEVEL, threads));
        let sink = Sink {
            op: "write",
            path: &blob_path,
        };
        let stats = pack(dir, opts, &mut tar, sink)?;
        let (gz, diff_id, _) = tar.finish();
        gz.finish().ctx("write", &blob_path)?;
        let (digest, size) = blob.commit()?;
        let info = LayerInfo {
            digest,
            diff_id,
            size,
            media_type: MediaType::ImageLayerGzip,
        };
        Ok((info, stats))
    }
}

/// What write errors are reported against.
#[derive(Clone, Copy)]
struct Sink<'a> {
    op: &'static str,
    path: &'a Path,
}

fn pack<W: Write>(dir: &Path, opts: &PackOptions, out: W, sink: Sink) -> Result<PackStats> {
    let meta = fs::symlink_metadata(dir).ctx("stat", dir)?;
    if !meta.is_dir() {
        return Err(Error::file(dir, "not a directory"));
    }
    let mut p = Packer {
        opts,
        root_dev: meta.dev(),
        out: BufWriter::with_capacity(64 << 10, out),
        sink,
        links: HashMap::new(),
        buf: vec![0; COPY_BUF],
        entries: 0,
        newest: None,
    };
    p.walk(dir)?;
    // End of archive: two zero blocks (POSIX.1-2001 pax, ustar format).
    p.write(&[0; 2 * BLOCK])?;
    p.out
        .into_inner()
        .map_err(|e| e.into_error())
        .ctx(sink.op, sink.path)?;
    Ok(PackStats {
        entries: p.entries,
        newest_mtime: p.newest.unwrap_or(0),
    })
}

struct Packer<'a, W: Write> {
    opts: &'a PackOptions,
    root_dev: u64,
    out: BufWriter<W>,
    sink: Sink<'a>,
    /// (st_dev, st_ino) of files with more than one link -> the tar name of the first one
    /// written and the links still to come.
    links: HashMap<(u64, u64), (Vec<u8>, u64)>,
    buf: Vec<u8>,
    entries: u64,
    newest: Option<i64>,
}

/// One directory being walked: its children in tar order, consumed one at a time.
struct Frame {
    path: PathBuf,
    /// Tar name of the directory with its trailing slash ("" for the root).
    prefix: Vec<u8>,
    children: std::vec::IntoIter<Child>,
}

struct Child {
    name: OsString,
    /// An overlay whiteout (0/0 character device), written as `.wh.NAME`.
    whiteout: bool,
}

impl Child {
    /// The name in the tar, which is what entries are sorted by.
    fn tar_name(&self) -> impl Iterator<Item = &u8> + '_ {
        let prefix: &[u8] = if self.whiteout {
            whiteout::PREFIX.as_bytes()
        } else {
            b""
        };
        prefix.iter().chain(self.name.as_bytes())
    }
}

/// The fields of one tar entry; everything else in the header is fixed.
struct Entry<'e> {
    name: &'e [u8],
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    link: &'e [u8],
    dev: (u32, u32),
    xattrs: &'e [Xattr],
}

/// An extended attribute: name, value.
type Xattr = (Vec<u8>, Vec<u8>);

// Type flags (POSIX.1-1988 ustar, kept by pax).
const REG: u8 = b'0';
const LINK: u8 = b'1';
const SYMLINK: u8 = b'2';
const CHAR: u8 = b'3';
const BLOCKDEV: u8 = b'4';
const DIR: u8 = b'5';
const FIFO: u8 = b'6';
const PAX: u8 = b'x';

impl<W: Write> Packer<'_, W> {
    /// Depth first, each directory's entry before its children, siblings sorted by the
    /// bytes of their tar names, so the order never depends on readdir(3). An explicit
    /// stack rather than recursion: a deep tree must not exhaust the thread's stack.
    fn walk(&mut self, root: &Path) -> Result<()> {
        let mut stack = vec![self.list(root.to_path_buf(), Vec::new())?];
        while let Some(frame) = stack.last_mut() {
            let Some(child) = frame.children.next() else {
                stack.pop();
                continue;
            };
            let path = frame.path.join(&child.name);
            let mut name = frame.prefix.clone();
            name.extend(child.tar_name());
            if let Some(next) = self.entry(path, name, child.whiteout)? {
                stack.push(next);
            }
        }
        Ok(())
    }

    fn list(&self, path: PathBuf, prefix: Vec<u8>) -> Result<Frame> {
        let mut children = Vec::new();
        for e in fs::read_dir(&path).ctx("read directory", &path)? {
            let e = e.ctx("read directory", &path)?;
            let name = e.file_name();
            if name.as_bytes().starts_with(whiteout::PREFIX.as_bytes()) {
                return Err(Error::file(
                    path.join(&name),
                    "a file named .wh.* would be read as a whiteout",
                ));
            }
            let mut whiteout = false;
            if self.opts.overlay && e.file_type().ctx("stat", e.path())?.is_char_device() {
                // overlayfs(5): a whiteout is a character device with device number 0/0.
                whiteout = e.metadata().ctx("stat", e.path())?.rdev() == 0;
            }
            children.push(Child { name, whiteout });
        }
        children.sort_unstable_by(|a, b| a.tar_name().cmp(b.tar_name()));
        Ok(Frame {
            path,
            prefix,
            children: children.into_iter(),
        })
    }

    /// Write the entry for `path`; a directory to descend into comes back as a frame.
    fn entry(&mut self, path: PathBuf, mut name: Vec<u8>, wh: bool) -> Result<Option<Frame>> {
        let meta = fs::symlink_metadata(&path).ctx("stat", &path)?;
        let mtime = self.clamp(meta.mtime());
        if wh {
            self.empty_marker(&name, mtime)?;
            return Ok(None);
        }
        let ft = meta.file_type();
        let mut e = Entry {
            name: &[],
            kind: REG,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            size: 0,
            mtime,
            link: &[],
            dev: (0, 0),
            xattrs: &[],
        };
        if ft.is_socket() {
            // A socket is bound by a running process; tar(1) skips them too.
            return Ok(None);
        }
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some((first, left)) = self.links.get_mut(&key) {
                *left -= 1;
                let first = if *left == 0 {
                    self.links.remove(&key).unwrap().0
                } else {
                    first.clone()
                };
                e.name = &name;
                e.kind = LINK;
                e.link = &first;
                return self.header(&e).map(|()| None);
            }
            self.links.insert(key, (name.clone(), meta.nlink() - 1));
        }
        let (xattrs, opaque) = self.xattrs(&path)?;
        e.xattrs = &xattrs;
        let target;
        if ft.is_dir() {
            name.push(b'/');
            e.name = &name;
            e.kind = DIR;
            self.header(&e)?;
            if opaque {
                let mut marker = name.clone();
                marker.extend_from_slice(whiteout::OPAQUE.as_bytes());
                self.empty_marker(&marker, mtime)?;
            }
            // tar --one-file-system: a mount point is archived, what is mounted on it is not.
            if meta.dev() != self.root_dev {
                return Ok(None);
            }
            return self.list(path, name).map(Some);
        } else if ft.is_file() {
            e.name = &name;
            e.size = meta.len();
            self.header(&e)?;
            self.copy_file(&path, &meta)?;
            return Ok(None);
        } else if ft.is_symlink() {
            target = fs::read_link(&path)
                .ctx("read link", &path)?
                .into_os_string();
            e.kind = SYMLINK;
            e.link = target.as_bytes();
        } else if ft.is_char_device() || ft.is_block_device() {
            e.kind = if ft.is_char_device() { CHAR } else { BLOCKDEV };
            let rdev = meta.rdev();
            e.dev = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        } else if ft.is_fifo() {
            e.kind = FIFO;
        } else {
            return Err(Error::file(&path, "unknown file type"));
        }
        e.name = &name;
        self.header(&e).map(|()| None)
    }

    fn clamp(&self, mtime: i64) -> i64 {
        match self.opts.source_date_epoch {
            Some(epoch) => mtime.min(epoch),
            None => mtime,
        }
    }

    /// A whiteout (`.wh.NAME`) or opaque marker: an empty file owned by root, mode 0, as
    /// the OCI image spec ("Whiteouts") and docker write them.
    fn empty_marker(&mut self, name: &[u8], mtime: i64) -> Result<()> {
        self.header(&Entry {
            name,
            kind: REG,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime,
            link: &[],
            dev: (0, 0),
            xattrs: &[],
        })
    }

    /// The xattrs to record, sorted by name, and whether they mark an opaque directory.
    fn xattrs(&self, path: &Path) -> Result<(Vec<Xattr>, bool)> {
        let names = match xattr::list(path) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok((Vec::new(), false)),
            Err(e) => return Err(e).ctx("list xattrs of", path),
        };
        let mut out = Vec::new();
        let mut opaque = false;
        for n in names {
            let b = n.as_bytes();
            // overlayfs(5) keeps its own state in trusted.overlay.* (user.overlay.* with
            // userxattr): it describes this overlay, never the image.
            let overlay = b.starts_with(b"trusted.overlay.") || b.starts_with(b"user.overlay.");
            if overlay && self.opts.overlay {
                let v = || xattr::get(path, &n).ctx("read xattr of", path);
                if b == whiteout::OPAQUE_XATTR.as_bytes()
                    || b == whiteout::OPAQUE_XATTR_USER.as_bytes()
                {
                    opaque |= v()?.as_deref() == Some(b"y");
                } else if b.ends_with(b".overlay.redirect") || b.ends_with(b".overlay.metacopy") {
                    // Their content lives in a lower layer: a tar of the upper dir alone
                    // would silently lose it.
                    return Err(Error::file(
                        path,
                        format!(
                            "{} is set: mount the overlay with redirect_dir=off and metacopy=off",
                            n.to_string_lossy()
                        ),
                    ));
                }
            }
            // security.selinux is the host's label, not the image's (umoci drops it too).
            if overlay || b == b"security.selinux" {
                continue;
            }
            if let Some(v) = xattr::get(path, &n).ctx("read xattr of", path)? {
                out.push((n.into_vec(), v));
            }
        }
        out.sort_unstable();
        Ok((out, opaque))
    }

    fn copy_file(&mut self, path: &Path, meta: &Metadata) -> Result<()> {
        // O_NOFOLLOW: the entry was stat'ed as a regular file and must still be one (a
        // symlink swapped in would be followed); O_NONBLOCK: nor may a fifo block us.
        let mut f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .ctx("open", path)?;
        let now = f.metadata().ctx("stat", path)?;
        if !now.is_file() || now.ino() != meta.ino() || now.dev() != meta.dev() {
            return Err(Error::file(path, "changed while being packed"));
        }
        let mut left = meta.len();
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = read_some(&mut f, &mut self.buf[..want]).ctx("read", path)?;
            if n == 0 {
                return Err(Error::file(path, "file shrank while being packed"));
            }
            self.out
                .write_all(&self.buf[..n])
                .ctx(self.sink.op, self.sink.path)?;
            left -= n as u64;
        }
        self.pad(meta.len())
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.write(&[0; BLOCK][rem..])?;
        }
        Ok(())
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).ctx(self.sink.op, self.sink.path)
    }

    /// The ustar header of `e`, preceded by a pax extended header ('x') for what ustar
    /// cannot hold: names and link targets over 100 bytes, sizes of 8 GiB and more, ids
    /// over 2097151, mtimes before 1970 or after 2242, and xattrs (SCHILY.xattr.NAME, the
    /// key GNU tar, bsdtar and Go's archive/tar read). The pax records carry no atime or
    /// ctime and no sub-second mtime, so the bytes depend on the tree's content alone.
    fn header(&mut self, e: &Entry) -> Result<()> {
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let num = |pax: &mut Vec<_>, key: &str, v: i128, width: usize| -> u64 {
            let fits = v >= 0 && v < 1i128 << (3 * (width - 1));
            if fits {
                return v as u64;
            }
            pax.push((key.as_bytes().to_vec(), v.to_string().into_bytes()));
            0
        };
        let size = num(&mut pax, "size", e.size.into(), 12);
        let uid = num(&mut pax, "uid", e.uid.into(), 8);
        let gid = num(&mut pax, "gid", e.gid.into(), 8);
        let mtime = num(&mut pax, "mtime", e.mtime.into(), 12);
        if e.name.len() > 100 {
            pax.push((b"path".to_vec(), e.name.to_vec()));
        }
        if e.link.len() > 100 {
            pax.push((b"linkpath".to_vec(), e.link.to_vec()));
        }
        for (k, v) in e.xattrs {
            pax.push(([b"SCHILY.xattr.".as_slice(), k].concat(), v.clone()));
        }
        if !pax.is_empty() {
            pax.sort_unstable();
            let mut data = Vec::new();
            for (k, v) in &pax {
                pax_record(&mut data, k, v);
            }
            self.write(&ustar(&Entry {
                name: &pax_header_name(e.name),
                kind: PAX,
                mode: 0,
                uid: 0,
                gid: 0,
                size: data.len() as u64,
                mtime: 0,
                link: &[],
                dev: (0, 0),
                xattrs: &[],
            }))?;
            self.write(&data)?;
            self.pad(data.len() as u64)?;
        }
        self.write(&ustar(&Entry {
            size,
            uid,
            gid,
            mtime: mtime as i64,
            ..*e
        }))?;
        self.entries += 1;
        self.newest = Some(self.newest.map_or(e.mtime, |n| n.max(e.mtime)));
        Ok(())
    }
}

/// A read that retries EINTR, as `read_exact` would.
fn read_some(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match f.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// One pax record, "LEN KEY=VALUE\n", where LEN counts the whole record including itself
/// (POSIX.1-2001 pax, "pax Extended Header").
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while rest + len.to_string().len() != len {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Go's archive/tar convention, "DIR/PaxHeaders.0/BASE": a reader that does not know pax
/// extracts the header as a harmless file beside the entry. Fixed, never a pid (GNU tar's
/// default "%d/PaxHeaders.%p/%f" puts the process id into the bytes).
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, base) = match trimmed.iter().rposition(|&c| c == b'/') {
        Some(i) => trimmed.split_at(i + 1),
        None => (&b""[..], trimmed),
    };
    let mut n = [dir, b"PaxHeaders.0/", base].concat();
    n.truncate(100);
    n
}

/// A ustar header block (POSIX.1-1988). Numeric fields are zero-padded octal with a NUL,
/// as GNU tar and Go write them; uname/gname stay empty so ids are not resolved through
/// the host's passwd and group files.
fn ustar(e: &Entry) -> [u8; BLOCK] {
    fn octal(field: &mut [u8], v: u64) {
        let s = format!("{v:0w$o}", w = field.len() - 1);
        field[..s.len()].copy_from_slice(s.as_bytes());
    }
    let mut h = [0u8; BLOCK];
    let n = e.name.len().min(100);
    h[..n].copy_from_slice(&e.name[..n]);
    octal(&mut h[100..108], e.mode.into());
    octal(&mut h[108..116], e.uid);
    octal(&mut h[116..124], e.gid);
    octal(&mut h[124..136], e.size);
    octal(&mut h[136..148], e.mtime as u64);
    h[156] = e.kind;
    let n = e.link.len().min(100);
    h[157..157 + n].copy_from_slice(&e.link[..n]);
    h[257..265].copy_from_slice(b"ustar\x0000");
    octal(&mut h[329..337], e.dev.0.into());
    octal(&mut h[337..345], e.dev.1.into());
    // The checksum is computed with its own field as spaces, then written as six octal
    // digits, a NUL and a space.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    octal(&mut h[148..155], sum.into());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;
    use rustix::fs::{
        makedev, mknodat, utimensat, AtFlags, FileType, Mode, Timespec, Timestamps, CWD,
    };
    use std::ffi::CString;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::process::Command;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    fn set_mtime(p: &Path, sec: i64, nsec: i64) {
        let t = Timespec {
            tv_sec: sec,
            tv_nsec: nsec as _,
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }

    fn mknod(p: &Path, kind: FileType, major: u32, minor: u32) {
        mknodat(
            CWD,
            p,
            kind,
            Mode::from_raw_mode(0o640),
            makedev(major, minor),
        )
        .unwrap();
    }

    fn write(p: &Path, content: &[u8]) {
        fs::write(p, content).unwrap();
    }

    fn tar_of(dir: &Path, opts: &PackOptions) -> (Vec<u8>, PackStats) {
        let mut v = Vec::new();
        let stats = write_tar(dir, opts, &mut v).unwrap();
        (v, stats)
    }

    #[derive(Debug, Default, Clone)]
    struct E {
        path: String,
        kind: u8,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        link: String,
        dev: (u32, u32),
        data: Vec<u8>,
        pax: Vec<(String, Vec<u8>)>,
    }

    /// Every entry as the tar crate reads it (pax path, linkpath and size applied).
    fn entries(tar: &[u8]) -> Vec<E> {
        let mut a = tar::Archive::new(tar);
        let mut out = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let pax = match e.pax_extensions().unwrap() {
                Some(x) => x
                    .map(|r| {
                        let r = r.unwrap();
                        (r.key().unwrap().to_string(), r.value_bytes().to_vec())
                    })
                    .collect(),
                None => Vec::new(),
            };
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push(E {
                path: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                kind: h.entry_type().as_byte(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                link: e
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap())
                    .unwrap_or_default(),
                dev: (
                    h.device_major().unwrap().unwrap_or(0),
                    h.device_minor().unwrap().unwrap_or(0),
                ),
                data,
                pax,
            });
        }
        out
    }

    fn names(tar: &[u8]) -> Vec<String> {
        entries(tar).into_iter().map(|e| e.path).collect()
    }

    fn find(es: &[E], path: &str) -> E {
        es.iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("no entry {path}"))
            .clone()
    }

    /// `tar --numeric-owner -tvf -` of `tar`, one line per entry.
    fn system_tar_list(tar: &[u8]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.tar");
        write(&f, tar);
        let out = Command::new("tar")
            .args(["--numeric-owner", "-tvf"])
            .arg(&f)
            .output()
            .expect("tar(1) on PATH");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.to_string())
            .collect()
    }

    /// A small tree with one of most things, all mtimes fixed.
    fn sample(root: &Path) {
        fs::create_dir_all(root.join("a/c")).unwrap();
        fs::create_dir(root.join("b")).unwrap();
        write(&root.join("a/c/file"), b"hello\n");
        write(&root.join("a-b"), &vec![7u8; 1000]);
        write(&root.join("b/empty"), b"");
        fs::set_permissions(root.join("a-b"), fs::Permissions::from_mode(0o4755)).unwrap();
        symlink("../a/c/file", root.join("b/link")).unwrap();
        xattr::set(root.join("a/c/file"), "user.b", b"2").unwrap();
        xattr::set(root.join("a/c/file"), "user.a", b"1").unwrap();
        for p in ["a/c/file", "a/c", "a-b", "b/empty", "b/link", "b", "a"] {
            set_mtime(&root.join(p), 1_600_000_000, 0);
        }
    }

    #[test]
    fn order_is_sorted_per_directory_with_directories_first() {
        let t = tempfile::tempdir().unwrap();
        sample(t.path());
        let (tar, stats) = tar_of(t.path(), &PackOptions::default());
        assert_eq!(
            names(&tar),
            ["a/", "a/c/", "a/c/file", "a-b", "b/", "b/empty", "b/link"]
        );
        assert_eq!(stats.entries, 7);
        assert_eq!(stats.newest_mtime, 1_600_000_000);
        assert_eq!(tar.len() % 512, 0);
        assert_eq!(tar[tar.len() - 1024..], [0u8; 1024]);
    }

    #[test]
    fn same_tree_same_bytes_whatever_atime_ctime_and_subsecond_mtime() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        fs::create_dir(&a).unwrap();
        sample(&a);
        let (one, _) = tar_of(&a, &PackOptions::default());
        let (two, _) = tar_of(&a, &PackOptions::default());
        assert_eq!(one, two, "same tree packed twice");

        // A copy has new ctimes; then new atimes and other sub-second mtimes too.
        let b = t.path().join("b");
        let st = Command::new("cp")
            .arg("-a")
            .arg(&a)
            .arg(&b)
            .status()
            .unwrap();
        assert!(st.success());
        std::thread::sleep(std::time::Duration::from_millis(20));
        for p in ["a/c/file", "a-b", "b/link"] {
            let p = b.join(p);
            let m = fs::symlink_metadata(&p).unwrap();
            let at = Timespec {
                tv_sec: 12345,
                tv_nsec: 0,
            };
            let mt = Timespec {
                tv_sec: m.mtime(),
                tv_nsec: 999_999_999,
            };
            let times = Timestamps {
                last_access: at,
                last_modification: mt,
            };
            utimensat(CWD, &p, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        }
        let (three, _) = tar_of(&b, &PackOptions::default());
        assert_eq!(one, three, "a copy with other atimes, ctimes, nanoseconds");
        assert_eq!(sha256(&one), sha256(&three));

        // The content is in the bytes: a changed file changes them.
        write(&b.join("a/c/file"), b"hellO\n");
        set_mtime(&b.join("a/c/file"), 1_600_000_000, 0);
        assert_ne!(tar_of(&b, &PackOptions::default()).0, one);
    }

    #[test]
    fn headers_hold_metadata_and_no_names_or_times_of_the_host() {
        let t = tempfile::tempdir().unwrap();
        sample(t.path());
        if is_root() {
            rustix::fs::chownat(
                CWD,
                t.path().join("b/empty"),
                Some(rustix::fs::Uid::from_raw(1234)),
                Some(rustix::fs::Gid::from_raw(5678)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
        }
        let (tar, _) = tar_of(t.path(), &PackOptions::default());
        let es = entries(&tar);
        let f = find(&es, "a/c/file");
        assert_eq!(
            (f.kind, f.data.as_slice(), f.mtime),
            (b'0', &b"hello\n"[..], 1_600_000_000)
        );
        assert_eq!(
            f.pax,
            [
                ("SCHILY.xattr.user.a".to_string(), b"1".to_vec()),
                ("SCHILY.xattr.user.b".to_string(), b"2".to_vec())
            ]
        );
        let x = find(&es, "a-b");
        assert_eq!((x.mode, x.data.len()), (0o4755, 1000));
        let l = find(&es, "b/link");
        assert_eq!(
            (l.kind, l.link.as_str(), l.data.len()),
            (b'2', "../a/c/file", 0)
        );
        assert_eq!(find(&es, "a/").kind, b'5');
        if is_root() {
            let e = find(&es, "b/empty");
            assert_eq!((e.uid, e.gid), (1234, 5678));
        }
        // No atime/ctime anywhere, no user or group names.
        for w in [&b"atime"[..], b"ctime", b"root"] {
            assert!(!tar.windows(w.len()).any(|x| x == w), "{:?} in the tar", w);
        }
        let listing = system_tar_list(&tar);
        assert_eq!(listing.len(), 7, "{listing:?}");
        assert!(listing[3].starts_with("-rwsr-xr-x 0/0"), "{}", listing[3]);
        assert!(listing[3].ends_with(" a-b"), "{}", listing[3]);
        assert!(
            listing[6].ends_with(" b/link -> ../a/c/file"),
            "{}",
            listing[6]
        );
    }

    #[test]
    fn hard_links_point_at_the_first_path() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        fs::create_dir_all(r.join("d")).unwrap();
        write(&r.join("d/x"), b"shared");
        fs::hard_link(r.join("d/x"), r.join("y")).unwrap();
        fs::hard_link(r.join("d/x"), r.join("a")).unwrap();
        // Its other link is outside the tree: inside, it is a plain file.
        write(&r.join("lonely"), b"alone");
        fs::hard_link(r.join("lonely"), t.path().join("outside")).unwrap();
        let (tar, stats) = tar_of(&r, &PackOptions::default());
        let es = entries(&tar);
        assert_eq!(names(&tar), ["a", "d/", "d/x", "lonely", "y"]);
        assert_eq!(stats.entries, 5);
        let first = find(&es, "a");
        assert_eq!((first.kind, first.data.as_slice()), (b'0', &b"shared"[..]));
        for p in ["d/x", "y"] {
            let e = find(&es, p);
            assert_eq!(
                (e.kind, e.link.as_str(), e.data.len()),
                (b'1', "a", 0),
                "{p}"
            );
        }
        let l = find(&es, "lonely");
        assert_eq!((l.kind, l.data.as_slice()), (b'0', &b"alone"[..]));
        let listing = system_tar_list(&tar);
        assert!(listing[4].ends_with(" y link to a"), "{}", listing[4]);
    }

    #[test]
    fn xattrs_kept_sorted_overlay_ones_never() {
        if !is_root() {
            eprintln!("skipped: trusted.* and security.capability need root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("ping");
        write(&f, b"\x7fELF");
        // cap_net_raw+ep in VFS_CAP_REVISION_2 form (capability.h).
        let cap: &[u8] = &[
            0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        xattr::set(&f, "security.capability", cap).unwrap();
        xattr::set(&f, "trusted.test", b"t").unwrap();
        xattr::set(&f, "user.z", b"\x00binary\xff").unwrap();
        xattr::set(&f, "trusted.overlay.origin", b"x").unwrap();
        xattr::set(t.path(), "trusted.overlay.opaque", b"y").unwrap();
        fs::create_dir(t.path().join("d")).unwrap();
        xattr::set(t.path().join("d"), "trusted.overlay.opaque", b"y").unwrap();
        xattr::set(t.path().join("d"), "user.overlay.opaque", b"y").unwrap();
        let (tar, _) = tar_of(t.path(), &PackOptions::default());
        let es = entries(&tar);
        assert_eq!(
            find(&es, "ping").pax,
            [
                ("SCHILY.xattr.security.capability".to_string(), cap.to_vec()),
                ("SCHILY.xattr.trusted.test".to_string(), b"t".to_vec()),
                (
                    "SCHILY.xattr.user.z".to_string(),
                    b"\x00binary\xff".to_vec()
                ),
            ]
        );
        // Outside overlay mode the opaque marker is dropped, and no whiteout is made of it.
        assert_eq!(names(&tar), ["d/", "ping"]);
        assert!(find(&es, "d/").pax.is_empty());
    }

    #[test]
    fn source_date_epoch_clamps_newer_mtimes_only() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("old"), b"o");
        write(&t.path().join("new"), b"n");
        set_mtime(&t.path().join("old"), 1000, 500);
        set_mtime(&t.path().join("new"), 3000, 0);
        let opts = PackOptions {
            source_date_epoch: Some(2000),
            overlay: false,
        };
        let (tar, stats) = tar_of(t.path(), &opts);
        let es = entries(&tar);
        assert_eq!(find(&es, "old").mtime, 1000);
        assert_eq!(find(&es, "new").mtime, 2000);
        assert_eq!(stats.newest_mtime, 2000);
        let (_, stats) = tar_of(t.path(), &PackOptions::default());
        assert_eq!(stats.newest_mtime, 3000);
        let e = tempfile::tempdir().unwrap();
        let (tar, stats) = tar_of(e.path(), &opts);
        assert_eq!(stats, PackStats::default());
        assert_eq!(tar, [0u8; 1024]);
    }

    #[test]
    fn overlay_whiteouts_and_opaque_directories() {
        if !is_root() {
            eprintln!("skipped: mknod of a whiteout and trusted.overlay.* need root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let up = t.path();
        fs::create_dir(up.join("d")).unwrap();
        write(&up.join("d/f"), b"new");
        xattr::set(up.join("d"), whiteout::OPAQUE_XATTR, b"y").unwrap();
        xattr::set(up.join("d"), "user.keep", b"k").unwrap();
        fs::create_dir(up.join("u")).unwrap();
        xattr::set(up.join("u"), whiteout::OPAQUE_XATTR_USER, b"y").unwrap();
        // "x" marks a merge dir holding whiteouts (overlayfs 6.7+), not an opaque one.
        fs::create_dir(up.join("x")).unwrap();
        xattr::set(up.join("x"), whiteout::OPAQUE_XATTR, b"x").unwrap();
        mknod(&up.join("gone"), FileType::CharacterDevice, 0, 0);
        mknod(&up.join("null"), FileType::CharacterDevice, 1, 3);
        mknod(&up.join("sda"), FileType::BlockDevice, 8, 0);
        rustix::fs::mkfifoat(CWD, up.join("fifo"), Mode::from_raw_mode(0o600)).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(up.join("sock")).unwrap();
        for p in ["d/f", "d", "u", "x", "gone", "null", "sda", "fifo"] {
            set_mtime(&up.join(p), 5000, 0);
        }
        let opts = PackOptions {
            source_date_epoch: Some(4000),
            overlay: true,
        };
        let (tar, stats) = tar_of(up, &opts);
        let es = entries(&tar);
        assert_eq!(
            names(&tar),
            [
                ".wh.gone",
                "d/",
                "d/.wh..wh..opq",
                "d/f",
                "fifo",
                "null",
                "sda",
                "u/",
                "u/.wh..wh..opq",
                "x/"
            ]
        );
        assert_eq!(stats.entries, 10);
        for p in [".wh.gone", "d/.wh..wh..opq", "u/.wh..wh..opq"] {
            let w = find(&es, p);
            assert_eq!(
                (w.kind, w.mode, w.uid, w.gid, w.data.len()),
                (b'0', 0, 0, 0, 0),
                "{p}"
            );
            assert_eq!(w.mtime, 4000, "{p}");
        }
        let d = find(&es, "d/");
        assert_eq!(
            d.pax,
            [("SCHILY.xattr.user.keep".to_string(), b"k".to_vec())]
        );
        assert!(find(&es, "u/").pax.is_empty() && find(&es, "x/").pax.is_empty());
        let n = find(&es, "null");
        assert_eq!((n.kind, n.dev, n.mode), (b'3', (1, 3), 0o640));
        assert_eq!(
            (find(&es, "sda").kind, find(&es, "sda").dev),
            (b'4', (8, 0))
        );
        assert_eq!(find(&es, "fifo").kind, b'6');
        let listing = system_tar_list(&tar);
        assert!(listing[5].starts_with("crw-r----- 0/0") && listing[5].contains(" 1,3 "));

        // Not an overlay dir: a 0/0 device is just a device, opaque xattrs just dropped.
        let (tar, _) = tar_of(up, &PackOptions::default());
        let es = entries(&tar);
        assert_eq!(
            names(&tar),
            ["d/", "d/f", "fifo", "gone", "null", "sda", "u/", "x/"]
        );
        assert_eq!(
            (find(&es, "gone").kind, find(&es, "gone").dev),
            (b'3', (0, 0))
        );
    }

    #[test]
    fn a_real_wh_file_is_refused() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("etc")).unwrap();
        write(&t.path().join("etc/.wh.passwd"), b"");
        for overlay in [false, true] {
            let opts = PackOptions {
                overlay,
                ..Default::default()
            };
            let err = write_tar(t.path(), &opts, io::sink())
                .unwrap_err()
                .to_string();
            assert!(err.contains("etc/.wh.passwd"), "{err}");
            assert!(err.contains("would be read as a whiteout"), "{err}");
        }
        if is_root() {
            // Nor may a whiteout device carry the prefix.
            let u = tempfile::tempdir().unwrap();
            mknod(&u.path().join(".wh.x"), FileType::CharacterDevice, 0, 0);
            let opts = PackOptions {
                overlay: true,
                ..Default::default()
            };
            assert!(write_tar(u.path(), &opts, io::sink()).is_err());
        }
    }

    #[test]
    fn symlinks_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        fs::create_dir(&r).unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        write(&outside.join("secret"), b"secret");
        symlink(&outside, r.join("dir")).unwrap();
        symlink(outside.join("secret"), r.join("file")).unwrap();
        symlink("nowhere", r.join("dangling")).unwrap();
        let (tar, _) = tar_of(&r, &PackOptions::default());
        let es = entries(&tar);
        assert_eq!(names(&tar), ["dangling", "dir", "file"]);
        assert!(es.iter().all(|e| e.kind == b'2' && e.data.is_empty()));
        assert_eq!(find(&es, "dir").link, outside.to_str().unwrap());
        // The root itself must be a directory, not a link to one.
        let err = write_tar(&r.join("dir"), &PackOptions::default(), io::sink()).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn long_names_and_link_targets_use_pax() {
        let t = tempfile::tempdir().unwrap();
        let d1 = "d".repeat(120);
        let f = "f".repeat(200);
        let dir = t.path().join(&d1);
        fs::create_dir(&dir).unwrap();
        write(&dir.join(&f), b"long");
        let target = format!("{}/{}", "t".repeat(150), "u".repeat(60));
        symlink(&target, t.path().join("l")).unwrap();
        fs::hard_link(dir.join(&f), t.path().join("h")).unwrap();
        let (tar, _) = tar_of(t.path(), &PackOptions::default());
        let es = entries(&tar);
        let long = format!("{d1}/{f}");
        assert_eq!(
            names(&tar),
            [format!("{d1}/"), long.clone(), "h".into(), "l".into()]
        );
        assert_eq!(find(&es, &long).data, b"long");
        assert_eq!(find(&es, "l").link, target);
        assert_eq!(find(&es, "h").link, long);
        let listing = system_tar_list(&tar);
        assert!(listing[1].ends_with(&long), "{}", listing[1]);
        assert!(
            listing[2].ends_with(&format!("h link to {long}")),
            "{}",
            listing[2]
        );
        assert!(
            listing[3].ends_with(&format!("l -> {target}")),
            "{}",
            listing[3]
        );
    }

    #[test]
    fn numbers_beyond_ustar_use_pax() {
        let mut out = Vec::new();
        let opts = PackOptions::default();
        let mut p = Packer {
            opts: &opts,
            root_dev: 0,
            out: BufWriter::new(&mut out),
            sink: Sink {
                op: "write",
                path: Path::new("x"),
            },
            links: HashMap::new(),
            buf: Vec::new(),
            entries: 0,
            newest: None,
        };
        p.header(&Entry {
            name: b"big",
            kind: REG,
            mode: 0o644,
            uid: 3_000_000,
            gid: 4_000_000,
            size: 9 << 30,
            mtime: -86400,
            link: &[],
            dev: (0, 0),
            xattrs: &[],
        })
        .unwrap();
        assert_eq!(p.newest, Some(-86400));
        drop(p);
        let mut a = tar::Archive::new(out.as_slice());
        let mut entries = a.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(e.size(), 9 << 30);
        let recs: Vec<_> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                format!("{}={}", r.key().unwrap(), r.value().unwrap())
            })
            .collect();
        assert_eq!(
            recs,
            [
                "gid=4000000",
                "mtime=-86400",
                "size=9663676416",
                "uid=3000000"
            ]
        );
        assert_eq!(e.header().size().unwrap(), 0);
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"a");
        assert_eq!(v, b"9 path=a\n");
        for n in [0, 1, 85, 86, 87, 94, 95, 96, 990, 995, 996, 1000] {
            let mut v = Vec::new();
            pax_record(&mut v, b"k", &vec![b'x'; n]);
            let (len, _) = v.split_at(v.iter().position(|&c| c == b' ').unwrap());
            let len: usize = std::str::from_utf8(len).unwrap().parse().unwrap();
            assert_eq!(len, v.len(), "value of {n} bytes");
        }
    }

    #[test]
    fn mount_points_are_kept_but_not_entered() {
        if !is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("mnt");
        fs::create_dir(&m).unwrap();
        write(&t.path().join("z"), b"z");
        let target = CString::new(m.as_os_str().as_bytes()).unwrap();
        let (none, tmpfs) = (c"none", c"tmpfs");
        let rc = unsafe {
            libc::mount(
                none.as_ptr(),
                target.as_ptr(),
                tmpfs.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            eprintln!("skipped: mount tmpfs: {}", io::Error::last_os_error());
            return;
        }
        struct Unmount(CString);
        impl Drop for Unmount {
            fn drop(&mut self) {
                unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _u = Unmount(target);
        write(&m.join("inside"), b"other filesystem");
        let (tar, _) = tar_of(t.path(), &PackOptions::default());
        assert_eq!(names(&tar), ["mnt/", "z"]);
    }

    /// Run `f` on a thread whose filesystem uid is `nobody`: root's CAP_DAC_OVERRIDE is
    /// dropped for that thread only (setfsuid(2)), so permissions apply to it.
    fn as_nobody<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                unsafe { libc::setfsuid(65534) };
                f()
            })
            .join()
            .unwrap()
        })
    }

    #[test]
    fn an_unreadable_file_is_named() {
        if !is_root() {
            eprintln!("skipped: needs root to make a file root alone may read");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        write(&t.path().join("secret"), b"s");
        fs::set_permissions(t.path().join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
        let err =
            as_nobody(|| write_tar(t.path(), &PackOptions::default(), io::sink()).unwrap_err());
        let msg = err.to_string();
        assert!(
            msg.starts_with("open ") && msg.contains("/secret: permission denied"),
            "{msg}"
        );
    }

    #[test]
    fn a_full_output_is_a_no_space_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let t = tempfile::tempdir().unwrap();
        sample(t.path());
        let err = write_tar(t.path(), &PackOptions::default(), Full).unwrap_err();
        assert!(err.is_no_space(), "{err}");
        let want = format!(
            "write tar of {}: no space left on device",
            t.path().display()
        );
        assert_eq!(err.to_string(), want);
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(b).read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn pack_layer_names_the_blob_by_its_digest_and_the_tar_by_diff_id() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir(&src).unwrap();
        sample(&src);
        // Enough to span many gzip blocks, in content that compresses and content that not.
        let mut x = 1u64;
        let noise: Vec<u8> = (0..600_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        write(&src.join("noise"), &noise);
        write(
            &src.join("text"),
            "the quick brown fox\n".repeat(50_000).as_bytes(),
        );
        let store = Store::open(t.path().join("store")).unwrap();
        let opts = PackOptions {
            source_date_epoch: Some(1_700_000_000),
            overlay: false,
        };
        let (info, stats) = store.pack_layer(&src, &opts).unwrap();
        let blob = fs::read(store.blob_path(&info.digest)).unwrap();
        assert_eq!(info.digest, sha256(&blob));
        assert_eq!(info.size, blob.len() as u64);
        assert_eq!(info.media_type, MediaType::ImageLayerGzip);
        let tar = gunzip(&blob);
        assert_eq!(info.diff_id, sha256(&tar));
        let (direct, direct_stats) = tar_of(&src, &opts);
        assert_eq!(tar, direct);
        assert_eq!(stats, direct_stats);
        assert!(blob.len() < tar.len() / 2 + 700_000);
        let out = Command::new("sh")
            .arg("-c")
            .arg("gzip -dc | tar -tf -")
            .stdin(fs::File::open(store.blob_path(&info.digest)).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 9);

        // Packed again: the same blob.
        let (again, _) = store.pack_layer(&src, &opts).unwrap();
        assert_eq!(again, info);
    }

    #[test]
    fn pack_layer_error_leaves_no_blob() {
        if !is_root() {
            eprintln!("skipped: needs root to make a file root alone may read");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir(&src).unwrap();
        write(&src.join("a"), &vec![1u8; 300_000]);
        write(&src.join("secret"), b"s");
        fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
        for p in [t.path(), src.as_path()] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let root = t.path().join("store");
        let store = Store::open(&root).unwrap();
        // The store is nobody's here, so only the unreadable source file can fail.
        let st = Command::new("chown")
            .args(["-R", "65534"])
            .arg(&root)
            .status()
            .unwrap();
        assert!(st.success());
        let session = store.temp_path("probe").parent().unwrap().to_path_buf();
        let err = as_nobody(|| store.pack_layer(&src, &PackOptions::default()).unwrap_err());
        assert!(
            err.to_string().contains("/src/secret: permission denied"),
            "{err}"
        );
        assert_eq!(
            fs::read_dir(store.layout_dir().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
        let left: Vec<_> = fs::read_dir(&session)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with("blob"))
            .collect();
        assert!(left.is_empty(), "temp blobs left: {left:?}");
    }
}
