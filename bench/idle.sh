#!/usr/bin/env bash
# bench/idle.sh — the idle memory of `azdo-sidecar serve` (on demand, not
# CI): N sidecars of the release build (static, stripped, as the
# Dockerfile builds it) started side by side, each read from
# /proc/PID/status and /proc/PID/smaps_rollup once they serve. VmRSS counts
# the executable's pages in every process that maps them; Pss divides them
# among those processes, so with N > 1 it is what one more environment on
# the same host costs; RssAnon (Private_Dirty, nearly) is the sidecar's own.
#
# Usage: bench/idle.sh [N]   (default 16)
# Needs: go.
set -euo pipefail

N=${1:-16}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/azdo-idle.XXXXXX)
pids=()
cleanup() {
	((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$WORK/azdo-sidecar" ./cmd/azdo-sidecar)
printf 'binary: %s bytes\n' "$(stat -c %s "$WORK/azdo-sidecar")"

for ((i = 0; i < N; i++)); do
	d="$WORK/s$i"
	mkdir -p "$d"
	# A standalone PAT (not a real one): the sidecar serves without a vault.
	AZDO_PAT=idlebenchidlebenchidlebenchidlebenchidlebench1234 \
		"$WORK/azdo-sidecar" --log-level warn serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
		--socket "$d/run/sock" --state-dir "$d/state" >"$d/ready" 2>"$d/log" &
	pids+=($!)
done
# Wait for every ready line, then let start-up settle.
for ((i = 0; i < N; i++)); do
	for ((t = 0; t < 100; t++)); do [ -s "$WORK/s$i/ready" ] && break; sleep 0.1; done
	[ -s "$WORK/s$i/ready" ] || { echo "sidecar $i did not start:" >&2; cat "$WORK/s$i/log" >&2; exit 1; }
done
sleep 2

for p in "${pids[@]}"; do
	awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s ", $2}' "/proc/$p/status"
	awk '/^Pss:/ {printf "%s\n", $2}' "/proc/$p/smaps_rollup"
done | awk -v n="$N" '{r += $1; a += $2; f += $3; p += $4}
	END {printf "%d idle sidecars, mean per process: VmRSS %.1f MiB (RssAnon %.1f, RssFile %.1f), Pss %.1f MiB\n",
		n, r / NR / 1024, a / NR / 1024, f / NR / 1024, p / NR / 1024}'
