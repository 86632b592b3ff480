//! Durable workflows: `kind: Workflow` documents compiled against the registry's tools
//! (`compile`), and the compiled form the runner executes.
//!
//! A workflow is an ordered list of steps; each calls a registry tool with templated
//! arguments (or waits for approval). Its state lives in a store (the sql backend), so a
//! workflow survives restarts and runs exactly once across replicas.

pub mod compile;
pub mod runner;
pub mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::engine::registry::Procedure;
use crate::engine::template::{CompiledExpr, Templates, Tree};
use crate::spec::workflow::TriggerSpec;

/// The variable under which templates see the workflow's own facts.
pub const WORKFLOW_VAR: &str = "workflow";
/// The tool input that dry-run propagation sets.
pub const DRY_RUN: &str = "dry_run";
/// Default time one attempt of a step may take.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// A compiled workflow.
pub struct Workflow {
    pub name: String,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub trigger: Option<TriggerSpec>,
    /// The inputs (for argument checks only: no steps, no output).
    pub inputs: Procedure,
    /// As written (e.g. `5m`).
    pub estimated_duration: String,
    pub steps: Vec<WorkflowStep>,
    /// The compiled templates of every step.
    pub templates: Templates,
    /// The document's file, for messages.
    pub file: PathBuf,
}

/// One compiled step.
pub struct WorkflowStep {
    /// 1-based position.
    pub order: usize,
    pub name: String,
    pub description: Option<String>,
    pub layer: Option<String>,
    pub action: Action,
    /// Condition: its source and the compiled expression.
    pub when: Option<(String, CompiledExpr)>,
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Time one attempt of a tool step may take.
    pub timeout: Duration,
    /// A gate with a `timeout`: how long it waits for approval before the workflow fails.
    pub approval_timeout: Option<Duration>,
}

/// What a step does.
pub enum Action {
    /// Call a registry tool.
    Tool {
        /// The tool's name (looked up in the active registry when the step runs, so a
        /// reload's new version is used).
        tool: String,
        /// The arguments with their templates compiled.
        args: Tree,
        /// The tool takes `dry_run`: a dry-run workflow sets it to true.
        takes_dry_run: bool,
    },
    /// Wait for approval; the message template's name in `templates`, if any.
    Approval { message: Option<String> },
}

impl WorkflowStep {
    /// `tool` or `approval`, as stored.
    pub fn kind(&self) -> &'static str {
        match self.action {
            Action::Tool { .. } => "tool",
            Action::Approval { .. } => "approval",
        }
    }

    /// The tool a tool step calls.
    pub fn tool(&self) -> Option<&str> {
        match &self.action {
            Action::Tool { tool, .. } => Some(tool),
            Action::Approval { .. } => None,
        }
    }
}

/// The facts of an issue a workflow is matched against.
#[derive(Debug, Clone, Default)]
pub struct Issue<'a> {
    pub issue_type: &'a str,
    pub resource_kind: &'a str,
    pub deployment_method: &'a str,
}

impl Workflow {
    /// How specific the match is (the number of non-empty trigger lists), or None when the
    /// workflow does not match the issue.
    pub fn matches(&self, issue: &Issue<'_>) -> Option<usize> {
        let t = self.trigger.as_ref()?;
        let mut score = 0;
        for (list, value) in [
            (&t.issue_types, issue.issue_type),
            (&t.resource_kinds, issue.resource_kind),
            (&t.deployment_methods, issue.deployment_method),
        ] {
            if list.is_empty() {
                continue;
            }
            if !list.iter().any(|v| v.eq_ignore_ascii_case(value)) {
                return None;
            }
            score += 1;
        }
        Some(score)
    }

    /// The workflow's facts as templates see them under `workflow`.
    pub fn facts(&self, id: &str, dry_run: bool, context: &serde_json::Map<String, Value>) -> Value {
        let mut m = context.clone();
        m.insert("id".into(), id.into());
        m.insert("name".into(), self.name.clone().into());
        m.insert("dry_run".into(), dry_run.into());
        Value::Object(m)
    }
}

/// The workflow that matches an issue best: most specific trigger first, then by name.
pub fn best_match<'a, I>(workflows: I, issue: &Issue<'_>) -> Option<&'a Workflow>
where
    I: IntoIterator<Item = &'a Workflow>,
{
    let mut found: Vec<(usize, &Workflow)> =
        workflows.into_iter().filter_map(|w| w.matches(issue).map(|s| (s, w))).collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    found.first().map(|(_, w)| *w)
}

/// A new workflow id: `wf-` and 8 hex digits (as the original engine's).
pub fn new_id() -> String {
    crate::ids::new_id("wf-")
}

/// Link every `workflows` client of an activated mode to its registry, its store binding
/// and the tools the mode exposes (called whenever a mode's backends are built).
pub fn link(active: &crate::engine::Active) {
    for client in active.backends.clients.values() {
        let crate::backends::Client::Workflows(wf) = client.as_ref() else { continue };
        // The runner's tables exist as soon as the store connects: specs may read them (the
        // incidents derived from workflows) before any workflow ran.
        if let Some(crate::backends::Client::Sql(sql)) = active.backends.clients.get(&wf.spec.store).map(|c| c.as_ref())
        {
            sql.migrate_owner_at_connect(store::OWNER, store::migrations());
        }
        let link = crate::backends::workflows::Link {
            registry: active.registry.clone(),
            store: active.backends.clients.get(&wf.spec.store).cloned(),
            exposed_tools: active.tools.keys().cloned().collect(),
            hidden_tools: active
                .exposure
                .iter()
                .filter(|e| e.kind == "Tool" && !e.exposed)
                .map(|e| (e.name.clone(), e.reason.clone()))
                .collect(),
            mode: active.mode.name.clone(),
        };
        *wf.link.write().unwrap_or_else(|e| e.into_inner()) = Some(std::sync::Arc::new(link));
    }
}
