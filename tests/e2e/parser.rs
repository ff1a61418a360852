//! The Minifile parser through `mbuild check`: BuildKit's own parser test data (kept in
//! ../shared/conformance, never copied here) must dump byte for byte as BuildKit dumps it,
//! and errors must come out as one `FILE:LINE:COL: ...` line with exit code 1.

use crate::common::{self, assert_one_line_error, text, Env};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// `check [flags] -f FILE`.
fn check(flags: &[&str], file: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = std::iter::once("check")
        .chain(flags.iter().copied())
        .map(OsString::from)
        .collect();
    v.push("-f".into());
    v.push(file.into());
    v
}

#[test]
fn buildkit_parser_conformance() {
    let script = common::workspace().join("../shared/conformance/dockerfile-parser/check.sh");
    if common::skip_unless(
        script.exists(),
        &format!("no conformance data at {}", script.display()),
    ) {
        return;
    }
    let o = Command::new("bash")
        .arg(&script)
        .env("DUMP_CMD", format!("{} check --dump -f", common::MBUILD))
        .env("VERBOSE", "1")
        .env_remove("CASES")
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert_eq!(
        out.lines().last().unwrap_or(""),
        "dockerfile-parser: 29 passed, 0 failed",
        "check.sh said:\n{out}{}",
        text(&o.stderr)
    );
    assert!(o.status.success(), "check.sh exited {}", o.status);
}

#[test]
fn check_prints_a_summary() {
    let env = Env::new();
    let file = env.path("Minifile");
    std::fs::write(
        &file,
        "ARG V=1\nFROM scratch AS a\nCOPY x /x\nFROM a\nRUN true\nCMD [\"x\"]\n",
    )
    .unwrap();
    let out = env.ok(check(&[], &file));
    assert_eq!(
        out,
        format!("{}: 2 stages, 3 instructions\n", file.display())
    );
}

#[test]
fn check_error_is_one_line_with_position() {
    let env = Env::new();
    let file = env.path("Minifile");
    std::fs::write(&file, "FROM scratch\n# set the path\nENV PATH\n").unwrap();
    let o = env.mbuild(check(&[], &file));
    let line = assert_one_line_error(&o, ":3:1: ENV must have two arguments (in: \"ENV PATH\")");
    assert_eq!(
        line,
        format!(
            "mbuild: {}:3:1: ENV must have two arguments (in: \"ENV PATH\")",
            file.display()
        )
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn check_dump_accepts_what_stage_two_refuses() {
    let env = Env::new();
    let file = env.path("Minifile");
    std::fs::write(&file, "FROM scratch\nONBUILD RUN [\"echo\", \"hi\"]\n").unwrap();
    let out = env.ok(check(&["--dump"], &file));
    assert_eq!(out, "(from \"scratch\")\n(onbuild (run \"echo\" \"hi\"))\n");
    let o = env.mbuild(check(&[], &file));
    assert_one_line_error(&o, ":2:1: ONBUILD is not supported by minibox");
}

#[test]
fn check_missing_file() {
    let env = Env::new();
    let file = env.path("nope/Minifile");
    let o = env.mbuild(check(&[], &file));
    assert_one_line_error(&o, "Minifile: read: no such file or directory");
}
