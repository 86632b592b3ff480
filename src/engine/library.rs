//! Shared spec libraries (`kind: Library`): named expressions and text macros, compiled once
//! and called from any template of a document that imports them (`k8s.node_counts(xs)`).
//!
//! A library is a map of callable values put in the scope under the library's name. A
//! definition sees only its parameters, the libraries its library imports, and the
//! definitions before it in its own library: no recursion, no access to the caller's inputs.
//! Request templates may call expression definitions; the lint inlines them (see
//! `lint::LibraryDef`) so the proof that requests are safe covers what they emit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::Rest;
use minijinja::{Environment, Error, ErrorKind, Value};

use super::compile::check_template;
use super::lint;
use super::template::{self, CompiledExpr};
use crate::spec::diagnostic::{Diagnostic, Source};
use crate::spec::load::{Located, did_you_mean};
use crate::spec::model::LibraryDoc;
use crate::spec::yaml::pointer_segment;

/// A compiled library.
pub struct Library {
    pub name: String,
    pub description: Option<String>,
    /// Definitions in order: parameters, source, kind.
    pub defs: IndexMap<String, Definition>,
    /// The callable values by definition name, as templates see them.
    pub namespace: Value,
}

/// One definition, as written.
pub struct Definition {
    pub params: Vec<String>,
    pub source: String,
    /// A text macro (renders a template) rather than an expression.
    pub text: bool,
    pub description: Option<String>,
}

/// Compile every library, each once, imports first. Problems go to `diags`; a library that
/// does not compile is left out (documents importing it then report it as unknown).
pub fn compile_all(docs: &[Located<LibraryDoc>], diags: &mut Vec<Diagnostic>) -> IndexMap<String, Arc<Library>> {
    let by_name: HashMap<&str, &Located<LibraryDoc>> = docs.iter().map(|d| (d.doc.metadata.name.as_str(), d)).collect();
    let mut done: IndexMap<String, Arc<Library>> = IndexMap::new();
    let mut failed = HashSet::new();
    for d in docs {
        build(&d.doc.metadata.name, &by_name, &mut Vec::new(), &mut done, &mut failed, diags);
    }
    done
}

fn build(
    name: &str,
    docs: &HashMap<&str, &Located<LibraryDoc>>,
    visiting: &mut Vec<String>,
    done: &mut IndexMap<String, Arc<Library>>,
    failed: &mut HashSet<String>,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    if done.contains_key(name) {
        return true;
    }
    if failed.contains(name) {
        return false;
    }
    let Some(doc) = docs.get(name) else { return false };
    let (src, spec) = (&doc.src, &doc.doc.spec);
    visiting.push(name.to_string());
    let before = diags.len();
    for (i, import) in spec.imports.iter().enumerate() {
        let ptr = format!("/spec/imports/{i}");
        if visiting.iter().any(|v| v == import) {
            diags.push(
                src.diag_in_value(
                    &ptr,
                    format!(
                        "library `{name}` imports `{import}`, which imports it back ({} -> {import})",
                        visiting.join(" -> ")
                    ),
                    Some(
                        "libraries may not import each other in a cycle; move the shared definitions into a third one"
                            .into(),
                    ),
                ),
            );
        } else if !docs.contains_key(import.as_str()) {
            diags.push(unknown_library(src, &ptr, import, docs.keys().copied()));
        } else if !build(import, docs, visiting, done, failed, diags) {
            diags.push(src.diag_in_value(&ptr, format!("imported library `{import}` has errors"), None));
        }
    }
    visiting.pop();
    if diags.len() > before {
        failed.insert(name.to_string());
        return false;
    }
    match compile_library(doc, done, diags) {
        Some(lib) => {
            done.insert(name.to_string(), Arc::new(lib));
            true
        }
        None => {
            failed.insert(name.to_string());
            false
        }
    }
}

fn compile_library(
    doc: &Located<LibraryDoc>,
    done: &IndexMap<String, Arc<Library>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Library> {
    let (src, spec, name) = (&doc.src, &doc.doc.spec, doc.doc.metadata.name.as_str());
    let before = diags.len();
    let mut env: Environment<'static> = template::shaping_env().clone();
    // What a definition sees: imported libraries, and its own library's earlier definitions.
    let scope: BTreeMap<String, Value> =
        spec.imports.iter().filter_map(|i| Some((i.clone(), done.get(i)?.namespace.clone()))).collect();
    let mut own: BTreeMap<String, Value> = BTreeMap::new();
    let mut defs = IndexMap::new();
    for (def_name, def) in &spec.define {
        let ptr = format!("/spec/define/{}", pointer_segment(def_name));
        let (source, text, at) = match (&def.value, &def.text) {
            (Some(v), None) => (v, false, format!("{ptr}/value")),
            (None, Some(t)) => (t, true, format!("{ptr}/text")),
            _ => {
                diags.push(src.diag(
                    &ptr,
                    format!("definition `{def_name}` needs exactly one of `value` (an expression) or `text` (a macro)"),
                    None,
                ));
                continue;
            }
        };
        let mut declared: HashSet<String> = def.params.iter().cloned().collect();
        declared.extend(spec.imports.iter().filter_map(|i| done.get(i)).flat_map(|l| visible_names(l)));
        declared.extend(library_marks(name));
        declared.extend(defs.keys().map(|d| format!("{name}.{d}")));
        declared.extend(template::globals());
        let checked = diags.len();
        check_template(src, &at, source, !text, &declared, &HashSet::new(), &mut HashSet::new(), diags);
        if diags.len() > checked {
            continue;
        }
        let body = if text {
            env.add_template_owned(def_name.clone(), source.clone()).ok().map(|_| Body::Text(def_name.clone()))
        } else {
            template::compile_shaping_expr(source).ok().map(|e| Body::Expr(Box::new(e)))
        };
        let Some(body) = body else { continue };
        let mut sees = scope.clone();
        sees.insert(name.to_string(), Value::from(own.clone()));
        own.insert(def_name.clone(), callable(format!("{name}.{def_name}"), def.params.clone(), body, sees, &env));
        defs.insert(
            def_name.clone(),
            Definition {
                params: def.params.clone(),
                source: source.clone(),
                text,
                description: def.description.clone(),
            },
        );
    }
    (diags.len() == before).then(|| Library {
        name: name.to_string(),
        description: spec.description.clone(),
        defs,
        namespace: Value::from(own),
    })
}

enum Body {
    Expr(Box<CompiledExpr>),
    /// A template by its name in the library's environment.
    Text(String),
}

/// A callable value: binds the arguments to the parameters and evaluates the body.
fn callable(
    label: String,
    params: Vec<String>,
    body: Body,
    sees: BTreeMap<String, Value>,
    env: &Environment<'static>,
) -> Value {
    let env = Arc::new(env.clone());
    Value::from_function(move |args: Rest<Value>| -> Result<Value, Error> {
        if args.len() > params.len() {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                format!("{label} takes {} argument(s) ({}), got {}", params.len(), params.join(", "), args.len()),
            ));
        }
        let mut ctx = sees.clone();
        for (i, p) in params.iter().enumerate() {
            ctx.insert(p.clone(), args.get(i).cloned().unwrap_or(Value::from(())));
        }
        let ctx = Value::from(ctx);
        let out = match &body {
            Body::Expr(e) => e.eval(&ctx),
            Body::Text(name) => env.get_template(name).and_then(|t| t.render(&ctx)).map(Value::from),
        };
        out.map_err(|e| {
            Error::new(e.kind(), format!("in {label}: {}", e.detail().map(str::to_owned).unwrap_or(e.to_string())))
        })
    })
}

/// The diagnostic for an import of a library that does not exist.
pub fn unknown_library<'a>(src: &Source, ptr: &str, name: &str, known: impl Iterator<Item = &'a str>) -> Diagnostic {
    let mut known: Vec<&str> = known.collect();
    known.sort();
    let hint = match did_you_mean(name, &known) {
        Some(s) => format!("did you mean `{s}`? known libraries: {}", known.join(", ")),
        None if known.is_empty() => "no library is defined; add a `kind: Library` document".into(),
        None => format!("known libraries: {}", known.join(", ")),
    };
    src.diag_in_value(ptr, format!("unknown library `{name}`"), Some(hint))
}

/// The names a library makes visible to a template that imports it: the library itself and
/// `lib.def` for every definition (`check_template` reports calls of other definitions).
pub fn visible_names(lib: &Library) -> impl Iterator<Item = String> + '_ {
    library_marks(&lib.name).into_iter().chain(lib.defs.keys().map(|d| format!("{}.{d}", lib.name)))
}

/// A library's name, and `name.` which tells `check_template` that it is a library.
pub fn library_marks(name: &str) -> [String; 2] {
    [name.to_string(), format!("{name}.")]
}

/// What the request lint needs of the imported libraries: every expression definition by
/// library, and the libraries each library sees.
pub fn lint_table(libraries: &IndexMap<String, Arc<Library>>) -> HashMap<String, HashMap<String, lint::LibraryDef>> {
    libraries
        .iter()
        .map(|(lib, l)| {
            let defs = l
                .defs
                .iter()
                .map(|(n, d)| {
                    (
                        n.clone(),
                        lint::LibraryDef { params: d.params.clone(), expr: (!d.text).then(|| d.source.clone()) },
                    )
                })
                .collect();
            (lib.clone(), defs)
        })
        .collect()
}
