#include "common/jsonata/jsonata.h"

#include <string>

#include "common/json/json.h"
#include "gtest/gtest.h"

namespace stepflow::jsonata {
namespace {

// Evaluates `expr` against the JSON text `input` ("" = no input) and returns
// the compact JSON of the result, "undefined", or "<code>" on error.
std::string Eval(const std::string& expr, const std::string& input = "",
                 const Environment& env = Environment()) {
  absl::StatusOr<std::unique_ptr<Expression>> compiled =
      Expression::Compile(expr);
  if (!compiled.ok()) {
    std::string msg(compiled.status().message());
    return msg.substr(0, msg.find(':'));
  }
  json::Document in;
  if (!input.empty()) {
    absl::StatusOr<json::Document> doc = json::Parse(input);
    EXPECT_TRUE(doc.ok()) << input;
    in = std::move(*doc);
  }
  json::Document out;
  absl::StatusOr<Result> r = (*compiled)->Evaluate(
      input.empty() ? nullptr : &in, {}, env, &out.GetAllocator());
  if (!r.ok()) {
    std::string msg(r.status().message());
    return msg.substr(0, msg.find(':'));
  }
  if (!r->defined) return "undefined";
  return json::Serialize(r->value);
}

TEST(JsonataTest, Paths) {
  EXPECT_EQ(Eval("a.b", R"({"a":{"b":1}})"), "1");
  EXPECT_EQ(Eval("a.b", R"({"a":[{"b":1},{"b":[2,3]}]})"), "[1,2,3]");
  EXPECT_EQ(Eval("a[0].b", R"({"a":[{"b":1},{"b":2}]})"), "1");
  EXPECT_EQ(Eval("a.b[]", R"({"a":{"b":1}})"), "[1]");
  EXPECT_EQ(Eval("missing", R"({"a":1})"), "undefined");
}

}  // namespace
}  // namespace stepflow::jsonata
