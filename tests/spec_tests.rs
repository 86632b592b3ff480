//! `cluster-health-mcp test`: the YAML spec tests under tests.d/ pass with a JUnit report,
//! cover every shipped tool, resource and prompt, and a wrong expectation fails with a located message (exit 1,
//! a <failure> in the report); `--update` writes expected text files.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cluster-health-mcp"))
        .current_dir(root())
        .env("CHM_LOG", "error")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_shipped_spec_tests_pass_with_a_junit_report() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("junit.xml");
    let out = chm(&["test", "tests.d", "--junit", report.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let xml = std::fs::read_to_string(&report).unwrap();
    let cases = xml.matches("<testcase ").count();
    assert!(cases >= 50, "{cases} test cases");
    assert!(xml.contains(&format!("<testsuites tests=\"{cases}\" failures=\"0\"")), "{}", &xml[..200]);
    assert!(stdout.ends_with(&format!("{cases} passed, 0 failed\n")), "{stdout}");
}

#[test]
fn every_shipped_tool_resource_and_prompt_has_a_spec_test() {
    let reg = cluster_health_mcp::engine::compile::load_registry(&[root().join("tools.d"), root().join("modes")])
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    let (mut tested, mut uris, mut prompts) = (BTreeSet::new(), Vec::new(), BTreeSet::new());
    let mut stack = vec![root().join("tests.d")];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "yaml") {
            for doc in cluster_health_mcp::spec::yaml::parse_values(&std::fs::read_to_string(&p).unwrap()).unwrap() {
                if let Some(t) = doc["spec"]["tool"].as_str() {
                    tested.insert(t.to_string());
                }
                if let Some(u) = doc["spec"]["resource"].as_str() {
                    uris.push(u.to_string());
                }
                if let Some(p) = doc["spec"]["prompt"].as_str() {
                    prompts.insert(p.to_string());
                }
            }
        }
    }
    let untested: Vec<&String> = reg.tools.keys().filter(|t| !tested.contains(*t)).collect();
    assert!(untested.is_empty(), "tools without a spec test in tests.d: {untested:?}");
    let unread: Vec<&String> =
        reg.resources.iter().filter(|(_, r)| !uris.iter().any(|u| r.match_uri(u).is_some())).map(|(n, _)| n).collect();
    assert!(unread.is_empty(), "resources without a spec test in tests.d: {unread:?}");
    let unrendered: Vec<&String> = reg.prompts.keys().filter(|p| !prompts.contains(*p)).collect();
    assert!(unrendered.is_empty(), "prompts without a spec test in tests.d: {unrendered:?}");
}

#[test]
fn a_wrong_expectation_fails_and_update_writes_the_expected_text() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.yaml");
    std::fs::write(
        &file,
        "apiVersion: cluster-health-mcp/v1\nkind: Test\nmetadata: {name: wrong}\nspec:\n  tool: list-nodes\n  \
         expect:\n    structured: {total: 8}\n---\napiVersion: cluster-health-mcp/v1\nkind: Test\nmetadata: {name: text}\n\
         spec:\n  tool: list-namespaces\n  expect:\n    textFile: ns.txt\n",
    )
    .unwrap();
    let report = dir.path().join("r.xml");
    let out = chm(&["test", file.to_str().unwrap(), "--junit", report.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  wrong") && stdout.contains("$.total: got 7, expected 8"), "{stdout}");
    assert!(stdout.contains("ns.txt (run with --update to create it)"), "{stdout}");
    assert!(
        std::fs::read_to_string(&report)
            .unwrap()
            .contains("<failure message=\"structured: $.total: got 7, expected 8\"")
    );

    let out = chm(&["test", file.to_str().unwrap(), "--update"]);
    assert_eq!(out.status.code(), Some(1), "the wrong expectation still fails");
    let text = std::fs::read_to_string(dir.path().join("ns.txt")).unwrap();
    assert!(text.starts_with("10 namespaces: data-platform"), "{text}");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("total: 8", "total: 7")).unwrap();
    let out = chm(&["test", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_mode_captures_a_live_prometheus_and_the_recording_replays_offline() {
    // A live Prometheus API (any query: one series per node with a value).
    let app = axum::Router::new().fallback(|| async {
        axum::Json(serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"instance": "node-a"}, "value": [1764496800, "0.25"]},
            {"metric": {"instance": "node-b"}, "value": [1764496800, "0.5"]}]}}))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.yaml");
    std::fs::write(
        &file,
        "apiVersion: cluster-health-mcp/v1\nkind: Test\nmetadata: {name: util}\nspec:\n  tool: get-node-utilization\n  \
         prometheus: rec.json\n  expect:\n    structured: {cluster: {cpu_percent: 37.5, memory_percent: 37.5}}\n",
    )
    .unwrap();
    let f = file.to_str().unwrap().to_string();
    let rec = tokio::task::spawn_blocking(move || chm(&["test", &f, "--record-prometheus", &live])).await.unwrap();
    assert!(rec.status.success(), "{}", String::from_utf8_lossy(&rec.stdout));
    let recording: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("rec.json")).unwrap()).unwrap();
    let answers = recording["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 2, "cpu and memory queries recorded: {recording}");
    assert!(answers.iter().all(|a| a["path"] == "/api/v1/query"));

    server.abort();
    let f = file.to_str().unwrap().to_string();
    let replay = tokio::task::spawn_blocking(move || chm(&["test", &f])).await.unwrap();
    assert!(replay.status.success(), "offline from the recording: {}", String::from_utf8_lossy(&replay.stdout));
}
