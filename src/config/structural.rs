//! Structural errors (the file's shape against [`super::raw`]) in the file's own words.
//!
//! serde reports a type error in Rust's words (`invalid type: string "two", expected usize`,
//! `data did not match any variant of untagged enum RawReturn`) and without the key. The file
//! is read a second time as a plain tree of spanned TOML values; the error's span finds the
//! key in that tree, and serde's "unexpected" and "expected" are said as TOML types.

use std::ops::Range;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::error::Collector;
use super::raw::RawConfig;

/// Deserializes the file's shape. serde stops at the first error, so to report every
/// structural error at once we blank the top-level section holding each error (keeping line
/// numbers) and try again, a bounded number of times.
pub(super) fn structural(source: &str, errs: &mut Collector<'_>) -> Option<RawConfig> {
    let mut text = source.to_string();
    let mut failed = false;
    for _ in 0..32 {
        match toml::from_str::<RawConfig>(&text) {
            Ok(raw) => return (!failed).then_some(raw),
            Err(e) => {
                failed = true;
                let (key, message) = in_toml_words(&text, e.span(), e.message().trim());
                errs.push(e.span(), &key, message);
                let region = e.span().and_then(|sp| section_around(&text, sp.start))?;
                let blanked: String = text[region.clone()]
                    .chars()
                    .map(|c| if c == '\n' { '\n' } else { ' ' })
                    .collect();
                if blanked == text[region.clone()] {
                    return None;
                }
                text.replace_range(region, &blanked);
            }
        }
    }
    None
}

/// The byte range of the top-level section (`[runtime]`, one `[[listener]]` with its
/// sub-tables, ...) that contains `offset`.
fn section_around(text: &str, offset: usize) -> Option<Range<usize>> {
    let mut starts = vec![0];
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let top_level = t.starts_with('[') && {
            let name = t.trim_start_matches('[').trim_start();
            !name.starts_with("listener.")
                && !name.starts_with("upstream.")
                && !name.starts_with("runtime.")
        };
        if top_level && pos > 0 {
            starts.push(pos);
        }
        pos += line.len();
    }
    let start = *starts.iter().rev().find(|&&s| s <= offset)?;
    let end = starts
        .iter()
        .copied()
        .find(|&s| s > offset)
        .unwrap_or(text.len());
    Some(start..end)
}

/// One TOML value as written, with the spans of everything inside it.
#[derive(Debug)]
enum Node {
    Table(Vec<(String, Spanned<Node>)>),
    Array(Vec<Spanned<Node>>),
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

/// toml's private name for a date-time handed to serde as a one-key table.
const DATETIME_KEY: &str = "$__toml_private_datetime";

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Boolean(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Integer(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Integer(i64::try_from(v).unwrap_or(i64::MAX)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == DATETIME_KEY {
                map.next_value::<serde::de::IgnoredAny>()?;
                return Ok(Node::Datetime);
            }
            entries.push((key, map.next_value::<Spanned<Node>>()?));
        }
        Ok(Node::Table(entries))
    }
}

impl Node {
    /// The value as the file's reader would name it.
    fn found(&self) -> String {
        match self {
            Node::Table(_) => "a table".into(),
            Node::Array(_) => "an array".into(),
            Node::String(s) => format!("the string {s:?}"),
            Node::Integer(i) => format!("the integer {i}"),
            Node::Float(x) => format!("the float {x}"),
            Node::Boolean(b) => format!("the boolean {b}"),
            Node::Datetime => "a date-time".into(),
        }
    }
}

/// A key as written in a dotted path: bare when it can be, quoted otherwise.
fn key_part(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// One value of the file: its dotted key, its span, and what it is in TOML's words.
struct Entry {
    path: String,
    span: Range<usize>,
    found: String,
}

/// Every value in the tree with its dotted key (`listener[0].http.keepalive_requests`).
fn walk(node: &Node, path: &str, out: &mut Vec<Entry>) {
    let add = |p: String, v: &Spanned<Node>, out: &mut Vec<Entry>| {
        out.push(Entry {
            path: p.clone(),
            span: v.span(),
            found: v.get_ref().found(),
        });
        walk(v.get_ref(), &p, out);
    };
    match node {
        Node::Table(entries) => {
            for (k, v) in entries {
                let p = if path.is_empty() {
                    key_part(k)
                } else {
                    format!("{path}.{}", key_part(k))
                };
                add(p, v, out);
            }
        }
        Node::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                add(format!("{path}[{i}]"), v, out);
            }
        }
        _ => {}
    }
}

/// The file's values, or None when it is not TOML at all (a syntax error).
fn entries(text: &str) -> Option<Vec<Entry>> {
    let root: Node = toml::from_str(text).ok()?;
    let mut all = Vec::new();
    walk(&root, "", &mut all);
    Some(all)
}

/// The innermost value whose span holds `at`.
fn value_at<'e>(all: &'e [Entry], at: &Range<usize>) -> Option<&'e Entry> {
    all.iter()
        .filter(|e| e.span.start <= at.start && at.start < e.span.end.max(e.span.start + 1))
        .min_by_key(|e| (e.span.end - e.span.start, usize::MAX - e.path.len()))
}

/// The first value at or after `at` whose key ends in `name`: the value of the key at `at`.
fn value_of_key_at<'e>(all: &'e [Entry], at: &Range<usize>, name: &str) -> Option<&'e Entry> {
    let last = key_part(name);
    all.iter()
        .filter(|e| e.span.start >= at.start && e.path.rsplit('.').next() == Some(last.as_str()))
        .min_by_key(|e| e.span.start)
}

/// The name between the first pair of backticks of `s`, and what follows it.
fn backticked(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix('`')?;
    let (name, after) = rest.split_once('`')?;
    Some((name, after.trim_start_matches(',').trim_start()))
}

/// toml's message and span said as (key, message) in TOML's words; messages this does not
/// recognise (syntax errors) are kept as toml wrote them.
pub(super) fn in_toml_words(
    text: &str,
    span: Option<Range<usize>>,
    message: &str,
) -> (String, String) {
    let kept = (String::new(), message.to_string());
    let (Some(span), Some(all)) = (span, entries(text)) else {
        return kept;
    };
    if let Some((name, expected)) = message.strip_prefix("unknown field ").and_then(backticked) {
        return match value_of_key_at(&all, &span, name) {
            Some(e) => (e.path.clone(), format!("unknown key, {expected}")),
            None => kept,
        };
    }
    let Some(at) = value_at(&all, &span) else {
        return kept;
    };
    if let Some((name, _)) = message.strip_prefix("missing field ").and_then(backticked) {
        return (
            format!("{}.{}", at.path, key_part(name)),
            "required, but missing".into(),
        );
    }
    match type_words(message) {
        Some(expected) => (
            at.path.clone(),
            format!("expected {expected}, found {}", at.found),
        ),
        None => kept,
    }
}

/// What serde's type or value error expected, in TOML's words.
fn type_words(message: &str) -> Option<String> {
    if let Some(name) = message.strip_prefix("data did not match any variant of untagged enum ") {
        return Some(untagged_expected(name.trim()).to_string());
    }
    let (rest, is_value) = message
        .strip_prefix("invalid type: ")
        .map(|rest| (rest, false))
        .or_else(|| message.strip_prefix("invalid value: ").map(|r| (r, true)))?;
    let (_, expected) = rest.rsplit_once(", expected ")?;
    Some(expected_words(expected, is_value))
}

/// What an untagged enum of [`super::raw`] accepts, in the file's words.
fn untagged_expected(name: &str) -> &'static str {
    match name {
        "RawReturn" => {
            "a status code such as 204, or a table such as { status = 301, body = \"https://$host$request_uri\" }"
        }
        "RawAccessLog" => "\"off\" or a table such as { path = \"/var/log/access.log\", format = \"main\" }",
        "RawMatcher" => "a string, { prefix = \"...\" } or { regex = \"...\" }",
        "Quantity" => "an integer or a string with a unit, such as \"30s\" or \"1m\"",
        _ => "another kind of value",
    }
}

/// serde's "expected" (a Rust type or serde's data model) as a TOML type. A range is named
/// only for an out-of-range value (`is_value`), not for a value of the wrong type.
fn expected_words(expected: &str, is_value: bool) -> String {
    let range = |lo: &str, hi: &str| {
        if is_value {
            format!("an integer from {lo} to {hi}")
        } else {
            "an integer".to_string()
        }
    };
    match expected {
        "u8" => range("0", "255"),
        "u16" => range("0", "65535"),
        "u32" => range("0", "4294967295"),
        "u64" | "usize" => range("0", "18446744073709551615"),
        "i64" | "isize" => range("-9223372036854775808", "9223372036854775807"),
        "i32" => range("-2147483648", "2147483647"),
        "f64" | "f32" => "a float".into(),
        "a string" | "a borrowed string" | "a character" => "a string".into(),
        "a boolean" => "a boolean".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse_str;

    const LOC: &str = "[[listener.location]]\npath = \"/\"\nreturn = 204\n";

    fn first_error(text: &str) -> String {
        let err = parse_str(text, Path::new("t.toml")).unwrap_err();
        err.0[0].to_string()
    }

    #[test]
    fn a_string_for_an_integer_names_the_key_and_the_toml_types() {
        let text = format!(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\n[listener.http]\nkeepalive_requests = \"two\"\n{LOC}"
        );
        assert_eq!(
            first_error(&text),
            "t.toml:4: listener[0].http.keepalive_requests: expected an integer, found the string \"two\""
        );
    }

    #[test]
    fn a_return_of_the_wrong_shape_names_what_is_accepted() {
        let text = "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.location]]\npath = \"/\"\nreturn = \"teapot\"\n";
        assert_eq!(
            first_error(text),
            "t.toml:5: listener[0].location[0].return: expected a status code such as 204, or a table such as { status = 301, body = \"https://$host$request_uri\" }, found the string \"teapot\""
        );
    }

    #[test]
    fn a_table_where_an_array_of_tables_is_expected_says_so() {
        let text = "[[listener]]\nlisten = \"127.0.0.1:0\"\n[listener.location]\npath = \"/\"\nreturn = 204\n";
        assert_eq!(
            first_error(text),
            "t.toml:3: listener[0].location: expected an array, found a table"
        );
    }

    #[test]
    fn an_out_of_range_integer_names_the_range() {
        let text = format!("[[listener]]\nlisten = \"127.0.0.1:0\"\nhttps_redirect = 70000\n{LOC}");
        assert_eq!(
            first_error(&text),
            "t.toml:3: listener[0].https_redirect: expected an integer from 0 to 65535, found the integer 70000"
        );
    }

    #[test]
    fn unknown_and_missing_keys_are_named_in_full() {
        let text = format!(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\n[listener.http]\nkeepalive = 1\n{LOC}"
        );
        assert!(
            first_error(&text).starts_with("t.toml:4: listener[0].http.keepalive: unknown key, expected one of `max_header_bytes`, "),
            "{}",
            first_error(&text)
        );
        let text = "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.location]]\nreturn = 204\n";
        assert_eq!(
            first_error(text),
            "t.toml:3: listener[0].location[0].path: required, but missing"
        );
        let text = "[[listener]]\nlisten = \"x\"\ntls = { certificates = [{ cert = \"a\" }] }\n";
        assert_eq!(
            first_error(text),
            "t.toml:3: listener[0].tls.certificates[0].key: required, but missing"
        );
    }

    #[test]
    fn a_boolean_for_a_string_and_a_duration_of_the_wrong_type() {
        let text = format!(
            "[runtime]\nerror_log = true\nshutdown_timeout = [1]\n[[listener]]\nlisten = \"127.0.0.1:0\"\n{LOC}"
        );
        assert_eq!(
            first_error(&text),
            "t.toml:2: runtime.error_log: expected a string, found the boolean true"
        );
        let text = format!(
            "[runtime]\nshutdown_timeout = [1]\n[[listener]]\nlisten = \"127.0.0.1:0\"\n{LOC}"
        );
        assert_eq!(
            first_error(&text),
            "t.toml:2: runtime.shutdown_timeout: expected an integer or a string with a unit, such as \"30s\" or \"1m\", found an array"
        );
    }
}
