#!/usr/bin/env bash
# Per-call engine overhead (benches/engine.rs) in one checkout; prints criterion's median per
# case in microseconds. `tests/bench/engine.sh [CHECKOUT]` (default: this repo).
#
# Profile: the dev profile's dependencies (opt-level 1, already built by every test run) with
# this crate at opt-level 3 and no debug assertions. A release build (fat LTO, one codegen
# unit) is the shipped binary but costs a full optimised rebuild of every dependency per
# checkout; PROFILE=release runs `cargo bench` on it instead.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
checkout="$(cd "${1:-$here}" && pwd)"
command -v jq >/dev/null || { echo "engine.sh: jq is required" >&2; exit 1; }
cd "$checkout"

if [[ "${PROFILE:-opt-crate}" == release ]]; then
  flags=()
else
  pkg=profile.dev.package.cluster-health-mcp
  flags=(--profile dev --config "$pkg.opt-level=3" --config "$pkg.debug-assertions=false"
         --config "$pkg.overflow-checks=false")
fi
cargo bench --bench engine "${flags[@]}" -- "${@:2}" >&2

echo "# $(git -C "$checkout" log -1 --format='%h %s' | cut -c1-72)"
echo "# $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for f in target/criterion/*/*/new/estimates.json; do
  case_="${f#target/criterion/}"
  printf '%-28s %10.1f us\n' "${case_%/new/estimates.json}" "$(jq '.median.point_estimate / 1000' "$f")"
done
