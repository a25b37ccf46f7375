#include "common/asl/intrinsics.h"
#include "common/json/utf8.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "rapidjson/document.h"

namespace stepflow::asl {
namespace internal {

enum class Function {
  kFormat,
  kStringToJson,
  kJsonToString,
  kArray,
  kArrayPartition,
  kArrayContains,
  kArrayRange,
  kArrayGetItem,
  kArrayLength,
  kArrayUnique,
  kBase64Encode,
  kBase64Decode,
  kHash,
  kJsonMerge,
  kMathRandom,
  kMathAdd,
  kStringSplit,
  kUuid,
};

// A States.Format template cut at its "{}" placeholders. `valid` is false for
// a stray '{' or '}', which AWS reports only when the call is evaluated.
struct FormatTemplate {
  bool valid = false;
  std::vector<std::string> pieces;  // placeholders: pieces.size() - 1
};

struct IntrinsicNode {
  enum class Kind { kCall, kString, kInt, kDouble, kBool, kNull, kPath };
  Kind kind = Kind::kNull;

  // kCall.
  Function function = Function::kArray;
  absl::string_view name;  // static storage: "States.Format"
  std::vector<IntrinsicNode> args;
  // Set for States.Format whose template is a string literal, parsed from
  // the literal as written so that \{ and \} are braces, not placeholders.
  std::optional<FormatTemplate> literal_template;

  // kString: the value with escapes resolved. kPath: the path as written.
  std::string text;
  // kString: the literal as written between the quotes.
  std::string raw;
  int64_t int_value = 0;
  double double_value = 0;
  bool bool_value = false;
};

}  // namespace internal

namespace {

using internal::FormatTemplate;
using internal::Function;
using internal::IntrinsicNode;

constexpr int kMaxNesting = 10;  // "You can nest up to 10 intrinsic functions"
constexpr size_t kMaxInputChars = 10000;  // Base64Encode/Decode, Hash
constexpr int64_t kMaxRangeItems = 1000;  // ArrayRange
constexpr int kUnlimited = -1;

struct FunctionInfo {
  absl::string_view name;
  Function function;
  int min_args;
  int max_args;
};

constexpr FunctionInfo kFunctions[] = {
    {"States.Format", Function::kFormat, 1, kUnlimited},
    {"States.StringToJson", Function::kStringToJson, 1, 1},
    {"States.JsonToString", Function::kJsonToString, 1, 1},
    {"States.Array", Function::kArray, 0, kUnlimited},
    {"States.ArrayPartition", Function::kArrayPartition, 2, 2},
    {"States.ArrayContains", Function::kArrayContains, 2, 2},
    {"States.ArrayRange", Function::kArrayRange, 3, 3},
    {"States.ArrayGetItem", Function::kArrayGetItem, 2, 2},
    {"States.ArrayLength", Function::kArrayLength, 1, 1},
    {"States.ArrayUnique", Function::kArrayUnique, 1, 1},
    {"States.Base64Encode", Function::kBase64Encode, 1, 1},
    {"States.Base64Decode", Function::kBase64Decode, 1, 1},
    {"States.Hash", Function::kHash, 2, 2},
    {"States.JsonMerge", Function::kJsonMerge, 3, 3},
    {"States.MathRandom", Function::kMathRandom, 2, 3},
    {"States.MathAdd", Function::kMathAdd, 2, 2},
    {"States.StringSplit", Function::kStringSplit, 2, 2},
    {"States.UUID", Function::kUuid, 0, 0},
};

const FunctionInfo* FindFunction(absl::string_view name) {
  for (const FunctionInfo& info : kFunctions) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

const FunctionInfo& InfoOf(Function function) {
  for (const FunctionInfo& info : kFunctions) {
    if (info.function == function) return info;
  }
  return kFunctions[0];  // unreachable: every Function has an entry
}

// Splits a States.Format template at "{}". With `escapes`, a backslash makes
// the next character literal (the template as written in a string literal).
FormatTemplate ParseTemplate(absl::string_view text, bool escapes) {
  FormatTemplate result;
  result.pieces.emplace_back();
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (escapes && c == '\\' && i + 1 < text.size()) {
      result.pieces.back().push_back(text[++i]);
    } else if (c == '{') {
      if (i + 1 >= text.size() || text[i + 1] != '}') return result;
      result.pieces.emplace_back();
      ++i;
    } else if (c == '}') {
      return result;
    } else {
      result.pieces.back().push_back(c);
    }
  }
  result.valid = true;
  return result;
}

// ---------------------------------------------------------------------------
// Parsing.

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<IntrinsicNode> ParseWhole() {
    if (!IntrinsicCall::LooksLikeCall(text_)) {
      return Error("an intrinsic function call must start with 'States.'");
    }
    ASSIGN_OR_RETURN(IntrinsicNode root, ParseCall(1));
    SkipSpace();
    if (pos_ != text_.size()) {
      return Error("unexpected characters after the closing ')'");
    }
    return root;
  }

 private:
  absl::Status Error(absl::string_view why) const { return ErrorAt(pos_, why); }
  absl::Status ErrorAt(size_t pos, absl::string_view why) const {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid intrinsic function call '", text_,
                     "' at position ", pos, ": ", why));
  }

  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  void SkipSpace() {
    while (!AtEnd() && IsSpace(text_[pos_])) ++pos_;
  }
  bool AtDelimiter() const {
    return AtEnd() || IsSpace(Peek()) || Peek() == ',' || Peek() == ')';
  }

  absl::StatusOr<IntrinsicNode> ParseCall(int depth) {
    size_t start = pos_;
    pos_ += 7;  // "States."
    while (!AtEnd() && IsAlnum(Peek())) ++pos_;
    absl::string_view name = text_.substr(start, pos_ - start);
    const FunctionInfo* info = FindFunction(name);
    if (info == nullptr) {
      return ErrorAt(start,
                     absl::StrCat("unknown intrinsic function '", name, "'"));
    }
    if (depth > kMaxNesting) {
      return ErrorAt(start,
                     absl::StrCat("intrinsic functions can be nested at most ",
                                  kMaxNesting, " deep"));
    }
    if (Peek() != '(') return Error(absl::StrCat("expected '(' after ", name));
    ++pos_;

    IntrinsicNode node;
    node.kind = IntrinsicNode::Kind::kCall;
    node.function = info->function;
    node.name = info->name;
    SkipSpace();
    if (Peek() == ')') {
      ++pos_;
    } else {
      while (true) {
        SkipSpace();
        ASSIGN_OR_RETURN(IntrinsicNode arg, ParseArgument(depth));
        node.args.push_back(std::move(arg));
        SkipSpace();
        if (AtEnd()) return Error(absl::StrCat("missing ')' to close ", name));
        if (Peek() == ')') {
          ++pos_;
          break;
        }
        if (Peek() != ',')
          return Error("expected ',' or ')' after an argument");
        ++pos_;
      }
    }

    if (node.function == Function::kFormat && !node.args.empty() &&
        node.args[0].kind == IntrinsicNode::Kind::kString) {
      node.literal_template = ParseTemplate(node.args[0].raw, /*escapes=*/true);
    }
    if (node.function == Function::kJsonMerge && node.args.size() == 3 &&
        node.args[2].kind == IntrinsicNode::Kind::kBool &&
        node.args[2].bool_value) {
      return ErrorAt(
          start,
          "States.JsonMerge supports only a shallow merge: its third "
          "argument must be false");
    }
    for (IntrinsicNode& arg : node.args) arg.raw.clear();
    return node;
  }

  absl::StatusOr<IntrinsicNode> ParseArgument(int depth) {
    if (AtEnd()) return Error("expected an argument");
    char c = Peek();
    if (c == '\'') return ParseString();
    if (c == '$') return ParsePath();
    if (c == '-' || IsDigit(c)) return ParseNumber();
    if (absl::StartsWith(text_.substr(pos_), "States."))
      return ParseCall(depth + 1);
    for (absl::string_view keyword : {"true", "false", "null"}) {
      if (absl::StartsWith(text_.substr(pos_), keyword)) {
        size_t start = pos_;
        pos_ += keyword.size();
        if (!AtDelimiter()) {
          pos_ = start;
          break;
        }
        IntrinsicNode node;
        if (keyword == "null") {
          node.kind = IntrinsicNode::Kind::kNull;
        } else {
          node.kind = IntrinsicNode::Kind::kBool;
          node.bool_value = keyword == "true";
        }
        return node;
      }
    }
    return Error(
        "expected a string literal, number, true, false, null, path or "
        "intrinsic "
        "function call");
  }

  absl::StatusOr<IntrinsicNode> ParseString() {
    size_t start = pos_++;
    IntrinsicNode node;
    node.kind = IntrinsicNode::Kind::kString;
    while (true) {
      if (AtEnd()) return ErrorAt(start, "unterminated string literal");
      char c = text_[pos_];
      if (c == '\'') break;
      if (c == '\\') {
        char next = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
        if (next != '\'' && next != '{' && next != '}' && next != '\\') {
          return Error(
              "invalid escape sequence in a string literal: only \\', \\{, \\} "
              "and "
              "\\\\ are allowed");
        }
        node.text.push_back(next);
        pos_ += 2;
        continue;
      }
      node.text.push_back(c);
      ++pos_;
    }
    node.raw = std::string(text_.substr(start + 1, pos_ - start - 1));
    ++pos_;  // closing quote
    return node;
  }

  absl::StatusOr<IntrinsicNode> ParseNumber() {
    size_t start = pos_;
    bool integral = true;
    if (Peek() == '-') ++pos_;
    auto digits = [&]() {
      size_t from = pos_;
      while (!AtEnd() && IsDigit(Peek())) ++pos_;
      return pos_ > from;
    };
    if (!digits()) return ErrorAt(start, "invalid number");
    if (Peek() == '.') {
      ++pos_;
      integral = false;
      if (!digits())
        return ErrorAt(start, "invalid number: expected digits after '.'");
    }
    if (Peek() == 'e' || Peek() == 'E') {
      ++pos_;
      integral = false;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (!digits())
        return ErrorAt(start, "invalid number: expected exponent digits");
    }
    if (!AtDelimiter()) return ErrorAt(start, "invalid number");
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    IntrinsicNode node;
    if (integral) {
      int64_t value = 0;
      auto [ptr, ec] = std::from_chars(first, last, value);
      if (ec == std::errc() && ptr == last) {
        node.kind = IntrinsicNode::Kind::kInt;
        node.int_value = value;
        return node;
      }
    }
    double value = 0;
    auto [ptr, ec] = std::from_chars(first, last, value);
    if (ec != std::errc() || ptr != last || !std::isfinite(value)) {
      return ErrorAt(start, "number out of range");
    }
    node.kind = IntrinsicNode::Kind::kDouble;
    node.double_value = value;
    return node;
  }

  // A path runs to the first space, ',' or ')' outside brackets; the
  // definition validator checks its syntax through PathArguments().
  absl::StatusOr<IntrinsicNode> ParsePath() {
    size_t start = pos_++;
    int depth = 0;
    while (!AtEnd()) {
      char c = Peek();
      if (depth == 0 && (IsSpace(c) || c == ',' || c == ')')) break;
      if (c == '[') {
        ++depth;
      } else if (c == ']') {
        if (--depth < 0) return Error("unbalanced ']' in path");
      } else if ((c == '\'' || c == '"') && depth > 0) {
        char quote = c;
        ++pos_;
        while (!AtEnd() && Peek() != quote) {
          if (Peek() == '\\') ++pos_;
          ++pos_;
        }
        if (AtEnd()) return ErrorAt(start, "unterminated quoted name in path");
      }
      ++pos_;
    }
    if (depth != 0) return ErrorAt(start, "unterminated '[' in path");
    absl::string_view path = text_.substr(start, pos_ - start);
    size_t body = absl::StartsWith(path, "$$") ? 2 : 1;
    if (body < path.size()) {
      char next = path[body];
      bool variable = body == 1 && (IsAlnum(next) || next == '_');
      if (next != '.' && next != '[' && !variable) {
        return ErrorAt(start, absl::StrCat("invalid path '", path, "'"));
      }
    }
    if (path.back() == '.')
      return ErrorAt(start, absl::StrCat("invalid path '", path, "'"));
    IntrinsicNode node;
    node.kind = IntrinsicNode::Kind::kPath;
    node.text = std::string(path);
    return node;
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------------------
// UTF-8 helpers. AWS runs on Java, whose strings are UTF-16: lengths and
// hash codes count UTF-16 code units.

using json::AppendUtf8;
using json::NextCodePoint;

size_t Utf16Length(absl::string_view s) {
  size_t units = 0;
  for (size_t i = 0; i < s.size();)
    units += NextCodePoint(s, &i) >= 0x10000 ? 2 : 1;
  return units;
}

// java.lang.String#hashCode.
int32_t JavaStringHash(absl::string_view s) {
  uint32_t h = 0;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = NextCodePoint(s, &i);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      h = 31 * h + (0xD800 + (cp >> 10));
      h = 31 * h + (0xDC00 + (cp & 0x3FF));
    } else {
      h = 31 * h + cp;
    }
  }
  return static_cast<int32_t>(h);
}

std::string DecodeUtf8Lossy(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  while (i < bytes.size()) {
    unsigned char b0 = byte(i);
    if (b0 < 0x80) {
      out.push_back(static_cast<char>(b0));
      ++i;
      continue;
    }
    int len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    }
    int good = len == 0 ? 0 : 1;
    for (int k = 1; k < len && i + k < bytes.size(); ++k) {
      unsigned char b = byte(i + k);
      unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
      if (b < min || b > max) break;
      ++good;
    }
    if (len > 0 && good == len) {
      out.append(bytes, i, len);
      i += len;
    } else {
      AppendUtf8(0xFFFD, &out);
      i += good == 0 ? 1 : good;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// How AWS's Java runtime prints values.

// java.lang.Double#toString: shortest digits that round-trip, plain notation
// for 1e-3 <= |d| < 1e7, otherwise d.dddE[-]n.
void AppendJavaDouble(double d, std::string* out) {
  if (d == 0) {
    out->append(std::signbit(d) ? "-0.0" : "0.0");
    return;
  }
  char buf[64];
  auto [end, ec] =
      std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view sci(buf, end - buf);  // e.g. "-1.2345e-05"
  bool negative = sci.front() == '-';
  if (negative) sci.remove_prefix(1);
  size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exponent = 0;
  std::string_view exp_text = sci.substr(e_pos + 1);
  if (!exp_text.empty() && exp_text.front() == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exponent);
  if (negative) out->push_back('-');
  double magnitude = std::fabs(d);
  if (magnitude >= 1e-3 && magnitude < 1e7) {
    if (exponent >= 0) {
      size_t int_digits = static_cast<size_t>(exponent) + 1;
      if (digits.size() < int_digits)
        digits.append(int_digits - digits.size(), '0');
      out->append(digits, 0, int_digits);
      out->push_back('.');
      out->append(digits.size() > int_digits ? digits.substr(int_digits) : "0");
    } else {
      out->append("0.");
      out->append(static_cast<size_t>(-exponent - 1), '0');
      out->append(digits);
    }
  } else {
    out->push_back(digits[0]);
    out->push_back('.');
    out->append(digits.size() > 1 ? digits.substr(1) : "0");
    absl::StrAppend(out, "E", exponent);
  }
}

void AppendNumber(const json::Value& v, std::string* out) {
  if (v.IsInt64()) {
    absl::StrAppend(out, v.GetInt64());
  } else if (v.IsUint64()) {
    absl::StrAppend(out, v.GetUint64());
  } else {
    AppendJavaDouble(v.GetDouble(), out);
  }
}

// String.valueOf of the Java object a JSON value maps to (Map, List, String,
// Integer, Double, Boolean, null): {a=1, b=[x, y]}.
void AppendJavaString(const json::Value& v, std::string* out) {
  switch (v.GetType()) {
    case rapidjson::kNullType:
      out->append("null");
      break;
    case rapidjson::kFalseType:
      out->append("false");
      break;
    case rapidjson::kTrueType:
      out->append("true");
      break;
    case rapidjson::kNumberType:
      AppendNumber(v, out);
      break;
    case rapidjson::kStringType:
      out->append(v.GetString(), v.GetStringLength());
      break;
    case rapidjson::kArrayType: {
      out->push_back('[');
      bool first = true;
      for (const json::Value& e : v.GetArray()) {
        if (!first) out->append(", ");
        first = false;
        AppendJavaString(e, out);
      }
      out->push_back(']');
      break;
    }
    case rapidjson::kObjectType: {
      out->push_back('{');
      bool first = true;
      for (const auto& m : v.GetObject()) {
        if (!first) out->append(", ");
        first = false;
        out->append(m.name.GetString(), m.name.GetStringLength());
        out->push_back('=');
        AppendJavaString(m.value, out);
      }
      out->push_back('}');
      break;
    }
  }
}

std::string JavaString(const json::Value& v) {
  std::string out;
  AppendJavaString(v, &out);
  return out;
}

void AppendJsonString(const char* s, size_t n, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out->push_back('"');
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

// Compact JSON as Jackson writes it (doubles as Double#toString).
void AppendJson(const json::Value& v, std::string* out) {
  switch (v.GetType()) {
    case rapidjson::kNullType:
      out->append("null");
      break;
    case rapidjson::kFalseType:
      out->append("false");
      break;
    case rapidjson::kTrueType:
      out->append("true");
      break;
    case rapidjson::kNumberType:
      AppendNumber(v, out);
      break;
    case rapidjson::kStringType:
      AppendJsonString(v.GetString(), v.GetStringLength(), out);
      break;
    case rapidjson::kArrayType: {
      out->push_back('[');
      bool first = true;
      for (const json::Value& e : v.GetArray()) {
        if (!first) out->push_back(',');
        first = false;
        AppendJson(e, out);
      }
      out->push_back(']');
      break;
    }
    case rapidjson::kObjectType: {
      out->push_back('{');
      bool first = true;
      for (const auto& m : v.GetObject()) {
        if (!first) out->push_back(',');
        first = false;
        AppendJsonString(m.name.GetString(), m.name.GetStringLength(), out);
        out->push_back(':');
        AppendJson(m.value, out);
      }
      out->push_back('}');
      break;
    }
  }
}

std::string Json(const json::Value& v) {
  std::string out;
  AppendJson(v, &out);
  return out;
}

// ---------------------------------------------------------------------------
// java.util.HashMap iteration order, for States.JsonMerge (a HashMap) and
// States.ArrayUnique (a HashSet). Keys are values as Java objects.

enum class JavaNumberClass { kInteger, kLong, kBig, kDouble };

JavaNumberClass NumberClass(const json::Value& v) {
  if (v.IsInt()) return JavaNumberClass::kInteger;
  if (v.IsInt64()) return JavaNumberClass::kLong;
  if (v.IsUint64()) return JavaNumberClass::kBig;
  return JavaNumberClass::kDouble;
}

uint32_t LongHash(uint64_t bits) {
  return static_cast<uint32_t>(bits ^ (bits >> 32));
}

// Object#hashCode of the Java object `v` maps to.
uint32_t JavaHash(const json::Value& v) {
  switch (v.GetType()) {
    case rapidjson::kNullType:
      return 0;
    case rapidjson::kFalseType:
      return 1237;
    case rapidjson::kTrueType:
      return 1231;
    case rapidjson::kNumberType:
      switch (NumberClass(v)) {
        case JavaNumberClass::kInteger:
          return static_cast<uint32_t>(v.GetInt());
        case JavaNumberClass::kLong:
          return LongHash(static_cast<uint64_t>(v.GetInt64()));
        case JavaNumberClass::kBig:
          return LongHash(v.GetUint64());
        case JavaNumberClass::kDouble: {
          double d = v.GetDouble();
          uint64_t bits;
          std::memcpy(&bits, &d, sizeof(bits));
          return LongHash(bits);
        }
      }
      return 0;
    case rapidjson::kStringType:
      return static_cast<uint32_t>(JavaStringHash(
          absl::string_view(v.GetString(), v.GetStringLength())));
    case rapidjson::kArrayType: {
      uint32_t h = 1;
      for (const json::Value& e : v.GetArray()) h = 31 * h + JavaHash(e);
      return h;
    }
    case rapidjson::kObjectType: {
      uint32_t h = 0;
      for (const auto& m : v.GetObject()) {
        h += static_cast<uint32_t>(JavaStringHash(absl::string_view(
                 m.name.GetString(), m.name.GetStringLength()))) ^
             JavaHash(m.value);
      }
      return h;
    }
  }
  return 0;
}

// Object#equals of the Java objects: maps compare without regard to order,
// Integer 1 and Double 1.0 differ.
bool JavaEquals(const json::Value& a, const json::Value& b) {
  if (a.GetType() != b.GetType()) return false;
  switch (a.GetType()) {
    case rapidjson::kNullType:
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return true;
    case rapidjson::kNumberType: {
      JavaNumberClass type = NumberClass(a);
      if (type != NumberClass(b)) return false;
      if (type == JavaNumberClass::kDouble) {
        double x = a.GetDouble(), y = b.GetDouble();
        return std::memcmp(&x, &y, sizeof(x)) == 0;
      }
      if (type == JavaNumberClass::kBig) return a.GetUint64() == b.GetUint64();
      return a.GetInt64() == b.GetInt64();
    }
    case rapidjson::kStringType:
      return a.GetStringLength() == b.GetStringLength() &&
             std::memcmp(a.GetString(), b.GetString(), a.GetStringLength()) ==
                 0;
    case rapidjson::kArrayType: {
      if (a.Size() != b.Size()) return false;
      for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
        if (!JavaEquals(a[i], b[i])) return false;
      }
      return true;
    }
    case rapidjson::kObjectType: {
      if (a.MemberCount() != b.MemberCount()) return false;
      for (const auto& m : a.GetObject()) {
        auto it = b.FindMember(m.name);
        if (it == b.MemberEnd() || !JavaEquals(m.value, it->value))
          return false;
      }
      return true;
    }
  }
  return false;
}

// Replays the puts into a java.util.HashMap (Java 8+: power-of-two table,
// load factor 0.75, resize doubling while keeping bucket order, a bucket
// reaching 9 entries in a table under 64 forcing a resize) and reports the
// iteration order. Within a bucket that Java turns into a tree, entries stay
// in insertion order here; Java's may differ.
class JavaHashOrder {
 public:
  explicit JavaHashOrder(size_t capacity) : buckets_(capacity) {
    threshold_ = capacity * 3 / 4;
  }

  // Capacity of `new HashSet<>(collection)` for `n` elements.
  static size_t CapacityForCollection(size_t n) {
    size_t wanted = std::max<size_t>(
        static_cast<size_t>(static_cast<float>(n) / 0.75f) + 1, 16);
    size_t capacity = 1;
    while (capacity < wanted && capacity < (size_t{1} << 30)) capacity <<= 1;
    return capacity;
  }

  // Adds key `id` unless an equal key is present; returns the id of the key
  // that is in the map afterwards.
  template <typename Equal>
  size_t Put(uint32_t hash, size_t id, Equal equal) {
    uint32_t spread = hash ^ (hash >> 16);
    std::vector<Entry>& bucket = buckets_[spread & (buckets_.size() - 1)];
    for (const Entry& e : bucket) {
      if (e.spread == spread && equal(e.id)) return e.id;
    }
    bool treeify = bucket.size() >= 8;
    bucket.push_back({spread, id});
    if (treeify && buckets_.size() < 64) Resize();
    if (++size_ > threshold_) Resize();
    return id;
  }

  std::vector<size_t> Order() const {
    std::vector<size_t> order;
    order.reserve(size_);
    for (const auto& bucket : buckets_) {
      for (const Entry& e : bucket) order.push_back(e.id);
    }
    return order;
  }

 private:
  struct Entry {
    uint32_t spread;
    size_t id;
  };

  void Resize() {
    std::vector<std::vector<Entry>> grown(buckets_.size() * 2);
    for (const auto& bucket : buckets_) {
      for (const Entry& e : bucket)
        grown[e.spread & (grown.size() - 1)].push_back(e);
    }
    buckets_ = std::move(grown);
    threshold_ = buckets_.size() * 3 / 4;
  }

  std::vector<std::vector<Entry>> buckets_;
  size_t threshold_ = 0;
  size_t size_ = 0;
};

// ---------------------------------------------------------------------------
// java.util.Random, which makes States.MathRandom with a seed match AWS.

class JavaRandom {
 public:
  explicit JavaRandom(int64_t seed)
      : seed_((static_cast<uint64_t>(seed) ^ kMultiplier) & kMask) {}

  int32_t NextBits(int bits) {
    seed_ = (seed_ * kMultiplier + 0xB) & kMask;
    return static_cast<int32_t>(static_cast<uint32_t>(seed_ >> (48 - bits)));
  }

  // Random#nextInt(int bound), bound > 0.
  int32_t NextInt(int32_t bound) {
    int32_t r = NextBits(31);
    int32_t m = bound - 1;
    if ((bound & m) == 0) {
      return static_cast<int32_t>((static_cast<int64_t>(bound) * r) >> 31);
    }
    for (int32_t u = r;; u = NextBits(31)) {
      r = u % bound;
      if (static_cast<int32_t>(static_cast<uint32_t>(u) -
                               static_cast<uint32_t>(r) +
                               static_cast<uint32_t>(m)) >= 0) {
        return r;
      }
    }
  }

 private:
  static constexpr uint64_t kMultiplier = 0x5DEECE66DULL;
  static constexpr uint64_t kMask = (uint64_t{1} << 48) - 1;
  uint64_t seed_;
};

// ---------------------------------------------------------------------------
// Number conversions as AWS applies them to numeric arguments.

// A Java (int) cast: toward zero, saturating.
int64_t TruncateToInt32(const json::Value& v) {
  if (v.IsInt64()) {
    return std::clamp<int64_t>(v.GetInt64(),
                               std::numeric_limits<int32_t>::min(),
                               std::numeric_limits<int32_t>::max());
  }
  if (v.IsUint64()) return std::numeric_limits<int32_t>::max();
  double d = std::trunc(v.GetDouble());
  if (d <= std::numeric_limits<int32_t>::min())
    return std::numeric_limits<int32_t>::min();
  if (d >= std::numeric_limits<int32_t>::max())
    return std::numeric_limits<int32_t>::max();
  return static_cast<int64_t>(d);
}

// A Java (long) cast.
int64_t TruncateToInt64(const json::Value& v) {
  if (v.IsInt64()) return v.GetInt64();
  if (v.IsUint64()) return std::numeric_limits<int64_t>::max();
  double d = std::trunc(v.GetDouble());
  if (d <= -9.2233720368547758e18) return std::numeric_limits<int64_t>::min();
  if (d >= 9.2233720368547758e18) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(d);
}

// Math#round(double): half up; nullopt beyond the range of a long.
std::optional<int64_t> JavaRound(const json::Value& v) {
  if (v.IsInt64()) return v.GetInt64();
  if (v.IsUint64()) return std::nullopt;
  double d = v.GetDouble();
  double floor = std::floor(d);
  double rounded = d - floor >= 0.5 ? floor + 1 : floor;
  if (rounded < -9.2233720368547758e18 || rounded >= 9.2233720368547758e18)
    return std::nullopt;
  return static_cast<int64_t>(rounded);
}

// A numeric argument that AWS documents as "rounded off to the nearest
// integer" when it is not one (ArrayPartition, ArrayRange, MathRandom; its
// recordings show MathAdd rounding half up, as Math#round does), then
// saturated to an int.
int64_t RoundToInt32(const json::Value& v) {
  std::optional<int64_t> rounded = JavaRound(v);
  if (!rounded.has_value()) {
    return v.IsUint64() || v.GetDouble() > 0 ? std::numeric_limits<int32_t>::max()
                                             : std::numeric_limits<int32_t>::min();
  }
  return std::clamp<int64_t>(*rounded, std::numeric_limits<int32_t>::min(),
                             std::numeric_limits<int32_t>::max());
}

bool InInt32(int64_t x) {
  return x >= std::numeric_limits<int32_t>::min() &&
         x <= std::numeric_limits<int32_t>::max();
}

// ---------------------------------------------------------------------------
// Encodings.

std::string Base64Encode(absl::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) {
    return static_cast<uint32_t>(static_cast<unsigned char>(in[k]));
  };
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out.push_back(kAlphabet[n >> 18]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(kAlphabet[(n >> 6) & 63]);
    out.push_back(kAlphabet[n & 63]);
  }
  if (i + 1 == in.size()) {
    uint32_t n = byte(i) << 16;
    out.push_back(kAlphabet[n >> 18]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.append("==");
  } else if (i + 2 == in.size()) {
    uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8);
    out.push_back(kAlphabet[n >> 18]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(kAlphabet[(n >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

// Lenient decoding as AWS does it (the Apache Commons Codec way): characters
// outside the alphabet are skipped, the first '=' ends the input, a trailing
// partial group yields its whole bytes, and the URL-safe '-' '_' also count.
std::string Base64DecodeLenient(absl::string_view in) {
  std::string out;
  out.reserve(in.size() / 4 * 3 + 2);
  uint32_t bits = 0;
  int count = 0;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z') {
      v = ch - 'A';
    } else if (ch >= 'a' && ch <= 'z') {
      v = ch - 'a' + 26;
    } else if (ch >= '0' && ch <= '9') {
      v = ch - '0' + 52;
    } else if (ch == '+' || ch == '-') {
      v = 62;
    } else if (ch == '/' || ch == '_') {
      v = 63;
    } else if (ch == '=') {
      break;
    } else {
      continue;
    }
    bits = (bits << 6) | static_cast<uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<char>((bits >> 16) & 0xFF));
      out.push_back(static_cast<char>((bits >> 8) & 0xFF));
      out.push_back(static_cast<char>(bits & 0xFF));
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) {
    out.push_back(static_cast<char>((bits >> 4) & 0xFF));
  } else if (count == 3) {
    out.push_back(static_cast<char>((bits >> 10) & 0xFF));
    out.push_back(static_cast<char>((bits >> 2) & 0xFF));
  }
  return out;
}

const EVP_MD* HashAlgorithm(absl::string_view name) {
  if (name == "MD5") return EVP_md5();
  if (name == "SHA-1") return EVP_sha1();
  if (name == "SHA-256") return EVP_sha256();
  if (name == "SHA-384") return EVP_sha384();
  if (name == "SHA-512") return EVP_sha512();
  return nullptr;
}

// ---------------------------------------------------------------------------
// Evaluation.

absl::string_view StringOf(const json::Value& v) {
  return absl::string_view(v.GetString(), v.GetStringLength());
}

json::Value StringValue(absl::string_view s, json::Allocator& allocator) {
  return json::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()),
                     allocator);
}

json::Value IntValue(int64_t x) {
  json::Value v;
  v.SetInt64(x);
  return v;
}

struct Evaluated {
  json::Value value;
  // Produced by States.StringToJson: AWS holds it as a JSON tree, which
  // States.Format prints as JSON rather than as a Java object.
  bool json_tree = false;
};

class Evaluator {
 public:
  Evaluator(const PathResolver& resolve, RandomSource& random)
      : resolve_(resolve), random_(random) {}

  // Set when the failure is a resolver error to pass through unchanged.
  bool passthrough() const { return passthrough_; }

  absl::StatusOr<Evaluated> Eval(const IntrinsicNode& node,
                                 json::Allocator& out) {
    Evaluated result;
    switch (node.kind) {
      case IntrinsicNode::Kind::kString:
        result.value = StringValue(node.text, out);
        return result;
      case IntrinsicNode::Kind::kInt:
        result.value.SetInt64(node.int_value);
        return result;
      case IntrinsicNode::Kind::kDouble:
        result.value.SetDouble(node.double_value);
        return result;
      case IntrinsicNode::Kind::kBool:
        result.value.SetBool(node.bool_value);
        return result;
      case IntrinsicNode::Kind::kNull:
        return result;
      case IntrinsicNode::Kind::kPath: {
        absl::StatusOr<json::Value> value = resolve_(node.text, out);
        if (value.ok()) {
          result.value = std::move(*value);
          return result;
        }
        if (absl::IsNotFound(value.status())) {
          return absl::NotFoundError(PathNotFound(node.text));
        }
        passthrough_ = true;
        return value.status();
      }
      case IntrinsicNode::Kind::kCall:
        return Call(node, out);
    }
    return result;
  }

 private:
  static absl::Status Invalid(const IntrinsicNode& call) {
    return absl::InvalidArgumentError(
        absl::StrCat("Invalid arguments in ", call.name));
  }

  std::string PathNotFound(absl::string_view path) {
    // AWS names a context path rewritten against "$" and quotes the state
    // input even for "$$." paths.
    absl::string_view field =
        absl::StartsWith(path, "$$") ? path.substr(1) : path;
    std::string input = "{}";
    json::Allocator scratch;
    absl::StatusOr<json::Value> root = resolve_("$", scratch);
    if (root.ok()) input = Json(*root);
    return absl::StrCat("The JsonPath argument for the field '", field,
                        "' could not be found in the input '", input, "'");
  }

  absl::StatusOr<Evaluated> Call(const IntrinsicNode& call,
                                 json::Allocator& out) {
    std::vector<Evaluated> args;
    args.reserve(call.args.size());
    for (const IntrinsicNode& arg : call.args) {
      ASSIGN_OR_RETURN(Evaluated value, Eval(arg, scratch_));
      args.push_back(std::move(value));
    }
    const FunctionInfo& info = InfoOf(call.function);
    int n = static_cast<int>(args.size());
    if (n < info.min_args ||
        (info.max_args != kUnlimited && n > info.max_args)) {
      return Invalid(call);
    }
    Evaluated result;
    absl::Status status;
    switch (call.function) {
      case Function::kFormat:
        status = Format(call, args, out, &result.value);
        break;
      case Function::kStringToJson:
        status = StringToJson(call, args[0].value, out, &result.value);
        result.json_tree = true;
        break;
      case Function::kJsonToString:
        result.value = StringValue(Json(args[0].value), out);
        break;
      case Function::kArray:
        result.value.SetArray();
        result.value.Reserve(static_cast<rapidjson::SizeType>(args.size()),
                             out);
        for (Evaluated& arg : args)
          result.value.PushBack(json::Value(arg.value, out), out);
        break;
      case Function::kArrayPartition:
        status = ArrayPartition(call, args, out, &result.value);
        break;
      case Function::kArrayContains:
        status = ArrayContains(call, args, &result.value);
        break;
      case Function::kArrayRange:
        status = ArrayRange(call, args, out, &result.value);
        break;
      case Function::kArrayGetItem:
        status = ArrayGetItem(call, args, out, &result.value);
        break;
      case Function::kArrayLength:
        if (!args[0].value.IsArray()) return Invalid(call);
        result.value = IntValue(args[0].value.Size());
        break;
      case Function::kArrayUnique:
        status = ArrayUnique(call, args, out, &result.value);
        break;
      case Function::kBase64Encode:
      case Function::kBase64Decode: {
        const json::Value& in = args[0].value;
        if (!in.IsString() || Utf16Length(StringOf(in)) > kMaxInputChars)
          return Invalid(call);
        result.value = StringValue(
            call.function == Function::kBase64Encode
                ? Base64Encode(StringOf(in))
                : DecodeUtf8Lossy(Base64DecodeLenient(StringOf(in))),
            out);
        break;
      }
      case Function::kHash:
        status = Hash(call, args, out, &result.value);
        break;
      case Function::kJsonMerge:
        status = JsonMerge(call, args, out, &result.value);
        break;
      case Function::kMathRandom:
        status = MathRandom(call, args, &result.value);
        break;
      case Function::kMathAdd:
        status = MathAdd(call, args, &result.value);
        break;
      case Function::kStringSplit:
        status = StringSplit(call, args, out, &result.value);
        break;
      case Function::kUuid:
        result.value = StringValue(Uuid(), out);
        break;
    }
    if (!status.ok()) return status;
    return result;
  }

  absl::Status Format(const IntrinsicNode& call,
                      const std::vector<Evaluated>& args, json::Allocator& out,
                      json::Value* result) {
    FormatTemplate from_path;
    const FormatTemplate* tmpl = nullptr;
    if (call.literal_template.has_value()) {
      tmpl = &*call.literal_template;
    } else if (args[0].value.IsString()) {
      from_path = ParseTemplate(StringOf(args[0].value), /*escapes=*/false);
      tmpl = &from_path;
    } else {
      return Invalid(call);
    }
    if (!tmpl->valid || tmpl->pieces.size() != args.size())
      return Invalid(call);
    std::string text = tmpl->pieces[0];
    for (size_t i = 1; i < args.size(); ++i) {
      if (args[i].json_tree) {
        AppendJson(args[i].value, &text);
      } else {
        AppendJavaString(args[i].value, &text);
      }
      text.append(tmpl->pieces[i]);
    }
    *result = StringValue(text, out);
    return absl::OkStatus();
  }

  absl::Status StringToJson(const IntrinsicNode& call, const json::Value& in,
                            json::Allocator& out, json::Value* result) {
    if (!in.IsString()) return Invalid(call);
    absl::string_view text = StringOf(in);
    while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
    if (text.empty()) {
      result->SetNull();  // AWS answers null for empty or blank text
      return absl::OkStatus();
    }
    // Like Jackson's readTree, the first value counts and anything after it
    // is ignored.
    auto doc = json::ParseFirstValue(text, &out);
    if (!doc.ok()) return Invalid(call);
    *result = std::move(static_cast<json::Value&>(*doc));
    return absl::OkStatus();
  }

  absl::Status ArrayPartition(const IntrinsicNode& call,
                              const std::vector<Evaluated>& args,
                              json::Allocator& out, json::Value* result) {
    const json::Value& array = args[0].value;
    if (!array.IsArray() || !args[1].value.IsNumber()) return Invalid(call);
    int64_t chunk = RoundToInt32(args[1].value);
    if (chunk <= 0) return Invalid(call);
    result->SetArray();
    rapidjson::SizeType size = array.Size();
    for (rapidjson::SizeType start = 0; start < size;) {
      rapidjson::SizeType end = static_cast<rapidjson::SizeType>(
          std::min<int64_t>(static_cast<int64_t>(start) + chunk, size));
      json::Value part(rapidjson::kArrayType);
      part.Reserve(end - start, out);
      for (rapidjson::SizeType i = start; i < end; ++i)
        part.PushBack(json::Value(array[i], out), out);
      result->PushBack(part, out);
      start = end;
    }
    return absl::OkStatus();
  }

  // AWS compares the printed forms: {"a":1,"b":2} differs from {"b":2,"a":1},
  // and true matches "true".
  absl::Status ArrayContains(const IntrinsicNode& call,
                             const std::vector<Evaluated>& args,
                             json::Value* result) {
    const json::Value& array = args[0].value;
    if (!array.IsArray()) return Invalid(call);
    std::string target = JavaString(args[1].value);
    bool found = false;
    for (const json::Value& e : array.GetArray()) {
      if (JavaString(e) == target) {
        found = true;
        break;
      }
    }
    result->SetBool(found);
    return absl::OkStatus();
  }

  absl::Status ArrayRange(const IntrinsicNode& call,
                          const std::vector<Evaluated>& args,
                          json::Allocator& out, json::Value* result) {
    for (const Evaluated& arg : args) {
      if (!arg.value.IsNumber()) return Invalid(call);
    }
    int64_t start = RoundToInt32(args[0].value);
    int64_t end = RoundToInt32(args[1].value);
    int64_t step = RoundToInt32(args[2].value);
    if (step == 0) return Invalid(call);
    int64_t count = 0;
    if (step > 0 && end >= start) count = (end - start) / step + 1;
    if (step < 0 && start >= end) count = (start - end) / -step + 1;
    if (count > kMaxRangeItems) return Invalid(call);
    result->SetArray();
    result->Reserve(static_cast<rapidjson::SizeType>(count), out);
    for (int64_t i = 0; i < count; ++i)
      result->PushBack(IntValue(start + i * step), out);
    return absl::OkStatus();
  }

  absl::Status ArrayGetItem(const IntrinsicNode& call,
                            const std::vector<Evaluated>& args,
                            json::Allocator& out, json::Value* result) {
    const json::Value& array = args[0].value;
    if (!array.IsArray() || !args[1].value.IsNumber()) return Invalid(call);
    if (array.Empty()) {
      result->SetNull();  // AWS answers null for any index into []
      return absl::OkStatus();
    }
    int64_t index = TruncateToInt32(args[1].value);
    if (index < 0 || index >= static_cast<int64_t>(array.Size()))
      return Invalid(call);
    result->CopyFrom(array[static_cast<rapidjson::SizeType>(index)], out);
    return absl::OkStatus();
  }

  absl::Status ArrayUnique(const IntrinsicNode& call,
                           const std::vector<Evaluated>& args,
                           json::Allocator& out, json::Value* result) {
    const json::Value& array = args[0].value;
    if (!array.IsArray()) return Invalid(call);
    JavaHashOrder set(JavaHashOrder::CapacityForCollection(array.Size()));
    for (rapidjson::SizeType i = 0; i < array.Size(); ++i) {
      set.Put(JavaHash(array[i]), i, [&](size_t other) {
        return JavaEquals(array[static_cast<rapidjson::SizeType>(other)],
                          array[i]);
      });
    }
    std::vector<size_t> order = set.Order();
    result->SetArray();
    result->Reserve(static_cast<rapidjson::SizeType>(order.size()), out);
    for (size_t i : order) {
      result->PushBack(
          json::Value(array[static_cast<rapidjson::SizeType>(i)], out), out);
    }
    return absl::OkStatus();
  }

  absl::Status Hash(const IntrinsicNode& call,
                    const std::vector<Evaluated>& args, json::Allocator& out,
                    json::Value* result) {
    const json::Value& data = args[0].value;
    const json::Value& algorithm = args[1].value;
    if (!algorithm.IsString() || data.IsNull()) return Invalid(call);
    const EVP_MD* md = HashAlgorithm(StringOf(algorithm));
    if (md == nullptr) return Invalid(call);
    // AWS hashes a non-string value's printed form.
    std::string printed;
    absl::string_view bytes;
    if (data.IsString()) {
      bytes = StringOf(data);
    } else {
      printed = JavaString(data);
      bytes = printed;
    }
    if (Utf16Length(bytes) > kMaxInputChars) return Invalid(call);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, md, nullptr) !=
        1) {
      return absl::InternalError("Invalid arguments in States.Hash");
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(length * 2);
    for (unsigned int i = 0; i < length; ++i) {
      hex.push_back(kHex[digest[i] >> 4]);
      hex.push_back(kHex[digest[i] & 0xF]);
    }
    *result = StringValue(hex, out);
    return absl::OkStatus();
  }

  // A shallow merge into a java.util.HashMap, so the keys come out in hash
  // order; the second object wins on equal keys.
  absl::Status JsonMerge(const IntrinsicNode& call,
                         const std::vector<Evaluated>& args,
                         json::Allocator& out, json::Value* result) {
    const json::Value& left = args[0].value;
    const json::Value& right = args[1].value;
    if (!left.IsObject() || !right.IsObject()) return Invalid(call);
    if (args[2].value.IsTrue())
      return Invalid(call);  // deep merge is not supported
    std::vector<std::pair<const json::Value*, const json::Value*>> entries;
    entries.reserve(left.MemberCount() + right.MemberCount());
    JavaHashOrder map(16);
    for (const json::Value* object : {&left, &right}) {
      for (const auto& m : object->GetObject()) {
        size_t id = entries.size();
        entries.emplace_back(&m.name, &m.value);
        size_t kept = map.Put(
            static_cast<uint32_t>(JavaStringHash(StringOf(m.name))), id,
            [&](size_t other) { return *entries[other].first == m.name; });
        if (kept != id) entries[kept].second = &m.value;
      }
    }
    result->SetObject();
    for (size_t id : map.Order()) {
      result->AddMember(json::Value(*entries[id].first, out),
                        json::Value(*entries[id].second, out), out);
    }
    return absl::OkStatus();
  }

  absl::Status MathRandom(const IntrinsicNode& call,
                          const std::vector<Evaluated>& args,
                          json::Value* result) {
    for (const Evaluated& arg : args) {
      if (!arg.value.IsNumber()) return Invalid(call);
    }
    int64_t start = RoundToInt32(args[0].value);
    int64_t end = RoundToInt32(args[1].value);
    if (start >= end || end - start > std::numeric_limits<int32_t>::max())
      return Invalid(call);
    int64_t bound = end - start;
    int64_t offset;
    if (args.size() == 3) {
      offset = JavaRandom(TruncateToInt64(args[2].value))
                   .NextInt(static_cast<int32_t>(bound));
    } else {
      unsigned __int128 wide = static_cast<unsigned __int128>(random_.Next()) *
                               static_cast<uint64_t>(bound);
      offset = static_cast<int64_t>(wide >> 64);
    }
    *result = IntValue(start + offset);
    return absl::OkStatus();
  }

  absl::Status MathAdd(const IntrinsicNode& call,
                       const std::vector<Evaluated>& args,
                       json::Value* result) {
    int64_t sum = 0;
    for (const Evaluated& arg : args) {
      if (!arg.value.IsNumber()) return Invalid(call);
      std::optional<int64_t> x = JavaRound(arg.value);
      if (!x.has_value() || !InInt32(*x)) return Invalid(call);
      sum += *x;
    }
    if (!InInt32(sum)) return Invalid(call);
    *result = IntValue(sum);
    return absl::OkStatus();
  }

  // java.util.StringTokenizer: every character of the second argument is a
  // delimiter and empty tokens are dropped.
  absl::Status StringSplit(const IntrinsicNode& call,
                           const std::vector<Evaluated>& args,
                           json::Allocator& out, json::Value* result) {
    if (!args[0].value.IsString() || !args[1].value.IsString())
      return Invalid(call);
    absl::string_view text = StringOf(args[0].value);
    absl::string_view delimiters = StringOf(args[1].value);
    std::vector<uint32_t> delimiter_set;
    for (size_t i = 0; i < delimiters.size();)
      delimiter_set.push_back(NextCodePoint(delimiters, &i));
    auto is_delimiter = [&](uint32_t cp) {
      return std::find(delimiter_set.begin(), delimiter_set.end(), cp) !=
             delimiter_set.end();
    };
    result->SetArray();
    size_t token_start = 0;
    for (size_t i = 0; i < text.size();) {
      size_t at = i;
      if (is_delimiter(NextCodePoint(text, &i))) {
        if (at > token_start) {
          result->PushBack(
              StringValue(text.substr(token_start, at - token_start), out),
              out);
        }
        token_start = i;
      }
    }
    if (text.size() > token_start) {
      result->PushBack(StringValue(text.substr(token_start), out), out);
    }
    return absl::OkStatus();
  }

  // A version 4 UUID, lower case.
  std::string Uuid() {
    unsigned char bytes[16];
    for (int half = 0; half < 2; ++half) {
      uint64_t r = random_.Next();
      for (int i = 0; i < 8; ++i)
        bytes[half * 8 + i] = static_cast<unsigned char>(r >> (56 - 8 * i));
    }
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    static constexpr char kHex[] = "0123456789abcdef";
    std::string uuid;
    uuid.reserve(36);
    for (int i = 0; i < 16; ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) uuid.push_back('-');
      uuid.push_back(kHex[bytes[i] >> 4]);
      uuid.push_back(kHex[bytes[i] & 0xF]);
    }
    return uuid;
  }

  const PathResolver& resolve_;
  RandomSource& random_;
  // Owns the arguments of every call; results go to the caller's allocator.
  json::Allocator scratch_;
  bool passthrough_ = false;
};

void CollectPaths(const IntrinsicNode& node, std::vector<std::string>* out) {
  if (node.kind == IntrinsicNode::Kind::kPath) out->push_back(node.text);
  for (const IntrinsicNode& arg : node.args) CollectPaths(arg, out);
}

}  // namespace

IntrinsicCall::IntrinsicCall(
    std::string text, std::shared_ptr<const internal::IntrinsicNode> root)
    : text_(std::move(text)), root_(std::move(root)) {}

absl::StatusOr<IntrinsicCall> IntrinsicCall::Parse(absl::string_view text) {
  Parser parser(text);
  ASSIGN_OR_RETURN(IntrinsicNode root, parser.ParseWhole());
  return IntrinsicCall(std::string(text),
                       std::make_shared<const IntrinsicNode>(std::move(root)));
}

bool IntrinsicCall::LooksLikeCall(absl::string_view text) {
  return absl::StartsWith(text, "States.");
}

absl::StatusOr<json::Value> IntrinsicCall::Evaluate(
    const PathResolver& resolve, RandomSource& random,
    json::Allocator& allocator) const {
  Evaluator evaluator(resolve, random);
  absl::StatusOr<Evaluated> result = evaluator.Eval(*root_, allocator);
  if (result.ok()) return std::move(result->value);
  if (evaluator.passthrough()) return result.status();
  return absl::Status(
      result.status().code(),
      absl::StrCat("States.Runtime: The function '", text_,
                   "' had the following error: ", result.status().message()));
}

std::vector<std::string> IntrinsicCall::PathArguments() const {
  std::vector<std::string> paths;
  CollectPaths(*root_, &paths);
  return paths;
}

}  // namespace stepflow::asl
