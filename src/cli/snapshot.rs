//! `snapshot`: inspect, serve and generate offline cluster snapshots.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCommand {
    /// Serve a snapshot as a Kubernetes API server (read, plus writes to memory only) and
    /// print a kubeconfig for kubectl or any client.
    ///
    /// DIR is a directory of manifests (Lists or single objects, YAML or JSON), an OpenShift
    /// must-gather, or `builtin:demo` for the embedded demo cluster.
    Serve {
        /// Snapshot directory, or builtin:demo.
        dir: String,
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Also write the kubeconfig to this file.
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
        /// Serve Secret values as they are in the snapshot (by default every value of a
        /// Secret's data and stringData is masked, and its last-applied annotation dropped).
        #[arg(long)]
        show_secrets: bool,
        /// Require this bearer token (read from FILE); the printed kubeconfig carries it.
        /// Requests must name localhost, 127.0.0.1 or [::1] in their Host header either way.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Summarise what a snapshot holds: object counts by type, logs, unreadable files.
    Info {
        /// Snapshot directory, or builtin:demo.
        dir: String,
    },
    /// Write a synthetic cluster of the given size (JSON Lists, must-gather layout).
    Generate {
        /// Output directory (created).
        out: PathBuf,
        /// Number of nodes.
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        /// Number of pods.
        #[arg(long, default_value_t = 10_000)]
        pods: usize,
        /// Number of namespaces.
        #[arg(long, default_value_t = 50)]
        namespaces: usize,
        /// Random seed (same seed, same cluster).
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

fn load(dir: &str) -> anyhow::Result<crate::snapshot::api::Shared> {
    crate::backends::kubernetes::snapshot_store(dir).map_err(|e| anyhow::anyhow!(e))
}

pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        SnapshotCommand::Serve { dir, port, kubeconfig, show_secrets, token_file } => {
            let store = load(dir)?;
            if !show_secrets {
                let masked =
                    crate::snapshot::serve::mask_secrets(&mut store.write().unwrap_or_else(|e| e.into_inner()));
                tracing::info!(secrets = masked, "Secret values are masked (--show-secrets serves them)");
            }
            let token = match token_file {
                Some(path) => {
                    let t = std::fs::read_to_string(path)
                        .map_err(|e| anyhow::anyhow!("cannot read token file {}: {e}", path.display()))?
                        .trim()
                        .to_string();
                    anyhow::ensure!(!t.is_empty(), "token file {} is empty", path.display());
                    Some(t)
                }
                None => None,
            };
            let rbac_users = store.read().unwrap_or_else(|e| e.into_inner()).tokens.as_ref().map(|t| t.tokens.len());
            if let Some(users) = rbac_users {
                anyhow::ensure!(
                    token.is_none(),
                    "{dir} has its own {}: its tokens authenticate callers (RBAC applies), so --token-file is not used",
                    crate::snapshot::rbac::TOKENS_FILE
                );
                tracing::info!(
                    tokens = users,
                    "authentication by the snapshot's {} and authorization by its RBAC; the kubeconfig carries no token",
                    crate::snapshot::rbac::TOKENS_FILE
                );
            }
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", *port)).await?;
            let addr = listener.local_addr()?;
            let config = crate::snapshot::serve::kubeconfig(&format!("http://{addr}"), token.as_deref());
            if let Some(path) = kubeconfig {
                std::fs::write(path, &config)?;
            }
            super::out(&config);
            tracing::info!(%addr, "serving snapshot {dir} as a Kubernetes API");
            let app = crate::snapshot::serve::guarded(crate::snapshot::api::router(store), token);
            let limits =
                crate::mcp::listen::Limits { max_connections: 256, header_timeout: std::time::Duration::from_secs(15) };
            crate::mcp::listen::serve(listener, app, limits, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
            Ok(ExitCode::SUCCESS)
        }
        SnapshotCommand::Info { dir } => {
            let store = load(dir)?;
            let s = store.read().unwrap_or_else(|e| e.into_inner());
            for (key, objs) in &s.objects {
                let t = &s.types[key];
                super::out(&format!(
                    "{:<48} {:>7}  {}",
                    format!("{} {}", t.api_version(), t.kind),
                    objs.len(),
                    if t.namespaced { "namespaced" } else { "cluster" }
                ));
            }
            super::out(&format!(
                "{} objects, {} container logs, {} unreadable files",
                s.object_count(),
                s.logs.len(),
                s.skipped.len()
            ));
            if let Some(t) = &s.tokens {
                super::out(&format!(
                    "{} tokens in {}: requests authenticate and the snapshot's RBAC applies",
                    t.tokens.len(),
                    crate::snapshot::rbac::TOKENS_FILE
                ));
                for (who, roles) in crate::snapshot::rbac::describe(&s) {
                    super::out(&format!("  {who}: {}", roles.join("; ")));
                }
            }
            for (path, why) in &s.skipped {
                super::out(&format!("  skipped {}: {why}", path.display()));
            }
            Ok(ExitCode::SUCCESS)
        }
        SnapshotCommand::Generate { out, nodes, pods, namespaces, seed } => {
            let written = crate::snapshot::generate::write(out, *nodes, *pods, *namespaces, *seed)?;
            super::out(&format!("wrote {written} objects to {}", out.display()));
            Ok(ExitCode::SUCCESS)
        }
    }
}
