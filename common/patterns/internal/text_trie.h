// TextTrie: the values stored under every key that a text starts with (or,
// built reversed, ends with), found in one pass over the text's bytes
// instead of one hash lookup per key length. The rule index files prefix
// and suffix conditions in it.
//
//   TextTrie<const Bucket*> prefixes;
//   prefixes.Insert("SKU-17-", &bucket, /*reversed=*/false);
//   prefixes.ForEachPrefixOf("SKU-17-A", [&](const Bucket* b) { ... });
//
// Thread-safety: const methods may be called concurrently; Insert needs
// external synchronisation.
#ifndef STEPFLOW_COMMON_PATTERNS_INTERNAL_TEXT_TRIE_H_
#define STEPFLOW_COMMON_PATTERNS_INTERNAL_TEXT_TRIE_H_

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace stepflow::patterns::internal {

template <typename T>
class TextTrie {
 public:
  bool empty() const { return nodes_.size() <= 1 && !nodes_[0].has_value; }

  // Stores `value` under `key` (read back to front when `reversed`),
  // replacing the value stored there before.
  void Insert(absl::string_view key, T value, bool reversed) {
    uint32_t at = 0;
    for (size_t i = 0; i < key.size(); ++i) {
      const unsigned char byte =
          static_cast<unsigned char>(reversed ? key[key.size() - 1 - i] : key[i]);
      std::vector<Edge>& edges = nodes_[at].edges;
      auto edge = std::lower_bound(edges.begin(), edges.end(), byte,
                                   [](const Edge& e, unsigned char b) { return e.first < b; });
      if (edge != edges.end() && edge->first == byte) {
        at = edge->second;
        continue;
      }
      const uint32_t child = static_cast<uint32_t>(nodes_.size());
      edges.insert(edge, {byte, child});
      nodes_.emplace_back();  // invalidates `edges`, no longer used
      at = child;
    }
    nodes_[at].value = std::move(value);
    nodes_[at].has_value = true;
  }

  // Calls `f(value)` for each key that `text` starts with, shortest first.
  template <typename F>
  void ForEachPrefixOf(absl::string_view text, F&& f) const {
    Walk(text, false, f);
  }
  // Calls `f(value)` for each key of a reversed trie that `text` ends with,
  // shortest first.
  template <typename F>
  void ForEachSuffixOf(absl::string_view text, F&& f) const {
    Walk(text, true, f);
  }

 private:
  using Edge = std::pair<unsigned char, uint32_t>;
  struct Node {
    std::vector<Edge> edges;  // sorted by byte
    T value{};
    bool has_value = false;
  };

  template <typename F>
  void Walk(absl::string_view text, bool reversed, F& f) const {
    uint32_t at = 0;
    if (nodes_[0].has_value) f(nodes_[0].value);
    for (size_t i = 0; i < text.size(); ++i) {
      const unsigned char byte =
          static_cast<unsigned char>(reversed ? text[text.size() - 1 - i] : text[i]);
      const std::vector<Edge>& edges = nodes_[at].edges;
      auto edge = std::lower_bound(edges.begin(), edges.end(), byte,
                                   [](const Edge& e, unsigned char b) { return e.first < b; });
      if (edge == edges.end() || edge->first != byte) return;
      at = edge->second;
      if (nodes_[at].has_value) f(nodes_[at].value);
    }
  }

  std::vector<Node> nodes_ = std::vector<Node>(1);  // nodes_[0]: the empty key
};

}  // namespace stepflow::patterns::internal

#endif  // STEPFLOW_COMMON_PATTERNS_INTERNAL_TEXT_TRIE_H_
