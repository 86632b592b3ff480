//! `export`: write the built-in catalogue and the JSON Schemas out as a starting point.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write tools.d/, modes/ and schemas/ into (created if missing).
    pub dir: PathBuf,
    /// Overwrite files that already exist.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let files = crate::spec::embedded::FILES;
    if !args.force
        && let Some((existing, _)) = files.iter().find(|(rel, _)| args.dir.join(rel).exists())
    {
        anyhow::bail!("{} exists; pass --force to overwrite", args.dir.join(existing).display());
    }
    for (rel, text) in files {
        let path = args.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    // The files' `# yaml-language-server: $schema=../schemas/...` comments resolve here.
    let schemas = args.dir.join("schemas");
    crate::spec::schema::write(&schemas)?;
    let d = args.dir.display();
    super::out(&format!(
        "wrote {} spec files and {} schemas to {d}\n\
         edit them, then: cluster-health-mcp --specs {d}/tools.d --specs {d}/modes validate\n\
         (your files replace the built-in documents of the same name; add --replace-catalogue \
         to use only your files, e.g. after deleting some)",
        files.len(),
        crate::spec::schema::KINDS.len(),
    ));
    Ok(ExitCode::SUCCESS)
}
