#include "common/kafka/topic_admin.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/kafka/internal/rdkafka_util.h"
#include "common/kafka/mock_cluster.h"
#include "common/status/status_macros.h"

namespace stepflow::kafka {
namespace {

struct QueueDeleter {
  void operator()(rd_kafka_queue_t* queue) const {
    rd_kafka_queue_destroy(queue);
  }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* event) const {
    rd_kafka_event_destroy(event);
  }
};
struct NewTopicDeleter {
  void operator()(rd_kafka_NewTopic_t* topic) const {
    rd_kafka_NewTopic_destroy(topic);
  }
};
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* options) const {
    rd_kafka_AdminOptions_destroy(options);
  }
};
struct TopicDeleter {
  void operator()(rd_kafka_topic_t* topic) const {
    rd_kafka_topic_destroy(topic);
  }
};

absl::Status ValidateSpec(const TopicSpec& spec) {
  if (spec.name.empty() || spec.name.size() > kMaxTopicNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("Kafka topic name must have 1 to ", kMaxTopicNameLength,
                     " characters: '", spec.name, "'"));
  }
  for (char c : spec.name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Kafka topic name may hold only [a-zA-Z0-9._-]: '", spec.name, "'"));
    }
  }
  if (spec.partitions < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("Kafka topic ", spec.name,
                     ": partitions must be at least 1, not ", spec.partitions));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TopicCreation> ParseTopicCreation(absl::string_view text) {
  if (text == "admin") return TopicCreation::kAdminApi;
  if (text == "embedded") return TopicCreation::kEmbedded;
  if (text == "broker-default") return TopicCreation::kBrokerDefault;
  return absl::InvalidArgumentError(absl::StrCat(
      "topic creation must be admin, embedded or broker-default, not '", text,
      "'"));
}

absl::Status TopicAdmin::EnsureTopic(const TopicSpec& spec,
                                     absl::Duration timeout) const {
  RETURN_IF_ERROR(ValidateSpec(spec));
  switch (options_.mode) {
    case TopicCreation::kEmbedded: {
      if (options_.embedded == nullptr) {
        return absl::InvalidArgumentError(
            "embedded topic creation needs the embedded cluster");
      }
      absl::Status created =
          options_.embedded->CreateTopic(spec.name, spec.partitions);
      return absl::IsAlreadyExists(created) ? absl::OkStatus() : created;
    }
    case TopicCreation::kAdminApi:
      return CreateWithAdminApi(spec, timeout);
    case TopicCreation::kBrokerDefault:
      return CreateByMetadata(spec, timeout);
  }
  return absl::InternalError("unknown topic creation mode");
}

absl::Status TopicAdmin::CreateWithAdminApi(const TopicSpec& spec,
                                            absl::Duration timeout) const {
  if (options_.brokers.empty())
    return absl::InvalidArgumentError("no Kafka brokers given");
  ASSIGN_OR_RETURN(internal::ConfPtr conf,
                   internal::NewConf({{"bootstrap.servers", options_.brokers},
                                      {"client.id", "stepflow-admin"}},
                                     internal::LogMode::kQuiet));
  ASSIGN_OR_RETURN(internal::HandlePtr handle,
                   internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf)));
  char errstr[512];
  std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter> topic(
      rd_kafka_NewTopic_new(spec.name.c_str(), spec.partitions,
                            spec.replication_factor, errstr, sizeof(errstr)));
  if (topic == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("Kafka topic ", spec.name, ": ", errstr));
  }
  for (const auto& [key, value] : spec.config) {
    rd_kafka_resp_err_t err =
        rd_kafka_NewTopic_set_config(topic.get(), key.c_str(), value.c_str());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return internal::ErrorToStatus(
          err, absl::StrCat("Kafka topic ", spec.name, ": ", key));
    }
  }
  std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter> admin_options(
      rd_kafka_AdminOptions_new(handle.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS));
  const int timeout_ms = std::max(1, internal::TimeoutMs(timeout));
  rd_kafka_AdminOptions_set_request_timeout(admin_options.get(), timeout_ms,
                                            errstr, sizeof(errstr));
  rd_kafka_AdminOptions_set_operation_timeout(admin_options.get(), timeout_ms,
                                              errstr, sizeof(errstr));
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(
      rd_kafka_queue_new(handle.get()));
  rd_kafka_NewTopic_t* topics[] = {topic.get()};
  rd_kafka_CreateTopics(handle.get(), topics, 1, admin_options.get(),
                        queue.get());
  // The request times out on its own; the extra second covers the
  // operation timeout's own slack.
  std::unique_ptr<rd_kafka_event_t, EventDeleter> event(
      rd_kafka_queue_poll(queue.get(), timeout_ms + 1000));
  if (event == nullptr) {
    return absl::DeadlineExceededError(absl::StrCat(
        "Kafka did not answer CreateTopics for ", spec.name, " in time"));
  }
  if (rd_kafka_resp_err_t err = rd_kafka_event_error(event.get());
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return internal::ErrorToStatus(
        err, absl::StrCat("cannot create Kafka topic ", spec.name, " (",
                          rd_kafka_event_error_string(event.get()), ")"));
  }
  const rd_kafka_CreateTopics_result_t* result =
      rd_kafka_event_CreateTopics_result(event.get());
  size_t count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(result, &count);
  for (size_t i = 0; i < count; ++i) {
    rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR ||
        err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      continue;
    }
    const char* message = rd_kafka_topic_result_error_string(results[i]);
    return internal::ErrorToStatus(
        err, absl::StrCat(
                 "cannot create Kafka topic ", spec.name,
                 message != nullptr ? absl::StrCat(" (", message, ")") : ""));
  }
  return absl::OkStatus();
}

absl::Status TopicAdmin::CreateByMetadata(const TopicSpec& spec,
                                          absl::Duration timeout) const {
  if (options_.brokers.empty())
    return absl::InvalidArgumentError("no Kafka brokers given");
  // A consumer handle asks for auto-creation only when told to (producers
  // of librdkafka 2.0 always do).
  ASSIGN_OR_RETURN(internal::ConfPtr conf,
                   internal::NewConf({{"bootstrap.servers", options_.brokers},
                                      {"client.id", "stepflow-admin"},
                                      {"group.id", "stepflow-admin"},
                                      {"allow.auto.create.topics", "true"}},
                                     internal::LogMode::kQuiet));
  ASSIGN_OR_RETURN(internal::HandlePtr handle,
                   internal::NewHandle(RD_KAFKA_CONSUMER, std::move(conf)));
  std::unique_ptr<rd_kafka_topic_t, TopicDeleter> topic(
      rd_kafka_topic_new(handle.get(), spec.name.c_str(), nullptr));
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const rd_kafka_metadata_t* metadata = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(
        handle.get(), 0, topic.get(), &metadata,
        std::max(1, internal::TimeoutMs(deadline - absl::Now())));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const bool exists =
          metadata->topic_cnt == 1 &&
          metadata->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
          metadata->topics[0].partition_cnt > 0;
      if (metadata->topic_cnt == 1) err = metadata->topics[0].err;
      rd_kafka_metadata_destroy(metadata);
      if (exists) return absl::OkStatus();
    }
    // Brokers answer LEADER_NOT_AVAILABLE while a new topic settles.
    if (absl::Now() >= deadline) {
      return internal::ErrorToStatus(
          err == RD_KAFKA_RESP_ERR_NO_ERROR ? RD_KAFKA_RESP_ERR__TIMED_OUT
                                            : err,
          absl::StrCat("Kafka brokers did not create topic ", spec.name));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

}  // namespace stepflow::kafka
