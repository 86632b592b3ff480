"""Per-user Kubernetes identity through the same MCP tools (issue 13), over Streamable HTTP
with the official Python SDK, against tests/snapshots/rbac-cluster (its tokens.yaml turns on
authentication and its own RBAC: alice may read team-a, bob, through his group, team-b, the
server's service account may only impersonate, nobody but admin may read Secrets).

a. identity: caller-token: the client forwards the user's own Kubernetes token in
   Authorization (as OpenShift Lightspeed does); each user sees only what its RoleBindings
   allow; a call without a token is refused and nothing falls back to the server's account.
b. identity: impersonate: the server validates the user's OAuth token (a real OIDC issuer,
   oauth2-mock-server) and acts as that user with Impersonate-User/-Group, holding only
   `impersonate` rights itself.
In both, the Secret stays denied for everyone.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import anyio
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import REPO, LogDir, deadline, http_server
from test_oauth import Issuer, issuer, oauth_server  # noqa: F401 (the issuer fixture)

pytestmark = pytest.mark.anyio

SNAPSHOT = REPO / "tests" / "snapshots" / "rbac-cluster"
SECRET = {"api_version": "v1", "kind": "Secret", "namespace": "team-a", "name": "db-credentials"}


def binding(identity: str, tmp: Path) -> dict[str, str]:
    """Settings pointing the kubernetes binding at the RBAC snapshot with `identity`, the
    binding's own token being the server's service account (impersonate rights only)."""
    token = tmp / "mcp-token"
    token.write_text("mcp-token\n")
    return {
        "CHM_BACKENDS__KUBERNETES__SOURCE__SNAPSHOT__PATH": str(SNAPSHOT),
        "CHM_BACKENDS__KUBERNETES__SOURCE__SNAPSHOT__TOKEN__FILE": str(token),
        "CHM_BACKENDS__KUBERNETES__IDENTITY": identity,
    }


@asynccontextmanager
async def plain_server(chm_bin: str, logs: LogDir, settings: dict[str, str]) -> AsyncIterator[str]:
    """serve --transport http on loopback without MCP authentication; yields the /mcp URL."""
    async with http_server(chm_bin, [], logs, ["--no-reload"], env=settings) as srv:
        yield srv.mcp_url


async def calls(url: str, bearer: str | None, todo: list[tuple[str, dict]]) -> list[tuple[bool, str]]:
    """Call each tool in one session sending `bearer` in Authorization; (is_error, text)."""
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    client = httpx2.AsyncClient(headers=headers, timeout=30)
    out = []
    async with client, streamable_http_client(url, http_client=client) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            for name, args in todo:
                res = await s.call_tool(name, args)
                out.append((bool(res.is_error), "\n".join(c.text for c in res.content if hasattr(c, "text"))))
    return out


TODO = [
    ("list-pods", {"namespace": "team-a"}),
    ("list-pods", {"namespace": "team-b"}),
    ("list-pods", {}),
    ("get-resource", SECRET),
]


def check_alice_and_bob(alice: list[tuple[bool, str]], bob: list[tuple[bool, str]]) -> None:
    (a_ok, a_text), (a_b, a_b_text), (a_all, a_all_text), (a_sec, a_sec_text) = alice
    assert not a_ok and "web-7d9f8-abcde" in a_text and "api-6b5c4" not in a_text, a_text
    assert a_b and 'User "alice" cannot list resource "pods" in API group "" in the namespace "team-b"' in a_b_text, a_b_text
    assert a_all and "cluster scope" in a_all_text, a_all_text
    assert a_sec and "forbidden" in a_sec_text.lower() and "secrets" in a_sec_text, a_sec_text
    (b_a, b_a_text), (b_ok, b_text), (b_all, _), (b_sec, b_sec_text) = bob
    assert b_a and 'User "bob"' in b_a_text, b_a_text
    assert not b_ok and "api-6b5c4-klmno" in b_text and "web-7d9f8" not in b_text, b_text
    assert b_all
    assert b_sec and "forbidden" in b_sec_text.lower(), b_sec_text


async def test_caller_token_each_user_sees_only_what_its_rbac_allows(chm_bin: str, server_logs: LogDir, tmp_path: Path) -> None:
    with deadline(60):
        audit = tmp_path / "audit.jsonl"
        settings = binding("caller-token", tmp_path) | {"CHM_AUDIT__SINK": "file", "CHM_AUDIT__PATH": str(audit)}
        async with plain_server(chm_bin, server_logs, settings) as url:
            alice = await calls(url, "alice-token", TODO)
            bob = await calls(url, "bob-token", TODO)
            check_alice_and_bob(alice, bob)
            # The cluster admin's own token reads the Secret (masked): the denial above is RBAC's.
            [(err, text)] = await calls(url, "admin-token", [("get-resource", SECRET)])
            assert not err and "masked" in text and "c25hcHNob3Q" not in text, text
            # No token: refused before anything is sent; never the server's own account.
            [(err, text)] = await calls(url, None, [("list-pods", {"namespace": "team-a"})])
            assert err and "caller-token" in text and "carried none" in text, text
            # A token the cluster does not know.
            [(err, text)] = await calls(url, "stolen", [("list-pods", {"namespace": "team-a"})])
            assert err and "401" in text and "not accept" in text, text
        # The audit records tell the users apart by a digest of their token, never the token.
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        acting = [r["requests"][0].get("acting_as") if r["requests"] else None for r in records]
        assert len({a for a in acting[:4]}) == 1 and acting[0].startswith("caller token sha256:"), acting
        assert acting[4] != acting[0] and acting[4].startswith("caller token sha256:"), acting
        [refused] = records[-2]["requests"]  # no token: refused before anything was sent
        assert refused["outcome"] == "forbidden" and refused["acting_as"].startswith("nobody"), refused
        text_of_log = audit.read_text()
        assert not any(t in text_of_log for t in ("alice-token", "bob-token", "admin-token", "stolen")), "tokens never logged"


async def test_impersonate_acts_as_the_oauth_user(chm_bin: str, issuer: Issuer, server_logs: LogDir, tmp_path: Path) -> None:  # noqa: F811
    audit = tmp_path / "audit.jsonl"
    settings = binding("impersonate", tmp_path) | {"CHM_AUDIT__SINK": "file", "CHM_AUDIT__PATH": str(audit)}
    with deadline(60):
        async with oauth_server(chm_bin, issuer, server_logs, **settings) as srv:

            def token(user: str, groups: list[str]) -> str:
                return issuer.token(sub=f"id-{user}", preferred_username=user, groups=groups, scope="mcp:read", aud=srv.mcp_url)

            alice = await calls(srv.mcp_url, token("alice", []), TODO)
            bob = await calls(srv.mcp_url, token("bob", ["team-b-devs"]), TODO)
            check_alice_and_bob(alice, bob)
            # bob without his group claim has no binding at all.
            [(err, text)] = await calls(srv.mcp_url, token("bob", []), [("list-pods", {"namespace": "team-b"})])
            assert err and 'User "bob"' in text, text
    # Each record names the OAuth caller and whom its Kubernetes requests impersonated.
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    first_bob = records[len(TODO)]
    assert records[0]["identity"]["username"] == "alice", records[0]
    assert {q["acting_as"] for q in records[0]["requests"]} == {"impersonating alice"}, records[0]
    assert first_bob["identity"]["username"] == "bob", first_bob
    assert {q["acting_as"] for q in first_bob["requests"]} == {"impersonating bob (groups team-b-devs)"}, first_bob
