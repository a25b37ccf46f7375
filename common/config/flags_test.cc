#include "common/config/flags.h"

#include "gtest/gtest.h"

namespace stepflow::config {
namespace {

TEST(FlagSetTest, ParsesAllForms) {
  std::string name = "x";
  int count = 1;
  bool verbose = false;
  FlagSet flags("prog", "desc");
  flags.Add("name", &name, "the name");
  flags.Add("count", &count, "how many");
  flags.Add("verbose", &verbose, "talk");
  const char* argv[] = {"prog", "--name", "a b", "pos", "--count=7", "--verbose", "--", "--not-a-flag"};
  ASSERT_TRUE(flags.Parse(8, const_cast<char**>(argv)).ok());
  EXPECT_EQ(name, "a b");
  EXPECT_EQ(count, 7);
  EXPECT_TRUE(verbose);
  EXPECT_EQ(flags.positional(), std::vector<std::string>{"pos"});
  EXPECT_EQ(flags.after_dash_dash(), std::vector<std::string>{"--not-a-flag"});
  EXPECT_NE(flags.Usage().find("--count VALUE"), std::string::npos);
  EXPECT_NE(flags.Usage().find("(default 1)"), std::string::npos);
}

TEST(FlagSetTest, RejectsBadInput) {
  int count = 0;
  FlagSet flags("prog", "desc");
  flags.Add("count", &count, "how many");
  const char* unknown[] = {"prog", "--nope"};
  EXPECT_FALSE(flags.Parse(2, const_cast<char**>(unknown)).ok());
  FlagSet flags2("prog", "desc");
  flags2.Add("count", &count, "how many");
  const char* bad[] = {"prog", "--count", "x"};
  EXPECT_FALSE(flags2.Parse(3, const_cast<char**>(bad)).ok());
  FlagSet flags3("prog", "desc");
  flags3.Add("count", &count, "how many");
  const char* missing[] = {"prog", "--count"};
  EXPECT_FALSE(flags3.Parse(2, const_cast<char**>(missing)).ok());
}

}  // namespace
}  // namespace stepflow::config
