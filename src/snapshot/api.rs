//! A read-mostly Kubernetes API server over a [`Store`]: discovery, get, list (label and
//! field selectors, limit/continue), pod logs, and delete/patch/scale on the in-memory copy
//! (a Deployment whose pod template changes is rolled out at once: [`super::controller`]).
//! The same router serves the kube client in-process (tower oneshot) and `snapshot serve`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::selector::{FieldSelector, LabelSelector};
use super::{ResourceType, Store};

/// Shared, mutable snapshot (writes change only memory).
pub type Shared = Arc<RwLock<Store>>;

/// The API router.
pub fn router(store: Shared) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(core_versions))
        .route("/apis", get(groups))
        .route("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", axum::routing::post(self_access_review))
        .route("/apis/authorization.k8s.io/v1/subjectaccessreviews", axum::routing::post(subject_access_review))
        .route("/apis/authorization.k8s.io/v1", get(authorization_resources))
        .route("/api/{*rest}", axum::routing::any(core_path))
        .route("/apis/{*rest}", axum::routing::any(group_path))
        .layer(axum::middleware::from_fn_with_state(store.clone(), super::rbac::guard))
        .with_state(store)
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

fn not_found(what: String) -> Response {
    status(StatusCode::NOT_FOUND, "NotFound", what)
}

fn bad_request(message: String) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

async fn version() -> Response {
    axum::Json(json!({"major": "1", "minor": "29", "gitVersion": "v1.29.0-snapshot", "platform": "linux/amd64"}))
        .into_response()
}

async fn core_versions() -> Response {
    axum::Json(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})).into_response()
}

/// Access reviews, answered from the snapshot's RBAC for the caller (or, without a tokens
/// file, "allowed": everyone may do everything); clients such as kubernetes-mcp-server ask
/// before listing.
async fn self_access_review(
    State(store): State<Shared>,
    user: Option<axum::Extension<super::rbac::User>>,
    body: Bytes,
) -> Response {
    access_review(&store, user.map(|u| u.0), &body, true)
}

/// SubjectAccessReview: may the named user (and groups) do this, by the snapshot's RBAC.
async fn subject_access_review(
    State(store): State<Shared>,
    user: Option<axum::Extension<super::rbac::User>>,
    body: Bytes,
) -> Response {
    access_review(&store, user.map(|u| u.0), &body, false)
}

fn access_review(store: &Shared, user: Option<super::rbac::User>, body: &Bytes, self_review: bool) -> Response {
    let review: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return bad_request("the body must be an access review object".into()),
    };
    let s = store.read().unwrap_or_else(|e| e.into_inner());
    let answered = super::rbac::review(&s, user.as_ref(), review, self_review);
    (StatusCode::CREATED, axum::Json(answered)).into_response()
}

async fn authorization_resources() -> Response {
    axum::Json(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "authorization.k8s.io/v1",
        "resources": [{"name": "selfsubjectaccessreviews", "singularName": "", "namespaced": false,
                       "kind": "SelfSubjectAccessReview", "verbs": ["create"]},
                      {"name": "subjectaccessreviews", "singularName": "", "namespaced": false,
                       "kind": "SubjectAccessReview", "verbs": ["create"]}]}))
    .into_response()
}

async fn groups(State(store): State<Shared>) -> Response {
    let store = store.read().unwrap_or_else(|e| e.into_inner());
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in store.types.values().filter(|t| !t.group.is_empty()) {
        let v = by_group.entry(&t.group).or_default();
        if !v.contains(&t.version.as_str()) {
            v.push(&t.version);
        }
    }
    by_group.entry("authorization.k8s.io").or_default().push("v1");
    let groups: Vec<Value> = by_group
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> =
                vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})).into_response()
}

fn resource_list(store: &Store, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for t in store.types.values().filter(|t| t.group == group && t.version == version) {
        resources.push(json!({
            "name": t.plural, "singularName": t.kind.to_lowercase(), "namespaced": t.namespaced, "kind": t.kind,
            "verbs": ["get", "list", "delete", "patch"],
        }));
        if t.kind == "Pod" {
            resources.push(
                json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}),
            );
        }
        if matches!(t.kind.as_str(), "Deployment" | "StatefulSet" | "ReplicaSet") {
            resources.push(json!({"name": format!("{}/scale", t.plural), "singularName": "", "namespaced": true,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch"]}));
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

type Params = Query<BTreeMap<String, String>>;

async fn core_path(
    State(store): State<Shared>,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segs.split_first() {
        Some((v, tail)) => dispatch(&store, method, "", v, tail, &q, &headers, &body),
        None => core_versions().await,
    }
}

async fn group_path(
    State(store): State<Shared>,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [g] => {
            let store = store.read().unwrap_or_else(|e| e.into_inner());
            let versions: Vec<Value> = store
                .types
                .values()
                .filter(|t| t.group == *g)
                .map(|t| json!({"groupVersion": format!("{g}/{}", t.version), "version": t.version}))
                .collect();
            if versions.is_empty() {
                return not_found(format!("the server could not find the requested resource (group {g})"));
            }
            axum::Json(json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": versions, "preferredVersion": versions[0]}))
                .into_response()
        }
        [g, v, tail @ ..] => dispatch(&store, method, g, v, tail, &q, &headers, &body),
        [] => groups(State(store)).await,
    }
}

/// Route `<plural>[/<name>[/<sub>]]` or `namespaces/<ns>/<plural>[/<name>[/<sub>]]`.
#[allow(clippy::too_many_arguments)]
fn dispatch(
    store: &Shared,
    method: Method,
    group: &str,
    version: &str,
    tail: &[&str],
    q: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if tail.is_empty() {
        let s = store.read().unwrap_or_else(|e| e.into_inner());
        return axum::Json(resource_list(&s, group, version)).into_response();
    }
    let (ns, plural, name, sub) = match tail {
        ["namespaces", ns, plural, rest @ ..] => (Some(*ns), *plural, rest.first().copied(), rest.get(1).copied()),
        [plural, rest @ ..] => (None, *plural, rest.first().copied(), rest.get(1).copied()),
        [] => unreachable!(),
    };
    let found = {
        let s = store.read().unwrap_or_else(|e| e.into_inner());
        s.type_of(group, version, plural).cloned()
    };
    let Some(rt) = found else {
        return not_found(format!(
            "the server could not find the requested resource ({plural}.{version}{})",
            if group.is_empty() { String::new() } else { format!(".{group}") }
        ));
    };
    let ns = if rt.namespaced { ns.unwrap_or("") } else { "" };
    // `dryRun=All` on a write (a query parameter, or DeleteOptions in a DELETE's body): the
    // answer is the object as it would be; nothing changes.
    let mut dry_run: Vec<String> = q.get("dryRun").cloned().into_iter().collect();
    if method == Method::DELETE
        && let Ok(options) = serde_json::from_slice::<Value>(body)
        && let Some(Value::Array(values)) = options.get("dryRun")
    {
        dry_run.extend(values.iter().map(|v| v.as_str().unwrap_or_default().to_string()));
    }
    if let Some(other) = dry_run.iter().find(|v| *v != "All") {
        return bad_request(format!("Invalid dry run value `{other}`: only `All` is supported"));
    }
    let dry = !dry_run.is_empty();
    match (method, name, sub) {
        (Method::GET, None, _) => list(store, &rt, ns, q, wants_table(headers)).unwrap_or_else(|e| e),
        (Method::GET, Some(n), None) => respond(get_one(store, &rt, ns, n), wants_table(headers), &rt, store),
        (Method::GET, Some(n), Some("log")) if rt.kind == "Pod" => logs(store, ns, n, q),
        (Method::GET, Some(n), Some("scale")) => scale_get(store, &rt, ns, n),
        (Method::DELETE, Some(n), None) => delete(store, &rt, ns, n, dry),
        (Method::PATCH, Some(n), None) => patch(store, &rt, ns, n, headers, body, dry),
        (Method::PATCH, Some(n), Some("scale")) => scale_patch(store, &rt, ns, n, body, dry),
        (m, _, _) => {
            status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{m} is not supported on a snapshot"))
        }
    }
}

/// Does the client ask for server-side printing (kubectl's `Accept: ...;as=Table;...`)?
fn wants_table(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("as=Table"))
}

/// A list or get answer, as JSON or, when asked, as a meta.k8s.io/v1 Table with kubectl's
/// columns for common kinds (Name and Age otherwise).
fn respond(result: Result<Value, Response>, table: bool, rt: &ResourceType, store: &Shared) -> Response {
    match result {
        Ok(v) if table => {
            let now = store.read().unwrap_or_else(|e| e.into_inner()).captured_at.unwrap_or_else(chrono::Utc::now);
            axum::Json(as_table(&[&v], json!({}), rt, now)).into_response()
        }
        Ok(v) => axum::Json(v).into_response(),
        Err(resp) => resp,
    }
}

/// Computes a row's cells from an object.
type RowCells<'a> = Box<dyn Fn(&Value) -> Vec<Value> + 'a>;

fn as_table(items: &[&Value], metadata: Value, rt: &ResourceType, now: chrono::DateTime<chrono::Utc>) -> Value {
    let age = |o: &Value| {
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
            .map(|t| crate::units::human_duration((now - t).num_seconds()))
            .unwrap_or_else(|| "<unknown>".into())
    };
    let col = |name: &str, ty: &str| json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": "", "priority": 0});
    let (columns, cells): (Vec<Value>, RowCells<'_>) = match rt.kind.as_str() {
        "Pod" => (
            vec![
                col("Name", "string"),
                col("Ready", "string"),
                col("Status", "string"),
                col("Restarts", "string"),
                col("Age", "string"),
            ],
            Box::new(move |o: &Value| {
                // One definition of STATUS for kubectl and every tool.
                let s = crate::engine::k8s::pod_status(o);
                vec![
                    o["metadata"]["name"].clone(),
                    json!(s.containers),
                    json!(s.status),
                    json!(s.restarts.to_string()),
                    json!(age(o)),
                ]
            }),
        ),
        "Node" => (
            vec![
                col("Name", "string"),
                col("Status", "string"),
                col("Roles", "string"),
                col("Age", "string"),
                col("Version", "string"),
            ],
            Box::new(move |o: &Value| {
                let n = crate::engine::k8s::node_status(o);
                let ready = n.ready == "True";
                let roles: Vec<String> = n.roles.split(',').filter(|r| !r.is_empty()).map(str::to_string).collect();
                vec![
                    o["metadata"]["name"].clone(),
                    json!(format!(
                        "{}{}",
                        if ready { "Ready" } else { "NotReady" },
                        if n.cordoned { ",SchedulingDisabled" } else { "" }
                    )),
                    json!(if roles.is_empty() { "<none>".into() } else { roles.join(",") }),
                    json!(age(o)),
                    o.pointer("/status/nodeInfo/kubeletVersion").cloned().unwrap_or(json!("")),
                ]
            }),
        ),
        "Deployment" => (
            vec![
                col("Name", "string"),
                col("Ready", "string"),
                col("Up-to-date", "integer"),
                col("Available", "integer"),
                col("Age", "string"),
            ],
            Box::new(move |o: &Value| {
                let n = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
                vec![
                    o["metadata"]["name"].clone(),
                    json!(format!("{}/{}", n("/status/readyReplicas"), n("/spec/replicas"))),
                    json!(n("/status/updatedReplicas")),
                    json!(n("/status/availableReplicas")),
                    json!(age(o)),
                ]
            }),
        ),
        _ => (
            vec![col("Name", "string"), col("Age", "string")],
            Box::new(move |o: &Value| vec![o["metadata"]["name"].clone(), json!(age(o))]),
        ),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| json!({"cells": cells(o), "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}}))
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows})
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself, built once
fn list(
    store: &Shared,
    rt: &ResourceType,
    ns: &str,
    q: &BTreeMap<String, String>,
    table: bool,
) -> Result<Response, Response> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| bad_request(format!("unable to parse requirement: {e}")))?;
    let mut fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| bad_request(format!("invalid field selector: {e}")))?;
    fields.check_supported(&rt.group, &rt.kind).map_err(bad_request)?;
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let offset: usize = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => match c.parse() {
            Ok(o) => o,
            Err(_) => return Err(status(StatusCode::GONE, "Expired", "the continue token is not valid".into())),
        },
        None => 0,
    };
    let s = store.read().unwrap_or_else(|e| e.into_inner());
    let key = (rt.group.clone(), rt.version.clone(), rt.plural.clone());
    let empty = BTreeMap::new();
    let all = s.objects.get(&key).unwrap_or(&empty);
    let matching = all
        .iter()
        .filter(|((ons, _), _)| ns.is_empty() || ons == ns)
        .map(|(_, o)| o)
        .filter(|o| labels.matches(o.index()) && fields.matches(o.index()));
    // Items are copied into the answer as the store keeps them (compact JSON text).
    let mut items: Vec<&super::Stored> = Vec::new();
    let mut seen = 0usize;
    let mut more = 0usize;
    for o in matching {
        if seen < offset {
            seen += 1;
            continue;
        }
        if items.len() < limit {
            items.push(o);
        } else {
            more += 1;
        }
        seen += 1;
    }
    let mut metadata = json!({"resourceVersion": s.revision.max(1).to_string()});
    if more > 0 {
        metadata["continue"] = json!((offset + items.len()).to_string());
        metadata["remainingItemCount"] = json!(more);
    }
    if table {
        let now = s.captured_at.unwrap_or_else(chrono::Utc::now);
        let objects: Vec<Value> = items.iter().map(|o| o.value()).collect();
        let objects: Vec<&Value> = objects.iter().collect();
        return Ok(axum::Json(as_table(&objects, metadata, rt, now)).into_response());
    }
    let head = json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": metadata});
    let mut body = head.to_string();
    body.pop(); // the closing brace: items follow
    body.reserve(items.iter().map(|o| o.raw().len() + 1).sum::<usize>() + 12);
    body.push_str(",\"items\":[");
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(o.raw());
    }
    body.push_str("]}");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself, built once
fn get_one(store: &Shared, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, Response> {
    let s = store.read().unwrap_or_else(|e| e.into_inner());
    let key = (rt.group.clone(), rt.version.clone(), rt.plural.clone());
    s.objects
        .get(&key)
        .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
        .map(super::Stored::value)
        .ok_or_else(|| not_found(format!("{} \"{name}\" not found", rt.plural)))
}

fn logs(store: &Shared, ns: &str, pod: &str, q: &BTreeMap<String, String>) -> Response {
    let s = store.read().unwrap_or_else(|e| e.into_inner());
    let Some(obj) = s
        .objects
        .get(&(String::new(), "v1".into(), "pods".into()))
        .and_then(|m| m.get(&(ns.to_string(), pod.to_string())))
    else {
        return not_found(format!("pods \"{pod}\" not found"));
    };
    let obj = &obj.value();
    let containers: Vec<String> = obj
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string)).collect())
        .unwrap_or_default();
    let container = match q.get("container") {
        Some(c) => c.clone(),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return bad_request(format!(
                "a container name must be specified for pod {pod}, choose one of: [{}]",
                containers.join(" ")
            ));
        }
    };
    let previous = q.get("previous").is_some_and(|p| p == "true");
    let entry = s
        .logs
        .get(&(ns.to_string(), pod.to_string(), container.clone()))
        .or_else(|| s.logs.get(&(ns.to_string(), pod.to_string(), String::new())));
    let text = match (entry, previous) {
        (Some(l), false) => l.current.clone(),
        (Some(l), true) => l.previous.clone(),
        (None, _) => None,
    };
    let Some(text) = text else {
        let which = if previous { "previous terminated container" } else { "container" };
        return bad_request(format!("{which} \"{container}\" in pod \"{pod}\" has no logs in this snapshot"));
    };
    // must-gather logs carry the kubelet's timestamps; an API server adds them only when
    // asked (timestamps=true).
    let with_timestamps = q.get("timestamps").is_some_and(|t| t == "true");
    let mut lines: Vec<&str> = text.lines().map(|l| if with_timestamps { l } else { strip_timestamp(l) }).collect();
    if let Some(n) = q.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        lines = lines.split_off(lines.len().saturating_sub(n));
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    ([(header::CONTENT_TYPE, "text/plain")], out).into_response()
}

/// Drop a leading RFC 3339 timestamp and its space (`2026-11-25T11:49:52.293159428Z ...`).
fn strip_timestamp(line: &str) -> &str {
    match line.split_once(' ') {
        Some((first, rest))
            if first.len() >= 20
                && first.as_bytes()[4] == b'-'
                && first.contains('T')
                && chrono::DateTime::parse_from_rfc3339(first).is_ok() =>
        {
            rest
        }
        _ => line,
    }
}

/// Apply `f` to a stored object and answer the result; with `dry`, to a copy that is answered
/// and dropped (the store and its revision are left as they were).
fn with_object<F: FnOnce(&mut Value) -> Result<(), String>>(
    store: &Shared,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    dry: bool,
    f: F,
) -> Response {
    let mut s = store.write().unwrap_or_else(|e| e.into_inner());
    let key = (rt.group.clone(), rt.version.clone(), rt.plural.clone());
    let Some(mut obj) =
        s.objects.get(&key).and_then(|m| m.get(&(ns.to_string(), name.to_string()))).map(super::Stored::value)
    else {
        return not_found(format!("{} \"{name}\" not found", rt.plural));
    };
    if let Err(e) = f(&mut obj) {
        return bad_request(e);
    }
    if dry {
        return axum::Json(obj).into_response();
    }
    s.revision += 1;
    obj["metadata"]["resourceVersion"] = Value::String(s.revision.to_string());
    if let Some(stored) = s.objects.get_mut(&key).and_then(|m| m.get_mut(&(ns.to_string(), name.to_string()))) {
        *stored = super::Stored::new(&obj);
    }
    if rt.group == "apps" && rt.kind == "Deployment" {
        // A changed pod template replaces the pods, as the Deployment controller would.
        super::controller::reconcile_deployment(&mut s, ns, name);
    }
    match s.objects.get(&key).and_then(|m| m.get(&(ns.to_string(), name.to_string()))) {
        Some(obj) => axum::Json(obj.value()).into_response(),
        None => not_found(format!("{} \"{name}\" not found", rt.plural)),
    }
}

fn delete(store: &Shared, rt: &ResourceType, ns: &str, name: &str, dry: bool) -> Response {
    let mut s = store.write().unwrap_or_else(|e| e.into_inner());
    let key = (rt.group.clone(), rt.version.clone(), rt.plural.clone());
    if dry {
        return match s.objects.get(&key).and_then(|m| m.get(&(ns.to_string(), name.to_string()))) {
            Some(o) => axum::Json(o.value()).into_response(),
            None => not_found(format!("{} \"{name}\" not found", rt.plural)),
        };
    }
    match s.objects.get_mut(&key).and_then(|m| m.remove(&(ns.to_string(), name.to_string()))) {
        Some(o) => {
            s.revision += 1;
            axum::Json(o.value()).into_response()
        }
        None => not_found(format!("{} \"{name}\" not found", rt.plural)),
    }
}

fn patch(
    store: &Shared,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
    dry: bool,
) -> Response {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ctype.starts_with("application/json-patch+json") {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "JSON patch is not supported on snapshots; use a merge patch".into(),
        );
    }
    let patch: Value = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("invalid patch body: {e}")),
    };
    let strategic = ctype.starts_with("application/strategic-merge-patch+json");
    with_object(store, rt, ns, name, dry, |obj| {
        if strategic {
            strategic_merge(obj, &patch);
        } else {
            crate::spec::merge_patch(obj, &patch);
        }
        Ok(())
    })
}

/// The common case of a strategic merge patch: objects merge like a JSON merge patch, and
/// lists of named objects (containers, env, ports, volumes) merge item by item on `name`;
/// other lists are replaced.
fn strategic_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (Value::Array(t), Value::Array(p))
            if p.iter().all(|i| i.get("name").is_some()) && t.iter().all(|i| i.get("name").is_some()) =>
        {
            for item in p {
                match t.iter_mut().find(|x| x.get("name") == item.get("name")) {
                    Some(existing) => strategic_merge(existing, item),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn scale_of(rt: &ResourceType, obj: &Value) -> Value {
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": obj.pointer("/metadata/name"), "namespace": obj.pointer("/metadata/namespace")},
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": rt.kind}})
}

fn scale_get(store: &Shared, rt: &ResourceType, ns: &str, name: &str) -> Response {
    let s = store.read().unwrap_or_else(|e| e.into_inner());
    let key = (rt.group.clone(), rt.version.clone(), rt.plural.clone());
    match s.objects.get(&key).and_then(|m| m.get(&(ns.to_string(), name.to_string()))) {
        Some(o) => axum::Json(scale_of(rt, &o.value())).into_response(),
        None => not_found(format!("{} \"{name}\" not found", rt.plural)),
    }
}

fn scale_patch(store: &Shared, rt: &ResourceType, ns: &str, name: &str, body: &Bytes, dry: bool) -> Response {
    let patch: Value = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("invalid patch body: {e}")),
    };
    let Some(replicas) = patch.pointer("/spec/replicas").and_then(Value::as_i64).filter(|r| *r >= 0) else {
        return bad_request("scale patch needs spec.replicas >= 0".into());
    };
    let resp = with_object(store, rt, ns, name, dry, |obj| {
        obj["spec"]["replicas"] = json!(replicas);
        Ok(())
    });
    if !resp.status().is_success() {
        return resp;
    }
    if dry {
        return axum::Json(json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": name, "namespace": ns}, "spec": {"replicas": replicas}}))
        .into_response();
    }
    scale_get(store, rt, ns, name)
}

/// A kube client talking to the router in-process (no socket).
pub fn kube_client(store: Shared) -> kube::Client {
    kube_client_with(store, HeaderMap::new())
}

/// A kube client talking to the router in-process that adds `headers` to every request (a
/// bearer token, impersonation headers), as a client over the network would send them.
pub fn kube_client_with(store: Shared, headers: HeaderMap) -> kube::Client {
    let svc = tower::ServiceBuilder::new()
        .map_request(move |req: http::Request<kube::client::Body>| {
            let mut req = req.map(axum::body::Body::new);
            for (k, v) in &headers {
                req.headers_mut().append(k.clone(), v.clone());
            }
            req
        })
        .service(router(store));
    kube::Client::new(svc, "default")
}

/// A kubeconfig pointing at a served snapshot (no token).
pub fn kubeconfig(url: &str) -> String {
    super::serve::kubeconfig(url, None)
}
