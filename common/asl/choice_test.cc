#include "common/asl/choice.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/asl/path.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::asl {

// Found by argument-dependent lookup, so outside the anonymous namespace.
void PrintTo(const ChoiceDiagnostic& d, std::ostream* os) {
  *os << "{" << d.code << ", \"" << d.message << "\", " << d.location << "}";
}

namespace {

using ::testing::ElementsAre;

json::Document MustParseJson(absl::string_view text) {
  absl::StatusOr<json::Document> doc = json::Parse(text);
  EXPECT_TRUE(doc.ok()) << doc.status() << " in " << text;
  return doc.ok() ? std::move(*doc) : json::Document();
}

// State input, context object and variables, resolved the way the
// interpreter does: "$..." into the input, "$$..." into the context object,
// "$name..." into the variables.
class Data {
 public:
  explicit Data(
      absl::string_view input,
      absl::string_view context = R"({"State":{"Name":"Route"}})",
      absl::string_view variables = R"({"limit":10,"cfg":{"mode":"fast"}})")
      : input_(MustParseJson(input)),
        context_(MustParseJson(context)),
        variables_(MustParseJson(variables)) {}

  ChoicePathResolver resolver() const {
    return [this](
               absl::string_view path) -> absl::StatusOr<const json::Value*> {
      const json::Value* root = &input_;
      std::string reference(path);
      if (path.size() > 1 && path[1] == '$') {
        root = &context_;
      } else if (path.size() > 1 && path[1] != '.' && path[1] != '[') {
        size_t end = path.find_first_of(".[");
        if (end == absl::string_view::npos) end = path.size();
        std::string name(path.substr(1, end - 1));
        if (!variables_.HasMember(name.c_str()))
          return absl::NotFoundError(name);
        root = &variables_[name.c_str()];
        reference = absl::StrCat("$", path.substr(end));
      }
      absl::StatusOr<ReferencePath> parsed = ReferencePath::Parse(reference);
      if (!parsed.ok()) return parsed.status();
      const json::Value* found = parsed->Find(*root);
      if (found == nullptr) return absl::NotFoundError(path);
      return found;
    };
  }

 private:
  json::Document input_;
  json::Document context_;
  json::Document variables_;
};

std::unique_ptr<ChoiceRule> MustParseRule(absl::string_view text,
                                          bool top_level = false) {
  json::Document doc = MustParseJson(text);
  std::vector<ChoiceDiagnostic> diagnostics;
  std::unique_ptr<ChoiceRule> rule =
      ChoiceRule::Parse(doc, top_level, "/R", &diagnostics);
  for (const ChoiceDiagnostic& d : diagnostics) {
    ADD_FAILURE() << d.code << ": " << d.message << " at " << d.location
                  << " in " << text;
  }
  return rule;
}

absl::StatusOr<bool> Evaluate(absl::string_view rule_text,
                              absl::string_view input) {
  std::unique_ptr<ChoiceRule> rule = MustParseRule(rule_text);
  if (rule == nullptr) return absl::InternalError("rule did not parse");
  Data data(input);
  return rule->Evaluate(data.resolver());
}

// A rule comparing $.v with `operand`, either as the literal or, for the
// Path form, through $.w.
struct Case {
  std::string op;
  std::string variable;  // JSON of $.v
  std::string operand;   // JSON of the literal, and of $.w for the Path form
  bool expected;
};

void ExpectCases(const std::vector<Case>& cases, bool with_path_form) {
  for (const Case& c : cases) {
    std::string literal_rule =
        absl::StrCat(R"({"Variable":"$.v",")", c.op, R"(":)", c.operand, "}");
    std::string input =
        absl::StrCat(R"({"v":)", c.variable, R"(,"w":)", c.operand, "}");
    absl::StatusOr<bool> result = Evaluate(literal_rule, input);
    ASSERT_TRUE(result.ok())
        << result.status() << " for " << literal_rule << " on " << input;
    EXPECT_EQ(*result, c.expected) << literal_rule << " on " << input;
    if (!with_path_form) continue;
    std::string path_rule =
        absl::StrCat(R"({"Variable":"$.v",")", c.op, R"(Path":"$.w"})");
    result = Evaluate(path_rule, input);
    ASSERT_TRUE(result.ok())
        << result.status() << " for " << path_rule << " on " << input;
    EXPECT_EQ(*result, c.expected) << path_rule << " on " << input;
  }
}

// Values of every JSON type that are not of `keep`'s type: each must make a
// comparison false rather than fail.
std::vector<std::string> OtherTypes(absl::string_view keep) {
  std::vector<std::string> out;
  for (const char* v :
       {"null", "0", "1.5", R"("")", R"("x")", R"("2016-03-14T01:59:00Z")",
        "true", "false", "[]", "[1]", "{}", R"({"a":1})"}) {
    std::string value(v);
    bool is_string = value[0] == '"';
    bool is_number = value[0] == '0' || value[0] == '1';
    bool is_bool = value == "true" || value == "false";
    if ((keep == "string" && is_string) || (keep == "number" && is_number) ||
        (keep == "boolean" && is_bool)) {
      continue;
    }
    out.push_back(value);
  }
  return out;
}

TEST(ChoiceRuleTest, StringOperators) {
  std::vector<Case> cases = {
      {"StringEquals", R"("abc")", R"("abc")", true},
      {"StringEquals", R"("abc")", R"("abd")", false},
      {"StringEquals", R"("abc")", R"("ABC")", false},  // no case folding
      {"StringEquals", R"(" ")", R"("     ")",
       false},  // no white-space collapsing
      {"StringEquals", R"("")", R"("")", true},
      // Timestamps are strings too, compared as text.
      {"StringEquals", R"("2016-03-14T01:59:00Z")", R"("2016-03-14T01:59:00Z")",
       true},
      {"StringLessThan", R"("A")", R"("AB")", true},
      {"StringLessThan", R"("AB")", R"("A")", false},
      {"StringLessThan", R"("")", R"("")", false},
      {"StringLessThan", R"("B")", R"("a")", true},
      {"StringGreaterThan", R"("AB")", R"("A")", true},
      {"StringGreaterThan", R"("A")", R"("A ")", false},
      {"StringGreaterThan", R"("b")", R"("b")", false},
      {"StringLessThanEquals", R"("A")", R"("AB")", true},
      {"StringLessThanEquals", R"("AB")", R"("AB")", true},
      {"StringLessThanEquals", R"("AB")", R"("A")", false},
      {"StringGreaterThanEquals", R"("AB")", R"("A")", true},
      {"StringGreaterThanEquals", R"("A")", R"("A")", true},
      {"StringGreaterThanEquals", R"("A")", R"("AB")", false},
  };
  for (const char* op : {"StringEquals", "StringLessThan", "StringGreaterThan",
                         "StringLessThanEquals", "StringGreaterThanEquals"}) {
    for (const std::string& other : OtherTypes("string")) {
      cases.push_back({op, other, R"("x")", false});
    }
  }
  ExpectCases(cases, /*with_path_form=*/true);
}

TEST(ChoiceRuleTest, StringPathOperandOfAnotherTypeIsFalse) {
  for (const std::string& other : OtherTypes("string")) {
    std::string input = absl::StrCat(R"({"v":"x","w":)", other, "}");
    for (const char* op :
         {"StringEqualsPath", "StringLessThanPath", "StringGreaterThanPath",
          "StringLessThanEqualsPath", "StringGreaterThanEqualsPath"}) {
      absl::StatusOr<bool> r = Evaluate(
          absl::StrCat(R"({"Variable":"$.v",")", op, R"(":"$.w"})"), input);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_FALSE(*r) << op << " " << input;
    }
  }
}

TEST(ChoiceRuleTest, StringsCompareByUtf16CodeUnitsLikeJava) {
  // U+1F600 is the surrogate pair D83D DE00, so Java's compareTo puts it
  // before U+FFFD, while code point order puts it after.
  EXPECT_TRUE(*Evaluate(R"({"Variable":"$.v","StringLessThan":"\uFFFD"})",
                        R"({"v":"\uD83D\uDE00"})"));
  EXPECT_FALSE(*Evaluate(R"({"Variable":"$.v","StringGreaterThan":"\uFFFD"})",
                         R"({"v":"\uD83D\uDE00"})"));
  // Elsewhere UTF-16 order agrees with code point order.
  EXPECT_TRUE(*Evaluate(R"({"Variable":"$.v","StringGreaterThan":"e"})",
                        R"({"v":"\u00e9"})"));
  EXPECT_TRUE(*Evaluate(R"({"Variable":"$.v","StringLessThan":"\uD83D\uDE01"})",
                        R"({"v":"\uD83D\uDE00"})"));
  EXPECT_TRUE(*Evaluate(R"({"Variable":"$.v","StringLessThan":"\u00e9"})",
                        R"({"v":"\u00e8z"})"));
  EXPECT_TRUE(*Evaluate(R"({"Variable":"$.v","StringEquals":"\u00e9t\u00e9"})",
                        R"({"v":"\u00e9t\u00e9"})"));
  // Combining sequences are not normalized: e + U+0301 is not U+00E9.
  EXPECT_FALSE(*Evaluate(R"({"Variable":"$.v","StringEquals":"\u00e9"})",
                         R"({"v":"e\u0301"})"));
}

TEST(ChoiceRuleTest, StringMatches) {
  struct Match {
    std::string pattern;  // JSON string literal
    std::string subject;  // JSON string literal
    bool expected;
  };
  const std::vector<Match> matches = {
      {R"("foo*.log")", R"("foo23.log")", true},
      {R"("*.log")", R"("zebra.log")", true},
      {R"("foo*.*")", R"("foobar.zebra")", true},
      {R"("foo*.log")", R"("foo23.txt")", false},
      {R"("exact")", R"("exact")", true},
      {R"("exact")", R"("exactly")", false},
      {R"("*")", R"("")", true},
      {R"("*")", R"("anything")", true},
      {R"("")", R"("")", true},
      {R"("")", R"("x")", false},
      {R"("a*b*c")", R"("abc")", true},
      {R"("a*b*c")", R"("aXXbYYc")", true},
      {R"("a*b*c")", R"("acb")", false},
      {R"("a*a")", R"("a")", false},  // the ends may not overlap
      {R"("a*a")", R"("aa")", true},
      {R"("*aa")", R"("aaa")", true},
      {R"("**")", R"("x")", true},
      {R"("?")", R"("x")", false},  // only * is special
      {R"("[a]")", R"("[a]")", true},
      {R"("caf\u00e9*")", R"("caf\u00e9 au lait")", true},
      // "\\*" in JSON is the text \*, a literal star.
      {R"("a\\*b")", R"("a*b")", true},
      {R"("a\\*b")", R"("aXb")", false},
      {R"("*\\**")", R"("x*y")", true},
      {R"("*\\**")", R"("xy")", false},
      // "\\\\" in JSON is the text \\, a literal backslash.
      {R"("a\\\\b")", R"("a\\b")", true},
      {R"("a\\\\*")", R"("a\\xyz")", true},
      {R"("a\\\\*")", R"("axyz")", false},
      // A backslash before another character stands for that character.
      {R"("a\\b")", R"("ab")", true},
  };
  for (const Match& m : matches) {
    std::string rule =
        absl::StrCat(R"({"Variable":"$.v","StringMatches":)", m.pattern, "}");
    absl::StatusOr<bool> r =
        Evaluate(rule, absl::StrCat(R"({"v":)", m.subject, "}"));
    ASSERT_TRUE(r.ok()) << r.status() << " for " << rule;
    EXPECT_EQ(*r, m.expected) << m.pattern << " on " << m.subject;
  }
  for (const std::string& other : OtherTypes("string")) {
    EXPECT_FALSE(*Evaluate(R"({"Variable":"$.v","StringMatches":"*"})",
                           absl::StrCat(R"({"v":)", other, "}")))
        << other;
  }
}

TEST(ChoiceRuleTest, StringMatchesWithAnOpenEscapeFailsAtRuntime) {
  absl::StatusOr<bool> r = Evaluate(
      R"({"Variable":"$.v","StringMatches":"abc\\"})", R"({"v":"abc"})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "States.Runtime: Invalid StringMatches pattern 'abc\\': it ends "
            "with an open escape character '\\'.");
}

TEST(ChoiceRuleTest, NumericOperators) {
  std::vector<Case> cases = {
      {"NumericEquals", "1", "1", true},
      {"NumericEquals", "1", "1.0", true},
      {"NumericEquals", "1.0", "1", true},
      {"NumericEquals", "0", "-0.0", true},
      {"NumericEquals", "1", "2", false},
      {"NumericEquals", "1.1", "1.1", true},
      {"NumericEquals", "1e2", "100", true},
      {"NumericEquals", "-5", "-5", true},
      // Exact beyond 2^53 and for unsigned 64-bit values.
      {"NumericEquals", "9007199254740993", "9007199254740992", false},
      {"NumericEquals", "18446744073709551615", "18446744073709551615", true},
      {"NumericEquals", "18446744073709551615", "18446744073709551614", false},
      {"NumericLessThan", "1", "2", true},
      {"NumericLessThan", "2", "2", false},
      {"NumericLessThan", "-1.5", "-1", true},
      {"NumericLessThan", "9007199254740992", "9007199254740993", true},
      {"NumericGreaterThan", "2", "1.999", true},
      {"NumericGreaterThan", "2", "2", false},
      {"NumericGreaterThan", "18446744073709551615", "-9223372036854775808",
       true},
      {"NumericLessThanEquals", "2", "2.0", true},
      {"NumericLessThanEquals", "2.5", "2", false},
      {"NumericLessThanEquals", "-3", "2", true},
      {"NumericGreaterThanEquals", "2", "2", true},
      {"NumericGreaterThanEquals", "1", "2", false},
      {"NumericGreaterThanEquals", "1e300", "1", true},
  };
  for (const char* op :
       {"NumericEquals", "NumericLessThan", "NumericGreaterThan",
        "NumericLessThanEquals", "NumericGreaterThanEquals"}) {
    for (const std::string& other : OtherTypes("number"))
      cases.push_back({op, other, "0", false});
    cases.push_back(
        {op, R"("1")", "1", false});  // a numeric string is not a number
  }
  ExpectCases(cases, /*with_path_form=*/true);
}

TEST(ChoiceRuleTest, NumericPathOperandOfAnotherTypeIsFalse) {
  for (const std::string& other : OtherTypes("number")) {
    std::string input = absl::StrCat(R"({"v":0,"w":)", other, "}");
    for (const char* op :
         {"NumericEqualsPath", "NumericLessThanPath", "NumericGreaterThanPath",
          "NumericLessThanEqualsPath", "NumericGreaterThanEqualsPath"}) {
      absl::StatusOr<bool> r = Evaluate(
          absl::StrCat(R"({"Variable":"$.v",")", op, R"(":"$.w"})"), input);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_FALSE(*r) << op << " " << input;
    }
  }
}

TEST(ChoiceRuleTest, BooleanEquals) {
  std::vector<Case> cases = {
      {"BooleanEquals", "true", "true", true},
      {"BooleanEquals", "false", "false", true},
      {"BooleanEquals", "true", "false", false},
      {"BooleanEquals", "false", "true", false},
  };
  for (const std::string& other : OtherTypes("boolean")) {
    cases.push_back({"BooleanEquals", other, "true", false});
    cases.push_back({"BooleanEquals", other, "false", false});
  }
  ExpectCases(cases, /*with_path_form=*/true);
  for (const std::string& other : OtherTypes("boolean")) {
    EXPECT_FALSE(*Evaluate(R"({"Variable":"$.v","BooleanEqualsPath":"$.w"})",
                           absl::StrCat(R"({"v":true,"w":)", other, "}")));
  }
}

TEST(ChoiceRuleTest, TimestampOperators) {
  const std::string t0 = R"("2012-10-09T19:00:55Z")";
  const std::string t1 = R"("2012-10-09T19:00:56Z")";
  std::vector<Case> cases = {
      {"TimestampEquals", t0, t0, true},
      {"TimestampEquals", t0, t1, false},
      {"TimestampEquals", t1, t0, false},
      // Instants, not text: offsets and trailing zeros do not matter.
      {"TimestampEquals", R"("2012-10-09T20:00:55+01:00")", t0, true},
      {"TimestampEquals", R"("2012-10-09T19:00:55.000Z")", t0, true},
      {"TimestampEquals", R"("2012-10-09T19:00:55.001Z")", t0, false},
      {"TimestampLessThan", t0, t1, true},
      {"TimestampLessThan", t0, t0, false},
      {"TimestampLessThan", t1, t0, false},
      {"TimestampLessThan", R"("2012-10-09T19:00:55.999999999Z")", t1, true},
      {"TimestampGreaterThan", t1, t0, true},
      {"TimestampGreaterThan", t0, t0, false},
      {"TimestampGreaterThan", t0, t1, false},
      {"TimestampGreaterThan", R"("2012-10-09T19:00:55-00:01")", t0, true},
      {"TimestampLessThanEquals", t0, t0, true},
      {"TimestampLessThanEquals", t0, t1, true},
      {"TimestampLessThanEquals", t1, t0, false},
      {"TimestampGreaterThanEquals", t0, t0, true},
      {"TimestampGreaterThanEquals", t1, t0, true},
      {"TimestampGreaterThanEquals", t0, t1, false},
  };
  for (const char* op :
       {"TimestampEquals", "TimestampLessThan", "TimestampGreaterThan",
        "TimestampLessThanEquals", "TimestampGreaterThanEquals"}) {
    for (const char* other :
         {"null", "0", "1.5", "true", "[]", "{}", R"("")", R"(" ")",
          R"("2012-10-09T19:00:55")", R"("2023-02-24 12:15:56.832957")",
          R"("2012-10-09t19:00:55z")", R"("HelloWorld")"}) {
      cases.push_back({op, other, t0, false});
    }
  }
  ExpectCases(cases, /*with_path_form=*/true);
}

TEST(ChoiceRuleTest, TimestampPathOperandThatIsNoTimestampIsFalse) {
  for (const char* other :
       {"null", "0", "true", R"("2012-10-09")", R"("x")", "{}"}) {
    std::string input =
        absl::StrCat(R"({"v":"2012-10-09T19:00:55Z","w":)", other, "}");
    for (const char* op :
         {"TimestampEqualsPath", "TimestampLessThanPath",
          "TimestampGreaterThanPath", "TimestampLessThanEqualsPath",
          "TimestampGreaterThanEqualsPath"}) {
      absl::StatusOr<bool> r = Evaluate(
          absl::StrCat(R"({"Variable":"$.v",")", op, R"(":"$.w"})"), input);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_FALSE(*r) << op << " " << input;
    }
  }
}

TEST(ChoiceRuleTest, TypeTests) {
  // The value matrix of LocalStack's test_is_operators (recorded against AWS).
  struct Row {
    std::string value;
    bool null, numeric, string, boolean, timestamp;
  };
  const std::vector<Row> rows = {
      {"null", true, false, false, false, false},
      {"0", false, true, false, false, false},
      {"0.0", false, true, false, false, false},
      {"1", false, true, false, false, false},
      {"1.1", false, true, false, false, false},
      {"-7", false, true, false, false, false},
      {R"("")", false, false, true, false, false},
      {R"(" ")", false, false, true, false, false},
      {R"("HelloWorld")", false, false, true, false, false},
      {R"("1")", false, false, true, false, false},
      {R"("2012-10-09T19:00:55")", false, false, true, false, false},
      {R"("2012-10-09T19:00:55Z")", false, false, true, false, true},
      {R"("2012-10-09T19:00:55+01:00")", false, false, true, false, true},
      {R"("2012-10-09T19:00:55.123456Z")", false, false, true, false, true},
      {R"("2023-02-24")", false, false, true, false, false},
      {"[]", false, false, false, false, false},
      {R"([""])", false, false, false, false, false},
      {"{}", false, false, false, false, false},
      {R"({"A":0})", false, false, false, false, false},
      {"true", false, false, false, true, false},
      {"false", false, false, false, true, false},
  };
  for (const Row& row : rows) {
    const std::string input = absl::StrCat(R"({"v":)", row.value, "}");
    const std::pair<const char*, bool> checks[] = {
        {"IsNull", row.null},           {"IsNumeric", row.numeric},
        {"IsString", row.string},       {"IsBoolean", row.boolean},
        {"IsTimestamp", row.timestamp}, {"IsPresent", true}};
    for (const auto& [op, expected] : checks) {
      for (bool wanted : {true, false}) {
        std::string rule = absl::StrCat(R"({"Variable":"$.v",")", op, R"(":)",
                                        wanted ? "true" : "false", "}");
        absl::StatusOr<bool> r = Evaluate(rule, input);
        ASSERT_TRUE(r.ok()) << r.status();
        EXPECT_EQ(*r, expected == wanted) << rule << " on " << input;
      }
    }
  }
}

TEST(ChoiceRuleTest, IsPresentNeverFailsOnAMissingPath) {
  EXPECT_FALSE(*Evaluate(R"({"Variable":"$.missing","IsPresent":true})", "{}"));
  EXPECT_TRUE(*Evaluate(R"({"Variable":"$.missing","IsPresent":false})", "{}"));
  EXPECT_TRUE(*Evaluate(R"({"Variable":"$.a.b[3]","IsPresent":false})",
                        R"({"a":{"b":[]}})"));
  EXPECT_TRUE(
      *Evaluate(R"({"Variable":"$.a","IsPresent":true})", R"({"a":null})"));
}

TEST(ChoiceRuleTest, AMissingVariableFailsEveryOtherOperator) {
  const std::string expected =
      "States.Runtime: Invalid path '$.x': The choice state's condition path "
      "references an invalid value.";
  for (const char* rule : {
           R"({"Variable":"$.x","StringEquals":"a"})",
           R"({"Variable":"$.x","StringMatches":"*"})",
           R"({"Variable":"$.x","NumericEquals":1})",
           R"({"Variable":"$.x","NumericLessThanPath":"$.n"})",
           R"({"Variable":"$.x","BooleanEquals":true})",
           R"({"Variable":"$.x","TimestampEquals":"2012-10-09T19:00:55Z"})",
           R"({"Variable":"$.x","IsNull":true})",
           R"({"Variable":"$.x","IsNull":false})",
           R"({"Variable":"$.x","IsNumeric":false})",
           R"({"Variable":"$.x","IsString":false})",
           R"({"Variable":"$.x","IsBoolean":false})",
           R"({"Variable":"$.x","IsTimestamp":false})",
           R"({"Not":{"Variable":"$.x","IsNull":true}})",
       }) {
    absl::StatusOr<bool> r = Evaluate(rule, R"({"n":1})");
    ASSERT_FALSE(r.ok()) << rule;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), expected) << rule;
  }
}

TEST(ChoiceRuleTest, AMissingOperandPathFails) {
  absl::StatusOr<bool> r =
      Evaluate(R"({"Variable":"$.left","NumericLessThanEqualsPath":"$.right"})",
               R"({"left":8})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "States.Runtime: Invalid path '$.right': The choice state's "
            "condition path references an invalid value.");
  // The Variable is looked up first.
  r = Evaluate(R"({"Variable":"$.left","StringEqualsPath":"$.right"})", "{}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'$.left'"), std::string::npos);
}

TEST(ChoiceRuleTest, ContextObjectAndVariables) {
  EXPECT_TRUE(*Evaluate(
      R"({"Variable":"$$.State.Name","StringEquals":"Route"})", "{}"));
  EXPECT_TRUE(*Evaluate(R"({"Variable":"$.n","NumericLessThanPath":"$limit"})",
                        R"({"n":3})"));
  EXPECT_TRUE(
      *Evaluate(R"({"Variable":"$cfg.mode","StringEquals":"fast"})", "{}"));
  absl::StatusOr<bool> r =
      Evaluate(R"({"Variable":"$undefinedVariable","IsNull":true})", "{}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "States.Runtime: Invalid path '$undefinedVariable': The choice "
            "state's condition path references an invalid value.");
}

TEST(ChoiceRuleTest, OtherResolverErrorsPassThrough) {
  std::unique_ptr<ChoiceRule> rule =
      MustParseRule(R"({"Variable":"$.a","IsPresent":true})");
  ASSERT_NE(rule, nullptr);
  absl::StatusOr<bool> r = rule->Evaluate(
      [](absl::string_view) -> absl::StatusOr<const json::Value*> {
        return absl::InternalError("boom");
      });
  EXPECT_EQ(r.status(), absl::InternalError("boom"));
  // A resolver answering nullptr is treated as NOT_FOUND.
  r = rule->Evaluate(
      [](absl::string_view) -> absl::StatusOr<const json::Value*> {
        return nullptr;
      });
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
}

TEST(ChoiceRuleTest, BooleanExpressions) {
  const char* input = R"({"type":"Private","value":22})";
  EXPECT_TRUE(
      *Evaluate(R"({"And":[{"Variable":"$.value","NumericGreaterThanEquals":20},
                                   {"Variable":"$.value","NumericLessThan":30}]})",
                input));
  EXPECT_FALSE(
      *Evaluate(R"({"And":[{"Variable":"$.value","NumericGreaterThanEquals":20},
                                    {"Variable":"$.value","NumericLessThan":21}]})",
                input));
  EXPECT_TRUE(*Evaluate(R"({"Or":[{"Variable":"$.value","NumericEquals":1},
                                  {"Variable":"$.type","StringEquals":"Private"}]})",
                        input));
  EXPECT_FALSE(*Evaluate(R"({"Or":[{"Variable":"$.value","NumericEquals":1},
                                   {"Variable":"$.type","StringEquals":"Public"}]})",
                         input));
  EXPECT_FALSE(*Evaluate(
      R"({"Not":{"Variable":"$.type","StringEquals":"Private"}})", input));
  EXPECT_TRUE(*Evaluate(
      R"({"Not":{"Not":{"Variable":"$.type","StringEquals":"Private"}}})",
      input));
  // Nested three levels deep.
  EXPECT_TRUE(*Evaluate(R"({"Or":[
      {"And":[{"Variable":"$.type","IsPresent":false},{"Variable":"$.value","IsNull":true}]},
      {"And":[{"Variable":"$.type","IsString":true},
              {"Not":{"Or":[{"Variable":"$.value","NumericLessThan":0},
                            {"Variable":"$.value","NumericGreaterThan":100}]}}]}]})",
                        input));
}

TEST(ChoiceRuleTest, BooleanExpressionsShortCircuitInOrder) {
  const char* input = R"({"a":1})";
  // The second rule would fail (missing path), but is never evaluated.
  EXPECT_FALSE(*Evaluate(R"({"And":[{"Variable":"$.a","NumericEquals":2},
                                    {"Variable":"$.missing","NumericEquals":1}]})",
                         input));
  EXPECT_TRUE(*Evaluate(R"({"Or":[{"Variable":"$.a","NumericEquals":1},
                                  {"Variable":"$.missing","NumericEquals":1}]})",
                        input));
  // Once it is evaluated, its error ends the evaluation.
  EXPECT_FALSE(Evaluate(R"({"And":[{"Variable":"$.a","NumericEquals":1},
                                   {"Variable":"$.missing","NumericEquals":1}]})",
                        input)
                   .ok());
  EXPECT_FALSE(Evaluate(R"({"Or":[{"Variable":"$.a","NumericEquals":2},
                                  {"Variable":"$.missing","NumericEquals":1}]})",
                        input)
                   .ok());
}

TEST(ChoiceRuleTest, NextAndPaths) {
  std::unique_ptr<ChoiceRule> rule = MustParseRule(
      R"({"And":[{"Variable":"$.a","NumericEqualsPath":"$.b"},
                 {"Not":{"Variable":"$$.Execution.Id","IsPresent":true}},
                 {"Or":[{"Variable":"$v.x","StringMatches":"*"}]}],
          "Next":"Done","Comment":"why","Assign":{"x":1}})",
      /*top_level=*/true);
  ASSERT_NE(rule, nullptr);
  EXPECT_EQ(rule->next(), "Done");
  EXPECT_THAT(rule->Paths(),
              ElementsAre("$.a", "$.b", "$$.Execution.Id", "$v.x"));
  std::unique_ptr<ChoiceRule> nested =
      MustParseRule(R"({"Variable":"$","IsNull":false})");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->next(), "");
  EXPECT_THAT(nested->Paths(), ElementsAre("$"));
}

TEST(ChoiceRuleTest, AcceptsEveryPathForm) {
  for (const char* path :
       {"$", "$.a", "$.a.b[0]", "$['a b'][1].c", "$$", "$$.Execution.Id",
        "$$.Map.Item.Value", "$var", "$var.a[0]", "$_x1['k']"}) {
    EXPECT_NE(MustParseRule(absl::StrCat(R"({"Variable":")", path,
                                         R"(","IsPresent":true})")),
              nullptr)
        << path;
  }
}

// Parses `text` expecting it to be rejected; returns the diagnostics.
std::vector<ChoiceDiagnostic> Diagnose(absl::string_view text,
                                       bool top_level = false) {
  json::Document doc = MustParseJson(text);
  std::vector<ChoiceDiagnostic> diagnostics;
  EXPECT_EQ(
      ChoiceRule::Parse(doc, top_level, "/States/C/Choices/0", &diagnostics),
      nullptr)
      << text;
  return diagnostics;
}

MATCHER_P3(Diag, code, message, location, "") {
  return arg.code == code && arg.message == message && arg.location == location;
}

constexpr char kSchema[] = "SCHEMA_VALIDATION_FAILED";
constexpr char kPath[] = "INVALID_JSON_PATH";
constexpr char kBase[] = "/States/C/Choices/0";

TEST(ChoiceRuleDiagnosticsTest, RuleMustBeAnObject) {
  EXPECT_THAT(
      Diagnose(R"("StringEquals")", true),
      ElementsAre(Diag(kSchema, "Expected value of type Object", kBase)));
}

TEST(ChoiceRuleDiagnosticsTest, Next) {
  EXPECT_THAT(
      Diagnose(R"({"Variable":"$.a","IsNull":true})", true),
      ElementsAre(Diag(kSchema, "These fields are required: [Next]", kBase)));
  EXPECT_THAT(Diagnose(R"({"Variable":"$.a","IsNull":true,"Next":5})", true),
              ElementsAre(Diag(kSchema, "Expected value of type String",
                               std::string(kBase) + "/Next")));
  EXPECT_THAT(Diagnose(R"({"Variable":"$.a","IsNull":true,"Next":"X"})", false),
              ElementsAre(Diag(kSchema, "Field 'Next' is not supported",
                               std::string(kBase) + "/Next")));
  EXPECT_THAT(
      Diagnose(
          R"({"And":[{"Variable":"$.a","IsNull":true,"Next":"X"}],"Next":"Y"})",
          true),
      ElementsAre(Diag(kSchema, "Field 'Next' is not supported",
                       std::string(kBase) + "/And/0/Next")));
  EXPECT_THAT(
      Diagnose(
          R"({"Not":{"Variable":"$.a","IsNull":true,"Next":"X"},"Next":"Y"})",
          true),
      ElementsAre(Diag(kSchema, "Field 'Next' is not supported",
                       std::string(kBase) + "/Not/Next")));
}

TEST(ChoiceRuleDiagnosticsTest, UnknownFieldsAndOperators) {
  EXPECT_THAT(
      Diagnose(R"({"Variable":"$.a","StringMatchesPath":"$.b"})"),
      ElementsAre(
          Diag(kSchema, "Field 'StringMatchesPath' is not supported",
               std::string(kBase) + "/StringMatchesPath"),
          Diag(kSchema,
               "There should only be one of the following fields: "
               "[StringEquals, StringEqualsPath, StringLessThan, "
               "StringLessThanPath, StringGreaterThan, StringGreaterThanPath, "
               "StringLessThanEquals, StringLessThanEqualsPath, "
               "StringGreaterThanEquals, StringGreaterThanEqualsPath, "
               "StringMatches, NumericEquals, NumericEqualsPath, "
               "NumericLessThan, NumericLessThanPath, NumericGreaterThan, "
               "NumericGreaterThanPath, NumericLessThanEquals, "
               "NumericLessThanEqualsPath, NumericGreaterThanEquals, "
               "NumericGreaterThanEqualsPath, BooleanEquals, "
               "BooleanEqualsPath, TimestampEquals, TimestampEqualsPath, "
               "TimestampLessThan, TimestampLessThanPath, "
               "TimestampGreaterThan, TimestampGreaterThanPath, "
               "TimestampLessThanEquals, TimestampLessThanEqualsPath, "
               "TimestampGreaterThanEquals, TimestampGreaterThanEqualsPath, "
               "IsNull, IsPresent, IsNumeric, IsString, IsBoolean, "
               "IsTimestamp]",
               kBase)));
  EXPECT_THAT(
      Diagnose(R"({"Variable":"$.a","IsNull":true,"stringEquals":"x"})"),
      ElementsAre(Diag(kSchema, "Field 'stringEquals' is not supported",
                       std::string(kBase) + "/stringEquals")));
  // Assign belongs to top-level rules only; Condition to JSONata.
  EXPECT_THAT(Diagnose(R"({"Variable":"$.a","IsNull":true,"Assign":{}})"),
              ElementsAre(Diag(kSchema, "Field 'Assign' is not supported",
                               std::string(kBase) + "/Assign")));
  EXPECT_THAT(
      Diagnose(R"({"Variable":"$.a","IsNull":true,"Assign":[],"Next":"X"})",
               true),
      ElementsAre(Diag(kSchema, "Expected value of type Object",
                       std::string(kBase) + "/Assign")));
  EXPECT_THAT(Diagnose(R"({"Variable":"$.a","IsNull":true,"Comment":1})"),
              ElementsAre(Diag(kSchema, "Expected value of type String",
                               std::string(kBase) + "/Comment")));
}

TEST(ChoiceRuleDiagnosticsTest, ExactlyOneOperator) {
  std::vector<ChoiceDiagnostic> d =
      Diagnose(R"({"Variable":"$.a","StringEquals":"x","NumericEquals":1})");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].code, kSchema);
  EXPECT_EQ(d[0].location, kBase);
  EXPECT_EQ(d[0].message.rfind(
                "There should only be one of the following fields: [", 0),
            0u);
  d = Diagnose(R"({"Variable":"$.a"})");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].message.rfind(
                "There should only be one of the following fields: [", 0),
            0u);
}

TEST(ChoiceRuleDiagnosticsTest, ExactlyOneOfAndOrNotVariable) {
  const std::string one_of =
      "The object must have only one of the following fields, "
      "[And, Or, Not, Variable, Condition]";
  EXPECT_THAT(Diagnose(R"({})"), ElementsAre(Diag(kSchema, one_of, kBase)));
  EXPECT_THAT(Diagnose(R"({"Comment":"nothing"})"),
              ElementsAre(Diag(kSchema, one_of, kBase)));
  EXPECT_THAT(
      Diagnose(
          R"({"Variable":"$.a","IsNull":true,"Not":{"Variable":"$.a","IsNull":true}})"),
      ElementsAre(Diag(kSchema, one_of, kBase)));
  EXPECT_THAT(Diagnose(R"({"And":[{"Variable":"$.a","IsNull":true}],"Or":[]})"),
              ElementsAre(Diag(kSchema, one_of, kBase)));
  EXPECT_THAT(Diagnose(R"({"NumericEquals":1})"),
              ElementsAre(Diag(kSchema, "These fields are required: [Variable]",
                               kBase)));
  EXPECT_THAT(
      Diagnose(R"({"And":[{"Variable":"$.a","IsNull":true}],"IsNull":true})"),
      ElementsAre(Diag(kSchema, "Field 'IsNull' is not supported",
                       std::string(kBase) + "/IsNull")));
}

TEST(ChoiceRuleDiagnosticsTest, OperandTypes) {
  const struct {
    const char* rule;
    const char* message;
    const char* field;
  } cases[] = {
      {R"({"Variable":"$.a","NumericEquals":"1"})",
       "Expected value of type Number", "NumericEquals"},
      {R"({"Variable":"$.a","NumericLessThan":true})",
       "Expected value of type Number", "NumericLessThan"},
      {R"({"Variable":"$.a","StringEquals":1})",
       "Expected value of type String", "StringEquals"},
      {R"({"Variable":"$.a","StringGreaterThanEquals":null})",
       "Expected value of type String", "StringGreaterThanEquals"},
      {R"({"Variable":"$.a","StringMatches":["*"]})",
       "Expected value of type String", "StringMatches"},
      {R"({"Variable":"$.a","BooleanEquals":"true"})",
       "Expected value of type Boolean", "BooleanEquals"},
      {R"({"Variable":"$.a","IsNull":1})", "Expected value of type Boolean",
       "IsNull"},
      {R"({"Variable":"$.a","IsPresent":"yes"})",
       "Expected value of type Boolean", "IsPresent"},
      {R"({"Variable":"$.a","IsNumeric":null})",
       "Expected value of type Boolean", "IsNumeric"},
      {R"({"Variable":"$.a","IsString":{}})", "Expected value of type Boolean",
       "IsString"},
      {R"({"Variable":"$.a","IsBoolean":0})", "Expected value of type Boolean",
       "IsBoolean"},
      {R"({"Variable":"$.a","IsTimestamp":"true"})",
       "Expected value of type Boolean", "IsTimestamp"},
      {R"({"Variable":"$.a","TimestampEquals":5})",
       "Expected value of type String", "TimestampEquals"},
      {R"({"Variable":"$.a","TimestampEquals":"2016-03-14"})",
       "String does not match RFC3339 timestamp", "TimestampEquals"},
      {R"({"Variable":"$.a","TimestampLessThan":"2016-03-14T01:59:00"})",
       "String does not match RFC3339 timestamp", "TimestampLessThan"},
      {R"({"Variable":"$.a","TimestampGreaterThanEquals":"2016-03-14t01:59:00z"})",
       "String does not match RFC3339 timestamp", "TimestampGreaterThanEquals"},
      {R"({"Variable":"$.a","StringEqualsPath":1})",
       "Expected value of type String", "StringEqualsPath"},
      {R"({"Variable":"$.a","BooleanEqualsPath":true})",
       "Expected value of type String", "BooleanEqualsPath"},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(Diagnose(c.rule),
                ElementsAre(Diag(kSchema, c.message,
                                 std::string(kBase) + "/" + c.field)))
        << c.rule;
  }
}

TEST(ChoiceRuleDiagnosticsTest, BooleanOperands) {
  EXPECT_THAT(Diagnose(R"({"And":[]})"),
              ElementsAre(Diag(kSchema, "Value cannot be empty",
                               std::string(kBase) + "/And")));
  EXPECT_THAT(Diagnose(R"({"Or":[]})"),
              ElementsAre(Diag(kSchema, "Value cannot be empty",
                               std::string(kBase) + "/Or")));
  EXPECT_THAT(Diagnose(R"({"Or":{"Variable":"$.a","IsNull":true}})"),
              ElementsAre(Diag(kSchema, "Expected value of type Array",
                               std::string(kBase) + "/Or")));
  EXPECT_THAT(Diagnose(R"({"Not":[{"Variable":"$.a","IsNull":true}]})"),
              ElementsAre(Diag(kSchema, "Expected value of type Object",
                               std::string(kBase) + "/Not")));
  EXPECT_THAT(Diagnose(R"({"Not":"x"})"),
              ElementsAre(Diag(kSchema, "Expected value of type Object",
                               std::string(kBase) + "/Not")));
  EXPECT_THAT(Diagnose(R"({"And":[{"Variable":"$.a","IsNull":true},3]})"),
              ElementsAre(Diag(kSchema, "Expected value of type Object",
                               std::string(kBase) + "/And/1")));
}

TEST(ChoiceRuleDiagnosticsTest, Paths) {
  EXPECT_THAT(Diagnose(R"({"Variable":5,"IsNull":true})"),
              ElementsAre(Diag(kSchema, "Expected value of type String",
                               std::string(kBase) + "/Variable")));
  for (const char* bad : {"a.b", "", "$.", "$..a", "$.a[", "$.a[*]", "$[x]",
                          "$1abc", "$a-b", "$.a b"}) {
    EXPECT_THAT(
        Diagnose(absl::StrCat(R"({"Variable":")", bad, R"(","IsNull":true})")),
        ElementsAre(
            Diag(kPath,
                 absl::StrCat("The value for the field 'Variable' must be a "
                              "valid JSONPath: ",
                              bad),
                 std::string(kBase) + "/Variable")))
        << bad;
  }
  EXPECT_THAT(Diagnose(R"({"Variable":"$.a","NumericEqualsPath":"b"})"),
              ElementsAre(Diag(
                  kPath,
                  "The value for the field 'NumericEqualsPath' must be a valid "
                  "JSONPath: b",
                  std::string(kBase) + "/NumericEqualsPath")));
}

TEST(ChoiceRuleDiagnosticsTest, CollectsEveryProblem) {
  std::vector<ChoiceDiagnostic> d = Diagnose(
      R"({"Or":[{"Variable":"$.a","NumericEquals":"1"},
                {"And":[]},
                {"Not":{"Variable":"a","TimestampEquals":"yesterday"}},
                {"Variable":"$.b","IsNull":true}]})",
      /*top_level=*/true);
  EXPECT_THAT(
      d, ElementsAre(Diag(kSchema, "These fields are required: [Next]", kBase),
                     Diag(kSchema, "Expected value of type Number",
                          std::string(kBase) + "/Or/0/NumericEquals"),
                     Diag(kSchema, "Value cannot be empty",
                          std::string(kBase) + "/Or/1/And"),
                     Diag(kPath,
                          "The value for the field 'Variable' must be a valid "
                          "JSONPath: a",
                          std::string(kBase) + "/Or/2/Not/Variable"),
                     Diag(kSchema, "String does not match RFC3339 timestamp",
                          std::string(kBase) + "/Or/2/Not/TimestampEquals")));
}

}  // namespace
}  // namespace stepflow::asl
