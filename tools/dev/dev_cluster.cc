#include "tools/dev/dev_cluster.h"

#include <cstdlib>
#include <filesystem>

#include "common/clock/clock.h"
#include "common/config/sharding.h"
#include "common/kafka/mock_cluster.h"
#include "common/metrics/metrics.h"
#include "common/status/status_macros.h"
#include "prometheus/registry.h"
#include "services/eventbus/eventbus_server.h"
#include "services/execution/shard_service.h"
#include "services/gateway/gateway.h"

namespace stepflow::dev {

// Members are destroyed bottom-up: servers before what they use (the
// broker, the clock, the registry).
class DevCluster::Impl {
 public:
  DevClusterOptions options;
  std::shared_ptr<prometheus::Registry> registry =
      std::make_shared<prometheus::Registry>();
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::unique_ptr<kafka::MockKafkaCluster> kafka;
  clock::RealClock clock;
  std::unique_ptr<execution::ShardServer> shard;
  std::unique_ptr<gateway::Gateway> gateway;
  std::unique_ptr<eventbus::EventBusServer> eventbus;
  bool shut_down = false;
};

absl::StatusOr<std::unique_ptr<DevCluster>> DevCluster::Start(
    DevClusterOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const DevClusterOptions& opts = impl->options;

  std::error_code error;
  std::filesystem::create_directories(opts.data_dir, error);
  if (error) {
    return absl::InternalError("cannot create " + opts.data_dir + ": " +
                               error.message());
  }
  if (!opts.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(
        impl->metrics_server,
        metrics::MetricsServer::Start(opts.metrics_listen, impl->registry));
  }
  if (opts.with_eventbus) {
    ASSIGN_OR_RETURN(impl->kafka, kafka::MockKafkaCluster::Start());
  }

  execution::ShardServerOptions shard_options;
  shard_options.core.data_dir =
      (std::filesystem::path(opts.data_dir) / "shard-0").string();
  shard_options.core.shard_count = static_cast<uint32_t>(opts.shards);
  shard_options.core.clock = &impl->clock;
  shard_options.core.on_store_failure = opts.on_store_failure;
  if (const char* secret = std::getenv("STEPFLOW_TOKEN_SECRET")) {
    shard_options.core.token_secret = secret;
  }
  shard_options.listen_address = opts.shard_listen;
  if (opts.with_eventbus) shard_options.kafka_brokers = impl->kafka->bootstrap_servers();
  shard_options.registry = impl->registry.get();
  ASSIGN_OR_RETURN(impl->shard,
                   execution::ShardServer::Start(std::move(shard_options)));

  gateway::GatewayOptions gateway_options;
  gateway_options.shard_map = config::ShardMap(
      static_cast<uint32_t>(opts.shards), {impl->shard->address()});
  // One process: the gateway reaches the shard server without a socket.
  gateway_options.shard_channels = {impl->shard->InProcessChannel()};
  gateway_options.local_shard_services = {impl->shard->service()};
  gateway_options.listen_address = opts.gateway_listen;
  gateway_options.registry = impl->registry.get();
  if (opts.with_eventbus) {
    gateway_options.kafka_brokers = impl->kafka->bootstrap_servers();
    gateway_options.kafka_topic_creation = kafka::TopicCreation::kEmbedded;
    gateway_options.embedded_kafka = impl->kafka.get();
    gateway_options.event_bus_partitions = opts.event_bus_partitions;
  }
  ASSIGN_OR_RETURN(impl->gateway,
                   gateway::Gateway::Start(std::move(gateway_options)));

  if (opts.with_eventbus) {
    eventbus::EventBusOptions eventbus_options;
    eventbus_options.kafka_brokers = impl->kafka->bootstrap_servers();
    eventbus_options.listen_address = opts.eventbus_listen;
    eventbus_options.embedded_kafka = impl->kafka.get();
    eventbus_options.gateway_address = impl->gateway->address();
    // One process: the eventbus starts executions without a socket.
    eventbus_options.gateway_channel = impl->gateway->InProcessChannel();
    ASSIGN_OR_RETURN(impl->eventbus, eventbus::EventBusServer::Start(
                                         std::move(eventbus_options)));
  }
  return std::unique_ptr<DevCluster>(new DevCluster(std::move(impl)));
}

DevCluster::DevCluster(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DevCluster::~DevCluster() { Shutdown(); }

std::string DevCluster::gateway_address() const {
  return impl_->gateway->address();
}
std::string DevCluster::shard_address() const {
  return impl_->shard->address();
}
std::string DevCluster::eventbus_address() const {
  return impl_->eventbus ? impl_->eventbus->address() : "";
}
std::string DevCluster::kafka_bootstrap_servers() const {
  return impl_->kafka ? impl_->kafka->bootstrap_servers() : "";
}
int DevCluster::metrics_port() const {
  return impl_->metrics_server ? impl_->metrics_server->port() : 0;
}
const prometheus::Registry& DevCluster::registry() const { return *impl_->registry; }
const DevClusterOptions& DevCluster::options() const { return impl_->options; }

void DevCluster::Shutdown() {
  if (impl_->shut_down) return;
  impl_->shut_down = true;
  impl_->gateway->Shutdown();
  if (impl_->eventbus) impl_->eventbus->Shutdown();
  impl_->shard->Shutdown();
}

}  // namespace stepflow::dev
