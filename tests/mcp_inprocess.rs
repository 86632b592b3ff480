//! The MCP handler through a real rmcp client over an in-memory duplex pipe: fast coverage of
//! listing, calling, errors, resources and prompts without processes or sockets.

use std::sync::Arc;

use cluster_health_mcp::engine::Active;
use cluster_health_mcp::mcp::{handler::Handler, state::State};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::json;

async fn connect() -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let reg = cluster_health_mcp::engine::compile::load_registry(&[root.join("tools.d"), root.join("modes")]).unwrap();
    let state = State::new(Active::new(Arc::new(reg), "demo").unwrap());
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let running = Handler { state }.serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    ().serve(client_io).await.unwrap()
}

fn args(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap()
}

#[tokio::test]
async fn tools_list_carries_schemas_and_annotations() {
    let client = connect().await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in ["get-cluster-health", "list-pods", "get-pod-logs", "calculate-pod-capacity", "list-models"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let list_pods = tools.iter().find(|t| t.name == "list-pods").unwrap();
    assert_eq!(list_pods.input_schema["properties"]["limit"]["maximum"], json!(500));
    assert!(list_pods.output_schema.as_ref().unwrap()["properties"]["pods"].is_object());
    assert_eq!(list_pods.annotations.as_ref().unwrap().read_only_hint, Some(true));
}

#[tokio::test]
async fn a_call_returns_structured_content_and_compact_text() {
    let client = connect().await;
    let r = client
        .call_tool(
            CallToolRequestParams::new("list-pods").with_arguments(args(json!({"namespace": "payments", "limit": 5}))),
        )
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true));
    let s = r.structured_content.unwrap();
    assert_eq!(s["returned"], 5);
    assert!(s["total"].as_u64().unwrap() > 5, "total counts beyond the page: {s}");
    assert!(s["continue"].is_string());
    let text = r.content[0].as_text().unwrap().text.clone();
    assert!(text.starts_with("5 pods in payments"), "{text}");
}

#[tokio::test]
async fn bad_arguments_are_a_tool_error_naming_the_field() {
    let client = connect().await;
    let r = client
        .call_tool(
            CallToolRequestParams::new("list-pods")
                .with_arguments(args(json!({"limit": 100000, "namespace": "Bad_NS"}))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = r.content[0].as_text().unwrap().text.clone();
    assert!(text.contains("argument `limit`") && text.contains("argument `namespace`"), "{text}");
    assert!(text.contains("Fix the arguments"), "tells the model what to do: {text}");
}

#[tokio::test]
async fn hostile_selector_input_is_refused_before_anything_is_sent() {
    let client = connect().await;
    let r = client
        .call_tool(
            CallToolRequestParams::new("list-pods").with_arguments(args(json!({"label_selector": "app=x\" or 1=1"}))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
}

#[tokio::test]
async fn unknown_tools_are_protocol_errors() {
    let client = connect().await;
    let err = client.call_tool(CallToolRequestParams::new("no-such-tool")).await.unwrap_err();
    assert!(err.to_string().contains("no-such-tool"), "{err}");
}

#[tokio::test]
async fn resources_and_prompts_are_served() {
    let client = connect().await;
    let health = client.read_resource(ReadResourceRequestParams::new("cluster://health")).await.unwrap();
    let text = match &health.contents[0] {
        rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("text contents expected, got {other:?}"),
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "degraded");
    let pods =
        client.read_resource(ReadResourceRequestParams::new("cluster://namespaces/ml-serving/pods")).await.unwrap();
    assert!(format!("{:?}", pods.contents[0]).contains("fraud-scorer"));
    let p = client
        .get_prompt(
            GetPromptRequestParams::new("investigate-pods").with_arguments(args(json!({"namespace": "payments"}))),
        )
        .await
        .unwrap();
    assert!(format!("{:?}", p.messages[0]).contains("namespace payments"));
}
