//! GC: remove the blobs and extracted layer directories that no tag, no live process and
//! no container references. Runs under the store lock held exclusive, so no tag can change
//! and no pin can be taken while it marks and sweeps.

use crate::digest::{self, Digest};
use crate::error::{Error, IoContext, Result};
use crate::store::{self, Store};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use std::collections::HashSet;
use std::fs;
use std::path::Path;

#[derive(Debug, Default)]
pub struct PruneReport {
    /// Removed blobs and their sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Removed layer directories (by diff_id) and their apparent sizes.
    pub layers: Vec<(Digest, u64)>,
}

impl PruneReport {
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().chain(&self.layers).map(|(_, n)| n).sum()
    }
}

impl Store {
    pub fn prune(&self) -> Result<PruneReport> {
        let _l = self.lock_exclusive()?;
        let mut keep: HashSet<String> = store::live_pins(self.root())
            .into_keys()
            .filter_map(|p| digest::parse(&p).map(|d| d.digest().to_string()))
            .collect();
        for d in self.read_index()?.manifests() {
            self.mark(d, &mut keep, 0)?;
        }

        let mut report = PruneReport::default();
        let blobs = self.blobs_dir();
        for e in fs::read_dir(&blobs)
            .ctx("read directory", &blobs)?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) {
                continue;
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(e.path()).ctx("remove", e.path())?;
            if let Some(d) = digest::parse(&format!("sha256:{name}")) {
                report.blobs.push((d, size));
            }
        }
        let layers = self.root().join("layers");
        for e in fs::read_dir(&layers)
            .ctx("read directory", &layers)?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) {
                continue;
            }
            let size = tree_size(&e.path());
            // Out of the way first, so a crash mid-removal never leaves a partial tree under a
            // diff_id name that the next run would trust.
            let trash = self.temp_path("trash");
            fs::rename(e.path(), &trash).ctx("move aside", e.path())?;
            store::remove_all(&trash).ctx("remove", &trash)?;
            if let Some(d) = digest::parse(&format!("sha256:{name}")) {
                report.layers.push((d, size));
            }
        }
        Ok(report)
    }

    /// Add a manifest or index and everything it references to `keep`. An unreadable
    /// manifest stops GC: without it we cannot know what it needs.
    fn mark(&self, d: &Descriptor, keep: &mut HashSet<String>, depth: u32) -> Result<()> {
        keep.insert(d.digest().digest().to_string());
        let refused = |reason: String| Error::BadBlob {
            digest: d.digest().to_string(),
            reason: format!(
                "{reason}; prune refuses to guess what it references (run mbuild fsck)"
            ),
        };
        let bytes = self
            .read_blob(d.digest())
            .map_err(|e| refused(e.to_string()))?;
        if matches!(d.media_type(), MediaType::ImageIndex) {
            if depth > 4 {
                return Err(refused("image indexes nested too deep".into()));
            }
            let idx: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| refused(e.to_string()))?;
            for m in idx.manifests() {
                self.mark(m, keep, depth + 1)?;
            }
            return Ok(());
        }
        let m: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| refused(e.to_string()))?;
        keep.insert(m.config().digest().digest().to_string());
        for l in m.layers() {
            keep.insert(l.digest().digest().to_string());
        }
        if let Ok(raw) = self.read_blob(m.config().digest()) {
            if let Ok(c) = serde_json::from_slice::<ImageConfiguration>(&raw) {
                for id in c.rootfs().diff_ids() {
                    if let Some(x) = digest::parse(id) {
                        keep.insert(x.digest().to_string());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Apparent size of a tree (files and symlinks), not following links.
pub fn tree_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;

    #[test]
    fn prune_keeps_tagged_and_pinned_removes_the_rest() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("s");
        let (tagged, garbage, pinned_by_dead);
        {
            let s = Store::open(&root).unwrap();
            let (cfg, _) = s.put_blob(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
            let m = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg}","size":2}},"layers":[]}}"#
            );
            let (md, ms) = s.put_blob(m.as_bytes()).unwrap();
            s.set_tag(
                &Reference::parse("a").unwrap(),
                &Descriptor::new(MediaType::ImageManifest, ms, md.clone()),
            )
            .unwrap();
            tagged = (cfg, md);
            pinned_by_dead = s.put_blob(b"pinned by a process that is gone").unwrap().0;
        }
        let s = Store::open(&root).unwrap();
        garbage = s.put_blob(b"garbage").unwrap().0;
        // Written by this live process: pinned, so kept although untagged.
        let r = s.prune().unwrap();
        let removed: Vec<_> = r.blobs.iter().map(|(d, _)| d.clone()).collect();
        assert_eq!(removed, vec![pinned_by_dead]);
        assert!(s.has_blob(&tagged.0) && s.has_blob(&tagged.1) && s.has_blob(&garbage));
        drop(s);
        let s = Store::open(&root).unwrap();
        let r = s.prune().unwrap();
        assert_eq!(
            r.blobs.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(),
            vec![garbage]
        );
        assert!(s.has_blob(&tagged.0) && s.has_blob(&tagged.1));
    }
}
