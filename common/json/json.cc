#include "common/json/json.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "rapidjson/error/en.h"
#include "rapidjson/prettywriter.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace stepflow::json {

namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The code unit of a "\uXXXX" escape starting at text[at], or -1.
int EscapedCodeUnit(absl::string_view text, size_t at) {
  if (at + 6 > text.size() || text[at] != '\\' || text[at + 1] != 'u') {
    return -1;
  }
  int unit = 0;
  for (size_t i = at + 2; i < at + 6; ++i) {
    const int digit = HexDigit(text[i]);
    if (digit < 0) return -1;
    unit = unit * 16 + digit;
  }
  return unit;
}

}  // namespace

// RapidJSON decodes a "\uDC00".."\uDFFF" escape that follows no high
// surrogate into bytes that are not UTF-8, which protobuf then refuses to
// store. Such text names no Unicode character, so it is not valid JSON.
// A backslash can only appear inside strings of a document RapidJSON
// accepted, so a plain scan suffices.
size_t FindUnpairedSurrogate(absl::string_view text) {
  size_t at = 0;
  while (at < text.size()) {
    const void* found = std::memchr(text.data() + at, '\\', text.size() - at);
    if (found == nullptr) return absl::string_view::npos;
    at = static_cast<size_t>(static_cast<const char*>(found) - text.data());
    const int unit = EscapedCodeUnit(text, at);
    if (unit < 0xD800 || unit > 0xDFFF) {
      at += 2;  // skips "\\" as a whole, so "\\\\udc00" is not an escape
      continue;
    }
    if (unit >= 0xDC00) return at;  // a low surrogate with no high one
    const int low = EscapedCodeUnit(text, at + 6);
    if (low < 0xDC00 || low > 0xDFFF) return at;
    at += 12;
  }
  return absl::string_view::npos;
}

namespace {

absl::StatusOr<Document> Finish(Document doc, absl::string_view text) {
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON at offset ", doc.GetErrorOffset(), ": ",
                     rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (const size_t at = FindUnpairedSurrogate(text);
      at != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON at offset ", at, ": the escape ",
                     text.substr(at, 6),
                     " is an unpaired UTF-16 surrogate, not a character"));
  }
  return doc;
}

}  // namespace

absl::StatusOr<Document> Parse(absl::string_view text) {
  Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
  return Finish(std::move(doc), text);
}

absl::StatusOr<Document> Parse(absl::string_view text, Allocator* allocator) {
  Document doc(allocator);
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
  return Finish(std::move(doc), text);
}

std::string Serialize(const Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string SerializePretty(const Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
  writer.SetIndent(' ', 2);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

Value Copy(const Value& value, Allocator& allocator) {
  return Value(value, allocator);
}

absl::string_view TypeName(const Value& value) {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "boolean";
    case rapidjson::kObjectType:
      return "object";
    case rapidjson::kArrayType:
      return "array";
    case rapidjson::kStringType:
      return "string";
    case rapidjson::kNumberType:
      return "number";
  }
  return "unknown";
}

}  // namespace stepflow::json
