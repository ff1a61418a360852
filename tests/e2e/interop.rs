//! Interoperability with the tools users already have: skopeo and umoci read the store's
//! OCI layout (ROOT/oci), podman loads what `mbuild save` writes, and images made by umoci and
//! skopeo (whiteouts and opaque directories included) load and unpack to the right trees.

use crate::common::*;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run a tool and insist on success; returns stdout.
fn tool<S: AsRef<std::ffi::OsStr>>(prog: &str, args: &[S]) -> String {
    let o = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    let shown: Vec<_> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    assert!(
        o.status.success(),
        "{prog} {shown:?} failed: {}\n{}",
        o.status,
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// (manifest digest, layer digests, diff_ids) through `mbuild inspect`.
fn digests(env: &Env, image: &str) -> (String, Vec<String>, Vec<String>) {
    let v = json(&env.ok(["inspect", image]));
    let strings = |a: &serde_json::Value, key: Option<&str>| -> Vec<String> {
        a.as_array()
            .unwrap()
            .iter()
            .map(|x| key.map_or(x, |k| &x[k]).as_str().unwrap().to_string())
            .collect()
    };
    (
        v[0]["Digest"].as_str().unwrap().to_string(),
        strings(&v[0]["Manifest"]["layers"], Some("digest")),
        strings(&v[0]["Config"]["rootfs"]["diff_ids"], None),
    )
}

/// The extracted layer directories of an image, bottom first, through `mbuild layers --json`.
fn layer_dirs(env: &Env, image: &str) -> Vec<PathBuf> {
    json(&env.ok(["layers", image, "--json"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|l| PathBuf::from(l["path"].as_str().unwrap()))
        .collect()
}

fn strings_of(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    let mut buf = [0u8; 64];
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

/// Every path under `dir` with what it is: "dir", "dir opaque", "whiteout" (a 0/0
/// character device), "file <content>", "link <target>" or "other".
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                match xattr(&p, "trusted.overlay.opaque").as_deref() {
                    Some(b"y") => "dir opaque".to_string(),
                    _ => "dir".to_string(),
                }
            } else if ft.is_char_device() && m.rdev() == 0 {
                "whiteout".to_string()
            } else if ft.is_file() {
                format!("file {}", String::from_utf8_lossy(&fs::read(&p).unwrap()))
            } else if ft.is_symlink() {
                format!("link {}", fs::read_link(&p).unwrap().display())
            } else {
                "other".to_string()
            };
            out.insert(rel, what);
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn expect(v: &[(&str, &str)]) -> BTreeMap<String, String> {
    v.iter()
        .map(|(p, w)| (p.to_string(), w.to_string()))
        .collect()
}

/// A read-only overlay of layer directories, unmounted on drop (also when the test fails).
struct Overlay(PathBuf);

impl Overlay {
    /// `layers` bottom first, as `mbuild layers` lists them.
    fn mount(layers: &[PathBuf], at: &Path) -> Overlay {
        fs::create_dir_all(at).unwrap();
        let lower: Vec<&str> = layers.iter().rev().map(|p| s(p)).collect();
        let opts = format!("lowerdir={}", lower.join(":"));
        tool("mount", &["-t", "overlay", "overlay", "-o", &opts, s(at)]);
        Overlay(at.to_path_buf())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let p = CString::new(self.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: p is a NUL-terminated path.
        unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
    }
}

/// podman with all of its state in a temporary directory (see shared/ANCHORS.md), removed
/// on drop with anything podman left mounted under it.
pub(crate) struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub(crate) fn new() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("minibox-podman-")
            .tempdir()
            .unwrap();
        let d = dir.path().display();
        fs::write(
            dir.path().join("storage.conf"),
            format!("[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/storage\"\n"),
        )
        .unwrap();
        // tmp_dir, events and network config inside the temp dir too, so the test leaves
        // nothing in /run/libpod or /etc/containers.
        fs::write(
            dir.path().join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
                 [network]\nnetwork_config_dir = \"{d}/networks\"\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 events_logfile_path = \"{d}/events.log\"\nruntime = \"runc\"\ntmp_dir = \"{d}/tmp\"\n"
            ),
        )
        .unwrap();
        Podman { dir }
    }

    pub(crate) fn run(&self, args: &[&str]) -> String {
        let p = self.dir.path();
        let o = Command::new("podman")
            .env("CONTAINERS_CONF", p.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", p.join("storage.conf"))
            .arg("--root")
            .arg(p.join("storage"))
            .arg("--runroot")
            .arg(p.join("runroot"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "podman {args:?} failed: {}\n{}",
            o.status,
            text(&o.stderr)
        );
        text(&o.stdout)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let root = self.dir.path().to_string_lossy().into_owned();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&root))
            .collect();
        // Deepest first, so nested mounts go before their parents.
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let p = CString::new(m).unwrap();
            // SAFETY: p is a NUL-terminated path.
            unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
        }
        // vfs layer copies keep the images' read-only directories.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+rwx")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn skopeo_and_umoci_read_the_store_and_a_skopeo_docker_archive_loads_back() {
    if skip_unless(
        have("skopeo") && have("umoci"),
        "skopeo and umoci are not installed",
    ) {
        return;
    }
    let env = Env::new();
    let src = env.path("tree");
    sample_tree(&src);
    env.ok(["import", s(&src), "-t", "app:1.0"]);
    let (digest, layers, diff_ids) = digests(&env, "app:1.0");

    // The store's OCI image layout is its oci/ directory.
    let layout = env.root.join("oci");
    let oci = format!("oci:{}:app:1.0", layout.display());
    let v = json(&tool("skopeo", &["inspect", &oci]));
    assert_eq!(v["Digest"], digest.as_str());
    assert_eq!(strings_of(&v["Layers"]), layers);

    let listed = tool("umoci", &["ls", "--layout", s(&layout)]);
    assert!(
        listed.lines().any(|l| l == "app:1.0"),
        "umoci ls: {listed:?}"
    );

    let archive = env.path("x.tar");
    tool(
        "skopeo",
        &[
            "copy",
            &oci,
            &format!("docker-archive:{}:app:1.0", archive.display()),
        ],
    );
    let other = Env::new();
    let out = other.ok(["load", "-i", s(&archive)]);
    assert_eq!(out, "Loaded image: app:1.0\n");
    let (_, _, loaded) = digests(&other, "app:1.0");
    assert_eq!(loaded, diff_ids);
    let dirs = layer_dirs(&other, "app:1.0");
    assert_eq!(tree(&dirs[0]), tree(&layer_dirs(&env, "app:1.0")[0]));
    assert!(other.ok(["fsck"]).contains(": ok"));
}

#[test]
fn saved_archive_loads_into_podman_and_reads_as_a_docker_archive() {
    if skip_unless(
        have("podman") && have("skopeo"),
        "podman and skopeo are not installed",
    ) || skip_unless(is_root(), "podman with a private graphroot needs root")
    {
        return;
    }
    let env = Env::new();
    let src = env.path("tree");
    sample_tree(&src);
    env.ok(["import", s(&src), "-t", "app:1.0"]);
    let (digest, _, diff_ids) = digests(&env, "app:1.0");
    let archive = env.path("app.tar");
    env.ok(["save", "app:1.0", "-o", s(&archive)]);

    let podman = Podman::new();
    let out = podman.run(&["load", "-i", s(&archive)]);
    assert!(
        out.contains("Loaded image") && out.contains("app:1.0"),
        "{out}"
    );
    let layers = json(&podman.run(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        "app:1.0",
    ]));
    assert_eq!(strings_of(&layers), diff_ids);
    // podman copied the manifest byte for byte: the same digest.
    let got = podman.run(&["image", "inspect", "--format", "{{.Digest}}", "app:1.0"]);
    assert_eq!(got.trim(), digest);

    // podman reads the OCI side of the archive; the docker side (manifest.json) must be
    // valid on its own for `docker load` and older tools.
    let v = json(&tool(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", archive.display())],
    ));
    assert_eq!(strings_of(&v["Layers"]), diff_ids);
}

#[test]
fn umoci_and_skopeo_images_with_whiteouts_unpack_to_the_expected_trees() {
    if skip_unless(
        have("umoci") && have("skopeo"),
        "umoci and skopeo are not installed",
    ) || skip_unless(
        is_root(),
        "overlay mounts, trusted.* xattrs and whiteout devices need root",
    ) {
        return;
    }
    let env = Env::new();
    // Three layers: files; a deleted file (umoci writes etc/.wh.gone); a directory deleted
    // and made again with other contents. umoci writes the last as one `.wh.NAME` per old
    // entry, so that layer is written by hand with `opq/.wh..wh..opq`, as Docker and
    // BuildKit write it, and appended verbatim.
    let layout = env.path("umoci-img");
    let image = format!("{}:t", layout.display());
    tool("umoci", &["init", "--layout", s(&layout)]);
    tool("umoci", &["new", "--image", &image]);
    let b1 = env.path("b1");
    tool("umoci", &["unpack", "--image", &image, s(&b1)]);
    let r1 = b1.join("rootfs");
    fs::create_dir_all(r1.join("etc")).unwrap();
    fs::create_dir_all(r1.join("opq/sub")).unwrap();
    fs::write(r1.join("etc/keep"), "hi\n").unwrap();
    fs::write(r1.join("etc/gone"), "gone\n").unwrap();
    fs::write(r1.join("opq/old"), "old\n").unwrap();
    fs::write(r1.join("opq/sub/x"), "x\n").unwrap();
    tool("umoci", &["repack", "--image", &image, s(&b1)]);
    let b2 = env.path("b2");
    tool("umoci", &["unpack", "--image", &image, s(&b2)]);
    fs::remove_file(b2.join("rootfs/etc/gone")).unwrap();
    tool("umoci", &["repack", "--image", &image, s(&b2)]);

    let layer3 = env.path("layer3.tar");
    let mut b = tar::Builder::new(fs::File::create(&layer3).unwrap());
    for (name, data) in [
        ("opq/", None),
        ("opq/.wh..wh..opq", Some(&b""[..])),
        ("opq/new", Some(&b"new\n"[..])),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(if data.is_some() {
            tar::EntryType::Regular
        } else {
            tar::EntryType::Directory
        });
        h.set_mode(if data.is_some() { 0o644 } else { 0o755 });
        h.set_size(data.map_or(0, |d| d.len() as u64));
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, data.unwrap_or_default())
            .unwrap();
    }
    b.into_inner().unwrap();
    tool(
        "umoci",
        &["raw", "add-layer", "--image", &image, s(&layer3)],
    );

    // The layers as umoci stored them hold the whiteouts this test is about.
    let index = json(&fs::read_to_string(layout.join("index.json")).unwrap());
    let blob = |d: &serde_json::Value| layout.join("blobs/sha256").join(&d.as_str().unwrap()[7..]);
    let manifest = json(&fs::read_to_string(blob(&index["manifests"][0]["digest"])).unwrap());
    let blobs: Vec<PathBuf> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(&l["digest"]))
        .collect();
    assert_eq!(blobs.len(), 3);
    let listing = |p: &Path| tool("tar", &["-tzvf", s(p)]);
    assert!(
        listing(&blobs[1]).contains("etc/.wh.gone"),
        "{}",
        listing(&blobs[1])
    );
    assert!(
        listing(&blobs[2]).contains("opq/.wh..wh..opq"),
        "{}",
        listing(&blobs[2])
    );

    let docker = env.path("skopeo-docker.tar");
    tool(
        "skopeo",
        &[
            "copy",
            &format!("oci:{image}"),
            &format!("docker-archive:{}:x:t", docker.display()),
        ],
    );
    let oci_archive = env.path("umoci-archive.tar");
    tool(
        "skopeo",
        &[
            "copy",
            &format!("oci:{image}"),
            &format!("oci-archive:{}:t", oci_archive.display()),
        ],
    );

    let layers_want = [
        expect(&[
            ("etc", "dir"),
            ("etc/gone", "file gone\n"),
            ("etc/keep", "file hi\n"),
            ("opq", "dir"),
            ("opq/old", "file old\n"),
            ("opq/sub", "dir"),
            ("opq/sub/x", "file x\n"),
        ]),
        expect(&[("etc", "dir"), ("etc/gone", "whiteout")]),
        expect(&[("opq", "dir opaque"), ("opq/new", "file new\n")]),
    ];
    let merged_want = expect(&[
        ("etc", "dir"),
        ("etc/keep", "file hi\n"),
        ("opq", "dir"),
        ("opq/new", "file new\n"),
    ]);

    let mut diff_ids = Vec::new();
    // An OCI layout directory and an OCI archive tagged only "t" are named after their path.
    for (input, tag) in [
        (&layout, "umoci-img:t"),
        (&oci_archive, "umoci-archive:t"),
        (&docker, "x:t"),
    ] {
        let store = Env::new();
        let out = store.ok(["load", "-i", s(input)]);
        assert_eq!(
            out,
            format!("Loaded image: {tag}\n"),
            "loading {}",
            input.display()
        );
        diff_ids.push(digests(&store, tag).2);
        let dirs = layer_dirs(&store, tag);
        assert_eq!(dirs.len(), 3);
        for (i, (dir, want)) in dirs.iter().zip(&layers_want).enumerate() {
            assert_eq!(&tree(dir), want, "layer {i} of {}", input.display());
        }
        let mnt = store.path("merged");
        let _m = Overlay::mount(&dirs, &mnt);
        assert_eq!(
            tree(&mnt),
            merged_want,
            "merged view of {}",
            input.display()
        );
    }
    assert!(diff_ids.windows(2).all(|w| w[0] == w[1]), "{diff_ids:?}");
}

#[test]
fn save_and_load_round_trip_keeps_the_manifest_digest_and_tag() {
    let env = Env::new();
    let src = env.path("tree");
    sample_tree(&src);
    env.ok(["import", s(&src), "-t", "round/trip:v1"]);
    let (digest, layers, diff_ids) = digests(&env, "round/trip:v1");
    let out_dir = env.path("out");
    fs::create_dir(&out_dir).unwrap();
    let a = out_dir.join("a.tar");
    let b = out_dir.join("b.tar");
    assert_eq!(env.ok(["save", "round/trip:v1", "-o", s(&a)]), "");
    env.ok(["save", "round/trip:v1", "-o", s(&b)]);
    assert_eq!(
        fs::read(&a).unwrap(),
        fs::read(&b).unwrap(),
        "save is not deterministic"
    );
    assert_eq!(
        fs::read_dir(&out_dir).unwrap().count(),
        2,
        "a temp file was left beside the archives"
    );

    let other = Env::new();
    assert_eq!(
        other.ok(["load", "-i", s(&a)]),
        "Loaded image: round/trip:v1\n"
    );
    assert_eq!(
        digests(&other, "round/trip:v1"),
        (digest.clone(), layers, diff_ids)
    );
    let v = json(&other.ok(["inspect", "round/trip:v1"]));
    assert_eq!(strings_of(&v[0]["RepoTags"]), ["round/trip:v1"]);
    let fsck = other.mbuild(["fsck"]);
    assert!(
        fsck.status.success() && text(&fsck.stdout).contains(": ok"),
        "{}",
        text(&fsck.stderr)
    );
    assert_eq!(
        tree(&layer_dirs(&other, "round/trip:v1")[0]),
        tree(&layer_dirs(&env, "round/trip:v1")[0])
    );

    // Loading the same archive again is a no-op that still reports the tag.
    assert_eq!(
        other.ok(["load", "-i", s(&a)]),
        "Loaded image: round/trip:v1\n"
    );
    assert_eq!(digests(&other, "round/trip:v1").0, digest);
}

#[test]
fn load_of_something_that_is_not_an_image_archive_fails_in_one_line_naming_it() {
    let env = Env::new();
    let missing = env.path("missing.tar");
    assert_one_line_error(&env.mbuild(["load", "-i", s(&missing)]), s(&missing));

    let plain = env.path("plain.tar");
    let src = env.path("tree");
    sample_tree(&src);
    tool("tar", &["-C", s(&src), "-cf", s(&plain), "."]);
    let line = assert_one_line_error(
        &env.mbuild(["load", "-i", s(&plain)]),
        "not an image archive",
    );
    assert!(
        line.contains(&format!(
            "{}: not an image archive: no index.json or manifest.json",
            plain.display()
        )),
        "{line}"
    );

    let junk = env.path("junk.tar");
    fs::write(&junk, vec![b'#'; 4096]).unwrap();
    let line = assert_one_line_error(&env.mbuild(["load", "-i", s(&junk)]), "not a tar file");
    assert!(line.contains(s(&junk)), "{line}");
    assert!(env.ok(["images", "-q"]).is_empty());
}
