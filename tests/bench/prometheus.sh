#!/usr/bin/env bash
# Benchmark: cluster-health-mcp's Prometheus tools (release build) vs prometheus-mcp-server (PyPI,
# pab1it0) on the same real Prometheus (tests/prometheus/start.sh: 8 days of synthetic OpenShift
# metrics). See tests/bench/README.md. Loopback only; bounded (N calls per question); ~1-2 min.
#
#   tests/bench/prometheus.sh                # N=30, range step 2m
#   N=10 STEP=5m tests/bench/prometheus.sh
#   CHM_BENCH_BIN=target/release/cluster-health-mcp KEEP=1 tests/bench/prometheus.sh  # no cargo build; keep logs
set -euo pipefail
die() { echo "bench: ERROR: $*" >&2; exit 1; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

N="${N:-30}" STEP="${STEP:-2m}" ROW_BUDGET="${ROW_BUDGET:-30}"
PEER_PKG="prometheus-mcp-server" PEER_VERSION="${PEER_VERSION:-1.6.2}"
DEPS="$root/.deps"
PY="$DEPS/bin/python"
[[ -x "$PY" ]] || die "run scripts/test-deps.sh first (needs .deps/bin/python with the MCP SDK)"
"$PY" -c 'import mcp, httpx' || die ".deps python lacks the MCP SDK; run scripts/test-deps.sh"
command -v prometheus >/dev/null || die "no prometheus binary; run scripts/test-deps.sh"

# ---- peer: its own venv (it pulls fastmcp and another mcp SDK; the test venv stays untouched)
PEER_VENV="$DEPS/bench-venv"
PEER="$PEER_VENV/bin/prometheus-mcp-server"
peer_version() { "$PEER_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("prometheus_mcp_server"))' 2>/dev/null; }
if [[ ! -x "$PEER" ]] || [[ "$(peer_version)" != "$PEER_VERSION" ]]; then
  echo "bench: installing $PEER_PKG==$PEER_VERSION into $PEER_VENV" >&2
  [[ -x "$PEER_VENV/bin/python" ]] || python3 -m venv "$PEER_VENV" || die "python3 -m venv $PEER_VENV failed"
  "$PEER_VENV/bin/python" -m pip install -q --disable-pip-version-check "$PEER_PKG==$PEER_VERSION" >&2 \
    || die "pip install $PEER_PKG==$PEER_VERSION failed"
fi
[[ "$(peer_version)" == "$PEER_VERSION" ]] || die "peer in $PEER_VENV is not $PEER_VERSION"

# ---- ours: release build unless CHM_BENCH_BIN is given
if [[ -n "${CHM_BENCH_BIN:-}" ]]; then
  CHM="$(readlink -f "$CHM_BENCH_BIN")"
else
  cargo build --release --quiet || die "cargo build --release failed"
  CHM="$root/target/release/cluster-health-mcp"
fi
[[ -x "$CHM" ]] || die "no binary at $CHM"

WORK="$(mktemp -d /tmp/chm-bench-prom.XXXXXX)"
PROMETHEUS_PID="" PROMETHEUS_DIR=""
cleanup() {
  if [[ -n "$PROMETHEUS_PID" && -n "$PROMETHEUS_DIR" ]]; then
    tests/prometheus/stop.sh "$PROMETHEUS_PID" "$PROMETHEUS_DIR" >&2 || true
  fi
  if [[ -n "${KEEP:-}" ]]; then echo "bench: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "bench: work dir $WORK" >&2

# ---- the real Prometheus (17-40 s); its 4 lines are parsed, not eval'd blindly
tests/prometheus/start.sh >"$WORK/prometheus.env" || die "tests/prometheus/start.sh failed"
while IFS='=' read -r k v; do
  case "$k" in PROMETHEUS_URL|PROMETHEUS_PID|PROMETHEUS_DIR) printf -v "$k" '%s' "$v" ;; esac
done <"$WORK/prometheus.env"
[[ "$PROMETHEUS_URL" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || die "start.sh printed no PROMETHEUS_URL"

# specs copied so concurrent edits of tools.d don't reload mid-run
mkdir -p "$WORK/specs" && cp -r tools.d modes "$WORK/specs/"

start=$SECONDS
echo "## cluster-health-mcp vs $PEER_PKG $PEER_VERSION on one real Prometheus ($(prometheus --version 2>&1 | head -1 | awk '{print $3}'), tests/prometheus data)"
echo
echo "Command: \`N=$N STEP=$STEP ROW_BUDGET=$ROW_BUDGET tests/bench/prometheus.sh\`"
echo "(ours: $("$CHM" --version 2>/dev/null || echo "$CHM"), $(git rev-parse --short HEAD)$(git diff --quiet -- src tools.d || echo '+dirty'); machine: $(nproc) cores, shared: expect noise)"
"$PY" tests/bench/prometheus_bench.py --chm "$CHM" --peer "$PEER" --prometheus "$PROMETHEUS_URL" \
  --prometheus-pid "$PROMETHEUS_PID" --specs "$WORK/specs" --work "$WORK" -n "$N" --step "$STEP" --row-budget "$ROW_BUDGET"
echo
echo "Total bench time: $((SECONDS - start)) s (plus Prometheus start)"
