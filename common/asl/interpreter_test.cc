#include "common/asl/interpreter.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::asl {
namespace {

using ::testing::ElementsAre;

constexpr char kActivity[] = "arn:aws:states:us-east-1:123456789012:activity:work";

std::vector<std::string> Types(const Outcome& outcome) {
  std::vector<std::string> types;
  for (const auto& e : outcome.events) types.push_back(e.type());
  return types;
}

class InterpreterTest : public ::testing::Test {
 protected:
  std::shared_ptr<const Definition> Load(absl::string_view text) {
    auto def = Definition::Parse(text);
    EXPECT_TRUE(def.ok()) << def.status();
    return def.ok() ? *def : nullptr;
  }
  void SetUp() override {
    context_.execution_arn = "arn:aws:states:us-east-1:123456789012:execution:sm:e1";
    context_.execution_name = "e1";
    context_.state_machine_name = "sm";
    context_.mint_task_token = [](int64_t id) { return "token-" + std::to_string(id); };
  }
  ExecutionContext context_;
  internal::v1::ExecutionState state_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

TEST_F(InterpreterTest, PassChainSucceeds) {
  auto def = Load(R"({"StartAt": "A", "States": {
    "A": {"Type": "Pass", "Result": {"v": 1}, "ResultPath": "$.r", "Next": "B"},
    "B": {"Type": "Pass", "InputPath": "$.r", "Parameters": {"w.$": "$.v", "k": [1], "n.$": "$$.Execution.Name"}, "Next": "C"},
    "C": {"Type": "Succeed", "OutputPath": "$.w"}}})");
  Interpreter interpreter(*def, context_);
  Outcome out = interpreter.Start(&state_, R"({"in":true})", now_);
  EXPECT_THAT(Types(out), ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                                      "PassStateEntered", "PassStateExited",
                                      "SucceedStateEntered", "SucceedStateExited",
                                      "ExecutionSucceeded"));
  EXPECT_EQ(out.events[2].state_exited_event_details().output(), R"({"in":true,"r":{"v":1}})");
  EXPECT_EQ(out.events[4].state_exited_event_details().output(), R"({"w":1,"k":[1],"n":"e1"})");
  EXPECT_EQ(out.closed_status, "SUCCEEDED");
  EXPECT_EQ(out.output, "1");
  for (size_t i = 0; i < out.events.size(); ++i) {
    EXPECT_EQ(out.events[i].id(), static_cast<int64_t>(i + 1));
    // As on AWS, the first state entered names no previous event.
    EXPECT_EQ(out.events[i].previous_event_id(), i == 1 ? 0 : static_cast<int64_t>(i));
  }
  EXPECT_FALSE(out.events[0].execution_started_event_details().input_details().truncated());
  EXPECT_TRUE(out.events[0].execution_started_event_details().has_input_details());
}

TEST_F(InterpreterTest, TaskWaitsThenCompletes) {
  auto def = Load(absl::StrCat(R"({"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(", "Parameters": {"x.$": "$.x", "tok.$": "$$.Task.Token"},
          "ResultSelector": {"y.$": "$.y"}, "ResultPath": "$.res", "TimeoutSeconds": 9, "End": true}}})"));
  Interpreter interpreter(*def, context_);
  Outcome started = interpreter.Start(&state_, R"({"x":5})", now_);
  EXPECT_THAT(Types(started), ElementsAre("ExecutionStarted", "TaskStateEntered", "ActivityScheduled"));
  ASSERT_EQ(started.dispatches.size(), 1u);
  EXPECT_EQ(started.dispatches[0].input, R"({"x":5,"tok":"token-3"})");
  EXPECT_EQ(started.dispatches[0].task_token, "token-3");
  EXPECT_EQ(started.dispatches[0].timeout_seconds, 9);
  EXPECT_EQ(state_.pending_scheduled_event_id(), 3);

  EXPECT_FALSE(interpreter.ActivitySucceeded(&state_, 99, "{}", now_).ok());
  auto began = interpreter.ActivityStarted(&state_, 3, "w1", now_);
  ASSERT_TRUE(began.ok());
  EXPECT_THAT(Types(*began), ElementsAre("ActivityStarted"));
  EXPECT_FALSE(interpreter.ActivityStarted(&state_, 3, "w1", now_).ok());

  auto done = interpreter.ActivitySucceeded(&state_, 3, R"({"y":"ok","z":0})", now_);
  ASSERT_TRUE(done.ok());
  EXPECT_THAT(Types(*done), ElementsAre("ActivitySucceeded", "TaskStateExited", "ExecutionSucceeded"));
  EXPECT_EQ(done->output, R"({"x":5,"res":{"y":"ok"}})");
  EXPECT_EQ(done->events[0].previous_event_id(), 4);
  EXPECT_FALSE(interpreter.ActivitySucceeded(&state_, 3, "{}", now_).ok());
}

TEST_F(InterpreterTest, TaskFailureFailsExecution) {
  auto def = Load(absl::StrCat(R"({"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}})"));
  Interpreter interpreter(*def, context_);
  interpreter.Start(&state_, "{}", now_);
  auto failed = interpreter.ActivityFailed(&state_, 3, "Boom", "it broke", now_);
  ASSERT_TRUE(failed.ok());
  // The started event is filled in when the pick-up report never arrived.
  EXPECT_THAT(Types(*failed), ElementsAre("ActivityStarted", "ActivityFailed", "ExecutionFailed"));
  EXPECT_EQ(failed->closed_status, "FAILED");
  EXPECT_EQ(failed->error, "Boom");
  EXPECT_EQ(failed->cause, "it broke");
}

TEST_F(InterpreterTest, FailStateAndRuntimeErrors) {
  auto def = Load(R"({"StartAt": "A", "States": {
    "A": {"Type": "Fail", "Error": "E", "Cause": "C"}}})");
  Outcome out = Interpreter(*def, context_).Start(&state_, "{}", now_);
  EXPECT_THAT(Types(out), ElementsAre("ExecutionStarted", "FailStateEntered", "ExecutionFailed"));
  EXPECT_EQ(out.error, "E");

  auto def2 = Load(R"({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.missing", "End": true}}})");
  internal::v1::ExecutionState state2;
  Outcome out2 = Interpreter(*def2, context_).Start(&state2, R"({"a":1})", now_);
  EXPECT_EQ(out2.closed_status, "FAILED");
  EXPECT_EQ(out2.error, "States.Runtime");
  EXPECT_EQ(out2.cause,
            "An error occurred while executing the state 'P' (entered at the event id #2). "
            "Invalid path '$.missing' : No results for path: $['missing']");
}

TEST_F(InterpreterTest, AbortClosesExecution) {
  auto def = Load(absl::StrCat(R"({"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}})"));
  Interpreter interpreter(*def, context_);
  interpreter.Start(&state_, "{}", now_);
  Outcome out = interpreter.Abort(&state_, "Stop", "by user", now_);
  EXPECT_THAT(Types(out), ElementsAre("ExecutionAborted"));
  EXPECT_EQ(out.closed_status, "ABORTED");
}

}  // namespace
}  // namespace stepflow::asl
