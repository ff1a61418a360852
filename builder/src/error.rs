//! The one error type of the `builder` crate.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] layers::Error),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Run(#[from] runner::Error),
    #[error("import {src}: {source}")]
    Import { src: String, source: layers::Error },
    #[error(transparent)]
    Parse(#[from] crate::minifile::ParseError),
    #[error("write to stdout: {0}")]
    Stdout(std::io::Error),
    /// stdout was closed by the reader (`mbuild images | head`): not an error.
    #[error("broken pipe")]
    BrokenPipe,
}

impl Error {
    pub fn stdout(e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::BrokenPipe
        } else {
            Error::Stdout(e)
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
