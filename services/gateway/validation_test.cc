#include "services/gateway/validation.h"

#include <set>

#include "absl/strings/ascii.h"

#include "gtest/gtest.h"

namespace stepflow::gateway {
namespace {

TEST(ValidationTest, JsonPayloads) {
  EXPECT_TRUE(ValidateJsonPayload("input", R"({"a":1})", "InvalidExecutionInput", 100).ok());
  auto bad = ValidateJsonPayload("input", "{nope", "InvalidExecutionInput", 100);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message().substr(0, 22), "InvalidExecutionInput:");
  auto big = ValidateJsonPayload("input", std::string(101, ' '), "InvalidExecutionInput", 100);
  EXPECT_EQ(big.message(),
            "ValidationException: 1 validation error detected: Value at 'input' failed to "
            "satisfy constraint: Member must have length less than or equal to 100");
}

TEST(ValidationTest, PageTokensRoundTrip) {
  std::string key;
  ASSERT_TRUE(DecodePageToken(EncodePageToken(std::string("a\0b", 3)), &key).ok());
  EXPECT_EQ(key, std::string("a\0b", 3));
  EXPECT_FALSE(DecodePageToken("!!!", &key).ok());
}

TEST(ValidationTest, UuidsAreVersion4AndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string uuid = RandomUuid();
    ASSERT_EQ(uuid.size(), 36u);
    for (size_t at = 0; at < uuid.size(); ++at) {
      if (at == 8 || at == 13 || at == 18 || at == 23) {
        EXPECT_EQ(uuid[at], '-') << uuid;
      } else {
        EXPECT_TRUE(absl::ascii_isxdigit(uuid[at]) && !absl::ascii_isupper(uuid[at])) << uuid;
      }
    }
    EXPECT_EQ(uuid[14], '4');
    EXPECT_TRUE(uuid[19] == '8' || uuid[19] == '9' || uuid[19] == 'a' || uuid[19] == 'b');
    seen.insert(uuid);
  }
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace stepflow::gateway
