"""Driver for tests/bench/k8s.sh (run that, not this): one synthetic cluster, three servers, the same
MCP client (Python SDK, Streamable HTTP), one session per (server, question).

Servers (each a fresh process; peak RSS = VmHWM of that process at the end of its questions):
  ours-inproc   cluster-health-mcp reading the snapshot directory in-process
  ours-kube     cluster-health-mcp with a kubeconfig -> shim -> `snapshot serve` (real kube client)
  peer          kubernetes-mcp-server --read-only --list-output yaml, same kubeconfig
Per question: 1 warm-up call (its latency is "1st"), then N timed calls -> median, p95 (nearest rank).
Sizes: text = UTF-8 bytes of the text content (what a model reads; tokens ~ text/4),
wire = bytes of the JSON result (content + structuredContent).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

CALL_TIMEOUT = 120
MAX_EVENT = 1 << 30
MIN_CALLS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    # our server reads every CHM_* variable as a setting; neither server should see KUBECONFIG
    return {k: v for k, v in os.environ.items() if not k.startswith("CHM_") and k != "KUBECONFIG"}


def vm_hwm_kib(pid: int) -> int:
    m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else -1


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"server exited ({proc.returncode}); log {log}:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    sys.exit(f"server at {url} not up in {timeout}s; log {log}:\n{log.read_text()[-3000:]}")


def start(argv: list[str], log: Path, health: str) -> subprocess.Popen:
    f = open(log, "w")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=clean_env())
    wait_http(health, p, log)
    return p


def sizes(result) -> tuple[int, int]:  # noqa: ANN001
    if hasattr(result, "messages"):  # GetPromptResult
        text = "".join(getattr(m.content, "text", "") for m in result.messages)
    else:
        text = "".join(getattr(c, "text", "") for c in result.content)
    wire = len(result.model_dump_json(by_alias=True, exclude_none=True).encode())
    return len(text.encode()), wire


async def measure(url: str, kind: str, name: str, args: dict, n: int, budget: float) -> dict:
    # the SDK caps one SSE event at 1 MiB by default; the peer's answers are far bigger
    async with streamable_http_client(url, max_sse_event_size=MAX_EVENT) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            lat: list[float] = []
            first = None
            row_start = time.perf_counter()
            for i in range(n + 1):
                if len(lat) >= MIN_CALLS and time.perf_counter() - row_start > budget:
                    break  # keep the whole run bounded; the table reports the real n
                t0 = time.perf_counter()
                with anyio.fail_after(CALL_TIMEOUT):
                    if kind == "tool":
                        res = await s.call_tool(name, args)
                    else:
                        res = await s.get_prompt(name, args)
                dt = (time.perf_counter() - t0) * 1000
                if kind == "tool" and res.is_error:
                    raise SystemExit(f"{name} {args} returned an error: {res.content[0].text[:500]}")
                if i == 0:
                    first, (text, wire) = dt, sizes(res)
                    head = (res.content[0].text if kind == "tool" else res.messages[0].content.text)[:160]
                else:
                    lat.append(dt)
    lat.sort()
    return {"n": len(lat), "first": first, "median": statistics.median(lat), "p95": lat[math.ceil(0.95 * len(lat)) - 1],
            "text": text, "wire": wire, "head": head.replace("\n", " | ")}


QUESTIONS = {
    "ours": [("list pods", "tool", "list-pods", {"limit": 50}), ("list pods", "tool", "list-pods", {"limit": 500}),
             ("cluster health", "tool", "get-cluster-health", {})],
    "peer": [("list pods", "tool", "pods_list", {}), ("cluster health", "prompt", "cluster-health-check", {})],
}


def mode_yaml(name: str, source: str) -> str:
    return (f"apiVersion: cluster-health-mcp/v1\nkind: Mode\nmetadata: {{name: {name}}}\nspec:\n"
            f"  backends:\n    kubernetes:\n      source: {source}\n  tools: {{include: [\"*\"]}}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chm", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--snapshot", required=True)
    ap.add_argument("--specs", required=True, help="copy of tools.d + modes")
    ap.add_argument("--work", required=True)
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--row-budget", type=float, default=40, help="seconds per row before stopping early (>= 5 calls)")
    a = ap.parse_args()
    work = Path(a.work)
    shim_py = Path(__file__).with_name("kube_shim.py")
    procs: list[subprocess.Popen] = []
    rows, rss, notes = [], {}, []
    try:
        # snapshot serve + shim, shared by ours-kube and the peer
        ss_log = work / "snapshot-serve.log"
        ss = subprocess.Popen([a.chm, "snapshot", "serve", a.snapshot, "--port", "0", "--kubeconfig", str(work / "kc-upstream")],
                              stdin=subprocess.DEVNULL, stdout=open(work / "kc-printed", "w"), stderr=open(ss_log, "w"), env=clean_env())
        procs.append(ss)
        t0 = time.monotonic()
        while not re.search(r"server: (http://127\.0\.0\.1:\d+)", (work / "kc-printed").read_text()):
            if ss.poll() is not None or time.monotonic() - t0 > 120:
                sys.exit(f"snapshot serve failed:\n{ss_log.read_text()[-3000:]}")
            time.sleep(0.1)
        upstream = re.search(r"server: (http://127\.0\.0\.1:\d+)", (work / "kc-printed").read_text()).group(1)
        shim = subprocess.Popen([sys.executable, str(shim_py), "--upstream", upstream], stdout=subprocess.PIPE,
                                stderr=open(work / "shim.log", "w"), text=True, env=clean_env())
        procs.append(shim)
        shim_port = int(shim.stdout.readline().split()[1])
        kc = work / "kubeconfig"
        kc.write_text((work / "kc-printed").read_text().replace(upstream, f"http://127.0.0.1:{shim_port}"))

        # Mode files in a directory of their own: the spec watcher reloads on any change in the
        # directory of a --specs file, so logs must not live next to them.
        modes = work / "modes"
        modes.mkdir()
        (modes / "bench-inproc.yaml").write_text(
            mode_yaml("bench-inproc", f'{{kubeconfig: null, snapshot: {{path: "{a.snapshot}"}}}}'))
        (modes / "bench-kube.yaml").write_text(mode_yaml("bench-kube", f'{{kubeconfig: {{path: "{kc}"}}}}'))

        servers = [
            ("ours-inproc", "ours", lambda port: [a.chm, "--specs", f"{a.specs}/tools.d", "--specs", f"{a.specs}/modes", "--specs",
                                                 str(modes), "--mode", "bench-inproc", "serve", "--transport", "http",
                                                 "--bind", f"127.0.0.1:{port}"], "/healthz"),
            ("ours-kube", "ours", lambda port: [a.chm, "--specs", f"{a.specs}/tools.d", "--specs", f"{a.specs}/modes", "--specs",
                                               str(modes), "--mode", "bench-kube", "serve", "--transport", "http",
                                               "--bind", f"127.0.0.1:{port}"], "/healthz"),
            ("peer", "peer", lambda port: [a.peer, "--kubeconfig", str(kc), "--port", str(port), "--bind-address", "127.0.0.1",
                                           "--read-only", "--list-output", "yaml", "--disable-multi-cluster",
                                           "--log-file", str(work / "peer-internal.log")], "/healthz"),
        ]
        for label, family, argv, health in servers:
            port = free_port()
            log = work / f"{label}.log"
            t_start = time.monotonic()
            p = start(argv(port), log, f"http://127.0.0.1:{port}{health}")
            procs.append(p)
            startup = (time.monotonic() - t_start) * 1000
            for question, kind, name, args in QUESTIONS[family]:
                print(f"  {label}: {name} {json.dumps(args) if args else ''} ...", file=sys.stderr, flush=True)
                m = anyio.run(measure, f"http://127.0.0.1:{port}/mcp", kind, name, args, a.n, a.row_budget)
                call = f"{'prompts/get' if kind == 'prompt' else ''} {name} {json.dumps(args, separators=(',', ':')) if args else ''}".strip()
                rows.append((label, question, call, m))
            rss[label] = (vm_hwm_kib(p.pid), startup)
            stop(p)
        rss["snapshot serve (shared by ours-kube, peer)"] = (vm_hwm_kib(ss.pid), None)
        rss["shim (python)"] = (vm_hwm_kib(shim.pid), None)
    finally:
        for p in reversed(procs):
            stop(p)

    print(f"\n### Results (n timed calls after 1 warm-up, N={a.n} unless a row hit its {a.row_budget:.0f} s budget; one MCP session per row)\n")
    print("| server | question | call | n | median ms | p95 ms | 1st ms | text bytes | ≈tokens | wire bytes |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, q, call, m in rows:
        print(f"| {label} | {q} | `{call}` | {m['n']} | {m['median']:.1f} | {m['p95']:.1f} | {m['first']:.1f} | "
              f"{m['text']:,} | {m['text'] // 4:,} | {m['wire']:,} |")
    print("\n| process | peak RSS (VmHWM) MiB | ready after ms |\n|---|---:|---:|")
    for k, (kib, st) in rss.items():
        print(f"| {k} | {kib / 1024:.1f} | {'' if st is None else f'{st:.0f}'} |")

    def find(label: str, call_prefix: str) -> dict:
        return next(m for l, _, c, m in rows if l == label and c.startswith(call_prefix))

    print("\n### Ratios (peer / ours; >1 means ours is smaller or faster)\n")
    print("| question | ours call | vs | median latency | text bytes | peak RSS |\n|---|---|---|---:|---:|---:|")
    peer_pl, peer_h = find("peer", "pods_list"), find("peer", "prompts/get")
    for ours in ("ours-inproc", "ours-kube"):
        for call, pm in (('list-pods {"limit":50}', peer_pl), ('list-pods {"limit":500}', peer_pl), ("get-cluster-health", peer_h)):
            om = find(ours, call)
            print(f"| {'cluster health' if 'health' in call else 'list pods'} | {ours} `{call}` | peer | "
                  f"{pm['median'] / om['median']:.1f}x | {pm['text'] / max(om['text'], 1):.1f}x | {rss['peer'][0] / rss[ours][0]:.1f}x |")
    print("\nFirst line of each answer:")
    for label, q, call, m in rows:
        print(f"- {label} `{call}`: {m['head'][:140]}")


if __name__ == "__main__":
    main()
