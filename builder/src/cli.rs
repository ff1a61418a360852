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
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Store root (default /var/lib/minibox as root, $XDG_DATA_HOME/minibox otherwise;
    /// also MINIBOX_ROOT)
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
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
        #[arg(short = 'f', long = "file", value_name = "FILE", default_value = "Minifile")]
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
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(e.kind(), DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's first line is the message; the usage block below it is noise here.
            let msg = e.render().to_string();
            let first = msg.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("mbuild: {first} (see mbuild --help)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(Error::BrokenPipe) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mbuild: {}", one_line(&e));
            ExitCode::from(EXIT_FAILED)
        }
    }
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
    let root = cli
        .root
        .or_else(|| std::env::var_os("MINIBOX_ROOT").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(layers::Store::default_root);
    let store = layers::Store::open(&root)?;
    let mut out = std::io::stdout().lock();
    let code = match cli.cmd {
        Cmd::Import { src, tag } => manage::import(&store, &src, &tag, &mut out)?,
        Cmd::Images { quiet, no_trunc } => manage::images(&store, quiet, no_trunc, &mut out)?,
        Cmd::Inspect { images } => manage::inspect(&store, &images, &mut out)?,
        Cmd::History { image, no_trunc } => manage::history(&store, &image, no_trunc, &mut out)?,
        Cmd::Layers { image, json, no_trunc } => manage::layers(&store, &image, json, no_trunc, &mut out)?,
        Cmd::Tag { source, target } => manage::tag(&store, &source, &target)?,
        Cmd::Rmi { images } => manage::rmi(&store, &images, &mut out)?,
        Cmd::Prune => manage::prune(&store, &mut out)?,
        Cmd::Fsck => manage::fsck(&store, &mut out)?,
        Cmd::Save { image, output } => manage::save(&store, &image, &output)?,
        Cmd::Load { input } => manage::load(&store, &input, &mut out)?,
        Cmd::Check { .. } => unreachable!("handled before the store is opened"),
    };
    out.flush().map_err(Error::stdout)?;
    Ok(code)
}
