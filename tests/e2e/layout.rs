//! The store's OCI image layout lives in ROOT/oci, apart from the extracted layers: OCI tools
//! (oci-image-tool, umoci, skopeo) validate and read it while the store holds an image with a
//! whiteout, an opaque directory, a FIFO and a device node; and a store from before (the
//! layout at its root) is moved there by the next command, with one notice, also when several
//! commands open it at once or one is killed in the middle.

use crate::build::{output_within, setup, BASE, TIMEOUT};
use crate::common::*;
use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// The image this module is about: a FIFO and a char device (1,3) in one layer; a deleted
/// file (a whiteout) and a directory deleted and made again (opaque) in the next.
const ODD: &str = "odd:1";
const MINIFILE: &str = "FROM base:1\n\
    RUN mkdir -p /opq/sub && echo old >/opq/old && echo gone >/etc/gone && mkfifo /fifo && mknod /null2 c 1 3\n\
    RUN rm /etc/gone && rm -rf /opq && mkdir /opq && echo new >/opq/new\n";
/// What a container of ODD shows, checked by `CHECK`.
const CHECK: &str =
    "test -p /fifo && test -c /null2 && ! test -e /etc/gone && ls /opq && cat /opq/new";
const CHECKED: &str = "new\nnew\n";

/// Entries of an OCI layout's top, which an old store had at its root.
const LAYOUT: [&str; 3] = ["blobs", "index.json", "oci-layout"];

/// A store holding base:1 and ODD, built with RUN steps, or None (`skipped:`) when builds
/// cannot run here or the OCI tools are missing.
fn odd_store() -> Option<Env> {
    if skip_unless(
        have("oci-image-tool") && have("umoci") && have("skopeo"),
        "oci-image-tool, umoci and skopeo are not installed (.ci/run installs them)",
    ) {
        return None;
    }
    let env = setup()?;
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Minifile"), MINIFILE).unwrap();
    let o = output_within(env.mbuild_cmd(["-t", ODD, ctx.to_str().unwrap()]), TIMEOUT);
    assert!(o.status.success(), "build: {}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "", "build wrote to stderr");
    Some(env)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The canonical store root, as the notice names it.
fn canonical(env: &Env) -> PathBuf {
    fs::canonicalize(&env.root).unwrap()
}

fn notice(prog: &str, env: &Env) -> String {
    format!(
        "{prog}: moved the store's OCI layout into {}/oci (one-time migration)",
        canonical(env).display()
    )
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Put the store back in the shape minibox gave it before ROOT/oci: the layout at the root.
fn make_old_layout(root: &Path) {
    for n in LAYOUT {
        fs::rename(root.join("oci").join(n), root.join(n)).unwrap();
    }
    fs::remove_dir(root.join("oci")).unwrap();
}

/// The layout is in ROOT/oci, whole, and nothing of it is left at the root.
fn assert_moved(root: &Path) {
    let top = names(root);
    for n in LAYOUT.iter().chain(&["oci.migrating"]) {
        assert!(!top.contains(*n), "{n} left at the store's root: {top:?}");
    }
    assert_eq!(
        names(&root.join("oci")),
        LAYOUT.map(String::from).into_iter().collect()
    );
}

/// `mbuild images`: both images listed, and what it wrote to stderr.
fn images(env: &Env) -> String {
    let o = output_within(env.mbuild_cmd(["images"]), TIMEOUT);
    assert!(o.status.success(), "images: {}", text(&o.stderr));
    let out = text(&o.stdout);
    for name in ["base ", "odd "] {
        assert!(out.lines().any(|l| l.starts_with(name)), "{name}: {out}");
    }
    text(&o.stderr)
}

fn mrun(env: &Env, args: &[&str]) -> Output {
    let mut c = Command::new(MRUN);
    c.arg("--root").arg(&env.root).arg("--rm").args(args);
    c.env_remove("MINIBOX_ROOT");
    output_within(c, TIMEOUT)
}

/// `oci-image-tool validate --type image DIR` (Debian's 1.0.0-rc1 takes "image" for a layout
/// directory; "imageLayout" is only what it autodetects) within `limit`: Some(output), or None
/// when `timeout(1)` had to end it.
fn validate(dir: &Path, limit: u32) -> Option<Output> {
    let o = Command::new("timeout")
        .args(["-k", "5", &limit.to_string()])
        .args(["oci-image-tool", "validate", "--type", "image", s(dir)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // timeout(1): 124 when it sent the signal, 137 when it had to SIGKILL.
    (!matches!(o.status.code(), Some(124) | Some(137))).then_some(o)
}

fn assert_validates(dir: &Path) {
    let o = validate(dir, 120).unwrap_or_else(|| panic!("validate {}: hung", dir.display()));
    let all = text(&o.stdout) + &text(&o.stderr);
    assert!(
        o.status.success() && all.contains("Validation succeeded"),
        "oci-image-tool validate {}: {}\n{all}",
        dir.display(),
        o.status
    );
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    let mut buf = [0u8; 16];
    // SAFETY: both strings are NUL-terminated and buf is valid for its length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

/// What the store's extracted layers hold of the kinds OCI validators trip on.
fn odd_entries(layers: &Path) -> BTreeSet<&'static str> {
    let mut found = BTreeSet::new();
    let mut todo = vec![layers.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            if ft.is_dir() {
                if xattr(&p, "trusted.overlay.opaque").as_deref() == Some(b"y") {
                    found.insert("opaque dir");
                }
                todo.push(p);
            } else if ft.is_fifo() {
                found.insert("fifo");
            } else if ft.is_char_device() && m.rdev() == 0 {
                found.insert("whiteout");
            } else if ft.is_char_device() {
                found.insert("char device");
            }
        }
    }
    found
}

#[test]
fn oci_image_tool_umoci_and_skopeo_pass_on_the_layout_of_a_store_with_whiteouts_fifos_and_devices()
{
    let Some(env) = odd_store() else { return };
    // The store really holds what breaks a validator walking the whole root.
    assert_eq!(
        odd_entries(&env.root.join("layers")),
        BTreeSet::from(["char device", "fifo", "opaque dir", "whiteout"])
    );
    assert_eq!(
        names(&env.root.join("oci")),
        LAYOUT.map(String::from).into_iter().collect()
    );
    for n in LAYOUT {
        assert!(!env.root.join(n).exists(), "{n} at the store's root");
    }

    let layout = env.root.join("oci");
    assert_validates(&layout);

    let listed = text(
        &Command::new("umoci")
            .args(["ls", "--layout", s(&layout)])
            .output()
            .unwrap()
            .stdout,
    );
    assert_eq!(
        listed.lines().collect::<BTreeSet<_>>(),
        BTreeSet::from([BASE, ODD]),
        "umoci ls: {listed:?}"
    );

    let o = Command::new("skopeo")
        .args(["inspect", &format!("oci:{}:{ODD}", layout.display())])
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo inspect: {}", text(&o.stderr));
    let v = json(&text(&o.stdout));
    let ours = &json(&env.ok(["inspect", ODD]))[0];
    assert_eq!(v["Digest"], ours["Digest"]);
    assert_eq!(
        v["Layers"].as_array().unwrap().len(),
        ours["Manifest"]["layers"].as_array().unwrap().len()
    );
}

#[test]
fn an_old_store_is_moved_by_the_next_command_with_one_notice_and_its_images_still_run() {
    let Some(env) = odd_store() else { return };
    let digest = json(&env.ok(["inspect", ODD]))[0]["Digest"].clone();
    make_old_layout(&env.root);

    // The control, and the reason for ROOT/oci: on the old shape a validator walks into the
    // extracted layers and fails on a whiteout (ENXIO) or hangs on the FIFO.
    match validate(&env.root, 10) {
        None => eprintln!("control: oci-image-tool validate on the old layout hung (timeout)"),
        Some(o) => {
            let all = text(&o.stdout) + &text(&o.stderr);
            assert!(!o.status.success(), "validated the old layout: {all}");
            eprintln!("control: oci-image-tool validate on the old layout: {all}");
        }
    }

    // mrun is the first command: it moves the layout, says so once, and runs the image.
    let o = mrun(&env, &[ODD, "sh", "-c", CHECK]);
    assert!(o.status.success(), "mrun: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout), CHECKED);
    assert_eq!(text(&o.stderr), notice("mrun", &env) + "\n");
    assert_moved(&env.root);

    // Nothing more to say afterwards, from either binary.
    assert_eq!(images(&env), "");
    let o = mrun(&env, &[BASE, "true"]);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(json(&env.ok(["inspect", ODD]))[0]["Digest"], digest);
    assert!(env.ok(["fsck"]).contains(": ok"));
    assert_validates(&env.root.join("oci"));

    // The old habit, `skopeo copy … oci:ROOT:…`, now writes a second layout at the root: a
    // one-line refusal that says what to do, not images silently out of sight.
    let o = Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}/oci:{ODD}", env.root.display()))
        .arg(format!("oci:{}:copied", env.root.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo copy: {}", text(&o.stderr));
    let line = assert_one_line_error(&env.mbuild(["images"]), "holds two OCI layouts");
    assert!(line.contains("mbuild load -i"), "{line}");
    let o = mrun(&env, &[BASE, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert_one_line_error(&o, "holds two OCI layouts");
    // Taken out of the store as the line says, it loads like any OCI layout directory.
    let aside = env.path("aside");
    fs::create_dir(&aside).unwrap();
    for n in LAYOUT {
        fs::rename(env.root.join(n), aside.join(n)).unwrap();
    }
    assert_eq!(images(&env), "");
    assert_eq!(
        env.ok(["load", "-i", s(&aside)]),
        "Loaded image: aside:copied\n"
    );
    assert_eq!(
        json(&env.ok(["inspect", "aside:copied"]))[0]["Digest"],
        digest
    );
}

#[test]
fn commands_opening_an_old_store_at_once_move_it_once() {
    let Some(env) = odd_store() else { return };
    make_old_layout(&env.root);
    let mut children = Vec::new();
    for i in 0..8 {
        let mut c = if i % 2 == 0 {
            env.mbuild_cmd(["images", "-q"])
        } else {
            let mut c = Command::new(MRUN);
            c.arg("--root")
                .arg(&env.root)
                .args(["--rm", ODD, "cat", "/opq/new"]);
            c
        };
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        children.push((i, c.spawn().unwrap()));
    }
    let mut notices = Vec::new();
    for (i, c) in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{i}: {}", text(&o.stderr));
        let out = text(&o.stdout);
        if i % 2 == 0 {
            assert_eq!(out.lines().count(), 2, "{i}: {out}");
        } else {
            assert_eq!(out, "new\n", "{i}");
        }
        notices.extend(text(&o.stderr).lines().map(String::from));
    }
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        [notice("mbuild", &env), notice("mrun", &env)].contains(&notices[0]),
        "{notices:?}"
    );
    assert_moved(&env.root);
    assert_eq!(images(&env), "");
}

#[test]
fn a_move_killed_in_the_middle_is_finished_by_the_next_command() {
    let Some(env) = odd_store() else { return };
    let root = env.root.clone();

    // The states a SIGKILL between two renames leaves: some entries gathered in the staging
    // directory, the rest still at the root; or all gathered and not yet renamed to oci/.
    for gathered in [&LAYOUT[..1], &LAYOUT[..2], &LAYOUT[..]] {
        make_old_layout(&root);
        let staging = root.join("oci.migrating");
        fs::create_dir(&staging).unwrap();
        for n in gathered {
            fs::rename(root.join(n), staging.join(n)).unwrap();
        }
        assert_eq!(images(&env), notice("mbuild", &env) + "\n", "{gathered:?}");
        assert_moved(&root);
        assert_eq!(images(&env), "");
    }

    // And real kills, at moments spread over a whole command on an old store (as
    // store::sigkill_during_import_leaves_a_valid_store does).
    make_old_layout(&root);
    let start = Instant::now();
    assert_eq!(images(&env), notice("mbuild", &env) + "\n");
    let full = start.elapsed();
    let mut half = 0;
    for i in 0..10u32 {
        make_old_layout(&root);
        let c = env
            .mbuild_cmd(["images"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(f64::from(i) / 9.0 * 1.1));
        // SAFETY: kill(2) of our own child, not yet reaped, so the pid is still its own.
        unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
        let killed = c.wait_with_output().unwrap();
        if root.join("oci.migrating").exists() {
            half += 1;
        }
        // The next command finishes the move (or finds it done) and reads every image; the
        // notice comes at most once in all, from whichever of the two moved the layout.
        let next = images(&env);
        let said: Vec<String> = text(&killed.stderr)
            .lines()
            .chain(next.lines())
            .map(String::from)
            .collect();
        assert!(
            said.len() <= 1 && said.iter().all(|l| *l == notice("mbuild", &env)),
            "round {i}: {said:?}"
        );
        assert_moved(&root);
    }
    eprintln!("{half} of 10 kills landed in the middle of the move");
    let o = mrun(&env, &[ODD, "sh", "-c", CHECK]);
    assert!(o.status.success(), "mrun: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout), CHECKED);
    assert!(env.ok(["fsck"]).contains(": ok"));
    // The kills' sessions were cleared.
    assert_eq!(names(&root.join("tmp")), BTreeSet::new());
}
