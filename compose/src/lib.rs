//! minibox's compose files: the Compose specification's common subset, read into a typed,
//! validated and normalized [`Project`]. This crate owns the files, not the containers: it
//! reads files and nothing else, and never touches an image, a container or a network. The
//! engine drives containers from the `Project` (`mrun compose up/down/ps/...`); `mrun compose
//! config` prints [`Project::config_yaml`].
//!
//! Loading is a pipeline, one file at a time, then over all of them: YAML -> a tree of nodes
//! that keep their lines (`yaml`) -> `${VAR}` interpolation of every string value from the
//! shell and `.env` (`interpolate`, `dotenv`) -> typed values, refusing unknown keys and wrong
//! types with one line naming file, line and key (`parse`, `read`) -> the files merged
//! (`merge`) -> the project resolved: name, paths, environment, names, references, order
//! (`project`). `config` and `emit` print it back.
//!
//! # Why saphyr-parser
//!
//! serde_yaml is unmaintained. The maintained candidates, each built from clean in its own
//! scratch crate on this 2-core machine (`-j2`, dependencies at `opt-level = 2` as the
//! workspace builds them; CPU seconds, user + sys, on 2026-12-03):
//!
//! | crate | what it gives | its dependencies | clean | not already built by the workspace |
//! | --- | --- | --- | --- | --- |
//! | `saphyr-parser` 0.3.4 | YAML 1.2 events, each with a line/column span | arraydeque, thiserror | 51 s | about 1 s |
//! | `yaml-rust2` 0.13 | the same events, and a document model | + encoding_rs, hashlink, hashbrown... | 30 s | 24 s |
//! | `serde_norway` 0.9 (serde_yaml's fork) | serde over unsafe-libyaml | + indexmap, itoa, ryu, unsafe-libyaml-norway | 27 s | 17 s |
//! | `serde-saphyr` 2.2 | serde over saphyr, with spans | 20 crates (annotate-snippets, base64, encoding_rs...) | 77 s | |
//! | `serde_yml` 0.0.13 | | now built on an unvetted `noyalib`; reported unsound before | not considered | |
//!
//! The 51 s of `saphyr-parser` are syn and thiserror, which the workspace builds anyway. This
//! crate on top of it: 6.5 s of CPU for a clean debug build.
//!
//! saphyr-parser is the parser half of the saphyr project, the maintained successor of
//! yaml-rust by yaml-rust2's maintainers; it is pure Rust and its authors test it against the
//! YAML test suite. The serde routes were worse for this job, not only heavier: compose
//! interpolates *before* typing, so a serde deserializer would run over an intermediate
//! `Value` that has already lost the line numbers the errors must name. A small typed layer
//! over located nodes gives every error its file, line and key, in the words we choose
//! (`expected a string or a number`, not "data did not match any variant of untagged enum"),
//! with no proc-macro work.

mod config;
mod dotenv;
mod emit;
mod error;
mod interpolate;
mod merge;
mod model;
mod mounts;
mod parse;
mod ports;
mod project;
mod read;
mod shell;
mod units;
mod yaml;

#[cfg(test)]
mod golden;

pub use error::{Error, Loc, Result};
pub use model::{
    Build, Condition, Dependency, Deploy, Device, EnvFile, Healthcheck, Limits, Mount, MountType,
    Network, Port, Project, Restart, Service, ServiceNetwork, Value, Volume,
};
pub use project::load;
