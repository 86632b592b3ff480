//! The executor's entry points: build the inert arguments, then check a whole rendered
//! request field by field, each in the text context the static lint assigns it
//! ([`crate::engine::lint::request_field_context`]).
//!
//! Which argument values are replaced by [`SENTINEL`] in the inert rendering:
//! - every non-empty string, in arguments and in step results (untrusted text), except
//! - enum values (the spec fixes them), strings whose format makes them a whole structure on
//!   purpose (`promql`, checked by the backend's guardrails; `label-selector`,
//!   `field-selector`, parsed here) and durations (`duration`, `promql-duration`: their
//!   anchored pattern allows digits and unit letters only, and `promql_duration` refuses
//!   anything else, the sentinel included).
//!
//! Numbers, booleans, null and empty strings are kept, so `if` takes the same branches
//! (a free-text input compared with a constant, `{% if x == "a" %}`, does not: give such an
//! input an `enum`).

use serde_json::{Map, Value};

use super::names::{NameKind, header_value, k8s_name};
use super::{GuardError, SENTINEL, path, promql, selector};
use crate::engine::lint::{TextContext, request_field_context};
use crate::spec::model::InputSpec;

/// A rendered request refused before sending, naming the request field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request field `{field}`: {error}")]
pub struct Refused {
    /// The call's field (`query`, `path`, `labelSelector`, `headers.Authorization`, ...).
    pub field: String,
    /// Why.
    #[source]
    pub error: GuardError,
}

/// The arguments for the inert rendering (see the module docs).
pub fn sentinel_args<'a>(
    inputs: impl IntoIterator<Item = (&'a String, &'a InputSpec)>,
    args: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = args.clone();
    for (name, spec) in inputs {
        if let Some(v) = out.get_mut(name) {
            *v = sentinel_for_input(spec, v);
        }
    }
    out
}

fn sentinel_for_input(spec: &InputSpec, v: &Value) -> Value {
    let kept_format = matches!(
        spec.format.as_deref(),
        Some("promql" | "label-selector" | "field-selector" | "duration" | "promql-duration")
    );
    if spec.enum_values.is_some() || kept_format {
        return v.clone();
    }
    match v {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| spec.items.as_deref().map_or_else(|| sentinel_value(i), |s| sentinel_for_input(s, i)))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| {
                    let sub = spec.properties.as_ref().and_then(|p| p.get(k));
                    (k.clone(), sub.map_or_else(|| sentinel_value(i), |s| sentinel_for_input(s, i)))
                })
                .collect(),
        ),
        other => sentinel_value(other),
    }
}

/// Untrusted data (a step result) for the inert rendering: every non-empty string becomes
/// [`SENTINEL`], recursively; keys, numbers, booleans and empty strings are kept.
pub fn sentinel_value(v: &Value) -> Value {
    match v {
        Value::String(s) if !s.is_empty() => Value::String(SENTINEL.into()),
        Value::Array(items) => Value::Array(items.iter().map(sentinel_value).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, i)| (k.clone(), sentinel_value(i))).collect()),
        other => other.clone(),
    }
}

/// Check a rendered request of backend kind `kind` (`prometheus`, `kubernetes`, `http`)
/// against its inert rendering, field by field. Fields that are not text (typed JSON, query
/// parameters, bodies: encoded by the backend) pass.
pub fn check_request(kind: &str, actual: &Value, sentinel: &Value) -> Result<(), Refused> {
    let Some(fields) = actual.as_object() else { return Ok(()) };
    for (field, value) in fields {
        let Some(ctx) = request_field_context(kind, field) else { continue };
        let inert = sentinel.get(field).unwrap_or(&Value::Null);
        let refuse = |error: GuardError| Refused { field: field.clone(), error };
        match ctx {
            TextContext::Data => {}
            TextContext::Header => {
                for (name, v) in value.as_object().into_iter().flatten() {
                    if let Some(s) = v.as_str() {
                        header_value(s).map_err(|error| Refused { field: format!("{field}.{name}"), error })?;
                    }
                }
            }
            TextContext::K8sName => check_names(field, value).map_err(refuse)?,
            _ => {
                let (Some(a), Some(s)) = (value.as_str(), inert.as_str()) else { continue };
                match ctx {
                    TextContext::Promql => promql::same_structure(a, s),
                    TextContext::LabelSelector => selector::same_structure(selector::SelectorKind::Label, a, s),
                    TextContext::FieldSelector => selector::same_structure(selector::SelectorKind::Field, a, s),
                    // A path field that is one segment (Prometheus' label name) must stay one.
                    TextContext::UrlPath if !s.starts_with('/') => {
                        path::same_segments(&format!("/{a}"), &format!("/{s}"))
                    }
                    TextContext::UrlPath => path::same_segments(a, s),
                    _ => Ok(()),
                }
                .map_err(refuse)?;
            }
        }
    }
    Ok(())
}

/// Kubernetes names go into the URL unencoded: each must be a valid name (empty means
/// "all" or "none" and passes).
fn check_names(field: &str, value: &Value) -> Result<(), GuardError> {
    let one = |v: &Value, kind: NameKind| match v.as_str() {
        Some(s) if !s.is_empty() => k8s_name(s, kind),
        _ => Ok(()),
    };
    match field {
        "namespace" => one(value, NameKind::Namespace),
        "container" => one(value, NameKind::Container),
        "name" => one(value, NameKind::Object),
        "resource" => {
            one(value.get("apiVersion").unwrap_or(&Value::Null), NameKind::ApiVersion)?;
            one(value.get("kind").unwrap_or(&Value::Null), NameKind::Kind)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::template::render_json;

    fn input(yaml: serde_json::Value) -> InputSpec {
        serde_json::from_value(yaml).unwrap()
    }

    /// Render `request` with `args` and with their inert form, then check.
    fn run(kind: &str, request: Value, inputs: &[(&str, Value)], args: Value) -> Result<(), Refused> {
        let inputs: Vec<(String, InputSpec)> = inputs.iter().map(|(n, s)| (n.to_string(), input(s.clone()))).collect();
        let args = args.as_object().unwrap().clone();
        let inert = sentinel_args(inputs.iter().map(|(n, s)| (n, s)), &args);
        let ctx = |m: &Map<String, Value>| crate::engine::template::to_value(m);
        let actual = render_json(&request, &ctx(&args)).unwrap();
        let sentinel = render_json(&request, &ctx(&inert)).unwrap();
        check_request(kind, &actual, &sentinel)
    }

    #[test]
    fn inert_arguments_keep_numbers_enums_empties_and_whole_structures() {
        let inputs: Vec<(String, InputSpec)> = [
            ("ns", json!({"type": "string"})),
            ("phase", json!({"type": "string", "enum": ["Running", "Failed"]})),
            ("limit", json!({"type": "integer"})),
            ("q", json!({"type": "string", "format": "promql"})),
            ("window", json!({"type": "string", "format": "promql-duration"})),
            ("empty", json!({"type": "string"})),
            ("names", json!({"type": "array", "items": {"type": "string"}})),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), input(s)))
        .collect();
        let args = json!({"ns": "a\"b", "phase": "Running", "limit": 5, "q": "up{job=\"x\"}", "window": "5m",
                          "empty": "", "names": ["x", ""]});
        let inert = sentinel_args(inputs.iter().map(|(n, s)| (n, s)), args.as_object().unwrap());
        assert_eq!(
            Value::Object(inert),
            json!({"ns": SENTINEL, "phase": "Running", "limit": 5, "q": "up{job=\"x\"}", "window": "5m",
                   "empty": "", "names": [SENTINEL, ""]})
        );
        assert_eq!(
            sentinel_value(&json!({"items": [{"name": "p", "n": 1}]})),
            json!({"items": [{"name": SENTINEL, "n": 1}]})
        );
    }

    #[test]
    fn a_query_whose_argument_changes_its_structure_is_refused_naming_the_field() {
        let req = json!({"query": "up{namespace=\"{{ ns }}\"}"});
        let inputs = [("ns", json!({"type": "string"}))];
        run("prometheus", req.clone(), &inputs, json!({"ns": "default"})).unwrap();
        let e = run("prometheus", req, &inputs, json!({"ns": "a\"} or vector(1) #"})).unwrap_err();
        assert_eq!(e.field, "query");
        assert!(e.to_string().starts_with("request field `query`: refused before sending"), "{e}");
    }

    #[test]
    fn an_escaped_query_passes_for_a_hostile_value() {
        let req = json!({"query": "up{namespace={{ ns | promql_string }}}"});
        run("prometheus", req, &[("ns", json!({"type": "string"}))], json!({"ns": "a\"} or vector(1) #"})).unwrap();
    }

    #[test]
    fn a_label_value_that_becomes_a_path_is_refused() {
        let req = json!({"endpoint": "label-values", "label": "{{ l }}"});
        let inputs = [("l", json!({"type": "string"}))];
        run("prometheus", req.clone(), &inputs, json!({"l": "job"})).unwrap();
        let e = run("prometheus", req, &inputs, json!({"l": "../../admin"})).unwrap_err();
        assert_eq!(e.field, "label");
    }

    #[test]
    fn a_whole_selector_input_is_parsed_and_a_smuggled_requirement_refused() {
        let req = json!({"verb": "list", "resource": {"apiVersion": "v1", "kind": "Pod"},
                         "labelSelector": "{{ sel }}", "fieldSelector": "spec.nodeName={{ node }}"});
        let inputs =
            [("sel", json!({"type": "string", "format": "label-selector"})), ("node", json!({"type": "string"}))];
        run("kubernetes", req.clone(), &inputs, json!({"sel": "app=web,tier in (a,b)", "node": "n1"})).unwrap();
        let e = run("kubernetes", req.clone(), &inputs, json!({"sel": "", "node": "n1,metadata.name!=x"})).unwrap_err();
        assert_eq!(e.field, "fieldSelector");
        let e = run("kubernetes", req, &inputs, json!({"sel": "app in (", "node": "n1"})).unwrap_err();
        assert_eq!(e.field, "labelSelector");
    }

    #[test]
    fn kubernetes_names_with_url_characters_are_refused() {
        let req = json!({"verb": "get", "resource": {"apiVersion": "v1", "kind": "Pod"},
                         "namespace": "{{ ns }}", "name": "{{ name }}"});
        let inputs = [("ns", json!({"type": "string"})), ("name", json!({"type": "string"}))];
        run("kubernetes", req.clone(), &inputs, json!({"ns": "default", "name": "web-1"})).unwrap();
        run("kubernetes", req.clone(), &inputs, json!({"ns": "", "name": ""})).unwrap();
        for (ns, name, field) in [
            ("default", "web?x=1", "name"),
            ("default", "a,b", "name"),
            ("default", "a/b", "name"),
            ("default", "a%2Fb", "name"),
            ("kube-system/../x", "web", "namespace"),
        ] {
            let e = run("kubernetes", req.clone(), &inputs, json!({"ns": ns, "name": name})).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        let e = check_request("kubernetes", &json!({"resource": {"apiVersion": "v1", "kind": "Pod/x"}}), &json!({}))
            .unwrap_err();
        assert_eq!(e.field, "resource");
    }

    #[test]
    fn http_paths_and_headers_are_checked() {
        let req = json!({"method": "GET", "path": "/api/items/{{ id }}", "headers": {"X-Tenant": "{{ tenant }}"},
                         "query": {"q": "{{ id }}"}});
        let inputs = [("id", json!({"type": "string"})), ("tenant", json!({"type": "string"}))];
        run("http", req.clone(), &inputs, json!({"id": "a?b=../c", "tenant": "t1"})).unwrap_err();
        let e = run("http", req.clone(), &inputs, json!({"id": "../admin", "tenant": "t1"})).unwrap_err();
        assert_eq!(e.field, "path");
        let e = run("http", req.clone(), &inputs, json!({"id": "x", "tenant": "t1\r\nX-Admin: 1"})).unwrap_err();
        assert_eq!(e.field, "headers.X-Tenant");
        // Query parameters are encoded by the backend: anything goes there.
        let req = json!({"method": "GET", "path": "/api/items/{{ id | path_segment }}", "query": {"q": "{{ id }}"}});
        run("http", req, &inputs[..1], json!({"id": "a/b?c=#d"})).unwrap();
    }
}
