#!/usr/bin/env bash
# bench/vault.sh — POST /v1/token throughput and latency percentiles of the
# vault over loopback HTTP with 10,000 environments of 1,000 owners (each
# with a PAT), on SQLite and on PostgreSQL (a throwaway cluster; needs
# Debian's postgresql), 16 concurrent clients for 10 s with random
# environment tokens and seal_to (on demand, not CI).
#
# Usage: bench/vault.sh [ENVS] [CLIENTS] [SECONDS]   (defaults 10000, 16, 10)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
AZDO_BENCH=1 AZDO_BENCH_ENVS=${1:-10000} AZDO_BENCH_CLIENTS=${2:-16} AZDO_BENCH_SECONDS=${3:-10} \
	go test -run '^TestBenchTokenThroughput$' -count=1 -timeout 30m -v ./vault/ | grep -E 'environments|FAIL|^ok'
