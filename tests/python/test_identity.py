"""Destructive calls and who made them (issue 13), with the official Python SDK over
Streamable HTTP against the server on the demo cluster, callers authenticated by a real OIDC
issuer (oauth2-mock-server, as in test_oauth.py), audit records written to a file and read
back:

- read-only mode: a destructive tool is hidden from tools/list and refused when called;
- elicitation: the SDK's elicitation callback is asked before a destructive call changes
  anything; a decline changes nothing, an accept applies the change;
- audit: one record per tool call and REST route call, naming the OAuth caller, the
  arguments, the backend requests (verb and target) and the outcome.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import httpx
import httpx2
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from conftest import LogDir, deadline
from test_oauth import Issuer, Server, issuer, oauth_server  # noqa: F401 (the issuer fixture)

pytestmark = pytest.mark.anyio

CHECKOUT = {"namespace": "shop-frontend", "kind": "Deployment", "name": "checkout"}
RESTARTED = "remediation.aiops/restarted-at"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def text(res: types.CallToolResult) -> str:
    return "\n".join(c.text for c in res.content if hasattr(c, "text"))


@asynccontextmanager
async def session(srv: Server, token: str, elicitation=None) -> AsyncIterator[ClientSession]:  # noqa: ANN001
    """A session as the token's user; with an elicitation callback when given (the SDK then
    declares the elicitation capability)."""
    client = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30)
    async with client, streamable_http_client(srv.mcp_url, http_client=client) as (r, w):
        async with ClientSession(r, w, elicitation_callback=elicitation) as s:
            await s.initialize()
            yield s


def user_token(issuer: Issuer, srv: Server, user: str) -> str:
    return issuer.token(sub=f"id-{user}", preferred_username=user, groups=["ops"], scope="mcp:read mcp:write", aud=srv.mcp_url)


async def restarted_at(s: ClientSession) -> str | None:
    res = await s.call_tool(
        "get-resource",
        {"api_version": "apps/v1", "kind": "Deployment", "namespace": "shop-frontend", "name": "checkout",
         "fields": ["spec.template.metadata.annotations"]},
    )
    assert not res.is_error, text(res)
    return (res.structured_content["object"].get("annotations") or {}).get(RESTARTED)


async def test_read_only_mode_refuses_a_destructive_tool(chm_bin: str, issuer: Issuer, server_logs: LogDir, tmp_path: Path) -> None:  # noqa: F811
    audit = tmp_path / "audit.jsonl"
    settings = {"CHM_READ_ONLY": "true", "CHM_AUDIT__SINK": "file", "CHM_AUDIT__PATH": str(audit)}
    with deadline(60):
        async with oauth_server(chm_bin, issuer, server_logs, **settings) as srv:
            async with session(srv, user_token(issuer, srv, "alice")) as s:
                names = {t.name for t in (await s.list_tools()).tools}
                assert "list-pods" in names
                assert not names & {"restart-workload", "increase-memory-limit", "scale-deployment"}, names
                res = await s.call_tool("restart-workload", {**CHECKOUT, "dry_run": False, "confirm": True})
                assert res.is_error and "read-only" in text(res) and "nothing was done" in text(res), text(res)
                assert await restarted_at(s) is None
    [refused, read] = records(audit)
    assert (refused["name"], refused["outcome"], refused["requests"]) == ("restart-workload", "refused", []), refused
    assert refused["identity"]["subject"] == "id-alice" and refused["identity"]["username"] == "alice", refused
    assert refused["identity"]["source"] == "oauth" and refused["identity"]["groups"] == ["ops"], refused
    assert refused["arguments"] == {**CHECKOUT, "dry_run": False, "confirm": True}, refused
    assert read["name"] == "get-resource" and read["outcome"] == "ok", read


async def test_elicitation_confirms_a_destructive_call_and_every_call_is_audited(chm_bin: str, issuer: Issuer, server_logs: LogDir, tmp_path: Path) -> None:  # noqa: F811
    audit = tmp_path / "audit.jsonl"
    settings = {"CHM_AUDIT__SINK": "file", "CHM_AUDIT__PATH": str(audit)}
    asked: list[types.ElicitRequestParams] = []
    answer = {"action": "decline"}

    async def elicitation(context, params: types.ElicitRequestParams) -> types.ElicitResult:  # noqa: ANN001
        asked.append(params)
        if answer["action"] == "accept":
            return types.ElicitResult(action="accept", content={"confirm": True})
        return types.ElicitResult(action=answer["action"])

    with deadline(60):
        async with oauth_server(chm_bin, issuer, server_logs, **settings) as srv:
            async with session(srv, user_token(issuer, srv, "bob"), elicitation) as s:
                # Declined: the user saw the dry run; nothing changed.
                res = await s.call_tool("restart-workload", {**CHECKOUT, "dry_run": False})
                assert res.is_error and "declined" in text(res) and "Nothing was changed" in text(res), text(res)
                assert len(asked) == 1
                assert "`restart-workload` will change the cluster" in asked[0].message, asked[0].message
                assert "Its dry run answered" in asked[0].message and "checkout" in asked[0].message, asked[0].message
                assert asked[0].requested_schema["properties"]["confirm"]["type"] == "boolean", asked[0]
                assert await restarted_at(s) is None

                # Accepted: applied.
                answer["action"] = "accept"
                res = await s.call_tool("restart-workload", {**CHECKOUT, "dry_run": False})
                assert not res.is_error, text(res)
                assert len(asked) == 2
                assert await restarted_at(s) is not None

                # A dry run asks nobody.
                res = await s.call_tool("restart-workload", CHECKOUT)
                assert not res.is_error and len(asked) == 2, text(res)

            # A REST route call (GET /health, bound to get-server-health) as the same user.
            token = user_token(issuer, srv, "bob")
            assert httpx.get(f"{srv.base}/health", timeout=5).status_code == 401
            r = httpx.get(f"{srv.base}/health", headers={"authorization": f"Bearer {token}"}, timeout=5)
            assert r.status_code == 200, r.text

    log = records(audit)
    calls = [(r["called"], r["name"], r["outcome"]) for r in log]
    assert calls == [
        ("tool", "restart-workload", "declined"),
        ("tool", "get-resource", "ok"),
        ("tool", "restart-workload", "ok"),
        ("tool", "get-resource", "ok"),
        ("tool", "restart-workload", "ok"),
        ("route", "health", "ok"),
    ], calls
    for r in log:
        assert r["type"] == "audit" and r["identity"]["subject"] == "id-bob", r
        assert r["time"].endswith("Z") and r["duration_ms"] >= 0, r
    declined, applied = log[0], log[2]
    assert "declined" in declined["message"], declined
    steps = lambda rec: [f"{q['verb']} {q['target']}" for q in rec["requests"]]  # noqa: E731
    # The decline's record holds the dry run's requests only; the applied one the real patch too.
    assert "patch (dry run) Deployment shop-frontend/checkout" in steps(declined), steps(declined)
    assert "patch Deployment shop-frontend/checkout" not in steps(declined), steps(declined)
    assert "patch Deployment shop-frontend/checkout" in steps(applied), steps(applied)
    assert all(q["backend"] == "kubernetes" and q["kind"] == "kubernetes" for q in applied["requests"]), applied
    route = log[5]
    assert route["route"] == "GET /health" and route["tool"] == "get-server-health", route


async def test_a_workflows_tool_calls_are_audited_as_the_workflow(chm_bin: str, server_logs: LogDir, tmp_path: Path) -> None:
    from conftest import http_server
    from test_workflows import Counting, call, spec_args, wait_status
    from test_workflows import session as wf_session

    audit = tmp_path / "audit.jsonl"
    counting = Counting()
    try:
        args = spec_args("sqlite::memory:", counting.url) + ["--set", "audit.sink=file", "--set", f"audit.path={audit}"]
        with deadline(60):
            async with http_server(chm_bin, args, server_logs) as srv:
                async with wf_session(srv.mcp_url) as s:
                    wf = (await call(s, "start-workflow", workflow="slow-act", arguments={"delay": 0}, dry_run=False))["workflow_id"]
                    w = await wait_status(s, wf, {"completed", "failed"})
                    assert w["status"] == "completed", w
    finally:
        counting.close()
    by_runner = [r for r in records(audit) if r["identity"]["source"] == "workflow"]
    assert [r["name"] for r in by_runner] == ["look", "act", "look"], by_runner
    for r in by_runner:
        assert r["identity"]["subject"] == f"workflow:{wf}" and r["outcome"] == "ok", r
    act = by_runner[1]
    assert act["arguments"]["dry_run"] is False and act["arguments"]["wf"] == wf, act
    assert [(q["verb"], q["target"].rsplit("/", 1)[-1]) for q in act["requests"]] == [("POST", "act")], act
    started = next(r for r in records(audit) if r["name"] == "start-workflow")
    assert started["identity"]["source"] == "anonymous" and started["outcome"] == "ok", started
