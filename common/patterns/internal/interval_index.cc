#include "common/patterns/internal/interval_index.h"

#include <algorithm>
#include <limits>

namespace stepflow::patterns::internal {

IntervalIndex::IntervalIndex(const std::vector<Interval>& intervals) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  for (const Interval& interval : intervals) {
    if (interval.lower > interval.upper) continue;
    starts_.push_back(interval.lower);
    if (interval.upper < kMax) starts_.push_back(interval.upper + 1);
  }
  std::sort(starts_.begin(), starts_.end());
  starts_.erase(std::unique(starts_.begin(), starts_.end()), starts_.end());
  const size_t leaves = starts_.size();
  if (leaves == 0) return;
  auto segment = [&](int64_t start) {
    return static_cast<size_t>(std::lower_bound(starts_.begin(), starts_.end(), start) - starts_.begin());
  };
  // Bottom-up over the half-open leaf range [first, end): every node that
  // lies wholly inside it and whose parent does not gets the id.
  std::vector<std::vector<uint32_t>> nodes(2 * leaves);
  for (const Interval& interval : intervals) {
    if (interval.lower > interval.upper) continue;
    size_t first = segment(interval.lower) + leaves;
    size_t end = (interval.upper == kMax ? leaves : segment(interval.upper + 1)) + leaves;
    for (; first < end; first >>= 1, end >>= 1) {
      if (first & 1) nodes[first++].push_back(interval.id);
      if (end & 1) nodes[--end].push_back(interval.id);
    }
  }
  offsets_.reserve(nodes.size() + 1);
  for (const std::vector<uint32_t>& node : nodes) {
    offsets_.push_back(static_cast<uint32_t>(ids_.size()));
    ids_.insert(ids_.end(), node.begin(), node.end());
  }
  offsets_.push_back(static_cast<uint32_t>(ids_.size()));
}

void IntervalIndex::Stab(int64_t x, std::vector<uint32_t>* ids) const {
  auto after = std::upper_bound(starts_.begin(), starts_.end(), x);
  if (after == starts_.begin()) return;
  const size_t leaves = starts_.size();
  for (size_t node = static_cast<size_t>(after - starts_.begin()) - 1 + leaves; node >= 1; node >>= 1) {
    ids->insert(ids->end(), ids_.begin() + offsets_[node], ids_.begin() + offsets_[node + 1]);
  }
}

}  // namespace stepflow::patterns::internal
