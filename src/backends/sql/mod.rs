//! The `sql` kind: SQLite (embedded: a file created if missing, or `sqlite::memory:`) or
//! PostgreSQL (by URL, the password from a secret reference), the server's own store.
//!
//! A call is a list of statements run in order in one transaction. The SQL text is literal:
//! a template in it is a validate error, and values reach the database only as bind
//! parameters (`params`, filling `$1`, `$2`... in both dialects). The answer is
//! `{rows, rows_affected, results}`: `rows` are the last statement's rows as JSON objects,
//! `rows_affected` the total over the statements, `results` each statement's
//! `{rows, rows_affected}`. A call whose statements all read (SELECT, or WITH without a
//! data-changing word) is a read, and runs in a read-only transaction on PostgreSQL; any
//! other writes to the server's own store ([`Effect::Store`]), not to the cluster.
//!
//! Migrations are declared with the binding and applied in order at the first connection
//! (at server start by [`start`]), each recorded with the SHA-256 of its text; an applied
//! migration whose text changed refuses to start. Other parts of the server use the
//! connected [`Store`] (pool and dialect) through [`SqlBackend::store`] and add their own
//! tables with [`Store::migrate`] under an owner name.

pub mod spec;
pub mod store;
pub mod text;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::{Client, Effect, Error, ErrorKind, Kind, TextContext};
use crate::clip::{QUOTE_MAX, clip};
use crate::units::parse_duration;
pub use spec::{MigrationSpec, SqlBackendSpec, SqlCallSpec, SqlRequest, StatementRequest, StatementSpec};
pub use store::{Dialect, Migration, Store, StoreError};

/// The kind.
pub struct Sql;

impl Kind for Sql {
    const NAME: &'static str = "sql";
    type Binding = SqlBackendSpec;
    type Call = SqlCallSpec;
    type Request = SqlRequest;
    type Client = SqlBackend;

    fn binding(call: &SqlCallSpec) -> &str {
        &call.backend
    }

    fn effect(call: &SqlCallSpec) -> Effect {
        if call.statements.iter().all(|s| text::scan(&s.sql).reads_only()) { Effect::Read } else { Effect::Store }
    }

    fn action(call: &SqlCallSpec) -> (&'static str, String) {
        let first = |s: &StatementSpec| text::scan(&s.sql).words.first().cloned().unwrap_or_default();
        let words: Vec<String> = call.statements.iter().map(first).collect();
        ("/statements", format!("SQL `{}`", words.join("; ")))
    }

    fn field(pointer: &str) -> Option<TextContext> {
        let mut parts = pointer.trim_start_matches('/').split('/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("statements"), Some(_), Some("sql")) => Some(TextContext::Literal),
            (Some("statements"), Some(_), Some("params")) => Some(TextContext::Data),
            _ => None,
        }
    }

    fn check(call: &SqlCallSpec) -> Vec<(String, String)> {
        let mut found = Vec::new();
        if call.statements.is_empty() {
            found.push(("/statements".into(), "an sql call needs at least one statement".into()));
        }
        for (i, s) in call.statements.iter().enumerate() {
            let at = format!("/statements/{i}/sql");
            let scan = text::scan(&s.sql);
            if scan.statements != 1 {
                found.push((
                    at.clone(),
                    format!(
                        "holds {} statements: write one statement per entry of `statements` (they run in one transaction)",
                        scan.statements
                    ),
                ));
            }
            if let Some(p) = scan.other_placeholders.first() {
                found.push((
                    at.clone(),
                    format!("placeholder `{p}`: write `$1`, `$2`... (the one syntax of both dialects)"),
                ));
            }
            if scan.max_param != s.params.len() {
                found.push((
                    format!("/statements/{i}/params"),
                    format!(
                        "the SQL uses placeholders up to ${} but {} params are given: one value per placeholder",
                        scan.max_param,
                        s.params.len()
                    ),
                ));
            }
        }
        found
    }

    fn connect(name: &str, binding: &SqlBackendSpec) -> Result<SqlBackend, String> {
        let timeout = parse_duration(&binding.timeout)
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("invalid timeout `{}`", binding.timeout))?;
        store::dialect(&binding.url).map_err(|e| e.to_string())?;
        Ok(SqlBackend {
            name: name.to_string(),
            spec: binding.clone(),
            timeout,
            store: OnceCell::new(),
            owners: std::sync::Mutex::new(Vec::new()),
        })
    }

    async fn call(client: &SqlBackend, request: SqlRequest, timeout: Option<Duration>) -> Result<Value, Error> {
        client.call(request, timeout).await
    }

    fn describe(client: &SqlBackend, request: &SqlRequest) -> Value {
        json!({
            "url": client.spec.url,
            "transaction": request.statements.iter().map(|s| json!({"sql": s.sql, "params": s.params})).collect::<Vec<_>>(),
        })
    }
}

/// A configured sql binding; it connects (and migrates) on first use.
pub struct SqlBackend {
    name: String,
    spec: SqlBackendSpec,
    timeout: Duration,
    store: OnceCell<Store>,
    /// Other owners' migrations applied at connect after the binding's own (the workflow
    /// runner's tables), so specs may read those tables before the owner first runs.
    owners: std::sync::Mutex<Vec<(String, Vec<Migration>)>>,
}

impl SqlBackend {
    /// The connected store, connecting and migrating on first use (a failure is retried on
    /// the next use).
    pub async fn store(&self) -> Result<&Store, StoreError> {
        self.store
            .get_or_try_init(|| async {
                let store = match tokio::time::timeout(self.timeout, Store::connect(&self.spec, self.timeout)).await {
                    Ok(r) => r?,
                    Err(_) => return Err(StoreError::Connect(format!("no connection within {:?}", self.timeout))),
                };
                let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner()).clone();
                for (owner, migrations) in &owners {
                    store.migrate(owner, migrations).await?;
                }
                Ok(store)
            })
            .await
    }

    /// Apply `owner`'s migrations whenever this store connects, after the binding's own
    /// (an engine's tables exist before any spec reads them). Registering an owner again
    /// replaces its list; a store already connected is not migrated here (the owner
    /// migrates on its own first use as well).
    pub fn migrate_owner_at_connect(&self, owner: &str, migrations: Vec<Migration>) {
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.retain(|(o, _)| o != owner);
        owners.push((owner.to_string(), migrations));
    }

    /// The binding's URL (no password: it is never written there).
    pub fn url(&self) -> &str {
        &self.spec.url
    }

    async fn call(&self, request: SqlRequest, timeout: Option<Duration>) -> Result<Value, Error> {
        let target = clip(&self.spec.url, QUOTE_MAX);
        let err = |e: StoreError| {
            let kind = match &e {
                StoreError::Config(_) | StoreError::Changed { .. } | StoreError::Migration { .. } => {
                    ErrorKind::Unavailable
                }
                StoreError::Connect(_) => ErrorKind::Unreachable,
                StoreError::Statement { .. } => ErrorKind::Upstream,
                StoreError::Param { .. } => ErrorKind::InvalidRequest,
            };
            Error::new(&self.name, kind, e.to_string()).at(target.clone())
        };
        let read_only = request.statements.iter().all(|s| text::scan(&s.sql).reads_only());
        let timeout = timeout.unwrap_or(self.timeout);
        let work = async {
            let store = self.store().await.map_err(err)?;
            store.run(&request.statements, read_only).await.map_err(err)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                Err(Error::new(&self.name, ErrorKind::Timeout, format!("no answer within {timeout:?}"))
                    .at(target.clone()))
            }
        }
    }
}

/// Connect every enabled sql binding and apply its migrations, at server start: a changed
/// applied migration (or a failing one) is an error that stops the server; an unreachable
/// database is only logged (calls retry).
pub async fn start(backends: &super::Backends) -> Result<(), String> {
    for (name, client) in &backends.clients {
        let Client::Sql(sql) = client.as_ref() else { continue };
        match sql.store().await {
            Ok(store) => tracing::info!(
                backend = %name,
                dialect = ?store.dialect,
                migrations_ms = store.migrated_in.as_secs_f64() * 1000.0,
                "sql store ready"
            ),
            Err(e @ (StoreError::Changed { .. } | StoreError::Migration { .. } | StoreError::Config(_))) => {
                return Err(format!("backend `{name}`: {e}"));
            }
            Err(e) => tracing::warn!(backend = %name, "sql store not reachable yet: {e}"),
        }
    }
    Ok(())
}
