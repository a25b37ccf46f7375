#include "common/patterns/internal/text_trie.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::patterns::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<int> Prefixes(const TextTrie<int>& trie, const std::string& text) {
  std::vector<int> found;
  trie.ForEachPrefixOf(text, [&](int value) { found.push_back(value); });
  return found;
}

std::vector<int> Suffixes(const TextTrie<int>& trie, const std::string& text) {
  std::vector<int> found;
  trie.ForEachSuffixOf(text, [&](int value) { found.push_back(value); });
  return found;
}

TEST(TextTrieTest, EveryKeyATextStartsWithShortestFirst) {
  TextTrie<int> trie;
  EXPECT_TRUE(trie.empty());
  trie.Insert("SKU-1", 1, false);
  trie.Insert("SKU-17-", 2, false);
  trie.Insert("SKU-17-A", 3, false);
  trie.Insert("SKU-2", 4, false);
  trie.Insert("SKU-1", 5, false);  // replaces 1
  EXPECT_FALSE(trie.empty());
  EXPECT_THAT(Prefixes(trie, "SKU-17-A"), ElementsAre(5, 2, 3));
  EXPECT_THAT(Prefixes(trie, "SKU-17-B"), ElementsAre(5, 2));
  EXPECT_THAT(Prefixes(trie, "SKU-1"), ElementsAre(5));
  EXPECT_THAT(Prefixes(trie, "SKU-"), IsEmpty());
  EXPECT_THAT(Prefixes(trie, "sku-1"), IsEmpty());
  EXPECT_THAT(Prefixes(trie, ""), IsEmpty());
}

TEST(TextTrieTest, EmptyKeyAndBytesAbove127) {
  TextTrie<int> trie;
  trie.Insert("", 7, false);
  EXPECT_FALSE(trie.empty());
  trie.Insert("\xc3\xa9t\xc3\xa9", 8, false);  // "été" in UTF-8
  EXPECT_THAT(Prefixes(trie, "anything"), ElementsAre(7));
  EXPECT_THAT(Prefixes(trie, "\xc3\xa9t\xc3\xa9s"), ElementsAre(7, 8));
}

TEST(TextTrieTest, ReversedKeysAreSuffixes) {
  TextTrie<int> trie;
  trie.Insert(".png", 1, true);
  trie.Insert("image.png", 2, true);
  trie.Insert("g", 3, true);
  EXPECT_THAT(Suffixes(trie, "my-image.png"), ElementsAre(3, 1, 2));
  EXPECT_THAT(Suffixes(trie, "photo.png"), ElementsAre(3, 1));
  EXPECT_THAT(Suffixes(trie, "photo.jpg"), ElementsAre(3));
  EXPECT_THAT(Suffixes(trie, "png"), ElementsAre(3));
}

}  // namespace
}  // namespace stepflow::patterns::internal
