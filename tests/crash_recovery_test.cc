// Durability of Standard executions under crashes: a gateway and three
// shard servers run a thousand executions (Wait, Parallel, Map, activity
// tasks served by in-test pollers) while shard servers are killed with
// SIGKILL at random moments and restarted on the same data folder and port.
// At the end every execution succeeded exactly once with the expected
// output, its history is contiguous with every state entered and exited
// once, and no task token was handed to a poller twice.
//
// STEPFLOW_CRASH_EXECUTIONS=N runs another number of executions;
// STEPFLOW_CRASH_SEED=S replays the kill schedule a run printed.
#include <grpcpp/grpcpp.h>

#include <algorithm>
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
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

constexpr int kDefaultExecutions = 1000;
constexpr int kShardServers = 3;
constexpr int kKills = 6;
// Starts are spread over this long, so kills hit every phase of the runs.
constexpr absl::Duration kStartWindow = absl::Seconds(12);
constexpr int kPollers = 4;
constexpr char kActivityArn[] = "arn:aws:states:us-east-1:123456789012:activity:crash-work";

int ExecutionCount() {
  const char* env = std::getenv("STEPFLOW_CRASH_EXECUTIONS");
  int count = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &count) && count > 0) return count;
  return kDefaultExecutions;
}

unsigned KillSeed() {
  const char* env = std::getenv("STEPFLOW_CRASH_SEED");
  unsigned seed = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &seed)) return seed;
  return std::random_device{}();
}

// Wait 1-2 s (a durable timer), then in parallel an activity task (which
// times out and is retried when its hand-over was lost in a crash) and an
// inline Map over three items.
std::string Definition() {
  return absl::StrCat(R"({
    "StartAt": "Pause",
    "States": {
      "Pause": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Fan"},
      "Fan": {"Type": "Parallel", "Next": "Done", "Branches": [
        {"StartAt": "Work", "States": {
          "Work": {"Type": "Task", "Resource": ")", kActivityArn, R"(",
                   "TimeoutSeconds": 8,
                   "Retry": [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1,
                              "MaxAttempts": 20, "BackoffRate": 1.0}],
                   "End": true}}},
        {"StartAt": "Each", "States": {
          "Each": {"Type": "Map", "ItemsPath": "$.items", "End": true,
                   "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Item",
                                     "States": {"Item": {"Type": "Pass", "End": true}}}}}}
      ]},
      "Done": {"Type": "Pass", "End": true}
    }})");
}

std::string Input(int n) {
  return absl::StrCat(R"({"n":)", n, R"(,"wait":)", 1 + n % 2, R"(,"items":[1,2,3]})");
}

std::string ExpectedOutput(int n) { return absl::StrCat(R"([{"d":)", 2 * n, R"(},[1,2,3]])"); }

std::string WithoutSpaces(std::string text) {
  return absl::StrReplaceAll(text, {{" ", ""}, {"\n", ""}});
}

// The number after "n": in a task input.
int NumberIn(const std::string& input) {
  const size_t at = input.find("\"n\":");
  if (at == std::string::npos) return -1;
  size_t end = at + 4;
  while (end < input.size() && (std::isdigit(static_cast<unsigned char>(input[end])) != 0)) ++end;
  int n = -1;
  if (!absl::SimpleAtoi(input.substr(at + 4, end - at - 4), &n)) return -1;
  return n;
}

class CrashRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::TestCluster::Start(
        {.shard_servers = kShardServers, .logical_shards = 16, .eventbus = false});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    stub_ = v1::StepFunctions::NewStub(cluster_->GatewayChannel());
    api_ = std::make_unique<testing::StepFunctionsClient>(cluster_->GatewayChannel());
  }
  void TearDown() override {
    stop_pollers_ = true;
    for (std::thread& poller : pollers_) poller.join();
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
  }

  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (v1::StepFunctions::Stub::*method)(grpc::ClientContext*,
                                                                    const Request&, Response*),
                    const Request& request, Response* response,
                    absl::Duration timeout = absl::Seconds(20)) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return (stub_.get()->*method)(&context, request, response);
  }

  // Retries through crashes (see StepFunctionsClient::CallRetrying).
  template <typename Request, typename Response>
  grpc::Status CallRetrying(grpc::Status (v1::StepFunctions::Stub::*method)(
                                grpc::ClientContext*, const Request&, Response*),
                            const Request& request, Response* response, absl::Time deadline) {
    return api_->CallRetrying(method, request, response, deadline, absl::Milliseconds(200));
  }


  void Poll(int index) {
    while (!stop_pollers_) {
      v1::GetActivityTaskRequest request;
      request.set_activity_arn(kActivityArn);
      request.set_worker_name(absl::StrCat("poller-", index));
      v1::GetActivityTaskResponse task;
      grpc::Status status =
          Call(&v1::StepFunctions::Stub::GetActivityTask, request, &task, absl::Seconds(5));
      if (!status.ok()) {
        absl::SleepFor(absl::Milliseconds(100));
        continue;
      }
      if (task.task_token().empty()) continue;
      {
        absl::MutexLock lock(&deliveries_mu_);
        ++deliveries_[task.task_token()];
      }
      v1::SendTaskSuccessRequest success;
      success.set_task_token(task.task_token());
      success.set_output(absl::StrCat(R"({"d":)", 2 * NumberIn(task.input()), "}"));
      v1::SendTaskSuccessResponse answered;
      // A crash may lose the answer; the task then times out and is retried.
      (void)CallRetrying(&v1::StepFunctions::Stub::SendTaskSuccess, success, &answered,
                         absl::Now() + absl::Seconds(6));
    }
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<v1::StepFunctions::Stub> stub_;
  std::unique_ptr<testing::StepFunctionsClient> api_;
  std::atomic<bool> stop_pollers_{false};
  std::vector<std::thread> pollers_;
  absl::Mutex deliveries_mu_;
  std::map<std::string, int> deliveries_ ABSL_GUARDED_BY(deliveries_mu_);
};

TEST_F(CrashRecoveryTest, EveryExecutionFinishesExactlyOnceThroughKills) {
  const int executions = ExecutionCount();
  const absl::Time test_deadline = absl::Now() + absl::Seconds(240);

  v1::CreateActivityRequest activity;
  activity.set_name("crash-work");
  v1::CreateActivityResponse activity_created;
  ASSERT_TRUE(Call(&v1::StepFunctions::Stub::CreateActivity, activity, &activity_created).ok());
  v1::CreateStateMachineRequest create;
  create.set_name("crash-recovery");
  create.set_definition(Definition());
  create.set_type("STANDARD");
  create.set_role_arn("arn:aws:iam::123456789012:role/stepflow");
  v1::CreateStateMachineResponse created;
  grpc::Status create_status =
      Call(&v1::StepFunctions::Stub::CreateStateMachine, create, &created);
  ASSERT_TRUE(create_status.ok()) << create_status.error_message();

  for (int i = 0; i < kPollers; ++i) pollers_.emplace_back([this, i] { Poll(i); });

  // Starters (names make retried starts idempotent) race with the killer.
  std::vector<std::string> arns(executions);
  std::atomic<int> next_start{0};
  std::atomic<int> start_failures{0};
  // Set when a restart or a start failed: a server that stays down would
  // hold every start routed to it for its whole retry time, past the test's
  // timeout.
  std::atomic<bool> stop_starting{false};
  std::vector<std::thread> starters;
  constexpr int kStarters = 4;
  const absl::Duration start_gap = kStartWindow * kStarters / executions;
  for (int s = 0; s < kStarters; ++s) {
    starters.emplace_back([&] {
      for (int n = next_start++; n < executions && !stop_starting; n = next_start++) {
        absl::SleepFor(start_gap);
        v1::StartExecutionRequest start;
        start.set_state_machine_arn(created.state_machine_arn());
        start.set_name(absl::StrCat("run-", n));
        start.set_input(Input(n));
        v1::StartExecutionResponse started;
        grpc::Status status =
            CallRetrying(&v1::StepFunctions::Stub::StartExecution, start, &started,
                         std::min(absl::Now() + absl::Seconds(60), test_deadline));
        if (status.ok()) {
          arns[n] = started.execution_arn();
        } else if (status.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
          // Names are unique here, so an earlier attempt of this call
          // started it and its answer was lost; the execution closed before
          // the attempt that was sent again (AWS then answers
          // ExecutionAlreadyExists too).
          arns[n] = absl::StrCat(
              "arn:aws:states:us-east-1:123456789012:execution:crash-recovery:", start.name());
        } else {
          // The test has failed: the rest would only wait out their retries.
          ++start_failures;
          stop_starting = true;
          std::cerr << "start " << n << ": " << status.error_message() << "\n";
        }
      }
    });
  }

  // Kills land while executions start, wait on timers, run tasks and fan
  // out; the starter threads are joined before any assertion can return.
  const unsigned seed = KillSeed();
  std::cout << "crash recovery: random seed " << seed << std::endl;
  int kills = 0;
  const absl::Status restarted = cluster_->KillShardsAtRandom(
      kKills, absl::Milliseconds(500), absl::Milliseconds(3500), absl::Milliseconds(1000), seed,
      &kills);
  if (!restarted.ok()) stop_starting = true;
  for (std::thread& starter : starters) starter.join();
  ASSERT_TRUE(restarted.ok()) << restarted;
  ASSERT_EQ(start_failures.load(), 0);

  // Every execution closes, exactly once, with the expected output.
  int succeeded = 0;
  for (int n = 0; n < executions; ++n) {
    v1::DescribeExecutionRequest describe;
    describe.set_execution_arn(arns[n]);
    v1::DescribeExecutionResponse described;
    while (true) {
      grpc::Status status = CallRetrying(&v1::StepFunctions::Stub::DescribeExecution, describe,
                                         &described, test_deadline);
      ASSERT_TRUE(status.ok()) << arns[n] << ": " << status.error_message();
      if (described.status() != "RUNNING" || absl::Now() > test_deadline) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ASSERT_EQ(described.status(), "SUCCEEDED") << arns[n] << " " << described.error() << " "
                                               << described.cause();
    EXPECT_EQ(WithoutSpaces(described.output()), ExpectedOutput(n)) << arns[n];
    ++succeeded;

    v1::GetExecutionHistoryRequest history_request;
    history_request.set_execution_arn(arns[n]);
    history_request.set_max_results(1000);
    v1::GetExecutionHistoryResponse history;
    grpc::Status status = CallRetrying(&v1::StepFunctions::Stub::GetExecutionHistory,
                                       history_request, &history, test_deadline);
    ASSERT_TRUE(status.ok()) << status.error_message();
    std::map<std::string, int> entered;
    std::map<std::string, int> exited;
    int closes = 0;
    int64_t expected_id = 1;
    for (const v1::HistoryEvent& event : history.events()) {
      EXPECT_EQ(event.id(), expected_id++) << arns[n] << " has a gap or duplicate";
      const std::string& type = event.type();
      if (type.size() > 7 && type.compare(type.size() - 7, 7, "Entered") == 0) {
        ++entered[event.state_entered_event_details().name()];
      } else if (type.size() > 6 && type.compare(type.size() - 6, 6, "Exited") == 0) {
        ++exited[event.state_exited_event_details().name()];
      }
      if (type.rfind("Execution", 0) == 0 && type != "ExecutionStarted") ++closes;
    }
    EXPECT_EQ(closes, 1) << arns[n];
    const std::map<std::string, int> once = {{"Pause", 1}, {"Fan", 1}, {"Work", 1},
                                             {"Each", 1},  {"Item", 3}, {"Done", 1}};
    EXPECT_EQ(entered, once) << arns[n];
    EXPECT_EQ(exited, once) << arns[n];
  }

  int duplicates = 0;
  size_t tokens = 0;
  {
    absl::MutexLock lock(&deliveries_mu_);
    tokens = deliveries_.size();
    for (const auto& [token, count] : deliveries_) {
      if (count != 1) ++duplicates;
    }
  }
  EXPECT_EQ(duplicates, 0) << "task tokens delivered more than once";
  EXPECT_GE(tokens, static_cast<size_t>(executions));
  std::cout << "crash recovery: " << succeeded << " of " << executions
            << " executions succeeded after surviving " << kills << " shard server kills; "
            << tokens << " task tokens delivered once each\n";
}

}  // namespace
}  // namespace stepflow
