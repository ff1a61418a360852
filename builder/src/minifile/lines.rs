//! Stage one of the Minifile parser, with BuildKit's first-stage semantics: bytes -> logical
//! lines (BOM, parser directives, comments, continuations) -> raw nodes (keyword, `--flags`,
//! arguments split the way each instruction splits them). Nothing is unquoted or expanded
//! here and no instruction is judged: unknown keywords become nodes too. Deciding what
//! minibox accepts is `parse`'s job; `$VAR` substitution is `expand`'s, at build time.
//!
//! Works on bytes, not `str`: a Dockerfile is not required to be UTF-8 at this stage, and the
//! dump shows invalid bytes as `\xNN` just as Go's `strconv.Quote` does.

use super::ParseError;

/// The result of stage one: the escape character in force and one node per instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// `\` or `` ` `` (from a `# escape=` directive).
    pub escape: u8,
    pub nodes: Vec<Node>,
}

/// One instruction as stage one sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword, lower case (`from`, `run`, ..., or whatever unknown word was written).
    pub keyword: String,
    /// `--name[=value]` words before the arguments, quotes removed (a bare `--` is dropped).
    pub flags: Vec<Vec<u8>>,
    pub args: Vec<Arg>,
    /// The arguments came from a JSON array (exec form).
    pub json: bool,
    /// The logical line: continuations joined, comment lines inside them dropped.
    pub original: Vec<u8>,
    /// First and last physical line (1-based).
    pub start_line: usize,
    pub end_line: usize,
    /// Column (1-based, in characters) of the keyword on `start_line`.
    pub col: usize,
    /// Where each piece of `original` came from, to point errors at the right line.
    segments: Vec<Segment>,
}

/// An argument: a word, or (ONBUILD) a nested instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Word(Vec<u8>),
    Node(Box<Node>),
}

/// `original[offset..]` starts on physical line `line` at column `col`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    offset: usize,
    line: usize,
    col: usize,
}

impl Parsed {
    /// BuildKit's `Node.Dump()` of the whole file: one `(...)` line per instruction.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            s.push('(');
            s.push_str(&n.dump());
            s.push_str(")\n");
        }
        s
    }
}

impl Node {
    /// `keyword ["--flag" ...] "arg" "arg" (nested ...)`, every string Go-quoted.
    pub fn dump(&self) -> String {
        let mut s = self.keyword.clone();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|f| go_quote(f)).collect();
            s.push_str(" [");
            s.push_str(&flags.join(" "));
            s.push(']');
        }
        for a in &self.args {
            s.push(' ');
            match a {
                Arg::Word(w) => s.push_str(&go_quote(w)),
                Arg::Node(n) => {
                    s.push('(');
                    s.push_str(&n.dump());
                    s.push(')');
                }
            }
        }
        s.trim().to_string()
    }

    /// The plain words of the arguments (a nested node has none).
    pub fn words(&self) -> impl Iterator<Item = &[u8]> {
        self.args.iter().filter_map(|a| match a {
            Arg::Word(w) => Some(w.as_slice()),
            Arg::Node(_) => None,
        })
    }

    /// Line and column (1-based) of byte `offset` of `original`.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let Some(seg) = self.segments.iter().rev().find(|s| s.offset <= offset) else {
            return (self.start_line, self.col);
        };
        let end = offset.min(self.original.len());
        let chars = String::from_utf8_lossy(&self.original[seg.offset..end])
            .chars()
            .count();
        (seg.line, seg.col + chars)
    }

    /// Line and column of the first occurrence of `needle` after the keyword, else of the
    /// keyword itself.
    pub fn position_of(&self, needle: &[u8]) -> (usize, usize) {
        let skip = self
            .original
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(self.original.len());
        match find(&self.original[skip..], needle) {
            Some(i) if !needle.is_empty() => self.position(skip + i),
            _ => (self.start_line, self.col),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parse directives: `# escape=X`, `# syntax=...`, `# check=...`, only in the comment lines
/// at the very top. The first line that is not one (an instruction, a blank line, any other
/// comment) ends them, so a directive after a comment is just a comment.
struct Directives {
    escape: u8,
    done: bool,
    seen: Vec<String>,
}

impl Directives {
    /// Look at one (left-trimmed) line while directives are still possible.
    fn line(&mut self, line: &[u8]) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some(rest) = line.strip_prefix(b"#") else {
            self.done = true;
            return Ok(());
        };
        let Some((key, value)) = directive(trim_left_space(rest)) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        if key == "escape" {
            match value {
                b"\\" | b"`" => self.escape = value[0],
                _ => {
                    return Err(format!(
                        "invalid escape token {} does not match ` or \\",
                        go_quote(value)
                    ))
                }
            }
        }
        self.seen.push(key);
        Ok(())
    }
}

/// `KEY \s* = \s* VALUE \s*` with KEY = `[a-zA-Z][a-zA-Z0-9]*` and a non-empty VALUE.
fn directive(s: &[u8]) -> Option<(String, &[u8])> {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c);
    if !s.first()?.is_ascii_alphabetic() {
        return None;
    }
    let klen = s
        .iter()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(s.len());
    let key = String::from_utf8_lossy(&s[..klen]).into_owned();
    let mut rest = &s[klen..];
    while rest.first().is_some_and(is_ws) {
        rest = &rest[1..];
    }
    rest = rest.strip_prefix(b"=")?;
    if rest.is_empty() {
        return None;
    }
    // The value needs one character at least, even a blank one.
    let lead = rest
        .iter()
        .take_while(|b| is_ws(b))
        .count()
        .min(rest.len() - 1);
    let mut value = &rest[lead..];
    while value.len() > 1 && value.last().is_some_and(is_ws) {
        value = &value[..value.len() - 1];
    }
    Some((key, value))
}

/// Stage one over a whole file. `file` only names the file in errors.
pub fn parse(file: &str, src: &[u8]) -> Result<Parsed, ParseError> {
    let src = src.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(src);
    let physical = split_lines(src);
    let mut d = Directives {
        escape: b'\\',
        done: false,
        seen: Vec::new(),
    };
    let mut nodes = Vec::new();
    let mut i = 0;
    while i < physical.len() {
        let raw = trim_newline(too_long(file, &physical, i)?);
        i += 1;
        let line_no = i;
        let lead = raw.len() - trim_left_space(raw).len();
        let first = &raw[lead..];
        d.line(first)
            .map_err(|m| ParseError::new(file, line_no, lead_col(raw, lead), m, Some(first)))?;
        let first: &[u8] = if is_comment(first) { b"" } else { first };
        let (content, mut end) = trim_continuation(first, d.escape);
        if end && content.is_empty() {
            continue;
        }
        let mut buf = content.to_vec();
        let mut segments = vec![Segment {
            offset: 0,
            line: line_no,
            col: lead_col(raw, lead),
        }];
        while !end && i < physical.len() {
            let raw = trim_newline(too_long(file, &physical, i)?);
            i += 1;
            // Comment lines and blank lines inside a continuation are dropped.
            if is_comment(raw) || trim_left_space(raw).is_empty() {
                continue;
            }
            let (content, e) = trim_continuation(raw, d.escape);
            end = e;
            segments.push(Segment {
                offset: buf.len(),
                line: i,
                col: 1,
            });
            buf.extend_from_slice(content);
        }
        let node = node_from_line(&buf, d.escape, 0)
            .map_err(|m| ParseError::new(file, line_no, segments[0].col, m, Some(&buf)))?;
        nodes.push(Node {
            start_line: line_no,
            end_line: i,
            col: segments[0].col,
            segments,
            ..node
        });
    }
    if nodes.is_empty() {
        return Err(ParseError::new(
            file,
            physical.len().max(1),
            1,
            "file with no instructions".into(),
            None,
        ));
    }
    Ok(Parsed {
        escape: d.escape,
        nodes,
    })
}

/// Physical line `i`, unless it is longer than BuildKit's line scanner takes (64 KiB with
/// its newline), so that what minibox reads, Docker reads too.
fn too_long<'a>(file: &str, physical: &[&'a [u8]], i: usize) -> Result<&'a [u8], ParseError> {
    const MAX: usize = 64 * 1024;
    let line = physical[i];
    if line.len() > MAX {
        let msg = format!("line greater than max allowed size of {} bytes", MAX - 1);
        return Err(ParseError::new(file, i + 1, 1, msg, None));
    }
    Ok(line)
}

/// The column of byte `lead` of a physical line, in characters.
fn lead_col(raw: &[u8], lead: usize) -> usize {
    String::from_utf8_lossy(&raw[..lead]).chars().count() + 1
}

/// Lines ending in `\n` (kept), the last one possibly without.
fn split_lines(src: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = src.split_inclusive(|&b| b == b'\n').collect();
    if v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

fn trim_newline(mut s: &[u8]) -> &[u8] {
    while let Some((&b, rest)) = s.split_last() {
        if b != b'\n' && b != b'\r' {
            break;
        }
        s = rest;
    }
    s
}

fn is_comment(line: &[u8]) -> bool {
    trim_left_space(line).first() == Some(&b'#')
}

/// An escape character as the last non-blank character continues the line, unless it is
/// itself escaped (`\\`). The escape and the blanks after it are removed.
fn trim_continuation(line: &[u8], escape: u8) -> (&[u8], bool) {
    let mut t = line;
    while let Some((&b, rest)) = t.split_last() {
        if b != b' ' && b != b'\t' {
            break;
        }
        t = rest;
    }
    match t.split_last() {
        Some((&e, rest)) if e == escape && rest.last() != Some(&escape) => (rest, false),
        _ => (line, true),
    }
}

/// Keyword, flags and per-instruction arguments of one logical line.
fn node_from_line(original: &[u8], escape: u8, depth: usize) -> Result<Node, String> {
    let line = trim_space(original);
    let (cmd, rest) = match line.iter().position(|&b| is_split_space(b)) {
        Some(i) => {
            let rest = &line[i..];
            let n = rest.iter().take_while(|&&b| is_split_space(b)).count();
            (&line[..i], Some(&rest[n..]))
        }
        None => (line, None),
    };
    let keyword = lower(cmd);
    let (rest, flags) = match rest {
        Some(r) => extract_flags(r),
        None => (&b""[..], Vec::new()),
    };
    let rest = trim_space(rest);
    let mut json = false;
    let args = match keyword.as_str() {
        "add" | "copy" | "volume" => maybe_json_to_list(rest, &mut json)?,
        "run" | "cmd" | "entrypoint" | "shell" => maybe_json(rest, &mut json)?,
        "env" => name_val(rest, "ENV", escape)?,
        "label" => name_val(rest, "LABEL", escape)?,
        "arg" => parse_words(rest, escape)
            .into_iter()
            .map(Arg::Word)
            .collect(),
        "from" | "expose" => whitespace_delimited(rest),
        "maintainer" | "stopsignal" | "user" | "workdir" => string(rest),
        "onbuild" if rest.is_empty() => Vec::new(),
        // BuildKit nests without limit; a bound keeps the stack safe from hostile input.
        "onbuild" if depth >= 100 => return Err("ONBUILD nested too deeply".into()),
        "onbuild" => vec![Arg::Node(Box::new(node_from_line(
            rest,
            escape,
            depth + 1,
        )?))],
        "healthcheck" => health_config(rest, &mut json)?,
        // BuildKit keeps an unknown instruction with one empty argument.
        _ => vec![Arg::Word(Vec::new())],
    };
    Ok(Node {
        keyword,
        flags,
        args,
        json,
        original: original.to_vec(),
        start_line: 0,
        end_line: 0,
        col: 1,
        segments: Vec::new(),
    })
}

/// Go's `strings.ToLower`, one character for one (so `İ` becomes `i`, as in Go).
fn lower(s: &[u8]) -> String {
    String::from_utf8_lossy(s)
        .chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// The `--flag` words at the start of `line`, and the rest after them. Quotes are removed and
/// `\` escapes the next byte; a bare `--` ends the flags and is dropped.
fn extract_flags(line: &[u8]) -> (&[u8], Vec<Vec<u8>>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(u8),
    }
    let mut flags = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = Vec::new();
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= line.len() {
        let at_end = pos == line.len();
        let mut ch = if at_end { 0 } else { line[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_byte_space(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || line.get(pos + 1) != Some(&b'-') {
                return (&line[pos..], flags);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != b"--" && (blank_ok || !word.is_empty()) {
                flags.push(word);
            }
            break;
        }
        match phase {
            Phase::Word => {
                if is_byte_space(ch) {
                    phase = Phase::Spaces;
                    if word == b"--" {
                        return (&line[pos..], flags);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                } else if ch == b'\'' || ch == b'"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                } else if ch == b'\\' && pos + 1 == line.len() {
                    // a lone `\` at the very end is dropped
                } else {
                    if ch == b'\\' {
                        pos += 1;
                        ch = line[pos];
                    }
                    word.push(ch);
                }
            }
            Phase::Quote(q) => {
                // The closing quote, or a lone `\` at the very end (dropped), ends it.
                if ch == q || (ch == b'\\' && pos + 1 == line.len()) {
                    phase = Phase::Word;
                } else {
                    if ch == b'\\' {
                        pos += 1;
                        ch = line[pos];
                    }
                    word.push(ch);
                }
            }
            Phase::Spaces => unreachable!(),
        }
        pos += 1;
    }
    (b"", flags)
}

/// Words separated by blanks, quotes and escapes kept verbatim (they are removed later, when
/// the word is expanded). A quoted word may be empty (`""`).
fn parse_words(rest: &[u8], escape: u8) -> Vec<Vec<u8>> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let escape = escape as char;
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let at_end = pos == rest.len();
        let (mut ch, mut width) = if at_end {
            ('\0', 0)
        } else {
            decode_rune(&rest[pos..])
        };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += width;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word.into_bytes());
            }
            break;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word).into_bytes());
                    }
                    blank_ok = false;
                    pos += width;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if pos + width == rest.len() {
                        pos += width;
                        continue;
                    }
                    // Outside quotes the escape and the next character go in as they are,
                    // even when that character is a quote.
                    word.push(ch);
                    pos += width;
                    (ch, width) = decode_rune(&rest[pos..]);
                }
                word.push(ch);
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                }
                // Inside '...' nothing is escaped.
                if ch == escape && q != '\'' {
                    if pos + width == rest.len() {
                        phase = Phase::Word;
                        pos += width;
                        continue;
                    }
                    word.push(ch);
                    pos += width;
                    (ch, width) = decode_rune(&rest[pos..]);
                }
                word.push(ch);
            }
            Phase::Spaces => unreachable!(),
        }
        pos += width;
    }
    words
}

/// ENV and LABEL: `KEY value with spaces` (old form, one pair, separator "") or
/// `k=v k2="v 2"` (new form, separator "="), as triples key, value, separator.
fn name_val(rest: &[u8], what: &str, escape: u8) -> Result<Vec<Arg>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    let w = |s: &[u8]| Arg::Word(s.to_vec());
    if !first.contains(&b'=') {
        let Some(i) = rest.iter().position(|&b| is_split_space(b)) else {
            return Err(format!("{what} must have two arguments"));
        };
        let n = rest[i..].iter().take_while(|&&b| is_split_space(b)).count();
        return Ok(vec![w(&rest[..i]), w(&rest[i + n..]), w(b"")]);
    }
    let mut args = Vec::new();
    for word in &words {
        let Some(eq) = word.iter().position(|&b| b == b'=') else {
            return Err(format!(
                "can't find = in {}: must be of the form name=value",
                go_quote(word)
            ));
        };
        args.extend([w(&word[..eq]), w(&word[eq + 1..]), w(b"=")]);
    }
    Ok(args)
}

fn whitespace_delimited(rest: &[u8]) -> Vec<Arg> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(|&b| is_split_space(b))
        .filter(|w| !w.is_empty())
        .map(|w| Arg::Word(w.to_vec()))
        .collect()
}

fn string(rest: &[u8]) -> Vec<Arg> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![Arg::Word(rest.to_vec())]
    }
}

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// RUN, CMD, ENTRYPOINT, SHELL: a JSON array of strings is the exec form; anything that is
/// not JSON is the shell form, one argument; JSON that is not all strings is an error.
fn maybe_json(rest: &[u8], json: &mut bool) -> Result<Vec<Arg>, String> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    match json_strings(rest) {
        Json::Strings(v) => {
            *json = true;
            Ok(v.into_iter().map(Arg::Word).collect())
        }
        Json::NotStrings => Err(NOT_STRING_ARRAY.into()),
        Json::Invalid => Ok(vec![Arg::Word(rest.to_vec())]),
    }
}

/// ADD, COPY, VOLUME: a JSON array of strings, or blank-separated words.
fn maybe_json_to_list(rest: &[u8], json: &mut bool) -> Result<Vec<Arg>, String> {
    match json_strings(rest) {
        Json::Strings(v) => {
            *json = true;
            Ok(v.into_iter().map(Arg::Word).collect())
        }
        Json::NotStrings => Err(NOT_STRING_ARRAY.into()),
        Json::Invalid => Ok(whitespace_delimited(rest)),
    }
}

/// HEALTHCHECK TYPE [command]: the type word, then the command as for CMD.
fn health_config(rest: &[u8], json: &mut bool) -> Result<Vec<Arg>, String> {
    let sep = rest
        .iter()
        .position(|&b| is_byte_space(b))
        .unwrap_or(rest.len());
    if sep == 0 {
        return Ok(Vec::new());
    }
    let next = sep
        + rest[sep..]
            .iter()
            .take_while(|&&b| is_byte_space(b))
            .count();
    let mut args = vec![Arg::Word(rest[..sep].to_vec())];
    args.extend(maybe_json(&rest[next..], json)?);
    Ok(args)
}

/// Blanks that separate words in FROM, EXPOSE, ADD ... and the keyword from its arguments.
fn is_split_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0b | 0x0c | b'\r')
}

fn is_byte_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Go's `utf8.DecodeRune`: an invalid byte decodes as U+FFFD, width 1.
pub(crate) fn decode_rune(b: &[u8]) -> (char, usize) {
    let n = match b.first() {
        None => return ('\u{FFFD}', 0),
        Some(&c) if c < 0x80 => return (c as char, 1),
        Some(0xC2..=0xDF) => 2,
        Some(0xE0..=0xEF) => 3,
        Some(0xF0..=0xF4) => 4,
        Some(_) => return ('\u{FFFD}', 1),
    };
    match b.get(..n).map(std::str::from_utf8) {
        Some(Ok(s)) => (s.chars().next().unwrap_or('\u{FFFD}'), n),
        _ => ('\u{FFFD}', 1),
    }
}

/// Leading Unicode white space removed (an invalid byte is not space).
fn trim_left_space(mut s: &[u8]) -> &[u8] {
    loop {
        let (c, w) = decode_rune(s);
        if w == 0 || !c.is_whitespace() {
            return s;
        }
        s = &s[w..];
    }
}

fn trim_space(s: &[u8]) -> &[u8] {
    let s = trim_left_space(s);
    let mut end = s.len();
    while end > 0 {
        // Find the start of the last character.
        let mut start = end - 1;
        while start > 0 && end - start < 4 && (s[start] & 0xC0) == 0x80 {
            start -= 1;
        }
        let (c, w) = decode_rune(&s[start..end]);
        if w == end - start && c.is_whitespace() {
            end = start;
        } else {
            break;
        }
    }
    &s[..end]
}

enum Json {
    Strings(Vec<Vec<u8>>),
    NotStrings,
    Invalid,
}

/// Is `s` (after leading blanks) exactly one JSON array, and are its elements all strings?
/// Strings are decoded as Go's encoding/json does: invalid UTF-8 and unpaired surrogates
/// become U+FFFD.
fn json_strings(s: &[u8]) -> Json {
    let s = trim_left_space(s);
    if s.first() != Some(&b'[') {
        return Json::Invalid;
    }
    let mut p = JsonScanner { s, pos: 1 };
    let mut out = Vec::new();
    let mut all_strings = true;
    p.ws();
    if p.peek() == Some(b']') {
        p.pos += 1;
    } else {
        loop {
            p.ws();
            if p.peek() == Some(b'"') {
                match p.string() {
                    Some(v) => out.push(v),
                    None => return Json::Invalid,
                }
            } else {
                all_strings = false;
                if p.skip_value().is_none() {
                    return Json::Invalid;
                }
            }
            p.ws();
            match p.peek() {
                Some(b',') => p.pos += 1,
                Some(b']') => {
                    p.pos += 1;
                    break;
                }
                _ => return Json::Invalid,
            }
        }
    }
    p.ws();
    if p.pos != s.len() {
        return Json::Invalid;
    }
    if all_strings {
        Json::Strings(out)
    } else {
        Json::NotStrings
    }
}

struct JsonScanner<'a> {
    s: &'a [u8],
    pos: usize,
}

impl JsonScanner<'_> {
    /// Go's encoding/json refuses deeper nesting.
    const MAX_DEPTH: usize = 10_000;

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.pos += 1)
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.pos..self.pos + 4)?;
        let h = std::str::from_utf8(h).ok()?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(h, 16).ok()
    }

    /// A string at `pos` (which holds `"`), decoded.
    fn string(&mut self) -> Option<Vec<u8>> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let b = self.peek()?;
            match b {
                b'"' => {
                    self.pos += 1;
                    return Some(out.into_bytes());
                }
                0..=0x1f => return None,
                b'\\' => {
                    self.pos += 1;
                    let e = self.peek()?;
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e as char),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let r = self.hex4()?;
                            if (0xD800..0xE000).contains(&r) {
                                // A surrogate pair, or U+FFFD for a lone half.
                                let save = self.pos;
                                let low = if self.s[self.pos..].starts_with(b"\\u") {
                                    self.pos += 2;
                                    self.hex4()
                                } else {
                                    None
                                };
                                match low {
                                    Some(lo) if r < 0xDC00 && (0xDC00..0xE000).contains(&lo) => {
                                        let c = 0x10000 + ((r - 0xD800) << 10) + (lo - 0xDC00);
                                        out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                                    }
                                    _ => {
                                        self.pos = save;
                                        out.push('\u{FFFD}');
                                    }
                                }
                            } else {
                                out.push(char::from_u32(r).unwrap_or('\u{FFFD}'));
                            }
                        }
                        _ => return None,
                    }
                }
                _ => {
                    let (c, w) = decode_rune(&self.s[self.pos..]);
                    out.push(c);
                    self.pos += w;
                }
            }
        }
    }

    fn number(&mut self) -> Option<()> {
        let digits = |p: &mut Self| {
            let n = p.s[p.pos..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            p.pos += n;
            n
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(())
    }

    /// Skip any one value, without recursion (nesting depth is the input's to choose).
    fn skip_value(&mut self) -> Option<()> {
        let mut stack: Vec<u8> = Vec::new();
        loop {
            // A value is expected here.
            self.ws();
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'[' | b'{' => {
                    let open = self.peek()?;
                    self.pos += 1;
                    stack.push(open);
                    // +1: the array this value is an element of.
                    if stack.len() + 1 > Self::MAX_DEPTH {
                        return None;
                    }
                    self.ws();
                    let close = if open == b'[' { b']' } else { b'}' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        stack.pop();
                    } else if open == b'[' {
                        continue;
                    } else {
                        self.key()?;
                        continue;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => self.number()?,
            }
            // After a value: close containers or move to the next element.
            loop {
                let Some(&top) = stack.last() else {
                    return Some(());
                };
                self.ws();
                match (top, self.peek()?) {
                    (b'[', b',') => {
                        self.pos += 1;
                        break;
                    }
                    (b'{', b',') => {
                        self.pos += 1;
                        self.key()?;
                        break;
                    }
                    (b'[', b']') | (b'{', b'}') => {
                        self.pos += 1;
                        stack.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    /// `"key" :` inside an object.
    fn key(&mut self) -> Option<()> {
        self.ws();
        if self.peek() != Some(b'"') {
            return None;
        }
        self.string()?;
        self.ws();
        self.eat(b':')
    }

    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        if self.s[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Some(())
        } else {
            None
        }
    }
}

/// Go's `strconv.Quote`: `"`-delimited, `\"` `\\` and control characters escaped, invalid
/// UTF-8 as `\xNN`, non-printable characters as `\uNNNN` / `\UNNNNNNNN`, printable ones kept.
pub fn go_quote(s: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut rest = s;
    while !rest.is_empty() {
        let (c, w) = decode_rune(rest);
        if w == 1 && c == '\u{FFFD}' {
            let _ = write!(out, "\\x{:02x}", rest[0]);
            rest = &rest[1..];
            continue;
        }
        rest = &rest[w..];
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII
/// space. Without Unicode's category tables this knows the controls, separators, format
/// characters, private use areas, noncharacters and the unassigned planes; a code point left
/// unassigned inside an assigned block counts as printable.
fn is_print(c: char) -> bool {
    let u = c as u32;
    if u < 0x100 {
        return (0x20..0x7f).contains(&u) || ((0xa1..=0xff).contains(&u) && u != 0xad);
    }
    const NOT_PRINT: &[(u32, u32)] = &[
        (0x0378, 0x0379),
        (0x0600, 0x0605),
        (0x061c, 0x061c),
        (0x06dd, 0x06dd),
        (0x070f, 0x070f),
        (0x0890, 0x0891),
        (0x08e2, 0x08e2),
        (0x1680, 0x1680),
        (0x180e, 0x180e),
        (0x2000, 0x200f),
        (0x2028, 0x202f),
        (0x205f, 0x2064),
        (0x2066, 0x206f),
        (0x3000, 0x3000),
        (0xd800, 0xf8ff),
        (0xfdd0, 0xfdef),
        (0xfeff, 0xfeff),
        (0xfff0, 0xfffb),
        (0x110bd, 0x110bd),
        (0x110cd, 0x110cd),
        (0x13430, 0x1343f),
        (0x1bca0, 0x1bca3),
        (0x1d173, 0x1d17a),
        (0x40000, 0xe00ff),
        (0xe01f0, 0x10ffff),
    ];
    if u & 0xfffe == 0xfffe {
        return false;
    }
    !NOT_PRINT.iter().any(|&(lo, hi)| (lo..=hi).contains(&u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(src: &str) -> String {
        parse("Minifile", src.as_bytes()).unwrap().dump()
    }

    fn err(src: &[u8]) -> String {
        parse("Minifile", src).unwrap_err().to_string()
    }

    #[test]
    fn quote_matches_go() {
        assert_eq!(go_quote(b"plain"), r#""plain""#);
        assert_eq!(go_quote(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote(b"\x07\x08\x0c\n\r\t\x0b"), r#""\a\b\f\n\r\t\v""#);
        assert_eq!(go_quote(b"\x00\x1b\x7f"), r#""\x00\x1b\x7f""#);
        assert_eq!(go_quote("♥ ☃ é".as_bytes()), "\"♥ ☃ é\"");
        assert_eq!(go_quote(b"\xff\xc3"), r#""\xff\xc3""#);
        assert_eq!(
            go_quote("\u{a0}\u{ad}\u{85}".as_bytes()),
            r#""\u00a0\u00ad\u0085""#
        );
        assert_eq!(
            go_quote("\u{200b}\u{feff}\u{e000}".as_bytes()),
            r#""\u200b\ufeff\ue000""#
        );
        assert_eq!(
            go_quote("\u{e0001}\u{10fffd}".as_bytes()),
            r#""\U000e0001\U0010fffd""#
        );
        assert_eq!(go_quote("\u{1F600}".as_bytes()), "\"\u{1F600}\"");
    }

    #[test]
    fn bom_comments_and_blank_lines() {
        assert_eq!(
            dump("\u{feff}FROM a\n\n# c\n  # indented\nRUN x\n"),
            "(from \"a\")\n(run \"x\")\n"
        );
    }

    #[test]
    fn crlf_line_endings() {
        assert_eq!(
            dump("FROM a\r\nRUN x \\\r\n  y\r\n"),
            "(from \"a\")\n(run \"x   y\")\n"
        );
    }

    #[test]
    fn keyword_case_and_positions() {
        let p = parse("Minifile", b"  from a\n\nrUn echo \\\n  hi\n").unwrap();
        assert_eq!(p.dump(), "(from \"a\")\n(run \"echo   hi\")\n");
        assert_eq!((p.nodes[0].start_line, p.nodes[0].col), (1, 3));
        let run = &p.nodes[1];
        assert_eq!((run.start_line, run.end_line), (3, 4));
        assert_eq!(run.position_of(b"hi"), (4, 3));
        assert_eq!(run.position_of(b"echo"), (3, 5));
        assert_eq!(run.position_of(b"nope"), (3, 1));
    }

    #[test]
    fn directives() {
        assert_eq!(
            dump("# escape=`\nFROM a\nRUN x `\n y\\\n"),
            "(from \"a\")\n(run \"x  y\\\\\")\n"
        );
        // After a blank line it is a comment.
        assert_eq!(dump("\n# escape=`\nFROM a `\n"), "(from \"a\" \"`\")\n");
        assert_eq!(
            dump("# syntax=x\n# ESCAPE = `\nFROM `\n a\n"),
            "(from \"a\")\n"
        );
        assert!(err(b"# escape=x\nFROM a\n").contains("invalid escape token \"x\""));
        assert!(
            err(b"# escape=`\n# escape=`\nFROM a\n").contains("only one escape parser directive")
        );
        // An unknown directive is a comment and ends directives.
        assert_eq!(
            dump("# foo=bar\n# escape=`\nFROM a `\n"),
            "(from \"a\" \"`\")\n"
        );
    }

    #[test]
    fn continuation_rules() {
        // `\\` at the end is not a continuation; `\` alone on a line continues.
        assert_eq!(
            dump("ENV A a\\\\\nENV B b\n"),
            "(env \"A\" \"a\\\\\\\\\" \"\")\n(env \"B\" \"b\" \"\")\n"
        );
        assert_eq!(dump("RUN a\\\n\\\nb\n"), "(run \"ab\")\n");
        // Comment lines inside a continuation go, even indented; the continuation goes on.
        assert_eq!(dump("RUN a \\\n  # c \\\n\n  b\n"), "(run \"a   b\")\n");
        // At EOF the instruction just ends.
        assert_eq!(dump("RUN a \\"), "(run \"a\")\n");
    }

    #[test]
    fn flags() {
        assert_eq!(
            dump("COPY --from=a --chown=\"x y\" -- --b c\n"),
            "(copy [\"--from=a\" \"--chown=x y\"] \"--b\" \"c\")\n"
        );
        assert_eq!(dump("COPY --link\n"), "(copy [\"--link\"])\n");
        assert_eq!(dump("RUN -x --y\n"), "(run \"-x --y\")\n");
    }

    #[test]
    fn json_forms() {
        assert_eq!(
            dump("CMD [\"a\", \"\\u00e9\\ud83d\\ude00\"]\n"),
            "(cmd \"a\" \"é\u{1F600}\")\n"
        );
        assert_eq!(dump("CMD [\"\\ud800\"]\n"), "(cmd \"\u{FFFD}\")\n");
        assert_eq!(dump("CMD [\"a\"] x\n"), "(cmd \"[\\\"a\\\"] x\")\n");
        assert_eq!(dump("CMD [\"a\",]\n"), "(cmd \"[\\\"a\\\",]\")\n");
        assert_eq!(
            dump("VOLUME [\"/a\", \"/b c\"]\n"),
            "(volume \"/a\" \"/b c\")\n"
        );
        assert_eq!(dump("VOLUME [/a]\n"), "(volume \"[/a]\")\n");
        for bad in [
            "CMD [1]",
            "RUN [\"a\", {\"b\": [1, 2.5e3, true, null]}]",
            "COPY [\"a\", [\"b\"]]",
            "SHELL [false]",
        ] {
            assert!(
                err(bad.as_bytes()).contains("arrays must be comprised of strings only"),
                "{bad}"
            );
        }
        // Deep nesting is refused without overflowing the stack, and is still JSON-ish.
        let deep = format!("CMD [{}{}]", "[".repeat(50_000), "]".repeat(50_000));
        assert!(matches!(json_strings(&deep.as_bytes()[4..]), Json::Invalid));
        let ok = format!("CMD [{}{}]", "[".repeat(100), "]".repeat(100));
        assert!(err(ok.as_bytes()).contains("strings only"));
    }

    #[test]
    fn env_and_label_forms() {
        assert_eq!(dump("ENV a b  c\n"), "(env \"a\" \"b  c\" \"\")\n");
        assert_eq!(
            dump("LABEL \"a b\"=c d=\n"),
            "(label \"\\\"a b\\\"\" \"c\" \"=\" \"d\" \"\" \"=\")\n"
        );
        assert_eq!(dump("ENV\n"), "(env)\n");
        assert!(err(b"ENV a=b c\n").contains("can't find = in \"c\""));
        assert_eq!(
            err(b"FROM a\n\nLABEL x\n"),
            "Minifile:3:1: LABEL must have two arguments (in: \"LABEL x\")"
        );
    }

    #[test]
    fn onbuild_healthcheck_unknown() {
        assert_eq!(
            dump("ONBUILD --x RUN [\"a\"]\n"),
            "(onbuild [\"--x\"] (run \"a\"))\n"
        );
        assert_eq!(dump("ONBUILD\n"), "(onbuild)\n");
        assert_eq!(
            dump("HEALTHCHECK CMD curl -f x\n"),
            "(healthcheck \"CMD\" \"curl -f x\")\n"
        );
        assert_eq!(dump("HEALTHCHECK NONE\n"), "(healthcheck \"NONE\")\n");
        assert_eq!(dump("FOO bar baz\n"), "(foo \"\")\n");
    }

    #[test]
    fn invalid_utf8_is_kept_as_bytes() {
        assert_eq!(
            parse("M", b"FROM a\xff\nUSER \xc3\n").unwrap().dump(),
            "(from \"a\\xff\")\n(user \"\\xc3\")\n"
        );
        // Words that went through word splitting decode like Go: U+FFFD.
        assert_eq!(
            parse("M", b"ARG a=\xff\n").unwrap().dump(),
            "(arg \"a=\u{FFFD}\")\n"
        );
    }

    #[test]
    fn limits() {
        let long = format!("FROM a\nRUN {}\n", "x".repeat(70_000));
        assert_eq!(
            err(long.as_bytes()),
            "Minifile:2:1: line greater than max allowed size of 65535 bytes"
        );
        let ok = format!("RUN {}", "x".repeat(65_532));
        assert_eq!(parse("M", ok.as_bytes()).unwrap().nodes.len(), 1);
        assert_eq!(
            dump("ONBUILD ONBUILD RUN x\n"),
            "(onbuild (onbuild (run \"x\")))\n"
        );
        let deep = format!("{}RUN x\n", "ONBUILD ".repeat(5000));
        assert!(err(deep.as_bytes()).contains("ONBUILD nested too deeply"));
    }

    #[test]
    fn no_instructions() {
        assert_eq!(err(b""), "Minifile:1:1: file with no instructions");
        assert_eq!(
            err(b"# a\n\n# b\n"),
            "Minifile:3:1: file with no instructions"
        );
    }
}
