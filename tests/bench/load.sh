#!/usr/bin/env bash
# Load test: concurrent MCP sessions against cluster-health-mcp and kubernetes-mcp-server (at its
# defaults) on one synthetic cluster. See tests/bench/README.md. Same setup and env as k8s.sh, plus:
#
#   tests/bench/load.sh                         # 10,000 pods; 1, 4, 16 sessions x 10 s per question
#   LEVELS=1,8,32 SECONDS_PER=20 tests/bench/load.sh
#   SERVERS=ours-kube,peer CHM_BENCH_BIN=target/release/cluster-health-mcp tests/bench/load.sh
exec env BENCH=load "$(dirname "${BASH_SOURCE[0]}")/k8s.sh" "$@"
