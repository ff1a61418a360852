//! Shared test helpers: a fresh store per test, running the binaries, skipping honestly.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const MBUILD: &str = env!("CARGO_BIN_EXE_mbuild");
pub const MRUN: &str = env!("CARGO_BIN_EXE_mrun");

/// A temporary directory holding a store (`root`) and anything else a test makes. Removed on
/// drop, also when the test fails (read-only layer dirs included).
pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("minibox-e2e-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("store");
        Env { dir, root }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `mbuild --root ROOT args...`, with SOURCE_DATE_EPOCH unset unless the test sets it.
    pub fn mbuild<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.mbuild_cmd(args).output().unwrap()
    }

    pub fn mbuild_cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(MBUILD);
        c.arg("--root").arg(&self.root).args(args);
        c.env_remove("SOURCE_DATE_EPOCH").env_remove("MINIBOX_ROOT");
        c.stdin(Stdio::null());
        c
    }

    /// Run mbuild and insist on success; returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let o = self.mbuild(&args);
        assert!(
            o.status.success(),
            "mbuild {args:?} failed: {}\n{}",
            o.status,
            text(&o.stderr)
        );
        text(&o.stdout)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Layer directories are read-only trees; make them writable so TempDir can go.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+rwx")
            .arg(self.dir.path())
            .status();
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Assert failure with exactly one line on stderr containing `needle`; returns that line.
pub fn assert_one_line_error(o: &Output, needle: &str) -> String {
    assert!(
        !o.status.success(),
        "expected failure, got success: {}",
        text(&o.stdout)
    );
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err:?}");
    assert!(
        lines[0].contains(needle),
        "error {:?} does not contain {needle:?}",
        lines[0]
    );
    lines[0].to_string()
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Print the reason and return true when a test cannot run on this machine. CI is root
/// and installs every tool, so there nothing is skipped.
pub fn skip_unless(cond: bool, reason: &str) -> bool {
    if !cond {
        eprintln!("skipped: {reason}");
        if std::env::var_os("CI").is_some() {
            panic!("CI must be able to run this test: {reason}");
        }
    }
    !cond
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A small rootfs tree with a bit of everything: dirs, files, a symlink, a hard link, an
/// executable, a setuid file.
pub fn sample_tree(dir: &Path) {
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("usr/share/doc")).unwrap();
    fs::write(dir.join("etc/hostname"), "sample\n").unwrap();
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(dir.join("bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(dir.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.join("bin/su"), "setuid").unwrap();
    fs::set_permissions(dir.join("bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(dir.join("usr/share/doc/big"), vec![b'x'; 300_000]).unwrap();
    symlink("../usr/share/doc/big", dir.join("bin/big-link")).unwrap();
    fs::hard_link(dir.join("etc/hostname"), dir.join("etc/hostname.hard")).unwrap();
}

/// The digest printed on the last line of `mbuild import` etc. is checked through `inspect`.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
