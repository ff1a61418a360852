//! The one error type of the `layers` crate. Every I/O error carries the operation and the
//! path it was attempted on, so a user reads "rename /var/lib/minibox/tmp/x to …: …".

use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {}: {}", path.display(), io_message(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid reference format {reference:?}: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("no such image: {0}")]
    ImageNotFound(String),
    #[error("image id prefix {prefix:?} is ambiguous: {count} images match")]
    AmbiguousId { prefix: String, count: usize },
    #[error("{what} {digest}: digest mismatch, content hashes to {actual}")]
    DigestMismatch {
        what: &'static str,
        digest: String,
        actual: String,
    },
    #[error("blob {digest}: {reason}")]
    BadBlob { digest: String, reason: String },
    #[error("layer entry {entry:?}: {reason}")]
    BadEntry { entry: String, reason: String },
    #[error("{path}: {reason}")]
    BadFile { path: String, reason: String },
    #[error("{0}")]
    Json(String),
    /// A store another user could change (see `store::check_owned`).
    #[error("store {root}: {reason}")]
    UnsafeStore { root: String, reason: String },
    /// A registry operation failed: "pull 127.0.0.1:5000/app:1: unauthorized: ...".
    #[error("{op}: {msg}")]
    Registry { op: String, msg: String },
}

impl Error {
    pub fn entry(entry: impl AsRef<[u8]>, reason: impl Into<String>) -> Error {
        Error::BadEntry {
            entry: String::from_utf8_lossy(entry.as_ref()).into_owned(),
            reason: reason.into(),
        }
    }

    pub fn file(path: impl AsRef<Path>, reason: impl Into<String>) -> Error {
        Error::BadFile {
            path: path.as_ref().display().to_string(),
            reason: reason.into(),
        }
    }

    /// True when the root cause is ENOSPC or EDQUOT, so callers can say "no space left".
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)))
    }
}

/// "No such file or directory (os error 2)" -> "no such file or directory": the style of
/// the rest of our messages (lowercase, no noise).
pub fn io_message(e: &io::Error) -> String {
    if let Some(code) = e.raw_os_error() {
        let s = io::Error::from_raw_os_error(code).to_string();
        let s = s.split(" (os error").next().unwrap_or(&s).to_string();
        let mut c = s.chars();
        return match c.next() {
            Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
            None => s,
        };
    }
    e.to_string()
}

/// Attach the operation and path to an `io::Result` (youki's `WrappedIoError` habit).
pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        })
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Json(e.to_string())
    }
}
