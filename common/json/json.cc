// RapidJSON's SSE2 string scanning (every x86-64 CPU has SSE2). Only this
// file parses and writes JSON text, so the choice is made here, before the
// first RapidJSON header.
#if defined(__SSE2__) && !defined(RAPIDJSON_SSE2)
#define RAPIDJSON_SSE2
#endif
#include "common/json/json.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rapidjson/encodedstream.h"
#include "rapidjson/error/en.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/reader.h"
#include "rapidjson/internal/dtoa.h"
#include "rapidjson/internal/itoa.h"
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

// Forwards RapidJSON's parse events to `Sink` (a document, or
// DiscardingSink), refusing to go deeper than kMaxDepth: the parser, and
// every walk over the value afterwards, recurses once per level, and a
// small text can nest deep enough to exhaust a thread's stack.
template <typename Sink>
class DepthLimitedHandler {
 public:
  explicit DepthLimitedHandler(Sink& sink) : sink_(sink) {}
  bool too_deep() const { return too_deep_; }

  bool Null() { return sink_.Null(); }
  bool Bool(bool b) { return sink_.Bool(b); }
  bool Int(int i) { return sink_.Int(i); }
  bool Uint(unsigned u) { return sink_.Uint(u); }
  bool Int64(int64_t i) { return sink_.Int64(i); }
  bool Uint64(uint64_t u) { return sink_.Uint64(u); }
  bool Double(double d) { return sink_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return sink_.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return sink_.String(s, n, copy); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return sink_.Key(s, n, copy); }
  bool StartObject() { return Enter() && sink_.StartObject(); }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    return sink_.EndObject(members);
  }
  bool StartArray() { return Enter() && sink_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return sink_.EndArray(elements);
  }

 private:
  bool Enter() {
    if (++depth_ > kMaxDepth) too_deep_ = true;
    return !too_deep_;
  }
  Sink& sink_;
  int depth_ = 0;
  bool too_deep_ = false;
};

// Takes every parse event and keeps nothing: Validate's sink.
struct DiscardingSink {
  bool Null() { return true; }
  bool Bool(bool) { return true; }
  bool Int(int) { return true; }
  bool Uint(unsigned) { return true; }
  bool Int64(int64_t) { return true; }
  bool Uint64(uint64_t) { return true; }
  bool Double(double) { return true; }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return true; }
  bool String(const char*, rapidjson::SizeType, bool) { return true; }
  bool Key(const char*, rapidjson::SizeType, bool) { return true; }
  bool StartObject() { return true; }
  bool EndObject(rapidjson::SizeType) { return true; }
  bool StartArray() { return true; }
  bool EndArray(rapidjson::SizeType) { return true; }
};

constexpr unsigned kWholeText = rapidjson::kParseFullPrecisionFlag;
constexpr unsigned kFirstValue = kWholeText | rapidjson::kParseStopWhenDoneFlag;

template <unsigned kFlags, typename Stream, typename Handler>
rapidjson::ParseResult ParseStream(Stream& stream, Handler& handler) {
  rapidjson::Reader reader;
  return reader.Parse<kFlags>(stream, handler);
}

// The status of a parse of `text` that ended with `result`.
absl::Status ParseStatus(absl::string_view text, const rapidjson::ParseResult& result,
                         bool too_deep, bool first_value_only) {
  if (too_deep) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid JSON at offset ", result.Offset(), ": nested deeper than ", kMaxDepth, " levels"));
  }
  if (result.IsError()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON at offset ", result.Offset(),
                                                   ": ",
                                                   rapidjson::GetParseError_En(result.Code())));
  }
  const size_t at = FindUnpairedSurrogate(first_value_only ? text.substr(0, result.Offset())
                                                           : text);
  if (at != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON at offset ", at, ": the escape ", text.substr(at, 6),
                     " is an unpaired UTF-16 surrogate, not a character"));
  }
  return absl::OkStatus();
}

// Parses `text` into `doc` (whose allocator receives the values) within the
// depth limit. `terminated`: the text is a std::string's, with no NUL
// before its end, which allows RapidJSON's faster scanning. With
// `first_value_only`, what follows the first value is ignored.
absl::Status ParseGuarded(absl::string_view text, bool terminated, bool first_value_only,
                          Document& doc) {
  rapidjson::ParseResult result;
  bool too_deep = false;
  auto generate = [&](Document& target) {
    DepthLimitedHandler<Document> handler(target);
    if (terminated) {
      rapidjson::StringStream stream(text.data());
      result = first_value_only ? ParseStream<kFirstValue>(stream, handler)
                                : ParseStream<kWholeText>(stream, handler);
    } else {
      rapidjson::MemoryStream memory(text.data(), text.size());
      rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> stream(memory);
      result = first_value_only ? ParseStream<kFirstValue>(stream, handler)
                                : ParseStream<kWholeText>(stream, handler);
    }
    too_deep = handler.too_deep();
    return !result.IsError();
  };
  doc.Populate(generate);
  return ParseStatus(text, result, too_deep, first_value_only);
}

}  // namespace

absl::Status Validate(const std::string& text) {
  DiscardingSink sink;
  DepthLimitedHandler<DiscardingSink> handler(sink);
  rapidjson::ParseResult result;
  // The bounded stream skips a UTF-8 byte order mark, as Parse does; the
  // terminated one would not.
  const bool may_start_with_bom =
      !text.empty() && (static_cast<unsigned char>(text[0]) == 0xEF ||
                        static_cast<unsigned char>(text[0]) == 0xBB ||
                        static_cast<unsigned char>(text[0]) == 0xBF);
  if (!may_start_with_bom && std::strlen(text.c_str()) == text.size()) {
    rapidjson::StringStream stream(text.c_str());
    result = ParseStream<kWholeText>(stream, handler);
  } else {
    // A NUL inside (the terminator does not mark the end), or a mark.
    rapidjson::MemoryStream memory(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> stream(memory);
    result = ParseStream<kWholeText>(stream, handler);
  }
  return ParseStatus(text, result, handler.too_deep(), /*first_value_only=*/false);
}

absl::StatusOr<Document> Parse(absl::string_view text) {
  Document doc;
  if (absl::Status status = ParseGuarded(text, false, false, doc); !status.ok()) return status;
  return doc;
}

absl::StatusOr<Document> Parse(absl::string_view text, Allocator* allocator) {
  Document doc(allocator);
  if (absl::Status status = ParseGuarded(text, false, false, doc); !status.ok()) return status;
  return doc;
}

absl::StatusOr<Document> ParseFirstValue(absl::string_view text, Allocator* allocator) {
  Document doc(allocator);
  if (absl::Status status = ParseGuarded(text, false, true, doc); !status.ok()) return status;
  return doc;
}

absl::Status ParseInto(const std::string& text, Allocator& allocator, Value* out) {
  Document doc(&allocator);
  const bool terminated = std::strlen(text.c_str()) == text.size();
  if (absl::Status status = ParseGuarded(text, terminated, false, doc); !status.ok()) {
    return status;
  }
  *out = std::move(static_cast<Value&>(doc));
  return absl::OkStatus();
}

namespace {

// A double in rapidjson::Writer's layout ("1.0", "1e21", "1e-7") but with
// the shortest digits that read back as the same double, as JavaScript and
// Java print them: RapidJSON's Grisu2 sometimes gives a longer, different
// spelling (0.1 + 0.2 as 0.30000000000000007 instead of
// 0.30000000000000004). `out` needs room for 32 characters.
char* WriteDouble(double value, char* out) {
  if (value == 0) return rapidjson::internal::dtoa(value, out);  // 0.0, -0.0
  if (value < 0) {
    *out++ = '-';
    value = -value;
  }
  // Grisu2 is fast and its digits are the shortest but for some values
  // that need 16 or 17 digits; only those are worked out again.
  int length = 0;
  int k = 0;
  rapidjson::internal::Grisu2(value, out, &length, &k);
  if (length >= 16) {
    char scientific[40];
    const auto converted = std::to_chars(scientific, scientific + sizeof(scientific) - 1, value,
                                         std::chars_format::scientific);
    *converted.ptr = '\0';  // for atoi below
    length = 0;
    const char* p = scientific;
    for (; p < converted.ptr && *p != 'e'; ++p) {
      if (*p != '.') out[length++] = *p;
    }
    k = std::atoi(p + 1) - (length - 1);
  }
  return rapidjson::internal::Prettify(out, length, k, 324);
}

// Compact JSON text as rapidjson::Writer writes it (same escapes, same
// number layout; see WriteDouble for the digits of doubles), about three
// times faster: it walks the value directly into one growing buffer,
// without the writer's per-value bookkeeping. Every state transition
// serializes its output, so this is on the hot path.
class CompactWriter {
 public:
  explicit CompactWriter(size_t expected_size)
      : text_(std::max<size_t>(expected_size + expected_size / 8 + 64, 256), '\0') {}

  void Write(const Value& value) {
    switch (value.GetType()) {
      case rapidjson::kNullType:
        Append("null", 4);
        return;
      case rapidjson::kFalseType:
        Append("false", 5);
        return;
      case rapidjson::kTrueType:
        Append("true", 4);
        return;
      case rapidjson::kStringType:
        WriteString(value.GetString(), value.GetStringLength());
        return;
      case rapidjson::kNumberType:
        WriteNumber(value);
        return;
      case rapidjson::kObjectType: {
        Put('{');
        bool first = true;
        for (const auto& member : value.GetObject()) {
          if (!first) Put(',');
          first = false;
          WriteString(member.name.GetString(), member.name.GetStringLength());
          Put(':');
          Write(member.value);
        }
        Put('}');
        return;
      }
      case rapidjson::kArrayType: {
        Put('[');
        bool first = true;
        for (const Value& item : value.GetArray()) {
          if (!first) Put(',');
          first = false;
          Write(item);
        }
        Put(']');
        return;
      }
    }
  }

  std::string Take() {
    text_.resize(size_);
    return std::move(text_);
  }

 private:
  char* Room(size_t bytes) {
    if (size_ + bytes > text_.size()) {
      text_.resize(std::max(text_.size() * 2, size_ + bytes));
    }
    return text_.data() + size_;
  }

  void Put(char c) {
    *Room(1) = c;
    ++size_;
  }

  void Append(const char* bytes, size_t count) {
    std::memcpy(Room(count), bytes, count);
    size_ += count;
  }

  void WriteNumber(const Value& value) {
    char* out = Room(40);
    char* end;
    if (value.IsDouble()) {
      const double d = value.GetDouble();
      // Parsed JSON has no NaN or infinity; a computed one has no JSON
      // spelling, and null is what JSON.stringify writes for it.
      if (!std::isfinite(d)) {
        Append("null", 4);
        return;
      }
      end = WriteDouble(d, out);
    } else if (value.IsInt()) {
      end = rapidjson::internal::i32toa(value.GetInt(), out);
    } else if (value.IsUint()) {
      end = rapidjson::internal::u32toa(value.GetUint(), out);
    } else if (value.IsInt64()) {
      end = rapidjson::internal::i64toa(value.GetInt64(), out);
    } else {
      end = rapidjson::internal::u64toa(value.GetUint64(), out);
    }
    size_ += static_cast<size_t>(end - out);
  }

  void WriteString(const char* chars, size_t length) {
    // What follows a backslash for each byte that needs escaping (0: none;
    // 'u': \u00XX), as rapidjson::Writer escapes.
    static constexpr auto kEscape = [] {
      std::array<char, 256> table{};
      for (int c = 0; c < 0x20; ++c) table[c] = 'u';
      table['\b'] = 'b';
      table['\t'] = 't';
      table['\n'] = 'n';
      table['\f'] = 'f';
      table['\r'] = 'r';
      table['"'] = '"';
      table['\\'] = '\\';
      return table;
    }();
    static constexpr char kHex[] = "0123456789ABCDEF";
    char* out = Room(2 + 6 * length);
    char* const start = out;
    *out++ = '"';
    for (size_t i = 0; i < length; ++i) {
      const unsigned char c = static_cast<unsigned char>(chars[i]);
      const char escape = kEscape[c];
      if (escape == 0) {
        *out++ = static_cast<char>(c);
      } else {
        *out++ = '\\';
        *out++ = escape;
        if (escape == 'u') {
          *out++ = '0';
          *out++ = '0';
          *out++ = kHex[c >> 4];
          *out++ = kHex[c & 0xF];
        }
      }
    }
    *out++ = '"';
    size_ += static_cast<size_t>(out - start);
  }

  std::string text_;
  size_t size_ = 0;
};

}  // namespace

std::string Serialize(const Value& value, size_t expected_size) {
  CompactWriter writer(expected_size);
  writer.Write(value);
  return writer.Take();
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
