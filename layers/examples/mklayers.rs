//! Bench helper: make an image of N layers, for bench/run-start.sh's layer-count scaling.
//! The bottom layer is the base image's (a real rootfs); each layer above it is a tiny
//! layer holding one distinct file, so every layer has its own diff_id. It writes blobs,
//! a config, a manifest and a tag through the public `layers` API, and does nothing else.
//!
//!     cargo run --release -p layers --example mklayers -- STORE TAG N BASE_TAG
//!
//! It does not extract the layers: run `mbuild --root STORE layers TAG` for that.

use layers::image::LayerInfo;
use layers::oci_spec::image::HistoryBuilder;
use layers::pack::PackOptions;
use layers::{Reference, Store};
use std::error::Error;
use std::fs;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mklayers: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, tag, n, base] = args.as_slice() else {
        return Err("usage: mklayers STORE TAG N BASE_TAG".into());
    };
    let n: usize = n.parse().map_err(|e| format!("layer count {n:?}: {e}"))?;
    let store = Store::open(root)?;
    let tag = Reference::parse(tag)?;
    let img = store.image(&Reference::parse(base)?)?;
    let mut layers: Vec<LayerInfo> = img.layers()?;
    if layers.len() > n {
        return Err(format!("{base} already has {} layers, more than {n}", layers.len()).into());
    }

    let mut config = img.config.clone();
    let mut history = config.history().clone().unwrap_or_default();
    // Fixed mtimes, so the same N gives the same blobs in every store and run.
    let opts = PackOptions {
        source_date_epoch: Some(0),
        ..PackOptions::default()
    };
    let dir = store.temp_dir("mklayers")?;
    for i in layers.len()..n {
        let name = format!("minibox-bench-layer-{i}");
        let file = dir.join(&name);
        fs::write(&file, format!("{i}\n")).map_err(|e| format!("write {}: {e}", file.display()))?;
        let (info, _) = store.pack_layer(&dir, &opts)?;
        fs::remove_file(&file).map_err(|e| format!("remove {}: {e}", file.display()))?;
        layers.push(info);
        history.push(
            HistoryBuilder::default()
                .created("1970-01-01T00:00:00Z".to_string())
                .created_by(format!("mklayers: /{name}"))
                .build()?,
        );
    }
    config.set_history(Some(history));
    let manifest = store.write_image(&config, &layers)?;
    store.set_tag(&tag, &manifest)?;
    println!(
        "{tag}: {} layers, manifest {}",
        layers.len(),
        manifest.digest()
    );
    Ok(())
}
