#include "common/patterns/pattern.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/patterns/internal/address.h"
#include "common/patterns/internal/dotted.h"
#include "common/patterns/internal/text.h"
#include "common/status/status_macros.h"

namespace stepflow::patterns {
namespace {

using Kind = Condition::Kind;

absl::Status Invalid(absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat("Event pattern is not valid. Reason: ", reason));
}

// Numbers compare at 6 decimal places, so 0.1 + 0.2 equals 0.3.
using internal::InNumericRange;
int64_t Scaled(double value) { return internal::ScaledNumber(value); }

bool NumbersEqual(double a, double b) {
  if (InNumericRange(a) && InNumericRange(b)) return Scaled(a) == Scaled(b);
  return a == b;
}

class Parser {
 public:
  // `inside_or`: the object is (within) an alternative of a $or.
  absl::StatusOr<std::unique_ptr<PatternNode>> ParseObject(const json::Value& object,
                                                           bool inside_or = false) {
    auto node = std::make_unique<PatternNode>();
    if (object.MemberCount() == 0) return Invalid("Empty objects are not allowed");
    RETURN_IF_ERROR(AddMembers(object, inside_or, node.get()));
    return node;
  }

 private:
  // Adds the members of a pattern object to `node`. EventBridge joins keys
  // with '.', so "a.b" is the field "b" under "a", and the fields of one
  // path given twice (by the same key, or by "a.b" and "a": {"b": ...})
  // are one: the last value given wins.
  absl::Status AddMembers(const json::Value& object, bool inside_or, PatternNode* node) {
    for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
      absl::string_view key(it->name.GetString(), it->name.GetStringLength());
      const json::Value& value = it->value;
      if (key == "$or") {
        if (!value.IsArray()) return Invalid("It must be an Array followed with $or.");
        std::vector<PatternNode> alternatives;
        for (const json::Value& alternative : value.GetArray()) {
          if (!alternative.IsObject()) {
            return Invalid("Only JSON object is allowed in array of $or relationship.");
          }
          ASSIGN_OR_RETURN(std::unique_ptr<PatternNode> child,
                           ParseObject(alternative, /*inside_or=*/true));
          alternatives.push_back(std::move(*child));
        }
        if (alternatives.size() < 2) {
          return Invalid("There must have at least 2 Objects in $or relationship.");
        }
        node->or_groups.push_back(std::move(alternatives));
        continue;
      }
      // Within a $or, operator names cannot name fields.
      if (inside_or && IsReservedInOr(key)) {
        return Invalid(absl::StrCat(key, " is Ruler reserved fieldName which cannot be used inside $or."));
      }
      std::vector<absl::string_view> segments = absl::StrSplit(key, '.');
      PatternNode* parent = node;
      for (size_t i = 0; i + 1 < segments.size(); ++i) parent = ChildOf(parent, segments[i]);
      const absl::string_view name = segments.back();
      if (value.IsObject()) {
        if (value.MemberCount() == 0) return Invalid("Empty objects are not allowed");
        RETURN_IF_ERROR(AddMembers(value, inside_or, ChildOf(parent, name)));
      } else if (value.IsArray()) {
        if (value.Empty()) return Invalid("Empty arrays are not allowed");
        std::vector<Condition> conditions;
        for (const json::Value& element : value.GetArray()) {
          ASSIGN_OR_RETURN(Condition condition, ParseCondition(element));
          conditions.push_back(std::move(condition));
        }
        LeafOf(parent, name)->conditions = std::move(conditions);
      } else {
        return Invalid(absl::StrCat("\"", key, "\" must be an object or an array"));
      }
    }
    return absl::OkStatus();
  }

  static bool IsReservedInOr(absl::string_view key) {
    static constexpr absl::string_view kReserved[] = {
        "exactly", "equals-ignore-case", "prefix", "suffix", "anything-but", "exists",
        "wildcard", "numeric", "cidr", "=", "<", "<=", ">", ">=", "regex", "not-wildcard",
        "not-equals-ignore-case", "date-after", "date-on-or-after", "date-before",
        "date-on-or-before", "in-date-range", "ip-address-in-range", "ip-address-not-in-range"};
    return std::find(std::begin(kReserved), std::end(kReserved), key) != std::end(kReserved);
  }

  // The nested object of field `key` in `node`, added when there is none.
  static PatternNode* ChildOf(PatternNode* node, absl::string_view key) {
    for (PatternNode::Field& field : node->fields) {
      if (field.child != nullptr && field.key == key) return field.child.get();
    }
    PatternNode::Field& field = node->fields.emplace_back();
    field.key = std::string(key);
    field.child = std::make_unique<PatternNode>();
    return field.child.get();
  }

  // The value list of field `key` in `node` (a path may have both a value
  // list and nested fields: "a": [...] with "a.b": [...]).
  static PatternNode::Field* LeafOf(PatternNode* node, absl::string_view key) {
    for (PatternNode::Field& field : node->fields) {
      if (field.child == nullptr && field.key == key) return &field;
    }
    PatternNode::Field& field = node->fields.emplace_back();
    field.key = std::string(key);
    return &field;
  }

  absl::StatusOr<Condition> ParseCondition(const json::Value& element) {
    Condition condition;
    switch (element.GetType()) {
      case rapidjson::kStringType:
        condition.kind = Kind::kString;
        condition.text.assign(element.GetString(), element.GetStringLength());
        return condition;
      case rapidjson::kNumberType:
        condition.kind = Kind::kNumber;
        condition.number = element.GetDouble();
        return condition;
      case rapidjson::kTrueType:
        condition.kind = Kind::kTrue;
        return condition;
      case rapidjson::kFalseType:
        condition.kind = Kind::kFalse;
        return condition;
      case rapidjson::kNullType:
        condition.kind = Kind::kNull;
        return condition;
      case rapidjson::kArrayType:
        return Invalid("Match value must be String, number, true, false, or null");
      case rapidjson::kObjectType:
        break;
    }
    // EventBridge reads the first operator and its value, then refuses any
    // other key.
    if (element.MemberCount() == 0) return Invalid("Match expression name not found");
    const auto& member = *element.MemberBegin();
    std::string op(member.name.GetString(), member.name.GetStringLength());
    ASSIGN_OR_RETURN(Condition parsed, ParseOperator(op, member.value));
    if (element.MemberCount() > 1) {
      return Invalid(op == "numeric" || op == "anything-but"
                         ? "Too many elements in numeric expression"
                         : "Only one key allowed in match expression");
    }
    return parsed;
  }

  absl::StatusOr<Condition> ParseOperator(const std::string& op, const json::Value& arg) {
    Condition condition;
    if (op == "prefix" || op == "suffix") {
      bool prefix = op == "prefix";
      if (arg.IsObject()) {
        // {"prefix": {"equals-ignore-case": "..."}}
        const std::string name = prefix ? "Prefix" : "Suffix";
        if (arg.MemberCount() == 0) return Invalid(absl::StrCat(name, " expression name not found"));
        absl::string_view inner(arg.MemberBegin()->name.GetString(),
                                arg.MemberBegin()->name.GetStringLength());
        if (inner != "equals-ignore-case") {
          return Invalid(absl::StrCat("Unsupported ", op, " pattern: ", inner));
        }
        const json::Value& text = arg.MemberBegin()->value;
        if (!text.IsString()) return Invalid("equals-ignore-case match pattern must be a string");
        if (arg.MemberCount() > 1) return Invalid("Only one key allowed in match expression");
        condition.kind = prefix ? Kind::kPrefixIgnoreCase : Kind::kSuffixIgnoreCase;
        condition.text = internal::Lower(absl::string_view(text.GetString(), text.GetStringLength()));
        return condition;
      }
      if (!arg.IsString()) return Invalid(absl::StrCat(op, " match pattern must be a string"));
      condition.kind = prefix ? Kind::kPrefix : Kind::kSuffix;
      condition.text.assign(arg.GetString(), arg.GetStringLength());
      return condition;
    }
    if (op == "equals-ignore-case") {
      if (!arg.IsString()) return Invalid("equals-ignore-case match pattern must be a string");
      condition.kind = Kind::kEqualsIgnoreCase;
      condition.text = internal::Lower(absl::string_view(arg.GetString(), arg.GetStringLength()));
      return condition;
    }
    if (op == "wildcard") {
      if (!arg.IsString()) return Invalid("wildcard match pattern must be a string");
      condition.kind = Kind::kWildcard;
      condition.text.assign(arg.GetString(), arg.GetStringLength());
      RETURN_IF_ERROR(CheckWildcard(condition.text));
      return condition;
    }
    if (op == "exists") {
      if (!arg.IsBool()) return Invalid("exists match pattern must be either true or false.");
      condition.kind = Kind::kExists;
      condition.exists = arg.GetBool();
      return condition;
    }
    if (op == "numeric") return ParseNumeric(arg);
    if (op == "cidr") return ParseCidr(arg);
    if (op == "anything-but") return ParseAnythingBut(arg);
    return Invalid(absl::StrCat("Unrecognized match type ", op));
  }

  absl::Status CheckWildcard(absl::string_view text) {
    int stars = 0;
    bool previous_star = false;
    for (size_t i = 0; i < text.size(); ++i) {
      char c = text[i];
      if (c == '\\') {
        if (i + 1 >= text.size() || (text[i + 1] != '*' && text[i + 1] != '\\')) {
          // Positions count in the quoted value, as AWS's parser sees it.
          return Invalid(absl::StrCat("Invalid escape character at pos ", i + 1));
        }
        ++i;
        previous_star = false;
        continue;
      }
      if (c == '*') {
        if (previous_star) return Invalid(absl::StrCat("Consecutive wildcard characters at pos ", i));
        ++stars;
        previous_star = true;
      } else {
        previous_star = false;
      }
    }
    if (stars > kMaxWildcards) {
      return Invalid(
          "Rule is too complex - try using fewer wildcard characters or fewer repeating character "
          "sequences after a wildcard character");
    }
    return absl::OkStatus();
  }

  // A JSON token as AWS's parser names it in messages.
  static std::string TokenText(const json::Value* value) {
    if (value == nullptr) return "]";  // the end of the array
    if (value->IsString()) return std::string(value->GetString(), value->GetStringLength());
    if (value->IsObject()) return "{";
    if (value->IsArray()) return "[";
    return json::Serialize(*value);
  }

  // One operator and value, or a lower bound then an upper one, checked in
  // the order and words of EventBridge's parser.
  absl::StatusOr<Condition> ParseNumeric(const json::Value& arg) {
    if (!arg.IsArray()) return Invalid("Value of numeric must be an array.");
    Condition condition;
    condition.kind = Kind::kNumeric;
    const auto& items = arg.GetArray();
    auto item = [&](rapidjson::SizeType i) { return i < items.Size() ? &items[i] : nullptr; };
    if (item(0) == nullptr || !item(0)->IsString()) {
      return Invalid(absl::StrCat("Invalid member in numeric match: ", TokenText(item(0))));
    }
    const std::string op = TokenText(item(0));
    auto number = [&](rapidjson::SizeType i, absl::string_view name) -> absl::StatusOr<double> {
      if (item(i) == nullptr || !item(i)->IsNumber() || !InNumericRange(item(i)->GetDouble())) {
        return Invalid(absl::StrCat("Value of ", name, " must be numeric"));
      }
      return item(i)->GetDouble();
    };
    if (op == "=") {
      ASSIGN_OR_RETURN(double value, number(1, "equals"));
      if (items.Size() > 2) return Invalid("Too many elements in numeric expression");
      condition.has_lower = condition.has_upper = true;
      condition.lower_inclusive = condition.upper_inclusive = true;
      condition.lower = condition.upper = value;
      return condition;
    }
    if (op == "<" || op == "<=") {
      ASSIGN_OR_RETURN(condition.upper, number(1, op));
      if (items.Size() > 2) return Invalid("Too many elements in numeric expression");
      condition.has_upper = true;
      condition.upper_inclusive = op == "<=";
      return condition;
    }
    if (op != ">" && op != ">=") {
      return Invalid(absl::StrCat("Unrecognized numeric range operator: ", op));
    }
    ASSIGN_OR_RETURN(condition.lower, number(1, op));
    condition.has_lower = true;
    condition.lower_inclusive = op == ">=";
    if (items.Size() == 2) return condition;
    // The upper bound of a range.
    if (!item(2)->IsString()) {
      return Invalid(absl::StrCat("Bad value in numeric range: ", TokenText(item(2))));
    }
    const std::string top = TokenText(item(2));
    if (top != "<" && top != "<=") {
      return Invalid(absl::StrCat("Bad numeric range operator: ", top));
    }
    ASSIGN_OR_RETURN(condition.upper, number(3, top));
    if (items.Size() > 4) return Invalid("Too many terms in numeric range expression");
    condition.has_upper = true;
    condition.upper_inclusive = top == "<=";
    if (Scaled(condition.lower) >= Scaled(condition.upper)) {
      return Invalid("Bottom must be less than top");
    }
    return condition;
  }

  absl::StatusOr<Condition> ParseCidr(const json::Value& arg) {
    if (!arg.IsString()) return Invalid("prefix match pattern must be a string");
    absl::string_view text(arg.GetString(), arg.GetStringLength());
    // Split as Java's String#split does: trailing empty parts are dropped.
    std::vector<absl::string_view> parts = absl::StrSplit(text, '/');
    while (!parts.empty() && parts.back().empty()) parts.pop_back();
    if (parts.size() != 2) return Invalid("Malformed CIDR, one '/' required");
    // An int as Integer#parseInt reads it: an optional sign, then digits.
    int bits = 0;
    absl::string_view digits = parts[1];
    if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
    if (digits.empty() || digits.find_first_not_of("0123456789") != absl::string_view::npos ||
        !absl::SimpleAtoi(parts[1], &bits)) {
      return Invalid("Malformed CIDR, mask bits must be an integer");
    }
    if (bits < 0) return Invalid("Malformed CIDR, mask bits must not be negative");
    Condition condition;
    condition.kind = Kind::kCidr;
    if (!internal::ParseIpAddress(parts[0], &condition.cidr_address)) {
      return Invalid(absl::StrCat("Nonstandard IP address: ", parts[0]));
    }
    // A network of one address is refused, as EventBridge refuses it.
    if (condition.cidr_address.size() == 4 && bits > 31) {
      return Invalid("IPv4 mask bits must be < 32");
    }
    if (condition.cidr_address.size() == 16 && bits > 127) {
      return Invalid("IPv6 mask bits must be < 128");
    }
    condition.cidr_bits = bits;
    internal::MaskAddress(&condition.cidr_address, bits);
    return condition;
  }

  absl::StatusOr<Condition> ParseAnythingBut(const json::Value& arg) {
    Condition condition;
    condition.kind = Kind::kAnythingBut;
    if (arg.IsString()) {
      condition.but_strings.emplace_back(arg.GetString(), arg.GetStringLength());
      return condition;
    }
    if (arg.IsNumber()) {
      condition.but_numbers.push_back(arg.GetDouble());
      return condition;
    }
    if (arg.IsArray()) {
      for (const json::Value& item : arg.GetArray()) {
        if (item.IsString()) {
          condition.but_strings.emplace_back(item.GetString(), item.GetStringLength());
        } else if (item.IsNumber()) {
          condition.but_numbers.push_back(item.GetDouble());
        } else {
          return Invalid("Inside anything but list, start|null|boolean is not supported.");
        }
      }
      // All strings or all numbers (an empty list is neither).
      if (condition.but_strings.empty() == condition.but_numbers.empty()) {
        return Invalid(
            "Inside anything but list, either all values are number or string, mixed type is "
            "not supported");
      }
      return condition;
    }
    // An operator object: {"prefix": ...}, {"suffix": ...}, {"wildcard": ...}
    // or {"equals-ignore-case": ...}, each with one string or a list of them.
    if (!arg.IsObject()) {
      return Invalid("Value of anything-but must be an array or single string/number value.");
    }
    if (arg.MemberCount() == 0) return Invalid("Anything-But expression name not found");
    std::string op(arg.MemberBegin()->name.GetString(), arg.MemberBegin()->name.GetStringLength());
    const json::Value& value = arg.MemberBegin()->value;
    const bool affix = op == "prefix" || op == "suffix";
    const bool wildcard = op == "wildcard";
    if (!affix && !wildcard && op != "equals-ignore-case") {
      return Invalid(absl::StrCat("Unsupported anything-but pattern: ", op));
    }
    if (!value.IsArray() && !value.IsString() && !value.IsNumber()) {
      return Invalid("Value of anything-but must be an array or single string/number value.");
    }
    condition.anything_but = op == "prefix"   ? Condition::AnythingBut::kPrefix
                             : op == "suffix" ? Condition::AnythingBut::kSuffix
                             : wildcard       ? Condition::AnythingBut::kWildcard
                                              : Condition::AnythingBut::kIgnoreCase;
    auto add = [&](const json::Value& item) -> absl::Status {
      if (!item.IsString()) {
        return affix      ? Invalid("prefix/suffix match pattern must be a string")
               : wildcard ? Invalid("wildcard match pattern must be a string")
                          : Invalid("Inside anything-but/equals-ignore-case list, "
                                    "number|start|null|boolean is not supported.");
      }
      absl::string_view text(item.GetString(), item.GetStringLength());
      if (affix && text.empty()) return Invalid("Null prefix/suffix not allowed");
      if (wildcard) RETURN_IF_ERROR(CheckWildcard(text));
      condition.but_strings.push_back(op == "equals-ignore-case" ? internal::Lower(text)
                                                                 : std::string(text));
      return absl::OkStatus();
    };
    if (value.IsArray()) {
      if (value.Empty()) return Invalid("Empty arrays are not allowed");
      for (const json::Value& item : value.GetArray()) RETURN_IF_ERROR(add(item));
    } else {
      RETURN_IF_ERROR(add(value));
    }
    if (arg.MemberCount() > 1) return Invalid("Too many elements in numeric expression");
    return condition;
  }
};

// One of the flat rules EventBridge (event-ruler) makes of a pattern: each
// field path's value list, joined with '.'; a path written again replaces
// what it had.
using FlatRule = std::vector<std::pair<std::string, const json::Value*>>;

void PutPath(FlatRule* rule, std::string path, const json::Value* values) {
  for (auto& [existing, value] : *rule) {
    if (existing == path) {
      value = values;
      return;
    }
  }
  rule->emplace_back(std::move(path), values);
}

// Writes the members of `object` (under `prefix`) into every rule, in the
// order of the text; a $or makes a copy of every rule so far per branch.
// So, as in event-ruler, a $or branch overrides what its parent gave a
// path before it, and the parent's fields after it override the branch.
void Flatten(const json::Value& object, const std::string& prefix, std::vector<FlatRule>* rules) {
  for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
    const absl::string_view key(it->name.GetString(), it->name.GetStringLength());
    const json::Value& value = it->value;
    if (key == "$or") {
      std::vector<FlatRule> expanded;
      for (const json::Value& branch : value.GetArray()) {
        std::vector<FlatRule> copy = *rules;
        Flatten(branch, prefix, &copy);
        for (FlatRule& rule : copy) expanded.push_back(std::move(rule));
      }
      *rules = std::move(expanded);
      continue;
    }
    std::string path = prefix.empty() ? std::string(key) : absl::StrCat(prefix, ".", key);
    if (value.IsObject()) {
      Flatten(value, path, rules);
    } else {
      for (FlatRule& rule : *rules) PutPath(&rule, path, &value);
    }
  }
}

// Fills Field::absence_path and Field::earlier_paths (see there).
void CollectLeaves(PatternNode* node, const std::string& prefix,
                   std::vector<std::pair<std::string, PatternNode::Field*>>* leaves) {
  for (PatternNode::Field& field : node->fields) {
    std::string path = prefix.empty() ? field.key : absl::StrCat(prefix, ".", field.key);
    if (field.child) {
      CollectLeaves(field.child.get(), path, leaves);
    } else {
      leaves->emplace_back(std::move(path), &field);
    }
  }
}

bool IsAbsence(const Condition& c) { return c.kind == Condition::Kind::kExists && !c.exists; }

void MarkAbsences(PatternNode* root) {
  std::vector<std::pair<std::string, PatternNode::Field*>> leaves;
  CollectLeaves(root, "", &leaves);
  for (auto& [path, field] : leaves) {
    if (std::none_of(field->conditions.begin(), field->conditions.end(), IsAbsence)) continue;
    field->absence_path = path;
    for (const auto& [other_path, other] : leaves) {
      if (other_path < path &&
          !std::all_of(other->conditions.begin(), other->conditions.end(), IsAbsence)) {
        field->earlier_paths.push_back(other_path);
      }
    }
  }
  for (std::vector<PatternNode>& group : root->or_groups) {
    for (PatternNode& alternative : group) MarkAbsences(&alternative);
  }
}

bool HasOr(const PatternNode& node) {
  if (!node.or_groups.empty()) return true;
  return std::any_of(node.fields.begin(), node.fields.end(), [](const PatternNode::Field& field) {
    return field.child != nullptr && HasOr(*field.child);
  });
}

// How many alternatives the pattern expands to, capped past the limit.
int64_t Combinations(const PatternNode& node) {
  int64_t total = 1;
  auto times = [&](int64_t n) { total = std::min<int64_t>(total * n, kMaxCombinations + 1); };
  for (const PatternNode::Field& field : node.fields) {
    times(field.child ? Combinations(*field.child) : static_cast<int64_t>(field.conditions.size()));
  }
  for (const std::vector<PatternNode>& group : node.or_groups) {
    int64_t sum = 0;
    for (const PatternNode& alternative : group) {
      sum = std::min<int64_t>(sum + Combinations(alternative), kMaxCombinations + 1);
    }
    times(sum);
  }
  return total;
}

bool IsLeaf(const json::Value& value) { return !value.IsObject() && !value.IsArray(); }

// Calls `visit` on every leaf value in `value` (the value itself, or the
// scalar elements of arrays, nested arrays included) until it returns true.
template <typename Visit>
bool AnyLeaf(const json::Value& value, const Visit& visit) {
  if (value.IsArray()) {
    for (const json::Value& element : value.GetArray()) {
      if (AnyLeaf(element, visit)) return true;
    }
    return false;
  }
  return IsLeaf(value) && visit(value);
}

bool HasLeaf(const json::Value& value) {
  return AnyLeaf(value, [](const json::Value&) { return true; });
}

// Matches `node` against each object of `array`, nested arrays included
// (EventBridge looks into arrays at any depth). `*any_object` tells whether
// there was one.
bool AnyObjectMatches(const PatternNode& node, const json::Value& array, const json::Value& top,
                      bool* dotted, bool* any_object) {
  for (const json::Value& element : array.GetArray()) {
    if (element.IsArray()) {
      if (AnyObjectMatches(node, element, top, dotted, any_object)) return true;
      if (dotted != nullptr && *dotted) return false;
      continue;
    }
    if (!element.IsObject()) continue;
    *any_object = true;
    std::vector<const std::string*> path;
    if (node.MatchesElement(&element, &top, &path, dotted)) return true;
    if (dotted != nullptr && *dotted) return false;
  }
  return false;
}

// Whether `value` has a leaf at `path` (from `at` on), arrays along the
// way at any depth.
bool HasAt(const json::Value& value, const std::vector<const std::string*>& path, size_t at) {
  if (value.IsArray()) {
    for (const json::Value& element : value.GetArray()) {
      if (HasAt(element, path, at)) return true;
    }
    return false;
  }
  if (at == path.size()) return HasLeaf(value);
  if (!value.IsObject()) return false;
  const std::string& key = *path[at];
  auto it = value.FindMember(json::Value(rapidjson::StringRef(key.data(), key.size())));
  return it != value.MemberEnd() && HasAt(it->value, path, at + 1);
}

// `elements`: the event array that `value` is inside of (at `path`, the
// member names from its element to the field), or null.
bool FieldMatches(const PatternNode::Field& field, const json::Value* value,
                  const json::Value* elements, std::vector<const std::string*>* path,
                  bool* dotted) {
  if (field.child) {
    if (value != nullptr && value->IsObject()) {
      if (elements == nullptr) return field.child->Matches(value, dotted);
      path->push_back(&field.key);
      const bool matched = field.child->MatchesElement(value, elements, path, dotted);
      path->pop_back();
      return matched;
    }
    if (value != nullptr && value->IsArray()) {
      bool any_object = false;
      if (AnyObjectMatches(*field.child, *value, *value, dotted, &any_object)) return true;
      if (any_object || (dotted != nullptr && *dotted)) return false;
    }
    if (elements == nullptr) return field.child->Matches(nullptr, dotted);
    path->push_back(&field.key);
    const bool matched = field.child->MatchesElement(nullptr, elements, path, dotted);
    path->pop_back();
    return matched;
  }
  for (const Condition& condition : field.conditions) {
    if (condition.kind == Kind::kExists) {
      bool present = value != nullptr && HasLeaf(*value);
      if (!condition.exists && elements != nullptr && !field.absence_path.empty()) {
        path->push_back(&field.key);
        // The path of the array's element: what a field must be under to
        // pick an element of it (the absence's path less `path`).
        size_t relative = path->size() - 1;  // the dots
        for (const std::string* name : *path) relative += name->size();
        const absl::string_view element =
            absl::string_view(field.absence_path).substr(0, field.absence_path.size() - relative);
        const bool picked = std::any_of(
            field.earlier_paths.begin(), field.earlier_paths.end(),
            [&](const std::string& earlier) { return absl::StartsWith(earlier, element); });
        if (!picked) present = HasAt(*elements, *path, 0);
        path->pop_back();
      }
      if (present == condition.exists) return true;
      continue;
    }
    if (value == nullptr) continue;
    if (AnyLeaf(*value, [&](const json::Value& leaf) { return condition.MatchesLeaf(leaf); })) {
      return true;
    }
  }
  return false;
}

bool MatchesAddress(const Condition& condition, absl::string_view text) {
  std::vector<uint8_t> address;
  if (!internal::ParseIpAddress(text, &address) || address.size() != condition.cidr_address.size()) {
    return false;
  }
  internal::MaskAddress(&address, condition.cidr_bits);
  return address == condition.cidr_address;
}

}  // namespace

bool Condition::MatchesLeaf(const json::Value& value) const {
  const bool is_string = value.IsString();
  absl::string_view text =
      is_string ? absl::string_view(value.GetString(), value.GetStringLength()) : absl::string_view();
  switch (kind) {
    case Kind::kString:
      return is_string && text == this->text;
    case Kind::kNumber:
      return value.IsNumber() && NumbersEqual(value.GetDouble(), number);
    case Kind::kTrue:
      return value.IsTrue();
    case Kind::kFalse:
      return value.IsFalse();
    case Kind::kNull:
      return value.IsNull();
    case Kind::kPrefix:
      return is_string && absl::StartsWith(text, this->text);
    case Kind::kSuffix:
      return is_string && absl::EndsWith(text, this->text);
    case Kind::kPrefixIgnoreCase:
      return is_string && text.size() >= this->text.size() &&
             internal::Lower(text.substr(0, this->text.size())) == this->text;
    case Kind::kSuffixIgnoreCase:
      return is_string && text.size() >= this->text.size() &&
             internal::Lower(text.substr(text.size() - this->text.size())) == this->text;
    case Kind::kEqualsIgnoreCase:
      return is_string && text.size() == this->text.size() && internal::Lower(text) == this->text;
    case Kind::kWildcard:
      return is_string && internal::WildcardMatches(this->text, text);
    case Kind::kNumeric: {
      if (!value.IsNumber()) return false;
      double x = value.GetDouble();
      if (!InNumericRange(x)) return false;
      int64_t scaled = Scaled(x);
      if (has_lower) {
        int64_t bound = Scaled(lower);
        if (lower_inclusive ? scaled < bound : scaled <= bound) return false;
      }
      if (has_upper) {
        int64_t bound = Scaled(upper);
        if (upper_inclusive ? scaled > bound : scaled >= bound) return false;
      }
      return true;
    }
    case Kind::kExists:
      return exists;
    case Kind::kCidr:
      return is_string && MatchesAddress(*this, text);
    case Kind::kAnythingBut:
      switch (anything_but) {
        case AnythingBut::kValues:
          if (is_string) {
            return std::find(but_strings.begin(), but_strings.end(), text) == but_strings.end();
          }
          if (value.IsNumber()) {
            double x = value.GetDouble();
            return std::none_of(but_numbers.begin(), but_numbers.end(),
                                [&](double n) { return NumbersEqual(n, x); });
          }
          return true;
        case AnythingBut::kPrefix:
          return !is_string || std::none_of(but_strings.begin(), but_strings.end(),
                                            [&](const std::string& prefix) {
                                              return absl::StartsWith(text, prefix);
                                            });
        case AnythingBut::kSuffix:
          return !is_string || std::none_of(but_strings.begin(), but_strings.end(),
                                            [&](const std::string& suffix) {
                                              return absl::EndsWith(text, suffix);
                                            });
        case AnythingBut::kWildcard:
          return !is_string || std::none_of(but_strings.begin(), but_strings.end(),
                                            [&](const std::string& w) {
                                              return internal::WildcardMatches(w, text);
                                            });
        case AnythingBut::kIgnoreCase: {
          if (!is_string) return true;
          std::string lowered = internal::Lower(text);
          return std::find(but_strings.begin(), but_strings.end(), lowered) == but_strings.end();
        }
      }
      return false;
  }
  return false;
}

bool PatternNode::Matches(const json::Value* object, bool* dotted) const {
  return MatchesElement(object, nullptr, nullptr, dotted);
}

bool PatternNode::MatchesElement(const json::Value* object, const json::Value* elements,
                                 std::vector<const std::string*>* path, bool* dotted) const {
  if (dotted != nullptr && object != nullptr && internal::HasDottedName(*object)) {
    *dotted = true;
    return false;
  }
  for (const Field& field : fields) {
    const json::Value* value = nullptr;
    if (object != nullptr) {
      auto it = object->FindMember(
          json::Value(rapidjson::StringRef(field.key.data(), field.key.size())));
      if (it != object->MemberEnd()) value = &it->value;
    }
    if (!FieldMatches(field, value, elements, path, dotted)) return false;
  }
  for (const std::vector<PatternNode>& group : or_groups) {
    if (std::none_of(group.begin(), group.end(), [&](const PatternNode& alternative) {
          return alternative.MatchesElement(object, elements, path, dotted);
        })) {
      return false;
    }
  }
  return true;
}

namespace {

// Where AWS's JSON reader stopped, as it says it: "\n at [Source:
// (String)\"<pattern>\"; line: L, column: C]" (1-based), the source cut at
// 500 characters.
std::string SourceLocation(absl::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  constexpr size_t kMaxShown = 500;
  std::string shown(text.substr(0, kMaxShown));
  if (text.size() > kMaxShown) {
    absl::StrAppend(&shown, "\"[truncated ", text.size() - kMaxShown, " chars]");
  } else {
    shown += '"';
  }
  return absl::StrCat("\n at [Source: (String)\"", shown, "; line: ", line,
                      ", column: ", offset - line_start + 1, "]");
}

bool IsTokenCharacter(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

// The reason AWS gives for the usual syntax errors (a bare word where a
// value belongs; a field name without double quotes), or null.
std::optional<std::string> SyntaxErrorReason(absl::string_view text) {
  rapidjson::Document document;
  document.Parse(text.data(), text.size());
  if (!document.HasParseError()) return std::nullopt;
  size_t offset = document.GetErrorOffset();
  if (offset >= text.size()) return std::nullopt;
  switch (document.GetParseError()) {
    case rapidjson::kParseErrorValueInvalid: {
      // A literal that went wrong (tru, this) is reported past its start.
      size_t start = offset;
      while (start > 0 && IsTokenCharacter(text[start - 1])) --start;
      if (!IsTokenCharacter(text[start])) return std::nullopt;
      size_t end = start;
      while (end < text.size() && IsTokenCharacter(text[end])) ++end;
      return absl::StrCat("Unrecognized token '", text.substr(start, end - start),
                          "': was expecting (JSON String, Number, Array, Object or token "
                          "'null', 'true' or 'false')",
                          SourceLocation(text, end));
    }
    case rapidjson::kParseErrorObjectMissName: {
      const unsigned char c = static_cast<unsigned char>(text[offset]);
      if (c < 0x20 || c >= 0x80) return std::nullopt;
      return absl::StrCat("Unexpected character ('", std::string(1, static_cast<char>(c)),
                          "' (code ", static_cast<int>(c),
                          ")): was expecting double-quote to start field name",
                          SourceLocation(text, offset));
    }
    default:
      return std::nullopt;
  }
}

}  // namespace

absl::StatusOr<Pattern> Pattern::Parse(absl::string_view text) {
  absl::StatusOr<json::Document> document = json::Parse(text);
  if (!document.ok()) {
    std::optional<std::string> reason = SyntaxErrorReason(text);
    return Invalid(reason.has_value() ? *reason : document.status().message());
  }
  if (!document->IsObject()) {
    // AWS's reader stops after the first token.
    size_t first = text.find_first_not_of(" \t\r\n");
    return Invalid(absl::StrCat("Filter is not an object",
                                SourceLocation(text, first == absl::string_view::npos
                                                         ? text.size()
                                                         : first + 1)));
  }
  Parser parser;
  ASSIGN_OR_RETURN(std::unique_ptr<PatternNode> root, parser.ParseObject(*document));
  if (Combinations(*root) > kMaxCombinations) {
    return Invalid(absl::StrCat("Event pattern contains more than ", kMaxCombinations,
                                " rule combinations"));
  }
  if (!HasOr(*root)) {
    MarkAbsences(root.get());
    return Pattern(std::move(root));
  }
  // A pattern with $or matches as EventBridge's flat rules do: one
  // alternative per combination of branches, each with its parent's fields
  // (so all of them must hold in one element of an array of objects).
  std::vector<FlatRule> rules(1);
  Flatten(*document, "", &rules);
  auto flattened = std::make_unique<PatternNode>();
  std::vector<PatternNode>& alternatives = flattened->or_groups.emplace_back();
  for (const FlatRule& rule : rules) {
    json::Document object;
    object.SetObject();
    for (const auto& [path, values] : rule) {
      object.AddMember(json::Value(path.c_str(), static_cast<rapidjson::SizeType>(path.size()),
                                   object.GetAllocator()),
                       json::Value(*values, object.GetAllocator()), object.GetAllocator());
    }
    ASSIGN_OR_RETURN(std::unique_ptr<PatternNode> alternative, parser.ParseObject(object));
    alternatives.push_back(std::move(*alternative));
  }
  MarkAbsences(flattened.get());
  return Pattern(std::move(flattened));
}

bool Pattern::Matches(const json::Value& event) const {
  if (!event.IsObject()) return false;
  bool dotted = false;
  const bool matched = root_->Matches(&event, &dotted);
  if (!dotted) return matched;
  json::Document scratch;
  json::Value nested = internal::ExpandDottedKeys(event, scratch.GetAllocator());
  return root_->Matches(&nested);
}

absl::StatusOr<bool> Pattern::Matches(absl::string_view event_text) const {
  ASSIGN_OR_RETURN(json::Document event, json::Parse(event_text));
  return Matches(event);
}

absl::StatusOr<bool> TestEventPattern(absl::string_view pattern_text, absl::string_view event_text) {
  ASSIGN_OR_RETURN(Pattern pattern, Pattern::Parse(pattern_text));
  absl::StatusOr<json::Document> event = json::Parse(event_text);
  if (!event.ok() || !event->IsObject()) return absl::InvalidArgumentError(kInvalidEventMessage);
  for (const char* required : {"id", "account", "source", "time", "region", "detail-type"}) {
    if (!event->HasMember(required)) return absl::InvalidArgumentError(kInvalidEventMessage);
  }
  return pattern.Matches(*event);
}

}  // namespace stepflow::patterns
