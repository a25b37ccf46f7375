// Small Kafka client helpers over librdkafka: a synchronous, durable
// producer, and broker / topic probes.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Producer> producer,
//                    Producer::Create("kafka-0:9092,kafka-1:9092"));
//   RETURN_IF_ERROR(producer->ProduceSync("stepflow.events.default", key,
//                                         event_json, absl::Seconds(10)));
//
//   absl::Status up = CheckBrokers(brokers, absl::Seconds(2));
//
// Topic creation is in topic_admin.h, reading a topic in topic_reader.h.
//
// `brokers` is always a librdkafka `bootstrap.servers` list:
// "HOST:PORT[,HOST:PORT...]".
#ifndef STEPFLOW_COMMON_KAFKA_CLIENT_H_
#define STEPFLOW_COMMON_KAFKA_CLIENT_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"

typedef struct rd_kafka_s rd_kafka_t;

namespace stepflow::kafka {
namespace internal {
struct Delivery;
}  // namespace internal

// Where a record was stored.
struct RecordPosition {
  int32_t partition = -1;
  int64_t offset = -1;
};

// A record to produce. A value of nullopt is a tombstone (a null value, which
// makes log compaction drop the key).
struct OutgoingRecord {
  std::string topic;
  std::string key;
  absl::optional<std::string> value;
};

// A producer whose ProduceSync returns once the brokers have acknowledged
// the record to every in-sync replica (acks=all), with idempotence on so
// librdkafka's internal retries neither duplicate nor reorder records.
//
// Records are partitioned by key (librdkafka's default consistent-random
// partitioner: equal keys land on the same partition, empty keys spread).
// Producing to a topic that does not exist fails with NOT_FOUND: the first
// record for each topic waits for a metadata request that confirms the topic
// exists. (librdkafka 2.0 producers ask the brokers to auto-create unknown
// topics whatever `allow.auto.create.topics` says, and brokers that allow it,
// the mock cluster included, would create them with a default partition
// count; topics are created by operators or MockKafkaCluster::CreateTopic.)
//
// Thread-safety: ProduceSync may be called concurrently from any number of
// threads; concurrent calls share batches on the wire. A background thread
// owned by the producer serves delivery reports.
class Producer {
 public:
  // `extra_config` holds librdkafka properties applied after ours (so it
  // may override them, e.g. "linger.ms" or "message.timeout.ms").
  // INVALID_ARGUMENT for an empty broker list or a bad property. Does not
  // contact the brokers.
  static absl::StatusOr<std::unique_ptr<Producer>> Create(
      const std::string& brokers,
      const std::map<std::string, std::string>& extra_config = {});

  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;
  // Gives up on records still queued (their ProduceSync calls have already
  // returned DEADLINE_EXCEEDED) and stops the background thread. No
  // ProduceSync call may be running.
  ~Producer();

  // Produces one record to `topic` and waits for its delivery report.
  // OK: the record is stored. DEADLINE_EXCEEDED after `timeout`: the outcome
  // is unknown (the record may still be stored later, so a retry can
  // duplicate it; it is given up after librdkafka's message.timeout.ms,
  // 300 s by default). Otherwise the broker's or client's error: NOT_FOUND
  // for an unknown topic, INVALID_ARGUMENT for a record the broker rejects
  // (e.g. too large), RESOURCE_EXHAUSTED when the local queue is full,
  // UNAVAILABLE for transient failures.
  absl::Status ProduceSync(const std::string& topic, absl::string_view key,
                           absl::string_view value, absl::Duration timeout);

  // As ProduceSync, and says where the record was stored. A `value` of
  // nullopt produces a tombstone.
  absl::StatusOr<RecordPosition> Produce(
      const std::string& topic, absl::string_view key,
      absl::optional<absl::string_view> value, absl::Duration timeout);

  // Produces every record at once (they share batches, so this costs about
  // one round trip, not one per record) and waits for all their delivery
  // reports, each with ProduceSync's outcomes. One result per record, in
  // order.
  std::vector<absl::StatusOr<RecordPosition>> ProduceAll(
      const std::vector<OutgoingRecord>& records, absl::Duration timeout);

 private:
  using Delivery = internal::Delivery;
  explicit Producer(rd_kafka_t* handle);
  void PollLoop();
  // Queues one record; its Delivery is notified by the delivery report.
  absl::StatusOr<std::shared_ptr<Delivery>> Enqueue(
      const std::string& topic, absl::string_view key,
      absl::optional<absl::string_view> value);
  static absl::StatusOr<RecordPosition> Await(const Delivery& delivery,
                                              const std::string& topic,
                                              absl::Time deadline,
                                              absl::Duration timeout);
  // OK once `topic` is known to exist; NOT_FOUND if it does not.
  absl::Status CheckTopic(const std::string& topic, absl::Duration timeout);

  rd_kafka_t* const handle_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> known_topics_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stopping_{false};
  std::thread poller_;
};

// OK if a broker in `brokers` answers a metadata request within `timeout`;
// otherwise UNAVAILABLE saying which brokers did not answer and why.
// INVALID_ARGUMENT for an empty list. Opens (and closes) its own connection.
absl::Status CheckBrokers(const std::string& brokers, absl::Duration timeout);

// The names of every topic in the cluster, sorted. UNAVAILABLE as
// CheckBrokers when no broker answers within `timeout`.
absl::StatusOr<std::vector<std::string>> ListTopics(const std::string& brokers,
                                                    absl::Duration timeout);

}  // namespace stepflow::kafka

#endif  // STEPFLOW_COMMON_KAFKA_CLIENT_H_
