//! Located validation problems.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::yaml::{Pos, YamlDoc};

/// One problem found in a spec, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line and column.
    pub pos: Pos,
    /// YAML path of the offending node (e.g. `spec.steps.pods.http.path`).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// An error stops the specs from loading; a warning only tells.
    pub severity: Severity,
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Severity {
    /// The document does not load.
    #[default]
    Error,
    /// The document loads, but something in it looks wrong (e.g. a field nothing reads).
    Warning,
}

impl Diagnostic {
    /// The same diagnostic as a warning.
    pub fn warning(self) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..self }
    }

    /// Whether it stops the specs from loading.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}:{}: {level}: {}", self.file.display(), self.pos.line, self.pos.col, self.message)?;
        if !self.path.is_empty() {
            write!(f, "\n    at {}", self.path)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// A parsed document and the file it came from: enough to locate any later diagnostic.
#[derive(Debug)]
pub struct Source {
    pub file: PathBuf,
    pub yaml: YamlDoc,
}

impl Source {
    /// A diagnostic at a JSON pointer within this document.
    pub fn diag(&self, pointer: &str, message: impl Into<String>, hint: Option<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            pos: self.yaml.locate(pointer),
            path: yaml_path(pointer),
            message: message.into(),
            hint,
            severity: Severity::Error,
        }
    }

    /// A diagnostic at the value (not the key) of a JSON pointer, with an offset in columns
    /// and lines inside a template string when known.
    pub fn diag_in_value(&self, pointer: &str, message: impl Into<String>, hint: Option<String>) -> Diagnostic {
        let mut d = self.diag(pointer, message, hint);
        d.pos = self.yaml.locate_value(pointer);
        d
    }
}

/// Shared handle to a source.
pub type SourceRef = Arc<Source>;

/// `/spec/steps/0/http` -> `spec.steps[0].http`.
pub fn yaml_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

/// A diagnostic for a whole file (I/O or syntax problems).
pub fn file_diag(file: &Path, pos: Pos, message: impl Into<String>, hint: Option<String>) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        pos,
        path: String::new(),
        message: message.into(),
        hint,
        severity: Severity::Error,
    }
}
