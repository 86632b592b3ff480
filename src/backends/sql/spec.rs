//! The `sql` kind's specs: the binding (database URL, password, pool, migrations), the step
//! call (literal SQL statements with bind parameters) and the typed request a call renders to.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backends::secret::SecretRef;

/// An sql backend binding: SQLite (a file, created if missing, or `sqlite::memory:`) or
/// PostgreSQL.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SqlBackendSpec {
    /// The database: `sqlite:PATH` (the file is created if missing), `sqlite::memory:` (one
    /// connection, gone when the server stops) or `postgres://USER@HOST:PORT/DB`.
    pub url: String,
    /// The PostgreSQL password, from a secret reference (never written in the URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// Description (documentation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Most connections held open at once (SQLite in memory always uses one).
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Default timeout of a call, connecting included (e.g. `5s`).
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Schema migrations, applied in order at the first connection and recorded with the
    /// SHA-256 of their text; an applied migration whose text changed refuses to start.
    #[serde(default)]
    pub migrations: Vec<MigrationSpec>,
}

fn default_pool_size() -> u32 {
    5
}

fn default_timeout() -> String {
    "5s".into()
}

/// One schema migration: never edit an applied one, add a new one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationSpec {
    /// A unique, stable id (`001-incidents`).
    pub id: String,
    /// The SQL text (several statements allowed), written for every dialect the binding may
    /// use (SQLite and PostgreSQL).
    pub sql: String,
}

/// An sql call: statements run in order in one transaction; the answer holds the rows of the
/// last statement.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SqlCallSpec {
    /// The binding.
    pub backend: String,
    /// The statements, run in order in one transaction (all or nothing).
    pub statements: Vec<StatementSpec>,
}

/// One SQL statement: literal text with `$1`, `$2`... placeholders, and the values bound to
/// them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementSpec {
    /// The SQL text: literal (a template here is a validate error; values reach SQL only as
    /// bind parameters), one statement, placeholders `$1`, `$2`... in both dialects.
    pub sql: String,
    /// The values of `$1`, `$2`...: templates; a leaf that is one expression keeps its JSON
    /// type (null, boolean, integer, number, text; lists and objects are bound as JSON text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Value>,
}

/// A rendered call.
#[derive(Debug, Clone, Deserialize)]
pub struct SqlRequest {
    /// The statements with their rendered parameters.
    pub statements: Vec<StatementRequest>,
}

/// A rendered statement.
#[derive(Debug, Clone, Deserialize)]
pub struct StatementRequest {
    /// The literal SQL text.
    pub sql: String,
    /// The parameter values.
    #[serde(default)]
    pub params: Vec<Value>,
}
