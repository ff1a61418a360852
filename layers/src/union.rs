//! The union of extracted layer directories as overlayfs(5) would show it, read without
//! mounting: whiteouts hide, opaque directories stop the lookup, a file hides a directory
//! below it. Symlinks are resolved only inside the image root (like openat2's
//! RESOLVE_IN_ROOT), so an image can never make the host read or write its own files.

use crate::error::{Error, IoContext, Result};
use crate::whiteout::{OPAQUE_XATTR, OPAQUE_XATTR_USER};
use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// An entry found in the union: the host path in the layer that provides it.
#[derive(Debug)]
pub struct Found {
    pub path: PathBuf,
    pub meta: Metadata,
}

fn components(rel: &Path) -> Vec<&std::ffi::OsStr> {
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    [OPAQUE_XATTR, OPAQUE_XATTR_USER]
        .iter()
        .any(|x| matches!(xattr::get(p, x), Ok(Some(v)) if v == b"y"))
}

/// `rel` (components only, no symlink followed) in the union of `layers` (bottom first).
pub fn lookup(layers: &[PathBuf], rel: &Path) -> Result<Option<Found>> {
    let parts = components(rel);
    if parts.is_empty() {
        return match layers.last() {
            Some(top) => Ok(Some(Found {
                path: top.clone(),
                meta: fs::metadata(top).ctx("stat", top)?,
            })),
            None => Ok(None),
        };
    }
    for layer in layers.iter().rev() {
        let mut p = layer.clone();
        let mut stops_here = false;
        for (i, part) in parts.iter().enumerate() {
            p.push(part);
            let m = match fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(e).ctx("stat", &p),
            };
            if is_whiteout(&m) {
                return Ok(None);
            }
            if i + 1 == parts.len() {
                return Ok(Some(Found { path: p, meta: m }));
            }
            if !m.is_dir() {
                return Ok(None);
            }
            // Lower layers show nothing below an opaque directory.
            stops_here |= is_opaque(&p);
        }
        if stops_here {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Resolve `path` (absolute in the image) to a path without symlinks, following links
/// scoped to the image root: `..` and absolute targets never climb above it. The last
/// components may not exist.
pub fn resolve(layers: &[PathBuf], path: &str) -> Result<PathBuf> {
    let mut todo: Vec<String> = components(Path::new(path))
        .iter()
        .rev()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            cur.pop();
            continue;
        }
        let candidate: PathBuf = cur.iter().chain(std::iter::once(&part)).collect();
        if let Some(f) = lookup(layers, &candidate)? {
            if f.meta.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    return Err(Error::file(path, "too many levels of symbolic links"));
                }
                let target = fs::read_link(&f.path).ctx("read link", &f.path)?;
                if target.is_absolute() {
                    cur.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => todo.push(n.to_string_lossy().into_owned()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
                continue;
            }
        }
        cur.push(part);
    }
    Ok(cur.iter().collect())
}

/// The regular file at `rel` (no symlink followed anywhere on the way): None when absent
/// or hidden; an error when a symlink is in the way or it is not a regular file (a FIFO
/// would block the reader, a device node would be read from the host).
pub fn read_file(layers: &[PathBuf], rel: &str) -> Result<Option<Vec<u8>>> {
    let parts = components(Path::new(rel));
    let mut prefix = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        prefix.push(part);
        let Some(f) = lookup(layers, &prefix)? else {
            return Ok(None);
        };
        if f.meta.file_type().is_symlink() {
            return Err(Error::file(
                format!("/{rel}"),
                "goes through a symlink in the image; it is not followed",
            ));
        }
        if i + 1 == parts.len() {
            let ft = f.meta.file_type();
            if ft.is_file() {
                return Ok(Some(fs::read(&f.path).ctx("read", &f.path)?));
            }
            let kind = if ft.is_dir() {
                "a directory"
            } else if ft.is_fifo() {
                "a fifo"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "a device node"
            };
            return Err(Error::file(
                format!("/{rel}"),
                format!("is {kind} in the image, not a regular file"),
            ));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let p = d.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, c).unwrap();
        }
        d
    }

    fn whiteout(at: &Path) {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(at.as_os_str().as_bytes()).unwrap();
        assert_eq!(
            unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0) },
            0,
            "mknod needs root"
        );
    }

    #[test]
    fn newer_layers_win_and_symlinks_are_refused_when_reading() {
        let a = layer(&[("etc/passwd", "old"), ("etc/group", "g")]);
        let b = layer(&[("etc/passwd", "new")]);
        let ls = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(read_file(&ls, "etc/passwd").unwrap().unwrap(), b"new");
        assert_eq!(read_file(&ls, "etc/group").unwrap().unwrap(), b"g");
        assert!(read_file(&ls, "etc/none").unwrap().is_none());
        // Not a regular file: refused without opening it (a FIFO would block the reader).
        let odd = tempfile::tempdir().unwrap();
        fs::create_dir_all(odd.path().join("etc/passwd")).unwrap();
        let fifo =
            std::ffi::CString::new(odd.path().join("etc/group").to_str().unwrap().as_bytes())
                .unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let ls = vec![a.path().to_path_buf(), odd.path().to_path_buf()];
        for (p, kind) in [("etc/passwd", "a directory"), ("etc/group", "a fifo")] {
            let e = read_file(&ls, p).unwrap_err().to_string();
            assert!(e.contains(&format!("is {kind} in the image")), "{e}");
        }
        let evil = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", evil.path().join("etc")).unwrap();
        let ls = vec![a.path().to_path_buf(), evil.path().to_path_buf()];
        assert!(read_file(&ls, "etc/passwd")
            .unwrap_err()
            .to_string()
            .contains("symlink"));
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: whiteouts and trusted xattrs need root");
            return;
        }
        let a = layer(&[("d/x", "x"), ("d/y", "y"), ("f", "f")]);
        let b = layer(&[("d/z", "z")]);
        whiteout(&b.path().join("f"));
        xattr::set(b.path().join("d"), OPAQUE_XATTR, b"y").unwrap();
        let ls = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert!(lookup(&ls, Path::new("f")).unwrap().is_none());
        assert!(lookup(&ls, Path::new("d/x")).unwrap().is_none());
        assert!(lookup(&ls, Path::new("d/z")).unwrap().is_some());
    }

    #[test]
    fn resolve_stays_in_the_root() {
        let a = tempfile::tempdir().unwrap();
        fs::create_dir_all(a.path().join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", a.path().join("bin")).unwrap();
        std::os::unix::fs::symlink("/../../../etc", a.path().join("up")).unwrap();
        std::os::unix::fs::symlink("../../..", a.path().join("usr/bin/rel")).unwrap();
        let ls = vec![a.path().to_path_buf()];
        assert_eq!(
            resolve(&ls, "/bin/sh").unwrap(),
            PathBuf::from("usr/bin/sh")
        );
        assert_eq!(
            resolve(&ls, "/up/passwd").unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(resolve(&ls, "/usr/bin/rel/x").unwrap(), PathBuf::from("x"));
    }
}
