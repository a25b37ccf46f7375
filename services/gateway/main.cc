// stepflow-gateway: the public gRPC API of a Stepflow cluster.
#include <iostream>

#include "common/config/flags.h"
#include "common/config/sharding.h"
#include "common/config/signals.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "prometheus/registry.h"
#include "services/gateway/gateway.h"

int main(int argc, char** argv) {
  using namespace stepflow;
  config::BlockTerminationSignals();
  std::string shard_servers = "127.0.0.1:7300";
  int shards = static_cast<int>(config::kDefaultShardCount);
  int task_queue_partitions = config::kDefaultTaskQueuePartitions;
  std::string listen = "0.0.0.0:7233";
  std::string metrics_listen;
  std::string region = "us-east-1";
  std::string account = "123456789012";
  std::string log_level = "info";
  std::string log_format = "text";

  config::FlagSet flags(
      "stepflow-gateway",
      "Serves Stepflow's public gRPC API (stepflow.v1.StepFunctions and\n"
      "stepflow.v1.EventBridge). Stateless: it validates requests and routes each to\n"
      "the shard server owning the named resource; run as many replicas as needed.");
  flags.Add("shard-servers", &shard_servers,
            "comma-separated shard server addresses by ordinal (host:port); server i owns "
            "logical shards s with s % N == i");
  flags.Add("shards", &shards, "number of logical shards; must match the shard servers");
  flags.Add("task-queue-partitions", &task_queue_partitions,
            "partitions of every activity's task queue; must match the shard servers");
  flags.Add("listen", &listen, "gRPC listen address (port 0 picks a free port)");
  flags.Add("metrics-listen", &metrics_listen,
            "address for the Prometheus /metrics endpoint, e.g. 0.0.0.0:9233 (empty: off)");
  flags.Add("region", &region, "region used in ARNs");
  flags.Add("account", &account, "account id used in ARNs");
  flags.Add("log-level", &log_level, "debug, info, warn or error");
  flags.Add("log-format", &log_format, "text or json");
  if (auto code = flags.ParseOrExit(argc, argv)) return *code;

  auto level = log::ParseLevel(log_level);
  if (!level.ok()) {
    std::cerr << "stepflow-gateway: " << level.status().message() << "\n";
    return 2;
  }
  log::SetMinLevel(*level);
  log::SetFormat(log_format == "json" ? log::Format::kJson : log::Format::kText);

  auto map = config::ShardMap::Parse(static_cast<uint32_t>(shards), shard_servers);
  if (!map.ok()) {
    std::cerr << "stepflow-gateway: " << map.status().message() << "\n";
    return 2;
  }
  auto registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (!metrics_listen.empty()) {
    auto started = metrics::MetricsServer::Start(metrics_listen, registry);
    if (!started.ok()) {
      std::cerr << "stepflow-gateway: " << started.status() << "\n";
      return 1;
    }
    metrics_server = std::move(*started);
  }
  gateway::GatewayOptions options;
  options.shard_map = std::move(*map);
  if (task_queue_partitions < 1 || task_queue_partitions > config::kMaxTaskQueuePartitions) {
    std::cerr << "stepflow-gateway: --task-queue-partitions must be 1.."
              << config::kMaxTaskQueuePartitions << "\n";
    return 2;
  }
  options.task_queue_partitions = task_queue_partitions;
  options.arn_scope.region = region;
  options.arn_scope.account = account;
  options.listen_address = listen;
  options.registry = registry.get();
  auto gateway = gateway::Gateway::Start(std::move(options));
  if (!gateway.ok()) {
    std::cerr << "stepflow-gateway: " << gateway.status().message() << "\n";
    return 1;
  }
  std::cout << "stepflow-gateway listening on " << (*gateway)->address() << std::endl;
  int signal_number = config::WaitForTerminationSignal();
  log::Info("gateway", "shutting down", {{"signal", signal_number}});
  (*gateway)->Shutdown();
  return 0;
}
