//! The build cache: a chained key per step -> the layer it produced (or "no layer"), one
//! small JSON file per key under the store's `cache/`. A key is the hash of its parent's key
//! and the step as it will run (instruction after substitution, and for ADD/COPY the
//! sources' content), so a change anywhere invalidates every step after it and nothing that
//! cannot change the result (output style, timing) ever enters it.

use crate::{Error, Result};
use layers::image::LayerInfo;
use layers::oci_spec::image::MediaType;
use layers::Store;
use std::path::PathBuf;

/// The key of a step: sha256 of its parts, each length-prefixed so no two lists collide.
pub fn key(parts: &[&str]) -> String {
    let mut h = layers::digest::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finish().digest().to_string()
}

pub struct Cache<'s> {
    store: &'s Store,
}

impl<'s> Cache<'s> {
    pub fn new(store: &'s Store) -> Cache<'s> {
        Cache { store }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.store.root().join("cache").join(key)
    }

    /// None: a miss. Some(None): the step made no layer. Some(Some(l)): reuse `l`, whose blob
    /// is present and now pinned for this build.
    pub fn get(&self, key: &str) -> Result<Option<Option<LayerInfo>>> {
        let Ok(bytes) = std::fs::read(self.path(key)) else { return Ok(None) };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return Ok(None) };
        let l = &v["layer"];
        if l.is_null() {
            return Ok(Some(None));
        }
        let parse = |f: &str| l[f].as_str().and_then(layers::digest::parse);
        let (Some(digest), Some(diff_id), Some(size)) = (parse("digest"), parse("diff_id"), l["size"].as_u64()) else {
            return Ok(None);
        };
        // Pin before checking, so GC cannot take it between the check and the use.
        self.store.pin(&digest)?;
        self.store.pin(&diff_id)?;
        if !self.store.has_blob(&digest) {
            return Ok(None);
        }
        let media_type = MediaType::from(l["media_type"].as_str().unwrap_or("application/vnd.oci.image.layer.v1.tar+gzip"));
        Ok(Some(Some(LayerInfo { digest, diff_id, size, media_type })))
    }

    pub fn put(&self, key: &str, layer: Option<&LayerInfo>) -> Result<()> {
        let v = match layer {
            None => serde_json::json!({ "layer": null }),
            Some(l) => serde_json::json!({ "layer": {
                "digest": l.digest.to_string(),
                "diff_id": l.diff_id.to_string(),
                "size": l.size,
                "media_type": l.media_type.to_string(),
            }}),
        };
        let tmp = self.store.temp_path("cache");
        let dest = self.path(key);
        std::fs::write(&tmp, serde_json::to_vec(&v).map_err(|e| Error::Failed(e.to_string()))?)
            .and_then(|_| std::fs::rename(&tmp, &dest))
            .map_err(|e| Error::Failed(format!("write {}: {}", dest.display(), layers::error::io_message(&e))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_chain_and_do_not_collide() {
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_eq!(key(&["x", "y"]), key(&["x", "y"]));
        assert_eq!(key(&["x"]).len(), 64);
    }

    #[test]
    fn a_hit_needs_its_blob() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let c = Cache::new(&s);
        assert!(c.get("k").unwrap().is_none());
        c.put("empty", None).unwrap();
        assert!(matches!(c.get("empty").unwrap(), Some(None)));
        let (d, n) = s.put_blob(b"layer").unwrap();
        let l = LayerInfo { digest: d.clone(), diff_id: d.clone(), size: n, media_type: MediaType::ImageLayerGzip };
        c.put("k", Some(&l)).unwrap();
        assert_eq!(c.get("k").unwrap(), Some(Some(l)));
        std::fs::remove_file(s.blob_path(&d)).unwrap();
        assert!(c.get("k").unwrap().is_none());
    }
}
