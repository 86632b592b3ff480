//! The kubernetes backend's write verbs (scale, rollout-restart, delete, patch) through the
//! engine, against the in-memory copy of the demo snapshot; and the validation rule that only
//! destructive tools may write.

use std::sync::Arc;

use cluster_health_mcp::engine::{Active, invoke};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn call(active: &Active, tool: &str, args: Value) -> Result<Value, String> {
    let t = active.tools.get(tool).unwrap();
    invoke::run(active, &t.proc, args.as_object().unwrap(), None, &CancellationToken::new())
        .await
        .map(|o| o.structured)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn write_verbs_change_the_in_memory_cluster() {
    let paths = [root().join("tools.d"), root().join("modes"), root().join("tests/kube_writes")];
    let reg = cluster_health_mcp::engine::compile::load_registry(&paths).unwrap();
    let active = Active::new(Arc::new(reg), "demo").unwrap();
    let ns = json!("payments");

    let out = call(&active, "scale-deployment", json!({"namespace": ns, "name": "payments-gateway", "replicas": 4}))
        .await
        .unwrap();
    assert_eq!(out["replicas"], 4);
    let dep = call(&active, "get-resource", json!({"api_version": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "payments-gateway", "fields": ["spec.replicas"]})).await.unwrap();
    assert_eq!(dep["object"]["replicas"], 4);

    let out = call(&active, "restart-deployment", json!({"namespace": ns, "name": "payments-gateway"})).await.unwrap();
    assert!(out["restarted_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{out}");

    let pods = call(&active, "list-pods", json!({"namespace": "payments", "label_selector": "app=payments-api"}))
        .await
        .unwrap();
    let victim = pods["pods"][0]["name"].as_str().unwrap().to_string();
    let out = call(&active, "delete-pod", json!({"namespace": ns, "name": victim})).await.unwrap();
    assert_eq!(out["deleted"], victim.as_str());
    let err = call(&active, "get-pod", json!({"namespace": ns, "name": victim})).await.unwrap_err();
    assert!(err.contains("404") && err.contains("list first"), "{err}");

    let out = call(
        &active,
        "raise-memory-limit",
        json!({"namespace": ns, "name": "payments-api", "container": "payments-api", "memory": "3Gi"}),
    )
    .await
    .unwrap();
    assert_eq!(out["limits"]["memory"], "3Gi");
    let dep = call(&active, "get-resource", json!({"api_version": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "payments-api", "fields": ["spec.template.spec.containers"]})).await.unwrap();
    let c = &dep["object"]["containers"][0];
    assert!(
        c["image"].is_string() && c["resources"]["requests"].is_object(),
        "a strategic patch merges containers by name: {c}"
    );
    // The changed template rolls the pods out, as the Deployment controller would.
    let pods = call(&active, "list-pods", json!({"namespace": "payments", "label_selector": "app=payments-api"}))
        .await
        .unwrap();
    assert!(pods["returned"].as_u64().unwrap() >= 1, "{pods}");
    for p in pods["pods"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let pod = call(&active, "get-resource", json!({"api_version": "v1", "kind": "Pod", "namespace": ns, "name": name, "fields": ["spec.containers", "status.phase"]})).await.unwrap();
        assert_eq!(pod["object"]["containers"][0]["resources"]["limits"]["memory"], "3Gi", "{pod}");
        assert_eq!(pod["object"]["phase"], "Running", "{pod}");
    }

    let file = root().join("tests/snapshots/demo-cluster/namespaces/payments/core/pods.yaml");
    assert!(std::fs::read_to_string(file).unwrap().contains(&victim), "the snapshot files are never touched");
}

#[tokio::test]
async fn dry_run_writes_answer_the_change_and_keep_nothing() {
    let paths = [root().join("tools.d"), root().join("modes"), root().join("tests/kube_writes")];
    let reg = cluster_health_mcp::engine::compile::load_registry(&paths).unwrap();
    let active = Active::new(Arc::new(reg), "demo").unwrap();
    let ns = json!("shop-frontend");
    async fn limits(active: &Active) -> (Value, Value) {
        let dep = call(active, "get-resource", json!({"api_version": "apps/v1", "kind": "Deployment", "namespace": "shop-frontend", "name": "storefront", "fields": ["spec.template.spec.containers", "metadata.resourceVersion"]})).await.unwrap();
        (dep["object"]["containers"][0]["resources"]["limits"].clone(), dep["object"]["resourceVersion"].clone())
    }
    let before = limits(&active).await;
    let out = call(
        &active,
        "raise-memory-limit",
        json!({"namespace": ns, "name": "storefront", "container": "storefront", "memory": "7Gi", "dry_run": true}),
    )
    .await
    .unwrap();
    assert_eq!(out["limits"]["memory"], "7Gi", "the dry run answers the object as it would be: {out}");
    assert_eq!(limits(&active).await, before, "a dry run changes nothing, not even the resourceVersion");

    let out = call(&active, "delete-pod-dry-run", json!({"namespace": ns, "name": "storefront-t2swd52zfz-zr4dm"}))
        .await
        .unwrap();
    assert_eq!(out, json!({"deleted": "storefront-t2swd52zfz-zr4dm", "dry_run": true}));
    call(&active, "get-pod", json!({"namespace": ns, "name": "storefront-t2swd52zfz-zr4dm"}))
        .await
        .expect("still there");
    let err = call(&active, "delete-pod-dry-run", json!({"namespace": ns, "name": "no-such-pod"})).await.unwrap_err();
    assert!(err.contains("404"), "a dry run still checks the object exists: {err}");
}

/// The shipped remediators applied (dry_run=false) on the in-memory demo cluster, each read
/// back with get-resource: what their dry runs promise is what they do.
#[tokio::test]
async fn remediators_applied_change_what_their_dry_runs_showed() {
    let paths = [root().join("tools.d"), root().join("modes")];
    let reg = cluster_health_mcp::engine::compile::load_registry(&paths).unwrap();
    let active = Active::new(Arc::new(reg), "demo").unwrap();
    let get = |kind: &'static str, api: &'static str, ns: &'static str, name: &'static str, field: &'static str| json!({"api_version": api, "kind": kind, "namespace": ns, "name": name, "fields": [field]});
    let pod = json!({"namespace": "shop-frontend", "name": "product-catalog-qnvb6h6ls-l5njv"});

    // OOMKilled: x2.5 on the Deployment's template, request kept.
    let dry = call(&active, "increase-memory-limit", pod.clone()).await.unwrap();
    let mut args = pod.clone();
    args["dry_run"] = json!(false);
    let applied = call(&active, "increase-memory-limit", args).await.unwrap();
    assert_eq!(
        (dry["patch"].clone(), applied["patch"].clone(), applied["outcome"].clone()),
        (dry["patch"].clone(), dry["patch"].clone(), json!("applied"))
    );
    let dep = call(
        &active,
        "get-resource",
        get("Deployment", "apps/v1", "shop-frontend", "product-catalog", "spec.template.spec.containers"),
    )
    .await
    .unwrap();
    let resources = &dep["object"]["containers"][0]["resources"];
    assert_eq!(
        (&resources["limits"]["memory"], &resources["requests"]["memory"]),
        (&json!("640Mi"), &json!("256Mi")),
        "{dep}"
    );
    // The pod was replaced by the rollout; the next dry run on the Deployment starts from the
    // new limit.
    let err = call(&active, "get-pod", pod.clone()).await.unwrap_err();
    assert!(err.contains("404"), "{err}");
    let again = call(
        &active,
        "increase-memory-limit",
        json!({"namespace": "shop-frontend", "kind": "Deployment", "name": "product-catalog"}),
    )
    .await
    .unwrap();
    assert_eq!(
        (again["current_limit"].clone(), again["new_limit"].clone()),
        (json!("640Mi"), json!("1600Mi")),
        "the next dry run starts from the new limit"
    );

    // Operator: the owning KafkaCluster gets the trigger annotations.
    let out = call(
        &active,
        "trigger-operator-reconcile",
        json!({"namespace": "data-platform", "name": "kafka-0", "dry_run": false}),
    )
    .await
    .unwrap();
    assert_eq!(out["applied"], true, "{out}");
    let cr = call(
        &active,
        "get-resource",
        get("KafkaCluster", "streaming.example.com/v1", "data-platform", "kafka", "metadata.annotations"),
    )
    .await
    .unwrap();
    let ann = &cr["object"]["annotations"];
    assert_eq!(ann["remediation.aiops/trigger-by"], "cluster-health-mcp", "{cr}");
    assert!(
        ann["remediation.aiops/trigger"]
            .as_str()
            .is_some_and(|t| t.len() == 10 && t.bytes().all(|b| b.is_ascii_digit())),
        "{cr}"
    );

    // Argo CD: the Application carries the sync operation; a second sync is still allowed
    // (the snapshot runs no Argo CD controller to move it to Running).
    let out = call(
        &active,
        "sync-argocd-application",
        json!({"namespace": "shop-frontend", "kind": "Deployment", "name": "checkout", "dry_run": false}),
    )
    .await
    .unwrap();
    assert_eq!(out["applied"], true, "{out}");
    let app = call(
        &active,
        "get-resource",
        get("Application", "argoproj.io/v1alpha1", "openshift-gitops", "shop-checkout", "operation"),
    )
    .await
    .unwrap();
    assert_eq!(app["object"]["operation"]["sync"], json!({"prune": false, "revision": "main"}), "{app}");

    // CrashLoopBackOff: the restart annotation lands on the pod template.
    let out = call(
        &active,
        "restart-workload",
        json!({"namespace": "shop-frontend", "kind": "Deployment", "name": "checkout", "dry_run": false}),
    )
    .await
    .unwrap();
    let stamp = out["restarted_at"].as_str().unwrap().to_string();
    let dep = call(
        &active,
        "get-resource",
        get("Deployment", "apps/v1", "shop-frontend", "checkout", "spec.template.metadata.annotations"),
    )
    .await
    .unwrap();
    assert_eq!(dep["object"]["annotations"]["remediation.aiops/restarted-at"], stamp.as_str(), "{dep}");
}

#[test]
fn a_write_verb_in_a_tool_not_marked_destructive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(root().join("tests/kube_writes/remediation.yaml")).unwrap().replace("annotations: {destructive: true}\n  input:\n    namespace: {type: string, format: k8s-namespace, required: true}\n    name: {type: string, format: k8s-name, required: true}\n  steps:\n    deleted", "annotations: {readOnly: true}\n  input:\n    namespace: {type: string, format: k8s-namespace, required: true}\n    name: {type: string, format: k8s-name, required: true}\n  steps:\n    deleted");
    std::fs::write(dir.path().join("w.yaml"), spec).unwrap();
    let Err(diags) = cluster_health_mcp::engine::compile::load_registry(&[
        dir.path().to_path_buf(),
        root().join("modes/backends.yaml"),
    ]) else {
        panic!("a read-only tool that deletes must not validate");
    };
    assert!(
        diags
            .iter()
            .any(|d| d.message.contains("verb `delete` changes things but the tool is not annotated destructive")),
        "{diags:?}"
    );
}

#[test]
fn a_tool_both_read_only_and_destructive_is_refused_and_may_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(root().join("tests/kube_writes/remediation.yaml"))
        .unwrap()
        .replace("annotations: {destructive: true}", "annotations: {readOnly: true, destructive: true}");
    std::fs::write(dir.path().join("w.yaml"), spec).unwrap();
    let Err(diags) = cluster_health_mcp::engine::compile::load_registry(&[
        dir.path().to_path_buf(),
        root().join("modes/backends.yaml"),
    ]) else {
        panic!("a tool annotated readOnly and destructive must not validate");
    };
    let both = diags.iter().filter(|d| d.message == "a tool cannot be both readOnly and destructive").count();
    assert_eq!(both, 3, "one per tool annotated both ways: {diags:?}");
    assert!(diags.iter().any(|d| d.message.contains("verb `delete` changes")), "{diags:?}");
    assert!(diags.iter().all(|d| d.pos.line > 0), "located: {diags:?}");
}
