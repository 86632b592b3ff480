#!/usr/bin/env bash
# Run the official MCP conformance suite against `serve --transport http` on the fixture
# catalogue in this directory. Needs `conformance` on PATH (scripts/test-deps.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${CHM_BIN:-$root/target/debug/cluster-health-mcp}"
port=3741 # the fixture's `self` backend points here
command -v conformance >/dev/null || { echo "conformance not on PATH: run scripts/test-deps.sh" >&2; exit 1; }
[ -x "$bin" ] || { echo "binary $bin missing: cargo build first" >&2; exit 1; }

log="$(mktemp)"
env -u CHM_BIN "$bin" --replace-catalogue --specs "$here/catalogue.yaml" --mode conformance serve --transport http --bind "127.0.0.1:$port" --no-reload 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "server did not start:" >&2; cat "$log" >&2; exit 1; }

out="$(mktemp -d)"
set +e
conformance server --url "http://127.0.0.1:$port/mcp" --expected-failures "$here/expected-failures.yml" -o "$out" >"$out/log.txt" 2>&1
status=$?
set -e
sed -n '/=== SUMMARY ===/,$p' "$out/log.txt"
if [ $status -ne 0 ]; then
  echo "conformance failed (exit $status); full log:" >&2
  cat "$out/log.txt" >&2
  exit $status
fi
