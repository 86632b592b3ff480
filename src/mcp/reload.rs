//! Hot reload: watch the spec paths (and their parents, so ConfigMap `..data` symlink swaps
//! are seen), debounce, re-validate everything, swap atomically; keep the last good
//! registry when the new one fails. SIGHUP forces a reload; a polling watcher is the
//! fallback where native events do not work (NFS, some container filesystems).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::state::State;
use crate::settings::Settings;

/// Quiet time after the last change before reloading.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Start watching; None when serving the embedded catalogue alone (nothing to watch).
pub fn spawn(state: Arc<State>, settings: Settings) -> Option<tokio::task::JoinHandle<()>> {
    let paths = settings.spec_paths();
    if paths.is_empty() {
        return None;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watcher = watch(&paths, tx.clone(), settings.reload_poll_seconds);
    Some(tokio::spawn(async move {
        let _watcher = watcher; // dropped (and stopped) with the task
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup_recv = std::future::pending::<Option<()>>();
            tokio::select! {
                ev = rx.recv() => {
                    if ev.is_none() { return; }
                    // Debounce: wait until changes stop for a moment.
                    while tokio::time::timeout(DEBOUNCE, rx.recv()).await.is_ok_and(|e| e.is_some()) {}
                }
                _ = hup_recv => tracing::info!("SIGHUP: reloading specs"),
            }
            // Loading and compiling the catalogue is CPU work: keep it off the async workers
            // that answer calls.
            let (s, st) = (state.clone(), settings.clone());
            if let Err(e) = tokio::task::spawn_blocking(move || reload(&s, &st)).await {
                tracing::error!(error = %e, "reload task failed; keeping the previous registry");
            }
        }
    }))
}

fn watch(paths: &[PathBuf], tx: mpsc::UnboundedSender<()>, poll: Option<u64>) -> Option<Box<dyn Watcher + Send>> {
    // Only changes that can alter the specs count: spec files (in watched directories or the
    // named files) and ConfigMap `..data` swaps. Logs or editor files beside them do not.
    let files: Vec<PathBuf> =
        paths.iter().filter(|p| p.is_file()).map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect();
    let dirs: Vec<PathBuf> =
        paths.iter().filter(|p| p.is_dir()).map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect();
    let relevant = move |path: &std::path::Path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("..") {
            return true;
        }
        let spec_ext = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"));
        (spec_ext && !name.starts_with('.') && dirs.iter().any(|d| path.starts_with(d)))
            || files.iter().any(|f| f == path)
    };
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && !matches!(ev.kind, notify::EventKind::Access(_))
            && ev.paths.iter().any(|p| relevant(p))
        {
            let _ = tx.send(());
        }
    };
    let mut watcher: Box<dyn Watcher + Send> = match poll {
        Some(secs) => Box::new(
            notify::PollWatcher::new(
                handler,
                notify::Config::default().with_poll_interval(Duration::from_secs(secs.max(1))),
            )
            .ok()?,
        ),
        None => match notify::recommended_watcher(handler) {
            Ok(w) => Box::new(w),
            Err(e) => {
                tracing::warn!(error = %e, "native file watching unavailable; set reload_poll_seconds for polling");
                return None;
            }
        },
    };
    for p in paths {
        let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let (target, mode) = if p.is_dir() {
            (p.clone(), RecursiveMode::Recursive)
        } else {
            (p.parent()?.to_path_buf(), RecursiveMode::NonRecursive)
        };
        if let Err(e) = watcher.watch(&target, mode) {
            tracing::warn!(path = %target.display(), error = %e, "cannot watch spec path");
        }
    }
    Some(watcher)
}

/// Re-validate everything and swap, or keep the last good registry.
pub fn reload(state: &State, settings: &Settings) {
    match crate::configure::load_catalogue(settings) {
        Ok(reg) => match crate::configure::activate(Arc::new(reg), settings) {
            Ok(active) => {
                let (tools, resources, prompts) = (active.tools.len(), active.resources.len(), active.prompts.len());
                let changed = state.swap(active);
                tracing::info!(tools, resources, prompts, ?changed, "specs reloaded");
                state.metrics.record_reload(true);
            }
            Err(e) => {
                tracing::error!(error = %e, "reload failed; keeping the previous registry");
                state.reload_failed(vec![e]);
                state.metrics.record_reload(false);
            }
        },
        Err(diags) => {
            let errors: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            for e in &errors {
                tracing::error!("{e}");
            }
            tracing::error!(
                "reload failed ({}); keeping the previous registry",
                crate::engine::compile::summary(&diags)
            );
            state.reload_failed(errors);
            state.metrics.record_reload(false);
        }
    }
}
