//! Per-call engine overhead (issue 8, "Compile once"): what one `engine::invoke::run` costs on
//! a compiled registry, measured in-process with no MCP transport in front.
//!
//! The specs are a fixed fixture (tests/bench/engine/specs.yaml: the catalogue's list-pods and
//! query-prometheus as of b50fa6e, and one bench tool), so every engine version runs the same
//! text; `shipped_default_limit` runs the checkout's own list-pods.
//!
//! - `list_pods`: list-pods over a generated 1,000-pod snapshot held in-process (`source:
//!   {snapshot: {path}}`): the default limit (50 rows shaped) and `limit: 1000` (all 1,000).
//! - `promql`: one PromQL query against an in-process fake Prometheus (axum on 127.0.0.1:0
//!   answering `/api/v1/query` with a fixed 3-series vector): the guarded `query-prometheus`,
//!   and `bench-restarts`, whose query carries a free-text argument through `promql_string`.
//!   Figures are engine overhead plus one loopback HTTP round trip.
//! - `render`: one step's request rendered from prepared arguments (and, where the engine
//!   has them, checked and typed), no network.
//!
//! `tests/bench/engine.sh [CHECKOUT]`; figures and the before/after comparison:
//! tests/bench/README.md. The same file runs on older commits: only `render_step` differs.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cluster_health_mcp::engine::compile::load_registry;
use cluster_health_mcp::engine::registry::Procedure;
use cluster_health_mcp::engine::{Active, invoke};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

/// Fixed so every run (and every commit) sees the same cluster.
const SEED: u64 = 42;
const PODS: usize = 1_000;
const NODES: usize = 20;
const NAMESPACES: usize = 10;

/// The fake Prometheus's answer to every instant query.
fn vector() -> Value {
    json!({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"namespace": "team-000", "pod": "web-0"}, "value": [1_767_225_600.0, "3"]},
        {"metric": {"namespace": "team-000", "pod": "web-1"}, "value": [1_767_225_600.0, "0"]},
        {"metric": {"namespace": "team-000", "pod": "db-0"}, "value": [1_767_225_600.0, "12"]},
    ]}})
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    active: Active,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().expect("temp dir");
        let snapshot = dir.path().join("snapshot");
        cluster_health_mcp::snapshot::generate::write(&snapshot, NODES, PODS, NAMESPACES, SEED)
            .expect("generate the snapshot");

        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind the fake Prometheus");
        let port = listener.local_addr().expect("local addr").port();
        let answer = vector();
        let app = axum::Router::new().route(
            "/api/v1/query",
            axum::routing::get(move || {
                let answer = answer.clone();
                async move { axum::Json(answer) }
            }),
        );
        rt.spawn(async move { axum::serve(listener, app).await });

        // The fixed fixture, plus the checkout's own list-pods as shipped (renamed).
        let specs = dir.path().join("specs");
        std::fs::create_dir_all(&specs).expect("specs dir");
        let shipped = std::fs::read_to_string(root.join("tools.d/core/list-pods.yaml")).expect("list-pods.yaml");
        assert_eq!(shipped.matches("name: list-pods\n").count(), 1, "list-pods.yaml names list-pods once");
        let shipped = shipped.replacen("name: list-pods\n", "name: shipped-list-pods\n", 1);
        std::fs::write(specs.join("shipped-list-pods.yaml"), shipped).expect("write");
        let mode = json!({
            "apiVersion": "cluster-health-mcp/v1",
            "kind": "Mode",
            "metadata": {"name": "bench"},
            "spec": {
                "description": "Benchmark: the generated snapshot in-process and the fake Prometheus.",
                "backends": {
                    "kubernetes": {"source": {"kubeconfig": null, "snapshot": {"path": snapshot.to_string_lossy()}}},
                    "prometheus": {"url": format!("http://127.0.0.1:{port}")},
                },
                "tools": {"include": ["*"]},
                "resources": {"include": ["*"]},
                "prompts": {"include": ["*"]},
            },
        });
        // JSON is YAML: the mode needs no YAML writer.
        std::fs::write(specs.join("bench-mode.yaml"), mode.to_string()).expect("write");

        let paths: Vec<PathBuf> = vec![root.join("tests/bench/engine/specs.yaml"), specs];
        let registry = load_registry(&paths).unwrap_or_else(|diags| {
            for d in &diags {
                eprintln!("{d:?}");
            }
            panic!("the bench specs do not load");
        });
        let active = Active::new(Arc::new(registry), "bench").expect("bench mode");
        Fixture { rt, active, _dir: dir }
    }

    fn proc(&self, tool: &str) -> &Procedure {
        &self.active.tools.get(tool).unwrap_or_else(|| panic!("tool {tool} is not exposed")).proc
    }

    fn call(&self, tool: &str, args: &Map<String, Value>) -> invoke::Outcome {
        let cancel = CancellationToken::new();
        let outcome = self.rt.block_on(invoke::run(&self.active, self.proc(tool), args, None, &cancel));
        match outcome {
            Ok(o) if o.error.is_none() => o,
            Ok(o) => panic!("{tool}: error result: {:?}", o.error),
            Err(e) => panic!("{tool}: {e}"),
        }
    }
}

fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("arguments are objects"),
    }
}

/// The template scope a call builds from prepared arguments.
fn scope(active: &Active, prepared: &Map<String, Value>) -> invoke::Scope {
    use cluster_health_mcp::engine::template;
    let mut scope: invoke::Scope = prepared.iter().map(|(k, v)| (k.clone(), template::to_value(v))).collect();
    scope.insert("backends".into(), template::to_value(&active.backend_flags()));
    scope
}

/// Render one step's request from prepared arguments, as a call does: template scope, then
/// the request's templates (pure render: no check).
///
/// This and `render_checked` are the only code that differs between engine versions. On
/// b50fa6e (templates parsed per call, no run-time check) both read:
/// ```ignore
/// let step = proc.steps.iter().find(|s| s.name == step).ok_or("no such step")?;
/// let mut ctx = prepared.clone();
/// ctx.insert("backends".into(), active.backend_flags());
/// let mctx = cluster_health_mcp::engine::template::to_value(&ctx);
/// invoke::render_request(step, &mctx).map(|r| drop(black_box(r)))
/// ```
fn render_step(active: &Active, proc: &Procedure, step: &str, prepared: &Map<String, Value>) -> Result<(), String> {
    use cluster_health_mcp::engine::template::Mode;
    let step = proc.steps.iter().find(|s| s.name == step).ok_or("no such step")?;
    let ctx = minijinja::Value::from(scope(active, prepared));
    proc.templates
        .render_tree(Mode::Request, &step.request, &ctx)
        .map(|r| drop(black_box(r)))
        .map_err(|e| e.to_string())
}

/// What a call does before sending: render, then check the request (PromQL parsed and
/// compared with the inert rendering, selectors, names) and type it.
fn render_checked(active: &Active, proc: &Procedure, step: &str, prepared: &Map<String, Value>) -> Result<(), String> {
    let step = proc.steps.iter().find(|s| s.name == step).ok_or("no such step")?;
    invoke::render_request(step, proc, &scope(active, prepared)).map(|r| drop(black_box(r))).map_err(|e| e.message)
}

/// Each case once before measuring: it answers, and with what we expect.
fn check_cases(f: &Fixture, cases: &[Case]) {
    for c in cases {
        let o = f.call(c.tool, &c.args);
        let s = &o.structured;
        let summary = match c.tool {
            "list-pods" | "shipped-list-pods" => format!("returned {} of total {}", s["returned"], s["total"]),
            "query-prometheus" => format!("{} series", s["series"]),
            _ => format!("total {}", s["total"]),
        };
        eprintln!("{}: {summary}; text {} bytes", c.id, o.text.len());
        match c.id {
            "default_limit" | "shipped_default_limit" => assert_eq!(s["returned"], 50),
            "limit_1000" => assert_eq!(s["total"], PODS),
            "query_prometheus" => assert_eq!(s["series"], 3),
            "escaped_argument" => assert_eq!(s["total"], 15.0),
            _ => {}
        }
    }
}

struct Case {
    id: &'static str,
    tool: &'static str,
    step: &'static str,
    args: Map<String, Value>,
}

fn cases() -> (Vec<Case>, Vec<Case>) {
    let pods = vec![
        Case { id: "default_limit", tool: "list-pods", step: "page", args: args(json!({})) },
        Case { id: "limit_1000", tool: "list-pods", step: "page", args: args(json!({"limit": 1000})) },
        Case { id: "shipped_default_limit", tool: "shipped-list-pods", step: "page", args: args(json!({})) },
    ];
    let promql = vec![
        Case {
            id: "query_prometheus",
            tool: "query-prometheus",
            step: "instant",
            args: args(
                json!({"query": "sum by (pod) (kube_pod_container_status_restarts_total{namespace=\"team-000\"})"}),
            ),
        },
        Case {
            id: "escaped_argument",
            tool: "bench-restarts",
            step: "restarts",
            args: args(json!({"namespace": "team-000\"} or vector(1) # \\"})),
        },
    ];
    (pods, promql)
}

fn engine(c: &mut Criterion) {
    let f = Fixture::new();
    let (pods, promql) = cases();
    check_cases(&f, &pods);
    check_cases(&f, &promql);

    for (group, cases) in [("list_pods", &pods), ("promql", &promql)] {
        let mut g = c.benchmark_group(group);
        g.sample_size(30).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(6));
        for case in cases.iter() {
            let proc = f.proc(case.tool);
            g.bench_function(case.id, |b| {
                b.iter(|| {
                    let cancel = CancellationToken::new();
                    let out = f.rt.block_on(invoke::run(&f.active, proc, black_box(&case.args), None, &cancel));
                    black_box(out.expect("call").structured)
                })
            });
        }
        g.finish();
    }

    type Render = fn(&Active, &Procedure, &str, &Map<String, Value>) -> Result<(), String>;
    for (group, render) in [("render", render_step as Render), ("render_checked", render_checked as Render)] {
        let mut g = c.benchmark_group(group);
        g.sample_size(50).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
        for case in pods.iter().take(1).chain(promql.iter()) {
            let proc = f.proc(case.tool);
            let prepared = invoke::prepare_args(proc, &case.args).expect("arguments");
            render(&f.active, proc, case.step, &prepared).expect("renders");
            let id = if case.id == "default_limit" { "list_pods" } else { case.id };
            g.bench_function(id, |b| b.iter(|| render(&f.active, proc, case.step, black_box(&prepared))));
        }
        g.finish();
    }
}

criterion_group!(benches, engine);
criterion_main!(benches);
