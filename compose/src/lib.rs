//! minibox's compose files: the Compose specification's common subset, read into a typed,
//! validated and normalized [`Project`]. This crate owns the files, not the containers: it
//! reads files and nothing else, and never touches an image, a container or a network. The
//! engine drives containers from the `Project` (`mrun compose up/down/ps/...`); `mrun compose
//! config` prints [`Project::config_yaml`].
//!
//! Loading is a pipeline, one file at a time, then over all of them:
//! YAML -> a tree of nodes that keep their lines ([`yaml`](crate::yaml)) -> `${VAR}`
//! interpolation of every string value from the shell and `.env` ([`interpolate`](crate::interpolate))
//! -> typed values, refusing unknown keys and wrong types with one line naming file, line and
//! key ([`parse`](crate::parse)) -> the files merged ([`merge`](crate::merge)) -> the project
//! resolved: name, paths, environment, names, references, order ([`project`](crate::project)).
//!
//! # Why saphyr-parser
//!
//! serde_yaml is unmaintained. The maintained candidates, measured on this 2-core machine
//! (clean build of the crate and its dependencies, CPU seconds, `opt-level = 2` as the
//! workspace builds dependencies):
//!
//! | crate | what it gives | deps | CPU s (beyond what the workspace already builds) |
//! | --- | --- | --- | --- |
//! | `saphyr-parser` 0.3 | YAML 1.2 events, each with a line/column span | arraydeque, thiserror | 1.2 |
//! | `yaml-rust2` 0.13 | the same events plus a document model | + encoding_rs, hashlink, hashbrown... | 30 (23) |
//! | `serde_norway` 0.9 (serde_yaml's fork) | serde over unsafe-libyaml | + indexmap, itoa, ryu, unsafe-libyaml-norway | 27 (17) |
//! | `serde-saphyr` 2.2 | serde over saphyr, good spans | 20 crates (annotate-snippets, base64, encoding_rs...) | 77 |
//! | `serde_yml` 0.0.13 | | now built on an unvetted `noyalib`; flagged unsound | not considered |
//!
//! saphyr-parser is the parser half of the saphyr project (the maintained successor of
//! yaml-rust, by yaml-rust2's maintainers); it is pure Rust, passes the YAML test suite, and
//! costs about a second of CPU here. The serde routes were worse for this job, not only
//! heavier: compose interpolates *before* typing, so a serde deserializer would run over an
//! intermediate `Value` that has already lost the line numbers errors must name. Our own
//! small typed layer over located nodes gives every error its file, line and key, exactly
//! the wording we want (`expected a string or a number`, not "data did not match any variant
//! of untagged enum"), and no proc-macro work.

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
