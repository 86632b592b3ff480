"""OAuth 2.1 resource server against a real OIDC issuer (npm oauth2-mock-server, started by
oauth_issuer.mjs with real RS256 keys, discovery and JWKS) and the official Python SDK:

a. the protected resource metadata document (RFC 9728) at both well-known paths
b. no token, wrong audience, expired, not yet valid, bad signature, another issuer's key:
   401 with `WWW-Authenticate: Bearer resource_metadata=..., error="invalid_token", scope=...`
c. a token without the read scope: 403 `insufficient_scope`; a destructive tool without the
   write scope: 403 naming both scopes; with it, the call runs
d. a valid token: the SDK's session lists and calls tools
e. key rotation: a token signed by a key the issuer added after the server fetched its JWKS
f. the SDK's own OAuth flow (OAuthClientProvider: metadata discovery, dynamic client
   registration, authorization code + PKCE with the RFC 8707 resource) completes, with step-up
   to the write scope on a destructive call
"""

from __future__ import annotations

import base64
import json
import subprocess
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import parse_qs, urlparse

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from conftest import REPO, LogDir, _stop, deadline, free_port, http_server

pytestmark = pytest.mark.anyio

ISSUER_SCRIPT = Path(__file__).resolve().parent / "oauth_issuer.mjs"
NODE_MODULES = REPO / ".deps" / "oauth-npm" / "node_modules"
WRITES = REPO / "tests" / "kube_writes" / "remediation.yaml"  # destructive test tools (demo snapshot)
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@dataclass
class Issuer:
    url: str

    def token(self, **claims) -> str:
        r = httpx.post(f"{self.url}/test/token", json=claims, timeout=5)
        r.raise_for_status()
        return r.json()["access_token"]

    def rotate(self, kid: str) -> None:
        httpx.post(f"{self.url}/test/rotate", json={"kid": kid}, timeout=5).raise_for_status()


@dataclass
class Server:
    base: str
    log: Path

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    def post(self, body: dict, token: str | None = None) -> httpx.Response:
        h = dict(HEADERS)
        if token:
            h["authorization"] = f"Bearer {token}"
        return httpx.post(self.mcp_url, json=body, headers=h, timeout=10)


@pytest.fixture
def issuer(server_logs: LogDir):
    if not (NODE_MODULES / "oauth2-mock-server").is_dir():
        pytest.fail(f"oauth2-mock-server missing under {NODE_MODULES}: run scripts/test-deps.sh", pytrace=False)
    port = free_port()
    log = open(server_logs.new(f"issuer-{port}"), "w")
    proc = subprocess.Popen(
        ["node", str(ISSUER_SCRIPT), str(port), str(NODE_MODULES)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY "), f"issuer did not start: {line!r}"
        yield Issuer(line.split()[1])
    finally:
        _stop(proc)
        log.close()


@asynccontextmanager
async def oauth_server(chm_bin: str, issuer: Issuer, logs: LogDir, **settings: str) -> AsyncIterator[Server]:
    """The server over HTTP on the demo snapshot plus the destructive test tools, with OAuth
    pointed at the issuer (discovery) and its canonical URI as the audience."""

    def env(base: str) -> dict[str, str]:
        return {
            "CHM_HTTP__OAUTH__ISSUER": issuer.url,
            "CHM_HTTP__OAUTH__RESOURCE": f"{base}/mcp",
            "CHM_HTTP__OAUTH__JWKS_MIN_REFRESH_SECONDS": "1",
            "CHM_LOG": "info",
        } | settings

    async with http_server(chm_bin, ["--specs", str(WRITES)], logs, ["--no-reload"], env=env) as srv:
        yield Server(srv.base, srv.log)


def challenge(r: httpx.Response) -> dict[str, str]:
    """The parameters of a Bearer challenge."""
    h = r.headers.get("www-authenticate", "")
    assert h.startswith("Bearer "), h
    out = {}
    for part in h[len("Bearer ") :].split('", '):
        k, _, v = part.partition("=")
        out[k.strip()] = v.strip().strip('"')
    return out


def call(name: str, args: dict) -> dict:
    return {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": args}}


# --------------------------------------------------------------------------- a. metadata


async def test_the_protected_resource_metadata_is_served(chm_bin: str, issuer: Issuer, server_logs: LogDir) -> None:
    with deadline(30):
        async with oauth_server(chm_bin, issuer, server_logs) as srv:
            for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
                r = httpx.get(srv.base + path, timeout=5)
                assert r.status_code == 200, (path, r.text)
                doc = r.json()
                assert doc["resource"] == srv.mcp_url
                assert doc["authorization_servers"] == [issuer.url]
                assert doc["scopes_supported"] == ["mcp:read", "mcp:write"]
                assert doc["bearer_methods_supported"] == ["header"]


# --------------------------------------------------------------------------- b. refused tokens


async def test_bad_tokens_are_refused_with_the_challenge(chm_bin: str, issuer: Issuer, server_logs: LogDir) -> None:
    with deadline(30):
        async with oauth_server(chm_bin, issuer, server_logs) as srv:
            meta = f"{srv.base}/.well-known/oauth-protected-resource/mcp"
            r = srv.post(INIT)
            assert r.status_code == 401
            c = challenge(r)
            assert c == {"resource_metadata": meta, "scope": "mcp:read"}, c

            good = dict(sub="alice", scope="mcp:read", aud=srv.mcp_url)
            cases = {
                "wrong audience": (issuer.token(**(good | {"aud": "http://other.example/mcp"})), "not for this server"),
                "expired": (issuer.token(**good, expires_in=-300), "expired"),
                "not yet valid": (issuer.token(**good, nbf_in=600), "not valid yet"),
                "no audience": (issuer.token(sub="alice", scope="mcp:read"), "`aud`"),
            }
            valid = issuer.token(**good)
            head, body, sig = valid.split(".")
            flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
            cases["bad signature"] = (f"{head}.{body}.{flipped}", "signature")
            forged_claims = json.loads(base64.urlsafe_b64decode(body + "=="))
            forged_claims["scope"] = "mcp:read mcp:write"
            forged = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).decode().rstrip("=")
            cases["claims changed after signing"] = (f"{head}.{forged}.{sig}", "signature")
            cases["not a JWT"] = ("opaque-token", "not a JWT")
            for what, (token, says) in cases.items():
                r = srv.post(INIT, token)
                assert r.status_code == 401, (what, r.status_code, r.text)
                c = challenge(r)
                assert c["error"] == "invalid_token", (what, c)
                assert c["resource_metadata"] == meta and c["scope"] == "mcp:read", (what, c)
                assert says in c["error_description"], (what, c)

            assert srv.post(INIT, valid).status_code == 200


# --------------------------------------------------------------------------- c. scopes


async def test_scopes_are_required_per_tool_class(chm_bin: str, issuer: Issuer, server_logs: LogDir) -> None:
    with deadline(30):
        async with oauth_server(chm_bin, issuer, server_logs) as srv:
            no_read = issuer.token(sub="alice", scope="openid", aud=srv.mcp_url)
            r = srv.post(INIT, no_read)
            assert r.status_code == 403, r.text
            c = challenge(r)
            assert c["error"] == "insufficient_scope" and c["scope"] == "mcp:read", c

            reader = issuer.token(sub="alice", scope="mcp:read", aud=srv.mcp_url)
            writer = issuer.token(sub="bob", scope="mcp:read mcp:write", aud=srv.mcp_url)
            for token in (reader, writer):
                async with session(srv, token) as s:
                    names = {t.name for t in (await s.list_tools()).tools}
                    assert {"list-pods", "scale-deployment"} <= names
                    res = await s.call_tool("list-pods", {"namespace": "payments"})
                    assert not res.is_error, res

            # tools/call of a destructive tool with the read scope only: 403 naming both scopes
            sid = srv.post(INIT, reader).headers["mcp-session-id"]
            scale = call("scale-deployment", {"namespace": "payments", "name": "payments-gateway", "replicas": 1})
            h = dict(HEADERS, authorization=f"Bearer {reader}", **{"mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"})
            r = httpx.post(srv.mcp_url, json=scale, headers=h, timeout=10)
            assert r.status_code == 403, r.text
            c = challenge(r)
            assert c["error"] == "insufficient_scope" and c["scope"] == "mcp:read mcp:write", c

            async with session(srv, writer) as s:
                # (confirm: this client cannot be asked, and the tool has no dry run to show first)
                args = {"namespace": "payments", "name": "payments-gateway", "replicas": 1, "confirm": True}
                res = await s.call_tool("scale-deployment", args)
                assert not res.is_error, res
                assert res.structured_content == {"replicas": 1}


@asynccontextmanager
async def session(srv: Server, token: str) -> AsyncIterator[ClientSession]:
    client = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30)
    async with client, streamable_http_client(srv.mcp_url, http_client=client) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            yield s


# --------------------------------------------------------------------------- e. key rotation


async def test_a_rotated_signing_key_is_fetched_on_first_sight(chm_bin: str, issuer: Issuer, server_logs: LogDir) -> None:
    with deadline(30):
        async with oauth_server(chm_bin, issuer, server_logs) as srv:
            assert srv.post(INIT, issuer.token(sub="a", scope="mcp:read", aud=srv.mcp_url)).status_code == 200
            issuer.rotate("k2")
            rotated = issuer.token(sub="a", scope="mcp:read", aud=srv.mcp_url, kid="k2")
            await anyio.sleep(1.1)  # past the refetch rate limit (1 s in this test)
            r = srv.post(INIT, rotated)
            assert r.status_code == 200, r.text
            fetches = srv.log.read_text().count("fetched the authorization server's JWKS")
            assert fetches == 2, srv.log.read_text()[-2000:]
            # An unknown kid does not make every request refetch: a burst costs at most one fetch.
            head = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": "ghost"}).encode()).decode().rstrip("=")
            ghost = f"{head}.{rotated.split('.')[1]}.{rotated.split('.')[2]}"
            for _ in range(5):
                r = srv.post(INIT, ghost)
                assert r.status_code == 401 and "unknown" in challenge(r)["error_description"], r.text
            assert srv.log.read_text().count("fetched the authorization server's JWKS") <= 3


# --------------------------------------------------------------------------- f. the SDK's OAuth flow


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def test_the_python_sdk_completes_its_oauth_flow(chm_bin: str, issuer: Issuer, server_logs: LogDir) -> None:
    """The user agent is played by httpx: the issuer's /authorize redirects at once (no login
    page), and the redirect's code and state go back to the SDK."""
    with deadline(60):
        async with oauth_server(chm_bin, issuer, server_logs) as srv:
            redirect = {}

            async def redirect_handler(url: str) -> None:
                q = parse_qs(urlparse(url).query)
                assert q["resource"] == [srv.mcp_url], q  # RFC 8707, from the metadata document
                assert q["code_challenge_method"] == ["S256"], q
                r = httpx.get(url, follow_redirects=False, timeout=5)
                assert r.status_code in (302, 303), r.text
                redirect.update({k: v[0] for k, v in parse_qs(urlparse(r.headers["location"]).query).items()})
                redirect["scope"] = q.get("scope", [""])[0]

            async def callback_handler() -> AuthorizationCodeResult:
                return AuthorizationCodeResult(code=redirect["code"], state=redirect.get("state"))

            storage = MemoryStorage()
            auth = OAuthClientProvider(
                server_url=srv.mcp_url,
                client_metadata=OAuthClientMetadata(
                    client_name="chm-test",
                    redirect_uris=["http://127.0.0.1:9/callback"],
                    grant_types=["authorization_code", "refresh_token"],
                    response_types=["code"],
                    token_endpoint_auth_method="none",
                ),
                storage=storage,
                redirect_handler=redirect_handler,
                callback_handler=callback_handler,
            )
            client = httpx2.AsyncClient(auth=auth, timeout=30)
            async with client, streamable_http_client(srv.mcp_url, http_client=client) as (r, w):
                async with ClientSession(r, w) as s:
                    await s.initialize()
                    assert redirect["scope"] == "mcp:read", redirect  # the scope the 401 challenge named
                    assert storage.client is not None and storage.client.client_id  # registered dynamically
                    names = {t.name for t in (await s.list_tools()).tools}
                    assert "list-pods" in names
                    res = await s.call_tool("list-pods", {"namespace": "payments"})
                    assert not res.is_error, res
                    # Step-up: the destructive call's 403 names the write scope; the SDK asks again.
                    res = await s.call_tool(
                        "scale-deployment",
                        {"namespace": "payments", "name": "payments-gateway", "replicas": 2, "confirm": True},
                    )
                    assert not res.is_error, res
                    assert set(redirect["scope"].split()) == {"mcp:read", "mcp:write"}, redirect
            claims = json.loads(base64.urlsafe_b64decode(storage.tokens.access_token.split(".")[1] + "=="))
            assert claims["aud"] == srv.mcp_url and claims["sub"] == "johndoe", claims
