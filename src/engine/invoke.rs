//! The executor: check arguments, run steps (independent ones concurrently, each with its
//! timeout), extract, and shape the structured and text output.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Active;
use super::json_view;
use super::registry::{Procedure, Step};
use super::template;

/// Template variables of a call.
type Scope = BTreeMap<String, minijinja::Value>;

/// Default time a step may take when neither step nor backend says otherwise.
const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed. Each message tells the model what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Arguments do not match the input schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// A required step failed.
    #[error("step `{step}` failed: {message}")]
    Step { step: String, message: String },
    /// Shaping the output failed.
    #[error("could not shape the output field `{field}`: {message}")]
    Output { field: String, message: String },
    /// The caller cancelled the call.
    #[error("the call was cancelled")]
    Cancelled,
}

/// The result of a call: structured content, its compact text, further content blocks
/// (MCP JSON shape), and whether the spec's `error` condition fired.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub structured: Value,
    pub text: String,
    pub content: Vec<Value>,
    pub error: Option<String>,
}

/// Progress of a multi-step call: (steps done, steps total, message).
pub type Progress<'a> = &'a (dyn Fn(usize, usize, String) + Send + Sync);

/// Check arguments against the input schema; fill defaults; absent optional inputs are null.
pub fn prepare_args(proc: &Procedure, args: &Map<String, Value>) -> Result<Map<String, Value>, Error> {
    let instance = Value::Object(args.clone());
    let problems: Vec<String> = proc
        .input_validator
        .iter_errors(&instance)
        .map(|e| {
            let path = e.instance_path().as_str().trim_start_matches('/').replace('/', ".");
            if let jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } = e.kind() {
                let known: Vec<&str> = proc.inputs.keys().map(String::as_str).collect();
                format!("unknown argument {} (accepted: {})", unexpected.join(", "), known.join(", "))
            } else if path.is_empty() {
                e.to_string()
            } else {
                format!("argument `{path}`: {e}")
            }
        })
        .collect();
    if !problems.is_empty() {
        return Err(Error::InvalidArguments(problems.join("; ")));
    }
    let mut out = Map::new();
    for (name, input) in &proc.inputs {
        let v = args.get(name).cloned().or_else(|| input.default.clone()).unwrap_or(Value::Null);
        out.insert(name.clone(), v);
    }
    Ok(out)
}

/// Render one step's request from the context (no network).
pub fn render_request(step: &Step, ctx: &minijinja::Value) -> Result<Value, String> {
    template::render_json(&step.request, ctx).map_err(|e| template_error(&e))
}

/// A template error on one line, with its detail.
pub fn template_error(e: &minijinja::Error) -> String {
    let mut msg = e.detail().map(str::to_owned).unwrap_or_else(|| e.to_string());
    if let Some(src) = std::error::Error::source(e) {
        msg.push_str(&format!(": {src}"));
    }
    msg
}

fn eval_when(step: &Step, ctx: &minijinja::Value) -> Result<bool, String> {
    match &step.when {
        None => Ok(true),
        Some(w) => template::eval_expr(w, ctx).map(|v| v.is_true()).map_err(|e| template_error(&e)),
    }
}

/// Run a procedure (a tool or a resource) with arguments.
pub async fn run(
    active: &Active,
    proc: &Procedure,
    args: &Map<String, Value>,
    progress: Option<Progress<'_>>,
    cancel: &CancellationToken,
) -> Result<Outcome, Error> {
    let args = prepare_args(proc, args)?;
    // The template scope: inputs and flags converted (small); step results are shared views.
    let mut scope: Scope = args.iter().map(|(k, v)| (k.clone(), template::to_value(v))).collect();
    scope.insert("backends".into(), template::to_value(&active.backend_flags()));
    let mut results: HashMap<String, Arc<Value>> = HashMap::new();
    let mut sections = Map::new();
    let mut pending: Vec<&Step> = proc.steps.iter().collect();
    let total = pending.len();

    while !pending.is_empty() {
        // A wave: every pending step whose dependencies have finished.
        let (ready, rest): (Vec<&Step>, Vec<&Step>) =
            pending.into_iter().partition(|s| s.deps.iter().all(|d| results.contains_key(d)));
        pending = rest;
        if ready.is_empty() {
            // Unreachable after validation (cycles are rejected), but never loop forever.
            let names: Vec<&str> = pending.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::Step { step: names.join(", "), message: "dependency cycle".into() });
        }
        let mut wave_scope = scope.clone();
        for (k, v) in &results {
            wave_scope.insert(k.clone(), json_view::view(v.clone()));
        }
        let wave_ctx = minijinja::Value::from(wave_scope);
        let futures = ready.iter().map(|step| run_step(active, step, &wave_ctx));
        let outcomes = tokio::select! {
            o = join_all(futures) => o,
            _ = cancel.cancelled() => return Err(Error::Cancelled),
        };
        for (step, outcome) in ready.iter().zip(outcomes) {
            match outcome {
                StepOutcome::Done(v) => {
                    if step.optional || step.when.is_some() {
                        sections.insert(step.name.clone(), json!({"status": "ok"}));
                    }
                    results.insert(step.name.clone(), Arc::new(v));
                }
                StepOutcome::Skipped(reason) => {
                    sections.insert(step.name.clone(), json!({"status": "skipped", "reason": reason}));
                    results.insert(step.name.clone(), Arc::new(Value::Null));
                }
                StepOutcome::Failed(message) if step.optional => {
                    tracing::warn!(step = %step.name, %message, "optional step degraded");
                    sections.insert(step.name.clone(), json!({"status": "unavailable", "reason": message}));
                    results.insert(step.name.clone(), Arc::new(Value::Null));
                }
                StepOutcome::Failed(message) => return Err(Error::Step { step: step.name.clone(), message }),
            }
            if let Some(p) = progress {
                p(results.len(), total, format!("step {} finished", step.name));
            }
        }
    }

    for (k, v) in &results {
        scope.insert(k.clone(), json_view::view(v.clone()));
    }
    scope.insert("sections".into(), template::to_value(&Value::Object(sections.clone())));
    if let Some(t) = active.backends.reference_time() {
        scope.insert(super::quantity::CLOCK_VAR.into(), minijinja::Value::from(t.to_rfc3339()));
    }
    let narrow: Vec<String> = proc
        .inputs
        .iter()
        .filter(|(_, i)| {
            matches!(
                i.ty,
                crate::spec::model::InputType::String
                    | crate::spec::model::InputType::Integer
                    | crate::spec::model::InputType::Array
            )
        })
        .map(|(k, _)| k.clone())
        .collect();
    shape(proc, scope, &results, sections, active.response_budget, &narrow)
}

enum StepOutcome {
    Done(Value),
    Skipped(String),
    Failed(String),
}

async fn run_step(active: &Active, step: &Step, ctx: &minijinja::Value) -> StepOutcome {
    match eval_when(step, ctx) {
        Ok(true) => {}
        Ok(false) => return StepOutcome::Skipped(skip_reason(step)),
        Err(e) => return StepOutcome::Failed(format!("condition: {e}")),
    }
    let request = match render_request(step, ctx) {
        Ok(r) => r,
        Err(e) => return StepOutcome::Failed(format!("cannot build the request: {e}")),
    };
    let client = match active.backends.get(&step.backend) {
        Ok(c) => c,
        Err(e) => return StepOutcome::Failed(e.to_string()),
    };
    // The backend applies the step timeout to its request; the outer bound also covers
    // backends that hang before their own timer starts.
    let limit = step.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT);
    let answer = match tokio::time::timeout(limit + Duration::from_millis(250), client.call(&request, step.timeout))
        .await
    {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return StepOutcome::Failed(e.to_string()),
        Err(_) => return StepOutcome::Failed(format!("no answer from backend `{}` within {limit:?}", step.backend)),
    };
    match &step.select {
        None => StepOutcome::Done(answer),
        Some(path) => match super::extract::query(path, &answer) {
            Ok(found) if step.select_one => StepOutcome::Done(found.into_iter().next().unwrap_or(Value::Null)),
            Ok(found) => StepOutcome::Done(Value::Array(found)),
            Err(e) => StepOutcome::Failed(format!("select `{path}`: {e}")),
        },
    }
}

fn skip_reason(step: &Step) -> String {
    match step.when.as_deref() {
        Some(w) if w.starts_with("backends[") => format!("backend `{}` is not enabled in this mode", step.backend),
        Some(w) => format!("condition `{w}` is false"),
        None => String::new(),
    }
}

/// Evaluate the structured fields, fit them into the response budget, then render the text
/// from the (possibly cut) values so both agree.
fn shape(
    proc: &Procedure,
    mut scope: Scope,
    results: &HashMap<String, Arc<Value>>,
    sections: Map<String, Value>,
    budget: usize,
    narrow: &[String],
) -> Result<Outcome, Error> {
    let mut structured = Map::new();
    if proc.output.structured.is_empty() {
        // No shaping declared: the step results are the result.
        for s in &proc.steps {
            structured.insert(s.name.clone(), results.get(&s.name).map(|v| (**v).clone()).unwrap_or(Value::Null));
        }
    }
    for (field, spec) in &proc.output.structured {
        let fail = |e: minijinja::Error| Error::Output { field: field.clone(), message: template_error(&e) };
        let v = match spec {
            crate::spec::model::FieldSpec::Each(each) => rows(each, &scope).map_err(fail)?,
            _ => {
                let mctx = minijinja::Value::from(scope.clone());
                template::eval_shaping(spec.expr(), &mctx).and_then(|v| template::to_json(&v)).map_err(fail)?
            }
        };
        // Fields named `_...` are intermediate: usable by later fields, not returned.
        if !field.starts_with('_') {
            structured.insert(field.clone(), v.clone());
        }
        scope.insert(field.clone(), json_view::view(Arc::new(v)));
    }
    if !sections.is_empty() {
        structured.insert("sections".into(), Value::Object(sections));
    }
    let mut structured = Value::Object(structured);
    let cut = super::budget::fit_structured(&mut structured, budget, narrow);
    if cut.is_some()
        && let Value::Object(m) = &structured
    {
        for (k, v) in m {
            scope.insert(k.clone(), json_view::view(Arc::new(v.clone())));
        }
    }
    let mctx = minijinja::Value::from(scope);
    let text = match &proc.output.text {
        Some(t) => template::render_shaping(t, &mctx)
            .map_err(|e| Error::Output { field: "text".into(), message: template_error(&e) })?,
        None => serde_json::to_string_pretty(&structured).unwrap_or_default(),
    };
    let content = proc
        .output
        .content
        .iter()
        .map(|c| {
            let tree = serde_json::to_value(c).unwrap_or_default();
            template::render_json(&tree, &mctx)
                .map_err(|e| Error::Output { field: "content".into(), message: template_error(&e) })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let error = match &proc.output.error {
        Some(t) => {
            let msg = template::render_shaping(t, &mctx)
                .map_err(|e| Error::Output { field: "error".into(), message: template_error(&e) })?;
            Some(msg.trim().to_string()).filter(|m| !m.is_empty())
        }
        None => None,
    };
    let mut text = text.trim_end().to_string();
    let text_budget =
        budget.saturating_sub(serde_json::to_string(&structured).map(|t| t.len()).unwrap_or(0)).max(budget / 4);
    let hint = cut.unwrap_or_else(|| format!("narrow the query with {}", narrow.join(", ")));
    super::budget::fit_text(&mut text, text_budget, &hint);
    Ok(Outcome { structured, text, content, error })
}

/// Evaluate an `each` field: one row per list element that passes `where`. Rows see the
/// whole scope (inputs, steps, earlier fields) plus the element.
fn rows(spec: &crate::spec::model::EachFieldSpec, scope: &Scope) -> Result<Value, minijinja::Error> {
    let env = template::shaping_env();
    let list = template::eval_shaping(&spec.each, &minijinja::Value::from(scope.clone()))?;
    if list.is_none() || list.is_undefined() {
        return Ok(Value::Array(Vec::new()));
    }
    // Compile once; per element, a shallow copy of the scope (values are shared).
    let filter = spec.where_.as_deref().map(|w| env.compile_expression(w)).transpose()?;
    let fields = spec
        .fields
        .iter()
        .map(|(k, e)| Ok((k.as_str(), env.compile_expression(e)?)))
        .collect::<Result<Vec<_>, minijinja::Error>>()?;
    let mut scope = scope.clone();
    let mut out = Vec::new();
    for item in list.try_iter()? {
        scope.insert(spec.as_name.clone(), item);
        let row_ctx = minijinja::Value::from(scope.clone());
        if let Some(f) = &filter
            && !f.eval(&row_ctx)?.is_true()
        {
            continue;
        }
        let mut row = Map::new();
        for (name, expr) in &fields {
            row.insert((*name).to_string(), template::to_json(&expr.eval(&row_ctx)?)?);
        }
        out.push(Value::Object(row));
    }
    Ok(Value::Array(out))
}
