#include "common/asl/choice.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/asl/path.h"
#include "common/asl/timestamp.h"

namespace stepflow::asl {

enum class ChoiceRule::Kind : uint8_t { kAnd, kOr, kNot, kDataTest };

enum class ChoiceRule::Family : uint8_t {
  kString,
  kStringMatches,
  kNumeric,
  kBoolean,
  kTimestamp,
  kIsNull,
  kIsPresent,
  kIsNumeric,
  kIsString,
  kIsBoolean,
  kIsTimestamp,
};

enum class ChoiceRule::Relation : uint8_t {
  kEquals,
  kLessThan,
  kGreaterThan,
  kLessThanEquals,
  kGreaterThanEquals,
};

struct ChoiceRule::OperatorSpec {
  absl::string_view name;
  Family family;
  Relation relation;
  bool path;  // the XPath form: the value is a path to compare with
};

// In the order AWS lists them, which is the order of the "There should only
// be one of the following fields" message.
const std::vector<ChoiceRule::OperatorSpec>& ChoiceRule::Operators() {
  using F = Family;
  using R = Relation;
  static const auto* const kOperators = new std::vector<OperatorSpec>{
      {"StringEquals", F::kString, R::kEquals, false},
      {"StringEqualsPath", F::kString, R::kEquals, true},
      {"StringLessThan", F::kString, R::kLessThan, false},
      {"StringLessThanPath", F::kString, R::kLessThan, true},
      {"StringGreaterThan", F::kString, R::kGreaterThan, false},
      {"StringGreaterThanPath", F::kString, R::kGreaterThan, true},
      {"StringLessThanEquals", F::kString, R::kLessThanEquals, false},
      {"StringLessThanEqualsPath", F::kString, R::kLessThanEquals, true},
      {"StringGreaterThanEquals", F::kString, R::kGreaterThanEquals, false},
      {"StringGreaterThanEqualsPath", F::kString, R::kGreaterThanEquals, true},
      {"StringMatches", F::kStringMatches, R::kEquals, false},
      {"NumericEquals", F::kNumeric, R::kEquals, false},
      {"NumericEqualsPath", F::kNumeric, R::kEquals, true},
      {"NumericLessThan", F::kNumeric, R::kLessThan, false},
      {"NumericLessThanPath", F::kNumeric, R::kLessThan, true},
      {"NumericGreaterThan", F::kNumeric, R::kGreaterThan, false},
      {"NumericGreaterThanPath", F::kNumeric, R::kGreaterThan, true},
      {"NumericLessThanEquals", F::kNumeric, R::kLessThanEquals, false},
      {"NumericLessThanEqualsPath", F::kNumeric, R::kLessThanEquals, true},
      {"NumericGreaterThanEquals", F::kNumeric, R::kGreaterThanEquals, false},
      {"NumericGreaterThanEqualsPath", F::kNumeric, R::kGreaterThanEquals,
       true},
      {"BooleanEquals", F::kBoolean, R::kEquals, false},
      {"BooleanEqualsPath", F::kBoolean, R::kEquals, true},
      {"TimestampEquals", F::kTimestamp, R::kEquals, false},
      {"TimestampEqualsPath", F::kTimestamp, R::kEquals, true},
      {"TimestampLessThan", F::kTimestamp, R::kLessThan, false},
      {"TimestampLessThanPath", F::kTimestamp, R::kLessThan, true},
      {"TimestampGreaterThan", F::kTimestamp, R::kGreaterThan, false},
      {"TimestampGreaterThanPath", F::kTimestamp, R::kGreaterThan, true},
      {"TimestampLessThanEquals", F::kTimestamp, R::kLessThanEquals, false},
      {"TimestampLessThanEqualsPath", F::kTimestamp, R::kLessThanEquals, true},
      {"TimestampGreaterThanEquals", F::kTimestamp, R::kGreaterThanEquals,
       false},
      {"TimestampGreaterThanEqualsPath", F::kTimestamp, R::kGreaterThanEquals,
       true},
      {"IsNull", F::kIsNull, R::kEquals, false},
      {"IsPresent", F::kIsPresent, R::kEquals, false},
      {"IsNumeric", F::kIsNumeric, R::kEquals, false},
      {"IsString", F::kIsString, R::kEquals, false},
      {"IsBoolean", F::kIsBoolean, R::kEquals, false},
      {"IsTimestamp", F::kIsTimestamp, R::kEquals, false},
  };
  return *kOperators;
}

namespace {

constexpr char kSchema[] = "SCHEMA_VALIDATION_FAILED";
constexpr char kInvalidPath[] = "INVALID_JSON_PATH";
constexpr char kOneSelector[] =
    "The object must have only one of the following fields, "
    "[And, Or, Not, Variable, Condition]";

absl::string_view View(const json::Value& value) {
  return absl::string_view(value.GetString(), value.GetStringLength());
}

// Every JSON number (int64, uint64 or double) converts exactly.
long double NumberOf(const json::Value& value) {
  if (value.IsInt64()) return static_cast<long double>(value.GetInt64());
  if (value.IsUint64()) return static_cast<long double>(value.GetUint64());
  return static_cast<long double>(value.GetDouble());
}

// Paths as Variable and XPath values accept them: a reference path into the
// input ("$", "$.a", "$['a'][0]"), into the context object ("$$.x"), or into a
// workflow variable ("$name", "$name.a[0]").
bool IsValidChoicePath(absl::string_view path) {
  if (path.empty() || path[0] != '$') return false;
  if (path.size() == 1 || path[1] == '$' || path[1] == '.' || path[1] == '[') {
    return ReferencePath::Parse(path).ok();
  }
  size_t end = 1;
  while (end < path.size() && path[end] != '.' && path[end] != '[') ++end;
  absl::string_view name = path.substr(1, end - 1);
  if (name[0] >= '0' && name[0] <= '9') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' ||
                    static_cast<unsigned char>(c) >= 0x80;
    if (!ok) return false;
  }
  absl::string_view rest = path.substr(end);
  return rest.empty() || ReferencePath::Parse(absl::StrCat("$", rest)).ok();
}

bool IsUtf8Continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// The code point at text[pos], or -1 for malformed UTF-8.
int32_t DecodeUtf8(absl::string_view text, size_t pos) {
  const auto byte = [&](size_t i) {
    return static_cast<unsigned char>(text[i]);
  };
  const unsigned char lead = byte(pos);
  int length;
  int32_t cp;
  if (lead < 0x80) return lead;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    cp = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    cp = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    cp = lead & 0x07;
  } else {
    return -1;
  }
  if (text.size() - pos < static_cast<size_t>(length)) return -1;
  for (int i = 1; i < length; ++i) {
    if (!IsUtf8Continuation(text[pos + i])) return -1;
    cp = (cp << 6) | (byte(pos + i) & 0x3F);
  }
  return cp;
}

// The UTF-16 encoding of `cp` as one comparable number: the first code unit
// in the high half, the second (0 for BMP characters) in the low half.
uint32_t Utf16Key(int32_t cp) {
  if (cp < 0x10000) return static_cast<uint32_t>(cp) << 16;
  const uint32_t v = static_cast<uint32_t>(cp) - 0x10000;
  return ((0xD800 + (v >> 10)) << 16) | (0xDC00 + (v & 0x3FF));
}

// Java's String.compareTo on the UTF-16 forms of two UTF-8 strings: <0, 0, >0.
// UTF-8 byte order is code point order, which differs from UTF-16 order only
// between supplementary characters and U+E000..U+FFFF, so only the first
// differing character needs decoding.
int CompareAsJava(absl::string_view a, absl::string_view b) {
  const size_t common = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < common && a[i] == b[i]) ++i;
  if (i == common) {
    return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
  }
  // Back up to the first byte of the character that differs.
  size_t start = i;
  while (start > 0 &&
         (IsUtf8Continuation(a[start]) || IsUtf8Continuation(b[start]))) {
    --start;
  }
  const int32_t ca = DecodeUtf8(a, start);
  const int32_t cb = DecodeUtf8(b, start);
  if (ca < 0 || cb < 0 || ca == cb) {
    return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i])
               ? -1
               : 1;
  }
  return Utf16Key(ca) < Utf16Key(cb) ? -1 : 1;
}

template <typename T>
int ThreeWay(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

absl::Status RuntimeError(absl::string_view cause) {
  return absl::InvalidArgumentError(absl::StrCat("States.Runtime: ", cause));
}

absl::Status InvalidPathError(absl::string_view path) {
  return RuntimeError(absl::StrCat(
      "Invalid path '", path,
      "': The choice state's condition path references an invalid value."));
}

// The value `path` selects, nullptr when it selects nothing, or the
// resolver's error.
absl::StatusOr<const json::Value*> Lookup(const ChoicePathResolver& resolve,
                                          absl::string_view path) {
  absl::StatusOr<const json::Value*> found = resolve(path);
  if (!found.ok()) {
    if (absl::IsNotFound(found.status())) return nullptr;
    return found.status();
  }
  return *found;
}

}  // namespace

ChoiceRule::ChoiceRule()
    : kind_(Kind::kDataTest),
      family_(Family::kIsPresent),
      relation_(Relation::kEquals) {}

ChoiceRule::~ChoiceRule() = default;

std::unique_ptr<ChoiceRule> ChoiceRule::Parse(
    const json::Value& rule, bool top_level, const std::string& location,
    std::vector<ChoiceDiagnostic>* diagnostics) {
  const size_t errors_before = diagnostics->size();
  const auto report = [&](const char* code, std::string message,
                          std::string where) {
    diagnostics->push_back(
        ChoiceDiagnostic{code, std::move(message), std::move(where)});
  };
  const auto at = [&](absl::string_view field) {
    return absl::StrCat(location, "/", field);
  };
  if (!rule.IsObject()) {
    report(kSchema, "Expected value of type Object", location);
    return nullptr;
  }

  std::unique_ptr<ChoiceRule> result(new ChoiceRule());
  const json::Value* next = nullptr;
  const json::Value* variable = nullptr;
  const json::Value* boolean_operand = nullptr;  // the And, Or or Not value
  absl::string_view boolean_name;
  int selectors = 0;
  std::vector<std::pair<const OperatorSpec*, const json::Value*>> operators;
  for (const auto& member : rule.GetObject()) {
    const absl::string_view key = View(member.name);
    const json::Value& value = member.value;
    if (key == "Comment") {
      if (!value.IsString())
        report(kSchema, "Expected value of type String", at(key));
    } else if (key == "Next" && top_level) {
      next = &value;
    } else if (key == "Assign" && top_level) {
      if (!value.IsObject())
        report(kSchema, "Expected value of type Object", at(key));
    } else if (key == "Variable") {
      variable = &value;
      ++selectors;
    } else if (key == "And" || key == "Or" || key == "Not") {
      boolean_operand = &value;
      boolean_name = key;
      ++selectors;
    } else {
      const OperatorSpec* op = nullptr;
      for (const OperatorSpec& candidate : Operators()) {
        if (candidate.name == key) op = &candidate;
      }
      if (op != nullptr) {
        operators.emplace_back(op, &value);
      } else {
        report(kSchema, absl::StrCat("Field '", key, "' is not supported"),
               at(key));
      }
    }
  }

  if (top_level) {
    if (next == nullptr) {
      report(kSchema, "These fields are required: [Next]", location);
    } else if (!next->IsString()) {
      report(kSchema, "Expected value of type String", at("Next"));
    } else {
      result->next_ = std::string(View(*next));
    }
  }

  if (selectors > 1 || (selectors == 0 && operators.empty())) {
    report(kSchema, kOneSelector, location);
  } else if (selectors == 0) {
    report(kSchema, "These fields are required: [Variable]", location);
  } else if (boolean_operand != nullptr) {
    for (const auto& [op, value] : operators) {
      report(kSchema, absl::StrCat("Field '", op->name, "' is not supported"),
             at(op->name));
    }
    const std::string where = at(boolean_name);
    if (boolean_name == "Not") {
      result->kind_ = Kind::kNot;
      std::unique_ptr<ChoiceRule> child =
          Parse(*boolean_operand, false, where, diagnostics);
      if (child != nullptr) result->children_.push_back(std::move(child));
    } else {
      result->kind_ = boolean_name == "And" ? Kind::kAnd : Kind::kOr;
      if (!boolean_operand->IsArray()) {
        report(kSchema, "Expected value of type Array", where);
      } else if (boolean_operand->Empty()) {
        report(kSchema, "Value cannot be empty", where);
      } else {
        for (rapidjson::SizeType i = 0; i < boolean_operand->Size(); ++i) {
          std::unique_ptr<ChoiceRule> child =
              Parse((*boolean_operand)[i], false, absl::StrCat(where, "/", i),
                    diagnostics);
          if (child != nullptr) result->children_.push_back(std::move(child));
        }
      }
    }
  } else {
    result->kind_ = Kind::kDataTest;
    if (!variable->IsString()) {
      report(kSchema, "Expected value of type String", at("Variable"));
    } else if (!IsValidChoicePath(View(*variable))) {
      report(
          kInvalidPath,
          absl::StrCat(
              "The value for the field 'Variable' must be a valid JSONPath: ",
              View(*variable)),
          at("Variable"));
    } else {
      result->variable_ = std::string(View(*variable));
    }
    if (operators.size() != 1) {
      std::vector<absl::string_view> names;
      for (const OperatorSpec& op : Operators()) names.push_back(op.name);
      report(kSchema,
             absl::StrCat("There should only be one of the following fields: [",
                          absl::StrJoin(names, ", "), "]"),
             location);
    } else {
      const OperatorSpec& op = *operators[0].first;
      const json::Value& value = *operators[0].second;
      const std::string where = at(op.name);
      result->family_ = op.family;
      result->relation_ = op.relation;
      result->has_operand_path_ = op.path;
      if (op.path) {
        if (!value.IsString()) {
          report(kSchema, "Expected value of type String", where);
        } else if (!IsValidChoicePath(View(value))) {
          report(kInvalidPath,
                 absl::StrCat("The value for the field '", op.name,
                              "' must be a valid JSONPath: ", View(value)),
                 where);
        } else {
          result->operand_path_ = std::string(View(value));
        }
      } else {
        switch (result->family_) {
          case Family::kString:
            if (!value.IsString()) {
              report(kSchema, "Expected value of type String", where);
            } else {
              result->string_ = std::string(View(value));
            }
            break;
          case Family::kStringMatches:
            if (!value.IsString()) {
              report(kSchema, "Expected value of type String", where);
              break;
            }
            result->string_ = std::string(View(value));
            result->pattern_pieces_.emplace_back();
            for (size_t i = 0; i < result->string_.size(); ++i) {
              const char c = result->string_[i];
              if (c == '\\') {
                if (i + 1 == result->string_.size()) {
                  result->pattern_open_escape_ = true;
                  break;
                }
                result->pattern_pieces_.back().push_back(result->string_[++i]);
              } else if (c == '*') {
                result->pattern_pieces_.emplace_back();
              } else {
                result->pattern_pieces_.back().push_back(c);
              }
            }
            break;
          case Family::kNumeric:
            if (!value.IsNumber()) {
              report(kSchema, "Expected value of type Number", where);
            } else {
              result->number_ = NumberOf(value);
            }
            break;
          case Family::kTimestamp:
            if (!value.IsString()) {
              report(kSchema, "Expected value of type String", where);
            } else if (absl::StatusOr<absl::Time> time =
                           ParseTimestamp(View(value));
                       !time.ok()) {
              report(kSchema, "String does not match RFC3339 timestamp", where);
            } else {
              result->time_ = *time;
            }
            break;
          default:  // BooleanEquals and the Is* operators
            if (!value.IsBool()) {
              report(kSchema, "Expected value of type Boolean", where);
            } else {
              result->boolean_ = value.GetBool();
            }
            break;
        }
      }
    }
  }

  if (diagnostics->size() != errors_before) return nullptr;
  return result;
}

absl::StatusOr<bool> ChoiceRule::Evaluate(
    const ChoicePathResolver& resolve) const {
  switch (kind_) {
    case Kind::kAnd:
      for (const auto& child : children_) {
        absl::StatusOr<bool> matched = child->Evaluate(resolve);
        if (!matched.ok() || !*matched) return matched;
      }
      return true;
    case Kind::kOr:
      for (const auto& child : children_) {
        absl::StatusOr<bool> matched = child->Evaluate(resolve);
        if (!matched.ok() || *matched) return matched;
      }
      return false;
    case Kind::kNot: {
      absl::StatusOr<bool> matched = children_.front()->Evaluate(resolve);
      if (!matched.ok()) return matched;
      return !*matched;
    }
    case Kind::kDataTest:
      break;
  }
  return EvaluateDataTest(resolve);
}

absl::StatusOr<bool> ChoiceRule::EvaluateDataTest(
    const ChoicePathResolver& resolve) const {
  absl::StatusOr<const json::Value*> found = Lookup(resolve, variable_);
  if (!found.ok()) return found.status();
  if (family_ == Family::kIsPresent) return (*found != nullptr) == boolean_;
  if (*found == nullptr) return InvalidPathError(variable_);
  const json::Value& value = **found;

  switch (family_) {
    case Family::kIsNull:
      return value.IsNull() == boolean_;
    case Family::kIsNumeric:
      return value.IsNumber() == boolean_;
    case Family::kIsString:
      return value.IsString() == boolean_;
    case Family::kIsBoolean:
      return value.IsBool() == boolean_;
    case Family::kIsTimestamp:
      return (value.IsString() && IsTimestamp(View(value))) == boolean_;
    case Family::kStringMatches:
      if (pattern_open_escape_) {
        return RuntimeError(
            absl::StrCat("Invalid StringMatches pattern '", string_,
                         "': it ends with an open escape character '\\'."));
      }
      return value.IsString() && MatchesPattern(View(value));
    default:
      break;
  }

  const json::Value* operand = nullptr;
  if (has_operand_path_) {
    absl::StatusOr<const json::Value*> other = Lookup(resolve, operand_path_);
    if (!other.ok()) return other.status();
    if (*other == nullptr) return InvalidPathError(operand_path_);
    operand = *other;
  }

  int order = 0;
  switch (family_) {
    case Family::kString: {
      if (!value.IsString()) return false;
      absl::string_view right = string_;
      if (operand != nullptr) {
        if (!operand->IsString()) return false;
        right = View(*operand);
      }
      order = CompareAsJava(View(value), right);
      break;
    }
    case Family::kNumeric: {
      if (!value.IsNumber()) return false;
      long double right = number_;
      if (operand != nullptr) {
        if (!operand->IsNumber()) return false;
        right = NumberOf(*operand);
      }
      order = ThreeWay(NumberOf(value), right);
      break;
    }
    case Family::kBoolean: {
      if (!value.IsBool()) return false;
      bool right = boolean_;
      if (operand != nullptr) {
        if (!operand->IsBool()) return false;
        right = operand->GetBool();
      }
      order = value.GetBool() == right ? 0 : 1;
      break;
    }
    case Family::kTimestamp: {
      absl::Time left;
      if (!value.IsString() || !TryParseTimestamp(View(value), &left))
        return false;
      absl::Time right = time_;
      if (operand != nullptr && (!operand->IsString() ||
                                 !TryParseTimestamp(View(*operand), &right))) {
        return false;
      }
      order = ThreeWay(left, right);
      break;
    }
    default:
      return false;  // every other family returned above
  }

  switch (relation_) {
    case Relation::kEquals:
      return order == 0;
    case Relation::kLessThan:
      return order < 0;
    case Relation::kGreaterThan:
      return order > 0;
    case Relation::kLessThanEquals:
      return order <= 0;
    case Relation::kGreaterThanEquals:
      return order >= 0;
  }
  return false;
}

bool ChoiceRule::MatchesPattern(absl::string_view subject) const {
  if (pattern_pieces_.size() == 1) return subject == pattern_pieces_.front();
  const std::string& first = pattern_pieces_.front();
  const std::string& last = pattern_pieces_.back();
  if (subject.size() < first.size() + last.size() ||
      !absl::StartsWith(subject, first) || !absl::EndsWith(subject, last)) {
    return false;
  }
  // Between the fixed ends each piece only has to occur after the previous
  // one; taking the leftmost occurrence leaves the most room for the rest.
  absl::string_view middle =
      subject.substr(first.size(), subject.size() - first.size() - last.size());
  for (size_t i = 1; i + 1 < pattern_pieces_.size(); ++i) {
    const size_t found = middle.find(pattern_pieces_[i]);
    if (found == absl::string_view::npos) return false;
    middle.remove_prefix(found + pattern_pieces_[i].size());
  }
  return true;
}

std::vector<std::string> ChoiceRule::Paths() const {
  std::vector<std::string> paths;
  CollectPaths(&paths);
  return paths;
}

void ChoiceRule::CollectPaths(std::vector<std::string>* out) const {
  if (kind_ != Kind::kDataTest) {
    for (const auto& child : children_) child->CollectPaths(out);
    return;
  }
  out->push_back(variable_);
  if (has_operand_path_) out->push_back(operand_path_);
}

}  // namespace stepflow::asl
