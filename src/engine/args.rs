//! Argument checking before anything runs: integers are made exact, values are checked
//! against the input schema, defaults are filled, and every echo of a caller's value in an
//! error is clipped.

use serde_json::{Map, Value};

use super::registry::Procedure;
use crate::clip::{ECHO_MAX, MESSAGE_MAX, clip, clip_json};
use crate::spec::model::{InputSpec, InputType};

/// Largest integer a JSON number (an f64) carries exactly: 2^53.
const EXACT_F64_INT: f64 = 9_007_199_254_740_992.0;

/// Check arguments against the input schema; fill defaults; absent optional inputs are null.
/// An integer input given as an integral float (`1.0`) becomes that integer, so a template
/// renders `1` and the backend receives it; a fractional or inexact number is refused.
pub fn prepare(proc: &Procedure, args: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut args = args.clone();
    let mut problems = Vec::new();
    for (name, input) in &proc.inputs {
        if let Some(v) = args.get_mut(name) {
            make_integers_exact(v, input, name, &mut problems);
        }
    }
    let instance = Value::Object(args);
    problems.extend(proc.input_validator.iter_errors(&instance).map(|e| {
        let path = e.instance_path().as_str().trim_start_matches('/').replace('/', ".");
        if let jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } = e.kind() {
            let unexpected: Vec<String> = unexpected.iter().map(|u| clip(u, ECHO_MAX)).collect();
            let known: Vec<&str> = proc.inputs.keys().map(String::as_str).collect();
            format!("unknown argument {} (accepted: {})", unexpected.join(", "), known.join(", "))
        } else {
            let message = e.masked_with(clip_json(e.instance())).to_string();
            if path.is_empty() { message } else { format!("argument `{}`: {message}", clip(&path, ECHO_MAX)) }
        }
    }));
    if !problems.is_empty() {
        return Err(clip(&problems.join("; "), MESSAGE_MAX));
    }
    let Value::Object(args) = instance else { unreachable!("built as an object") };
    let mut out = Map::new();
    for (name, input) in &proc.inputs {
        let v = args.get(name).cloned().or_else(|| input.default.clone()).unwrap_or(Value::Null);
        out.insert(name.clone(), v);
    }
    Ok(out)
}

/// Turn integral floats into integers wherever the schema says `integer` (arrays and
/// objects included); an integral float too large to be exact is a problem. Other values
/// are left for the schema check to judge.
fn make_integers_exact(v: &mut Value, input: &InputSpec, path: &str, problems: &mut Vec<String>) {
    match (&input.ty, v) {
        (InputType::Integer, v @ Value::Number(_)) if !v.is_i64() && !v.is_u64() => {
            let f = v.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 {
                return; // the schema check says "not of type integer"
            }
            if f.abs() <= EXACT_F64_INT {
                *v = Value::from(f as i64);
            } else {
                problems.push(format!(
                    "argument `{}`: {} is too large to be an exact integer",
                    clip(path, ECHO_MAX),
                    clip_json(v)
                ));
            }
        }
        (InputType::Array, Value::Array(items)) => {
            if let Some(item) = &input.items {
                for (i, v) in items.iter_mut().enumerate() {
                    make_integers_exact(v, item, &format!("{path}.{i}"), problems);
                }
            }
        }
        (InputType::Object, Value::Object(m)) => {
            if let Some(props) = &input.properties {
                for (k, p) in props {
                    if let Some(v) = m.get_mut(k) {
                        make_integers_exact(v, p, &format!("{path}.{k}"), problems);
                    }
                }
            }
        }
        _ => {}
    }
}
