//! The executor: check arguments, run steps (each as soon as the steps it reads have
//! finished; a failing required step cancels the rest), check every rendered request before
//! it is sent, extract, and shape the structured and text output.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::Active;
use super::json_view;
use super::registry::{FieldValue, Procedure, Step};
use super::template::{self, Mode};
use crate::backends::{self, ErrorKind, Request};
use crate::clip::{MESSAGE_MAX, clip};

/// Template variables of a call.
pub type Scope = BTreeMap<String, minijinja::Value>;

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
    Step { step: String, kind: ErrorKind, message: String },
    /// Shaping the output failed.
    #[error("could not shape the output field `{field}`: {message}")]
    Output { field: String, message: String },
    /// The caller cancelled the call.
    #[error("the call was cancelled")]
    Cancelled,
}

impl Error {
    /// What the model should do about this error.
    pub fn advice(&self) -> &'static str {
        match self {
            Error::InvalidArguments(_) => "Fix the arguments to match the tool's input schema and call again.",
            Error::Step { kind, .. } => kind.advice(),
            Error::Output { .. } => "The tool's output template failed; report this to the server's admin.",
            Error::Cancelled => "The call was cancelled.",
        }
    }
}

/// A step that could not produce a value: its kind and message.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub kind: ErrorKind,
    pub message: String,
}

impl StepFailure {
    /// A failure of `kind`, its message clipped.
    pub fn new(kind: ErrorKind, message: impl AsRef<str>) -> StepFailure {
        StepFailure { kind, message: clip(message.as_ref(), MESSAGE_MAX) }
    }
}

impl From<backends::Error> for StepFailure {
    fn from(e: backends::Error) -> StepFailure {
        StepFailure { kind: e.kind, message: e.to_string() }
    }
}

/// The result of a call: structured content, its compact text, further content blocks
/// (MCP JSON shape), and whether the spec's `error` condition fired.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub structured: Value,
    pub text: String,
    pub content: Vec<Value>,
    pub error: Option<String>,
    /// The age of the oldest answer served from a backend's read cache (None: every answer
    /// was fetched by this call).
    pub data_age: Option<Duration>,
}

/// Progress of a multi-step call: (steps done, steps total, message).
pub type Progress<'a> = &'a (dyn Fn(usize, usize, String) + Send + Sync);

/// Check arguments against the input schema; fill defaults; absent optional inputs are null
/// (see [`super::args::prepare`]).
pub fn prepare_args(proc: &Procedure, args: &Map<String, Value>) -> Result<Map<String, Value>, Error> {
    super::args::prepare(proc, args).map_err(Error::InvalidArguments)
}

/// Render one step's request from the scope, check it, and type it (no network). The same
/// path serves calls and `render`.
pub fn render_request(step: &Step, proc: &Procedure, scope: &Scope) -> Result<Request, StepFailure> {
    let ctx = minijinja::Value::from(scope.clone());
    let body = proc.templates.render_tree(Mode::Request, &step.request, &ctx).map_err(|e| {
        StepFailure::new(ErrorKind::InvalidRequest, format!("cannot build the request: {}", template_error(&e)))
    })?;
    super::checks::check(step, proc, &body, scope)?;
    step.call
        .typed(body)
        .map_err(|e| StepFailure::new(ErrorKind::InvalidRequest, format!("the rendered request is not valid: {e}")))
}

/// A template error on one line, with its detail.
pub fn template_error(e: &minijinja::Error) -> String {
    let mut msg = e.detail().map(str::to_owned).unwrap_or_else(|| e.to_string());
    if let Some(src) = std::error::Error::source(e) {
        msg.push_str(&format!(": {src}"));
    }
    clip(&msg, MESSAGE_MAX)
}

/// Whether a step's condition holds.
pub fn condition_holds(step: &Step, ctx: &minijinja::Value) -> Result<bool, String> {
    match &step.when {
        None => Ok(true),
        Some((_, w)) => w.eval(ctx).map(|v| v.is_true()).map_err(|e| template_error(&e)),
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
    scope.extend(proc.libraries.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut results: HashMap<String, Arc<Value>> = HashMap::new();
    // Every step answered from a read cache (or skipped): the outcome may come from the memo.
    let mut memoizable = !proc.volatile;
    let mut data_age: Option<Duration> = None;
    let mut sections = Map::new();
    // How long each step took (`timings.<step>.ms`), for health probes and diagnostics.
    let mut timings = Map::new();
    let total = proc.steps.len();
    let mut started: HashSet<&str> = HashSet::new();
    let mut running = FuturesUnordered::new();

    loop {
        // Start every step whose inputs are ready: a step runs as soon as the steps it reads
        // have finished.
        for step in &proc.steps {
            if started.contains(step.name.as_str()) || !step.deps.iter().all(|d| results.contains_key(d)) {
                continue;
            }
            started.insert(&step.name);
            let mut step_scope = scope.clone();
            for d in &step.deps {
                step_scope.insert(d.clone(), json_view::view(results[d].clone()));
            }
            running.push(async move {
                let at = std::time::Instant::now();
                let outcome = run_step(active, proc, step, step_scope).await;
                (step, outcome, at.elapsed())
            });
        }
        if running.is_empty() {
            break;
        }
        let (step, outcome, took) = tokio::select! {
            Some(done) = running.next() => done,
            _ = cancel.cancelled() => return Err(Error::Cancelled),
        };
        let ms = (took.as_secs_f64() * 100_000.0).round() / 100.0;
        timings.insert(step.name.clone(), json!({"ms": ms}));
        match outcome {
            StepOutcome::Done(v, age, shared) => {
                memoizable &= shared;
                if step.optional || step.when.is_some() {
                    sections.insert(step.name.clone(), json!({"status": "ok"}));
                }
                data_age = data_age.max(age);
                results.insert(step.name.clone(), v);
            }
            StepOutcome::Skipped(reason) => {
                sections.insert(step.name.clone(), json!({"status": "skipped", "reason": reason}));
                // One shared null: a skipped step does not keep the outcome from the memo.
                static SKIPPED: std::sync::LazyLock<Arc<Value>> = std::sync::LazyLock::new(|| Arc::new(Value::Null));
                results.insert(step.name.clone(), SKIPPED.clone());
            }
            StepOutcome::Failed(f) if step.optional => {
                memoizable = false;
                tracing::warn!(step = %step.name, message = %f.message, "optional step degraded");
                sections
                    .insert(step.name.clone(), json!({"status": "unavailable", "kind": f.kind, "reason": f.message}));
                results.insert(step.name.clone(), Arc::new(Value::Null));
            }
            // Fail fast: returning drops the steps still running, which cancels them.
            StepOutcome::Failed(f) => {
                return Err(Error::Step { step: step.name.clone(), kind: f.kind, message: f.message });
            }
        }
        if let Some(p) = progress {
            p(results.len(), total, format!("step {} finished", step.name));
        }
    }
    if results.len() < total {
        // Unreachable after validation (cycles are rejected), but never hang or lie.
        let names: Vec<&str> =
            proc.steps.iter().filter(|s| !results.contains_key(&s.name)).map(|s| s.name.as_str()).collect();
        return Err(Error::Step {
            step: names.join(", "),
            kind: ErrorKind::InvalidRequest,
            message: "dependency cycle".into(),
        });
    }

    let memo_key = memoizable.then(|| {
        let clock = active.backends.reference_time().map(|t| t.to_rfc3339()).unwrap_or_default();
        let flags = serde_json::to_string(&active.backend_flags()).unwrap_or_default();
        format!(
            "{}\u{0}{flags}\u{0}{}\u{0}{clock}",
            serde_json::to_string(&args).unwrap_or_default(),
            active.response_budget
        )
    });
    if let Some(key) = &memo_key
        && let Some(o) = proc.memo.get(key, &results)
    {
        return Ok(Outcome { data_age, ..o });
    }
    for (k, v) in &results {
        scope.insert(k.clone(), json_view::view(v.clone()));
    }
    scope.insert("sections".into(), template::to_value(&Value::Object(sections.clone())));
    scope.insert("timings".into(), template::to_value(&Value::Object(timings)));
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
    // Shaping thousands of rows is CPU work: on the multi-threaded runtime (serve), let this
    // worker block while its other tasks move elsewhere, so health checks and other calls
    // keep answering. (Single-threaded runtimes, as in tests, shape inline.)
    let budget = active.response_budget;
    let shaped = || shape(proc, scope, &results, sections, budget, &narrow);
    let outcome = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(shaped),
        _ => shaped(),
    };
    let outcome = outcome?;
    if let Some(key) = memo_key {
        proc.memo.put(key, &results, &outcome);
    }
    Ok(Outcome { data_age, ..outcome })
}

/// Shaped outcomes of recent calls whose every step answer came from a read cache. The same
/// arguments and the same cached answers (the very same values, compared by pointer) shape
/// to the same outcome, so it is reused: shaping thousands of objects is most of a warm call.
/// Procedures that read the clock or the steps' timings are never memoized.
#[derive(Default)]
pub struct Memo {
    entries: Mutex<Vec<MemoEntry>>,
    hits: std::sync::atomic::AtomicU64,
}

struct MemoEntry {
    key: String,
    /// The step answers it was shaped from. Weak: the memo never keeps an answer alive (and
    /// an address cannot be reused while a weak reference to it exists).
    answers: Vec<(String, Weak<Value>)>,
    outcome: Outcome,
}

/// Outcomes kept per procedure (the oldest goes first).
const MEMO_MAX: usize = 8;

impl Memo {
    fn same(entry: &MemoEntry, key: &str, results: &HashMap<String, Arc<Value>>) -> bool {
        entry.key == key
            && entry.answers.len() == results.len()
            && entry
                .answers
                .iter()
                .all(|(step, w)| results.get(step).is_some_and(|a| std::ptr::eq(w.as_ptr(), Arc::as_ptr(a))))
    }

    fn get(&self, key: &str, results: &HashMap<String, Arc<Value>>) -> Option<Outcome> {
        let memo = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let found = memo.iter().find(|e| Memo::same(e, key, results)).map(|e| e.outcome.clone());
        if found.is_some() {
            self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        found
    }

    /// How many calls reused an outcome.
    pub fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn put(&self, key: String, results: &HashMap<String, Arc<Value>>, outcome: &Outcome) {
        let mut memo = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        memo.retain(|e| e.key != key && e.answers.iter().all(|(_, w)| w.strong_count() > 0));
        if memo.len() >= MEMO_MAX {
            memo.remove(0);
        }
        let answers = results.iter().map(|(k, v)| (k.clone(), Arc::downgrade(v))).collect();
        memo.push(MemoEntry { key, answers, outcome: outcome.clone() });
    }
}

enum StepOutcome {
    /// The step's value, its age if it came from a read cache, and whether a read cache
    /// holds it.
    Done(Arc<Value>, Option<Duration>, bool),
    Skipped(String),
    Failed(StepFailure),
}

async fn run_step(active: &Active, proc: &Procedure, step: &Step, scope: Scope) -> StepOutcome {
    let ctx = minijinja::Value::from(scope.clone());
    match condition_holds(step, &ctx) {
        Ok(true) => {}
        Ok(false) => return StepOutcome::Skipped(skip_reason(step)),
        Err(e) => return StepOutcome::Failed(StepFailure::new(ErrorKind::InvalidRequest, format!("condition: {e}"))),
    }
    let mut request = match render_request(step, proc, &scope) {
        Ok(r) => r,
        Err(f) => return StepOutcome::Failed(f),
    };
    if let (Some(p), backends::Request::Kubernetes(r)) = (&step.projection, &mut request) {
        r.projection = Some(p.clone());
    }
    // The backend applies the step timeout to its request; the outer bound also covers
    // backends that hang before their own timer starts (and the rate limit's wait).
    let limit = step.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT);
    let call = active.backends.call_shared(&step.backend, request, step.timeout, step.effect);
    let (answer, age, shared) = match tokio::time::timeout(limit + Duration::from_millis(250), call).await {
        Ok(Ok(c)) => (c.value, c.age, c.shared),
        Ok(Err(e)) => return StepOutcome::Failed(e.into()),
        Err(_) => {
            return StepOutcome::Failed(StepFailure::new(
                ErrorKind::Timeout,
                format!("no answer from backend `{}` within {limit:?}", step.backend),
            ));
        }
    };
    match &step.select {
        None => StepOutcome::Done(answer, age, shared),
        Some(path) => match super::extract::query(path, &answer) {
            Ok(found) if step.select_one => {
                StepOutcome::Done(Arc::new(found.into_iter().next().unwrap_or(Value::Null)), age, false)
            }
            Ok(found) => StepOutcome::Done(Arc::new(Value::Array(found)), age, false),
            Err(e) => StepOutcome::Failed(StepFailure::new(ErrorKind::Upstream, format!("select `{path}`: {e}"))),
        },
    }
}

fn skip_reason(step: &Step) -> String {
    match step.when.as_ref().map(|(w, _)| w.as_str()) {
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
    for f in &proc.fields {
        let field = &f.name;
        let fail = |e: minijinja::Error| Error::Output { field: field.clone(), message: template_error(&e) };
        let v = match &f.value {
            FieldValue::Each { .. } => rows(&f.value, &scope).map_err(fail)?,
            FieldValue::Expr(e) => {
                let mctx = minijinja::Value::from(scope.clone());
                e.eval(&mctx).and_then(|v| template::to_json(&v)).map_err(fail)?
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
    let keep_last: Vec<String> = proc
        .output
        .structured
        .iter()
        .filter(
            |(_, f)| matches!(f, crate::spec::model::FieldSpec::Typed(t) if t.keep == crate::spec::model::Keep::Last),
        )
        .map(|(k, _)| format!("/{k}"))
        .collect();
    let cut = super::budget::fit_structured(&mut structured, budget, narrow, &keep_last);
    if cut.is_some()
        && let Value::Object(m) = &structured
    {
        for (k, v) in m {
            scope.insert(k.clone(), json_view::view(Arc::new(v.clone())));
        }
    }
    let mctx = minijinja::Value::from(scope);
    let text = match &proc.text {
        Some(t) => proc
            .templates
            .render(Mode::Shaping, t, &mctx)
            .map_err(|e| Error::Output { field: "text".into(), message: template_error(&e) })?,
        None => serde_json::to_string_pretty(&structured).unwrap_or_default(),
    };
    let content = proc
        .content
        .iter()
        .map(|c| {
            proc.templates
                .render_tree(Mode::Shaping, c, &mctx)
                .map_err(|e| Error::Output { field: "content".into(), message: template_error(&e) })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let error = match &proc.error {
        Some(t) => {
            let msg = proc
                .templates
                .render(Mode::Shaping, t, &mctx)
                .map_err(|e| Error::Output { field: "error".into(), message: template_error(&e) })?;
            Some(msg.trim().to_string()).filter(|m| !m.is_empty())
        }
        None => None,
    };
    let mut text = text.trim_end().to_string();
    super::budget::fit_rendered_text(&mut text, &structured, budget, narrow, cut.as_ref(), !keep_last.is_empty());
    Ok(Outcome { structured, text, content, error, data_age: None })
}

/// Evaluate an `each` field: one row per list element that passes `where`. Rows see the
/// whole scope (inputs, steps, earlier fields) plus the element.
fn rows(value: &FieldValue, scope: &Scope) -> Result<Value, minijinja::Error> {
    let FieldValue::Each { each, as_name, filter, fields } = value else {
        return Ok(Value::Null);
    };
    let list = each.eval(minijinja::Value::from(scope.clone()))?;
    if list.is_none() || list.is_undefined() {
        return Ok(Value::Array(Vec::new()));
    }
    // Per element, a shallow copy of the scope (values are shared).
    let mut scope = scope.clone();
    let mut out = Vec::new();
    for item in list.try_iter()? {
        scope.insert(as_name.clone(), item);
        let row_ctx = minijinja::Value::from(scope.clone());
        if let Some(f) = filter
            && !f.eval(&row_ctx)?.is_true()
        {
            continue;
        }
        let mut row = Map::new();
        for (name, expr) in fields {
            row.insert(name.clone(), template::to_json(&expr.eval(&row_ctx)?)?);
        }
        out.push(Value::Object(row));
    }
    Ok(Value::Array(out))
}
