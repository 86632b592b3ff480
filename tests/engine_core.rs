//! Engine core 2.0 behaviours, end to end through the executor against loopback servers:
//! write classification, fail-fast, error kinds and their advice, clipped error texts, and
//! run-time request checks that refuse before anything is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{any, get};
use cluster_health_mcp::backends::{Effect, ErrorKind};
use cluster_health_mcp::engine::compile::load_registry;
use cluster_health_mcp::engine::{Active, invoke};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

/// A loopback server: `/slow` never answers in time, `/echo/{x}` answers 404 quoting the
/// path, anything else counts the request and answers `{}`.
async fn server(hits: Arc<AtomicUsize>) -> String {
    let counted = hits.clone();
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(20)).await;
                "late"
            }),
        )
        .route(
            "/echo/{x}",
            get(|Path(x): Path<String>| async move { (StatusCode::NOT_FOUND, format!("no such thing: {x}")) }),
        )
        .fallback(any(move || {
            let c = counted.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"next": "b/../c"}))
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Backends `api` (live) and `dead`, mode `test`, plus the given tool documents.
fn registry(live: &str, tools: &str) -> Result<cluster_health_mcp::engine::Registry, String> {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
apiVersion: cluster-health-mcp/v1
kind: Backend
metadata: {{name: api}}
spec: {{type: http, baseUrl: "{live}"}}
---
apiVersion: cluster-health-mcp/v1
kind: Backend
metadata: {{name: dead}}
spec: {{type: http, baseUrl: "http://127.0.0.1:{}"}}
---
apiVersion: cluster-health-mcp/v1
kind: Mode
metadata: {{name: test}}
spec:
  backends: {{api: {{}}, dead: {{}}}}
{tools}"#,
        dead_port()
    );
    std::fs::write(dir.path().join("specs.yaml"), text).unwrap();
    load_registry(&[dir.path().to_path_buf()])
        .map_err(|d| d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))
}

async fn call(active: &Active, tool: &str, args: Value) -> Result<invoke::Outcome, invoke::Error> {
    let t = active.tools.get(tool).unwrap_or_else(|| panic!("no tool {tool}")).clone();
    let args: Map<String, Value> = args.as_object().cloned().unwrap_or_default();
    invoke::run(active, &t.proc, &args, None, &CancellationToken::new()).await
}

const DELETE_TOOL: &str = r#"
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: close-incident}
spec:
  description: Close an incident.
  annotations: ANNOTATIONS
  input:
    id: {type: string, pattern: "^[a-z0-9-]+$", required: true}
  steps:
    closed:
      http: {backend: api, method: DELETE, path: "/api/v1/incidents/{{ id | path_segment }}"}
"#;

#[tokio::test]
async fn an_http_delete_tool_cannot_be_advertised_read_only() {
    let live = server(Arc::default()).await;
    // Not annotated: refused, naming the method.
    let err = registry(&live, &DELETE_TOOL.replace("ANNOTATIONS", "{}")).err().expect("refused");
    assert!(err.contains("method `DELETE` changes things but the tool is not annotated destructive"), "{err}");
    // Annotated readOnly (even with destructive): refused.
    let err = registry(&live, &DELETE_TOOL.replace("ANNOTATIONS", "{readOnly: true, destructive: true}"))
        .err()
        .expect("refused");
    assert!(err.contains("readOnly"), "{err}");
    // Annotated destructive: valid, and never advertised read-only.
    let reg = registry(&live, &DELETE_TOOL.replace("ANNOTATIONS", "{destructive: true}")).unwrap();
    let tool = reg.tools.get("close-incident").unwrap();
    assert!(!tool.hints.read_only && tool.hints.destructive);
    assert_eq!(tool.proc.effect(), Effect::Write);
    let active = Active::new(Arc::new(reg), "test").unwrap();
    let exposure = active.exposure.iter().find(|e| e.name == "close-incident").unwrap();
    assert_eq!(exposure.effect, Some(Effect::Write));
    assert_eq!(exposure.effects, vec!["step closed: method `DELETE` writes".to_string()]);
}

#[tokio::test]
async fn a_post_declared_side_effect_free_stays_read_only_and_says_so() {
    let live = server(Arc::default()).await;
    let tool = r#"
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: score}
spec:
  description: Ask a model.
  steps:
    scored:
      http: {backend: api, method: POST, sideEffectFree: true, path: /v1/models/m:predict, body: {instances: [[1, 2]]}}
"#;
    let reg = registry(&live, tool).unwrap();
    let t = reg.tools.get("score").unwrap();
    assert!(t.hints.read_only);
    assert_eq!(t.proc.effect(), Effect::SideEffectFree);
    assert_eq!(t.proc.effect_notes(), vec!["step scored: method `POST`, side-effect free".to_string()]);
}

#[tokio::test]
async fn a_failing_required_step_cancels_its_slow_siblings() {
    let live = server(Arc::default()).await;
    let tool = r#"
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: two}
spec:
  description: One dead, one slow.
  steps:
    slow:
      timeout: 20s
      http: {backend: api, path: /slow}
    broken:
      http: {backend: dead, path: /x}
"#;
    let active = Active::new(Arc::new(registry(&live, tool).unwrap()), "test").unwrap();
    let started = Instant::now();
    let err = call(&active, "two", json!({})).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the call waited {took:?} for a sibling after a required step failed");
    match err {
        invoke::Error::Step { step, kind, .. } => {
            assert_eq!(step, "broken");
            assert_eq!(kind, ErrorKind::Unreachable);
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_not_found_keeps_its_kind_and_quotes_a_huge_argument_clipped() {
    let live = server(Arc::default()).await;
    let tool = r#"
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: lookup}
spec:
  description: Look a thing up.
  input:
    name: {type: string, required: true}
  steps:
    thing:
      http: {backend: api, path: "/echo/{{ name | path_segment }}"}
"#;
    let active = Active::new(Arc::new(registry(&live, tool).unwrap()), "test").unwrap();
    // 20 kB reaches the server, which answers 404 quoting it.
    let err = call(&active, "lookup", json!({"name": "x".repeat(20_000)})).await.unwrap_err();
    let text = format!("{err}. {}", err.advice());
    assert!(matches!(err, invoke::Error::Step { kind: ErrorKind::NotFound, .. }), "{err:?}");
    assert!(text.contains("HTTP 404"), "{text}");
    assert!(text.contains("does not exist"), "the advice names the kind: {text}");
    assert!(text.len() < 3_000, "the error echoes the argument in full: {} bytes", text.len());
    // 100 kB makes a URL no client can send: an invalid request, not "could not be reached".
    let err = call(&active, "lookup", json!({"name": "x".repeat(100_000)})).await.unwrap_err();
    let text = format!("{err}. {}", err.advice());
    assert!(matches!(err, invoke::Error::Step { kind: ErrorKind::InvalidRequest, .. }), "{err:?}");
    assert!(text.len() < 3_000, "the error echoes the argument in full: {} bytes", text.len());
}

#[tokio::test]
async fn a_mistyped_pod_name_is_not_found_not_unavailable() {
    let reg = cluster_health_mcp::engine::compile::load_paths_or_embedded(None).unwrap();
    let active = Active::new(Arc::new(reg), "demo").unwrap();
    let err = call(&active, "get-pod", json!({"namespace": "default", "name": "no-such-pod"})).await.unwrap_err();
    assert!(matches!(err, invoke::Error::Step { kind: ErrorKind::NotFound, .. }), "{err:?}");
    assert!(err.advice().contains("list first"), "{}", err.advice());
}

#[tokio::test]
async fn step_results_reach_a_later_path_escaped_and_checked() {
    let hits = Arc::new(AtomicUsize::new(0));
    let live = server(hits.clone()).await;
    // Step results are untrusted: a value from the first answer reaches the second request's
    // path. `path_segment` keeps it one segment; the run-time check proves it per call.
    let tool = r#"
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: chained}
spec:
  description: Chained lookups.
  input:
    kind: {type: string, enum: [pods, nodes], default: pods}
  steps:
    first:
      http: {backend: api, path: "/list/{{ kind }}"}
    second:
      http: {backend: api, path: "/get/{{ first.next | path_segment }}"}
"#;
    let active = Active::new(Arc::new(registry(&live, tool).unwrap()), "test").unwrap();
    call(&active, "chained", json!({})).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_run_time_check_refuses_what_the_static_lint_let_through_and_nothing_is_sent() {
    let hits = Arc::new(AtomicUsize::new(0));
    let live = server(hits.clone()).await;
    // A free-text name passes the static lint (names are checked by value at run time);
    // kube would put `?` and `,` into the URL unencoded. The value is refused before any
    // request, discovery included, reaches the API server.
    let text = format!(
        r#"
apiVersion: cluster-health-mcp/v1
kind: Backend
metadata: {{name: kubernetes}}
spec: {{type: kubernetes, source: {{server: {{url: "{live}"}}}}}}
---
apiVersion: cluster-health-mcp/v1
kind: Mode
metadata: {{name: test}}
spec:
  backends: {{kubernetes: {{}}}}
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {{name: pod}}
spec:
  description: One pod.
  input:
    namespace: {{type: string, required: true}}
    name: {{type: string, required: true}}
  steps:
    pod:
      kubernetes: {{verb: get, resource: {{apiVersion: v1, kind: Pod}}, namespace: "{{{{ namespace }}}}", name: "{{{{ name }}}}"}}
"#
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("specs.yaml"), text).unwrap();
    let reg = load_registry(&[dir.path().to_path_buf()]).unwrap_or_else(|d| {
        panic!("the static lint refused it: {}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))
    });
    let active = Active::new(Arc::new(reg), "test").unwrap();
    for (ns, name) in
        [("default", "web?watch=true"), ("default", "a,b"), ("kube-system/../x", "web"), ("default", "%2F")]
    {
        let err = call(&active, "pod", json!({"namespace": ns, "name": name})).await.unwrap_err();
        assert!(matches!(err, invoke::Error::Step { kind: ErrorKind::Refused, .. }), "{ns}/{name}: {err:?}");
        assert!(err.to_string().contains("refused before sending"), "{err}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a refused request reached the backend");
}
