//! The Minifile language (a Dockerfile subset), in two stages as BuildKit does: bytes ->
//! logical lines and raw nodes (`lines`), then typed instructions (`parse`). Variable
//! substitution is a build step, not the parser's job (`expand`, called by the build loop
//! with the ENV and ARG values in scope).

pub mod expand;
pub mod lines;
pub mod parse;

pub use parse::{exposed_ports, signal_number, Command, Instruction, Located, Minifile, Stage};

use std::io::Write;
use std::path::Path;

/// A parse error: "FILE:LINE:COL: message (in: "the line")", always one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub file: String,
    /// 1-based; 0 when the error is about the whole file (it could not be read).
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

impl ParseError {
    /// `text` is the offending logical line, shown quoted (and shortened) after the message.
    pub(crate) fn new(
        file: &str,
        line: usize,
        col: usize,
        message: String,
        text: Option<&[u8]>,
    ) -> ParseError {
        let message = match text {
            Some(t) => format!("{message} (in: {})", lines::go_quote(shorten(trim_end(t)))),
            None => message,
        };
        ParseError {
            file: file.to_string(),
            line,
            col,
            message,
        }
    }
}

fn trim_end(t: &[u8]) -> &[u8] {
    let n = t
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_whitespace())
        .count();
    &t[..t.len() - n]
}

/// At most about 100 bytes of a long line, cut at a character boundary.
fn shorten(t: &[u8]) -> &[u8] {
    const MAX: usize = 100;
    if t.len() <= MAX {
        return t;
    }
    let mut end = MAX;
    while end > 0 && (t[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &t[..end]
}

/// Read and parse a Minifile (both stages). Errors name the file as `path` is written.
pub fn parse_file(path: &Path) -> Result<Minifile, ParseError> {
    let (name, bytes) = read(path)?;
    parse_bytes(&name, &bytes)
}

/// The file's name as written, and its bytes.
fn read(path: &Path) -> Result<(String, Vec<u8>), ParseError> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => Ok((name, bytes)),
        Err(e) => Err(ParseError {
            file: name,
            line: 0,
            col: 0,
            message: format!("read: {}", layers::error::io_message(&e)),
        }),
    }
}

/// Parse a Minifile held in memory; `name` is the file name used in errors.
pub fn parse_bytes(name: &str, bytes: &[u8]) -> Result<Minifile, ParseError> {
    let parsed = lines::parse(name, bytes)?;
    parse::parse(name, &parsed)
}

/// `mbuild check [--dump] -f FILE`: with `dump`, print stage one's parse tree in BuildKit's
/// `Node.Dump()` format (no stage-two validation, so ONBUILD and friends dump fine);
/// without, parse both stages and print a one-line summary.
pub fn check(file: &Path, dump: bool, out: &mut dyn Write) -> Result<(), crate::Error> {
    let (name, bytes) = read(file)?;
    let text = if dump {
        lines::parse(&name, &bytes)?.dump()
    } else {
        let m = parse_bytes(&name, &bytes)?;
        let n: usize = m.stages.iter().map(|s| s.instructions.len()).sum();
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        format!(
            "{name}: {}, {}\n",
            plural(m.stages.len(), "stage"),
            plural(n, "instruction")
        )
    };
    out.write_all(text.as_bytes())
        .map_err(crate::Error::stdout)?;
    out.flush().map_err(crate::Error::stdout)
}
