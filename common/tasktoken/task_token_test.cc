#include "common/tasktoken/task_token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace stepflow::tasktoken {
namespace {

internal::v1::TaskTokenContent Sample() {
  internal::v1::TaskTokenContent content;
  content.set_execution_arn("arn:aws:states:us-east-1:123456789012:execution:sm:e");
  content.set_scheduled_event_id(42);
  content.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:a");
  return content;
}

TEST(TaskTokenTest, RoundTrip) {
  TaskTokenCodec codec("secret");
  std::string token = codec.Encode(Sample());
  auto back = codec.Decode(token);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->scheduled_event_id(), 42);
  EXPECT_EQ(back->execution_arn(), Sample().execution_arn());
  EXPECT_EQ(TaskTokenCodec::Peek(token)->scheduled_event_id(), 42);
}

TEST(TaskTokenTest, RejectsForgeries) {
  TaskTokenCodec codec("secret");
  std::string token = codec.Encode(Sample());
  EXPECT_FALSE(TaskTokenCodec("other").Decode(token).ok());
  std::string altered = token;
  altered[5] = altered[5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(codec.Decode(altered).ok());
  auto garbage = codec.Decode("not a token!");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().message(), "InvalidToken: Invalid Token: 'not a token!'");
  EXPECT_FALSE(codec.Decode("").ok());
  EXPECT_FALSE(codec.Decode(std::string(2000, 'A')).ok());
}

// The MAC is HMAC-SHA256 truncated to 16 bytes for keys of any length, so
// tokens minted by earlier releases (which called OpenSSL's HMAC()) stay
// valid: a workflow may wait days for one.
TEST(TaskTokenTest, MacIsTruncatedHmacSha256) {
  for (size_t secret_bytes : {0, 6, 63, 64, 65, 300}) {
    std::string secret;
    for (size_t i = 0; i < secret_bytes; ++i) secret.push_back(static_cast<char>('a' + i % 26));
    std::string raw;
    ASSERT_TRUE(absl::WebSafeBase64Unescape(TaskTokenCodec(secret).Encode(Sample()), &raw));
    ASSERT_GT(raw.size(), 16u);
    const std::string payload = raw.substr(0, raw.size() - 16);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), digest,
         &length);
    EXPECT_EQ(raw.substr(raw.size() - 16), std::string(reinterpret_cast<char*>(digest), 16))
        << secret_bytes << "-byte secret";
    // A copy of the codec checks what the original minted.
    TaskTokenCodec codec(secret);
    TaskTokenCodec copy = codec;
    EXPECT_TRUE(copy.Decode(codec.Encode(Sample())).ok());
  }
}

}  // namespace
}  // namespace stepflow::tasktoken
