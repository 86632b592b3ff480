//! Destructive calls and who made them (issue 13), through the MCP handler with a real rmcp
//! client over an in-memory pipe, on the embedded demo cluster: the read-only switch hides
//! and refuses destructive tools; `deniedKinds` refuses a kind for every tool and verb; a
//! destructive call is confirmed through elicitation (accept applies, decline changes
//! nothing) or, without it, answers its dry run until called with `confirm: true`; and each
//! call leaves one audit record naming its backend requests, cache hits marked.

use std::sync::{Arc, Mutex};

use cluster_health_mcp::audit::Audit;
use cluster_health_mcp::mcp::{handler::Handler, state::State};
use cluster_health_mcp::settings::Settings;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Map, Value, json};

/// The demo mode with these settings, served in-process; the audit sink as the settings say.
async fn serve<C: ClientHandler>(settings: &Settings, client: C) -> RunningService<RoleClient, C> {
    let reg = cluster_health_mcp::configure::load_paths(&[], true).unwrap();
    let active = cluster_health_mcp::configure::activate(Arc::new(reg), settings).unwrap();
    let audit = Audit::new(&settings.audit).unwrap();
    let state = State::with(active, audit, settings.confirm_destructive);
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let running = Handler { state }.serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    client.serve(client_io).await.unwrap()
}

fn settings(patch: Value) -> Settings {
    let mut s = serde_json::to_value(Settings::default()).unwrap();
    cluster_health_mcp::spec::merge_patch(&mut s, &patch);
    serde_json::from_value(s).unwrap()
}

async fn call<C: ClientHandler>(client: &RunningService<RoleClient, C>, tool: &str, args: Value) -> CallToolResult {
    let args: Map<String, Value> = args.as_object().cloned().unwrap();
    client.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args)).await.unwrap()
}

fn text(r: &CallToolResult) -> String {
    r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect::<Vec<_>>().join("\n")
}

/// A client that answers every elicitation with `action` and records the messages it saw.
#[derive(Clone)]
struct Asked {
    action: ElicitationAction,
    messages: Arc<Mutex<Vec<String>>>,
}

impl Asked {
    fn new(action: ElicitationAction) -> Asked {
        Asked { action, messages: Arc::default() }
    }
}

impl ClientHandler for Asked {
    fn get_info(&self) -> ClientConfig {
        serde_json::from_value(json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"elicitation": {"form": {}}},
            "clientInfo": {"name": "identity-test", "version": "1"}
        }))
        .unwrap()
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let message = match &request {
            ElicitRequestParams::FormElicitationParams { message, .. } => message.clone(),
            _ => String::new(),
        };
        self.messages.lock().unwrap().push(message);
        let mut answer = ElicitResult::new(self.action.clone());
        if self.action == ElicitationAction::Accept {
            answer.content = Some(json!({"confirm": true}));
        }
        Ok(answer)
    }
}

fn checkout(extra: Value) -> Value {
    let mut v = json!({"namespace": "shop-frontend", "kind": "Deployment", "name": "checkout"});
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

/// checkout's restart annotation (set by restart-workload when applied).
async fn restarted_at<C: ClientHandler>(client: &RunningService<RoleClient, C>) -> Value {
    let r = call(
        client,
        "get-resource",
        json!({"api_version": "apps/v1", "kind": "Deployment", "namespace": "shop-frontend", "name": "checkout",
               "fields": ["spec.template.metadata.annotations"]}),
    )
    .await;
    let object = r.structured_content.unwrap()["object"].clone();
    object["annotations"]["remediation.aiops/restarted-at"].clone()
}

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test]
async fn read_only_hides_destructive_tools_and_refuses_calls_to_them() {
    let client = serve(&settings(json!({"read_only": true})), ()).await;
    let names: Vec<String> = client.list_all_tools().await.unwrap().iter().map(|t| t.name.to_string()).collect();
    assert!(names.contains(&"list-pods".to_string()));
    for hidden in ["restart-workload", "increase-memory-limit", "sync-argocd-application"] {
        assert!(!names.contains(&hidden.to_string()), "{hidden} hidden: {names:?}");
    }
    let r = call(&client, "restart-workload", checkout(json!({"dry_run": false, "confirm": true}))).await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("read-only") && text(&r).contains("nothing was done"), "{}", text(&r));
}

#[tokio::test]
async fn denied_kinds_are_refused_for_every_tool_and_verb() {
    let s = settings(json!({"backends": {"kubernetes": {"deniedKinds": ["Secret", "*.argoproj.io"]}}}));
    let client = serve(&s, ()).await;
    for (tool, args) in [
        ("get-resource", json!({"api_version": "v1", "kind": "Secret", "namespace": "shop-frontend", "name": "x"})),
        ("list-resources", json!({"api_version": "v1", "kind": "Secret"})),
        // The kind's case cannot slip past the entry.
        ("list-resources", json!({"api_version": "v1", "kind": "SECRET"})),
        ("list-resources", json!({"api_version": "argoproj.io/v1alpha1", "kind": "Application"})),
    ] {
        let r = call(&client, tool, args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{tool} {args}");
        let t = text(&r);
        assert!(t.contains("denied kind") && t.contains("nothing was sent"), "{tool} {args}: {t}");
    }
    // Other kinds answer as before.
    let r = call(&client, "list-pods", json!({"namespace": "shop-frontend", "limit": 2})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
}

/// One test, so the writes to the shared in-memory demo cluster happen in order.
#[tokio::test]
async fn destructive_calls_are_confirmed_first_and_every_call_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let s = settings(json!({"audit": {"sink": "file", "path": log}}));

    // The user declines: nothing applied; the question showed the dry run.
    let declining = Asked::new(ElicitationAction::Decline);
    let client = serve(&s, declining.clone()).await;
    let r = call(&client, "restart-workload", checkout(json!({"dry_run": false}))).await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("declined") && text(&r).contains("Nothing was changed"), "{}", text(&r));
    let asked = declining.messages.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert!(
        asked[0].contains("`restart-workload` will change") && asked[0].contains("dry run answered"),
        "{}",
        asked[0]
    );
    assert_eq!(restarted_at(&client).await, Value::Null);
    // A dry run asks nobody.
    let r = call(&client, "restart-workload", checkout(json!({}))).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(declining.messages.lock().unwrap().len(), 1);

    // Without elicitation: the dry run's answer, then `confirm: true` applies.
    let plain = serve(&s, ()).await;
    let r = call(&plain, "restart-workload", checkout(json!({"dry_run": false}))).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(
        text(&r).starts_with("DRY RUN ONLY: nothing was changed") && text(&r).contains("`confirm: true`"),
        "{}",
        text(&r)
    );
    assert_eq!(restarted_at(&plain).await, Value::Null);
    let schema = plain.list_all_tools().await.unwrap().into_iter().find(|t| t.name == "restart-workload").unwrap();
    assert_eq!(schema.input_schema["properties"]["confirm"]["type"], "boolean");

    // The user accepts: applied.
    let accepting = Asked::new(ElicitationAction::Accept);
    let client = serve(&s, accepting.clone()).await;
    let r = call(&client, "restart-workload", checkout(json!({"dry_run": false}))).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(accepting.messages.lock().unwrap().len(), 1);
    assert!(restarted_at(&client).await.is_string(), "applied after the user accepted");

    // One record per call, in order, with the caller, arguments, requests and outcome.
    let all = records(&log);
    let restarts: Vec<&Value> = all.iter().filter(|r| r["name"] == "restart-workload").collect();
    let outcomes: Vec<&str> = restarts.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["declined", "ok", "unconfirmed", "ok"], "{restarts:#?}");
    let applied = restarts[3];
    assert_eq!(applied["type"], "audit");
    assert_eq!(applied["called"], "tool");
    assert_eq!(applied["identity"]["source"], "anonymous");
    assert_eq!(applied["arguments"]["dry_run"], false);
    let verbs: Vec<String> = applied["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| format!("{} {}", q["verb"].as_str().unwrap(), q["target"].as_str().unwrap()))
        .collect();
    assert!(verbs.contains(&"patch Deployment shop-frontend/checkout".to_string()), "{verbs:?}");
    assert!(verbs.contains(&"patch (dry run) Deployment shop-frontend/checkout".to_string()), "the preview: {verbs:?}");
    assert!(applied["duration_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn a_read_served_from_the_cache_is_audited_as_a_cache_hit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let s = settings(json!({"audit": {"sink": "file", "path": log}, "backends": {"kubernetes": {"cache": {}}}}));
    let client = serve(&s, ()).await;
    for _ in 0..2 {
        let r = call(&client, "list-pods", json!({"namespace": "payments", "limit": 3, "db_password": "x"})).await;
        assert_eq!(r.is_error, Some(true), "an unknown argument is refused: {}", text(&r));
        let r = call(&client, "list-pods", json!({"namespace": "payments", "limit": 3})).await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
    }
    let all = records(&log);
    assert_eq!(all.len(), 4, "{all:#?}");
    assert_eq!(all[0]["outcome"], "error");
    assert_eq!(all[0]["arguments"]["db_password"], "<redacted>", "secrets never reach the record");
    assert_eq!(all[0]["requests"], json!([]), "nothing was sent for refused arguments");
    let requests = |i: usize| all[i]["requests"].as_array().unwrap().clone();
    assert_eq!(requests(1).len(), 1, "{:#?}", all[1]);
    assert_eq!(requests(1)[0]["backend"], "kubernetes");
    assert_eq!(requests(1)[0]["verb"], "list");
    assert_eq!(requests(1)[0]["target"], "Pod in payments");
    assert_eq!(requests(1)[0]["cached"], false);
    assert_eq!(requests(3)[0]["cached"], true, "the same read again came from the cache: {:#?}", all[3]);
}

#[tokio::test]
async fn audit_records_go_to_the_coordination_store_when_the_mode_enables_it() {
    // The demo mode enables the coordination store (SQLite in memory); no other sink is set.
    let s = settings(json!({}));
    let reg = cluster_health_mcp::configure::load_paths(&[], true).unwrap();
    let active = cluster_health_mcp::configure::activate(Arc::new(reg), &s).unwrap();
    let state = State::with(active, Audit::new(&s.audit).unwrap(), true);
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let served = state.clone();
    tokio::spawn(async move {
        let running = Handler { state: served }.serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    let client = ().serve(client_io).await.unwrap();
    let r = call(&client, "list-namespaces", json!({"limit": 2})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let unknown = client.call_tool(CallToolRequestParams::new("no-such-tool-here")).await;
    assert!(unknown.is_err(), "an unknown tool is a protocol error");

    let active = state.current();
    let cluster_health_mcp::backends::Client::Sql(sql) = active.backends.clients["coordination-store"].as_ref() else {
        panic!("the demo mode's coordination store is an sql binding")
    };
    let store = sql.store().await.unwrap();
    let select = cluster_health_mcp::backends::sql::StatementRequest {
        sql: "SELECT called, name, outcome, subject, record FROM chm_audit ORDER BY time".into(),
        params: vec![],
    };
    let rows = store.run(std::slice::from_ref(&select), true).await.unwrap()["rows"].clone();
    let got: Vec<(String, String, String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let t = |k: &str| r[k].as_str().unwrap().to_string();
            (t("called"), t("name"), t("outcome"), t("subject"))
        })
        .collect();
    assert_eq!(
        got,
        [
            ("tool".into(), "list-namespaces".into(), "ok".into(), "anonymous".into()),
            ("tool".into(), "no-such-tool-here".into(), "refused".into(), "anonymous".into()),
        ]
    );
    let record: Value = serde_json::from_str(rows[0]["record"].as_str().unwrap()).unwrap();
    assert_eq!(record["requests"][0]["verb"], "list", "{record}");
}

#[tokio::test]
async fn read_only_refuses_a_rest_route_bound_to_a_destructive_tool() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("route.yaml"),
        "apiVersion: cluster-health-mcp/v1\nkind: Route\nmetadata: {name: restart}\n\
         spec:\n  method: POST\n  path: /api/v1/restart\n  tool: restart-workload\n\
         \x20 arguments: {namespace: body.namespace, kind: body.kind, name: body.name}\n",
    )
    .unwrap();
    let reg = Arc::new(cluster_health_mcp::configure::load_paths(&[dir.path().to_path_buf()], true).unwrap());
    let body = axum::body::Bytes::from(r#"{"namespace": "shop-frontend", "kind": "Deployment", "name": "checkout"}"#);
    let post = |active: Arc<cluster_health_mcp::engine::Active>| {
        let body = body.clone();
        async move {
            let uri: axum::http::Uri = "/api/v1/restart".parse().unwrap();
            let (resp, _) = cluster_health_mcp::routes::serve::dispatch(
                &active,
                &axum::http::Method::POST,
                &uri,
                &axum::http::HeaderMap::new(),
                &body,
            )
            .await;
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            (status.as_u16(), String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    let open = cluster_health_mcp::configure::activate(reg.clone(), &settings(json!({}))).unwrap();
    let (status, _) = post(Arc::new(open)).await;
    assert_eq!(status, 200, "served (a dry run) when not read-only");
    let read_only = cluster_health_mcp::configure::activate(reg, &settings(json!({"read_only": true}))).unwrap();
    assert!(!read_only.routes.contains_key("restart"));
    let (status, body) = post(Arc::new(read_only)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-only") && body.contains("nothing was done"), "{body}");
}
