#!/usr/bin/env bash
# Latency and memory at 70% of peak: measures the peak rate of a scenario
# (default express-sync, the built-in workflow) on a throw-away in-process
# cluster, then runs it capped at 70% of that for 5 minutes, sampling the
# process's resident memory every 10 s. Prints p50, p99 and their ratio
# (goal p99 <= 5x p50), errors (goal none) and the first, last and largest
# RSS sample (goal: no upward trend). On demand, not a test.
#
#   tools/bench/express_soak.sh
#   SOAK_SCENARIO=express-async SOAK_DURATION=2m SOAK_CONCURRENCY=32 tools/bench/express_soak.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${STEPFLOW_BUILD_DIR:-$root/build}"
scenario="${SOAK_SCENARIO:-express-sync}"
duration="${SOAK_DURATION:-5m}"
concurrency="${SOAK_CONCURRENCY:-16}"
share="${SOAK_SHARE:-0.7}"
STEPFLOW_BUILD_DIR="$build" "$root/tools/build.sh" stepflow >/dev/null
stepflow="$build/tools/cli/stepflow"

peak_json="$("$stepflow" bench --scenario "$scenario" -c "$concurrency" -z 10s -O json)"
peak="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["completed_per_sec"])' "$peak_json")"
rate="$(python3 -c "print(round($peak * $share, 1))")"
echo "peak: $peak/s ($scenario, -c $concurrency, 10 s); soak at $rate/s for $duration"
# One continuous run (--slices 1): the memory trend is the scenario's alone.
soak_json="$("$stepflow" bench --scenario "$scenario" -c "$concurrency" -z "$duration" -q "$rate" \
  --slices 1 --rss-interval 10s -O json)" || true
python3 - "$soak_json" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
lat = d["latency_ms"]
p50, p99 = lat["p50"], lat["p99"]
print(f"completed: {d['completed']} ({d['completed_per_sec']}/s), errors: {d['errors'] or 'none'}")
print(f"latency ms: p50 {p50}  p90 {lat['p90']}  p99 {p99}  max {lat['max']}")
print(f"p99 / p50: {p99 / p50 if p50 else 0:.2f} (goal <= 5)")
rss = d.get("rss_mb")
if rss:
    print(f"rss MiB ({rss['of']}): first {rss['first']}  last {rss['last']}  max {rss['max']}")
    print("samples every 10 s:", " ".join(str(s) for s in rss["samples"]))
PY
