//! Push: the layers and config first (several at once), each skipped when the registry
//! already has it (HEAD), mounted from another repository of the same registry when the
//! store knows one that holds it (POST `?mount=&from=`), otherwise uploaded in one PUT
//! after the POST that opens the upload; then the manifest, byte for byte as stored, so
//! its digest is the same on both sides.

use super::client::{encode, Body, Client};
use super::pull::short;
use super::{Progress, PushOptions, RegError};
use crate::digest::{self, Digest};
use crate::image::Image;
use crate::reference::ImageName;
use crate::store::Store;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

struct Blob {
    digest: Digest,
    size: u64,
    /// Another repository of the same registry that has it.
    mount_from: Option<String>,
}

pub(super) fn push(
    store: &Store,
    img: &Image,
    dest: &ImageName,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<Digest, RegError> {
    let host = dest.domain();
    let path = dest.path();
    let here = format!("{host}/{path}");
    let manifest = store.read_blob(img.manifest_desc.digest())?;
    let mut blobs: Vec<Blob> = Vec::new();
    let config = img.manifest.config();
    for d in img.manifest.layers().iter().chain(std::iter::once(config)) {
        let dg = digest::parse(d.digest().as_ref())
            .ok_or_else(|| RegError::new(format!("blob {}: unsupported digest", d.digest())))?;
        if blobs.iter().any(|b| b.digest == dg) {
            continue;
        }
        let mount_from = store
            .blob_sources(&dg)
            .into_iter()
            .filter(|r| *r != here)
            .find_map(|r| r.strip_prefix(&format!("{host}/")).map(str::to_string));
        blobs.push(Blob {
            digest: dg,
            size: d.size(),
            mount_from,
        });
    }
    let mut scopes = vec![format!("repository:{path}:pull,push")];
    for b in &blobs {
        if let Some(f) = &b.mount_from {
            let s = format!("repository:{f}:pull");
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    }
    let c = Client::connect(host, &opts.access, scopes)?;
    let jobs = if opts.jobs == 0 { 4 } else { opts.jobs };
    let queue: Mutex<VecDeque<&Blob>> = Mutex::new(blobs.iter().collect());
    let stop = AtomicBool::new(false);
    let failed: Mutex<Option<RegError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(blobs.len()).max(1) {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Some(b) = queue.lock().expect("queue").pop_front() else {
                    return;
                };
                if let Err(e) = push_blob(&c, store, &path, b, progress) {
                    stop.store(true, Ordering::Relaxed);
                    failed.lock().expect("error").get_or_insert(e);
                    return;
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().expect("error") {
        return Err(e);
    }

    let reference = dest.api_reference();
    let media_type = img.manifest_desc.media_type().to_string();
    c.send(
        "PUT",
        &format!("/v2/{path}/manifests/{reference}"),
        &[("Content-Type", media_type.as_str())],
        &Body::Bytes(&manifest),
    )
    .map_err(|e| match e.status {
        401 | 403 => e,
        s => RegError::new(format!("manifest: {}", e.msg)).status(s),
    })?;
    let mut all: Vec<Digest> = blobs.iter().map(|b| b.digest.clone()).collect();
    let md = img.manifest_desc.digest().clone();
    all.push(md.clone());
    store.record_sources(&here, &all)?;
    progress.line(&format!(
        "{reference}: digest: {md} size: {}",
        manifest.len()
    ));
    Ok(md)
}

fn push_blob(
    c: &Client,
    store: &Store,
    path: &str,
    b: &Blob,
    progress: &dyn Progress,
) -> Result<(), RegError> {
    let id = short(&b.digest).to_string();
    // Refusals are about the repository, not this blob: they go up as they are.
    let err = |e: RegError| match e.status {
        401 | 403 => e,
        s => RegError::new(format!("blob {id}: {}", e.msg)).status(s),
    };
    match c.send(
        "HEAD",
        &format!("/v2/{path}/blobs/{}", b.digest),
        &[],
        &Body::Empty,
    ) {
        Ok(_) => {
            progress.finish(&id, "already exists");
            return Ok(());
        }
        Err(e) if e.status == 404 => {}
        Err(e) => return Err(err(e)),
    }
    let file = store.blob_path(&b.digest);
    if !file.is_file() {
        return Err(RegError::new(format!(
            "blob {}: missing from the store (run mbuild fsck)",
            b.digest
        )));
    }
    let open = match &b.mount_from {
        Some(from) => format!(
            "/v2/{path}/blobs/uploads/?mount={}&from={}",
            encode(b.digest.as_ref()),
            encode(from)
        ),
        None => format!("/v2/{path}/blobs/uploads/"),
    };
    let resp = c
        .send("POST", &open, &[("Content-Length", "0")], &Body::Empty)
        .map_err(err)?;
    if resp.status() == 201 {
        progress.finish(
            &id,
            &format!("mounted from {}", b.mount_from.as_deref().unwrap_or("")),
        );
        return Ok(());
    }
    let location = resp
        .header("location")
        .ok_or_else(|| RegError::new(format!("blob {id}: the registry gave no upload location")))?
        .to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = format!("{location}{sep}digest={}", encode(b.digest.as_ref()));
    progress.start(&id, b.size);
    c.send(
        "PUT",
        &url,
        &[("Content-Type", "application/octet-stream")],
        &Body::File(file, b.size),
    )
    .map_err(err)?;
    progress.advance(&id, b.size);
    progress.finish(&id, "pushed");
    Ok(())
}
