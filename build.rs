//! Embed the shipped catalogue (tools.d/ and modes/) and the demo cluster snapshot, so the
//! binary serves a working default with no files beside it.

use std::fmt::Write;
use std::path::Path;

/// Files under `dir` (recursively, in name order) that `keep` accepts.
fn collect(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, keep, out);
        } else if keep(&p) {
            out.push(p.to_string_lossy().into_owned());
        }
    }
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e))
}

/// Write `name` in OUT_DIR: a `FILES` table of (path relative to `base`, contents).
fn embed(name: &str, doc: &str, base: &Path, files: &[String]) {
    let mut code = format!("/// {doc}\npub const FILES: &[(&str, &str)] = &[\n");
    for f in files {
        let rel = Path::new(f).strip_prefix(base).unwrap().to_string_lossy().into_owned();
        writeln!(code, "    ({rel:?}, include_str!({f:?})),").unwrap();
    }
    code.push_str("];\n");
    std::fs::write(Path::new(&std::env::var("OUT_DIR").unwrap()).join(name), code).unwrap();
}

fn main() {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());

    let mut specs = Vec::new();
    for d in ["tools.d", "modes"] {
        println!("cargo:rerun-if-changed={d}");
        collect(&root.join(d), &|p| has_ext(p, &["yaml", "yml"]), &mut specs);
    }
    embed("embedded.rs", "(path relative to the repository, contents) of every embedded spec file.", &root, &specs);

    // The demo cluster: manifests, logs and the capture `timestamp`.
    let demo = root.join("tests/snapshots/demo-cluster");
    println!("cargo:rerun-if-changed=tests/snapshots/demo-cluster");
    let mut snap = Vec::new();
    let keep =
        |p: &Path| has_ext(p, &["yaml", "yml", "json", "log"]) || p.file_name().is_some_and(|n| n == "timestamp");
    collect(&demo, &keep, &mut snap);
    embed("demo_snapshot.rs", "(path relative to the snapshot, contents) of the demo cluster.", &demo, &snap);
}
