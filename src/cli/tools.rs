//! `tools`: what the active mode exposes, and why the rest is hidden.

use std::process::ExitCode;

use crate::backends::Effect;
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args, settings: &Settings) -> anyhow::Result<ExitCode> {
    let active = match super::activate(settings) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    if args.json {
        super::out(&serde_json::to_string_pretty(&active.exposure)?);
        return Ok(ExitCode::SUCCESS);
    }
    let endpoints = crate::configure::endpoints(&active);
    let backends: Vec<String> = active
        .backends
        .clients
        .iter()
        .map(|(n, c)| {
            let at = endpoints.get(n).map(String::as_str).unwrap_or_default();
            match c.as_ref() {
                crate::backends::Client::Unavailable { reason, .. } => format!("{n} ({at}; unavailable: {reason})"),
                _ => format!("{n} ({at})"),
            }
        })
        .collect();
    super::out(&format!(
        "mode {}: backends {}",
        active.mode.name,
        if backends.is_empty() { "none".into() } else { backends.join(", ") }
    ));
    let width = active.exposure.iter().map(|e| e.name.len()).max().unwrap_or(4).max(4);
    for e in &active.exposure {
        let status = if e.exposed { "exposed".to_string() } else { format!("hidden: {}", e.reason) };
        // Every tool and resource says what it does to the world: read, write, or a non-GET
        // call that is side-effect free (declared by the step, or by its kind: inference).
        let effect = match e.effect {
            None => "",
            Some(Effect::Read) => "read",
            Some(Effect::SideEffectFree) => "read*",
            Some(Effect::Store) => "store",
            Some(Effect::Write) => "WRITE",
        };
        let notes = if e.effects.is_empty() { String::new() } else { format!(" [{}]", e.effects.join("; ")) };
        let line = format!("{:<8} {:<width$}  {effect:<5}  {status}{notes}", e.kind, e.name);
        super::out(line.trim_end());
    }
    Ok(ExitCode::SUCCESS)
}
