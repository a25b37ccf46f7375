// The arithmetic of `stepflow bench`: latency percentiles, error counts by
// code, the rate limiter and the retry backoff. No I/O and no clock of its
// own (times are passed in), so the tests drive it directly.
#ifndef STEPFLOW_TOOLS_CLI_BENCH_STATS_H_
#define STEPFLOW_TOOLS_CLI_BENCH_STATS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace stepflow::cli::bench {

// Percentiles of a set of latencies.
struct LatencySummary {
  int64_t count = 0;
  absl::Duration p50;
  absl::Duration p90;
  absl::Duration p99;
  absl::Duration max;
};

// Latencies of one run, counted by value kept to four significant digits
// of microseconds (exact below 10 ms, within 0.1% above): the memory they
// take stops growing once a run has seen its spread of values, so a long
// run measures the cluster's memory, not the driver's. The largest is kept
// exactly. Not thread-safe: each load slot keeps its own and the driver
// merges them at the end.
class LatencySamples {
 public:
  void Add(absl::Duration latency);
  void Merge(const LatencySamples& other);
  size_t size() const { return static_cast<size_t>(count_); }
  // Nearest-rank percentiles (the smallest sample with at least q% of the
  // samples at or below it); all zero when empty.
  LatencySummary Summarize() const;

 private:
  // Count of samples by value (microseconds, four significant digits).
  absl::btree_map<int64_t, int64_t> counts_;
  int64_t count_ = 0;
  absl::Duration max_ = absl::ZeroDuration();
};

// Failed operations by gRPC code name ("UNAVAILABLE") or, for executions
// that ended otherwise than expected, by execution status ("FAILED"), with
// the first message seen for each. Not thread-safe (one per slot; merged).
class ErrorCounts {
 public:
  void Add(const std::string& code, const std::string& message);
  void Merge(const ErrorCounts& other);
  int64_t Total() const;
  int64_t Count(const std::string& code) const;
  const std::map<std::string, int64_t>& counts() const { return counts_; }
  const std::map<std::string, std::string>& first_messages() const {
    return first_messages_;
  }

 private:
  std::map<std::string, int64_t> counts_;
  std::map<std::string, std::string> first_messages_;
};

// Spaces operation starts evenly at `ops_per_second` across all callers; 0
// means no limit. No burst credit builds up while callers are slow, so a
// stall is not followed by a spike above the rate. Thread-safe.
class RateLimiter {
 public:
  explicit RateLimiter(double ops_per_second);
  // When the caller may start its next operation (`now` if at once); each
  // call reserves one start.
  absl::Time Reserve(absl::Time now);

 private:
  const absl::Duration interval_;
  absl::Mutex mu_;
  absl::Time next_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// Delay before retry number `attempt` (1, 2, ...) of an operation refused
// with RESOURCE_EXHAUSTED: exponential from `initial` up to `cap`, scaled by
// a jitter factor in [0.5, 1) taken from `random01` (uniform in [0, 1)), so
// refused slots do not come back in lockstep.
absl::Duration Backoff(int attempt, double random01,
                       absl::Duration initial = absl::Milliseconds(5),
                       absl::Duration cap = absl::Seconds(1));

// Adds the EXPRESS executions closed, by status, that a Prometheus text
// page counts in stepflow_executions_closed_total{type="EXPRESS",...} to
// `counts`.
void AddClosedExpress(const std::string& page, std::map<std::string, int64_t>* counts);

}  // namespace stepflow::cli::bench

#endif  // STEPFLOW_TOOLS_CLI_BENCH_STATS_H_
