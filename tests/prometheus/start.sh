#!/usr/bin/env bash
# Start a real Prometheus (Debian 2.42: scripts/test-deps.sh) loaded with 8 days of synthetic
# OpenShift metrics, the alerting/recording rules of rules.yml, and a live exporter that
# continues the same series after the reference time. See README.md in this directory.
#
#   tests/prometheus/start.sh [PORT]       (PORT: default a free loopback port)
#
# stdout (exactly these 4 lines, once everything is ready and the expected alerts fire):
#   PROMETHEUS_URL=http://127.0.0.1:PORT
#   PROMETHEUS_PID=<prometheus pid>
#   PROMETHEUS_DIR=<temp dir: data/, prometheus.yml, rules.yml, logs, feeder.pid>
#   EXPECTED=<temp dir>/expected.json
# Logs go to stderr. Stop with: tests/prometheus/stop.sh PID DIR
# Env: PYTHON (default python3), CHM_PROM_TIMEOUT (alert wait, default 60 s),
#      CHM_PROM_KEEP=1 keeps DIR after a failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
WAIT_TIMEOUT="${CHM_PROM_TIMEOUT:-60}"
SCRAPE_INTERVAL=2  # s; the exporter hands out 30 s-grid samples with explicit timestamps (README)
START_NS=$(date +%s%N)

log() { echo "start.sh: [$(( ($(date +%s%N) - START_NS) / 1000000 )) ms] $*" >&2; }

for b in prometheus promtool "$PY"; do
  command -v "$b" >/dev/null || { echo "start.sh: ERROR: $b not found (run scripts/test-deps.sh)" >&2; exit 1; }
done

DIR="$(mktemp -d "${TMPDIR:-/tmp}/chm-prometheus.XXXXXX")"
touch "$DIR/.chm-prometheus"
PROM_PID=""
FEEDER_PID=""
OK=0

fail() {
  echo "start.sh: ERROR: $*" >&2
  exit 1
}

on_exit() {
  if [[ $OK -ne 1 ]]; then
    for f in prometheus.log feeder.log; do
      if [[ -s "$DIR/$f" ]]; then
        echo "----- $DIR/$f (last 60 lines) -----" >&2
        tail -n 60 "$DIR/$f" >&2
      fi
    done
    [[ -n "$PROM_PID" ]] && kill "$PROM_PID" 2>/dev/null || true
    [[ -n "$FEEDER_PID" ]] && kill "$FEEDER_PID" 2>/dev/null || true
    [[ -n "$PROM_PID" ]] && wait "$PROM_PID" 2>/dev/null || true
    if [[ "${CHM_PROM_KEEP:-0}" == 1 ]]; then
      echo "start.sh: kept $DIR" >&2
    else
      rm -rf "$DIR"
    fi
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- data
# Reference time T = now rounded down to the minute: the backfill ends at T, the live
# exporter continues the same model after T on the same 30 s grid (explicit timestamps;
# Prometheus polls it every 2 s), so the stored data have no hole at T.
T=$(( $(date +%s) / 60 * 60 ))
"$PY" "$HERE/generate.py" gen --end "$T" --out "$DIR/data.om" --expected "$DIR/expected.json" \
  || fail "generate.py failed"
log "generated $(du -m "$DIR/data.om" | cut -f1) MB OpenMetrics (T=$T)"

# One pass over the input per block: with the default 2h blocks promtool re-parses the whole
# file ~100 times; --max-block-duration (hidden flag) makes it 1-2 blocks of up to 486h.
promtool tsdb create-blocks-from openmetrics --max-block-duration=1000h -q \
  "$DIR/data.om" "$DIR/data" >"$DIR/promtool.log" 2>&1 \
  || { cat "$DIR/promtool.log" >&2; fail "promtool tsdb create-blocks-from openmetrics failed"; }
rm -f "$DIR/data.om"
log "TSDB blocks: $(find "$DIR/data" -mindepth 1 -maxdepth 1 -type d | wc -l), $(du -sm "$DIR/data" | cut -f1) MB"

# ---------------------------------------------------------------- live exporter
cp "$HERE/rules.yml" "$DIR/rules.yml"
"$PY" "$HERE/generate.py" serve --end "$T" --port 0 \
  --port-file "$DIR/feeder.port" --watch-dir "$DIR" \
  >"$DIR/feeder.log" 2>&1 </dev/null &
FEEDER_PID=$!
echo "$FEEDER_PID" >"$DIR/feeder.pid"
for _ in $(seq 100); do
  [[ -s "$DIR/feeder.port" ]] && break
  kill -0 "$FEEDER_PID" 2>/dev/null || fail "live exporter exited"
  sleep 0.1
done
[[ -s "$DIR/feeder.port" ]] || fail "live exporter did not start"
FEEDER_PORT=$(cat "$DIR/feeder.port")

cat >"$DIR/prometheus.yml" <<EOF
global:
  scrape_interval: 30s
  evaluation_interval: 5s
rule_files:
  - $DIR/rules.yml
scrape_configs:
  # The live continuation of the backfilled series. honor_labels keeps the exposed job/instance;
  # the target's own instance label is dropped so cAdvisor / kube-state-metrics series keep
  # exactly the label sets of the backfill.
  - job_name: chm-synthetic
    scrape_interval: ${SCRAPE_INTERVAL}s
    scrape_timeout: ${SCRAPE_INTERVAL}s
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:$FEEDER_PORT']
    metric_relabel_configs:
      - source_labels: [instance]
        regex: '127\.0\.0\.1:[0-9]+'
        target_label: instance
        replacement: ''
EOF

# ---------------------------------------------------------------- prometheus
URL=""
for attempt in 1 2 3; do
  PORT="${1:-$(free_port)}"
  URL="http://127.0.0.1:$PORT"
  prometheus \
    --config.file="$DIR/prometheus.yml" \
    --storage.tsdb.path="$DIR/data" \
    --storage.tsdb.retention.time=30d \
    --web.listen-address="127.0.0.1:$PORT" \
    --rules.alert.for-grace-period=1m \
    >"$DIR/prometheus.log" 2>&1 </dev/null &
  PROM_PID=$!
  echo "$PROM_PID" >"$DIR/prometheus.pid"
  if "$PY" "$HERE/check.py" ready "$URL" --timeout 30 --pid "$PROM_PID"; then
    break
  fi
  wait "$PROM_PID" 2>/dev/null || true
  if [[ -z "${1:-}" && $attempt -lt 3 ]] && grep -q "address already in use" "$DIR/prometheus.log"; then
    log "port $PORT taken, retrying"
    continue
  fi
  fail "prometheus did not become ready on $URL"
done
log "prometheus ready on $URL (pid $PROM_PID)"

"$PY" "$HERE/check.py" wait "$URL" "$DIR/expected.json" --timeout "$WAIT_TIMEOUT" --pid "$PROM_PID" \
  || fail "expected alerts not firing / synthetic target not scraped within ${WAIT_TIMEOUT}s"
log "synthetic target scraped, expected alerts firing"

OK=1
echo "PROMETHEUS_URL=$URL"
echo "PROMETHEUS_PID=$PROM_PID"
echo "PROMETHEUS_DIR=$DIR"
echo "EXPECTED=$DIR/expected.json"
