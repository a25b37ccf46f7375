// The deterministic States Language interpreter.
//
// Given a definition, the execution's interpreter state and one event (the
// start, an activity started/succeeded/failed/heartbeat, a timer firing, an
// abort), it produces the history events of the transition, the new state,
// and the effects the caller must carry out once the transition is durable:
// activity tasks to dispatch, timers to arm, tasks no longer wanted. Time,
// task tokens and randomness are passed in; nothing here reads a clock,
// draws random numbers of its own or does I/O, so replaying the same inputs
// gives the same outputs.
//
//   Interpreter interpreter(*definition, context);
//   Outcome outcome = interpreter.Start(&state, input_json, now);
//   // persist outcome.events + state + effects atomically, then act on them.
//
// JSONata states evaluate their compiled expressions with $states (input,
// result or errorOutput, context) and the workflow variables bound; $now()
// is the transition's `now`, $random() draws from context.random_unit and
// $uuid() is derived from the execution ARN and the event id, so replays
// agree. A failed evaluation is States.QueryEvaluationError, recorded by an
// EvaluationFailed event as on AWS.
//
// An execution is a tree of frames (the top level, Parallel branches, Map
// iterations, child executions of a distributed Map), each at one state; see
// Frame in shard.proto. A branch or inline Map iteration that fails hands
// its failure to the Parallel or Map through a timer due at once: the other
// branches first get to where they wait (scheduling their tasks), then are
// aborted when it fires, as on AWS.
//
// Not thread-safe; create one per transition (construction is cheap).
#ifndef STEPFLOW_COMMON_ASL_INTERPRETER_H_
#define STEPFLOW_COMMON_ASL_INTERPRETER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/asl/definition.h"
#include "stepflow/internal/v1/shard.pb.h"
#include "stepflow/v1/states.pb.h"

namespace stepflow::asl {

// What the interpreter may know about the execution it runs ($$ context).
struct ExecutionContext {
  std::string execution_arn;
  std::string execution_name;
  std::string execution_input;
  std::string state_machine_arn;
  std::string state_machine_name;
  std::string role_arn;
  absl::Time start_time;
  // Whether execution_input (the input Start is given) is text
  // json::Serialize wrote, which lets states that change nothing pass it
  // on without parsing it (callers that normalized the input set it).
  bool input_is_canonical = false;
  // $$.Execution.RedriveCount: how many times the execution was redriven.
  int redrive_count = 0;
  // Whether $$.Execution has RedriveCount at all: AWS leaves it out for
  // EXPRESS executions and in TestState.
  bool has_redrive_count = true;
  // TestState's `context`: the Context object ($$, $states.context) as the
  // caller gave it (JSON), in place of the one built from this context.
  std::optional<std::string> given_context_object;
  // The longest the execution may run, whatever the definition's
  // TimeoutSeconds says (EXPRESS: 5 minutes, as on AWS); zero: no cap.
  absl::Duration max_duration = absl::ZeroDuration();
  // Mints the task token for the activity scheduled by event
  // `scheduled_event_id`.
  std::function<std::string(int64_t scheduled_event_id)> mint_task_token;
  // A uniform number in [0, 1) for retry jitter; 0.5 when unset.
  std::function<double()> random_unit;
  // A UUID-like id, the same for the same arguments, for the map run that
  // event `event_id` starts (a distributed Map): `part` 0 and 1 make its ARN,
  // 2 + i names its child execution i. When unset, ids are derived from the
  // execution ARN.
  std::function<std::string(int64_t event_id, int64_t part)> mint_id;
  // Whether the activity a Task is about to schedule exists. False fails
  // the state with States.Runtime before ActivityScheduled, as on AWS; when
  // unset, or when the caller cannot tell (it should answer true then), the
  // task is scheduled and a missing activity is reported later through
  // Interpreter::ActivityDoesNotExist.
  std::function<bool(absl::string_view activity_arn)> activity_exists;
};

// Events of the child executions of a distributed Map are not part of the
// execution's history (Outcome::events); they are numbered from here on, so
// an activity a child schedules has a scheduled_event_id this large.
inline constexpr int64_t kFirstChildEventId = int64_t{1} << 40;

struct ActivityDispatch {
  std::string activity_arn;
  int64_t scheduled_event_id = 0;
  std::string task_token;
  std::string input;
  int64_t timeout_seconds = 0;
  int64_t heartbeat_seconds = 0;
};

// A service-integration Task's call, for the caller to make once the
// transition is durable, and to report back: ActivityStarted when the call
// was made, then (request-response) ActivitySucceeded/ActivityFailed with its
// answer, or (.sync, .waitForTaskToken) ServiceTaskSubmitted with its answer
// and later ActivitySucceeded/ActivityFailed when the job ends or the token
// comes back. Events name the resource as AWS does (TaskScheduled,
// TaskStarted, TaskSubmitted, TaskSucceeded, ...).
struct ServiceCall {
  Integration integration;
  int64_t scheduled_event_id = 0;
  std::string task_token;
  std::string parameters;  // JSON object
};

// Deliver TimerFired(timer_id) at `fire_at` (or at once when late).
struct TimerRequest {
  int64_t timer_id = 0;
  absl::Time fire_at;
};

// The history events of one transition. They live on a protobuf arena the
// list owns: a transition makes a dozen small allocations per event, which
// the arena turns into pointer bumps. Moving the list moves the arena.
class EventList {
 public:
  EventList();
  EventList(EventList&&) noexcept = default;
  EventList& operator=(EventList&&) noexcept = default;
  EventList(const EventList& other) : EventList() { events_->CopyFrom(*other.events_); }
  EventList& operator=(const EventList& other) {
    if (this != &other) events_->CopyFrom(*other.events_);
    return *this;
  }

  v1::HistoryEvent* Add() { return events_->Add(); }
  size_t size() const { return static_cast<size_t>(events_->size()); }
  bool empty() const { return events_->empty(); }
  const v1::HistoryEvent& operator[](size_t i) const { return events_->Get(static_cast<int>(i)); }
  v1::HistoryEvent& operator[](size_t i) { return *events_->Mutable(static_cast<int>(i)); }
  const v1::HistoryEvent& back() const { return events_->Get(events_->size() - 1); }
  auto begin() { return events_->begin(); }
  auto end() { return events_->end(); }
  auto begin() const { return events_->cbegin(); }
  auto end() const { return events_->cend(); }

 private:
  // The arena and its first block, one allocation: a transition's events
  // usually fit that block. The arena is declared last, so it is destroyed
  // before the block it uses.
  struct Storage {
    Storage();
    alignas(16) char first_block[16 * 1024];
    google::protobuf::Arena arena;
  };
  std::unique_ptr<Storage> storage_;
  google::protobuf::RepeatedPtrField<v1::HistoryEvent>* events_;  // on storage_->arena
};

// UpdateMapRun: the settings to change of a running map run (unset: kept).
struct MapRunUpdate {
  std::string map_run_arn;
  std::optional<int32_t> max_concurrency;  // 0 = no limit
  std::optional<double> tolerated_failure_percentage;
  std::optional<int64_t> tolerated_failure_count;
};

struct Outcome {
  EventList events;
  std::vector<ActivityDispatch> dispatches;
  std::vector<ServiceCall> service_calls;
  std::vector<TimerRequest> timers;
  // Activities no longer awaited (their execution branch ended).
  std::vector<int64_t> cancelled_tasks;
  // Empty while the execution runs; "SUCCEEDED" / "FAILED" / "TIMED_OUT" /
  // "ABORTED" once this transition closed it, with output or error and
  // cause.
  std::string closed_status;
  std::string output;
  std::string error;
  std::string cause;
};

class Interpreter {
 public:
  // Both must outlive the interpreter.
  Interpreter(const Definition& definition, const ExecutionContext& context)
      : definition_(definition), context_(context) {}

  // ExecutionStarted, then every state up to the first ones that wait.
  Outcome Start(::stepflow::internal::v1::ExecutionState* state, absl::string_view input, absl::Time now);

  // Events for the activity scheduled by event `scheduled_event_id`.
  // FAILED_PRECONDITION when no such activity is awaited (a late or
  // duplicate report), which callers treat as stale.
  absl::StatusOr<Outcome> ActivityStarted(::stepflow::internal::v1::ExecutionState* state,
                                          int64_t scheduled_event_id,
                                          absl::string_view worker_name, absl::Time now);
  absl::StatusOr<Outcome> ActivitySucceeded(::stepflow::internal::v1::ExecutionState* state,
                                            int64_t scheduled_event_id,
                                            absl::string_view output, absl::Time now);
  absl::StatusOr<Outcome> ActivityFailed(::stepflow::internal::v1::ExecutionState* state,
                                         int64_t scheduled_event_id, absl::string_view error,
                                         absl::string_view cause, absl::Time now);
  // A .sync or .waitForTaskToken service task's call was made and answered
  // `output` (TaskSubmitted); the task now waits for its job or token.
  // FAILED_PRECONDITION when the task is not awaited or already submitted.
  absl::StatusOr<Outcome> ServiceTaskSubmitted(::stepflow::internal::v1::ExecutionState* state,
                                               int64_t scheduled_event_id,
                                               absl::string_view output, absl::Time now);
  // Restarts the heartbeat clock of the activity.
  absl::StatusOr<Outcome> ActivityHeartbeat(::stepflow::internal::v1::ExecutionState* state,
                                            int64_t scheduled_event_id, absl::Time now);
  // The activity of the waiting Task does not exist (found out after it
  // was scheduled, see ExecutionContext::activity_exists): the state fails
  // with States.Runtime as on AWS.
  absl::StatusOr<Outcome> ActivityDoesNotExist(::stepflow::internal::v1::ExecutionState* state,
                                               int64_t scheduled_event_id,
                                               absl::string_view activity_arn, absl::Time now);
  // A timer armed by an earlier outcome fired. FAILED_PRECONDITION when it
  // is no longer wanted.
  absl::StatusOr<Outcome> TimerFired(::stepflow::internal::v1::ExecutionState* state, int64_t timer_id,
                                     absl::Time now);

  // StopExecution: ExecutionAborted with the given error and cause.
  Outcome Abort(::stepflow::internal::v1::ExecutionState* state, absl::string_view error,
                absl::string_view cause, absl::Time now);

  // RedriveExecution of an execution that closed unsuccessfully:
  // ExecutionRedriven (with context.redrive_count), then the states that
  // failed or were cut short run again from their inputs; Parallel branches
  // and Map iterations that had succeeded are not run again. The execution
  // timeout restarts. FAILED_PRECONDITION when there is nothing to reopen.
  absl::StatusOr<Outcome> Redrive(::stepflow::internal::v1::ExecutionState* state, absl::Time now);

  // UpdateMapRun of a running map run of the execution: children not yet
  // started obey the new MaxConcurrency (more start at once when it grew),
  // and the next failed child is judged by the new tolerances. No history
  // event, as on AWS. FAILED_PRECONDITION when the map run is not running.
  absl::StatusOr<Outcome> UpdateMapRun(::stepflow::internal::v1::ExecutionState* state,
                                       const MapRunUpdate& update, absl::Time now);

  // Whether the execution awaits the activity scheduled by that event.
  static bool AwaitsTask(const ::stepflow::internal::v1::ExecutionState& state, int64_t scheduled_event_id);

 private:
  class Run;
  friend absl::StatusOr<v1::TestStateResponse> TestState(const v1::TestStateRequest& request,
                                                         const ExecutionContext& context);
  const Definition& definition_;
  const ExecutionContext& context_;
};

// The UUID-shaped id the interpreter gives part `part` of the map run that
// event `event_id` starts when ExecutionContext::mint_id is unset (seeded by
// the execution ARN), for id sources that build on it.
std::string DefaultMapRunId(absl::string_view seed, int64_t event_id, int64_t part);

// TestState: runs one state in isolation, as AWS's TestState does. The
// request's definition is a single state (or a state machine plus
// state_name); transitions to other states are not followed but reported as
// next_state. Task states take their result or error from request.mock,
// and so do Parallel and Map states (the mock stands for the array their
// branches or iterations return; they need one, as on AWS). At inspection
// level DEBUG or TRACE the response carries the data after each processing
// step. A Map's state_configuration.map_iteration_failure_count is checked
// against its tolerated failures (States.ExceedToleratedFailureThreshold).
// INVALID_ARGUMENT for invalid definitions, inputs or mocks.
absl::StatusOr<v1::TestStateResponse> TestState(const v1::TestStateRequest& request,
                                                const ExecutionContext& context);

}  // namespace stepflow::asl

#endif  // STEPFLOW_COMMON_ASL_INTERPRETER_H_
