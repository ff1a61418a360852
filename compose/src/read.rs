//! Reading typed values out of the YAML tree, with the one-line errors compose files get:
//! `compose.yaml:12: services.web: unknown key "imagee"`,
//! `compose.yaml:7: services.web.ports[0]: expected a string or a number`.
//! A value's error points at its key's line (or, in a list, at the item's line).
//! Knows the scalar types, not the compose keys.

use std::sync::Arc;

use crate::error::{Error, Loc, Result};
use crate::model::Value;
use crate::yaml::{Entry, Node, Type};

/// The file being read, for errors.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'a> {
    pub file: &'a Arc<str>,
}

/// `a` + `b` -> `a.b`.
pub(crate) fn key(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// `a` + 3 -> `a[3]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

impl<'a> Cx<'a> {
    pub fn loc(&self, line: u32) -> Loc {
        Loc::new(self.file, line)
    }

    pub fn err(&self, line: u32, path: &str, msg: impl std::fmt::Display) -> Error {
        Error::at(self.loc(line), format!("{path}: {msg}"))
    }

    pub fn unknown(&self, e: &Entry, path: &str) -> Error {
        self.err(e.line, path, format_args!("unknown key {:?}", e.key))
    }

    fn expected(&self, line: u32, path: &str, what: &str) -> Error {
        self.err(line, path, format_args!("expected {what}"))
    }

    /// A map (null reads as an empty one).
    pub fn map<'n>(&self, n: &'n Node, line: u32, path: &str) -> Result<&'n [Entry]> {
        match n {
            Node::Map(e, _) => Ok(e),
            n if n.is_null() => Ok(&[]),
            _ => Err(self.expected(line, path, "a map")),
        }
    }

    pub fn seq<'n>(&self, n: &'n Node, line: u32, path: &str) -> Result<&'n [Node]> {
        match n {
            Node::Seq(items, _) => Ok(items),
            _ => Err(self.expected(line, path, "a list")),
        }
    }

    /// A string. Numbers and booleans are refused, as compose's schema refuses them
    /// (`user: 1000` must be `user: "1000"`).
    pub fn str(&self, n: &Node, line: u32, path: &str) -> Result<String> {
        match n {
            Node::Scalar(s, _) if s.ty == Type::Str => Ok(s.text.clone()),
            _ => Err(self.expected(line, path, "a string")),
        }
    }

    /// A string or a number, as text.
    pub fn str_or_number(&self, n: &Node, line: u32, path: &str) -> Result<String> {
        match n {
            Node::Scalar(s, _) if matches!(s.ty, Type::Str | Type::Int | Type::Float) => {
                Ok(s.text.clone())
            }
            _ => Err(self.expected(line, path, "a string or a number")),
        }
    }

    /// The value of a map of strings (environment, labels, args): a string, a number or a
    /// boolean as text; null as `None`.
    pub fn value_text(&self, n: &Node, line: u32, path: &str) -> Result<Option<String>> {
        match n {
            Node::Scalar(s, _) if s.ty == Type::Null => Ok(None),
            Node::Scalar(s, _) => Ok(Some(s.text.clone())),
            _ => Err(self.expected(line, path, "a string, a number, a boolean or null")),
        }
    }

    /// A boolean; the strings compose accepts for one (`"true"`, `"yes"`, `"on"`, ...) too,
    /// since interpolated values are strings.
    pub fn bool(&self, n: &Node, line: u32, path: &str) -> Result<bool> {
        if let Node::Scalar(s, _) = n {
            if matches!(s.ty, Type::Bool | Type::Str) {
                match s.text.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "y" | "on" => return Ok(true),
                    "false" | "no" | "n" | "off" => return Ok(false),
                    _ => {}
                }
            }
        }
        Err(self.expected(line, path, "a boolean"))
    }

    pub fn int(&self, n: &Node, line: u32, path: &str) -> Result<i64> {
        if let Node::Scalar(s, _) = n {
            if matches!(s.ty, Type::Int | Type::Str) {
                if let Some(v) = crate::yaml::parse_int(s.text.trim()) {
                    return Ok(v);
                }
            }
        }
        Err(self.expected(line, path, "an integer"))
    }

    pub fn uint(&self, n: &Node, line: u32, path: &str) -> Result<u64> {
        match self.int(n, line, path) {
            Ok(v) if v >= 0 => Ok(v as u64),
            _ => Err(self.expected(line, path, "a positive integer")),
        }
    }

    pub fn float(&self, n: &Node, line: u32, path: &str) -> Result<f64> {
        if let Node::Scalar(s, _) = n {
            if matches!(s.ty, Type::Int | Type::Float | Type::Str) {
                if let Ok(v) = s.text.trim().parse::<f64>() {
                    if v.is_finite() {
                        return Ok(v);
                    }
                }
            }
        }
        Err(self.expected(line, path, "a number"))
    }

    /// A string, or a list of strings (`dns`, `env_file`, `tmpfs`).
    pub fn str_or_list(&self, n: &Node, line: u32, path: &str) -> Result<Vec<String>> {
        match n {
            Node::Scalar(s, _) if s.ty == Type::Str => Ok(vec![s.text.clone()]),
            Node::Seq(items, _) => items
                .iter()
                .enumerate()
                .map(|(i, it)| self.str(it, it.line(), &index(path, i)))
                .collect(),
            _ => Err(self.expected(line, path, "a string or a list of strings")),
        }
    }

    /// A list of strings.
    pub fn list(&self, n: &Node, line: u32, path: &str) -> Result<Vec<String>> {
        self.seq(n, line, path)?
            .iter()
            .enumerate()
            .map(|(i, it)| self.str(it, it.line(), &index(path, i)))
            .collect()
    }

    /// A map of strings given as a map (`KEY: value`) or as a list of `KEY=value` (`KEY`
    /// alone: no value). Later entries win. Used by environment, labels and build args.
    pub fn dict(
        &self,
        n: &Node,
        line: u32,
        path: &str,
    ) -> Result<Vec<(String, Option<String>, u32)>> {
        let mut out: Vec<(String, Option<String>, u32)> = Vec::new();
        match n {
            Node::Map(entries, _) => {
                for e in entries {
                    let v = self.value_text(&e.value, e.line, &key(path, &e.key))?;
                    out.push((e.key.clone(), v, e.line));
                }
            }
            Node::Seq(items, _) => {
                for (i, it) in items.iter().enumerate() {
                    let s = self.str_or_number(it, it.line(), &index(path, i))?;
                    let (k, v) = match s.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (s, None),
                    };
                    if k.is_empty() {
                        return Err(self.err(
                            it.line(),
                            &index(path, i),
                            "a variable name is empty",
                        ));
                    }
                    out.retain(|(old, _, _)| *old != k);
                    out.push((k, v, it.line()));
                }
            }
            n if n.is_null() => {}
            _ => return Err(self.expected(line, path, "a map or a list of KEY=VALUE strings")),
        }
        Ok(out)
    }

    /// Any value, for `x-` keys.
    pub fn value(&self, n: &Node) -> Value {
        match n {
            Node::Scalar(s, _) => match s.ty {
                Type::Null => Value::Null,
                Type::Bool => Value::Bool(s.text.eq_ignore_ascii_case("true")),
                Type::Int => {
                    crate::yaml::parse_int(&s.text).map_or(Value::Str(s.text.clone()), Value::Int)
                }
                Type::Float => Value::Float(parse_yaml_float(&s.text)),
                Type::Str => Value::Str(s.text.clone()),
            },
            Node::Seq(items, _) => Value::Seq(items.iter().map(|i| self.value(i)).collect()),
            Node::Map(entries, _) => Value::Map(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), self.value(&e.value)))
                    .collect(),
            ),
        }
    }
}

fn parse_yaml_float(s: &str) -> f64 {
    match s.trim_start_matches('+').to_ascii_lowercase().as_str() {
        ".inf" => f64::INFINITY,
        "-.inf" => f64::NEG_INFINITY,
        ".nan" => f64::NAN,
        t => t.parse().unwrap_or(f64::NAN),
    }
}
