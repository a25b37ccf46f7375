// The built-in function library: JSONata's functions plus the Step Functions
// additions ($partition, $range, $hash, $random(seed), $uuid, $parse).
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <locale>
#include <stdexcept>
#include <map>
#include <random>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/json/utf8.h"
#include "common/jsonata/datetime.h"
#include "common/jsonata/internal.h"

namespace stepflow::jsonata {
namespace {

using Args = std::vector<Val>;

Val Arg(const Args& a, size_t i) { return i < a.size() ? a[i] : nullptr; }

std::vector<uint32_t> CodePoints(absl::string_view s) {
  std::vector<uint32_t> out;
  size_t i = 0;
  while (i < s.size()) out.push_back(json::NextCodePoint(s, &i));
  return out;
}

std::string FromCodePoints(const std::vector<uint32_t>& cps, size_t from,
                           size_t to) {
  std::string out;
  for (size_t i = from; i < to && i < cps.size(); ++i) {
    json::AppendUtf8(cps[i], &out);
  }
  return out;
}


std::vector<Val> Items(const Val& v) {
  std::vector<Val> out;
  if (!v) return out;
  if (IsArray(v)) {
    size_t n = ArraySize(v);
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) out.push_back(ArrayAt(v, i));
  } else {
    out.push_back(v);
  }
  return out;
}


Val ArrayOf(std::vector<Val> items) {
  Val s = MakeArray();
  s->arr = std::move(items);
  return s;
}


// ---------------------------------------------------------------- aggregates

Val FnSum(Evaluator&, Args& a, const Val&) {
  if (!a[0]) return nullptr;
  double total = 0;
  for (const auto& v : Items(a[0])) total += v->number;
  return MakeNumber(total);
}

Val FnCount(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return MakeNumber(0);
  return MakeNumber(IsArray(a[0]) ? static_cast<double>(ArraySize(a[0])) : 1);
}

Val FnMax(Evaluator&, Args& a, const Val&) {
  auto items = Items(Arg(a, 0));
  if (items.empty()) return nullptr;
  double m = -INFINITY;
  for (const auto& v : items) m = std::max(m, v->number);
  return MakeNumber(m);
}

Val FnMin(Evaluator&, Args& a, const Val&) {
  auto items = Items(Arg(a, 0));
  if (items.empty()) return nullptr;
  double m = INFINITY;
  for (const auto& v : items) m = std::min(m, v->number);
  return MakeNumber(m);
}

Val FnAverage(Evaluator&, Args& a, const Val&) {
  auto items = Items(Arg(a, 0));
  if (items.empty()) return nullptr;
  double total = 0;
  for (const auto& v : items) total += v->number;
  return MakeNumber(total / static_cast<double>(items.size()));
}

// ---------------------------------------------------------------- strings

Val FnString(Evaluator&, Args& a, const Val&) {
  Val v = Arg(a, 0);
  if (!v) return nullptr;
  bool pretty = Arg(a, 1) && Truthy(a[1]);
  if (v->kind == Item::kString) return v;
  if (v->kind == Item::kFunction) return MakeString("");
  if (v->kind == Item::kNumber && !std::isfinite(v->number)) {
    throw Error("D3001").WithValue(v);
  }
  Val target = v;
  if (v->kind == Item::kArray && v->outer_wrapper && !v->arr.empty()) {
    target = v->arr[0];
  }
  return MakeString(Stringify(target, pretty, true));
}

Val FnSubstring(Evaluator&, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  auto cps = CodePoints(s->str);
  double len = static_cast<double>(cps.size());
  double start = Arg(a, 1) ? a[1]->number : 0;
  if (len + start < 0) start = 0;
  auto slice = [&](double from, double to) {
    if (from < 0) from = std::max(0.0, len + from);
    if (to < 0) to = std::max(0.0, len + to);
    from = std::min(std::trunc(from), len);
    to = std::min(std::trunc(to), len);
    if (to <= from) return std::string();
    return FromCodePoints(cps, static_cast<size_t>(from),
                          static_cast<size_t>(to));
  };
  if (Arg(a, 2)) {
    double length = a[2]->number;
    if (length <= 0) return MakeString("");
    double end = start >= 0 ? start + length : len + start + length;
    return MakeString(slice(start, end));
  }
  return MakeString(slice(start, len));
}

Val FnSubstringBefore(Evaluator&, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  std::string chars = Arg(a, 1) ? a[1]->str : "undefined";
  size_t pos = s->str.find(chars);
  if (pos == std::string::npos) return s;
  return MakeString(s->str.substr(0, pos));
}

Val FnSubstringAfter(Evaluator&, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  std::string chars = Arg(a, 1) ? a[1]->str : "undefined";
  size_t pos = s->str.find(chars);
  if (pos == std::string::npos) return s;
  return MakeString(s->str.substr(pos + chars.size()));
}

// Simple (one-to-one) Unicode case mapping through the C.UTF-8 locale when
// the system has it, else ASCII only.
std::string ChangeCase(const std::string& in, bool upper) {
  static const std::locale* const kLocale = []() -> const std::locale* {
    try {
      return new std::locale("C.UTF-8");
    } catch (const std::runtime_error&) {
      return nullptr;
    }
  }();
  if (kLocale == nullptr) {
    return upper ? absl::AsciiStrToUpper(in) : absl::AsciiStrToLower(in);
  }
  const auto& facet = std::use_facet<std::ctype<wchar_t>>(*kLocale);
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    uint32_t cp = json::NextCodePoint(in, &i);
    wchar_t w = static_cast<wchar_t>(cp);
    json::AppendUtf8(static_cast<uint32_t>(upper ? facet.toupper(w) : facet.tolower(w)), &out);
  }
  return out;
}

Val FnLowercase(Evaluator&, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  return MakeString(ChangeCase(s->str, false));
}

Val FnUppercase(Evaluator&, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  return MakeString(ChangeCase(s->str, true));
}

Val FnLength(Evaluator&, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  return MakeNumber(static_cast<double>(CodePoints(s->str).size()));
}

Val FnTrim(Evaluator&, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  std::string out;
  bool in_space = false;
  for (char c : s->str) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (!in_space) out += ' ';
      in_space = true;
    } else {
      out += c;
      in_space = false;
    }
  }
  if (!out.empty() && out.front() == ' ') out.erase(0, 1);
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return MakeString(out);
}

Val FnPad(Evaluator&, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  std::string ch = Arg(a, 2) ? a[2]->str : " ";
  if (ch.empty()) ch = " ";
  double width = std::trunc(Arg(a, 1) ? a[1]->number : 0);
  double pad_len = std::fabs(width) - static_cast<double>(CodePoints(s->str).size());
  if (!(pad_len > 0)) return s;
  auto ch_cps = CodePoints(ch);
  std::vector<uint32_t> padding;
  for (size_t i = 0; padding.size() < static_cast<size_t>(pad_len); ++i) {
    padding.push_back(ch_cps[i % ch_cps.size()]);
  }
  std::string pad = FromCodePoints(padding, 0, padding.size());
  return MakeString(width > 0 ? s->str + pad : pad + s->str);
}

Val FnContains(Evaluator& ev, Args& a, const Val&) {
  Val s = Arg(a, 0), token = Arg(a, 1);
  if (!s || !token) return nullptr;
  if (IsString(token)) {
    return MakeBool(s->str.find(token->str) != std::string::npos);
  }
  Val m = ev.Apply(token, {s}, nullptr, ev.root);
  return MakeBool(m != nullptr);
}

// The UTF-16 index (JavaScript string position) of byte offset `offset`.
double Utf16Index(const std::string& s, double offset) {
  size_t end = std::min(s.size(), static_cast<size_t>(std::max(0.0, offset)));
  size_t n = 0, i = 0;
  while (i < end) n += json::NextCodePoint(s, &i) >= 0x10000 ? 2 : 1;
  return static_cast<double>(n);
}

// Runs a matcher (regex or a function returning match objects).
struct MatchObj {
  std::string match;
  double start = 0, end = 0;
  Val groups;
  Val next;
};

bool EvalMatcher(Evaluator& ev, const Val& matcher, const Val& arg,
                 MatchObj* out) {
  Val r = ev.Apply(matcher, arg ? Args{arg} : Args{}, nullptr, ev.root);
  if (!r) return false;
  if (!IsObject(r)) throw Error("T1010");
  Val start = ObjectGet(r, "start");
  Val groups = ObjectGet(r, "groups");
  Val next = ObjectGet(r, "next");
  if (!IsNumber(start) && !IsArray(groups) && !IsFunction(next)) {
    throw Error("T1010");
  }
  Val m = ObjectGet(r, "match");
  out->match = IsString(m) ? m->str : "";
  out->start = IsNumber(start) ? start->number : 0;
  Val end = ObjectGet(r, "end");
  out->end = IsNumber(end) ? end->number : out->start + out->match.size();
  out->groups = groups;
  out->next = next;
  return true;
}

Val FnMatch(Evaluator& ev, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  Val limit = Arg(a, 2);
  if (limit && limit->number < 0) {
    throw Error("D3040").WithValue(limit).WithIndex(3);
  }
  Val result = MakeSequence();
  if (!limit || limit->number > 0) {
    MatchObj m;
    double count = 0;
    bool have = EvalMatcher(ev, a[1], s, &m);
    while (have && (!limit || count < limit->number)) {
      Val o = MakeObject();
      ObjectSet(o.get(), "match", MakeString(m.match));
      ObjectSet(o.get(), "index", MakeNumber(Utf16Index(s->str, m.start)));
      ObjectSet(o.get(), "groups", m.groups ? m.groups : MakeArray());
      result->arr.push_back(o);
      if (!m.next) break;
      MatchObj n;
      have = EvalMatcher(ev, m.next, nullptr, &n);
      m = n;
      ++count;
    }
  }
  return result;
}

std::string SubstituteGroups(const std::string& replacement, const MatchObj& m) {
  std::vector<std::string> groups;
  if (m.groups) {
    for (const auto& g : Items(m.groups)) groups.push_back(IsString(g) ? g->str : "");
  }
  std::string out;
  size_t position = 0;
  size_t index = replacement.find('$', position);
  while (index != std::string::npos && position < replacement.size()) {
    out += replacement.substr(position, index - position);
    position = index + 1;
    char c = position < replacement.size() ? replacement[position] : '\0';
    if (c == '$') {
      out += '$';
      ++position;
    } else if (c == '0') {
      out += m.match;
      ++position;
    } else {
      size_t max_digits = groups.empty()
                              ? 1
                              : static_cast<size_t>(std::floor(std::log10(
                                    static_cast<double>(groups.size())))) + 1;
      auto parse = [&](size_t digits) -> long {
        std::string d = replacement.substr(position, digits);
        size_t k = 0;
        while (k < d.size() && isdigit(static_cast<unsigned char>(d[k]))) ++k;
        if (k == 0) return -1;
        return std::stol(d.substr(0, k));
      };
      long idx = parse(max_digits);
      if (max_digits > 1 && idx > static_cast<long>(groups.size())) {
        idx = parse(max_digits - 1);
      }
      if (idx >= 0) {
        if (!groups.empty() && idx >= 1 &&
            static_cast<size_t>(idx) <= groups.size()) {
          out += groups[idx - 1];
        }
        position += std::to_string(idx).size();
      } else {
        out += '$';
      }
    }
    index = replacement.find('$', position);
  }
  if (position < replacement.size()) out += replacement.substr(position);
  return out;
}

Val FnReplace(Evaluator& ev, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  Val pattern = Arg(a, 1), replacement = Arg(a, 2), limit = Arg(a, 3);
  if (IsString(pattern) && pattern->str.empty()) {
    throw Error("D3010").WithValue(pattern).WithIndex(2);
  }
  if (limit && limit->number < 0) {
    throw Error("D3011").WithValue(limit).WithIndex(4);
  }
  const std::string& str = s->str;
  if (limit && !(limit->number > 0)) return s;
  std::string result;
  double count = 0;
  if (IsString(pattern)) {
    size_t position = 0;
    size_t index = str.find(pattern->str, position);
    while (index != std::string::npos && (!limit || count < limit->number)) {
      result += str.substr(position, index - position);
      result += replacement ? (IsString(replacement) ? replacement->str
                                                     : Stringify(replacement, false, true))
                            : "undefined";
      position = index + pattern->str.size();
      ++count;
      index = str.find(pattern->str, position);
    }
    result += str.substr(position);
    return MakeString(result);
  }
  MatchObj m;
  if (!EvalMatcher(ev, pattern, s, &m)) return s;
  size_t position = 0;
  for (;;) {
    if (limit && !(count < limit->number)) break;
    size_t start = static_cast<size_t>(m.start);
    if (start > position) result += str.substr(position, start - position);
    std::string with;
    if (IsString(replacement)) {
      with = SubstituteGroups(replacement->str, m);
    } else {
      Val mo = MakeObject();
      ObjectSet(mo.get(), "match", MakeString(m.match));
      ObjectSet(mo.get(), "start", MakeNumber(m.start));
      ObjectSet(mo.get(), "end", MakeNumber(m.end));
      ObjectSet(mo.get(), "groups", m.groups ? m.groups : MakeArray());
      if (m.next) ObjectSet(mo.get(), "next", m.next);
      Val r = ev.Apply(replacement, {mo}, nullptr, ev.root);
      if (!IsString(r)) throw Error("D3012").WithValue(r);
      with = r->str;
    }
    result += with;
    position = start + m.match.size();
    ++count;
    if (!m.next) break;
    MatchObj n;
    if (!EvalMatcher(ev, m.next, nullptr, &n)) break;
    m = n;
  }
  if (position < str.size()) result += str.substr(position);
  return MakeString(result);
}

Val FnSplit(Evaluator& ev, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  Val sep = Arg(a, 1), limit = Arg(a, 2);
  if (limit && limit->number < 0) {
    throw Error("D3020").WithValue(limit).WithIndex(3);
  }
  Val result = MakeArray();
  if (limit && !(limit->number > 0)) return result;
  const std::string& str = s->str;
  double lim = limit ? std::floor(limit->number) : INFINITY;
  if (IsString(sep)) {
    if (sep->str.empty()) {
      auto cps = CodePoints(str);
      for (size_t i = 0; i < cps.size() && i < lim; ++i) {
        result->arr.push_back(MakeString(FromCodePoints(cps, i, i + 1)));
      }
      return result;
    }
    size_t pos = 0;
    for (;;) {
      if (static_cast<double>(result->arr.size()) >= lim) break;
      size_t idx = str.find(sep->str, pos);
      if (idx == std::string::npos) {
        result->arr.push_back(MakeString(str.substr(pos)));
        break;
      }
      result->arr.push_back(MakeString(str.substr(pos, idx - pos)));
      pos = idx + sep->str.size();
    }
    return result;
  }
  MatchObj m;
  if (!EvalMatcher(ev, sep, s, &m)) {
    result->arr.push_back(s);
    return result;
  }
  size_t start = 0;
  double count = 0;
  bool have = true;
  while (have && (!limit || count < limit->number)) {
    size_t ms = static_cast<size_t>(m.start);
    result->arr.push_back(MakeString(ms > start ? str.substr(start, ms - start) : ""));
    start = static_cast<size_t>(m.end);
    ++count;
    if (!m.next) break;
    MatchObj n;
    have = EvalMatcher(ev, m.next, nullptr, &n);
    m = n;
  }
  if (!limit || count < limit->number) {
    result->arr.push_back(MakeString(start < str.size() ? str.substr(start) : ""));
  }
  return result;
}

Val FnJoin(Evaluator&, Args& a, const Val&) {
  Val strs = Arg(a, 0);
  if (!strs) return nullptr;
  std::string sep = Arg(a, 1) ? a[1]->str : "";
  std::string out;
  bool first = true;
  for (const auto& v : Items(strs)) {
    if (!first) out += sep;
    first = false;
    out += v->str;
  }
  return MakeString(out);
}

// ---------------------------------------------------------------- base64, url

constexpr char kB64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

Val FnBase64Encode(Evaluator&, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  std::string bytes;
  for (uint32_t cp : CodePoints(s->str)) bytes.push_back(static_cast<char>(cp & 0xFF));
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = (static_cast<uint8_t>(bytes[i]) << 16) |
                 (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                 static_cast<uint8_t>(bytes[i + 2]);
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += kB64[(n >> 6) & 63];
    out += kB64[n & 63];
  }
  if (i < bytes.size()) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kB64[(n >> 6) & 63] : '=';
    out += '=';
  }
  return MakeString(out);
}

Val FnBase64Decode(Evaluator&, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (char c : s->str) {
    const char* p = c ? std::strchr(kB64, c) : nullptr;
    int v;
    if (p) v = static_cast<int>(p - kB64);
    else if (c == '-') v = 62;
    else if (c == '_') v = 63;
    else if (c == '=') break;
    else continue;
    buf = (buf << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      json::AppendUtf8((buf >> bits) & 0xFF, &out);
    }
  }
  return MakeString(out);
}

Val EncodeUri(const Val& s, const char* unreserved, const char* name) {
  std::string out;
  size_t i = 0;
  const std::string& str = s->str;
  while (i < str.size()) {
    size_t before = i;
    uint32_t cp = json::NextCodePoint(str, &i);
    if (cp >= 0xD800 && cp < 0xE000) {
      Error e("D3140");
      e.WithValue(s);
      e.message = name;
      throw e;
    }
    if (cp < 0x80 && (isalnum(static_cast<int>(cp)) ||
                      std::strchr(unreserved, static_cast<int>(cp)))) {
      out.push_back(static_cast<char>(cp));
      continue;
    }
    for (size_t k = before; k < i; ++k) {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", static_cast<uint8_t>(str[k]));
      out += hex;
    }
  }
  return MakeString(out);
}

Val DecodeUri(const Val& s, const char* reserved, const char* name) {
  const std::string& str = s->str;
  std::string out;
  auto fail = [&]() {
    Error e("D3140");
    e.WithValue(s);
    e.message = name;
    throw e;
  };
  auto hexval = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < str.size();) {
    if (str[i] != '%') {
      out += str[i++];
      continue;
    }
    std::string bytes;
    size_t start = i;
    if (i + 2 >= str.size() + 0 && i + 2 > str.size() - 1 + 1) fail();
    if (i + 2 >= str.size() + 1) fail();
    int h = hexval(str[i + 1]), l = i + 2 < str.size() ? hexval(str[i + 2]) : -1;
    if (h < 0 || l < 0) fail();
    uint8_t b0 = static_cast<uint8_t>(h * 16 + l);
    i += 3;
    bytes.push_back(static_cast<char>(b0));
    int len = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3
            : (b0 >> 3) == 30 ? 4 : 0;
    if (len == 0) fail();
    for (int k = 1; k < len; ++k) {
      if (i + 2 >= str.size() + 1 || str[i] != '%') fail();
      int hh = hexval(str[i + 1]), ll = i + 2 < str.size() ? hexval(str[i + 2]) : -1;
      if (hh < 0 || ll < 0) fail();
      uint8_t b = static_cast<uint8_t>(hh * 16 + ll);
      if ((b & 0xC0) != 0x80) fail();
      bytes.push_back(static_cast<char>(b));
      i += 3;
    }
    if (len == 1 && std::strchr(reserved, b0) && b0 != 0) {
      out += str.substr(start, 3);
    } else {
      out += bytes;
    }
  }
  return MakeString(out);
}

Val FnEncodeUrlComponent(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return EncodeUri(a[0], "-_.!~*'()", "encodeUrlComponent");
}
Val FnEncodeUrl(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return EncodeUri(a[0], "-_.!~*'();/?:@&=+$,#", "encodeUrl");
}
Val FnDecodeUrlComponent(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return DecodeUri(a[0], "", "decodeUrlComponent");
}
Val FnDecodeUrl(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return DecodeUri(a[0], ";/?:@&=+$,#", "decodeUrl");
}

// ---------------------------------------------------------------- numbers

// -?[0-9]+(\.[0-9]+)?([Ee][-+]?[0-9]+)? : the numerals $number reads as
// decimal.
bool IsDecimalNumeral(absl::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i;
    return i > start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (!digits()) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

Val FnNumber(Evaluator&, Args& a, const Val&) {
  Val v = Arg(a, 0);
  if (!v) return nullptr;
  if (v->kind == Item::kNumber) return v;
  if (v->kind == Item::kBool) return MakeNumber(v->boolean ? 1 : 0);
  if (v->kind == Item::kString) {
    const std::string& s = v->str;
    if (IsDecimalNumeral(s)) {
      double d = std::strtod(s.c_str(), nullptr);
      if (std::isfinite(d)) return MakeNumber(d);
    } else if (s.size() > 2 && s[0] == '0' &&
               absl::string_view("xXoObB").find(s[1]) != absl::string_view::npos) {
      int base = (s[1] == 'x' || s[1] == 'X') ? 16 : (s[1] == 'o' || s[1] == 'O') ? 8 : 2;
      double d = 0;
      bool ok = true;
      for (size_t i = 2; i < s.size(); ++i) {
        int digit = isdigit(static_cast<unsigned char>(s[i])) ? s[i] - '0'
                    : isalpha(static_cast<unsigned char>(s[i])) ? (tolower(s[i]) - 'a' + 10) : 99;
        if (digit >= base) { ok = false; break; }
        d = d * base + digit;
      }
      if (ok) return MakeNumber(d);
    }
  }
  throw Error("D3030").WithValue(v).WithIndex(1);
}

Val FnAbs(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return MakeNumber(std::fabs(a[0]->number));
}
Val FnFloor(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return MakeNumber(std::floor(a[0]->number));
}
Val FnCeil(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return MakeNumber(std::ceil(a[0]->number));
}

}  // namespace

double RoundHalfEven(double arg, double precision) {
  auto shift = [](double v, double p) {
    std::string s = NumberToString(v);
    size_t e = s.find('e');
    double exp = p;
    std::string mant = s;
    if (e != std::string::npos) {
      mant = s.substr(0, e);
      exp += std::atof(s.c_str() + e + 1);
    }
    return std::strtod((mant + "e" + NumberToString(exp)).c_str(), nullptr);
  };
  if (precision != 0) arg = shift(arg, precision);
  double result = std::floor(arg + 0.5);  // Math.round
  double diff = result - arg;
  if (std::fabs(diff) == 0.5 && std::fabs(std::fmod(result, 2)) == 1) {
    result -= 1;
  }
  if (precision != 0) result = shift(result, -precision);
  if (result == 0) result = 0;  // no negative zero
  return result;
}

namespace {

Val FnRound(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  double precision = Arg(a, 1) ? a[1]->number : 0;
  return MakeNumber(RoundHalfEven(a[0]->number, precision));
}

Val FnSqrt(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  if (a[0]->number < 0) throw Error("D3060").WithValue(a[0]).WithIndex(1);
  return MakeNumber(std::sqrt(a[0]->number));
}

Val FnPower(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  double r = std::pow(a[0]->number, Arg(a, 1) ? a[1]->number : NAN);
  if (!std::isfinite(r)) {
    Error e("D3061");
    e.WithValue(a[0]).WithIndex(1);
    e.extra = Arg(a, 1) ? NumberToString(a[1]->number) : "undefined";
    throw e;
  }
  return MakeNumber(r);
}

Val FnRandom(Evaluator& ev, Args& a, const Val&) {
  if (Arg(a, 0)) {
    std::mt19937_64 gen(static_cast<uint64_t>(static_cast<int64_t>(a[0]->number)));
    return MakeNumber(static_cast<double>(gen() >> 11) * 0x1.0p-53);
  }
  if (!ev.env().random) return MakeNumber(0);
  return MakeNumber(ev.env().random());
}

Val FnFormatBase(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  double value = RoundHalfEven(a[0]->number, 0);
  double radix = Arg(a, 1) ? RoundHalfEven(a[1]->number, 0) : 10;
  if (radix < 2 || radix > 36) throw Error("D3100").WithValue(MakeNumber(radix));
  bool neg = value < 0;
  double v = std::fabs(value);
  std::string digits;
  int r = static_cast<int>(radix);
  if (v == 0) digits = "0";
  while (v >= 1) {
    int d = static_cast<int>(std::fmod(v, r));
    digits.push_back("0123456789abcdefghijklmnopqrstuvwxyz"[d]);
    v = std::floor(v / r);
  }
  std::reverse(digits.begin(), digits.end());
  return MakeString(neg ? "-" + digits : digits);
}

// ---------------------------------------------------------------- booleans

Val FnBoolean(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return MakeBool(Truthy(a[0]));
}
Val FnNot(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return MakeBool(!Truthy(a[0]));
}
Val FnExists(Evaluator&, Args& a, const Val&) {
  return MakeBool(Arg(a, 0) != nullptr);
}

// ---------------------------------------------------------------- higher order

Val FnMap(Evaluator& ev, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  auto items = Items(a[0]);
  Val result = MakeSequence();
  for (size_t i = 0; i < items.size(); ++i) {
    Val r = ev.CallHof(a[1], items[i], MakeNumber(static_cast<double>(i)), a[0]);
    if (r) result->arr.push_back(r);
  }
  return result;
}

Val FnFilter(Evaluator& ev, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  auto items = Items(a[0]);
  Val result = MakeSequence();
  for (size_t i = 0; i < items.size(); ++i) {
    Val r = ev.CallHof(a[1], items[i], MakeNumber(static_cast<double>(i)), a[0]);
    if (Truthy(r)) result->arr.push_back(items[i]);
  }
  return result;
}

Val FnSingle(Evaluator& ev, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  auto items = Items(a[0]);
  Val result;
  bool found = false;
  for (size_t i = 0; i < items.size(); ++i) {
    bool positive = true;
    if (Arg(a, 1)) {
      positive = Truthy(ev.CallHof(a[1], items[i],
                                   MakeNumber(static_cast<double>(i)), a[0]));
    }
    if (positive) {
      if (found) throw Error("D3138").WithIndex(static_cast<int>(i));
      result = items[i];
      found = true;
    }
  }
  if (!found) throw Error("D3139");
  return result;
}

Val FnZip(Evaluator&, Args& a, const Val&) {
  Val result = MakeArray();
  if (a.empty()) return result;
  size_t len = SIZE_MAX;
  std::vector<std::vector<Val>> arrays;
  for (const auto& v : a) {
    if (!IsArray(v)) {
      len = 0;
      arrays.emplace_back();
      continue;
    }
    arrays.push_back(Items(v));
    len = std::min(len, arrays.back().size());
  }
  for (size_t i = 0; i < len; ++i) {
    Val tuple = MakeArray();
    for (auto& arr : arrays) tuple->arr.push_back(arr[i]);
    result->arr.push_back(tuple);
  }
  return result;
}

Val FnReduce(Evaluator& ev, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  int arity = ev.FunctionArity(a[1]);
  if (arity < 2) throw Error("D3050").WithIndex(1);
  auto items = Items(a[0]);
  Val result;
  size_t index;
  if (!Arg(a, 2) && !items.empty()) {
    result = items[0];
    index = 1;
  } else {
    result = Arg(a, 2);
    index = 0;
  }
  for (; index < items.size(); ++index) {
    Args args{result, items[index]};
    if (arity >= 3) args.push_back(MakeNumber(static_cast<double>(index)));
    if (arity >= 4) args.push_back(a[0]);
    result = ev.Apply(a[1], std::move(args), nullptr, ev.root);
  }
  return result;
}

Val FnSift(Evaluator& ev, Args& a, const Val&) {
  Val obj = Arg(a, 0);
  if (!obj || !IsObject(obj)) return nullptr;
  Val result = MakeObject();
  ForEachMember(obj, [&](const std::string& k, const Val& v) {
    Val r = ev.CallHof(a[1], v, MakeString(k), obj);
    if (Truthy(r)) ObjectSet(result.get(), k, v);
  });
  if (result->obj.empty()) return nullptr;
  return result;
}

Val FnEach(Evaluator& ev, Args& a, const Val&) {
  Val obj = Arg(a, 0);
  Val result = MakeSequence();
  if (!obj || !IsObject(obj)) return result;
  ForEachMember(obj, [&](const std::string& k, const Val& v) {
    Val r = ev.CallHof(a[1], v, MakeString(k), obj);
    if (r) result->arr.push_back(r);
  });
  return result;
}

// ---------------------------------------------------------------- objects

void CollectKeys(const Val& v, std::vector<std::string>* keys,
                 absl::flat_hash_map<std::string, bool>* seen) {
  if (IsArray(v)) {
    for (const auto& e : Items(v)) CollectKeys(e, keys, seen);
  } else if (IsObject(v)) {
    ForEachMember(v, [&](const std::string& k, const Val&) {
      if (seen->emplace(k, true).second) keys->push_back(k);
    });
  }
}

Val FnKeys(Evaluator&, Args& a, const Val&) {
  std::vector<std::string> keys;
  absl::flat_hash_map<std::string, bool> seen;
  CollectKeys(Arg(a, 0), &keys, &seen);
  Val result = MakeSequence();
  for (auto& k : keys) result->arr.push_back(MakeString(k));
  return result;
}

Val FnLookup(Evaluator&, Args& a, const Val&) {
  return Lookup(Arg(a, 0), Arg(a, 1) ? a[1]->str : "undefined");
}

Val FnAppend(Evaluator&, Args& a, const Val&) {
  Val x = Arg(a, 0), y = Arg(a, 1);
  if (!x) return y;
  if (!y) return x;
  Val out = MakeArray();
  for (auto& v : Items(x)) out->arr.push_back(v);
  for (auto& v : Items(y)) out->arr.push_back(v);
  if (!IsArray(x)) out->sequence = false;
  return out;
}

Val Spread(const Val& v) {
  if (IsArray(v)) {
    Val result = MakeSequence();
    for (const auto& e : Items(v)) {
      Val s = Spread(e);
      result = Append(result, s);
    }
    return result;
  }
  if (IsObject(v)) {
    Val result = MakeSequence();
    ForEachMember(v, [&](const std::string& k, const Val& m) {
      Val o = MakeObject();
      ObjectSet(o.get(), k, m);
      result->arr.push_back(o);
    });
    return result;
  }
  return v;
}

Val FnSpread(Evaluator&, Args& a, const Val&) { return Spread(Arg(a, 0)); }

Val FnMerge(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  Val result = MakeObject();
  for (const auto& o : Items(a[0])) {
    if (!IsObject(o)) continue;
    ForEachMember(o, [&](const std::string& k, const Val& v) {
      ObjectSet(result.get(), k, v);
    });
  }
  return result;
}

Val FnReverse(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  auto items = Items(a[0]);
  if (items.size() <= 1) return a[0];
  std::reverse(items.begin(), items.end());
  return ArrayOf(std::move(items));
}

Val FnError(Evaluator&, Args& a, const Val&) {
  Error e("D3137");
  e.message = Arg(a, 0) && !a[0]->str.empty() ? a[0]->str : "$error() function evaluated";
  throw e;
}

Val FnAssert(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0) || !a[0]->boolean) {
    Error e("D3141");
    e.message = Arg(a, 1) && !a[1]->str.empty() ? a[1]->str : "$assert() statement failed";
    throw e;
  }
  return nullptr;
}

Val FnType(Evaluator&, Args& a, const Val&) {
  Val v = Arg(a, 0);
  if (!v) return nullptr;
  switch (v->kind) {
    case Item::kNull: return MakeString("null");
    case Item::kNumber: return MakeString("number");
    case Item::kString: return MakeString("string");
    case Item::kBool: return MakeString("boolean");
    case Item::kFunction: return MakeString("function");
    default: return MakeString(IsArray(v) ? "array" : "object");
  }
}

Val FnSort(Evaluator& ev, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  auto items = Items(a[0]);
  if (items.size() <= 1) return a[0];
  Val comparator = Arg(a, 1);
  if (!comparator) {
    bool all_num = true, all_str = true;
    for (const auto& v : items) {
      if (!IsNumber(v)) all_num = false;
      if (!IsString(v)) all_str = false;
    }
    if (!all_num && !all_str) throw Error("D3070").WithIndex(1);
  }
  auto greater = [&](const Val& x, const Val& y) {
    if (!comparator) {
      if (IsNumber(x)) return x->number > y->number;
      return x->str > y->str;
    }
    return Truthy(ev.Apply(comparator, {x, y}, nullptr, ev.root));
  };
  std::vector<Val> tmp(items.size());
  std::function<void(size_t, size_t)> msort = [&](size_t lo, size_t hi) {
    if (hi - lo < 2) return;
    size_t mid = lo + (hi - lo) / 2;
    msort(lo, mid);
    msort(mid, hi);
    size_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi) {
      if (greater(items[i], items[j])) tmp[k++] = items[j++];
      else tmp[k++] = items[i++];
    }
    while (i < mid) tmp[k++] = items[i++];
    while (j < hi) tmp[k++] = items[j++];
    for (size_t x = lo; x < hi; ++x) items[x] = tmp[x];
  };
  msort(0, items.size());
  return ArrayOf(std::move(items));
}

Val FnShuffle(Evaluator& ev, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  auto items = Items(a[0]);
  if (items.size() <= 1) return a[0];
  std::vector<Val> result(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    double r = ev.env().random ? ev.env().random() : 0;
    size_t j = static_cast<size_t>(std::floor(r * static_cast<double>(i + 1)));
    if (j > i) j = i;
    if (i != j) result[i] = result[j];
    result[j] = items[i];
  }
  return ArrayOf(std::move(result));
}

Val FnDistinct(Evaluator&, Args& a, const Val&) {
  Val v = Arg(a, 0);
  if (!v) return nullptr;
  if (!IsArray(v) || ArraySize(v) <= 1) return v;
  Val result = IsSequence(v) ? MakeSequence() : MakeArray();
  for (const auto& e : Items(v)) {
    bool found = false;
    for (const auto& r : result->arr) {
      if (DeepEqual(e, r)) {
        found = true;
        break;
      }
    }
    if (!found) result->arr.push_back(e);
  }
  return result;
}

Val FnClone(Evaluator&, Args& a, const Val&) {
  return DeepClone(Arg(a, 0));
}

// ---------------------------------------------------------------- date/time

Val FnNow(Evaluator& ev, Args& a, const Val&) {
  double millis = static_cast<double>(absl::ToUnixMillis(ev.env().now));
  return FormatMillis(millis, Arg(a, 0), Arg(a, 1));
}

Val FnMillis(Evaluator& ev, Args&, const Val&) {
  return MakeNumber(static_cast<double>(absl::ToUnixMillis(ev.env().now)));
}

Val FnFromMillis(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return FormatMillis(a[0]->number, Arg(a, 1), Arg(a, 2));
}

Val FnToMillis(Evaluator& ev, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return ParseToMillis(a[0], Arg(a, 1),
                       static_cast<double>(absl::ToUnixMillis(ev.env().now)));
}

Val FnFormatNumber(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return FormatNumberPicture(a[0]->number, Arg(a, 1), Arg(a, 2));
}

Val FnFormatInteger(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return FormatIntegerPicture(a[0]->number, Arg(a, 1));
}

Val FnParseInteger(Evaluator&, Args& a, const Val&) {
  if (!Arg(a, 0)) return nullptr;
  return ParseIntegerPicture(a[0]->str, Arg(a, 1));
}

// ---------------------------------------------------------------- Step Functions

Val FnPartition(Evaluator&, Args& a, const Val&) {
  Val arr = Arg(a, 0), size = Arg(a, 1);
  if (!arr) return nullptr;
  if (!size || !(size->number >= 1) || std::floor(size->number) != size->number) {
    Error e("D3141");
    e.message = "The size argument of $partition must be a positive integer";
    throw e;
  }
  auto items = Items(arr);
  Val result = MakeArray();
  size_t n = static_cast<size_t>(size->number);
  for (size_t i = 0; i < items.size(); i += n) {
    Val chunk = MakeArray();
    for (size_t k = i; k < i + n && k < items.size(); ++k) chunk->arr.push_back(items[k]);
    result->arr.push_back(chunk);
  }
  return result;
}

Val FnRange(Evaluator&, Args& a, const Val&) {
  Val start = Arg(a, 0), end = Arg(a, 1), step = Arg(a, 2);
  if (!start || !end) return nullptr;
  double s = start->number, e = end->number, st = step ? step->number : 1;
  if (st == 0 || !std::isfinite(st)) {
    Error e("D3141");
    e.message = "The step argument of $range must be a non-zero number";
    throw e;
  }
  // A sequence, as JSONata functions build their results: one item is
  // that item (AWS: $range(1, 9, 9) is 1).
  Val result = MakeSequence();
  size_t count = 0;
  for (double x = s; st > 0 ? x <= e : x >= e; x += st) {
    if (++count > 10000000) throw Error("D2014").WithValue(MakeNumber(static_cast<double>(count)));
    result->arr.push_back(MakeNumber(x));
  }
  return result;
}

Val FnHash(Evaluator&, Args& a, const Val&) {
  Val v = Arg(a, 0);
  if (!v) return nullptr;
  std::string alg = Arg(a, 1) ? a[1]->str : "SHA-256";
  const EVP_MD* md = nullptr;
  if (alg == "MD5") md = EVP_md5();
  else if (alg == "SHA-1") md = EVP_sha1();
  else if (alg == "SHA-256") md = EVP_sha256();
  else if (alg == "SHA-384") md = EVP_sha384();
  else if (alg == "SHA-512") md = EVP_sha512();
  if (!md) {
    Error e("D3141");
    e.message = absl::StrCat("Unsupported hash algorithm: ", alg);
    throw e;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(v->str.data(), v->str.size(), digest, &len, md, nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    char b[3];
    std::snprintf(b, sizeof(b), "%02x", digest[i]);
    hex += b;
  }
  return MakeString(hex);
}

Val FnUuid(Evaluator& ev, Args&, const Val&) {
  return MakeString(ev.env().uuid ? ev.env().uuid() : std::string(36, '0'));
}

Val FromJson(const json::Value& j) {
  switch (j.GetType()) {
    case rapidjson::kArrayType: {
      Val a = MakeArray();
      for (const auto& e : j.GetArray()) a->arr.push_back(FromJson(e));
      return a;
    }
    case rapidjson::kObjectType: {
      Val o = MakeObject();
      for (const auto& m : j.GetObject()) {
        ObjectSet(o.get(), absl::string_view(m.name.GetString(), m.name.GetStringLength()),
                  FromJson(m.value));
      }
      return o;
    }
    default:
      return Wrap(&j);
  }
}

Val FnParse(Evaluator&, Args& a, const Val&) {
  Val s = Arg(a, 0);
  if (!s) return nullptr;
  absl::StatusOr<json::Document> doc = json::Parse(s->str);
  if (!doc.ok()) {
    Error e("D3141");
    e.message = absl::StrCat("Unable to parse JSON: ", doc.status().message());
    throw e;
  }
  return FromJson(*doc);
}

struct Entry {
  const char* name;
  const char* signature;
  int arity;
  BuiltinImpl impl;
};

constexpr Entry kEntries[] = {
    {"sum", "<a<n>:n>", 1, FnSum},
    {"count", "<a:n>", 1, FnCount},
    {"max", "<a<n>:n>", 1, FnMax},
    {"min", "<a<n>:n>", 1, FnMin},
    {"average", "<a<n>:n>", 1, FnAverage},
    {"string", "<x-b?:s>", 1, FnString},
    {"substring", "<s-nn?:s>", 3, FnSubstring},
    {"substringBefore", "<s-s:s>", 2, FnSubstringBefore},
    {"substringAfter", "<s-s:s>", 2, FnSubstringAfter},
    {"lowercase", "<s-:s>", 1, FnLowercase},
    {"uppercase", "<s-:s>", 1, FnUppercase},
    {"length", "<s-:n>", 1, FnLength},
    {"trim", "<s-:s>", 1, FnTrim},
    {"pad", "<s-ns?:s>", 3, FnPad},
    {"match", "<s-f<s:o>n?:a<o>>", 3, FnMatch},
    {"contains", "<s-(sf):b>", 2, FnContains},
    {"replace", "<s-(sf)(sf)n?:s>", 4, FnReplace},
    {"split", "<s-(sf)n?:a<s>>", 3, FnSplit},
    {"join", "<a<s>s?:s>", 2, FnJoin},
    {"formatNumber", "<n-so?:s>", 3, FnFormatNumber},
    {"formatBase", "<n-n?:s>", 2, FnFormatBase},
    {"formatInteger", "<n-s:s>", 2, FnFormatInteger},
    {"parseInteger", "<s-s:n>", 2, FnParseInteger},
    {"number", "<(nsb)-:n>", 1, FnNumber},
    {"floor", "<n-:n>", 1, FnFloor},
    {"ceil", "<n-:n>", 1, FnCeil},
    {"round", "<n-n?:n>", 2, FnRound},
    {"abs", "<n-:n>", 1, FnAbs},
    {"sqrt", "<n-:n>", 1, FnSqrt},
    {"power", "<n-n:n>", 2, FnPower},
    {"random", "<n?:n>", 0, FnRandom},
    {"boolean", "<x-:b>", 1, FnBoolean},
    {"not", "<x-:b>", 1, FnNot},
    {"map", "<af>", 2, FnMap},
    {"zip", "<a+>", 0, FnZip},
    {"filter", "<af>", 2, FnFilter},
    {"single", "<af?>", 2, FnSingle},
    {"reduce", "<afj?:j>", 3, FnReduce},
    {"sift", "<o-f?:o>", 2, FnSift},
    {"keys", "<x-:a<s>>", 1, FnKeys},
    {"lookup", "<x-s:x>", 2, FnLookup},
    {"append", "<xx:a>", 2, FnAppend},
    {"exists", "<x:b>", 1, FnExists},
    {"spread", "<x-:a<o>>", 1, FnSpread},
    {"merge", "<a<o>:o>", 1, FnMerge},
    {"reverse", "<a:a>", 1, FnReverse},
    {"each", "<o-f:a>", 2, FnEach},
    {"error", "<s?:x>", 1, FnError},
    {"assert", "<bs?:x>", 2, FnAssert},
    {"type", "<x:s>", 1, FnType},
    {"sort", "<af?:a>", 2, FnSort},
    {"shuffle", "<a:a>", 1, FnShuffle},
    {"distinct", "<x:x>", 1, FnDistinct},
    {"base64encode", "<s-:s>", 1, FnBase64Encode},
    {"base64decode", "<s-:s>", 1, FnBase64Decode},
    {"encodeUrlComponent", "<s-:s>", 1, FnEncodeUrlComponent},
    {"encodeUrl", "<s-:s>", 1, FnEncodeUrl},
    {"decodeUrlComponent", "<s-:s>", 1, FnDecodeUrlComponent},
    {"decodeUrl", "<s-:s>", 1, FnDecodeUrl},
    {"toMillis", "<s-s?:n>", 2, FnToMillis},
    {"fromMillis", "<n-s?s?:s>", 3, FnFromMillis},
    {"clone", "<(oa)-:o>", 1, FnClone},
    {"now", "<s?s?:s>", 2, FnNow},
    {"millis", "<:n>", 0, FnMillis},
    {"partition", "<an:a>", 2, FnPartition},
    {"range", "<nnn?:a>", 3, FnRange},
    {"hash", "<s-s?:s>", 2, FnHash},
    {"uuid", "<:s>", 0, FnUuid},
    {"parse", "<s-:j>", 1, FnParse},
};

class BuiltinTable {
 public:
  BuiltinTable() {
    for (const Entry& e : kEntries) {
      Builtin b{e.name, e.signature, e.arity, e.impl, ParseSignature(e.signature)};
      table_.emplace(e.name, std::move(b));
    }
  }
  const Builtin* Find(absl::string_view name) const {
    auto it = table_.find(name);
    return it == table_.end() ? nullptr : &it->second;
  }

 private:
  absl::flat_hash_map<std::string, Builtin> table_;
};

}  // namespace

const Builtin* FindBuiltin(absl::string_view name) {
  static const BuiltinTable* const kTable = new BuiltinTable();
  return kTable->Find(name);
}

bool RegexSearch(const Regex& re, const std::string& s, size_t from,
                 RegexMatch* m, uint64_t* steps_left) {
  absl::StatusOr<bool> found = re.compiled->Search(s, from, m, steps_left);
  if (!found.ok()) {
    Error e("D3141");
    e.message = std::string(found.status().message());
    throw e;
  }
  return *found;
}

}  // namespace stepflow::jsonata
