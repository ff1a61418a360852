//! Seccomp: profiles in Docker's JSON format (`--security-opt seccomp=profile.json`), the
//! built-in default, and the compiler from a profile to the BPF program the container's child
//! loads just before it drops its privileges.
//!
//! The default is Docker's own profile, held as data in `default.json`: the rules of moby's
//! seccomp/default.json at moby/profiles commit 02e898b137aed1024e232d59bcb05e6179b72177 (the
//! module the engine takes its profiles from since they left moby/moby's profiles/ folder),
//! rule for rule, in minibox's layout. It goes through the same parser and compiler as a
//! user's profile, so comparing minibox's default with Docker's is comparing two JSON files
//! (SECURITY.md has the comparison). Keep it a copy: change it only to follow moby.
//!
//! The compiler is hand-written (small, and what decides which system calls a container may
//! make). Calls from another architecture (32-bit int 0x80, x32) never reach the rules:
//! they are refused outright, as the rules are written for x86_64 numbers. For each x86_64
//! call, the rules naming it form a chain in the profile's order; the first that matches
//! decides, and none matching means the default action (libseccomp has no order between
//! rules, but in Docker's profile the rules for a call never disagree, which the tests
//! check). A call whose chain is one unconditional action needs no code of its own: runs of
//! consecutive numbers with the same action become one range, and the program finds the
//! caller's range by binary search (a few comparisons, not one per listed call: the 300-odd
//! x86_64 calls Docker allows make some 60 ranges, and a call runs about a dozen
//! instructions). A range holds its action, or a jump to the call's chain of argument
//! tests, each of which checks both 32-bit halves of the 64-bit argument. Names unknown on
//! x86_64 (other architectures' calls, which Docker's profile lists too) are skipped, as
//! runc and libseccomp skip them.
//!
//! `syscalls.rs` is the x86_64 table: regenerated with
//! `grep -E '^#define __NR_' /usr/include/x86_64-linux-gnu/asm/unistd_64.h`, plus the calls of
//! kernels newer than those headers from the kernel's arch/x86/entry/syscalls/syscall_64.tbl
//! (see its header).

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

/// Docker's default profile (see the module's header), as minibox embeds it.
const DEFAULT_JSON: &str = include_str!("default.json");

/// minibox's default: Docker's profile. An allow list on top of EPERM: the calls a container needs;
/// personality(2) only for the personas Docker allows (PER_LINUX and PER_LINUX32, each also with
/// UNAME26, and the 0xffffffff query: not READ_IMPLIES_EXEC, not ADDR_NO_RANDOMIZE, no other ABI);
/// socket(2) for every address family but the ones Docker refuses (AF_VSOCK, AF_ALG and those the
/// kernel has dropped); clone(2) without namespace flags and clone3 ENOSYS (its flags are behind a
/// pointer a filter cannot read, so libc falls back to clone), both unless CAP_SYS_ADMIN; and each
/// privileged call only with the capability that makes it safe (mount and namespaces with
/// CAP_SYS_ADMIN, kcmp and pidfd_getfd with CAP_SYS_PTRACE, modules with CAP_SYS_MODULE, the clock
/// with CAP_SYS_TIME, ...); ptrace(2) for all on 4.8+ kernels, where seccomp rechecks a traced call
/// (before, a tracer could change it after the filter ran). Kernel keyrings, userfaultfd, kexec,
/// swap and io_uring are in no list: EPERM for everyone.
pub fn default_profile() -> Profile {
    // Checked by this module's tests; a build cannot change it.
    Profile::parse(DEFAULT_JSON, "(built-in default)").expect("the built-in profile parses")
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
/// BPF_JMP | BPF_JA: jump `k` instructions forward (32 bits, where jt/jf have 8).
const JA: u16 = 0x05;

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

/// Whether the running kernel is `min` ("4.8") or newer; minKernel in Docker's profiles.
fn kernel_at_least(min: &str) -> bool {
    // SAFETY: utsname is plain bytes, for which all zeroes is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills our struct.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return true;
    }
    // SAFETY: uname NUL-terminates the release inside the struct.
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

/// Whether `rule` applies to a container with capabilities `caps`, as Docker decides it
/// (moby's setupSeccomp): excluded by any of its excludes' capabilities or architectures, or
/// by a kernel at least its excludes' minKernel; included only with every one of its
/// includes' capabilities, on one of its includes' architectures, on a kernel at least its
/// includes' minKernel.
fn applies(rule: &Rule, caps: u64) -> bool {
    let has = |c: &String| cap_number(c).is_some_and(|n| caps & (1 << n) != 0);
    let (inc, exc) = (&rule.includes, &rule.excludes);
    let excluded = exc.caps.iter().any(has)
        || exc.arches.iter().any(|a| arch_ok(std::slice::from_ref(a)))
        || exc.min_kernel.as_deref().is_some_and(kernel_at_least);
    let included = inc.caps.iter().all(has)
        && arch_ok(&inc.arches)
        && inc.min_kernel.as_deref().map_or(true, kernel_at_least);
    included && !excluded
}

/// What the program does for one system call number.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Outcome {
    /// Return this action.
    Ret(u32),
    /// Run the chain of argument tests with this index.
    Chain(usize),
}

/// One instruction of the search; `chain` marks a jump to a chain, placed once the search's
/// length is known.
struct Op {
    f: libc::sock_filter,
    chain: Option<usize>,
}

fn op(code: u16, jt: u8, jf: u8, k: u32) -> Op {
    Op {
        f: libc::sock_filter { code, jt, jf, k },
        chain: None,
    }
}

/// The binary search over `ranges` (start, outcome), sorted by start, each range running to
/// the next one's start: with the call's number in the accumulator, it returns the range's
/// action or jumps to its chain. cBPF's conditional jumps reach 255 instructions, so a left
/// half longer than that is stepped over with a JA.
fn search(ranges: &[(u32, Outcome)]) -> Vec<Op> {
    if let [(_, o)] = ranges {
        return vec![match *o {
            Outcome::Ret(k) => op(RET_K, 0, 0, k),
            Outcome::Chain(i) => Op {
                chain: Some(i),
                ..op(JA, 0, 0, 0)
            },
        }];
    }
    let mid = ranges.len() / 2;
    let (left, right) = (search(&ranges[..mid]), search(&ranges[mid..]));
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    match u8::try_from(left.len()) {
        Ok(n) => out.push(op(JGE_K, n, 0, ranges[mid].0)),
        Err(_) => {
            out.push(op(JGE_K, 0, 1, ranges[mid].0));
            out.push(op(JA, 0, 0, left.len() as u32));
        }
    }
    out.extend(left);
    out.extend(right);
    out
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
    // Each applicable rule's argument tests, and each call's chain: the applicable rules
    // naming it, in the profile's order, as (index of their tests, action), by number.
    let mut tests: Vec<Vec<Insn>> = Vec::new();
    let mut calls: Vec<Vec<(usize, u32)>> = Vec::new();
    for r in &p.syscalls {
        if !applies(r, caps) {
            continue;
        }
        let ret = action(&r.action, r.errno_ret, p.default_errno_ret)?;
        let mut conds: Vec<Insn> = Vec::new();
        for a in &r.args {
            conds.extend(condition(a)?);
        }
        // The tests and the action must fit the 8-bit jumps out of them.
        if conds.len() + 1 > 255 {
            return Err(Error::invalid(
                "seccomp rule has too many argument conditions",
            ));
        }
        tests.push(conds);
        for nr in r
            .names
            .iter()
            .chain(r.name.iter())
            .filter_map(|n| syscall_number(n))
        {
            let nr = nr as usize;
            if calls.len() <= nr {
                calls.resize_with(nr + 1, Vec::new);
            }
            // After a rule without conditions, nothing later can decide for this call.
            if !matches!(calls[nr].last(), Some((t, _)) if tests[*t].is_empty()) {
                calls[nr].push((tests.len() - 1, ret));
            }
        }
    }
    // The outcome of every number, as ranges; the chains' code, in order.
    let mut ranges: Vec<(u32, Outcome)> = Vec::new();
    let mut push = |start: u32, o: Outcome| {
        if ranges.last().map(|r| r.1) != Some(o) {
            ranges.push((start, o));
        }
    };
    let mut chains: Vec<Vec<libc::sock_filter>> = Vec::new();
    push(0, Outcome::Ret(default));
    for (nr, rules) in calls.iter().enumerate() {
        let o = match rules.as_slice() {
            [] => Outcome::Ret(default),
            [(t, ret)] if tests[*t].is_empty() => Outcome::Ret(*ret),
            _ => {
                chains.push(chain(&tests, rules, default));
                Outcome::Chain(chains.len() - 1)
            }
        };
        push(nr as u32, o);
    }
    push(calls.len() as u32, Outcome::Ret(default));

    let mut out: Program = Vec::new();
    let mut emit = |code: u16, jt: u8, jf: u8, k: u32| {
        out.push(libc::sock_filter { code, jt, jf, k });
    };
    // Another architecture's numbers would bypass every rule below.
    emit(LD_W_ABS, 0, 0, OFF_ARCH);
    emit(JEQ_K, 1, 0, AUDIT_ARCH_X86_64);
    emit(RET_K, 0, 0, RET_KILL_PROCESS);
    emit(LD_W_ABS, 0, 0, OFF_NR);
    emit(JGE_K, 0, 1, X32_SYSCALL_BIT);
    emit(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32);
    let ops = search(&ranges);
    let mut at = out.len() + ops.len();
    let mut chain_at = Vec::with_capacity(chains.len());
    for c in &chains {
        chain_at.push(at);
        at += c.len();
    }
    if at > 4096 {
        return Err(Error::invalid(format!(
            "seccomp profile compiles to {at} instructions, more than the kernel's 4096"
        )));
    }
    for o in ops {
        let mut f = o.f;
        if let Some(i) = o.chain {
            f.k = (chain_at[i] - out.len() - 1) as u32;
        }
        out.push(f);
    }
    for c in chains {
        out.extend(c);
    }
    Ok(out)
}

/// One call's chain: each rule's argument tests (`tests[i]` for rule i), a failed one
/// skipping to the next rule, then the rule's action; the default when none matched.
fn chain(tests: &[Vec<Insn>], rules: &[(usize, u32)], default: u32) -> Vec<libc::sock_filter> {
    let mut out = Vec::new();
    for (t, ret) in rules {
        let conds = &tests[*t];
        let block_len = conds.len() + 1;
        for (i, c) in conds.iter().enumerate() {
            // From test i, the rule's end (the next rule) is block_len - 1 - i away.
            let to_end = (block_len - 1 - i) as u8;
            let off = |t: To| match t {
                To::On => 0,
                To::Fail => to_end,
                To::Skip(n) => n,
            };
            out.push(libc::sock_filter {
                code: c.code,
                jt: off(c.jt),
                jf: off(c.jf),
                k: c.k,
            });
        }
        out.push(libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: *ret,
        });
    }
    if rules.last().is_some_and(|(t, _)| !tests[*t].is_empty()) {
        out.push(libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: default,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::{BTreeMap, BTreeSet};

    /// Run `prog` on a call the way the kernel would (a tiny cBPF interpreter: the test's
    /// oracle for the compiler); returns the action and how many instructions ran.
    fn run(prog: &Program, arch: u32, nr: u32, args: [u64; 6]) -> (u32, usize) {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc, mut steps) = (0usize, 0u32, 0usize);
        loop {
            let f = prog[pc];
            steps += 1;
            match f.code {
                LD_W_ABS => {
                    let o = f.k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                AND_K => acc &= f.k,
                RET_K => return (f.k, steps),
                JA => pc += f.k as usize,
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

    fn eval(prog: &Program, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        run(prog, arch, nr, args).0
    }

    fn nr(n: &str) -> u32 {
        syscall_number(n).unwrap_or_else(|| panic!("{n} is not in the table")) as u32
    }

    fn arg0(a: u64) -> [u64; 6] {
        [a, 0, 0, 0, 0, 0]
    }

    const X: u32 = AUDIT_ARCH_X86_64;
    const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;
    const ALL: u64 = u64::MAX >> 23;
    const SYS_ADMIN: u64 = 1 << 21;
    const DEFAULT: u64 = crate::child::DEFAULT_CAPS;

    /// The names in Docker's profile that are no x86_64 system call: 32-bit and time64
    /// variants, multiplexers x86_64 never had, and other architectures' own calls. The
    /// compiler skips them; any other name the table lacks fails the test below.
    const NOT_X86_64: [&str; 75] = [
        "_llseek",
        "_newselect",
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "breakpoint",
        "cacheflush",
        "chown32",
        "clock_adjtime64",
        "clock_getres_time64",
        "clock_gettime64",
        "clock_nanosleep_time64",
        "clock_settime64",
        "fadvise64_64",
        "fchown32",
        "fcntl64",
        "fstat64",
        "fstatat64",
        "fstatfs64",
        "ftruncate64",
        "futex_time64",
        "getegid32",
        "geteuid32",
        "getgid32",
        "getgroups32",
        "getresgid32",
        "getresuid32",
        "getuid32",
        "io_pgetevents_time64",
        "ipc",
        "lchown32",
        "lstat64",
        "mmap2",
        "mq_timedreceive_time64",
        "mq_timedsend_time64",
        "ppoll_time64",
        "pselect6_time64",
        "recv",
        "recvmmsg_time64",
        "riscv_flush_icache",
        "riscv_hwprobe",
        "rt_sigtimedwait_time64",
        "s390_pci_mmio_read",
        "s390_pci_mmio_write",
        "s390_runtime_instr",
        "sched_rr_get_interval_time64",
        "semtimedop_time64",
        "send",
        "sendfile64",
        "set_tls",
        "setfsgid32",
        "setfsuid32",
        "setgid32",
        "setgroups32",
        "setregid32",
        "setresgid32",
        "setresuid32",
        "setreuid32",
        "setuid32",
        "sigprocmask",
        "sigreturn",
        "socketcall",
        "stat64",
        "statfs64",
        "stime",
        "swapcontext",
        "sync_file_range2",
        "timer_gettime64",
        "timer_settime64",
        "timerfd_gettime64",
        "timerfd_settime64",
        "truncate64",
        "ugetrlimit",
        "umount",
        "utimensat_time64",
        "waitpid",
    ];

    fn strs(v: &Value) -> Vec<&str> {
        v.as_array()
            .map(|a| a.iter().map(|x| x.as_str().unwrap()).collect())
            .unwrap_or_default()
    }

    /// The embedded profile as plain JSON, read without minibox's `Profile`.
    fn docker_json() -> Value {
        serde_json::from_str(DEFAULT_JSON).unwrap()
    }

    /// This machine's kernel as (major, minor), from /proc, not through `kernel_at_least`.
    fn kernel() -> (u32, u32) {
        let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut n = rel
            .split(|c: char| !c.is_ascii_digit())
            .map(|x| x.parse().unwrap());
        (n.next().unwrap(), n.next().unwrap())
    }

    fn version(v: &str) -> (u32, u32) {
        let (a, b) = v.split_once('.').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    }

    /// Docker's decision for a call with `args` in a container with capabilities `caps` on
    /// x86_64, from the profile's JSON: `rules` are those naming the call; moby's
    /// setupSeccomp keeps those that apply to amd64 and the capabilities, then, as
    /// libseccomp has no order between rules, any whose conditions all hold decides (and
    /// the profile must never let two that hold disagree); none: the default.
    fn docker(p: &Value, rules: &[&Value], args: [u64; 6], caps: u64) -> u32 {
        let has = |c: &str| {
            let bare = c.strip_prefix("CAP_").unwrap();
            let n = CAP_NAMES.iter().position(|x| *x == bare).unwrap();
            caps & (1 << n) != 0
        };
        let default_errno = p["defaultErrnoRet"].as_u64().unwrap() as u32;
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        let mut decided = None;
        for r in rules {
            let (inc, exc) = (&r["includes"], &r["excludes"]);
            if strs(&exc["arches"]).contains(&"amd64")
                || strs(&exc["caps"]).into_iter().any(has)
                || exc["minKernel"]
                    .as_str()
                    .is_some_and(|k| kernel() >= version(k))
            {
                continue;
            }
            let arches = strs(&inc["arches"]);
            if !arches.is_empty() && !arches.contains(&"amd64")
                || !strs(&inc["caps"]).into_iter().all(has)
                || inc["minKernel"]
                    .as_str()
                    .is_some_and(|k| kernel() < version(k))
            {
                continue;
            }
            let holds = r["args"].as_array().map_or(true, |conds| {
                conds.iter().all(|c| {
                    let x = args[c["index"].as_u64().unwrap() as usize];
                    let v = c["value"].as_u64().unwrap();
                    match c["op"].as_str().unwrap() {
                        "SCMP_CMP_EQ" => x == v,
                        "SCMP_CMP_NE" => x != v,
                        "SCMP_CMP_LT" => x < v,
                        "SCMP_CMP_LE" => x <= v,
                        "SCMP_CMP_GT" => x > v,
                        "SCMP_CMP_GE" => x >= v,
                        "SCMP_CMP_MASKED_EQ" => x & v == c["valueTwo"].as_u64().unwrap_or(0),
                        op => panic!("op {op}"),
                    }
                })
            });
            if !holds {
                continue;
            }
            let act = match r["action"].as_str().unwrap() {
                "SCMP_ACT_ALLOW" => RET_ALLOW,
                "SCMP_ACT_ERRNO" => {
                    RET_ERRNO | r["errnoRet"].as_u64().map_or(default_errno, |e| e as u32)
                }
                a => panic!("action {a}"),
            };
            if let Some(d) = decided {
                assert_eq!(d, act, "two rules that hold disagree: {r}");
            }
            decided = Some(act);
        }
        decided.unwrap_or(RET_ERRNO | default_errno)
    }

    /// Arguments worth trying for a call: zeroes, extremes, and around every value its
    /// rules compare with (both 32-bit halves), each bit of a mask, and common clone flags.
    fn samples(rules: &[&Value]) -> Vec<[u64; 6]> {
        let mut set = BTreeSet::new();
        for i in 0..6 {
            for x in [0, 1, 0x11, 0x3d0f00, 0xffff_ffff, 1 << 32, u64::MAX] {
                set.insert((i, x));
            }
        }
        for r in rules {
            for c in r["args"].as_array().into_iter().flatten() {
                let i = c["index"].as_u64().unwrap() as usize;
                let v = c["value"].as_u64().unwrap();
                for x in [
                    v,
                    v.wrapping_sub(1),
                    v.wrapping_add(1),
                    v | 1 << 32,
                    v << 32,
                ] {
                    set.insert((i, x));
                }
                for bit in (0..64).filter(|b| v & 1 << b != 0) {
                    set.insert((i, 1 << bit));
                    set.insert((i, 0x11 | 1 << bit));
                }
            }
        }
        set.into_iter()
            .map(|(i, x)| {
                let mut a = [0; 6];
                a[i] = x;
                a
            })
            .collect()
    }

    #[test]
    fn the_table_knows_the_calls() {
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("keyctl"), Some(250));
        assert_eq!(syscall_number("clone3"), Some(435));
        assert_eq!(syscall_number("uretprobe"), Some(335));
        assert_eq!(syscall_number("removexattrat"), Some(466));
        assert_eq!(syscall_number("nosuch"), None);
        assert!(
            syscalls::SYSCALLS.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, unique"
        );
        let numbers: BTreeSet<i64> = syscalls::SYSCALLS.iter().map(|s| s.1).collect();
        assert_eq!(
            numbers.len(),
            syscalls::SYSCALLS.len(),
            "one name per number"
        );
        assert_eq!(cap_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(cap_number("sys_admin"), Some(21));
        assert_eq!(cap_number("CHECKPOINT_RESTORE"), Some(40));
    }

    #[test]
    fn the_embedded_profile_is_dockers_shape_and_the_table_knows_its_x86_64_calls() {
        let p = docker_json();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(p["defaultErrnoRet"], 1);
        let mut unknown = BTreeSet::new();
        for r in p["syscalls"].as_array().unwrap() {
            for n in strs(&r["names"]) {
                if syscall_number(n).is_none() {
                    unknown.insert(n);
                }
            }
        }
        let expected: BTreeSet<&str> = NOT_X86_64.into_iter().collect();
        assert_eq!(
            unknown.difference(&expected).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "x86_64 calls of the profile the table lacks (add them to syscalls.rs)"
        );
        assert_eq!(unknown, expected);
        // What minibox parses is the same profile.
        let prof = default_profile();
        assert_eq!(prof.syscalls.len(), p["syscalls"].as_array().unwrap().len());
        assert_eq!(prof.default_errno_ret, Some(1));
    }

    /// Docker's profile, walked rule by rule from its JSON, against the compiled program run
    /// in the interpreter: every x86_64 call, with arguments around every value the rules
    /// compare, for the default capabilities, with CAP_SYS_ADMIN, with each capability the
    /// profile names, with none and with all.
    #[test]
    fn the_default_program_decides_every_call_as_dockers_profile_does() {
        let p = docker_json();
        let mut by_name: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        let mut named_caps = BTreeSet::new();
        for r in p["syscalls"].as_array().unwrap() {
            for n in strs(&r["names"]) {
                by_name.entry(n).or_default().push(r);
            }
            for f in [&r["includes"], &r["excludes"]] {
                named_caps.extend(strs(&f["caps"]));
            }
        }
        let mut cap_sets = vec![DEFAULT, DEFAULT | SYS_ADMIN, DEFAULT & !(1 << 18), 0, ALL];
        for c in &named_caps {
            cap_sets.push(DEFAULT | 1 << cap_number(c).unwrap());
        }
        assert!(named_caps.len() >= 14, "{named_caps:?}");
        let prof = default_profile();
        let mut checked = 0;
        for caps in cap_sets {
            let prog = compile(&prof, caps).unwrap();
            for (name, n) in syscalls::SYSCALLS {
                let rules = by_name.get(name).map_or(&[][..], |v| v.as_slice());
                for args in samples(rules) {
                    assert_eq!(
                        eval(&prog, X, *n as u32, args),
                        docker(&p, rules, args, caps),
                        "{name}{args:x?} with capabilities {caps:#x}"
                    );
                    checked += 1;
                }
            }
            let known: BTreeSet<u32> = syscalls::SYSCALLS.iter().map(|s| s.1 as u32).collect();
            for n in (0..1024)
                .chain([0x3fff_ffff])
                .filter(|n| !known.contains(n))
            {
                assert_eq!(eval(&prog, X, n, [0; 6]), EPERM, "number {n}");
            }
            assert_eq!(eval(&prog, X, X32_SYSCALL_BIT | 1, [0; 6]), ENOSYS);
            assert_eq!(eval(&prog, 0x4000_0003, 0, [0; 6]), RET_KILL_PROCESS);
        }
        assert!(checked > 20_000, "{checked}");
    }

    /// The attacks of issue 10 and the rest of Docker's list, by name.
    #[test]
    fn the_default_allows_dockers_list_and_refuses_io_uring_odd_personas_and_vsock() {
        let p = docker_json();
        let list = &p["syscalls"][0];
        assert_eq!(list["action"], "SCMP_ACT_ALLOW");
        assert!(list.get("args").is_none() && list.get("includes").is_none());
        let allowed: Vec<&str> = strs(&list["names"])
            .into_iter()
            .filter(|n| syscall_number(n).is_some())
            .collect();
        assert!(allowed.len() > 280, "{}", allowed.len());
        let not_listed = [
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "keyctl",
            "add_key",
            "request_key",
            "userfaultfd",
            "kexec_load",
            "kexec_file_load",
            "swapon",
            "swapoff",
            "move_pages",
            "migrate_pages",
            "uselib",
            "ustat",
            "sysfs",
            "_sysctl",
            "nfsservctl",
            "vserver",
            "afs_syscall",
            "tuxcall",
            "security",
            "create_module",
            "query_module",
            "get_kernel_syms",
            "pivot_root",
            "open_tree_attr",
            "file_getattr",
            "file_setattr",
            "listns",
        ];
        for caps in [DEFAULT, DEFAULT | SYS_ADMIN] {
            let prog = compile(&default_profile(), caps).unwrap();
            for n in &allowed {
                assert_eq!(eval(&prog, X, nr(n), [0; 6]), RET_ALLOW, "{n}");
            }
            for n in not_listed {
                assert!(!allowed.contains(&n));
                assert_eq!(eval(&prog, X, nr(n), [0; 6]), EPERM, "{n}");
            }
            // personality(2): PER_LINUX, PER_LINUX32, either with UNAME26, and the query.
            let per = nr("personality");
            for v in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
                assert_eq!(
                    eval(&prog, X, per, arg0(v)),
                    RET_ALLOW,
                    "personality {v:#x}"
                );
            }
            // READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, PER_SVR4, and -1 as a 64-bit value.
            for v in [0x0400000, 0x0400008, 0x0040000, 1, u64::MAX] {
                assert_eq!(eval(&prog, X, per, arg0(v)), EPERM, "personality {v:#x}");
            }
            // socket(2): unix, inet, inet6, netlink, packet yes; AF_ALG, AF_VSOCK, AF_DECnet
            // (gone from the kernel), past AF_MAX, or junk in the upper half: no.
            let sock = nr("socket");
            for f in [1, 2, 10, 16, 17, 39, 45] {
                assert_eq!(
                    eval(&prog, X, sock, arg0(f)),
                    RET_ALLOW,
                    "socket family {f}"
                );
            }
            for f in [38, 40, 12, 46, 1 << 32 | 1] {
                assert_eq!(eval(&prog, X, sock, arg0(f)), EPERM, "socket family {f:#x}");
            }
            // fork and threads always.
            for flags in [libc::SIGCHLD as u64, 0x3d0f00] {
                assert_eq!(eval(&prog, X, nr("clone"), arg0(flags)), RET_ALLOW);
            }
        }
        let prog = compile(&default_profile(), DEFAULT).unwrap();
        let ns = libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64;
        assert_eq!(eval(&prog, X, nr("clone"), arg0(ns)), EPERM);
        assert_eq!(eval(&prog, X, nr("clone3"), [0; 6]), ENOSYS);
        for n in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "sethostname",
            "bpf",
            "kcmp",
            "acct",
        ] {
            assert_eq!(eval(&prog, X, nr(n), [0; 6]), EPERM, "{n}");
        }
        // Docker's default capabilities hold CAP_SYS_CHROOT; 4.8+ kernels may ptrace.
        for n in [
            "chroot",
            "ptrace",
            "process_vm_readv",
            "arch_prctl",
            "modify_ldt",
        ] {
            assert_eq!(eval(&prog, X, nr(n), [0; 6]), RET_ALLOW, "{n}");
        }
        let prog = compile(&default_profile(), DEFAULT | SYS_ADMIN).unwrap();
        assert_eq!(eval(&prog, X, nr("clone"), arg0(ns)), RET_ALLOW);
        for n in [
            "clone3",
            "mount",
            "umount2",
            "unshare",
            "setns",
            "sethostname",
            "bpf",
        ] {
            assert_eq!(eval(&prog, X, nr(n), [0; 6]), RET_ALLOW, "{n}");
        }
        assert_eq!(eval(&prog, X, nr("kcmp"), [0; 6]), EPERM);
        // Another architecture, and x32 numbers.
        assert_eq!(eval(&prog, 0x4000_0003, 0, [0; 6]), RET_KILL_PROCESS);
        assert_eq!(eval(&prog, X, X32_SYSCALL_BIT | 1, [0; 6]), ENOSYS);
    }

    /// Instruction count, and instructions run per call (what every system call of the
    /// container pays), for the default; the compile time is printed, not asserted.
    #[test]
    fn the_default_program_is_small_and_each_call_runs_few_instructions() {
        for caps in [DEFAULT, DEFAULT | SYS_ADMIN] {
            let t = std::time::Instant::now();
            let prof = default_profile();
            let parsed = t.elapsed();
            let t = std::time::Instant::now();
            let prog = compile(&prof, caps).unwrap();
            let compiled = t.elapsed();
            let steps: Vec<usize> = syscalls::SYSCALLS
                .iter()
                .map(|s| run(&prog, X, s.1 as u32, [0; 6]).1)
                .collect();
            let max = *steps.iter().max().unwrap();
            let avg = steps.iter().sum::<usize>() as f64 / steps.len() as f64;
            let worst_socket = (0..64)
                .map(|f| run(&prog, X, nr("socket"), arg0(f)).1)
                .max()
                .unwrap();
            eprintln!(
                "default filter, capabilities {caps:#x}: {} instructions; a call runs {avg:.1} \
                 on average, {max} at most ({worst_socket} for socket's worst family); \
                 parse {parsed:?}, compile {compiled:?} (this build)",
                prog.len()
            );
            assert!(prog.len() < 400, "{}", prog.len());
            assert!(avg < 16.0 && max < 32, "{avg} {max}");
            assert!(worst_socket < 80, "{worst_socket}");
        }
    }

    /// A search too long for cBPF's 8-bit jumps: every other call with its own errno (one
    /// range each), every seventh with a condition (a chain after the search).
    #[test]
    fn a_profile_of_hundreds_of_ranges_compiles_to_a_correct_search() {
        let rule = |i: usize, name: &str| Rule {
            names: vec![name.to_string()],
            action: "SCMP_ACT_ERRNO".into(),
            errno_ret: Some(1 + (i % 300) as u32),
            args: if i % 7 == 0 {
                vec![Arg {
                    index: 0,
                    value: i as u64,
                    value_two: 0,
                    op: "SCMP_CMP_EQ".into(),
                }]
            } else {
                vec![]
            },
            ..Default::default()
        };
        let prof = Profile {
            default_action: "SCMP_ACT_ALLOW".into(),
            syscalls: syscalls::SYSCALLS
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == 0)
                .map(|(i, s)| rule(i, s.0))
                .collect(),
            ..Default::default()
        };
        let prog = compile(&prof, 0).unwrap();
        assert!(
            prog.windows(2)
                .any(|w| (w[0].code, w[0].jt, w[0].jf, w[1].code) == (JGE_K, 0, 1, JA)),
            "a long half is stepped over with JA"
        );
        for (i, (name, n)) in syscalls::SYSCALLS.iter().enumerate() {
            let errno = RET_ERRNO | (1 + (i % 300) as u32);
            let (hit, miss) = match (i % 2, i % 7) {
                (0, 0) => (errno, RET_ALLOW),
                (0, _) => (errno, errno),
                _ => (RET_ALLOW, RET_ALLOW),
            };
            assert_eq!(eval(&prog, X, *n as u32, arg0(i as u64)), hit, "{name}");
            assert_eq!(
                eval(&prog, X, *n as u32, arg0(i as u64 + 1)),
                miss,
                "{name}"
            );
        }
    }

    #[test]
    fn includes_need_every_capability_excludes_any() {
        let text = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"]}},
            {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW",
             "excludes": {"caps": ["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"]}},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "4.0"}},
            {"names": ["gettid"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}}
        ]}"#;
        let prof = Profile::parse(text, "caps.json").unwrap();
        let (ptrace, admin) = (1 << 19, SYS_ADMIN);
        let run = |caps: u64, n: &str| eval(&compile(&prof, caps).unwrap(), X, nr(n), [0; 6]);
        assert_eq!(run(ptrace, "ptrace"), EPERM);
        assert_eq!(run(ptrace | admin, "ptrace"), RET_ALLOW);
        assert_eq!(run(0, "kcmp"), RET_ALLOW);
        assert_eq!(run(admin, "kcmp"), EPERM);
        // This machine's kernel is past 4.0 and short of 99.0.
        assert_eq!(run(0, "getpid"), EPERM);
        assert_eq!(run(0, "gettid"), EPERM);
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
