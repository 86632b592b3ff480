//! REST routes served from `kind: Route` specs: a method and path bound to a tool, the
//! request mapped to its arguments and its result to a status and body, on the same
//! listener as /mcp and behind the same guards. Nothing here knows what a tool does.

pub mod compile;
pub mod openapi;
pub mod serve;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::engine::registry::Tool;
use crate::engine::template::{CompiledExpr, Templates, Tree};
use crate::spec::model::{FailureSpec, HttpMethodSpec};

/// One segment of a route path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Literal text.
    Literal(String),
    /// A `{name}` variable: one whole segment.
    Var(String),
}

/// Where a request value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    Path,
    Query,
    Header,
    Body,
}

/// A compiled route.
pub struct Route {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub method: HttpMethodSpec,
    /// The path as written.
    pub path: String,
    pub segments: Vec<Segment>,
    pub tool: Arc<Tool>,
    pub summary: Option<String>,
    pub description: Option<String>,
    /// Tool input -> expression over the request.
    pub arguments: Vec<(String, CompiledExpr)>,
    /// Request values the route reads, with the JSON Schema each is converted to (the
    /// schema of the input it feeds) and whether the tool needs it.
    pub params: BTreeMap<(Origin, String), Param>,
    /// Whether the route reads the body at all.
    pub reads_body: bool,
    /// Body field -> its other spelling (read as the field; both at once are refused).
    pub aliases: Vec<(String, String)>,
    pub response: Response,
    pub errors: Vec<ErrorResponse>,
    /// Compiled text templates of the response and error bodies.
    pub templates: Templates,
}

/// A request value a route reads.
#[derive(Debug, Clone)]
pub struct Param {
    /// JSON Schema of the value (that of the input it feeds; `{}` when read otherwise).
    pub schema: Value,
    /// The request must carry it (a required input fed by this value alone).
    pub required: bool,
}

/// The success response.
pub struct Response {
    pub status: Status,
    /// Further statuses an expression may yield.
    pub statuses: Vec<u16>,
    pub content_type: String,
    /// The body; None: the structured result.
    pub body: Option<Tree>,
    /// JSON Schema of the body (for OpenAPI).
    pub schema: Value,
}

/// A status: fixed, or computed.
pub enum Status {
    Code(u16),
    Expr(Box<CompiledExpr>),
}

/// One compiled error response.
pub struct ErrorResponse {
    /// Failures it answers (empty: any).
    pub on: Vec<FailureSpec>,
    pub when: Option<CompiledExpr>,
    pub status: u16,
    pub content_type: String,
    /// The body; None: `{status: error, error: MESSAGE}`.
    pub body: Option<Tree>,
    pub schema: Value,
}

impl Route {
    /// Path variables when `segments` match the request path's segments (decoded).
    pub fn match_path(&self, path: &[String]) -> Option<Vec<(String, String)>> {
        if path.len() != self.segments.len() {
            return None;
        }
        let mut vars = Vec::new();
        for (seg, given) in self.segments.iter().zip(path) {
            match seg {
                Segment::Literal(l) if l == given => {}
                Segment::Literal(_) => return None,
                Segment::Var(_) if given.is_empty() => return None,
                Segment::Var(v) => vars.push((v.clone(), given.clone())),
            }
        }
        Some(vars)
    }

    /// Literal segments rank before variables: `/workflows/history` wins over `/workflows/{id}`.
    pub fn specificity(&self) -> Vec<bool> {
        self.segments.iter().map(|s| matches!(s, Segment::Literal(_))).collect()
    }

    /// The path's shape, variables anonymous (two routes of one method and shape conflict).
    pub fn shape(segments: &[Segment]) -> String {
        segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => format!("/{l}"),
                Segment::Var(_) => "/{}".to_string(),
            })
            .collect()
    }
}

/// Split a route path (`/api/v1/workflows/{id}`) into segments, or say what is wrong.
pub fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = path.strip_prefix('/') else { return Err("a path starts with `/`".into()) };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let var = regex::Regex::new(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$").expect("regex");
    let mut seen = std::collections::HashSet::new();
    rest.split('/')
        .map(|seg| {
            if seg.is_empty() {
                return Err("a path has no empty segments (`//` or a trailing `/`)".to_string());
            }
            if let Some(c) = var.captures(seg) {
                let name = c[1].to_string();
                if !seen.insert(name.clone()) {
                    return Err(format!("path variable `{name}` appears twice"));
                }
                return Ok(Segment::Var(name));
            }
            if seg.contains(['{', '}']) {
                return Err(format!("`{seg}`: a variable is a whole segment, `{{name}}`"));
            }
            if !seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
                return Err(format!("`{seg}`: literal segments use letters, digits and `-._~`"));
            }
            Ok(Segment::Literal(seg.to_string()))
        })
        .collect()
}

/// Paths the server itself serves; routes may not take them.
pub const RESERVED: &[&str] = &["/mcp", "/healthz", "/readyz", "/metrics", "/openapi.json"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_literals_and_whole_segment_variables() {
        assert_eq!(
            parse_path("/api/v1/workflows/{id}").unwrap(),
            vec![
                Segment::Literal("api".into()),
                Segment::Literal("v1".into()),
                Segment::Literal("workflows".into()),
                Segment::Var("id".into())
            ]
        );
        assert!(parse_path("api").is_err());
        assert!(parse_path("/a//b").is_err());
        assert!(parse_path("/a/x{id}").is_err());
        assert!(parse_path("/a/{id}/{id}").is_err());
        assert_eq!(parse_path("/").unwrap(), vec![]);
    }
}
