// Request checks the gateway applies before anything reaches a shard, with
// AWS's error names and messages. Pure functions.
#ifndef STEPFLOW_SERVICES_GATEWAY_VALIDATION_H_
#define STEPFLOW_SERVICES_GATEWAY_VALIDATION_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace stepflow::gateway {

// "ValidationException: 1 validation error detected: Value at 'field' failed
// to satisfy constraint: ..." (INVALID_ARGUMENT). AWS leaves the value out
// for payloads (definitions, inputs) and lists.
absl::Status ConstraintViolation(absl::string_view field, absl::string_view constraint);

// The same with the value, as AWS names a scalar's: "Value 'LOUD' at
// 'inspectionLevel' failed to satisfy constraint: ...".
absl::Status ConstraintViolation(absl::string_view field, absl::string_view value,
                                 absl::string_view constraint);
absl::Status ConstraintViolation(absl::string_view field, int64_t value,
                                 absl::string_view constraint);

// `text` is a JSON document of at most `max_bytes`; otherwise
// INVALID_ARGUMENT with `error_name` (InvalidExecutionInput, InvalidOutput).
absl::Status ValidateJsonPayload(absl::string_view field, const std::string& text,
                                 absl::string_view error_name, size_t max_bytes);

// A string field's length is within [min, max].
absl::Status ValidateLength(absl::string_view field, absl::string_view value, size_t min,
                            size_t max);

// Opaque pagination tokens (base64url of a sort key).
std::string EncodePageToken(absl::string_view key);
absl::Status DecodePageToken(absl::string_view token, std::string* key);

// A random RFC 4122 version 4 UUID, AWS's default execution name.
std::string RandomUuid();

}  // namespace stepflow::gateway

#endif  // STEPFLOW_SERVICES_GATEWAY_VALIDATION_H_
