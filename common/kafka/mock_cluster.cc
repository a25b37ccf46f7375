#include "common/kafka/mock_cluster.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/kafka/internal/listeners.h"
#include "common/kafka/internal/rdkafka_util.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"

namespace stepflow::kafka {

namespace {
constexpr int kMaxBrokers = 32;

// librdkafka's mock brokers leave Nagle's algorithm on for their
// connections. A client that has several requests in flight (a producer
// sends one per partition) then gets every response after the first only
// once it has acknowledged the first, and it delays that acknowledgement:
// 40 ms for a batch of records spread over partitions, instead of about 2.
// Real brokers set TCP_NODELAY; the mock's listeners get it here, and the
// connections they accept inherit it.
void DisableNagle(const std::string& bootstrap_servers) {
  for (absl::string_view server : absl::StrSplit(bootstrap_servers, ',')) {
    int port = 0;
    const size_t colon = server.rfind(':');
    if (colon == absl::string_view::npos || !absl::SimpleAtoi(server.substr(colon + 1), &port)) {
      continue;
    }
    if (internal::SetNoDelayOnListeners(port) == 0) {
      // Still a working broker, only slower to answer pipelined requests.
      log::Warn(internal::kLogComponent, "cannot set TCP_NODELAY on a mock broker's listener",
                {{"port", absl::StrCat(port)}});
    }
  }
}
}  // namespace

absl::StatusOr<std::unique_ptr<MockKafkaCluster>> MockKafkaCluster::Start(
    int broker_count) {
  if (broker_count < 1 || broker_count > kMaxBrokers) {
    return absl::InvalidArgumentError(
        absl::StrCat("mock Kafka cluster needs 1 to ", kMaxBrokers,
                     " brokers, not ", broker_count));
  }
  // A host handle with no bootstrap servers: it never connects anywhere, it
  // only runs the mock brokers' thread.
  ASSIGN_OR_RETURN(internal::ConfPtr conf,
                   internal::NewConf({{"client.id", "stepflow-mock-cluster"}},
                                     internal::LogMode::kQuiet));
  ASSIGN_OR_RETURN(internal::HandlePtr handle,
                   internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf)));
  rd_kafka_mock_cluster_t* cluster =
      rd_kafka_mock_cluster_new(handle.get(), broker_count);
  if (cluster == nullptr) {
    return absl::InternalError("cannot start the mock Kafka cluster");
  }
  DisableNagle(rd_kafka_mock_cluster_bootstraps(cluster));
  return std::unique_ptr<MockKafkaCluster>(
      new MockKafkaCluster(handle.release(), cluster, broker_count));
}

MockKafkaCluster::MockKafkaCluster(rd_kafka_t* handle,
                                   rd_kafka_mock_cluster_t* cluster,
                                   int broker_count)
    : handle_(handle), cluster_(cluster), broker_count_(broker_count) {}

MockKafkaCluster::~MockKafkaCluster() {
  rd_kafka_mock_cluster_destroy(cluster_);
  rd_kafka_destroy(handle_);
}

std::string MockKafkaCluster::bootstrap_servers() const {
  return rd_kafka_mock_cluster_bootstraps(cluster_);
}

absl::Status MockKafkaCluster::CreateTopic(const std::string& name,
                                           int partitions,
                                           int replication_factor) {
  if (name.empty()) {
    return absl::InvalidArgumentError("Kafka topic name is empty");
  }
  if (partitions < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("Kafka topic ", name,
                     ": partitions must be at least 1, not ", partitions));
  }
  if (replication_factor < 1 || replication_factor > broker_count_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Kafka topic ", name, ": replication factor must be 1 to ",
        broker_count_, " (the number of brokers), not ", replication_factor));
  }
  return internal::ErrorToStatus(
      rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions,
                                 replication_factor),
      absl::StrCat("cannot create Kafka topic ", name));
}

absl::Status MockKafkaCluster::SetBrokerDown(int32_t broker_id) {
  return internal::ErrorToStatus(
      rd_kafka_mock_broker_set_down(cluster_, broker_id),
      absl::StrCat("cannot set mock broker ", broker_id, " down"));
}

absl::Status MockKafkaCluster::SetBrokerUp(int32_t broker_id) {
  absl::Status status = internal::ErrorToStatus(
      rd_kafka_mock_broker_set_up(cluster_, broker_id),
      absl::StrCat("cannot set mock broker ", broker_id, " up"));
  // In case the broker opened a new listener.
  DisableNagle(bootstrap_servers());
  return status;
}

}  // namespace stepflow::kafka
