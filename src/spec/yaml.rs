//! YAML to JSON with source locations.
//!
//! Specs are parsed with saphyr's event parser into `serde_json::Value` documents while we
//! record where every node starts, keyed by JSON pointer. Schema errors (which speak JSON
//! pointers) can then be reported at file:line:column.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn from_span(span: &Span) -> Self {
        Pos { line: span.start.line(), col: span.start.col() + 1 }
    }
}

/// Where a node sits: its own position and, for mapping values, the position of its key.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodePos {
    pub key: Option<Pos>,
    pub value: Pos,
}

/// One YAML document of a file, converted to JSON.
#[derive(Debug, Clone)]
pub struct YamlDoc {
    pub value: Value,
    /// Index of the document in its file (0-based).
    pub index: usize,
    positions: HashMap<String, NodePos>,
}

impl YamlDoc {
    /// The best position for a JSON pointer: the key of a mapping entry if it has one, else
    /// the node; for a pointer that does not exist, the nearest existing ancestor.
    pub fn locate(&self, pointer: &str) -> Pos {
        let mut p = pointer.to_string();
        loop {
            if let Some(np) = self.positions.get(&p) {
                return np.key.unwrap_or(np.value);
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => return self.positions.get("").map(|n| n.value).unwrap_or_default(),
            }
        }
    }

    /// Position of the value (not the key) at a pointer, falling back like [`Self::locate`].
    pub fn locate_value(&self, pointer: &str) -> Pos {
        match self.positions.get(pointer) {
            Some(np) => np.value,
            None => self.locate(pointer),
        }
    }
}

/// A YAML syntax error with its location.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Escape one JSON pointer segment (RFC 6901).
pub fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

enum Frame {
    Seq { items: Vec<Value>, pointer: String, anchor: usize },
    Map { map: Map<String, Value>, pointer: String, pending_key: Option<(String, Pos)>, anchor: usize },
}

/// Parse every document of a YAML stream. Stops at the first syntax error (the parser
/// cannot resynchronise), returning the documents read so far is not useful, so only the
/// error is returned.
pub fn parse_documents(source: &str) -> Result<Vec<YamlDoc>, SyntaxError> {
    parse(source, true)
}

/// Parse every document to plain JSON values, without recording positions (for data files
/// such as cluster snapshots, where speed matters more than locations).
pub fn parse_values(source: &str) -> Result<Vec<Value>, SyntaxError> {
    Ok(parse(source, false)?.into_iter().map(|d| d.value).collect())
}

fn parse(source: &str, record: bool) -> Result<Vec<YamlDoc>, SyntaxError> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Value> = HashMap::new();
    let mut positions: HashMap<String, NodePos> = HashMap::new();
    let mut root: Option<Value> = None;

    for event in Parser::new_from_str(source) {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos { line: e.marker().line(), col: e.marker().col() + 1 },
            message: e.info().to_string(),
        })?;
        let pos = Pos::from_span(&span);
        // A value (scalar, alias or finished collection) to attach to its parent.
        let finished: Option<(Value, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                root = None;
                positions = HashMap::new();
                None
            }
            Event::DocumentEnd => {
                docs.push(YamlDoc {
                    value: root.take().unwrap_or(Value::Null),
                    index: docs.len(),
                    positions: std::mem::take(&mut positions),
                });
                None
            }
            Event::Alias(id) => Some((anchors.get(&id).cloned().unwrap_or(Value::Null), 0)),
            Event::Scalar(text, style, anchor, tag) => {
                let value = match &tag {
                    Some(t) if t.suffix == "str" => Value::String(text.to_string()),
                    _ if style != ScalarStyle::Plain => Value::String(text.to_string()),
                    _ => resolve_plain_scalar(&text),
                };
                // A scalar in key position becomes the pending key of its mapping.
                if let Some(Frame::Map { pending_key, .. }) = stack.last_mut()
                    && pending_key.is_none()
                {
                    let key = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    *pending_key = Some((key, pos));
                    continue;
                }
                Some((value, anchor))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let (pointer, key_pos) = if record { child_pointer(&stack) } else { (String::new(), None) };
                if record {
                    positions.insert(pointer.clone(), NodePos { key: key_pos, value: pos });
                }
                if matches!(event, Event::SequenceStart(..)) {
                    stack.push(Frame::Seq { items: Vec::new(), pointer, anchor });
                } else {
                    stack.push(Frame::Map { map: Map::new(), pointer, pending_key: None, anchor });
                }
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { items, anchor, .. }) => Some((Value::Array(items), anchor)),
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { map, anchor, .. }) => Some((Value::Object(map), anchor)),
                _ => None,
            },
        };
        let Some((value, anchor)) = finished else { continue };
        if anchor != 0 {
            anchors.insert(anchor, value.clone());
        }
        // Record scalar positions (collections were recorded at their start).
        let is_collection_end = matches!(value, Value::Array(_) | Value::Object(_));
        if record && !is_collection_end {
            let (pointer, key_pos) = child_pointer(&stack);
            positions.insert(pointer, NodePos { key: key_pos, value: pos });
        }
        match stack.last_mut() {
            None => root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, pending_key, .. }) => {
                if let Some((key, _)) = pending_key.take() {
                    map.insert(key, value);
                } else {
                    // A collection used as a mapping key: not meaningful in specs.
                    *pending_key = Some((value.to_string(), pos));
                }
            }
        }
    }
    Ok(docs)
}

/// The JSON pointer of the next child of the innermost open collection, and its key position.
fn child_pointer(stack: &[Frame]) -> (String, Option<Pos>) {
    match stack.last() {
        None => (String::new(), None),
        Some(Frame::Seq { items, pointer, .. }) => (format!("{pointer}/{}", items.len()), None),
        Some(Frame::Map { pointer, pending_key, .. }) => match pending_key {
            Some((k, kpos)) => (format!("{pointer}/{}", pointer_segment(k)), Some(*kpos)),
            None => (pointer.clone(), None),
        },
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain_scalar(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(s) {
        return Value::Number(n.into());
    }
    let looks_float = s.chars().next().is_some_and(|c| c.is_ascii_digit() || "+-.".contains(c))
        && s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
        && s.chars().any(|c| c.is_ascii_digit());
    if looks_float
        && let Ok(f) = s.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(s.to_string())
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let v = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_positions_of_keys_and_values() {
        let src = "a: 1\nb:\n  c: [x, 2]\n---\nkind: Tool\n";
        let docs = parse_documents(src).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value, serde_json::json!({"a": 1, "b": {"c": ["x", 2]}}));
        assert_eq!(docs[0].locate("/b/c"), Pos { line: 3, col: 3 });
        assert_eq!(docs[0].locate("/b/c/1"), Pos { line: 3, col: 10 });
        assert_eq!(docs[0].locate("/b/missing"), Pos { line: 2, col: 1 });
        assert_eq!(docs[1].value, serde_json::json!({"kind": "Tool"}));
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        let docs = parse_documents("[1, -2, 1.5, true, null, '3', x1, 0x10, 1e3]").unwrap();
        assert_eq!(docs[0].value, serde_json::json!([1, -2, 1.5, true, null, "3", "x1", 16, 1000.0]));
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
    }

    #[test]
    fn anchors_and_aliases_are_resolved() {
        let docs = parse_documents("a: &x {k: 1}\nb: *x\n").unwrap();
        assert_eq!(docs[0].value["b"], serde_json::json!({"k": 1}));
    }
}
