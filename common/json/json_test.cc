#include "common/json/json.h"

#include "gmock/gmock.h"
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

#include "common/json/utf8.h"

namespace stepflow::json {
namespace {

TEST(Utf8Test, DecodesAndEncodesEveryLength) {
  const std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a é € 😀 (last at the end)
  std::vector<uint32_t> points;
  for (size_t i = 0; i < text.size();) points.push_back(NextCodePoint(text, &i));
  EXPECT_EQ(points, (std::vector<uint32_t>{'a', 0xE9, 0x20AC, 0x1F600}));
  std::string back;
  for (uint32_t cp : points) AppendUtf8(cp, &back);
  EXPECT_EQ(back, text);
  // A truncated or broken sequence reads its first byte as itself.
  size_t i = 0;
  EXPECT_EQ(NextCodePoint("\xE2\x82", &i), 0xE2u);
  EXPECT_EQ(i, 1u);
}

TEST(JsonTest, RefusesUnpairedSurrogateEscapes) {
  // A lone low surrogate, a high one followed by no low one, a high one at
  // the end: none names a character, and the decoded bytes would not be
  // UTF-8.
  for (const char* text :
       {R"(["\udfff"])", R"({"\uDC00a":1})", R"(["\ud800x"])",
        R"(["\ud800\u0041"])", R"(["\ud800"])"}) {
    auto doc = Parse(text);
    ASSERT_FALSE(doc.ok()) << text;
    EXPECT_THAT(std::string(doc.status().message()),
                testing::HasSubstr("surrogate"))
        << text;
  }
  // A pair is a character; an escaped backslash before "udc00" is text.
  auto pair = Parse(R"(["\ud83d\ude00", "\\udc00"])");
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_EQ(Serialize(*pair), "[\"\xF0\x9F\x98\x80\",\"\\\\udc00\"]");
}

}  // namespace
}  // namespace stepflow::json
