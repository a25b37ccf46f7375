#include "services/execution/shard_service.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/clock/clock.h"
#include "common/config/arn.h"
#include "common/config/sharding.h"
#include "common/rpc/server.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "stepflow/internal/v1/shard.grpc.pb.h"

namespace stepflow::execution {
namespace {

// The shard server serves its methods through a hand-written list (one
// callback handler per method); a method the list misses would answer
// UNIMPLEMENTED. Every method of the service, as its descriptor names them,
// must reach the shard, whatever it then answers to an empty request.
TEST(ShardServiceTest, EveryMethodOfTheServiceIsServed) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("shard_service_test_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  clock::RealClock clock;
  ShardServerOptions options;
  options.core.clock = &clock;
  options.core.data_dir = dir.string();
  options.core.shard_count = 16;
  options.listen_address = "127.0.0.1:0";
  auto server = ShardServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();

  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          internal::v1::ShardService::service_full_name());
  ASSERT_NE(service, nullptr);
  ASSERT_GT(service->method_count(), 0);
  grpc::GenericStub stub(rpc::MakeChannel((*server)->address()));
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string method =
        "/" + service->full_name() + "/" + service->method(i)->name();
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    grpc::Slice empty;
    grpc::ByteBuffer request(&empty, 1);
    grpc::ByteBuffer response;
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                   [&](grpc::Status answered) {
                     status = std::move(answered);
                     done.Notify();
                   });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10))) << method;
    EXPECT_NE(status.error_code(), grpc::StatusCode::UNIMPLEMENTED)
        << method << ": " << status.error_message();
  }
  (*server)->Shutdown();
  server->reset();
  std::filesystem::remove_all(dir);
}

// A TCP listener that never accepts: the kernel completes each connection,
// and nothing ever answers on it, as with a server that is stopped.
class BlackHole {
 public:
  BlackHole() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 || listen(fd_, 64) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      Close();
      return;
    }
    port_ = ntohs(address.sin_port);
  }
  ~BlackHole() { Close(); }
  int port() const { return port_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

struct Outcome {
  grpc::Status status;
  absl::Duration took;
};

// A start on server 0 of a state machine that server 1 owns: server 0
// resolves it with a call to server 1.
Outcome StartThroughPeer(internal::v1::ShardService::Stub& stub,
                         const std::string& state_machine_arn) {
  internal::v1::StartExecutionShardRequest request;
  request.mutable_request()->set_state_machine_arn(state_machine_arn);
  request.mutable_request()->set_name("run-1");
  v1::StartExecutionResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  const absl::Time start = absl::Now();
  grpc::Status status = stub.StartExecution(&context, request, &response);
  return {status, absl::Now() - start};
}

// A shard server that stops answering holds each call to it until the
// call's deadline: the outbox's delivery threads, and a start waiting to
// resolve its state machine there. After the first such call, calls to it
// fail at once (one at a time still tries it), until it answers again.
TEST(ShardServiceTest, CallsToAServerThatHangsFailAtOnceUntilItAnswers) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("shard_service_hang_test_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  clock::RealClock clock;
  BlackHole hole;
  ASSERT_NE(hole.port(), 0);
  const std::string hole_address = "127.0.0.1:" + std::to_string(hole.port());

  ShardServerOptions options;
  options.core.clock = &clock;
  options.core.data_dir = (dir / "0").string();
  options.core.shard_count = 16;
  options.core.replicas = 2;
  options.core.ordinal = 0;
  options.listen_address = "127.0.0.1:0";
  options.peers = {"", hole_address};
  options.peer_call_timeout = absl::Seconds(1);
  auto server = ShardServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = internal::v1::ShardService::NewStub(rpc::MakeChannel((*server)->address()));

  // A state machine whose shard server 1 owns.
  config::ArnScope scope;
  std::string arn;
  for (int i = 0; arn.empty(); ++i) {
    std::string candidate = config::StateMachineArn(scope, "m" + std::to_string(i));
    if (config::ShardOf(candidate, 16) % 2 == 1) arn = candidate;
  }

  Outcome first = StartThroughPeer(*stub, arn);
  EXPECT_EQ(first.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << first.status.error_message();
  EXPECT_GE(first.took, absl::Milliseconds(900));

  // The next call is the probe and waits; those behind it fail at once.
  Outcome probe;
  std::thread prober([&] { probe = StartThroughPeer(*stub, arn); });
  absl::SleepFor(absl::Milliseconds(300));
  for (int i = 0; i < 3; ++i) {
    Outcome refused = StartThroughPeer(*stub, arn);
    EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << refused.status.error_message();
    EXPECT_NE(refused.status.error_message().find("shard server 1 at " + hole_address),
              std::string::npos)
        << refused.status.error_message();
    EXPECT_LT(refused.took, absl::Milliseconds(500));
  }
  prober.join();
  EXPECT_EQ(probe.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << probe.status.error_message();
  EXPECT_GE(probe.took, absl::Milliseconds(900));

  // Server 1 comes up on that address: once a probe reaches it, its answer
  // (no such state machine) comes back, and calls go through again.
  hole.Close();
  ShardServerOptions peer_options = options;
  peer_options.core.data_dir = (dir / "1").string();
  peer_options.core.ordinal = 1;
  peer_options.listen_address = hole_address;
  peer_options.peers = {(*server)->address(), ""};
  auto peer = ShardServer::Start(peer_options);
  ASSERT_TRUE(peer.ok()) << peer.status();
  Outcome answered;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  do {
    answered = StartThroughPeer(*stub, arn);
    if (answered.status.error_code() == grpc::StatusCode::NOT_FOUND) break;
    absl::SleepFor(absl::Milliseconds(100));
  } while (absl::Now() < give_up);
  EXPECT_EQ(answered.status.error_code(), grpc::StatusCode::NOT_FOUND)
      << answered.status.error_message();
  std::vector<std::thread> callers;
  std::vector<Outcome> outcomes(4);
  for (size_t i = 0; i < outcomes.size(); ++i) {
    callers.emplace_back([&, i] { outcomes[i] = StartThroughPeer(*stub, arn); });
  }
  for (std::thread& caller : callers) caller.join();
  for (const Outcome& outcome : outcomes) {
    EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::NOT_FOUND)
        << outcome.status.error_message();
  }

  (*peer)->Shutdown();
  (*server)->Shutdown();
  peer->reset();
  server->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stepflow::execution
