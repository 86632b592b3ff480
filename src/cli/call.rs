//! `call`: run one tool once.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tool name.
    pub tool: String,
    /// Arguments as a JSON object.
    #[arg(long, default_value = "{}")]
    pub args: String,
    /// Print only the structured result (JSON).
    #[arg(long, conflicts_with = "text")]
    pub json: bool,
    /// Print only the text rendering.
    #[arg(long)]
    pub text: bool,
}

pub async fn run(args: &Args, settings: &Settings) -> anyhow::Result<ExitCode> {
    let active = match super::activate(settings) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let Some(tool) = active.tools.get(&args.tool).cloned() else {
        let why = active
            .exposure
            .iter()
            .find(|e| e.kind == "Tool" && e.name == args.tool)
            .map(|e| format!("tool `{}` is hidden in mode {}: {}", args.tool, active.mode.name, e.reason))
            .unwrap_or_else(|| format!("unknown tool `{}` (see `cluster-health-mcp tools`)", args.tool));
        anyhow::bail!(why);
    };
    let call_args = super::parse_args(&args.args)?;
    match crate::engine::invoke::run(&active, &tool.proc, &call_args, None, &CancellationToken::new()).await {
        Ok(outcome) if outcome.error.is_some() => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {}", outcome.error.unwrap_or_default());
            Ok(ExitCode::from(crate::EXIT_TOOL_ERROR))
        }
        Ok(outcome) => {
            if !args.text {
                super::out(&serde_json::to_string_pretty(&outcome.structured)?);
            }
            if !args.json {
                if !args.text {
                    super::out("---");
                }
                super::out(&outcome.text);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {e}");
            Ok(ExitCode::from(crate::EXIT_TOOL_ERROR))
        }
    }
}
