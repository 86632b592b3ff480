//! `render`: the requests a call would send, without sending them. Requests go through the
//! same checks as a call: a request a call would refuse is shown as refused.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::engine::invoke::{Scope, condition_holds, prepare_args, render_request};
use crate::engine::template;
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
    let call_args = super::parse_args(&args.args)?;
    super::out(&serde_json::to_string_pretty(&rendered(&active, &args.tool, &call_args)?)?);
    Ok(ExitCode::SUCCESS)
}

/// The tool, its prepared arguments and each step's described request (as `render` prints
/// them; spec tests compare with them).
pub(crate) fn rendered(
    active: &crate::engine::Active,
    tool_name: &str,
    call_args: &serde_json::Map<String, Value>,
) -> anyhow::Result<Value> {
    let Some(tool) = active.registry.tools.get(tool_name) else {
        anyhow::bail!("unknown tool `{tool_name}` (see `cluster-health-mcp tools`)");
    };
    let prepared = prepare_args(&tool.proc, call_args)?;
    let mut scope: Scope = prepared.iter().map(|(k, v)| (k.clone(), template::to_value(v))).collect();
    scope.insert("backends".into(), template::to_value(&active.backend_flags()));
    scope.extend(tool.proc.libraries.iter().map(|(k, v)| (k.clone(), v.clone())));
    // Results of earlier steps are not known without the network: they render as null.
    for s in &tool.proc.steps {
        scope.insert(s.name.clone(), template::to_value(&Value::Null));
    }
    let mctx = minijinja::Value::from(scope.clone());
    let mut steps = Vec::new();
    for step in &tool.proc.steps {
        let mut entry = json!({"step": step.name, "backend": step.backend, "effect": step.effect});
        if !step.deps.is_empty() {
            entry["dependsOn"] = json!(step.deps);
        }
        if step.optional {
            entry["optional"] = json!(true);
        }
        if let Some((w, _)) = &step.when {
            let on = condition_holds(step, &mctx).unwrap_or(false);
            entry["when"] = json!({"condition": w, "holds": on});
        }
        match render_request(step, &tool.proc, &scope) {
            Ok(req) => {
                entry["request"] = match active.backends.get(&step.backend) {
                    Ok(client) => client.describe(&req),
                    Err(e) => json!({"request": format!("{req:?}"), "unavailable": e.to_string()}),
                };
            }
            Err(e) if !step.deps.is_empty() => {
                entry["request"] =
                    json!(format!("rendered at call time from {} ({})", step.deps.join(", "), e.message));
            }
            Err(e) => anyhow::bail!("step `{}`: {}", step.name, e.message),
        }
        steps.push(entry);
    }
    Ok(json!({"tool": tool.name, "arguments": prepared, "steps": steps}))
}
