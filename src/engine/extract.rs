//! Extraction with JSONPath (RFC 9535, jsonpath-rust), exposed as template filters.

use minijinja::{Error, ErrorKind, Value};

/// Check that a JSONPath compiles; the error says in words what is wrong and where.
pub fn check(path: &str) -> Result<(), String> {
    jsonpath_rust::parser::parse_json_path(path).map(|_| ()).map_err(|e| explain(path, &e.to_string()))
}

/// What is wrong with a path the parser refused, in words: the usual mistakes first (no `$`,
/// an unclosed bracket or quote, a trailing dot), else the parser's expectation named.
fn explain(path: &str, parser: &str) -> String {
    if !path.starts_with('$') {
        return "a JSONPath starts with `$` (the document), e.g. `$.items[*].metadata.name`".into();
    }
    let mut open: Vec<(char, usize)> = Vec::new();
    let mut quote: Option<(char, usize)> = None;
    let mut escaped = false;
    for (i, c) in path.chars().enumerate() {
        let at = i + 1;
        if let Some((q, _)) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some((c, at)),
            '[' | '(' => open.push((c, at)),
            ']' | ')' => match open.pop() {
                Some((o, _)) if (o, c) == ('[', ']') || (o, c) == ('(', ')') => {}
                Some((o, oat)) => {
                    return format!("`{c}` at character {at} does not close the `{o}` at character {oat}");
                }
                None => return format!("`{c}` at character {at} closes nothing"),
            },
            _ => {}
        }
    }
    if let Some((q, at)) = quote {
        return format!("the string opened by {q} at character {at} is never closed");
    }
    if let Some((o, at)) = open.pop() {
        return format!("`{o}` at character {at} is never closed");
    }
    if path.ends_with('.') {
        return "ends with `.`: a member name or `*` must follow".into();
    }
    let col = parser
        .lines()
        .find_map(|l| l.split_once("--> ").map(|(_, p)| p))
        .and_then(|p| p.split(':').nth(1))
        .map(str::trim);
    let expected = parser.lines().find_map(|l| l.trim().strip_prefix("= expected "));
    let wanted = expected.map(|rules| {
        let mut words: Vec<&str> = Vec::new();
        for rule in rules.split([',', ' ']).filter(|r| !r.is_empty() && *r != "or") {
            let w = rule_in_words(rule);
            if !w.is_empty() && !words.contains(&w) {
                words.push(w);
            }
        }
        words.join(" or ")
    });
    match (wanted, col) {
        (Some(w), Some(c)) if !w.is_empty() => format!("at character {c}: expected {w}"),
        (_, Some(c)) => format!("not valid at character {c}"),
        _ => "not a valid JSONPath (RFC 9535)".into(),
    }
}

/// A grammar rule of the RFC 9535 parser, as a reader would say it.
fn rule_in_words(rule: &str) -> &'static str {
    match rule {
        "atom_expr" | "logical_expr" | "logical_expr_and" | "paren_expr" | "comp_expr" | "test_expr" => {
            "a filter condition (e.g. `@.status == 'True'` or `@.ready`)"
        }
        "selector" | "name_selector" | "wildcard_selector" | "index_selector" | "slice_selector"
        | "filter_selector" => "a selector: a quoted name, `*`, an index, a slice or `?` with a filter",
        "member_name_shorthand" | "ALPHA" => "a member name",
        "comp_op" => "a comparison (==, !=, <, <=, >, >=)",
        "comparable" | "literal" | "singular_query" => "a value to compare: a literal or a path like `@.x`",
        "name_segment" | "index_segment" => "`.name` or `[index]`",
        "segment" | "segments" | "child_segment" | "descendant_segment" | "bracketed_selection" => {
            "`.name`, `[...]` or `..`"
        }
        "EOI" => "the end of the path",
        "int" | "number" => "a number",
        "string" => "a quoted string",
        _ => "",
    }
}

/// All matches of a JSONPath in a JSON value.
pub fn query(path: &str, value: &serde_json::Value) -> Result<Vec<serde_json::Value>, String> {
    jsonpath_rust::query::js_path_vals(path, value).map(|v| v.into_iter().cloned().collect()).map_err(|e| e.to_string())
}

fn to_json(v: &Value) -> Result<serde_json::Value, Error> {
    super::template::to_json(v)
}

fn err(path: &str, e: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("JSONPath `{path}`: {e}"))
}

/// `value | jsonpath('$.items[*].metadata.name')`: the list of matches.
pub fn jsonpath_filter(value: Value, path: &str) -> Result<Value, Error> {
    let json = to_json(&value)?;
    let found = query(path, &json).map_err(|e| err(path, e))?;
    Ok(crate::engine::template::to_value(&found))
}

/// `value | jsonpath_one('$.status.phase')`: the first match, or none.
pub fn jsonpath_one_filter(value: Value, path: &str) -> Result<Value, Error> {
    let json = to_json(&value)?;
    let found = query(path, &json).map_err(|e| err(path, e))?;
    Ok(found.into_iter().next().map(|v| crate::engine::template::to_value(&v)).unwrap_or(Value::from(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_select_matches() {
        let v = crate::engine::template::to_value(&serde_json::json!({"items": [{"n": 1}, {"n": 2}]}));
        assert_eq!(jsonpath_filter(v.clone(), "$.items[?@.n > 1].n").unwrap().to_string(), "[2]");
        assert_eq!(jsonpath_one_filter(v, "$.items[0].n").unwrap().to_string(), "1");
    }

    #[test]
    fn invalid_paths_are_reported_in_words() {
        assert_eq!(check("$.items[").unwrap_err(), "`[` at character 8 is never closed");
        assert_eq!(
            check("items[*]").unwrap_err(),
            "a JSONPath starts with `$` (the document), e.g. `$.items[*].metadata.name`"
        );
        assert_eq!(
            check("$.items[?(@.a == 'x)]").unwrap_err(),
            "the string opened by ' at character 18 is never closed"
        );
        assert_eq!(
            check("$.items[?]").unwrap_err(),
            "at character 10: expected a filter condition (e.g. `@.status == 'True'` or `@.ready`)"
        );
        assert_eq!(check("$.a.").unwrap_err(), "ends with `.`: a member name or `*` must follow");
        assert_eq!(
            check("$.items[?(@.a ==)]").unwrap_err(),
            "at character 17: expected a value to compare: a literal or a path like `@.x`"
        );
        assert!(check("$.items[*]").is_ok());
    }
}
