//! The last step before a container's command runs, kept away from mrun's own executable
//! (CVE-2019-5736).
//!
//! A process cloned from mrun has mrun's binary as its /proc/self/exe until it execs. If
//! that exec is of a script whose interpreter is `/proc/self/exe` (or of `/proc/self/exe`
//! itself), the kernel runs the host's mrun inside the container, where a root process can
//! take hold of the file through /proc/PID/exe and rewrite it once it is not busy: the next
//! mrun on the host runs the attacker's code. runc's answer is to exec from a sealed copy
//! of itself (later: a tiny "dmz" binary). minibox does the small version: the child execs a
//! static ELF of under 100 bytes of code held in a sealed memfd, whose only job is to exec the
//! command. /proc/self/exe is then that memfd, which nobody can write.
//!
//! The program, in x86_64 assembly (its argv is the command's path, then the command's own
//! argv; its environment is the command's):
//!
//! ```text
//!     mov edi, 1000 ; mov esi, F_SETFD ; mov edx, FD_CLOEXEC ; mov eax, SYS_fcntl ; syscall
//!     mov rdi, [rsp+8]              ; path = argv[0]
//!     lea rsi, [rsp+16]             ; argv = &argv[1]
//!     mov rax, [rsp] ; lea rdx, [rsp+rax*8+16]   ; envp, after argv's NULL
//!     mov eax, SYS_execve ; syscall
//!     neg eax ; mov [rsp-4], eax ; mov byte [rsp-5], 'E'     ; failed: "E" + errno
//!     mov edi, 1000 ; lea rsi, [rsp-5] ; mov edx, 5 ; mov eax, SYS_write ; syscall
//!     mov edi, 127 ; mov eax, SYS_exit_group ; syscall
//! ```
//!
//! fd 1000 is the setup socket, moved there (without close-on-exec) by the child: a failed
//! exec is reported exactly as the child reports one, and a successful one closes it.

use std::os::fd::{FromRawFd, OwnedFd};

/// Where the child puts the setup socket for the trampoline.
pub const SOCK_FD: i32 = 1000;

const CODE: &[u8] = &[
    0xbf, 0xe8, 0x03, 0x00, 0x00, // mov edi, 1000
    0xbe, 0x02, 0x00, 0x00, 0x00, // mov esi, 2 (F_SETFD)
    0xba, 0x01, 0x00, 0x00, 0x00, // mov edx, 1 (FD_CLOEXEC)
    0xb8, 0x48, 0x00, 0x00, 0x00, // mov eax, 72 (fcntl)
    0x0f, 0x05, // syscall
    0x48, 0x8b, 0x7c, 0x24, 0x08, // mov rdi, [rsp+8]
    0x48, 0x8d, 0x74, 0x24, 0x10, // lea rsi, [rsp+16]
    0x48, 0x8b, 0x04, 0x24, // mov rax, [rsp]
    0x48, 0x8d, 0x54, 0xc4, 0x10, // lea rdx, [rsp+rax*8+16]
    0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59 (execve)
    0x0f, 0x05, // syscall
    0xf7, 0xd8, // neg eax
    0x89, 0x44, 0x24, 0xfc, // mov [rsp-4], eax
    0xc6, 0x44, 0x24, 0xfb, 0x45, // mov byte [rsp-5], 'E'
    0xbf, 0xe8, 0x03, 0x00, 0x00, // mov edi, 1000
    0x48, 0x8d, 0x74, 0x24, 0xfb, // lea rsi, [rsp-5]
    0xba, 0x05, 0x00, 0x00, 0x00, // mov edx, 5
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (write)
    0x0f, 0x05, // syscall
    0xbf, 0x7f, 0x00, 0x00, 0x00, // mov edi, 127
    0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231 (exit_group)
    0x0f, 0x05, // syscall
];

const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;

/// The whole ELF file: header, one loadable segment (the file itself), the code.
pub fn elf() -> Vec<u8> {
    let total = (EHDR + PHDR + CODE.len()) as u64;
    let mut f = Vec::with_capacity(total as usize);
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    f.extend_from_slice(&(BASE + (EHDR + PHDR) as u64).to_le_bytes()); // entry
    f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    f.extend_from_slice(&(EHDR as u16).to_le_bytes());
    f.extend_from_slice(&(PHDR as u16).to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes()); // phnum
    f.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    f.extend_from_slice(&0u64.to_le_bytes()); // offset
    f.extend_from_slice(&BASE.to_le_bytes()); // vaddr
    f.extend_from_slice(&BASE.to_le_bytes()); // paddr
    f.extend_from_slice(&total.to_le_bytes()); // filesz
    f.extend_from_slice(&total.to_le_bytes()); // memsz
    f.extend_from_slice(&0x1000u64.to_le_bytes()); // align
    f.extend_from_slice(CODE);
    f
}

/// The trampoline in a sealed, close-on-exec memfd; None where memfds cannot hold
/// executables (vm.memfd_noexec = 2) or are missing: the child then execs directly.
pub fn memfd() -> Option<OwnedFd> {
    const MFD_CLOEXEC: u32 = 1;
    const MFD_ALLOW_SEALING: u32 = 2;
    const MFD_EXEC: u32 = 0x10;
    const F_SEAL_ALL: i32 = 0x1 | 0x2 | 0x4 | 0x8; // SEAL, SHRINK, GROW, WRITE
    let create = |flags: u32| {
        // SAFETY: a constant name; returns a new fd or -1.
        unsafe { libc::syscall(libc::SYS_memfd_create, c"minibox-exec".as_ptr(), flags) }
    };
    let mut fd = create(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if fd < 0 {
        // Kernels before 6.3 do not know MFD_EXEC (and every memfd is executable there).
        fd = create(MFD_CLOEXEC | MFD_ALLOW_SEALING);
    }
    if fd < 0 {
        return None;
    }
    // SAFETY: a new descriptor, ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let bytes = elf();
    use std::os::fd::AsRawFd;
    // SAFETY: writing our own buffer; fcntl on our fd.
    let ok = unsafe {
        libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) == bytes.len() as isize
            && libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, F_SEAL_ALL) == 0
    };
    ok.then_some(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Run the trampoline for real: it must exec the path it is given with the argv after
    /// it, and report a failed exec on fd 1000 as "E" + errno.
    fn run(path: &str, argv: &[&str]) -> (i32, String, Vec<u8>) {
        let fd = memfd().expect("memfd");
        let mut p = [0; 2];
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (r, w) = (p[0], p[1]);
        let mut s = [0; 2];
        assert_eq!(
            unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                    0,
                    s.as_mut_ptr(),
                )
            },
            0
        );
        let cstrs: Vec<std::ffi::CString> = std::iter::once(path)
            .chain(argv.iter().copied())
            .map(|a| std::ffi::CString::new(a).unwrap())
            .collect();
        let mut ptrs: Vec<*const libc::c_char> = cstrs.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let env: [*const libc::c_char; 1] = [std::ptr::null()];
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                libc::dup2(w, 1);
                libc::dup3(s[1], SOCK_FD, 0);
                libc::syscall(
                    libc::SYS_execveat,
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    ptrs.as_ptr(),
                    env.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
                libc::_exit(99);
            }
        }
        unsafe { libc::close(w) };
        unsafe { libc::close(s[1]) };
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let mut out = vec![0u8; 4096];
        let n = unsafe { libc::read(r, out.as_mut_ptr().cast(), out.len()) }.max(0);
        out.truncate(n as usize);
        let mut msg = vec![0u8; 64];
        let m = unsafe { libc::recv(s[0], msg.as_mut_ptr().cast(), msg.len(), libc::MSG_DONTWAIT) }
            .max(0);
        msg.truncate(m as usize);
        unsafe { libc::close(r) };
        unsafe { libc::close(s[0]) };
        (
            libc::WEXITSTATUS(status),
            String::from_utf8_lossy(&out).into(),
            msg,
        )
    }

    #[test]
    fn it_execs_the_path_with_the_argv_after_it() {
        // argv[0] as given ("zero"), not the path: the command sees what execvp would give.
        let (code, out, msg) = run(
            "/bin/sh",
            &["zero", "-c", "echo \"$0 $1\"; exit 3", "one", "two"],
        );
        assert_eq!(code, 3);
        assert_eq!(out, "one two\n");
        assert!(msg.is_empty(), "a successful exec reports nothing");
    }

    #[test]
    fn a_failed_exec_is_reported_as_e_and_errno() {
        let (code, _, msg) = run("/nonexistent", &["x"]);
        assert_eq!(code, 127);
        let mut want = vec![b'E'];
        want.extend_from_slice(&libc::ENOENT.to_le_bytes());
        assert_eq!(msg, want);
    }

    #[test]
    fn the_memfd_cannot_be_written() {
        let fd = memfd().unwrap();
        let r = unsafe { libc::write(fd.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EPERM)
        );
    }
}
