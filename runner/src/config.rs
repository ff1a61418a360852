//! From an image's config and the command line to the process to run, with Docker's rules:
//! Entrypoint + Cmd and their overrides, Env with `-e`/`--env-file`, WorkingDir, and User
//! resolved against the image's own /etc/passwd and /etc/group, read from the layer
//! directories through `layers::union` (never following a symlink, so an image cannot make
//! mrun read a host file).

use crate::error::{Error, IoContext, Result};
use crate::spec::{IdMap, IdMaps, Process};
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

/// The highest uid or gid a process may take: (uid_t)-1 = 4294967295 means "leave
/// unchanged" to setresuid(2), setresgid(2) and chown(2), so a user 4294967295 would stay
/// root (runc and the moby user package refuse it too, with a narrower range).
pub const MAX_ID: u32 = u32::MAX - 1;

/// A uid or gid written as a number: Some(id) when in range, an error when out of it, None
/// when `s` is not all digits (then it is a name). `what` is "uid" or "gid".
fn numeric_id(s: &str, what: &str) -> std::result::Result<Option<u32>, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_ID as u64 => Ok(Some(n as u32)),
        _ => Err(format!("{what} {s} is out of range (0 to {MAX_ID})")),
    }
}

/// A numeric field of the image's /etc/passwd (`kind` "user") or /etc/group ("group"):
/// in range, or an error naming the entry. A field that is no number at all counts as 0,
/// as the gid field always did here.
fn file_id(field: &str, what: &str, kind: &str, entry: &str) -> Result<u32> {
    let file = if kind == "user" { "passwd" } else { "group" };
    match numeric_id(field, what) {
        Ok(n) => Ok(n.unwrap_or(0)),
        Err(_) => Err(Error::invalid(format!(
            "{kind} {entry:?}: {what} {field} in /etc/{file} is out of range (0 to {MAX_ID})"
        ))),
    }
}

/// Check what can be checked of a USER value before the image's files exist (a Minifile's
/// USER, before a later RUN makes the user): its numeric parts are in range.
pub fn check_user(user: &str) -> Result<()> {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    for (part, what) in [(u, "uid"), (g, "gid")] {
        numeric_id(part, what)
            .map_err(|e| Error::invalid(format!("invalid user {user:?}: {e}")))?;
    }
    Ok(())
}

/// `""`, `uid`, `uid:gid`, `name`, `name:group` -> (uid, gid, supplementary gids, home).
/// Every id, given or read from the image's files, is in 0..=MAX_ID.
pub fn resolve_user(user: &str, layers: &[PathBuf]) -> Result<(u32, u32, Vec<u32>, String)> {
    check_user(user)?;
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
    let pw_gid = |f: &[&str]| file_id(f[3], "gid", "user", f[0]);
    let gr_gid = |f: &[&str]| file_id(f[2], "gid", "group", f[0]);

    let (uid, mut gid, name, home) = if u.is_empty() {
        let root = pw.iter().find(|f| f[2] == "0");
        (
            0,
            0,
            root.map(|f| f[0].to_string()),
            root.map_or("/root".to_string(), |f| f[5].to_string()),
        )
    } else if let Ok(Some(n)) = numeric_id(u, "uid") {
        let e = pw.iter().find(|f| f[2] == u);
        let gid = e.map(|f| pw_gid(f)).transpose()?.unwrap_or(0);
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
        if numeric_id(e[2], "uid").is_ok_and(|n| n.is_none()) {
            return Err(Error::invalid(format!(
                "passwd entry for {u} has a bad uid {:?}",
                e[2]
            )));
        }
        let uid = file_id(e[2], "uid", "user", u)?;
        (uid, pw_gid(e)?, Some(u.to_string()), e[5].to_string())
    };
    if let Some(g) = g {
        gid = match numeric_id(g, "gid") {
            Ok(Some(n)) => n,
            _ => {
                let e = gr.iter().find(|f| f[0] == g).ok_or_else(|| {
                    Error::invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?;
                gr_gid(e)?
            }
        };
    }
    let mut groups = Vec::new();
    if let (Some(name), None) = (&name, g) {
        for f in &gr {
            if f[3].split(',').any(|m| m == name) {
                let n = gr_gid(f)?;
                if n != gid && !groups.contains(&n) {
                    groups.push(n);
                }
            }
        }
    }
    Ok((uid, gid, groups, home))
}

/// Check that the process's ids exist in the user namespace `maps` describes: setresuid(2)
/// and setgroups(2) would fail with EINVAL after the setup; here the user gets a line
/// naming the id. `groups` are the supplementary ids that will be set (None: none are).
pub fn check_mapped(uid: u32, gid: u32, groups: Option<&[u32]>, maps: &IdMaps) -> Result<()> {
    let mapped = |id: u32, m: &[IdMap]| {
        m.iter()
            .any(|r| id >= r.inside && (id - r.inside) < r.count)
    };
    let ranges = |m: &[IdMap]| {
        m.iter()
            .map(|r| match r.count {
                1 => r.inside.to_string(),
                c => format!("{}-{}", r.inside, r.inside as u64 + c as u64 - 1),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ids = std::iter::once(("uid", uid, &maps.uid))
        .chain(std::iter::once(("gid", gid, &maps.gid)))
        .chain(
            groups
                .unwrap_or_default()
                .iter()
                .map(|&g| ("gid", g, &maps.gid)),
        );
    for (what, id, m) in ids {
        if !mapped(id, m) {
            return Err(Error::invalid(format!(
                "{what} {id} is not mapped in the container's user namespace (mapped {what}s: {})",
                ranges(m)
            )));
        }
    }
    Ok(())
}

/// The id maps of process `pid`'s user namespace (/proc/PID/uid_map and gid_map).
pub fn read_id_maps(pid: i32) -> Result<IdMaps> {
    let read = |name: &str| -> Result<Vec<IdMap>> {
        let p = format!("/proc/{pid}/{name}");
        let text = fs::read_to_string(&p).ctx("read", &p)?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let f: Vec<u32> = l
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect();
                (f.len() == 3).then(|| IdMap {
                    inside: f[0],
                    outside: f[1],
                    count: f[2],
                })
            })
            .collect())
    };
    Ok(IdMaps {
        uid: read("uid_map")?,
        gid: read("gid_map")?,
    })
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

    #[test]
    fn ids_out_of_range_are_refused_wherever_they_come_from() {
        let base = layer_with(&[
            (
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nbad:x:4294967295:0::/:/bin/sh\n\
                 badgid:x:7:4294967295::/:/bin/sh\nm:x:8:8::/:/bin/sh\n\
                 huge:x:99999999999:0::/:/bin/sh\n",
            ),
            ("etc/group", "root:x:0:\nevil:x:4294967295:m\n"),
        ]);
        let layers = vec![base.path().to_path_buf()];
        let err = |u: &str| resolve_user(u, &layers).unwrap_err().to_string();
        // (uid_t)-1 would leave the process root (setresuid(2)).
        assert_eq!(
            err("4294967295"),
            "invalid user \"4294967295\": uid 4294967295 is out of range (0 to 4294967294)"
        );
        assert_eq!(
            err("65534:4294967295"),
            "invalid user \"65534:4294967295\": gid 4294967295 is out of range (0 to 4294967294)"
        );
        assert!(err("4294967296").contains("uid 4294967296 is out of range"));
        assert_eq!(
            err("bad"),
            "user \"bad\": uid 4294967295 in /etc/passwd is out of range (0 to 4294967294)"
        );
        assert!(err("huge").contains("user \"huge\": uid 99999999999 in /etc/passwd"));
        assert!(err("badgid").contains("user \"badgid\": gid 4294967295 in /etc/passwd"));
        assert!(err("7").contains("user \"badgid\": gid 4294967295 in /etc/passwd"));
        assert!(err("0:evil").contains("group \"evil\": gid 4294967295 in /etc/group"));
        assert!(err("m").contains("group \"evil\": gid 4294967295 in /etc/group"));
        // The top of the range is fine; an explicit group skips the membership list.
        assert_eq!(
            resolve_user("4294967294:4294967294", &layers).unwrap(),
            (4294967294, 4294967294, vec![], "/".into())
        );
        assert_eq!(resolve_user("m:0", &layers).unwrap().2, Vec::<u32>::new());
        assert!(check_user("app:staff").is_ok());
        assert!(check_user("4294967295:staff").is_err());
    }

    #[test]
    fn ids_must_be_mapped_in_the_user_namespace() {
        let maps = IdMaps {
            uid: vec![
                IdMap {
                    inside: 0,
                    outside: 1000,
                    count: 1,
                },
                IdMap {
                    inside: 1,
                    outside: 100000,
                    count: 65536,
                },
            ],
            gid: vec![IdMap {
                inside: 0,
                outside: 1000,
                count: 1,
            }],
        };
        assert!(check_mapped(0, 0, None, &maps).is_ok());
        assert!(check_mapped(65536, 0, Some(&[]), &maps).is_ok());
        assert_eq!(
            check_mapped(65537, 0, None, &maps).unwrap_err().to_string(),
            "uid 65537 is not mapped in the container's user namespace (mapped uids: 0, 1-65536)"
        );
        assert!(check_mapped(0, 1, None, &maps)
            .unwrap_err()
            .to_string()
            .starts_with("gid 1 is not mapped"));
        assert!(check_mapped(0, 0, Some(&[5]), &maps)
            .unwrap_err()
            .to_string()
            .starts_with("gid 5 is not mapped"));
        let me = read_id_maps(std::process::id() as i32).unwrap();
        assert!(!me.uid.is_empty() && !me.gid.is_empty());
    }
}
