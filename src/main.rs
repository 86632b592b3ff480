//! Thin entry point: parse the command line, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use cluster_health_mcp::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

/// Tool calls build and drop many small JSON values; mimalloc handles that churn far better
/// than the system allocator (measured: see README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr only: stdout carries command output and stdio MCP.
    // A server logs its lifecycle; one-shot commands only warn.
    let default = if matches!(cli.command, cli::Command::Serve(_)) { "info" } else { "warn" };
    let filter = cli.log.clone().or_else(|| std::env::var("CHM_LOG").ok()).unwrap_or_else(|| default.into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_ansi(false)
        .init();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
