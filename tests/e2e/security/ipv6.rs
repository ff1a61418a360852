//! A container's IPv6 router advertisement (CVE-2020-13401). A default container keeps
//! CAP_NET_RAW, as in Docker, so it can put any frame on the bridge; the probe sends a real
//! advertisement (a default router and an autonomous /64 prefix) from eth0 to all nodes, while
//! a second container on the bridge listens for it. The advertisement must reach that
//! neighbour (the attack happened) and change nothing: no address in the prefix and no route
//! through the attacker on the host, none in the neighbour.

use crate::common::*;
use crate::run::{code, mrun, mrun_cmd, setup, IMG, TIMEOUT};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BRIDGE: &str = "minibox0";

/// A unique ULA /64 whose groups all have four hex digits, so every address in it starts
/// with the same text: (prefix for the probe, "fdxx:xxxx:xxxx:xxxx:").
fn unique_prefix() -> (String, String) {
    let mut r = [0u8; 8];
    assert_eq!(unsafe { libc::getrandom(r.as_mut_ptr().cast(), 8, 0) }, 8);
    let g = |i: usize| 0x1000 + u16::from_le_bytes([r[i], r[i + 1]]) % 0xf000;
    let text = format!("fd{:02x}:{:04x}:{:04x}:{:04x}:", r[0], g(2), g(4), g(6));
    (format!("{text}:"), text)
}

/// The host's IPv6 addresses and routes an advertisement of `prefix` from `router` could
/// have made: anything in the prefix, any route via the router, any default route through
/// the bridge. (Other tests' containers come and go meanwhile: only these are attributable.)
fn attributable(prefix: &str, router: Option<&str>) -> Vec<String> {
    let mut out = vec![];
    for what in ["addr", "route"] {
        let o = Command::new("ip")
            .args(["-6", what, "show"])
            .output()
            .unwrap();
        assert!(o.status.success(), "ip -6 {what}: {}", text(&o.stderr));
        for l in text(&o.stdout).lines() {
            let l = l.trim();
            let via = router.is_some_and(|r| l.contains(&format!("via {r} ")));
            let default = l.starts_with("default") && l.contains(&format!("dev {BRIDGE} "));
            if l.contains(prefix) || via || default {
                out.push(l.to_string());
            }
        }
    }
    out
}

/// Takes away what the advertisement made on the host if the defence failed (it expires in
/// a minute anyway): routes learnt from advertisements on the bridge, and the prefix.
struct Undo {
    prefix: String,
}

impl Drop for Undo {
    fn drop(&mut self) {
        let ip = |args: &[&str]| {
            let _ = Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        ip(&["-6", "route", "flush", "dev", BRIDGE, "proto", "ra"]);
        ip(&["-6", "route", "flush", &format!("{}/64", self.prefix)]);
        ip(&["-6", "addr", "flush", "dev", BRIDGE, "scope", "global"]);
    }
}

#[test]
fn a_router_advertisement_from_a_container_changes_neither_the_host_nor_its_neighbours() {
    let Some(env) = setup() else { return };
    if skip_unless(
        Path::new("/proc/sys/net/ipv6").exists(),
        "the kernel has no IPv6 (ipv6.disable=1)",
    ) || skip_unless(have("ip"), "ip (iproute2) missing")
    {
        return;
    }
    let (prefix, text_of_prefix) = unique_prefix();
    let _undo = Undo {
        prefix: prefix.clone(),
    };
    let before = attributable(&text_of_prefix, None);

    // The neighbour: listens on eth0, then reports its own IPv6 addresses.
    let mut c = mrun_cmd(&env);
    c.args(["--rm", IMG, "/probe", "ra-listen", &prefix, "60"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut neighbour = c.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = neighbour.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let kill = |n: &mut std::process::Child| {
        let _ = n.kill();
        let _ = n.wait();
    };
    match rx.recv_timeout(TIMEOUT) {
        Ok(l) if l == "listening" => {}
        other => {
            kill(&mut neighbour);
            panic!("the neighbour did not start listening: {other:?}");
        }
    }

    // The attacker.
    let o = mrun(&env, &[IMG, "/probe", "ra-attack", &prefix]);
    if !o.status.success() {
        kill(&mut neighbour);
        panic!(
            "ra-attack failed ({}): {}{}",
            code(&o),
            text(&o.stdout),
            text(&o.stderr)
        );
    }
    let out = text(&o.stdout);
    let router = out
        .trim()
        .strip_prefix("sent router advertisement from ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();

    let deadline = Instant::now() + TIMEOUT;
    while neighbour.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if neighbour.try_wait().unwrap().is_none() {
        kill(&mut neighbour);
        panic!("the neighbour still runs after {TIMEOUT:?}");
    }
    reader.join().unwrap();
    let heard: Vec<String> = rx.try_iter().collect();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut neighbour.stderr.take().unwrap(), &mut err).unwrap();
    // The control: the advertisement went over the bridge.
    assert!(
        heard.contains(&format!("seen from {router}")),
        "the neighbour never saw the advertisement: {heard:?} {err}"
    );
    let taken: Vec<&String> = heard
        .iter()
        .filter(|l| l.starts_with("inet6 ") && l.contains(&text_of_prefix))
        .collect();

    // The host: the neighbour waited 2 s after the advertisement; a little longer here.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let now = attributable(&text_of_prefix, Some(&router));
        let host: Vec<&String> = now.iter().filter(|l| !before.contains(l)).collect();
        assert!(
            host.is_empty() && taken.is_empty(),
            "a container's router advertisement configured the host: {host:?}, and its \
             neighbour: {taken:?}"
        );
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
