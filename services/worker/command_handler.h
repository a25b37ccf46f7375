// The task handler of the generic stepflow-worker binary: runs a command per
// task and turns how it ended into the task's result.
//
//   exit 0, stdout valid JSON     -> success, output = stdout without its
//                                    trailing whitespace
//   exit 0, stdout not JSON       -> failure "InvalidOutput", cause says why
//   exit != 0 or killed by signal -> failure; error/cause from stdout if it
//                                    is a JSON object with string "error"
//                                    and/or "cause" fields, else
//                                    "ProcessExited" / "ProcessKilled" and
//                                    "exit code N: <stderr tail>"
//   command cannot be started     -> failure "ProcessStartFailed"
//
// Pure functions plus a thin adapter; thread-safe.
#ifndef STEPFLOW_SERVICES_WORKER_COMMAND_HANDLER_H_
#define STEPFLOW_SERVICES_WORKER_COMMAND_HANDLER_H_

#include "absl/status/statusor.h"
#include "services/worker/command_runner.h"
#include "services/worker/worker.h"

namespace stepflow::worker {

// The task result for what CommandRunner::Run returned.
TaskResult TaskResultFromCommand(const absl::StatusOr<CommandResult>& run);

// A handler that runs `runner`'s command for each task, with the task input
// on stdin, and kills it if the service says the task is gone. `runner` must
// outlive the handler.
TaskHandler MakeCommandHandler(CommandRunner* runner);

}  // namespace stepflow::worker

#endif  // STEPFLOW_SERVICES_WORKER_COMMAND_HANDLER_H_
