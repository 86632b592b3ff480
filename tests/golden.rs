//! Golden outputs: every shipped tool on the demo cluster snapshot (structured result and
//! text), plus get-cluster-health checked against an independent computation from the
//! snapshot files. Bless changes with `GOLDEN=overwrite cargo test --test golden` and
//! review the diff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cluster_health_mcp::engine::{Active, invoke};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo() -> Active {
    let reg = cluster_health_mcp::engine::compile::load_registry(&[root().join("tools.d"), root().join("modes")])
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    Active::new(Arc::new(reg), "demo").unwrap()
}

async fn call(active: &Active, tool: &str, args: Value) -> Result<invoke::Outcome, String> {
    let t = active.tools.get(tool).unwrap_or_else(|| panic!("tool {tool} is exposed in demo"));
    let args = args.as_object().cloned().unwrap_or_default();
    invoke::run(active, &t.proc, &args, None, &CancellationToken::new()).await.map_err(|e| e.to_string())
}

/// (golden name, tool, arguments)
fn cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("get-cluster-health", "get-cluster-health", json!({})),
        ("get-cluster-health-brief", "get-cluster-health", json!({"include_details": false})),
        ("list-pods", "list-pods", json!({"limit": 20})),
        ("list-pods-problems", "list-pods", json!({"problems_only": true, "limit": 100})),
        ("list-pods-payments-running", "list-pods", json!({"namespace": "payments", "phase": "Running"})),
        ("list-pods-page-2", "list-pods", json!({"limit": 20, "continue": "20"})),
        ("list-pods-by-label", "list-pods", json!({"label_selector": "app in (payments-api)"})),
        ("get-pod-crashloop", "get-pod", json!({"namespace": "payments", "name": "payments-api-mkrp2xtfbl-7bpqm"})),
        (
            "get-pod-logs-previous",
            "get-pod-logs",
            json!({"namespace": "payments", "name": "payments-api-mkrp2xtfbl-7bpqm", "previous": true, "tail": 20}),
        ),
        (
            "get-pod-logs-grep",
            "get-pod-logs",
            json!({"namespace": "payments", "name": "payments-api-mkrp2xtfbl-7bpqm", "previous": true, "grep": "(?i)error|refused"}),
        ),
        ("list-events", "list-events", json!({})),
        ("list-events-payments-all", "list-events", json!({"namespace": "payments", "type": ""})),
        ("list-nodes", "list-nodes", json!({})),
        ("list-nodes-problems", "list-nodes", json!({"problems_only": true})),
        ("get-node-worker-2", "get-node", json!({"name": "worker-2"})),
        ("list-workloads", "list-workloads", json!({})),
        ("list-workloads-problems", "list-workloads", json!({"problems_only": true})),
        ("list-namespaces", "list-namespaces", json!({})),
        (
            "get-resource-deployment",
            "get-resource",
            json!({"api_version": "apps/v1", "kind": "Deployment", "namespace": "payments", "name": "payments-api", "fields": ["spec.replicas", "status.availableReplicas", "status.conditions"]}),
        ),
        (
            "list-resources-pvcs",
            "list-resources",
            json!({"api_version": "v1", "kind": "PersistentVolumeClaim", "fields": ["status.phase", "spec.storageClassName"]}),
        ),
        ("cluster-operators", "cluster-operators", json!({})),
        ("get-upgrade-status", "get-upgrade-status", json!({})),
        ("calculate-pod-capacity-cluster", "calculate-pod-capacity", json!({})),
        (
            "calculate-pod-capacity-shop-frontend",
            "calculate-pod-capacity",
            json!({"namespace": "shop-frontend", "pod_profile": "small"}),
        ),
        (
            "analyze-scaling-impact",
            "analyze-scaling-impact",
            json!({"namespace": "payments", "deployment": "payments-api", "target_replicas": 6}),
        ),
        ("list-models", "list-models", json!({})),
        (
            "get-model-status-fraud-scorer",
            "get-model-status",
            json!({"namespace": "ml-serving", "model_name": "fraud-scorer"}),
        ),
        (
            "detect-deployment-method-helm",
            "detect-deployment-method",
            json!({"namespace": "payments", "name": "payments-api-mkrp2xtfbl-7bpqm"}),
        ),
        // Remediators, dry-run (their default): the snapshot is left as it is. Cases whose
        // answers carry no wall-clock time (a restart patch stamps now()).
        (
            "increase-memory-limit-oomkilled",
            "increase-memory-limit",
            json!({"namespace": "shop-frontend", "name": "product-catalog-qnvb6h6ls-l5njv"}),
        ),
        (
            "restart-workload-job-pod",
            "restart-workload",
            json!({"namespace": "data-platform", "name": "nightly-compaction-29926200-fc9j4"}),
        ),
        (
            "sync-argocd-application-storefront",
            "sync-argocd-application",
            json!({"namespace": "shop-frontend", "kind": "Deployment", "name": "storefront"}),
        ),
        (
            "remediate-helm-release-payments",
            "remediate-helm-release",
            json!({"namespace": "payments", "name": "payments-api-mkrp2xtfbl-7bpqm"}),
        ),
        ("get-remediation-recommendations", "get-remediation-recommendations", json!({})),
        (
            "trigger-operator-reconcile-no-owner",
            "trigger-operator-reconcile",
            json!({"namespace": "openshift-monitoring", "name": "node-exporter-whx8n"}),
        ),
        // Remediation runs get random ids and clock times: only their deterministic answers
        // are pinned here (tests/python/test_remediation.py runs them end to end).
        (
            "trigger-remediation-no-workflow",
            "trigger-remediation",
            json!({"namespace": "shop-frontend", "resource": {"kind": "Pod", "name": "product-catalog-qnvb6h6ls-l5njv"}, "issue": {"type": "high_cpu"}}),
        ),
        ("approve-remediation-unknown", "approve-remediation", json!({"id": "wf-00000000"})),
        ("get-remediation-status-unknown", "get-remediation-status", json!({"id": "wf-00000000"})),
        ("list-remediation-history-empty", "list-remediation-history", json!({})),
    ]
}

/// Tools whose answers hold the wall clock (uptime, latencies) or fresh random ids (stored
/// incidents), so no golden file can pin them: tests.d/coordination.yaml, tests.d/incidents.yaml,
/// tests/routes.rs and tests/incidents.rs check their shape instead.
const CLOCKED: &[&str] =
    &["get-server-health", "create-incident", "list-incidents", "get-incident", "resolve-incident"];

fn golden_path(name: &str) -> PathBuf {
    root().join("tests/golden").join(format!("{name}.json"))
}

#[tokio::test]
async fn every_tool_matches_its_golden_output_on_the_demo_cluster() {
    let active = demo();
    let bless = std::env::var("GOLDEN").is_ok_and(|v| v == "overwrite");
    let mut failures = Vec::new();
    let mut covered = std::collections::BTreeSet::new();
    for (name, tool, args) in cases() {
        covered.insert(tool);
        let got = match call(&active, tool, args.clone()).await {
            Ok(o) => json!({"arguments": args, "structured": o.structured, "text": o.text}),
            Err(e) => json!({"arguments": args, "error": e}),
        };
        let path = golden_path(name);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            continue;
        }
        let want: Value = match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).unwrap(),
            Err(_) => {
                failures.push(format!("{name}: no golden file {} (run with GOLDEN=overwrite)", path.display()));
                continue;
            }
        };
        if got != want {
            failures.push(format!(
                "{name}: output differs from {}\n--- got:\n{}",
                path.display(),
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    // Every tool the demo mode exposes has at least one golden case.
    let missing: Vec<&String> =
        active.tools.keys().filter(|t| !covered.contains(t.as_str()) && !CLOCKED.contains(&t.as_str())).collect();
    assert!(missing.is_empty(), "tools without a golden case: {missing:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The same registry with every step's projection removed: list answers kept whole.
fn demo_unprojected() -> Active {
    let mut reg = cluster_health_mcp::engine::compile::load_registry(&[root().join("tools.d"), root().join("modes")])
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    // Routes, prompts and resources hold tools too; they are not needed here.
    reg.routes.clear();
    reg.prompts.clear();
    reg.resources.clear();
    for tool in reg.tools.values_mut().filter_map(Arc::get_mut) {
        tool.proc.steps.iter_mut().for_each(|s| s.projection = None);
    }
    Active::new(Arc::new(reg), "demo").unwrap()
}

#[tokio::test]
async fn projected_list_answers_shape_exactly_as_whole_ones() {
    let (projected, whole) = (demo(), demo_unprojected());
    let health = &projected.tools["get-cluster-health"].proc;
    let pods = health.steps.iter().find(|s| s.name == "pods").unwrap();
    let kept = pods.projection.as_ref().expect("get-cluster-health reads a few fields of each pod").to_string();
    assert!(kept.contains("status") && !kept.contains("labels"), "{kept}");
    for (name, tool, args) in cases() {
        if projected.tools[tool].proc.steps.iter().all(|s| s.projection.is_none()) {
            continue; // nothing projected: nothing to compare
        }
        assert!(whole.tools[tool].proc.steps.iter().all(|s| s.projection.is_none()), "{tool} is unprojected");
        let (a, b) = (call(&projected, tool, args.clone()).await, call(&whole, tool, args).await);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.structured, b.structured, "{name}: structured");
                assert_eq!(a.text, b.text, "{name}: text");
            }
            (a, b) => assert_eq!(a.err(), b.err(), "{name}: errors"),
        }
    }
}

#[tokio::test]
async fn a_call_answered_from_the_read_cache_reuses_its_shaped_outcome() {
    let modes = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(root().join("modes/demo.yaml")).unwrap();
    let cached = demo.replace("name: demo\n", "name: demo-cached\n").replace(
        "        snapshot: {path: \"builtin:demo\"}",
        "        snapshot: {path: \"builtin:demo\"}\n      cache: {ttl: 1h}",
    );
    assert!(cached.contains("cache: {ttl: 1h}"));
    std::fs::write(modes.path().join("demo-cached.yaml"), cached).unwrap();
    let dirs = [root().join("tools.d"), root().join("modes"), modes.path().to_path_buf()];
    let reg = cluster_health_mcp::engine::compile::load_registry(&dirs)
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    let active = Active::new(Arc::new(reg), "demo-cached").unwrap();
    let fresh = call(&active, "get-cluster-health", json!({})).await.unwrap();
    assert!(fresh.data_age.is_none(), "fetched by this call");
    let health = &active.tools["get-cluster-health"].proc;
    assert!(!health.volatile);
    let second = call(&active, "get-cluster-health", json!({})).await.unwrap();
    let third = call(&active, "get-cluster-health", json!({})).await.unwrap();
    assert_eq!(health.memo.hits(), 2, "the same cached answers were not shaped again");
    for again in [&second, &third] {
        assert_eq!((&again.structured, &again.text), (&fresh.structured, &fresh.text));
        assert!(again.data_age.is_some(), "served from the cache, its age said");
    }
    // Other arguments are shaped on their own.
    let brief = call(&active, "get-cluster-health", json!({"include_details": false})).await.unwrap();
    assert_ne!(brief.structured, fresh.structured);
    // list-pods reads ages from the clock: never reused.
    assert!(active.tools["list-pods"].proc.volatile);
}

/// Read a List file of the snapshot.
fn items(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let docs = cluster_health_mcp::spec::yaml::parse_values(&text).unwrap();
    docs.into_iter().flat_map(|d| d["items"].as_array().cloned().unwrap_or_default()).collect()
}

fn condition(obj: &Value, ty: &str) -> Option<String> {
    obj.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == ty)?["status"]
        .as_str()
        .map(String::from)
}

#[tokio::test]
async fn cluster_health_counts_and_verdict_match_an_independent_computation() {
    let snap = root().join("tests/snapshots/demo-cluster");
    // Nodes: one file per node.
    let mut nodes = Vec::new();
    for e in std::fs::read_dir(snap.join("cluster-scoped-resources/core/nodes")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        nodes.extend(cluster_health_mcp::spec::yaml::parse_values(&text).unwrap());
    }
    let ready_nodes = nodes.iter().filter(|n| condition(n, "Ready").as_deref() == Some("True")).count();
    // Pods: every namespace's core/pods.yaml.
    let mut pods = Vec::new();
    for e in std::fs::read_dir(snap.join("namespaces")).unwrap() {
        let p = e.unwrap().path().join("core/pods.yaml");
        if p.exists() {
            pods.extend(items(&p));
        }
    }
    let phase = |ph: &str| pods.iter().filter(|p| p["status"]["phase"] == ph).count();
    let not_ready = pods
        .iter()
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .filter(|p| condition(p, "Ready").as_deref() != Some("True"))
        .count();

    let active = demo();
    let out = call(&active, "get-cluster-health", json!({})).await.unwrap();
    let s = &out.structured;
    assert_eq!(s["nodes"]["total"], nodes.len());
    assert_eq!(s["nodes"]["ready"], ready_nodes);
    assert_eq!(s["nodes"]["not_ready"], nodes.len() - ready_nodes);
    assert_eq!(s["pods"]["total"], pods.len());
    for ph in ["Running", "Pending", "Failed", "Succeeded"] {
        assert_eq!(s["pods"][ph.to_lowercase()], phase(ph), "{ph} pods");
    }
    assert_eq!(s["pods"]["not_ready"], not_ready);
    // The original's rule: unhealthy with no ready node, degraded with a NotReady node or a
    // Failed pod.
    let expected = if ready_nodes == 0 {
        "unhealthy"
    } else if ready_nodes < nodes.len() || phase("Failed") > 0 {
        "degraded"
    } else {
        "healthy"
    };
    assert_eq!(s["status"], expected);
    assert!(nodes.len() >= 7 && pods.len() >= 60, "the demo cluster is the realistic one");
}

#[tokio::test]
async fn secret_values_are_masked_whatever_tool_asks() {
    let active = demo();
    // The demo snapshot has no Secrets; add one to the in-memory copy through the store.
    let store = cluster_health_mcp::backends::kubernetes::snapshot_store("builtin:demo").unwrap();
    {
        let mut s = store.write().unwrap();
        let key = (String::new(), "v1".to_string(), "secrets".to_string());
        s.objects.entry(key).or_default().insert(
            ("payments".into(), "db-credentials".into()),
            cluster_health_mcp::snapshot::Stored::new(&json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "db-credentials", "namespace": "payments"},
                   "data": {"password": "aHVudGVyMg=="}, "stringData": {"user": "admin"}})),
        );
    }
    let get = call(
        &active,
        "get-resource",
        json!({"api_version": "v1", "kind": "Secret", "namespace": "payments", "name": "db-credentials"}),
    )
    .await
    .unwrap();
    let list = call(
        &active,
        "list-resources",
        json!({"api_version": "v1", "kind": "Secret", "fields": ["data", "stringData"]}),
    )
    .await
    .unwrap();
    for out in [&get, &list] {
        let all = serde_json::to_string(&out.structured).unwrap() + &out.text;
        assert!(!all.contains("aHVudGVyMg==") && !all.contains("admin"), "secret leaked: {all}");
        assert!(all.contains("<masked>"), "masked marker shown: {all}");
    }
}
