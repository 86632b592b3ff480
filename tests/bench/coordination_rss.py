"""RSS of `serve --transport http` in a mode (full or demo) on the demo snapshot with the
coordination store on a SQLite file: at rest, then after 100 incident creates and 100 lists.
Usage: .deps/bin/python tests/bench/coordination_rss.py BINARY full|demo (port 18150)."""
import os
import subprocess
import sys
import tempfile
import time

import httpx

binp, mode = sys.argv[1], sys.argv[2]
d = tempfile.mkdtemp()
args = [binp, "--mode", mode, "--snapshot", "builtin:demo", "--set", f"backends.coordination-store.url=sqlite:{d}/store.db",
        "serve", "--transport", "http", "--bind", "127.0.0.1:18150", "--no-reload"]
env = {k: v for k, v in os.environ.items() if not k.startswith("CHM_")}
p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(f"{d}/log", "w"), env=env)
def rss(key):
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith(key): return int(l.split()[1]) / 1024
try:
    for _ in range(100):
        try:
            if httpx.get("http://127.0.0.1:18150/healthz").status_code == 200: break
        except Exception: pass
        time.sleep(0.1)
    c = httpx.Client(base_url="http://127.0.0.1:18150", timeout=30)
    c.get("/api/v1/incidents"); time.sleep(2)
    rest = rss("VmRSS")
    for i in range(100):
        r = c.post("/api/v1/incidents", json={"title": f"t{i}", "description": "d", "severity": "low", "target": "x"}); assert r.status_code == 201, r.text
    for i in range(100):
        assert c.get("/api/v1/incidents", params={"limit": 100}).json()["total"] == 100
    print(f"{mode}: RSS at rest {rest:.1f} MiB, after 100 creates + 100 lists of 100: VmRSS {rss('VmRSS'):.1f} MiB, VmHWM {rss('VmHWM'):.1f} MiB")
finally:
    p.terminate(); p.wait()
