//! The cgroup v2 devices controller, which is an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE,
//! Linux 4.15; the kernel's cgroup-v2.rst, "Device controller"): a generator that turns an
//! allow-list of `devices::Rule`s into instructions, and the two bpf(2) calls that load it
//! and attach it to a cgroup directory.
//!
//! The program is security-critical, so it stays small and linear: load the request, then
//! one block per rule that falls through to the next on any mismatch and returns 1 (allow)
//! when all its checks pass; after the last block, 0 (deny). The tests run it through an
//! interpreter of the few instructions it uses and compare every answer with
//! `devices::allowed`. It must not decide which rules a container gets (`mod.rs` does).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::devices::{Kind, Rule};
use super::{Error, Result};

/// One eBPF instruction (linux/bpf.h `struct bpf_insn`): opcode, destination register in the
/// low nibble and source register in the high nibble of `regs`, jump offset, immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (linux/bpf_common.h, linux/bpf.h): class | operation | source.
/// dst = *(u32 *)(src + off)   BPF_LDX | BPF_MEM | BPF_W
const LDX_W: u8 = 0x61;
/// dst32 &= imm                BPF_ALU | BPF_AND | BPF_K
const AND32_K: u8 = 0x54;
/// dst32 >>= imm               BPF_ALU | BPF_RSH | BPF_K
const RSH32_K: u8 = 0x74;
/// dst32 = imm                 BPF_ALU | BPF_MOV | BPF_K
const MOV32_K: u8 = 0xb4;
/// dst32 = src32               BPF_ALU | BPF_MOV | BPF_X
const MOV32_X: u8 = 0xbc;
/// if dst != imm goto +off     BPF_JMP | BPF_JNE | BPF_K
const JNE_K: u8 = 0x55;
/// if dst != src goto +off     BPF_JMP | BPF_JNE | BPF_X
const JNE_X: u8 = 0x5d;
/// return r0                   BPF_JMP | BPF_EXIT
const EXIT: u8 = 0x95;

/// r0: the verdict. r1: the context on entry (`struct bpf_cgroup_dev_ctx`), scratch once it
/// has been read. r2-r5: the request, loaded once.
const R0: u8 = 0;
const R1: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

/// BPF_DEVCG_DEV_BLOCK and BPF_DEVCG_DEV_CHAR: the low 16 bits of `access_type`.
fn type_code(k: Kind) -> i32 {
    match k {
        Kind::Block => 1,
        Kind::Char => 2,
    }
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// The device program for `rules`: allow a request (type, major, minor, access bits) when
/// one rule matches it with every requested access bit, deny otherwise.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }, where
    // access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*.
    let mut p = vec![
        insn(LDX_W, TYPE, R1, 0, 0),
        insn(AND32_K, TYPE, 0, 0, 0xffff),
        insn(LDX_W, ACCESS, R1, 0, 0),
        insn(RSH32_K, ACCESS, 0, 0, 16),
        insn(LDX_W, MAJOR, R1, 4, 0),
        insn(LDX_W, MINOR, R1, 8, 0),
    ];
    for r in rules {
        // Each check jumps past the block's end (to the next rule) on a mismatch; the
        // offsets are filled in once the block's length is known.
        let mut block = vec![insn(JNE_K, TYPE, 0, 0, type_code(r.kind))];
        if r.access.bits() != 7 {
            // Requested bits outside the rule's: (access & allowed) != access.
            block.push(insn(MOV32_X, R1, ACCESS, 0, 0));
            block.push(insn(AND32_K, R1, 0, 0, i32::from(r.access.bits())));
            block.push(insn(JNE_X, R1, ACCESS, 0, 0));
        }
        // Device numbers are at most 12 (major) and 20 (minor) bits, so they fit the
        // sign-extended 32-bit immediate; a larger one could never compare equal to the
        // zero-extended register, so such a rule would only ever deny.
        if let Some(major) = r.major {
            block.push(insn(JNE_K, MAJOR, 0, 0, major as i32));
        }
        if let Some(minor) = r.minor {
            block.push(insn(JNE_K, MINOR, 0, 0, minor as i32));
        }
        block.push(insn(MOV32_K, R0, 0, 0, 1));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K || ins.code == JNE_X {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(MOV32_K, R0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

// bpf(2) commands, program and attach types, flags (linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Other programs may be attached to the same cgroup and to its descendants, and all must
/// allow a request (runc and crun attach theirs the same way, so nesting works).
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The BPF_PROG_LOAD part of `union bpf_attr`, up to `prog_name`; the kernel zero-fills
/// what a shorter attr leaves out.
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// The BPF_PROG_ATTACH part of `union bpf_attr`.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialised bpf_attr prefix of the size passed, and any
    // pointers in it refer to memory the caller keeps alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Load `insns` as a device program; the returned fd holds it.
pub fn load(insns: &[Insn]) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..15].copy_from_slice(b"minibox_devices");
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attach the loaded program `prog` to the cgroup open at `cgroup`. The cgroup keeps it
/// until the cgroup is removed; `prog` may be closed afterwards.
pub fn attach(cgroup: &impl AsRawFd, prog: &impl AsRawFd) -> io::Result<()> {
    let mut attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
}

/// Let the processes of cgroup v2 directory `dir` use only the devices `rules` allow.
pub fn restrict(dir: &Path, rules: &[Rule]) -> Result<()> {
    let prog = load(&program(rules)).map_err(|e| {
        Error::io(
            "load the devices cgroup program (BPF_PROG_TYPE_CGROUP_DEVICE) for",
            dir,
            e,
        )
    })?;
    let cgroup = std::fs::File::open(dir).map_err(|e| Error::io("open cgroup", dir, e))?;
    attach(&cgroup, &prog).map_err(|e| match e.raw_os_error() {
        // The kernel finds no cgroup behind the fd (cgroup_get_from_fd).
        Some(libc::EBADF) => Error::Invalid(format!(
            "attach the devices cgroup program to {}: not a cgroup v2 directory",
            dir.display()
        )),
        _ => Error::io("attach the devices cgroup program to", dir, e),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::cgroup::devices::{allow_list, allowed, Access, DEFAULT_ALLOWED};

    /// Run `prog` on a request the way the kernel would, for the instructions `program`
    /// emits; anything else (an unknown opcode, a jump out of the program or backwards, a
    /// read of a register never written, a context read out of bounds) fails the test.
    pub fn run(prog: &[Insn], kind: Kind, major: u32, minor: u32, access: Access) -> bool {
        let ctx: [u32; 3] = [
            (u32::from(access.bits()) << 16) | type_code(kind) as u32,
            major,
            minor,
        ];
        let mut reg: [Option<u64>; 11] = [None; 11];
        reg[1] = Some(0); // the context pointer; only ever used as the base of loads
        let mut pc = 0usize;
        for _ in 0..=prog.len() {
            let i = prog
                .get(pc)
                .unwrap_or_else(|| panic!("pc {pc} ran off the end"));
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let at = pc;
            let get = |r: usize| reg[r].unwrap_or_else(|| panic!("pc {at}: r{r} read unset"));
            let imm = i.imm as i64 as u64; // sign-extended, as the kernel does
            pc += 1;
            match i.code {
                LDX_W => {
                    assert_eq!((src, get(src)), (1, 0), "pc {}: load not from ctx", pc - 1);
                    assert!(
                        i.off % 4 == 0 && (0..12).contains(&i.off),
                        "ctx off {}",
                        i.off
                    );
                    reg[dst] = Some(u64::from(ctx[i.off as usize / 4]));
                }
                AND32_K => reg[dst] = Some((get(dst) as u32 & i.imm as u32) as u64),
                RSH32_K => reg[dst] = Some((get(dst) as u32 >> i.imm) as u64),
                MOV32_K => reg[dst] = Some(i.imm as u32 as u64),
                MOV32_X => reg[dst] = Some(get(src) as u32 as u64),
                JNE_K | JNE_X => {
                    let other = if i.code == JNE_K { imm } else { get(src) };
                    assert!(i.off >= 0, "backward jump at {}", pc - 1);
                    if get(dst) != other {
                        pc += i.off as usize;
                    }
                }
                EXIT => {
                    return match get(0) {
                        0 => false,
                        1 => true,
                        v => panic!("verdict {v}"),
                    }
                }
                c => panic!("unexpected opcode {c:#x} at {}", pc - 1),
            }
        }
        panic!("no exit")
    }

    const KINDS: [Kind; 2] = [Kind::Block, Kind::Char];
    const MAJORS: [u32; 10] = [0, 1, 4, 5, 7, 8, 10, 136, 254, 4095];
    const MINORS: [u32; 13] = [0, 1, 2, 3, 5, 7, 8, 9, 16, 200, 229, 255, 1_048_575];

    /// Every (type, major, minor, access) of the grid above gets the same answer from the
    /// program as from the rules themselves.
    fn agrees(rules: &[Rule]) {
        let prog = program(rules);
        let mut allowed_count = 0;
        for kind in KINDS {
            for major in MAJORS {
                for minor in MINORS {
                    for bits in 1..=7u8 {
                        let access = Access::parse(
                            &[('r', 2u8), ('w', 4), ('m', 1)]
                                .iter()
                                .filter(|(_, b)| bits & b != 0)
                                .map(|(c, _)| *c)
                                .collect::<String>(),
                        )
                        .unwrap();
                        let want = allowed(rules, kind, major, minor, access);
                        let got = run(&prog, kind, major, minor, access);
                        assert_eq!(
                            got, want,
                            "{kind:?} {major}:{minor} {access} under {rules:?}"
                        );
                        allowed_count += usize::from(got);
                    }
                }
            }
        }
        // The grid must exercise both verdicts, or the comparison proves little.
        let total = KINDS.len() * MAJORS.len() * MINORS.len() * 7;
        if !rules.is_empty() {
            assert!(
                allowed_count > 0 && allowed_count < total,
                "{allowed_count}"
            );
        }
    }

    #[test]
    fn the_program_agrees_with_the_rules_everywhere() {
        agrees(&[]);
        agrees(&DEFAULT_ALLOWED);
        let loop_r = Rule::node(Kind::Block, 7, 0, Access::READ);
        let sda_rw = Rule::node(Kind::Block, 8, 0, Access::parse("rw").unwrap());
        let tty_wm = Rule::node(Kind::Char, 4, 1, Access::parse("wm").unwrap());
        agrees(&allow_list(&[loop_r, sda_rw, tty_wm]));
        agrees(&[Rule {
            kind: Kind::Block,
            major: Some(8),
            minor: None,
            access: Access::READ,
        }]);
        agrees(&[Rule {
            kind: Kind::Char,
            major: None,
            minor: Some(3),
            access: Access::RWM,
        }]);
    }

    #[test]
    fn no_rules_deny_everything() {
        let prog = program(&[]);
        assert_eq!(prog.len(), 8);
        assert!(!run(&prog, Kind::Char, 1, 3, Access::READ));
    }

    #[test]
    fn the_default_program_decodes_as_expected() {
        // The rule for the pseudo-terminals, c 136:* rwm: type and major only.
        let prog = program(&[DEFAULT_ALLOWED[10]]);
        let body: Vec<(u8, u8, i16, i32)> = prog[6..]
            .iter()
            .map(|i| (i.code, i.regs, i.off, i.imm))
            .collect();
        assert_eq!(
            body,
            [
                (JNE_K, TYPE, 3, 2),
                (JNE_K, MAJOR, 2, 136),
                (MOV32_K, R0, 0, 1),
                (EXIT, 0, 0, 0),
                (MOV32_K, R0, 0, 0),
                (EXIT, 0, 0, 0),
            ]
        );
        // b *:* m: type and the access mask.
        let prog = program(&[DEFAULT_ALLOWED[1]]);
        let body: Vec<(u8, u8, i16, i32)> = prog[6..12]
            .iter()
            .map(|i| (i.code, i.regs, i.off, i.imm))
            .collect();
        assert_eq!(
            body,
            [
                (JNE_K, TYPE, 5, 1),
                (MOV32_X, ACCESS << 4 | R1, 0, 0),
                (AND32_K, R1, 0, 1),
                (JNE_X, ACCESS << 4 | R1, 2, 0),
                (MOV32_K, R0, 0, 1),
                (EXIT, 0, 0, 0),
            ]
        );
    }

    #[test]
    fn the_kernel_accepts_the_program_or_the_test_says_why_not() {
        // Loading needs CAP_SYS_ADMIN (or CAP_BPF); the verifier is the real judge of the
        // instructions, so as root this must succeed.
        match load(&program(&allow_list(&[]))) {
            Ok(_) => {}
            Err(e) if !rustix::process::geteuid().is_root() => {
                println!("skipped: loading a device program needs root: {e}")
            }
            Err(e) => panic!("the kernel refused the device program: {e}"),
        }
    }
}
