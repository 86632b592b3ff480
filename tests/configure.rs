//! Configuration from the binary alone, as a user without a checkout of this repository has
//! it: every command runs in an empty temporary directory. Monitoring mode is pointed at a
//! real Prometheus on a random port with one environment variable; a snapshot directory is
//! read with one flag; the catalogue is exported, edited and validated; a user's own Mode
//! adds to the built-in catalogue.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cluster-health-mcp");

/// The binary, run in `cwd` with no CHM_* variables from the caller's environment.
fn chm(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHM_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Debian's Prometheus (scripts/test-deps.sh) scraping itself every second.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start() -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: chm-config-test\n    \
                 static_configs: [{{targets: ['{addr}']}}]\n"
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("`prometheus` on PATH (installed by scripts/test-deps.sh)");
        Prometheus { child, url: format!("http://{addr}"), _dir: dir }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn monitoring_mode_reaches_a_prometheus_named_only_by_an_environment_variable() {
    let prom = Prometheus::start();
    let cwd = tempfile::tempdir().unwrap();
    let env = [("CHM_BACKENDS__PROMETHEUS__URL", prom.url.as_str())];

    // `tools` names the URL the mode will use.
    let tools = chm(cwd.path(), &env, &["--mode", "monitoring", "tools"]);
    assert!(tools.status.success(), "{}", stderr(&tools));
    assert!(stdout(&tools).contains(&format!("prometheus ({})", prom.url)), "{}", stdout(&tools));

    // A real query answers with the series Prometheus scraped of itself (the first scrape
    // lands within a few seconds of startup).
    let args = r#"{"query": "up{job=\"chm-config-test\"}"}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let o = chm(cwd.path(), &env, &["--mode", "monitoring", "call", "query-prometheus", "--json", "--args", args]);
        if o.status.success() {
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            if v["series"] == 1 {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "no answer from {} within 60 s: {}", prom.url, stderr(&o));
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(answer["result"][0]["metric"]["job"], "chm-config-test", "{answer}");
    assert_eq!(answer["result"][0]["value"], 1.0, "{answer}");
}

#[test]
fn an_unreachable_backend_error_names_the_url_that_was_used() {
    let cwd = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());
    let o = chm(
        cwd.path(),
        &[],
        &["--mode", "monitoring", "--set", &format!("backends.prometheus.url={url}"), "call", "list-alerts"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("could not be reached") && err.contains(&format!("GET {url}/api/v1/")), "{err}");
}

#[test]
fn a_config_file_backends_section_overrides_and_is_validated_like_the_spec() {
    let cwd = tempfile::tempdir().unwrap();
    let config = cwd.path().join("config.yaml");
    std::fs::write(
        &config,
        "mode: full\nbackends:\n  prometheus: {url: 'https://thanos.example:9091', timeout: 5s}\n  \
         coordination-engine: {baseUrl: 'http://engine.example:8080'}\n",
    )
    .unwrap();
    let o = chm(cwd.path(), &[], &["--config", config.to_str().unwrap(), "tools"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("prometheus (https://thanos.example:9091)"), "{out}");
    assert!(out.contains("coordination-engine (http://engine.example:8080)"), "{out}");

    // Environment beats the file; snake_case reaches camelCase fields and dashed names.
    let o = chm(
        cwd.path(),
        &[("CHM_BACKENDS__COORDINATION_ENGINE__BASE_URL", "http://from-env:1")],
        &["--config", config.to_str().unwrap(), "tools"],
    );
    assert!(stdout(&o).contains("coordination-engine (http://from-env:1)"), "{}", stdout(&o));

    // A misspelt field is refused before anything runs, naming the backend and the field.
    let o = chm(cwd.path(), &[("CHM_BACKENDS__PROMETHEUS__ULR", "http://x")], &["--mode", "monitoring", "tools"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("override of backend `prometheus` is invalid") && err.contains("unknown field `ulr`"),
        "{err}"
    );
}

#[test]
fn a_snapshot_directory_is_read_with_only_a_flag() {
    let cwd = tempfile::tempdir().unwrap();
    let snap = cwd.path().join("cluster");
    let o = chm(
        cwd.path(),
        &[],
        &["snapshot", "generate", snap.to_str().unwrap(), "--nodes", "3", "--pods", "17", "--namespaces", "2"],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // Standalone mode would use a kubeconfig; --snapshot swaps its source.
    let flag = ["--mode", "standalone", "--snapshot", snap.to_str().unwrap()];
    let o = chm(cwd.path(), &[], &[&flag[..], &["call", "list-pods", "--json", "--args", r#"{"limit": 5}"#]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["total"], 17, "{v}");

    let o = chm(cwd.path(), &[], &[&flag[..], &["tools"]].concat());
    assert!(stdout(&o).contains(&format!("kubernetes (snapshot {})", snap.display())), "{}", stdout(&o));

    // Resources are read as tools are called.
    let o = chm(cwd.path(), &[], &[&flag[..], &["read", "cluster://nodes"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains('3'), "{}", stdout(&o));
    let o = chm(cwd.path(), &[], &[&flag[..], &["read", "cluster://nowhere"]].concat());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no resource at `cluster://nowhere`"), "{}", stderr(&o));
}

#[test]
fn a_users_own_mode_and_tool_add_to_the_built_in_catalogue() {
    let cwd = tempfile::tempdir().unwrap();
    let mine = cwd.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(
        mine.join("mode.yaml"),
        "apiVersion: cluster-health-mcp/v1\nkind: Mode\nmetadata: {name: pods-only}\nspec:\n  \
         backends: {kubernetes: {}}\n  tools: {include: [list-pods, count-pods]}\n",
    )
    .unwrap();
    std::fs::write(
        mine.join("tool.yaml"),
        "apiVersion: cluster-health-mcp/v1\nkind: Tool\nmetadata: {name: count-pods}\nspec:\n  \
         description: How many pods.\n  steps:\n    page:\n      kubernetes: {verb: list, resource: {apiVersion: v1, kind: Pod}}\n  \
         output:\n    structured: {count: page.items | length}\n",
    )
    .unwrap();
    let o = chm(cwd.path(), &[], &["validate", "mine"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("(2 yours, "), "{}", stdout(&o));

    let o = chm(cwd.path(), &[], &["--specs", "mine", "--mode", "pods-only", "--snapshot", "builtin:demo", "tools"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exposed = stdout(&o).lines().filter(|l| l.starts_with("Tool") && l.trim_end().ends_with("exposed")).count();
    assert_eq!(exposed, 2, "{}", stdout(&o));

    // Without the built-in catalogue the mode names a backend nobody defines.
    let o = chm(cwd.path(), &[], &["--replace-catalogue", "validate", "mine"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("unknown backend `kubernetes`"), "{}", stderr(&o));
}

#[test]
fn the_exported_catalogue_validates_and_runs_as_the_built_in_one() {
    let cwd = tempfile::tempdir().unwrap();
    let o = chm(cwd.path(), &[], &["export", "cat"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let root: PathBuf = cwd.path().join("cat");
    for p in ["tools.d/core/list-pods.yaml", "modes/backends.yaml", "schemas/tool.schema.json"] {
        assert!(root.join(p).is_file(), "{p} missing");
    }
    // Refuses to overwrite.
    let again = chm(cwd.path(), &[], &["export", "cat"]);
    assert_eq!(again.status.code(), Some(1));

    // Rename a shipped tool in the copy: with the built-in catalogue both exist; with
    // --replace-catalogue only the copy's documents do.
    let file = root.join("tools.d/core/pods.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("  name: list-events\n"));
    std::fs::write(&file, text.replacen("  name: list-events\n", "  name: list-events-edited\n", 1)).unwrap();
    let mine = ["--specs", "cat/tools.d", "--specs", "cat/modes", "--mode", "standalone", "--snapshot", "builtin:demo"];
    let listed = |extra: &[&str]| {
        let o = chm(cwd.path(), &[], &[extra, &mine[..], &["tools"]].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        let names: Vec<String> =
            stdout(&o).lines().filter_map(|l| l.split_whitespace().nth(1)).map(str::to_owned).collect();
        (names.contains(&"list-events".to_string()), names.contains(&"list-events-edited".to_string()))
    };
    assert_eq!(listed(&[]), (true, true));
    assert_eq!(listed(&["--replace-catalogue"]), (false, true));
    let o = chm(cwd.path(), &[], &["--replace-catalogue", "validate", "cat/tools.d", "cat/modes"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn an_unreachable_cluster_error_names_the_api_server_url() {
    let cwd = tempfile::tempdir().unwrap();
    let server = format!("https://127.0.0.1:{}", free_port());
    let kubeconfig = cwd.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{server}', insecure-skip-tls-verify: true}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let o = chm(
        cwd.path(),
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
        &["--mode", "standalone", "call", "list-pods"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("could not be reached") && err.contains(&format!("at {server}")), "{err}");
}

#[test]
fn readyz_names_where_each_backend_points() {
    use std::io::{Read, Write};
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new(BIN)
        .current_dir(cwd.path())
        .env("CHM_BACKENDS__PROMETHEUS__URL", "http://prometheus.example:9090")
        .args(["--mode", "monitoring", "--snapshot", "builtin:demo", "serve", "--transport", "http", "--no-reload"])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            break text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        }
        assert!(Instant::now() < deadline, "server did not listen");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = server.kill();
    let _ = server.wait();
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["backends"]["prometheus"], "http://prometheus.example:9090", "{v}");
    assert_eq!(v["backends"]["kubernetes"], "snapshot builtin:demo", "{v}");
}

#[test]
fn the_readme_settings_example_is_accepted() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```yaml\n# chm.yaml\n").expect("README shows a chm.yaml settings example");
    let block = &readme[start + "```yaml\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("chm.yaml"), block).unwrap();
    let o = chm(cwd.path(), &[], &["--config", "chm.yaml", "tools"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = stdout(&o).lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with(
            "mode monitoring: backends kubernetes (in-cluster service account), prometheus (https://thanos-querier"
        ),
        "{first}"
    );
}
