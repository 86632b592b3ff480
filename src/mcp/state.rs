//! Server state shared by every session: the active registry (swapped atomically on
//! reload), change notifications, reload errors and metrics.

use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use super::metrics::Metrics;
use crate::engine::Active;

/// What changed in a reload (clients are told about each list).
#[derive(Debug, Clone, Copy)]
pub struct Changed;

/// Shared by all sessions and the HTTP endpoints.
pub struct State {
    active: RwLock<Arc<Active>>,
    /// Fired after every successful reload.
    pub changes: broadcast::Sender<Changed>,
    /// Located errors of the last failed reload (empty when the last reload succeeded).
    pub reload_errors: RwLock<Vec<String>>,
    pub metrics: Metrics,
}

impl State {
    /// State around an initial active registry.
    pub fn new(active: Active) -> Arc<State> {
        let (changes, _) = broadcast::channel(16);
        Arc::new(State {
            active: RwLock::new(Arc::new(active)),
            changes,
            reload_errors: RwLock::new(Vec::new()),
            metrics: Metrics::default(),
        })
    }

    /// The registry in force now. Calls keep the snapshot they started with.
    pub fn current(&self) -> Arc<Active> {
        self.active.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Swap in a new registry and tell every session.
    pub fn swap(&self, active: Active) {
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(active);
        self.reload_errors.write().unwrap_or_else(|e| e.into_inner()).clear();
        let _ = self.changes.send(Changed);
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
