//! Run-time request checks: every rendered request is checked before anything is sent,
//! whatever its template did.
//!
//! Values that only fill a slot (names, header values) are checked by their grammar. Text
//! with structure (PromQL, selectors, URL paths) is compared with the same template rendered
//! with inert sentinels in place of every untrusted value (free-text inputs, step results):
//! if an argument changed the structure, the call is refused naming the field and the
//! arguments involved. This is the parameterized-SQL idea applied to text: the spec fixes the
//! structure, values only fill slots.

use serde_json::Value;

use super::invoke::{Scope, StepFailure};
use super::registry::{FieldCheck, Procedure, Step};
use super::template::{self, Mode};
use crate::backends::{ErrorKind, TextContext};
use crate::clip::clip;
use crate::guard::{self, GuardError, SENTINEL, names::NameKind, selector::SelectorKind};

/// Check a rendered call body against its step's field checks.
pub fn check(step: &Step, proc: &Procedure, body: &Value, scope: &Scope) -> Result<(), StepFailure> {
    let mut sentinel_ctx: Option<minijinja::Value> = None;
    for c in &step.checks {
        let Some(actual) = body.pointer(&c.pointer) else { continue };
        let text = match actual {
            Value::Null => continue,
            Value::String(s) if s.is_empty() => continue,
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => actual.to_string(),
            _ => {
                return Err(refused(
                    c,
                    step,
                    "refused before sending: renders to a list or object where text is expected".into(),
                ));
            }
        };
        let structural = match c.context {
            TextContext::Promql => Some(guard::Context::Promql),
            TextContext::LabelSelector => Some(guard::Context::LabelSelector),
            TextContext::FieldSelector => Some(guard::Context::FieldSelector),
            TextContext::UrlPath => Some(guard::Context::UrlPath),
            _ => None,
        };
        let result = match structural {
            Some(ctx) => {
                let sentinel = if c.untrusted.is_empty() {
                    // Nothing untrusted reaches the field: its structure is the spec's own.
                    text.clone()
                } else {
                    let sctx = sentinel_ctx.get_or_insert_with(|| sentinel_scope(step, scope));
                    render_field(proc, step, c, sctx)?
                };
                compare(ctx, &text, &sentinel)
            }
            None => value_check(c.context, &text),
        };
        if let Err(e) = result {
            return Err(refused(c, step, e.to_string()));
        }
    }
    Ok(())
}

fn compare(ctx: guard::Context, actual: &str, sentinel: &str) -> Result<(), GuardError> {
    match ctx {
        guard::Context::Promql => guard::promql::same_structure(actual, sentinel),
        guard::Context::LabelSelector => guard::selector::same_structure(SelectorKind::Label, actual, sentinel),
        guard::Context::FieldSelector => guard::selector::same_structure(SelectorKind::Field, actual, sentinel),
        guard::Context::UrlPath => guard::path::same_segments(actual, sentinel),
    }
}

/// Grammar checks of values that fill one slot.
fn value_check(ctx: TextContext, text: &str) -> Result<(), GuardError> {
    match ctx {
        TextContext::Namespace => guard::names::k8s_name(text, NameKind::Namespace),
        TextContext::Container => guard::names::k8s_name(text, NameKind::Container),
        TextContext::Name => guard::names::k8s_name(text, NameKind::Object),
        TextContext::ApiVersion => guard::names::k8s_name(text, NameKind::ApiVersion),
        TextContext::KindName => guard::names::k8s_name(text, NameKind::Kind),
        TextContext::Header => guard::names::header_value(text),
        TextContext::PromqlLabelName => promql_label_name(text),
        TextContext::PathSegment => guard::path::one_segment(text),
        _ => Ok(()),
    }
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn promql_label_name(text: &str) -> Result<(), GuardError> {
    if template::is_label_name(text) {
        Ok(())
    } else {
        Err(GuardError::Value {
            what: "Prometheus label name".into(),
            value: guard::quote(text),
            rule: "letters, digits and `_`, not starting with a digit".into(),
        })
    }
}

/// Render one checked field with the sentinel scope.
fn render_field(proc: &Procedure, step: &Step, c: &FieldCheck, ctx: &minijinja::Value) -> Result<String, StepFailure> {
    let Some(tree) = step.request.at(&c.pointer) else { return Ok(String::new()) };
    match proc.templates.render_tree(Mode::Request, tree, ctx) {
        Ok(Value::String(s)) => Ok(s),
        Ok(Value::Null) => Ok(String::new()),
        Ok(other) => Ok(other.to_string()),
        // The template fails on inert values (e.g. an escaper that accepts only some
        // shapes): the request cannot be shown safe.
        Err(e) => Err(refused(
            c,
            step,
            format!(
                "refused before sending: cannot be shown safe, the template fails on inert values ({}); constrain {} with an enum, pattern or format",
                super::invoke::template_error(&e),
                c.untrusted.join(", ")
            ),
        )),
    }
}

/// The call's scope with every untrusted value any check reads replaced by sentinels.
fn sentinel_scope(step: &Step, scope: &Scope) -> minijinja::Value {
    let mut out = scope.clone();
    for c in &step.checks {
        for var in &c.untrusted {
            if let Some(v) = scope.get(var) {
                let json = template::to_json(v).unwrap_or(Value::Null);
                out.insert(var.clone(), template::to_value(&sentinel(json)));
            }
        }
    }
    minijinja::Value::from(out)
}

/// The same shape with every non-empty string replaced by the sentinel (truthiness kept).
pub fn sentinel(v: Value) -> Value {
    match v {
        Value::String(s) if s.is_empty() => Value::String(s),
        Value::String(_) => Value::String(SENTINEL.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(sentinel).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, sentinel(v))).collect()),
        other => other,
    }
}

fn refused(c: &FieldCheck, step: &Step, why: String) -> StepFailure {
    let from = if c.untrusted.is_empty() { String::new() } else { format!(" (from {})", c.untrusted.join(", ")) };
    StepFailure::new(
        ErrorKind::Refused,
        format!(
            "request field `{}` of step `{}`{from}: {}",
            c.pointer.trim_start_matches('/'),
            step.name,
            clip(&why, 600)
        ),
    )
}
