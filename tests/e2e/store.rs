//! The store through `mbuild`: determinism, crash safety, concurrency, corruption and
//! error handling.

use crate::common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// (manifest digest, layer digests, diff_ids) of an image, read through `mbuild inspect`.
fn digests(env: &Env, image: &str) -> (String, Vec<String>, Vec<String>) {
    let v = json(&env.ok(["inspect", image]));
    let img = &v[0];
    let layers = img["Manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let diff_ids = img["Config"]["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (
        img["Digest"].as_str().unwrap().to_string(),
        layers,
        diff_ids,
    )
}

fn sha256_file(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Every blob is named by its own hash, index.json is valid JSON naming present manifests.
fn assert_store_valid(root: &Path) {
    let root = &root.join("oci");
    for e in fs::read_dir(root.join("blobs/sha256")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert_eq!(
            sha256_file(&e.path()),
            name,
            "blob {name} does not hold its own hash"
        );
    }
    let idx = json(&fs::read_to_string(root.join("index.json")).unwrap());
    for m in idx["manifests"].as_array().unwrap() {
        let d = m["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        assert!(
            root.join("blobs/sha256").join(d).is_file(),
            "index names missing manifest {d}"
        );
    }
}

fn tmp_entries(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

#[test]
fn same_tree_twice_gives_same_digests() {
    let env = Env::new();
    let tree = env.path("tree");
    sample_tree(&tree);
    env.ok(["import", tree.to_str().unwrap(), "-t", "a:1"]);
    env.ok(["import", tree.to_str().unwrap(), "-t", "a:2"]);
    let (m1, l1, d1) = digests(&env, "a:1");
    let (m2, l2, d2) = digests(&env, "a:2");
    assert_eq!((m1, l1, d1), (m2, l2, d2));
    // A second store on its own gives the same bytes too.
    let other = Env::new();
    other.ok(["import", tree.to_str().unwrap(), "-t", "b"]);
    assert_eq!(digests(&other, "b"), digests(&env, "a:1"));
}

#[test]
fn same_tree_elsewhere_with_source_date_epoch_gives_same_digests() {
    let env = Env::new();
    let a = env.path("a/tree");
    sample_tree(&a);
    // The "other machine": a copy at another path, new inodes, atimes and ctimes, and every
    // mtime newer than SOURCE_DATE_EPOCH (as a fresh checkout has).
    let b = env.path("elsewhere/deeper/tree");
    fs::create_dir_all(b.parent().unwrap()).unwrap();
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&a)
        .arg(&b)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find {} -exec touch -h -d '2031-01-01 00:00:00' {{}} +",
            b.display()
        ))
        .status()
        .unwrap()
        .success());
    assert!(Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find {} -exec touch -h -d '2030-06-01 00:00:00' {{}} +",
            a.display()
        ))
        .status()
        .unwrap()
        .success());
    let epoch = "1700000000";
    let run = |tree: &Path, tag: &str| {
        let o = env
            .mbuild_cmd(["import", tree.to_str().unwrap(), "-t", tag])
            .env("SOURCE_DATE_EPOCH", epoch)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    };
    run(&a, "a");
    run(&b, "b");
    assert_eq!(digests(&env, "a"), digests(&env, "b"));
    let cfg = &json(&env.ok(["inspect", "a"]))[0]["Config"];
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
    // Without the clamp the different mtimes show.
    env.ok(["import", a.to_str().unwrap(), "-t", "c"]);
    env.ok(["import", b.to_str().unwrap(), "-t", "d"]);
    assert_ne!(digests(&env, "c").2, digests(&env, "d").2);
}

#[test]
fn images_history_layers_tag_rmi_prune() {
    let env = Env::new();
    let tree = env.path("tree");
    sample_tree(&tree);
    let id = env.ok(["import", tree.to_str().unwrap(), "-t", "sample:1.0"]);
    assert!(
        id.trim().starts_with("sha256:") && id.trim().len() == 71,
        "{id}"
    );
    env.ok(["tag", "sample:1.0", "sample:latest"]);
    let images = env.ok(["images"]);
    let lines: Vec<&str> = images.lines().collect();
    assert_eq!(lines.len(), 3, "{images}");
    assert!(lines[0].starts_with("REPOSITORY"));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("sample ") && l.contains(" 1.0 ") && l.contains(&id.trim()[7..19])));
    assert_eq!(
        env.ok(["images", "-q"]).lines().collect::<Vec<_>>(),
        vec![&id.trim()[7..19]; 2]
    );

    let history = env.ok(["history", "sample"]);
    assert!(
        history.lines().nth(1).unwrap().contains("mbuild import"),
        "{history}"
    );

    let layers = json(&env.ok(["layers", "sample:1.0", "--json"]));
    let l = &layers[0];
    let path = PathBuf::from(l["path"].as_str().unwrap());
    assert_eq!(
        path,
        env.root
            .join("layers")
            .join(&l["diff_id"].as_str().unwrap()[7..])
    );
    assert_eq!(fs::read(path.join("etc/hostname")).unwrap(), b"sample\n");
    assert!(l["unpacked_size"].as_u64().unwrap() >= 300_000);
    assert!(
        l["size"].as_u64().unwrap() < 100_000,
        "compressed size {}",
        l["size"]
    );
    assert_eq!(l["created_by"], "mbuild import");
    let table = env.ok(["layers", "sample:1.0"]);
    assert!(table.contains(path.to_str().unwrap()), "{table}");

    let rmi = env.ok(["rmi", "sample:1.0"]);
    assert_eq!(rmi.trim(), "Untagged: sample:1.0");
    assert!(
        !env.ok(["prune"]).contains("deleted blob"),
        "prune removed a blob that sample:latest uses"
    );
    let rmi = env.ok(["rmi", "sample"]);
    assert!(
        rmi.contains("Untagged: sample:latest") && rmi.contains("Deleted: sha256:"),
        "{rmi}"
    );
    assert_eq!(
        fs::read_dir(env.root.join("oci/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(fs::read_dir(env.root.join("layers")).unwrap().count(), 0);
    let o = env.mbuild(["inspect", "sample"]);
    assert_one_line_error(&o, "no such image: sample:latest");
}

#[test]
fn prune_says_what_it_freed() {
    let env = Env::new();
    let tree = env.path("tree");
    sample_tree(&tree);
    env.ok(["import", tree.to_str().unwrap(), "-t", "x"]);
    env.ok(["layers", "x"]);
    // Re-tagging x to a changed tree leaves the old manifest, config and layer unreferenced.
    fs::write(tree.join("etc/new"), "changed").unwrap();
    env.ok(["import", tree.to_str().unwrap(), "-t", "x"]);
    let out = env.ok(["prune"]);
    assert_eq!(out.matches("deleted blob").count(), 3, "{out}");
    assert_eq!(out.matches("deleted layer directory").count(), 1, "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    env.ok(["layers", "x"]);
    assert_eq!(env.ok(["fsck"]).trim().rsplit(": ").next().unwrap(), "ok");
}

#[test]
fn bad_reference_unknown_image_and_unreadable_source_are_one_line_errors() {
    let env = Env::new();
    let tree = env.path("tree");
    sample_tree(&tree);
    let o = env.mbuild(["import", tree.to_str().unwrap(), "-t", "Bad:Ref"]);
    assert_one_line_error(
        &o,
        "invalid reference format \"Bad:Ref\": repository name must be lowercase",
    );
    assert_eq!(o.status.code(), Some(1));
    let o = env.mbuild(["inspect", "nosuch:1"]);
    assert_one_line_error(&o, "no such image: nosuch:1");
    let o = env.mbuild(["history", "a:-b"]);
    assert_one_line_error(&o, "invalid reference format");
    let missing = env.path("does/not/exist");
    let o = env.mbuild(["import", missing.to_str().unwrap(), "-t", "m"]);
    let line = assert_one_line_error(&o, "no such file or directory");
    assert!(line.contains(missing.to_str().unwrap()), "{line}");
    let not_tar = env.path("not.tar");
    fs::write(&not_tar, vec![b'z'; 4096]).unwrap();
    let o = env.mbuild(["import", not_tar.to_str().unwrap(), "-t", "m"]);
    let line = assert_one_line_error(&o, "import");
    assert!(line.contains("not.tar"), "{line}");
    let o = env.mbuild(["frobnicate"]);
    assert_one_line_error(
        &o,
        "frobnicate: not a command, and no build context directory of that name",
    );
    assert_eq!(o.status.code(), Some(125));
    assert_store_valid(&env.root);
    assert!(env.ok(["images", "-q"]).is_empty());
    assert!(
        tmp_entries(&env.root).is_empty(),
        "tmp/ left behind: {:?}",
        tmp_entries(&env.root)
    );
}

#[test]
fn hostile_tarball_import_is_refused_naming_the_entry() {
    let env = Env::new();
    let canary = env.path("canary");
    fs::create_dir_all(&canary).unwrap();
    fs::write(canary.join("keep"), "keep").unwrap();
    // A tar whose second entry climbs out: written byte by byte, since tar writers refuse.
    let mut data = Vec::new();
    for (name, body) in [("ok", &b"fine"[..]), ("a/../../canary/keep", &b"pwned"[..])] {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        data.extend_from_slice(h.as_bytes());
        data.extend_from_slice(body);
        data.resize(data.len().div_ceil(512) * 512, 0);
    }
    data.extend_from_slice(&[0; 1024]);
    let evil = env.path("evil.tar");
    fs::write(&evil, &data).unwrap();
    let o = env.mbuild(["import", evil.to_str().unwrap(), "-t", "evil"]);
    assert_one_line_error(&o, "a/../../canary/keep");
    assert_eq!(fs::read(canary.join("keep")).unwrap(), b"keep");
    assert!(env.ok(["images", "-q"]).is_empty());
    assert!(tmp_entries(&env.root).is_empty());
}

#[test]
fn gzip_tarball_import_matches_directory_import() {
    let env = Env::new();
    let tree = env.path("tree");
    sample_tree(&tree);
    let tgz = env.path("rootfs.tar.gz");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-czf")
        .arg(&tgz)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    env.ok(["import", tgz.to_str().unwrap(), "-t", "from-tar"]);
    let layers = json(&env.ok(["layers", "from-tar", "--json"]));
    let p = PathBuf::from(layers[0]["path"].as_str().unwrap());
    assert_eq!(
        fs::read(p.join("usr/share/doc/big")).unwrap().len(),
        300_000
    );
    let m = fs::symlink_metadata(p.join("bin/su")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(
        fs::read_link(p.join("bin/big-link")).unwrap(),
        Path::new("../usr/share/doc/big")
    );
}

#[test]
fn corrupt_blob_is_named_by_fsck_and_never_unpacked() {
    let env = Env::new();
    let tree = env.path("tree");
    sample_tree(&tree);
    env.ok(["import", tree.to_str().unwrap(), "-t", "c"]);
    let (_, layers, diff_ids) = digests(&env, "c");
    let blob = env.root.join("oci/blobs/sha256").join(&layers[0][7..]);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&blob, &bytes).unwrap();

    let o = env.mbuild(["fsck"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains(&layers[0]) && err.contains("digest mismatch"),
        "{err}"
    );
    assert!(text(&o.stdout).contains("1 problem"));

    let o = env.mbuild(["layers", "c"]);
    assert_one_line_error(&o, "digest mismatch");
    assert!(!env.root.join("layers").join(&diff_ids[0][7..]).exists());
    assert!(tmp_entries(&env.root).is_empty());
}

#[test]
fn eight_concurrent_imports_all_land() {
    let env = Env::new();
    let mut children = Vec::new();
    for i in 0..8 {
        let tree = env.path(&format!("tree{i}"));
        sample_tree(&tree);
        fs::write(tree.join("etc/id"), format!("{i}")).unwrap();
        let c = env
            .mbuild_cmd(["import", tree.to_str().unwrap(), "-t", &format!("c{i}:v")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push(c);
    }
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let images = env.ok(["images"]);
    for i in 0..8 {
        assert!(
            images.lines().any(|l| l.starts_with(&format!("c{i} "))),
            "c{i} missing:\n{images}"
        );
    }
    assert_store_valid(&env.root);
    assert!(env.ok(["fsck"]).contains(": ok"));
}

#[test]
fn sigkill_during_import_leaves_a_valid_store() {
    let env = Env::new();
    let tree = env.path("tree");
    // Enough data that an import takes a while: 400 files, 24 MB of incompressible bytes.
    for d in 0..20 {
        let dir = tree.join(format!("d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..20 {
            let seed = (d * 20 + f) as u64;
            let bytes: Vec<u8> = (0..60_000u64)
                .map(|i| (i.wrapping_mul(2654435761) ^ seed.wrapping_mul(97)) as u8)
                .collect();
            fs::write(dir.join(format!("f{f}")), bytes).unwrap();
        }
    }
    let start = Instant::now();
    env.ok(["import", tree.to_str().unwrap(), "-t", "full"]);
    let full = start.elapsed();
    // Kill at moments spread over the whole import, with a different tree each time so the
    // blobs are new.
    for i in 0..10u32 {
        fs::write(tree.join("d0/f0"), format!("round {i}")).unwrap();
        let mut c = env
            .mbuild_cmd(["import", tree.to_str().unwrap(), "-t", &format!("k{i}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(f64::from(i) / 9.0 * 1.1));
        unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
        let _ = c.wait();
        assert_store_valid(&env.root);
    }
    // The next command clears what the killed ones left in tmp/.
    env.ok(["images"]);
    assert!(
        tmp_entries(&env.root).is_empty(),
        "tmp/ not cleared: {:?}",
        tmp_entries(&env.root)
    );
    assert!(env.ok(["fsck"]).contains(": ok"));
}

/// A tmpfs mount that is unmounted when the test ends, however it ends.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_a_clear_error_and_the_store_stays_valid() {
    if skip_unless(is_root(), "mounting a small tmpfs needs root") {
        return;
    }
    let env = Env::new();
    let small = env.path("small");
    fs::create_dir_all(&small).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(st.success());
    let _guard = Tmpfs(small.clone());
    let root = small.join("store");
    let tree = env.path("tree");
    sample_tree(&tree);
    // 3 MB that gzip cannot shrink, so the layer cannot fit in 2 MiB.
    let mut noise = vec![0u8; 3_000_000];
    std::io::Read::read_exact(&mut fs::File::open("/dev/urandom").unwrap(), &mut noise).unwrap();
    fs::write(tree.join("noise"), noise).unwrap();
    let run = |args: &[&str]| {
        Command::new(MBUILD)
            .arg("--root")
            .arg(&root)
            .args(args)
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .unwrap()
    };
    let small_tree = env.path("small-tree");
    sample_tree(&small_tree);
    assert!(run(&["import", small_tree.to_str().unwrap(), "-t", "fits"])
        .status
        .success());
    let o = run(&["import", tree.to_str().unwrap(), "-t", "too-big"]);
    assert_one_line_error(&o, "no space left on device");
    assert_store_valid(&root);
    assert!(tmp_entries(&root).is_empty(), "{:?}", tmp_entries(&root));
    let images = run(&["images", "-q"]);
    assert_eq!(text(&images.stdout).lines().count(), 1);
    assert!(run(&["fsck"]).status.success());
}
