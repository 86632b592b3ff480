//! Templating: one minijinja environment with strict undefined and the filters specs use.
//!
//! Two jobs: render request templates (a leaf that is a single `{{ expr }}` keeps its JSON
//! type) and evaluate output expressions. The proof that requests cannot be injected is in
//! `lint`.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use minijinja::value::{Kwargs, Rest};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};
use regex::Regex;

use super::quantity;

/// The environment for request templates: strict, so a missing value never silently
/// becomes an empty query parameter.
pub fn env() -> &'static Environment<'static> {
    static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| build_env(UndefinedBehavior::Strict));
    &ENV
}

/// The environment for shaping backend data: chainable, because Kubernetes objects omit
/// empty fields (`item.status.containerStatuses` may not exist). Undeclared variables are
/// still rejected by `validate`.
pub fn shaping_env() -> &'static Environment<'static> {
    static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| build_env(UndefinedBehavior::Chainable));
    &ENV
}

fn build_env(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    // Escaping filters, one per query-text context.
    env.add_filter("promql_string", promql_string);
    env.add_filter("promql_regex", promql_regex);
    env.add_filter("promql_prefix", promql_prefix);
    env.add_filter("promql_duration", promql_duration);
    env.add_filter("path_segment", path_segment);
    env.add_filter("selector_value", selector_value);
    // Extraction and shaping.
    env.add_filter("jsonpath", super::extract::jsonpath_filter);
    env.add_filter("jsonpath_one", super::extract::jsonpath_one_filter);
    env.add_filter("count_by", count_by);
    env.add_filter("sum_by", sum_by);
    env.add_filter("top", top);
    env.add_filter("pick", pick);
    env.add_filter("quantity", quantity::quantity_filter);
    env.add_filter("to_quantity", quantity::to_quantity_filter);
    env.add_filter("unix_seconds", quantity::unix_seconds_filter);
    env.add_filter("duration_seconds", quantity::duration_seconds_filter);
    env.add_filter("age", quantity::age_filter);
    env.add_filter("age_seconds", quantity::age_seconds_filter);
    env.add_filter("percent", percent);
    env.add_filter("truncate_list", truncate_list);
    env.add_filter("flatten", flatten);
    env.add_filter("clip", clip);
    env.add_filter("index_by", index_by);
    env.add_filter("align", super::features::align);
    env.add_filter("align_series", super::features::align_series);
    env.add_filter("derive", super::features::derive);
    env.add_filter("zip", super::features::zip);
    env.add_filter("lag", super::features::lag);
    env.add_filter("diff", super::features::diff);
    env.add_filter("pct_change", super::features::pct_change);
    env.add_filter("rolling", super::features::rolling);
    env.add_filter("score", super::features::score);
    env.add_filter("pod_status", super::k8s::pod_status_filter);
    env.add_filter("node_status", super::k8s::node_status_filter);
    env.add_filter("condition", super::k8s::condition_filter);
    env.add_filter("call", call);
    env.add_test("call", call_test);
    env.add_function("now", quantity::now_function);
    env.add_function("new_id", new_id);
    env.add_filter("parse_json", parse_json);
    env.add_function("promql_matchers", promql_matchers);
    env
}

static SINGLE_EXPR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*\{\{-?(.*?)-?\}\}\s*$").expect("regex"));

/// If a string is exactly one `{{ expr }}`, the expression.
pub fn single_expression(s: &str) -> Option<&str> {
    let caps = SINGLE_EXPR.captures(s)?;
    let inner = caps.get(1)?.as_str();
    (!inner.contains("{{") && !inner.contains("}}") && !s.contains("{%")).then_some(inner)
}

/// A compiled expression, kept for the life of the registry.
pub type CompiledExpr = minijinja::Expression<'static, 'static>;

/// Compile an expression for request rendering (strict undefined).
pub fn compile_expr(source: &str) -> Result<CompiledExpr, Error> {
    env().compile_expression_owned(source.to_string())
}

/// Compile an expression for shaping backend data (chainable undefined).
pub fn compile_shaping_expr(source: &str) -> Result<CompiledExpr, Error> {
    shaping_env().compile_expression_owned(source.to_string())
}

/// The text templates of one procedure, parsed once at load and rendered by name.
/// Two environments: strict for requests, chainable for shaping.
pub struct Templates {
    request: Environment<'static>,
    shaping: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates { request: env().clone(), shaping: shaping_env().clone() }
    }
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

/// Which environment a template belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Requests: strict undefined.
    Request,
    /// Output shaping: chainable undefined.
    Shaping,
}

impl Templates {
    fn env(&self, mode: Mode) -> &Environment<'static> {
        match mode {
            Mode::Request => &self.request,
            Mode::Shaping => &self.shaping,
        }
    }

    /// Parse a text template once; it is rendered later by `name` (its spec pointer, which
    /// errors then name).
    pub fn add(&mut self, mode: Mode, name: &str, source: &str) -> Result<(), Error> {
        let env = match mode {
            Mode::Request => &mut self.request,
            Mode::Shaping => &mut self.shaping,
        };
        env.add_template_owned(name.to_string(), source.to_string())
    }

    /// Render a template added with `add`.
    pub fn render(&self, mode: Mode, name: &str, ctx: &Value) -> Result<String, Error> {
        self.env(mode).get_template(name)?.render(ctx)
    }

    /// Compile a JSON tree whose string leaves are templates.
    pub fn tree(&mut self, mode: Mode, name: &str, json: &serde_json::Value) -> Result<Tree, Error> {
        use serde_json::Value as J;
        Ok(match json {
            J::String(s) => match single_expression(s) {
                Some(expr) => Tree::Expr(Box::new(match mode {
                    Mode::Request => compile_expr(expr)?,
                    Mode::Shaping => compile_shaping_expr(expr)?,
                })),
                None if s.contains("{{") || s.contains("{%") => {
                    self.add(mode, name, s)?;
                    Tree::Text(name.to_string())
                }
                None => Tree::Plain(json.clone()),
            },
            J::Array(items) => Tree::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.tree(mode, &format!("{name}/{i}"), item))
                    .collect::<Result<_, _>>()?,
            ),
            J::Object(map) => Tree::Object(
                map.iter()
                    .map(|(k, v)| {
                        let child = format!("{name}/{}", k.replace('~', "~0").replace('/', "~1"));
                        Ok((k.clone(), self.tree(mode, &child, v)?))
                    })
                    .collect::<Result<_, Error>>()?,
            ),
            other => Tree::Plain(other.clone()),
        })
    }

    /// Render a compiled tree: an expression leaf keeps its JSON type.
    pub fn render_tree(&self, mode: Mode, tree: &Tree, ctx: &Value) -> Result<serde_json::Value, Error> {
        use serde_json::Value as J;
        Ok(match tree {
            Tree::Plain(v) => v.clone(),
            Tree::Expr(e) => to_json(&e.eval(ctx)?)?,
            Tree::Text(name) => J::String(self.render(mode, name, ctx)?),
            Tree::Array(items) => {
                J::Array(items.iter().map(|i| self.render_tree(mode, i, ctx)).collect::<Result<_, _>>()?)
            }
            Tree::Object(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_tree(mode, v, ctx)?)))
                    .collect::<Result<_, Error>>()?,
            ),
        })
    }
}

/// A JSON tree of compiled templates (a step's call, a content block).
pub enum Tree {
    /// JSON without templates.
    Plain(serde_json::Value),
    /// A leaf that is exactly one `{{ expr }}`: keeps the expression's JSON type.
    Expr(Box<CompiledExpr>),
    /// A text template, by its name in the procedure's [`Templates`].
    Text(String),
    /// An array of trees.
    Array(Vec<Tree>),
    /// An object of trees (key order kept).
    Object(Vec<(String, Tree)>),
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tree::Plain(v) => write!(f, "{v}"),
            Tree::Expr(_) => f.write_str("<expr>"),
            Tree::Text(n) => write!(f, "<template {n}>"),
            Tree::Array(items) => f.debug_list().entries(items).finish(),
            Tree::Object(fields) => f.debug_map().entries(fields.iter().map(|(k, v)| (k, v))).finish(),
        }
    }
}

impl Tree {
    /// The sub-tree at a JSON pointer (`/resource/kind`).
    pub fn at(&self, pointer: &str) -> Option<&Tree> {
        let mut node = self;
        for seg in pointer.split('/').skip(1) {
            let seg = seg.replace("~1", "/").replace("~0", "~");
            node = match node {
                Tree::Object(fields) => &fields.iter().find(|(k, _)| *k == seg)?.1,
                Tree::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Every templated leaf, with its JSON pointer.
    pub fn templated_leaves(&self) -> Vec<(String, &Tree)> {
        fn walk<'a>(t: &'a Tree, ptr: String, out: &mut Vec<(String, &'a Tree)>) {
            match t {
                Tree::Plain(_) => {}
                Tree::Expr(_) | Tree::Text(_) => out.push((ptr, t)),
                Tree::Array(items) => items.iter().enumerate().for_each(|(i, c)| walk(c, format!("{ptr}/{i}"), out)),
                Tree::Object(fields) => fields
                    .iter()
                    .for_each(|(k, c)| walk(c, format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
            }
        }
        let mut out = Vec::new();
        walk(self, String::new(), &mut out);
        out
    }
}

/// Render a template string once (parsing it each time: for tests and one-off tools; calls
/// use the compiled [`Templates`]).
pub fn render_str(source: &str, ctx: &Value) -> Result<String, Error> {
    env().render_str(source, ctx)
}

/// Evaluate one expression once (strict; parsed each time, see [`render_str`]).
pub fn eval_expr(source: &str, ctx: &Value) -> Result<Value, Error> {
    env().compile_expression(source)?.eval(ctx)
}

/// Convert a template value to JSON (undefined becomes null).
pub fn to_json(v: &Value) -> Result<serde_json::Value, Error> {
    if v.is_undefined() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::to_value(v).map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("value is not JSON: {e}")))
}

/// Variables a template or expression reads that it does not define itself.
pub fn undeclared(source: &str, expression: bool) -> Result<HashSet<String>, Error> {
    if expression {
        Ok(env().compile_expression(source)?.undeclared_variables(false))
    } else {
        Ok(env().template_from_str(source)?.undeclared_variables(false))
    }
}

/// Names callable without being declared (global functions).
pub fn globals() -> HashSet<String> {
    env().globals().map(|(k, _)| k.to_string()).collect()
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// A PromQL string literal: `"..."` with quotes, backslashes and newlines escaped.
fn promql_string(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A PromQL string literal matching `v` literally under `=~` (regex metacharacters escaped).
fn promql_regex(v: &str) -> String {
    promql_string(&regex::escape(v))
}

/// A PromQL regex literal matching values that start with `v` (for `=~`).
fn promql_prefix(v: &str) -> String {
    promql_string(&format!("{}.*", regex::escape(v)))
}

/// `x | call(f, a)` is `f(x, a)`: lets a library definition serve as a filter or a test,
/// e.g. `items | map('call', k8s.row) | list`, `items | select('call', k8s.is_broken)`.
fn call(state: &mut minijinja::State, value: Value, f: Value, rest: Rest<Value>) -> Result<Value, Error> {
    let mut args = vec![value];
    args.extend(rest.iter().cloned());
    f.call(state, &args)
}

/// `select('call', f)`: whether `f(x)` is true.
fn call_test(state: &mut minijinja::State, value: Value, f: Value, rest: Rest<Value>) -> Result<bool, Error> {
    call(state, value, f, rest).map(|v| v.is_true())
}

/// `promql_matchers(namespace=ns, pod=pod, pod__prefix=dep ~ '-')`: the label filters of a
/// selector, written once: `,label="value"` for every keyword whose value is not empty (a
/// suffix picks the operator: `__not` for `!=`, `__prefix` for `=~"value.*"`), values escaped
/// as PromQL strings. Each matcher starts with a comma, so the call follows a fixed matcher
/// inside `{...}`. The lint knows its output is whole matchers.
fn promql_matchers(kwargs: Kwargs) -> Result<String, Error> {
    let mut out = String::new();
    for key in kwargs.args() {
        let value: Value = kwargs.get(key)?;
        if value.is_none() || value.is_undefined() || value.as_str() == Some("") {
            continue;
        }
        if !matches!(value.kind(), minijinja::value::ValueKind::String | minijinja::value::ValueKind::Number) {
            return Err(invalid(format!("promql_matchers: `{key}` is a {}, not a string or number", value.kind())));
        }
        let text = value.to_string();
        let (label, op, literal) = match (key.strip_suffix("__not"), key.strip_suffix("__prefix")) {
            (Some(label), _) => (label, "!=", promql_string(&text)),
            (_, Some(label)) => (label, "=~", promql_prefix(&text)),
            _ => (key, "=", promql_string(&text)),
        };
        if !is_label_name(label) {
            return Err(invalid(format!("promql_matchers: `{label}` is not a Prometheus label name")));
        }
        out.push_str(&format!(",{label}{op}{literal}"));
    }
    Ok(out)
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

static PROM_DURATION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^([0-9]+(ms|s|m|h|d|w|y))+$").expect("regex"));

/// A PromQL duration (`5m`, `1h30m`), refused otherwise.
fn promql_duration(v: &str) -> Result<String, Error> {
    if PROM_DURATION.is_match(v) {
        Ok(v.to_string())
    } else {
        Err(invalid(format!("`{v}` is not a PromQL duration (examples: 30s, 5m, 1h, 7d)")))
    }
}

/// One URL path segment: everything but unreserved characters is percent-encoded; `.` and
/// `..` and the empty string are refused.
fn path_segment(v: &Value) -> Result<String, Error> {
    let s = v.to_string();
    if s.is_empty() || s == "." || s == ".." {
        return Err(invalid(format!("`{s}` is not a valid path segment")));
    }
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    Ok(percent_encoding::utf8_percent_encode(&s, SET).to_string())
}

static SELECTOR_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9]([A-Za-z0-9._:-]{0,251}[A-Za-z0-9])?$").expect("regex"));

/// A label or field selector value: letters, digits and `._:-`, refused otherwise.
fn selector_value(v: &Value) -> Result<String, Error> {
    let s = v.to_string();
    if SELECTOR_VALUE.is_match(&s) {
        Ok(s)
    } else {
        Err(invalid(format!(
            "`{s}` is not a valid selector value (letters, digits, '.', '_', ':' and '-', starting and ending alphanumeric)"
        )))
    }
}

/// `items | count_by('status.phase')`: a map of value -> count (keys sorted).
fn count_by(items: Value, path: &str) -> Result<Value, Error> {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for item in items.try_iter()? {
        let key = lookup(&item, path);
        let key = if key.is_undefined() || key.is_none() { "<none>".to_string() } else { key.to_string() };
        *counts.entry(key).or_default() += 1;
    }
    Ok(crate::engine::template::to_value(&counts))
}

/// `items | sum_by('namespace', 'cpu')`: a map of key -> sum of the numeric attribute.
fn sum_by(items: Value, key_path: &str, value_path: &str) -> Result<Value, Error> {
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for item in items.try_iter()? {
        let key = lookup(&item, key_path).to_string();
        let v = lookup(&item, value_path);
        let n = f64::try_from(v).unwrap_or(0.0);
        *sums.entry(key).or_default() += n;
    }
    Ok(crate::engine::template::to_value(&sums))
}

/// `items | top(5, 'restarts')`: the n items with the largest attribute, largest first;
/// ties keep input order. `top(5, 'x', reverse=true)` takes the smallest.
fn top(items: Value, n: usize, path: &str, kwargs: Kwargs) -> Result<Value, Error> {
    let reverse: bool = kwargs.get::<Option<bool>>("reverse")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let mut rows: Vec<(f64, Value)> =
        items.try_iter()?.map(|item| (f64::try_from(lookup(&item, path)).unwrap_or(f64::NEG_INFINITY), item)).collect();
    rows.sort_by(|a, b| {
        let ord = b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal);
        if reverse { ord.reverse() } else { ord }
    });
    Ok(Value::from(rows.into_iter().take(n).map(|(_, v)| v).collect::<Vec<_>>()))
}

/// `item | pick('name', 'status.phase')` or on a list: keep only these (dotted) paths,
/// named by their last segment, or by the name before `=` (`'anomaly_score=score'`).
fn pick(v: Value, paths: Rest<String>) -> Result<Value, Error> {
    let one = |item: &Value| {
        let mut out = BTreeMap::new();
        for p in paths.iter() {
            let (key, p) = match p.split_once('=') {
                Some((name, path)) => (name.to_string(), path),
                None => (p.rsplit('.').next().unwrap_or(p).to_string(), p.as_str()),
            };
            let val = lookup(item, p);
            out.insert(key, if val.is_undefined() { Value::from(()) } else { val });
        }
        Value::from(out)
    };
    if matches!(v.kind(), minijinja::value::ValueKind::Seq | minijinja::value::ValueKind::Iterable) {
        Ok(Value::from(v.try_iter()?.map(|i| one(&i)).collect::<Vec<_>>()))
    } else {
        Ok(one(&v))
    }
}

/// `part | percent(total)`: 100 * part / total rounded to one decimal (0 when total is 0).
fn percent(part: f64, total: f64) -> f64 {
    if total == 0.0 { 0.0 } else { (1000.0 * part / total).round() / 10.0 }
}

/// `[[1, 2], [3]] | flatten`: one level of nesting removed (non-lists kept as items).
fn flatten(items: Value) -> Result<Value, Error> {
    let mut out = Vec::new();
    for item in items.try_iter()? {
        if matches!(item.kind(), minijinja::value::ValueKind::Seq) {
            out.extend(item.try_iter()?);
        } else if !(item.is_none() || item.is_undefined()) {
            out.push(item);
        }
    }
    Ok(Value::from(out))
}

/// `text | clip(200)`: one line of at most n characters, with `…` when cut (keeps answers
/// small).
fn clip(v: Value, n: usize) -> Value {
    if v.is_none() || v.is_undefined() {
        return v;
    }
    // One line: newlines and runs of spaces become one space.
    let s = v.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() <= n {
        return Value::from(s);
    }
    Value::from(format!("{}…", s.chars().take(n).collect::<String>()))
}

/// `rows | index_by('key')`: a map from each row's (dotted) attribute to the row, for joining
/// two result sets (the last row wins on duplicate keys). Several paths make a composite key
/// joined by `/`: `pods | index_by('metadata.namespace', 'metadata.name')` keys `ns/name`.
fn index_by(items: Value, paths: Rest<String>) -> Result<Value, Error> {
    if paths.is_empty() {
        return Err(Error::new(ErrorKind::MissingArgument, "index_by: name the key's path"));
    }
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    'items: for item in items.try_iter()? {
        let mut parts = Vec::with_capacity(paths.len());
        for path in paths.iter() {
            let key = lookup(&item, path);
            if key.is_undefined() || key.is_none() {
                continue 'items;
            }
            parts.push(key.to_string());
        }
        out.insert(parts.join("/"), item);
    }
    Ok(Value::from(out))
}

/// `new_id('inc-')`: the prefix and 8 random hex digits, a fresh id per call (ids of stored
/// records; the prefix is short and plain, see [`crate::ids`]).
fn new_id(prefix: &str) -> Result<String, Error> {
    if !crate::ids::valid_prefix(prefix) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("new_id: prefix `{}` is not up to 16 letters, digits, `-` or `_`", crate::clip::clip(prefix, 40)),
        ));
    }
    Ok(crate::ids::new_id(prefix))
}

/// `text | parse_json`: JSON text (a stored JSON column) as a value; none, undefined and
/// values that are not text pass through (a driver may already decode them).
/// `rows | parse_json('labels', 'affected_resources')`: those keys decoded in a map, or in
/// every map of a list (rows as the sql backend answers them).
fn parse_json(v: Value, keys: Rest<String>) -> Result<Value, Error> {
    fn decode(v: serde_json::Value) -> Result<serde_json::Value, Error> {
        let serde_json::Value::String(text) = v else { return Ok(v) };
        serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("parse_json: not JSON ({e}): {}", crate::clip::clip(&text, 80)),
            )
        })
    }
    fn decode_keys(row: serde_json::Value, keys: &[String]) -> Result<serde_json::Value, Error> {
        let serde_json::Value::Object(mut m) = row else { return Ok(row) };
        for k in keys {
            if let Some(v) = m.remove(k) {
                m.insert(k.clone(), decode(v)?);
            }
        }
        Ok(serde_json::Value::Object(m))
    }
    if v.is_undefined() {
        return Ok(v);
    }
    let json = to_json(&v)?;
    let out = match (json, keys.is_empty()) {
        (json, true) => decode(json)?,
        (serde_json::Value::Array(rows), false) => {
            serde_json::Value::Array(rows.into_iter().map(|r| decode_keys(r, &keys)).collect::<Result<_, _>>()?)
        }
        (row, false) => decode_keys(row, &keys)?,
    };
    Ok(to_value(&out))
}

/// `items | truncate_list(20)`: the first n items.
fn truncate_list(items: Value, n: usize) -> Result<Value, Error> {
    Ok(Value::from(items.try_iter()?.take(n).collect::<Vec<_>>()))
}

/// Look up a dotted path (`status.phase`, `containers.0.name`) in a value.
pub fn lookup(v: &Value, path: &str) -> Value {
    let mut cur = v.clone();
    for seg in path.split('.') {
        let next = match seg.parse::<usize>() {
            Ok(i) if cur.kind() == minijinja::value::ValueKind::Seq => cur.get_item(&Value::from(i)),
            _ => cur.get_attr(seg),
        };
        cur = match next {
            Ok(n) if !n.is_undefined() => n,
            _ => return Value::UNDEFINED,
        };
    }
    cur
}

/// Any serializable value as a template value.
pub fn to_value<T: serde::Serialize>(v: &T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promql_string_escapes_quotes_and_backslashes() {
        let out = render_str(
            "{{ v | promql_string }}",
            &crate::engine::template::to_value(&serde_json::json!({"v": "a\"} or vector(1) #\\"})),
        )
        .unwrap();
        assert_eq!(out, r#""a\"} or vector(1) #\\""#);
    }

    #[test]
    fn single_expression_leaves_keep_their_type() {
        let ctx = crate::engine::template::to_value(&serde_json::json!({"n": 5, "xs": [1, 2]}));
        let mut t = Templates::default();
        let tree = t
            .tree(Mode::Request, "/t", &serde_json::json!({"a": "{{ n }}", "b": "n={{ n }}", "c": "{{ xs }}"}))
            .unwrap();
        let out = t.render_tree(Mode::Request, &tree, &ctx).unwrap();
        assert_eq!(out, serde_json::json!({"a": 5, "b": "n=5", "c": [1, 2]}));
    }

    #[test]
    fn promql_matchers_escape_values_and_skip_empty_ones() {
        let ctx = to_value(&serde_json::json!({"ns": "a\"b", "pod": "", "dep": "web-"}));
        let out =
            render_str("{{ promql_matchers(namespace=ns, pod=pod, pod__prefix=dep, job__not='x') }}", &ctx).unwrap();
        assert_eq!(out, r#",namespace="a\"b",pod=~"web\\-.*",job!="x""#);
        assert!(render_str("{{ promql_matchers(pod=[1]) }}", &ctx).is_err());
    }

    #[test]
    fn undefined_variables_fail_at_run_time() {
        assert!(render_str("{{ nope }}", &crate::engine::template::to_value(&serde_json::json!({}))).is_err());
    }

    #[test]
    fn path_segment_encodes_slashes_and_refuses_dot_dot() {
        assert_eq!(path_segment(&Value::from("a/b c")).unwrap(), "a%2Fb%20c");
        assert!(path_segment(&Value::from("..")).is_err());
    }

    #[test]
    fn shaping_filters_count_sum_and_rank() {
        let ctx = crate::engine::template::to_value(&serde_json::json!({"xs": [
            {"ns": "a", "r": 3}, {"ns": "b", "r": 7}, {"ns": "a", "r": 1}
        ]}));
        let json = |e: &str| to_json(&eval_expr(e, &ctx).unwrap()).unwrap();
        assert_eq!(json("xs | count_by('ns')"), serde_json::json!({"a": 2, "b": 1}));
        assert_eq!(json("xs | sum_by('ns', 'r')"), serde_json::json!({"a": 4.0, "b": 7.0}));
        assert_eq!(eval_expr("(xs | top(1, 'r'))[0].ns", &ctx).unwrap().to_string(), "b");
        assert_eq!(eval_expr("xs | pick('r') | map(attribute='r') | list", &ctx).unwrap().to_string(), "[3, 7, 1]");
        assert_eq!(
            json("xs[0] | pick('rank=r', 'ns', 'gone=x.y')"),
            serde_json::json!({"rank": 3, "ns": "a", "gone": null})
        );
        assert_eq!(json("xs | index_by('ns', 'r') | list"), serde_json::json!(["a/1", "a/3", "b/7"]));
    }

    #[test]
    fn parse_json_decodes_stored_json_text_and_passes_other_values() {
        let ctx = crate::engine::template::to_value(&serde_json::json!({
            "row": {"labels": "{\"team\": \"a\", \"n\": [1, 2]}", "none": null, "list": [1]},
        }));
        let json = |e: &str| to_json(&eval_expr(e, &ctx).unwrap()).unwrap();
        assert_eq!(json("row.labels | parse_json"), serde_json::json!({"team": "a", "n": [1, 2]}));
        assert_eq!(json("row.none | parse_json"), serde_json::Value::Null);
        assert_eq!(json("row.list | parse_json"), serde_json::json!([1]));
        let ctx = crate::engine::template::to_value(&serde_json::json!({
            "rows": [{"id": 1, "labels": "{\"a\": 1}", "refs": "[\"x\"]"}, {"id": 2, "labels": null, "refs": "[]"}],
        }));
        let json = |e: &str| to_json(&eval_expr(e, &ctx).unwrap()).unwrap();
        assert_eq!(
            json("rows | parse_json('labels', 'refs')"),
            serde_json::json!([{"id": 1, "labels": {"a": 1}, "refs": ["x"]}, {"id": 2, "labels": null, "refs": []}])
        );
        assert_eq!(
            json("rows[0] | parse_json('refs')"),
            serde_json::json!({"id": 1, "labels": "{\"a\": 1}", "refs": ["x"]})
        );
        let ctx = crate::engine::template::to_value(&serde_json::json!({"bad": "{oops"}));
        let err = eval_expr("bad | parse_json", &ctx).unwrap_err().to_string();
        assert!(err.contains("parse_json: not JSON"), "{err}");
    }

    #[test]
    fn new_id_gives_the_prefix_and_eight_hex_digits_and_refuses_odd_prefixes() {
        let ctx = crate::engine::template::to_value(&serde_json::json!({}));
        let a = render_str("{{ new_id('inc-') }}", &ctx).unwrap();
        let b = render_str("{{ new_id('inc-') }}", &ctx).unwrap();
        assert!(regex::Regex::new(r"^inc-[0-9a-f]{8}$").unwrap().is_match(&a), "{a}");
        assert_ne!(a, b);
        assert!(render_str("{{ new_id('a/b') }}", &ctx).is_err());
    }
}
