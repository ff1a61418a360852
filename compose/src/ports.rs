//! Port specs: the short syntax `[IP:][HOST:]CONTAINER[/PROTOCOL]` with ranges, as docker's
//! go-connections `nat.ParsePortSpec` reads it (which compose uses), expanded into the long
//! form; and `expose` entries. Pure parsing: returns a message the caller places.

use std::net::IpAddr;

use crate::model::Port;

/// Parses one short-syntax entry into one or more long-form ports (a range of container
/// ports is one port each), ordered as compose orders them.
pub(crate) fn parse_short(spec: &str) -> Result<Vec<Port>, String> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, protocol(p)?),
        None => (spec, "tcp".to_string()),
    };
    let (ip, host, ctr) = split_parts(rest);
    let host_ip = match ip {
        "" => None,
        ip => {
            let bare = ip
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .unwrap_or(ip);
            if bare.parse::<IpAddr>().is_err() {
                return Err(format!("invalid IP address {ip:?} in port {spec:?}"));
            }
            Some(bare.to_string())
        }
    };
    if ctr.is_empty() {
        return Err(format!("no container port in {spec:?}"));
    }
    let (c0, c1) =
        range(ctr).ok_or_else(|| format!("invalid container port {ctr:?} in {spec:?}"))?;
    let host_range = match host {
        "" => None,
        h => Some(range(h).ok_or_else(|| format!("invalid host port {h:?} in {spec:?}"))?),
    };
    let n = c1 - c0;
    if let Some((h0, h1)) = host_range {
        if n > 0 && h1 - h0 != n {
            return Err(format!(
                "invalid ranges for container and host ports in {spec:?}"
            ));
        }
    }
    let mut ports: Vec<Port> = (0..=n)
        .map(|i| {
            let target = (c0 + i) as u16;
            let published = match host_range {
                None => None,
                // A range of container ports maps onto the host range one to one; one
                // container port may take any port of a host range.
                Some((h0, _)) if n > 0 => Some((h0 + i).to_string()),
                Some(_) => Some(host.to_string()),
            };
            Port {
                target,
                published,
                host_ip: host_ip.clone(),
                protocol: proto.clone(),
                mode: "ingress".to_string(),
                name: None,
                app_protocol: None,
            }
        })
        .collect();
    // compose sorts the expanded ports by their "PORT/PROTO" key, as strings.
    ports.sort_by_key(|p| format!("{}/{}", p.target, p.protocol));
    Ok(ports)
}

/// `ip:host:ctr`, `host:ctr`, `ctr`; an IPv6 address may hold colons of its own.
fn split_parts(s: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = s.split(':').collect();
    let n = parts.len();
    match n {
        1 => ("", "", s),
        2 => ("", parts[0], parts[1]),
        _ => {
            let ctr_at = s.rfind(':').unwrap_or(0);
            let host_at = s[..ctr_at].rfind(':').unwrap_or(0);
            (&s[..host_at], &s[host_at + 1..ctr_at], &s[ctr_at + 1..])
        }
    }
}

pub(crate) fn protocol(p: &str) -> Result<String, String> {
    let p = p.to_ascii_lowercase();
    match p.as_str() {
        "tcp" | "udp" | "sctp" => Ok(p),
        _ => Err(format!("invalid protocol {p:?} (tcp, udp or sctp)")),
    }
}

/// `80` or `8000-8010`, each 1..=65535.
fn range(s: &str) -> Option<(u32, u32)> {
    let port = |p: &str| -> Option<u32> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v: u32 = p.parse().ok()?;
        (1..=65535).contains(&v).then_some(v)
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            (a <= b).then_some((a, b))
        }
        None => {
            let v = port(s)?;
            Some((v, v))
        }
    }
}

/// A published port of the long syntax: a port or a range.
pub(crate) fn published(s: &str) -> Result<String, String> {
    range(s)
        .map(|_| s.to_string())
        .ok_or_else(|| format!("invalid published port {s:?}"))
}

/// An `expose` entry: `3000`, `3000-3005`, optionally `/udp`.
pub(crate) fn expose(s: &str) -> Result<String, String> {
    let (ports, proto) = match s.rsplit_once('/') {
        Some((r, p)) => (r, Some(protocol(p)?)),
        None => (s, None),
    };
    range(ports).ok_or_else(|| format!("invalid port {s:?}"))?;
    Ok(match proto {
        Some(p) => format!("{ports}/{p}"),
        None => ports.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(target: u16, published: Option<&str>, ip: Option<&str>, proto: &str) -> Port {
        Port {
            target,
            published: published.map(str::to_string),
            host_ip: ip.map(str::to_string),
            protocol: proto.to_string(),
            mode: "ingress".to_string(),
            name: None,
            app_protocol: None,
        }
    }

    #[test]
    fn the_short_forms() {
        assert_eq!(parse_short("80").unwrap(), [one(80, None, None, "tcp")]);
        assert_eq!(
            parse_short("8080:80").unwrap(),
            [one(80, Some("8080"), None, "tcp")]
        );
        assert_eq!(
            parse_short("8080:80/udp").unwrap(),
            [one(80, Some("8080"), None, "udp")]
        );
        assert_eq!(
            parse_short("127.0.0.1:8001:8001").unwrap(),
            [one(8001, Some("8001"), Some("127.0.0.1"), "tcp")]
        );
        assert_eq!(
            parse_short("127.0.0.1::80").unwrap(),
            [one(80, None, Some("127.0.0.1"), "tcp")]
        );
        assert_eq!(
            parse_short("[::1]:6000:6000").unwrap(),
            [one(6000, Some("6000"), Some("::1"), "tcp")]
        );
        assert_eq!(
            parse_short("::1:6000:6000").unwrap(),
            [one(6000, Some("6000"), Some("::1"), "tcp")]
        );
        assert_eq!(
            parse_short("8000-8010:80").unwrap(),
            [one(80, Some("8000-8010"), None, "tcp")]
        );
    }

    #[test]
    fn ranges_expand_one_to_one() {
        assert_eq!(
            parse_short("9090-9091:8080-8081").unwrap(),
            [
                one(8080, Some("9090"), None, "tcp"),
                one(8081, Some("9091"), None, "tcp")
            ]
        );
        let r = parse_short("3000-3002").unwrap();
        assert_eq!(
            r.iter().map(|p| p.target).collect::<Vec<_>>(),
            [3000, 3001, 3002]
        );
        // compose orders the keys as strings: 1000 before 998.
        let r = parse_short("998-1000").unwrap();
        assert_eq!(
            r.iter().map(|p| p.target).collect::<Vec<_>>(),
            [1000, 998, 999]
        );
    }

    #[test]
    fn errors() {
        for (spec, msg) in [
            ("", "no container port in \"\""),
            ("80/icmp", "invalid protocol \"icmp\" (tcp, udp or sctp)"),
            (
                "8080:http",
                "invalid container port \"http\" in \"8080:http\"",
            ),
            ("70000:80", "invalid host port \"70000\" in \"70000:80\""),
            (
                "1.2.3:80:80",
                "invalid IP address \"1.2.3\" in port \"1.2.3:80:80\"",
            ),
            (
                "9090-9092:8080-8081",
                "invalid ranges for container and host ports in \"9090-9092:8080-8081\"",
            ),
        ] {
            assert_eq!(parse_short(spec).unwrap_err(), msg, "{spec}");
        }
    }

    #[test]
    fn expose_entries() {
        assert_eq!(expose("3000").unwrap(), "3000");
        assert_eq!(expose("3000-3005/UDP").unwrap(), "3000-3005/udp");
        assert!(expose("http").is_err());
    }
}
