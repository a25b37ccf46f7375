#include "common/patterns/rule_set.h"

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace stepflow::patterns {
namespace {


TEST(RuleSetTest, AddRemoveMatch) {
  RuleSet rules;
  ASSERT_TRUE(rules.Add("a", R"({"source": ["shop"]})").ok());
  ASSERT_TRUE(rules.Add("b", R"({"detail": {"total": [{"numeric": [">", 100]}]}})").ok());
  ASSERT_TRUE(rules.Add("c", R"({"source": [{"prefix": "sh"}], "detail": {"tier": ["gold"]}})").ok());
  EXPECT_FALSE(rules.Add("d", R"({"source": "shop"})").ok());
  const std::string event = R"({"source": "shop", "detail": {"total": 150, "tier": "gold"}})";
  EXPECT_EQ(*rules.Match(absl::string_view(event)), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(rules.Remove("b"));
  EXPECT_FALSE(rules.Remove("b"));
  EXPECT_EQ(*rules.Match(absl::string_view(event)), (std::vector<std::string>{"a", "c"}));
  ASSERT_TRUE(rules.Add("a", R"({"source": ["other"]})").ok());
  EXPECT_EQ(*rules.Match(absl::string_view(event)), (std::vector<std::string>{"c"}));
  EXPECT_FALSE(rules.Match(absl::string_view("{bad")).ok());
}

TEST(RuleSetTest, SnapshotsAreIndependentOfLaterEdits) {
  RuleSet rules;
  ASSERT_TRUE(rules.Add("a", R"({"source": ["shop"]})").ok());
  std::shared_ptr<const Matcher> before = rules.Snapshot();
  ASSERT_TRUE(rules.Remove("a"));
  absl::StatusOr<json::Document> event = json::Parse(R"({"source": "shop"})");
  ASSERT_TRUE(event.ok());
  EXPECT_EQ(before->Match(*event).size(), 1u);
  EXPECT_TRUE(rules.Match(*event).empty());
}

TEST(RuleSetTest, ConcurrentReadersAndWriters) {
  RuleSet rules;
  absl::StatusOr<json::Document> event = json::Parse(R"({"source": "shop", "n": 3})");
  ASSERT_TRUE(event.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if (t == 0) {
          ASSERT_TRUE(rules.Add(absl::StrCat("r", i), R"({"source": ["shop"]})").ok());
        } else {
          for (const std::string& id : rules.Match(*event)) ASSERT_EQ(id[0], 'r');
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(rules.Match(*event).size(), 200u);
}

// Random patterns and events over a small vocabulary, so that many match.
class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  std::string Pattern() {
    std::string out = "{" + Fields(2, 1 + Pick(3));
    if (Pick(6) == 0) {
      out += ", \"$or\": [{" + Fields(1, 1 + Pick(2)) + "}, {" + Fields(1, 1 + Pick(2)) + "}]";
    }
    return out + "}";
  }

  std::string Event() {
    std::string out = "{";
    bool first = true;
    for (const char* key : {"source", "kind", "n", "ip", "flag"}) {
      if (Pick(5) == 0) continue;
      absl::StrAppend(&out, first ? "" : ", ", "\"", key, "\": ", EventValue());
      first = false;
    }
    absl::StrAppend(&out, first ? "" : ", ", "\"detail\": ");
    if (Pick(4) == 0) {
      absl::StrAppend(&out, "[", EventObject(), ", ", EventObject(), "]");
    } else {
      absl::StrAppend(&out, EventObject());
    }
    return out + "}";
  }

 private:
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  std::string Word() {
    static const char* kWords[] = {"shop", "Shop", "shipping", "alpha", "beta", "", "sh", "10.0.0.7", "a.png"};
    return absl::StrCat("\"", kWords[Pick(9)], "\"");
  }

  std::string EventValue() {
    switch (Pick(7)) {
      case 0: return absl::StrCat(Pick(20) - 5);
      case 1: return absl::StrCat(Pick(20), ".5");
      case 2: return Pick(2) ? "true" : "false";
      case 3: return "null";
      case 4: return absl::StrCat("[", Word(), ", ", Pick(10), "]");
      default: return Word();
    }
  }

  std::string EventObject() {
    std::string out = "{";
    bool first = true;
    for (const char* key : {"source", "kind", "n", "ip", "flag"}) {
      if (Pick(3) == 0) continue;
      absl::StrAppend(&out, first ? "" : ", ", "\"", key, "\": ", EventValue());
      first = false;
    }
    return out + "}";
  }

  std::string Condition() {
    switch (Pick(16)) {
      case 0: return absl::StrCat("{\"prefix\": ", Word(), "}");
      case 1: return absl::StrCat("{\"prefix\": {\"equals-ignore-case\": ", Word(), "}}");
      case 2: return absl::StrCat("{\"suffix\": ", Word(), "}");
      case 3: return absl::StrCat("{\"equals-ignore-case\": ", Word(), "}");
      case 4: return absl::StrCat("{\"anything-but\": ", Word(), "}");
      case 5: return absl::StrCat("{\"anything-but\": [", Pick(10), ", ", Pick(10), "]}");
      case 6: return "{\"anything-but\": {\"prefix\": \"sh\"}}";
      case 7: return absl::StrCat("{\"numeric\": [\">\", ", Pick(10) - 3, ", \"<=\", ", 10 + Pick(10), "]}");
      case 8: return absl::StrCat("{\"exists\": ", Pick(2) ? "true" : "false", "}");
      case 9: return "{\"cidr\": \"10.0.0.0/24\"}";
      case 10: return "{\"wildcard\": \"s*p\"}";
      case 11: return absl::StrCat(Pick(20) - 5);
      case 12: return Pick(2) ? "true" : "null";
      default: return Word();
    }
  }

  std::string Fields(int depth, int count) {
    static const char* kKeys[] = {"source", "kind", "n", "ip", "flag"};
    std::vector<int> keys = {0, 1, 2, 3, 4};
    std::shuffle(keys.begin(), keys.end(), rng_);
    std::string out;
    for (int i = 0; i < count; ++i) {
      absl::StrAppend(&out, i ? ", " : "", "\"", kKeys[keys[i]], "\": [", Condition());
      if (Pick(3) == 0) absl::StrAppend(&out, ", ", Condition());
      out += "]";
    }
    if (depth > 1 && Pick(2) == 0) absl::StrAppend(&out, ", \"detail\": {", Fields(depth - 1, 1 + Pick(2)), "}");
    return out;
  }

  std::mt19937 rng_;
};

TEST(RuleSetTest, MatchesLikeEachPatternAlone) {
  Generator generator(20261125);
  RuleSet rules;
  std::vector<std::pair<std::string, Pattern>> all;
  for (int i = 0; i < 3000; ++i) {
    std::string text = generator.Pattern();
    absl::StatusOr<Pattern> pattern = Pattern::Parse(text);
    ASSERT_TRUE(pattern.ok()) << text << ": " << pattern.status();
    std::string id = absl::StrCat("rule-", 10000 + i);
    rules.Add(id, *pattern);
    all.emplace_back(id, *pattern);
  }
  std::shared_ptr<const Matcher> matcher = rules.Snapshot();
  EXPECT_LT(matcher->unindexed_rule_count(), matcher->rule_count());
  size_t total_hits = 0;
  for (int e = 0; e < 2000; ++e) {
    std::string text = generator.Event();
    absl::StatusOr<json::Document> event = json::Parse(text);
    ASSERT_TRUE(event.ok()) << text;
    std::vector<std::string> expected;
    for (const auto& [id, pattern] : all) {
      if (pattern.Matches(*event)) expected.push_back(id);
    }
    ASSERT_EQ(matcher->Match(*event), expected) << text;
    total_hits += expected.size();
  }
  // The vocabulary is small enough that the comparison is not vacuous.
  EXPECT_GT(total_hits, 2000u);
}

}  // namespace
}  // namespace stepflow::patterns
