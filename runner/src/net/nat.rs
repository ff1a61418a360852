//! Outbound NAT and forwarding for the bridge, through the firewall tools: `nft` when it is
//! on PATH (a table of our own, replaced atomically), else `iptables` (rules tagged with a
//! comment and recorded, so teardown removes exactly what was added). It must not touch
//! links or leases.
//!
//! Forwarding on hosts whose iptables FORWARD policy is DROP (every Docker host): a chain in
//! a table of our own cannot help there, because a packet must be accepted by every base
//! chain on the hook and a drop anywhere is final. So when that policy is DROP we insert
//! two ACCEPT rules at the top of iptables' FORWARD chain (out of the bridge; back in for
//! established flows), as CNI's and netavark's iptables drivers do, and remove them with
//! the rest. A drop policy in some other nftables table (say `inet filter` from
//! /etc/nftables.conf) is the admin's to open: we do not edit other tables.

use super::NetConfig;
use crate::error::{Error, IoContext, Result};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The file naming the iptables rules we added, one `TABLE ARG...` per line.
const RULES: &str = "iptables-rules";

/// An executable on PATH, or in the sbin directories a non-login PATH often lacks.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
}

/// The firewall tools found on this host. Tests hide `nft` to exercise the iptables path.
#[derive(Clone, Debug, Default)]
pub struct Tools {
    pub nft: Option<PathBuf>,
    pub iptables: Option<PathBuf>,
}

impl Tools {
    pub fn find() -> Tools {
        Tools {
            nft: find_tool("nft"),
            iptables: find_tool("iptables"),
        }
    }
}

/// Run `tool args` (with `stdin` fed when given); a failure is `tool: <first line of its
/// stderr>`.
pub(super) fn run(tool: &PathBuf, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let name = tool
        .file_name()
        .map_or("tool".into(), |n| n.to_string_lossy().into_owned());
    let mut c = Command::new(tool);
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .map_err(|e| Error::invalid(format!("{name}: {}", layers::error::io_message(&e))))?;
    if let Some(text) = stdin {
        let mut w = child.stdin.take().expect("piped");
        // A tool that exits early closes the pipe; its stderr says why.
        let _ = w.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::invalid(format!("{name}: {}", layers::error::io_message(&e))))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().map(str::trim).find(|l| !l.is_empty());
    let line = line.map_or_else(
        || format!("exited with {}", out.status),
        |l| l.strip_prefix("Error: ").unwrap_or(l).to_string(),
    );
    Err(Error::invalid(format!("{name}: {line}")))
}

/// The nftables script that (re)creates our table: `add` then `delete` makes the delete
/// succeed whether or not the table existed, and the whole script is one transaction, so
/// the table is replaced atomically and never duplicated.
pub fn nft_script(cfg: &NetConfig) -> String {
    let t = &cfg.table;
    format!(
        "add table ip {t}\n\
         delete table ip {t}\n\
         table ip {t} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {net} oifname != \"{br}\" masquerade\n\
         \t}}\n\
         }}\n",
        net = cfg.subnet,
        br = cfg.bridge,
    )
}

/// Masquerade the subnet leaving by any interface but the bridge (bridged traffic passes
/// the hooks too when br_netfilter is loaded: it must keep its addresses), and open
/// forwarding where iptables drops it.
pub fn ensure(cfg: &NetConfig, tools: &Tools) -> Result<()> {
    let iptables = &tools.iptables;
    if let Some(nft) = &tools.nft {
        run(nft, &["-f", "-"], Some(&nft_script(cfg)))?;
    } else if let Some(ipt) = iptables {
        let spec = masquerade_rule(cfg);
        add_rule(cfg, ipt, "nat", "-A", "POSTROUTING", &spec)?;
    } else {
        return Err(Error::invalid(
            "neither nft nor iptables was found: outbound NAT needs one of them",
        ));
    }
    if let Some(ipt) = iptables {
        let forward = run(ipt, &["-w", "-t", "filter", "-S", "FORWARD"], None)?;
        if forward.lines().any(|l| l.trim() == "-P FORWARD DROP") {
            for spec in forward_rules(cfg) {
                add_rule(cfg, ipt, "filter", "-I", "FORWARD", &spec)?;
            }
        }
    }
    Ok(())
}

fn masquerade_rule(cfg: &NetConfig) -> Vec<String> {
    let s = |x: &str| x.to_string();
    vec![
        s("POSTROUTING"),
        s("-s"),
        cfg.subnet.to_string(),
        s("!"),
        s("-o"),
        cfg.bridge.clone(),
        s("-m"),
        s("comment"),
        s("--comment"),
        cfg.table.clone(),
        s("-j"),
        s("MASQUERADE"),
    ]
}

fn forward_rules(cfg: &NetConfig) -> Vec<Vec<String>> {
    let words = |s: String| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    let (br, t) = (&cfg.bridge, &cfg.table);
    vec![
        words(format!(
            "FORWARD -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment {t} -j ACCEPT"
        )),
        words(format!("FORWARD -i {br} -m comment --comment {t} -j ACCEPT")),
    ]
}

/// Add `spec` (chain first) to `table` unless it is there, and record it.
fn add_rule(
    cfg: &NetConfig,
    ipt: &PathBuf,
    table: &str,
    how: &str,
    chain: &str,
    spec: &[String],
) -> Result<()> {
    debug_assert_eq!(spec[0], chain);
    let mut check = vec!["-w", "-t", table, "-C"];
    check.extend(spec.iter().map(String::as_str));
    if run(ipt, &check, None).is_err() {
        let mut add = vec!["-w", "-t", table, how];
        add.extend(spec.iter().map(String::as_str));
        run(ipt, &add, None)?;
    }
    let line = format!("{table} {}", spec.join(" "));
    let p = cfg.dir.join(RULES);
    let known = std::fs::read_to_string(&p).unwrap_or_default();
    if !known.lines().any(|l| l == line) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&p)
            .ctx("open", &p)?;
        writeln!(f, "{line}").ctx("write", &p)?;
    }
    Ok(())
}

/// Remove our table and every iptables rule we recorded. Missing pieces are fine: teardown
/// also runs after a reboot or a half-done setup. Returns the first failure, after trying
/// everything.
pub fn teardown(cfg: &NetConfig, tools: &Tools) -> Result<()> {
    let mut first = None;
    if let Some(nft) = &tools.nft {
        let t = &cfg.table;
        let script = format!("add table ip {t}\ndelete table ip {t}\n");
        if let Err(e) = run(nft, &["-f", "-"], Some(&script)) {
            first.get_or_insert(e);
        }
    }
    let p = cfg.dir.join(RULES);
    match std::fs::read_to_string(&p) {
        Ok(text) => {
            if let Some(ipt) = &tools.iptables {
                for line in text.lines() {
                    let mut w = line.split(' ');
                    let Some(table) = w.next() else { continue };
                    let spec: Vec<&str> = w.collect();
                    let mut check = vec!["-w", "-t", table, "-C"];
                    check.extend(&spec);
                    // Delete every copy (a rule added twice by hand stays ours).
                    while run(ipt, &check, None).is_ok() {
                        let mut del = vec!["-w", "-t", table, "-D"];
                        del.extend(&spec);
                        if let Err(e) = run(ipt, &del, None) {
                            first.get_or_insert(e);
                            break;
                        }
                    }
                }
            }
            if let Err(e) = std::fs::remove_file(&p) {
                first.get_or_insert(Error::Io {
                    op: "remove",
                    path: p,
                    source: e,
                });
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            first.get_or_insert(Error::Io {
                op: "read",
                path: p,
                source: e,
            });
        }
    }
    first.map_or(Ok(()), Err)
}

/// Turn on IPv4 forwarding in the host's namespace when it is off; NAT needs it.
///
/// It is left on at teardown, as Docker and Podman leave it: it is one host-wide switch,
/// and whoever else started forwarding after us (another runtime, libvirt, a VPN) saw it
/// on, did not record that it needs it, and would be cut off if we switched it back.
pub fn enable_ip_forward() -> Result<()> {
    let p = "/proc/sys/net/ipv4/ip_forward";
    let v = std::fs::read_to_string(p).ctx("read", p)?;
    if v.trim() != "1" {
        std::fs::write(p, "1").ctx("enable IPv4 forwarding: write", p)?;
    }
    Ok(())
}
