#!/usr/bin/env python3
"""Synthetic OpenShift-like metrics for a real Prometheus (tests/prometheus/).

Deterministic (seeded) model of a small demo cluster (master-0..2, worker-0..3,
namespaces payments, shop-frontend, ml-serving, data-platform, openshift-monitoring).
Every series value is a pure function of (seed, reference time T, t), so the same
model produces both the backfill and the live continuation:

  generate.py gen   --end T --out data.om --expected expected.json
      OpenMetrics text for [T-8d, T] (promtool tsdb create-blocks-from openmetrics)
      plus expected.json: ground truth computed from the written samples with the
      formulas PromQL 2.x uses (see promql_* helpers below).
  generate.py serve --end T --port 0 --port-file F [--watch-dir DIR]
      the same series after T: to Prometheus (honor_labels) on the backfill's 30 s grid
      with explicit timestamps, so the stored data continue seamlessly (cmd_serve).

Sample layout (TIERS below, see README.md): node-exporter / cAdvisor series and counters
every 30 s for (T-2h, T], 5 min for (T-24h, T-2h], 30 min before; container-level
container_cpu_usage_seconds_total every 5 min over the whole 8 days (for
quantile_over_time(..., rate(...[5m])[7d:5m])); kube-state-metrics gauges every 5 min
for the last 24 h and hourly before. Grids are aligned to absolute multiples of the
step and every series has a sample at T.

Only the Python standard library is used.
"""
import argparse
import bisect
import json
import math
import os
import random
import sys
import threading
import time

DAY = 86400
HOUR = 3600
GIB = 1024 ** 3
MIB = 1024 ** 2
W_DAY = 2 * math.pi / DAY  # diurnal angular frequency

HISTORY = 8 * DAY
MID_SPAN = 24 * HOUR
RECENT_SPAN = 2 * HOUR
RECENT_STEP = 30
# sample steps (seconds) per tier for the regions [T-8d, T-24h], (T-24h, T-2h], (T-2h, T]
TIERS = {
    "fine": (300, 300, 30),      # container_cpu_usage_seconds_total{container!=""}: 7d P95 subquery
    "dynamic": (1800, 300, 30),  # other node-exporter / cAdvisor series, restarts, ALERTS*
    "static": (3600, 300, 300),  # kube-state-metrics gauges (constant or step-wise)
}

LOOKBACK = 300  # Prometheus default --query.lookback-delta


# --------------------------------------------------------------------------- noise
def _mix(x):
    """splitmix64 finaliser."""
    x &= 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _key(seed, text):
    h = seed & 0xFFFFFFFF
    for ch in text.encode():
        h = _mix(h * 131 + ch)
    return h


def noise(key, t):
    """Deterministic uniform noise in [-1, 1) for (series key, integer second t)."""
    return _mix(key ^ (int(t) * 0x9E3779B97F4A7C15)) / 2.0 ** 63 - 1.0


# --------------------------------------------------------------------------- scenario
NODES = [
    # name, role, cpus, MemTotal, target CPU utilisation at T, target memory utilisation at T
    ("master-0", "master", 4, 16_389_070_848, 0.34, 0.58),
    ("master-1", "master", 4, 16_389_070_848, 0.29, 0.55),
    ("master-2", "master", 4, 16_389_070_848, 0.27, 0.52),
    ("worker-0", "worker", 4, 16_389_070_848, 0.56, 0.62),
    ("worker-1", "worker", 4, 16_389_070_848, 0.47, 0.58),
    ("worker-2", "worker", 4, 16_389_070_848, 0.78, 0.85),
    ("worker-3", "worker", 4, 16_389_070_848, 0.03, 0.11),
]
CPU_SHARES = [0.27, 0.25, 0.25, 0.23]  # per-CPU share of a node's busy time
NOT_READY_NODE = "worker-3"
NOT_READY_SINCE = -3 * HOUR  # relative to T
CRASH_SINCE = -3 * HOUR
MEM_HIGH_RAMP = (-15 * 60, -5 * 60)  # worker-2 memory rises from 72% to 85% (crosses 80% at ~T-8.8m)

# container: (name, cpu_req, cpu_lim, mem_req, mem_lim, cpu at T (cores), diurnal amplitude,
#             memory working set at T, leak bytes/day, throttle ratio or None (None: no CPU limit))
def C(name, req, lim, mreq, mlim, cpu, amp, mem, leak=0.0, thr=None):
    return dict(name=name, cpu_req=req, cpu_lim=lim, mem_req=mreq, mem_lim=mlim,
                cpu_T=cpu, amp=amp, mem_T=mem, leak=leak, throttle=thr)


# pod: (namespace, pod, node or None, owner kind, owner name, phase, containers)
PODS = [
    ("payments", "payments-api-6c9f7d8b5-2xkqp", "worker-0", "ReplicaSet", "payments-api-6c9f7d8b5", "Running",
     [C("api", 1.0, 2.0, 1 * GIB, 2 * GIB, 0.100, 0.30, 310 * MIB, thr="rand")]),
    ("payments", "payments-api-6c9f7d8b5-9wzrt", "worker-1", "ReplicaSet", "payments-api-6c9f7d8b5", "Running",
     [C("api", 1.0, 2.0, 1 * GIB, 2 * GIB, 0.100, 0.30, 298 * MIB, thr="rand")]),
    ("payments", "payments-worker-5b8d6f4c7-h7mjn", "worker-0", "ReplicaSet", "payments-worker-5b8d6f4c7", "Running",
     [C("worker", 0.4, 0.5, 512 * MIB, 1 * GIB, 0.470, 0.04, 420 * MIB, thr=0.80)]),
    ("payments", "payments-redis-0", "worker-1", "StatefulSet", "payments-redis", "Running",
     [C("redis", 0.2, 1.0, 256 * MIB, 512 * MIB, 0.050, 0.20, 182 * MIB, thr="rand")]),
    ("shop-frontend", "shop-frontend-web-7f6d5c9b8-4lqzx", "worker-0", "ReplicaSet", "shop-frontend-web-7f6d5c9b8", "Running",
     [C("web", 0.2, 1.0, 256 * MIB, 512 * MIB, 0.120, 0.35, 150 * MIB, thr="rand")]),
    ("shop-frontend", "shop-frontend-web-7f6d5c9b8-p8vfn", "worker-1", "ReplicaSet", "shop-frontend-web-7f6d5c9b8", "Running",
     [C("web", 0.2, 1.0, 256 * MIB, 512 * MIB, 0.115, 0.35, 146 * MIB, thr="rand")]),
    ("shop-frontend", "shop-frontend-web-7f6d5c9b8-t2rcs", "worker-2", "ReplicaSet", "shop-frontend-web-7f6d5c9b8", "Running",
     [C("web", 0.2, 1.0, 256 * MIB, 512 * MIB, 0.125, 0.35, 155 * MIB, thr="rand")]),
    ("shop-frontend", "shop-frontend-cart-84c7b9d6f-x5mwk", "worker-2", "ReplicaSet", "shop-frontend-cart-84c7b9d6f", "Running",
     [C("cart", 0.1, None, 128 * MIB, None, 0.300, 0.25, 240 * MIB)]),
    ("shop-frontend", "shop-frontend-search-5d9c7b8f6-kq4zn", "worker-1", "ReplicaSet", "shop-frontend-search-5d9c7b8f6", "Running",
     [C("search", 0.5, 0.6, 512 * MIB, 1 * GIB, 0.450, 0.15, 600 * MIB, thr=0.30)]),
    ("ml-serving", "model-server-7d8f9c6b5-qj2lm", "worker-2", "ReplicaSet", "model-server-7d8f9c6b5", "Running",
     [C("server", 1.0, 2.0, 1 * GIB, 2 * GIB, 0.300, 0.20, 1536 * MIB, leak=50 * MIB, thr="rand"),
      C("queue-proxy", 0.025, 0.1, 64 * MIB, 128 * MIB, 0.012, 0.20, 38 * MIB, thr="rand")]),
    ("ml-serving", "model-server-7d8f9c6b5-zx8vb", None, "ReplicaSet", "model-server-7d8f9c6b5", "Pending",
     [C("server", 1.0, 2.0, 1 * GIB, 2 * GIB, 0, 0, 0),
      C("queue-proxy", 0.025, 0.1, 64 * MIB, 128 * MIB, 0, 0, 0)]),
    ("ml-serving", "embedding-api-6b7c8d9f5-w2hsn", "worker-2", "ReplicaSet", "embedding-api-6b7c8d9f5", "Running",
     [C("api", 0.75, 1.0, 768 * MIB, 1536 * MIB, 0.920, 0.04, 700 * MIB, thr=0.55)]),
    ("ml-serving", "batch-inference-8f6d7c5b9-r4tjp", "worker-1", "ReplicaSet", "batch-inference-8f6d7c5b9", "Running",
     [C("worker", 2.0, 4.0, 2 * GIB, 4 * GIB, 0.150, 0.10, 900 * MIB, thr="rand")]),
    ("data-platform", "etl-worker-6f7c8d9b4-lz9xk", "worker-0", "ReplicaSet", "etl-worker-6f7c8d9b4", "Running",
     [C("etl", 0.1, 1.0, 512 * MIB, 1 * GIB, 0.020, 0.0, 64 * MIB, thr="rand")]),
    ("data-platform", "kafka-0", "worker-0", "StatefulSet", "kafka", "Running",
     [C("kafka", 1.0, 2.0, 2 * GIB, 4 * GIB, 0.350, 0.25, 2150 * MIB, thr="rand")]),
    ("data-platform", "kafka-1", "worker-1", "StatefulSet", "kafka", "Running",
     [C("kafka", 1.0, 2.0, 2 * GIB, 4 * GIB, 0.330, 0.25, 2100 * MIB, thr="rand")]),
    ("data-platform", "postgres-0", "worker-2", "StatefulSet", "postgres", "Running",
     [C("postgres", 1.0, 2.0, 2 * GIB, 4 * GIB, 0.260, 0.30, 1400 * MIB, thr="rand")]),
    ("data-platform", "airflow-scheduler-7c9d8b6f5-jm3xt", "worker-1", "ReplicaSet", "airflow-scheduler-7c9d8b6f5", "Running",
     [C("scheduler", 1.0, 2.0, 1 * GIB, 2 * GIB, 0.095, 0.20, 420 * MIB, thr="rand")]),
    ("data-platform", "nightly-backup-29012345-x7k2p", "worker-0", "Job", "nightly-backup-29012345", "Succeeded",
     [C("backup", 0.5, 1.0, 256 * MIB, 512 * MIB, 0, 0, 0)]),
    ("openshift-monitoring", "prometheus-k8s-0", "worker-2", "StatefulSet", "prometheus-k8s", "Running",
     [C("prometheus", 0.2, None, 1 * GIB, None, 0.250, 0.15, 2560 * MIB),
      C("config-reloader", 0.001, None, 10 * MIB, None, 0.001, 0.0, 22 * MIB)]),
    ("openshift-monitoring", "alertmanager-main-0", "worker-1", "StatefulSet", "alertmanager-main", "Running",
     [C("alertmanager", 0.004, None, 40 * MIB, None, 0.005, 0.1, 62 * MIB)]),
    ("openshift-monitoring", "kube-state-metrics-7b9c8d6f5-m4pzs", "worker-0", "ReplicaSet", "kube-state-metrics-7b9c8d6f5", "Running",
     [C("kube-state-metrics", 0.002, None, 80 * MIB, None, 0.020, 0.1, 92 * MIB)]),
]
JOB_POD_CREATED = -6 * HOUR
JOB_POD_DONE = -6 * HOUR + 20 * 60
PENDING_POD_CREATED = -2 * DAY
BURSTY = ("ml-serving", "batch-inference-8f6d7c5b9-r4tjp", "worker")
BURST = dict(period=6 * HOUR, length=600, offset=2 * HOUR, extra=1.4)  # bursts at T-4h, T-10h, ...

# deployments: (namespace, name, spec replicas, unavailable(u) function)
DEPLOYMENTS = [
    ("payments", "payments-api", 2, None),
    ("payments", "payments-worker", 1, None),
    ("shop-frontend", "shop-frontend-web", 3, None),
    ("shop-frontend", "shop-frontend-cart", 1, None),
    ("shop-frontend", "shop-frontend-search", 1, None),
    ("ml-serving", "model-server", 2, PENDING_POD_CREATED),
    ("ml-serving", "embedding-api", 1, None),
    ("ml-serving", "batch-inference", 1, None),
    ("data-platform", "etl-worker", 1, CRASH_SINCE),
    ("data-platform", "airflow-scheduler", 1, None),
    ("openshift-monitoring", "kube-state-metrics", 1, None),
]

# filesystems: node -> list of (mountpoint, device, fstype, size, avail at T, bytes/day filled, linear since (u))
FILESYSTEMS = {}
ROOT_FS = {  # avail fraction at T, fill bytes/day (negative: freeing)
    "master-0": (0.71, 0.45 * GIB), "master-1": (0.66, -0.30 * GIB), "master-2": (0.74, 0.35 * GIB),
    "worker-0": (0.58, 0.80 * GIB), "worker-1": (0.62, 0.60 * GIB), "worker-2": (0.55, 1.10 * GIB),
    "worker-3": (0.81, 0.05 * GIB),
}
for _n, (_frac, _fill) in ROOT_FS.items():
    FILESYSTEMS[_n] = [("/", "/dev/sda4", "xfs", 120 * GIB, _frac * 120 * GIB, _fill, -HISTORY),
                       ("/run", "tmpfs", "tmpfs", 8_194_535_424, 8_150_000_000, 0.0, -HISTORY)]
FILLING_FS = ("worker-1", "/var")
FILESYSTEMS["worker-1"].append(("/var", "/dev/sdb1", "xfs", 200 * GIB, 80 * GIB, 16 * GIB, -6 * DAY))
FILESYSTEMS["worker-2"].append(("/dev/shm", "shm", "tmpfs", 8_194_535_424, 2 * GIB, 1.5 * GIB, -4 * DAY))

FS_FILTER = ("tmpfs", "squashfs", "overlay")


# --------------------------------------------------------------------------- series model
class Series:
    __slots__ = ("name", "labels", "kind", "fn", "start", "tier", "key", "text")

    def __init__(self, name, labels, kind, fn, start=-HISTORY, tier="dynamic"):
        self.name, self.labels, self.kind, self.fn = name, labels, kind, fn
        self.start, self.tier = start, tier  # start: first u (relative to T) the series exists
        body = ",".join('%s="%s"' % (k, v) for k, v in labels.items())
        self.text = "%s{%s}" % (name, body) if body else name


def fmt(v):
    """Shortest round-trip decimal; Go's ParseFloat reads it back to the same float64."""
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


class Model:
    def __init__(self, seed, T):
        self.seed, self.T = seed, T
        rnd = random.Random(seed)
        self.series = []
        self.containers = []  # running containers with cAdvisor data
        self.alerts = []
        self._build(rnd)

    # -- helpers
    def add(self, *a, **kw):
        s = Series(*a, **kw)
        if s.name.startswith("kube_") and s.kind == "gauge":
            s.tier = "static"
        s.key = _key(self.seed, s.text)
        self.series.append(s)
        return s

    def _build(self, rnd):
        # ----- containers (cAdvisor)
        for ns, pod, node, okind, oname, phase, ctrs in PODS:
            if phase != "Running":
                continue
            for c in ctrs:
                c = dict(c)
                c.update(namespace=ns, pod=pod, node=node)
                a = c["amp"]
                c["base"] = c["cpu_T"] / (1 + a)
                c["age"] = rnd.uniform(9, 30) * DAY  # container started before the window
                if c["throttle"] == "rand":
                    c["throttle"] = round(rnd.uniform(0.0, 0.05), 4)
                c["act"] = 0.95 if (c["cpu_lim"] and c["cpu_T"] / c["cpu_lim"] > 0.4) else round(rnd.uniform(0.4, 0.8), 3)
                c["bursty"] = (ns, pod, c["name"]) == BURSTY
                c["mem_noise"] = 0.0015 if c["leak"] else 0.015
                c["memkey"] = _key(self.seed, "mem|%s|%s|%s" % (ns, pod, c["name"]))
                self.containers.append(c)
        self.ctr_by_pod = {}
        for c in self.containers:
            self.ctr_by_pod.setdefault((c["namespace"], c["pod"]), []).append(c)

        for c in self.containers:
            lab = dict(container=c["name"], job="kubelet", namespace=c["namespace"], node=c["node"], pod=c["pod"])
            cpu0 = self.cpu_int(c, -c["age"])
            self.add("container_cpu_usage_seconds_total", lab, "counter",
                     (lambda u, c=c, cpu0=cpu0: round(self.cpu_int(c, u) - cpu0, 3)), tier="fine")
            self.add("container_memory_working_set_bytes", lab, "gauge", (lambda u, c=c: float(round(self.mem(c, u)))))
            if c["cpu_lim"]:
                p_rate = 10.0 * c["act"]
                self.add("container_cpu_cfs_periods_total", lab, "counter",
                         (lambda u, c=c, r=p_rate: float(math.floor(r * (u + c["age"])))))
                self.add("container_cpu_cfs_throttled_periods_total", lab, "counter",
                         (lambda u, c=c, r=p_rate: float(math.floor(c["throttle"] * math.floor(r * (u + c["age"]))))))
        # pod-level cgroup series (container=""), as cAdvisor exposes them
        for (ns, pod), ctrs in self.ctr_by_pod.items():
            lab = dict(container="", job="kubelet", namespace=ns, node=ctrs[0]["node"], pod=pod)
            starts = [(c, self.cpu_int(c, -c["age"])) for c in ctrs]
            self.add("container_cpu_usage_seconds_total", lab, "counter",
                     (lambda u, st=starts: round(sum(self.cpu_int(c, u) - c0 for c, c0 in st) + 0.002 * (u + 40 * DAY), 3)))
            self.add("container_memory_working_set_bytes", lab, "gauge",
                     (lambda u, ctrs=ctrs: float(round(sum(self.mem(c, u) for c in ctrs) + 2 * MIB))))

        # ----- nodes (node-exporter)
        self.node_info = {}
        for name, role, cpus, memtotal, util_T, mem_T in NODES:
            ctrs = [c for c in self.containers if c["node"] == name]
            pod_cpu_T = sum(self.cpu_rate(c, 0) for c in ctrs)
            amp = 0.15 if role == "master" else 0.25
            ov = (util_T * cpus - pod_cpu_T) / (1 + amp)
            assert ov > 0, (name, ov)
            n = dict(name=name, cpus=cpus, ctrs=ctrs, ov=ov, amp=amp, boot=rnd.uniform(20, 40) * DAY,
                     memtotal=memtotal)
            pod_mem_T = sum(c["mem_T"] for c in ctrs)
            n["mem_ov"] = mem_T * memtotal - pod_mem_T
            assert n["mem_ov"] > 0, name
            self.node_info[name] = n
            busy0 = self.node_busy_int(n, -n["boot"])
            for ci, share in enumerate(CPU_SHARES[:cpus]):
                lab = dict(cpu=str(ci), instance=name, job="node-exporter")
                for mode, frac in (("idle", None), ("system", 0.28), ("user", 0.72)):
                    if frac is None:
                        fn = (lambda u, n=n, sh=share, b0=busy0: round((u + n["boot"]) - sh * (self.node_busy_int(n, u) - b0), 3))
                    else:
                        fn = (lambda u, n=n, sh=share, b0=busy0, f=frac: round(f * sh * (self.node_busy_int(n, u) - b0), 3))
                    self.add("node_cpu_seconds_total", dict(lab, mode=mode), "counter", fn)
            lab = dict(instance=name, job="node-exporter")
            self.add("node_memory_MemTotal_bytes", lab, "gauge", (lambda u, m=memtotal: float(m)))
            s = self.add("node_memory_MemAvailable_bytes", lab, "gauge", None)
            s.fn = (lambda u, n=n, k=s.key: float(round(n["memtotal"] - self.node_mem_used(n, u, k))))
            for mp, dev, fstype, size, avail_T, fill, since in FILESYSTEMS[name]:
                flab = dict(device=dev, fstype=fstype, instance=name, job="node-exporter", mountpoint=mp)
                self.add("node_filesystem_size_bytes", flab, "gauge", (lambda u, sz=size: float(sz)))
                s = self.add("node_filesystem_avail_bytes", flab, "gauge", None)
                s.fn = (lambda u, a=avail_T, f=fill, since=since, sz=size, k=s.key:
                        float(4096 * round(min(a - f * max(u, since) / DAY, sz * 0.999) / 4096
                                           + 400 * noise(k, u))))

        # ----- kube-state-metrics
        ksm = "kube-state-metrics"
        const = lambda v: (lambda u: v)
        for name, role, cpus, memtotal, _, _ in NODES:
            for res, unit, val in (("cpu", "core", cpus - 0.5), ("memory", "byte", memtotal - 1 * GIB),
                                   ("pods", "integer", 250)):
                self.add("kube_node_status_allocatable", dict(job=ksm, node=name, resource=res, unit=unit), "gauge", const(float(val)))
            for status in ("true", "false", "unknown"):
                if name == NOT_READY_NODE:
                    fn = (lambda u, st=status: 1.0 if st == ("false" if u >= NOT_READY_SINCE else "true") else 0.0)
                else:
                    fn = const(1.0 if status == "true" else 0.0)
                self.add("kube_node_status_condition", dict(condition="Ready", job=ksm, node=name, status=status), "gauge", fn)
            self.add("kube_node_spec_unschedulable", dict(job=ksm, node=name), "gauge",
                     const(1.0 if name == NOT_READY_NODE else 0.0))
        for ns, pod, node, okind, oname, phase, ctrs in PODS:
            start = -HISTORY
            if phase == "Succeeded":
                start = JOB_POD_CREATED
            elif phase == "Pending":
                start = PENDING_POD_CREATED
            plab = dict(job=ksm, namespace=ns, pod=pod)
            self.add("kube_pod_info", dict(created_by_kind=okind, created_by_name=oname, job=ksm, namespace=ns,
                                           node=node or "", pod=pod), "gauge", const(1.0), start=start)
            for ph in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
                if phase == "Succeeded":
                    fn = (lambda u, ph=ph: 1.0 if ph == ("Running" if u < JOB_POD_DONE else "Succeeded") else 0.0)
                else:
                    fn = const(1.0 if ph == phase else 0.0)
                self.add("kube_pod_status_phase", dict(plab, phase=ph), "gauge", fn, start=start)
            for c in ctrs:
                clab = dict(container=c["name"], job=ksm, namespace=ns, node=node or "", pod=pod)
                for res, unit, req, lim in (("cpu", "core", c["cpu_req"], c["cpu_lim"]),
                                            ("memory", "byte", c["mem_req"], c["mem_lim"])):
                    self.add("kube_pod_container_resource_requests", dict(clab, resource=res, unit=unit), "gauge",
                             const(float(req)), start=start)
                    if lim:
                        self.add("kube_pod_container_resource_limits", dict(clab, resource=res, unit=unit), "gauge",
                                 const(float(lim)), start=start)
                if phase == "Pending":
                    continue
                rlab = dict(container=c["name"], job=ksm, namespace=ns, pod=pod)
                if (ns, c["name"]) == ("data-platform", "etl"):
                    fn = (lambda u: 2.0 if u < CRASH_SINCE else 3.0 + math.floor((u - CRASH_SINCE) / 300))
                    self.add("kube_pod_container_status_waiting_reason", dict(rlab, reason="CrashLoopBackOff"), "gauge",
                             const(1.0), start=CRASH_SINCE)
                elif pod == "kafka-1":
                    fn = (lambda u: 0.0 if u < -4 * DAY else 1.0)
                else:
                    fn = const(0.0)
                self.add("kube_pod_container_status_restarts_total", rlab, "counter", fn, start=start)
        for ns, dep, spec, bad_since in DEPLOYMENTS:
            dlab = dict(deployment=dep, job=ksm, namespace=ns)
            unavail = (lambda u, b=bad_since: 1.0 if (b is not None and u >= b) else 0.0)
            self.add("kube_deployment_spec_replicas", dlab, "gauge", const(float(spec)))
            self.add("kube_deployment_status_replicas_available", dlab, "gauge",
                     (lambda u, s=spec, f=unavail: s - f(u)))
            self.add("kube_deployment_status_replicas_unavailable", dlab, "gauge", unavail)

        # ----- alerts (ALERTS / ALERTS_FOR_STATE history, so "for" state is restored at start)
        self._build_alerts()

    # container CPU: rate = base*(1 + amp*cos(w u)) (+ bursts); closed-form integral
    def cpu_rate(self, c, u):
        r = c["base"] * (1 + c["amp"] * math.cos(W_DAY * u))
        if c["bursty"]:
            ph = (u - BURST["offset"]) % BURST["period"]
            if ph < BURST["length"]:
                r += BURST["extra"]
        return r

    def cpu_int(self, c, u):
        v = c["base"] * (u + c["amp"] * math.sin(W_DAY * u) / W_DAY)
        if c["bursty"]:
            k = math.floor((u - BURST["offset"]) / BURST["period"])
            ph = (u - BURST["offset"]) - k * BURST["period"]
            v += BURST["extra"] * (k * BURST["length"] + min(ph, BURST["length"]))
        return v

    def mem(self, c, u):
        return c["mem_T"] + c["leak"] * u / DAY + c["mem_T"] * c["mem_noise"] * noise(c["memkey"], u)

    def node_busy_int(self, n, u):
        v = n["ov"] * (u + n["amp"] * math.sin(W_DAY * u) / W_DAY)
        for c in n["ctrs"]:
            v += self.cpu_int(c, u)
        return v

    def node_busy_rate(self, n, u):
        return n["ov"] * (1 + n["amp"] * math.cos(W_DAY * u)) + sum(self.cpu_rate(c, u) for c in n["ctrs"])

    def node_mem_used(self, n, u, key):
        used = n["mem_ov"] + sum(self.mem(c, u) for c in n["ctrs"])
        if n["name"] == "worker-2":  # ramp from 72% to 85% (NodeMemoryHighUtilization pending)
            lo, hi = MEM_HIGH_RAMP
            f = min(1.0, max(0.0, (u - lo) / (hi - lo)))
            used -= (1 - f) * 0.13 * n["memtotal"]
        return used + 0.002 * n["memtotal"] * noise(key, u)

    def _build_alerts(self):
        """Alert instances of rules.yml that hold at T, with the labels Prometheus gives them."""
        A = []

        def alert(name, labels, active_since, hold, state="firing"):
            A.append(dict(alertname=name, labels=dict(labels, alertname=name), activeAt_u=active_since, hold=hold,
                          state=state))

        alert("Watchdog", dict(namespace="openshift-monitoring", severity="none"), -HISTORY, 0)
        alert("KubePodCrashLooping", dict(container="etl", job="kube-state-metrics", namespace="data-platform",
                                           pod="etl-worker-6f7c8d9b4-lz9xk", severity="warning"), CRASH_SINCE, 15 * 60)
        for ns, dep, spec, bad_since in DEPLOYMENTS:
            if bad_since is not None:
                alert("KubeDeploymentReplicasMismatch", dict(deployment=dep, job="kube-state-metrics", namespace=ns,
                                                              severity="warning"), bad_since, 15 * 60)
        for c in self.containers:
            if c["throttle"] is not None and c["throttle"] > 0.25:
                base = dict(container=c["name"], namespace=c["namespace"], pod=c["pod"])
                alert("CPUThrottlingHigh", dict(base, severity="warning"), -HISTORY + 600, 5 * 60)
                if c["throttle"] > 0.75:
                    alert("CPUThrottlingHigh", dict(base, severity="critical"), -HISTORY + 600, 5 * 60)
        alert("KubeNodeNotReady", dict(condition="Ready", job="kube-state-metrics", namespace="openshift-monitoring",
                                       node=NOT_READY_NODE, severity="warning", status="true"), NOT_READY_SINCE, 15 * 60)
        n, mp = FILLING_FS
        dev, fstype = [(d, f) for m, d, f, *_ in FILESYSTEMS[n] if m == mp][0]
        alert("NodeFilesystemSpaceFillingUp", dict(device=dev, fstype=fstype, instance=n, job="node-exporter",
                                                   mountpoint=mp, namespace="openshift-monitoring", severity="warning"),
              -30 * HOUR, HOUR)
        alert("NodeMemoryHighUtilization", dict(instance="worker-2", job="node-exporter",
                                                namespace="openshift-monitoring", severity="warning"),
              -510, HOUR, state="pending")
        self.alerts = A
        for a in A:
            lab = dict(sorted(a["labels"].items()))
            fire_u = a["activeAt_u"] + a["hold"]
            if a["hold"]:
                self.add("ALERTS", dict(lab, alertstate="pending"), "gauge",
                         (lambda u, f=fire_u: 1.0 if u < f else None), start=a["activeAt_u"])
            if a["state"] == "firing":
                self.add("ALERTS", dict(lab, alertstate="firing"), "gauge", (lambda u: 1.0), start=fire_u)
            act = float(self.T + a["activeAt_u"])
            self.add("ALERTS_FOR_STATE", lab, "gauge", (lambda u, v=act: v), start=a["activeAt_u"])

    # -- sampling
    def timestamps(self, s):
        """Absolute sample timestamps (seconds) of a series in the backfill (see TIERS)."""
        T = self.T
        start = T + max(s.start, -HISTORY)
        regions = ((T - HISTORY, T - MID_SPAN), (T - MID_SPAN + 1, T - RECENT_SPAN), (T - RECENT_SPAN + 1, T))
        ts = []
        for (lo, hi), step in zip(regions, TIERS[s.tier]):
            t = -(-max(lo, start) // step) * step
            while t <= hi:
                ts.append(t)
                t += step
        if ts[-1] != T:
            ts.append(T)  # every series has a sample at T
        return ts

    def samples(self, s):
        out_t, out_v = [], []
        T, fn = self.T, s.fn
        for t in self.timestamps(s):
            v = fn(t - T)
            if v is None:
                continue
            out_t.append(t)
            out_v.append(float(fmt(v)))
        return out_t, out_v


# --------------------------------------------------------------------------- PromQL 2.x re-implementation
def sel_range(ts, vs, mint, maxt):
    """Samples with mint <= t <= maxt (Prometheus 2.x range selection, both ends closed)."""
    i = bisect.bisect_left(ts, mint)
    j = bisect.bisect_right(ts, maxt)
    return ts[i:j], vs[i:j]


def promql_rate(ts, vs, at, rng, is_rate=True, is_counter=True):
    """extrapolatedRate() of promql/functions.go (2.42): rate/increase over [rng] at time `at`."""
    t, v = sel_range(ts, vs, at - rng, at)
    if len(t) < 2:
        return None
    result = v[-1] - v[0]
    if is_counter:
        prev = v[0]
        for x in v[1:]:
            if x < prev:
                result += prev
            prev = x
    d_start = t[0] - (at - rng)
    d_end = at - t[-1]
    sampled = t[-1] - t[0]
    avg = sampled / (len(t) - 1)
    if is_counter and result > 0 and v[0] >= 0:
        d_zero = sampled * (v[0] / result)
        if d_zero < d_start:
            d_start = d_zero
    thr = avg * 1.1
    ext = sampled
    ext += d_start if d_start < thr else avg / 2
    ext += d_end if d_end < thr else avg / 2
    result = result * (ext / sampled)
    if is_rate:
        result = result / rng
    return result


def promql_linreg(ts, vs, at, rng):
    """linearRegression() as used by deriv()/predict_linear(): (slope per second, intercept at `at`)."""
    t, v = sel_range(ts, vs, at - rng, at)
    if len(t) < 2:
        return None
    if all(x == v[0] for x in v):
        return 0.0, v[0]
    n = float(len(t))
    xs = [(x - at) for x in t]
    sx, sy = math.fsum(xs), math.fsum(v)
    sxy = math.fsum(x * y for x, y in zip(xs, v))
    sx2 = math.fsum(x * x for x in xs)
    cov = sxy - sx * sy / n
    var = sx2 - sx * sx / n
    slope = cov / var
    return slope, sy / n - slope * sx / n


def promql_instant(ts, vs, at):
    """Instant vector selector with the default 5m lookback."""
    i = bisect.bisect_right(ts, at) - 1
    if i < 0 or ts[i] < at - LOOKBACK:
        return None
    return vs[i]


def promql_quantile(q, values):
    values = sorted(values)
    n = len(values)
    rank = q * (n - 1)
    lo = max(0, math.floor(rank))
    hi = min(n - 1, lo + 1)
    w = rank - math.floor(rank)
    return values[lo] * (1 - w) + values[hi] * w


def subquery_steps(at, rng, step):
    """Evaluation timestamps of a subquery [rng:step] at time `at` (aligned to multiples of step)."""
    start = step * ((at - rng) // step)
    if start < at - rng:
        start += step
    return list(range(start, at + 1, step))


# --------------------------------------------------------------------------- expected.json
def compute_expected(model, data):
    T = model.T
    by_name = {}
    for s in model.series:
        by_name.setdefault(s.name, []).append(s)

    def labels_without(s, drop=()):
        return {k: v for k, v in s.labels.items() if k not in drop}

    out = dict(reference_time=T, eval_time=T, seed=model.seed, queries={})
    Q = out["queries"]

    # 1. throttling ratio per pod
    num, den = {}, {}
    for nm, acc in (("container_cpu_cfs_throttled_periods_total", num), ("container_cpu_cfs_periods_total", den)):
        for s in by_name[nm]:
            r = promql_rate(*data[id(s)], T, 300)
            if r is None:
                continue
            k = (s.labels["namespace"], s.labels["pod"])
            acc[k] = acc.get(k, 0.0) + r
    vals = []
    for k in sorted(den):
        if k in num and den[k] != 0:
            vals.append(dict(labels=dict(namespace=k[0], pod=k[1]), value=num[k] / den[k], tolerance=dict(abs=0.01)))
    Q["throttle_ratio"] = dict(
        promql='sum by (namespace, pod) (rate(container_cpu_cfs_throttled_periods_total[5m])) / '
               'sum by (namespace, pod) (rate(container_cpu_cfs_periods_total[5m]))',
        formula="per series: extrapolatedRate over the closed window [t-5m, t]; sum by (namespace,pod); divide",
        values=vals)

    # 2. node CPU utilisation
    vals = []
    idle = {}
    for s in by_name["node_cpu_seconds_total"]:
        if s.labels["mode"] != "idle":
            continue
        r = promql_rate(*data[id(s)], T, 300)
        idle.setdefault(s.labels["instance"], []).append(r)
    for inst in sorted(idle):
        v = 1 - sum(idle[inst]) / len(idle[inst])
        vals.append(dict(labels=dict(instance=inst), value=v, tolerance=dict(abs=0.01)))
    Q["node_cpu_utilisation"] = dict(
        promql='1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
        formula="1 - mean over CPUs of extrapolatedRate(idle counter, [t-5m, t])", values=vals)

    # 3. node memory utilisation
    vals = []
    tot = {s.labels["instance"]: promql_instant(*data[id(s)], T) for s in by_name["node_memory_MemTotal_bytes"]}
    for s in by_name["node_memory_MemAvailable_bytes"]:
        inst = s.labels["instance"]
        v = 1 - promql_instant(*data[id(s)], T) / tot[inst]
        vals.append(dict(labels=dict(instance=inst), value=v, tolerance=dict(abs=0.01)))
    vals.sort(key=lambda x: x["labels"]["instance"])
    Q["node_memory_utilisation"] = dict(
        promql="1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
        formula="1 - last sample within 5m lookback (avail) / (total)", values=vals)

    # 4. days until full (linear slope over 6h)
    vals = []
    for s in by_name["node_filesystem_avail_bytes"]:
        if s.labels["fstype"] in FS_FILTER:
            continue
        ts, vs = data[id(s)]
        slope, _ = promql_linreg(ts, vs, T, 6 * HOUR)
        avail = promql_instant(ts, vs, T)
        days = avail / -slope / DAY if slope != 0 else None
        filling = (s.labels["instance"], s.labels["mountpoint"]) == FILLING_FS
        tol = dict(rel=0.03) if filling else dict(rel=0.5)
        vals.append(dict(labels=labels_without(s), value=days, tolerance=tol,
                         note="the filling one" if filling else ("freeing: negative" if days < 0 else "slow fill")))
    vals.sort(key=lambda x: (x["labels"]["instance"], x["labels"]["mountpoint"]))
    Q["filesystem_days_to_full"] = dict(
        promql='node_filesystem_avail_bytes{fstype!~"tmpfs|squashfs|overlay"} / '
               '-deriv(node_filesystem_avail_bytes{fstype!~"tmpfs|squashfs|overlay"}[6h]) / 86400',
        formula="last sample / -(least-squares slope over samples in [t-6h, t]) / 86400; tmpfs rows are filtered out",
        values=vals)

    # 5. memory growth bytes/day
    vals = []
    for s in by_name["container_memory_working_set_bytes"]:
        if s.labels["container"] in ("", "POD"):
            continue
        slope, _ = promql_linreg(*data[id(s)], T, DAY)
        leaking = any(c["leak"] and c["pod"] == s.labels["pod"] and c["name"] == s.labels["container"]
                      for c in model.containers)
        vals.append(dict(labels=labels_without(s), value=slope * DAY,
                         tolerance=dict(rel=0.02) if leaking else dict(abs=8 * MIB),
                         note="leaking (+50MiB/day)" if leaking else "flat with noise"))
    vals.sort(key=lambda x: (x["labels"]["namespace"], x["labels"]["pod"], x["labels"]["container"]))
    Q["memory_growth_bytes_per_day"] = dict(
        promql='deriv(container_memory_working_set_bytes{container!="",container!="POD"}[24h]) * 86400',
        formula="least-squares slope over samples in [t-24h, t] * 86400", values=vals)

    # 6. P95 CPU over 7d (subquery)
    steps = subquery_steps(T, 7 * DAY, 300)
    vals = []
    for s in by_name["container_cpu_usage_seconds_total"]:
        if s.labels["container"] == "":
            continue
        ts, vs = data[id(s)]
        pts = [r for r in (promql_rate(ts, vs, st, 300) for st in steps) if r is not None]
        p95 = promql_quantile(0.95, pts)
        vals.append(dict(labels=labels_without(s), value=p95, tolerance=dict(rel=0.02), points=len(pts)))
    vals.sort(key=lambda x: (x["labels"]["namespace"], x["labels"]["pod"], x["labels"]["container"]))
    Q["cpu_p95_7d"] = dict(
        promql='quantile_over_time(0.95, rate(container_cpu_usage_seconds_total{container!=""}[5m])[7d:5m])',
        formula="rate(...[5m]) at every multiple of 300s in [t-7d, t]; linear-interpolated 0.95 quantile "
                "(rank = 0.95*(n-1))", values=vals)

    # recording rules (values exist only from Prometheus start; computed here at T for reference)
    ns_cpu = {}
    for s in by_name["container_cpu_usage_seconds_total"]:
        if s.labels["container"] in ("", "POD"):
            continue
        r = promql_rate(*data[id(s)], T, 300)
        ns_cpu[s.labels["namespace"]] = ns_cpu.get(s.labels["namespace"], 0.0) + r
    Q["record_namespace_cpu"] = dict(
        promql="namespace:container_cpu_usage_seconds_total:sum_rate",
        formula="recording rule: sum by (namespace) (rate(container_cpu_usage_seconds_total{job=\"kubelet\", "
                "container!=\"\", container!=\"POD\"}[5m])); evaluated from server start only",
        values=[dict(labels=dict(namespace=k), value=v, tolerance=dict(rel=0.03)) for k, v in sorted(ns_cpu.items())])

    # ----- alert conditions re-evaluated at T from the samples (self-check of the scenario)
    checks = []
    for s in by_name["container_cpu_cfs_periods_total"]:
        thr = [x for x in by_name["container_cpu_cfs_throttled_periods_total"] if x.labels == s.labels][0]
        ratio = promql_rate(*data[id(thr)], T, 300, is_rate=False) / promql_rate(*data[id(s)], T, 300, is_rate=False)
        base = dict(container=s.labels["container"], namespace=s.labels["namespace"], pod=s.labels["pod"])
        if ratio > 0.25:
            checks.append(dict(base, alertname="CPUThrottlingHigh", severity="warning"))
        if ratio > 0.75:
            checks.append(dict(base, alertname="CPUThrottlingHigh", severity="critical"))
    for s in by_name["kube_pod_container_status_restarts_total"]:
        inc = promql_rate(*data[id(s)], T, 900, is_rate=False)
        if inc is not None and inc > 0:
            checks.append(dict(s.labels, alertname="KubePodCrashLooping", severity="warning"))
    for s in by_name["kube_deployment_status_replicas_unavailable"]:
        if promql_instant(*data[id(s)], T) > 0:
            checks.append(dict(s.labels, alertname="KubeDeploymentReplicasMismatch", severity="warning"))
    for s in by_name["kube_node_status_condition"]:
        if s.labels["status"] == "true" and promql_instant(*data[id(s)], T) == 0:
            checks.append(dict(s.labels, alertname="KubeNodeNotReady", severity="warning", namespace="openshift-monitoring"))
    sizes = {tuple(sorted(s.labels.items())): promql_instant(*data[id(s)], T) for s in by_name["node_filesystem_size_bytes"]}
    for s in by_name["node_filesystem_avail_bytes"]:
        if s.labels["fstype"] in FS_FILTER:
            continue
        ts, vs = data[id(s)]
        slope, icpt = promql_linreg(ts, vs, T, 6 * HOUR)
        if promql_instant(ts, vs, T) / sizes[tuple(sorted(s.labels.items()))] < 0.5 and slope * 7 * DAY + icpt < 0:
            checks.append(dict(s.labels, alertname="NodeFilesystemSpaceFillingUp", severity="warning",
                               namespace="openshift-monitoring"))
    checks.append(dict(alertname="Watchdog", severity="none", namespace="openshift-monitoring"))
    pend = []
    for row in Q["node_memory_utilisation"]["values"]:
        if row["value"] > 0.8:
            pend.append(dict(row["labels"], job="node-exporter", alertname="NodeMemoryHighUtilization",
                             severity="warning", namespace="openshift-monitoring"))
    want_f = sorted(json.dumps(a["labels"], sort_keys=True) for a in model.alerts if a["state"] == "firing")
    want_p = sorted(json.dumps(a["labels"], sort_keys=True) for a in model.alerts if a["state"] == "pending")
    got_f = sorted(json.dumps(c, sort_keys=True) for c in checks)
    got_p = sorted(json.dumps(c, sort_keys=True) for c in pend)
    if want_f != got_f or want_p != got_p:
        raise SystemExit("generate.py: scenario alerts do not match the data:\n want %s\n got  %s\n want pending %s\n"
                         " got pending %s" % (want_f, got_f, want_p, got_p))

    out["alerts"] = dict(
        note="labels exactly as Prometheus reports them in /api/v1/alerts and ALERTS{} (plus alertstate there); "
             "alerts with for > 0 get their 'for' state restored from the backfilled ALERTS_FOR_STATE, so their "
             "activeAt (unix s) is exact; Watchdog (no for) is active from Prometheus start",
        firing=[dict(labels=dict(sorted(a["labels"].items())),
                     activeAt=(T + a["activeAt_u"]) if a["hold"] else None, for_seconds=a["hold"])
                for a in sorted(model.alerts, key=lambda a: json.dumps(a["labels"], sort_keys=True))
                if a["state"] == "firing"],
        pending=[dict(labels=dict(sorted(a["labels"].items())), for_seconds=a["hold"],
                      note="pending until about T+%d min (then firing)" % ((a["activeAt_u"] + a["hold"]) // 60))
                 for a in model.alerts if a["state"] == "pending"],
        inactive_rules=["NodeFilesystemAlmostOutOfSpace"],
        recording_rules=["instance:node_cpu_utilisation:rate5m", "namespace:container_cpu_usage_seconds_total:sum_rate"])

    # ----- scenario facts for the tests (requests, classification)
    p95 = {(v["labels"]["namespace"], v["labels"]["pod"], v["labels"]["container"]): v["value"]
           for v in Q["cpu_p95_7d"]["values"]}
    pods = []
    for ns, pod, node, okind, oname, phase, ctrs in PODS:
        cl = []
        for c in ctrs:
            p = p95.get((ns, pod, c["name"]))
            verdict = None
            if p is not None:
                if c["cpu_req"] >= 0.5 and p < 0.2 * c["cpu_req"]:
                    verdict = "over-provisioned"
                elif p > 1.5 * c["cpu_req"] and p >= 0.1:
                    verdict = "under-provisioned"
            mc = [x for x in model.containers if x["pod"] == pod and x["name"] == c["name"]]
            cl.append(dict(container=c["name"], cpu_request=c["cpu_req"], cpu_limit=c["cpu_lim"],
                           memory_request=c["mem_req"], memory_limit=c["mem_lim"], cpu_p95_7d=p,
                           cpu_rightsizing=verdict, throttle_ratio=(mc[0]["throttle"] if mc else None),
                           memory_leak_bytes_per_day=c["leak"] or None))
        pods.append(dict(namespace=ns, pod=pod, node=node, phase=phase, owner=dict(kind=okind, name=oname),
                         containers=cl))
    out["scenario"] = dict(
        rightsizing_rule="over-provisioned: cpu request >= 0.5 core and P95 (7d) < 20% of it; "
                         "under-provisioned: P95 > 1.5 x request and P95 >= 0.1 core",
        nodes=[dict(name=n[0], role=n[1], cpus=n[2], mem_total=n[3], ready=(n[0] != NOT_READY_NODE),
                    unschedulable=(n[0] == NOT_READY_NODE)) for n in NODES],
        pods=pods,
        filling_filesystem=dict(instance=FILLING_FS[0], mountpoint=FILLING_FS[1]),
        crashlooping=dict(namespace="data-platform", pod="etl-worker-6f7c8d9b4-lz9xk", container="etl"),
        leaking=dict(namespace="ml-serving", pod="model-server-7d8f9c6b5-qj2lm", container="server",
                     bytes_per_day=50 * MIB))
    return out


# --------------------------------------------------------------------------- gen
def family(name, kind):
    if kind == "counter" and name.endswith("_total"):
        return name[:-6]
    return name


def cmd_gen(args):
    t0 = time.time()
    model = Model(args.seed, args.end)
    data = {}
    with open(args.out, "w") as f:
        w = f.write
        groups = {}
        for s in model.series:
            groups.setdefault(s.name, []).append(s)
        n = 0
        for name, ss in groups.items():
            kind = ss[0].kind
            w("# TYPE %s %s\n" % (family(name, kind), kind))  # OpenMetrics: counter family without _total
            for s in ss:
                ts, vs = model.samples(s)
                data[id(s)] = (ts, vs)
                text = s.text
                w("".join("%s %s %d\n" % (text, fmt(v), t) for t, v in zip(ts, vs)))
                n += len(ts)
        w("# EOF\n")
    exp = compute_expected(model, data)
    exp["samples"] = n
    exp["series"] = len(model.series)
    with open(args.expected, "w") as f:
        json.dump(exp, f, indent=1, sort_keys=False)
        f.write("\n")
    print("generate.py: %d series, %d samples, %.1f MB, T=%d, %.1fs" % (
        len(model.series), n, os.path.getsize(args.out) / 1e6, args.end, time.time() - t0), file=sys.stderr)


# --------------------------------------------------------------------------- serve
def exposition(model, now=None, points=()):
    """Text exposition of every series.

    points: sample times (unix s) emitted with explicit timestamps (what Prometheus gets);
    now: one sample per series without timestamp (for humans / curl)."""
    lines = []
    seen = set()
    for s in model.series:
        if s.name.startswith("ALERTS"):
            continue
        if s.name not in seen:
            seen.add(s.name)
            lines.append("# TYPE %s %s" % (s.name, s.kind))
        for t in points:
            u = t - model.T
            if u >= s.start and (v := s.fn(u)) is not None:
                lines.append("%s %s %d" % (s.text, fmt(v), t * 1000))
        if now is not None:
            u = now - model.T
            if u >= s.start and (v := s.fn(u)) is not None:
                lines.append("%s %s" % (s.text, fmt(v)))
    return "\n".join(lines) + "\n"


def cmd_serve(args):
    """Live continuation of the backfill.

    Prometheus (recognised by its User-Agent) gets the model sampled on the backfill's 30 s grid
    with explicit timestamps: every grid point after the last one it was given (on its first
    scrape: all points since T), or the latest one again (an identical duplicate, ignored). So
    the stored data continue the backfill without a hole and at the same spacing, whatever the
    scrape interval (start.sh polls every 2 s, so the newest sample is at most ~32 s old).
    Nothing is handed out before T+30 s (T itself is in the blocks).
    Why it matters: rate() extrapolates a [5m] window to its ends only if the first/last samples
    are within 1.1 x the window's average spacing of them, so a hole after T, or live samples
    denser than the 30 s backfill, make rate() windows read 5-10 % low."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    model = Model(args.seed, args.end)
    state = dict(last=model.T, lock=threading.Lock())

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/metrics"):
                now = time.time()
                if self.headers.get("User-Agent", "").startswith("Prometheus/"):
                    latest = model.T + RECENT_STEP * math.floor((now - model.T) / RECENT_STEP)
                    with state["lock"]:
                        first = state["last"] == model.T
                        points = list(range(state["last"] + RECENT_STEP, latest + 1, RECENT_STEP))
                        if not points and latest > model.T:
                            points = [latest]  # identical duplicate: Prometheus ignores it
                        state["last"] = max(state["last"], latest)
                    if first and points:
                        print("generate.py serve: first samples handed out at T+%.1fs: %d per series"
                              % (now - model.T, len(points)), file=sys.stderr)
                    body = exposition(model, points=points).encode()
                else:
                    body = exposition(model, now=now).encode()
                ctype = "text/plain; version=0.0.4; charset=utf-8"
            elif self.path.startswith("/-/healthy"):
                body, ctype = b"OK\n", "text/plain"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer((args.bind, args.port), H)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(tmp, args.port_file)
    print("generate.py serve: listening on %s:%d (T=%d)" % (args.bind, srv.server_address[1], args.end), file=sys.stderr)
    if args.watch_dir:
        def watch():
            pidfile = os.path.join(args.watch_dir, "prometheus.pid")
            while True:
                time.sleep(1)
                if not os.path.isdir(args.watch_dir):
                    reason = "%s removed" % args.watch_dir
                else:
                    try:
                        with open(pidfile) as f:
                            pid = int(f.read().strip() or 0)
                    except (OSError, ValueError):
                        continue
                    try:
                        with open("/proc/%d/stat" % pid) as f:
                            if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                                continue
                    except OSError:
                        pass
                    reason = "prometheus pid %d gone" % pid
                print("generate.py serve: %s, exiting" % reason, file=sys.stderr)
                os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    now_min = int(time.time()) // 60 * 60
    g = sub.add_parser("gen", help="write the OpenMetrics backfill and expected.json")
    g.add_argument("--end", type=int, default=now_min, help="reference time T, unix seconds (default: now rounded "
                   "down to the minute); must be a multiple of 30")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--out", default="data.om")
    g.add_argument("--expected", default="expected.json")
    s = sub.add_parser("serve", help="serve the same series live (continuation after T)")
    s.add_argument("--end", type=int, required=True)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--bind", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--port-file")
    s.add_argument("--watch-dir", help="exit when DIR is removed or the pid in DIR/prometheus.pid is gone")
    args = ap.parse_args()
    if args.end % RECENT_STEP:
        ap.error("--end must be a multiple of %d" % RECENT_STEP)
    {"gen": cmd_gen, "serve": cmd_serve}[args.cmd](args)


if __name__ == "__main__":
    main()
