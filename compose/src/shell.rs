//! Splitting a `command:` or `entrypoint:` string into words, as compose does before it
//! runs the words without a shell: blanks separate words, single quotes keep everything,
//! double quotes keep blanks and let a backslash escape `"`, `\`, `$` and a backtick, and a
//! backslash outside quotes escapes the next character. No expansion happens here (variables
//! were interpolated before). Shell operators (`&&`, `|`, `;`, `>`...) outside quotes are
//! refused: without a shell they would become plain arguments, so the file most likely
//! meant `sh -c '...'`.

/// Why a string could not be split.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SplitError {
    Unterminated(char),
    Operator(char),
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitError::Unterminated(q) => write!(f, "unterminated {q} quote"),
            SplitError::Operator(c) => write!(
                f,
                "{c:?} is a shell operator and the command runs without a shell: quote it, or use [\"sh\", \"-c\", \"...\"]"
            ),
        }
    }
}

pub(crate) fn split(s: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err(SplitError::Unterminated('\'')),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some(&n @ ('"' | '\\' | '$' | '`')) => {
                                word.push(n);
                                chars.next();
                            }
                            Some('\n') => {
                                chars.next();
                            }
                            _ => word.push('\\'),
                        },
                        Some(ch) => word.push(ch),
                        None => return Err(SplitError::Unterminated('"')),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(ch) => word.push(ch),
                }
            }
            ';' | '&' | '|' | '<' | '>' | '`' => return Err(SplitError::Operator(c)),
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<String> {
        split(s).unwrap()
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            ok("bundle exec thin -p 3000"),
            ["bundle", "exec", "thin", "-p", "3000"]
        );
        assert_eq!(
            ok("  sh   -c 'echo $HOME; ls'  "),
            ["sh", "-c", "echo $HOME; ls"]
        );
        assert_eq!(ok(r#"echo "a \"b\" \$c \d""#), ["echo", r#"a "b" $c \d"#]);
        assert_eq!(ok(r"echo a\ b \'c"), ["echo", "a b", "'c"]);
        assert_eq!(ok("a''b \"\" ''"), ["ab", "", ""]);
        assert_eq!(ok(""), Vec::<String>::new());
        assert_eq!(ok("x --opt=a=b"), ["x", "--opt=a=b"]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            split("echo 'a").unwrap_err(),
            SplitError::Unterminated('\'')
        );
        assert_eq!(
            split("echo \"a").unwrap_err(),
            SplitError::Unterminated('"')
        );
        assert_eq!(
            split("echo a && echo b").unwrap_err(),
            SplitError::Operator('&')
        );
        assert_eq!(split("echo a > /f").unwrap_err(), SplitError::Operator('>'));
        assert_eq!(
            ok("echo 'a && b' \"c | d\" e\\;"),
            ["echo", "a && b", "c | d", "e;"]
        );
    }
}
