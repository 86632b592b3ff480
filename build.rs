//! Embed the shipped catalogue (tools.d/ and modes/) so the binary serves a working
//! default with no files beside it.

use std::fmt::Write;
use std::path::Path;

fn collect(dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p.to_string_lossy().into_owned());
        }
    }
}

fn collect_all(dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_all(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json" | "log"))
            || p.file_name().is_some_and(|n| n == "timestamp")
        {
            out.push(p.to_string_lossy().into_owned());
        }
    }
}

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let mut files = Vec::new();
    for d in ["tools.d", "modes"] {
        println!("cargo:rerun-if-changed={d}");
        collect(&Path::new(&root).join(d), &mut files);
    }
    let mut code = String::from(
        "/// (path relative to the repository, contents) of every embedded spec file.\npub const FILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        let rel = Path::new(f).strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        writeln!(code, "    ({rel:?}, include_str!({f:?})),").unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).to_path_buf();
    std::fs::write(out.join("embedded.rs"), code).unwrap();

    // The demo cluster snapshot, embedded so the default mode needs no cluster.
    let demo = Path::new(&root).join("tests/snapshots/demo-cluster");
    println!("cargo:rerun-if-changed=tests/snapshots/demo-cluster");
    let mut snap = Vec::new();
    collect_all(&demo, &mut snap);
    let mut code = String::from(
        "/// (path relative to the snapshot, contents) of the demo cluster.\npub const FILES: &[(&str, &str)] = &[\n",
    );
    for f in &snap {
        let rel = Path::new(f).strip_prefix(&demo).unwrap().to_string_lossy().into_owned();
        writeln!(code, "    ({rel:?}, include_str!({f:?})),").unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out.join("demo_snapshot.rs"), code).unwrap();
}
