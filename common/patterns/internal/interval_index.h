// A fixed set of closed integer intervals, each carrying an id, that answers
// "which intervals contain x" in O(log n + hits). The rule index files
// numeric-range conditions here (bounds scaled to integers, as numbers are
// compared at 6 decimal places).
//
// It is a segment tree over the elementary segments between interval ends:
// an interval is stored in the O(log n) tree nodes that cover it exactly, and
// a query collects the nodes on one leaf-to-root path. Memory is
// O(n log n) ids whatever the intervals overlap.
//
// Immutable once built; const methods may be called concurrently.
#ifndef STEPFLOW_COMMON_PATTERNS_INTERNAL_INTERVAL_INDEX_H_
#define STEPFLOW_COMMON_PATTERNS_INTERNAL_INTERVAL_INDEX_H_

#include <cstdint>
#include <vector>

namespace stepflow::patterns::internal {

class IntervalIndex {
 public:
  struct Interval {
    int64_t lower;  // inclusive
    int64_t upper;  // inclusive; lower > upper is an empty interval
    uint32_t id;
  };

  IntervalIndex() = default;
  explicit IntervalIndex(const std::vector<Interval>& intervals);

  // Appends the id of every interval containing `x` (an id once per interval
  // holding it, in no particular order).
  void Stab(int64_t x, std::vector<uint32_t>* ids) const;

  bool empty() const { return starts_.empty(); }

 private:
  // Elementary segment j is [starts_[j], starts_[j + 1]), the last one
  // unbounded above; values below starts_[0] are in no interval.
  std::vector<int64_t> starts_;
  // Tree node k (1-based, children 2k and 2k+1, leaves from starts_.size())
  // holds ids_[offsets_[k] .. offsets_[k + 1]).
  std::vector<uint32_t> offsets_;
  std::vector<uint32_t> ids_;
};

}  // namespace stepflow::patterns::internal

#endif  // STEPFLOW_COMMON_PATTERNS_INTERNAL_INTERVAL_INDEX_H_
