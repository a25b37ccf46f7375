// Events matched per second by patterns::Matcher for 1, 100 and 10,000
// rules on an order event, then the ratios of the 100- and 10,000-rule
// rates to the 1-rule rate (the index should keep them near 1), twice: the
// match alone on an event parsed once, and parse + match, which is what the
// eventbus's dispatcher does for every Kafka record it reads. BM_MatchOneKind runs buses
// of 1,000 and 10,000 rules that all use one kind of condition (numeric
// range, suffix, wildcard, exists, cidr, anything-but), each rule with its
// own value, so the order event matches at most one or two of them.
//
//   ninja -C build patterns_benchmark && build/common/patterns/bench/patterns_benchmark
#include <algorithm>
#include <ctime>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/json/json.h"
#include "common/patterns/rule_set.h"

namespace stepflow::patterns {
namespace {

constexpr const char* kOrderEvent = R"({
  "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
  "detail-type": "Order Placed", "source": "com.shop.orders",
  "account": "111122223333", "time": "2026-11-25T22:00:00Z", "region": "eu-west-1",
  "resources": ["arn:aws:shop:eu-west-1:111122223333:store/berlin-7"],
  "detail": {
    "orderId": "ORD-2026-000417", "status": "placed", "merchant": "m-7",
    "customer": {"id": "cust-42", "tier": "Gold", "email": "ann@example.com", "since": 2019},
    "items": [
      {"sku": "SKU-17-A", "qty": 2, "price": 10.5, "category": "books"},
      {"sku": "SKU-311-C", "qty": 1, "price": 99.0, "category": "electronics"},
      {"sku": "SKU-5-B", "qty": 3, "price": 4.25, "category": "food"}
    ],
    "total": 132.75, "currency": "EUR", "coupon": "CODE-9",
    "shipping": {"country": "DE", "city": "Berlin", "express": true, "ip": "10.20.30.40"},
    "payment": {"method": "card-visa", "risk": 0.12}
  }
})";

const char* const kStatuses[] = {"placed", "paid", "shipped", "cancelled", "refunded"};
const char* const kTiers[] = {"gold", "silver", "bronze"};
const char* const kCountries[] = {"US", "DE", "FR", "JP", "BR"};

// Rules of the shapes real subscribers write: per-customer, per-merchant,
// per-SKU-family, per-event-type filters combining the content operators.
std::vector<std::string> MakeRules(int count) {
  std::mt19937 rng(7);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  std::vector<std::string> rules;
  // The first rule matches the order event, so every size does real work.
  rules.push_back(R"({"source": ["com.shop.orders"], "detail": {"customer": {"id": ["cust-42"]}, "total": [{"numeric": [">", 100]}]}})");
  for (int i = 1; i < count; ++i) {
    std::string rule;
    switch (i % 6) {
      case 0:
        rule = absl::StrCat(R"({"source": ["com.shop.orders"], "detail": {"customer": {"id": ["cust-)", pick(20000),
                            R"("], "tier": [{"equals-ignore-case": ")", kTiers[pick(3)], R"("}]}}})");
        break;
      case 1:
        rule = absl::StrCat(R"({"detail-type": ["Order Placed"], "detail": {"items": {"sku": [{"prefix": "SKU-)",
                            pick(5000), R"(-"}]}, "total": [{"numeric": [">", )", pick(500), R"(]}]}})");
        break;
      case 2:
        rule = absl::StrCat(R"({"source": ["com.shop.)", pick(50), R"("], "detail": {"merchant": ["m-)", pick(3000),
                            R"("], "status": [")", kStatuses[pick(5)], R"("], "shipping": {"country": [{"anything-but": [")",
                            kCountries[pick(5)], R"("]}]}}})");
        break;
      case 3:
        rule = absl::StrCat(R"({"$or": [{"detail": {"customer": {"id": ["cust-)", pick(20000),
                            R"("]}}}, {"detail": {"coupon": ["CODE-)", pick(20000), R"("]}}]})");
        break;
      case 4:
        rule = absl::StrCat(R"({"detail-type": ["Type )", pick(400), R"("], "detail": {"payment": {"method": [{"wildcard": "card-*"}]}, "shipping": {"ip": [{"cidr": "10.)",
                            pick(256), R"(.0.0/16"}]}}})");
        break;
      default:
        rule = absl::StrCat(R"({"resources": [{"suffix": "store/berlin-)", pick(100), R"("}], "detail": {"orderId": [{"prefix": "ORD-2026-00)",
                            pick(10000), R"("}], "coupon": [{"exists": )", pick(2) ? "true" : "false", "}]}}");
        break;
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

std::shared_ptr<const Matcher> Compile(int count) {
  RuleSet rules;
  std::vector<std::string> texts = MakeRules(count);
  for (size_t i = 0; i < texts.size(); ++i) {
    absl::Status status = rules.Add(absl::StrCat("rule-", i), texts[i]);
    if (!status.ok()) {
      std::fprintf(stderr, "bad rule %s: %s\n", texts[i].c_str(), std::string(status.message()).c_str());
      std::abort();
    }
  }
  return rules.Snapshot();
}

void BM_MatchOrderEvent(benchmark::State& state) {
  std::shared_ptr<const Matcher> matcher = Compile(static_cast<int>(state.range(0)));
  json::Document event = *json::Parse(kOrderEvent);
  size_t hits = 0;
  for (auto _ : state) {
    std::vector<std::string> ids = matcher->Match(event);
    hits += ids.size();
    benchmark::DoNotOptimize(ids);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["matches_per_event"] =
      static_cast<double>(hits) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
  state.counters["candidates"] = static_cast<double>(matcher->CandidateCount(event));
  state.counters["unindexed_rules"] = static_cast<double>(matcher->unindexed_rule_count());
}
BENCHMARK(BM_MatchOrderEvent)->Arg(1)->Arg(100)->Arg(1000)->Arg(10000);

// As the dispatcher does per record: the event's text parsed, then matched.
void BM_ParseAndMatchOrderEvent(benchmark::State& state) {
  std::shared_ptr<const Matcher> matcher = Compile(static_cast<int>(state.range(0)));
  const std::string text = kOrderEvent;
  for (auto _ : state) {
    json::Document event = *json::Parse(text);
    std::vector<std::string> ids = matcher->Match(event);
    benchmark::DoNotOptimize(ids);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseAndMatchOrderEvent)->Arg(1)->Arg(100)->Arg(10000);

enum class OneKind { kNumeric, kSuffix, kWildcard, kExists, kCidr, kAnythingBut };

// Rule `i` of a bus whose rules all use `kind`.
std::string OneKindRule(OneKind kind, int i) {
  switch (kind) {
    case OneKind::kNumeric:
      // Disjoint ranges of width 1: total 132.75 falls in one.
      return absl::StrCat(R"({"detail": {"total": [{"numeric": [">=", )", i, R"(, "<", )", i + 1, "]}]}}");
    case OneKind::kSuffix:
      return absl::StrCat(R"({"detail": {"customer": {"email": [{"suffix": "@)",
                          i == 0 ? std::string("example.com") : absl::StrCat("host-", i, ".com"), R"("}]}}})");
    case OneKind::kWildcard:
      // Half with literal text before the first '*', half only after it.
      return i % 2 == 0
                 ? absl::StrCat(R"({"detail": {"orderId": [{"wildcard": "ORD-)", 2026 + i, R"(-*7"}]}})")
                 : absl::StrCat(R"({"detail": {"coupon": [{"wildcard": "*-)", i, R"("}]}})");
    case OneKind::kExists:
      return absl::StrCat(R"({"detail": {"field-)", i, R"(": [{"exists": true}]}})");
    case OneKind::kCidr:
      return absl::StrCat(R"({"detail": {"shipping": {"ip": [{"cidr": "10.)", i / 256 % 256, ".", i % 256,
                          R"(.0/24"}]}}})");
    case OneKind::kAnythingBut:
      return absl::StrCat(R"({"detail": {"merchant": [{"anything-but": ["m-)", i, R"("]}]}})");
  }
  return "{}";
}

void BM_MatchOneKind(benchmark::State& state, OneKind kind) {
  RuleSet rules;
  for (int i = 0; i < state.range(0); ++i) {
    std::string text = OneKindRule(kind, i);
    absl::Status status = rules.Add(absl::StrCat("rule-", i), text);
    if (!status.ok()) {
      std::fprintf(stderr, "bad rule %s: %s\n", text.c_str(), std::string(status.message()).c_str());
      std::abort();
    }
  }
  std::shared_ptr<const Matcher> matcher = rules.Snapshot();
  json::Document event = *json::Parse(kOrderEvent);
  size_t hits = 0;
  for (auto _ : state) {
    std::vector<std::string> ids = matcher->Match(event);
    hits += ids.size();
    benchmark::DoNotOptimize(ids);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["matches_per_event"] =
      static_cast<double>(hits) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
  state.counters["candidates"] = static_cast<double>(matcher->CandidateCount(event));
  state.counters["unindexed_rules"] = static_cast<double>(matcher->unindexed_rule_count());
}
BENCHMARK_CAPTURE(BM_MatchOneKind, numeric, OneKind::kNumeric)->Arg(1000)->Arg(10000);
BENCHMARK_CAPTURE(BM_MatchOneKind, suffix, OneKind::kSuffix)->Arg(1000)->Arg(10000);
BENCHMARK_CAPTURE(BM_MatchOneKind, wildcard, OneKind::kWildcard)->Arg(1000)->Arg(10000);
BENCHMARK_CAPTURE(BM_MatchOneKind, exists, OneKind::kExists)->Arg(1000)->Arg(10000);
BENCHMARK_CAPTURE(BM_MatchOneKind, cidr, OneKind::kCidr)->Arg(1000)->Arg(10000);
BENCHMARK_CAPTURE(BM_MatchOneKind, anything_but, OneKind::kAnythingBut)->Arg(1000)->Arg(10000);

double ThreadCpuSeconds() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// Events per CPU second over about `seconds` of CPU time (CPU time, so other
// work on a shared machine does not skew the ratio).
double EventsPerSecond(const Matcher& matcher, const json::Value& event, double seconds) {
  size_t events = 0;
  double start = ThreadCpuSeconds(), elapsed = 0;
  while (elapsed < seconds) {
    for (int i = 0; i < 100; ++i) benchmark::DoNotOptimize(matcher.Match(event));
    events += 100;
    elapsed = ThreadCpuSeconds() - start;
  }
  return static_cast<double>(events) / elapsed;
}

// The same with the event's text parsed before each match.
double ParsedEventsPerSecond(const Matcher& matcher, const std::string& text, double seconds) {
  size_t events = 0;
  double start = ThreadCpuSeconds(), elapsed = 0;
  while (elapsed < seconds) {
    for (int i = 0; i < 100; ++i) {
      json::Document event = *json::Parse(text);
      benchmark::DoNotOptimize(matcher.Match(event));
    }
    events += 100;
    elapsed = ThreadCpuSeconds() - start;
  }
  return static_cast<double>(events) / elapsed;
}

}  // namespace
}  // namespace stepflow::patterns

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  using namespace stepflow::patterns;
  stepflow::json::Document event = *stepflow::json::Parse(kOrderEvent);
  const std::string text = kOrderEvent;
  std::shared_ptr<const Matcher> matchers[] = {Compile(1), Compile(100), Compile(10000)};
  // The best of rounds that take turns between the sizes: a burst of load
  // from elsewhere (even CPU time slows when the other core is busy) then
  // spoils one round of every size rather than all of one size.
  constexpr int kRounds = 8;
  constexpr double kRoundSeconds = 0.1;
  double match[3] = {}, parse_and_match[3] = {};
  for (int round = 0; round < kRounds; ++round) {
    for (int i = 0; i < 3; ++i) {
      match[i] = std::max(match[i], EventsPerSecond(*matchers[i], event, kRoundSeconds));
      parse_and_match[i] =
          std::max(parse_and_match[i], ParsedEventsPerSecond(*matchers[i], text, kRoundSeconds));
    }
  }
  std::printf(
      "match alone: events/s with 1 rule: %.0f, with 100 rules: %.0f, with 10000 rules: %.0f, "
      "ratio 100/1: %.2f, ratio 10000/1: %.2f (goal: >= 0.5)\n",
      match[0], match[1], match[2], match[1] / match[0], match[2] / match[0]);
  std::printf(
      "parse + match: events/s with 1 rule: %.0f, with 100 rules: %.0f, with 10000 rules: %.0f, "
      "ratio 100/1: %.2f, ratio 10000/1: %.2f (goal: >= 0.5)\n",
      parse_and_match[0], parse_and_match[1], parse_and_match[2],
      parse_and_match[1] / parse_and_match[0], parse_and_match[2] / parse_and_match[0]);
  return 0;
}
