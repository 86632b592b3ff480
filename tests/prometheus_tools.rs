//! The monitoring catalogue against a real Prometheus (tests/prometheus/start.sh: Debian's
//! Prometheus loaded with 8 days of synthetic OpenShift metrics and firing alerts). Numbers
//! are checked against expected.json, computed independently in Python from the generated
//! samples; goldens pin the shape (rows, severities, urgencies) with numbers masked. Then
//! Prometheus is stopped and the tools must answer "unavailable" within their timeout while
//! get-cluster-health keeps its Kubernetes sections.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_health_mcp::engine::{Active, invoke};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Prometheus {
    url: String,
    pid: String,
    dir: String,
    expected: Value,
}

impl Prometheus {
    fn start() -> Prometheus {
        let out = Command::new(root().join("tests/prometheus/start.sh"))
            .output()
            .expect("tests/prometheus/start.sh runs (Prometheus comes from scripts/test-deps.sh)");
        assert!(
            out.status.success(),
            "Prometheus did not start (run scripts/test-deps.sh first):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let get = |k: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("start.sh printed no {k}: {stdout}"))
                .to_string()
        };
        let expected = serde_json::from_str(&std::fs::read_to_string(get("EXPECTED")).unwrap()).unwrap();
        Prometheus { url: get("PROMETHEUS_URL"), pid: get("PROMETHEUS_PID"), dir: get("PROMETHEUS_DIR"), expected }
    }

    fn stop(&self) {
        let _ = Command::new(root().join("tests/prometheus/stop.sh")).args([&self.pid, &self.dir]).status();
    }

    fn expected(&self, query: &str) -> Vec<Value> {
        self.expected["queries"][query]["values"].as_array().cloned().unwrap_or_default()
    }
}

fn monitoring(url: &str) -> Active {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(
        dir.join("mode.yaml"),
        format!(
            r#"
apiVersion: cluster-health-mcp/v1
kind: Mode
metadata: {{name: test-monitoring}}
spec:
  backends:
    kubernetes: {{source: {{kubeconfig: null, snapshot: {{path: "builtin:demo"}}}}}}
    prometheus: {{url: "{url}", timeout: 5s}}
"#
        ),
    )
    .unwrap();
    let paths = [root().join("tools.d"), root().join("modes"), root().join("tests/prometheus/specs"), dir];
    let reg = cluster_health_mcp::engine::compile::load_registry(&paths)
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
    Active::new(Arc::new(reg), "test-monitoring").unwrap()
}

async fn call(active: &Active, tool: &str, args: Value) -> Result<invoke::Outcome, String> {
    let t = active.tools.get(tool).unwrap_or_else(|| panic!("{tool} exposed"));
    invoke::run(active, &t.proc, args.as_object().unwrap(), None, &CancellationToken::new())
        .await
        .map_err(|e| e.to_string())
}

fn close(got: f64, want: &Value) -> bool {
    let v = want["value"].as_f64().unwrap();
    let tol = &want["tolerance"];
    let allowed = tol["abs"].as_f64().unwrap_or(0.0).max(tol["rel"].as_f64().unwrap_or(0.0) * v.abs()).max(1e-9);
    (got - v).abs() <= allowed
}

/// Numbers drift as the live exporter keeps writing; names, severities and verdicts do not.
fn mask(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => json!("<number>"),
        // Row order can follow drifting values; the goldens compare rows as a set.
        Value::Array(a) => {
            let mut rows: Vec<Value> = a.iter().map(mask).collect();
            rows.sort_by_key(|r| r.to_string());
            Value::Array(rows)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let masked = matches!(k.as_str(), "since" | "age" | "budget_bytes" | "count")
                        || k.ends_with("_percent")
                        || k.starts_with("recommended_");
                    (k.clone(), if masked { json!("<masked>") } else { mask(v) })
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn golden(name: &str, got: &Value, failures: &mut Vec<String>) {
    let path = root().join("tests/golden/monitoring").join(format!("{name}.json"));
    let got = mask(got);
    if std::env::var("GOLDEN").is_ok_and(|v| v == "overwrite") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(t) if serde_json::from_str::<Value>(&t).unwrap() == got => {}
        Ok(_) => failures.push(format!(
            "{name} differs from {}:\n{}",
            path.display(),
            serde_json::to_string_pretty(&got).unwrap()
        )),
        Err(_) => failures.push(format!("{name}: no golden {} (GOLDEN=overwrite)", path.display())),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn monitoring_tools_against_a_real_prometheus() {
    let prom = Prometheus::start();
    let result = std::panic::AssertUnwindSafe(checks(&prom));
    let outcome = futures::FutureExt::catch_unwind(result).await;
    prom.stop();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn checks(prom: &Prometheus) {
    let active = monitoring(&prom.url);
    let mut failures = Vec::new();

    // Throttling: the set above 25% and each ratio.
    let out = call(&active, "get-throttled-pods", json!({})).await.unwrap();
    let rows = out.structured["throttled_pods"].as_array().unwrap().clone();
    let want: Vec<Value> =
        prom.expected("throttle_ratio").into_iter().filter(|w| w["value"].as_f64().unwrap() >= 0.25).collect();
    let got_pods: BTreeSet<String> = rows.iter().map(|r| r["pod"].as_str().unwrap().to_string()).collect();
    let want_pods: BTreeSet<String> = want.iter().map(|w| w["labels"]["pod"].as_str().unwrap().to_string()).collect();
    assert_eq!(got_pods, want_pods, "throttled pods");
    for w in &want {
        let r = rows.iter().find(|r| r["pod"] == w["labels"]["pod"]).unwrap();
        assert!(
            close(r["throttle_rate_pct"].as_f64().unwrap() / 100.0, w),
            "throttle of {}: {} vs {}",
            w["labels"]["pod"],
            r["throttle_rate_pct"],
            w["value"]
        );
        let v = w["value"].as_f64().unwrap();
        let sev = if v >= 0.75 {
            "critical"
        } else if v >= 0.5 {
            "high"
        } else {
            "medium"
        };
        assert_eq!(r["severity"], sev);
    }
    golden("get-throttled-pods", &out.structured, &mut failures);

    // Node utilisation, per node.
    let out = call(&active, "get-node-utilization", json!({})).await.unwrap();
    for (q, field) in [("node_cpu_utilisation", "cpu_percent"), ("node_memory_utilisation", "memory_percent")] {
        for w in prom.expected(q) {
            let node = w["labels"]["instance"].as_str().unwrap();
            let row = out.structured["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["node"] == node)
                .unwrap_or_else(|| panic!("{node} listed"));
            let got = row[field].as_f64().unwrap() / 100.0;
            assert!((got - w["value"].as_f64().unwrap()).abs() <= 0.015, "{q} {node}: {got} vs {}", w["value"]);
        }
    }
    golden("get-node-utilization", &out.structured, &mut failures);

    // Disk exhaustion: the filling /var on worker-1 within its tolerance, tmpfs ignored.
    let out = call(&active, "predict-disk-exhaustion", json!({})).await.unwrap();
    let fs = out.structured["filesystems"].as_array().unwrap();
    assert!(fs.iter().all(|f| f["mountpoint"] != "/dev/shm" && f["mountpoint"] != "/run"), "tmpfs is ignored");
    for w in prom.expected("filesystem_days_to_full").iter().filter(|w| w["value"].as_f64().unwrap() > 0.0) {
        let row = fs
            .iter()
            .find(|f| f["node"] == w["labels"]["instance"] && f["mountpoint"] == w["labels"]["mountpoint"])
            .unwrap();
        assert!(
            close(row["days_until_full"].as_f64().unwrap(), w),
            "days to full {:?}: {} vs {}",
            w["labels"],
            row["days_until_full"],
            w["value"]
        );
    }
    let var = out.structured["at_risk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["node"] == "worker-1" && f["mountpoint"] == "/var")
        .cloned()
        .unwrap();
    assert_eq!(var["urgency"], "warning", "5 days to full is a warning (< 7 d)");
    golden("predict-disk-exhaustion", &out.structured, &mut failures);

    // Memory leaks: only the leaking container passes 10 MiB/day, at the expected rate.
    let out = call(&active, "detect-memory-leaks", json!({})).await.unwrap();
    let leaks = out.structured["leaks"].as_array().unwrap();
    let want: Vec<Value> = prom
        .expected("memory_growth_bytes_per_day")
        .into_iter()
        .filter(|w| w["value"].as_f64().unwrap() >= 10.0 * 1048576.0)
        .collect();
    assert_eq!(leaks.len(), want.len(), "{leaks:?}");
    for w in &want {
        let id = format!(
            "{}/{}/{}",
            w["labels"]["namespace"].as_str().unwrap(),
            w["labels"]["pod"].as_str().unwrap(),
            w["labels"]["container"].as_str().unwrap()
        );
        let row = leaks.iter().find(|l| l["container"] == id.as_str()).unwrap_or_else(|| panic!("{id} detected"));
        assert!(
            close(row["growth_mib_per_day"].as_f64().unwrap() * 1048576.0, w),
            "{id}: {} MiB/day vs {}",
            row["growth_mib_per_day"],
            w["value"]
        );
    }
    golden("detect-memory-leaks", &out.structured, &mut failures);

    // Rightsizing over 7 days: the scenario's over- and under-provisioned containers.
    let out = call(&active, "get-rightsizing-recommendations", json!({"window": "7d", "top": 50})).await.unwrap();
    let recs = out.structured["recommendations"].as_array().unwrap();
    let status = |needle: &str| {
        recs.iter()
            .find(|r| r["container"].as_str().unwrap().contains(needle))
            .map(|r| r["status"].as_str().unwrap().to_string())
    };
    for over in ["payments-api", "airflow-scheduler", "batch-inference"] {
        assert_eq!(status(over).as_deref(), Some("over-provisioned"), "{over}: {recs:?}");
    }
    assert_eq!(status("cart").as_deref(), Some("under-provisioned"), "{recs:?}");
    for w in prom.expected("cpu_p95_7d") {
        let id = format!(
            "{}/{}/{}",
            w["labels"]["namespace"].as_str().unwrap(),
            w["labels"]["pod"].as_str().unwrap(),
            w["labels"]["container"].as_str().unwrap()
        );
        if let Some(r) = recs.iter().find(|r| r["container"] == id.as_str()) {
            assert!(
                close(
                    r["p95_cores"].as_f64().unwrap(),
                    &json!({"value": w["value"], "tolerance": {"rel": 0.05, "abs": 0.005}})
                ),
                "P95 {id}"
            );
        }
    }
    golden("get-rightsizing-recommendations", &out.structured, &mut failures);

    // Alerts: exactly the firing set of the rules file.
    let out = call(&active, "list-alerts", json!({})).await.unwrap();
    let key = |l: &Value| {
        format!(
            "{}|{}|{}",
            l["alertname"].as_str().unwrap_or(""),
            l["namespace"].as_str().unwrap_or(""),
            l["pod"].as_str().or(l["node"].as_str()).or(l["instance"].as_str()).unwrap_or("")
        )
    };
    let got: BTreeSet<String> = out.structured["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}|{}|{}",
                a["name"].as_str().unwrap(),
                a["namespace"].as_str().unwrap_or(""),
                a["target"].as_str().unwrap_or("")
            )
        })
        .collect();
    let want: BTreeSet<String> =
        prom.expected["alerts"]["firing"].as_array().unwrap().iter().map(|a| key(&a["labels"])).collect();
    assert_eq!(got.len(), want.len(), "firing alerts: got {got:?}, want {want:?}");
    golden("list-alerts", &out.structured, &mut failures);

    // Rules, trends and top pods answer with real data.
    let out = call(&active, "list-alert-rules", json!({})).await.unwrap();
    assert!(out.structured["rules"].as_array().unwrap().len() >= 8);
    golden("list-alert-rules", &out.structured, &mut failures);
    let out = call(&active, "get-capacity-trends", json!({"window": "3d"})).await.unwrap();
    assert_eq!(out.structured["resources"].as_array().unwrap().len(), 2);
    golden("get-capacity-trends", &out.structured, &mut failures);
    let out = call(&active, "get-top-pods", json!({"top": 5})).await.unwrap();
    let cores: Vec<f64> =
        out.structured["pods"].as_array().unwrap().iter().map(|p| p["cpu_cores"].as_f64().unwrap()).collect();
    assert!(cores.len() == 5 && cores.windows(2).all(|w| w[0] >= w[1]), "busiest first: {cores:?}");
    golden("get-top-pods", &out.structured, &mut failures);

    // query-prometheus: an instant query compared with the independent value.
    let w = prom.expected("node_cpu_utilisation").into_iter().find(|w| w["labels"]["instance"] == "worker-1").unwrap();
    let q = r#"1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle",instance="worker-1"}[5m]))"#;
    let out = call(&active, "query-prometheus", json!({"query": q})).await.unwrap();
    let got = out.structured["result"][0]["value"].as_f64().unwrap();
    assert!((got - w["value"].as_f64().unwrap()).abs() <= 0.015, "{}", out.text);
    // The evaluation time: at T (the reference time of expected.json) the value is exact.
    let t = prom.expected["reference_time"].as_f64().unwrap();
    let at_t = call(&active, "query-prometheus", json!({"query": q, "time": format!("{t:.0}")})).await.unwrap();
    let got = at_t.structured["result"][0]["value"].as_f64().unwrap();
    let want = w["value"].as_f64().unwrap();
    assert!((got - want).abs() <= 1e-9 * want.abs(), "at T: {got} vs {want}: {}", at_t.text);
    let util = call(&active, "get-node-utilization", json!({"time": format!("{t:.0}")})).await.unwrap();
    for w in prom.expected("node_cpu_utilisation") {
        let row =
            util.structured["nodes"].as_array().unwrap().iter().find(|r| r["node"] == w["labels"]["instance"]).unwrap();
        let want = (w["value"].as_f64().unwrap() * 1000.0).round() / 10.0;
        assert_eq!(row["cpu_percent"].as_f64().unwrap(), want, "get-node-utilization at T: {}", util.text);
    }
    assert!(
        util.text.starts_with("Cluster average") && util.text.contains(&format!("(evaluated at {t:.0})")),
        "{}",
        util.text
    );
    // An hour before T the CPU reads differently (diurnal cycle), so `time` is really sent.
    let earlier =
        call(&active, "query-prometheus", json!({"query": q, "time": format!("{:.0}", t - 3600.0)})).await.unwrap();
    assert_ne!(earlier.structured["result"][0]["value"], at_t.structured["result"][0]["value"]);
    let trends =
        call(&active, "get-capacity-trends", json!({"window": "1d", "time": format!("{t:.0}")})).await.unwrap();
    assert!(trends.structured["resources"][0]["current"].as_f64().is_some(), "a window ending at T: {}", trends.text);
    let range = call(&active, "query-prometheus", json!({"query": "sum(rate(container_cpu_usage_seconds_total{namespace=\"payments\"}[5m]))", "type": "range", "start": "-6h"})).await.unwrap();
    let s = &range.structured["result"][0];
    assert!(
        s["count"].as_u64().unwrap() <= 240 && s["min"].as_f64().unwrap() <= s["max"].as_f64().unwrap(),
        "range summarised within the point budget: {s}"
    );
    golden("query-prometheus-range", &range.structured, &mut failures);
    for hostile in [r#"up{job=~".*"}"#, "node_cpu_seconds_total", r#"sum(up{job!~""})"#] {
        let err = call(&active, "query-prometheus", json!({"query": hostile})).await.unwrap_err();
        assert!(err.contains("matcher"), "{hostile} refused: {err}");
    }
    // Hostile label values: refused by input formats, or escaped so they cannot change a query.
    let err = call(&active, "get-throttled-pods", json!({"namespace": "a\"} or vector(1) #"})).await.unwrap_err();
    assert!(err.contains("argument `namespace`"), "{err}");
    let out = call(&active, "count-by-job-label", json!({"job": "a\"} or vector(1) #"})).await.unwrap();
    assert_eq!(out.structured["series"], 0.0, "the value stayed a label value: {}", out.text);
    let out = call(&active, "count-by-job-label", json!({"job": "node-exporter"})).await.unwrap();
    assert!(out.structured["series"].as_f64().unwrap() > 0.0, "escaping keeps ordinary values working");

    // get-cluster-health gains alerts and utilisation in a monitoring mode.
    let out = call(&active, "get-cluster-health", json!({})).await.unwrap();
    assert!(out.structured["firing_alerts"].is_object(), "{}", out.structured["firing_alerts"]);
    assert!(out.structured["utilisation"]["cpu_percent"].is_number());
    assert_eq!(out.structured["sections"]["alerts"]["status"], "ok");

    // Prometheus goes away: clear answers within the timeout, Kubernetes sections intact.
    let _ = Command::new(root().join("tests/prometheus/stop.sh")).args([&prom.pid, &prom.dir]).status();
    let started = Instant::now();
    let err = call(&active, "get-throttled-pods", json!({})).await.unwrap_err();
    assert!(err.contains("could not be reached") || err.contains("did not answer"), "{err}");
    let out = call(&active, "get-cluster-health", json!({})).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(12), "answers within the 5 s timeout: {:?}", started.elapsed());
    assert_eq!(out.structured["nodes"]["total"], 7, "Kubernetes sections still there");
    assert_eq!(out.structured["sections"]["alerts"]["status"], "unavailable");
    assert!(out.text.contains("Prometheus unavailable"), "{}", out.text);

    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
