//! Stage two of the Minifile parser: raw nodes -> typed instructions grouped into stages.
//! Everything that can be judged without a build context is judged here, each error with
//! file:line:col: which instructions and flags minibox supports, argument counts, stage
//! names, port and signal syntax. Values stay as written (quotes, `$VAR`, escapes): the
//! build loop calls [`Instruction::expand`] (or `expand::word` for FROM) with the ENV and ARG
//! values of that moment, as Docker does.

use super::expand::{self, ExpandError, Lookup};
use super::lines::{Node, Parsed};
use super::ParseError;

/// A parsed Minifile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Minifile {
    /// The escape character (`\`, or `` ` `` from a `# escape=` directive): pass it to
    /// `expand::word` / [`Instruction::expand`].
    pub escape: char,
    /// `ARG name[=default]` before the first FROM: the only values FROM may expand.
    pub args_before_from: Vec<(String, Option<String>)>,
    /// At least one.
    pub stages: Vec<Stage>,
}

/// `FROM image [AS name]` and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stage {
    /// The image word as written (expand it with `args_before_from` in scope).
    pub from: String,
    /// From `AS name`: lower case, `[a-z][a-z0-9-_.]*`, unique in the file.
    pub name: Option<String>,
    /// `--platform=...`, unexpanded.
    pub platform: Option<String>,
    /// Line and text of the FROM instruction.
    pub line: usize,
    pub text: String,
    pub instructions: Vec<Located>,
}

/// An instruction and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Located {
    /// First line (1-based) of the instruction.
    pub line: usize,
    /// The logical line as written, continuations joined: for messages and history.
    pub text: String,
    pub inst: Instruction,
}

/// One instruction, values unexpanded. See [`Instruction::expand`] for which values Docker
/// substitutes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Instruction {
    Run(Command),
    Cmd(Command),
    Entrypoint(Command),
    /// Always the JSON form.
    Shell(Vec<String>),
    Env(Vec<(String, String)>),
    /// MAINTAINER x becomes `Label([("maintainer", "'x'")])`, quoted so that expansion
    /// gives x back unchanged (Docker does not expand MAINTAINER).
    Label(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Add {
        srcs: Vec<String>,
        dest: String,
        chown: Option<String>,
        chmod: Option<String>,
    },
    Copy {
        srcs: Vec<String>,
        dest: String,
        /// A stage name or index, or an image.
        from: Option<String>,
        chown: Option<String>,
        chmod: Option<String>,
    },
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
}

/// RUN, CMD and ENTRYPOINT: the exec form (a JSON array, run as is) or the shell form (the
/// text, run by the SHELL, default `/bin/sh -c`). Neither is ever expanded by the builder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

const SUPPORTED: &str = "FROM, RUN, CMD, ENTRYPOINT, SHELL, ENV, ARG, LABEL, MAINTAINER, ADD, COPY, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL";
const KEYWORDS: &[&str] = &[
    "from",
    "run",
    "cmd",
    "entrypoint",
    "shell",
    "env",
    "arg",
    "label",
    "maintainer",
    "add",
    "copy",
    "workdir",
    "user",
    "expose",
    "volume",
    "stopsignal",
    "onbuild",
    "healthcheck",
];

impl Instruction {
    /// The instruction with Docker's variable substitution applied, `lookup` giving the
    /// ENV and ARG values in scope before this instruction (so `ENV A=1 B=$A` sees the old
    /// A, as in Docker). Substituted: ENV and LABEL keys and values, ARG names and defaults,
    /// ADD/COPY sources, destination and flags, WORKDIR, USER, VOLUME, STOPSIGNAL (one word
    /// each, blanks kept) and EXPOSE (split into words, so one `$PORTS` may give several).
    /// RUN, CMD, ENTRYPOINT and SHELL are returned unchanged: the container's shell expands
    /// those.
    pub fn expand(&self, escape: char, lookup: &Lookup<'_>) -> Result<Instruction, ExpandError> {
        use Instruction::*;
        let w = |s: &String| expand::word(s, lookup, escape);
        let ow = |s: &Option<String>| s.as_ref().map(w).transpose();
        let all = |v: &[String]| v.iter().map(w).collect::<Result<Vec<_>, _>>();
        let pairs = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, x)| Ok::<_, ExpandError>((w(k)?, w(x)?)))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match self {
            Run(_) | Cmd(_) | Entrypoint(_) | Shell(_) => self.clone(),
            Env(v) => Env(pairs(v)?),
            Label(v) => Label(pairs(v)?),
            Arg(v) => Arg(v
                .iter()
                .map(|(k, d)| Ok::<_, ExpandError>((w(k)?, ow(d)?)))
                .collect::<Result<_, _>>()?),
            Add {
                srcs,
                dest,
                chown,
                chmod,
            } => Add {
                srcs: all(srcs)?,
                dest: w(dest)?,
                chown: ow(chown)?,
                chmod: ow(chmod)?,
            },
            Copy {
                srcs,
                dest,
                from,
                chown,
                chmod,
            } => Copy {
                srcs: all(srcs)?,
                dest: w(dest)?,
                from: ow(from)?,
                chown: ow(chown)?,
                chmod: ow(chmod)?,
            },
            Workdir(p) => Workdir(w(p)?),
            User(u) => User(w(u)?),
            StopSignal(s) => StopSignal(w(s)?),
            Volume(v) => Volume(all(v)?),
            Expose(v) => {
                let mut out = Vec::new();
                for p in v {
                    out.extend(expand::words(p, lookup, escape)?);
                }
                Expose(out)
            }
        })
    }

    /// The keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        use Instruction::*;
        match self {
            Run(_) => "RUN",
            Cmd(_) => "CMD",
            Entrypoint(_) => "ENTRYPOINT",
            Shell(_) => "SHELL",
            Env(_) => "ENV",
            Label(_) => "LABEL",
            Arg(_) => "ARG",
            Add { .. } => "ADD",
            Copy { .. } => "COPY",
            Workdir(_) => "WORKDIR",
            User(_) => "USER",
            Expose(_) => "EXPOSE",
            Volume(_) => "VOLUME",
            StopSignal(_) => "STOPSIGNAL",
        }
    }
}

impl Minifile {
    /// A stable, readable dump of stage two, for golden tests.
    pub fn dump(&self) -> String {
        let mut s = format!("escape {:?}\n", self.escape);
        for (k, v) in &self.args_before_from {
            s += &format!("arg {k:?} {v:?}\n");
        }
        for (i, st) in self.stages.iter().enumerate() {
            s += &format!(
                "stage {i} line {}: from {:?} name {:?} platform {:?}\n",
                st.line, st.from, st.name, st.platform
            );
            for l in &st.instructions {
                s += &format!("  {}: {:?}\n", l.line, l.inst);
            }
        }
        s
    }
}

/// Stage two over the nodes of stage one. `file` names the file in errors.
pub fn parse(file: &str, parsed: &Parsed) -> Result<Minifile, ParseError> {
    let mut m = Minifile {
        escape: parsed.escape as char,
        args_before_from: Vec::new(),
        stages: Vec::new(),
    };
    // COPY --from=NAME that names no stage so far: an image, unless a later stage has NAME.
    let mut from_refs: Vec<(String, ParseError)> = Vec::new();
    for node in &parsed.nodes {
        let cx = Cx {
            file,
            node,
            escape: parsed.escape,
        };
        let text = cx.text()?;
        if node.keyword == "from" {
            let stage = cx.from(&m.stages, text)?;
            if let Some((_, e)) = from_refs
                .iter()
                .find(|(n, _)| stage.name.as_ref() == Some(n))
            {
                return Err(e.clone());
            }
            m.stages.push(stage);
            continue;
        }
        let inst = cx.instruction(&m.stages)?;
        if let Instruction::Copy { from: Some(f), .. } = &inst {
            let known = m
                .stages
                .iter()
                .any(|s| s.name.as_deref() == Some(&f.to_lowercase()));
            if is_static(f, parsed.escape) && f.parse::<usize>().is_err() && !known {
                let at = format!("--from={f}");
                let e = cx.err_at(
                    at.as_bytes(),
                    format!(
                        "COPY {at} names a stage defined later: minibox builds stages in order"
                    ),
                );
                from_refs.push((f.to_lowercase(), e));
            }
        }
        let Some(stage) = m.stages.last_mut() else {
            match inst {
                Instruction::Arg(args) => m.args_before_from.extend(args),
                _ => {
                    return Err(cx.err(format!(
                        "{} before the first FROM: only ARG may come before FROM",
                        cx.upper()
                    )))
                }
            }
            continue;
        };
        stage.instructions.push(Located {
            line: node.start_line,
            text,
            inst,
        });
    }
    if m.stages.is_empty() {
        let last = parsed.nodes.last().map_or(1, |n| n.start_line);
        return Err(ParseError::new(
            file,
            last,
            1,
            "no FROM instruction: a Minifile needs at least one stage".into(),
            None,
        ));
    }
    Ok(m)
}

/// One node being judged.
struct Cx<'a> {
    file: &'a str,
    node: &'a Node,
    escape: u8,
}

impl Cx<'_> {
    fn upper(&self) -> String {
        self.node.keyword.to_uppercase()
    }

    fn err(&self, msg: String) -> ParseError {
        ParseError::new(
            self.file,
            self.node.start_line,
            self.node.col,
            msg,
            Some(&self.node.original),
        )
    }

    /// An error pointing at `needle` in the line, if it is there.
    fn err_at(&self, needle: &[u8], msg: String) -> ParseError {
        let (line, col) = self.node.position_of(needle);
        ParseError::new(self.file, line, col, msg, Some(&self.node.original))
    }

    /// The line as text: a Minifile must be UTF-8 from here on.
    fn text(&self) -> Result<String, ParseError> {
        match std::str::from_utf8(&self.node.original) {
            Ok(s) => Ok(s.trim().to_string()),
            Err(e) => {
                let (line, col) = self.node.position(e.valid_up_to());
                Err(ParseError::new(
                    self.file,
                    line,
                    col,
                    "invalid UTF-8: a Minifile must be UTF-8 text".into(),
                    Some(&self.node.original),
                ))
            }
        }
    }

    fn words(&self) -> Vec<String> {
        self.node
            .words()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect()
    }

    /// The `--name=value` flags, each name at most once and in `allowed`.
    fn flags(&self, allowed: &[&str]) -> Result<Vec<(String, String)>, ParseError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for raw in &self.node.flags {
            let f = String::from_utf8_lossy(raw);
            let body = f.strip_prefix("--").unwrap_or(&f);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let at = format!("--{name}");
            if !allowed.contains(&name) {
                let supported = if allowed.is_empty() {
                    format!("{} takes no flags", self.upper())
                } else {
                    let list: Vec<String> = allowed.iter().map(|a| format!("--{a}")).collect();
                    format!("{} supports {}", self.upper(), list.join(", "))
                };
                return Err(self.err_at(at.as_bytes(), format!("unknown flag: {at} ({supported})")));
            }
            if out.iter().any(|(n, _)| n == name) {
                return Err(self.err_at(at.as_bytes(), format!("duplicate flag specified: {at}")));
            }
            match value {
                Some(v) if !v.is_empty() => out.push((name.to_string(), v.to_string())),
                _ => {
                    return Err(self.err_at(at.as_bytes(), format!("missing a value on flag: {at}")))
                }
            }
        }
        Ok(out)
    }

    fn no_flags(&self) -> Result<(), ParseError> {
        self.flags(&[]).map(|_| ())
    }

    fn from(&self, stages: &[Stage], text: String) -> Result<Stage, ParseError> {
        let flags = self.flags(&["platform"])?;
        let words = self.words();
        let name = match words.as_slice() {
            [_] => None,
            [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
                let lower = name.to_lowercase();
                if !valid_stage_name(&lower) {
                    return Err(self.err_at(
                        name.as_bytes(),
                        format!("invalid name for build stage: {name:?}, name can't start with a number or contain symbols"),
                    ));
                }
                if stages.iter().any(|s| s.name.as_deref() == Some(&lower)) {
                    return Err(
                        self.err_at(name.as_bytes(), format!("duplicate stage name {lower:?}"))
                    );
                }
                Some(lower)
            }
            _ => {
                return Err(self.err(
                    "FROM requires either one or three arguments (FROM image [AS name])".into(),
                ))
            }
        };
        Ok(Stage {
            from: words[0].clone(),
            name,
            platform: flags.into_iter().next().map(|(_, v)| v),
            line: self.node.start_line,
            text,
            instructions: Vec::new(),
        })
    }

    fn instruction(&self, stages: &[Stage]) -> Result<Instruction, ParseError> {
        use Instruction::*;
        let kw = self.node.keyword.as_str();
        let upper = self.upper();
        if !matches!(kw, "add" | "copy") {
            if matches!(kw, "onbuild" | "healthcheck") {
                return Err(self.err(format!("{upper} is not supported by minibox")));
            }
            if !KEYWORDS.contains(&kw) {
                let written = self
                    .node
                    .original
                    .split(|b| b.is_ascii_whitespace())
                    .find(|w| !w.is_empty())
                    .unwrap_or(b"");
                let written = String::from_utf8_lossy(written);
                let hint = match KEYWORDS
                    .iter()
                    .find(|k| distance(k, kw) <= 2 && !matches!(**k, "onbuild" | "healthcheck"))
                {
                    Some(k) => format!("did you mean {}? ", k.to_uppercase()),
                    None => String::new(),
                };
                return Err(self.err(format!(
                    "unknown instruction: {written} ({hint}minibox supports {SUPPORTED})"
                )));
            }
            self.no_flags()?;
        }
        let words = self.words();
        let exactly_one = || match words.as_slice() {
            [w] => Ok(w.clone()),
            _ => Err(self.err(format!("{upper} requires exactly one argument"))),
        };
        let at_least_one = || {
            if words.is_empty() {
                Err(self.err(format!("{upper} requires at least one argument")))
            } else {
                Ok(())
            }
        };
        Ok(match kw {
            "run" => Run(self.command()?),
            "cmd" => Cmd(self.command()?),
            "entrypoint" => Entrypoint(self.command()?),
            "shell" => {
                if !self.node.json {
                    return Err(self.err("SHELL requires the arguments to be in JSON form: SHELL [\"executable\", \"parameters\"]".into()));
                }
                at_least_one()?;
                Shell(words)
            }
            "env" | "label" => {
                at_least_one()?;
                let pairs: Vec<(String, String)> = words
                    .chunks(3)
                    .map(|t| (t[0].clone(), t[1].clone()))
                    .collect();
                if pairs.iter().any(|(k, _)| k.is_empty()) {
                    return Err(self.err(format!("{upper} names can not be blank")));
                }
                if kw == "env" {
                    Env(pairs)
                } else {
                    Label(pairs)
                }
            }
            "maintainer" => Label(vec![(
                "maintainer".into(),
                single_quoted(&exactly_one()?, self.escape as char),
            )]),
            "arg" => {
                at_least_one()?;
                let mut args = Vec::new();
                for w in &words {
                    let (k, v) = match w.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (w.clone(), None),
                    };
                    if k.is_empty() {
                        return Err(self.err_at(w.as_bytes(), "ARG names can not be blank".into()));
                    }
                    args.push((k, v));
                }
                Arg(args)
            }
            "add" | "copy" => self.add_copy(stages, words)?,
            "workdir" => Workdir(exactly_one()?),
            "user" => User(exactly_one()?),
            "stopsignal" => {
                let s = exactly_one()?;
                if is_static(&s, self.escape) && signal_number(&s).is_none() {
                    return Err(self.err_at(s.as_bytes(), format!("invalid signal {s:?} for STOPSIGNAL: a name like SIGTERM or a number 1-64")));
                }
                StopSignal(s)
            }
            "expose" => {
                at_least_one()?;
                for p in &words {
                    if is_static(p, self.escape) {
                        exposed_ports(p).map_err(|e| self.err_at(p.as_bytes(), e))?;
                    }
                }
                Expose(words)
            }
            "volume" => {
                at_least_one()?;
                if words.iter().any(|v| v.trim().is_empty()) {
                    return Err(self.err("VOLUME specified can not be an empty string".into()));
                }
                Volume(words)
            }
            _ => unreachable!("{kw} was checked above"),
        })
    }

    /// RUN, CMD, ENTRYPOINT.
    fn command(&self) -> Result<Command, ParseError> {
        let words = self.words();
        if self.node.json {
            if words.is_empty() && self.node.keyword == "run" {
                return Err(self.err("RUN [] has no command to run".into()));
            }
            return Ok(Command::Exec(words));
        }
        let Some(text) = words.into_iter().next() else {
            return Err(self.err(format!("{} requires at least one argument", self.upper())));
        };
        if self.node.keyword == "run" {
            self.no_heredoc(&text)?;
        }
        Ok(Command::Shell(text))
    }

    fn add_copy(
        &self,
        stages: &[Stage],
        mut words: Vec<String>,
    ) -> Result<Instruction, ParseError> {
        let add = self.node.keyword == "add";
        let upper = self.upper();
        let flags = self.flags(if add {
            &["chown", "chmod"]
        } else {
            &["from", "chown", "chmod"]
        })?;
        let flag = |n: &str| flags.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        if words.len() < 2 {
            return Err(self.err(format!(
                "{upper} requires at least two arguments (sources and a destination)"
            )));
        }
        if !self.node.json {
            self.no_heredoc(&String::from_utf8_lossy(&self.node.original))?;
        }
        let chmod = flag("chmod");
        if let Some(m) = chmod.as_deref().filter(|m| is_static(m, self.escape)) {
            let octal =
                !m.is_empty() && m.len() <= 5 && m.bytes().all(|b| (b'0'..=b'7').contains(&b));
            if !octal || u32::from_str_radix(m, 8).map_or(true, |v| v > 0o7777) {
                return Err(self.err_at(
                    format!("--chmod={m}").as_bytes(),
                    format!("invalid --chmod value {m:?}: an octal mode like 0755 is expected"),
                ));
            }
        }
        let from = flag("from");
        if let Some(f) = from.as_deref().filter(|f| is_static(f, self.escape)) {
            let at = format!("--from={f}");
            let current = stages.len().saturating_sub(1);
            if let Ok(i) = f.parse::<usize>() {
                if i >= current {
                    return Err(self.err_at(at.as_bytes(), format!("COPY {at} must name an earlier stage (stages are numbered from 0; this is stage {current})")));
                }
            } else if stages.last().and_then(|s| s.name.as_deref()) == Some(&f.to_lowercase()) {
                return Err(
                    self.err_at(at.as_bytes(), format!("COPY {at} names the stage it is in"))
                );
            }
        }
        let dest = words.pop().unwrap_or_default();
        Ok(if add {
            Instruction::Add {
                srcs: words,
                dest,
                chown: flag("chown"),
                chmod,
            }
        } else {
            Instruction::Copy {
                srcs: words,
                dest,
                from,
                chown: flag("chown"),
                chmod,
            }
        })
    }

    /// BuildKit reads `<<EOF` here-documents in RUN, ADD and COPY; minibox does not, so
    /// refuse them rather than run something else than what was meant.
    fn no_heredoc(&self, text: &str) -> Result<(), ParseError> {
        if !text.contains("<<") {
            return Ok(());
        }
        for w in raw_words(text, self.escape as char) {
            let rest = w.trim_start_matches(|c: char| c.is_ascii_digit());
            if let Some(rest) = rest.strip_prefix("<<") {
                let rest = rest.strip_prefix('-').unwrap_or(rest);
                if !rest.is_empty() && !rest.contains('<') {
                    return Err(self.err_at(
                        w.as_bytes(),
                        format!("here-documents ({w}) are not supported by minibox"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Words split on blanks outside quotes, quotes and escapes kept.
fn raw_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            _ if c == escape && quote != Some('\'') => {
                word.push(c);
                word.extend(chars.next());
                continue;
            }
            Some(q) if c == q => quote = None,
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                continue;
            }
            _ => {}
        }
        word.push(c);
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// No `$`, quote or escape: the word means what it says before any expansion.
fn is_static(s: &str, escape: u8) -> bool {
    !s.bytes()
        .any(|b| b == b'$' || b == b'\'' || b == b'"' || b == escape)
}

fn valid_stage_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.')
        })
}

/// `'text'`, with each `'` in it written as `'\''`: expands back to exactly `text`.
fn single_quoted(text: &str, escape: char) -> String {
    format!("'{}'", text.replace('\'', &format!("'{escape}''")))
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// An EXPOSE word, after expansion: `PORT[/PROTO]` or `FROM-TO[/PROTO]`, proto tcp
/// (default), udp or sctp. Gives the image config's keys, one per port: `["80/tcp"]`.
pub fn exposed_ports(spec: &str) -> Result<Vec<String>, String> {
    let bad = |why: &str| format!("invalid port {spec:?} for EXPOSE: {why}");
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad("the protocol must be tcp, udp or sctp"));
    }
    let port = |s: &str| -> Result<u16, String> {
        match s.parse::<u16>() {
            Ok(p) if p > 0 && !s.starts_with('+') => Ok(p),
            _ => Err(bad(
                "a port is a number from 1 to 65535, or a range like 8000-8010",
            )),
        }
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(bad("the range's end is before its start"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// A STOPSIGNAL value, after expansion: `SIGTERM`, `term`, `RTMIN+3` or `15`; its number on
/// Linux.
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    const NAMES: &[(&str, i32)] = &[
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("IOT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("POLL", 29),
        ("PWR", 30),
        ("SYS", 31),
        ("RTMIN", 34),
        ("RTMAX", 64),
    ];
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Some(n);
    }
    let offset = |rest: &str| rest.parse::<i32>().ok().filter(|n| (1..=30).contains(n));
    if let Some(rest) = name.strip_prefix("RTMIN+") {
        return offset(rest).map(|n| 34 + n);
    }
    if let Some(rest) = name.strip_prefix("RTMAX-") {
        return offset(rest).map(|n| 64 - n);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::parse_bytes;
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    fn parse_ok(src: &str) -> Minifile {
        parse_bytes("Minifile", src.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(src: &str) -> String {
        parse_bytes("Minifile", src.as_bytes())
            .unwrap_err()
            .to_string()
    }

    /// The folders under testdata/: `Minifile` in, `expected` out (stage two's dump, or
    /// `error: ...`). UPDATE_GOLDEN=1 rewrites the expected files.
    #[test]
    fn golden() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/minifile/testdata");
        let mut cases: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        cases.sort();
        assert!(
            cases.len() >= 10,
            "golden cases missing in {}",
            dir.display()
        );
        let update = std::env::var_os("UPDATE_GOLDEN").is_some();
        let mut failed = Vec::new();
        for case in &cases {
            let src = std::fs::read(case.join("Minifile")).unwrap();
            let got = match parse_bytes("Minifile", &src) {
                Ok(m) => m.dump(),
                Err(e) => format!("error: {e}\n"),
            };
            let expected_path = case.join("expected");
            if update {
                std::fs::write(&expected_path, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if got != want {
                failed.push(format!(
                    "{}:\n--- want\n{want}--- got\n{got}",
                    case.display()
                ));
            }
        }
        assert!(
            failed.is_empty(),
            "{} golden case(s) differ:\n{}",
            failed.len(),
            failed.join("\n")
        );
    }

    #[test]
    fn instruction_shapes() {
        let m = parse_ok(concat!(
            "ARG V=1\n",
            "FROM debian:${V} AS Base\n",
            "RUN [\"sh\", \"-c\", \"echo $HOME\"]\n",
            "RUN echo \"$HOME\" \\\n  && true\n",
            "ENV A=1 B=\"x y\"\n",
            "ENV OLD a b\n",
            "COPY --chown=1:1 --chmod=0644 a b /dst/\n",
            "MAINTAINER Jo's <jo@x>\n",
        ));
        assert_eq!(
            m.args_before_from,
            [("V".to_string(), Some("1".to_string()))]
        );
        let st = &m.stages[0];
        assert_eq!(
            (st.from.as_str(), st.name.as_deref(), st.line),
            ("debian:${V}", Some("base"), 2)
        );
        let insts: Vec<&Instruction> = st.instructions.iter().map(|l| &l.inst).collect();
        assert_eq!(
            insts[0],
            &Instruction::Run(Command::Exec(vec![
                "sh".into(),
                "-c".into(),
                "echo $HOME".into()
            ]))
        );
        assert_eq!(
            insts[1],
            &Instruction::Run(Command::Shell("echo \"$HOME\"   && true".into()))
        );
        assert_eq!(st.instructions[1].line, 4);
        assert_eq!(st.instructions[1].text, "RUN echo \"$HOME\"   && true");
        assert_eq!(
            insts[2],
            &Instruction::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"x y\"".into())
            ])
        );
        assert_eq!(
            insts[3],
            &Instruction::Env(vec![("OLD".into(), "a b".into())])
        );
        assert_eq!(
            insts[4],
            &Instruction::Copy {
                srcs: vec!["a".into(), "b".into()],
                dest: "/dst/".into(),
                from: None,
                chown: Some("1:1".into()),
                chmod: Some("0644".into())
            }
        );
        // MAINTAINER's value comes back unchanged from expansion, apostrophe and all.
        let none = |_: &str| None;
        let Instruction::Label(l) = insts[5].expand('\\', &none).unwrap() else {
            panic!()
        };
        assert_eq!(l, [("maintainer".to_string(), "Jo's <jo@x>".to_string())]);
    }

    #[test]
    fn expand_follows_docker() {
        let m = parse_ok(concat!(
            "FROM scratch\n",
            "ENV A=$X B=\"$X y\" C='$X' D=\\$X\n",
            "LABEL \"k $X\"=v\n",
            "COPY --from=$X --chown=$X a$X \"b\" /d/$X\n",
            "EXPOSE $PORTS 9000/udp\n",
            "WORKDIR /w/${X:-none} x\n",
            "RUN echo $X\n",
            "ARG N=${X}1\n",
        ));
        let vars: HashMap<&str, &str> = [("X", "x"), ("PORTS", "80 443/tcp")].into();
        let look = |k: &str| vars.get(k).map(|v| v.to_string());
        let e: Vec<Instruction> = m.stages[0]
            .instructions
            .iter()
            .map(|l| l.inst.expand('\\', &look).unwrap())
            .collect();
        let kv = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            e[0],
            Instruction::Env(kv(&[("A", "x"), ("B", "x y"), ("C", "$X"), ("D", "$X")]))
        );
        assert_eq!(e[1], Instruction::Label(kv(&[("k x", "v")])));
        assert_eq!(
            e[2],
            Instruction::Copy {
                srcs: vec!["ax".into(), "b".into()],
                dest: "/d/x".into(),
                from: Some("x".into()),
                chown: Some("x".into()),
                chmod: None
            }
        );
        assert_eq!(
            e[3],
            Instruction::Expose(vec!["80".into(), "443/tcp".into(), "9000/udp".into()])
        );
        assert_eq!(e[4], Instruction::Workdir("/w/x x".into()));
        assert_eq!(e[5], Instruction::Run(Command::Shell("echo $X".into())));
        assert_eq!(
            e[6],
            Instruction::Arg(vec![("N".into(), Some("x1".into()))])
        );
        let err = parse_ok("FROM a\nUSER ${U:?set U}\n").stages[0].instructions[0]
            .inst
            .expand('\\', &look)
            .unwrap_err();
        assert_eq!(err.to_string(), "expand \"${U:?set U}\": U: set U");
    }

    #[test]
    fn escape_directive_reaches_stage_two() {
        let m = parse_ok("# escape=`\nFROM a\nWORKDIR C:\\dir `\n  \\sub\n");
        assert_eq!(m.escape, '`');
        assert_eq!(
            m.stages[0].instructions[0].inst,
            Instruction::Workdir("C:\\dir   \\sub".into())
        );
    }

    #[test]
    fn error_positions() {
        assert_eq!(
            parse_err("FROM a\nENV PATH\n"),
            "Minifile:2:1: ENV must have two arguments (in: \"ENV PATH\")"
        );
        assert_eq!(parse_err("FROM a\n  COPY --link a b\n"), "Minifile:2:8: unknown flag: --link (COPY supports --from, --chown, --chmod) (in: \"COPY --link a b\")");
        assert_eq!(
            parse_err("FROM a\nRUN echo \\\n  <<EOF\n"),
            "Minifile:3:3: here-documents (<<EOF) are not supported by minibox (in: \"RUN echo   <<EOF\")"
        );
        assert!(parse_bytes("M", b"FROM a\nRUN echo '<<EOF' \"a <<b\" x<<y <<<z\n").is_ok());
        assert_eq!(parse_err("FROM a\nEXPOSE 80 http\n"), "Minifile:2:11: invalid port \"http\" for EXPOSE: a port is a number from 1 to 65535, or a range like 8000-8010 (in: \"EXPOSE 80 http\")");
        assert_eq!(parse_err("FROM a\nCOPY\tx\n"), "Minifile:2:1: COPY requires at least two arguments (sources and a destination) (in: \"COPY\\tx\")");
        assert_eq!(
            parse_bytes("Minifile", b"FROM a\nUSER a\xff\n")
                .unwrap_err()
                .to_string(),
            "Minifile:2:7: invalid UTF-8: a Minifile must be UTF-8 text (in: \"USER a\\xff\")"
        );
    }

    #[test]
    fn unknown_and_unsupported() {
        assert_eq!(
            parse_err("FROM a\nCOPPY a b\n"),
            format!("Minifile:2:1: unknown instruction: COPPY (did you mean COPY? minibox supports {SUPPORTED}) (in: \"COPPY a b\")")
        );
        assert!(parse_err("FROM a\nfrobnicate\n")
            .starts_with("Minifile:2:1: unknown instruction: frobnicate (minibox supports FROM,"));
        assert!(parse_err("FROM a\nONBUILD RUN x\n")
            .starts_with("Minifile:2:1: ONBUILD is not supported by minibox"));
        assert!(parse_err("FROM a\nHEALTHCHECK NONE\n")
            .starts_with("Minifile:2:1: HEALTHCHECK is not supported by minibox"));
        assert!(parse_err("RUN x\nFROM a\n")
            .starts_with("Minifile:1:1: RUN before the first FROM: only ARG may come before FROM"));
        assert_eq!(
            parse_err("ARG A\n"),
            "Minifile:1:1: no FROM instruction: a Minifile needs at least one stage"
        );
    }

    #[test]
    fn ports_and_signals() {
        assert_eq!(exposed_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(exposed_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            exposed_ports("8000-8002/sctp").unwrap(),
            ["8000/sctp", "8001/sctp", "8002/sctp"]
        );
        for bad in [
            "0",
            "65536",
            "80/icmp",
            "9-8",
            "a-b",
            "",
            "+80",
            "1.2.3.4:80:80",
        ] {
            assert!(exposed_ports(bad).is_err(), "{bad}");
        }
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("kill"), Some(9));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("SIGRTMIN+3"), Some(37));
        assert_eq!(signal_number("RTMAX-1"), Some(63));
        assert_eq!(signal_number("0"), None);
        assert_eq!(signal_number("SIGFOO"), None);
    }

    #[test]
    fn raw_word_splitting_for_heredoc_check() {
        assert_eq!(
            raw_words("a 'b c' \"d\\\" e\" f\\ g", '\\'),
            ["a", "'b c'", "\"d\\\" e\"", "f\\ g"]
        );
    }
}
