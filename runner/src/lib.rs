//! minibox's runner: turns an image (or a list of layer directories and a process spec)
//! into an isolated, limited process. It never parses Minifiles.

pub mod cli;
