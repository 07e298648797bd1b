#!/usr/bin/env bash
# bench/proxy.sh — `git clone --no-checkout` of the same ~300 MiB repository (one
# pack, as Azure DevOps serves it) from the
# strict Azure DevOps emulator, directly with http.extraHeader vs through
# `azdo-sidecar serve` (standalone PAT), interleaved rounds, medians, their
# ratio, the sidecar's CPU seconds per GiB proxied, and its resident memory
# after start and at peak under concurrent clones (on demand, not CI).
# When installed, mitmproxy (mitmdump) and squid with ssl-bump are further
# paths in the same rounds, doing the sidecar's job (own CA on loopback,
# PAT injected for dev.azure.com), with the same figures (CPU and RSS
# summed over their processes); the output says which peers were skipped.
#
# Usage: bench/proxy.sh [ROUNDS] [MIB] [COMMITS] [CONCURRENT]   (defaults 7, 300, 30, 16)
# Needs: go, git 2.39+ (git-http-backend), root or the CONNECT tunnel
# fallback of e2e/testenv. Peers (optional; Debian 12):
#   apt-get install --no-install-recommends mitmproxy squid-openssl
# squid needs the emulator on port 443 (root). BENCH_PEERS=none leaves the
# peers out; BENCH_PEERS=mitmproxy or =squid runs only that one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BENCH_ROUNDS=${1:-7} BENCH_MB=${2:-300} BENCH_COMMITS=${3:-30} BENCH_CONCURRENT=${4:-16} \
	go test -tags bench -run '^TestProxyCloneBench$' -count=1 -timeout 30m -v ./bench/ | grep -E 'round|seeded|ratio|CPU|memory|concurrent|peer|FAIL|ok'
