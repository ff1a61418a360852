//! Docker's shell-word processing (BuildKit's `shell.Lex`), used at build time with the ENV
//! and ARG values in scope: `$V`, `${V}`, `${V:-w}` `${V-w}` `${V:+w}` `${V+w}` `${V:?msg}`
//! `${V?msg}`, `${V#pat}` `${V##pat}` `${V%pat}` `${V%%pat}`, `${V/pat/rep}` `${V//pat/rep}`,
//! quote removal (`'...'` literal, `"..."` with `$` expanded) and the escape character
//! (`\$` is a literal `$`). It never runs a shell: RUN, CMD and ENTRYPOINT text is not
//! processed here, the container's shell does that.
//!
//! Which instruction uses what (as in Docker):
//! - `word` (one word in, one out; blanks kept): FROM (image, `--platform`, with the ARGs
//!   before the first FROM only), ADD/COPY (each source, the destination, `--chown`,
//!   `--chmod`, `--from`), ENV and LABEL (key and value), ARG (name and default), WORKDIR,
//!   USER, VOLUME (each path), STOPSIGNAL.
//! - `words` (split on blanks after expansion, quotes respected): each EXPOSE word, so
//!   `EXPOSE $PORTS` may give several ports.

/// A lookup of a variable by name: `None` when it is not set (an empty value is set).
pub type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// A word that cannot be expanded: bad syntax, or `${V:?message}` with V unset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expand {word:?}: {message}")]
pub struct ExpandError {
    pub word: String,
    pub message: String,
}

/// Expand one word: variables substituted, quotes and escapes removed, blanks kept.
pub fn word(s: &str, lookup: &Lookup<'_>, escape: char) -> Result<String, ExpandError> {
    process(s, lookup, escape).map(|(w, _)| w)
}

/// Expand and split into words on blanks (not those inside quotes). Like Docker, an empty
/// word (`""`) does not count as a word.
pub fn words(s: &str, lookup: &Lookup<'_>, escape: char) -> Result<Vec<String>, ExpandError> {
    process(s, lookup, escape).map(|(_, ws)| ws)
}

fn process(
    s: &str,
    lookup: &Lookup<'_>,
    escape: char,
) -> Result<(String, Vec<String>), ExpandError> {
    let mut lx = Lexer {
        chars: s.chars().collect(),
        pos: 0,
        escape,
        raw_escapes: false,
        lookup,
        depth: 0,
    };
    lx.stop_on(None, false).map_err(|message| ExpandError {
        word: s.to_string(),
        message,
    })
}

struct Lexer<'a, 'b> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    /// Keep escape characters in the output (inside `${V#...}` patterns, which need them).
    raw_escapes: bool,
    lookup: &'a Lookup<'b>,
    depth: usize,
}

/// Splits the output into words while it is built: text from `$` expansions and unquoted
/// text split on blanks, quoted text never.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

type Res<T> = Result<T, String>;

impl Lexer<'_, '_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// Process up to `stop` (consumed) or the end of the input.
    fn stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Res<(String, Vec<String>)> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let v = self.dollar()?;
                    result.push_str(&v);
                    words.add_string(&v);
                }
                '\'' | '"' => {
                    let v = if c == '\'' {
                        self.single_quote()?
                    } else {
                        self.double_quote()?
                    };
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                _ => {
                    self.pos += 1;
                    let mut c = c;
                    if c == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        // An escape at the very end is dropped.
                        let Some(n) = self.next() else { break };
                        c = n;
                        words.add_raw_char(c);
                    } else {
                        words.add_char(c);
                    }
                    result.push(c);
                }
            }
        }
        if let Some(s) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {s}"
            ));
        }
        Ok((result, words.finish()))
    }

    /// `'...'`: everything literal, no escapes (a `'` cannot be in it).
    fn single_quote(&mut self) -> Res<String> {
        self.pos += 1;
        let mut r = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => return Ok(r),
                Some(c) => r.push(c),
            }
        }
    }

    /// `"..."`: `$` expands; the escape character escapes only `"`, `$` and itself.
    fn double_quote(&mut self) -> Res<String> {
        self.pos += 1;
        let mut r = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    return Ok(r);
                }
                Some('$') => r.push_str(&self.dollar()?),
                Some(mut c) => {
                    self.pos += 1;
                    if c == self.escape {
                        if self.raw_escapes {
                            r.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                c = n;
                                self.pos += 1;
                            }
                            Some(_) => {}
                        }
                    }
                    r.push(c);
                }
            }
        }
    }

    /// A variable name after `$`: letters, digits and `_`; or all the digits of a positional
    /// parameter; or one special parameter character (`$@`, `$#`, ...), which is never set.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!') {
                self.pos += 1;
                return c.to_string();
            }
            if !(c.is_alphabetic() || c.is_ascii_digit() || c == '_') {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }

    fn dollar(&mut self) -> Res<String> {
        // `${a:-${b:-...}}` recurses; a bound keeps the stack safe from hostile input.
        self.depth += 1;
        let r = if self.depth > 100 {
            Err("substitutions nested too deeply".into())
        } else {
            self.dollar_inner()
        };
        self.depth -= 1;
        r
    }

    fn dollar_inner(&mut self) -> Res<String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.get(&name).unwrap_or_default());
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let Some(c) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        match c {
            '}' => Ok(self.get(&name).unwrap_or_default()),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut modifier = c.to_string();
                let mut op = Some(c);
                let null_is_unset = c == ':';
                if null_is_unset {
                    op = self.next();
                    modifier.extend(op);
                }
                let raw = matches!(op, Some('#' | '%'));
                let word = self.stop_on_braced('}', raw, "syntax error: missing '}'")?;
                let value = self.get(&name);
                let unset = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match op {
                    Some('-') => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    Some('+') => Ok(if unset { String::new() } else { word }),
                    Some('?') => {
                        let Some(v) = value else {
                            return Err(format!(
                                "{name}: {}",
                                or(word, "is not allowed to be unset")
                            ));
                        };
                        if unset {
                            return Err(format!(
                                "{name}: {}",
                                or(word, "is not allowed to be empty")
                            ));
                        }
                        Ok(v)
                    }
                    Some(op @ ('#' | '%')) => {
                        // `##` / `%%` remove the longest match, `#` / `%` the shortest.
                        let (greedy, pattern) = match word.strip_prefix(op) {
                            Some(p) => (true, p),
                            None => (false, word.as_str()),
                        };
                        let toks = glob(pattern).map_err(|e| {
                            format!("invalid pattern ({pattern}) in substitution: {e}")
                        })?;
                        let v: Vec<char> = value.unwrap_or_default().chars().collect();
                        Ok(if op == '#' {
                            trim_prefix(&toks, &v, greedy)
                        } else {
                            trim_suffix(&toks, &v, greedy)
                        })
                    }
                    _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pattern = self.stop_on_braced('/', true, "syntax error: missing '/' in ${}")?;
                let replacement = self.stop_on_braced('}', true, "syntax error: missing '}'")?;
                let v: Vec<char> = self.get(&name).unwrap_or_default().chars().collect();
                let toks = glob(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                Ok(replace(&toks, &v, &replacement, all))
            }
            _ => Err(format!("unsupported modifier ({c}) in substitution")),
        }
    }

    /// `stop_on` inside `${...}`: running out of input is reported as `missing`.
    fn stop_on_braced(&mut self, stop: char, raw: bool, missing: &str) -> Res<String> {
        match self.stop_on(Some(stop), raw) {
            Ok((w, _)) => Ok(w),
            Err(_) if self.peek().is_none() => Err(missing.into()),
            Err(e) => Err(e),
        }
    }
}

fn or(word: String, default: &str) -> String {
    if word.is_empty() {
        default.to_string()
    } else {
        word
    }
}

/// A shell pattern: `*` any run, `?` any one character (neither matches a newline), `\`
/// quotes `*`, `?`, `\`, and is dropped before `}` and `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

fn glob(pattern: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        i += 1;
        toks.push(match c {
            '*' => Tok::Star,
            '?' => Tok::Any,
            '\\' => match cs.get(i) {
                Some('}' | '/') => continue,
                Some(&t @ ('*' | '?' | '\\')) => {
                    i += 1;
                    Tok::Lit(t)
                }
                Some(t) => return Err(format!("invalid escape '\\{t}'")),
                None => return Err("invalid escape '\\'".into()),
            },
            c => Tok::Lit(c),
        });
    }
    Ok(toks)
}

/// Every `n` such that the pattern matches exactly `v[..n]`, in increasing order.
fn match_ends(toks: &[Tok], v: &[char]) -> Vec<usize> {
    let m = toks.len();
    let close = |set: &mut Vec<bool>| {
        for t in 0..m {
            if set[t] && toks[t] == Tok::Star {
                set[t + 1] = true;
            }
        }
    };
    let mut cur = vec![false; m + 1];
    cur[0] = true;
    close(&mut cur);
    let mut ends = Vec::new();
    if cur[m] {
        ends.push(0);
    }
    for (i, &c) in v.iter().enumerate() {
        let mut next = vec![false; m + 1];
        for t in (0..m).filter(|&t| cur[t]) {
            match toks[t] {
                Tok::Lit(l) if l == c => next[t + 1] = true,
                Tok::Any if c != '\n' => next[t + 1] = true,
                Tok::Star if c != '\n' => next[t] = true,
                _ => {}
            }
        }
        close(&mut next);
        if !next.contains(&true) {
            break;
        }
        cur = next;
        if cur[m] {
            ends.push(i + 1);
        }
    }
    ends
}

fn pick(ends: &[usize], greedy: bool) -> Option<usize> {
    if greedy {
        ends.last().copied()
    } else {
        ends.first().copied()
    }
}

fn trim_prefix(toks: &[Tok], v: &[char], greedy: bool) -> String {
    match pick(&match_ends(toks, v), greedy) {
        Some(n) => v[n..].iter().collect(),
        None => v.iter().collect(),
    }
}

/// A suffix match is a prefix match of the reversed pattern on the reversed value.
fn trim_suffix(toks: &[Tok], v: &[char], greedy: bool) -> String {
    let rt: Vec<Tok> = toks.iter().rev().copied().collect();
    let rv: Vec<char> = v.iter().rev().copied().collect();
    match pick(&match_ends(&rt, &rv), greedy) {
        Some(n) => v[..v.len() - n].iter().collect(),
        None => v.iter().collect(),
    }
}

/// The leftmost match at or after `from`, longest at that start: `(start, end)`.
///
/// One pass with every start in flight at once, each pattern position keeping only the
/// leftmost start that reached it (whatever reaches the same position at the same place
/// can only end the same ways). Trying each start in turn instead cost O(len² × pattern)
/// per match, so a 3 KB Minifile could hang the build in one `${V//?*?*…/x}`.
fn find(toks: &[Tok], v: &[char], from: usize) -> Option<(usize, usize)> {
    let m = toks.len();
    let keep = |slot: &mut Option<usize>, s: usize| *slot = Some(slot.map_or(s, |x| x.min(s)));
    let mut cur: Vec<Option<usize>> = vec![None; m + 1];
    let mut best: Option<(usize, usize)> = None;
    for i in from..=v.len() {
        // A match starting here is only wanted while none has started further left.
        if best.is_none() {
            keep(&mut cur[0], i);
        }
        for t in 0..m {
            if let (Tok::Star, Some(s)) = (toks[t], cur[t]) {
                keep(&mut cur[t + 1], s);
            }
        }
        if let Some(s) = cur[m] {
            if best.map_or(true, |(bs, be)| s < bs || (s == bs && i > be)) {
                best = Some((s, i));
            }
        }
        if let Some((bs, _)) = best {
            cur.iter_mut()
                .filter(|x| x.is_some_and(|s| s > bs))
                .for_each(|x| *x = None);
            if cur.iter().all(Option::is_none) {
                break;
            }
        }
        let Some(&c) = v.get(i) else { break };
        let mut next = vec![None; m + 1];
        for t in 0..m {
            let Some(s) = cur[t] else { continue };
            match toks[t] {
                Tok::Lit(l) if l == c => keep(&mut next[t + 1], s),
                Tok::Any if c != '\n' => keep(&mut next[t + 1], s),
                Tok::Star if c != '\n' => keep(&mut next[t], s),
                _ => {}
            }
        }
        cur = next;
    }
    best
}

/// `${V/pat/rep}` replaces the first match, `${V//pat/rep}` every one, as Go's
/// `Regexp.ReplaceAllString` does (an empty match right after a match is skipped).
fn replace(toks: &[Tok], v: &[char], rep: &str, all: bool) -> String {
    let mut out = String::new();
    if !all {
        return match find(toks, v, 0) {
            Some((a, b)) => {
                out.extend(&v[..a]);
                out.push_str(rep);
                out.extend(&v[b..]);
                out
            }
            None => v.iter().collect(),
        };
    }
    let (mut last_end, mut search) = (0, 0);
    while search <= v.len() {
        let Some((a, b)) = find(toks, v, search) else {
            break;
        };
        out.extend(&v[last_end..a]);
        if b > last_end || a == 0 {
            out.push_str(rep);
        }
        last_end = b;
        let width = usize::from(search < v.len());
        if search + width > b {
            search += width;
        } else if search + 1 > b {
            search += 1;
        } else {
            search = b;
        }
    }
    out.extend(&v[last_end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn w(s: &str, e: &HashMap<String, String>) -> String {
        word(s, &|k| e.get(k).cloned(), '\\').unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ws(s: &str, e: &HashMap<String, String>) -> Vec<String> {
        words(s, &|k| e.get(k).cloned(), '\\').unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn fails(s: &str, e: &HashMap<String, String>) -> String {
        word(s, &|k| e.get(k).cloned(), '\\').unwrap_err().message
    }

    #[test]
    fn plain_and_braced_variables() {
        let e = env(&[("FOO", "/bar"), ("EMPTY", ""), ("a_1", "x")]);
        assert_eq!(w("${FOO}", &e), "/bar");
        assert_eq!(w("$FOO/baz", &e), "/bar/baz");
        assert_eq!(w("${FOO}baz", &e), "/barbaz");
        assert_eq!(w("$FOObaz", &e), "");
        assert_eq!(w("$a_1.$EMPTY.$UNSET.", &e), "x...");
        // Not a variable: `$` alone, before a blank or punctuation.
        assert_eq!(w("cost: 5$ $ $/", &e), "cost: 5$ $ $/");
        // Special and positional parameters are never set.
        assert_eq!(w("a$$b$1c$@d$#e$10f", &e), "abcdef");
    }

    #[test]
    fn docker_docs_escaping() {
        // From the Dockerfile reference: `\$FOO` and `\${FOO}` stay literal.
        let e = env(&[("FOO", "/bar")]);
        assert_eq!(w("\\$FOO", &e), "$FOO");
        assert_eq!(w("\\${FOO}", &e), "${FOO}");
        assert_eq!(w("a\\ b\\\\c\\", &e), "a b\\c");
        // With the backtick as escape character a backslash is ordinary.
        assert_eq!(
            word("C:\\dir\\`$FOO", &|k| e.get(k).cloned(), '`').unwrap(),
            "C:\\dir\\$FOO"
        );
    }

    #[test]
    fn default_alternative_and_required() {
        let e = env(&[("SET", "v"), ("EMPTY", "")]);
        assert_eq!(w("${SET:-d} ${EMPTY:-d} ${UNSET:-d}", &e), "v d d");
        assert_eq!(w("${SET-d} ${EMPTY-d} ${UNSET-d}", &e), "v  d");
        assert_eq!(w("${SET:+a} ${EMPTY:+a} ${UNSET:+a}", &e), "a  ");
        assert_eq!(w("${SET+a} ${EMPTY+a} ${UNSET+a}", &e), "a a ");
        assert_eq!(w("${UNSET:-${SET}x}", &e), "vx");
        assert_eq!(w("${UNSET:-a b}", &e), "a b");
        assert_eq!(w("${SET:?} ${EMPTY?}", &e), "v ");
        assert_eq!(fails("${UNSET:?}", &e), "UNSET: is not allowed to be unset");
        assert_eq!(fails("${EMPTY:?}", &e), "EMPTY: is not allowed to be empty");
        assert_eq!(fails("${UNSET?set it, $SET}", &e), "UNSET: set it, v");
        assert_eq!(fails("${EMPTY:?must be set}", &e), "EMPTY: must be set");
    }

    #[test]
    fn docker_docs_pattern_removal_and_replacement() {
        // The Dockerfile reference's examples.
        let e = env(&[("str", "foobarbaz"), ("string", "foobarbaz")]);
        assert_eq!(w("${str#f*b}", &e), "arbaz");
        assert_eq!(w("${str##f*b}", &e), "az");
        assert_eq!(w("${str%b*z}", &e), "foobar");
        assert_eq!(w("${str%%b*z}", &e), "foo");
        assert_eq!(w("${string/ba/fo}", &e), "fooforbaz");
        assert_eq!(w("${string//ba/fo}", &e), "fooforfoz");
        // More: `?`, escapes in patterns, no match, empty pattern.
        let e = env(&[("P", "/usr/local/bin/tool.tar.gz"), ("S", "a*b*c")]);
        assert_eq!(w("${P##*/}", &e), "tool.tar.gz");
        assert_eq!(w("${P%/*}", &e), "/usr/local/bin");
        assert_eq!(w("${P%.*}", &e), "/usr/local/bin/tool.tar");
        assert_eq!(w("${P%%.*}", &e), "/usr/local/bin/tool");
        assert_eq!(w("${P#/usr/???al}", &e), "/bin/tool.tar.gz");
        assert_eq!(w("${P#nomatch}", &e), "/usr/local/bin/tool.tar.gz");
        assert_eq!(w("${S%%\\**}", &e), "a");
        assert_eq!(w("${S//\\*/-}", &e), "a-b-c");
        assert_eq!(w("${P//\\//:}", &e), ":usr:local:bin:tool.tar.gz");
        assert_eq!(fails("${S/}", &e), "syntax error: missing '/' in ${}");
        assert_eq!(w("${S///}", &e), "a*b*c");
        assert_eq!(w("${S//?/.}", &e), ".....");
        assert_eq!(w("${UNSET#x}${UNSET/x/y}", &e), "");
        assert!(fails("${S#\\x}", &e).contains("invalid escape"));
    }

    #[test]
    fn quotes() {
        let e = env(&[("V", "x y")]);
        assert_eq!(w("\"a b\"", &e), "a b");
        assert_eq!(w("'$V' \"$V\"", &e), "$V x y");
        assert_eq!(w("\"a\\\"b\\$V\\\\c\\d\"", &e), "a\"b$V\\c\\d");
        assert_eq!(w("'a\\'", &e), "a\\");
        assert_eq!(w("value\\ value2", &e), "value value2");
        assert_eq!(
            w("\"value'quote space'value2\"", &e),
            "value'quote space'value2"
        );
        assert_eq!(w("a\"\"b''c", &e), "abc");
        assert_eq!(
            fails("'abc", &e),
            "unexpected end of statement while looking for matching single-quote"
        );
        assert_eq!(
            fails("\"abc", &e),
            "unexpected end of statement while looking for matching double-quote"
        );
    }

    #[test]
    fn syntax_errors() {
        let e = env(&[("A", "a")]);
        assert_eq!(fails("${A", &e), "syntax error: missing '}'");
        assert_eq!(fails("${A:-x", &e), "syntax error: missing '}'");
        assert_eq!(fails("${", &e), "syntax error: missing '}'");
        assert_eq!(fails("${}", &e), "syntax error: bad substitution");
        assert_eq!(fails("${:-x}", &e), "syntax error: bad substitution");
        assert_eq!(
            fails("${A=x}", &e),
            "unsupported modifier (=) in substitution"
        );
        assert_eq!(
            fails("${A:x}", &e),
            "unsupported modifier (:x) in substitution"
        );
        assert_eq!(fails("${A/x", &e), "syntax error: missing '/' in ${}");
        let err = word("${A:?}x${B:?}", &|k| e.get(k).cloned(), '\\').unwrap_err();
        assert_eq!(
            err.to_string(),
            "expand \"${A:?}x${B:?}\": B: is not allowed to be unset"
        );
    }

    #[test]
    fn word_splitting() {
        let e = env(&[("PORTS", "80/tcp  443"), ("EMPTY", "")]);
        assert_eq!(ws("$PORTS 8080", &e), ["80/tcp", "443", "8080"]);
        assert_eq!(ws("\"$PORTS\" x", &e), ["80/tcp  443", "x"]);
        assert_eq!(ws("  a\\ b  c  ", &e), ["a b", "c"]);
        assert_eq!(ws("$EMPTY", &e), Vec::<String>::new());
        assert_eq!(ws("a \"\" b", &e), ["a", "b"]);
        // `word` keeps the blanks as they are.
        assert_eq!(w("  $PORTS  ", &e), "  80/tcp  443  ");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let e = env(&[]);
        let deep = format!("{}x{}", "${A:-".repeat(10_000), "}".repeat(10_000));
        assert_eq!(fails(&deep, &e), "substitutions nested too deeply");
        let ok = format!("{}x{}", "${A:-".repeat(50), "}".repeat(50));
        assert_eq!(w(&ok, &e), "x");
    }

    /// `find` as it was: every start in turn, the first that matches.
    fn find_each_start(toks: &[Tok], v: &[char], from: usize) -> Option<(usize, usize)> {
        (from..=v.len()).find_map(|s| match_ends(toks, &v[s..]).last().map(|&n| (s, s + n)))
    }

    #[test]
    fn find_agrees_with_trying_each_start() {
        let alphabet = ['a', 'b', '\n'];
        let pats = [
            "", "a", "*", "?", "a*", "*a", "a*b", "?*?", "*b*", "b?a", "**a", "a*a*",
        ];
        // Every value of up to 6 characters over the alphabet, from every position.
        let mut values: Vec<Vec<char>> = vec![Vec::new()];
        let mut last = values.clone();
        for _ in 0..6 {
            last = last
                .iter()
                .flat_map(|v| alphabet.iter().map(move |&c| [v.as_slice(), &[c]].concat()))
                .collect();
            values.extend(last.iter().cloned());
        }
        for p in pats {
            let toks = glob(p).unwrap();
            for v in &values {
                for from in 0..=v.len() {
                    assert_eq!(
                        find(&toks, v, from),
                        find_each_start(&toks, v, from),
                        "pattern {p:?} value {v:?} from {from}"
                    );
                }
            }
        }
    }

    #[test]
    fn replacement_is_not_quadratic_in_the_value() {
        // A hang of the minifile fuzz target (fuzz/regressions/minifile/slow-replace-all):
        // with every start tried in turn, this 3 KB word took minutes.
        let long = "ab/".repeat(400);
        let e = env(&[("LONG", &long)]);
        let pattern = "?*".repeat(1500);
        let t = std::time::Instant::now();
        assert_eq!(w(&format!("${{LONG//{pattern}x/y}}"), &e), long);
        let shorter = "?*".repeat(300);
        assert_eq!(w(&format!("${{LONG/{shorter}/y}}"), &e), "y");
        assert!(t.elapsed().as_secs() < 5, "took {:?}", t.elapsed());
    }

    #[test]
    fn unicode_names_and_values() {
        let e = env(&[("KOREAN", "한국어"), ("größe", "xl")]);
        assert_eq!(w("$KOREAN/${KOREAN%어}", &e), "한국어/한국");
        assert_eq!(w("$größe", &e), "xl");
    }
}
