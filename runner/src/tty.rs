//! Terminals for containers: pseudo-terminals, raw mode, window size, relaying.
