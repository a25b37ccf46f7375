#include "common/rpc/server.h"

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/rpc/status.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/method_handler.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"

namespace stepflow::rpc {
namespace {

constexpr char kEcho[] = "/stepflow.test.Echo/Echo";
constexpr char kHealthCheck[] = "/grpc.health.v1.Health/Check";
// Serialized grpc.health.v1.HealthCheckResponse{status: SERVING / NOT_SERVING}.
const std::string kServing("\x08\x01", 2);
const std::string kNotServing("\x08\x02", 2);

std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

// A sync service on raw bytes (no generated code). Requests:
//   "aws"   -> NOT_FOUND StateMachineDoesNotExist
//   "block" -> waits until the call is cancelled
//   other   -> echoed
class TestService : public grpc::Service {
 public:
  TestService() {
    AddMethod(new grpc::internal::RpcServiceMethod(
        kEcho, grpc::internal::RpcMethod::NORMAL_RPC,
        new grpc::internal::RpcMethodHandler<TestService, grpc::ByteBuffer,
                                             grpc::ByteBuffer>(
            [](TestService* self, grpc::ServerContext* context,
               const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
              return self->Handle(context, *request, response);
            },
            this)));
  }

  absl::Notification blocked;

 private:
  grpc::Status Handle(grpc::ServerContext* context,
                      const grpc::ByteBuffer& request,
                      grpc::ByteBuffer* response) {
    std::string text = ToString(request);
    if (text == "aws") {
      return ToGrpcStatus(NotFound("StateMachineDoesNotExist",
                                   "State Machine Does Not Exist: 'arn:x'"));
    }
    if (text == "block") {
      if (!blocked.HasBeenNotified()) blocked.Notify();
      while (!context->IsCancelled()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    *response = request;
    return grpc::Status::OK;
  }
};

struct Reply {
  grpc::Status status;
  std::string body;
};

// Unary call of `method` with raw bytes.
Reply Call(const std::shared_ptr<grpc::Channel>& channel,
           const std::string& method, const std::string& payload,
           std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::Slice slice(payload);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  Reply reply;
  reply.status = done.get_future().get();
  reply.body = ToString(response);
  return reply;
}

// Sum of stepflow_rpc_server_handled_total samples carrying all of `labels`.
double Handled(prometheus::Registry& registry,
               const std::map<std::string, std::string>& labels) {
  double total = 0;
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != "stepflow_rpc_server_handled_total") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      size_t matched = 0;
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        auto it = labels.find(label.name);
        if (it != labels.end() && it->second == label.value) ++matched;
      }
      if (matched == labels.size()) total += metric.counter.value;
    }
  }
  return total;
}

class RunningServerTest : public ::testing::Test {
 protected:
  std::unique_ptr<RunningServer> StartServer(const std::string& address) {
    ServerOptions options;
    options.listen_address = address;
    options.component = "test";
    options.registry = &registry_;
    options.services = {&service_};
    absl::StatusOr<std::unique_ptr<RunningServer>> server =
        RunningServer::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  prometheus::Registry registry_;
  TestService service_;
};

TEST_F(RunningServerTest, ServesHealthAndServices) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_NE(server, nullptr);
  EXPECT_GT(server->port(), 0);
  EXPECT_EQ(server->address(), "127.0.0.1:" + std::to_string(server->port()));
  auto channel = MakeChannel(server->address());

  Reply health = Call(channel, kHealthCheck, "");
  ASSERT_TRUE(health.status.ok()) << health.status.error_message();
  EXPECT_EQ(health.body, kServing);

  Reply echo = Call(channel, kEcho, "hello");
  ASSERT_TRUE(echo.status.ok());
  EXPECT_EQ(echo.body, "hello");

  server->SetServing(false);
  EXPECT_EQ(Call(channel, kHealthCheck, "").body, kNotServing);
  server->SetServing(true);
  EXPECT_EQ(Call(channel, kHealthCheck, "").body, kServing);
}

TEST_F(RunningServerTest, InProcessChannelKeepsTheMessageLimits) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_NE(server, nullptr);
  auto channel = server->InProcessChannel();
  Reply echo = Call(channel, kEcho, std::string(6 << 20, 'x'));  // above gRPC's 4 MiB default
  ASSERT_TRUE(echo.status.ok()) << echo.status.error_message();
  EXPECT_EQ(echo.body.size(), size_t{6} << 20);
  EXPECT_EQ(Call(channel, kEcho, std::string(9 << 20, 'x')).status.error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(RunningServerTest, AwsErrorNameCrossesTheWire) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_NE(server, nullptr);
  absl::Status s =
      FromGrpcStatus(Call(MakeChannel(server->address()), kEcho, "aws").status);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorName(s), "StateMachineDoesNotExist");
  EXPECT_EQ(ErrorMessage(s), "State Machine Does Not Exist: 'arn:x'");
}

TEST_F(RunningServerTest, RecordsMetricsWithComponentAndMethodNames) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_NE(server, nullptr);
  auto channel = MakeChannel(server->address());
  ASSERT_TRUE(Call(channel, kHealthCheck, "").status.ok());
  ASSERT_TRUE(Call(channel, kEcho, "x").status.ok());
  ASSERT_EQ(Call(channel, kEcho, "aws").status.error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(
      Call(channel, "/stepflow.test.Echo/Missing", "").status.error_code(),
      grpc::StatusCode::UNIMPLEMENTED);

  EXPECT_EQ(Handled(registry_, {{"component", "test"},
                                {"service", "grpc.health.v1.Health"},
                                {"method", "Check"},
                                {"code", "OK"}}),
            1);
  EXPECT_EQ(Handled(registry_, {{"component", "test"},
                                {"service", "stepflow.test.Echo"},
                                {"method", "Echo"},
                                {"code", "NOT_FOUND"}}),
            1);
  // Unknown methods keep their names (the health service is a callback
  // service, so gRPC routes them through its generic handler).
  EXPECT_EQ(Handled(registry_, {{"component", "test"},
                                {"service", "stepflow.test.Echo"},
                                {"method", "Missing"},
                                {"code", "UNIMPLEMENTED"}}),
            1);
}

TEST_F(RunningServerTest, EnforcesEightMiBMessages) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_NE(server, nullptr);
  auto channel = MakeChannel(server->address());
  Reply big = Call(channel, kEcho, std::string(7 << 20, 'x'));
  ASSERT_TRUE(big.status.ok()) << big.status.error_message();
  EXPECT_EQ(big.body.size(), size_t{7 << 20});
  EXPECT_EQ(Call(channel, kEcho, std::string(9 << 20, 'x')).status.error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(RunningServerTest, WildcardAddressIsDialledViaLoopback) {
  auto server = StartServer("0.0.0.0:0");
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->address(), "127.0.0.1:" + std::to_string(server->port()));
  EXPECT_TRUE(Call(MakeChannel(server->address()), kEcho, "x").status.ok());
}

TEST_F(RunningServerTest, BusyPortAndBadAddressFail) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_NE(server, nullptr);
  TestService other_service;
  ServerOptions options;
  options.listen_address = server->address();
  options.services = {&other_service};
  absl::StatusOr<std::unique_ptr<RunningServer>> second =
      RunningServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable)
      << second.status();
  // The first server is unaffected.
  EXPECT_TRUE(Call(MakeChannel(server->address()), kEcho, "x").status.ok());

  ServerOptions no_address;
  no_address.services = {&other_service};
  EXPECT_EQ(RunningServer::Start(no_address).status().code(),
            absl::StatusCode::kInvalidArgument);
  ServerOptions no_services;
  no_services.listen_address = "127.0.0.1:0";
  EXPECT_EQ(RunningServer::Start(no_services).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RunningServerTest, ShutdownStopsServingAndIsIdempotent) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_NE(server, nullptr);
  auto channel = MakeChannel(server->address());
  ASSERT_TRUE(Call(channel, kEcho, "x").status.ok());

  server->Shutdown(absl::Seconds(1));
  server->Shutdown(absl::Seconds(1));
  server->SetServing(true);  // Ignored.
  Reply after = Call(MakeChannel(server->address()), kEcho, "x",
                     std::chrono::milliseconds(500));
  EXPECT_FALSE(after.status.ok());
}

TEST_F(RunningServerTest, ShutdownCancelsCallsStillRunningAtTheDeadline) {
  auto server = StartServer("127.0.0.1:0");
  ASSERT_NE(server, nullptr);
  auto channel = MakeChannel(server->address());
  std::future<Reply> blocked = std::async(std::launch::async, [&] {
    return Call(channel, kEcho, "block", std::chrono::seconds(30));
  });
  service_.blocked.WaitForNotification();

  auto start = std::chrono::steady_clock::now();
  server->Shutdown(absl::Milliseconds(100));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(blocked.get().status.ok());
}

TEST(MakeChannelTest, ConnectsLazilyToTarget) {
  auto channel = MakeChannel("127.0.0.1:1");
  ASSERT_NE(channel, nullptr);
  // Nothing listens on port 1: the call fails rather than hanging.
  EXPECT_EQ(Call(channel, kEcho, "x", std::chrono::milliseconds(300))
                .status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace stepflow::rpc
