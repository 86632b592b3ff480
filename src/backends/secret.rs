//! Secret references, resolved after parsing and never printed.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A secret value: read from a file or an environment variable after parsing, never
/// substituted into YAML and never printed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SecretRef {
    /// Path of a file whose (trimmed) contents are the secret.
    File(String),
    /// Name of an environment variable holding the secret.
    Env(String),
}

/// A resolved secret. Debug and Display print a placeholder.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret text, for building a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Marker shown wherever a secret would appear.
pub const REDACTED: &str = "<redacted>";

/// Resolve a reference: a file's trimmed contents or an environment variable.
pub fn resolve(r: &SecretRef) -> Result<Secret, String> {
    match r {
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map(|s| Secret(s.trim().to_string()))
            .map_err(|e| format!("cannot read secret file {path}: {e}")),
        SecretRef::Env(var) => std::env::var(var)
            .map(Secret)
            .map_err(|_| format!("environment variable {var} (holding a secret) is not set")),
    }
}
