//! Debian base images: `debian:SUITE` made once with `debootstrap --variant=minbase` and kept
//! as a tagged one-layer image, as the official image is (apt caches and lists removed).

use crate::{Error, Result};
use layers::image;
use layers::oci_spec::image::{ConfigBuilder, Descriptor, HistoryBuilder};
use layers::pack::PackOptions;
use layers::{Reference, Store};
use std::io::Write;
use std::process::{Command, Stdio};

/// Debian release numbers as Docker Hub's tags name them.
const SUITES: [(&str, &str); 6] = [
    ("11", "bullseye"),
    ("12", "bookworm"),
    ("13", "trixie"),
    ("bullseye", "bullseye"),
    ("bookworm", "bookworm"),
    ("trixie", "trixie"),
];

pub fn is_debian(r: &Reference) -> bool {
    suite(r).is_some()
}

fn suite(r: &Reference) -> Option<&'static str> {
    if r.name() != "debian" && r.name() != "docker.io/library/debian" {
        return None;
    }
    let tag = r.tag().trim_end_matches("-slim");
    SUITES.iter().find(|(t, _)| *t == tag).map(|(_, s)| *s)
}

/// Make `debian:SUITE` with debootstrap and tag it; returns its manifest descriptor.
pub fn bootstrap(
    store: &Store,
    r: &Reference,
    mirror: Option<&str>,
    out: &mut dyn Write,
    quiet: bool,
) -> Result<Descriptor> {
    let suite = suite(r).ok_or_else(|| {
        Error::Failed(format!("{r}: not a Debian base minibox can bootstrap (debian:bookworm, debian:trixie, debian:bullseye, debian:11..13)"))
    })?;
    let have = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("debootstrap").is_file()));
    if !have {
        return Err(Error::Failed(format!(
            "debootstrap is not installed (it makes {r}); install it with: apt-get install -y debootstrap"
        )));
    }
    let mirror = mirror
        .map(String::from)
        .or_else(|| {
            std::env::var("MINIBOX_DEBIAN_MIRROR")
                .ok()
                .filter(|m| !m.is_empty())
        })
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_string());
    let target = store.temp_dir("debootstrap")?;
    if !quiet {
        writeln!(
            out,
            "bootstrapping {r}: debootstrap --variant=minbase {suite} ({mirror})"
        )
        .map_err(Error::stdout)?;
    }
    let result = (|| {
        let status = Command::new("debootstrap")
            .args(["--variant=minbase", suite])
            .arg(&target)
            .arg(&mirror)
            .stdin(Stdio::null())
            .stdout(if quiet {
                Stdio::null()
            } else {
                Stdio::inherit()
            })
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| Error::Failed(format!("run debootstrap: {e}")))?;
        if !status.success() {
            return Err(Error::Failed(format!(
                "debootstrap {suite} failed ({status})"
            )));
        }
        for d in ["var/cache/apt/archives", "var/lib/apt/lists"] {
            let p = target.join(d);
            if let Ok(rd) = std::fs::read_dir(&p) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        let epoch = image::source_date_epoch();
        let (layer, stats) = store.pack_layer(
            &target,
            &PackOptions {
                source_date_epoch: epoch,
                overlay: false,
            },
        )?;
        let mut config = image::new_config();
        let created = image::rfc3339(epoch.unwrap_or(stats.newest_mtime));
        config.set_created(Some(created.clone()));
        config.set_config(Some(
            ConfigBuilder::default()
                .env(vec![format!("PATH={}", runner::config::DEFAULT_PATH)])
                .cmd(vec!["bash".to_string()])
                .build()
                .expect("config"),
        ));
        config.set_history(Some(vec![HistoryBuilder::default()
            .created(created)
            .created_by(format!(
                "mbuild bootstrap {r}: debootstrap --variant=minbase {suite} {mirror}"
            ))
            .build()
            .expect("history")]));
        let desc = store.write_image(&config, &[layer])?;
        store.set_tag(r, &desc)?;
        Ok(desc)
    })();
    let _ = layers::store::remove_all(&target);
    result
}
