// RunningServer: a started gRPC server set up the way every Stepflow
// service needs it, and MakeChannel, the matching client channel.
//
// A server gets the standard health service (grpc.health.v1.Health, SERVING
// once started), the RPC metrics interceptor (common/metrics/rpc_metrics.h),
// 8 MiB message limits, keepalive settings that match MakeChannel, and
// exclusive use of its port (no SO_REUSEPORT, so a second server on a busy
// port fails instead of silently sharing it).
//
//   GatewayServiceImpl gateway(...);
//   rpc::ServerOptions options;
//   options.listen_address = "0.0.0.0:7233";   // or "127.0.0.1:0" in tests
//   options.component = "gateway";
//   options.registry = registry.get();
//   options.services = {&gateway};
//   ASSIGN_OR_RETURN(std::unique_ptr<rpc::RunningServer> server,
//                    rpc::RunningServer::Start(std::move(options)));
//   auto channel = rpc::MakeChannel(server->address());
//   ...
//   server->Shutdown(absl::Seconds(5));   // health NOT_SERVING, drain, stop
//
// Thread-safety: all methods may be called concurrently. The services and
// the registry are not owned and must outlive the RunningServer.
#ifndef STEPFLOW_COMMON_RPC_SERVER_H_
#define STEPFLOW_COMMON_RPC_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace grpc {
class Channel;
class Server;
class Service;
}  // namespace grpc

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace stepflow::rpc {

// Message size limit of servers and channels, both directions.
inline constexpr int kMaxMessageBytes = 8 << 20;

struct ServerOptions {
  // "host:port"; port 0 picks a free port (see RunningServer::port()).
  std::string listen_address;
  // Value of the component="..." label of the RPC metrics; used in logs.
  std::string component;
  // Where the RPC metrics go; none are recorded if null.
  prometheus::Registry* registry = nullptr;
  // Services to register (sync, callback or mixed); at least one.
  std::vector<grpc::Service*> services;
};

class RunningServer {
 public:
  // Builds and starts the server. UNAVAILABLE if the address cannot be
  // bound, INVALID_ARGUMENT for an empty address or no services.
  //
  // Enables gRPC's process-wide default health service flag
  // (grpc::EnableDefaultHealthCheckService), which every server in the
  // process built afterwards then also gets.
  static absl::StatusOr<std::unique_ptr<RunningServer>> Start(
      ServerOptions options);

  RunningServer(const RunningServer&) = delete;
  RunningServer& operator=(const RunningServer&) = delete;
  // Shuts down with a 1 s grace period if Shutdown was not called.
  ~RunningServer();

  // The bound port.
  int port() const { return port_; }
  // "host:port" that a client on this machine can dial: the listen host
  // (wildcards 0.0.0.0 / [::] replaced by 127.0.0.1) and the bound port.
  std::string address() const { return address_; }

  // Sets the health status of every service ("" included). Ignored after
  // Shutdown.
  void SetServing(bool serving);

  // Reports NOT_SERVING, stops accepting calls, waits up to `deadline` for
  // running calls to finish, then cancels the rest and returns once all
  // handlers are done. Later calls do nothing.
  void Shutdown(absl::Duration deadline);

  // The underlying server, e.g. for in-process channels. Owned by this.
  grpc::Server* server() { return server_.get(); }
  // A channel to this server within the process (no socket, no HTTP/2
  // framing), with the same 8 MiB message limits.
  std::shared_ptr<grpc::Channel> InProcessChannel();

 private:
  RunningServer(std::unique_ptr<grpc::Server> server, int port,
                std::string address, std::string component);

  const std::unique_ptr<grpc::Server> server_;
  const int port_;
  const std::string address_;
  const std::string component_;

  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

// A channel to `target` ("host:port" or any gRPC target URI) with insecure
// credentials, 8 MiB message limits, keepalive pings every 30 s (also when
// idle, so dead peers are noticed before the next call) and reconnect
// backoff capped at 5 s, so clients find a restarted service quickly.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target);

}  // namespace stepflow::rpc

#endif  // STEPFLOW_COMMON_RPC_SERVER_H_
