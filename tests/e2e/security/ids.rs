//! Users and groups out of range: (uid_t)-1 = 4294967295 means "leave unchanged" to
//! setresuid(2), setresgid(2) and chown(2), so `-u 4294967295` once ran as root with every
//! default capability and `65534:4294967295` kept gid 0. Every way a user reaches a
//! container is tried here: `mrun -u`, `mrun exec -u`, an image's own User, /etc/passwd and
//! /etc/group entries, a Minifile's USER (and RUN under it) and `COPY --chown`, and a
//! rootless container's user namespace map. Each must be refused with one line before
//! anything runs; none may ever run as root.

use super::*;

const MAX_PLUS_ONE: &str = "4294967295";

/// The test image with /etc/passwd and /etc/group holding out-of-range ids: `bad` has uid
/// 4294967295, `badgid` has gid 4294967295, `member` belongs to a group whose gid is
/// 4294967295.
fn hostile_ids_image(env: &Env) {
    let t = tree(env, "ids-image");
    fs::write(
        t.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         nobody:x:65534:65534:nobody:/:/bin/sh\n\
         bad:x:4294967295:1000:bad:/:/bin/sh\n\
         badgid:x:1000:4294967295:badgid:/:/bin/sh\n\
         member:x:1001:1001:member:/:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        t.join("etc/group"),
        "root:x:0:\nnobody:x:65534:\nmember:x:1001:\nevil:x:4294967295:member\n",
    )
    .unwrap();
    import(env, &t, "ids:1");
}

/// Refused by mrun (125, one line naming `needle`), and the command printed nothing: it
/// never ran, as root or otherwise.
fn refused_before_running(o: &Output, needle: &str, what: &str) {
    assert_refused(o, needle, what);
    assert_eq!(text(&o.stdout), "", "{what}: the command ran");
}

#[test]
fn u_with_an_id_out_of_range_is_refused_and_never_runs_as_root() {
    let Some(env) = setup() else { return };
    hostile_ids_image(&env);
    for (user, needle) in [
        // Old code: uid=0 with CapEff 00000000a80425fb (root, Docker's default set).
        (MAX_PLUS_ONE, "uid 4294967295 is out of range"),
        // Old code: uid=65534 gid=0.
        ("65534:4294967295", "gid 4294967295 is out of range"),
        ("4294967295:4294967295", "uid 4294967295 is out of range"),
        ("99999999999", "uid 99999999999 is out of range"),
        ("nobody:4294967295", "gid 4294967295 is out of range"),
    ] {
        let o = mrun(
            &env,
            &["-u", user, "ids:1", "sh", "-c", "/probe ids; /probe caps"],
        );
        refused_before_running(&o, needle, &format!("-u {user}"));
    }
    // The same ids through the image's /etc/passwd and /etc/group.
    for (user, needle) in [
        // Old code: uid=0, root's capabilities.
        (
            "bad",
            "user \"bad\": uid 4294967295 in /etc/passwd is out of range",
        ),
        // Old code: gid=0.
        (
            "badgid",
            "user \"badgid\": gid 4294967295 in /etc/passwd is out of range",
        ),
        (
            "nobody:evil",
            "group \"evil\": gid 4294967295 in /etc/group is out of range",
        ),
        // Old code: "set uid/gid: invalid argument" from setgroups(2), after the setup.
        (
            "member",
            "group \"evil\": gid 4294967295 in /etc/group is out of range",
        ),
    ] {
        let o = mrun(&env, &["-u", user, "ids:1", "/probe", "ids"]);
        refused_before_running(&o, needle, &format!("-u {user}"));
    }
    // The largest valid ids still work, and do not keep root's.
    let o = mrun(
        &env,
        &[
            "-u",
            "4294967294:4294967294",
            "ids:1",
            "sh",
            "-c",
            "/probe ids; /probe caps",
        ],
    );
    let out = ok("-u 4294967294:4294967294", &o);
    assert!(lines(&out).contains(&"uid=4294967294"), "{out}");
    assert!(lines(&out).contains(&"gid=4294967294"), "{out}");
    assert!(lines(&out).contains(&"CapEff: 0000000000000000"), "{out}");
    assert_nothing_left_in(&env);
}

/// No container directory remains in the store (every run above used --rm or was refused
/// before one was made).
fn assert_nothing_left_in(env: &Env) {
    let left: Vec<_> = fs::read_dir(env.root.join("containers"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn exec_u_with_an_id_out_of_range_is_refused() {
    let Some(env) = setup() else { return };
    hostile_ids_image(&env);
    let name = unique("ids-exec");
    let d = Detached::start(&env, Path::new(MRUN), &name, &["ids:1", "sleep", "600"]);
    for (user, needle) in [
        // Old code: uid=0 in the container, root's capabilities.
        (MAX_PLUS_ONE, "uid 4294967295 is out of range"),
        ("65534:4294967295", "gid 4294967295 is out of range"),
        (
            "bad",
            "user \"bad\": uid 4294967295 in /etc/passwd is out of range",
        ),
    ] {
        let o = d.exec(Path::new(MRUN), &["-u", user], &["/probe", "ids"]);
        // `mrun exec` answers a bad option with 1, as Docker's CLI does.
        assert_eq!(code(&o), 1, "exec -u {user}: {}", text(&o.stderr));
        let line = assert_one_line_error(&o, needle);
        assert!(line.starts_with("mrun: "), "{line}");
        assert_eq!(text(&o.stdout), "", "exec -u {user}: the command ran");
    }
    let o = d.exec(Path::new(MRUN), &["-u", "65534"], &["/probe", "ids"]);
    assert!(lines(&ok("exec -u 65534", &o)).contains(&"uid=65534"));
}

/// `mbuild save`'s docker-archive of `from`, with the config's User set to `user`, loaded
/// back as `tag`: an image made elsewhere (or by an older mbuild) whose USER is out of range.
fn image_with_user(env: &Env, from: &str, user: &str, tag: &str) {
    let saved = env.path("saved.tar");
    env.ok(["save", from, "-o", s(&saved)]);
    let dir = env.path("archive");
    fs::create_dir_all(&dir).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&saved)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let mut manifest = json(&fs::read_to_string(dir.join("manifest.json")).unwrap());
    let config_path = manifest[0]["Config"].as_str().unwrap().to_string();
    let mut config = json(&fs::read_to_string(dir.join(&config_path)).unwrap());
    config["config"]["User"] = serde_json::Value::String(user.into());
    fs::write(dir.join("edited.json"), config.to_string()).unwrap();
    manifest[0]["Config"] = "edited.json".into();
    manifest[0]["RepoTags"] = serde_json::json!([tag]);
    fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    // Loaded as a docker-archive, the form that names its config file freely.
    fs::remove_file(dir.join("index.json")).unwrap();
    env.ok(["load", "-i", s(&dir)]);
}

#[test]
fn an_image_whose_user_is_out_of_range_never_runs_as_root() {
    let Some(env) = setup() else { return };
    image_with_user(&env, IMG, MAX_PLUS_ONE, "evil:1");
    // Old code: uid=0 and root's capabilities.
    let o = mrun(&env, &["evil:1", "sh", "-c", "/probe ids; /probe caps"]);
    refused_before_running(&o, "uid 4294967295 is out of range", "image User");
    // -u overrides the image's, as in Docker.
    let o = mrun(&env, &["-u", "0", "evil:1", "/probe", "ids"]);
    assert!(lines(&ok("-u 0 over the image's", &o)).contains(&"uid=0"));
    assert_nothing_left_in(&env);
}

/// The build's one error line, with its exit code 1.
fn build_error(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout {}\nstderr {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let err = text(&o.stderr);
    let errs: Vec<&str> = err.lines().filter(|l| l.starts_with("mbuild: ")).collect();
    assert_eq!(errs.len(), 1, "{err}");
    errs[0].to_string()
}

#[test]
fn minifile_user_and_chown_out_of_range_are_errors_naming_their_line() {
    let Some(env) = setup() else { return };
    hostile_ids_image(&env);
    let limit = Duration::from_secs(120);
    for (n, (minifile, needle)) in [
        // Old code: built; its RUN printed uid=0.
        (
            "FROM ids:1\nUSER 4294967295\nRUN /probe ids\n",
            ":2: USER 4294967295: invalid user \"4294967295\": uid 4294967295 is out of range",
        ),
        // Old code: built, the image runs as root (as the test above shows).
        (
            "FROM ids:1\nUSER 4294967295\n",
            ":2: USER 4294967295: invalid user \"4294967295\": uid 4294967295 is out of range",
        ),
        (
            "FROM ids:1\nARG G=4294967295\nUSER 65534:${G}\nCMD [\"/probe\", \"ids\"]\n",
            ":3: USER 65534:${G}: invalid user \"65534:4294967295\": gid 4294967295 is out of range",
        ),
        // A name is resolved when a RUN runs under it; the error names the USER line.
        (
            "FROM ids:1\nUSER bad\nRUN /probe ids\n",
            ":2: USER bad: user \"bad\": uid 4294967295 in /etc/passwd is out of range",
        ),
        // Old code: the file was owned by root (chown(2) with -1 changes nothing).
        (
            "FROM ids:1\nCOPY --chown=4294967295 f /f\nRUN /probe ids\n",
            ":2: COPY --chown=4294967295 f /f: invalid user \"4294967295\": uid 4294967295 is out of range",
        ),
        (
            "FROM ids:1\nCOPY --chown=nobody:evil f /f\n",
            ":2: COPY --chown=nobody:evil f /f: group \"evil\": gid 4294967295 in /etc/group is out of range",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let ctx = context(&env, &format!("ctx{n}"), minifile, &[("f", "data\n")]);
        let tag = format!("built:{n}");
        let o = build(&env, &tag, &ctx, limit);
        let line = build_error(&o);
        assert!(line.contains(needle), "{minifile:?}: {line}");
        assert!(
            !text(&o.stdout).contains("uid=0"),
            "{minifile:?}: a step ran as root: {}",
            text(&o.stdout)
        );
        let images = env.ok(["images"]);
        assert!(!images.contains("built"), "{minifile:?}: tagged: {images}");
    }
}

#[test]
fn rootless_ids_must_be_in_range_and_fit_the_user_namespace() {
    let env = Env::new();
    let Some(u) = crate::run::User::setup(&env) else {
        return;
    };
    // Old code: uid=0 in the user namespace with Docker's capabilities.
    let o = u.mrun(&["-u", MAX_PLUS_ONE, IMG, "/probe", "ids"]);
    refused_before_running(
        &o,
        "uid 4294967295 is out of range",
        "rootless -u 4294967295",
    );
    // One id (0) mapped, or 0 plus the user's subordinate range: 70000 is beyond either
    // (scripts/ci-user gives 65536). Old code: "set uid/gid: invalid argument".
    let o = u.mrun(&["-u", "70000:0", IMG, "/probe", "ids"]);
    refused_before_running(
        &o,
        "uid 70000 is not mapped in the container's user namespace",
        "rootless -u 70000",
    );
    let o = u.mrun(&["-u", "0:70000", IMG, "/probe", "ids"]);
    refused_before_running(
        &o,
        "gid 70000 is not mapped in the container's user namespace",
        "rootless -u 0:70000",
    );
}
