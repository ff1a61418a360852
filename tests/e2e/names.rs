//! Image names as Docker users type them, everywhere an image is named: `name`, `name:tag`,
//! `library/name`, `docker.io/library/name`, `name@sha256:...` and image-ID prefixes all
//! reach the same image in mrun, inspect, history, layers, save, tag, rmi, FROM and
//! COPY --from; `images` shows the short form; `mbuild rmi $(mbuild images -q)` empties
//! the store's list.

use crate::common::*;
use crate::run::{mrun_ok, setup, IMG};
use std::collections::HashMap;
use std::fs;

fn image_id(env: &Env, name: &str) -> String {
    json(&env.ok(["inspect", name]))[0]["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn every_spelling_of_a_name_reaches_the_same_image() {
    let Some(env) = setup() else { return };
    env.ok(["tag", IMG, "docker.io/library/spelled:2"]);
    env.ok(["tag", IMG, "library/spelled"]);
    let images = env.ok(["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("spelled ") && l.contains(" 2 ")),
        "images shows the familiar form:\n{images}"
    );
    assert!(
        !images.contains("docker.io") && !images.contains("library/"),
        "{images}"
    );

    let v = json(&env.ok(["inspect", "spelled:2"]));
    let id = v[0]["Id"].as_str().unwrap().to_string();
    let digest = v[0]["Digest"].as_str().unwrap().to_string();
    let hex = &id[7..];
    let spellings = [
        "spelled:2".to_string(),
        "library/spelled:2".into(),
        "docker.io/library/spelled:2".into(),
        "index.docker.io/library/spelled:2".into(),
        "docker.io/spelled:2".into(),
        "spelled".into(),
        "spelled:latest".into(),
        "docker.io/library/spelled".into(),
        format!("spelled@{digest}"),
        format!("docker.io/library/spelled@{digest}"),
        format!("spelled:2@{digest}"),
        hex[..12].to_string(),
        hex[..5].to_string(),
        id.clone(),
        format!("sha256:{}", &hex[..12]),
    ];
    for s in &spellings {
        assert_eq!(image_id(&env, s), id, "inspect {s}");
    }
    // The other commands that name an image, with a few of the spellings each.
    for s in [&spellings[2], &spellings[8], &spellings[11]] {
        let out = mrun_ok(&env, &["--net", "none", s, "/probe", "hostname"]);
        assert!(!out.trim().is_empty(), "mrun {s}: {out:?}");
        assert!(
            env.ok(["history", s]).contains("mbuild import"),
            "history {s}"
        );
        assert_eq!(
            json(&env.ok(["layers", "--json", s]))
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let out = env.path("saved.tar");
        env.ok(["save", "-o", out.to_str().unwrap(), s]);
        assert!(fs::metadata(&out).unwrap().len() > 0, "save {s}");
        fs::remove_file(&out).unwrap();
    }
    env.ok(["tag", &spellings[11], "localhost:5000/copy:v1"]);
    assert_eq!(image_id(&env, "localhost:5000/copy:v1"), id);

    // A tag removed under one spelling is gone under all of them.
    assert_eq!(
        env.ok(["rmi", "docker.io/library/spelled:2"])
            .lines()
            .next(),
        Some("Untagged: spelled:2")
    );
    let o = env.mbuild(["inspect", "library/spelled:2"]);
    assert_one_line_error(&o, "no such image: spelled:2");
    assert_eq!(image_id(&env, "spelled"), id);
}

#[test]
fn from_and_copy_from_take_docker_spellings_and_id_prefixes() {
    let Some(env) = setup() else { return };
    env.ok(["tag", IMG, "docker.io/library/base:7"]);
    let id = image_id(&env, IMG);
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Minifile"),
        format!(
            "FROM docker.io/library/base:7\nCOPY --from={} /etc/passwd /copied\nCMD [\"/bin/cat\", \"/copied\"]\n",
            &id[7..19]
        ),
    )
    .unwrap();
    env.ok(["-t", "built", ctx.to_str().unwrap()]);
    let out = mrun_ok(&env, &["--net", "none", "docker.io/library/built:latest"]);
    assert!(out.starts_with("root:x:0:0"), "{out}");
}

#[test]
fn an_ambiguous_id_prefix_is_a_one_line_error() {
    let env = Env::new();
    let tree = env.path("tree");
    fs::create_dir_all(&tree).unwrap();
    // 17 images: two ids share their first hex digit (pigeonhole).
    let mut by_first: HashMap<char, Vec<String>> = HashMap::new();
    for i in 0..17 {
        fs::write(tree.join("f"), i.to_string()).unwrap();
        let id = env.ok(["import", tree.to_str().unwrap(), "-t", &format!("amb:{i}")]);
        let first = id.trim().chars().nth(7).unwrap();
        by_first
            .entry(first)
            .or_default()
            .push(id.trim().to_string());
    }
    let (c, ids) = by_first.iter().find(|(_, v)| v.len() > 1).unwrap();
    for cmd in ["inspect", "history", "rmi"] {
        let o = env.mbuild([cmd, &c.to_string()]);
        let line = assert_one_line_error(&o, "is ambiguous");
        assert!(line.contains(&format!("\"{c}\"")), "{line}");
        assert_eq!(o.status.code(), Some(1), "{cmd}");
    }
    // A longer, unique prefix of the same ids works.
    assert_eq!(image_id(&env, &ids[0][7..19]), ids[0]);
    // A prefix of no image (17 random ids share 17 leading f's with odds of 16^-17 each).
    let o = env.mbuild(["inspect", "fffffffffffffffff"]);
    assert_one_line_error(&o, "no such image: fffffffffffffffff");
}

#[test]
fn rmi_of_images_q_empties_the_list() {
    let env = Env::new();
    let tree = env.path("tree");
    sample_tree(&tree);
    env.ok(["import", tree.to_str().unwrap(), "-t", "one:1"]);
    env.ok(["tag", "one:1", "one:2"]);
    env.ok(["tag", "one:1", "docker.io/other/repo:x"]);
    fs::write(tree.join("etc/hostname"), "changed\n").unwrap();
    env.ok(["import", tree.to_str().unwrap(), "-t", "two"]);
    let ids = env.ok(["images", "-q"]);
    assert_eq!(ids.lines().count(), 4, "{ids}");
    let mut args = vec!["rmi".to_string()];
    args.extend(ids.split_whitespace().map(String::from));
    let out = env.ok(&args);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("Untagged: ")).count(),
        4,
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("Deleted: ")).count(),
        2,
        "{out}"
    );
    assert_eq!(env.ok(["images", "-q"]), "");
    assert_eq!(env.ok(["images"]).lines().count(), 1);
    // And the blobs went with them.
    let blobs = fs::read_dir(env.root.join("oci/blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 0);
}
