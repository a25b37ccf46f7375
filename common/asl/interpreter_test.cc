#include "common/asl/interpreter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::asl {
namespace {

using ::testing::ElementsAre;

constexpr char kActivity[] = "arn:aws:states:us-east-1:123456789012:activity:work";

std::string Types(const Outcome& outcome) {
  std::vector<std::string> types;
  for (const auto& e : outcome.events) types.push_back(e.type());
  return absl::StrJoin(types, ",");
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
  // Starts `definition` and keeps the interpreter for further events.
  Outcome Begin(absl::string_view definition, absl::string_view input) {
    def_ = Load(definition);
    interpreter_ = std::make_unique<Interpreter>(*def_, context_);
    return interpreter_->Start(&state_, input, now_);
  }
  // Fires every armed timer of `outcome`, in order, advancing the clock.
  Outcome FireTimers(const Outcome& outcome) {
    Outcome last;
    for (const TimerRequest& timer : outcome.timers) {
      now_ = std::max(now_, timer.fire_at);
      auto fired = interpreter_->TimerFired(&state_, timer.timer_id, now_);
      if (fired.ok()) last = *fired;
    }
    return last;
  }

  ExecutionContext context_;
  ::stepflow::internal::v1::ExecutionState state_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::shared_ptr<const Definition> def_;
  std::unique_ptr<Interpreter> interpreter_;
};

// ResultPath writes into the input's text when it is canonical; the texts
// must be what writing the whole document gives, whatever the path meets:
// a new member, a replaced one, a nested one, missing intermediate objects,
// keys that need escapes, an empty object, duplicate keys.
TEST_F(InterpreterTest, ResultPathOutputsAreTheWholeDocumentsText) {
  const std::string definition = R"({"StartAt": "A", "States": {
    "A": {"Type": "Pass", "Result": 1, "ResultPath": "$.new", "Next": "B"},
    "B": {"Type": "Pass", "Result": {"x": [true, null]}, "ResultPath": "$.a", "Next": "C"},
    "C": {"Type": "Pass", "Result": "s", "ResultPath": "$.b.c", "Next": "D"},
    "D": {"Type": "Pass", "Result": 2.5, "ResultPath": "$.b.d.e", "Next": "E"},
    "E": {"Type": "Pass", "Result": "q", "ResultPath": "$['k \"x'].y", "Next": "F"},
    "F": {"Type": "Pass", "InputPath": "$.b", "ResultPath": "$.b.copy", "Next": "G"},
    "G": {"Type": "Pass", "Result": {}, "ResultPath": "$.dup", "Next": "H"},
    "H": {"Type": "Pass", "Result": 3, "ResultPath": "$.empty.z", "End": true}}})";
  const std::vector<std::string> inputs = {
      R"({"a":1,"b":{"c":"old","f":[{"g":"}"}]},"dup":1,"dup":2,"empty":{},"t":"\"{["})",
      R"({"a":1, "b":{"c":"old","f":[{"g":"}"}]}, "dup":1,"dup":2,"empty":{},"t":"\"{["})",
  };
  const std::vector<std::string> expected = {
      R"({"a":1,"b":{"c":"old","f":[{"g":"}"}]},"dup":1,"dup":2,"empty":{},"t":"\"{[","new":1})",
      R"({"a":{"x":[true,null]},"b":{"c":"old","f":[{"g":"}"}]},"dup":1,"dup":2,"empty":{},"t":"\"{[","new":1})",
      R"({"a":{"x":[true,null]},"b":{"c":"s","f":[{"g":"}"}]},"dup":1,"dup":2,"empty":{},"t":"\"{[","new":1})",
      R"({"a":{"x":[true,null]},"b":{"c":"s","f":[{"g":"}"}],"d":{"e":2.5}},"dup":1,"dup":2,"empty":{},"t":"\"{[","new":1})",
      R"({"a":{"x":[true,null]},"b":{"c":"s","f":[{"g":"}"}],"d":{"e":2.5}},"dup":1,"dup":2,"empty":{},"t":"\"{[","new":1,"k \"x":{"y":"q"}})",
      R"({"a":{"x":[true,null]},"b":{"c":"s","f":[{"g":"}"}],"d":{"e":2.5},"copy":{"c":"s","f":[{"g":"}"}],"d":{"e":2.5}}},"dup":1,"dup":2,"empty":{},"t":"\"{[","new":1,"k \"x":{"y":"q"}})",
      R"({"a":{"x":[true,null]},"b":{"c":"s","f":[{"g":"}"}],"d":{"e":2.5},"copy":{"c":"s","f":[{"g":"}"}],"d":{"e":2.5}}},"dup":{},"dup":2,"empty":{},"t":"\"{[","new":1,"k \"x":{"y":"q"}})",
      R"({"a":{"x":[true,null]},"b":{"c":"s","f":[{"g":"}"}],"d":{"e":2.5},"copy":{"c":"s","f":[{"g":"}"}],"d":{"e":2.5}}},"dup":{},"dup":2,"empty":{"z":3},"t":"\"{[","new":1,"k \"x":{"y":"q"}})",
  };
  for (const std::string& input : inputs) {
    // The first input is canonical text, the second is not.
    context_.input_is_canonical = &input == &inputs[0];
    state_.Clear();
    Outcome out = Begin(definition, input);
    ASSERT_EQ(out.closed_status, "SUCCEEDED") << out.error << " " << out.cause;
    std::vector<std::string> outputs;
    for (const auto& event : out.events) {
      if (event.type() == "PassStateExited") {
        outputs.push_back(event.state_exited_event_details().output());
      }
    }
    EXPECT_EQ(outputs, expected) << input;
  }
}

// A Parallel whose output is its branches' outputs as they are.
TEST_F(InterpreterTest, ParallelOutputJoinsTheBranchOutputs) {
  context_.input_is_canonical = true;
  Outcome out = Begin(R"({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
    "Branches": [
      {"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"v.$": "$.a"}, "End": true}}},
      {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}},
      {"StartAt": "C", "States": {"C": {"Type": "Pass", "Result": [], "End": true}}}]}}})",
                      R"({"a":[1.5,"x"],"b":{}})");
  ASSERT_EQ(out.closed_status, "SUCCEEDED");
  EXPECT_EQ(out.output, R"([{"v":[1.5,"x"]},{"a":[1.5,"x"],"b":{}},[]])");
}

TEST_F(InterpreterTest, PassChainSucceeds) {
  Outcome out = Begin(R"({"StartAt": "A", "States": {
    "A": {"Type": "Pass", "Result": {"v": 1}, "ResultPath": "$.r", "Next": "B"},
    "B": {"Type": "Pass", "InputPath": "$.r", "Parameters": {"w.$": "$.v", "k": [1], "n.$": "$$.Execution.Name"}, "Next": "C"},
    "C": {"Type": "Succeed", "OutputPath": "$.w"}}})",
                      R"({"in":true})");
  EXPECT_EQ(Types(out),
            "ExecutionStarted,PassStateEntered,PassStateExited,PassStateEntered,PassStateExited,"
            "SucceedStateEntered,SucceedStateExited,ExecutionSucceeded");
  EXPECT_EQ(out.events[2].state_exited_event_details().output(), R"({"in":true,"r":{"v":1}})");
  EXPECT_EQ(out.events[4].state_exited_event_details().output(), R"({"w":1,"k":[1],"n":"e1"})");
  EXPECT_EQ(out.closed_status, "SUCCEEDED");
  EXPECT_EQ(out.output, "1");
  for (size_t i = 0; i < out.events.size(); ++i) {
    EXPECT_EQ(out.events[i].id(), static_cast<int64_t>(i + 1));
    // As on AWS, the first state entered names no previous event.
    EXPECT_EQ(out.events[i].previous_event_id(), i == 1 ? 0 : static_cast<int64_t>(i));
  }
  EXPECT_TRUE(out.events[0].execution_started_event_details().has_input_details());
  EXPECT_TRUE(state_.frames().empty());
}

TEST_F(InterpreterTest, TaskWaitsThenCompletes) {
  Outcome started = Begin(absl::StrCat(R"({"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(", "Parameters": {"x.$": "$.x", "tok.$": "$$.Task.Token"},
          "ResultSelector": {"y.$": "$.y"}, "ResultPath": "$.res", "TimeoutSeconds": 9, "End": true}}})"),
                          R"({"x":5})");
  EXPECT_EQ(Types(started), "ExecutionStarted,TaskStateEntered,ActivityScheduled");
  ASSERT_EQ(started.dispatches.size(), 1u);
  EXPECT_EQ(started.dispatches[0].input, R"({"x":5,"tok":"token-3"})");
  EXPECT_EQ(started.dispatches[0].task_token, "token-3");
  EXPECT_EQ(started.dispatches[0].timeout_seconds, 9);
  ASSERT_EQ(started.timers.size(), 1u);  // the task timeout
  EXPECT_EQ(started.timers[0].fire_at, now_ + absl::Seconds(9));
  EXPECT_TRUE(Interpreter::AwaitsTask(state_, 3));

  EXPECT_FALSE(interpreter_->ActivitySucceeded(&state_, 99, "{}", now_).ok());
  auto began = interpreter_->ActivityStarted(&state_, 3, "w1", now_);
  ASSERT_TRUE(began.ok());
  EXPECT_EQ(Types(*began), "ActivityStarted");
  EXPECT_FALSE(interpreter_->ActivityStarted(&state_, 3, "w1", now_).ok());

  auto done = interpreter_->ActivitySucceeded(&state_, 3, R"({"y":"ok","z":0})", now_);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(Types(*done), "ActivitySucceeded,TaskStateExited,ExecutionSucceeded");
  EXPECT_EQ(done->output, R"({"x":5,"res":{"y":"ok"}})");
  EXPECT_FALSE(interpreter_->ActivitySucceeded(&state_, 3, "{}", now_).ok());
  // The timeout timer is stale now.
  EXPECT_FALSE(interpreter_->TimerFired(&state_, started.timers[0].timer_id, now_).ok());
}

TEST_F(InterpreterTest, TaskFailureFailsExecution) {
  Begin(absl::StrCat(R"({"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}})"), "{}");
  auto failed = interpreter_->ActivityFailed(&state_, 3, "Boom", "it broke", now_);
  ASSERT_TRUE(failed.ok());
  // The started event is filled in when the pick-up report never arrived.
  EXPECT_EQ(Types(*failed), "ActivityStarted,ActivityFailed,ExecutionFailed");
  EXPECT_EQ(failed->closed_status, "FAILED");
  EXPECT_EQ(failed->error, "Boom");
  EXPECT_EQ(failed->cause, "it broke");
}

TEST_F(InterpreterTest, MissingActivityFailsBeforeScheduling) {
  std::vector<std::string> asked;
  context_.activity_exists = [&asked](absl::string_view arn) {
    asked.emplace_back(arn);
    return false;
  };
  Outcome out = Begin(absl::StrCat(R"({"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true,
          "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]},
    "Caught": {"Type": "Succeed"}}})"), "{}");
  EXPECT_EQ(Types(out), "ExecutionStarted,TaskStateEntered,ExecutionFailed");
  EXPECT_THAT(asked, ElementsAre(kActivity));
  EXPECT_TRUE(out.dispatches.empty());
  EXPECT_EQ(out.error, "States.Runtime");
  EXPECT_EQ(out.cause, absl::StrCat("An error occurred while executing the state 'T' (entered at "
                                    "the event id #2). The activity ", kActivity,
                                    " does not exist."));
}

TEST_F(InterpreterTest, ActivityFoundMissingAfterSchedulingFailsTheExecution) {
  // The caller could not tell before scheduling (e.g. the activity's server
  // did not answer) and learns it from the task queue.
  context_.activity_exists = [](absl::string_view) { return true; };
  Outcome out = Begin(absl::StrCat(R"({"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}})"), "{}");
  EXPECT_EQ(Types(out), "ExecutionStarted,TaskStateEntered,ActivityScheduled");
  ASSERT_EQ(out.dispatches.size(), 1u);
  auto missing = interpreter_->ActivityDoesNotExist(&state_, 3, kActivity, now_);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(Types(*missing), "ExecutionFailed");
  EXPECT_EQ(missing->error, "States.Runtime");
  EXPECT_EQ(missing->cause, absl::StrCat("An error occurred while executing the state 'T' "
                                         "(entered at the event id #2). The activity ",
                                         kActivity, " does not exist."));
  EXPECT_FALSE(interpreter_->ActivityDoesNotExist(&state_, 3, kActivity, now_).ok());
}

TEST_F(InterpreterTest, TaskTimeoutRaisesStatesTimeout) {
  Outcome started = Begin(absl::StrCat(R"({"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(", "TimeoutSeconds": 5, "End": true}}})"), "{}");
  ASSERT_TRUE(interpreter_->ActivityStarted(&state_, 3, "w", now_).ok());
  Outcome out = FireTimers(started);
  EXPECT_EQ(Types(out), "ActivityTimedOut,ExecutionFailed");
  EXPECT_EQ(out.error, "States.Timeout");
  EXPECT_THAT(out.cancelled_tasks, ElementsAre(3));
}

TEST_F(InterpreterTest, RetryThenCatch) {
  Outcome started = Begin(absl::StrCat(R"({"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(",
          "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "MaxAttempts": 2, "BackoffRate": 3}],
          "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Handled"}],
          "End": true},
    "Handled": {"Type": "Pass", "End": true}}})"),
                          R"({"a":1})");
  // First failure: retried after 2 s; second: after 6 s; third: caught.
  auto first = interpreter_->ActivityFailed(&state_, 3, "Flaky", "1", now_);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Types(*first), "ActivityStarted,ActivityFailed");
  ASSERT_EQ(first->timers.size(), 1u);
  EXPECT_EQ(first->timers[0].fire_at, now_ + absl::Seconds(2));
  Outcome rescheduled = FireTimers(*first);
  EXPECT_EQ(Types(rescheduled), "ActivityScheduled");
  const int64_t second_id = rescheduled.dispatches.at(0).scheduled_event_id;
  auto second = interpreter_->ActivityFailed(&state_, second_id, "Flaky", "2", now_);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->timers.at(0).fire_at, now_ + absl::Seconds(6));
  Outcome third_scheduled = FireTimers(*second);
  const int64_t third_id = third_scheduled.dispatches.at(0).scheduled_event_id;
  auto third = interpreter_->ActivityFailed(&state_, third_id, "Flaky", "3", now_);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(Types(*third),
            "ActivityStarted,ActivityFailed,TaskStateExited,PassStateEntered,PassStateExited,"
            "ExecutionSucceeded");
  EXPECT_EQ(third->output, R"({"a":1,"err":{"Error":"Flaky","Cause":"3"}})");
}

TEST_F(InterpreterTest, ChoiceAndWait) {
  Outcome out = Begin(R"({"StartAt": "C", "States": {
    "C": {"Type": "Choice", "Choices": [
            {"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"},
            {"And": [{"Variable": "$.s", "StringMatches": "a*"}, {"Variable": "$.n", "IsNumeric": true}], "Next": "W"}],
          "Default": "Big"},
    "W": {"Type": "Wait", "Seconds": 30, "Next": "Done"},
    "Big": {"Type": "Fail", "Error": "TooBig"},
    "Done": {"Type": "Succeed"}}})",
                      R"({"n": 3, "s": "abc"})");
  EXPECT_EQ(Types(out), "ExecutionStarted,ChoiceStateEntered,ChoiceStateExited,WaitStateEntered");
  ASSERT_EQ(out.timers.size(), 1u);
  EXPECT_EQ(out.timers[0].fire_at, now_ + absl::Seconds(30));
  Outcome done = FireTimers(out);
  EXPECT_EQ(Types(done), "WaitStateExited,SucceedStateEntered,SucceedStateExited,ExecutionSucceeded");

  ::stepflow::internal::v1::ExecutionState other;
  Interpreter again(*def_, context_);
  Outcome big = again.Start(&other, R"({"n": 30})", now_);
  EXPECT_EQ(big.closed_status, "FAILED");
  EXPECT_EQ(big.error, "TooBig");
}

TEST_F(InterpreterTest, NoChoiceMatched) {
  Outcome out = Begin(R"({"StartAt": "C", "States": {
    "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "D"}]},
    "D": {"Type": "Succeed"}}})",
                      R"({"n": 2})");
  EXPECT_EQ(Types(out), "ExecutionStarted,ChoiceStateEntered,ExecutionFailed");
  EXPECT_EQ(out.error, "States.NoChoiceMatched");
}

// Branches advance one state at a time in turn (AWS runs them concurrently,
// so its interleaving varies; ours is fixed).
TEST_F(InterpreterTest, ParallelCollectsBranchOutputs) {
  Outcome out = Begin(R"({"StartAt": "P", "States": {
    "P": {"Type": "Parallel", "ResultPath": "$.results", "End": true, "Branches": [
      {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": true}}},
      {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": 2, "Next": "B2"},
                                  "B2": {"Type": "Pass", "End": true}}}]}}})",
                      R"({"in": 0})");
  EXPECT_EQ(Types(out),
            "ExecutionStarted,ParallelStateEntered,ParallelStateStarted,PassStateEntered,"
            "PassStateExited,PassStateEntered,PassStateExited,PassStateEntered,PassStateExited,"
            "ParallelStateSucceeded,ParallelStateExited,ExecutionSucceeded");
  EXPECT_EQ(out.output, R"({"in":0,"results":[1,2]})");
}

TEST_F(InterpreterTest, FailingBranchStopsTheOthersAndIsCaught) {
  Outcome out = Begin(absl::StrCat(R"({"StartAt": "P", "States": {
    "P": {"Type": "Parallel", "Next": "After",
          "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "After"}],
          "Branches": [
      {"StartAt": "Wait", "States": {"Wait": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}},
      {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "C"}}}]},
    "After": {"Type": "Pass", "End": true}}})"),
                      "{}");
  // The failure reaches the Parallel in a transition of its own, once the
  // other branch has scheduled its task.
  EXPECT_EQ(Types(out),
            "ExecutionStarted,ParallelStateEntered,ParallelStateStarted,TaskStateEntered,"
            "ActivityScheduled,FailStateEntered");
  ASSERT_EQ(out.timers.size(), 1u);
  EXPECT_EQ(out.timers[0].fire_at, now_);
  ASSERT_TRUE(interpreter_->ActivityStarted(&state_, 5, "w1", now_).ok());
  Outcome handed_over = FireTimers(out);
  EXPECT_EQ(Types(handed_over),
            "TaskStateAborted,ParallelStateFailed,ParallelStateExited,"
            "PassStateEntered,PassStateExited,ExecutionSucceeded");
  EXPECT_EQ(handed_over.output, R"({"Error":"E","Cause":"C"})");
  EXPECT_EQ(handed_over.cancelled_tasks, std::vector<int64_t>{5});
  EXPECT_FALSE(Interpreter::AwaitsTask(state_, 5));
}

TEST_F(InterpreterTest, FailingBranchAbortsWaitingStatesOfEveryKind) {
  Outcome out = Begin(absl::StrCat(R"({"StartAt": "P", "States": {
    "P": {"Type": "Parallel", "End": true, "Branches": [
      {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "C"}}},
      {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100, "End": true}}},
      {"StartAt": "Inner", "States": {"Inner": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}}]}}},
      {"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ItemProcessor": {
        "StartAt": "T2", "States": {"T2": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}}}}}
    ]}}})"),
                      "[1]");
  ASSERT_EQ(out.dispatches.size(), 2u);
  std::vector<int64_t> tasks = {out.dispatches[0].scheduled_event_id,
                                out.dispatches[1].scheduled_event_id};
  Outcome handed_over;
  for (const TimerRequest& timer : out.timers) {
    if (timer.fire_at != now_) continue;  // the Wait's
    auto fired = interpreter_->TimerFired(&state_, timer.timer_id, now_);
    ASSERT_TRUE(fired.ok());
    handed_over = *fired;
  }
  EXPECT_EQ(Types(handed_over),
            "WaitStateAborted,TaskStateAborted,ParallelStateAborted,MapIterationAborted,"
            "TaskStateAborted,MapStateAborted,ParallelStateFailed,ExecutionFailed");
  EXPECT_EQ(handed_over.events[3].map_iteration_aborted_event_details().name(), "M");
  EXPECT_EQ(handed_over.events[3].map_iteration_aborted_event_details().index(), 0);
  std::sort(handed_over.cancelled_tasks.begin(), handed_over.cancelled_tasks.end());
  EXPECT_EQ(handed_over.cancelled_tasks, tasks);
  EXPECT_EQ(handed_over.error, "E");
}

TEST_F(InterpreterTest, FailingIterationAbortsTheOthersInAwsOrder) {
  // As recorded on AWS: the failed iteration's task is aborted too, then
  // each other iteration, then its task.
  Outcome out = Begin(absl::StrCat(R"({"StartAt": "M", "States": {
    "M": {"Type": "Map", "End": true, "ItemProcessor": {
      "StartAt": "T", "States": {"T": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}}}}})"),
                      "[1, 2, 3]");
  ASSERT_EQ(out.dispatches.size(), 3u);
  auto failed = interpreter_->ActivityFailed(&state_, out.dispatches[0].scheduled_event_id, "E",
                                             "C", now_);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(Types(*failed), "ActivityStarted,ActivityFailed");
  Outcome handed_over = FireTimers(*failed);
  EXPECT_EQ(Types(handed_over),
            "MapIterationFailed,TaskStateAborted,MapIterationAborted,TaskStateAborted,"
            "MapIterationAborted,TaskStateAborted,MapStateFailed,ExecutionFailed");
  EXPECT_EQ(handed_over.events[2].map_iteration_aborted_event_details().index(), 1);
  EXPECT_EQ(handed_over.events[4].map_iteration_aborted_event_details().index(), 2);
  EXPECT_EQ(handed_over.cancelled_tasks.size(), 2u);
}

TEST_F(InterpreterTest, MapIteratesWithItemSelector) {
  Outcome out = Begin(R"({"StartAt": "M", "States": {
    "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 0,
          "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index", "k.$": "$.k"},
          "ItemProcessor": {"StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "End": true}}},
          "End": true}}})",
                      R"({"items": ["a", "b"], "k": 7})");
  EXPECT_EQ(Types(out),
            "ExecutionStarted,MapStateEntered,MapStateStarted,MapIterationStarted,"
            "PassStateEntered,PassStateExited,MapIterationSucceeded,MapIterationStarted,"
            "PassStateEntered,PassStateExited,MapIterationSucceeded,MapStateSucceeded,"
            "MapStateExited,ExecutionSucceeded");
  EXPECT_EQ(out.output, R"([{"v":"a","i":0,"k":7},{"v":"b","i":1,"k":7}])");
  // AWS's previous-event links around iterations.
  EXPECT_EQ(out.events[6].previous_event_id(), 6);  // MapIterationSucceeded -> PassStateExited
  EXPECT_EQ(out.events[7].previous_event_id(), 6);  // next MapIterationStarted too
}

TEST_F(InterpreterTest, MapIterationFailureAndRetry) {
  Outcome out = Begin(R"({"StartAt": "M", "States": {
    "M": {"Type": "Map", "Retry": [{"ErrorEquals": ["Bad"], "MaxAttempts": 1, "IntervalSeconds": 1}],
          "Iterator": {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Bad", "Cause": "c"}}},
          "End": true}}})",
                      "[1]");
  EXPECT_EQ(Types(out),
            "ExecutionStarted,MapStateEntered,MapStateStarted,MapIterationStarted,"
            "FailStateEntered");
  Outcome failed = FireTimers(out);
  EXPECT_EQ(Types(failed), "MapIterationFailed");  // no MapStateFailed before a retry
  Outcome retried = FireTimers(failed);
  EXPECT_EQ(Types(retried), "MapStateStarted,MapIterationStarted,FailStateEntered");
  retried = FireTimers(retried);
  EXPECT_EQ(Types(retried), "MapIterationFailed,MapStateFailed,ExecutionFailed");
  EXPECT_EQ(retried.error, "Bad");
}

TEST_F(InterpreterTest, ExecutionTimeout) {
  Outcome out = Begin(R"({"StartAt": "W", "TimeoutSeconds": 10, "States": {
    "W": {"Type": "Wait", "Seconds": 100, "End": true}}})",
                      "{}");
  ASSERT_EQ(out.timers.size(), 2u);
  auto timed_out = interpreter_->TimerFired(&state_, out.timers[0].timer_id, now_ + absl::Seconds(10));
  ASSERT_TRUE(timed_out.ok());
  EXPECT_EQ(Types(*timed_out), "ExecutionTimedOut");
  EXPECT_EQ(timed_out->closed_status, "TIMED_OUT");
}

TEST_F(InterpreterTest, RuntimeErrorsAreNotCaught) {
  Outcome out = Begin(R"({"StartAt": "P", "States": {
    "P": {"Type": "Parallel", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "X"}], "End": true,
          "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "$.missing", "End": true}}}]},
    "X": {"Type": "Succeed"}}})",
                      R"({"a":1})");
  out = FireTimers(out);
  EXPECT_EQ(out.closed_status, "FAILED");
  EXPECT_EQ(out.error, "States.Runtime");
  EXPECT_EQ(out.cause,
            "An error occurred while executing the state 'A' (entered at the event id #4). "
            "Invalid path '$.missing' : No results for path: $['missing']");
}

TEST_F(InterpreterTest, IntrinsicsInParameters) {
  Outcome out = Begin(R"json({"StartAt": "P", "States": {
    "P": {"Type": "Pass", "Parameters": {
            "greeting.$": "States.Format('Hello, {}!', $.name)",
            "n.$": "States.ArrayLength($.list)",
            "sum.$": "States.MathAdd($.a, 3)"}, "End": true}}})json",
                      R"({"name": "Ada", "list": [1, 2, 3], "a": 4})");
  EXPECT_EQ(out.closed_status, "SUCCEEDED") << out.cause;
  EXPECT_EQ(out.output, R"({"greeting":"Hello, Ada!","n":3,"sum":7})");

  ::stepflow::internal::v1::ExecutionState other;
  Interpreter again(*def_, context_);
  Outcome failed = again.Start(&other, R"({"name": "Ada", "list": "nope", "a": 4})", now_);
  EXPECT_EQ(failed.error, "States.Runtime");
  EXPECT_THAT(failed.cause, ::testing::StartsWith(
                                "An error occurred while executing the state 'P' (entered at "
                                "the event id #2). The function 'States.ArrayLength($.list)'"));
}

// An intrinsic's path argument is a Path, as a "*.$" value is: AWS's own
// example names a field with a space in brackets; wildcards and filters
// give their arrays of matches.
TEST_F(InterpreterTest, IntrinsicPathArgumentsAreJsonPaths) {
  Outcome out = Begin(R"json({"StartAt": "P", "States": {
    "P": {"Type": "Pass", "Parameters": {
            "spaced.$": "States.Format('{}', $.abc.['def ghi'])",
            "ids.$": "States.ArrayLength($.items[*].id)",
            "cheap.$": "States.JsonToString($.items[?(@.price < 10)].id)",
            "none.$": "States.ArrayLength($.items[*].missing)",
            "context.$": "States.Format('{}', $$.State['Name'])"}, "End": true}}})json",
                      R"({"abc": {"def ghi": "x"},
                          "items": [{"id": 1, "price": 5}, {"id": 2, "price": 50}]})");
  EXPECT_EQ(out.closed_status, "SUCCEEDED") << out.cause;
  EXPECT_EQ(out.output, R"({"spaced":"x","ids":2,"cheap":"[1]","none":0,"context":"P"})");

  ::stepflow::internal::v1::ExecutionState other;
  Interpreter again(*def_, context_);
  Outcome failed = again.Start(&other, R"({"abc": {}, "items": []})", now_);
  EXPECT_EQ(failed.error, "States.Runtime");
  EXPECT_THAT(failed.cause, ::testing::HasSubstr("The JsonPath argument for the field "
                                                 "'$.abc.['def ghi']' could not be found"));
}

// AWS's EXPRESS executions (and TestState) have no $$.Execution.RedriveCount.
TEST_F(InterpreterTest, ContextOmitsRedriveCountWhenAsked) {
  Outcome out = Begin(R"({"StartAt": "P", "States": {
    "P": {"Type": "Pass", "Parameters": {"e.$": "$$.Execution"}, "End": true}}})",
                      "{}");
  EXPECT_THAT(out.output, ::testing::HasSubstr(R"("RedriveCount":0)"));
  context_.has_redrive_count = false;
  ::stepflow::internal::v1::ExecutionState other;
  Interpreter again(*def_, context_);
  Outcome express = again.Start(&other, "{}", now_);
  EXPECT_EQ(express.closed_status, "SUCCEEDED") << express.cause;
  EXPECT_THAT(express.output, ::testing::Not(::testing::HasSubstr("RedriveCount")));
}

TEST_F(InterpreterTest, OversizedOutputIsDataLimitExceeded) {
  Outcome out = Begin(R"({"StartAt": "Grow", "States": {
    "Grow": {"Type": "Parallel", "End": true,
             "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
             "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
                          {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}]},
    "Caught": {"Type": "Pass", "End": true}}})",
                      absl::StrCat(R"({"blob": ")", std::string(150 * 1024, 'x'), R"("})"));
  EXPECT_EQ(out.closed_status, "SUCCEEDED");
  EXPECT_THAT(out.output, ::testing::HasSubstr(R"("Error":"States.DataLimitExceeded")"));
}

// Assign reads the state's result and the variables as they were before the
// state; paths read variables by $name (AWS: BASE_EVALUATION_ORDER_PASS_STATE).
TEST_F(InterpreterTest, VariablesAssignAndReference) {
  Outcome out = Begin(R"({"StartAt": "State0", "States": {
    "State0": {"Type": "Pass", "Result": {"theQuestion": "What?"},
               "Assign": {"question.$": "$.theQuestion", "answer": 42}, "Next": "State1"},
    "State1": {"Type": "Pass", "InputPath": "$answer", "ResultPath": "$.theAnswer",
               "OutputPath": "$answer", "Assign": {"answer": "<omitted>"}, "End": true}}})",
                      "{}");
  EXPECT_EQ(out.closed_status, "SUCCEEDED") << out.cause;
  EXPECT_EQ(out.output, "42");
  const auto& assigned = out.events[2].state_exited_event_details().assigned_variables();
  EXPECT_EQ(assigned.at("question"), R"("What?")");
  EXPECT_EQ(assigned.at("answer"), "42");
}

// Branches read the enclosing scope; what they assign stays in the branch
// (AWS: BASE_SCOPE_PARALLEL).
TEST_F(InterpreterTest, VariablesScopeAcrossParallel) {
  Outcome out = Begin(R"({"StartAt": "State0", "States": {
    "State0": {"Type": "Pass", "Assign": {"x": 42}, "Next": "State1"},
    "State1": {"Type": "Parallel", "Next": "After", "Branches": [
      {"StartAt": "B1", "States": {"B1": {"Type": "Pass", "Assign": {"innerX.$": "$x"}, "End": true}}},
      {"StartAt": "B2", "States": {"B2": {"Type": "Pass", "Parameters": {"seen.$": "$x"}, "End": true}}}]},
    "After": {"Type": "Pass", "Parameters": {"x.$": "$x"}, "End": true}}})",
                      "{}");
  EXPECT_EQ(out.closed_status, "SUCCEEDED") << out.cause;
  EXPECT_EQ(out.output, R"({"x":42})");
  bool inner_assigned = false;
  for (const auto& event : out.events) {
    if (event.state_exited_event_details().name() == "B1") {
      inner_assigned = event.state_exited_event_details().assigned_variables().at("innerX") == "42";
    }
  }
  EXPECT_TRUE(inner_assigned);
  // A variable the branch assigned is not visible outside it.
  auto def = Definition::Parse(R"({"StartAt": "P", "States": {
    "P": {"Type": "Parallel", "Next": "After", "Branches": [
      {"StartAt": "B", "States": {"B": {"Type": "Pass", "Assign": {"y": 1}, "End": true}}}]},
    "After": {"Type": "Pass", "InputPath": "$y", "End": true}}})");
  ASSERT_TRUE(def.ok());
  ::stepflow::internal::v1::ExecutionState other;
  Outcome leaked = Interpreter(**def, context_).Start(&other, "{}", now_);
  EXPECT_EQ(leaked.error, "States.Runtime");
}

TEST_F(InterpreterTest, TestStateInspectsEachStep) {
  v1::TestStateRequest request;
  request.set_definition(R"({"Type": "Pass", "InputPath": "$.in", "Parameters": {"v.$": "$.v"},
                             "ResultPath": "$.out", "Assign": {"seen.$": "$.v"}, "Next": "Later"})");
  request.set_input(R"({"in": {"v": 7}})");
  request.set_inspection_level("DEBUG");
  request.set_variables(R"({"old": 1})");
  auto response = TestState(request, context_);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status(), "SUCCEEDED");
  EXPECT_EQ(response->next_state(), "Later");
  EXPECT_EQ(response->output(), R"({"in":{"v":7},"out":{"v":7}})");
  EXPECT_EQ(response->inspection_data().after_input_path(), R"({"v":7})");
  EXPECT_EQ(response->inspection_data().after_parameters(), R"({"v":7})");
  EXPECT_EQ(response->inspection_data().after_result_path(), R"({"in":{"v":7},"out":{"v":7}})");
  EXPECT_EQ(response->inspection_data().variables(), R"({"old":1,"seen":7})");

  EXPECT_EQ(response->inspection_data().result(), "");
  EXPECT_EQ(response->inspection_data().after_result_selector(), R"({"v":7})");

  request.set_inspection_level("INFO");
  auto info = TestState(request, context_);
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->has_inspection_data());
}

// The fields AWS's recordings of TestState show for a Pass state with a
// Result, and none for variables when there are none.
TEST_F(InterpreterTest, TestStateInspectsAPassStateWithAResultAsAwsDoes) {
  v1::TestStateRequest request;
  request.set_definition(R"({"Type": "Pass", "InputPath": "$.in", "Parameters": {"v.$": "$.v"},
                             "Result": {"r": 1}, "ResultPath": "$.out", "End": true})");
  request.set_input(R"({"in": {"v": 7}})");
  request.set_inspection_level("TRACE");
  auto response = TestState(request, context_);
  ASSERT_TRUE(response.ok()) << response.status();
  const v1::InspectionData& data = response->inspection_data();
  EXPECT_EQ(data.input(), R"({"in": {"v": 7}})");
  EXPECT_EQ(data.after_input_path(), "");
  EXPECT_EQ(data.after_parameters(), "");
  EXPECT_EQ(data.result(), R"({"r":1})");
  EXPECT_EQ(data.after_result_selector(), R"({"r":1})");
  EXPECT_EQ(data.after_result_path(), R"({"in":{"v":7},"out":{"r":1}})");
  EXPECT_EQ(data.variables(), "");

  request.set_definition(R"({"Type": "Choice", "Default": "D", "Choices": [
                             {"Variable": "$.in.v", "NumericEquals": 7, "Next": "S"}]})");
  auto choice = TestState(request, context_);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->next_state(), "S");
  EXPECT_EQ(choice->inspection_data().after_input_path(), R"({"in":{"v":7}})");
  EXPECT_EQ(choice->inspection_data().variables(), "");
}

// As AWS's recordings show: a state of a JSONata machine is JSONata, and a
// state given alone is named "StateName" (a branch state named
// "TestState" is no clash).
TEST_F(InterpreterTest, TestStateKeepsTheMachinesQueryLanguage) {
  v1::TestStateRequest request;
  request.set_definition(R"({"QueryLanguage": "JSONata", "StartAt": "A", "States": {
    "A": {"Type": "Pass", "Output": "{% $states.input.cost + 1 %}", "End": true}}})");
  request.set_state_name("A");
  request.set_input(R"({"cost": 9})");
  auto response = TestState(request, context_);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status(), "SUCCEEDED");
  EXPECT_EQ(response->output(), "10");

  // $$.State.EnteredTime is when the test ran, not the epoch.
  request.set_definition(R"({"StartAt": "A", "States": {
    "A": {"Type": "Pass", "Parameters": {"at.$": "$$.State.EnteredTime"}, "End": true}}})");
  context_.start_time = now_;
  auto entered = TestState(request, context_);
  ASSERT_TRUE(entered.ok()) << entered.status();
  EXPECT_EQ(entered->output(), R"({"at":"2023-11-14T22:13:20.000Z"})");

  // A state nested in a Map's processor or a Parallel's branch can be
  // tested by its name; it runs as "StateName", and without a role,
  // $$.Execution.RoleArn is null, as AWS records both.
  v1::TestStateRequest nested;
  nested.set_definition(R"({"StartAt": "M", "States": {
    "M": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "P", "States": {
      "P": {"Type": "Parallel", "End": true, "Branches": [{"StartAt": "Deep", "States": {
        "Deep": {"Type": "Pass", "Parameters": {"name.$": "$$.State.Name",
                                                "role.$": "$$.Execution.RoleArn"},
                 "Next": "Later"},
        "Later": {"Type": "Succeed"}}}]}}}}}})");
  nested.set_state_name("Deep");
  ExecutionContext roleless = context_;
  roleless.role_arn.clear();
  auto deep = TestState(nested, roleless);
  ASSERT_TRUE(deep.ok()) << deep.status();
  EXPECT_EQ(deep->status(), "SUCCEEDED");
  EXPECT_EQ(deep->next_state(), "Later");
  EXPECT_EQ(deep->output(), R"({"name":"StateName","role":null})");
  nested.set_state_name("Nowhere");
  EXPECT_EQ(TestState(nested, context_).status().code(), absl::StatusCode::kInvalidArgument);

  // Only Task, Parallel and Map states take a mock (AWS's
  // test_state_type_does_not_accept_mock).
  v1::TestStateRequest pass;
  pass.set_definition(R"({"Type": "Pass", "End": true})");
  pass.mutable_mock()->set_result("{}");
  auto refused = TestState(pass, context_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            "ValidationException: State type 'Pass' is not supported when a mock is specified");

  v1::TestStateRequest alone;
  alone.set_definition(R"({"Type": "Parallel", "End": true, "Branches": [
    {"StartAt": "TestState", "States": {"TestState": {"Type": "Pass", "End": true}}}]})");
  alone.mutable_mock()->set_result("[{}]");
  auto parallel = TestState(alone, context_);
  ASSERT_TRUE(parallel.ok()) << parallel.status();
  EXPECT_EQ(parallel->status(), "SUCCEEDED");
}

// TestState's `context` is the Context object the state sees, checked as
// AWS's recordings show (test_state_context_object).
TEST_F(InterpreterTest, TestStateTakesAGivenContextObject) {
  v1::TestStateRequest request;
  request.set_definition(R"({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {"FunctionName": "f", "Payload": {"Input.$": "$"}},
      "ResultSelector": {"Context.$": "$$.Execution.Input.values", "Out.$": "$"},
      "End": true})");
  request.set_input(R"({"a": 1})");
  request.set_context(R"({"Execution": {"Id": "arn:aws:states:::execution:M:e", "Input":
      {"values": [1, 2]}, "Name": "e"}, "State": {"Name": "S", "RetryCount": 0}})");
  request.mutable_mock()->set_result(R"({"ok": true})");
  auto response = TestState(request, context_);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->output(), R"({"Context":[1,2],"Out":{"ok":true}})");

  request.set_definition(R"({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {"Whole.$": "$$"}, "End": true})");
  request.set_context("{}");
  request.mutable_mock()->set_result("1");
  request.set_inspection_level("DEBUG");
  auto empty = TestState(request, context_);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->inspection_data().after_parameters(), R"({"Whole":{}})");

  for (const auto& [given, message] : std::vector<std::pair<std::string, std::string>>{
           {"[]", "the Context object must be a JSON object"},
           {R"({"Execution": 1})", "Execution must be an object"},
           {R"({"State": {"RetryCount": "1"}})", "State.RetryCount must be an integer"},
           {R"({"Execution": {"Id": 1}})", "Execution.Id must be a string"},
           {R"({"Map": {}})", "'Map' field is not supported when mocking a Context object"},
           {R"({"Execution": {"pokemon": "squirtle"}})", "Field 'pokemon' is not allowed"},
           {R"({"Pokedex": {}})", "Field 'Pokedex' is not allowed"},
           {R"({"Task": {"Token": "t"}})",
            "Context object contains 'Task' when state is not a Task state with a '.sync' or "
            "'.waitForTaskToken' service integration pattern"}}) {
    request.set_context(given);
    EXPECT_EQ(TestState(request, context_).status().message(),
              "ValidationException: Invalid Context object provided: " + message)
        << given;
  }
  request.set_context("{not json");
  EXPECT_THAT(std::string(TestState(request, context_).status().message()),
              ::testing::StartsWith("ValidationException: Invalid Context object provided: "));

  // A task token the state passes on comes from the given Task.
  request.set_definition(R"({"Type": "Task",
      "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
      "Parameters": {"QueueUrl": "q", "MessageBody": {"TaskToken.$": "$$.Task.Token"}},
      "End": true})");
  request.set_context(R"({"Task": {"Token": "abcd123"}})");
  auto token = TestState(request, context_);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->inspection_data().after_parameters(),
            R"({"QueueUrl":"q","MessageBody":{"TaskToken":"abcd123"}})");

  // An ItemsPath that gives no array, in AWS's words.
  v1::TestStateRequest map;
  map.set_definition(R"({"Type": "Map", "ItemsPath": "$$.Execution.Input", "End": true,
      "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}})");
  map.set_context(R"({"Execution": {"Input": {"a": 1}}})");
  map.mutable_mock()->set_result("[]");
  auto not_array = TestState(map, context_);
  ASSERT_TRUE(not_array.ok()) << not_array.status();
  EXPECT_EQ(not_array->error(), "States.Runtime");
  EXPECT_EQ(not_array->cause(), R"(Reference path "$.Execution.Input" must point to array.)");
}

TEST_F(InterpreterTest, TestStateTaskWithMockedErrors) {
  v1::TestStateRequest request;
  request.set_definition(absl::StrCat(R"({"Type": "Task", "Resource": ")", kActivity, R"(",
      "Retry": [{"ErrorEquals": ["Flaky"], "MaxAttempts": 2, "IntervalSeconds": 3}],
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Recover"}],
      "End": true})"));
  request.set_input(R"({"a": 1})");
  request.mutable_mock()->mutable_error_output()->set_error("Flaky");
  request.set_inspection_level("DEBUG");
  auto retriable = TestState(request, context_);
  ASSERT_TRUE(retriable.ok()) << retriable.status();
  EXPECT_EQ(retriable->status(), "RETRIABLE");
  EXPECT_EQ(retriable->inspection_data().error_details().retry_index(), 0);
  EXPECT_EQ(retriable->inspection_data().error_details().retry_backoff_interval_seconds(), 3);

  request.mutable_state_configuration()->set_retrier_retry_count(2);
  auto caught = TestState(request, context_);
  ASSERT_TRUE(caught.ok());
  EXPECT_EQ(caught->status(), "CAUGHT_ERROR");
  EXPECT_EQ(caught->next_state(), "Recover");
  EXPECT_EQ(caught->output(), R"({"a":1,"err":{"Error":"Flaky","Cause":""}})");
  EXPECT_EQ(caught->inspection_data().error_details().catch_index(), 0);

  // Retries used up and nothing catches: the retrier is named, as AWS
  // records it, with no backoff.
  v1::TestStateRequest exhausted = request;
  exhausted.set_definition(absl::StrCat(R"({"Type": "Task", "Resource": ")", kActivity, R"(",
      "Retry": [{"ErrorEquals": ["Other"]}, {"ErrorEquals": ["Flaky"], "MaxAttempts": 2}],
      "End": true})"));
  auto failed = TestState(exhausted, context_);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->status(), "FAILED");
  EXPECT_EQ(failed->inspection_data().error_details().retry_index(), 1);
  EXPECT_FALSE(failed->inspection_data().error_details().has_retry_backoff_interval_seconds());
  EXPECT_FALSE(failed->inspection_data().error_details().has_catch_index());

  request.mutable_mock()->Clear();
  request.mutable_mock()->set_result(R"({"ok": true})");
  auto succeeded = TestState(request, context_);
  ASSERT_TRUE(succeeded.ok());
  EXPECT_EQ(succeeded->status(), "SUCCEEDED");
  EXPECT_EQ(succeeded->output(), R"({"ok":true})");

  request.mutable_mock()->Clear();
  EXPECT_EQ(TestState(request, context_).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_definition("{not json");
  EXPECT_EQ(TestState(request, context_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(InterpreterTest, TestStateParallelAndMapTakeTheirResultFromTheMock) {
  v1::TestStateRequest request;
  request.set_definition(R"({"Type": "Parallel", "Parameters": {"x.$": "$.a"},
      "ResultSelector": {"first.$": "$[0]"}, "ResultPath": "$.r", "Next": "After",
      "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}},
                   {"StartAt": "C", "States": {"C": {"Type": "Pass", "End": true}}}]})");
  request.set_input(R"({"a": 1})");
  request.set_inspection_level("DEBUG");
  request.mutable_mock()->set_result(R"([{"b": 2}, 3])");
  auto parallel = TestState(request, context_);
  ASSERT_TRUE(parallel.ok()) << parallel.status();
  EXPECT_EQ(parallel->status(), "SUCCEEDED");
  EXPECT_EQ(parallel->next_state(), "After");
  EXPECT_EQ(parallel->output(), R"({"a":1,"r":{"first":{"b":2}}})");
  // As AWS records a mocked Parallel: no InputPath, Parameters or raw
  // result, but what ResultSelector and ResultPath made of the mock.
  EXPECT_FALSE(parallel->inspection_data().has_max_concurrency());
  EXPECT_EQ(parallel->inspection_data().after_parameters(), "");
  EXPECT_EQ(parallel->inspection_data().after_input_path(), "");
  EXPECT_EQ(parallel->inspection_data().result(), "");
  EXPECT_EQ(parallel->inspection_data().after_result_selector(), R"({"first":{"b":2}})");
  EXPECT_EQ(parallel->inspection_data().after_result_path(), R"({"a":1,"r":{"first":{"b":2}}})");

  // The mock refusals AWS records.
  v1::TestStateRequest refused = request;
  refused.mutable_mock()->set_result(R"([{"b": 2}])");
  EXPECT_EQ(TestState(refused, context_).status().message(),
            "ValidationException: Mocked result must contain the same number of items as number "
            "of Parallel branches.");
  refused.mutable_mock()->mutable_error_output()->set_error("Boom");
  EXPECT_EQ(TestState(refused, context_).status().message(),
            "ValidationException: A test mock should have only one of the following fields: "
            "[result, errorOutput].");
  refused.mutable_mock()->clear_error_output();
  refused.set_reveal_secrets(true);
  EXPECT_EQ(TestState(refused, context_).status().message(),
            "ValidationException: TestState does not support RevealSecrets when a mock is "
            "specified.");
  v1::TestStateRequest writer;
  writer.set_definition(R"({"Type": "Map", "End": true,
      "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}},
      "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                       "Parameters": {"Bucket": "b", "Prefix": "p"}}})");
  writer.mutable_mock()->set_result("[1]");
  EXPECT_EQ(TestState(writer, context_).status().message(),
            "ValidationException: Mocked result must be a JSON object.");
  writer.mutable_mock()->set_result(R"({"ResultWriterDetails": {"Bucket": "b"}})");
  writer.set_input("[1, 2]");
  auto written = TestState(writer, context_);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->output(), R"({"ResultWriterDetails":{"Bucket":"b"}})");

  request.set_definition(R"({"Type": "Map", "ItemsPath": "$.items", "End": true,
      "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Recover"}],
      "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}})");
  request.set_input(R"({"items": [1, 2]})");
  request.mutable_mock()->set_result("[10, 20]");
  auto map = TestState(request, context_);
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->status(), "SUCCEEDED");
  EXPECT_EQ(map->output(), "[10,20]");
  EXPECT_EQ(map->inspection_data().max_concurrency(), 0);
  EXPECT_FALSE(map->inspection_data().has_tolerated_failure_count());
  // A Map shows its InputPath and ItemsPath, as AWS records it.
  EXPECT_EQ(map->inspection_data().after_input_path(), R"({"items":[1,2]})");
  EXPECT_EQ(map->inspection_data().after_items_path(), "[1,2]");
  // More failed iterations than there are is refused, in AWS's words.
  v1::TestStateRequest too_many = request;
  too_many.mutable_state_configuration()->set_map_iteration_failure_count(3);
  EXPECT_EQ(TestState(too_many, context_).status().message(),
            "ValidationException: Map iteration failure count must be less than or equal to the "
            "number of Map iterations");

  request.mutable_mock()->Clear();
  request.mutable_mock()->mutable_error_output()->set_error("States.ExceedToleratedFailureThreshold");
  auto caught = TestState(request, context_);
  ASSERT_TRUE(caught.ok()) << caught.status();
  EXPECT_EQ(caught->status(), "CAUGHT_ERROR");
  EXPECT_EQ(caught->next_state(), "Recover");

  // No mock, or a mock that is not an array: refused.
  request.mutable_mock()->Clear();
  EXPECT_EQ(TestState(request, context_).status().code(), absl::StatusCode::kInvalidArgument);
  request.mutable_mock()->set_result(R"({"not": "an array"})");
  EXPECT_EQ(TestState(request, context_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(InterpreterTest, TestStateMapIterationFailureCountAgainstTheTolerance) {
  v1::TestStateRequest request;
  request.set_definition(R"({"Type": "Map", "ItemsPath": "$.items", "End": true,
      "ToleratedFailureCount": 1,
      "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "Next": "Recover"}],
      "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}})");
  request.set_input(R"({"items": [1, 2, 3]})");
  request.mutable_mock()->set_result("[1, 1, 1]");
  request.mutable_state_configuration()->set_map_iteration_failure_count(1);
  auto tolerated = TestState(request, context_);
  ASSERT_TRUE(tolerated.ok()) << tolerated.status();
  EXPECT_EQ(tolerated->status(), "SUCCEEDED");
  EXPECT_EQ(tolerated->output(), "[1,1,1]");

  request.mutable_state_configuration()->set_map_iteration_failure_count(2);
  auto caught = TestState(request, context_);
  ASSERT_TRUE(caught.ok()) << caught.status();
  EXPECT_EQ(caught->status(), "CAUGHT_ERROR");
  EXPECT_EQ(caught->error(), "States.ExceedToleratedFailureThreshold");
  EXPECT_EQ(caught->cause(), "The specified tolerated failure threshold was exceeded");
  EXPECT_EQ(caught->next_state(), "Recover");

  // A percentage counts the items the ItemReader read when they are given.
  request.set_definition(R"({"Type": "Map", "End": true, "ToleratedFailurePercentage": 50,
      "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}})");
  request.set_input("[1, 2]");
  request.mutable_mock()->set_result("[1, 1]");
  auto failed = TestState(request, context_);  // 2 of 2
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->status(), "FAILED");
  EXPECT_EQ(failed->error(), "States.ExceedToleratedFailureThreshold");
  request.mutable_state_configuration()->set_map_item_reader_data("[1, 2, 3, 4]");
  auto within = TestState(request, context_);  // 2 of 4
  ASSERT_TRUE(within.ok()) << within.status();
  EXPECT_EQ(within->status(), "SUCCEEDED");

  // A Map without a tolerance is not checked, as on AWS.
  request.set_definition(R"({"Type": "Map", "End": true,
      "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}})");
  auto unchecked = TestState(request, context_);
  ASSERT_TRUE(unchecked.ok()) << unchecked.status();
  EXPECT_EQ(unchecked->status(), "SUCCEEDED");
}

TEST_F(InterpreterTest, HugeBackoffDoesNotOverflowAndClosedExecutionsIgnoreTimers) {
  Outcome started = Begin(absl::StrCat(R"({"StartAt": "T", "TimeoutSeconds": 100, "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(",
          "Retry": [{"ErrorEquals": ["E"], "MaxAttempts": 3, "BackoffRate": 1e308}], "End": true}}})"),
                          "{}");
  auto first = interpreter_->ActivityFailed(&state_, 3, "E", "", now_);
  ASSERT_TRUE(first.ok());
  Outcome retried = FireTimers(*first);
  const int64_t second_id = retried.dispatches.at(0).scheduled_event_id;
  auto second = interpreter_->ActivityFailed(&state_, second_id, "E", "", now_);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->timers.size(), 1u);
  EXPECT_GT(second->timers[0].fire_at, now_ + absl::Hours(24 * 365));
  // Closing the execution disarms the execution timeout.
  Outcome aborted = interpreter_->Abort(&state_, "", "", now_);
  EXPECT_EQ(aborted.closed_status, "ABORTED");
  EXPECT_FALSE(interpreter_->TimerFired(&state_, started.timers.at(0).timer_id, now_).ok());
}

TEST_F(InterpreterTest, ChoiceComparesTwoContextPaths) {
  Outcome out = Begin(R"({"StartAt": "C", "States": {
    "C": {"Type": "Choice", "Choices": [{"Variable": "$$.Execution.Name",
          "StringEqualsPath": "$$.Execution.Name", "Next": "Same"}], "Default": "Other"},
    "Same": {"Type": "Succeed"}, "Other": {"Type": "Fail", "Error": "Differ"}}})",
                      "{}");
  EXPECT_EQ(out.closed_status, "SUCCEEDED");
}

TEST_F(InterpreterTest, LoopWithoutWaitingHitsTheHistoryLimit) {
  Outcome out = Begin(R"({"StartAt": "A", "States": {
    "A": {"Type": "Pass", "Next": "X"},
    "X": {"Type": "Choice", "Choices": [{"Variable": "$.n", "IsPresent": true, "Next": "A"}],
          "Default": "E"},
    "E": {"Type": "Succeed"}}})",
                      R"({"n": 1})");
  EXPECT_EQ(out.closed_status, "FAILED");
  EXPECT_EQ(out.error, "States.Runtime");
  EXPECT_LE(out.events.size(), 25002u);
}

TEST_F(InterpreterTest, AbortClosesExecution) {
  Begin(absl::StrCat(R"({"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": ")", kActivity, R"(", "End": true}}})"), "{}");
  Outcome out = interpreter_->Abort(&state_, "Stop", "by user", now_);
  EXPECT_EQ(Types(out), "ExecutionAborted");
  EXPECT_EQ(out.closed_status, "ABORTED");
  EXPECT_THAT(out.cancelled_tasks, ElementsAre(3));
}

TEST_F(InterpreterTest, LongSynchronousLoopDoesNotRecurse) {
  Outcome out = Begin(R"({"StartAt": "Inc", "States": {
    "Inc": {"Type": "Pass", "Next": "Check"},
    "Check": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "Inc"}], "Default": "Done"},
    "Done": {"Type": "Succeed"}}})",
                      R"({"n": 2})");
  EXPECT_EQ(out.closed_status, "SUCCEEDED");
}

}  // namespace
}  // namespace stepflow::asl
