//! MCP serving: stdio and Streamable HTTP over the active registry.

pub mod auth;
pub mod guard;
pub mod handler;
pub mod http;
pub mod jsonrpc;
pub mod listen;
pub mod metrics;
pub mod reload;
pub mod state;
pub mod stdio;

use std::process::ExitCode;
use std::sync::Arc;

use crate::settings::Settings;

/// Options of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Transport: stdio (for Claude Desktop and other local clients) or http.
    #[arg(long, value_enum, default_value = "stdio")]
    pub transport: Transport,
    /// Address for the HTTP transport (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Stateless HTTP (no sessions), for load-balanced replicas.
    #[arg(long)]
    pub stateless: bool,
    /// Do not watch the spec directories for changes.
    #[arg(long)]
    pub no_reload: bool,
    /// Allow an HTTP bind beyond loopback without a bearer token (trusted networks only;
    /// otherwise such a bind is refused).
    #[arg(long)]
    pub insecure_no_auth: bool,
}

/// MCP transports.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Transport {
    Stdio,
    Http,
}

impl ServeArgs {
    /// Settings overrides from these flags.
    pub fn flags(&self, flags: &mut serde_json::Map<String, serde_json::Value>) {
        let mut http = serde_json::Map::new();
        if let Some(b) = &self.bind {
            http.insert("bind".into(), b.clone().into());
        }
        if self.stateless {
            http.insert("stateless".into(), true.into());
        }
        if self.insecure_no_auth {
            http.insert("insecure_no_auth".into(), true.into());
        }
        if !http.is_empty() {
            flags.insert("http".into(), http.into());
        }
        if self.no_reload {
            flags.insert("reload".into(), false.into());
        }
    }
}

/// Serve an activated registry over MCP until the transport closes or the process is
/// signalled.
pub async fn serve(args: &ServeArgs, settings: Settings, active: crate::engine::Active) -> anyhow::Result<ExitCode> {
    tracing::info!(
        mode = %active.mode.name,
        tools = active.tools.len(),
        resources = active.resources.len(),
        prompts = active.prompts.len(),
        backends = ?crate::configure::endpoints(&active),
        "registry loaded"
    );
    // Stores connect and migrate before serving: a changed applied migration stops here.
    crate::backends::sql::start(&active.backends).await.map_err(anyhow::Error::msg)?;
    let audit = crate::audit::Audit::new(&settings.audit).map_err(anyhow::Error::msg)?;
    let state = state::State::with(active, audit, settings.confirm_destructive);
    crate::audit::install(state.audit.clone());
    let _reloader = if settings.reload { reload::spawn(state.clone(), settings.clone()) } else { None };
    // Durable workflows run in the background over the registry in force (idle when no
    // `workflows` binding is enabled).
    let runner_stop = tokio_util::sync::CancellationToken::new();
    let current = state.clone();
    let _runner = crate::workflows::runner::spawn(Arc::new(move || current.current()), runner_stop.clone());
    let _stop_runner = runner_stop.drop_guard();
    match args.transport {
        Transport::Stdio => stdio::serve(handler::Handler { state }, settings.http.body_limit).await?,
        Transport::Http => http::serve(state, &settings.http).await?,
    }
    Ok(ExitCode::SUCCESS)
}
