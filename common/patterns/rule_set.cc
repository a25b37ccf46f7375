#include "common/patterns/rule_set.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"

#include "common/patterns/internal/text.h"
#include "common/status/status_macros.h"

namespace stepflow::patterns {

using Kind = Condition::Kind;

namespace {

// Up to this many children, a linear scan beats hashing the event's keys.
constexpr size_t kScanLimit = 8;

bool Indexable(const Condition& condition) {
  switch (condition.kind) {
    case Kind::kString:
    case Kind::kTrue:
    case Kind::kFalse:
    case Kind::kNull:
    case Kind::kPrefix:
    case Kind::kPrefixIgnoreCase:
    case Kind::kEqualsIgnoreCase:
      return true;
    case Kind::kNumber:
      return internal::InNumericRange(condition.number);
    default:
      return false;
  }
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
    case Kind::kTrue:
      return &node.trues;
    case Kind::kFalse:
      return &node.falses;
    default:
      return &node.nulls;
  }
}

// Lists the ways to file a rule: each is a list of index keys of which any
// match must hit one. A field of `node` (or of its nested objects) whose
// conditions are all indexable gives one; a $or group gives one when every
// alternative does (the union of one list per alternative).
void Matcher::CollectAnchors(const PatternNode& node, std::vector<std::string>* path,
                             std::vector<std::vector<Key>>* anchors) {
  for (const PatternNode::Field& field : node.fields) {
    path->push_back(field.key);
    if (field.child) {
      CollectAnchors(*field.child, path, anchors);
    } else if (std::all_of(field.conditions.begin(), field.conditions.end(), Indexable)) {
      uint32_t index_node = NodeFor(*path);
      std::vector<Key> keys;
      for (const Condition& condition : field.conditions) keys.push_back({index_node, &condition});
      anchors->push_back(std::move(keys));
    }
    path->pop_back();
  }
  for (const std::vector<PatternNode>& group : node.or_groups) {
    std::vector<Key> keys;
    bool every_alternative = true;
    for (const PatternNode& alternative : group) {
      std::vector<std::vector<Key>> choices;
      CollectAnchors(alternative, path, &choices);
      if (choices.empty()) {
        every_alternative = false;
        break;
      }
      auto fewest = std::min_element(choices.begin(), choices.end(),
                                     [](const auto& a, const auto& b) { return a.size() < b.size(); });
      keys.insert(keys.end(), fewest->begin(), fewest->end());
    }
    if (every_alternative) anchors->push_back(std::move(keys));
  }
}

Matcher::Matcher(const std::map<std::string, Pattern>& rules) {
  nodes_.emplace_back();
  rules_.reserve(rules.size());
  for (const auto& [id, pattern] : rules) rules_.push_back({id, pattern});
  // Each rule is filed under the anchor whose values the fewest rules could
  // be filed under: first every rule is put under every anchor it has, to
  // count, then the buckets are emptied and each rule filed once.
  std::vector<std::vector<std::vector<Key>>> anchors(rules_.size());
  std::vector<std::string> path;
  for (uint32_t i = 0; i < rules_.size(); ++i) {
    CollectAnchors(rules_[i].pattern.root(), &path, &anchors[i]);
    for (const std::vector<Key>& keys : anchors[i]) {
      for (const Key& key : keys) BucketFor(key)->push_back(i);
    }
  }
  std::vector<size_t> chosen(rules_.size(), 0);
  for (uint32_t i = 0; i < rules_.size(); ++i) {
    size_t best_cost = SIZE_MAX;
    for (size_t a = 0; a < anchors[i].size(); ++a) {
      size_t cost = 0;
      for (const Key& key : anchors[i][a]) cost += BucketFor(key)->size();
      if (cost < best_cost) {
        best_cost = cost;
        chosen[i] = a;
      }
    }
  }
  for (PathNode& node : nodes_) {
    for (auto* map : {&node.strings, &node.folded_strings, &node.prefixes, &node.folded_prefixes}) {
      for (auto& entry : *map) entry.second.clear();
    }
    for (auto& entry : node.numbers) entry.second.clear();
    node.trues.clear();
    node.falses.clear();
    node.nulls.clear();
  }
  for (uint32_t i = 0; i < rules_.size(); ++i) {
    if (anchors[i].empty()) {
      always_check_.push_back(i);
      continue;
    }
    // A rule may be filed twice in one bucket (the same value in two $or
    // branches); Match removes duplicate candidates.
    for (const Key& key : anchors[i][chosen[i]]) {
      Bucket* bucket = BucketFor(key);
      if (bucket->empty() || bucket->back() != i) bucket->push_back(i);
    }
  }
  // Counting made buckets that stay empty; drop them and note the prefix
  // lengths in use.
  auto lengths = [](absl::flat_hash_map<std::string, Bucket>* map, std::vector<size_t>* out) {
    absl::erase_if(*map, [](const auto& entry) { return entry.second.empty(); });
    for (const auto& [prefix, bucket] : *map) out->push_back(prefix.size());
    std::sort(out->begin(), out->end());
    out->erase(std::unique(out->begin(), out->end()), out->end());
  };
  // Children come after their parents, so one backward pass finds the
  // paths that lead to no bucket; the event walk skips them.
  std::vector<bool> useful(nodes_.size(), false);
  for (size_t n = nodes_.size(); n-- > 0;) {
    PathNode& node = nodes_[n];
    absl::erase_if(node.strings, [](const auto& entry) { return entry.second.empty(); });
    absl::erase_if(node.folded_strings, [](const auto& entry) { return entry.second.empty(); });
    absl::erase_if(node.numbers, [](const auto& entry) { return entry.second.empty(); });
    lengths(&node.prefixes, &node.prefix_lengths);
    lengths(&node.folded_prefixes, &node.folded_prefix_lengths);
    absl::erase_if(node.children, [&](const auto& entry) { return !useful[entry.second]; });
    node.child_list.assign(node.children.begin(), node.children.end());
    useful[n] = !node.children.empty() || !node.strings.empty() || !node.folded_strings.empty() ||
                !node.numbers.empty() || !node.prefixes.empty() || !node.folded_prefixes.empty() ||
                !node.trues.empty() || !node.falses.empty() || !node.nulls.empty();
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
  if (leaf.IsString()) {
    absl::string_view text(leaf.GetString(), leaf.GetStringLength());
    if (!node.strings.empty()) add_found(node.strings, text);
    for (size_t length : node.prefix_lengths) {
      if (length > text.size()) break;
      add_found(node.prefixes, text.substr(0, length));
    }
    if (!node.folded_strings.empty() || !node.folded_prefixes.empty()) {
      std::string folded = internal::Lower(text);
      if (!node.folded_strings.empty()) add_found(node.folded_strings, folded);
      for (size_t length : node.folded_prefix_lengths) {
        if (length > folded.size()) break;
        add_found(node.folded_prefixes, absl::string_view(folded).substr(0, length));
      }
    }
  } else if (leaf.IsNumber()) {
    double value = leaf.GetDouble();
    if (!node.numbers.empty() && internal::InNumericRange(value)) {
      add_found(node.numbers, internal::ScaledNumber(value));
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
                   std::vector<uint32_t>* candidates) const {
  const PathNode& node = nodes_[node_index];
  if (value.IsArray()) {
    for (const json::Value& element : value.GetArray()) Walk(node_index, element, candidates);
  } else if (value.IsObject()) {
    if (node.child_list.empty()) return;
    const bool scan = node.child_list.size() <= kScanLimit;
    for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
      absl::string_view name(it->name.GetString(), it->name.GetStringLength());
      if (scan) {
        for (const auto& [key, child] : node.child_list) {
          if (key == name) {
            Walk(child, it->value, candidates);
            break;
          }
        }
      } else if (auto child = node.children.find(name); child != node.children.end()) {
        Walk(child->second, it->value, candidates);
      }
    }
  } else {
    Lookup(node, value, candidates);
  }
}

std::vector<uint32_t> Matcher::Candidates(const json::Value& event) const {
  std::vector<uint32_t> candidates = always_check_;
  Walk(0, event, &candidates);
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  return candidates;
}

size_t Matcher::CandidateCount(const json::Value& event) const {
  return event.IsObject() ? Candidates(event).size() : 0;
}

std::vector<std::string> Matcher::Match(const json::Value& event) const {
  std::vector<std::string> ids;
  if (!event.IsObject()) return ids;
  // Rules are stored in id order, so ascending indexes give ascending ids.
  for (uint32_t index : Candidates(event)) {
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
