"""Driver for tests/bench/k8s.sh (run that, not this): one synthetic cluster, our server and
kubernetes-mcp-server, the same MCP client (Python SDK, Streamable HTTP).

Servers (`--servers`, comma separated; every row starts a fresh process):
  ours-inproc   cluster-health-mcp reading the snapshot directory in-process
  ours-kube     cluster-health-mcp with a kubeconfig -> shim -> `snapshot serve` (real kube client)
  peer          kubernetes-mcp-server at its DEFAULTS (only the kubeconfig, port, loopback bind, log file)
  peer-yaml     the same with the non-default `--list-output yaml` (labelled: another setting)
Per row (server, question): a fresh server process, one MCP session; the first call is "cold"
(fresh process, nothing cached), then N timed "warm" calls -> median, p95 (nearest rank).
Peak RSS = VmHWM of that process after its row (what `/usr/bin/time -v` reports as maximum
resident set size). Sizes: text = UTF-8 bytes of the text content (what a model reads; tokens ~
text/4), wire = bytes of the JSON result (content + structuredContent).
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

CALL_TIMEOUT = 300
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


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"server exited ({proc.returncode}); log {log}:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
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


def pct(lat: list[float], q: float) -> float:
    s = sorted(lat)
    return s[max(math.ceil(q * len(s)) - 1, 0)]


async def call(s: ClientSession, kind: str, name: str, args: dict):  # noqa: ANN201
    with anyio.fail_after(CALL_TIMEOUT):
        if kind == "tool":
            res = await s.call_tool(name, args)
            if res.is_error:
                raise SystemExit(f"{name} {args} returned an error: {res.content[0].text[:500]}")
            return res
        return await s.get_prompt(name, args)


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
                res = await call(s, kind, name, args)
                dt = (time.perf_counter() - t0) * 1000
                if i == 0:
                    first, (text, wire) = dt, sizes(res)
                    head = (res.content[0].text if kind == "tool" else res.messages[0].content.text)[:160]
                else:
                    lat.append(dt)
    return {"n": len(lat), "first": first, "median": statistics.median(lat), "p95": pct(lat, 0.95),
            "text": text, "wire": wire, "head": head.replace("\n", " | ")}


def questions(family: str, ns: str) -> list[tuple[str, str, str, dict]]:
    if family == "ours":
        return [("all pods", "tool", "list-pods", {"limit": 50}), ("all pods", "tool", "list-pods", {"limit": 500}),
                ("pods of one namespace", "tool", "list-pods", {"namespace": ns}),
                ("cluster health", "tool", "get-cluster-health", {})]
    return [("all pods", "tool", "pods_list", {}), ("pods of one namespace", "tool", "pods_list_in_namespace", {"namespace": ns}),
            ("cluster health", "prompt", "cluster-health-check", {})]


def mode_yaml(name: str, source: str, cache: bool = False) -> str:
    return (f"apiVersion: cluster-health-mcp/v1\nkind: Mode\nmetadata: {{name: {name}}}\nspec:\n"
            f"  backends:\n    kubernetes:\n      source: {source}\n" + ("      cache: {}\n" if cache else "")
            + "  tools: {include: [\"*\"]}\n")


class Cluster:
    """`snapshot serve` + the shim in front of it, and Mode files for our two servers."""

    def __init__(self, chm: str, snapshot: str, work: Path, labels: list[str]) -> None:
        self.work, self.procs = work, []
        ss_log = work / "snapshot-serve.log"
        printed = work / "kc-printed"
        self.ss = subprocess.Popen([chm, "snapshot", "serve", snapshot, "--port", "0", "--kubeconfig", str(work / "kc-upstream")],
                                   stdin=subprocess.DEVNULL, stdout=open(printed, "w"), stderr=open(ss_log, "w"), env=clean_env())
        self.procs.append(self.ss)
        t0 = time.monotonic()
        while not re.search(r"server: (http://127\.0\.0\.1:\d+)", printed.read_text()):
            if self.ss.poll() is not None or time.monotonic() - t0 > 600:
                sys.exit(f"snapshot serve failed:\n{ss_log.read_text()[-3000:]}")
            time.sleep(0.1)
        upstream = re.search(r"server: (http://127\.0\.0\.1:\d+)", printed.read_text()).group(1)
        shim_py = Path(__file__).with_name("kube_shim.py")
        self.shim = subprocess.Popen([sys.executable, str(shim_py), "--upstream", upstream], stdout=subprocess.PIPE,
                                     stderr=open(work / "shim.log", "w"), text=True, env=clean_env())
        self.procs.append(self.shim)
        shim_port = int(self.shim.stdout.readline().split()[1])
        self.kc = work / "kubeconfig"
        self.kc.write_text(printed.read_text().replace(upstream, f"http://127.0.0.1:{shim_port}"))
        # Mode files in a directory of their own: the spec watcher reloads on any change in the
        # directory of a --specs file, so logs must not live next to them.
        self.modes = work / "modes"
        self.modes.mkdir(exist_ok=True)
        (self.modes / "bench-inproc.yaml").write_text(
            mode_yaml("bench-inproc", f'{{kubeconfig: null, snapshot: {{path: "{snapshot}"}}}}'))
        (self.modes / "bench-kube.yaml").write_text(mode_yaml("bench-kube", f'{{kubeconfig: {{path: "{self.kc}"}}}}'))
        # only when asked: a binary before the `cache` field refuses these files (its spec watcher reads them all)
        for name, src in (("inproc", f'{{kubeconfig: null, snapshot: {{path: "{snapshot}"}}}}'), ("kube", f'{{kubeconfig: {{path: "{self.kc}"}}}}')):
            if f"ours-{name}-cache" in labels:
                (self.modes / f"bench-{name}-cache.yaml").write_text(mode_yaml(f"bench-{name}-cache", src, cache=True))

    def close(self) -> None:
        for p in reversed(self.procs):
            stop(p)


SERVER_NOTES = {
    "ours-inproc": "ours, snapshot read in-process",
    "ours-kube": "ours, kube client over HTTP",
    "ours-inproc-cache": "ours in-process with the binding's read cache on (`cache: {}`: 10 s TTL)",
    "ours-kube-cache": "ours over HTTP with the binding's read cache on (`cache: {}`: 10 s TTL)",
    "peer": "peer at its defaults",
    "peer-yaml": "peer, non-default `--list-output yaml`",
}


def server_argv(label: str, a: argparse.Namespace, cl: Cluster, port: int) -> tuple[str, list[str]]:
    if label.startswith("ours-"):
        mode = "bench-" + label.removeprefix("ours-")
        return "ours", [a.chm, "--specs", f"{a.specs}/tools.d", "--specs", f"{a.specs}/modes", "--specs", str(cl.modes),
                        "--mode", mode, "serve", "--transport", "http", "--bind", f"127.0.0.1:{port}"]
    argv = [a.peer, "--kubeconfig", str(cl.kc), "--port", str(port), "--bind-address", "127.0.0.1",
            "--log-file", str(cl.work / f"{label}-internal.log")]
    if label == "peer-yaml":
        argv += ["--list-output", "yaml"]
    return "peer", argv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chm", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--snapshot", required=True)
    ap.add_argument("--specs", required=True, help="copy of tools.d + modes")
    ap.add_argument("--work", required=True)
    ap.add_argument("--servers", default="ours-inproc,ours-kube,peer,peer-yaml")
    ap.add_argument("--namespace", default="team-000", help="the namespace of the one-namespace question")
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--row-budget", type=float, default=40, help="seconds per row before stopping early (>= 5 calls)")
    a = ap.parse_args()
    work = Path(a.work)
    labels = [s for s in a.servers.split(",") if s]
    rows = []
    cl = Cluster(a.chm, a.snapshot, work, labels)
    try:
        for label in labels:
            family, _ = server_argv(label, a, cl, 0)
            for question, kind, name, args in questions(family, a.namespace):
                port = free_port()
                _, argv = server_argv(label, a, cl, port)
                log = work / f"{label}.log"
                t_start = time.monotonic()
                p = start(argv, log, f"http://127.0.0.1:{port}/healthz")
                ready = (time.monotonic() - t_start) * 1000
                print(f"  {label}: {name} {json.dumps(args) if args else ''} ...", file=sys.stderr, flush=True)
                try:
                    m = anyio.run(measure, f"http://127.0.0.1:{port}/mcp", kind, name, args, a.n, a.row_budget)
                    m["rss"], m["ready"] = vm_hwm_kib(p.pid), ready
                finally:
                    stop(p)
                call_s = f"{'prompts/get' if kind == 'prompt' else ''} {name} {json.dumps(args, separators=(',', ':')) if args else ''}".strip()
                rows.append((label, question, call_s, m))
        infra = {"snapshot serve (shared by ours-kube, peer)": vm_hwm_kib(cl.ss.pid), "shim (python)": vm_hwm_kib(cl.shim.pid)}
    finally:
        cl.close()

    print(f"\n### Results (one fresh server process per row; cold = its first call; warm = N={a.n} calls after it "
          f"unless the row hit its {a.row_budget:.0f} s budget)\n")
    print("| server | question | call | cold ms | warm n | warm median ms | warm p95 ms | text bytes | ≈tokens | wire bytes | peak RSS MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, q, call_s, m in rows:
        print(f"| {label} | {q} | `{call_s}` | {m['first']:,.0f} | {m['n']} | {m['median']:,.1f} | {m['p95']:,.1f} | "
              f"{m['text']:,} | {m['text'] // 4:,} | {m['wire']:,} | {m['rss'] / 1024:,.0f} |")
    print("\nServers: " + "; ".join(f"`{k}` = {SERVER_NOTES[k]}" for k in labels) + ".")
    print("\n| process | peak RSS (VmHWM) MiB |\n|---|---:|")
    for k, kib in infra.items():
        print(f"| {k} | {kib / 1024:,.1f} |")

    def find(label: str, question: str, call_prefix: str) -> dict | None:
        return next((m for l, q, c, m in rows if l == label and q == question and c.startswith(call_prefix)), None)

    peers = [p for p in ("peer", "peer-yaml") if p in labels]
    ours = [o for o in ("ours-inproc", "ours-kube", "ours-inproc-cache", "ours-kube-cache") if o in labels]
    if peers and ours:
        print("\n### Ratios (peer / ours; >1 means ours is smaller, faster or leaner)\n")
        print("| question | ours | vs | cold | warm median | text bytes | peak RSS |\n|---|---|---|---:|---:|---:|---:|")
        pairs = [("all pods", 'list-pods {"limit":50}', "pods_list"), ("all pods", 'list-pods {"limit":500}', "pods_list"),
                 ("pods of one namespace", "list-pods", "pods_list_in_namespace"),
                 ("cluster health", "get-cluster-health", "prompts/get")]
        for peer in peers:
            for o in ours:
                for q, oc, pc in pairs:
                    om, pm = find(o, q, oc), find(peer, q, pc)
                    if om and pm:
                        print(f"| {q} | {o} `{oc}` | {peer} | {pm['first'] / om['first']:.1f}x | {pm['median'] / om['median']:.1f}x | "
                              f"{pm['text'] / max(om['text'], 1):.1f}x | {pm['rss'] / om['rss']:.2f}x |")
    print("\nFirst line of each answer:")
    for label, q, call_s, m in rows:
        print(f"- {label} `{call_s}`: {m['head'][:140]}")


if __name__ == "__main__":
    main()
