//! The build context: the directory ADD and COPY read from. Sources are resolved inside it
//! (never `..` or a symlink out of it), `.minignore` (dockerignore syntax) hides files, and
//! the content of a set of sources is summarised into one digest for the cache key (paths,
//! modes, owners, bytes and link targets — never mtimes).

use crate::{Error, Result};
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
        let root = fs::canonicalize(root).map_err(|e| Error::Failed(format!("build context {}: {}", root.display(), layers::error::io_message(&e))))?;
        if !root.is_dir() {
            return Err(Error::Failed(format!("build context {}: not a directory", root.display())));
        }
        let ignore = match fs::read_to_string(root.join(".minignore")) {
            Ok(text) => parse_ignore(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::Failed(format!("{}: {}", root.join(".minignore").display(), layers::error::io_message(&e)))),
        };
        Ok(Context { root, ignore })
    }

    /// True when `rel` (relative to the context) is excluded by `.minignore`.
    pub fn ignored(&self, rel: &Path) -> bool {
        let segs: Vec<String> = rel.components().filter_map(|c| c.as_os_str().to_str().map(String::from)).collect();
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

    /// Resolve a source as written in ADD/COPY to paths inside the context: lexically
    /// cleaned, wildcards expanded, symlinks in the path followed only while they stay inside.
    pub fn sources(&self, src: &str) -> Result<Vec<PathBuf>> {
        let rel = clean(src).ok_or_else(|| Error::Failed(format!("{src}: source is outside the build context")))?;
        if has_wildcard(&rel) {
            let mut out = Vec::new();
            self.glob(Path::new(""), &rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>(), &mut out)?;
            if out.is_empty() {
                return Err(Error::Failed(format!("{src}: no source files were specified")));
            }
            out.sort();
            return Ok(out);
        }
        let p = self.resolve(&rel, src)?;
        if !p.exists() && fs::symlink_metadata(&p).is_err() {
            return Err(Error::Failed(format!("{src}: not found in the build context")));
        }
        if let Ok(r) = p.strip_prefix(&self.root) {
            if self.ignored(r) {
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
        let Ok(rd) = fs::read_dir(&dir) else { return Ok(()) };
        let mut names: Vec<String> = rd.flatten().filter_map(|e| e.file_name().to_str().map(String::from)).collect();
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
        let mut parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
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
                        return Err(Error::Failed(format!("{shown}: too many levels of symbolic links")));
                    }
                    let target = fs::read_link(&full).map_err(|e| Error::Failed(format!("{shown}: {}", layers::error::io_message(&e))))?;
                    let outside = || {
                        Error::Failed(format!("{shown}: symlink {} points outside the build context ({})", next.display(), target.display()))
                    };
                    let joined = if target.is_absolute() {
                        target.strip_prefix(&self.root).map_err(|_| outside())?.to_path_buf()
                    } else {
                        cur.join(&target)
                    };
                    let clean = clean(&joined.to_string_lossy()).ok_or_else(outside)?;
                    let mut rest: Vec<String> = clean.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
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
            let segments: Vec<String> = cleaned.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            (!segments.is_empty()).then_some(Pattern { negate, segments })
        })
        .collect()
}

fn match_segments(pat: &[String], path: &[String]) -> bool {
    match (pat.first(), path.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(p), _) if p == "**" => (0..=path.len()).any(|i| match_segments(&pat[1..], &path[i..])),
        (Some(_), None) => false,
        (Some(p), Some(s)) => glob_match(p, s) && match_segments(&pat[1..], &path[1..]),
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
                let Some(end) = p.iter().position(|&x| x == ']') else { return false };
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

/// A digest of the sources' content for the cache key: every path below each source (as
/// the copy will see it, after .minignore), its type, mode, owner, bytes and link target.
/// mtimes are left out, so a fresh checkout of the same files hits the cache.
pub fn content_digest(ctx: &Context, sources: &[PathBuf]) -> Result<String> {
    let mut h = layers::digest::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    for src in sources {
        let base = src.parent().unwrap_or(src);
        let mut stack = vec![src.clone()];
        while let Some(p) = stack.pop() {
            if p != *src && p.strip_prefix(&ctx.root).is_ok_and(|r| ctx.ignored(r)) {
                continue;
            }
            // Named relative to the source's parent: where the context or a download lives
            // must not change the key.
            let rel = p.strip_prefix(base).unwrap_or(&p).to_path_buf();
            let m = fs::symlink_metadata(&p).map_err(|e| Error::Failed(format!("{}: {}", p.display(), layers::error::io_message(&e))))?;
            let kind = if m.is_dir() { 'd' } else if m.file_type().is_symlink() { 'l' } else { 'f' };
            h.update(format!("{}\0{kind}\0{:o}\0{}\0{}\0", rel.display(), m.permissions().mode(), m.uid(), m.gid()).as_bytes());
            if m.file_type().is_symlink() {
                h.update(fs::read_link(&p).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default().as_bytes());
            } else if m.is_file() {
                let mut f = fs::File::open(&p).map_err(|e| Error::Failed(format!("{}: {}", p.display(), layers::error::io_message(&e))))?;
                loop {
                    let n = std::io::Read::read(&mut f, &mut buf).map_err(|e| Error::Failed(format!("{}: {}", p.display(), layers::error::io_message(&e))))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            } else if m.is_dir() {
                let mut names: Vec<PathBuf> = fs::read_dir(&p)
                    .map_err(|e| Error::Failed(format!("{}: {}", p.display(), layers::error::io_message(&e))))?
                    .flatten()
                    .map(|e| e.path())
                    .collect();
                names.sort();
                names.reverse();
                stack.extend(names);
            }
            h.update(b"\n");
        }
    }
    Ok(h.finish().to_string())
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
        fs::write(d.path().join(".minignore"), "# comment\n*.log\nbuild/\n**/secret\n!keep.log\n").unwrap();
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
        assert!(c.sources("../x").unwrap_err().to_string().contains("outside the build context"));
        assert!(c.sources("out/shadow").unwrap_err().to_string().contains("points outside"));
        assert!(c.sources("dir/up/etc").unwrap_err().to_string().contains("points outside"));
        assert_eq!(c.sources("in/f").unwrap(), vec![c.root.join("dir/f")]);
        assert_eq!(c.sources("/dir/../dir/f").unwrap(), vec![c.root.join("dir/f")]);
        assert!(c.sources("missing").unwrap_err().to_string().contains("not found"));
    }

    #[test]
    fn content_digest_ignores_mtime_but_not_bytes_or_mode() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), "one").unwrap();
        let c = Context::open(d.path()).unwrap();
        let src = vec![c.root.join("f")];
        let a = content_digest(&c, &src).unwrap();
        std::process::Command::new("touch").args(["-d", "2001-01-01"]).arg(d.path().join("f")).status().unwrap();
        assert_eq!(content_digest(&c, &src).unwrap(), a);
        fs::set_permissions(d.path().join("f"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(content_digest(&c, &src).unwrap(), a);
        fs::write(d.path().join("f"), "two").unwrap();
        assert_ne!(content_digest(&c, &src).unwrap(), a);
    }
}
