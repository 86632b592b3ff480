"""The Helm chart, rendered by real Helm (the PyPI helm-python-sdk carries Helm's Go SDK as a
shared library) for each mode and a matrix of values:

- `helm lint --strict` and values.schema.json accept every matrix entry and refuse bad values;
- every rendered manifest validates against the Kubernetes OpenAPI schemas (PyPI
  kubernetes-validate, strict: unknown fields are errors) for 1.33 (OpenShift 4.20) and the
  newest the package ships; CRD kinds (ServiceMonitor, OLSConfig) are checked by shape;
- the rendered ConfigMaps are written where the Deployment mounts them (under a temp root),
  their specs pass `validate`, and the Deployment's own args and env, run with our binary
  against those files, expose exactly the tools of the chosen mode (plus the extra specs);
- standalone and monitoring RBAC carry no write verb; full mode only with remediation on;
- the pod passes OpenShift's restricted-v2 SCC (non-root, read-only root filesystem, no
  capabilities, RuntimeDefault seccomp, no privilege escalation).

Needs CHM_BIN (scripts/test sets it) and the venv of scripts/test-deps.sh.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "cluster-health-mcp"
RELEASE, NAMESPACE = "chm", "observability"
K8S_VERSIONS = ["1.33.0", kubernetes_validate.latest_version()]
READ_VERBS = {"get", "list", "watch"}

EXTRA_TOOL = """\
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: count-namespaces}
spec:
  description: How many namespaces the cluster has.
  steps:
    page:
      kubernetes: {verb: list, resource: {apiVersion: v1, kind: Namespace}}
  output:
    structured: {count: page.items | length}
"""

# A user-defined model added by values only: ml.models.<name> with the tool that calls it.
CUSTOM_MODEL_TOOL = """apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: score-fraud, labels: {toolset: ml}}
spec:
  description: Fraud score of feature rows.
  input:
    rows: {type: array, items: {type: array, items: {type: number}}, required: true}
  steps:
    scored:
      inference: {backend: fraud-scorer, model: fraud-scorer, instances: "{{ rows }}"}
  output:
    structured: {predictions: scored.predictions}
"""
CUSTOM_MODELS = {"fraud-scorer": {"baseUrl": "http://fraud-scorer-predictor.ml-serving.svc:8080", "protocol": "v2", "tool": CUSTOM_MODEL_TOOL}}

# (id, values, extra tools the values add)
MATRIX: list[tuple[str, dict[str, Any], set[str]]] = [
    ("standalone-defaults", {"deployment": {"mode": "standalone"}}, set()),
    ("monitoring-defaults", {"deployment": {"mode": "monitoring"}}, set()),
    ("full-defaults", {"deployment": {"mode": "full"}}, set()),
    (
        "standalone-everything-optional",
        {
            "deployment": {"mode": "standalone"},
            "replicaCount": 3,
            "networkPolicy": {"enabled": True},
            "serviceMonitor": {"enabled": True},
            "podDisruptionBudget": {"enabled": True},
            "http": {"tokenSecret": "chm-token", "allowedOrigins": ["https://console.example"]},
            "extraSpecs": {"count-namespaces.yaml": EXTRA_TOOL},
            "image": {"digest": "sha256:" + "a" * 64},
            "extraEnv": [{"name": "CHM_RESPONSE_BUDGET_TOKENS", "value": "4000"}],
        },
        {"count-namespaces"},
    ),
    (
        "monitoring-secret-token-plain-prometheus",
        {
            "deployment": {"mode": "monitoring"},
            "prometheus": {
                "url": "http://prometheus.monitoring.svc:9090",
                "token": {"serviceAccount": False, "secretName": "prom-token"},
                "caFile": "",
                "clusterMonitoringView": False,
            },
            "lightspeed": {"olsConfig": {"enabled": True}},
        },
        set(),
    ),
    (
        "full-external-engine-remediation-legacy-ols",
        {
            "deployment": {"mode": "full"},
            "coordinationEngine": {
                "type": "external",
                "externalUrl": "http://coordination-engine.aiops.svc:8080",
                "remediation": {"enabled": True},
            },
            "ml": {"kserve": False},
            "lightspeed": {"olsConfig": {"enabled": True, "schema": "legacy", "forwardUserToken": False}},
        },
        set(),
    ),
    (
        "full-read-only-denied-secrets-audit-file",
        {
            "deployment": {"mode": "full"},
            "coordinationEngine": {"remediation": {"enabled": True}},
            "readOnly": True,
            "confirmDestructive": False,
            "kubernetes": {"deniedKinds": ["Secret", "*.argoproj.io"]},
            "audit": {"sink": "file", "path": "/var/lib/cluster-health-mcp/audit.jsonl"},
        },
        set(),
    ),
    (
        "full-ml-models",
        {
            "deployment": {"mode": "full"},
            "ml": {
                "models": {
                    "anomaly-detector": {"inferenceService": {"namespace": "self-healing-platform", "name": "anomaly-detector"}, "protocol": "v2"},
                    "predictive-analytics": {"baseUrl": "http://predictor.ml.svc:8080", "timeout": "5s"},
                    **CUSTOM_MODELS,
                }
            },
        },
        {"score-fraud"},
    ),
    (
        "full-postgresql-replicas",
        {
            "deployment": {"mode": "full"},
            "replicaCount": 2,
            "coordinationEngine": {
                "database": {"type": "postgresql", "postgresql": {"url": "postgres://chm@db.aiops.svc:5432/chm", "secretName": "chm-db"}}
            },
            "podDisruptionBudget": {"enabled": True},
        },
        set(),
    ),
]


def chm_bin() -> str:
    path = os.environ.get("CHM_BIN") or str(REPO / "target" / "debug" / "cluster-health-mcp")
    assert os.access(path, os.X_OK), f"CHM_BIN {path} is not an executable (run `cargo build` or scripts/test)"
    return path


def chm(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHM_")}
    return subprocess.run([chm_bin(), *args], capture_output=True, text=True, env={**base, **(env or {})}, cwd=cwd)


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    return helm.Chart.load(str(CHART))


def render(chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def one(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"expected one {kind} *{suffix}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


TOKEN = "s3cret-test-token"


def lay_out(docs: list[dict[str, Any]], tmp_path: Path) -> tuple[list[str], dict[str, str], dict[str, Path]]:
    """Write the ConfigMaps (and stand-in Secrets) where the Deployment mounts them, under a
    temp root; return the container's args and env with mount paths pointing there."""
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    root = tmp_path / "root"
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    mounts: dict[str, Path] = {}
    for m in container["volumeMounts"]:
        source = volumes[m["name"]]
        target = root / m["mountPath"].lstrip("/")
        if "configMap" in source:
            target.mkdir(parents=True)
            for name, text in configmaps[source["configMap"]["name"]]["data"].items():
                (target / name).write_text(text)
        elif "secret" in source:
            target.mkdir(parents=True)
            (target / "token").write_text(TOKEN + "\n")
        else:
            continue
        mounts[m["mountPath"]] = target

    def local(text: str) -> str:
        for mount, target in mounts.items():
            text = text.replace(mount, str(target))
        return text

    for target in mounts.values():
        for f in target.iterdir():
            f.write_text(local(f.read_text()))
    args = [local(a) for a in container["args"]]
    env = {e["name"]: local(e["value"]) if "value" in e else "from-a-secret" for e in container.get("env", [])}
    (tmp_path / "cwd").mkdir()
    return args, env, mounts


def exposed_tools(out: str) -> set[str]:
    return {e["name"] for e in json.loads(out) if e["kind"] == "Tool" and e["exposed"]}


def test_helm_is_the_real_helm() -> None:
    assert helm.helm_sdk_version().startswith("v4."), helm.helm_sdk_version()


@pytest.mark.parametrize("case,values,extra", MATRIX, ids=[m[0] for m in MATRIX])
def test_lint_and_values_schema_accept(case: str, values: dict[str, Any], extra: set[str], chart: helm.Chart) -> None:
    chart.validate_schema(values)
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    errors = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
    assert not errors, errors


@pytest.mark.parametrize(
    "bad",
    [
        {"deployment": {"mode": "monitoringg"}},
        {"prometheus": {"url": "thanos:9091"}},
        {"http": {"port": 0}},
        {"replicas": 2},
        {"coordinationEngine": {"database": {"type": "mysql"}}},
        {"extraSpecs": {"no-extension": "kind: Tool"}},
    ],
)
def test_values_schema_refuses_bad_values(bad: dict[str, Any], chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmError):
        chart.validate_schema(bad)


def test_inconsistent_values_fail_to_render_with_a_reason(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmError, match="SQLite runs one replica"):
        chart.render({"deployment": {"mode": "full"}, "replicaCount": 2}, name=RELEASE, namespace=NAMESPACE)
    with pytest.raises(helm.HelmError, match="externalUrl is required"):
        chart.render(
            {"deployment": {"mode": "full"}, "coordinationEngine": {"type": "external"}},
            name=RELEASE,
            namespace=NAMESPACE,
        )


@pytest.mark.parametrize("case,values,extra", MATRIX, ids=[m[0] for m in MATRIX])
def test_manifests_validate_against_kubernetes_schemas(
    case: str, values: dict[str, Any], extra: set[str], chart: helm.Chart
) -> None:
    docs = render(chart, values)
    kinds = set()
    for doc in docs:
        kinds.add(doc["kind"])
        if doc["kind"] == "ServiceMonitor":
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            assert doc["spec"]["endpoints"][0]["path"] == "/metrics"
            assert doc["spec"]["selector"]["matchLabels"]
            continue
        if doc["kind"] == "OLSConfig":
            assert doc["apiVersion"] == "ols.openshift.io/v1alpha1" and doc["metadata"]["name"] == "cluster"
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{doc['kind']} {doc['metadata']['name']} is invalid for Kubernetes {version}: {e.message} at {list(e.path)}")
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding"} <= kinds


@pytest.mark.parametrize("case,values,extra", MATRIX, ids=[m[0] for m in MATRIX])
def test_rendered_deployment_runs_the_modes_tools(
    case: str, values: dict[str, Any], extra: set[str], chart: helm.Chart, tmp_path: Path
) -> None:
    docs = render(chart, values)
    mode = values["deployment"]["mode"]
    args, env, mounts = lay_out(docs, tmp_path)
    # The extra specs pass `validate` together with the built-in catalogue.
    specs = [t for m, t in mounts.items() if m.endswith("/specs")]
    custom_models = {n for n in values.get("ml", {}).get("models", {}) if n not in ("anomaly-detector", "predictive-analytics")}
    assert bool(specs) == bool(values.get("extraSpecs") or custom_models), mounts
    for d in specs:
        r = chm("validate", str(d))
        assert r.returncode == 0, r.stdout + r.stderr

    # The container's own args and env; only `serve ...` becomes `tools --json`.
    assert args[args.index("serve") :] == ["serve", "--transport=http"], args
    cwd = tmp_path / "cwd"
    r = chm(*args[: args.index("serve")], "tools", "--json", env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    got = exposed_tools(r.stdout)

    read_only = ["--read-only"] if values.get("readOnly") else []
    expected = exposed_tools(chm("--mode", mode, *read_only, "tools", "--json", cwd=cwd).stdout) | extra
    assert got == expected, f"missing {expected - got}, unexpected {got - expected}"
    assert len(got) >= 10
    if read_only:
        assert not got & {"restart-workload", "increase-memory-limit"}, got

    # Where the backends point.
    r = chm(*args[: args.index("serve")], "tools", env=env, cwd=cwd)
    first = r.stdout.splitlines()[0]
    assert first.startswith(f"mode {mode}: backends kubernetes (in-cluster service account)"), first
    if mode in ("monitoring", "full"):
        url = values.get("prometheus", {}).get("url", "https://thanos-querier.openshift-monitoring.svc:9091")
        assert f"prometheus ({url}" in first, first
    else:
        assert "prometheus" not in first, first
    if mode == "full":
        engine = values.get("coordinationEngine", {}).get("externalUrl") or "http://127.0.0.1:8080"
        assert f"coordination-engine ({engine})" in first, first
        # The built-in engine's store: the SQLite file on the data volume, or PostgreSQL.
        database = values.get("coordinationEngine", {}).get("database", {})
        if values.get("coordinationEngine", {}).get("type", "builtin") == "builtin":
            store = database.get("postgresql", {}).get("url") if database.get("type") == "postgresql" else None
            assert f"coordination-store ({store or 'sqlite:/var/lib/cluster-health-mcp/coordination.db'})" in first, first
        # Model servers from ml.models: an InferenceService reference (wins over the shipped
        # baseUrl) or a URL; the defaults keep the shipped predictor URLs.
        models = values.get("ml", {}).get("models", {})
        for name in ("anomaly-detector", "predictive-analytics"):
            m = models.get(name, {})
            if "inferenceService" in m:
                want = f"{name} (InferenceService {m['inferenceService']['namespace']}/{m['inferenceService']['name']})"
            else:
                want = f"{name} ({m.get('baseUrl') or 'http://' + name + '-predictor.self-healing-platform.svc.cluster.local:8080'})"
            assert want in first, (want, first)
        for name in custom_models:
            assert f"{name} ({models[name]['baseUrl']})" in first, (name, first)


@pytest.mark.parametrize("case,values,extra", MATRIX, ids=[m[0] for m in MATRIX])
def test_rbac_is_read_only_unless_full_mode_enables_remediation(
    case: str, values: dict[str, Any], extra: set[str], chart: helm.Chart
) -> None:
    docs = render(chart, values)
    mode = values["deployment"]["mode"]
    remediation = mode == "full" and values.get("coordinationEngine", {}).get("remediation", {}).get("enabled", False)
    verbs = {v for d in docs if d["kind"] in ("ClusterRole", "Role") for rule in d["rules"] for v in rule["verbs"]}
    assert verbs >= READ_VERBS
    if remediation:
        assert verbs - READ_VERBS >= {"patch", "delete"}, verbs
    else:
        assert verbs <= READ_VERBS, f"{mode}: write verbs {verbs - READ_VERBS}"
    resources = {r for d in docs if d["kind"] == "ClusterRole" for rule in d["rules"] for r in rule["resources"]}
    assert "secrets" not in resources
    bindings = {d["roleRef"]["name"] for d in docs if d["kind"] == "ClusterRoleBinding"}
    wants_view = mode != "standalone" and values.get("prometheus", {}).get("clusterMonitoringView", True)
    assert ("cluster-monitoring-view" in bindings) == wants_view, bindings


@pytest.mark.parametrize("case,values,extra", MATRIX, ids=[m[0] for m in MATRIX])
def test_pod_meets_openshift_restricted_v2(case: str, values: dict[str, Any], extra: set[str], chart: helm.Chart) -> None:
    pod = one(render(chart, values), "Deployment")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"] and "privileged" not in sc
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert "runAsUser" not in sc and "runAsUser" not in pod["securityContext"], "OpenShift assigns the UID"
    assert not any(k in v for v in pod["volumes"] for k in ("hostPath", "hostNetwork"))
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_optional_objects_appear_when_enabled(chart: helm.Chart) -> None:
    values = MATRIX[3][1]
    docs = render(chart, values)
    netpol = one(docs, "NetworkPolicy")
    peers = netpol["spec"]["ingress"][0]["from"]
    namespaces = [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in peers]
    assert namespaces[0] == "openshift-lightspeed" and "openshift-monitoring" in namespaces
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert one(docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "http"
    deploy = one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"].endswith("@sha256:" + "a" * 64)
    config = yaml.safe_load(one(docs, "ConfigMap", "-config")["data"]["config.yaml"])
    assert config["http"]["token_file"] == "/var/run/cluster-health-mcp/http/token"
    defaults = render(chart, {"deployment": {"mode": "standalone"}})
    assert not {d["kind"] for d in defaults} & {"NetworkPolicy", "PodDisruptionBudget", "ServiceMonitor", "OLSConfig"}


def test_olsconfig_current_and_legacy_forms(chart: helm.Chart) -> None:
    url = f"http://{RELEASE}-cluster-health-mcp.{NAMESPACE}.svc:8080/mcp"
    spec = {"llm": {"providers": [{"name": "openai", "type": "openai"}]}, "ols": {"defaultModel": "m", "defaultProvider": "openai"}}
    current = one(
        render(chart, {"deployment": {"mode": "monitoring"}, "lightspeed": {"olsConfig": {"enabled": True, "spec": spec}}}),
        "OLSConfig",
    )["spec"]
    assert current["featureGates"] == ["MCPServer"]
    assert current["llm"] == spec["llm"] and current["ols"] == spec["ols"]
    (server,) = current["mcpServers"]
    assert server == {
        "name": "cluster-health",
        "url": url,
        "timeout": 30,
        "headers": [{"name": "Authorization", "valueFrom": {"type": "kubernetes"}}],
    }
    legacy = one(
        render(chart, {"deployment": {"mode": "monitoring"}, "lightspeed": {"olsConfig": {"enabled": True, "schema": "legacy"}}}),
        "OLSConfig",
    )["spec"]
    assert "featureGates" not in legacy
    (server,) = legacy["mcpServers"]
    assert server["streamableHTTP"]["url"] == url and server["streamableHTTP"]["headers"] == {"Authorization": "kubernetes"}


def test_docs_olsconfig_examples_match_the_template(chart: helm.Chart) -> None:
    """The examples in docs/lightspeed.md are what the chart renders (same fields)."""
    text = (REPO / "docs" / "lightspeed.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    examples = [yaml.safe_load(b) for b in blocks if "kind: OLSConfig" in b]
    assert len(examples) == 2, "docs/lightspeed.md shows the current and the legacy OLSConfig"
    for example, schema in zip(examples, ["current", "legacy"]):
        rendered = one(
            render(chart, {"deployment": {"mode": "monitoring"}, "lightspeed": {"olsConfig": {"enabled": True, "schema": schema}}}),
            "OLSConfig",
        )
        doc_server = example["spec"]["mcpServers"][0]
        chart_server = rendered["spec"]["mcpServers"][0]
        assert set(doc_server) == set(chart_server), (schema, doc_server, chart_server)
        assert doc_server.get("headers") == chart_server.get("headers")
        assert example["spec"].get("featureGates") == rendered["spec"].get("featureGates")


@pytest.mark.parametrize("case", ["standalone-defaults", "standalone-everything-optional", "full-defaults"])
def test_rendered_deployment_serves_mcp_to_the_service_name(case: str, chart: helm.Chart, tmp_path: Path) -> None:
    """The rendered container command, as is (only the port moved to loopback through the
    environment, which beats the config file): /readyz answers, /mcp accepts the Service's DNS
    name with its port (what OpenShift Lightspeed sends), refuses a foreign Host, and asks for
    the bearer token when http.tokenSecret is set."""
    import socket
    import time

    import httpx

    values = next(v for c, v, _ in MATRIX if c == case)
    args, env, _ = lay_out(render(chart, values), tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHM_")}
    env = {**base, **env, "CHM_HTTP__BIND": f"127.0.0.1:{port}"}
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([chm_bin(), *args], env=env, cwd=tmp_path / "cwd", stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        token = bool(values.get("http", {}).get("tokenSecret"))
        auth = {"Authorization": f"Bearer {TOKEN}"} if token else {}
        for _ in range(200):
            try:
                ready = httpx.get(f"{url}/readyz", headers=auth, timeout=1).json()
                break
            except httpx.TransportError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.05)
        else:
            pytest.fail("no /readyz within 10 s: " + (tmp_path / "serve.log").read_text())
        assert ready["mode"] == values["deployment"]["mode"]
        assert ready["backends"]["kubernetes"] == "in-cluster service account"
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        }
        headers = {"Accept": "application/json, text/event-stream"}
        if token:
            r = httpx.post(f"{url}/mcp", json=init, headers={**headers, "Host": "localhost"})
            assert r.status_code == 401, r.text
            assert "backends" not in httpx.get(f"{url}/readyz").json(), "/readyz detail needs the token"
            headers.update(auth)
        service = f"{RELEASE}-cluster-health-mcp.{NAMESPACE}.svc:8080"
        r = httpx.post(f"{url}/mcp", json=init, headers={**headers, "Host": service})
        assert r.status_code == 200, r.text
        r = httpx.post(f"{url}/mcp", json=init, headers={**headers, "Host": "evil.example:8080"})
        assert r.status_code == 403, r.text
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
