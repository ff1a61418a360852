//! A real registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 at
//! a free port, with its storage, config, htpasswd file, CA and certificates in a temp dir,
//! in one of three flavours (plain HTTP, htpasswd basic auth, TLS with a CA made here).
//! Started under `env -i` (it reads every REGISTRY_* variable as configuration), ready once
//! `GET /v2/` answers, killed by its own handle and its dir removed on drop. Also a TCP
//! proxy that cuts a connection after N bytes, for dropped-connection tests.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Plain,
    Basic,
    Tls,
    /// Bearer tokens from a token server of the test's own (anonymous: pull only).
    Token,
}

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-pass";

pub struct Registry {
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`
    pub host: String,
    pub flavour: Flavour,
    child: Child,
    /// The token server (Token flavour): what it was asked, and its stop flag.
    pub token_requests: Arc<std::sync::Mutex<Vec<String>>>,
    token_stop: Arc<AtomicBool>,
}

/// Whether the tools a registry test needs are here; says why not (CI installs them).
pub fn available(flavour: Flavour) -> bool {
    let mut tools = vec!["docker-registry", "curl"];
    match flavour {
        Flavour::Plain => {}
        Flavour::Basic => tools.push("htpasswd"),
        Flavour::Tls | Flavour::Token => tools.push("openssl"),
    }
    !tools.iter().any(|t| {
        skip_unless(
            have(t),
            &format!("{t} is not installed (.ci/run installs it)"),
        )
    })
}

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}", text(&o.stderr));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Start one, or None (after `skipped:`) when the tools are missing.
    pub fn start(flavour: Flavour) -> Option<Registry> {
        if !available(flavour) {
            return None;
        }
        let mut dir = tempfile::Builder::new()
            .prefix("minibox-registry-")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        let mut extra = String::new();
        if flavour == Flavour::Basic {
            run(Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(d.join("htpasswd"))
                .args([USER, PASSWORD]));
            extra.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: minibox-test\n    path: {}\n",
                d.join("htpasswd").display()
            ));
        }
        if flavour == Flavour::Tls {
            make_certs(d);
        }
        let token_requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let token_stop = Arc::new(AtomicBool::new(false));
        if flavour == Flavour::Token {
            let realm = token_server(d, token_requests.clone(), token_stop.clone());
            extra.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    \
                 issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                d.join("token.crt").display()
            ));
        }
        // A port taken between our probe and the registry's bind is retried on another.
        for _ in 0..5 {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let tls = if flavour == Flavour::Tls {
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    d.join("server.crt").display(),
                    d.join("server.key").display()
                )
            } else {
                String::new()
            };
            let config = format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {host}\n{tls}{extra}",
                d.join("data").display()
            );
            std::fs::write(d.join("config.yml"), config).unwrap();
            let log = std::fs::File::create(d.join("registry.log")).unwrap();
            let child = Command::new("env")
                .arg("-i")
                .arg("docker-registry")
                .arg("serve")
                .arg(d.join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut r = Registry {
                dir,
                host,
                flavour,
                child,
                token_requests: token_requests.clone(),
                token_stop: token_stop.clone(),
            };
            if r.wait_ready() {
                return Some(r);
            }
            let _ = r.child.kill();
            let _ = r.child.wait();
            dir = r.take_dir();
        }
        panic!("docker-registry did not start");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Poll `GET /v2/` (200, or 401 with auth) for up to 10 s; false if it exited.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let mut c = Command::new("curl");
            c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
            if self.flavour == Flavour::Tls {
                c.arg("--cacert").arg(self.ca());
            }
            c.arg(format!("{}/v2/", self.url()));
            if let Ok(o) = c.output() {
                let code = text(&o.stdout);
                if code == "200" || code == "401" {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn url(&self) -> String {
        let scheme = if self.flavour == Flavour::Tls {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.host)
    }

    /// The CA certificate (TLS flavour).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A directory holding only the CA, for skopeo's and podman's `--cert-dir`.
    pub fn cert_dir(&self) -> PathBuf {
        let d = self.dir.path().join("cert-dir");
        if !d.exists() {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(self.ca(), d.join("ca.crt")).unwrap();
        }
        d
    }

    /// The registry's access log so far (its stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The TLS flags skopeo and podman need for this registry.
    pub fn tool_tls_args(&self) -> Vec<String> {
        match self.flavour {
            Flavour::Tls => vec![format!("--cert-dir={}", self.cert_dir().display())],
            // Plain HTTP needs --tls-verify=false even on loopback.
            _ => vec!["--tls-verify=false".into()],
        }
    }

    pub fn creds_args(&self) -> Vec<String> {
        match self.flavour {
            Flavour::Basic | Flavour::Token => vec![format!("--creds={USER}:{PASSWORD}")],
            _ => vec![],
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.token_stop.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TOKEN_SERVICE: &str = "minibox-test";
const TOKEN_ISSUER: &str = "minibox-test-issuer";

fn b64(b: &[u8], url: bool) -> String {
    let t: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut o = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                o.push(t[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if !url {
                o.push('=');
            }
        }
    }
    o
}

fn unb64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' | b'-' => 62,
            _ => 63,
        }
    };
    let b: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::new();
    for c in b.chunks(4) {
        let mut n = 0u32;
        for (i, x) in c.iter().enumerate() {
            n |= val(*x) << (18 - 6 * i);
        }
        for i in 0..c.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A token server on 127.0.0.1 (an RS256 JWT per request, signed with `openssl dgst`, its
/// certificate in the `x5c` header and in the registry's rootcertbundle), as Docker Hub's
/// auth.docker.io serves them: anonymous requests get pull access only; USER with PASSWORD
/// (Basic) gets what the scopes ask; a wrong password is a 401. Returns the realm URL.
fn token_server(
    d: &Path,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) -> String {
    run(Command::new("openssl").current_dir(d).args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "token.key",
        "-out",
        "token.crt",
        "-days",
        "2",
        "-subj",
        "/CN=minibox test token signer",
    ]));
    let der = Command::new("openssl")
        .current_dir(d)
        .args(["x509", "-in", "token.crt", "-outform", "DER"])
        .output()
        .unwrap()
        .stdout;
    let header = format!(
        r#"{{"typ":"JWT","alg":"RS256","x5c":["{}"]}}"#,
        b64(&der, false)
    );
    let key = d.join("token.key");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let realm = format!("http://127.0.0.1:{}/token", l.local_addr().unwrap().port());
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(600);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((mut c, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            c.set_nonblocking(false).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend(&buf[..n]),
                }
            }
            let req = String::from_utf8_lossy(&req).into_owned();
            let line = req.lines().next().unwrap_or_default().to_string();
            let query = line
                .split(' ')
                .nth(1)
                .and_then(|u| u.split_once('?'))
                .map(|(_, q)| q.to_string())
                .unwrap_or_default();
            requests.lock().unwrap().push(unescape(&query));
            let auth = req
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Authorization: Basic ")
                        .or_else(|| l.strip_prefix("authorization: Basic "))
                })
                .map(|b| String::from_utf8_lossy(&unb64(b.trim())).into_owned());
            let user = match auth.as_deref() {
                None => None,
                Some(a) if a == format!("{USER}:{PASSWORD}") => Some(USER),
                Some(_) => {
                    let body =
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
                    let _ = write!(c, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    continue;
                }
            };
            let mut access = Vec::new();
            for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
                if k != "scope" {
                    continue;
                }
                let v = unescape(v);
                let parts: Vec<&str> = v.split(':').collect();
                if parts.len() != 3 || parts[0] != "repository" {
                    continue;
                }
                let actions: Vec<&str> = parts[2]
                    .split(',')
                    .filter(|a| user.is_some() || *a == "pull")
                    .collect();
                access.push(format!(
                    r#"{{"type":"repository","name":"{}","actions":{}}}"#,
                    parts[1],
                    serde_json::to_string(&actions).unwrap()
                ));
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let claims = format!(
                r#"{{"iss":"{TOKEN_ISSUER}","sub":"{}","aud":"{TOKEN_SERVICE}","exp":{},"nbf":{},"iat":{now},"jti":"{now}-{}","access":[{}]}}"#,
                user.unwrap_or(""),
                now + 600,
                now - 60,
                access.len(),
                access.join(",")
            );
            let signing = format!(
                "{}.{}",
                b64(header.as_bytes(), true),
                b64(claims.as_bytes(), true)
            );
            let mut sign = Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(&key)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            sign.stdin
                .take()
                .unwrap()
                .write_all(signing.as_bytes())
                .unwrap();
            let sig = sign.wait_with_output().unwrap().stdout;
            let token = format!("{signing}.{}", b64(&sig, true));
            let body =
                format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":600}}"#);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    realm
}

/// A CA, and a server certificate it signs for IP:127.0.0.1 and DNS:localhost.
fn make_certs(d: &Path) {
    let ossl = |args: &[&str]| run(Command::new("openssl").current_dir(d).args(args));
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=minibox test CA",
    ]);
    ossl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`. While armed, it cuts a connection (both
/// ways) once `cut_after` bytes have gone from the upstream to the client on it, then
/// disarms itself: the next try goes through whole. Stopped on drop.
pub struct CuttingProxy {
    pub host: String,
    stop: Arc<AtomicBool>,
    armed: Arc<AtomicBool>,
    pub cuts: Arc<AtomicU64>,
}

impl CuttingProxy {
    pub fn start(upstream: &str, cut_after: u64) -> CuttingProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let host = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
        let stop = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(true));
        let cuts = Arc::new(AtomicU64::new(0));
        let (s, a, c) = (stop.clone(), armed.clone(), cuts.clone());
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            // Bounded: a test's proxy lives for a few seconds; 10 minutes is a hard stop.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match l.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(up) = TcpStream::connect(&upstream) else {
                            continue;
                        };
                        let (a, c) = (a.clone(), c.clone());
                        std::thread::spawn(move || relay(client, up, cut_after, a, c));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CuttingProxy {
            host,
            stop,
            armed,
            cuts,
        }
    }

    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(
    client: TcpStream,
    up: TcpStream,
    cut_after: u64,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicU64>,
) {
    let (mut c_read, mut u_write) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        while let Ok(n) = c_read.read(&mut buf) {
            if n == 0 || u_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = u_write.shutdown(Shutdown::Write);
    });
    let (mut u_read, mut c_write) = (up, client);
    let mut sent = 0u64;
    let mut buf = [0u8; 16 << 10];
    while let Ok(n) = u_read.read(&mut buf) {
        if n == 0 {
            break;
        }
        let mut n = n;
        let cut = armed.load(Ordering::Relaxed) && sent + n as u64 > cut_after;
        if cut {
            n = (cut_after - sent) as usize;
        }
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        if cut {
            armed.store(false, Ordering::Relaxed);
            cuts.fetch_add(1, Ordering::Relaxed);
            let _ = c_write.shutdown(Shutdown::Both);
            let _ = u_read.shutdown(Shutdown::Both);
            return;
        }
    }
    let _ = c_write.shutdown(Shutdown::Write);
}
