// Choice Rules of a Choice state (JSONPath query language), parsed once when
// a definition loads and evaluated against each state input.
//
//   std::vector<ChoiceDiagnostic> diagnostics;
//   std::unique_ptr<ChoiceRule> rule = ChoiceRule::Parse(
//       choices[0], /*top_level=*/true, "/States/Route/Choices/0",
//       &diagnostics);
//   if (rule == nullptr) ...                   // diagnostics say why
//   absl::StatusOr<bool> taken = rule->Evaluate(resolver);
//   if (!taken.ok()) ...                       // "States.Runtime: <cause>"
//   if (*taken) next_state = rule->next();
//
// Semantics follow AWS Step Functions (ASL specification "Choice Rules",
// AWS "Choice workflow state"):
// - A data-test rule is a "Variable" path and exactly one operator: StringX,
//   StringMatches, NumericX, BooleanEquals, TimestampX (X = Equals, LessThan,
//   GreaterThan, LessThanEquals, GreaterThanEquals), each but StringMatches
//   also as XPath whose value is a path to compare with; IsNull, IsPresent,
//   IsNumeric, IsString, IsBoolean, IsTimestamp. And/Or (non-empty arrays,
//   short-circuit in order) and Not (one rule) combine rules.
// - When the two values are not both of the operator's type the rule is
//   false, not an error: StringEquals against a number, NumericEquals against
//   "1", a Timestamp operator against a string that is not a timestamp, or an
//   XPath whose path selects a value of another type.
// - When the Variable path (or an XPath operand path) selects nothing, the
//   rule fails with States.Runtime and the cause AWS reports (seen in AWS
//   execution histories): "Invalid path '$.x': The choice state's condition
//   path references an invalid value." The interpreter adds AWS's prefix
//   "An error occurred while executing the state '<name>' (entered at the
//   event id #<n>). ". IsPresent is the exception: it never fails for a
//   missing Variable. AWS's text for a missing *operand* path is not
//   confirmed; the same sentence naming that path is used.
// - String operators compare the way AWS documents, by Java's
//   String.compareTo: lexicographically by UTF-16 code unit, so a character
//   outside the BMP (a surrogate pair, 0xD800...) sorts before U+E000..U+FFFF.
//   No case folding or Unicode normalization.
// - Numeric operators compare exactly (as 64-bit-mantissa long doubles, so
//   every JSON integer and double is represented exactly); 1 == 1.0. AWS only
//   promises IEEE binary64 behaviour, so integers beyond 2^53 may compare
//   differently there.
// - Timestamps: see timestamp.h. They compare as instants to the nanosecond;
//   "2024-01-01T01:00:00+01:00" equals "2024-01-01T00:00:00Z".
// - StringMatches: "*" matches any run of characters (including none) and
//   nothing else is special, except the backslash escape: "\\*" in JSON (the
//   text \*) is a literal star and "\\\\" (the text \\) a literal backslash.
//   A backslash before any other character stands for that character (AWS
//   behaviour not confirmed). A pattern ending in an open backslash parses,
//   and evaluating it fails with States.Runtime, as the ASL specification
//   says ("the interpreter will throw a runtime error"); that cause text is
//   ours.
//
// Every other runtime error of the resolver (anything but NOT_FOUND) is
// returned unchanged.
//
// A ChoiceRule is immutable after Parse and keeps no reference to the JSON it
// was parsed from; const methods may be called concurrently. Evaluate does no
// parsing, and no allocation unless it fails.
#ifndef STEPFLOW_COMMON_ASL_CHOICE_H_
#define STEPFLOW_COMMON_ASL_CHOICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/json/json.h"

namespace stepflow::asl {

// Resolves a path (e.g. "$.a", "$$.State.Name", "$var.x") against the state
// input / context object / variables. NOT_FOUND when it selects nothing.
using ChoicePathResolver =
    std::function<absl::StatusOr<const json::Value*>(absl::string_view path)>;

// One validation problem, in the shape of ValidateStateMachineDefinition.
// `location` is a JSON pointer under the location given to Parse, e.g.
// "/States/C/Choices/0/And/1".
struct ChoiceDiagnostic {
  std::string code;  // "SCHEMA_VALIDATION_FAILED" or "INVALID_JSON_PATH"
  std::string message;
  std::string location;
};

class ChoiceRule {
 public:
  // Parses one rule object. A top-level rule (an element of "Choices") must
  // have "Next" and may have "Assign" (left to the caller); a nested one (in
  // And/Or/Not) must have neither. "Comment" is allowed everywhere.
  //
  // Appends every problem found in the rule and its nested rules to
  // `*diagnostics` rather than stopping at the first, and returns nullptr iff
  // it appended any. Messages follow AWS's where known:
  //   SCHEMA_VALIDATION_FAILED
  //     "These fields are required: [Next]" / "[Variable]"
  //     "Field 'X' is not supported" (unknown operator or field; Next nested)
  //     "There should only be one of the following fields: [StringEquals, ...]"
  //       (a Variable rule with no operator or several)
  //     "The object must have only one of the following fields, [And, Or,
  //       Not, Variable, Condition]"
  //     "Value cannot be empty" (And/Or)
  //     "Expected value of type String|Number|Boolean|Object|Array"
  //     "String does not match RFC3339 timestamp" (Timestamp* literal)
  //   INVALID_JSON_PATH
  //     "The value for the field 'X' must be a valid JSONPath: <path>"
  //       (Variable and XPath values: "$", "$.a['b'][0]", "$$.Execution.Id",
  //       or a variable "$name.a"; checked with ReferencePath syntax)
  static std::unique_ptr<ChoiceRule> Parse(
      const json::Value& rule, bool top_level, const std::string& location,
      std::vector<ChoiceDiagnostic>* diagnostics);

  ~ChoiceRule();
  ChoiceRule(const ChoiceRule&) = delete;
  ChoiceRule& operator=(const ChoiceRule&) = delete;

  // Whether the rule matches. Errors are INVALID_ARGUMENT with the message
  // "States.Runtime: <cause>", or the resolver's own non-NOT_FOUND status.
  [[nodiscard]] absl::StatusOr<bool> Evaluate(
      const ChoicePathResolver& resolve) const;

  // The state to go to when a top-level rule matches; empty for nested rules.
  const std::string& next() const { return next_; }

  // Every path this rule and its nested rules read (Variable and XPath
  // values), in document order, for the definition validator.
  std::vector<std::string> Paths() const;

 private:
  enum class Kind : uint8_t;
  enum class Family : uint8_t;
  enum class Relation : uint8_t;
  struct OperatorSpec;

  // Every comparison operator, in the order AWS lists them.
  static const std::vector<OperatorSpec>& Operators();

  ChoiceRule();
  absl::StatusOr<bool> EvaluateDataTest(
      const ChoicePathResolver& resolve) const;
  bool MatchesPattern(absl::string_view subject) const;
  void CollectPaths(std::vector<std::string>* out) const;

  Kind kind_;
  std::vector<std::unique_ptr<ChoiceRule>> children_;  // And, Or, Not
  std::string next_;

  // Data-test rules.
  std::string variable_;
  Family family_;
  Relation relation_;
  bool has_operand_path_ = false;
  std::string operand_path_;
  // The pre-parsed literal operand; which member is set depends on family_.
  std::string string_;
  long double number_ = 0;
  bool boolean_ = false;
  absl::Time time_;
  std::vector<std::string> pattern_pieces_;  // StringMatches text around '*'
  bool pattern_open_escape_ = false;
};

}  // namespace stepflow::asl

#endif  // STEPFLOW_COMMON_ASL_CHOICE_H_
