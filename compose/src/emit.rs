//! Writing YAML the way go-yaml v3 (docker compose's encoder, indent 2) writes it, so that
//! `config` prints what `docker compose config` prints: block style, sequences indented
//! under their key, strings plain when they read back as the same string, double-quoted
//! when plain would read as another type (`"8080"`, `"true"`, `""`), single-quoted when plain
//! would not parse (`'@im=fcitx'`), literal blocks for multi-line strings, floats as Go's
//! shortest `%g`. Knows nothing of compose.

use crate::yaml::{is_float, parse_int};

/// A YAML document to write; maps keep their order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Out {
    Null,
    Bool(bool),
    Int(i64),
    /// Written with float32 precision when the flag is set (compose's `cpus`).
    Float(f64, bool),
    Str(String),
    Seq(Vec<Out>),
    Map(Vec<(String, Out)>),
}

pub(crate) fn to_string(doc: &Out) -> String {
    let mut s = String::new();
    match doc {
        Out::Map(m) if !m.is_empty() => map(&mut s, m, 0),
        Out::Seq(v) if !v.is_empty() => seq(&mut s, v, 0),
        other => {
            s.push_str(&inline(other, false).unwrap_or_default());
            s.push('\n');
        }
    }
    s
}

fn pad(s: &mut String, n: usize) {
    for _ in 0..n {
        s.push(' ');
    }
}

/// A value that fits after `key: ` or `- ` on the same line; `None` for a non-empty
/// collection or a literal block.
fn inline(v: &Out, simple_key: bool) -> Option<String> {
    Some(match v {
        Out::Null => "null".to_string(),
        Out::Bool(b) => b.to_string(),
        Out::Int(i) => i.to_string(),
        Out::Float(f, f32) => go_float(*f, *f32),
        Out::Str(st) => match scalar(st, simple_key) {
            Style::Literal => return None,
            Style::Text(t) => t,
        },
        Out::Seq(v) if v.is_empty() => "[]".to_string(),
        Out::Map(m) if m.is_empty() => "{}".to_string(),
        _ => return None,
    })
}

fn map(s: &mut String, m: &[(String, Out)], indent: usize) {
    for (i, (k, v)) in m.iter().enumerate() {
        // The first key of a map that is a sequence item follows the `- ` already written.
        if i > 0 || s.ends_with('\n') || s.is_empty() {
            pad(s, indent);
        }
        s.push_str(&key_text(k));
        s.push(':');
        value(s, v, indent, true);
    }
}

fn seq(s: &mut String, v: &[Out], indent: usize) {
    for (i, item) in v.iter().enumerate() {
        if i > 0 || s.ends_with('\n') || s.is_empty() {
            pad(s, indent);
        }
        s.push('-');
        value(s, item, indent, false);
    }
}

/// Writes what follows `key:` (in_map) or `-`.
fn value(s: &mut String, v: &Out, indent: usize, in_map: bool) {
    match v {
        Out::Map(m) if !m.is_empty() => {
            if in_map {
                s.push('\n');
                map(s, m, indent + 2);
            } else {
                s.push(' ');
                map(s, m, indent + 2);
            }
        }
        Out::Seq(items) if !items.is_empty() => {
            if in_map {
                s.push('\n');
                seq(s, items, indent + 2);
            } else {
                s.push(' ');
                seq(s, items, indent + 2);
            }
        }
        Out::Str(st) if inline(v, false).is_none() => literal(s, st, indent + 2),
        _ => {
            s.push(' ');
            s.push_str(&inline(v, false).expect("a scalar"));
            s.push('\n');
        }
    }
}

fn key_text(k: &str) -> String {
    match scalar(k, true) {
        Style::Text(t) => t,
        Style::Literal => double_quoted(k),
    }
}

/// A literal block (`|`), with the chomping indicator go-yaml picks.
fn literal(s: &mut String, st: &str, indent: usize) {
    s.push_str(" |");
    if st.starts_with(' ') {
        s.push('2');
    }
    if !st.ends_with('\n') {
        s.push('-');
    } else if st.ends_with("\n\n") {
        s.push('+');
    }
    s.push('\n');
    let body = st.strip_suffix('\n').unwrap_or(st);
    for line in body.split('\n') {
        if !line.is_empty() {
            pad(s, indent);
            s.push_str(line);
        }
        s.push('\n');
    }
}

enum Style {
    Text(String),
    Literal,
}

/// How go-yaml v3 writes a string scalar.
fn scalar(st: &str, simple_key: bool) -> Style {
    let a = analyze(st);
    if st.contains('\n') && !simple_key {
        if a.block_allowed {
            return Style::Literal;
        }
        return Style::Text(double_quoted(st));
    }
    // A string that would read back as something else (a number, a bool, null, a YAML 1.1
    // bool or a base-60 number) is double-quoted.
    if !reads_as_string(st) {
        return Style::Text(double_quoted(st));
    }
    if a.plain_allowed && !(st.is_empty() && simple_key) {
        return Style::Text(st.to_string());
    }
    if a.single_allowed {
        return Style::Text(format!("'{}'", st.replace('\'', "''")));
    }
    Style::Text(double_quoted(st))
}

fn reads_as_string(st: &str) -> bool {
    if crate::yaml::resolve(st) != crate::yaml::Type::Str {
        return false;
    }
    // go-yaml also takes `_` out of numbers and knows 0b binaries.
    let no_us: String = st.chars().filter(|c| *c != '_').collect();
    if no_us != st && (parse_int(&no_us).is_some() || is_float(&no_us)) {
        return false;
    }
    if let Some(b) = st
        .strip_prefix("0b")
        .or_else(|| st.strip_prefix("-0b"))
        .or_else(|| st.strip_prefix("+0b"))
    {
        if !b.is_empty() && b.chars().all(|c| c == '0' || c == '1') {
            return false;
        }
    }
    // Octal with a leading zero, as Go's ParseInt(s, 0, 64) reads it.
    let digits = st.trim_start_matches(['-', '+']);
    if digits.len() > 1 && digits.starts_with('0') && digits.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    !(is_old_bool(st) || is_base60_float(st))
}

fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if let Some(f) = frac {
        if !f.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return false;
        }
    }
    let mut parts = main.split(':');
    let head = parts.next().unwrap_or("");
    if !head.starts_with(|c: char| c.is_ascii_digit())
        || !head.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return false;
    }
    let mut n = 0;
    for p in parts {
        n += 1;
        let ok = match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    n > 0
}

struct Analysis {
    plain_allowed: bool,
    single_allowed: bool,
    block_allowed: bool,
}

/// libyaml's `yaml_emitter_analyze_scalar`, for block context.
fn analyze(st: &str) -> Analysis {
    if st.is_empty() {
        return Analysis {
            plain_allowed: false,
            single_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = st.chars().collect();
    let blankz = |c: Option<&char>| matches!(c, None | Some(' ' | '\t' | '\n' | '\r'));
    let mut block_indicators = st.starts_with("---") || st.starts_with("...");
    let mut special = false;
    let mut line_breaks = false;
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = blankz(chars.get(i + 1));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' if followed_by_ws => block_indicators = true,
                '-' if followed_by_ws => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => block_indicators = true,
                '#' if preceded_by_ws => block_indicators = true,
                _ => {}
            }
        }
        let printable = matches!(c, '\n' | '\u{85}')
            || (c >= ' ' && c != '\u{7f}' && !is_non_printable_unicode(c));
        if !printable {
            special = true;
        }
        if c == '\n' || c == '\r' {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == chars.len() - 1 {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if c == '\n' || c == '\r' {
            if i == 0 {
                leading_break = true;
            }
            if i == chars.len() - 1 {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = blankz(Some(&c));
    }
    let mut a = Analysis {
        plain_allowed: true,
        single_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.plain_allowed = false;
        a.single_allowed = false;
    }
    if space_break || special {
        a.plain_allowed = false;
        a.single_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks || block_indicators {
        a.plain_allowed = false;
    }
    a
}

fn is_non_printable_unicode(c: char) -> bool {
    matches!(c, '\u{80}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}') && c != '\u{85}' || c == '\u{feff}'
}

fn double_quoted(st: &str) -> String {
    let mut o = String::with_capacity(st.len() + 2);
    o.push('"');
    for c in st.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\0' => o.push_str("\\0"),
            '\u{7}' => o.push_str("\\a"),
            '\u{8}' => o.push_str("\\b"),
            '\t' => o.push_str("\\t"),
            '\n' => o.push_str("\\n"),
            '\u{b}' => o.push_str("\\v"),
            '\u{c}' => o.push_str("\\f"),
            '\r' => o.push_str("\\r"),
            '\u{1b}' => o.push_str("\\e"),
            '\u{85}' => o.push_str("\\N"),
            '\u{a0}' => o.push_str("\\_"),
            '\u{2028}' => o.push_str("\\L"),
            '\u{2029}' => o.push_str("\\P"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => o.push_str(&format!("\\x{:02X}", c as u32)),
            c if is_non_printable_unicode(c) => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64 or 32)`, with YAML's names for the specials.
pub(crate) fn go_float(f: f64, f32: bool) -> String {
    let f = if f32 { f64::from(f as f32) } else { f };
    if f.is_nan() {
        return ".nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_string();
    }
    // Rust's `{:e}` gives the shortest digits that read back the same, as Go's -1 precision.
    let e = if f32 {
        format!("{:e}", f as f32)
    } else {
        format!("{f:e}")
    };
    let (mant, exp) = e.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("an exponent");
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if neg { "-" } else { "" };
    // Go's shortest 'g' uses %e when the exponent is < -4 or >= 6.
    if !(-4..6).contains(&exp) {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits.clone()
        };
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{es}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = (exp + 1) as usize;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Out {
        Out::Str(x.to_string())
    }

    fn text(x: &str) -> String {
        match scalar(x, false) {
            Style::Text(t) => t,
            Style::Literal => "<literal>".into(),
        }
    }

    #[test]
    fn quoting_as_go_yaml_does() {
        let cases = [
            ("busybox", "busybox"),
            ("8080", "\"8080\""),
            ("1.5", "\"1.5\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("null", "\"null\""),
            ("", "\"\""),
            ("~", "\"~\""),
            ("0x1F", "\"0x1F\""),
            ("017", "\"017\""),
            ("1_000", "\"1_000\""),
            ("8080:80", "8080:80"),
            ("10:30", "\"10:30\""),
            ("12:30:45", "\"12:30:45\""),
            ("@im=fcitx", "'@im=fcitx'"),
            ("unix:0", "unix:0"),
            ("/tmp/.X11-unix", "/tmp/.X11-unix"),
            ("a: b", "'a: b'"),
            ("- x", "'- x'"),
            ("-p", "-p"),
            ("x #y", "'x #y'"),
            ("x#y", "x#y"),
            (" lead", "' lead'"),
            ("trail ", "'trail '"),
            ("it's", "it's"),
            ("'q'", "'''q'''"),
            ("*star", "'*star'"),
            ("tab\there", "\"tab\\there\""),
            ("echo \"hello world\"", "echo \"hello world\""),
            ("node.labels.az", "node.labels.az"),
            ("2001:3984:3989::10", "2001:3984:3989::10"),
            ("02:42:ac:11:65:43", "02:42:ac:11:65:43"),
            ("1e3", "\"1e3\""),
            ("héllo", "héllo"),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), want, "{input:?}");
        }
        assert_eq!(text("a\nb"), "<literal>");
    }

    #[test]
    fn documents() {
        let doc = Out::Map(vec![
            ("name".into(), s("p")),
            (
                "services".into(),
                Out::Map(vec![(
                    "web".into(),
                    Out::Map(vec![
                        (
                            "command".into(),
                            Out::Seq(vec![s("sh"), s("-c"), s("3000")]),
                        ),
                        (
                            "environment".into(),
                            Out::Map(vec![("A".into(), s("1")), ("B".into(), Out::Null)]),
                        ),
                        (
                            "networks".into(),
                            Out::Map(vec![("default".into(), Out::Null)]),
                        ),
                        (
                            "ports".into(),
                            Out::Seq(vec![Out::Map(vec![
                                ("mode".into(), s("ingress")),
                                ("target".into(), Out::Int(80)),
                                ("published".into(), s("8080")),
                            ])]),
                        ),
                        ("volume".into(), Out::Map(vec![])),
                        ("dns".into(), Out::Seq(vec![])),
                        ("script".into(), s("line 1\nline 2\n")),
                        (
                            "nested".into(),
                            Out::Seq(vec![Out::Seq(vec![s("a"), s("b")])]),
                        ),
                    ]),
                )]),
            ),
        ]);
        assert_eq!(
            to_string(&doc),
            "name: p
services:
  web:
    command:
      - sh
      - -c
      - \"3000\"
    environment:
      A: \"1\"
      B: null
    networks:
      default: null
    ports:
      - mode: ingress
        target: 80
        published: \"8080\"
    volume: {}
    dns: []
    script: |
      line 1
      line 2
    nested:
      - - a
        - b
"
        );
    }

    #[test]
    fn literal_chomping() {
        let mut out = String::new();
        literal(&mut out, "a\nb", 2);
        assert_eq!(out, " |-\n  a\n  b\n");
        let mut out = String::new();
        literal(&mut out, "a\n\nb\n", 2);
        assert_eq!(out, " |\n  a\n\n  b\n");
    }

    #[test]
    fn floats_as_go_prints_them() {
        let cases = [
            (0.5, true, "0.5"),
            (2.0, true, "2"),
            (0.001, true, "0.001"),
            (0.0001, true, "0.0001"),
            (0.00001, false, "1e-05"),
            (1.5, true, "1.5"),
            (0.1, true, "0.1"),
            (100000.0, false, "100000"),
            (1000000.0, false, "1e+06"),
            (123456789.0, false, "1.23456789e+08"),
            (1234567.0, false, "1.234567e+06"),
            (-0.25, false, "-0.25"),
            (0.3, true, "0.3"),
            (1e300, true, ".inf"),
        ];
        for (f, f32, want) in cases {
            assert_eq!(go_float(f, f32), want, "{f}");
        }
    }
}
