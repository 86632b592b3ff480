//! The generic engine: templates, extraction, the compiled registry and the executor.

pub mod args;
pub mod budget;
pub mod checks;
pub mod compile;
pub mod extract;
pub mod features;
pub mod invoke;
pub mod json_view;
pub mod k8s;
pub mod library;
pub mod lint;
pub mod projection;
pub mod quantity;
pub mod registry;
pub mod template;

use std::sync::Arc;

use indexmap::IndexMap;

pub use registry::Registry;
use registry::{Exposure, Mode, Prompt, Resource, Tool};

use crate::backends::Backends;

/// A registry activated for one mode: the exposed documents and the mode's backend clients.
/// Swapped atomically as a whole on reload.
pub struct Active {
    pub registry: Arc<Registry>,
    pub mode: Mode,
    pub backends: Backends,
    pub exposure: Vec<Exposure>,
    pub tools: IndexMap<String, Arc<Tool>>,
    pub resources: IndexMap<String, Arc<Resource>>,
    pub prompts: IndexMap<String, Arc<Prompt>>,
    /// REST routes served in this mode.
    pub routes: IndexMap<String, Arc<crate::routes::Route>>,
    /// Largest answer (structured JSON plus text, in bytes) before deterministic truncation.
    pub response_budget: usize,
}

/// Why the read-only switch hides a document.
pub const READ_ONLY: &str = "the server is read-only (setting read_only): destructive tools are hidden";

/// Default response budget in bytes (the settings' token budget at 4 bytes per token).
pub const DEFAULT_RESPONSE_BUDGET: usize = crate::settings::DEFAULT_RESPONSE_BUDGET_TOKENS * 4;

impl Active {
    /// Activate `mode_name` over a registry.
    pub fn new(registry: Arc<Registry>, mode_name: &str) -> Result<Active, String> {
        let mode = registry.modes.get(mode_name).cloned().ok_or_else(|| {
            let known: Vec<&str> = registry.modes.keys().map(String::as_str).collect();
            format!(
                "unknown mode `{mode_name}` (known modes: {})",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            )
        })?;
        let exposure = registry.exposure(&mode);
        let exposed = |kind: &str, name: &str| exposure.iter().any(|e| e.kind == kind && e.name == name && e.exposed);
        let tools =
            registry.tools.iter().filter(|(n, _)| exposed("Tool", n)).map(|(n, t)| (n.clone(), t.clone())).collect();
        let resources = registry
            .resources
            .iter()
            .filter(|(n, _)| exposed("Resource", n))
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        let prompts = registry
            .prompts
            .iter()
            .filter(|(n, _)| exposed("Prompt", n))
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        let routes =
            registry.routes.iter().filter(|(n, _)| exposed("Route", n)).map(|(n, t)| (n.clone(), t.clone())).collect();
        let backends = Backends::build(&mode.backends);
        let active = Active {
            registry,
            mode,
            backends,
            exposure,
            tools,
            resources,
            prompts,
            routes,
            response_budget: DEFAULT_RESPONSE_BUDGET,
        };
        crate::workflows::link(&active);
        Ok(active)
    }

    /// Apply server settings: the response budget, and the read-only switch (every
    /// destructive tool hidden, whatever the mode exposes).
    pub fn with_settings(mut self, settings: &crate::settings::Settings) -> Active {
        self.response_budget = settings.response_budget_tokens.saturating_mul(4).max(1024);
        if settings.read_only {
            self.hide_destructive();
            crate::workflows::link(&self);
        }
        self
    }

    /// Hide every destructive tool, every resource with a writing step and every REST route
    /// bound to a destructive tool; workflows needing a hidden tool become inactive (they are
    /// linked to the tools left).
    pub fn hide_destructive(&mut self) {
        let hidden: Vec<(&'static str, String)> = self
            .tools
            .values()
            .filter(|t| t.is_destructive())
            .map(|t| ("Tool", t.name.clone()))
            .chain(
                self.resources
                    .values()
                    .filter(|r| r.proc.effect() == crate::backends::Effect::Write)
                    .map(|r| ("Resource", r.name.clone())),
            )
            .chain(self.routes.values().filter(|r| r.tool.is_destructive()).map(|r| ("Route", r.name.clone())))
            .collect();
        for (kind, name) in hidden {
            match kind {
                "Tool" => drop(self.tools.shift_remove(&name)),
                "Resource" => drop(self.resources.shift_remove(&name)),
                _ => drop(self.routes.shift_remove(&name)),
            }
            if let Some(e) = self.exposure.iter_mut().find(|e| e.kind == kind && e.name == name) {
                e.exposed = false;
                e.reason = READ_ONLY.into();
            }
        }
    }

    /// Why a document of the registry is not exposed here (None: exposed, or unknown).
    pub fn why_hidden(&self, kind: &str, name: &str) -> Option<&str> {
        self.exposure.iter().find(|e| e.kind == kind && e.name == name && !e.exposed).map(|e| e.reason.as_str())
    }

    /// Is a document of the registry hidden by the read-only switch (a call to it is refused
    /// with that reason rather than answered as unknown)?
    pub fn hidden_read_only(&self, kind: &str, name: &str) -> bool {
        self.why_hidden(kind, name) == Some(READ_ONLY)
    }

    /// `backends` as templates see it: every known binding name -> enabled in this mode.
    pub fn backend_flags(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.registry
                .backends
                .keys()
                .map(|n| (n.clone(), serde_json::Value::Bool(self.mode.backends.contains_key(n))))
                .collect(),
        )
    }
}
