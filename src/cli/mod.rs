//! The command line: validate, schema, tools, render, call, serve.

mod call;
mod render;
mod schema;
mod snapshot;
mod tools;
mod validate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::Settings;

const AFTER_HELP: &str = "\
Specs are YAML documents (kinds Tool, Resource, Prompt, Backend, Mode) read from --specs
(default: ./tools.d and ./modes, else the catalogue built into the binary).

Settings layer as: defaults < --config file < CHM_* environment (nested with __, e.g.
CHM_HTTP__BIND=0.0.0.0:8080) < flags.

Exit codes: 0 success; 1 a tool call returned an error or a runtime failure;
2 usage error; 78 specs failed validation.";

/// Declarative MCP server for Kubernetes/OpenShift cluster health.
#[derive(Debug, Parser)]
#[command(name = "cluster-health-mcp", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// YAML settings file (lowest precedence after built-in defaults).
    #[arg(long, global = true, env = "CHM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Spec file or directory; repeat for several. Default: ./tools.d and ./modes, else the
    /// embedded catalogue.
    #[arg(long = "specs", global = true, value_name = "PATH")]
    pub specs: Vec<PathBuf>,
    /// Deployment mode: demo (default: the built-in offline cluster), standalone (your
    /// kubeconfig or in-cluster account), monitoring (+ Prometheus), full, or any Mode you define.
    #[arg(long, global = true, value_name = "MODE")]
    pub mode: Option<String>,
    /// Log filter for stderr (e.g. info, debug, cluster_health_mcp=trace).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check spec files and report every problem with file:line:column.
    ///
    /// Layers: YAML syntax; JSON Schema (unknown fields, wrong types); references
    /// (duplicate names across files, unknown backends, modes naming missing tools);
    /// templates and JSONPaths compile; every template variable declared; free-text
    /// inputs escaped where they meet PromQL, URL paths or selectors.
    /// Exits 78 when anything is wrong.
    Validate(validate::Args),
    /// Print the JSON Schema of a spec kind, or write/check the schemas/ directory.
    Schema(schema::Args),
    /// List what a mode exposes and why the rest is hidden.
    Tools(tools::Args),
    /// Show the exact requests a tool call would send (secrets redacted, no network).
    Render(render::Args),
    /// Run one tool once and print its structured result and text.
    Call(call::Args),
    /// Serve MCP over stdio (default) or Streamable HTTP.
    ///
    /// stdio is for local clients such as Claude Desktop (logs go to stderr). HTTP serves
    /// Streamable HTTP at /mcp plus /healthz, /readyz and /metrics, on 127.0.0.1:8080 unless
    /// --bind says otherwise; Host and Origin are checked, and CHM_HTTP__TOKEN_FILE requires a
    /// bearer token. Spec files are watched and reloaded (the last good set keeps serving).
    ///
    /// Examples:
    ///   cluster-health-mcp serve                                  # demo cluster over stdio
    ///   cluster-health-mcp --mode standalone serve --transport http
    ///   cluster-health-mcp --mode monitoring serve --transport http --bind 0.0.0.0:8080 --stateless
    #[command(verbatim_doc_comment)]
    Serve(crate::mcp::ServeArgs),
    /// Offline cluster snapshots: serve one as a Kubernetes API, inspect, generate.
    Snapshot(snapshot::Args),
}

impl Cli {
    /// Settings from all layers, with this command line on top.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut flags = serde_json::Map::new();
        if let Some(m) = &self.mode {
            flags.insert("mode".into(), m.clone().into());
        }
        if !self.specs.is_empty() {
            flags.insert("specs".into(), serde_json::to_value(&self.specs)?);
        }
        if let Some(l) = &self.log {
            flags.insert("log".into(), l.clone().into());
        }
        if let Command::Serve(s) = &self.command {
            s.flags(&mut flags);
        }
        Ok(Settings::load(self.config.as_deref(), serde_json::Value::Object(flags))?)
    }
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings()?;
    match &cli.command {
        Command::Validate(a) => validate::run(a, &settings),
        Command::Schema(a) => schema::run(a),
        Command::Tools(a) => tools::run(a, &settings),
        Command::Render(a) => render::run(a, &settings),
        Command::Call(a) => call::run(a, &settings).await,
        Command::Serve(a) => crate::mcp::serve(a, settings).await,
        Command::Snapshot(a) => snapshot::run(a).await,
    }
}

/// Load the registry the settings point at, printing diagnostics on failure.
pub(crate) fn load_registry(settings: &Settings) -> Result<crate::engine::Registry, ExitCode> {
    load_from(settings.spec_paths().as_deref())
}

/// Load spec paths (or the embedded catalogue), printing every diagnostic on failure.
pub(crate) fn load_from(paths: Option<&[PathBuf]>) -> Result<crate::engine::Registry, ExitCode> {
    crate::spec::compile::load_paths_or_embedded(paths).map_err(|diags| {
        let mut err = std::io::stderr().lock();
        for d in &diags {
            let _ = writeln!(err, "{d}");
        }
        let _ = writeln!(err, "{}", crate::spec::compile::summary(&diags));
        ExitCode::from(crate::EXIT_INVALID_SPEC)
    })
}

/// Activate the settings' mode over a fresh registry.
pub(crate) fn activate(settings: &Settings) -> Result<crate::engine::Active, ExitCode> {
    let reg = load_registry(settings)?;
    crate::engine::Active::new(std::sync::Arc::new(reg), &settings.mode).map(|a| a.with_settings(settings)).map_err(
        |e| {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::from(2)
        },
    )
}

/// Parse `--args` JSON into an object.
pub(crate) fn parse_args(text: &str) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => anyhow::bail!("--args must be a JSON object, e.g. '{{\"namespace\": \"default\"}}'"),
        Err(e) => anyhow::bail!("--args is not valid JSON: {e}"),
    }
}

/// Write a line to stdout (stdout is reserved for command output and stdio MCP).
pub(crate) fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{text}");
}
