#include "tools/cli/bench_stats.h"

#include <algorithm>
#include <cmath>

namespace stepflow::cli::bench {

void LatencySamples::Merge(const LatencySamples& other) {
  samples_.insert(samples_.end(), other.samples_.begin(), other.samples_.end());
}

LatencySummary LatencySamples::Summarize() {
  LatencySummary summary;
  summary.count = static_cast<int64_t>(samples_.size());
  if (samples_.empty()) return summary;
  std::sort(samples_.begin(), samples_.end());
  auto at = [&](double percent) {
    // Nearest rank: ceil(p/100 * n), 1-based.
    auto rank = static_cast<size_t>(
        std::ceil(percent / 100.0 * static_cast<double>(samples_.size())));
    rank = std::clamp<size_t>(rank, 1, samples_.size());
    return samples_[rank - 1];
  };
  summary.p50 = at(50);
  summary.p90 = at(90);
  summary.p99 = at(99);
  summary.max = samples_.back();
  return summary;
}

void ErrorCounts::Add(const std::string& code, const std::string& message) {
  if (++counts_[code] == 1) first_messages_[code] = message;
}

void ErrorCounts::Merge(const ErrorCounts& other) {
  for (const auto& [code, count] : other.counts_) counts_[code] += count;
  for (const auto& [code, message] : other.first_messages_)
    first_messages_.emplace(code, message);
}

int64_t ErrorCounts::Total() const {
  int64_t total = 0;
  for (const auto& [code, count] : counts_) total += count;
  return total;
}

int64_t ErrorCounts::Count(const std::string& code) const {
  auto it = counts_.find(code);
  return it == counts_.end() ? 0 : it->second;
}

RateLimiter::RateLimiter(double ops_per_second)
    : interval_(ops_per_second > 0 ? absl::Seconds(1.0 / ops_per_second)
                                   : absl::ZeroDuration()) {}

absl::Time RateLimiter::Reserve(absl::Time now) {
  if (interval_ == absl::ZeroDuration()) return now;
  absl::MutexLock lock(&mu_);
  absl::Time start = std::max(next_, now);
  next_ = start + interval_;
  return start;
}

absl::Duration Backoff(int attempt, double random01, absl::Duration initial,
                       absl::Duration cap) {
  absl::Duration delay = initial;
  for (int i = 1; i < attempt && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);
  return delay * (0.5 + 0.5 * std::clamp(random01, 0.0, 1.0));
}

}  // namespace stepflow::cli::bench
