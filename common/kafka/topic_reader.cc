#include "common/kafka/topic_reader.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/kafka/internal/rdkafka_util.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"

namespace stepflow::kafka {
namespace {

constexpr absl::Duration kRetryInterval = absl::Milliseconds(200);

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};

// Partition count of `topic`; 0 if the brokers do not know it.
absl::StatusOr<int> PartitionCount(rd_kafka_t* handle, const std::string& topic,
                                   absl::Duration timeout) {
  // Asking for all topics never makes a broker auto-create this one.
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(
      handle, 1, nullptr, &metadata, std::max(1, internal::TimeoutMs(timeout)));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return internal::ErrorToStatus(
        err, absl::StrCat("cannot look up Kafka topic ", topic));
  }
  int partitions = 0;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    if (metadata->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
        topic == metadata->topics[i].topic) {
      partitions = metadata->topics[i].partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(metadata);
  return partitions;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TopicReader>> TopicReader::Start(
    const std::string& brokers, const std::string& topic, Handler handler) {
  if (brokers.empty())
    return absl::InvalidArgumentError("no Kafka brokers given");
  if (topic.empty()) return absl::InvalidArgumentError("no Kafka topic given");
  ASSIGN_OR_RETURN(
      internal::ConfPtr conf,
      internal::NewConf({{"bootstrap.servers", brokers},
                         {"client.id", "stepflow-reader"},
                         // assign() wants a group id; nothing joins it.
                         {"group.id", absl::StrCat("stepflow-reader-", topic)},
                         {"enable.auto.commit", "false"},
                         {"enable.auto.offset.store", "false"},
                         // Changes should show up within a fetch round.
                         {"fetch.wait.max.ms", "50"},
                         {"fetch.error.backoff.ms", "100"}},
                        internal::LogMode::kNormal));
  ASSIGN_OR_RETURN(internal::HandlePtr handle,
                   internal::NewHandle(RD_KAFKA_CONSUMER, std::move(conf)));
  rd_kafka_poll_set_consumer(handle.get());
  return std::unique_ptr<TopicReader>(
      new TopicReader(handle.release(), topic, std::move(handler)));
}

TopicReader::TopicReader(rd_kafka_t* handle, std::string topic, Handler handler)
    : handle_(handle),
      topic_(std::move(topic)),
      handler_(std::move(handler)),
      reader_([this] { ReadLoop(); }) {}

TopicReader::~TopicReader() {
  stopping_.store(true);
  reader_.join();
  rd_kafka_consumer_close(handle_);
  rd_kafka_destroy(handle_);
}

bool TopicReader::Assign() {
  absl::StatusOr<int> partitions =
      PartitionCount(handle_, topic_, absl::Seconds(2));
  if (!partitions.ok() || *partitions == 0) return false;
  std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter> list(
      rd_kafka_topic_partition_list_new(*partitions));
  for (int p = 0; p < *partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_resp_err_t err = rd_kafka_assign(handle_, list.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log::Warn(internal::kLogComponent, "cannot assign topic partitions",
              {{"topic", topic_}, {"error", rd_kafka_err2str(err)}});
    return false;
  }
  absl::MutexLock lock(&mu_);
  next_offset_.assign(*partitions, 0);
  return true;
}

void TopicReader::ReadLoop() {
  bool assigned = false;
  while (!stopping_.load()) {
    if (!assigned) {
      assigned = Assign();
      if (!assigned) absl::SleepFor(kRetryInterval);
      continue;
    }
    rd_kafka_message_t* message = rd_kafka_consumer_poll(handle_, 100);
    if (message == nullptr) continue;
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        log::Debug(
            internal::kLogComponent, "topic read error",
            {{"topic", topic_}, {"error", rd_kafka_message_errstr(message)}});
      }
      rd_kafka_message_destroy(message);
      continue;
    }
    TopicRecord record;
    record.partition = message->partition;
    record.offset = message->offset;
    if (message->key != nullptr) {
      record.key.assign(static_cast<const char*>(message->key),
                        message->key_len);
    }
    if (message->payload != nullptr) {
      record.value.emplace(static_cast<const char*>(message->payload),
                           message->len);
    }
    rd_kafka_message_destroy(message);
    handler_(record);
    absl::MutexLock lock(&mu_);
    if (record.partition >= 0 &&
        record.partition < static_cast<int32_t>(next_offset_.size())) {
      next_offset_[record.partition] =
          std::max(next_offset_[record.partition], record.offset + 1);
    }
  }
}

absl::StatusOr<std::vector<int64_t>> TopicReader::HighWatermarks(
    absl::Duration timeout) {
  ASSIGN_OR_RETURN(int partitions, PartitionCount(handle_, topic_, timeout));
  if (partitions == 0) {
    return absl::UnavailableError(
        absl::StrCat("Kafka topic ", topic_, " does not exist"));
  }
  std::vector<int64_t> highs(partitions, 0);
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
        handle_, topic_.c_str(), p, &low, &highs[p],
        std::max(1, internal::TimeoutMs(timeout)));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      absl::Status status = internal::ErrorToStatus(
          err, absl::StrCat("cannot find the end of Kafka topic ", topic_));
      return absl::UnavailableError(status.message());
    }
  }
  return highs;
}

absl::Status TopicReader::WaitCaughtUp(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  ASSIGN_OR_RETURN(std::vector<int64_t> highs, HighWatermarks(timeout));
  auto caught_up = [this, &highs]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    if (next_offset_.size() < highs.size()) return false;
    for (size_t p = 0; p < highs.size(); ++p) {
      if (next_offset_[p] < highs[p]) return false;
    }
    return true;
  };
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithDeadline(absl::Condition(&caught_up), deadline)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "reading Kafka topic ", topic_, " did not catch up in time"));
  }
  return absl::OkStatus();
}

absl::Status TopicReader::WaitFor(RecordPosition position,
                                  absl::Duration timeout) {
  auto handled = [this, position]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return position.partition >= 0 &&
           position.partition < static_cast<int32_t>(next_offset_.size()) &&
           next_offset_[position.partition] > position.offset;
  };
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(&handled), timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("reading Kafka topic ", topic_, " did not reach offset ",
                     position.offset, " in time"));
  }
  return absl::OkStatus();
}

}  // namespace stepflow::kafka
