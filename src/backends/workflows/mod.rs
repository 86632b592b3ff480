//! The `workflows` kind: YAML tools start, read, approve and cancel durable workflows
//! (`kind: Workflow`, run by `crate::workflows::runner`) whose state lives in an sql store.
//!
//! The binding names the store binding (`store: coordination-store`). A call is one
//! operation: `start` (by workflow name, or by trigger match on issue type, resource kind and
//! deployment method; with arguments and dry_run, true unless said otherwise), `get` (with
//! ordered steps), `list` (filters, limit/offset, total), `approve`, `cancel`. Starting,
//! approving and cancelling write to the server's own store ([`Effect::Store`]); the cluster
//! writes happen in the workflow's tool steps, which are themselves gated (dry run,
//! approval). `start` and `approve` may `wait` a bounded time for the workflow to come to
//! rest (finished, failed, cancelled, or parked at a gate) and then answer it with its steps,
//! so a dry run's plan comes back in the same call. The client is linked to the registry and the store client when a mode is
//! activated ([`crate::workflows::link`]).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use super::{Client, Effect, Error, ErrorKind, Kind, TextContext, lenient};
use crate::backends::sql::Store;
use crate::engine::Registry;
use crate::units::parse_duration;
use crate::workflows::store::{self as db, Filter};

/// The kind.
pub struct Workflows;

/// A workflows binding.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkflowsBackendSpec {
    /// The sql binding whose store holds the workflow state (it must be enabled too).
    pub store: String,
    /// Workflows this server runs at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: u32,
    /// How often the runner looks for work another replica queued (it is woken at once for
    /// work queued here).
    #[serde(default = "default_poll")]
    pub poll: String,
    /// How long a claim holds without renewal; a replica that dies mid-workflow leaves it
    /// for another after this long (SQLite, single replica: reclaimed at start).
    #[serde(default = "default_lease")]
    pub lease: String,
}

fn default_concurrency() -> u32 {
    4
}
fn default_poll() -> String {
    "1s".into()
}
fn default_lease() -> String {
    "30s".into()
}

/// The operation of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Start a workflow (by `workflow` name or by trigger match).
    Start,
    /// One workflow with its ordered steps (`id`).
    Get,
    /// Workflows, newest first (filters, `limit`, `offset`), with the total.
    List,
    /// Approve the gate a workflow waits at (`id`, `approvedBy`, `comment`).
    Approve,
    /// Cancel a workflow that has not finished (`id`, `reason`).
    Cancel,
}

/// A workflows call. String leaves are templates (typed data: they reach the store only as
/// bind parameters).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkflowsCallSpec {
    /// The binding.
    pub backend: String,
    /// The operation.
    pub op: Op,
    /// get, approve, cancel: the workflow id (`wf-...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// start: the workflow's name (else matched by trigger); list: filter by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// start: the issue type to match (e.g. `OOMKilled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_type: Option<String>,
    /// start: the affected resource's kind (e.g. `Pod`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_kind: Option<String>,
    /// start: the affected resource's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// start: how the resource is deployed (argocd, helm, operator, manual).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_method: Option<String>,
    /// start: the incident the workflow remediates; list: filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// start: the resource's namespace; list: filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// start: the workflow's inputs (an object; string leaves are templates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// start: run every tool step with `dry_run: true` and skip approval gates. True unless
    /// this renders to false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<String>,
    /// list: filter by status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// list: page size (default 20, at most 200).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// list: rows to skip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// approve: who approves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// approve: a note kept with the approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// cancel: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// start, approve: wait up to this long (seconds, or a duration like `10s`; at most the
    /// step's timeout) for the workflow to finish, fail or stop at an approval gate, and answer
    /// it with its steps. Unset or 0: answer at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
}

/// A rendered call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowsRequest {
    op: Op,
    #[serde(default, deserialize_with = "lenient::text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    workflow: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    issue_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    resource_kind: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    resource_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    deployment_method: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    incident_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    namespace: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
    #[serde(default, deserialize_with = "lenient::text")]
    dry_run: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    limit: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    approved_by: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    comment: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    reason: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    wait: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    backend: Option<String>,
}

/// What a linked client reaches: the registry (workflow definitions), the store's client,
/// and the tools the mode exposes.
pub struct Link {
    pub registry: Arc<Registry>,
    pub store: Option<Arc<Client>>,
    pub exposed_tools: HashSet<String>,
    /// Why each hidden tool of the registry is hidden (e.g. the read-only switch).
    pub hidden_tools: std::collections::HashMap<String, String>,
    pub mode: String,
}

/// A workflows binding, linked to its registry and store at activation.
pub struct WorkflowsBackend {
    pub name: String,
    pub spec: WorkflowsBackendSpec,
    pub poll: Duration,
    pub lease: Duration,
    /// Set (and replaced) whenever the mode's exposure is decided.
    pub link: RwLock<Option<Arc<Link>>>,
    ready: OnceCell<()>,
}

impl WorkflowsBackend {
    fn err(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::new(&self.name, kind, message)
    }

    /// The link, or why there is none.
    pub fn link(&self) -> Result<Arc<Link>, Error> {
        self.link
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| self.err(ErrorKind::Unavailable, "the workflows backend is not linked to a mode"))
    }

    /// The connected store with the runner's tables migrated (a cheap handle on the pool).
    pub async fn store(&self) -> Result<Store, Error> {
        let link = self.link()?;
        let store_name = &self.spec.store;
        let Some(client) = &link.store else {
            return Err(self.err(
                ErrorKind::Unavailable,
                format!("store binding `{store_name}` is not enabled in mode `{}`", link.mode),
            ));
        };
        let Client::Sql(sql) = client.as_ref() else {
            return Err(self.err(ErrorKind::Unavailable, format!("store binding `{store_name}` is not an sql backend")));
        };
        let store =
            sql.store().await.map_err(|e| self.err(ErrorKind::Unavailable, format!("store `{store_name}`: {e}")))?;
        self.ready
            .get_or_try_init(|| async { db::migrate(store).await })
            .await
            .map_err(|e| self.err(ErrorKind::Unavailable, format!("store `{store_name}`: {e}")))?;
        Ok(store.clone())
    }

    /// Workflows whose every tool the mode exposes, and why each other one is inactive.
    pub fn active_workflows(&self) -> Result<(Vec<Arc<crate::workflows::Workflow>>, Vec<String>), Error> {
        let link = self.link()?;
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for w in link.registry.workflows.values() {
            let missing: Vec<&str> =
                w.steps.iter().filter_map(|s| s.tool()).filter(|t| !link.exposed_tools.contains(*t)).collect();
            if missing.is_empty() {
                on.push(w.clone());
            } else {
                let why: Vec<&str> =
                    missing.iter().filter_map(|t| link.hidden_tools.get(*t).map(String::as_str)).collect();
                off.push(format!(
                    "{} (needs tools {} which mode `{}` does not expose{})",
                    w.name,
                    missing.join(", "),
                    link.mode,
                    why.first().map(|w| format!(": {w}")).unwrap_or_default()
                ));
            }
        }
        Ok((on, off))
    }

    async fn call(&self, r: WorkflowsRequest, timeout: Duration) -> Result<Value, Error> {
        let store = &self.store().await?;
        let db_err = |e: crate::backends::sql::StoreError| self.err(ErrorKind::Upstream, e.to_string());
        // Leave the answer time to travel within the call's own timeout.
        let wait = self.wait(&r)?.min(timeout.saturating_sub(Duration::from_millis(500)));
        match r.op {
            Op::Start => {
                let started = self.start(store, r).await?;
                self.settle(store, started, wait).await
            }
            Op::Get => {
                let id = self.need(&r.id, "id")?;
                match db::get(store, id).await.map_err(db_err)? {
                    Some(w) => Ok(w.to_json(true)),
                    None => Err(self.err(ErrorKind::NotFound, format!("workflow `{id}` not found"))),
                }
            }
            Op::List => {
                let filter =
                    Filter { status: r.status, namespace: r.namespace, incident_id: r.incident_id, name: r.workflow };
                let limit = r.limit.unwrap_or(20).clamp(1, 200);
                let offset = r.offset.unwrap_or(0).max(0);
                let (rows, total) = db::list(store, &filter, limit, offset).await.map_err(db_err)?;
                let workflows: Vec<Value> = rows.iter().map(|w| w.to_json(false)).collect();
                Ok(json!({"workflows": workflows, "total": total, "limit": limit, "offset": offset}))
            }
            Op::Approve => {
                let id = self.need(&r.id, "id")?;
                let by = r.approved_by.unwrap_or_else(|| "unknown".into());
                let result =
                    json!({"approved": true, "approved_by": by, "approved_at": db::now_text(), "comment": r.comment});
                match db::approve(store, id, &result).await.map_err(db_err)? {
                    Some(order) => {
                        crate::workflows::runner::wake();
                        let approved = json!({"id": id, "workflow_id": id, "status": db::status::IN_PROGRESS, "approved_step": order, "approved_by": by});
                        self.settle(store, approved, wait).await
                    }
                    None => Err(self.not_waiting(store, id).await),
                }
            }
            Op::Cancel => {
                let id = self.need(&r.id, "id")?;
                let reason = r.reason.unwrap_or_else(|| "cancelled".into());
                match db::cancel(store, id, &reason).await.map_err(db_err)? {
                    Some(before) => Ok(
                        json!({"id": id, "workflow_id": id, "status": db::status::CANCELLED, "previous_status": before}),
                    ),
                    None => Err(self.not_waiting(store, id).await),
                }
            }
        }
    }

    /// The `wait` of a call: seconds or a duration, at most a minute.
    fn wait(&self, r: &WorkflowsRequest) -> Result<Duration, Error> {
        let Some(text) = r.wait.as_deref() else { return Ok(Duration::ZERO) };
        let secs =
            text.trim().parse::<f64>().ok().or_else(|| parse_duration(text)).filter(|s| s.is_finite() && *s >= 0.0);
        match secs {
            Some(s) => Ok(Duration::from_secs_f64(s.min(60.0))),
            None => {
                Err(self
                    .err(ErrorKind::InvalidRequest, format!("`wait` is seconds or a duration like 10s, not `{text}`")))
            }
        }
    }

    /// Wait up to `wait` for the workflow in `answer` to come to rest (not pending or in
    /// progress), then answer its stored state with its steps, the fields of `answer` it
    /// lacks added. Still running when the time is up: its state then, as stored.
    async fn settle(&self, store: &Store, answer: Value, wait: Duration) -> Result<Value, Error> {
        if wait.is_zero() {
            return Ok(answer);
        }
        let Some(id) = answer["workflow_id"].as_str().map(str::to_owned) else { return Ok(answer) };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let stored = db::get(store, &id).await.map_err(|e| self.err(ErrorKind::Upstream, e.to_string()))?;
            let Some(w) = stored else {
                return Err(self.err(ErrorKind::NotFound, format!("workflow `{id}` not found")));
            };
            let moving = [db::status::PENDING, db::status::IN_PROGRESS].contains(&w.status.as_str());
            if !moving || tokio::time::Instant::now() >= deadline {
                let mut out = w.to_json(true);
                if let (Value::Object(out), Value::Object(given)) = (&mut out, answer) {
                    for (k, v) in given {
                        out.entry(k).or_insert(v);
                    }
                }
                return Ok(out);
            }
            tokio::time::sleep(Duration::from_millis(100).min(deadline - tokio::time::Instant::now())).await;
        }
    }

    fn need<'a>(&self, v: &'a Option<String>, field: &str) -> Result<&'a str, Error> {
        v.as_deref()
            .ok_or_else(|| self.err(ErrorKind::InvalidRequest, format!("`{field}` is required for this operation")))
    }

    /// The error for an approve or cancel that found the workflow in another state.
    async fn not_waiting(&self, store: &Store, id: &str) -> Error {
        match db::get(store, id).await {
            Ok(Some(w)) => self.err(
                ErrorKind::InvalidRequest,
                format!("workflow `{id}` is {}, so there is nothing to approve or cancel", w.status),
            ),
            Ok(None) => self.err(ErrorKind::NotFound, format!("workflow `{id}` not found")),
            Err(e) => self.err(ErrorKind::Upstream, e.to_string()),
        }
    }

    async fn start(&self, store: &Store, r: WorkflowsRequest) -> Result<Value, Error> {
        let (active, inactive) = self.active_workflows()?;
        let method = r.deployment_method.clone().unwrap_or_default();
        let def = match &r.workflow {
            Some(name) => match active.iter().find(|w| &w.name == name) {
                Some(w) => w.clone(),
                None => {
                    let why = inactive.iter().find(|s| s.starts_with(&format!("{name} ")));
                    let message = match why {
                        Some(w) => format!("workflow {w}"),
                        None => {
                            let names: Vec<&str> = active.iter().map(|w| w.name.as_str()).collect();
                            format!("unknown workflow `{name}` (active workflows: {})", names.join(", "))
                        }
                    };
                    return Err(self.err(ErrorKind::NotFound, message));
                }
            },
            None => {
                let issue = crate::workflows::Issue {
                    issue_type: r.issue_type.as_deref().unwrap_or_default(),
                    resource_kind: r.resource_kind.as_deref().unwrap_or_default(),
                    deployment_method: &method,
                };
                match crate::workflows::best_match(active.iter().map(|w| &**w), &issue) {
                    Some(w) => active.iter().find(|a| a.name == w.name).cloned().expect("matched from the list"),
                    None => {
                        return Err(self.err(
                            ErrorKind::NotFound,
                            format!(
                                "no workflow matches issue type `{}`, resource kind `{}`, deployment method `{}`; triggers: {}",
                                issue.issue_type,
                                issue.resource_kind,
                                issue.deployment_method,
                                triggers(&active)
                            ),
                        ));
                    }
                }
            }
        };
        let args = match &r.arguments {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(self.err(ErrorKind::InvalidRequest, format!("`arguments` must be an object, got {other}")));
            }
        };
        let args = crate::engine::invoke::prepare_args(&def.inputs, &args)
            .map_err(|e| self.err(ErrorKind::InvalidRequest, format!("workflow `{}`: {e}", def.name)))?;
        let dry_run = !matches!(r.dry_run.as_deref(), Some("false" | "False" | "0"));
        let mut context = Map::new();
        for (k, v) in [
            ("incident_id", &r.incident_id),
            ("namespace", &r.namespace),
            ("resource_kind", &r.resource_kind),
            ("resource_name", &r.resource_name),
            ("issue_type", &r.issue_type),
            ("deployment_method", &r.deployment_method),
        ] {
            context.insert(k.into(), v.clone().map(Value::String).unwrap_or(Value::Null));
        }
        let steps = def
            .steps
            .iter()
            .map(|s| db::NewStep {
                order: s.order,
                name: s.name.clone(),
                kind: s.kind().into(),
                tool: s.tool().map(str::to_owned),
                description: s.description.clone(),
                layer: s.layer.clone(),
            })
            .collect();
        let mut new = db::NewWorkflow {
            id: crate::workflows::new_id(),
            name: def.name.clone(),
            dry_run,
            context,
            arguments: args,
            steps,
        };
        // A fresh id colliding with a stored one is rare; try a few.
        let mut tries = 0;
        loop {
            match db::insert(store, &new).await {
                Ok(()) => break,
                Err(e) if tries < 3 => {
                    tracing::debug!(error = %e, "workflow insert failed; retrying with a new id");
                    tries += 1;
                    new.id = crate::workflows::new_id();
                }
                Err(e) => return Err(self.err(ErrorKind::Upstream, e.to_string())),
            }
        }
        crate::workflows::runner::wake();
        let mut answer = new.context;
        answer.extend([
            ("workflow_id".into(), json!(new.id)),
            ("id".into(), json!(new.id)),
            ("workflow".into(), json!(def.name)),
            ("status".into(), json!(db::status::PENDING)),
            ("dry_run".into(), json!(dry_run)),
            ("estimated_duration".into(), json!(def.estimated_duration)),
            (
                "steps".into(),
                def.steps
                    .iter()
                    .map(|s| json!({"order": s.order, "name": s.name, "description": s.description, "layer": s.layer}))
                    .collect(),
            ),
        ]);
        Ok(Value::Object(answer))
    }
}

/// The active workflows' triggers, for a no-match message.
fn triggers(active: &[Arc<crate::workflows::Workflow>]) -> String {
    let list: Vec<String> = active
        .iter()
        .filter_map(|w| {
            let t = w.trigger.as_ref()?;
            Some(format!(
                "{} (issue types {:?}, kinds {:?}, methods {:?})",
                w.name, t.issue_types, t.resource_kinds, t.deployment_methods
            ))
        })
        .collect();
    if list.is_empty() { "none".into() } else { list.join("; ") }
}

impl Kind for Workflows {
    const NAME: &'static str = "workflows";
    type Binding = WorkflowsBackendSpec;
    type Call = WorkflowsCallSpec;
    type Request = WorkflowsRequest;
    type Client = WorkflowsBackend;

    fn binding(call: &WorkflowsCallSpec) -> &str {
        &call.backend
    }

    fn effect(call: &WorkflowsCallSpec) -> Effect {
        match call.op {
            Op::Get | Op::List => Effect::Read,
            Op::Start | Op::Approve | Op::Cancel => Effect::Store,
        }
    }

    fn action(call: &WorkflowsCallSpec) -> (&'static str, String) {
        let op = serde_json::to_value(call.op).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        ("/op", format!("workflows `{op}`"))
    }

    fn field(pointer: &str) -> Option<TextContext> {
        match pointer {
            "/backend" | "/op" => None,
            _ => Some(TextContext::Data),
        }
    }

    fn connect(name: &str, binding: &WorkflowsBackendSpec) -> Result<WorkflowsBackend, String> {
        let dur = |field: &str, text: &str| {
            parse_duration(text)
                .filter(|s| *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("invalid {field} `{text}`"))
        };
        Ok(WorkflowsBackend {
            name: name.to_string(),
            spec: binding.clone(),
            poll: dur("poll", &binding.poll)?,
            lease: dur("lease", &binding.lease)?,
            link: RwLock::new(None),
            ready: OnceCell::new(),
        })
    }

    async fn call(
        client: &WorkflowsBackend,
        request: WorkflowsRequest,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        let timeout = timeout.unwrap_or(Duration::from_secs(30));
        match tokio::time::timeout(timeout, client.call(request, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(client.err(ErrorKind::Timeout, format!("no answer within {timeout:?}"))),
        }
    }

    fn describe(client: &WorkflowsBackend, request: &WorkflowsRequest) -> Value {
        json!({"store": client.spec.store, "op": request.op, "id": request.id, "workflow": request.workflow,
               "issue_type": request.issue_type, "resource_kind": request.resource_kind,
               "deployment_method": request.deployment_method, "arguments": request.arguments, "dry_run": request.dry_run,
               "wait": request.wait})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(op: &str) -> WorkflowsCallSpec {
        serde_json::from_value(json!({"backend": "wf", "op": op})).unwrap()
    }

    #[test]
    fn starting_approving_and_cancelling_are_store_writes_that_resilience_never_retries() {
        for op in ["start", "approve", "cancel"] {
            assert_eq!(Workflows::effect(&call(op)), Effect::Store, "{op}");
        }
        for op in ["get", "list"] {
            assert_eq!(Workflows::effect(&call(op)), Effect::Read, "{op}");
        }
    }
}
