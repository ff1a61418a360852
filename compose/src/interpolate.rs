//! Variable substitution in compose files and `.env` files, as the Compose specification
//! defines it (<https://github.com/compose-spec/compose-spec/blob/main/12-interpolation.md>):
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
//! `${VAR:+alt}`, `${VAR+alt}`, and `$$` for a literal `$`. Defaults, alternatives and error
//! texts are substituted in turn, so `${A:-${B}}` works. It applies to string values only,
//! never to keys, and knows nothing of where the values come from.

/// Why a string could not be substituted. The caller adds the file, line and key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `${VAR?err}` or `${VAR:?err}` with VAR unset (or empty for `:?`).
    Required { name: String, reason: String },
    /// A `$` that starts nothing valid: `$1`, `${}`, an unclosed `${`.
    Syntax,
}

impl Failure {
    pub fn message(&self, value: &str) -> String {
        match self {
            Failure::Required { name, reason } if reason.is_empty() => {
                format!("required variable {name} is missing a value")
            }
            Failure::Required { name, reason } => {
                format!("required variable {name} is missing a value: {reason}")
            }
            Failure::Syntax => format!(
                "invalid interpolation format in {value:?}: you may need to escape any $ with another $"
            ),
        }
    }
}

/// Substitutes `s`. `lookup` gives a variable's value; variables that are unset and have no
/// default become "" and are reported through `unset` (compose warns about them).
pub(crate) fn substitute(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut dyn FnMut(&str),
) -> Result<String, Failure> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body_and_rest) = after.strip_prefix('{') {
            let end = closing_brace(body_and_rest).ok_or(Failure::Syntax)?;
            out.push_str(&braced(&body_and_rest[..end], lookup, unset)?);
            rest = &body_and_rest[end + 1..];
        } else {
            let n = name_len(after);
            if n == 0 {
                return Err(Failure::Syntax);
            }
            let name = &after[..n];
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => unset(name),
            }
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` that closes a `${`, counting nested `${...}`.
fn closing_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Length of the variable name at the start of `s`: `[_a-zA-Z][_a-zA-Z0-9]*`.
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0] == b'_' || b[0].is_ascii_alphabetic()) {
        return 0;
    }
    b.iter()
        .take_while(|c| **c == b'_' || c.is_ascii_alphanumeric())
        .count()
}

fn braced(
    body: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut dyn FnMut(&str),
) -> Result<String, Failure> {
    let n = name_len(body);
    if n == 0 {
        return Err(Failure::Syntax);
    }
    let name = &body[..n];
    let op = &body[n..];
    let value = lookup(name);
    let (colon, op) = match op.strip_prefix(':') {
        Some(o) => (true, o),
        None => (false, op),
    };
    // With a colon, an empty value counts as unset.
    let set = match &value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    let Some(kind) = op.chars().next() else {
        if colon {
            return Err(Failure::Syntax);
        }
        return Ok(match value {
            Some(v) => v,
            None => {
                unset(name);
                String::new()
            }
        });
    };
    let arg = &op[1..];
    match kind {
        '-' if set => Ok(value.unwrap_or_default()),
        '-' => substitute(arg, lookup, unset),
        '+' if set => substitute(arg, lookup, unset),
        '+' => Ok(String::new()),
        '?' if set => Ok(value.unwrap_or_default()),
        '?' => Err(Failure::Required {
            name: name.to_string(),
            reason: substitute(arg, lookup, unset)?,
        }),
        _ => Err(Failure::Syntax),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn sub(s: &str) -> Result<(String, Vec<String>), Failure> {
        let env: HashMap<&str, &str> =
            [("A", "a"), ("EMPTY", ""), ("DISPLAY", ":0"), ("B", "b")].into();
        let mut unset = Vec::new();
        let out = substitute(s, &|k| env.get(k).map(|v| v.to_string()), &mut |k| {
            unset.push(k.to_string())
        })?;
        Ok((out, unset))
    }

    fn ok(s: &str) -> String {
        sub(s).unwrap().0
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(ok("x$A-y"), "xa-y");
        assert_eq!(ok("unix$DISPLAY"), "unix:0");
        assert_eq!(ok("${A}${B}"), "ab");
        assert_eq!(ok("${A}_$B."), "a_b.");
        assert_eq!(ok("no dollars"), "no dollars");
    }

    #[test]
    fn dollar_dollar_is_a_literal_dollar() {
        assert_eq!(ok("$$A"), "$A");
        assert_eq!(ok("$${A}"), "${A}");
        assert_eq!(ok("a$$"), "a$");
        assert_eq!(ok("$$$A"), "$a");
    }

    #[test]
    fn defaults_distinguish_unset_from_empty() {
        assert_eq!(ok("${NOPE:-d}"), "d");
        assert_eq!(ok("${NOPE-d}"), "d");
        assert_eq!(ok("${EMPTY:-d}"), "d");
        assert_eq!(ok("${EMPTY-d}"), "");
        assert_eq!(ok("${A:-d}"), "a");
        assert_eq!(ok("${NOPE:-}"), "");
        assert_eq!(ok("${NOPE:-${A}}"), "a");
        assert_eq!(ok("${NOPE:-${ALSO_NOPE:-deep}}x"), "deepx");
        assert_eq!(ok("${NOPE:-a b:c/d}"), "a b:c/d");
    }

    #[test]
    fn alternatives() {
        assert_eq!(ok("${A:+alt}"), "alt");
        assert_eq!(ok("${A+alt}"), "alt");
        assert_eq!(ok("${EMPTY:+alt}"), "");
        assert_eq!(ok("${EMPTY+alt}"), "alt");
        assert_eq!(ok("${NOPE+alt}"), "");
        assert_eq!(ok("${NOPE:+alt}"), "");
    }

    #[test]
    fn required_variables() {
        assert_eq!(ok("${A:?no}"), "a");
        assert_eq!(ok("${EMPTY?no}"), "");
        assert_eq!(
            sub("${DISPLAY_X:?set it to your X display}").unwrap_err(),
            Failure::Required {
                name: "DISPLAY_X".into(),
                reason: "set it to your X display".into()
            }
        );
        assert_eq!(
            sub("${EMPTY:?empty}").unwrap_err(),
            Failure::Required {
                name: "EMPTY".into(),
                reason: "empty".into()
            }
        );
        assert_eq!(
            sub("${NOPE?}").unwrap_err().message("${NOPE?}"),
            "required variable NOPE is missing a value"
        );
    }

    #[test]
    fn unset_variables_are_empty_and_reported() {
        assert_eq!(
            sub("a${NOPE}b$NOPE2").unwrap(),
            ("ab".to_string(), vec!["NOPE".into(), "NOPE2".into()])
        );
        // A default means nothing is reported.
        assert_eq!(sub("${NOPE:-x}").unwrap().1, Vec::<String>::new());
    }

    #[test]
    fn invalid_formats() {
        for s in [
            "$1", "a $ b", "${", "${A", "${}", "${1A}", "${A:}", "${A!x}", "end$",
        ] {
            assert_eq!(sub(s).unwrap_err(), Failure::Syntax, "{s}");
        }
        assert_eq!(
            Failure::Syntax.message("echo $1"),
            "invalid interpolation format in \"echo $1\": you may need to escape any $ with another $"
        );
    }
}
