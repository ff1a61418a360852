//! Rootless networking: slirp4netns(1) gives the container's network namespace a tap0 with
//! 10.0.2.100/24, a gateway at 10.0.2.2 and a DNS forwarder at 10.0.2.3, all in user space,
//! and forwards published ports through its API socket. It must not need root, and must not
//! touch the host's links or firewall.

use super::nat::find_tool;
use super::publish::{Proto, Publish};
use crate::error::{Error, IoContext, Result};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The container's address on tap0 (`--configure`).
pub const SLIRP_GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
/// The host as the container sees it.
pub const SLIRP_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// slirp4netns's DNS forwarder to the host's resolvers; give it to `resolv_conf` as `dns`.
pub const SLIRP_DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const SOCKET: &str = "slirp.sock";
const LOG: &str = "slirp4netns.log";

/// slirp4netns is installed and we may open tap devices (some hosts make /dev/net/tun
/// root-only, 0600, and slirp4netns then fails with "open("/dev/net/tun"): permission
/// denied").
pub fn slirp_available() -> bool {
    slirp_problem().is_none()
}

/// Why slirp4netns cannot serve a container here, if it cannot.
pub fn slirp_problem() -> Option<String> {
    if find_tool("slirp4netns").is_none() {
        return Some("slirp4netns is not installed".to_string());
    }
    // SAFETY: access(2) on a constant path.
    let tun = unsafe { libc::access(c"/dev/net/tun".as_ptr(), libc::R_OK | libc::W_OK) } == 0;
    if !tun {
        return Some(format!(
            "/dev/net/tun is not usable by uid {} (slirp4netns needs it)",
            unsafe { libc::geteuid() }
        ));
    }
    None
}

/// A running slirp4netns for one container. Dropping it ends slirp4netns (its exit fd is
/// closed) and reaps it.
pub struct Slirp {
    child: Child,
    exit: Option<OwnedFd>,
    /// run_dir, open: the API socket is reached through /proc/self/fd/N/slirp.sock, so a
    /// deep run_dir does not overflow sun_path (108 bytes).
    dir: File,
    ports: Vec<Publish>,
}

/// Start slirp4netns for the network namespace of `pid`, wait until tap0 is configured and
/// forward `ports` (IPv4 host addresses only; host port 0 picks a free one). The API socket
/// and slirp4netns's log (`slirp4netns.log`) go in `run_dir`.
pub fn start_slirp(pid: i32, ports: &[Publish], run_dir: &Path) -> Result<Slirp> {
    let tool = find_tool("slirp4netns")
        .ok_or_else(|| Error::invalid("slirp4netns not found: rootless networking needs it"))?;
    let ports = ports
        .iter()
        .map(|p| {
            claimable(p).map(|port| Publish {
                host_port: port,
                ..*p
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let ns_user = format!("/proc/{pid}/ns/user");
    let own_userns = std::fs::metadata(&ns_user).ctx("stat", &ns_user)?.ino()
        != std::fs::metadata("/proc/self/ns/user")
            .ctx("stat", "/proc/self/ns/user")?
            .ino();
    let dir = File::open(run_dir).ctx("open", run_dir)?;
    let log_path = run_dir.join(LOG);
    let log = File::create(&log_path).ctx("create", &log_path)?;
    let (ready_r, ready_w) = pipe()?;
    let (exit_r, exit_w) = pipe()?;

    let mut c = Command::new(&tool);
    c.arg("--configure")
        .arg("--mtu=65520")
        .arg("--disable-host-loopback")
        .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
        .arg(format!("--exit-fd={}", exit_r.as_raw_fd()))
        .arg(format!("--api-socket={SOCKET}"));
    if own_userns {
        c.arg(format!("--userns-path={ns_user}"));
    }
    c.arg(pid.to_string())
        .arg("tap0")
        .current_dir(run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // Its own process group: a ^C on the terminal is for the container (mrun forwards
        // it), not a reason to cut the container's network.
        .process_group(0);
    let keep = [ready_w.as_raw_fd(), exit_r.as_raw_fd()];
    // SAFETY: between fork and exec only fcntl(2), which is async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            for fd in keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = c.spawn().map_err(|e| Error::Sys("start slirp4netns", e))?;
    // Only slirp4netns may hold these ends: its EOF on the exit fd is our Drop.
    drop(ready_w);
    drop(exit_r);
    let mut slirp = Slirp {
        child,
        exit: Some(exit_w),
        dir,
        ports: Vec::new(),
    };
    slirp.wait_ready(ready_r, &log_path)?;
    for p in ports {
        slirp.add_hostfwd(&p)?;
    }
    Ok(slirp)
}

impl Slirp {
    /// The forwarded ports, with the host ports chosen for host port 0.
    pub fn ports(&self) -> &[Publish] {
        &self.ports
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self, ready: OwnedFd, log: &Path) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: ready.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
            if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if r < 0 {
                return Err(Error::last_os("wait for slirp4netns"));
            }
            if r == 0 {
                return Err(Error::invalid(format!(
                    "slirp4netns did not get ready within {}s (see {})",
                    READY_TIMEOUT.as_secs(),
                    log.display()
                )));
            }
            let mut b = [0u8; 1];
            let mut f = File::from(ready);
            return match f.read(&mut b) {
                Ok(1) => Ok(()),
                _ => {
                    // It died: reap it and let its stderr say why.
                    let status = self.child.wait().ok();
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    let why = text
                        .lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty() && !l.starts_with("api_handler"))
                        .map(str::to_string)
                        .or_else(|| status.map(|s| format!("exited with {s}")))
                        .unwrap_or_else(|| "exited".into());
                    Err(Error::invalid(format!("slirp4netns: {why}")))
                }
            };
        }
    }

    /// Forward host `p.host_ip:p.host_port` to the container's `p.container_port`.
    pub fn add_hostfwd(&mut self, p: &Publish) -> Result<()> {
        let req = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": p.proto.as_str(),
                "host_addr": p.host_ip.to_string(),
                "host_port": p.host_port,
                "guest_port": p.container_port,
            }
        });
        let fail = |why: String| Error::invalid(format!("publish {p}: slirp4netns: {why}"));
        let path = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET}", self.dir.as_raw_fd()));
        let mut s = UnixStream::connect(&path).map_err(|e| {
            fail(format!(
                "connect to its API socket: {}",
                layers::error::io_message(&e)
            ))
        })?;
        s.set_read_timeout(Some(READY_TIMEOUT)).ok();
        // slirp4netns reads a request with one read(2) and answers, then closes.
        let mut reply = String::new();
        s.write_all(req.to_string().as_bytes())
            .and_then(|()| s.read_to_string(&mut reply))
            .map_err(|e| fail(layers::error::io_message(&e)))?;
        let v: serde_json::Value = serde_json::from_str(&reply)
            .map_err(|_| fail(format!("unexpected reply {reply:?}")))?;
        if let Some(err) = v.get("error") {
            let desc = err.get("desc").and_then(|d| d.as_str()).unwrap_or("error");
            return Err(fail(desc.to_string()));
        }
        self.ports.push(*p);
        Ok(())
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        self.exit.take();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        // SAFETY: unlinkat relative to our own directory fd.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), c"slirp.sock".as_ptr(), 0) };
    }
}

/// The host port `p` will use, checked free now so that a port in use reads like the
/// bridge's proxy error ("publish ...: address already in use") instead of slirp4netns's
/// "slirp_add_hostfwd failed". Port 0 becomes a free port.
fn claimable(p: &Publish) -> Result<u16> {
    let fail = |e: std::io::Error| {
        Error::invalid(format!("publish {p}: {}", layers::error::io_message(&e)))
    };
    if !matches!(p.host_ip, IpAddr::V4(_)) {
        return Err(Error::invalid(format!(
            "publish {p}: rootless networking (slirp4netns) publishes on IPv4 addresses only"
        )));
    }
    let port = match p.proto {
        Proto::Tcp => TcpListener::bind(p.host_addr()).and_then(|l| l.local_addr()),
        Proto::Udp => UdpSocket::bind(p.host_addr()).and_then(|u| u.local_addr()),
    }
    .map_err(fail)?
    .port();
    Ok(port)
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::last_os("pipe"));
    }
    // SAFETY: both are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
