#include "common/json/json.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

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

// Serialize writes what rapidjson::Writer writes, byte for byte (texts it
// wrote before must not change), but for the rare doubles where its Grisu2
// digits are not the shortest (see DoublesAreShortest).
TEST(JsonTest, SerializeMatchesRapidJsonWriter) {
  std::mt19937_64 rng(7);
  auto writer_text = [](const Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    return std::string(buffer.GetString(), buffer.GetSize());
  };
  const std::vector<double> doubles = {0.0, -0.0, 0.1, 1.5, -2.25, 1e21, 1e-7, 5e-324,
                                       1.7976931348623157e308, 123456789.125, 3.0};
  const std::vector<std::string> strings = {"", "plain", "quote\"back\\slash",
                                            std::string("nul\0and\x01\x1f", 9),
                                            "\b\f\n\r\t", "\x7f del", "caf\xc3\xa9 \xf0\x9f\x98\x80",
                                            "slash / <tag>", std::string(40, 'x') + "\n"};
  for (int round = 0; round < 2000; ++round) {
    Document doc;
    auto& a = doc.GetAllocator();
    std::function<void(Value*, int)> fill = [&](Value* v, int depth) {
      switch (std::uniform_int_distribution<int>(0, depth > 3 ? 5 : 7)(rng)) {
        case 0: v->SetNull(); break;
        case 1: v->SetBool(rng() % 2 == 0); break;
        case 2: {
          const int64_t choices[] = {0, -1, 42, 2147483647, -2147483648LL, 4294967295LL,
                                     -9223372036854775807LL - 1, 9007199254740993LL};
          v->SetInt64(choices[rng() % 8]);
          break;
        }
        case 3:
          if (rng() % 2) {
            v->SetUint64(18446744073709551615ull);
          } else {
            v->SetDouble(doubles[rng() % doubles.size()]);
          }
          break;
        case 4:
        case 5: {
          const std::string& text = strings[rng() % strings.size()];
          v->SetString(text.data(), static_cast<rapidjson::SizeType>(text.size()), a);
          break;
        }
        case 6: {
          v->SetArray();
          const int n = static_cast<int>(rng() % 4);
          for (int i = 0; i < n; ++i) {
            Value item;
            fill(&item, depth + 1);
            v->PushBack(item, a);
          }
          break;
        }
        default: {
          v->SetObject();
          const int n = static_cast<int>(rng() % 4);
          for (int i = 0; i < n; ++i) {
            Value item;
            fill(&item, depth + 1);
            const std::string& key = strings[rng() % strings.size()];
            v->AddMember(Value(key.data(), static_cast<rapidjson::SizeType>(key.size()), a),
                         item, a);
          }
          break;
        }
      }
    };
    fill(&doc, 0);
    ASSERT_EQ(Serialize(doc), writer_text(doc)) << "round " << round;
    ASSERT_EQ(Serialize(doc, 3), writer_text(doc)) << "round " << round;
  }
}

TEST(JsonTest, DoublesAreShortest) {
  Document doc;
  doc.SetArray();
  for (double d : {0.1 + 0.2, 0.1, 1.0, 100.0, 1e21, 1e-7, -2.5, 5e-324, 1.7976931348623157e308,
                   123456789012345680.0, 0.000001}) {
    doc.PushBack(d, doc.GetAllocator());
  }
  EXPECT_EQ(Serialize(doc),
            "[0.30000000000000004,0.1,1.0,100.0,1e21,1e-7,-2.5,5e-324,1.7976931348623157e308,"
            "123456789012345680.0,0.000001]");
  // What is written reads back as the same double.
  std::mt19937_64 rng(3);
  for (int i = 0; i < 40000; ++i) {
    double d;
    if (i % 2 == 0) {
      uint64_t bits = rng();
      std::memcpy(&d, &bits, sizeof d);
    } else {  // decimal-looking values, whose digits Grisu2 finds itself
      const int scale = static_cast<int>(rng() % 30) - 15;
      d = static_cast<double>(static_cast<int64_t>(rng() % 100000000000ull)) *
          std::pow(10.0, scale);
    }
    if (!std::isfinite(d)) continue;
    Value v(d);
    auto back = Parse(Serialize(v));
    ASSERT_TRUE(back.ok()) << Serialize(v);
    ASSERT_EQ(back->GetDouble(), d) << Serialize(v);
    // As few significant digits as the shortest round-trip spelling.
    char shortest[40];
    const auto end = std::to_chars(shortest, shortest + sizeof(shortest), d,
                                   std::chars_format::scientific).ptr;
    auto significant = [](absl::string_view text) {
      text = text.substr(0, text.find_first_of("eE"));
      std::string digits;
      for (char c : text) {
        if (c >= '0' && c <= '9') digits += c;
      }
      while (!digits.empty() && digits.back() == '0') digits.pop_back();
      while (!digits.empty() && digits.front() == '0') digits.erase(0, 1);
      return digits;
    };
    ASSERT_EQ(significant(Serialize(v)), significant(absl::string_view(shortest, end - shortest)))
        << Serialize(v);
  }
}

TEST(JsonTest, RefusesNestingDeeperThanTheLimit) {
  auto nested = [](int depth, const char* open, const char* close) {
    std::string text;
    for (int i = 0; i < depth; ++i) text += open;
    text += "1";
    for (int i = 0; i < depth; ++i) text += close;
    return text;
  };
  EXPECT_TRUE(Parse(nested(kMaxDepth, "[", "]")).ok());
  EXPECT_TRUE(Parse(nested(kMaxDepth - 1, "{\"a\":", "}")).ok());
  for (const std::string& text :
       {nested(kMaxDepth + 1, "[", "]"), nested(200000, "{\"a\":", "}"),
        nested(200000, "[", "")}) {
    auto doc = Parse(text);
    ASSERT_FALSE(doc.ok());
    EXPECT_THAT(std::string(doc.status().message()), testing::HasSubstr("nested deeper than"));
    Document target;
    EXPECT_FALSE(ParseInto(text, target.GetAllocator(), &target).ok());
  }
  // The first value alone counts for ParseFirstValue.
  Document arena;
  auto first = ParseFirstValue("[1] trailing \\udc00", &arena.GetAllocator());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(Serialize(*first), "[1]");
}

// Validate answers what Parse answers, message included, for good text and
// for every way text can be refused.
TEST(JsonTest, ValidateAgreesWithParse) {
  std::string deep(kMaxDepth + 1, '[');
  deep += std::string(kMaxDepth + 1, ']');
  std::string deepest_allowed(kMaxDepth, '[');
  deepest_allowed += std::string(kMaxDepth, ']');
  const std::string with_nul("{\"a\":1}\0", 8);
  // Long strings are scanned 16 bytes at a time: escapes, control and
  // invalid bytes past the first chunks.
  const std::string long_escaped = "\"" + std::string(40, 'x') + "\\n" + std::string(40, 'y') + "\"";
  const std::string long_control = "\"" + std::string(40, 'x') + "\x01" + std::string(9, 'y') + "\"";
  const std::string long_bad_byte = "[\"" + std::string(37, 'x') + "\xc3\x28\"]";
  for (const std::string& text :
       {std::string(R"({"z":1,"a":[true,null,"x"],"d":0.1234567890123456789})"),
        std::string(R"("plain")"), std::string("12.5e3"), std::string(" [] "),
        std::string(R"(["\ud83d\ude00", "\\udc00"])"), deepest_allowed, std::string("{\"a\":"),
        std::string("{} {}"), std::string(""), std::string("[1,]"), std::string("nul"),
        std::string(R"(["\udfff"])"), std::string(R"(["\ud800\u0041"])"), deep, with_nul,
        std::string("\"\xff\""), long_escaped, long_control, long_bad_byte,
        std::string("\xEF\xBB\xBF{\"a\":1}"), std::string("\xBF1"), std::string("\xEF")}) {
    absl::Status parsed = Parse(text).status();
    absl::Status validated = Validate(text);
    EXPECT_EQ(validated, parsed) << text.substr(0, 40);
  }
}

}  // namespace
}  // namespace stepflow::json
