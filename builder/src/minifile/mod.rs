//! The Minifile language (a Dockerfile subset), in two stages as BuildKit does: bytes ->
//! logical lines and raw nodes (`lines`), then typed instructions (`parse`). Variable
//! substitution is a build step, not the parser's job (`expand`).

use std::io::Write;
use std::path::Path;

/// A parse error: "FILE:LINE:COL: message", with the offending line shown.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// `mbuild check [--dump] -f FILE`.
pub fn check(file: &Path, dump: bool, out: &mut dyn Write) -> Result<(), crate::Error> {
    let _ = (file, dump, out);
    Err(crate::Error::Usage("mbuild check: the Minifile parser is not available yet".into()))
}
