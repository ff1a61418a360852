//! One compose file, from its (interpolated) YAML tree to typed values: every key of the
//! supported subset in each of its syntaxes, unknown keys and wrong types refused with
//! one line naming file, line and key. Paths stay as written and nothing is checked across
//! services here: merging and resolving come after, over all the files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Loc, Result};
use crate::model::{
    Build, Condition, Dependency, Deploy, Device, EnvFile, Healthcheck, Limits, Mount, MountStyle,
    MountType, Network, Port, Restart, Service, ServiceNetwork, Value, Volume,
};
use crate::read::{index, key, Cx};
use crate::yaml::{Entry, Node, Type};
use crate::{mounts, ports, shell, units};

/// What one file says.
#[derive(Debug, Default)]
pub(crate) struct File {
    pub name: Option<(String, Loc)>,
    pub services: Vec<Service>,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    pub extensions: BTreeMap<String, Value>,
}

pub(crate) fn file(cx: Cx, root: &Node) -> Result<File> {
    let mut f = File::default();
    let Node::Map(entries, _) = root else {
        return Err(cx.err(root.line(), "(top level)", "expected a map of compose keys"));
    };
    for e in entries {
        match e.key.as_str() {
            // Compose accepts `version` and ignores it (the Compose specification, "version").
            "version" => {}
            "name" => f.name = Some((cx.str(&e.value, e.line, "name")?, cx.loc(e.line))),
            "services" => {
                for s in cx.map(&e.value, e.line, "services")? {
                    f.services.push(service(cx, s)?);
                }
            }
            "networks" => {
                for n in cx.map(&e.value, e.line, "networks")? {
                    f.networks.insert(n.key.clone(), network(cx, n)?);
                }
            }
            "volumes" => {
                for v in cx.map(&e.value, e.line, "volumes")? {
                    f.volumes.insert(v.key.clone(), volume(cx, v)?);
                }
            }
            k if k.starts_with("x-") => {
                f.extensions.insert(e.key.clone(), cx.value(&e.value));
            }
            _ => {
                // A map with `image` or `build` at the top is a service of the version 1
                // format, which docker compose v2 no longer reads either.
                let v1 = matches!(&e.value, Node::Map(m, _) if m.iter().any(|f| f.key == "image" || f.key == "build"));
                let hint = if v1 {
                    " (services go under \"services:\"; the version 1 format without it is not supported, as in docker compose v2)"
                } else {
                    ""
                };
                return Err(cx.err(
                    e.line,
                    "(top level)",
                    format_args!("unknown key {:?}{hint}", e.key),
                ));
            }
        }
    }
    Ok(f)
}

fn service(cx: Cx, entry: &Entry) -> Result<Service> {
    let path = key("services", &entry.key);
    let path = path.as_str();
    let mut s = Service {
        name: entry.key.clone(),
        at: Some(cx.loc(entry.line)),
        ..Service::default()
    };
    if !valid_service_name(&entry.key) {
        return Err(cx.err(
            entry.line,
            path,
            "a service name must be letters, digits, '.', '_' and '-', starting with a letter or digit",
        ));
    }
    for e in cx.map(&entry.value, entry.line, path)? {
        let p = key(path, &e.key);
        let (v, l, p) = (&e.value, e.line, p.as_str());
        match e.key.as_str() {
            "image" => s.image = Some(cx.str(v, l, p)?),
            "build" => s.build = Some(build(cx, v, l, p)?),
            "container_name" => s.container_name = Some(cx.str(v, l, p)?),
            "command" => s.command = Some(command(cx, v, l, p)?),
            "entrypoint" => s.entrypoint = Some(command(cx, v, l, p)?),
            "environment" => {
                for (k, val, _) in cx.dict(v, l, p)? {
                    s.environment.insert(k, val);
                }
            }
            "env_file" => {
                s.env_file = env_files(cx, v, l, p)?;
                s.locs.insert("env_file".into(), cx.loc(l));
            }
            "volumes" => {
                for (i, it) in cx.seq(v, l, p)?.iter().enumerate() {
                    let mut m = mount(cx, it, &index(p, i))?;
                    m.at = Some(cx.loc(it.line()));
                    s.volumes.push(m);
                }
            }
            "devices" => {
                for (i, it) in cx.seq(v, l, p)?.iter().enumerate() {
                    let ip = index(p, i);
                    let spec = cx.str(it, it.line(), &ip)?;
                    s.devices
                        .push(device(&spec).map_err(|m| cx.err(it.line(), &ip, m))?);
                }
            }
            "ports" => {
                for (i, it) in cx.seq(v, l, p)?.iter().enumerate() {
                    s.ports.extend(port(cx, it, &index(p, i))?);
                }
            }
            "expose" => {
                for (i, it) in cx.seq(v, l, p)?.iter().enumerate() {
                    let ip = index(p, i);
                    let spec = cx.str_or_number(it, it.line(), &ip)?;
                    s.expose
                        .push(ports::expose(&spec).map_err(|m| cx.err(it.line(), &ip, m))?);
                }
            }
            "networks" => {
                s.networks = service_networks(cx, v, l, p)?;
                for (name, line) in network_lines(v) {
                    s.locs.insert(format!("networks.{name}"), cx.loc(line));
                }
            }
            "depends_on" => s.depends_on = depends_on(cx, v, l, p)?,
            "healthcheck" => s.healthcheck = Some(healthcheck(cx, v, l, p)?),
            "restart" => {
                let r = cx.str(v, l, p)?;
                s.restart = Some(restart(&r).ok_or_else(|| {
                    cx.err(l, p, format_args!("invalid restart policy {r:?} (no, always, on-failure[:N] or unless-stopped)"))
                })?);
            }
            "user" => s.user = Some(cx.str(v, l, p)?),
            "working_dir" => s.working_dir = Some(cx.str(v, l, p)?),
            "hostname" => s.hostname = Some(cx.str(v, l, p)?),
            "cap_add" => s.cap_add = cx.list(v, l, p)?,
            "cap_drop" => s.cap_drop = cx.list(v, l, p)?,
            "security_opt" => s.security_opt = cx.list(v, l, p)?,
            "mem_limit" => s.mem_limit = Some(bytes(cx, v, l, p)?),
            "cpus" => s.cpus = Some(cpus(cx, v, l, p)?),
            "pids_limit" => s.pids_limit = Some(cx.int(v, l, p)?),
            "deploy" => s.deploy = Some(deploy(cx, v, l, p)?),
            "init" => s.init = Some(cx.bool(v, l, p)?),
            "tty" => s.tty = Some(cx.bool(v, l, p)?),
            "stdin_open" => s.stdin_open = Some(cx.bool(v, l, p)?),
            "read_only" => s.read_only = Some(cx.bool(v, l, p)?),
            "ipc" => s.ipc = Some(cx.str(v, l, p)?),
            "group_add" => {
                for (i, it) in cx.seq(v, l, p)?.iter().enumerate() {
                    s.group_add
                        .push(cx.str_or_number(it, it.line(), &index(p, i))?);
                }
            }
            "shm_size" => s.shm_size = Some(bytes(cx, v, l, p)?),
            "labels" => {
                for (k, val, _) in cx.dict(v, l, p)? {
                    s.labels.insert(k, val.unwrap_or_default());
                }
            }
            "tmpfs" => s.tmpfs = cx.str_or_list(v, l, p)?,
            "extra_hosts" => s.extra_hosts = extra_hosts(cx, v, l, p)?,
            "dns" => s.dns = cx.str_or_list(v, l, p)?,
            k if k.starts_with("x-") => {
                s.extensions.insert(e.key.clone(), cx.value(v));
            }
            _ => return Err(cx.unknown(e, path)),
        }
    }
    Ok(s)
}

/// Compose's rule for service names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn valid_service_name(n: &str) -> bool {
    n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn build(cx: Cx, v: &Node, l: u32, p: &str) -> Result<Build> {
    let mut b = Build {
        context: PathBuf::from("."),
        ..Build::default()
    };
    if let Node::Scalar(s, _) = v {
        if s.ty == Type::Str {
            b.context = PathBuf::from(&s.text);
            b.context_set = true;
            return Ok(b);
        }
    }
    if !matches!(v, Node::Map(..)) {
        return Err(cx.err(l, p, "expected a string (the context) or a map"));
    }
    for e in cx.map(v, l, p)? {
        let ep = key(p, &e.key);
        match e.key.as_str() {
            "context" => {
                b.context = PathBuf::from(cx.str(&e.value, e.line, &ep)?);
                b.context_set = true;
            }
            "dockerfile" => {
                b.dockerfile = cx.str(&e.value, e.line, &ep)?;
                b.dockerfile_set = true;
            }
            "args" => {
                for (k, val, _) in cx.dict(&e.value, e.line, &ep)? {
                    b.args.insert(k, val);
                }
            }
            "target" => b.target = Some(cx.str(&e.value, e.line, &ep)?),
            _ => return Err(cx.unknown(e, p)),
        }
    }
    Ok(b)
}

/// A string, split as a shell would, or a list of strings taken as they are.
fn command(cx: Cx, v: &Node, l: u32, p: &str) -> Result<Vec<String>> {
    match v {
        Node::Scalar(s, _) if s.ty == Type::Str => {
            shell::split(&s.text).map_err(|e| cx.err(l, p, e))
        }
        Node::Seq(items, _) => items
            .iter()
            .enumerate()
            .map(|(i, it)| cx.str_or_number(it, it.line(), &index(p, i)))
            .collect(),
        _ => Err(cx.err(l, p, "expected a string or a list of strings")),
    }
}

fn env_files(cx: Cx, v: &Node, l: u32, p: &str) -> Result<Vec<EnvFile>> {
    let one = |path: String| EnvFile {
        path: PathBuf::from(path),
        required: true,
    };
    match v {
        Node::Scalar(s, _) if s.ty == Type::Str => Ok(vec![one(s.text.clone())]),
        Node::Seq(items, _) => {
            let mut out = Vec::new();
            for (i, it) in items.iter().enumerate() {
                let ip = index(p, i);
                if let Node::Map(entries, _) = it {
                    let mut f = EnvFile {
                        path: PathBuf::new(),
                        required: true,
                    };
                    let mut has_path = false;
                    for e in entries {
                        let ep = key(&ip, &e.key);
                        match e.key.as_str() {
                            "path" => {
                                f.path = PathBuf::from(cx.str(&e.value, e.line, &ep)?);
                                has_path = true;
                            }
                            "required" => f.required = cx.bool(&e.value, e.line, &ep)?,
                            _ => return Err(cx.unknown(e, &ip)),
                        }
                    }
                    if !has_path {
                        return Err(cx.err(it.line(), &ip, "missing key \"path\""));
                    }
                    out.push(f);
                } else {
                    out.push(one(cx.str(it, it.line(), &ip)?));
                }
            }
            Ok(out)
        }
        _ => Err(cx.err(l, p, "expected a string or a list")),
    }
}

fn mount(cx: Cx, it: &Node, p: &str) -> Result<Mount> {
    let l = it.line();
    let entries = match it {
        Node::Scalar(s, _) if s.ty == Type::Str => {
            return mounts::parse_short(&s.text).map_err(|m| cx.err(l, p, m));
        }
        Node::Map(entries, _) => entries,
        _ => return Err(cx.err(l, p, "expected a string (SOURCE:TARGET[:ro]) or a map")),
    };
    let mut kind = None;
    let mut m = Mount {
        kind: MountType::Volume,
        source: None,
        target: String::new(),
        read_only: false,
        create_host_path: false,
        propagation: None,
        selinux: None,
        nocopy: false,
        tmpfs_size: None,
        tmpfs_mode: None,
        style: MountStyle::default(),
        at: None,
    };
    for e in entries {
        let ep = key(p, &e.key);
        let (v, el, ep) = (&e.value, e.line, ep.as_str());
        match e.key.as_str() {
            "type" => {
                let t = cx.str(v, el, ep)?;
                kind = Some(match t.as_str() {
                    "bind" => MountType::Bind,
                    "volume" => MountType::Volume,
                    "tmpfs" => MountType::Tmpfs,
                    _ => {
                        return Err(cx.err(
                            el,
                            ep,
                            format_args!("unsupported mount type {t:?} (bind, volume or tmpfs)"),
                        ))
                    }
                });
            }
            "source" => m.source = Some(cx.str(v, el, ep)?),
            "target" => m.target = cx.str(v, el, ep)?,
            "read_only" => m.read_only = cx.bool(v, el, ep)?,
            "bind" => {
                m.style.bind = true;
                // compose's default for `bind:` without `create_host_path` is true.
                m.create_host_path = true;
                for b in cx.map(v, el, ep)? {
                    let bp = key(ep, &b.key);
                    match b.key.as_str() {
                        "create_host_path" => {
                            m.create_host_path = cx.bool(&b.value, b.line, &bp)?
                        }
                        "propagation" => {
                            let pr = cx.str(&b.value, b.line, &bp)?;
                            if !mounts::is_propagation(&pr) {
                                return Err(cx.err(
                                    b.line,
                                    &bp,
                                    format_args!("invalid propagation {pr:?}"),
                                ));
                            }
                            m.propagation = Some(pr);
                        }
                        "selinux" => {
                            let z = cx.str(&b.value, b.line, &bp)?;
                            if z != "z" && z != "Z" {
                                return Err(cx.err(b.line, &bp, "expected z or Z"));
                            }
                            m.selinux = Some(z);
                        }
                        _ => return Err(cx.unknown(b, ep)),
                    }
                }
            }
            "volume" => {
                m.style.volume = true;
                for b in cx.map(v, el, ep)? {
                    match b.key.as_str() {
                        "nocopy" => m.nocopy = cx.bool(&b.value, b.line, &key(ep, &b.key))?,
                        _ => return Err(cx.unknown(b, ep)),
                    }
                }
            }
            "tmpfs" => {
                m.style.tmpfs = true;
                for b in cx.map(v, el, ep)? {
                    let bp = key(ep, &b.key);
                    match b.key.as_str() {
                        "size" => m.tmpfs_size = Some(bytes(cx, &b.value, b.line, &bp)?),
                        "mode" => {
                            let mode = cx.uint(&b.value, b.line, &bp)?;
                            m.tmpfs_mode = Some(
                                u32::try_from(mode)
                                    .map_err(|_| cx.err(b.line, &bp, "mode is too large"))?,
                            );
                        }
                        _ => return Err(cx.unknown(b, ep)),
                    }
                }
            }
            _ => return Err(cx.unknown(e, p)),
        }
    }
    let Some(kind) = kind else {
        return Err(cx.err(l, p, "missing key \"type\""));
    };
    m.kind = kind;
    if m.target.is_empty() {
        return Err(cx.err(l, p, "missing key \"target\""));
    }
    match kind {
        MountType::Bind if m.source.is_none() => {
            return Err(cx.err(l, p, "a bind mount needs a \"source\""))
        }
        MountType::Tmpfs if m.source.is_some() => {
            return Err(cx.err(l, p, "a tmpfs mount takes no \"source\""))
        }
        _ => {}
    }
    let wrong = [
        (m.style.bind && kind != MountType::Bind, "bind"),
        (m.style.volume && kind != MountType::Volume, "volume"),
        (m.style.tmpfs && kind != MountType::Tmpfs, "tmpfs"),
    ];
    if let Some((_, w)) = wrong.iter().find(|(bad, _)| *bad) {
        return Err(cx.err(
            l,
            p,
            format_args!("\"{w}\" options on a mount of type {}", kind.as_str()),
        ));
    }
    Ok(m)
}

/// `HOST[:CONTAINER[:PERMISSIONS]]`.
fn device(spec: &str) -> std::result::Result<Device, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, perms) = match parts.as_slice() {
        [s] => (*s, *s, "rwm"),
        [s, t] => (*s, *t, "rwm"),
        [s, t, p] => (*s, *t, *p),
        _ => return Err(format!("too many colons in device {spec:?}")),
    };
    if source.is_empty() || target.is_empty() {
        return Err(format!("empty path in device {spec:?}"));
    }
    if perms.is_empty() || !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(format!(
            "invalid device permissions {perms:?} (a combination of r, w and m)"
        ));
    }
    Ok(Device {
        source: source.to_string(),
        target: target.to_string(),
        permissions: perms.to_string(),
        spec: spec.to_string(),
    })
}

fn port(cx: Cx, it: &Node, p: &str) -> Result<Vec<Port>> {
    let l = it.line();
    match it {
        Node::Scalar(s, _) if matches!(s.ty, Type::Str | Type::Int) => {
            ports::parse_short(&s.text).map_err(|m| cx.err(l, p, m))
        }
        Node::Map(entries, _) => {
            let mut port = Port {
                target: 0,
                published: None,
                host_ip: None,
                protocol: "tcp".to_string(),
                mode: "ingress".to_string(),
                name: None,
                app_protocol: None,
            };
            let mut has_target = false;
            for e in entries {
                let ep = key(p, &e.key);
                let (v, el, ep) = (&e.value, e.line, ep.as_str());
                match e.key.as_str() {
                    "target" => {
                        let t = cx.int(v, el, ep)?;
                        port.target = u16::try_from(t)
                            .ok()
                            .filter(|t| *t > 0)
                            .ok_or_else(|| cx.err(el, ep, "expected a port number (1-65535)"))?;
                        has_target = true;
                    }
                    "published" => {
                        let pp = cx.str_or_number(v, el, ep)?;
                        port.published =
                            Some(ports::published(&pp).map_err(|m| cx.err(el, ep, m))?);
                    }
                    "host_ip" => {
                        let ip = cx.str(v, el, ep)?;
                        if ip.parse::<std::net::IpAddr>().is_err() {
                            return Err(cx.err(el, ep, format_args!("invalid IP address {ip:?}")));
                        }
                        port.host_ip = Some(ip);
                    }
                    "protocol" => {
                        port.protocol =
                            ports::protocol(&cx.str(v, el, ep)?).map_err(|m| cx.err(el, ep, m))?
                    }
                    "mode" => {
                        let m = cx.str(v, el, ep)?;
                        if m != "host" && m != "ingress" {
                            return Err(cx.err(el, ep, "expected host or ingress"));
                        }
                        port.mode = m;
                    }
                    "name" => port.name = Some(cx.str(v, el, ep)?),
                    "app_protocol" => port.app_protocol = Some(cx.str(v, el, ep)?),
                    _ => return Err(cx.unknown(e, p)),
                }
            }
            if !has_target {
                return Err(cx.err(l, p, "missing key \"target\""));
            }
            Ok(vec![port])
        }
        _ => Err(cx.err(l, p, "expected a string or a number")),
    }
}

fn service_networks(
    cx: Cx,
    v: &Node,
    l: u32,
    p: &str,
) -> Result<BTreeMap<String, Option<ServiceNetwork>>> {
    let mut out = BTreeMap::new();
    match v {
        Node::Seq(items, _) => {
            for (i, it) in items.iter().enumerate() {
                out.insert(cx.str(it, it.line(), &index(p, i))?, None);
            }
        }
        Node::Map(entries, _) => {
            for e in entries {
                let ep = key(p, &e.key);
                if e.value.is_null() {
                    out.insert(e.key.clone(), None);
                    continue;
                }
                let mut n = ServiceNetwork::default();
                for f in cx.map(&e.value, e.line, &ep)? {
                    let fp = key(&ep, &f.key);
                    match f.key.as_str() {
                        "aliases" => n.aliases = cx.list(&f.value, f.line, &fp)?,
                        "ipv4_address" => n.ipv4_address = Some(cx.str(&f.value, f.line, &fp)?),
                        "ipv6_address" => n.ipv6_address = Some(cx.str(&f.value, f.line, &fp)?),
                        _ => return Err(cx.unknown(f, &ep)),
                    }
                }
                out.insert(e.key.clone(), Some(n));
            }
        }
        _ => return Err(cx.err(l, p, "expected a list or a map")),
    }
    Ok(out)
}

/// The line of each network a service names.
fn network_lines(v: &Node) -> Vec<(String, u32)> {
    match v {
        Node::Seq(items, _) => items
            .iter()
            .filter_map(|it| match it {
                Node::Scalar(s, l) => Some((s.text.clone(), *l)),
                _ => None,
            })
            .collect(),
        Node::Map(entries, _) => entries.iter().map(|e| (e.key.clone(), e.line)).collect(),
        _ => Vec::new(),
    }
}

fn depends_on(cx: Cx, v: &Node, l: u32, p: &str) -> Result<BTreeMap<String, Dependency>> {
    let mut out = BTreeMap::new();
    let started = |line| Dependency {
        condition: Condition::Started,
        required: true,
        restart: false,
        at: cx.loc(line),
    };
    match v {
        Node::Seq(items, _) => {
            for (i, it) in items.iter().enumerate() {
                out.insert(cx.str(it, it.line(), &index(p, i))?, started(it.line()));
            }
        }
        Node::Map(entries, _) => {
            for e in entries {
                let ep = key(p, &e.key);
                let mut d = started(e.line);
                for f in cx.map(&e.value, e.line, &ep)? {
                    let fp = key(&ep, &f.key);
                    match f.key.as_str() {
                        "condition" => {
                            let c = cx.str(&f.value, f.line, &fp)?;
                            d.condition = match c.as_str() {
                                "service_started" => Condition::Started,
                                "service_healthy" => Condition::Healthy,
                                "service_completed_successfully" => Condition::CompletedSuccessfully,
                                _ => {
                                    return Err(cx.err(
                                        f.line,
                                        &fp,
                                        format_args!("invalid condition {c:?} (service_started, service_healthy or service_completed_successfully)"),
                                    ))
                                }
                            };
                        }
                        "required" => d.required = cx.bool(&f.value, f.line, &fp)?,
                        "restart" => d.restart = cx.bool(&f.value, f.line, &fp)?,
                        _ => return Err(cx.unknown(f, &ep)),
                    }
                }
                out.insert(e.key.clone(), d);
            }
        }
        _ => return Err(cx.err(l, p, "expected a list or a map")),
    }
    Ok(out)
}

fn healthcheck(cx: Cx, v: &Node, l: u32, p: &str) -> Result<Healthcheck> {
    let mut h = Healthcheck::default();
    for e in cx.map(v, l, p)? {
        let ep = key(p, &e.key);
        let (v, el, ep) = (&e.value, e.line, ep.as_str());
        match e.key.as_str() {
            "test" => {
                h.test = match v {
                    Node::Scalar(s, _) if s.ty == Type::Str => {
                        vec!["CMD-SHELL".to_string(), s.text.clone()]
                    }
                    Node::Seq(..) => {
                        let t = cx.list(v, el, ep)?;
                        if !matches!(
                            t.first().map(String::as_str),
                            Some("CMD" | "CMD-SHELL" | "NONE")
                        ) {
                            return Err(cx.err(
                                el,
                                ep,
                                "a list must start with CMD, CMD-SHELL or NONE",
                            ));
                        }
                        t
                    }
                    _ => return Err(cx.err(el, ep, "expected a string or a list of strings")),
                }
            }
            "interval" => h.interval = Some(duration(cx, v, el, ep)?),
            "timeout" => h.timeout = Some(duration(cx, v, el, ep)?),
            "start_period" => h.start_period = Some(duration(cx, v, el, ep)?),
            "start_interval" => h.start_interval = Some(duration(cx, v, el, ep)?),
            "retries" => h.retries = Some(cx.uint(v, el, ep)?),
            "disable" => h.disable = cx.bool(v, el, ep)?,
            _ => return Err(cx.unknown(e, p)),
        }
    }
    Ok(h)
}

fn deploy(cx: Cx, v: &Node, l: u32, p: &str) -> Result<Deploy> {
    let mut d = Deploy::default();
    for e in cx.map(v, l, p)? {
        let rp = key(p, &e.key);
        match e.key.as_str() {
            "resources" => {
                for r in cx.map(&e.value, e.line, &rp)? {
                    let lp = key(&rp, &r.key);
                    match r.key.as_str() {
                        "limits" => d.limits = limits(cx, &r.value, r.line, &lp)?,
                        _ => return Err(cx.unknown(r, &rp)),
                    }
                }
            }
            _ => return Err(cx.unknown(e, p)),
        }
    }
    Ok(d)
}

fn limits(cx: Cx, v: &Node, l: u32, p: &str) -> Result<Limits> {
    let mut lim = Limits::default();
    for e in cx.map(v, l, p)? {
        let ep = key(p, &e.key);
        match e.key.as_str() {
            "cpus" => lim.cpus = Some(cpus(cx, &e.value, e.line, &ep)?),
            "memory" => lim.memory = Some(bytes(cx, &e.value, e.line, &ep)?),
            "pids" => lim.pids = Some(cx.int(&e.value, e.line, &ep)?),
            _ => return Err(cx.unknown(e, p)),
        }
    }
    Ok(lim)
}

fn extra_hosts(cx: Cx, v: &Node, l: u32, p: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut add = |host: String, ip: String, line: u32, path: &str| -> Result<()> {
        if host.is_empty() || host.contains([':', '=']) || ip.is_empty() {
            return Err(cx.err(
                line,
                path,
                format_args!("expected HOST:IP or HOST=IP, got {host:?} and {ip:?}"),
            ));
        }
        // compose drops the brackets of an IPv6 address: "[::1]" is "::1".
        let ip = ip
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .map(str::to_string)
            .unwrap_or(ip);
        out.push((host, ip));
        Ok(())
    };
    match v {
        Node::Seq(items, _) => {
            for (i, it) in items.iter().enumerate() {
                let ip_path = index(p, i);
                let s = cx.str(it, it.line(), &ip_path)?;
                // `=` first, so that an IPv6 address keeps its colons.
                let (h, ip) = s
                    .split_once('=')
                    .or_else(|| s.split_once(':'))
                    .ok_or_else(|| {
                        cx.err(
                            it.line(),
                            &ip_path,
                            format_args!("expected HOST:IP or HOST=IP, got {s:?}"),
                        )
                    })?;
                add(h.to_string(), ip.to_string(), it.line(), &ip_path)?;
            }
        }
        Node::Map(entries, _) => {
            for e in entries {
                let ep = key(p, &e.key);
                match &e.value {
                    Node::Seq(items, _) => {
                        for (i, it) in items.iter().enumerate() {
                            let ip = cx.str(it, it.line(), &index(&ep, i))?;
                            add(e.key.clone(), ip, it.line(), &ep)?;
                        }
                    }
                    other => add(e.key.clone(), cx.str(other, e.line, &ep)?, e.line, &ep)?,
                }
            }
        }
        _ => return Err(cx.err(l, p, "expected a list or a map")),
    }
    Ok(out)
}

fn network(cx: Cx, e: &Entry) -> Result<Network> {
    let p = key("networks", &e.key);
    let mut n = Network::default();
    for f in cx.map(&e.value, e.line, &p)? {
        let fp = key(&p, &f.key);
        let (v, l, fp) = (&f.value, f.line, fp.as_str());
        match f.key.as_str() {
            "name" => {
                n.name = cx.str(v, l, fp)?;
                n.name_set = true;
            }
            "driver" => n.driver = Some(cx.str(v, l, fp)?),
            "driver_opts" => n.driver_opts = string_map(cx, v, l, fp)?,
            "external" => external(cx, v, l, fp, &mut n.external, &mut n.name, &mut n.name_set)?,
            "internal" => n.internal = cx.bool(v, l, fp)?,
            "labels" => n.labels = string_map(cx, v, l, fp)?,
            k if k.starts_with("x-") => {
                n.extensions.insert(f.key.clone(), cx.value(v));
            }
            _ => return Err(cx.unknown(f, &p)),
        }
    }
    Ok(n)
}

fn volume(cx: Cx, e: &Entry) -> Result<Volume> {
    let p = key("volumes", &e.key);
    let mut vol = Volume::default();
    for f in cx.map(&e.value, e.line, &p)? {
        let fp = key(&p, &f.key);
        let (v, l, fp) = (&f.value, f.line, fp.as_str());
        match f.key.as_str() {
            "name" => {
                vol.name = cx.str(v, l, fp)?;
                vol.name_set = true;
            }
            "driver" => vol.driver = Some(cx.str(v, l, fp)?),
            "driver_opts" => vol.driver_opts = string_map(cx, v, l, fp)?,
            "external" => external(
                cx,
                v,
                l,
                fp,
                &mut vol.external,
                &mut vol.name,
                &mut vol.name_set,
            )?,
            "labels" => vol.labels = string_map(cx, v, l, fp)?,
            k if k.starts_with("x-") => {
                vol.extensions.insert(f.key.clone(), cx.value(v));
            }
            _ => return Err(cx.unknown(f, &p)),
        }
    }
    Ok(vol)
}

/// `external: true`, or the older `external: {name: NAME}`, which compose still reads.
fn external(
    cx: Cx,
    v: &Node,
    l: u32,
    p: &str,
    ext: &mut bool,
    name: &mut String,
    name_set: &mut bool,
) -> Result<()> {
    if let Node::Map(entries, _) = v {
        *ext = true;
        for e in entries {
            match e.key.as_str() {
                "name" => {
                    *name = cx.str(&e.value, e.line, &key(p, "name"))?;
                    *name_set = true;
                }
                _ => return Err(cx.unknown(e, p)),
            }
        }
        return Ok(());
    }
    *ext = cx.bool(v, l, p)?;
    Ok(())
}

fn string_map(cx: Cx, v: &Node, l: u32, p: &str) -> Result<BTreeMap<String, String>> {
    Ok(cx
        .dict(v, l, p)?
        .into_iter()
        .map(|(k, v, _)| (k, v.unwrap_or_default()))
        .collect())
}

fn bytes(cx: Cx, v: &Node, l: u32, p: &str) -> Result<u64> {
    let s = cx.str_or_number(v, l, p)?;
    units::parse_bytes(&s).ok_or_else(|| {
        cx.err(
            l,
            p,
            format_args!("invalid size {s:?} (bytes, or a number with b, k, m or g)"),
        )
    })
}

fn cpus(cx: Cx, v: &Node, l: u32, p: &str) -> Result<f64> {
    let c = cx.float(v, l, p)?;
    if c < 0.0 {
        return Err(cx.err(l, p, "expected a number of CPUs, 0 or more"));
    }
    Ok(c)
}

fn duration(cx: Cx, v: &Node, l: u32, p: &str) -> Result<std::time::Duration> {
    let s = cx.str(v, l, p)?;
    units::parse_duration(&s).ok_or_else(|| {
        cx.err(
            l,
            p,
            format_args!("invalid duration {s:?} (like 1m30s, 10s or 500ms)"),
        )
    })
}

pub(crate) fn restart(r: &str) -> Option<Restart> {
    match r {
        "no" => Some(Restart::No),
        "always" => Some(Restart::Always),
        "unless-stopped" => Some(Restart::UnlessStopped),
        "on-failure" => Some(Restart::OnFailure(None)),
        _ => {
            let n = r.strip_prefix("on-failure:")?;
            Some(Restart::OnFailure(Some(n.parse().ok()?)))
        }
    }
}
