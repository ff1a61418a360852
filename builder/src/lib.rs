//! minibox's builder: the Minifile parser, the build loop and cache, base images, and the
//! image-management subcommands of `mbuild`. It never mounts, clones or touches cgroups
//! itself: RUN goes through `runner`'s library.

mod bootstrap;
pub mod build;
mod cache;
pub mod cli;
mod context;
mod copy;
mod error;
pub mod manage;
pub mod minifile;

pub use error::{Error, Result};
