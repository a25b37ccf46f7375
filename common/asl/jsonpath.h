// JSONPath exactly as AWS Step Functions evaluates it in InputPath,
// OutputPath, ItemsPath, "key.$" Parameters values and Choice rules. Step
// Functions runs the Jayway JsonPath Java library; this is a port of its
// parser and evaluator (version 2.7.0, the one the json-path-comparison
// project reports), quirks included, so a definition behaves here as on AWS.
//
//   absl::StatusOr<JsonPath> path =
//       JsonPath::Parse("$.orders[?(@.total > 10)].id");
//   if (!path.ok()) return path.status();  // INVALID_ARGUMENT, with position
//   // Pointers into `input`:
//   std::vector<const json::Value*> ids = path->Select(input);
//   // Copies made with `allocator`:
//   absl::StatusOr<json::Value> value = path->Evaluate(input, allocator);
//
// Syntax: `$` (and `$$` for the context object, `$name` for a workflow
// variable), `.name`, `['name']` / `["name"]` (with `\` escapes), `[n]`,
// `[-n]`, `[*]` / `.*`, unions `[0,2]` / `['a','b']`, slices `[from:to]`,
// deep scan `..`, filters `[?(...)]` with `&&`, `||`, `!`, parentheses,
// `== != === !== < <= > >=`, `=~ /regex/flags`, `in`, `nin`, `contains`,
// `subsetof`, `anyof`, `noneof`, `size`, `empty`, and a function without
// arguments at the end of a path: `length()`, `size()`, `min()`, `max()`,
// `avg()`, `stddev()`, `sum()`, `keys()`, `concat()`, `append()`.
//
// Jayway behaviours kept on purpose (AWS shows them too):
//  - A slice's step is ignored; in `[from:to]` a negative `from` is neither
//    offset nor clamped, so `[-2:1]` on [a,b,c] is [b,c,a].
//  - A union of keys at the end of a path (`$['a','b']`) yields one object
//    holding the keys found, and is a single value.
//  - A filter applied to an object tests the object itself.
//  - `==` between a string and a number: a string on the left is compared
//    with the number's BigDecimal text (42.0 is "42.0", 010 is "10"); a
//    number on the left parses the string as a decimal. `<`, `>`... compare
//    only two numbers or two strings (in UTF-16 order).
//  - An existence test `[?(@.a.b)]` fails when any part is missing, and an
//    indefinite path (`@.a.*`) exists whenever it can be evaluated, even with
//    no match. `!@.a` negates only an existence test.
//  - A JSON literal on the left of `==` equals nothing; `all`, `matches` and
//    `type` never hold (their operand cannot be written in a filter string).
//  - A deep scan followed by an index, slice, wildcard or filter that an
//    array passes applies the segment after it to each element and records
//    the element's position, which a final name then has to match: so
//    `$..[1].key` is the key of each array's element 1, `$..[0].a.b` is
//    a.b of every element, and `$..*[?(...)]` may list a node twice.
//  - `$..x.fn()` is fn applied to the document with the matches of `$..x`
//    as extra input (so sum() also adds the numbers of a root array, and
//    length() counts the children of the matches).
//  - A single stray character after `]`, `*` or `)` at the end of a path is
//    ignored; `max()` starts from Double.MIN_VALUE (4.9E-324).
// Differences from Jayway:
//  - A path must begin with `$` (Jayway also accepts `@...` and bare
//    `key`), and `$name` is a variable (Jayway rejects it).
//  - Parse rejects an unknown function, function arguments, a function that
//    is not the last segment and an invalid JSON literal in a filter, which
//    Jayway notices while evaluating, if ever.
//  - Object members are visited in document order (Jayway's default
//    provider uses hash order); with duplicate keys the first one counts.
//  - The positions a deep scan records (above) start afresh for each
//    evaluation; Jayway keeps them in its cached compiled path.
//  - Regular expressions use Java's syntax and flags (d, i, m, s, x; u and U
//    are accepted, but case folding and \w, \d, \b stay ASCII) and match the
//    whole input like Matcher.matches(), on code points, in time linear in
//    the input. Parse rejects what needs backtracking (back-references,
//    look-around, atomic groups, possessive quantifiers), \p{...} beyond the
//    POSIX classes, and nested classes or && inside a class.
//  - stddev() rounds a variance below zero to zero, and an aggregation that
//    overflows fails, where Java gives NaN or Infinity.
//
// A JsonPath is immutable after Parse: const methods may be called
// concurrently, and copies share the parsed program.
#ifndef STEPFLOW_COMMON_ASL_JSONPATH_H_
#define STEPFLOW_COMMON_ASL_JSONPATH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json/json.h"

namespace stepflow::asl {

namespace jsonpath_internal {
struct Program;
}  // namespace jsonpath_internal

class JsonPath {
 public:
  // Parses `text` once; evaluation never re-parses. INVALID_ARGUMENT naming
  // the path and the byte position on syntax errors.
  [[nodiscard]] static absl::StatusOr<JsonPath> Parse(absl::string_view text);

  const std::string& text() const { return text_; }

  // Starts with "$$": evaluated against the context object.
  bool is_context() const { return kind_ == Kind::kContext; }
  // Starts with "$name" (a workflow variable); the rest of the path is
  // evaluated against the variable's value.
  bool is_variable() const { return kind_ == Kind::kVariable; }
  // The variable's name without "$"; empty unless is_variable().
  const std::string& variable_name() const { return variable_name_; }

  // A Reference Path in the ASL spec: only names and single indexes, so it
  // names at most one node (no wildcard, slice, union, filter, deep scan or
  // function).
  bool is_definite() const;

  // Evaluate() returns one value rather than an array of matches: Jayway's
  // "definite" paths, which are the reference paths plus paths ending in a
  // function or in a union of keys.
  bool is_single_value() const;

  // Every node the path selects, in Jayway's order, as pointers into `root`.
  // A union of keys at the end selects each key present, once; a path ending
  // in a function selects the nodes the function would be applied to (for
  // `$..x.fn()`, the matches of `$..x`). Empty when nothing matches or when
  // Evaluate() would fail. Allocation-free apart from the result for
  // reference paths.
  std::vector<const json::Value*> Select(const json::Value& root) const;

  // Step Functions' evaluation of a Path. A single-value path gives a copy of
  // its value, or NOT_FOUND ("No results for path: $['a']") when there is
  // none; any other path gives a JSON array of copies of the matches,
  // possibly empty. NOT_FOUND also when Jayway reports a missing node on a
  // definite prefix of an indefinite path (`$.missing[*]`, `$[1:3]` on an
  // object); INVALID_ARGUMENT when Jayway fails evaluating (a filter applied
  // to a primitive, an aggregation over no numbers).
  [[nodiscard]] absl::StatusOr<json::Value> Evaluate(
      const json::Value& root, json::Allocator& allocator) const;

  // AWS's rendering in error messages (Jayway's path string): "$.a.b[0]" is
  // "$['a']['b'][0]", a filter is "[?]", a deep scan "..".
  std::string Canonical() const;

 private:
  enum class Kind { kPlain, kContext, kVariable };

  JsonPath() = default;

  std::string text_;
  std::string variable_name_;
  Kind kind_ = Kind::kPlain;
  std::shared_ptr<const jsonpath_internal::Program> program_;
};

}  // namespace stepflow::asl

#endif  // STEPFLOW_COMMON_ASL_JSONPATH_H_
