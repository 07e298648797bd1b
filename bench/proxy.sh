#!/usr/bin/env bash
# bench/proxy.sh — `git clone` of the same ~200 MiB repository from the
# strict Azure DevOps emulator, directly with http.extraHeader vs through
# `azdo-sidecar serve` (standalone PAT), interleaved rounds, medians, their
# ratio, and the sidecar's peak resident memory (on demand, not CI).
#
# Usage: bench/proxy.sh [ROUNDS] [MIB]   (defaults 5, 200)
# Needs: go, git 2.39+ (git-http-backend), root or the CONNECT tunnel
# fallback of e2e/testenv.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BENCH_ROUNDS=${1:-5} BENCH_MB=${2:-200} \
	go test -tags bench -run '^TestProxyCloneBench$' -count=1 -timeout 30m -v ./bench/ | grep -E 'round|seeded|ratio|memory|FAIL|ok'
