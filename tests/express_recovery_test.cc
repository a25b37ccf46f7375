// Asynchronous EXPRESS starts are at-least-once across a shard server
// crash: a gateway and three shard servers run a few hundred EXPRESS
// executions (a Wait of 1-2 s, then a Pass) while a random shard server is
// killed with SIGKILL and restarted on the same data folder and port. Every
// StartExecution that answered OK must end SUCCEEDED.
//
// A closed EXPRESS execution is kept in memory only (AWS keeps nothing
// queryable of them), so a restart forgets it: the test sees the ends where
// AWS users see them, in the execution log. The machine logs at level ALL
// with execution data, and the test reads the log topic with kcat.
//
// Starts carry no name, as event-driven producers' usually do, and a start
// that failed in transit is sent again: the first attempt may have started
// an execution whose answer was lost, so an input can run twice — the
// at-least-once contract. The test counts such inputs (started executions
// in the log, grouped by the number in their input).
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
#include "common/json/json.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/cluster.h"
#include "tests/fixture/kcat.h"

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
  v1::CreateStateMachineRequest create;
  create.set_name("express-recovery");
  create.set_definition(kDefinition);
  create.set_type("EXPRESS");
  create.set_role_arn("arn:aws:iam::123456789012:role/stepflow");
  v1::LoggingConfiguration* logging = create.mutable_logging_configuration();
  logging->set_level("ALL");
  logging->set_include_execution_data(true);
  logging->add_destinations()->mutable_cloud_watch_logs_log_group()->set_log_group_arn(
      "arn:aws:logs:us-east-1:123456789012:log-group:express-recovery:*");
  v1::CreateStateMachineResponse created;
  grpc::Status created_status =
      api_->Call(&v1::StepFunctions::Stub::CreateStateMachine, create, &created);
  ASSERT_TRUE(created_status.ok()) << created_status.error_message();
  const std::string machine = created.state_machine_arn();

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

  // At least once: every acknowledged start closes SUCCEEDED with its
  // input, as its execution-log records say. They come through the
  // outbox, so the test reads the topic again until all are there.
  std::map<std::string, int> succeeded_number;   // ARN -> number in its output
  std::map<std::string, int> started_number;     // ARN -> number in its input
  std::map<std::string, std::string> other_end;  // ARN -> a closing event not a success
  auto all_ended = [&] {
    for (const std::string& arn : arns) {
      if (!succeeded_number.contains(arn) && !other_end.contains(arn)) return false;
    }
    return true;
  };
  const std::string kcat_stderr = ::testing::TempDir() + "express_recovery_kcat.err";
  while (true) {
    auto records = testing::ReadTopicWithKcat(cluster_->kafka_bootstrap(),
                                              "stepflow.execution-logs", kcat_stderr);
    ASSERT_TRUE(records.ok()) << records.status();
    succeeded_number.clear();
    started_number.clear();
    other_end.clear();
    for (const testing::TopicRecord& record : *records) {
      auto log = json::Parse(record.value);
      ASSERT_TRUE(log.ok() && log->IsObject()) << record.value;
      if (!log->HasMember("execution_arn") || !log->HasMember("type")) continue;
      const std::string arn = (*log)["execution_arn"].GetString();
      const std::string type = (*log)["type"].GetString();
      const json::Value& details = (*log)["details"];
      auto text_of = [&](const char* field) -> std::string {
        if (!details.IsObject() || !details.HasMember(field) || !details[field].IsString())
          return "";
        return details[field].GetString();
      };
      if (type == "ExecutionStarted") {
        started_number[arn] = NumberIn(text_of("input"));
      } else if (type == "ExecutionSucceeded") {
        succeeded_number[arn] = NumberIn(text_of("output"));
      } else if (type == "ExecutionFailed" || type == "ExecutionTimedOut" ||
                 type == "ExecutionAborted") {
        other_end[arn] = type;
      }
    }
    if (all_ended() || absl::Now() > test_deadline) break;
    absl::SleepFor(absl::Milliseconds(500));
  }
  int succeeded = 0;
  for (int n = 0; n < executions; ++n) {
    auto it = succeeded_number.find(arns[n]);
    ASSERT_TRUE(it != succeeded_number.end())
        << arns[n] << " did not succeed: "
        << (other_end.contains(arns[n]) ? other_end[arns[n]] : "no end in the log");
    EXPECT_EQ(it->second, n) << arns[n];
    ++succeeded;
  }
  // EXPRESS executions keep no history, as on AWS (their events go to the
  // execution-log topic when logging is on). Asked of one that runs: a
  // closed one may be forgotten already.
  {
    v1::StartExecutionRequest start;
    start.set_state_machine_arn(machine);
    start.set_input(R"({"n": -1, "wait": 30})");
    v1::StartExecutionResponse running;
    grpc::Status started = api_->CallRetrying(&v1::StepFunctions::Stub::StartExecution, start,
                                              &running, absl::Now() + absl::Seconds(20));
    ASSERT_TRUE(started.ok()) << started.error_message();
    v1::GetExecutionHistoryRequest history_request;
    history_request.set_execution_arn(running.execution_arn());
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
  for (const auto& [arn, n] : started_number) ++runs_by_input[n];
  int ran_twice = 0;
  for (const auto& [n, runs] : runs_by_input) {
    EXPECT_GE(n, 0) << "an execution without a known input";
    if (runs > 1) ++ran_twice;
  }
  EXPECT_EQ(runs_by_input.size(), static_cast<size_t>(executions));
  std::cout << "express recovery: " << succeeded << " of " << executions
            << " acknowledged starts succeeded through " << kills
            << " shard server kills; " << resent_starts.load()
            << " starts sent again; " << ran_twice << " inputs ran twice ("
            << started_number.size() << " executions started in all)\n";
}

}  // namespace
}  // namespace stepflow
