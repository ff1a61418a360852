//! Seccomp: profiles in Docker's JSON format (`--security-opt seccomp=profile.json`), a
//! built-in default with the effect of Docker's, and the compiler from a profile to the BPF
//! program the container's child loads just before it drops its privileges.
//!
//! The compiler is hand-written (small, and what decides which system calls a container may
//! make): one block per rule, in the profile's order, the first rule that matches decides.
//! A block loads the system call number, compares it, then tests each argument condition on
//! both 32-bit halves of the 64-bit argument. Calls from another architecture (32-bit
//! int 0x80, x32) never reach the rules: they are refused outright, as the rules are written
//! for x86_64 numbers.
//!
//! `syscalls.rs` is the x86_64 table, regenerated with:
//! `grep -E '^#define __NR_' /usr/include/x86_64-linux-gnu/asm/unistd_64.h` (see its header).

mod syscalls;

use crate::error::{Error, Result};
use serde::Deserialize;

/// Capability names, by number (linux/capability.h).
pub const CAP_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A capability's number from "SYS_ADMIN", "CAP_SYS_ADMIN" or "sys_admin".
pub fn cap_number(name: &str) -> Option<u32> {
    let up = name.to_ascii_uppercase();
    let bare = up.strip_prefix("CAP_").unwrap_or(&up);
    CAP_NAMES.iter().position(|c| *c == bare).map(|i| i as u32)
}

/// The number of a system call on x86_64.
pub fn syscall_number(name: &str) -> Option<i64> {
    syscalls::SYSCALLS
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| syscalls::SYSCALLS[i].1)
}

/// A profile in Docker's format (the fields minibox reads; others are ignored).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub names: Vec<String>,
    /// The old single-name form.
    #[serde(default)]
    pub name: Option<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    pub includes: Filter,
    #[serde(default)]
    pub excludes: Filter,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

impl Profile {
    /// Read a profile; errors name the file.
    pub fn parse(text: &str, file: &str) -> Result<Profile> {
        serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("seccomp profile {file}: {e}")))
    }
}

/// The clone(2) flags that make namespaces: without CAP_SYS_ADMIN a container may not.
const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

fn rule(names: &[&str], action: &str, errno: Option<u32>, unless_cap: Option<&str>) -> Rule {
    Rule {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: action.to_string(),
        errno_ret: errno,
        excludes: Filter {
            caps: unless_cap.map(|c| vec![c.to_string()]).unwrap_or_default(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// minibox's default: everything is allowed but what Docker's default profile keeps from a
/// container — kernel keyrings, BPF, perf, userfaultfd, modules, kexec, reboot, swap,
/// accounting, the clock, I/O ports, NUMA policy, handles — and, unless the container has the
/// capability that makes them safe, namespaces and mounts (CAP_SYS_ADMIN), tracing other
/// processes' memory (CAP_SYS_PTRACE), the kernel log (CAP_SYSLOG), and so on. clone3 gets
/// ENOSYS (its flags are behind a pointer a filter cannot read), so libc falls back to
/// clone, whose namespace flags are checked.
pub fn default_profile() -> Profile {
    const EPERM: Option<u32> = Some(libc::EPERM as u32);
    let deny = |names: &[&str]| rule(names, "SCMP_ACT_ERRNO", EPERM, None);
    let deny_unless = |cap: &str, names: &[&str]| rule(names, "SCMP_ACT_ERRNO", EPERM, Some(cap));
    let mut clone_ok = rule(&["clone"], "SCMP_ACT_ALLOW", None, None);
    clone_ok.args = vec![Arg {
        index: 0,
        value: CLONE_NS_FLAGS,
        value_two: 0,
        op: "SCMP_CMP_MASKED_EQ".into(),
    }];
    Profile {
        default_action: "SCMP_ACT_ALLOW".into(),
        default_errno_ret: None,
        architectures: vec!["SCMP_ARCH_X86_64".into()],
        syscalls: vec![
            deny(&[
                "acct",
                "add_key",
                "bpf",
                "clock_adjtime",
                "clock_settime",
                "create_module",
                "delete_module",
                "finit_module",
                "get_kernel_syms",
                "get_mempolicy",
                "init_module",
                "ioperm",
                "iopl",
                "kexec_file_load",
                "kexec_load",
                "keyctl",
                "lookup_dcookie",
                "mbind",
                "move_pages",
                "name_to_handle_at",
                "nfsservctl",
                "open_by_handle_at",
                "perf_event_open",
                "query_module",
                "quotactl",
                "quotactl_fd",
                "reboot",
                "request_key",
                "set_mempolicy",
                "set_mempolicy_home_node",
                "settimeofday",
                "swapoff",
                "swapon",
                "_sysctl",
                "sysfs",
                "uselib",
                "userfaultfd",
                "ustat",
                "vm86",
                "vm86old",
            ]),
            deny_unless(
                "CAP_SYS_ADMIN",
                &[
                    "mount",
                    "umount",
                    "umount2",
                    "pivot_root",
                    "setns",
                    "unshare",
                    "fsopen",
                    "fsconfig",
                    "fsmount",
                    "fspick",
                    "open_tree",
                    "move_mount",
                    "mount_setattr",
                    "lsm_set_self_attr",
                ],
            ),
            clone_ok,
            deny_unless("CAP_SYS_ADMIN", &["clone"]),
            rule(
                &["clone3"],
                "SCMP_ACT_ERRNO",
                Some(libc::ENOSYS as u32),
                Some("CAP_SYS_ADMIN"),
            ),
            deny_unless(
                "CAP_SYS_PTRACE",
                &[
                    "kcmp",
                    "process_vm_readv",
                    "process_vm_writev",
                    "pidfd_getfd",
                ],
            ),
            deny_unless("CAP_SYSLOG", &["syslog"]),
            deny_unless("CAP_SYS_TTY_CONFIG", &["vhangup"]),
            deny_unless("CAP_SYS_TIME", &["stime", "adjtimex"]),
        ],
    }
}

/// What a container's state records of its filter: "default", "unconfined", or a
/// profile's JSON text; compiled for the container's capabilities.
pub fn program_for(source: &str, caps: u64) -> Result<Option<Program>> {
    match source {
        "unconfined" => Ok(None),
        "" | "default" => compile(&default_profile(), caps).map(Some),
        json => compile(&Profile::parse(json, "(recorded profile)")?, caps).map(Some),
    }
}

/// The program: classic BPF, as `struct sock_filter` (code, jt, jf, k).
pub type Program = Vec<libc::sock_filter>;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg(i: u32, high: bool) -> u32 {
    16 + 8 * i + if high { 4 } else { 0 }
}

fn action(name: &str, errno: Option<u32>, default_errno: Option<u32>) -> Result<u32> {
    let e = errno.or(default_errno).unwrap_or(libc::EPERM as u32) & 0xffff;
    Ok(match name {
        "SCMP_ACT_ALLOW" => RET_ALLOW,
        "SCMP_ACT_ERRNO" => RET_ERRNO | e,
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => RET_TRAP,
        "SCMP_ACT_LOG" => RET_LOG,
        "SCMP_ACT_TRACE" => RET_TRACE | e,
        other => {
            return Err(Error::invalid(format!(
                "seccomp action {other:?} is not supported"
            )))
        }
    })
}

/// A jump target inside one rule's block.
#[derive(Clone, Copy)]
enum To {
    /// The next instruction.
    On,
    /// The end of this rule: it does not match.
    Fail,
    /// Skip this many instructions.
    Skip(u8),
}

struct Insn {
    code: u16,
    jt: To,
    jf: To,
    k: u32,
}

fn ld(off: u32) -> Insn {
    Insn {
        code: LD_W_ABS,
        jt: To::On,
        jf: To::On,
        k: off,
    }
}

fn jmp(code: u16, k: u32, jt: To, jf: To) -> Insn {
    Insn { code, jt, jf, k }
}

/// The instructions testing one argument condition; a failed test jumps to `Fail`.
fn condition(a: &Arg) -> Result<Vec<Insn>> {
    if a.index > 5 {
        return Err(Error::invalid(format!(
            "seccomp argument index {} out of range (0-5)",
            a.index
        )));
    }
    let (lo, hi) = (off_arg(a.index, false), off_arg(a.index, true));
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (vlo, vhi) = split(a.value);
    use To::*;
    Ok(match a.op.as_str() {
        "SCMP_CMP_EQ" => vec![
            ld(lo),
            jmp(JEQ_K, vlo, On, Fail),
            ld(hi),
            jmp(JEQ_K, vhi, On, Fail),
        ],
        "SCMP_CMP_NE" => vec![
            ld(lo),
            jmp(JEQ_K, vlo, On, Skip(2)),
            ld(hi),
            jmp(JEQ_K, vhi, Fail, On),
        ],
        "SCMP_CMP_MASKED_EQ" => {
            let (mlo, mhi) = (vlo, vhi);
            let (wlo, whi) = split(a.value_two);
            vec![
                ld(lo),
                Insn {
                    code: AND_K,
                    jt: On,
                    jf: On,
                    k: mlo,
                },
                jmp(JEQ_K, wlo, On, Fail),
                ld(hi),
                Insn {
                    code: AND_K,
                    jt: On,
                    jf: On,
                    k: mhi,
                },
                jmp(JEQ_K, whi, On, Fail),
            ]
        }
        "SCMP_CMP_GT" | "SCMP_CMP_GE" => vec![
            ld(hi),
            jmp(JGT_K, vhi, Skip(3), On),
            jmp(JEQ_K, vhi, On, Fail),
            ld(lo),
            jmp(
                if a.op == "SCMP_CMP_GT" { JGT_K } else { JGE_K },
                vlo,
                On,
                Fail,
            ),
        ],
        "SCMP_CMP_LT" | "SCMP_CMP_LE" => vec![
            ld(hi),
            jmp(JGT_K, vhi, Fail, On),
            jmp(JEQ_K, vhi, On, Skip(2)),
            ld(lo),
            jmp(
                if a.op == "SCMP_CMP_LT" { JGE_K } else { JGT_K },
                vlo,
                Fail,
                On,
            ),
        ],
        other => {
            return Err(Error::invalid(format!(
                "seccomp comparison {other:?} is not supported"
            )))
        }
    })
}

fn kernel_at_least(min: &str) -> bool {
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills our struct.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return true;
    }
    let rel = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }.to_string_lossy();
    let nums = |s: &str| -> Vec<u32> {
        s.split(|c: char| !c.is_ascii_digit())
            .take(2)
            .map(|x| x.parse().unwrap_or(0))
            .collect()
    };
    nums(&rel) >= nums(min)
}

fn arch_ok(arches: &[String]) -> bool {
    arches.is_empty()
        || arches
            .iter()
            .any(|a| matches!(a.as_str(), "amd64" | "x86_64" | "SCMP_ARCH_X86_64"))
}

/// Whether `rule` applies to a container with capabilities `caps` (Docker's includes and
/// excludes: any listed capability includes or excludes it).
fn applies(rule: &Rule, caps: u64) -> bool {
    let has = |c: &String| cap_number(c).is_some_and(|n| caps & (1 << n) != 0);
    if !rule.includes.caps.is_empty() && !rule.includes.caps.iter().any(has) {
        return false;
    }
    if rule.excludes.caps.iter().any(has) {
        return false;
    }
    if !arch_ok(&rule.includes.arches) {
        return false;
    }
    if rule
        .excludes
        .arches
        .iter()
        .any(|a| arch_ok(std::slice::from_ref(a)))
    {
        return false;
    }
    if let Some(k) = &rule.includes.min_kernel {
        if !kernel_at_least(k) {
            return false;
        }
    }
    true
}

/// Compile `p` for a container with capabilities `caps`. Names unknown on x86_64 (other
/// architectures' calls, or newer than this table) are skipped, as runc skips them.
pub fn compile(p: &Profile, caps: u64) -> Result<Program> {
    if !p.architectures.is_empty()
        && !arch_ok(&p.architectures)
        && !p
            .architectures
            .iter()
            .any(|a| a == "SCMP_ARCH_X86" || a == "SCMP_ARCH_X32")
    {
        return Err(Error::invalid(
            "seccomp profile: no rule set for x86_64 among its architectures",
        ));
    }
    let default = action(&p.default_action, None, p.default_errno_ret)?;
    let mut out: Program = Vec::new();
    let mut push = |code: u16, jt: u8, jf: u8, k: u32| {
        out.push(libc::sock_filter { code, jt, jf, k });
    };
    // Another architecture's numbers would bypass every rule below.
    push(LD_W_ABS, 0, 0, OFF_ARCH);
    push(JEQ_K, 1, 0, AUDIT_ARCH_X86_64);
    push(RET_K, 0, 0, RET_KILL_PROCESS);
    push(LD_W_ABS, 0, 0, OFF_NR);
    push(JGE_K, 0, 1, X32_SYSCALL_BIT);
    push(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32);
    for r in &p.syscalls {
        if !applies(r, caps) {
            continue;
        }
        let ret = action(&r.action, r.errno_ret, p.default_errno_ret)?;
        let mut conds: Vec<Insn> = Vec::new();
        for a in &r.args {
            conds.extend(condition(a)?);
        }
        let names = r.names.iter().chain(r.name.iter());
        for nr in names.filter_map(|n| syscall_number(n)) {
            // ld nr; jeq nr (else skip the block); conditions; ret.
            let block_len = conds.len() + 1;
            if block_len > 255 {
                return Err(Error::invalid(
                    "seccomp rule has too many argument conditions",
                ));
            }
            push(LD_W_ABS, 0, 0, OFF_NR);
            push(JEQ_K, 0, block_len as u8, nr as u32);
            for (i, c) in conds.iter().enumerate() {
                // From instruction i of the block, the rule's end is block_len - 1 - i away.
                let to_end = (block_len - 1 - i) as u8;
                let off = |t: To| match t {
                    To::On => 0,
                    To::Fail => to_end,
                    To::Skip(n) => n,
                };
                push(c.code, off(c.jt), off(c.jf), c.k);
            }
            push(RET_K, 0, 0, ret);
        }
    }
    push(RET_K, 0, 0, default);
    if out.len() > 4096 {
        return Err(Error::invalid(format!(
            "seccomp profile compiles to {} instructions, more than the kernel's 4096",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `prog` on a call the way the kernel would (a tiny cBPF interpreter: the test's
    /// oracle for the compiler).
    fn eval(prog: &Program, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let f = prog[pc];
            match f.code {
                LD_W_ABS => {
                    let o = f.k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                AND_K => acc &= f.k,
                RET_K => return f.k,
                JEQ_K | JGT_K | JGE_K => {
                    let t = match f.code {
                        JEQ_K => acc == f.k,
                        JGT_K => acc > f.k,
                        _ => acc >= f.k,
                    };
                    pc += if t { f.jt } else { f.jf } as usize;
                }
                c => panic!("unexpected opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    fn nr(n: &str) -> u32 {
        syscall_number(n).unwrap() as u32
    }

    const ALL: u64 = u64::MAX >> 23;

    #[test]
    fn the_table_knows_the_calls() {
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("keyctl"), Some(250));
        assert_eq!(syscall_number("clone3"), Some(435));
        assert_eq!(syscall_number("nosuch"), None);
        assert_eq!(cap_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(cap_number("sys_admin"), Some(21));
        assert_eq!(cap_number("CHECKPOINT_RESTORE"), Some(40));
    }

    #[test]
    fn the_default_blocks_what_docker_blocks_and_allows_the_rest() {
        let caps = crate::child::DEFAULT_CAPS;
        let p = compile(&default_profile(), caps).unwrap();
        let x = AUDIT_ARCH_X86_64;
        let eperm = RET_ERRNO | libc::EPERM as u32;
        for n in [
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "open_by_handle_at",
            "reboot",
            "swapon",
            "swapoff",
            "acct",
            "clock_settime",
            "settimeofday",
            "iopl",
            "ioperm",
            "unshare",
            "setns",
            "mount",
            "umount2",
            "pivot_root",
        ] {
            assert_eq!(eval(&p, x, nr(n), [0; 6]), eperm, "{n}");
        }
        for n in [
            "read",
            "write",
            "openat",
            "execve",
            "exit_group",
            "setresuid",
            "capset",
        ] {
            assert_eq!(eval(&p, x, nr(n), [0; 6]), RET_ALLOW, "{n}");
        }
        // clone: threads and forks yes, namespaces no; clone3 says ENOSYS.
        let fork_flags = libc::SIGCHLD as u64;
        assert_eq!(
            eval(&p, x, nr("clone"), [fork_flags, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        let ns = (libc::CLONE_NEWUSER as u64) | fork_flags;
        assert_eq!(eval(&p, x, nr("clone"), [ns, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(
            eval(&p, x, nr("clone3"), [0; 6]),
            RET_ERRNO | libc::ENOSYS as u32
        );
        // Another architecture, and x32 numbers.
        assert_eq!(eval(&p, 0x4000_0003, 0, [0; 6]), RET_KILL_PROCESS);
        assert_eq!(
            eval(&p, x, X32_SYSCALL_BIT | 1, [0; 6]),
            RET_ERRNO | libc::ENOSYS as u32
        );
        // With CAP_SYS_ADMIN (--cap-add SYS_ADMIN), mount and namespaces are allowed.
        let p = compile(&default_profile(), caps | 1 << 21).unwrap();
        for n in ["mount", "unshare", "setns", "umount2"] {
            assert_eq!(eval(&p, x, nr(n), [0; 6]), RET_ALLOW, "{n}");
        }
        assert_eq!(eval(&p, x, nr("clone"), [ns, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(eval(&p, x, nr("keyctl"), [0; 6]), eperm);
    }

    #[test]
    fn docker_json_profiles_with_argument_conditions() {
        let text = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 1, "value": 4294967296, "op": "SCMP_CMP_GE"}]},
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_NE"},
                          {"index": 0, "value": 100, "op": "SCMP_CMP_LT"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_PTRACE"]}},
                {"names": ["not_on_this_arch"], "action": "SCMP_ACT_ALLOW"}
            ]
        }"#;
        let prof = Profile::parse(text, "p.json").unwrap();
        let p = compile(&prof, ALL & !(1 << 19)).unwrap();
        let x = AUDIT_ARCH_X86_64;
        let enosys = RET_ERRNO | 38;
        assert_eq!(eval(&p, x, nr("read"), [0; 6]), RET_ALLOW);
        assert_eq!(eval(&p, x, nr("openat"), [0; 6]), enosys);
        assert_eq!(
            eval(&p, x, nr("personality"), [8, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            eval(&p, x, nr("personality"), [8 | 1 << 32, 0, 0, 0, 0, 0]),
            enosys
        );
        assert_eq!(
            eval(&p, x, nr("ioctl"), [0, 1 << 32, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            eval(&p, x, nr("ioctl"), [0, (1 << 32) - 1, 0, 0, 0, 0]),
            enosys
        );
        assert_eq!(
            eval(&p, x, nr("ioctl"), [0, 5 << 32, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(eval(&p, x, nr("kill"), [5, 15, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(eval(&p, x, nr("kill"), [5, 9, 0, 0, 0, 0]), enosys);
        assert_eq!(eval(&p, x, nr("kill"), [100, 15, 0, 0, 0, 0]), enosys);
        assert_eq!(eval(&p, x, nr("kill"), [1 << 40, 15, 0, 0, 0, 0]), enosys);
        assert_eq!(eval(&p, x, nr("mkdir"), [0; 6]), RET_ERRNO | 13);
        // ptrace only with CAP_SYS_PTRACE, which this container lacks.
        assert_eq!(eval(&p, x, nr("ptrace"), [0; 6]), enosys);
        let p = compile(&prof, ALL).unwrap();
        assert_eq!(eval(&p, x, nr("ptrace"), [0; 6]), RET_ALLOW);
    }

    #[test]
    fn bad_profiles_are_refused_clearly() {
        let e = Profile::parse("{", "bad.json").unwrap_err();
        assert!(
            e.to_string().starts_with("seccomp profile bad.json: "),
            "{e}"
        );
        let p = Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_NOTIFY","syscalls":[]}"#,
            "n.json",
        )
        .unwrap();
        assert!(compile(&p, 0)
            .unwrap_err()
            .to_string()
            .contains("SCMP_ACT_NOTIFY"));
        let p = Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":7,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
            "i.json",
        )
        .unwrap();
        assert!(compile(&p, 0).unwrap_err().to_string().contains("index 7"));
    }
}
