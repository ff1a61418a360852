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

/// A cache hit.
#[derive(Debug, PartialEq, Eq)]
pub struct Hit {
    pub layer: Option<LayerInfo>,
    pub created: Option<String>,
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

    /// None: a miss. Otherwise the step's layer (None when it made none), whose blob is
    /// present and now pinned for this build, and when the step first ran.
    pub fn get(&self, key: &str) -> Result<Option<Hit>> {
        let Ok(bytes) = std::fs::read(self.path(key)) else {
            return Ok(None);
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Ok(None);
        };
        let created = v["created"].as_str().map(String::from);
        let l = &v["layer"];
        if l.is_null() {
            return Ok(Some(Hit {
                layer: None,
                created,
            }));
        }
        let parse = |f: &str| l[f].as_str().and_then(layers::digest::parse);
        let (Some(digest), Some(diff_id), Some(size)) =
            (parse("digest"), parse("diff_id"), l["size"].as_u64())
        else {
            return Ok(None);
        };
        // Pin before checking, so GC cannot take it between the check and the use.
        self.store.pin(&digest)?;
        self.store.pin(&diff_id)?;
        if !self.store.has_blob(&digest) {
            return Ok(None);
        }
        let media_type = MediaType::from(
            l["media_type"]
                .as_str()
                .unwrap_or("application/vnd.oci.image.layer.v1.tar+gzip"),
        );
        Ok(Some(Hit {
            layer: Some(LayerInfo {
                digest,
                diff_id,
                size,
                media_type,
            }),
            created,
        }))
    }

    /// Record what the step `key` made (`created` is its history time, kept so that a fully
    /// cached rebuild gives the very same config and image id).
    pub fn put(&self, key: &str, layer: Option<&LayerInfo>, created: &str) -> Result<()> {
        let v = match layer {
            None => serde_json::json!({ "layer": null, "created": created }),
            Some(l) => serde_json::json!({ "layer": {
                "digest": l.digest.to_string(),
                "diff_id": l.diff_id.to_string(),
                "size": l.size,
                "media_type": l.media_type.to_string(),
            }, "created": created }),
        };
        let tmp = self.store.temp_path("cache");
        let dest = self.path(key);
        std::fs::write(
            &tmp,
            serde_json::to_vec(&v).map_err(|e| Error::Failed(e.to_string()))?,
        )
        .and_then(|_| std::fs::rename(&tmp, &dest))
        .map_err(|e| {
            Error::Failed(format!(
                "write {}: {}",
                dest.display(),
                layers::error::io_message(&e)
            ))
        })
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
        c.put("empty", None, "2001-01-01T00:00:00Z").unwrap();
        assert_eq!(
            c.get("empty").unwrap(),
            Some(Hit {
                layer: None,
                created: Some("2001-01-01T00:00:00Z".into())
            })
        );
        let (d, n) = s.put_blob(b"layer").unwrap();
        let l = LayerInfo {
            digest: d.clone(),
            diff_id: d.clone(),
            size: n,
            media_type: MediaType::ImageLayerGzip,
        };
        c.put("k", Some(&l), "t").unwrap();
        assert_eq!(
            c.get("k").unwrap(),
            Some(Hit {
                layer: Some(l),
                created: Some("t".into())
            })
        );
        std::fs::remove_file(s.blob_path(&d)).unwrap();
        assert!(c.get("k").unwrap().is_none());
    }
}
