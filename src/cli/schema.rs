//! `schema`: print a kind's JSON Schema, or write/check the schemas/ directory.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::spec::schema;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kind to print (Tool, Resource, Prompt, Backend, Mode, Workflow).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(schema::KINDS))]
    pub kind: Option<String>,
    /// Write every schema file into this directory.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["kind", "check"])]
    pub write: Option<PathBuf>,
    /// Fail (exit 1) if the files in this directory differ from what the code generates.
    #[arg(long, value_name = "DIR", conflicts_with = "kind")]
    pub check: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.write {
        schema::write(dir)?;
        super::out(&format!("wrote {} schemas to {}", schema::KINDS.len(), dir.display()));
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = &args.check {
        let drift = schema::drift(dir);
        if drift.is_empty() {
            super::out(&format!("schemas in {} are up to date", dir.display()));
            return Ok(ExitCode::SUCCESS);
        }
        anyhow::bail!(
            "schemas out of date in {}: {} (run `cluster-health-mcp schema --write {}`)",
            dir.display(),
            drift.join(", "),
            dir.display()
        );
    }
    match &args.kind {
        Some(k) => super::out(&serde_json::to_string_pretty(&schema::generate(k))?),
        None => {
            for k in schema::KINDS {
                super::out(&format!("{k}: schemas/{}", schema::file_name(k)));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
