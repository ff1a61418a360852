//! ADD and COPY: build the new layer's tree in a staging directory. The destination is
//! resolved inside the image (symlinks followed only within its root, `layers::union`), its
//! existing parent directories are recreated with the image's own metadata so the layer does
//! not change them, and sources are copied with Docker's rules: a directory's contents, not
//! the directory; symlinks as symlinks; owner 0:0 unless --chown (also for the directories
//! the copy creates); local archives unpacked by ADD; URLs downloaded by ADD.

use crate::context::Origin;
use crate::{Error, Result};
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct Copier<'a> {
    /// The image's layer directories, bottom first.
    pub layers: &'a [PathBuf],
    /// Root of the new layer's tree.
    pub staging: &'a Path,
    pub uid: u32,
    pub gid: u32,
    /// --chmod
    pub mode: Option<u32>,
    /// Where the sources are read from (the context with .minignore, or a layer union).
    pub origin: Origin<'a>,
}

/// Where sources land in the staging tree.
pub struct Target {
    pub path: PathBuf,
    pub is_dir: bool,
}

fn io(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::Failed(format!(
        "{what} {}: {}",
        p.display(),
        layers::error::io_message(&e)
    ))
}

fn lchown(p: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).map_err(|e| io("chown", p, e))
}

/// A directory itself, not a symlink to one: an earlier source of the same instruction may
/// have put a symlink (to a host path) in the staging tree, and `Path::is_dir` would follow it
/// out of the tree.
fn is_real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

impl Copier<'_> {
    /// Resolve `dest` (absolute in the image) and create its parents in the staging tree.
    pub fn dest(&self, dest: &str, trailing_slash: bool) -> Result<Target> {
        let rel = layers::union::resolve(self.layers, dest)?;
        let existing = layers::union::lookup(self.layers, &rel)?;
        let is_dir = trailing_slash
            || existing.as_ref().is_some_and(|f| f.meta.is_dir())
            || rel.as_os_str().is_empty();
        let parts: Vec<_> = rel.components().collect();
        let upto = if is_dir {
            parts.len()
        } else {
            parts.len().saturating_sub(1)
        };
        let mut cur = PathBuf::new();
        for c in &parts[..upto] {
            cur.push(c);
            let p = self.staging.join(&cur);
            if is_real_dir(&p) {
                continue;
            }
            fs::create_dir(&p).map_err(|e| io("create", &p, e))?;
            // A parent that exists in the image keeps its mode and owner (an upper-layer
            // directory entry replaces the lower one's metadata in the merged view).
            match layers::union::lookup(self.layers, &cur)? {
                Some(f) if f.meta.is_dir() => {
                    fs::set_permissions(&p, fs::Permissions::from_mode(f.meta.mode() & 0o7777))
                        .map_err(|e| io("chmod", &p, e))?;
                    lchown(&p, f.meta.uid(), f.meta.gid())?;
                }
                Some(_) => {
                    return Err(Error::Failed(format!(
                        "{dest}: /{} is not a directory in the image",
                        cur.display()
                    )))
                }
                None => self.owned(&p)?,
            }
        }
        Ok(Target {
            path: self.staging.join(&rel),
            is_dir,
        })
    }

    /// A directory the copy creates gets 0755 and the --chown owner, as Docker's do.
    fn owned(&self, p: &Path) -> Result<()> {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).map_err(|e| io("chmod", p, e))?;
        lchown(p, self.uid, self.gid)
    }

    /// Create `p` (whose parent exists) unless it is already there.
    fn mkdir(&self, p: &Path) -> Result<()> {
        if is_real_dir(p) {
            return Ok(());
        }
        fs::create_dir(p).map_err(|e| io("create", p, e))?;
        self.owned(p)
    }

    /// Copy one source (file, directory or symlink) to the target.
    pub fn copy(&self, src: &Path, target: &Target, add: bool) -> Result<()> {
        let m = fs::symlink_metadata(src).map_err(|e| io("read", src, e))?;
        if add && m.is_file() {
            if let Some(kind) = archive_kind(src)? {
                // An archive is unpacked into the destination, which is a directory either way.
                self.mkdir(&target.path)?;
                return self.extract(src, kind, &target.path);
            }
        }
        if m.is_dir() {
            // The directory's contents are copied; a destination the copy creates takes the
            // source directory's mode (a destination the image has keeps its own).
            if !is_real_dir(&target.path) {
                fs::create_dir(&target.path).map_err(|e| io("create", &target.path, e))?;
                self.finish(&target.path, &m)?;
            }
            return self.copy_tree(src, &target.path);
        }
        let dest = if target.is_dir {
            self.mkdir(&target.path)?;
            target.path.join(src.file_name().unwrap_or_default())
        } else {
            target.path.clone()
        };
        self.copy_entry(src, &dest, &m)
    }

    fn copy_tree(&self, src: &Path, dest: &Path) -> Result<()> {
        for c in self.origin.children(src)? {
            let p = c.path;
            let m = fs::symlink_metadata(&p).map_err(|e| io("read", &p, e))?;
            let d = dest.join(p.file_name().unwrap_or_default());
            if m.is_dir() {
                if !is_real_dir(&d) {
                    // What an earlier source left here (a file, or a symlink that may point
                    // out of the tree) is replaced, never written through.
                    if fs::symlink_metadata(&d).is_ok() {
                        fs::remove_file(&d).map_err(|e| io("replace", &d, e))?;
                    }
                    fs::create_dir(&d).map_err(|e| io("create", &d, e))?;
                }
                self.copy_tree(&p, &d)?;
                // An excluded directory walked for re-included entries exists only for them.
                if c.excluded
                    && fs::read_dir(&d)
                        .map_err(|e| io("read", &d, e))?
                        .next()
                        .is_none()
                {
                    fs::remove_dir(&d).map_err(|e| io("remove", &d, e))?;
                    continue;
                }
                self.finish(&d, &m)?;
            } else {
                self.copy_entry(&p, &d, &m)?;
            }
        }
        Ok(())
    }

    fn copy_entry(&self, src: &Path, dest: &Path, m: &fs::Metadata) -> Result<()> {
        if let Ok(old) = fs::symlink_metadata(dest) {
            if old.is_dir() {
                fs::remove_dir_all(dest).map_err(|e| io("replace", dest, e))?;
            } else {
                fs::remove_file(dest).map_err(|e| io("replace", dest, e))?;
            }
        }
        let ft = m.file_type();
        if ft.is_symlink() {
            let t = fs::read_link(src).map_err(|e| io("read link", src, e))?;
            std::os::unix::fs::symlink(&t, dest).map_err(|e| io("create", dest, e))?;
            return lchown(dest, self.uid, self.gid);
        }
        if !ft.is_file() {
            // Sockets, fifos and devices in a context are not image content.
            return Ok(());
        }
        let mut from = File::open(src).map_err(|e| io("open", src, e))?;
        let mut to = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
            .map_err(|e| io("create", dest, e))?;
        std::io::copy(&mut from, &mut to).map_err(|e| io("copy to", dest, e))?;
        drop(to);
        self.finish(dest, m)
    }

    /// Owner, mode and mtime of a copied entry.
    fn finish(&self, dest: &Path, m: &fs::Metadata) -> Result<()> {
        lchown(dest, self.uid, self.gid)?;
        let mode = self.mode.unwrap_or(m.mode() & 0o7777);
        fs::set_permissions(dest, fs::Permissions::from_mode(mode))
            .map_err(|e| io("chmod", dest, e))?;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.mtime().max(0) as u64);
        File::options()
            .write(m.is_file())
            .read(!m.is_file())
            .open(dest)
            .and_then(|f| f.set_modified(t))
            .map_err(|e| io("set mtime", dest, e))
    }

    fn extract(&self, src: &Path, kind: Archive, into: &Path) -> Result<()> {
        let f = BufReader::new(File::open(src).map_err(|e| io("open", src, e))?);
        let reader: Box<dyn Read> = match kind {
            Archive::Tar => Box::new(f),
            Archive::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
            Archive::Xz => {
                let mut plain =
                    tempfile::tempfile_in(self.staging.parent().unwrap_or(self.staging))
                        .map_err(|e| io("create temp file in", self.staging, e))?;
                let mut input = f;
                lzma_rs::xz_decompress(&mut input, &mut plain)
                    .map_err(|e| Error::Failed(format!("{}: xz: {e:?}", src.display())))?;
                std::io::Seek::rewind(&mut plain).map_err(|e| io("read", src, e))?;
                Box::new(BufReader::new(plain))
            }
        };
        // Into a fresh directory first (unpack wants an empty target and refuses hostile
        // entries), then merged into the destination.
        let fresh = self.staging.parent().unwrap_or(self.staging).join(format!(
            "add-{}",
            src.file_name().unwrap_or_default().to_string_lossy()
        ));
        fs::create_dir(&fresh).map_err(|e| io("create", &fresh, e))?;
        let r = layers::unpack::unpack(reader, &fresh, &layers::unpack::UnpackOptions::default())
            .map_err(|e| Error::Failed(format!("ADD {}: {e}", src.display())))
            .and_then(|_| merge(&fresh, into));
        let _ = layers::store::remove_all(&fresh);
        r
    }

    /// Download `url` into `dir` (ADD of a URL): the file is named after the URL's last path
    /// segment, mode 0600 as with Docker.
    pub fn fetch(url: &str, dir: &Path) -> Result<PathBuf> {
        let name = url
            .split(['?', '#'])
            .next()
            .and_then(|u| u.rsplit('/').next())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .unwrap_or("download");
        // ureq's errors name the URL already.
        let resp = ureq::get(url)
            .call()
            .map_err(|e| Error::Failed(e.to_string()))?;
        let path = dir.join(name);
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io("create", &path, e))?;
        std::io::copy(&mut resp.into_reader(), &mut out)
            .map_err(|e| Error::Failed(format!("download {url}: {e}")))?;
        out.flush().map_err(|e| io("write", &path, e))?;
        Ok(path)
    }
}

fn merge(from: &Path, into: &Path) -> Result<()> {
    for e in fs::read_dir(from)
        .map_err(|e| io("read", from, e))?
        .flatten()
    {
        let d = into.join(e.file_name());
        let m = e.metadata().map_err(|x| io("read", &e.path(), x))?;
        match fs::symlink_metadata(&d) {
            Ok(dm) if dm.is_dir() && m.is_dir() => merge(&e.path(), &d)?,
            Ok(dm) => {
                if dm.is_dir() {
                    fs::remove_dir_all(&d).map_err(|x| io("replace", &d, x))?;
                } else {
                    fs::remove_file(&d).map_err(|x| io("replace", &d, x))?;
                }
                fs::rename(e.path(), &d).map_err(|x| io("move", &d, x))?;
            }
            Err(_) => fs::rename(e.path(), &d).map_err(|x| io("move", &d, x))?,
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Archive {
    Tar,
    Gzip,
    Xz,
}

/// What ADD unpacks: tar, gzip and xz by their magic numbers (a gzip or xz file that is not
/// a tar inside is refused by the tar reader, as Docker refuses it).
fn archive_kind(p: &Path) -> Result<Option<Archive>> {
    let mut f = File::open(p).map_err(|e| io("open", p, e))?;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).map_err(|e| io("read", p, e))? {
            0 => break,
            k => n += k,
        }
    }
    let head = &head[..n];
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Some(Archive::Gzip)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Archive::Xz)
    } else if n >= 262 && &head[257..262] == b"ustar" {
        Some(Archive::Tar)
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_later_source_never_writes_through_an_earlier_sources_symlink() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: the copy chowns to 0:0, which needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let host = t.path().join("host");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("f"), "host").unwrap();
        let ctx = t.path().join("ctx");
        fs::create_dir_all(ctx.join("a")).unwrap();
        fs::create_dir_all(ctx.join("b/x")).unwrap();
        symlink(&host, ctx.join("a/x")).unwrap();
        fs::write(ctx.join("b/x/f"), "image").unwrap();
        let staging = t.path().join("staging");
        fs::create_dir(&staging).unwrap();
        let context = Context::open(&ctx).unwrap();
        let copier = Copier {
            layers: &[],
            staging: &staging,
            uid: 0,
            gid: 0,
            mode: None,
            origin: Origin::Context(&context),
        };
        // COPY a b /dst/: a/x lands as a symlink to the host directory, then b/x/f.
        let target = copier.dest("/dst/", true).unwrap();
        for src in ["a", "b"] {
            copier.copy(&ctx.join(src), &target, false).unwrap();
        }
        assert_eq!(fs::read_to_string(host.join("f")).unwrap(), "host");
        assert_eq!(fs::read_dir(&host).unwrap().count(), 1);
        let x = staging.join("dst/x");
        assert!(fs::symlink_metadata(&x).unwrap().is_dir());
        assert_eq!(fs::read_to_string(x.join("f")).unwrap(), "image");
    }
}
