// TopicAdmin: makes sure Kafka topics exist, the one way Stepflow creates
// topics whatever the brokers are.
//
//   TopicAdmin admin({.brokers = brokers, .mode = TopicCreation::kAdminApi});
//   RETURN_IF_ERROR(admin.EnsureTopic({.name = "stepflow.events.orders",
//                                      .partitions = 8}, absl::Seconds(10)));
//
// How a topic comes to exist depends on the brokers:
//   kAdminApi      a real Kafka: the Admin API's CreateTopics, with the
//                  partition count and configuration asked for.
//   kEmbedded      librdkafka's mock cluster in this process (`stepflow dev`,
//                  tests): its own API, since Admin CreateTopics never
//                  completes against it (it reports no controller).
//   kBrokerDefault brokers that create topics on first use
//                  (auto.create.topics.enable, or stepflow-kafka-mock in a
//                  process of its own): a metadata request that asks for the
//                  topic; the partition count is the brokers' default and
//                  topic configuration is not applied.
//
// Thread-safety: EnsureTopic may be called concurrently.
#ifndef STEPFLOW_COMMON_KAFKA_TOPIC_ADMIN_H_
#define STEPFLOW_COMMON_KAFKA_TOPIC_ADMIN_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace stepflow::kafka {

class MockKafkaCluster;

enum class TopicCreation { kAdminApi, kEmbedded, kBrokerDefault };

// "admin", "embedded", "broker-default"; INVALID_ARGUMENT otherwise.
absl::StatusOr<TopicCreation> ParseTopicCreation(absl::string_view text);

struct TopicSpec {
  std::string name;
  int partitions = 1;
  // -1: the brokers' default (kAdminApi only).
  int replication_factor = -1;
  // Topic configuration, e.g. {"cleanup.policy", "compact"} (kAdminApi only).
  std::map<std::string, std::string> config;
};

struct TopicAdminOptions {
  // librdkafka `bootstrap.servers`. Required except for kEmbedded.
  std::string brokers;
  TopicCreation mode = TopicCreation::kAdminApi;
  // For kEmbedded: the cluster. Not owned; must outlive the TopicAdmin.
  MockKafkaCluster* embedded = nullptr;
};

class TopicAdmin {
 public:
  explicit TopicAdmin(TopicAdminOptions options)
      : options_(std::move(options)) {}

  // OK once `spec.name` exists (also when it existed already, whatever its
  // partition count). INVALID_ARGUMENT for a bad spec or missing options,
  // UNAVAILABLE / DEADLINE_EXCEEDED when the brokers do not answer in time,
  // the brokers' error otherwise.
  absl::Status EnsureTopic(const TopicSpec& spec, absl::Duration timeout) const;

  TopicCreation mode() const { return options_.mode; }

 private:
  absl::Status CreateWithAdminApi(const TopicSpec& spec,
                                  absl::Duration timeout) const;
  absl::Status CreateByMetadata(const TopicSpec& spec,
                                absl::Duration timeout) const;

  const TopicAdminOptions options_;
};

// The longest Kafka topic name.
inline constexpr size_t kMaxTopicNameLength = 249;

}  // namespace stepflow::kafka

#endif  // STEPFLOW_COMMON_KAFKA_TOPIC_ADMIN_H_
