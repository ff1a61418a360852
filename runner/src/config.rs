//! From an image's config and the command line to the process to run, with Docker's rules:
//! Entrypoint + Cmd and their overrides, Env with `-e`/`--env-file`, WorkingDir, and User
//! resolved against the image's own /etc/passwd and /etc/group, read from the layer
//! directories through `layers::union` (never following a symlink, so an image cannot make
//! mrun read a host file).

use crate::error::{Error, IoContext, Result};
use crate::spec::Process;
use layers::oci_spec::image::Config;
use std::fs;
use std::path::PathBuf;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the command line says about the process.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--entrypoint`: Some("") clears the image's.
    pub entrypoint: Option<String>,
    /// COMMAND [ARG...]
    pub command: Vec<String>,
    /// `-e KEY=VAL` or `-e KEY` (the host's value, dropped when the host has none).
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

/// The process for `config` (the image's) with `o` applied. `layers` are bottom first.
pub fn process(
    config: Option<&Config>,
    layers: &[PathBuf],
    hostname: &str,
    o: &Overrides,
) -> Result<Process> {
    let image_entry = config
        .and_then(|c| c.entrypoint().clone())
        .unwrap_or_default();
    let image_cmd = config.and_then(|c| c.cmd().clone()).unwrap_or_default();
    let (entry, cmd) = match &o.entrypoint {
        Some(e) if e.is_empty() => (vec![], o.command.clone()),
        Some(e) => (vec![e.clone()], o.command.clone()),
        None if o.command.is_empty() => (image_entry, image_cmd),
        None => (image_entry, o.command.clone()),
    };
    let args: Vec<String> = entry.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::invalid(
            "no command specified: the image has no Entrypoint or Cmd, give one",
        ));
    }

    let mut env: Vec<String> = vec![format!("HOSTNAME={hostname}")];
    let mut set = |kv: String| {
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    };
    for kv in config.and_then(|c| c.env().clone()).unwrap_or_default() {
        set(kv);
    }
    for f in &o.env_files {
        for (n, line) in fs::read_to_string(f)
            .ctx("read env file", f)?
            .lines()
            .enumerate()
        {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match env_entry(line) {
                Some(kv) => set(kv),
                None if line.contains('=') => {
                    return Err(Error::invalid(format!(
                        "{}:{}: invalid variable name",
                        f.display(),
                        n + 1
                    )))
                }
                None => {}
            }
        }
    }
    for e in &o.env {
        if e.starts_with('=') || e.is_empty() {
            return Err(Error::invalid(format!(
                "invalid environment variable: {e:?}"
            )));
        }
        if let Some(kv) = env_entry(e) {
            set(kv);
        }
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }

    let cwd = match o
        .workdir
        .as_deref()
        .or(config.and_then(|c| c.working_dir().as_deref()))
    {
        None | Some("") => "/".to_string(),
        Some(w) if w.starts_with('/') => w.to_string(),
        Some(w) => {
            return Err(Error::invalid(format!(
                "the working directory {w:?} is invalid, it needs to be an absolute path"
            )))
        }
    };

    let user = o
        .user
        .clone()
        .or_else(|| config.and_then(|c| c.user().clone()))
        .unwrap_or_default();
    let (uid, gid, groups, home) = resolve_user(&user, layers)?;
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    Ok(Process {
        args,
        env,
        cwd,
        uid,
        gid,
        groups,
    })
}

/// `KEY=VAL` as is; `KEY` takes the host's value or is dropped, as with `docker run -e`.
fn env_entry(e: &str) -> Option<String> {
    match e.split_once('=') {
        Some((k, _)) if !k.is_empty() && !k.contains(char::is_whitespace) => Some(e.to_string()),
        Some(_) => None,
        None => std::env::var(e).ok().map(|v| format!("{e}={v}")),
    }
}

/// `""`, `uid`, `uid:gid`, `name`, `name:group` -> (uid, gid, supplementary gids, home).
pub fn resolve_user(user: &str, layers: &[PathBuf]) -> Result<(u32, u32, Vec<u32>, String)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = layers::union::read_file(layers, "etc/passwd")?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let group = layers::union::read_file(layers, "etc/group")?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    // name:x:uid:gid:gecos:home:shell
    let pw: Vec<Vec<&str>> = passwd
        .iter()
        .flat_map(|p| p.lines())
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let gr: Vec<Vec<&str>> = group
        .iter()
        .flat_map(|p| p.lines())
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();

    let (uid, mut gid, name, home) = if u.is_empty() {
        let root = pw.iter().find(|f| f[2] == "0");
        (
            0,
            0,
            root.map(|f| f[0].to_string()),
            root.map_or("/root".to_string(), |f| f[5].to_string()),
        )
    } else if let Ok(n) = u.parse::<u32>() {
        let e = pw.iter().find(|f| f[2] == u);
        let gid = e.and_then(|f| f[3].parse().ok()).unwrap_or(0);
        (
            n,
            gid,
            e.map(|f| f[0].to_string()),
            e.map_or("/".to_string(), |f| f[5].to_string()),
        )
    } else {
        let e = pw.iter().find(|f| f[0] == u).ok_or_else(|| {
            Error::invalid(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        })?;
        let uid = e[2].parse().map_err(|_| {
            Error::invalid(format!("passwd entry for {u} has a bad uid {:?}", e[2]))
        })?;
        let gid = e[3].parse().unwrap_or(0);
        (uid, gid, Some(u.to_string()), e[5].to_string())
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => gr
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    let mut groups = Vec::new();
    if let (Some(name), None) = (&name, g) {
        for f in &gr {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if n != gid && !groups.contains(&n) {
                        groups.push(n);
                    }
                }
            }
        }
    }
    Ok((uid, gid, groups, home))
}

#[cfg(test)]
mod tests {
    use super::*;
    use layers::oci_spec::image::ConfigBuilder;

    fn layer_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let p = d.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, c).unwrap();
        }
        d
    }

    #[test]
    fn entrypoint_and_cmd_follow_docker() {
        let c = ConfigBuilder::default()
            .entrypoint(vec!["/bin/ep".to_string()])
            .cmd(vec!["default".to_string()])
            .env(vec!["A=1".to_string()])
            .build()
            .unwrap();
        let p = |o: Overrides| process(Some(&c), &[], "h", &o).unwrap().args;
        assert_eq!(p(Overrides::default()), ["/bin/ep", "default"]);
        assert_eq!(
            p(Overrides {
                command: vec!["x".into()],
                ..Default::default()
            }),
            ["/bin/ep", "x"]
        );
        assert_eq!(
            p(Overrides {
                entrypoint: Some("/bin/sh".into()),
                ..Default::default()
            }),
            ["/bin/sh"]
        );
        assert_eq!(
            p(Overrides {
                entrypoint: Some("".into()),
                command: vec!["ls".into()],
                ..Default::default()
            }),
            ["ls"]
        );
        let e = process(None, &[], "h", &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("no command specified"));
    }

    #[test]
    fn env_merges_in_docker_order() {
        let c = ConfigBuilder::default()
            .env(vec!["A=1".to_string(), "PATH=/x".to_string()])
            .build()
            .unwrap();
        std::env::set_var("MINIBOX_TEST_PASS", "through");
        let o = Overrides {
            command: vec!["true".into()],
            env: vec![
                "A=2".into(),
                "MINIBOX_TEST_PASS".into(),
                "MINIBOX_TEST_UNSET_XYZ".into(),
            ],
            ..Default::default()
        };
        let p = process(Some(&c), &[], "box", &o).unwrap();
        assert_eq!(p.env_value("A"), Some("2"));
        assert_eq!(p.env_value("PATH"), Some("/x"));
        assert_eq!(p.env_value("HOSTNAME"), Some("box"));
        assert_eq!(p.env_value("MINIBOX_TEST_PASS"), Some("through"));
        assert_eq!(p.env_value("MINIBOX_TEST_UNSET_XYZ"), None);
        assert_eq!(p.env_value("HOME"), Some("/root"));
        let rel = Overrides {
            workdir: Some("rel".into()),
            ..o
        };
        assert!(process(Some(&c), &[], "b", &rel)
            .unwrap_err()
            .to_string()
            .contains("absolute"));
    }

    #[test]
    fn users_resolve_in_the_image_and_whiteouts_hide_files() {
        let base = layer_with(&[
            (
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n",
            ),
            ("etc/group", "root:x:0:\napp:x:1001:\nwheel:x:10:app,root\n"),
        ]);
        let layers = vec![base.path().to_path_buf()];
        assert_eq!(
            resolve_user("app", &layers).unwrap(),
            (1000, 1001, vec![10], "/home/app".into())
        );
        assert_eq!(
            resolve_user("app:wheel", &layers).unwrap(),
            (1000, 10, vec![], "/home/app".into())
        );
        // An explicit group replaces the implicit membership, as in runc's GetExecUser.
        assert_eq!(
            resolve_user("1000:5", &layers).unwrap(),
            (1000, 5, vec![], "/home/app".into())
        );
        assert_eq!(
            resolve_user("4242", &layers).unwrap(),
            (4242, 0, vec![], "/".into())
        );
        let e = resolve_user("nobody", &layers).unwrap_err().to_string();
        assert!(e.contains("unable to find user nobody"), "{e}");

        // A higher layer replacing /etc/passwd with a symlink to the host's: refused.
        let evil = tempfile::tempdir().unwrap();
        fs::create_dir_all(evil.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", evil.path().join("etc/passwd")).unwrap();
        let e = resolve_user("app", &[base.path().into(), evil.path().into()]).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");

        // A newer layer's copy wins.
        let newer = layer_with(&[("etc/passwd", "root:x:0:0:root:/newroot:/bin/sh\n")]);
        assert_eq!(
            resolve_user("", &[base.path().into(), newer.path().into()])
                .unwrap()
                .3,
            "/newroot"
        );
    }
}
