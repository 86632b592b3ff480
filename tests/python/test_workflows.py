"""Durable workflows over MCP (official Python SDK, Streamable HTTP) against the real binary.

- kill -9 while a slow, non-idempotent step runs; restart on the same SQLite file: the
  workflow is failed with the reason, and the counting backend saw the step exactly once;
  a slow read-only step is resumed (run again) and the workflow completes.
- an approval gate: the workflow waits, approve-workflow lets it finish, the write runs once;
  a dry run skips the gate and passes dry_run=true to the tool.
- two server processes on one real PostgreSQL (tests/support/postgres.sh) start 100
  workflows between them; each runs exactly once (executions counted per id at the counting
  server); RSS of both servers at rest and under that load is printed.

Run: PATH=$PWD/.deps/bin:$PATH pytest -q tests/python/test_workflows.py -s
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import anyio
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import REPO, deadline, http_server

SPECS = Path(__file__).resolve().parent / "specs" / "workflows.yaml"
pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------- counting server


class Counting:
    """An HTTP backend that counts calls per (workflow id, step) and answers /…?delay=N late."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.dry_runs: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                key = (q.get("wf", ""), q.get("step", ""))
                with outer.lock:
                    outer.calls[key] += 1
                    n = outer.calls[key]
                    if q.get("dry_run") == "true":
                        outer.dry_runs.append(key)
                time.sleep(float(q.get("delay", "0") or 0))
                body = json.dumps({"count": n}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, wf: str, step: str) -> int:
        with self.lock:
            return self.calls[(wf, step)]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def counting() -> Iterator[Counting]:
    c = Counting()
    yield c
    c.close()


def spec_args(store_url: str, counter_url: str, password_file: str | None = None) -> list[str]:
    args = [
        "--replace-catalogue", "--specs", str(SPECS), "--mode", "wf-test",
        "--set", f"backends.wf-store.url={store_url}",
        "--set", f"backends.counter.baseUrl={counter_url}",
    ]
    if password_file:
        args += ["--set", f'backends.wf-store.password={{"file": "{password_file}"}}']
    return args


@asynccontextmanager
async def session(url: str) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            yield s


async def call(s: ClientSession, tool: str, **args: Any) -> dict:
    r = await s.call_tool(tool, args)
    text = " ".join(getattr(c, "text", "") for c in r.content)
    assert not r.is_error, f"{tool} failed: {text}"
    return r.structured_content


async def wait_status(s: ClientSession, wf: str, statuses: set[str], timeout: float = 20) -> dict:
    with anyio.fail_after(timeout):
        while True:
            w = (await call(s, "get-workflow", id=wf))["workflow"]
            if w["status"] in statuses:
                return w
            await anyio.sleep(0.1)


async def wait_for(predicate, timeout: float = 15) -> None:  # noqa: ANN001
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.05)


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------- kill -9


async def test_kill_during_a_non_idempotent_step_fails_it_with_the_reason_and_never_runs_it_twice(
    chm_bin, server_logs, counting, tmp_path
):
    db = f"sqlite:{tmp_path / 'store.db'}"
    with deadline(60):
        async with http_server(chm_bin, spec_args(db, counting.url), server_logs) as srv:
            async with session(srv.mcp_url) as s:
                started = await call(s, "start-workflow", workflow="slow-act", dry_run=False)
                wf = started["workflow_id"]
                assert started["status"] == "pending"
                await wait_for(lambda: counting.count(wf, "act") == 1)
                running = (await call(s, "get-workflow", id=wf))["workflow"]
                assert running["status"] == "in_progress"
                assert [x["status"] for x in running["steps"]] == ["completed", "running", "pending"]
            kill9(srv.proc)
        async with http_server(chm_bin, spec_args(db, counting.url), server_logs) as srv:
            async with session(srv.mcp_url) as s:
                w = await wait_status(s, wf, {"completed", "failed"})
        assert w["status"] == "failed", w
        assert "was running when the server stopped" in w["error_message"], w
        assert [x["status"] for x in w["steps"]] == ["completed", "failed", "pending"]
        await anyio.sleep(5)  # longer than the slow step: had it run again, it would show
        assert counting.count(wf, "act") == 1
        assert counting.count(wf, "before") == 1
        assert counting.count(wf, "after") == 0


async def test_kill_during_a_read_only_step_resumes_and_completes(chm_bin, server_logs, counting, tmp_path):
    db = f"sqlite:{tmp_path / 'store.db'}"
    with deadline(60):
        async with http_server(chm_bin, spec_args(db, counting.url), server_logs) as srv:
            async with session(srv.mcp_url) as s:
                wf = (await call(s, "start-workflow", workflow="slow-look", arguments={"delay": 2}, dry_run=False))[
                    "workflow_id"
                ]
                await wait_for(lambda: counting.count(wf, "look") == 1)
            kill9(srv.proc)
        async with http_server(chm_bin, spec_args(db, counting.url), server_logs) as srv:
            async with session(srv.mcp_url) as s:
                w = await wait_status(s, wf, {"completed", "failed"})
        assert w["status"] == "completed", w
        step = w["steps"][0]
        assert step["status"] == "completed" and step["attempts"] == 2, step
        # The read ran twice (re-run because read-only), and the answer kept is the second's.
        assert counting.count(wf, "look") == 2
        assert step["result"]["count"] == 2


# --------------------------------------------------------------------------- approval, dry run


async def test_an_approval_gate_waits_and_the_write_runs_once_after_approval(chm_bin, server_logs, counting, tmp_path):
    db = f"sqlite:{tmp_path / 'store.db'}"
    with deadline(40):
        async with http_server(chm_bin, spec_args(db, counting.url), server_logs) as srv:
            async with session(srv.mcp_url) as s:
                started = await call(
                    s, "start-workflow", issue_type="oomkilled", resource_kind="Pod", resource_name="web-1", dry_run=False
                )
                assert (started["workflow"], started["estimated_duration"]) == ("gated", "1m")
                wf = started["workflow_id"]
                w = await wait_status(s, wf, {"awaiting_approval"})
                assert [x["status"] for x in w["steps"]] == ["completed", "awaiting_approval", "pending"]
                assert w["steps"][1]["result"]["message"] == "write for web-1?"
                assert counting.count(wf, "fast-act") == 0
                approved = await call(s, "approve-workflow", id=wf, by="alice")
                assert approved == {"status": "in_progress", "approved_step": 2}
                w = await wait_status(s, wf, {"completed", "failed"})
                assert w["status"] == "completed", w
                assert w["steps"][1]["result"]["approved_by"] == "alice"
                assert counting.count(wf, "fast-act") == 1
                assert counting.dry_runs == []
                # Approving again is refused: nothing waits.
                again = await s.call_tool("approve-workflow", {"id": wf})
                assert again.is_error and "is completed" in again.content[0].text

                dry = (await call(s, "start-workflow", workflow="gated"))["workflow_id"]
                w = await wait_status(s, dry, {"completed", "failed"})
                assert w["status"] == "completed" and w["dry_run"] is True, w
                assert [x["status"] for x in w["steps"]] == ["completed", "skipped", "completed"]
                assert counting.dry_runs == [(dry, "fast-act")]
                listed = await call(s, "list-workflows", status="completed")
                assert listed["total"] == 2 and {x["id"] for x in listed["workflows"]} == {wf, dry}
        # After a restart on the same file, both are still there.
        async with http_server(chm_bin, spec_args(db, counting.url), server_logs) as srv:
            async with session(srv.mcp_url) as s:
                assert (await call(s, "list-workflows"))["total"] == 2


# --------------------------------------------------------------------------- PostgreSQL, two replicas


@contextmanager
def postgres() -> Iterator[tuple[str, str]]:
    script = REPO / "tests" / "support" / "postgres.sh"
    proc = subprocess.Popen(["bash", str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        password_file = proc.stdout.readline().strip()
        if not url.startswith("postgres"):
            pytest.fail(f"tests/support/postgres.sh did not start PostgreSQL (got {url!r})", pytrace=False)
        yield url, password_file
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


async def test_two_servers_on_one_postgresql_run_each_of_100_workflows_exactly_once(
    chm_bin, server_logs, counting
):
    n = 100
    with postgres() as (url, password_file), deadline(180):
        args = spec_args(url, counting.url, password_file)
        async with http_server(chm_bin, args, server_logs) as a, http_server(chm_bin, args, server_logs) as b:
            async with session(a.mcp_url) as sa, session(b.mcp_url) as sb:
                await anyio.sleep(1)
                rest = (rss_mb(a.proc.pid), rss_mb(b.proc.pid))
                ids: list[str] = []
                peak = [0.0, 0.0]
                for i in range(n):
                    s = sa if i % 2 == 0 else sb
                    started = await call(s, "start-workflow", workflow="slow-act", arguments={"delay": 0.05}, dry_run=False)
                    ids.append(started["workflow_id"])
                assert len(set(ids)) == n
                t0 = time.monotonic()
                with anyio.fail_after(120):
                    while True:
                        peak = [max(peak[0], rss_mb(a.proc.pid)), max(peak[1], rss_mb(b.proc.pid))]
                        done = (await call(sa, "list-workflows", status="completed", limit=1))["total"]
                        if done == n:
                            break
                        failed = (await call(sb, "list-workflows", status="failed", limit=1))["total"]
                        assert failed == 0, "a workflow failed"
                        await anyio.sleep(0.2)
                elapsed = time.monotonic() - t0
                for wf in ids:
                    for step in ("before", "act", "after"):
                        assert counting.count(wf, step) == 1, (wf, step, counting.count(wf, step))
                # Both replicas took part (each logs the workflows it finished).
                ran = [log.read_text(errors="replace").count("workflow completed") for log in (a.log, b.log)]
                assert sum(ran) == n and min(ran) > 0, ran
                print(
                    f"\n[workflows] PostgreSQL, 2 servers, {n} workflows x 3 steps: all completed, each step once; "
                    f"{elapsed:.1f}s after the last start; run by server A {ran[0]}, B {ran[1]}; RSS at rest {rest[0]:.1f} / {rest[1]:.1f} MB, "
                    f"peak under load {peak[0]:.1f} / {peak[1]:.1f} MB"
                )
