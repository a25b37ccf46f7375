// Runs the stepflow-eventbus binary against an in-process mock Kafka.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/kafka/mock_cluster.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace {

using ::testing::HasSubstr;

std::string BinaryPath() {
  const char* build_dir = std::getenv("STEPFLOW_BUILD_DIR");
  return absl::StrCat(build_dir != nullptr ? build_dir : ".",
                      "/services/eventbus/stepflow-eventbus");
}

// A child process with its stdout on a pipe.
class Child {
 public:
  explicit Child(std::vector<std::string> args) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      std::vector<char*> argv;
      std::string binary = BinaryPath();
      argv.push_back(binary.data());
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    stdout_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0 && !exit_code_.has_value()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(stdout_);
  }

  // One line of stdout, without the newline; nullopt on EOF or timeout.
  std::optional<std::string> ReadLine(absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (true) {
      size_t newline = buffered_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffered_.substr(0, newline);
        buffered_.erase(0, newline + 1);
        return line;
      }
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return std::nullopt;
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1,
                 static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <= 0) {
        continue;
      }
      char chunk[1024];
      ssize_t n = ::read(stdout_, chunk, sizeof(chunk));
      if (n <= 0) return std::nullopt;
      buffered_.append(chunk, n);
    }
  }

  // Everything left on stdout until EOF.
  std::string ReadAll() {
    std::string out = std::move(buffered_);
    char chunk[1024];
    ssize_t n;
    while ((n = ::read(stdout_, chunk, sizeof(chunk))) > 0)
      out.append(chunk, n);
    return out;
  }

  void Signal(int signal_number) { ::kill(pid_, signal_number); }

  // The exit code (128 + signal if killed), or nullopt after `timeout`.
  std::optional<int> Wait(absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status = 0;
      pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        exit_code_ =
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_code_;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return std::nullopt;
  }

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
  std::string buffered_;
  std::optional<int> exit_code_;
};

std::string HealthStatus(const std::string& address) {
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  grpc::Slice empty("");  // HealthCheckRequest{service: ""}
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status status = done.get_future().get();
  if (!status.ok()) return absl::StrCat("error: ", status.error_message());
  std::vector<grpc::Slice> slices;
  std::string body;
  if (response.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      body.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  if (body == std::string("\x08\x01", 2)) return "SERVING";
  if (body == std::string("\x08\x02", 2)) return "NOT_SERVING";
  return "unexpected response";
}

class EventBusMainTest : public ::testing::TestWithParam<int> {};

TEST_P(EventBusMainTest, ServesAndExitsCleanlyOnSignal) {
  auto cluster = stepflow::kafka::MockKafkaCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->CreateTopic("stepflow.events.default", 4).ok());

  Child child({"--kafka-brokers", (*cluster)->bootstrap_servers(),
               "--listen=127.0.0.1:0", "--log-format", "json", "--log-level",
               "warn"});
  std::optional<std::string> line = child.ReadLine(absl::Seconds(20));
  ASSERT_TRUE(line.has_value()) << "no 'listening' line";
  const std::string prefix = "stepflow-eventbus listening on ";
  ASSERT_TRUE(absl::StartsWith(*line, prefix)) << *line;
  const std::string address = line->substr(prefix.size());
  EXPECT_EQ(HealthStatus(address), "SERVING");

  child.Signal(GetParam());
  EXPECT_EQ(child.Wait(absl::Seconds(15)), std::optional<int>(0));
  EXPECT_EQ(child.ReadAll(), "");  // the listening line is the only output
}

INSTANTIATE_TEST_SUITE_P(Signals, EventBusMainTest,
                         ::testing::Values(SIGTERM, SIGINT));

TEST(EventBusMainFlagsTest, HelpListsEveryFlag) {
  Child child({"--help"});
  std::string out = child.ReadAll();
  EXPECT_EQ(child.Wait(absl::Seconds(10)), std::optional<int>(0));
  for (const char* flag : {"--kafka-brokers", "--listen", "--metrics-listen",
                           "--log-level", "--log-format"}) {
    EXPECT_THAT(out, HasSubstr(flag));
  }
}

TEST(EventBusMainFlagsTest, UsageErrorsExitWithCode2) {
  {
    Child child({});  // no --kafka-brokers
    EXPECT_EQ(child.Wait(absl::Seconds(10)), std::optional<int>(2));
  }
  {
    Child child({"--kafka-brokers", "127.0.0.1:1", "--no-such-flag"});
    EXPECT_EQ(child.Wait(absl::Seconds(10)), std::optional<int>(2));
  }
  {
    Child child({"--kafka-brokers", "127.0.0.1:1", "--log-format", "xml"});
    EXPECT_EQ(child.Wait(absl::Seconds(10)), std::optional<int>(2));
  }
}

}  // namespace
