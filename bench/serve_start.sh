#!/usr/bin/env bash
# serve_start.sh STORE [IDLE_SECONDS]: starts `kmsring serve` on STORE (a
# bbolt file or postgres:// URL whose keys are under the all-zero root key,
# as BenchmarkScale builds them), and prints the time until its "listening"
# line (and the CPU it used until then: steadier than wall time on a
# loaded machine), its RSS then, and the CPU it uses over IDLE_SECONDS (default 60)
# with nothing due. Needs an access key in the store for nothing; serve
# only listens.
set -euo pipefail
store=$1
idle=${2:-60}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
head -c 32 /dev/zero >"$work/root.key"
chmod 600 "$work/root.key"
go build -o "$work/kmsring" ./cmd/kmsring
start=$(date +%s.%N)
KMSRING_STORE=$store KMSRING_ROOT_KEY_FILE=$work/root.key "$work/kmsring" serve --addr 127.0.0.1:0 \
	>"$work/out" 2>"$work/err" &
pid=$!
until grep -q '^listening on' "$work/out" 2>/dev/null; do
	kill -0 "$pid" 2>/dev/null || { cat "$work/err"; exit 1; }
	sleep 0.01
done
end=$(date +%s.%N)
rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
ticks() { awk '{print $14 + $15}' /proc/$pid/stat; }
t0=$(ticks)
hz=$(getconf CLK_TCK)
sleep "$idle"
t1=$(ticks)
echo "listening after $(echo "$end - $start" | bc) s ($(( t0 * 1000 / hz )) ms of CPU); RSS at listening ${rss} KiB"
echo "idle CPU over ${idle} s: $(( (t1 - t0) * 1000 / hz )) ms ($(echo "scale=3; ($t1 - $t0) * 100 / $hz / $idle" | bc)% of a core)"
