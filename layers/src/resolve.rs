//! From what a user typed to an image in the store, as Docker resolves it: a name (any of
//! its spellings, with a tag or a digest) first, then an image-ID prefix (what `mbuild
//! images -q` prints, with or without `sha256:`). It reads the index; it never changes it
//! and never reaches a registry (pulling is `registry`'s job).

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::reference::ImageName;
use crate::store::{entry_name, Store};
use oci_spec::image::{Descriptor, ImageManifest};

/// Annotation on an index entry: the digest the registry served the image under (an image
/// index's, when a platform was picked from one), so `name@sha256:<that>` finds it again.
pub const REPO_DIGEST: &str = "io.minibox.repo-digest";

/// What a user's word matched.
#[derive(Clone, Debug)]
pub enum Found {
    /// A name in the index; the entries it matched, first one first.
    Name(Vec<(ImageName, Descriptor)>),
    /// An image-ID prefix; every entry of that image.
    Id(Digest, Vec<(ImageName, Descriptor)>),
}

impl Found {
    pub fn entries(&self) -> &[(ImageName, Descriptor)] {
        match self {
            Found::Name(v) | Found::Id(_, v) => v,
        }
    }
    /// The manifest of the (first) matching entry.
    pub fn descriptor(&self) -> &Descriptor {
        &self.entries()[0].1
    }
}

impl Store {
    /// Every entry of the index that has a name, in index order.
    pub fn entries(&self) -> Result<Vec<(ImageName, Descriptor)>> {
        Ok(self
            .read_index()?
            .manifests()
            .iter()
            .filter_map(|d| entry_name(d).map(|n| (n, d.clone())))
            .collect())
    }

    /// The entries `name` matches: with a digest, every entry of that repository whose
    /// manifest (or the index it was picked from) has that digest; otherwise its tag.
    /// The closest match comes first: an entry recorded under that very digest, then one
    /// whose manifest has it, then one picked from an index that has it.
    pub fn find(&self, name: &ImageName) -> Result<Vec<(ImageName, Descriptor)>> {
        let mut v: Vec<(u8, (ImageName, Descriptor))> = self
            .entries()?
            .into_iter()
            .filter_map(|(n, d)| rank(name, &n, &d).map(|r| (r, (n, d))))
            .collect();
        v.sort_by_key(|(r, _)| *r);
        Ok(v.into_iter().map(|(_, e)| e).collect())
    }

    /// Resolve what a user typed: a name, then an image-ID prefix. An unknown name is
    /// `ImageNotFound` (so the caller may pull it); a prefix of several images is an error.
    pub fn resolve(&self, word: &str) -> Result<Found> {
        let name = ImageName::parse(word);
        if let Ok(n) = &name {
            let v = self.find(n)?;
            if !v.is_empty() {
                return Ok(Found::Name(v));
            }
        }
        if let Some(prefix) = id_prefix(word) {
            let mut ids: Vec<(Digest, Vec<(ImageName, Descriptor)>)> = Vec::new();
            for (n, d) in self.entries()? {
                let Some(id) = self.image_id(&d) else {
                    continue;
                };
                if !id.digest().starts_with(prefix) {
                    continue;
                }
                match ids.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, v)) => v.push((n, d)),
                    None => ids.push((id, vec![(n, d)])),
                }
            }
            match ids.len() {
                0 => {}
                1 => {
                    let (id, v) = ids.pop().expect("one");
                    return Ok(Found::Id(id, v));
                }
                k => {
                    return Err(Error::AmbiguousId {
                        prefix: word.to_string(),
                        count: k,
                    })
                }
            }
        }
        match name {
            Ok(n) => Err(Error::ImageNotFound(n.to_string())),
            // Neither a name nor an id: the name's own complaint says more.
            Err(e) if id_prefix(word).is_none() => Err(e),
            Err(_) => Err(Error::ImageNotFound(word.to_string())),
        }
    }

    /// The image a user's word names, read and verified.
    pub fn resolve_image(&self, word: &str) -> Result<Image> {
        let found = self.resolve(word)?;
        self.image_by_manifest(found.descriptor())
    }

    /// An entry's image id (its config digest), reading only its manifest.
    fn image_id(&self, d: &Descriptor) -> Option<Digest> {
        let bytes = self.read_blob(d.digest()).ok()?;
        let m: ImageManifest = serde_json::from_slice(&bytes).ok()?;
        Some(m.config().digest().clone())
    }
}

/// How well entry `have` (manifest `d`) matches `want`: None for not at all, lower is closer.
fn rank(want: &ImageName, have: &ImageName, d: &Descriptor) -> Option<u8> {
    if want.name() != have.name() {
        return None;
    }
    let Some(w) = want.digest() else {
        return (have.digest().is_none() && have.tag() == want.tag()).then_some(0);
    };
    if have.digest() == Some(w) {
        Some(0)
    } else if d.digest() == w {
        Some(1)
    } else {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REPO_DIGEST))
            .is_some_and(|r| r == w.as_ref())
            .then_some(2)
    }
}

/// The hex of an image-ID prefix: 1 to 64 lowercase hex digits, optionally after `sha256:`.
fn id_prefix(word: &str) -> Option<&str> {
    let hex = word.strip_prefix("sha256:").unwrap_or(word);
    (!hex.is_empty()
        && hex.len() <= 64
        && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
    .then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{new_config, LayerInfo};
    use crate::reference::Reference;

    fn image(s: &Store, label: &str) -> Descriptor {
        let mut c = new_config();
        c.set_author(Some(label.to_string()));
        s.write_image(&c, &[] as &[LayerInfo]).unwrap()
    }

    #[test]
    fn names_ids_and_digests_resolve() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let a = image(&s, "a");
        let b = image(&s, "b");
        s.set_tag(&Reference::parse("docker.io/library/debian").unwrap(), &a)
            .unwrap();
        s.set_tag(&Reference::parse("app:1").unwrap(), &b).unwrap();
        let id_a = s.image_by_manifest(&a).unwrap().id().clone();
        let digest = a.digest().to_string();
        for w in [
            "debian".to_string(),
            "debian:latest".into(),
            "library/debian".into(),
            "docker.io/library/debian:latest".into(),
            format!("debian@{digest}"),
            id_a.digest()[..12].to_string(),
            id_a.to_string(),
        ] {
            let got = s.resolve(&w).unwrap_or_else(|e| panic!("{w}: {e}"));
            assert_eq!(got.descriptor().digest(), a.digest(), "{w}");
        }
        assert!(matches!(
            s.resolve("debian:12"),
            Err(Error::ImageNotFound(_))
        ));
        assert!(matches!(
            s.resolve(&format!("app@{digest}")),
            Err(Error::ImageNotFound(_))
        ));
        // 17 images: two of them share a first hex digit (pigeonhole), and that digit alone
        // is an ambiguous prefix.
        let mut by_first: std::collections::HashMap<char, usize> = Default::default();
        for i in 0..17 {
            let d = image(&s, &format!("x{i}"));
            s.set_tag(&Reference::parse(&format!("x:{i}")).unwrap(), &d)
                .unwrap();
            let id = s.image_by_manifest(&d).unwrap().id().clone();
            *by_first
                .entry(id.digest().chars().next().unwrap())
                .or_default() += 1;
        }
        let (c, _) = by_first.iter().find(|(_, n)| **n > 1).unwrap();
        let e = s.resolve(&c.to_string()).unwrap_err().to_string();
        assert!(e.contains("ambiguous"), "{e}");
        let e = s.resolve("Bad").unwrap_err().to_string();
        assert!(e.contains("must be lowercase"), "{e}");
    }

    #[test]
    fn digest_entries_and_repo_digests() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let a = image(&s, "a");
        let index_digest = crate::digest::sha256(b"an index");
        let mut d = a.clone();
        d.set_annotations(Some(
            [(REPO_DIGEST.to_string(), index_digest.to_string())].into(),
        ));
        let n = ImageName::parse(&format!("localhost:5000/app@{index_digest}")).unwrap();
        s.set_name(&n, &d).unwrap();
        assert!(s.tags().unwrap().is_empty());
        let got = s.resolve(&n.to_string()).unwrap();
        assert_eq!(got.descriptor().digest(), a.digest());
        let by_manifest = format!("localhost:5000/app@{}", a.digest());
        assert_eq!(
            s.resolve(&by_manifest).unwrap().descriptor().digest(),
            a.digest()
        );
        s.remove_name(&n).unwrap();
        assert!(s.entries().unwrap().is_empty());
    }
}
