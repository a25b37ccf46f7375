// MockKafkaCluster: an embedded Kafka-protocol broker, for `stepflow dev` and
// tests.
//
// It is librdkafka's mock cluster (librdkafka/rdkafka_mock.h): real brokers
// speaking the Kafka wire protocol on 127.0.0.1, each on a random free port,
// keeping their data in memory. Any Kafka client (our librdkafka code, kcat,
// kafkajs) connects to bootstrap_servers().
//
//   ASSIGN_OR_RETURN(std::unique_ptr<MockKafkaCluster> kafka,
//                    MockKafkaCluster::Start());
//   RETURN_IF_ERROR(kafka->CreateTopic("stepflow.events.default", 4));
//   ... Producer::Create(kafka->bootstrap_servers()) ...
//
// Limits worth knowing: a partition keeps only ~5 MiB and older data is
// dropped; Admin CreateTopics hangs against it (it reports controller id 0),
// so topics are created through CreateTopic() here, never through the Kafka
// protocol.
//
// Thread-safety: all methods may be called concurrently. Destroying the
// cluster closes its listeners; clients still connected see the brokers go
// away exactly as they would with a real cluster.
#ifndef STEPFLOW_COMMON_KAFKA_MOCK_CLUSTER_H_
#define STEPFLOW_COMMON_KAFKA_MOCK_CLUSTER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace stepflow::kafka {

class MockKafkaCluster {
 public:
  // Starts `broker_count` brokers (ids 1..broker_count). INVALID_ARGUMENT
  // unless 1 <= broker_count <= 32; INTERNAL if librdkafka cannot start them.
  static absl::StatusOr<std::unique_ptr<MockKafkaCluster>> Start(
      int broker_count = 1);

  MockKafkaCluster(const MockKafkaCluster&) = delete;
  MockKafkaCluster& operator=(const MockKafkaCluster&) = delete;
  // Stops the brokers and frees their data; takes about a second (librdkafka
  // winding down the brokers' thread).
  ~MockKafkaCluster();

  // "127.0.0.1:PORT[,127.0.0.1:PORT...]", for `bootstrap.servers`.
  std::string bootstrap_servers() const;
  int broker_count() const { return broker_count_; }

  // Creates a topic. INVALID_ARGUMENT for an empty name, partitions < 1 or a
  // replication factor outside 1..broker_count(); ALREADY_EXISTS if it does.
  absl::Status CreateTopic(const std::string& name, int partitions,
                           int replication_factor = 1);

  // Fault injection: a broker that is down drops its connections and
  // refuses new ones until it is set up again. `broker_id` -1 means all.
  absl::Status SetBrokerDown(int32_t broker_id);
  absl::Status SetBrokerUp(int32_t broker_id);

  // For fault injection beyond the above (rd_kafka_mock_* functions). Owned
  // by this object.
  rd_kafka_mock_cluster_t* raw() const { return cluster_; }

 private:
  MockKafkaCluster(rd_kafka_t* handle, rd_kafka_mock_cluster_t* cluster,
                   int broker_count);

  // The mock cluster lives inside a client handle of its own, which does
  // nothing else.
  rd_kafka_t* handle_;
  rd_kafka_mock_cluster_t* cluster_;
  int broker_count_;
};

}  // namespace stepflow::kafka

#endif  // STEPFLOW_COMMON_KAFKA_MOCK_CLUSTER_H_
