// Intrinsic functions of the Amazon States Language (JSONPath states):
// `"key.$": "States.Format('Hello, {}', $.name)"`. An expression is parsed
// once when the definition loads and evaluated on every state input without
// re-parsing.
//
//   ASSIGN_OR_RETURN(IntrinsicCall call,
//                    IntrinsicCall::Parse("States.MathAdd($.count, 1)"));
//   for (const std::string& path : call.PathArguments()) Validate(path);
//   ...
//   absl::StatusOr<json::Value> v = call.Evaluate(resolver, random, alloc);
//
// Behaviour follows what AWS Step Functions does, including its quirks, not
// only what its documentation says:
//  - Every evaluation failure is a `States.Runtime` error whose cause reads
//    "The function '<expression as written>' had the following error: ..."
//    (the interpreter prefixes "An error occurred while executing the
//    state ..."). Wrong argument types, counts and limits read "Invalid
//    arguments in States.<Name>"; a path argument that selects nothing reads
//    "The JsonPath argument for the field '$.x' could not be found in the
//    input '<state input>'". AWS accepts a wrong argument count when the
//    state machine is created and fails at run time, so this does too.
//  - Syntax errors, unknown functions, nesting deeper than 10 calls and a
//    literal `true` as the deep-merge flag of States.JsonMerge are rejected
//    by Parse, as AWS rejects them when the state machine is created.
//  - States.Format (and States.ArrayContains, which compares the same text)
//    renders non-string values the way AWS's Java runtime prints them:
//    objects as {a=1, b=[x, y]}, doubles as Java's Double.toString.
//  - States.JsonMerge and States.ArrayUnique order their results the way a
//    java.util.HashMap / HashSet iterates, as AWS does.
//
// An IntrinsicCall is immutable after Parse: const methods may be called
// concurrently from any number of threads. Copies share the parsed tree.
#ifndef STEPFLOW_COMMON_ASL_INTRINSICS_H_
#define STEPFLOW_COMMON_ASL_INTRINSICS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json/json.h"

namespace stepflow::asl {

// Randomness comes from outside so the interpreter stays deterministic:
// States.UUID and the unseeded form of States.MathRandom draw from it.
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // A uniformly distributed 64-bit value.
  virtual uint64_t Next() = 0;
};

// Resolves a path argument ("$", "$.a", "$$.Execution.Id", "$myVar.x") to a
// copy of the selected value owned by `allocator`. Return NOT_FOUND when the
// path selects nothing: Evaluate turns it into AWS's "could not be found in
// the input" cause, quoting the value the resolver returns for "$". Any other
// error is returned from Evaluate unchanged.
using PathResolver = std::function<absl::StatusOr<json::Value>(
    absl::string_view path, json::Allocator& allocator)>;

namespace internal {
struct IntrinsicNode;
}  // namespace internal

class IntrinsicCall {
 public:
  // Parses a whole expression such as "States.Format('Hi {}', $.name)".
  // Arguments: string literals in single quotes with the escapes \' \{ \} \\,
  // numbers (integer, decimal, exponent, negative), true, false, null, paths
  // and nested calls. INVALID_ARGUMENT names the expression, the position and
  // the reason for syntax errors, unknown functions and over-deep nesting.
  [[nodiscard]] static absl::StatusOr<IntrinsicCall> Parse(
      absl::string_view text);

  // Whether `text` is meant as an intrinsic call (starts with "States.").
  static bool LooksLikeCall(absl::string_view text);

  // Evaluates the call into `allocator`. A failure's message is
  // "States.Runtime: <cause>" (see the overview), except that resolver errors
  // other than NOT_FOUND pass through unchanged.
  [[nodiscard]] absl::StatusOr<json::Value> Evaluate(
      const PathResolver& resolve, RandomSource& random,
      json::Allocator& allocator) const;

  // The expression exactly as written.
  const std::string& text() const { return text_; }

  // Every path argument, nested calls included, in the order written.
  std::vector<std::string> PathArguments() const;

 private:
  IntrinsicCall(std::string text,
                std::shared_ptr<const internal::IntrinsicNode> root);

  std::string text_;
  std::shared_ptr<const internal::IntrinsicNode> root_;
};

}  // namespace stepflow::asl

#endif  // STEPFLOW_COMMON_ASL_INTRINSICS_H_
