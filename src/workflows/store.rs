//! Workflow and step state in the sql store (engine-owned tables, migrated as owner
//! `workflows`). Every write a runner makes is fenced by its claim: it applies only while
//! the workflow is `in_progress` and owned by that runner, so a replica that lost its lease
//! (or a cancelled workflow) can never write again.
//!
//! Claims: PostgreSQL picks the next claimable row with `FOR UPDATE SKIP LOCKED` and sets
//! the owner and lease in the same transaction; SQLite (single replica) uses one
//! compare-and-set `UPDATE`.

use serde_json::{Map, Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::backends::sql::{Dialect, Migration, Store, StoreError};

/// The migration owner of the runner's tables.
pub const OWNER: &str = "workflows";

/// Workflow statuses.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const IN_PROGRESS: &str = "in_progress";
    pub const AWAITING_APPROVAL: &str = "awaiting_approval";
    pub const COMPLETED: &str = "completed";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
    /// Step only: its run started and has not finished.
    pub const RUNNING: &str = "running";
    /// Step only: its condition did not hold, or a gate in a dry run.
    pub const SKIPPED: &str = "skipped";
}

/// The runner's tables.
pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        id: "0001-workflows".into(),
        sql: "\
CREATE TABLE chm_workflows (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  status TEXT NOT NULL,
  dry_run BIGINT NOT NULL,
  incident_id TEXT,
  namespace TEXT,
  resource_kind TEXT,
  resource_name TEXT,
  issue_type TEXT,
  deployment_method TEXT,
  arguments TEXT NOT NULL,
  error TEXT,
  created_at TEXT NOT NULL,
  started_at TEXT,
  completed_at TEXT,
  created_ms BIGINT NOT NULL,
  owner TEXT,
  lease_until BIGINT,
  approval_deadline BIGINT
);
CREATE INDEX chm_workflows_claim ON chm_workflows (status, created_ms);
CREATE TABLE chm_workflow_steps (
  workflow_id TEXT NOT NULL,
  step_order BIGINT NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  tool TEXT,
  description TEXT,
  layer TEXT,
  status TEXT NOT NULL,
  attempts BIGINT NOT NULL,
  started_at TEXT,
  completed_at TEXT,
  result TEXT,
  error TEXT,
  PRIMARY KEY (workflow_id, step_order)
);
"
        .into(),
    }]
}

/// Apply the runner's migrations.
pub async fn migrate(store: &Store) -> Result<(), StoreError> {
    store.migrate(OWNER, &migrations()).await
}

/// Now, as stored: RFC 3339 with milliseconds.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now in unix milliseconds (leases and deadlines).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new workflow row.
#[derive(Debug, Clone, Default)]
pub struct NewWorkflow {
    pub id: String,
    pub name: String,
    pub dry_run: bool,
    /// incident_id, namespace, resource_kind, resource_name, issue_type, deployment_method.
    pub context: Map<String, Value>,
    pub arguments: Map<String, Value>,
    /// (order, name, kind, tool, description, layer).
    pub steps: Vec<NewStep>,
}

/// A new step row.
#[derive(Debug, Clone, Default)]
pub struct NewStep {
    pub order: usize,
    pub name: String,
    pub kind: String,
    pub tool: Option<String>,
    pub description: Option<String>,
    pub layer: Option<String>,
}

/// The context columns, in order.
pub const CONTEXT: [&str; 6] =
    ["incident_id", "namespace", "resource_kind", "resource_name", "issue_type", "deployment_method"];

fn text_or_null(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

fn sql_err(e: sqlx::Error) -> StoreError {
    StoreError::Statement { index: 1, message: e.to_string() }
}

/// Insert a workflow (status pending) and its steps in one transaction.
pub async fn insert(store: &Store, w: &NewWorkflow) -> Result<(), StoreError> {
    let mut tx = store.pool.begin().await.map_err(sql_err)?;
    let mut q = sqlx::query(
        "INSERT INTO chm_workflows (id, name, status, dry_run, incident_id, namespace, resource_kind, resource_name, issue_type, deployment_method, arguments, created_at, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(w.id.clone())
    .bind(w.name.clone())
    .bind(status::PENDING)
    .bind(w.dry_run as i64);
    for c in CONTEXT {
        q = q.bind(text_or_null(w.context.get(c)));
    }
    q.bind(Value::Object(w.arguments.clone()).to_string())
        .bind(now_text())
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(sql_err)?;
    for s in &w.steps {
        sqlx::query(
            "INSERT INTO chm_workflow_steps (workflow_id, step_order, name, kind, tool, description, layer, status, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)",
        )
        .bind(w.id.clone())
        .bind(s.order as i64)
        .bind(s.name.clone())
        .bind(s.kind.clone())
        .bind(s.tool.clone())
        .bind(s.description.clone())
        .bind(s.layer.clone())
        .bind(status::PENDING)
        .execute(&mut *tx)
        .await
        .map_err(sql_err)?;
    }
    tx.commit().await.map_err(sql_err)
}

/// Claim the oldest claimable workflow (pending or in progress, lease free or expired) for
/// `me` until `lease_until`; its id.
pub async fn claim(store: &Store, me: &str, lease_until: i64) -> Result<Option<String>, StoreError> {
    let now = now_ms();
    match store.dialect {
        Dialect::Postgres => {
            let mut tx = store.pool.begin().await.map_err(sql_err)?;
            let row = sqlx::query(
                "SELECT id FROM chm_workflows WHERE status IN ('pending', 'in_progress') \
                 AND (lease_until IS NULL OR lease_until < $1) ORDER BY created_ms LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql_err)?;
            let Some(row) = row else {
                tx.commit().await.map_err(sql_err)?;
                return Ok(None);
            };
            let id: String = row.get(0);
            sqlx::query("UPDATE chm_workflows SET owner = $1, lease_until = $2 WHERE id = $3")
                .bind(me.to_string())
                .bind(lease_until)
                .bind(id.clone())
                .execute(&mut *tx)
                .await
                .map_err(sql_err)?;
            tx.commit().await.map_err(sql_err)?;
            Ok(Some(id))
        }
        Dialect::Sqlite => {
            let row = sqlx::query(
                "UPDATE chm_workflows SET owner = $1, lease_until = $2 WHERE id = (\
                   SELECT id FROM chm_workflows WHERE status IN ('pending', 'in_progress') \
                   AND (lease_until IS NULL OR lease_until < $3) ORDER BY created_ms LIMIT 1) \
                 AND (lease_until IS NULL OR lease_until < $3) RETURNING id",
            )
            .bind(me.to_string())
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&store.pool)
            .await
            .map_err(sql_err)?;
            Ok(row.map(|r| r.get::<String, _>(0)))
        }
    }
}

/// Free every lease (SQLite at start: a single replica, so any lease is a dead process's).
pub async fn release_all(store: &Store) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE chm_workflows SET owner = NULL, lease_until = NULL WHERE status IN ('pending', 'in_progress')",
    )
    .execute(&store.pool)
    .await
    .map_err(sql_err)?;
    Ok(done.rows_affected())
}

/// Fail workflows whose approval deadline passed; how many.
pub async fn expire_approvals(store: &Store) -> Result<u64, StoreError> {
    let now = now_ms();
    let mut tx = store.pool.begin().await.map_err(sql_err)?;
    let ids: Vec<String> = sqlx::query(
        "SELECT id FROM chm_workflows WHERE status = 'awaiting_approval' AND approval_deadline IS NOT NULL AND approval_deadline < $1",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .map_err(sql_err)?
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    for id in &ids {
        let t = now_text();
        sqlx::query("UPDATE chm_workflow_steps SET status = 'failed', completed_at = $1, error = 'approval not given in time' WHERE workflow_id = $2 AND status = 'awaiting_approval'")
            .bind(t.clone())
            .bind(id.clone())
            .execute(&mut *tx)
            .await
            .map_err(sql_err)?;
        sqlx::query("UPDATE chm_workflows SET status = 'failed', completed_at = $1, error = 'approval not given in time', approval_deadline = NULL WHERE id = $2 AND status = 'awaiting_approval'")
            .bind(t)
            .bind(id.clone())
            .execute(&mut *tx)
            .await
            .map_err(sql_err)?;
    }
    tx.commit().await.map_err(sql_err)?;
    Ok(ids.len() as u64)
}

/// A fenced write: statements that apply only while `me` owns the in-progress workflow
/// (the lease is renewed by the same transaction). False when the claim is gone.
pub struct Fenced<'a> {
    pub store: &'a Store,
    pub id: &'a str,
    pub me: &'a str,
    pub lease_ms: i64,
}

/// One statement of a fenced write: SQL and its parameters.
pub type Statement = (&'static str, Vec<Value>);

impl Fenced<'_> {
    /// Run `statements` in one transaction after checking (and extending) the claim.
    pub async fn write(&self, statements: Vec<Statement>) -> Result<bool, StoreError> {
        let mut tx = self.store.pool.begin().await.map_err(sql_err)?;
        let held = sqlx::query(
            "UPDATE chm_workflows SET lease_until = $1 WHERE id = $2 AND owner = $3 AND status = 'in_progress'",
        )
        .bind(now_ms() + self.lease_ms)
        .bind(self.id.to_string())
        .bind(self.me.to_string())
        .execute(&mut *tx)
        .await
        .map_err(sql_err)?
        .rows_affected()
            == 1;
        if !held {
            tx.rollback().await.map_err(sql_err)?;
            return Ok(false);
        }
        for (sql, params) in statements {
            let mut q = sqlx::query(sql);
            for p in params {
                q = match p {
                    Value::Null => q.bind(Option::<String>::None),
                    Value::Bool(b) => q.bind(b as i64),
                    Value::Number(n) => q.bind(n.as_i64().unwrap_or_default()),
                    Value::String(s) => q.bind(s),
                    other => q.bind(other.to_string()),
                };
            }
            q.execute(&mut *tx).await.map_err(sql_err)?;
        }
        tx.commit().await.map_err(sql_err)?;
        Ok(true)
    }

    /// Extend the lease; false when the claim is gone.
    pub async fn renew(&self) -> Result<bool, StoreError> {
        self.write(Vec::new()).await
    }
}

/// Make a claimed workflow in progress (pending -> in_progress, started now). False when
/// someone else holds it or it is no longer runnable.
pub async fn start_claimed(store: &Store, id: &str, me: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE chm_workflows SET status = 'in_progress', started_at = COALESCE(started_at, $1) \
         WHERE id = $2 AND owner = $3 AND status IN ('pending', 'in_progress')",
    )
    .bind(now_text())
    .bind(id.to_string())
    .bind(me.to_string())
    .execute(&store.pool)
    .await
    .map_err(sql_err)?;
    Ok(done.rows_affected() == 1)
}

/// A stored workflow.
#[derive(Debug, Clone)]
pub struct WorkflowRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub dry_run: bool,
    pub context: Map<String, Value>,
    pub arguments: Map<String, Value>,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub steps: Vec<StepRow>,
}

/// A stored step.
#[derive(Debug, Clone)]
pub struct StepRow {
    pub order: i64,
    pub name: String,
    pub kind: String,
    pub tool: Option<String>,
    pub description: Option<String>,
    pub layer: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub result: Option<Value>,
    pub error: Option<String>,
}

const WORKFLOW_COLUMNS: &str = "id, name, status, dry_run, incident_id, namespace, resource_kind, resource_name, issue_type, deployment_method, arguments, error, created_at, started_at, completed_at";

fn workflow_row(r: &AnyRow) -> WorkflowRow {
    let text = |i: usize| r.try_get::<Option<String>, _>(i).ok().flatten();
    let mut context = Map::new();
    for (k, c) in CONTEXT.iter().enumerate() {
        context.insert((*c).to_string(), text(4 + k).map(Value::String).unwrap_or(Value::Null));
    }
    let arguments = text(10)
        .and_then(|a| serde_json::from_str::<Value>(&a).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    WorkflowRow {
        id: text(0).unwrap_or_default(),
        name: text(1).unwrap_or_default(),
        status: text(2).unwrap_or_default(),
        dry_run: r.try_get::<i64, _>(3).unwrap_or(0) != 0,
        context,
        arguments,
        error: text(11),
        created_at: text(12).unwrap_or_default(),
        started_at: text(13),
        completed_at: text(14),
        steps: Vec::new(),
    }
}

fn step_row(r: &AnyRow) -> StepRow {
    let text = |i: usize| r.try_get::<Option<String>, _>(i).ok().flatten();
    StepRow {
        order: r.try_get::<i64, _>(0).unwrap_or_default(),
        name: text(1).unwrap_or_default(),
        kind: text(2).unwrap_or_default(),
        tool: text(3),
        description: text(4),
        layer: text(5),
        status: text(6).unwrap_or_default(),
        attempts: r.try_get::<i64, _>(7).unwrap_or_default(),
        started_at: text(8),
        completed_at: text(9),
        result: text(10).and_then(|t| serde_json::from_str(&t).ok()),
        error: text(11),
    }
}

/// A workflow with its steps in order.
pub async fn get(store: &Store, id: &str) -> Result<Option<WorkflowRow>, StoreError> {
    let row = sqlx::query(&format!("SELECT {WORKFLOW_COLUMNS} FROM chm_workflows WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&store.pool)
        .await
        .map_err(sql_err)?;
    let Some(row) = row else { return Ok(None) };
    let mut w = workflow_row(&row);
    w.steps = sqlx::query(
        "SELECT step_order, name, kind, tool, description, layer, status, attempts, started_at, completed_at, result, error \
         FROM chm_workflow_steps WHERE workflow_id = $1 ORDER BY step_order",
    )
    .bind(id.to_string())
    .fetch_all(&store.pool)
    .await
    .map_err(sql_err)?
    .iter()
    .map(step_row)
    .collect();
    Ok(Some(w))
}

/// Filters of `list`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub namespace: Option<String>,
    pub incident_id: Option<String>,
    pub name: Option<String>,
}

/// Workflows (without steps), newest first, and how many match before the cut.
pub async fn list(store: &Store, f: &Filter, limit: i64, offset: i64) -> Result<(Vec<WorkflowRow>, i64), StoreError> {
    let cond = "($1 IS NULL OR status = $1) AND ($2 IS NULL OR namespace = $2) AND ($3 IS NULL OR incident_id = $3) AND ($4 IS NULL OR name = $4)";
    let binds = [&f.status, &f.namespace, &f.incident_id, &f.name];
    let sql = format!(
        "SELECT {WORKFLOW_COLUMNS} FROM chm_workflows WHERE {} ORDER BY created_ms DESC, id LIMIT $5 OFFSET $6",
        typed(cond, store.dialect)
    );
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = q.bind(b.clone());
    }
    let rows = q.bind(limit).bind(offset).fetch_all(&store.pool).await.map_err(sql_err)?;
    let sql = format!("SELECT COUNT(*) FROM chm_workflows WHERE {}", typed(cond, store.dialect));
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = q.bind(b.clone());
    }
    let total: i64 = q.fetch_one(&store.pool).await.map_err(sql_err)?.try_get(0).unwrap_or_default();
    Ok((rows.iter().map(workflow_row).collect(), total))
}

/// PostgreSQL cannot infer the type of `$1 IS NULL`: cast the optional text parameters.
fn typed(cond: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => cond.to_string(),
        Dialect::Postgres => {
            let mut s = cond.to_string();
            for i in 1..=4 {
                s = s.replace(&format!("${i} IS NULL"), &format!("CAST(${i} AS TEXT) IS NULL"));
            }
            s
        }
    }
}

/// Approve the gate a workflow waits at: the gate completes with who approved, and the
/// workflow becomes runnable again. The gate's order, or None when it was not waiting.
pub async fn approve(store: &Store, id: &str, result: &Value) -> Result<Option<i64>, StoreError> {
    let mut tx = store.pool.begin().await.map_err(sql_err)?;
    let moved = sqlx::query(
        "UPDATE chm_workflows SET status = 'in_progress', owner = NULL, lease_until = NULL, approval_deadline = NULL \
         WHERE id = $1 AND status = 'awaiting_approval'",
    )
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(sql_err)?
    .rows_affected();
    if moved != 1 {
        tx.rollback().await.map_err(sql_err)?;
        return Ok(None);
    }
    let order = sqlx::query(
        "SELECT step_order FROM chm_workflow_steps WHERE workflow_id = $1 AND status = 'awaiting_approval' ORDER BY step_order LIMIT 1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *tx)
    .await
    .map_err(sql_err)?
    .map(|r| r.get::<i64, _>(0));
    sqlx::query(
        "UPDATE chm_workflow_steps SET status = 'completed', completed_at = $1, result = $2 WHERE workflow_id = $3 AND status = 'awaiting_approval'",
    )
    .bind(now_text())
    .bind(result.to_string())
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(sql_err)?;
    tx.commit().await.map_err(sql_err)?;
    Ok(order)
}

/// Cancel a workflow that has not finished; its unfinished steps are cancelled too. The
/// status it had, or None when it had already finished (or does not exist).
pub async fn cancel(store: &Store, id: &str, reason: &str) -> Result<Option<String>, StoreError> {
    let mut tx = store.pool.begin().await.map_err(sql_err)?;
    let before = sqlx::query("SELECT status FROM chm_workflows WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql_err)?
        .map(|r| r.get::<String, _>(0));
    let Some(before) =
        before.filter(|s| [status::PENDING, status::IN_PROGRESS, status::AWAITING_APPROVAL].contains(&s.as_str()))
    else {
        tx.rollback().await.map_err(sql_err)?;
        return Ok(None);
    };
    let t = now_text();
    sqlx::query(
        "UPDATE chm_workflows SET status = 'cancelled', error = $1, completed_at = $2, owner = NULL, lease_until = NULL WHERE id = $3",
    )
    .bind(reason.to_string())
    .bind(t.clone())
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(sql_err)?;
    sqlx::query(
        "UPDATE chm_workflow_steps SET status = 'cancelled', completed_at = $1 WHERE workflow_id = $2 AND status IN ('pending', 'running', 'awaiting_approval')",
    )
    .bind(t)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(sql_err)?;
    tx.commit().await.map_err(sql_err)?;
    Ok(Some(before))
}

impl WorkflowRow {
    /// The answer of `get`: the contract's fields plus the steps' results.
    pub fn to_json(&self, with_steps: bool) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("workflow_id".into(), json!(self.id));
        m.insert("workflow".into(), json!(self.name));
        m.insert("status".into(), json!(self.status));
        m.insert("dry_run".into(), json!(self.dry_run));
        for (k, v) in &self.context {
            m.insert(k.clone(), v.clone());
        }
        m.insert("error_message".into(), json!(self.error));
        m.insert("created_at".into(), json!(self.created_at));
        m.insert("started_at".into(), json!(self.started_at));
        m.insert("completed_at".into(), json!(self.completed_at));
        m.insert("duration".into(), json!(duration(self.started_at.as_deref(), self.completed_at.as_deref())));
        if with_steps {
            m.insert("arguments".into(), Value::Object(self.arguments.clone()));
            let steps: Vec<Value> = self
                .steps
                .iter()
                .map(|s| {
                    json!({
                        "order": s.order, "name": s.name, "kind": s.kind, "tool": s.tool,
                        "description": s.description, "layer": s.layer, "status": s.status,
                        "attempts": s.attempts, "started_at": s.started_at, "completed_at": s.completed_at,
                        "result": s.result, "error_message": s.error,
                    })
                })
                .collect();
            m.insert("steps".into(), Value::Array(steps));
        }
        Value::Object(m)
    }
}

/// `1m5s`-style duration between two stored times.
fn duration(start: Option<&str>, end: Option<&str>) -> Option<String> {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let d = parse(end?)?.signed_duration_since(parse(start?)?);
    let ms = d.num_milliseconds().max(0);
    let (m, s) = (ms / 60_000, (ms % 60_000) as f64 / 1000.0);
    Some(if m > 0 { format!("{m}m{s:.0}s") } else { format!("{s:.1}s") })
}
