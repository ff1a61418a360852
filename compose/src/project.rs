//! Loading a project: finding the files and the `.env`, interpolating, typing and merging
//! the files, then resolving what needs the whole project: its name, paths (relative to the
//! project directory, `~` expanded), each service's environment (`env_file`s, then
//! `environment`), container names, the default network, the real names of networks and
//! volumes, references between services, networks and volumes, and the start order.
//! It reads files and nothing else: no image, no container, no network is touched.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Loc, Result};
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
            _ => vec![find_default(&cwd)?],
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

/// The first of compose's default file names in `cwd` or the nearest parent that has one.
fn find_default(cwd: &Path) -> Result<(PathBuf, Arc<str>)> {
    let mut dir = Some(cwd);
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
        cwd.display(),
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

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
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
    for s in p.services.values() {
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
