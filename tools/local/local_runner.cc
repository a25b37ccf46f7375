#include "tools/local/local_runner.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <queue>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/asl/definition.h"
#include "common/asl/interpreter.h"
#include "common/config/arn.h"
#include "common/json/json.h"
#include "common/status/status_macros.h"
#include "stepflow/internal/v1/shard.pb.h"

namespace stepflow::local {
namespace {

constexpr char kTaskFailed[] = "States.TaskFailed";
// Any fixed value: it only has to make retry jitter reproducible.
constexpr uint64_t kJitterSeed = 20240501;

// The definition an EXPRESS execution runs: the same, with a top-level
// TimeoutSeconds of at most five minutes, so the interpreter's own execution
// timeout ends it as AWS ends an Express execution.
absl::StatusOr<std::string> WithExpressTimeout(const std::string& definition) {
  ASSIGN_OR_RETURN(json::Document doc, json::Parse(definition));
  const int64_t limit = absl::ToInt64Seconds(kExpressTimeout);
  auto member = doc.FindMember("TimeoutSeconds");
  if (member != doc.MemberEnd()) {
    if (member->value.IsInt64() && member->value.GetInt64() > 0 &&
        member->value.GetInt64() <= limit) {
      return definition;
    }
    member->value.SetInt64(limit);
  } else {
    doc.AddMember("TimeoutSeconds", json::Value(limit), doc.GetAllocator());
  }
  return json::Serialize(doc);
}

// Drives one execution; see the header for the loop. `options` must
// outlive it.
class Driver {
 public:
  Driver(const asl::Definition& definition, const LocalRunOptions& options,
         std::string execution_arn, absl::Time start)
      : options_(options), start_(start), now_(start), jitter_(kJitterSeed) {
    context_.execution_arn = std::move(execution_arn);
    context_.execution_name = options.name;
    context_.execution_input = options.input;
    context_.state_machine_arn = kLocalStateMachineArn;
    context_.state_machine_name = "local";
    context_.start_time = start;
    context_.has_redrive_count = options.type != "EXPRESS";  // as on AWS
    context_.mint_task_token = [name = options.name](int64_t scheduled) {
      return absl::StrCat("local:", name, ":", scheduled);
    };
    context_.activity_exists = options.activity_exists;
    context_.random_unit = [this] {
      return std::uniform_real_distribution<double>(0.0, 1.0)(jitter_);
    };
    interpreter_ = std::make_unique<asl::Interpreter>(definition, context_);
  }
  // context_ and the interpreter point at this object.
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  absl::StatusOr<LocalRunResult> Run() {
    RETURN_IF_ERROR(Apply(interpreter_->Start(&state_, options_.input, now_)));
    while (!closed()) {
      if (options_.real_time) now_ = std::max(now_, absl::Now());
      if (!timers_.empty() && timers_.top().fire_at <= now_) {
        RETURN_IF_ERROR(FireDueTimers());
        continue;
      }
      if (!pending_.empty()) {
        asl::ActivityDispatch task = std::move(pending_.front());
        pending_.pop_front();
        RETURN_IF_ERROR(RunTask(task));
        continue;
      }
      if (timers_.empty()) {
        return absl::InternalError(absl::StrCat(
            "execution is stuck: it is still running but waits for no task "
            "and no timer (after event ",
            state_.last_event_id(), ")"));
      }
      const absl::Time next = timers_.top().fire_at;
      if (next - start_ > options_.max_virtual_time) {
        return absl::DeadlineExceededError(absl::StrCat(
            "the execution would run longer than ",
            absl::FormatDuration(options_.max_virtual_time),
            " (next timer at +", absl::FormatDuration(next - start_), ")"));
      }
      if (options_.real_time) {
        absl::SleepFor(next - absl::Now());
        now_ = std::max(absl::Now(), next);
      } else {
        now_ = next;
      }
    }
    return std::move(result_);
  }

 private:
  struct Timer {
    absl::Time fire_at;
    int64_t id;
    // For a min-heap: earliest first, then in arming order.
    bool operator>(const Timer& other) const {
      return fire_at != other.fire_at ? fire_at > other.fire_at : id > other.id;
    }
  };

  bool closed() const { return !result_.status.empty(); }

  absl::Status Apply(asl::Outcome outcome) {
    for (v1::HistoryEvent& event : outcome.events) {
      result_.history.push_back(std::move(event));
    }
    if (static_cast<int64_t>(result_.history.size()) > options_.max_events) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the execution history has more than ",
                       options_.max_events, " events"));
    }
    for (asl::ActivityDispatch& dispatch : outcome.dispatches) {
      pending_.push_back(std::move(dispatch));
    }
    // Service integrations go to the task handler too, named by their
    // resource and given their parameters: the handler's answer stands for
    // the call's (or, for .sync and .waitForTaskToken, for the job's).
    for (asl::ServiceCall& call : outcome.service_calls) {
      asl::ActivityDispatch dispatch;
      dispatch.activity_arn = absl::StrCat("arn:aws:states:::", call.integration.service, ":",
                                           call.integration.resource_name);
      dispatch.scheduled_event_id = call.scheduled_event_id;
      dispatch.task_token = std::move(call.task_token);
      dispatch.input = std::move(call.parameters);
      pending_.push_back(std::move(dispatch));
    }
    for (const asl::TimerRequest& timer : outcome.timers) {
      timers_.push(Timer{timer.fire_at, timer.timer_id});
    }
    for (int64_t cancelled : outcome.cancelled_tasks) {
      pending_.erase(
          std::remove_if(pending_.begin(), pending_.end(),
                         [cancelled](const asl::ActivityDispatch& task) {
                           return task.scheduled_event_id == cancelled;
                         }),
          pending_.end());
    }
    if (!outcome.closed_status.empty()) {
      result_.status = std::move(outcome.closed_status);
      result_.output = std::move(outcome.output);
      result_.error = std::move(outcome.error);
      result_.cause = std::move(outcome.cause);
    }
    return absl::OkStatus();
  }

  // A stale timer (its wait, retry or task ended meanwhile) is
  // FAILED_PRECONDITION, and is dropped.
  absl::Status FireDueTimers() {
    while (!closed() && !timers_.empty() && timers_.top().fire_at <= now_) {
      const Timer timer = timers_.top();
      timers_.pop();
      absl::StatusOr<asl::Outcome> outcome =
          interpreter_->TimerFired(&state_, timer.id, now_);
      if (absl::IsFailedPrecondition(outcome.status())) continue;
      RETURN_IF_ERROR(outcome.status());
      RETURN_IF_ERROR(Apply(*std::move(outcome)));
    }
    return absl::OkStatus();
  }

  absl::Status RunTask(const asl::ActivityDispatch& task) {
    const int64_t id = task.scheduled_event_id;
    if (!asl::Interpreter::AwaitsTask(state_, id)) return absl::OkStatus();
    ASSIGN_OR_RETURN(
        asl::Outcome started,
        interpreter_->ActivityStarted(&state_, id, kLocalWorkerName, now_));
    RETURN_IF_ERROR(Apply(std::move(started)));
    TaskRequest request{task.activity_arn, task.input, task.task_token};
    TaskReply reply = options_.task_handler
                          ? options_.task_handler(request)
                          : TaskReply{.error = kTaskFailed,
                                      .cause = "no task handler was given"};
    if (options_.real_time) {
      now_ = std::max(now_, absl::Now());
      // A timeout that came due while the handler ran wins over its result.
      RETURN_IF_ERROR(FireDueTimers());
      if (closed() || !asl::Interpreter::AwaitsTask(state_, id)) {
        return absl::OkStatus();
      }
    }
    absl::StatusOr<asl::Outcome> outcome =
        reply.success
            ? interpreter_->ActivitySucceeded(&state_, id, reply.output, now_)
            : interpreter_->ActivityFailed(&state_, id, reply.error,
                                           reply.cause, now_);
    RETURN_IF_ERROR(outcome.status());
    return Apply(*std::move(outcome));
  }

  const LocalRunOptions& options_;
  const absl::Time start_;
  absl::Time now_;
  std::mt19937_64 jitter_;
  asl::ExecutionContext context_;
  std::unique_ptr<asl::Interpreter> interpreter_;
  internal::v1::ExecutionState state_;
  std::deque<asl::ActivityDispatch> pending_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  LocalRunResult result_;
};

}  // namespace

absl::StatusOr<LocalRunResult> RunLocally(const LocalRunOptions& options) {
  if (options.type != "STANDARD" && options.type != "EXPRESS") {
    return absl::InvalidArgumentError(
        absl::StrCat("ValidationException: the type must be STANDARD or "
                     "EXPRESS, not '",
                     options.type, "'"));
  }
  RETURN_IF_ERROR(config::ValidateResourceName(options.name));
  if (absl::StatusOr<json::Document> input = json::Parse(options.input);
      !input.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("InvalidExecutionInput: Invalid State Machine Execution "
                     "Input: '",
                     input.status().message(), "'"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const asl::Definition> definition,
                   asl::Definition::Parse(options.definition));
  if (options.type == "EXPRESS") {
    ASSIGN_OR_RETURN(std::string express,
                     WithExpressTimeout(options.definition));
    ASSIGN_OR_RETURN(definition, asl::Definition::Parse(express));
  }
  Driver driver(*definition, options,
                absl::StrCat(kLocalExecutionArnPrefix, options.name),
                absl::Now());
  return driver.Run();
}

std::function<TaskReply(const TaskRequest&)> FailingTaskHandler(
    std::string cause) {
  return [cause = std::move(cause)](const TaskRequest&) {
    return TaskReply{.error = kTaskFailed, .cause = cause};
  };
}

}  // namespace stepflow::local
