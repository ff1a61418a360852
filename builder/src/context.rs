//! The build context: the directory ADD and COPY read from. Sources are resolved inside it
//! (never `..` or a symlink out of it), `.minignore` (dockerignore syntax) hides files, and
//! the content of a set of sources is summarised into one digest for the cache key (paths,
//! modes, owners, bytes and link targets — never mtimes). `COPY --from` reads the union of
//! a stage's or an image's layers instead (`Origin::Layers`).

use crate::{Error, Result};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

pub struct Context {
    pub root: PathBuf,
    ignore: Vec<Pattern>,
}

/// One `.minignore` line: `!` re-includes; patterns are matched against paths relative to
/// the context, by path segment, `**` spanning any number of segments.
#[derive(Debug, Clone)]
struct Pattern {
    negate: bool,
    segments: Vec<String>,
}

impl Context {
    pub fn open(root: &Path) -> Result<Context> {
        let root = fs::canonicalize(root).map_err(|e| {
            Error::Failed(format!(
                "build context {}: {}",
                root.display(),
                layers::error::io_message(&e)
            ))
        })?;
        if !root.is_dir() {
            return Err(Error::Failed(format!(
                "build context {}: not a directory",
                root.display()
            )));
        }
        let ignore = match fs::read_to_string(root.join(".minignore")) {
            Ok(text) => parse_ignore(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(Error::Failed(format!(
                    "{}: {}",
                    root.join(".minignore").display(),
                    layers::error::io_message(&e)
                )))
            }
        };
        Ok(Context { root, ignore })
    }

    /// True when `rel` (relative to the context) is excluded by `.minignore`.
    pub fn ignored(&self, rel: &Path) -> bool {
        let segs: Vec<String> = rel
            .components()
            .filter_map(|c| c.as_os_str().to_str().map(String::from))
            .collect();
        if segs.is_empty() {
            return false;
        }
        let mut excluded = false;
        for p in &self.ignore {
            // A pattern that matches a parent directory matches everything below it.
            let hit = (1..=segs.len()).any(|n| match_segments(&p.segments, &segs[..n]));
            if hit {
                excluded = !p.negate;
            }
        }
        excluded
    }

    /// True when a `!` pattern could re-include something below `rel`: then an excluded
    /// directory must still be walked, as Docker walks it (`secret/` + `!secret/public`).
    fn may_reinclude_below(&self, rel: &Path) -> bool {
        let segs: Vec<String> = rel
            .components()
            .filter_map(|c| c.as_os_str().to_str().map(String::from))
            .collect();
        self.ignore
            .iter()
            .any(|p| p.negate && could_match_below(&p.segments, &segs))
    }

    /// Excluded, and nothing below it can be re-included either: skip the whole subtree.
    fn pruned(&self, rel: &Path) -> bool {
        self.ignored(rel) && !self.may_reinclude_below(rel)
    }

    /// Resolve a source as written in ADD/COPY to paths inside the context: lexically
    /// cleaned, wildcards expanded, symlinks in the path followed only while they stay inside.
    pub fn sources(&self, src: &str) -> Result<Vec<PathBuf>> {
        let rel = clean(src)
            .ok_or_else(|| Error::Failed(format!("{src}: source is outside the build context")))?;
        if has_wildcard(&rel) {
            let mut out = Vec::new();
            self.glob(
                Path::new(""),
                &rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>(),
                &mut out,
            )?;
            if out.is_empty() {
                return Err(Error::Failed(format!(
                    "{src}: no source files were specified"
                )));
            }
            out.sort();
            return Ok(out);
        }
        let p = self.resolve(&rel, src)?;
        if !p.exists() && fs::symlink_metadata(&p).is_err() {
            return Err(Error::Failed(format!(
                "{src}: not found in the build context"
            )));
        }
        if let Ok(r) = p.strip_prefix(&self.root) {
            if self.ignored(r) && !(p.is_dir() && self.may_reinclude_below(r)) {
                return Err(Error::Failed(format!("{src}: excluded by .minignore")));
            }
        }
        Ok(vec![p])
    }

    fn glob(&self, base: &Path, pat: &[String], out: &mut Vec<PathBuf>) -> Result<()> {
        let Some((first, rest)) = pat.split_first() else {
            let p = self.root.join(base);
            if !self.ignored(base) {
                out.push(p);
            }
            return Ok(());
        };
        if !has_wildcard(Path::new(first)) {
            let next = base.join(first);
            let full = self.root.join(&next);
            if fs::symlink_metadata(&full).is_ok() {
                self.glob(&next, rest, out)?;
            }
            return Ok(());
        }
        let dir = self.root.join(base);
        let Ok(rd) = fs::read_dir(&dir) else {
            return Ok(());
        };
        let mut names: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect();
        names.sort();
        for n in names {
            if glob_match(first, &n) {
                self.glob(&base.join(&n), rest, out)?;
            }
        }
        Ok(())
    }

    /// Follow `rel` inside the context, resolving symlinks scoped to the context root;
    /// a link that would leave it is an error, as with Docker.
    fn resolve(&self, rel: &Path, shown: &str) -> Result<PathBuf> {
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        parts.reverse();
        let mut cur = PathBuf::new();
        let mut hops = 0;
        while let Some(part) = parts.pop() {
            let next = cur.join(&part);
            let full = self.root.join(&next);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > 40 {
                        return Err(Error::Failed(format!(
                            "{shown}: too many levels of symbolic links"
                        )));
                    }
                    let target = fs::read_link(&full).map_err(|e| {
                        Error::Failed(format!("{shown}: {}", layers::error::io_message(&e)))
                    })?;
                    let outside = || {
                        Error::Failed(format!(
                            "{shown}: symlink {} points outside the build context ({})",
                            next.display(),
                            target.display()
                        ))
                    };
                    let joined = if target.is_absolute() {
                        target
                            .strip_prefix(&self.root)
                            .map_err(|_| outside())?
                            .to_path_buf()
                    } else {
                        cur.join(&target)
                    };
                    let clean = clean(&joined.to_string_lossy()).ok_or_else(outside)?;
                    let mut rest: Vec<String> = clean
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    rest.reverse();
                    parts.extend(rest);
                    cur = PathBuf::new();
                }
                _ => cur = next,
            }
        }
        Ok(self.root.join(cur))
    }
}

/// Lexically clean a relative source: leading `/` and `.` dropped, `..` resolved; None when
/// it climbs above the root.
pub fn clean(s: &str) -> Option<PathBuf> {
    let mut out: Vec<&str> = Vec::new();
    for c in Path::new(s).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::Normal(n) => out.push(n.to_str()?),
        }
    }
    Some(out.iter().collect())
}

fn has_wildcard(p: &Path) -> bool {
    p.to_string_lossy().contains(['*', '?', '['])
}

fn parse_ignore(text: &str) -> Vec<Pattern> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (negate, l) = match l.strip_prefix('!') {
                Some(r) => (true, r.trim()),
                None => (false, l),
            };
            let cleaned = clean(l)?;
            let segments: Vec<String> = cleaned
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            (!segments.is_empty()).then_some(Pattern { negate, segments })
        })
        .collect()
}

fn match_segments(pat: &[String], path: &[String]) -> bool {
    match (pat.first(), path.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(p), _) if p == "**" => {
            (0..=path.len()).any(|i| match_segments(&pat[1..], &path[i..]))
        }
        (Some(_), None) => false,
        (Some(p), Some(s)) => glob_match(p, s) && match_segments(&pat[1..], &path[1..]),
    }
}

/// Could `pat` match `path` or something below it? (`**` may; a pattern that ends above
/// `path` matched an ancestor, which the per-entry check settles.)
fn could_match_below(pat: &[String], path: &[String]) -> bool {
    match (pat.first(), path.first()) {
        (_, None) | (None, Some(_)) => true,
        (Some(p), _) if p == "**" => true,
        (Some(p), Some(s)) => glob_match(p, s) && could_match_below(&pat[1..], &path[1..]),
    }
}

/// filepath.Match for one segment: `*`, `?`, `[abc]`, `[a-z]`, `[^x]`, `\` escapes.
pub fn glob_match(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(c) = n.first() else { return false };
                let Some(end) = p.iter().position(|&x| x == ']') else {
                    return false;
                };
                let mut set = &p[1..end];
                let neg = matches!(set.first(), Some('^') | Some('!'));
                if neg {
                    set = &set[1..];
                }
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= *c && *c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == *c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[end + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

/// Where ADD/COPY sources are read from: the build context (with `.minignore`; files ADD
/// downloaded live outside it and are taken as they are), or the union of a stage's or an
/// image's layer directories (`COPY --from`), read as the overlay would show it.
#[derive(Clone, Copy)]
pub enum Origin<'a> {
    Context(&'a Context),
    Layers(&'a [PathBuf]),
}

/// An entry of a source directory, as the copy and the cache key see it.
pub struct Child {
    pub path: PathBuf,
    /// Excluded by `.minignore` itself, walked only for what `!` patterns re-include below it.
    pub excluded: bool,
}

impl<'a> Origin<'a> {
    /// The context, or the layers `COPY --from` names.
    pub fn new(ctx: &'a Context, from: Option<&'a [PathBuf]>) -> Origin<'a> {
        match from {
            None => Origin::Context(ctx),
            Some(layers) => Origin::Layers(layers),
        }
    }

    /// The visible entries of directory `dir` (a source, or a child returned by this
    /// function), sorted by name.
    pub fn children(&self, dir: &Path) -> Result<Vec<Child>> {
        let read = |d: &Path| -> Result<Vec<std::ffi::OsString>> {
            Ok(fs::read_dir(d)
                .map_err(|e| {
                    Error::Failed(format!(
                        "read {}: {}",
                        d.display(),
                        layers::error::io_message(&e)
                    ))
                })?
                .flatten()
                .map(|e| e.file_name())
                .collect())
        };
        match self {
            Origin::Context(ctx) => {
                let mut names = read(dir)?;
                names.sort();
                let mut out = Vec::new();
                for n in names {
                    let path = dir.join(&n);
                    let excluded = match path.strip_prefix(&ctx.root) {
                        Ok(rel) if ctx.ignored(rel) => {
                            if ctx.pruned(rel)
                                || !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
                            {
                                continue;
                            }
                            true
                        }
                        _ => false,
                    };
                    out.push(Child { path, excluded });
                }
                Ok(out)
            }
            Origin::Layers(layers) => {
                // A directory of the union lists the names of every layer's copy of it; the
                // union lookup then drops what whiteouts, opaque directories or files hide.
                let Some(rel) = layers.iter().find_map(|l| dir.strip_prefix(l).ok()) else {
                    return Err(Error::Failed(format!(
                        "{}: not in the image's layers",
                        dir.display()
                    )));
                };
                let mut names = BTreeSet::new();
                for l in layers.iter() {
                    let d = l.join(rel);
                    if fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir()) {
                        names.extend(read(&d)?);
                    }
                }
                let mut out = Vec::new();
                for n in names {
                    if let Some(f) = layers::union::lookup(layers, &rel.join(&n))? {
                        out.push(Child {
                            path: f.path,
                            excluded: false,
                        });
                    }
                }
                Ok(out)
            }
        }
    }
}

/// A digest of the sources' content for the cache key: every entry below each source as the
/// copy will see it (after .minignore, through the layer union), its type, mode, owner,
/// bytes and link target. Entries are named relative to their source, and a directory
/// source's own name is left out (only its contents are copied), so where the context lives
/// never changes the key; mtimes are left out too, so a fresh checkout hits the cache.
pub fn content_digest(origin: Origin<'_>, sources: &[PathBuf]) -> Result<String> {
    let mut h = layers::digest::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    for src in sources {
        let is_dir = fs::symlink_metadata(src).is_ok_and(|m| m.is_dir());
        let name = if is_dir {
            PathBuf::new()
        } else {
            PathBuf::from(src.file_name().unwrap_or_default())
        };
        hash_entry(origin, src, &name, &mut h, &mut buf)?;
        h.update(b"\0\0");
    }
    Ok(h.finish().to_string())
}

fn hash_entry(
    origin: Origin<'_>,
    p: &Path,
    rel: &Path,
    h: &mut layers::digest::Hasher,
    buf: &mut [u8],
) -> Result<()> {
    let fail = |e: std::io::Error| {
        Error::Failed(format!(
            "{}: {}",
            p.display(),
            layers::error::io_message(&e)
        ))
    };
    let m = fs::symlink_metadata(p).map_err(fail)?;
    let kind = if m.is_dir() {
        'd'
    } else if m.file_type().is_symlink() {
        'l'
    } else {
        'f'
    };
    h.update(
        format!(
            "{}\0{kind}\0{:o}\0{}\0{}\0",
            rel.display(),
            m.permissions().mode(),
            m.uid(),
            m.gid()
        )
        .as_bytes(),
    );
    if m.file_type().is_symlink() {
        h.update(
            fs::read_link(p)
                .map_err(fail)?
                .as_os_str()
                .as_encoded_bytes(),
        );
    } else if m.is_file() {
        let mut f = fs::File::open(p).map_err(fail)?;
        loop {
            let n = std::io::Read::read(&mut f, buf).map_err(fail)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    h.update(b"\n");
    if m.is_dir() {
        for c in origin.children(p)? {
            hash_entry(
                origin,
                &c.path,
                &rel.join(c.path.file_name().unwrap_or_default()),
                h,
                buf,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.txt.bak"));
        assert!(glob_match("f?o", "foo"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
    }

    #[test]
    fn ignore_rules_follow_dockerignore() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join(".minignore"),
            "# comment\n*.log\nbuild/\n**/secret\n!keep.log\n",
        )
        .unwrap();
        let c = Context::open(d.path()).unwrap();
        assert!(c.ignored(Path::new("x.log")));
        assert!(!c.ignored(Path::new("keep.log")));
        assert!(c.ignored(Path::new("build/out/bin")));
        assert!(c.ignored(Path::new("a/b/secret")));
        assert!(!c.ignored(Path::new("src/main.c")));
    }

    #[test]
    fn sources_never_leave_the_context() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("dir")).unwrap();
        fs::write(d.path().join("dir/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("out")).unwrap();
        std::os::unix::fs::symlink("../..", d.path().join("dir/up")).unwrap();
        std::os::unix::fs::symlink("dir", d.path().join("in")).unwrap();
        let c = Context::open(d.path()).unwrap();
        assert!(c
            .sources("../x")
            .unwrap_err()
            .to_string()
            .contains("outside the build context"));
        assert!(c
            .sources("out/shadow")
            .unwrap_err()
            .to_string()
            .contains("points outside"));
        assert!(c
            .sources("dir/up/etc")
            .unwrap_err()
            .to_string()
            .contains("points outside"));
        assert_eq!(c.sources("in/f").unwrap(), vec![c.root.join("dir/f")]);
        assert_eq!(
            c.sources("/dir/../dir/f").unwrap(),
            vec![c.root.join("dir/f")]
        );
        assert!(c
            .sources("missing")
            .unwrap_err()
            .to_string()
            .contains("not found"));
    }

    #[test]
    fn negated_patterns_reach_into_excluded_directories() {
        let d = tempfile::tempdir().unwrap();
        for f in ["secret/key", "secret/public.txt", "build/out", "src/main.c"] {
            fs::create_dir_all(d.path().join(f).parent().unwrap()).unwrap();
            fs::write(d.path().join(f), "x").unwrap();
        }
        fs::write(
            d.path().join(".minignore"),
            "secret\n!secret/public.txt\nbuild/\n",
        )
        .unwrap();
        let c = Context::open(d.path()).unwrap();
        let o = Origin::Context(&c);
        let names = |dir: &Path| -> Vec<(String, bool)> {
            o.children(dir)
                .unwrap()
                .into_iter()
                .map(|k| {
                    (
                        k.path.file_name().unwrap().to_string_lossy().into_owned(),
                        k.excluded,
                    )
                })
                .collect()
        };
        let own = |v: &[(&str, bool)]| {
            v.iter()
                .map(|(n, e)| (n.to_string(), *e))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&c.root),
            own(&[(".minignore", false), ("secret", true), ("src", false)])
        );
        assert_eq!(names(&c.root.join("secret")), own(&[("public.txt", false)]));
        assert_eq!(c.sources("secret").unwrap(), vec![c.root.join("secret")]);
        assert!(c
            .sources("build")
            .unwrap_err()
            .to_string()
            .contains("excluded by .minignore"));
    }

    #[test]
    fn layer_union_children_show_what_the_overlay_would() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for (l, f) in [
            (&lower, "out/a"),
            (&lower, "out/gone"),
            (&lower, "out/both"),
            (&upper, "out/b"),
            (&upper, "out/both"),
        ] {
            fs::create_dir_all(l.join(f).parent().unwrap()).unwrap();
            fs::write(l.join(f), f).unwrap();
        }
        let whiteout =
            std::ffi::CString::new(upper.join("out/gone").into_os_string().into_encoded_bytes())
                .unwrap();
        // SAFETY: a plain mknod(2) of a path we own; only root may make the 0/0 device.
        let root = unsafe { libc::mknod(whiteout.as_ptr(), libc::S_IFCHR | 0o600, 0) } == 0;
        let layers = vec![lower.clone(), upper.clone()];
        let o = Origin::Layers(&layers);
        let kids: Vec<PathBuf> = o
            .children(&upper.join("out"))
            .unwrap()
            .into_iter()
            .map(|k| k.path)
            .collect();
        let mut want = vec![
            lower.join("out/a"),
            upper.join("out/b"),
            upper.join("out/both"),
        ];
        if !root {
            want.push(lower.join("out/gone"));
        }
        assert_eq!(kids, want);
        // The digest covers every layer's part of the directory, not only the top one's.
        let before = content_digest(o, &[upper.join("out")]).unwrap();
        fs::write(lower.join("out/a"), "changed").unwrap();
        assert_ne!(content_digest(o, &[upper.join("out")]).unwrap(), before);
    }

    #[test]
    fn content_digest_ignores_mtime_but_not_bytes_or_mode() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), "one").unwrap();
        let c = Context::open(d.path()).unwrap();
        let src = vec![c.root.join("f")];
        let o = Origin::Context(&c);
        let a = content_digest(o, &src).unwrap();
        std::process::Command::new("touch")
            .args(["-d", "2001-01-01"])
            .arg(d.path().join("f"))
            .status()
            .unwrap();
        assert_eq!(content_digest(o, &src).unwrap(), a);
        fs::set_permissions(d.path().join("f"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(content_digest(o, &src).unwrap(), a);
        fs::write(d.path().join("f"), "two").unwrap();
        assert_ne!(content_digest(o, &src).unwrap(), a);
    }
}
