// The deterministic States Language interpreter.
//
// Given a definition, the execution's interpreter state and one event (the
// start, an activity started/succeeded/failed, an abort), it produces the
// history events of the transition, the new state, and the effects the
// caller must carry out once the transition is durable (activity tasks to
// dispatch). Time, task tokens and identities are passed in; nothing here
// reads a clock, draws random numbers or does I/O, so replaying the same
// inputs gives the same outputs.
//
//   Interpreter interpreter(*definition, context);
//   Outcome outcome = interpreter.Start(&state, input_json, now);
//   // persist outcome.events + state + outcome.dispatches atomically, then
//   // dispatch the tasks.
//
// Not thread-safe; create one per transition (construction is cheap).
#ifndef STEPFLOW_COMMON_ASL_INTERPRETER_H_
#define STEPFLOW_COMMON_ASL_INTERPRETER_H_

#include <functional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
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
  // Mints the task token for the activity scheduled by event
  // `scheduled_event_id`.
  std::function<std::string(int64_t scheduled_event_id)> mint_task_token;
};

struct ActivityDispatch {
  std::string activity_arn;
  int64_t scheduled_event_id = 0;
  std::string task_token;
  std::string input;
  int64_t timeout_seconds = 0;
  int64_t heartbeat_seconds = 0;
};

struct Outcome {
  std::vector<v1::HistoryEvent> events;
  std::vector<ActivityDispatch> dispatches;
  // Empty while the execution runs; "SUCCEEDED" / "FAILED" / "ABORTED" once
  // this transition closed it, with output or error and cause.
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

  // ExecutionStarted, then every state up to the first one that waits.
  Outcome Start(internal::v1::ExecutionState* state, absl::string_view input, absl::Time now);

  // The waiting Task's activity was handed to a worker. FAILED_PRECONDITION
  // when no activity `scheduled_event_id` is waiting (a late or duplicate
  // report), which callers treat as a no-op.
  absl::StatusOr<Outcome> ActivityStarted(internal::v1::ExecutionState* state,
                                          int64_t scheduled_event_id,
                                          absl::string_view worker_name, absl::Time now);
  absl::StatusOr<Outcome> ActivitySucceeded(internal::v1::ExecutionState* state,
                                            int64_t scheduled_event_id,
                                            absl::string_view output, absl::Time now);
  absl::StatusOr<Outcome> ActivityFailed(internal::v1::ExecutionState* state,
                                         int64_t scheduled_event_id, absl::string_view error,
                                         absl::string_view cause, absl::Time now);

  // The activity of the waiting Task does not exist: the execution fails
  // with States.Runtime as on AWS.
  absl::StatusOr<Outcome> ActivityDoesNotExist(internal::v1::ExecutionState* state,
                                               int64_t scheduled_event_id,
                                               absl::string_view activity_arn, absl::Time now);

  // StopExecution: ExecutionAborted with the given error and cause.
  Outcome Abort(internal::v1::ExecutionState* state, absl::string_view error,
                absl::string_view cause, absl::Time now);

 private:
  class Run;
  const Definition& definition_;
  const ExecutionContext& context_;
};

}  // namespace stepflow::asl

#endif  // STEPFLOW_COMMON_ASL_INTERPRETER_H_
