//! `.env` and `env_file` files as compose reads them: `KEY=VALUE` lines, an optional `export `
//! prefix, `#` comments (inline ones after a space in unquoted values), single quotes taken
//! literally, double quotes with `\n`-style escapes, values that may span lines inside
//! quotes, and `${VAR}` substitution in unquoted and double-quoted values. A line with a key
//! alone takes the key's value from the environment, or leaves it unset.
//! It reads one file; which files, and which value wins, is the caller's business.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Loc, Result};
use crate::interpolate::substitute;

/// Parses `text` (the content of the file named `file`). `lookup` gives the values that
/// substitutions and bare keys see before the file's own earlier lines.
pub(crate) fn parse(
    file: &Arc<str>,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let lineno = i + 1;
        let at = || Loc::new(file, lineno as u32);
        let line = lines[i].trim_end_matches('\r');
        i += 1;
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
        let key_end = t
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(t.len());
        let key = &t[..key_end];
        if !valid_key(key) {
            return Err(Error::at(at(), format!("invalid variable name {key:?}")));
        }
        let after = t[key_end..].trim_start();
        let Some(raw) = after.strip_prefix('=') else {
            if after.is_empty() || after.starts_with('#') {
                // A key alone: its value comes from the environment, if it is there.
                if let Some(v) = earlier(&out, key).or_else(|| lookup(key)) {
                    out.push((key.to_string(), v));
                }
                continue;
            }
            return Err(Error::at(
                at(),
                format!("expected = after variable name {key:?}"),
            ));
        };
        let raw = raw.trim_start();
        let value = match raw.chars().next() {
            Some(q @ ('\'' | '"')) => {
                // The value runs to the closing quote, possibly on a later line.
                let mut buf = raw[1..].to_string();
                let close = loop {
                    if let Some(end) = closing_quote(&buf, q) {
                        break end;
                    }
                    if i >= lines.len() {
                        return Err(Error::at(
                            at(),
                            format!("unterminated quoted value for {key}"),
                        ));
                    }
                    buf.push('\n');
                    buf.push_str(lines[i].trim_end_matches('\r'));
                    i += 1;
                };
                let rest = buf[close + 1..].trim();
                if !(rest.is_empty() || rest.starts_with('#')) {
                    return Err(Error::at(
                        at(),
                        format!("unexpected text after the quoted value of {key}: {rest:?}"),
                    ));
                }
                let inner = &buf[..close];
                if q == '\'' {
                    inner.to_string()
                } else {
                    expand(file, lineno, key, &unescape(inner), &out, lookup)?
                }
            }
            _ => {
                let v = match raw.find(" #").or_else(|| raw.find("\t#")) {
                    Some(c) => &raw[..c],
                    None => raw,
                };
                expand(file, lineno, key, v.trim_end(), &out, lookup)?
            }
        };
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// Into a map: later lines win.
pub(crate) fn to_map(pairs: Vec<(String, String)>) -> BTreeMap<String, String> {
    pairs.into_iter().collect()
}

fn earlier(out: &[(String, String)], key: &str) -> Option<String> {
    out.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn closing_quote(s: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if q == '"' && c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        if c == q && !escaped {
            return Some(i);
        }
        escaped = false;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            // `\$` keeps the dollar from substitution.
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn expand(
    file: &Arc<str>,
    line: usize,
    key: &str,
    v: &str,
    out: &[(String, String)],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String> {
    // The environment first (it wins over the file), then the file's own earlier lines.
    let look = |k: &str| lookup(k).or_else(|| earlier(out, k));
    substitute(v, &look, &mut |_| {}).map_err(|f| {
        Error::at(
            Loc::new(file, line as u32),
            format!("{key}: {}", f.message(v)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_env(text: &str) -> Result<Vec<(String, String)>> {
        let env = |k: &str| (k == "HOME").then(|| "/home/u".to_string());
        parse(&Arc::from(".env"), text, &env)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_forms_compose_reads() {
        let got = parse_env(concat!(
            "# comment\n",
            "\n",
            "A=1\n",
            "export B = two words  \n",
            "C='single $HOME # kept'\n",
            "D=\"double $HOME\\n#x\"\n",
            "E=unquoted # comment\n",
            "F=$HOME/x\n",
            "G=${A}-${NOPE:-dflt}\n",
            "H=\n",
            "HOME\n",
            "NOT_SET\n",
            "I=\"multi\n",
            "line\"\n",
            "J=a#b\n",
            "K=\"\\$HOME\"\n",
        ))
        .unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "single $HOME # kept"),
                ("D", "double /home/u\n#x"),
                ("E", "unquoted"),
                ("F", "/home/u/x"),
                ("G", "1-dflt"),
                ("H", ""),
                ("HOME", "/home/u"),
                ("I", "multi\nline"),
                ("J", "a#b"),
                ("K", "$HOME"),
            ])
        );
    }

    #[test]
    fn later_lines_win() {
        assert_eq!(to_map(parse_env("A=1\nA=2\n").unwrap())["A"], "2");
    }

    #[test]
    fn errors_name_file_and_line() {
        assert_eq!(
            parse_env("A=1\n1B=2\n").unwrap_err().to_string(),
            ".env:2: invalid variable name \"1B\""
        );
        assert_eq!(
            parse_env("\nA b\n").unwrap_err().to_string(),
            ".env:2: expected = after variable name \"A\""
        );
        assert_eq!(
            parse_env("A=\"open\nB=1\n").unwrap_err().to_string(),
            ".env:1: unterminated quoted value for A"
        );
        assert_eq!(
            parse_env("\n\nX=${NEED:?set it}\n")
                .unwrap_err()
                .to_string(),
            ".env:3: X: required variable NEED is missing a value: set it"
        );
    }
}
