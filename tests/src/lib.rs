//! Only the binaries under test live in this package (see Cargo.toml).
