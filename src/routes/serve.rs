//! Serve REST requests from the routes of the registry in force: match the method and
//! path, build the tool's arguments from the request, run the tool, and answer with the
//! route's status and body, or its error response.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{ErrorResponse, Origin, Route, Status};
use crate::audit::{Called, Outcome, Record};
use crate::backends::ErrorKind;
use crate::engine::Active;
use crate::engine::invoke::{self, Error as CallError};
use crate::engine::template::{self, Mode};
use crate::mcp::guard::Guard;
use crate::mcp::state::State;
use crate::spec::model::FailureSpec;

/// What the REST handlers need.
#[derive(Clone)]
pub struct Rest {
    pub state: Arc<State>,
    pub guard: Arc<Guard>,
}

/// Any request no other endpoint took: a route of the active mode, or 404/405. The route's
/// tool runs as the caller (identity and headers, as on /mcp); a destructive tool needs the
/// OAuth write scopes; every route call is audited.
pub async fn handle(AxState(rest): AxState<Rest>, req: Request) -> Response {
    let (parts, bytes) = match rest.guard.admit(req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let active = rest.state.current();
    let started = Instant::now();
    let who = parts
        .extensions
        .get::<crate::identity::Identity>()
        .cloned()
        .unwrap_or_else(crate::identity::Identity::anonymous);
    let (route, vars) = match find(&active, &parts.method, &parts.uri) {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    if let Some(refusal) = rest.guard.check_destructive(&who, route.tool.is_destructive()) {
        return refusal;
    }
    let headers = Arc::new(crate::identity::Forwarded(parts.headers.clone()));
    let call = crate::identity::scope(
        Arc::new(who.clone()),
        crate::identity::with_headers(headers, answer(&active, &route, &vars, &parts.uri, &parts.headers, &bytes)),
    );
    let audited = rest.state.audit.enabled(&active);
    let (resp, requests) = if audited { crate::audit::collect(call).await } else { (call.await, Vec::new()) };
    rest.state.metrics.record_call(&route.tool.name, started.elapsed(), resp.status().is_server_error());
    if audited {
        let mut record = Record::new(Some(&who), Called::Route, &route.name, &route_arguments(&parts.uri, &bytes));
        record.route = Some(format!("{} {}", parts.method, parts.uri.path()));
        record.tool = Some(route.tool.name.clone());
        record.requests = requests;
        let status = resp.status();
        let outcome = if status.is_success() || status.is_redirection() { Outcome::Ok } else { Outcome::Error };
        let message = (outcome != Outcome::Ok).then(|| format!("HTTP {}", status.as_u16()));
        rest.state.audit.record(&active, record.finish(outcome, message, started.elapsed())).await;
    }
    resp
}

/// A route call's arguments for the audit record: its query parameters and JSON body.
fn route_arguments(uri: &axum::http::Uri, body: &Bytes) -> Map<String, Value> {
    let mut args: Map<String, Value> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).map(|(k, v)| (k.to_string(), json!(v))).collect();
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(b)) => args.extend(b),
        Ok(other) => {
            args.insert("body".into(), other);
        }
        Err(_) => {}
    }
    args
}

/// The OpenAPI document of the routes the active mode serves.
pub async fn openapi(AxState(rest): AxState<Rest>, req: Request) -> Response {
    if let Err(resp) = rest.guard.admit(req).await {
        return resp;
    }
    axum::Json(super::openapi::document(&rest.state.current())).into_response()
}

/// A JSON error body with a status.
fn error_json(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"status": "error", "error": message}))).into_response()
}

/// Path variables of a matched route, by name.
type PathVars = Vec<(String, String)>;

/// Answer one request against the active routes; also names the tool that ran, if any.
pub async fn dispatch(
    active: &Active,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, Option<String>) {
    match find(active, method, uri) {
        Ok((route, vars)) => (answer(active, &route, &vars, uri, headers, body).await, Some(route.tool.name.clone())),
        Err(resp) => (resp, None),
    }
}

/// The route a request is for and its path variables, or the 404/405 (or, for a route the
/// read-only switch hides, the 403) answer.
#[allow(clippy::result_large_err)] // the refusal is the answer itself, returned once
fn find(active: &Active, method: &Method, uri: &axum::http::Uri) -> Result<(Arc<Route>, PathVars), Response> {
    let segments: Vec<String> = match uri.path().strip_prefix('/') {
        Some("") | None => Vec::new(),
        Some(p) => {
            p.split('/').map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()).collect()
        }
    };
    let matching: Vec<(&Arc<Route>, PathVars)> =
        active.routes.values().filter_map(|r| r.match_path(&segments).map(|v| (r, v))).collect();
    if matching.is_empty() {
        // A route of the catalogue this server hides (the read-only switch): refused with why.
        let hidden = active.registry.routes.values().any(|r| {
            active.hidden_read_only("Route", &r.name)
                && r.method.as_str() == method.as_str()
                && r.match_path(&segments).is_some()
        });
        if hidden {
            return Err(error_json(StatusCode::FORBIDDEN, &format!("{}: nothing was done", crate::engine::READ_ONLY)));
        }
        return Err(error_json(StatusCode::NOT_FOUND, &format!("no route for {}", crate::clip::clip(uri.path(), 200))));
    }
    let Some((route, vars)) = matching
        .iter()
        .filter(|(r, _)| r.method.as_str() == method.as_str())
        .max_by(|a, b| a.0.specificity().cmp(&b.0.specificity()))
    else {
        let mut allowed: Vec<&str> = matching.iter().map(|(r, _)| r.method.as_str()).collect();
        allowed.sort();
        allowed.dedup();
        let mut resp = error_json(StatusCode::METHOD_NOT_ALLOWED, &format!("{method} is not allowed here"));
        if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        return Err(resp);
    };
    Ok(((*route).clone(), vars.clone()))
}

/// Convert a path or query value to the type its schema names; a value that does not
/// convert is left as text for the tool's input check to refuse.
fn coerce(text: &str, schema: &Value) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => text.trim().parse::<i64>().map(Value::from).unwrap_or_else(|_| json!(text)),
        Some("number") => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .unwrap_or_else(|| json!(text)),
        Some("boolean") => match text {
            "true" => json!(true),
            "false" => json!(false),
            _ => json!(text),
        },
        _ => json!(text),
    }
}

/// The request as templates see it: `path`, `query`, `headers`, `body`.
fn request_scope(
    route: &Route,
    vars: &[(String, String)],
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, String> {
    let schema_of = |origin: Origin, name: &str| route.params.get(&(origin, name.to_string())).map(|p| &p.schema);
    let path: Map<String, Value> = vars
        .iter()
        .map(|(k, v)| (k.clone(), schema_of(Origin::Path, k).map(|s| coerce(v, s)).unwrap_or_else(|| json!(v))))
        .collect();
    let mut query = Map::new();
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let schema = schema_of(Origin::Query, &k);
        match schema.and_then(|s| s.get("type")).and_then(Value::as_str) {
            Some("array") => {
                let item = schema.and_then(|s| s.get("items")).cloned().unwrap_or_else(|| json!({}));
                let list = query.entry(k.to_string()).or_insert_with(|| json!([]));
                if let Value::Array(a) = list {
                    a.push(coerce(&v, &item));
                }
            }
            _ => {
                query.insert(k.to_string(), schema.map(|s| coerce(&v, s)).unwrap_or_else(|| json!(v)));
            }
        }
    }
    let headers: Map<String, Value> =
        headers.iter().filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), json!(v.to_str().ok()?)))).collect();
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("the request body is not JSON: {e}"))?;
        if route.reads_body && !v.is_object() {
            return Err("the request body must be a JSON object".into());
        }
        v
    };
    let body = read_aliases(route, body)?;
    let mut scope = Map::new();
    scope.insert("path".into(), Value::Object(path));
    scope.insert("query".into(), Value::Object(query));
    scope.insert("headers".into(), Value::Object(headers));
    scope.insert("body".into(), body);
    Ok(scope)
}

/// A body field given under its alias is read as the field; both at once is an error.
fn read_aliases(route: &Route, mut body: Value) -> Result<Value, String> {
    let Some(m) = body.as_object_mut() else { return Ok(body) };
    for (field, alias) in &route.aliases {
        match (m.contains_key(field), m.contains_key(alias)) {
            (true, true) => return Err(format!("give `{field}` or `{alias}`, not both")),
            (false, true) => {
                if let Some(v) = m.remove(alias) {
                    m.insert(field.clone(), v);
                }
            }
            _ => {}
        }
    }
    Ok(body)
}

/// How a failure is named, with its message.
struct Failure {
    kind: FailureSpec,
    message: String,
}

impl Failure {
    fn of(e: &CallError) -> Failure {
        match e {
            CallError::InvalidArguments(m) => Failure { kind: FailureSpec::InvalidArguments, message: m.clone() },
            CallError::Step { kind, .. } => Failure {
                kind: match kind {
                    ErrorKind::NotFound => FailureSpec::NotFound,
                    ErrorKind::Forbidden => FailureSpec::Forbidden,
                    ErrorKind::InvalidRequest => FailureSpec::InvalidRequest,
                    ErrorKind::Refused => FailureSpec::Refused,
                    ErrorKind::Unreachable => FailureSpec::Unreachable,
                    ErrorKind::Timeout => FailureSpec::Timeout,
                    ErrorKind::Unavailable => FailureSpec::Unavailable,
                    ErrorKind::Upstream => FailureSpec::Upstream,
                },
                message: e.to_string(),
            },
            CallError::Output { .. } => {
                Failure { kind: FailureSpec::Output, message: "the tool's output could not be shaped".into() }
            }
            CallError::Cancelled => {
                Failure { kind: FailureSpec::Unavailable, message: "the call was cancelled".into() }
            }
        }
    }

    /// The status when the route declares none for this failure.
    fn default_status(&self) -> StatusCode {
        match self.kind {
            FailureSpec::InvalidArguments | FailureSpec::InvalidRequest | FailureSpec::Refused | FailureSpec::Error => {
                StatusCode::BAD_REQUEST
            }
            FailureSpec::NotFound => StatusCode::NOT_FOUND,
            FailureSpec::Unreachable | FailureSpec::Unavailable | FailureSpec::Timeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            FailureSpec::Forbidden | FailureSpec::Upstream => StatusCode::BAD_GATEWAY,
            FailureSpec::Output => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

async fn answer(
    active: &Active,
    route: &Route,
    vars: &[(String, String)],
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let mut scope = match request_scope(route, vars, uri, headers, body) {
        Ok(s) => s,
        Err(message) => return fail(route, &scope_only(uri), Failure { kind: FailureSpec::InvalidArguments, message }),
    };
    let ctx = template::to_value(&scope);
    let mut args = Map::new();
    for (input, expr) in &route.arguments {
        match expr.eval(&ctx) {
            Ok(v) if v.is_undefined() || v.is_none() => {}
            Ok(v) => match template::to_json(&v) {
                Ok(j) => {
                    args.insert(input.clone(), j);
                }
                Err(e) => {
                    let message = format!("argument `{input}`: {}", invoke::template_error(&e));
                    return fail(route, &scope, Failure { kind: FailureSpec::InvalidArguments, message });
                }
            },
            Err(e) => {
                let message = format!("argument `{input}`: {}", invoke::template_error(&e));
                return fail(route, &scope, Failure { kind: FailureSpec::InvalidArguments, message });
            }
        }
    }
    let ct = CancellationToken::new();
    let _cancel_on_drop = ct.clone().drop_guard();
    let outcome = match invoke::run(active, &route.tool.proc, &args, None, &ct).await {
        Ok(o) => o,
        Err(e) => return fail(route, &scope, Failure::of(&e)),
    };
    if let Some(message) = outcome.error {
        return fail(route, &scope, Failure { kind: FailureSpec::Error, message });
    }
    scope.insert("result".into(), outcome.structured.clone());
    scope.insert("text".into(), Value::String(outcome.text.clone()));
    let ctx = template::to_value(&scope);
    let status = match &route.response.status {
        Status::Code(c) => *c,
        Status::Expr(e) => match e.eval(&ctx).ok().and_then(|v| template::to_json(&v).ok()).and_then(|v| v.as_u64()) {
            Some(c) => c as u16,
            None => return internal("the route's status expression did not yield a status"),
        },
    };
    let body = match &route.response.body {
        None => outcome.structured,
        Some(tree) => match route.templates.render_tree(Mode::Shaping, tree, &ctx) {
            Ok(b) => b,
            Err(e) => return internal(&format!("the route's body did not render: {}", invoke::template_error(&e))),
        },
    };
    respond(status, &route.response.content_type, body)
}

/// The scope of a request whose body could not be read: its URI only.
fn scope_only(_uri: &axum::http::Uri) -> Map<String, Value> {
    let mut scope = Map::new();
    for k in ["path", "query", "headers", "body"] {
        scope.insert(k.into(), json!({}));
    }
    scope
}

fn internal(message: &str) -> Response {
    tracing::warn!(message, "REST route failed");
    error_json(StatusCode::INTERNAL_SERVER_ERROR, "the route failed; the server's log says why")
}

/// A response of a status, content type and body (text types take the body as text).
fn respond(status: u16, content_type: &str, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let text = match body {
        Value::String(s) if content_type.starts_with("text/") => s,
        other => serde_json::to_string(&other).unwrap_or_default(),
    };
    let mut resp = (status, text).into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// The route's answer to a failure: its first matching error entry, else the default.
fn fail(route: &Route, scope: &Map<String, Value>, failure: Failure) -> Response {
    let mut scope = scope.clone();
    scope.insert("error".into(), json!({"kind": failure.kind, "message": failure.message}));
    let ctx = template::to_value(&scope);
    let matches = |e: &&ErrorResponse| {
        (e.on.is_empty() || e.on.contains(&failure.kind))
            && e.when.as_ref().is_none_or(|w| w.eval(&ctx).is_ok_and(|v| v.is_true()))
    };
    match route.errors.iter().find(matches) {
        Some(e) => {
            let body = match &e.body {
                None => json!({"status": "error", "error": failure.message}),
                Some(tree) => match route.templates.render_tree(Mode::Shaping, tree, &ctx) {
                    Ok(b) => b,
                    Err(err) => {
                        return internal(&format!(
                            "the route's error body did not render: {}",
                            invoke::template_error(&err)
                        ));
                    }
                },
            };
            respond(e.status, &e.content_type, body)
        }
        None => error_json(failure.default_status(), &failure.message),
    }
}
