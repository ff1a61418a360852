//! Terminals for containers: the pseudo-terminal a `-t` container gets (made inside the
//! container, its master handed to mrun over the setup socket), raw mode and window size of
//! the host terminal, and the threads that relay bytes between the two. It does not decide
//! when a container gets a terminal, and it never touches signals beyond masking its own
//! threads: the caller owns signal forwarding.
//!
//! # API
//!
//! Child side (between clone and execve: raw system calls, no allocation, no panics):
//! - [`child_pty`]`(sock, uid)`: open the container's `/dev/ptmx`, send the master to mrun
//!   as a [`MSG_TTY`] message, become a session leader with the peer as controlling
//!   terminal and as fds 0, 1 and 2. Fails with `(step, errno)`.
//! - [`send_fd`]`(sock, tag, fd)`: one tagged SCM_RIGHTS message (what `child_pty` uses).
//!
//! Parent side:
//! - [`recv_msg`]`(sock) -> Msg`: the next setup-socket message: [`Msg::Fd`] (the pty
//!   master, close-on-exec), [`Msg::Data`] (anything else, e.g. a `b'S'`/`b'E'` failure)
//!   or [`Msg::Eof`] (the child exec'd, or died).
//! - [`RawMode::enable`]`(fd)`: put the host terminal in raw mode (cfmakeraw(3)); `None`
//!   when `fd` is not a terminal; Drop restores the saved termios.
//! - [`window_size`], [`set_window_size`], [`copy_window_size`]: TIOCGWINSZ/TIOCSWINSZ.
//! - [`relay`]`(master, input, output) -> Relay`: threads copying `input` → master and
//!   master → `output` (a callback, so a detached container's monitor can log instead);
//!   [`Relay::finish`] waits for all container output, [`Relay::finish_timeout`] gives up
//!   after a grace period (a background process may hold the terminal open).
//! - [`Sink`]: the output callback; [`sink`]`(w)` makes one that writes and flushes to `w`.
//! - [`pump`]`(from, to)`: a thread copying a plain fd to another until EOF, then closing
//!   `to` (`-i` without `-t`).
//! - [`PipedStdio`]: fds 0-2 for a process without `-t`: each of ours that is a terminal
//!   becomes a pipe ([`PipedStdio::started`] pumps stdin into its pipe; the caller relays
//!   [`PipedStdio::outputs`]), so the container never holds the caller's terminal.
//!
//! # Integration
//!
//! - Order in the child: after pivot_root (the devpts `newinstance` mount and the
//!   `/dev/ptmx -> pts/ptmx` link must exist: the master must come from the container's own
//!   devpts instance, or the container would see and reach the host's ptys), before
//!   set_ids (fchown of the terminal needs CAP_CHOWN), before prepare_exec (the setup socket
//!   must still be open; prepare_exec's CLOEXEC sweep of fds 3 and up is harmless since the
//!   terminal ends up on 0, 1 and 2). Do not call setsid(2) again: `child_pty` made the
//!   child a session leader, and a second setsid fails with EPERM.
//! - The parent's receive loop: `Fd` → keep the master and go on reading, `Data` → the
//!   failure it encodes, `Eof` → exec succeeded. Copy the window size onto the master as
//!   soon as it arrives (the command has not started yet).
//! - SIGWINCH: with `-t`, on SIGWINCH call `copy_window_size(stdin, relay.master())` and do
//!   not forward the signal: TIOCSWINSZ on the master makes the kernel signal the
//!   terminal's foreground process group (tty_ioctl(4)), which is the right target (the
//!   shell's current job, not necessarily pid 1).
//! - Relay threads block every signal, so process-directed signals still reach the thread
//!   that waits for them on a signalfd (`process::Child::wait`).

use std::ffi::{c_int, CStr};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Tag of the setup-socket message that carries the pty master. Failures use `b'S'` and
/// `b'E'` (process.rs), so the receive loop can tell them apart by the first byte.
pub const MSG_TTY: u8 = b'T';

const C_OPEN_PTMX: &CStr = c"open /dev/ptmx";
const C_UNLOCK: &CStr = c"unlock the pseudo-terminal";
const C_PEER: &CStr = c"open the pseudo-terminal's peer";
const C_CHOWN: &CStr = c"chown the terminal";
const C_SEND: &CStr = c"send the terminal to mrun";
const C_SETSID: &CStr = c"setsid";
const C_CTTY: &CStr = c"make the terminal the controlling terminal";
const C_DUP: &CStr = c"attach the terminal to stdin, stdout and stderr";

/// Room for the control message of one fd.
// SAFETY (both CMSG_SPACE calls): arithmetic on a length, no memory is touched.
const ONE_FD_SPACE: usize =
    unsafe { libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) } as usize;

/// A control-message buffer aligned for `cmsghdr` (cmsg(3)).
#[repr(C)]
union Cmsg<const N: usize> {
    _align: libc::cmsghdr,
    buf: [u8; N],
}

fn errno() -> i32 {
    // SAFETY: the thread's errno location is always valid.
    unsafe { *libc::__errno_location() }
}

/// Give the container a terminal: open `/dev/ptmx` (resolved in the container's root, so a
/// master of the container's own devpts instance), unlock it, open the peer through the
/// master with TIOCGPTPEER (no path lookup of `/dev/pts/N`, which the container could race;
/// ioctl_tty(2)), hand the master to mrun over `sock`, close our copy of it (or reading it
/// would never return EIO), then setsid(2), TIOCSCTTY and dup2 the peer onto 0, 1 and 2.
///
/// With `uid` other than 0 the peer is chowned to it first, as runc does, so a non-root
/// command owns its terminal (screen(1) and others refuse one they do not own); EINVAL and
/// EPERM (the uid or the inode's owner is not mapped in the user namespace) are ignored.
///
/// Allocation-free and panic-free: runs between clone and execve. On failure every fd it
/// opened is closed again and the step and errno are returned.
pub fn child_pty(sock: c_int, uid: u32) -> Result<(), (&'static CStr, i32)> {
    // SAFETY: raw system calls on descriptors this function opened, with valid pointers.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err((C_OPEN_PTMX, errno()));
        }
        let fail = |what: &'static CStr, fds: &[c_int]| {
            let e = errno();
            for &fd in fds {
                libc::close(fd);
            }
            Err((what, e))
        };
        let unlock: c_int = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) < 0 {
            return fail(C_UNLOCK, &[master]);
        }
        let slave = libc::ioctl(
            master,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return fail(C_PEER, &[master]);
        }
        if uid != 0
            && libc::fchown(slave, uid, libc::gid_t::MAX) < 0
            && !matches!(errno(), libc::EINVAL | libc::EPERM)
        {
            return fail(C_CHOWN, &[master, slave]);
        }
        if let Err(e) = send_fd(sock, MSG_TTY, master) {
            libc::close(master);
            libc::close(slave);
            return Err((C_SEND, e));
        }
        libc::close(master);
        if libc::setsid() < 0 {
            return fail(C_SETSID, &[slave]);
        }
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
            return fail(C_CTTY, &[slave]);
        }
        for fd in 0..3 {
            if libc::dup2(slave, fd) < 0 {
                return fail(C_DUP, &[slave]);
            }
        }
        if slave > 2 {
            libc::close(slave);
        }
    }
    Ok(())
}

/// Send `fd` over the unix socket `sock` as a one-byte message `tag` with SCM_RIGHTS
/// (unix(7)). Allocation-free, for the child; returns the errno on failure.
pub fn send_fd(sock: c_int, tag: u8, fd: c_int) -> Result<(), i32> {
    let mut byte = [tag];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = Cmsg::<ONE_FD_SPACE> {
        buf: [0; ONE_FD_SPACE],
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call, and
    // the control buffer is aligned and CMSG_SPACE(sizeof fd) long.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = (&mut control as *mut Cmsg<ONE_FD_SPACE>).cast();
        msg.msg_controllen = ONE_FD_SPACE as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() {
            return Err(libc::EINVAL);
        }
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<c_int>(), fd);
        loop {
            let n = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
            if n == 1 {
                return Ok(());
            }
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return Err(if n < 0 { errno() } else { libc::EIO });
        }
    }
}

/// One message from the setup socket.
#[derive(Debug)]
pub enum Msg {
    /// A [`MSG_TTY`] message: the pty master, close-on-exec.
    Fd(OwnedFd),
    /// Any other message, e.g. a failure report (its first byte says which kind). Any fds
    /// that came with it are closed.
    Data(Vec<u8>),
    /// The peer closed its end: with a CLOEXEC socket, the child exec'd (or died).
    Eof,
}

/// The longest message `recv_msg` takes; a longer one is an error, not silently cut.
const MSG_BUF: usize = 4096;
/// Descriptors `recv_msg` makes room for; we only ever send one, but more must not leak.
const MAX_FDS: usize = 8;
const FDS_SPACE: usize =
    unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<c_int>()) as u32) } as usize;

/// Receive the next message from the SOCK_SEQPACKET setup socket. Received fds are
/// close-on-exec (MSG_CMSG_CLOEXEC), so they cannot leak into another child.
pub fn recv_msg(sock: BorrowedFd<'_>) -> io::Result<Msg> {
    let mut data = vec![0u8; MSG_BUF];
    let mut control = Cmsg::<FDS_SPACE> {
        buf: [0; FDS_SPACE],
    };
    // SAFETY: the iovec and control buffer outlive recvmsg; the fds taken out of the
    // control messages were just installed in our table by the kernel and are owned by
    // nobody else.
    let (n, flags, mut fds) = unsafe {
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = (&mut control as *mut Cmsg<FDS_SPACE>).cast();
        msg.msg_controllen = FDS_SPACE as _;
        let n = loop {
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            break n as usize;
        };
        // Own every descriptor before looking at anything else, so none leaks.
        let mut fds = Vec::new();
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(c).cast::<c_int>();
                for i in 0..len / std::mem::size_of::<c_int>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        (n, msg.msg_flags, fds)
    };
    if flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other(
            "setup message carried more descriptors than expected",
        ));
    }
    if flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("setup message longer than {MSG_BUF} bytes"),
        ));
    }
    data.truncate(n);
    if n == 0 && fds.is_empty() {
        return Ok(Msg::Eof);
    }
    if data == [MSG_TTY] {
        return match (fds.pop(), fds.is_empty()) {
            (Some(fd), true) => Ok(Msg::Fd(fd)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "terminal message without exactly one descriptor",
            )),
        };
    }
    Ok(Msg::Data(data))
}

/// The host terminal in raw mode, as `docker run -it` and ssh(1) set it: cfmakeraw(3), so
/// keystrokes (including ^C, ^Z, ^D) reach the container's terminal unchanged and its
/// output reaches the screen unchanged; the container's own terminal does the echoing
/// and line editing. Drop puts the saved settings back (TCSADRAIN: after pending output).
///
/// Drop does not run on SIGKILL (nor on an abort); mrun blocks SIGINT, SIGTERM, SIGHUP,
/// SIGQUIT and the other forwarded signals (`process::FORWARDED`) and passes them on, so
/// every other way out returns through Drop. Keep the guard alive until the relay is
/// finished, and drop it before printing anything for the user.
pub struct RawMode {
    /// A dup of the terminal fd: termios belongs to the terminal, not the descriptor.
    fd: OwnedFd,
    saved: libc::termios,
}

impl RawMode {
    /// Switch the terminal on `fd` to raw mode; `Ok(None)` when `fd` is not a terminal.
    /// Like any tcsetattr(3), this stops a background mrun with SIGTTOU.
    pub fn enable(fd: BorrowedFd<'_>) -> io::Result<Option<RawMode>> {
        let Some(saved) = termios(fd) else {
            return Ok(None);
        };
        let mut raw = saved;
        // SAFETY: raw is a valid termios.
        unsafe { libc::cfmakeraw(&mut raw) };
        let fd = fd.try_clone_to_owned()?;
        set_termios(fd.as_fd(), &raw)?;
        Ok(Some(RawMode { fd, saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = set_termios(self.fd.as_fd(), &self.saved);
    }
}

/// The terminal settings of `fd`, or None when it is not a terminal.
fn termios(fd: BorrowedFd<'_>) -> Option<libc::termios> {
    // SAFETY: t is a valid termios for tcgetattr to fill.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        (libc::tcgetattr(fd.as_raw_fd(), &mut t) == 0).then_some(t)
    }
}

fn set_termios(fd: BorrowedFd<'_>, t: &libc::termios) -> io::Result<()> {
    loop {
        // SAFETY: t is a valid termios.
        if unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSADRAIN, t) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The window size of the terminal on `fd` (TIOCGWINSZ); None when it is not a terminal.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<libc::winsize> {
    // SAFETY: ws is a valid winsize for the ioctl to fill.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0).then_some(ws)
    }
}

/// Set the window size of the terminal on `fd` (TIOCSWINSZ). On a pty master this resizes
/// the pty, and the kernel sends SIGWINCH to its foreground process group if it changed.
pub fn set_window_size(fd: BorrowedFd<'_>, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: ws is a valid winsize.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Give `to` the window size of `from` (the host terminal → the container's pty master), at
/// start and on each SIGWINCH. Does nothing when `from` is not a terminal; a failure to set
/// is ignored (the container merely keeps its old size).
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Some(ws) = window_size(from) {
        let _ = set_window_size(to, &ws);
    }
}

/// Where the relay puts the container's output: called on the relay's thread with each
/// chunk read from the master. The relay ignores its errors and goes on calling it with
/// later chunks: the pty must be drained or the container blocks on a full terminal, and a
/// sink that also logs must not stop logging because mrun's stdout went away. (The `Result`
/// is there so a sink can use `?`.)
pub type Sink = Box<dyn FnMut(&[u8]) -> io::Result<()> + Send>;

/// A [`Sink`] that writes each chunk to `w` and flushes it (a prompt without a newline must
/// show up at once; `io::stdout()` is line-buffered). After the first error it writes
/// nothing more: a broken pipe on mrun's stdout is not an error.
pub fn sink(mut w: impl Write + Send + 'static) -> Sink {
    let mut broken = false;
    Box::new(move |b| {
        if broken {
            return Ok(());
        }
        let r = w.write_all(b).and_then(|()| w.flush());
        broken = r.is_err();
        r
    })
}

/// The threads copying between the host and a container's pty master. See [`relay`].
pub struct Relay {
    /// Shared with the threads: the fd number stays ours while any of them may use it.
    master: Arc<OwnedFd>,
    /// An eventfd; once written, both threads stop (the output thread drains first).
    stop: Arc<OwnedFd>,
    output: Option<JoinHandle<()>>,
    output_done: mpsc::Receiver<()>,
}

/// Start relaying: `input` (a dup of the host's stdin, or None for `-t` without `-i`) →
/// `master`, and `master` → `output` (see [`Sink`]), each on its own thread.
///
/// The output side ends when reading the master fails with EIO: every fd of the peer is
/// closed (the container and everything it started are gone), after all their output was
/// read. The input side ends on the stop signal from [`Relay::finish`] or Drop, on an
/// error, or on EOF of `input`: then, if the container's terminal is in canonical mode, its
/// VEOF character (^D) is written, twice when the last line was unfinished (the first
/// only ends the line), so the command reads EOF as it would from a closed pipe; a
/// terminal in non-canonical mode (an editor, a shell's line editor) has no EOF to send,
/// and gets nothing. (`docker attach` closes its stream instead; a pty master cannot be
/// half-closed.)
pub fn relay(master: OwnedFd, input: Option<OwnedFd>, output: Sink) -> io::Result<Relay> {
    let master = Arc::new(master);
    // SAFETY: eventfd returns a new descriptor or -1.
    let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if stop < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor owned by nobody else.
    let stop = Arc::new(unsafe { OwnedFd::from_raw_fd(stop) });
    let (done_tx, output_done) = mpsc::channel();
    let output = {
        let (master, stop) = (master.clone(), stop.clone());
        spawn_quiet("tty-output", move || {
            copy_output(&master, &stop, output);
            let _ = done_tx.send(());
        })?
    };
    let relay = Relay {
        master: master.clone(),
        stop: stop.clone(),
        output: Some(output),
        output_done,
    };
    if let Some(input) = input {
        // Detached: it may sit in read(2) on the host's stdin for as long as mrun lives.
        spawn_quiet("tty-input", move || copy_input(&input, &master, &stop))?;
    }
    Ok(relay)
}

impl Relay {
    /// The pty master, for [`copy_window_size`] on SIGWINCH.
    pub fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    /// Wait until all of the container's output was read and handed to the sink, then stop
    /// the input thread without waiting for it (it may be blocked in read(2) on stdin; it
    /// holds its own reference to the master, so no reused fd number can be written to).
    /// Blocks for as long as any process holds the container's terminal open: after
    /// `mrun exec -it`, a background job of the command may; see [`Relay::finish_timeout`].
    pub fn finish(mut self) {
        if let Some(t) = self.output.take() {
            let _ = t.join();
        }
    }

    /// Like [`Relay::finish`], but wait at most `grace` for the terminal to be closed; then
    /// take what output is already there and stop. True when the output ended by itself.
    pub fn finish_timeout(mut self, grace: Duration) -> bool {
        let ended = !matches!(
            self.output_done.recv_timeout(grace),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        if !ended {
            signal(&self.stop);
        }
        if let Some(t) = self.output.take() {
            let _ = t.join();
        }
        ended
    }
}

impl Drop for Relay {
    /// Stop both threads without waiting for them; output not yet read is dropped.
    fn drop(&mut self) {
        signal(&self.stop);
    }
}

/// Copy `from` to `to` on a thread until EOF (or an error on either side), then close both,
/// so the reader of `to` sees EOF: `-i` without `-t`, host stdin → the container's stdin
/// pipe. If `from` is the host's stdin, do not join the thread after the container ended:
/// it may wait in read(2) forever; it owns both fds, so detaching it is safe.
pub fn pump(from: OwnedFd, to: OwnedFd) -> io::Result<JoinHandle<()>> {
    spawn_quiet("stdin-pump", move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match read(from.as_fd(), &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if write_all(to.as_fd(), &buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// fds 0, 1 and 2 for a process without a terminal of its own (no `-t`). Docker gives such
/// a container pipes, never the caller's terminal: with it, the container could change the
/// terminal's settings for good (`stty -echo` outlives it) or, as the terminal's reader,
/// take what the user types next. So each of ours that is a terminal is replaced by a pipe
/// (stdin pumped into it by [`PipedStdio::started`], stdout and stderr relayed by the
/// caller from [`PipedStdio::outputs`]); anything else (a file, a pipe, /dev/null) is
/// handed over as it is, which costs nothing and keeps `mrun ... > file` direct.
pub struct PipedStdio {
    /// What the process's fds 0, 1 and 2 become; -1 keeps ours.
    pub fds: [c_int; 3],
    /// Read ends of its stdout and stderr pipes (None: passed through), for the caller to
    /// copy to our fds 1 and 2 until EOF.
    pub outputs: [Option<OwnedFd>; 2],
    /// Its ends, which we close once it started (so its exit is the pipes' EOF).
    theirs: Vec<OwnedFd>,
    /// (a dup of our stdin, the write end of its stdin pipe) for the pump.
    input: Option<(OwnedFd, OwnedFd)>,
}

impl PipedStdio {
    /// `keep_stdin`: stdin stays open (`-i`), else the process reads /dev/null.
    /// `pipe_outputs`: stdout and stderr are pipes whatever ours are (its output is logged).
    pub fn new(keep_stdin: bool, pipe_outputs: bool) -> io::Result<PipedStdio> {
        use std::io::IsTerminal;
        let mut s = PipedStdio {
            fds: [-1; 3],
            outputs: [None, None],
            theirs: Vec::new(),
            input: None,
        };
        if !keep_stdin {
            let null = std::fs::File::options()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            s.fds[0] = null.as_raw_fd();
            s.theirs.push(null.into());
        } else if io::stdin().is_terminal() {
            let (r, w) = pipe()?;
            s.fds[0] = r.as_raw_fd();
            s.theirs.push(r);
            s.input = Some((io::stdin().as_fd().try_clone_to_owned()?, w));
        }
        let ours = [io::stdout().is_terminal(), io::stderr().is_terminal()];
        for (i, terminal) in ours.into_iter().enumerate() {
            if pipe_outputs || terminal {
                let (r, w) = pipe()?;
                s.fds[i + 1] = w.as_raw_fd();
                s.theirs.push(w);
                s.outputs[i] = Some(r);
            }
        }
        Ok(s)
    }

    /// Once the process runs (it has its own copies): close ours of its ends, and start
    /// copying our stdin into its pipe; EOF on ours (^D) closes the pipe, its EOF.
    pub fn started(&mut self) -> io::Result<()> {
        self.theirs.clear();
        if let Some((from, to)) = self.input.take() {
            // Not joined: it may wait in read(2) on our terminal for as long as we live.
            pump(from, to)?;
        }
        Ok(())
    }
}

/// A pipe, both ends close-on-exec: (read, write).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Spawn a thread with every signal blocked, so process-directed signals go to the thread
/// that waits for them. The mask is set before the thread exists (it inherits ours), so no
/// signal can slip in before it would have blocked them itself.
fn spawn_quiet(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    // SAFETY: valid sigsets; the old mask is restored before returning.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let r = thread::Builder::new().name(name.into()).spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

fn signal(eventfd: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: an 8-byte write from a valid buffer.
    unsafe { libc::write(eventfd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
}

fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// poll(2) `fd` and, when given, `stop` for input; returns (fd ready, stop signalled).
fn wait_readable(fd: BorrowedFd<'_>, stop: Option<&OwnedFd>, timeout: c_int) -> (bool, bool) {
    let mut fds = [
        libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.map_or(-1, |s| s.as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: fds is a valid array of two pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        if r < 0 {
            // Nothing sensible to wait for: report "ready" so the read shows the error.
            return (true, false);
        }
        return (fds[0].revents != 0, fds[1].revents != 0);
    }
}

/// Reads after a stop, at most: a container that writes without pause must not keep the
/// output thread (and so `finish_timeout`) busy forever.
const DRAIN_READS: usize = 64;

fn copy_output(master: &OwnedFd, stop: &OwnedFd, mut out: Sink) {
    let mut buf = [0u8; 16 * 1024];
    let mut drain: Option<usize> = None;
    loop {
        let (ready, stopped) = match drain {
            None => wait_readable(master.as_fd(), Some(stop), -1),
            Some(0) => return,
            Some(left) => {
                drain = Some(left - 1);
                wait_readable(master.as_fd(), None, 0)
            }
        };
        if stopped {
            drain = Some(DRAIN_READS);
            continue;
        }
        if !ready {
            if drain.is_some() {
                return;
            }
            continue;
        }
        match read(master.as_fd(), &mut buf) {
            Ok(n) if n > 0 => {
                let _ = out(&buf[..n]);
            }
            // EIO: no process has the terminal open any more (pty(7)).
            Ok(_) => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

fn copy_input(input: &OwnedFd, master: &OwnedFd, stop: &OwnedFd) {
    let mut buf = [0u8; 4096];
    let mut line_open = false;
    loop {
        let (ready, stopped) = wait_readable(input.as_fd(), Some(stop), -1);
        if stopped {
            return;
        }
        if !ready {
            continue;
        }
        match read(input.as_fd(), &mut buf) {
            Ok(0) => {
                send_eof(master.as_fd(), line_open);
                return;
            }
            Ok(n) => {
                if write_all(master.as_fd(), &buf[..n]).is_err() {
                    return;
                }
                line_open = !matches!(buf[n - 1], b'\n' | b'\r' | 0x04);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Write the terminal's EOF character, if it is in canonical mode (termios(3), VEOF).
/// tcgetattr on a pty master reports the peer's settings (tty_mode_ioctl in the kernel).
fn send_eof(master: BorrowedFd<'_>, line_open: bool) {
    let Some(t) = termios(master) else { return };
    let eof = t.c_cc[libc::VEOF];
    // A disabled VEOF is _POSIX_VDISABLE, 0 on Linux.
    if t.c_lflag & libc::ICANON == 0 || eof == 0 {
        return;
    }
    let n = if line_open { 2 } else { 1 };
    let _ = write_all(master, &[eof; 2][..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::sync::{Mutex, MutexGuard};
    use std::time::Instant;

    /// Tests that fork run one at a time, so no child inherits another test's pty or pipe
    /// and keeps it open (every fd here is also close-on-exec, for other modules' spawns).
    fn serial() -> MutexGuard<'static, ()> {
        static LOCK: Mutex<()> = Mutex::new(());
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn owned(fd: c_int) -> OwnedFd {
        assert!(fd >= 0, "{}", io::Error::last_os_error());
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// (master, peer), both close-on-exec, from the host's devpts.
    fn pty_pair() -> (OwnedFd, OwnedFd) {
        unsafe {
            let m = owned(libc::open(
                c"/dev/ptmx".as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ));
            let zero: c_int = 0;
            assert_eq!(libc::ioctl(m.as_raw_fd(), libc::TIOCSPTLCK, &zero), 0);
            let s = owned(libc::ioctl(
                m.as_raw_fd(),
                libc::TIOCGPTPEER,
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ));
            (m, s)
        }
    }

    fn seqpacket() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0);
        (owned(fds[0]), owned(fds[1]))
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        (owned(fds[0]), owned(fds[1]))
    }

    /// Read until EOF or EIO (a pty master whose peer is closed), failing after `secs`.
    fn read_to_end(fd: BorrowedFd<'_>, secs: u64) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (ready, _) = wait_readable(fd, None, left.as_millis() as c_int);
            assert!(
                ready,
                "timed out; read so far: {:?}",
                String::from_utf8_lossy(&out)
            );
            let mut buf = [0u8; 4096];
            match read(fd, &mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.raw_os_error() == Some(libc::EIO) => return out,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Run `f` on a thread; fail the test if it takes longer than `secs`.
    fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(secs))
            .expect("did not finish in time")
    }

    /// A forked child; killed and reaped on drop if the test did not wait for it.
    struct Kid(Option<libc::pid_t>);

    impl Kid {
        /// Fork; the child runs `f` (raw system calls only) and exits with its result.
        fn fork(f: impl FnOnce() -> c_int) -> Kid {
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
            if pid == 0 {
                let code = f();
                unsafe { libc::_exit(code) }
            }
            Kid(Some(pid))
        }

        fn wait(mut self, secs: u64) -> c_int {
            let pid = self.0.take().unwrap();
            let deadline = Instant::now() + Duration::from_secs(secs);
            loop {
                let mut status = 0;
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    assert!(libc::WIFEXITED(status), "child status {status:#x}");
                    return libc::WEXITSTATUS(status);
                }
                if Instant::now() > deadline {
                    self.0 = Some(pid);
                    panic!("child {pid} did not exit");
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    impl Drop for Kid {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
        }
    }

    /// argv for execv, built before the fork (the child must not allocate).
    struct Argv(#[allow(dead_code)] Vec<CString>, Vec<*const libc::c_char>);

    fn sh(script: &str) -> Argv {
        let v: Vec<CString> = ["/bin/sh", "-c", script]
            .iter()
            .map(|s| CString::new(*s).unwrap())
            .collect();
        let p = v
            .iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        Argv(v, p)
    }

    /// Fork a "container": child_pty over `sock`, then exec `argv`. Returns the child and
    /// the master it sent.
    fn container(argv: &Argv) -> (Kid, OwnedFd) {
        let (parent, child) = seqpacket();
        let (c, path, args) = (child.as_raw_fd(), argv.1[0], argv.1.as_ptr());
        let kid = Kid::fork(|| unsafe {
            if child_pty(c, 0).is_err() {
                return 3;
            }
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            libc::execv(path, args);
            127
        });
        drop(child);
        let master = match recv_msg(parent.as_fd()).unwrap() {
            Msg::Fd(m) => m,
            other => panic!("expected the master, got {other:?}"),
        };
        assert!(matches!(recv_msg(parent.as_fd()).unwrap(), Msg::Eof));
        (kid, master)
    }

    type Collected = Arc<Mutex<Vec<u8>>>;

    /// A sink that keeps what it gets; with `fail`, it also reports an error each time.
    fn collector(fail: bool) -> (Collected, Sink) {
        let got: Collected = Default::default();
        let g = got.clone();
        let out: Sink = Box::new(move |b| {
            g.lock().unwrap().extend_from_slice(b);
            match fail {
                true => Err(io::ErrorKind::BrokenPipe.into()),
                false => Ok(()),
            }
        });
        (got, out)
    }

    fn text(c: &Collected) -> String {
        String::from_utf8_lossy(&c.lock().unwrap()).into_owned()
    }

    fn fields(t: &libc::termios) -> (u32, u32, u32, u32, u8, Vec<u8>, u32, u32) {
        (
            t.c_iflag,
            t.c_oflag,
            t.c_cflag,
            t.c_lflag,
            t.c_line,
            t.c_cc.to_vec(),
            t.c_ispeed,
            t.c_ospeed,
        )
    }

    #[test]
    fn raw_mode_is_cfmakeraw_and_drop_restores_every_field() {
        let _l = serial();
        let (_m, s) = pty_pair();
        let before = termios(s.as_fd()).unwrap();
        assert_ne!(
            before.c_lflag & libc::ICANON,
            0,
            "a new pty starts canonical"
        );
        {
            let _raw = RawMode::enable(s.as_fd()).unwrap().expect("a terminal");
            let t = termios(s.as_fd()).unwrap();
            let lflags = libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN;
            assert_eq!(t.c_lflag & lflags, 0);
            assert_eq!(t.c_oflag & libc::OPOST, 0);
            assert_eq!(t.c_iflag & (libc::ICRNL | libc::IXON), 0);
            assert_eq!(t.c_cflag & libc::CSIZE, libc::CS8);
            assert_eq!(t.c_cc[libc::VMIN], 1);
            assert_eq!(t.c_cc[libc::VTIME], 0);
        }
        let after = termios(s.as_fd()).unwrap();
        assert_eq!(fields(&before), fields(&after));
    }

    #[test]
    fn raw_mode_of_a_pipe_is_none() {
        let (r, _w) = pipe();
        assert!(RawMode::enable(r.as_fd()).unwrap().is_none());
        assert!(window_size(r.as_fd()).is_none());
    }

    #[test]
    fn window_size_is_copied_onto_the_master() {
        let _l = serial();
        let (_am, a) = pty_pair();
        let (bm, b) = pty_pair();
        let ws = libc::winsize {
            ws_row: 43,
            ws_col: 132,
            ws_xpixel: 1056,
            ws_ypixel: 688,
        };
        set_window_size(a.as_fd(), &ws).unwrap();
        copy_window_size(a.as_fd(), bm.as_fd());
        let got = window_size(b.as_fd()).unwrap();
        assert_eq!(
            (got.ws_row, got.ws_col, got.ws_xpixel, got.ws_ypixel),
            (43, 132, 1056, 688)
        );
    }

    #[test]
    fn child_pty_gives_the_child_a_controlling_terminal() {
        let _l = serial();
        let (parent, child) = seqpacket();
        let c = child.as_raw_fd();
        let kid = Kid::fork(|| unsafe {
            if child_pty(c, 0).is_err() {
                return 3;
            }
            // tcgetpgrp works only on the controlling terminal: it shows TIOCSCTTY worked.
            let tty = (0..3).all(|fd| libc::isatty(fd) == 1)
                && libc::getsid(0) == libc::getpid()
                && libc::tcgetpgrp(0) == libc::getpid();
            let msg: &[u8] = if tty { b"tty hello" } else { b"notty" };
            libc::write(1, msg.as_ptr().cast(), msg.len());
            0
        });
        drop(child);
        let master = match recv_msg(parent.as_fd()).unwrap() {
            Msg::Fd(m) => m,
            other => panic!("expected the master, got {other:?}"),
        };
        let flags = unsafe { libc::fcntl(master.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(
            flags & libc::FD_CLOEXEC,
            0,
            "received fds are close-on-exec"
        );
        let out = read_to_end(master.as_fd(), 10);
        assert_eq!(String::from_utf8_lossy(&out), "tty hello");
        assert!(matches!(recv_msg(parent.as_fd()).unwrap(), Msg::Eof));
        assert_eq!(kid.wait(10), 0);
    }

    #[test]
    fn child_pty_reports_its_step() {
        let _l = serial();
        // A socket that is not connected: the master cannot be sent.
        let (parent, child) = seqpacket();
        drop(parent);
        let c = child.as_raw_fd();
        let (rx, tx) = pipe();
        let t = tx.as_raw_fd();
        let kid = Kid::fork(|| unsafe {
            let b = match child_pty(c, 0) {
                Err((what, libc::EPIPE)) if what == C_SEND => b'y',
                _ => b'n',
            };
            libc::write(t, [b].as_ptr().cast(), 1);
            0
        });
        drop(tx);
        assert_eq!(read_to_end(rx.as_fd(), 10), b"y");
        assert_eq!(kid.wait(10), 0);
    }

    #[test]
    fn recv_msg_tells_data_fd_and_eof_apart() {
        let (a, b) = seqpacket();
        let (pr, pw) = pipe();
        let send = |m: &[u8]| unsafe {
            assert_eq!(
                libc::send(a.as_raw_fd(), m.as_ptr().cast(), m.len(), 0),
                m.len() as isize
            );
        };
        send(b"S\x01\x00\x00\x00mount proc");
        send_fd(a.as_raw_fd(), MSG_TTY, pr.as_raw_fd()).unwrap();
        // A failure message that also carries an fd: data, and the fd is not leaked.
        send_fd(a.as_raw_fd(), b'E', pr.as_raw_fd()).unwrap();
        send(&[MSG_TTY]);
        drop(a);
        match recv_msg(b.as_fd()).unwrap() {
            Msg::Data(d) => assert_eq!(d, b"S\x01\x00\x00\x00mount proc"),
            other => panic!("{other:?}"),
        }
        let got = match recv_msg(b.as_fd()).unwrap() {
            Msg::Fd(fd) => fd,
            other => panic!("{other:?}"),
        };
        write_all(pw.as_fd(), b"x").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(read(got.as_fd(), &mut buf).unwrap(), 1, "the same pipe");
        match recv_msg(b.as_fd()).unwrap() {
            Msg::Data(d) => assert_eq!(d, b"E"),
            other => panic!("{other:?}"),
        }
        let e = recv_msg(b.as_fd()).unwrap_err();
        assert!(e.to_string().contains("without exactly one"), "{e}");
        assert!(matches!(recv_msg(b.as_fd()).unwrap(), Msg::Eof));
    }

    #[test]
    fn relay_round_trip_and_finish_with_stdin_still_open() {
        let _l = serial();
        let argv = sh("read x; echo got:$x");
        let (kid, master) = container(&argv);
        let (input, keep_open) = pipe();
        let (got, out) = collector(false);
        let relay = relay(master, Some(input), out).unwrap();
        write_all(keep_open.as_fd(), b"abc\n").unwrap();
        // The input thread is still waiting on the pipe: finish must not wait for it.
        within(10, move || relay.finish());
        let t = text(&got);
        assert!(t.contains("got:abc\r\n"), "{t:?}");
        assert_eq!(kid.wait(10), 0);
        drop(keep_open);
    }

    #[test]
    fn relay_turns_stdin_eof_into_terminal_eof() {
        let _l = serial();
        let argv = sh("cat; echo done");
        let (kid, master) = container(&argv);
        let (input, w) = pipe();
        let (got, out) = collector(false);
        let relay = relay(master, Some(input), out).unwrap();
        // An unfinished line: the first ^D ends the line, the second is EOF.
        write_all(w.as_fd(), b"xyz").unwrap();
        drop(w);
        within(10, move || relay.finish());
        let t = text(&got);
        assert_eq!(t.matches("xyz").count(), 2, "echo and cat: {t:?}");
        assert!(t.ends_with("done\r\n"), "{t:?}");
        assert_eq!(kid.wait(10), 0);
    }

    #[test]
    fn finish_timeout_stops_when_a_background_job_holds_the_terminal() {
        let _l = serial();
        let argv = sh("trap '' HUP; sleep 5 & echo started");
        let (kid, master) = container(&argv);
        // The sleep is in the process group the child's setsid made: kill it however the
        // test ends.
        struct Group(libc::pid_t);
        impl Drop for Group {
            fn drop(&mut self) {
                unsafe { libc::kill(-self.0, libc::SIGKILL) };
            }
        }
        let _group = Group(kid.0.unwrap());
        let (got, out) = collector(false);
        let relay = relay(master, None, out).unwrap();
        let started = Instant::now();
        let ended = within(10, move || relay.finish_timeout(Duration::from_millis(500)));
        assert!(!ended, "sleep still holds the terminal");
        assert!(started.elapsed() < Duration::from_secs(4));
        assert!(text(&got).contains("started"), "{:?}", text(&got));
        assert_eq!(kid.wait(10), 0);
    }

    #[test]
    fn a_failing_sink_is_still_given_every_chunk() {
        let _l = serial();
        let argv = sh("echo one; sleep 0.3; echo two");
        let (kid, master) = container(&argv);
        let (got, out) = collector(true);
        let relay = relay(master, None, out).unwrap();
        within(10, move || relay.finish());
        assert_eq!(text(&got), "one\r\ntwo\r\n");
        assert_eq!(kid.wait(10), 0);
    }

    #[test]
    fn sink_survives_a_broken_pipe() {
        let (r, w) = pipe();
        let mut out = sink(std::fs::File::from(w));
        out(b"one").unwrap();
        assert_eq!(read(r.as_fd(), &mut [0u8; 8]).unwrap(), 3);
        drop(r);
        assert!(out(b"two").is_err(), "EPIPE, not SIGPIPE");
        out(b"three").unwrap();
    }

    #[test]
    fn pump_copies_and_closes() {
        let (ar, aw) = pipe();
        let (br, bw) = pipe();
        let t = pump(ar, bw).unwrap();
        write_all(aw.as_fd(), b"hello").unwrap();
        drop(aw);
        assert_eq!(read_to_end(br.as_fd(), 10), b"hello");
        within(10, move || t.join().unwrap());
    }
}
