#include "tools/local/local_runner.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/json/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/local/shell_task_handler.h"

namespace stepflow::local {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

absl::Time TimeOf(const v1::HistoryEvent& event) {
  return absl::FromUnixSeconds(event.timestamp().seconds()) +
         absl::Nanoseconds(event.timestamp().nanos());
}

std::vector<std::string> Types(const LocalRunResult& result) {
  std::vector<std::string> types;
  for (const auto& event : result.history) types.push_back(event.type());
  return types;
}

std::vector<const v1::HistoryEvent*> OfType(const LocalRunResult& result,
                                            const std::string& type) {
  std::vector<const v1::HistoryEvent*> events;
  for (const auto& event : result.history) {
    if (event.type() == type) events.push_back(&event);
  }
  return events;
}

// Virtual time from the start to the last event.
absl::Duration Elapsed(const LocalRunResult& result) {
  return TimeOf(result.history.back()) - TimeOf(result.history.front());
}

// The canonical (compact) form of a JSON text, to compare outputs.
std::string Canonical(const std::string& text) {
  absl::StatusOr<json::Document> doc = json::Parse(text);
  if (!doc.ok()) return "<not JSON: " + text + ">";
  return json::Serialize(*doc);
}

// Events are numbered 1.. and each names an earlier one (or none).
void ExpectWellFormed(const LocalRunResult& result) {
  for (size_t i = 0; i < result.history.size(); ++i) {
    EXPECT_EQ(result.history[i].id(), static_cast<int64_t>(i + 1));
    EXPECT_LT(result.history[i].previous_event_id(), result.history[i].id());
    if (i > 0) {
      EXPECT_GE(TimeOf(result.history[i]), TimeOf(result.history[i - 1]));
    }
  }
}

// Runs `options`, expecting the runner itself to succeed (whatever the
// execution's status).
LocalRunResult MustRun(LocalRunOptions options) {
  absl::StatusOr<LocalRunResult> result = RunLocally(options);
  EXPECT_TRUE(result.ok()) << result.status();
  if (!result.ok()) return {};
  ExpectWellFormed(*result);
  return *std::move(result);
}

TaskReply Success(std::string output) {
  return TaskReply{.success = true, .output = std::move(output)};
}

TaskReply Failure(std::string error, std::string cause) {
  return TaskReply{.error = std::move(error), .cause = std::move(cause)};
}

TEST(LocalRunnerTest, PassChain) {
  LocalRunOptions options;
  options.definition = R"({
    "StartAt": "A",
    "States": {
      "A": {"Type": "Pass", "Result": {"n": 1}, "ResultPath": "$.a", "Next": "B"},
      "B": {"Type": "Pass", "Parameters": {"sum.$": "$.a.n", "name.$": "$$.Execution.Name"},
            "Next": "C"},
      "C": {"Type": "Succeed"}
    }
  })";
  options.input = R"({"x": true})";
  options.name = "chain-1";
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_EQ(Canonical(result.output), R"({"sum":1,"name":"chain-1"})");
  EXPECT_THAT(
      Types(result),
      ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                  "PassStateEntered", "PassStateExited", "SucceedStateEntered",
                  "SucceedStateExited", "ExecutionSucceeded"));
  EXPECT_EQ(result.history.back().execution_succeeded_event_details().output(),
            result.output);
  EXPECT_EQ(Elapsed(result), absl::ZeroDuration());
}

TEST(LocalRunnerTest, ContextHasTheLocalIds) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "A", "States": {"A": {"Type": "Pass",
      "Parameters": {"e.$": "$$.Execution.Id", "m.$": "$$.StateMachine.Id"}, "End": true}}})";
  options.name = "ids";
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(Canonical(result.output),
            Canonical(absl::StrCat(R"({"e": ")", kLocalExecutionArnPrefix,
                                   R"(ids", "m": ")", kLocalStateMachineArn,
                                   R"("})")));
}

TEST(LocalRunnerTest, TaskSucceedsThroughTheHandler) {
  LocalRunOptions options;
  options.definition = R"({
    "StartAt": "Work",
    "States": {
      "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:add",
               "Parameters": {"n.$": "$.n", "token.$": "$$.Task.Token"},
               "ResultPath": "$.result", "End": true}
    }
  })";
  options.input = R"({"n": 41})";
  std::vector<TaskRequest> requests;
  options.task_handler = [&](const TaskRequest& task) {
    requests.push_back(task);
    absl::StatusOr<json::Document> input = json::Parse(task.input);
    return Success(absl::StrCat((*input)["n"].GetInt() + 1));
  };
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_EQ(Canonical(result.output), R"({"n":41,"result":42})");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].activity_arn,
            "arn:aws:states:us-east-1:123456789012:activity:add");
  EXPECT_FALSE(requests[0].task_token.empty());
  EXPECT_EQ(Canonical(requests[0].input),
            Canonical(absl::StrCat(R"({"n": 41, "token": ")",
                                   requests[0].task_token, R"("})")));
  EXPECT_THAT(Types(result), ElementsAre("ExecutionStarted", "TaskStateEntered",
                                         "ActivityScheduled", "ActivityStarted",
                                         "ActivitySucceeded", "TaskStateExited",
                                         "ExecutionSucceeded"));
  EXPECT_EQ(OfType(result, "ActivityStarted")[0]
                ->activity_started_event_details()
                .worker_name(),
            "local");
}

TEST(LocalRunnerTest, JsonataMachine) {
  LocalRunOptions options;
  options.definition = R"({
    "QueryLanguage": "JSONata",
    "StartAt": "Work",
    "States": {
      "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:add",
               "Arguments": {"n": "{% $states.input.n %}", "token": "{% $states.context.Task.Token %}"},
               "Assign": {"total": "{% $states.result %}"}, "Next": "Pause"},
      "Pause": {"Type": "Wait", "Seconds": "{% $total - 40 %}", "Next": "Check"},
      "Check": {"Type": "Choice",
                "Choices": [{"Condition": "{% $total = 42 %}", "Next": "Done",
                             "Output": {"total": "{% $total %}", "in": "{% $states.input %}"}}],
                "Default": "Wrong"},
      "Done": {"Type": "Succeed"},
      "Wrong": {"Type": "Fail", "Error": "{% 'Got ' & $string($total) %}"}
    }
  })";
  options.input = R"({"n": 41})";
  std::vector<TaskRequest> requests;
  options.task_handler = [&](const TaskRequest& task) {
    requests.push_back(task);
    absl::StatusOr<json::Document> input = json::Parse(task.input);
    return Success(absl::StrCat((*input)["n"].GetInt() + 1));
  };
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED") << result.error << ": " << result.cause;
  EXPECT_EQ(Canonical(result.output), R"({"total":42,"in":42})");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(Canonical(requests[0].input),
            Canonical(absl::StrCat(R"({"n": 41, "token": ")", requests[0].task_token, R"("})")));
  EXPECT_EQ(Elapsed(result), absl::Seconds(2));
}

TEST(LocalRunnerTest, TaskFailureFromTheHandlerFailsTheExecution) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Work", "States": {
      "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:x",
               "End": true}}})";
  options.task_handler = [](const TaskRequest&) {
    return Failure("Boom", "it broke");
  };
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "FAILED");
  EXPECT_EQ(result.error, "Boom");
  EXPECT_EQ(result.cause, "it broke");
  EXPECT_TRUE(result.output.empty());
  EXPECT_EQ(result.history.back().type(), "ExecutionFailed");
  const auto failed = OfType(result, "ActivityFailed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]->activity_failed_event_details().error(), "Boom");
}

TEST(LocalRunnerTest, TaskOfAnUnknownActivityFailsBeforeScheduling) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Work", "States": {
      "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:x",
               "End": true}}})";
  int calls = 0;
  options.task_handler = [&calls](const TaskRequest& task) {
    ++calls;
    return TaskReply{.success = true, .output = task.input};
  };
  options.activity_exists = [](absl::string_view arn) { return absl::EndsWith(arn, ":known"); };
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "FAILED");
  EXPECT_EQ(result.error, "States.Runtime");
  EXPECT_THAT(result.cause,
              HasSubstr("The activity arn:aws:states:us-east-1:123456789012:activity:x does "
                        "not exist."));
  EXPECT_THAT(Types(result), ElementsAre("ExecutionStarted", "TaskStateEntered", "ExecutionFailed"));
  EXPECT_EQ(calls, 0);
}

TEST(LocalRunnerTest, WithoutAHandlerTasksFailWithTaskFailed) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Work", "States": {
      "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:x",
               "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}],
               "End": true},
      "Caught": {"Type": "Pass", "End": true}}})";
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_EQ(
      Canonical(result.output),
      R"({"Error":"States.TaskFailed","Cause":"no task handler was given"})");
}

TEST(LocalRunnerTest, RetryBacksOffOnTheVirtualClock) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Flaky", "States": {
      "Flaky": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:f",
                "Retry": [{"ErrorEquals": ["Transient"], "IntervalSeconds": 10,
                           "BackoffRate": 3, "MaxAttempts": 5}],
                "End": true}}})";
  int calls = 0;
  options.task_handler = [&](const TaskRequest&) {
    return ++calls < 3 ? Failure("Transient", absl::StrCat("attempt ", calls))
                       : Success(R"({"ok": true})");
  };
  const absl::Time wall_start = absl::Now();
  LocalRunResult result = MustRun(options);
  EXPECT_LT(absl::Now() - wall_start, absl::Seconds(5));  // no sleeping
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_EQ(calls, 3);
  EXPECT_THAT(
      Types(result),
      ElementsAre("ExecutionStarted", "TaskStateEntered", "ActivityScheduled",
                  "ActivityStarted", "ActivityFailed", "ActivityScheduled",
                  "ActivityStarted", "ActivityFailed", "ActivityScheduled",
                  "ActivityStarted", "ActivitySucceeded", "TaskStateExited",
                  "ExecutionSucceeded"));
  const auto scheduled = OfType(result, "ActivityScheduled");
  ASSERT_EQ(scheduled.size(), 3u);
  const absl::Time start = TimeOf(result.history.front());
  EXPECT_EQ(TimeOf(*scheduled[0]) - start, absl::ZeroDuration());
  EXPECT_EQ(TimeOf(*scheduled[1]) - start, absl::Seconds(10));
  EXPECT_EQ(TimeOf(*scheduled[2]) - start, absl::Seconds(40));  // 10 + 10*3
  EXPECT_EQ(Elapsed(result), absl::Seconds(40));
}

TEST(LocalRunnerTest, RetriesExhaustedThenCaught) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Flaky", "States": {
      "Flaky": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:f",
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1,
                           "MaxAttempts": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                           "Next": "Recover"}],
                "End": true},
      "Recover": {"Type": "Pass", "End": true}}})";
  int calls = 0;
  options.task_handler = [&](const TaskRequest&) {
    ++calls;
    return Failure("Permanent", "no");
  };
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(Canonical(result.output),
            R"({"error":{"Error":"Permanent","Cause":"no"}})");
  EXPECT_EQ(Elapsed(result), absl::Seconds(3));  // 1 + 2
}

TEST(LocalRunnerTest, JitterIsDeterministic) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Flaky", "States": {
      "Flaky": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:f",
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 100,
                           "MaxAttempts": 3, "JitterStrategy": "FULL"}],
                "End": true}}})";
  options.task_handler = [](const TaskRequest&) { return Failure("E", "c"); };
  LocalRunResult first = MustRun(options);
  LocalRunResult second = MustRun(options);
  EXPECT_EQ(first.status, "FAILED");
  EXPECT_EQ(Elapsed(first), Elapsed(second));
  EXPECT_GT(Elapsed(first), absl::ZeroDuration());
  EXPECT_LT(Elapsed(first), absl::Seconds(100 + 200 + 400));
}

TEST(LocalRunnerTest, WaitWithSecondsPath) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Nap", "States": {
      "Nap": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "Done"},
      "Done": {"Type": "Succeed"}}})";
  options.input = R"({"delay": 86400})";
  const absl::Time wall_start = absl::Now();
  LocalRunResult result = MustRun(options);
  EXPECT_LT(absl::Now() - wall_start, absl::Seconds(5));
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_EQ(Canonical(result.output), R"({"delay":86400})");
  EXPECT_EQ(Elapsed(result), absl::Hours(24));
  const auto exited = OfType(result, "WaitStateExited");
  ASSERT_EQ(exited.size(), 1u);
  EXPECT_EQ(TimeOf(*exited[0]) - TimeOf(result.history.front()),
            absl::Hours(24));
}

TEST(LocalRunnerTest, WaitPastMaxVirtualTimeIsAnError) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Nap", "States": {
      "Nap": {"Type": "Wait", "Seconds": 7200, "End": true}}})";
  options.max_virtual_time = absl::Hours(1);
  absl::StatusOr<LocalRunResult> result = RunLocally(options);
  EXPECT_TRUE(absl::IsDeadlineExceeded(result.status())) << result.status();
}

TEST(LocalRunnerTest, ParallelRunsBothBranchTasks) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Both", "States": {
      "Both": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "L", "States": {"L": {"Type": "Task",
          "Resource": "arn:aws:states:us-east-1:123456789012:activity:left", "End": true}}},
        {"StartAt": "R", "States": {"R": {"Type": "Task",
          "Resource": "arn:aws:states:us-east-1:123456789012:activity:right", "End": true}}}
      ]}}})";
  options.input = R"({"v": 1})";
  std::vector<std::string> order;
  options.task_handler = [&](const TaskRequest& task) {
    order.push_back(task.activity_arn.substr(task.activity_arn.rfind(':') + 1));
    return Success(absl::StrCat(R"({"from": ")", order.back(), R"("})"));
  };
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_THAT(order, ElementsAre("left", "right"));  // dispatch order
  EXPECT_EQ(Canonical(result.output), R"([{"from":"left"},{"from":"right"}])");
  EXPECT_EQ(OfType(result, "ActivityScheduled").size(), 2u);
  EXPECT_EQ(OfType(result, "ParallelStateSucceeded").size(), 1u);
}

TEST(LocalRunnerTest, FailedBranchCancelsTheOtherBranchsTask) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Both", "States": {
      "Both": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "L", "States": {"L": {"Type": "Task",
          "Resource": "arn:aws:states:us-east-1:123456789012:activity:fail", "End": true}}},
        {"StartAt": "R", "States": {"R": {"Type": "Task",
          "Resource": "arn:aws:states:us-east-1:123456789012:activity:never", "End": true}}}
      ]}}})";
  std::vector<std::string> called;
  options.task_handler = [&](const TaskRequest& task) {
    called.push_back(task.activity_arn);
    return Failure("Left", "left failed");
  };
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "FAILED");
  EXPECT_EQ(result.error, "Left");
  EXPECT_THAT(
      called,
      ElementsAre("arn:aws:states:us-east-1:123456789012:activity:fail"));
  EXPECT_EQ(OfType(result, "ActivityStarted").size(), 1u);
}

TEST(LocalRunnerTest, MapRunsATaskPerItem) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Each", "States": {
      "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "End": true,
        "ItemProcessor": {"StartAt": "Double", "States": {"Double": {"Type": "Task",
          "Resource": "arn:aws:states:us-east-1:123456789012:activity:double", "End": true}}}}}})";
  options.input = R"({"items": [1, 2, 3]})";
  std::vector<std::string> inputs;
  options.task_handler = [&](const TaskRequest& task) {
    inputs.push_back(task.input);
    absl::StatusOr<json::Document> n = json::Parse(task.input);
    return Success(absl::StrCat(n->GetInt() * 2));
  };
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_EQ(Canonical(result.output), "[2,4,6]");
  EXPECT_THAT(inputs, ElementsAre("1", "2", "3"));
  EXPECT_EQ(OfType(result, "MapIterationStarted").size(), 3u);
  EXPECT_EQ(OfType(result, "MapIterationSucceeded").size(), 3u);
  EXPECT_EQ(OfType(result, "ActivitySucceeded").size(), 3u);
  const auto started = OfType(result, "MapStateStarted");
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0]->map_state_started_event_details().length(), 3);
}

constexpr char kTenMinuteWait[] = R"({"StartAt": "Nap", "States": {
    "Nap": {"Type": "Wait", "Seconds": 600, "Next": "Done"},
    "Done": {"Type": "Succeed"}}})";

TEST(LocalRunnerTest, ExpressTimesOutAfterFiveVirtualMinutes) {
  LocalRunOptions options;
  options.definition = kTenMinuteWait;
  options.type = "EXPRESS";
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "TIMED_OUT");
  EXPECT_EQ(result.error, "States.Timeout");
  EXPECT_EQ(result.history.back().type(), "ExecutionTimedOut");
  EXPECT_EQ(Elapsed(result), absl::Minutes(5));
  EXPECT_TRUE(OfType(result, "WaitStateExited").empty());
}

TEST(LocalRunnerTest, StandardWaitsTheWholeTenMinutes) {
  LocalRunOptions options;
  options.definition = kTenMinuteWait;
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_EQ(Elapsed(result), absl::Minutes(10));
}

TEST(LocalRunnerTest, ExpressKeepsAShorterTimeout) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Nap", "TimeoutSeconds": 60, "States": {
      "Nap": {"Type": "Wait", "Seconds": 600, "End": true}}})";
  options.type = "EXPRESS";
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "TIMED_OUT");
  EXPECT_EQ(Elapsed(result), absl::Minutes(1));
}

TEST(LocalRunnerTest, StaleTimersAreSkippedAndNothingIsLeftBehind) {
  // The task's 1-hour timeout timer is still armed when the task succeeds;
  // the Wait's timer comes first, and the run must end without firing the
  // stale one into anything.
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Work", "States": {
      "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:w",
               "TimeoutSeconds": 3600, "HeartbeatSeconds": 60, "Next": "Nap"},
      "Nap": {"Type": "Wait", "Seconds": 5, "Next": "Again"},
      "Again": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:w",
                "TimeoutSeconds": 3600, "End": true}}})";
  int calls = 0;
  options.task_handler = [&](const TaskRequest& task) {
    ++calls;
    return Success(task.input);
  };
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(Elapsed(result), absl::Seconds(5));
  EXPECT_TRUE(OfType(result, "ActivityTimedOut").empty());
}

TEST(LocalRunnerTest, ChoiceLoopWithWaitsEndsInVirtualTime) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Check", "States": {
      "Check": {"Type": "Choice", "Default": "Done",
                "Choices": [{"Variable": "$.n", "NumericLessThan": 5, "Next": "Inc"}]},
      "Inc": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:inc",
              "Next": "Nap"},
      "Nap": {"Type": "Wait", "Seconds": 60, "Next": "Check"},
      "Done": {"Type": "Succeed"}}})";
  options.input = R"({"n": 0})";
  options.task_handler = [](const TaskRequest& task) {
    absl::StatusOr<json::Document> input = json::Parse(task.input);
    return Success(absl::StrCat(R"({"n": )", (*input)["n"].GetInt() + 1, "}"));
  };
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_EQ(Canonical(result.output), R"({"n":5})");
  EXPECT_EQ(Elapsed(result), absl::Minutes(5));
}

TEST(LocalRunnerTest, HistoryLimit) {
  // Loops for ever (the input never has "stop").
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Loop", "States": {
      "Loop": {"Type": "Choice", "Default": "Nap",
               "Choices": [{"Variable": "$.stop", "IsPresent": true, "Next": "Done"}]},
      "Nap": {"Type": "Wait", "Seconds": 1, "Next": "Loop"},
      "Done": {"Type": "Succeed"}}})";
  options.max_events = 100;
  absl::StatusOr<LocalRunResult> result = RunLocally(options);
  EXPECT_TRUE(absl::IsResourceExhausted(result.status())) << result.status();
}

TEST(LocalRunnerTest, RealTimeSleepsUntilTimers) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Nap", "States": {
      "Nap": {"Type": "Wait", "Seconds": 1, "End": true}}})";
  options.real_time = true;
  const absl::Time wall_start = absl::Now();
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_GE(absl::Now() - wall_start, absl::Seconds(1));
  EXPECT_GE(Elapsed(result), absl::Seconds(1));
}

TEST(LocalRunnerTest, RealTimeTaskTimeoutWinsOverALateResult) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Slow", "States": {
      "Slow": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:s",
               "TimeoutSeconds": 1, "End": true}}})";
  options.real_time = true;
  options.task_handler = [](const TaskRequest&) {
    absl::SleepFor(absl::Milliseconds(1200));
    return Success("{}");
  };
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "FAILED");
  EXPECT_EQ(result.error, "States.Timeout");
  EXPECT_EQ(OfType(result, "ActivityTimedOut").size(), 1u);
  EXPECT_TRUE(OfType(result, "ActivitySucceeded").empty());
}

TEST(LocalRunnerTest, InvalidDefinitionIsInvalidArgument) {
  LocalRunOptions options;
  options.definition =
      R"({"StartAt": "Missing", "States": {"A": {"Type": "Pass", "End": true}}})";
  absl::StatusOr<LocalRunResult> result = RunLocally(options);
  EXPECT_TRUE(absl::IsInvalidArgument(result.status()));
  EXPECT_THAT(result.status().message(), HasSubstr("InvalidDefinition"));
}

TEST(LocalRunnerTest, BadInputNameOrTypeIsInvalidArgument) {
  LocalRunOptions options;
  options.definition =
      R"({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}})";
  options.input = "{not json";
  EXPECT_TRUE(absl::IsInvalidArgument(RunLocally(options).status()));
  options.input = "{}";
  options.name = "has space";
  EXPECT_TRUE(absl::IsInvalidArgument(RunLocally(options).status()));
  options.name = "ok";
  options.type = "FAST";
  EXPECT_TRUE(absl::IsInvalidArgument(RunLocally(options).status()));
}

TEST(LocalRunnerTest, SameRunSameHistory) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Each", "States": {
      "Each": {"Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task",
          "Resource": "arn:aws:states:us-east-1:123456789012:activity:t",
          "Retry": [{"ErrorEquals": ["States.ALL"], "JitterStrategy": "FULL"}],
          "End": true}}}}}})";
  options.input = "[1, 2, 3, 4]";
  int calls = 0;
  options.task_handler = [&](const TaskRequest& task) {
    return ++calls % 3 == 0 ? Failure("Odd", "") : Success(task.input);
  };
  LocalRunResult first = MustRun(options);
  calls = 0;
  LocalRunResult second = MustRun(options);
  ASSERT_EQ(first.history.size(), second.history.size());
  const absl::Time start1 = TimeOf(first.history.front());
  const absl::Time start2 = TimeOf(second.history.front());
  for (size_t i = 0; i < first.history.size(); ++i) {
    v1::HistoryEvent a = first.history[i], b = second.history[i];
    EXPECT_EQ(TimeOf(a) - start1, TimeOf(b) - start2) << i;
    a.clear_timestamp();
    b.clear_timestamp();
    EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString()) << i;
  }
}

TEST(ShellTaskHandlerTest, OutputEnvironmentAndFailures) {
  TaskRequest task{
      .activity_arn = "arn:aws:states:us-east-1:123456789012:activity:sh",
      .input = R"({"a": 1})",
      .task_token = "tok-1"};
  TaskReply echo = ShellTaskHandler("cat")(task);
  EXPECT_TRUE(echo.success);
  EXPECT_EQ(Canonical(echo.output), R"({"a":1})");

  TaskReply env = ShellTaskHandler(
      R"(printf '{"arn": "%s", "token": "%s"}' "$STEPFLOW_ACTIVITY_ARN" "$STEPFLOW_TASK_TOKEN")")(
      task);
  EXPECT_TRUE(env.success) << env.error << ": " << env.cause;
  EXPECT_EQ(
      Canonical(env.output),
      R"({"arn":"arn:aws:states:us-east-1:123456789012:activity:sh","token":"tok-1"})");

  TaskReply declared = ShellTaskHandler(
      R"(echo '{"error": "Declined", "cause": "card"}'; exit 3)")(task);
  EXPECT_FALSE(declared.success);
  EXPECT_EQ(declared.error, "Declined");
  EXPECT_EQ(declared.cause, "card");

  TaskReply plain = ShellTaskHandler("echo oops >&2; exit 4")(task);
  EXPECT_FALSE(plain.success);
  EXPECT_EQ(plain.error, "ProcessExited");
  EXPECT_THAT(plain.cause, HasSubstr("exit code 4"));
  EXPECT_THAT(plain.cause, HasSubstr("oops"));

  TaskReply not_json = ShellTaskHandler("echo hello")(task);
  EXPECT_FALSE(not_json.success);
  EXPECT_EQ(not_json.error, "InvalidOutput");
}

TEST(ShellTaskHandlerTest, RunsInsideAnExecution) {
  LocalRunOptions options;
  options.definition = R"({"StartAt": "Sh", "States": {
      "Sh": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:sh",
             "End": true}}})";
  options.input = R"({"k": "v"})";
  options.task_handler = ShellTaskHandler("cat");
  LocalRunResult result = MustRun(options);
  EXPECT_EQ(result.status, "SUCCEEDED");
  EXPECT_EQ(Canonical(result.output), R"({"k":"v"})");
}

}  // namespace
}  // namespace stepflow::local
