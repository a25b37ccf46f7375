// The evaluation-time value model: construction, access to referenced input
// values, JavaScript-compatible number and JSON text, equality and truthiness.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/json/utf8.h"
#include "common/jsonata/internal.h"

namespace stepflow::jsonata {

Item::~Item() {
  if (arr.empty() && obj.empty()) return;
  std::vector<Val> pending;
  auto take = [&pending](Item* item) {
    for (auto& v : item->arr) {
      if (v) pending.push_back(std::move(v));
    }
    item->arr.clear();
    for (auto& kv : item->obj) {
      if (kv.second) pending.push_back(std::move(kv.second));
    }
    item->obj.clear();
  };
  take(this);
  while (!pending.empty()) {
    Val v = std::move(pending.back());
    pending.pop_back();
    if (v.use_count() == 1) take(v.get());
  }
}

void ThrowTooDeep() {
  Error e("U1001");
  e.message = "value nesting";
  throw e;
}

Val MakeNull() { return std::make_shared<Item>(); }

Val MakeBool(bool b) {
  auto v = std::make_shared<Item>();
  v->kind = Item::kBool;
  v->boolean = b;
  return v;
}

Val MakeNumber(double d) {
  auto v = std::make_shared<Item>();
  v->kind = Item::kNumber;
  v->number = d;
  return v;
}

Val MakeString(std::string s) {
  auto v = std::make_shared<Item>();
  v->kind = Item::kString;
  v->str = std::move(s);
  return v;
}

Val MakeArray() {
  auto v = std::make_shared<Item>();
  v->kind = Item::kArray;
  return v;
}

Val MakeSequence() {
  Val v = MakeArray();
  v->sequence = true;
  return v;
}

Val MakeObject() {
  auto v = std::make_shared<Item>();
  v->kind = Item::kObject;
  return v;
}

Val MakeFunction(std::shared_ptr<Function> f) {
  auto v = std::make_shared<Item>();
  v->kind = Item::kFunction;
  v->fn = std::move(f);
  return v;
}

Val MakeRange(double start, size_t size) {
  Val v = MakeSequence();
  v->range = true;
  v->range_start = start;
  v->range_size = size;
  return v;
}

Val Wrap(const json::Value* j) {
  switch (j->GetType()) {
    case rapidjson::kNullType:
      return MakeNull();
    case rapidjson::kFalseType:
      return MakeBool(false);
    case rapidjson::kTrueType:
      return MakeBool(true);
    case rapidjson::kNumberType:
      return MakeNumber(j->GetDouble());
    case rapidjson::kStringType:
      return MakeString(std::string(j->GetString(), j->GetStringLength()));
    default: {
      auto v = std::make_shared<Item>();
      v->kind = Item::kJson;
      v->json = j;
      return v;
    }
  }
}

Val WrapRoot(const json::Value* j) { return j ? Wrap(j) : nullptr; }

Val Expand(const Val& v) {
  if (!v || v->kind != Item::kJson) return v;
  if (v->json->IsArray()) {
    Val a = MakeArray();
    a->arr.reserve(v->json->Size());
    for (const auto& e : v->json->GetArray()) a->arr.push_back(Wrap(&e));
    return a;
  }
  Val o = MakeObject();
  for (const auto& m : v->json->GetObject()) {
    ObjectSet(o.get(), absl::string_view(m.name.GetString(),
                                         m.name.GetStringLength()),
              Wrap(&m.value));
  }
  return o;
}

size_t ArraySize(const Val& v) {
  if (v->kind == Item::kArray) return v->range ? v->range_size : v->arr.size();
  return v->json->Size();
}

Val ArrayAt(const Val& v, size_t i) {
  if (v->kind == Item::kArray) {
    return v->range ? MakeNumber(v->range_start + static_cast<double>(i))
                    : v->arr[i];
  }
  return Wrap(&(*v->json)[static_cast<rapidjson::SizeType>(i)]);
}

size_t ObjectSize(const Val& v) {
  if (v->kind == Item::kObject) return v->obj.size();
  return v->json->MemberCount();
}

namespace {
constexpr size_t kIndexThreshold = 12;
}

Val ObjectGet(const Val& v, absl::string_view key) {
  if (v->kind == Item::kJson) {
    if (!v->json->IsObject()) return nullptr;
    auto it = v->json->FindMember(
        rapidjson::Value(rapidjson::StringRef(key.data(), key.size())));
    if (it == v->json->MemberEnd()) return nullptr;
    return Wrap(&it->value);
  }
  if (v->kind != Item::kObject) return nullptr;
  if (v->obj_index) {
    auto it = v->obj_index->find(key);
    return it == v->obj_index->end() ? nullptr : v->obj[it->second].second;
  }
  for (const auto& [k, m] : v->obj) {
    if (k == key) return m;
  }
  return nullptr;
}

void ObjectSet(Item* o, absl::string_view key, Val value) {
  if (o->obj_index) {
    auto it = o->obj_index->find(key);
    if (it != o->obj_index->end()) {
      o->obj[it->second].second = std::move(value);
      return;
    }
  } else {
    for (auto& [k, m] : o->obj) {
      if (k == key) {
        m = std::move(value);
        return;
      }
    }
  }
  o->obj.emplace_back(std::string(key), std::move(value));
  if (o->obj_index) {
    o->obj_index->emplace(std::string(key), o->obj.size() - 1);
  } else if (o->obj.size() > kIndexThreshold) {
    o->obj_index = std::make_unique<absl::flat_hash_map<std::string, size_t>>();
    for (size_t i = 0; i < o->obj.size(); ++i) {
      o->obj_index->emplace(o->obj[i].first, i);
    }
  }
}

void ObjectRemove(Item* o, absl::string_view key) {
  auto it = std::find_if(o->obj.begin(), o->obj.end(),
                         [&](const auto& p) { return p.first == key; });
  if (it == o->obj.end()) return;
  o->obj.erase(it);
  if (o->obj_index) {
    o->obj_index->clear();
    for (size_t i = 0; i < o->obj.size(); ++i) {
      o->obj_index->emplace(o->obj[i].first, i);
    }
  }
}

bool Frame::Find(absl::string_view name, Val* out) const {
  for (const Frame* f = this; f; f = f->parent) {
    for (const auto& [k, v] : f->vars) {
      if (k == name) {
        *out = v;
        return true;
      }
    }
  }
  return false;
}

void Frame::Bind(absl::string_view name, Val value) {
  for (auto& [k, v] : vars) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars.emplace_back(std::string(name), std::move(value));
}

std::string NumberToString(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  if (d == 0) return "0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d,
                           std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  int exp = std::atoi(sci.c_str() + e + 1);
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits += c;
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int k = static_cast<int>(digits.size());
  int n = exp + 1;
  std::string out = negative ? "-" : "";
  if (k <= n && n <= 21) {
    out += digits;
    out.append(n - k, '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, n);
    out += '.';
    out += digits.substr(n);
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(-n, '0');
    out += digits;
  } else {
    int e2 = n - 1;
    out += digits[0];
    if (k > 1) {
      out += '.';
      out += digits.substr(1);
    }
    out += 'e';
    out += e2 < 0 ? '-' : '+';
    out += std::to_string(std::abs(e2));
  }
  return out;
}

namespace {

void AppendQuoted(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

double Precision15(double d) {
  char shortest[64];
  auto res = std::to_chars(shortest, shortest + sizeof(shortest), d,
                           std::chars_format::scientific);
  int digits = 0;
  for (char* p = shortest; p < res.ptr && *p != 'e'; ++p) {
    if (*p >= '0' && *p <= '9') ++digits;
  }
  if (digits <= 15) return d;  // already representable in 15 digits
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.14e", d);
  return std::strtod(buf, nullptr);
}

void StringifyInto(const Val& v, bool pretty, bool fifteen, int indent,
                   std::string* out) {
  if (indent > kMaxValueNesting) ThrowTooDeep();
  auto newline = [&](int level) {
    if (!pretty) return;
    out->push_back('\n');
    out->append(level * 2, ' ');
  };
  switch (v->kind) {
    case Item::kNull:
      *out += "null";
      return;
    case Item::kBool:
      *out += v->boolean ? "true" : "false";
      return;
    case Item::kNumber: {
      double d = v->number;
      if (!std::isfinite(d)) {
        if (fifteen) throw Error("D1001").WithValue(v);
        *out += "null";
        return;
      }
      // jsonata 2.0.6 rounds every number to 15 significant digits here.
      if (fifteen) d = Precision15(d);
      *out += NumberToString(d);
      return;
    }
    case Item::kString:
      AppendQuoted(v->str, out);
      return;
    case Item::kFunction:
      *out += "\"\"";
      return;
    default:
      break;
  }
  if (IsArray(v)) {
    size_t n = ArraySize(v);
    out->push_back('[');
    bool first = true;
    for (size_t i = 0; i < n; ++i) {
      Val e = ArrayAt(v, i);
      if (!first) out->push_back(',');
      first = false;
      newline(indent + 1);
      if (!e) {
        *out += "null";
      } else {
        StringifyInto(e, pretty, fifteen, indent + 1, out);
      }
    }
    if (!first) newline(indent);
    out->push_back(']');
    return;
  }
  out->push_back('{');
  bool first = true;
  ForEachMember(v, [&](const std::string& k, const Val& m) {
    if (!m) return;
    if (!first) out->push_back(',');
    first = false;
    newline(indent + 1);
    AppendQuoted(k, out);
    out->push_back(':');
    if (pretty) out->push_back(' ');
    StringifyInto(m, pretty, fifteen, indent + 1, out);
  });
  if (!first) newline(indent);
  out->push_back('}');
}

}  // namespace

std::string Stringify(const Val& v, bool pretty, bool fifteen) {
  if (!v) return "undefined";
  std::string out;
  StringifyInto(v, pretty, fifteen, 0, &out);
  return out;
}

bool DeepEqual(const Val& a, const Val& b, int depth) {
  if (!a || !b) return !a && !b;
  if (depth > kMaxValueNesting) ThrowTooDeep();
  if (a == b) return true;
  if (a->kind == Item::kJson && b->kind == Item::kJson && a->json == b->json) {
    return true;
  }
  bool aa = IsArray(a), ba = IsArray(b);
  if (aa || ba) {
    if (!(aa && ba)) return false;
    size_t n = ArraySize(a);
    if (n != ArraySize(b)) return false;
    for (size_t i = 0; i < n; ++i) {
      if (!DeepEqual(ArrayAt(a, i), ArrayAt(b, i), depth + 1)) return false;
    }
    return true;
  }
  bool ao = IsObject(a), bo = IsObject(b);
  if (ao || bo) {
    if (!(ao && bo)) return false;
    if (ObjectSize(a) != ObjectSize(b)) return false;
    bool equal = true;
    ForEachMember(a, [&](const std::string& k, const Val& m) {
      if (!equal) return;
      Val other = ObjectGet(b, k);
      if (!other || !DeepEqual(m, other, depth + 1)) equal = false;
    });
    return equal;
  }
  if (a->kind != b->kind) return false;
  switch (a->kind) {
    case Item::kNull: return true;
    case Item::kBool: return a->boolean == b->boolean;
    case Item::kNumber: return a->number == b->number;
    case Item::kString: return a->str == b->str;
    case Item::kFunction: return a->fn == b->fn;
    default: return false;
  }
}

bool Truthy(const Val& v) {
  if (!v) return false;
  if (IsArray(v)) {
    size_t n = ArraySize(v);
    if (n == 1) return Truthy(ArrayAt(v, 0));
    for (size_t i = 0; i < n; ++i) {
      if (Truthy(ArrayAt(v, i))) return true;
    }
    return false;
  }
  switch (v->kind) {
    case Item::kString: return !v->str.empty();
    case Item::kNumber: return v->number != 0 && !std::isnan(v->number);
    case Item::kBool: return v->boolean;
    case Item::kFunction: return false;
    case Item::kNull: return false;
    default: return ObjectSize(v) > 0;
  }
}

Val DeepClone(const Val& v, int depth) {
  if (!v) return v;
  if (depth > kMaxValueNesting) ThrowTooDeep();
  if (IsArray(v)) {
    Val a = MakeArray();
    size_t n = ArraySize(v);
    for (size_t i = 0; i < n; ++i) a->arr.push_back(DeepClone(ArrayAt(v, i), depth + 1));
    return a;
  }
  if (IsObject(v)) {
    Val o = MakeObject();
    ForEachMember(v, [&](const std::string& k, const Val& m) {
      ObjectSet(o.get(), k, DeepClone(m, depth + 1));
    });
    return o;
  }
  if (v->kind == Item::kFunction) return v;
  auto c = std::make_shared<Item>();
  c->kind = v->kind;
  c->boolean = v->boolean;
  c->number = v->number;
  c->str = v->str;
  return c;
}

char TypeSymbol(const Val& v) {
  if (!v) return 'm';
  switch (v->kind) {
    case Item::kNull: return 'l';
    case Item::kBool: return 'b';
    case Item::kNumber: return 'n';
    case Item::kString: return 's';
    case Item::kFunction: return 'f';
    case Item::kArray: return 'a';
    case Item::kObject: return 'o';
    case Item::kJson: return v->json->IsArray() ? 'a' : 'o';
  }
  return 'm';
}

}  // namespace stepflow::jsonata
