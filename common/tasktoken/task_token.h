// Task tokens: what a worker receives with a task and hands back with
// SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat.
//
// A token names the execution, the ActivityScheduled event and the activity,
// and carries an HMAC-SHA256 over them keyed by the cluster secret, so a
// token cannot be forged or altered. Layout (base64url, no padding):
//   serialized TaskTokenContent || 16-byte truncated MAC
//
//   TaskTokenCodec codec(secret);
//   std::string token = codec.Encode(content);
//   absl::StatusOr<TaskTokenContent> back = codec.Decode(token);
//
// Thread-safe (immutable after construction).
#ifndef STEPFLOW_COMMON_TASKTOKEN_TASK_TOKEN_H_
#define STEPFLOW_COMMON_TASKTOKEN_TASK_TOKEN_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "stepflow/internal/v1/shard.pb.h"

namespace stepflow::tasktoken {

// The secret `stepflow dev` and tests use when none is configured.
inline constexpr char kDevelopmentSecret[] = "stepflow-development-secret";

class TaskTokenCodec {
 public:
  explicit TaskTokenCodec(std::string secret);

  std::string Encode(const internal::v1::TaskTokenContent& content) const;

  // INVALID_ARGUMENT "InvalidToken: Invalid Token: '...'" for anything that
  // is not a token minted with this secret.
  absl::StatusOr<internal::v1::TaskTokenContent> Decode(absl::string_view token) const;

  // Reads the content without checking the MAC: enough to route a call to
  // the shard that will verify it.
  static absl::StatusOr<internal::v1::TaskTokenContent> Peek(absl::string_view token);

 private:
  // The secret's HMAC-SHA256 digest states (see task_token.cc); shared, so
  // that codecs copy cheaply.
  class Keyed;

  std::string Mac(absl::string_view payload) const;
  std::string secret_;
  std::shared_ptr<const Keyed> keyed_;
};

}  // namespace stepflow::tasktoken

#endif  // STEPFLOW_COMMON_TASKTOKEN_TASK_TOKEN_H_
