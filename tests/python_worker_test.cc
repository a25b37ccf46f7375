// examples/python-worker (a worker written in Python, on stubs generated at
// build time from proto/stepflow/v1) against a real cluster: the activity
// API serves workers in any language that speaks gRPC. The worker runs as a
// child process and is stopped at teardown, also when a test fails.
//
// Skips when the Python interpreter CMake chose cannot import grpc and
// google.protobuf (Debian: python3-grpcio, python3-protobuf) or the stubs
// were not generated (protobuf-compiler-grpc's grpc_python_plugin).
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/child_process.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kActivityArn[] = "arn:aws:states:us-east-1:123456789012:activity:py-enrich";
constexpr char kWorkerName[] = "python-test";

// Why the Python worker cannot run here, or "" when it can.
std::string MissingPrerequisite() {
  const std::string python = STEPFLOW_PYTHON;
  if (python.empty() || access(python.c_str(), X_OK) != 0) {
    return absl::StrCat("no Python 3 interpreter (\"", python,
                        "\"); install python3, python3-grpcio and python3-protobuf");
  }
  const std::string probe =
      absl::StrCat("'", python, "' -c 'import grpc, google.protobuf' >/dev/null 2>&1");
  if (std::system(probe.c_str()) != 0) {
    return absl::StrCat(python,
                        " cannot import grpc and google.protobuf; install python3-grpcio and "
                        "python3-protobuf");
  }
  const std::string stubs = absl::StrCat(STEPFLOW_PYTHONPATH, "/stepflow/v1/states_pb2_grpc.py");
  if (!std::filesystem::exists(stubs)) {
    return absl::StrCat(stubs,
                        " was not generated; install protobuf-compiler-grpc (grpc_python_plugin) "
                        "and build stepflow_python_worker");
  }
  return "";
}

// The Task state of every machine below, with `extra` fields added.
std::string EnrichTask(const std::string& extra) {
  return absl::StrCat(R"({"Type": "Task", "Resource": ")", kActivityArn, R"(")", extra, "}");
}

class PythonWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = MissingPrerequisite();
    if (!missing.empty()) GTEST_SKIP() << missing;
    auto cluster = testing::TestCluster::Start({.shard_servers = 2, .logical_shards = 16});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    Connect();
    v1::CreateActivityRequest activity;
    activity.set_name("py-enrich");
    v1::CreateActivityResponse created;
    grpc::Status status = Call(&v1::StepFunctions::Stub::CreateActivity, activity, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(created.activity_arn(), kActivityArn);
  }

  void TearDown() override {
    if (HasFailure() && cluster_) {
      std::cerr << cluster_->Logs();
      if (worker_) std::cerr << "---- python worker ----\n" << worker_->LogTail() << "\n";
    }
    if (worker_) {
      // SIGTERM: running tasks finish, then the worker exits 0.
      EXPECT_EQ(worker_->Stop(SIGTERM, absl::Seconds(15)), 0) << worker_->LogTail();
      worker_.reset();
    }
    cluster_.reset();
  }

  void Connect() {
    api_ = std::make_unique<testing::StepFunctionsClient>(cluster_->GatewayChannel());
  }

  // Starts examples/python-worker/worker.py for kActivityArn against the
  // gateway and waits until it polls.
  void StartWorker(std::vector<std::string> extra_flags = {}) {
    ASSERT_EQ(worker_, nullptr);
    std::vector<std::string> argv = {"/usr/bin/env",
                                     absl::StrCat("PYTHONPATH=", STEPFLOW_PYTHONPATH),
                                     STEPFLOW_PYTHON,
                                     STEPFLOW_PYTHON_WORKER,
                                     "--endpoint",
                                     cluster_->gateway_address(),
                                     "--activity-arn",
                                     kActivityArn,
                                     "--worker-name",
                                     kWorkerName};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    auto worker = testing::ChildProcess::Start(
        "python-worker", std::move(argv),
        absl::StrCat(cluster_->work_dir(), "/python-worker-", ++workers_started_, ".log"));
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = std::move(*worker);
    auto polling = worker_->WaitForOutput("polling arn:", absl::Seconds(30));
    ASSERT_TRUE(polling.ok()) << polling.status();
  }

  // Stops the worker with SIGTERM; its exit code.
  int StopWorker() {
    int code = worker_->Stop(SIGTERM, absl::Seconds(15));
    worker_.reset();
    return code;
  }

  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (v1::StepFunctions::Stub::*method)(grpc::ClientContext*,
                                                                    const Request&, Response*),
                    const Request& request, Response* response) {
    return api_->Call(method, request, response);
  }
  std::string CreateMachine(const std::string& name, const std::string& definition) {
    return api_->CreateStateMachine(name, definition);
  }
  std::string Start(const std::string& machine, const std::string& name,
                    const std::string& input) {
    return api_->StartExecution(machine, input, name);
  }
  v1::DescribeExecutionResponse Describe(const std::string& arn) { return api_->Describe(arn); }
  v1::DescribeExecutionResponse AwaitClosed(const std::string& arn) {
    return api_->AwaitClosed(arn, absl::Seconds(30));
  }
  std::vector<v1::HistoryEvent> History(const std::string& arn) { return api_->History(arn); }

  std::vector<std::string> EventsOfType(const std::string& arn, const std::string& type) {
    std::vector<std::string> found;
    for (const auto& event : History(arn)) {
      if (event.type() != type) continue;
      if (event.has_activity_started_event_details()) {
        found.push_back(event.activity_started_event_details().worker_name());
      } else if (event.has_activity_failed_event_details()) {
        found.push_back(absl::StrCat(event.activity_failed_event_details().error(), ": ",
                                     event.activity_failed_event_details().cause()));
      } else {
        found.push_back("");
      }
    }
    return found;
  }

  // Waits until the execution's task reached a worker.
  bool AwaitActivityStarted(const std::string& arn) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      if (!EventsOfType(arn, "ActivityStarted").empty()) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<testing::StepFunctionsClient> api_;
  std::unique_ptr<testing::ChildProcess> worker_;
  int workers_started_ = 0;
};

// The shape of examples/first-workflow: the handler's result lands under
// $.enriched.
std::string OrdersDefinition() {
  return absl::StrCat(R"({"StartAt": "Prepare", "States": {
      "Prepare": {"Type": "Pass", "Parameters": {"order.$": "$.order", "stage": "prepared"},
                  "Next": "Enrich"},
      "Enrich": )", EnrichTask(R"(, "ResultPath": "$.enriched", "Next": "Done")"), R"(,
      "Done": {"Type": "Succeed"}}})");
}

TEST_F(PythonWorkerTest, ExecutionsSucceedWithTheOutputThePythonHandlerComputed) {
  StartWorker({"--concurrency", "3"});
  const std::string machine = CreateMachine("orders", OrdersDefinition());
  std::vector<std::string> executions;
  const std::vector<int> orders = {0, 21, 50, 64};
  for (int order : orders) {
    executions.push_back(
        Start(machine, absl::StrCat("order-", order), absl::StrCat(R"({"order": )", order, "}")));
  }
  for (size_t i = 0; i < orders.size(); ++i) {
    auto described = AwaitClosed(executions[i]);
    const int score = orders[i] * 2;
    EXPECT_EQ(described.status(), "SUCCEEDED") << described.error() << ": " << described.cause();
    EXPECT_EQ(described.output(),
              absl::StrCat(R"({"order":)", orders[i], R"(,"stage":"prepared","enriched":)",
                           R"({"score":)", score, R"(,"tier":")",
                           score >= 100 ? "gold" : "standard", R"(","scored_by":"python"}})"));
  }
  EXPECT_EQ(EventsOfType(executions[1], "ActivityStarted").size(), 1u);
  EXPECT_EQ(EventsOfType(executions[1], "ActivitySucceeded").size(), 1u);
}

TEST_F(PythonWorkerTest, HandlerExceptionIsTheErrorThatRetryAndCatchSee) {
  StartWorker();
  // Retry and Catch name the Python exception class.
  const std::string caught = CreateMachine(
      "caught", absl::StrCat(R"({"StartAt": "Enrich", "States": {"Enrich": )",
                             EnrichTask(R"(,
        "Retry": [{"ErrorEquals": ["InvalidOrder"], "IntervalSeconds": 1, "MaxAttempts": 1}],
        "Catch": [{"ErrorEquals": ["InvalidOrder"], "ResultPath": "$.rejection",
                   "Next": "Rejected"}],
        "Next": "Accepted")"),
                             R"(,
      "Accepted": {"Type": "Succeed"},
      "Rejected": {"Type": "Pass", "Result": "rejected", "ResultPath": "$.outcome",
                   "End": true}}})"));
  const std::string arn = Start(caught, "not-a-number", R"({"order": "twenty-one"})");
  auto described = AwaitClosed(arn);
  EXPECT_EQ(described.status(), "SUCCEEDED") << described.error() << ": " << described.cause();
  EXPECT_EQ(described.output(),
            R"({"order":"twenty-one","rejection":{"Error":"InvalidOrder",)"
            R"("Cause":"order must be a non-negative integer, got 'twenty-one'"},)"
            R"("outcome":"rejected"})");
  // The first attempt and the retry, each reported by the worker.
  EXPECT_THAT(
      EventsOfType(arn, "ActivityFailed"),
      ElementsAre("InvalidOrder: order must be a non-negative integer, got 'twenty-one'",
                  "InvalidOrder: order must be a non-negative integer, got 'twenty-one'"));

  // Without a Catch the exception fails the execution.
  const std::string uncaught = CreateMachine(
      "uncaught",
      absl::StrCat(R"({"StartAt": "Enrich", "States": {"Enrich": )", EnrichTask(R"(, "End": true)"),
                   "}}"));
  auto failed = AwaitClosed(Start(uncaught, "negative", R"({"order": -3})"));
  EXPECT_EQ(failed.status(), "FAILED");
  EXPECT_EQ(failed.error(), "InvalidOrder");
  EXPECT_EQ(failed.cause(), "order must be a non-negative integer, got -3");
}

TEST_F(PythonWorkerTest, HeartbeatsKeepASlowTaskAlive) {
  // The task takes 4 s but must heartbeat every 2 s.
  const std::string machine = CreateMachine(
      "slow", absl::StrCat(R"({"StartAt": "Enrich", "States": {"Enrich": )",
                           EnrichTask(R"(, "HeartbeatSeconds": 2, "End": true)"), "}}"));
  const std::string input = R"({"order": 7, "work_seconds": 4})";

  // Without heartbeats the task times out...
  StartWorker();
  auto timed_out = AwaitClosed(Start(machine, "silent", input));
  EXPECT_EQ(timed_out.status(), "FAILED");
  EXPECT_THAT(timed_out.error(), HasSubstr("Timeout"));
  // (the worker finishes the handler, and its late result is refused).
  ASSERT_EQ(StopWorker(), 0);

  // ...with them it succeeds.
  StartWorker({"--heartbeat-seconds", "0.25"});
  auto described = AwaitClosed(Start(machine, "heartbeating", input));
  EXPECT_EQ(described.status(), "SUCCEEDED") << described.error() << ": " << described.cause();
  EXPECT_EQ(described.output(), R"({"score":14,"tier":"standard","scored_by":"python"})");
}

TEST_F(PythonWorkerTest, SigtermFinishesTheRunningTaskThenExits) {
  StartWorker();
  const std::string machine = CreateMachine(
      "draining", absl::StrCat(R"({"StartAt": "Enrich", "States": {"Enrich": )",
                               EnrichTask(R"(, "End": true)"), "}}"));
  const std::string arn = Start(machine, "in-flight", R"({"order": 4, "work_seconds": 3})");
  ASSERT_TRUE(AwaitActivityStarted(arn));
  // The worker name given on the command line reaches the history. (Only
  // checked for a slow task: a result that arrives before the hand-over
  // reaches the execution's shard records ActivityStarted without a name.)
  EXPECT_THAT(EventsOfType(arn, "ActivityStarted"), ElementsAre(kWorkerName));

  const absl::Time signalled = absl::Now();
  EXPECT_EQ(StopWorker(), 0);
  // It waited for the handler rather than dropping the task.
  EXPECT_GT(absl::Now() - signalled, absl::Milliseconds(500));
  auto described = Describe(arn);
  EXPECT_EQ(described.status(), "SUCCEEDED") << described.error() << ": " << described.cause();
  EXPECT_EQ(described.output(), R"({"score":8,"tier":"standard","scored_by":"python"})");
}

TEST_F(PythonWorkerTest, WorkerBacksOffWhileTheClusterIsDownAndServesWhenItReturns) {
  StartWorker();
  cluster_->KillAll();
  auto unavailable = worker_->WaitForOutput("UNAVAILABLE", absl::Seconds(30));
  ASSERT_TRUE(unavailable.ok()) << unavailable.status();
  EXPECT_THAT(*unavailable, HasSubstr("retrying in"));
  ASSERT_TRUE(cluster_->StartAll().ok()) << cluster_->Logs();
  Connect();

  const std::string machine = CreateMachine(
      "after-outage", absl::StrCat(R"({"StartAt": "Enrich", "States": {"Enrich": )",
                                   EnrichTask(R"(, "End": true)"), "}}"));
  auto described = AwaitClosed(Start(machine, "after-outage", R"({"order": 1})"));
  EXPECT_EQ(described.status(), "SUCCEEDED") << described.error() << ": " << described.cause();
  EXPECT_EQ(described.output(), R"({"score":2,"tier":"standard","scored_by":"python"})");
}

}  // namespace
}  // namespace stepflow
