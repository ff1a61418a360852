//! A compose file as a tree of nodes that remember their line, built from saphyr-parser's
//! events. Owns what YAML itself means: anchors and aliases, merge keys (`<<`), refusing
//! duplicate keys, and resolving plain scalars by the YAML 1.2 core schema (as go-yaml v3,
//! which docker compose uses, does). It never interprets compose keys.

use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};

use crate::error::{Error, Loc, Result};

/// How a scalar resolved. Quoted and block scalars are always `Str`; plain ones by the core
/// schema (`null`, `~` and empty are null, `true`/`false` bool, numbers int or float).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Type {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

#[derive(Clone, Debug)]
pub(crate) struct Scalar {
    pub text: String,
    pub ty: Type,
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub key: String,
    /// The key's line: errors about a value point here, where the reader looks.
    pub line: u32,
    pub value: Node,
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Scalar(Scalar, u32),
    Seq(Vec<Node>, u32),
    Map(Vec<Entry>, u32),
}

impl Node {
    pub fn line(&self) -> u32 {
        match self {
            Node::Scalar(_, l) | Node::Seq(_, l) | Node::Map(_, l) => *l,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(s, _) if s.ty == Type::Null)
    }

    /// Number of nodes below and including this one (for the alias expansion budget).
    fn size(&self) -> usize {
        match self {
            Node::Scalar(..) => 1,
            Node::Seq(items, _) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Node::Map(entries, _) => 1 + entries.iter().map(|e| 1 + e.value.size()).sum::<usize>(),
        }
    }
}

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 200;
/// Aliases are expanded by copying; a "billion laughs" file is refused past this many nodes.
const MAX_NODES: usize = 1_000_000;

/// Parses one compose file. An empty file is an empty map; more than one document is refused.
pub(crate) fn parse(file: &Arc<str>, text: &str) -> Result<Node> {
    let mut b = Builder {
        file: file.clone(),
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        path: Vec::new(),
    };
    let mut root = None;
    loop {
        let (ev, span) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                if root.is_some() {
                    return Err(b.err(
                        span.start.line(),
                        "more than one YAML document in one compose file is not supported",
                    ));
                }
                let (ev, span) = b.next()?;
                root = Some(b.node(ev, span, 0)?);
            }
            Event::StreamEnd => break,
            _ => return Err(b.err(span.start.line(), "unexpected YAML event")),
        }
    }
    Ok(root.unwrap_or(Node::Map(Vec::new(), 1)))
}

struct Builder<'a> {
    file: Arc<str>,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    /// Where the builder is, for duplicate-key messages.
    path: Vec<String>,
}

impl<'a> Builder<'a> {
    fn err(&self, line: usize, message: impl Into<String>) -> Error {
        Error::at(Loc::new(&self.file, line as u32), message)
    }

    fn next(&mut self) -> Result<(Event<'a>, Span)> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(self.scan_error(&e)),
            None => Ok((Event::StreamEnd, Span::default())),
        }
    }

    fn scan_error(&self, e: &ScanError) -> Error {
        self.err(e.marker().line(), format!("invalid YAML: {}", e.info()))
    }

    fn count(&mut self, n: usize, line: usize) -> Result<()> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(self.err(
                line,
                "too many nodes after expanding aliases (more than 1000000)",
            ));
        }
        Ok(())
    }

    fn node(&mut self, ev: Event<'a>, span: Span, depth: usize) -> Result<Node> {
        let line = span.start.line();
        if depth > MAX_DEPTH {
            return Err(self.err(line, format!("nested more than {MAX_DEPTH} levels deep")));
        }
        let (node, anchor) = match ev {
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id).cloned() else {
                    return Err(self.err(line, "alias to an unknown anchor"));
                };
                self.count(node.size(), line)?;
                return Ok(node);
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, line)?;
                let ty = match (&tag, style) {
                    (Some(t), _) if t.handle == "tag:yaml.org,2002:" || t.handle == "!!" => {
                        match t.suffix.as_str() {
                            "str" => Type::Str,
                            _ => resolve(&text),
                        }
                    }
                    (Some(t), _) => {
                        return Err(self.err(
                            line,
                            format!("unsupported YAML tag {}{}", t.handle, t.suffix),
                        ));
                    }
                    (None, ScalarStyle::Plain) => resolve(&text),
                    (None, _) => Type::Str,
                };
                (
                    Node::Scalar(
                        Scalar {
                            text: text.into_owned(),
                            ty,
                        },
                        line as u32,
                    ),
                    anchor,
                )
            }
            Event::SequenceStart(anchor, tag) => {
                self.no_tag(tag.as_deref(), line)?;
                self.count(1, line)?;
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if let Event::SequenceEnd = ev {
                        break;
                    }
                    self.path.push(format!("[{}]", items.len()));
                    let item = self.node(ev, span, depth + 1)?;
                    self.path.pop();
                    items.push(item);
                }
                (Node::Seq(items, line as u32), anchor)
            }
            Event::MappingStart(anchor, tag) => {
                self.no_tag(tag.as_deref(), line)?;
                self.count(1, line)?;
                (self.map(line, depth)?, anchor)
            }
            _ => return Err(self.err(line, "unexpected YAML event")),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn no_tag(&self, tag: Option<&saphyr_parser::Tag>, line: usize) -> Result<()> {
        match tag {
            Some(t) if !(t.handle == "!!" || t.handle == "tag:yaml.org,2002:") => Err(self.err(
                line,
                format!("unsupported YAML tag {}{}", t.handle, t.suffix),
            )),
            _ => Ok(()),
        }
    }

    fn map(&mut self, line: usize, depth: usize) -> Result<Node> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut lines: HashMap<String, usize> = HashMap::new();
        // Merge keys (`<<: *base`, https://yaml.org/type/merge.html): the map's own keys win,
        // then the merged maps in order, the first one that has a key winning.
        let mut merged: Vec<Entry> = Vec::new();
        loop {
            let (ev, span) = self.next()?;
            if let Event::MappingEnd = ev {
                break;
            }
            let key_line = span.start.line();
            let key = match ev {
                Event::Scalar(text, style, _, _) => {
                    if style == ScalarStyle::Plain && text == "<<" {
                        let (ev, span) = self.next()?;
                        let value = self.node(ev, span, depth + 1)?;
                        self.merge_source(value, &mut merged, key_line)?;
                        continue;
                    }
                    text.into_owned()
                }
                Event::Alias(id) => match self.anchors.get(&id) {
                    Some(Node::Scalar(s, _)) => s.text.clone(),
                    _ => return Err(self.err(key_line, "a mapping key must be a string")),
                },
                _ => return Err(self.err(key_line, "a mapping key must be a string")),
            };
            if let Some(prev) = lines.insert(key.clone(), key_line) {
                let msg = format!(
                    "{}duplicate key \"{key}\" (first at line {prev})",
                    self.path_prefix()
                );
                return Err(self.err(key_line, msg));
            }
            self.path.push(key.clone());
            let (ev, span) = self.next()?;
            let value = self.node(ev, span, depth + 1)?;
            self.path.pop();
            entries.push(Entry {
                key,
                line: key_line as u32,
                value,
            });
        }
        for m in merged {
            if !lines.contains_key(&m.key) {
                entries.push(m);
            }
        }
        Ok(Node::Map(entries, line as u32))
    }

    fn merge_source(&self, value: Node, merged: &mut Vec<Entry>, line: usize) -> Result<()> {
        let mut seen: std::collections::HashSet<String> =
            merged.iter().map(|m| m.key.clone()).collect();
        let sources = match value {
            Node::Map(..) => vec![value],
            Node::Seq(items, _) => items,
            _ => return Err(self.err(line, "a merge key (<<) takes a map or a list of maps")),
        };
        for source in sources {
            let Node::Map(entries, _) = source else {
                return Err(self.err(line, "a merge key (<<) takes a map or a list of maps"));
            };
            for e in entries {
                if seen.insert(e.key.clone()) {
                    merged.push(e);
                }
            }
        }
        Ok(())
    }

    fn path_prefix(&self) -> String {
        if self.path.is_empty() {
            return String::new();
        }
        format!("{}: ", join_path(&self.path))
    }
}

/// `services`, `web`, `[0]` -> `services.web[0]`.
fn join_path(parts: &[String]) -> String {
    let mut s = String::new();
    for p in parts {
        if !s.is_empty() && !p.starts_with('[') {
            s.push('.');
        }
        s.push_str(p);
    }
    s
}

/// The YAML 1.2 core schema for a plain scalar (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
pub(crate) fn resolve(s: &str) -> Type {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Type::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return Type::Bool,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Type::Float,
        _ => {}
    }
    if parse_int(s).is_some() {
        return Type::Int;
    }
    if is_float(s) {
        return Type::Float;
    }
    Type::Str
}

/// Decimal, `0o` octal and `0x` hex integers, with an optional sign.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, body) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(body, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
pub(crate) fn is_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Node> {
        parse(&Arc::from("compose.yaml"), text)
    }

    fn map(n: &Node) -> &[Entry] {
        match n {
            Node::Map(e, _) => e,
            _ => panic!("not a map: {n:?}"),
        }
    }

    #[test]
    fn lines_are_the_keys_lines() {
        let n = p("a: 1\nb:\n  c: x\n  d:\n    - 1\n    - two\n").unwrap();
        let e = map(&n);
        assert_eq!((e[0].key.as_str(), e[0].line), ("a", 1));
        assert_eq!((e[1].key.as_str(), e[1].line), ("b", 2));
        let inner = map(&e[1].value);
        assert_eq!((inner[1].key.as_str(), inner[1].line), ("d", 4));
        let Node::Seq(items, _) = &inner[1].value else {
            panic!()
        };
        assert_eq!(items[1].line(), 6);
    }

    #[test]
    fn plain_scalars_resolve_by_the_core_schema_and_quoted_ones_are_strings() {
        let n = p(
            "a: 1\nb: '1'\nc: true\nd: yes\ne:\nf: 1.5\ng: 0x1f\nh: \"null\"\ni: ~\nj: !!str 3\n",
        )
        .unwrap();
        let types: Vec<Type> = map(&n)
            .iter()
            .map(|e| match &e.value {
                Node::Scalar(s, _) => s.ty,
                _ => panic!(),
            })
            .collect();
        use Type::*;
        assert_eq!(
            types,
            [Int, Str, Bool, Str, Null, Float, Int, Str, Null, Str]
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = p("x-base: &base\n  image: busybox\n  tty: true\nservices:\n  web:\n    <<: *base\n    tty: false\n")
            .unwrap();
        let services = map(&map(&n)[1].value);
        let web = map(&services[0].value);
        let keys: Vec<(&str, String)> = web
            .iter()
            .map(|e| match &e.value {
                Node::Scalar(s, _) => (e.key.as_str(), s.text.clone()),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("tty", "false".to_string()),
                ("image", "busybox".to_string())
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_refused_with_both_lines() {
        let e = p("services:\n  web:\n    image: a\n    image: b\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "compose.yaml:4: services.web: duplicate key \"image\" (first at line 3)"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = p("services:\n  web:\n    image: [a\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("compose.yaml:"), "{e}");
        assert!(e.contains("invalid YAML"), "{e}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            s.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let e = p(&s).unwrap_err().to_string();
        assert!(e.contains("too many nodes"), "{e}");
    }

    #[test]
    fn a_second_document_is_refused_and_an_empty_file_is_an_empty_map() {
        let e = p("a: 1\n---\nb: 2\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "compose.yaml:2: more than one YAML document in one compose file is not supported"
        );
        assert!(map(&p("").unwrap()).is_empty());
    }

    #[test]
    fn unknown_tags_are_refused() {
        let e = p("services:\n  web: !reset {}\n").unwrap_err().to_string();
        assert_eq!(e, "compose.yaml:2: unsupported YAML tag !reset");
    }
}
