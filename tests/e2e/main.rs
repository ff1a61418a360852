//! End-to-end tests: the real `mbuild` and `mrun` binaries against temporary stores.
//! One test binary with a module per area; `common` gives each test its own store.

mod build;
mod common;
mod confinement;
mod interop;
mod layout;
mod lifecycle;
mod names;
mod parser;
mod registry;
mod registry_server;
mod resilience;
mod run;
mod security;
mod store;
