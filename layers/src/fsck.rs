//! fsck: re-hash every blob and check that every tag's manifest, config and layers are
//! present and well-formed. Reports problems; repairs nothing.

use crate::digest::{self, Hasher};
use crate::error::{IoContext, Result};
use crate::store::{self, Store};
use std::fs::{self, File};
use std::io::Read;

#[derive(Debug, Default)]
pub struct FsckReport {
    pub blobs: usize,
    pub bytes: u64,
    pub problems: Vec<String>,
}

impl Store {
    pub fn fsck(&self) -> Result<FsckReport> {
        let mut r = FsckReport::default();
        let dir = self.blobs_dir();
        let mut names: Vec<_> = fs::read_dir(&dir)
            .ctx("read directory", &dir)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        let mut buf = vec![0u8; 1 << 20];
        for name in names {
            let name = name.to_string_lossy().into_owned();
            let path = dir.join(&name);
            let Some(want) = digest::parse(&format!("sha256:{name}")) else {
                r.problems
                    .push(format!("{}: not a sha256 blob name", path.display()));
                continue;
            };
            let mut f = File::open(&path).ctx("open", &path)?;
            let mut h = Hasher::new();
            loop {
                let n = f.read(&mut buf).ctx("read", &path)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                r.bytes += n as u64;
            }
            let got = h.finish();
            r.blobs += 1;
            if got != want {
                r.problems.push(format!(
                    "blob {want}: digest mismatch, content hashes to {got}"
                ));
            }
        }
        for (reference, desc) in self.tags()? {
            let what = format!("image {reference}");
            match self.image_by_manifest(&desc) {
                Err(e) => r.problems.push(format!("{what}: {e}")),
                Ok(img) => match img.layers() {
                    Err(e) => r.problems.push(format!("{what}: {e}")),
                    Ok(layers) => {
                        for l in layers {
                            if !self.has_blob(&l.digest) {
                                r.problems
                                    .push(format!("{what}: layer blob {} is missing", l.digest));
                            }
                        }
                    }
                },
            }
        }
        for d in self.read_index()?.manifests() {
            if store::ref_name(d).is_none() {
                r.problems.push(format!(
                    "index.json: manifest {} has no {} annotation",
                    d.digest(),
                    store::REF_NAME
                ));
            }
        }
        Ok(r)
    }
}
