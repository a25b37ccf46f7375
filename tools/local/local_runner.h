// Runs one execution of an Amazon States Language definition in this
// process, with no cluster: the deterministic interpreter of
// common/asl/interpreter.h driven by a small event loop, activity tasks
// handed to a callback, and timers (Wait, Retry backoff, timeouts) on a
// virtual clock, so a workflow that waits for a day finishes at once.
//
//   LocalRunOptions options;
//   options.definition = R"({"StartAt": "A", "States": {"A": {...}}})";
//   options.input = R"({"n": 1})";
//   options.task_handler = [](const TaskRequest& task) {
//     return TaskReply{.success = true, .output = task.input};
//   };
//   absl::StatusOr<LocalRunResult> result = RunLocally(options);
//   // result->status == "SUCCEEDED", result->output, result->history
//
// The loop, until the execution closes:
//   1. every timer due at the current time fires (earliest first);
//   2. otherwise the oldest dispatched activity task still awaited runs
//      through `task_handler` (ActivityStarted with worker name "local",
//      then ActivitySucceeded or ActivityFailed), one task at a time in
//      dispatch order, so Parallel branches and Map iterations interleave
//      deterministically;
//   3. otherwise the clock moves to the earliest armed timer: a virtual
//      clock by default, or, with `real_time`, a sleep until then.
// Handlers take no virtual time. With `real_time` the clock is the real one,
// and timers that came due while a handler ran (a Task's TimeoutSeconds or
// HeartbeatSeconds; no heartbeats are sent) fire before its result is
// reported, as they would on a cluster.
//
// EXPRESS executions time out (ExecutionTimedOut, States.Timeout) after
// five minutes of (virtual) time, like AWS Express workflows; the runner
// does so by capping the definition's top-level TimeoutSeconds at 300.
//
// Ids are fixed: the execution is
// arn:aws:states:us-east-1:123456789012:execution:local:<name> of state
// machine arn:aws:states:us-east-1:123456789012:stateMachine:local; the
// execution starts at the real time of the call. Retry jitter draws from a
// generator with a fixed seed, so two runs of the same definition, input
// and handler give the same history (timestamps aside).
//
// RunLocally is thread-compatible: concurrent calls are independent; the
// handler is called on the calling thread.
#ifndef STEPFLOW_TOOLS_LOCAL_LOCAL_RUNNER_H_
#define STEPFLOW_TOOLS_LOCAL_LOCAL_RUNNER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "stepflow/v1/states.pb.h"

namespace stepflow::local {

inline constexpr char kLocalStateMachineArn[] =
    "arn:aws:states:us-east-1:123456789012:stateMachine:local";
inline constexpr char kLocalExecutionArnPrefix[] =
    "arn:aws:states:us-east-1:123456789012:execution:local:";
// The worker name of the ActivityStarted events.
inline constexpr char kLocalWorkerName[] = "local";
// How long an EXPRESS execution may run.
inline constexpr absl::Duration kExpressTimeout = absl::Minutes(5);

// One activity task to run.
struct TaskRequest {
  std::string activity_arn;  // the Task state's Resource
  std::string input;         // JSON text, after InputPath and Parameters
  std::string task_token;    // unique per task within the run
};

// How it ended. On success `output` must be JSON text (otherwise the Task
// fails with States.Runtime, as on a cluster); on failure `error` and
// `cause` are matched by Retry and Catch.
struct TaskReply {
  bool success = false;
  std::string output;
  std::string error;
  std::string cause;
};

struct LocalRunOptions {
  std::string definition;  // ASL JSON
  std::string input = "{}";
  std::string type = "STANDARD";  // or "EXPRESS"
  std::string name = "local";     // execution name
  // Sleep until timers are due instead of moving a virtual clock.
  bool real_time = false;
  // Runs each activity task. When empty, every Task fails with
  // States.TaskFailed.
  std::function<TaskReply(const TaskRequest&)> task_handler;
  // The activities that exist, by ARN; a Task of another one fails with
  // States.Runtime before it is scheduled, as on AWS. When empty, every
  // activity exists (the handler stands for them all).
  std::function<bool(absl::string_view activity_arn)> activity_exists;
  // The runner gives up (DEADLINE_EXCEEDED) rather than move the clock
  // further than this past the start: about AWS's one-year limit on
  // Standard executions.
  absl::Duration max_virtual_time = absl::Hours(24 * 366);
  // ... and (RESOURCE_EXHAUSTED) when the history grows past this many
  // events, AWS's history limit.
  int64_t max_events = 25000;
};

struct LocalRunResult {
  // "SUCCEEDED", "FAILED", "TIMED_OUT" or "ABORTED".
  std::string status;
  std::string output;  // JSON text when SUCCEEDED
  std::string error;
  std::string cause;
  std::vector<v1::HistoryEvent> history;
};

// Runs the execution to its end. Errors:
//   INVALID_ARGUMENT  the definition is invalid (the message is AWS's
//                     "InvalidDefinition: ..."; asl::ValidateDefinition
//                     lists the individual diagnostics), or the input is not
//                     JSON, the name is not a valid execution name, or the
//                     type is neither STANDARD nor EXPRESS;
//   DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED  max_virtual_time / max_events;
//   INTERNAL          the interpreter left the execution waiting for nothing.
// A workflow that fails is not an error: see LocalRunResult::status.
absl::StatusOr<LocalRunResult> RunLocally(const LocalRunOptions& options);

// The task handler that fails every task the way RunLocally does without
// one: error States.TaskFailed, cause `cause`.
std::function<TaskReply(const TaskRequest&)> FailingTaskHandler(
    std::string cause);

}  // namespace stepflow::local

#endif  // STEPFLOW_TOOLS_LOCAL_LOCAL_RUNNER_H_
