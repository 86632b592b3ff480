//! Extraction with JSONPath (RFC 9535, jsonpath-rust), exposed as template filters.

use minijinja::{Error, ErrorKind, Value};

/// Check that a JSONPath compiles; the error text explains what is wrong.
pub fn check(path: &str) -> Result<(), String> {
    jsonpath_rust::parser::parse_json_path(path).map(|_| ()).map_err(|e| one_line(&e.to_string()))
}

/// Condense a multi-line parser error ("--> 1:14 ... = expected atom_expr") to one line.
fn one_line(msg: &str) -> String {
    let at = msg.lines().find_map(|l| l.trim().strip_prefix("--> ")).and_then(|p| p.split(':').nth(1));
    let what = msg.lines().find_map(|l| l.trim().strip_prefix("= ")).unwrap_or(msg.lines().next().unwrap_or(msg));
    match at {
        Some(col) => format!("{what} at character {col}"),
        None => what.to_string(),
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
    fn invalid_paths_are_reported() {
        assert!(check("$.items[").is_err());
        assert!(check("$.items[*]").is_ok());
    }
}
