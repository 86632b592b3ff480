//! The raw model of `kind: Workflow`: a durable, ordered remediation procedure whose steps
//! call registry tools (compiled by `workflows::compile`, run by `workflows::runner`).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::InputSpec;

/// Body of a Workflow.
///
/// A workflow is started by the `workflows` backend kind (`start`, by name or by trigger
/// match) and runs in the background: its steps run in order, each step's state is
/// persisted in the store before the next starts, and after a restart an unfinished
/// workflow resumes from its last finished step.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkflowSpec {
    /// What the workflow does and when it applies.
    #[schemars(length(min = 1))]
    pub description: String,
    /// Which issues the workflow remediates, for `start` by trigger. Absent: started by
    /// name only.
    pub trigger: Option<TriggerSpec>,
    /// Typed inputs (the same JSON Schema subset as tool inputs), given by `start`'s
    /// `arguments`. Templates also see `workflow` (id, name, dry_run, incident_id,
    /// namespace, resource_kind, resource_name, issue_type, deployment_method).
    #[serde(default)]
    pub input: IndexMap<String, InputSpec>,
    /// How long the workflow usually takes (e.g. `5m`), reported by `start`.
    #[serde(default = "default_estimate")]
    pub estimated_duration: String,
    /// The steps, run in order. Each step's structured result is a variable named after the
    /// step for the steps after it.
    #[schemars(length(min = 1))]
    pub steps: Vec<WorkflowStepSpec>,
}

fn default_estimate() -> String {
    "5m".into()
}

/// The issues a workflow remediates. Every list that is non-empty must contain the
/// corresponding value of the issue; when several workflows match, the one with the most
/// non-empty lists wins (then the first by name).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TriggerSpec {
    /// Issue types (e.g. `OOMKilled`, `CrashLoopBackOff`); matched ignoring case.
    #[serde(default)]
    pub issue_types: Vec<String>,
    /// Kinds of the affected resource (e.g. `Pod`, `Deployment`); matched ignoring case.
    #[serde(default)]
    pub resource_kinds: Vec<String>,
    /// Deployment methods (argocd, helm, operator, manual); empty: any.
    #[serde(default)]
    pub deployment_methods: Vec<String>,
}

/// One workflow step: a tool call (`tool` with `args`) or an approval gate (`approval`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkflowStepSpec {
    /// The step's name, unique in the workflow; later steps read its structured result
    /// under this name. Letters, digits and `_` (a template variable).
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"), length(max = 64))]
    pub name: String,
    /// What the step does (shown in the workflow's status).
    pub description: Option<String>,
    /// A free grouping label shown with the step (the original engine's `layer`).
    pub layer: Option<String>,
    /// The registry tool the step calls (exclusive with `approval`).
    pub tool: Option<String>,
    /// The tool's arguments: name -> value; string leaves are minijinja templates over the
    /// inputs, `workflow` and earlier steps' results (a leaf that is one `{{ expr }}` keeps
    /// its JSON type). `dry_run` is set for every tool that takes it: the workflow's
    /// dry_run, or true when the step asks for a dry run of its own (a preview); a dry-run
    /// workflow never runs a tool for real.
    #[serde(default)]
    pub args: IndexMap<String, Value>,
    /// An approval gate (exclusive with `tool`): the workflow waits in `awaiting_approval`
    /// until it is approved (or cancelled). In a dry-run workflow the gate is skipped.
    pub approval: Option<ApprovalSpec>,
    /// Run the step only when this minijinja expression (over the inputs, `workflow` and
    /// earlier steps) holds; otherwise it is skipped and its result is null.
    pub when: Option<String>,
    /// Retry a failing tool step.
    pub retry: Option<RetrySpec>,
    /// Time one attempt of a tool step may take (e.g. `30s`, `2m`); default 60s. On an
    /// approval gate: how long it waits for approval before the workflow fails (default: no
    /// limit).
    pub timeout: Option<String>,
}

/// An approval gate.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApprovalSpec {
    /// What is being approved (a minijinja template over the inputs, `workflow` and earlier
    /// steps), shown while the workflow waits.
    pub message: Option<String>,
}

/// Retries of a failing step: `attempts` in all, waiting `backoff` before the second,
/// doubling up to `maxBackoff`. An argument error or a refused request is not retried.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetrySpec {
    /// Attempts in all, the first included (1-10).
    #[schemars(range(min = 1, max = 10))]
    pub attempts: u32,
    /// Wait before the second attempt (e.g. `2s`); doubled before each further one.
    #[serde(default = "default_backoff")]
    pub backoff: String,
    /// Longest wait between attempts.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: String,
}

fn default_backoff() -> String {
    "1s".into()
}

fn default_max_backoff() -> String {
    "1m".into()
}
