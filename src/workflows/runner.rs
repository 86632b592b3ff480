//! The durable runner: claims workflows from each enabled `workflows` binding's store and
//! runs their steps in order through the same invoke path as MCP calls.
//!
//! Every transition is persisted (fenced by the claim) before the next step starts. A
//! claim is a lease renewed while the workflow runs; when a replica dies, another (or the
//! same one restarted) claims the workflow after the lease expires (SQLite, a single
//! replica: at start) and resumes from the last finished step. A step that was running when
//! the process died is run again only if its tool is read-only or idempotent; otherwise the
//! workflow fails with the reason, so a non-idempotent step never runs twice.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::store::{self as db, Fenced, status};
use super::{Action, Workflow, WorkflowStep};
use crate::backends::Client;
use crate::backends::sql::{Dialect, Store};
use crate::backends::workflows::WorkflowsBackend;
use crate::engine::{Active, invoke, template};

/// Where the runner gets the registry in force (swapped on reload).
pub type Source = Arc<dyn Fn() -> Arc<Active> + Send + Sync>;

static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Wake the runner now (work was queued or approved here).
pub fn wake() {
    WAKE.notify_one();
}

/// This process's identity in claims: host, pid and a random suffix.
pub fn me() -> &'static str {
    static ME: LazyLock<String> = LazyLock::new(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        format!("{host}-{}-{}", std::process::id(), &super::new_id()[3..])
    });
    &ME
}

/// Start the runner; it stops with `cancel`.
pub fn spawn(source: Source, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let running: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut prepared: HashSet<String> = HashSet::new();
        let mut poll = Duration::from_secs(1);
        loop {
            let active = source();
            for (name, client) in &active.backends.clients {
                let Client::Workflows(wf) = client.as_ref() else { continue };
                poll = poll.min(wf.poll);
                if let Err(e) = tick(&source, name, wf, &running, &mut prepared).await {
                    tracing::warn!(backend = %name, "workflow runner: {e}");
                }
            }
            drop(active);
            tokio::select! {
                _ = WAKE.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = cancel.cancelled() => return,
            }
        }
    })
}

/// One pass over one binding: prepare its store once, expire approvals, claim and start
/// workflows up to the concurrency.
async fn tick(
    source: &Source,
    name: &str,
    wf: &WorkflowsBackend,
    running: &Arc<Mutex<HashSet<String>>>,
    prepared: &mut HashSet<String>,
) -> Result<(), String> {
    let store = &wf.store().await.map_err(|e| e.to_string())?;
    let key = format!("{name}|{}", wf.spec.store);
    if prepared.insert(key) && store.dialect == Dialect::Sqlite {
        // A single replica: any lease in the file is a dead process's.
        let n = db::release_all(store).await.map_err(|e| e.to_string())?;
        if n > 0 {
            tracing::info!(backend = %name, workflows = n, "resuming workflows left unfinished by a previous run");
        }
    }
    db::expire_approvals(store).await.map_err(|e| e.to_string())?;
    let lease_ms = wf.lease.as_millis() as i64;
    loop {
        if running.lock().expect("lock").len() >= wf.spec.concurrency as usize {
            return Ok(());
        }
        let Some(id) = db::claim(store, me(), db::now_ms() + lease_ms).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        running.lock().expect("lock").insert(id.clone());
        let (source, binding, running) = (source.clone(), name.to_string(), running.clone());
        tokio::spawn(async move {
            if let Err(e) = run(&source, &binding, &id).await {
                tracing::warn!(workflow = %id, "workflow run stopped: {e}");
            }
            running.lock().expect("lock").remove(&id);
            wake();
        });
    }
}

/// The binding's client in the registry in force now.
fn binding(active: &Active, name: &str) -> Option<Arc<Client>> {
    active.backends.clients.get(name).filter(|c| matches!(c.as_ref(), Client::Workflows(_))).cloned()
}

/// Run one claimed workflow until it finishes, waits for approval, or the claim is lost.
pub async fn run(source: &Source, binding_name: &str, id: &str) -> Result<(), String> {
    let active = source();
    let client = binding(&active, binding_name).ok_or("the workflows binding is gone")?;
    let Client::Workflows(wf) = client.as_ref() else { unreachable!("filtered") };
    let store = &wf.store().await.map_err(|e| e.to_string())?;
    let lease_ms = wf.lease.as_millis() as i64;
    let fence = Fenced { store, id, me: me(), lease_ms };
    if !db::start_claimed(store, id, me()).await.map_err(|e| e.to_string())? {
        return Ok(());
    }
    // Renew the lease while the workflow runs; a lost claim (another replica, a cancel)
    // stops the run where it is.
    let lost = CancellationToken::new();
    let renewer = {
        let (lost, store, id) = (lost.clone(), store.clone(), id.to_string());
        let every = Duration::from_millis((lease_ms / 3).max(50) as u64);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let f = Fenced { store: &store, id: &id, me: me(), lease_ms };
                match f.renew().await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(workflow = %id, "lease renewal failed: {e}"),
                }
            }
        })
    };
    let result = run_steps(source, &active, &fence, &lost).await;
    renewer.abort();
    result
}

/// Why a step did not produce a result.
struct Failure {
    message: String,
    retry: bool,
}

async fn run_steps(
    source: &Source,
    active: &Active,
    fence: &Fenced<'_>,
    lost: &CancellationToken,
) -> Result<(), String> {
    let store = fence.store;
    let id = fence.id;
    let row = db::get(store, id).await.map_err(|e| e.to_string())?.ok_or("the workflow row is gone")?;
    let Some(def) = active.registry.workflows.get(&row.name).cloned() else {
        fail_workflow(fence, None, format!("workflow `{}` is no longer defined", row.name)).await?;
        return Ok(());
    };
    let args = match invoke::prepare_args(&def.inputs, &row.arguments) {
        Ok(a) => a,
        Err(e) => {
            fail_workflow(fence, None, format!("the stored arguments no longer fit the workflow: {e}")).await?;
            return Ok(());
        }
    };
    let mut scope: BTreeMap<String, minijinja::Value> =
        args.iter().map(|(k, v)| (k.clone(), template::to_value(v))).collect();
    scope.insert(super::WORKFLOW_VAR.into(), template::to_value(&def.facts(id, row.dry_run, &row.context)));

    for step in &def.steps {
        let Some(stored) = row.steps.iter().find(|s| s.order == step.order as i64 && s.name == step.name) else {
            fail_workflow(
                fence,
                None,
                format!("step {} `{}` is not in the stored workflow (the definition changed)", step.order, step.name),
            )
            .await?;
            return Ok(());
        };
        match stored.status.as_str() {
            status::COMPLETED => {
                scope.insert(step.name.clone(), template::to_value(&stored.result.clone().unwrap_or(Value::Null)));
                continue;
            }
            status::SKIPPED => {
                scope.insert(step.name.clone(), minijinja::Value::from(()));
                continue;
            }
            status::RUNNING => {
                // The process stopped while this step ran: run it again only if that is safe.
                let tool = step.tool().unwrap_or_default();
                let safe = source().registry.tools.get(tool).is_some_and(|t| t.hints.read_only || t.hints.idempotent);
                if !safe {
                    let why = format!(
                        "step `{}` was running when the server stopped; tool `{tool}` is neither read-only nor idempotent, so it was not run again (check its effect by hand)",
                        step.name
                    );
                    fail_workflow(fence, Some(step.order), why).await?;
                    return Ok(());
                }
                tracing::info!(workflow = %id, step = %step.name, "re-running an interrupted step (its tool is read-only or idempotent)");
            }
            status::PENDING => {}
            other => {
                fail_workflow(fence, None, format!("step `{}` is {other}", step.name)).await?;
                return Ok(());
            }
        }
        let ctx = minijinja::Value::from(scope.clone());
        if let Some((src, expr)) = &step.when {
            let holds = match expr.eval(&ctx) {
                Ok(v) => v.is_true(),
                Err(e) => {
                    fail_workflow(
                        fence,
                        Some(step.order),
                        format!("condition `{src}` failed: {}", invoke::template_error(&e)),
                    )
                    .await?;
                    return Ok(());
                }
            };
            if !holds {
                let r = json!({"skipped": format!("condition `{src}` is false")});
                if !finish_step(fence, step.order, status::SKIPPED, Some(&r), None).await? {
                    return Ok(());
                }
                scope.insert(step.name.clone(), minijinja::Value::from(()));
                continue;
            }
        }
        match &step.action {
            Action::Approval { message } => {
                let text = match message {
                    Some(t) => {
                        def.templates.render(template::Mode::Request, t, &ctx).map_err(|e| invoke::template_error(&e))
                    }
                    None => Ok(format!("approve step `{}` of workflow `{}`", step.name, def.name)),
                };
                let text = match text {
                    Ok(t) => t,
                    Err(e) => {
                        fail_workflow(fence, Some(step.order), format!("approval message: {e}")).await?;
                        return Ok(());
                    }
                };
                if row.dry_run {
                    let r = json!({"approved": false, "skipped": "dry run: nothing is changed, so nothing to approve", "message": text});
                    if !finish_step(fence, step.order, status::SKIPPED, Some(&r), None).await? {
                        return Ok(());
                    }
                    scope.insert(step.name.clone(), minijinja::Value::from(()));
                    continue;
                }
                await_approval(fence, step, &text).await?;
                return Ok(());
            }
            Action::Tool { tool, args, takes_dry_run } => {
                let mut attempts = stored.attempts;
                let value = loop {
                    attempts += 1;
                    let t = db::now_text();
                    let started = fence
                        .write(vec![(
                            "UPDATE chm_workflow_steps SET status = 'running', attempts = $1, started_at = COALESCE(started_at, $2), error = NULL WHERE workflow_id = $3 AND step_order = $4",
                            vec![json!(attempts), json!(t), json!(id), json!(step.order)],
                        )])
                        .await
                        .map_err(|e| e.to_string())?;
                    if !started {
                        return Ok(());
                    }
                    let outcome =
                        call_tool(source, &def, step, tool, args, takes_dry_run.then_some(row.dry_run), &ctx, lost)
                            .await;
                    if lost.is_cancelled() {
                        return Ok(()); // the claim is gone: whoever holds the workflow now decides
                    }
                    // A write is retried only when repeating it changes nothing (validate
                    // refuses `retry` otherwise; the tool may have changed since by a reload).
                    let repeatable = || {
                        source()
                            .registry
                            .tools
                            .get(tool.as_str())
                            .is_some_and(|t| t.hints.read_only || t.hints.idempotent)
                    };
                    match outcome {
                        Ok(v) => break v,
                        Err(f) if f.retry && attempts < step.attempts as i64 && repeatable() => {
                            let wait = backoff(step, attempts);
                            tracing::info!(workflow = %id, step = %step.name, attempt = attempts, "step failed, retrying in {wait:?}: {}", f.message);
                            let ok = fence
                                .write(vec![(
                                    "UPDATE chm_workflow_steps SET status = 'pending', error = $1 WHERE workflow_id = $2 AND step_order = $3",
                                    vec![json!(f.message), json!(id), json!(step.order)],
                                )])
                                .await
                                .map_err(|e| e.to_string())?;
                            if !ok {
                                return Ok(());
                            }
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => {}
                                _ = lost.cancelled() => return Ok(()),
                            }
                        }
                        Err(f) => {
                            let msg = if attempts > 1 {
                                format!("{} (after {attempts} attempts)", f.message)
                            } else {
                                f.message
                            };
                            fail_workflow(fence, Some(step.order), msg).await?;
                            return Ok(());
                        }
                    }
                };
                if !finish_step(fence, step.order, status::COMPLETED, Some(&value), None).await? {
                    return Ok(());
                }
                scope.insert(step.name.clone(), template::to_value(&value));
            }
        }
    }
    let t = db::now_text();
    fence
        .write(vec![(
            "UPDATE chm_workflows SET status = 'completed', completed_at = $1, owner = NULL, lease_until = NULL WHERE id = $2",
            vec![json!(t), json!(id)],
        )])
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(workflow = %id, name = %def.name, "workflow completed");
    Ok(())
}

/// Render a tool step's arguments, set `dry_run` (`Some(workflow's)` when the tool takes it)
/// and call the tool (the registry in force now) with the step's timeout.
#[allow(clippy::too_many_arguments)]
async fn call_tool(
    source: &Source,
    def: &Workflow,
    step: &WorkflowStep,
    tool: &str,
    args: &template::Tree,
    dry_run: Option<bool>,
    ctx: &minijinja::Value,
    lost: &CancellationToken,
) -> Result<Value, Failure> {
    let rendered = def.templates.render_tree(template::Mode::Request, args, ctx).map_err(|e| Failure {
        message: format!("cannot render the arguments: {}", invoke::template_error(&e)),
        retry: false,
    })?;
    let mut args: Map<String, Value> = rendered.as_object().cloned().unwrap_or_default();
    if let Some(workflow_dry_run) = dry_run {
        // The workflow's dry_run reaches every tool that takes it; a step may ask for a dry
        // run of its own (a preview), never for a real run inside a dry-run workflow.
        let own = args.get(super::DRY_RUN).and_then(Value::as_bool).unwrap_or(false);
        args.insert(super::DRY_RUN.into(), Value::Bool(workflow_dry_run || own));
    }
    let active = source();
    let Some(t) = active.tools.get(tool).cloned() else {
        let why = active.why_hidden("Tool", tool).unwrap_or("unknown tool");
        return Err(Failure {
            message: format!("tool `{tool}` is not exposed in mode `{}`: {why}", active.mode.name),
            retry: false,
        });
    };
    let call = tokio::time::timeout(step.timeout, invoke::run(&active, &t.proc, &args, None, lost));
    let workflow = ctx
        .get_attr(super::WORKFLOW_VAR)
        .and_then(|w| w.get_attr("id"))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_none())
        .map(|v| v.to_string());
    let judge = |r: &Result<Result<invoke::Outcome, invoke::Error>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(o)) if o.error.is_none() => (crate::audit::Outcome::Ok, None),
        Ok(Ok(o)) => (crate::audit::Outcome::Error, o.error.clone()),
        Ok(Err(e)) => (crate::audit::Outcome::Error, Some(e.to_string())),
        Err(_) => (crate::audit::Outcome::Error, Some(format!("no answer within {:?}", step.timeout))),
    };
    let id = workflow.unwrap_or_else(|| def.name.clone());
    match crate::audit::runner_call(&active, &id, tool, &args, call, judge).await {
        Err(_) => {
            Err(Failure { message: format!("tool `{tool}` gave no answer within {:?}", step.timeout), retry: true })
        }
        Ok(Ok(outcome)) => match outcome.error {
            None => Ok(outcome.structured),
            Some(e) => Err(Failure { message: format!("tool `{tool}`: {e}"), retry: false }),
        },
        Ok(Err(e)) => {
            use crate::backends::ErrorKind as K;
            let retry = match &e {
                invoke::Error::Step { kind, .. } => {
                    !matches!(kind, K::Refused | K::InvalidRequest | K::NotFound | K::Forbidden)
                }
                _ => false,
            };
            Err(Failure { message: format!("tool `{tool}`: {e}"), retry })
        }
    }
}

/// The wait before the attempt after `attempt` (doubling from `backoff`, capped).
fn backoff(step: &WorkflowStep, attempt: i64) -> Duration {
    let factor = 2u32.saturating_pow((attempt - 1).clamp(0, 16) as u32);
    step.backoff.saturating_mul(factor).min(step.max_backoff)
}

/// Record a step's end; false when the claim is gone.
async fn finish_step(
    fence: &Fenced<'_>,
    order: usize,
    st: &str,
    result: Option<&Value>,
    error: Option<&str>,
) -> Result<bool, String> {
    let t = db::now_text();
    fence
        .write(vec![(
            "UPDATE chm_workflow_steps SET status = $1, completed_at = $2, started_at = COALESCE(started_at, $2), result = $3, error = $4 WHERE workflow_id = $5 AND step_order = $6",
            vec![json!(st), json!(t), result.map(|r| json!(r.to_string())).unwrap_or(Value::Null), json!(error), json!(fence.id), json!(order)],
        )])
        .await
        .map_err(|e| e.to_string())
}

/// Fail the workflow (and the step at `order`, if given) with a reason; the claim ends.
async fn fail_workflow(fence: &Fenced<'_>, order: Option<usize>, reason: String) -> Result<(), String> {
    tracing::warn!(workflow = %fence.id, "workflow failed: {reason}");
    let t = db::now_text();
    let mut statements = Vec::new();
    if let Some(order) = order {
        statements.push((
            "UPDATE chm_workflow_steps SET status = 'failed', completed_at = $1, started_at = COALESCE(started_at, $1), error = $2 WHERE workflow_id = $3 AND step_order = $4",
            vec![json!(t), json!(reason), json!(fence.id), json!(order)],
        ));
    }
    statements.push((
        "UPDATE chm_workflows SET status = 'failed', completed_at = $1, error = $2, owner = NULL, lease_until = NULL WHERE id = $3",
        vec![json!(t), json!(reason), json!(fence.id)],
    ));
    fence.write(statements).await.map_err(|e| e.to_string()).map(|_| ())
}

/// Park the workflow at a gate: the step waits, the claim is released.
async fn await_approval(fence: &Fenced<'_>, step: &WorkflowStep, message: &str) -> Result<(), String> {
    let t = db::now_text();
    let deadline = step.approval_timeout.map(|d| json!(db::now_ms() + d.as_millis() as i64)).unwrap_or(Value::Null);
    let result = json!({"message": message}).to_string();
    fence
        .write(vec![
            (
                "UPDATE chm_workflow_steps SET status = 'awaiting_approval', started_at = $1, result = $2 WHERE workflow_id = $3 AND step_order = $4",
                vec![json!(t), json!(result), json!(fence.id), json!(step.order)],
            ),
            (
                "UPDATE chm_workflows SET status = 'awaiting_approval', owner = NULL, lease_until = NULL, approval_deadline = $1 WHERE id = $2",
                vec![deadline, json!(fence.id)],
            ),
        ])
        .await
        .map_err(|e| e.to_string())
        .map(|_| ())
}

/// Run the runner over a fixed store (tests): the same loop as `spawn`.
pub async fn store_of(active: &Active, binding: &str) -> Option<Store> {
    let c = active.backends.clients.get(binding)?;
    let Client::Workflows(wf) = c.as_ref() else { return None };
    wf.store().await.ok()
}
