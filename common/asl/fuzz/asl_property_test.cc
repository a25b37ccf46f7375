// Property test: the ASL parser and interpreter never crash, hang or break
// their history invariants, whatever definition, input and task outcomes
// they are given.
//
// For a bounded time (STEPFLOW_FUZZ_SECONDS, default 20) it generates, from
// one seed (STEPFLOW_FUZZ_SEED: fixed by default, "random" for a new one;
// printed with every failure so a run can be replayed):
//  (a) structurally plausible definitions: random trees of every state type
//      with random paths, Parameters templates with ".$" keys and intrinsic
//      calls, Retry/Catch, Choice rules with random operators, Assign
//      blocks, and transitions that sometimes dangle or loop;
//  (b) mutated definition text: byte flips, truncation, splices, numbers
//      too large for a double, odd Unicode, and nesting thousands deep;
//  (c) random JSON inputs.
// Every text goes through ValidateDefinition and Definition::Parse (which
// must agree); every valid definition is run by the execution driver
// (execution_driver.h) with random task outcomes and a virtual clock, up to
// 2000 events or 500 external events. A watchdog prints the case at hand
// when the process crashes, and aborts with it when one case runs for more
// than STEPFLOW_FUZZ_CASE_SECONDS (default 30), so a crash or a hang comes
// with its reproducer. Definitions that could loop without ever waiting run
// only now and then: such a loop ends at the 25,000-event history limit,
// which takes a while (see ImmediateLoopEndsTheExecution).
//
//   STEPFLOW_FUZZ_SEED=random STEPFLOW_FUZZ_SECONDS=300 ./asl_property_test
//
// STEPFLOW_FUZZ_CASES=N runs exactly N cases instead and prints a digest of
// all their histories: a change meant to leave every history as it was
// (an optimization) must leave the digest of a fixed seed as it was too.
//
// It is most useful under AddressSanitizer, which also catches leaks
// (configure a separate build directory with
// -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined"); cases then run on a
// larger stack to make up for ASan's larger frames.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/asl/definition.h"
#include "common/asl/fuzz/execution_driver.h"
#include "common/json/json.h"
#include "gtest/gtest.h"

#if defined(__SANITIZE_ADDRESS__)
#define STEPFLOW_FUZZ_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STEPFLOW_FUZZ_SANITIZED 1
#endif
#endif
#ifndef STEPFLOW_FUZZ_SANITIZED
#define STEPFLOW_FUZZ_SANITIZED 0
#endif
#if STEPFLOW_FUZZ_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

namespace stepflow::asl::fuzz {
namespace {

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* text = std::getenv(name);
  int64_t value = 0;
  if (text == nullptr || !absl::SimpleAtoi(text, &value)) return fallback;
  return value;
}

// --- Randomness helpers -----------------------------------------------------

class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  std::mt19937_64& engine() { return rng_; }
  bool P(double p) {
    return std::uniform_real_distribution<double>(0, 1)(rng_) < p;
  }
  int R(int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng_);
  }
  template <typename T>
  const T& OneOf(const std::vector<T>& items) {
    return items[static_cast<size_t>(R(0, static_cast<int>(items.size()) - 1))];
  }

 private:
  std::mt19937_64 rng_;
};

constexpr char kActivityArn[] =
    "arn:aws:states:us-east-1:123456789012:activity:work";

// --- (a) Generated definitions -----------------------------------------------

// Builds one random definition per call. Not thread-safe.
class DefinitionGenerator {
 public:
  explicit DefinitionGenerator(Random& random) : r_(random) {}

  std::string Generate() {
    json::Document doc;
    a_ = &doc.GetAllocator();
    all_names_.clear();
    json::Value root = Machine(0);
    if (r_.P(0.1))
      Add(root, "TimeoutSeconds",
          Flaw() ? Int(r_.R(-1, 0)) : Int(r_.R(1, 600)));
    if (r_.P(0.05)) Add(root, "Comment", Str("generated"));
    if (r_.P(0.05)) Add(root, "Version", Str("1.0"));
    if (r_.P(0.02))
      Add(root, "QueryLanguage", Str(Flaw() ? "JSONata" : "JSONPath"));
    if (Flaw()) Add(root, "Unknown", Int(1));
    std::string text = json::Serialize(root);
    a_ = nullptr;
    return text;
  }

 private:
  // A deliberate mistake, rare enough that about half of the definitions
  // stay valid.
  bool Flaw() { return r_.P(0.004); }

  // Building blocks.
  json::Value Str(absl::string_view s) {
    return json::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()),
                       *a_);
  }
  json::Value Int(int64_t v) { return json::Value(static_cast<int64_t>(v)); }
  void Add(json::Value& object, absl::string_view key, json::Value value) {
    object.AddMember(Str(key), value, *a_);
  }
  json::Value RandomValue(int depth) {
    auto parsed = json::Parse(RandomJson(r_.engine(), depth));
    return parsed.ok() ? json::Copy(*parsed, *a_) : json::Value();
  }

  std::string NewName() {
    std::string name;
    if (Flaw() && !all_names_.empty()) {
      name = r_.OneOf(all_names_);  // duplicate across machines: invalid
    } else if (r_.P(0.01)) {
      name = r_.OneOf(std::vector<std::string>{
          "", std::string(81, 'n'), "\xC3\x9Cn\xC3\xAF \xF0\x9F\x98\x80",
          "with space", "$.looks.like.a.path", std::string("nul\0name", 8)});
      name += std::to_string(all_names_.size());
    } else {
      name = absl::StrCat("S", all_names_.size());
    }
    all_names_.push_back(name);
    return name;
  }

  std::string Path() {
    static const std::vector<std::string> kPaths = {"$",
                                                    "$.a",
                                                    "$.a[0]",
                                                    "$.b.c",
                                                    "$.n",
                                                    "$.s",
                                                    "$.t",
                                                    "$.items",
                                                    "$.items[1]",
                                                    "$.x",
                                                    "$['a b']",
                                                    "$$.Execution.Id",
                                                    "$$.Execution.Input",
                                                    "$$.Execution.Name",
                                                    "$$.Execution.StartTime",
                                                    "$$.State.Name",
                                                    "$$.State.RetryCount",
                                                    "$$.State.EnteredTime",
                                                    "$$.Map.Item.Value",
                                                    "$$.Map.Item.Index",
                                                    "$$.Task.Token",
                                                    "$$",
                                                    "$x",
                                                    "$x.a",
                                                    "$counter",
                                                    "$flag",
                                                    "$y[0]",
                                                    "$.r",
                                                    "$.err.Error"};
    static const std::vector<std::string> kOdd = {"",
                                                  "a",
                                                  "$.",
                                                  "$[",
                                                  "$.a[-1]",
                                                  "$..a",
                                                  "$.a.*",
                                                  "$.a[0:2]",
                                                  "$.a[?(@.b)]",
                                                  "$$$",
                                                  "$.\xC3\xA9",
                                                  "$['unterminated",
                                                  "$.a[99999999999999999999]",
                                                  "$ .a",
                                                  "$.a..b",
                                                  "$1x",
                                                  "$$.Nope",
                                                  "$.a[*]",
                                                  "$[0]",
                                                  "$['a']['b']",
                                                  "$.length()"};
    return Flaw() ? r_.OneOf(kOdd) : r_.OneOf(kPaths);
  }

  std::string VariableName() {
    static const std::vector<std::string> kNames = {"x", "counter", "flag",
                                                    "y"};
    static const std::vector<std::string> kOdd = {
        "1bad",   "with space", "", "\xC3\xBCn\xC3\xAF", std::string(81, 'v'),
        "States", "a.b"};
    return Flaw() ? r_.OneOf(kOdd) : r_.OneOf(kNames);
  }

  // --- Intrinsic functions ---

  std::string Number() {
    static const std::vector<std::string> kNumbers = {"0",
                                                      "1",
                                                      "-1",
                                                      "2",
                                                      "3",
                                                      "10",
                                                      "2.5",
                                                      "-0.5",
                                                      "1e308",
                                                      "-1e308",
                                                      "99999999999999999999",
                                                      "9007199254740993",
                                                      "1e-320"};
    return r_.OneOf(kNumbers);
  }
  std::string StringLiteral() {
    static const std::vector<std::string> kStrings = {"'abc'",
                                                      "''",
                                                      "'a,b,c'",
                                                      "'{}'",
                                                      "'{\"a\":1}'",
                                                      "'it\\'s'",
                                                      "'brace \\{ \\}'",
                                                      "'YWJj'",
                                                      "'SHA-256'",
                                                      "'h\xC3\xA9llo'",
                                                      "'\\\\'",
                                                      "'//79'",
                                                      "'{} {}'",
                                                      "','",
                                                      "'\xF0\x9F\x98\x80'"};
    return r_.OneOf(kStrings);
  }
  std::string ArrayArg(int depth) {
    if (r_.P(0.6))
      return r_.OneOf(std::vector<std::string>{"$.items", "$.a", "$", "$y"});
    return depth < 3 ? Intrinsic(depth + 1, "States.Array") : "$.items";
  }
  std::string Arg(int depth) {
    switch (r_.R(0, 9)) {
      case 0:
      case 1:
      case 2:
        return Path();
      case 3:
      case 4:
        return Number();
      case 5:
      case 6:
        return StringLiteral();
      case 7:
        return r_.OneOf(std::vector<std::string>{"null", "true", "false"});
      default:
        return depth < 3 || r_.P(0.1) ? Intrinsic(depth + 1) : Path();
    }
  }
  std::string Args(int depth, int n) {
    std::vector<std::string> args;
    for (int i = 0; i < n; ++i) args.push_back(Arg(depth));
    return absl::StrJoin(args, ", ");
  }

  std::string Intrinsic(int depth, absl::string_view only = "") {
    static const std::vector<std::string> kFunctions = {
        "States.Format",         "States.StringToJson",
        "States.JsonToString",   "States.Array",
        "States.ArrayPartition", "States.ArrayContains",
        "States.ArrayRange",     "States.ArrayGetItem",
        "States.ArrayLength",    "States.ArrayUnique",
        "States.Base64Encode",   "States.Base64Decode",
        "States.Hash",           "States.JsonMerge",
        "States.MathRandom",     "States.MathAdd",
        "States.StringSplit",    "States.UUID",
        "States.Nope",           "syntax"};
    std::string f = only.empty() ? r_.OneOf(kFunctions) : std::string(only);
    if ((f == "States.Nope" || f == "syntax") && r_.P(0.7)) f = "States.Array";
    const bool typed = r_.P(0.75);  // arguments of the right types and count
    auto call = [&](absl::string_view args) {
      return absl::StrCat(f, "(", args, ")");
    };
    if (f == "States.Format") {
      const int n = r_.R(0, 3);
      std::string format = "'";
      for (int i = 0; i < n; ++i) absl::StrAppend(&format, "v", i, "={} ");
      format += "'";
      return call(absl::StrCat(format, n > 0 ? ", " : "",
                               Args(depth, typed ? n : r_.R(0, 4))));
    }
    if (f == "States.StringToJson") {
      return call(
          typed ? r_.OneOf(std::vector<std::string>{
                      "'{\"a\":[1,2]}'", "$.s", "'1'", "'nope'", "'\"str\"'"})
                : Args(depth, r_.R(0, 2)));
    }
    if (f == "States.JsonToString" || f == "States.ArrayLength" ||
        f == "States.ArrayUnique") {
      return call(typed ? ArrayArg(depth) : Args(depth, r_.R(0, 2)));
    }
    if (f == "States.Array") return call(Args(depth, r_.R(0, 3)));
    if (f == "States.ArrayPartition") {
      return call(typed ? absl::StrCat(ArrayArg(depth), ", ",
                                       r_.OneOf(std::vector<std::string>{
                                           "1", "2", "3", "0", "-1", "$.n"}))
                        : Args(depth, r_.R(0, 3)));
    }
    if (f == "States.ArrayContains") {
      return call(typed ? absl::StrCat(ArrayArg(depth), ", ", Arg(depth))
                        : Args(depth, 2));
    }
    if (f == "States.ArrayRange") {
      if (!typed) return call(Args(depth, r_.R(0, 4)));
      if (r_.P(0.05)) return call("1, 100000, 1");  // over the 1000-item limit
      return call(absl::StrCat(
          r_.R(-3, 5), ", ", r_.R(-3, 20), ", ",
          r_.OneOf(std::vector<std::string>{"1", "2", "-1", "0", "0.5"})));
    }
    if (f == "States.ArrayGetItem") {
      return call(typed ? absl::StrCat(ArrayArg(depth), ", ",
                                       r_.OneOf(std::vector<std::string>{
                                           "0", "1", "5", "-1", "$.n", "1.5"}))
                        : Args(depth, r_.R(0, 3)));
    }
    if (f == "States.Base64Encode" || f == "States.Base64Decode") {
      return call(typed ? r_.OneOf(std::vector<std::string>{
                              StringLiteral(), "$.s", "'//79'", "'=='", "'!!'"})
                        : Args(depth, r_.R(0, 2)));
    }
    if (f == "States.Hash") {
      return call(
          typed ? absl::StrCat(r_.P(0.5) ? StringLiteral() : Path(), ", ",
                               r_.OneOf(std::vector<std::string>{
                                   "'MD5'", "'SHA-1'", "'SHA-256'", "'SHA-384'",
                                   "'SHA-512'", "'sha-256'", "'CRC32'"}))
                : Args(depth, r_.R(0, 3)));
    }
    if (f == "States.JsonMerge") {
      return call(
          typed
              ? absl::StrCat(
                    r_.OneOf(std::vector<std::string>{"$.b", "$", "$x"}), ", ",
                    r_.OneOf(std::vector<std::string>{"$.b", "$.a", "$"}), ", ",
                    r_.P(0.9) ? "false" : "true")
              : Args(depth, r_.R(0, 4)));
    }
    if (f == "States.MathRandom") {
      return call(
          typed ? absl::StrCat(Number(), ", ", Number(), r_.P(0.3) ? ", 7" : "")
                : Args(depth, r_.R(0, 4)));
    }
    if (f == "States.MathAdd") {
      return call(typed ? absl::StrCat(r_.P(0.5) ? Number() : "$.n", ", ",
                                       r_.P(0.5) ? Number() : "$counter")
                        : Args(depth, r_.R(0, 3)));
    }
    if (f == "States.StringSplit") {
      return call(typed
                      ? absl::StrCat(r_.P(0.5) ? StringLiteral() : "$.s", ", ",
                                     r_.OneOf(std::vector<std::string>{
                                         "','", "''", "'b'", "' '"}))
                      : Args(depth, r_.R(0, 3)));
    }
    if (f == "States.UUID") return call(typed ? "" : Args(depth, 1));
    if (f == "States.Nope") return call(Args(depth, 1));
    // Syntax the intrinsic parser must reject (or survive).
    return r_.OneOf(std::vector<std::string>{
        "States.Format('x'", "States.Array(1,,2)", "States.Array(", "States.",
        "States.Format)", "States.Array('unterminated)", "States.MathAdd(1 2)",
        "States.Array(((",
        "States.Array(States.Array(States.Array(States.Array(States.Array("
        "States.Array("
        "States.Array(States.Array(States.Array(States.Array(States.Array(1))))"
        ")))))))",
        "States.Format('\\", "States.Array($.a[)",
        "States.Format('{}', States.UUID() )"});
  }

  // --- Templates, Assign, Retry, Catch ---

  json::Value Template(int depth) {
    json::Value object(rapidjson::kObjectType);
    static const std::vector<std::string> kKeys = {"a",   "b", "p", "q",
                                                   "tok", "v", "i", "n"};
    const int n = r_.R(0, 4);
    for (int i = 0; i < n; ++i) {
      std::string key = r_.OneOf(kKeys);
      switch (r_.R(0, 9)) {
        case 0:
        case 1:
        case 2:
          Add(object, key + ".$", Str(Path()));
          break;
        case 3:
        case 4:
          Add(object, key + ".$", Str(Intrinsic(0)));
          break;
        case 5:
        case 6:
          if (depth < 2) {
            Add(object, key, Template(depth + 1));
            break;
          }
          [[fallthrough]];
        case 7: {
          json::Value list(rapidjson::kArrayType);
          list.PushBack(RandomValue(1), *a_);
          if (depth < 2) list.PushBack(Template(depth + 1), *a_);
          Add(object, key, std::move(list));
          break;
        }
        case 8:
          if (Flaw()) {
            Add(object, key + ".$", Int(5));  // not a string: invalid
            break;
          }
          [[fallthrough]];
        default:
          Add(object, key, RandomValue(2));
      }
    }
    return object;
  }

  json::Value Assign() {
    json::Value object(rapidjson::kObjectType);
    const int n = r_.R(1, 3);
    for (int i = 0; i < n; ++i) {
      const std::string name = VariableName();
      switch (r_.R(0, 3)) {
        case 0:
          Add(object, name, RandomValue(2));
          break;
        case 1:
          Add(object, name + ".$", Str(Path()));
          break;
        case 2:
          Add(object, name + ".$",
              Str(r_.P(0.5) ? "States.MathAdd($counter, 1)" : Intrinsic(0)));
          break;
        default:
          Add(object, name, Template(1));
      }
    }
    return object;
  }

  std::string ErrorName() {
    static const std::vector<std::string> kErrors = {"States.ALL",
                                                     "States.TaskFailed",
                                                     "States.Timeout",
                                                     "States.HeartbeatTimeout",
                                                     "States.Runtime",
                                                     "States.NoChoiceMatched",
                                                     "States.DataLimitExceeded",
                                                     "Custom.Error",
                                                     "Boom",
                                                     "",
                                                     "\xC3\x9Cn\xC3\xAF"};
    return r_.OneOf(kErrors);
  }
  json::Value ErrorEquals() {
    json::Value list(rapidjson::kArrayType);
    const int n = Flaw() ? 0 : r_.R(1, 2);
    for (int i = 0; i < n; ++i) {
      std::string name = ErrorName();
      if (name == "States.ALL" && n > 1 && !Flaw())
        name = "Custom.Error";  // must be alone
      list.PushBack(Str(name), *a_);
    }
    return list;
  }

  json::Value Retry() {
    json::Value list(rapidjson::kArrayType);
    const int n = r_.R(1, 2);
    for (int i = 0; i < n; ++i) {
      json::Value retrier(rapidjson::kObjectType);
      Add(retrier, "ErrorEquals", ErrorEquals());
      if (r_.P(0.6)) {
        Add(retrier, "IntervalSeconds",
            r_.P(0.95) ? Int(r_.R(1, 3)) : Int(Flaw() ? 0 : 99999999));
      }
      if (r_.P(0.6)) {
        Add(retrier, "MaxAttempts",
            r_.P(0.95) ? Int(r_.R(0, 3)) : Int(Flaw() ? -1 : 99999999));
      }
      if (r_.P(0.4)) {
        Add(retrier, "BackoffRate",
            json::Value(Flaw() ? 0.5
                               : r_.OneOf(std::vector<double>{
                                     1.0, 1.5, 2.0, 3.0, 1e308, 1e10})));
      }
      if (r_.P(0.15))
        Add(retrier, "MaxDelaySeconds", Int(Flaw() ? 0 : r_.R(1, 10)));
      if (r_.P(0.15))
        Add(retrier, "JitterStrategy", Str(r_.P(0.7) ? "FULL" : "NONE"));
      if (Flaw()) Add(retrier, "Bogus", Int(1));
      list.PushBack(retrier, *a_);
    }
    return list;
  }

  json::Value Catch(const std::vector<std::string>& names, size_t self) {
    json::Value list(rapidjson::kArrayType);
    const int n = r_.R(1, 2);
    for (int i = 0; i < n; ++i) {
      json::Value catcher(rapidjson::kObjectType);
      Add(catcher, "ErrorEquals", ErrorEquals());
      if (!Flaw()) Add(catcher, "Next", Str(Target(names, self)));
      if (r_.P(0.3)) Add(catcher, "ResultPath", ResultPath());
      if (r_.P(0.15)) Add(catcher, "Assign", Assign());
      list.PushBack(catcher, *a_);
    }
    return list;
  }

  json::Value ResultPath() {
    if (r_.P(0.1)) return json::Value();  // null: discard the result
    if (Flaw())
      return Str(r_.OneOf(std::vector<std::string>{"$$.x", "$x", "x"}));
    return Str(r_.OneOf(std::vector<std::string>{"$", "$.r", "$.a.b", "$.err",
                                                 "$.a[0]", "$.n"}));
  }

  // --- JSONata states ---

  // A `{% %}` expression over the input, the variables or the context;
  // some fail to evaluate (undefined, type errors), rarely to compile.
  json::Value Expression() {
    static const std::vector<std::string> kExpressions = {
        "$states.input",        "$states.input.a",      "$states.input.n + 1",
        "$count($states.input.items)", "$states.context.State.Name",
        "$y",                   "$x.k",                 "$states.input.s & 'x'",
        "$states.input.items[0]", "{'k': $states.input.a}", "[1, 2, 3]",
        "$undefinedVariable",   "$states.input.s + 1",  "$now()",
        "$uuid()",              "$random()"};
    if (Flaw()) return Str("{% 1 + %}");
    return Str("{% " + r_.OneOf(kExpressions) + " %}");
  }

  // A JSONata template: literals with expressions inside.
  json::Value JsonataTemplate() {
    if (r_.P(0.4)) return Expression();
    json::Value object(rapidjson::kObjectType);
    const int n = r_.R(1, 3);
    for (int i = 0; i < n; ++i) {
      Add(object, r_.OneOf(std::vector<std::string>{"a", "b", "x", "y", "k"}),
          r_.P(0.7) ? Expression() : RandomValue(1));
    }
    return object;
  }

  json::Value JsonataAssign() {
    json::Value assign(rapidjson::kObjectType);
    Add(assign, r_.OneOf(std::vector<std::string>{"x", "y", "z"}), JsonataTemplate());
    return assign;
  }

  // A state with "QueryLanguage": "JSONata" (rarely with a JSONPath field,
  // which is invalid).
  json::Value JsonataState(const std::string& type, const std::vector<std::string>& names,
                           size_t self, int depth) {
    json::Value state(rapidjson::kObjectType);
    Add(state, "Type", Str(type));
    Add(state, "QueryLanguage", Str("JSONata"));
    if (Flaw()) Add(state, "InputPath", Str("$"));
    if (type != "Fail" && r_.P(0.4)) Add(state, "Output", JsonataTemplate());
    if (type != "Succeed" && type != "Fail" && r_.P(0.3)) Add(state, "Assign", JsonataAssign());
    if (type == "Task" || type == "Map") {
      if (r_.P(0.3)) Add(state, "Retry", Retry());
      if (r_.P(0.3)) {
        json::Value list(rapidjson::kArrayType);
        json::Value catcher(rapidjson::kObjectType);
        Add(catcher, "ErrorEquals", ErrorEquals());
        Add(catcher, "Next", Str(Target(names, self)));
        if (r_.P(0.4)) Add(catcher, "Output", Str("{% $states.errorOutput %}"));
        if (r_.P(0.2)) Add(catcher, "Assign", JsonataAssign());
        list.PushBack(catcher, *a_);
        Add(state, "Catch", std::move(list));
      }
    }
    if (type == "Pass" || type == "Succeed" || type == "Fail") {
      if (type == "Fail") {
        if (r_.P(0.6)) Add(state, "Error", r_.P(0.5) ? Str(ErrorName()) : Expression());
        if (r_.P(0.4)) Add(state, "Cause", r_.P(0.5) ? Str("because") : Expression());
      }
      if (type == "Pass") Transition(state, names, self);
    } else if (type == "Task") {
      Add(state, "Resource", Str(kActivityArn));
      if (r_.P(0.5)) Add(state, "Arguments", JsonataTemplate());
      if (r_.P(0.2)) {
        Add(state, "TimeoutSeconds",
            r_.P(0.5) ? Int(r_.R(2, 300)) : Str("{% $states.input.n + 5 %}"));
      }
      Transition(state, names, self);
    } else if (type == "Choice") {
      json::Value choices(rapidjson::kArrayType);
      const int n = r_.R(1, 2);
      for (int i = 0; i < n; ++i) {
        json::Value rule(rapidjson::kObjectType);
        Add(rule, "Condition",
            r_.P(0.2) ? json::Value(r_.P(0.5))
                      : Str(r_.OneOf(std::vector<std::string>{
                            "{% $states.input.n > 1 %}", "{% $exists($states.input.a) %}",
                            "{% $states.input.n %}", "{% $y = 1 %}"})));
        Add(rule, "Next", Str(Target(names, self)));
        if (r_.P(0.2)) Add(rule, "Assign", JsonataAssign());
        if (r_.P(0.2)) Add(rule, "Output", JsonataTemplate());
        choices.PushBack(rule, *a_);
      }
      Add(state, "Choices", std::move(choices));
      if (r_.P(0.9)) {
        Add(state, "Default", Str(self + 1 < names.size() ? names[self + 1] : Target(names, self)));
      }
    } else if (type == "Wait") {
      if (r_.P(0.5)) {
        Add(state, "Seconds", r_.P(0.5) ? Int(r_.R(0, 5)) : Str("{% $states.input.n %}"));
      } else {
        Add(state, "Timestamp", r_.P(0.5) ? Str("2023-11-14T22:15:00Z") : Str("{% $states.input.t %}"));
      }
      Transition(state, names, self);
    } else if (type == "Map") {
      if (r_.P(0.7)) {
        Add(state, "Items",
            Str(r_.OneOf(std::vector<std::string>{"{% $states.input.items %}",
                                                  "{% $states.input.a %}", "{% [1, 2] %}"})));
      }
      if (r_.P(0.3)) {
        json::Value selector(rapidjson::kObjectType);
        Add(selector, "v", Str("{% $states.context.Map.Item.Value %}"));
        Add(selector, "i", Str("{% $states.context.Map.Item.Index %}"));
        Add(state, "ItemSelector", std::move(selector));
      }
      if (r_.P(0.2)) Add(state, "MaxConcurrency", Str("{% 1 %}"));
      Add(state, "ItemProcessor", Machine(depth + 1));
      Transition(state, names, self);
    }
    return state;
  }

  // --- Transitions ---

  // A transition target: mostly forward, sometimes a loop, rarely dangling.
  std::string Target(const std::vector<std::string>& names, size_t self) {
    const double roll =
        std::uniform_real_distribution<double>(0, 1)(r_.engine());
    if (roll < 0.005) return "Nowhere";
    if (roll < 0.94 && self + 1 < names.size()) return names[self + 1];
    return names[static_cast<size_t>(
        r_.R(0, static_cast<int>(names.size()) - 1))];
  }

  void Transition(json::Value& state, const std::vector<std::string>& names,
                  size_t self) {
    const bool last = self + 1 == names.size();
    const double roll =
        std::uniform_real_distribution<double>(0, 1)(r_.engine());
    if (roll < 0.004) return;  // neither Next nor End
    if (roll < 0.008) {
      Add(state, "Next", Str(Target(names, self)));
      Add(state, "End", json::Value(true));
      return;
    }
    if (last ? roll < 0.97 : roll < 0.015) {
      Add(state, "End", json::Value(!Flaw()));
      return;
    }
    Add(state, "Next", Str(Target(names, self)));
  }

  // --- Choice rules ---

  json::Value Rule(int depth, bool top, const std::vector<std::string>& names,
                   size_t self) {
    json::Value rule(rapidjson::kObjectType);
    const int kind = depth < 3 ? r_.R(0, 9) : 9;
    if (kind < 2) {
      json::Value list(rapidjson::kArrayType);
      const int n = Flaw() ? 0 : r_.R(1, 3);
      for (int i = 0; i < n; ++i)
        list.PushBack(Rule(depth + 1, false, names, self), *a_);
      Add(rule, kind == 0 ? "And" : "Or", std::move(list));
    } else if (kind == 2) {
      Add(rule, "Not", Rule(depth + 1, false, names, self));
    } else {
      DataTest(rule);
    }
    if (top) {
      if (!Flaw()) Add(rule, "Next", Str(Target(names, self)));
      if (r_.P(0.1)) Add(rule, "Assign", Assign());
    }
    if (Flaw()) Add(rule, "Bogus", Int(1));
    return rule;
  }

  void DataTest(json::Value& rule) {
    struct Op {
      const char* name;
      char operand;  // s string, n number, b boolean, t timestamp, p path, m
                     // pattern, i is-type
    };
    static const std::vector<Op> kOps = {{"StringEquals", 's'},
                                         {"StringEqualsPath", 'p'},
                                         {"StringLessThan", 's'},
                                         {"StringGreaterThanEquals", 's'},
                                         {"StringLessThanEqualsPath", 'p'},
                                         {"StringMatches", 'm'},
                                         {"NumericEquals", 'n'},
                                         {"NumericEqualsPath", 'p'},
                                         {"NumericLessThan", 'n'},
                                         {"NumericGreaterThan", 'n'},
                                         {"NumericGreaterThanEqualsPath", 'p'},
                                         {"NumericLessThanEquals", 'n'},
                                         {"BooleanEquals", 'b'},
                                         {"BooleanEqualsPath", 'p'},
                                         {"TimestampEquals", 't'},
                                         {"TimestampLessThan", 't'},
                                         {"TimestampGreaterThanPath", 'p'},
                                         {"TimestampGreaterThanEquals", 't'},
                                         {"IsNull", 'i'},
                                         {"IsPresent", 'i'},
                                         {"IsNumeric", 'i'},
                                         {"IsString", 'i'},
                                         {"IsBoolean", 'i'},
                                         {"IsTimestamp", 'i'}};
    if (!Flaw()) Add(rule, "Variable", Str(Path()));
    const int operators = Flaw() ? r_.R(0, 1) * 2 : 1;  // none or two: invalid
    for (int i = 0; i < operators; ++i) {
      Op op = r_.OneOf(kOps);
      if (Flaw()) op.name = "NoSuchOperator";
      char kind = op.operand;
      if (r_.P(0.02)) kind = "snbtpmi"[r_.R(0, 6)];  // often the wrong type
      json::Value operand;
      switch (kind) {
        case 's':
          operand = Str(r_.OneOf(std::vector<std::string>{
              "abc", "", "a", "z", "h\xC3\xA9llo", "2024-01-01T00:00:00Z"}));
          break;
        case 'n':
          operand = json::Value(
              r_.OneOf(std::vector<double>{0, 1, -1, 2.5, 1e308, 3, 10}));
          break;
        case 'b':
        case 'i':
          operand = json::Value(r_.P(0.5));
          break;
        case 't':
          operand = Str(r_.OneOf(std::vector<std::string>{
              "2024-01-01T00:00:00Z", "2023-11-14T22:13:20.123456789+01:00",
              "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
              Flaw() ? "2024-02-30T00:00:00Z" : "2024-02-29T00:00:00Z"}));
          break;
        case 'p':
          operand = Str(Path());
          break;
        default:
          operand = Str(r_.OneOf(std::vector<std::string>{
              "a*", "*", "**", "a\\*b", "\\\\*", "", "*\xC3\xA9*"}));
      }
      Add(rule, op.name, std::move(operand));
    }
  }

  // --- States ---

  json::Value State(const std::vector<std::string>& names, size_t self,
                    int depth) {
    const bool last = self + 1 == names.size();
    static const std::vector<std::string> kTypes = {
        "Pass",   "Pass",   "Pass", "Task",     "Task", "Task",
        "Choice", "Choice", "Wait", "Parallel", "Map"};
    std::string type;
    if (last && r_.P(0.45)) {
      type = r_.P(0.65) ? "Succeed" : "Fail";
    } else {
      type = r_.OneOf(kTypes);
      if (depth >= 3 && (type == "Parallel" || type == "Map")) type = "Pass";
      if (last && type == "Choice" && !Flaw())
        type = "Pass";  // the machine needs an end
      if (Flaw())
        type = r_.OneOf(std::vector<std::string>{"Succeed", "Fail", "Bogus"});
    }
    if (type != "Parallel" && type != "Bogus" && r_.P(0.1)) {
      return JsonataState(type, names, self, depth);
    }
    json::Value state(rapidjson::kObjectType);
    if (!Flaw()) Add(state, "Type", Str(type));
    if (r_.P(0.03)) Add(state, "Comment", Str("c"));
    const bool io = type != "Fail";
    if (io && r_.P(0.12))
      Add(state, "InputPath", r_.P(0.9) ? Str(Path()) : json::Value());
    if (io && r_.P(0.12))
      Add(state, "OutputPath", r_.P(0.9) ? Str(Path()) : json::Value());
    const bool processing =
        type == "Pass" || type == "Task" || type == "Parallel" || type == "Map";
    if (processing && r_.P(0.25)) Add(state, "ResultPath", ResultPath());
    // Map takes ItemSelector instead, below.
    if (processing && type != "Map" && r_.P(0.35)) {
      Add(state, "Parameters", Flaw() ? RandomValue(1) : Template(0));
    }
    if (type != "Succeed" && type != "Fail" && r_.P(0.2))
      Add(state, "Assign", Assign());
    const bool recovers = type == "Task" || type == "Parallel" || type == "Map";
    if (recovers && r_.P(0.2)) Add(state, "ResultSelector", Template(0));
    if (recovers && r_.P(0.3)) Add(state, "Retry", Retry());
    if (recovers && r_.P(0.3)) Add(state, "Catch", Catch(names, self));

    if (type == "Pass") {
      if (r_.P(0.3)) Add(state, "Result", RandomValue(3));
      Transition(state, names, self);
    } else if (type == "Task") {
      Add(state, "Resource",
          Str(!Flaw() ? kActivityArn
                      : r_.OneOf(std::vector<std::string>{
                            "arn:aws:lambda:us-east-1:1:function:f", "",
                            "arn:x:activity:"})));
      int timeout = 0;
      if (r_.P(0.3)) {
        timeout = Flaw() ? r_.R(-1, 0) : r_.R(2, 300);
        Add(state, "TimeoutSeconds", Int(timeout));
      } else if (r_.P(0.05)) {
        Add(state, "TimeoutSecondsPath", Str(r_.P(0.7) ? "$.n" : Path()));
      }
      if (r_.P(0.2)) {
        Add(state, "HeartbeatSeconds",
            Int(timeout > 1 && !Flaw() ? r_.R(1, timeout - 1) : r_.R(1, 60)));
      } else if (r_.P(0.03)) {
        Add(state, "HeartbeatSecondsPath", Str("$.n"));
      }
      Transition(state, names, self);
    } else if (type == "Choice") {
      json::Value choices(rapidjson::kArrayType);
      const int n = Flaw() ? 0 : r_.R(1, 3);
      for (int i = 0; i < n; ++i)
        choices.PushBack(Rule(0, true, names, self), *a_);
      Add(state, "Choices", std::move(choices));
      // Default to the next state, which would otherwise often be unreachable.
      if (r_.P(0.9)) {
        Add(state, "Default",
            Str(self + 1 < names.size() && !Flaw() ? names[self + 1]
                                                   : Target(names, self)));
      }
    } else if (type == "Wait") {
      switch (r_.R(0, 9)) {
        case 0:
        case 1:
        case 2:
        case 3:
          Add(state, "Seconds", Int(r_.R(0, 5)));
          break;
        case 4:
          Add(state, "Seconds",
              !Flaw() ? Int(99999999) : json::Value(r_.P(0.5) ? -1.0 : 1.5));
          break;
        case 5:
          Add(state, "SecondsPath", Str(r_.P(0.7) ? "$.n" : Path()));
          break;
        case 6:
        case 7:
          Add(state, "Timestamp",
              Str(r_.OneOf(std::vector<std::string>{
                  "2023-11-14T22:13:21Z", "2023-11-14T22:15:00.5+01:00",
                  "2030-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
                  "9999-12-31T23:59:59.999999999Z",
                  Flaw() ? "2023-13-01T00:00:00Z"
                         : "2023-11-14T22:13:20.000000001Z"})));
          break;
        case 8:
          Add(state, "TimestampPath", Str(r_.P(0.7) ? "$.t" : Path()));
          break;
        default:
          Add(state, "Seconds", Int(1));
          if (Flaw())
            Add(state, "SecondsPath", Str("$.n"));  // two of them: invalid
      }
      Transition(state, names, self);
    } else if (type == "Fail") {
      if (r_.P(0.7)) Add(state, "Error", Str(ErrorName()));
      if (r_.P(0.5)) Add(state, "Cause", Str("because"));
      if ((!state.HasMember("Error") || Flaw()) && r_.P(0.3)) {
        Add(state, "ErrorPath", Str(r_.P(0.5) ? "$.s" : Path()));
      }
      if ((!state.HasMember("Cause") || Flaw()) && r_.P(0.2))
        Add(state, "CausePath", Str(Path()));
    } else if (type == "Parallel") {
      json::Value branches(rapidjson::kArrayType);
      const int n = Flaw() ? 0 : r_.R(1, 3);
      for (int i = 0; i < n; ++i) branches.PushBack(Machine(depth + 1), *a_);
      Add(state, "Branches", std::move(branches));
      Transition(state, names, self);
    } else if (type == "Map") {
      if (r_.P(0.7)) {
        Add(state, "ItemsPath",
            Str(r_.OneOf(std::vector<std::string>{
                "$.items", "$.items", "$", "$.a", "$.n",
                "$$.Execution.Input.items", "$y"})));
      }
      json::Value processor = Machine(depth + 1);
      bool distributed = false;
      if (r_.P(0.7)) {
        json::Value config(rapidjson::kObjectType);
        distributed = r_.P(0.6);
        Add(config, "Mode", Str(Flaw() ? "BAD" : distributed ? "DISTRIBUTED" : "INLINE"));
        // ExecutionType is required in DISTRIBUTED mode, refused in INLINE.
        if (distributed != Flaw()) {
          Add(config, "ExecutionType", Str(Flaw() ? "FAST" : r_.P(0.5) ? "STANDARD" : "EXPRESS"));
        }
        Add(processor, "ProcessorConfig", std::move(config));
      }
      if (distributed || Flaw()) {
        if (r_.P(0.4)) {
          Add(state, r_.P(0.9) ? "ToleratedFailureCount" : "ToleratedFailureCountPath",
              r_.P(0.9) ? Int(r_.R(0, 2)) : Str("$.n"));
        }
        if (r_.P(0.3)) {
          if (r_.P(0.9)) {
            Add(state, "ToleratedFailurePercentage",
                Int(Flaw() ? 101 : r_.OneOf(std::vector<int>{0, 25, 50, 100})));
          } else {
            Add(state, "ToleratedFailurePercentagePath", Str("$.n"));
          }
        }
        if (r_.P(0.4)) {
          json::Value batcher(rapidjson::kObjectType);
          if (r_.P(0.6) || Flaw()) Add(batcher, "MaxItemsPerBatch", Int(Flaw() ? 0 : r_.R(1, 3)));
          if (r_.P(0.3)) Add(batcher, "MaxInputBytesPerBatch", Int(r_.R(8, 64)));
          if (batcher.ObjectEmpty() && !Flaw()) Add(batcher, "MaxItemsPerBatchPath", Str("$.n"));
          if (r_.P(0.3)) Add(batcher, "BatchInput", Template(1));
          Add(state, "ItemBatcher", std::move(batcher));
        }
        if (r_.P(0.05)) {
          json::Value reader(rapidjson::kObjectType);
          Add(reader, "Resource", Str("arn:aws:states:::s3:getObject"));
          Add(state, r_.P(0.5) ? "ItemReader" : "ResultWriter", std::move(reader));
        }
      }
      Add(state, r_.P(0.8) ? "ItemProcessor" : "Iterator",
          std::move(processor));
      if (Flaw()) Add(state, "Parameters", Template(1));
      if (r_.P(0.3)) {
        json::Value selector = Template(1);
        Add(selector, "v.$", Str("$$.Map.Item.Value"));
        Add(selector, "i.$", Str("$$.Map.Item.Index"));
        Add(state, "ItemSelector", std::move(selector));
      }
      if (r_.P(0.3)) Add(state, "MaxConcurrency", Int(r_.R(0, 3)));
      if (r_.P(0.04)) Add(state, "MaxConcurrencyPath", Str("$.n"));
      if (r_.P(0.03)) Add(state, "Label", Str(Flaw() ? "bad label" : "label"));
      Transition(state, names, self);
    }
    if (Flaw()) Add(state, "Bogus", Int(1));
    return state;
  }

  json::Value Machine(int depth) {
    const int n = r_.R(1, depth == 0 ? 7 : 4);
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) names.push_back(NewName());
    json::Value machine(rapidjson::kObjectType);
    if (!Flaw()) Add(machine, "StartAt", Str(Flaw() ? "Nowhere" : names[0]));
    json::Value states(rapidjson::kObjectType);
    for (size_t i = 0; i < names.size(); ++i)
      Add(states, names[i], State(names, i, depth));
    Add(machine, "States", std::move(states));
    return machine;
  }

  Random& r_;
  json::Allocator* a_ = nullptr;
  std::vector<std::string> all_names_;
};

// --- (b) Mutated and pathological text --------------------------------------

std::string Nested(int depth, absl::string_view open, absl::string_view inner,
                   absl::string_view close) {
  std::string text;
  text.reserve(depth * (open.size() + close.size()) + inner.size());
  for (int i = 0; i < depth; ++i) text.append(open.data(), open.size());
  text.append(inner.data(), inner.size());
  for (int i = 0; i < depth; ++i) text.append(close.data(), close.size());
  return text;
}

class Mutator {
 public:
  explicit Mutator(Random& random) : r_(random) {}

  std::string Mutate(std::string text) {
    const int n = r_.R(1, 6);
    for (int i = 0; i < n; ++i) MutateOnce(text);
    return text;
  }

 private:
  size_t Pos(const std::string& text) {
    return text.empty() ? 0
                        : static_cast<size_t>(
                              r_.R(0, static_cast<int>(text.size()) - 1));
  }

  void MutateOnce(std::string& text) {
    static const std::vector<std::string> kTokens = {
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\\",
        "\"Type\"",
        "\"Next\"",
        "\"End\"",
        "true",
        "null",
        "1e999",
        "-",
        "\\u0000",
        "\\ud800",
        "\\udc00\\ud800",
        "\xFF",
        "\xC0\x80",
        "\xED\xA0\x80",
        "\xF4\x90\x80\x80",
        "\xEF\xBB\xBF",
        std::string(1, '\0'),
        "\"$.a\"",
        "\"States.Format('{}', $)\"",
        "\"Parallel\"",
        "\"Map\"",
        "\"Choice\"",
        "\"$$\"",
        "\"\\u202e\"",
        "\xE2\x80\xA8",
        "{\"Type\":\"Pass\",\"End\":true}"};
    static const std::vector<std::string> kNumbers = {
        "123456789012345678901234567890",
        "1e308",
        "1.7976931348623157e309",
        "-1e-400",
        "18446744073709551616",
        "-9223372036854775809",
        "0.000000000000000000000000000001",
        "4.9e-324",
        "-0",
        "1E400",
        "99999999",
        "100000000"};
    if (text.empty()) {
      text = r_.OneOf(kTokens);
      return;
    }
    switch (r_.R(0, 10)) {
      case 0:
        text[Pos(text)] ^= static_cast<char>(1 << r_.R(0, 7));
        return;
      case 1:
        text[Pos(text)] = static_cast<char>(r_.R(0, 255));
        return;
      case 2:
        text.erase(Pos(text), static_cast<size_t>(r_.R(1, 16)));
        return;
      case 3:
        text.insert(Pos(text), r_.OneOf(kTokens));
        return;
      case 4:
        text.resize(Pos(text));
        return;
      case 5: {
        const size_t from = Pos(text);
        const std::string slice =
            text.substr(from, static_cast<size_t>(r_.R(1, 64)));
        text.insert(Pos(text), slice);
        return;
      }
      case 6: {  // a number no double or int64 holds
        size_t at = text.find_first_of("0123456789", Pos(text));
        if (at == std::string::npos) at = text.find_first_of("0123456789");
        if (at == std::string::npos) return;
        size_t end = text.find_first_not_of("0123456789.eE+-", at);
        if (end == std::string::npos) end = text.size();
        text.replace(at, end - at, r_.OneOf(kNumbers));
        return;
      }
      case 7: {  // odd Unicode inside a string
        size_t at = text.find('"', Pos(text));
        if (at == std::string::npos) return;
        text.insert(at + 1,
                    r_.OneOf(std::vector<std::string>{
                        "\\ud83d\\ude00", "\\ud800", "\\udfff",
                        "\xF0\x9F\x98\x80", "e\xCC\x81", "\xE2\x80\xAE",
                        "\\u0000", "\xEF\xBF\xBF", "\xF4\x8F\xBF\xBF", "\xC3",
                        "\\u00e9", "\xE0\xA4\xA8\xE0\xA4\xBF"}));
        return;
      }
      case 8: {  // a member nested thousands deep, after some '{'
        size_t at = text.find('{', Pos(text));
        if (at == std::string::npos) at = text.find('{');
        if (at == std::string::npos) return;
        const int depth = r_.P(0.5) ? r_.R(100, 500) : r_.R(1000, 4000);
        text.insert(at + 1,
                    absl::StrCat("\"deep\":",
                                 r_.P(0.5) ? Nested(depth, "[", "1", "]")
                                           : Nested(depth, "{\"a\":", "1", "}"),
                                 ","));
        return;
      }
      case 9: {
        std::swap(text[Pos(text)], text[Pos(text)]);
        return;
      }
      default: {  // a key renamed to another one that matters
        size_t at = text.find("\":", Pos(text));
        if (at == std::string::npos) return;
        size_t start = text.rfind('"', at - 1);
        if (start == std::string::npos) return;
        text.replace(
            start + 1, at - start - 1,
            r_.OneOf(std::vector<std::string>{
                "Next",     "End",       "Type",       "Default", "Choices",
                "Branches", "ItemsPath", "Parameters", "Result",  "Retry",
                "Catch",    "Assign",    "StartAt",    "States",  "Seconds",
                "Variable", "Not",       "And",        "x.$",     "ResultPath",
                "Iterator"}));
        return;
      }
    }
  }

  Random& r_;
};

// Valid definitions that nest (or chain) far deeper than people write them.
// Sets `*input` when the definition wants a particular input to get far.
std::string DeepDefinition(Random& r, std::string* input = nullptr) {
  switch (r.R(0, 6)) {
    case 0: {  // Parameters template thousands of levels deep
      const int depth = r.R(100, 3000);
      return absl::StrCat(
          R"({"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":)",
          Nested(depth, "{\"a\":",
                 "{\"v.$\":\"$\",\"f.$\":\"States.Format('{}', $)\"}", "}"),
          R"(,"End":true}}})");
    }
    case 1: {  // Not(Not(...)) in a Choice rule
      const int depth = r.R(100, 3000);
      return absl::StrCat(
          R"({"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[)",
          Nested(depth,
                 "{\"Not\":", "{\"Variable\":\"$.n\",\"IsPresent\":true}", "}"),
          R"(],"Default":"D"},"D":{"Type":"Succeed"}}})");
    }
    case 2: {  // And[And[...]] with a Next at the top
      const int depth = r.R(100, 2000);
      std::string rule = Nested(depth, "{\"And\":[",
                                "{\"Variable\":\"$\",\"IsNull\":false}", "]}");
      rule.insert(rule.size() - 1, ",\"Next\":\"D\"");
      return absl::StrCat(
          R"({"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[)", rule,
          R"(],"Default":"D"},"D":{"Type":"Succeed"}}})");
    }
    case 3: {  // Parallel inside Parallel inside ...
      const int levels = r.R(10, 700);
      std::string machine =
          R"({"StartAt":"L","States":{"L":{"Type":"Pass","End":true}}})";
      for (int i = 0; i < levels; ++i) {
        machine = absl::StrCat(
            R"({"StartAt":"P)", i, R"(","States":{"P)", i,
            R"(":{"Type":"Parallel","End":true,"Branches":[)", machine, "]}}}");
      }
      return machine;
    }
    case 4: {  // Map inside Map over nested arrays of the input
      const int levels = r.R(2, 60);
      if (input != nullptr) *input = Nested(levels - 1, "[", "[1,2]", "]");
      std::string machine =
          R"({"StartAt":"T","States":{"T":{"Type":"Task","Resource":")" +
          std::string(kActivityArn) + R"(","End":true}}})";
      for (int i = 0; i < levels; ++i) {
        machine = absl::StrCat(
            R"({"StartAt":"M)", i, R"(","States":{"M)", i,
            R"(":{"Type":"Map","ItemsPath":"$","End":true,"ItemProcessor":)",
            machine, "}}}");
      }
      return machine;
    }
    case 5: {  // a long chain of states
      const int n = r.R(100, 3000);
      std::string states;
      for (int i = 0; i < n; ++i) {
        absl::StrAppend(
            &states, i ? "," : "", "\"S", i, "\":{\"Type\":\"Pass\",",
            i + 1 < n ? absl::StrCat("\"Next\":\"S", i + 1, "\"")
                      : "\"End\":true",
            ",\"Assign\":{\"x.$\":\"States.MathAdd($.n, ", i, ")\"}}");
      }
      return absl::StrCat(R"({"StartAt":"S0","States":{)", states, "}}");
    }
    default: {  // a deep Result
      const int depth = r.R(100, 4000);
      return absl::StrCat(
          R"({"StartAt":"P","States":{"P":{"Type":"Pass","ResultPath":"$.r","Result":)",
          r.P(0.5) ? Nested(depth, "[", "null", "]")
                   : Nested(depth, "{\"k\":", "0", "}"),
          R"(,"End":true}}})");
    }
  }
}

// --- (c) Inputs
// ---------------------------------------------------------------

std::string Input(Random& r) {
  const int roll = r.R(0, 99);
  if (roll < 55) {  // shaped after the paths the generator uses
    return absl::StrCat(
        R"({"a":)", RandomJson(r.engine(), 2), R"(,"b":{"c":)",
        RandomJson(r.engine(), 1), R"(},"n":)",
        r.OneOf(std::vector<std::string>{"0", "1", "3", "-1", "2.5", "1e300",
                                         "9223372036854775807", "\"3\""}),
        R"(,"s":)",
        r.OneOf(std::vector<std::string>{"\"abc\"", "\"a,b\"", "\"\"",
                                         "\"{\\\"a\\\":1}\"", "\"YWJj\"", "7"}),
        R"(,"t":)",
        r.OneOf(std::vector<std::string>{"\"2023-11-14T22:13:25Z\"",
                                         "\"2030-01-01T00:00:00Z\"", "\"bad\"",
                                         "1"}),
        R"(,"items":)", r.P(0.8) ? RandomJson(r.engine(), 2) : "[1,2,3]", "}");
  }
  if (roll < 90) return RandomJson(r.engine(), 4);
  if (roll < 95) {
    return r.P(0.5) ? Nested(r.R(100, 3000), "[", "1", "]")
                    : Nested(r.R(100, 3000), "{\"a\":", "1", "}");
  }
  // Not JSON at all: the shard validates input first, but nothing may crash.
  return r.OneOf(
      std::vector<std::string>{"", "{", "not json", "{\"a\":1}x", "\xFF"});
}

// --- Watching over each case ------------------------------------------------

// The running case, for the fatal-signal handler: written before each case,
// read only while the process dies (best effort, hence no lock).
char g_case_text[64 * 1024];
std::atomic<size_t> g_case_size{0};
struct sigaction g_previous_actions[NSIG];

void PrintCase() {
  if (g_case_size.load() == 0) return;  // already reported
  static constexpr char kHeader[] =
      "\n*** ASL property test: the process dies in this case:\n";
  // Nothing to do about a failed write while dying.
  [[maybe_unused]] ssize_t ignored =
      write(STDERR_FILENO, kHeader, sizeof(kHeader) - 1);
  ignored = write(STDERR_FILENO, g_case_text, g_case_size.load());
  ignored = write(STDERR_FILENO, "\n", 1);
}

void OnFatalSignal(int signal) {
  PrintCase();
  // Hand over to the previous handler (ASan's, or the default): a fault
  // re-raises when the faulting instruction runs again, abort() raises
  // again by itself.
  sigaction(signal, &g_previous_actions[signal], nullptr);
}

// Reports the case at hand when the process dies of a signal (a crash, or a
// stack overflow of a thread started by RunWithStack) and aborts with the
// case when one runs for longer than `limit`, so that a hang fails with its
// reproducer instead of a bare ctest timeout. One per process.
class Watchdog {
 public:
  Watchdog(absl::Duration limit, uint64_t seed) : limit_(limit), seed_(seed) {
    struct sigaction action {};
    action.sa_handler = OnFatalSignal;
    action.sa_flags = SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (int signal : kSignals)
      sigaction(signal, &action, &g_previous_actions[signal]);
#if STEPFLOW_FUZZ_SANITIZED
    // Sanitizer reports end the process without a signal.
    __sanitizer_set_death_callback(PrintCase);
#endif
    thread_ = std::thread([this] { Watch(); });
  }
  ~Watchdog() {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    thread_.join();
    for (int signal : kSignals)
      sigaction(signal, &g_previous_actions[signal], nullptr);
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void Begin(std::string description) {
    absl::StrAppend(&description, "\nreplay with STEPFLOW_FUZZ_SEED=", seed_);
    g_case_size.store(0);
    const size_t size = std::min(description.size(), sizeof(g_case_text));
    std::memcpy(g_case_text, description.data(), size);
    g_case_size.store(size);
    absl::MutexLock lock(&mu_);
    description_ = std::move(description);
    started_ = absl::Now();
  }

 private:
  static constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

  void Watch() {
    absl::MutexLock lock(&mu_);
    while (!done_) {
      mu_.AwaitWithTimeout(absl::Condition(&done_), absl::Milliseconds(200));
      if (!done_ && absl::Now() - started_ > limit_) {
        std::cerr << "\n*** ASL property test: one case ran for more than "
                  << absl::FormatDuration(limit_) << " (a hang):\n"
                  << description_.substr(0, 64 * 1024) << std::endl;
        g_case_size.store(0);
        std::abort();
      }
    }
  }

  const absl::Duration limit_;
  const uint64_t seed_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::string description_ ABSL_GUARDED_BY(mu_);
  absl::Time started_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::thread thread_;
};

// The stack the cases run on: what a service thread has (8 MiB), scaled up
// under AddressSanitizer, whose redzones make every frame several times
// larger, so that a given nesting depth is judged the same in both builds.
constexpr size_t kCaseStackBytes = STEPFLOW_FUZZ_SANITIZED ? 64 << 20 : 8 << 20;

// Runs `body` on a new thread with a stack of `bytes` and waits for it. The
// thread gets an alternate signal stack, so that the fatal-signal report
// still prints after a stack overflow.
void RunWithStack(size_t bytes, std::function<void()> body) {
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setstacksize(&attributes, bytes);
  pthread_t thread;
  auto start = [](void* arg) -> void* {
    std::vector<char> signal_stack(256 * 1024);
    stack_t current;
    if (sigaltstack(nullptr, &current) == 0 &&
        (current.ss_flags & SS_DISABLE)) {
      stack_t stack{};
      stack.ss_sp = signal_stack.data();
      stack.ss_size = signal_stack.size();
      sigaltstack(&stack, nullptr);
    }
    (*static_cast<std::function<void()>*>(arg))();
    stack_t disable{};
    disable.ss_flags = SS_DISABLE;
    sigaltstack(&disable, nullptr);
    return nullptr;
  };
  const int created = pthread_create(&thread, &attributes, start, &body);
  pthread_attr_destroy(&attributes);
  ASSERT_EQ(created, 0) << "pthread_create: " << std::strerror(created);
  pthread_join(thread, nullptr);
}

// --- The property
// ---------------------------------------------------------------

struct Stats {
  std::map<std::string, int64_t> texts;        // by kind
  std::map<std::string, int64_t> valid_texts;  // by kind
  int64_t valid = 0;
  int64_t skipped_immediate_loops = 0;
  int64_t executions = 0;
  int64_t replays = 0;
  std::map<std::string, int64_t> closed;  // by status; "RUNNING" at a bound
  std::map<std::string, int64_t> codes;   // diagnostics of invalid definitions
  int64_t events = 0;
  int64_t failures = 0;
  std::map<std::string, int64_t> failure_kinds;  // by Signature()
  // FNV-1a over every execution's history hash, event count and end, in
  // order: with STEPFLOW_FUZZ_CASES the same seed gives the same digest
  // unless a change of the interpreter changed some history.
  uint64_t digest = 14695981039346656037ull;

  void MixDigest(const DriveResult& result) {
    auto mix = [this](absl::string_view bytes) {
      for (unsigned char c : bytes) digest = (digest ^ c) * 1099511628211ull;
    };
    mix(absl::StrCat(result.history_hash, "/", result.events, "/",
                     result.closed_status, ";"));
  }

  std::string Summary() const {
    std::string out;
    for (const auto& [kind, n] : texts) {
      absl::StrAppend(&out, kind, "=", n, " (",
                      valid_texts.count(kind) ? valid_texts.at(kind) : 0,
                      " valid) ");
    }
    absl::StrAppend(
        &out, "\n  valid definitions: ", valid,
        ", skipped (may loop without waiting): ", skipped_immediate_loops,
        "\n  executions: ", executions, " (", replays,
        " replayed), events: ", events, "\n  closed: ");
    for (const auto& [status, n] : closed)
      absl::StrAppend(&out, status, "=", n, " ");
    absl::StrAppend(&out, "\n  top diagnostics: ");
    std::vector<std::pair<int64_t, std::string>> top;
    for (const auto& [code, n] : codes) top.emplace_back(n, code);
    std::sort(top.rbegin(), top.rend());
    for (size_t i = 0; i < top.size() && i < 8; ++i) {
      absl::StrAppend(&out, top[i].second, "=", top[i].first, " ");
    }
    for (const auto& [kind, n] : failure_kinds) {
      absl::StrAppend(&out, "\n  FAILURE seen ", n, " times: ", kind);
    }
    return out;
  }
};

// A failure message without its numbers and seeds, to group alike failures.
std::string Signature(absl::string_view what) {
  std::string out;
  for (char c : what) {
    if (c == '\n') break;
    if (std::isdigit(static_cast<unsigned char>(c))) {
      if (out.empty() || out.back() != '#') out.push_back('#');
    } else {
      out.push_back(c);
    }
  }
  size_t colon = out.find(": ");
  if (absl::StartsWith(out, "driver seed") && colon != std::string::npos)
    out.erase(0, colon + 2);
  return out;
}

std::string Shorten(absl::string_view text, size_t max = 8192) {
  if (text.size() <= max) return std::string(text);
  return absl::StrCat(text.substr(0, max), "... (", text.size(), " bytes)");
}

class PropertyRunner {
 public:
  PropertyRunner(uint64_t seed, Watchdog* watchdog)
      : seed_(seed), random_(seed), watchdog_(watchdog) {}

  // Runs cases until `duration` has passed, or exactly `cases` of them
  // when that is positive.
  void RunFor(absl::Duration duration, int64_t cases = 0) {
    const absl::Time deadline = absl::Now() + duration;
    DefinitionGenerator generator(random_);
    Mutator mutator(random_);
    for (int64_t index = 0; cases > 0 ? index < cases : absl::Now() < deadline; ++index) {
      const int roll = random_.R(0, 99);
      std::string kind;
      std::string text;
      std::string input;
      if (roll < 55) {
        kind = "generated";
        text = generator.Generate();
      } else if (roll < 88) {
        kind = "mutated";
        text = mutator.Mutate(random_.P(0.9) ? generator.Generate()
                                             : DeepDefinition(random_));
      } else if (roll < 97) {
        kind = "deep";
        text = DeepDefinition(random_, &input);
      } else {
        kind = "bytes";
        text.resize(static_cast<size_t>(random_.R(0, 200)));
        for (char& c : text) c = static_cast<char>(random_.R(0, 255));
      }
      ++stats_.texts[kind];
      Check(index, kind, text, input);
    }
  }

  const Stats& stats() const { return stats_; }

 private:
  void Fail(int64_t index, absl::string_view kind, absl::string_view text,
            absl::string_view input, absl::string_view what) {
    ++stats_.failures;
    // One example of each kind of failure is enough to act on.
    if (stats_.failure_kinds[Signature(what)]++ > 0 ||
        stats_.failure_kinds.size() > 10)
      return;
    ADD_FAILURE() << what << "\n  replay: STEPFLOW_FUZZ_SEED=" << seed_
                  << ", case #" << index << " (" << kind
                  << ")\n  definition: " << Shorten(text)
                  << "\n  input: " << Shorten(input);
  }

  // `preferred_input`, when set, is the input of the first run.
  void Check(int64_t index, const std::string& kind, const std::string& text,
             const std::string& preferred_input) {
    watchdog_->Begin(
        absl::StrCat("case #", index, " (", kind, "), validating:\n", text));
    // An exception is a crash: nothing up the stack catches it.
    std::vector<Diagnostic> diagnostics;
    absl::StatusOr<std::shared_ptr<const Definition>> definition;
    try {
      diagnostics = ValidateDefinition(text);
      definition = Definition::Parse(text);
    } catch (const std::exception& e) {
      Fail(index, kind, text, "",
           absl::StrCat("exception escaped: ", e.what(),
                        " (ValidateDefinition or Parse)"));
      return;
    }
    if (diagnostics.empty() != definition.ok()) {
      Fail(index, kind, text, "",
           absl::StrCat("ValidateDefinition found ", diagnostics.size(),
                        " problems but Parse says ",
                        definition.status().ToString()));
      return;
    }
    for (const Diagnostic& d : diagnostics) {
      ++stats_.codes[d.code];
      if (d.code.empty() || !absl::StartsWith(d.location, "/")) {
        Fail(index, kind, text, "",
             absl::StrCat("malformed diagnostic: code '", d.code, "' at '",
                          d.location, "'"));
      }
    }
    if (!definition.ok()) {
      if (!absl::StartsWith(definition.status().message(),
                            "InvalidDefinition")) {
        Fail(index, kind, text, "", definition.status().ToString());
      }
      return;
    }
    ++stats_.valid;
    ++stats_.valid_texts[kind];
    if (MayLoopWithoutWaiting(**definition) && !random_.P(0.05)) {
      // Such a loop may run to the history limit in one call: correct
      // (ImmediateLoopEndsTheExecution), but slow to do often.
      ++stats_.skipped_immediate_loops;
      return;
    }
    const int runs = random_.R(1, 3);
    for (int run = 0; run < runs; ++run) {
      const std::string input = run == 0 && !preferred_input.empty()
                                    ? preferred_input
                                    : Input(random_);
      const uint64_t run_seed = random_.engine()();
      watchdog_->Begin(absl::StrCat(
          "case #", index, " (", kind, ") run ", run, ", driver seed ",
          run_seed, "\ninput: ", Shorten(input), "\ndefinition:\n", text));
      DriveOptions options;
      options.check_serialization = IsValidUtf8(text);
      std::mt19937_64 rng(run_seed);
      DriveResult result;
      try {
        result = DriveExecution(**definition, input, rng, options);
      } catch (const std::exception& e) {
        Fail(index, kind, text, input,
             absl::StrCat("exception escaped: ", e.what(),
                          " (interpreter, driver seed ", run_seed, ")"));
        continue;
      }
      ++stats_.executions;
      stats_.events += result.events;
      stats_.MixDigest(result);
      ++stats_.closed[result.closed_status.empty() ? "RUNNING(bound)"
                                                   : result.closed_status];
      if (!result.violations.empty()) {
        Fail(index, kind, text, input,
             absl::StrCat(result.violations[0], "\n    driver seed ", run_seed,
                          "; all:\n    ",
                          absl::StrJoin(result.violations, "\n    ")));
        continue;
      }
      if (random_.P(0.1)) {  // same inputs, same history
        ++stats_.replays;
        std::mt19937_64 again(run_seed);
        DriveResult replay =
            DriveExecution(**definition, input, again, options);
        if (replay.history_hash != result.history_hash ||
            replay.events != result.events ||
            replay.closed_status != result.closed_status) {
          Fail(index, kind, text, input,
               absl::StrCat("driver seed ", run_seed,
                            ": a replay gave another history (", result.events,
                            " vs ", replay.events, " events, '",
                            result.closed_status, "' vs '",
                            replay.closed_status, "')"));
        }
      }
    }
  }

  const uint64_t seed_;
  Random random_;
  Watchdog* watchdog_;
  Stats stats_;
};

TEST(AslPropertyTest, ParserAndInterpreterHoldTheirInvariants) {
  // A fixed seed by default, so a CI run fails only for a change of the
  // code; STEPFLOW_FUZZ_SEED=random explores new cases.
  const char* seed_text = std::getenv("STEPFLOW_FUZZ_SEED");
  const uint64_t seed =
      seed_text != nullptr && std::string(seed_text) == "random"
          ? static_cast<uint64_t>(std::random_device()() >> 1)
          : static_cast<uint64_t>(EnvInt("STEPFLOW_FUZZ_SEED", 20261125));
  const int64_t seconds = EnvInt("STEPFLOW_FUZZ_SECONDS", 20);
  // STEPFLOW_FUZZ_CASES=N: exactly N cases, whatever the time, and the
  // digest of their histories printed: compare it before and after a change
  // that must not change any history.
  const int64_t cases = EnvInt("STEPFLOW_FUZZ_CASES", 0);
  std::cout << "STEPFLOW_FUZZ_SEED=" << seed
            << " STEPFLOW_FUZZ_SECONDS=" << seconds << std::endl;
  Watchdog watchdog(absl::Seconds(EnvInt("STEPFLOW_FUZZ_CASE_SECONDS", 30)),
                    seed);
  PropertyRunner runner(seed, &watchdog);
  RunWithStack(kCaseStackBytes,
               [&] { runner.RunFor(absl::Seconds(seconds), cases); });
  std::cout << "ASL property test: " << runner.stats().Summary() << std::endl;
  if (cases > 0) {
    std::cout << "history digest of " << cases << " cases: "
              << absl::StrCat(absl::Hex(runner.stats().digest, absl::kZeroPad16))
              << std::endl;
  }
  EXPECT_EQ(runner.stats().failures, 0)
      << "replay with STEPFLOW_FUZZ_SEED=" << seed;
  EXPECT_GT(runner.stats().executions, 0);
}

// Replays one execution of a reported case twice, printing both traces
// where they part ways. Runs only when asked:
//   STEPFLOW_FUZZ_DEFINITION_FILE=def.json STEPFLOW_FUZZ_INPUT='{...}'
//   STEPFLOW_FUZZ_DRIVER_SEED=123 ./asl_property_test --gtest_filter=*OneCase*
TEST(AslPropertyTest, ReplayOneCase) {
  const char* file = std::getenv("STEPFLOW_FUZZ_DEFINITION_FILE");
  if (file == nullptr) GTEST_SKIP() << "STEPFLOW_FUZZ_DEFINITION_FILE unset";
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  auto definition = Definition::Parse(text.str());
  ASSERT_TRUE(definition.ok()) << definition.status();
  const char* input = std::getenv("STEPFLOW_FUZZ_INPUT");
  const uint64_t seed =
      static_cast<uint64_t>(EnvInt("STEPFLOW_FUZZ_DRIVER_SEED", 1));
  std::vector<std::string> traces[2];
  DriveResult results[2];
  for (int run = 0; run < 2; ++run) {
    std::mt19937_64 rng(seed);
    DriveOptions options;
    options.trace = &traces[run];
    results[run] = DriveExecution(**definition, input ? input : "{}", rng,
                                  options);
    EXPECT_TRUE(results[run].violations.empty())
        << absl::StrJoin(results[run].violations, "\n");
  }
  std::cout << "closed: " << results[0].closed_status << ", "
            << results[0].events << " events\n";
  for (size_t i = 0; i < std::max(traces[0].size(), traces[1].size()); ++i) {
    const std::string a = i < traces[0].size() ? traces[0][i] : "(none)";
    const std::string b = i < traces[1].size() ? traces[1][i] : "(none)";
    if (a != b) {
      ADD_FAILURE() << "runs part ways at line " << i << ":\n  " << a
                    << "\n  " << b;
      break;
    }
    if (std::getenv("STEPFLOW_FUZZ_PRINT_TRACE") != nullptr) {
      std::cout << a << "\n";
    }
  }
}

// The driver's loop detector, on which the test above relies to stay
// bounded.
TEST(AslPropertyTest, MayLoopWithoutWaiting) {
  auto flagged = [](absl::string_view states) {
    // Every machine needs a terminal state; "E" gives the loops a way out.
    auto definition = Definition::Parse(
        absl::StrCat(R"({"StartAt":"A","States":{)", states, "}}"));
    EXPECT_TRUE(definition.ok()) << definition.status();
    return definition.ok() && MayLoopWithoutWaiting(**definition);
  };
  constexpr char kExit[] =
      R"("X":{"Type":"Choice","Choices":[{"Variable":"$.n","IsPresent":true,
                                "Next":"A"}],"Default":"E"},
                              "E":{"Type":"Succeed"})";
  EXPECT_TRUE(
      flagged(absl::StrCat(R"("A":{"Type":"Pass","Next":"X"},)", kExit)));
  EXPECT_TRUE(flagged(absl::StrCat(
      R"("A":{"Type":"Wait","SecondsPath":"$.n","Next":"X"},)", kExit)));
  EXPECT_TRUE(flagged(
      absl::StrCat(R"("A":{"Type":"Wait","Seconds":0,"Next":"X"},)", kExit)));
  EXPECT_TRUE(
      flagged(absl::StrCat(R"("A":{"Type":"Map","Next":"X","ItemProcessor":{
      "StartAt":"T","States":{"T":{"Type":"Task","Resource":")",
                           kActivityArn, R"(","End":true}}}},)", kExit)));
  EXPECT_TRUE(flagged(
      R"("A":{"Type":"Map","End":true,"ItemProcessor":{"StartAt":"I","States":{
      "I":{"Type":"Pass","Next":"J"},
      "J":{"Type":"Choice","Choices":[{"Variable":"$.n","IsPresent":true,"Next":"I"}],
           "Default":"K"},
      "K":{"Type":"Succeed"}}}})"));
  // A branch that fails at once fails the Parallel state at once.
  EXPECT_TRUE(flagged(absl::StrCat(R"("A":{"Type":"Parallel","End":true,
      "Catch":[{"ErrorEquals":["States.ALL"],"Next":"A"}],"Branches":[
      {"StartAt":"T","States":{"T":{"Type":"Task","Resource":")",
                                   kActivityArn, R"(","End":true}}},
      {"StartAt":"F","States":{"F":{"Type":"Fail"}}}]})")));
  EXPECT_FALSE(flagged(
      absl::StrCat(R"("A":{"Type":"Wait","Seconds":1,"Next":"X"},)", kExit)));
  EXPECT_FALSE(flagged(absl::StrCat(R"("A":{"Type":"Task","Resource":")",
                                    kActivityArn, R"(","Next":"X"},)", kExit)));
  EXPECT_FALSE(
      flagged(absl::StrCat(R"("A":{"Type":"Parallel","Next":"X","Branches":[
      {"StartAt":"T","States":{"T":{"Type":"Task","Resource":")",
                           kActivityArn, R"(","End":true}}}]},)", kExit)));
}

// A loop that never waits ends, as on AWS, when the history reaches 25,000
// events.
TEST(AslPropertyTest, ImmediateLoopEndsTheExecution) {
  Watchdog watchdog(absl::Seconds(10), 0);
  watchdog.Begin("the Pass loop of ImmediateLoopEndsTheExecution");
  auto definition = Definition::Parse(R"({"StartAt":"A","States":{
      "A":{"Type":"Pass","Next":"X"},
      "X":{"Type":"Choice","Choices":[{"Variable":"$.n","IsPresent":true,"Next":"A"}],"Default":"E"},
      "E":{"Type":"Succeed"}}})");
  ASSERT_TRUE(definition.ok()) << definition.status();
  std::mt19937_64 rng(1);
  DriveResult result = DriveExecution(**definition, R"({"n":1})", rng);
  EXPECT_EQ(result.closed_status, "FAILED");
  EXPECT_TRUE(result.violations.empty())
      << absl::StrJoin(result.violations, "\n");
}

// Validation and the interpreter recurse once per nesting level; JSON
// nested deeper than json::kMaxDepth is refused where it is parsed, so a
// definition or an input nested some hundred thousand levels deep (far
// under the size limits) is rejected rather than exhausting the stack.
TEST(AslPropertyTest, DeepNestingIsRejectedOrRuns) {
  const int depth = 100000;
  std::string parallel =
      R"({"StartAt":"L","States":{"L":{"Type":"Pass","End":true}}})";
  for (int i = 0; i < 3000; ++i) {
    parallel = absl::StrCat(R"({"StartAt":"P)", i, R"(","States":{"P)", i,
                            R"(":{"Type":"Parallel","End":true,"Branches":[)",
                            parallel, "]}}}");
  }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {absl::StrCat(
           R"({"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Next":"D","Not":)",
           Nested(depth, "{\"Not\":",
                  "{\"Variable\":\"$.n\",\"IsPresent\":true}", "}"),
           R"(}],"Default":"D"},"D":{"Type":"Succeed"}}})"),
       "{}"},
      {absl::StrCat(
           R"({"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":)",
           Nested(depth, "{\"a\":", "{\"v.$\":\"$\"}", "}"),
           R"(,"End":true}}})"),
       "{}"},
      {parallel, "{}"},
      {absl::StrCat(R"({"StartAt":"P","States":{"P":{"Type":"Pass","Result":)",
                    Nested(depth, "[", "1", "]"), R"(,"End":true}}})"),
       "{}"},
      {R"({"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}})",
       Nested(depth, "[", "1", "]")},
  };
  Watchdog watchdog(absl::Seconds(60), 0);
  RunWithStack(kCaseStackBytes, [&] {
    for (const auto& [text, input] : cases) {
      watchdog.Begin(absl::StrCat("DeepNestingIsRejectedOrRuns: ",
                                  text.substr(0, 200)));
      const std::vector<Diagnostic> problems = ValidateDefinition(text);
      auto definition = Definition::Parse(text);
      EXPECT_EQ(problems.empty(), definition.ok());
      if (!definition.ok()) continue;
      std::mt19937_64 rng(1);
      DriveResult result = DriveExecution(**definition, input, rng);
      EXPECT_TRUE(result.violations.empty()) << absl::StrJoin(result.violations, "\n");
      EXPECT_EQ(result.closed_status, "FAILED") << "an input nested too deep fails the state";
    }
  });
}

}  // namespace
}  // namespace stepflow::asl::fuzz
