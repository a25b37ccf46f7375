#include "services/gateway/validation.h"

#include <cstdio>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/json/json.h"

namespace stepflow::gateway {

absl::Status ConstraintViolation(absl::string_view field, absl::string_view constraint) {
  return absl::InvalidArgumentError(
      absl::StrCat("ValidationException: 1 validation error detected: Value at '", field,
                   "' failed to satisfy constraint: ", constraint));
}

absl::Status ConstraintViolation(absl::string_view field, absl::string_view value,
                                 absl::string_view constraint) {
  return absl::InvalidArgumentError(
      absl::StrCat("ValidationException: 1 validation error detected: Value '", value, "' at '",
                   field, "' failed to satisfy constraint: ", constraint));
}

absl::Status ConstraintViolation(absl::string_view field, int64_t value,
                                 absl::string_view constraint) {
  return ConstraintViolation(field, absl::StrCat(value), constraint);
}

absl::Status ValidateJsonPayload(absl::string_view field, const std::string& text,
                                 absl::string_view error_name, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return ConstraintViolation(
        field, absl::StrCat("Member must have length less than or equal to ", max_bytes));
  }
  if (absl::Status valid = json::Validate(text); !valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(error_name, ": Invalid ", field, " JSON: '", valid.message(), "'"));
  }
  return absl::OkStatus();
}

absl::Status ValidateLength(absl::string_view field, absl::string_view value, size_t min,
                            size_t max) {
  if (value.size() < min) {
    return ConstraintViolation(
        field, absl::StrCat("Member must have length greater than or equal to ", min));
  }
  if (value.size() > max) {
    return ConstraintViolation(
        field, absl::StrCat("Member must have length less than or equal to ", max));
  }
  return absl::OkStatus();
}

std::string EncodePageToken(absl::string_view key) { return absl::WebSafeBase64Escape(key); }

absl::Status DecodePageToken(absl::string_view token, std::string* key) {
  if (token.size() > 1024 || !absl::WebSafeBase64Unescape(token, key)) {
    return absl::InvalidArgumentError(absl::StrCat("InvalidToken: Invalid Token: '", token, "'"));
  }
  return absl::OkStatus();
}

std::string RandomUuid() {
  thread_local absl::BitGen gen;
  uint64_t hi = absl::Uniform<uint64_t>(gen);
  uint64_t lo = absl::Uniform<uint64_t>(gen);
  hi = (hi & 0xffffffffffff0fffull) | 0x0000000000004000ull;  // version 4
  lo = (lo & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // variant 1
  // 8-4-4-4-12 hex digits, written by hand: a start names its execution
  // with one, and snprintf cost as much as the rest of the name's work.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  int at = 0;
  auto put = [&](uint64_t bits, int digits) {
    for (int i = digits - 1; i >= 0; --i) out[at + i] = kHex[(bits >> (4 * (digits - 1 - i))) & 0xf];
    at += digits + 1;  // and the dash after
  };
  put(hi >> 32, 8);
  put(hi >> 16, 4);
  put(hi, 4);
  put(lo >> 48, 4);
  put(lo, 12);
  return out;
}

}  // namespace stepflow::gateway
