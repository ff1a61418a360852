//! Registry credentials and challenges: the auth file Docker and podman share
//! (`$REGISTRY_AUTH_FILE`, else `~/.docker/config.json`: `{"auths": {"HOST": {"auth":
//! base64("user:password")}}}`), and the `WWW-Authenticate` challenges of the distribution
//! spec (Bearer with a token realm, or Basic). It reads and writes that one file; HTTP is
//! the transport's.

use crate::registry::RegError;
use base64::Engine as _;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The key Docker files Docker Hub's credentials under (its v1 index URL).
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Where credentials live: `$REGISTRY_AUTH_FILE` (podman's auth.json, the same shape), else
/// Docker's `~/.docker/config.json`.
pub fn auth_file() -> PathBuf {
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return PathBuf::from(f);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".docker/config.json")
}

/// The registry host an auths key names: `https://index.docker.io/v1/`, `docker.io` and
/// `registry-1.docker.io` are all Docker Hub; a scheme and a path are dropped.
fn key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_string(),
    }
}

fn read_file(path: &Path) -> Result<serde_json::Value, RegError> {
    match fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| RegError::new(format!("auth file {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(RegError::new(format!(
            "read auth file {}: {}",
            path.display(),
            crate::error::io_message(&e)
        ))),
    }
}

/// The credentials saved for `host` (`docker.io` for Docker Hub), if any.
pub fn lookup(path: &Path, host: &str) -> Result<Option<Credentials>, RegError> {
    let v = read_file(path)?;
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    for (k, entry) in auths {
        if key_host(k) != host {
            continue;
        }
        let Some(b64) = entry.get("auth").and_then(|a| a.as_str()) else {
            continue;
        };
        let bad = || {
            RegError::new(format!(
                "auth file {}: {k}: invalid \"auth\" value",
                path.display()
            ))
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (u, p) = raw.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    Ok(None)
}

/// Save `creds` for `host`, keeping everything else in the file; the file is written
/// 0600 (it holds passwords), by temp file and rename.
pub fn store(path: &Path, host: &str, creds: &Credentials) -> Result<(), RegError> {
    let mut v = read_file(path)?;
    if !v.is_object() {
        v = serde_json::json!({});
    }
    let obj = v.as_object_mut().expect("an object");
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    let auths = auths.as_object_mut().expect("an object");
    auths.retain(|k, _| key_host(k) != host);
    let key = if host == "docker.io" {
        DOCKER_HUB_KEY
    } else {
        host
    };
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", creds.username, creds.password));
    auths.insert(key.to_string(), serde_json::json!({ "auth": b64 }));
    write_file(path, &v)
}

/// Remove `host`'s credentials; false when there were none.
pub fn remove(path: &Path, host: &str) -> Result<bool, RegError> {
    let mut v = read_file(path)?;
    let Some(auths) = v.get_mut("auths").and_then(|a| a.as_object_mut()) else {
        return Ok(false);
    };
    let before = auths.len();
    auths.retain(|k, _| key_host(k) != host);
    if auths.len() == before {
        return Ok(false);
    }
    write_file(path, &v)?;
    Ok(true)
}

fn write_file(path: &Path, v: &serde_json::Value) -> Result<(), RegError> {
    let fail = |op: &str, p: &Path, e: std::io::Error| {
        RegError::new(format!(
            "{op} {}: {}",
            p.display(),
            crate::error::io_message(&e)
        ))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() && !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail("create directory", dir, e))?;
    }
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let bytes = serde_json::to_vec_pretty(v).expect("JSON value");
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| fail("create", &tmp, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(|e| fail("write", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| fail("rename into place", path, e))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// A `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse `Bearer realm="https://auth/token",service="registry",scope="repository:x:pull"`
/// or `Basic realm="..."` (RFC 7235 auth-params, quoted or not).
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        });
    }
    None
}

fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i] == b' ') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let name = s[start..i].trim().to_string();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i] as char);
                i += 1;
            }
            i += 1;
        } else {
            let st = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = s[st..i].trim().to_string();
        }
        if !name.is_empty() {
            out.push((name, val));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/debian:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("bearer realm=http://h/t, service=s"),
            Some(Challenge::Bearer {
                realm: "http://h/t".into(),
                service: Some("s".into()),
                scope: None
            })
        );
        assert_eq!(parse_challenge("Bearer service=s"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn auth_file_round_trip_keeps_other_fields() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("d/config.json");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(
            &p,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}},"psFormat":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            lookup(&p, "docker.io").unwrap(),
            Some(Credentials {
                username: "u".into(),
                password: "p".into()
            })
        );
        let c = Credentials {
            username: "me".into(),
            password: "a:b".into(),
        };
        store(&p, "127.0.0.1:5000", &c).unwrap();
        assert_eq!(lookup(&p, "127.0.0.1:5000").unwrap(), Some(c));
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "x");
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "bWU6YTpi");
        assert!(remove(&p, "127.0.0.1:5000").unwrap());
        assert!(!remove(&p, "127.0.0.1:5000").unwrap());
        assert_eq!(lookup(&p, "127.0.0.1:5000").unwrap(), None);
        assert!(lookup(&p, "docker.io").unwrap().is_some());
        // A new file in a new directory.
        let q = t.path().join("new/dir/auth.json");
        store(
            &q,
            "docker.io",
            &Credentials {
                username: "a".into(),
                password: "b".into(),
            },
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&q).unwrap()).unwrap();
        assert!(v["auths"][DOCKER_HUB_KEY]["auth"].is_string());
    }
}
