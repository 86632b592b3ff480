#!/usr/bin/env bash
# Stop a Prometheus started by start.sh and remove its directory.
#   tests/prometheus/stop.sh PID DIR
# Also stops the live exporter (DIR/feeder.pid). Only kills a PID whose command line
# mentions DIR, and only removes DIR if start.sh created it (DIR/.chm-prometheus).
set -uo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 PID DIR" >&2; exit 2; }
PID="$1"
DIR="$2"
[[ "$PID" =~ ^[0-9]+$ ]] || { echo "stop.sh: bad PID '$PID'" >&2; exit 2; }
[[ -f "$DIR/.chm-prometheus" ]] || { echo "stop.sh: $DIR is not a start.sh directory" >&2; exit 2; }

stop_pid() {  # pid: TERM, wait up to 10 s, then KILL; only if its cmdline mentions DIR
  local pid="$1"
  local cmd
  cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 0
  [[ -n "$cmd" ]] || return 0  # already exiting (zombie)
  grep -qF -- "$DIR" <<<"$cmd" || {
    echo "stop.sh: pid $pid does not belong to $DIR, not killing it" >&2
    return 0
  }
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    # a zombie (our child, e.g. when called from start.sh's shell) counts as gone
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && return 0
    sleep 0.1
  done
  echo "stop.sh: pid $pid did not exit after SIGTERM, sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

if [[ -s "$DIR/feeder.pid" ]]; then
  stop_pid "$(cat "$DIR/feeder.pid")"
fi
stop_pid "$PID"
rm -rf "$DIR"
