// Choice, Wait, Parallel, Map, Retry and Catch through a real cluster: the
// same interpreter as `stepflow local run`, with durable timers in the shard
// servers and tasks served by stepflow-worker.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using ::testing::HasSubstr;

constexpr char kActivity[] = "arn:aws:states:us-east-1:123456789012:activity:double";

class StateTypesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = testing::TestCluster::Start({.shard_servers = 2, .logical_shards = 8,
                                                .eventbus = false});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
    stub_ = v1::StepFunctions::NewStub(cluster_->GatewayChannel()).release();
    v1::CreateActivityRequest activity;
    activity.set_name("double");
    v1::CreateActivityResponse created;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->CreateActivity(&context, activity, &created).ok());
    // Doubles {"n": N}; fails with error "Odd" when N is 7.
    auto worker = cluster_->StartWorker(
        "double",
        {"/bin/sh", "-c",
         "read input; n=$(echo \"$input\" | sed 's/.*\"n\":\\([0-9]*\\).*/\\1/'); "
         "if [ \"$n\" = 7 ]; then echo '{\"error\": \"Odd\", \"cause\": \"seven\"}'; exit 1; fi; "
         "echo \"{\\\"n\\\": $((n * 2))}\""},
        {"--concurrency", "4"});
    ASSERT_TRUE(worker.ok()) << worker.status();
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete cluster_;
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << cluster_->Logs();
  }

  v1::DescribeExecutionResponse Run(const std::string& name, const std::string& definition,
                                    const std::string& input) {
    v1::CreateStateMachineRequest create;
    create.set_name(name);
    create.set_definition(definition);
    v1::CreateStateMachineResponse created;
    grpc::ClientContext c1;
    grpc::Status status = stub_->CreateStateMachine(&c1, create, &created);
    EXPECT_TRUE(status.ok()) << status.error_message();
    v1::StartExecutionRequest start;
    start.set_state_machine_arn(created.state_machine_arn());
    start.set_name("run");
    start.set_input(input);
    v1::StartExecutionResponse started;
    grpc::ClientContext c2;
    EXPECT_TRUE(stub_->StartExecution(&c2, start, &started).ok());
    v1::DescribeExecutionResponse described;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    do {
      v1::DescribeExecutionRequest describe;
      describe.set_execution_arn(started.execution_arn());
      grpc::ClientContext c3;
      EXPECT_TRUE(stub_->DescribeExecution(&c3, describe, &described).ok());
      if (described.status() != "RUNNING") break;
      absl::SleepFor(absl::Milliseconds(50));
    } while (absl::Now() < deadline);
    return described;
  }

  static testing::TestCluster* cluster_;
  static v1::StepFunctions::Stub* stub_;
};

testing::TestCluster* StateTypesTest::cluster_ = nullptr;
v1::StepFunctions::Stub* StateTypesTest::stub_ = nullptr;

TEST_F(StateTypesTest, ParallelTasksAndWait) {
  auto result = Run("parallel", absl::StrCat(R"({"StartAt": "P", "States": {
    "P": {"Type": "Parallel", "Next": "Pause", "Branches": [
      {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}},
      {"StartAt": "B", "States": {"B": {"Type": "Pass", "Parameters": {"n.$": "$.n"}, "Next": "B2"},
                                  "B2": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}}]},
    "Pause": {"Type": "Wait", "Seconds": 1, "End": true}}})"),
                    R"({"n": 3})");
  EXPECT_EQ(result.status(), "SUCCEEDED") << result.cause();
  EXPECT_EQ(result.output(), R"([{"n":6},{"n":6}])");
}

TEST_F(StateTypesTest, MapOverTasksWithChoice) {
  auto result = Run("map", absl::StrCat(R"({"StartAt": "M", "States": {
    "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
          "ItemSelector": {"n.$": "$$.Map.Item.Value"},
          "ItemProcessor": {"StartAt": "Small", "States": {
            "Small": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericLessThan": 3, "Next": "T"}],
                      "Default": "Skip"},
            "T": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true},
            "Skip": {"Type": "Pass", "Result": {"n": 0}, "End": true}}},
          "End": true}}})"),
                    R"({"items": [1, 2, 5]})");
  EXPECT_EQ(result.status(), "SUCCEEDED") << result.cause();
  EXPECT_EQ(result.output(), R"([{"n":2},{"n":4},{"n":0}])");
}

TEST_F(StateTypesTest, DistributedMapRunsChildExecutions) {
  // Item 7 fails its child; one failure is tolerated.
  auto result = Run("distributed", absl::StrCat(R"({"StartAt": "M", "States": {
    "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ToleratedFailureCount": 1,
          "ItemSelector": {"n.$": "$$.Map.Item.Value"}, "Label": "double",
          "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "T", "States": {
              "T": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}},
          "End": true}}})"),
                    R"({"items": [1, 7, 2]})");
  EXPECT_EQ(result.status(), "SUCCEEDED") << result.cause();
  EXPECT_EQ(result.output(), R"([{"n":2},null,{"n":4}])");

  v1::GetExecutionHistoryRequest history;
  history.set_execution_arn(result.execution_arn());
  v1::GetExecutionHistoryResponse events;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->GetExecutionHistory(&context, history, &events).ok());
  std::vector<std::string> types;
  for (const auto& event : events.events()) types.push_back(event.type());
  // The children's events are theirs, not the parent's.
  EXPECT_THAT(types, ::testing::ElementsAre("ExecutionStarted", "MapStateEntered",
                                            "MapStateStarted", "MapRunStarted", "MapRunSucceeded",
                                            "MapStateSucceeded", "MapStateExited",
                                            "ExecutionSucceeded"));
  EXPECT_THAT(events.events(3).map_run_started_event_details().map_run_arn(),
              HasSubstr(":mapRun:distributed/double:"));
}

TEST_F(StateTypesTest, RetryThenCatchWithTimers) {
  auto result = Run("retry", absl::StrCat(R"({"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(",
          "Retry": [{"ErrorEquals": ["Odd"], "IntervalSeconds": 1, "MaxAttempts": 1}],
          "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Recover"}],
          "End": true},
    "Recover": {"Type": "Pass", "End": true}}})"),
                    R"({"n": 7})");
  EXPECT_EQ(result.status(), "SUCCEEDED") << result.cause();
  EXPECT_EQ(result.output(), R"({"n":7,"error":{"Error":"Odd","Cause":"seven"}})");

  v1::GetExecutionHistoryRequest history;
  history.set_execution_arn(result.execution_arn());
  v1::GetExecutionHistoryResponse events;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->GetExecutionHistory(&context, history, &events).ok());
  int failures = 0;
  for (const auto& event : events.events()) failures += event.type() == "ActivityFailed";
  EXPECT_EQ(failures, 2);  // the first try and the one retry
}

TEST_F(StateTypesTest, FailWithErrorPath) {
  auto result = Run("fail", R"({"StartAt": "F", "States": {
    "F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}}})",
                    R"({"e": "Custom.Error", "c": "because"})");
  EXPECT_EQ(result.status(), "FAILED");
  EXPECT_EQ(result.error(), "Custom.Error");
  EXPECT_EQ(result.cause(), "because");
}

TEST_F(StateTypesTest, TestStateThroughTheGateway) {
  v1::TestStateRequest request;
  request.set_definition(R"({"Type": "Choice", "Choices": [
      {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Big"}], "Default": "Small"})");
  request.set_input(R"({"n": 5})");
  request.set_inspection_level("DEBUG");
  v1::TestStateResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub_->TestState(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), "SUCCEEDED");
  EXPECT_EQ(response.next_state(), "Big");
  EXPECT_EQ(response.inspection_data().after_input_path(), R"({"n":5})");

  request.set_inspection_level("LOUD");
  grpc::ClientContext bad;
  grpc::Status refused = stub_->TestState(&bad, request, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(refused.error_message(),
            "ValidationException: 1 validation error detected: Value 'LOUD' at 'inspectionLevel' "
            "failed to satisfy constraint: Member must satisfy enum value set: [INFO, DEBUG, "
            "TRACE]");
}

// An EXPRESS machine may not wait for a callback (AWS's
// test_illegal_callbacks), whether it is created or updated so; a
// STANDARD one may.
TEST_F(StateTypesTest, ExpressMachinesRefuseCallbacksWhenCreatedOrUpdated) {
  const std::string callback = R"({"StartAt": "Wait", "States": {"Wait": {"Type": "Task",
      "Resource": "arn:aws:states:::events:putEvents.waitForTaskToken",
      "Parameters": {"Entries": [{"Detail": {"token.$": "$$.Task.Token"},
                                  "DetailType": "d", "Source": "s"}]}, "End": true}}})";
  const std::string pass = R"({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}})";
  for (const char* type : {"EXPRESS", "STANDARD"}) {
    SCOPED_TRACE(type);
    v1::CreateStateMachineRequest create;
    create.set_name(absl::StrCat("callbacks-", type));
    create.set_type(type);
    create.set_definition(callback);
    v1::CreateStateMachineResponse created;
    grpc::ClientContext c1;
    grpc::Status refused = stub_->CreateStateMachine(&c1, create, &created);
    EXPECT_EQ(refused.ok(), std::string(type) == "STANDARD") << refused.error_message();
    if (!refused.ok()) {
      EXPECT_THAT(refused.error_message(), HasSubstr("InvalidDefinition"));
      create.set_definition(pass);
      grpc::ClientContext c2;
      ASSERT_TRUE(stub_->CreateStateMachine(&c2, create, &created).ok());
    }
    v1::UpdateStateMachineRequest update;
    update.set_state_machine_arn(created.state_machine_arn());
    update.set_definition(callback);
    v1::UpdateStateMachineResponse updated;
    grpc::ClientContext c3;
    grpc::Status status = stub_->UpdateStateMachine(&c3, update, &updated);
    EXPECT_EQ(status.ok(), std::string(type) == "STANDARD") << status.error_message();
    if (!status.ok()) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_EQ(status.error_message(), refused.error_message());
      // The machine kept its definition.
      v1::DescribeStateMachineRequest describe;
      describe.set_state_machine_arn(created.state_machine_arn());
      v1::DescribeStateMachineResponse described;
      grpc::ClientContext c4;
      ASSERT_TRUE(stub_->DescribeStateMachine(&c4, describe, &described).ok());
      EXPECT_EQ(described.definition(), pass);
    }
  }
}

}  // namespace
}  // namespace stepflow
