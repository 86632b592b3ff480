//! Property-based fuzzing with a seeded generator (stable Rust here has no libFuzzer): the
//! JSON-RPC entry (the check, id sniffing and the whole HTTP router in-process), the spec
//! loader and compiler, and request rendering (argument checking, rendering and running
//! every tool of the demo catalogue on the in-memory cluster). The properties: nothing
//! panics, HTTP never answers 5xx, every answer comes within seconds.
//!
//! Bounded in CI (`CHM_FUZZ_SECONDS`, default 2 per target). Longer, and reproducible:
//!
//! ```sh
//! CHM_FUZZ_SECONDS=600 CHM_FUZZ_SEED=12345 cargo test --release --test fuzz -- --nocapture
//! ```
//!
//! A failure prints the seed and the input; add the input to the regression lists below.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use cluster_health_mcp::engine::{Active, invoke};
use cluster_health_mcp::mcp::{http, jsonrpc, state::State};
use cluster_health_mcp::settings::Settings;
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// SplitMix64: small, fast, and the same sequence for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn budget() -> Duration {
    let secs = std::env::var("CHM_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

fn seed(target: &str) -> u64 {
    let base = std::env::var("CHM_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("fuzz {target}: CHM_FUZZ_SEED={base}");
    base ^ target.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

/// Tokens that break parsers: JSON, YAML and template syntax, odd numbers, unicode.
const NASTY: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    ":",
    ",",
    "null",
    "true",
    "-0",
    "1e309",
    "1.0",
    "-9223372036854775809",
    "18446744073709551616",
    "\u{0}",
    "\u{feff}",
    "é",
    "\u{10ffff}",
    "{{",
    "}}",
    "{%",
    "%}",
    "&a",
    "*a",
    "!!binary",
    "- ",
    "\n",
    "\t",
    "---",
    "'",
    "~",
    "<<",
    "${x}",
    "../",
    "%2e%2e",
    "\"id\"",
    "\"method\"",
    "\"params\"",
];

/// Byte-level and token-level mutations of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(at),
            2 => {
                let end = (at + rng.below(16)).min(v.len());
                v.drain(at..end);
            }
            3 => {
                let tok = rng.pick(NASTY).as_bytes().to_vec();
                v.splice(at..at, tok);
            }
            4 => {
                let end = (at + rng.below(32)).min(v.len());
                let dup = v[at..end].to_vec();
                v.splice(at..at, dup);
            }
            5 => {
                let byte = rng.next() as u8;
                v.insert(at, byte);
            }
            _ => {
                let n = [10, 1000, 70_000][rng.below(3)];
                let fill = rng.pick(&["a", "[", "{\"a\":", "\\u0000"]).repeat(n / 4 + 1);
                v.splice(at..at, fill.into_bytes());
            }
        }
    }
    v
}

const JSONRPC_SEEDS: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"f","version":"1"}}}"#,
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#,
    r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list-pods","arguments":{"namespace":"payments","limit":2}}}"#,
    r#"{"jsonrpc":"2.0","id":"s","method":"resources/read","params":{"uri":"cluster://namespaces/payments/pods"}}"#,
    r#"{"jsonrpc":"2.0","id":5,"method":"prompts/get","params":{"name":"investigate-pods","arguments":{"namespace":"x"}}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}"#,
    r#"{"jsonrpc":"2.0","id":6,"result":{}}"#,
    r#"[{"jsonrpc":"2.0","id":7,"method":"ping"}]"#,
];

/// Inputs that once misbehaved, replayed every run (none found so far).
const JSONRPC_REGRESSIONS: &[&str] = &[];

#[test]
fn the_json_rpc_check_and_id_sniffing_never_panic() {
    let mut rng = Rng(seed("jsonrpc-check"));
    let started = Instant::now();
    let mut n = 0;
    for r in JSONRPC_REGRESSIONS {
        let _ = jsonrpc::check(r.as_bytes());
    }
    while started.elapsed() < budget() {
        let seed_msg = *rng.pick(JSONRPC_SEEDS);
        let input = mutate(&mut rng, seed_msg.as_bytes());
        let outcome = std::panic::catch_unwind(|| {
            let _ = jsonrpc::sniff_id(&input);
            jsonrpc::check(&input)
        });
        match outcome {
            Err(_) => panic!("jsonrpc::check panicked on {:?}", String::from_utf8_lossy(&input)),
            Ok(Err(reject)) => assert!(reject.message.len() < 2048, "clipped: {}", reject.message.len()),
            Ok(Ok(_)) => {}
        }
        n += 1;
    }
    eprintln!("jsonrpc-check: {n} inputs");
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo() -> Active {
    let reg =
        cluster_health_mcp::engine::compile::load_registry(&[root().join("tools.d"), root().join("modes")]).unwrap();
    Active::new(Arc::new(reg), "demo").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_entry_never_answers_5xx_or_hangs() {
    let mut settings = Settings::default();
    settings.http.stateless = true;
    settings.http.rate_limit_per_second = 0;
    let app =
        http::router(State::new(demo()), &settings.http, "127.0.0.1:8080".parse().unwrap(), CancellationToken::new())
            .unwrap();
    let mut rng = Rng(seed("http-entry"));
    let started = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let ctypes = ["application/json", "application/json; charset=utf-8", "text/plain", ""];
    let accepts = ["application/json, text/event-stream", "*/*", "", "application/json"];
    while started.elapsed() < budget() {
        let seed_msg = *rng.pick(JSONRPC_SEEDS);
        let body = mutate(&mut rng, seed_msg.as_bytes());
        let mut req = axum::http::Request::post("/mcp")
            .header("host", "127.0.0.1:8080")
            .header("mcp-protocol-version", *rng.pick(&["2025-06-18", "2025-03-26", "bogus"]));
        for (name, values) in [("content-type", &ctypes[..]), ("accept", &accepts[..])] {
            let v = rng.pick(values);
            if !v.is_empty() {
                req = req.header(name, *v);
            }
        }
        let req = req.body(Body::from(body.clone())).unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            let resp = app.clone().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            status
        })
        .await;
        let status = answer.unwrap_or_else(|_| panic!("no answer within 10 s to {:?}", String::from_utf8_lossy(&body)));
        assert!(status < 500, "HTTP {status} for {:?}", String::from_utf8_lossy(&body));
        *statuses.entry(status).or_default() += 1;
    }
    eprintln!("http-entry: {statuses:?}");
}

/// Mutations of the shipped tool files, loaded and compiled with the shipped modes.
#[test]
fn the_spec_loader_never_panics() {
    let tools: Vec<(PathBuf, String)> = std::fs::read_dir(root().join("tools.d/core"))
        .unwrap()
        .chain(std::fs::read_dir(root().join("tools.d/monitoring")).unwrap())
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    assert!(!tools.is_empty());
    let modes: Vec<(PathBuf, String)> = std::fs::read_dir(root().join("modes"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    let mut rng = Rng(seed("spec-loader"));
    let started = Instant::now();
    let mut n = 0;
    let mut compiled = 0;
    while started.elapsed() < budget() {
        let (path, text) = rng.pick(&tools);
        let mutated = String::from_utf8_lossy(&mutate(&mut rng, text.as_bytes())).into_owned();
        let outcome = std::panic::catch_unwind(|| {
            use cluster_health_mcp::engine::compile;
            use cluster_health_mcp::spec::load;
            let mut loaded = load::Loaded::default();
            let mut diags = Vec::new();
            for (p, t) in &modes {
                load::load_str(p, t, &mut loaded, &mut diags);
            }
            load::load_str(path, &mutated, &mut loaded, &mut diags);
            let _ = compile::compile(loaded, &mut diags);
            diags.is_empty()
        });
        match outcome {
            Ok(ok) => compiled += usize::from(ok),
            Err(_) => {
                let file = std::env::temp_dir().join("chm-fuzz-spec-crash.yaml");
                std::fs::write(&file, &mutated).unwrap();
                panic!("the loader panicked on a mutation of {} (saved to {})", path.display(), file.display());
            }
        }
        n += 1;
    }
    eprintln!("spec-loader: {n} documents, {compiled} still valid");
}

static LONG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| "x".repeat(300));

/// A random argument value: usually of the input's type, sometimes not.
fn value(rng: &mut Rng, ty: &str, depth: usize) -> Value {
    let strings = [
        "",
        "payments",
        "default",
        "a",
        LONG.as_str(),
        "../etc",
        "a/b",
        "{{ 7*7 }}",
        "\"}) or vector(1)",
        "app=web,tier in (a,b)",
        "status.phase=Running",
        "5m",
        "1h30m",
        "é\u{0}",
        "*",
        ".*",
        "(?:a{100}){100}",
        "-1",
        "kube-system",
    ];
    match (rng.below(10), ty) {
        (0, _) => Value::Null,
        (1, _) if depth < 2 => json!([value(rng, "string", depth + 1), value(rng, "integer", depth + 1)]),
        (2, _) => json!(rng.pick(&strings)),
        (_, "integer") => json!(*rng.pick(&[0i64, 1, -1, 2, 50, 500, 501, 2000, i64::MAX, i64::MIN])),
        (_, "number") => json!(*rng.pick(&[0.0, 0.5, 1.0, 1e300, -3.25])),
        (_, "boolean") => json!(rng.below(2) == 0),
        (_, "array") => json!([rng.pick(&strings), rng.pick(&strings)]),
        (_, "object") => json!({"a": rng.pick(&strings)}),
        _ => json!(rng.pick(&strings)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendering_and_running_every_tool_with_random_arguments_never_panics() {
    let active = Arc::new(demo());
    let tools: Vec<String> = active.tools.keys().cloned().collect();
    let mut rng = Rng(seed("request-rendering"));
    let started = Instant::now();
    let (mut n, mut ok) = (0, 0);
    while started.elapsed() < budget() {
        let name = rng.pick(&tools).clone();
        let tool = active.tools[&name].clone();
        let mut args = Map::new();
        for (input, spec) in &tool.proc.inputs {
            if rng.below(3) > 0 {
                let ty = serde_json::to_value(spec.ty).unwrap();
                args.insert(input.clone(), value(&mut rng, ty.as_str().unwrap_or("string"), 0));
            }
        }
        if rng.below(10) == 0 {
            args.insert("unexpected".into(), json!(1));
        }
        let a = active.clone();
        let shown = Value::Object(args.clone()).to_string();
        let run = tokio::spawn(async move {
            let tool = a.tools[&name].clone();
            invoke::run(&a, &tool.proc, &args, None, &CancellationToken::new()).await.is_ok()
        });
        match tokio::time::timeout(Duration::from_secs(30), run).await {
            Ok(Ok(success)) => ok += usize::from(success),
            Ok(Err(e)) => panic!("running {} with {shown} panicked: {e}", tool.name),
            Err(_) => panic!("running {} with {shown} took over 30 s", tool.name),
        }
        n += 1;
    }
    eprintln!("request-rendering: {n} calls, {ok} succeeded");
}
