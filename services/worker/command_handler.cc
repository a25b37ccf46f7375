#include "services/worker/command_handler.h"

#include <string.h>

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/json/json.h"
#include "common/log/log.h"

namespace stepflow::worker {
namespace {

// How the process ended, for a failure's cause: "exit code 3",
// "killed by signal 9 (Killed)".
std::string DescribeEnd(const CommandResult& result) {
  std::string text;
  if (result.signaled) {
    const char* name = strsignal(result.term_signal);
    text = absl::StrCat("killed by signal ", result.term_signal, " (",
                        name != nullptr ? name : "unknown", ")");
  } else {
    text = absl::StrCat("exit code ", result.exit_code);
  }
  if (result.killed_by_runner) {
    absl::StrAppend(&text, " after the worker stopped it");
  }
  return text;
}

}  // namespace

TaskResult TaskResultFromCommand(const absl::StatusOr<CommandResult>& run) {
  if (!run.ok()) {
    return TaskResult::Failure("ProcessStartFailed",
                               std::string(run.status().message()));
  }
  const CommandResult& result = *run;
  absl::string_view stdout_text =
      absl::StripTrailingAsciiWhitespace(result.stdout_data);

  if (result.Succeeded()) {
    if (result.stdout_truncated) {
      return TaskResult::Failure(
          "InvalidOutput",
          absl::StrCat("the command wrote more than ",
                       result.stdout_data.size(), " bytes to stdout"));
    }
    if (absl::StripLeadingAsciiWhitespace(stdout_text).empty()) {
      return TaskResult::Failure(
          "InvalidOutput",
          "the command exited with code 0 but wrote nothing to stdout; "
          "its output must be a JSON value");
    }
    absl::StatusOr<json::Document> parsed = json::Parse(stdout_text);
    if (!parsed.ok()) {
      return TaskResult::Failure(
          "InvalidOutput",
          absl::StrCat("the command's stdout is not valid JSON: ",
                       parsed.status().message()));
    }
    return TaskResult::Success(std::string(stdout_text));
  }

  std::string error = result.signaled ? "ProcessKilled" : "ProcessExited";
  absl::string_view stderr_tail =
      absl::StripTrailingAsciiWhitespace(result.stderr_tail);
  std::string cause = DescribeEnd(result);
  if (!stderr_tail.empty()) absl::StrAppend(&cause, ": ", stderr_tail);
  if (!result.stdout_truncated) {
    absl::StatusOr<json::Document> parsed = json::Parse(stdout_text);
    if (parsed.ok() && parsed->IsObject()) {
      auto error_it = parsed->FindMember("error");
      auto cause_it = parsed->FindMember("cause");
      const bool has_error =
          error_it != parsed->MemberEnd() && error_it->value.IsString();
      const bool has_cause =
          cause_it != parsed->MemberEnd() && cause_it->value.IsString();
      if (has_error) {
        error.assign(error_it->value.GetString(),
                     error_it->value.GetStringLength());
      }
      if (has_cause) {
        cause.assign(cause_it->value.GetString(),
                     cause_it->value.GetStringLength());
      }
    }
  }
  return TaskResult::Failure(std::move(error), std::move(cause));
}

TaskHandler MakeCommandHandler(CommandRunner* runner) {
  return [runner](const Task& task) {
    absl::StatusOr<CommandResult> run =
        runner->Run(task.input, task.cancelled.get());
    if (!run.ok()) {
      log::Error("worker", "cannot run command", {{"error", run.status()}});
    } else if (!run->Succeeded()) {
      log::Info("worker", "command failed",
                {{"exit_code", run->exit_code},
                 {"signal", run->term_signal},
                 {"stderr_tail", run->stderr_tail}});
    }
    return TaskResultFromCommand(run);
  };
}

}  // namespace stepflow::worker
