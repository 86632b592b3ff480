//! The shipped specs and schemas stay valid and in sync.

use std::path::{Path, PathBuf};

use cluster_health_mcp::engine::compile;
use cluster_health_mcp::spec::schema;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fmt(d: Vec<cluster_health_mcp::spec::Diagnostic>) -> String {
    d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
}

#[test]
fn committed_schemas_equal_what_the_code_generates() {
    let drift = schema::drift(&root().join("schemas"));
    assert!(drift.is_empty(), "schemas/ drifted: {drift:?}; run `cargo run -- schema --write schemas`");
}

#[test]
fn shipped_catalogue_validates_and_every_mode_activates() {
    let reg = compile::load_registry(&[root().join("tools.d"), root().join("modes")])
        .unwrap_or_else(|d| panic!("{}", fmt(d)));
    for mode in ["standalone", "monitoring", "full"] {
        assert!(reg.modes.contains_key(mode), "mode {mode} is shipped");
    }
}

#[test]
fn embedded_catalogue_matches_the_files() {
    let embedded = compile::load_paths_or_embedded(None).unwrap_or_else(|d| panic!("{}", fmt(d)));
    let files = compile::load_registry(&[root().join("tools.d"), root().join("modes")]).unwrap();
    let names = |r: &cluster_health_mcp::engine::Registry| {
        (
            r.tools.keys().cloned().collect::<Vec<_>>(),
            r.resources.keys().cloned().collect::<Vec<_>>(),
            r.prompts.keys().cloned().collect::<Vec<_>>(),
        )
    };
    assert_eq!(names(&embedded), names(&files));
}

/// Every YAML example in the repository (fixtures included) parses; those not meant to be
/// broken validate.
#[test]
fn every_example_yaml_in_the_repo_validates() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(p);
            }
        }
    }
    let mut dirs = Vec::new();
    walk(&root().join("tests"), &mut dirs);
    // Spec files are the YAML documents of our apiVersion; group them by directory (a
    // directory's files may refer to each other), skipping the deliberately broken ones.
    let mut by_dir: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    for f in dirs {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        // *-bad.in and hostile/ are meant to be refused (tests/cli.rs, tests/hostile.rs).
        let broken =
            f.components().any(|c| c.as_os_str().to_string_lossy().ends_with("-bad.in") || c.as_os_str() == "hostile");
        if text.contains("apiVersion: cluster-health-mcp/v1") && !broken {
            by_dir.entry(f.parent().unwrap().to_path_buf()).or_default().push(f);
        }
    }
    assert!(by_dir.len() >= 3, "found spec fixtures in {by_dir:?}");
    for (dir, mut files) in by_dir {
        // Fixtures may use the shipped backend bindings (modes/backends.yaml).
        if !files.iter().any(|f| std::fs::read_to_string(f).unwrap_or_default().contains("kind: Backend")) {
            files.push(root().join("modes/backends.yaml"));
        }
        if let Err(d) = compile::load_registry(&files) {
            panic!("{} does not validate:\n{}", dir.display(), fmt(d));
        }
    }
}

#[test]
fn modes_select_by_label_and_exclude_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mode.yaml"),
        "apiVersion: cluster-health-mcp/v1\nkind: Mode\nmetadata: {name: core-only}\nspec:\n  backends: {kubernetes: {}, prometheus: {}}\n  tools: {labels: {toolset: core}, exclude: [get-pod-logs]}\n",
    )
    .unwrap();
    let reg =
        compile::load_registry(&[root().join("tools.d"), root().join("modes"), dir.path().to_path_buf()]).unwrap();
    let active = cluster_health_mcp::engine::Active::new(std::sync::Arc::new(reg), "core-only").unwrap();
    assert!(active.tools.contains_key("list-pods"));
    assert!(!active.tools.contains_key("get-pod-logs"), "excluded by name");
    assert!(!active.tools.contains_key("list-alerts"), "monitoring tools lack the label");
    let why = active.exposure.iter().find(|e| e.name == "list-alerts").unwrap();
    assert_eq!(why.reason, "lacks label toolset=core");
}
