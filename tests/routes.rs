//! REST routes from `kind: Route` specs through the axum router (tower oneshot): argument
//! mapping from path, query, body (both spellings) and headers, status and body mapping,
//! error mapping, the guards of /mcp, mode selection, the OpenAPI document, and located
//! validation errors for bad routes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use cluster_health_mcp::engine::Active;
use cluster_health_mcp::mcp::{http, state::State};
use cluster_health_mcp::settings::Settings;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A tool with no backend (it shapes its inputs) and routes onto it.
const SPECS: &str = r#"
apiVersion: cluster-health-mcp/v1
kind: Mode
metadata: {name: test}
spec:
  routes: {exclude: [hidden]}
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: greet}
spec:
  description: Greets.
  input:
    name: {type: string, required: true, maxLength: 20}
    count: {type: integer, default: 1, minimum: 1, maximum: 5}
    loud: {type: boolean, default: false}
    tags: {type: array, items: {type: string}, default: []}
  output:
    structured:
      greeting: "(('HELLO ' if loud else 'hello ') ~ name) * count"
      tags: tags
      count: count
    error: "{% if name == 'nobody' %}nobody is not here{% endif %}"
---
apiVersion: cluster-health-mcp/v1
kind: Route
metadata: {name: greet-get}
spec:
  method: GET
  path: /api/v1/greet/{name}
  tool: greet
---
apiVersion: cluster-health-mcp/v1
kind: Route
metadata: {name: greet-literal}
spec:
  method: GET
  path: /api/v1/greet/world
  tool: greet
  arguments: {name: "'planet'"}
---
apiVersion: cluster-health-mcp/v1
kind: Route
metadata: {name: greet-post}
spec:
  method: POST
  path: /api/v1/greetings
  tool: greet
  arguments:
    name: body.name or body.Name
    tags: body.tag_list or body.tagList
    loud: headers['x-loud'] == 'yes' or none
  response:
    status: 201
    body: {status: success, message: "{{ result.greeting }}", count: "{{ result.count }}"}
  errors:
    - on: [error]
      when: "'not here' in error.message"
      status: 404
      contentType: text/plain
      body: "Greetee not found"
---
apiVersion: cluster-health-mcp/v1
kind: Route
metadata: {name: hidden}
spec:
  method: DELETE
  path: /api/v1/greetings
  tool: greet
"#;

fn dir_with(specs: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("specs.yaml"), specs).unwrap();
    dir
}

fn app_with(paths: &[PathBuf], mode: &str, configure: impl FnOnce(&mut Settings)) -> axum::Router {
    let reg = cluster_health_mcp::engine::compile::load_registry(paths)
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    let state = State::new(Active::new(Arc::new(reg), mode).unwrap());
    let mut settings = Settings::default();
    configure(&mut settings);
    http::router(state, &settings.http, "127.0.0.1:8080".parse().unwrap(), CancellationToken::new()).unwrap()
}

fn test_app() -> (axum::Router, tempfile::TempDir) {
    let dir = dir_with(SPECS);
    (app_with(&[dir.path().to_path_buf()], "test", |_| {}), dir)
}

fn req(method: &str, uri: &str) -> axum::http::request::Builder {
    axum::http::Request::builder().method(method).uri(uri).header("host", "127.0.0.1:8080")
}

async fn send(app: &axum::Router, r: axum::http::Request<Body>) -> (u16, String, String) {
    let resp = app.clone().oneshot(r).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned();
    (status, ct, body)
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn path_and_query_values_become_typed_arguments() {
    let (app, _d) = test_app();
    let (s, ct, b) = send(&app, req("GET", "/api/v1/greet/bob?count=2&loud=true").body(Body::empty()).unwrap()).await;
    assert_eq!((s, ct.as_str()), (200, "application/json"), "{b}");
    assert_eq!(json_of(&b)["greeting"], "HELLO bobHELLO bob");
    // A percent-encoded segment is decoded; repeated array parameters collect.
    let (s, _, b) = send(&app, req("GET", "/api/v1/greet/b%20b?tags=a&tags=b").body(Body::empty()).unwrap()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(json_of(&b)["tags"], json!(["a", "b"]));
}

#[tokio::test]
async fn a_literal_segment_wins_over_a_variable() {
    let (app, _d) = test_app();
    let (s, _, b) = send(&app, req("GET", "/api/v1/greet/world").body(Body::empty()).unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(json_of(&b)["greeting"], "hello planet");
}

#[tokio::test]
async fn bad_arguments_are_400_with_the_error_body() {
    let (app, _d) = test_app();
    let (s, ct, b) = send(&app, req("GET", "/api/v1/greet/bob?count=9").body(Body::empty()).unwrap()).await;
    assert_eq!((s, ct.as_str()), (400, "application/json"));
    let v = json_of(&b);
    assert_eq!(v["status"], "error");
    assert!(v["error"].as_str().unwrap().contains("count"), "{b}");
    let (s, _, b) = send(&app, req("GET", "/api/v1/greet/bob?count=two").body(Body::empty()).unwrap()).await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test]
async fn a_body_in_either_spelling_maps_to_the_same_arguments() {
    let (app, _d) = test_app();
    for body in [json!({"name": "ann", "tag_list": ["x"]}), json!({"Name": "ann", "tagList": ["x"]})] {
        let r = req("POST", "/api/v1/greetings")
            .header("content-type", "application/json")
            .header("x-loud", "yes")
            .body(Body::from(body.to_string()))
            .unwrap();
        let (s, _, b) = send(&app, r).await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(json_of(&b), json!({"status": "success", "message": "HELLO ann", "count": 1}));
    }
}

#[tokio::test]
async fn a_tool_error_maps_to_the_routes_error_response() {
    let (app, _d) = test_app();
    let r = req("POST", "/api/v1/greetings").body(Body::from(r#"{"name": "nobody"}"#)).unwrap();
    let (s, ct, b) = send(&app, r).await;
    assert_eq!((s, ct.as_str(), b.as_str()), (404, "text/plain", "Greetee not found"));
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_400() {
    let (app, _d) = test_app();
    for body in ["{not json", "[1, 2]"] {
        let (s, _, b) = send(&app, req("POST", "/api/v1/greetings").body(Body::from(body)).unwrap()).await;
        assert_eq!(s, 400, "{body}: {b}");
        assert_eq!(json_of(&b)["status"], "error");
    }
    let (s, _, b) = send(&app, req("POST", "/api/v1/greetings").body(Body::empty()).unwrap()).await;
    assert_eq!(s, 400, "a missing required field: {b}");
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let (app, _d) = test_app();
    let (s, _, _) = send(&app, req("GET", "/api/v1/nothing").body(Body::empty()).unwrap()).await;
    assert_eq!(s, 404);
    let resp = app.clone().oneshot(req("PUT", "/api/v1/greetings").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST", "the mode excludes the DELETE route");
}

#[tokio::test]
async fn routes_have_the_guards_of_mcp() {
    let (app, _d) = test_app();
    let r = req("GET", "/api/v1/greet/bob").header("origin", "http://evil.example.com").body(Body::empty()).unwrap();
    assert_eq!(send(&app, r).await.0, 403);
    let r =
        axum::http::Request::get("/api/v1/greet/bob").header("host", "evil.example.com").body(Body::empty()).unwrap();
    assert_eq!(send(&app, r).await.0, 403);
    let r = req("GET", "/api/v1/greet/bob").header("origin", "http://localhost:3000").body(Body::empty()).unwrap();
    assert_eq!(send(&app, r).await.0, 200);
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(64 * 1024));
    let dir = dir_with(SPECS);
    let small = app_with(&[dir.path().to_path_buf()], "test", |s| s.http.body_limit = 1024);
    assert_eq!(send(&small, req("POST", "/api/v1/greetings").body(Body::from(big)).unwrap()).await.0, 413);

    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let locked = app_with(&[dir.path().to_path_buf()], "test", |s| s.http.token_file = Some(token.clone()));
    assert_eq!(send(&locked, req("GET", "/api/v1/greet/bob").body(Body::empty()).unwrap()).await.0, 401);
    let r = req("GET", "/api/v1/greet/bob").header("authorization", "Bearer s3cret").body(Body::empty()).unwrap();
    assert_eq!(send(&locked, r).await.0, 200);
}

#[tokio::test]
async fn the_openapi_document_describes_the_served_routes() {
    let (app, _d) = test_app();
    let (s, _, b) = send(&app, req("GET", "/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(s, 200);
    let doc = json_of(&b);
    assert_eq!(doc["openapi"], "3.1.0");
    let get = &doc["paths"]["/api/v1/greet/{name}"]["get"];
    let params = get["parameters"].as_array().unwrap();
    let count = params.iter().find(|p| p["name"] == "count").unwrap();
    assert_eq!((count["in"].as_str(), count["schema"]["type"].as_str()), (Some("query"), Some("integer")));
    let name = params.iter().find(|p| p["name"] == "name").unwrap();
    assert_eq!((name["in"].as_str(), name["required"].as_bool()), (Some("path"), Some(true)));
    let post = &doc["paths"]["/api/v1/greetings"]["post"];
    let body = &post["requestBody"]["content"]["application/json"]["schema"];
    assert!(body["properties"]["name"].is_object() && body["properties"]["Name"].is_object(), "{body}");
    assert!(body.get("required").is_none(), "an input with two spellings needs neither: {body}");
    assert!(post["responses"]["201"].is_object() && post["responses"]["404"]["content"]["text/plain"].is_object());
    assert!(doc["paths"]["/api/v1/greetings"].get("delete").is_none(), "the mode excludes it");
}

#[tokio::test]
async fn the_shipped_health_routes_answer_in_the_demo_mode() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let app = app_with(&[root.join("tools.d"), root.join("modes")], "demo", |_| {});
    let (s, _, b) = send(&app, req("GET", "/health").body(Body::empty()).unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(json_of(&b), json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}));
    let (s, _, b) = send(&app, req("GET", "/api/v1/health").body(Body::empty()).unwrap()).await;
    assert_eq!(s, 200, "{b}");
    let v = json_of(&b);
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["dependencies"]["kubernetes"]["status"], "ok");
    assert!(v["dependencies"]["kubernetes"]["latency_ms"].is_number());
    assert!(v.get("sections").is_none());
}

/// Validate `specs` and return every diagnostic as text.
fn problems(specs: &str) -> String {
    let dir = dir_with(specs);
    match cluster_health_mcp::engine::compile::load_registry(&[dir.path().to_path_buf()]) {
        Ok(_) => String::new(),
        Err(d) => d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"),
    }
}

const TOOL: &str = "apiVersion: cluster-health-mcp/v1\nkind: Tool\nmetadata: {name: greet}\nspec:\n  description: Greets.\n  input:\n    name: {type: string}\n  output:\n    structured: {name: name}\n";

fn route(name: &str, body: &str) -> String {
    format!("---\napiVersion: cluster-health-mcp/v1\nkind: Route\nmetadata: {{name: {name}}}\nspec:\n{body}")
}

#[test]
fn an_unknown_tool_is_a_located_error() {
    let p = problems(&format!("{TOOL}{}", route("r", "  method: GET\n  path: /a\n  tool: greeet\n")));
    assert!(p.contains("specs.yaml:17:9: error: unknown tool `greeet`") && p.contains("did you mean `greet`"), "{p}");
}

#[test]
fn an_unused_path_variable_is_a_located_error() {
    let p = problems(&format!("{TOOL}{}", route("r", "  method: GET\n  path: /a/{id}\n  tool: greet\n")));
    assert!(p.contains("specs.yaml:16:9: error: path variable `id` is not used"), "{p}");
    let p = problems(&format!(
        "{TOOL}{}",
        route("r", "  method: GET\n  path: /a/{id}\n  tool: greet\n  arguments: {name: path.idd}\n")
    ));
    assert!(p.contains("the path `/a/{id}` has no variable `idd`"), "{p}");
}

#[test]
fn an_argument_that_is_not_an_input_is_a_located_error() {
    let p = problems(&format!(
        "{TOOL}{}",
        route("r", "  method: POST\n  path: /a\n  tool: greet\n  arguments:\n    nmae: body.name\n")
    ));
    assert!(p.contains("specs.yaml:19:5: error: `nmae` is not an input of tool `greet`"), "{p}");
    assert!(p.contains("did you mean `name`?"), "{p}");
}

#[test]
fn routes_of_one_method_and_path_shape_conflict() {
    let p = problems(&format!(
        "{TOOL}{}{}{}",
        route("a", "  method: GET\n  path: /x/{name}\n  tool: greet\n"),
        route("b", "  method: GET\n  path: /x/{other}\n  tool: greet\n  arguments: {name: path.other}\n"),
        route("c", "  method: POST\n  path: /x/{name}\n  tool: greet\n"),
    ));
    assert!(p.contains("route conflicts with route `a` (GET /x/{name}"), "{p}");
    assert_eq!(p.matches("error:").count(), 1, "{p}");
}

#[test]
fn undeclared_template_names_and_reserved_paths_are_errors() {
    let p = problems(&format!(
        "{TOOL}{}",
        route("r", "  method: GET\n  path: /mcp\n  tool: greet\n  response:\n    body: {x: \"{{ reslt.name }}\"}\n")
    ));
    assert!(p.contains("path `/mcp` is served by the server itself"), "{p}");
    assert!(p.contains("undeclared variable `reslt`"), "{p}");
}
