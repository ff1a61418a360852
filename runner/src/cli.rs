//! The `mrun` command line.

use std::process::ExitCode;

/// Exit code when minibox itself failed (Docker's 125).
pub const EXIT_FAILED: u8 = 125;

pub fn main() -> ExitCode {
    eprintln!("mrun: running containers is not available yet in this build");
    ExitCode::from(EXIT_FAILED)
}
