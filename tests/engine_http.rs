//! End to end through the executor: YAML tool -> http backend -> local test server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::{Json, Router, routing::get};
use cluster_health_mcp::engine::{Active, invoke};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

async fn test_server() -> String {
    let app = Router::new()
        .route(
            "/api/v1/incidents",
            get(|q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                let status = q.get("status").cloned().unwrap_or_default();
                Json(json!({"incidents": [
                    {"id": "inc-1", "severity": "high", "status": status},
                    {"id": "inc-2", "severity": "low", "status": status},
                    {"id": "inc-3", "severity": "high", "status": status}
                ], "total": 3}))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Json(json!({}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A loopback port with nothing listening.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn specs(live: &str, dead: u16) -> String {
    format!(
        r#"
apiVersion: cluster-health-mcp/v1
kind: Backend
metadata: {{name: engine}}
spec: {{type: http, baseUrl: "{live}"}}
---
apiVersion: cluster-health-mcp/v1
kind: Backend
metadata: {{name: models}}
spec: {{type: http, baseUrl: "http://127.0.0.1:{dead}"}}
---
apiVersion: cluster-health-mcp/v1
kind: Mode
metadata: {{name: test}}
spec:
  backends: {{engine: {{}}, models: {{}}}}
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {{name: incident-overview}}
spec:
  description: Incidents plus model status (optional).
  input:
    status: {{type: string, enum: [active, completed], default: active}}
  steps:
    incidents:
      http: {{backend: engine, path: /api/v1/incidents, query: {{status: "{{{{ status }}}}"}}}}
      select: $.incidents[*]
    models:
      optional: true
      timeout: 1s
      http: {{backend: models, path: /v1/models}}
    slow:
      optional: true
      timeout: 500ms
      http: {{backend: engine, path: /slow}}
  output:
    structured:
      count: incidents | length
      by_severity: incidents | count_by('severity')
      statuses: incidents | map(attribute='status') | unique | list
      models: models
    text: "{{{{ count }}}} incidents ({{{{ by_severity.high }}}} high); models: {{{{ sections.models.status }}}}"
"#
    )
}

#[tokio::test]
async fn optional_dead_step_degrades_while_live_step_answers() {
    let live = test_server().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("specs.yaml"), specs(&live, dead_port())).unwrap();
    let reg = cluster_health_mcp::engine::compile::load_registry(&[dir.path().to_path_buf()])
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    let active = Active::new(Arc::new(reg), "test").unwrap();
    let tool = active.tools.get("incident-overview").unwrap().clone();

    let started = Instant::now();
    let out = invoke::run(&active, &tool.proc, &serde_json::Map::new(), None, &CancellationToken::new()).await.unwrap();
    let elapsed = started.elapsed();

    let s = &out.structured;
    assert_eq!(s["count"], 3);
    assert_eq!(s["by_severity"], json!({"high": 2, "low": 1}));
    assert_eq!(s["statuses"], json!(["active"]), "the default argument reached the query string");
    assert_eq!(s["models"], Value::Null);
    assert_eq!(s["sections"]["models"]["status"], "unavailable");
    assert!(s["sections"]["models"]["reason"].as_str().unwrap().contains("could not be reached"), "{s}");
    assert_eq!(s["sections"]["slow"]["status"], "unavailable");
    assert!(s["sections"]["slow"]["reason"].as_str().unwrap().contains("within"), "{s}");
    assert_eq!(out.text, "3 incidents (2 high); models: unavailable");
    // Steps run concurrently: the slow step's 500ms timeout bounds the call, not the sum.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test]
async fn required_step_failure_fails_the_call_with_the_backend_named() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dead_port();
    std::fs::write(dir.path().join("specs.yaml"), specs(&format!("http://127.0.0.1:{dead}"), dead)).unwrap();
    let reg = cluster_health_mcp::engine::compile::load_registry(&[dir.path().to_path_buf()]).unwrap();
    let active = Active::new(Arc::new(reg), "test").unwrap();
    let tool = active.tools.get("incident-overview").unwrap().clone();
    let err =
        invoke::run(&active, &tool.proc, &serde_json::Map::new(), None, &CancellationToken::new()).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("step `incidents` failed: backend `engine` (GET http://127.0.0.1:"), "{msg}");
    assert!(msg.contains("could not be reached"), "{msg}");
    assert!(
        matches!(err, invoke::Error::Step { kind: cluster_health_mcp::backends::ErrorKind::Unreachable, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn cancelling_a_call_stops_waiting_for_its_backends() {
    let live = test_server().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = format!(
        r#"
apiVersion: cluster-health-mcp/v1
kind: Backend
metadata: {{name: engine}}
spec: {{type: http, baseUrl: "{live}", timeout: 30s}}
---
apiVersion: cluster-health-mcp/v1
kind: Mode
metadata: {{name: test}}
spec: {{backends: {{engine: {{}}}}}}
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {{name: slow}}
spec:
  description: Waits on a backend that answers after 10 s.
  steps:
    wait: {{http: {{backend: engine, path: /slow}}}}
"#
    );
    std::fs::write(dir.path().join("specs.yaml"), spec).unwrap();
    let reg = cluster_health_mcp::engine::compile::load_registry(&[dir.path().to_path_buf()]).unwrap();
    let active = Active::new(Arc::new(reg), "test").unwrap();
    let tool = active.tools.get("slow").unwrap().clone();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let err = invoke::run(&active, &tool.proc, &serde_json::Map::new(), None, &cancel).await.unwrap_err();
    assert!(matches!(err, invoke::Error::Cancelled), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "cancelled promptly: {:?}", started.elapsed());
}
