//! Image-management subcommands of `mbuild`: import, images, inspect, history, layers, tag,
//! rmi, prune, fsck, save, load. Each takes an open store and writes its report to `out`.

use crate::{Error, Result};
use layers::image::{self, Image, LayerInfo};
use layers::oci_spec::image::HistoryBuilder;
use layers::pack::PackOptions;
use layers::units::{human_duration_since, human_size};
use layers::unpack::UnpackOptions;
use layers::{IoContext, Reference, Store};
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::process::ExitCode;

type Out<'a> = dyn Write + 'a;

fn w(out: &mut Out<'_>, s: std::fmt::Arguments<'_>) -> Result<()> {
    out.write_fmt(s).map_err(Error::stdout)
}

macro_rules! outln {
    ($out:expr, $($t:tt)*) => { w($out, format_args!("{}\n", format_args!($($t)*))) };
}

fn reference(s: &str) -> Result<Reference> {
    Ok(Reference::parse(s)?)
}

fn short(d: &layers::Digest, no_trunc: bool) -> String {
    if no_trunc {
        d.to_string()
    } else {
        d.digest()[..12].to_string()
    }
}

/// `mbuild import SRC -t name:tag`: a rootfs directory or tarball becomes a one-layer image.
pub fn import(store: &Store, src: &Path, tag: &str, out: &mut Out<'_>) -> Result<ExitCode> {
    let r = reference(tag)?;
    let meta = fs::metadata(src).ctx("import: read", src)?;
    let epoch = image::source_date_epoch();
    let (info, stats) = if meta.is_dir() {
        store.pack_layer(
            src,
            &PackOptions {
                source_date_epoch: epoch,
                overlay: false,
            },
        )?
    } else {
        // A tarball goes through the same hostile-input extraction as any layer, then is
        // packed again: the stored layer is canonical and deterministic, and a bad entry is
        // refused now rather than at the first run.
        let staging = store.temp_dir("import")?;
        let res = (|| {
            layers::unpack::unpack(open_maybe_gzip(src)?, &staging, &UnpackOptions::default())
                .map_err(|source| Error::Import {
                    src: src.display().to_string(),
                    source,
                })?;
            Ok::<_, Error>(store.pack_layer(
                &staging,
                &PackOptions {
                    source_date_epoch: epoch,
                    overlay: true,
                },
            )?)
        })();
        let _ = layers::store::remove_all(&staging);
        res?
    };
    let created = image::rfc3339(epoch.unwrap_or(stats.newest_mtime));
    let mut config = image::new_config();
    config.set_created(Some(created.clone()));
    let history = HistoryBuilder::default()
        .created(created)
        .created_by("mbuild import")
        .build()
        .map_err(|e| Error::Failed(e.to_string()))?;
    config.set_history(Some(vec![history]));
    let desc = store.write_image(&config, &[info])?;
    store.set_tag(&r, &desc)?;
    let img = store.image_by_manifest(&desc)?;
    outln!(out, "{}", img.id())?;
    Ok(ExitCode::SUCCESS)
}

/// Open a plain or gzip-compressed file, telling them apart by the gzip magic number.
fn open_maybe_gzip(p: &Path) -> Result<Box<dyn Read>> {
    let mut f = BufReader::new(File::open(p).ctx("import: open", p)?);
    let mut magic = [0u8; 2];
    let n = read_prefix(&mut f, &mut magic).ctx("import: read", p)?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let r = head.chain(f);
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else {
        Box::new(r)
    })
}

fn read_prefix(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Tags pointing at the same manifest as `img`.
fn repo_tags(store: &Store, img: &Image) -> Result<Vec<String>> {
    Ok(store
        .tags()?
        .into_iter()
        .filter(|(_, d)| d.digest() == img.manifest_desc.digest())
        .map(|(r, _)| r.to_string())
        .collect())
}

pub fn images(store: &Store, quiet: bool, no_trunc: bool, out: &mut Out<'_>) -> Result<ExitCode> {
    let entries = store.entries()?;
    if !quiet {
        outln!(
            out,
            "{:<30} {:<15} {:<14} {:<23} {}",
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE"
        )?;
    }
    for (n, desc) in entries {
        match store.image_by_manifest(&desc) {
            Ok(img) => {
                let id = short(img.id(), no_trunc);
                if quiet {
                    outln!(out, "{id}")?;
                    continue;
                }
                let created = img
                    .config
                    .created()
                    .as_deref()
                    .map(human_duration_since)
                    .unwrap_or_default();
                let size: u64 = img.manifest.layers().iter().map(|l| l.size()).sum();
                outln!(
                    out,
                    "{:<30} {:<15} {:<14} {:<23} {}",
                    n.name(),
                    n.tag().unwrap_or("<none>"),
                    id,
                    created,
                    human_size(size)
                )?;
            }
            Err(e) => eprintln!("mbuild: {n}: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(store: &Store, names: &[String], out: &mut Out<'_>) -> Result<ExitCode> {
    let mut v = Vec::new();
    for n in names {
        let img = store.resolve_image(n)?;
        let manifest: serde_json::Value =
            serde_json::from_slice(&store.read_blob(img.manifest_desc.digest())?)
                .map_err(|e| Error::Failed(format!("{n}: manifest: {e}")))?;
        let config: serde_json::Value = serde_json::from_slice(&img.config_raw)
            .map_err(|e| Error::Failed(format!("{n}: config: {e}")))?;
        v.push(serde_json::json!({
            "Id": img.id().to_string(),
            "RepoTags": repo_tags(store, &img)?,
            "Digest": img.manifest_desc.digest().to_string(),
            "Manifest": manifest,
            "Config": config,
        }));
    }
    let s = serde_json::to_string_pretty(&v).map_err(|e| Error::Failed(e.to_string()))?;
    outln!(out, "{s}")?;
    Ok(ExitCode::SUCCESS)
}

/// History entries paired with the layer each non-empty entry produced.
fn history_with_layers(
    img: &Image,
) -> Result<Vec<(layers::oci_spec::image::History, Option<LayerInfo>)>> {
    let mut layers = img.layers()?.into_iter();
    let mut v = Vec::new();
    for h in img.config.history().clone().unwrap_or_default() {
        let l = if h.empty_layer().unwrap_or(false) {
            None
        } else {
            layers.next()
        };
        v.push((h, l));
    }
    // Images from tools that record no history still have layers.
    for l in layers {
        v.push((
            HistoryBuilder::default()
                .build()
                .expect("empty history entry"),
            Some(l),
        ));
    }
    Ok(v)
}

pub fn history(store: &Store, name: &str, no_trunc: bool, out: &mut Out<'_>) -> Result<ExitCode> {
    let img = store.resolve_image(name)?;
    outln!(
        out,
        "{:<14} {:<23} {:<46} {:<10} {}",
        "IMAGE",
        "CREATED",
        "CREATED BY",
        "SIZE",
        "COMMENT"
    )?;
    let entries = history_with_layers(&img)?;
    let n = entries.len();
    for (i, (h, l)) in entries.into_iter().enumerate().rev() {
        let id = if i + 1 == n {
            short(img.id(), no_trunc)
        } else {
            "<missing>".to_string()
        };
        let created = h
            .created()
            .as_deref()
            .map(human_duration_since)
            .unwrap_or_default();
        let mut by = h.created_by().clone().unwrap_or_default();
        if !no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        let size = l.map(|l| human_size(l.size)).unwrap_or_else(|| "0B".into());
        let comment = h.comment().clone().unwrap_or_default();
        outln!(out, "{id:<14} {created:<23} {by:<46} {size:<10} {comment}")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn layers(
    store: &Store,
    name: &str,
    json: bool,
    no_trunc: bool,
    out: &mut Out<'_>,
) -> Result<ExitCode> {
    let img = store.resolve_image(name)?;
    let mut rows = Vec::new();
    for (h, l) in history_with_layers(&img)? {
        let Some(l) = l else { continue };
        let path = store.ensure_layer(&l.descriptor(), &l.diff_id)?;
        let unpacked = layers::gc::tree_size(&path);
        rows.push((
            l,
            h.created_by().clone().unwrap_or_default(),
            unpacked,
            path,
        ));
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(l, by, unpacked, path)| {
                serde_json::json!({
                    "digest": l.digest.to_string(),
                    "diff_id": l.diff_id.to_string(),
                    "media_type": l.media_type.to_string(),
                    "size": l.size,
                    "unpacked_size": unpacked,
                    "created_by": by,
                    "path": path,
                })
            })
            .collect();
        let s = serde_json::to_string_pretty(&v).map_err(|e| Error::Failed(e.to_string()))?;
        outln!(out, "{s}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let dw = if no_trunc { 71 } else { 12 };
    outln!(
        out,
        "{:<3} {:<dw$} {:<dw$} {:>9} {:>9}  {:<40} {}",
        "#",
        "DIGEST",
        "DIFF ID",
        "SIZE",
        "UNPACKED",
        "CREATED BY",
        "PATH"
    )?;
    for (i, (l, by, unpacked, path)) in rows.iter().enumerate() {
        let mut by = by.clone();
        if !no_trunc && by.chars().count() > 40 {
            by = by.chars().take(39).collect::<String>() + "…";
        }
        outln!(
            out,
            "{:<3} {:<dw$} {:<dw$} {:>9} {:>9}  {:<40} {}",
            i + 1,
            short(&l.digest, no_trunc),
            short(&l.diff_id, no_trunc),
            human_size(l.size),
            human_size(*unpacked),
            by,
            path.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn tag(store: &Store, source: &str, target: &str) -> Result<ExitCode> {
    let found = store.resolve(source)?;
    let target = reference(target)?;
    // Only the manifest's own fields: the ref-name annotation is set by set_tag.
    let mut d = found.descriptor().clone();
    d.set_annotations(None);
    store.set_tag(&target, &d)?;
    Ok(ExitCode::SUCCESS)
}

/// `rmi NAME|ID...`: a name removes its entry, an image-ID prefix every entry of that image
/// (Docker asks for -f when those are in several repositories; here they all go). A word
/// given twice counts once: `images -q` prints an id per tag, and `mbuild rmi $(mbuild
/// images -q)` must work.
pub fn rmi(store: &Store, names: &[String], out: &mut Out<'_>) -> Result<ExitCode> {
    let mut seen = std::collections::HashSet::new();
    for n in names.iter().filter(|n| seen.insert(n.as_str())) {
        for (name, desc) in store.resolve(n)?.entries() {
            store.remove_name(name)?;
            outln!(out, "Untagged: {name}")?;
            if !store
                .entries()?
                .iter()
                .any(|(_, d)| d.digest() == desc.digest())
            {
                outln!(out, "Deleted: {}", desc.digest())?;
            }
        }
    }
    store.prune()?;
    Ok(ExitCode::SUCCESS)
}

pub fn prune(store: &Store, out: &mut Out<'_>) -> Result<ExitCode> {
    // First what killed processes left (their cgroups, address leases, directories), so
    // that their pins no longer hold layers.
    let swept = runner::lifecycle::sweep(store)?;
    for id in &swept.reaped {
        outln!(
            out,
            "container {} had lost its monitor: recorded as exited",
            &id[..12.min(id.len())]
        )?;
    }
    for id in &swept.removed {
        outln!(
            out,
            "removed leftover container {}",
            &id[..12.min(id.len())]
        )?;
    }
    let r = store.prune()?;
    for (d, _) in &r.blobs {
        outln!(out, "deleted blob {d}")?;
    }
    for (d, _) in &r.layers {
        outln!(out, "deleted layer directory {d}")?;
    }
    outln!(
        out,
        "Deleted {} blobs and {} layer directories. Total reclaimed space: {}",
        r.blobs.len(),
        r.layers.len(),
        human_size(r.bytes())
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn fsck(store: &Store, out: &mut Out<'_>) -> Result<ExitCode> {
    let r = store.fsck()?;
    for p in &r.problems {
        eprintln!("mbuild: fsck: {p}");
    }
    outln!(
        out,
        "checked {} blobs ({}): {}",
        r.blobs,
        human_size(r.bytes),
        match r.problems.len() {
            0 => "ok".to_string(),
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        }
    )?;
    Ok(if r.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn save(store: &Store, name: &str, output: &Path) -> Result<ExitCode> {
    // An archive names its image by a tag: the one the word named, or the image's first.
    let found = store.resolve(name)?;
    let r = found
        .entries()
        .iter()
        .find_map(|(n, _)| n.reference())
        .ok_or_else(|| {
            Error::Failed(format!(
                "save {name}: the image has no tag (mbuild tag it first)"
            ))
        })?;
    store.save(&r, output)?;
    Ok(ExitCode::SUCCESS)
}

pub fn load(store: &Store, input: &Path, out: &mut Out<'_>) -> Result<ExitCode> {
    for r in store.load(input)? {
        outln!(out, "Loaded image: {r}")?;
    }
    Ok(ExitCode::SUCCESS)
}
