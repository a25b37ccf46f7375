#include "services/worker/command_handler.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::worker {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

CommandResult Exited(int code, std::string out, std::string err = "") {
  CommandResult result;
  result.exit_code = code;
  result.stdout_data = std::move(out);
  result.stderr_tail = std::move(err);
  return result;
}

TEST(TaskResultFromCommandTest, ZeroExitWithJsonIsSuccess) {
  TaskResult result = TaskResultFromCommand(Exited(0, "{\"a\": [1, 2]}\n\n  "));
  EXPECT_TRUE(result.success);
  EXPECT_EQ(result.output, "{\"a\": [1, 2]}");
}

TEST(TaskResultFromCommandTest, ZeroExitWithBadJsonIsInvalidOutput) {
  TaskResult result = TaskResultFromCommand(Exited(0, "hello\n"));
  EXPECT_FALSE(result.success);
  EXPECT_EQ(result.error, "InvalidOutput");
  EXPECT_THAT(result.cause, HasSubstr("not valid JSON"));

  result = TaskResultFromCommand(Exited(0, "  \n"));
  EXPECT_EQ(result.error, "InvalidOutput");
  EXPECT_THAT(result.cause, HasSubstr("nothing to stdout"));

  CommandResult big = Exited(0, "[1");
  big.stdout_truncated = true;
  result = TaskResultFromCommand(big);
  EXPECT_EQ(result.error, "InvalidOutput");
  EXPECT_THAT(result.cause, HasSubstr("more than"));
}

TEST(TaskResultFromCommandTest, NonZeroExitUsesStderrTail) {
  TaskResult result = TaskResultFromCommand(Exited(3, "", "oops\n"));
  EXPECT_FALSE(result.success);
  EXPECT_EQ(result.error, "ProcessExited");
  EXPECT_EQ(result.cause, "exit code 3: oops");

  result = TaskResultFromCommand(Exited(4, "not json"));
  EXPECT_EQ(result.error, "ProcessExited");
  EXPECT_EQ(result.cause, "exit code 4");
}

TEST(TaskResultFromCommandTest, NonZeroExitUsesErrorAndCauseFromStdout) {
  TaskResult result = TaskResultFromCommand(
      Exited(1, "{\"error\":\"E\",\"cause\":\"C\"}\n", "ignored"));
  EXPECT_EQ(result.error, "E");
  EXPECT_EQ(result.cause, "C");

  result = TaskResultFromCommand(Exited(1, R"({"error":"OnlyError"})", "err"));
  EXPECT_EQ(result.error, "OnlyError");
  EXPECT_EQ(result.cause, "exit code 1: err");

  result = TaskResultFromCommand(Exited(2, R"({"cause":"only cause"})"));
  EXPECT_EQ(result.error, "ProcessExited");
  EXPECT_EQ(result.cause, "only cause");

  // Not strings, or not an object: ignored.
  result = TaskResultFromCommand(Exited(1, R"({"error": 5})"));
  EXPECT_EQ(result.error, "ProcessExited");
  result = TaskResultFromCommand(Exited(1, R"(["error"])"));
  EXPECT_EQ(result.error, "ProcessExited");
}

TEST(TaskResultFromCommandTest, SignalIsProcessKilled) {
  CommandResult killed;
  killed.signaled = true;
  killed.term_signal = 9;
  killed.stderr_tail = "partial";
  TaskResult result = TaskResultFromCommand(killed);
  EXPECT_EQ(result.error, "ProcessKilled");
  EXPECT_THAT(result.cause, StartsWith("killed by signal 9"));
  EXPECT_THAT(result.cause, HasSubstr(": partial"));
}

TEST(TaskResultFromCommandTest, StartFailure) {
  TaskResult result = TaskResultFromCommand(
      absl::NotFoundError("cannot run 'x': No such file or directory"));
  EXPECT_EQ(result.error, "ProcessStartFailed");
  EXPECT_THAT(result.cause, HasSubstr("cannot run 'x'"));
}

TEST(CommandHandlerTest, RunsTheCommandPerTask) {
  CommandRunner runner({"/bin/sh", "-c", "cat"});
  TaskHandler handler = MakeCommandHandler(&runner);
  TaskResult result = handler(Task{"token", R"({"n": 1})", nullptr});
  EXPECT_TRUE(result.success);
  EXPECT_EQ(result.output, R"({"n": 1})");
}

TEST(CommandHandlerTest, CancelledTaskKillsTheCommand) {
  CommandRunner runner({"/bin/sh", "-c", "exec sleep 30"});
  TaskHandler handler = MakeCommandHandler(&runner);
  auto cancelled = std::make_shared<std::atomic<bool>>(true);
  TaskResult result = handler(Task{"token", "{}", cancelled});
  EXPECT_EQ(result.error, "ProcessKilled");
  EXPECT_THAT(result.cause, HasSubstr("after the worker stopped it"));
}

}  // namespace
}  // namespace stepflow::worker
