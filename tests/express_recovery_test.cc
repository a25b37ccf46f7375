// Asynchronous EXPRESS starts are at-least-once across a shard server
// crash: a gateway and three shard servers run a few hundred EXPRESS
// executions (a Wait of 1-2 s, then a Pass) while a random shard server is
// killed with SIGKILL and restarted on the same data folder and port. Every
// StartExecution that answered OK must end SUCCEEDED.
//
// Starts carry no name, as event-driven producers' usually do, and a start
// that failed in transit is sent again: the first attempt may have started
// an execution whose answer was lost, so an input can run twice — the
// at-least-once contract. The test counts such inputs (executions of the
// machine grouped by the number in their input).
//
// STEPFLOW_EXPRESS_EXECUTIONS=1000 runs more executions.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

constexpr int kDefaultExecutions = 300;
constexpr int kShardServers = 3;
constexpr int kKills = 3;
constexpr int kStarters = 8;
// Starts are spread over this long, so kills hit starts, timers and closes.
constexpr absl::Duration kStartWindow = absl::Seconds(8);

constexpr char kDefinition[] = R"({
  "StartAt": "Pause",
  "States": {
    "Pause": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Done"},
    "Done": {"Type": "Pass", "End": true}
  }})";

int ExecutionCount() {
  const char* env = std::getenv("STEPFLOW_EXPRESS_EXECUTIONS");
  int count = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &count) && count > 0)
    return count;
  return kDefaultExecutions;
}

std::string Input(int n) {
  return absl::StrCat(R"({"n":)", n, R"(,"wait":)", 1 + n % 2, "}");
}

// The number after "n": in an execution's input or output; -1 if none.
int NumberIn(const std::string& json) {
  const size_t at = json.find("\"n\":");
  if (at == std::string::npos) return -1;
  size_t begin = at + 4;
  while (begin < json.size() && json[begin] == ' ') ++begin;
  size_t end = begin;
  while (end < json.size() &&
         std::isdigit(static_cast<unsigned char>(json[end])) != 0)
    ++end;
  int n = -1;
  if (!absl::SimpleAtoi(json.substr(begin, end - begin), &n)) return -1;
  return n;
}

class ExpressRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::TestCluster::Start({.shard_servers = kShardServers,
                                                .logical_shards = 16,
                                                .eventbus = false});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    api_ = std::make_unique<testing::StepFunctionsClient>(
        cluster_->GatewayChannel());
  }
  void TearDown() override {
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
    // The destructor stops every process of the cluster.
    api_.reset();
    cluster_.reset();
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<testing::StepFunctionsClient> api_;
};

TEST_F(ExpressRecoveryTest,
       EveryAcknowledgedStartSucceedsAtLeastOnceThroughKills) {
  const int executions = ExecutionCount();
  const absl::Time test_deadline = absl::Now() + absl::Seconds(75);
  const std::string machine =
      api_->CreateStateMachine("express-recovery", kDefinition, "EXPRESS");
  ASSERT_FALSE(machine.empty());

  // arns[n]: the execution whose StartExecution answered OK for input n.
  std::vector<std::string> arns(executions);
  std::atomic<int> next_start{0};
  std::atomic<int> start_failures{0};
  std::atomic<int> resent_starts{0};
  std::vector<std::thread> starters;
  const absl::Duration start_gap = kStartWindow * kStarters / executions;
  for (int s = 0; s < kStarters; ++s) {
    starters.emplace_back([&] {
      for (int n = next_start++; n < executions; n = next_start++) {
        absl::SleepFor(start_gap);
        v1::StartExecutionRequest start;
        start.set_state_machine_arn(machine);
        start.set_input(Input(n));
        v1::StartExecutionResponse started;
        const absl::Time give_up = absl::Now() + absl::Seconds(30);
        grpc::Status status;
        for (int attempt = 0;; ++attempt) {
          if (attempt > 0) ++resent_starts;
          status = api_->Call(&v1::StepFunctions::Stub::StartExecution, start,
                              &started, absl::Seconds(10));
          if (status.ok() || absl::Now() > give_up ||
              !testing::StepFunctionsClient::IsTransient(status.error_code())) {
            break;
          }
          absl::SleepFor(absl::Milliseconds(100));
        }
        if (status.ok()) {
          arns[n] = started.execution_arn();
        } else {
          ++start_failures;
          std::cerr << "start " << n << ": " << status.error_code() << " "
                    << status.error_message() << "\n";
        }
      }
    });
  }

  const unsigned seed = std::random_device{}();
  std::cout << "express recovery: random seed " << seed << "\n";
  int kills = 0;
  const absl::Status restarted = cluster_->KillShardsAtRandom(
      kKills, absl::Milliseconds(500), absl::Milliseconds(2500),
      absl::Milliseconds(800), seed, &kills);
  for (std::thread& starter : starters) starter.join();
  ASSERT_TRUE(restarted.ok()) << restarted;
  ASSERT_EQ(start_failures.load(), 0);

  // At least once: every acknowledged start closes SUCCEEDED with its input.
  int succeeded = 0;
  for (int n = 0; n < executions; ++n) {
    v1::DescribeExecutionRequest describe;
    describe.set_execution_arn(arns[n]);
    v1::DescribeExecutionResponse described;
    while (true) {
      grpc::Status status =
          api_->CallRetrying(&v1::StepFunctions::Stub::DescribeExecution,
                             describe, &described, test_deadline);
      ASSERT_TRUE(status.ok()) << arns[n] << ": " << status.error_message();
      if (described.status() != "RUNNING" || absl::Now() > test_deadline) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_EQ(described.status(), "SUCCEEDED")
        << arns[n] << " " << described.error() << " " << described.cause();
    EXPECT_EQ(NumberIn(described.output()), n)
        << arns[n] << " " << described.output();
    ++succeeded;

  }
  // EXPRESS executions keep no history, as on AWS (their events go to the
  // execution-log topic when logging is on).
  {
    v1::GetExecutionHistoryRequest history_request;
    history_request.set_execution_arn(arns[0]);
    v1::GetExecutionHistoryResponse history;
    grpc::Status status = api_->Call(&v1::StepFunctions::Stub::GetExecutionHistory,
                                     history_request, &history);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(),
              "InvalidArn: Invalid Arn: 'Resource type not valid in this context: express'");
  }

  // Inputs that ran as more than one execution: a start whose first answer
  // was lost and that was sent again.
  std::map<int, int> runs_by_input;
  int listed = 0;
  v1::ListExecutionsRequest list;
  list.set_state_machine_arn(machine);
  list.set_max_results(1000);
  while (true) {
    v1::ListExecutionsResponse page;
    grpc::Status status = api_->CallRetrying(
        &v1::StepFunctions::Stub::ListExecutions, list, &page, test_deadline);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const v1::ExecutionListItem& item : page.executions()) {
      ++listed;
      v1::DescribeExecutionRequest describe;
      describe.set_execution_arn(item.execution_arn());
      v1::DescribeExecutionResponse described;
      status = api_->CallRetrying(&v1::StepFunctions::Stub::DescribeExecution,
                                  describe, &described, test_deadline);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ++runs_by_input[NumberIn(described.input())];
    }
    if (page.next_token().empty()) break;
    list.set_next_token(page.next_token());
  }
  int ran_twice = 0;
  for (const auto& [n, runs] : runs_by_input) {
    EXPECT_GE(n, 0) << "an execution without a known input";
    if (runs > 1) ++ran_twice;
  }
  EXPECT_EQ(runs_by_input.size(), static_cast<size_t>(executions));
  EXPECT_GE(listed, executions);
  std::cout << "express recovery: " << succeeded << " of " << executions
            << " acknowledged starts succeeded through " << kills
            << " shard server kills; " << resent_starts.load()
            << " starts sent again; " << ran_twice << " inputs ran twice ("
            << listed << " executions in all)\n";
}

}  // namespace
}  // namespace stepflow
