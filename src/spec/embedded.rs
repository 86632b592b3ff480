//! The catalogue compiled into the binary (tools.d/ and modes/ at build time).

use std::path::{Path, PathBuf};

use super::Diagnostic;
use super::load::{Loaded, load_str};

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// Load the embedded catalogue; paths read `embedded:tools.d/...`.
pub fn load(diags: &mut Vec<Diagnostic>) -> Loaded {
    let mut loaded = Loaded::default();
    for (path, text) in FILES {
        let file = PathBuf::from(format!("embedded:{path}"));
        load_str(Path::new(&file), text, &mut loaded, diags);
        loaded.files.push(file);
    }
    loaded
}
