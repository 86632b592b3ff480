//! Hostile specs (tests/hostile/*.yaml) try to get model-chosen text into a request past the
//! escaping rules, one class each. `validate` must refuse every one with a located message
//! that names the input (or step) the attack goes through; the shipped catalogue and every
//! spec fixture must still validate.

use std::path::{Path, PathBuf};

use cluster_health_mcp::engine::compile;
use cluster_health_mcp::spec::Diagnostic;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn hostile_specs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/hostile"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The `# expect: NAME` line: the input or step the refusal must name.
fn expected_name(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.starts_with("# Tries: "), "{} must start with a `# Tries:` comment", file.display());
    text.lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()))
        .trim()
        .to_string()
}

fn diagnostics(file: &Path) -> Vec<Diagnostic> {
    match compile::load_registry(&[file.to_path_buf(), root().join("modes/backends.yaml")]) {
        Ok(_) => Vec::new(),
        Err(d) => d,
    }
}

#[test]
fn there_is_a_hostile_spec_for_every_class_and_at_least_24() {
    assert!(hostile_specs().len() >= 24, "found {}", hostile_specs().len());
}

#[test]
fn validate_refuses_every_hostile_spec_with_a_located_message_naming_the_input() {
    let mut failures = Vec::new();
    for file in hostile_specs() {
        let name = expected_name(&file);
        let diags = diagnostics(&file);
        let hit = diags.iter().find(|d| {
            d.file == file
                && d.pos.line > 0
                && d.path.starts_with("spec.steps.")
                && d.message.contains("(template line ")
                && d.message.contains(&format!("`{name}`"))
        });
        match hit {
            Some(d) => eprintln!("refused {}: {d}", file.file_name().unwrap().to_string_lossy()),
            None => failures.push(format!(
                "{}: no located refusal naming `{name}`; got:\n{}",
                file.display(),
                diags.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n")
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn hostile_specs_are_refused_only_for_their_requests() {
    // Each file is otherwise valid: removing the steps leaves nothing to refuse, so the
    // refusal above comes from the request lint, not from a typo in the fixture.
    for file in hostile_specs() {
        for d in diagnostics(&file) {
            assert!(d.path.starts_with("spec.steps."), "{}: unexpected problem {d}", file.display());
        }
    }
}

#[test]
fn the_shipped_catalogue_and_every_spec_fixture_still_validate() {
    compile::load_registry(&[root().join("tools.d"), root().join("modes")])
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    for dir in ["tests/prometheus/specs", "tests/python/specs", "tests/kube_writes"] {
        compile::load_registry(&[root().join(dir), root().join("modes/backends.yaml")])
            .unwrap_or_else(|d| panic!("{dir}: {}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    }
    for files in [vec!["tests/cmd/demo.in/specs"], vec!["tests/conformance/catalogue.yaml", "modes/backends.yaml"]] {
        compile::load_registry(&files.iter().map(|f| root().join(f)).collect::<Vec<_>>()).unwrap_or_else(|d| {
            panic!("{files:?}: {}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))
        });
    }
}

#[test]
fn output_templates_keep_the_full_template_language() {
    // Only request fields are restricted: the output may loop, set, define macros and read
    // step results freely (it is text for the model, not a request).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tool.yaml"),
        r#"apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: output-language}
spec:
  description: Output templates use loops, set, macros and namespace().
  input:
    job: {type: string, default: ""}
  steps:
    up:
      prometheus: {query: 'up{job={{ job | promql_string }}}'}
  output:
    structured:
      series: up.result
    text: |
      {% set ns = namespace(n=0) %}{% macro row(s, sep=', ') %}{{ s.metric.instance }}{{ sep }}{% endmacro %}
      {%- for s in series %}{% set ns.n = ns.n + 1 %}{{ row(s) }}{{ loop.nextitem.metric.job if loop.nextitem }}{% endfor %}
      {{ ns.n }} series for {{ job }}
"#,
    )
    .unwrap();
    compile::load_registry(&[dir.path().to_path_buf(), root().join("modes/backends.yaml")])
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
}
