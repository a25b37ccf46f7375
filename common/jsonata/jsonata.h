// JSONata 2.0.6 expressions, as Step Functions evaluates them in `{% ... %}`
// strings of states with "QueryLanguage": "JSONata".
//
// An Expression is compiled once and evaluated many times. Evaluation reads
// the input document in place (nothing is copied until it becomes part of the
// result) and gets time, randomness and ids from the caller's Environment, so
// it is deterministic.
//
//   absl::StatusOr<std::unique_ptr<jsonata::Expression>> expr =
//       jsonata::Expression::Compile("$sum(Account.Order.Price)");
//   if (!expr.ok()) return expr.status();   // "S0202: Expected ..."
//   json::Document out;
//   jsonata::Environment env{.now = clock->Now()};
//   absl::StatusOr<jsonata::Result> r =
//       (*expr)->Evaluate(&input, {}, env, &out.GetAllocator());
//
// Errors carry JSONata's codes and messages: an absl::Status whose message is
// "<code>: <message>" (INVALID_ARGUMENT), and the structured EvalError via
// ParseError(status) or the `error` out-parameter of Evaluate.
//
// Besides the JSONata library, the Step Functions additions are provided:
// $partition, $range, $hash, $random([seed]), $uuid and $parse. $eval is not.
#ifndef STEPFLOW_COMMON_JSONATA_JSONATA_H_
#define STEPFLOW_COMMON_JSONATA_JSONATA_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/json/json.h"

namespace stepflow::jsonata {

// A JSONata error: `code` such as "T2001", `message` in JSONata's wording,
// `position` the byte offset in the expression text (or -1), `token` the
// operator or function name involved (may be empty).
struct EvalError {
  std::string code;
  std::string message;
  int64_t position = -1;
  std::string token;
};

// What evaluation may observe of the outside world. Unset `random` makes
// $random() return 0 (and $shuffle keep order); unset `uuid` makes $uuid()
// return zeros. Evaluation uses about 1 KiB of C++ stack per depth level, so
// the default max_depth needs about 1 MiB of stack.
struct Environment {
  absl::Time now = absl::UnixEpoch();     // $now(), $millis()
  std::function<double()> random;         // $random() without seed, in [0,1)
  std::function<std::string()> uuid;      // $uuid()
  int max_depth = 1000;                   // evaluation depth; beyond: U1001
  int64_t max_steps = 1'000'000;          // evaluation steps; beyond: U1001
};

// The value of an expression. `defined` is false when the expression produced
// no value (JSONata's `undefined`); then `value` is null. Conversion follows
// JSON.stringify: a function result is undefined, functions inside objects are
// left out and inside arrays become null; a non-finite number is error D1001.
struct Result {
  bool defined = false;
  json::Value value;
  // The expression produced a function (so `defined` is false), which
  // Step Functions reports differently from no value.
  bool function = false;
};

// Variable bindings: name without '$' -> JSON value. The values must outlive
// the Evaluate call.
using Bindings = std::vector<std::pair<std::string, const json::Value*>>;

// The INVALID_ARGUMENT status "<code>: <message>" for `error`.
absl::Status ToStatus(const EvalError& error);

// The code and message of a status made by ToStatus (position and token are
// not carried by the status; use the `error` out-parameters for those).
EvalError ParseError(const absl::Status& status);

class Node;

// A compiled expression. Immutable after Compile; Evaluate may be called
// concurrently from several threads.
class Expression {
 public:
  // Parses `text`. Errors are S0xxx codes.
  static absl::StatusOr<std::unique_ptr<Expression>> Compile(
      absl::string_view text, EvalError* error = nullptr);

  ~Expression();
  Expression(const Expression&) = delete;
  Expression& operator=(const Expression&) = delete;

  // Evaluates against `input` (nullptr = no input). The result's strings and
  // containers are allocated with `allocator` (which must outlive the value).
  // On failure returns the status and, if `error` is set, fills it.
  absl::StatusOr<Result> Evaluate(const json::Value* input,
                                  const Bindings& bindings,
                                  const Environment& env,
                                  json::Allocator* allocator,
                                  EvalError* error = nullptr) const;

  // Names (without '$') of the variables the expression reads but does not
  // bind itself, sorted and unique: e.g. {"states", "total"} for
  // "$states.input.x + $total". Built-in function names are left out; ""
  // stands for `$` and "$" for `$$`.
  const std::vector<std::string>& Variables() const { return variables_; }

  const std::string& text() const { return text_; }

 private:
  Expression() = default;
  std::string text_;
  std::shared_ptr<const Node> root_;
  std::vector<std::string> variables_;
};

}  // namespace stepflow::jsonata

#endif  // STEPFLOW_COMMON_JSONATA_JSONATA_H_
