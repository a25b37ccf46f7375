// DevCluster: the whole Stepflow cluster in this process — gateway, one shard
// server owning every logical shard (RocksDB under a data folder), and
// optionally the eventbus with an embedded Kafka-protocol broker. `stepflow
// dev` runs one until Ctrl-C; `stepflow bench` starts a throw-away one.
//
//   DevClusterOptions options;
//   options.data_dir = "/tmp/stepflow-bench-1234";
//   options.gateway_listen = "127.0.0.1:0";
//   ASSIGN_OR_RETURN(std::unique_ptr<DevCluster> cluster,
//                    DevCluster::Start(std::move(options)));
//   ... dial cluster->gateway_address() ...
//   cluster->Shutdown();   // or let the destructor do it
//
// Thread-safety: the accessors may be called concurrently; Shutdown() once,
// from one thread (later calls do nothing).
#ifndef STEPFLOW_TOOLS_DEV_DEV_CLUSTER_H_
#define STEPFLOW_TOOLS_DEV_DEV_CLUSTER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/config/sharding.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace stepflow::dev {

struct DevClusterOptions {
  // Folder for the shard server's RocksDB data; created if missing.
  std::string data_dir = ".data/dev";
  std::string gateway_listen = "127.0.0.1:7233";
  std::string shard_listen = "127.0.0.1:0";
  std::string eventbus_listen = "127.0.0.1:0";
  // Prometheus /metrics address for the whole process; empty: off.
  std::string metrics_listen;
  int shards = static_cast<int>(config::kDefaultShardCount);
  // Without it no Kafka broker and no eventbus are started (faster start),
  // and the gateway's EventBridge calls answer UNAVAILABLE.
  bool with_eventbus = true;
  // Partition count of each new event bus topic.
  int event_bus_partitions = 4;
  // See execution::ShardCoreOptions::on_store_failure.
  std::function<void(const absl::Status&)> on_store_failure;
};

class DevCluster {
 public:
  static absl::StatusOr<std::unique_ptr<DevCluster>> Start(
      DevClusterOptions options);
  // Calls Shutdown().
  ~DevCluster();

  DevCluster(const DevCluster&) = delete;
  DevCluster& operator=(const DevCluster&) = delete;

  std::string gateway_address() const;
  std::string shard_address() const;
  // Empty without the eventbus.
  std::string eventbus_address() const;
  std::string kafka_bootstrap_servers() const;
  // 0 without a metrics address.
  int metrics_port() const;
  // The process's metrics (all components register there), for readers in
  // the same process.
  const prometheus::Registry& registry() const;
  const DevClusterOptions& options() const;

  // Stops the gateway, the eventbus and the shard server, in that order.
  void Shutdown();

 private:
  class Impl;
  explicit DevCluster(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace stepflow::dev

#endif  // STEPFLOW_TOOLS_DEV_DEV_CLUSTER_H_
