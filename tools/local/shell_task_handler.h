// A task handler for RunLocally (local_runner.h) that runs a shell command
// per activity task, with the protocol of the stepflow-worker binary
// (services/worker/command_handler.h), so one handler script serves both a
// cluster and local runs:
//
//   /bin/sh -c COMMAND, with the task input on stdin and the Task's
//   Resource in the environment variable STEPFLOW_ACTIVITY_ARN (the task
//   token in STEPFLOW_TASK_TOKEN);
//   exit 0 and JSON on stdout      -> success, output = stdout
//   exit 0, stdout not JSON        -> failure "InvalidOutput"
//   exit != 0 or killed by signal  -> failure; error/cause from stdout if it
//                                     is a JSON object with string "error"
//                                     and/or "cause", else "ProcessExited" /
//                                     "ProcessKilled" and "exit code N:
//                                     <stderr tail>"
//   /bin/sh cannot be started      -> failure "ProcessStartFailed"
//
//   LocalRunOptions options;
//   options.task_handler = ShellTaskHandler("jq '.n + 1'");
//
// The command's stderr is kept (its tail goes into failure causes), not
// shown. Each call starts its own process; the handler may be called from
// several threads at once.
#ifndef STEPFLOW_TOOLS_LOCAL_SHELL_TASK_HANDLER_H_
#define STEPFLOW_TOOLS_LOCAL_SHELL_TASK_HANDLER_H_

#include <functional>
#include <string>

#include "tools/local/local_runner.h"

namespace stepflow::local {

inline constexpr char kActivityArnEnvVar[] = "STEPFLOW_ACTIVITY_ARN";
inline constexpr char kTaskTokenEnvVar[] = "STEPFLOW_TASK_TOKEN";

std::function<TaskReply(const TaskRequest&)> ShellTaskHandler(
    std::string command);

}  // namespace stepflow::local

#endif  // STEPFLOW_TOOLS_LOCAL_SHELL_TASK_HANDLER_H_
