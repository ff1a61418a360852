//! Loading a project: finding the files and the `.env`, interpolating, typing and merging
//! the files, then resolving what needs the whole project: its name, paths (relative to the
//! project directory, `~` expanded), each service's environment (`env_file`s, then
//! `environment`), container names, the default network, the real names of networks and
//! volumes, references between services, networks and volumes, and the start order.
//! It reads files and nothing else: no image, no container, no network is touched.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::error::{io_message, Error, Loc, Result};
use crate::interpolate::{substitute, Failure};
use crate::model::{Dependency, MountType, Network, Project, Service};
use crate::parse::File;
use crate::read::{index, key, Cx};
use crate::yaml::{self, Node, Type};
use crate::{dotenv, merge, parse};

/// The file names compose looks for, in its order, when no `-f` is given.
const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// Loads the project made of `files` (none: `COMPOSE_FILE`, else `compose.yaml` and its
/// siblings in the current directory or the nearest parent that has one).
///
/// - `project_dir`: `--project-directory`; by default the first file's directory.
/// - `project_name`: `-p`; else `COMPOSE_PROJECT_NAME`, the top-level `name:`, or the
///   project directory's name.
/// - `env_files`: `--env-file` (later ones win); by default `.env` in the project directory.
/// - `env`: the environment of the caller (the shell). It wins over the env files, as in
///   docker compose v2.
pub fn load(
    files: &[PathBuf],
    project_dir: Option<&Path>,
    project_name: Option<&str>,
    env_files: &[PathBuf],
    env: &HashMap<String, String>,
) -> Result<Project> {
    let cwd = std::env::current_dir().map_err(|source| Error::Io {
        op: "get the current directory",
        path: PathBuf::from("."),
        source,
    })?;
    load_in(&cwd, files, project_dir, project_name, env_files, env)
}

/// [`load`] with the current directory given, so that tests need not change the process's.
pub(crate) fn load_in(
    cwd: &Path,
    files: &[PathBuf],
    project_dir: Option<&Path>,
    project_name: Option<&str>,
    env_files: &[PathBuf],
    env: &HashMap<String, String>,
) -> Result<Project> {
    let cwd = cwd.to_path_buf();
    let project_dir = project_dir.map(|d| clean(&cwd.join(d)));

    // COMPOSE_FILE may come from the shell or from the .env of the working directory.
    let files: Vec<(PathBuf, Arc<str>)> = if !files.is_empty() {
        files
            .iter()
            .map(|f| (clean(&cwd.join(f)), display(f)))
            .collect()
    } else {
        let wd = project_dir.clone().unwrap_or_else(|| cwd.clone());
        let early = dot_env(&wd, env_files, &cwd, env)?;
        let compose_file = env
            .get("COMPOSE_FILE")
            .or_else(|| early.get("COMPOSE_FILE"));
        match compose_file {
            Some(list) if !list.is_empty() => {
                let sep = env
                    .get("COMPOSE_PATH_SEPARATOR")
                    .or_else(|| early.get("COMPOSE_PATH_SEPARATOR"))
                    .map_or(":", String::as_str);
                list.split(sep)
                    .filter(|f| !f.is_empty())
                    .map(|f| (clean(&wd.join(f)), Arc::from(f)))
                    .collect()
            }
            // Searched from --project-directory when given, as compose does.
            _ => vec![find_default(&wd, &cwd)?],
        }
    };
    let dir = match project_dir {
        Some(d) => d,
        None => files[0]
            .0
            .parent()
            .map_or_else(|| cwd.clone(), Path::to_path_buf),
    };

    let dotenv = dot_env(&dir, env_files, &cwd, env)?;
    // The shell wins over .env (docker compose v2; podman-compose 1.0.3 has it backwards).
    let mut environment: BTreeMap<String, String> = dotenv;
    environment.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));

    let mut warnings = Vec::new();
    let mut merged: Option<File> = None;
    for (path, name) in &files {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        let cx = Cx { file: name };
        let mut root = yaml::parse(name, &text)?;
        interpolate(cx, &mut root, "", 0, &environment, &mut warnings)?;
        let f = parse::file(cx, &root)?;
        match &mut merged {
            Some(m) => merge::merge(m, f),
            None => merged = Some(f),
        }
    }
    let file = merged.unwrap_or_default();
    let first = files[0].1.clone();

    let name = project_name_of(project_name, &environment, &file, &dir, &first)?;
    let home = env.get("HOME").cloned();
    let mut p = Project {
        name,
        dir,
        files: files.iter().map(|(p, _)| p.clone()).collect(),
        services: BTreeMap::new(),
        networks: file.networks,
        volumes: file.volumes,
        extensions: file.extensions,
        environment,
        warnings,
        order: Vec::new(),
    };
    let mut services = BTreeMap::new();
    for s in file.services {
        let s = resolve_service(&p, s, home.as_deref())?;
        services.insert(s.name.clone(), s);
    }
    p.services = services;
    name_resources(&mut p);
    check_references(&p)?;
    check_container_names(&p)?;
    p.order = order(&p, &first)?;
    Ok(p)
}

impl Project {
    /// The services, each after the services it depends on (ties by name).
    pub fn services_in_order(&self) -> Vec<&Service> {
        self.order
            .iter()
            .filter_map(|n| self.services.get(n))
            .collect()
    }

    /// The real name of a volume a service mounts by its key (`data` -> `myproj_data`).
    pub fn volume_name(&self, key: &str) -> Option<&str> {
        self.volumes.get(key).map(|v| v.name.as_str())
    }

    /// The real name of a network a service joins by its key (`default` -> `myproj_default`).
    pub fn network_name(&self, key: &str) -> Option<&str> {
        self.networks.get(key).map(|n| n.name.as_str())
    }
}

/// How a file the user named is shown in messages: as they wrote it.
fn display(p: &Path) -> Arc<str> {
    Arc::from(p.to_string_lossy().as_ref())
}

/// The first of compose's default file names in `from` or the nearest parent that has one;
/// shown by its name alone when it is in the current directory.
fn find_default(from: &Path, cwd: &Path) -> Result<(PathBuf, Arc<str>)> {
    let mut dir = Some(from);
    while let Some(d) = dir {
        for name in DEFAULT_FILES {
            let p = d.join(name);
            if p.is_file() {
                let shown: Arc<str> = if d == cwd {
                    Arc::from(name)
                } else {
                    display(&p)
                };
                return Ok((p, shown));
            }
        }
        dir = d.parent();
    }
    Err(Error::Invalid(format!(
        "no compose file found in {} or its parents (looked for {})",
        from.display(),
        DEFAULT_FILES.join(", ")
    )))
}

/// The `--env-file`s, or `.env` in `dir` when there is one.
fn dot_env(
    dir: &Path,
    env_files: &[PathBuf],
    cwd: &Path,
    env: &HashMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let lookup = |k: &str| env.get(k).cloned();
    let mut out = BTreeMap::new();
    if env_files.is_empty() {
        let p = dir.join(".env");
        if p.is_file() {
            out.extend(read_env_file(&p, display(&p), &lookup)?);
        }
        return Ok(out);
    }
    for f in env_files {
        let p = clean(&cwd.join(f));
        // Each file also sees what the earlier ones set.
        let seen = out.clone();
        let look = |k: &str| lookup(k).or_else(|| seen.get(k).cloned());
        out.extend(read_env_file(&p, display(f), &look)?);
    }
    Ok(out)
}

fn read_env_file(
    path: &Path,
    shown: Arc<str>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        op: "read env file",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(dotenv::to_map(dotenv::parse(&shown, &text, lookup)?))
}

/// Substitutes every string value of the tree (never a key). An error names the value's
/// key line; a missing required variable reads as compose says it.
fn interpolate(
    cx: Cx,
    node: &mut Node,
    path: &str,
    line: u32,
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    match node {
        Node::Scalar(s, own_line) => {
            if s.ty != Type::Str || !s.text.contains('$') {
                return Ok(());
            }
            let line = if line == 0 { *own_line } else { line };
            let mut unset = Vec::new();
            let out = substitute(&s.text, &|k| env.get(k).cloned(), &mut |k| {
                unset.push(k.to_string())
            });
            for k in unset {
                let w = format!(
                    "{}: variable {k:?} is not set, using an empty string",
                    cx.loc(line)
                );
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            s.text = match out {
                Ok(t) => t,
                Err(f @ Failure::Required { .. }) => {
                    return Err(Error::at(cx.loc(line), f.message(&s.text)))
                }
                Err(f @ Failure::Syntax) => return Err(cx.err(line, path, f.message(&s.text))),
            };
        }
        Node::Seq(items, _) => {
            for (i, it) in items.iter_mut().enumerate() {
                let l = it.line();
                interpolate(cx, it, &index(path, i), l, env, warnings)?;
            }
        }
        Node::Map(entries, _) => {
            for e in entries {
                interpolate(cx, &mut e.value, &key(path, &e.key), e.line, env, warnings)?;
            }
        }
    }
    Ok(())
}

/// Compose's rule: lowercase letters, digits, `_` and `-`, starting with a letter or digit.
fn normalize_name(s: &str) -> String {
    let s: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    s.trim_start_matches(['_', '-']).to_string()
}

fn project_name_of(
    flag: Option<&str>,
    environment: &BTreeMap<String, String>,
    file: &File,
    dir: &Path,
    first: &Arc<str>,
) -> Result<String> {
    // Names the user gives on the command line or in the environment must already be valid;
    // the file's `name:` and the directory's name are normalized (compose-go does the same).
    let given = flag.map(|n| (n.to_string(), "project name")).or_else(|| {
        environment
            .get("COMPOSE_PROJECT_NAME")
            .filter(|n| !n.is_empty())
            .map(|n| (n.clone(), "COMPOSE_PROJECT_NAME"))
    });
    if let Some((n, what)) = given {
        if n.is_empty() || normalize_name(&n) != n {
            return Err(Error::Invalid(format!(
                "invalid {what} {n:?}: it must be lowercase letters, digits, '-' and '_', starting with a letter or digit"
            )));
        }
        return Ok(n);
    }
    if let Some((n, at)) = &file.name {
        let norm = normalize_name(n);
        if norm.is_empty() {
            return Err(Error::at(
                at.clone(),
                format!("name: {n:?} has no letter or digit to make a project name of"),
            ));
        }
        return Ok(norm);
    }
    let base = dir
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let norm = normalize_name(&base);
    if norm.is_empty() {
        return Err(Error::at(
            Loc::new(first, 0),
            format!("cannot make a project name of the directory name {base:?}: give one with -p or name:"),
        ));
    }
    Ok(norm)
}

fn resolve_service(p: &Project, mut s: Service, home: Option<&str>) -> Result<Service> {
    let at = s.at.clone().expect("a parsed service has a place");
    let path = key("services", &s.name);
    let err = |loc: &Loc, what: &str, msg: String| {
        Error::at(loc.clone(), format!("{}: {msg}", key(&path, what)))
    };
    let resolve = |loc: &Loc, what: &str, raw: &str| -> Result<PathBuf> {
        resolve_path(&p.dir, raw, home).map_err(|m| err(loc, what, m))
    };

    if s.image.is_none() && s.build.is_none() {
        return Err(Error::at(
            at,
            format!("{path}: no image and no build (a service needs one of them)"),
        ));
    }
    s.container = match &s.container_name {
        Some(n) => n.clone(),
        None => format!("{}-{}-1", p.name, s.name),
    };
    if let Some(b) = &mut s.build {
        b.context = resolve(&at, "build", &b.context.to_string_lossy())?;
        if !b.dockerfile_set {
            // minibox builds Minifiles; a context made for docker has a Dockerfile, which
            // is a Minifile too as far as the subset goes.
            b.dockerfile =
                if !b.context.join("Minifile").exists() && b.context.join("Dockerfile").exists() {
                    "Dockerfile".to_string()
                } else {
                    "Minifile".to_string()
                };
        }
        for (k, v) in b.args.iter_mut() {
            if v.is_none() {
                *v = p.environment.get(k).cloned();
            }
        }
    }

    // The environment: env_files in order, then `environment` over them. A name without a
    // value takes the project's environment (the shell over .env).
    let env_at = s
        .locs
        .get("env_file")
        .cloned()
        .unwrap_or_else(|| at.clone());
    let mut env: BTreeMap<String, Option<String>> = BTreeMap::new();
    for f in &mut s.env_file {
        f.path = resolve(&env_at, "env_file", &f.path.to_string_lossy())?;
        if !f.path.exists() && !f.required {
            continue;
        }
        let text = std::fs::read_to_string(&f.path).map_err(|e| {
            err(
                &env_at,
                "env_file",
                format!("read {}: {}", f.path.display(), io_message(&e)),
            )
        })?;
        let declared = &s.environment;
        let lookup = |k: &str| {
            p.environment
                .get(k)
                .cloned()
                .or_else(|| declared.get(k).cloned().flatten())
        };
        let shown: Arc<str> = Arc::from(f.path.to_string_lossy().as_ref());
        for (k, v) in dotenv::parse(&shown, &text, &lookup)? {
            env.insert(k, Some(v));
        }
    }
    for (k, v) in std::mem::take(&mut s.environment) {
        match v {
            Some(v) => {
                env.insert(k, Some(v));
            }
            None => match p.environment.get(&k) {
                Some(v) => {
                    env.insert(k, Some(v.clone()));
                }
                None => {
                    env.entry(k).or_insert(None);
                }
            },
        }
    }
    s.environment = env;

    for m in &mut s.volumes {
        let loc = m.at.clone().unwrap_or_else(|| at.clone());
        if m.kind == MountType::Bind {
            let raw = m.source.clone().unwrap_or_default();
            m.source = Some(
                resolve(&loc, "volumes", &raw)?
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    if s.networks.is_empty() {
        s.networks.insert("default".to_string(), None);
    }
    Ok(s)
}

/// Relative to the project directory, `~` and `~/...` from HOME, cleaned lexically as
/// compose's `filepath.Join` does.
fn resolve_path(dir: &Path, raw: &str, home: Option<&str>) -> std::result::Result<PathBuf, String> {
    let expanded: PathBuf = if raw == "~" || raw.starts_with("~/") {
        let Some(h) = home else {
            return Err(format!("cannot expand {raw:?}: HOME is not set"));
        };
        Path::new(h).join(raw.trim_start_matches('~').trim_start_matches('/'))
    } else {
        PathBuf::from(raw)
    };
    Ok(clean(&dir.join(expanded)))
}

/// Removes `.`, folds `..` (never above the root) and doubled separators, without looking at
/// the file system.
pub(crate) fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() && !p.is_absolute() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// The default network where a service uses it, and the real names of networks and volumes:
/// `name:`, else the key for an external one, else `PROJECT_KEY`.
fn name_resources(p: &mut Project) {
    if p.services
        .values()
        .any(|s| s.networks.contains_key("default"))
        && !p.networks.contains_key("default")
    {
        p.networks.insert("default".to_string(), Network::default());
    }
    for (k, n) in &mut p.networks {
        if !n.name_set {
            n.name = if n.external {
                k.clone()
            } else {
                format!("{}_{k}", p.name)
            };
        }
    }
    for (k, v) in &mut p.volumes {
        if !v.name_set {
            v.name = if v.external {
                k.clone()
            } else {
                format!("{}_{k}", p.name)
            };
        }
    }
}

fn check_references(p: &Project) -> Result<()> {
    for s in p.services.values() {
        let at = s.at.clone().expect("a parsed service has a place");
        let path = key("services", &s.name);
        for m in &s.volumes {
            if m.kind != MountType::Volume {
                continue;
            }
            if let Some(src) = &m.source {
                if !p.volumes.contains_key(src) {
                    return Err(Error::at(
                        m.at.clone().unwrap_or(at),
                        format!("{path}.volumes: volume {src:?} is not declared in the top-level volumes"),
                    ));
                }
            }
        }
        for n in s.networks.keys() {
            if !p.networks.contains_key(n) {
                let loc = s.locs.get(&format!("networks.{n}")).cloned().unwrap_or(at);
                return Err(Error::at(
                    loc,
                    format!(
                        "{path}.networks: network {n:?} is not declared in the top-level networks"
                    ),
                ));
            }
        }
        for (d, dep) in &s.depends_on {
            if d == &s.name {
                return Err(Error::at(
                    dep.at.clone(),
                    format!("{path}.depends_on: a service cannot depend on itself"),
                ));
            }
            if dep.required && !p.services.contains_key(d) {
                return Err(Error::at(
                    dep.at.clone(),
                    format!("{path}.depends_on: service {d:?} is not defined"),
                ));
            }
        }
    }
    Ok(())
}

fn check_container_names(p: &Project) -> Result<()> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    // In the order of the file, so that the second user of a name is the one reported.
    let mut services: Vec<&Service> = p.services.values().collect();
    services.sort_by_key(|s| s.at.as_ref().map_or(0, |a| a.line));
    for s in services {
        if let Some(other) = seen.insert(&s.container, &s.name) {
            let at = s.at.clone().expect("a parsed service has a place");
            return Err(Error::at(
                at,
                format!(
                    "services.{}: container name {:?} is already used by service {other:?}",
                    s.name, s.container
                ),
            ));
        }
    }
    Ok(())
}

/// Kahn's algorithm over depends_on, ties by name; a cycle is reported as the path around it.
fn order(p: &Project, first: &Arc<str>) -> Result<Vec<String>> {
    let deps = |s: &Service| -> Vec<String> {
        s.depends_on
            .keys()
            .filter(|d| p.services.contains_key(*d))
            .cloned()
            .collect()
    };
    let mut remaining: BTreeMap<&str, BTreeSet<String>> = p
        .services
        .values()
        .map(|s| (s.name.as_str(), deps(s).into_iter().collect()))
        .collect();
    let mut out = Vec::new();
    loop {
        let ready: Vec<String> = remaining
            .iter()
            .filter(|(_, d)| d.is_empty())
            .map(|(n, _)| n.to_string())
            .collect();
        if ready.is_empty() {
            break;
        }
        for n in &ready {
            remaining.remove(n.as_str());
            for d in remaining.values_mut() {
                d.remove(n);
            }
        }
        out.extend(ready);
    }
    if remaining.is_empty() {
        return Ok(out);
    }
    // Walk from the first stuck service along its stuck dependencies until one repeats.
    let start = *remaining.keys().next().expect("not empty");
    let mut path: Vec<&str> = vec![start];
    loop {
        let cur = *path.last().expect("not empty");
        let next = remaining[cur]
            .iter()
            .next()
            .expect("a stuck service waits on another")
            .as_str();
        if let Some(i) = path.iter().position(|n| *n == next) {
            let mut cycle: Vec<&str> = path[i..].to_vec();
            cycle.push(next);
            let head = cycle[0];
            let at = p.services[head]
                .depends_on
                .get(cycle[1])
                .map(|d: &Dependency| d.at.clone())
                .unwrap_or_else(|| Loc::new(first, 0));
            return Err(Error::at(
                at,
                format!("dependency cycle: {}", cycle.join(" -> ")),
            ));
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Condition, Mount, Restart};

    /// A project folder `proj` in a temp dir, holding `files` (name, content).
    struct Fixture {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
    }

    fn fixture(files: &[(&str, &str)]) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("proj");
        for (name, content) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        Fixture { _tmp: tmp, dir }
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut e: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        e.entry("HOME".into())
            .or_insert_with(|| "/home/user".into());
        e
    }

    fn load_dir(f: &Fixture, files: &[&str], pairs: &[(&str, &str)]) -> Result<Project> {
        let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        load_in(&f.dir, &files, None, None, &[], &env(pairs))
    }

    /// Loads one compose.yaml.
    fn one(yaml: &str, pairs: &[(&str, &str)]) -> Result<Project> {
        let f = fixture(&[("compose.yaml", yaml)]);
        load_dir(&f, &[], pairs)
    }

    fn err(yaml: &str) -> String {
        one(yaml, &[]).unwrap_err().to_string()
    }

    #[test]
    fn each_error_is_one_line_naming_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            ("services:\n  web:\n    image: busybox\n    imagee: x\n", "compose.yaml:4: services.web: unknown key \"imagee\""),
            ("servics:\n  web:\n    image: busybox\n", "compose.yaml:1: (top level): unknown key \"servics\""),
            ("services:\n  web:\n    image: 12\n", "compose.yaml:3: services.web.image: expected a string"),
            ("services:\n  web:\n    image: a\n    user: 1000\n", "compose.yaml:4: services.web.user: expected a string"),
            ("services:\n  web:\n    image: a\n    ports:\n      - 80\n      - {published: 80}\n", "compose.yaml:6: services.web.ports[1]: missing key \"target\""),
            ("services:\n  web:\n    image: a\n    ports:\n      - \"80/icmp\"\n", "compose.yaml:5: services.web.ports[0]: invalid protocol \"icmp\" (tcp, udp or sctp)"),
            ("services:\n  web:\n    image: a\n    ports: \"80:80\"\n", "compose.yaml:4: services.web.ports: expected a list"),
            ("services:\n  web:\n    image: a\n    cap_drop: ALL\n", "compose.yaml:4: services.web.cap_drop: expected a list"),
            ("services:\n  web:\n    image: a\n    tty: maybe\n", "compose.yaml:4: services.web.tty: expected a boolean"),
            ("services:\n  web:\n    image: a\n    mem_limit: lots\n", "compose.yaml:4: services.web.mem_limit: invalid size \"lots\" (bytes, or a number with b, k, m or g)"),
            ("services:\n  web:\n    image: a\n    cpus: many\n", "compose.yaml:4: services.web.cpus: expected a number"),
            ("services:\n  web:\n    image: a\n    pids_limit: 1.5\n", "compose.yaml:4: services.web.pids_limit: expected an integer"),
            ("services:\n  web:\n    image: a\n    restart: sometimes\n", "compose.yaml:4: services.web.restart: invalid restart policy \"sometimes\" (no, always, on-failure[:N] or unless-stopped)"),
            ("services:\n  web:\n    image: a\n    healthcheck:\n      test: [CMD, \"true\"]\n      interval: 10\n", "compose.yaml:6: services.web.healthcheck.interval: expected a string"),
            ("services:\n  web:\n    image: a\n    healthcheck:\n      interval: 10 s\n", "compose.yaml:5: services.web.healthcheck.interval: invalid duration \"10 s\" (like 1m30s, 10s or 500ms)"),
            ("services:\n  web:\n    image: a\n    healthcheck:\n      test: [true]\n", "compose.yaml:5: services.web.healthcheck.test[0]: expected a string"),
            ("services:\n  web:\n    image: a\n    healthcheck:\n      test: [curl, x]\n", "compose.yaml:5: services.web.healthcheck.test: a list must start with CMD, CMD-SHELL or NONE"),
            ("services:\n  web:\n    image: a\n    depends_on:\n      db:\n        condition: service_ready\n  db:\n    image: a\n", "compose.yaml:6: services.web.depends_on.db.condition: invalid condition \"service_ready\" (service_started, service_healthy or service_completed_successfully)"),
            ("services:\n  web:\n    image: a\n    volumes:\n      - ./a:/a:rx\n", "compose.yaml:5: services.web.volumes[0]: unknown option \"rx\" in volume \"./a:/a:rx\""),
            ("services:\n  web:\n    image: a\n    volumes:\n      - type: bind\n        target: /a\n", "compose.yaml:5: services.web.volumes[0]: a bind mount needs a \"source\""),
            ("services:\n  web:\n    image: a\n    volumes:\n      - type: nfs\n        target: /a\n", "compose.yaml:5: services.web.volumes[0].type: unsupported mount type \"nfs\" (bind, volume or tmpfs)"),
            ("services:\n  web:\n    image: a\n    volumes:\n      - type: volume\n        target: /a\n        bind: {}\n", "compose.yaml:5: services.web.volumes[0]: \"bind\" options on a mount of type volume"),
            ("services:\n  web:\n    image: a\n    build:\n      context: .\n      dockerfil: Minifile\n", "compose.yaml:6: services.web.build: unknown key \"dockerfil\""),
            ("services:\n  web:\n    image: a\n    deploy:\n      replicas: 2\n", "compose.yaml:5: services.web.deploy: unknown key \"replicas\""),
            ("services:\n  web:\n    image: a\n    deploy:\n      resources:\n        limits:\n          memory: 1x\n", "compose.yaml:7: services.web.deploy.resources.limits.memory: invalid size \"1x\" (bytes, or a number with b, k, m or g)"),
            ("services:\n  web:\n    image: a\n    command: echo 'a\n", "compose.yaml:4: services.web.command: unterminated ' quote"),
            ("services:\n  web:\n    image: a\n    command: echo a && echo b\n", "compose.yaml:4: services.web.command: '&' is a shell operator and the command runs without a shell: quote it, or use [\"sh\", \"-c\", \"...\"]"),
            ("services:\n  web:\n    image: a\n    command: echo $1\n", "compose.yaml:4: services.web.command: invalid interpolation format in \"echo $1\": you may need to escape any $ with another $"),
            ("services:\n  web:\n    image: a\n    environment:\n      - =x\n", "compose.yaml:5: services.web.environment[0]: a variable name is empty"),
            ("services:\n  web:\n    image: a\n    environment: [[a]]\n", "compose.yaml:4: services.web.environment[0]: expected a string or a number"),
            ("services:\n  web:\n    image: a\n    extra_hosts:\n      - nocolon\n", "compose.yaml:5: services.web.extra_hosts[0]: expected HOST:IP or HOST=IP, got \"nocolon\""),
            ("services:\n  web:\n    image: a\n    devices:\n      - /dev/snd:/dev/snd:rwx\n", "compose.yaml:5: services.web.devices[0]: invalid device permissions \"rwx\" (a combination of r, w and m)"),
            ("services:\n  web:\n    image: a\n    networks:\n      front:\n        alias: [x]\nnetworks:\n  front:\n", "compose.yaml:6: services.web.networks.front: unknown key \"alias\""),
            ("services:\n  web:\n    image: a\n    networks: [front]\n", "compose.yaml:4: services.web.networks: network \"front\" is not declared in the top-level networks"),
            ("services:\n  -web:\n    image: a\n", "compose.yaml:2: services.-web: a service name must be letters, digits, '.', '_' and '-', starting with a letter or digit"),
            ("services:\n  web:\n    build: {}\n    container_name: x\n  db:\n    image: a\n    container_name: x\n", "compose.yaml:5: services.db: container name \"x\" is already used by service \"web\""),
            ("services:\n  web:\n    user: a\n", "compose.yaml:2: services.web: no image and no build (a service needs one of them)"),
            ("services:\n  web:\n    image: a\n    depends_on: [web]\n", "compose.yaml:4: services.web.depends_on: a service cannot depend on itself"),
            ("volumes:\n  data:\n    drivr: local\n", "compose.yaml:3: volumes.data: unknown key \"drivr\""),
            ("networks:\n  n:\n    internal: sometimes\n", "compose.yaml:3: networks.n.internal: expected a boolean"),
            ("name: \"!!!\"\nservices: {}\n", "compose.yaml:1: name: \"!!!\" has no letter or digit to make a project name of"),
            ("services:\n  web:\n    image: a\n  web:\n    image: b\n", "compose.yaml:4: services: duplicate key \"web\" (first at line 2)"),
            ("services:\n  web:\n    image: [a\n", "compose.yaml:4: invalid YAML: while parsing a flow sequence, expected ',' or ']'"),
            ("- a\n- b\n", "compose.yaml:1: (top level): expected a map of compose keys"),
        ];
        for (yaml, want) in cases {
            assert_eq!(err(yaml), *want, "for:\n{yaml}");
        }
    }

    fn web(p: &Project) -> &Service {
        &p.services["web"]
    }

    #[test]
    fn both_syntaxes_resolve_alike() {
        let files_short = "services:\n  web:\n    build: ./app\n    image: w\n    command: sh -c 'echo hi'\n    entrypoint: /init --x\n    environment: [A=1, B, C=]\n    labels: [l1=a, l2]\n    env_file: web.env\n    depends_on: [db]\n    networks: [front]\n    ports: [\"127.0.0.1:8080:80/udp\"]\n    volumes: [\"data:/data:ro\", \"./src:/src\"]\n    extra_hosts: [\"h:1.2.3.4\"]\n    dns: 1.1.1.1\n    tmpfs: /run\n  db: {image: d}\nnetworks: {front: }\nvolumes: {data: }\n";
        let files_long = "services:\n  web:\n    build: {context: ./app}\n    image: w\n    command: [sh, -c, echo hi]\n    entrypoint: [/init, --x]\n    environment: {A: 1, B: null, C: \"\"}\n    labels: {l1: a, l2: null}\n    env_file: [{path: web.env, required: true}]\n    depends_on: {db: {condition: service_started, required: true}}\n    networks: {front: null}\n    ports: [{target: 80, published: \"8080\", host_ip: 127.0.0.1, protocol: udp, mode: ingress}]\n    volumes:\n      - {type: volume, source: data, target: /data, read_only: true, volume: {}}\n      - {type: bind, source: ./src, target: /src, bind: {create_host_path: true}}\n    extra_hosts: {h: 1.2.3.4}\n    dns: [1.1.1.1]\n    tmpfs: [/run]\n  db: {image: d}\nnetworks: {front: }\nvolumes: {data: }\n";
        let mut got = Vec::new();
        for yaml in [files_short, files_long] {
            let f = fixture(&[
                ("compose.yaml", yaml),
                ("web.env", "E=from-file\n"),
                ("app/Minifile", "FROM scratch\n"),
            ]);
            let p = load_dir(&f, &[], &[("B", "from-shell")]).unwrap();
            let w = web(&p).clone();
            assert_eq!(w.build.as_ref().unwrap().context, f.dir.join("app"));
            assert_eq!(w.build.as_ref().unwrap().dockerfile, "Minifile");
            assert_eq!(w.command.as_deref().unwrap(), ["sh", "-c", "echo hi"]);
            assert_eq!(w.entrypoint.as_deref().unwrap(), ["/init", "--x"]);
            assert_eq!(w.env(), ["A=1", "B=from-shell", "C=", "E=from-file"]);
            assert_eq!(
                w.labels,
                BTreeMap::from([("l1".into(), "a".into()), ("l2".into(), String::new())])
            );
            assert_eq!(w.depends_on["db"].condition, Condition::Started);
            assert!(w.depends_on["db"].required);
            assert_eq!(w.networks, BTreeMap::from([("front".to_string(), None)]));
            assert_eq!(w.ports.len(), 1);
            let port = &w.ports[0];
            assert_eq!(
                (
                    port.target,
                    port.published.as_deref(),
                    port.host_ip.as_deref(),
                    port.protocol.as_str()
                ),
                (80, Some("8080"), Some("127.0.0.1"), "udp")
            );
            assert_eq!(port.published_range(), Some((8080, 8080)));
            let v: Vec<(MountType, Option<String>, &str, bool)> = w
                .volumes
                .iter()
                .map(|m: &Mount| (m.kind, m.source.clone(), m.target.as_str(), m.read_only))
                .collect();
            let src = f.dir.join("src").to_string_lossy().into_owned();
            assert_eq!(
                v,
                [
                    (MountType::Volume, Some("data".into()), "/data", true),
                    (MountType::Bind, Some(src), "/src", false)
                ]
            );
            assert!(w.volumes[1].create_host_path);
            assert_eq!(p.volume_name("data"), Some("proj_data"));
            assert_eq!(p.network_name("front"), Some("proj_front"));
            assert_eq!(w.extra_hosts, [("h".to_string(), "1.2.3.4".to_string())]);
            assert_eq!(w.dns, ["1.1.1.1"]);
            assert_eq!(w.tmpfs, ["/run"]);
            got.push(
                p.config_yaml()
                    .replace(&f.dir.to_string_lossy().into_owned(), "DIR"),
            );
        }
        assert_eq!(got[0], got[1]);
    }

    #[test]
    fn scalar_keys_and_limits() {
        let p = one(
            "services:\n  web:\n    image: a\n    user: \"1000:1000\"\n    working_dir: /w\n    hostname: h\n    cap_add: [NET_ADMIN]\n    cap_drop: [ALL]\n    security_opt: [no-new-privileges]\n    mem_limit: 512m\n    cpus: 0.5\n    pids_limit: 64\n    init: true\n    tty: true\n    stdin_open: true\n    ipc: host\n    group_add: [audio, 39]\n    shm_size: 64m\n    read_only: true\n    restart: on-failure:5\n    healthcheck:\n      test: wget -q localhost\n      interval: 1m30s\n      timeout: 5s\n      retries: 3\n      start_period: 10s\n  job:\n    image: a\n    deploy: {resources: {limits: {cpus: 2, memory: 1g, pids: 10}}}\n    healthcheck: {test: [NONE]}\n    restart: \"no\"\n",
            &[],
        )
        .unwrap();
        let w = web(&p);
        assert_eq!(
            (
                w.user.as_deref(),
                w.working_dir.as_deref(),
                w.hostname.as_deref()
            ),
            (Some("1000:1000"), Some("/w"), Some("h"))
        );
        assert_eq!(
            (
                w.cap_add.as_slice(),
                w.cap_drop.as_slice(),
                w.security_opt.as_slice()
            ),
            (
                &["NET_ADMIN".to_string()][..],
                &["ALL".to_string()][..],
                &["no-new-privileges".to_string()][..]
            )
        );
        assert_eq!(
            (w.memory_limit(), w.cpu_limit(), w.pids()),
            (Some(512 << 20), Some(0.5), Some(64))
        );
        assert_eq!(
            (w.init, w.tty, w.stdin_open, w.read_only),
            (Some(true), Some(true), Some(true), Some(true))
        );
        assert_eq!(
            (w.ipc.as_deref(), w.group_add.as_slice(), w.shm_size),
            (
                Some("host"),
                &["audio".to_string(), "39".to_string()][..],
                Some(64 << 20)
            )
        );
        assert_eq!(w.restart, Some(Restart::OnFailure(Some(5))));
        let h = w.healthcheck.as_ref().unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "wget -q localhost"]);
        assert_eq!(
            (h.interval, h.timeout, h.retries, h.start_period),
            (
                Some(std::time::Duration::from_secs(90)),
                Some(std::time::Duration::from_secs(5)),
                Some(3),
                Some(std::time::Duration::from_secs(10))
            )
        );
        assert!(!h.is_disabled());
        let j = &p.services["job"];
        assert_eq!(
            (j.memory_limit(), j.cpu_limit(), j.pids()),
            (Some(1 << 30), Some(2.0), Some(10))
        );
        assert!(j.healthcheck.as_ref().unwrap().is_disabled());
        assert_eq!(j.restart, Some(Restart::No));
        assert_eq!(j.image_name("proj"), "a");
    }

    #[test]
    fn the_shell_wins_over_dotenv_and_dollar_dollar_is_literal() {
        let f = fixture(&[
            ("compose.yaml", "services:\n  web:\n    image: ${IMG}\n    environment:\n      A: $A\n      B: ${B}\n      LIT: $$A-$${B}\n      BARE:\n"),
            (".env", "A=dotenv-a\nB=dotenv-b\nIMG=busybox\nBARE=dotenv-bare\n"),
        ]);
        let p = load_dir(&f, &[], &[("A", "shell-a"), ("BARE", "shell-bare")]).unwrap();
        assert_eq!(
            web(&p).env(),
            ["A=shell-a", "B=dotenv-b", "BARE=shell-bare", "LIT=$A-${B}"]
        );
        assert_eq!(web(&p).image.as_deref(), Some("busybox"));
        assert_eq!(p.environment["A"], "shell-a");

        // --env-file replaces .env; later env files win over earlier ones.
        let envs = [f.dir.join("one.env"), PathBuf::from("two.env")];
        std::fs::write(&envs[0], "IMG=one\nB=one\n").unwrap();
        std::fs::write(f.dir.join("two.env"), "B=two-${IMG}\n").unwrap();
        let p = load_in(&f.dir, &[], None, None, &envs, &env(&[])).unwrap();
        assert_eq!(web(&p).image.as_deref(), Some("one"));
        assert_eq!(web(&p).environment["B"].as_deref(), Some("two-one"));
        assert_eq!(web(&p).environment["BARE"], None, ".env was not read");
    }

    #[test]
    fn unset_variables_warn_with_their_line() {
        let p = one("services:\n  web:\n    image: busybox\n    environment:\n      A: x${NOPE}y\n      B: $NOPE\n", &[]).unwrap();
        assert_eq!(web(&p).environment["A"].as_deref(), Some("xy"));
        assert_eq!(
            p.warnings,
            [
                "compose.yaml:5: variable \"NOPE\" is not set, using an empty string",
                "compose.yaml:6: variable \"NOPE\" is not set, using an empty string"
            ]
        );
    }

    #[test]
    fn keys_are_not_interpolated() {
        let p = one(
            "services:\n  web:\n    image: busybox\n    labels:\n      $KEY: $KEY\n",
            &[("KEY", "v")],
        )
        .unwrap();
        assert_eq!(web(&p).labels["$KEY"], "v");
    }

    #[test]
    fn project_name_precedence() {
        let f = fixture(&[
            ("compose.yaml", "name: From_File\nservices: {}\n"),
            (".env", "COMPOSE_PROJECT_NAME=from-dotenv\n"),
        ]);
        let e = env(&[("COMPOSE_PROJECT_NAME", "from-shell")]);
        let name = |flag: Option<&str>, e: &HashMap<String, String>| {
            load_in(&f.dir, &[], None, flag, &[], e).map(|p| p.name)
        };
        assert_eq!(name(Some("from-flag"), &e).unwrap(), "from-flag");
        assert_eq!(name(None, &e).unwrap(), "from-shell");
        assert_eq!(name(None, &env(&[])).unwrap(), "from-dotenv");
        std::fs::remove_file(f.dir.join(".env")).unwrap();
        assert_eq!(name(None, &env(&[])).unwrap(), "from_file");
        std::fs::write(f.dir.join("compose.yaml"), "services: {}\n").unwrap();
        assert_eq!(name(None, &env(&[])).unwrap(), "proj");
        assert_eq!(
            name(Some("Bad Name"), &e).unwrap_err().to_string(),
            "invalid project name \"Bad Name\": it must be lowercase letters, digits, '-' and '_', starting with a letter or digit"
        );
        // A directory name is normalized as compose does.
        let g = fixture(&[("My Project.v2/compose.yaml", "services: {}\n")]);
        let p = load_in(
            &g.dir.join("My Project.v2"),
            &[],
            None,
            None,
            &[],
            &env(&[]),
        )
        .unwrap();
        assert_eq!(p.name, "myprojectv2");
    }

    #[test]
    fn services_start_after_their_dependencies() {
        let p = one(
            "services:\n  web:\n    image: a\n    depends_on: [api, cache]\n  api:\n    image: a\n    depends_on:\n      db:\n        condition: service_healthy\n  db:\n    image: a\n  cache:\n    image: a\n  zz:\n    image: a\n  tool:\n    image: a\n    depends_on:\n      missing:\n        condition: service_started\n        required: false\n",
            &[],
        )
        .unwrap();
        let order: Vec<&str> = p
            .services_in_order()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(order, ["cache", "db", "tool", "zz", "api", "web"]);
        assert_eq!(
            p.services["api"].depends_on["db"].condition,
            Condition::Healthy
        );
    }

    #[test]
    fn cycles_are_named() {
        assert_eq!(
            err("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [c]\n  c:\n    image: x\n    depends_on: [a]\n  d:\n    image: x\n    depends_on: [a]\n"),
            "compose.yaml:4: dependency cycle: a -> b -> c -> a"
        );
        assert_eq!(
            err("services:\n  web:\n    image: x\n    depends_on:\n      worker: {condition: service_started}\n  worker:\n    image: x\n    depends_on: [web]\n"),
            "compose.yaml:5: dependency cycle: web -> worker -> web"
        );
    }

    #[test]
    fn names_and_paths_resolve() {
        let f = fixture(&[
            ("compose.yaml", "services:\n  web:\n    image: a\n    build: ../other/./ctx\n    volumes:\n      - ~:/home\n      - ./a/../b:/b\n  db:\n    image: a\n    container_name: the-db\n    env_file: conf/db.env\nvolumes:\n  ext: {external: true}\n  named: {name: exact}\n"),
            ("conf/db.env", "X=1\n"),
        ]);
        let p = load_dir(&f, &[], &[]).unwrap();
        let w = web(&p);
        assert_eq!(w.container, "proj-web-1");
        assert_eq!(p.services["db"].container, "the-db");
        assert_eq!(
            w.build.as_ref().unwrap().context,
            f.dir.parent().unwrap().join("other/ctx")
        );
        let sources: Vec<&str> = w
            .volumes
            .iter()
            .map(|m| m.source.as_deref().unwrap())
            .collect();
        assert_eq!(
            sources,
            [
                "/home/user".to_string(),
                f.dir.join("b").to_string_lossy().into_owned()
            ]
        );
        assert_eq!(p.services["db"].env_file[0].path, f.dir.join("conf/db.env"));
        assert_eq!(p.volume_name("ext"), Some("ext"));
        assert_eq!(p.volume_name("named"), Some("exact"));
        assert_eq!(p.network_name("default"), Some("proj_default"));
        assert_eq!(p.dir, f.dir);
    }

    #[test]
    fn a_missing_env_file_is_an_error_unless_not_required() {
        let f = fixture(&[(
            "compose.yaml",
            "services:\n  web:\n    image: a\n    env_file:\n      - nope.env\n",
        )]);
        let e = load_dir(&f, &[], &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "compose.yaml:4: services.web.env_file: read {}: no such file or directory",
                f.dir.join("nope.env").display()
            )
        );
        let p = one("services:\n  web:\n    image: a\n    env_file:\n      - path: nope.env\n        required: false\n", &[]).unwrap();
        assert!(web(&p).environment.is_empty());
    }

    #[test]
    fn environment_over_env_file_and_bare_names() {
        let f = fixture(&[
            ("compose.yaml", "services:\n  web:\n    image: a\n    env_file: [a.env, b.env]\n    environment:\n      - FROM_B_OVERRIDDEN=compose\n      - BARE_SHELL\n      - BARE_NOWHERE\n      - IN_FILE_ONLY_BARE\n"),
            ("a.env", "FROM_A=a\nFROM_B_OVERRIDDEN=a\nIN_FILE_ONLY_BARE=file\nREF=${BARE_SHELL}\n"),
            ("b.env", "FROM_B_OVERRIDDEN=b\n"),
        ]);
        let p = load_dir(&f, &[], &[("BARE_SHELL", "shell")]).unwrap();
        let e = &web(&p).environment;
        assert_eq!(e["FROM_A"].as_deref(), Some("a"));
        assert_eq!(e["FROM_B_OVERRIDDEN"].as_deref(), Some("compose"));
        assert_eq!(e["BARE_SHELL"].as_deref(), Some("shell"));
        assert_eq!(e["BARE_NOWHERE"], None);
        assert_eq!(e["IN_FILE_ONLY_BARE"].as_deref(), Some("file"));
        assert_eq!(e["REF"].as_deref(), Some("shell"));
        assert!(!web(&p).env().iter().any(|v| v.starts_with("BARE_NOWHERE")));
    }

    #[test]
    fn merging_two_files_in_order() {
        let base = "services:\n  web:\n    image: a:1\n    command: [a]\n    environment: {X: base, Y: base}\n    ports: [\"80:80\"]\n    volumes: [\"./one:/data\"]\n    cap_add: [A]\n";
        let over = "services:\n  web:\n    image: a:2\n    command: [b, c]\n    environment: [X=over]\n    ports: [\"80:80\", \"81:81\"]\n    volumes: [\"./two:/data:ro\"]\n    cap_add: [B, A]\n";
        let f = fixture(&[("base.yaml", base), ("over.yaml", over)]);
        let p = load_dir(&f, &["base.yaml", "over.yaml"], &[]).unwrap();
        let w = web(&p);
        assert_eq!(w.image.as_deref(), Some("a:2"));
        assert_eq!(w.command.as_deref().unwrap(), ["b", "c"]);
        assert_eq!(w.env(), ["X=over", "Y=base"]);
        assert_eq!(
            w.ports.iter().map(|p| p.target).collect::<Vec<_>>(),
            [80, 81]
        );
        assert_eq!(w.volumes.len(), 1);
        assert!(w.volumes[0].read_only);
        assert!(w.volumes[0].source.as_deref().unwrap().ends_with("/two"));
        assert_eq!(w.cap_add, ["A", "B"]);
        assert_eq!(p.files, [f.dir.join("base.yaml"), f.dir.join("over.yaml")]);
        // The other order gives the other values.
        let q = load_dir(&f, &["over.yaml", "base.yaml"], &[]).unwrap();
        assert_eq!(web(&q).image.as_deref(), Some("a:1"));
        assert_eq!(web(&q).command.as_deref().unwrap(), ["a"]);
        // An error names the file it is in.
        std::fs::write(f.dir.join("over.yaml"), "services:\n  web:\n    imag: x\n").unwrap();
        assert_eq!(
            load_dir(&f, &["base.yaml", "over.yaml"], &[])
                .unwrap_err()
                .to_string(),
            "over.yaml:3: services.web: unknown key \"imag\""
        );
    }

    #[test]
    fn files_are_found_as_compose_finds_them() {
        let f = fixture(&[
            ("docker-compose.yml", "services:\n  web:\n    image: old\n"),
            ("sub/dir/.keep", ""),
        ]);
        // Found in a parent directory; the project directory is the file's.
        let p = load_in(&f.dir.join("sub/dir"), &[], None, None, &[], &env(&[])).unwrap();
        assert_eq!(p.dir, f.dir);
        assert_eq!(web(&p).image.as_deref(), Some("old"));
        // compose.yaml comes first.
        std::fs::write(
            f.dir.join("compose.yaml"),
            "services:\n  web:\n    image: new\n",
        )
        .unwrap();
        assert_eq!(
            web(&load_dir(&f, &[], &[]).unwrap()).image.as_deref(),
            Some("new")
        );
        // COMPOSE_FILE, from the shell or .env, lists files.
        std::fs::write(
            f.dir.join("extra.yaml"),
            "services:\n  web:\n    image: extra\n",
        )
        .unwrap();
        let p = load_dir(&f, &[], &[("COMPOSE_FILE", "compose.yaml:extra.yaml")]).unwrap();
        assert_eq!(web(&p).image.as_deref(), Some("extra"));
        std::fs::write(f.dir.join(".env"), "COMPOSE_FILE=extra.yaml\n").unwrap();
        assert_eq!(
            web(&load_dir(&f, &[], &[]).unwrap()).image.as_deref(),
            Some("extra")
        );
        // --project-directory is where the search starts, and names the project.
        let g = fixture(&[(
            "elsewhere/compose.yaml",
            "services:\n  web:\n    image: x\n    imagee: y\n",
        )]);
        let e = load_in(
            &f.dir,
            &[],
            Some(&g.dir.join("elsewhere")),
            None,
            &[],
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:4: services.web: unknown key \"imagee\"",
                g.dir.join("elsewhere/compose.yaml").display()
            )
        );
        // Nothing to find.
        let empty = tempfile::tempdir().unwrap();
        let e = load_in(empty.path(), &[], None, None, &[], &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("no compose file found in "), "{e}");
        // A file named with -f that does not exist.
        let e = load_dir(&f, &["nope.yaml"], &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "read {}: no such file or directory",
                f.dir.join("nope.yaml").display()
            )
        );
    }

    /// Every prefix of every golden file goes through parsing, interpolation and typing
    /// without a panic: a cut-off file is an error line, never a crash.
    #[test]
    fn truncated_files_never_panic() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let env: BTreeMap<String, String> = BTreeMap::from([("HOME".into(), "/h".into())]);
        let name: Arc<str> = Arc::from("compose.yaml");
        let mut checked = 0;
        for case in std::fs::read_dir(root).unwrap() {
            let Ok(text) = std::fs::read_to_string(case.unwrap().path().join("compose.yaml"))
            else {
                continue;
            };
            for (i, _) in text.char_indices() {
                let cx = Cx { file: &name };
                if let Ok(mut root) = yaml::parse(&name, &text[..i]) {
                    if interpolate(cx, &mut root, "", 0, &env, &mut Vec::new()).is_ok() {
                        let _ = parse::file(cx, &root);
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked}");
    }
}
