#include "common/kafka/client.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/kafka/internal/rdkafka_util.h"
#include "common/status/status_macros.h"

namespace stepflow::kafka {
namespace internal {

// One produced record waiting for its delivery report. Shared between the
// caller and the report callback, because a caller that times out returns
// before its report arrives.
struct Delivery {
  absl::Notification done;
  // Both written before `done` is notified.
  absl::Status status;
  RecordPosition position;
};

}  // namespace internal

namespace {

using internal::Delivery;

// Runs on the producer's poll thread. The message opaque holds a heap-owned
// reference to the Delivery, released here: every produced message gets
// exactly one report (delivered, failed, or purged at destruction).
void OnDelivery(rd_kafka_t* rk, const rd_kafka_message_t* message,
                void* opaque) {
  std::unique_ptr<std::shared_ptr<Delivery>> delivery(
      static_cast<std::shared_ptr<Delivery>*>(message->_private));
  if (delivery == nullptr) return;
  (*delivery)->status = internal::ErrorToStatus(
      message->err, absl::StrCat("cannot deliver the record to Kafka topic ",
                                 rd_kafka_topic_name(message->rkt)));
  (*delivery)->position = {message->partition, message->offset};
  (*delivery)->done.Notify();
}

absl::Status ValidateBrokers(const std::string& brokers) {
  if (brokers.empty()) {
    return absl::InvalidArgumentError("no Kafka brokers given");
  }
  return absl::OkStatus();
}

// A short-lived client for metadata requests, logging only at Debug: its
// caller reports failures.
absl::StatusOr<internal::HandlePtr> NewProbe(const std::string& brokers) {
  RETURN_IF_ERROR(ValidateBrokers(brokers));
  ASSIGN_OR_RETURN(internal::ConfPtr conf,
                   internal::NewConf({{"bootstrap.servers", brokers},
                                      {"client.id", "stepflow-probe"},
                                      {"allow.auto.create.topics", "false"}},
                                     internal::LogMode::kQuiet));
  return internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf));
}

struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* metadata) const {
    rd_kafka_metadata_destroy(metadata);
  }
};
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;

// `all_topics` false asks for the brokers only.
absl::StatusOr<MetadataPtr> FetchMetadata(const std::string& brokers,
                                          bool all_topics,
                                          absl::Duration timeout) {
  ASSIGN_OR_RETURN(internal::HandlePtr probe, NewProbe(brokers));
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(probe.get(), all_topics ? 1 : 0, nullptr, &metadata,
                        std::max(1, internal::TimeoutMs(timeout)));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat(
        "Kafka brokers ", brokers, " did not answer a metadata request within ",
        absl::FormatDuration(timeout), ": ", rd_kafka_err2str(err)));
  }
  return MetadataPtr(metadata);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(
    const std::string& brokers,
    const std::map<std::string, std::string>& extra_config) {
  RETURN_IF_ERROR(ValidateBrokers(brokers));
  // Ours first, then the caller's, so the caller's win.
  std::map<std::string, std::string> settings = {
      {"bootstrap.servers", brokers},
      {"client.id", "stepflow"},
      {"acks", "all"},
      {"enable.idempotence", "true"},
      // A synchronous caller waits for its batch: keep lingering short.
      {"linger.ms", "2"},
      // Records spread over partitions go out as several requests at once:
      // each must leave without waiting for the answer to the one before.
      {"socket.nagle.disable", "true"},
      // Topics are created by operators (or MockKafkaCluster::CreateTopic),
      // with the partition count they choose, never implicitly.
      {"allow.auto.create.topics", "false"},
  };
  for (const auto& [key, value] : extra_config) settings[key] = value;
  ASSIGN_OR_RETURN(internal::ConfPtr conf,
                   internal::NewConf(settings, internal::LogMode::kNormal));
  rd_kafka_conf_set_dr_msg_cb(conf.get(), OnDelivery);
  ASSIGN_OR_RETURN(internal::HandlePtr handle,
                   internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf)));
  return std::unique_ptr<Producer>(new Producer(handle.release()));
}

Producer::Producer(rd_kafka_t* handle)
    : handle_(handle), poller_([this] { PollLoop(); }) {}

Producer::~Producer() {
  // Purged records get their delivery reports (ERR__PURGE_*) on the next
  // poll, which frees their Delivery references; flushing serves them.
  rd_kafka_purge(handle_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  stopping_.store(true, std::memory_order_relaxed);
  poller_.join();
  rd_kafka_flush(handle_, 1000);
  rd_kafka_destroy(handle_);
}

void Producer::PollLoop() {
  while (!stopping_.load(std::memory_order_relaxed)) {
    rd_kafka_poll(handle_, 100);
  }
}

absl::Status Producer::CheckTopic(const std::string& topic,
                                  absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    if (known_topics_.contains(topic)) return absl::OkStatus();
  }
  // Asking for every topic is the one metadata request that never makes the
  // broker auto-create the topic.
  const rd_kafka_metadata_t* raw = nullptr;
  rd_kafka_resp_err_t err =
      rd_kafka_metadata(handle_, /*all_topics=*/1, nullptr, &raw,
                        std::max(1, internal::TimeoutMs(timeout)));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return internal::ErrorToStatus(
        err, absl::StrCat("cannot look up Kafka topic ", topic));
  }
  MetadataPtr metadata(raw);
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& entry = metadata->topics[i];
    if (entry.err == RD_KAFKA_RESP_ERR_NO_ERROR && topic == entry.topic) {
      absl::MutexLock lock(&mu_);
      known_topics_.insert(topic);
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(
      absl::StrCat("Kafka topic ", topic, " does not exist"));
}

absl::StatusOr<std::shared_ptr<Delivery>> Producer::Enqueue(
    const std::string& topic, absl::string_view key,
    absl::optional<absl::string_view> value) {
  auto delivery = std::make_shared<Delivery>();
  auto* reference = new std::shared_ptr<Delivery>(delivery);
  // A null value pointer is how librdkafka writes a tombstone.
  void* value_data =
      value.has_value() ? const_cast<char*>(value->data()) : nullptr;
  const size_t value_size = value.has_value() ? value->size() : 0;
  rd_kafka_resp_err_t err = rd_kafka_producev(
      handle_, RD_KAFKA_V_TOPIC(topic.c_str()),
      RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
      RD_KAFKA_V_VALUE(value_data, value_size),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(reference),
      RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    delete reference;  // no report will come for a record never queued
    return internal::ErrorToStatus(
        err, absl::StrCat("cannot produce to Kafka topic ", topic));
  }
  return delivery;
}

absl::StatusOr<RecordPosition> Producer::Await(const Delivery& delivery,
                                               const std::string& topic,
                                               absl::Time deadline,
                                               absl::Duration timeout) {
  if (!delivery.done.WaitForNotificationWithDeadline(deadline)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "Kafka did not acknowledge the record for topic ", topic, " within ",
        absl::FormatDuration(timeout), "; it may still be stored"));
  }
  if (!delivery.status.ok()) return delivery.status;
  return delivery.position;
}

absl::Status Producer::ProduceSync(const std::string& topic,
                                   absl::string_view key,
                                   absl::string_view value,
                                   absl::Duration timeout) {
  return Produce(topic, key, value, timeout).status();
}

absl::StatusOr<RecordPosition> Producer::Produce(
    const std::string& topic, absl::string_view key,
    absl::optional<absl::string_view> value, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  RETURN_IF_ERROR(CheckTopic(topic, timeout));
  ASSIGN_OR_RETURN(std::shared_ptr<Delivery> delivery,
                   Enqueue(topic, key, value));
  return Await(*delivery, topic, deadline, timeout);
}

std::vector<absl::StatusOr<RecordPosition>> Producer::ProduceAll(
    const std::vector<OutgoingRecord>& records, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<absl::StatusOr<std::shared_ptr<Delivery>>> queued;
  queued.reserve(records.size());
  // Each topic is looked up once: an unknown one costs a metadata request,
  // and with the brokers down, the whole timeout.
  absl::flat_hash_map<std::string, absl::Status> topics;
  for (const OutgoingRecord& record : records) {
    auto [known, added] = topics.try_emplace(record.topic);
    if (added) known->second = CheckTopic(record.topic, deadline - absl::Now());
    if (!known->second.ok()) {
      queued.push_back(known->second);
      continue;
    }
    absl::optional<absl::string_view> value;
    if (record.value.has_value()) value = absl::string_view(*record.value);
    queued.push_back(Enqueue(record.topic, record.key, value));
  }
  std::vector<absl::StatusOr<RecordPosition>> results;
  results.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    if (!queued[i].ok()) {
      results.push_back(queued[i].status());
    } else {
      results.push_back(
          Await(**queued[i], records[i].topic, deadline, timeout));
    }
  }
  return results;
}

absl::Status CheckBrokers(const std::string& brokers, absl::Duration timeout) {
  return FetchMetadata(brokers, /*all_topics=*/false, timeout).status();
}

absl::StatusOr<std::vector<std::string>> ListTopics(const std::string& brokers,
                                                    absl::Duration timeout) {
  ASSIGN_OR_RETURN(MetadataPtr metadata,
                   FetchMetadata(brokers, /*all_topics=*/true, timeout));
  std::vector<std::string> topics;
  topics.reserve(metadata->topic_cnt);
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& topic = metadata->topics[i];
    if (topic.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    topics.emplace_back(topic.topic);
  }
  std::sort(topics.begin(), topics.end());
  return topics;
}

}  // namespace stepflow::kafka
