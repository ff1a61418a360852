//! The one error type of the `runner` crate, and the exit codes it maps to (Docker's).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// minibox itself failed.
pub const EXIT_FAILED: i32 = 125;
/// The command exists but cannot be executed.
pub const EXIT_CANNOT_EXEC: i32 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] layers::Error),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::Error),
    #[error("{op} {}: {}", path.display(), layers::error::io_message(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: {1}")]
    Sys(&'static str, std::io::Error),
    /// A step of the container's setup failed inside the child, before exec.
    #[error("{step}: {}", layers::error::io_message(&std::io::Error::from_raw_os_error(*errno)))]
    Setup { step: String, errno: i32 },
    /// execve of the container's command failed.
    #[error("exec {path}: {}", exec_reason(*errno))]
    Exec { path: String, errno: i32 },
    #[error("{0}")]
    Invalid(String),
    /// What the monitor of a detached container reported: its exit code and message.
    #[error("{message}")]
    Detached { code: i32, message: String },
    /// No container or image by that name.
    #[error("{0}")]
    NotFound(String),
    /// A name already taken, a container in the wrong state for what was asked.
    #[error("{0}")]
    Conflict(String),
}

fn exec_reason(errno: i32) -> String {
    if errno == libc::ENOENT {
        "executable file not found in $PATH".to_string()
    } else {
        layers::error::io_message(&std::io::Error::from_raw_os_error(errno))
    }
}

impl Error {
    /// Docker's exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec { errno, .. } if *errno == libc::ENOENT || *errno == libc::ENOTDIR => {
                EXIT_NOT_FOUND
            }
            Error::Exec { .. } => EXIT_CANNOT_EXEC,
            Error::Detached { code, .. } => *code,
            _ => EXIT_FAILED,
        }
    }

    /// A failed exec reported by the trampoline names no command: it is `arg0`.
    pub fn with_command(self, arg0: &str) -> Error {
        match self {
            Error::Exec { path, errno } if path.is_empty() => Error::Exec {
                path: arg0.to_string(),
                errno,
            },
            e => e,
        }
    }

    pub fn invalid(s: impl Into<String>) -> Error {
        Error::Invalid(s.into())
    }

    pub fn last_os(what: &'static str) -> Error {
        Error::Sys(what, std::io::Error::last_os_error())
    }
}

pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<std::path::Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<std::path::Path>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        })
    }
}
