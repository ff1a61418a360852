//! A layer blob through the store's whole extraction path, `Store::ensure_layer`: the blob
//! is sniffed for its compression, gunzipped on its own thread, extracted into a staging
//! directory while the diff_id is hashed, then renamed into `layers/<diff_id>/`.
//!
//! The first byte chooses the case: bit 0 set, the rest is gzipped here first (the tar
//! parser then sees the fuzzer's bytes); clear, the rest is the blob itself (so the gzip
//! decoder sees them, or the plain path when they do not start with the gzip magic).
//! Bit 1 set, the expected diff_id is wrong and extraction must fail.
//!
//! After each input: nothing beside the store but the canary, the canary unchanged, no
//! staging directory left behind, and a layer directory exactly when it succeeded.

#![no_main]

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use layers::oci_spec::image::{Descriptor, MediaType};
use layers::Store;
use libfuzzer_sys::fuzz_target;
use minibox_fuzz::Sandbox;
use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

struct Env {
    sb: Sandbox,
    store: Store,
    /// This process's session directory in the store's tmp/.
    session: PathBuf,
}

static ENV: OnceLock<Env> = OnceLock::new();

fn env() -> Env {
    let sb = Sandbox::new("unpack_gz");
    let store = Store::open(sb.dir.join("store")).unwrap();
    let session = store.temp_path("probe").parent().unwrap().to_path_buf();
    Env { sb, store, session }
}

/// The uncompressed stream, as far as it decodes (at most 256 MiB).
fn gunzip(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = MultiGzDecoder::new(blob)
        .take(256 << 20)
        .read_to_end(&mut out);
    out
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, payload)) = data.split_first() else {
        return;
    };
    let env = ENV.get_or_init(env);
    let (compress, wrong_diff_id) = (flags & 1 != 0, flags & 2 != 0);
    let blob = if compress {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(payload).unwrap();
        gz.finish().unwrap()
    } else {
        payload.to_vec()
    };
    let tar = if !compress && blob.starts_with(&[0x1f, 0x8b]) {
        gunzip(&blob)
    } else {
        payload.to_vec()
    };
    let diff_id = if wrong_diff_id {
        layers::digest::sha256(&[&tar[..], b"x"].concat())
    } else {
        layers::digest::sha256(&tar)
    };
    let (digest, size) = env.store.put_blob(&blob).unwrap();
    let desc = Descriptor::new(MediaType::ImageLayerGzip, size, digest.clone());

    let r = env.store.ensure_layer(&desc, &diff_id);
    let what = format!("ensure_layer returned {r:?}");
    env.sb.check(&["store"], &what);
    let layers_dir = env.store.root().join("layers");
    match &r {
        Ok(dir) => {
            assert!(!wrong_diff_id, "{what}: a wrong diff_id was accepted");
            assert_eq!(*dir, env.store.layer_dir(&diff_id), "{what}");
            assert!(fs::symlink_metadata(dir).unwrap().is_dir(), "{what}");
            assert_eq!(names(&layers_dir), [diff_id.digest().to_string()], "{what}");
        }
        Err(_) => assert!(names(&layers_dir).is_empty(), "{what}: a layer landed"),
    }
    // Only the pins file may remain in the session: staging is removed on failure.
    assert_eq!(names(&env.session), ["pins"], "{what}: staging left behind");

    if r.is_ok() {
        layers::store::remove_all(&env.store.layer_dir(&diff_id)).unwrap();
    }
    fs::remove_file(env.store.blob_path(&digest)).unwrap();
    fs::write(env.session.join("pins"), b"").unwrap();
});
