#!/usr/bin/env bash
# Durable Standard transitions per second through a real gateway + shard
# server, against the ceiling on the same disk: raw RocksDB WriteBatches of
# the same size, synced, from as many concurrent writers. Prints both, their
# ratio (goal >= 0.5) and WAL fsyncs per transition. On demand, not a test.
#
#   tools/bench/durable_vs_rocksdb.sh
#   BENCH_CONCURRENCY=128 BENCH_SECONDS=20 BENCH_DIR=/var/tmp tools/bench/durable_vs_rocksdb.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${STEPFLOW_BUILD_DIR:-$root/build}"
concurrency="${BENCH_CONCURRENCY:-64}"
seconds="${BENCH_SECONDS:-10}"
payload="${BENCH_PAYLOAD:-1024}"
STEPFLOW_BUILD_DIR="$build" "$root/tools/build.sh" stepflow-shard stepflow-gateway \
  stepflow-durability-bench >/dev/null

tmp="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/stepflow-durability-XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
shard_port="$(free_port)"; shard_metrics="$(free_port)"; gateway_port="$(free_port)"

"$build/services/execution/stepflow-shard" --data-dir "$tmp/shard" --shards 256 \
  --listen "127.0.0.1:$shard_port" --metrics-listen "127.0.0.1:$shard_metrics" \
  --log-level warn >"$tmp/shard.log" 2>&1 &
pids+=($!)
"$build/services/gateway/stepflow-gateway" --shard-servers "127.0.0.1:$shard_port" --shards 256 \
  --listen "127.0.0.1:$gateway_port" >"$tmp/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q "listening on" "$tmp/gateway.log" 2>/dev/null && grep -q "listening on" "$tmp/shard.log" && break
  sleep 0.1
done

metric() {  # metric NAME: the value of an unlabelled sample on the shard's page
  curl -s "http://127.0.0.1:$shard_metrics/metrics" | awk -v n="$1" '$1 == n {print $2}'
}
t0="$(metric stepflow_shard_transitions_total)"; f0="$(metric stepflow_shard_wal_fsyncs)"
bs0="$(metric stepflow_shard_transition_batch_bytes_sum)"; bc0="$(metric stepflow_shard_transition_batch_bytes_count)"
os0="$(metric stepflow_shard_transition_batch_ops_sum)"
gateway_out="$("$build/tools/bench/durability/stepflow-durability-bench" --mode gateway \
  --target "127.0.0.1:$gateway_port" --concurrency "$concurrency" --seconds "$seconds" \
  --payload "$payload")"
t1="$(metric stepflow_shard_transitions_total)"; f1="$(metric stepflow_shard_wal_fsyncs)"
bs1="$(metric stepflow_shard_transition_batch_bytes_sum)"; bc1="$(metric stepflow_shard_transition_batch_bytes_count)"
os1="$(metric stepflow_shard_transition_batch_ops_sum)"
durable="$(awk '/transitions_per_second/ {print $2}' <<<"$gateway_out")"
read -r batch_bytes batch_ops fsyncs_per_transition < <(python3 -c "
t=float('$t1')-float('$t0'); f=float('$f1')-float('$f0'); c=float('$bc1')-float('$bc0')
print(int((float('$bs1')-float('$bs0'))/c), max(1, round((float('$os1')-float('$os0'))/c)), f/t if t else 0)")

raw_out="$("$build/tools/bench/durability/stepflow-durability-bench" --mode rocksdb \
  --dir "$tmp/raw" --concurrency "$concurrency" --seconds "$seconds" \
  --batch-bytes "$batch_bytes" --batch-ops "$batch_ops")"
ceiling="$(awk '/batches_per_second/ {print $2}' <<<"$raw_out")"
raw_fsyncs="$(awk '/fsyncs_per_batch/ {print $2}' <<<"$raw_out")"

echo "disk: $(df -P "$tmp" | awk 'NR==2 {print $1}') ($tmp)"
echo "concurrency $concurrency, ${seconds}s, ${payload}-byte inputs; transition batches average ${batch_bytes} bytes, ${batch_ops} ops"
printf 'durable transitions/s (gateway + shard server): %.0f\n' "$durable"
printf 'raw RocksDB synced batches/s (same size):       %.0f\n' "$ceiling"
python3 -c "print('ratio: %.2f (goal >= 0.5)' % (float('$durable') / float('$ceiling')))"
printf 'fsyncs per transition: %.3f (raw: %.3f per batch)\n' "$fsyncs_per_transition" "$raw_fsyncs"
