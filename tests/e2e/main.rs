//! End-to-end tests: the real `mbuild` and `mrun` against temporary stores.
