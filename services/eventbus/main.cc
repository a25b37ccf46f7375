// stepflow-eventbus: the eventbus process. See eventbus_server.h.
#include <iostream>
#include <memory>
#include <string>
#include <utility>

#include "common/config/flags.h"
#include "common/config/process.h"
#include "common/config/signals.h"
#include "common/log/log.h"
#include "services/eventbus/eventbus_server.h"

int main(int argc, char** argv) {
  using namespace stepflow;
  config::PrepareServerProcess();

  eventbus::EventBusOptions options;
  std::string log_level = "info";
  std::string log_format = "text";
  config::FlagSet flags(
      "stepflow-eventbus",
      "Runs a Stepflow eventbus. It consumes the event bus topics\n"
      "(stepflow.events.*) in a Kafka consumer group (--group-id), matches\n"
      "each event against the enabled rules of its bus (read from the topic\n"
      "stepflow.eventbus.config, which gateways write) and starts an\n"
      "execution for each target through the gateway (--gateway); an\n"
      "event's offset is committed once every target accepted it. Rules\n"
      "with a rate() or cron() schedule (UTC) fire their targets too.\n"
      "Events matching an archive are copied to the archive's topic\n"
      "(stepflow.archive.<name>.<created-ms>), and replays are run by the\n"
      "replica the group gives partition 0 of stepflow.events.default;\n"
      "archive counts and replay progress are written to\n"
      "stepflow.eventbus.config. Without --gateway it delivers, archives\n"
      "and replays nothing.\n"
      "\n"
      "It serves the gRPC health service (grpc.health.v1.Health), SERVING\n"
      "while the brokers answer and NOT_SERVING otherwise (checked every\n"
      "3 s). Operators create the topics stepflow.events.default (e.g. 4\n"
      "partitions) and stepflow.eventbus.dead-letter (deliveries given up\n"
      "after retries; 1 partition); a missing one is logged as a warning.\n"
      "A target with a DeadLetterConfig (arn:aws:sqs:REGION:ACCOUNT:QUEUE)\n"
      "has its given-up deliveries written to stepflow.dead-letter.QUEUE,\n"
      "which the gateway creates in PutTargets.\n"
      "\n"
      "Once the gRPC server listens, prints one line to stdout,\n"
      "\"stepflow-eventbus listening on HOST:PORT\"; logs go to stderr.\n"
      "Shuts down cleanly (exit code 0) on SIGINT or SIGTERM.");
  flags.Add("kafka-brokers", &options.kafka_brokers,
            "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...] (required)");
  flags.Add("gateway", &options.gateway_address,
            "gateway address HOST:PORT that rule targets' executions are started "
            "through (empty: no delivery)");
  flags.Add("group-id", &options.group_id, "Kafka consumer group of the eventbus replicas");
  flags.Add("listen", &options.listen_address,
            "gRPC listen address (port 0 picks a free port)");
  flags.Add("metrics-listen", &options.metrics_address,
            "address for the Prometheus /metrics endpoint, e.g. 0.0.0.0:9240 "
            "(empty: off)");
  flags.Add("log-level", &log_level, "debug, info, warn or error");
  flags.Add("log-format", &log_format, "text or json");
  if (auto code = flags.ParseOrExit(argc, argv)) return *code;

  if (!flags.positional().empty()) {
    std::cerr << "stepflow-eventbus: unexpected argument '"
              << flags.positional().front() << "' (see --help)\n";
    return 2;
  }
  if (options.kafka_brokers.empty()) {
    std::cerr
        << "stepflow-eventbus: --kafka-brokers is required (see --help)\n";
    return 2;
  }
  auto level = log::ParseLevel(log_level);
  if (!level.ok()) {
    std::cerr << "stepflow-eventbus: --log-level: " << level.status().message()
              << "\n";
    return 2;
  }
  auto format = log::ParseFormat(log_format);
  if (!format.ok()) {
    std::cerr << "stepflow-eventbus: --log-format: "
              << format.status().message() << "\n";
    return 2;
  }
  log::SetMinLevel(*level);
  log::SetFormat(*format);

  auto server = eventbus::EventBusServer::Start(std::move(options));
  if (!server.ok()) {
    std::cerr << "stepflow-eventbus: " << server.status().message() << "\n";
    return 1;
  }
  std::cout << "stepflow-eventbus listening on " << (*server)->address()
            << std::endl;
  int signal_number = config::WaitForTerminationSignal();
  log::Info("eventbus", "shutting down", {{"signal", signal_number}});
  (*server)->Shutdown();
  return 0;
}
