//! Image references `name[:tag]`, validated with Docker's grammar (distribution/reference):
//! an optional registry host, then lowercase path components separated by `/`, then an
//! optional tag of at most 128 word characters, dots and dashes. The tag defaults to `latest`.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    name: String,
    tag: String,
}

const NAME_MAX: usize = 255;

impl Reference {
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |reason: &str| Error::BadReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.contains('@') {
            return Err(bad(
                "digest references are not supported here, use name:tag",
            ));
        }
        // A colon after the last slash starts the tag; one before it belongs to a host:port.
        let last_slash = s.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match s[last_slash..].find(':') {
            Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
            None => (s, "latest"),
        };
        if name.len() > NAME_MAX {
            return Err(bad("repository name must not be more than 255 characters"));
        }
        if !valid_tag(tag) {
            return Err(bad(
                "tag must be 1 to 128 characters of [A-Za-z0-9_.-], not starting with . or -",
            ));
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        if parts.len() > 1 && looks_like_domain(parts[0]) {
            if !valid_domain(parts[0]) {
                return Err(bad("invalid registry host"));
            }
            parts.remove(0);
        }
        for p in parts {
            if p.bytes().any(|c| c.is_ascii_uppercase()) {
                return Err(bad("repository name must be lowercase"));
            }
            if !valid_component(p) {
                return Err(bad(
                    "each name component must be lowercase letters and digits, separated by '.', '_', '__' or '-'",
                ));
            }
        }
        Ok(Reference {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(p: &str) -> bool {
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Docker treats the first component as a registry host when it has a dot or a port, or
/// is `localhost`, or has an uppercase letter.
fn looks_like_domain(p: &str) -> bool {
    p.contains('.')
        || p.contains(':')
        || p == "localhost"
        || p.bytes().any(|c| c.is_ascii_uppercase())
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_forms() {
        for (s, name, tag) in [
            ("busybox", "busybox", "latest"),
            ("busybox:1.36", "busybox", "1.36"),
            (
                "library/debian:bookworm-slim",
                "library/debian",
                "bookworm-slim",
            ),
            ("localhost:5000/a/b:v1", "localhost:5000/a/b", "v1"),
            (
                "registry.example.com/x_y/z__w-v:T_1",
                "registry.example.com/x_y/z__w-v",
                "T_1",
            ),
            ("a--b", "a--b", "latest"),
        ] {
            let r = Reference::parse(s).unwrap();
            assert_eq!((r.name(), r.tag()), (name, tag), "{s}");
        }
    }

    #[test]
    fn refuses_bad_forms() {
        for s in [
            "",
            "Busybox",
            "a:",
            ":tag",
            "a/",
            "/a",
            "a//b",
            "a_-b",
            "a:-x",
            "a:.x",
            "a b",
            "a___b",
            "-a",
            "a.",
            "../x",
            "a:tag:more",
            "a@sha256:00",
            &format!("a:{}", "x".repeat(129)),
            &"a".repeat(256),
        ] {
            assert!(Reference::parse(s).is_err(), "{s:?} should be refused");
        }
        let e = Reference::parse("Busybox").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid reference format \"Busybox\": repository name must be lowercase"
        );
    }
}
