"""The original coordination engine's REST contract (../shared/reference/coordination-engine-api.md)
served by the real binary from its Route specs, over HTTP: one case per request, with the
original's request bodies in both spellings (the engine's snake_case and the camelCase the
original MCP server sent), the statuses and body shapes clients rely on, and refusals of bad
input as 4xx with `{status: error, error}` (the remediation routes answer errors as text, as the
original's http.Error did). Plus: the incidents survive a restart on the same SQLite file, a
real remediation over REST alone waits for approval, completes once and survives a restart, and
schemathesis (PyPI, .deps/st-venv) finds no failure when it fuzzes every route of the served
/openapi.json with every check it has.

The cases are a table (CASES): add a route's cases there. Each case may send `before`
requests first (setting the scene on the shared server) and checks the answer with `check`.
Run: .deps/venv/bin/pytest -q tests/python/test_contract.py
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import anyio
import httpx
import pytest

from conftest import REPO, LogDir, deadline, http_server

pytestmark = pytest.mark.anyio

ID = re.compile(r"^inc-[0-9a-f]{8}$")


def engine_args(store: Path) -> list[str]:
    """The demo cluster with the coordination store on a SQLite file (the demo mode keeps it in
    memory unless told otherwise)."""
    return ["--mode", "demo", "--set", f"backends.coordination-store.url=sqlite:{store}"]


# --------------------------------------------------------------------------- the cases


@dataclass
class Req:
    method: str
    path: str
    body: Any = None  # JSON-encoded unless bytes
    query: dict[str, Any] | None = None


@dataclass
class Case:
    id: str
    req: Req | Callable[[list[httpx.Response]], Req]  # or built from the `before` answers
    status: int
    check: Callable[[httpx.Response, list[httpx.Response]], None] | None = None
    before: list[Req] = field(default_factory=list)


def error_body(*words: str) -> Callable[[httpx.Response, list[httpx.Response]], None]:
    """A 4xx JSON error `{status: error, error}` whose message names each word."""

    def check(r: httpx.Response, _: list[httpx.Response]) -> None:
        body = r.json()
        assert body["status"] == "error" and isinstance(body["error"], str), body
        for w in words:
            assert w in body["error"], (w, body)

    return check


# The original engine's body for POST /api/v1/incidents (snake_case) ...
SNAKE = {
    "title": "checkout pods OOMKilled",
    "description": "checkout restarts every few minutes after an OOM kill",
    "severity": "high",
    "target": "shop/checkout",
    "affected_resources": ["Deployment/checkout", "Pod/checkout-7d9f"],
    "labels": {"team": "payments", "namespace": "contract-snake"},
}
# ... and the original MCP server's (camelCase, with the fields the engine ignored).
CAMEL = {
    "title": "cart latency",
    "description": "p99 above 2 s for 10 minutes",
    "severity": "medium",
    "target": "shop/cart",
    "affectedResources": ["Deployment/cart"],
    "correlationId": "alert-42",
    "externalId": "JIRA-7",
    "confidence": 0.8,
    "labels": {"source": "alertmanager"},
}


def created(expect: dict[str, Any]) -> Callable[[httpx.Response, list[httpx.Response]], None]:
    def check(r: httpx.Response, _: list[httpx.Response]) -> None:
        body = r.json()
        assert set(body) == {"status", "incident_id", "created_at", "incident", "message"}, body
        assert body["status"] == "success" and ID.match(body["incident_id"]), body
        inc = body["incident"]
        assert inc["id"] == body["incident_id"] and inc["created_at"] == body["created_at"]
        assert inc["status"] == "active" and inc["source"] == "manual", inc
        for k, v in expect.items():
            assert inc[k] == v, (k, inc[k], v)

    return check


def listed(total: int, count: int, each: Callable[[dict], bool] = lambda i: True):
    def check(r: httpx.Response, _: list[httpx.Response]) -> None:
        body = r.json()
        assert set(body) == {"incidents", "total"}, body
        assert body["total"] == total and len(body["incidents"]) == count, (total, count, body)
        assert all(each(i) for i in body["incidents"]), body["incidents"]

    return check


def newest_first(r: httpx.Response, before: list[httpx.Response]) -> None:
    """Newest first: created_at descending, then id descending (created_at has seconds)."""
    made = sorted(((b.json()["created_at"], b.json()["incident_id"]) for b in before), reverse=True)
    assert [i["id"] for i in r.json()["incidents"]] == [i for _, i in made], (made, r.json())


def check_health(r: httpx.Response) -> None:
    body = r.json()
    assert body["status"] == "ok" and body["version"], body


def check_api_health(r: httpx.Response) -> None:
    body = r.json()
    assert body["status"] in ("healthy", "degraded") and body["dependencies"]["kubernetes"]["status"] == "ok", body
    assert {"timestamp", "version", "uptime_seconds"} <= set(body), body


def incident(ns: str, severity: str, title: str = "t") -> Req:
    return Req("POST", "/api/v1/incidents", {"title": title, "description": "d", "severity": severity, "target": "x", "namespace": ns})


TRIGGER = "/api/v1/remediation/trigger"
WORKFLOW_ID = re.compile(r"^wf-[0-9a-f]{8}$")
# The original engine's trigger body (the MCP client added dry_run) ...
TRIGGER_SNAKE = {
    "incident_id": "inc-contract-1",
    "namespace": "shop-frontend",
    "resource": {"kind": "Pod", "name": "product-catalog-qnvb6h6ls-l5njv"},
    "issue": {"type": "OOMKilled", "description": "limit 256Mi, exit 137", "severity": "high"},
    "dry_run": True,
}
# ... and the older engine's camelCase spelling.
TRIGGER_CAMEL = {**{k: v for k, v in TRIGGER_SNAKE.items() if k not in ("incident_id", "dry_run")}, "incidentId": "inc-contract-2", "dryRun": True}


def without(body: dict, key: str) -> dict:
    return {k: v for k, v in body.items() if k != key}


def accepted(dry_run: bool, method: str = "manual") -> Callable[[httpx.Response, list[httpx.Response]], None]:
    """202 `{workflow_id, status, deployment_method, estimated_duration}` (plus dry_run, workflow)."""

    def check(r: httpx.Response, _: list[httpx.Response]) -> None:
        body = r.json()
        assert {"workflow_id", "status", "deployment_method", "estimated_duration"} <= set(body), body
        assert WORKFLOW_ID.match(body["workflow_id"]) and body["status"] == "pending", body
        assert (body["deployment_method"], body["estimated_duration"], body["dry_run"]) == (method, "5m", dry_run), body

    return check


def text_error(*words: str) -> Callable[[httpx.Response, list[httpx.Response]], None]:
    """A text/plain error (the original engine's http.Error) naming each word."""

    def check(r: httpx.Response, _: list[httpx.Response]) -> None:
        assert r.headers["content-type"].startswith("text/plain"), r.headers
        for w in words:
            assert w in r.text, (w, r.text)

    return check


def text_is(text: str) -> Callable[[httpx.Response, list[httpx.Response]], None]:
    def check(r: httpx.Response, _: list[httpx.Response]) -> None:
        assert r.headers["content-type"].startswith("text/plain") and r.text == text, (r.headers, r.text)

    return check


def workflow_body(r: httpx.Response, before: list[httpx.Response]) -> None:
    body = r.json()
    keys = {"id", "incident_id", "status", "deployment_method", "namespace", "resource_name", "resource_kind",
            "issue_type", "remediator", "error_message", "created_at", "started_at", "completed_at", "duration", "steps"}
    assert keys <= set(body), keys - set(body)
    assert (body["id"], body["incident_id"], body["namespace"], body["resource_kind"], body["issue_type"]) == (
        before[0].json()["workflow_id"], "inc-contract-1", "shop-frontend", "Pod", "OOMKilled"
    ), body
    assert body["status"] in ("pending", "in_progress", "completed", "failed"), body
    assert [s["order"] for s in body["steps"]] == [1, 2, 3, 4, 5], body["steps"]
    assert all({"order", "layer", "description", "status"} <= set(s) for s in body["steps"]), body["steps"]


def workflows_of(incident: str, total: int) -> Callable[[httpx.Response, list[httpx.Response]], None]:
    def check(r: httpx.Response, _: list[httpx.Response]) -> None:
        body = r.json()
        assert body["total"] == total and {w["incident_id"] for w in body["workflows"]} == {incident}, body

    return check


CASES = [
    # POST /api/v1/incidents
    Case(
        "create-incident-snake-case",
        Req("POST", "/api/v1/incidents", SNAKE),
        201,
        created({
            "title": SNAKE["title"], "severity": "high", "target": "shop/checkout",
            "affected_resources": SNAKE["affected_resources"], "labels": SNAKE["labels"],
            # The original clients send no namespace: a `namespace` label stands for it.
            "namespace": "contract-snake",
        }),
    ),
    Case(
        "create-incident-camel-case",
        Req("POST", "/api/v1/incidents", CAMEL),
        201,
        created({"affected_resources": ["Deployment/cart"], "correlation_id": "alert-42", "labels": {"source": "alertmanager"}}),
    ),
    Case(
        "create-incident-required-fields-only",
        Req("POST", "/api/v1/incidents", {"title": "t", "description": "d", "severity": "critical", "target": "x"}),
        201,
        created({"affected_resources": [], "labels": {}, "namespace": ""}),
    ),
    Case("create-incident-without-title", Req("POST", "/api/v1/incidents", {k: v for k, v in SNAKE.items() if k != "title"}), 400, error_body("title")),
    Case("create-incident-title-over-200", Req("POST", "/api/v1/incidents", {**SNAKE, "title": "x" * 201}), 400, error_body("title")),
    Case(
        "create-incident-title-of-200",
        Req("POST", "/api/v1/incidents", {**SNAKE, "title": "x" * 200, "labels": {"namespace": "contract-long"}}),
        201,
        created({"title": "x" * 200}),
    ),
    Case("create-incident-description-over-2000", Req("POST", "/api/v1/incidents", {**SNAKE, "description": "x" * 2001}), 400, error_body("description")),
    Case("create-incident-target-over-100", Req("POST", "/api/v1/incidents", {**SNAKE, "target": "x" * 101}), 400, error_body("target")),
    Case("create-incident-unknown-severity", Req("POST", "/api/v1/incidents", {**SNAKE, "severity": "urgent"}), 400, error_body("severity")),
    Case("create-incident-resources-not-a-list", Req("POST", "/api/v1/incidents", {**SNAKE, "affected_resources": "Pod/x"}), 400, error_body("affected_resources")),
    Case(
        "create-incident-both-spellings-at-once",
        Req("POST", "/api/v1/incidents", {**SNAKE, "affectedResources": ["Pod/y"]}),
        400,
        error_body("give `affected_resources` or `affectedResources`, not both"),
    ),
    Case("create-incident-body-not-json", Req("POST", "/api/v1/incidents", b"title=x"), 400, error_body()),
    Case("create-incident-body-a-list", Req("POST", "/api/v1/incidents", [SNAKE]), 400, error_body()),
    Case(
        "create-incident-hostile-text-is-kept-as-text",
        Req("POST", "/api/v1/incidents", {**SNAKE, "title": "x'); DROP TABLE incidents; --", "labels": {"namespace": "contract-hostile"}}),
        201,
        created({"title": "x'); DROP TABLE incidents; --"}),
    ),
    # GET /api/v1/incidents
    Case(
        "list-incidents-filtered-by-namespace-and-severity",
        Req("GET", "/api/v1/incidents", query={"namespace": "contract-list", "severity": "critical"}),
        200,
        listed(2, 2, lambda i: i["namespace"] == "contract-list" and i["severity"] == "critical"),
        before=[incident("contract-list", "critical"), incident("contract-list", "critical"), incident("contract-list", "low")],
    ),
    Case(
        "list-incidents-total-is-counted-before-limit-and-offset",
        Req("GET", "/api/v1/incidents", query={"namespace": "contract-page", "status": "active", "limit": 2, "offset": 2}),
        200,
        listed(3, 1),
        before=[incident("contract-page", "low", "one"), incident("contract-page", "low", "two"), incident("contract-page", "low", "three")],
    ),
    Case(
        "list-incidents-newest-first",
        Req("GET", "/api/v1/incidents", query={"namespace": "contract-order"}),
        200,
        newest_first,
        before=[incident("contract-order", "low", "first"), incident("contract-order", "low", "second")],
    ),
    Case("list-incidents-unknown-namespace-is-empty", Req("GET", "/api/v1/incidents", query={"namespace": "contract-none"}), 200, listed(0, 0)),
    Case("list-incidents-status-all", Req("GET", "/api/v1/incidents", query={"namespace": "contract-snake", "status": "all"}), 200, listed(1, 1)),
    Case("list-incidents-unknown-severity", Req("GET", "/api/v1/incidents", query={"severity": "bogus"}), 400, error_body("severity")),
    Case("list-incidents-limit-not-a-number", Req("GET", "/api/v1/incidents", query={"limit": "ten"}), 400, error_body("limit")),
    Case("list-incidents-limit-over-1000", Req("GET", "/api/v1/incidents", query={"limit": 1001}), 400, error_body("limit")),
    # Health
    # POST /api/v1/remediation/trigger
    Case("trigger-remediation-snake-case", Req("POST", TRIGGER, TRIGGER_SNAKE), 202, accepted(dry_run=True)),
    Case("trigger-remediation-camel-case", Req("POST", TRIGGER, TRIGGER_CAMEL), 202, accepted(dry_run=True)),
    Case("trigger-remediation-is-a-dry-run-unless-told", Req("POST", TRIGGER, without(TRIGGER_SNAKE, "dry_run")), 202, accepted(dry_run=True)),
    # A real run previews, then waits at its approval gate: nothing is written by these cases.
    Case("trigger-remediation-dry-run-false", Req("POST", TRIGGER, {**TRIGGER_SNAKE, "dry_run": False}), 202, accepted(dry_run=False)),
    Case("trigger-remediation-dryRun-false", Req("POST", TRIGGER, {**TRIGGER_CAMEL, "dryRun": False}), 202, accepted(dry_run=False)),
    Case("trigger-remediation-original-issue-name", Req("POST", TRIGGER, {**TRIGGER_SNAKE, "issue": {"type": "oom_kill"}}), 202, accepted(dry_run=True)),
    Case(
        "trigger-remediation-an-argocd-workload",
        Req("POST", TRIGGER, {**TRIGGER_SNAKE, "resource": {"kind": "Deployment", "name": "storefront"}, "issue": {"type": "CrashLoopBackOff"}}),
        202,
        accepted(dry_run=True, method="argocd"),
    ),
    # An incident id is kept when given; a remediation may also precede any incident.
    Case("trigger-remediation-without-incident", Req("POST", TRIGGER, without(TRIGGER_SNAKE, "incident_id")), 202, accepted(dry_run=True)),
    Case("trigger-remediation-without-resource", Req("POST", TRIGGER, without(TRIGGER_SNAKE, "resource")), 400, text_error("resource")),
    Case("trigger-remediation-resource-without-name", Req("POST", TRIGGER, {**TRIGGER_SNAKE, "resource": {"kind": "Pod"}}), 400, text_error("name")),
    Case("trigger-remediation-unknown-kind", Req("POST", TRIGGER, {**TRIGGER_SNAKE, "resource": {"kind": "CronJob", "name": "x"}}), 400, text_error("CronJob")),
    Case("trigger-remediation-without-issue-type", Req("POST", TRIGGER, {**TRIGGER_SNAKE, "issue": {"severity": "high"}}), 400, text_error("type")),
    Case("trigger-remediation-body-not-json", Req("POST", TRIGGER, b"incident_id=x"), 400, text_error("JSON")),
    Case("trigger-remediation-unknown-pod", Req("POST", TRIGGER, {**TRIGGER_SNAKE, "resource": {"kind": "Pod", "name": "no-such-pod"}}), 404, text_error("not found")),
    Case("trigger-remediation-unhandled-issue", Req("POST", TRIGGER, {**TRIGGER_SNAKE, "issue": {"type": "high_cpu"}}), 404, text_error("no workflow matches issue type `high_cpu`")),
    # GET /api/v1/workflows/{id}
    Case(
        "get-workflow-with-ordered-steps",
        lambda before: Req("GET", f"/api/v1/workflows/{before[0].json()['workflow_id']}"),
        200,
        workflow_body,
        before=[Req("POST", TRIGGER, TRIGGER_SNAKE)],
    ),
    Case("get-workflow-unknown", Req("GET", "/api/v1/workflows/wf-00000000"), 404, text_is("Workflow not found")),
    Case("get-workflow-malformed-id", Req("GET", "/api/v1/workflows/not-an-id"), 404, text_is("Workflow not found")),
    # Beyond the original: approval and the list.
    Case("approve-unknown-workflow", Req("POST", "/api/v1/workflows/wf-00000000/approve", {}), 404, text_is("Workflow not found")),
    Case(
        "list-workflows-of-an-incident",
        Req("GET", "/api/v1/workflows", query={"incidentId": "inc-contract-list"}),
        200,
        workflows_of("inc-contract-list", 2),
        before=[Req("POST", TRIGGER, {**TRIGGER_SNAKE, "incident_id": "inc-contract-list"}), Req("POST", TRIGGER, {**TRIGGER_CAMEL, "incidentId": "inc-contract-list"})],
    ),
    Case("health", Req("GET", "/health"), 200, lambda r, _: check_health(r)),
    Case("api-health", Req("GET", "/api/v1/health"), 200, lambda r, _: check_api_health(r)),
    Case("unknown-route", Req("GET", "/api/v1/nothing"), 404, error_body("no route")),
    Case("wrong-method", Req("DELETE", "/api/v1/incidents"), 405, error_body("not allowed")),
]


# --------------------------------------------------------------------------- running them


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def engine(chm_bin, tmp_path_factory) -> AsyncIterator[str]:
    """One server for every case: the demo cluster, the store on a SQLite file."""
    tmp = tmp_path_factory.mktemp("contract")
    logs = LogDir(tmp / "logs")
    logs.path.mkdir()
    async with http_server(chm_bin, engine_args(tmp / "store.db"), logs) as server:
        yield server.base


async def send(c: httpx.AsyncClient, base: str, req: Req) -> httpx.Response:
    kwargs: dict[str, Any] = {"params": req.query}
    if isinstance(req.body, bytes):
        kwargs["content"] = req.body
        kwargs["headers"] = {"content-type": "application/json"}
    elif req.body is not None:
        kwargs["json"] = req.body
    return await c.request(req.method, base + req.path, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_contract(engine: str, case: Case) -> None:
    with deadline():
        async with httpx.AsyncClient(timeout=10) as c:
            before = [await send(c, engine, r) for r in case.before]
            for b in before:
                assert b.status_code < 300, (b.request.url, b.status_code, b.text)
            r = await send(c, engine, case.req(before) if callable(case.req) else case.req)
        assert r.status_code == case.status, (r.status_code, r.text)
        if case.check:
            case.check(r, before)


async def test_incidents_survive_a_restart_on_the_same_sqlite_file(chm_bin, server_logs, tmp_path) -> None:
    store = tmp_path / "store.db"
    with deadline(40):
        async with http_server(chm_bin, engine_args(store), server_logs) as a:
            async with httpx.AsyncClient(timeout=10) as c:
                made = (await c.post(a.base + "/api/v1/incidents", json={**SNAKE, "labels": {"namespace": "kept"}})).json()
        async with http_server(chm_bin, engine_args(store), server_logs) as b:
            async with httpx.AsyncClient(timeout=10) as c:
                after = (await c.get(b.base + "/api/v1/incidents", params={"namespace": "kept"})).json()
        assert after["total"] == 1 and after["incidents"][0] == made["incident"], (made, after)


SCHEMATHESIS = REPO / ".deps" / "st-venv" / "bin" / "schemathesis"


async def test_schemathesis_finds_no_failure_in_the_served_openapi_document(chm_bin, server_logs, tmp_path) -> None:
    if not SCHEMATHESIS.is_file():
        pytest.fail(f"schemathesis not installed at {SCHEMATHESIS}: run scripts/test-deps.sh", pytrace=False)
    # No per-client rate limit: the fuzzer sends bursts, and a 429 is not what it tests.
    args = [*engine_args(tmp_path / "store.db"), "--set", "http.rate_limit_per_second=0"]
    with deadline(600):
        async with http_server(chm_bin, args, server_logs) as server:
            r = await anyio.run_process(
                [str(SCHEMATHESIS), "run", f"{server.base}/openapi.json", "--checks", "all",
                 "--max-examples", "25", "--workers", "1", "--seed", "11", "--no-color"],
                check=False,
                cwd=tmp_path,  # its .schemathesis/ report folder
                env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            )
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    print(out[-3000:])
    assert r.returncode == 0, out[-8000:]


async def wait_state(c: httpx.AsyncClient, base: str, wf: str, states: set[str], timeout: float = 15) -> dict:
    """Poll GET /api/v1/workflows/{id} until its exact `state` is one of `states`."""
    with anyio.fail_after(timeout):
        while True:
            body = (await c.get(f"{base}/api/v1/workflows/{wf}")).json()
            if body["state"] in states:
                return body
            await anyio.sleep(0.1)


async def test_a_real_remediation_over_rest_waits_for_approval_runs_once_and_survives_a_restart(
    chm_bin, server_logs, tmp_path
) -> None:
    """The original's clients over REST alone: an incident, a real run (camelCase body) that
    stops at its gate, the approval route, the run completed with its steps; after a restart on
    the same SQLite file, the incident and the workflow are still there."""
    store = tmp_path / "store.db"
    with deadline(60):
        async with http_server(chm_bin, engine_args(store), server_logs) as a:
            async with httpx.AsyncClient(timeout=20) as c:
                inc = (await c.post(a.base + "/api/v1/incidents", json=SNAKE)).json()["incident_id"]
                r = await c.post(a.base + TRIGGER, json={**TRIGGER_CAMEL, "incidentId": inc, "dryRun": False})
                assert r.status_code == 202, r.text
                wf = r.json()["workflow_id"]
                waiting = await wait_state(c, a.base, wf, {"awaiting_approval", "failed"})
                assert (waiting["state"], waiting["status"]) == ("awaiting_approval", "pending"), waiting
                assert [s["status"] for s in waiting["steps"]] == ["completed", "completed", "awaiting_approval", "pending", "pending"]
                r = await c.post(f"{a.base}/api/v1/workflows/{wf}/approve", json={"approvedBy": "carol"})
                assert r.status_code == 200 and r.json()["approved_by"] == "carol" and r.json()["approved_step"] == 3, r.text
                done = await wait_state(c, a.base, wf, {"completed", "failed"})
                assert done["status"] == "completed", done
                assert [s["status"] for s in done["steps"]] == ["completed"] * 5, done["steps"]
                again = await c.post(f"{a.base}/api/v1/workflows/{wf}/approve", json={})
                assert again.status_code == 409 and "is completed" in again.text, again.text
                listed = (await c.get(a.base + "/api/v1/workflows", params={"status": "completed"})).json()
                assert [w["id"] for w in listed["workflows"]] == [wf] and listed["total"] == 1, listed
        async with http_server(chm_bin, engine_args(store), server_logs) as b:
            async with httpx.AsyncClient(timeout=20) as c:
                kept = (await c.get(f"{b.base}/api/v1/workflows/{wf}")).json()
                assert (kept["status"], kept["incident_id"], len(kept["steps"])) == ("completed", inc, 5), kept
                incidents = (await c.get(b.base + "/api/v1/incidents", params={"namespace": "contract-snake"})).json()
                assert inc in {i["id"] for i in incidents["incidents"]}, incidents
