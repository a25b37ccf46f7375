#include <unistd.h>

#include <atomic>
#include <thread>

#include "common/json/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/cli/bench_driver.h"
#include "tools/cli/bench_options.h"
#include "tools/cli/bench_report.h"
#include "tools/cli/bench_stats.h"

namespace stepflow::cli::bench {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// ---- Flags ----

TEST(BenchOptionsTest, Defaults) {
  absl::StatusOr<BenchOptions> options = ParseBenchArgs({});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->scenario, ScenarioKind::kExpressAsync);
  EXPECT_EQ(options->concurrency, 16);
  EXPECT_EQ(options->total, 0);
  EXPECT_EQ(options->duration, kDefaultDuration);
  EXPECT_EQ(options->rate, 0);
  EXPECT_EQ(options->output, Output::kText);
  EXPECT_TRUE(options->endpoint.empty());
  EXPECT_EQ(options->delivery, Delivery::kPoll);
  EXPECT_EQ(options->EffectiveConnections(), 1);
}

// Timed runs alternate the scenario and the ceiling in slices of about
// 2 s; runs of -n operations measure one after the other.
TEST(BenchOptionsTest, SlicesOfTimedRuns) {
  auto slices_of = [](std::vector<std::string> args) {
    absl::StatusOr<BenchOptions> options = ParseBenchArgs(args);
    EXPECT_TRUE(options.ok()) << options.status();
    return options.ok() ? options->EffectiveSlices() : -1;
  };
  EXPECT_EQ(slices_of({}), 5);  // the default 10 s
  EXPECT_EQ(slices_of({"-z", "8s"}), 4);
  EXPECT_EQ(slices_of({"-z", "9s"}), 4);
  EXPECT_EQ(slices_of({"-z", "1s"}), 1);
  EXPECT_EQ(slices_of({"-z", "5m"}), kMaxAutoSlices);
  EXPECT_EQ(slices_of({"-z", "8s", "--slices", "1"}), 1);
  EXPECT_EQ(slices_of({"-z", "8s", "--slices", "16"}), 16);
  EXPECT_EQ(slices_of({"-n", "100"}), 1);
  EXPECT_EQ(slices_of({"-n", "100", "-z", "20s"}), 1);
  EXPECT_EQ(slices_of({"-n", "100", "--slices", "1"}), 1);

  absl::StatusOr<BenchOptions> bad = ParseBenchArgs({"--slices", "0"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("--slices"));
  bad = ParseBenchArgs({"-n", "100", "--slices", "3"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("timed runs"));
}

// The slices of a phase add up to one figure, their latencies summarized
// together.
TEST(PhaseResultTest, SlicesAddUp) {
  PhaseResult total;
  PhaseResult first;
  first.completed = 300;
  first.elapsed = absl::Seconds(2);
  for (int i = 1; i <= 3; ++i) first.samples.Add(absl::Milliseconds(i));
  first.errors.Add("UNAVAILABLE", "gone");
  PhaseResult second;
  second.completed = 100;
  second.elapsed = absl::Seconds(2);
  second.samples.Add(absl::Milliseconds(40));
  total.Add(first);
  total.Add(second);
  EXPECT_EQ(total.completed, 400);
  EXPECT_EQ(total.elapsed, absl::Seconds(4));
  EXPECT_DOUBLE_EQ(total.PerSecond(), 100);
  EXPECT_EQ(total.latency.count, 4);
  EXPECT_EQ(total.latency.p50, absl::Milliseconds(2));
  EXPECT_EQ(total.latency.max, absl::Milliseconds(40));
  EXPECT_EQ(total.errors.Count("UNAVAILABLE"), 1);
  EXPECT_FALSE(total.cpu.has_value()) << "no process measured";
}

// The CPU a measured process spent adds up over the slices too.
TEST(PhaseResultTest, CpuOfSlicesAddsUp) {
  PhaseResult total;
  PhaseResult first;
  first.cpu = absl::Milliseconds(300);
  first.context_switches = 40;
  PhaseResult second;
  second.cpu = absl::Milliseconds(100);
  second.context_switches = 2;
  total.Add(first);
  total.Add(second);
  ASSERT_TRUE(total.cpu.has_value());
  EXPECT_EQ(*total.cpu, absl::Milliseconds(400));
  EXPECT_EQ(total.context_switches, 42);
}

// This process read both ways: from getrusage (0) and, as another process
// is, from /proc (its pid); both see CPU spent meanwhile. An unknown
// process reads as zero.
TEST(ProcessCpuTest, ThisProcessBothWays) {
  const CpuReading self_before = ProcessCpu(0);
  const CpuReading proc_before = ProcessCpu(getpid());
  // Spin for 300 ms of CPU time.
  volatile uint64_t sink = 0;
  while (ProcessCpu(0).cpu - self_before.cpu < absl::Milliseconds(300)) {
    for (int i = 0; i < 100000; ++i) sink = sink + static_cast<uint64_t>(i);
  }
  const CpuReading self_after = ProcessCpu(0);
  const CpuReading proc_after = ProcessCpu(getpid());
  EXPECT_GE(self_after.cpu - self_before.cpu, absl::Milliseconds(300));
  // /proc counts in clock ticks (10 ms here).
  EXPECT_GE(proc_after.cpu - proc_before.cpu, absl::Milliseconds(250));
  EXPECT_GT(proc_after.cpu, absl::ZeroDuration());
  EXPECT_GE(self_after.context_switches, self_before.context_switches);
  EXPECT_GT(proc_after.context_switches, 0);

  const CpuReading missing = ProcessCpu(1 << 30);
  EXPECT_EQ(missing.cpu, absl::ZeroDuration());
  EXPECT_EQ(missing.context_switches, 0);
}

TEST(BenchOptionsTest, MetricsAddressesNeedAnEndpoint) {
  absl::StatusOr<BenchOptions> options =
      ParseBenchArgs({"--endpoint", "h:1", "--metrics", "a:9300,b:9300"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(options->metrics, ::testing::ElementsAre("a:9300", "b:9300"));
  EXPECT_FALSE(ParseBenchArgs({"--metrics", "a:9300"}).ok());
}

TEST(BenchStatsTest, ClosedExpressExecutionsFromAMetricsPage) {
  const std::string page =
      "# HELP stepflow_executions_closed_total Executions closed.\n"
      "# TYPE stepflow_executions_closed_total counter\n"
      "stepflow_executions_closed_total{status=\"SUCCEEDED\",type=\"EXPRESS\"} 120\n"
      "stepflow_executions_closed_total{status=\"FAILED\",type=\"EXPRESS\"} 3\n"
      "stepflow_executions_closed_total{status=\"SUCCEEDED\",type=\"STANDARD\"} 7\n"
      "stepflow_shard_transitions_total 999\n";
  std::map<std::string, int64_t> counts;
  AddClosedExpress(page, &counts);
  AddClosedExpress(page, &counts);  // a second server's page adds up
  EXPECT_EQ(counts, (std::map<std::string, int64_t>{{"FAILED", 6}, {"SUCCEEDED", 240}}));
}

TEST(BenchOptionsTest, GhzLikeShortFlags) {
  absl::StatusOr<BenchOptions> options = ParseBenchArgs(
      {"-c", "64", "-n", "1000", "-z", "30s", "-q", "500", "-O", "json",
       "--scenario", "standard", "--endpoint", "10.0.0.1:7233"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->scenario, ScenarioKind::kStandard);
  EXPECT_EQ(options->concurrency, 64);
  EXPECT_EQ(options->total, 1000);
  EXPECT_EQ(options->duration, absl::Seconds(30));
  EXPECT_EQ(options->rate, 500);
  EXPECT_EQ(options->output, Output::kJson);
  EXPECT_EQ(options->endpoint, "10.0.0.1:7233");
  EXPECT_EQ(options->EffectiveConnections(), 4);
}

TEST(BenchOptionsTest, CountAloneHasNoTimeLimit) {
  absl::StatusOr<BenchOptions> options = ParseBenchArgs({"-n", "20"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->total, 20);
  EXPECT_EQ(options->duration, absl::ZeroDuration());
}

TEST(BenchOptionsTest, LongFormsAndFiles) {
  absl::StatusOr<BenchOptions> options =
      ParseBenchArgs({"--concurrency=8", "--duration=500ms", "--rate=0",
                      "--format=text", "--definition", "wf.json", "--input",
                      "in.json", "--connections", "3", "--timeout", "2.5"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->concurrency, 8);
  EXPECT_EQ(options->duration, absl::Milliseconds(500));
  EXPECT_EQ(options->rate, 0);
  EXPECT_EQ(options->definition_file, "wf.json");
  EXPECT_EQ(options->input_file, "in.json");
  EXPECT_EQ(options->EffectiveConnections(), 3);
  EXPECT_EQ(options->rpc_timeout, absl::Milliseconds(2500));
}

TEST(BenchOptionsTest, MemorySampling) {
  auto defaults = ParseBenchArgs({});
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->rss_interval, absl::Seconds(10));
  EXPECT_EQ(defaults->rss_pid, 0);
  auto set = ParseBenchArgs({"--rss-interval", "500ms", "--rss-pid", "4242"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->rss_interval, absl::Milliseconds(500));
  EXPECT_EQ(set->rss_pid, 4242);
  EXPECT_FALSE(ParseBenchArgs({"--rss-interval", "soon"}).ok());
  EXPECT_FALSE(ParseBenchArgs({"--rss-pid", "-3"}).ok());
}

TEST(BenchOptionsTest, ActivitiesDelivery) {
  absl::StatusOr<BenchOptions> options =
      ParseBenchArgs({"--scenario", "activities", "--delivery", "stream"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->delivery, Delivery::kStream);
  EXPECT_FALSE(
      ParseBenchArgs({"--scenario", "standard", "--delivery", "stream"}).ok());
  EXPECT_FALSE(
      ParseBenchArgs({"--scenario", "activities", "--definition", "x.json"})
          .ok());
  EXPECT_EQ(options->workflow_type, "STANDARD");
  options = ParseBenchArgs({"--scenario", "activities", "--workflow-type", "EXPRESS"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->workflow_type, "EXPRESS");
  EXPECT_FALSE(
      ParseBenchArgs({"--scenario", "activities", "--workflow-type", "express"}).ok());
  EXPECT_FALSE(
      ParseBenchArgs({"--scenario", "express-sync", "--workflow-type", "EXPRESS"}).ok());
  EXPECT_EQ(options->task_timeout_seconds, 300);
  options = ParseBenchArgs({"--scenario", "activities", "--task-timeout", "3"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->task_timeout_seconds, 3);
  EXPECT_FALSE(ParseBenchArgs({"--scenario", "activities", "--task-timeout", "0"}).ok());
  EXPECT_FALSE(
      ParseBenchArgs({"--scenario", "activities", "--task-timeout", "100000000"}).ok());
  EXPECT_FALSE(ParseBenchArgs({"--scenario", "standard", "--task-timeout", "3"}).ok());
  EXPECT_EQ(options->tasks_per_execution, 1);
  options = ParseBenchArgs({"--scenario", "activities", "--tasks", "20"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->tasks_per_execution, 20);
  EXPECT_FALSE(ParseBenchArgs({"--scenario", "activities", "--tasks", "0"}).ok());
  EXPECT_FALSE(ParseBenchArgs({"--scenario", "activities", "--tasks", "10001"}).ok());
  EXPECT_FALSE(ParseBenchArgs({"--scenario", "standard", "--tasks", "2"}).ok());
}

TEST(BenchOptionsTest, RefusesBadValues) {
  auto message = [](std::vector<std::string> args) {
    absl::StatusOr<BenchOptions> options = ParseBenchArgs(args);
    return options.ok() ? std::string("ok")
                        : std::string(options.status().message());
  };
  EXPECT_THAT(message({"-c", "0"}), HasSubstr("positive integer"));
  EXPECT_THAT(message({"-q", "-1"}), HasSubstr("--rate"));
  EXPECT_THAT(message({"-q", "fast"}), HasSubstr("--rate"));
  EXPECT_THAT(message({"-z", "10x"}), HasSubstr("bad duration"));
  EXPECT_THAT(message({"-O", "yaml"}), HasSubstr("must be one of"));
  EXPECT_THAT(message({"--scenario", "nope"}), HasSubstr("must be one of"));
  EXPECT_THAT(message({"--frobnicate"}), HasSubstr("frobnicate"));
  EXPECT_THAT(message({"extra"}), HasSubstr("unexpected argument 'extra'"));
  EXPECT_THAT(message({"--endpoint="}), HasSubstr("HOST:PORT"));
}

TEST(BenchOptionsTest, Durations) {
  EXPECT_EQ(*ParseBenchDuration("10s"), absl::Seconds(10));
  EXPECT_EQ(*ParseBenchDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseBenchDuration("2m"), absl::Minutes(2));
  EXPECT_EQ(*ParseBenchDuration("1h"), absl::Hours(1));
  EXPECT_EQ(*ParseBenchDuration("1.5s"), absl::Milliseconds(1500));
  EXPECT_EQ(*ParseBenchDuration("3"), absl::Seconds(3));
  EXPECT_FALSE(ParseBenchDuration("0s").ok());
  EXPECT_FALSE(ParseBenchDuration("s").ok());
  EXPECT_FALSE(ParseBenchDuration("").ok());
  EXPECT_FALSE(ParseBenchDuration("-5s").ok());
}

TEST(BenchOptionsTest, HelpNamesEveryScenario) {
  std::string help = BenchHelp();
  for (absl::string_view name : {"express-async", "express-sync", "standard",
                                 "activities", "events", "ratio"}) {
    EXPECT_THAT(help, HasSubstr(std::string(name)));
  }
  EXPECT_TRUE(ParseBenchArgs({"--help"})->help);
  EXPECT_TRUE(ParseBenchArgs({"-h"})->help);
}

// ---- Percentiles, errors, rate, backoff ----

TEST(LatencySamplesTest, NearestRankPercentiles) {
  LatencySamples samples;
  // 100 down to 1 ms: the order of arrival does not matter.
  for (int i = 100; i >= 1; --i) samples.Add(absl::Milliseconds(i));
  LatencySummary summary = samples.Summarize();
  EXPECT_EQ(summary.count, 100);
  EXPECT_EQ(summary.p50, absl::Milliseconds(50));
  EXPECT_EQ(summary.p90, absl::Milliseconds(90));
  EXPECT_EQ(summary.p99, absl::Milliseconds(99));
  EXPECT_EQ(summary.max, absl::Milliseconds(100));
}

TEST(LatencySamplesTest, SmallAndEmptySets) {
  LatencySamples empty;
  LatencySummary none = empty.Summarize();
  EXPECT_EQ(none.count, 0);
  EXPECT_EQ(none.p99, absl::ZeroDuration());

  LatencySamples one;
  one.Add(absl::Microseconds(700));
  LatencySummary single = one.Summarize();
  EXPECT_EQ(single.p50, absl::Microseconds(700));
  EXPECT_EQ(single.max, absl::Microseconds(700));

  LatencySamples three;
  for (int ms : {3, 1, 2}) three.Add(absl::Milliseconds(ms));
  LatencySummary summary = three.Summarize();
  EXPECT_EQ(summary.p50, absl::Milliseconds(2));
  EXPECT_EQ(summary.p90, absl::Milliseconds(3));
}

TEST(LatencySamplesTest, KeepsFourSignificantDigitsInBoundedMemory) {
  LatencySamples samples;
  samples.Add(absl::Nanoseconds(9999999));    // 9.999999 ms: kept as 9,999 us
  samples.Add(absl::Microseconds(123456));    // 123.456 ms: kept as 123.4 ms
  samples.Add(absl::Microseconds(123499));
  samples.Add(absl::Microseconds(7654321));   // the largest: exact
  LatencySummary summary = samples.Summarize();
  EXPECT_EQ(summary.count, 4);
  EXPECT_EQ(summary.p50, absl::Microseconds(123400));
  EXPECT_EQ(summary.max, absl::Microseconds(7654321));
  LatencySamples low;
  low.Add(absl::Nanoseconds(9999999));
  EXPECT_EQ(low.Summarize().p50, absl::Microseconds(9999));
  EXPECT_EQ(low.Summarize().max, absl::Nanoseconds(9999999));
  // A million samples of a thousand values: as many counts as values.
  LatencySamples many;
  for (int i = 0; i < 1000000; ++i) many.Add(absl::Microseconds(100 + i % 1000));
  EXPECT_EQ(many.size(), 1000000u);
  EXPECT_EQ(many.Summarize().p50, absl::Microseconds(599));
  EXPECT_EQ(many.Summarize().p99, absl::Microseconds(1089));
}

TEST(LatencySamplesTest, MergesSlots) {
  LatencySamples a, b;
  for (int i = 1; i <= 50; ++i) a.Add(absl::Milliseconds(i));
  for (int i = 51; i <= 100; ++i) b.Add(absl::Milliseconds(i));
  a.Merge(b);
  EXPECT_EQ(a.size(), 100u);
  EXPECT_EQ(a.Summarize().p90, absl::Milliseconds(90));
}

TEST(ErrorCountsTest, CountsByCodeKeepingTheFirstMessage) {
  ErrorCounts a, b;
  a.Add("UNIMPLEMENTED", "first");
  a.Add("UNIMPLEMENTED", "second");
  b.Add("RESOURCE_EXHAUSTED", "slow down");
  b.Add("UNIMPLEMENTED", "other");
  a.Merge(b);
  EXPECT_EQ(a.Count("UNIMPLEMENTED"), 3);
  EXPECT_EQ(a.Count("RESOURCE_EXHAUSTED"), 1);
  EXPECT_EQ(a.Count("UNAVAILABLE"), 0);
  EXPECT_EQ(a.Total(), 4);
  EXPECT_EQ(a.first_messages().at("UNIMPLEMENTED"), "first");
}

TEST(RateLimiterTest, SpacesStartsEvenly) {
  RateLimiter limiter(10);  // one start per 100 ms
  absl::Time now = absl::FromUnixSeconds(1000);
  EXPECT_EQ(limiter.Reserve(now), now);
  EXPECT_EQ(limiter.Reserve(now), now + absl::Milliseconds(100));
  EXPECT_EQ(limiter.Reserve(now), now + absl::Milliseconds(200));
  // Idle time earns no burst: after a pause, starts are spaced again.
  absl::Time later = now + absl::Seconds(5);
  EXPECT_EQ(limiter.Reserve(later), later);
  EXPECT_EQ(limiter.Reserve(later), later + absl::Milliseconds(100));
}

TEST(RateLimiterTest, ZeroMeansNoCap) {
  RateLimiter limiter(0);
  absl::Time now = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limiter.Reserve(now), now);
}

TEST(BackoffTest, ExponentialWithJitterUpToTheCap) {
  EXPECT_EQ(Backoff(1, 0.0), absl::Microseconds(2500));
  EXPECT_EQ(Backoff(1, 1.0), absl::Milliseconds(5));
  EXPECT_EQ(Backoff(2, 1.0), absl::Milliseconds(10));
  EXPECT_EQ(Backoff(4, 1.0), absl::Milliseconds(40));
  EXPECT_EQ(Backoff(30, 1.0), absl::Seconds(1));
  EXPECT_EQ(Backoff(30, 0.0), absl::Milliseconds(500));
  absl::Duration jittered = Backoff(3, 0.5);
  EXPECT_GT(jittered, absl::Milliseconds(10));
  EXPECT_LT(jittered, absl::Milliseconds(20));
}

// ---- JSON and text reports ----

BenchReport SampleReport() {
  BenchReport report;
  report.scenario = "standard";
  report.concurrency = 4;
  report.connections = 1;
  report.target = "gateway 127.0.0.1:7233";
  report.ceiling_rpc = "grpc.health.v1.Health/Check";
  report.run.completed = 200;
  report.run.elapsed = absl::Seconds(2);
  LatencySamples samples;
  for (int i = 1; i <= 100; ++i) samples.Add(absl::Milliseconds(i));
  report.run.latency = samples.Summarize();
  report.run.errors.Add("UNIMPLEMENTED", "StartSyncExecution: not yet");
  report.ceiling.completed = 8000;
  report.ceiling.elapsed = absl::Seconds(2);
  LatencySamples ceiling;
  ceiling.Add(absl::Milliseconds(1));
  report.ceiling.latency = ceiling.Summarize();
  report.statuses["SUCCEEDED"] = 200;
  return report;
}

// The process's CPU in both phases: 300 us and 2.5 context switches an
// operation, 50 us and 0.25 a ceiling call.
void SetCpuFigures(BenchReport& report) {
  report.cpu_of = "this process";
  report.run.cpu = absl::Milliseconds(60);  // 200 operations: 300 us each
  report.run.context_switches = 500;
  report.ceiling.cpu = absl::Milliseconds(400);  // 8000 calls: 50 us each
  report.ceiling.context_switches = 2000;
}

TEST(BenchReportTest, JsonHasEveryKeyWithTheRatio) {
  std::string text = RenderJson(SampleReport());
  // Exactly one object on one line.
  EXPECT_EQ(text.find('\n'), text.size() - 1);
  absl::StatusOr<json::Document> doc = json::Parse(text);
  ASSERT_TRUE(doc.ok()) << doc.status() << "\n" << text;
  ASSERT_TRUE(doc->IsObject());
  for (const char* key :
       {"scenario", "concurrency", "completed", "completed_per_sec",
        "ceiling_per_sec", "ratio", "latency_ms", "errors"}) {
    EXPECT_TRUE(doc->HasMember(key)) << key;
  }
  // The required keys come first, in the documented order.
  const char* order[] = {"scenario",          "concurrency",     "completed",
                         "completed_per_sec", "ceiling_per_sec", "ratio",
                         "latency_ms",        "errors"};
  int index = 0;
  for (auto it = doc->MemberBegin(); index < 8; ++it, ++index) {
    EXPECT_STREQ(it->name.GetString(), order[index]);
  }
  EXPECT_STREQ((*doc)["scenario"].GetString(), "standard");
  EXPECT_EQ((*doc)["concurrency"].GetInt(), 4);
  EXPECT_EQ((*doc)["completed"].GetInt64(), 200);
  EXPECT_DOUBLE_EQ((*doc)["completed_per_sec"].GetDouble(), 100);
  EXPECT_DOUBLE_EQ((*doc)["ceiling_per_sec"].GetDouble(), 4000);
  EXPECT_DOUBLE_EQ((*doc)["ratio"].GetDouble(), 0.025);
  const json::Value& latency = (*doc)["latency_ms"];
  EXPECT_DOUBLE_EQ(latency["p50"].GetDouble(), 50);
  EXPECT_DOUBLE_EQ(latency["p90"].GetDouble(), 90);
  EXPECT_DOUBLE_EQ(latency["p99"].GetDouble(), 99);
  EXPECT_DOUBLE_EQ(latency["max"].GetDouble(), 100);
  EXPECT_EQ((*doc)["errors"]["UNIMPLEMENTED"].GetInt64(), 1);
  EXPECT_STREQ((*doc)["error_messages"]["UNIMPLEMENTED"].GetString(),
               "StartSyncExecution: not yet");
  EXPECT_EQ((*doc)["statuses"]["SUCCEEDED"].GetInt64(), 200);
  EXPECT_DOUBLE_EQ((*doc)["latency_ratio"]["p50"].GetDouble(), 50);
  EXPECT_STREQ((*doc)["ceiling"]["rpc"].GetString(),
               "grpc.health.v1.Health/Check");
  EXPECT_EQ((*doc)["ceiling"]["calls"].GetInt64(), 8000);
  EXPECT_EQ((*doc)["slices"].GetInt(), 1);
  EXPECT_FALSE(doc->HasMember("schedule_to_start_ms"));
}

// CPU per operation, the scenario's and the ceiling's, when a process was
// measured: the ratio is the ceiling's over the scenario's.
TEST(BenchReportTest, CpuPerOperationWithItsRatio) {
  BenchReport report = SampleReport();
  absl::StatusOr<json::Document> without = json::Parse(RenderJson(report));
  ASSERT_TRUE(without.ok());
  EXPECT_FALSE(without->HasMember("cpu_per_op"));
  EXPECT_THAT(RenderText(report), Not(HasSubstr("cpu per op")));

  SetCpuFigures(report);
  absl::StatusOr<json::Document> doc = json::Parse(RenderJson(report));
  ASSERT_TRUE(doc.ok());
  const json::Value& cpu = (*doc)["cpu_per_op"];
  EXPECT_STREQ(cpu["of"].GetString(), "this process");
  EXPECT_DOUBLE_EQ(cpu["scenario_us"].GetDouble(), 300);
  EXPECT_DOUBLE_EQ(cpu["ceiling_us"].GetDouble(), 50);
  EXPECT_DOUBLE_EQ(cpu["ratio"].GetDouble(), 0.1667);
  EXPECT_DOUBLE_EQ(cpu["scenario_context_switches"].GetDouble(), 2.5);
  EXPECT_DOUBLE_EQ(cpu["ceiling_context_switches"].GetDouble(), 0.25);
  EXPECT_THAT(RenderText(report),
              HasSubstr("cpu per op      300.0 us, 2.50 context switches  (ceiling 50.0 us, "
                        "0.25: ratio 0.1667; this process)"));
}

// With --tasks, an operation is several round trips: the report gives
// them apart, per second, as a ratio and per CPU; nothing of the kind for
// one round trip an operation.
TEST(BenchReportTest, RoundTripsOfOperationsOfSeveral) {
  BenchReport report = SampleReport();
  SetCpuFigures(report);
  absl::StatusOr<json::Document> one = json::Parse(RenderJson(report));
  ASSERT_TRUE(one.ok());
  EXPECT_FALSE(one->HasMember("round_trips"));
  EXPECT_THAT(RenderText(report), Not(HasSubstr("round trips")));

  report.round_trips_per_operation = 4;
  absl::StatusOr<json::Document> doc = json::Parse(RenderJson(report));
  ASSERT_TRUE(doc.ok());
  const json::Value& trips = (*doc)["round_trips"];
  EXPECT_EQ(trips["per_operation"].GetInt(), 4);
  EXPECT_EQ(trips["completed"].GetInt64(), 800);
  EXPECT_DOUBLE_EQ(trips["per_sec"].GetDouble(), 400);
  EXPECT_DOUBLE_EQ(trips["ratio"].GetDouble(), 0.1);
  EXPECT_DOUBLE_EQ(trips["cpu_us"].GetDouble(), 75);
  EXPECT_DOUBLE_EQ(trips["context_switches"].GetDouble(), 0.625);
  const std::string text = RenderText(report);
  EXPECT_THAT(text, HasSubstr("round trips     4 a completed operation: 400.0/s  (ratio 0.1000 "
                              "of the ceiling's)"));
  EXPECT_THAT(text, HasSubstr("cpu per trip    75.0 us, 0.62 context switches  (ratio 0.6667 of "
                              "the ceiling's per call)"));

  // Without CPU figures, no CPU per round trip.
  report.run.cpu.reset();
  doc = json::Parse(RenderJson(report));
  ASSERT_TRUE(doc.ok());
  EXPECT_FALSE((*doc)["round_trips"].HasMember("cpu_us"));
  EXPECT_THAT(RenderText(report), Not(HasSubstr("cpu per trip")));
}

TEST(BenchReportTest, NoCeilingMeansRatioZero) {
  BenchReport report = SampleReport();
  report.ceiling = PhaseResult();
  absl::StatusOr<json::Document> doc = json::Parse(RenderJson(report));
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ((*doc)["ratio"].GetDouble(), 0);
  EXPECT_EQ((*doc)["ceiling_per_sec"].GetDouble(), 0);
}

TEST(BenchReportTest, TextShowsRatiosAndErrors) {
  BenchReport report = SampleReport();
  LatencySamples waits;
  waits.Add(absl::Milliseconds(2));
  report.schedule_to_start = waits.Summarize();
  std::string text = RenderText(report);
  EXPECT_THAT(
      text,
      HasSubstr(
          "200 in 2.00 s = 100.0/s  (ratio 0.0250 of the ceiling's 4000.0/s)"));
  EXPECT_THAT(
      text,
      HasSubstr("latency p50     50.000 ms    (ceiling 1.000 ms: 50.0x)"));
  EXPECT_THAT(
      text, HasSubstr("UNIMPLEMENTED 1 (first: StartSyncExecution: not yet)"));
  EXPECT_THAT(text, HasSubstr("sched-to-start"));
  EXPECT_THAT(text, HasSubstr("SUCCEEDED 200"));
}

// ---- The load engine, with operations that need no server ----

// Finishes inline (inside Start) or on a thread of its own, as gRPC may.
class FakeOperation final : public Operation {
 public:
  FakeOperation(bool inline_done, std::atomic<int>* refusals,
                std::atomic<int>* started)
      : inline_done_(inline_done), refusals_(refusals), started_(started) {}
  void Start(std::function<void(OpOutcome)> done) override {
    started_->fetch_add(1);
    OpOutcome outcome = OpOutcome::Ok();
    if (refusals_->fetch_sub(1) > 0) {
      outcome = OpOutcome::Error("RESOURCE_EXHAUSTED", "LimitExceeded: busy");
    }
    if (inline_done_) {
      done(outcome);
    } else {
      std::thread([done = std::move(done), outcome] {
        done(outcome);
      }).detach();
    }
  }

 private:
  const bool inline_done_;
  std::atomic<int>* const refusals_;
  std::atomic<int>* const started_;
};

TEST(RunLoadTest, RunsExactlyTotalOperations) {
  for (bool inline_done : {true, false}) {
    Scheduler scheduler;
    std::atomic<int> refusals{0};
    std::atomic<int> started{0};
    LoadOptions options;
    options.concurrency = 4;
    options.total = 500;
    PhaseResult result = RunLoad(options, &scheduler, [&](int) {
      return std::make_unique<FakeOperation>(inline_done, &refusals, &started);
    });
    EXPECT_EQ(result.completed, 500) << inline_done;
    EXPECT_EQ(started.load(), 500);
    EXPECT_EQ(result.errors.Total(), 0);
    EXPECT_EQ(result.latency.count, 500);
    EXPECT_GT(result.elapsed, absl::ZeroDuration());
  }
}

TEST(RunLoadTest, BacksOffAndRetriesResourceExhausted) {
  Scheduler scheduler;
  std::atomic<int> refusals{6};
  std::atomic<int> started{0};
  LoadOptions options;
  options.concurrency = 2;
  options.total = 10;
  PhaseResult result = RunLoad(options, &scheduler, [&](int) {
    return std::make_unique<FakeOperation>(false, &refusals, &started);
  });
  // Refused attempts are retried, not lost; each refusal is counted.
  EXPECT_EQ(result.completed, 10);
  EXPECT_EQ(result.errors.Count("RESOURCE_EXHAUSTED"), 6);
  EXPECT_EQ(started.load(), 16);
  // Six backoffs of at least 2.5 ms over two slots.
  EXPECT_GE(result.elapsed, absl::Microseconds(7500));
}

TEST(RunLoadTest, RateCapSpacesStarts) {
  Scheduler scheduler;
  std::atomic<int> refusals{0};
  std::atomic<int> started{0};
  LoadOptions options;
  options.concurrency = 8;
  options.total = 11;
  options.rate = 100;  // 11 starts: the last at 100 ms
  PhaseResult result = RunLoad(options, &scheduler, [&](int) {
    return std::make_unique<FakeOperation>(true, &refusals, &started);
  });
  EXPECT_EQ(result.completed, 11);
  EXPECT_GE(result.elapsed, absl::Milliseconds(95));
}

TEST(RunLoadTest, StopsAtTheDuration) {
  Scheduler scheduler;
  std::atomic<int> refusals{0};
  std::atomic<int> started{0};
  LoadOptions options;
  options.concurrency = 2;
  options.duration = absl::Milliseconds(100);
  options.rate = 200;
  PhaseResult result = RunLoad(options, &scheduler, [&](int) {
    return std::make_unique<FakeOperation>(false, &refusals, &started);
  });
  EXPECT_GE(result.elapsed, absl::Milliseconds(100));
  EXPECT_LT(result.elapsed, absl::Seconds(5));
  EXPECT_GT(result.completed, 5);
  EXPECT_LE(result.completed, 25);
}

TEST(RunLoadTest, StopFlagEndsTheRunEarly) {
  Scheduler scheduler;
  std::atomic<int> refusals{0};
  std::atomic<int> started{0};
  std::atomic<bool> stop{false};
  LoadOptions options;
  options.concurrency = 2;
  options.duration = absl::Seconds(60);
  options.rate = 1000;
  options.stop = &stop;
  scheduler.After(absl::Milliseconds(50), [&] { stop.store(true); });
  PhaseResult result = RunLoad(options, &scheduler, [&](int) {
    return std::make_unique<FakeOperation>(false, &refusals, &started);
  });
  EXPECT_LT(result.elapsed, absl::Seconds(5));
  EXPECT_GT(result.completed, 0);
}

TEST(SchedulerTest, RunsCallbacksInTimeOrder) {
  Scheduler scheduler;
  absl::Mutex mu;
  std::vector<int> order;
  absl::Time now = absl::Now();
  for (int i : {3, 1, 2}) {
    scheduler.At(now + absl::Milliseconds(10 * i), [&, i] {
      absl::MutexLock lock(&mu);
      order.push_back(i);
    });
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](std::vector<int>* seen) { return seen->size() == 3; }, &order));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

}  // namespace
}  // namespace stepflow::cli::bench
