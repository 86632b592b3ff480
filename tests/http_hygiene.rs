//! Streamable HTTP hygiene through the axum router (tower oneshot): health endpoints, Origin
//! and Host allow-lists, the bearer token, body limits and stateless mode.

use std::sync::Arc;

use axum::body::Body;
use cluster_health_mcp::engine::Active;
use cluster_health_mcp::mcp::{http, state::State};
use cluster_health_mcp::settings::Settings;
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

fn app(configure: impl FnOnce(&mut Settings)) -> axum::Router {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let reg = cluster_health_mcp::engine::compile::load_registry(&[root.join("tools.d"), root.join("modes")]).unwrap();
    let state = State::new(Active::new(Arc::new(reg), "demo").unwrap());
    let mut settings = Settings::default();
    configure(&mut settings);
    http::router(state, &settings.http, "127.0.0.1:8080".parse().unwrap(), CancellationToken::new()).unwrap()
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

fn post() -> axum::http::request::Builder {
    axum::http::Request::post("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
}

async fn text(resp: axum::response::Response) -> String {
    String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned()
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = app(|_| {});
    let r = app.clone().oneshot(axum::http::Request::get("/healthz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .oneshot(axum::http::Request::get("/readyz").header("host", "127.0.0.1:8080").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&text(r).await).unwrap();
    assert_eq!(body["mode"], "demo");
    assert!(body["tools"].as_u64().unwrap() > 10);
}

#[tokio::test]
async fn a_foreign_origin_is_forbidden_and_a_local_one_served() {
    let app = app(|_| {});
    let r = app
        .clone()
        .oneshot(post().header("origin", "http://evil.example.com").body(Body::from(INIT)).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .clone()
        .oneshot(post().header("origin", "http://localhost:3000").body(Body::from(INIT)).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", text(r).await);
    let r = app
        .oneshot(
            axum::http::Request::post("/mcp")
                .header("host", "evil.example.com")
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(Body::from(INIT))
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "a foreign Host is refused: {}", r.status());
}

#[tokio::test]
async fn the_bearer_token_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let app = app(|s| s.http.token_file = Some(token.clone()));
    let r = app.clone().oneshot(post().body(Body::from(INIT)).unwrap()).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = app
        .clone()
        .oneshot(post().header("authorization", "Bearer wrong").body(Body::from(INIT)).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .clone()
        .oneshot(post().header("authorization", "Bearer s3cret").body(Body::from(INIT)).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Health endpoints stay open for probes.
    let r = app.oneshot(axum::http::Request::get("/healthz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = app(|s| s.http.body_limit = 1024);
    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(4096));
    let r = app.oneshot(post().body(Body::from(big.clone())).unwrap()).await.unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn stateless_mode_answers_without_a_session() {
    let app = app(|s| s.http.stateless = true);
    let r = app.clone().oneshot(post().body(Body::from(INIT)).unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("mcp-session-id").is_none(), "no session in stateless mode");
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;
    let r =
        app.oneshot(post().header("mcp-protocol-version", "2025-06-18").body(Body::from(list)).unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(text(r).await.contains("get-cluster-health"));
}

fn get(path: &str) -> axum::http::request::Builder {
    axum::http::Request::get(path).header("host", "127.0.0.1:8080")
}

#[tokio::test]
async fn readiness_detail_and_metrics_need_the_token_and_an_allowed_host() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let app = app(|s| s.http.token_file = Some(token.clone()));
    // Probes get the bare status.
    let r = app.clone().oneshot(get("/readyz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&text(r).await).unwrap();
    assert_eq!(body, serde_json::json!({"status": "ready"}));
    // The detail with the token (scheme in any case).
    let r = app
        .clone()
        .oneshot(get("/readyz").header("authorization", "bearer s3cret").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text(r).await).unwrap();
    assert_eq!(body["mode"], "demo");
    let r = app.clone().oneshot(get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .clone()
        .oneshot(get("/metrics").header("authorization", "BEARER s3cret").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn without_a_token_readiness_detail_and_metrics_need_an_allowed_host() {
    let app = app(|_| {});
    let foreign = |path: &str| axum::http::Request::get(path).header("host", "evil.example.com").body(Body::empty());
    let r = app.clone().oneshot(foreign("/metrics").unwrap()).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = app.clone().oneshot(foreign("/readyz").unwrap()).await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text(r).await).unwrap();
    assert_eq!(body, serde_json::json!({"status": "ready"}), "a DNS-rebinding page sees no file paths");
    let r = app.oneshot(get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let app = app(|s| s.http.token_file = Some(token.clone()));
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = app
            .clone()
            .oneshot(post().header("authorization", format!("{scheme} s3cret")).body(Body::from(INIT)).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn a_wildcard_accept_is_served() {
    let app = app(|_| {});
    let r = app
        .oneshot(
            axum::http::Request::post("/mcp")
                .header("host", "127.0.0.1:8080")
                .header("content-type", "application/json")
                .header("accept", "*/*")
                .body(Body::from(INIT))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn rpc(app: axum::Router, body: &str) -> (u16, serde_json::Value) {
    let r = app.oneshot(post().body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_str(&text(r).await).unwrap_or_default())
}

#[tokio::test]
async fn malformed_messages_get_json_rpc_errors_with_the_right_codes() {
    let app = app(|_| {});
    let (status, body) = rpc(app.clone(), r#"{"jsonrpc":"2.0","id":5,"method":"#).await;
    assert_eq!((status, body["error"]["code"].as_i64(), body["id"].clone()), (400, Some(-32700), serde_json::json!(5)));
    let (status, body) = rpc(app.clone(), "[1,2]").await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(-32600)));
    let (status, body) =
        rpc(app.clone(), r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":{"x":1}}}"#).await;
    assert_eq!((status, body["error"]["code"].as_i64(), body["id"].clone()), (200, Some(-32602), serde_json::json!(6)));
    let (_, body) = rpc(
        app,
        &format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{}"}}"#, "x".repeat(1 << 20)),
    )
    .await;
    assert!(body.to_string().len() < 2048, "echoes are clipped: {} bytes", body.to_string().len());
}

#[tokio::test]
async fn sessions_past_the_cap_are_refused_with_a_json_rpc_error() {
    let app = app(|s| {
        s.http.max_sessions = 3;
        s.http.max_sessions_per_client = 3;
    });
    for _ in 0..3 {
        let r = app.clone().oneshot(post().body(Body::from(INIT)).unwrap()).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = app.clone().oneshot(post().body(Body::from(INIT)).unwrap()).await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = serde_json::from_str(&text(r).await).unwrap();
    assert_eq!(body["id"], 1);
    assert_eq!(body["error"]["code"], -32000);
    assert!(body["error"]["message"].as_str().unwrap().contains("maximum of 3 sessions"), "{body}");
}
