//! Server settings, layered with figment: defaults < config file < environment
//! (`CHM_`, nested keys with `__`, e.g. `CHM_HTTP__BIND`) < command-line flags.
//! Settings configure the server; the specs (tools, modes, backends) are YAML documents.
//! `backends` and `snapshot` override fields of the active mode's backend bindings (applied
//! and validated in [`crate::configure`]).

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Yaml};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Default response budget: about 6,000 tokens.
pub const DEFAULT_RESPONSE_BUDGET_TOKENS: usize = 6_000;

/// Environment variable prefix.
pub const ENV_PREFIX: &str = "CHM_";

/// All server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Deployment mode to activate (a `kind: Mode` document).
    pub mode: String,
    /// Spec files or directories, added to the catalogue embedded in the binary (a document
    /// with the same kind and name as an embedded one replaces it). Empty: `tools.d` and
    /// `modes` in the working directory if present.
    pub specs: Vec<PathBuf>,
    /// Use only `specs`, not the embedded catalogue.
    pub replace_catalogue: bool,
    /// Field overrides of backend bindings by name, merged (JSON merge patch) over the
    /// active mode's binding and validated like the spec, e.g. `prometheus: {url: ...}`
    /// or `CHM_BACKENDS__PROMETHEUS__URL`. Names and keys may be written in snake_case
    /// (`coordination_engine: {base_url: ...}`), as environment variables must be.
    pub backends: IndexMap<String, serde_json::Value>,
    /// Read this snapshot directory (manifests, must-gather, or `builtin:demo`) with every
    /// kubernetes backend of the mode instead of a cluster.
    pub snapshot: Option<String>,
    /// Log filter for stderr (tracing EnvFilter syntax).
    pub log: String,
    /// Watch the spec directories and reload on change.
    pub reload: bool,
    /// Poll the spec directories every this many seconds instead of native file events
    /// (for NFS and filesystems without inotify).
    pub reload_poll_seconds: Option<u64>,
    /// Largest tool answer in estimated tokens (4 bytes each); larger answers are cut
    /// deterministically and say how to narrow the query.
    pub response_budget_tokens: usize,
    /// Hide every destructive tool (annotated destructive or with a writing step) from
    /// tools/list and refuse calls to it, whatever the mode exposes.
    pub read_only: bool,
    /// Confirm destructive calls before they change anything: through MCP elicitation when
    /// the client supports it, else the dry run's answer first and an explicit `confirm: true`
    /// argument on a second call.
    pub confirm_destructive: bool,
    /// Audit records: one JSON line per tool call and REST route call.
    pub audit: AuditSettings,
    /// Where the server keeps its files: a relative `sqlite:` path of an sql binding (the
    /// coordination store's `sqlite:coordination.db`) is under it. Default
    /// `$XDG_STATE_HOME/cluster-health-mcp`, else `~/.local/state/cluster-health-mcp`, else
    /// `/var/lib/cluster-health-mcp` (the Helm chart mounts its volume there).
    pub data_dir: Option<PathBuf>,
    /// Streamable HTTP settings.
    pub http: HttpSettings,
}

/// Where audit records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditSink {
    /// No audit records.
    Off,
    /// JSON lines on stderr (beside the logs).
    Stderr,
    /// JSON lines appended to `audit.path`.
    File,
}

/// Audit settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// The sink: off, stderr or file.
    pub sink: AuditSink,
    /// File the `file` sink appends to (created if missing).
    pub path: Option<PathBuf>,
    /// A sql binding that also receives every record (table `chm_audit`) when the active
    /// mode enables it: the coordination engine's store by default; empty turns it off.
    pub store: Option<String>,
}

/// OAuth 2.1 resource server settings: on when `issuer` or `jwks_url` is set. Bearer tokens
/// on /mcp must then be JWTs signed by the issuer's keys, for this server (`resource` in
/// `aud`), unexpired, with the scopes the call needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// The authorization server's issuer URL: tokens must carry it as `iss`, and its
    /// discovery document (OpenID `/.well-known/openid-configuration`, else RFC 8414
    /// `/.well-known/oauth-authorization-server`) names the JWKS.
    pub issuer: Option<String>,
    /// The JWKS URL, instead of discovery.
    pub jwks_url: Option<String>,
    /// This server's canonical URI (e.g. `https://mcp.example.com/mcp`): tokens must name it
    /// in `aud`; the protected resource metadata (RFC 9728) says it.
    pub resource: Option<String>,
    /// Authorization servers listed in the metadata document (default: the issuer).
    pub authorization_servers: Vec<String>,
    /// Scopes every request needs (listing and calling read tools, resources, prompts).
    pub read_scopes: Vec<String>,
    /// Scopes a destructive tool call needs besides `read_scopes`.
    pub write_scopes: Vec<String>,
    /// Accepted signature algorithms (asymmetric only).
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// Fewest seconds between two JWKS fetches triggered by an unknown key id (rotation).
    pub jwks_min_refresh_seconds: u64,
    /// Claim holding the user name to act as in Kubernetes (falls back to `sub`).
    pub username_claim: String,
    /// Claim holding the caller's groups (a list of strings).
    pub groups_claim: String,
}

impl OAuthSettings {
    /// Is JWT validation configured?
    pub fn enabled(&self) -> bool {
        self.issuer.is_some() || self.jwks_url.is_some()
    }
}

impl Default for OAuthSettings {
    fn default() -> Self {
        OAuthSettings {
            issuer: None,
            jwks_url: None,
            resource: None,
            authorization_servers: Vec::new(),
            read_scopes: vec!["mcp:read".into()],
            write_scopes: vec!["mcp:write".into()],
            algorithms: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
                .map(String::from)
                .to_vec(),
            leeway_seconds: 60,
            jwks_min_refresh_seconds: 30,
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
        }
    }
}

/// Streamable HTTP transport settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to listen on.
    pub bind: String,
    /// Stateless mode (no sessions) for load-balanced replicas.
    pub stateless: bool,
    /// Accepted Host header values (besides localhost forms when bound to loopback).
    pub allowed_hosts: Vec<String>,
    /// Accepted Origin header values; requests with another Origin get 403.
    pub allowed_origins: Vec<String>,
    /// File holding a static bearer token required on /mcp.
    pub token_file: Option<PathBuf>,
    /// Largest accepted request body in bytes (also the longest stdio line).
    pub body_limit: usize,
    /// Listen beyond loopback without `token_file` (a trusted network only). Without it,
    /// such a bind is refused.
    pub insecure_no_auth: bool,
    /// Most concurrent MCP sessions; an `initialize` past the cap gets HTTP 503 and a
    /// JSON-RPC error saying so.
    pub max_sessions: usize,
    /// Most concurrent MCP sessions per client address.
    pub max_sessions_per_client: usize,
    /// A session without any request for this many seconds is closed.
    pub session_idle_seconds: u64,
    /// Most open connections; one more is answered HTTP 503 and closed.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers; also how long a kept-alive
    /// connection may sit idle.
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a request's body.
    pub body_timeout_seconds: u64,
    /// Requests per second per client address on /mcp (bursts of twice as many); 0 turns
    /// the limit off.
    pub rate_limit_per_second: u32,
    /// OAuth 2.1 resource server (JWT access tokens from an authorization server).
    pub oauth: OAuthSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: "demo".into(),
            specs: Vec::new(),
            replace_catalogue: false,
            backends: IndexMap::new(),
            snapshot: None,
            log: "info".into(),
            reload: true,
            reload_poll_seconds: None,
            response_budget_tokens: DEFAULT_RESPONSE_BUDGET_TOKENS,
            read_only: false,
            confirm_destructive: true,
            audit: AuditSettings { sink: AuditSink::Off, path: None, store: Some("coordination-store".into()) },
            data_dir: None,
            http: HttpSettings {
                bind: "127.0.0.1:8080".into(),
                stateless: false,
                allowed_hosts: Vec::new(),
                allowed_origins: Vec::new(),
                token_file: None,
                body_limit: 4 * 1024 * 1024,
                insecure_no_auth: false,
                max_sessions: 1000,
                max_sessions_per_client: 100,
                session_idle_seconds: 300,
                max_connections: 512,
                header_timeout_seconds: 15,
                body_timeout_seconds: 30,
                rate_limit_per_second: 100,
                oauth: OAuthSettings::default(),
            },
        }
    }
}

/// Error reading settings.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings: {0}")]
pub struct Error(#[from] Box<figment::Error>);

impl Settings {
    /// Layer defaults, an optional YAML config file, the environment, then `flags` (a
    /// partial settings tree built from command-line options).
    pub fn load(config_file: Option<&std::path::Path>, flags: serde_json::Value) -> Result<Settings, Error> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = config_file {
            fig = fig.merge(Yaml::file_exact(path));
        }
        // Only keys that are settings: other CHM_* variables (scripts' own) are not errors.
        const KEYS: [&str; 14] = [
            "read_only",
            "data_dir",
            "confirm_destructive",
            "audit__",
            "mode",
            "specs",
            "replace_catalogue",
            "snapshot",
            "log",
            "reload",
            "reload_poll_seconds",
            "response_budget_tokens",
            "http__",
            "backends__",
        ];
        let env = Env::prefixed(ENV_PREFIX)
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                KEYS.iter().any(|known| k == *known || (known.ends_with("__") && k.starts_with(known)))
            })
            .split("__");
        fig = fig.merge(env);
        fig = fig.merge(Serialized::globals(flags));
        fig.extract().map_err(|e| Error(Box::new(e)))
    }

    /// The spec paths to load besides (or, with `replace_catalogue`, instead of) the
    /// embedded catalogue: `specs`, else `./tools.d` and `./modes` when present.
    pub fn spec_paths(&self) -> Vec<PathBuf> {
        if !self.specs.is_empty() {
            return self.specs.clone();
        }
        ["tools.d", "modes"].iter().map(PathBuf::from).filter(|p| p.is_dir()).collect()
    }

    /// The data directory: `data_dir`, else the user's state directory, else
    /// `/var/lib/cluster-health-mcp`.
    pub fn data_dir(&self) -> PathBuf {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        self.data_dir
            .clone()
            .or_else(|| env("XDG_STATE_HOME").map(|d| d.join("cluster-health-mcp")))
            .or_else(|| env("HOME").map(|h| h.join(".local/state/cluster-health-mcp")))
            .unwrap_or_else(|| PathBuf::from("/var/lib/cluster-health-mcp"))
    }

    /// Whether the embedded catalogue is loaded under the spec paths.
    pub fn embedded_catalogue(&self) -> bool {
        !self.replace_catalogue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)]
    fn flags_override_environment_which_overrides_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "mode: monitoring\nlog: debug\nhttp:\n  bind: 0.0.0.0:9000\n").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHM_LOG", "warn");
            let s = Settings::load(Some(&file), serde_json::json!({"mode": "full"})).unwrap();
            assert_eq!(s.mode, "full");
            assert_eq!(s.log, "warn");
            assert_eq!(s.http.bind, "0.0.0.0:9000");
            assert!(s.reload);
            Ok(())
        });
    }
}
