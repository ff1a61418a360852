//! flock(2) helpers. Locks are tied to the open file description, so each holder opens its
//! own; they are released when the `Locked` value (and its fd) is dropped, also when the
//! process dies, which is what makes stale staging directories detectable.

use crate::error::{IoContext, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::path::Path;

pub struct Locked {
    _file: File,
}

pub fn lock_exclusive(path: &Path) -> Result<Locked> {
    lock(path, FlockOperation::LockExclusive)
}

pub fn lock_shared(path: &Path) -> Result<Locked> {
    lock(path, FlockOperation::LockShared)
}

fn lock(path: &Path, op: FlockOperation) -> Result<Locked> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ctx("open lock file", path)?;
    loop {
        match flock(&file, op) {
            Ok(()) => return Ok(Locked { _file: file }),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(std::io::Error::from(e)).ctx("lock", path),
        }
    }
}

/// Take an exclusive lock on an already open file (a directory fd works too) without
/// waiting. `Ok(false)` means somebody else holds it.
pub fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
