#include "tools/dev/dev_command.h"

#include <filesystem>
#include <iostream>

#include "common/clock/clock.h"
#include "common/config/flags.h"
#include "common/config/sharding.h"
#include "common/config/signals.h"
#include "common/kafka/mock_cluster.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "prometheus/registry.h"
#include "services/eventbus/eventbus_server.h"
#include "services/execution/shard_service.h"
#include "services/gateway/gateway.h"

namespace stepflow::dev {

int RunDevCommand(int argc, char** argv) {
  config::BlockTerminationSignals();
  std::string data_dir = ".data/dev";
  std::string listen = "127.0.0.1:7233";
  std::string shard_listen = "127.0.0.1:0";
  std::string eventbus_listen = "127.0.0.1:0";
  std::string metrics_listen = "127.0.0.1:9233";
  int shards = static_cast<int>(config::kDefaultShardCount);
  int event_bus_partitions = 4;
  std::string log_level = "info";
  std::string log_format = "text";

  config::FlagSet flags(
      "stepflow dev",
      "Runs a whole Stepflow cluster in this process: the gateway, one shard server\n"
      "owning every logical shard (RocksDB under --data-dir), the eventbus, and an\n"
      "embedded Kafka-protocol broker (librdkafka's mock cluster; its events live in\n"
      "memory only). Executions, histories and the catalog survive a restart; event\n"
      "buses, rules and events live in the embedded broker and do not.\n"
      "Stops cleanly on Ctrl-C.");
  flags.Add("data-dir", &data_dir, "folder for the shard server's RocksDB data");
  flags.Add("listen", &listen, "gateway (public API) listen address");
  flags.Add("shard-listen", &shard_listen, "internal shard API listen address (port 0: any)");
  flags.Add("eventbus-listen", &eventbus_listen, "eventbus health listen address (port 0: any)");
  flags.Add("metrics-listen", &metrics_listen,
            "Prometheus /metrics address for the whole process (empty: off)");
  flags.Add("shards", &shards, "number of logical shards; fixed when the data folder is created");
  flags.Add("event-bus-partitions", &event_bus_partitions,
            "partition count of each new event bus topic");
  flags.Add("log-level", &log_level, "debug, info, warn or error");
  flags.Add("log-format", &log_format, "text or json");
  if (auto code = flags.ParseOrExit(argc, argv)) return *code;

  auto level = log::ParseLevel(log_level);
  if (!level.ok()) {
    std::cerr << "stepflow dev: " << level.status().message() << "\n";
    return 2;
  }
  log::SetMinLevel(*level);
  log::SetFormat(log_format == "json" ? log::Format::kJson : log::Format::kText);
  auto fail = [](const absl::Status& status) {
    std::cerr << "stepflow dev: " << status.message() << "\n";
    return 1;
  };

  std::error_code error;
  std::filesystem::create_directories(data_dir, error);
  if (error) return fail(absl::InternalError("cannot create " + data_dir + ": " + error.message()));

  auto registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (!metrics_listen.empty()) {
    auto started = metrics::MetricsServer::Start(metrics_listen, registry);
    if (!started.ok()) return fail(started.status());
    metrics_server = std::move(*started);
  }

  auto kafka = kafka::MockKafkaCluster::Start();
  if (!kafka.ok()) return fail(kafka.status());

  clock::RealClock clock;
  execution::ShardServerOptions shard_options;
  shard_options.core.data_dir = (std::filesystem::path(data_dir) / "shard-0").string();
  shard_options.core.shard_count = static_cast<uint32_t>(shards);
  shard_options.core.clock = &clock;
  if (const char* secret = std::getenv("STEPFLOW_TOKEN_SECRET")) {
    shard_options.core.token_secret = secret;
  }
  shard_options.listen_address = shard_listen;
  shard_options.registry = registry.get();
  auto shard = execution::ShardServer::Start(std::move(shard_options));
  if (!shard.ok()) return fail(shard.status());

  gateway::GatewayOptions gateway_options;
  gateway_options.shard_map =
      config::ShardMap(static_cast<uint32_t>(shards), {(*shard)->address()});
  gateway_options.listen_address = listen;
  gateway_options.registry = registry.get();
  gateway_options.kafka_brokers = (*kafka)->bootstrap_servers();
  gateway_options.kafka_topic_creation = kafka::TopicCreation::kEmbedded;
  gateway_options.embedded_kafka = kafka->get();
  gateway_options.event_bus_partitions = event_bus_partitions;
  auto gateway = gateway::Gateway::Start(std::move(gateway_options));
  if (!gateway.ok()) return fail(gateway.status());

  eventbus::EventBusOptions eventbus_options;
  eventbus_options.kafka_brokers = (*kafka)->bootstrap_servers();
  eventbus_options.listen_address = eventbus_listen;
  eventbus_options.embedded_kafka = kafka->get();
  eventbus_options.gateway_address = (*gateway)->address();
  auto eventbus = eventbus::EventBusServer::Start(std::move(eventbus_options));
  if (!eventbus.ok()) return fail(eventbus.status());

  std::cout << "Stepflow dev cluster is running.\n"
            << "  gateway (public API): " << (*gateway)->address() << "\n"
            << "  shard server:         " << (*shard)->address() << " (internal; "
            << shards << " logical shards)\n"
            << "  eventbus:             " << (*eventbus)->address() << "\n"
            << "  kafka (embedded):     " << (*kafka)->bootstrap_servers() << "\n";
  if (metrics_server) {
    std::cout << "  metrics:              http://127.0.0.1:" << metrics_server->port()
              << "/metrics\n";
  }
  std::cout << "  data:                 " << std::filesystem::absolute(data_dir).string() << "\n"
            << "Press Ctrl-C to stop." << std::endl;

  int signal_number = config::WaitForTerminationSignal();
  log::Info("dev", "stopping", {{"signal", signal_number}});
  (*gateway)->Shutdown();
  (*eventbus)->Shutdown();
  (*shard)->Shutdown();
  std::cout << "Stepflow dev cluster stopped." << std::endl;
  return 0;
}

}  // namespace stepflow::dev
