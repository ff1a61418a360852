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
}

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-pass";

pub struct Registry {
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`
    pub host: String,
    pub flavour: Flavour,
    child: Child,
}

/// Whether the tools a registry test needs are here; says why not (CI installs them).
pub fn available(flavour: Flavour) -> bool {
    let mut tools = vec!["docker-registry", "curl"];
    match flavour {
        Flavour::Plain => {}
        Flavour::Basic => tools.push("htpasswd"),
        Flavour::Tls => tools.push("openssl"),
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
            Flavour::Basic => vec![format!("--creds={USER}:{PASSWORD}")],
            _ => vec![],
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
