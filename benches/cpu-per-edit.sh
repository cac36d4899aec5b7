#!/usr/bin/env bash
# Server CPU per edit, measured from outside: collab-bench-server pinned to
# CPU 0, ../shared/peerbench's load generator on CPU 1, and the server's
# user + system time from /proc over 12 s of typing, divided by the edits.
#
#   benches/cpu-per-edit.sh [ROOMS CLIENTS TYPISTS] [-- server options]
#   benches/cpu-per-edit.sh 200 5 1 -- --sqlite /tmp/cpe.db
#
# Needs a release collab-bench-server (cargo build --release -p
# collab-benches --bin collab-bench-server) and the load generator that
# ../shared/peerbench/run.sh builds in its work directory.
set -euo pipefail
ROOMS=${1:-200}; CLIENTS=${2:-5}; TYPISTS=${3:-1}
shift $(( $# < 3 ? $# : 3 )); [[ ${1:-} == -- ]] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
server=${COLLAB_BENCH_SERVER:-$root/target/release/collab-bench-server}
loadgen=${PEERBENCH_WORK:-${TMPDIR:-/tmp}/peerbench}/loadgen/target/release/peerbench-loadgen
port=${PORT:-4192}
for arg in "$@"; do [[ $arg == *.db ]] && rm -f "$arg" "$arg-wal" "$arg-shm"; done

taskset -c 0 "$server" "$@" "$port" >/dev/null 2>&1 &
spid=$!
trap 'kill $spid 2>/dev/null || true' EXIT
sleep 0.5
log=$(mktemp)
taskset -c 1 "$loadgen" --url "ws://127.0.0.1:$port" --proto collab --rooms "$ROOMS" \
    --clients "$CLIENTS" --typists "$TYPISTS" --rate 5 --duration 20 --warmup 5 >"$log" 2>&1 &
lg=$!
ticks() { awk '{print $14 + $15}' "/proc/$spid/stat"; }
sleep 9
t0=$(ticks); s0=$(date +%s.%N)
sleep 12
t1=$(ticks); s1=$(date +%s.%N)
wait $lg
python3 - "$t0" "$t1" "$s0" "$s1" "$(getconf CLK_TCK)" "$(( ROOMS * TYPISTS * 5 ))" <<'PY'
import sys
t0, t1, s0, s1, hz, edits = map(float, sys.argv[1:])
cpu = (t1 - t0) / hz / (s1 - s0)
print(f"server CPU {cpu * 100:.1f}% of a core, {cpu / edits * 1e6:.0f} µs an edit ({edits:.0f} edits/s)")
PY
grep -o 'p50=[^ ]* p90=[^ ]* p99=[^ ]*\|missing=[^ ]*' "$log" | tr '\n' ' '; echo
rm -f "$log"
