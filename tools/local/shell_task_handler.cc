#include "tools/local/shell_task_handler.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/worker/command_handler.h"
#include "services/worker/command_runner.h"

namespace stepflow::local {

std::function<TaskReply(const TaskRequest&)> ShellTaskHandler(
    std::string command) {
  return [command = std::move(command)](const TaskRequest& task) {
    // env(1) sets the variables for this process only, without touching
    // ours (setenv is not thread-safe) or quoting anything through a shell.
    worker::CommandRunner runner(
        {"/usr/bin/env",
         absl::StrCat(kActivityArnEnvVar, "=", task.activity_arn),
         absl::StrCat(kTaskTokenEnvVar, "=", task.task_token), "/bin/sh", "-c",
         command});
    worker::TaskResult result =
        worker::TaskResultFromCommand(runner.Run(task.input));
    return TaskReply{.success = result.success,
                     .output = std::move(result.output),
                     .error = std::move(result.error),
                     .cause = std::move(result.cause)};
  };
}

}  // namespace stepflow::local
