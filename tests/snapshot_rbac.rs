//! RBAC in snapshots: tests/snapshots/rbac-cluster has a tokens.yaml, so its API
//! authenticates every request, honours impersonation only for callers allowed to
//! impersonate, authorizes by the snapshot's own Roles and bindings, and answers access
//! reviews truthfully. Requests go through the router as an HTTP client sends them.

use std::sync::{Arc, RwLock};

use axum::body::Body;
use cluster_health_mcp::snapshot::{Store, api};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn rbac_store() -> api::Shared {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/rbac-cluster");
    Arc::new(RwLock::new(Store::load(&root).unwrap()))
}

async fn send(
    store: &api::Shared,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let resp = api::router(store.clone()).oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn names(list: &Value) -> Vec<&str> {
    list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect()
}

const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");
const BOB: (&str, &str) = ("authorization", "Bearer bob-token");
const MCP: (&str, &str) = ("authorization", "Bearer mcp-token");
const ADMIN: (&str, &str) = ("authorization", "Bearer admin-token");

#[tokio::test]
async fn requests_without_a_known_token_are_unauthorized_but_version_is_public() {
    let s = rbac_store();
    let (code, body) = send(&s, "GET", "/api/v1/namespaces/team-a/pods", &[], None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "Unauthorized");
    let (code, _) = send(&s, "GET", "/api/v1/pods", &[("authorization", "Bearer nope")], None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _) = send(&s, "GET", "/version", &[], None).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn each_user_sees_only_what_its_role_bindings_allow() {
    let s = rbac_store();
    let (code, list) = send(&s, "GET", "/api/v1/namespaces/team-a/pods", &[ALICE], None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(names(&list), ["web-7d9f8-abcde", "worker-5c6d7-fghij"]);
    let (code, status) = send(&s, "GET", "/api/v1/namespaces/team-b/pods", &[ALICE], None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        status["message"],
        "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"team-b\""
    );
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(status["details"], json!({"kind": "pods"}));
    // Bob's access comes from his group's binding of a ClusterRole in team-b.
    let (code, list) = send(&s, "GET", "/api/v1/namespaces/team-b/pods", &[BOB], None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(names(&list), ["api-6b5c4-klmno"]);
    // All namespaces needs a cluster-wide binding, which neither has.
    let (code, status) = send(&s, "GET", "/api/v1/pods", &[BOB], None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(status["message"].as_str().unwrap().ends_with("at the cluster scope"), "{status}");
    // Subresources are their own resource: pods/log.
    let (code, _) = send(&s, "GET", "/api/v1/namespaces/team-a/pods/web-7d9f8-abcde/log", &[ALICE], None).await;
    assert_eq!(code, StatusCode::OK);
    let (code, status) = send(&s, "GET", "/api/v1/namespaces/team-b/pods/api-6b5c4-klmno/log", &[ALICE], None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(status["message"].as_str().unwrap().contains("cannot get resource \"pods/log\""), "{status}");
    // Reading is not writing.
    let (code, _) = send(&s, "DELETE", "/api/v1/namespaces/team-a/pods/web-7d9f8-abcde", &[ALICE], None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, list) = send(&s, "GET", "/api/v1/namespaces/team-a/pods", &[ADMIN], None).await;
    assert_eq!((code, names(&list).len()), (StatusCode::OK, 2), "the pod is still there");
}

#[tokio::test]
async fn secrets_stay_denied_for_everyone_but_the_masters() {
    let s = rbac_store();
    for who in [ALICE, BOB, MCP] {
        for path in
            ["/api/v1/namespaces/team-a/secrets/db-credentials", "/api/v1/namespaces/team-b/secrets", "/api/v1/secrets"]
        {
            let (code, status) = send(&s, "GET", path, &[who], None).await;
            assert_eq!(code, StatusCode::FORBIDDEN, "{who:?} {path}");
            assert!(status["message"].as_str().unwrap().contains("cannot"), "{status}");
        }
    }
    let (code, _) = send(&s, "GET", "/api/v1/namespaces/team-a/secrets/db-credentials", &[ADMIN], None).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn impersonation_needs_the_impersonate_verb_and_then_acts_as_the_user() {
    let s = rbac_store();
    // The server's account may impersonate, but by itself reads nothing.
    let (code, _) = send(&s, "GET", "/api/v1/namespaces/team-a/pods", &[MCP], None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let as_alice = [MCP, ("impersonate-user", "alice")];
    let (code, list) = send(&s, "GET", "/api/v1/namespaces/team-a/pods", &as_alice, None).await;
    assert_eq!((code, names(&list).len()), (StatusCode::OK, 2));
    let (code, status) = send(&s, "GET", "/api/v1/namespaces/team-b/pods", &as_alice, None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(status["message"].as_str().unwrap().contains("User \"alice\""), "{status}");
    // Groups come from Impersonate-Group.
    let as_bob = [MCP, ("impersonate-user", "bob"), ("impersonate-group", "team-b-devs")];
    let (code, list) = send(&s, "GET", "/api/v1/namespaces/team-b/pods", &as_bob, None).await;
    assert_eq!((code, names(&list)), (StatusCode::OK, vec!["api-6b5c4-klmno"]));
    // Alice may not impersonate anyone.
    let (code, status) =
        send(&s, "GET", "/api/v1/namespaces/team-b/pods", &[ALICE, ("impersonate-user", "bob")], None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        status["message"],
        "users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
    // Impersonating system:masters needs `impersonate` on that group: granted here, so the
    // server's account is as strong as what it may impersonate (as in a real cluster).
    let (code, _) = send(
        &s,
        "GET",
        "/api/v1/namespaces/team-a/secrets",
        &[MCP, ("impersonate-user", "x"), ("impersonate-group", "system:masters")],
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn access_reviews_answer_from_the_snapshots_rbac() {
    let s = rbac_store();
    let ssar = |ns: &str, verb: &str, resource: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
               "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource}}})
    };
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (code, r) = send(&s, "POST", path, &[ALICE], Some(ssar("team-a", "list", "pods"))).await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(r["status"]["allowed"], true);
    assert!(r["status"]["reason"].as_str().unwrap().contains("alice-views-team-a"), "{r}");
    let (_, r) = send(&s, "POST", path, &[ALICE], Some(ssar("team-b", "list", "pods"))).await;
    assert_eq!(r["status"]["allowed"], false);
    let (_, r) = send(&s, "POST", path, &[BOB], Some(ssar("team-a", "get", "secrets"))).await;
    assert_eq!(r["status"]["allowed"], false);
    // SubjectAccessReview asks about someone else: only for those allowed to create it.
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "bob", "groups": ["team-b-devs"], "resourceAttributes": {"namespace": "team-b", "verb": "get", "resource": "pods"}}});
    let path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let (code, _) = send(&s, "POST", path, &[ALICE], Some(sar.clone())).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, r) = send(&s, "POST", path, &[ADMIN], Some(sar)).await;
    assert_eq!((code, &r["status"]["allowed"]), (StatusCode::CREATED, &json!(true)), "{r}");
}

#[tokio::test]
async fn a_snapshot_without_tokens_serves_everyone_as_before() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/demo-cluster");
    let s: api::Shared = Arc::new(RwLock::new(Store::load(&root).unwrap()));
    let (code, _) = send(&s, "GET", "/api/v1/pods", &[], None).await;
    assert_eq!(code, StatusCode::OK);
    let review = json!({"spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}});
    let (_, r) = send(&s, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", &[], Some(review)).await;
    assert_eq!(r["status"]["allowed"], true);
}

#[tokio::test]
async fn an_unreadable_tokens_file_lets_nobody_in() {
    let s = Store::from_files([
        ("tokens.yaml", "tokens: {not: a list}\n"),
        ("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"),
    ]);
    assert!(s.skipped.iter().any(|(p, why)| p.ends_with("tokens.yaml") && why.contains("no token is accepted")));
    let s: api::Shared = Arc::new(RwLock::new(s));
    let (code, _) = send(&s, "GET", "/api/v1/namespaces", &[("authorization", "Bearer anything")], None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}
