//! `validate`: check specs, report every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to check (default: the configured spec paths).
    pub paths: Vec<PathBuf>,
}

pub fn run(args: &Args, settings: &Settings) -> anyhow::Result<ExitCode> {
    let paths = if args.paths.is_empty() { settings.spec_paths() } else { Some(args.paths.clone()) };
    let reg = match super::load_from(paths.as_deref()) {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    super::out(&format!(
        "ok: {} tools, {} resources, {} prompts, {} backends, {} modes in {} files",
        reg.tools.len(),
        reg.resources.len(),
        reg.prompts.len(),
        reg.backends.len(),
        reg.modes.len(),
        reg.files.len()
    ));
    Ok(ExitCode::SUCCESS)
}
