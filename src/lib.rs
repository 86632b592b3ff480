//! cluster-health-mcp: a declarative MCP server for Kubernetes/OpenShift cluster health.
//!
//! Data flow: YAML specs (`spec`) are loaded, validated and compiled into a
//! [`engine::Registry`]; the `engine` renders each tool's steps, calls `backends`,
//! extracts and shapes the result; `mcp` serves the registry to MCP clients and `cli`
//! offers the same engine on the command line.

pub mod audit;
pub mod backends;
pub mod cli;
pub mod clip;
pub mod configure;
pub mod engine;
pub mod guard;
pub mod identity;
pub mod ids;
pub mod mcp;
pub mod routes;
pub mod settings;
pub mod snapshot;
pub mod spec;
pub mod units;
pub mod workflows;

/// Exit code for specs that fail validation (EX_CONFIG, as vector and sysexits use).
pub const EXIT_INVALID_SPEC: u8 = 78;
/// Exit code when a tool call returned an error result.
pub const EXIT_TOOL_ERROR: u8 = 1;

/// Install the process-wide rustls crypto provider (ring) once; reqwest and kube need it.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
