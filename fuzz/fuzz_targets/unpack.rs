//! Arbitrary bytes as an uncompressed layer tar, extracted by `layers::unpack::unpack` (the
//! hand-written extraction loop) into `<sandbox>/root/`. Errors are fine; a panic is a bug,
//! and so is anything created beside `root/`, a change to the canary next to it, or a root
//! that is no longer a directory.

#![no_main]

use layers::unpack::{unpack, UnpackOptions};
use libfuzzer_sys::fuzz_target;
use minibox_fuzz::{reset, Sandbox};
use std::sync::OnceLock;

static SANDBOX: OnceLock<Sandbox> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let sb = SANDBOX.get_or_init(|| Sandbox::new("unpack"));
    let root = sb.dir.join("root");
    reset(&root);
    // What this process may do (as root: owners, devices, trusted.* xattrs).
    let r = unpack(data, &root, &UnpackOptions::default());
    sb.check(&["root"], &format!("unpack returned {r:?}"));
    let m = std::fs::symlink_metadata(&root).unwrap();
    assert!(m.is_dir(), "the target is no longer a directory: {r:?}");
});
