#include "common/asl/path.h"

#include "gtest/gtest.h"

namespace stepflow::asl {
namespace {

TEST(ReferencePathTest, FindsNodes) {
  auto doc = json::Parse(R"({"a":{"b c":[10,{"d":true}]}})");
  ASSERT_TRUE(doc.ok());
  auto path = ReferencePath::Parse("$.a['b c'][1].d");
  ASSERT_TRUE(path.ok()) << path.status();
  const json::Value* found = path->Find(*doc);
  ASSERT_NE(found, nullptr);
  EXPECT_TRUE(found->GetBool());
  EXPECT_EQ(path->Canonical(), "$['a']['b c'][1]['d']");
  EXPECT_EQ(ReferencePath::Parse("$.a.x")->Find(*doc), nullptr);
  EXPECT_EQ(ReferencePath::Parse("$.a['b c'][5]")->Find(*doc), nullptr);
  EXPECT_EQ(ReferencePath::Parse("$")->Find(*doc), &*doc);
}

TEST(ReferencePathTest, RejectsMalformed) {
  for (const char* bad : {"", "a.b", "$.", "$[", "$['x'", "$[x]", "$.a b", "$..a",
                          "$.a[99999999999999999999]"}) {
    EXPECT_FALSE(ReferencePath::Parse(bad).ok()) << bad;
  }
  EXPECT_TRUE(ReferencePath::Parse("$$.Execution.Id")->is_context());
}

TEST(ReferencePathTest, SetCreatesIntermediateObjects) {
  auto doc = json::Parse(R"({"keep":1,"a":{"x":2}})");
  ASSERT_TRUE(doc.ok());
  auto& alloc = doc->GetAllocator();
  ASSERT_TRUE(ReferencePath::Parse("$.a.b.c")->Set(&*doc, json::Value(7), alloc).ok());
  ASSERT_TRUE(ReferencePath::Parse("$.keep")->Set(&*doc, json::Value("v"), alloc).ok());
  EXPECT_EQ(json::Serialize(*doc), R"({"keep":"v","a":{"x":2,"b":{"c":7}}})");
  EXPECT_FALSE(ReferencePath::Parse("$.keep.z")->Set(&*doc, json::Value(1), alloc).ok());
  EXPECT_FALSE(ReferencePath::Parse("$.a[0]")->Set(&*doc, json::Value(1), alloc).ok());
}

}  // namespace
}  // namespace stepflow::asl
