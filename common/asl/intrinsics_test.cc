#include "common/asl/intrinsics.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/asl/path.h"
#include "common/json/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::asl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Hands out a fixed sequence, cycling.
class FakeRandom : public RandomSource {
 public:
  explicit FakeRandom(std::vector<uint64_t> values)
      : values_(std::move(values)) {}
  uint64_t Next() override { return values_[next_++ % values_.size()]; }
  int calls() const { return static_cast<int>(next_); }

 private:
  std::vector<uint64_t> values_;
  size_t next_ = 0;
};

class IntrinsicsTest : public ::testing::Test {
 protected:
  IntrinsicsTest() {
    SetContext(R"({"Execution":{"Name":"exec-1","Input":{"csv":"x,y,z"}},
                   "StateMachine":{"Name":"alpha-beta-gamma"}})");
    variables_.Parse(R"({"myVar":{"x":7},"greeting":"hi"})");
  }

  void SetContext(absl::string_view text) {
    context_.Parse(text.data(), text.size());
    ASSERT_FALSE(context_.HasParseError());
  }

  // Resolves "$..." against the input, "$$..." against the context object
  // and "$name..." against the variables.
  PathResolver Resolver() {
    return [this](absl::string_view path,
                  json::Allocator& allocator) -> absl::StatusOr<json::Value> {
      const json::Value* root = &input_;
      std::string reference(path);
      if (path.size() > 1 && path[1] != '.' && path[1] != '[' &&
          path[1] != '$') {
        size_t end = path.find_first_of(".[");
        std::string name(path.substr(
            1, end == absl::string_view::npos ? path.npos : end - 1));
        auto it = variables_.FindMember(name.c_str());
        if (it == variables_.MemberEnd())
          return absl::NotFoundError("no such variable");
        root = &it->value;
        reference = absl::StrCat(
            "$", end == absl::string_view::npos ? "" : path.substr(end));
      }
      absl::StatusOr<ReferencePath> parsed = ReferencePath::Parse(reference);
      if (!parsed.ok()) return parsed.status();
      if (parsed->is_context()) root = &context_;
      const json::Value* found = parsed->Find(*root);
      if (found == nullptr) return absl::NotFoundError("selects nothing");
      return json::Value(*found, allocator);
    };
  }

  // Parses and evaluates `expression` on `input`; the result as compact JSON.
  absl::StatusOr<std::string> Run(absl::string_view expression,
                                  absl::string_view input = "{}") {
    input_.Parse(input.data(), input.size());
    if (input_.HasParseError()) return absl::InternalError("bad test input");
    absl::StatusOr<IntrinsicCall> call = IntrinsicCall::Parse(expression);
    if (!call.ok()) return call.status();
    json::Document out;
    absl::StatusOr<json::Value> value =
        call->Evaluate(Resolver(), random_, out.GetAllocator());
    if (!value.ok()) return value.status();
    return json::Serialize(*value);
  }

  // The message of the evaluation error `expression` must produce.
  std::string Error(absl::string_view expression,
                    absl::string_view input = "{}") {
    absl::StatusOr<std::string> result = Run(expression, input);
    if (result.ok()) return "unexpectedly succeeded with " + *result;
    return std::string(result.status().message());
  }

  static std::string Invalid(absl::string_view expression,
                             absl::string_view function) {
    return absl::StrCat("States.Runtime: The function '", expression,
                        "' had the following error: Invalid arguments in ",
                        function);
  }

  json::Document input_;
  json::Document context_;
  json::Document variables_;
  FakeRandom random_{{0}};
};

#define EXPECT_RESULT(expr, input, expected) \
  EXPECT_EQ(Run(expr, input).value_or("<error>"), expected) << (expr)

#define EXPECT_INVALID(expr, input, function) \
  EXPECT_EQ(Error(expr, input), Invalid(expr, function))

absl::Status ParseError(absl::string_view text) {
  absl::StatusOr<IntrinsicCall> call = IntrinsicCall::Parse(text);
  return call.ok() ? absl::OkStatus() : call.status();
}

// --- Parsing -----------------------------------------------------------------

TEST(IntrinsicParseTest, LooksLikeCall) {
  EXPECT_TRUE(IntrinsicCall::LooksLikeCall("States.Format('x')"));
  EXPECT_TRUE(IntrinsicCall::LooksLikeCall("States.Nope()"));
  EXPECT_FALSE(IntrinsicCall::LooksLikeCall("$.States"));
  EXPECT_FALSE(IntrinsicCall::LooksLikeCall("states.Format('x')"));
  EXPECT_FALSE(IntrinsicCall::LooksLikeCall(" States.Format('x')"));
}

TEST(IntrinsicParseTest, EveryFunctionParses) {
  for (const char* text :
       {"States.Format('a')", "States.StringToJson($.a)",
        "States.JsonToString($.a)", "States.Array()",
        "States.ArrayPartition($.a, 2)", "States.ArrayContains($.a, 1)",
        "States.ArrayRange(1, 9, 2)", "States.ArrayGetItem($.a, 0)",
        "States.ArrayLength($.a)", "States.ArrayUnique($.a)",
        "States.Base64Encode($.a)", "States.Base64Decode($.a)",
        "States.Hash($.a, 'MD5')", "States.JsonMerge($.a, $.b, false)",
        "States.MathRandom(1, 9)", "States.MathRandom(1, 9, 3)",
        "States.MathAdd(1, -1)", "States.StringSplit($.a, ',')",
        "States.UUID()"}) {
    absl::StatusOr<IntrinsicCall> call = IntrinsicCall::Parse(text);
    ASSERT_TRUE(call.ok()) << text << ": " << call.status();
    EXPECT_EQ(call->text(), text);
  }
}

TEST(IntrinsicParseTest, UnknownFunction) {
  absl::Status status = ParseError("States.Foo($.a)");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "invalid intrinsic function call 'States.Foo($.a)' at position 0: "
            "unknown "
            "intrinsic function 'States.Foo'");
  EXPECT_THAT(
      ParseError("States.Array(States.format(1))").message(),
      HasSubstr("at position 13: unknown intrinsic function 'States.format'"));
  EXPECT_THAT(ParseError("States.Array").message(),
              HasSubstr("expected '(' after States.Array"));
  EXPECT_THAT(ParseError("$.a").message(),
              HasSubstr("must start with 'States.'"));
}

TEST(IntrinsicParseTest, SyntaxErrors) {
  struct Case {
    const char* text;
    const char* reason;
  };
  for (const Case& c : std::vector<Case>{
           {"States.Array(1", "missing ')' to close States.Array"},
           {"States.Array(1,)", "expected a string literal, number"},
           {"States.Array(1, )", "expected a string literal, number"},
           {"States.Array(,1)", "expected a string literal, number"},
           {"States.Array(1 2)", "expected ',' or ')'"},
           {"States.Array($.a) trailing",
            "unexpected characters after the closing ')'"},
           {"States.Array([1,2])", "expected a string literal, number"},
           {"States.Array(foo)", "expected a string literal, number"},
           {"States.Array(truex)", "expected a string literal, number"},
           {"States.Array(1.)", "expected digits after '.'"},
           {"States.Array(.5)", "expected a string literal, number"},
           {"States.Array(1e)", "expected exponent digits"},
           {"States.Array(12ab)", "invalid number"},
           {"States.Array(1e999)", "number out of range"},
           {"States.Array('abc)", "unterminated string literal"},
           {"States.Array('a\\\"b')", "invalid escape sequence"},
           {"States.Array('a\\nb')", "invalid escape sequence"},
           {"States.Array('a\\')", "unterminated string literal"},
           {"States.Array($.a[0)", "unterminated '[' in path"},
           {"States.Array($.a])", "unbalanced ']' in path"},
           {"States.Array($.a.)", "invalid path '$.a.'"},
           {"States.Array($-a)", "invalid path '$-a'"},
       }) {
    absl::Status status = ParseError(c.text);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(status.message(), HasSubstr(c.reason)) << c.text;
  }
}

TEST(IntrinsicParseTest, NestingLimitIsTen) {
  std::string ten = "1";
  for (int i = 0; i < 10; ++i) ten = absl::StrCat("States.Array(", ten, ")");
  EXPECT_TRUE(IntrinsicCall::Parse(ten).ok());
  std::string eleven = absl::StrCat("States.Array(", ten, ")");
  EXPECT_THAT(ParseError(eleven).message(),
              HasSubstr("nested at most 10 deep"));
}

TEST(IntrinsicParseTest, LiteralDeepMergeIsRejected) {
  EXPECT_THAT(ParseError("States.JsonMerge($.a, $.b, true)").message(),
              HasSubstr("third argument must be false"));
}

TEST(IntrinsicParseTest, WrongArgumentCountsParse) {
  // AWS accepts these when the state machine is created and fails at run time.
  for (const char* text :
       {"States.Hash('a')", "States.UUID(1)", "States.MathAdd(1)",
        "States.JsonMerge()", "States.Format()"}) {
    EXPECT_TRUE(IntrinsicCall::Parse(text).ok()) << text;
  }
}

TEST(IntrinsicParseTest, PathArgumentsAreCollectedRecursively) {
  absl::StatusOr<IntrinsicCall> call = IntrinsicCall::Parse(
      "States.Format('{} {}', $.a, States.Array($$.Execution.Id, $['b c'][0], "
      "States.ArrayLength($myVar.x)), $)");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_THAT(
      call->PathArguments(),
      ElementsAre("$.a", "$$.Execution.Id", "$['b c'][0]", "$myVar.x", "$"));
}

TEST(IntrinsicParseTest, CopiesShareTheParsedCall) {
  absl::StatusOr<IntrinsicCall> call =
      IntrinsicCall::Parse("States.MathAdd(1, 2)");
  ASSERT_TRUE(call.ok());
  IntrinsicCall copy = *call;
  FakeRandom random({0});
  json::Document out;
  PathResolver none = [](absl::string_view,
                         json::Allocator&) -> absl::StatusOr<json::Value> {
    return absl::NotFoundError("");
  };
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<json::Value> v =
        copy.Evaluate(none, random, out.GetAllocator());
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->GetInt64(), 3);
  }
}

// --- Literals, escapes and whitespace
// ------------------------------------------

TEST_F(IntrinsicsTest, LiteralsAndWhitespace) {
  EXPECT_RESULT(
      "States.Array( 1 ,-2, 3.5,-0.25, 1e3, 2E-2, true, false, null, 'x' )",
      "{}", R"([1,-2,3.5,-0.25,1000.0,0.02,true,false,null,"x"])");
  EXPECT_RESULT("States.JsonToString(99999999999999999999)", "{}",
                R"("1.0E20")");
  EXPECT_RESULT(
      "States.Array('a\\'b', '\\{\\}', 'back\\\\slash', 'Hello\nWorld')", "{}",
      R"(["a'b","{}","back\\slash","Hello\nWorld"])");
}

// --- States.Format
// ---------------------------------------------------------------

TEST_F(IntrinsicsTest, Format) {
  EXPECT_RESULT("States.Format('Hello, my name is {}.', $.name)",
                R"({"name":"Arnav"})", R"("Hello, my name is Arnav.")");
  EXPECT_RESULT("States.Format($.template, $.name)",
                R"({"name":"Arnav","template":"Hello, my name is {}."})",
                R"("Hello, my name is Arnav.")");
  EXPECT_RESULT("States.Format('no placeholders')", "{}",
                R"("no placeholders")");
  EXPECT_RESULT("States.Format('  {}  ', 'x')", "{}", R"("  x  ")");
  EXPECT_RESULT("States.Format('Name: \\'{}\\', Surname: \"{}\"', $.n, $.s)",
                R"({"n":"Gabriel","s":"Moreira"})",
                R"("Name: 'Gabriel', Surname: \"Moreira\"")");
  // Escaped braces are text, not placeholders.
  EXPECT_RESULT("States.Format('\\{\\} {}', 'x')", "{}", R"("{} x")");
  EXPECT_RESULT("States.Format('{}:{}', $.name, $$.Execution.Name)",
                R"({"name":"job"})", R"("job:exec-1")");
  EXPECT_RESULT("States.Format('{} says {}', $greeting, $myVar.x)", "{}",
                R"("hi says 7")");
}

TEST_F(IntrinsicsTest, FormatPrintsValuesAsAwsJavaRuntimeDoes) {
  EXPECT_RESULT(
      "States.Format('{}|{}|{}|{}|{}|{}', $.nil, $.b, $.neg, $.frac, $.big, "
      "$.one)",
      R"({"nil":null,"b":false,"neg":-1,"frac":3.5,"big":9007199254740991,"one":1.0})",
      R"("null|false|-1|3.5|9007199254740991|1.0")");
  EXPECT_RESULT("States.Format('fst={} and snd={}.', $.o, $.a)",
                R"({"o":{"Arg1":1,"Arg2":[]},"a":[1,"two",{"k":null}]})",
                R"("fst={Arg1=1, Arg2=[]} and snd=[1, two, {k=null}].")");
  EXPECT_RESULT("States.Format('{} {} {} {}', $.a, $.b, $.c, $.d)",
                R"({"a":1e7,"b":0.001,"c":0.0001,"d":123456.789})",
                R"("1.0E7 0.001 1.0E-4 123456.789")");
  EXPECT_RESULT("States.Format('arn:{}:{}', $.svc, States.JsonToString($.obj))",
                R"({"svc":"lambda","obj":{"k":1}})",
                R"("arn:lambda:{\"k\":1}")");
  // A States.StringToJson result is a JSON tree on AWS and prints as JSON.
  EXPECT_RESULT("States.Format('{}', States.StringToJson($.json))",
                R"({"json":"\"x\""})", R"("\"x\"")");
}

TEST_F(IntrinsicsTest, FormatErrors) {
  EXPECT_INVALID("States.Format('{} {}', $.a)", R"({"a":"x"})",
                 "States.Format");
  EXPECT_INVALID("States.Format('{}', $.a, $.b)", R"({"a":"x","b":"y"})",
                 "States.Format");
  EXPECT_INVALID("States.Format($.t, $.a)", R"({"t":123,"a":"x"})",
                 "States.Format");
  EXPECT_INVALID("States.Format('Hello {', $.a)", R"({"a":"x"})",
                 "States.Format");
  EXPECT_INVALID("States.Format('Hello {{}}', $.a)", R"({"a":"x"})",
                 "States.Format");
  EXPECT_INVALID("States.Format('}')", "{}", "States.Format");
  EXPECT_INVALID("States.Format($.t)", R"({"t":"a { b"})", "States.Format");
  EXPECT_INVALID("States.Format()", "{}", "States.Format");
}

// --- Paths that select nothing and resolver errors
// ----------------------------

TEST_F(IntrinsicsTest, PathThatSelectsNothing) {
  EXPECT_EQ(Error("States.Format('{}', $.nope)", R"({"other":1})"),
            "States.Runtime: The function 'States.Format('{}', $.nope)' had "
            "the following "
            "error: The JsonPath argument for the field '$.nope' could not be "
            "found in the "
            "input '{\"other\":1}'");
  // The whole expression is named, as written.
  EXPECT_EQ(
      Error("States.Format('{}',States.Format('{}', $.a.b))", R"({"other":1})"),
      "States.Runtime: The function 'States.Format('{}',States.Format('{}', "
      "$.a.b))' had "
      "the following error: The JsonPath argument for the field '$.a.b' could "
      "not be "
      "found in the input '{\"other\":1}'");
  // A context path is named against "$" and the state input is quoted.
  EXPECT_EQ(Error("States.Array($$.Nope.Deep)", R"({"other":1})"),
            "States.Runtime: The function 'States.Array($$.Nope.Deep)' had the "
            "following error: "
            "The JsonPath argument for the field '$.Nope.Deep' could not be "
            "found in the input "
            "'{\"other\":1}'");
  EXPECT_THAT(Error("States.ArrayLength($.items[5])", R"({"items":[1,2]})"),
              HasSubstr("The JsonPath argument for the field '$.items[5]' "
                        "could not be found"));
  EXPECT_THAT(
      Error("States.MathAdd($nope, 1)", "{}"),
      HasSubstr(
          "The JsonPath argument for the field '$nope' could not be found"));
  // An explicit null is a value.
  EXPECT_RESULT("States.Format('{}', $.nul)", R"({"nul":null})", R"("null")");
}

TEST_F(IntrinsicsTest, OtherResolverErrorsPassThrough) {
  absl::StatusOr<IntrinsicCall> call =
      IntrinsicCall::Parse("States.Array($.a)");
  ASSERT_TRUE(call.ok());
  PathResolver failing = [](absl::string_view,
                            json::Allocator&) -> absl::StatusOr<json::Value> {
    return absl::FailedPreconditionError(
        "States.Runtime: variable scope error");
  };
  json::Document out;
  absl::StatusOr<json::Value> v =
      call->Evaluate(failing, random_, out.GetAllocator());
  EXPECT_EQ(v.status(), absl::FailedPreconditionError(
                            "States.Runtime: variable scope error"));
}

// --- JSON
// ----------------------------------------------------------------------

TEST_F(IntrinsicsTest, StringToJson) {
  EXPECT_RESULT("States.StringToJson($.s)", R"({"s":"{\"foo\": \"bar\"}"})",
                R"({"foo":"bar"})");
  EXPECT_RESULT("States.StringToJson($.s)", R"({"s":"[1, 2, \"HelloWorld\"]"})",
                R"([1,2,"HelloWorld"])");
  EXPECT_RESULT("States.StringToJson($.s)", R"({"s":"\"HelloWorld\""})",
                R"("HelloWorld")");
  EXPECT_RESULT("States.StringToJson($.s)", R"({"s":"1.1"})", "1.1");
  EXPECT_RESULT("States.StringToJson($.s)", R"({"s":"-0"})", "0");
  EXPECT_RESULT("States.StringToJson($.s)", R"({"s":"true"})", "true");
  EXPECT_RESULT("States.StringToJson($.s)", R"({"s":"null"})", "null");
  EXPECT_RESULT("States.StringToJson($.s)", R"({"s":""})", "null");
  EXPECT_RESULT("States.StringToJson($.s)", R"({"s":"  "})", "null");
  EXPECT_RESULT("States.StringToJson($.s)", R"({"s":" {\"a\":1} "})",
                R"({"a":1})");
  EXPECT_RESULT("States.StringToJson('{\"a\": \"it\\'s\"}')", "{}",
                R"({"a":"it's"})");
  EXPECT_RESULT("States.StringToJson(States.JsonToString($.o))",
                R"({"o":{"a":1,"n":{"ok":true}}})",
                R"({"a":1,"n":{"ok":true}})");
}

TEST_F(IntrinsicsTest, StringToJsonErrors) {
  EXPECT_INVALID("States.StringToJson($.s)", R"({"s":"{bad json}"})",
                 "States.StringToJson");
  EXPECT_INVALID("States.StringToJson($.s)", R"({"s":"{\"a\":1"})",
                 "States.StringToJson");
  EXPECT_INVALID("States.StringToJson($.s)", R"({"s":"undefined"})",
                 "States.StringToJson");
  EXPECT_INVALID("States.StringToJson($.s)", R"({"s":123})",
                 "States.StringToJson");
  EXPECT_INVALID("States.StringToJson($.s)", R"({"s":{"a":1}})",
                 "States.StringToJson");
  EXPECT_INVALID("States.StringToJson()", "{}", "States.StringToJson");
  EXPECT_INVALID("States.StringToJson($.s, $.s)", R"({"s":"1"})",
                 "States.StringToJson");
}

TEST_F(IntrinsicsTest, JsonToString) {
  EXPECT_RESULT("States.JsonToString($.v)",
                R"({"v":{"foo": "bar", "n":[1, 2.5, null]}})",
                R"("{\"foo\":\"bar\",\"n\":[1,2.5,null]}")");
  EXPECT_RESULT("States.JsonToString($.v)", R"({"v":"HelloWorld"})",
                R"("\"HelloWorld\"")");
  EXPECT_RESULT("States.JsonToString($.v)", R"({"v":1.0})", R"("1.0")");
  EXPECT_RESULT("States.JsonToString($.v)", R"({"v":1e21})", R"("1.0E21")");
  EXPECT_RESULT("States.JsonToString($.v)", R"({"v":null})", R"("null")");
  EXPECT_RESULT("States.JsonToString($.v)", R"({"v":"tab\tquote\"\u0001"})",
                R"("\"tab\\tquote\\\"\\u0001\"")");
  EXPECT_RESULT("States.JsonToString('x')", "{}", R"("\"x\"")");
  EXPECT_RESULT("States.JsonToString($)", R"({"other":1})",
                R"("{\"other\":1}")");
  EXPECT_INVALID("States.JsonToString()", "{}", "States.JsonToString");
  EXPECT_INVALID("States.JsonToString($.a, $.a)", R"({"a":1})",
                 "States.JsonToString");
}

TEST_F(IntrinsicsTest, JsonMerge) {
  EXPECT_RESULT(
      "States.JsonMerge($.a, $.b, false)",
      R"({"a":{"a":{"a1":1,"a2":2},"b":2,"d":3},"b":{"a":{"a3":1,"a4":2},"c":3,"d":4}})",
      R"({"a":{"a3":1,"a4":2},"b":2,"c":3,"d":4})");
  // Keys come out in java.util.HashMap order, as on AWS.
  SetContext(R"({"Execution":{"Input":{"f":{"constant_input_field":"v"}}}})");
  EXPECT_RESULT(
      "States.JsonMerge(States.StringToJson('\\{\"constant_in_literal\": "
      "\"false\"\\}'), "
      "$$.Execution.Input.f, false)",
      "{}", R"({"constant_input_field":"v","constant_in_literal":"false"})");
  EXPECT_RESULT(
      "States.JsonMerge(States.StringToJson('{\"constant_in_literal\": "
      "\"false\"}'), "
      "$$.Execution.Input.f, false)",
      "{}", R"({"constant_input_field":"v","constant_in_literal":"false"})");
  EXPECT_RESULT("States.JsonMerge($.a, $.b, false)", R"({"a":{},"b":{}})",
                "{}");
  EXPECT_RESULT("States.JsonMerge($.a, $.b, false)",
                R"({"a":{"n":{"l":1}},"b":{"n":null}})", R"({"n":null})");
  // AWS treats a flag that is not boolean true as a shallow merge.
  EXPECT_RESULT("States.JsonMerge($.a, $.b, 'false')",
                R"({"a":{"x":1},"b":{"y":2}})", R"({"x":1,"y":2})");
}

TEST_F(IntrinsicsTest, JsonMergeErrors) {
  EXPECT_INVALID("States.JsonMerge($.a, $.b, false)", R"({"a":null,"b":{}})",
                 "States.JsonMerge");
  EXPECT_INVALID("States.JsonMerge($.a, $.b, false)", R"({"a":{},"b":[]})",
                 "States.JsonMerge");
  EXPECT_INVALID("States.JsonMerge($.a, $.b, false)", R"({"a":{},"b":"x"})",
                 "States.JsonMerge");
  EXPECT_INVALID("States.JsonMerge($.a, $.b, $.deep)",
                 R"({"a":{},"b":{},"deep":true})", "States.JsonMerge");
  EXPECT_INVALID("States.JsonMerge($.a, $.b)", R"({"a":{},"b":{}})",
                 "States.JsonMerge");
  EXPECT_INVALID("States.JsonMerge($.a, $.b, false, 1)", R"({"a":{},"b":{}})",
                 "States.JsonMerge");
}

// --- Arrays
// --------------------------------------------------------------------

TEST_F(IntrinsicsTest, Array) {
  EXPECT_RESULT("States.Array()", "{}", "[]");
  EXPECT_RESULT("States.Array($.Id)", R"({"Id":123456})", "[123456]");
  EXPECT_RESULT("States.Array($.o, $.a, States.Array(2, 3))",
                R"({"o":{"k":1},"a":[1,2]})", R"([{"k":1},[1,2],[2,3]])");
}

TEST_F(IntrinsicsTest, ArrayPartition) {
  EXPECT_RESULT("States.ArrayPartition($.a, 4)", R"({"a":[1,2,3,4,5,6,7,8,9]})",
                "[[1,2,3,4],[5,6,7,8],[9]]");
  EXPECT_RESULT("States.ArrayPartition($.a, 10)", R"({"a":[1,2,3]})",
                "[[1,2,3]]");
  EXPECT_RESULT("States.ArrayPartition($.a, 1)", R"({"a":[]})", "[]");
  // A fraction is rounded to the nearest integer, as AWS documents.
  EXPECT_RESULT("States.ArrayPartition($.a, 2.6)", R"({"a":[1,2,3,4,5]})",
                "[[1,2,3],[4,5]]");
  EXPECT_RESULT("States.ArrayPartition($.a, 0.6)", R"({"a":[1,2]})", "[[1],[2]]");
  EXPECT_RESULT("States.ArrayPartition($.a, 2147483647)", R"({"a":[1]})",
                "[[1]]");
  EXPECT_INVALID("States.ArrayPartition($.a, 0)", R"({"a":[1]})",
                 "States.ArrayPartition");
  EXPECT_INVALID("States.ArrayPartition($.a, -1)", R"({"a":[1]})",
                 "States.ArrayPartition");
  EXPECT_INVALID("States.ArrayPartition($.a, 0.4)", R"({"a":[1]})",
                 "States.ArrayPartition");
  EXPECT_INVALID("States.ArrayPartition($.a, '2')", R"({"a":[1]})",
                 "States.ArrayPartition");
  EXPECT_INVALID("States.ArrayPartition($.a, null)", R"({"a":[1]})",
                 "States.ArrayPartition");
  EXPECT_INVALID("States.ArrayPartition('x', 2)", "{}",
                 "States.ArrayPartition");
  EXPECT_INVALID("States.ArrayPartition($.a)", R"({"a":[1]})",
                 "States.ArrayPartition");
}

TEST_F(IntrinsicsTest, ArrayContains) {
  EXPECT_RESULT("States.ArrayContains($.a, $.v)", R"({"a":[1,2,3],"v":2})",
                "true");
  EXPECT_RESULT("States.ArrayContains($.a, 5)", R"({"a":[1,2,3]})", "false");
  EXPECT_RESULT("States.ArrayContains($.a, null)", R"({"a":[1,null]})", "true");
  EXPECT_RESULT("States.ArrayContains($.a, $.v)",
                R"({"a":[[1,2,3],2],"v":[1,2,3]})", "true");
  EXPECT_RESULT("States.ArrayContains($.a, $.v)",
                R"({"a":[{"1":2,"2":[]}],"v":{"1":2,"2":[]}})", "true");
  EXPECT_RESULT("States.ArrayContains($.a, $.v)", R"({"a":[],"v":[]})",
                "false");
  EXPECT_RESULT("States.ArrayContains($.a, false)", R"({"a":[0,1,-1]})",
                "false");
  // AWS compares printed forms: key order matters, "true" matches true.
  EXPECT_RESULT("States.ArrayContains($.a, $.v)",
                R"({"a":[{"a":1,"b":2}],"v":{"b":2,"a":1}})", "false");
  EXPECT_RESULT("States.ArrayContains($.a, true)", R"({"a":["true","false"]})",
                "true");
  EXPECT_INVALID("States.ArrayContains('x', 'x')", "{}",
                 "States.ArrayContains");
  EXPECT_INVALID("States.ArrayContains($.a)", R"({"a":[1]})",
                 "States.ArrayContains");
}

TEST_F(IntrinsicsTest, ArrayRange) {
  EXPECT_RESULT("States.ArrayRange(1, 9, 2)", "{}", "[1,3,5,7,9]");
  EXPECT_RESULT("States.ArrayRange(0, 10, 3)", "{}", "[0,3,6,9]");
  EXPECT_RESULT("States.ArrayRange(5, 1, -2)", "{}", "[5,3,1]");
  EXPECT_RESULT("States.ArrayRange(3, 3, -1)", "{}", "[3]");
  EXPECT_RESULT("States.ArrayRange(5, 1, 1)", "{}", "[]");
  EXPECT_RESULT("States.ArrayRange(1, 5, -1)", "{}", "[]");
  // AWS rounds fractions to the nearest integer, half up.
  EXPECT_RESULT("States.ArrayRange(1.6, 1.4, 1)", "{}", "[]");
  EXPECT_RESULT("States.ArrayRange(0.5, 3, 1)", "{}", "[1,2,3]");
  EXPECT_RESULT("States.ArrayRange(0, 5.6, 1)", "{}", "[0,1,2,3,4,5,6]");
  EXPECT_RESULT("States.ArrayRange(5.4, -0.6, -2.4)", "{}", "[5,3,1,-1]");
  EXPECT_RESULT("States.ArrayRange(1, 4, 1.5)", "{}", "[1,3]");
  absl::StatusOr<std::string> thousand = Run("States.ArrayRange(1, 1000, 1)");
  ASSERT_TRUE(thousand.ok());
  EXPECT_THAT(*thousand, HasSubstr(",999,1000]"));
  EXPECT_TRUE(Run("States.ArrayRange(1000, 1, -1)").ok());
  EXPECT_INVALID("States.ArrayRange(1, 1001, 1)", "{}", "States.ArrayRange");
  EXPECT_INVALID("States.ArrayRange(1001, 1, -1)", "{}", "States.ArrayRange");
  EXPECT_INVALID("States.ArrayRange(1, 10, 0)", "{}", "States.ArrayRange");
  EXPECT_INVALID("States.ArrayRange(1, 10, 0.49)", "{}", "States.ArrayRange");
  EXPECT_INVALID("States.ArrayRange('a', 5, 1)", "{}", "States.ArrayRange");
  EXPECT_INVALID("States.ArrayRange(1, 5)", "{}", "States.ArrayRange");
}

TEST_F(IntrinsicsTest, ArrayGetItem) {
  EXPECT_RESULT("States.ArrayGetItem($.a, $.i)",
                R"({"a":[1,2,3,4,5,6,7,8,9],"i":5})", "6");
  EXPECT_RESULT("States.ArrayGetItem($.a, 1)", R"({"a":[{"a":1},{"b":2}]})",
                R"({"b":2})");
  EXPECT_RESULT("States.ArrayGetItem($.a, 1.2)", R"({"a":[10,20,30]})", "20");
  // AWS answers null for any index into an empty array.
  EXPECT_RESULT("States.ArrayGetItem($.a, 999)", R"({"a":[]})", "null");
  EXPECT_INVALID("States.ArrayGetItem($.a, 3)", R"({"a":[10,20,30]})",
                 "States.ArrayGetItem");
  EXPECT_INVALID("States.ArrayGetItem($.a, -1)", R"({"a":[10,20,30]})",
                 "States.ArrayGetItem");
  EXPECT_INVALID("States.ArrayGetItem($.a, '1')", R"({"a":[10,20,30]})",
                 "States.ArrayGetItem");
  EXPECT_INVALID("States.ArrayGetItem('x', 0)", "{}", "States.ArrayGetItem");
  EXPECT_INVALID("States.ArrayGetItem($.a)", R"({"a":[1]})",
                 "States.ArrayGetItem");
}

TEST_F(IntrinsicsTest, ArrayLength) {
  EXPECT_RESULT("States.ArrayLength($.a)", R"({"a":[1,2,3,4,5,6,7,8,9]})", "9");
  EXPECT_RESULT("States.ArrayLength(States.Array())", "{}", "0");
  absl::StatusOr<IntrinsicCall> call =
      IntrinsicCall::Parse("States.ArrayLength($)");
  ASSERT_TRUE(call.ok());
  input_.Parse("[1,2]");
  json::Document out;
  absl::StatusOr<json::Value> v =
      call->Evaluate(Resolver(), random_, out.GetAllocator());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->IsInt64());
  EXPECT_FALSE(v->IsDouble());
  EXPECT_INVALID("States.ArrayLength('not-array')", "{}", "States.ArrayLength");
  EXPECT_INVALID("States.ArrayLength($.o)", R"({"o":{"k":1}})",
                 "States.ArrayLength");
  EXPECT_INVALID("States.ArrayLength()", "{}", "States.ArrayLength");
}

TEST_F(IntrinsicsTest, ArrayUnique) {
  EXPECT_RESULT("States.ArrayUnique($.a)", R"({"a":[1,2,3,3,3,4]})",
                "[1,2,3,4]");
  EXPECT_RESULT("States.ArrayUnique($.a)", R"({"a":["a","b","a","c","b"]})",
                R"(["a","b","c"])");
  EXPECT_RESULT("States.ArrayUnique($.a)", R"({"a":[]})", "[]");
  EXPECT_RESULT("States.ArrayUnique($.a)", R"({"a":[null,null,1,null]})",
                "[null,1]");
  EXPECT_RESULT("States.ArrayUnique($.a)",
                R"({"a":[{"a":1,"b":2},{"b":2,"a":1}]})", R"([{"a":1,"b":2}])");
  // java.util.HashSet order, as AWS returns it.
  EXPECT_RESULT("States.ArrayUnique($.a)", R"({"a":[true,false,true,false]})",
                "[false,true]");
  EXPECT_RESULT("States.ArrayUnique($.a)", R"({"a":[[1,2],[1,2],[2,1]]})",
                "[[2,1],[1,2]]");
  EXPECT_RESULT("States.ArrayUnique($.a)", R"({"a":[1,"1",1,"01"]})",
                R"([1,"1","01"])");
  EXPECT_RESULT("States.ArrayUnique($.a)", R"({"a":[1,"1",1.0]})",
                R"([1.0,1,"1"])");
  EXPECT_RESULT("States.ArrayUnique($.a)",
                R"({"a":[19,18,17,16,15,14,13,12,11,10,9,8,7,6,5,4,3,2,1,0]})",
                "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19]");
  // Nine values in one bucket of a 16-slot table make Java resize.
  EXPECT_RESULT("States.ArrayUnique($.a)",
                R"({"a":[0,16,32,48,64,80,96,112,128]})",
                "[0,32,64,96,128,16,48,80,112]");
  EXPECT_INVALID("States.ArrayUnique('x')", "{}", "States.ArrayUnique");
  EXPECT_INVALID("States.ArrayUnique($.a, 1)", R"({"a":[1]})",
                 "States.ArrayUnique");
}

// --- Encoding and hashing
// --------------------------------------------------------

TEST_F(IntrinsicsTest, Base64Encode) {
  EXPECT_RESULT("States.Base64Encode($.s)", R"({"s":"Data to encode"})",
                R"("RGF0YSB0byBlbmNvZGU=")");
  EXPECT_RESULT("States.Base64Encode('')", "{}", R"("")");
  EXPECT_RESULT("States.Base64Encode('ab')", "{}", R"("YWI=")");
  EXPECT_RESULT("States.Base64Encode($.s)", R"({"s":"✓"})", R"("4pyT")");
  EXPECT_RESULT("States.Base64Encode('🚀')", "{}", R"("8J+agA==")");
  EXPECT_RESULT("States.Base64Encode($.s)", R"({"s":"abc\u0000def"})",
                R"("YWJjAGRlZg==")");
  EXPECT_TRUE(Run("States.Base64Encode($.s)",
                  absl::StrCat(R"({"s":")", std::string(10000, 'a'), R"("})"))
                  .ok());
  EXPECT_INVALID("States.Base64Encode($.s)",
                 absl::StrCat(R"({"s":")", std::string(10001, 'a'), R"("})"),
                 "States.Base64Encode");
  // The limit counts UTF-16 code units, as Java does: each emoji is two.
  std::string rockets;
  for (int i = 0; i < 5001; ++i) rockets += "🚀";
  EXPECT_INVALID("States.Base64Encode($.s)",
                 absl::StrCat(R"({"s":")", rockets, R"("})"),
                 "States.Base64Encode");
  EXPECT_INVALID("States.Base64Encode(123)", "{}", "States.Base64Encode");
  EXPECT_INVALID("States.Base64Encode($.o)", R"({"o":{}})",
                 "States.Base64Encode");
  EXPECT_INVALID("States.Base64Encode()", "{}", "States.Base64Encode");
}

TEST_F(IntrinsicsTest, Base64Decode) {
  EXPECT_RESULT("States.Base64Decode($.s)", R"({"s":"RGF0YSB0byBlbmNvZGU="})",
                R"("Data to encode")");
  EXPECT_RESULT("States.Base64Decode('')", "{}", R"("")");
  EXPECT_RESULT("States.Base64Decode('44GT44KT44Gr44Gh44Gv')", "{}",
                R"("こんにちは")");
  EXPECT_RESULT("States.Base64Decode('YWJjAGRlZg==')", "{}",
                R"("abc\u0000def")");
  // Lenient like AWS: stray characters are skipped, '=' ends the input, a
  // short last group still yields bytes, bad UTF-8 becomes U+FFFD.
  EXPECT_RESULT("States.Base64Decode(' YWJjZA== ')", "{}", R"("abcd")");
  EXPECT_RESULT("States.Base64Decode('ab==cd')", "{}", R"("i")");
  EXPECT_RESULT("States.Base64Decode('YWJjZA')", "{}", R"("abcd")");
  EXPECT_RESULT("States.Base64Decode('abc')", "{}", "\"i\xEF\xBF\xBD\"");
  EXPECT_TRUE(Run("States.Base64Decode($.s)",
                  absl::StrCat(R"({"s":")", std::string(10000, 'A'), R"("})"))
                  .ok());
  EXPECT_INVALID("States.Base64Decode($.s)",
                 absl::StrCat(R"({"s":")", std::string(10001, 'A'), R"("})"),
                 "States.Base64Decode");
  EXPECT_INVALID("States.Base64Decode(123)", "{}", "States.Base64Decode");
  EXPECT_INVALID("States.Base64Decode('aGVsbG8=', 'extra')", "{}",
                 "States.Base64Decode");
}

TEST_F(IntrinsicsTest, Hash) {
  const std::string input = R"({"d":"input data"})";
  EXPECT_RESULT("States.Hash($.d, 'MD5')", input,
                R"("812f45842bc6d66ee14572ce20db8e86")");
  EXPECT_RESULT("States.Hash($.d, 'SHA-1')", input,
                R"("aaff4a450a104cd177d28d18d74485e8cae074b7")");
  EXPECT_RESULT(
      "States.Hash($.d, 'SHA-256')", input,
      R"("b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3")");
  EXPECT_RESULT(
      "States.Hash($.d, 'SHA-384')", input,
      R"("d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b87525bdc835ebb27e1fb9e9374a15562")");
  EXPECT_RESULT(
      "States.Hash($.d, 'SHA-512')", input,
      R"("6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4")");
  EXPECT_RESULT(
      "States.Hash('', 'SHA-256')", "{}",
      R"("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")");
  EXPECT_RESULT(
      "States.Hash('🚀', 'SHA-256')", "{}",
      R"("ebbc0b2870eb323f2b6cffa5c493ceef81ae7eb36afc73d4e0367301631daec5")");
  // AWS hashes the printed form of a non-string value.
  EXPECT_RESULT("States.Hash(123, 'MD5')", "{}",
                R"("202cb962ac59075b964b07152d234b70")");
  EXPECT_TRUE(Run("States.Hash($.s, 'MD5')",
                  absl::StrCat(R"({"s":")", std::string(10000, 'a'), R"("})"))
                  .ok());
  EXPECT_INVALID("States.Hash($.s, 'MD5')",
                 absl::StrCat(R"({"s":")", std::string(10001, 'a'), R"("})"),
                 "States.Hash");
  for (const char* algorithm :
       {"'sha-256'", "'SHA256'", "'MD-5'", "''", "123", "null"}) {
    std::string expr = absl::StrCat("States.Hash('data', ", algorithm, ")");
    EXPECT_INVALID(expr, "{}", "States.Hash");
  }
  EXPECT_INVALID("States.Hash(null, 'MD5')", "{}", "States.Hash");
  EXPECT_INVALID("States.Hash('hello')", "{}", "States.Hash");
  EXPECT_INVALID("States.Hash('hello', 'MD5', 'x')", "{}", "States.Hash");
}

// --- Math
// --------------------------------------------------------------------------

TEST_F(IntrinsicsTest, MathAdd) {
  EXPECT_RESULT("States.MathAdd($.v, -1)", R"({"v":111})", "110");
  EXPECT_RESULT("States.MathAdd(-9, 3)", "{}", "-6");
  // Each operand is rounded half up first, as Java's Math.round does.
  EXPECT_RESULT("States.MathAdd(1.49, 1.5)", "{}", "3");
  EXPECT_RESULT("States.MathAdd(1.5, 1.51)", "{}", "4");
  EXPECT_RESULT("States.MathAdd(-1.5, -1.51)", "{}", "-3");
  EXPECT_RESULT("States.MathAdd(-0.5, 0.5)", "{}", "1");
  EXPECT_RESULT("States.MathAdd(-2.5, 0)", "{}", "-2");
  EXPECT_RESULT("States.MathAdd(2147483646, 1)", "{}", "2147483647");
  EXPECT_RESULT("States.MathAdd(-2147483647, -1)", "{}", "-2147483648");
  EXPECT_RESULT("States.MathAdd(States.MathAdd($.x, 1), 2)", R"({"x":5})", "8");
  EXPECT_INVALID("States.MathAdd(2147483647, 1)", "{}", "States.MathAdd");
  EXPECT_INVALID("States.MathAdd(-2147483648, -1)", "{}", "States.MathAdd");
  EXPECT_INVALID("States.MathAdd(3000000000, 1)", "{}", "States.MathAdd");
  EXPECT_INVALID("States.MathAdd($.a, $.b)", R"({"a":1,"b":"NOT A NUMBER"})",
                 "States.MathAdd");
  EXPECT_INVALID("States.MathAdd('1', 2)", "{}", "States.MathAdd");
  EXPECT_INVALID("States.MathAdd(null, 1)", "{}", "States.MathAdd");
  EXPECT_INVALID("States.MathAdd(true, 1)", "{}", "States.MathAdd");
  EXPECT_INVALID("States.MathAdd(1)", "{}", "States.MathAdd");
  EXPECT_INVALID("States.MathAdd(1, 2, 3)", "{}", "States.MathAdd");
}

TEST_F(IntrinsicsTest, MathRandomDrawsFromTheRandomSource) {
  random_ = FakeRandom({0, ~uint64_t{0}, uint64_t{1} << 63});
  EXPECT_RESULT("States.MathRandom(1, 999)", "{}", "1");
  EXPECT_RESULT("States.MathRandom(1, 999)", "{}", "998");
  EXPECT_RESULT("States.MathRandom(0, 10)", "{}", "5");
  EXPECT_EQ(random_.calls(), 3);
  // Fractions are rounded: [2, 5), and [1, 2) for (1.4, 1.6).
  random_ = FakeRandom({~uint64_t{0}, 0, ~uint64_t{0}});
  EXPECT_RESULT("States.MathRandom(1.6, 5.4)", "{}", "4");
  EXPECT_RESULT("States.MathRandom(1.6, 5.4)", "{}", "2");
  EXPECT_RESULT("States.MathRandom(1.4, 1.6)", "{}", "1");
  random_ = FakeRandom({~uint64_t{0}});
  EXPECT_RESULT("States.MathRandom($.s, $.e)", R"({"s":-1000000,"e":1000000})",
                "999999");
}

TEST_F(IntrinsicsTest, MathRandomWithSeedIsJavaRandom) {
  random_ = FakeRandom({12345});
  // new java.util.Random(42).nextInt(10) == 0; AWS answers -5 for (-5, 5, 42).
  EXPECT_RESULT("States.MathRandom(-5, 5, 42)", "{}", "-5");
  EXPECT_RESULT("States.MathRandom(0, 16, 42)", "{}", "11");
  absl::StatusOr<std::string> first = Run("States.MathRandom(1, 100, 42)");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Run("States.MathRandom(1, 100, 42)").value_or(""), *first);
  EXPECT_EQ(random_.calls(), 0);
  absl::StatusOr<std::string> seeded = Run("States.MathRandom(1, 1000, -10)");
  ASSERT_TRUE(seeded.ok());
  int value = std::stoi(*seeded);
  EXPECT_GE(value, 1);
  EXPECT_LT(value, 1000);
}

TEST_F(IntrinsicsTest, MathRandomErrors) {
  EXPECT_INVALID("States.MathRandom(1, 1)", "{}", "States.MathRandom");
  EXPECT_INVALID("States.MathRandom(10, 5)", "{}", "States.MathRandom");
  EXPECT_INVALID("States.MathRandom(0.6, 1.4)", "{}", "States.MathRandom");
  EXPECT_INVALID("States.MathRandom('a', 10)", "{}", "States.MathRandom");
  EXPECT_INVALID("States.MathRandom(1, 10, 'seed')", "{}", "States.MathRandom");
  EXPECT_INVALID("States.MathRandom(1, 10, null)", "{}", "States.MathRandom");
  EXPECT_INVALID("States.MathRandom($.s, 10)", R"({"s":null})",
                 "States.MathRandom");
  EXPECT_INVALID("States.MathRandom(-2147483648, 2147483647)", "{}",
                 "States.MathRandom");
  EXPECT_INVALID("States.MathRandom(1)", "{}", "States.MathRandom");
  EXPECT_INVALID("States.MathRandom(1, 10, 5, 99)", "{}", "States.MathRandom");
}

// --- Strings and ids
// ---------------------------------------------------------------

TEST_F(IntrinsicsTest, StringSplit) {
  EXPECT_RESULT("States.StringSplit($.s, ',')", R"({"s":"1,2,3,4,5"})",
                R"(["1","2","3","4","5"])");
  // Every delimiter character splits and empty tokens are dropped.
  EXPECT_RESULT("States.StringSplit($.s, '.+,=')",
                R"({"s":"This.is+a,test=string"})",
                R"(["This","is","a","test","string"])");
  EXPECT_RESULT("States.StringSplit($.s, ',')", R"({"s":", , ,"})",
                R"([" "," "])");
  EXPECT_RESULT("States.StringSplit($.s, ',')", R"({"s":",,,,"})", "[]");
  EXPECT_RESULT("States.StringSplit($.s, ',')", R"({"s":""})", "[]");
  EXPECT_RESULT("States.StringSplit($.s, '')", R"({"s":"abc"})", R"(["abc"])");
  EXPECT_RESULT("States.StringSplit($.s, $.d)",
                R"({"s":"split on T and \nnew line","d":"T\n"})",
                R"(["split on "," and ","new line"])");
  EXPECT_RESULT("States.StringSplit($.s, '✓')", R"({"s":"a✓b✓"})",
                R"(["a","b"])");
  EXPECT_RESULT("States.StringSplit($$.Execution.Input.csv, ',')", "{}",
                R"(["x","y","z"])");
  EXPECT_INVALID("States.StringSplit($.s, ',')", R"({"s":123})",
                 "States.StringSplit");
  EXPECT_INVALID("States.StringSplit($.s, $.d)", R"({"s":"a,b","d":null})",
                 "States.StringSplit");
  EXPECT_INVALID("States.StringSplit($.s, $.d)", R"({"s":"a,b","d":[","]})",
                 "States.StringSplit");
  EXPECT_INVALID("States.StringSplit($.s)", R"({"s":"a"})",
                 "States.StringSplit");
}

TEST_F(IntrinsicsTest, Uuid) {
  random_ = FakeRandom({0x0123456789abcdefULL, 0xfedcba9876543210ULL});
  EXPECT_RESULT("States.UUID()", "{}",
                R"("01234567-89ab-4def-bedc-ba9876543210")");
  EXPECT_EQ(random_.calls(), 2);
  random_ = FakeRandom({0, 0});
  EXPECT_RESULT("States.UUID()", "{}",
                R"("00000000-0000-4000-8000-000000000000")");
  EXPECT_INVALID("States.UUID(1)", "{}", "States.UUID");
}

// --- Nesting
// -------------------------------------------------------------------------

TEST_F(IntrinsicsTest, NestedCalls) {
  EXPECT_RESULT(
      "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), 0)",
      "{}", R"("alpha")");
  EXPECT_RESULT(
      "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), "
      "States.MathAdd(States.ArrayLength(States.StringSplit($$.StateMachine."
      "Name, '-')), -1))",
      "{}", R"("gamma")");
  EXPECT_RESULT(
      "States.Format('{}.{}.{}', "
      "States.ArrayGetItem(States.StringSplit(States.ArrayGetItem("
      "States.StringSplit($.Arn, '/'), 2), '.'), 0), "
      "States.ArrayGetItem(States.StringSplit("
      "States.ArrayGetItem(States.StringSplit($.Arn, '/'), 2), '.'), 1), "
      "States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States."
      "StringSplit($.Arn, '/'), "
      "2), '.'), 2))",
      R"({"Arn":"arn:aws:imagebuilder:us-east-1:1:image/my-image/1.0.2/1"})",
      R"("1.0.2")");
  EXPECT_RESULT("States.Base64Decode(States.Base64Encode($.s))",
                R"({"s":"hello"})", R"("hello")");
  EXPECT_EQ(Error("States.Array(States.MathAdd('x', 1))"),
            Invalid("States.Array(States.MathAdd('x', 1))", "States.MathAdd"));
}

}  // namespace
}  // namespace stepflow::asl
