//! A connected SQL store: the pool, its dialect, migrations and statement execution. Other
//! parts of the server (the workflow runner) use [`Store`] directly for their own tables.
//!
//! One driver API serves both databases (sqlx's `Any`), so SQL written for the store uses the
//! common subset: `$1`, `$2`... placeholders (SQLite accepts them too), TEXT, INTEGER/BIGINT,
//! REAL/DOUBLE PRECISION and BOOLEAN columns; timestamps as RFC 3339 TEXT. PostgreSQL types
//! outside that subset (TIMESTAMPTZ, JSONB, NUMERIC) must be cast to TEXT in a SELECT.
//! PostgreSQL types each parameter by its JSON value (text, bigint, double, boolean; null is
//! a text null): where a value may be null or of another type than its column, write
//! `CAST($3 AS INTEGER)` (harmless on SQLite).

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow, AnyTypeInfoKind};
use sqlx::{Arguments, Column, Executor, Row, TypeInfo, ValueRef};

use super::spec::{MigrationSpec, SqlBackendSpec, StatementRequest};
use crate::backends::secret;

/// A migration: an id and its SQL text.
pub type Migration = MigrationSpec;

/// The SQL dialect behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (embedded; a file or memory). Single replica.
    Sqlite,
    /// PostgreSQL (`FOR UPDATE SKIP LOCKED`, advisory locks; several replicas).
    Postgres,
}

/// Why a store could not be set up or used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The binding is wrong (URL, password, timeout).
    #[error("{0}")]
    Config(String),
    /// The database could not be reached or opened.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// An applied migration's text changed: the server must not start on it.
    #[error(
        "migration `{id}` (owner `{owner}`, migrations[{index}]) was applied with checksum {applied}, but its text now has checksum {declared}: an applied migration must never change; restore its text and add a new migration for the change"
    )]
    Changed {
        /// The migration's owner (`binding` for the binding's own).
        owner: String,
        /// The migration id.
        id: String,
        /// Its position in the declared list.
        index: usize,
        /// The checksum recorded when it was applied.
        applied: String,
        /// The checksum of the declared text.
        declared: String,
    },
    /// A migration failed to apply (nothing of it was kept).
    #[error("migration `{id}` (owner `{owner}`) failed: {message}")]
    Migration {
        /// The migration's owner.
        owner: String,
        /// The migration id.
        id: String,
        /// The database's message.
        message: String,
    },
    /// A statement failed (the transaction was rolled back).
    #[error("statement {index} failed: {message}")]
    Statement {
        /// 1-based position of the statement in the call.
        index: usize,
        /// The database's message.
        message: String,
    },
    /// A statement's parameter cannot be bound.
    #[error("statement {index}, parameter ${param}: {message}")]
    Param {
        /// 1-based position of the statement.
        index: usize,
        /// 1-based parameter number.
        param: usize,
        /// What is wrong with the value.
        message: String,
    },
}

/// A connected store.
#[derive(Debug, Clone)]
pub struct Store {
    /// The connection pool (sqlx `Any`: one API for both dialects).
    pub pool: sqlx::AnyPool,
    /// Which database it is.
    pub dialect: Dialect,
    /// How long the binding's migrations took at connect.
    pub migrated_in: Duration,
}

/// The owner of a binding's own migrations in the migrations table.
pub const BINDING_OWNER: &str = "binding";

/// The table recording applied migrations.
const MIGRATIONS_TABLE: &str = "chm_migrations";

/// The dialect of a URL, or why it is not one.
pub fn dialect(url: &str) -> Result<Dialect, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Dialect::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Dialect::Postgres)
    } else {
        Err(StoreError::Config(format!(
            "url `{}` is neither `sqlite:PATH`, `sqlite::memory:` nor `postgres://USER@HOST:PORT/DB`",
            crate::clip::clip(url, crate::clip::QUOTE_MAX)
        )))
    }
}

/// Whether a URL is an in-memory SQLite database (one connection, kept open).
fn in_memory(url: &str) -> bool {
    url == "sqlite::memory:" || url.contains("mode=memory")
}

/// The URL handed to the driver: SQLite files are created if missing (their folder too);
/// the PostgreSQL password is set from the secret.
fn driver_url(spec: &SqlBackendSpec, dialect: Dialect) -> Result<String, StoreError> {
    match dialect {
        Dialect::Sqlite => {
            if in_memory(&spec.url) {
                return Ok(spec.url.clone());
            }
            let rest = spec.url.trim_start_matches("sqlite:").trim_start_matches("//");
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(StoreError::Config("`sqlite:` needs a file path (`sqlite:/var/lib/chm/store.db`)".into()));
            }
            if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Config(format!("cannot create the folder {}: {e}", dir.display())))?;
            }
            Ok(if spec.url.contains("mode=") {
                spec.url.clone()
            } else if spec.url.contains('?') {
                format!("{}&mode=rwc", spec.url)
            } else {
                format!("{}?mode=rwc", spec.url)
            })
        }
        Dialect::Postgres => {
            let mut url = url::Url::parse(&spec.url).map_err(|e| StoreError::Config(format!("invalid url: {e}")))?;
            if url.password().is_some() {
                return Err(StoreError::Config(
                    "the url holds a password: move it to `password:` as a secret reference ({file: PATH} or {env: VAR})"
                        .into(),
                ));
            }
            if let Some(r) = &spec.password {
                let secret = secret::resolve(r).map_err(StoreError::Config)?;
                url.set_password(Some(secret.expose()))
                    .map_err(|_| StoreError::Config("the url cannot carry a password (no host)".into()))?;
            }
            Ok(url.to_string())
        }
    }
}

impl Store {
    /// Connect and apply the binding's migrations.
    pub async fn connect(spec: &SqlBackendSpec, timeout: Duration) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = dialect(&spec.url)?;
        let url = driver_url(spec, dialect)?;
        let mut options = AnyPoolOptions::new().acquire_timeout(timeout);
        options = if dialect == Dialect::Sqlite && in_memory(&spec.url) {
            // Every connection to `:memory:` is its own database: keep exactly one, forever.
            options.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
        } else {
            options.max_connections(spec.pool_size.max(1))
        };
        let pool = options.connect(&url).await.map_err(|e| StoreError::Connect(e.to_string()))?;
        let mut store = Store { pool, dialect, migrated_in: Duration::ZERO };
        let started = Instant::now();
        store.migrate(BINDING_OWNER, &spec.migrations).await?;
        store.migrated_in = started.elapsed();
        Ok(store)
    }

    /// Apply `migrations` of `owner` in order, each in its own transaction with its record;
    /// refuse (before applying anything) if an applied one's text changed. Owners keep
    /// separate id spaces: the workflow runner migrates its tables as `workflows`.
    pub fn migrate<'a>(&'a self, owner: &'a str, migrations: &'a [Migration]) -> BoxFuture<'a, Result<(), StoreError>> {
        // Boxed: sqlx's executor bounds defeat the `Send` proof of an unboxed caller.
        Box::pin(self.migrate_inner(owner, migrations))
    }

    async fn migrate_inner(&self, owner: &str, migrations: &[Migration]) -> Result<(), StoreError> {
        let fail = |id: &str, e: sqlx::Error| StoreError::Migration {
            owner: owner.to_string(),
            id: id.to_string(),
            message: e.to_string(),
        };
        let mut tx = self.pool.begin().await.map_err(|e| StoreError::Connect(e.to_string()))?;
        if self.dialect == Dialect::Postgres {
            // Replicas starting together apply migrations one at a time.
            sqlx::query("SELECT pg_advisory_xact_lock(7283410561)")
                .execute(&mut *tx)
                .await
                .map_err(|e| fail("(lock)", e))?;
        }
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (owner TEXT NOT NULL, id TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (owner, id))"
        );
        sqlx::query(&create).execute(&mut *tx).await.map_err(|e| fail("(migrations table)", e))?;
        let applied: Vec<(String, String)> =
            sqlx::query(&format!("SELECT id, checksum FROM {MIGRATIONS_TABLE} WHERE owner = $1"))
                .bind(owner)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| fail("(migrations table)", e))?
                .iter()
                .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
                .collect();
        let mut pending = Vec::new();
        for (index, m) in migrations.iter().enumerate() {
            let declared = checksum(&m.sql);
            match applied.iter().find(|(id, _)| *id == m.id) {
                Some((_, sum)) if *sum != declared => {
                    return Err(StoreError::Changed {
                        owner: owner.to_string(),
                        id: m.id.clone(),
                        index,
                        applied: sum.clone(),
                        declared,
                    });
                }
                Some(_) => {}
                None => pending.push((m, declared)),
            }
        }
        for (m, sum) in pending {
            (&mut *tx).execute(sqlx::raw_sql(&m.sql)).await.map_err(|e| fail(&m.id, e))?;
            sqlx::query(&format!(
                "INSERT INTO {MIGRATIONS_TABLE} (owner, id, checksum, applied_at) VALUES ($1, $2, $3, $4)"
            ))
            .bind(owner)
            .bind(&m.id)
            .bind(&sum)
            .bind(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .execute(&mut *tx)
            .await
            .map_err(|e| fail(&m.id, e))?;
        }
        tx.commit().await.map_err(|e| fail("(commit)", e))
    }

    /// Run statements in one transaction (read-only on PostgreSQL when `read_only`): the
    /// answer holds the last statement's `rows`, the total `rows_affected` and each
    /// statement's `results`.
    pub fn run<'a>(
        &'a self,
        statements: &'a [StatementRequest],
        read_only: bool,
    ) -> BoxFuture<'a, Result<Value, StoreError>> {
        Box::pin(self.run_inner(statements, read_only))
    }

    async fn run_inner(&self, statements: &[StatementRequest], read_only: bool) -> Result<Value, StoreError> {
        let connect = |e: sqlx::Error| StoreError::Connect(e.to_string());
        let mut tx = self.pool.begin().await.map_err(connect)?;
        if read_only && self.dialect == Dialect::Postgres {
            sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await.map_err(connect)?;
        }
        let mut results = Vec::new();
        let mut total = 0u64;
        for (i, s) in statements.iter().enumerate() {
            let index = i + 1;
            let args = arguments(index, &s.params)?;
            let failed = |e: sqlx::Error| StoreError::Statement { index, message: e.to_string() };
            let scan = super::text::scan(&s.sql);
            let (rows, affected) = if scan.returns_rows() {
                let rows: Vec<Value> = sqlx::query_with(&s.sql, args)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(failed)?
                    .iter()
                    .map(row_json)
                    .collect();
                // A write with RETURNING affected the rows it returns.
                let affected = if scan.reads_only() { 0 } else { rows.len() as u64 };
                (rows, affected)
            } else {
                let done = sqlx::query_with(&s.sql, args).execute(&mut *tx).await.map_err(failed)?;
                (Vec::new(), done.rows_affected())
            };
            total += affected;
            results.push(json!({"rows": rows, "rows_affected": affected}));
        }
        tx.commit().await.map_err(|e| StoreError::Statement { index: statements.len(), message: e.to_string() })?;
        let rows = results.last().map(|r| r["rows"].clone()).unwrap_or_else(|| json!([]));
        Ok(json!({"rows": rows, "rows_affected": total, "results": results}))
    }
}

/// The SHA-256 of a migration's text, in hex.
pub fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Bind JSON values: null, booleans, integers, numbers and text as themselves; lists and
/// objects as their JSON text.
fn arguments(index: usize, params: &[Value]) -> Result<AnyArguments<'static>, StoreError> {
    let mut args = AnyArguments::default();
    for (i, v) in params.iter().enumerate() {
        let bad = |e: sqlx::error::BoxDynError| StoreError::Param { index, param: i + 1, message: e.to_string() };
        match v {
            Value::Null => args.add(Option::<String>::None),
            Value::Bool(b) => args.add(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => args.add(i),
                None => args.add(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => args.add(s.clone()),
            other => args.add(other.to_string()),
        }
        .map_err(bad)?;
    }
    Ok(args)
}

/// A row as a JSON object (column name -> value).
fn row_json(row: &AnyRow) -> Value {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        out.insert(col.name().to_string(), cell(row, i));
    }
    Value::Object(out)
}

fn cell(row: &AnyRow, i: usize) -> Value {
    let Ok(raw) = row.try_get_raw(i) else { return Value::Null };
    if raw.is_null() {
        return Value::Null;
    }
    let kind = raw.type_info().kind();
    let name = raw.type_info().name().to_string();
    match kind {
        AnyTypeInfoKind::Bool => row.try_get_unchecked::<bool, _>(i).map(Value::Bool).unwrap_or(Value::Null),
        AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
            row.try_get_unchecked::<i64, _>(i).map(Value::from).unwrap_or(Value::Null)
        }
        AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => {
            row.try_get_unchecked::<f64, _>(i).map(Value::from).unwrap_or(Value::Null)
        }
        AnyTypeInfoKind::Text => row.try_get_unchecked::<String, _>(i).map(Value::String).unwrap_or(Value::Null),
        AnyTypeInfoKind::Blob => row
            .try_get::<Vec<u8>, _>(i)
            .map(|b| Value::String(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)))
            .unwrap_or(Value::Null),
        AnyTypeInfoKind::Null => Value::Null,
        #[allow(unreachable_patterns)]
        _ => Value::String(format!("<{name}>")),
    }
}
