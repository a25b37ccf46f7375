#include "common/patterns/rule_set.h"

#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/patterns/internal/interval_index.h"
#include "gtest/gtest.h"

namespace stepflow::patterns {
namespace {

// The index walks nested keys; dotted keys on either side are nested too.
TEST(RuleSetTest, DottedKeysMatchTheirNestedForm) {
  RuleSet rules;
  ASSERT_TRUE(rules.Add("dotted", R"({"detail": {"state.status": ["running"]}})").ok());
  ASSERT_TRUE(rules.Add("nested", R"({"detail": {"state": {"status": ["running"]}}})").ok());
  EXPECT_EQ(*rules.Match(absl::string_view(R"({"detail": {"state": {"status": "running"}}})")),
            (std::vector<std::string>{"dotted", "nested"}));
  EXPECT_EQ(*rules.Match(absl::string_view(R"({"detail": {"state.status": "running"}})")),
            (std::vector<std::string>{"dotted", "nested"}));
  EXPECT_TRUE(rules.Match(absl::string_view(R"({"detail": {"state.status": "stopped"}})"))->empty());
}

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

// What comparing a compiled bus with each of its patterns alone found.
struct Comparison {
  size_t rules = 0;
  size_t hits = 0;
  size_t candidates = 0;
  std::shared_ptr<const Matcher> matcher;
};

// Compiles `patterns` generated rules (skipping texts that do not parse
// when `skip_invalid`) and checks Match against each Pattern alone on
// `events` generated events; adds a test failure at the first difference.
template <typename RuleGenerator>
Comparison CompareWithEachPatternAlone(RuleGenerator& generator, int patterns, int events,
                                       bool skip_invalid) {
  Comparison result;
  RuleSet rules;
  std::vector<std::pair<std::string, Pattern>> all;
  for (int i = 0; i < patterns; ++i) {
    std::string text = generator.Pattern();
    absl::StatusOr<Pattern> pattern = Pattern::Parse(text);
    if (!pattern.ok()) {
      EXPECT_TRUE(skip_invalid) << text << ": " << pattern.status();
      continue;
    }
    std::string id = absl::StrCat("rule-", 10000 + i);
    rules.Add(id, *pattern);
    all.emplace_back(id, *pattern);
  }
  result.rules = all.size();
  result.matcher = rules.Snapshot();
  for (int e = 0; e < events; ++e) {
    std::string text = generator.Event();
    absl::StatusOr<json::Document> event = json::Parse(text);
    EXPECT_TRUE(event.ok()) << text;
    if (!event.ok()) return result;
    std::vector<std::string> expected;
    for (const auto& [id, pattern] : all) {
      if (pattern.Matches(*event)) expected.push_back(id);
    }
    std::vector<std::string> matched = result.matcher->Match(*event);
    EXPECT_EQ(matched, expected) << text;
    if (matched != expected) return result;
    result.hits += expected.size();
    result.candidates += result.matcher->CandidateCount(*event);
  }
  return result;
}

TEST(RuleSetTest, MatchesLikeEachPatternAlone) {
  Generator generator(20261125);
  Comparison compared = CompareWithEachPatternAlone(generator, 3000, 2000, /*skip_invalid=*/false);
  EXPECT_LT(compared.matcher->unindexed_rule_count(), compared.matcher->rule_count());
  // The vocabulary is small enough that the comparison is not vacuous.
  EXPECT_GT(compared.hits, 2000u);
}

// Patterns made of every kind of condition, with values chosen near one
// another (range bounds on the event's numbers, suffixes and wildcards
// sharing text, networks holding the event's addresses) so the index's
// edges are exercised.
class AllKindsGenerator {
 public:
  explicit AllKindsGenerator(uint32_t seed) : rng_(seed) {}

  std::string Pattern() {
    std::string out = "{" + Fields(2, 1 + Pick(2));
    if (Pick(5) == 0) {
      out += ", \"$or\": [{" + Fields(1, 1) + "}, {" + Fields(2, 1 + Pick(2)) + "}]";
    }
    return out + "}";
  }

  std::string Event() {
    std::string out = "{" + EventFields();
    if (Pick(3) == 0) {
      absl::StrAppend(&out, ", \"detail\": [{", EventFields(), "}, {", EventFields(), "}]");
    } else if (Pick(4) != 0) {
      absl::StrAppend(&out, ", \"detail\": {", EventFields(), "}");
    } else if (Pick(2) == 0) {
      absl::StrAppend(&out, ", \"detail\": ", EventValue());
    }
    return out + "}";
  }

 private:
  static constexpr const char* kKeys[] = {"s", "n", "ip", "x"};

  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  std::string Text() {
    static const char* kTexts[] = {"a.png", "A.PNG", "b.png", "png", "ng", "", "*", "a*b", "ab", "axb",
                                   "logo.jpg", "LOGO", "lo", "10.0.0.7", "10.0.1.7", "192.168.7.9",
                                   "2001:db8::1", "2001:DB8:0:1::5", "::", "10.0.0.256"};
    return kTexts[Pick(20)];
  }

  std::string Number() {
    static const char* kNumbers[] = {"0", "-1", "1", "2.5", "2.500001", "2.4999999", "3", "-7.25", "100",
                                     "1e10", "-5000000000", "5000000000", "0.1", "0.3"};
    return kNumbers[Pick(14)];
  }

  std::string Wildcard() {
    static const char* kWildcards[] = {"*.png", "a*", "a*.png", "*", "a*b*", "*b", "lo*o*", "a\\\\*b",
                                       "10.0.*", "*g", "ab", "*n*"};
    return kWildcards[Pick(12)];
  }

  std::string Network() {
    static const char* kNetworks[] = {"10.0.0.0/24", "10.0.0.0/8", "10.0.1.6/31", "0.0.0.0/0", "10.0.0.0/23",
                                      "192.168.0.0/16", "2001:db8::/32", "2001:db8::/64", "::/0",
                                      "2001:db8::/127"};
    return kNetworks[Pick(10)];
  }

  std::string Range() {
    static const char* kOps[] = {">", ">=", "<", "<="};
    if (Pick(5) == 0) return absl::StrCat("[\"=\", ", Number() == "1e10" ? "1" : Number(), "]");
    double a = std::stod(Number()), b = std::stod(Number());
    if (a > 5e9 || a < -5e9) a = 2.5;
    if (b > 5e9 || b < -5e9) b = 3;
    if (a > b) std::swap(a, b);
    if (Pick(3) == 0 || a == b) return absl::StrCat("[\"", kOps[Pick(4)], "\", ", a, "]");
    return absl::StrCat("[\"", kOps[Pick(2)], "\", ", a, ", \"", kOps[2 + Pick(2)], "\", ", b, "]");
  }

  std::string Condition() {
    switch (Pick(17)) {
      case 0: return absl::StrCat("{\"numeric\": ", Range(), "}");
      case 1: return absl::StrCat("{\"numeric\": ", Range(), "}");
      case 2: return absl::StrCat("{\"suffix\": \"", Text(), "\"}");
      case 3: return absl::StrCat("{\"suffix\": {\"equals-ignore-case\": \"", Text(), "\"}}");
      case 4: return absl::StrCat("{\"wildcard\": \"", Wildcard(), "\"}");
      case 5: return absl::StrCat("{\"wildcard\": \"", Wildcard(), "\"}");
      case 6: return absl::StrCat("{\"exists\": ", Pick(3) ? "true" : "false", "}");
      case 7: return absl::StrCat("{\"cidr\": \"", Network(), "\"}");
      case 8: return absl::StrCat("{\"cidr\": \"", Network(), "\"}");
      case 9: return absl::StrCat("{\"prefix\": \"", Text(), "\"}");
      case 10: return absl::StrCat("{\"prefix\": {\"equals-ignore-case\": \"", Text(), "\"}}");
      case 11: return absl::StrCat("{\"equals-ignore-case\": \"", Text(), "\"}");
      case 12: {
        // All strings or all numbers: EventBridge refuses a mixed list.
        if (Pick(2) == 0) return absl::StrCat("{\"anything-but\": [\"", Text(), "\", \"", Text(), "\"]}");
        std::string first = Number(), second = Number();
        return absl::StrCat("{\"anything-but\": [", first == "1e10" ? "7" : first, ", ",
                            second == "1e10" ? "7" : second, "]}");
      }
      case 13: return absl::StrCat("{\"anything-but\": {\"suffix\": \"png\"}}");
      case 14: return Number();
      case 15: return Pick(3) == 0 ? "true" : (Pick(2) ? "false" : "null");
      default: return absl::StrCat("\"", Text(), "\"");
    }
  }

  std::string Fields(int depth, int count) {
    std::vector<int> keys = {0, 1, 2, 3};
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

  std::string EventValue() {
    switch (Pick(9)) {
      case 0:
      case 1: return Number();
      case 2: return Pick(2) ? "true" : "false";
      case 3: return "null";
      case 4: return absl::StrCat("[\"", Text(), "\", ", Number(), "]");
      case 5: return Pick(2) ? "[]" : "{\"s\": \"a.png\"}";
      default: return absl::StrCat("\"", Text(), "\"");
    }
  }

  std::string EventFields() {
    std::string out;
    bool first = true;
    for (const char* key : kKeys) {
      if (Pick(4) == 0) continue;
      absl::StrAppend(&out, first ? "" : ", ", "\"", key, "\": ", EventValue());
      first = false;
    }
    if (first) out = "\"other\": 1";
    return out;
  }

  std::mt19937 rng_;
};

TEST(RuleSetTest, EveryConditionKindMatchesLikeEachPatternAlone) {
  AllKindsGenerator generator(7);
  // Some generated texts do not parse, e.g. a range whose bottom is not
  // below its top.
  Comparison compared = CompareWithEachPatternAlone(generator, 4000, 2000, /*skip_invalid=*/true);
  ASSERT_GT(compared.rules, 3000u);
  // Only rules that need anything-but, exists: false or a bare '*' stay
  // unindexed.
  EXPECT_LT(compared.matcher->unindexed_rule_count() * 5, compared.matcher->rule_count());
  EXPECT_GT(compared.hits, 2000u);
  // The index narrows the candidates well below checking every rule.
  EXPECT_LT(compared.candidates, compared.rules * 2000 / 2);
}

// Each kind of condition alone, one rule per kind per case, against events
// at its edges.
TEST(RuleSetTest, IndexedConditionEdges) {
  const std::vector<std::string> patterns = {
      R"({"n": [{"numeric": [">", 1, "<=", 2]}]})",
      R"({"n": [{"numeric": [">=", 1, "<", 2]}]})",
      R"({"n": [{"numeric": ["=", 0.3]}]})",
      R"({"n": [{"numeric": ["<", -5000000000]}]})",
      R"({"n": [{"numeric": [">", 4999999999.999999]}]})",
      R"({"n": [{"numeric": [">", 1, "<", 1.000002]}]})",
      R"({"s": [{"suffix": ".png"}]})",
      R"({"s": [{"suffix": ""}]})",
      R"({"s": [{"suffix": {"equals-ignore-case": ".PNG"}}]})",
      R"({"s": [{"wildcard": "a*"}]})",
      R"({"s": [{"wildcard": "*.png"}]})",
      R"({"s": [{"wildcard": "a\\*b"}]})",
      R"({"s": [{"wildcard": "a\\\\*"}]})",
      R"({"s": [{"wildcard": "*"}]})",
      R"({"s": [{"exists": true}]})",
      R"({"d": {"s": [{"exists": true}]}})",
      R"({"s": [{"exists": false}]})",
      R"({"s": [{"cidr": "10.0.0.0/8"}]})",
      R"({"s": [{"cidr": "10.1.2.2/31"}]})",
      R"({"s": [{"cidr": "0.0.0.0/0"}]})",
      R"({"s": [{"cidr": "2001:db8::/32"}]})",
      R"({"s": [{"cidr": "::/0"}]})",
  };
  const std::vector<std::string> events = {
      R"({"n": 1})", R"({"n": 1.0000001})", R"({"n": 1.000001})", R"({"n": 1.0000015})", R"({"n": 2})",
      R"({"n": 2.0000004})", R"({"n": 0.1})", R"({"n": 0.30000000000000004})", R"({"n": -5000000000})",
      R"({"n": -5000000001})", R"({"n": 5000000000})", R"({"n": 1e300})", R"({"n": "1.5"})",
      R"({"n": [0, 1.5, "x"]})", R"({"s": "a.png"})", R"({"s": "x.PnG"})", R"({"s": ""})", R"({"s": "a*b"})",
      R"({"s": "axb"})", R"({"s": "a\\"})", R"({"s": "a\\x"})", R"({"s": null})", R"({"s": []})",
      R"({"s": {"t": 1}})", R"({"s": [{"t": 1}, 3]})", R"({"d": {"s": false}})", R"({"d": [{"s": 1}]})",
      R"({"d": [{"t": 1}, {"s": []}]})", R"({"s": "10.1.2.3"})", R"({"s": "10.1.2.4"})", R"({"s": "11.0.0.1"})",
      R"({"s": "2001:db8:ffff::1"})", R"({"s": "2001:db9::1"})", R"({"s": "::1"})", R"({"s": "10.1.2"})",
      R"({"s": ["x", "10.200.0.1"]})", R"({"t": 1})",
  };
  RuleSet rules;
  std::vector<std::pair<std::string, Pattern>> all;
  for (size_t i = 0; i < patterns.size(); ++i) {
    absl::StatusOr<Pattern> pattern = Pattern::Parse(patterns[i]);
    ASSERT_TRUE(pattern.ok()) << patterns[i] << ": " << pattern.status();
    std::string id = absl::StrCat("rule-", 100 + i);
    rules.Add(id, *pattern);
    all.emplace_back(id, *pattern);
  }
  std::shared_ptr<const Matcher> matcher = rules.Snapshot();
  // exists: false and a bare '*' have nothing to be filed under.
  EXPECT_EQ(matcher->unindexed_rule_count(), 2u);
  for (const std::string& text : events) {
    absl::StatusOr<json::Document> event = json::Parse(text);
    ASSERT_TRUE(event.ok()) << text;
    std::vector<std::string> expected;
    for (const auto& [id, pattern] : all) {
      if (pattern.Matches(*event)) expected.push_back(id);
    }
    EXPECT_EQ(matcher->Match(*event), expected) << text;
  }
}

// 10,000 rules of one kind each, each with its own value: nearly all are
// indexed and an event that matches few of them checks few.
TEST(RuleSetTest, ManyRulesOfOneKindStayCheap) {
  struct Case {
    const char* name;
    std::string (*rule)(int);
    const char* event;
    size_t matches;
  };
  const Case cases[] = {
      {"numeric", [](int i) { return absl::StrCat(R"({"n": [{"numeric": [">=", )", i, R"(, "<", )", i + 1, "]}]}"); },
       R"({"n": 1234.5})", 1},
      {"numeric-equals", [](int i) { return absl::StrCat(R"({"n": [{"numeric": ["=", )", i, ".25]}]}"); },
       R"({"n": 77.25})", 1},
      {"suffix", [](int i) { return absl::StrCat(R"({"host": [{"suffix": ".h)", i, R"(.example.com"}]})"); },
       R"({"host": "api.h42.example.com"})", 1},
      {"suffix-ignore-case",
       [](int i) { return absl::StrCat(R"({"host": [{"suffix": {"equals-ignore-case": ".H)", i, R"(.COM"}}]})"); },
       R"({"host": "x.h9.com"})", 1},
      {"wildcard-prefix", [](int i) { return absl::StrCat(R"({"key": [{"wildcard": "user-)", i, R"(/*.png"}]})"); },
       R"({"key": "user-17/a.png"})", 1},
      {"wildcard-suffix", [](int i) { return absl::StrCat(R"({"key": [{"wildcard": "*/)", i, R"(.png"}]})"); },
       R"({"key": "x/17.png"})", 1},
      {"exists", [](int i) { return absl::StrCat(R"({"detail": {"f)", i, R"(": [{"exists": true}]}})"); },
       R"({"detail": {"f3": 1, "g": 2}})", 1},
      {"cidr",
       [](int i) { return absl::StrCat(R"({"ip": [{"cidr": "10.)", i / 256, ".", i % 256, R"(.0/24"}]})"); },
       R"({"ip": "10.3.7.200"})", 1},
  };
  for (const Case& c : cases) {
    RuleSet rules;
    for (int i = 0; i < 10000; ++i) ASSERT_TRUE(rules.Add(absl::StrCat("r", i), c.rule(i)).ok()) << c.rule(i);
    std::shared_ptr<const Matcher> matcher = rules.Snapshot();
    absl::StatusOr<json::Document> event = json::Parse(c.event);
    ASSERT_TRUE(event.ok());
    EXPECT_EQ(matcher->unindexed_rule_count(), 0u) << c.name;
    EXPECT_EQ(matcher->Match(*event).size(), c.matches) << c.name;
    EXPECT_LE(matcher->CandidateCount(*event), 10u) << c.name;
  }
}

TEST(IntervalIndexTest, StabsLikeCheckingEveryInterval) {
  std::mt19937 rng(5);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min(), kMax = std::numeric_limits<int64_t>::max();
  for (int round = 0; round < 50; ++round) {
    std::vector<internal::IntervalIndex::Interval> intervals;
    int count = pick(0, 200);
    for (int i = 0; i < count; ++i) {
      int64_t lower = pick(-100, 100), upper = lower + pick(-3, 40);
      if (pick(0, 9) == 0) lower = kMin;
      if (pick(0, 9) == 0) upper = kMax;
      intervals.push_back({lower, upper, static_cast<uint32_t>(i)});
    }
    internal::IntervalIndex index(intervals);
    for (int64_t x : {kMin, kMax, int64_t{-101}, int64_t{150}}) {
      std::vector<uint32_t> ids;
      index.Stab(x, &ids);
      std::vector<uint32_t> expected;
      for (const auto& interval : intervals) {
        if (interval.lower <= x && x <= interval.upper) expected.push_back(interval.id);
      }
      std::sort(ids.begin(), ids.end());
      EXPECT_EQ(ids, expected) << x;
    }
    for (int64_t x = -110; x <= 150; ++x) {
      std::vector<uint32_t> ids;
      index.Stab(x, &ids);
      std::vector<uint32_t> expected;
      for (const auto& interval : intervals) {
        if (interval.lower <= x && x <= interval.upper) expected.push_back(interval.id);
      }
      std::sort(ids.begin(), ids.end());
      ASSERT_EQ(ids, expected) << x;
    }
  }
}

}  // namespace
}  // namespace stepflow::patterns
