// stepflow-shard: a shard server owning the logical shards s with
// s % replicas == ordinal.
#include <atomic>
#include <iostream>

#include "absl/strings/str_split.h"
#include "common/clock/clock.h"
#include "common/config/flags.h"
#include "common/config/sharding.h"
#include "common/config/process.h"
#include "common/config/signals.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "prometheus/registry.h"
#include "services/execution/shard_service.h"

int main(int argc, char** argv) {
  using namespace stepflow;
  config::PrepareServerProcess();
  std::string data_dir = "./data/shard";
  int shards = static_cast<int>(config::kDefaultShardCount);
  int ordinal = 0;
  int replicas = 1;
  std::string peers;
  std::string listen = "0.0.0.0:7300";
  std::string metrics_listen;
  std::string region = "us-east-1";
  std::string account = "123456789012";
  std::string token_secret;
  std::string log_level = "info";
  std::string log_format = "text";
  int64_t retention_seconds = 90 * 24 * 3600;
  int64_t retention_sweep_seconds = 3600;
  int64_t express_retention_seconds = 600;
  int max_inflight = 4096;
  int64_t max_queued_task_mib = 512;
  int64_t recent_express_mib = 8;
  int task_queue_partitions = config::kDefaultTaskQueuePartitions;
  std::string kafka_brokers;

  config::FlagSet flags(
      "stepflow-shard",
      "Runs a Stepflow shard server: it owns the logical shards s with\n"
      "s % replicas == ordinal, keeps their executions, histories, catalog entries\n"
      "and activity task queues in RocksDB under --data-dir, and serves the\n"
      "internal shard API to gateways and to the other shard servers.\n"
      "Stops on SIGTERM or SIGINT (exit status 0). Exits with status 1 when the\n"
      "disk fails a write: the store then takes no more, and the restart recovers\n"
      "everything written before.");
  flags.Add("data-dir", &data_dir, "RocksDB folder of this server (created if missing)");
  flags.Add("shards", &shards,
            "number of logical shards of the cluster; fixed when the data folder is created");
  flags.Add("ordinal", &ordinal, "this server's ordinal (StatefulSet pod index), 0-based");
  flags.Add("replicas", &replicas, "number of shard servers in the cluster");
  flags.Add("peers", &peers,
            "comma-separated addresses of all shard servers by ordinal (host:port); needed "
            "when replicas > 1 to hand tasks to the shard that owns an activity");
  flags.Add("listen", &listen, "gRPC listen address (port 0 picks a free port)");
  flags.Add("metrics-listen", &metrics_listen,
            "address for the Prometheus /metrics endpoint, e.g. 0.0.0.0:9300 (empty: off)");
  flags.Add("region", &region, "region used in ARNs");
  flags.Add("account", &account, "account id used in ARNs");
  flags.Add("token-secret", &token_secret,
            "secret keying task-token MACs; the same on every server (default: "
            "$STEPFLOW_TOKEN_SECRET, else a development secret)");
  flags.Add("execution-retention-seconds", &retention_seconds,
            "how long closed executions (record, history, listing entries) are kept after "
            "they close; 90 days by default, as on AWS");
  flags.Add("express-retention-seconds", &express_retention_seconds,
            "how long closed EXPRESS executions are kept (AWS keeps none; their events "
            "go to the execution-log topic when logging is configured)");
  flags.Add("recent-express-mib", &recent_express_mib,
            "EXPRESS executions that end within their asynchronous start are not stored: "
            "the most recent ones, up to about this much memory and no longer than "
            "--express-retention-seconds, stay describable and listable (0: none)");
  flags.Add("retention-sweep-seconds", &retention_sweep_seconds,
            "how often closed executions past their retention are deleted (at least "
            "every quarter of the EXPRESS retention)");
  flags.Add("max-inflight-transitions", &max_inflight,
            "admission control: StartExecution answers RESOURCE_EXHAUSTED while this many "
            "transitions are in flight (0: no bound)");
  flags.Add("max-queued-task-mib", &max_queued_task_mib,
            "admission control: StartExecution answers RESOURCE_EXHAUSTED while the activity "
            "task backlogs of this server's queue partitions take more memory than this "
            "(0: no bound)");
  flags.Add("task-queue-partitions", &task_queue_partitions,
            "partitions of every activity's task queue, spread over the shard servers; a "
            "cluster setting: give every shard server and gateway the same value");
  flags.Add("kafka-brokers", &kafka_brokers,
            "Kafka bootstrap servers of the event bus (host:port,...): execution status "
            "changes are published to the default bus (empty: none)");
  flags.Add("log-level", &log_level, "debug, info, warn or error");
  flags.Add("log-format", &log_format, "text or json");
  if (auto code = flags.ParseOrExit(argc, argv)) return *code;

  auto level = log::ParseLevel(log_level);
  if (!level.ok()) {
    std::cerr << "stepflow-shard: " << level.status().message() << "\n";
    return 2;
  }
  log::SetMinLevel(*level);
  log::SetFormat(log_format == "json" ? log::Format::kJson : log::Format::kText);

  if (token_secret.empty()) {
    const char* env = std::getenv("STEPFLOW_TOKEN_SECRET");
    token_secret = env != nullptr ? env : tasktoken::kDevelopmentSecret;
  }
  if (retention_seconds <= 0 || retention_sweep_seconds <= 0 || express_retention_seconds <= 0) {
    std::cerr << "stepflow-shard: --execution-retention-seconds, --express-retention-seconds "
                 "and --retention-sweep-seconds must be positive\n";
    return 2;
  }
  clock::RealClock clock;
  auto registry = std::make_shared<prometheus::Registry>();
  execution::ShardServerOptions options;
  options.core.data_dir = data_dir;
  options.core.shard_count = static_cast<uint32_t>(shards);
  options.core.ordinal = ordinal;
  options.core.replicas = replicas;
  options.core.arn_scope.region = region;
  options.core.arn_scope.account = account;
  options.core.token_secret = token_secret;
  options.core.clock = &clock;
  options.core.execution_retention = absl::Seconds(retention_seconds);
  options.core.retention_sweep_interval = absl::Seconds(retention_sweep_seconds);
  options.core.express_execution_retention = absl::Seconds(express_retention_seconds);
  options.core.max_inflight_transitions = max_inflight;
  if (max_queued_task_mib < 0) {
    std::cerr << "stepflow-shard: --max-queued-task-mib must not be negative\n";
    return 2;
  }
  options.core.max_queued_task_bytes = static_cast<uint64_t>(max_queued_task_mib) << 20;
  if (recent_express_mib < 0) {
    std::cerr << "stepflow-shard: --recent-express-mib must not be negative\n";
    return 2;
  }
  options.core.recent_express_bytes = static_cast<size_t>(recent_express_mib) << 20;
  options.core.task_queue_partitions = task_queue_partitions;
  options.core.registry = registry.get();
  // A write the disk failed leaves the store refusing every write until it
  // is opened again, which recovers what its log holds: exit, and let the
  // restart do that.
  std::atomic<bool> store_failed{false};
  options.core.on_store_failure = [&store_failed](const absl::Status& status) {
    store_failed = true;
    log::Error("shard", "the store failed a write; exiting so that a restart recovers it",
               {{"error", status.ToString()}});
    config::RequestTermination();
  };
  options.listen_address = listen;
  options.kafka_brokers = kafka_brokers;
  options.registry = registry.get();
  for (absl::string_view peer : absl::StrSplit(peers, ',', absl::SkipEmpty())) {
    options.peers.emplace_back(peer);
  }
  if (replicas > 1 && static_cast<int>(options.peers.size()) != replicas) {
    std::cerr << "stepflow-shard: --peers must list " << replicas << " addresses\n";
    return 2;
  }
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (!metrics_listen.empty()) {
    auto started = metrics::MetricsServer::Start(metrics_listen, registry);
    if (!started.ok()) {
      std::cerr << "stepflow-shard: " << started.status() << "\n";
      return 1;
    }
    metrics_server = std::move(*started);
  }
  auto server = execution::ShardServer::Start(std::move(options));
  if (!server.ok()) {
    std::cerr << "stepflow-shard: " << server.status().message() << "\n";
    return 1;
  }
  std::cout << "stepflow-shard listening on " << (*server)->address() << std::endl;
  int signal_number = config::WaitForTerminationSignal();
  log::Info("shard", "shutting down", {{"signal", signal_number}});
  (*server)->Shutdown();
  return store_failed ? 1 : 0;
}
