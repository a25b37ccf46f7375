#include "common/rpc/server.h"

#include <chrono>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/metrics/rpc_metrics.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/channel_arguments.h"

namespace stepflow::rpc {
namespace {

// Client keepalive: ping every 30 s even without calls. The server must
// accept pings that often or it closes the connection ("too_many_pings").
constexpr int kClientKeepaliveMs = 30'000;
constexpr int kKeepaliveTimeoutMs = 10'000;
constexpr int kServerMinPingIntervalMs = 10'000;
// The server pings idle clients less often, only to reap dead connections.
constexpr int kServerKeepaliveMs = 60'000;
constexpr int kMaxReconnectBackoffMs = 5'000;

constexpr absl::Duration kDestructorGrace = absl::Seconds(1);
// Idle call threads a server keeps (see RunningServer::Start).
constexpr int kMaxIdleServerThreads = 64;

// "0.0.0.0:0" + 4711 -> "127.0.0.1:4711"; "[::1]:0" -> "[::1]:4711".
std::string DialAddress(const std::string& listen_address, int port) {
  size_t colon = listen_address.rfind(':');
  std::string host =
      colon == std::string::npos ? "" : listen_address.substr(0, colon);
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::" ||
      host == "*") {
    host = "127.0.0.1";
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RunningServer>> RunningServer::Start(
    ServerOptions options) {
  if (options.listen_address.empty()) {
    return absl::InvalidArgumentError("ServerOptions.listen_address is empty");
  }
  // gRPC refuses to build a server without services of ours (the health
  // service does not count), with only a log line as explanation.
  if (options.services.empty()) {
    return absl::InvalidArgumentError("ServerOptions.services is empty");
  }
  grpc::EnableDefaultHealthCheckService(true);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen_address,
                           grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, kServerKeepaliveMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             kKeepaliveTimeoutMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      kServerMinPingIntervalMs);
  // The synchronous server runs each call on a thread of its pool and, by
  // default, lets a thread exit once more than two are idle: under load
  // with calls that block (a WAL fsync, a long poll) that means a thread
  // created and torn down per call. Keeping idle threads for a few dozen
  // concurrent calls removes that churn; an idle thread sleeps in the
  // completion queue and costs no CPU.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 2);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                              kMaxIdleServerThreads);
  for (grpc::Service* service : options.services) {
    builder.RegisterService(service);
  }
  if (options.registry != nullptr) {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        creators;
    creators.push_back(metrics::MakeServerMetricsInterceptorFactory(
        *options.registry, options.component));
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }

  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot start gRPC server for ", options.component, " on ",
                     options.listen_address, " (address in use or invalid?)"));
  }
  std::string address = DialAddress(options.listen_address, port);
  log::Info("rpc", "server started",
            {{"component", options.component},
             {"listen", options.listen_address},
             {"address", address}});
  auto running = std::unique_ptr<RunningServer>(new RunningServer(
      std::move(server), port, std::move(address), options.component));
  running->SetServing(true);
  return running;
}

RunningServer::RunningServer(std::unique_ptr<grpc::Server> server, int port,
                             std::string address, std::string component)
    : server_(std::move(server)),
      port_(port),
      address_(std::move(address)),
      component_(std::move(component)) {}

RunningServer::~RunningServer() { Shutdown(kDestructorGrace); }

void RunningServer::SetServing(bool serving) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus(serving);
}

void RunningServer::Shutdown(absl::Duration deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    grpc::HealthCheckServiceInterface* health =
        server_->GetHealthCheckService();
    // Permanently NOT_SERVING, and ends the health Watch streams.
    if (health != nullptr) health->Shutdown();
  }
  log::Info("rpc", "server shutting down",
            {{"component", component_}, {"address", address_}});
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoNanoseconds(deadline));
  server_->Wait();
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kClientKeepaliveMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectBackoffMs);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

std::shared_ptr<grpc::Channel> RunningServer::InProcessChannel() {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(kMaxMessageBytes);
  arguments.SetMaxSendMessageSize(kMaxMessageBytes);
  return server_->InProcessChannel(arguments);
}

}  // namespace stepflow::rpc
