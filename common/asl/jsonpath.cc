// A port of Jayway JsonPath 2.7.0 (PathCompiler, FilterCompiler, the path
// tokens, the evaluators and the value nodes) without exceptions: parsing
// reports the first error with its position, evaluation returns an Outcome.
//
// Reading guide. Parsing builds a Program: every path (the main one and each
// path inside a filter) is a CompiledPath, a vector of Segments that mirror
// Jayway's PathTokens; filters are Expr trees over Operands. Evaluation walks
// segments the way Jayway's tokens call `next().evaluate(...)`: one function
// per token kind, the same "upstream definite" rules decide between skipping
// and failing, and the deep scan keeps Jayway's array handling (see Walk()).
// Filter operands become VNodes, which reproduce Jayway's ValueNode
// equality, including its asymmetries between strings and numbers. `=~`
// uses the Regex below (Java syntax, a Pike VM) rather than std::regex,
// whose backtracking recursion overflows the stack on long strings.
#include "common/asl/jsonpath.h"
#include "common/json/utf8.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace stepflow::asl {
namespace jsonpath_internal {
namespace {

// ---------------------------------------------------------------------------
// Numbers as java.math.BigDecimal holds them. Jayway turns every number it
// compares into a BigDecimal, and compares a string with a number through
// BigDecimal.toString(), so the scale matters: 42.0 is "42.0", 010 is "10",
// 1e2 is "1E+2".

struct Decimal {
  bool negative = false;
  std::string digits = "0";  // unscaled magnitude without leading zeros
  int64_t scale = 0;         // value = digits * 10^-scale

  bool IsZero() const { return digits == "0"; }
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// new BigDecimal(String): [+-](digits[.digits]|.digits)([eE][+-]digits)?
std::optional<Decimal> ParseDecimal(absl::string_view s) {
  Decimal d;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    d.negative = s[i] == '-';
    ++i;
  }
  std::string digits;
  int64_t fraction = 0;
  bool any = false;
  while (i < s.size() && IsDigit(s[i])) {
    digits.push_back(s[i++]);
    any = true;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && IsDigit(s[i])) {
      digits.push_back(s[i++]);
      ++fraction;
      any = true;
    }
  }
  if (!any) return std::nullopt;
  int64_t exponent = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool negative_exponent = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      negative_exponent = s[i] == '-';
      ++i;
    }
    if (i >= s.size()) return std::nullopt;
    while (i < s.size() && IsDigit(s[i])) {
      exponent = exponent * 10 + (s[i++] - '0');
      if (exponent > 1000000000) return std::nullopt;  // NumberFormatException
    }
    if (negative_exponent) exponent = -exponent;
  }
  if (i != s.size()) return std::nullopt;
  size_t first = digits.find_first_not_of('0');
  d.digits = first == std::string::npos ? "0" : digits.substr(first);
  d.scale = fraction - exponent;
  if (d.IsZero()) d.negative = false;  // BigDecimal has no negative zero
  return d;
}

// BigDecimal.toString().
std::string DecimalToString(const Decimal& d) {
  const std::string& coefficient = d.digits;
  const int64_t size = static_cast<int64_t>(coefficient.size());
  const int64_t adjusted = -d.scale + (size - 1);
  std::string out = d.negative ? "-" : "";
  if (d.scale >= 0 && adjusted >= -6) {
    if (d.scale == 0) {
      out += coefficient;
    } else if (size > d.scale) {
      out.append(coefficient, 0, size - d.scale);
      out.push_back('.');
      out.append(coefficient, size - d.scale, std::string::npos);
    } else {
      out += "0.";
      out.append(d.scale - size, '0');
      out += coefficient;
    }
    return out;
  }
  out.push_back(coefficient[0]);
  if (size > 1) {
    out.push_back('.');
    out.append(coefficient, 1, std::string::npos);
  }
  out.push_back('E');
  if (adjusted > 0) out.push_back('+');
  absl::StrAppend(&out, adjusted);
  return out;
}

int CompareMagnitude(const Decimal& a, const Decimal& b) {
  // Position of the leading digit relative to the decimal point.
  const int64_t order_a = static_cast<int64_t>(a.digits.size()) - a.scale;
  const int64_t order_b = static_cast<int64_t>(b.digits.size()) - b.scale;
  if (order_a != order_b) return order_a < order_b ? -1 : 1;
  const size_t n = std::max(a.digits.size(), b.digits.size());
  for (size_t i = 0; i < n; ++i) {
    char x = i < a.digits.size() ? a.digits[i] : '0';
    char y = i < b.digits.size() ? b.digits[i] : '0';
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

// BigDecimal.compareTo().
int CompareDecimal(const Decimal& a, const Decimal& b) {
  const int sign_a = a.IsZero() ? 0 : (a.negative ? -1 : 1);
  const int sign_b = b.IsZero() ? 0 : (b.negative ? -1 : 1);
  if (sign_a != sign_b) return sign_a < sign_b ? -1 : 1;
  if (sign_a == 0) return 0;
  const int magnitude = CompareMagnitude(a, b);
  return sign_a > 0 ? magnitude : -magnitude;
}

// BigDecimal.intValue(): the integer part, truncated to its low 32 bits.
int32_t DecimalIntValue(const Decimal& d) {
  uint32_t value = 0;
  int64_t integer_digits = static_cast<int64_t>(d.digits.size()) - d.scale;
  for (int64_t i = 0; i < integer_digits; ++i) {
    char c = i < static_cast<int64_t>(d.digits.size()) ? d.digits[i] : '0';
    value = value * 10u + static_cast<uint32_t>(c - '0');
    if (i > 64 && value == 0) break;  // 10^64 and beyond are 0 mod 2^32
  }
  if (d.negative) value = 0u - value;
  return static_cast<int32_t>(value);
}

// Double.toString(double): the shortest digits that round-trip, laid out
// plainly for 1e-3 <= |d| < 1e7 and as d.dddE[-]n otherwise.
std::string JavaDoubleString(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), d,
                              std::chars_format::scientific);
  absl::string_view text(buffer, result.ptr - buffer);
  std::string out;
  if (text[0] == '-') {
    out.push_back('-');
    text.remove_prefix(1);
  }
  size_t e = text.find('e');
  std::string digits;
  for (char c : text.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exponent = 0;
  std::from_chars(text.data() + e + (text[e + 1] == '+' ? 2 : 1),
                  text.data() + text.size(), exponent);
  const double magnitude = std::fabs(d);
  if (magnitude >= 1e-3 && magnitude < 1e7) {
    if (exponent >= 0) {
      std::string integer =
          digits.substr(0, std::min<size_t>(digits.size(), exponent + 1));
      integer.append(exponent + 1 - integer.size(), '0');
      std::string fraction = digits.size() > static_cast<size_t>(exponent + 1)
                                 ? digits.substr(exponent + 1)
                                 : "0";
      absl::StrAppend(&out, integer, ".", fraction);
    } else {
      absl::StrAppend(&out, "0.", std::string(-exponent - 1, '0'), digits);
    }
    return out;
  }
  out.push_back(digits[0]);
  out.push_back('.');
  out += digits.size() > 1 ? digits.substr(1) : "0";
  absl::StrAppend(&out, "E", exponent);
  return out;
}

// Number.toString() of the value json-smart would have parsed: an Integer or
// Long for integers, a Double otherwise.
std::string JavaNumberString(const json::Value& v) {
  if (v.IsDouble()) return JavaDoubleString(v.GetDouble());
  if (v.IsInt64()) return absl::StrCat(v.GetInt64());
  return absl::StrCat(v.GetUint64());
}

Decimal JsonNumberToDecimal(const json::Value& v) {
  std::optional<Decimal> d = ParseDecimal(JavaNumberString(v));
  return d.has_value() ? *d : Decimal();
}

// ---------------------------------------------------------------------------
// Java strings are UTF-16; ours are UTF-8. Lengths and ordering follow Java.

size_t Utf16Length(absl::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;  // a lead byte starts a code point
    if (c >= 0xF0) ++n;           // outside the BMP: a surrogate pair
  }
  return n;
}

using json::AppendUtf8;

// One code point (bytes of invalid UTF-8 stand for themselves).
const auto DecodeUtf8 = json::NextCodePoint;

// String.compareTo(): code units, where a supplementary character (a pair
// of surrogates, 0xD800..) sorts before U+E000..U+FFFF.
int Utf16Compare(absl::string_view a, absl::string_view b) {
  size_t i = 0;
  size_t j = 0;
  while (i < a.size() && j < b.size()) {
    uint32_t x = DecodeUtf8(a, &i);
    uint32_t y = DecodeUtf8(b, &j);
    if (x == y) continue;
    auto first_unit = [](uint32_t cp) -> uint32_t {
      return cp >= 0x10000 ? 0xD800 + ((cp - 0x10000) >> 10) : cp;
    };
    uint32_t ux = first_unit(x);
    uint32_t uy = first_unit(y);
    if (ux != uy) return ux < uy ? -1 : 1;
    return x < y ? -1 : 1;  // same high surrogate: the low one decides
  }
  if (i < a.size()) return 1;
  if (j < b.size()) return -1;
  return 0;
}


int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Jayway's Utils.unescape(): \\ \' \" \r \f \t \n \b \uXXXX; any other
// escaped character stands for itself; a trailing backslash is kept. False
// when a \u escape is not hexadecimal.
bool Unescape(absl::string_view s, std::string* out) {
  out->clear();
  out->reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    if (i + 1 >= s.size()) {
      out->push_back('\\');
      break;
    }
    char e = s[++i];
    switch (e) {
      case 'r':
        out->push_back('\r');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'b':
        out->push_back('\b');
        break;
      case 'u': {
        if (i + 4 >= s.size()) return true;  // Jayway drops a truncated \u
        uint32_t unit = 0;
        for (int k = 1; k <= 4; ++k) {
          int h = HexValue(s[i + k]);
          if (h < 0) return false;
          unit = unit * 16 + h;
        }
        i += 4;
        if (unit >= 0xD800 && unit < 0xDC00 && i + 6 < s.size() &&
            s[i + 1] == '\\' && s[i + 2] == 'u') {
          uint32_t low = 0;
          bool ok = true;
          for (int k = 3; k <= 6; ++k) {
            int h = HexValue(s[i + k]);
            if (h < 0) ok = false;
            low = low * 16 + (h < 0 ? 0 : h);
          }
          if (ok && low >= 0xDC00 && low < 0xE000) {
            AppendUtf8(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), out);
            i += 6;
            break;
          }
        }
        AppendUtf8(unit, out);
        break;
      }
      default:
        out->push_back(e);  // \\ \' \" and any other character
        break;
    }
  }
  return true;
}

// String.trim(): removes characters <= ' ' at both ends.
absl::string_view JavaTrim(absl::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && static_cast<unsigned char>(s[b]) <= ' ') ++b;
  while (e > b && static_cast<unsigned char>(s[e - 1]) <= ' ') --e;
  return s.substr(b, e - b);
}

// ---------------------------------------------------------------------------
// JSON literals in filters are parsed by json-smart in permissive mode:
// single-quoted and unquoted strings, trailing commas and leading zeros are
// accepted. This reader covers those.

class LenientJsonReader {
 public:
  LenientJsonReader(absl::string_view text, json::Allocator& allocator)
      : text_(text), allocator_(allocator) {}

  bool Read(json::Value* out) {
    if (!Value(out, 0)) return false;
    SkipSpace();
    return pos_ == text_.size();
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
            text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Value(json::Value* out, int depth) {
    if (depth > 512) return false;
    SkipSpace();
    if (pos_ >= text_.size()) return false;
    char c = text_[pos_];
    if (c == '{') return Object(out, depth);
    if (c == '[') return Array(out, depth);
    if (c == '"' || c == '\'') {
      std::string s;
      if (!QuotedString(&s)) return false;
      out->SetString(s.data(), static_cast<rapidjson::SizeType>(s.size()),
                     allocator_);
      return true;
    }
    return Bare(out, /*in_object=*/false);
  }

  bool QuotedString(std::string* s) {
    char quote = text_[pos_++];
    while (pos_ < text_.size() && text_[pos_] != quote) {
      char c = text_[pos_++];
      if (c != '\\') {
        s->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) return false;
      char e = text_[pos_++];
      switch (e) {
        case 'b':
          s->push_back('\b');
          break;
        case 'f':
          s->push_back('\f');
          break;
        case 'n':
          s->push_back('\n');
          break;
        case 'r':
          s->push_back('\r');
          break;
        case 't':
          s->push_back('\t');
          break;
        case 'u': {
          if (pos_ + 4 > text_.size()) return false;
          uint32_t unit = 0;
          for (int k = 0; k < 4; ++k) {
            int h = HexValue(text_[pos_ + k]);
            if (h < 0) return false;
            unit = unit * 16 + h;
          }
          pos_ += 4;
          if (unit >= 0xD800 && unit < 0xDC00 && pos_ + 6 <= text_.size() &&
              text_[pos_] == '\\' && text_[pos_ + 1] == 'u') {
            uint32_t low = 0;
            bool ok = true;
            for (int k = 2; k < 6; ++k) {
              int h = HexValue(text_[pos_ + k]);
              if (h < 0) ok = false;
              low = low * 16 + (h < 0 ? 0 : h);
            }
            if (ok && low >= 0xDC00 && low < 0xE000) {
              unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
              pos_ += 6;
            }
          }
          AppendUtf8(unit, s);
          break;
        }
        default:
          s->push_back(e);
          break;
      }
    }
    if (pos_ >= text_.size()) return false;
    ++pos_;
    return true;
  }

  // An unquoted token: a number, true, false, null or a bare string.
  bool Bare(json::Value* out, bool in_object) {
    size_t start = pos_;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == ',' || c == ']' || c == '}' || c == '[' || c == '{' ||
          (in_object && c == ':')) {
        break;
      }
      ++pos_;
    }
    absl::string_view token = JavaTrim(text_.substr(start, pos_ - start));
    if (token.empty()) return false;
    if (token == "true") {
      out->SetBool(true);
    } else if (token == "false") {
      out->SetBool(false);
    } else if (token == "null") {
      out->SetNull();
    } else if (IsNumber(token)) {
      SetNumber(token, out);
    } else {
      out->SetString(token.data(),
                     static_cast<rapidjson::SizeType>(token.size()),
                     allocator_);
    }
    return true;
  }

  static bool IsNumber(absl::string_view t) {
    size_t i = 0;
    if (i < t.size() && t[i] == '-') ++i;
    size_t digits = 0;
    while (i < t.size() && IsDigit(t[i])) ++i, ++digits;
    if (digits == 0) return false;
    if (i < t.size() && t[i] == '.') {
      ++i;
      size_t fraction = 0;
      while (i < t.size() && IsDigit(t[i])) ++i, ++fraction;
      if (fraction == 0) return false;
    }
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
      ++i;
      if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
      size_t exponent = 0;
      while (i < t.size() && IsDigit(t[i])) ++i, ++exponent;
      if (exponent == 0) return false;
    }
    return i == t.size();
  }

  static void SetNumber(absl::string_view t, json::Value* out) {
    std::string s(t);
    bool integral = s.find_first_of(".eE") == std::string::npos;
    if (integral) {
      int64_t i64 = 0;
      auto r = std::from_chars(s.data(), s.data() + s.size(), i64);
      if (r.ec == std::errc() && r.ptr == s.data() + s.size()) {
        out->SetInt64(i64);
        return;
      }
      uint64_t u64 = 0;
      r = std::from_chars(s.data(), s.data() + s.size(), u64);
      if (r.ec == std::errc() && r.ptr == s.data() + s.size()) {
        out->SetUint64(u64);
        return;
      }
    }
    out->SetDouble(std::strtod(s.c_str(), nullptr));
  }

  bool Array(json::Value* out, int depth) {
    ++pos_;
    out->SetArray();
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size()) return false;
      if (text_[pos_] == ']') {
        ++pos_;
        return true;
      }
      json::Value element;
      if (!Value(&element, depth + 1)) return false;
      out->PushBack(element, allocator_);
      SkipSpace();
      if (pos_ >= text_.size()) return false;
      if (text_[pos_] == ',') {
        ++pos_;
      } else if (text_[pos_] != ']') {
        return false;
      }
    }
  }

  bool Object(json::Value* out, int depth) {
    ++pos_;
    out->SetObject();
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size()) return false;
      if (text_[pos_] == '}') {
        ++pos_;
        return true;
      }
      json::Value key;
      if (text_[pos_] == '"' || text_[pos_] == '\'') {
        std::string s;
        if (!QuotedString(&s)) return false;
        key.SetString(s.data(), static_cast<rapidjson::SizeType>(s.size()),
                      allocator_);
      } else {
        size_t start = pos_;
        while (pos_ < text_.size() && text_[pos_] != ':') ++pos_;
        absl::string_view name = JavaTrim(text_.substr(start, pos_ - start));
        if (name.empty()) return false;
        key.SetString(name.data(),
                      static_cast<rapidjson::SizeType>(name.size()),
                      allocator_);
      }
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != ':') return false;
      ++pos_;
      SkipSpace();
      json::Value value;
      if (pos_ < text_.size() && text_[pos_] != '{' && text_[pos_] != '[' &&
          text_[pos_] != '"' && text_[pos_] != '\'') {
        if (!Bare(&value, /*in_object=*/true)) return false;
      } else if (!Value(&value, depth + 1)) {
        return false;
      }
      out->AddMember(key, value, allocator_);
      SkipSpace();
      if (pos_ >= text_.size()) return false;
      if (text_[pos_] == ',') {
        ++pos_;
      } else if (text_[pos_] != '}') {
        return false;
      }
    }
  }

  absl::string_view text_;
  json::Allocator& allocator_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------------------
// Regular expressions in java.util.regex syntax, matched as Jayway matches
// them (Matcher.matches(): the whole input) by a Pike VM over code points.
// Matching is linear in the input and never recurses on it, so a pattern in
// a workflow cannot stall or overflow the stack on a large string (the
// backtracking std::regex does both). Constructs that need backtracking —
// back-references, look-around, atomic groups, possessive quantifiers — are
// rejected when the path is parsed.

constexpr uint32_t kNoCodePoint = 0xFFFFFFFF;

bool IsLineTerminator(uint32_t cp, bool unix_lines) {
  if (unix_lines) return cp == '\n';
  return cp == '\n' || cp == '\r' || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

bool IsWordChar(uint32_t cp) {
  return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
         (cp >= '0' && cp <= '9') || cp == '_';
}

uint32_t AsciiLower(uint32_t cp) {
  return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
}

uint32_t AsciiSwapCase(uint32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp >= 'a' && cp <= 'z') return cp - 32;
  return cp;
}

// A set of code points as sorted, disjoint, inclusive ranges.
class CharClass {
 public:
  void Add(uint32_t lo, uint32_t hi) { ranges_.emplace_back(lo, hi); }
  void AddAll(const CharClass& other) {
    ranges_.insert(ranges_.end(), other.ranges_.begin(), other.ranges_.end());
  }
  void Normalize() {
    std::sort(ranges_.begin(), ranges_.end());
    std::vector<std::pair<uint32_t, uint32_t>> merged;
    for (const auto& r : ranges_) {
      if (!merged.empty() && r.first <= merged.back().second + 1) {
        merged.back().second = std::max(merged.back().second, r.second);
      } else {
        merged.push_back(r);
      }
    }
    ranges_ = std::move(merged);
  }
  CharClass Complement() const {
    CharClass copy = *this;
    copy.Normalize();
    CharClass out;
    uint32_t next = 0;
    for (const auto& [lo, hi] : copy.ranges_) {
      if (lo > next) out.Add(next, lo - 1);
      next = hi + 1;
    }
    if (next <= 0x10FFFF) out.Add(next, 0x10FFFF);
    return out;
  }
  bool Contains(uint32_t cp) const {
    auto it = std::upper_bound(
        ranges_.begin(), ranges_.end(),
        std::make_pair(cp, std::numeric_limits<uint32_t>::max()));
    return it != ranges_.begin() && std::prev(it)->second >= cp;
  }

 private:
  std::vector<std::pair<uint32_t, uint32_t>> ranges_;
};

class Regex {
 public:
  // Compiles `pattern` with Java's flag letters; false with *error.
  static bool Compile(absl::string_view pattern, absl::string_view flags,
                      Regex* out, std::string* error);

  // Matcher.matches(): whether the whole of `input` matches.
  bool FullMatch(absl::string_view input) const;

 private:
  friend class RegexCompiler;

  enum class Op : uint8_t {
    kChar,
    kAny,
    kClass,
    kSplit,
    kJmp,
    kAssert,
    kMatch
  };
  enum class Assertion : uint8_t {
    kInputStart,  // \A, and ^ without MULTILINE
    kInputEnd,    // \z
    kFinalEnd,    // \Z, and $ without MULTILINE: the end or a final terminator
    kLineStart,   // ^ with MULTILINE
    kLineEnd,     // $ with MULTILINE
    kWordBoundary,     // \b
    kNotWordBoundary,  // \B
  };
  struct Inst {
    Op op = Op::kMatch;
    bool fold = false;        // kChar, kClass: ASCII case-insensitive
    bool negated = false;     // kClass
    bool dotall = false;      // kAny
    bool unix_lines = false;  // kAny, kAssert: only \n ends a line
    Assertion assertion = Assertion::kInputStart;
    uint32_t cp = 0;  // kChar
    int32_t x = 0;    // kSplit, kJmp: target; kClass: class index
    int32_t y = 0;    // kSplit: second target
  };

  bool Consumes(const Inst& in, uint32_t cp) const;
  static bool Holds(const Inst& in, absl::string_view input, size_t at,
                    uint32_t prev, uint32_t next);

  std::vector<Inst> program_;
  std::vector<CharClass> classes_;
};

bool Regex::Consumes(const Inst& in, uint32_t cp) const {
  switch (in.op) {
    case Op::kChar:
      return cp == in.cp || (in.fold && AsciiLower(cp) == AsciiLower(in.cp));
    case Op::kAny:
      return in.dotall || !IsLineTerminator(cp, in.unix_lines);
    case Op::kClass: {
      const CharClass& c = classes_[in.x];
      bool match = c.Contains(cp) || (in.fold && c.Contains(AsciiSwapCase(cp)));
      return match != in.negated;
    }
    default:
      return false;
  }
}

bool Regex::Holds(const Inst& in, absl::string_view input, size_t at,
                  uint32_t prev, uint32_t next) {
  const bool unix = in.unix_lines;
  const bool inside_crlf = !unix && prev == '\r' && next == '\n';
  switch (in.assertion) {
    case Assertion::kInputStart:
      return at == 0;
    case Assertion::kInputEnd:
      return at == input.size();
    case Assertion::kFinalEnd: {
      if (at == input.size()) return true;
      absl::string_view rest = input.substr(at);
      if (unix) return rest == "\n";
      return rest == "\n" || rest == "\r" || rest == "\r\n" ||
             rest == "\xC2\x85" || rest == "\xE2\x80\xA8" ||
             rest == "\xE2\x80\xA9";
    }
    case Assertion::kLineStart:
      if (at == 0) return true;
      return at < input.size() && IsLineTerminator(prev, unix) && !inside_crlf;
    case Assertion::kLineEnd:
      if (at == input.size()) return true;
      return IsLineTerminator(next, unix) && !inside_crlf;
    case Assertion::kWordBoundary:
    case Assertion::kNotWordBoundary: {
      const bool boundary = (prev != kNoCodePoint && IsWordChar(prev)) !=
                            (next != kNoCodePoint && IsWordChar(next));
      return boundary == (in.assertion == Assertion::kWordBoundary);
    }
  }
  return false;
}

bool Regex::FullMatch(absl::string_view input) const {
  const size_t n = program_.size();
  std::vector<int32_t> current;
  std::vector<int32_t> next_list;
  std::vector<int32_t> stack;
  std::vector<uint32_t> mark(n, 0);
  uint32_t generation = 0;
  current.reserve(n);
  next_list.reserve(n);
  // Adds the threads reachable from `start` without consuming input.
  auto add = [&](std::vector<int32_t>& list, int32_t start, size_t at,
                 uint32_t prev, uint32_t next) {
    stack.push_back(start);
    while (!stack.empty()) {
      const int32_t pc = stack.back();
      stack.pop_back();
      if (mark[pc] == generation) continue;
      mark[pc] = generation;
      const Inst& in = program_[pc];
      switch (in.op) {
        case Op::kJmp:
          stack.push_back(in.x);
          break;
        case Op::kSplit:
          stack.push_back(in.y);
          stack.push_back(in.x);
          break;
        case Op::kAssert:
          if (Holds(in, input, at, prev, next)) stack.push_back(pc + 1);
          break;
        default:
          list.push_back(pc);
          break;
      }
    }
  };
  auto peek = [&](size_t at) {
    if (at >= input.size()) return kNoCodePoint;
    return DecodeUtf8(input, &at);
  };
  ++generation;
  add(current, 0, 0, kNoCodePoint, peek(0));
  size_t at = 0;
  while (at < input.size()) {
    if (current.empty()) return false;
    size_t after = at;
    const uint32_t cp = DecodeUtf8(input, &after);
    const uint32_t lookahead = peek(after);
    ++generation;
    next_list.clear();
    for (int32_t pc : current) {
      if (Consumes(program_[pc], cp))
        add(next_list, pc + 1, after, cp, lookahead);
    }
    current.swap(next_list);
    at = after;
  }
  for (int32_t pc : current) {
    if (program_[pc].op == Op::kMatch) return true;
  }
  return false;
}

// Parses java.util.regex syntax into a tree, then emits Pike VM code.
class RegexCompiler {
 public:
  RegexCompiler(absl::string_view pattern, absl::string_view flags, Regex* out)
      : out_(out) {
    for (size_t i = 0; i < pattern.size();)
      cps_.push_back(DecodeUtf8(pattern, &i));
    for (char f : flags) ApplyFlag(f, true, &flags_);
  }

  bool Compile(std::string* error) {
    Node root;
    if (!ParseAlternation(&root)) return Report(error);
    if (pos_ < cps_.size()) {
      Fail("unmatched ')'");
      return Report(error);
    }
    if (!Emit(root)) return Report(error);
    Regex::Inst match;
    match.op = Regex::Op::kMatch;
    out_->program_.push_back(match);
    return true;
  }

 private:
  static constexpr size_t kMaxProgram = 50000;
  static constexpr int kMaxDepth = 200;

  struct Flags {
    bool fold = false;        // i
    bool multiline = false;   // m
    bool dotall = false;      // s
    bool unix_lines = false;  // d
    bool comments = false;    // x
  };
  struct Node {
    enum Kind : uint8_t {
      kEmpty,
      kChar,
      kAny,
      kClass,
      kAssert,
      kConcat,
      kAlt,
      kRepeat
    };
    Kind kind = kEmpty;
    Regex::Inst inst;  // kChar, kAny, kClass, kAssert
    int min = 0;
    int max = -1;  // kRepeat; -1 is unbounded
    std::vector<Node> children;
  };

  static bool ApplyFlag(char f, bool on, Flags* flags) {
    switch (f) {
      case 'i':
        flags->fold = on;
        return true;
      case 'm':
        flags->multiline = on;
        return true;
      case 's':
        flags->dotall = on;
        return true;
      case 'd':
        flags->unix_lines = on;
        return true;
      case 'x':
        flags->comments = on;
        return true;
      case 'u':
      case 'U':
        return true;  // Unicode case and classes: ASCII here
      default:
        return false;
    }
  }

  bool Fail(std::string message) {
    if (error_.empty()) {
      error_ =
          absl::StrCat(message, " near index ", std::min(pos_, cps_.size()));
    }
    return false;
  }
  bool Report(std::string* error) {
    *error = error_.empty() ? "invalid regular expression" : error_;
    return false;
  }

  bool AtEnd() const { return pos_ >= cps_.size(); }
  uint32_t Peek() const { return AtEnd() ? kNoCodePoint : cps_[pos_]; }

  // COMMENTS mode: blanks and #-comments are not part of the pattern.
  void SkipComments() {
    if (!flags_.comments) return;
    while (!AtEnd()) {
      const uint32_t c = cps_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
          c == 0x0B) {
        ++pos_;
      } else if (c == '#') {
        while (!AtEnd() && !IsLineTerminator(cps_[pos_], false)) ++pos_;
      } else {
        break;
      }
    }
  }

  bool ParseAlternation(Node* out) {
    if (++depth_ > kMaxDepth)
      return Fail("the regular expression is nested too deeply");
    std::vector<Node> branches(1);
    if (!ParseConcatenation(&branches.back())) return false;
    while (Peek() == '|') {
      ++pos_;
      branches.emplace_back();
      if (!ParseConcatenation(&branches.back())) return false;
    }
    --depth_;
    if (branches.size() == 1) {
      *out = std::move(branches[0]);
    } else {
      out->kind = Node::kAlt;
      out->children = std::move(branches);
    }
    return true;
  }

  bool ParseConcatenation(Node* out) {
    out->kind = Node::kConcat;
    while (true) {
      SkipComments();
      if (AtEnd() || Peek() == '|' || Peek() == ')') return true;
      Node atom;
      bool quantifiable = true;
      if (!ParseAtom(&atom, &quantifiable)) return false;
      if (quantifiable && !ParseQuantifier(&atom)) return false;
      out->children.push_back(std::move(atom));
    }
  }

  bool ParseQuantifier(Node* atom) {
    SkipComments();
    int min = 0;
    int max = -1;
    const uint32_t c = Peek();
    if (c == '*') {
      ++pos_;
    } else if (c == '+') {
      ++pos_;
      min = 1;
    } else if (c == '?') {
      ++pos_;
      max = 1;
    } else if (c == '{') {
      ++pos_;
      if (!ReadCount(&min)) return Fail("illegal repetition");
      max = min;
      if (Peek() == ',') {
        ++pos_;
        max = -1;
        if (Peek() != '}' && !ReadCount(&max))
          return Fail("illegal repetition");
      }
      if (Peek() != '}') return Fail("unclosed counted closure");
      ++pos_;
      if (max != -1 && max < min) return Fail("illegal repetition range");
    } else {
      return true;
    }
    if (Peek() == '?') {
      ++pos_;  // reluctant: for a whole-input match, the same language
    } else if (Peek() == '+') {
      return Fail("possessive quantifiers are not supported");
    }
    Node repeat;
    repeat.kind = Node::kRepeat;
    repeat.min = min;
    repeat.max = max;
    repeat.children.push_back(std::move(*atom));
    *atom = std::move(repeat);
    return true;
  }

  bool ReadCount(int* value) {
    if (AtEnd() || !IsDigit(static_cast<char>(Peek() < 128 ? Peek() : 0)))
      return false;
    int64_t v = 0;
    while (!AtEnd() && Peek() < 128 && IsDigit(static_cast<char>(Peek()))) {
      v = v * 10 + (Peek() - '0');
      if (v > 100000) return false;
      ++pos_;
    }
    *value = static_cast<int>(v);
    return true;
  }

  Node Leaf(Node::Kind kind) {
    Node n;
    n.kind = kind;
    n.inst.fold = flags_.fold;
    n.inst.dotall = flags_.dotall;
    n.inst.unix_lines = flags_.unix_lines;
    switch (kind) {
      case Node::kChar:
        n.inst.op = Regex::Op::kChar;
        break;
      case Node::kAny:
        n.inst.op = Regex::Op::kAny;
        break;
      case Node::kClass:
        n.inst.op = Regex::Op::kClass;
        break;
      case Node::kAssert:
        n.inst.op = Regex::Op::kAssert;
        break;
      default:
        break;
    }
    return n;
  }
  Node Char(uint32_t cp) {
    Node n = Leaf(Node::kChar);
    n.inst.cp = cp;
    return n;
  }
  Node Assert(Regex::Assertion a) {
    Node n = Leaf(Node::kAssert);
    n.inst.assertion = a;
    return n;
  }
  Node ClassNode(CharClass c, bool negated) {
    c.Normalize();
    out_->classes_.push_back(std::move(c));
    Node n = Leaf(Node::kClass);
    n.inst.x = static_cast<int32_t>(out_->classes_.size()) - 1;
    n.inst.negated = negated;
    return n;
  }

  bool ParseAtom(Node* out, bool* quantifiable) {
    const uint32_t c = cps_[pos_++];
    switch (c) {
      case '(':
        return ParseGroup(out, quantifiable);
      case '[': {
        CharClass cls;
        bool negated = false;
        if (!ParseClass(&cls, &negated)) return false;
        *out = ClassNode(std::move(cls), negated);
        return true;
      }
      case '.':
        *out = Leaf(Node::kAny);
        return true;
      case '^':
        *out = Assert(flags_.multiline ? Regex::Assertion::kLineStart
                                       : Regex::Assertion::kInputStart);
        return true;
      case '$':
        *out = Assert(flags_.multiline ? Regex::Assertion::kLineEnd
                                       : Regex::Assertion::kFinalEnd);
        return true;
      case '\\':
        return ParseEscape(out);
      case '*':
      case '+':
      case '?':
        --pos_;
        return Fail(absl::StrCat("dangling meta character '",
                                 std::string(1, char(c)), "'"));
      case '{':
        --pos_;
        return Fail("illegal repetition");
      default:
        *out = Char(c);
        return true;
    }
  }

  bool ParseGroup(Node* out, bool* quantifiable) {
    const Flags saved = flags_;
    if (Peek() == '?') {
      ++pos_;
      const uint32_t k = Peek();
      if (k == ':') {
        ++pos_;
      } else if (k == '<' && pos_ + 1 < cps_.size() && cps_[pos_ + 1] != '=' &&
                 cps_[pos_ + 1] != '!') {
        ++pos_;  // named group: the name does not matter for matching
        while (!AtEnd() && Peek() != '>') ++pos_;
        if (AtEnd()) return Fail("unclosed group name");
        ++pos_;
      } else if (k == '=' || k == '!' || k == '<') {
        return Fail("look-around groups are not supported");
      } else if (k == '>') {
        return Fail("atomic groups are not supported");
      } else {
        // Inline flags: (?idmsux-idmsux) for the rest of the group, or
        // (?idmsux-idmsux:X) for X.
        bool on = true;
        while (!AtEnd() && Peek() != ')' && Peek() != ':') {
          const uint32_t f = Peek();
          if (f == '-') {
            on = false;
          } else if (f >= 128 ||
                     !ApplyFlag(static_cast<char>(f), on, &flags_)) {
            return Fail("unknown inline modifier");
          }
          ++pos_;
        }
        if (AtEnd()) return Fail("unclosed group");
        if (Peek() == ')') {
          ++pos_;
          out->kind = Node::kEmpty;
          *quantifiable = false;
          return true;  // the flags stay for the enclosing group
        }
        ++pos_;  // ':'
        if (!ParseAlternation(out)) return false;
        if (Peek() != ')') return Fail("unclosed group");
        ++pos_;
        flags_ = saved;
        return true;
      }
    }
    if (!ParseAlternation(out)) return false;
    if (Peek() != ')') return Fail("unclosed group");
    ++pos_;
    flags_ = saved;
    return true;
  }

  // The POSIX classes Java defines over US-ASCII, for \p{Name}.
  static bool PosixClass(absl::string_view name, CharClass* c) {
    if (name == "Lower") {
      c->Add('a', 'z');
      return true;
    }
    if (name == "Upper") {
      c->Add('A', 'Z');
      return true;
    }
    if (name == "ASCII") {
      c->Add(0, 0x7F);
      return true;
    }
    if (name == "Alpha") {
      c->Add('a', 'z');
      c->Add('A', 'Z');
      return true;
    }
    if (name == "Digit") {
      c->Add('0', '9');
      return true;
    }
    if (name == "Alnum") {
      c->Add('a', 'z');
      c->Add('A', 'Z');
      c->Add('0', '9');
      return true;
    }
    if (name == "Punct" || name == "Graph" || name == "Print") {
      c->Add('!', '/');
      c->Add(':', '@');
      c->Add('[', '`');
      c->Add('{', '~');
      if (name != "Punct") {
        c->Add('a', 'z');
        c->Add('A', 'Z');
        c->Add('0', '9');
      }
      if (name == "Print") c->Add(' ', ' ');
      return true;
    }
    if (name == "Blank") {
      c->Add(' ', ' ');
      c->Add('\t', '\t');
      return true;
    }
    if (name == "Cntrl") {
      c->Add(0, 0x1F);
      c->Add(0x7F, 0x7F);
      return true;
    }
    if (name == "XDigit") {
      c->Add('0', '9');
      c->Add('a', 'f');
      c->Add('A', 'F');
      return true;
    }
    if (name == "Space") {
      c->Add('\t', '\r');
      c->Add(' ', ' ');
      return true;
    }
    return false;
  }

  // An escape that stands for a set: \d \D \w \W \s \S \h \H \v \V \p \P.
  // Returns false without error when `e` is no such escape.
  bool ClassEscape(uint32_t e, CharClass* c, bool* is_class) {
    CharClass set;
    *is_class = true;
    switch (e) {
      case 'd':
      case 'D':
        set.Add('0', '9');
        break;
      case 'w':
      case 'W':
        set.Add('a', 'z');
        set.Add('A', 'Z');
        set.Add('0', '9');
        set.Add('_', '_');
        break;
      case 's':
      case 'S':
        set.Add('\t', '\r');
        set.Add(' ', ' ');
        break;
      case 'h':
      case 'H':
        set.Add(' ', ' ');
        set.Add('\t', '\t');
        set.Add(0xA0, 0xA0);
        set.Add(0x1680, 0x1680);
        set.Add(0x180E, 0x180E);
        set.Add(0x2000, 0x200A);
        set.Add(0x202F, 0x202F);
        set.Add(0x205F, 0x205F);
        set.Add(0x3000, 0x3000);
        break;
      case 'v':
      case 'V':
        set.Add('\n', '\r');
        set.Add(0x85, 0x85);
        set.Add(0x2028, 0x2029);
        break;
      case 'p':
      case 'P': {
        if (Peek() != '{')
          return Fail("only \\p{Name} with a POSIX class name is supported");
        ++pos_;
        std::string name;
        while (!AtEnd() && Peek() != '}') {
          if (Peek() >= 128) return Fail("unknown character property");
          name.push_back(static_cast<char>(Peek()));
          ++pos_;
        }
        if (AtEnd()) return Fail("unclosed character property");
        ++pos_;
        if (absl::StartsWith(name, "Is")) name = name.substr(2);
        if (!PosixClass(name, &set)) {
          return Fail(
              absl::StrCat("unsupported character property \\p{", name,
                           "}; the POSIX classes (Lower, Upper, Alpha, Digit, "
                           "Alnum, Punct, Space...) are supported"));
        }
        break;
      }
      default:
        *is_class = false;
        return true;
    }
    const bool negate =
        e == 'D' || e == 'W' || e == 'S' || e == 'H' || e == 'V' || e == 'P';
    set.Normalize();
    c->AddAll(negate ? set.Complement() : set);
    return true;
  }

  bool ReadHex(size_t digits, uint32_t* value) {
    uint32_t v = 0;
    for (size_t k = 0; k < digits; ++k) {
      if (AtEnd() || Peek() >= 128 || HexValue(static_cast<char>(Peek())) < 0)
        return false;
      v = v * 16 + HexValue(static_cast<char>(Peek()));
      ++pos_;
    }
    *value = v;
    return true;
  }

  // The character an escape stands for (after the backslash and `e`).
  bool CharEscape(uint32_t e, uint32_t* cp) {
    switch (e) {
      case 't':
        *cp = '\t';
        return true;
      case 'n':
        *cp = '\n';
        return true;
      case 'r':
        *cp = '\r';
        return true;
      case 'f':
        *cp = '\f';
        return true;
      case 'a':
        *cp = 0x07;
        return true;
      case 'e':
        *cp = 0x1B;
        return true;
      case '0': {
        uint32_t v = 0;
        int digits = 0;
        // \0n, \0nn, or \0mnn with m <= 3.
        while (digits < 3 && !AtEnd() && Peek() >= '0' && Peek() <= '7' &&
               (digits < 2 || v <= 037)) {
          v = v * 8 + (Peek() - '0');
          ++pos_;
          ++digits;
        }
        if (digits == 0) return Fail("illegal octal escape sequence");
        *cp = v;
        return true;
      }
      case 'x':
        if (Peek() == '{') {
          ++pos_;
          uint32_t v = 0;
          int digits = 0;
          while (!AtEnd() && Peek() != '}') {
            if (Peek() >= 128 || HexValue(static_cast<char>(Peek())) < 0) {
              return Fail("illegal hexadecimal escape sequence");
            }
            v = v * 16 + HexValue(static_cast<char>(Peek()));
            if (v > 0x10FFFF) return Fail("hexadecimal code point is too big");
            ++pos_;
            ++digits;
          }
          if (AtEnd() || digits == 0)
            return Fail("unclosed hexadecimal escape sequence");
          ++pos_;
          *cp = v;
          return true;
        }
        if (!ReadHex(2, cp)) return Fail("illegal hexadecimal escape sequence");
        return true;
      case 'u': {
        if (!ReadHex(4, cp)) return Fail("illegal Unicode escape sequence");
        if (*cp >= 0xD800 && *cp < 0xDC00 && pos_ + 5 < cps_.size() &&
            Peek() == '\\' && cps_[pos_ + 1] == 'u') {
          const size_t save = pos_;
          pos_ += 2;
          uint32_t low = 0;
          if (ReadHex(4, &low) && low >= 0xDC00 && low < 0xE000) {
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (low - 0xDC00);
          } else {
            pos_ = save;
          }
        }
        return true;
      }
      case 'c':
        if (AtEnd()) return Fail("illegal control escape sequence");
        *cp = Peek() ^ 64;
        ++pos_;
        return true;
      default:
        if (e < 128 && (absl::ascii_isalpha(static_cast<char>(e)) ||
                        IsDigit(static_cast<char>(e)))) {
          if (e >= '1' && e <= '9')
            return Fail("back-references are not supported");
          if (e == 'k') return Fail("back-references are not supported");
          if (e == 'G') return Fail("\\G is not supported");
          return Fail(absl::StrCat("illegal or unsupported escape sequence \\",
                                   std::string(1, static_cast<char>(e))));
        }
        *cp = e;  // any other character escapes to itself
        return true;
    }
  }

  bool ParseEscape(Node* out) {
    if (AtEnd()) return Fail("unexpected end of the pattern after '\\'");
    const uint32_t e = cps_[pos_++];
    switch (e) {
      case 'b':
        *out = Assert(Regex::Assertion::kWordBoundary);
        return true;
      case 'B':
        *out = Assert(Regex::Assertion::kNotWordBoundary);
        return true;
      case 'A':
        *out = Assert(Regex::Assertion::kInputStart);
        return true;
      case 'z':
        *out = Assert(Regex::Assertion::kInputEnd);
        return true;
      case 'Z':
        *out = Assert(Regex::Assertion::kFinalEnd);
        return true;
      case 'Q': {
        // \Q...\E: everything in between is literal.
        out->kind = Node::kConcat;
        while (!AtEnd()) {
          if (Peek() == '\\' && pos_ + 1 < cps_.size() &&
              cps_[pos_ + 1] == 'E') {
            pos_ += 2;
            break;
          }
          out->children.push_back(Char(cps_[pos_++]));
        }
        return true;
      }
      case 'R': {
        // A line break: \r\n or any vertical space.
        out->kind = Node::kAlt;
        Node crlf;
        crlf.kind = Node::kConcat;
        crlf.children.push_back(Char('\r'));
        crlf.children.push_back(Char('\n'));
        CharClass vertical;
        vertical.Add('\n', '\r');
        vertical.Add(0x85, 0x85);
        vertical.Add(0x2028, 0x2029);
        out->children.push_back(std::move(crlf));
        out->children.push_back(ClassNode(std::move(vertical), false));
        return true;
      }
      default:
        break;
    }
    CharClass set;
    bool is_class = false;
    if (!ClassEscape(e, &set, &is_class)) return false;
    if (is_class) {
      *out = ClassNode(std::move(set), false);
      return true;
    }
    uint32_t cp = 0;
    if (!CharEscape(e, &cp)) return false;
    *out = Char(cp);
    return true;
  }

  // After '['. Ranges, escapes and the classes above; Java's nested classes
  // and intersections (&&) are rejected.
  bool ParseClass(CharClass* out, bool* negated) {
    if (Peek() == '^') {
      *negated = true;
      ++pos_;
    }
    bool first = true;
    while (true) {
      SkipComments();
      if (AtEnd()) return Fail("unclosed character class");
      uint32_t c = cps_[pos_];
      if (c == ']' && !first) {
        ++pos_;
        return true;
      }
      first = false;
      if (c == '[') return Fail("nested character classes are not supported");
      if (c == '&' && pos_ + 1 < cps_.size() && cps_[pos_ + 1] == '&') {
        return Fail("character class intersections are not supported");
      }
      ++pos_;
      uint32_t lo = c;
      if (c == '\\') {
        if (AtEnd()) return Fail("unclosed character class");
        const uint32_t e = cps_[pos_++];
        bool is_class = false;
        if (!ClassEscape(e, out, &is_class)) return false;
        if (is_class) continue;
        if (e == 'Q') {
          while (!AtEnd()) {
            if (Peek() == '\\' && pos_ + 1 < cps_.size() &&
                cps_[pos_ + 1] == 'E') {
              pos_ += 2;
              break;
            }
            out->Add(cps_[pos_], cps_[pos_]);
            ++pos_;
          }
          continue;
        }
        if (e == 'b') return Fail("\\b is not allowed in a character class");
        if (!CharEscape(e, &lo)) return false;
      }
      uint32_t hi = lo;
      SkipComments();
      if (Peek() == '-' && pos_ + 1 < cps_.size() && cps_[pos_ + 1] != ']') {
        ++pos_;
        SkipComments();
        if (AtEnd()) return Fail("unclosed character class");
        hi = cps_[pos_++];
        if (hi == '[')
          return Fail("nested character classes are not supported");
        if (hi == '\\') {
          if (AtEnd()) return Fail("unclosed character class");
          const uint32_t e = cps_[pos_++];
          if (!CharEscape(e, &hi)) return false;
        }
        if (hi < lo) return Fail("illegal character range");
      }
      out->Add(lo, hi);
    }
  }

  // --- Code generation ---

  bool Push(const Regex::Inst& in) {
    if (out_->program_.size() >= kMaxProgram) {
      return Fail("the regular expression is too large");
    }
    out_->program_.push_back(in);
    return true;
  }
  int32_t Here() const { return static_cast<int32_t>(out_->program_.size()); }

  bool Emit(const Node& n) {
    switch (n.kind) {
      case Node::kEmpty:
        return true;
      case Node::kChar:
      case Node::kAny:
      case Node::kClass:
      case Node::kAssert:
        return Push(n.inst);
      case Node::kConcat:
        for (const Node& child : n.children) {
          if (!Emit(child)) return false;
        }
        return true;
      case Node::kAlt: {
        // split L1, next; L1: a; jmp end; next: split L2, ...; last: z
        std::vector<int32_t> jumps;
        for (size_t i = 0; i < n.children.size(); ++i) {
          const bool last = i + 1 == n.children.size();
          int32_t split = -1;
          if (!last) {
            split = Here();
            Regex::Inst s;
            s.op = Regex::Op::kSplit;
            if (!Push(s)) return false;
            out_->program_[split].x = Here();
          }
          if (!Emit(n.children[i])) return false;
          if (!last) {
            jumps.push_back(Here());
            Regex::Inst j;
            j.op = Regex::Op::kJmp;
            if (!Push(j)) return false;
            out_->program_[split].y = Here();
          }
        }
        for (int32_t j : jumps) out_->program_[j].x = Here();
        return true;
      }
      case Node::kRepeat: {
        const Node& body = n.children[0];
        for (int i = 0; i < n.min; ++i) {
          if (!Emit(body)) return false;
        }
        if (n.max == -1) {
          // loop: split body, end; body; jmp loop
          const int32_t loop = Here();
          Regex::Inst s;
          s.op = Regex::Op::kSplit;
          if (!Push(s)) return false;
          out_->program_[loop].x = Here();
          if (!Emit(body)) return false;
          Regex::Inst j;
          j.op = Regex::Op::kJmp;
          j.x = loop;
          if (!Push(j)) return false;
          out_->program_[loop].y = Here();
          return true;
        }
        std::vector<int32_t> splits;
        for (int i = n.min; i < n.max; ++i) {
          splits.push_back(Here());
          Regex::Inst s;
          s.op = Regex::Op::kSplit;
          if (!Push(s)) return false;
          out_->program_[splits.back()].x = Here();
          if (!Emit(body)) return false;
        }
        for (int32_t s : splits) out_->program_[s].y = Here();
        return true;
      }
    }
    return false;
  }

  Regex* out_;
  std::vector<uint32_t> cps_;
  size_t pos_ = 0;
  Flags flags_;
  int depth_ = 0;
  std::string error_;
};

bool Regex::Compile(absl::string_view pattern, absl::string_view flags,
                    Regex* out, std::string* error) {
  *out = Regex();
  RegexCompiler compiler(pattern, flags, out);
  return compiler.Compile(error);
}

}  // namespace

// ---------------------------------------------------------------------------
// The compiled form.

enum class SegmentKind : uint8_t {
  kProperty,  // .name, ['a'] or ['a','b']
  kIndex,     // [1] or [1,-2]
  kSlice,     // [from:to]
  kWildcard,  // .* or [*]
  kScan,      // ..
  kFilter,    // [?(...)]
  kFunction,  // .length() and friends, always the last segment
};
enum class SliceKind : uint8_t { kFrom, kTo, kBetween };
enum class FunctionKind : uint8_t {
  kLength,
  kSize,
  kMin,
  kMax,
  kAvg,
  kStddev,
  kSum,
  kKeys,
  kConcat,
  kAppend,
};

constexpr int64_t kNoIndex = std::numeric_limits<int64_t>::min();

struct Segment {
  SegmentKind kind = SegmentKind::kWildcard;
  char delimiter = '\'';  // the quote Jayway prints properties with
  SliceKind slice = SliceKind::kFrom;
  FunctionKind function = FunctionKind::kLength;
  int32_t from = 0;
  int32_t to = 0;
  int32_t filter = -1;                    // kFilter: root Expr
  std::vector<std::string> names;         // kProperty, as written
  std::vector<std::string> unique_names;  // kProperty, first occurrences
  std::vector<int32_t> indexes;           // kIndex
};

struct CompiledPath {
  bool relative = false;  // starts with '@' (only inside filters)
  std::vector<Segment> segments;
  std::vector<uint8_t> token_definite;     // Jayway's isTokenDefinite()
  std::vector<uint8_t> upstream_definite;  // Jayway's isUpstreamDefinite()
  bool single_value = false;               // Jayway's isDefinite()
  bool reference = false;                  // names and single indexes only
  bool has_scan = false;
  // The single index before the last segment, which Jayway compares with the
  // array position a deep scan recorded (see Walk()); kNoIndex otherwise.
  int64_t tail_prev_index = kNoIndex;
  // "$..x.fn()": Jayway rewrites it to fn applied to the document with the
  // matches of "$..x" as argument; `segments` then holds "$..x".
  bool inverted = false;
  FunctionKind inverted_function = FunctionKind::kLength;
  int32_t length_path = -1;  // inverted length(): "$..x.*", counted
  bool ends_in_keys = false;
};

enum class RelOp : uint8_t {
  kGte,
  kLte,
  kEq,
  kTseq,
  kNe,
  kTsne,
  kLt,
  kGt,
  kRegex,
  kNin,
  kIn,
  kContains,
  kAll,
  kSize,
  kExists,
  kType,
  kMatches,
  kEmpty,
  kSubsetof,
  kAnyof,
  kNoneof,
};

// A runtime value in a filter: Jayway's ValueNode.
struct VNode {
  enum Kind : uint8_t {
    kUndefined,
    kNull,
    kBool,
    kNumber,
    kString,
    kJson,
    kPattern,
    kOpaque,  // a PathNode inside a value list: equal to nothing
  };
  Kind kind = kUndefined;
  bool boolean = false;
  // kJson: Jayway keeps a literal's text unparsed, and such a node equals
  // only a node with the same text.
  bool literal_json = false;
  bool is_list = false;  // kJson holding the matches of an indefinite path
  int32_t regex = -1;
  bool owns_text = false;
  Decimal number;
  absl::string_view view;             // the text, unless owns_text
  std::string owned;                  // the text, if owns_text
  const json::Value* json = nullptr;  // kJson: an array or object
  std::vector<const json::Value*> list;

  // kString: the string; literal kJson: its text.
  absl::string_view str() const {
    return owns_text ? absl::string_view(owned) : view;
  }
  void Own(std::string s) {
    owned = std::move(s);
    owns_text = true;
  }
};

enum class OperandKind : uint8_t { kPath, kExists, kLiteral };

struct Operand {
  OperandKind kind = OperandKind::kLiteral;
  int32_t path = -1;
  bool should_exist = true;
  VNode literal;
};

enum class ExprKind : uint8_t { kOr, kAnd, kNot, kRelation };

struct Expr {
  ExprKind kind = ExprKind::kRelation;
  RelOp op = RelOp::kEq;
  int32_t left = -1;
  int32_t right = -1;
  std::vector<int32_t> children;
};

struct Program {
  std::vector<CompiledPath> paths;
  int32_t main = -1;
  std::string canonical;
  std::vector<Expr> exprs;
  std::vector<Operand> operands;
  std::vector<Regex> regexes;
  json::Document literals;  // owns the parsed JSON literals
  std::vector<std::unique_ptr<json::Value>> literal_values;
};

namespace {

// ---------------------------------------------------------------------------
// Parsing: a port of Jayway's CharacterIndex, PathCompiler and
// FilterCompiler. Positions are byte offsets in the text given to Parser.

class Cursor {
 public:
  // Covers text[lo, hi).
  Cursor(absl::string_view text, int lo, int hi)
      : text_(text), lo_(lo), pos_(lo), end_(hi - 1) {}

  int pos() const { return pos_; }
  int end() const { return end_; }
  void SetPos(int p) { pos_ = p; }
  void Advance(int n) { pos_ += n; }
  void DecrementEnd(int n) { end_ -= n; }

  // Like Java's charAt on the underlying string; '\0' outside it.
  char At(int i) const {
    return i >= 0 && i < static_cast<int>(text_.size()) ? text_[i] : '\0';
  }
  char Current() const { return At(pos_); }
  bool CurrentIs(char c) const { return At(pos_) == c; }
  bool LastIs(char c) const { return At(end_) == c; }
  bool NextIs(char c) const { return InBounds(pos_ + 1) && At(pos_ + 1) == c; }
  bool InBounds(int i) const { return i >= lo_ && i <= end_; }
  bool InBounds() const { return InBounds(pos_); }
  bool IsTail() const { return pos_ >= end_; }
  bool HasMore() const { return InBounds(pos_ + 1); }

  int IndexOfNextSignificant(int start, char c) const {
    int i = start + 1;
    while (InBounds(i) && At(i) == ' ') ++i;
    return InBounds(i) && At(i) == c ? i : -1;
  }
  char NextSignificantChar(int start) const {
    int i = start + 1;
    while (InBounds(i) && At(i) == ' ') ++i;
    return InBounds(i) ? At(i) : ' ';
  }
  bool NextSignificantIs(int start, char c) const {
    return NextSignificantChar(start) == c && c != ' ';
  }
  int NextIndexOf(int start, char c) const {
    for (int i = start; InBounds(i); ++i) {
      if (At(i) == c) return i;
    }
    return -1;
  }
  int NextIndexOfUnescaped(int start, char c) const {
    bool escaped = false;
    for (int i = start + 1; InBounds(i); ++i) {
      if (escaped) {
        escaped = false;
      } else if (At(i) == '\\') {
        escaped = true;
      } else if (At(i) == c) {
        return i;
      }
    }
    return -1;
  }
  // The matching close character, -1 if none; *error when a skipped string
  // or regular expression is not closed.
  int IndexOfMatchingClose(int start, char open, char close, bool skip_strings,
                           bool skip_regex, bool* error) const {
    int opened = 1;
    int i = start + 1;
    while (InBounds(i)) {
      if (skip_strings && (At(i) == '\'' || At(i) == '"')) {
        i = NextIndexOfUnescaped(i, At(i));
        if (i == -1) {
          *error = true;
          return -1;
        }
        ++i;
      }
      if (skip_regex && At(i) == '/') {
        i = NextIndexOfUnescaped(i, '/');
        if (i == -1) {
          *error = true;
          return -1;
        }
        ++i;
      }
      if (At(i) == open) ++opened;
      if (At(i) == close && --opened == 0) return i;
      ++i;
    }
    return -1;
  }
  int IndexOfPreviousSignificant(int start) const {
    int i = start - 1;
    while (InBounds(i) && At(i) == ' ') --i;
    return InBounds(i) ? i : -1;
  }
  char PreviousSignificantChar() const {
    int i = IndexOfPreviousSignificant(pos_);
    return i == -1 ? ' ' : At(i);
  }
  Cursor& SkipBlanks() {
    while (InBounds() && pos_ < end_ && Current() == ' ') ++pos_;
    return *this;
  }
  void Trim() {
    SkipBlanks();
    while (InBounds() && pos_ < end_ && At(end_) == ' ') --end_;
  }
  bool HasSignificantSubSequence(absl::string_view s) {
    SkipBlanks();
    if (!InBounds(pos_ + static_cast<int>(s.size()) - 1)) return false;
    if (text_.substr(pos_, s.size()) != s) return false;
    pos_ += static_cast<int>(s.size());
    return true;
  }
  absl::string_view Slice(int from, int to) const {
    if (from < 0) from = 0;
    if (to > static_cast<int>(text_.size()))
      to = static_cast<int>(text_.size());
    return from >= to ? absl::string_view() : text_.substr(from, to - from);
  }

 private:
  absl::string_view text_;
  int lo_;
  int pos_;
  int end_;  // inclusive, as Jayway's endPosition
};

enum class Try { kNo, kYes, kFail };

bool IsRelationalOperatorChar(char c) {
  return c == '<' || c == '>' || c == '=' || c == '~' || c == '!';
}

bool IsPatternFlag(char c) {
  return c == 'd' || c == 'i' || c == 'x' || c == 'm' || c == 's' || c == 'u' ||
         c == 'U';
}

std::optional<RelOp> RelOpFromString(absl::string_view s) {
  static constexpr std::pair<absl::string_view, RelOp> kOps[] = {
      {">=", RelOp::kGte},
      {"<=", RelOp::kLte},
      {"==", RelOp::kEq},
      {"===", RelOp::kTseq},
      {"!=", RelOp::kNe},
      {"!==", RelOp::kTsne},
      {"<", RelOp::kLt},
      {">", RelOp::kGt},
      {"=~", RelOp::kRegex},
      {"NIN", RelOp::kNin},
      {"IN", RelOp::kIn},
      {"CONTAINS", RelOp::kContains},
      {"ALL", RelOp::kAll},
      {"SIZE", RelOp::kSize},
      {"EXISTS", RelOp::kExists},
      {"TYPE", RelOp::kType},
      {"MATCHES", RelOp::kMatches},
      {"EMPTY", RelOp::kEmpty},
      {"SUBSETOF", RelOp::kSubsetof},
      {"ANYOF", RelOp::kAnyof},
      {"NONEOF", RelOp::kNoneof},
  };
  std::string upper = absl::AsciiStrToUpper(s);
  for (const auto& [text, op] : kOps) {
    if (upper == text) return op;
  }
  return std::nullopt;
}

std::optional<FunctionKind> FunctionFromName(absl::string_view name) {
  static constexpr std::pair<absl::string_view, FunctionKind> kFunctions[] = {
      {"length", FunctionKind::kLength}, {"size", FunctionKind::kSize},
      {"min", FunctionKind::kMin},       {"max", FunctionKind::kMax},
      {"avg", FunctionKind::kAvg},       {"stddev", FunctionKind::kStddev},
      {"sum", FunctionKind::kSum},       {"keys", FunctionKind::kKeys},
      {"concat", FunctionKind::kConcat}, {"append", FunctionKind::kAppend},
  };
  for (const auto& [text, kind] : kFunctions) {
    if (name == text) return kind;
  }
  return std::nullopt;
}

absl::string_view FunctionName(FunctionKind kind) {
  switch (kind) {
    case FunctionKind::kLength:
      return "length";
    case FunctionKind::kSize:
      return "size";
    case FunctionKind::kMin:
      return "min";
    case FunctionKind::kMax:
      return "max";
    case FunctionKind::kAvg:
      return "avg";
    case FunctionKind::kStddev:
      return "stddev";
    case FunctionKind::kSum:
      return "sum";
    case FunctionKind::kKeys:
      return "keys";
    case FunctionKind::kConcat:
      return "concat";
    case FunctionKind::kAppend:
      return "append";
  }
  return "";
}

// Jayway's getPathFragment().
void AppendFragment(const Segment& s, std::string* out) {
  switch (s.kind) {
    case SegmentKind::kProperty: {
      out->push_back('[');
      for (size_t i = 0; i < s.names.size(); ++i) {
        if (i > 0) out->push_back(',');
        out->push_back(s.delimiter);
        out->append(s.names[i]);
        out->push_back(s.delimiter);
      }
      out->push_back(']');
      return;
    }
    case SegmentKind::kIndex: {
      out->push_back('[');
      for (size_t i = 0; i < s.indexes.size(); ++i) {
        if (i > 0) out->push_back(',');
        absl::StrAppend(out, s.indexes[i]);
      }
      out->push_back(']');
      return;
    }
    case SegmentKind::kSlice:
      out->push_back('[');
      if (s.slice != SliceKind::kTo) absl::StrAppend(out, s.from);
      out->push_back(':');
      if (s.slice != SliceKind::kFrom) absl::StrAppend(out, s.to);
      out->push_back(']');
      return;
    case SegmentKind::kWildcard:
      out->append("[*]");
      return;
    case SegmentKind::kScan:
      out->append("..");
      return;
    case SegmentKind::kFilter:
      out->append("[?]");
      return;
    case SegmentKind::kFunction:
      absl::StrAppend(out, ".", FunctionName(s.function), "()");
      return;
  }
}

class Parser {
 public:
  Parser(Program* program, absl::string_view text)
      : program_(program), text_(text) {}

  // Compiles text[lo, hi) as a path; the path id, or -1 (see error()).
  int CompilePath(int lo, int hi, bool allow_relative);

  bool failed() const { return failed_; }
  int error_position() const { return error_position_; }
  const std::string& error() const { return error_; }

 private:
  static constexpr int kMaxDepth = 200;

  bool Fail(int position, std::string message) {
    if (!failed_) {
      failed_ = true;
      error_position_ = std::max(position, 0);
      error_ = std::move(message);
    }
    return false;
  }
  Try FailTry(int position, std::string message) {
    Fail(position, std::move(message));
    return Try::kFail;
  }

  // PathCompiler.
  bool ReadNextToken(Cursor& c, CompiledPath& path);
  bool ReadDotToken(Cursor& c, CompiledPath& path);
  Try ReadPropertyOrFunctionToken(Cursor& c, CompiledPath& path);
  Try ReadBracketPropertyToken(Cursor& c, CompiledPath& path);
  Try ReadArrayToken(Cursor& c, CompiledPath& path);
  Try ReadWildCardToken(Cursor& c, CompiledPath& path);
  Try ReadFilterToken(Cursor& c, CompiledPath& path);
  Try ReadPlaceholderToken(Cursor& c);
  bool Finish(CompiledPath& path, int function_position);

  // FilterCompiler.
  int CompileFilter(int lo, int hi);
  int ReadLogicalOr(Cursor& f);
  int ReadLogicalAnd(Cursor& f);
  int ReadLogicalAndOperand(Cursor& f);
  int ReadExpression(Cursor& f);
  bool ReadValueNode(Cursor& f, Operand* out);
  bool ReadLiteral(Cursor& f, Operand* out);
  bool ReadPath(Cursor& f, Operand* out);
  bool ReadNumber(Cursor& f, Operand* out);
  bool ReadPattern(Cursor& f, Operand* out);
  bool IsClosingFunctionBracket(const Cursor& f, int lower) const;

  int AddExpr(Expr e) {
    program_->exprs.push_back(std::move(e));
    return static_cast<int>(program_->exprs.size()) - 1;
  }
  int AddOperand(Operand o) {
    program_->operands.push_back(std::move(o));
    return static_cast<int>(program_->operands.size()) - 1;
  }

  Program* program_;
  absl::string_view text_;
  int depth_ = 0;
  bool failed_ = false;
  int error_position_ = 0;
  std::string error_;
};

int Parser::CompilePath(int lo, int hi, bool allow_relative) {
  if (++depth_ > kMaxDepth)
    return Fail(lo, "the path is nested too deeply"), -1;
  struct DepthGuard {
    int& depth;
    ~DepthGuard() { --depth; }
  } guard{depth_};
  if (hi <= lo) return Fail(lo, "the path is empty"), -1;
  Cursor c(text_, lo, hi);
  c.Trim();
  char first = c.Current();
  if (first != '$' && !(allow_relative && first == '@')) {
    Fail(c.pos(), "a path must start with '$'");
    return -1;
  }
  if (c.LastIs('.')) {
    Fail(c.end(), "a path must not end with '.' or '..'");
    return -1;
  }
  CompiledPath path;
  path.relative = first == '@';
  if (!c.IsTail()) {
    c.Advance(1);
    if (!c.CurrentIs('.') && !c.CurrentIs('[')) {
      Fail(c.pos(), "expected '.' or '['");
      return -1;
    }
    if (!ReadNextToken(c, path)) return -1;
    while (!c.IsTail()) {
      if (!ReadNextToken(c, path)) return -1;
    }
  }
  int function_position = c.pos();
  if (!Finish(path, function_position)) return -1;
  program_->paths.push_back(std::move(path));
  return static_cast<int>(program_->paths.size()) - 1;
}

bool Parser::ReadNextToken(Cursor& c, CompiledPath& path) {
  if (failed_) return false;
  if (!c.InBounds()) return Fail(c.pos(), "unexpected end of the path");
  if (!path.segments.empty() &&
      path.segments.back().kind == SegmentKind::kFunction) {
    return Fail(c.pos(), "a function call must end the path");
  }
  const int start = c.pos();
  Try t = Try::kNo;
  switch (c.Current()) {
    case '[':
      t = ReadBracketPropertyToken(c, path);
      if (t == Try::kNo) t = ReadArrayToken(c, path);
      if (t == Try::kNo) t = ReadWildCardToken(c, path);
      if (t == Try::kNo) t = ReadFilterToken(c, path);
      if (t == Try::kNo) t = ReadPlaceholderToken(c);
      if (t == Try::kNo) {
        return Fail(start,
                    "could not parse the token starting here; expected "
                    "'name', \"name\", a number, a slice, * or ?(...) "
                    "after '['");
      }
      return t == Try::kYes;
    case '.':
      return ReadDotToken(c, path);
    case '*':
      t = ReadWildCardToken(c, path);
      if (t == Try::kNo)
        return Fail(start, "could not parse the token starting here");
      return t == Try::kYes;
    default:
      t = ReadPropertyOrFunctionToken(c, path);
      if (t == Try::kNo)
        return Fail(start, "could not parse the token starting here");
      return t == Try::kYes;
  }
}

bool Parser::ReadDotToken(Cursor& c, CompiledPath& path) {
  if (c.CurrentIs('.') && c.NextIs('.')) {
    Segment scan;
    scan.kind = SegmentKind::kScan;
    path.segments.push_back(std::move(scan));
    c.Advance(2);
  } else if (!c.HasMore()) {
    return Fail(c.pos(), "a path must not end with '.'");
  } else {
    c.Advance(1);
  }
  if (c.CurrentIs('.')) return Fail(c.pos(), "character '.' is not valid here");
  return ReadNextToken(c, path);
}

Try Parser::ReadPropertyOrFunctionToken(Cursor& c, CompiledPath& path) {
  if (c.CurrentIs('[') || c.CurrentIs('*') || c.CurrentIs('.') ||
      c.CurrentIs(' ')) {
    return Try::kNo;
  }
  const int start = c.pos();
  int read = start;
  int end = -1;
  bool function = false;
  while (c.InBounds(read)) {
    char ch = c.At(read);
    if (ch == ' ') {
      return FailTry(read,
                     "use bracket notation ['my prop'] if a name "
                     "contains blanks");
    }
    if (ch == '.' || ch == '[') {
      end = read;
      break;
    }
    if (ch == '(') {
      function = true;
      end = read;
      break;
    }
    ++read;
  }
  if (end == -1) end = c.end() + 1;
  std::string name(c.Slice(start, end));
  if (!function) {
    Segment s;
    s.kind = SegmentKind::kProperty;
    s.names.push_back(name);
    path.segments.push_back(std::move(s));
    c.SetPos(end);
    return Try::kYes;
  }
  int depth = 1;
  for (int i = read + 1; c.InBounds(i) && depth > 0; ++i) {
    if (c.At(i) == ')') --depth;
    if (c.At(i) == '(') ++depth;
  }
  if (depth != 0) {
    return FailTry(read, absl::StrCat("the arguments of function '", name,
                                      "' are not closed"));
  }
  if (c.At(read + 1) != ')') {
    return FailTry(read + 1, absl::StrCat("function '", name,
                                          "' takes no arguments here"));
  }
  std::optional<FunctionKind> kind = FunctionFromName(name);
  if (!kind.has_value()) {
    return FailTry(start,
                   absl::StrCat("unknown function '", name,
                                "()'; the functions are length(), size(), "
                                "min(), max(), avg(), stddev(), sum(), keys(), "
                                "concat() and append()"));
  }
  Segment s;
  s.kind = SegmentKind::kFunction;
  s.function = *kind;
  path.segments.push_back(std::move(s));
  c.SetPos(read + 1);
  if (!c.IsTail())
    return FailTry(c.pos() + 1, "a function call must end the path");
  return Try::kYes;
}

Try Parser::ReadBracketPropertyToken(Cursor& c, CompiledPath& path) {
  if (!c.CurrentIs('[')) return Try::kNo;
  const char delimiter = c.NextSignificantChar(c.pos());
  if (delimiter != '\'' && delimiter != '"') return Try::kNo;
  std::vector<std::string> names;
  int start = c.pos() + 1;
  int read = start;
  int end = 0;
  bool in_property = false;
  bool in_escape = false;
  bool last_was_comma = false;
  while (c.InBounds(read)) {
    char ch = c.At(read);
    if (in_escape) {
      in_escape = false;
    } else if (ch == '\\') {
      in_escape = true;
    } else if (ch == ']' && !in_property) {
      if (last_was_comma) return FailTry(read, "found an empty property");
      break;
    } else if (ch == delimiter) {
      if (in_property) {
        char next = c.NextSignificantChar(read);
        if (next != ']' && next != ',') {
          return FailTry(read + 1,
                         "properties must be separated by ',' and "
                         "closed by ']'");
        }
        end = read;
        std::string name;
        if (!Unescape(c.Slice(start, end), &name)) {
          return FailTry(start, "invalid \\u escape in a property name");
        }
        names.push_back(std::move(name));
        in_property = false;
      } else {
        start = read + 1;
        in_property = true;
        last_was_comma = false;
      }
    } else if (ch == ',' && !in_property) {
      if (last_was_comma) return FailTry(read, "found an empty property");
      last_was_comma = true;
    }
    ++read;
  }
  if (in_property) {
    return FailTry(start - 1,
                   absl::StrCat("the property is not closed; missing ",
                                std::string(1, delimiter)));
  }
  int close = c.IndexOfNextSignificant(end, ']');
  if (close == -1) return FailTry(end + 1, "expected ']'");
  c.SetPos(close + 1);
  Segment s;
  s.kind = SegmentKind::kProperty;
  s.delimiter = delimiter;
  s.names = std::move(names);
  path.segments.push_back(std::move(s));
  return Try::kYes;
}

// Integer.parseInt() for the characters Jayway lets through: [-]digits.
std::optional<int32_t> ParseJavaInt(absl::string_view s) {
  if (s.empty()) return std::nullopt;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return std::nullopt;
  int64_t value = 0;
  for (; i < s.size(); ++i) {
    if (!IsDigit(s[i])) return std::nullopt;
    value = value * 10 + (s[i] - '0');
    if (value > int64_t{1} << 31) return std::nullopt;
  }
  if (s[0] == '-') value = -value;
  if (value < std::numeric_limits<int32_t>::min() ||
      value > std::numeric_limits<int32_t>::max()) {
    return std::nullopt;
  }
  return static_cast<int32_t>(value);
}

Try Parser::ReadArrayToken(Cursor& c, CompiledPath& path) {
  if (!c.CurrentIs('[')) return Try::kNo;
  char next = c.NextSignificantChar(c.pos());
  if (!IsDigit(next) && next != '-' && next != ':') return Try::kNo;
  const int begin = c.pos() + 1;
  const int end = c.NextIndexOf(begin, ']');
  if (end == -1) return Try::kNo;
  absl::string_view expression = JavaTrim(c.Slice(begin, end));
  if (expression == "*") return Try::kNo;
  for (char ch : expression) {
    if (!IsDigit(ch) && ch != ',' && ch != '-' && ch != ':' && ch != ' ') {
      return Try::kNo;
    }
  }
  Segment s;
  if (expression.find(':') != absl::string_view::npos) {
    for (char ch : expression) {
      if (!IsDigit(ch) && ch != '-' && ch != ':') {
        return FailTry(begin, absl::StrCat("invalid slice [", expression,
                                           "]: only digits, '-' and ':' are "
                                           "allowed"));
      }
    }
    // String.split(":"), which drops trailing empty strings.
    std::vector<absl::string_view> parts;
    size_t from = 0;
    while (true) {
      size_t colon = expression.find(':', from);
      parts.push_back(expression.substr(from, colon == absl::string_view::npos
                                                  ? absl::string_view::npos
                                                  : colon - from));
      if (colon == absl::string_view::npos) break;
      from = colon + 1;
    }
    while (!parts.empty() && parts.back().empty()) parts.pop_back();
    std::optional<int32_t> bounds[2];
    for (int i = 0; i < 2; ++i) {
      if (static_cast<int>(parts.size()) <= i || parts[i].empty()) continue;
      bounds[i] = ParseJavaInt(parts[i]);
      if (!bounds[i].has_value()) {
        return FailTry(
            begin, absl::StrCat("invalid slice [", expression, "]: '", parts[i],
                                "' is not a 32-bit integer"));
      }
    }
    s.kind = SegmentKind::kSlice;
    if (bounds[0].has_value() && !bounds[1].has_value()) {
      s.slice = SliceKind::kFrom;
      s.from = *bounds[0];
    } else if (bounds[0].has_value()) {
      s.slice = SliceKind::kBetween;
      s.from = *bounds[0];
      s.to = *bounds[1];
    } else if (bounds[1].has_value()) {
      s.slice = SliceKind::kTo;
      s.to = *bounds[1];
    } else {
      return FailTry(begin, absl::StrCat("invalid slice [", expression,
                                         "]: a start or an end is required"));
    }
  } else {
    s.kind = SegmentKind::kIndex;
    size_t from = 0;
    while (true) {
      size_t comma = expression.find(',', from);
      absl::string_view token = expression.substr(
          from, comma == absl::string_view::npos ? absl::string_view::npos
                                                 : comma - from);
      while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
      while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
      std::optional<int32_t> index = ParseJavaInt(token);
      if (!index.has_value()) {
        return FailTry(begin, absl::StrCat("invalid array index '", token,
                                           "' in [", expression, "]"));
      }
      s.indexes.push_back(*index);
      if (comma == absl::string_view::npos) break;
      from = comma + 1;
    }
  }
  path.segments.push_back(std::move(s));
  c.SetPos(end + 1);
  return Try::kYes;
}

Try Parser::ReadWildCardToken(Cursor& c, CompiledPath& path) {
  const bool in_bracket = c.CurrentIs('[');
  if (in_bracket && !c.NextSignificantIs(c.pos(), '*')) return Try::kNo;
  if (!c.CurrentIs('*') && !c.InBounds(c.pos() + 1)) return Try::kNo;
  if (in_bracket) {
    int star = c.IndexOfNextSignificant(c.pos(), '*');
    if (!c.NextSignificantIs(star, ']')) {
      return FailTry(star + 1, "expected ']' after '[*'");
    }
    c.SetPos(c.IndexOfNextSignificant(star, ']') + 1);
  } else {
    c.Advance(1);
  }
  Segment s;
  s.kind = SegmentKind::kWildcard;
  path.segments.push_back(std::move(s));
  return Try::kYes;
}

Try Parser::ReadFilterToken(Cursor& c, CompiledPath& path) {
  const int open_statement = c.pos();
  const int question = c.IndexOfNextSignificant(c.pos(), '?');
  if (question == -1) return Try::kNo;
  const int open = c.IndexOfNextSignificant(question, '(');
  if (open == -1) return Try::kNo;
  bool error = false;
  const int close = c.IndexOfMatchingClose(open, '(', ')', true, true, &error);
  if (error) {
    return FailTry(open,
                   "a string or /regular expression/ in the filter is "
                   "not closed");
  }
  if (close == -1 || !c.NextSignificantIs(close, ']')) return Try::kNo;
  const int close_statement = c.IndexOfNextSignificant(close, ']');
  const int filter = CompileFilter(open_statement, close_statement + 1);
  if (filter < 0) return Try::kFail;
  Segment s;
  s.kind = SegmentKind::kFilter;
  s.filter = filter;
  path.segments.push_back(std::move(s));
  c.SetPos(close_statement + 1);
  return Try::kYes;
}

Try Parser::ReadPlaceholderToken(Cursor& c) {
  const int question = c.IndexOfNextSignificant(c.pos(), '?');
  if (question == -1) return Try::kNo;
  const char next = c.NextSignificantChar(question);
  if (next != ']' && next != ',') return Try::kNo;
  if (c.NextIndexOf(c.pos() + 1, ']') == -1) return Try::kNo;
  return FailTry(c.pos(), "a filter needs an expression: [?(<expression>)]");
}

bool Parser::Finish(CompiledPath& path, int function_position) {
  std::vector<Segment>& segments = path.segments;
  const bool ends_in_function =
      !segments.empty() && segments.back().kind == SegmentKind::kFunction;
  path.ends_in_keys =
      ends_in_function && segments.back().function == FunctionKind::kKeys;
  if (ends_in_function && segments.front().kind == SegmentKind::kScan) {
    if (segments.size() == 2) {
      return Fail(function_position, "a function cannot follow '..' directly");
    }
    path.inverted = true;
    path.inverted_function = segments.back().function;
    segments.pop_back();
  }
  for (Segment& s : segments) {
    if (s.kind == SegmentKind::kScan) path.has_scan = true;
    if (s.kind != SegmentKind::kProperty) continue;
    for (const std::string& name : s.names) {
      if (std::find(s.unique_names.begin(), s.unique_names.end(), name) ==
          s.unique_names.end()) {
        s.unique_names.push_back(name);
      }
    }
  }
  const size_t n = segments.size();
  path.token_definite.assign(n, 0);
  path.upstream_definite.assign(n, 0);
  bool upstream = true;
  bool all_definite = true;
  bool reference = !path.inverted;
  for (size_t k = 0; k < n; ++k) {
    const Segment& s = segments[k];
    const bool leaf = k + 1 == n;
    bool definite = false;
    switch (s.kind) {
      case SegmentKind::kProperty:
        definite = s.names.size() == 1 || leaf;
        if (s.names.size() != 1) reference = false;
        break;
      case SegmentKind::kIndex:
        definite = s.indexes.size() == 1;
        if (!definite) reference = false;
        break;
      case SegmentKind::kFunction:
        definite = true;
        reference = false;
        break;
      default:
        reference = false;
        break;
    }
    path.token_definite[k] = definite;
    path.upstream_definite[k] = upstream;
    upstream = upstream && definite;
    all_definite = all_definite && definite;
  }
  path.single_value = path.inverted || all_definite;
  path.reference = reference;
  if (n >= 2 && segments[n - 2].kind == SegmentKind::kIndex &&
      segments[n - 2].indexes.size() == 1) {
    path.tail_prev_index = segments[n - 2].indexes[0];
  }
  if (path.inverted && (path.inverted_function == FunctionKind::kLength ||
                        path.inverted_function == FunctionKind::kSize)) {
    // Jayway's length() appends a wildcard to its argument path and counts.
    CompiledPath counted;
    counted.relative = path.relative;
    counted.segments = path.segments;
    Segment wildcard;
    wildcard.kind = SegmentKind::kWildcard;
    counted.segments.push_back(std::move(wildcard));
    counted.has_scan = true;
    counted.token_definite = path.token_definite;
    counted.token_definite.push_back(0);
    counted.upstream_definite = path.upstream_definite;
    counted.upstream_definite.push_back(1);  // Jayway's wildcard has no prev
    if (!counted.token_definite.empty() &&
        counted.segments[n - 1].kind == SegmentKind::kProperty) {
      counted.token_definite[n - 1] = counted.segments[n - 1].names.size() == 1;
    }
    counted.tail_prev_index = path.tail_prev_index;
    program_->paths.push_back(std::move(counted));
    path.length_path = static_cast<int32_t>(program_->paths.size()) - 1;
  }
  return true;
}

// --- FilterCompiler --------------------------------------------------------

int Parser::CompileFilter(int lo, int hi) {
  if (++depth_ > kMaxDepth)
    return Fail(lo, "the filter is nested too deeply"), -1;
  struct DepthGuard {
    int& depth;
    ~DepthGuard() { --depth; }
  } guard{depth_};
  Cursor f(text_, lo, hi);
  f.Trim();
  if (!f.CurrentIs('[') || !f.LastIs(']')) {
    return Fail(f.pos(), "a filter must start with '[' and end with ']'"), -1;
  }
  f.Advance(1);
  f.DecrementEnd(1);
  f.Trim();
  if (!f.CurrentIs('?'))
    return Fail(f.pos(), "a filter must start with '[?'"), -1;
  f.Advance(1);
  f.Trim();
  if (!f.CurrentIs('(') || !f.LastIs(')')) {
    return Fail(f.pos(), "a filter must start with '[?(' and end with ')]'"),
           -1;
  }
  const int expr = ReadLogicalOr(f);
  if (expr < 0) return -1;
  f.SkipBlanks();
  if (f.InBounds()) {
    return Fail(f.pos(),
                absl::StrCat("expected the end of the filter instead of '",
                             f.Slice(f.pos(), f.end() + 1), "'")),
           -1;
  }
  return expr;
}

int Parser::ReadLogicalOr(Cursor& f) {
  std::vector<int32_t> ops;
  int first = ReadLogicalAnd(f);
  if (first < 0) return -1;
  ops.push_back(first);
  while (true) {
    int save = f.pos();
    if (!f.HasSignificantSubSequence("||")) {
      f.SetPos(save);
      break;
    }
    int next = ReadLogicalAnd(f);
    if (next < 0) return -1;
    ops.push_back(next);
  }
  if (ops.size() == 1) return ops[0];
  Expr e;
  e.kind = ExprKind::kOr;
  e.children = std::move(ops);
  return AddExpr(std::move(e));
}

int Parser::ReadLogicalAnd(Cursor& f) {
  std::vector<int32_t> ops;
  int first = ReadLogicalAndOperand(f);
  if (first < 0) return -1;
  ops.push_back(first);
  while (true) {
    int save = f.pos();
    if (!f.HasSignificantSubSequence("&&")) {
      f.SetPos(save);
      break;
    }
    int next = ReadLogicalAndOperand(f);
    if (next < 0) return -1;
    ops.push_back(next);
  }
  if (ops.size() == 1) return ops[0];
  Expr e;
  e.kind = ExprKind::kAnd;
  e.children = std::move(ops);
  return AddExpr(std::move(e));
}

int Parser::ReadLogicalAndOperand(Cursor& f) {
  if (++depth_ > kMaxDepth)
    return Fail(f.pos(), "the filter is nested too deeply"), -1;
  struct DepthGuard {
    int& depth;
    ~DepthGuard() { --depth; }
  } guard{depth_};
  const int save = f.SkipBlanks().pos();
  if (f.SkipBlanks().CurrentIs('!')) {
    f.Advance(1);
    char next = f.SkipBlanks().Current();
    if (next == '$' || next == '@') {
      f.SetPos(save);  // "!@.a": a negated existence test, read as a value
    } else {
      int op = ReadLogicalAndOperand(f);
      if (op < 0) return -1;
      Expr e;
      e.kind = ExprKind::kNot;
      e.children.push_back(op);
      return AddExpr(std::move(e));
    }
  }
  if (f.SkipBlanks().CurrentIs('(')) {
    f.Advance(1);
    int op = ReadLogicalOr(f);
    if (op < 0) return -1;
    if (!f.SkipBlanks().CurrentIs(')'))
      return Fail(f.pos(), "expected ')'"), -1;
    f.Advance(1);
    return op;
  }
  return ReadExpression(f);
}

int Parser::ReadExpression(Cursor& f) {
  Operand left;
  const int left_position = f.SkipBlanks().pos();
  if (!ReadValueNode(f, &left)) return -1;
  const int save = f.pos();
  const int begin = f.SkipBlanks().pos();
  if (IsRelationalOperatorChar(f.Current())) {
    while (f.InBounds() && IsRelationalOperatorChar(f.Current())) f.Advance(1);
  } else {
    while (f.InBounds() && f.Current() != ' ') f.Advance(1);
  }
  std::optional<RelOp> op = RelOpFromString(f.Slice(begin, f.pos()));
  Expr e;
  e.kind = ExprKind::kRelation;
  if (op.has_value()) {
    Operand right;
    if (!ReadValueNode(f, &right)) return -1;
    e.op = *op;
    e.left = AddOperand(std::move(left));
    e.right = AddOperand(std::move(right));
    return AddExpr(std::move(e));
  }
  // No operator: an existence test, which only a path can be.
  f.SetPos(save);
  if (left.kind != OperandKind::kPath) {
    return Fail(left_position,
                "expected a path before an existence test or "
                "a comparison operator after a value"),
           -1;
  }
  left.kind = OperandKind::kExists;
  Operand right;
  right.literal.kind = VNode::kBool;
  right.literal.boolean = left.should_exist;
  e.op = RelOp::kExists;
  e.left = AddOperand(std::move(left));
  e.right = AddOperand(std::move(right));
  return AddExpr(std::move(e));
}

bool Parser::ReadValueNode(Cursor& f, Operand* out) {
  char c = f.SkipBlanks().Current();
  if (c == '$' || c == '@') return ReadPath(f, out);
  if (c == '!') {
    f.Advance(1);
    c = f.SkipBlanks().Current();
    if (c == '$' || c == '@') return ReadPath(f, out);
    return Fail(f.pos(), "expected a path after '!'");
  }
  return ReadLiteral(f, out);
}

bool Parser::ReadLiteral(Cursor& f, Operand* out) {
  VNode& v = out->literal;
  out->kind = OperandKind::kLiteral;
  const int begin = f.SkipBlanks().pos();
  const char c = f.Current();
  if (c == '\'' || c == '"') {
    int close = f.NextIndexOfUnescaped(begin, c);
    if (close == -1) return Fail(begin, "the string literal is not closed");
    std::string s;
    if (!Unescape(f.Slice(begin + 1, close), &s)) {
      return Fail(begin, "invalid \\u escape in a string literal");
    }
    v.kind = VNode::kString;
    v.Own(std::move(s));
    f.SetPos(close + 1);
    return true;
  }
  if (c == 't' || c == 'f') {
    const int end = begin + (c == 't' ? 3 : 4);
    absl::string_view word = f.Slice(begin, end + 1);
    if (!f.InBounds(end) || (word != "true" && word != "false")) {
      return Fail(begin, "expected true or false");
    }
    v.kind = VNode::kBool;
    v.boolean = c == 't';
    f.SetPos(end + 1);
    return true;
  }
  if (c == 'n') {
    if (!f.InBounds(begin + 3) || f.Slice(begin, begin + 4) != "null") {
      return Fail(begin, "expected null");
    }
    v.kind = VNode::kNull;
    f.SetPos(begin + 4);
    return true;
  }
  if (c == '{' || c == '[') {
    bool error = false;
    int close = f.IndexOfMatchingClose(begin, c, c == '[' ? ']' : '}', true,
                                       false, &error);
    if (error || close == -1)
      return Fail(begin, "the JSON literal is not closed");
    absl::string_view raw = f.Slice(begin, close + 1);
    auto value = std::make_unique<json::Value>();
    LenientJsonReader reader(raw, program_->literals.GetAllocator());
    if (!reader.Read(value.get())) return Fail(begin, "invalid JSON literal");
    v.kind = VNode::kJson;
    v.literal_json = true;
    v.Own(std::string(raw));
    v.json = value.get();
    program_->literal_values.push_back(std::move(value));
    f.SetPos(close + 1);
    return true;
  }
  if (c == '/') return ReadPattern(f, out);
  return ReadNumber(f, out);
}

bool Parser::ReadNumber(Cursor& f, Operand* out) {
  const int begin = f.pos();
  while (f.InBounds()) {
    char c = f.Current();
    if (!IsDigit(c) && c != '-' && c != '.' && c != 'E' && c != 'e') break;
    f.Advance(1);
  }
  std::optional<Decimal> d = ParseDecimal(f.Slice(begin, f.pos()));
  if (!d.has_value()) {
    return Fail(begin,
                "expected a value: a path, 'string', number, true, "
                "false, null, JSON or /regex/");
  }
  out->literal.kind = VNode::kNumber;
  out->literal.number = std::move(*d);
  return true;
}

bool Parser::ReadPattern(Cursor& f, Operand* out) {
  const int begin = f.pos();
  int close = f.NextIndexOfUnescaped(begin, '/');
  if (close == -1) return Fail(begin, "the /regular expression/ is not closed");
  int flags_end = close + 1;
  while (f.InBounds(flags_end) && IsPatternFlag(f.At(flags_end))) ++flags_end;
  f.SetPos(flags_end);
  Regex regex;
  std::string error;
  if (!Regex::Compile(f.Slice(begin + 1, close), f.Slice(close + 1, flags_end),
                      &regex, &error)) {
    return Fail(begin, absl::StrCat("invalid regular expression: ", error));
  }
  program_->regexes.push_back(std::move(regex));
  out->kind = OperandKind::kLiteral;
  out->literal.kind = VNode::kPattern;
  out->literal.regex = static_cast<int32_t>(program_->regexes.size()) - 1;
  return true;
}

bool Parser::IsClosingFunctionBracket(const Cursor& f, int lower) const {
  if (!f.CurrentIs(')')) return false;
  int i = f.IndexOfPreviousSignificant(f.pos());
  if (i == -1 || f.At(i) != '(') return false;
  for (--i; f.InBounds(i) && i > lower; --i) {
    if (f.At(i) == '.') return true;
  }
  return false;
}

bool Parser::ReadPath(Cursor& f, Operand* out) {
  const char previous = f.PreviousSignificantChar();
  const int begin = f.pos();
  f.Advance(1);  // $ or @
  while (f.InBounds()) {
    if (f.CurrentIs('[')) {
      bool error = false;
      int close =
          f.IndexOfMatchingClose(f.pos(), '[', ']', true, false, &error);
      if (error || close == -1)
        return Fail(f.pos(), "unbalanced '[' in the filter");
      f.SetPos(close + 1);
    }
    const bool closing_function =
        f.CurrentIs(')') && IsClosingFunctionBracket(f, begin);
    const bool closing_logical = f.CurrentIs(')') && !closing_function;
    if (!f.InBounds() || IsRelationalOperatorChar(f.Current()) ||
        f.CurrentIs(' ') || closing_logical) {
      break;
    }
    f.Advance(1);
  }
  const int id = CompilePath(begin, f.pos(), /*allow_relative=*/true);
  if (id < 0) return false;
  out->kind = OperandKind::kPath;
  out->path = id;
  out->should_exist = previous != '!';
  return true;
}

// ---------------------------------------------------------------------------
// Evaluation.

enum class Outcome : uint8_t {
  kOk,
  kNotFound,  // Jayway's PathNotFoundException
  kInvalid,   // InvalidPathException at evaluation
  kError,     // any other JsonPathException
};

// A filter's result. kAbort is an InvalidPathException inside a predicate,
// which Jayway turns into "no match"; kError ends the whole evaluation.
enum class Truth : uint8_t { kFalse, kTrue, kAbort, kError };

Truth FromBool(bool b) { return b ? Truth::kTrue : Truth::kFalse; }

enum class Mode : uint8_t {
  kSelect,  // node pointers; key unions and functions select their inputs
  kValues,  // values as Jayway returns them, computing unions and functions
  kCount,   // only how many values, for existence tests
};

const json::Value* FindMember(const json::Value& object,
                              const std::string& name) {
  auto it = object.FindMember(json::Value(rapidjson::StringRef(
      name.data(), static_cast<rapidjson::SizeType>(name.size()))));
  return it == object.MemberEnd() ? nullptr : &it->value;
}

// Object.equals() between the Java values json-smart builds: an Integer is
// never equal to a Double, objects compare as maps.
bool JavaValueEquals(const json::Value& a, const json::Value& b) {
  if (a.IsNumber() && b.IsNumber()) {
    if (a.IsDouble() != b.IsDouble()) return false;
    if (a.IsDouble()) {
      return a.GetDouble() == b.GetDouble() &&
             std::signbit(a.GetDouble()) == std::signbit(b.GetDouble());
    }
    if (a.IsInt64() && b.IsInt64()) return a.GetInt64() == b.GetInt64();
    if (a.IsUint64() && b.IsUint64()) return a.GetUint64() == b.GetUint64();
    return false;
  }
  if (a.GetType() != b.GetType()) return false;
  switch (a.GetType()) {
    case rapidjson::kNullType:
    case rapidjson::kTrueType:
    case rapidjson::kFalseType:
      return true;
    case rapidjson::kStringType:
      return a.GetStringLength() == b.GetStringLength() &&
             std::memcmp(a.GetString(), b.GetString(), a.GetStringLength()) ==
                 0;
    case rapidjson::kArrayType:
      if (a.Size() != b.Size()) return false;
      for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
        if (!JavaValueEquals(a[i], b[i])) return false;
      }
      return true;
    case rapidjson::kObjectType: {
      if (a.MemberCount() != b.MemberCount()) return false;
      for (auto it = a.MemberBegin(); it != a.MemberEnd(); ++it) {
        auto other = b.FindMember(it->name);
        if (other == b.MemberEnd() ||
            !JavaValueEquals(it->value, other->value)) {
          return false;
        }
      }
      return true;
    }
    default:
      return false;
  }
}

// A kJson node seen as a Java List, when it is one.
struct ListView {
  const VNode* node;
  bool valid() const {
    return node->is_list || (node->json != nullptr && node->json->IsArray());
  }
  size_t size() const {
    return node->is_list ? node->list.size() : node->json->Size();
  }
  const json::Value& at(size_t i) const {
    return node->is_list ? *node->list[i]
                         : (*node->json)[static_cast<rapidjson::SizeType>(i)];
  }
};

// JsonNode equality between parsed values (List.equals / Map.equals).
bool JsonNodeEquals(const VNode& a, const VNode& b) {
  ListView la{&a};
  ListView lb{&b};
  if (la.valid() != lb.valid()) return false;
  if (la.valid()) {
    if (la.size() != lb.size()) return false;
    for (size_t i = 0; i < la.size(); ++i) {
      if (!JavaValueEquals(la.at(i), lb.at(i))) return false;
    }
    return true;
  }
  if (a.json == nullptr || b.json == nullptr) return false;
  return JavaValueEquals(*a.json, *b.json);
}

// ValueNode.equals(): a.equals(b), which is not symmetric.
bool NodeEquals(const VNode& a, const VNode& b) {
  switch (a.kind) {
    case VNode::kString:
      if (b.kind == VNode::kString) return a.str() == b.str();
      if (b.kind == VNode::kNumber) return a.str() == DecimalToString(b.number);
      return false;
    case VNode::kNumber:
      if (b.kind == VNode::kNumber)
        return CompareDecimal(a.number, b.number) == 0;
      if (b.kind == VNode::kString) {
        std::optional<Decimal> d = ParseDecimal(b.str());
        return d.has_value() && CompareDecimal(a.number, *d) == 0;
      }
      return false;
    case VNode::kBool:
      return b.kind == VNode::kBool && a.boolean == b.boolean;
    case VNode::kNull:
      return b.kind == VNode::kNull;
    case VNode::kJson:
      if (b.kind != VNode::kJson) return false;
      if (a.literal_json || b.literal_json) {
        return a.literal_json && b.literal_json && a.str() == b.str();
      }
      return JsonNodeEquals(a, b);
    default:
      return false;
  }
}

// The EqualsEvaluator: two JSON nodes compare by the left one's value with
// the right one parsed, and a literal on the left (kept as text) equals
// nothing.
bool EvaluatorEquals(const VNode& a, const VNode& b) {
  if (a.kind == VNode::kJson && b.kind == VNode::kJson) {
    if (a.literal_json) return false;
    return JsonNodeEquals(a, b);
  }
  return NodeEquals(a, b);
}

const VNode kTrueNode = [] {
  VNode v;
  v.kind = VNode::kBool;
  v.boolean = true;
  return v;
}();
const VNode kFalseNode = [] {
  VNode v;
  v.kind = VNode::kBool;
  return v;
}();
const VNode kUndefinedNode;

VNode FromJsonValue(const json::Value& v) {
  VNode n;
  switch (v.GetType()) {
    case rapidjson::kNullType:
      n.kind = VNode::kNull;
      break;
    case rapidjson::kTrueType:
      n.kind = VNode::kBool;
      n.boolean = true;
      break;
    case rapidjson::kFalseType:
      n.kind = VNode::kBool;
      break;
    case rapidjson::kNumberType:
      n.kind = VNode::kNumber;
      n.number = JsonNumberToDecimal(v);
      break;
    case rapidjson::kStringType:
      n.kind = VNode::kString;
      n.view = absl::string_view(v.GetString(), v.GetStringLength());
      break;
    case rapidjson::kArrayType:
    case rapidjson::kObjectType:
      n.kind = VNode::kJson;
      n.json = &v;
      break;
  }
  return n;
}

class Evaluator {
 public:
  // `root` is the document ("$" in filters); `allocator` receives computed
  // values (unions of keys, function results), or an own pool when null.
  // `label` names the root in messages ("$", "$$" or "$name").
  Evaluator(const Program& program, const json::Value& root,
            json::Allocator* allocator, absl::string_view label, bool messages)
      : program_(program),
        root_(root),
        allocator_(allocator),
        label_(label),
        messages_(messages) {}

  Outcome Evaluate(int path_id, const json::Value& doc, Mode mode, bool require,
                   std::vector<const json::Value*>* out, size_t* count,
                   bool ignore_inversion = false) {
    Run r;
    r.path_id = path_id;
    r.path = &program_.paths[path_id];
    r.doc = &doc;
    r.mode = mode;
    r.require = require;
    r.out = out;
    r.messages = messages_ && depth_ == 0;
    ++depth_;
    Outcome o;
    if (r.path->inverted && !ignore_inversion) {
      o = Inverted(r);
    } else if (r.path->segments.empty()) {
      o = Add(r, doc);
    } else {
      o = Segment(r, 0, doc);
    }
    --depth_;
    if (count != nullptr) *count = r.count;
    return o;
  }

  const std::string& message() const { return message_; }

  // A result as the caller's own value: computed values move, nodes copy.
  // Computed values are in `allocator` already (it is the one the evaluator
  // was given), so moving them is safe.
  json::Value Take(const json::Value* v, json::Allocator& allocator) {
    if (!synthesized_.empty() && synthesized_set_.empty()) {
      for (const auto& owned : synthesized_)
        synthesized_set_.insert(owned.get());
    }
    if (synthesized_set_.count(v) > 0)
      return std::move(*const_cast<json::Value*>(v));
    return json::Copy(*v, allocator);
  }

 private:
  struct Run {
    int path_id = 0;
    const CompiledPath* path = nullptr;
    const json::Value* doc = nullptr;
    Mode mode = Mode::kValues;
    bool require = false;
    bool messages = false;
    std::vector<const json::Value*>* out = nullptr;
    size_t count = 0;
  };

  json::Allocator& Allocator() {
    if (allocator_ != nullptr) return *allocator_;
    if (!own_allocator_.has_value()) own_allocator_.emplace();
    return *own_allocator_;
  }

  const json::Value* Synthesize(json::Value v) {
    synthesized_.push_back(std::make_unique<json::Value>(std::move(v)));
    return synthesized_.back().get();
  }

  // Jayway's evaluation path up to (not including) segment k.
  std::string Prefix(const Run& r, size_t k) const {
    std::string out = r.path->relative ? "@" : (depth_ <= 1 ? label_ : "$");
    for (size_t i = 0; i < k; ++i) AppendFragment(r.path->segments[i], &out);
    return out;
  }

  Outcome Fail(const Run& r, Outcome o, const std::string& message) {
    if ((r.messages || o == Outcome::kError) && message_.empty())
      message_ = message;
    return o;
  }

  Outcome Add(Run& r, const json::Value& v) {
    if (r.mode == Mode::kCount) {
      ++r.count;
    } else {
      r.out->push_back(&v);
    }
    return Outcome::kOk;
  }

  Outcome Next(Run& r, size_t k, const json::Value& v) {
    return k + 1 == r.path->segments.size() ? Add(r, v) : Segment(r, k + 1, v);
  }

  // The array index a deep scan recorded for segment k (Jayway's
  // setUpstreamArrayIndex), or -1.
  int64_t Upstream(int path_id, size_t k) const {
    const uint64_t key = (static_cast<uint64_t>(path_id) << 32) | k;
    for (const auto& [entry, index] : upstream_) {
      if (entry == key) return index;
    }
    return -1;
  }
  void SetUpstream(int path_id, size_t k, int64_t index) {
    const uint64_t key = (static_cast<uint64_t>(path_id) << 32) | k;
    for (auto& [entry, value] : upstream_) {
      if (entry == key) {
        value = index;
        return;
      }
    }
    upstream_.emplace_back(key, index);
  }

  Outcome Segment(Run& r, size_t k, const json::Value& model);
  Outcome Property(Run& r, size_t k, const json::Value& model);
  Outcome ObjectProperty(Run& r, size_t k, const std::string& name,
                         const json::Value& model);
  Outcome PresentProperty(Run& r, size_t k, const json::Value& value);
  Outcome Merge(Run& r, size_t k, const json::Value& model);
  Outcome ArrayIndex(Run& r, size_t k, int64_t index, const json::Value& model);
  bool CheckArray(Run& r, size_t k, const json::Value& model, Outcome* o);
  Outcome Slice(Run& r, size_t k, const json::Value& model);
  Outcome Wildcard(Run& r, size_t k, const json::Value& model);
  Outcome Walk(Run& r, size_t pt, const json::Value& model);
  Truth ScanMatches(Run& r, size_t pt, const json::Value& model);
  Outcome Filter(Run& r, size_t k, const json::Value& model);
  Outcome Function(Run& r, size_t k, const json::Value& model);
  Outcome Inverted(Run& r);
  Outcome Apply(Run& r, FunctionKind fn, const json::Value& model,
                const std::vector<const json::Value*>* params);

  Truth Accept(int32_t expr, const json::Value& item);
  Truth Expression(int32_t expr, const json::Value& item);
  Truth Relation(const Expr& e, const json::Value& item);
  const VNode* Resolve(const Operand& o, const json::Value& item,
                       VNode* storage, Truth* failure);
  Truth ValueList(const VNode& n, std::vector<VNode>* out);

  const Program& program_;
  const json::Value& root_;
  json::Allocator* allocator_;
  std::optional<json::Allocator> own_allocator_;
  std::string label_;
  bool messages_;
  int depth_ = 0;
  std::string message_;
  std::vector<std::unique_ptr<json::Value>> synthesized_;
  std::unordered_set<const json::Value*> synthesized_set_;  // built by Take()
  std::vector<std::pair<uint64_t, int64_t>> upstream_;
  // Results of filter paths on "$", which depend only on the document.
  std::vector<std::pair<int32_t, std::unique_ptr<VNode>>> root_cache_;
};

Outcome Evaluator::Segment(Run& r, size_t k, const json::Value& model) {
  const jsonpath_internal::Segment& s = r.path->segments[k];
  switch (s.kind) {
    case SegmentKind::kProperty:
      return Property(r, k, model);
    case SegmentKind::kIndex: {
      Outcome o = Outcome::kOk;
      if (!CheckArray(r, k, model, &o)) return o;
      for (int32_t index : s.indexes) {
        o = ArrayIndex(r, k, index, model);
        if (o != Outcome::kOk) return o;
      }
      return Outcome::kOk;
    }
    case SegmentKind::kSlice:
      return Slice(r, k, model);
    case SegmentKind::kWildcard:
      return Wildcard(r, k, model);
    case SegmentKind::kScan:
      return Walk(r, k + 1, model);
    case SegmentKind::kFilter:
      return Filter(r, k, model);
    case SegmentKind::kFunction:
      return Function(r, k, model);
  }
  return Outcome::kOk;
}

Outcome Evaluator::Property(Run& r, size_t k, const json::Value& model) {
  const jsonpath_internal::Segment& s = r.path->segments[k];
  if (!model.IsObject()) {
    if (!r.path->upstream_definite[k]) return Outcome::kOk;
    if (!r.messages) return Outcome::kNotFound;
    std::string fragment;
    AppendFragment(s, &fragment);
    return Fail(r, Outcome::kNotFound,
                absl::StrCat("Expected to find an object with property ",
                             fragment, " in path ", Prefix(r, k),
                             " but found '", json::TypeName(model), "'"));
  }
  if (s.names.size() == 1) return ObjectProperty(r, k, s.names[0], model);
  if (k + 1 == r.path->segments.size()) return Merge(r, k, model);
  for (const std::string& name : s.names) {
    Outcome o = ObjectProperty(r, k, name, model);
    if (o != Outcome::kOk) return o;
  }
  return Outcome::kOk;
}

Outcome Evaluator::ObjectProperty(Run& r, size_t k, const std::string& name,
                                  const json::Value& model) {
  const json::Value* value = FindMember(model, name);
  if (value != nullptr) return PresentProperty(r, k, *value);
  const bool leaf = k + 1 == r.path->segments.size();
  if (leaf && !r.require) return Outcome::kOk;
  if (!leaf && !(r.path->upstream_definite[k] && r.path->token_definite[k]) &&
      !r.require) {
    return Outcome::kOk;
  }
  if (!r.messages) return Outcome::kNotFound;
  return Fail(
      r, Outcome::kNotFound,
      absl::StrCat(leaf ? "No results for path: " : "Missing property in path ",
                   Prefix(r, k), "['", name, "']"));
}

Outcome Evaluator::PresentProperty(Run& r, size_t k, const json::Value& value) {
  if (k + 1 < r.path->segments.size()) return Segment(r, k + 1, value);
  // Jayway adds a leaf only when no deep scan recorded an array position for
  // it, or when that position is the index written before the leaf.
  const int64_t upstream = r.path->has_scan ? Upstream(r.path_id, k) : -1;
  if (upstream == -1 || r.path->tail_prev_index == upstream)
    return Add(r, value);
  return Outcome::kOk;
}

Outcome Evaluator::Merge(Run& r, size_t k, const json::Value& model) {
  const jsonpath_internal::Segment& s = r.path->segments[k];
  for (const std::string& name : s.unique_names) {
    if (FindMember(model, name) != nullptr || !r.require) continue;
    if (!r.messages) return Outcome::kNotFound;
    std::string names;
    for (size_t i = 0; i < s.names.size(); ++i) {
      absl::StrAppend(&names, i > 0 ? ", " : "", "'", s.names[i], "'");
    }
    return Fail(r, Outcome::kNotFound,
                absl::StrCat("Missing property in path ", Prefix(r, k), "[",
                             names, "]"));
  }
  switch (r.mode) {
    case Mode::kCount:
      ++r.count;
      return Outcome::kOk;
    case Mode::kSelect:
      for (const std::string& name : s.unique_names) {
        if (const json::Value* v = FindMember(model, name)) r.out->push_back(v);
      }
      return Outcome::kOk;
    case Mode::kValues:
      break;
  }
  json::Allocator& allocator = Allocator();
  json::Value merged(rapidjson::kObjectType);
  for (const std::string& name : s.unique_names) {
    const json::Value* v = FindMember(model, name);
    if (v == nullptr) continue;
    merged.AddMember(
        json::Value(name.data(), static_cast<rapidjson::SizeType>(name.size()),
                    allocator),
        json::Copy(*v, allocator), allocator);
  }
  return Add(r, *Synthesize(std::move(merged)));
}

Outcome Evaluator::ArrayIndex(Run& r, size_t k, int64_t index,
                              const json::Value& model) {
  const int64_t size = model.Size();
  const int64_t effective = index < 0 ? size + index : index;
  if (effective < 0 || effective >= size) return Outcome::kOk;
  return Next(r, k, model[static_cast<rapidjson::SizeType>(effective)]);
}

bool Evaluator::CheckArray(Run& r, size_t k, const json::Value& model,
                           Outcome* o) {
  if (model.IsArray()) return true;
  *o = Outcome::kOk;
  if (!r.path->upstream_definite[k]) return false;
  if (!r.messages) {
    *o = Outcome::kNotFound;
    return false;
  }
  std::string fragment;
  AppendFragment(r.path->segments[k], &fragment);
  *o = Fail(r, Outcome::kNotFound,
            model.IsNull()
                ? absl::StrCat("The path ", Prefix(r, k), " is null")
                : absl::StrCat("Filter: ", fragment,
                               " can only be applied to arrays; ", Prefix(r, k),
                               " is ",
                               json::TypeName(model) == "object" ? "an " : "a ",
                               json::TypeName(model)));
  return false;
}

Outcome Evaluator::Slice(Run& r, size_t k, const json::Value& model) {
  Outcome o = Outcome::kOk;
  if (!CheckArray(r, k, model, &o)) return o;
  const jsonpath_internal::Segment& s = r.path->segments[k];
  const int64_t length = model.Size();
  int64_t from = 0;
  int64_t to = 0;
  switch (s.slice) {
    case SliceKind::kFrom:
      from = s.from < 0 ? length + s.from : s.from;
      from = std::max<int64_t>(0, from);
      to = length;
      break;
    case SliceKind::kBetween:
      // Jayway neither offsets nor clamps a negative start here; the index
      // then counts from the end when each element is read.
      from = s.from;
      to = std::min<int64_t>(length, s.to);
      break;
    case SliceKind::kTo:
      from = 0;
      to = s.to < 0 ? length + s.to : s.to;
      to = std::min<int64_t>(length, to);
      break;
  }
  if (length == 0 || from >= to) return Outcome::kOk;
  for (int64_t i = from; i < to; ++i) {
    o = ArrayIndex(r, k, i, model);
    if (o != Outcome::kOk) return o;
  }
  return Outcome::kOk;
}

Outcome Evaluator::Wildcard(Run& r, size_t k, const json::Value& model) {
  if (model.IsObject()) {
    for (auto it = model.MemberBegin(); it != model.MemberEnd(); ++it) {
      Outcome o = PresentProperty(r, k, it->value);
      if (o != Outcome::kOk) return o;
    }
  } else if (model.IsArray()) {
    for (rapidjson::SizeType i = 0; i < model.Size(); ++i) {
      Outcome o = ArrayIndex(r, k, i, model);
      if (o == Outcome::kNotFound && !r.require) continue;
      if (o != Outcome::kOk) return o;
    }
  }
  return Outcome::kOk;
}

// Jayway's ScanPathToken.walk. An array that the next segment applies to is
// not handed to that segment: the segment after it runs on each element,
// and the element's position is recorded for it (see PresentProperty()).
// So "$..[1].key" yields the key of each array's element 1, but
// "$..[0].a.b" yields a.b of every element of every array.
Outcome Evaluator::Walk(Run& r, size_t pt, const json::Value& model) {
  const size_t n = r.path->segments.size();
  if (model.IsObject()) {
    Truth m = ScanMatches(r, pt, model);
    if (m == Truth::kError) return Outcome::kError;
    if (m == Truth::kTrue) {
      Outcome o = Segment(r, pt, model);
      if (o != Outcome::kOk) return o;
    }
    for (auto it = model.MemberBegin(); it != model.MemberEnd(); ++it) {
      Outcome o = Walk(r, pt, it->value);
      if (o != Outcome::kOk) return o;
    }
  } else if (model.IsArray()) {
    Truth m = ScanMatches(r, pt, model);
    if (m == Truth::kError) return Outcome::kError;
    if (m == Truth::kTrue) {
      if (pt + 1 == n) {
        Outcome o = Segment(r, pt, model);
        if (o != Outcome::kOk) return o;
      } else {
        for (rapidjson::SizeType i = 0; i < model.Size(); ++i) {
          SetUpstream(r.path_id, pt + 1, i);
          Outcome o = Segment(r, pt + 1, model[i]);
          if (o != Outcome::kOk) return o;
        }
      }
    }
    for (rapidjson::SizeType i = 0; i < model.Size(); ++i) {
      Outcome o = Walk(r, pt, model[i]);
      if (o != Outcome::kOk) return o;
    }
  }
  return Outcome::kOk;
}

Truth Evaluator::ScanMatches(Run& r, size_t pt, const json::Value& model) {
  const jsonpath_internal::Segment& s = r.path->segments[pt];
  switch (s.kind) {
    case SegmentKind::kProperty:
      if (!model.IsObject()) return Truth::kFalse;
      if (!r.path->token_definite[pt]) return Truth::kTrue;
      for (const std::string& name : s.unique_names) {
        if (FindMember(model, name) == nullptr) return Truth::kFalse;
      }
      return Truth::kTrue;
    case SegmentKind::kIndex:
    case SegmentKind::kSlice:
      return FromBool(model.IsArray());
    case SegmentKind::kWildcard:
      return Truth::kTrue;
    case SegmentKind::kFilter:
      return Accept(s.filter, model);
    default:
      return Truth::kFalse;
  }
}

Outcome Evaluator::Filter(Run& r, size_t k, const json::Value& model) {
  const int32_t filter = r.path->segments[k].filter;
  if (model.IsObject()) {
    Truth t = Accept(filter, model);
    if (t == Truth::kError) return Outcome::kError;
    return t == Truth::kTrue ? Next(r, k, model) : Outcome::kOk;
  }
  if (model.IsArray()) {
    for (rapidjson::SizeType i = 0; i < model.Size(); ++i) {
      Truth t = Accept(filter, model[i]);
      if (t == Truth::kError) return Outcome::kError;
      if (t != Truth::kTrue) continue;
      Outcome o = ArrayIndex(r, k, i, model);
      if (o != Outcome::kOk) return o;
    }
    return Outcome::kOk;
  }
  if (!r.path->upstream_definite[k]) return Outcome::kOk;
  if (!r.messages) return Outcome::kInvalid;
  return Fail(
      r, Outcome::kInvalid,
      absl::StrCat("Filter: [?] can not be applied to primitives. Current "
                   "context is: ",
                   json::Serialize(model)));
}

Outcome Evaluator::Function(Run& r, size_t k, const json::Value& model) {
  const FunctionKind fn = r.path->segments[k].function;
  if (r.mode == Mode::kSelect) return Add(r, model);
  return Apply(r, fn, model, nullptr);
}

Outcome Evaluator::Inverted(Run& r) {
  const CompiledPath& p = *r.path;
  if (r.mode == Mode::kSelect) {
    return Evaluate(r.path_id, root_, Mode::kSelect, r.require, r.out, nullptr,
                    /*ignore_inversion=*/true);
  }
  std::vector<const json::Value*> matches;
  Outcome o;
  if (p.length_path >= 0) {
    o = Evaluate(p.length_path, *r.doc, Mode::kValues, r.require, &matches,
                 nullptr);
    if (o != Outcome::kOk) return o;
    if (r.mode == Mode::kCount) return Add(r, *r.doc);
    return Add(r,
               *Synthesize(json::Value(static_cast<uint64_t>(matches.size()))));
  }
  o = Evaluate(r.path_id, root_, Mode::kValues, r.require, &matches, nullptr,
               /*ignore_inversion=*/true);
  if (o != Outcome::kOk) return o;
  return Apply(r, p.inverted_function, *r.doc, &matches);
}

// Jayway's path functions. `params` holds the matches of the argument path
// of a rewritten "$..x.fn()", each consumed like an element of `model`.
Outcome Evaluator::Apply(Run& r, FunctionKind fn, const json::Value& model,
                         const std::vector<const json::Value*>* params) {
  switch (fn) {
    case FunctionKind::kMin:
    case FunctionKind::kMax:
    case FunctionKind::kAvg:
    case FunctionKind::kStddev:
    case FunctionKind::kSum: {
      size_t count = 0;
      double sum = 0;
      double sum_squares = 0;
      double min = std::numeric_limits<double>::max();
      // Jayway starts from Double.MIN_VALUE, the smallest positive double.
      double max = std::numeric_limits<double>::denorm_min();
      auto next = [&](const json::Value& v) {
        if (!v.IsNumber()) return;
        const double d = v.GetDouble();
        ++count;
        sum += d;
        sum_squares += d * d;
        min = std::min(min, d);
        if (max < d) max = d;
      };
      if (model.IsArray()) {
        for (const json::Value& v : model.GetArray()) next(v);
      }
      if (params != nullptr) {
        for (const json::Value* v : *params) next(*v);
      }
      if (count == 0) {
        return Fail(r, Outcome::kError,
                    "Aggregation function attempted to calculate value using "
                    "empty array");
      }
      double result = 0;
      switch (fn) {
        case FunctionKind::kMin:
          result = min;
          break;
        case FunctionKind::kMax:
          result = max;
          break;
        case FunctionKind::kAvg:
          result = sum / count;
          break;
        case FunctionKind::kSum:
          result = sum;
          break;
        default: {
          const double variance =
              sum_squares / count - sum * sum / count / count;
          result = std::sqrt(std::max(0.0, variance));
          break;
        }
      }
      if (!std::isfinite(result)) {
        return Fail(
            r, Outcome::kError,
            absl::StrCat(FunctionName(fn), "() is not a finite number"));
      }
      if (r.mode == Mode::kCount) return Add(r, model);
      return Add(r, *Synthesize(json::Value(result)));
    }
    case FunctionKind::kLength:
    case FunctionKind::kSize: {
      if (r.mode == Mode::kCount) return Add(r, model);
      json::Value result;  // null unless an array or object
      if (model.IsArray()) result.SetUint64(model.Size());
      if (model.IsObject()) result.SetUint64(model.MemberCount());
      return Add(r, *Synthesize(std::move(result)));
    }
    case FunctionKind::kKeys: {
      if (r.mode == Mode::kCount) return Add(r, model);
      json::Value result;
      if (model.IsObject()) {
        json::Allocator& allocator = Allocator();
        result.SetArray();
        for (auto it = model.MemberBegin(); it != model.MemberEnd(); ++it) {
          result.PushBack(json::Copy(it->name, allocator), allocator);
        }
      }
      return Add(r, *Synthesize(std::move(result)));
    }
    case FunctionKind::kConcat: {
      if (r.mode == Mode::kCount) return Add(r, model);
      std::string text;
      if (model.IsArray()) {
        for (const json::Value& v : model.GetArray()) {
          if (v.IsString()) text.append(v.GetString(), v.GetStringLength());
        }
      }
      if (params != nullptr) {
        // Parameter.consume(String.class): toString() of every non-null value.
        for (const json::Value* v : *params) {
          if (v->IsString()) {
            text.append(v->GetString(), v->GetStringLength());
          } else if (v->IsNumber()) {
            text += JavaNumberString(*v);
          } else if (v->IsBool()) {
            text += v->GetBool() ? "true" : "false";
          } else if (!v->IsNull()) {
            text += json::Serialize(*v);
          }
        }
      }
      json::Value result(text.data(),
                         static_cast<rapidjson::SizeType>(text.size()),
                         Allocator());
      return Add(r, *Synthesize(std::move(result)));
    }
    case FunctionKind::kAppend: {
      if (params == nullptr || !model.IsArray() || r.mode == Mode::kCount) {
        return Add(r, model);
      }
      json::Allocator& allocator = Allocator();
      json::Value result = json::Copy(model, allocator);
      json::Value appended(rapidjson::kArrayType);
      for (const json::Value* v : *params) {
        appended.PushBack(json::Copy(*v, allocator), allocator);
      }
      result.PushBack(appended, allocator);
      return Add(r, *Synthesize(std::move(result)));
    }
  }
  return Outcome::kOk;
}

// --- Filters ----------------------------------------------------------------

Truth Evaluator::Accept(int32_t expr, const json::Value& item) {
  Truth t = Expression(expr, item);
  return t == Truth::kAbort ? Truth::kFalse : t;
}

Truth Evaluator::Expression(int32_t id, const json::Value& item) {
  const Expr& e = program_.exprs[id];
  switch (e.kind) {
    case ExprKind::kOr:
      for (int32_t child : e.children) {
        Truth t = Expression(child, item);
        if (t != Truth::kFalse) return t;
      }
      return Truth::kFalse;
    case ExprKind::kAnd:
      for (int32_t child : e.children) {
        Truth t = Expression(child, item);
        if (t != Truth::kTrue) return t;
      }
      return Truth::kTrue;
    case ExprKind::kNot: {
      Truth t = Expression(e.children[0], item);
      if (t == Truth::kTrue) return Truth::kFalse;
      if (t == Truth::kFalse) return Truth::kTrue;
      return t;
    }
    case ExprKind::kRelation:
      return Relation(e, item);
  }
  return Truth::kFalse;
}

const VNode* Evaluator::Resolve(const Operand& o, const json::Value& item,
                                VNode* storage, Truth* failure) {
  if (o.kind == OperandKind::kLiteral) return &o.literal;
  const CompiledPath& p = program_.paths[o.path];
  const json::Value& doc = p.relative ? item : root_;
  if (o.kind == OperandKind::kExists) {
    // Jayway evaluates with REQUIRE_PROPERTIES: anything missing fails.
    size_t count = 0;
    Outcome out =
        Evaluate(o.path, doc, Mode::kCount, /*require=*/true, nullptr, &count);
    switch (out) {
      case Outcome::kOk:
        return (!p.single_value || count > 0) ? &kTrueNode : &kFalseNode;
      case Outcome::kNotFound:
        return &kFalseNode;
      case Outcome::kInvalid:
        *failure = Truth::kAbort;
        return nullptr;
      case Outcome::kError:
        *failure = Truth::kError;
        return nullptr;
    }
  }
  if (!p.relative) {
    for (const auto& [id, node] : root_cache_) {
      if (id == o.path) return node.get();
    }
  }
  std::vector<const json::Value*> results;
  Outcome out = Evaluate(o.path, doc, Mode::kValues, /*require=*/false,
                         &results, nullptr);
  VNode value;
  switch (out) {
    case Outcome::kOk:
      break;
    case Outcome::kNotFound:
      value.kind = VNode::kUndefined;
      break;
    case Outcome::kInvalid:
      *failure = Truth::kAbort;
      return nullptr;
    case Outcome::kError:
      *failure = Truth::kError;
      return nullptr;
  }
  if (out == Outcome::kOk) {
    if (p.single_value) {
      if (!results.empty()) {
        if (p.ends_in_keys && results.back()->IsArray()) {
          message_ = "Could not convert the result of keys() to a value";
          *failure = Truth::kError;
          return nullptr;
        }
        value = FromJsonValue(*results.back());
      }
    } else {
      value.kind = VNode::kJson;
      value.is_list = true;
      value.list = std::move(results);
    }
  }
  if (!p.relative) {
    root_cache_.emplace_back(o.path, std::make_unique<VNode>(std::move(value)));
    return root_cache_.back().second.get();
  }
  *storage = std::move(value);
  return storage;
}

// Jayway's JsonNode.asValueListNode(): kFalse when the node is no list.
Truth Evaluator::ValueList(const VNode& n, std::vector<VNode>* out) {
  ListView view{&n};
  if (!view.valid()) return Truth::kFalse;
  out->reserve(view.size());
  for (size_t i = 0; i < view.size(); ++i) {
    const json::Value& v = view.at(i);
    if (v.IsArray() || v.IsObject()) {
      message_ = "Could not determine value type";
      return Truth::kError;
    }
    if (!v.IsString()) {
      out->push_back(FromJsonValue(v));
      continue;
    }
    // ValueNode.toValueNode(String): a string that compiles as a path is a
    // path node, one that parses as JSON is a JSON node, and any other is a
    // string node that loses its quotes and escapes.
    absl::string_view s(v.GetString(), v.GetStringLength());
    absl::string_view trimmed = JavaTrim(s);
    VNode node;
    if (!trimmed.empty() && (trimmed[0] == '$' || trimmed[0] == '@')) {
      Program scratch;
      Parser parser(&scratch, trimmed);
      if (parser.CompilePath(0, static_cast<int>(trimmed.size()), true) >= 0) {
        node.kind = VNode::kOpaque;
        out->push_back(std::move(node));
        continue;
      }
    }
    if (trimmed.size() > 1 &&
        ((trimmed.front() == '[' && trimmed.back() == ']') ||
         (trimmed.front() == '{' && trimmed.back() == '}'))) {
      json::Document scratch;
      json::Value parsed;
      LenientJsonReader reader(trimmed, scratch.GetAllocator());
      if (reader.Read(&parsed)) {
        node.kind = VNode::kJson;
        node.literal_json = true;
        node.Own(std::string(s));
        out->push_back(std::move(node));
        continue;
      }
    }
    node.kind = VNode::kString;
    if (s.size() > 1) {
      absl::string_view inner = s;
      if ((s.front() == '\'' && s.back() == '\'') ||
          (s.front() == '"' && s.back() == '"')) {
        inner = s.substr(1, s.size() - 2);
      }
      std::string unescaped;
      if (!Unescape(inner, &unescaped)) {
        message_ = "Unable to parse unicode value";
        return Truth::kError;
      }
      node.Own(std::move(unescaped));
    } else {
      node.view = s;
    }
    out->push_back(std::move(node));
  }
  return Truth::kTrue;
}

Truth Evaluator::Relation(const Expr& e, const json::Value& item) {
  VNode left_storage;
  VNode right_storage;
  Truth failure = Truth::kFalse;
  const VNode* l =
      Resolve(program_.operands[e.left], item, &left_storage, &failure);
  if (l == nullptr) return failure;
  const VNode* r =
      Resolve(program_.operands[e.right], item, &right_storage, &failure);
  if (r == nullptr) return failure;
  switch (e.op) {
    case RelOp::kEq:
      return FromBool(EvaluatorEquals(*l, *r));
    case RelOp::kNe:
      return FromBool(!EvaluatorEquals(*l, *r));
    case RelOp::kTseq:
      return FromBool(l->kind == r->kind && EvaluatorEquals(*l, *r));
    case RelOp::kTsne:
      return FromBool(!(l->kind == r->kind && EvaluatorEquals(*l, *r)));
    case RelOp::kLt:
    case RelOp::kLte:
    case RelOp::kGt:
    case RelOp::kGte: {
      int cmp = 0;
      if (l->kind == VNode::kNumber && r->kind == VNode::kNumber) {
        cmp = CompareDecimal(l->number, r->number);
      } else if (l->kind == VNode::kString && r->kind == VNode::kString) {
        cmp = Utf16Compare(l->str(), r->str());
      } else {
        return Truth::kFalse;
      }
      switch (e.op) {
        case RelOp::kLt:
          return FromBool(cmp < 0);
        case RelOp::kLte:
          return FromBool(cmp <= 0);
        case RelOp::kGt:
          return FromBool(cmp > 0);
        default:
          return FromBool(cmp >= 0);
      }
    }
    case RelOp::kRegex: {
      const bool lp = l->kind == VNode::kPattern;
      const bool rp = r->kind == VNode::kPattern;
      if (lp == rp) return Truth::kFalse;
      const VNode& pattern = lp ? *l : *r;
      const VNode& other = lp ? *r : *l;
      std::string input;
      if (other.kind == VNode::kString) {
        input = std::string(other.str());
      } else if (other.kind == VNode::kNumber) {
        input = DecimalToString(other.number);
      } else if (other.kind == VNode::kBool) {
        input = other.boolean ? "true" : "false";
      }
      return FromBool(program_.regexes[pattern.regex].FullMatch(input));
    }
    case RelOp::kSize: {
      if (r->kind != VNode::kNumber) return Truth::kFalse;
      const int64_t expected = DecimalIntValue(r->number);
      if (l->kind == VNode::kString) {
        return FromBool(static_cast<int64_t>(Utf16Length(l->str())) ==
                        expected);
      }
      if (l->kind == VNode::kJson) {
        ListView view{l};
        return FromBool((view.valid() ? static_cast<int64_t>(view.size())
                                      : -1) == expected);
      }
      return Truth::kFalse;
    }
    case RelOp::kEmpty: {
      if (l->kind != VNode::kString && l->kind != VNode::kJson)
        return Truth::kFalse;
      if (r->kind != VNode::kBool) return Truth::kAbort;
      bool empty = true;
      if (l->kind == VNode::kString) {
        empty = l->str().empty();
      } else if (ListView{l}.valid()) {
        empty = ListView{l}.size() == 0;
      } else if (l->json != nullptr && l->json->IsObject()) {
        empty = l->json->MemberCount() == 0;
      }
      return FromBool(empty == r->boolean);
    }
    case RelOp::kIn:
    case RelOp::kNin: {
      if (r->kind != VNode::kJson) return Truth::kAbort;
      std::vector<VNode> list;
      Truth t = ValueList(*r, &list);
      if (t == Truth::kTrue) {
        t = Truth::kFalse;
        for (const VNode& element : list) {
          if (NodeEquals(*l, element)) {
            t = Truth::kTrue;
            break;
          }
        }
      }
      if (e.op == RelOp::kIn || (t != Truth::kTrue && t != Truth::kFalse))
        return t;
      return t == Truth::kTrue ? Truth::kFalse : Truth::kTrue;
    }
    case RelOp::kContains: {
      if (l->kind == VNode::kString && r->kind == VNode::kString) {
        return FromBool(l->str().find(r->str()) != absl::string_view::npos);
      }
      if (l->kind != VNode::kJson) return Truth::kFalse;
      std::vector<VNode> list;
      Truth t = ValueList(*l, &list);
      if (t != Truth::kTrue) return t;
      for (const VNode& element : list) {
        if (NodeEquals(*r, element)) return Truth::kTrue;
      }
      return Truth::kFalse;
    }
    case RelOp::kSubsetof:
    case RelOp::kAnyof:
    case RelOp::kNoneof: {
      if (r->kind != VNode::kJson) return Truth::kAbort;
      std::vector<VNode> right_list;
      Truth t = ValueList(*r, &right_list);
      if (t != Truth::kTrue) return t;
      if (l->kind != VNode::kJson) return Truth::kAbort;
      std::vector<VNode> left_list;
      t = ValueList(*l, &left_list);
      if (t != Truth::kTrue) return t;
      auto contains = [&](const VNode& x) {
        for (const VNode& y : right_list) {
          if (NodeEquals(x, y)) return true;
        }
        return false;
      };
      if (e.op == RelOp::kSubsetof) {
        for (const VNode& x : left_list) {
          if (!contains(x)) return Truth::kFalse;
        }
        return Truth::kTrue;
      }
      bool any = false;
      for (const VNode& x : left_list) {
        if (contains(x)) {
          any = true;
          break;
        }
      }
      return FromBool(e.op == RelOp::kAnyof ? any : !any);
    }
    case RelOp::kExists:
      if (l->kind != VNode::kBool && r->kind != VNode::kBool) {
        message_ = "Failed to evaluate exists expression";
        return Truth::kError;
      }
      if (l->kind != VNode::kBool || r->kind != VNode::kBool)
        return Truth::kAbort;
      return FromBool(l->boolean == r->boolean);
    case RelOp::kAll:
    case RelOp::kMatches:
    case RelOp::kType:
      // Their right side must be a list, predicate or class given in code;
      // a filter string cannot supply one, so Jayway always fails them.
      return Truth::kAbort;
  }
  return Truth::kFalse;
}

bool IsIdentifierStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}

bool IsIdentifierChar(char c) { return IsIdentifierStart(c) || IsDigit(c); }

}  // namespace
}  // namespace jsonpath_internal

using jsonpath_internal::CompiledPath;
using jsonpath_internal::Evaluator;
using jsonpath_internal::Mode;
using jsonpath_internal::Outcome;
using jsonpath_internal::Parser;
using jsonpath_internal::Program;
using jsonpath_internal::SegmentKind;

absl::StatusOr<JsonPath> JsonPath::Parse(absl::string_view text) {
  JsonPath path;
  path.text_ = std::string(text);
  auto invalid = [&](size_t position, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid JSONPath '", text, "' at position ", position, ": ", why));
  };
  // Jayway trims blanks around a path.
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && text[begin] == ' ') ++begin;
  while (end > begin && text[end - 1] == ' ') --end;
  if (begin == end) return invalid(0, "the path is empty");
  if (text[begin] != '$') return invalid(begin, "a path must start with '$'");
  // "$$..." and "$name..." become "$..." evaluated against the context
  // object or the variable; `shift` maps positions back.
  std::string jayway;
  size_t shift = 0;
  if (begin + 1 < end && text[begin + 1] == '$') {
    path.kind_ = Kind::kContext;
    shift = 1;
  } else if (begin + 1 < end &&
             jsonpath_internal::IsIdentifierStart(text[begin + 1])) {
    size_t i = begin + 1;
    while (i < end && jsonpath_internal::IsIdentifierChar(text[i])) ++i;
    path.kind_ = Kind::kVariable;
    path.variable_name_ = std::string(text.substr(begin + 1, i - begin - 1));
    shift = path.variable_name_.size();
  }
  jayway = absl::StrCat(
      "$", text.substr(begin + 1 + shift, end - begin - 1 - shift));
  auto program = std::make_shared<Program>();
  Parser parser(program.get(), jayway);
  const int main = parser.CompilePath(0, static_cast<int>(jayway.size()),
                                      /*allow_relative=*/false);
  if (main < 0) {
    size_t position = parser.error_position();
    position = begin + (position == 0 ? 0 : position + shift);
    return invalid(std::min(position, text.size()), parser.error());
  }
  program->main = main;
  const CompiledPath& compiled = program->paths[main];
  std::string canonical = path.kind_ == Kind::kContext ? "$$"
                          : path.kind_ == Kind::kVariable
                              ? "$" + path.variable_name_
                              : "$";
  for (const auto& segment : compiled.segments) {
    jsonpath_internal::AppendFragment(segment, &canonical);
  }
  if (compiled.inverted) {
    absl::StrAppend(&canonical, ".",
                    jsonpath_internal::FunctionName(compiled.inverted_function),
                    "()");
  }
  program->canonical = std::move(canonical);
  path.program_ = std::move(program);
  return path;
}

bool JsonPath::is_definite() const {
  return program_->paths[program_->main].reference;
}

bool JsonPath::is_single_value() const {
  return program_->paths[program_->main].single_value;
}

std::string JsonPath::Canonical() const { return program_->canonical; }

std::vector<const json::Value*> JsonPath::Select(
    const json::Value& root) const {
  const CompiledPath& path = program_->paths[program_->main];
  std::vector<const json::Value*> out;
  if (path.reference) {
    const json::Value* node = &root;
    for (const auto& segment : path.segments) {
      if (segment.kind == SegmentKind::kProperty) {
        if (!node->IsObject()) return out;
        node = jsonpath_internal::FindMember(*node, segment.names[0]);
        if (node == nullptr) return out;
      } else {
        if (!node->IsArray()) return out;
        const int64_t size = node->Size();
        const int64_t index = segment.indexes[0] < 0 ? size + segment.indexes[0]
                                                     : segment.indexes[0];
        if (index < 0 || index >= size) return out;
        node = &(*node)[static_cast<rapidjson::SizeType>(index)];
      }
    }
    out.push_back(node);
    return out;
  }
  Evaluator evaluator(*program_, root, nullptr, "$", /*messages=*/false);
  if (evaluator.Evaluate(program_->main, root, Mode::kSelect, false, &out,
                         nullptr) != Outcome::kOk) {
    out.clear();
  }
  return out;
}

absl::StatusOr<json::Value> JsonPath::Evaluate(
    const json::Value& root, json::Allocator& allocator) const {
  std::string label = kind_ == Kind::kContext    ? "$$"
                      : kind_ == Kind::kVariable ? "$" + variable_name_
                                                 : "$";
  Evaluator evaluator(*program_, root, &allocator, label, /*messages=*/true);
  std::vector<const json::Value*> results;
  switch (evaluator.Evaluate(program_->main, root, Mode::kValues, false,
                             &results, nullptr)) {
    case Outcome::kOk:
      break;
    case Outcome::kNotFound:
      return absl::NotFoundError(evaluator.message());
    case Outcome::kInvalid:
    case Outcome::kError:
      return absl::InvalidArgumentError(evaluator.message().empty()
                                            ? "the path could not be evaluated"
                                            : evaluator.message());
  }
  if (is_single_value()) {
    if (results.empty()) {
      return absl::NotFoundError(
          absl::StrCat("No results for path: ", Canonical()));
    }
    return evaluator.Take(results.back(), allocator);
  }
  json::Value array(rapidjson::kArrayType);
  array.Reserve(static_cast<rapidjson::SizeType>(results.size()), allocator);
  for (const json::Value* v : results)
    array.PushBack(evaluator.Take(v, allocator), allocator);
  return array;
}

}  // namespace stepflow::asl
