//! The build loop: a parsed Minifile, instruction by instruction, into layers and a config.
//! RUN goes through the runner library in a container whose upper dir becomes the layer,
//! on a network of its own (the bridge with outbound NAT, as mrun's containers; the host's
//! only with `--network host`) with its own /etc/hosts and /etc/resolv.conf, which never
//! enter the layer; ADD and COPY build the new layer's tree in a staging directory; the
//! other instructions change the config only. Each layer-making step has a cache key that
//! chains its parent's key, the instruction after substitution and, for ADD/COPY, the
//! sources' content (never the network: it cannot change what the step is meant to make).

use crate::bootstrap;
use crate::cache::{self, Cache};
use crate::context::{self, Context, Origin};
use crate::minifile::{self, expand, Command, Instruction, Located, Minifile};
use crate::{Error, Result};
use layers::image::{self, LayerInfo};
use layers::oci_spec::image::{Config, ConfigBuilder, History, HistoryBuilder, ImageConfiguration};
use layers::pack::PackOptions;
use layers::{Reference, Store};
use runner::container::{self, Outcome, RunOptions, Start};
use runner::spec::{Network, Spec};
use std::collections::{BTreeMap, HashMap};
use std::ffi::c_int;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

pub struct BuildOptions {
    pub file: PathBuf,
    pub context: PathBuf,
    pub tags: Vec<Reference>,
    pub no_cache: bool,
    pub quiet: bool,
    pub build_args: Vec<(String, String)>,
    pub network: Network,
    pub mirror: Option<String>,
}

/// Where a stage stands: its layers, config and history so far, and its cache key.
#[derive(Clone)]
struct State {
    layers: Vec<LayerInfo>,
    dirs: Vec<PathBuf>,
    config: ImageConfiguration,
    history: Vec<History>,
    key: String,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, String>,
    shell: Vec<String>,
    /// The USER instruction in force, for errors about the user a RUN runs as.
    user_at: Option<Located>,
}

impl State {
    fn cfg(&self) -> Config {
        self.config
            .config()
            .clone()
            .unwrap_or_else(|| ConfigBuilder::default().build().expect("empty config"))
    }

    fn set_cfg(&mut self, c: Config) {
        self.config.set_config(Some(c));
    }

    fn env(&self) -> Vec<String> {
        self.cfg().env().clone().unwrap_or_default()
    }

    fn lookup(&self) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = self.args.clone().into_iter().collect();
        for kv in self.env() {
            if let Some((k, v)) = kv.split_once('=') {
                m.insert(k.to_string(), v.to_string());
            }
        }
        m
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn history(created: &str, by: &str, empty: bool) -> History {
    let mut b = HistoryBuilder::default();
    b = b.created(created.to_string()).created_by(by.to_string());
    if empty {
        b = b.empty_layer(true);
    }
    b.build().expect("history entry")
}

/// Docker's JSON form of a command, as history shows it.
fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

struct Builder<'a> {
    store: &'a Store,
    opts: &'a BuildOptions,
    ctx: Context,
    cache: Cache<'a>,
    out: &'a mut dyn Write,
    created: String,
    escape: char,
    step: usize,
    steps: usize,
    /// Finished stages by name and by index.
    stages: Vec<(Option<String>, State)>,
}

pub fn build(store: &Store, opts: &BuildOptions, out: &mut dyn Write) -> Result<layers::Digest> {
    let mf = minifile::parse_file(&opts.file)?;
    let ctx = Context::open(&opts.context)?;
    let steps = mf.stages.iter().map(|s| 1 + s.instructions.len()).sum();
    let created = image::rfc3339(image::source_date_epoch().unwrap_or_else(now));
    let mut b = Builder {
        store,
        opts,
        ctx,
        cache: Cache::new(store),
        out,
        created,
        escape: mf.escape,
        step: 0,
        steps,
        stages: Vec::new(),
    };
    let state = b.run(&mf)?;
    let mut config = state.config.clone();
    // The image is as new as its newest step: a rebuild from cache is the same image.
    let created = state
        .history
        .iter()
        .filter_map(|h| h.created().clone())
        .max_by_key(|t| image::parse_rfc3339(t))
        .unwrap_or_else(|| b.created.clone());
    config.set_created(Some(created));
    config.set_history(Some(state.history.clone()));
    let desc = store.write_image(&config, &state.layers)?;
    let img = store.image_by_manifest(&desc)?;
    for t in &opts.tags {
        store.set_tag(t, &desc)?;
    }
    if opts.quiet {
        writeln!(b.out, "{}", img.id()).map_err(Error::stdout)?;
    } else {
        writeln!(b.out, "Successfully built {}", img.id()).map_err(Error::stdout)?;
        for t in &opts.tags {
            writeln!(b.out, "Successfully tagged {t}").map_err(Error::stdout)?;
        }
    }
    Ok(img.id().clone())
}

impl Builder<'_> {
    fn say(&mut self, line: &str) -> Result<()> {
        if !self.opts.quiet {
            writeln!(self.out, "{line}").map_err(Error::stdout)?;
            self.out.flush().map_err(Error::stdout)?;
        }
        Ok(())
    }

    fn header(&self) -> String {
        format!("[{}/{}]", self.step, self.steps)
    }

    /// The value `--build-arg NAME=...` gave (the last one wins, as with Docker).
    fn build_arg(&self, name: &str) -> Option<String> {
        self.opts
            .build_args
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn run(&mut self, mf: &Minifile) -> Result<State> {
        let global: HashMap<String, String> = {
            let mut m = HashMap::new();
            for (k, v) in &mf.args_before_from {
                if let Some(v) = self.build_arg(k).or_else(|| v.clone()) {
                    m.insert(k.clone(), v);
                }
            }
            m
        };
        let mut last = None;
        for stage in &mf.stages {
            self.step += 1;
            // FROM's errors, like every instruction's, name file:line and show the line.
            let file = self.opts.file.display().to_string();
            let at = |e: &dyn std::fmt::Display| {
                Error::Failed(format!("{file}:{}: {}: {e}", stage.line, stage.text.trim()))
            };
            let from = expand::word(&stage.from, &|k| global.get(k).cloned(), self.escape)
                .map_err(|e| at(&e))?;
            let t = Instant::now();
            let mut state = self.from(&from).map_err(|e| at(&e))?;
            self.say(&format!("{} FROM {from}{}", self.header(), timing(t)))?;
            for inst in &stage.instructions {
                self.step += 1;
                self.instruction(&mut state, inst, &global)?;
            }
            self.stages.push((stage.name.clone(), state.clone()));
            last = Some(state);
        }
        last.ok_or_else(|| Error::Failed(format!("{}: no FROM", self.opts.file.display())))
    }

    fn from(&mut self, from: &str) -> Result<State> {
        let empty = State {
            layers: vec![],
            dirs: vec![],
            config: image::new_config(),
            history: vec![],
            key: cache::key(&["FROM scratch"]),
            args: BTreeMap::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            user_at: None,
        };
        if from == "scratch" {
            return Ok(empty);
        }
        if let Some((_, s)) = self
            .stages
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref() == Some(&from.to_lowercase()))
        {
            let mut s = s.clone();
            s.args.clear();
            return Ok(s);
        }
        let desc = match self.store.resolve(from) {
            Ok(found) => found.descriptor().clone(),
            Err(layers::Error::ImageNotFound(_)) => match Reference::parse(from) {
                Ok(r) if bootstrap::is_debian(&r) => bootstrap::bootstrap(
                    self.store,
                    &r,
                    self.opts.mirror.as_deref(),
                    &mut *self.out,
                    self.opts.quiet,
                )?,
                _ => self.pull(from)?,
            },
            Err(e) => return Err(e.into()),
        };
        let img = self.store.image_by_manifest(&desc)?;
        let dirs = self.image_layers(&img)?;
        let mut config = img.config.clone();
        config.set_history(None);
        let shell = vec!["/bin/sh".into(), "-c".into()];
        Ok(State {
            layers: img.layers()?,
            dirs,
            history: img.config.history().clone().unwrap_or_default(),
            config,
            key: cache::key(&["FROM", img.manifest_desc.digest().as_ref()]),
            args: BTreeMap::new(),
            shell,
            user_at: None,
        })
    }

    /// Pull a base image that is not in the store, as `docker build` does.
    fn pull(&mut self, from: &str) -> Result<layers::oci_spec::image::Descriptor> {
        let progress: Box<dyn layers::registry::Progress> = if self.opts.quiet {
            Box::new(layers::registry::Quiet)
        } else {
            Box::new(layers::registry::progress::Stderr::new())
        };
        // No "Unable to find image" line, unlike mrun: a build that fails here says so in
        // its one error line, and the step lines already say what is being pulled.
        let name = layers::ImageName::parse(from)?;
        let opts = layers::registry::PullOptions::default();
        let img = layers::registry::pull(self.store, &name, &opts, &*progress)?;
        Ok(img.manifest_desc)
    }

    /// An image's layer directories, pinned so a concurrent prune cannot take them mid-build.
    fn image_layers(&self, img: &layers::image::Image) -> Result<Vec<PathBuf>> {
        let (dirs, pins) = container::image_layers(self.store, img)?;
        for p in &pins {
            if let Some(d) = layers::digest::parse(p) {
                self.store.pin(&d)?;
            }
        }
        Ok(dirs)
    }

    fn expand(&self, st: &State, s: &str, line: &Located) -> Result<String> {
        let vars = st.lookup();
        expand::word(s, &|k| vars.get(k).cloned(), self.escape)
            .map_err(|e| self.err(line, &e.to_string()))
    }

    fn err(&self, at: &Located, msg: &str) -> Error {
        Error::Failed(format!(
            "{}:{}: {}: {msg}",
            self.opts.file.display(),
            at.line,
            at.text.trim()
        ))
    }

    /// A config-only step: new history entry (no layer), new cache key. Its time comes from
    /// the cache when the same step was built before, so a rebuild changes nothing.
    fn meta(&mut self, st: &mut State, canonical: &str) -> Result<()> {
        st.key = cache::key(&[&st.key, canonical]);
        let before = if self.opts.no_cache {
            None
        } else {
            self.cache.get(&st.key)?.and_then(|h| h.created)
        };
        let created = match before {
            Some(t) => t,
            None => {
                self.cache.put(&st.key, None, &self.created)?;
                self.created.clone()
            }
        };
        st.history.push(history(&created, canonical, true));
        self.say(&format!("{} {canonical}", self.header()))
    }

    fn instruction(
        &mut self,
        st: &mut State,
        at: &Located,
        global: &HashMap<String, String>,
    ) -> Result<()> {
        match &at.inst {
            Instruction::Env(pairs) => {
                let mut c = st.cfg();
                let mut env = c.env().clone().unwrap_or_default();
                let mut canon = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(st, k, at)?;
                    let v = self.expand(st, v, at)?;
                    env.retain(|e| e.split('=').next() != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                    canon.push(format!("{k}={v}"));
                    c.set_env(Some(env.clone()));
                    st.set_cfg(c.clone());
                }
                self.meta(st, &format!("ENV {}", canon.join(" ")))
            }
            Instruction::Arg(args) => {
                let mut canon = Vec::new();
                for (k, default) in args {
                    let v = match (self.build_arg(k), default) {
                        (Some(v), _) => Some(v),
                        (None, Some(d)) => Some(self.expand(st, d, at)?),
                        // An ARG without a default re-declares a global one inside the stage.
                        (None, None) => global.get(k).cloned(),
                    };
                    if let Some(v) = v {
                        canon.push(format!("{k}={v}"));
                        st.args.insert(k.clone(), v);
                    } else {
                        canon.push(k.clone());
                    }
                }
                self.meta(st, &format!("ARG {}", canon.join(" ")))
            }
            Instruction::Label(pairs) => {
                let mut c = st.cfg();
                let mut labels = c.labels().clone().unwrap_or_default();
                let mut canon = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(st, k, at)?;
                    let v = self.expand(st, v, at)?;
                    canon.push(format!("{k}={v}"));
                    labels.insert(k, v);
                }
                c.set_labels(Some(labels));
                st.set_cfg(c);
                self.meta(st, &format!("LABEL {}", canon.join(" ")))
            }
            Instruction::Workdir(w) => {
                let w = self.expand(st, w, at)?;
                let mut c = st.cfg();
                let base = c.working_dir().clone().unwrap_or_else(|| "/".into());
                let abs = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{w}", base.trim_end_matches('/'))
                };
                let abs = format!("/{}", context::clean(&abs).unwrap_or_default().display());
                c.set_working_dir(Some(abs.clone()));
                st.set_cfg(c);
                self.meta(st, &format!("WORKDIR {abs}"))
            }
            Instruction::User(u) => {
                let u = self.expand(st, u, at)?;
                // Names may come from a later RUN; numbers are checked now.
                runner::config::check_user(&u).map_err(|e| self.err(at, &e.to_string()))?;
                st.user_at = Some(at.clone());
                let mut c = st.cfg();
                c.set_user(Some(u.clone()));
                st.set_cfg(c);
                self.meta(st, &format!("USER {u}"))
            }
            Instruction::Expose(ports) => {
                let mut c = st.cfg();
                let mut exposed = c.exposed_ports().clone().unwrap_or_default();
                let mut canon = Vec::new();
                let vars = st.lookup();
                for p in ports {
                    for w in expand::words(p, &|k| vars.get(k).cloned(), self.escape)
                        .map_err(|e| self.err(at, &e.to_string()))?
                    {
                        for p in minifile::exposed_ports(&w).map_err(|e| self.err(at, &e))? {
                            canon.push(p.clone());
                            if !exposed.contains(&p) {
                                exposed.push(p);
                            }
                        }
                    }
                }
                c.set_exposed_ports(Some(exposed));
                st.set_cfg(c);
                self.meta(st, &format!("EXPOSE {}", canon.join(" ")))
            }
            Instruction::Volume(vols) => {
                let mut c = st.cfg();
                let mut v = c.volumes().clone().unwrap_or_default();
                let mut canon = Vec::new();
                for p in vols {
                    let p = self.expand(st, p, at)?;
                    canon.push(p.clone());
                    if !v.contains(&p) {
                        v.push(p);
                    }
                }
                c.set_volumes(Some(v));
                st.set_cfg(c);
                self.meta(st, &format!("VOLUME {}", json_list(&canon)))
            }
            Instruction::StopSignal(s) => {
                let s = self.expand(st, s, at)?;
                if minifile::signal_number(&s).is_none() {
                    return Err(self.err(at, &format!("invalid signal: {s}")));
                }
                let mut c = st.cfg();
                c.set_stop_signal(Some(s.clone()));
                st.set_cfg(c);
                self.meta(st, &format!("STOPSIGNAL {s}"))
            }
            Instruction::Shell(v) => {
                st.shell = v.clone();
                self.meta(st, &format!("SHELL {}", json_list(v)))
            }
            Instruction::Cmd(cmd) => {
                let v = self.command(st, cmd);
                let mut c = st.cfg();
                c.set_cmd(Some(v.clone()));
                st.set_cfg(c);
                self.meta(st, &format!("CMD {}", json_list(&v)))
            }
            Instruction::Entrypoint(cmd) => {
                let v = self.command(st, cmd);
                let mut c = st.cfg();
                c.set_entrypoint(Some(v.clone()));
                // Docker: setting ENTRYPOINT resets a CMD inherited from the base image.
                c.set_cmd(None);
                st.set_cfg(c);
                self.meta(st, &format!("ENTRYPOINT {}", json_list(&v)))
            }
            Instruction::Run(cmd) => self.run_step(st, at, cmd),
            Instruction::Copy {
                srcs,
                dest,
                from,
                chown,
                chmod,
            } => self.copy_step(
                st,
                at,
                "COPY",
                srcs,
                dest,
                from.as_deref(),
                chown.as_deref(),
                chmod.as_deref(),
            ),
            Instruction::Add {
                srcs,
                dest,
                chown,
                chmod,
            } => self.copy_step(
                st,
                at,
                "ADD",
                srcs,
                dest,
                None,
                chown.as_deref(),
                chmod.as_deref(),
            ),
        }
    }

    fn command(&self, st: &State, cmd: &Command) -> Vec<String> {
        match cmd {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => st
                .shell
                .iter()
                .cloned()
                .chain(std::iter::once(s.clone()))
                .collect(),
        }
    }

    /// Reuse a cached layer for `key`, if the cache has one whose blob is still here.
    fn cached(&mut self, st: &mut State, key: &str, canonical: &str) -> Result<bool> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let Some(hit) = self.cache.get(key)? else {
            return Ok(false);
        };
        let created = hit.created.unwrap_or_else(|| self.created.clone());
        match hit.layer {
            None => st.history.push(history(&created, canonical, true)),
            Some(l) => {
                let dir = self.store.ensure_layer(&l.descriptor(), &l.diff_id)?;
                st.layers.push(l);
                st.dirs.push(dir);
                st.history.push(history(&created, canonical, false));
            }
        }
        st.key = key.to_string();
        self.say(&format!("{} CACHED {canonical}", self.header()))?;
        Ok(true)
    }

    /// Record a new layer (or none, for a step that changed nothing) and its cache entry.
    fn commit(
        &mut self,
        st: &mut State,
        key: &str,
        canonical: &str,
        layer: Option<LayerInfo>,
    ) -> Result<()> {
        self.cache.put(key, layer.as_ref(), &self.created)?;
        match layer {
            Some(l) => {
                let dir = self.store.ensure_layer(&l.descriptor(), &l.diff_id)?;
                st.layers.push(l);
                st.dirs.push(dir);
                st.history.push(history(&self.created, canonical, false));
            }
            None => st.history.push(history(&self.created, canonical, true)),
        }
        st.key = key.to_string();
        Ok(())
    }

    fn run_step(&mut self, st: &mut State, at: &Located, cmd: &Command) -> Result<()> {
        let args = self.command(st, cmd);
        let canonical = match cmd {
            Command::Shell(s) => format!("RUN {} {s}", st.shell.join(" ")),
            Command::Exec(v) => format!("RUN {}", json_list(v)),
        };
        // Build args are in the environment of RUN (not persisted), so they enter the key.
        let arg_env: Vec<String> = st.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let key = cache::key(&[&st.key, &canonical, &arg_env.join("\n")]);
        if self.cached(st, &key, &canonical)? {
            return Ok(());
        }
        // The network is not in the key (what cannot change the result stays out of it, as
        // in BuildKit), so the header is the only place it shows.
        let network = self.opts.network;
        let shown = match network {
            Network::Host | Network::None => {
                canonical.replacen("RUN", &format!("RUN (network {})", network.name()), 1)
            }
            Network::Bridge | Network::Slirp => canonical.clone(),
        };
        self.say(&format!("{} {shown}", self.header()))?;
        let t = Instant::now();
        let c = st.cfg();
        let mut env = st.env();
        for kv in &arg_env {
            let k = kv.split('=').next().unwrap_or("");
            if !env.iter().any(|e| e.split('=').next() == Some(k)) {
                env.push(kv.clone());
            }
        }
        let env_cfg = ConfigBuilder::default()
            .env(env)
            .user(c.user().clone().unwrap_or_default())
            .working_dir(c.working_dir().clone().unwrap_or_else(|| "/".into()))
            .build()
            .expect("config");
        let overrides = runner::config::Overrides {
            entrypoint: Some(String::new()),
            command: args,
            ..Default::default()
        };
        let id = container::new_id();
        let hostname = id[..12].to_string();
        let rootless = unsafe { libc::geteuid() } != 0;
        let userns = rootless.then(runner::process::rootless_maps);
        // The user is the USER instruction's: an error about it names that line.
        let user = c.user().clone().unwrap_or_default();
        runner::config::resolve_user(&user, &st.dirs)
            .and_then(|(uid, gid, groups, _)| match &userns {
                Some(m) => {
                    let groups = (!runner::process::setgroups_denied(Some(m))).then_some(groups);
                    runner::config::check_mapped(uid, gid, groups.as_deref(), m)
                }
                None => Ok(()),
            })
            .map_err(|e| match &st.user_at {
                Some(u) => self.err(
                    u,
                    &format!(
                        "{e} (step {}/{} {canonical} runs as this user)",
                        self.step, self.steps
                    ),
                ),
                None => self.err(at, &e.to_string()),
            })?;
        let process = runner::config::process(Some(&env_cfg), &st.dirs, &hostname, &overrides)
            .map_err(|e| self.err(at, &e.to_string()))?;
        let pins: Vec<String> = st
            .layers
            .iter()
            .flat_map(|l| [l.digest.to_string(), l.diff_id.to_string()])
            .collect();
        // /etc/hosts, /etc/hostname and /etc/resolv.conf of the step's own network, as mrun's
        // containers get them: bind mounts of files in the step's directory, so they never
        // become part of the layer (a stub the runner makes for a missing one is removed
        // below). A name the image has as something else than a file is left to the image.
        let etc = layers::union::lookup(&st.dirs, Path::new("etc"))?;
        let mut etc_names = vec![];
        let mut etc_stubs = vec![];
        if etc.as_ref().map_or(true, |f| f.meta.is_dir()) {
            for name in ETC_FILES {
                let rel = format!("etc/{name}");
                match layers::union::lookup(&st.dirs, Path::new(&rel))? {
                    Some(f) if !f.meta.is_file() => continue,
                    Some(_) => {}
                    None => etc_stubs.push(rel),
                }
                etc_names.push(name);
            }
        }
        // From before the container exists to the end of the step, Ctrl-C cancels the step
        // instead of killing mbuild half-way.
        let signals = Signals::block()?;
        // Held until the step is done: a `prune` meanwhile leaves the directory alone, and
        // one after a SIGKILL of ours knows it may clear it.
        let (dir, _owner) = runner::state::create_dir(self.store, &id, &pins)
            .map_err(|e| self.err(at, &e.to_string()))?;
        let netcfg = match network {
            Network::Bridge => match runner::net::NetConfig::for_store(self.store.root()) {
                Ok(c) => Some(c),
                Err(e) => {
                    let _ = layers::store::remove_all(&dir);
                    return Err(e.into());
                }
            },
            _ => None,
        };
        let mounts = etc_names
            .iter()
            .map(|name| runner::spec::Mount {
                dest: format!("/etc/{name}"),
                kind: runner::spec::MountKind::Bind {
                    source: dir.join(name),
                    readonly: false,
                },
            })
            .collect();
        let known_ip = (network == Network::Slirp).then_some(runner::net::SLIRP_GUEST);
        if let Err(e) = write_etc(&dir, network, &hostname, known_ip) {
            let _ = layers::store::remove_all(&dir);
            return Err(e.into());
        }
        let spec = Spec {
            layers: st.dirs.clone(),
            dir: dir.clone(),
            process,
            hostname,
            mounts,
            devices: vec![],
            read_only: false,
            network,
            userns,
            limits: Default::default(),
            userxattr: rootless,
            caps: runner::child::DEFAULT_CAPS,
            // A RUN step is a container like any other: Docker's defaults.
            seccomp: Some(runner::seccomp::compile(
                &runner::seccomp::default_profile(),
                runner::child::DEFAULT_CAPS,
            )?),
            no_new_privs: false,
            masked_paths: true,
            nodev: true,
        };
        if st.dirs.is_empty() {
            let _ = layers::store::remove_all(&dir);
            return Err(self.err(
                at,
                "RUN needs a base image with a shell (FROM scratch has none)",
            ));
        }
        // The runner creates the mount points it needs when the image lacks them; like
        // BuildKit, drop those stubs so they do not become part of the layer.
        let mut stubs = Vec::new();
        for d in MOUNT_POINTS {
            if layers::union::lookup(&st.dirs, Path::new(d))?.is_none() {
                stubs.push(d);
            }
        }
        let quiet = if self.opts.quiet {
            self.out.flush().map_err(Error::stdout)?;
            Some(Quiet::start(self.store)?)
        } else {
            None
        };
        // The network is wired after the clone, before the step's command runs (as mrun's
        // monitor does), and taken down whatever happened.
        let mut slirp = None;
        let mut wire = |pid: i32| -> runner::Result<()> {
            match (network, &netcfg) {
                (Network::Bridge, Some(cfg)) => {
                    let a = runner::net::attach(cfg, &id, pid)?;
                    write_etc(&dir, network, &spec.hostname, Some(a.ip))?;
                }
                (Network::Slirp, _) => {
                    slirp = Some(runner::net::start_slirp(pid, &[], &dir)?);
                }
                _ => {}
            }
            Ok(())
        };
        let outcome = run_container(&spec, &signals, &mut wire);
        drop(slirp);
        let log = quiet.map(Quiet::stop);
        if let Some(cfg) = &netcfg {
            if let Err(e) = runner::net::detach(cfg, &id) {
                eprintln!(
                    "mbuild: step {}/{}: network cleanup: {e}",
                    self.step, self.steps
                );
            }
        }
        let cancelled = |sig: c_int| {
            CANCELLED.store(sig, Ordering::Relaxed);
            Error::Failed(format!(
                "step {}/{} {canonical}: interrupted by {}",
                self.step,
                self.steps,
                signal_name(sig)
            ))
        };
        let result = (|| {
            let (o, cancel) = outcome.map_err(|e| {
                Error::Failed(format!(
                    "step {}/{} {canonical}: {e}",
                    self.step, self.steps
                ))
            })?;
            if let Some(sig) = cancel {
                return Err(cancelled(sig));
            }
            if o.exit.code() != 0 {
                return Err(Error::Failed(format!(
                    "step {}/{} {canonical}: exit code {}",
                    self.step,
                    self.steps,
                    o.exit.code()
                )));
            }
            let upper = dir.join("upper");
            let remove = |p: &Path, dir: bool| {
                let r = if dir {
                    fs::remove_dir(p)
                } else {
                    fs::remove_file(p)
                };
                r.map_err(|e| {
                    Error::Failed(format!(
                        "remove {}: {}",
                        p.display(),
                        layers::error::io_message(&e)
                    ))
                })
            };
            let empty_dir = |p: &Path| fs::read_dir(p).is_ok_and(|mut e| e.next().is_none());
            for d in &stubs {
                let p = upper.join(d);
                if empty_dir(&p) {
                    remove(&p, true)?;
                }
            }
            for f in &etc_stubs {
                let p = upper.join(f);
                if fs::symlink_metadata(&p).is_ok_and(|m| m.is_file() && m.len() == 0) {
                    remove(&p, false)?;
                }
            }
            // The stubs made the overlay copy /etc up (or make it): an /etc that holds
            // nothing else and has the image's owner and mode is no change of the step's.
            let upper_etc = upper.join("etc");
            if !etc_stubs.is_empty() && empty_dir(&upper_etc) {
                let same = match &etc {
                    None => true,
                    Some(lower) => fs::symlink_metadata(&upper_etc).is_ok_and(|m| {
                        use std::os::unix::fs::MetadataExt;
                        (m.mode(), m.uid(), m.gid())
                            == (lower.meta.mode(), lower.meta.uid(), lower.meta.gid())
                    }),
                };
                if same {
                    remove(&upper_etc, true)?;
                }
            }
            let empty = fs::read_dir(&upper)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true);
            if empty {
                return Ok(None);
            }
            // Named after the step: a full disk shows here first, and says which step.
            let (layer, _) = self
                .store
                .pack_layer(
                    &upper,
                    &PackOptions {
                        source_date_epoch: image::source_date_epoch(),
                        overlay: true,
                    },
                )
                .map_err(|e| {
                    Error::Failed(format!(
                        "step {}/{} {canonical}: {e}",
                        self.step, self.steps
                    ))
                })?;
            Ok(Some(layer))
        })();
        let _ = layers::store::remove_all(&dir);
        if let (Err(_), Some(mut log)) = (&result, log) {
            // As `docker build -q`: the output of a failed step is shown after all.
            let _ = std::io::Seek::rewind(&mut log)
                .and_then(|_| std::io::copy(&mut log, &mut std::io::stderr()));
        }
        let layer = result?;
        // A Ctrl-C while the layer was packed: nothing is committed either.
        if let Some(sig) = signals.pending_cancel() {
            return Err(cancelled(sig));
        }
        self.commit(st, &key, &canonical, layer)?;
        self.say(&format!("{} done{}", self.header(), timing(t)))
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_step(
        &mut self,
        st: &mut State,
        at: &Located,
        what: &str,
        srcs: &[String],
        dest: &str,
        from: Option<&str>,
        chown: Option<&str>,
        chmod: Option<&str>,
    ) -> Result<()> {
        let srcs: Vec<String> = srcs
            .iter()
            .map(|s| self.expand(st, s, at))
            .collect::<Result<_>>()?;
        let dest = self.expand(st, dest, at)?;
        let workdir = st.cfg().working_dir().clone().unwrap_or_else(|| "/".into());
        let dest_abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{}/{dest}", workdir.trim_end_matches('/'))
        };
        let dest_is_dir = dest.ends_with('/') || dest.ends_with("/.") || dest == ".";
        // Where the sources come from: the context, an earlier stage, or an image.
        let from_layers: Option<Vec<PathBuf>> = match from {
            None => None,
            Some(f) => {
                let f = self.expand(st, f, at)?;
                let stage = match f.parse::<usize>() {
                    Ok(i) => self.stages.get(i).map(|(_, s)| s.clone()),
                    Err(_) => self
                        .stages
                        .iter()
                        .rev()
                        .find(|(n, _)| n.as_deref() == Some(&f.to_lowercase()))
                        .map(|(_, s)| s.clone()),
                };
                let dirs = match stage {
                    Some(s) => s.dirs,
                    None => {
                        let img = self
                            .store
                            .resolve(&f)
                            .map(|found| found.descriptor().clone())
                            .or_else(|e| match e {
                                layers::Error::ImageNotFound(_) => self.pull(&f),
                                e => Err(e.into()),
                            })
                            .and_then(|d| Ok(self.store.image_by_manifest(&d)?))
                            .map_err(|e| self.err(at, &format!("--from={f}: {e}")))?;
                        self.image_layers(&img)?
                    }
                };
                Some(dirs)
            }
        };
        let fetched = if what == "ADD" && srcs.iter().any(|s| is_url(s)) {
            Some(self.store.temp_dir("fetch")?)
        } else {
            None
        };
        let result = self.copy_sources(
            st,
            at,
            what,
            &srcs,
            &dest_abs,
            dest_is_dir,
            from,
            from_layers.as_deref(),
            fetched.as_deref(),
            chown,
            chmod,
        );
        if let Some(f) = fetched {
            let _ = layers::store::remove_all(&f);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_sources(
        &mut self,
        st: &mut State,
        at: &Located,
        what: &str,
        srcs: &[String],
        dest_abs: &str,
        dest_is_dir: bool,
        from: Option<&str>,
        from_layers: Option<&[PathBuf]>,
        fetched: Option<&Path>,
        chown: Option<&str>,
        chmod: Option<&str>,
    ) -> Result<()> {
        let mut sources = Vec::new();
        for s in srcs {
            if let (Some(dir), true) = (fetched, is_url(s)) {
                sources.push(
                    crate::copy::Copier::fetch(s, dir).map_err(|e| self.err(at, &e.to_string()))?,
                );
                continue;
            }
            match from_layers {
                None => sources.extend(
                    self.ctx
                        .sources(s)
                        .map_err(|e| self.err(at, &e.to_string()))?,
                ),
                Some(dirs) => {
                    let rel = layers::union::resolve(dirs, s)?;
                    let found = layers::union::lookup(dirs, &rel)?.ok_or_else(|| {
                        self.err(
                            at,
                            &format!("{s}: not found in --from={}", from.unwrap_or("")),
                        )
                    })?;
                    sources.push(found.path);
                }
            }
        }
        if sources.len() > 1 && !dest_is_dir {
            return Err(self.err(at, &format!("when using {what} with more than one source file, the destination must be a directory and end with a /")));
        }
        let digest = context::content_digest(Origin::new(&self.ctx, from_layers), &sources)?;
        // Every flag that changes the layer is in the canonical text, and so in the key.
        let flag =
            |name: &str, v: Option<&str>| v.map(|v| format!("--{name}={v} ")).unwrap_or_default();
        let canonical = format!(
            "{what} {}{}{}{} {dest_abs}",
            flag("from", from),
            flag("chown", chown),
            flag("chmod", chmod),
            srcs.join(" ")
        );
        let key = cache::key(&[&st.key, &canonical, &digest]);
        if self.cached(st, &key, &canonical)? {
            return Ok(());
        }
        self.say(&format!("{} {canonical}", self.header()))?;
        let t = Instant::now();
        let staging = self.store.temp_dir("copy")?;
        let result = (|| {
            let (uid, gid) = match chown {
                Some(c) => {
                    let (u, g, _, _) = runner::config::resolve_user(c, &st.dirs)
                        .map_err(|e| self.err(at, &e.to_string()))?;
                    // --chown=user without a group uses the user's primary group.
                    (u, g)
                }
                None => (0, 0),
            };
            let mode = chmod
                .map(|m| {
                    u32::from_str_radix(m, 8)
                        .map_err(|_| self.err(at, &format!("--chmod={m}: not an octal mode")))
                })
                .transpose()?;
            let copier = crate::copy::Copier {
                layers: &st.dirs,
                staging: &staging,
                uid,
                gid,
                mode,
                origin: Origin::new(&self.ctx, from_layers),
            };
            let target = copier.dest(dest_abs, dest_is_dir)?;
            for s in &sources {
                copier.copy(
                    s,
                    &target,
                    what == "ADD" && !fetched.is_some_and(|f| s.starts_with(f)),
                )?;
            }
            let (layer, _) = self.store.pack_layer(
                &staging,
                &PackOptions {
                    source_date_epoch: image::source_date_epoch(),
                    overlay: false,
                },
            )?;
            Ok::<_, Error>(layer)
        })();
        let _ = layers::store::remove_all(&staging);
        let layer = result.map_err(|e| match e {
            Error::Failed(m) if m.starts_with(&self.opts.file.display().to_string()) => {
                Error::Failed(m)
            }
            e => self.err(at, &e.to_string()),
        })?;
        self.commit(st, &key, &canonical, Some(layer))?;
        self.say(&format!("{} done{}", self.header(), timing(t)))
    }
}

/// The signals that cancel a RUN step, as they end `docker build`; the others mrun passes
/// on (SIGUSR1, SIGWINCH, ...) go to the step's container.
const CANCEL: [c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The signal that cancelled the build: mbuild then exits 128 + N, as a shell reports a
/// command that a signal ended (130 after Ctrl-C).
static CANCELLED: AtomicI32 = AtomicI32::new(0);

pub fn cancelled_by() -> Option<c_int> {
    Some(CANCELLED.load(Ordering::Relaxed)).filter(|&s| s != 0)
}

fn signal_name(sig: c_int) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        _ => "a signal",
    }
}

/// For the length of a RUN step, the signals the runner forwards are blocked and read here
/// (the runner blocks them before its clone, so none slips by). Dropping it restores the
/// mask the thread had, so a Ctrl-C during a later COPY ends mbuild at once, as it does
/// before the first RUN, instead of waiting unseen for the next RUN or the end.
struct Signals {
    fd: Option<OwnedFd>,
    old: libc::sigset_t,
}

impl Signals {
    fn block() -> Result<Signals> {
        // SAFETY: sigset_t is plain data, set up by sigemptyset/sigaddset before use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe {
            libc::sigemptyset(&mut set);
            for s in runner::process::FORWARDED {
                libc::sigaddset(&mut set, s);
            }
        }
        // SAFETY: valid sigsets; only this thread's mask changes.
        if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) } != 0 {
            return Err(Error::Failed("block signals for a RUN step".into()));
        }
        // Made before anything can fail, so that dropping it always restores the mask.
        let mut signals = Signals { fd: None, old };
        signals.fd = Some(runner::process::signalfd()?);
        Ok(signals)
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_ref().expect("made in block").as_fd()
    }

    /// The next signal, if one is there (without waiting).
    fn next(&self) -> Option<c_int> {
        let mut p = libc::pollfd {
            fd: self.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 0) } != 1 {
            return None;
        }
        runner::process::read_signal(self.fd())
    }

    /// A cancelling signal that came and was not handled yet (the others are dropped: the
    /// container they were for is gone).
    fn pending_cancel(&self) -> Option<c_int> {
        while let Some(sig) = self.next() {
            if CANCEL.contains(&sig) {
                return Some(sig);
            }
        }
        None
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // SAFETY: puts back the mask saved in `block`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Run a RUN step's container to its end. A cancelling signal meanwhile SIGKILLs it: its
/// PID 1, mostly a shell, never gets a signal it has no handler for (pid_namespaces(7)), so
/// passing SIGINT on would leave the build hanging. Returns the outcome and that signal.
///
/// Its stdin is /dev/null (a RUN step has none, as with BuildKit); its stdout and stderr
/// are ours, except that a terminal of ours is relayed through a pipe: the step must not
/// be able to change the terminal's settings (runner::tty::PipedStdio).
fn run_container(
    spec: &Spec,
    signals: &Signals,
    wire: &mut dyn FnMut(i32) -> runner::Result<()>,
) -> runner::Result<(Outcome, Option<c_int>)> {
    let mut stdio = runner::tty::PipedStdio::new(false, false)
        .map_err(|e| runner::Error::Sys("set up the step's stdio", e))?;
    let started = container::start(
        spec,
        &RunOptions {
            forward_signals: true,
            keep: true,
            warn: |_| {},
        },
        Start {
            before_release: Some(wire),
            stdio: stdio.fds,
            ..Start::default()
        },
    )?;
    let child = &started.child;
    // Each ends at EOF, which the end of the step's PID namespace brings.
    let relays = (|| {
        stdio.started()?;
        let mut relays = Vec::new();
        let [out, err] = std::mem::take(&mut stdio.outputs);
        if let Some(from) = out {
            let to = std::io::stdout().as_fd().try_clone_to_owned()?;
            relays.push(runner::tty::pump(from, to)?);
        }
        if let Some(from) = err {
            let to = std::io::stderr().as_fd().try_clone_to_owned()?;
            relays.push(runner::tty::pump(from, to)?);
        }
        Ok(relays)
    })();
    let relays = match relays {
        Ok(r) => r,
        Err(e) => {
            child.kill(libc::SIGKILL);
            let _ = child.wait(false);
            return Err(runner::Error::Sys("relay the step's output", e));
        }
    };
    let done = run_to_end(&started, signals);
    for r in relays {
        let _ = r.join();
    }
    let (exit, cancel) = done?;
    Ok((started.finish(exit)?, cancel))
}

/// Wait for the step's container, SIGKILLing it on a cancelling signal (see
/// `run_container`); returns how it ended and that signal.
fn run_to_end(
    started: &container::Started,
    signals: &Signals,
) -> runner::Result<(runner::process::Exit, Option<c_int>)> {
    let child = &started.child;
    let mut cancel = None;
    loop {
        let mut fds = [child.pidfd(), signals.fd()].map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: a valid array of two pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                child.kill(libc::SIGKILL);
                let _ = child.wait(false);
                return Err(runner::Error::Sys("poll", e));
            }
            continue;
        }
        if fds[1].revents & libc::POLLIN != 0 {
            match runner::process::read_signal(signals.fd()) {
                Some(sig) if CANCEL.contains(&sig) => {
                    cancel.get_or_insert(sig);
                    child.kill(libc::SIGKILL);
                }
                Some(sig) => child.kill(sig),
                None => {}
            }
        }
        if fds[0].revents & libc::POLLIN != 0 {
            return Ok((child.reap()?, cancel));
        }
    }
}

/// Where the runner mounts proc, sysfs and the /dev tmpfs (runner's rootfs plan).
const MOUNT_POINTS: [&str; 3] = ["dev", "proc", "sys"];

/// The files under /etc a RUN step gets from its network (see `write_etc`).
const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// Write a RUN step's /etc/hosts, /etc/hostname and /etc/resolv.conf into its directory,
/// by mrun's rules (`runner::net::Etc`); `ip` is its address once known.
fn write_etc(
    dir: &Path,
    network: Network,
    hostname: &str,
    ip: Option<std::net::Ipv4Addr>,
) -> runner::Result<()> {
    let etc = runner::net::Etc {
        network,
        hostname,
        ip,
        add_hosts: &[],
        dns: &[],
    };
    for (name, text) in etc.files(|p| fs::read_to_string(p).unwrap_or_default()) {
        let p = dir.join(name);
        fs::write(&p, text).map_err(|e| runner::Error::Io {
            op: "write",
            path: p,
            source: e,
        })?;
    }
    Ok(())
}

/// With -q, stdout carries only the image id: a RUN step's output (the container inherits
/// our fds 1 and 2 when it is cloned) goes to an unlinked file in the store's tmp/ instead.
/// Dropping this restores fds 1 and 2.
struct Quiet {
    saved: [std::os::fd::OwnedFd; 2],
    log: Option<fs::File>,
}

impl Quiet {
    fn start(store: &Store) -> Result<Quiet> {
        use std::os::fd::{AsFd, AsRawFd};
        let tmp = store.root().join("tmp");
        let log = tempfile::tempfile_in(&tmp).map_err(|e| {
            Error::Failed(format!(
                "create a log file in {}: {}",
                tmp.display(),
                layers::error::io_message(&e)
            ))
        })?;
        let dup = |fd: std::os::fd::BorrowedFd<'_>| {
            fd.try_clone_to_owned()
                .map_err(|e| Error::Failed(format!("dup: {}", layers::error::io_message(&e))))
        };
        let saved = [
            dup(std::io::stdout().as_fd())?,
            dup(std::io::stderr().as_fd())?,
        ];
        let q = Quiet {
            saved,
            log: Some(log),
        };
        for fd in [1, 2] {
            // SAFETY: dup2 onto our own standard fds; the originals are kept in `saved`.
            if unsafe { libc::dup2(q.log.as_ref().expect("log").as_raw_fd(), fd) } < 0 {
                return Err(Error::Failed(format!(
                    "dup2: {}",
                    layers::error::io_message(&std::io::Error::last_os_error())
                )));
            }
        }
        Ok(q)
    }

    fn stop(mut self) -> fs::File {
        let log = self.log.take().expect("log");
        drop(self);
        log
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        for (fd, saved) in [1, 2].into_iter().zip(&self.saved) {
            // SAFETY: puts back the fds saved in `start`.
            unsafe { libc::dup2(saved.as_raw_fd(), fd) };
        }
    }
}

fn timing(t: Instant) -> String {
    format!(" ({:.2}s)", t.elapsed().as_secs_f64())
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}
