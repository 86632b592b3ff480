"""Driver for tests/bench/load.sh (run that, not this): concurrent MCP sessions against one server
process at a time, on the same synthetic cluster as k8s.sh (its `Cluster`: snapshot serve + shim).

For each server and question: one fresh process; one warm-up call; then for each concurrency C
(`--levels`), C MCP sessions (Python SDK, Streamable HTTP, one asyncio task each, all in this one
client process) call the same question back to back for `--seconds`. Reported per level:
completed calls, throughput (calls/s), latency median / p99 (nearest rank), errors; peak RSS
(VmHWM) of the server after all its levels. The client shares the 2 cores with the server: the
figures are a floor for the server's capacity, comparable between servers, not an absolute one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from k8s_bench import MAX_EVENT, SERVER_NOTES, Cluster, call, free_port, pct, questions, server_argv, start, stop, vm_hwm_kib


async def session(url: str, kind: str, name: str, args: dict, until: float, lat: list[float], errors: list[str]) -> None:
    async with streamable_http_client(url, max_sse_event_size=MAX_EVENT) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            while time.perf_counter() < until:
                t0 = time.perf_counter()
                try:
                    await call(s, kind, name, args)
                except (Exception, SystemExit) as e:  # noqa: BLE001 - counted, reported
                    errors.append(str(e)[:200])
                    continue
                lat.append((time.perf_counter() - t0) * 1000)


async def level(url: str, kind: str, name: str, args: dict, c: int, seconds: float) -> dict:
    # warm-up (not counted): one call on its own session
    await session(url, kind, name, args, time.perf_counter() + 0.001, [], [])
    lat: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    until = t0 + seconds
    async with anyio.create_task_group() as tg:
        for _ in range(c):
            tg.start_soon(session, url, kind, name, args, until, lat, errors)
    wall = time.perf_counter() - t0  # includes finishing the calls in flight at the deadline
    return {"c": c, "calls": len(lat), "wall": wall, "rps": len(lat) / wall, "median": statistics.median(lat) if lat else float("nan"),
            "p99": pct(lat, 0.99) if lat else float("nan"), "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chm", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--snapshot", required=True)
    ap.add_argument("--specs", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--servers", default="ours-inproc,ours-kube,peer")
    ap.add_argument("--namespace", default="team-000")
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--questions", default="pods of one namespace,cluster health")
    a = ap.parse_args()
    work = Path(a.work)
    labels = [s for s in a.servers.split(",") if s]
    levels = [int(x) for x in a.levels.split(",")]
    wanted = [q.strip() for q in a.questions.split(",")]
    out = []
    cl = Cluster(a.chm, a.snapshot, work, labels)
    try:
        for label in labels:
            family, _ = server_argv(label, a, cl, 0)
            for question, kind, name, args in questions(family, a.namespace):
                if question not in wanted:
                    continue
                port = free_port()
                _, argv = server_argv(label, a, cl, port)
                p = start(argv, work / f"load-{label}.log", f"http://127.0.0.1:{port}/healthz")
                try:
                    for c in levels:
                        print(f"  {label}: {name} x{c} sessions for {a.seconds:.0f} s ...", file=sys.stderr, flush=True)
                        r = anyio.run(level, f"http://127.0.0.1:{port}/mcp", kind, name, args, c, a.seconds)
                        out.append((label, question, name, r))
                    rss = vm_hwm_kib(p.pid)
                finally:
                    stop(p)
                out = [(l, q, n, {**r, "rss": rss}) if l == label and q == question else (l, q, n, r) for l, q, n, r in out]
    finally:
        cl.close()

    print(f"\n### Load: C concurrent MCP sessions, each calling back to back for {a.seconds:.0f} s (one fresh server process per question)\n")
    print("| server | question | call | sessions | calls | calls/s | median ms | p99 ms | errors | server peak RSS MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, q, name, r in out:
        print(f"| {label} | {q} | `{name}` | {r['c']} | {r['calls']} | {r['rps']:.1f} | {r['median']:,.1f} | {r['p99']:,.1f} | "
              f"{len(r['errors'])} | {r['rss'] / 1024:,.0f} |")
    print("\nServers: " + "; ".join(f"`{k}` = {SERVER_NOTES[k]}" for k in labels) + ".")
    errs = [(l, n, e) for l, _, n, r in out for e in r["errors"][:2]]
    for l, n, e in errs:
        print(f"- error {l} `{n}`: {e}")


if __name__ == "__main__":
    main()
