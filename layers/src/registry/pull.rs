//! Pull: resolve a name to a manifest (picking this machine's platform from an index),
//! then download the config and the layers the store lacks, several at once, each streamed
//! into a store blob writer that names the blob only when its digest and size match the
//! manifest. The manifest goes in last, then the tag: a failure anywhere leaves the tags
//! as they were and no half blob.

use super::client::{Body, Client, ACCEPT, MAX_JSON};
use super::{Platform, Progress, PullOptions, RegError};
use crate::digest::{self, Digest};
use crate::image::Image;
use crate::reference::ImageName;
use crate::resolve::REPO_DIGEST;
use crate::store::Store;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Layer media types the store unpacks (gzip or plain tar, OCI or Docker).
const LAYERS: [&str; 4] = [
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
];

/// The 12 hex digits Docker shows for a blob.
pub fn short(d: &Digest) -> &str {
    &d.digest()[..12]
}

pub(super) fn pull(
    store: &Store,
    name: &ImageName,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Image, RegError> {
    let path = name.path();
    let c = Client::connect(
        name.domain(),
        &opts.access,
        vec![format!("repository:{path}:pull")],
    )?;
    let (bytes, media_type, top) = get_manifest(&c, &path, &name.api_reference(), name.digest())?;
    let (bytes, media_type, digest) = if is_index(&media_type, &bytes) {
        let want = opts.platform.clone().unwrap_or_else(Platform::host);
        let idx: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| RegError::new(format!("image index {top}: {e}")))?;
        let d =
            select(&idx, &want).map_err(|m| RegError::new(format!("image index {top}: {m}")))?;
        let want_digest = digest::parse(d.digest().as_ref())
            .ok_or_else(|| RegError::new(format!("unsupported digest {}", d.digest())))?;
        let (b, t, dg) = get_manifest(&c, &path, want_digest.as_ref(), Some(&want_digest))?;
        if is_index(&t, &b) {
            return Err(RegError::new(format!(
                "image index {top}: nested indexes are not supported"
            )));
        }
        (b, t, dg)
    } else {
        (bytes, media_type, top.clone())
    };
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(RegError::new(format!(
            "manifest {digest}: unsupported media type {media_type}"
        )));
    }
    let manifest: ImageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| RegError::new(format!("manifest {digest}: {e}")))?;
    check_types(&manifest, &digest)?;

    let mut blobs: Vec<Descriptor> = vec![manifest.config().clone()];
    for l in manifest.layers() {
        if !blobs.iter().any(|b| b.digest() == l.digest()) {
            blobs.push(l.clone());
        }
    }
    let jobs = if opts.jobs == 0 { 4 } else { opts.jobs };
    fetch_all(&c, store, &path, &blobs, jobs, progress)?;

    // The manifest's bytes as served: their digest is the image's identity.
    let mut w = store.blob_writer()?;
    w.write_all(&bytes)
        .map_err(|e| RegError::new(format!("write {}: {e}", w.path().display())))?;
    let size = w.commit_verified(&digest, None)?;
    let mut desc = Descriptor::new(MediaType::from(media_type.as_str()), size, digest.clone());
    if top != digest {
        desc.set_annotations(Some([(REPO_DIGEST.to_string(), top.to_string())].into()));
    }
    let img = store.image_by_manifest(&desc)?;
    img.layers()?;
    match name.reference() {
        Some(r) => store.set_tag(&r, &desc)?,
        None => store.set_name(&name.with_digest(&top), &desc)?,
    }
    let mut all: Vec<Digest> = blobs.iter().map(|b| b.digest().clone()).collect();
    all.push(digest);
    store.record_sources(&format!("{}/{path}", name.domain()), &all)?;
    progress.line(&format!("Digest: {top}"));
    Ok(img)
}

fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        return true;
    }
    if media_type.is_empty() {
        // An OCI index need not name its media type: one with manifests and no layers is one.
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
        return v.get("manifests").is_some() && v.get("layers").is_none();
    }
    false
}

/// GET a manifest; returns its bytes, media type and digest (checked against `want`).
fn get_manifest(
    c: &Client,
    path: &str,
    reference: &str,
    want: Option<&Digest>,
) -> Result<(Vec<u8>, String, Digest), RegError> {
    let resp = c
        .send(
            "GET",
            &format!("/v2/{path}/manifests/{reference}"),
            &[("Accept", ACCEPT)],
            &Body::Empty,
        )
        .map_err(|e| {
            if e.status == 404 {
                let what = if reference.starts_with("sha256:") {
                    "manifest"
                } else {
                    "tag"
                };
                RegError::new(format!(
                    "manifest unknown: {}/{path} has no {what} {reference}",
                    c.host
                ))
                .status(404)
            } else {
                e
            }
        })?;
    let header_type = resp
        .header("content-type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(MAX_JSON + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| RegError::new(format!("manifest {reference}: read: {e}")))?;
    if bytes.len() as u64 > MAX_JSON {
        return Err(RegError::new(format!(
            "manifest {reference}: larger than {MAX_JSON} bytes"
        )));
    }
    let got = digest::sha256(&bytes);
    if let Some(w) = want {
        if *w != got {
            return Err(RegError::new(format!(
                "manifest {w}: digest mismatch, content hashes to {got}"
            )));
        }
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| RegError::new(format!("manifest {reference}: {e}")))?;
    if v["schemaVersion"] == 1 {
        return Err(RegError::new(format!(
            "manifest {reference}: Docker schema 1 manifests are not supported"
        )));
    }
    let media_type = v["mediaType"]
        .as_str()
        .map(str::to_string)
        .unwrap_or(header_type);
    let media_type = if media_type == "application/json" || media_type == "text/plain" {
        String::new()
    } else {
        media_type
    };
    let media_type = if media_type.is_empty() && !is_index("", &bytes) {
        OCI_MANIFEST.to_string()
    } else {
        media_type
    };
    Ok((bytes, media_type, got))
}

/// The manifest for `want` in an index: os and architecture must match; a variant must
/// match when one is asked for (arm64's `v8` is its default).
fn select<'a>(idx: &'a ImageIndex, want: &Platform) -> Result<&'a Descriptor, String> {
    let norm = |arch: &str, v: Option<&str>| -> Option<String> {
        match (arch, v) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_string),
        }
    };
    let mut seen = Vec::new();
    for d in idx.manifests() {
        let Some(p) = d.platform() else { continue };
        let (os, arch) = (p.os().to_string(), p.architecture().to_string());
        let variant = p.variant().as_deref();
        if os == "unknown" {
            continue; // attestations (BuildKit's provenance), not images
        }
        seen.push(match variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        });
        if os == want.os
            && arch == want.arch
            && (want.variant.is_none()
                || norm(&arch, variant) == norm(&want.arch, want.variant.as_deref()))
        {
            return Ok(d);
        }
    }
    Err(format!(
        "no image for {want} (it has {})",
        if seen.is_empty() {
            "no platforms".to_string()
        } else {
            seen.join(", ")
        }
    ))
}

fn check_types(m: &ImageManifest, digest: &Digest) -> Result<(), RegError> {
    let ct = m.config().media_type().to_string();
    if ct != OCI_CONFIG && ct != DOCKER_CONFIG {
        return Err(RegError::new(format!(
            "manifest {digest}: not a container image (config media type {ct})"
        )));
    }
    for l in m.layers() {
        let t = l.media_type().to_string();
        if LAYERS.contains(&t.as_str()) {
            continue;
        }
        let d = l.digest().to_string();
        let what = if t.contains("zstd") {
            "zstd-compressed layers are not supported yet".to_string()
        } else if t.contains("foreign") || t.contains("nondistributable") {
            "foreign (non-distributable) layers are not supported".to_string()
        } else {
            format!("unsupported layer media type {t}")
        };
        return Err(RegError::new(format!("layer {d}: {what}")));
    }
    Ok(())
}

/// Download the blobs the store lacks, `jobs` at a time; the first failure stops the rest
/// (their partial temp files go with their writers).
fn fetch_all(
    c: &Client,
    store: &Store,
    path: &str,
    blobs: &[Descriptor],
    jobs: usize,
    progress: &dyn Progress,
) -> Result<(), RegError> {
    let queue: Mutex<VecDeque<&Descriptor>> = Mutex::new(blobs.iter().collect());
    let stop = AtomicBool::new(false);
    let failed: Mutex<Option<RegError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(blobs.len()).max(1) {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Some(d) = queue.lock().expect("queue").pop_front() else {
                    return;
                };
                if let Err(e) = fetch(c, store, path, d, &stop, progress) {
                    stop.store(true, Ordering::Relaxed);
                    failed.lock().expect("error").get_or_insert(e);
                    return;
                }
            });
        }
    });
    match failed.into_inner().expect("error") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn fetch(
    c: &Client,
    store: &Store,
    path: &str,
    desc: &Descriptor,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> Result<(), RegError> {
    let d = digest::parse(desc.digest().as_ref()).ok_or_else(|| {
        RegError::new(format!(
            "blob {}: unsupported digest (only sha256 is supported)",
            desc.digest()
        ))
    })?;
    let id = short(&d).to_string();
    // Pin before looking, so GC either sees the pin or has already removed the blob.
    store.pin(&d)?;
    if store.has_blob(&d) {
        progress.finish(&id, "already exists");
        return Ok(());
    }
    let size = desc.size();
    progress.start(&id, size);
    let resp = c
        .send("GET", &format!("/v2/{path}/blobs/{d}"), &[], &Body::Empty)
        .map_err(|e| match e.status {
            401 | 403 => e,
            s => RegError::new(format!("blob {id}: {}", e.msg)).status(s),
        })?;
    // One byte more than announced is enough to know it is too long.
    let mut r = resp.into_reader().take(size + 1);
    let mut w = store.blob_writer()?;
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            // Another blob failed: this one's temp file goes with `w`.
            return Ok(());
        }
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(RegError::new(format!(
                    "blob {id}: connection lost after {got} of {size} bytes: {}",
                    e.to_string().to_lowercase()
                )))
            }
        };
        w.write_all(&buf[..n]).map_err(|e| {
            RegError::from(crate::error::Error::Io {
                op: "write",
                path: w.path().to_path_buf(),
                source: e,
            })
        })?;
        got += n as u64;
        progress.advance(&id, n as u64);
    }
    if got < size {
        return Err(RegError::new(format!(
            "blob {id}: connection closed after {got} of {size} bytes"
        )));
    }
    w.commit_verified(&d, Some(size))?;
    progress.finish(&id, "pulled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(platforms: &[(&str, &str, Option<&str>)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch, v))| {
                let mut p = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = v {
                    p["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": OCI_MANIFEST,
                    "size": 1,
                    "digest": digest::sha256(&[i as u8]).to_string(),
                    "platform": p,
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests
        }))
        .unwrap()
    }

    #[test]
    fn platform_selection() {
        let idx = index(&[
            ("unknown", "unknown", None),
            ("linux", "arm", Some("v7")),
            ("linux", "arm64", Some("v8")),
            ("linux", "amd64", None),
        ]);
        let pick = |s: &str| {
            select(&idx, &Platform::parse(s).unwrap())
                .map(|d| d.digest().clone())
                .map_err(|e| e.to_string())
        };
        assert_eq!(pick("linux/amd64").unwrap(), digest::sha256(&[3]));
        assert_eq!(pick("linux/arm64").unwrap(), digest::sha256(&[2]));
        assert_eq!(pick("linux/arm64/v8").unwrap(), digest::sha256(&[2]));
        assert_eq!(pick("linux/arm/v7").unwrap(), digest::sha256(&[1]));
        let e = pick("linux/s390x").unwrap_err();
        assert_eq!(
            e,
            "no image for linux/s390x (it has linux/arm/v7, linux/arm64/v8, linux/amd64)"
        );
    }

    #[test]
    fn zstd_and_foreign_layers_are_named() {
        let m = |t: &str| -> ImageManifest {
            serde_json::from_value(serde_json::json!({
                "schemaVersion": 2,
                "config": {"mediaType": OCI_CONFIG, "size": 2, "digest": digest::sha256(b"{}").to_string()},
                "layers": [{"mediaType": t, "size": 1, "digest": digest::sha256(b"l").to_string()}],
            }))
            .unwrap()
        };
        let d = digest::sha256(b"m");
        assert!(check_types(&m(LAYERS[0]), &d).is_ok());
        let e = check_types(&m("application/vnd.oci.image.layer.v1.tar+zstd"), &d).unwrap_err();
        assert!(
            e.msg
                .ends_with("zstd-compressed layers are not supported yet"),
            "{}",
            e.msg
        );
        let e = check_types(
            &m("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            &d,
        )
        .unwrap_err();
        assert!(e.msg.contains("foreign"), "{}", e.msg);
    }
}
