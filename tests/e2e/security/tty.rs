//! Without `-t` a container gets no terminal of the caller's: any of mrun's (or mbuild's)
//! stdin, stdout and stderr that is a terminal reaches it through a pipe relayed by mrun, as
//! Docker gives pipes. Tried under script(1), which gives the command a pseudo-terminal: the
//! terminal's `stty -g` is read before and after a container that runs `stty -echo` on each
//! of its fds, in `mrun --rm`, `mrun -i`, `mrun exec` and a RUN step of `mbuild`. Output,
//! exit codes, stream separation and stdin's EOF must come through the relay unchanged.

use super::*;
use std::io::Write as _;

/// `cmd`, a shell command line, under script(1): its stdin, stdout and stderr are a new
/// pseudo-terminal (in canonical mode, echoing), `input` is typed into it. Returns the
/// terminal's output with "\r\n" made "\n", and script's exit code (the command's).
fn under_script(cmd: &str, input: &[u8]) -> (String, i32) {
    let mut c = Command::new("script");
    c.args(["-qec", cmd, "/dev/null"]);
    c.env_remove("MINIBOX_ROOT").stdin(Stdio::piped());
    let mut r = Running::spawn(c);
    let mut stdin = r.child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let o = r.output(TIMEOUT);
    let out = text(&o.stdout).replace("\r\n", "\n");
    (out, code(&o))
}

/// A word safe in the shell: the paths here hold none of its special characters.
fn q(s: &str) -> String {
    assert!(!s.contains('\''), "{s}");
    format!("'{s}'")
}

/// The terminal's settings before and after `run` (a shell command line), under script:
/// each must be the same. Returns the output between.
fn terminal_unchanged(what: &str, run: &str, input: &[u8]) -> String {
    let cmd =
        format!("echo \"before $(stty -g)\"; {run}; echo \"rc=$?\"; echo \"after $(stty -g)\"");
    let (out, _) = under_script(&cmd, input);
    let setting = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{what}: no {key:?} line in {out:?}"))
            .to_string()
    };
    let (before, after) = (setting("before "), setting("after "));
    assert_eq!(
        before, after,
        "{what}: the container changed the caller's terminal settings ({before} -> {after}); output: {out}"
    );
    out
}

fn mrun_line(env: &Env, args: &str) -> String {
    format!("{} --root {} {args}", q(MRUN), q(s(&env.root)))
}

/// The container's fds 0-2 that are terminals, as it reports them, then "checked".
const TTY_CHECK: &str =
    "sh -c 'test -t 0 && echo tty0; test -t 1 && echo tty1; test -t 2 && echo tty2; echo checked; stty -echo <&1; stty -echo <&2; stty -echo'";

/// The same as a RUN step, which must succeed.
const RUN_CHECK: &str = "test -t 0 && echo tty0; test -t 1 && echo tty1; test -t 2 && echo tty2; echo checked; stty -echo <&1; stty -echo <&2; stty -echo; true";

#[test]
fn without_t_a_container_cannot_change_the_callers_terminal() {
    if !is_root_and_busybox() || skip_unless(have("script"), "script missing (util-linux)") {
        return;
    }
    let Some(env) = setup() else { return };
    // Old code: each of these cleared ECHO on script's terminal (lflag 8a3b -> 8a33) and
    // reported tty1 and tty2 (and tty0 with -i).
    for args in [
        // Foreground and removed on exit: no log, so stdio was handed over as it was.
        format!("--rm {IMG} {TTY_CHECK}"),
        format!("-i --rm {IMG} {TTY_CHECK}"),
        // Logged: stdout and stderr were pipes already; stdin was not.
        format!("-i {IMG} {TTY_CHECK}"),
        format!("--rm --init {IMG} {TTY_CHECK}"),
    ] {
        let out = terminal_unchanged(&args, &mrun_line(&env, &args), b"");
        assert!(out.contains("checked\n"), "{args}: {out}");
        for fd in ["tty0", "tty1", "tty2"] {
            assert!(
                !lines(&out).contains(&fd),
                "{args}: the container got a terminal: {out}"
            );
        }
    }
    // Control: with -t the container has its own terminal (and changes only that one).
    let args = format!("-t --rm {IMG} {TTY_CHECK}");
    let out = terminal_unchanged(&args, &mrun_line(&env, &args), b"");
    for fd in ["tty0", "tty1", "tty2"] {
        assert!(lines(&out).contains(&fd), "-t: {out}");
    }
}

#[test]
fn exec_without_t_cannot_change_the_callers_terminal() {
    if !is_root_and_busybox() || skip_unless(have("script"), "script missing (util-linux)") {
        return;
    }
    let Some(env) = setup() else { return };
    let name = unique("tty-exec");
    let _d = Detached::start(&env, Path::new(MRUN), &name, &[IMG, "sleep", "600"]);
    for opts in ["", "-i"] {
        let args = format!("exec {opts} {name} {TTY_CHECK}");
        let out = terminal_unchanged(&args, &mrun_line(&env, &args), b"");
        assert!(out.contains("checked\n"), "{args}: {out}");
        for fd in ["tty0", "tty1", "tty2"] {
            assert!(!lines(&out).contains(&fd), "{args}: a terminal: {out}");
        }
    }
}

#[test]
fn a_run_step_cannot_change_the_terminal_mbuild_runs_in() {
    if !is_root_and_busybox() || skip_unless(have("script"), "script missing (util-linux)") {
        return;
    }
    let Some(env) = setup() else { return };
    let ctx = context(&env, "ctx", &format!("FROM {IMG}\nRUN {RUN_CHECK}\n"), &[]);
    let run = format!(
        "{} --root {} -t tty:1 {}",
        q(MBUILD),
        q(s(&env.root)),
        q(s(&ctx))
    );
    let out = terminal_unchanged("mbuild", &run, b"");
    assert!(out.contains("checked\n"), "{out}");
    assert!(out.contains("Successfully tagged tty:1"), "{out}");
    for fd in ["tty0", "tty1", "tty2"] {
        assert!(
            !lines(&out).contains(&fd),
            "a RUN step got a terminal: {out}"
        );
    }
}

#[test]
fn relayed_stdio_keeps_output_order_streams_exit_codes_and_eof() {
    if !is_root_and_busybox() || skip_unless(have("script"), "script missing (util-linux)") {
        return;
    }
    let Some(env) = setup() else { return };
    // stdout to a file (passed through as it is), stderr the terminal (relayed): each
    // stream gets only its own bytes, and the exit code comes through.
    let file = env.path("stdout.txt");
    let run = mrun_line(
        &env,
        &format!(
            "--rm {IMG} sh -c 'echo to-stdout; echo to-stderr >&2; exit 7' > {}",
            q(s(&file))
        ),
    );
    let (out, _) = under_script(&format!("{run}; echo \"rc=$?\""), b"");
    assert_eq!(fs::read_to_string(&file).unwrap(), "to-stdout\n");
    assert!(lines(&out).contains(&"to-stderr"), "{out}");
    assert!(!out.contains("to-stdout"), "{out}");
    assert!(lines(&out).contains(&"rc=7"), "{out}");

    // Order within a stream, through the relay.
    let run = mrun_line(&env, &format!("--rm {IMG} seq 1 5000"));
    let (out, code) = under_script(&run, b"");
    assert_eq!(code, 0, "{out}");
    let want: Vec<String> = (1..=5000).map(|n| n.to_string()).collect();
    assert_eq!(lines(&out), want, "seq through the relay");

    // -i: what is typed reaches the container; ^D at the start of a line is its EOF.
    for keep in ["--rm", ""] {
        let run = mrun_line(
            &env,
            &format!("-i {keep} {IMG} sh -c 'cat; echo eof-seen; exit 3'"),
        );
        let (out, code) = under_script(&run, b"typed line\n\x04");
        assert_eq!(code, 3, "-i {keep}: {out}");
        // Once echoed by the terminal, once by cat.
        let typed = lines(&out).iter().filter(|l| **l == "typed line").count();
        assert_eq!(typed, 2, "-i {keep}: {out}");
        assert!(lines(&out).contains(&"eof-seen"), "-i {keep}: {out}");
    }
}
