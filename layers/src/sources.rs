//! Where blobs came from: `sources.json` in the store root maps a blob digest to the
//! registry repositories (`host/path`) it was pulled from or pushed to, most recent first,
//! so a push can ask a registry to mount a blob from a repository that has it instead of
//! uploading it again. Working state, not part of the OCI layout: losing it costs an upload,
//! never correctness. It never talks to a registry.

use crate::digest::Digest;
use crate::error::Result;
use crate::store::{write_atomic_via, Store};
use std::collections::BTreeMap;

/// Repositories remembered per blob.
const KEEP: usize = 8;
const FILE: &str = "sources.json";

type Map = BTreeMap<String, Vec<String>>;

impl Store {
    fn read_sources(&self) -> Map {
        std::fs::read(self.root().join(FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Remember that `repo` (`host/path`) holds `blobs`. Entries of blobs the store no
    /// longer has are dropped on the way.
    pub fn record_sources(&self, repo: &str, blobs: &[Digest]) -> Result<()> {
        let _l = self.lock_exclusive()?;
        let mut m = self.read_sources();
        for d in blobs {
            let v = m.entry(d.to_string()).or_default();
            v.retain(|r| r != repo);
            v.insert(0, repo.to_string());
            v.truncate(KEEP);
        }
        m.retain(|d, _| crate::digest::parse(d).is_some_and(|d| self.has_blob(&d)));
        let bytes = serde_json::to_vec(&m)?;
        let dest = self.root().join(FILE);
        write_atomic_via(&self.temp_path("sources"), &dest, &bytes)
    }

    /// The repositories known to hold blob `d`, most recent first.
    pub fn blob_sources(&self, d: &Digest) -> Vec<String> {
        self.read_sources().remove(d.as_ref()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_recorded_most_recent_first_and_pruned() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let (a, _) = s.put_blob(b"a").unwrap();
        let gone = crate::digest::sha256(b"not in the store");
        s.record_sources("h:1/one", &[a.clone(), gone.clone()])
            .unwrap();
        s.record_sources("h:1/two", std::slice::from_ref(&a))
            .unwrap();
        s.record_sources("h:1/one", std::slice::from_ref(&a))
            .unwrap();
        assert_eq!(s.blob_sources(&a), vec!["h:1/one", "h:1/two"]);
        assert!(s.blob_sources(&gone).is_empty());
    }
}
