//! The `sql` backend kind against real databases: SQLite (a file and `:memory:`) and a
//! throwaway PostgreSQL (tests/support/postgres.sh, run as an unprivileged user). Tools run
//! through the engine as a client would call them; migrations are checksummed; a changed
//! applied migration refuses to start. Prints migration time and create/list latency.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_health_mcp::backends::sql::{Migration, Store, StoreError};
use cluster_health_mcp::backends::{Client, Effect};
use cluster_health_mcp::engine::compile::load_registry;
use cluster_health_mcp::engine::{Active, invoke};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

const MIGRATION_1: &str = "CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT NOT NULL, weight INTEGER, meta TEXT)";
const MIGRATION_2: &str = "CREATE INDEX notes_title ON notes (title);\nALTER TABLE notes ADD COLUMN done BOOLEAN";

/// The specs: a store binding (url, optional password file), a mode, and two tools.
fn specs(url: &str, password_file: Option<&str>, migration_2: &str) -> String {
    let password = password_file.map(|f| format!("password: {{file: {f:?}}}")).unwrap_or_default();
    let indent = |s: &str| s.lines().map(|l| format!("          {l}")).collect::<Vec<_>>().join("\n");
    format!(
        r#"
apiVersion: cluster-health-mcp/v1
kind: Backend
metadata: {{name: store}}
spec:
  type: sql
  url: {url:?}
  {password}
  poolSize: 4
  migrations:
    - id: 001-notes
      sql: {MIGRATION_1:?}
    - id: 002-title-index
      sql: |
{m2}
---
apiVersion: cluster-health-mcp/v1
kind: Mode
metadata: {{name: test}}
spec: {{backends: {{store: {{}}}}}}
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {{name: add-note}}
spec:
  description: Add a note.
  input:
    id: {{type: string, required: true}}
    title: {{type: string, required: true}}
    weight: {{type: integer}}
    meta: {{type: object}}
  steps:
    add:
      sql:
        backend: store
        statements:
          - sql: "INSERT INTO notes (id, title, weight, meta, done) VALUES ($1, $2, CAST($3 AS INTEGER), $4, $5)"
            params: ["{{{{ id }}}}", "{{{{ title }}}}", "{{{{ weight }}}}", "{{{{ meta }}}}", "{{{{ false }}}}"]
          - sql: "SELECT COUNT(*) AS total FROM notes"
  output:
    structured:
      inserted: add.results[0].rows_affected
      total: add.rows[0].total
    text: "{{{{ inserted }}}} added, {{{{ total }}}} in all"
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {{name: list-notes}}
spec:
  description: List notes whose title contains some text.
  input:
    contains: {{type: string, default: ""}}
    limit: {{type: integer, default: 10}}
  steps:
    notes:
      sql:
        backend: store
        statements:
          - sql: "SELECT id, title, weight, meta FROM notes WHERE title LIKE $1 ORDER BY id LIMIT $2"
            params: ["%{{{{ contains }}}}%", "{{{{ limit }}}}"]
  output:
    structured:
      notes: notes.rows
    text: "{{{{ notes | length }}}} notes"
"#,
        m2 = indent(migration_2)
    )
}

fn active(specs: &str) -> (Active, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("specs.yaml"), specs).unwrap();
    let reg = load_registry(&[dir.path().to_path_buf()])
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    (Active::new(Arc::new(reg), "test").unwrap(), dir)
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

async fn call(active: &Active, tool: &str, a: Value) -> Result<Value, String> {
    let tool = active.tools.get(tool).unwrap().clone();
    invoke::run(active, &tool.proc, &args(a), None, &CancellationToken::new())
        .await
        .map(|o| o.structured)
        .map_err(|e| e.to_string())
}

/// Connect and migrate every store of the mode (what `serve` does at start).
async fn start(active: &Active) -> Result<(), String> {
    cluster_health_mcp::backends::sql::start(&active.backends).await
}

fn store_of(active: &Active) -> &cluster_health_mcp::backends::sql::SqlBackend {
    match active.backends.get("store").unwrap().as_ref() {
        Client::Sql(s) => s,
        _ => panic!("store is not an sql client"),
    }
}

/// The whole behaviour on one database: migrate, write and read through tools, typed values
/// round-trip, a failing statement rolls its transaction back. Returns the figures.
async fn exercise(url: &str, password_file: Option<&str>, label: &str) {
    let (active, _dir) = active(&specs(url, password_file, MIGRATION_2));
    start(&active).await.unwrap();
    let store = store_of(&active).store().await.unwrap();
    eprintln!("{label}: migrations applied in {:.1} ms", store.migrated_in.as_secs_f64() * 1000.0);

    let tool = active.tools.get("add-note").unwrap();
    assert_eq!(tool.proc.effect(), Effect::Store);
    assert!(!tool.hints.read_only && !tool.hints.destructive, "{:?}", tool.hints);
    assert_eq!(active.tools.get("list-notes").unwrap().proc.effect(), Effect::Read);

    let out = call(&active, "add-note", json!({"id": "n1", "title": "disk full", "weight": 3, "meta": {"a": [1]}}))
        .await
        .unwrap();
    assert_eq!(out, json!({"inserted": 1, "total": 1}));
    // Hostile text is a value, never SQL.
    let evil = "x'); DROP TABLE notes; --";
    call(&active, "add-note", json!({"id": "n2", "title": evil})).await.unwrap();
    let out = call(&active, "list-notes", json!({})).await.unwrap();
    assert_eq!(
        out["notes"],
        json!([
            {"id": "n1", "title": "disk full", "weight": 3, "meta": "{\"a\":[1]}"},
            {"id": "n2", "title": evil, "weight": null, "meta": null},
        ])
    );
    // A duplicate id fails the first statement: nothing of the call is kept.
    let err = call(&active, "add-note", json!({"id": "n1", "title": "again"})).await.unwrap_err();
    assert!(err.contains("statement 1 failed"), "{err}");
    let out = call(&active, "list-notes", json!({"contains": "full"})).await.unwrap();
    assert_eq!(out["notes"].as_array().unwrap().len(), 1);

    // Latency: 50 creates and 50 lists.
    let n = 50;
    let t = Instant::now();
    for i in 0..n {
        call(&active, "add-note", json!({"id": format!("bench-{i:03}"), "title": "bench"})).await.unwrap();
    }
    let create = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        call(&active, "list-notes", json!({"limit": 20})).await.unwrap();
    }
    let list = t.elapsed() / n;
    eprintln!("{label}: create-note {create:?} per call, list-notes (20 rows) {list:?} per call (mean of {n})");
}

/// A restart on the same database with the second migration's text changed refuses to
/// start, naming the migration.
async fn changed_migration_refuses(url: &str, password_file: Option<&str>) {
    let (active, _dir) = active(&specs(url, password_file, &format!("{MIGRATION_2}\n-- edited")));
    let err = start(&active).await.unwrap_err();
    assert!(
        err.contains("backend `store`")
            && err.contains("migration `002-title-index`")
            && err.contains("must never change"),
        "{err}"
    );
    // Calls say so too.
    let err = call(&active, "list-notes", json!({})).await.unwrap_err();
    assert!(err.contains("002-title-index"), "{err}");
}

#[tokio::test]
async fn sqlite_file_is_created_migrated_and_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("sub/store.db").display());
    exercise(&url, None, "sqlite file").await;
    // Restart: the rows are still there, migrations are not applied twice.
    let (active, _d) = active(&specs(&url, None, MIGRATION_2));
    start(&active).await.unwrap();
    let out = call(&active, "list-notes", json!({"contains": "disk"})).await.unwrap();
    assert_eq!(out["notes"][0]["id"], "n1");
    changed_migration_refuses(&url, None).await;
}

#[tokio::test]
async fn sqlite_in_memory_keeps_its_data_for_the_life_of_the_client() {
    exercise("sqlite::memory:", None, "sqlite memory").await;
}

#[tokio::test]
async fn owners_migrate_their_own_tables_and_a_changed_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("owners.db").display());
    let (active, _d) = active(&specs(&url, None, MIGRATION_2));
    let store: &Store = store_of(&active).store().await.unwrap();
    let mine = vec![Migration { id: "001-notes".into(), sql: "CREATE TABLE wf_runs (id TEXT PRIMARY KEY)".into() }];
    // Same id as the binding's migration, another owner: no clash.
    store.migrate("workflows", &mine).await.unwrap();
    store.migrate("workflows", &mine).await.unwrap();
    let changed = vec![Migration { id: "001-notes".into(), sql: "CREATE TABLE wf_runs (id INTEGER)".into() }];
    match store.migrate("workflows", &changed).await {
        Err(StoreError::Changed { owner, id, index: 0, .. }) => {
            assert_eq!((owner.as_str(), id.as_str()), ("workflows", "001-notes"))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    sqlx::query("INSERT INTO wf_runs (id) VALUES ($1)").bind("w1").execute(&store.pool).await.unwrap();
}

/// A PostgreSQL cluster started by tests/support/postgres.sh; stopped when dropped (the
/// script stops it when its stdin closes).
struct Postgres {
    child: Child,
    url: String,
    password_file: String,
}

impl Postgres {
    fn start() -> Postgres {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/postgres.sh");
        let mut child = Command::new(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("tests/support/postgres.sh runs");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines.next().and_then(Result::ok).expect("postgres.sh prints the URL (see its stderr)");
        let password_file = lines.next().and_then(Result::ok).expect("postgres.sh prints the password file");
        Postgres { child, url, password_file }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

#[tokio::test]
async fn postgres_with_a_password_secret_runs_the_same_tools() {
    let pg = Postgres::start();
    exercise(&pg.url, Some(&pg.password_file), "postgres").await;
    changed_migration_refuses(&pg.url, Some(&pg.password_file)).await;
    // Without the password the server cannot connect, and says so without leaking it.
    let (active, _d) = active(&specs(&pg.url, None, MIGRATION_2));
    let err = call(&active, "list-notes", json!({})).await.unwrap_err();
    let secret = std::fs::read_to_string(&pg.password_file).unwrap();
    assert!(err.contains("cannot connect") && !err.contains(secret.trim()), "{err}");
}
