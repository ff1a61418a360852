//! Merging the files of one project (`-f a.yaml -f b.yaml`), later over earlier, by the
//! Compose specification's merge rules (<https://github.com/compose-spec/compose-spec/blob/main/13-merge.md>):
//! a value set later replaces one set earlier; maps merge by key (environment, labels, build
//! args, networks, depends_on); `command`, `entrypoint` and `healthcheck.test` are replaced
//! whole; `volumes` and `devices` merge by their container path; other lists append, dropping
//! entries that are already there. Works on typed values of files already checked one by one.

use crate::model::{Build, Deploy, Healthcheck, Network, Service, Volume};
use crate::parse::File;

pub(crate) fn merge(base: &mut File, over: File) {
    if over.name.is_some() {
        base.name = over.name;
    }
    for s in over.services {
        match base.services.iter_mut().find(|b| b.name == s.name) {
            Some(b) => service(b, s),
            None => base.services.push(s),
        }
    }
    for (k, n) in over.networks {
        match base.networks.get_mut(&k) {
            Some(b) => network(b, n),
            None => {
                base.networks.insert(k, n);
            }
        }
    }
    for (k, v) in over.volumes {
        match base.volumes.get_mut(&k) {
            Some(b) => volume(b, v),
            None => {
                base.volumes.insert(k, v);
            }
        }
    }
    base.extensions.extend(over.extensions);
}

fn set<T>(base: &mut Option<T>, over: Option<T>) {
    if over.is_some() {
        *base = over;
    }
}

/// Appends the entries of `over` that `base` does not have yet.
fn append<T: PartialEq>(base: &mut Vec<T>, over: Vec<T>) {
    for x in over {
        if !base.contains(&x) {
            base.push(x);
        }
    }
}

/// Replaces the entry of `base` with the same key, or appends.
fn by_key<T, K: PartialEq>(base: &mut Vec<T>, over: Vec<T>, key: impl Fn(&T) -> K) {
    for x in over {
        match base.iter_mut().find(|b| key(b) == key(&x)) {
            Some(b) => *b = x,
            None => base.push(x),
        }
    }
}

fn service(b: &mut Service, o: Service) {
    set(&mut b.container_name, o.container_name);
    set(&mut b.image, o.image);
    match (&mut b.build, o.build) {
        (Some(bb), Some(ob)) => build(bb, ob),
        (None, Some(ob)) => b.build = Some(ob),
        _ => {}
    }
    set(&mut b.command, o.command);
    set(&mut b.entrypoint, o.entrypoint);
    b.environment.extend(o.environment);
    by_key(&mut b.env_file, o.env_file, |f| f.path.clone());
    by_key(&mut b.volumes, o.volumes, |m| m.target.clone());
    by_key(&mut b.devices, o.devices, |d| d.target.clone());
    append(&mut b.ports, o.ports);
    append(&mut b.expose, o.expose);
    for (k, n) in o.networks {
        match (b.networks.get(&k), &n) {
            (Some(Some(_)), None) => {}
            _ => {
                b.networks.insert(k, n);
            }
        }
    }
    b.depends_on.extend(o.depends_on);
    match (&mut b.healthcheck, o.healthcheck) {
        (Some(bh), Some(oh)) => healthcheck(bh, oh),
        (None, Some(oh)) => b.healthcheck = Some(oh),
        _ => {}
    }
    set(&mut b.restart, o.restart);
    set(&mut b.user, o.user);
    set(&mut b.working_dir, o.working_dir);
    set(&mut b.hostname, o.hostname);
    append(&mut b.cap_add, o.cap_add);
    append(&mut b.cap_drop, o.cap_drop);
    append(&mut b.security_opt, o.security_opt);
    set(&mut b.mem_limit, o.mem_limit);
    set(&mut b.cpus, o.cpus);
    set(&mut b.pids_limit, o.pids_limit);
    match (&mut b.deploy, o.deploy) {
        (Some(bd), Some(od)) => deploy(bd, od),
        (None, Some(od)) => b.deploy = Some(od),
        _ => {}
    }
    set(&mut b.init, o.init);
    set(&mut b.tty, o.tty);
    set(&mut b.stdin_open, o.stdin_open);
    set(&mut b.ipc, o.ipc);
    append(&mut b.group_add, o.group_add);
    set(&mut b.shm_size, o.shm_size);
    b.labels.extend(o.labels);
    set(&mut b.read_only, o.read_only);
    append(&mut b.tmpfs, o.tmpfs);
    append(&mut b.extra_hosts, o.extra_hosts);
    append(&mut b.dns, o.dns);
    b.extensions.extend(o.extensions);
    b.locs.extend(o.locs);
}

fn build(b: &mut Build, o: Build) {
    if o.context_set {
        b.context = o.context;
        b.context_set = true;
    }
    if o.dockerfile_set {
        b.dockerfile = o.dockerfile;
        b.dockerfile_set = true;
    }
    b.args.extend(o.args);
    set(&mut b.target, o.target);
}

fn healthcheck(b: &mut Healthcheck, o: Healthcheck) {
    if !o.test.is_empty() {
        b.test = o.test;
    }
    set(&mut b.interval, o.interval);
    set(&mut b.timeout, o.timeout);
    set(&mut b.retries, o.retries);
    set(&mut b.start_period, o.start_period);
    set(&mut b.start_interval, o.start_interval);
    b.disable |= o.disable;
}

fn deploy(b: &mut Deploy, o: Deploy) {
    set(&mut b.limits.cpus, o.limits.cpus);
    set(&mut b.limits.memory, o.limits.memory);
    set(&mut b.limits.pids, o.limits.pids);
}

fn network(b: &mut Network, o: Network) {
    if o.name_set {
        b.name = o.name;
        b.name_set = true;
    }
    set(&mut b.driver, o.driver);
    b.driver_opts.extend(o.driver_opts);
    b.external |= o.external;
    b.internal |= o.internal;
    b.labels.extend(o.labels);
    b.extensions.extend(o.extensions);
}

fn volume(b: &mut Volume, o: Volume) {
    if o.name_set {
        b.name = o.name;
        b.name_set = true;
    }
    set(&mut b.driver, o.driver);
    b.driver_opts.extend(o.driver_opts);
    b.external |= o.external;
    b.labels.extend(o.labels);
    b.extensions.extend(o.extensions);
}
