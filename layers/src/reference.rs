//! Image names as Docker users type them, validated with Docker's grammar and normalized as
//! distribution/reference's `ParseNormalizedNamed` does: `debian`, `library/debian` and
//! `docker.io/library/debian` are one name. A name is kept in its familiar (short) form, the
//! one `images` shows and the store's index records; `full()` gives the fully qualified one
//! that registries are asked for.
//!
//! `Reference` is a tag (`name:tag`, the tag defaulting to `latest`): what an image is stored
//! under. `ImageName` is anything that names an image in a registry or in the store:
//! `name`, `name:tag`, `name@sha256:...` or `name:tag@sha256:...`. This module only parses;
//! looking names up is the store's job.

use crate::digest::{self, Digest};
use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Docker Hub's name in references, and the host its registry API answers on.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The repository namespace of Docker Hub's official images.
const OFFICIAL: &str = "library/";

const NAME_MAX: usize = 255;

/// A tag: `name:tag`, with the name in its familiar form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    name: String,
    tag: String,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference> {
        if s.contains('@') {
            return Err(bad(
                s,
                "digest references are not supported here, use name:tag",
            ));
        }
        let n = ImageName::parse(s)?;
        Ok(Reference {
            name: n.name,
            tag: n.tag.unwrap_or_else(|| "latest".to_string()),
        })
    }

    /// The familiar name: `debian`, `team/app`, `localhost:5000/app`.
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn tag(&self) -> &str {
        &self.tag
    }
    /// `docker.io/library/debian:latest`.
    pub fn full(&self) -> String {
        format!("{}:{}", full_name(&self.name), self.tag)
    }
    /// The registry host (`docker.io` for names without one).
    pub fn domain(&self) -> &str {
        split_domain(&self.name).0
    }
    /// The repository path within the registry (`library/debian`).
    pub fn path(&self) -> String {
        path_of(&self.name)
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

/// What names an image: a name with a tag, a digest, or both. Without either the tag is
/// `latest`, as Docker has it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageName {
    name: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageName {
    pub fn parse(s: &str) -> Result<ImageName> {
        if s.is_empty() {
            return Err(bad(s, "empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let dg = digest::parse(d).ok_or_else(|| {
                    bad(s, "a digest must be sha256: and 64 lowercase hex digits")
                })?;
                (r, Some(dg))
            }
            None => (s, None),
        };
        // A colon after the last slash starts the tag; one before it belongs to a host:port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad(
                    s,
                    "tag must be 1 to 128 characters of [A-Za-z0-9_.-], not starting with . or -",
                ));
            }
        }
        let name = normalize(s, name)?;
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(ImageName { name, tag, digest })
    }

    /// The familiar name, without tag or digest.
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    pub fn domain(&self) -> &str {
        split_domain(&self.name).0
    }
    /// The repository path within the registry (`library/debian`).
    pub fn path(&self) -> String {
        path_of(&self.name)
    }
    /// `docker.io/library/debian` (no tag, no digest).
    pub fn full_name(&self) -> String {
        full_name(&self.name)
    }
    /// The fully qualified form with tag and digest: `docker.io/library/debian:latest`.
    pub fn full(&self) -> String {
        let mut s = self.full_name();
        if let Some(t) = &self.tag {
            s = format!("{s}:{t}");
        }
        if let Some(d) = &self.digest {
            s = format!("{s}@{d}");
        }
        s
    }

    /// The tag this name stores an image under, when it has one.
    pub fn reference(&self) -> Option<Reference> {
        self.tag.as_ref().map(|t| Reference {
            name: self.name.clone(),
            tag: t.clone(),
        })
    }
    /// The same repository with another digest and no tag (`name@sha256:...`).
    pub fn with_digest(&self, d: &Digest) -> ImageName {
        ImageName {
            name: self.name.clone(),
            tag: None,
            digest: Some(d.clone()),
        }
    }
    /// What the registry API is asked for: the digest when there is one, else the tag.
    pub fn api_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl From<&Reference> for ImageName {
    fn from(r: &Reference) -> ImageName {
        ImageName {
            name: r.name.clone(),
            tag: Some(r.tag.clone()),
            digest: None,
        }
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageName {
    type Err = Error;
    fn from_str(s: &str) -> Result<ImageName> {
        ImageName::parse(s)
    }
}

fn bad(s: &str, reason: &str) -> Error {
    Error::BadReference {
        reference: s.to_string(),
        reason: reason.to_string(),
    }
}

/// Validate a repository name and return its familiar form: `docker.io/` (or
/// `index.docker.io/`) and an official image's `library/` dropped.
fn normalize(whole: &str, name: &str) -> Result<String> {
    if name.len() > NAME_MAX {
        return Err(bad(
            whole,
            "repository name must not be more than 255 characters",
        ));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let mut domain = None;
    if parts.len() > 1 && looks_like_domain(parts[0]) {
        if !valid_domain(parts[0]) {
            return Err(bad(whole, "invalid registry host"));
        }
        domain = Some(parts.remove(0));
    }
    for p in &parts {
        if p.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(bad(whole, "repository name must be lowercase"));
        }
        if !valid_component(p) {
            return Err(bad(
                whole,
                "each name component must be lowercase letters and digits, separated by '.', '_', '__' or '-'",
            ));
        }
    }
    let path = parts.join("/");
    let hub = matches!(domain, None | Some(DOCKER_HUB) | Some("index.docker.io"));
    if !hub {
        return Ok(format!("{}/{path}", domain.unwrap()));
    }
    // Docker refuses a bare 64-hex name: it would read as an image id.
    if path.len() == 64 && path.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad(
            whole,
            "cannot specify 64-byte hexadecimal strings as a repository name",
        ));
    }
    Ok(match path.strip_prefix(OFFICIAL) {
        Some(short) if !short.contains('/') => short.to_string(),
        _ => path,
    })
}

/// (registry host, the rest) of a familiar name.
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((d, rest)) if looks_like_domain(d) => (d, rest),
        _ => (DOCKER_HUB, name),
    }
}

fn path_of(name: &str) -> String {
    let (d, rest) = split_domain(name);
    if d == DOCKER_HUB && !rest.contains('/') {
        format!("{OFFICIAL}{rest}")
    } else {
        rest.to_string()
    }
}

fn full_name(name: &str) -> String {
    let (d, _) = split_domain(name);
    format!("{d}/{}", path_of(name))
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
    // An IPv6 literal in brackets: `[::1]:5000`.
    if let Some(rest) = d.strip_prefix('[') {
        let Some((ip, port)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
        return port_ok && ip.parse::<std::net::Ipv6Addr>().is_ok();
    }
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
            ("library/debian:bookworm-slim", "debian", "bookworm-slim"),
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
    fn docker_hub_spellings_are_one_name() {
        for s in [
            "debian",
            "debian:latest",
            "library/debian",
            "library/debian:latest",
            "docker.io/debian",
            "docker.io/library/debian:latest",
            "index.docker.io/library/debian",
        ] {
            let r = Reference::parse(s).unwrap();
            assert_eq!(r.to_string(), "debian:latest", "{s}");
            assert_eq!(r.full(), "docker.io/library/debian:latest", "{s}");
            assert_eq!(
                (r.domain(), r.path().as_str()),
                ("docker.io", "library/debian")
            );
        }
        let r = Reference::parse("docker.io/team/app:1").unwrap();
        assert_eq!(
            (r.name(), r.full().as_str()),
            ("team/app", "docker.io/team/app:1")
        );
        // library/ is only dropped from a two-component Hub name.
        let r = Reference::parse("library/a/b").unwrap();
        assert_eq!(r.name(), "library/a/b");
        let r = Reference::parse("127.0.0.1:5000/library/x").unwrap();
        assert_eq!(r.full(), "127.0.0.1:5000/library/x:latest");
        assert_eq!(r.path(), "library/x");
    }

    #[test]
    fn image_names_with_digests() {
        let hex = "a".repeat(64);
        let n = ImageName::parse(&format!("docker.io/library/debian@sha256:{hex}")).unwrap();
        assert_eq!(n.to_string(), format!("debian@sha256:{hex}"));
        assert_eq!(n.tag(), None);
        assert_eq!(n.reference(), None);
        assert_eq!(n.api_reference(), format!("sha256:{hex}"));
        let n = ImageName::parse(&format!("localhost:5000/app:1@sha256:{hex}")).unwrap();
        assert_eq!((n.tag(), n.domain()), (Some("1"), "localhost:5000"));
        assert_eq!(n.api_reference(), format!("sha256:{hex}"));
        let n = ImageName::parse("[::1]:5000/app").unwrap();
        assert_eq!((n.domain(), n.path().as_str()), ("[::1]:5000", "app"));
        assert_eq!(n.api_reference(), "latest");
        for s in ["a@sha256:00", "a@md5:00", "a@", &format!("a@sha512:{hex}")] {
            assert!(ImageName::parse(s).is_err(), "{s:?} should be refused");
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
            &"f".repeat(64),
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
