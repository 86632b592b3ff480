//! Regression tests for the wrong answers listed in issue 9 ("answers that are always true").
//! Each one fails on the catalogue before the fix: OOMKilled never counted, counts that
//! disagreed with the rows after the response-budget cut, logs that kept the oldest lines,
//! nodes without `status.allocatable`, "ready nodes" that summed every node, "memory 0%"
//! without data, capacity trends without allocatable, list tools without a total and a
//! continuation, a pod status computed three ways, the series cap applied after the whole
//! download. Fixtures: `tests/fixtures/` (README there).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cluster_health_mcp::engine::{Active, invoke};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped catalogue on a snapshot directory, optionally with a Prometheus URL.
fn active_on(snapshot: &Path, prometheus: Option<&str>) -> Active {
    let dir = tempfile::tempdir().unwrap().keep();
    let prom = prometheus.map(|u| format!("\n    prometheus: {{url: \"{u}\", timeout: 5s}}")).unwrap_or_default();
    std::fs::write(
        dir.join("mode.yaml"),
        format!(
            "apiVersion: cluster-health-mcp/v1\nkind: Mode\nmetadata: {{name: regression}}\nspec:\n  backends:\n    \
             kubernetes: {{source: {{kubeconfig: null, snapshot: {{path: \"{}\"}}}}}}{prom}\n",
            snapshot.display()
        ),
    )
    .unwrap();
    let paths = [root().join("tools.d"), root().join("modes"), dir];
    let reg = cluster_health_mcp::engine::compile::load_registry(&paths)
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    Active::new(Arc::new(reg), "regression").unwrap()
}

fn fixture_cluster() -> PathBuf {
    root().join("tests/fixtures/regression-cluster")
}

async fn call(active: &Active, tool: &str, args: Value) -> invoke::Outcome {
    let t = active.tools.get(tool).unwrap_or_else(|| panic!("tool {tool} is exposed"));
    let args = args.as_object().cloned().unwrap_or_default();
    invoke::run(active, &t.proc, &args, None, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{tool} {args:?} failed: {e}"))
}

#[tokio::test]
async fn oomkilled_pods_are_counted_by_cluster_health_on_a_generated_cluster() {
    let dir = tempfile::tempdir().unwrap();
    cluster_health_mcp::snapshot::generate::write(dir.path(), 20, 3000, 10, 7).unwrap();
    // Truth from the files: not-ready pods whose container was last OOMKilled.
    let mut truth = 0;
    for ns in std::fs::read_dir(dir.path().join("namespaces")).unwrap() {
        let list: Value =
            serde_json::from_slice(&std::fs::read(ns.unwrap().path().join("core/pods.json")).unwrap()).unwrap();
        truth += list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"] == "OOMKilled")
            .filter(|p| p["status"]["conditions"][0]["status"] == "False")
            .count();
    }
    assert!(truth > 10, "the generator makes about 1% OOMKilled pods, got {truth}");
    let active = active_on(dir.path(), None);
    let out = call(&active, "get-cluster-health", json!({})).await;
    assert_eq!(out.structured["pods"]["problems"]["OOMKilled"], truth, "{}", out.structured["pods"]);
    assert!(out.text.contains(&format!("OOMKilled: {truth}")), "{}", out.text);
    // list-pods shows the same pods with kubectl's STATUS and the last termination.
    let pods = call(&active, "list-pods", json!({"problems_only": true, "limit": 500})).await;
    assert!(pods.text.contains("CrashLoopBackOff") && pods.text.contains("(last: OOMKilled)"), "{}", pods.text);
}

#[tokio::test]
async fn an_oomkilled_crashloop_is_named_in_the_health_reasons() {
    let active = active_on(&fixture_cluster(), None);
    let out = call(&active, "get-cluster-health", json!({})).await;
    assert_eq!(out.structured["pods"]["problems"], json!({"OOMKilled": 1}));
    assert!(out.text.contains("1 pod(s) crashing or not starting (OOMKilled: 1)"), "{}", out.text);
    assert!(out.text.contains("app/oom-1: OOMKilled"), "{}", out.text);
}

#[tokio::test]
async fn node_counts_survive_the_response_budget_cut_and_the_continue_token_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    cluster_health_mcp::snapshot::generate::write(dir.path(), 300, 10, 1, 3).unwrap();
    let mut active = active_on(dir.path(), None);
    active.response_budget = 8_000;
    for limit in [100, 250] {
        let out = call(&active, "list-nodes", json!({"limit": limit})).await;
        let s = &out.structured;
        let shown = s["nodes"].as_array().unwrap().len();
        assert!(shown < limit, "the answer was cut ({shown} of {limit} rows)");
        assert_eq!(s["returned"], limit, "counted before the cut");
        let ready = s["ready"].as_u64().unwrap() as usize;
        assert!(ready <= limit, "ready {ready} of at most {limit}");
        let first = out.text.lines().next().unwrap();
        assert!(first.starts_with(&format!("{ready}/{limit} nodes ready")), "{first}");
        assert!(s["continue"].as_str().is_some_and(|c| !c.is_empty()), "continue kept: {}", s["continue"]);
        assert!(out.text.contains("[cut to fit the response budget: nodes first"), "{}", out.text);
        assert!(out.text.contains(&format!("ask again with limit={shown}")), "{}", out.text);
    }
}

#[tokio::test]
async fn cut_logs_keep_the_newest_lines_and_say_so() {
    let mut active = active_on(&fixture_cluster(), None);
    active.response_budget = 6_000;
    let out = call(
        &active,
        "get-pod-logs",
        json!({"namespace": "app", "name": "logger-1", "tail": 400, "timestamps": false}),
    )
    .await;
    let lines = out.structured["lines"].as_array().unwrap();
    assert!(lines.len() < 400, "cut");
    assert!(lines.last().unwrap().as_str().unwrap().ends_with("line 0400 of 400"), "newest kept: {lines:?}");
    assert_eq!(out.structured["returned"], 400);
    let text_lines: Vec<&str> = out.text.lines().collect();
    assert!(text_lines[0].starts_with("400 line(s) from app/logger-1"), "{}", text_lines[0]);
    assert!(text_lines.last().unwrap().ends_with("line 0400 of 400"), "{}", out.text);
    assert!(out.text.contains("[cut to fit the response budget: the last"), "{}", out.text);
}

#[tokio::test]
async fn nodes_without_allocatable_do_not_fail_list_nodes_or_get_node() {
    let active = active_on(&fixture_cluster(), None);
    let list = call(&active, "list-nodes", json!({})).await;
    assert!(list.text.contains("trimmed-1  Ready  worker  cpu unknown  mem unknown"), "{}", list.text);
    let node = call(&active, "get-node", json!({"name": "trimmed-1"})).await;
    assert_eq!(node.structured["allocatable"], json!({"cpu": null, "memory_bytes": null, "pods": null}));
    assert!(node.text.contains("the node reports no allocatable resources"), "{}", node.text);
}

#[tokio::test]
async fn pod_capacity_counts_only_ready_schedulable_nodes() {
    let active = active_on(&fixture_cluster(), None);
    let out = call(&active, "calculate-pod-capacity", json!({"include_trending": false})).await;
    let s = &out.structured;
    // good-1 (4 CPU) and trimmed-1 (no allocatable) are ready; down-1 is not.
    assert_eq!(s["capacity"]["cpu"], 4.0, "{s}");
    // On ready nodes: web-1 (1) and oom-1 (0.5); web-2 sits on the NotReady node.
    assert_eq!(s["used"]["cpu"], 1.5, "{s}");
    assert!(out.text.contains("Capacity of 2 ready, schedulable node(s) of 3"), "{}", out.text);
}

#[tokio::test]
async fn every_list_tool_pages_with_limit_total_and_continue() {
    let active = active_on(&root().join("tests/snapshots/demo-cluster"), None);
    // (tool, args) with a limit smaller than what the demo cluster holds.
    let cases = [
        ("list-pods", json!({"limit": 5})),
        ("list-nodes", json!({"limit": 2})),
        ("list-events", json!({"limit": 3})),
        ("list-workloads", json!({"limit": 4})),
        ("list-namespaces", json!({"limit": 2})),
        ("list-models", json!({"limit": 1})),
        ("list-resources", json!({"api_version": "v1", "kind": "Service", "limit": 2})),
    ];
    for (tool, args) in cases {
        let first = call(&active, tool, args.clone()).await;
        let s = &first.structured;
        let token = s["continue"].as_str().unwrap_or_else(|| panic!("{tool}: continue token: {s}")).to_string();
        let total = s["total"].as_u64().unwrap_or_else(|| panic!("{tool}: total: {s}"));
        let limit = args["limit"].as_u64().unwrap();
        assert!(total > limit, "{tool}: total {total} counts beyond the page");
        assert!(first.text.contains(&format!("continue={token}")), "{tool}: {}", first.text);
        let mut next = args.clone();
        next["continue"] = json!(token);
        let second = call(&active, tool, next).await;
        let rows = |o: &Value| -> Vec<Value> {
            o.as_object()
                .unwrap()
                .values()
                .find_map(|v| v.as_array().filter(|a| !a.is_empty()).cloned())
                .unwrap_or_default()
        };
        assert_ne!(rows(&first.structured), rows(&second.structured), "{tool}: the second page differs");
    }
}

/// A recorded Prometheus: answers from tests/fixtures/prometheus-missing-series.json.
async fn recorded_prometheus() -> String {
    use axum::extract::{Query, Request};
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/prometheus-missing-series.json")).unwrap(),
    )
    .unwrap();
    let answers = Arc::new(recorded["answers"].as_array().unwrap().clone());
    let app = axum::Router::new().fallback(
        move |Query(q): Query<std::collections::HashMap<String, String>>, req: Request| {
            let answers = answers.clone();
            async move {
                let query = q.get("query").cloned().unwrap_or_default();
                let data = answers
                    .iter()
                    .find(|a| a["path"] == req.uri().path() && query.contains(a["contains"].as_str().unwrap()))
                    .map(|a| a["data"].clone())
                    .unwrap_or(json!({"resultType": "vector", "result": []}));
                axum::Json(json!({"status": "success", "data": data}))
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn missing_monitoring_data_is_unknown_never_zero_or_an_error() {
    let url = recorded_prometheus().await;
    let active = active_on(&fixture_cluster(), Some(&url));
    let util = call(&active, "get-node-utilization", json!({})).await;
    assert_eq!(util.structured["cluster"]["memory_percent"], Value::Null);
    assert!(util.text.contains("memory unknown"), "{}", util.text);
    assert!(!util.text.contains("memory 0%"), "{}", util.text);

    let trends = call(&active, "get-capacity-trends", json!({})).await;
    let memory = &trends.structured["resources"][1];
    assert_eq!(memory["unit"], "GiB");
    assert_eq!(memory["current"], 9.75, "8 GiB + 28 x 64 MiB, in GiB: {memory}");
    assert_eq!(memory["trend_per_day"], 0.25, "64 MiB per 6 h, in GiB/day: {memory}");
    assert!(trends.text.contains("memory: 9.75 GiB now, trend 0.25 GiB/day"), "{}", trends.text);
    assert!(trends.text.contains("no data: allocatable"), "{}", trends.text);

    let alerts = call(&active, "list-alerts", json!({"state": "all"})).await;
    assert!(alerts.text.starts_with("3 alert(s) (firing: 2, pending: 1)"), "{}", alerts.text);
    let page = call(&active, "list-alerts", json!({"state": "all", "limit": 2})).await;
    assert_eq!((page.structured["total"].clone(), page.structured["continue"].clone()), (json!(3), json!("2")));
}

/// A Prometheus that answers any query with an endless vector (chunked); returns its URL and
/// the number of series it sent before the client hung up.
async fn endless_prometheus() -> (String, tokio::task::JoinHandle<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut req = [0u8; 8192];
        let _ = sock.read(&mut req).await;
        let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        let start = r#"{"status":"success","data":{"resultType":"vector","result":["#;
        if sock.write_all(format!("{head}{}", chunk(start)).as_bytes()).await.is_err() {
            return 0;
        }
        let mut sent = 0usize;
        while sent < 100_000_000 {
            let batch: String =
                (0..100).map(|i| format!(r#"{{"metric":{{"pod":"p{}"}},"value":[1,"1"]}},"#, sent + i)).collect();
            if sock.write_all(chunk(&batch).as_bytes()).await.is_err() {
                break;
            }
            sent += 100;
        }
        sent
    });
    (url, server)
}

#[tokio::test]
async fn the_series_cap_stops_the_download_instead_of_waiting_for_it() {
    // Before: the cap was checked after the whole answer was read, so an endless (or huge)
    // answer was downloaded and parsed in full first.
    let (url, server) = endless_prometheus().await;
    let active = active_on(&fixture_cluster(), Some(&url));
    let t = active.tools.get("query-prometheus").unwrap();
    let args = json!({"query": "up{job=\"node\"}"}).as_object().cloned().unwrap();
    let cancel = CancellationToken::new();
    let run = invoke::run(&active, &t.proc, &args, None, &cancel);
    let err = tokio::time::timeout(std::time::Duration::from_secs(20), run)
        .await
        .expect("the answer never ends: only a cap applied while streaming ends the call")
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 200 series") && err.contains("the true count is unknown"), "{err}");
    let sent = server.await.unwrap();
    assert!(sent < 100_000_000, "the server sent everything ({sent} series): nothing stopped reading");
}

#[tokio::test]
async fn list_pods_cluster_health_and_the_kubectl_table_agree_on_every_pod() {
    // Before: a pod's status was computed three ways (list-pods, get-cluster-health, the
    // snapshot's kubectl table), so tools disagreed about the same pod.
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    cluster_health_mcp::snapshot::generate::write(dir.path(), 4, 600, 5, 11).unwrap();
    let active = active_on(dir.path(), None);
    let mut listed = std::collections::BTreeMap::new();
    // Pages small enough for the response budget (a cut page says so and skips rows).
    let mut args = json!({"limit": 50});
    loop {
        let page = call(&active, "list-pods", args.clone()).await;
        for p in page.structured["pods"].as_array().unwrap() {
            listed.insert(format!("{}/{}", p["namespace"].as_str().unwrap(), p["name"].as_str().unwrap()), p.clone());
        }
        match page.structured["continue"].as_str() {
            Some(token) if !token.is_empty() => args["continue"] = json!(token),
            _ => break,
        }
    }
    assert_eq!(listed.len(), 600, "every pod listed");

    // kubectl's table, from the snapshot API server.
    let store = cluster_health_mcp::snapshot::Store::load(dir.path()).unwrap();
    let app = cluster_health_mcp::snapshot::api::router(Arc::new(std::sync::RwLock::new(store)));
    let req = axum::http::Request::get("/api/v1/pods")
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    let table: Value = serde_json::from_slice(&body).unwrap();
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 600);
    for row in rows {
        let ns = row["object"]["metadata"]["namespace"].as_str().unwrap();
        let name = row["cells"][0].as_str().unwrap();
        let pod = &listed[&format!("{ns}/{name}")];
        assert_eq!(
            (&pod["ready"], &pod["status"], pod["restarts"].to_string()),
            (&row["cells"][1], &row["cells"][2], row["cells"][3].as_str().unwrap().to_string()),
            "{ns}/{name}: list-pods and kubectl's table agree"
        );
    }
    // get-cluster-health names the same status for the pods it shows.
    let health = call(&active, "get-cluster-health", json!({})).await;
    let offenders = health.structured["details"]["top_offenders"].as_array().unwrap();
    assert!(!offenders.is_empty(), "the generated cluster has offenders: {}", health.text);
    for o in offenders {
        let name = o["name"].as_str().unwrap();
        assert_eq!(o["status"], listed[name]["status"], "{name}: get-cluster-health and list-pods agree");
    }
}
