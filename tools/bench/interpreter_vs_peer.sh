#!/usr/bin/env bash
# Our ASL interpreter against the Node.js peer aws-local-stepfunctions, on
# the same workflows (common/asl/bench/workflows), one core each: state
# transitions per second, their ratio, and what one transition costs
# compared with one JSON parse + serialize. See tools/bench/README.md.
#
#   tools/bench/interpreter_vs_peer.sh
#
# Environment:
#   BENCH_ROUNDS=2        rounds (ours, then the peer, in each); the report
#                         shows every round and the spread
#   BENCH_SECONDS=3       timed seconds per workflow and side
#   BENCH_CPU=0           the core both sides are pinned to (taskset -c)
#   PEER_VERSION=3.0.0    aws-local-stepfunctions version (pinned)
#   STEPFLOW_BUILD_DIR    build folder (default build/), as for tools/build.sh
#   BENCH_KEEP=1          keep the temporary folder (raw results) and say where
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
rounds="${BENCH_ROUNDS:-2}"
seconds="${BENCH_SECONDS:-3}"
cpu="${BENCH_CPU:-0}"
peer_version="${PEER_VERSION:-3.0.0}"
build="${STEPFLOW_BUILD_DIR:-$root/build}"
workflows="$root/common/asl/bench/workflows"

for tool in node npm taskset; do
  command -v "$tool" >/dev/null || { echo "interpreter_vs_peer.sh: $tool not found" >&2; exit 1; }
done

tmp="$(mktemp -d -t stepflow-bench.XXXXXX)"
if [[ "${BENCH_KEEP:-}" == 1 ]]; then
  trap 'echo "raw results kept in $tmp" >&2' EXIT
else
  trap 'rm -rf "$tmp"' EXIT
fi

echo "== installing aws-local-stepfunctions@$peer_version into $tmp" >&2
npm install --prefix "$tmp" --no-save --no-package-lock --no-audit --no-fund \
  --loglevel=error "aws-local-stepfunctions@$peer_version" >&2

echo "== building interpreter_benchmark in $build" >&2
STEPFLOW_BUILD_DIR="$build" "$root/tools/build.sh" interpreter_benchmark >&2
bench="$build/common/asl/bench/interpreter_benchmark"

for ((r = 1; r <= rounds; ++r)); do
  echo "== round $r/$rounds: ours (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  taskset -c "$cpu" "$bench" --workflows_dir="$workflows" \
    --benchmark_min_time="$seconds" --benchmark_format=json >"$tmp/ours-$r.json"
  echo "== round $r/$rounds: peer (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  taskset -c "$cpu" node "$root/tools/bench/peer/run_peer.mjs" --module-dir "$tmp" \
    --workflows "$workflows" --seconds "$seconds" --warmup-seconds 1 >"$tmp/peer-$r.jsonl"
done

echo
node "$root/tools/bench/report.mjs" "$tmp" "$rounds" 30
