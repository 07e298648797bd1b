#!/usr/bin/env bash
# bench/startup.sh — process start-up of the programs git may run as its
# credential helper (on demand, not CI): why a Go helper cannot beat git's
# own credential-cache client, and what ours costs on top of an empty Go
# program.
#
# Usage: bench/startup.sh [RUNS]   (default 500)
# Needs: go, git, bash 5 ($EPOCHREALTIME).
set -euo pipefail

RUNS=${1:-500}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/azdo-startup.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/empty"
printf 'package main\n\nfunc main() {}\n' >"$WORK/empty/main.go"
printf 'module empty\n\ngo 1.26\n' >"$WORK/empty/go.mod"
(cd "$WORK/empty" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$WORK/empty-go" .)
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$WORK/git-credential-azdo" ./cmd/git-credential-azdo)

export HOME="$WORK" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
mean_ms() {
	local s=$EPOCHREALTIME
	for ((i = 0; i < RUNS; i++)); do "$@" </dev/null >/dev/null 2>&1 || true; done
	echo "($EPOCHREALTIME - $s) * 1000 / $RUNS" | bc -l | xargs printf '%.2f'
}
printf '%-55s %s\n' "program ($RUNS runs each, mean)" ms
printf '%-55s %s\n' "/bin/true" "$(mean_ms /bin/true)"
printf '%-55s %s\n' "git credential-cache get (git's client, no daemon)" "$(mean_ms git credential-cache --socket="$WORK/none/sock" get)"
printf '%-55s %s\n' "empty Go program (static, stripped)" "$(mean_ms "$WORK/empty-go")"
printf '%-55s %s\n' "git-credential-azdo --version (static, stripped)" "$(mean_ms "$WORK/git-credential-azdo" --version)"
