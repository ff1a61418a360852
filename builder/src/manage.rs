//! Image management subcommands.
