//! Find spec files, parse them and check each document against its kind's JSON Schema.
//!
//! Layers 1 and 2 of validation: YAML syntax, then schema (unknown fields, wrong types,
//! missing fields), each problem located. Documents that pass are deserialized into the
//! raw model; cross-document checks happen in `compile`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::diagnostic::{Diagnostic, Source, SourceRef, file_diag};
use super::model::{BackendDoc, LibraryDoc, ModeDoc, PromptDoc, ResourceDoc, RouteDoc, ToolDoc, WorkflowDoc};
use super::schema::{KINDS, validator};
use super::yaml::{self, Pos, pointer_segment};

/// A deserialized document and where it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub doc: T,
    pub src: SourceRef,
}

/// Every valid document found, by kind.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    pub tools: Vec<Located<ToolDoc>>,
    pub resources: Vec<Located<ResourceDoc>>,
    pub prompts: Vec<Located<PromptDoc>>,
    pub libraries: Vec<Located<LibraryDoc>>,
    pub backends: Vec<Located<BackendDoc>>,
    pub modes: Vec<Located<ModeDoc>>,
    pub workflows: Vec<Located<WorkflowDoc>>,
    pub routes: Vec<Located<RouteDoc>>,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
}

/// List spec files under the given paths (files are taken as they are; directories are
/// walked recursively in name order, skipping hidden entries such as ConfigMap `..data`).
pub fn spec_files(paths: &[PathBuf], diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut out, diags);
        } else if path.exists() {
            out.push(path.clone());
        } else {
            diags.push(file_diag(
                path,
                Pos { line: 0, col: 0 },
                "spec path does not exist",
                Some("pass existing files or directories, or set --specs".into()),
            ));
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, diags: &mut Vec<Diagnostic>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            diags.push(file_diag(dir, Pos::default(), format!("cannot read directory: {e}"), None));
            return;
        }
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out, diags);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(path);
        }
    }
}

/// Load every document under `paths`, collecting all problems.
pub fn load(paths: &[PathBuf], diags: &mut Vec<Diagnostic>) -> Loaded {
    let mut loaded = Loaded::default();
    for file in spec_files(paths, diags) {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                diags.push(file_diag(&file, Pos::default(), format!("cannot read file: {e}"), None));
                continue;
            }
        };
        load_str(&file, &text, &mut loaded, diags);
        loaded.files.push(file);
    }
    loaded
}

/// Load the documents of one file's text (used for files and embedded specs).
pub fn load_str(file: &Path, text: &str, loaded: &mut Loaded, diags: &mut Vec<Diagnostic>) {
    let docs = match yaml::parse_documents(text) {
        Ok(d) => d,
        Err(e) => {
            diags.push(file_diag(file, e.pos, format!("YAML syntax error: {}", e.message), None));
            return;
        }
    };
    for yaml in docs {
        if yaml.value.is_null() {
            continue; // an empty document (e.g. a trailing `---`)
        }
        let src: SourceRef = Arc::new(Source { file: file.to_path_buf(), yaml });
        let kind = src.yaml.value.get("kind").and_then(Value::as_str).map(str::to_owned);
        match kind.as_deref() {
            Some("Tool") => push(&src, &mut loaded.tools, diags),
            Some("Resource") => push(&src, &mut loaded.resources, diags),
            Some("Prompt") => push(&src, &mut loaded.prompts, diags),
            Some("Library") => push(&src, &mut loaded.libraries, diags),
            Some("Backend") => push(&src, &mut loaded.backends, diags),
            Some("Mode") => push(&src, &mut loaded.modes, diags),
            Some("Workflow") => push(&src, &mut loaded.workflows, diags),
            Some("Route") => push(&src, &mut loaded.routes, diags),
            Some(other) => diags.push(src.diag(
                "/kind",
                format!("unknown kind `{other}`"),
                Some(format!("kind is one of: {}", KINDS.join(", "))),
            )),
            None => diags.push(src.diag(
                "",
                "document has no `kind`",
                Some(format!("add `apiVersion: cluster-health-mcp/v1` and `kind:` (one of {})", KINDS.join(", "))),
            )),
        }
    }
}

fn push<T: DeserializeOwned + 'static>(src: &SourceRef, into: &mut Vec<Located<T>>, diags: &mut Vec<Diagnostic>) {
    let kind = src.yaml.value["kind"].as_str().unwrap_or_default();
    let (validator, schema) = validator(kind);
    let mut failed = false;
    let mut unknown = Vec::new();
    for err in validator.iter_errors(&src.yaml.value) {
        failed = true;
        diags.extend(schema_diagnostics(src, schema, &err, &mut unknown));
    }
    if failed {
        // Keep checking the document without its unknown fields, so a misspelt field does not
        // hide the template and escaping problems of the rest (the schema errors still refuse
        // the specs).
        let mut repaired = src.yaml.value.clone();
        for pointer in unknown.iter().rev() {
            remove(&mut repaired, pointer);
        }
        if !unknown.is_empty()
            && validator.is_valid(&repaired)
            && let Ok(doc) = serde_json::from_value::<T>(repaired)
        {
            into.push(Located { doc, src: src.clone() });
        }
        return;
    }
    match serde_json::from_value::<T>(src.yaml.value.clone()) {
        Ok(doc) => into.push(Located { doc, src: src.clone() }),
        Err(e) => diags.push(src.diag("", format!("invalid {kind}: {e}"), None)),
    }
}

/// Remove the value at a JSON pointer.
fn remove(v: &mut Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else { return };
    let key = key.replace("~1", "/").replace("~0", "~");
    if let Some(Value::Object(m)) = v.pointer_mut(parent) {
        m.remove(&key);
    }
}

/// Turn one JSON Schema error into located diagnostics; the pointers of unknown fields are
/// added to `unknown`.
fn schema_diagnostics(
    src: &Source,
    schema: &Value,
    err: &jsonschema::ValidationError<'_>,
    unknown: &mut Vec<String>,
) -> Vec<Diagnostic> {
    use jsonschema::error::ValidationErrorKind as K;
    let pointer = err.instance_path().as_str().to_string();
    let schema_parent = parent_pointer(err.schema_path().as_str());
    let allowed = || {
        resolve_schema(schema, &schema_parent)
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
    };
    match err.kind() {
        K::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| {
                unknown.push(format!("{pointer}/{}", pointer_segment(name)));
                src.diag(
                    &format!("{pointer}/{}", pointer_segment(name)),
                    format!("unknown field `{name}`"),
                    allowed().map(|a| {
                        let names: Vec<&str> = a.split(", ").collect();
                        match did_you_mean(name, &names) {
                            Some(s) => format!("did you mean `{s}`? allowed fields here: {a}"),
                            None => format!("allowed fields here: {a}"),
                        }
                    }),
                )
            })
            .collect(),
        K::Required { property } => vec![src.diag(&pointer, format!("missing required field {property}"), None)],
        K::Type { .. } => {
            let expected = resolve_schema(schema, &schema_parent).and_then(|s| s.get("type")).map(|t| match t {
                Value::Array(ts) => {
                    ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect::<Vec<_>>().join(" or ")
                }
                other => other.as_str().unwrap_or_default().to_string(),
            });
            vec![src.diag_in_value(&pointer, format!("wrong type: {err}"), expected.map(|t| format!("expected {t}")))]
        }
        // An optional or untagged value failed every alternative: report the alternative
        // that got furthest (deepest errors), which is the one the author meant.
        K::AnyOf { context } | K::OneOfNotValid { context } if !context.is_empty() => {
            let depth = |branch: &Vec<jsonschema::ValidationError<'static>>| {
                branch.iter().map(|e| e.instance_path().as_str().matches('/').count()).max().unwrap_or(0)
            };
            // A branch that failed only on the value's JSON type (`null` for an optional value,
            // `string` for an expression-or-object) is not the one the author wrote.
            let wrong_type = |branch: &Vec<jsonschema::ValidationError<'static>>| {
                branch.len() == 1
                    && matches!(branch[0].kind(), K::Type { .. })
                    && branch[0].instance_path().as_str() == pointer
            };
            let candidates: Vec<&Vec<_>> = context.iter().filter(|b| !b.is_empty() && !wrong_type(b)).collect();
            let deepest = candidates.iter().copied().max_by_key(|b| depth(b));
            let fewest = candidates.iter().copied().min_by_key(|b| b.len());
            let best = match (deepest, fewest) {
                (Some(d), _) if depth(d) > pointer.matches('/').count() => Some(d),
                (_, Some(f))
                    if candidates.len() == 1 || candidates.iter().filter(|b| b.len() == f.len()).count() == 1 =>
                {
                    Some(f)
                }
                _ => None,
            };
            match best {
                Some(branch) => branch.iter().flat_map(|e| schema_diagnostics(src, schema, e, unknown)).collect(),
                None => vec![src.diag_in_value(&pointer, err.to_string(), None)],
            }
        }
        _ => vec![src.diag_in_value(&pointer, err.to_string(), None)],
    }
}

fn parent_pointer(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => p[..i].to_string(),
        None => String::new(),
    }
}

/// Follow a schema pointer, stepping through `$ref`s to `#/$defs/...` where needed.
fn resolve_schema<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut node = root;
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        node = deref(root, node);
        node = match node {
            Value::Object(m) => m.get(&seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(deref(root, node))
}

fn deref<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
        Some(p) => root.pointer(p).unwrap_or(node),
        None => node,
    }
}

/// The closest candidate to a misspelt name, if one is close enough.
pub fn did_you_mean<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(name, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
