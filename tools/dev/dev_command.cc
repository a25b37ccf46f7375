#include "tools/dev/dev_command.h"

#include <atomic>
#include <filesystem>
#include <iostream>

#include "common/config/flags.h"
#include "common/config/sharding.h"
#include "common/config/process.h"
#include "common/config/signals.h"
#include "common/log/log.h"
#include "tools/dev/dev_cluster.h"

namespace stepflow::dev {

int RunDevCommand(int argc, char** argv) {
  config::PrepareServerProcess();
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
      "Stops cleanly on Ctrl-C; exits with status 1 when the disk fails a write\n"
      "(the next start recovers everything written before).");
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

  DevClusterOptions options;
  options.data_dir = data_dir;
  options.gateway_listen = listen;
  options.shard_listen = shard_listen;
  options.eventbus_listen = eventbus_listen;
  options.metrics_listen = metrics_listen;
  options.event_bus_partitions = event_bus_partitions;
  options.shards = shards;
  // As stepflow-shard does: a store that failed a write takes no more, and
  // opening it again recovers what its log holds.
  std::atomic<bool> store_failed{false};
  options.on_store_failure = [&store_failed](const absl::Status& status) {
    store_failed = true;
    log::Error("dev", "the store failed a write; stopping, a restart recovers it",
               {{"error", status.ToString()}});
    config::RequestTermination();
  };
  auto cluster = DevCluster::Start(std::move(options));
  if (!cluster.ok()) return fail(cluster.status());

  std::cout << "Stepflow dev cluster is running.\n"
            << "  gateway (public API): " << (*cluster)->gateway_address() << "\n"
            << "  shard server:         " << (*cluster)->shard_address() << " (internal; "
            << shards << " logical shards)\n"
            << "  eventbus:             " << (*cluster)->eventbus_address() << "\n"
            << "  kafka (embedded):     " << (*cluster)->kafka_bootstrap_servers() << "\n";
  if ((*cluster)->metrics_port() != 0) {
    std::cout << "  metrics:              http://127.0.0.1:" << (*cluster)->metrics_port()
              << "/metrics\n";
  }
  std::cout << "  data:                 " << std::filesystem::absolute(data_dir).string() << "\n"
            << "Press Ctrl-C to stop." << std::endl;

  int signal_number = config::WaitForTerminationSignal();
  log::Info("dev", "stopping", {{"signal", signal_number}});
  (*cluster)->Shutdown();
  std::cout << "Stepflow dev cluster stopped." << std::endl;
  return store_failed ? 1 : 0;
}

}  // namespace stepflow::dev
