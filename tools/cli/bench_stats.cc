#include "tools/cli/bench_stats.h"

#include <algorithm>
#include <cmath>

namespace stepflow::cli::bench {

namespace {

// `micros` with its digits after the fourth significant one set to zero.
int64_t FourSignificantDigits(int64_t micros) {
  int64_t scale = 1;
  while (micros / scale >= 10000) scale *= 10;
  return micros / scale * scale;
}

}  // namespace

void LatencySamples::Add(absl::Duration latency) {
  ++counts_[FourSignificantDigits(std::max<int64_t>(0, absl::ToInt64Microseconds(latency)))];
  ++count_;
  max_ = std::max(max_, latency);
}

void LatencySamples::Merge(const LatencySamples& other) {
  for (const auto& [micros, count] : other.counts_) counts_[micros] += count;
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

LatencySummary LatencySamples::Summarize() const {
  LatencySummary summary;
  summary.count = count_;
  if (count_ == 0) return summary;
  auto at = [&](double percent) {
    // Nearest rank: ceil(p/100 * n), 1-based.
    auto rank = static_cast<int64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
    rank = std::clamp<int64_t>(rank, 1, count_);
    int64_t seen = 0;
    for (const auto& [micros, count] : counts_) {
      seen += count;
      if (seen >= rank) return std::min(absl::Microseconds(micros), max_);
    }
    return max_;
  };
  summary.p50 = at(50);
  summary.p90 = at(90);
  summary.p99 = at(99);
  summary.max = max_;
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
