// Task states that call Stepflow's own APIs, through a real gateway, three
// shard servers, the eventbus and the Kafka-protocol broker: parents start
// children on other shards (states:startExecution with every integration
// pattern, at fan-out), stopping a parent stops the children it waits for,
// and events:putEvents puts events on the bus whose rules start other
// workflows.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/json/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/events.grpc.pb.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using Stub = v1::StepFunctions::Stub;

class NestedWorkflowTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = testing::TestCluster::Start({.shard_servers = 3, .logical_shards = 16});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    api_ = std::make_unique<testing::StepFunctionsClient>(cluster_->GatewayChannel());
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << cluster_->Logs();
  }

  std::vector<v1::ExecutionListItem> ListExecutions(const std::string& machine) {
    v1::ListExecutionsRequest request;
    request.set_state_machine_arn(machine);
    request.set_max_results(1000);
    v1::ListExecutionsResponse response;
    grpc::Status status = api_->Call(&Stub::ListExecutions, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.executions().begin(), response.executions().end()};
  }

  static testing::TestCluster* cluster_;
  std::unique_ptr<testing::StepFunctionsClient> api_;
};

testing::TestCluster* NestedWorkflowTest::cluster_ = nullptr;

TEST_F(NestedWorkflowTest, StandardParentFansOutToExpressChildren) {
  const std::string child = api_->CreateStateMachine("double", R"json({"StartAt": "Double",
    "States": {"Double": {"Type": "Pass",
      "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"}, "End": true}}})json",
                                                     "EXPRESS");
  const std::string parent = api_->CreateStateMachine(
      "fan-out", absl::StrCat(R"({"StartAt": "Each", "States": {"Each": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 0,
        "ItemProcessor": {"StartAt": "Child", "States": {"Child": {
          "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
          "Parameters": {"StateMachineArn": ")",
                              child, R"(", "Input": {"n.$": "$"}},
          "ResultSelector": {"doubled.$": "$.Output.doubled"}, "End": true}}},
        "End": true}}})"));
  std::string items;
  for (int i = 1; i <= 40; ++i) absl::StrAppend(&items, i == 1 ? "" : ",", i);
  const std::string run = api_->StartExecution(parent, absl::StrCat(R"({"items": [)", items, "]}"));
  auto closed = api_->AwaitClosed(run);
  ASSERT_EQ(closed.status(), "SUCCEEDED") << closed.error() << ": " << closed.cause();
  auto output = json::Parse(closed.output());
  ASSERT_TRUE(output.ok());
  ASSERT_EQ(output->Size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ((*output)[i]["doubled"].GetInt(), 2 * (i + 1));
  EXPECT_EQ(ListExecutions(child).size(), 40u);
}

TEST_F(NestedWorkflowTest, StoppingAParentStopsTheChildrenItWaitsFor) {
  const std::string activity = api_->CreateActivity("never-served");
  const std::string child = api_->CreateStateMachine(
      "waits-for-work", absl::StrCat(R"({"StartAt": "Work", "States": {"Work": {
        "Type": "Task", "Resource": ")", activity, R"(", "End": true}}})"));
  std::string branches;
  for (int i = 0; i < 3; ++i) {
    absl::StrAppend(&branches, i == 0 ? "" : ",", R"({"StartAt": "Start)", i,
                    R"(", "States": {"Start)", i, R"(": {
      "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync",
      "Parameters": {"StateMachineArn": ")",
                    child, R"(", "Name.$": "States.Format('{}-)", i,
                    R"json(', $$.Execution.Name)"},
      "End": true}}})json");
  }
  const std::string parent = api_->CreateStateMachine(
      "three-children", absl::StrCat(R"({"StartAt": "All", "States": {"All": {
        "Type": "Parallel", "Branches": [)", branches, R"(], "End": true}}})"));
  const std::string run = api_->StartExecution(parent, "{}", "stop-me");
  std::vector<std::string> children;
  for (int i = 0; i < 3; ++i) {
    children.push_back(
        absl::StrCat("arn:aws:states:us-east-1:123456789012:execution:waits-for-work:stop-me-", i));
  }
  // Every child runs (on whichever shard its name hashes to) before the stop.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline && ListExecutions(child).size() < 3) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(ListExecutions(child).size(), 3u);
  v1::StopExecutionRequest stop;
  stop.set_execution_arn(run);
  stop.set_error("Operator");
  stop.set_cause("no longer needed");
  v1::StopExecutionResponse stopped;
  ASSERT_TRUE(api_->Call(&Stub::StopExecution, stop, &stopped).ok());
  EXPECT_EQ(api_->Describe(run).status(), "ABORTED");
  for (const std::string& arn : children) {
    EXPECT_EQ(api_->AwaitClosed(arn, absl::Seconds(30)).status(), "ABORTED") << arn;
  }
}

TEST_F(NestedWorkflowTest, WaitForTaskTokenChildAnswersItsParent) {
  // The child is a worker's activity task that receives the parent's token
  // and answers for the parent (the callback pattern across executions).
  const std::string activity = api_->CreateActivity("approver");
  const std::string child = api_->CreateStateMachine(
      "approval", absl::StrCat(R"({"StartAt": "Ask", "States": {"Ask": {
        "Type": "Task", "Resource": ")", activity, R"(", "End": true}}})"));
  const std::string parent = api_->CreateStateMachine(
      "needs-approval", absl::StrCat(R"({"StartAt": "Ask", "States": {"Ask": {
        "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.waitForTaskToken",
        "Parameters": {"StateMachineArn": ")",
                                     child, R"(", "Input": {"token.$": "$$.Task.Token",
                                                  "amount.$": "$.amount"}},
        "ResultPath": "$.decision", "End": true}}})"));
  const std::string run = api_->StartExecution(parent, R"({"amount": 250})");

  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(activity);
  v1::GetActivityTaskResponse task;
  ASSERT_TRUE(api_->Call(&Stub::GetActivityTask, poll, &task, absl::Seconds(70)).ok());
  ASSERT_FALSE(task.task_token().empty());
  auto input = json::Parse(task.input());
  ASSERT_TRUE(input.ok());
  EXPECT_EQ((*input)["amount"].GetInt(), 250);
  v1::SendTaskSuccessRequest answer;
  answer.set_task_token((*input)["token"].GetString());
  answer.set_output(R"({"approved": true})");
  v1::SendTaskSuccessResponse answered;
  ASSERT_TRUE(api_->Call(&Stub::SendTaskSuccess, answer, &answered).ok());
  auto closed = api_->AwaitClosed(run);
  ASSERT_EQ(closed.status(), "SUCCEEDED");
  EXPECT_EQ(closed.output(), R"({"amount":250,"decision":{"approved":true}})");
  std::vector<std::string> types;
  for (const auto& event : api_->History(run)) types.push_back(event.type());
  EXPECT_THAT(types, ::testing::ElementsAre("ExecutionStarted", "TaskStateEntered",
                                            "TaskScheduled", "TaskStarted", "TaskSubmitted",
                                            "TaskSucceeded", "TaskStateExited",
                                            "ExecutionSucceeded"));
}

TEST_F(NestedWorkflowTest, PutEventsStartsTheWorkflowsOfMatchingRules) {
  auto events = v1::EventBridge::NewStub(cluster_->GatewayChannel());
  const std::string consumer = api_->CreateStateMachine(
      "consumer", R"({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}})");
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    v1::PutRuleRequest rule;
    rule.set_name("processed-orders");
    rule.set_event_pattern(R"({"source": ["orders.workflow"], "detail": {"id": [{"exists": true}]}})");
    v1::PutRuleResponse ruled;
    grpc::Status status = events->PutRule(&context, rule, &ruled);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    v1::PutTargetsRequest targets;
    targets.set_rule("processed-orders");
    v1::Target* target = targets.add_targets();
    target->set_id("consumer");
    target->set_arn(consumer);
    target->set_input_path("$.detail");
    v1::PutTargetsResponse targeted;
    ASSERT_TRUE(events->PutTargets(&context, targets, &targeted).ok());
    ASSERT_EQ(targeted.failed_entry_count(), 0);
  }
  const std::string publisher = api_->CreateStateMachine(
      "publisher", R"({"StartAt": "Publish", "States": {"Publish": {
        "Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
        "Parameters": {"Entries": [{"Source": "orders.workflow", "DetailType": "Order Processed",
                                    "Detail": {"id.$": "$.id"}}]},
        "End": true}}})");
  const std::string run = api_->StartExecution(publisher, R"({"id": 42})");
  auto closed = api_->AwaitClosed(run);
  ASSERT_EQ(closed.status(), "SUCCEEDED") << closed.error() << ": " << closed.cause();
  EXPECT_THAT(closed.output(), ::testing::HasSubstr(R"("FailedEntryCount":0)"));

  std::vector<v1::ExecutionListItem> started;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline && (started = ListExecutions(consumer)).empty()) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_EQ(started.size(), 1u);
  auto detail = json::Parse(api_->Describe(started[0].execution_arn()).input());
  ASSERT_TRUE(detail.ok());
  EXPECT_EQ((*detail)["id"].GetInt(), 42);
}

}  // namespace
}  // namespace stepflow
