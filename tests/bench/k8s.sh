#!/usr/bin/env bash
# Benchmark: cluster-health-mcp (release build) vs kubernetes-mcp-server on one synthetic cluster.
# See tests/bench/README.md. Loopback only; bounded (N calls per question); ~2-4 min at 10k pods.
#
#   tests/bench/k8s.sh                       # 10,000 pods / 100 nodes / 50 namespaces, N=20
#   PODS=2000 NODES=20 NAMESPACES=10 N=10 tests/bench/k8s.sh
#   CHM_BENCH_BIN=target/debug/cluster-health-mcp tests/bench/k8s.sh   # skip the release build
#   KEEP=1 tests/bench/k8s.sh                # keep the work dir (logs, kubeconfig, snapshot)
#   BENCH_REV=09be96b CHM_BENCH_BIN=/tmp/chm-09be96b tests/bench/k8s.sh   # name the binary's commit in the report
#   PODS=100000 NODES=5000 NAMESPACES=500 N=5 tests/bench/k8s.sh   # the ceiling (no peer-yaml rows)
#   SERVERS=ours-kube,peer tests/bench/k8s.sh # some servers only
#   tests/bench/load.sh                      # concurrent sessions instead (BENCH=load)
set -euo pipefail
die() { echo "bench: ERROR: $*" >&2; exit 1; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

BENCH="${BENCH:-latency}"
PODS="${PODS:-10000}" NODES="${NODES:-100}" NAMESPACES="${NAMESPACES:-50}" SEED="${SEED:-42}" N="${N:-20}"
PEER_PKG="kubernetes-mcp-server-linux-amd64" PEER_VERSION="${PEER_VERSION:-0.0.67}"
DEPS="$root/.deps"
PY="$DEPS/bin/python"
[[ -x "$PY" && -x "$DEPS/bin/npm" ]] || die "run scripts/test-deps.sh first (needs .deps/bin/python and npm)"
"$PY" -c 'import mcp, httpx' || die ".deps python lacks the MCP SDK; run scripts/test-deps.sh"

# ---- peer: npm package shipping the Go binary, pinned, in .deps/bench
BENCH_NPM="$DEPS/bench"
PEER="$BENCH_NPM/node_modules/$PEER_PKG/bin/$PEER_PKG"
if [[ ! -x "$PEER" ]] || [[ "$("$PEER" --version 2>/dev/null)" != "v$PEER_VERSION" ]]; then
  echo "bench: installing $PEER_PKG@$PEER_VERSION into $BENCH_NPM" >&2
  mkdir -p "$BENCH_NPM"
  [[ -f "$BENCH_NPM/package.json" ]] || echo '{"name":"chm-bench-deps","private":true}' > "$BENCH_NPM/package.json"
  "$DEPS/bin/npm" install --prefix "$BENCH_NPM" --no-audit --no-fund "$PEER_PKG@$PEER_VERSION" >&2 || die "npm install $PEER_PKG failed"
fi
[[ "$("$PEER" --version)" == "v$PEER_VERSION" ]] || die "peer binary at $PEER is not v$PEER_VERSION"

# ---- ours: release build unless CHM_BENCH_BIN is given (not CHM_*: the server reads CHM_* as settings,
# and the driver strips them anyway)
if [[ -n "${CHM_BENCH_BIN:-}" ]]; then
  CHM="$(readlink -f "$CHM_BENCH_BIN")"
else
  cargo build --release --quiet || die "cargo build --release failed"
  CHM="$root/target/release/cluster-health-mcp"
fi
[[ -x "$CHM" ]] || die "no binary at $CHM"

WORK="$(mktemp -d /tmp/chm-bench.XXXXXX)"
[[ -n "${KEEP:-}" ]] || trap 'rm -rf "$WORK"' EXIT
echo "bench: work dir $WORK" >&2

# ---- data: one synthetic snapshot; specs copied so concurrent edits of tools.d don't reload mid-run
"$CHM" snapshot generate "$WORK/cluster" --nodes "$NODES" --pods "$PODS" --namespaces "$NAMESPACES" --seed "$SEED" >&2
mkdir -p "$WORK/specs" && cp -r tools.d modes "$WORK/specs/"

# peer-yaml (the peer's non-default --list-output yaml) answers all pods in ~1.4 KB a pod and
# holds them several times over: skipped above 20,000 pods unless SERVERS names it
if (( PODS > 20000 )); then default_servers=ours-inproc,ours-kube,peer; else default_servers=ours-inproc,ours-kube,peer,peer-yaml; fi
start=$SECONDS
common=(--chm "$CHM" --peer "$PEER" --snapshot "$WORK/cluster" --specs "$WORK/specs" --work "$WORK")
rev="${BENCH_REV:-$(git rev-parse --short HEAD)$(git diff --quiet -- src tools.d || echo "+dirty")}"
if [[ "$BENCH" == load ]]; then
  LEVELS="${LEVELS:-1,4,16}" SECONDS_PER="${SECONDS_PER:-10}"
  echo "## Load: cluster-health-mcp vs kubernetes-mcp-server $PEER_VERSION: $PODS pods / $NODES nodes / $NAMESPACES namespaces (seed $SEED)"
  echo
  echo "Command: \`PODS=$PODS NODES=$NODES NAMESPACES=$NAMESPACES SEED=$SEED LEVELS=$LEVELS SECONDS_PER=$SECONDS_PER tests/bench/load.sh\`"
  echo "(ours: $("$CHM" --version 2>/dev/null || echo "$CHM"), $rev; machine: $(nproc) cores, shared: expect noise)"
  "$PY" tests/bench/load_bench.py "${common[@]}" --servers "${SERVERS:-ours-inproc,ours-kube,peer}" \
    --levels "$LEVELS" --seconds "$SECONDS_PER"
else
  echo "## cluster-health-mcp vs kubernetes-mcp-server $PEER_VERSION: $PODS pods / $NODES nodes / $NAMESPACES namespaces (seed $SEED)"
  echo
  echo "Command: \`PODS=$PODS NODES=$NODES NAMESPACES=$NAMESPACES SEED=$SEED N=$N ROW_BUDGET=${ROW_BUDGET:-40} tests/bench/k8s.sh\`"
  echo "(ours: $("$CHM" --version 2>/dev/null || echo "$CHM"), $rev; machine: $(nproc) cores, shared: expect noise)"
  "$PY" tests/bench/k8s_bench.py "${common[@]}" --servers "${SERVERS:-$default_servers}" -n "$N" --row-budget "${ROW_BUDGET:-40}"
fi
echo
echo "Total bench time: $((SECONDS - start)) s"
