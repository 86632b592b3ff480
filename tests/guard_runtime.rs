//! The run-time request guard end to end: tools that `validate` accepts, run by the binary
//! against loopback Prometheus and HTTP listeners that record every request. A rendered
//! request whose structure an argument changed is refused and nothing reaches the listener;
//! an escaped hostile value is sent, as one value.

use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use serde_json::json;

/// Every request a listener received: method, path and query, and the `x-tenant` header.
type Log = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// A loopback listener answering like Prometheus (and a JSON API) that records requests.
async fn recorder() -> (String, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let app = Router::new().fallback(move |req: Request| {
        let seen = seen.clone();
        async move {
            let tenant = req.headers().get("x-tenant").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            seen.lock().unwrap().push((req.method().to_string(), req.uri().to_string(), tenant));
            axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": []}, "items": []}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

fn specs(url: &str) -> String {
    format!(
        r#"
apiVersion: cluster-health-mcp/v1
kind: Backend
metadata: {{name: prom}}
spec: {{type: prometheus, url: "{url}"}}
---
apiVersion: cluster-health-mcp/v1
kind: Backend
metadata: {{name: api}}
spec: {{type: http, baseUrl: "{url}"}}
---
apiVersion: cluster-health-mcp/v1
kind: Mode
metadata: {{name: test}}
spec:
  backends: {{prom: {{}}, api: {{}}}}
---
# The static lint accepts this (promql_string is last), but a quoted label name is an
# identifier, not a value: the caller would pick the query's grouping.
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {{name: count-by-label}}
spec:
  description: Count targets in a namespace grouped by a label the caller picks.
  input:
    label: {{type: string, required: true}}
    ns: {{type: string, required: true}}
  steps:
    counts:
      prometheus: {{backend: prom, query: 'count by ({{{{ label | promql_string }}}}) (up{{namespace={{{{ ns | promql_string }}}}}})'}}
  output:
    text: "{{{{ counts | tojson }}}}"
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {{name: up-in-namespace}}
spec:
  description: Targets of a namespace.
  input:
    ns: {{type: string, required: true}}
  steps:
    up:
      prometheus: {{backend: prom, query: 'up{{namespace={{{{ ns | promql_string }}}}}}'}}
  output:
    text: "{{{{ up | tojson }}}}"
---
# The lint lets declared inputs into headers; a line break in the value is refused at run time.
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {{name: tenant-items}}
spec:
  description: Items of a tenant.
  input:
    tenant: {{type: string, required: true}}
  steps:
    items:
      http: {{backend: api, path: /api/items, headers: {{X-Tenant: "{{{{ tenant }}}}"}}}}
  output:
    text: "{{{{ items | tojson }}}}"
"#
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `cluster-health-mcp --replace-catalogue --specs DIR --mode test call TOOL --args ARGS`.
async fn call(dir: &std::path::Path, tool: &str, args: serde_json::Value) -> Run {
    let (dir, tool) = (dir.to_path_buf(), tool.to_string());
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_cluster-health-mcp"))
            .args(["--replace-catalogue", "--specs"])
            .arg(&dir)
            .args(["--mode", "test", "call", &tool, "--args", &args.to_string()])
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

async fn setup() -> (tempfile::TempDir, Log) {
    let (url, log) = recorder().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("specs.yaml"), specs(&url)).unwrap();
    (dir, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_lint_accepts_the_specs_the_runtime_guard_refuses() {
    let (dir, _) = setup().await;
    let out = Command::new(env!("CARGO_BIN_EXE_cluster-health-mcp"))
        .args(["validate", "--replace-catalogue", "--specs"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argument_in_a_label_name_position_is_refused_and_nothing_is_sent() {
    let (dir, log) = setup().await;
    let run = call(dir.path(), "count-by-label", json!({"label": "job", "ns": "a"})).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("request field `query` of step `counts` (from label, ns): refused before sending"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("where only values may go (a spec error: tell the user)"), "{}", run.stderr);
    assert!(log.lock().unwrap().is_empty(), "sent: {:?}", log.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escaped_hostile_value_is_sent_as_one_value() {
    let (dir, log) = setup().await;
    let run = call(dir.path(), "up-in-namespace", json!({"ns": "a\"} or vector(1) #"})).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    let url = reqwest::Url::parse(&format!("http://x{}", log[0].1)).unwrap();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(log[0].0, "GET");
    assert_eq!(url.path(), "/api/v1/query");
    assert!(query.contains(&("query".into(), r#"up{namespace="a\"} or vector(1) #"}"#.into())), "{query:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_value_with_a_line_break_is_refused_and_nothing_is_sent() {
    let (dir, log) = setup().await;
    let run = call(dir.path(), "tenant-items", json!({"tenant": "t1\r\nX-Admin: yes"})).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("request field `headers/X-Tenant` of step `items` (from tenant): refused before sending"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(r"t1\r\nX-Admin: yes"), "the value is quoted escaped: {}", run.stderr);
    assert!(log.lock().unwrap().is_empty(), "sent: {:?}", log.lock().unwrap());
    // The same tool with a plain value reaches the listener, so the empty log above means
    // the guard stopped the request, not that the listener was unreachable.
    let run = call(dir.path(), "tenant-items", json!({"tenant": "t1"})).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0].1.as_str(), log[0].2.as_deref()), ("/api/items", Some("t1")));
}
