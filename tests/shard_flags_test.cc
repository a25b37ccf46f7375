// stepflow-shard refuses bad settings before it opens anything: a message
// on stderr naming the flag, and exit code 2.
#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/fixture/child_process.h"

namespace stepflow {
namespace {

struct BadFlag {
  std::vector<std::string> args;
  std::string message;
};

TEST(ShardFlagsTest, BadSettingsExitWithAMessage) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    absl::StrCat("stepflow-shard-flags-", getpid());
  std::filesystem::create_directories(dir);
  const std::vector<BadFlag> cases = {
      {{"--max-queued-task-mib", "-1"}, "--max-queued-task-mib must not be negative"},
      {{"--recent-express-mib", "-1"}, "--recent-express-mib must not be negative"},
      {{"--express-retention-seconds", "0"}, "must be positive"},
      {{"--express-retention-seconds", "-5"}, "must be positive"},
      {{"--retention-sweep-seconds", "0"}, "must be positive"},
      {{"--execution-retention-seconds", "-1"}, "must be positive"},
      {{"--replicas", "2", "--peers", "127.0.0.1:1"}, "--peers must list 2 addresses"},
      {{"--log-level", "loud"}, "loud"},
  };
  int n = 0;
  for (const BadFlag& bad : cases) {
    std::vector<std::string> argv = {STEPFLOW_SHARD_BIN, "--data-dir",
                                     (dir / absl::StrCat("data-", n)).string(), "--listen",
                                     "127.0.0.1:0"};
    argv.insert(argv.end(), bad.args.begin(), bad.args.end());
    auto shard = testing::ChildProcess::Start("stepflow-shard", argv,
                                              (dir / absl::StrCat("shard-", n++, ".log")).string());
    ASSERT_TRUE(shard.ok()) << shard.status();
    auto line = (*shard)->WaitForOutput(bad.message, absl::Seconds(20));
    EXPECT_TRUE(line.ok()) << bad.args[0] << ": " << line.status() << "\n" << (*shard)->LogTail();
    EXPECT_EQ((*shard)->Stop(SIGTERM, absl::Seconds(10)), 2) << bad.args[0];
    // Refused before the store was opened.
    EXPECT_FALSE(std::filesystem::exists(dir / absl::StrCat("data-", n - 1))) << bad.args[0];
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stepflow
