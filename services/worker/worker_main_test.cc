// Runs the stepflow-worker binary against an in-process fake StepFunctions
// service: flags, the command protocol, and stopping on signals.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/worker/command_runner.h"
#include "services/worker/fake_step_functions.h"

extern char** environ;

namespace stepflow::worker {
namespace {

using ::testing::Each;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(10);

// A started stepflow-worker; killed (SIGKILL) if the test did not wait for
// it.
class WorkerProcess {
 public:
  explicit WorkerProcess(std::vector<std::string> args) {
    args.insert(args.begin(), STEPFLOW_WORKER_BINARY);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    int rc =
        posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ);
    EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
    if (rc != 0) pid_ = -1;
  }
  ~WorkerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  void Signal(int signal_number) { kill(pid_, signal_number); }

  // The exit code, or -1 if it did not exit normally within `timeout`.
  int WaitForExit(absl::Duration timeout) {
    const absl::Time give_up = absl::Now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      if (absl::Now() >= give_up) return -1;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
};

// Runs the binary to completion (for flag checks).
CommandResult RunToCompletion(std::vector<std::string> args) {
  args.insert(args.begin(), STEPFLOW_WORKER_BINARY);
  CommandRunner runner(std::move(args));
  absl::StatusOr<CommandResult> result = runner.Run("");
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : CommandResult{};
}

// A path the commands create to say they have started.
std::string MarkerPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/worker_main_test_", getpid(), "_",
                      name);
}

bool WaitForFile(const std::string& path, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (access(path.c_str(), F_OK) != 0) {
    if (absl::Now() >= give_up) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

TEST(WorkerMainTest, HelpDescribesEveryFlag) {
  CommandResult result = RunToCompletion({"--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* flag :
       {"--endpoint", "--activity", "--region", "--account", "--concurrency",
        "--worker-name", "--heartbeat-seconds", "--poll-timeout-seconds",
        "--stop-timeout-seconds", "--metrics-port", "--log-level",
        "--log-format", "SIGTERM", "InvalidOutput", "ProcessExited",
        "ProcessKilled"}) {
    EXPECT_THAT(result.stdout_data, HasSubstr(flag));
  }
}

TEST(WorkerMainTest, BadUsageExitsWithTwo) {
  const std::vector<std::vector<std::string>> bad = {
      {"--activity", "a", "--", "cat"},          // No endpoint.
      {"--endpoint", "x:1", "--", "cat"},        // No activity.
      {"--endpoint", "x:1", "--activity", "a"},  // No command.
      {"--endpoint", "x:1", "--activity", "a", "--bogus", "1", "--", "cat"},
      {"--endpoint", "x:1", "--activity", "a", "--concurrency", "0", "--",
       "cat"},
      {"--endpoint", "x:1", "--activity", "bad name", "--", "cat"},
      {"--endpoint", "x:1", "--activity", "a", "--log-level", "loud", "--",
       "cat"},
      {"--endpoint", "x:1", "--activity", "a", "--",
       "/nonexistent/stepflow-command"},
  };
  for (const std::vector<std::string>& args : bad) {
    CommandResult result = RunToCompletion(args);
    EXPECT_EQ(result.exit_code, 2) << absl::StrJoin(args, " ");
    EXPECT_THAT(result.stderr_tail, HasSubstr("stepflow-worker: "));
  }
}

TEST(WorkerMainTest, RunsCommandPerTaskAndStopsOnSigterm) {
  FakeStepFunctionsServer server;
  server.fake().AddTask("t1", R"({"x": 1})");
  server.fake().AddTask("t2", R"({"fail": true})");
  server.fake().AddTask("t3", "{}");
  WorkerProcess worker({"--endpoint", server.address(), "--activity", "resize",
                        "--region=eu-west-1", "--concurrency", "2",
                        "--worker-name", "w1", "--log-level", "warn", "--",
                        "/bin/sh", "-c",
                        R"(read -r line; case "$line" in
            *fail*) echo '{"error":"E","cause":"C"}'; exit 1;;
            '{}') echo 'not json';;
            *) echo "$line";;
          esac)"});
  ASSERT_TRUE(server.fake().WaitForResults(3, kWait));
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.WaitForExit(kWait), 0);

  using R = FakeStepFunctions::Result;
  EXPECT_THAT(server.fake().results(),
              ::testing::UnorderedElementsAre(
                  AllOf(::testing::Field(&R::task_token, "t1"),
                        ::testing::Field(&R::success, true),
                        ::testing::Field(&R::output, R"({"x": 1})")),
                  AllOf(::testing::Field(&R::task_token, "t2"),
                        ::testing::Field(&R::error, "E"),
                        ::testing::Field(&R::cause, "C")),
                  AllOf(::testing::Field(&R::task_token, "t3"),
                        ::testing::Field(&R::error, "InvalidOutput"))));
  EXPECT_THAT(server.fake().activity_arns(),
              Each("arn:aws:states:eu-west-1:123456789012:activity:resize"));
  EXPECT_THAT(server.fake().worker_names(), Each("w1"));
}

TEST(WorkerMainTest, SigtermLetsRunningCommandFinish) {
  FakeStepFunctionsServer server;
  const std::string started = MarkerPath("finish");
  unlink(started.c_str());
  server.fake().AddTask("t1", "{}");
  WorkerProcess worker({"--endpoint", server.address(), "--activity", "slow",
                        "--log-level", "warn", "--", "/bin/sh", "-c",
                        R"(: > "$0"; sleep 0.3; echo '"finished"')", started});
  ASSERT_TRUE(WaitForFile(started, kWait));
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.WaitForExit(kWait), 0);
  unlink(started.c_str());
  ASSERT_EQ(server.fake().results().size(), 1u);
  EXPECT_EQ(server.fake().results()[0].output, R"("finished")");
}

TEST(WorkerMainTest, SecondSignalKillsRunningCommand) {
  FakeStepFunctionsServer server;
  const std::string started = MarkerPath("kill");
  unlink(started.c_str());
  server.fake().AddTask("t1", "{}");
  WorkerProcess worker({"--endpoint", server.address(), "--activity", "stuck",
                        "--log-level", "error", "--", "/bin/sh", "-c",
                        R"(: > "$0"; exec sleep 60)", started});
  ASSERT_TRUE(WaitForFile(started, kWait));
  const absl::Time start = absl::Now();
  // Two different signals, so the second is not merged into the first.
  worker.Signal(SIGINT);
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.WaitForExit(kWait), 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  unlink(started.c_str());
  ASSERT_EQ(server.fake().results().size(), 1u);
  EXPECT_EQ(server.fake().results()[0].error, "ProcessKilled");
}

TEST(WorkerMainTest, StopTimeoutKillsRunningCommand) {
  FakeStepFunctionsServer server;
  const std::string started = MarkerPath("timeout");
  unlink(started.c_str());
  server.fake().AddTask("t1", "{}");
  WorkerProcess worker({"--endpoint", server.address(), "--activity", "stuck",
                        "--stop-timeout-seconds", "0.1", "--log-level", "error",
                        "--", "/bin/sh", "-c", R"(: > "$0"; exec sleep 60)",
                        started});
  ASSERT_TRUE(WaitForFile(started, kWait));
  worker.Signal(SIGTERM);
  EXPECT_EQ(worker.WaitForExit(kWait), 0);
  unlink(started.c_str());
  ASSERT_EQ(server.fake().results().size(), 1u);
  EXPECT_EQ(server.fake().results()[0].error, "ProcessKilled");
}

TEST(WorkerMainTest, SigintWhileIdleExitsPromptly) {
  FakeStepFunctionsServer server;
  WorkerProcess worker({"--endpoint", server.address(), "--activity", "idle",
                        "--log-level", "error", "--", "cat"});
  ASSERT_TRUE(server.fake().WaitForPendingPolls(1, kWait));
  const absl::Time start = absl::Now();
  worker.Signal(SIGINT);
  EXPECT_EQ(worker.WaitForExit(kWait), 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

}  // namespace
}  // namespace stepflow::worker
