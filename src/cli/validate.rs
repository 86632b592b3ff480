//! `validate`: check specs, report every problem.

use std::io::Write;
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
    for w in &reg.warnings {
        let _ = writeln!(std::io::stderr(), "{w}");
    }
    // With authentication on, the mode's bindings must not forward the credential callers
    // authenticate with (caller-token in Authorization): `serve` would refuse to start.
    if settings.http.oauth.enabled() || settings.http.token_file.is_some() {
        let registry = std::sync::Arc::new(reg);
        if let Err(e) = crate::configure::activate(registry.clone(), settings) {
            let _ = writeln!(std::io::stderr(), "error: mode `{}`: {e}", settings.mode);
            return Ok(ExitCode::from(crate::EXIT_INVALID_SPEC));
        }
        return Ok(summary(&registry, embedded));
    }
    Ok(summary(&reg, embedded))
}

/// The `ok:` line.
fn summary(reg: &crate::engine::Registry, embedded: bool) -> ExitCode {
    let builtin = reg.files.iter().filter(|f| f.to_string_lossy().starts_with("embedded:")).count();
    let yours = reg.files.len() - builtin;
    super::out(&format!(
        "ok: {} tools, {} resources, {} prompts, {} libraries, {} backends, {} modes in {} files{}{}",
        reg.tools.len(),
        reg.resources.len(),
        reg.prompts.len(),
        reg.libraries.len(),
        reg.backends.len(),
        reg.modes.len(),
        reg.files.len(),
        if embedded { format!(" ({yours} yours, {builtin} built in)") } else { String::new() },
        match reg.warnings.len() {
            0 => String::new(),
            1 => ", 1 warning".into(),
            n => format!(", {n} warnings"),
        }
    ));
    ExitCode::SUCCESS
}
