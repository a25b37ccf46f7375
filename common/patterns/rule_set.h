// Many EventBridge rules matched at once.
//
//   patterns::RuleSet rules;
//   RETURN_IF_ERROR(rules.Add("big-orders", R"({"detail": {"total": [{"numeric": [">", 100]}]}})"));
//   RETURN_IF_ERROR(rules.Add("eu", R"({"region": ["eu-west-1"]})"));
//   std::vector<std::string> hits = rules.Match(event);  // ids, sorted
//
// Add/Remove edit the rule list; the next Match compiles it into a Matcher,
// an immutable index shared by all readers until the list changes again.
// The index keeps, per field path, what rules require there: exact and
// case-folded values, prefixes and suffixes (also the literal text before
// the first or after the last '*' of a wildcard), numeric ranges (an
// interval index), cidr networks (per mask length, the masked address), and
// "has a value" for exists: true. Each rule is filed under one required
// field (its "anchor", chosen to keep buckets small), so an event only
// checks the rules whose anchor it hits, plus the few rules that have no
// field to file them under (only anything-but, exists: false or wildcards
// made of '*' alone, or a $or with such a branch). The cost of matching one
// event depends on the event's size and the number of rules it nearly
// matches, not on the total number of rules.
//
// Thread-safety: a Matcher is immutable; its methods may be called
// concurrently. RuleSet's methods may be called concurrently too: edits and
// compilation happen under a mutex, and Match only holds it to take the
// current Matcher.
#ifndef STEPFLOW_COMMON_PATTERNS_RULE_SET_H_
#define STEPFLOW_COMMON_PATTERNS_RULE_SET_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/json/json.h"
#include "common/patterns/internal/interval_index.h"
#include "common/patterns/internal/text_trie.h"
#include "common/patterns/pattern.h"

namespace stepflow::patterns {

// An immutable compiled index over a fixed set of rules.
class Matcher {
 public:
  // Compiles `rules` (id -> pattern).
  explicit Matcher(const std::map<std::string, Pattern>& rules);

  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;

  // The ids of the rules `event` matches, in ascending order.
  std::vector<std::string> Match(const json::Value& event) const;

  // How many rules Match would check in full for `event` (the index's
  // selectivity, for benchmarks).
  size_t CandidateCount(const json::Value& event) const;

  size_t rule_count() const { return rules_.size(); }
  // Rules checked against every event (no indexable field).
  size_t unindexed_rule_count() const { return always_check_.size(); }

 private:
  struct Rule {
    std::string id;
    Pattern pattern;
  };
  using Bucket = std::vector<uint32_t>;
  using TextBuckets = absl::flat_hash_map<std::string, Bucket>;
  // One field path (a node per key from the event's root).
  struct PathNode {
    absl::flat_hash_map<std::string, uint32_t> children;
    // The same children as a list, scanned instead of hashing when short.
    std::vector<std::pair<std::string, uint32_t>> child_list;
    TextBuckets strings;
    TextBuckets folded_strings;                   // equals-ignore-case
    absl::flat_hash_map<int64_t, Bucket> numbers;  // scaled to 6 decimals
    TextBuckets prefixes, folded_prefixes, suffixes, folded_suffixes;
    // The same prefixes and suffixes (the latter reversed) as tries of
    // their buckets, so an event string is looked up in one pass.
    internal::TextTrie<const Bucket*> prefix_trie, folded_prefix_trie;
    internal::TextTrie<const Bucket*> suffix_trie, folded_suffix_trie;
    // Numeric ranges, scaled to 6 decimals: (lowest, highest) value in them.
    // Filled while compiling, then moved into range_index.
    absl::flat_hash_map<std::pair<int64_t, int64_t>, Bucket> ranges;
    internal::IntervalIndex range_index;
    // While compiling: the ends of every range a rule could be filed under,
    // sorted, to count how many ranges overlap a given one.
    std::vector<int64_t> range_lows, range_highs;
    // cidr networks, keyed by NetworkKey; network_shapes lists the
    // (address bytes, mask bits) in use, so an event address is masked
    // once per shape.
    TextBuckets networks;
    std::vector<std::pair<size_t, int>> network_shapes;
    Bucket trues, falses, nulls;
    Bucket present;  // exists: true, hit by any value
  };
  // A place in the index a rule can be filed under.
  struct Key {
    uint32_t node;
    const Condition* condition;
  };
  // A way to file a rule. A field whose conditions are all indexable gives
  // `keys` (any match hits one of them); a $or group gives `alternatives`,
  // for each of its branches the ways to file that branch (the rule is then
  // filed under one way per branch).
  struct Anchor {
    std::vector<Key> keys;
    std::vector<std::vector<Anchor>> alternatives;
  };

  uint32_t NodeFor(const std::vector<std::string>& path);
  Bucket* BucketFor(const Key& key);
  void CollectAnchors(const PatternNode& node, std::vector<std::string>* path,
                      std::vector<Anchor>* anchors);
  void FileEverywhere(const Anchor& anchor, uint32_t rule);
  size_t KeyCost(const Key& key);
  size_t AnchorCost(const Anchor& anchor);
  void ChooseKeys(const Anchor& anchor, std::vector<Key>* keys);
  // `*dotted` is set when an object the walk looked into has a member name
  // with a '.' (then the event's nested form is what must be matched).
  std::vector<uint32_t> Candidates(const json::Value& event, bool* dotted) const;
  void Walk(uint32_t node, const json::Value& value, std::vector<uint32_t>* candidates,
            bool* dotted) const;
  void Lookup(const PathNode& node, const json::Value& leaf, std::vector<uint32_t>* candidates) const;

  std::vector<Rule> rules_;
  std::vector<PathNode> nodes_;  // nodes_[0] is the event's root
  std::vector<uint32_t> always_check_;
};

// A mutable set of named rules with a compiled Matcher for reading.
class RuleSet {
 public:
  RuleSet() = default;
  RuleSet(const RuleSet&) = delete;
  RuleSet& operator=(const RuleSet&) = delete;

  // Adds or replaces rule `rule_id`. INVALID_ARGUMENT with AWS's message
  // when `pattern` is not valid (the set is then unchanged).
  [[nodiscard]] absl::Status Add(const std::string& rule_id, absl::string_view pattern);
  void Add(const std::string& rule_id, Pattern pattern);
  // Whether the rule was there.
  bool Remove(const std::string& rule_id);

  // The current compiled rules, compiling them if they changed.
  std::shared_ptr<const Matcher> Snapshot();

  std::vector<std::string> Match(const json::Value& event) { return Snapshot()->Match(event); }
  // INVALID_ARGUMENT when `event` is not JSON.
  absl::StatusOr<std::vector<std::string>> Match(absl::string_view event);

 private:
  absl::Mutex mu_;
  std::map<std::string, Pattern> rules_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const Matcher> snapshot_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stepflow::patterns

#endif  // STEPFLOW_COMMON_PATTERNS_RULE_SET_H_
