//! The registry client (OCI distribution spec v1.1, Docker registry v2): pull, push, login
//! and logout, behind this front door. Images land in the store through its API only
//! (blob writers that check the digest before a blob gets its name, then a tag), so a
//! dropped connection leaves nothing behind. It never spawns processes; the CLIs call these
//! functions and print the one-line error they return.

pub mod auth;
mod client;
pub mod progress;
mod pull;
mod push;
pub mod tls;

use crate::error::{Error, Result};
use crate::image::Image;
use crate::reference::ImageName;
use crate::store::Store;
use std::path::PathBuf;

pub use auth::Credentials;
pub use progress::{Progress, Quiet};

/// How to reach a registry.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Allow plain HTTP and unverified TLS for this registry (`--insecure`); loopback
    /// registries may use plain HTTP without it.
    pub insecure: bool,
    /// A directory of CA files (`*.crt`) to trust, instead of the certs.d directories.
    pub cert_dir: Option<PathBuf>,
    /// Credentials to use instead of the auth file's (login checks them with these).
    pub credentials: Option<Credentials>,
}

/// An os/arch[/variant] platform, as `--platform` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this machine runs: linux and the architecture in Go's (OCI's) naming.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            arch: oci_spec::image::Arch::default().to_string(),
            variant: None,
        }
    }

    pub fn parse(s: &str) -> Result<Platform> {
        let bad = || Error::Registry {
            op: format!("--platform {s}"),
            msg: "use os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8".into(),
        };
        let mut it = s.split('/');
        let os = it.next().filter(|x| !x.is_empty()).ok_or_else(bad)?;
        let arch = it.next().filter(|x| !x.is_empty()).ok_or_else(bad)?;
        let variant = it.next().map(str::to_string);
        if it.next().is_some() || variant.as_deref() == Some("") {
            return Err(bad());
        }
        Ok(Platform {
            os: os.to_string(),
            arch: arch.to_string(),
            variant,
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    pub access: Access,
    /// The platform to pick from an index (default: this machine's).
    pub platform: Option<Platform>,
    /// Blobs downloaded at once (default 4).
    pub jobs: usize,
}

#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    pub access: Access,
    /// Blobs uploaded at once (default 4).
    pub jobs: usize,
}

/// A failure inside the client, before the front door names the operation.
#[derive(Debug, Clone)]
pub struct RegError {
    pub msg: String,
    /// The HTTP status when the registry answered with one (0 for transport failures).
    pub status: u16,
}

impl RegError {
    pub fn new(msg: impl Into<String>) -> RegError {
        RegError {
            msg: msg.into(),
            status: 0,
        }
    }
    pub fn status(mut self, s: u16) -> RegError {
        self.status = s;
        self
    }
}

impl From<Error> for RegError {
    fn from(e: Error) -> RegError {
        RegError::new(e.to_string())
    }
}

/// The front door's error: "pull 127.0.0.1:5000/app:1: unauthorized: authentication
/// required (run mbuild login 127.0.0.1:5000)".
fn named(op: &str, name: &ImageName, host: &str, e: RegError) -> Error {
    let mut msg = e.msg;
    if e.status == 401
        || e.status == 403
        || msg.starts_with("unauthorized")
        || msg.starts_with("denied")
    {
        msg.push_str(&format!(" (run mbuild login {host})"));
    }
    let shown = name.full();
    Error::Registry {
        op: format!("{op} {shown}"),
        msg,
    }
}

/// Pull `name` into the store and tag it (`name@sha256:...` when it names a digest only);
/// returns the image. Blobs the store has are not downloaded again.
pub fn pull(
    store: &Store,
    name: &ImageName,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Image> {
    pull::pull(store, name, opts, progress).map_err(|e| named("pull", name, name.domain(), e))
}

/// When `mrun` and FROM pull, as Docker's `--pull`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull only an image the store does not have (the default).
    #[default]
    Missing,
    /// Pull every time (what the store has is used only for its blobs).
    Always,
    /// Never pull: an image the store lacks is an error.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<PullPolicy, String> {
        match s {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            _ => Err(format!("--pull {s}: use missing, always or never")),
        }
    }
}

/// The image a user's word names (a name or an image-ID prefix), pulled first when
/// `policy` says so, as `docker run` does: "Unable to find image 'x:latest' locally", then
/// the pull's progress.
pub fn ensure(
    store: &Store,
    word: &str,
    policy: PullPolicy,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Image> {
    if policy != PullPolicy::Always {
        match store.resolve_image(word) {
            Err(Error::ImageNotFound(_)) if policy == PullPolicy::Missing => {}
            other => return other,
        }
    }
    let name = ImageName::parse(word)?;
    if policy == PullPolicy::Missing {
        progress.line(&format!("Unable to find image '{name}' locally"));
    }
    pull(store, &name, opts, progress)
}

/// Push the store's image `local` (a name or an id, as users type them) to `dest`.
/// Returns the pushed manifest's digest.
pub fn push(
    store: &Store,
    local: &str,
    dest: &ImageName,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<crate::Digest> {
    let found = store.resolve(local)?;
    let img = store.image_by_manifest(found.descriptor())?;
    push::push(store, &img, dest, opts, progress).map_err(|e| named("push", dest, dest.domain(), e))
}

/// The registry host a `login`/`logout` argument names: `docker.io` for Docker Hub's
/// spellings, the host (with port) otherwise; a URL's scheme and path are dropped.
pub fn registry_host(arg: &str) -> String {
    let a = arg
        .strip_prefix("https://")
        .or_else(|| arg.strip_prefix("http://"))
        .unwrap_or(arg);
    let h = a.split('/').next().unwrap_or(a);
    match h {
        "" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            crate::reference::DOCKER_HUB.to_string()
        }
        h => h.to_string(),
    }
}

/// Check `creds` against the registry, then save them in the auth file (0600). Returns the
/// file written.
pub fn login(host: &str, creds: &Credentials, access: &Access) -> Result<PathBuf> {
    let fail = |e: RegError| Error::Registry {
        op: format!("login {host}"),
        msg: e.msg,
    };
    let mut access = access.clone();
    access.credentials = Some(creds.clone());
    let c = client::Client::connect(host, &access, Vec::new()).map_err(fail)?;
    c.verify_login().map_err(fail)?;
    let file = auth::auth_file();
    auth::store(&file, host, creds).map_err(fail)?;
    Ok(file)
}

/// Remove `host`'s credentials from the auth file; false when there were none.
pub fn logout(host: &str) -> Result<bool> {
    auth::remove(&auth::auth_file(), host).map_err(|e| Error::Registry {
        op: format!("logout {host}"),
        msg: e.msg,
    })
}

/// The warning podman gives when an image's platform is not this machine's, if it is not.
pub fn platform_warning(img: &Image) -> Option<String> {
    let host = Platform::host();
    let os = img.config.os().to_string();
    let arch = img.config.architecture().to_string();
    (os != host.os || arch != host.arch).then(|| {
        format!(
            "WARNING: image platform ({os}/{arch}) does not match the expected platform ({host})"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_and_hosts() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(
            (p.os.as_str(), p.arch.as_str(), p.variant.as_deref()),
            ("linux", "arm64", Some("v8"))
        );
        assert_eq!(p.to_string(), "linux/arm64/v8");
        for bad in ["linux", "/amd64", "linux/", "a/b/c/d", "linux/arm/"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_host("http://reg.example.com/x"), "reg.example.com");
    }
}
