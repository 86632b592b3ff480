//! The fault-and-abuse suite (issue 10): each case starts the real binary on loopback and
//! attacks it as the original report did, with bounded sizes and times. What each test pins:
//! a catastrophic grep leaves /healthz answering fast; sessions past the cap are refused with
//! memory bounded; slow and idle clients are cut off; connections past the cap are refused
//! and descriptors stay bounded; integral floats reach the backend as integers; malformed
//! bodies get 400 and JSON-RPC codes; `snapshot serve` masks Secrets and checks Host and
//! token; stdio answers an over-long line; session and rate limits hold per client address.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_cluster-health-mcp");

/// The cases measure latency and memory: they run one at a time, not beside each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running server; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Start `serve --transport http` on a free loopback port; `args` go before `serve`.
    fn start(global: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(global)
            .args(["serve", "--transport", "http", "--bind", "127.0.0.1:0", "--no-reload"])
            .env("CHM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("at http://").nth(1)
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(rest.split('/').next().unwrap_or_default().to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the server announces its address");
        Server { child, addr: addr.parse().unwrap() }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap()
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).unwrap().count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    cluster_health_mcp::install_crypto_provider();
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

/// A stateless tools/call; the JSON-RPC answer.
async fn call(c: &reqwest::Client, s: &Server, tool: &str, args: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}});
    let r = c
        .post(s.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

/// A snapshot with one pod whose log has long lines of `a`.
fn hostile_snapshot(dir: &Path, lines: usize, line_len: usize) {
    let pods = dir.join("namespaces/abuse/core");
    std::fs::create_dir_all(&pods).unwrap();
    std::fs::write(
        pods.join("pods.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: victim, namespace: abuse, creationTimestamp: '2026-01-01T00:00:00Z'}\nspec: {containers: [{name: app, image: x}]}\nstatus: {phase: Running}\n",
    )
    .unwrap();
    let logs = dir.join("namespaces/abuse/pods/victim/app/app/logs");
    std::fs::create_dir_all(&logs).unwrap();
    let line = "a".repeat(line_len);
    let text: String = (0..lines).map(|_| format!("{line}\n")).collect();
    std::fs::write(logs.join("current.log"), text).unwrap();
}

async fn healthz_ms(c: &reqwest::Client, s: &Server) -> f64 {
    let t = Instant::now();
    let r = c.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    t.elapsed().as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_catastrophic_grep_leaves_healthz_answering_fast() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    hostile_snapshot(dir.path(), 400, 16 * 1024);
    let snap = dir.path().to_str().unwrap().to_string();
    let s = Server::start(
        &["--mode", "standalone", "--snapshot", &snap, "--set", "backends.kubernetes.timeout=4s"],
        &[("CHM_HTTP__STATELESS", "true")],
    );
    let c = client();
    // Warm up (snapshot load, discovery).
    let warm = call(&c, &s, "get-pod-logs", json!({"namespace": "abuse", "name": "victim", "tail": 1})).await;
    assert_eq!(warm["result"]["structuredContent"]["returned"], 1, "{warm}");

    // The pattern of the original report is refused at once: too large once compiled.
    let t = Instant::now();
    let refused = call(
        &c,
        &s,
        "get-pod-logs",
        json!({"namespace": "abuse", "name": "victim", "tail": 2000, "grep": "(?:a{100}){100}"}),
    )
    .await;
    let text = refused["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("invalid grep pattern") && t.elapsed() < Duration::from_secs(2), "{refused}");

    // The costliest patterns that compile (about 0.1 s a 16 KiB line): 400 lines would take
    // a minute; the step's timeout stops them.
    let started = Instant::now();
    let attack = |c: reqwest::Client| {
        let url = s.url("/mcp");
        async move {
            let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get-pod-logs",
                "arguments": {"namespace": "abuse", "name": "victim", "tail": 2000, "grep": "(?:a{20}){100}"}}});
            let t = Instant::now();
            let r = c
                .post(url)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-06-18")
                .json(&body)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            (t.elapsed(), v)
        }
    };
    let attacks = [tokio::spawn(attack(c.clone())), tokio::spawn(attack(c.clone()))];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst: f64 = 0.0;
    let mut probes = 0;
    while !attacks.iter().all(|a| a.is_finished()) && started.elapsed() < Duration::from_secs(30) {
        worst = worst.max(healthz_ms(&c, &s).await);
        probes += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut took = Vec::new();
    for a in attacks {
        let (elapsed, v) = a.await.unwrap();
        took.push(elapsed);
        let text = v["result"]["content"][0]["text"].as_str().unwrap_or_default().to_string();
        eprintln!("grep call: {elapsed:?}: {}", &text[..text.len().min(200)]);
    }
    eprintln!("healthz worst {worst:.1} ms over {probes} probes while grepping");
    assert!(probes >= 3, "the attack lasted long enough to probe ({probes} probes, calls took {took:?})");
    assert!(worst < 100.0, "healthz answered in {worst:.1} ms during the attack");
    assert!(took.iter().all(|t| *t < Duration::from_secs(10)), "the step timeout (4 s) bounds the calls: {took:?}");
    // The filtering stopped with the calls: the server is idle again.
    let cpu = |s: &Server| {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.child.id())).unwrap();
        let fields: Vec<u64> =
            stat.rsplit(')').next().unwrap().split_whitespace().skip(11).take(2).map(|f| f.parse().unwrap()).collect();
        fields[0] + fields[1] // utime + stime, in clock ticks (1/100 s)
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu(&s);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy = cpu(&s) - before;
    eprintln!("server CPU after the calls: {busy} ticks in 1 s");
    assert!(busy < 30, "after the timeout the grep stops burning CPU: {busy} ticks in 1 s");
    // The server still serves calls afterwards.
    let after = call(&c, &s, "get-pod-logs", json!({"namespace": "abuse", "name": "victim", "tail": 2})).await;
    assert_eq!(after["result"]["structuredContent"]["returned"], 2, "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_thousand_initializes_are_refused_past_the_cap_with_memory_bounded() {
    let _serial = SERIAL.lock().await;
    let cap = 200;
    let s = Server::start(
        &[],
        &[
            ("CHM_HTTP__MAX_SESSIONS", "200"),
            ("CHM_HTTP__MAX_SESSIONS_PER_CLIENT", "200"),
            ("CHM_HTTP__RATE_LIMIT_PER_SECOND", "0"),
        ],
    );
    let c = client();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
        "capabilities": {}, "clientInfo": {"name": "abuse", "version": "1"}}});
    let rss_start = s.rss_kib();
    let send = |c: reqwest::Client, url: String, init: Value| async move {
        c.post(url)
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    // Fill the cap, then measure.
    let mut ok = 0;
    for _ in 0..cap {
        ok += usize::from(send(c.clone(), s.url("/mcp"), init.clone()).await == 200);
    }
    assert_eq!(ok, cap);
    let rss_full = s.rss_kib();
    let t = Instant::now();
    let total = 20_000;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for chunk in 0..(total - cap) / 50 {
        let _ = chunk;
        let batch: Vec<_> = (0..50).map(|_| tokio::spawn(send(c.clone(), s.url("/mcp"), init.clone()))).collect();
        for b in batch {
            *statuses.entry(b.await.unwrap()).or_default() += 1;
        }
    }
    let rss_end = s.rss_kib();
    eprintln!(
        "{total} initializes in {:?}: {cap} accepted, then {statuses:?}; RSS {rss_start} KiB at start, {rss_full} KiB with {cap} sessions (~{} KiB each), {rss_end} KiB after the refusals",
        t.elapsed(),
        (rss_full.saturating_sub(rss_start)) / cap as u64
    );
    assert_eq!(statuses.get(&503).copied(), Some(total - cap), "{statuses:?}");
    assert!(rss_end < rss_full + 32 * 1024, "refused sessions cost no memory: {rss_full} -> {rss_end} KiB");
    assert!(rss_end < 256 * 1024, "RSS stays bounded: {rss_end} KiB");
    // A refusal says why, as JSON-RPC.
    let r = c.post(s.url("/mcp")).header("accept", "*/*").json(&init).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32000);
    assert!(body["error"]["message"].as_str().unwrap().contains("maximum of 200 sessions"), "{body}");
}

/// Read until the server closes the connection or `limit` passes; what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_slow_bodies_and_idle_connections_are_cut_off() {
    let _serial = SERIAL.lock().await;
    let s = Server::start(&[], &[("CHM_HTTP__HEADER_TIMEOUT_SECONDS", "2"), ("CHM_HTTP__BODY_TIMEOUT_SECONDS", "2")]);
    // Headers trickled one byte every 500 ms.
    let mut trickle = TcpStream::connect(s.addr).await.unwrap();
    let t = Instant::now();
    let head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    for b in head {
        if trickle.write_all(&[*b]).await.is_err() {
            closed_after = Some(t.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut probe = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), trickle.read(&mut probe)).await {
            let _ = n;
            closed_after = Some(t.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the server cut the trickling client off");
    eprintln!("header trickle cut off after {closed_after:?}");
    assert!(closed_after < Duration::from_secs(5), "{closed_after:?}");

    // A body trickled after complete headers: 408.
    let mut slow_body = TcpStream::connect(s.addr).await.unwrap();
    slow_body
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"")
        .await
        .unwrap();
    let t = Instant::now();
    let answer = read_until_closed(&mut slow_body, Duration::from_secs(6)).await.expect("answered in time");
    eprintln!("body trickle answered after {:?}", t.elapsed());
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // An idle kept-alive connection is closed.
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let t = Instant::now();
    let answer = read_until_closed(&mut idle, Duration::from_secs(6)).await.expect("closed when idle");
    eprintln!("idle keep-alive closed after {:?}", t.elapsed());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_answered_503_and_descriptors_stay_bounded() {
    let _serial = SERIAL.lock().await;
    let s = Server::start(&[], &[("CHM_HTTP__MAX_CONNECTIONS", "50"), ("CHM_HTTP__HEADER_TIMEOUT_SECONDS", "30")]);
    let base_fds = s.open_fds();
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(TcpStream::connect(s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // More clients: refused with an answer, not left hanging.
    let mut refused = 0;
    let mut extra = Vec::new();
    for _ in 0..500 {
        if let Ok(c) = TcpStream::connect(s.addr).await {
            extra.push(c);
        }
    }
    for c in extra.iter_mut().take(20) {
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
        if let Some(answer) = read_until_closed(c, Duration::from_secs(5)).await {
            refused += usize::from(answer.starts_with("HTTP/1.1 503"));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds = s.open_fds();
    eprintln!(
        "{} held + {} extra connections: server fds {base_fds} -> {fds}; {refused}/20 probes got 503",
        held.len(),
        extra.len()
    );
    assert!(refused >= 15, "over the cap, clients get 503: {refused}/20");
    assert!(fds < base_fds + 50 + 64 + 16, "descriptors stay bounded by the caps: {fds}");
    // Free the held connections: service resumes.
    drop(held);
    drop(extra);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = client().get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integral_floats_reach_the_backend_as_integers() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    hostile_snapshot(dir.path(), 50, 10);
    let snap = dir.path().to_str().unwrap().to_string();
    let s = Server::start(&["--mode", "standalone", "--snapshot", &snap], &[("CHM_HTTP__STATELESS", "true")]);
    let c = client();
    let logs = call(&c, &s, "get-pod-logs", json!({"namespace": "abuse", "name": "victim", "tail": 1.0})).await;
    assert_eq!(logs["result"]["structuredContent"]["returned"], 1, "{logs}");
    let s2 = Server::start(&[], &[("CHM_HTTP__STATELESS", "true")]);
    let pods = call(&c, &s2, "list-pods", json!({"limit": 1.0})).await;
    assert_eq!(pods["result"]["structuredContent"]["pods"].as_array().map(Vec::len), Some(1), "{pods}");
    let bad = call(&c, &s2, "list-pods", json!({"limit": 1.5})).await;
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    let huge = call(&c, &s2, "get-pod", json!({"namespace": "default", "name": "x".repeat(3 << 20)})).await;
    let text = huge.to_string();
    assert!(text.len() < 4096, "a 3 MB invalid name is not echoed back: {} bytes", text.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_and_json_rpc_error_codes() {
    let _serial = SERIAL.lock().await;
    let s = Server::start(&[], &[]);
    let raw = |req: String| {
        let addr = s.addr;
        async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(req.as_bytes()).await.unwrap();
            read_until_closed(&mut c, Duration::from_secs(10)).await.unwrap()
        }
    };
    let head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: */*\r\nConnection: close\r\n";
    let chunked = raw(format!("{head}Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n")).await;
    assert!(chunked.starts_with("HTTP/1.1 400"), "malformed chunked body: {chunked}");
    let body = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":";
    let parse = raw(format!("{head}Content-Length: {}\r\n\r\n{body}", body.len())).await;
    assert!(parse.starts_with("HTTP/1.1 400") && parse.contains("-32700") && parse.contains("\"id\":3"), "{parse}");
    let body = r#"{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"capabilities":7}}"#;
    let params = raw(format!("{head}Content-Length: {}\r\n\r\n{body}", body.len())).await;
    assert!(params.contains("-32602") && params.contains("\"id\":4"), "{params}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_serve_masks_secrets_and_checks_host_and_token() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("namespaces/app/core");
    std::fs::create_dir_all(&core).unwrap();
    std::fs::write(
        core.join("secrets.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: app\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"data\":{\"password\":\"aHVudGVyMg==\"}}'\ndata: {password: aHVudGVyMg==}\nstringData: {user: admin-plain}\n",
    )
    .unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let mut child = Command::new(BIN)
        .args(["snapshot", "serve", dir.path().to_str().unwrap(), "--token-file", token.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut kubeconfig = String::new();
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(l)) = lines.next() {
        kubeconfig.push_str(&l);
        kubeconfig.push('\n');
        if l.contains("token:") {
            break;
        }
    }
    let url = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().to_string();
    assert!(kubeconfig.contains("token: \"t0ken\""), "the kubeconfig carries the token: {kubeconfig}");
    let c = client();
    let get = |host: Option<&str>, auth: Option<&str>| {
        let mut r = c.get(format!("{url}/api/v1/namespaces/app/secrets/db"));
        if let Some(h) = host {
            r = r.header("host", h);
        }
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    assert_eq!(get(None, None).await.unwrap().status(), 401);
    assert_eq!(get(Some("evil.example.com"), Some("Bearer t0ken")).await.unwrap().status(), 403);
    let r = get(None, Some("bearer t0ken")).await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains("aHVudGVyMg") && !text.contains("admin-plain"), "values are masked: {text}");
    assert!(text.contains("<masked>"), "{text}");
    let list = c
        .get(format!("{url}/api/v1/secrets"))
        .header("authorization", "Bearer t0ken")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains("aHVudGVyMg") && list.contains("<masked>"), "{list}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn stdio_answers_over_long_and_malformed_lines_that_carry_an_id() {
    let _serial = SERIAL.blocking_lock();
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["serve", "--no-reload"])
        .env("CHM_HTTP__BODY_LIMIT", "65536")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = |line: String| {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    };
    send(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"abuse","version":"1"}}}"#.into());
    let init: Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
    assert_eq!(init["id"], 1);
    send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into());
    send(format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"get-pod","arguments":{{"name":"{}"}}}}}}"#,
        "x".repeat(100_000)
    ));
    let long: Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
    assert_eq!((long["id"].clone(), long["error"]["code"].clone()), (json!(42), json!(-32600)), "{long}");
    send(r#"{"jsonrpc":"2.0","id":43,"method":"tools/call","params":"#.into());
    let broken: Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
    assert_eq!((broken["id"].clone(), broken["error"]["code"].clone()), (json!(43), json!(-32700)), "{broken}");
    send(r#"{"jsonrpc":"2.0","id":44,"method":"tools/call","params":{"name":7}}"#.into());
    let params: Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
    assert_eq!((params["id"].clone(), params["error"]["code"].clone()), (json!(44), json!(-32602)), "{params}");
    send(r#"{"jsonrpc":"2.0","id":45,"method":"tools/list"}"#.into());
    let list: Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
    assert_eq!(list["id"], 45);
    assert!(list["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()), "still serving: {list}");
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "stdio ends cleanly at EOF: {status}");
}

fn client_from(ip: [u8; 4]) -> reqwest::Client {
    cluster_health_mcp::install_crypto_provider();
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_per_client_address() {
    let _serial = SERIAL.lock().await;
    let s = Server::start(&[], &[("CHM_HTTP__RATE_LIMIT_PER_SECOND", "5"), ("CHM_HTTP__MAX_SESSIONS_PER_CLIENT", "5")]);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
        "capabilities": {}, "clientInfo": {"name": "abuse", "version": "1"}}});
    let post = |c: &reqwest::Client| {
        c.post(s.url("/mcp")).header("accept", "application/json, text/event-stream").json(&init).send()
    };
    // Client A (127.0.0.1) opens sessions until its own cap.
    let a = client_from([127, 0, 0, 1]);
    let mut a_statuses = Vec::new();
    for _ in 0..7 {
        a_statuses.push(post(&a).await.unwrap().status().as_u16());
    }
    assert_eq!(a_statuses, [200, 200, 200, 200, 200, 503, 503], "per-client session cap");
    // Client B (127.0.0.2) is not affected.
    let b = client_from([127, 0, 0, 2]);
    assert_eq!(post(&b).await.unwrap().status(), 200, "another client still gets a session");
    // A floods: past its burst (10, 7 spent) it gets 429 with Retry-After; B is still served.
    let mut limited = 0;
    let mut retry_after = None;
    for _ in 0..80 {
        let r = a.get(s.url("/mcp")).send().await.unwrap();
        if r.status() == 429 {
            limited += 1;
            retry_after = r.headers().get("retry-after").cloned();
        }
    }
    eprintln!("flooding client: {limited}/80 requests limited");
    assert!(limited >= 40, "the flood is limited: {limited}/80");
    assert!(retry_after.is_some());
    let r = b.get(s.url("/mcp")).send().await.unwrap();
    assert_ne!(r.status(), 429, "the other client is not limited");
}
