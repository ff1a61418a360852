//! A store another user could change is refused, as ssh refuses loose key files: its root
//! and top-level entries must be the caller's own, not symlinks, not writable by group or
//! others. The attack: another user makes the store directory (or one inside it) first,
//! then swaps `containers/` for a symlink, and root's writes land where that user chose.
//! Each case is tried as root with the test user (scripts/ci-user) as the other user, and
//! the place the symlink points to is checked afterwards: nothing may be written there.

use super::*;
use std::os::unix::fs::{chown, lchown};

/// The other user's uid, or None (with `skipped:`).
fn other_user() -> Option<u32> {
    if !is_root_and_busybox() {
        return None;
    }
    let found = crate::run::user_entry(crate::run::TEST_USER);
    if skip_unless(
        found.is_some(),
        "user minibox-test missing (scripts/ci-user makes it)",
    ) {
        return None;
    }
    found.map(|(uid, _)| uid)
}

/// Every entry below `p`, for "nothing was written there".
fn listing(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).unwrap().flatten() {
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            out.extend(listing(&e.path()));
        }
    }
    out
}

/// mrun and mbuild on the store at `root` are all refused with one line naming `needle`
/// (mbuild and mrun's subcommands exit 1, `mrun run` 125), and `victim` stays empty.
fn refused(root: &Path, needle: &str, victim: &Path, what: &str) {
    let store = s(root);
    let runs: [(&str, Vec<&str>, i32); 4] = [
        (
            "mrun run",
            vec![
                "--root",
                store,
                "--name",
                "owned-check",
                IMG,
                "/probe",
                "ids",
            ],
            125,
        ),
        ("mrun ps", vec!["--root", store, "ps", "-a"], 1),
        ("mbuild images", vec!["--root", store, "images"], 1),
        (
            "mbuild import",
            vec!["--root", store, "import", "/nonexistent", "-t", "a:1"],
            1,
        ),
    ];
    for (name, args, want) in runs {
        let bin = if name.starts_with("mrun") {
            MRUN
        } else {
            MBUILD
        };
        let mut c = Command::new(bin);
        c.args(&args)
            .env_remove("MINIBOX_ROOT")
            .stdin(Stdio::null());
        let o = run_cmd(c);
        assert_eq!(
            code(&o),
            want,
            "{what}: {name}: stdout {:?} stderr {:?}",
            text(&o.stdout),
            text(&o.stderr)
        );
        let line = assert_one_line_error(&o, needle);
        assert!(
            line.contains(&format!("store {store}")),
            "{what}: {name}: {line}"
        );
        assert_eq!(text(&o.stdout), "", "{what}: {name}");
    }
    assert_eq!(
        listing(victim),
        Vec::<PathBuf>::new(),
        "{what}: written through"
    );
}

/// A store of root's holding the test image, and an empty directory standing in for the
/// place (such as /root) the other user wants root's writes to land.
fn store_and_victim(env: &Env) -> PathBuf {
    let victim = env.path("victim");
    fs::create_dir(&victim).unwrap();
    victim
}

#[test]
fn a_store_made_by_another_user_is_refused_and_nothing_is_written_through_it() {
    let Some(uid) = other_user() else { return };
    let Some(env) = setup() else { return };
    let victim = store_and_victim(&env);
    let owned = format!("is owned by uid {uid}, not by you (uid 0)");

    // The store's root made beforehand by the other user, empty. Old code: used it.
    let theirs = env.path("theirs");
    fs::create_dir(&theirs).unwrap();
    chown(&theirs, Some(uid), Some(uid)).unwrap();
    refused(&theirs, &owned, &theirs, "root owned by another user");

    // containers/ swapped for a symlink by the other user (who had the run of the store
    // before root took it over). Old code: `mrun run` made victim/<id>/.
    let containers = env.root.join("containers");
    fs::remove_dir(&containers).unwrap();
    symlink(&victim, &containers).unwrap();
    lchown(&containers, Some(uid), Some(uid)).unwrap();
    refused(
        &env.root,
        "containers is a symlink",
        &victim,
        "containers -> victim",
    );
    // Even root's own symlink there: the store's directories are never links.
    lchown(&containers, Some(0), Some(0)).unwrap();
    refused(
        &env.root,
        "containers is a symlink",
        &victim,
        "root's own link",
    );
    fs::remove_file(&containers).unwrap();

    // A real directory of the other user's.
    fs::create_dir(&containers).unwrap();
    chown(&containers, Some(uid), Some(uid)).unwrap();
    refused(
        &env.root,
        &format!("containers {owned}"),
        &containers,
        "containers owned by another user",
    );
    chown(&containers, Some(0), Some(0)).unwrap();
    fs::set_permissions(&containers, fs::Permissions::from_mode(0o700)).unwrap();

    // tmp/ (where each command clears dead sessions) swapped for the other user's link.
    let tmp = env.root.join("tmp");
    fs::rename(&tmp, env.path("tmp.orig")).unwrap();
    symlink(&victim, &tmp).unwrap();
    lchown(&tmp, Some(uid), Some(uid)).unwrap();
    refused(&env.root, "tmp is a symlink", &victim, "tmp -> victim");
    fs::remove_file(&tmp).unwrap();
    fs::rename(env.path("tmp.orig"), &tmp).unwrap();

    // The layout's index.json planted as a link to a file root would then write.
    let index = env.root.join("oci/index.json");
    let saved = fs::read(&index).unwrap();
    fs::remove_file(&index).unwrap();
    symlink(victim.join("planted"), &index).unwrap();
    lchown(&index, Some(uid), Some(uid)).unwrap();
    refused(
        &env.root,
        "oci/index.json is a symlink",
        &victim,
        "index.json link",
    );
    fs::remove_file(&index).unwrap();
    fs::write(&index, saved).unwrap();

    // The store's root a symlink of the other user's to a store of root's.
    let link = env.path("link-to-store");
    symlink(&env.root, &link).unwrap();
    lchown(&link, Some(uid), Some(uid)).unwrap();
    refused(
        &link,
        "is a symlink owned by uid",
        &victim,
        "root a link of theirs",
    );
    // Root's own link to its own store is fine (a store moved to a bigger disk).
    lchown(&link, Some(0), Some(0)).unwrap();
    let o = Command::new(MBUILD)
        .arg("--root")
        .arg(&link)
        .arg("images")
        .env_remove("MINIBOX_ROOT")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("probe"), "{}", text(&o.stdout));

    // And the store as it was still works.
    let o = run_cmd({
        let mut c = Command::new(MRUN);
        c.arg("--root")
            .arg(&env.root)
            .args(["--rm", IMG, "/probe", "ids"]);
        c.env_remove("MINIBOX_ROOT").stdin(Stdio::null());
        c
    });
    assert!(lines(&ok("the repaired store", &o)).contains(&"uid=0"));
}

#[test]
fn a_store_others_may_write_is_refused() {
    let Some(_) = other_user() else { return };
    let Some(env) = setup() else { return };
    let victim = store_and_victim(&env);
    // Old code: used; any local user could then swap containers/ for a symlink.
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o777)).unwrap();
    refused(
        &env.root,
        "is writable by group or others (mode 0777)",
        &victim,
        "root 0777",
    );
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o1777)).unwrap();
    refused(
        &env.root,
        "is writable by group or others",
        &victim,
        "root 1777",
    );
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o700)).unwrap();
    let layers = env.root.join("layers");
    fs::set_permissions(&layers, fs::Permissions::from_mode(0o770)).unwrap();
    refused(
        &env.root,
        "layers is writable by group or others (mode 0770)",
        &victim,
        "layers 0770",
    );
    fs::set_permissions(&layers, fs::Permissions::from_mode(0o700)).unwrap();
    // Readable by others is the owner's business (the root is made 0700, but a store an
    // admin opened up for reading still works).
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o755)).unwrap();
    env.ok(["images"]);
}
