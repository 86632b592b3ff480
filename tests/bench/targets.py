#!/usr/bin/env python3
"""The original server's targets on the demo cluster: tools < 100 ms p95, resources < 50 ms p95,
memory < 50 MB at rest and < 100 MB under load.

    .deps/bin/python tests/bench/targets.py [BINARY]   (default target/release/cluster-health-mcp)

Starts `serve --transport http` on the built-in demo cluster, reads VmRSS at rest, times 50 calls
per question over one MCP session (Python SDK, Streamable HTTP), then reads VmHWM.
"""
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[2]
N = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mem(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


async def timed(call) -> tuple[float, float]:
    await call()  # warm-up
    ts = []
    for _ in range(N):
        t = time.perf_counter()
        await call()
        ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    return statistics.median(ts), ts[int(0.95 * N) - 1]


async def main(binary: str) -> None:
    port = free_port()
    server = subprocess.Popen(
        [binary, "serve", "--transport", "http", "--bind", f"127.0.0.1:{port}", "--no-reload"],
        cwd="/", stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        rest = mem(server.pid, "VmRSS")
        rows = []
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (r, w, *_):
            async with ClientSession(r, w) as s:
                await s.initialize()
                for label, call in [
                    ("tool get-cluster-health", lambda: s.call_tool("get-cluster-health", {})),
                    ("tool list-pods limit 50", lambda: s.call_tool("list-pods", {"limit": 50})),
                    ("tool get-pod", lambda: s.call_tool("get-pod", {"namespace": "payments", "name": "payments-api-mkrp2xtfbl-7bpqm"})),
                    ("resource cluster://health", lambda: s.read_resource("cluster://health")),
                    ("resource cluster://nodes", lambda: s.read_resource("cluster://nodes")),
                ]:
                    med, p95 = await timed(call)
                    rows.append((label, med, p95))
        peak = mem(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait()
    print(f"| call | median ms | p95 ms |\n|---|---:|---:|")
    for label, med, p95 in rows:
        print(f"| {label} | {med:.1f} | {p95:.1f} |")
    print(f"\nRSS at rest {rest:.1f} MiB, peak {peak:.1f} MiB ({N} calls per row after 1 warm-up)")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/release/cluster-health-mcp"))
