//! `config`: the project printed as `docker compose config` (v2, compose-go v2) prints it.
//! Fields come in compose-go's struct order, maps sorted as go-yaml sorts them, short syntaxes
//! in their long form, defaults filled in (`networks: {default: null}`, `mode: ingress`,
//! `protocol: tcp`, `bind: {create_host_path: true}`, `required: true`), `env_file`s folded
//! into `environment` and left out, sizes as strings of bytes, durations as Go prints them,
//! and every `$` written `$$` so that the output loads back to the same values.
//! Where minibox differs: a build without `dockerfile` shows the Minifile it will use.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::emit::{self, Out};
use crate::model::{MountType, Network, Project, Service, Value, Volume};
use crate::units::go_duration;

impl Project {
    /// The normalized project as YAML, as `docker compose config` prints it.
    pub fn config_yaml(&self) -> String {
        let mut top = vec![("name".to_string(), s(&self.name))];
        top.push((
            "services".to_string(),
            sorted_map(self.services.iter().map(|(k, v)| (k.clone(), service(v)))),
        ));
        if !self.networks.is_empty() {
            top.push((
                "networks".to_string(),
                sorted_map(self.networks.iter().map(|(k, n)| (k.clone(), network(n)))),
            ));
        }
        if !self.volumes.is_empty() {
            top.push((
                "volumes".to_string(),
                sorted_map(self.volumes.iter().map(|(k, v)| (k.clone(), volume(v)))),
            ));
        }
        extensions(&mut top, &self.extensions);
        // As docker compose does (cmd/compose/config.go, escapeDollarSign): a `$` left after
        // interpolation is a literal one, and `$$` is how a compose file says that.
        emit::to_string(&Out::Map(top)).replace('$', "$$")
    }
}

fn s(v: &str) -> Out {
    Out::Str(v.to_string())
}

fn strs(v: &[String]) -> Out {
    Out::Seq(v.iter().map(|x| s(x)).collect())
}

fn bytes(b: u64) -> Out {
    Out::Str(b.to_string())
}

/// A Go map as go-yaml writes it: keys in its natural order.
fn sorted_map(entries: impl Iterator<Item = (String, Out)>) -> Out {
    let mut v: Vec<(String, Out)> = entries.collect();
    v.sort_by(|a, b| go_key_cmp(&a.0, &b.0));
    Out::Map(v)
}

fn opt_map(m: &BTreeMap<String, Option<String>>) -> Out {
    sorted_map(
        m.iter()
            .map(|(k, v)| (k.clone(), v.as_deref().map_or(Out::Null, s))),
    )
}

fn str_map(m: &BTreeMap<String, String>) -> Out {
    sorted_map(m.iter().map(|(k, v)| (k.clone(), s(v))))
}

fn extensions(out: &mut Vec<(String, Out)>, ext: &BTreeMap<String, Value>) {
    let mut v: Vec<(String, Out)> = ext.iter().map(|(k, v)| (k.clone(), value(v))).collect();
    v.sort_by(|a, b| go_key_cmp(&a.0, &b.0));
    out.extend(v);
}

fn value(v: &Value) -> Out {
    match v {
        Value::Null => Out::Null,
        Value::Bool(b) => Out::Bool(*b),
        Value::Int(i) => Out::Int(*i),
        Value::Float(f) => Out::Float(*f, false),
        Value::Str(x) => s(x),
        Value::Seq(items) => Out::Seq(items.iter().map(value).collect()),
        Value::Map(m) => sorted_map(m.iter().map(|(k, v)| (k.clone(), value(v)))),
    }
}

/// compose-go's `ServiceConfig` field order, for the fields minibox reads.
fn service(sv: &Service) -> Out {
    let mut m: Vec<(String, Out)> = Vec::new();
    let mut put = |k: &str, v: Out| m.push((k.to_string(), v));
    if let Some(b) = &sv.build {
        let mut bm = vec![
            ("context".to_string(), s(&b.context.to_string_lossy())),
            ("dockerfile".to_string(), s(&b.dockerfile)),
        ];
        if !b.args.is_empty() {
            bm.push(("args".to_string(), opt_map(&b.args)));
        }
        if let Some(t) = &b.target {
            bm.push(("target".to_string(), s(t)));
        }
        put("build", Out::Map(bm));
    }
    if !sv.cap_add.is_empty() {
        put("cap_add", strs(&sv.cap_add));
    }
    if !sv.cap_drop.is_empty() {
        put("cap_drop", strs(&sv.cap_drop));
    }
    if let Some(c) = sv.cpus.filter(|c| *c != 0.0) {
        put("cpus", Out::Float(c, true));
    }
    if let Some(c) = sv.command.as_ref().filter(|c| !c.is_empty()) {
        put("command", strs(c));
    }
    if let Some(n) = &sv.container_name {
        put("container_name", s(n));
    }
    if !sv.depends_on.is_empty() {
        put(
            "depends_on",
            sorted_map(sv.depends_on.iter().map(|(k, d)| {
                let mut dm = vec![("condition".to_string(), s(d.condition.as_str()))];
                if d.restart {
                    dm.push(("restart".to_string(), Out::Bool(true)));
                }
                dm.push(("required".to_string(), Out::Bool(d.required)));
                (k.clone(), Out::Map(dm))
            })),
        );
    }
    if let Some(d) = &sv.deploy {
        let mut lm = Vec::new();
        if let Some(c) = d.limits.cpus.filter(|c| *c != 0.0) {
            lm.push(("cpus".to_string(), Out::Float(c, true)));
        }
        if let Some(b) = d.limits.memory.filter(|b| *b != 0) {
            lm.push(("memory".to_string(), bytes(b)));
        }
        if let Some(p) = d.limits.pids.filter(|p| *p != 0) {
            lm.push(("pids".to_string(), Out::Int(p)));
        }
        let resources = if lm.is_empty() {
            vec![]
        } else {
            vec![(
                "resources".to_string(),
                Out::Map(vec![("limits".to_string(), Out::Map(lm))]),
            )]
        };
        put("deploy", Out::Map(resources));
    }
    if !sv.devices.is_empty() {
        put(
            "devices",
            Out::Seq(sv.devices.iter().map(|d| s(&d.spec)).collect()),
        );
    }
    if !sv.dns.is_empty() {
        put("dns", strs(&sv.dns));
    }
    if let Some(e) = sv.entrypoint.as_ref().filter(|e| !e.is_empty()) {
        put("entrypoint", strs(e));
    }
    if !sv.environment.is_empty() {
        put("environment", opt_map(&sv.environment));
    }
    if !sv.expose.is_empty() {
        put("expose", strs(&sv.expose));
    }
    if !sv.extra_hosts.is_empty() {
        let mut hosts: Vec<String> = sv
            .extra_hosts
            .iter()
            .map(|(h, ip)| format!("{h}={ip}"))
            .collect();
        hosts.sort();
        put("extra_hosts", strs(&hosts));
    }
    if !sv.group_add.is_empty() {
        put("group_add", strs(&sv.group_add));
    }
    if let Some(h) = &sv.hostname {
        put("hostname", s(h));
    }
    if let Some(h) = &sv.healthcheck {
        let mut hm = Vec::new();
        if !h.test.is_empty() {
            hm.push(("test".to_string(), strs(&h.test)));
        }
        let durations = [("timeout", h.timeout), ("interval", h.interval)];
        for (k, d) in durations {
            if let Some(d) = d {
                hm.push((k.to_string(), s(&go_duration(d))));
            }
        }
        if let Some(r) = h.retries {
            hm.push(("retries".to_string(), Out::Int(r as i64)));
        }
        for (k, d) in [
            ("start_period", h.start_period),
            ("start_interval", h.start_interval),
        ] {
            if let Some(d) = d {
                hm.push((k.to_string(), s(&go_duration(d))));
            }
        }
        if h.disable {
            hm.push(("disable".to_string(), Out::Bool(true)));
        }
        put("healthcheck", Out::Map(hm));
    }
    if let Some(i) = &sv.image {
        put("image", s(i));
    }
    if let Some(i) = sv.init {
        put("init", Out::Bool(i));
    }
    if let Some(i) = &sv.ipc {
        put("ipc", s(i));
    }
    if !sv.labels.is_empty() {
        put("labels", str_map(&sv.labels));
    }
    if let Some(b) = sv.mem_limit.filter(|b| *b != 0) {
        put("mem_limit", bytes(b));
    }
    put(
        "networks",
        sorted_map(sv.networks.iter().map(|(k, n)| {
            let v = match n {
                None => Out::Null,
                Some(n) => {
                    let mut nm = Vec::new();
                    if !n.aliases.is_empty() {
                        nm.push(("aliases".to_string(), strs(&n.aliases)));
                    }
                    if let Some(a) = &n.ipv4_address {
                        nm.push(("ipv4_address".to_string(), s(a)));
                    }
                    if let Some(a) = &n.ipv6_address {
                        nm.push(("ipv6_address".to_string(), s(a)));
                    }
                    Out::Map(nm)
                }
            };
            (k.clone(), v)
        })),
    );
    if let Some(p) = sv.pids_limit.filter(|p| *p != 0) {
        put("pids_limit", Out::Int(p));
    }
    if !sv.ports.is_empty() {
        put(
            "ports",
            Out::Seq(
                sv.ports
                    .iter()
                    .map(|p| {
                        let mut pm = Vec::new();
                        if let Some(n) = &p.name {
                            pm.push(("name".to_string(), s(n)));
                        }
                        pm.push(("mode".to_string(), s(&p.mode)));
                        if let Some(ip) = &p.host_ip {
                            pm.push(("host_ip".to_string(), s(ip)));
                        }
                        pm.push(("target".to_string(), Out::Int(p.target.into())));
                        if let Some(pb) = &p.published {
                            pm.push(("published".to_string(), s(pb)));
                        }
                        pm.push(("protocol".to_string(), s(&p.protocol)));
                        if let Some(a) = &p.app_protocol {
                            pm.push(("app_protocol".to_string(), s(a)));
                        }
                        Out::Map(pm)
                    })
                    .collect(),
            ),
        );
    }
    if sv.read_only == Some(true) {
        put("read_only", Out::Bool(true));
    }
    if let Some(r) = &sv.restart {
        put("restart", s(&r.to_string()));
    }
    if !sv.security_opt.is_empty() {
        put("security_opt", strs(&sv.security_opt));
    }
    if let Some(b) = sv.shm_size.filter(|b| *b != 0) {
        put("shm_size", bytes(b));
    }
    if sv.stdin_open == Some(true) {
        put("stdin_open", Out::Bool(true));
    }
    if !sv.tmpfs.is_empty() {
        put("tmpfs", strs(&sv.tmpfs));
    }
    if sv.tty == Some(true) {
        put("tty", Out::Bool(true));
    }
    if let Some(u) = &sv.user {
        put("user", s(u));
    }
    if !sv.volumes.is_empty() {
        put("volumes", Out::Seq(sv.volumes.iter().map(mount).collect()));
    }
    if let Some(w) = &sv.working_dir {
        put("working_dir", s(w));
    }
    extensions(&mut m, &sv.extensions);
    Out::Map(m)
}

fn mount(m: &crate::model::Mount) -> Out {
    let mut mm = vec![("type".to_string(), s(m.kind.as_str()))];
    if let Some(src) = &m.source {
        mm.push(("source".to_string(), s(src)));
    }
    mm.push(("target".to_string(), s(&m.target)));
    if m.read_only {
        mm.push(("read_only".to_string(), Out::Bool(true)));
    }
    match m.kind {
        MountType::Bind
            if m.style.bind
                || m.create_host_path
                || m.propagation.is_some()
                || m.selinux.is_some() =>
        {
            let mut b = Vec::new();
            if let Some(z) = &m.selinux {
                b.push(("selinux".to_string(), s(z)));
            }
            if let Some(p) = &m.propagation {
                b.push(("propagation".to_string(), s(p)));
            }
            if m.create_host_path {
                b.push(("create_host_path".to_string(), Out::Bool(true)));
            }
            mm.push(("bind".to_string(), Out::Map(b)));
        }
        MountType::Volume if m.style.volume || m.nocopy => {
            let v = if m.nocopy {
                vec![("nocopy".to_string(), Out::Bool(true))]
            } else {
                vec![]
            };
            mm.push(("volume".to_string(), Out::Map(v)));
        }
        MountType::Tmpfs if m.style.tmpfs || m.tmpfs_size.is_some() || m.tmpfs_mode.is_some() => {
            let mut t = Vec::new();
            if let Some(b) = m.tmpfs_size {
                t.push(("size".to_string(), bytes(b)));
            }
            if let Some(md) = m.tmpfs_mode {
                t.push(("mode".to_string(), Out::Int(md.into())));
            }
            mm.push(("tmpfs".to_string(), Out::Map(t)));
        }
        _ => {}
    }
    Out::Map(mm)
}

fn network(n: &Network) -> Out {
    let mut m = vec![("name".to_string(), s(&n.name))];
    if let Some(d) = &n.driver {
        m.push(("driver".to_string(), s(d)));
    }
    if !n.driver_opts.is_empty() {
        m.push(("driver_opts".to_string(), str_map(&n.driver_opts)));
    }
    if n.external {
        m.push(("external".to_string(), Out::Bool(true)));
    }
    if n.internal {
        m.push(("internal".to_string(), Out::Bool(true)));
    }
    if !n.labels.is_empty() {
        m.push(("labels".to_string(), str_map(&n.labels)));
    }
    extensions(&mut m, &n.extensions);
    Out::Map(m)
}

fn volume(v: &Volume) -> Out {
    let mut m = vec![("name".to_string(), s(&v.name))];
    if let Some(d) = &v.driver {
        m.push(("driver".to_string(), s(d)));
    }
    if !v.driver_opts.is_empty() {
        m.push(("driver_opts".to_string(), str_map(&v.driver_opts)));
    }
    if v.external {
        m.push(("external".to_string(), Out::Bool(true)));
    }
    if !v.labels.is_empty() {
        m.push(("labels".to_string(), str_map(&v.labels)));
    }
    extensions(&mut m, &v.extensions);
    Out::Map(m)
}

/// go-yaml v3's order for string map keys (sorter.go): letters compare as runes, runs of
/// digits compare as numbers (`VAR9` before `VAR10`), and where one side has a letter and the
/// other not, the non-letter comes first unless the two just went through digits.
pub(crate) fn go_key_cmp(a: &str, b: &str) -> Ordering {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut digits = false;
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            digits = ar[i].is_ascii_digit();
            i += 1;
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            let a_first = if digits { al } else { bl };
            return if a_first {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .saturating_mul(10)
                .saturating_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .saturating_mul(10)
                .saturating_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(keys: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        v.sort_by(|a, b| go_key_cmp(a, b));
        v
    }

    #[test]
    fn keys_sort_as_go_yaml_sorts_them() {
        assert_eq!(
            sorted(&["VAR10", "VAR9", "VAR1"]),
            ["VAR1", "VAR9", "VAR10"]
        );
        assert_eq!(sorted(&["b", "a", "B", "A"]), ["A", "B", "a", "b"]);
        // A non-letter before a letter, unlike byte order.
        assert_eq!(sorted(&["AB", "A_B"]), ["A_B", "AB"]);
        assert_eq!(
            sorted(&[
                "com.example.number",
                "com.example.description",
                "com.example.empty-label"
            ]),
            [
                "com.example.description",
                "com.example.empty-label",
                "com.example.number"
            ]
        );
        assert_eq!(
            sorted(&[
                "QUX",
                "BAR",
                "ENV_WITH_UNDERSCORE",
                "FOO",
                "ENV.WITH.DOT",
                "BAZ"
            ]),
            [
                "BAR",
                "BAZ",
                "ENV.WITH.DOT",
                "ENV_WITH_UNDERSCORE",
                "FOO",
                "QUX"
            ]
        );
    }
}
