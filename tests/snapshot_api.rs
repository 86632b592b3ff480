//! The real kube client against the snapshot API, in-process and over TCP (`snapshot serve`),
//! and on the real must-gather samples.

use std::sync::{Arc, RwLock};

use cluster_health_mcp::snapshot::{Store, api};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams};
use kube::discovery::ApiResource;

fn demo_store() -> api::Shared {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/demo-cluster");
    Arc::new(RwLock::new(Store::load(&root).unwrap()))
}

async fn tcp_client(store: api::Shared) -> kube::Client {
    cluster_health_mcp::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(store)).await.unwrap() });
    let kc = kube::config::Kubeconfig::from_yaml(&api::kubeconfig(&url)).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

fn names(list: &kube::core::ObjectList<DynamicObject>) -> Vec<String> {
    list.items.iter().map(|o| o.metadata.name.clone().unwrap_or_default()).collect()
}

#[tokio::test]
async fn in_process_and_tcp_clients_see_the_same_objects() {
    let store = demo_store();
    let local = api::kube_client(store.clone());
    let remote = tcp_client(store).await;
    let (pod, _) =
        kube::discovery::pinned_kind(&remote, &kube::api::GroupVersionKind::gvk("", "v1", "Pod")).await.unwrap();
    for lp in [
        ListParams::default(),
        ListParams::default().labels("app=payments-api"),
        ListParams::default().fields("status.phase=Pending"),
        ListParams::default().labels("app in (payments-api, payments-db),!nonexistent"),
    ] {
        let a: Api<DynamicObject> = Api::all_with(local.clone(), &pod);
        let b: Api<DynamicObject> = Api::all_with(remote.clone(), &pod);
        let (la, lb) = (a.list(&lp).await.unwrap(), b.list(&lp).await.unwrap());
        assert_eq!(names(&la), names(&lb), "{lp:?}");
        assert!(!la.items.is_empty(), "{lp:?} matched something");
    }
}

#[tokio::test]
async fn pagination_walks_every_object_once() {
    let client = tcp_client(demo_store()).await;
    let pods: Api<DynamicObject> = Api::all_with(client, &ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()));
    let all = pods.list(&ListParams::default()).await.unwrap();
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(7);
    loop {
        let page = pods.list(&lp).await.unwrap();
        seen.extend(names(&page));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(seen, names(&all));
}

#[tokio::test]
async fn logs_writes_and_errors_behave_like_an_api_server() {
    let store = demo_store();
    let client = tcp_client(store.clone()).await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "payments");
    let previous = pods
        .logs("payments-api-mkrp2xtfbl-7bpqm", &LogParams { previous: true, tail_lines: Some(3), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(previous.lines().count(), 3);
    // Writes change memory only.
    let dyn_pods: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "payments", &ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()));
    dyn_pods.delete("payments-api-mkrp2xtfbl-7bpqm", &DeleteParams::default()).await.unwrap();
    let err = dyn_pods.get("payments-api-mkrp2xtfbl-7bpqm").await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 404), "{err:?}");
    let deploys: Api<DynamicObject> =
        Api::namespaced_with(client, "payments", &ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&()));
    deploys
        .patch_scale(
            "payments-api",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(deploys.get("payments-api").await.unwrap().data["spec"]["replicas"], 5);
    let file = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots/demo-cluster/namespaces/payments/core/pods.yaml");
    assert!(
        std::fs::read_to_string(file).unwrap().contains("payments-api-mkrp2xtfbl-7bpqm"),
        "files are never touched"
    );
}

#[tokio::test]
async fn the_real_must_gather_samples_load_as_they_are() {
    let fixtures = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let base = fixtures.join("must-gather-sample");
    assert!(base.exists(), "the must-gather samples are at {}", base.display());
    let mg = Store::load(&base.join("must-gather-clean-aws-4.8")).unwrap();
    assert!(mg.skipped.is_empty(), "{:?}", mg.skipped);
    assert_eq!(mg.objects[&(String::new(), "v1".into(), "nodes".into())].len(), 6);
    assert_eq!(mg.objects[&("config.openshift.io".into(), "v1".into(), "clusteroperators".into())].len(), 31);
    assert!(mg.logs.keys().any(|(ns, _, _)| ns == "openshift-etcd"), "pod logs are read");
    assert!(mg.captured_at.is_some(), "the must-gather timestamp is read");
    let insights = Store::load(&base.join("insights-archive-sample")).unwrap();
    assert_eq!(insights.objects[&(String::new(), "v1".into(), "nodes".into())].len(), 2, "kind inferred for archives");
    let upgrade = Store::load(&fixtures.join("upgrades/4.14.1-degraded")).unwrap();
    assert!(upgrade.object_count() > 30);
    // And the kube client reads them.
    let client = api::kube_client(Arc::new(RwLock::new(mg)));
    let etcd: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, "openshift-etcd");
    assert!(etcd.list(&ListParams::default()).await.unwrap().items.len() >= 3);
}
