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
    let reg = match crate::spec::compile::load_paths_or_embedded(paths.as_deref()) {
        Ok(r) => r,
        Err(diags) => {
            for d in &diags {
                eprintln_line(&d.to_string());
            }
            eprintln_line(&crate::spec::compile::summary(&diags));
            return Ok(ExitCode::from(crate::EXIT_INVALID_SPEC));
        }
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

fn eprintln_line(s: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}
