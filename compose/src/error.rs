//! The crate's one error type. Every message is one lowercase line that names the file (and
//! the line in it, when there is one) and what was wrong, so that `mrun compose` can print it
//! as it is and exit 1 with nothing started.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A place in a compose file (or a `.env` file): its name as the user gave it, and a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<str>,
    /// 1-based; 0 when the problem belongs to the whole file.
    pub line: u32,
}

impl Loc {
    pub(crate) fn new(file: &Arc<str>, line: u32) -> Loc {
        Loc {
            file: file.clone(),
            line,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file says something compose refuses: a YAML syntax error, an unknown key, a wrong
    /// type, a missing required variable, a dependency cycle, an undefined volume...
    #[error("{at}: {message}")]
    At { at: Loc, message: String },
    /// A file could not be read (or no compose file was found).
    #[error("{op} {}: {}", path.display(), io_message(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Input that is not in any file: a `-p` project name, no compose file found.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn at(at: Loc, message: impl Into<String>) -> Error {
        Error::At {
            at,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// "No such file or directory (os error 2)" -> "no such file or directory", as the rest of
/// minibox writes them (layers' `io_message`; this crate does not depend on layers).
pub(crate) fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
