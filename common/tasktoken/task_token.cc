#include "common/tasktoken/task_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace stepflow::tasktoken {
namespace {

constexpr size_t kMacBytes = 16;
constexpr size_t kMaxTokenBytes = 1024;  // AWS's task token limit

absl::Status InvalidToken(absl::string_view token) {
  absl::string_view shown = token.substr(0, 64);
  return absl::InvalidArgumentError(absl::StrCat("InvalidToken: Invalid Token: '", shown,
                                                 token.size() > 64 ? "...'" : "'"));
}

absl::StatusOr<std::string> Unwrap(absl::string_view token) {
  std::string raw;
  if (token.empty() || token.size() > kMaxTokenBytes ||
      !absl::WebSafeBase64Unescape(token, &raw) || raw.size() <= kMacBytes) {
    return InvalidToken(token);
  }
  return raw;
}

}  // namespace

std::string TaskTokenCodec::Mac(absl::string_view payload) const {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), kMacBytes);
}

std::string TaskTokenCodec::Encode(const internal::v1::TaskTokenContent& content) const {
  std::string payload = content.SerializeAsString();
  std::string raw = absl::StrCat(payload, Mac(payload));
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<internal::v1::TaskTokenContent> TaskTokenCodec::Decode(
    absl::string_view token) const {
  auto raw = Unwrap(token);
  if (!raw.ok()) return raw.status();
  absl::string_view payload(raw->data(), raw->size() - kMacBytes);
  std::string expected = Mac(payload);
  if (CRYPTO_memcmp(expected.data(), raw->data() + payload.size(), kMacBytes) != 0) {
    return InvalidToken(token);
  }
  internal::v1::TaskTokenContent content;
  if (!content.ParseFromArray(payload.data(), static_cast<int>(payload.size())) ||
      content.execution_arn().empty()) {
    return InvalidToken(token);
  }
  return content;
}

absl::StatusOr<internal::v1::TaskTokenContent> TaskTokenCodec::Peek(absl::string_view token) {
  auto raw = Unwrap(token);
  if (!raw.ok()) return raw.status();
  internal::v1::TaskTokenContent content;
  if (!content.ParseFromArray(raw->data(), static_cast<int>(raw->size() - kMacBytes)) ||
      content.execution_arn().empty()) {
    return InvalidToken(token);
  }
  return content;
}

}  // namespace stepflow::tasktoken
