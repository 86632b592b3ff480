#!/usr/bin/env python3
"""Readiness and ground-truth checks against the Prometheus started by start.sh.

  check.py ready  URL [--timeout S]            wait for GET /-/ready == 200
  check.py wait   URL EXPECTED [--timeout S]   wait until the synthetic target was scraped
                                              and the firing/pending alerts equal expected.json
  check.py verify URL EXPECTED [--at now|ref]  run the reference PromQL queries, compare with
                                              expected.json, print a table; exit 1 on mismatch
  check.py seam   URL EXPECTED                 rate()-based sums over [T-10m, now] every 5 s must
                                              stay within 0.5 % (no hole between backfill and live)

Standard library only.
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

FEEDER_JOB = "chm-synthetic"
RECORDS = 'instance:node_cpu_utilisation:rate5m|namespace:container_cpu_usage_seconds_total:sum_rate'


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def query(base, q, at=None):
    params = {"query": q}
    if at is not None:
        params["time"] = str(at)
    _, body = get(base + "/api/v1/query?" + urllib.parse.urlencode(params), timeout=30)
    d = json.loads(body)
    if d.get("status") != "success":
        raise RuntimeError("query failed: %s: %s" % (q, body[:300]))
    return d["data"]["result"]


def alert_key(labels):
    return json.dumps({k: v for k, v in labels.items() if k != "alertstate"}, sort_keys=True)


def alive(pid):
    if not pid:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmd_ready(a):
    deadline = time.time() + a.timeout
    last = None
    while time.time() < deadline:
        if not alive(a.pid):
            print("check.py: process %d exited" % a.pid, file=sys.stderr)
            return 2
        try:
            status, body = get(a.url + "/-/ready", timeout=2)
            if status == 200:
                return 0
            last = "%d %s" % (status, body.strip())
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.2)
    print("check.py: %s not ready after %ss (%s)" % (a.url, a.timeout, last), file=sys.stderr)
    return 1


def alert_sets(base):
    _, body = get(base + "/api/v1/alerts")
    alerts = json.loads(body)["data"]["alerts"]
    firing = {alert_key(x["labels"]) for x in alerts if x["state"] == "firing"}
    pending = {alert_key(x["labels"]) for x in alerts if x["state"] == "pending"}
    return firing, pending


def cmd_wait(a):
    exp = json.load(open(a.expected))
    want_f = {alert_key(x["labels"]) for x in exp["alerts"]["firing"]}
    want_p = {alert_key(x["labels"]) for x in exp["alerts"]["pending"]}
    t0 = time.time()
    deadline = t0 + a.timeout
    scraped = alerts_ok = recorded = False
    fresh_at = None
    firing = pending = set()
    while time.time() < deadline:
        if not alive(a.pid):
            print("check.py: process %d exited" % a.pid, file=sys.stderr)
            return 2
        try:
            if not scraped:
                # the live exporter is being scraped and the newest sample is <= 31 s old (older
                # samples make rate() at "now" extrapolate less and read low)
                up = query(a.url, 'up{job="%s"} == 1' % FEEDER_JOB)
                res = query(a.url, 'max(timestamp(node_memory_MemTotal_bytes{job="node-exporter"}))')
                if up and res and res[0]["value"][0] - float(res[0]["value"][1]) <= 31:
                    scraped, fresh_at = True, res[0]["value"][0]
                    print("check.py: live exporter scraped, data fresh after %.1fs" % (time.time() - t0),
                          file=sys.stderr)
            if scraped and not recorded:
                # recording rules evaluated while the data were stale read low: wait for a
                # fresh evaluation of every recording rule
                res = query(a.url, 'min(timestamp({__name__=~"%s"}))' % RECORDS)
                recorded = bool(res) and float(res[0]["value"][1]) > fresh_at
            firing, pending = alert_sets(a.url)
            if firing == want_f and want_p <= pending and not alerts_ok:
                alerts_ok = True
                print("check.py: expected alerts firing after %.1fs" % (time.time() - t0), file=sys.stderr)
            if scraped and alerts_ok and recorded:
                return 0
        except (urllib.error.URLError, OSError, RuntimeError) as e:
            print("check.py: %s" % e, file=sys.stderr)
        time.sleep(0.5)
    print("check.py: timeout after %ss: synthetic target scraped=%s, recording rules re-evaluated=%s"
          % (a.timeout, scraped, recorded), file=sys.stderr)
    for k in sorted(want_f - firing):
        print("  expected firing, not firing: %s" % k, file=sys.stderr)
    for k in sorted(firing - want_f):
        print("  unexpected firing: %s" % k, file=sys.stderr)
    for k in sorted(want_p - pending):
        print("  expected pending, not pending: %s" % k, file=sys.stderr)
    return 1


QUERIES = {
    "throttle_ratio": ("namespace", "pod"),
    "node_cpu_utilisation": ("instance",),
    "node_memory_utilisation": ("instance",),
    "filesystem_days_to_full": ("instance", "mountpoint"),
    "memory_growth_bytes_per_day": ("namespace", "pod", "container"),
    "cpu_p95_7d": ("namespace", "pod", "container"),
    "record_namespace_cpu": ("namespace",),  # recording rule: only evaluated from start ("now")
}


def within(got, want, tol):
    if want is None or got is None:
        return got == want
    err = abs(got - want)
    return err <= tol.get("abs", 0) or err <= tol.get("rel", 0) * abs(want)


def cmd_verify(a):
    exp = json.load(open(a.expected))
    at = exp["eval_time"] if a.at == "ref" else None
    bad = 0
    rows = []
    for name, keys in QUERIES.items():
        if name.startswith("record_") and a.at != "now":
            continue
        spec = exp["queries"][name]
        res = query(a.url, spec["promql"], at)
        got = {tuple(r["metric"].get(k, "") for k in keys): float(r["value"][1]) for r in res}
        for v in spec["values"]:
            k = tuple(v["labels"].get(x, "") for x in keys)
            g = got.pop(k, None)
            ok = within(g, v["value"], v["tolerance"] if a.at == "now" else {"rel": 1e-9, "abs": 1e-12})
            bad += not ok
            rows.append((name, "/".join(k), g, v["value"], v["tolerance"], ok))
        for k, g in got.items():
            bad += 1
            rows.append((name, "/".join(k), g, None, {}, False))
    # ALERTS{}: backfilled history up to T ("ref"), written by the rule manager from start on ("now")
    if True:
        res = query(a.url, 'ALERTS{alertstate="firing"}', at)
        got = {alert_key(r["metric"]) for r in res}
        want = {alert_key(dict(x["labels"], __name__="ALERTS")) for x in exp["alerts"]["firing"]}
        ok = got == want
        bad += not ok
        rows.append(("ALERTS_firing", "%d series" % len(want), len(got), len(want), {}, ok))
        for k in sorted(got ^ want):
            rows.append(("ALERTS_firing", k, "-", "-", {}, False))
    w = sys.stdout.write
    w("%-28s %-62s %16s %16s %s\n" % ("query", "series", "prometheus", "expected", "ok"))
    for name, k, g, e, tol, ok in rows:
        fmt = lambda x: ("%.6g" % x) if isinstance(x, float) else str(x)
        w("%-28s %-62s %16s %16s %s\n" % (name, k[:62], fmt(g), fmt(e), "ok" if ok else "MISMATCH"))
    w("%d rows, %d mismatches (at=%s)\n" % (len(rows), bad, a.at))
    return 1 if bad else 0


SEAM_QUERIES = [
    'sum(rate(container_cpu_usage_seconds_total{container!=""}[5m]))',
    '1 - avg(rate(node_cpu_seconds_total{mode="idle"}[5m]))',
    'sum(rate(container_cpu_cfs_throttled_periods_total[5m])) / sum(rate(container_cpu_cfs_periods_total[5m]))',
]


def cmd_seam(a):
    exp = json.load(open(a.expected))
    T = exp["reference_time"]
    end = time.time()
    bad = 0
    for q in SEAM_QUERIES:
        ref = float(query(a.url, q, T)[0]["value"][1])
        params = {"query": q, "start": str(T - 600), "end": "%.3f" % end, "step": "5"}
        _, body = get(a.url + "/api/v1/query_range?" + urllib.parse.urlencode(params), timeout=30)
        vals = json.loads(body)["data"]["result"][0]["values"]
        worst = max(vals, key=lambda p: abs(float(p[1]) / ref - 1))
        dev = abs(float(worst[1]) / ref - 1)
        gaps = (end - T) / 5 + 121 - len(vals)
        ok = dev <= 0.005 and gaps < 2
        bad += not ok
        print("%-100s at T %.6g, %d points, worst %.6g at T%+.0fs (%.3f %%) %s" % (
            q, ref, len(vals), float(worst[1]), worst[0] - T, 100 * dev, "ok" if ok else "MISMATCH"))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ready")
    p.add_argument("url")
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--pid", type=int, help="fail as soon as this process is gone")
    p = sub.add_parser("wait")
    p.add_argument("url")
    p.add_argument("expected")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--pid", type=int, help="fail as soon as this process is gone")
    p = sub.add_parser("verify")
    p.add_argument("url")
    p.add_argument("expected")
    p.add_argument("--at", choices=("now", "ref"), default="now")
    p = sub.add_parser("seam")
    p.add_argument("url")
    p.add_argument("expected")
    a = ap.parse_args()
    a.url = a.url.rstrip("/")
    sys.exit({"ready": cmd_ready, "wait": cmd_wait, "verify": cmd_verify, "seam": cmd_seam}[a.cmd](a))


if __name__ == "__main__":
    main()
