//! Save and load: image archives that other tools read and write. A saved tar is both an
//! OCI image layout (oci-layout, index.json, blobs/) and a docker-archive (manifest.json),
//! as `docker save` writes since Docker 25. Load takes OCI layouts (directory or tar) and
//! docker-archive tars; a tar is only parsed, never unpacked with `tar::Archive::unpack`:
//! its regular files land in a staging directory and nothing else is created.

use crate::digest::{self, Digest, HashWriter};
use crate::error::{Error, IoContext, Result};
use crate::image::{self, LayerInfo};
use crate::pgzip::ParallelGzEncoder;
use crate::reference::Reference;
use crate::store::{self, canonical_json, Store, REF_NAME};
use oci_spec::image::{
    Arch, Descriptor, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType, Os,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The annotation containerd and Docker >= 25 name an image by, fully qualified
/// (`docker.io/library/busybox:latest`), next to a ref.name that holds only the tag.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Manifests, configs and indexes are read whole; a hostile archive must not make us
/// allocate without bound.
const MAX_JSON: u64 = 32 << 20;

/// Symlinks followed when resolving an archive member, as the kernel's MAXSYMLINKS.
const MAX_LINKS: usize = 40;

/// Gzip level for docker-archive layers that arrive uncompressed: the level our own layers use.
const GZIP_LEVEL: u32 = 6;

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

impl Store {
    /// Write `r` as one tar at `out` (by temp file and rename), with mtimes at
    /// SOURCE_DATE_EPOCH or 0.
    pub fn save(&self, r: &Reference, out: &Path) -> Result<()> {
        let mtime = image::source_date_epoch().filter(|t| *t >= 0).unwrap_or(0) as u64;
        self.save_at(r, out, mtime)
    }

    fn save_at(&self, r: &Reference, out: &Path, mtime: u64) -> Result<()> {
        let img = self.image(r)?;
        let manifest_digest = img.manifest_desc.digest().clone();

        let mut blobs: BTreeMap<String, (Digest, u64)> = BTreeMap::new();
        let mut add = |d: &Digest, size: u64| {
            blobs.insert(d.digest().to_string(), (d.clone(), size));
        };
        add(&manifest_digest, img.manifest_desc.size());
        add(img.manifest.config().digest(), img.manifest.config().size());
        for l in img.manifest.layers() {
            add(l.digest(), l.size());
        }

        let mut desc = Descriptor::new(
            img.manifest_desc.media_type().clone(),
            img.manifest_desc.size(),
            manifest_digest,
        );
        desc.set_annotations(Some(
            [
                (REF_NAME.to_string(), r.to_string()),
                (CONTAINERD_NAME.to_string(), qualified_name(r)),
            ]
            .into(),
        ));
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![desc])
            .build()
            .map_err(|e| Error::Json(e.to_string()))?;
        let blob_name = |d: &Digest| format!("blobs/sha256/{}", d.digest());
        let docker = vec![DockerEntry {
            config: blob_name(img.manifest.config().digest()),
            repo_tags: Some(vec![r.to_string()]),
            layers: img
                .manifest
                .layers()
                .iter()
                .map(|l| blob_name(l.digest()))
                .collect(),
        }];

        let tmp = temp_beside(out);
        let res = (|| {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp)
                .ctx("create", &tmp)?;
            let mut tar = tar::Builder::new(BufWriter::with_capacity(256 << 10, file));
            let wr = |e: io::Error| Error::Io {
                op: "write",
                path: tmp.clone(),
                source: e,
            };
            // Entries in byte order of their names: "blobs/…" < "index.json" <
            // "manifest.json" < "oci-layout", and the blobs sorted by hex.
            for dir in ["blobs/", "blobs/sha256/"] {
                let mut h = header(tar::EntryType::Directory, 0, 0o755, mtime);
                tar.append_data(&mut h, dir, io::empty()).map_err(wr)?;
            }
            for (d, size) in blobs.values() {
                let mut h = header(tar::EntryType::Regular, *size, 0o644, mtime);
                let reader = ExactReader {
                    inner: self.open_blob(d)?,
                    left: *size,
                };
                tar.append_data(&mut h, blob_name(d), reader)
                    .map_err(|e| match e.get_ref() {
                        Some(i) if i.is::<store::Mismatch>() => self.blob_error(d, e),
                        Some(i) if i.is::<SizeMismatch>() => Error::BadBlob {
                            digest: d.to_string(),
                            reason: i.to_string(),
                        },
                        _ => wr(e),
                    })?;
            }
            let files: [(&str, Vec<u8>); 3] = [
                ("index.json", canonical_json(&index)?),
                ("manifest.json", serde_json::to_vec(&docker)?),
                ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            ];
            for (name, bytes) in files {
                let mut h = header(tar::EntryType::Regular, bytes.len() as u64, 0o644, mtime);
                tar.append_data(&mut h, name, &bytes[..]).map_err(wr)?;
            }
            let file = tar
                .into_inner()
                .map_err(wr)?
                .into_inner()
                .map_err(|e| e.into_error())
                .ctx("write", &tmp)?;
            file.sync_all().ctx("fsync", &tmp)?;
            fs::rename(&tmp, out).ctx("rename into place", out)?;
            store::fsync_dir(&parent_dir(out))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    /// Load every image in the archive or layout at `input`; returns the tags it set.
    pub fn load(&self, input: &Path) -> Result<Vec<Reference>> {
        let meta = fs::metadata(input).ctx("open", input)?;
        let staging;
        let src = if meta.is_dir() {
            Source {
                input: input.to_path_buf(),
                dir: fs::canonicalize(input).ctx("resolve", input)?,
                links: None,
            }
        } else {
            staging = Staging(self.temp_dir("load")?);
            let links = extract(input, &staging.0)?;
            Source {
                input: input.to_path_buf(),
                dir: staging.0.clone(),
                links: Some(links),
            }
        };
        let images = if let Some(f) = src.try_open("index.json")? {
            self.load_oci(&src, f)?
        } else if let Some(f) = src.try_open("manifest.json")? {
            self.load_docker(&src, f)?
        } else {
            return Err(src.bad("not an image archive: no index.json or manifest.json"));
        };
        // Every blob is in place before the first tag changes, so a failure above leaves
        // the tags as they were (the blobs it wrote are pinned now and GC-able later).
        let mut tags = Vec::new();
        for (r, desc) in images {
            self.set_tag(&r, &desc)?;
            if !tags.contains(&r) {
                tags.push(r);
            }
        }
        Ok(tags)
    }

    fn load_oci(&self, src: &Source, f: File) -> Result<Vec<(Reference, Descriptor)>> {
        let bytes = read_limited(f, "index.json", src)?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| src.bad(format!("invalid index.json: {e}")))?;
        let mut out = Vec::new();
        for desc in index.manifests() {
            let manifest_desc = match desc.media_type().as_ref() {
                t if is_manifest(t) => desc.clone(),
                t if is_index(t) => self.select_platform(src, desc)?,
                t => {
                    return Err(src.bad(format!(
                        "index.json: {}: unsupported media type {t}",
                        desc.digest()
                    )))
                }
            };
            let (stored, id) = self.copy_oci_image(src, &manifest_desc)?;
            let r = oci_name(src, desc, &id)?;
            out.push((r, stored));
        }
        Ok(out)
    }

    /// The manifest for this machine's platform in a nested image index (one level), or its
    /// only manifest.
    fn select_platform(&self, src: &Source, desc: &Descriptor) -> Result<Descriptor> {
        let bytes = src.read_blob(desc)?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| src.bad(format!("image index {}: {e}", desc.digest())))?;
        let (os, arch) = (Os::Linux, Arch::default());
        let manifests: Vec<&Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| is_manifest(d.media_type().as_ref()))
            .collect();
        let found = manifests
            .iter()
            .find(|d| {
                d.platform()
                    .as_ref()
                    .is_some_and(|p| *p.os() == os && *p.architecture() == arch)
            })
            .or(if manifests.len() == 1 {
                manifests.first()
            } else {
                None
            });
        found.map(|d| (*d).clone()).ok_or_else(|| {
            src.bad(format!(
                "image index {} has no manifest for {os}/{arch}",
                desc.digest()
            ))
        })
    }

    /// Copy an image's blobs into the store, each verified against its descriptor, the
    /// manifest last; returns the stored manifest's descriptor and the image id.
    fn copy_oci_image(&self, src: &Source, desc: &Descriptor) -> Result<(Descriptor, Digest)> {
        let bytes = src.read_blob(desc)?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes)
            .map_err(|e| src.bad(format!("manifest {}: {e}", desc.digest())))?;
        let config = manifest.config();
        let ct = config.media_type().as_ref();
        if !matches!(config.media_type(), MediaType::ImageConfig) && ct != DOCKER_CONFIG {
            return Err(src.bad(format!(
                "manifest {}: unsupported config media type {ct}",
                desc.digest()
            )));
        }
        self.copy_blob(src, config)?;
        for l in manifest.layers() {
            let t = l.media_type().as_ref();
            let ok = matches!(
                l.media_type(),
                MediaType::ImageLayer | MediaType::ImageLayerGzip
            ) || t == DOCKER_LAYER_GZIP
                || t == DOCKER_LAYER_TAR;
            if !ok {
                return Err(src.bad(format!("layer {}: unsupported media type {t}", l.digest())));
            }
            self.copy_blob(src, l)?;
        }
        // The bytes as they are: their digest is the image's identity.
        let (d, n) = self.put_blob(&bytes)?;
        let stored = Descriptor::new(desc.media_type().clone(), n, d);
        let img = self.image_by_manifest(&stored)?;
        img.layers()?;
        Ok((stored, img.id().clone()))
    }

    fn copy_blob(&self, src: &Source, desc: &Descriptor) -> Result<()> {
        let want = sha256_of(src, desc)?;
        // Pin before looking, so GC either sees the pin or has already removed the blob.
        self.pin(&want)?;
        if let Ok(m) = fs::metadata(self.blob_path(&want)) {
            return check_blob(src, desc, &want, m.len());
        }
        let name = blob_member(&want);
        let mut f = src.open(&name)?;
        let mut w = self.blob_writer()?;
        io::copy(&mut f, &mut w).map_err(|e| src.read_error(&name, e, w.path()))?;
        let (got, size) = w.commit()?;
        check_blob(src, desc, &got, size)
    }

    fn load_docker(&self, src: &Source, f: File) -> Result<Vec<(Reference, Descriptor)>> {
        let bytes = read_limited(f, "manifest.json", src)?;
        let entries: Vec<DockerEntry> = serde_json::from_slice(&bytes)
            .map_err(|e| src.bad(format!("invalid manifest.json: {e}")))?;
        let mut done: HashMap<PathBuf, LayerInfo> = HashMap::new();
        let mut out = Vec::new();
        for entry in &entries {
            let desc = self.load_docker_image(src, entry, &mut done)?;
            let id = self.image_by_manifest(&desc)?.id().clone();
            let tags = entry.repo_tags.as_deref().unwrap_or_default();
            if tags.is_empty() {
                out.push((untagged(&id), desc.clone()));
            }
            for t in tags {
                let r = Reference::parse(t).map_err(|e| src.bad(format!("manifest.json: {e}")))?;
                out.push((r, desc.clone()));
            }
        }
        Ok(out)
    }

    fn load_docker_image(
        &self,
        src: &Source,
        entry: &DockerEntry,
        done: &mut HashMap<PathBuf, LayerInfo>,
    ) -> Result<Descriptor> {
        // The config is kept byte for byte: its sha256 is the image id, and other tools'
        // configs carry fields we do not model.
        let config = read_limited(src.open(&entry.config)?, &entry.config, src)?;
        let (cd, cs) = self.put_blob(&config)?;
        // Old `docker save` and skopeo name it `<id hex>.json`, Docker >= 25
        // `blobs/sha256/<id hex>`: a name that claims a digest must match it.
        let stem = entry.config.rsplit('/').next().unwrap_or_default();
        let stem = stem.strip_suffix(".json").unwrap_or(stem);
        if is_hex64(stem) && stem != cd.digest() {
            return Err(Error::DigestMismatch {
                what: "image config",
                digest: format!("sha256:{stem}"),
                actual: cd.to_string(),
            });
        }
        let value: serde_json::Value = serde_json::from_slice(&config)
            .map_err(|e| src.bad(format!("{}: invalid image config: {e}", entry.config)))?;
        let diff_ids: Vec<&str> = value["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if diff_ids.len() != entry.layers.len() {
            return Err(src.bad(format!(
                "manifest.json lists {} layers for {} but its config lists {} diff_ids",
                entry.layers.len(),
                entry.config,
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (name, want) in entry.layers.iter().zip(diff_ids) {
            let key = src.resolve(name)?;
            let info = match done.get(&key) {
                Some(info) => info.clone(),
                None => {
                    let info = self.docker_layer(src, name)?;
                    done.insert(key, info.clone());
                    info
                }
            };
            if info.diff_id.to_string() != want {
                return Err(src.bad(format!(
                    "layer {name}: its uncompressed content hashes to {} but the image config lists diff_id {want}",
                    info.diff_id
                )));
            }
            self.pin(&info.digest)?;
            layers.push(info);
        }
        self.write_manifest(Descriptor::new(MediaType::ImageConfig, cs, cd), &layers)
    }

    /// A docker-archive layer as a gzip blob: gzip input is kept as it is (its digest
    /// stays the one registries know), a plain tar is compressed; the diff_id is the
    /// sha256 of the tar either way.
    fn docker_layer(&self, src: &Source, name: &str) -> Result<LayerInfo> {
        let mut f = BufReader::with_capacity(256 << 10, src.open(name)?);
        let magic = f
            .fill_buf()
            .map_err(|e| src.read_error(name, e, src.input.as_path()))?;
        if let Some(c) = compression_name(magic) {
            return Err(src.bad(format!(
                "layer {name}: {c} compressed layers are not supported"
            )));
        }
        let gzip = magic.starts_with(&[0x1f, 0x8b]);
        let mut w = self.blob_writer()?;
        let tmp = w.path().to_path_buf();
        let err = |e: io::Error| src.read_error(name, e, &tmp);
        let diff_id = if gzip {
            let tee = Tee { r: f, w: &mut w };
            let mut dec = flate2::read::MultiGzDecoder::new(tee);
            let mut h = HashWriter::new(io::sink());
            io::copy(&mut dec, &mut h).map_err(err)?;
            // Whatever follows the gzip stream is part of the file, so part of the blob.
            io::copy(&mut dec.into_inner(), &mut io::sink()).map_err(err)?;
            h.finish().1
        } else {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let mut h = HashWriter::new(ParallelGzEncoder::new(&mut w, GZIP_LEVEL, threads));
            io::copy(&mut f, &mut h).map_err(err)?;
            let (gz, diff_id, _) = h.finish();
            gz.finish().map_err(err)?;
            diff_id
        };
        let (digest, size) = w.commit()?;
        Ok(LayerInfo {
            digest,
            diff_id,
            size,
            media_type: MediaType::ImageLayerGzip,
        })
    }
}

fn header(kind: tar::EntryType, size: u64, mode: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h
}

/// A temp file in the directory of `out`, so the final rename(2) stays on one filesystem.
fn temp_beside(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    parent_dir(out).join(format!(".{name}.tmp-{}-{nanos}", std::process::id()))
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Docker's fully qualified form of a name, as containerd stores it.
fn qualified_name(r: &Reference) -> String {
    r.full()
}

/// The tag an image without any name gets: docker would keep it untagged, but an image is
/// kept in our store only through a tag. The id prefix cannot replace a tag the user made.
fn untagged(id: &Digest) -> Reference {
    Reference::parse(&format!("loaded/{}:latest", &id.digest()[..12])).expect("a valid reference")
}

/// The tag for a manifest of an OCI index, from the first of:
/// 1. `org.opencontainers.image.ref.name` when it is a full reference (`name:tag`, or a
///    name with a `/`): our own saves, `skopeo copy … oci:DIR:name:tag`;
/// 2. `io.containerd.image.name` (Docker >= 25, containerd), in its familiar form;
/// 3. a ref.name that is only a tag (`oci:DIR:tag` of skopeo and umoci): the name is the
///    archive's file or directory name without `.tar`/`.tar.gz`/`.tgz` (the path is what
///    names such images, as podman names `oci:PATH` images after PATH);
/// 4. `loaded/<first 12 hex of the image id>:<tag or latest>`.
fn oci_name(src: &Source, desc: &Descriptor, id: &Digest) -> Result<Reference> {
    let ann = desc.annotations().clone().unwrap_or_default();
    let ref_name = ann
        .get(REF_NAME)
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    if let Some(n) = ref_name {
        let last = n.rsplit('/').next().unwrap_or(n);
        if last.contains(':') || n.contains('/') {
            return Reference::parse(n)
                .map_err(|e| src.bad(format!("index.json: {REF_NAME}: {e}")));
        }
    }
    if let Some(n) = ann.get(CONTAINERD_NAME) {
        return Reference::parse(n)
            .map_err(|e| src.bad(format!("index.json: {CONTAINERD_NAME}: {e}")));
    }
    let Some(tag) = ref_name else {
        return Ok(untagged(id));
    };
    let bad_tag = |e| src.bad(format!("index.json: {REF_NAME}: {e}"));
    match archive_stem(&src.input) {
        Some(stem) => Reference::parse(&format!("{stem}:{tag}")).map_err(bad_tag),
        None => Reference::parse(&format!("loaded/{}:{tag}", &id.digest()[..12])).map_err(bad_tag),
    }
}

/// The file or directory name of an archive as a repository name, when it makes one.
fn archive_stem(input: &Path) -> Option<String> {
    let abs = fs::canonicalize(input).ok()?;
    let name = abs.file_name()?.to_string_lossy().to_lowercase();
    let stem = [".tar.gz", ".tgz", ".tar"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(&name);
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    Reference::parse(cleaned).ok().map(|r| r.name().to_string())
}

fn is_manifest(t: &str) -> bool {
    t == MediaType::ImageManifest.as_ref() || t == DOCKER_MANIFEST_V2
}

fn is_index(t: &str) -> bool {
    t == MediaType::ImageIndex.as_ref() || t == DOCKER_MANIFEST_LIST
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn compression_name(magic: &[u8]) -> Option<&'static str> {
    if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if magic.starts_with(b"BZh") {
        Some("bzip2")
    } else {
        None
    }
}

/// The sha256 digest of a descriptor, which names its blob in the layout.
fn sha256_of(src: &Source, desc: &Descriptor) -> Result<Digest> {
    digest::parse(desc.digest().as_ref()).ok_or_else(|| {
        src.bad(format!(
            "unsupported digest {} (only sha256 is supported)",
            desc.digest()
        ))
    })
}

fn blob_member(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.digest())
}

fn check_blob(src: &Source, desc: &Descriptor, got: &Digest, size: u64) -> Result<()> {
    if got != desc.digest() {
        return Err(Error::DigestMismatch {
            what: "blob",
            digest: desc.digest().to_string(),
            actual: got.to_string(),
        });
    }
    if size != desc.size() {
        return Err(src.bad(format!(
            "blob {}: {size} bytes, its descriptor says {}",
            desc.digest(),
            desc.size()
        )));
    }
    Ok(())
}

fn read_limited(f: File, name: &str, src: &Source) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    f.take(MAX_JSON + 1)
        .read_to_end(&mut v)
        .map_err(|e| src.read_error(name, e, src.input.as_path()))?;
    if v.len() as u64 > MAX_JSON {
        return Err(src.bad(format!("{name}: larger than {} MiB", MAX_JSON >> 20)));
    }
    Ok(v)
}

/// The files of an archive: a staging directory holding the regular files of a tar, with
/// the tar's links kept as a table (never created, never followed on disk), or the user's
/// own layout directory.
struct Source {
    input: PathBuf,
    dir: PathBuf,
    links: Option<HashMap<PathBuf, PathBuf>>,
}

impl Source {
    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::file(&self.input, reason)
    }

    fn read_error(&self, name: &str, e: io::Error, tmp: &Path) -> Error {
        if e.kind() == io::ErrorKind::InvalidData || e.kind() == io::ErrorKind::UnexpectedEof {
            return self.bad(format!("{name}: {}", crate::error::io_message(&e)));
        }
        match e.raw_os_error() {
            // Only a write can fail for lack of space; say where.
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => Error::Io {
                op: "write",
                path: tmp.to_path_buf(),
                source: e,
            },
            _ => self.bad(format!("{name}: {}", crate::error::io_message(&e))),
        }
    }

    /// The member a name refers to, after the archive's own links.
    fn resolve(&self, name: &str) -> Result<PathBuf> {
        let mut p = clean(name.as_bytes()).map_err(|r| self.bad(format!("{name:?}: {r}")))?;
        if let Some(links) = &self.links {
            for _ in 0..MAX_LINKS {
                match links.get(&p) {
                    Some(t) => p = t.clone(),
                    None => return Ok(p),
                }
            }
            return Err(self.bad(format!("{name}: too many levels of links")));
        }
        Ok(p)
    }

    fn try_open(&self, name: &str) -> Result<Option<File>> {
        let rel = self.resolve(name)?;
        let path = self.dir.join(&rel);
        let path = if self.links.is_some() {
            path
        } else {
            // The user's directory may hold symlinks; they must stay inside it.
            match fs::canonicalize(&path) {
                Ok(p) if p.starts_with(&self.dir) => p,
                Ok(_) => return Err(self.bad(format!("{name}: points outside the layout"))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e).ctx("resolve", &path),
            }
        };
        match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => {
                if !f.metadata().ctx("stat", &path)?.is_file() {
                    return Err(self.bad(format!("{name}: not a regular file")));
                }
                Ok(Some(f))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx("open", &path),
        }
    }

    fn open(&self, name: &str) -> Result<File> {
        self.try_open(name)?
            .ok_or_else(|| self.bad(format!("{name}: missing from the archive")))
    }

    /// A whole (small) blob of the layout, checked against its descriptor.
    fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let d = sha256_of(self, desc)?;
        let name = blob_member(&d);
        let bytes = read_limited(self.open(&name)?, &name, self)?;
        check_blob(self, desc, &digest::sha256(&bytes), bytes.len() as u64)?;
        Ok(bytes)
    }
}

/// Removes the staging directory however `load` ends.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = store::remove_all(&self.0);
    }
}

/// A relative name made of normal components only; `.` and empty components dropped.
fn clean(name: &[u8]) -> std::result::Result<PathBuf, &'static str> {
    if name.first() == Some(&b'/') {
        return Err("absolute path");
    }
    let mut p = PathBuf::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path with .. component"),
            c => p.push(std::ffi::OsStr::from_bytes(c)),
        }
    }
    Ok(p)
}

/// Join a symlink's target to the directory holding it, lexically; it must stay inside.
fn link_target(link: &Path, target: &[u8]) -> std::result::Result<PathBuf, &'static str> {
    if target.first() == Some(&b'/') {
        return Err("link to an absolute path");
    }
    let mut p = link.parent().map(Path::to_path_buf).unwrap_or_default();
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if !p.pop() {
                    return Err("link leaves the archive");
                }
            }
            c => p.push(std::ffi::OsStr::from_bytes(c)),
        }
    }
    debug_assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
    Ok(p)
}

/// Extract the regular files of the tar (plain or gzip) at `input` into `dir`; returns
/// its symlinks and hard links as a table of member -> target.
fn extract(input: &Path, dir: &Path) -> Result<HashMap<PathBuf, PathBuf>> {
    let f = File::open(input).ctx("open", input)?;
    let mut r = BufReader::with_capacity(256 << 10, f);
    let gzip = r.fill_buf().ctx("read", input)?.starts_with(&[0x1f, 0x8b]);
    let r: Box<dyn Read> = if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(r))
    } else {
        Box::new(r)
    };
    let mut archive = tar::Archive::new(r);
    let bad = |reason: String| Error::file(input, reason);
    let tar_error = |e: io::Error, seen: bool| {
        if seen {
            bad(format!(
                "corrupt or truncated archive: {}",
                crate::error::io_message(&e)
            ))
        } else {
            bad(format!(
                "not an image archive: not a tar file ({})",
                crate::error::io_message(&e)
            ))
        }
    };
    let mut links = HashMap::new();
    let mut seen = false;
    let entries = archive.entries().map_err(|e| tar_error(e, false))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| tar_error(e, seen))?;
        seen = true;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let refuse = |why: &str| bad(format!("entry {shown:?}: {why}"));
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        let name = clean(&raw).map_err(refuse)?;
        match kind {
            tar::EntryType::Directory => {
                if !name.as_os_str().is_empty() {
                    mkdir_p(&dir.join(&name))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if name.as_os_str().is_empty() {
                    return Err(refuse("a file without a name"));
                }
                let path = dir.join(&name);
                mkdir_p(&parent_dir(&path))?;
                links.remove(&name);
                let mut out = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .ctx("create", &path)?;
                io::copy(&mut entry, &mut out).map_err(|e| match e.raw_os_error() {
                    Some(_) => Error::Io {
                        op: "write",
                        path: path.clone(),
                        source: e,
                    },
                    None => tar_error(e, true),
                })?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                // Skopeo and old `docker save` write `<id>/layer.tar` as links to a layer
                // stored once; remember them so manifest.json can name them.
                let resolved = if kind == tar::EntryType::Symlink {
                    link_target(&name, &target)
                } else {
                    clean(&target)
                };
                match resolved {
                    Ok(t) => {
                        links.insert(name, t);
                    }
                    // A link we cannot follow safely is an error only when something
                    // names it: then the member is reported missing.
                    Err(_) => {
                        links.remove(&name);
                    }
                }
            }
            other => {
                return Err(refuse(&format!(
                    "{} entries are not allowed in an image archive",
                    kind_name(other)
                )))
            }
        }
    }
    Ok(links)
}

fn kind_name(k: tar::EntryType) -> &'static str {
    match k {
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "unknown type of",
    }
}

fn mkdir_p(p: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .ctx("create directory", p)
}

/// Copies what it reads into `w`: a gzip layer goes into its blob as it is while the
/// decompressor reading through it computes the diff_id.
struct Tee<R, W> {
    r: R,
    w: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        self.w.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Marks a blob whose length differs from its descriptor's size.
#[derive(Debug)]
struct SizeMismatch(String);

impl std::fmt::Display for SizeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SizeMismatch {}

/// Yields exactly `left` bytes of a verified blob and then checks it is at its end, which
/// makes the reader verify the digest: a tar header's size must match its data, and a
/// corrupt blob must not go out.
struct ExactReader {
    inner: store::VerifiedReader,
    left: u64,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    SizeMismatch("longer than the size in its descriptor".into()),
                )),
            };
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                SizeMismatch("shorter than the size in its descriptor".into()),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::new_config;

    fn store() -> (tempfile::TempDir, Store) {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path().join("store")).unwrap();
        (t, s)
    }

    fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644, 0);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut v)
            .unwrap();
        v
    }

    /// Tag `name` to an image of gzip layers made from `tars`.
    fn make_image(s: &Store, name: &str, tars: &[Vec<u8>]) -> Descriptor {
        let layers: Vec<LayerInfo> = tars
            .iter()
            .map(|t| {
                let (digest, size) = s.put_blob(&gz(t)).unwrap();
                LayerInfo {
                    digest,
                    diff_id: digest::sha256(t),
                    size,
                    media_type: MediaType::ImageLayerGzip,
                }
            })
            .collect();
        let desc = s.write_image(&new_config(), &layers).unwrap();
        s.set_tag(&Reference::parse(name).unwrap(), &desc).unwrap();
        desc
    }

    struct Member {
        name: String,
        kind: tar::EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        data: Vec<u8>,
    }

    fn members(bytes: &[u8]) -> Vec<Member> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                let h = e.header();
                Member {
                    name: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                    kind: h.entry_type(),
                    mode: h.mode().unwrap(),
                    uid: h.uid().unwrap(),
                    gid: h.gid().unwrap(),
                    mtime: h.mtime().unwrap(),
                    data,
                }
            })
            .collect()
    }

    fn member<'m>(ms: &'m [Member], name: &str) -> &'m Member {
        ms.iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name} in the archive"))
    }

    fn json_of(m: &Member) -> serde_json::Value {
        serde_json::from_slice(&m.data).unwrap()
    }

    /// Staging directories of `load` still present in the store's session directory.
    fn leftover_staging(s: &Store) -> Vec<String> {
        let session = s.temp_path("probe").parent().unwrap().to_path_buf();
        fs::read_dir(session)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("load-"))
            .collect()
    }

    fn tag_names(s: &Store) -> Vec<String> {
        s.tags()
            .unwrap()
            .iter()
            .map(|(r, _)| r.to_string())
            .collect()
    }

    fn refs(v: &[&str]) -> Vec<Reference> {
        v.iter().map(|s| Reference::parse(s).unwrap()).collect()
    }

    /// A tar entry written with a name the tar crate's builder would refuse.
    fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: tar::EntryType, data: &[u8]) {
        let mut h = header(kind, data.len() as u64, 0o644, 0);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    #[test]
    fn save_writes_an_oci_layout_and_a_docker_manifest_deterministically() {
        let (t, s) = store();
        let desc = make_image(
            &s,
            "app:1.0",
            &[layer_tar(&[("a", b"one")]), layer_tar(&[("b", b"two")])],
        );
        let img = s.image_by_manifest(&desc).unwrap();
        let out = t.path().join("app.tar");
        s.save(&Reference::parse("app:1.0").unwrap(), &out).unwrap();
        let bytes = fs::read(&out).unwrap();

        let ms = members(&bytes);
        let mut blob_names: Vec<String> = [desc.digest(), img.id()]
            .into_iter()
            .chain(img.manifest.layers().iter().map(|l| l.digest()))
            .map(|d| format!("blobs/sha256/{}", d.digest()))
            .collect();
        blob_names.sort();
        let mut want = vec!["blobs/".to_string(), "blobs/sha256/".to_string()];
        want.extend(blob_names.iter().cloned());
        want.extend(["index.json", "manifest.json", "oci-layout"].map(String::from));
        assert_eq!(ms.iter().map(|m| m.name.clone()).collect::<Vec<_>>(), want);
        for m in &ms {
            assert_eq!((m.uid, m.gid, m.mtime), (0, 0, 0), "{}", m.name);
            let mode = if m.kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            };
            assert_eq!(m.mode, mode, "{}", m.name);
        }
        for name in &blob_names {
            let d = digest::parse(&format!("sha256:{}", &name[13..])).unwrap();
            assert_eq!(member(&ms, name).data, s.read_blob(&d).unwrap(), "{name}");
        }

        let index = json_of(member(&ms, "index.json"));
        let m = &index["manifests"];
        assert_eq!(m.as_array().unwrap().len(), 1);
        assert_eq!(m[0]["digest"], desc.digest().to_string());
        assert_eq!(m[0]["size"], desc.size());
        assert_eq!(m[0]["annotations"][REF_NAME], "app:1.0");
        assert_eq!(
            m[0]["annotations"][CONTAINERD_NAME],
            "docker.io/library/app:1.0"
        );
        let docker = json_of(member(&ms, "manifest.json"));
        assert_eq!(
            docker,
            serde_json::json!([{
                "Config": format!("blobs/sha256/{}", img.id().digest()),
                "RepoTags": ["app:1.0"],
                "Layers": img.manifest.layers().iter()
                    .map(|l| format!("blobs/sha256/{}", l.digest().digest()))
                    .collect::<Vec<_>>(),
            }])
        );
        assert_eq!(
            json_of(member(&ms, "oci-layout"))["imageLayoutVersion"],
            "1.0.0"
        );

        let again = t.path().join("again.tar");
        s.save(&Reference::parse("app:1.0").unwrap(), &again)
            .unwrap();
        assert_eq!(
            fs::read(&again).unwrap(),
            bytes,
            "save is not deterministic"
        );
        // Only the two archives: no temp file left beside them.
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 3);
    }

    #[test]
    fn save_stamps_the_given_mtime_and_qualifies_names_like_docker() {
        let (t, s) = store();
        make_image(
            &s,
            "localhost:5000/team/app:v2",
            &[layer_tar(&[("a", b"1")])],
        );
        make_image(&s, "team/app:v2", &[layer_tar(&[("a", b"1")])]);
        let out = t.path().join("x.tar");
        let r = Reference::parse("localhost:5000/team/app:v2").unwrap();
        s.save_at(&r, &out, 1_700_000_000).unwrap();
        let ms = members(&fs::read(&out).unwrap());
        assert!(ms.iter().all(|m| m.mtime == 1_700_000_000));
        let index = json_of(member(&ms, "index.json"));
        assert_eq!(
            index["manifests"][0]["annotations"][CONTAINERD_NAME],
            "localhost:5000/team/app:v2"
        );
        s.save(&Reference::parse("team/app:v2").unwrap(), &out)
            .unwrap();
        let index = json_of(member(&members(&fs::read(&out).unwrap()), "index.json"));
        assert_eq!(
            index["manifests"][0]["annotations"][CONTAINERD_NAME],
            "docker.io/team/app:v2"
        );
    }

    #[test]
    fn save_of_a_corrupt_blob_fails_and_leaves_no_file() {
        let (t, s) = store();
        let desc = make_image(&s, "app:1", &[layer_tar(&[("a", &[7u8; 5000])])]);
        let layer = s.image_by_manifest(&desc).unwrap().manifest.layers()[0].clone();
        let p = s.blob_path(layer.digest());
        let mut bytes = fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        fs::write(&p, &bytes).unwrap();

        let out = t.path().join("out.tar");
        let e = s
            .save(&Reference::parse("app:1").unwrap(), &out)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("digest mismatch") && e.contains(&layer.digest().to_string()),
            "{e}"
        );
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            1,
            "only the store should be left beside the archive"
        );

        let e = s
            .save(&Reference::parse("nope:1").unwrap(), &out)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "no such image: nope:1");
    }

    #[test]
    fn save_then_load_round_trips_into_another_store() {
        let (t, a) = store();
        let desc = make_image(
            &a,
            "app:1.0",
            &[layer_tar(&[("a", b"one")]), layer_tar(&[("b", b"two")])],
        );
        let out = t.path().join("app.tar");
        a.save(&Reference::parse("app:1.0").unwrap(), &out).unwrap();

        let (_t2, b) = store();
        assert_eq!(b.load(&out).unwrap(), refs(&["app:1.0"]));
        let got = b.lookup(&Reference::parse("app:1.0").unwrap()).unwrap();
        assert_eq!(got.digest(), desc.digest());
        assert_eq!(got.media_type(), &MediaType::ImageManifest);
        let (ia, ib) = (
            a.image_by_manifest(&desc).unwrap(),
            b.image_by_manifest(&got).unwrap(),
        );
        assert_eq!(ia.layers().unwrap(), ib.layers().unwrap());
        for l in ib.layers().unwrap() {
            assert_eq!(
                b.read_blob(&l.digest).unwrap(),
                a.read_blob(&l.digest).unwrap()
            );
        }
        assert!(leftover_staging(&b).is_empty());

        // Loading again changes nothing; a gzip-compressed archive (`docker save | gzip`)
        // loads the same.
        let gzipped = t.path().join("app.tar.gz");
        fs::write(&gzipped, gz(&fs::read(&out).unwrap())).unwrap();
        assert_eq!(b.load(&gzipped).unwrap(), refs(&["app:1.0"]));
        assert_eq!(b.tags().unwrap().len(), 1);
        assert_eq!(
            b.lookup(&Reference::parse("app:1.0").unwrap())
                .unwrap()
                .digest(),
            desc.digest()
        );
    }

    /// Unpack a saved archive into `dir` as an OCI layout directory, with index.json
    /// replaced by `index`.
    fn layout_dir(saved: &Path, dir: &Path, index: serde_json::Value) {
        tar::Archive::new(File::open(saved).unwrap())
            .unpack(dir)
            .unwrap();
        fs::remove_file(dir.join("manifest.json")).unwrap();
        fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }

    #[test]
    fn load_names_images_from_ref_name_containerd_name_directory_or_id() {
        let (t, a) = store();
        let desc = make_image(&a, "app:1", &[layer_tar(&[("a", b"x")])]);
        let id = a.image_by_manifest(&desc).unwrap().id().clone();
        let saved = t.path().join("s.tar");
        a.save(&Reference::parse("app:1").unwrap(), &saved).unwrap();

        let d = |ann: serde_json::Value| {
            serde_json::json!({"mediaType": MediaType::ImageManifest.to_string(),
                "digest": desc.digest().to_string(), "size": desc.size(), "annotations": ann})
        };
        let dir = t.path().join("My Image_v2.tar");
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [
            d(serde_json::json!({REF_NAME: "registry.example.com/x/y:3"})),
            // Docker >= 25: the tag alone in ref.name, the full name beside it.
            d(serde_json::json!({REF_NAME: "9", CONTAINERD_NAME: "docker.io/library/foo:9"})),
            d(serde_json::json!({REF_NAME: "docker.io/library/bar:8"})),
            // skopeo/umoci `oci:DIR:tag`.
            d(serde_json::json!({REF_NAME: "v1.2"})),
            d(serde_json::json!({})),
        ]});
        layout_dir(&saved, &dir, index);

        let (_t2, b) = store();
        let want = [
            "registry.example.com/x/y:3".to_string(),
            "foo:9".into(),
            "bar:8".into(),
            "my-image_v2:v1.2".into(),
            format!("loaded/{}:latest", &id.digest()[..12]),
        ];
        let got: Vec<String> = b
            .load(&dir)
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(got, want);
        for (r, d) in b.tags().unwrap() {
            assert_eq!(d.digest(), desc.digest(), "{r}");
        }
        // The layout directory is the user's: read, never changed.
        assert!(dir.join("index.json").is_file());
    }

    #[test]
    fn load_follows_a_nested_index_to_this_platform() {
        let (t, a) = store();
        let desc = make_image(&a, "app:1", &[layer_tar(&[("a", b"x")])]);
        let saved = t.path().join("s.tar");
        a.save(&Reference::parse("app:1").unwrap(), &saved).unwrap();

        // The other platform's manifest is not in the layout at all: it must not be read.
        let nested = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MediaType::ImageIndex.to_string(),
            "manifests": [
                {"mediaType": MediaType::ImageManifest.to_string(),
                 "digest": digest::sha256(b"elsewhere").to_string(), "size": 9,
                 "platform": {"os": "linux", "architecture": "s390x"}},
                {"mediaType": MediaType::ImageManifest.to_string(),
                 "digest": desc.digest().to_string(), "size": desc.size(),
                 "platform": {"os": "linux", "architecture": Arch::default().to_string()}},
            ]
        }))
        .unwrap();
        let nd = digest::sha256(&nested);
        let dir = t.path().join("multi");
        layout_dir(
            &saved,
            &dir,
            serde_json::json!({"schemaVersion": 2, "manifests": [
                {"mediaType": MediaType::ImageIndex.to_string(), "digest": nd.to_string(),
                 "size": nested.len(), "annotations": {REF_NAME: "multi:2"}}]}),
        );
        fs::write(dir.join("blobs/sha256").join(nd.digest()), &nested).unwrap();

        let (_t2, b) = store();
        assert_eq!(b.load(&dir).unwrap(), refs(&["multi:2"]));
        let got = b.lookup(&Reference::parse("multi:2").unwrap()).unwrap();
        assert_eq!(got.digest(), desc.digest());
        assert!(
            !b.has_blob(&nd),
            "the index itself is not kept: the tag names the manifest"
        );
    }

    #[test]
    fn load_refuses_a_blob_that_does_not_match_its_digest_and_tags_nothing() {
        let (t, a) = store();
        let desc = make_image(&a, "app:1", &[layer_tar(&[("a", b"x")])]);
        let layer = a.image_by_manifest(&desc).unwrap().manifest.layers()[0].clone();
        let saved = t.path().join("s.tar");
        a.save(&Reference::parse("app:1").unwrap(), &saved).unwrap();
        let dir = t.path().join("bad");
        let index = json_of(member(&members(&fs::read(&saved).unwrap()), "index.json"));
        layout_dir(&saved, &dir, index);
        let p = dir.join("blobs/sha256").join(layer.digest().digest());
        fs::write(&p, gz(&layer_tar(&[("a", b"evil")]))).unwrap();

        let (_t2, b) = store();
        let e = b.load(&dir).unwrap_err();
        assert!(
            matches!(&e, Error::DigestMismatch { digest, .. } if *digest == layer.digest().to_string()),
            "{e}"
        );
        assert!(b.tags().unwrap().is_empty());
        assert!(
            !b.has_blob(&desc.digest().clone()),
            "no manifest for an incomplete image"
        );
    }

    /// A docker-archive as `docker save` before 25 and skopeo write it.
    fn docker_archive(
        config: &[u8],
        layers: &[(&str, Vec<u8>)],
        manifest: serde_json::Value,
    ) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let cname = format!("{}.json", digest::sha256(config).digest());
        let mut h = header(tar::EntryType::Regular, config.len() as u64, 0o644, 0);
        b.append_data(&mut h, &cname, config).unwrap();
        for (name, data) in layers {
            if let Some(target) = data.strip_prefix(b"->") {
                let mut h = header(tar::EntryType::Symlink, 0, 0o777, 0);
                b.append_link(&mut h, name, std::str::from_utf8(target).unwrap())
                    .unwrap();
            } else {
                let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644, 0);
                b.append_data(&mut h, name, &data[..]).unwrap();
            }
        }
        let m = serde_json::to_vec(&manifest).unwrap();
        let mut h = header(tar::EntryType::Regular, m.len() as u64, 0o644, 0);
        b.append_data(&mut h, "manifest.json", &m[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn docker_config(diff_ids: &[&[u8]]) -> Vec<u8> {
        let ids: Vec<String> = diff_ids
            .iter()
            .map(|t| digest::sha256(t).to_string())
            .collect();
        // Fields docker writes that we do not model must survive byte for byte.
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "docker_version": "24.0.7",
            "container_config": {"Hostname": "x"},
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": ids},
        }))
        .unwrap()
    }

    #[test]
    fn load_docker_archive_compresses_plain_layers_and_keeps_gzip_ones() {
        let (t, s) = store();
        let plain = layer_tar(&[("etc/os-release", b"ID=test\n")]);
        let other = layer_tar(&[("bin/sh", &[0x7f; 3000])]);
        let other_gz = gz(&other);
        let config = docker_config(&[&plain, &other, &plain]);
        let cfg_name = format!("{}.json", digest::sha256(&config).digest());
        let archive = docker_archive(
            &config,
            &[
                ("aaa/layer.tar", plain.clone()),
                ("bbb/layer.tar", other_gz.clone()),
                // Docker < 25 stores a repeated layer once and links to it.
                ("ccc/layer.tar", b"->../aaa/layer.tar".to_vec()),
            ],
            serde_json::json!([{"Config": cfg_name,
                "RepoTags": ["docker.io/library/foo:1", "localhost/bar:2"],
                "Layers": ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"]}]),
        );
        let path = t.path().join("d.tar");
        fs::write(&path, &archive).unwrap();

        assert_eq!(s.load(&path).unwrap(), refs(&["foo:1", "localhost/bar:2"]));
        let img = s.image(&Reference::parse("foo:1").unwrap()).unwrap();
        assert_eq!(img.id(), &digest::sha256(&config));
        assert_eq!(img.config_raw, config);
        let layers = img.layers().unwrap();
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        assert_eq!(
            diff_ids,
            [&plain, &other, &plain].map(|t| digest::sha256(t))
        );
        assert_eq!(
            layers[1].digest,
            digest::sha256(&other_gz),
            "a gzip layer is kept as it is"
        );
        assert_eq!(gunzip(&s.read_blob(&layers[0].digest).unwrap()), plain);
        assert_eq!(layers[0], layers[2]);
        assert!(layers
            .iter()
            .all(|l| l.media_type == MediaType::ImageLayerGzip));
        assert_eq!(
            s.lookup(&Reference::parse("localhost/bar:2").unwrap())
                .unwrap()
                .digest(),
            img.manifest_desc.digest()
        );
        assert!(leftover_staging(&s).is_empty());

        // The layers are compressed deterministically: a second load writes the same manifest.
        let (_t2, s2) = store();
        s2.load(&path).unwrap();
        let again = s2.lookup(&Reference::parse("foo:1").unwrap()).unwrap();
        assert_eq!(again.digest(), img.manifest_desc.digest());
    }

    #[test]
    fn load_docker_archive_with_a_wrong_diff_id_fails_and_tags_nothing() {
        let (t, s) = store();
        let plain = layer_tar(&[("a", b"1")]);
        let config = docker_config(&[b"something else"]);
        let archive = docker_archive(
            &config,
            &[("aaa/layer.tar", plain)],
            serde_json::json!([{"Config": format!("{}.json", digest::sha256(&config).digest()),
                "RepoTags": ["foo:1"], "Layers": ["aaa/layer.tar"]}]),
        );
        let path = t.path().join("d.tar");
        fs::write(&path, &archive).unwrap();
        let e = s.load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: layer aaa/layer.tar:", path.display())),
            "{e}"
        );
        assert!(
            e.contains(&digest::sha256(b"something else").to_string()),
            "{e}"
        );
        assert!(s.tags().unwrap().is_empty());
        assert!(leftover_staging(&s).is_empty());
    }

    #[test]
    fn load_untagged_docker_archive_tags_it_by_its_id() {
        let (t, s) = store();
        let plain = layer_tar(&[("a", b"1")]);
        let config = docker_config(&[&plain]);
        let id = digest::sha256(&config);
        let archive = docker_archive(
            &config,
            &[("aaa/layer.tar", plain)],
            serde_json::json!([{"Config": format!("{}.json", id.digest()),
                "RepoTags": null, "Layers": ["aaa/layer.tar"]}]),
        );
        let path = t.path().join("d.tar");
        fs::write(&path, &archive).unwrap();
        let want = format!("loaded/{}:latest", &id.digest()[..12]);
        assert_eq!(s.load(&path).unwrap(), refs(&[&want]));
        assert_eq!(tag_names(&s), [want]);
    }

    #[test]
    fn load_refuses_entries_that_are_not_plain_files_inside_the_archive() {
        let (t, s) = store();
        let cases: [(&[u8], tar::EntryType, &str); 4] = [
            (
                b"../evil",
                tar::EntryType::Regular,
                "path with .. component",
            ),
            (
                b"blobs/../../evil",
                tar::EntryType::Regular,
                "path with .. component",
            ),
            (b"/etc/evil", tar::EntryType::Regular, "absolute path"),
            (
                b"dev/null",
                tar::EntryType::Char,
                "character device entries are not allowed",
            ),
        ];
        for (name, kind, why) in cases {
            let mut b = tar::Builder::new(Vec::new());
            raw_entry(&mut b, b"manifest.json", tar::EntryType::Regular, b"[]");
            raw_entry(
                &mut b,
                name,
                kind,
                if kind == tar::EntryType::Regular {
                    b"x"
                } else {
                    b""
                },
            );
            let path = t.path().join("hostile.tar");
            fs::write(&path, b.into_inner().unwrap()).unwrap();
            let e = s.load(&path).unwrap_err().to_string();
            let shown = String::from_utf8_lossy(name);
            assert!(
                e.starts_with(&format!("{}: entry {shown:?}: ", path.display())),
                "{e}"
            );
            assert!(e.contains(why), "{e}");
            assert!(
                leftover_staging(&s).is_empty(),
                "staging left after {shown}"
            );
        }
        assert!(!t.path().join("evil").exists() && !Path::new("/etc/evil").exists());
        assert!(s.tags().unwrap().is_empty());
    }

    #[test]
    fn load_links_are_never_followed_out_of_the_archive() {
        let (t, s) = store();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Symlink, 0, 0o777, 0);
        b.append_link(&mut h, "manifest.json", "../../../../etc/passwd")
            .unwrap();
        let path = t.path().join("link.tar");
        fs::write(&path, b.into_inner().unwrap()).unwrap();
        let e = s.load(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: not an image archive: no index.json or manifest.json",
                path.display()
            )
        );
    }

    #[test]
    fn load_says_clearly_what_is_wrong_with_the_input() {
        let (t, s) = store();
        let missing = t.path().join("missing.tar");
        assert_eq!(
            s.load(&missing).unwrap_err().to_string(),
            format!("open {}: no such file or directory", missing.display())
        );

        let junk = t.path().join("junk.tar");
        fs::write(&junk, vec![b'j'; 2000]).unwrap();
        let e = s.load(&junk).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}: not an image archive: not a tar file",
                junk.display()
            )),
            "{e}"
        );

        let other = t.path().join("other.tar");
        fs::write(&other, layer_tar(&[("hello.txt", b"hi")])).unwrap();
        assert_eq!(
            s.load(&other).unwrap_err().to_string(),
            format!(
                "{}: not an image archive: no index.json or manifest.json",
                other.display()
            )
        );
        let empty_dir = t.path().join("empty");
        fs::create_dir(&empty_dir).unwrap();
        assert_eq!(
            s.load(&empty_dir).unwrap_err().to_string(),
            format!(
                "{}: not an image archive: no index.json or manifest.json",
                empty_dir.display()
            )
        );

        let truncated = t.path().join("truncated.tar");
        let (_t2, a) = store();
        make_image(&a, "app:1", &[layer_tar(&[("a", &[1u8; 100_000])])]);
        let full = t.path().join("full.tar");
        a.save(&Reference::parse("app:1").unwrap(), &full).unwrap();
        let bytes = fs::read(&full).unwrap();
        fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let e = s.load(&truncated).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", truncated.display())), "{e}");
        assert!(s.tags().unwrap().is_empty());
        assert!(leftover_staging(&s).is_empty());
    }
}
