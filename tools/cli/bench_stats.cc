#include "tools/cli/bench_stats.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

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

void AddClosedExpress(const std::string& page, std::map<std::string, int64_t>* counts) {
  constexpr absl::string_view kFamily = "stepflow_executions_closed_total{";
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (!absl::StartsWith(line, kFamily)) continue;
    const size_t labels_end = line.find('}');
    if (labels_end == absl::string_view::npos) continue;
    const absl::string_view labels = line.substr(kFamily.size(), labels_end - kFamily.size());
    if (!absl::StrContains(labels, "type=\"EXPRESS\"")) continue;
    constexpr absl::string_view kStatus = "status=\"";
    const size_t status_at = labels.find(kStatus);
    if (status_at == absl::string_view::npos) continue;
    const size_t status_start = status_at + kStatus.size();
    const size_t status_end = labels.find('"', status_start);
    if (status_end == absl::string_view::npos) continue;
    double value = 0;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(line.substr(labels_end + 1)), &value)) {
      continue;
    }
    (*counts)[std::string(labels.substr(status_start, status_end - status_start))] +=
        static_cast<int64_t>(value);
  }
}

}  // namespace stepflow::cli::bench
