// The gateway: Stepflow's stateless public front door. It serves the
// stepflow.v1 StepFunctions and EventBridge APIs (the latter in
// event_bridge.h, over Kafka), validates every request
// (names, ARNs, sizes, JSON, definitions) and routes it to the shard server
// that owns the named resource, retrying UNAVAILABLE owners with backoff
// within the caller's deadline. Listings fan out to every shard server and
// merge.
//
//   GatewayOptions options;
//   options.shard_map = config::ShardMap(256, {"10.0.0.1:7300", "10.0.0.2:7300"});
//   auto gateway = Gateway::Start(options);
//
// Thread-safe; holds no state beyond connections and the event bus catalog
// (an in-memory view of a Kafka topic).
#ifndef STEPFLOW_SERVICES_GATEWAY_GATEWAY_H_
#define STEPFLOW_SERVICES_GATEWAY_GATEWAY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/arn.h"
#include "common/config/sharding.h"
#include "common/kafka/topic_admin.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace grpc {
class Service;
}  // namespace grpc
namespace prometheus {
class Registry;
}  // namespace prometheus

namespace stepflow::gateway {

struct GatewayOptions {
  config::ShardMap shard_map{config::kDefaultShardCount, {}};
  // Channels to the shard servers, in shard_map's order, used instead of
  // dialing their addresses (an all-in-one process passes in-process
  // channels). Empty: dial.
  std::vector<std::shared_ptr<grpc::Channel>> shard_channels;
  // Shard services in this process (ShardServer::service()), in
  // shard_map's order (null: none for that server): unary calls to them
  // are made directly, without gRPC; streams and watches still use the
  // channels. Must outlive the gateway.
  std::vector<grpc::Service*> local_shard_services;
  config::ArnScope arn_scope;
  std::string listen_address = "0.0.0.0:7233";
  prometheus::Registry* registry = nullptr;  // RPC metrics; must outlive the gateway
  // Serve on a server of the caller's instead of starting one.
  bool embedded = false;
  // Partitions of every activity's task queue; the same as the shard
  // servers'.
  int task_queue_partitions = config::kDefaultTaskQueuePartitions;
  // Names executions started without one; a random UUID by default. Must
  // never repeat a name: shards take a generated name as unused.
  std::function<std::string()> new_execution_name;

  // Kafka, for the EventBridge API (librdkafka `bootstrap.servers`). Empty:
  // every EventBridge call but TestEventPattern answers UNAVAILABLE.
  std::string kafka_brokers;
  // How the topics of new event buses are created (kafka::TopicAdmin).
  kafka::TopicCreation kafka_topic_creation = kafka::TopicCreation::kAdminApi;
  // With kEmbedded: the in-process broker. Not owned; must outlive the gateway.
  kafka::MockKafkaCluster* embedded_kafka = nullptr;
  // Partition count of each new event bus topic.
  int event_bus_partitions = 4;
};

class Gateway {
 public:
  static absl::StatusOr<std::unique_ptr<Gateway>> Start(GatewayOptions options);
  ~Gateway();

  // The public services, for embedding (with `embedded`).
  std::vector<grpc::Service*> services();
  int port() const;
  std::string address() const;
  // A channel to this gateway within the process (no socket); null when
  // embedded.
  std::shared_ptr<grpc::Channel> InProcessChannel();
  void Shutdown();

 private:
  class Impl;
  explicit Gateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Maximum size of inputs, outputs and other JSON payloads (AWS: 256 KiB).
inline constexpr size_t kMaxPayloadBytes = 256 * 1024;
// Maximum size of a state machine definition (AWS: 1 MiB).
inline constexpr size_t kMaxDefinitionBytes = 1024 * 1024;

}  // namespace stepflow::gateway

#endif  // STEPFLOW_SERVICES_GATEWAY_GATEWAY_H_
