#include "common/kafka/internal/rdkafka_util.h"

#include <climits>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace stepflow::kafka::internal {
namespace {

absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// librdkafka levels are syslog levels: 0 emergency .. 7 debug.
void LogNormal(const rd_kafka_t* rk, int level, const char* facility,
               const char* message) {
  log::Level our_level = level <= 4   ? log::Level::kWarn
                         : level <= 6 ? log::Level::kInfo
                                      : log::Level::kDebug;
  log::Write(our_level, kLogComponent, message,
             {{"client", rd_kafka_name(rk)}, {"facility", facility}});
}

void LogQuiet(const rd_kafka_t* rk, int level, const char* facility,
              const char* message) {
  log::Debug(kLogComponent, message,
             {{"client", rd_kafka_name(rk)}, {"facility", facility}});
}

// Without an error callback librdkafka logs every error event a second time
// (facility ERROR) after the log line that describes it; only fatal errors,
// which leave the client unusable, say something new.
void OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  const bool fatal = err == RD_KAFKA_RESP_ERR__FATAL;
  log::Write(
      fatal ? log::Level::kError : log::Level::kDebug, kLogComponent,
      fatal ? "fatal Kafka client error" : "Kafka client error",
      {{"client", rd_kafka_name(rk)},
       {"error", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))},
       {"reason", reason}});
}

}  // namespace

absl::StatusOr<ConfPtr> NewConf(
    const std::map<std::string, std::string>& settings, LogMode log_mode) {
  ConfPtr conf(rd_kafka_conf_new());
  char errstr[512];
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("Kafka client setting ", key, "=", value, ": ", errstr));
    }
  }
  rd_kafka_conf_set_log_cb(conf.get(),
                           log_mode == LogMode::kQuiet ? LogQuiet : LogNormal);
  rd_kafka_conf_set_error_cb(conf.get(), OnError);
  return conf;
}

absl::StatusOr<HandlePtr> NewHandle(rd_kafka_type_t type, ConfPtr conf) {
  char errstr[512];
  // rd_kafka_new owns the configuration only when it succeeds.
  rd_kafka_t* handle = rd_kafka_new(type, conf.get(), errstr, sizeof(errstr));
  if (handle == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create Kafka client: ", errstr));
  }
  conf.release();
  return HandlePtr(handle);
}

int TimeoutMs(absl::Duration timeout) {
  int64_t ms = absl::ToInt64Milliseconds(timeout);
  if (ms < 0) return 0;
  if (ms > INT_MAX) return INT_MAX;
  return static_cast<int>(ms);
}

absl::Status ErrorToStatus(rd_kafka_resp_err_t err, std::string_view context) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
  std::string message =
      absl::StrCat(AbslView(context), ": ", rd_kafka_err2str(err));
  switch (err) {
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
      return absl::DeadlineExceededError(message);
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return absl::NotFoundError(message);
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
      return absl::AlreadyExistsError(message);
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
      return absl::InvalidArgumentError(message);
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
      return absl::ResourceExhaustedError(message);
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
      return absl::PermissionDeniedError(message);
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
      return absl::CancelledError(message);
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
      return absl::FailedPreconditionError(message);
    default:
      // Transport failures, leaders moving, brokers down: all transient.
      return absl::UnavailableError(message);
  }
}

}  // namespace stepflow::kafka::internal
