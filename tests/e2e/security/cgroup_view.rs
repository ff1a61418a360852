//! What a container sees of the cgroup tree: on cgroup v1 each controller mounted at
//! /sys/fs/cgroup/<controller> shows only the container's own cgroup (its cgroup
//! namespace's root), never the host's groups or other containers, as with Docker; on v2
//! the one cgroup2 mount shows the same. The host's groups are made visible on purpose: a
//! marker cgroup next to where mrun runs, in every hierarchy.
//!
//! It must not touch any cgroup but the markers it makes (removed when it ends, pass or
//! fail) and the containers it runs.

use super::{mrun, ok, setup, unique};
use crate::run::{mountinfo, IMG};
use std::fs;
use std::path::PathBuf;

/// The host's cgroup v1 controller hierarchies (named ones aside, which mrun does not mount)
/// as (mount point, this process's cgroup in it).
fn v1_hierarchies() -> Vec<(PathBuf, PathBuf)> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let mounts = mountinfo();
    let mut out = Vec::new();
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, list, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let ctrls: Vec<&str> = list.split(',').filter(|c| !c.is_empty()).collect();
        if ctrls.is_empty() || ctrls.iter().all(|c| c.starts_with("name=")) {
            continue;
        }
        let found = mounts.iter().find(|(root, _, fstype, opts)| {
            let opts: Vec<&str> = opts.split(',').collect();
            fstype == "cgroup"
                && ctrls.iter().all(|c| opts.contains(c))
                && path.starts_with(root.as_str())
        });
        if let Some((root, point, _, _)) = found {
            let rel = path[root.len()..].trim_start_matches('/');
            out.push((point.clone(), PathBuf::from(rel)));
        }
    }
    out
}

/// Cgroups made for the test, removed (rmdir) when dropped.
struct Markers(Vec<PathBuf>);

impl Drop for Markers {
    fn drop(&mut self) {
        for m in &self.0 {
            let _ = fs::remove_dir(m);
        }
    }
}

#[test]
fn a_container_sees_only_its_own_cgroup_in_every_controller() {
    let Some(env) = setup() else { return };
    let hierarchies = v1_hierarchies();
    // In every hierarchy a cgroup of the host beside the one mrun runs in, standing for the
    // host's groups and other containers: the container must not see it, nor anything else.
    let marker = unique("mbview");
    let mut markers = Markers(vec![]);
    for (mount, own) in &hierarchies {
        let m = mount.join(own).join(&marker);
        fs::create_dir(&m).unwrap_or_else(|e| panic!("mkdir {}: {e}", m.display()));
        markers.0.push(m);
    }
    // On v1 the controllers are the directories of /sys/fs/cgroup and a cgroup is one level
    // further down; on v2 /sys/fs/cgroup is the cgroup itself. Globs list directories only;
    // one that matched nothing stays a pattern, which `[ -d ]` drops.
    let script = "for d in /sys/fs/cgroup/*/; do [ -d \"$d\" ] && echo \"mount $d\"; done; \
                  for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/.[!.]*/ /sys/fs/cgroup/*/*/ \
                  /sys/fs/cgroup/*/.[!.]*/; do [ -d \"$d\" ] && echo \"dir $d\"; done; true";
    let out = ok("the container", &mrun(&env, &[IMG, "sh", "-c", script]));
    eprintln!("{out}");
    assert!(
        !out.contains(&marker),
        "the host's cgroup is visible: {out}"
    );
    // Directories by their depth below /sys/fs/cgroup.
    let dirs = |depth: usize| -> Vec<&str> {
        out.lines()
            .filter_map(|l| l.strip_prefix("dir /sys/fs/cgroup/"))
            .map(|d| d.trim_end_matches('/'))
            .filter(|d| d.split('/').count() >= depth)
            .collect()
    };
    if hierarchies.is_empty() {
        // cgroup v2: /sys/fs/cgroup is the container's cgroup, with nothing below it.
        assert_eq!(
            dirs(1),
            Vec::<&str>::new(),
            "cgroups visible below the root"
        );
        return;
    }
    // Every controller hierarchy is mounted inside, under the host's directory name...
    let mut inside: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("mount /sys/fs/cgroup/"))
        .map(|d| d.trim_end_matches('/').to_string())
        .collect();
    let mut host: Vec<String> = hierarchies
        .iter()
        .map(|(m, _)| m.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    host.sort();
    assert_eq!(inside, host, "the controllers mounted in the container");
    // ...and each shows the container's own cgroup alone: no directory below any of them.
    assert_eq!(
        dirs(2),
        Vec::<&str>::new(),
        "cgroups other than the container's own are visible"
    );
}
