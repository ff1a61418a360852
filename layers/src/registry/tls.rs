//! Which registries may be reached how: the TLS roots (the system's bundle plus the CA files
//! of a certs.d directory, as podman and Docker have them) and the rules for plain HTTP
//! (loopback registries, `--insecure`, or `insecure = true` in registries.conf). It builds
//! configuration only; it never opens a connection.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Debian's bundle of the system's trusted roots (ca-certificates); `SSL_CERT_FILE` overrides
/// it, as for OpenSSL and Go.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The certs.d directories for `host` (`127.0.0.1:5000`), in podman's order, then Docker's:
/// `--cert-dir` replaces them all, as in podman.
pub fn cert_dirs(host: &str, cert_dir: Option<&Path>) -> Vec<PathBuf> {
    if let Some(d) = cert_dir {
        return vec![d.to_path_buf()];
    }
    let mut v = Vec::new();
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        v.push(
            PathBuf::from(home)
                .join(".config/containers/certs.d")
                .join(host),
        );
    }
    v.push(Path::new("/etc/containers/certs.d").join(host));
    v.push(Path::new("/etc/docker/certs.d").join(host));
    v
}

/// The CA certificates (`*.crt`) of a registry's certs.d directories. An unreadable or
/// malformed file is an error naming it: a CA the user put there silently ignored would
/// turn into a puzzling "unknown issuer".
pub fn extra_cas(dirs: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        files.sort();
        for f in files {
            let bytes =
                std::fs::read(&f).map_err(|e| format!("read CA file {}: {e}", f.display()))?;
            let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("CA file {}: {e:?}", f.display()))?;
            if certs.is_empty() {
                return Err(format!("CA file {}: no PEM certificate in it", f.display()));
            }
            out.extend(certs);
        }
    }
    Ok(out)
}

/// The system's roots; webpki-roots (Mozilla's list, compiled in) when there is no bundle.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let file = std::env::var_os("SSL_CERT_FILE")
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_BUNDLE));
    if let Ok(bytes) = std::fs::read(&file) {
        for c in CertificateDer::pem_slice_iter(&bytes).flatten() {
            let _ = roots.add(c);
        }
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

/// A TLS client configuration trusting the system's roots and `extra` CAs; with `verify`
/// false (an explicitly insecure registry only), any certificate.
pub fn client_config(
    extra: Vec<CertificateDer<'static>>,
    verify: bool,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = if verify {
        let mut roots = system_roots();
        for c in extra {
            roots
                .add(c)
                .map_err(|e| format!("add CA certificate: {e}"))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate (signatures are still checked): what `--insecure` means
/// for a registry that serves TLS with a certificate we cannot verify, as podman's
/// `--tls-verify=false` and Docker's insecure-registries do.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// True for a registry on this machine: `localhost`, 127.0.0.0/8 or ::1, with any port.
/// Docker and podman let such registries speak plain HTTP.
pub fn is_loopback(host: &str) -> bool {
    let h = strip_port(host);
    if h == "localhost" {
        return true;
    }
    match h.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// `host` without `:port`; an IPv6 literal without its brackets.
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    if host.matches(':').count() > 1 {
        return host; // a bare IPv6 address
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// registries.conf: `$CONTAINERS_REGISTRIES_CONF` (as podman reads it), else
/// /etc/containers/registries.conf.
pub fn registries_conf() -> PathBuf {
    std::env::var_os("CONTAINERS_REGISTRIES_CONF")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/containers/registries.conf"))
}

/// Whether registries.conf marks `host` insecure. Only the simple forms are read: the v2
/// tables `[[registry]]` with `location = "HOST"` and `insecure = true` (a location that
/// is the host itself, or the host followed by a path), and v1's
/// `[registries.insecure]` `registries = ["HOST", ...]` on one line. Prefixes with
/// wildcards, mirrors and anything else are ignored.
pub fn conf_insecure(conf: &str, host: &str) -> bool {
    let mut section = String::new();
    let mut location: Option<String> = None;
    let mut insecure = false;
    let mut found = false;
    let close = |loc: &Option<String>, ins: bool| {
        ins && loc
            .as_deref()
            .is_some_and(|l| l == host || l.strip_prefix(host).is_some_and(|r| r.starts_with('/')))
    };
    for raw in conf.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            if section == "[[registry]]" && close(&location, insecure) {
                found = true;
            }
            section = line.replace(' ', "");
            location = None;
            insecure = false;
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match (section.as_str(), k) {
            ("[[registry]]", "location") => location = Some(unquote(v).to_string()),
            ("[[registry]]", "insecure") => insecure = v == "true",
            ("[registries.insecure]", "registries")
                if v.trim_start_matches('[')
                    .trim_end_matches(']')
                    .split(',')
                    .any(|x| unquote(x.trim()) == host) =>
            {
                found = true;
            }
            _ => {}
        }
    }
    found || (section == "[[registry]]" && close(&location, insecure))
}

fn unquote(s: &str) -> &str {
    s.trim_matches(|c| c == '"' || c == '\'')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.9.9.9",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[fe80::1]:5000",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn registries_conf_insecure_forms() {
        let conf = r#"
unqualified-search-registries = ["docker.io"]
[[registry]]
location = "reg.example.com:5000"
insecure = true   # test registry

[[registry]]
location = "secure.example.com"
insecure = false

[[registry]]
prefix = "x"
location = "team.example.com/path"
insecure = true
"#;
        assert!(conf_insecure(conf, "reg.example.com:5000"));
        assert!(!conf_insecure(conf, "reg.example.com"));
        assert!(!conf_insecure(conf, "secure.example.com"));
        assert!(conf_insecure(conf, "team.example.com"));
        let v1 = "[registries.insecure]\nregistries = ['a.example:1', \"b.example\"]\n";
        assert!(conf_insecure(v1, "b.example") && conf_insecure(v1, "a.example:1"));
        assert!(!conf_insecure(v1, "c.example"));
    }

    #[test]
    fn certs_d_cas_are_read_and_bad_ones_named() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("127.0.0.1:5000");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("client.cert"), "ignored").unwrap();
        assert!(extra_cas(std::slice::from_ref(&d)).unwrap().is_empty());
        std::fs::write(d.join("ca.crt"), "not a certificate").unwrap();
        let e = extra_cas(std::slice::from_ref(&d)).unwrap_err();
        assert!(
            e.contains("ca.crt") && e.contains("no PEM certificate"),
            "{e}"
        );
        assert_eq!(
            cert_dirs("h:1", Some(Path::new("/x"))),
            vec![PathBuf::from("/x")]
        );
    }
}
