//! The HTTP side of the distribution spec, over ureq: finding a registry's endpoint (HTTPS,
//! or plain HTTP where `tls` allows it), answering its challenge (a Bearer token for the
//! operation's scopes, anonymous or with the saved credentials, or Basic), and sending
//! requests with that authorization, once more with a fresh token after a 401. It knows
//! nothing of manifests or the store.

use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};
use crate::registry::auth::{self, Challenge, Credentials};
use crate::registry::tls;
use crate::registry::{Access, RegError};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Accepted manifest types, most preferred first (the distribution spec's content
/// negotiation): OCI and Docker schema 2, images and indexes.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Manifests and token answers are read whole; a hostile registry must not make us
/// allocate without bound.
pub const MAX_JSON: u64 = 32 << 20;

/// A request body that can be sent again after a 401.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(PathBuf, u64),
}

pub struct Client {
    /// The registry as names spell it (`docker.io`, `127.0.0.1:5000`).
    pub host: String,
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    pub base: String,
    agent: ureq::Agent,
    creds: Option<Credentials>,
    challenge: Option<Challenge>,
    scopes: Vec<String>,
    token: Mutex<Option<String>>,
}

/// One line for a transport failure, naming the host ("registry-1.docker.io: dns failed:
/// ...").
pub fn transport_error(api_host: &str, e: &ureq::Transport) -> RegError {
    let kind = e.kind().to_string().to_lowercase();
    let mut detail = e.message().map(str::to_string).unwrap_or_default();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !detail.contains(&t) {
            if !detail.is_empty() {
                detail.push_str(": ");
            }
            detail.push_str(&t);
        }
        src = s.source();
    }
    let detail = detail
        .split(" (os error")
        .next()
        .unwrap_or(&detail)
        .to_string();
    if detail.is_empty() {
        RegError::new(format!("{api_host}: {kind}"))
    } else {
        RegError::new(format!("{api_host}: {kind}: {}", detail.to_lowercase()))
    }
}

/// The registry's own error (`{"errors":[{"code":"UNAUTHORIZED","message":"..."}]}`) as
/// one line: "unauthorized: authentication required"; else the HTTP status.
pub fn status_error(code: u16, resp: ureq::Response) -> RegError {
    let text = resp.status_text().to_lowercase();
    let mut body = Vec::new();
    let _ = resp.into_reader().take(64 << 10).read_to_end(&mut body);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut msg = String::new();
    if let Some(first) = v["errors"].as_array().and_then(|a| a.first()) {
        let c = first["code"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .replace('_', " ");
        let m = first["message"].as_str().unwrap_or_default();
        msg = if m.is_empty() || m.eq_ignore_ascii_case(&c) {
            c
        } else if c.is_empty() {
            m.to_string()
        } else {
            format!("{c}: {m}")
        };
    }
    if msg.is_empty() {
        // A HEAD answer has no body to say it.
        msg = match code {
            401 => "unauthorized: authentication required".to_string(),
            403 => "denied: requested access to the resource is denied".to_string(),
            _ => format!("HTTP {code} {text}"),
        };
    }
    let mut e = RegError::new(msg);
    e.status = code;
    e
}

impl Client {
    /// Reach `host`'s registry API: HTTPS first, plain HTTP only where allowed; read its
    /// challenge; pick the saved credentials for it.
    pub fn connect(host: &str, access: &Access, scopes: Vec<String>) -> Result<Client, RegError> {
        let api_host = if host == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            host
        };
        let conf = std::fs::read_to_string(tls::registries_conf()).unwrap_or_default();
        let insecure = access.insecure || tls::conf_insecure(&conf, host);
        let http_ok = insecure || tls::is_loopback(host);
        let cas = tls::extra_cas(&tls::cert_dirs(host, access.cert_dir.as_deref()))
            .map_err(RegError::new)?;
        let tls = tls::client_config(cas, !insecure).map_err(RegError::new)?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls)
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .user_agent(concat!("minibox/", env!("CARGO_PKG_VERSION")))
            .build();
        let creds = match &access.credentials {
            Some(c) => Some(c.clone()),
            None => auth::lookup(&auth::auth_file(), host)?,
        };
        let ping = |scheme: &str| -> Result<Option<Challenge>, RegError> {
            match agent.get(&format!("{scheme}://{api_host}/v2/")).call() {
                Ok(_) => Ok(None),
                Err(ureq::Error::Status(401, r)) => {
                    let h = r.header("www-authenticate").unwrap_or_default().to_string();
                    match auth::parse_challenge(&h) {
                        Some(c) => Ok(Some(c)),
                        None => Err(RegError::new(format!(
                            "{api_host}: unsupported authentication challenge {h:?}"
                        ))),
                    }
                }
                Err(ureq::Error::Status(code, r)) => {
                    let e = status_error(code, r);
                    Err(RegError::new(format!(
                        "{scheme}://{api_host}/v2/: not a registry ({})",
                        e.msg
                    ))
                    .status(code))
                }
                Err(ureq::Error::Transport(t)) => Err(transport_error(api_host, &t)),
            }
        };
        let (scheme, challenge) = match ping("https") {
            Ok(c) => ("https", c),
            Err(e) if http_ok && e.status == 0 => match ping("http") {
                Ok(c) => ("http", c),
                // Not a plain HTTP registry either: the TLS failure is the one to tell.
                Err(_) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        Ok(Client {
            host: host.to_string(),
            base: format!("{scheme}://{api_host}"),
            agent,
            creds,
            challenge,
            scopes,
            token: Mutex::new(None),
        })
    }

    /// Check the credentials in use against the registry (login): a token for them, or
    /// `/v2/` with Basic.
    pub fn verify_login(&self) -> Result<(), RegError> {
        match &self.challenge {
            None => Ok(()),
            Some(Challenge::Basic) => {
                let mut req = self.agent.get(&format!("{}/v2/", self.base));
                if let Some(c) = &self.creds {
                    req = req.set("Authorization", &c.basic_header());
                }
                match req.call() {
                    Ok(_) => Ok(()),
                    Err(ureq::Error::Status(401, _)) => Err(RegError::new(
                        "unauthorized: incorrect username or password",
                    )
                    .status(401)),
                    Err(ureq::Error::Status(c, r)) => Err(status_error(c, r)),
                    Err(ureq::Error::Transport(t)) => Err(transport_error(&self.host, &t)),
                }
            }
            Some(Challenge::Bearer { .. }) => self.fetch_token(None).map(|_| ()),
        }
    }

    /// A Bearer token for our scopes (plus `extra`, the scope a 401 asked for).
    fn fetch_token(&self, extra: Option<&str>) -> Result<String, RegError> {
        let Some(Challenge::Bearer { realm, service, .. }) = &self.challenge else {
            return Err(RegError::new("no token realm"));
        };
        let mut url = realm.clone();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        let mut add = |k: &str, v: &str| {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v));
            sep = '&';
        };
        if let Some(s) = service {
            add("service", s);
        }
        if let Some(c) = &self.creds {
            add("account", &c.username);
        }
        let mut scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        if let Some(x) = extra {
            if !scopes.contains(&x) {
                scopes.push(x);
            }
        }
        for s in scopes {
            add("scope", s);
        }
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.creds {
            req = req.set("Authorization", &c.basic_header());
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(401, r)) => {
                let e = status_error(401, r);
                let msg = if self.creds.is_some() {
                    "unauthorized: incorrect username or password".to_string()
                } else {
                    e.msg
                };
                return Err(RegError::new(msg).status(401));
            }
            Err(ureq::Error::Status(c, r)) => {
                let e = status_error(c, r);
                return Err(RegError::new(format!("token from {realm}: {}", e.msg)).status(c));
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(transport_error(realm, &t));
            }
        };
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_JSON)
            .read_to_end(&mut body)
            .map_err(|e| RegError::new(format!("token from {realm}: {e}")))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| RegError::new(format!("token from {realm}: {e}")))?;
        v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| RegError::new(format!("token from {realm}: no token in the answer")))
    }

    fn authorization(&self) -> Result<Option<String>, RegError> {
        match &self.challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.creds.as_ref().map(Credentials::basic_header)),
            Some(Challenge::Bearer { .. }) => {
                let mut t = self.token.lock().expect("token lock");
                if t.is_none() {
                    *t = Some(self.fetch_token(None)?);
                }
                Ok(t.as_ref().map(|t| format!("Bearer {t}")))
            }
        }
    }

    /// The absolute URL of a registry path (`/v2/...`) or of a Location the registry gave.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Send a request; a 401 gets a fresh token (with the scope the challenge names) and one
    /// more try. Any status other than 2xx/3xx comes back as `Err` with the registry's
    /// message and the status.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
    ) -> Result<ureq::Response, RegError> {
        let url = self.url(path);
        let mut retried = false;
        loop {
            let mut req = self.agent.request(method, &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(a) = self.authorization()? {
                req = req.set("Authorization", &a);
            }
            let res = match body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::File(p, len) => {
                    let f = std::fs::File::open(p).map_err(|e| {
                        RegError::new(format!(
                            "open {}: {}",
                            p.display(),
                            crate::error::io_message(&e)
                        ))
                    })?;
                    req.set("Content-Length", &len.to_string())
                        .send(std::io::BufReader::with_capacity(1 << 20, f))
                }
            };
            match res {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(401, r)) if !retried => {
                    if !matches!(self.challenge, Some(Challenge::Bearer { .. })) {
                        if self.creds.is_some() {
                            return Err(RegError::new(
                                "unauthorized: incorrect username or password",
                            )
                            .status(401));
                        }
                        return Err(status_error(401, r));
                    }
                    let h = r.header("www-authenticate").unwrap_or_default().to_string();
                    let scope = match auth::parse_challenge(&h) {
                        Some(Challenge::Bearer { scope, .. }) => scope,
                        _ => None,
                    };
                    *self.token.lock().expect("token lock") =
                        Some(self.fetch_token(scope.as_deref())?);
                    retried = true;
                }
                Err(ureq::Error::Status(c, r)) => return Err(status_error(c, r)),
                Err(ureq::Error::Transport(t)) => {
                    return Err(transport_error(&self.api_host(), &t))
                }
            }
        }
    }

    fn api_host(&self) -> String {
        self.base
            .split_once("://")
            .map_or(self.base.clone(), |(_, h)| h.to_string())
    }
}

/// Percent-encoding for a query value (RFC 3986 unreserved characters kept).
pub fn encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        assert_eq!(
            encode("repository:library/debian:pull,push"),
            "repository%3Alibrary%2Fdebian%3Apull%2Cpush"
        );
        assert_eq!(encode("sha256:ab"), "sha256%3Aab");
    }
}
