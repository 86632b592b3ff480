//! Compile `kind: Route` documents, collecting every problem with its location: unknown
//! tools, arguments that are not inputs of the tool, path variables nothing reads (or that
//! the path lacks), templates that do not compile or read undeclared names, reserved paths
//! and routes that conflict (one method, one path shape).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use indexmap::IndexMap;
use regex::Regex;
use serde_json::{Value, json};

use super::{ErrorResponse, Origin, Param, Response, Route, Segment, Status};
use crate::engine::compile::{check_template, input_schema};
use crate::engine::registry::Tool;
use crate::engine::template::{self, Mode, Templates};
use crate::spec::diagnostic::Diagnostic;
use crate::spec::load::Located;
use crate::spec::model::{HttpMethodSpec, RouteDoc, StatusSpec};
use crate::spec::yaml::pointer_segment;

/// The request as templates see it.
const REQUEST: [&str; 4] = ["path", "query", "body", "headers"];

/// Compile every route; conflicts between routes are reported on the later one.
pub fn compile_routes(
    docs: &[Located<RouteDoc>],
    tools: &IndexMap<String, Arc<Tool>>,
    diags: &mut Vec<Diagnostic>,
) -> IndexMap<String, Arc<Route>> {
    let mut out: IndexMap<String, Arc<Route>> = IndexMap::new();
    let mut shapes: HashMap<(HttpMethodSpec, String), &Located<RouteDoc>> = HashMap::new();
    for doc in docs {
        if out.contains_key(&doc.doc.metadata.name) {
            continue; // duplicate names are reported with the other kinds
        }
        let Some(route) = compile_route(doc, tools, diags) else { continue };
        let key = (route.method, Route::shape(&route.segments));
        if let Some(first) = shapes.get(&key) {
            let at = first.src.yaml.locate("/spec/path");
            diags.push(doc.src.diag_in_value(
                "/spec/path",
                format!(
                    "route conflicts with route `{}` ({} {} at {}:{}:{}): a request could match both",
                    first.doc.metadata.name,
                    first.doc.spec.method.as_str(),
                    first.doc.spec.path,
                    first.src.file.display(),
                    at.line,
                    at.col
                ),
                Some("give one of them another method or path (a literal segment ranks before a variable, so `/a/b` and `/a/{x}` may coexist)".into()),
            ));
            continue;
        }
        shapes.insert(key, doc);
        out.insert(route.name.clone(), Arc::new(route));
    }
    out
}

/// References to request values in an expression: `query.limit`, `body['x-y']`.
#[cfg(test)]
fn references(source: &str) -> Vec<(Origin, String)> {
    references_with_depth(source).into_iter().map(|(o, n, _)| (o, n)).collect()
}

/// As [`references`], with whether each value is only read deeper (`body.labels.namespace`
/// reads `labels` but says nothing about its type).
fn references_with_depth(source: &str) -> Vec<(Origin, String, bool)> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"\b(path|query|body|headers)(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*(?:'([^']*)'|"([^"]*)")\s*\])"#)
            .expect("regex")
    });
    RE.captures_iter(source)
        .filter_map(|c| {
            let origin = match &c[1] {
                "path" => Origin::Path,
                "query" => Origin::Query,
                "body" => Origin::Body,
                _ => Origin::Header,
            };
            let name = c.get(2).or_else(|| c.get(3)).or_else(|| c.get(4))?.as_str().to_string();
            let after = source[c.get(0)?.end()..].trim_start();
            let deeper = after.starts_with('.') || after.starts_with('[');
            Some((origin, if origin == Origin::Header { name.to_ascii_lowercase() } else { name }, deeper))
        })
        .collect()
}

/// An input's schema as a request value: integers are 64-bit (a larger number in a query or
/// body is refused, so the document says so).
fn request_schema(mut schema: Value) -> Value {
    if schema.get("type") == Some(&json!("integer")) && schema.get("format").is_none() {
        schema["format"] = json!("int64");
    }
    schema
}

fn content_type(given: &Option<String>) -> String {
    given.clone().unwrap_or_else(|| "application/json".into())
}

fn is_text(content_type: &str) -> bool {
    content_type.starts_with("text/")
}

/// The default error body's schema.
pub fn error_schema() -> Value {
    json!({"type": "object", "properties": {"status": {"type": "string"}, "error": {"type": "string"}}, "required": ["status", "error"]})
}

/// A body schema derived from the body as written and the tool's output schema.
fn derive_schema(body: &Value, output: &serde_json::Map<String, Value>) -> Value {
    match body {
        Value::String(s) => match template::single_expression(s).map(str::trim) {
            Some("result") => Value::Object(output.clone()),
            Some(e) => e
                .strip_prefix("result.")
                .and_then(|f| output.get("properties")?.get(f).cloned())
                .unwrap_or_else(|| json!({})),
            None => json!({"type": "string"}),
        },
        Value::Number(_) => json!({"type": "number"}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Array(_) => json!({"type": "array"}),
        Value::Object(m) => {
            let props: serde_json::Map<String, Value> =
                m.iter().map(|(k, v)| (k.clone(), derive_schema(v, output))).collect();
            json!({"type": "object", "properties": props})
        }
        Value::Null => json!({}),
    }
}

fn compile_route(
    r: &Located<RouteDoc>,
    tools: &IndexMap<String, Arc<Tool>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Route> {
    let before = diags.len();
    let src = &r.src;
    let spec = &r.doc.spec;
    let tool = match tools.get(&spec.tool) {
        Some(t) => t.clone(),
        None => {
            let names: Vec<&str> = tools.keys().map(String::as_str).collect();
            let hint = crate::spec::load::did_you_mean(&spec.tool, &names)
                .map(|n| format!("did you mean `{n}`?"))
                .or_else(|| Some("name a `kind: Tool` document".into()));
            diags.push(src.diag_in_value("/spec/tool", format!("unknown tool `{}`", spec.tool), hint));
            return None;
        }
    };
    let segments = match super::parse_path(&spec.path) {
        Ok(s) => s,
        Err(e) => {
            diags.push(src.diag_in_value("/spec/path", format!("invalid path `{}`: {e}", spec.path), None));
            return None;
        }
    };
    if super::RESERVED.iter().any(|p| spec.path == *p || spec.path.starts_with(&format!("{p}/"))) {
        diags.push(src.diag_in_value(
            "/spec/path",
            format!("path `{}` is served by the server itself", spec.path),
            Some(format!("reserved: {}", super::RESERVED.join(", "))),
        ));
    }
    let path_vars: Vec<String> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Var(v) => Some(v.clone()),
            Segment::Literal(_) => None,
        })
        .collect();
    let inputs = &tool.proc.inputs;
    let mut request_scope: HashSet<String> = REQUEST.iter().map(|s| s.to_string()).collect();
    request_scope.extend(template::globals());
    let mut sink = HashSet::new();
    let mut refs = Refs { path: &spec.path, path_vars: &path_vars, used: HashSet::new(), params: BTreeMap::new() };

    // Arguments: declared inputs only, expressions over the request.
    let mut arguments = Vec::new();
    for (input, expr) in &spec.arguments {
        let ptr = format!("/spec/arguments/{}", pointer_segment(input));
        let Some(i) = inputs.get(input) else {
            let names: Vec<&str> = inputs.keys().map(String::as_str).collect();
            diags.push(src.diag(
                &ptr,
                format!("`{input}` is not an input of tool `{}`", tool.name),
                Some(match crate::spec::load::did_you_mean(input, &names) {
                    Some(n) => format!("did you mean `{n}`? inputs: {}", names.join(", ")),
                    None => format!("inputs: {}", if names.is_empty() { "none".into() } else { names.join(", ") }),
                }),
            ));
            continue;
        };
        check_template(src, &ptr, expr, true, &request_scope, &HashSet::new(), &mut sink, diags);
        let schema = request_schema(input_schema(i));
        refs.check(src, &ptr, expr, Some((&schema, i.required && i.default.is_none())), diags);
        if let Ok(e) = template::compile_shaping_expr(expr) {
            arguments.push((input.clone(), e));
        }
    }
    // Inputs not listed: the path variable, query parameter or body field of the same name.
    for (name, i) in inputs {
        if spec.arguments.contains_key(name) {
            continue;
        }
        let origin = if path_vars.contains(name) {
            refs.used.insert(name.clone());
            Origin::Path
        } else if matches!(spec.method, HttpMethodSpec::Get | HttpMethodSpec::Delete) {
            Origin::Query
        } else {
            Origin::Body
        };
        let source = match origin {
            Origin::Path => format!("path.{name}"),
            Origin::Query => format!("query[{}]", json!(name)),
            _ => format!("body[{}]", json!(name)),
        };
        refs.params.insert(
            (origin, name.clone()),
            Param { schema: request_schema(input_schema(i)), required: i.required && i.default.is_none() },
        );
        match template::compile_shaping_expr(&source) {
            Ok(e) => arguments.push((name.clone(), e)),
            Err(e) => diags.push(src.diag("/spec/tool", format!("input `{name}` cannot be mapped: {e}"), None)),
        }
    }

    // The response: status, body over the result and the request.
    let mut templates = Templates::default();
    let mut result_scope = request_scope.clone();
    result_scope.extend(["result".to_string(), "text".to_string()]);
    let status = match &spec.response.status {
        StatusSpec::Code(c) if (100..=599).contains(c) => Status::Code(*c),
        StatusSpec::Code(c) => {
            diags.push(src.diag_in_value("/spec/response/status", format!("{c} is not an HTTP status"), None));
            Status::Code(200)
        }
        StatusSpec::Expr(e) => {
            let e = template::single_expression(e).map(str::trim).unwrap_or(e);
            check_template(src, "/spec/response/status", e, true, &result_scope, &HashSet::new(), &mut sink, diags);
            refs.check(src, "/spec/response/status", e, None, diags);
            match template::compile_shaping_expr(e) {
                Ok(e) => Status::Expr(Box::new(e)),
                Err(_) => Status::Code(200),
            }
        }
    };
    let response_type = content_type(&spec.response.content_type);
    let body = match &spec.response.body {
        None => None,
        Some(b) => {
            if is_text(&response_type) && !b.is_string() {
                diags.push(src.diag_in_value(
                    "/spec/response/body",
                    format!("a {response_type} body is one text template"),
                    None,
                ));
            }
            check_body(src, "/spec/response/body", b, &result_scope, diags);
            for (ptr, s) in leaves(b, "/spec/response/body") {
                refs.check(src, &ptr, &s, None, diags);
            }
            templates.tree(Mode::Shaping, "/spec/response/body", b).ok()
        }
    };
    let schema = match (&spec.response.schema, &spec.response.body) {
        (Some(s), _) => s.clone(),
        _ if is_text(&response_type) => json!({"type": "string"}),
        (None, None) if tool.proc.has_structured_output() => Value::Object(tool.proc.output_schema.clone()),
        (None, None) => json!({}),
        (None, Some(b)) => derive_schema(b, &tool.proc.output_schema),
    };
    let response =
        Response { status, statuses: spec.response.statuses.clone(), content_type: response_type, body, schema };

    let mut error_scope = request_scope.clone();
    error_scope.insert("error".into());
    let mut errors = Vec::new();
    for (n, e) in spec.errors.iter().enumerate() {
        let ptr = format!("/spec/errors/{n}");
        let when = e.when.as_ref().and_then(|w| {
            check_template(src, &format!("{ptr}/when"), w, true, &error_scope, &HashSet::new(), &mut sink, diags);
            refs.check(src, &format!("{ptr}/when"), w, None, diags);
            template::compile_shaping_expr(w).ok()
        });
        if !(400..=599).contains(&e.status) {
            diags.push(src.diag_in_value(
                &format!("{ptr}/status"),
                format!("{} is not an error status", e.status),
                None,
            ));
        }
        let ct = content_type(&e.content_type);
        let body = e.body.as_ref().and_then(|b| {
            if is_text(&ct) && !b.is_string() {
                diags.push(src.diag_in_value(
                    &format!("{ptr}/body"),
                    format!("a {ct} body is one text template"),
                    None,
                ));
            }
            check_body(src, &format!("{ptr}/body"), b, &error_scope, diags);
            for (p, s) in leaves(b, &format!("{ptr}/body")) {
                refs.check(src, &p, &s, None, diags);
            }
            templates.tree(Mode::Shaping, &format!("{ptr}/body"), b).ok()
        });
        let schema = match (&e.schema, &e.body) {
            (Some(s), _) => s.clone(),
            _ if is_text(&ct) => json!({"type": "string"}),
            (None, None) => error_schema(),
            (None, Some(b)) => derive_schema(b, &serde_json::Map::new()),
        };
        errors.push(ErrorResponse { on: e.on.clone(), when, status: e.status, content_type: ct, body, schema });
    }

    for v in &path_vars {
        if !refs.used.contains(v) {
            diags.push(src.diag_in_value(
                "/spec/path",
                format!("path variable `{v}` is not used"),
                Some(format!(
                    "read it in an argument (`path.{v}`), or name a tool input `{v}`; inputs of `{}`: {}",
                    tool.name,
                    inputs.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            ));
        }
    }
    // Aliases of body fields: the field's schema under the other name, never required.
    for (i, (field, alias)) in spec.aliases.iter().enumerate() {
        let ptr = format!("/spec/aliases/{}", pointer_segment(field));
        let Some(p) = refs.params.get(&(Origin::Body, field.clone())).cloned() else {
            diags.push(src.diag(&ptr, format!("`{field}` is not a body field this route reads"), None));
            continue;
        };
        let clash = field == alias
            || refs.params.contains_key(&(Origin::Body, alias.clone()))
            || spec.aliases.iter().enumerate().any(|(j, (f, a))| j != i && (a == alias || f == alias));
        if clash {
            diags.push(src.diag(&ptr, format!("alias `{alias}` is already a body field or another alias"), None));
            continue;
        }
        refs.params.insert((Origin::Body, alias.clone()), Param { schema: p.schema, required: false });
    }
    if diags.len() > before {
        return None;
    }
    let params = refs.params;
    let reads_body = params.keys().any(|(o, _)| *o == Origin::Body)
        || spec.arguments.values().any(|e| template::undeclared(e, true).is_ok_and(|v| v.contains("body")));
    Some(Route {
        name: r.doc.metadata.name.clone(),
        labels: r.doc.metadata.labels.clone(),
        method: spec.method,
        path: spec.path.clone(),
        segments,
        tool,
        summary: spec.summary.clone(),
        description: spec.description.clone(),
        arguments,
        params,
        reads_body,
        aliases: spec.aliases.iter().map(|(f, a)| (f.clone(), a.clone())).collect(),
        response,
        errors,
        templates,
    })
}

/// Request values read by a route's templates, and the path variables among them.
struct Refs<'a> {
    path: &'a str,
    path_vars: &'a [String],
    used: HashSet<String>,
    params: BTreeMap<(Origin, String), Param>,
}

impl Refs<'_> {
    /// Record the request values `source` reads; `schema`: that of the input it feeds and
    /// whether the input is required (a value read alone is then required too).
    fn check(
        &mut self,
        src: &crate::spec::diagnostic::Source,
        ptr: &str,
        source: &str,
        schema: Option<(&Value, bool)>,
        diags: &mut Vec<Diagnostic>,
    ) {
        let refs = references_with_depth(source);
        let alone = refs.len() == 1;
        for (origin, name, deeper) in refs {
            if origin == Origin::Path {
                if !self.path_vars.contains(&name) {
                    diags.push(src.diag_in_value(
                        ptr,
                        format!("the path `{}` has no variable `{name}`", self.path),
                        Some(format!(
                            "path variables: {}",
                            if self.path_vars.is_empty() { "none".to_string() } else { self.path_vars.join(", ") }
                        )),
                    ));
                }
                self.used.insert(name.clone());
            }
            let p = self.params.entry((origin, name)).or_insert(Param { schema: json!({}), required: false });
            if let Some((s, required)) = schema.filter(|_| !deeper) {
                if p.schema == json!({}) {
                    p.schema = s.clone();
                }
                p.required |= required && alone;
            }
        }
    }
}

/// Every string leaf of a JSON tree with its pointer under `base`.
fn leaves(v: &Value, base: &str) -> Vec<(String, String)> {
    match v {
        Value::String(s) => vec![(base.to_string(), s.clone())],
        Value::Array(a) => a.iter().enumerate().flat_map(|(i, x)| leaves(x, &format!("{base}/{i}"))).collect(),
        Value::Object(m) => m.iter().flat_map(|(k, x)| leaves(x, &format!("{base}/{}", pointer_segment(k)))).collect(),
        _ => Vec::new(),
    }
}

/// Check every string leaf of a body as a template over `scope`.
fn check_body(
    src: &crate::spec::diagnostic::Source,
    base: &str,
    body: &Value,
    scope: &HashSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    for (ptr, s) in leaves(body, base) {
        match template::single_expression(&s) {
            Some(e) => check_template(src, &ptr, e, true, scope, &HashSet::new(), &mut HashSet::new(), diags),
            None => check_template(src, &ptr, &s, false, scope, &HashSet::new(), &mut HashSet::new(), diags),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_deeper_takes_no_schema_from_the_input() {
        let r = references_with_depth("body.namespace or body.labels.namespace or body['x'] ['y']");
        let deeper: Vec<(&str, bool)> = r.iter().map(|(_, n, d)| (n.as_str(), *d)).collect();
        assert_eq!(deeper, [("namespace", false), ("labels", true), ("x", true)]);
    }

    #[test]
    fn references_name_their_origin() {
        let r = references("body.affected_resources or body['affectedResources'] or query.x or headers['X-Org']");
        assert_eq!(
            r,
            vec![
                (Origin::Body, "affected_resources".into()),
                (Origin::Body, "affectedResources".into()),
                (Origin::Query, "x".into()),
                (Origin::Header, "x-org".into()),
            ]
        );
    }
}
