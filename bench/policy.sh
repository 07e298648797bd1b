#!/usr/bin/env bash
# bench/policy.sh — the proxy's CPU per clone with and without a policy to
# enforce (bench/cmd/policyproxy, package proxy alone), interleaved rounds,
# and its peak resident memory while pushing a big pack through the
# receive-pack inspection (on demand, not CI).
#
# Usage: bench/policy.sh [ROUNDS] [MIB] [PUSH_MIB]   (defaults 5, 100, 300)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BENCH_ROUNDS=${1:-5} BENCH_MB=${2:-100} BENCH_PUSH_MB=${3:-300} \
	go test -tags bench -run '^TestPolicyProxyBench$' -count=1 -timeout 30m -v ./bench/ | grep -E 'round|ratio|push|FAIL|ok'
