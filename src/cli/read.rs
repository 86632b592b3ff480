//! `read`: read one resource once, as `call` runs one tool.

use std::process::ExitCode;

use rmcp::model::ResourceContents;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Resource URI, e.g. cluster://health or cluster://namespaces/default/pods.
    pub uri: String,
    /// Print the MCP resources/read result as JSON instead of the contents.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &Args, settings: &Settings) -> anyhow::Result<ExitCode> {
    let active = match super::activate(settings) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let handler = crate::mcp::handler::Handler { state: crate::mcp::state::State::new(active) };
    match handler.run_resource(&args.uri, &CancellationToken::new()).await {
        Ok(result) if args.json => {
            super::out(&serde_json::to_string_pretty(&result)?);
            Ok(ExitCode::SUCCESS)
        }
        Ok(result) => {
            for contents in result.contents {
                match contents {
                    ResourceContents::TextResourceContents { text, .. } => super::out(&text),
                    ResourceContents::BlobResourceContents { blob, mime_type, .. } => super::out(&format!(
                        "({} base64 bytes of {}; --json prints them)",
                        blob.len(),
                        mime_type.unwrap_or_else(|| "binary data".into())
                    )),
                    other => super::out(&serde_json::to_string_pretty(&other)?),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {}", e.message);
            Ok(ExitCode::from(crate::EXIT_TOOL_ERROR))
        }
    }
}
