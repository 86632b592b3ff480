//! JSON Schemas of the spec kinds, generated from the raw model (one source of truth).
//!
//! The committed files under `schemas/` are what editors use
//! (`# yaml-language-server: $schema=...`); `schema --check` and a test fail when they
//! drift from the code.

use std::path::Path;
use std::sync::LazyLock;

use serde_json::Value;

use super::model::{BackendDoc, LibraryDoc, ModeDoc, PromptDoc, ResourceDoc, RouteDoc, ToolDoc, WorkflowDoc};

/// The document kinds, in the order they are documented.
pub const KINDS: [&str; 8] = ["Tool", "Resource", "Prompt", "Library", "Backend", "Mode", "Workflow", "Route"];

/// The JSON Schema of one kind.
pub fn generate(kind: &str) -> Value {
    let schema = match kind {
        "Tool" => schemars::schema_for!(ToolDoc),
        "Resource" => schemars::schema_for!(ResourceDoc),
        "Prompt" => schemars::schema_for!(PromptDoc),
        "Library" => schemars::schema_for!(LibraryDoc),
        "Backend" => schemars::schema_for!(BackendDoc),
        "Mode" => schemars::schema_for!(ModeDoc),
        "Workflow" => schemars::schema_for!(WorkflowDoc),
        "Route" => schemars::schema_for!(RouteDoc),
        other => panic!("no schema for kind {other}"),
    };
    let mut v = serde_json::to_value(schema).expect("schema serializes");
    if let Some(obj) = v.as_object_mut() {
        obj.insert("$id".into(), Value::String(format!("https://cluster-health-mcp.dev/schemas/{}", file_name(kind))));
    }
    v
}

/// File name of a kind's schema under `schemas/`.
pub fn file_name(kind: &str) -> String {
    format!("{}.schema.json", kind.to_lowercase())
}

/// The schema files as (file name, pretty JSON text).
pub fn rendered() -> Vec<(String, String)> {
    KINDS
        .iter()
        .map(|k| {
            let mut text = serde_json::to_string_pretty(&generate(k)).expect("schema serializes");
            text.push('\n');
            (file_name(k), text)
        })
        .collect()
}

/// Write the schema files into `dir`.
pub fn write(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in rendered() {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

/// Names of schema files in `dir` that are missing or differ from the code.
pub fn drift(dir: &Path) -> Vec<String> {
    rendered()
        .into_iter()
        .filter(|(name, text)| std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(text.as_str()))
        .map(|(name, _)| name)
        .collect()
}

struct Compiled {
    kind: &'static str,
    schema: Value,
    validator: jsonschema::Validator,
}

static VALIDATORS: LazyLock<Vec<Compiled>> = LazyLock::new(|| {
    KINDS
        .iter()
        .map(|&kind| {
            let schema = generate(kind);
            let validator = jsonschema::validator_for(&schema).expect("generated schema compiles");
            Compiled { kind, schema, validator }
        })
        .collect()
});

/// The compiled validator and schema of a kind.
pub fn validator(kind: &str) -> (&'static jsonschema::Validator, &'static Value) {
    let c = VALIDATORS.iter().find(|c| c.kind == kind).expect("known kind");
    (&c.validator, &c.schema)
}
