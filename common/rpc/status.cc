#include "common/rpc/status.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace stepflow::rpc {
namespace {

constexpr size_t kMaxErrorNameLength = 128;

absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

std::string_view StdView(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}

bool IsErrorName(std::string_view s) {
  if (s.empty() || s.size() > kMaxErrorNameLength) return false;
  if (s[0] < 'A' || s[0] > 'Z') return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Length of the error name at the start of `message` (0 if none).
size_t ErrorNameLength(std::string_view message) {
  size_t colon = message.find(':');
  if (colon == std::string_view::npos) return 0;
  bool separator_ok = colon + 1 == message.size() || message[colon + 1] == ' ';
  if (!separator_ok || !IsErrorName(message.substr(0, colon))) return 0;
  return colon;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  int code = static_cast<int>(s.code());
  if (code < 0 || code > grpc::StatusCode::UNAUTHENTICATED) {
    code = grpc::StatusCode::UNKNOWN;
  }
  return grpc::Status(static_cast<grpc::StatusCode>(code),
                      std::string(s.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  int code = static_cast<int>(s.error_code());
  if (code < 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    code = static_cast<int>(absl::StatusCode::kUnknown);
  }
  return absl::Status(static_cast<absl::StatusCode>(code), s.error_message());
}

absl::Status AwsError(absl::StatusCode code, std::string_view error_name,
                      std::string_view message) {
  if (message.empty()) {
    return absl::Status(code, absl::StrCat(AbslView(error_name), ":"));
  }
  return absl::Status(
      code, absl::StrCat(AbslView(error_name), ": ", AbslView(message)));
}

absl::Status NotFound(std::string_view error_name, std::string_view message) {
  return AwsError(absl::StatusCode::kNotFound, error_name, message);
}

absl::Status AlreadyExists(std::string_view error_name,
                           std::string_view message) {
  return AwsError(absl::StatusCode::kAlreadyExists, error_name, message);
}

absl::Status InvalidArgument(std::string_view error_name,
                             std::string_view message) {
  return AwsError(absl::StatusCode::kInvalidArgument, error_name, message);
}

absl::Status FailedPrecondition(std::string_view error_name,
                                std::string_view message) {
  return AwsError(absl::StatusCode::kFailedPrecondition, error_name, message);
}

absl::Status ResourceExhausted(std::string_view error_name,
                               std::string_view message) {
  return AwsError(absl::StatusCode::kResourceExhausted, error_name, message);
}

absl::Status Unimplemented(std::string_view what) {
  return absl::UnimplementedError(
      absl::StrCat(AbslView(what), " is not implemented yet"));
}

std::string_view ErrorName(const absl::Status& s) {
  std::string_view message = StdView(s.message());
  return message.substr(0, ErrorNameLength(message));
}

std::string_view ErrorMessage(const absl::Status& s) {
  std::string_view message = StdView(s.message());
  size_t name = ErrorNameLength(message);
  if (name == 0) return message;
  message.remove_prefix(std::min(message.size(), name + 2));
  return message;
}

}  // namespace stepflow::rpc
