// Map states in DISTRIBUTED mode: the parent's history, the map run ARN,
// child executions ($$, variables, activities) and how runs end.
#include <algorithm>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/asl/definition.h"
#include "common/asl/interpreter.h"
#include "common/json/json.h"
#include "gtest/gtest.h"

namespace stepflow::asl {
namespace {

constexpr char kActivity[] = "arn:aws:states:us-east-1:123456789012:activity:work";

std::string Types(const Outcome& outcome) {
  std::vector<std::string> types;
  for (const auto& e : outcome.events) types.push_back(e.type());
  return absl::StrJoin(types, ",");
}

// A distributed Map state named "M" over the input, with `processor` states
// starting at "P" and `extra` fields (JSON members, may be empty).
std::string DistributedMap(absl::string_view processor, absl::string_view extra = "",
                           absl::string_view type = "STANDARD") {
  return absl::StrCat(
      R"({"StartAt": "M", "States": {"M": {"Type": "Map", )", extra, extra.empty() ? "" : ", ",
      R"("ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": ")", type,
      R"("}, "StartAt": "P", "States": )", processor, R"(}, "End": true}}})");
}

class DistributedMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    context_.execution_arn = "arn:aws:states:us-east-1:123456789012:execution:sm:e1";
    context_.execution_name = "e1";
    context_.execution_input = "[]";
    context_.state_machine_arn = "arn:aws:states:us-east-1:123456789012:stateMachine:sm";
    context_.state_machine_name = "sm";
    context_.start_time = now_;
    context_.mint_task_token = [](int64_t id) { return absl::StrCat("token-", id); };
  }
  Outcome Begin(absl::string_view definition, absl::string_view input) {
    auto parsed = Definition::Parse(definition);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    def_ = *parsed;
    interpreter_ = std::make_unique<Interpreter>(*def_, context_);
    return interpreter_->Start(&state_, input, now_);
  }

  ExecutionContext context_;
  ::stepflow::internal::v1::ExecutionState state_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::shared_ptr<const Definition> def_;
  std::unique_ptr<Interpreter> interpreter_;
};

TEST_F(DistributedMapTest, ParentHistoryShowsTheMapRunOnly) {
  context_.mint_id = [](int64_t event_id, int64_t part) {
    return absl::StrCat("id-", event_id, "-", part);
  };
  Outcome out = Begin(DistributedMap(R"({"P": {"Type": "Pass", "End": true}})", R"("Label": "L")"),
                      "[1, 2]");
  EXPECT_EQ(Types(out),
            "ExecutionStarted,MapStateEntered,MapStateStarted,MapRunStarted,MapRunSucceeded,"
            "MapStateSucceeded,MapStateExited,ExecutionSucceeded");
  EXPECT_EQ(out.events[3].map_run_started_event_details().map_run_arn(),
            "arn:aws:states:us-east-1:123456789012:mapRun:sm/L:id-4-1");
  EXPECT_EQ(out.output, "[1,2]");
  for (size_t i = 0; i < out.events.size(); ++i) {
    EXPECT_EQ(out.events[i].id(), static_cast<int64_t>(i + 1));
  }
  // As recorded on AWS: MapStateExited follows MapRunSucceeded, not
  // MapStateSucceeded.
  EXPECT_EQ(out.events[6].previous_event_id(), 5);
  EXPECT_TRUE(state_.frames().empty());
}

TEST_F(DistributedMapTest, MapRunArnWithoutInjectedIdsIsDeterministic) {
  Outcome first = Begin(DistributedMap(R"({"P": {"Type": "Pass", "End": true}})"), "[1]");
  const std::string arn = first.events[3].map_run_started_event_details().map_run_arn();
  const std::regex shape(
      "arn:aws:states:us-east-1:123456789012:mapRun:sm/"
      "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:"
      "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
  EXPECT_TRUE(std::regex_match(arn, shape)) << arn;
  state_.Clear();
  Outcome second = Begin(DistributedMap(R"({"P": {"Type": "Pass", "End": true}})"), "[1]");
  EXPECT_EQ(second.events[3].map_run_started_event_details().map_run_arn(), arn);
}

TEST_F(DistributedMapTest, ChildrenSeeTheirOwnExecutionInContext) {
  context_.mint_id = [](int64_t event_id, int64_t part) {
    return absl::StrCat("id", event_id, "x", part);
  };
  Outcome out = Begin(
      DistributedMap(R"({"P": {"Type": "Pass", "Parameters": {
          "name.$": "$$.Execution.Name", "id.$": "$$.Execution.Id",
          "input.$": "$$.Execution.Input", "machine.$": "$$.StateMachine.Name"}, "End": true}})",
                     R"("Label": "run")"),
      R"(["a"])");
  ASSERT_EQ(out.closed_status, "SUCCEEDED");
  EXPECT_EQ(out.output,
            R"([{"name":"id4x2","id":"arn:aws:states:us-east-1:123456789012:execution:sm/run:id4x2",)"
            R"("input":"a","machine":"sm/run"}])");
}

TEST_F(DistributedMapTest, ExpressChildrenHaveExpressArns) {
  context_.mint_id = [](int64_t, int64_t part) { return absl::StrCat("p", part); };
  Outcome out = Begin(DistributedMap(R"({"P": {"Type": "Pass", "Parameters": {
          "id.$": "$$.Execution.Id"}, "End": true}})",
                                     R"("Label": "run")", "EXPRESS"),
                      "[0]");
  EXPECT_EQ(out.output, R"([{"id":"arn:aws:states:us-east-1:123456789012:express:sm/run:p2"}])");
}

TEST_F(DistributedMapTest, ChildrenDoNotSeeOuterVariables) {
  Outcome out = Begin(R"({"StartAt": "A", "States": {
      "A": {"Type": "Pass", "Assign": {"outer": 1}, "Next": "M"},
      "M": {"Type": "Map", "ToleratedFailurePercentage": 100,
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
              "StartAt": "P", "States": {
                "P": {"Type": "Pass", "Assign": {"inner": 2}, "Next": "Q"},
                "Q": {"Type": "Pass", "Parameters": {"inner.$": "$inner", "outer.$": "$outer"},
                      "End": true}}},
            "End": true}}})",
                      "[0]");
  // The child fails on $outer; the tolerance keeps the run going.
  ASSERT_EQ(out.closed_status, "SUCCEEDED");
  EXPECT_EQ(out.output, "[null]");
}

TEST_F(DistributedMapTest, ChildActivitiesAreScheduledOutsideTheParentHistory) {
  Outcome out = Begin(DistributedMap(absl::StrCat(R"({"P": {"Type": "Task", "Resource": ")",
                                                  kActivity, R"(", "End": true}})")),
                      R"(["x", "y"])");
  EXPECT_EQ(Types(out), "ExecutionStarted,MapStateEntered,MapStateStarted,MapRunStarted");
  ASSERT_EQ(out.dispatches.size(), 2u);
  EXPECT_GE(out.dispatches[0].scheduled_event_id, kFirstChildEventId);
  EXPECT_NE(out.dispatches[0].scheduled_event_id, out.dispatches[1].scheduled_event_id);
  EXPECT_EQ(out.dispatches[0].task_token,
            absl::StrCat("token-", out.dispatches[0].scheduled_event_id));
  EXPECT_EQ(out.dispatches[1].input, R"("y")");
  auto second = interpreter_->ActivitySucceeded(&state_, out.dispatches[1].scheduled_event_id,
                                                R"("Y")", now_);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->events.empty());
  auto first = interpreter_->ActivitySucceeded(&state_, out.dispatches[0].scheduled_event_id,
                                               R"("X")", now_);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Types(*first), "MapRunSucceeded,MapStateSucceeded,MapStateExited,ExecutionSucceeded");
  EXPECT_EQ(first->events[0].id(), 5);
  EXPECT_EQ(first->output, R"(["X","Y"])");
}

TEST_F(DistributedMapTest, AbortEndsTheMapRun) {
  Outcome out = Begin(DistributedMap(absl::StrCat(R"({"P": {"Type": "Task", "Resource": ")",
                                                  kActivity, R"(", "End": true}})")),
                      "[1]");
  ASSERT_EQ(out.dispatches.size(), 1u);
  Outcome aborted = interpreter_->Abort(&state_, "Stop", "by user", now_);
  EXPECT_EQ(Types(aborted), "MapRunAborted,ExecutionAborted");
  EXPECT_EQ(aborted.cancelled_tasks,
            std::vector<int64_t>{out.dispatches[0].scheduled_event_id});
}

TEST_F(DistributedMapTest, FailingParallelSiblingAbortsTheMapRun) {
  Outcome out = Begin(absl::StrCat(R"({"StartAt": "Par", "States": {"Par": {"Type": "Parallel",
      "End": true, "Branches": [
        {"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ItemProcessor": {
           "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
           "StartAt": "P", "States": {"P": {"Type": "Task", "Resource": ")",
                                   kActivity, R"(", "End": true}}}}}},
        {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": ")",
                                   kActivity, R"(", "End": true}}}]}}})"),
                      "[1]");
  ASSERT_EQ(out.dispatches.size(), 2u);
  // The branch's own task (the Map child's is numbered apart).
  const int64_t own = std::min(out.dispatches[0].scheduled_event_id,
                               out.dispatches[1].scheduled_event_id);
  const int64_t child = std::max(out.dispatches[0].scheduled_event_id,
                                 out.dispatches[1].scheduled_event_id);
  ASSERT_GE(child, kFirstChildEventId);
  auto failed = interpreter_->ActivityFailed(&state_, own, "E", "C", now_);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(Types(*failed), "ActivityStarted,ActivityFailed");
  // The failure reaches the Parallel when its timer fires, at once.
  ASSERT_EQ(failed->timers.size(), 1u);
  auto handed_over = interpreter_->TimerFired(&state_, failed->timers[0].timer_id, now_);
  ASSERT_TRUE(handed_over.ok());
  EXPECT_EQ(Types(*handed_over),
            "TaskStateAborted,MapRunAborted,MapStateAborted,ParallelStateFailed,ExecutionFailed");
  EXPECT_EQ(handed_over->cancelled_tasks, std::vector<int64_t>{child});
}

TEST_F(DistributedMapTest, ExpressChildTimesOutAfterFiveMinutes) {
  Outcome out = Begin(DistributedMap(R"({"P": {"Type": "Wait", "Seconds": 600, "End": true}})",
                                     R"("ToleratedFailureCount": 1)", "EXPRESS"),
                      "[1, 2]");
  ASSERT_EQ(out.timers.size(), 4u);  // a timeout and a Wait per child
  absl::Time limit = now_ + absl::Minutes(5);
  Outcome last;
  for (const TimerRequest& timer : out.timers) {
    if (timer.fire_at != limit) continue;
    auto fired = interpreter_->TimerFired(&state_, timer.timer_id, limit);
    ASSERT_TRUE(fired.ok());
    last = *fired;
  }
  // One failure is tolerated, the second is not.
  EXPECT_EQ(Types(last), "MapRunFailed,MapStateFailed,ExecutionFailed");
  EXPECT_EQ(last.error, "States.ExceedToleratedFailureThreshold");
}

TEST_F(DistributedMapTest, ChildLoopingWithoutWaitingEndsAtTheHistoryLimit) {
  Outcome out = Begin(
      DistributedMap(R"({"P": {"Type": "Pass", "Next": "Q"},
          "Q": {"Type": "Choice", "Choices": [{"Variable": "$", "IsPresent": true, "Next": "P"}],
                "Default": "Done"},
          "Done": {"Type": "Succeed"}})",
                     R"("ToleratedFailurePercentage": 100)"),
      "[1]");
  EXPECT_EQ(out.closed_status, "SUCCEEDED");
  EXPECT_EQ(out.output, "[null]");
  EXPECT_EQ(Types(out),
            "ExecutionStarted,MapStateEntered,MapStateStarted,MapRunStarted,MapRunSucceeded,"
            "MapStateSucceeded,MapStateExited,ExecutionSucceeded");
}

TEST_F(DistributedMapTest, ManyItemsInBatches) {
  std::vector<std::string> items;
  for (int i = 0; i < 20000; ++i) items.push_back(absl::StrCat(i));
  Outcome out = Begin(DistributedMap(R"({"P": {"Type": "Pass", "OutputPath": "$.Items[0]",
                                          "End": true}})",
                                     R"("ItemBatcher": {"MaxItemsPerBatch": 4})"),
                      absl::StrCat("[", absl::StrJoin(items, ","), "]"));
  ASSERT_EQ(out.closed_status, "SUCCEEDED");
  auto output = json::Parse(out.output);
  ASSERT_TRUE(output.ok());
  ASSERT_EQ(output->Size(), 5000u);
  EXPECT_EQ((*output)[4999].GetInt(), 19996);
}

std::vector<std::string> Problems(absl::string_view definition) {
  std::vector<std::string> problems;
  for (const Diagnostic& d : ValidateDefinition(definition)) {
    problems.push_back(absl::StrCat(d.code, ": ", d.message, " at ", d.location));
  }
  return problems;
}

TEST(DistributedMapValidationTest, ModesAndFields) {
  const std::string pass = R"({"P": {"Type": "Pass", "End": true}})";
  EXPECT_TRUE(Problems(DistributedMap(pass, R"("ItemBatcher": {"MaxItemsPerBatch": 2,
      "BatchInput": {"a.$": "$.x"}}, "ToleratedFailureCountPath": "$.n",
      "ToleratedFailurePercentage": 12.5, "Label": "ok-label_1", "MaxConcurrency": 3)"))
                  .empty());
  EXPECT_EQ(Problems(DistributedMap(pass, R"("ItemBatcher": {})")),
            std::vector<std::string>{
                "SCHEMA_VALIDATION_FAILED: ItemBatcher must have at least one of: "
                "[MaxItemsPerBatch, MaxItemsPerBatchPath, MaxInputBytesPerBatch, "
                "MaxInputBytesPerBatchPath] at /States/M/ItemBatcher"});
  EXPECT_EQ(Problems(DistributedMap(pass, R"("ItemBatcher": {"Max": 1, "MaxItemsPerBatch": 1})")),
            std::vector<std::string>{"SCHEMA_VALIDATION_FAILED: Field 'Max' is not supported at "
                                     "/States/M/ItemBatcher/Max"});
  EXPECT_EQ(Problems(DistributedMap(pass, R"("ItemReader": {"ReaderConfig": {}})")),
            std::vector<std::string>{"SCHEMA_VALIDATION_FAILED: These fields are required: "
                                     "[Resource] at /States/M/ItemReader"});
  EXPECT_EQ(Problems(R"({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
      "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE", "ExecutionType": "STANDARD"},
      "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}})"),
            std::vector<std::string>{
                "SCHEMA_VALIDATION_FAILED: Field 'ExecutionType' is only supported in "
                "DISTRIBUTED mode at /States/M/ItemProcessor/ProcessorConfig/ExecutionType"});
  EXPECT_EQ(Problems(DistributedMap(pass, R"("Label": "a/b")")),
            std::vector<std::string>{"SCHEMA_VALIDATION_FAILED: Label contains invalid "
                                     "character: '/' at /States/M/Label"});
  // 40 characters, some of them multi-byte, are fine.
  std::string label;
  for (int i = 0; i < 40; ++i) label += "\xC3\xA9";
  EXPECT_TRUE(Problems(DistributedMap(pass, absl::StrCat(R"("Label": ")", label, R"(")"))).empty());
}

// --- Map run summaries and UpdateMapRun ---------------------------------------

std::vector<std::string> ChildStatuses(const ::stepflow::internal::v1::MapRunSummary& run) {
  std::vector<std::string> statuses;
  for (int status : run.child_status()) {
    statuses.push_back(status == ::stepflow::internal::v1::CHILD_PENDING
                           ? ""
                           : ::stepflow::internal::v1::MapRunChildStatus_Name(status).substr(6));
  }
  return statuses;
}

TEST_F(DistributedMapTest, SummaryFollowsChildrenAndUpdatesTakeEffect) {
  Outcome out = Begin(
      DistributedMap(absl::StrCat(R"({"P": {"Type": "Task", "Resource": ")", kActivity,
                                  R"(", "End": true}})"),
                     R"("MaxConcurrency": 1)"),
      R"(["a", "b", "c", "d"])");
  ASSERT_EQ(out.dispatches.size(), 1u);
  ASSERT_EQ(state_.map_runs_size(), 1);
  const std::string run_arn = state_.map_runs(0).map_run_arn();
  EXPECT_EQ(state_.map_runs(0).status(), "RUNNING");
  EXPECT_EQ(state_.map_runs(0).max_concurrency(), 1);
  EXPECT_EQ(ChildStatuses(state_.map_runs(0)),
            (std::vector<std::string>{"RUNNING", "", "", ""}));

  // Three at once, and one failure tolerated, from now on.
  MapRunUpdate update;
  update.map_run_arn = run_arn;
  update.max_concurrency = 3;
  update.tolerated_failure_count = 1;
  auto widened = interpreter_->UpdateMapRun(&state_, update, now_);
  ASSERT_TRUE(widened.ok()) << widened.status();
  EXPECT_TRUE(widened->events.empty());
  ASSERT_EQ(widened->dispatches.size(), 2u);
  EXPECT_EQ(state_.map_runs(0).max_concurrency(), 3);
  EXPECT_EQ(state_.map_runs(0).tolerated_failure_count(), 1);
  EXPECT_EQ(ChildStatuses(state_.map_runs(0)),
            (std::vector<std::string>{"RUNNING", "RUNNING", "RUNNING", ""}));

  // The first child fails: tolerated, and the fourth starts in its place.
  auto failed = interpreter_->ActivityFailed(&state_, out.dispatches[0].scheduled_event_id,
                                             "Broken", "", now_);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->dispatches.size(), 1u);
  EXPECT_EQ(ChildStatuses(state_.map_runs(0)),
            (std::vector<std::string>{"FAILED", "RUNNING", "RUNNING", "RUNNING"}));
  EXPECT_EQ(state_.map_runs(0).child_stop_ms(0), absl::ToUnixMillis(now_));

  // Unknown runs cannot be updated; stopping aborts the run and children.
  update.map_run_arn = run_arn + "x";
  EXPECT_EQ(interpreter_->UpdateMapRun(&state_, update, now_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  Outcome aborted = interpreter_->Abort(&state_, "", "", now_);
  EXPECT_EQ(aborted.closed_status, "ABORTED");
  EXPECT_EQ(state_.map_runs(0).status(), "ABORTED");
  EXPECT_EQ(ChildStatuses(state_.map_runs(0)),
            (std::vector<std::string>{"FAILED", "ABORTED", "ABORTED", "ABORTED"}));
  update.map_run_arn = run_arn;
  EXPECT_EQ(interpreter_->UpdateMapRun(&state_, update, now_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(DistributedMapTest, ExpressChildTimeoutIsTimedOut) {
  Outcome out = Begin(
      DistributedMap(absl::StrCat(R"({"P": {"Type": "Task", "Resource": ")", kActivity,
                                  R"(", "End": true}})"),
                     R"("ToleratedFailureCount": 5)", "EXPRESS"),
      R"(["a", "b"])");
  ASSERT_EQ(state_.map_runs_size(), 1);
  EXPECT_TRUE(state_.map_runs(0).express_children());
  // Each child arms its five-minute timer; fire the first one's.
  ASSERT_FALSE(out.timers.empty());
  auto fired = interpreter_->TimerFired(&state_, out.timers[0].timer_id, now_ + absl::Minutes(5));
  ASSERT_TRUE(fired.ok()) << fired.status();
  EXPECT_EQ(ChildStatuses(state_.map_runs(0)), (std::vector<std::string>{"TIMED_OUT", "RUNNING"}));
}

}  // namespace
}  // namespace stepflow::asl
