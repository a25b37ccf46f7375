#include "common/json/json.h"

#include "gtest/gtest.h"

namespace stepflow::json {
namespace {

TEST(JsonTest, RoundTripKeepsKeyOrderAndPrecision) {
  auto doc = Parse(R"({"z":1,"a":[true,null,"x"],"d":0.1234567890123456789})");
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(Serialize(*doc), R"({"z":1,"a":[true,null,"x"],"d":0.12345678901234568})");
}

TEST(JsonTest, RejectsMalformedAndTrailingData) {
  auto bad = Parse("{\"a\":");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("offset"), std::string::npos);
  EXPECT_FALSE(Parse("{} {}").ok());
  EXPECT_FALSE(Parse("").ok());
}

TEST(JsonTest, TypeNames) {
  auto doc = Parse(R"([{}, [], "s", 1, true, null])");
  ASSERT_TRUE(doc.ok());
  const char* expected[] = {"object", "array", "string", "number", "boolean", "null"};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(TypeName((*doc)[i]), expected[i]);
}

TEST(JsonTest, CopyIsDeep) {
  auto doc = Parse(R"({"a":{"b":[1,2]}})");
  ASSERT_TRUE(doc.ok());
  Document other;
  Value copy = Copy(*doc, other.GetAllocator());
  (*doc)["a"]["b"][0] = 5;
  EXPECT_EQ(Serialize(copy), R"({"a":{"b":[1,2]}})");
}

}  // namespace
}  // namespace stepflow::json
