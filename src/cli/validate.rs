//! `validate`: check specs, report every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to check (default: the configured spec paths), together with the
    /// built-in catalogue they will run with (unless --replace-catalogue).
    pub paths: Vec<PathBuf>,
}

pub fn run(args: &Args, settings: &Settings) -> anyhow::Result<ExitCode> {
    let paths = if args.paths.is_empty() { settings.spec_paths() } else { args.paths.clone() };
    let embedded = settings.embedded_catalogue();
    let reg = match super::load_from(&paths, embedded) {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let builtin = reg.files.iter().filter(|f| f.to_string_lossy().starts_with("embedded:")).count();
    let yours = reg.files.len() - builtin;
    super::out(&format!(
        "ok: {} tools, {} resources, {} prompts, {} backends, {} modes in {} files{}",
        reg.tools.len(),
        reg.resources.len(),
        reg.prompts.len(),
        reg.backends.len(),
        reg.modes.len(),
        reg.files.len(),
        if embedded { format!(" ({yours} yours, {builtin} built in)") } else { String::new() }
    ));
    Ok(ExitCode::SUCCESS)
}
