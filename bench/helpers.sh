#!/usr/bin/env bash
# bench/helpers.sh — AZDO_BENCH_HELPERS (default 1000) `git credential fill`
# processes started at once against `azdo-sidecar serve` in vault mode (a
# real azdo-vault with a stored PAT): failures and latency, with the
# sidecar's token cache cold (one shared vault fetch) and warm (on demand,
# not CI).
#
# Usage: bench/helpers.sh [N]   (default 1000)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
AZDO_BENCH=1 AZDO_BENCH_HELPERS=${1:-1000} \
	go test -run '^TestBenchHelperBurst$' -count=1 -timeout 30m -v ./e2e/ | grep -E 'concurrent|×|FAIL|^ok'
