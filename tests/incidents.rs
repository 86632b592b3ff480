//! The shipped incident tools (tools.d/coordination/incidents.yaml) on the shipped demo mode
//! with the coordination store on a SQLite file: incidents derived from remediation workflows
//! (rows of the runner's table, written with its own store functions) are listed beside the
//! stored ones with their mapped status, a workflow of a stored incident shows under that
//! incident instead, and everything is still there after a restart on the same file.

use std::sync::Arc;

use cluster_health_mcp::backends::Client;
use cluster_health_mcp::engine::{Active, invoke};
use cluster_health_mcp::settings::Settings;
use cluster_health_mcp::workflows::store::{self as wf, NewWorkflow};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

/// The shipped catalogue in demo mode, the store on `url`.
fn demo(url: &str) -> Active {
    let settings = Settings {
        mode: "demo".into(),
        backends: serde_json::from_value(json!({"coordination-store": {"url": url}})).unwrap(),
        ..Settings::default()
    };
    let registry = cluster_health_mcp::configure::load_paths(&[], true)
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    cluster_health_mcp::configure::activate(Arc::new(registry), &settings).unwrap()
}

async fn call(active: &Active, tool: &str, args: Value) -> Result<Value, String> {
    let tool = active.tools.get(tool).unwrap_or_else(|| panic!("no tool {tool}")).clone();
    let args: Map<String, Value> = args.as_object().cloned().unwrap();
    invoke::run(active, &tool.proc, &args, None, &CancellationToken::new())
        .await
        .map(|o| o.structured)
        .map_err(|e| e.to_string())
}

async fn store(active: &Active) -> cluster_health_mcp::backends::sql::Store {
    match active.backends.get("coordination-store").unwrap().as_ref() {
        Client::Sql(s) => s.store().await.unwrap().clone(),
        _ => panic!("coordination-store is not sql"),
    }
}

fn workflow(id: &str, incident: Option<&str>) -> NewWorkflow {
    let mut context = Map::new();
    if let Some(i) = incident {
        context.insert("incident_id".into(), json!(i));
    }
    context.insert("namespace".into(), json!("shop"));
    context.insert("resource_kind".into(), json!("Pod"));
    context.insert("resource_name".into(), json!("checkout-7d9f"));
    context.insert("issue_type".into(), json!("OOMKilled"));
    NewWorkflow {
        id: id.into(),
        name: "oomkilled-raise-memory-limit".into(),
        dry_run: true,
        context,
        ..Default::default()
    }
}

#[tokio::test]
async fn workflows_without_a_stored_incident_are_listed_as_derived_incidents_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let active = demo(&url);

    // A fresh store: the runner's table exists before any workflow ran, the list is empty.
    let empty = call(&active, "list-incidents", json!({})).await.unwrap();
    assert_eq!((empty["total"].clone(), empty["incidents"].clone()), (json!(0), json!([])));

    let stored = call(
        &active,
        "create-incident",
        json!({"title": "checkout OOMKilled", "description": "d", "severity": "high", "target": "checkout", "namespace": "shop"}),
    )
    .await
    .unwrap();
    let inc = stored["incident_id"].as_str().unwrap().to_string();
    let db = store(&active).await;
    wf::insert(&db, &workflow("wf-0000000a", Some(&inc))).await.unwrap();
    wf::insert(&db, &workflow("wf-0000000b", Some("inc-elsewhere"))).await.unwrap();
    wf::insert(&db, &workflow("wf-0000000c", None)).await.unwrap();
    sqlx::query(
        "UPDATE chm_workflows SET status = 'completed', completed_at = '2026-12-01T06:00:00.000Z' WHERE id = $1",
    )
    .bind("wf-0000000c")
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE chm_workflows SET status = 'failed', error = 'patch refused' WHERE id = $1")
        .bind("wf-0000000b")
        .execute(&db.pool)
        .await
        .unwrap();

    let all = call(&active, "list-incidents", json!({"namespace": "shop"})).await.unwrap();
    assert_eq!(all["total"], 3, "{all}");
    let by_id = |id: &str| all["incidents"].as_array().unwrap().iter().find(|i| i["id"] == id).cloned();
    // The stored incident once (its workflow shows under it, not as another incident).
    assert_eq!(by_id(&inc).unwrap()["source"], "manual");
    let other = by_id("inc-elsewhere").expect("a workflow's own incident id");
    assert_eq!(
        (&other["source"], &other["status"], &other["target"], &other["workflow_id"], &other["severity"]),
        (&json!("workflow"), &json!("failed"), &json!("Pod/checkout-7d9f"), &json!("wf-0000000b"), &json!("unknown"))
    );
    assert!(other["description"].as_str().unwrap().ends_with("failed: patch refused"), "{other}");
    let lone = by_id("wf-0000000c").expect("a workflow without incident is listed by its own id");
    assert_eq!((&lone["status"], &lone["resolved_at"]), (&json!("remediated"), &json!("2026-12-01T06:00:00.000Z")));

    let remediated = call(&active, "list-incidents", json!({"status": "completed"})).await.unwrap();
    assert_eq!(remediated["total"], 1, "{remediated}");
    let pending = call(&active, "list-incidents", json!({"status": "in_progress"})).await.unwrap();
    assert_eq!(pending["total"], 0, "the stored incident's own workflow is not a second incident: {pending}");

    let got = call(&active, "get-incident", json!({"id": inc})).await.unwrap();
    assert_eq!(got["workflows"][0]["id"], "wf-0000000a", "{got}");
    let derived = call(&active, "get-incident", json!({"id": "wf-0000000c"})).await.unwrap();
    assert_eq!(
        (&derived["incident"]["source"], &derived["incident"]["status"]),
        (&json!("workflow"), &json!("remediated"))
    );

    // A restart on the same file: the same answers.
    drop(active);
    let again = demo(&url);
    let after = call(&again, "list-incidents", json!({"namespace": "shop"})).await.unwrap();
    assert_eq!(after, all);
}

#[tokio::test]
async fn the_demo_store_is_in_memory_unless_pointed_at_a_file() {
    let settings = Settings { mode: "demo".into(), ..Settings::default() };
    let registry = cluster_health_mcp::configure::load_paths(&[], true).unwrap();
    let active = cluster_health_mcp::configure::activate(Arc::new(registry), &settings).unwrap();
    assert_eq!(cluster_health_mcp::configure::endpoints(&active)["coordination-store"], "sqlite::memory:");
    let made =
        call(&active, "create-incident", json!({"title": "t", "description": "d", "severity": "low", "target": "x"}))
            .await
            .unwrap();
    let listed = call(&active, "list-incidents", json!({})).await.unwrap();
    assert_eq!(listed["incidents"][0]["id"], made["incident_id"]);
}
