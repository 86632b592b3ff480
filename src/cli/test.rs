//! `test`: run spec tests (YAML documents of kind `Test`, by default under `tests.d/`)
//! offline: each calls one tool (or reads a resource, or renders a prompt) of the catalogue
//! against a fixture cluster (a snapshot
//! directory or archive, or inline objects), when given, recorded Prometheus answers and further
//! catalogue backends the test enables (`backends: {NAME: overrides}`), then
//! checks the rendered requests, the error, the structured result (subset and JSONPath) and
//! the text. Calls listed under `given` run first, in order, on the same backends (a store
//! the test enables keeps what they wrote); `{{ given[0].incident_id }}` in an argument or
//! a resource URI is a field of their structured results. `--junit`
//! writes a JUnit XML report; `--update` rewrites expected text files from the answers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::engine::invoke::Outcome;
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Test files or directories (default: tests.d).
    pub paths: Vec<PathBuf>,
    /// Write a JUnit XML report to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Rewrite every `expect.textFile` with the text the tool answers now (review the diff).
    #[arg(long)]
    pub update: bool,
    /// Record mode: tests whose `prometheus` names a file ask this live Prometheus (or Thanos
    /// querier) instead, and the answers are written to that file (review the diff).
    #[arg(long, value_name = "URL")]
    pub record_prometheus: Option<String>,
}

/// One test document.
struct Case {
    name: String,
    file: PathBuf,
    spec: Value,
}

/// A test's result: None when it passed, else what went wrong.
struct Verdict {
    case: String,
    file: String,
    seconds: f64,
    failure: Option<String>,
}

pub async fn run(args: &Args, settings: &Settings) -> anyhow::Result<ExitCode> {
    let paths = if args.paths.is_empty() { vec![PathBuf::from("tests.d")] } else { args.paths.clone() };
    let mut cases = Vec::new();
    for file in files(&paths)? {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let docs = crate::spec::yaml::parse_values(&text)
            .map_err(|e| anyhow::anyhow!("{}:{}:{}: {}", file.display(), e.pos.line, e.pos.col, e.message))?;
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            if doc["kind"] != "Test" {
                anyhow::bail!("{}: a test document has `kind: Test` (found {})", file.display(), doc["kind"]);
            }
            let name = doc["metadata"]["name"].as_str().context("a test needs metadata.name")?.to_string();
            cases.push(Case { name, file: file.clone(), spec: doc["spec"].clone() });
        }
    }
    if cases.is_empty() {
        anyhow::bail!(
            "no tests found under {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let mut outcomes = Vec::new();
    for case in &cases {
        let started = Instant::now();
        let failure = run_case(case, settings, args.update, args.record_prometheus.as_deref())
            .await
            .err()
            .map(|e| format!("{e:#}"));
        let o = Verdict {
            case: case.name.clone(),
            file: case.file.display().to_string(),
            seconds: started.elapsed().as_secs_f64(),
            failure,
        };
        match &o.failure {
            None => super::out(&format!("ok    {} ({})", o.case, o.file)),
            Some(f) => super::out(&format!("FAIL  {} ({})\n      {}", o.case, o.file, f.replace('\n', "\n      "))),
        }
        outcomes.push(o);
    }
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    super::out(&format!("{} passed, {failed} failed", outcomes.len() - failed));
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&outcomes)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(crate::EXIT_TOOL_ERROR) })
}

/// Test files: `*.yaml`/`*.yml` under the paths, in name order.
fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out).with_context(|| format!("reading {}", p.display()))?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            anyhow::bail!("{}: no such test file or directory", p.display());
        }
    }
    Ok(out)
}

async fn run_case(case: &Case, settings: &Settings, update: bool, record: Option<&str>) -> anyhow::Result<()> {
    let spec = &case.spec;
    let base = case.file.parent().unwrap_or(Path::new("."));
    let tool = spec.get("tool").and_then(Value::as_str);
    let args: Map<String, Value> = spec.get("args").and_then(Value::as_object).cloned().unwrap_or_default();
    let work = WorkDir::new()?;

    // The cluster: inline objects, a snapshot path (relative to the test file), or the demo.
    let snapshot = if let Some(objects) = spec.get("objects").and_then(Value::as_array) {
        let dir = work.path().join("cluster");
        std::fs::create_dir_all(&dir)?;
        for (i, o) in objects.iter().enumerate() {
            std::fs::write(dir.join(format!("object-{i:03}.json")), serde_json::to_vec(o)?)?;
        }
        dir.display().to_string()
    } else {
        match spec.get("snapshot").and_then(Value::as_str) {
            None => "builtin:demo".to_string(),
            Some(s) if s.starts_with("builtin:") => s.to_string(),
            Some(s) => base.join(s).display().to_string(),
        }
    };
    let recording: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    let mut record_to = None;
    let prometheus = match spec.get("prometheus") {
        None | Some(Value::Null) => None,
        Some(Value::String(file)) if record.is_some() => {
            record_to = Some((base.join(file), record.unwrap_or_default().to_string()));
            Some(proxy_prometheus(record.unwrap_or_default().to_string(), recording.clone()).await?)
        }
        Some(Value::String(file)) => {
            let text = std::fs::read_to_string(base.join(file)).with_context(|| format!("spec.prometheus: {file}"))?;
            let v: Value = serde_json::from_str(&text).with_context(|| format!("spec.prometheus: {file}"))?;
            Some(recorded_prometheus(v["answers"].as_array().cloned().unwrap_or_default()).await?)
        }
        Some(Value::Array(answers)) => Some(recorded_prometheus(answers.clone()).await?),
        Some(other) => anyhow::bail!("spec.prometheus: a file of recorded answers or a list of them, not {other}"),
    };
    let mut prom = prometheus.map(|u| format!("\n    prometheus: {{url: \"{u}\", timeout: 5s}}")).unwrap_or_default();
    // Further catalogue bindings the test enables, each with its overrides (e.g. a store
    // `{url: "sqlite::memory:"}` and the bindings over it).
    for (name, overrides) in spec.get("backends").and_then(Value::as_object).into_iter().flatten() {
        prom.push_str(&format!("\n    {}: {}", serde_json::to_string(name)?, serde_json::to_string(overrides)?));
    }
    std::fs::write(
        work.path().join("mode.yaml"),
        format!(
            "apiVersion: cluster-health-mcp/v1\nkind: Mode\nmetadata: {{name: spec-test}}\nspec:\n  backends:\n    \
             kubernetes: {{source: {{kubeconfig: null, snapshot: {{path: {}}}}}}}{prom}\n",
            serde_json::to_string(&snapshot)?
        ),
    )?;
    let mut paths = settings.spec_paths();
    paths.push(work.path().join("mode.yaml"));
    let registry = crate::configure::load_paths(&paths, settings.embedded_catalogue()).map_err(|diags| {
        anyhow::anyhow!(
            "the specs do not load:\n{}",
            diags.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
        )
    })?;
    let mut active = crate::engine::Active::new(Arc::new(registry), "spec-test").map_err(anyhow::Error::msg)?;
    if let Some(tokens) = spec.get("responseBudgetTokens").and_then(Value::as_u64) {
        active.response_budget = (tokens as usize).saturating_mul(4).max(1024);
    }
    // Calls that set the scene, each of which must succeed.
    let mut given = Vec::new();
    for (i, g) in spec.get("given").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let name = g["tool"].as_str().with_context(|| format!("spec.given[{i}]: needs `tool`"))?;
        let t = active.tools.get(name).with_context(|| format!("spec.given[{i}]: no tool `{name}`"))?.clone();
        let a = with_given(g.get("args").cloned().unwrap_or(json!({})), &given)
            .with_context(|| format!("spec.given[{i}].args"))?;
        let a = a.as_object().cloned().with_context(|| format!("spec.given[{i}].args: not a map"))?;
        let out = crate::engine::invoke::run(&active, &t.proc, &a, None, &CancellationToken::new())
            .await
            .map_err(|e| anyhow::anyhow!("spec.given[{i}] ({name}) failed: {e}"))?;
        given.push(out.structured);
    }
    let args: Map<String, Value> = match with_given(Value::Object(args), &given).context("spec.args")? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let resource = match spec.get("resource").and_then(Value::as_str) {
        Some(uri) => Some(with_given(json!(uri), &given).context("spec.resource")?.as_str().unwrap_or(uri).to_string()),
        None => None,
    };
    let result = match (tool, resource.as_deref(), spec.get("prompt").and_then(Value::as_str)) {
        (Some(tool), None, None) => {
            let t = active
                .tools
                .get(tool)
                .with_context(|| format!("spec.tool: no tool `{tool}` in the catalogue"))?
                .clone();
            if let Some(want) = spec["expect"].get("requests") {
                let got = super::render::rendered(&active, tool, &args)?;
                subset(want, &got["steps"], "requests").map_err(|e| anyhow::anyhow!("rendered {e}"))?;
            }
            crate::engine::invoke::run(&active, &t.proc, &args, None, &CancellationToken::new())
                .await
                .map_err(|e| e.to_string())
        }
        (None, Some(uri), None) => read_resource(active, uri).await,
        (None, None, Some(name)) => {
            let p = active.prompts.get(name).with_context(|| format!("spec.prompt: no prompt `{name}`"))?;
            crate::mcp::handler::render_prompt(p, args)
                .map(|r| {
                    let structured = serde_json::to_value(&r).unwrap_or_default();
                    let text = crate::engine::extract::query("$.messages[*].content.text", &structured)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                        .join("\n");
                    Outcome { structured, text, content: vec![], error: None, data_age: None }
                })
                .map_err(|e| e.message.to_string())
        }
        _ => anyhow::bail!("a test has one of spec.tool, spec.resource (a URI) or spec.prompt"),
    };
    if let Some((file, url)) = record_to {
        let answers = recording.lock().map(|a| a.clone()).unwrap_or_default();
        let doc = json!({"description": format!("Recorded from {url} by `cluster-health-mcp test --record-prometheus`."), "answers": answers});
        std::fs::write(&file, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", file.display()))?;
    }
    check(&spec["expect"], result, base, update)
}

/// String leaves holding `{{ ... }}` evaluated over `given` (the structured results of the
/// `given` calls); a leaf that is one expression keeps its JSON type.
fn with_given(v: Value, given: &[Value]) -> anyhow::Result<Value> {
    let ctx = crate::engine::template::to_value(&json!({"given": given}));
    fn walk(v: Value, ctx: &minijinja::Value) -> anyhow::Result<Value> {
        Ok(match v {
            Value::String(s) if s.contains("{{") => match crate::engine::template::single_expression(&s) {
                Some(e) => crate::engine::template::to_json(&crate::engine::template::eval_expr(e, ctx)?)?,
                None => Value::String(crate::engine::template::render_str(&s, ctx)?),
            },
            Value::Array(xs) => Value::Array(xs.into_iter().map(|x| walk(x, ctx)).collect::<anyhow::Result<_>>()?),
            Value::Object(m) => {
                Value::Object(m.into_iter().map(|(k, x)| Ok((k, walk(x, ctx)?))).collect::<anyhow::Result<_>>()?)
            }
            other => other,
        })
    }
    walk(v, &ctx)
}

/// Record mode: forward every request to a live Prometheus and keep each answer (by API
/// path and the exact query) for the recording file.
async fn proxy_prometheus(upstream: String, recording: Arc<std::sync::Mutex<Vec<Value>>>) -> anyhow::Result<String> {
    use axum::extract::{Query, Request};
    crate::install_crypto_provider();
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |Query(q): Query<HashMap<String, String>>, req: Request| {
        let (client, upstream, recording) = (client.clone(), upstream.clone(), recording.clone());
        async move {
            let path = req.uri().path().to_string();
            let url = format!("{}{}", upstream.trim_end_matches('/'), req.uri());
            let body: Value = match client.get(&url).send().await {
                Ok(r) => r.json().await.unwrap_or_else(|e| json!({"status": "error", "error": e.to_string()})),
                Err(e) => json!({"status": "error", "errorType": "unavailable", "error": e.to_string()}),
            };
            let query = q.get("query").or_else(|| q.get("match[]")).cloned().unwrap_or_default();
            if body["status"] == "success"
                && let Ok(mut rec) = recording.lock()
                && !rec.iter().any(|a| a["path"] == path.as_str() && a["contains"] == query.as_str())
            {
                rec.push(json!({"path": path, "contains": query, "data": body["data"]}));
            }
            axum::Json(body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// Read a resource as `resources/read` does: its text contents, and the JSON they hold.
async fn read_resource(active: crate::engine::Active, uri: &str) -> Result<Outcome, String> {
    let handler = crate::mcp::handler::Handler { state: crate::mcp::state::State::new(active) };
    let read = handler.run_resource(uri, &CancellationToken::new()).await.map_err(|e| e.message.to_string())?;
    let text = read
        .contents
        .iter()
        .filter_map(|c| match c {
            rmcp::model::ResourceContents::TextResourceContents { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let structured = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Outcome { structured, text, content: vec![], error: None, data_age: None })
}

/// A scratch directory for one test (the mode file, inline objects), removed afterwards.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> std::io::Result<WorkDir> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("chm-spec-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(WorkDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compare an answer with `expect`.
fn check(expect: &Value, result: Result<Outcome, String>, base: &Path, update: bool) -> anyhow::Result<()> {
    let outcome = match (result, expect.get("error").and_then(Value::as_str)) {
        (Err(e), Some(want)) if e.contains(want) => return Ok(()),
        (Err(e), Some(want)) => anyhow::bail!("error `{e}` does not contain `{want}`"),
        (Err(e), None) => anyhow::bail!("the call failed: {e}"),
        (Ok(o), Some(want)) => match &o.error {
            Some(msg) if msg.contains(want) => return Ok(()),
            _ => anyhow::bail!("expected an error containing `{want}`, got an answer:\n{}", o.text),
        },
        (Ok(o), None) => o,
    };
    if let Some(msg) = &outcome.error {
        anyhow::bail!("the tool answered with an error: {msg}");
    }
    let s = &outcome.structured;
    if let Some(want) = expect.get("structured") {
        subset(want, s, "$").map_err(|e| anyhow::anyhow!("structured: {e}"))?;
    }
    if let Some(paths) = expect.get("jsonpath").and_then(Value::as_object) {
        for (path, want) in paths {
            let found = crate::engine::extract::query(path, s).map_err(|e| anyhow::anyhow!("jsonpath {path}: {e}"))?;
            let got = if found.len() == 1 && !want.is_array() { found[0].clone() } else { Value::Array(found) };
            if &got != want {
                anyhow::bail!("jsonpath {path}: got {got}, expected {want}");
            }
        }
    }
    for want in expect.get("textContains").and_then(Value::as_array).into_iter().flatten() {
        let want = want.as_str().unwrap_or_default();
        if !outcome.text.contains(want) {
            anyhow::bail!("text does not contain `{want}`:\n{}", outcome.text);
        }
    }
    for unwanted in expect.get("textNotContains").and_then(Value::as_array).into_iter().flatten() {
        let unwanted = unwanted.as_str().unwrap_or_default();
        if outcome.text.contains(unwanted) {
            anyhow::bail!("text contains `{unwanted}`:\n{}", outcome.text);
        }
    }
    if let Some(file) = expect.get("textFile").and_then(Value::as_str) {
        let path = base.join(file);
        let got = format!("{}\n", outcome.text);
        if update {
            std::fs::write(&path, &got).with_context(|| format!("writing {}", path.display()))?;
        } else {
            let want = std::fs::read_to_string(&path)
                .with_context(|| format!("expect.textFile {} (run with --update to create it)", path.display()))?;
            if want != got {
                anyhow::bail!(
                    "text differs from {} (run with --update and review the diff):\n{}",
                    path.display(),
                    diff(&want, &got)
                );
            }
        }
    }
    Ok(())
}

/// `want` is contained in `got`: objects by key (recursively), lists of steps by their
/// `step` name, everything else equal.
fn subset(want: &Value, got: &Value, at: &str) -> Result<(), String> {
    match (want, got) {
        (Value::Array(w), Value::Array(g)) if w.iter().all(|x| x.get("step").is_some()) => {
            for ws in w {
                let name = &ws["step"];
                let gs = g.iter().find(|s| &s["step"] == name).ok_or_else(|| format!("{at}: no step {name}"))?;
                subset(ws, gs, &format!("{at}[{}]", name.as_str().unwrap_or("?")))?;
            }
            Ok(())
        }
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let gv = g.get(k).ok_or_else(|| format!("{at}.{k} is missing"))?;
                subset(wv, gv, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Object(w), Value::String(g)) if w.len() == 1 && w.contains_key("contains") => {
            let part = w["contains"].as_str().unwrap_or_default();
            if g.contains(part) { Ok(()) } else { Err(format!("{at}: `{g}` does not contain `{part}`")) }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
        _ if want == got => Ok(()),
        _ => Err(format!("{at}: got {got}, expected {want}")),
    }
}

/// The first differing lines of two texts.
fn diff(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = Vec::new();
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i).copied(), g.get(i).copied());
        if a != b {
            out.push(format!("line {}:\n  - {}\n  + {}", i + 1, a.unwrap_or("<none>"), b.unwrap_or("<none>")));
        }
        if out.len() == 5 {
            break;
        }
    }
    out.join("\n")
}

/// Serve recorded Prometheus answers on a loopback port: the answer whose `path` is the
/// request's and whose `contains` is its `query` (or `match[]`), else the first whose
/// `contains` is part of it, is returned as `data`;
/// an unmatched query gets an empty vector, as Prometheus answers for missing series.
async fn recorded_prometheus(answers: Vec<Value>) -> anyhow::Result<String> {
    use axum::extract::{Query, Request};
    let answers = Arc::new(answers);
    let app = axum::Router::new().fallback(move |Query(q): Query<HashMap<String, String>>, req: Request| {
        let answers = answers.clone();
        async move {
            let query = q.get("query").or_else(|| q.get("match[]")).cloned().unwrap_or_default();
            // An exact (recorded) query first, else the first answer whose part it holds.
            let on_path = || answers.iter().filter(|a| a["path"] == req.uri().path());
            let data = on_path()
                .find(|a| a["contains"] == query.as_str())
                .or_else(|| on_path().find(|a| query.contains(a["contains"].as_str().unwrap_or(""))))
                .map(|a| a["data"].clone())
                .unwrap_or(json!({"resultType": "vector", "result": []}));
            axum::Json(json!({"status": "success", "data": data}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A JUnit XML report (one suite; a test's class is its file).
fn junit(outcomes: &[Verdict]) -> String {
    let failures = outcomes.iter().filter(|o| o.failure.is_some()).count();
    let total: f64 = outcomes.iter().map(|o| o.seconds).sum();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">\n  \
         <testsuite name=\"cluster-health-mcp spec tests\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{total:.3}\">\n",
        outcomes.len(),
        outcomes.len()
    );
    for o in outcomes {
        x.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
            xml(&o.case),
            xml(&o.file),
            o.seconds
        ));
        match &o.failure {
            None => x.push_str("/>\n"),
            Some(f) => x.push_str(&format!(
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                xml(f.lines().next().unwrap_or("")),
                xml(f)
            )),
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}
