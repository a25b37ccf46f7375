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

// AWS names a scalar's value; a payload's it leaves out (above).
TEST(ValidationTest, ScalarViolationsNameTheirValue) {
  EXPECT_EQ(ConstraintViolation("inspectionLevel", "LOUD",
                                "Member must satisfy enum value set: [INFO, DEBUG, TRACE]")
                .message(),
            "ValidationException: 1 validation error detected: Value 'LOUD' at 'inspectionLevel' "
            "failed to satisfy constraint: Member must satisfy enum value set: [INFO, DEBUG, "
            "TRACE]");
  EXPECT_EQ(ConstraintViolation("maxResults", 1001, "Member must have value less than or equal to "
                                                    "1000")
                .message(),
            "ValidationException: 1 validation error detected: Value '1001' at 'maxResults' "
            "failed to satisfy constraint: Member must have value less than or equal to 1000");
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
