#include "common/patterns/rule_set.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"

#include "common/patterns/internal/address.h"
#include "common/patterns/internal/dotted.h"
#include "common/patterns/internal/text.h"
#include "common/status/status_macros.h"

namespace stepflow::patterns {

using Kind = Condition::Kind;

namespace {

// Up to this many children, a linear scan beats hashing the event's keys.
constexpr size_t kScanLimit = 8;

// Where a wildcard can be filed: its text when it has no '*' (an exact
// value), else the longer of the literal text before the first '*' (a
// prefix) and after the last one (a suffix); nowhere when both are empty.
struct WildcardAnchor {
  enum class Where { kNowhere, kExact, kPrefix, kSuffix };
  Where where = Where::kNowhere;
  std::string text;
};

WildcardAnchor AnchorOfWildcard(absl::string_view pattern) {
  std::string literal;  // the pattern without escapes
  size_t first_star = std::string::npos, last_star = std::string::npos;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      literal += pattern[++i];
    } else if (pattern[i] == '*') {
      if (first_star == std::string::npos) first_star = literal.size();
      last_star = literal.size();
    } else {
      literal += pattern[i];
    }
  }
  WildcardAnchor anchor;
  if (first_star == std::string::npos) {
    anchor.where = WildcardAnchor::Where::kExact;
    anchor.text = std::move(literal);
  } else if (first_star > 0 && first_star >= literal.size() - last_star) {
    anchor.where = WildcardAnchor::Where::kPrefix;
    anchor.text = literal.substr(0, first_star);
  } else if (last_star < literal.size()) {
    anchor.where = WildcardAnchor::Where::kSuffix;
    anchor.text = literal.substr(last_star);
  }
  return anchor;
}

bool Indexable(const Condition& condition) {
  switch (condition.kind) {
    case Kind::kString:
    case Kind::kTrue:
    case Kind::kFalse:
    case Kind::kNull:
    case Kind::kPrefix:
    case Kind::kPrefixIgnoreCase:
    case Kind::kSuffix:
    case Kind::kSuffixIgnoreCase:
    case Kind::kEqualsIgnoreCase:
    case Kind::kNumeric:
    case Kind::kCidr:
      return true;
    case Kind::kNumber:
      return internal::InNumericRange(condition.number);
    case Kind::kExists:
      return condition.exists;
    case Kind::kWildcard:
      return AnchorOfWildcard(condition.text).where != WildcardAnchor::Where::kNowhere;
    case Kind::kAnythingBut:
      return false;
  }
  return false;
}

// The values of a numeric condition, scaled, as a closed range (empty when
// lowest > highest).
std::pair<int64_t, int64_t> ScaledRange(const Condition& c) {
  int64_t lowest = std::numeric_limits<int64_t>::min();
  int64_t highest = std::numeric_limits<int64_t>::max();
  if (c.has_lower) lowest = internal::ScaledNumber(c.lower) + (c.lower_inclusive ? 0 : 1);
  if (c.has_upper) highest = internal::ScaledNumber(c.upper) - (c.upper_inclusive ? 0 : 1);
  return {lowest, highest};
}

// A cidr network's index key: the mask length, then the masked address.
std::string NetworkKey(const std::vector<uint8_t>& address, int bits) {
  std::string key(1, static_cast<char>(bits));
  key.append(address.begin(), address.end());
  return key;
}

}  // namespace

uint32_t Matcher::NodeFor(const std::vector<std::string>& path) {
  uint32_t node = 0;
  for (const std::string& key : path) {
    auto it = nodes_[node].children.find(key);
    if (it == nodes_[node].children.end()) {
      uint32_t child = static_cast<uint32_t>(nodes_.size());
      nodes_[node].children.emplace(key, child);
      nodes_.emplace_back();
      node = child;
    } else {
      node = it->second;
    }
  }
  return node;
}

Matcher::Bucket* Matcher::BucketFor(const Key& key) {
  PathNode& node = nodes_[key.node];
  const Condition& c = *key.condition;
  switch (c.kind) {
    case Kind::kString:
      return &node.strings[c.text];
    case Kind::kEqualsIgnoreCase:
      return &node.folded_strings[c.text];
    case Kind::kNumber:
      return &node.numbers[internal::ScaledNumber(c.number)];
    case Kind::kPrefix:
      return &node.prefixes[c.text];
    case Kind::kPrefixIgnoreCase:
      return &node.folded_prefixes[c.text];
    case Kind::kSuffix:
      return &node.suffixes[c.text];
    case Kind::kSuffixIgnoreCase:
      return &node.folded_suffixes[c.text];
    case Kind::kWildcard: {
      WildcardAnchor anchor = AnchorOfWildcard(c.text);
      switch (anchor.where) {
        case WildcardAnchor::Where::kExact:
          return &node.strings[anchor.text];
        case WildcardAnchor::Where::kPrefix:
          return &node.prefixes[anchor.text];
        default:
          return &node.suffixes[anchor.text];
      }
    }
    case Kind::kNumeric:
      return &node.ranges[ScaledRange(c)];
    case Kind::kCidr:
      return &node.networks[NetworkKey(c.cidr_address, c.cidr_bits)];
    case Kind::kExists:
      return &node.present;
    case Kind::kTrue:
      return &node.trues;
    case Kind::kFalse:
      return &node.falses;
    default:
      return &node.nulls;
  }
}

// Lists the ways to file a rule. A field of `node` (or of its nested
// objects) whose conditions are all indexable gives one; a $or group gives
// one when every alternative has at least one.
void Matcher::CollectAnchors(const PatternNode& node, std::vector<std::string>* path,
                             std::vector<Anchor>* anchors) {
  for (const PatternNode::Field& field : node.fields) {
    path->push_back(field.key);
    if (field.child) {
      CollectAnchors(*field.child, path, anchors);
    } else if (std::all_of(field.conditions.begin(), field.conditions.end(), Indexable)) {
      uint32_t index_node = NodeFor(*path);
      Anchor anchor;
      for (const Condition& condition : field.conditions) anchor.keys.push_back({index_node, &condition});
      anchors->push_back(std::move(anchor));
    }
    path->pop_back();
  }
  for (const std::vector<PatternNode>& group : node.or_groups) {
    Anchor anchor;
    for (const PatternNode& alternative : group) {
      std::vector<Anchor> choices;
      CollectAnchors(alternative, path, &choices);
      if (choices.empty()) break;
      anchor.alternatives.push_back(std::move(choices));
    }
    if (anchor.alternatives.size() == group.size()) anchors->push_back(std::move(anchor));
  }
}

void Matcher::FileEverywhere(const Anchor& anchor, uint32_t rule) {
  for (const Key& key : anchor.keys) BucketFor(key)->push_back(rule);
  for (const std::vector<Anchor>& choices : anchor.alternatives) {
    for (const Anchor& choice : choices) FileEverywhere(choice, rule);
  }
}

// How many rules could share a candidate list with one filed under `key`:
// its bucket, or for a numeric range the ranges overlapping it (an event
// value in it hits all of those).
size_t Matcher::KeyCost(const Key& key) {
  if (key.condition->kind != Kind::kNumeric) return BucketFor(key)->size();
  const PathNode& node = nodes_[key.node];
  auto [lowest, highest] = ScaledRange(*key.condition);
  if (lowest > highest) return 0;
  size_t below = static_cast<size_t>(
      std::lower_bound(node.range_highs.begin(), node.range_highs.end(), lowest) - node.range_highs.begin());
  size_t above = static_cast<size_t>(
      node.range_lows.end() - std::upper_bound(node.range_lows.begin(), node.range_lows.end(), highest));
  return node.range_lows.size() - below - above;
}

size_t Matcher::AnchorCost(const Anchor& anchor) {
  size_t cost = 0;
  for (const Key& key : anchor.keys) cost += KeyCost(key);
  for (const std::vector<Anchor>& choices : anchor.alternatives) {
    size_t cheapest = SIZE_MAX;
    for (const Anchor& choice : choices) cheapest = std::min(cheapest, AnchorCost(choice));
    cost += cheapest;
  }
  return cost;
}

void Matcher::ChooseKeys(const Anchor& anchor, std::vector<Key>* keys) {
  keys->insert(keys->end(), anchor.keys.begin(), anchor.keys.end());
  for (const std::vector<Anchor>& choices : anchor.alternatives) {
    const Anchor* cheapest = nullptr;
    size_t cheapest_cost = SIZE_MAX;
    for (const Anchor& choice : choices) {
      size_t cost = AnchorCost(choice);
      if (cost < cheapest_cost) {
        cheapest_cost = cost;
        cheapest = &choice;
      }
    }
    ChooseKeys(*cheapest, keys);
  }
}

Matcher::Matcher(const std::map<std::string, Pattern>& rules) {
  nodes_.emplace_back();
  rules_.reserve(rules.size());
  for (const auto& [id, pattern] : rules) rules_.push_back({id, pattern});
  // Each rule is filed under the anchor whose values the fewest rules could
  // be filed under: first every rule is put under every anchor it has, to
  // count, then the buckets are emptied and each rule filed once.
  std::vector<std::vector<Anchor>> anchors(rules_.size());
  std::vector<std::string> path;
  for (uint32_t i = 0; i < rules_.size(); ++i) {
    CollectAnchors(rules_[i].pattern.root(), &path, &anchors[i]);
    for (const Anchor& anchor : anchors[i]) FileEverywhere(anchor, i);
  }
  for (PathNode& node : nodes_) {
    for (const auto& [range, bucket] : node.ranges) {
      if (range.first > range.second) continue;
      node.range_lows.insert(node.range_lows.end(), bucket.size(), range.first);
      node.range_highs.insert(node.range_highs.end(), bucket.size(), range.second);
    }
    std::sort(node.range_lows.begin(), node.range_lows.end());
    std::sort(node.range_highs.begin(), node.range_highs.end());
  }
  std::vector<std::vector<Key>> chosen(rules_.size());
  for (uint32_t i = 0; i < rules_.size(); ++i) {
    const Anchor* best = nullptr;
    size_t best_cost = SIZE_MAX;
    for (const Anchor& anchor : anchors[i]) {
      size_t cost = AnchorCost(anchor);
      if (cost < best_cost) {
        best_cost = cost;
        best = &anchor;
      }
    }
    if (best != nullptr) ChooseKeys(*best, &chosen[i]);
  }
  for (PathNode& node : nodes_) {
    for (TextBuckets* map : {&node.strings, &node.folded_strings, &node.prefixes, &node.folded_prefixes,
                             &node.suffixes, &node.folded_suffixes, &node.networks}) {
      for (auto& entry : *map) entry.second.clear();
    }
    for (auto& entry : node.numbers) entry.second.clear();
    for (auto& entry : node.ranges) entry.second.clear();
    for (Bucket* bucket : {&node.trues, &node.falses, &node.nulls, &node.present}) bucket->clear();
    node.range_lows = {};
    node.range_highs = {};
  }
  for (uint32_t i = 0; i < rules_.size(); ++i) {
    if (chosen[i].empty()) {
      always_check_.push_back(i);
      continue;
    }
    // A rule may be filed twice in one bucket (the same value in two $or
    // branches); Match removes duplicate candidates.
    for (const Key& key : chosen[i]) {
      Bucket* bucket = BucketFor(key);
      if (bucket->empty() || bucket->back() != i) bucket->push_back(i);
    }
  }
  // Counting made buckets that stay empty; drop them and note the prefix
  // and suffix lengths and network shapes in use.
  auto drop_empty = [](auto* map) {
    absl::erase_if(*map, [](const auto& entry) { return entry.second.empty(); });
  };
  // The buckets stay where they are from here on: the tries point at them.
  auto trie = [&](TextBuckets* map, internal::TextTrie<const Bucket*>* out,
                  bool reversed) {
    drop_empty(map);
    for (const auto& [text, bucket] : *map) out->Insert(text, &bucket, reversed);
  };
  // Children come after their parents, so one backward pass finds the
  // paths that lead to no bucket; the event walk skips them.
  std::vector<bool> useful(nodes_.size(), false);
  for (size_t n = nodes_.size(); n-- > 0;) {
    PathNode& node = nodes_[n];
    drop_empty(&node.strings);
    drop_empty(&node.folded_strings);
    drop_empty(&node.numbers);
    trie(&node.prefixes, &node.prefix_trie, false);
    trie(&node.folded_prefixes, &node.folded_prefix_trie, false);
    trie(&node.suffixes, &node.suffix_trie, true);
    trie(&node.folded_suffixes, &node.folded_suffix_trie, true);
    std::vector<internal::IntervalIndex::Interval> intervals;
    for (const auto& [range, bucket] : node.ranges) {
      for (uint32_t rule : bucket) intervals.push_back({range.first, range.second, rule});
    }
    node.ranges = {};
    node.range_index = internal::IntervalIndex(intervals);
    drop_empty(&node.networks);
    for (const auto& [key, bucket] : node.networks) {
      node.network_shapes.emplace_back(key.size() - 1, static_cast<uint8_t>(key[0]));
    }
    std::sort(node.network_shapes.begin(), node.network_shapes.end());
    node.network_shapes.erase(std::unique(node.network_shapes.begin(), node.network_shapes.end()),
                              node.network_shapes.end());
    absl::erase_if(node.children, [&](const auto& entry) { return !useful[entry.second]; });
    node.child_list.assign(node.children.begin(), node.children.end());
    useful[n] = !node.children.empty() || !node.strings.empty() || !node.folded_strings.empty() ||
                !node.numbers.empty() || !node.prefixes.empty() || !node.folded_prefixes.empty() ||
                !node.suffixes.empty() || !node.folded_suffixes.empty() || !node.range_index.empty() ||
                !node.networks.empty() || !node.trues.empty() || !node.falses.empty() ||
                !node.nulls.empty() || !node.present.empty();
  }
}

void Matcher::Lookup(const PathNode& node, const json::Value& leaf,
                     std::vector<uint32_t>* candidates) const {
  auto add = [&](const Bucket& bucket) {
    candidates->insert(candidates->end(), bucket.begin(), bucket.end());
  };
  auto add_found = [&](const auto& map, const auto& key) {
    auto it = map.find(key);
    if (it != map.end()) add(it->second);
  };
  // The buckets of the prefixes or suffixes `text` starts or ends with.
  auto add_bucket = [&](const Bucket* bucket) { add(*bucket); };
  auto add_prefixes = [&](const internal::TextTrie<const Bucket*>& trie,
                          absl::string_view text) {
    if (!trie.empty()) trie.ForEachPrefixOf(text, add_bucket);
  };
  auto add_suffixes = [&](const internal::TextTrie<const Bucket*>& trie,
                          absl::string_view text) {
    if (!trie.empty()) trie.ForEachSuffixOf(text, add_bucket);
  };
  if (!node.present.empty()) add(node.present);
  if (leaf.IsString()) {
    absl::string_view text(leaf.GetString(), leaf.GetStringLength());
    if (!node.strings.empty()) add_found(node.strings, text);
    add_prefixes(node.prefix_trie, text);
    add_suffixes(node.suffix_trie, text);
    if (!node.folded_strings.empty() || !node.folded_prefixes.empty() || !node.folded_suffixes.empty()) {
      std::string folded = internal::Lower(text);
      if (!node.folded_strings.empty()) add_found(node.folded_strings, folded);
      add_prefixes(node.folded_prefix_trie, folded);
      add_suffixes(node.folded_suffix_trie, folded);
    }
    internal::IpAddress address;
    if (!node.network_shapes.empty() && internal::ParseIpAddress(text, &address)) {
      char key[1 + sizeof(address.bytes)];  // as NetworkKey makes it
      for (const auto& [size, bits] : node.network_shapes) {
        if (size != address.size) continue;
        key[0] = static_cast<char>(bits);
        std::memcpy(key + 1, address.bytes.data(), size);
        internal::MaskAddress(reinterpret_cast<uint8_t*>(key + 1), size, bits);
        add_found(node.networks, absl::string_view(key, 1 + size));
      }
    }
  } else if (leaf.IsNumber()) {
    double value = leaf.GetDouble();
    if ((!node.numbers.empty() || !node.range_index.empty()) && internal::InNumericRange(value)) {
      int64_t scaled = internal::ScaledNumber(value);
      if (!node.numbers.empty()) add_found(node.numbers, scaled);
      node.range_index.Stab(scaled, candidates);
    }
  } else if (leaf.IsTrue()) {
    add(node.trues);
  } else if (leaf.IsFalse()) {
    add(node.falses);
  } else if (leaf.IsNull()) {
    add(node.nulls);
  }
}

void Matcher::Walk(uint32_t node_index, const json::Value& value,
                   std::vector<uint32_t>* candidates, bool* dotted) const {
  const PathNode& node = nodes_[node_index];
  if (value.IsArray()) {
    for (const json::Value& element : value.GetArray()) {
      Walk(node_index, element, candidates, dotted);
    }
  } else if (value.IsObject()) {
    if (node.child_list.empty()) return;
    // A dotted name here ("a.b") stands for nested fields that only the
    // event's nested form shows: the caller walks that instead.
    if (internal::HasDottedName(value)) {
      *dotted = true;
      return;
    }
    const bool scan = node.child_list.size() <= kScanLimit;
    for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
      absl::string_view name(it->name.GetString(), it->name.GetStringLength());
      if (scan) {
        for (const auto& [key, child] : node.child_list) {
          if (key == name) {
            Walk(child, it->value, candidates, dotted);
            break;
          }
        }
      } else if (auto child = node.children.find(name); child != node.children.end()) {
        Walk(child->second, it->value, candidates, dotted);
      }
    }
  } else {
    Lookup(node, value, candidates);
  }
}

std::vector<uint32_t> Matcher::Candidates(const json::Value& event, bool* dotted) const {
  std::vector<uint32_t> candidates = always_check_;
  Walk(0, event, &candidates, dotted);
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  return candidates;
}

size_t Matcher::CandidateCount(const json::Value& event) const {
  if (!event.IsObject()) return 0;
  bool dotted = false;
  std::vector<uint32_t> candidates = Candidates(event, &dotted);
  if (!dotted) return candidates.size();
  json::Document scratch;
  json::Value nested = internal::ExpandDottedKeys(event, scratch.GetAllocator());
  return Candidates(nested, &dotted).size();
}

std::vector<std::string> Matcher::Match(const json::Value& event) const {
  std::vector<std::string> ids;
  if (!event.IsObject()) return ids;
  bool dotted = false;
  std::vector<uint32_t> candidates = Candidates(event, &dotted);
  if (dotted) {
    // The index walks nested keys: match the event's nested form.
    json::Document scratch;
    json::Value nested = internal::ExpandDottedKeys(event, scratch.GetAllocator());
    return Match(nested);
  }
  // Rules are stored in id order, so ascending indexes give ascending ids.
  for (uint32_t index : candidates) {
    if (rules_[index].pattern.Matches(event)) ids.push_back(rules_[index].id);
  }
  return ids;
}

absl::Status RuleSet::Add(const std::string& rule_id, absl::string_view pattern_text) {
  ASSIGN_OR_RETURN(Pattern pattern, Pattern::Parse(pattern_text));
  Add(rule_id, std::move(pattern));
  return absl::OkStatus();
}

void RuleSet::Add(const std::string& rule_id, Pattern pattern) {
  absl::MutexLock lock(&mu_);
  rules_.insert_or_assign(rule_id, std::move(pattern));
  snapshot_.reset();
}

bool RuleSet::Remove(const std::string& rule_id) {
  absl::MutexLock lock(&mu_);
  if (rules_.erase(rule_id) == 0) return false;
  snapshot_.reset();
  return true;
}

std::shared_ptr<const Matcher> RuleSet::Snapshot() {
  absl::MutexLock lock(&mu_);
  if (snapshot_ == nullptr) snapshot_ = std::make_shared<const Matcher>(rules_);
  return snapshot_;
}

absl::StatusOr<std::vector<std::string>> RuleSet::Match(absl::string_view event_text) {
  ASSIGN_OR_RETURN(json::Document event, json::Parse(event_text));
  return Match(event);
}

}  // namespace stepflow::patterns
