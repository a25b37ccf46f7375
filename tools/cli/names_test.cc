#include "tools/cli/names.h"

#include "gtest/gtest.h"

namespace stepflow::cli {
namespace {

TEST(NamesTest, NameBecomesStateMachineArn) {
  config::ArnScope scope;
  EXPECT_EQ(StateMachineArnFor(scope, "Orders"),
            "arn:aws:states:us-east-1:123456789012:stateMachine:Orders");
}

TEST(NamesTest, NameBecomesActivityArn) {
  config::ArnScope scope;
  EXPECT_EQ(ActivityArnFor(scope, "charge-card"),
            "arn:aws:states:us-east-1:123456789012:activity:charge-card");
}

TEST(NamesTest, ScopeComesFromRegionAndAccount) {
  config::ArnScope scope;
  scope.region = "eu-west-1";
  scope.account = "000000000001";
  EXPECT_EQ(StateMachineArnFor(scope, "A"),
            "arn:aws:states:eu-west-1:000000000001:stateMachine:A");
  EXPECT_EQ(ActivityArnFor(scope, "B"),
            "arn:aws:states:eu-west-1:000000000001:activity:B");
}

TEST(NamesTest, ArnsPassThroughUnchanged) {
  config::ArnScope scope;
  const std::string version_arn =
      "arn:aws:states:eu-west-1:1:stateMachine:Orders:3";
  EXPECT_EQ(StateMachineArnFor(scope, version_arn), version_arn);
  const std::string activity_arn = "arn:aws:states:eu-west-1:1:activity:x";
  EXPECT_EQ(ActivityArnFor(scope, activity_arn), activity_arn);
  EXPECT_TRUE(LooksLikeArn(activity_arn));
  EXPECT_FALSE(LooksLikeArn("arnold"));
}

}  // namespace
}  // namespace stepflow::cli
