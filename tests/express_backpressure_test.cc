// Backpressure through the gateway: shard servers started with a tiny
// --max-inflight-transitions are flooded with concurrent EXPRESS
// StartExecution calls. Some must be refused, and a refusal must come back
// fast (well under the call's deadline) as RESOURCE_EXHAUSTED with AWS's
// ThrottlingException text; a refused start must leave nothing behind (the
// executions that exist are exactly the admitted ones), the shard servers'
// memory must stay bounded, and once the flood stops every start succeeds.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

constexpr int kShardServers = 2;
// A few transitions in flight per shard server: the flood's two dozen
// concurrent starts per server exceed it, one start at a time (with the
// transitions of the executions it started) does not.
constexpr char kMaxInflight[] = "4";
constexpr int kCallers = 48;
constexpr int kStartsPerCaller = 20;
constexpr int kMaxRounds = 3;
constexpr int kRecoveryStarts = 30;
constexpr absl::Duration kCallDeadline = absl::Seconds(10);
// "Quickly": a refusal is answered within a tenth of the deadline even on a
// busy 2-core machine.
constexpr absl::Duration kMaxRefusalLatency = absl::Seconds(1);
// Resident memory a shard server may gain during the flood.
constexpr int64_t kMaxRssGrowthKb = 256 * 1024;

constexpr char kDefinition[] = R"({
  "StartAt": "Pause",
  "States": {
    "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
    "Done": {"Type": "Pass", "End": true}
  }})";

// VmRSS of `pid` in KiB; -1 when unreadable.
int64_t ResidentKb(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (!absl::StartsWith(line, "VmRSS:")) continue;
    std::string digits;
    for (char c : line) {
      if (std::isdigit(static_cast<unsigned char>(c)) != 0) digits.push_back(c);
    }
    int64_t kb = -1;
    if (absl::SimpleAtoi(digits, &kb)) return kb;
  }
  return -1;
}

struct Outcome {
  std::string name;
  grpc::Status status;
  absl::Duration latency;
};

class ExpressBackpressureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::TestCluster::Start(
        {.shard_servers = kShardServers,
         .logical_shards = 8,
         .eventbus = false,
         .shard_flags = {"--max-inflight-transitions", kMaxInflight}});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    api_ = std::make_unique<testing::StepFunctionsClient>(cluster_->GatewayChannel());
  }
  void TearDown() override {
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
    api_.reset();
    cluster_.reset();  // stops every process
  }

  Outcome Start(const std::string& machine, const std::string& name) {
    v1::StartExecutionRequest request;
    request.set_state_machine_arn(machine);
    request.set_name(name);
    request.set_input(R"({"payload":"x"})");
    v1::StartExecutionResponse response;
    const absl::Time asked = absl::Now();
    grpc::Status status =
        api_->Call(&v1::StepFunctions::Stub::StartExecution, request, &response, kCallDeadline);
    return {name, status, absl::Now() - asked};
  }

  // Starts from kCallers threads at once, as fast as answers come.
  std::vector<Outcome> Flood(const std::string& machine, int round) {
    absl::Mutex mu;
    std::vector<Outcome> outcomes;
    std::vector<std::thread> callers;
    for (int c = 0; c < kCallers; ++c) {
      callers.emplace_back([&, c] {
        for (int i = 0; i < kStartsPerCaller; ++i) {
          Outcome outcome = Start(machine, absl::StrCat("flood-", round, "-", c, "-", i));
          absl::MutexLock lock(&mu);
          outcomes.push_back(std::move(outcome));
        }
      });
    }
    for (std::thread& caller : callers) caller.join();
    return outcomes;
  }

  // Every execution of `machine` (all pages).
  std::vector<v1::ExecutionListItem> ListAll(const std::string& machine) {
    std::vector<v1::ExecutionListItem> all;
    v1::ListExecutionsRequest request;
    request.set_state_machine_arn(machine);
    request.set_max_results(1000);
    while (true) {
      v1::ListExecutionsResponse page;
      grpc::Status status = api_->Call(&v1::StepFunctions::Stub::ListExecutions, request, &page);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) return all;
      all.insert(all.end(), page.executions().begin(), page.executions().end());
      if (page.next_token().empty()) return all;
      request.set_next_token(page.next_token());
    }
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<testing::StepFunctionsClient> api_;
};

TEST_F(ExpressBackpressureTest, RefusesFastUnderFloodAndRecoversWhenItStops) {
  const std::string machine = api_->CreateStateMachine("flooded", kDefinition, "EXPRESS");
  ASSERT_FALSE(machine.empty());
  std::vector<pid_t> pids = cluster_->ServerPids();  // gateway first, then shards
  std::vector<int64_t> rss_before;
  for (pid_t pid : pids) rss_before.push_back(ResidentKb(pid));

  // Flood until some starts are refused (a quiet machine may absorb a round).
  std::vector<Outcome> outcomes;
  int refused = 0;
  for (int round = 0; round < kMaxRounds && refused == 0; ++round) {
    std::vector<Outcome> more = Flood(machine, round);
    for (const Outcome& outcome : more) {
      if (outcome.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++refused;
    }
    outcomes.insert(outcomes.end(), more.begin(), more.end());
  }
  ASSERT_GT(refused, 0) << "no start was refused in " << outcomes.size() << " calls";

  std::vector<std::string> admitted;
  std::vector<std::string> refused_names;
  absl::Duration slowest_refusal;
  std::vector<absl::Duration> refusal_latencies;
  absl::Duration slowest_admission;
  for (const Outcome& outcome : outcomes) {
    if (outcome.status.ok()) {
      admitted.push_back(outcome.name);
      slowest_admission = std::max(slowest_admission, outcome.latency);
      continue;
    }
    ASSERT_EQ(outcome.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << outcome.name << ": " << outcome.status.error_message();
    EXPECT_TRUE(absl::StartsWith(outcome.status.error_message(), "ThrottlingException: "))
        << outcome.status.error_message();
    refused_names.push_back(outcome.name);
    refusal_latencies.push_back(outcome.latency);
    slowest_refusal = std::max(slowest_refusal, outcome.latency);
  }
  std::sort(refusal_latencies.begin(), refusal_latencies.end());
  const absl::Duration median_refusal = refusal_latencies[refusal_latencies.size() / 2];
  EXPECT_LT(slowest_refusal, kMaxRefusalLatency);
  EXPECT_LT(slowest_admission, kCallDeadline);
  EXPECT_FALSE(admitted.empty());

  // Bounded: memory of every server, and no work beyond what was admitted
  // (a refused start left no execution behind).
  for (size_t i = 0; i < pids.size(); ++i) {
    const int64_t after = ResidentKb(pids[i]);
    if (rss_before[i] < 0 || after < 0) continue;
    EXPECT_LT(after - rss_before[i], kMaxRssGrowthKb) << "process " << pids[i];
  }
  const std::vector<v1::ExecutionListItem> listed = ListAll(machine);
  EXPECT_EQ(listed.size(), admitted.size());
  std::string arn_prefix = machine;
  arn_prefix.replace(arn_prefix.find(":stateMachine:"), 14, ":execution:");
  arn_prefix += ":";
  for (size_t i = 0; i < refused_names.size() && i < 20; ++i) {
    v1::DescribeExecutionRequest describe;
    describe.set_execution_arn(arn_prefix + refused_names[i]);
    v1::DescribeExecutionResponse described;
    grpc::Status status =
        api_->Call(&v1::StepFunctions::Stub::DescribeExecution, describe, &described);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND)
        << refused_names[i] << " was refused but exists";
  }

  // The flood is over: once the admitted executions have closed, every start
  // succeeds (one at a time, the load the limit admits).
  const absl::Time drained_by = absl::Now() + absl::Seconds(30);
  while (absl::Now() < drained_by) {
    int running = 0;
    for (const v1::ExecutionListItem& item : ListAll(machine)) {
      if (item.status() == "RUNNING") ++running;
    }
    if (running == 0) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  int recovered = 0;
  for (int i = 0; i < kRecoveryStarts; ++i) {
    Outcome outcome = Start(machine, absl::StrCat("after-", i));
    EXPECT_TRUE(outcome.status.ok())
        << outcome.name << ": " << outcome.status.error_code() << " "
        << outcome.status.error_message();
    if (outcome.status.ok()) ++recovered;
  }
  for (int i = 0; i < kRecoveryStarts; ++i) {
    EXPECT_EQ(api_->AwaitClosed(arn_prefix + absl::StrCat("after-", i)).status(), "SUCCEEDED");
  }
  for (const std::string& name : admitted) {
    EXPECT_EQ(api_->AwaitClosed(arn_prefix + name).status(), "SUCCEEDED") << name;
  }
  std::cout << "express backpressure: " << outcomes.size() << " starts, " << admitted.size()
            << " admitted, " << refused << " refused (median "
            << absl::FormatDuration(median_refusal) << ", slowest "
            << absl::FormatDuration(slowest_refusal) << "); slowest admission "
            << absl::FormatDuration(slowest_admission) << "; " << recovered << " of "
            << kRecoveryStarts << " starts succeeded after the flood\n";
}

}  // namespace
}  // namespace stepflow
