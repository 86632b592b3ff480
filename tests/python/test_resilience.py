"""Backpressure, breakers and read caches, seen by a real client (official MCP SDK over
Streamable HTTP): reads retried after a server error, a circuit breaker that opens after 5
failures, fails fast naming the backend and when it retries, and shows in /metrics and
/readyz; an opt-in read cache that answers repeated and concurrent calls with one request and
says how old its data is.

The backend is Prometheus, pointed at a tiny loopback HTTP server this test controls (503 then
a valid answer; or a closed port)."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import LogDir, deadline, free_port, http_server

pytestmark = pytest.mark.anyio

QUERY = 'sum by (namespace) (up{job="kubelet"})'
VECTOR = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"namespace": "payments"}, "value": [1764547200, "3"]}]}}


class Flaky(BaseHTTPRequestHandler):
    """Answers 503 to the first `fail` requests, then a one-series vector."""

    fail = 0
    seen = 0
    delay = 0.0
    lock = threading.Lock()

    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self) -> None:
        with Flaky.lock:
            Flaky.seen += 1
            failing = Flaky.seen <= Flaky.fail
        time.sleep(Flaky.delay)
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = b"overloaded" if failing else json.dumps(VECTOR).encode()
        self.send_response(503 if failing else 200)
        self.send_header("Content-Type", "text/plain" if failing else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


def fake_prometheus(fail: int, delay: float = 0.0) -> tuple[ThreadingHTTPServer, str]:
    Flaky.fail, Flaky.seen, Flaky.delay = fail, 0, delay
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def args_for(url: str) -> list[str]:
    return ["--mode", "monitoring", "--snapshot", "builtin:demo", "--set", f"backends.prometheus.url={url}"]


def metric(text: str, name: str, backend: str) -> float:
    m = re.search(rf'^{name}{{backend="{backend}"}} (\S+)$', text, re.M)
    assert m, f"no {name} for {backend} in /metrics:\n{text}"
    return float(m.group(1))


async def test_a_read_that_meets_a_server_error_is_retried_and_succeeds(chm_bin: str, server_logs: LogDir) -> None:
    srv, url = fake_prometheus(fail=1)
    try:
        with deadline(30):
            async with http_server(chm_bin, args_for(url), server_logs) as server:
                async with streamable_http_client(server.mcp_url) as (r, w):
                    async with ClientSession(r, w) as s:
                        await s.initialize()
                        res = await s.call_tool("query-prometheus", {"query": QUERY})
                        assert not res.is_error, res.content[0].text
                        assert "1 series" in res.content[0].text, res.content[0].text
                assert Flaky.seen == 2, "one 503, one retry"
                text = (await server.get("/metrics")).text
                assert metric(text, "mcp_backend_retries_total", "prometheus") == 1
                assert metric(text, "mcp_backend_failures_total", "prometheus") == 1
                assert metric(text, "mcp_circuit_breaker_state", "prometheus") == 0
    finally:
        srv.shutdown()


async def test_five_failures_open_the_breaker_which_fails_fast_naming_the_backend(chm_bin: str, server_logs: LogDir) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    with deadline(60):
        async with http_server(chm_bin, args_for(url), server_logs) as server:
            async with streamable_http_client(server.mcp_url) as (r, w):
                async with ClientSession(r, w) as s:
                    await s.initialize()
                    # each call is one request and up to 2 retries: 5 failed requests open the breaker
                    first = await s.call_tool("query-prometheus", {"query": QUERY})
                    assert first.is_error and "circuit breaker" not in first.content[0].text
                    second = await s.call_tool("query-prometheus", {"query": QUERY})
                    assert second.is_error
                    t0 = time.monotonic()
                    fast = await s.call_tool("query-prometheus", {"query": QUERY})
                    took = time.monotonic() - t0
                    msg = fast.content[0].text
                    assert fast.is_error, msg
                    assert "prometheus" in msg and "circuit breaker open after 5 consecutive failures" in msg, msg
                    assert re.search(r"trial call through at \d\d:\d\d:\d\d UTC \(in (2\d|30) s\)", msg), msg
                    assert took < 0.5, f"an open breaker answers at once, took {took:.2f}s"
                    # other backends keep working
                    pods = await s.call_tool("list-pods", {"limit": 5})
                    assert not pods.is_error, pods.content[0].text
            text = (await server.get("/metrics")).text
            assert metric(text, "mcp_circuit_breaker_state", "prometheus") == 1
            assert metric(text, "mcp_circuit_breaker_state", "kubernetes") == 0
            assert metric(text, "mcp_backend_failures_total", "prometheus") == 5
            assert metric(text, "mcp_backend_rejected_total", "prometheus") >= 1
            ready = (await server.get("/readyz")).json()
            assert ready["openBreakers"] == ["prometheus"], ready
            assert ready["resilience"]["prometheus"]["breaker"] == "open", ready
            assert ready["resilience"]["kubernetes"]["breaker"] == "closed", ready


DATA_AGE = "cluster-health-mcp/dataAgeSeconds"


async def test_an_opted_in_cache_answers_repeated_and_concurrent_reads_with_one_request_and_their_age(
    chm_bin: str, server_logs: LogDir
) -> None:
    srv, url = fake_prometheus(fail=0, delay=0.3)
    try:
        with deadline(30):
            args = args_for(url) + ["--set", "backends.prometheus.cache.ttl=1h"]
            async with http_server(chm_bin, args, server_logs) as server:
                async with streamable_http_client(server.mcp_url) as (r, w):
                    async with ClientSession(r, w) as s:
                        await s.initialize()
                        # five at once: one request (single flight), all fresh
                        import anyio

                        results = []

                        async def one() -> None:
                            results.append(await s.call_tool("query-prometheus", {"query": QUERY}))

                        async with anyio.create_task_group() as tg:
                            for _ in range(5):
                                tg.start_soon(one)
                        assert all(not x.is_error for x in results), [x.content[0].text for x in results]
                        assert Flaky.seen == 1, f"{Flaky.seen} requests for 5 concurrent calls"
                        assert all(DATA_AGE not in (x.meta or {}) for x in results), [x.meta for x in results]
                        await anyio.sleep(0.2)
                        again = await s.call_tool("query-prometheus", {"query": QUERY})
                        assert Flaky.seen == 1, "served from the cache"
                        assert again.content[0].text == results[0].content[0].text
                        assert again.meta and again.meta[DATA_AGE] >= 0.2, again.meta
                        # another request is another entry
                        other = await s.call_tool("query-prometheus", {"query": 'up{job="x"}'})
                        assert not other.is_error and Flaky.seen == 2
    finally:
        srv.shutdown()


async def test_without_the_opt_in_every_call_reaches_the_backend(chm_bin: str, server_logs: LogDir) -> None:
    srv, url = fake_prometheus(fail=0)
    try:
        with deadline(30):
            async with http_server(chm_bin, args_for(url), server_logs) as server:
                async with streamable_http_client(server.mcp_url) as (r, w):
                    async with ClientSession(r, w) as s:
                        await s.initialize()
                        for _ in range(3):
                            res = await s.call_tool("query-prometheus", {"query": QUERY})
                            assert not res.is_error and not (res.meta or {}).get(DATA_AGE)
                assert Flaky.seen == 3
    finally:
        srv.shutdown()
