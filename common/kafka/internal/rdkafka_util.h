// Helpers shared by the librdkafka wrappers of common/kafka: building client
// handles from string configuration, routing librdkafka's log lines into
// common/log, and mapping librdkafka error codes onto absl::Status.
//
// Not part of the public interface; only common/kafka includes this.
#ifndef STEPFLOW_COMMON_KAFKA_INTERNAL_RDKAFKA_UTIL_H_
#define STEPFLOW_COMMON_KAFKA_INTERNAL_RDKAFKA_UTIL_H_

#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace stepflow::kafka::internal {

// The component name our log lines carry.
inline constexpr char kLogComponent[] = "kafka";

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

struct HandleDeleter {
  void operator()(rd_kafka_t* handle) const { rd_kafka_destroy(handle); }
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;

enum class LogMode {
  // librdkafka errors and warnings become Warn lines, notices Info.
  kNormal,
  // Everything is logged at Debug: for short-lived probes whose failures
  // are reported through their return value.
  kQuiet,
};

// A configuration with `settings` applied in order (later keys win) and log
// lines routed to common/log. INVALID_ARGUMENT naming the key for an unknown
// property or a bad value.
absl::StatusOr<ConfPtr> NewConf(
    const std::map<std::string, std::string>& settings, LogMode log_mode);

// Creates a client handle; takes ownership of `conf` in every case.
absl::StatusOr<HandlePtr> NewHandle(rd_kafka_type_t type, ConfPtr conf);

// librdkafka takes timeouts as int milliseconds; clamps to [0, INT_MAX].
int TimeoutMs(absl::Duration timeout);

// OK for RD_KAFKA_RESP_ERR_NO_ERROR; otherwise a status whose code says what
// a caller can do about it (UNAVAILABLE: retry later; DEADLINE_EXCEEDED;
// NOT_FOUND for unknown topics; INVALID_ARGUMENT for rejected input...) and
// whose message is "<context>: <librdkafka's description>".
absl::Status ErrorToStatus(rd_kafka_resp_err_t err, std::string_view context);

}  // namespace stepflow::kafka::internal

#endif  // STEPFLOW_COMMON_KAFKA_INTERNAL_RDKAFKA_UTIL_H_
