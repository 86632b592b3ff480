//! The command line: validate, schema, tools, render, call, serve.

mod call;
mod export;
mod read;
mod render;
mod schema;
mod snapshot;
mod test;
mod tools;
mod validate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::Settings;

const AFTER_HELP: &str = "\
Specs are YAML documents (kinds Tool, Resource, Prompt, Backend, Mode, Workflow). The
catalogue built into the binary is always there; --specs files add to it (a document of the
same kind and name replaces the built-in one); --replace-catalogue uses only --specs.
`export DIR` writes the built-in catalogue out for editing.

Settings layer as: defaults < --config file < CHM_* environment (nested with __, e.g.
CHM_HTTP__BIND=0.0.0.0:8080) < flags. Backend fields are settings too:
  CHM_BACKENDS__PROMETHEUS__URL=https://thanos:9091   --set backends.prometheus.url=...
  a --config file's `backends: {prometheus: {url: ...}}`   --snapshot DIR (kubernetes)

Exit codes: 0 success; 1 a tool call returned an error or a runtime failure;
2 usage error; 78 specs failed validation.";

/// Declarative MCP server for Kubernetes/OpenShift cluster health.
#[derive(Debug, Parser)]
#[command(name = "cluster-health-mcp", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// YAML settings file (lowest precedence after built-in defaults).
    #[arg(long, global = true, env = "CHM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Spec file or directory added to the built-in catalogue; repeat for several. Default:
    /// ./tools.d and ./modes if present.
    #[arg(long = "specs", global = true, value_name = "PATH")]
    pub specs: Vec<PathBuf>,
    /// Use only the --specs files, without the built-in catalogue.
    #[arg(long, global = true)]
    pub replace_catalogue: bool,
    /// Read this snapshot (a directory of manifests, a must-gather, or builtin:demo) instead
    /// of a cluster, with the mode's kubernetes backend.
    #[arg(long, global = true, value_name = "DIR")]
    pub snapshot: Option<String>,
    /// Set any setting by its dotted path, e.g. backends.prometheus.url=http://prom:9090 or
    /// http.stateless=true (values are JSON when they parse as JSON, else text); repeat.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Deployment mode: demo (default: the built-in offline cluster), standalone (your
    /// kubeconfig or in-cluster account), monitoring (+ Prometheus), full, or any Mode you define.
    #[arg(long, global = true, value_name = "MODE")]
    pub mode: Option<String>,
    /// Log filter for stderr (e.g. info, debug, cluster_health_mcp=trace).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
    /// Read-only server: hide every destructive tool (and the REST routes bound to them) and
    /// refuse calls to them, whatever the mode exposes (setting read_only, CHM_READ_ONLY).
    #[arg(long, global = true)]
    pub read_only: bool,
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
    /// Read one resource by URI (e.g. cluster://health) and print its contents.
    Read(read::Args),
    /// Write the built-in catalogue (tools.d/, modes/) and the JSON Schemas (schemas/) into
    /// a directory, as a starting point for editing.
    Export(export::Args),
    /// Serve MCP over stdio (default) or Streamable HTTP.
    ///
    /// stdio is for local clients such as Claude Desktop (logs go to stderr). HTTP serves
    /// Streamable HTTP at /mcp plus /healthz, /readyz and /metrics, on 127.0.0.1:8080 unless
    /// --bind says otherwise; Host and Origin are checked, and CHM_HTTP__TOKEN_FILE requires a
    /// bearer token (a bind beyond loopback without one is refused unless --insecure-no-auth).
    /// Spec files are watched and reloaded (the last good set keeps serving).
    ///
    /// HTTP limits (CHM_HTTP__<NAME>, default): MAX_SESSIONS (1000), MAX_SESSIONS_PER_CLIENT
    /// (100), SESSION_IDLE_SECONDS (300), MAX_CONNECTIONS (512), HEADER_TIMEOUT_SECONDS (15,
    /// also the keep-alive idle limit), BODY_TIMEOUT_SECONDS (30), BODY_LIMIT (4 MiB),
    /// RATE_LIMIT_PER_SECOND (100 per client address on /mcp; 0 = off).
    ///
    /// Examples:
    ///   cluster-health-mcp serve                                  # demo cluster over stdio
    ///   cluster-health-mcp --mode standalone serve --transport http
    ///   CHM_HTTP__TOKEN_FILE=/run/token cluster-health-mcp --mode monitoring serve --transport http --bind 0.0.0.0:8080 --stateless
    #[command(verbatim_doc_comment)]
    Serve(crate::mcp::ServeArgs),
    /// Offline cluster snapshots: serve one as a Kubernetes API, inspect, generate.
    Snapshot(snapshot::Args),
    /// Run spec tests (YAML documents of kind Test, default under tests.d/) offline against
    /// fixture clusters and recorded Prometheus answers; --junit FILE writes a JUnit XML
    /// report, --update rewrites expected text files. Exits 1 when a test fails.
    Test(test::Args),
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
        if self.replace_catalogue {
            flags.insert("replace_catalogue".into(), true.into());
        }
        if self.read_only {
            flags.insert("read_only".into(), true.into());
        }
        if let Some(s) = &self.snapshot {
            flags.insert("snapshot".into(), s.clone().into());
        }
        if let Command::Serve(s) = &self.command {
            s.flags(&mut flags);
        }
        let mut flags = serde_json::Value::Object(flags);
        for assignment in &self.set {
            crate::spec::merge_patch(&mut flags, &set_patch(assignment)?);
        }
        Ok(Settings::load(self.config.as_deref(), flags)?)
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
        Command::Read(a) => read::run(a, &settings).await,
        Command::Export(a) => export::run(a),
        Command::Serve(a) => match activate(&settings) {
            Ok(active) => crate::mcp::serve(a, settings, active).await,
            Err(code) => Ok(code),
        },
        Command::Snapshot(a) => snapshot::run(a).await,
        Command::Test(a) => test::run(a, &settings).await,
    }
}

/// `--set a.b=v` as a nested patch `{"a": {"b": v}}`; v is JSON if it parses, else text.
fn set_patch(assignment: &str) -> anyhow::Result<serde_json::Value> {
    let Some((key, value)) = assignment.split_once('=') else {
        anyhow::bail!("--set {assignment}: expected KEY=VALUE, e.g. --set backends.prometheus.url=http://prom:9090");
    };
    if key.is_empty() || key.split('.').any(str::is_empty) {
        anyhow::bail!("--set {assignment}: the key must be a dotted path such as backends.prometheus.url");
    }
    let mut patch = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
    for part in key.rsplit('.') {
        patch = serde_json::json!({ part: patch });
    }
    Ok(patch)
}

/// Load the registry the settings point at, printing diagnostics on failure.
pub(crate) fn load_registry(settings: &Settings) -> Result<crate::engine::Registry, ExitCode> {
    load_from(&settings.spec_paths(), settings.embedded_catalogue())
}

/// Load spec paths (over the embedded catalogue when `embedded`), printing every
/// diagnostic on failure.
pub(crate) fn load_from(paths: &[PathBuf], embedded: bool) -> Result<crate::engine::Registry, ExitCode> {
    if !embedded && paths.is_empty() {
        let _ = writeln!(std::io::stderr(), "error: --replace-catalogue needs spec paths (--specs PATH)");
        return Err(ExitCode::from(2));
    }
    crate::configure::load_paths(paths, embedded).map_err(|diags| {
        let mut err = std::io::stderr().lock();
        for d in &diags {
            let _ = writeln!(err, "{d}");
        }
        let _ = writeln!(err, "{}", crate::engine::compile::summary(&diags));
        ExitCode::from(crate::EXIT_INVALID_SPEC)
    })
}

/// Activate the settings' mode over a fresh registry.
pub(crate) fn activate(settings: &Settings) -> Result<crate::engine::Active, ExitCode> {
    let reg = load_registry(settings)?;
    for w in &reg.warnings {
        tracing::warn!("{w}");
    }
    crate::configure::activate(std::sync::Arc::new(reg), settings).map_err(|e| {
        let _ = writeln!(std::io::stderr(), "error: {e}");
        ExitCode::from(2)
    })
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
