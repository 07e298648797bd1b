#!/usr/bin/env bash
# bench/clone.sh — go-git clone (azdo-sidecar clone's engine) vs `git clone`
# of the same ~100 MiB repository from the strict Azure DevOps emulator,
# interleaved rounds, medians and their ratio (on demand, not CI).
#
# Usage: bench/clone.sh [ROUNDS] [MIB] [SHAPE]   (defaults 5, 100, blobs)
# SHAPE blobs: MIB commits of 1 MiB incompressible data (no deltas).
# SHAPE source: MIB MiB of 4 KiB text files plus 30 commits changing 2% of
# them (a pack of mostly deltas, many files to check out).
# Needs: go, git 2.39+ (git-http-backend), root or the CONNECT tunnel
# fallback of e2e/testenv.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BENCH_ROUNDS=${1:-5} BENCH_MB=${2:-100} BENCH_SHAPE=${3:-blobs} \
	go test -tags bench -run '^TestCloneBench$' -count=1 -timeout 30m -v ./bench/ | grep -E 'round|seeded|ratio|FAIL|ok'
