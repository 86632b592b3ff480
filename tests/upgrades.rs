//! get-upgrade-status (and the upgrade reasons of get-cluster-health and cluster-operators)
//! against real upgrade dumps with the output `oc adm upgrade status` printed for them
//! (tests/fixtures/upgrades, from openshift/oc's examples; SOURCES.md there). The expected
//! values are parsed from oc's own output, not written by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cluster_health_mcp::engine::{Active, invoke};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn active_on(snapshot: &Path) -> Active {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(
        dir.join("mode.yaml"),
        format!(
            "apiVersion: cluster-health-mcp/v1\nkind: Mode\nmetadata: {{name: upgrade-case}}\nspec:\n  backends:\n    \
             kubernetes: {{source: {{kubeconfig: null, snapshot: {{path: \"{}\"}}}}}}\n",
            snapshot.display()
        ),
    )
    .unwrap();
    let reg = cluster_health_mcp::engine::compile::load_registry(&[root().join("tools.d"), root().join("modes"), dir])
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    Active::new(Arc::new(reg), "upgrade-case").unwrap()
}

async fn call(active: &Active, tool: &str, args: Value) -> invoke::Outcome {
    let t = active.tools.get(tool).unwrap_or_else(|| panic!("tool {tool} is exposed"));
    invoke::run(active, &t.proc, args.as_object().unwrap(), None, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("{tool} failed: {e}"))
}

/// What `oc adm upgrade status` said, parsed from its output.
#[derive(Debug, Default)]
struct OcSays {
    assessment: String,
    /// (updated, updating, waiting)
    completion: Option<(u64, u64, u64)>,
    /// "Healthy" / "Unavailable" / "Available but degraded" -> count
    health: BTreeMap<String, u64>,
    /// node -> assessment, for the nodes oc listed
    nodes: BTreeMap<String, String>,
    /// worker pool -> assessment
    pools: BTreeMap<String, String>,
}

const ASSESSMENTS: &[&str] = &["Degraded", "Outdated", "Completed", "Unavailable", "Progressing", "Excluded"];

fn oc_says(case: &Path) -> OcSays {
    let text = std::fs::read_to_string(case.join("oc-adm-upgrade-status.output.txt")).unwrap();
    let mut oc = OcSays::default();
    let mut in_pools = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = line.strip_prefix("Assessment:") {
            oc.assessment = rest.split_whitespace().next().unwrap().to_string();
        } else if line.starts_with("Update to ") && line.contains("successfully completed") {
            oc.assessment = "Completed".into();
        } else if let Some(rest) = line.strip_prefix("Completion:") {
            let n: Vec<u64> = rest.split(['(', ',', ' ']).filter_map(|w| w.parse().ok()).collect();
            oc.completion = Some((n[0], n[1], n[2]));
        } else if let Some(rest) = line.strip_prefix("Operator Health:") {
            for part in rest.split(',') {
                let (n, what) = part.trim().split_once(' ').unwrap();
                oc.health.insert(what.to_string(), n.parse().unwrap());
            }
        } else if line.starts_with("WORKER POOL") {
            in_pools = true;
        } else if in_pools && words.len() >= 2 {
            oc.pools.insert(words[0].to_string(), words[1].to_string());
        } else if in_pools {
            in_pools = false;
        } else if words.len() >= 3 && ASSESSMENTS.contains(&words[1]) && !line.starts_with(' ') {
            oc.nodes.insert(words[0].to_string(), words[1].to_string());
        }
    }
    oc
}

#[tokio::test]
async fn upgrade_status_agrees_with_oc_adm_upgrade_status_on_real_dumps() {
    let cases = ["ocpbugs-60768", "4.14.1-degraded", "4.16.0-ec2-control-plane-updated-pdb-prohibits-draining"];
    for case in cases {
        let dir = root().join("tests/fixtures/upgrades").join(case);
        let oc = oc_says(&dir);
        let active = active_on(&dir);
        let out = call(&active, "get-upgrade-status", json!({"nodes_limit": 500})).await;
        let s = &out.structured;
        assert_eq!(s["control_plane"]["assessment"], oc.assessment.as_str(), "{case}: {}", out.text);
        if let Some((updated, updating, waiting)) = oc.completion {
            assert_eq!(s["operators"]["updated"], updated, "{case}");
            assert_eq!(s["operators"]["updating"].as_array().unwrap().len() as u64, updating, "{case}");
            assert_eq!(s["operators"]["waiting"].as_array().unwrap().len() as u64, waiting, "{case}");
        }
        for (what, n) in &oc.health {
            let ours = match what.as_str() {
                "Healthy" => s["operators"]["healthy"].as_u64().unwrap(),
                "Unavailable" => s["operators"]["unavailable"].as_array().unwrap().len() as u64,
                "Available but degraded" => s["operators"]["degraded"].as_array().unwrap().len() as u64,
                other => panic!("{case}: oc health `{other}`"),
            };
            assert_eq!(ours, *n, "{case}: {what}");
        }
        // Nodes oc listed: our assessment is oc's (ours lists every node not completed).
        let listed: BTreeMap<String, String> = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["name"].as_str().unwrap().to_string(), n["assessment"].as_str().unwrap().to_string()))
            .collect();
        // The 4.14.1 case ships no Nodes (its oc output describes another cluster's: SOURCES.md).
        let has_nodes = dir.join("cluster-scoped-resources/core/nodes").exists();
        for (node, want) in oc.nodes.iter().filter(|_| has_nodes) {
            let got = listed.get(node).map(String::as_str).unwrap_or("Completed");
            assert_eq!(got, want, "{case}: node {node}");
        }
        let pools: BTreeMap<String, String> = s["pools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_string(), p["assessment"].as_str().unwrap().to_string()))
            .collect();
        for (pool, want) in &oc.pools {
            // The 4.14.1 case ships no MachineConfigPools (SOURCES.md): nothing to compare.
            if let Some(got) = pools.get(pool) {
                assert_eq!(got, want, "{case}: pool {pool}");
            }
        }
        assert!(!oc.nodes.is_empty() || case == "4.14.1-degraded", "{case}: oc listed nodes");
    }
}

#[tokio::test]
async fn a_stalled_upgrade_is_named_by_cluster_health_and_operators_show_the_running_version() {
    let dir = root().join("tests/fixtures/upgrades/4.14.1-degraded");
    let active = active_on(&dir);
    let health = call(&active, "get-cluster-health", json!({})).await;
    assert!(health.text.contains("upgrade to 4.14.1 stalled"), "{}", health.text);
    assert!(health.text.contains("1 ClusterOperator(s) unavailable: control-plane-machine-set"), "{}", health.text);
    assert!(health.text.contains("4 ClusterOperator(s) degraded: etcd,"), "{}", health.text);
    let ops = call(&active, "cluster-operators", json!({})).await;
    // A partial upgrade: the cluster still runs the last completed version.
    assert_eq!(ops.structured["cluster_version"], "4.14.0-rc.3");
    assert_eq!(ops.structured["updating_to"], "4.14.1");
    assert!(ops.text.starts_with("33 ClusterOperators (cluster 4.14.0-rc.3, updating to 4.14.1"), "{}", ops.text);
    assert_eq!(ops.structured["unavailable"].as_array().unwrap().len(), 1);
    assert_eq!(ops.structured["degraded"].as_array().unwrap().len(), 4);

    let dir = root().join("tests/fixtures/upgrades/ocpbugs-60768");
    let health = call(&active_on(&dir), "get-cluster-health", json!({})).await;
    assert!(health.text.contains("1 MachineConfigPool(s) with degraded nodes: master"), "{}", health.text);
}
