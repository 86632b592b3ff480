//! `render`: the requests a call would send, without sending them.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::engine::invoke::{prepare_args, render_request};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tool name.
    pub tool: String,
    /// Arguments as a JSON object.
    #[arg(long, default_value = "{}")]
    pub args: String,
}

pub fn run(args: &Args, settings: &Settings) -> anyhow::Result<ExitCode> {
    let active = match super::activate(settings) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let Some(tool) = active.registry.tools.get(&args.tool) else {
        anyhow::bail!("unknown tool `{}` (see `cluster-health-mcp tools`)", args.tool);
    };
    let call_args = super::parse_args(&args.args)?;
    let prepared = prepare_args(&tool.proc, &call_args)?;
    let mut ctx = prepared.clone();
    ctx.insert("backends".into(), active.backend_flags());
    // Results of earlier steps are not known without the network: they render as null.
    for s in &tool.proc.steps {
        ctx.insert(s.name.clone(), Value::Null);
    }
    let mctx = crate::engine::template::to_value(&ctx);
    let mut steps = Vec::new();
    for step in &tool.proc.steps {
        let mut entry = json!({"step": step.name, "backend": step.backend});
        if !step.deps.is_empty() {
            entry["dependsOn"] = json!(step.deps);
        }
        if step.optional {
            entry["optional"] = json!(true);
        }
        if let Some(w) = &step.when {
            let on = crate::engine::template::eval_expr(w, &mctx).map(|v| v.is_true()).unwrap_or(false);
            entry["when"] = json!({"condition": w, "holds": on});
        }
        match render_request(step, &mctx) {
            Ok(req) => {
                entry["request"] = match active.backends.get(&step.backend) {
                    Ok(client) => client.describe(&req),
                    Err(e) => json!({"request": req, "unavailable": e.to_string()}),
                };
            }
            Err(e) if !step.deps.is_empty() => {
                entry["request"] = json!(format!("rendered at call time from {} ({e})", step.deps.join(", ")));
            }
            Err(e) => anyhow::bail!("step `{}`: cannot build the request: {e}", step.name),
        }
        steps.push(entry);
    }
    super::out(&serde_json::to_string_pretty(&json!({"tool": tool.name, "arguments": prepared, "steps": steps}))?);
    Ok(ExitCode::SUCCESS)
}
