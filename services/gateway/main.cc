// stepflow-gateway: the public gRPC API of a Stepflow cluster.
#include <iostream>

#include "common/config/flags.h"
#include "common/config/sharding.h"
#include "common/config/process.h"
#include "common/config/signals.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "prometheus/registry.h"
#include "services/gateway/gateway.h"

int main(int argc, char** argv) {
  using namespace stepflow;
  config::PrepareServerProcess();
  std::string shard_servers = "127.0.0.1:7300";
  int shards = static_cast<int>(config::kDefaultShardCount);
  int task_queue_partitions = config::kDefaultTaskQueuePartitions;
  std::string listen = "0.0.0.0:7233";
  std::string metrics_listen;
  std::string region = "us-east-1";
  std::string account = "123456789012";
  std::string log_level = "info";
  std::string log_format = "text";
  std::string kafka_brokers;
  std::string kafka_topic_creation = "admin";
  int event_bus_partitions = 4;

  config::FlagSet flags(
      "stepflow-gateway",
      "Serves Stepflow's public gRPC API (stepflow.v1.StepFunctions and\n"
      "stepflow.v1.EventBridge). Stateless: it validates requests and routes each to\n"
      "the shard server owning the named resource; run as many replicas as needed.\n"
      "Event buses need Kafka (--kafka-brokers): bus, rule and target definitions live\n"
      "in the compacted topic stepflow.eventbus.config, which every replica reads, and\n"
      "each bus's events in the topic stepflow.events.<bus>, created with the bus.");
  flags.Add("shard-servers", &shard_servers,
            "comma-separated shard server addresses by ordinal (host:port); server i owns "
            "logical shards s with s % N == i");
  flags.Add("shards", &shards, "number of logical shards; must match the shard servers");
  flags.Add("task-queue-partitions", &task_queue_partitions,
            "partitions of every activity's task queue; must match the shard servers");
  flags.Add("listen", &listen, "gRPC listen address (port 0 picks a free port)");
  flags.Add("metrics-listen", &metrics_listen,
            "address for the Prometheus /metrics endpoint, e.g. 0.0.0.0:9233 (empty: off)");
  flags.Add("kafka-brokers", &kafka_brokers,
            "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...], for the EventBridge API "
            "(empty: EventBridge calls other than TestEventPattern answer UNAVAILABLE)");
  flags.Add("kafka-topic-creation", &kafka_topic_creation,
            "how topics of new event buses are created: admin (Kafka Admin API, with "
            "--event-bus-partitions) or broker-default (the brokers create topics on first "
            "use with their default partition count, e.g. stepflow-kafka-mock)");
  flags.Add("event-bus-partitions", &event_bus_partitions,
            "partition count of each new event bus topic (with admin topic creation)");
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

  auto topic_creation = kafka::ParseTopicCreation(kafka_topic_creation);
  if (!topic_creation.ok() || *topic_creation == kafka::TopicCreation::kEmbedded) {
    std::cerr << "stepflow-gateway: --kafka-topic-creation must be admin or broker-default\n";
    return 2;
  }
  if (event_bus_partitions < 1) {
    std::cerr << "stepflow-gateway: --event-bus-partitions must be at least 1\n";
    return 2;
  }

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
  options.kafka_brokers = kafka_brokers;
  options.kafka_topic_creation = *topic_creation;
  options.event_bus_partitions = event_bus_partitions;
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
