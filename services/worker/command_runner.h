// CommandRunner: runs one external command per call, feeding it bytes on
// stdin and collecting its stdout and the tail of its stderr.
//
//   CommandRunner runner({"python3", "handler.py"});
//   absl::StatusOr<CommandResult> result = runner.Run(R"({"n": 1})");
//   if (result.ok() && result->Succeeded()) Use(result->stdout_data);
//
// The command is started directly (posix_spawnp: PATH lookup, no shell) in a
// new process group, so a Ctrl-C aimed at the worker does not reach it and
// Kill() reaches its own children too. The child gets default signal
// dispositions and an empty signal mask, whatever the worker's are. Pipes are
// close-on-exec in the parent, so concurrent Run() calls never leak one
// another's pipe ends (which would keep a stdin from ever reaching EOF).
//
// Creating a CommandRunner sets SIGPIPE to be ignored in this process, so
// that writing to a child that stopped reading returns EPIPE instead of
// killing the worker.
//
// Thread-safety: Run() may be called concurrently from many threads; KillAll()
// from any thread.
#ifndef STEPFLOW_SERVICES_WORKER_COMMAND_RUNNER_H_
#define STEPFLOW_SERVICES_WORKER_COMMAND_RUNNER_H_

#include <atomic>
#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace stepflow::worker {

struct CommandResult {
  // How the process ended: exit_code if !signaled, else term_signal.
  bool signaled = false;
  int exit_code = 0;
  int term_signal = 0;
  // The runner signalled the process (KillAll() or a cancelled run); it may
  // still have exited with a code of its choosing.
  bool killed_by_runner = false;
  // Everything the process wrote to stdout, up to max_stdout_bytes.
  std::string stdout_data;
  // More than max_stdout_bytes were written; the rest was discarded.
  bool stdout_truncated = false;
  // The last stderr_tail_bytes bytes the process wrote to stderr.
  std::string stderr_tail;

  bool Succeeded() const { return !signaled && exit_code == 0; }
};

struct CommandRunnerOptions {
  size_t max_stdout_bytes = 16 << 20;
  size_t stderr_tail_bytes = 1024;
  // Between SIGTERM and SIGKILL when a run is killed.
  absl::Duration kill_grace = absl::Seconds(5);
  // After the process exits, how long to keep reading pipes that something
  // it started in the background still holds open.
  absl::Duration drain_timeout = absl::Seconds(1);
};

class CommandRunner {
 public:
  // `argv[0]` is looked up in PATH unless it contains a '/'. `argv` must not
  // be empty.
  explicit CommandRunner(std::vector<std::string> argv,
                         CommandRunnerOptions options = {});
  ~CommandRunner();

  CommandRunner(const CommandRunner&) = delete;
  CommandRunner& operator=(const CommandRunner&) = delete;

  // Runs the command with `input` on stdin and waits for it to exit. When
  // `cancel` becomes true (checked every 100 ms) the process group gets
  // SIGTERM, then SIGKILL kill_grace later. Errors: NOT_FOUND or
  // PERMISSION_DENIED if the command cannot be started (the message names
  // it), INTERNAL for failed system calls; an exit status of any kind is
  // not an error.
  absl::StatusOr<CommandResult> Run(absl::string_view input,
                                    const std::atomic<bool>* cancel = nullptr);

  // Kills the running commands, and every one started from now on: SIGTERM
  // to their process groups, SIGKILL kill_grace later if still running.
  // Returns at once; the Run() calls return as their processes die.
  void KillAll();

  const std::vector<std::string>& argv() const { return argv_; }

 private:
  const std::vector<std::string> argv_;
  const CommandRunnerOptions options_;
  // An eventfd that becomes (and stays) readable on KillAll(), so every
  // Run() blocked in poll() wakes at once.
  int kill_fd_ = -1;
  std::atomic<bool> killed_{false};
};

// Whether `program` names something posix_spawnp could run: an executable
// file, given by path or found in PATH.
bool IsRunnable(const std::string& program);

}  // namespace stepflow::worker

#endif  // STEPFLOW_SERVICES_WORKER_COMMAND_RUNNER_H_
