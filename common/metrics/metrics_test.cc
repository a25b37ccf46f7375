#include "common/metrics/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/metrics/rpc_metrics.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/codegen/server_callback_handlers.h"
#include "grpcpp/support/method_handler.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"

namespace stepflow::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

// --------------------------------------------------------------- HTTP / text

// GET http://127.0.0.1:port/path with a raw socket; returns the body.
std::string HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    ADD_FAILURE() << "connect to port " << port << " failed";
    return "";
  }
  // HTTP/1.0: the server closes the connection after one plain response.
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  EXPECT_EQ(::send(fd, request.data(), request.size(), 0),
            static_cast<ssize_t>(request.size()));
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
  ::close(fd);
  EXPECT_THAT(response, HasSubstr(" 200 "));
  size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// The value of the sample `name{labels}` on a Prometheus text page, where
// the sample must carry exactly `labels` (in any order).
std::optional<double> Sample(const std::string& page, const std::string& name,
                             const std::map<std::string, std::string>& labels) {
  std::istringstream lines(page);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t brace = line.find('{');
    if (brace == std::string::npos || line.substr(0, brace) != name) continue;
    size_t close = line.find('}', brace);
    std::map<std::string, std::string> got;
    std::string body = line.substr(brace + 1, close - brace - 1);
    size_t pos = 0;
    while (pos < body.size()) {
      size_t eq = body.find("=\"", pos);
      size_t end = body.find('"', eq + 2);
      got[body.substr(pos, eq - pos)] = body.substr(eq + 2, end - eq - 2);
      pos = end + 2;  // Skip `",`.
    }
    if (got == labels) return std::stod(line.substr(close + 2));
  }
  return std::nullopt;
}

// ------------------------------------------------------------ test services

constexpr char kEchoMethod[] = "/stepflow.test.Echo/Echo";

// Echoes its request; a request of "missing" fails with NOT_FOUND.
grpc::Status Echo(const grpc::ByteBuffer& request, grpc::ByteBuffer* response) {
  std::vector<grpc::Slice> slices;
  if (!request.Dump(&slices).ok()) return grpc::Status(grpc::INTERNAL, "dump");
  std::string text;
  for (const grpc::Slice& s : slices) {
    text.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (text == "missing") return grpc::Status(grpc::NOT_FOUND, "no such thing");
  *response = request;
  return grpc::Status::OK;
}

// One unary method on raw bytes, so no generated code is needed; handled on
// the sync or on the callback API.
class EchoService : public grpc::Service {
 public:
  explicit EchoService(bool callback) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        kEchoMethod, grpc::internal::RpcMethod::NORMAL_RPC,
        new grpc::internal::RpcMethodHandler<EchoService, grpc::ByteBuffer,
                                             grpc::ByteBuffer>(
            [](EchoService*, grpc::ServerContext*,
               const grpc::ByteBuffer* request,
               grpc::ByteBuffer* response) { return Echo(*request, response); },
            this)));
    if (callback) {
      MarkMethodCallback(
          0,
          new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer,
                                                   grpc::ByteBuffer>(
              [](grpc::CallbackServerContext* context,
                 const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
                grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
                reactor->Finish(Echo(*request, response));
                return reactor;
              }));
    }
  }
};

grpc::ByteBuffer Bytes(const std::string& s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

// A unary call of `method` with raw bytes through the generic stub.
grpc::Status Call(grpc::Channel* channel, const std::string& method,
                  const std::string& payload) {
  grpc::GenericStub stub(
      std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  grpc::ByteBuffer request = Bytes(payload);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

// An in-process gRPC server with EchoService and the metrics interceptor.
struct TestServer {
  TestServer(bool callback, bool health, prometheus::Registry& registry,
             const std::string& component)
      : service(callback) {
    // Global in gRPC; read when the server is built.
    grpc::EnableDefaultHealthCheckService(health);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service);
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        creators;
    creators.push_back(
        MakeServerMetricsInterceptorFactory(registry, component));
    builder.experimental().SetInterceptorCreators(std::move(creators));
    server = builder.BuildAndStart();
    grpc::EnableDefaultHealthCheckService(false);
    EXPECT_NE(server, nullptr);
    EXPECT_GT(port, 0);
    channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                  grpc::InsecureChannelCredentials());
  }
  ~TestServer() {
    if (server != nullptr) server->Shutdown();
  }

  EchoService service;
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::Channel> channel;
};

// A TestServer plus a metrics page for its registry.
class RpcMetricsFixture : public ::testing::Test {
 protected:
  void Start(bool callback, bool health) {
    server_ =
        std::make_unique<TestServer>(callback, health, *registry_, "test");
    ASSERT_NE(server_->server, nullptr);
    channel_ = server_->channel;
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics =
        MetricsServer::Start("127.0.0.1:0", registry_);
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    metrics_ = *std::move(metrics);
  }

  std::optional<double> Handled(const std::string& service,
                                const std::string& method,
                                const std::string& code) {
    return Sample(HttpGet(metrics_->port(), "/metrics"),
                  "stepflow_rpc_server_handled_total",
                  {{"component", "test"},
                   {"service", service},
                   {"method", method},
                   {"code", code}});
  }

  std::shared_ptr<prometheus::Registry> registry_ =
      std::make_shared<prometheus::Registry>();
  std::unique_ptr<TestServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<MetricsServer> metrics_;
};

// Run against a sync (false) and a callback (true) service.
class RpcMetricsTest : public RpcMetricsFixture,
                       public ::testing::WithParamInterface<bool> {};

TEST_P(RpcMetricsTest, CountsCodesAndLatencyPerMethod) {
  const bool callback = GetParam();
  Start(callback, /*health=*/false);

  EXPECT_TRUE(Call(channel_.get(), kEchoMethod, "hello").ok());
  EXPECT_TRUE(Call(channel_.get(), kEchoMethod, "again").ok());
  EXPECT_EQ(Call(channel_.get(), kEchoMethod, "missing").error_code(),
            grpc::NOT_FOUND);
  EXPECT_EQ(Call(channel_.get(), "/stepflow.test.Nope/Gone", "").error_code(),
            grpc::UNIMPLEMENTED);

  std::string page = HttpGet(metrics_->port(), "/metrics");
  EXPECT_THAT(Sample(page, "stepflow_rpc_server_handled_total",
                     {{"component", "test"},
                      {"service", "stepflow.test.Echo"},
                      {"method", "Echo"},
                      {"code", "OK"}}),
              Optional(2.0))
      << page;
  EXPECT_THAT(Sample(page, "stepflow_rpc_server_handled_total",
                     {{"component", "test"},
                      {"service", "stepflow.test.Echo"},
                      {"method", "Echo"},
                      {"code", "NOT_FOUND"}}),
              Optional(1.0));
  // A server without any callback method answers unknown methods on gRPC's
  // sync path, which does not tell interceptors the method name.
  const std::string unknown_service =
      callback ? "stepflow.test.Nope" : "unknown";
  const std::string unknown_method = callback ? "Gone" : "unknown";
  EXPECT_THAT(Sample(page, "stepflow_rpc_server_handled_total",
                     {{"component", "test"},
                      {"service", unknown_service},
                      {"method", unknown_method},
                      {"code", "UNIMPLEMENTED"}}),
              Optional(1.0))
      << page;
  EXPECT_THAT(Sample(page, "stepflow_rpc_server_handling_seconds_count",
                     {{"component", "test"},
                      {"service", "stepflow.test.Echo"},
                      {"method", "Echo"}}),
              Optional(3.0));
  // Buckets reach from 50us to 60s.
  EXPECT_THAT(Sample(page, "stepflow_rpc_server_handling_seconds_bucket",
                     {{"component", "test"},
                      {"service", "stepflow.test.Echo"},
                      {"method", "Echo"},
                      {"le", "60"}}),
              Optional(3.0));
  EXPECT_TRUE(Sample(page, "stepflow_rpc_server_handling_seconds_bucket",
                     {{"component", "test"},
                      {"service", "stepflow.test.Echo"},
                      {"method", "Echo"},
                      {"le", "5e-05"}})
                  .has_value())
      << page;
}

TEST_P(RpcMetricsTest, CountsHealthChecks) {
  Start(GetParam(), /*health=*/true);
  // grpc.health.v1.HealthCheckRequest{service: ""} is the empty message.
  EXPECT_TRUE(Call(channel_.get(), "/grpc.health.v1.Health/Check", "").ok());
  EXPECT_EQ(Call(channel_.get(), "/stepflow.test.Nope/Gone", "").error_code(),
            grpc::UNIMPLEMENTED);
  EXPECT_THAT(Handled("grpc.health.v1.Health", "Check", "OK"), Optional(1.0));
  EXPECT_THAT(Handled("stepflow.test.Nope", "Gone", "UNIMPLEMENTED"),
              Optional(1.0));
  EXPECT_EQ(Handled("grpc.health.v1.Health", "Check", "CANCELLED"),
            std::nullopt);
}

TEST_F(RpcMetricsFixture, CapsDistinctMethodNames) {
  Start(/*callback=*/true, /*health=*/false);
  // The first 1000 names get series of their own, the rest share "other".
  for (int i = 0; i < 1003; ++i) {
    ASSERT_EQ(
        Call(channel_.get(), "/probe.S/M" + std::to_string(i), "").error_code(),
        grpc::UNIMPLEMENTED);
  }
  EXPECT_THAT(Handled("probe.S", "M999", "UNIMPLEMENTED"), Optional(1.0));
  EXPECT_EQ(Handled("probe.S", "M1000", "UNIMPLEMENTED"), std::nullopt);
  EXPECT_THAT(Handled("other", "other", "UNIMPLEMENTED"), Optional(3.0));
}

INSTANTIATE_TEST_SUITE_P(SyncAndCallback, RpcMetricsTest,
                         ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Callback" : "Sync";
                         });

TEST(RpcMetricsFactoryTest, ComponentsShareOneRegistry) {
  prometheus::Registry registry;
  TestServer a(/*callback=*/true, /*health=*/false, registry, "a");
  TestServer b(/*callback=*/false, /*health=*/false, registry, "b");
  EXPECT_TRUE(Call(a.channel.get(), kEchoMethod, "x").ok());
  EXPECT_TRUE(Call(b.channel.get(), kEchoMethod, "x").ok());
  EXPECT_TRUE(Call(b.channel.get(), kEchoMethod, "y").ok());

  // One family each for the counter and the histogram, holding both
  // components' series.
  std::vector<prometheus::MetricFamily> families = registry.Collect();
  ASSERT_EQ(families.size(), 2u);
  const prometheus::MetricFamily& handled =
      families[0].name == "stepflow_rpc_server_handled_total" ? families[0]
                                                              : families[1];
  std::map<std::string, double> by_component;
  for (const prometheus::ClientMetric& metric : handled.metric) {
    for (const prometheus::ClientMetric::Label& label : metric.label) {
      if (label.name == "component") {
        by_component[label.value] += metric.counter.value;
      }
    }
  }
  EXPECT_EQ(by_component, (std::map<std::string, double>{{"a", 1}, {"b", 2}}));
}

TEST(GrpcCodeNameTest, NamesEveryCode) {
  EXPECT_EQ(GrpcCodeName(0), "OK");
  EXPECT_EQ(GrpcCodeName(5), "NOT_FOUND");
  EXPECT_EQ(GrpcCodeName(12), "UNIMPLEMENTED");
  EXPECT_EQ(GrpcCodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(GrpcCodeName(17), "UNKNOWN");
  EXPECT_EQ(GrpcCodeName(-1), "UNKNOWN");
}

TEST(MetricsServerTest, ServesRegistryOnAFreePort) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("stepflow_test_things_total")
      .Help("Things.")
      .Register(*registry)
      .Add({{"kind", "widget"}})
      .Increment(3);
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  std::string page = HttpGet((*server)->port(), "/metrics");
  EXPECT_THAT(Sample(page, "stepflow_test_things_total", {{"kind", "widget"}}),
              Optional(3.0));
  EXPECT_THAT(page, HasSubstr("# TYPE stepflow_test_things_total counter"));

  // The port is taken while the first server runs.
  absl::StatusOr<std::unique_ptr<MetricsServer>> clash = MetricsServer::Start(
      "127.0.0.1:" + std::to_string((*server)->port()), registry);
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kUnavailable);
}

TEST(MetricsServerTest, RejectsNullRegistry) {
  EXPECT_EQ(MetricsServer::Start("127.0.0.1:0", nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace stepflow::metrics
