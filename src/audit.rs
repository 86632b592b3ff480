//! Audit: one structured record per tool call, resource read and REST route call. When, who
//! (the caller's identity, never a credential), what (the tool or route and its arguments,
//! secrets redacted), which backend requests it sent (verb and target; answers served from
//! a read cache are marked `cached`, they reached no backend), the outcome and how long it
//! took.
//!
//! A call is run inside [`collect`], which gathers the backend requests made by its steps
//! (they run in the caller's task, as the identity does); [`Audit::record`] then writes the
//! record to the configured sink: JSON lines on stderr or appended to a file, and to the
//! coordination engine's SQL store (table `chm_audit`) when the active mode enables it.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::backends::sql::{Migration, Store};
use crate::identity::Identity;
use crate::settings::{AuditSettings, AuditSink};

/// Marker that replaces a redacted argument.
pub const REDACTED: &str = "<redacted>";

/// One backend request a call made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendRequest {
    /// The binding.
    pub backend: String,
    /// Its kind (`kubernetes`, `prometheus`, ...).
    pub kind: &'static str,
    /// What was asked: the Kubernetes verb, the HTTP method, the SQL statement's verb.
    pub verb: String,
    /// What it was asked of: `Pod team-a/web-1`, a URL path, a table.
    pub target: String,
    /// Whose identity it carried when not the binding's own: `impersonating alice`, or
    /// `caller token sha256:…` (a digest of the forwarded Kubernetes token, never the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_as: Option<String>,
    /// Answered from the binding's read cache: nothing reached the backend.
    pub cached: bool,
    /// `ok`, or the failure's kind (`forbidden`, `timeout`, ...).
    pub outcome: String,
}

/// What was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Called {
    /// An MCP tools/call.
    Tool,
    /// An MCP resources/read.
    Resource,
    /// A REST route (bound to a tool).
    Route,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Ran and failed (an error result).
    Error,
    /// Refused before running (read-only, denied, unknown tool, bad arguments).
    Refused,
    /// A destructive call the user declined (or could not be asked); nothing was changed.
    Declined,
    /// A destructive call answered with its dry run only, awaiting `confirm: true`.
    Unconfirmed,
}

/// The identity as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Who {
    pub source: crate::identity::Source,
    pub subject: String,
    pub username: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl From<&Identity> for Who {
    fn from(i: &Identity) -> Who {
        Who {
            source: i.source,
            subject: i.subject.clone(),
            username: i.username.clone(),
            groups: i.groups.clone(),
            client_id: i.client_id.clone(),
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Always `audit` (tells records from log lines on stderr).
    #[serde(rename = "type")]
    pub record_type: &'static str,
    /// When the call started (RFC 3339, milliseconds, UTC).
    pub time: String,
    pub identity: Who,
    pub called: Called,
    /// The tool, resource URI or route name.
    pub name: String,
    /// Routes: the method and path requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Routes and resources: the tool that ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The arguments, secrets redacted.
    pub arguments: Value,
    /// Backend requests in the order they finished.
    pub requests: Vec<BackendRequest>,
    pub outcome: Outcome,
    /// Why it failed, was refused or declined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub duration_ms: f64,
}

impl Record {
    /// A record of a call by `who` (anonymous when None) starting now, its arguments redacted.
    pub fn new(who: Option<&Identity>, called: Called, name: &str, arguments: &Map<String, Value>) -> Record {
        let anonymous = Identity::anonymous();
        Record {
            record_type: "audit",
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            identity: Who::from(who.unwrap_or(&anonymous)),
            called,
            name: name.to_string(),
            route: None,
            tool: None,
            arguments: redact(&Value::Object(arguments.clone())),
            requests: Vec::new(),
            outcome: Outcome::Ok,
            message: None,
            duration_ms: 0.0,
        }
    }

    /// Set how it ended and how long it took.
    pub fn finish(mut self, outcome: Outcome, message: Option<String>, took: Duration) -> Record {
        self.outcome = outcome;
        self.message = message.map(|m| crate::clip::clip(&m, crate::clip::MESSAGE_MAX));
        self.duration_ms = (took.as_secs_f64() * 100_000.0).round() / 100.0;
        self
    }
}

/// Argument names whose values are never recorded (compared without case, `-` and `_`).
const SECRET_NAMES: &[&str] =
    &["password", "passwd", "secret", "token", "apikey", "credential", "credentials", "authorization", "privatekey"];

/// Is an argument name one of a secret (`password`, `db_password`, `api-key`, `token`...)?
fn secret_name(name: &str) -> bool {
    let flat: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    SECRET_NAMES.iter().any(|s| flat == *s || flat.ends_with(s))
}

/// Arguments with secrets replaced by [`REDACTED`]: values under secret names, at any depth,
/// and any text that looks like a bearer token or JWT.
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), if secret_name(k) { Value::String(REDACTED.into()) } else { redact(v) }))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        Value::String(s) if looks_like_credential(s) => Value::String(REDACTED.into()),
        other => other.clone(),
    }
}

/// A JWT (three base64url parts starting `eyJ`) or `Bearer ...`.
fn looks_like_credential(s: &str) -> bool {
    let t = s.trim();
    t.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("bearer ")) || (t.starts_with("eyJ") && t.split('.').count() == 3)
}

tokio::task_local! {
    static REQUESTS: Arc<Mutex<Vec<BackendRequest>>>;
}

/// Run `fut`, gathering the backend requests it makes (see [`note`]).
pub async fn collect<F: Future>(fut: F) -> (F::Output, Vec<BackendRequest>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = REQUESTS.scope(seen.clone(), fut).await;
    let requests = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    (out, requests)
}

/// Is a call being audited here? (Backends skip describing requests otherwise.)
pub fn collecting() -> bool {
    REQUESTS.try_with(|_| ()).is_ok()
}

/// Note a backend request of the call being audited (nothing outside [`collect`]).
pub fn note(request: BackendRequest) {
    let _ = REQUESTS.try_with(|r| r.lock().unwrap_or_else(|e| e.into_inner()).push(request));
}

static RUNNER: std::sync::OnceLock<Arc<Audit>> = std::sync::OnceLock::new();

/// Make `audit` the sink of the workflow runner's tool calls (`serve` does, once).
pub fn install(audit: Arc<Audit>) {
    let _ = RUNNER.set(audit);
}

/// Run a tool call the workflow runner makes for a workflow, recorded like an MCP call with
/// the workflow as the caller (`source: workflow`, subject `workflow:<id>`); `judge` says how
/// the call ended.
pub async fn runner_call<T, F: Future<Output = T>>(
    active: &crate::engine::Active,
    workflow: &str,
    tool: &str,
    args: &Map<String, Value>,
    fut: F,
    judge: impl Fn(&T) -> (Outcome, Option<String>),
) -> T {
    let Some(audit) = RUNNER.get().filter(|a| a.enabled(active)) else { return fut.await };
    let started = std::time::Instant::now();
    let (out, requests) = collect(fut).await;
    let who = Identity::workflow(workflow);
    let mut record = Record::new(Some(&who), Called::Tool, tool, args);
    record.requests = requests;
    let (outcome, message) = judge(&out);
    audit.record(active, record.finish(outcome, message, started.elapsed())).await;
    out
}

/// The audit sink of a server.
pub struct Audit {
    sink: Sink,
    /// The SQL binding that also receives records, when the active mode enables it.
    store: Option<String>,
    /// Stores (by URL) whose audit table is migrated.
    migrated: tokio::sync::Mutex<std::collections::HashSet<String>>,
}

enum Sink {
    Off,
    Stderr,
    File(Mutex<std::fs::File>),
}

impl Default for Audit {
    fn default() -> Self {
        Audit { sink: Sink::Off, store: None, migrated: Default::default() }
    }
}

/// The migration owner of the audit table.
pub const OWNER: &str = "audit";

/// The audit table.
pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        id: "0001-audit".into(),
        sql: "\
CREATE TABLE chm_audit (
  time TEXT NOT NULL,
  subject TEXT NOT NULL,
  username TEXT NOT NULL,
  source TEXT NOT NULL,
  called TEXT NOT NULL,
  name TEXT NOT NULL,
  route TEXT,
  tool TEXT,
  outcome TEXT NOT NULL,
  duration_ms DOUBLE PRECISION NOT NULL,
  record TEXT NOT NULL
);
CREATE INDEX chm_audit_time ON chm_audit (time);
"
        .into(),
    }]
}

impl Audit {
    /// The sink the settings name (a file sink opens its file for appending now).
    pub fn new(settings: &AuditSettings) -> Result<Audit, String> {
        let sink = match settings.sink {
            AuditSink::Off => Sink::Off,
            AuditSink::Stderr => Sink::Stderr,
            AuditSink::File => {
                let path = settings
                    .path
                    .as_ref()
                    .ok_or("audit.sink is `file` and audit.path names no file (CHM_AUDIT__PATH)")?;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open the audit file {}: {e}", path.display()))?;
                Sink::File(Mutex::new(file))
            }
        };
        let store = settings.store.clone().filter(|s| !s.is_empty());
        Ok(Audit { sink, store, migrated: Default::default() })
    }

    /// Does any sink take records (else calls are not collected at all)?
    pub fn enabled(&self, active: &crate::engine::Active) -> bool {
        !matches!(self.sink, Sink::Off) || self.store_of(active).is_some()
    }

    /// The store binding of the active mode that receives records, if enabled there.
    fn store_of<'a>(&self, active: &'a crate::engine::Active) -> Option<&'a Arc<crate::backends::Client>> {
        let name = self.store.as_ref()?;
        active.backends.clients.get(name).filter(|c| matches!(***c, crate::backends::Client::Sql(_)))
    }

    /// Write a record to every sink. A failing sink is logged; the call's answer stands.
    pub async fn record(&self, active: &crate::engine::Active, record: Record) {
        let line = serde_json::to_string(&record).unwrap_or_default();
        match &self.sink {
            Sink::Off => {}
            Sink::Stderr => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            Sink::File(f) => {
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = writeln!(f, "{line}").and_then(|_| f.flush()) {
                    tracing::error!(error = %e, "cannot write the audit record to its file");
                }
            }
        }
        if let Some(client) = self.store_of(active)
            && let crate::backends::Client::Sql(sql) = client.as_ref()
        {
            let stored = async {
                let store = sql.store().await.map_err(|e| e.to_string())?;
                let mut migrated = self.migrated.lock().await;
                if !migrated.contains(sql.url()) {
                    store.migrate(OWNER, &migrations()).await.map_err(|e| e.to_string())?;
                    migrated.insert(sql.url().to_string());
                }
                drop(migrated);
                store_record(store, &record, &line).await
            };
            if let Err(e) = stored.await {
                tracing::error!(error = %e, store = ?self.store, "cannot write the audit record to the store");
            }
        }
    }
}

/// Insert a record into `chm_audit`.
async fn store_record(store: &Store, record: &Record, line: &str) -> Result<(), String> {
    let text = |v: &str| Value::String(v.to_string());
    let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
    let statement = crate::backends::sql::StatementRequest {
        sql: "INSERT INTO chm_audit (time, subject, username, source, called, name, route, tool, outcome, duration_ms, record) \
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            .into(),
        params: vec![
            text(&record.time),
            text(&record.identity.subject),
            text(&record.identity.username),
            serde_json::to_value(record.identity.source).unwrap_or(Value::Null),
            serde_json::to_value(record.called).unwrap_or(Value::Null),
            text(&record.name),
            opt(&record.route),
            opt(&record.tool),
            serde_json::to_value(record.outcome).unwrap_or(Value::Null),
            serde_json::json!(record.duration_ms),
            text(line),
        ],
    };
    store.run(std::slice::from_ref(&statement), false).await.map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_redacted_by_name_and_by_shape_at_any_depth() {
        let args = json!({
            "namespace": "team-a",
            "db_password": "hunter2",
            "api-key": "k",
            "nested": {"token": "t", "list": ["Bearer abc", "eyJhbGciOi.eyJzdWIi.c2ln", "plain"]},
            "keys": ["a"],
        });
        assert_eq!(
            redact(&args),
            json!({
                "namespace": "team-a",
                "db_password": REDACTED,
                "api-key": REDACTED,
                "nested": {"token": REDACTED, "list": [REDACTED, REDACTED, "plain"]},
                "keys": ["a"],
            })
        );
    }

    #[tokio::test]
    async fn requests_are_collected_inside_the_call_only() {
        let req = |n: &str| BackendRequest {
            backend: n.into(),
            kind: "kubernetes",
            verb: "list".into(),
            target: "Pod".into(),
            acting_as: None,
            cached: false,
            outcome: "ok".into(),
        };
        note(req("outside"));
        let ((), seen) = collect(async {
            assert!(collecting());
            note(req("inside"));
        })
        .await;
        assert_eq!(seen, vec![req("inside")]);
        assert!(!collecting());
    }
}
