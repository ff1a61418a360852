//! Pull and push against a real registry (Debian's docker-registry, see registry_server),
//! in three flavours — plain HTTP, htpasswd basic auth, TLS with a CA made by the test —
//! checked against skopeo and podman: what mbuild pushes they pull with the same digest and
//! it runs; what skopeo pushes (a two-platform index included) mbuild pulls and mrun runs,
//! by tag, by digest and by platform; wrong credentials are one line; a blob the registry
//! has is never sent again (the registry's own access log says so); a connection cut in
//! the middle leaves no blob and the next try works.

use crate::common::*;
use crate::registry_server::{CuttingProxy, Flavour, Registry, PASSWORD, USER};
use crate::run::{image_tree, is_root_and_busybox, run_cmd, IMG};
use sha2::Digest as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A store (with the probe image as probe:1 when asked) and the registry it talks to; the
/// tools run with HOME and REGISTRY_AUTH_FILE in the test's dir, so credentials and certs.d
/// are the test's own.
struct Ctx {
    env: Env,
    reg: Registry,
}

impl Ctx {
    fn new(flavour: Flavour) -> Option<Ctx> {
        if !is_root_and_busybox() {
            return None;
        }
        let reg = Registry::start(flavour)?;
        let env = Env::new();
        let tree = env.path("image");
        image_tree(&tree);
        env.ok(["import", tree.to_str().unwrap(), "-t", IMG]);
        let ctx = Ctx { env, reg };
        if flavour == Flavour::Tls {
            // podman's and Docker's per-user certs.d: $HOME/.config/containers/certs.d/HOST/.
            let d = ctx
                .home()
                .join(".config/containers/certs.d")
                .join(&ctx.reg.host);
            fs::create_dir_all(&d).unwrap();
            fs::copy(ctx.reg.ca(), d.join("ca.crt")).unwrap();
        }
        Some(ctx)
    }

    fn home(&self) -> PathBuf {
        self.env.path("home")
    }

    fn auth_file(&self) -> PathBuf {
        self.env.path("auth.json")
    }

    fn with_env(&self, c: &mut Command) {
        c.env("HOME", self.home())
            .env("REGISTRY_AUTH_FILE", self.auth_file())
            .env_remove("SSL_CERT_FILE")
            .env_remove("CONTAINERS_REGISTRIES_CONF");
    }

    /// mbuild on `store` (the test's own, or another) with the test's HOME.
    fn mbuild_on(&self, root: &Path, args: &[&str]) -> Output {
        let mut c = Command::new(MBUILD);
        c.arg("--root").arg(root).args(args);
        c.env_remove("MINIBOX_ROOT")
            .stdin(std::process::Stdio::null());
        self.with_env(&mut c);
        c.output().unwrap()
    }

    fn mbuild(&self, args: &[&str]) -> Output {
        self.mbuild_on(&self.env.root, args)
    }

    fn ok_on(&self, root: &Path, args: &[&str]) -> String {
        let o = self.mbuild_on(root, args);
        assert!(
            o.status.success(),
            "mbuild {args:?}: {}\n{}",
            o.status,
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_on(&self.env.root, args)
    }

    fn mrun_on(&self, root: &Path, args: &[&str]) -> Output {
        let mut c = Command::new(MRUN);
        c.arg("--root").arg(root).arg("--rm").args(args);
        c.env_remove("MINIBOX_ROOT")
            .stdin(std::process::Stdio::null());
        self.with_env(&mut c);
        run_cmd(c)
    }

    fn login(&self) {
        if matches!(self.reg.flavour, Flavour::Basic | Flavour::Token) {
            let o = self.mbuild(&["login", "-u", USER, "-p", PASSWORD, &self.reg.host]);
            assert_eq!(text(&o.stdout), "Login Succeeded\n", "{}", text(&o.stderr));
            assert_eq!(
                text(&o.stderr),
                "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n"
            );
        }
    }

    /// A tool (skopeo, podman) with this registry's TLS and credential flags after `args`.
    fn skopeo(&self, sub: &str, args: &[&str]) -> String {
        let mut c = Command::new("skopeo");
        c.arg(sub);
        let flags = self.reg.tool_tls_args();
        let creds = self.reg.creds_args();
        match sub {
            "copy" => {
                for f in flags.iter().chain(&creds) {
                    // skopeo copy takes --src-/--dest- flags.
                    let f = f.trim_start_matches("--");
                    c.arg(format!("--src-{f}")).arg(format!("--dest-{f}"));
                }
            }
            _ => {
                c.args(&flags).args(&creds);
            }
        }
        c.args(args);
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "skopeo {sub} {args:?}: {}",
            text(&o.stderr)
        );
        text(&o.stdout)
    }
}

fn digest_of(env_or_root: &Ctx, root: &Path, name: &str) -> String {
    json(&env_or_root.ok_on(root, &["inspect", name]))[0]["Digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sha256(b: &[u8]) -> String {
    let h = sha2::Sha256::digest(b);
    format!(
        "sha256:{}",
        h.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn stderr_lines(o: &Output) -> Vec<String> {
    text(&o.stderr).lines().map(String::from).collect()
}

// ---------------------------------------------------------------------------------------
// mbuild push -> skopeo/podman pull -> run

fn push_then_others_pull(flavour: Flavour, with_podman: bool) {
    let Some(ctx) = Ctx::new(flavour) else { return };
    ctx.login();
    let dest = format!("{}/team/probe:1", ctx.reg.host);
    let o = ctx.mbuild(&["push", IMG, &dest]);
    assert!(o.status.success(), "push: {}", text(&o.stderr));
    // Plain progress lines (stderr is not a terminal): no escape codes.
    assert!(!text(&o.stderr).contains('\x1b'), "{:?}", text(&o.stderr));
    assert!(text(&o.stderr).contains(": pushed "), "{}", text(&o.stderr));
    let want = digest_of(&ctx, &ctx.env.root, IMG);

    // skopeo sees the same manifest digest, and what it copies out runs.
    let v = json(&ctx.skopeo("inspect", &[&format!("docker://{dest}")]));
    assert_eq!(v["Digest"], want.as_str());
    let layout = ctx.env.path("skopeo-layout");
    ctx.skopeo(
        "copy",
        &[
            &format!("docker://{dest}"),
            &format!("oci:{}:probe:1", layout.display()),
        ],
    );
    let other = ctx.env.path("other-store");
    ctx.ok_on(&other, &["load", "-i", layout.to_str().unwrap()]);
    assert_eq!(digest_of(&ctx, &other, "probe:1"), want);
    let o = ctx.mrun_on(&other, &["--net", "none", "probe:1", "/bin/echo", "ran"]);
    assert_eq!(text(&o.stdout), "ran\n", "{}", text(&o.stderr));

    if flavour == Flavour::Tls {
        // Without the CA the certificate is refused in one line (no fall back to plain HTTP:
        // the registry speaks TLS); `--cert-dir` gives the CA instead of certs.d.
        fs::remove_dir_all(ctx.home().join(".config/containers/certs.d")).unwrap();
        let fresh = ctx.env.path("no-ca-store");
        let o = ctx.mbuild_on(&fresh, &["pull", &dest]);
        assert_eq!(o.status.code(), Some(1));
        let line = assert_one_line_error(&o, &format!("mbuild: pull {dest}: 127.0.0.1:"));
        assert!(line.to_lowercase().contains("certificate"), "{line}");
        let dir = ctx.reg.cert_dir();
        ctx.ok_on(
            &fresh,
            &["pull", "--cert-dir", dir.to_str().unwrap(), &dest],
        );
        assert_eq!(digest_of(&ctx, &fresh, &dest), want);
    }

    if with_podman {
        if skip_unless(have("podman"), "podman is not installed") {
            return;
        }
        let podman = crate::interop::Podman::new();
        let mut args = vec!["pull".to_string()];
        args.extend(ctx.reg.tool_tls_args());
        args.extend(ctx.reg.creds_args());
        args.push(dest.clone());
        podman.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let got = podman.run(&["image", "inspect", "--format", "{{.Digest}}", &dest]);
        assert_eq!(got.trim(), want);
        let out = podman.run(&[
            "run",
            "--rm",
            "--network",
            "none",
            &dest,
            "/bin/echo",
            "podman ran it",
        ]);
        assert_eq!(out, "podman ran it\n");
    }
}

#[test]
fn plain_http_mbuild_push_skopeo_and_podman_pull_and_run() {
    push_then_others_pull(Flavour::Plain, true);
}

#[test]
fn basic_auth_mbuild_push_skopeo_pull_and_run() {
    push_then_others_pull(Flavour::Basic, false);
}

#[test]
fn tls_mbuild_push_skopeo_pull_and_run() {
    push_then_others_pull(Flavour::Tls, false);
}

#[test]
fn bearer_token_mbuild_push_skopeo_pull_and_run() {
    push_then_others_pull(Flavour::Token, false);
}

/// A registry that hands out Bearer tokens, as Docker Hub does: anonymous pulls work with
/// an anonymous token; a push needs a login; the token is asked for the operation's scope.
#[test]
fn bearer_tokens_anonymous_pull_and_push_after_login() {
    let Some(ctx) = Ctx::new(Flavour::Token) else {
        return;
    };
    let host = ctx.reg.host.clone();
    let name = format!("{host}/team/probe:1");
    let layout = ctx.env.path("layout");
    ctx.ok(&["save", "-o", layout.to_str().unwrap(), IMG]);
    ctx.skopeo(
        "copy",
        &[
            &format!("docker-archive:{}", layout.display()),
            &format!("docker://{name}"),
        ],
    );
    let fresh = ctx.env.path("fresh");
    let o = ctx.mrun_on(&fresh, &["--net", "none", &name, "/bin/echo", "anonymous"]);
    assert_eq!(text(&o.stdout), "anonymous\n", "{}", text(&o.stderr));
    let asked = ctx.reg.token_requests.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .any(|q| q.contains("scope=repository:team/probe:pull") && !q.contains("account=")),
        "{asked:?}"
    );

    let o = ctx.mbuild(&["push", IMG, &format!("{host}/team/other:1")]);
    assert_eq!(o.status.code(), Some(1));
    let line = assert_one_line_error(&o, &format!("mbuild: push {host}/team/other:1: "));
    assert!(
        line.ends_with(&format!("(run mbuild login {host})")),
        "{line}"
    );

    let o = login_stdin(&ctx, "wrong");
    assert_one_line_error(
        &o,
        &format!("mbuild: login {host}: unauthorized: incorrect username or password"),
    );
    ctx.login();
    ctx.ok(&["push", IMG, &format!("{host}/team/other:1")]);
    let asked = ctx.reg.token_requests.lock().unwrap().clone();
    assert!(
        asked.iter().any(|q| q.contains(&format!("account={USER}"))
            && q.contains("scope=repository:team/other:pull,push")),
        "{asked:?}"
    );
}

// ---------------------------------------------------------------------------------------
// skopeo push (a two-platform index) -> mbuild pull / mrun, by tag, platform and digest

/// An OCI layout at `dir` holding one index `multi` of two images of the probe's layers:
/// linux/amd64 with PLATFORM=amd64, and linux/arm64 with PLATFORM=arm64 (the same amd64
/// binaries: only the config says arm64, so it still runs here, with a warning).
fn two_platform_layout(ctx: &Ctx, dir: &Path) -> String {
    let v = json(&ctx.ok(&["inspect", IMG]));
    let manifest = &v[0]["Manifest"];
    let config = &v[0]["Config"];
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = sha256(bytes);
        fs::write(blobs.join(&d[7..]), bytes).unwrap();
        (d, bytes.len())
    };
    for l in manifest["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        fs::copy(
            ctx.env.root.join("oci/blobs/sha256").join(&d[7..]),
            blobs.join(&d[7..]),
        )
        .unwrap();
    }
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let mut c = config.clone();
        c["architecture"] = arch.into();
        let mut env = c["config"]["Env"].as_array().cloned().unwrap_or_default();
        env.push(format!("PLATFORM={arch}").into());
        c["config"]["Env"] = env.into();
        let (cd, cs) = put(&serde_json::to_vec(&c).unwrap());
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": manifest["layers"],
        });
        let (md, ms) = put(&serde_json::to_vec(&m).unwrap());
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms,
            "platform": {"os": "linux", "architecture": arch},
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let (id, is) = put(&serde_json::to_vec(&index).unwrap());
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": id, "size": is,
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    id
}

fn skopeo_push_then_mbuild_pull(flavour: Flavour) {
    let Some(ctx) = Ctx::new(flavour) else { return };
    ctx.login();
    let layout = ctx.env.path("multi-layout");
    let index_digest = two_platform_layout(&ctx, &layout);
    let name = format!("{}/multi:1", ctx.reg.host);
    ctx.skopeo(
        "copy",
        &[
            "--all",
            &format!("oci:{}:multi", layout.display()),
            &format!("docker://{name}"),
        ],
    );
    let raw = ctx.skopeo("inspect", &["--raw", &format!("docker://{name}")]);
    assert_eq!(
        sha256(raw.as_bytes()),
        index_digest,
        "skopeo kept the index as it is"
    );

    // A store without the image: mrun pulls it (this machine's platform) and runs it.
    let fresh = ctx.env.path("fresh-store");
    let echo = ["/bin/sh", "-c", "echo $PLATFORM"];
    let mut args = vec!["--net", "none", name.as_str()];
    args.extend(echo);
    let o = ctx.mrun_on(&fresh, &args);
    assert_eq!(text(&o.stdout), "amd64\n", "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("Unable to find image '{name}' locally")),
        "{err}"
    );
    assert!(!err.contains("WARNING"), "{err}");

    // --platform picks the other one; running it warns, as podman does.
    let out = ctx.ok_on(&fresh, &["pull", "--platform", "linux/arm64", &name]);
    assert_eq!(out.trim(), name);
    let o = ctx.mrun_on(&fresh, &args);
    assert_eq!(text(&o.stdout), "arm64\n", "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(
            "WARNING: image platform (linux/arm64) does not match the expected platform (linux/amd64)"
        ),
        "{}",
        text(&o.stderr)
    );

    // By digest: the index's digest names this machine's image, in the store afterwards.
    let by_digest = format!("{}/multi@{index_digest}", ctx.reg.host);
    ctx.ok_on(&fresh, &["pull", &by_digest]);
    let mut args = vec!["--net", "none", "--pull", "never", by_digest.as_str()];
    args.extend(echo);
    let o = ctx.mrun_on(&fresh, &args);
    assert_eq!(text(&o.stdout), "amd64\n", "{}", text(&o.stderr));
    let images = ctx.ok_on(&fresh, &["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.starts_with(&format!("{}/multi ", ctx.reg.host)) && l.contains("<none>")),
        "{images}"
    );

    // Docker's media types (schema 2 manifests in a manifest list) read the same way, and
    // a push sends the manifest back byte for byte.
    if flavour == Flavour::Plain {
        let docker = format!("{}/multi-docker:1", ctx.reg.host);
        ctx.skopeo(
            "copy",
            &[
                "--all",
                "--format",
                "v2s2",
                &format!("oci:{}:multi", layout.display()),
                &format!("docker://{docker}"),
            ],
        );
        let raw = json(&ctx.skopeo("inspect", &["--raw", &format!("docker://{docker}")]));
        assert_eq!(
            raw["mediaType"],
            "application/vnd.docker.distribution.manifest.list.v2+json"
        );
        let mut args = vec!["--net", "none", docker.as_str()];
        args.extend(echo);
        let o = ctx.mrun_on(&fresh, &args);
        assert_eq!(text(&o.stdout), "amd64\n", "{}", text(&o.stderr));
        let v = json(&ctx.ok_on(&fresh, &["inspect", &docker]));
        assert_eq!(
            v[0]["Manifest"]["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        let back = format!("{}/docker-back:1", ctx.reg.host);
        ctx.ok_on(&fresh, &["push", &docker, &back]);
        let got = json(&ctx.skopeo("inspect", &[&format!("docker://{back}")]));
        assert_eq!(got["Digest"], v[0]["Digest"]);
    }

    // FROM pulls a base the store lacks (and COPY --from an image by digest).
    let built = ctx.env.path("built-store");
    let ctxdir = ctx.env.path("from-ctx");
    fs::create_dir_all(&ctxdir).unwrap();
    fs::write(
        ctxdir.join("Minifile"),
        format!(
            "FROM {name}\nCOPY --from={by_digest} /etc/group /copied-group\n\
             RUN echo built-on-$PLATFORM > /built\nCMD [\"/bin/cat\", \"/built\"]\n"
        ),
    )
    .unwrap();
    let o = ctx.mbuild_on(&built, &["-t", "built:1", ctxdir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains(": pulled "), "{}", text(&o.stderr));
    let o = ctx.mrun_on(&built, &["--net", "none", "built:1"]);
    assert_eq!(text(&o.stdout), "built-on-amd64\n", "{}", text(&o.stderr));

    // --pull never with an image the store lacks: mrun's own failure, 125, one line.
    let o = ctx.mrun_on(
        &fresh,
        &["--pull", "never", &format!("{}/absent:1", ctx.reg.host)],
    );
    assert_eq!(o.status.code(), Some(125));
    assert_one_line_error(&o, "no such image");
    // A tag the registry lacks: one line naming the registry and what failed.
    let o = ctx.mbuild_on(&fresh, &["pull", &format!("{}/multi:2", ctx.reg.host)]);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(
        &o,
        &format!("mbuild: pull {}/multi:2: manifest unknown", ctx.reg.host),
    );
}

#[test]
fn plain_http_skopeo_pushes_an_index_mbuild_pulls_and_mrun_runs() {
    skopeo_push_then_mbuild_pull(Flavour::Plain);
}

#[test]
fn basic_auth_skopeo_pushes_an_index_mbuild_pulls_and_mrun_runs() {
    skopeo_push_then_mbuild_pull(Flavour::Basic);
}

#[test]
fn tls_skopeo_pushes_an_index_mbuild_pulls_and_mrun_runs() {
    skopeo_push_then_mbuild_pull(Flavour::Tls);
}

// ---------------------------------------------------------------------------------------
// credentials

#[test]
fn wrong_password_and_missing_login_are_one_line_errors() {
    let Some(ctx) = Ctx::new(Flavour::Basic) else {
        return;
    };
    let host = ctx.reg.host.clone();
    let name = format!("{host}/probe:1");
    let o = ctx.mbuild(&["push", IMG, &name]);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(
        &o,
        &format!(
            "mbuild: push {name}: unauthorized: authentication required (run mbuild login {host})"
        ),
    );

    let o = login_stdin(&ctx, "wrong");
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(
        &o,
        &format!("mbuild: login {host}: unauthorized: incorrect username or password"),
    );
    assert!(!ctx.auth_file().exists(), "a failed login saved nothing");

    // The right password, from stdin: saved 0600 in the auth file, in Docker's shape.
    let o = login_stdin(&ctx, PASSWORD);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "Login Succeeded\n");
    let mode = fs::metadata(ctx.auth_file()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let v = json(&fs::read_to_string(ctx.auth_file()).unwrap());
    use base64_check::b64;
    assert_eq!(
        v["auths"][&host]["auth"],
        b64(&format!("{USER}:{PASSWORD}"))
    );
    ctx.ok(&["push", IMG, &name]);

    // skopeo reads the same file.
    let o = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--authfile"])
        .arg(ctx.auth_file())
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));

    // A stale password in the file: pull and mrun fail in one line each (mrun with 125).
    fs::write(
        ctx.auth_file(),
        format!(
            r#"{{"auths":{{"{host}":{{"auth":"{}"}}}}}}"#,
            b64(&format!("{USER}:old"))
        ),
    )
    .unwrap();
    let fresh = ctx.env.path("fresh");
    let o = ctx.mbuild_on(&fresh, &["pull", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(
        &o,
        &format!("mbuild: pull {name}: unauthorized: incorrect username or password (run mbuild login {host})"),
    );
    let o = ctx.mrun_on(&fresh, &["--net", "none", &name, "/bin/true"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o.stderr));
    let lines = stderr_lines(&o);
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with(&format!("mrun: pull {name}: unauthorized"))),
        "{lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("mrun:")).count(),
        1,
        "{lines:?}"
    );

    assert_eq!(
        ctx.ok(&["logout", &host]).trim(),
        format!("Removing login credentials for {host}")
    );
    let v = json(&fs::read_to_string(ctx.auth_file()).unwrap());
    assert!(v["auths"].get(&host).is_none(), "{v}");
    assert_eq!(
        ctx.ok(&["logout", &host]).trim(),
        format!("Not logged in to {host}")
    );
}

/// `mbuild login -u USER --password-stdin HOST`, the password written to its stdin.
fn login_stdin(ctx: &Ctx, password: &str) -> Output {
    let mut c = Command::new(MBUILD);
    c.args(["login", "-u", USER, "--password-stdin", &ctx.reg.host]);
    ctx.with_env(&mut c);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        format!("{password}\n").as_bytes(),
    )
    .unwrap();
    child.wait_with_output().unwrap()
}

/// Base64 for the expected auth-file values, written out here so the test does not use the
/// code it checks.
mod base64_check {
    pub fn b64(s: &str) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = s.as_bytes();
        let mut o = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    o.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    o.push('=');
                }
            }
        }
        o
    }
}

// ---------------------------------------------------------------------------------------
// no blob twice

/// Lines of the access log that upload (PUT/PATCH) blob `digest`.
fn uploads_of(log: &str, digest: &str) -> usize {
    let enc = digest.replace(':', "%3A");
    log.lines()
        .filter(|l| {
            (l.contains("\"PUT ") || l.contains("\"PATCH "))
                && l.contains("/blobs/uploads/")
                && (l.contains(&enc) || l.contains(digest))
        })
        .count()
}

#[test]
fn a_blob_the_registry_has_is_not_uploaded_again_and_is_mounted_across_repositories() {
    let Some(ctx) = Ctx::new(Flavour::Plain) else {
        return;
    };
    let host = ctx.reg.host.clone();
    let layer = json(&ctx.ok(&["inspect", IMG]))[0]["Manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    ctx.ok(&["push", IMG, &format!("{host}/first:1")]);
    assert_eq!(uploads_of(&ctx.reg.log(), &layer), 1, "{}", ctx.reg.log());
    let o = ctx.mbuild(&["push", IMG, &format!("{host}/first:1")]);
    assert!(
        text(&o.stderr).contains("already exists"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        uploads_of(&ctx.reg.log(), &layer),
        1,
        "second push of the same image"
    );

    // An image on the same base, to another repository: the base is mounted, not sent.
    let ctxdir = ctx.env.path("ctx");
    fs::create_dir_all(&ctxdir).unwrap();
    fs::write(ctxdir.join("extra"), "more").unwrap();
    fs::write(
        ctxdir.join("Minifile"),
        format!("FROM {IMG}\nCOPY extra /extra\n"),
    )
    .unwrap();
    ctx.ok(&["-q", "-t", "derived:1", ctxdir.to_str().unwrap()]);
    let o = ctx.mbuild(&["push", "derived:1", &format!("{host}/second:1")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("mounted from first"),
        "{}",
        text(&o.stderr)
    );
    let log = ctx.reg.log();
    assert_eq!(
        uploads_of(&log, &layer),
        1,
        "pushing a derived image\n{log}"
    );
    let enc = layer.replace(':', "%3A");
    assert!(
        log.lines()
            .any(|l| l.contains("\"POST /v2/second/blobs/uploads/?")
                && l.contains(&format!("mount={enc}"))
                && l.contains("from=first")),
        "no mount POST in the log:\n{log}"
    );
    // The registry serves it whole under the new name.
    let v = json(&ctx.skopeo("inspect", &[&format!("docker://{host}/second:1")]));
    assert_eq!(v["Layers"][0], layer.as_str());
}

// ---------------------------------------------------------------------------------------
// a dropped connection

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_connection_cut_mid_layer_leaves_no_blob_and_a_retry_works() {
    let Some(ctx) = Ctx::new(Flavour::Plain) else {
        return;
    };
    // An image with an 8 MB layer of incompressible bytes.
    let tree = ctx.env.path("big");
    image_tree(&tree);
    let mut junk = vec![0u8; 8 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in junk.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    fs::write(tree.join("junk"), &junk).unwrap();
    ctx.ok(&["import", tree.to_str().unwrap(), "-t", "big:1"]);
    ctx.ok(&["push", "big:1", &format!("{}/big:1", ctx.reg.host)]);
    let layer = json(&ctx.ok(&["inspect", "big:1"]))[0]["Manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    let proxy = CuttingProxy::start(&ctx.reg.host, 2 << 20);
    let name = format!("{}/big:1", proxy.host);
    let fresh = ctx.env.path("fresh");
    let o = ctx.mbuild_on(&fresh, &["pull", &name]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(proxy.cuts.load(std::sync::atomic::Ordering::Relaxed), 1);
    let line = stderr_lines(&o).last().cloned().unwrap_or_default();
    assert!(
        line.starts_with(&format!("mbuild: pull {name}: blob {}", &layer[7..19])),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        stderr_lines(&o)
            .iter()
            .filter(|l| l.starts_with("mbuild:"))
            .count(),
        1
    );
    // No half blob, under the layer's name or any other: what the store holds is at most
    // the (small, whole) config.
    let config = json(&ctx.ok(&["inspect", "big:1"]))[0]["Manifest"]["config"]["digest"]
        .as_str()
        .unwrap()[7..]
        .to_string();
    for f in files_under(&fresh.join("blobs")) {
        assert_eq!(
            f.file_name().unwrap().to_str(),
            Some(config.as_str()),
            "a half blob"
        );
    }
    assert_eq!(
        files_under(&fresh.join("tmp")),
        Vec::<PathBuf>::new(),
        "left in tmp/"
    );
    assert!(
        ctx.ok_on(&fresh, &["images", "-q"]).is_empty(),
        "tagged after a failure"
    );

    // The proxy passes the next connection whole: the same command now works.
    ctx.ok_on(&fresh, &["pull", &name]);
    assert!(fresh.join("oci/blobs/sha256").join(&layer[7..]).exists());
    let o = ctx.mrun_on(&fresh, &["--net", "none", &name, "/bin/wc", "-c", "/junk"]);
    assert_eq!(
        text(&o.stdout).split_whitespace().next(),
        Some("8388608"),
        "{}",
        text(&o.stderr)
    );
    proxy.disarm();
}

// ---------------------------------------------------------------------------------------
// Docker Hub names, unreachable here

#[test]
fn from_ubuntu_attempts_docker_hub_and_names_it_in_one_line() {
    let env = Env::new();
    let ctxdir = env.path("ctx");
    fs::create_dir_all(&ctxdir).unwrap();
    fs::write(ctxdir.join("Minifile"), "FROM ubuntu:22.04\nRUN true\n").unwrap();
    let o = env
        .mbuild_cmd(["-q", "-t", "u", ctxdir.to_str().unwrap()])
        .env("HOME", env.path("home"))
        .env("REGISTRY_AUTH_FILE", env.path("auth.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let line = assert_one_line_error(
        &o,
        "FROM ubuntu:22.04: pull docker.io/library/ubuntu:22.04: ",
    );
    assert!(line.starts_with("mbuild: "), "{line}");
    assert!(
        line.contains("registry-1.docker.io") || line.contains("docker.io"),
        "{line}"
    );
    assert!(env.ok(["images", "-q"]).is_empty());
}

// ---------------------------------------------------------------------------------------
// progress on a terminal

#[test]
fn progress_on_a_terminal_is_one_row_per_blob_redrawn_in_place() {
    let Some(ctx) = Ctx::new(Flavour::Plain) else {
        return;
    };
    if skip_unless(
        have("tmux"),
        "tmux is not installed (scripts/install-deps installs it)",
    ) {
        return;
    }
    let name = format!("{}/probe:1", ctx.reg.host);
    ctx.ok(&["push", IMG, &name]);
    let v = json(&ctx.ok(&["inspect", IMG]));
    let layer = v[0]["Manifest"]["layers"][0]["digest"].as_str().unwrap()[7..19].to_string();
    let config = v[0]["Manifest"]["config"]["digest"].as_str().unwrap()[7..19].to_string();
    let tmux = crate::lifecycle::Tmux {
        socket: format!("minibox-e2e-reg-{}", std::process::id()),
    };
    let st = tmux
        .cmd()
        .args(["new-session", "-d", "-s", "t", "-x", "120", "-y", "30"])
        .arg("env PS1='host$ ' sh")
        .status()
        .unwrap();
    assert!(st.success());
    tmux.wait_for("host$");
    // The raw bytes the pane receives, escape codes and all.
    let raw = ctx.env.path("pane.raw");
    let st = tmux
        .cmd()
        .args(["pipe-pane", "-t", "t", "-o"])
        .arg(format!("cat >> {}", raw.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let cmd = format!(
        "HOME={} REGISTRY_AUTH_FILE={} {MBUILD} --root {} pull {name} 2>&1; echo PULL-$((40+2))",
        ctx.home().display(),
        ctx.auth_file().display(),
        ctx.env.path("fresh").display()
    );
    tmux.send(&[&cmd, "Enter"]);
    let screen = tmux.wait_for("PULL-42");
    // Each blob's row was drawn when it started and again when it ended: in place, so it
    // shows once, in its final state.
    for id in [&layer, &config] {
        let rows: Vec<&str> = screen
            .lines()
            .filter(|l| l.starts_with(id.as_str()))
            .collect();
        assert_eq!(rows.len(), 1, "{id}:\n{screen}");
        assert!(rows[0].starts_with(&format!("{id}: pulled ")), "{screen}");
        assert!(rows[0].ends_with("/s)"), "{screen}");
    }
    assert!(screen.contains("Digest: sha256:"), "{screen}");
    // Drawn with cursor movements: up over the rows, clear each line, write it again.
    let bytes = fs::read(&raw).unwrap();
    let raw = String::from_utf8_lossy(&bytes);
    assert!(
        raw.contains("\x1b[2K") && raw.contains("A\x1b[2K"),
        "{raw:?}"
    );
    assert!(raw.matches(&format!("{layer}: ")).count() >= 2, "{raw:?}");
}

// ---------------------------------------------------------------------------------------
// zstd layers

#[test]
fn a_zstd_layer_is_refused_in_one_line_naming_it() {
    let Some(ctx) = Ctx::new(Flavour::Plain) else {
        return;
    };
    // An OCI layout with one image whose only layer is zstd (a frame of one raw block
    // holding an empty tar: 1024 zero bytes).
    let dir = ctx.env.path("zstd-layout");
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = sha256(bytes);
        fs::write(blobs.join(&d[7..]), bytes).unwrap();
        (d, bytes.len())
    };
    // Magic, then a frame header: single segment with a 2-byte content size (stored as
    // size - 256, RFC 8878 3.1.1.1.4), then one block.
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x60];
    frame.extend(((1024 - 256) as u16).to_le_bytes());
    let block_header: u32 = 1 | (1024 << 3); // last block, raw, 1024 bytes
    frame.extend(&block_header.to_le_bytes()[..3]);
    frame.extend([0u8; 1024]);
    let (ld, ls) = put(&frame);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&[0u8; 1024])]},
    });
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": ld, "size": ls}],
    });
    let (md, ms) = put(&serde_json::to_vec(&m).unwrap());
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": "z"}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let name = format!("{}/zstd:1", ctx.reg.host);
    ctx.skopeo(
        "copy",
        &[
            &format!("oci:{}:z", dir.display()),
            &format!("docker://{name}"),
        ],
    );
    let fresh = ctx.env.path("fresh");
    let o = ctx.mbuild_on(&fresh, &["pull", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(
        &o,
        &format!("mbuild: pull {name}: layer {ld}: zstd-compressed layers are not supported yet"),
    );
    assert!(ctx.ok_on(&fresh, &["images", "-q"]).is_empty());
    assert_eq!(files_under(&fresh.join("blobs")), Vec::<PathBuf>::new());
}
