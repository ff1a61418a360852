//! Images: a manifest, its config and its layers. Resolving a tag to them, and writing a
//! new image (config blob, manifest blob, tag) from layers the store already holds.

use crate::digest::{self, Digest};
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::store::{canonical_json, Store};
use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageManifest, ImageManifestBuilder, MediaType, Os,
};

/// A layer blob in the store: its compressed digest and size, its uncompressed diff_id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: MediaType,
}

impl LayerInfo {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.size, self.digest.clone())
    }
}

/// An image read from the store, verified against its digests.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest_desc: Descriptor,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The config blob exactly as stored (other tools' configs carry fields we do not model).
    pub config_raw: Vec<u8>,
}

impl Image {
    pub fn id(&self) -> &Digest {
        self.manifest.config().digest()
    }

    /// The layers, bottom first, with their diff_ids from the config.
    pub fn layers(&self) -> Result<Vec<LayerInfo>> {
        let diff_ids = self.config.rootfs().diff_ids();
        let layers = self.manifest.layers();
        if diff_ids.len() != layers.len() {
            return Err(Error::BadBlob {
                digest: self.manifest_desc.digest().to_string(),
                reason: format!(
                    "manifest lists {} layers but its config lists {} diff_ids",
                    layers.len(),
                    diff_ids.len()
                ),
            });
        }
        layers
            .iter()
            .zip(diff_ids)
            .map(|(l, d)| {
                let diff_id = digest::parse(d).ok_or_else(|| Error::BadBlob {
                    digest: self.id().to_string(),
                    reason: format!("bad diff_id {d:?}"),
                })?;
                Ok(LayerInfo {
                    digest: l.digest().clone(),
                    diff_id,
                    size: l.size(),
                    media_type: l.media_type().clone(),
                })
            })
            .collect()
    }
}

impl Store {
    /// Resolve a tag to its manifest and config, both verified.
    pub fn image(&self, r: &Reference) -> Result<Image> {
        let desc = self.lookup(r)?;
        self.image_by_manifest(&desc)
    }

    pub fn image_by_manifest(&self, desc: &Descriptor) -> Result<Image> {
        let bad = |reason: String| Error::BadBlob {
            digest: desc.digest().to_string(),
            reason,
        };
        if !matches!(desc.media_type(), MediaType::ImageManifest)
            && desc.media_type().to_string()
                != "application/vnd.docker.distribution.manifest.v2+json"
        {
            return Err(bad(format!(
                "unsupported manifest media type {}",
                desc.media_type()
            )));
        }
        let bytes = self.read_blob(desc.digest())?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid manifest: {e}")))?;
        let config_raw = self.read_blob(manifest.config().digest())?;
        let config: ImageConfiguration =
            serde_json::from_slice(&config_raw).map_err(|e| Error::BadBlob {
                digest: manifest.config().digest().to_string(),
                reason: format!("invalid image config: {e}"),
            })?;
        Ok(Image {
            manifest_desc: desc.clone(),
            manifest,
            config,
            config_raw,
        })
    }

    /// Store `config` (its rootfs.diff_ids set from `layers`) and a manifest for it; returns
    /// the manifest's descriptor. Tagging is separate (`set_tag`).
    pub fn write_image(
        &self,
        config: &ImageConfiguration,
        layers: &[LayerInfo],
    ) -> Result<Descriptor> {
        let mut config = config.clone();
        let mut rootfs = config.rootfs().clone();
        rootfs.set_diff_ids(layers.iter().map(|l| l.diff_id.to_string()).collect());
        config.set_rootfs(rootfs);
        let (cd, cs) = self.put_blob(&canonical_json(&config)?)?;
        self.write_manifest(Descriptor::new(MediaType::ImageConfig, cs, cd), layers)
    }

    /// Store an OCI manifest for a config blob already in the store and its layers.
    pub fn write_manifest(&self, config: Descriptor, layers: &[LayerInfo]) -> Result<Descriptor> {
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layers.iter().map(LayerInfo::descriptor).collect::<Vec<_>>())
            .build()
            .map_err(|e| Error::Json(e.to_string()))?;
        let (md, ms) = self.put_blob(&canonical_json(&manifest)?)?;
        Ok(Descriptor::new(MediaType::ImageManifest, ms, md))
    }
}

/// A config for this machine's platform with nothing else set.
pub fn new_config() -> ImageConfiguration {
    let mut c = ImageConfiguration::default();
    c.set_os(Os::Linux);
    c.set_architecture(Arch::default());
    c
}

/// RFC 3339 UTC for a Unix time, as image configs and history entries carry it.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Unix time of an RFC 3339 timestamp (`2023-11-14T22:13:20.5+01:00`); None if malformed.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// SOURCE_DATE_EPOCH, when set to a valid number.
pub fn source_date_epoch() -> Option<i64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn rfc3339_round_trip_and_offsets() {
        for t in [0, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.123456789+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
