//! Compile raw documents into the registry, collecting every problem (layers 3 and 4):
//! duplicate names, unknown backends and tools, step shape, templates and JSONPaths that
//! do not compile, undeclared template variables, and free-text arguments spliced into
//! query text without escaping.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::backends::{CallSpec, Effect, TextContext};
use crate::engine::extract;
use crate::engine::library::{self, Library};
use crate::engine::lint::{self, InputFacts, InputKind};
use crate::engine::registry::{
    BackendBinding, Field, FieldCheck, FieldValue, Hints, Mode, Procedure, Prompt, PromptBody, Registry, Resource,
    Step, Tool,
};
use crate::engine::template;
use crate::spec::diagnostic::{Diagnostic, Source, SourceRef};
use crate::spec::load::{Loaded, Located};
use crate::spec::model::{BackendSpec, InputSpec, InputType, OutputSpec, PromptDoc, ResourceDoc, StepSpec, ToolDoc};
use crate::spec::yaml::pointer_segment;
use crate::units::parse_duration;

/// Load and compile spec paths: the registry, or every problem found.
pub fn load_registry(paths: &[PathBuf]) -> Result<Registry, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let loaded = crate::spec::load::load(paths, &mut diags);
    let registry = compile(loaded, &mut diags);
    finish(registry, diags)
}

/// The registry when nothing is an error (warnings kept in it), else every diagnostic.
pub fn finish(mut registry: Registry, diags: Vec<Diagnostic>) -> Result<Registry, Vec<Diagnostic>> {
    if diags.iter().any(Diagnostic::is_error) {
        return Err(sorted(diags));
    }
    registry.warnings = sorted(diags);
    Ok(registry)
}

/// Diagnostics in reading order: by file, then line and column.
pub fn sorted(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by(|a, b| (&a.file, a.pos.line, a.pos.col).cmp(&(&b.file, b.pos.line, b.pos.col)));
    diags
}

/// Compile loaded documents. Problems are appended to `diags`; the registry holds what
/// compiled.
pub fn compile(loaded: Loaded, diags: &mut Vec<Diagnostic>) -> Registry {
    let mut reg = Registry { files: loaded.files.clone(), ..Default::default() };
    check_duplicates(&loaded, diags);
    reg.libraries = crate::engine::library::compile_all(&loaded.libraries, diags);

    for b in &loaded.backends {
        reg.backends.entry(b.doc.metadata.name.clone()).or_insert_with(|| BackendBinding {
            name: b.doc.metadata.name.clone(),
            raw: b.src.yaml.value["spec"].clone(),
            spec: b.doc.spec.clone(),
            labels: b.doc.metadata.labels.clone(),
        });
    }
    // The server itself is always a backend (its version and uptime), defined or not.
    reg.backends.entry("server".into()).or_insert_with(|| BackendBinding {
        name: "server".into(),
        raw: json!({"type": "server"}),
        spec: BackendSpec::Server(Default::default()),
        labels: Default::default(),
    });
    for t in &loaded.tools {
        if reg.tools.contains_key(&t.doc.metadata.name) {
            continue;
        }
        if let Some(tool) = compile_tool(t, &reg.backends, &reg.libraries, diags) {
            reg.tools.insert(tool.name.clone(), Arc::new(tool));
        }
    }
    for r in &loaded.resources {
        if reg.resources.contains_key(&r.doc.metadata.name) {
            continue;
        }
        if let Some(res) = compile_resource(r, &reg.backends, &reg.libraries, &reg.tools, diags) {
            reg.resources.insert(res.name.clone(), Arc::new(res));
        }
    }
    crate::workflows::compile::compile_all(&loaded.workflows, &mut reg, diags);
    for p in &loaded.prompts {
        if reg.prompts.contains_key(&p.doc.metadata.name) {
            continue;
        }
        if let Some(prompt) = compile_prompt(p, diags) {
            reg.prompts.insert(prompt.name.clone(), Arc::new(prompt));
        }
    }
    let names = DocNames {
        tools: loaded.tools.iter().map(|t| t.doc.metadata.name.clone()).collect(),
        resources: loaded.resources.iter().map(|t| t.doc.metadata.name.clone()).collect(),
        prompts: loaded.prompts.iter().map(|t| t.doc.metadata.name.clone()).collect(),
        routes: loaded.routes.iter().map(|t| t.doc.metadata.name.clone()).collect(),
    };
    reg.routes = crate::routes::compile::compile_routes(&loaded.routes, &reg.tools, diags);
    for m in &loaded.modes {
        if reg.modes.contains_key(&m.doc.metadata.name) {
            continue;
        }
        if let Some(mode) = compile_mode(m, &reg.backends, &names, diags) {
            reg.modes.insert(mode.name.clone(), mode);
        }
    }
    reg
}

struct DocNames {
    tools: HashSet<String>,
    resources: HashSet<String>,
    prompts: HashSet<String>,
    routes: HashSet<String>,
}

fn check_duplicates(loaded: &Loaded, diags: &mut Vec<Diagnostic>) {
    fn dup<T>(kind: &str, docs: &[Located<T>], name: impl Fn(&T) -> &str, diags: &mut Vec<Diagnostic>) {
        let mut seen: HashMap<&str, &SourceRef> = HashMap::new();
        for d in docs {
            let n = name(&d.doc);
            if let Some(first) = seen.get(n) {
                let at = first.yaml.locate("/metadata/name");
                diags.push(d.src.diag(
                    "/metadata/name",
                    format!(
                        "duplicate {kind} name `{n}`: also defined in {}:{}:{}",
                        first.file.display(),
                        at.line,
                        at.col
                    ),
                    Some(format!("{kind} names must be unique across all spec files; rename or remove one")),
                ));
            } else {
                seen.insert(n, &d.src);
            }
        }
    }
    dup("Tool", &loaded.tools, |d: &ToolDoc| &d.metadata.name, diags);
    dup("Resource", &loaded.resources, |d: &ResourceDoc| &d.metadata.name, diags);
    dup("Prompt", &loaded.prompts, |d: &PromptDoc| &d.metadata.name, diags);
    dup("Library", &loaded.libraries, |d| &d.metadata.name, diags);
    dup("Backend", &loaded.backends, |d| &d.metadata.name, diags);
    dup("Mode", &loaded.modes, |d| &d.metadata.name, diags);
    dup("Workflow", &loaded.workflows, |d| &d.metadata.name, diags);
    dup("Route", &loaded.routes, |d| &d.metadata.name, diags);
}

pub use crate::engine::lint::format_pattern;

/// The JSON Schema of one input.
pub fn input_schema(i: &InputSpec) -> Value {
    let mut s = serde_json::Map::new();
    let ty = serde_json::to_value(i.ty).expect("type serializes");
    s.insert("type".into(), ty);
    if let Some(d) = &i.description {
        s.insert("description".into(), json!(d));
    }
    if let Some(d) = &i.default {
        s.insert("default".into(), d.clone());
    }
    if let Some(e) = &i.enum_values {
        s.insert("enum".into(), json!(e));
    }
    for (k, v) in [("minimum", i.minimum), ("maximum", i.maximum)] {
        if let Some(v) = v {
            s.insert(k.into(), number(v));
        }
    }
    for (k, v) in [("minLength", i.min_length), ("maxLength", i.max_length), ("maxItems", i.max_items)] {
        if let Some(v) = v {
            s.insert(k.into(), json!(v));
        }
    }
    if let Some(f) = &i.format {
        s.insert("format".into(), json!(f));
    }
    match (&i.pattern, i.format.as_deref().and_then(format_pattern)) {
        (Some(p), _) => {
            s.insert("pattern".into(), json!(p));
        }
        (None, Some(p)) => {
            s.insert("pattern".into(), json!(p));
        }
        _ => {}
    }
    if let Some(items) = &i.items {
        s.insert("items".into(), input_schema(items));
    }
    if let Some(props) = &i.properties {
        s.insert("properties".into(), Value::Object(props.iter().map(|(k, v)| (k.clone(), input_schema(v))).collect()));
        // A nested property's `required` is enforced like a top-level input's.
        let required: Vec<&String> = props.iter().filter(|(_, v)| v.required).map(|(k, _)| k).collect();
        if !required.is_empty() {
            s.insert("required".into(), json!(required));
        }
    }
    Value::Object(s)
}

fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9e15 { json!(v as i64) } else { json!(v) }
}

/// A string input that nothing constrains: it must be escaped wherever it meets query text.
fn is_free_text(i: &InputSpec) -> bool {
    match i.ty {
        InputType::String => {
            i.enum_values.is_none() && i.pattern.is_none() && i.format.as_deref().and_then(format_pattern).is_none()
        }
        InputType::Array => i.items.as_deref().is_none_or(is_free_text),
        InputType::Object => true,
        _ => false,
    }
}

/// What the request lint needs to know about an input.
fn input_facts(i: &InputSpec) -> InputFacts<'_> {
    InputFacts {
        kind: match i.ty {
            InputType::String => InputKind::String,
            InputType::Array | InputType::Object => InputKind::Composite,
            _ => InputKind::Scalar,
        },
        enum_values: i.enum_values.as_deref(),
        pattern: i.pattern.as_deref(),
        format: i.format.as_deref(),
    }
}

/// Build the MCP inputSchema for a set of inputs.
fn inputs_schema(inputs: &IndexMap<String, InputSpec>) -> serde_json::Map<String, Value> {
    let props: serde_json::Map<String, Value> = inputs.iter().map(|(k, v)| (k.clone(), input_schema(v))).collect();
    let required: Vec<&String> = inputs.iter().filter(|(_, v)| v.required).map(|(k, _)| k).collect();
    let mut s = serde_json::Map::new();
    s.insert("type".into(), json!("object"));
    s.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        s.insert("required".into(), json!(required));
    }
    s.insert("additionalProperties".into(), json!(false));
    s
}

/// A procedure with nothing in it (for tests and fixed resources).
pub fn empty_procedure() -> Procedure {
    let input_schema = inputs_schema(&IndexMap::new());
    Procedure {
        file: PathBuf::new(),
        inputs: IndexMap::new(),
        input_validator: jsonschema::validator_for(&Value::Object(input_schema.clone())).expect("schema"),
        input_schema,
        steps: Vec::new(),
        output: OutputSpec::default(),
        fields: Vec::new(),
        text: None,
        error: None,
        content: Vec::new(),
        templates: template::Templates::default(),
        output_schema: serde_json::Map::new(),
        requires: Vec::new(),
        libraries: BTreeMap::new(),
        volatile: false,
        memo: Default::default(),
    }
}

/// Every string leaf of a JSON tree, with its JSON pointer.
fn string_leaves(tree: &Value) -> Vec<(String, String)> {
    fn walk(pointer: String, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::String(s) => out.push((pointer, s.clone())),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, item)| walk(format!("{pointer}/{i}"), item, out)),
            Value::Object(m) => {
                m.iter().for_each(|(k, item)| walk(format!("{pointer}/{}", pointer_segment(k)), item, out))
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(String::new(), tree, &mut out);
    out
}

/// Check a document's typed inputs (names, patterns, defaults) and build the procedure that
/// validates arguments against them (no steps, no output): used by kinds that take inputs
/// but run something other than backend steps (workflows).
pub fn compile_inputs(
    src: &Source,
    inputs: &IndexMap<String, InputSpec>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Procedure> {
    let (steps, output) = (IndexMap::new(), OutputSpec::default());
    let p = ProcedureInput {
        src,
        inputs,
        steps: &steps,
        output: &output,
        requires: &[],
        imports: &[],
        libraries: &IndexMap::new(),
        destructive: false,
    };
    compile_procedure(p, &IndexMap::new(), diags)
}

struct ProcedureInput<'a> {
    src: &'a Source,
    inputs: &'a IndexMap<String, InputSpec>,
    steps: &'a IndexMap<String, StepSpec>,
    output: &'a OutputSpec,
    requires: &'a [String],
    imports: &'a [String],
    libraries: &'a IndexMap<String, Arc<Library>>,
    destructive: bool,
}

fn compile_procedure(
    p: ProcedureInput<'_>,
    backends: &IndexMap<String, BackendBinding>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Procedure> {
    let before = diags.len();
    let src = p.src;
    let globals = template::globals();
    let step_names: HashSet<String> = p.steps.keys().cloned().collect();
    let input_names: HashSet<String> = p.inputs.keys().cloned().collect();
    // Inputs nothing constrains: replaced by sentinels in the run-time structural check.
    let tainted: HashSet<String> = p.inputs.iter().filter(|(_, i)| is_free_text(i)).map(|(k, _)| k.clone()).collect();
    let lint_scope = lint::Scope::new(
        p.inputs.iter().map(|(k, i)| (k.as_str(), input_facts(i))),
        p.steps.keys().map(String::as_str),
    )
    .with_libraries(library::lint_table(p.libraries), p.imports.iter().cloned());
    // Imported libraries: their names, and `lib.def` for each definition (for did-you-mean).
    let mut imported: HashSet<String> = HashSet::new();
    let mut libraries = BTreeMap::new();
    for (i, name) in p.imports.iter().enumerate() {
        let ptr = format!("/spec/imports/{i}");
        match p.libraries.get(name) {
            None => {
                diags.push(library::unknown_library(src, &ptr, name, p.libraries.keys().map(String::as_str)));
                imported.insert(name.clone()); // reported once, not at every use (no `name.` mark)
            }
            Some(_) if input_names.contains(name) || step_names.contains(name) => diags.push(src.diag_in_value(
                &ptr,
                format!("library `{name}` has the same name as an input or step"),
                Some("rename the input or step".into()),
            )),
            Some(lib) => {
                imported.extend(library::visible_names(lib));
                libraries.insert(name.clone(), lib.namespace.clone());
            }
        }
    }

    for (name, input) in p.inputs {
        let ptr = format!("/spec/input/{}", pointer_segment(name));
        if step_names.contains(name) {
            diags.push(src.diag(
                &ptr,
                format!("input `{name}` has the same name as a step"),
                Some("rename one of them".into()),
            ));
        }
        if let Some(pat) = &input.pattern
            && let Err(e) = regex::Regex::new(pat)
        {
            diags.push(src.diag_in_value(&format!("{ptr}/pattern"), format!("invalid pattern: {e}"), None));
        }
        if let Some(default) = &input.default {
            let schema = input_schema(input);
            if let Ok(v) = jsonschema::validator_for(&schema)
                && let Err(e) = v.validate(default)
            {
                diags.push(src.diag_in_value(
                    &format!("{ptr}/default"),
                    format!("default does not satisfy the input's own schema: {e}"),
                    None,
                ));
            }
        }
    }

    let mut steps = Vec::new();
    let mut requires: Vec<String> = Vec::new();
    for (i, req) in p.requires.iter().enumerate() {
        if !backends.contains_key(req) {
            diags.push(src.diag_in_value(
                &format!("/spec/requires/{i}"),
                format!("unknown backend `{req}`"),
                Some(unknown_backend_hint(req, backends, None)),
            ));
        }
        requires.push(req.clone());
    }
    let mut templates = template::Templates::default();
    let reads = super::projection::of_procedure(p.steps, p.output);
    let mut projections = reads.projections;
    for (name, step) in p.steps {
        let base = format!("/spec/steps/{}", pointer_segment(name));
        let call_key = step.call.kind_name();
        let call_ptr = format!("{base}/{call_key}");
        let backend = step.call.binding().to_string();
        let effect = step.call.effect();
        if effect == Effect::Write && !p.destructive {
            let (field, action) = step.call.action();
            diags.push(src.diag_in_value(
                &format!("{call_ptr}{field}"),
                format!("{action} changes things but the tool is not annotated destructive"),
                Some(
                    "add `annotations: {destructive: true}` to the tool, use a read-only call, or (for a POST to a query or inference API) declare the step `sideEffectFree: true`"
                        .into(),
                ),
            ));
        }
        for (pointer, message) in step.call.check() {
            diags.push(src.diag_in_value(&format!("{call_ptr}{pointer}"), message, None));
        }
        match backends.get(&backend) {
            None => diags.push(src.diag_in_value(
                &format!("{call_ptr}/backend"),
                format!("unknown backend `{backend}`"),
                Some(unknown_backend_hint(&backend, backends, Some(call_key))),
            )),
            Some(b) if b.spec.type_name() != call_key => diags.push(src.diag_in_value(
                &format!("{call_ptr}/backend"),
                format!("backend `{backend}` is of type {}, but this is a {call_key} step", b.spec.type_name()),
                Some(known_backends(backends, Some(call_key))),
            )),
            _ => {}
        }
        let timeout = step.timeout.as_ref().and_then(|t| match parse_duration(t) {
            Some(s) if s > 0.0 => Some(Duration::from_secs_f64(s)),
            _ => {
                diags.push(src.diag_in_value(
                    &format!("{base}/timeout"),
                    format!("invalid timeout `{t}`"),
                    Some("use e.g. 500ms, 5s, 1m".into()),
                ));
                None
            }
        });
        if let Some(sel) = &step.select
            && let Err(e) = extract::check(sel)
        {
            diags.push(src.diag_in_value(
                &format!("{base}/select"),
                format!("invalid JSONPath `{sel}`: {e}"),
                Some("JSONPath follows RFC 9535, e.g. $.items[*].metadata.name".into()),
            ));
        }
        let mut declared: HashSet<String> = input_scope(input_names.iter());
        declared.extend(step_names.iter().filter(|s| *s != name).cloned());
        declared.insert("backends".into());
        declared.extend(globals.iter().cloned());
        declared.extend(imported.iter().cloned());

        let mut deps: HashSet<String> = HashSet::new();
        let when = step.when.as_ref().map(|w| {
            if backends.contains_key(w.as_str()) {
                format!("backends[{}]", serde_json::to_string(w).expect("string"))
            } else {
                w.clone()
            }
        });
        if let Some(w) = &when {
            check_template(src, &format!("{base}/when"), w, true, &declared, &step_names, &mut deps, diags);
        }
        // Raw PromQL from the model (`format: promql`) may reach only guarded steps, whose
        // backend parses it and applies its guardrails.
        let guarded = matches!(&step.call, CallSpec::Prometheus(c) if c.guarded);
        let body = step.call.body_json();
        let mut checks = Vec::new();
        for (pointer, source) in string_leaves(&body) {
            let Some(ctx) = step.call.field(&pointer) else { continue };
            let at = format!("{call_ptr}{pointer}");
            if ctx == TextContext::Literal {
                // SQL text: the structure is the spec's, values travel as bind parameters.
                if let Some(offset) = [source.find("{{"), source.find("{%")].into_iter().flatten().min() {
                    let line = source[..offset].matches('\n').count() + 1;
                    let col = source[..offset].rsplit('\n').next().unwrap_or_default().chars().count() + 1;
                    let mut vars: Vec<String> =
                        template::undeclared(&source, false).unwrap_or_default().into_iter().collect();
                    vars.sort();
                    let what = if vars.is_empty() {
                        "a template".to_string()
                    } else {
                        vars.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
                    };
                    diags.push(src.diag_in_value(
                        &at,
                        format!(
                            "{what} spliced into literal SQL text (template line {line}, column {col}): values reach SQL only as bind parameters, never as SQL text"
                        ),
                        Some("write `$1`, `$2`... in the SQL and put each template in `params`".into()),
                    ));
                }
                continue;
            }
            let mut reads = HashSet::new();
            check_template(src, &at, &source, false, &declared, &step_names, &mut reads, diags);
            if !source.contains("{{") && !source.contains("{%") {
                continue;
            }
            let vars = template::undeclared(&source, false).unwrap_or_default();
            deps.extend(reads);
            // Step results are untrusted text wherever they land.
            let untrusted_here = |v: &String| {
                step_names.contains(v)
                    || tainted.contains(v)
                        && !(guarded && p.inputs.get(v).and_then(|i| i.format.as_deref()) == Some("promql"))
            };
            let mut untrusted: Vec<String> = vars.iter().filter(|v| untrusted_here(v)).cloned().collect();
            untrusted.sort();
            if let Ok(found) = lint::lint(&source, lint::TextContext::from(ctx), &lint_scope, guarded) {
                for v in found {
                    diags.push(src.diag_in_value(&at, v.message, Some(v.hint)));
                }
            }
            if ctx != TextContext::Data {
                checks.push(FieldCheck { pointer, context: ctx, untrusted });
            }
        }
        let request = match templates.tree(template::Mode::Request, &call_ptr, &body) {
            Ok(t) => t,
            Err(_) => continue, // reported by check_template
        };
        let when = when.and_then(|w| template::compile_expr(&w).ok().map(|e| (w, e)));
        // A step conditioned on a backend being enabled (`when: prometheus`) does not make the
        // tool require it; a step conditioned only on inputs still needs its backend.
        let conditional_on_backend = when.as_ref().is_some_and(|(w, _)| w.contains("backends"));
        if !step.optional && !conditional_on_backend && !requires.contains(&backend) {
            requires.push(backend.clone());
        }
        let mut deps: Vec<String> = deps.into_iter().collect();
        deps.sort();
        steps.push(Step {
            name: name.clone(),
            optional: step.optional,
            when,
            timeout,
            select: step.select.clone(),
            select_one: step.select_one,
            deps,
            backend,
            call: step.call.clone(),
            request,
            effect,
            checks,
            projection: projections
                .remove(name)
                .filter(|p| *p != super::projection::Projection::All)
                .map(std::sync::Arc::new),
        });
    }
    check_cycles(src, &steps, diags);

    // Output: fields may read inputs, steps, earlier fields, sections and backends.
    let mut declared: HashSet<String> = input_scope(input_names.iter());
    declared.extend(step_names.iter().cloned());
    declared.extend(["sections".to_string(), "backends".to_string(), "timings".to_string()]);
    declared.extend(globals.iter().cloned());
    declared.extend(imported.iter().cloned());
    let mut sink = HashSet::new();
    let mut props = serde_json::Map::new();
    for (field, spec) in &p.output.structured {
        let ptr = format!("/spec/output/structured/{}", pointer_segment(field));
        use crate::spec::model::FieldSpec;
        let schema = match spec {
            FieldSpec::Expr(e) => {
                check_template(src, &ptr, e, true, &declared, &HashSet::new(), &mut sink, diags);
                json!({})
            }
            FieldSpec::Typed(t) => {
                check_template(
                    src,
                    &format!("{ptr}/value"),
                    &t.value,
                    true,
                    &declared,
                    &HashSet::new(),
                    &mut sink,
                    diags,
                );
                let mut schema = t.schema.clone().unwrap_or_else(|| json!({}));
                if let (Some(d), Some(obj)) = (&t.description, schema.as_object_mut()) {
                    obj.insert("description".into(), json!(d));
                }
                schema
            }
            FieldSpec::Each(e) => {
                check_template(
                    src,
                    &format!("{ptr}/each"),
                    &e.each,
                    true,
                    &declared,
                    &HashSet::new(),
                    &mut sink,
                    diags,
                );
                let mut row_scope: HashSet<String> = declared.clone();
                row_scope.insert(e.as_name.clone());
                if let Some(w) = &e.where_ {
                    check_template(
                        src,
                        &format!("{ptr}/where"),
                        w,
                        true,
                        &row_scope,
                        &HashSet::new(),
                        &mut sink,
                        diags,
                    );
                }
                for (name, expr) in &e.fields {
                    let fptr = format!("{ptr}/fields/{}", pointer_segment(name));
                    check_template(src, &fptr, expr, true, &row_scope, &HashSet::new(), &mut sink, diags);
                }
                let props: serde_json::Map<String, Value> = e.fields.keys().map(|k| (k.clone(), json!({}))).collect();
                let mut schema = json!({"type": "array", "items": {"type": "object", "properties": props}});
                if let Some(d) = &e.description {
                    schema["description"] = json!(d);
                }
                schema
            }
        };
        declared.insert(field.clone());
        if !field.starts_with('_') {
            props.insert(field.clone(), schema);
        }
    }
    if let Some(text) = &p.output.text {
        check_template(src, "/spec/output/text", text, false, &declared, &HashSet::new(), &mut sink, diags);
    }
    if let Some(error) = &p.output.error {
        check_template(src, "/spec/output/error", error, false, &declared, &HashSet::new(), &mut sink, diags);
    }
    for (i, c) in p.output.content.iter().enumerate() {
        check_json_templates(
            src,
            &format!("/spec/output/content/{i}"),
            &serde_json::to_value(c).expect("serializes"),
            &declared,
            diags,
        );
    }
    if steps.iter().any(|s| s.optional || s.when.is_some()) {
        props.insert(
            "sections".into(),
            json!({"type": "object", "description": "Status of optional or conditional steps: ok, skipped or unavailable (with a reason).",
                   "additionalProperties": {"type": "object", "properties": {"status": {"type": "string"}, "reason": {"type": "string"}}}}),
        );
    }
    let mut output_schema = serde_json::Map::new();
    output_schema.insert("type".into(), json!("object"));
    output_schema.insert("properties".into(), Value::Object(props));

    if diags.len() > before {
        return None;
    }
    let input_schema = inputs_schema(p.inputs);
    let input_validator = match jsonschema::validator_for(&Value::Object(input_schema.clone())) {
        Ok(v) => v,
        Err(e) => {
            diags.push(src.diag("/spec/input", format!("inputs do not form a valid JSON Schema: {e}"), None));
            return None;
        }
    };
    let (fields, text, error, content) = match compile_output(p.output, &mut templates) {
        Ok(o) => o,
        Err(e) => {
            diags.push(src.diag("/spec/output", format!("output does not compile: {e}"), None));
            return None;
        }
    };
    diags.extend(unread_intermediates(src, p.output));
    Some(Procedure {
        file: src.file.clone(),
        inputs: p.inputs.clone(),
        input_schema,
        input_validator,
        steps,
        output: p.output.clone(),
        fields,
        text,
        error,
        content,
        templates,
        output_schema,
        requires,
        libraries,
        volatile: reads.volatile,
        memo: Default::default(),
    })
}

/// Warnings for intermediate fields (`_name`) that no later field, the text, the error or a
/// content block reads: dead shaping code.
fn unread_intermediates(src: &Source, output: &OutputSpec) -> Vec<Diagnostic> {
    use crate::spec::model::FieldSpec;
    let reads = |source: &str, expression: bool| template::undeclared(source, expression).unwrap_or_default();
    let mut later: Vec<HashSet<String>> = output
        .structured
        .values()
        .map(|f| match f {
            FieldSpec::Each(e) => {
                let mut r = reads(&e.each, true);
                e.where_.iter().chain(e.fields.values()).for_each(|x| r.extend(reads(x, true)));
                r
            }
            other => reads(other.expr(), true),
        })
        .collect();
    let mut templates: HashSet<String> = HashSet::new();
    for t in output.text.iter().chain(&output.error) {
        templates.extend(reads(t, false));
    }
    for c in &output.content {
        for (_, leaf) in string_leaves(&serde_json::to_value(c).expect("serializes")) {
            templates.extend(reads(&leaf, false));
        }
    }
    let mut out = Vec::new();
    let names: Vec<&String> = output.structured.keys().collect();
    for (i, name) in names.iter().enumerate() {
        if !name.starts_with('_') {
            continue;
        }
        let read = templates.contains(*name) || later.iter_mut().skip(i + 1).any(|r| r.contains(*name));
        if !read {
            out.push(
                src.diag(
                    &format!("/spec/output/structured/{}", pointer_segment(name)),
                    format!("intermediate field `{name}` is never read"),
                    Some(
                        "fields named `_...` are not returned: read it in a later field or the text, or remove it"
                            .into(),
                    ),
                )
                .warning(),
            );
        }
    }
    out
}

type CompiledOutput = (Vec<Field>, Option<String>, Option<String>, Vec<template::Tree>);

/// Compile the output's expressions and templates once (they were checked already).
fn compile_output(
    output: &OutputSpec,
    templates: &mut template::Templates,
) -> Result<CompiledOutput, minijinja::Error> {
    use crate::spec::model::FieldSpec;
    let mut fields = Vec::new();
    for (name, spec) in &output.structured {
        let value = match spec {
            FieldSpec::Each(e) => FieldValue::Each {
                each: template::compile_shaping_expr(&e.each)?,
                as_name: e.as_name.clone(),
                filter: e.where_.as_deref().map(template::compile_shaping_expr).transpose()?,
                fields: e
                    .fields
                    .iter()
                    .map(|(k, x)| Ok((k.clone(), template::compile_shaping_expr(x)?)))
                    .collect::<Result<_, minijinja::Error>>()?,
            },
            other => FieldValue::Expr(template::compile_shaping_expr(other.expr())?),
        };
        fields.push(Field { name: name.clone(), value });
    }
    let mut named = |ptr: &str, source: &Option<String>| -> Result<Option<String>, minijinja::Error> {
        match source {
            Some(t) => {
                templates.add(template::Mode::Shaping, ptr, t)?;
                Ok(Some(ptr.to_string()))
            }
            None => Ok(None),
        }
    };
    let text = named("/spec/output/text", &output.text)?;
    let error = named("/spec/output/error", &output.error)?;
    let content = output
        .content
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let tree = serde_json::to_value(c).expect("serializes");
            templates.tree(template::Mode::Shaping, &format!("/spec/output/content/{i}"), &tree)
        })
        .collect::<Result<_, _>>()?;
    Ok((fields, text, error, content))
}

fn unknown_backend_hint(name: &str, backends: &IndexMap<String, BackendBinding>, ty: Option<&str>) -> String {
    let names: Vec<&str> = backends.keys().map(String::as_str).collect();
    match crate::spec::load::did_you_mean(name, &names) {
        Some(s) => format!("did you mean `{s}`? {}", known_backends(backends, ty)),
        None => known_backends(backends, ty),
    }
}

fn known_backends(backends: &IndexMap<String, BackendBinding>, ty: Option<&str>) -> String {
    let names: Vec<&str> =
        backends.values().filter(|b| ty.is_none_or(|t| b.spec.type_name() == t)).map(|b| b.name.as_str()).collect();
    if names.is_empty() {
        format!(
            "no {}backend is defined; add a `kind: Backend` document",
            ty.map(|t| format!("{t} ")).unwrap_or_default()
        )
    } else {
        format!("known {}backends: {}", ty.map(|t| format!("{t} ")).unwrap_or_default(), names.join(", "))
    }
}

/// Compile-check a template or expression: syntax, declared variables, literal JSONPaths.
/// Step names it mentions are added to `deps`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_template(
    src: &Source,
    pointer: &str,
    source: &str,
    expression: bool,
    declared: &HashSet<String>,
    step_names: &HashSet<String>,
    deps: &mut HashSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    if !expression && !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
        return;
    }
    let vars = match template::undeclared(source, expression) {
        Ok(v) => v,
        Err(e) => {
            let line = e.line().map(|l| format!(" (template line {l})")).unwrap_or_default();
            diags.push(src.diag_in_value(
                pointer,
                format!("template does not compile{line}: {}", e.detail().unwrap_or(&e.to_string())),
                None,
            ));
            return;
        }
    };
    let mut unknown: Vec<&String> = vars.iter().filter(|v| !declared.contains(*v)).collect();
    unknown.sort();
    for v in unknown {
        diags.push(src.diag_in_value(
            pointer,
            format!("undeclared variable `{v}`"),
            Some(undeclared_hint(v, declared)),
        ));
    }
    // `lib.def(...)` of an imported library (declared as `lib` and `lib.def` names).
    for (lib, def) in lint::library_calls(source, expression) {
        let prefix = format!("{lib}.");
        if !declared.contains(&prefix) {
            continue; // not a library: an ordinary method call
        }
        let mut defs: Vec<&str> =
            declared.iter().filter_map(|d| d.strip_prefix(&prefix)).filter(|d| !d.is_empty()).collect();
        if defs.contains(&def.as_str()) {
            continue;
        }
        defs.sort();
        let hint = match crate::spec::load::did_you_mean(&def, &defs) {
            Some(s) => format!("did you mean `{lib}.{s}`? `{lib}` defines: {}", defs.join(", ")),
            None if defs.is_empty() => {
                "nothing is defined before this point (a definition sees only those above it)".into()
            }
            None => format!("`{lib}` defines (before this point): {}", defs.join(", ")),
        };
        diags.push(src.diag_in_value(pointer, format!("library `{lib}` has no definition `{def}`"), Some(hint)));
    }
    deps.extend(vars.into_iter().filter(|v| step_names.contains(v)));
    for path in jsonpath_literals(source) {
        if let Err(e) = extract::check(&path) {
            diags.push(src.diag_in_value(
                pointer,
                format!("invalid JSONPath `{path}`: {e}"),
                Some("JSONPath follows RFC 9535, e.g. $.items[*].metadata.name".into()),
            ));
        }
    }
}

/// What to say about an undeclared variable: the closest name, then what is in scope
/// (inputs first, when the scope has them).
pub(crate) fn undeclared_hint(v: &str, declared: &HashSet<String>) -> String {
    let globals = template::globals();
    let mut inputs: Vec<&str> = declared.iter().filter_map(|d| d.strip_prefix(INPUT_MARK)).collect();
    let mut others: Vec<&str> = declared
        .iter()
        .filter(|d| {
            !globals.contains(*d) && !d.contains('.') && !d.starts_with(INPUT_MARK) && !inputs.contains(&d.as_str())
        })
        .map(String::as_str)
        .collect();
    inputs.sort();
    others.sort();
    let all: Vec<&str> = inputs.iter().chain(&others).copied().collect();
    let close = crate::spec::load::did_you_mean(v, &all).map(|s| format!("did you mean `{s}`? ")).unwrap_or_default();
    let inputs =
        if inputs.is_empty() { "no inputs are declared".to_string() } else { format!("inputs: {}", inputs.join(", ")) };
    let others = if others.is_empty() { String::new() } else { format!("; also in scope: {}", others.join(", ")) };
    format!("{close}{inputs}{others}; declare new inputs under spec.input")
}

/// Marks an input among a template's declared names (for hints): `declared` holds each input
/// both as itself and as `INPUT_MARK` + name, which no template can spell as a variable.
pub(crate) const INPUT_MARK: &str = "@input:";

/// A procedure's input names, with their hint marks.
pub(crate) fn input_scope<'a>(names: impl Iterator<Item = &'a String>) -> HashSet<String> {
    names.flat_map(|n| [n.clone(), format!("{INPUT_MARK}{n}")]).collect()
}

/// Check every string leaf of a JSON tree as a template.
fn check_json_templates(
    src: &Source,
    pointer: &str,
    tree: &Value,
    declared: &HashSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    match tree {
        Value::String(s) => {
            check_template(src, pointer, s, false, declared, &HashSet::new(), &mut HashSet::new(), diags)
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                check_json_templates(src, &format!("{pointer}/{i}"), v, declared, diags);
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                check_json_templates(src, &format!("{pointer}/{}", pointer_segment(k)), v, declared, diags);
            }
        }
        _ => {}
    }
}

/// String literals passed to `jsonpath(...)` / `jsonpath_one(...)` filters.
fn jsonpath_literals(source: &str) -> Vec<String> {
    // The filters take their path as the first argument; find `jsonpath('...')` textually,
    // which covers the literal forms specs use.
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"jsonpath(?:_one)?\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")"#).expect("regex")
    });
    RE.captures_iter(source)
        .filter_map(|c| c.get(1).or_else(|| c.get(2)).map(|m| m.as_str().replace("\\'", "'").replace("\\\"", "\"")))
        .collect()
}

fn check_cycles(src: &Source, steps: &[Step], diags: &mut Vec<Diagnostic>) {
    let deps: HashMap<&str, &Vec<String>> = steps.iter().map(|s| (s.name.as_str(), &s.deps)).collect();
    for s in steps {
        let mut stack = vec![s.name.as_str()];
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            for d in deps.get(n).map(|v| v.as_slice()).unwrap_or_default() {
                if d == &s.name {
                    diags.push(src.diag(
                        &format!("/spec/steps/{}", pointer_segment(&s.name)),
                        format!("step `{}` depends on itself through other steps", s.name),
                        Some("a step may read only steps that do not read it back".into()),
                    ));
                    return;
                }
                if seen.insert(d.as_str()) {
                    stack.push(d);
                }
            }
        }
    }
}

/// MCP hints from the annotations and what the steps do: a tool with a writing step is never
/// advertised read-only.
fn hints(a: &crate::spec::model::AnnotationsSpec, effect: Effect) -> Hints {
    // Writing to the server's own store is not a cluster write, but it is not a read either.
    let read_only = a.read_only.unwrap_or(!a.destructive) && effect < Effect::Store;
    Hints {
        read_only,
        destructive: a.destructive,
        idempotent: a.idempotent.unwrap_or(read_only),
        open_world: a.open_world.unwrap_or(false),
    }
}

fn compile_tool(
    t: &Located<ToolDoc>,
    backends: &IndexMap<String, BackendBinding>,
    libraries: &IndexMap<String, Arc<Library>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Tool> {
    let spec = &t.doc.spec;
    let read_only = spec.annotations.read_only == Some(true);
    if read_only && spec.annotations.destructive {
        diags.push(t.src.diag_in_value(
            "/spec/annotations",
            "a tool cannot be both readOnly and destructive",
            Some("drop `readOnly: true` if the tool writes, or `destructive: true` if it only reads".into()),
        ));
    }
    let proc = compile_procedure(
        ProcedureInput {
            src: &t.src,
            inputs: &spec.input,
            steps: &spec.steps,
            output: &spec.output,
            requires: &spec.requires,
            imports: &spec.imports,
            libraries,
            // A readOnly tool may not write, whatever else it says.
            destructive: spec.annotations.destructive && !read_only,
        },
        backends,
        diags,
    )?;
    if spec.annotations.read_only == Some(true) && proc.effect() >= Effect::Store {
        diags.push(t.src.diag_in_value(
            "/spec/annotations/readOnly",
            "the tool is annotated readOnly but a step writes",
            Some("remove `readOnly: true` (a tool with a writing step is never advertised read-only)".into()),
        ));
        return None;
    }
    Some(Tool {
        name: t.doc.metadata.name.clone(),
        title: spec.title.clone(),
        description: spec.description.clone(),
        labels: t.doc.metadata.labels.clone(),
        hints: hints(&spec.annotations, proc.effect()),
        proc,
    })
}

fn compile_resource(
    r: &Located<ResourceDoc>,
    backends: &IndexMap<String, BackendBinding>,
    libraries: &IndexMap<String, Arc<Library>>,
    tools: &IndexMap<String, Arc<Tool>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Resource> {
    let spec = &r.doc.spec;
    let tool = match &spec.tool {
        None => None,
        Some(t) if !spec.steps.is_empty() => {
            diags.push(r.src.diag("/spec/tool", "a resource has either `tool` or `steps`, not both", None));
            let _ = t;
            return None;
        }
        Some(t) => match tools.get(&t.name) {
            Some(found) => Some((found.clone(), t.args.clone())),
            None => {
                let names: Vec<&str> = tools.keys().map(String::as_str).collect();
                let hint = crate::spec::load::did_you_mean(&t.name, &names).map(|n| format!("did you mean `{n}`?"));
                diags.push(r.src.diag_in_value("/spec/tool/name", format!("unknown tool `{}`", t.name), hint));
                return None;
            }
        },
    };
    let params: Vec<String> = regex::Regex::new(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
        .expect("regex")
        .captures_iter(&spec.uri)
        .map(|c| c[1].to_string())
        .collect();
    if let Some((t, _)) = &tool {
        for p in params.iter().filter(|p| !t.proc.inputs.contains_key(*p)) {
            let names: Vec<&str> = t.proc.inputs.keys().map(String::as_str).collect();
            let close = crate::spec::load::did_you_mean(p, &names)
                .map(|n| format!("did you mean `{{{n}}}`? "))
                .unwrap_or_default();
            diags.push(r.src.diag_in_value(
                "/spec/uri",
                format!("URI variable `{{{p}}}` is not an input of tool `{}`", t.name),
                Some(format!(
                    "{close}the tool's inputs: {}",
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                )),
            ));
        }
    }
    if !spec.uri.contains("://") {
        diags.push(r.src.diag_in_value(
            "/spec/uri",
            format!("`{}` is not a URI", spec.uri),
            Some("use a scheme, e.g. cluster://health".into()),
        ));
    }
    // URI parameters are strings; undeclared ones default to Kubernetes-name syntax.
    let mut inputs = spec.input.clone();
    for p in &params {
        inputs.entry(p.clone()).or_insert_with(|| InputSpec {
            ty: InputType::String,
            description: None,
            default: None,
            required: true,
            enum_values: None,
            minimum: None,
            maximum: None,
            min_length: None,
            max_length: None,
            pattern: None,
            format: Some("k8s-name".into()),
            items: None,
            properties: None,
            max_items: None,
        });
    }
    let mut proc = compile_procedure(
        ProcedureInput {
            src: &r.src,
            inputs: &inputs,
            steps: &spec.steps,
            output: &spec.output,
            requires: &spec.requires,
            imports: &spec.imports,
            libraries,
            destructive: false,
        },
        backends,
        diags,
    )?;
    let writes = proc.effect() >= Effect::Store || tool.as_ref().is_some_and(|(t, _)| t.proc.effect() >= Effect::Store);
    if writes {
        diags.push(r.src.diag_in_value(
            "/spec",
            "a resource only reads, but a step (or its tool) writes",
            Some("expose the writing call as a tool instead".into()),
        ));
        return None;
    }
    let mime_type = spec
        .mime_type
        .clone()
        .unwrap_or_else(|| if spec.output.text.is_some() { "text/plain".into() } else { "application/json".into() });
    if let Some((t, _)) = &tool {
        // A tool-backed resource is exposed exactly when its tool's backends are.
        for b in &t.proc.requires {
            if !proc.requires.contains(b) {
                proc.requires.push(b.clone());
            }
        }
    }
    Some(Resource {
        name: r.doc.metadata.name.clone(),
        uri: spec.uri.clone(),
        params,
        title: spec.title.clone(),
        description: spec.description.clone(),
        mime_type,
        labels: r.doc.metadata.labels.clone(),
        proc,
        tool,
    })
}

fn compile_prompt(p: &Located<PromptDoc>, diags: &mut Vec<Diagnostic>) -> Option<Prompt> {
    let before = diags.len();
    let mut declared: HashSet<String> = input_scope(p.doc.spec.arguments.keys());
    declared.extend(template::globals());
    let mut sink = HashSet::new();
    for (i, m) in p.doc.spec.messages.iter().enumerate() {
        let ptr = format!("/spec/messages/{i}");
        match (&m.text, &m.content) {
            (Some(text), None) => check_template(
                &p.src,
                &format!("{ptr}/text"),
                text,
                false,
                &declared,
                &HashSet::new(),
                &mut sink,
                diags,
            ),
            (None, Some(c)) => {
                let tree = serde_json::to_value(c).expect("serializes");
                check_json_templates(&p.src, &format!("{ptr}/content"), &tree, &declared, diags)
            }
            _ => diags.push(p.src.diag(&ptr, "a prompt message needs exactly one of `text` or `content`", None)),
        }
    }
    if diags.len() > before {
        return None;
    }
    let mut templates = template::Templates::default();
    let mut bodies = Vec::new();
    for (i, m) in p.doc.spec.messages.iter().enumerate() {
        let ptr = format!("/spec/messages/{i}");
        let body = match (&m.text, &m.content) {
            (Some(text), _) => templates
                .add(template::Mode::Request, &format!("{ptr}/text"), text)
                .map(|_| PromptBody::Text(format!("{ptr}/text"))),
            (None, Some(c)) => templates
                .tree(template::Mode::Request, &format!("{ptr}/content"), &serde_json::to_value(c).expect("serializes"))
                .map(PromptBody::Content),
            (None, None) => continue,
        };
        match body {
            Ok(b) => bodies.push(b),
            Err(e) => {
                diags.push(p.src.diag(&ptr, format!("prompt message does not compile: {e}"), None));
                return None;
            }
        }
    }
    Some(Prompt {
        name: p.doc.metadata.name.clone(),
        labels: p.doc.metadata.labels.clone(),
        spec: p.doc.spec.clone(),
        bodies,
        templates,
    })
}

pub use crate::spec::merge_patch;

fn compile_mode(
    m: &Located<crate::spec::model::ModeDoc>,
    backends: &IndexMap<String, BackendBinding>,
    names: &DocNames,
    diags: &mut Vec<Diagnostic>,
) -> Option<Mode> {
    let before = diags.len();
    let mut enabled = IndexMap::new();
    for (name, overrides) in &m.doc.spec.backends {
        let ptr = format!("/spec/backends/{}", pointer_segment(name));
        let Some(binding) = backends.get(name) else {
            diags.push(m.src.diag(
                &ptr,
                format!("mode enables unknown backend `{name}`"),
                Some(known_backends(backends, None)),
            ));
            continue;
        };
        let mut raw = binding.raw.clone();
        if !overrides.is_null() {
            merge_patch(&mut raw, overrides);
        }
        match serde_json::from_value::<BackendSpec>(raw) {
            Ok(spec) => {
                enabled.insert(name.clone(), spec);
            }
            Err(e) => diags.push(m.src.diag(&ptr, format!("override of backend `{name}` is invalid: {e}"), None)),
        }
    }
    // `server` bindings describe this process: every mode has them. Bindings carrying the
    // mode's `backendLabels` join it as they are (a model added as one YAML file).
    let labels = &m.doc.spec.backend_labels;
    for (name, b) in backends {
        let labelled = !labels.is_empty() && labels.iter().all(|(k, v)| b.labels.get(k) == Some(v));
        if (matches!(b.spec, BackendSpec::Server(_)) || labelled) && !enabled.contains_key(name) {
            enabled.insert(name.clone(), b.spec.clone());
        }
    }
    let sets: [(&str, &crate::spec::model::SelectorSpec, &HashSet<String>); 4] = [
        ("tools", &m.doc.spec.tools, &names.tools),
        ("resources", &m.doc.spec.resources, &names.resources),
        ("prompts", &m.doc.spec.prompts, &names.prompts),
        ("routes", &m.doc.spec.routes, &names.routes),
    ];
    for (key, sel, known) in sets {
        if sel.optional {
            continue;
        }
        for (i, n) in sel.include.iter().enumerate() {
            if n != "*" && !known.contains(n) {
                diags.push(m.src.diag_in_value(
                    &format!("/spec/{key}/include/{i}"),
                    format!("mode includes unknown {} `{n}`", &key[..key.len() - 1]),
                    Some(format!("define it, remove it, or set `{key}.optional: true` if a later catalogue adds it")),
                ));
            }
        }
    }
    (diags.len() == before).then(|| Mode {
        name: m.doc.metadata.name.clone(),
        spec: m.doc.spec.clone(),
        backends: enabled,
    })
}

/// Group diagnostics count by file, for summaries.
pub fn summary(diags: &[Diagnostic]) -> String {
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    let files: BTreeMap<&PathBuf, usize> = errors.iter().fold(BTreeMap::new(), |mut m, d| {
        *m.entry(&d.file).or_default() += 1;
        m
    });
    let warnings = diags.len() - errors.len();
    format!(
        "{} problem{} in {} file{}{}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        match warnings {
            0 => String::new(),
            1 => " (and 1 warning)".into(),
            n => format!(" (and {n} warnings)"),
        }
    )
}

/// Load the given paths, or the embedded catalogue when `paths` is None.
pub fn load_paths_or_embedded(paths: Option<&[PathBuf]>) -> Result<Registry, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let loaded = match paths {
        Some(p) => crate::spec::load::load(p, &mut diags),
        None => crate::spec::embedded::load(&mut diags),
    };
    let registry = compile(loaded, &mut diags);
    finish(registry, diags)
}
