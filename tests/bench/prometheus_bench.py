"""Driver for tests/bench/prometheus.sh (run that, not this): one real Prometheus (tests/prometheus),
two MCP servers, the same MCP client as k8s_bench.py (Python SDK, Streamable HTTP).

Servers (each a fresh process; peak RSS = VmHWM of that process after all its questions):
  ours   cluster-health-mcp --transport http, Mode with only the prometheus backend in use
  peer   prometheus-mcp-server (PyPI, pab1it0), PROMETHEUS_MCP_SERVER_TRANSPORT=http
One MCP session per server for all its questions. Per question: 1 warm-up call (latency "1st"),
then N timed calls -> median, p95 (nearest rank). Sizes as in k8s_bench.py: text = UTF-8 bytes
of the text content (tokens ~ text/4), wire = bytes of the JSON result (content +
structuredContent). A "direct" row per PromQL times the bare Prometheus HTTP API (httpx, no MCP):
the floor both servers sit on.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from k8s_bench import CALL_TIMEOUT, MAX_EVENT, MIN_CALLS, clean_env, free_port, sizes, stop, vm_hwm_kib, wait_http

Q_INSTANT = 'sum by (namespace) (rate(container_cpu_usage_seconds_total{container!=""}[5m]))'
Q_RANGE = 'rate(container_cpu_usage_seconds_total{namespace="payments",container!=""}[5m])'
Q_THROTTLE = ("sum by (namespace, pod) (rate(container_cpu_cfs_throttled_periods_total[5m])) / "
              "sum by (namespace, pod) (rate(container_cpu_cfs_periods_total[5m]))")
RANGE_S = 6 * 3600


def questions(step: str) -> dict[str, list[tuple[str, str, object]]]:
    """(question, tool, args or a function returning args: called once per row, before the warm-up)."""
    def peer_range() -> dict:
        end = time.time()
        return {"query": Q_RANGE, "start": f"{end - RANGE_S:.3f}", "end": f"{end:.3f}", "step": step}
    ours_range = {"query": Q_RANGE, "type": "range", "start": "-6h", "end": "now", "step": step}
    return {
        "ours": [("instant: CPU by namespace", "query-prometheus", {"query": Q_INSTANT}),
                 ("range 6h: payments CPU", "query-prometheus", ours_range),
                 ("range 6h: payments CPU", "query-prometheus", {**ours_range, "raw": True}),
                 ("CPU-throttled pods", "get-throttled-pods", {})],
        "peer": [("instant: CPU by namespace", "execute_query", {"query": Q_INSTANT}),
                 ("range 6h: payments CPU", "execute_range_query", peer_range),
                 ("CPU-throttled pods", "execute_query", {"query": Q_THROTTLE})],
    }


def summarise(lat: list[float]) -> dict:
    lat = sorted(lat)
    return {"n": len(lat), "median": statistics.median(lat), "p95": lat[math.ceil(0.95 * len(lat)) - 1]}


def answer_facts(tool: str, res) -> str:  # noqa: ANN001
    """What the answer says, for the sanity column: series, points, pods at or above 25 %."""
    sc = res.structured_content or {}
    if tool == "get-throttled-pods":
        return f"{sc.get('count')} pods >= 25%"
    if tool == "query-prometheus":
        r = sc.get("result") or []
        pts = sum(len(s.get("points") or s.get("values") or []) for s in r)
        if r and "avg" in r[0]:
            return f"{sc.get('series')} series, summaries of {sum(s.get('count', 0) for s in r)} points"
        return f"{sc.get('series')} series" + (f", {pts} points" if pts else "")
    if "result" not in sc:  # no structuredContent: parse the text
        sc = json.loads(res.content[0].text)
    r = sc.get("result") or []
    if sc.get("resultType") == "matrix":
        return f"{len(r)} series, {sum(len(s['values']) for s in r)} points"
    if r and "pod" in r[0]["metric"]:
        return f"{len(r)} series ({sum(float(s['value'][1]) >= 0.25 for s in r)} >= 25%)"
    return f"{len(r)} series"


async def run_session(url: str, rows: list[tuple[str, str, object]], n: int, budget: float) -> list[dict]:
    out = []
    async with streamable_http_client(url, max_sse_event_size=MAX_EVENT) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            for question, tool, args in rows:
                args = args() if callable(args) else args
                print(f"    {tool} {json.dumps(args)[:110]} ...", file=sys.stderr, flush=True)
                lat: list[float] = []
                row_start = time.perf_counter()
                for i in range(n + 1):
                    if len(lat) >= MIN_CALLS and time.perf_counter() - row_start > budget:
                        break
                    t0 = time.perf_counter()
                    with anyio.fail_after(CALL_TIMEOUT):
                        res = await s.call_tool(tool, args)
                    dt = (time.perf_counter() - t0) * 1000
                    if res.is_error:
                        raise SystemExit(f"{tool} {args} returned an error: {res.content[0].text[:500]}")
                    if i == 0:
                        first, (text, wire), facts = dt, sizes(res), answer_facts(tool, res)
                        head = res.content[0].text[:160].replace("\n", " | ")
                    else:
                        lat.append(dt)
                shown = {k: v for k, v in args.items() if k not in ("query", "start", "end")}
                call = f"{tool} {json.dumps(shown, separators=(',', ':'))}" if shown else tool
                out.append({"question": question, "call": call, "first": first, "text": text, "wire": wire,
                            "facts": facts, "head": head, **summarise(lat)})
    return out


def direct(prom: str, n: int, step: str) -> list[dict]:
    """The same PromQL straight against the Prometheus HTTP API (no MCP): the floor."""
    out = []
    with httpx.Client(timeout=30) as c:
        for question, path, params in (("instant: CPU by namespace", "query", {"query": Q_INSTANT}),
                                       ("range 6h: payments CPU", "query_range", None),
                                       ("CPU-throttled pods", "query", {"query": Q_THROTTLE})):
            if params is None:
                end = time.time()
                params = {"query": Q_RANGE, "start": f"{end - RANGE_S:.3f}", "end": f"{end:.3f}", "step": step}
            lat = []
            for i in range(n + 1):
                t0 = time.perf_counter()
                r = c.get(f"{prom}/api/v1/{path}", params=params)
                r.raise_for_status()
                c_json = r.json()  # parse like a client would
                dt = (time.perf_counter() - t0) * 1000
                if i:
                    lat.append(dt)
            res = c_json["data"]["result"]
            out.append({"question": question, "call": f"GET /api/v1/{path}", "first": None, "text": len(r.content),
                        "wire": len(r.content), "facts": f"{len(res)} series", "head": "", **summarise(lat)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chm", required=True)
    ap.add_argument("--peer", required=True, help="prometheus-mcp-server console script (in its own venv)")
    ap.add_argument("--prometheus", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--prometheus-pid", type=int)
    ap.add_argument("--specs", required=True, help="copy of tools.d + modes")
    ap.add_argument("--work", required=True)
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--step", default="2m", help="range step, same for both servers (ours raises any step below 6h/240 = 90s)")
    ap.add_argument("--row-budget", type=float, default=30)
    a = ap.parse_args()
    a.chm, a.peer, a.specs = (str(Path(x).resolve()) for x in (a.chm, a.peer, a.specs))  # servers run in cwd=work
    work = Path(a.work).resolve()
    qs = questions(a.step)

    # Mode in a directory of its own (the spec watcher reloads on changes next to a --specs file)
    modes = work / "modes"
    modes.mkdir(exist_ok=True)
    (modes / "bench.yaml").write_text(
        "apiVersion: cluster-health-mcp/v1\nkind: Mode\nmetadata: {name: bench}\nspec:\n  backends:\n"
        '    kubernetes: {source: {kubeconfig: null, snapshot: {path: "builtin:demo"}}}\n'
        f'    prometheus: {{url: "{a.prometheus}", timeout: 10s}}\n  tools: {{include: ["*"]}}\n')
    servers = [
        ("ours", lambda port: ([a.chm, "--specs", f"{a.specs}/tools.d", "--specs", f"{a.specs}/modes", "--specs", str(modes),
                                "--mode", "bench", "serve", "--transport", "http", "--bind", f"127.0.0.1:{port}"], {}), "/healthz"),
        # the peer reads only env; PROMETHEUS_DISABLE_LINKS left at its default (answers carry a UI link)
        ("peer", lambda port: ([a.peer], {"PROMETHEUS_URL": a.prometheus, "PROMETHEUS_MCP_SERVER_TRANSPORT": "http",
                                          "PROMETHEUS_MCP_BIND_HOST": "127.0.0.1", "PROMETHEUS_MCP_BIND_PORT": str(port)}),
         "/health"),
    ]
    results: dict[str, list[dict]] = {}
    rss: dict[str, tuple[int, float | None]] = {}
    for label, argv_env, health in servers:
        port = free_port()
        argv, env = argv_env(port)
        log = work / f"{label}.log"
        t0 = time.monotonic()
        # cwd=work: the peer loads a .env from its cwd (python-dotenv); none there
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                             env={**clean_env(), **env}, cwd=work)
        try:
            wait_http(f"http://127.0.0.1:{port}{health}", p, log)
            startup = (time.monotonic() - t0) * 1000
            print(f"  {label} (pid {p.pid}, ready in {startup:.0f} ms)", file=sys.stderr, flush=True)
            results[label] = anyio.run(run_session, f"http://127.0.0.1:{port}/mcp", qs[label], a.n, a.row_budget)
            rss[label] = (vm_hwm_kib(p.pid), startup)
        finally:
            stop(p)
    print("  direct Prometheus HTTP API ...", file=sys.stderr, flush=True)
    results["direct"] = direct(a.prometheus, a.n, a.step)
    if a.prometheus_pid:
        rss["prometheus (shared; not part of either server)"] = (vm_hwm_kib(a.prometheus_pid), None)

    print(f"\n### Results (n timed calls after 1 warm-up; one MCP session per server; range step {a.step})\n")
    print("| server | question | call | n | median ms | p95 ms | 1st ms | text bytes | ≈tokens | wire bytes | answer |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for label in ("ours", "peer", "direct"):
        for m in results[label]:
            first = "" if m["first"] is None else f"{m['first']:.1f}"
            print(f"| {label} | {m['question']} | `{m['call']}` | {m['n']} | {m['median']:.1f} | {m['p95']:.1f} | {first} | "
                  f"{m['text']:,} | {m['text'] // 4:,} | {m['wire']:,} | {m['facts']} |")
    print("\n| process | peak RSS (VmHWM) MiB | ready after ms |\n|---|---:|---:|")
    for k, (kib, st) in rss.items():
        print(f"| {k} | {kib / 1024:.1f} | {'' if st is None else f'{st:.0f}'} |")

    print("\n### Ratios (peer / ours; >1 means ours is smaller or faster)\n")
    print("| question | ours call | median latency | p95 latency | text bytes (≈tokens) | wire bytes | peak RSS |")
    print("|---|---|---:|---:|---:|---:|---:|")
    peer_by_q = {m["question"]: m for m in results["peer"]}
    for om in results["ours"]:
        pm = peer_by_q[om["question"]]
        print(f"| {om['question']} | `{om['call']}` | {pm['median'] / om['median']:.2f}x | {pm['p95'] / om['p95']:.2f}x | "
              f"{pm['text'] / max(om['text'], 1):.1f}x | {pm['wire'] / max(om['wire'], 1):.1f}x | "
              f"{rss['peer'][0] / rss['ours'][0]:.1f}x |")
    print("\nFirst line of each answer:")
    for label in ("ours", "peer"):
        for m in results[label]:
            print(f"- {label} `{m['call']}`: {m['head'][:150]}")


if __name__ == "__main__":
    main()
