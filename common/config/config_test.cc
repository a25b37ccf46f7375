#include "common/config/arn.h"
#include "common/config/sharding.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::config {
namespace {

TEST(ShardingTest, HashIsStableAndSpreads) {
  // Fixed values: stored data is placed by this hash, so it must never change.
  EXPECT_EQ(StableHash(""), 14695981039346656037ull);
  EXPECT_EQ(StableHash("a"), 0xaf63dc4c8601ec8cull);
  std::vector<int> counts(4);
  for (int i = 0; i < 4000; ++i) counts[ShardOf("exec-" + std::to_string(i), 4)]++;
  for (int c : counts) EXPECT_GT(c, 800);
}

TEST(ShardingTest, MapOwnership) {
  auto map = ShardMap::Parse(8, "a:1, b:2");
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->servers().size(), 2u);
  EXPECT_EQ(map->OrdinalForShard(5), 1);
  EXPECT_TRUE(Owns(5, 1, 2));
  EXPECT_FALSE(Owns(5, 0, 2));
  EXPECT_EQ(map->ServerFor("x"), map->servers()[map->OrdinalFor("x")]);
  EXPECT_FALSE(ShardMap::Parse(8, "").ok());
  EXPECT_FALSE(ShardMap::Parse(8, "noport").ok());
  EXPECT_FALSE(ShardMap::Parse(1, "a:1,b:2").ok());
  EXPECT_FALSE(ShardMap::Parse(0, "a:1").ok());
}

TEST(ShardingTest, RoutableIdsCarryTheOwnersShard) {
  const std::string owner = "arn:aws:states:us-east-1:123456789012:execution:Orders:run-1";
  const std::string id = RoutableId(owner, "0123abcd-4567-89ab-cdef-0123456789ab");
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(id.substr(18), "-cdef-0123456789ab");
  auto hash = RoutingHashOfId(id);
  ASSERT_TRUE(hash.has_value());
  EXPECT_EQ(*hash, StableHash(owner));
  for (uint32_t shards : {1u, 16u, 256u, 1000u}) {
    EXPECT_EQ(ShardOfRoutingHash(*hash, shards), ShardOf(owner, shards));
  }
  EXPECT_FALSE(RoutingHashOfId("short").has_value());
  EXPECT_FALSE(RoutingHashOfId("0123ABCD-4567-89ab-cdef-0123456789ab").has_value());
  EXPECT_FALSE(RoutingHashOfId("0123abcd_4567-89ab-cdef-0123456789ab").has_value());
}

TEST(ArnTest, MapRunArns) {
  ArnScope scope;
  const std::string parent = ExecutionArn(scope, "Orders", "run-1");
  const std::string id = RoutableId(parent, "0123abcd-4567-89ab-cdef-0123456789ab");
  auto ref = ParseMapRunArn(scope, "arn:aws:states:us-east-1:123456789012:mapRun:Orders/Fan:" + id);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->run_name, "Orders/Fan");
  EXPECT_EQ(ref->run_id, id);
  EXPECT_EQ(ref->routing_hash, StableHash(parent));
  for (const std::string& bad : std::vector<std::string>{
           "arn:aws:states:us-east-1:123456789012:mapRun:Orders:" + id,
           "arn:aws:states:us-east-1:123456789012:mapRun:Orders/Fan:x",
           "arn:aws:states:eu-west-1:123456789012:mapRun:Orders/Fan:" + id, parent}) {
    auto status = ParseMapRunArn(scope, bad).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(status.message().substr(0, 10), "InvalidArn") << bad;
  }
  auto child = MapRunChildRoutingHash(
      scope, "arn:aws:states:us-east-1:123456789012:execution:Orders/Fan:" + id);
  ASSERT_TRUE(child.has_value());
  EXPECT_EQ(*child, StableHash(parent));
  EXPECT_FALSE(MapRunChildRoutingHash(scope, parent).has_value());
}

TEST(ArnTest, BuildAndParse) {
  ArnScope scope;
  std::string sm = StateMachineArn(scope, "Orders");
  EXPECT_EQ(sm, "arn:aws:states:us-east-1:123456789012:stateMachine:Orders");
  EXPECT_EQ(*StateMachineNameFromArn(scope, sm), "Orders");
  std::string ex = ExecutionArn(scope, "Orders", "run-1");
  auto names = ExecutionNamesFromArn(scope, ex);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(names->first, "Orders");
  EXPECT_EQ(names->second, "run-1");
  EXPECT_EQ(*ActivityNameFromArn(scope, ActivityArn(scope, "x")), "x");

  auto bad = StateMachineNameFromArn(scope, "nope");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "InvalidArn: Invalid Arn: 'Invalid ARN prefix: nope'");
  EXPECT_FALSE(StateMachineNameFromArn(scope, ex).ok());
  EXPECT_FALSE(StateMachineNameFromArn(
      scope, "arn:aws:states:eu-west-1:123456789012:stateMachine:Orders").ok());
}

// State machine ARNs as StartExecution takes them: plain, a version, an
// alias; each refusal with AWS's reason.
TEST(ArnTest, StateMachineRefs) {
  ArnScope scope;
  const std::string sm = StateMachineArn(scope, "Orders");
  auto plain = ParseStateMachineRef(scope, sm);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->name, "Orders");
  EXPECT_EQ(plain->state_machine_arn, sm);
  EXPECT_FALSE(plain->qualified());
  auto version = ParseStateMachineRef(scope, sm + ":12");
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->state_machine_arn, sm);
  EXPECT_EQ(version->version, 12);
  auto alias = ParseStateMachineRef(scope, sm + ":PROD");
  ASSERT_TRUE(alias.ok()) << alias.status();
  EXPECT_EQ(alias->state_machine_arn, sm);
  EXPECT_EQ(alias->alias, "PROD");

  auto reason = [&](const std::string& arn) {
    return std::string(ParseStateMachineRef(scope, arn).status().message());
  };
  EXPECT_EQ(reason("nope"), "InvalidArn: Invalid Arn: 'Invalid ARN prefix: nope'");
  EXPECT_EQ(reason("arn:aws:states:us-east-1"),
            "InvalidArn: Invalid Arn: 'Invalid ARN prefix: arn:aws:states:us-east-1'");
  const std::string activity = ActivityArn(scope, "Orders");
  EXPECT_EQ(reason(activity),
            "InvalidArn: Invalid Arn: 'Resource type not valid in this context: " + activity + "'");
  EXPECT_EQ(reason(sm + ":1:2"), "InvalidArn: Invalid Arn: 'Resource type not valid in this "
                                 "context: " + sm + ":1:2'");
  const std::string elsewhere = "arn:aws:states:eu-west-1:123456789012:stateMachine:Orders";
  EXPECT_EQ(reason(elsewhere),
            "InvalidArn: Invalid Arn: 'Invalid region or account: " + elsewhere + "'");
  const std::string other_account = "arn:aws:states:us-east-1:999999999999:stateMachine:Orders";
  EXPECT_EQ(reason(other_account),
            "InvalidArn: Invalid Arn: 'Invalid region or account: " + other_account + "'");
  EXPECT_EQ(reason(sm + ":"),
            "InvalidArn: Invalid Arn: 'Invalid resource name: " + sm + ":'");
  EXPECT_EQ(reason(sm + ":0"), "InvalidArn: Invalid Arn: 'Invalid version number: " + sm + ":0'");
  EXPECT_EQ(reason(sm + ":bad alias!"),
            "InvalidArn: Invalid Arn: 'Invalid alias name: " + sm + ":bad alias!'");

  // Another partition and region are this scope's own.
  ArnScope china;
  china.partition = "aws-cn";
  china.region = "cn-north-1";
  const std::string there = StateMachineArn(china, "Orders");
  EXPECT_EQ(there, "arn:aws-cn:states:cn-north-1:123456789012:stateMachine:Orders");
  EXPECT_TRUE(ParseStateMachineRef(china, there).ok());
  EXPECT_THAT(reason(there), ::testing::HasSubstr("Invalid region or account"));
}

TEST(ArnTest, ResourceNames) {
  EXPECT_TRUE(ValidateResourceName("Order_Flow-1.v2").ok());
  EXPECT_FALSE(ValidateResourceName("").ok());
  EXPECT_FALSE(ValidateResourceName(std::string(81, 'a')).ok());
  EXPECT_TRUE(ValidateResourceName(std::string(80, 'a')).ok());
  for (std::string bad : {"a b", "a:b", "a/b", "a*", "a\tb", "{x}", "a$b"}) {
    auto status = ValidateResourceName(bad);
    EXPECT_FALSE(status.ok()) << bad;
    EXPECT_EQ(status.message(), "InvalidName: Invalid Name: '" + bad + "'");
  }
}

}  // namespace
}  // namespace stepflow::config
