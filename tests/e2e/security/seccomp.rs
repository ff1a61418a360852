//! Docker's default seccomp profile, attacked from inside a container (issue 10): calls the
//! profile refuses that minibox's older deny list let through — io_uring, personas other
//! than the few Docker allows, AF_VSOCK and AF_ALG sockets — each made raw by the probe
//! (`probe calls`), with an unconfined container as the control that shows the same call
//! gets past where no filter stops it. The rule-by-rule comparison with Docker's profile is
//! in runner/src/seccomp's unit tests; this file only drives the real binaries.

use crate::common::*;
use crate::run::{mrun_ok, setup, IMG};
use std::collections::BTreeMap;

const UNCONFINED: [&str; 2] = ["--security-opt", "seccomp=unconfined"];

/// `probe calls SPEC...` in a container with `flags`: each spec's errno (0: it succeeded).
fn calls(env: &Env, flags: &[&str], specs: &[&str]) -> BTreeMap<String, i32> {
    let mut a = vec!["--net", "none"];
    a.extend_from_slice(flags);
    a.extend([IMG, "/probe", "calls"]);
    a.extend_from_slice(specs);
    let out = mrun_ok(env, &a);
    let got: BTreeMap<String, i32> = out
        .lines()
        .map(|l| {
            let (spec, e) = l.rsplit_once(' ').unwrap();
            (spec.to_string(), e.parse().unwrap())
        })
        .collect();
    assert_eq!(got.len(), specs.len(), "{out}");
    got
}

/// io_uring runs file and socket operations the filter never sees (its submissions are
/// not system calls), and has been the way out of many containers: Docker refuses all of it
/// since 25.0 (moby#46762).
#[test]
fn io_uring_is_refused_by_the_default_filter() {
    let Some(env) = setup() else { return };
    let specs = [
        "io_uring_setup:1",
        "io_uring_enter:-1",
        "io_uring_register:-1",
    ];
    let confined = calls(&env, &[], &specs);
    for s in specs {
        assert_eq!(confined[s], libc::EPERM, "{s} in a default container");
    }
    // Control: unconfined, enter and register on no ring fail in the kernel (EBADF, EINVAL),
    // and setup makes a ring, unless this host turned io_uring off
    // (kernel.io_uring_disabled, which answers EPERM itself).
    let free = calls(&env, &UNCONFINED, &specs);
    assert_ne!(free["io_uring_enter:-1"], libc::EPERM);
    assert_ne!(free["io_uring_register:-1"], libc::EPERM);
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "0".into());
    let setup_errno = if disabled == "0" { 0 } else { libc::EPERM };
    assert_eq!(
        free["io_uring_setup:1"], setup_errno,
        "unconfined io_uring_setup"
    );
}

/// personality(2) can turn on READ_IMPLIES_EXEC (every readable mapping executable) or
/// switch off address randomisation for what the process runs next. Docker allows only
/// PER_LINUX and PER_LINUX32, each also with UNAME26, and the 0xffffffff query.
#[test]
fn personality_allows_only_dockers_personas() {
    let Some(env) = setup() else { return };
    let allowed = [
        "personality:0",
        "personality:0x8",
        "personality:0x20000",
        "personality:0x20008",
        "personality:0xffffffff",
    ];
    // READ_IMPLIES_EXEC, READ_IMPLIES_EXEC | PER_LINUX32, ADDR_NO_RANDOMIZE, PER_SVR4.
    let refused = [
        "personality:0x400000",
        "personality:0x400008",
        "personality:0x40000",
        "personality:0x1",
    ];
    let all: Vec<&str> = allowed.iter().chain(&refused).copied().collect();
    let confined = calls(&env, &[], &all);
    for s in allowed {
        assert_eq!(confined[s], 0, "{s} in a default container");
    }
    for s in refused {
        assert_eq!(confined[s], libc::EPERM, "{s} in a default container");
    }
    // Control: without the filter the kernel takes every one of them.
    let free = calls(&env, &UNCONFINED, &refused);
    for s in refused {
        assert_eq!(free[s], 0, "{s} unconfined");
    }
}

/// AF_VSOCK reaches the host and every VM on it by CID, whatever the container's network
/// namespace; AF_ALG is the kernel crypto API behind CVE-2026-31431 ("Copy Fail"). Docker's
/// profile allows socket(2) for every other family the kernel still has.
#[test]
fn vsock_and_alg_sockets_are_refused() {
    let Some(env) = setup() else { return };
    // AF_VSOCK stream, AF_ALG seqpacket.
    let refused = ["socket:40:1:0", "socket:38:5:0"];
    // AF_UNIX stream, AF_INET datagram, AF_NETLINK route: what programs use.
    let allowed = ["socket:1:1:0", "socket:2:2:0", "socket:16:3:0"];
    let all: Vec<&str> = refused.iter().chain(&allowed).copied().collect();
    let confined = calls(&env, &[], &all);
    for s in refused {
        assert_eq!(confined[s], libc::EPERM, "{s} in a default container");
    }
    for s in allowed {
        assert_eq!(confined[s], 0, "{s} in a default container");
    }
    // Control: unconfined, the kernel decides (a socket, or EAFNOSUPPORT where the family's
    // module is not loaded), never EPERM.
    let free = calls(&env, &UNCONFINED, &refused);
    for s in refused {
        assert_ne!(free[s], libc::EPERM, "{s} unconfined");
    }
}
