//! The short syntax of a service's `volumes` entry, `[SOURCE:]TARGET[:OPTIONS]`, read as
//! compose reads it: a source that starts with `.`, `/` or `~` is a host path (bind), any
//! other source names a volume, no source makes an anonymous volume. OPTIONS is a comma list
//! of `ro`, `rw`, `z`, `Z`, `nocopy` and the mount propagations. Paths are not resolved here.

use crate::model::{Mount, MountStyle, MountType};

const PROPAGATIONS: [&str; 6] = [
    "rprivate", "private", "rshared", "shared", "rslave", "slave",
];

pub(crate) fn parse_short(spec: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => return Err(format!("too many colons in volume {spec:?}")),
    };
    if target.is_empty() {
        return Err(format!("no target path in volume {spec:?}"));
    }
    let kind = if source.is_empty() {
        MountType::Volume
    } else if is_path(source) {
        MountType::Bind
    } else {
        MountType::Volume
    };
    let mut m = Mount {
        kind,
        source: (!source.is_empty()).then(|| source.to_string()),
        target: target.to_string(),
        read_only: false,
        create_host_path: kind == MountType::Bind,
        propagation: None,
        selinux: None,
        nocopy: false,
        tmpfs_size: None,
        tmpfs_mode: None,
        style: MountStyle {
            bind: kind == MountType::Bind,
            volume: kind == MountType::Volume,
            tmpfs: false,
        },
        at: None,
    };
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => m.read_only = true,
            "rw" => m.read_only = false,
            "z" | "Z" if kind == MountType::Bind => m.selinux = Some(opt.to_string()),
            "nocopy" if kind == MountType::Volume => m.nocopy = true,
            p if kind == MountType::Bind && PROPAGATIONS.contains(&p) => {
                m.propagation = Some(p.to_string())
            }
            _ => return Err(format!("unknown option {opt:?} in volume {spec:?}")),
        }
    }
    Ok(m)
}

/// What compose takes for a host path rather than a volume name.
pub(crate) fn is_path(source: &str) -> bool {
    source.starts_with(['.', '/', '~'])
}

pub(crate) fn is_propagation(p: &str) -> bool {
    PROPAGATIONS.contains(&p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_named_and_anonymous() {
        let m = parse_short("/tmp/.X11-unix:/tmp/.X11-unix").unwrap();
        assert_eq!(
            (m.kind, m.source.as_deref(), m.target.as_str()),
            (MountType::Bind, Some("/tmp/.X11-unix"), "/tmp/.X11-unix")
        );
        assert!(m.create_host_path && !m.read_only);
        let m = parse_short("./data:/data:ro").unwrap();
        assert_eq!((m.kind, m.read_only), (MountType::Bind, true));
        let m = parse_short("~/x:/x:rw,Z,rshared").unwrap();
        assert_eq!(
            (m.kind, m.selinux.as_deref(), m.propagation.as_deref()),
            (MountType::Bind, Some("Z"), Some("rshared"))
        );
        let m = parse_short("data:/var/lib/data:nocopy").unwrap();
        assert_eq!(
            (m.kind, m.source.as_deref(), m.nocopy),
            (MountType::Volume, Some("data"), true)
        );
        let m = parse_short("/var/lib/anonymous").unwrap();
        assert_eq!(
            (m.kind, m.source, m.target.as_str()),
            (MountType::Volume, None, "/var/lib/anonymous")
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_short("a:b:c:d").unwrap_err(),
            "too many colons in volume \"a:b:c:d\""
        );
        assert_eq!(
            parse_short("data:").unwrap_err(),
            "no target path in volume \"data:\""
        );
        assert_eq!(
            parse_short("/a:/b:rx").unwrap_err(),
            "unknown option \"rx\" in volume \"/a:/b:rx\""
        );
        assert_eq!(
            parse_short("v:/b:Z").unwrap_err(),
            "unknown option \"Z\" in volume \"v:/b:Z\""
        );
    }
}
