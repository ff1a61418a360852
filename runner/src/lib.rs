//! minibox's runner: turns an image (or a list of layer directories and a process spec)
//! into an isolated, limited process. It never parses Minifiles.

pub mod cgroup;
pub mod child;
pub mod cli;
pub mod config;
pub mod container;
pub mod error;
pub mod exec;
pub mod lifecycle;
pub mod monitor;
pub mod net;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod syscall;
pub mod trampoline;
pub mod tty;

pub use error::{Error, Result};
