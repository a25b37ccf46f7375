// The gRPC face of a shard server: the internal ShardService over a
// ShardCore, and the Peers implementation that reaches the other shard
// servers (or this one, without a network hop).
//
//   auto server = ShardServer::Start(options);   // core + service + port
//   ...
//   server->Shutdown();
//
// Thread-safe.
#ifndef STEPFLOW_SERVICES_EXECUTION_SHARD_SERVICE_H_
#define STEPFLOW_SERVICES_EXECUTION_SHARD_SERVICE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/execution/shard_core.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace grpc {
class Service;
}  // namespace grpc
namespace prometheus {
class Registry;
}  // namespace prometheus
namespace stepflow::rpc {
class RunningServer;
}  // namespace stepflow::rpc

namespace stepflow::execution {

struct ShardServerOptions {
  ShardCoreOptions core;
  // Where to serve; port 0 picks one.
  std::string listen_address = "0.0.0.0:7300";
  // Address of every shard server by ordinal (this one's entry may be
  // empty: calls to itself stay in process).
  std::vector<std::string> peers;
  // The deadline of each call to another shard server. A call that runs
  // into it marks that server unresponsive: later calls to it fail at once
  // with UNAVAILABLE, one at a time still trying it, until it answers.
  absl::Duration peer_call_timeout = absl::Seconds(10);
  // Kafka brokers of the event bus: execution status changes are published
  // to the default bus (core.status_events_topic) when set.
  std::string kafka_brokers;
  // RPC metrics go here when set; must outlive the server.
  prometheus::Registry* registry = nullptr;
  // Serve the service on a server of the caller's instead of starting one
  // (`stepflow dev` puts every service on one port).
  bool embedded = false;
};

class ShardServer {
 public:
  static absl::StatusOr<std::unique_ptr<ShardServer>> Start(ShardServerOptions options);
  ~ShardServer();

  // The service, for embedding in another server (with `embedded`), or
  // for calls within the process (gateway::GatewayOptions::
  // local_shard_services).
  grpc::Service* service();
  // The bound port and dialable address; 0 / "" when embedded.
  int port() const;
  std::string address() const;
  // A channel to this server within the process (no socket, no HTTP/2
  // framing): what an in-process gateway uses. Null when embedded.
  std::shared_ptr<grpc::Channel> InProcessChannel();

  // Stops serving (when not embedded) and closes the store.
  void Shutdown();

 private:
  class Impl;
  explicit ShardServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace stepflow::execution

#endif  // STEPFLOW_SERVICES_EXECUTION_SHARD_SERVICE_H_
