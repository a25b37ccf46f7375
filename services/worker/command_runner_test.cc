#include "services/worker/command_runner.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::worker {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<CommandResult> RunShell(const std::string& script,
                                       const std::string& input = "") {
  CommandRunner runner({"/bin/sh", "-c", script});
  return runner.Run(input);
}

TEST(CommandRunnerTest, CatEchoesStdin) {
  absl::StatusOr<CommandResult> result = RunShell("cat", R"({"a": 1})");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->Succeeded());
  EXPECT_EQ(result->stdout_data, R"({"a": 1})");
  EXPECT_EQ(result->stderr_tail, "");
}

TEST(CommandRunnerTest, ReportsExitCodeAndStderr) {
  absl::StatusOr<CommandResult> result = RunShell("echo bad >&2; exit 3");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->Succeeded());
  EXPECT_FALSE(result->signaled);
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->stderr_tail, "bad\n");
}

TEST(CommandRunnerTest, CollectsStdoutOfFailingCommand) {
  absl::StatusOr<CommandResult> result =
      RunShell(R"(echo "{\"error\":\"E\",\"cause\":\"C\"}"; exit 1)");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 1);
  EXPECT_EQ(result->stdout_data, "{\"error\":\"E\",\"cause\":\"C\"}\n");
}

TEST(CommandRunnerTest, StreamsMoreThanAPipeBufferBothWays) {
  // 1 MiB each way; a runner that wrote all input before reading any output
  // would deadlock against cat.
  std::string input;
  input.reserve(1 << 20);
  for (int i = 0; input.size() < (1 << 20); ++i) {
    input += std::to_string(i);
    input += '\n';
  }
  absl::StatusOr<CommandResult> result =
      RunShell("cat; cat >&2 </dev/null", input);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->Succeeded());
  EXPECT_EQ(result->stdout_data.size(), input.size());
  EXPECT_TRUE(result->stdout_data == input);
}

TEST(CommandRunnerTest, KeepsOnlyTheTailOfStderr) {
  absl::StatusOr<CommandResult> result = RunShell(
      "i=0; while [ $i -lt 3000 ]; do echo line$i >&2; i=$((i+1)); done; "
      "exit 1");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stderr_tail.size(), 1024u);
  EXPECT_THAT(result->stderr_tail, ::testing::EndsWith("line2999\n"));
}

TEST(CommandRunnerTest, CapsStdout) {
  CommandRunnerOptions options;
  options.max_stdout_bytes = 100;
  CommandRunner runner({"/bin/sh", "-c", "head -c 5000 /dev/zero"}, options);
  absl::StatusOr<CommandResult> result = runner.Run("");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->Succeeded());
  EXPECT_TRUE(result->stdout_truncated);
  EXPECT_EQ(result->stdout_data.size(), 100u);
}

TEST(CommandRunnerTest, ChildThatIgnoresStdinDoesNotHurtTheWorker) {
  // The child exits without reading; writing the rest gets EPIPE, not
  // SIGPIPE.
  absl::StatusOr<CommandResult> result =
      RunShell("exit 0", std::string(1 << 20, 'x'));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->Succeeded());
}

TEST(CommandRunnerTest, NonexistentCommandIsNotFound) {
  CommandRunner runner({"/nonexistent/stepflow-no-such-command", "x"});
  absl::StatusOr<CommandResult> result = runner.Run("{}");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(result.status().message(),
              HasSubstr("/nonexistent/stepflow-no-such-command"));

  CommandRunner in_path({"stepflow-no-such-command-in-path"});
  EXPECT_EQ(in_path.Run("{}").status().code(), absl::StatusCode::kNotFound);
}

TEST(CommandRunnerTest, KillAllTerminatesRunningCommands) {
  CommandRunner runner({"/bin/sh", "-c", "exec sleep 30"});
  absl::StatusOr<CommandResult> result;
  std::thread run([&] { result = runner.Run(""); });
  // Whether KillAll comes before or after the spawn, the command dies.
  absl::SleepFor(absl::Milliseconds(20));
  const absl::Time start = absl::Now();
  runner.KillAll();
  run.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->signaled);
  EXPECT_EQ(result->term_signal, SIGTERM);
  EXPECT_TRUE(result->killed_by_runner);
}

TEST(CommandRunnerTest, EscalatesToSigkill) {
  CommandRunnerOptions options;
  options.kill_grace = absl::Milliseconds(100);
  // Ignores SIGTERM, and creates `ready` once it does, so that the kill
  // cannot come before the trap.
  const std::string ready = ::testing::TempDir() +
                            "/command_runner_test_ready_" +
                            std::to_string(getpid());
  unlink(ready.c_str());
  CommandRunner runner(
      {"/bin/sh", "-c", "trap '' TERM; : > \"$0\"; sleep 30", ready}, options);
  std::atomic<bool> cancel{false};
  absl::StatusOr<CommandResult> result;
  std::thread run([&] { result = runner.Run("", &cancel); });
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (access(ready.c_str(), F_OK) != 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  cancel = true;
  run.join();
  unlink(ready.c_str());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->signaled);
  EXPECT_EQ(result->term_signal, SIGKILL);
  EXPECT_TRUE(result->killed_by_runner);
}

TEST(CommandRunnerTest, DoesNotWaitForeverForBackgroundChildren) {
  CommandRunnerOptions options;
  options.drain_timeout = absl::Milliseconds(100);
  CommandRunner runner({"/bin/sh", "-c", "echo '{}'; sleep 3 & exit 0"},
                       options);
  const absl::Time start = absl::Now();
  absl::StatusOr<CommandResult> result = runner.Run("");
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->Succeeded());
  EXPECT_EQ(result->stdout_data, "{}\n");
}

TEST(CommandRunnerTest, RunsConcurrently) {
  CommandRunner runner({"/bin/sh", "-c", "cat"});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      std::string input(100000 + i, static_cast<char>('a' + i));
      absl::StatusOr<CommandResult> result = runner.Run(input);
      if (result.ok() && result->Succeeded() && result->stdout_data == input) {
        ++ok;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
}

TEST(CommandRunnerTest, IsRunnable) {
  EXPECT_TRUE(IsRunnable("/bin/sh"));
  EXPECT_TRUE(IsRunnable("sh"));
  EXPECT_FALSE(IsRunnable("/nonexistent/x"));
  EXPECT_FALSE(IsRunnable("stepflow-no-such-command-in-path"));
  EXPECT_FALSE(IsRunnable("/etc/passwd"));  // Not executable.
  EXPECT_FALSE(IsRunnable(""));
}

}  // namespace
}  // namespace stepflow::worker
