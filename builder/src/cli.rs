//! The `mbuild` command line: parse arguments, run one subcommand, print the error chain on
//! one line, return a Docker-compatible exit code. Nothing else lives here.

use crate::manage;
use crate::Error;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Docker's CLI exits 125 when its own flags are wrong, 1 when the command failed.
const EXIT_USAGE: u8 = 125;
const EXIT_FAILED: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "mbuild",
    version,
    about = "Build container images from a Minifile and manage the image store",
    disable_help_subcommand = true,
    override_usage = "mbuild [--root DIR] -f Minifile -t name:tag [CONTEXT]\n       mbuild [--root DIR] <COMMAND>"
)]
pub struct Cli {
    /// Store root (default /var/lib/minibox as root, $XDG_DATA_HOME/minibox otherwise;
    /// also MINIBOX_ROOT)
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub cmd: Cmd,
}

/// `mbuild [--root DIR] -f Minifile -t name:tag [CONTEXT]`: the build, without a command word.
#[derive(Parser, Debug)]
#[command(
    name = "mbuild",
    version,
    about = "Build a container image from a Minifile"
)]
struct BuildCli {
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(flatten)]
    build: BuildArgs,
}

/// True when the command line names a command (after an optional `--root DIR`); otherwise
/// it is a build (`mbuild -t x .`, `mbuild ctxdir`), as `docker build` without the word.
fn names_a_command(args: &[std::ffi::OsString]) -> bool {
    use clap::CommandFactory;
    match runner::cli::first_word(args) {
        Some(a) if a.starts_with('-') => matches!(a, "-h" | "--help" | "-V" | "--version"),
        Some(a) => Cli::command().get_subcommands().any(|s| s.get_name() == a),
        // Nothing at all: the general help, from the subcommand parser.
        None => true,
    }
}

/// `mbuild -f Minifile -t name:tag [CONTEXT]` (also `mbuild build ...`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BuildArgs {
    /// The Minifile (default CONTEXT/Minifile)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// name[:tag] for the image (repeatable)
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tag: Vec<String>,
    /// Do not use the build cache
    #[arg(long)]
    pub no_cache: bool,
    /// Print only the image id
    #[arg(short, long)]
    pub quiet: bool,
    /// Set a build-time variable (ARG)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_arg: Vec<String>,
    /// Network of RUN steps: default (the bridge with outbound NAT, as mrun's containers;
    /// slirp4netns rootless, else none), bridge, host (the host's own: its loopback
    /// services and abstract sockets too) or none (only lo)
    #[arg(long, value_name = "MODE", default_value = "default")]
    pub network: String,
    /// Debian mirror for debootstrap bases (also MINIBOX_DEBIAN_MIRROR)
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// The build context directory (default .)
    pub context: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Build an image from a Minifile (the same as `mbuild -f ... -t ...`)
    Build(BuildArgs),
    /// Make a debian:SUITE base image with debootstrap (FROM debian:SUITE does it on demand)
    Bootstrap {
        image: String,
        /// Debian mirror (also MINIBOX_DEBIAN_MIRROR)
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
    },
    /// Make a one-layer image from a rootfs directory or a (gzip) tarball
    Import {
        /// A directory, or a plain or gzip-compressed tar archive
        src: PathBuf,
        /// name[:tag] for the new image
        #[arg(short = 't', long = "tag")]
        tag: String,
    },
    /// List images
    Images {
        /// Only show image ids
        #[arg(short, long)]
        quiet: bool,
        /// Show full image ids
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show an image's manifest and config as JSON
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show the history of an image
    History {
        image: String,
        /// Do not truncate output
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show an image's layers: digests, sizes, history and extracted directory
    Layers {
        image: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Do not truncate digests
        #[arg(long)]
        no_trunc: bool,
    },
    /// Add a tag TARGET that refers to SOURCE
    Tag { source: String, target: String },
    /// Remove image tags (and the image data no tag uses any more)
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove blobs and layer directories that no image or container references
    Prune,
    /// Verify every blob's digest and every image's parts
    Fsck,
    /// Write an image to a tar archive readable by docker/podman load and OCI tools
    Save {
        image: String,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Parse a Minifile and report errors, without building
    Check {
        /// The Minifile (default ./Minifile)
        #[arg(
            short = 'f',
            long = "file",
            value_name = "FILE",
            default_value = "Minifile"
        )]
        file: PathBuf,
        /// Print BuildKit's stage-one parse dump
        #[arg(long)]
        dump: bool,
    },
    /// Load images from an OCI layout (directory or tar) or a docker-archive tar
    Load {
        #[arg(short, long, value_name = "FILE")]
        input: PathBuf,
    },
    /// Download an image from a registry (name[:tag] or name@sha256:...)
    Pull {
        image: String,
        /// Pick this platform from a multi-platform image (os/arch[/variant])
        #[arg(long, value_parser = layers::registry::Platform::parse)]
        platform: Option<layers::registry::Platform>,
        #[command(flatten)]
        access: AccessArgs,
        /// Print only the image's name
        #[arg(short, long)]
        quiet: bool,
    },
    /// Upload an image to a registry: IMAGE to its own name, or to DESTINATION
    Push {
        image: String,
        destination: Option<String>,
        #[command(flatten)]
        access: AccessArgs,
        /// Show no progress
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save credentials for a registry (Docker Hub by default), after checking them
    Login {
        server: Option<String>,
        #[arg(short, long)]
        username: Option<String>,
        #[arg(short, long)]
        password: Option<String>,
        /// Read the password from stdin
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Remove a registry's saved credentials
    Logout { server: Option<String> },
}

/// How to reach a registry.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AccessArgs {
    /// Allow plain HTTP and unverified TLS (loopback registries may use HTTP without it)
    #[arg(long)]
    pub insecure: bool,
    /// A directory of CA certificates (*.crt) to trust for this registry
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

impl AccessArgs {
    fn access(&self) -> layers::registry::Access {
        layers::registry::Access {
            insecure: self.insecure,
            cert_dir: self.cert_dir.clone(),
            credentials: None,
        }
    }
}

pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = if names_a_command(&args) {
        Cli::try_parse_from(&args)
    } else {
        BuildCli::try_parse_from(&args).map(|b| Cli {
            root: b.root,
            cmd: Cmd::Build(b.build),
        })
    };
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => return runner::cli::usage_error("mbuild", &e, EXIT_USAGE),
    };
    match run(cli) {
        Ok(code) => code,
        Err(Error::BrokenPipe) => ExitCode::SUCCESS,
        Err(e @ Error::Usage(_)) => {
            eprintln!("mbuild: {}", one_line(&e));
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("mbuild: {}", one_line(&e));
            // Cancelled by a signal: 128 + N, as a shell reports it (130 after Ctrl-C).
            match crate::build::cancelled_by() {
                Some(sig) => ExitCode::from(128 + sig as u8),
                None => ExitCode::from(EXIT_FAILED),
            }
        }
    }
}

/// The network of RUN steps for `--network MODE`. The default isolates them as a container
/// of `mrun` is: a network namespace of their own on the bridge (root), through slirp4netns
/// (rootless; it cannot reach the host's loopback), else none, with a note. Never the
/// host's network unless asked for: a Minifile from anywhere would reach the host's
/// 127.0.0.1 services and abstract unix sockets.
fn run_network(mode: &str, rootless: bool) -> Result<runner::spec::Network, Error> {
    use runner::spec::Network;
    Ok(match mode {
        "default" | "bridge" if !rootless => Network::Bridge,
        "default" => match runner::net::slirp_problem() {
            None => Network::Slirp,
            Some(why) => {
                eprintln!("mbuild: {why}: RUN steps get no network (--network none)");
                Network::None
            }
        },
        "bridge" => {
            return Err(Error::Usage(
                "--network bridge needs root; rootless builds use slirp4netns (--network default)"
                    .into(),
            ))
        }
        "slirp4netns" => match runner::net::slirp_problem() {
            None => Network::Slirp,
            Some(why) => return Err(Error::Usage(format!("--network slirp4netns: {why}"))),
        },
        "host" => Network::Host,
        "none" => Network::None,
        n => {
            return Err(Error::Usage(format!(
                "--network {n}: use default, bridge, host, none or slirp4netns"
            )))
        }
    })
}

/// The error on one line.
fn one_line(e: &dyn std::error::Error) -> String {
    // Every error of ours already quotes its cause in its own message.
    e.to_string().replace('\n', " ")
}

pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    if let Cmd::Check { file, dump } = &cli.cmd {
        let mut out = std::io::stdout().lock();
        crate::minifile::check(file, *dump, &mut out)?;
        out.flush().map_err(Error::stdout)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Cmd::Login {
        server,
        username,
        password,
        password_stdin,
        access,
    } = &cli.cmd
    {
        let host = layers::registry::registry_host(server.as_deref().unwrap_or(""));
        let password = match (password, password_stdin) {
            (Some(_), true) => {
                return Err(Error::Usage(
                    "--password and --password-stdin are mutually exclusive".into(),
                ))
            }
            (Some(p), false) => {
                eprintln!(
                    "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
                );
                p.clone()
            }
            (None, true) => {
                let mut p = String::new();
                std::io::stdin().read_line(&mut p).map_err(|e| {
                    Error::Failed(format!("login {host}: read password from stdin: {e}"))
                })?;
                p.trim_end_matches(['\n', '\r']).to_string()
            }
            (None, false) => {
                return Err(Error::Usage(format!(
                    "login {host}: give the password with -p or --password-stdin"
                )))
            }
        };
        let username = username
            .clone()
            .ok_or_else(|| Error::Usage(format!("login {host}: give the user name with -u")))?;
        let creds = layers::registry::Credentials { username, password };
        layers::registry::login(&host, &creds, &access.access())?;
        println!("Login Succeeded");
        return Ok(ExitCode::SUCCESS);
    }
    if let Cmd::Logout { server } = &cli.cmd {
        let host = layers::registry::registry_host(server.as_deref().unwrap_or(""));
        match layers::registry::logout(&host)? {
            true => println!("Removing login credentials for {host}"),
            false => println!("Not logged in to {host}"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let root = cli
        .root
        .or_else(|| {
            std::env::var_os("MINIBOX_ROOT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(layers::Store::default_root);
    let store = layers::Store::open(&root)?;
    if let Some(notice) = store.migration_notice() {
        eprintln!("mbuild: {notice}");
    }
    let mut out = std::io::stdout().lock();
    let code = match cli.cmd {
        Cmd::Build(b) => build(&store, b, &mut out)?,
        Cmd::Bootstrap { image, mirror } => {
            let r = layers::Reference::parse(&image)?;
            crate::bootstrap::bootstrap(&store, &r, mirror.as_deref(), &mut out, false)?;
            ExitCode::SUCCESS
        }
        Cmd::Import { src, tag } => manage::import(&store, &src, &tag, &mut out)?,
        Cmd::Images { quiet, no_trunc } => manage::images(&store, quiet, no_trunc, &mut out)?,
        Cmd::Inspect { images } => manage::inspect(&store, &images, &mut out)?,
        Cmd::History { image, no_trunc } => manage::history(&store, &image, no_trunc, &mut out)?,
        Cmd::Layers {
            image,
            json,
            no_trunc,
        } => manage::layers(&store, &image, json, no_trunc, &mut out)?,
        Cmd::Tag { source, target } => manage::tag(&store, &source, &target)?,
        Cmd::Rmi { images } => manage::rmi(&store, &images, &mut out)?,
        Cmd::Prune => manage::prune(&store, &mut out)?,
        Cmd::Fsck => manage::fsck(&store, &mut out)?,
        Cmd::Save { image, output } => manage::save(&store, &image, &output)?,
        Cmd::Load { input } => manage::load(&store, &input, &mut out)?,
        Cmd::Pull {
            image,
            platform,
            access,
            quiet,
        } => {
            let name = layers::ImageName::parse(&image)?;
            let opts = layers::registry::PullOptions {
                access: access.access(),
                platform,
                jobs: 0,
            };
            layers::registry::pull(&store, &name, &opts, &*progress(quiet))?;
            writeln!(out, "{}", name.full()).map_err(Error::stdout)?;
            ExitCode::SUCCESS
        }
        Cmd::Push {
            image,
            destination,
            access,
            quiet,
        } => {
            let dest = layers::ImageName::parse(destination.as_deref().unwrap_or(&image))?;
            let opts = layers::registry::PushOptions {
                access: access.access(),
                jobs: 0,
            };
            layers::registry::push(&store, &image, &dest, &opts, &*progress(quiet))?;
            ExitCode::SUCCESS
        }
        Cmd::Login { .. } | Cmd::Logout { .. } => {
            unreachable!("handled before the store is opened")
        }
        Cmd::Check { .. } => unreachable!("handled before the store is opened"),
    };
    out.flush().map_err(Error::stdout)?;
    Ok(code)
}

/// Progress on stderr, or none with `-q`.
fn progress(quiet: bool) -> Box<dyn layers::registry::Progress> {
    if quiet {
        Box::new(layers::registry::Quiet)
    } else {
        Box::new(layers::registry::progress::Stderr::new())
    }
}

fn build(store: &layers::Store, b: BuildArgs, out: &mut dyn Write) -> Result<ExitCode, Error> {
    if let Some(c) = b.context.as_ref().filter(|c| !c.exists()) {
        return Err(Error::Usage(format!(
            "{}: not a command, and no build context directory of that name (see mbuild --help)",
            c.display()
        )));
    }
    let context = b.context.unwrap_or_else(|| PathBuf::from("."));
    let file = b.file.unwrap_or_else(|| context.join("Minifile"));
    let tags = b
        .tag
        .iter()
        .map(|t| layers::Reference::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let build_args = b
        .build_arg
        .iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            // `--build-arg KEY` takes the value from the environment, as Docker does.
            None => (a.clone(), std::env::var(a).unwrap_or_default()),
        })
        .collect();
    // SAFETY: geteuid(2) cannot fail.
    let network = run_network(&b.network, unsafe { libc::geteuid() } != 0)?;
    let opts = crate::build::BuildOptions {
        file,
        context,
        tags,
        no_cache: b.no_cache,
        quiet: b.quiet,
        build_args,
        network,
        mirror: b.mirror,
    };
    crate::build::build(store, &opts, out)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner::spec::Network;

    #[test]
    fn run_steps_get_a_network_of_their_own_unless_host_is_asked_for() {
        let net = |mode, rootless| run_network(mode, rootless).map_err(|e| e.to_string());
        assert_eq!(net("default", false), Ok(Network::Bridge));
        assert_eq!(net("bridge", false), Ok(Network::Bridge));
        assert_eq!(net("host", false), Ok(Network::Host));
        assert_eq!(net("none", true), Ok(Network::None));
        assert_eq!(net("host", true), Ok(Network::Host));
        // Rootless: slirp4netns where it works, else none; never the host's.
        let rootless = net("default", true).unwrap();
        assert_eq!(
            rootless,
            match runner::net::slirp_problem() {
                None => Network::Slirp,
                Some(_) => Network::None,
            }
        );
        assert_eq!(
            net("bridge", true),
            Err(
                "--network bridge needs root; rootless builds use slirp4netns (--network default)"
                    .to_string()
            )
        );
        assert_eq!(
            net("nat", false),
            Err("--network nat: use default, bridge, host, none or slirp4netns".to_string())
        );
    }
}
