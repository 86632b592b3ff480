//! Snapshots as users have them: the Insights operator's `.tar.gz` read directly (the same
//! objects as the extracted folder), every file that could not be read counted and named
//! (`snapshot info`), and field selectors a real API server refuses refused the same way.
//! Fixture: tests/fixtures/insights/insights-archive-sample.tar.gz, packed from the Insights
//! operator's documented sample archive (openshift/insights-operator, Apache-2.0).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use cluster_health_mcp::engine::{Active, invoke};
use cluster_health_mcp::snapshot::Store;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn archive() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/insights/insights-archive-sample.tar.gz")
}

/// The archive's file names, read independently of the snapshot loader.
fn entries() -> Vec<String> {
    let out = Command::new("tar").arg("tzf").arg(archive()).output().expect("tar is installed");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().lines().map(|l| l.trim_start_matches("./").to_string()).collect()
}

fn counts(s: &Store) -> BTreeMap<String, usize> {
    s.objects.iter().filter(|(_, v)| !v.is_empty()).map(|((g, v, p), o)| (format!("{g}/{v}/{p}"), o.len())).collect()
}

#[test]
fn an_insights_tar_gz_loads_like_its_extracted_folder_and_names_what_it_cannot_read() {
    let packed = Store::load(&archive()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(Command::new("tar").arg("xzf").arg(archive()).arg("-C").arg(dir.path()).status().unwrap().success());
    let extracted = Store::load(dir.path()).unwrap();
    assert_eq!(counts(&packed), counts(&extracted));
    assert_eq!(packed.skipped, extracted.skipped);
    assert_eq!(packed.logs.len(), extracted.logs.len());

    // Every pod file is a pod, with or without kind/selfLink (5 of them have neither).
    let pod_files = entries()
        .iter()
        .filter(|e| e.ends_with(".json"))
        .filter(|e| e.starts_with("config/pod/") || (e.starts_with("conditional/namespaces/") && e.contains("/pods/")))
        .count();
    assert_eq!(pod_files, 36);
    assert_eq!(packed.objects[&(String::new(), "v1".into(), "pods".into())].len(), pod_files);
    // Reduced events (events/<ns>.json) become Events; alerts.json is no object and is named.
    assert_eq!(packed.objects[&(String::new(), "v1".into(), "events".into())].len(), 2);
    let skipped: Vec<String> = packed.skipped.iter().map(|(p, _)| p.display().to_string()).collect();
    assert_eq!(skipped, ["config/alerts.json"]);

    let out = Command::new(env!("CARGO_BIN_EXE_cluster-health-mcp"))
        .args(["snapshot", "info"])
        .arg(archive())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("1 unreadable files") && text.contains("skipped config/alerts.json"), "{text}");
}

fn active_on(snapshot: &std::path::Path) -> Active {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(
        dir.join("mode.yaml"),
        format!(
            "apiVersion: cluster-health-mcp/v1\nkind: Mode\nmetadata: {{name: archive}}\nspec:\n  backends:\n    \
             kubernetes: {{source: {{kubeconfig: null, snapshot: {{path: \"{}\"}}}}}}\n",
            snapshot.display()
        ),
    )
    .unwrap();
    let reg = cluster_health_mcp::engine::compile::load_registry(&[root.join("tools.d"), root.join("modes"), dir])
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    Active::new(Arc::new(reg), "archive").unwrap()
}

async fn call(active: &Active, tool: &str, args: serde_json::Value) -> Result<invoke::Outcome, String> {
    let t = active.tools.get(tool).unwrap();
    invoke::run(active, &t.proc, args.as_object().unwrap(), None, &CancellationToken::new())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn tools_read_the_archive_directly() {
    let active = active_on(&archive());
    let pods = call(&active, "list-pods", json!({"limit": 500})).await.unwrap();
    assert_eq!(pods.structured["total"], 36, "{}", pods.text);
    let events = call(&active, "list-events", json!({})).await.unwrap();
    assert_eq!(events.structured["total"], 2, "{}", events.text);
    let ops = call(&active, "cluster-operators", json!({})).await.unwrap();
    assert!(ops.text.starts_with("31 ClusterOperators"), "{}", ops.text);
}

#[tokio::test]
async fn field_selectors_the_api_server_refuses_are_refused() {
    let active = active_on(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/demo-cluster"));
    let err = call(&active, "list-pods", json!({"field_selector": "spec.containers=x"})).await.unwrap_err();
    assert!(err.contains("field label not supported: spec.containers"), "{err}");
    // Supported ones keep working.
    let ok = call(&active, "list-pods", json!({"field_selector": "spec.nodeName=worker-1"})).await.unwrap();
    assert!(ok.structured["returned"].as_u64().unwrap() > 0);
}
