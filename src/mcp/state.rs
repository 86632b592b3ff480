//! Server state shared by every session: the active registry (swapped atomically on
//! reload), change notifications, reload errors and metrics.

use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use super::metrics::Metrics;
use crate::engine::Active;

/// Which lists a reload changed (clients are told only about those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    pub tools: bool,
    pub resources: bool,
    pub prompts: bool,
}

/// A digest of what clients see of each list (names, descriptions, schemas).
fn digests(a: &Active) -> [u64; 3] {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let h = |parts: Vec<String>| {
        let mut hasher = DefaultHasher::new();
        parts.hash(&mut hasher);
        hasher.finish()
    };
    let tools = a
        .tools
        .values()
        .map(|t| {
            format!(
                "{}|{:?}|{}|{:?}|{:?}|{:?}",
                t.name, t.title, t.description, t.proc.input_schema, t.proc.output_schema, t.hints
            )
        })
        .collect();
    let resources = a
        .resources
        .values()
        .map(|r| format!("{}|{}|{:?}|{:?}|{}", r.name, r.uri, r.title, r.description, r.mime_type))
        .collect();
    let prompts = a
        .prompts
        .values()
        .map(|p| format!("{}|{:?}", p.name, serde_json::to_string(&p.spec).unwrap_or_default()))
        .collect();
    [h(tools), h(resources), h(prompts)]
}

/// Shared by all sessions and the HTTP endpoints.
pub struct State {
    active: RwLock<Arc<Active>>,
    /// Fired after every successful reload.
    pub changes: broadcast::Sender<Changed>,
    /// Located errors of the last failed reload (empty when the last reload succeeded).
    pub reload_errors: RwLock<Vec<String>>,
    pub metrics: Metrics,
    /// Where audit records go (nowhere unless configured).
    pub audit: Arc<crate::audit::Audit>,
    /// Ask for confirmation before a destructive call changes anything (MCP elicitation, or
    /// the dry run first and an explicit `confirm` argument).
    pub confirm_destructive: bool,
}

impl State {
    /// State around an initial active registry.
    pub fn new(active: Active) -> Arc<State> {
        State::with(active, crate::audit::Audit::default(), true)
    }

    /// State around an initial active registry, with an audit sink and the confirmation
    /// policy for destructive calls.
    pub fn with(active: Active, audit: crate::audit::Audit, confirm_destructive: bool) -> Arc<State> {
        let (changes, _) = broadcast::channel(16);
        Arc::new(State {
            active: RwLock::new(Arc::new(active)),
            changes,
            reload_errors: RwLock::new(Vec::new()),
            metrics: Metrics::default(),
            audit: Arc::new(audit),
            confirm_destructive,
        })
    }

    /// The registry in force now. Calls keep the snapshot they started with.
    pub fn current(&self) -> Arc<Active> {
        self.active.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Swap in a new registry and tell every session about the lists that changed.
    pub fn swap(&self, active: Active) -> Changed {
        let new = digests(&active);
        let old = {
            let mut guard = self.active.write().unwrap_or_else(|e| e.into_inner());
            let old = digests(&guard);
            *guard = Arc::new(active);
            old
        };
        self.reload_errors.write().unwrap_or_else(|e| e.into_inner()).clear();
        let changed = Changed { tools: old[0] != new[0], resources: old[1] != new[1], prompts: old[2] != new[2] };
        if changed.tools || changed.resources || changed.prompts {
            let _ = self.changes.send(changed);
        }
        changed
    }

    /// Record a failed reload; the previous registry keeps serving.
    pub fn reload_failed(&self, errors: Vec<String>) {
        *self.reload_errors.write().unwrap_or_else(|e| e.into_inner()) = errors;
    }

    /// Errors of the last failed reload.
    pub fn errors(&self) -> Vec<String> {
        self.reload_errors.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
