//! The compiled registry: every valid tool, resource, prompt, backend and mode, and the
//! active view of one mode (what is exposed, and why the rest is not).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

use super::template::{CompiledExpr as Expr, Templates, Tree};
use crate::backends::{BackendSpec, CallSpec, Effect, TextContext};
use crate::spec::model::{InputSpec, ModeSpec, OutputSpec, PromptSpec, SelectorSpec};

/// Everything loaded from the spec directories.
#[derive(Default)]
pub struct Registry {
    pub tools: IndexMap<String, Arc<Tool>>,
    pub resources: IndexMap<String, Arc<Resource>>,
    pub prompts: IndexMap<String, Arc<Prompt>>,
    /// Shared spec libraries (`kind: Library`), compiled once.
    pub libraries: IndexMap<String, Arc<super::library::Library>>,
    pub backends: IndexMap<String, BackendBinding>,
    pub modes: IndexMap<String, Mode>,
    /// Durable workflows (`kind: Workflow`), run by `crate::workflows`.
    pub workflows: IndexMap<String, Arc<crate::workflows::Workflow>>,
    /// REST routes bound to tools.
    pub routes: IndexMap<String, Arc<crate::routes::Route>>,
    /// Files the registry was built from.
    pub files: Vec<PathBuf>,
    /// What `validate` warns about (the registry loaded nonetheless).
    pub warnings: Vec<crate::spec::diagnostic::Diagnostic>,
}

/// A backend document as written (mode overrides are applied on activation).
#[derive(Debug, Clone)]
pub struct BackendBinding {
    pub name: String,
    /// The spec as JSON, for merge-patching with mode overrides.
    pub raw: Value,
    pub spec: BackendSpec,
    /// The binding document's labels (modes may enable bindings by label).
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A compiled mode.
#[derive(Debug, Clone)]
pub struct Mode {
    pub name: String,
    pub spec: ModeSpec,
    /// Enabled backends with mode overrides applied.
    pub backends: IndexMap<String, BackendSpec>,
}

/// Tool annotations resolved to MCP hints.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

/// Inputs, steps and output: the machinery shared by tools and resources. Every template
/// and expression is compiled once, at load; a call only renders.
pub struct Procedure {
    /// The document's file, for messages.
    pub file: PathBuf,
    pub inputs: IndexMap<String, InputSpec>,
    /// The MCP inputSchema (a JSON Schema object).
    pub input_schema: serde_json::Map<String, Value>,
    /// Validator of arguments against `input_schema`.
    pub input_validator: jsonschema::Validator,
    /// Steps in declaration order.
    pub steps: Vec<Step>,
    /// The output as written (field names, for listing).
    pub output: OutputSpec,
    /// Compiled structured fields, in order.
    pub fields: Vec<Field>,
    /// Name of the compiled text template (in `templates`), if any.
    pub text: Option<String>,
    /// Name of the compiled error template, if any.
    pub error: Option<String>,
    /// Compiled extra content blocks.
    pub content: Vec<Tree>,
    /// The procedure's compiled text templates.
    pub templates: Templates,
    /// The MCP outputSchema.
    pub output_schema: serde_json::Map<String, Value>,
    /// Backends that required steps need.
    pub requires: Vec<String>,
    /// Imported libraries by name (callable values), put in every call's scope.
    pub libraries: BTreeMap<String, minijinja::Value>,
    /// The output reads the clock or the steps' timings (never reused from the memo).
    pub volatile: bool,
    /// Recently shaped outcomes of calls answered from read caches.
    pub memo: super::invoke::Memo,
}

impl Procedure {
    /// Whether results carry structured content (and the tool an outputSchema): text-only
    /// procedures with neither steps nor structured fields do not.
    pub fn has_structured_output(&self) -> bool {
        !self.output.structured.is_empty() || !self.steps.is_empty()
    }

    /// The strongest effect of any step.
    pub fn effect(&self) -> Effect {
        self.steps.iter().map(|s| s.effect).max().unwrap_or(Effect::Read)
    }
}

/// A compiled structured output field.
pub struct Field {
    pub name: String,
    pub value: FieldValue,
}

/// How a field is computed.
pub enum FieldValue {
    /// One expression.
    Expr(Expr),
    /// One row per element of a list.
    Each { each: Expr, as_name: String, filter: Option<Expr>, fields: Vec<(String, Expr)> },
}

/// One compiled step.
pub struct Step {
    pub name: String,
    pub optional: bool,
    /// Condition: its source (for messages) and the compiled expression.
    pub when: Option<(String, Expr)>,
    pub timeout: Option<Duration>,
    pub select: Option<String>,
    pub select_one: bool,
    /// Steps whose results this step's templates read.
    pub deps: Vec<String>,
    /// Backend binding name.
    pub backend: String,
    /// The call as written (typed by kind).
    pub call: CallSpec,
    /// The call's body with its templates compiled; rendered per call, then typed.
    pub request: Tree,
    /// What the call does to the world.
    pub effect: Effect,
    /// Templated fields checked after rendering, before anything is sent.
    pub checks: Vec<FieldCheck>,
    /// For a list step: the fields of each object the procedure reads (the rest is dropped
    /// while the answer is parsed); None keeps whole objects.
    pub projection: Option<Arc<super::projection::Projection>>,
}

/// A templated request field: its context, and the variables whose values are untrusted
/// there (free-text inputs, step results). Before sending, the field is checked against the
/// same template rendered with inert sentinels for those variables.
#[derive(Debug, Clone)]
pub struct FieldCheck {
    /// JSON pointer inside the call body.
    pub pointer: String,
    pub context: TextContext,
    /// Variables the template reads whose values are untrusted in this context.
    pub untrusted: Vec<String>,
}

/// A compiled tool.
pub struct Tool {
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub hints: Hints,
    pub proc: Procedure,
}

impl Tool {
    /// Annotated destructive or writing in any step: hidden by the read-only switch, and
    /// needing the write scopes under OAuth.
    pub fn is_destructive(&self) -> bool {
        self.hints.destructive || self.proc.effect() == Effect::Write
    }
}

/// A compiled resource.
pub struct Resource {
    pub name: String,
    pub uri: String,
    /// Parameter names when `uri` is a template.
    pub params: Vec<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub mime_type: String,
    pub labels: BTreeMap<String, String>,
    pub proc: Procedure,
    /// A tool whose result this resource serves, with fixed arguments.
    pub tool: Option<(Arc<Tool>, serde_json::Map<String, Value>)>,
}

impl Resource {
    /// Match a concrete URI against this resource's URI (template), returning parameters.
    pub fn match_uri(&self, uri: &str) -> Option<serde_json::Map<String, Value>> {
        if self.params.is_empty() {
            return (uri == self.uri).then(serde_json::Map::new);
        }
        let mut out = serde_json::Map::new();
        let mut rest = uri;
        let mut tpl = self.uri.as_str();
        while !tpl.is_empty() {
            if let Some(after) = tpl.strip_prefix('{') {
                let end = after.find('}')?;
                let name = &after[..end];
                tpl = &after[end + 1..];
                // A parameter runs to the next literal character of the template (or the end).
                let stop = tpl.chars().next();
                let len = match stop {
                    Some(c) => rest.find(c)?,
                    None => rest.len(),
                };
                let value = &rest[..len];
                if value.is_empty() || value.contains('/') {
                    return None;
                }
                out.insert(name.to_string(), Value::String(value.to_string()));
                rest = &rest[len..];
            } else {
                let lit_len = tpl.find('{').unwrap_or(tpl.len());
                rest = rest.strip_prefix(&tpl[..lit_len])?;
                tpl = &tpl[lit_len..];
            }
        }
        rest.is_empty().then_some(out)
    }
}

/// A compiled prompt.
pub struct Prompt {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: PromptSpec,
    /// Each message's body, compiled once (same order as `spec.messages`).
    pub bodies: Vec<PromptBody>,
    /// The prompt's compiled text templates.
    pub templates: Templates,
}

/// A compiled prompt message body.
pub enum PromptBody {
    /// A text template, by its name in the prompt's [`Templates`].
    Text(String),
    /// A content block whose string leaves are templates.
    Content(Tree),
}

/// Whether a document is exposed in a mode, and why not.
#[derive(Debug, Clone, Serialize)]
pub struct Exposure {
    pub kind: &'static str,
    pub name: String,
    pub exposed: bool,
    /// Why it is hidden (empty when exposed).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Tools and resources: what their steps do to the world (the strongest effect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
    /// The steps that write or declare a non-GET call side-effect free, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<String>,
}

impl Procedure {
    /// Steps that are not plain reads, in words (`step restart: verb `rollout-restart``).
    pub fn effect_notes(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.effect != Effect::Read)
            .map(|s| {
                let (_, action) = s.call.action();
                match s.effect {
                    Effect::SideEffectFree => format!("step {}: {action}, side-effect free", s.name),
                    Effect::Store => format!("step {}: {action} writes the server's store", s.name),
                    _ => format!("step {}: {action} writes", s.name),
                }
            })
            .collect()
    }
}

fn selected(sel: &SelectorSpec, name: &str, labels: &BTreeMap<String, String>) -> Result<(), String> {
    if sel.exclude.iter().any(|n| n == name) {
        return Err("excluded by name".into());
    }
    let included = sel.include.is_empty() || sel.include.iter().any(|n| n == "*" || n == name);
    if !included {
        return Err("not in the mode's include list".into());
    }
    for (k, v) in &sel.labels {
        if labels.get(k) != Some(v) {
            return Err(format!("lacks label {k}={v}"));
        }
    }
    Ok(())
}

impl Registry {
    /// Decide, for a mode, which tools, resources and prompts are exposed.
    pub fn exposure(&self, mode: &Mode) -> Vec<Exposure> {
        let needs = |requires: &[String]| -> Result<(), String> {
            let missing: Vec<&str> =
                requires.iter().filter(|b| !mode.backends.contains_key(*b)).map(String::as_str).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("needs backend {} which mode `{}` does not enable", missing.join(", "), mode.name))
            }
        };
        let decide = |kind: &'static str, name: &str, proc: Option<&Procedure>, result: Result<(), String>| Exposure {
            kind,
            name: name.to_string(),
            exposed: result.is_ok(),
            reason: result.err().unwrap_or_default(),
            effect: proc.map(Procedure::effect),
            effects: proc.map(Procedure::effect_notes).unwrap_or_default(),
        };
        let mut out = Vec::new();
        for t in self.tools.values() {
            let r = selected(&mode.spec.tools, &t.name, &t.labels).and_then(|_| needs(&t.proc.requires));
            out.push(decide("Tool", &t.name, Some(&t.proc), r));
        }
        for r in self.resources.values() {
            let res = selected(&mode.spec.resources, &r.name, &r.labels).and_then(|_| needs(&r.proc.requires));
            out.push(decide("Resource", &r.name, Some(&r.proc), res));
        }
        for p in self.prompts.values() {
            out.push(decide("Prompt", &p.name, None, selected(&mode.spec.prompts, &p.name, &p.labels)));
        }
        // A route is served when selected and its tool is exposed.
        for r in self.routes.values() {
            let tool_exposed = |out: &[Exposure]| {
                out.iter()
                    .any(|e| e.kind == "Tool" && e.name == r.tool.name && e.exposed)
                    .then_some(())
                    .ok_or_else(|| format!("tool `{}` is not exposed in mode `{}`", r.tool.name, mode.name))
            };
            let res = selected(&mode.spec.routes, &r.name, &r.labels).and_then(|_| tool_exposed(&out));
            out.push(decide("Route", &r.name, None, res));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(uri: &str, params: &[&str]) -> Resource {
        Resource {
            name: "r".into(),
            uri: uri.into(),
            params: params.iter().map(|s| s.to_string()).collect(),
            title: None,
            description: None,
            mime_type: "application/json".into(),
            labels: BTreeMap::new(),
            proc: crate::engine::compile::empty_procedure(),
            tool: None,
        }
    }

    #[test]
    fn uri_templates_match_and_extract_parameters() {
        let r = resource("cluster://namespaces/{namespace}/pods", &["namespace"]);
        let m = r.match_uri("cluster://namespaces/default/pods").unwrap();
        assert_eq!(m["namespace"], "default");
        assert!(r.match_uri("cluster://namespaces/a/b/pods").is_none());
        assert!(r.match_uri("cluster://namespaces//pods").is_none());
        let fixed = resource("cluster://health", &[]);
        assert!(fixed.match_uri("cluster://health").is_some());
        assert!(fixed.match_uri("cluster://healthz").is_none());
    }
}
