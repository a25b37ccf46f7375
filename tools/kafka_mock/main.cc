// stepflow-kafka-mock: an embedded Kafka-protocol broker (librdkafka's mock
// cluster) in a process of its own, for tests and local experiments.
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/config/flags.h"
#include "common/config/signals.h"
#include "common/kafka/mock_cluster.h"

int main(int argc, char** argv) {
  using namespace stepflow;
  config::BlockTerminationSignals();
  std::string topics = "stepflow.events.default:4,stepflow.eventbus.dead-letter:1";
  int brokers = 1;
  config::FlagSet flags(
      "stepflow-kafka-mock",
      "Runs librdkafka's mock cluster, a Kafka-protocol broker that keeps data in\n"
      "memory, and prints `stepflow-kafka-mock listening on HOST:PORT` (its bootstrap\n"
      "servers) once ready. For tests and local experiments, not for production.");
  flags.Add("topics", &topics, "comma-separated NAME:PARTITIONS topics to create");
  flags.Add("brokers", &brokers, "number of brokers in the mock cluster");
  if (auto code = flags.ParseOrExit(argc, argv)) return *code;

  auto cluster = kafka::MockKafkaCluster::Start(brokers);
  if (!cluster.ok()) {
    std::cerr << "stepflow-kafka-mock: " << cluster.status().message() << "\n";
    return 1;
  }
  for (absl::string_view spec : absl::StrSplit(topics, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> parts = absl::StrSplit(spec, ':');
    int partitions = 1;
    if (!parts.second.empty() && !absl::SimpleAtoi(parts.second, &partitions)) {
      std::cerr << "stepflow-kafka-mock: bad topic spec '" << spec << "'\n";
      return 2;
    }
    if (auto status = (*cluster)->CreateTopic(parts.first, partitions); !status.ok()) {
      std::cerr << "stepflow-kafka-mock: " << status.message() << "\n";
      return 1;
    }
  }
  std::cout << "stepflow-kafka-mock listening on " << (*cluster)->bootstrap_servers()
            << std::endl;
  config::WaitForTerminationSignal();
  return 0;
}
