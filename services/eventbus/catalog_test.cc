// Catalog against an in-process mock cluster: writes are read back, a second
// replica rebuilds the same view, deletes cascade.
#include "services/eventbus/catalog.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/kafka/client.h"
#include "common/kafka/mock_cluster.h"
#include "common/kafka/topic_admin.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::eventbus {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

std::vector<std::string> Names(const std::vector<v1::EventBus>& buses) {
  std::vector<std::string> names;
  for (const auto& bus : buses) names.push_back(bus.name());
  return names;
}

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = kafka::MockKafkaCluster::Start();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    auto producer = kafka::Producer::Create(cluster_->bootstrap_servers());
    ASSERT_TRUE(producer.ok());
    producer_ = std::move(*producer);
    admin_ = std::make_unique<kafka::TopicAdmin>(
        kafka::TopicAdminOptions{.brokers = "",
                                 .mode = kafka::TopicCreation::kEmbedded,
                                 .embedded = cluster_.get()});
  }

  std::unique_ptr<Catalog> NewCatalog() {
    CatalogOptions options;
    options.brokers = cluster_->bootstrap_servers();
    options.admin = admin_.get();
    options.producer = producer_.get();
    auto catalog = Catalog::Start(options);
    EXPECT_TRUE(catalog.ok()) << catalog.status();
    EXPECT_TRUE((*catalog)->WaitReady(absl::Seconds(10)).ok());
    return std::move(*catalog);
  }

  std::unique_ptr<kafka::MockKafkaCluster> cluster_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::TopicAdmin> admin_;
};

TEST(BusTopicTest, NamesTopics) {
  EXPECT_EQ(BusTopic("orders"), "stepflow.events.orders");
  const std::string long_name(256, 'x');
  const std::string topic = BusTopic(long_name);
  EXPECT_EQ(topic.size(), 249u);
  EXPECT_NE(topic, BusTopic(std::string(255, 'x')));
  EXPECT_EQ(topic, BusTopic(long_name));
}

TEST(ArnTest, BusAndRuleArns) {
  config::ArnScope scope;
  EXPECT_EQ(EventBusArn(scope, "orders"),
            "arn:aws:events:us-east-1:123456789012:event-bus/orders");
  EXPECT_EQ(RuleArn(scope, "default", "r"),
            "arn:aws:events:us-east-1:123456789012:rule/r");
  EXPECT_EQ(RuleArn(scope, "orders", "r"),
            "arn:aws:events:us-east-1:123456789012:rule/orders/r");
}

TEST_F(CatalogTest, DefaultBusAlwaysExists) {
  auto catalog = NewCatalog();
  ASSERT_TRUE(catalog->FindBus("default").has_value());
  EXPECT_EQ(catalog->FindBus("default")->arn(),
            "arn:aws:events:us-east-1:123456789012:event-bus/default");
  EXPECT_THAT(Names(catalog->ListBuses()), ElementsAre("default"));
  EXPECT_FALSE(catalog->FindBus("orders").has_value());
}

TEST_F(CatalogTest, WritesAreReadBackAndReplicated) {
  auto catalog = NewCatalog();
  v1::EventBus bus;
  bus.set_name("orders");
  bus.set_description("shop orders");
  ASSERT_TRUE(catalog->PutBus(bus).ok());
  bus.set_name("a-bus");
  ASSERT_TRUE(catalog->PutBus(bus).ok());
  EXPECT_THAT(Names(catalog->ListBuses()),
              ElementsAre("a-bus", "default", "orders"));
  EXPECT_EQ(catalog->FindBus("orders")->description(), "shop orders");

  v1::Rule rule;
  rule.set_name("big");
  rule.set_event_bus_name("orders");
  rule.set_event_pattern(R"({"source":["shop"]})");
  ASSERT_TRUE(catalog->PutRule(rule).ok());
  v1::Target target;
  target.set_id("t1");
  target.set_arn("arn:aws:states:us-east-1:123456789012:stateMachine:sm");
  ASSERT_TRUE(catalog->PutTarget("orders", "big", target).ok());
  EXPECT_THAT(catalog->ListRules("orders"), SizeIs(1));
  EXPECT_THAT(catalog->ListRules("default"), SizeIs(0));
  EXPECT_THAT(catalog->ListTargets("orders", "big"), SizeIs(1));

  // Another replica, started later, sees the same.
  auto replica = NewCatalog();
  EXPECT_THAT(Names(replica->ListBuses()),
              ElementsAre("a-bus", "default", "orders"));
  ASSERT_TRUE(replica->FindRule("orders", "big").has_value());
  EXPECT_EQ(replica->FindRule("orders", "big")->event_pattern(),
            R"({"source":["shop"]})");
  EXPECT_THAT(replica->ListTargets("orders", "big"), SizeIs(1));

  // A change made through one replica reaches the other quickly.
  const uint64_t before = replica->generation();
  ASSERT_TRUE(catalog->DeleteBus("orders").ok());
  EXPECT_FALSE(catalog->FindBus("orders").has_value());
  EXPECT_FALSE(catalog->FindRule("orders", "big").has_value());
  EXPECT_THAT(catalog->ListTargets("orders", "big"), SizeIs(0));
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  while (replica->FindBus("orders").has_value() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(replica->FindBus("orders").has_value());
  EXPECT_GT(replica->generation(), before);
}

// Archive stats from several replicas add up, per incarnation; deleting an
// archive drops its stats; replays and cancel requests are replicated.
TEST_F(CatalogTest, ArchivesStatsAndReplays) {
  std::unique_ptr<Catalog> writer = NewCatalog();
  v1::DescribeArchiveResponse archive;
  archive.set_archive_name("keep");
  archive.set_state("ENABLED");
  ASSERT_TRUE(writer->PutArchive(archive).ok());
  ASSERT_TRUE(writer->PutArchiveStats("keep", "100", "replica-a", 3, 300).ok());
  ASSERT_TRUE(writer->PutArchiveStats("keep", "100", "replica-b", 2, 50).ok());
  ASSERT_TRUE(writer->PutArchiveStats("keep", "100", "replica-a", 4, 400).ok());
  ASSERT_TRUE(writer->PutArchiveStats("keep", "99", "replica-a", 7, 700).ok());
  v1::DescribeReplayResponse replay;
  replay.set_replay_name("again");
  replay.set_state("STARTING");
  ASSERT_TRUE(writer->PutReplay(replay).ok());
  ASSERT_TRUE(writer->RequestReplayCancel("again").ok());

  std::unique_ptr<Catalog> reader = NewCatalog();
  int64_t count = 0;
  int64_t bytes = 0;
  reader->SumArchiveStats("keep", "100", &count, &bytes);
  EXPECT_EQ(count, 6);
  EXPECT_EQ(bytes, 450);
  ASSERT_TRUE(reader->FindArchive("keep").has_value());
  EXPECT_THAT(reader->ListArchives(), SizeIs(1));
  ASSERT_TRUE(reader->FindReplay("again").has_value());
  EXPECT_EQ(reader->FindReplay("again")->state(), "STARTING");
  EXPECT_TRUE(reader->ReplayCancelRequested("again"));
  EXPECT_FALSE(reader->ReplayCancelRequested("other"));

  ASSERT_TRUE(writer->DeleteArchive("keep").ok());
  EXPECT_FALSE(writer->FindArchive("keep").has_value());
  writer->SumArchiveStats("keep", "100", &count, &bytes);
  EXPECT_EQ(count, 0);
  writer->SumArchiveStats("keep", "99", &count, &bytes);
  EXPECT_EQ(count, 0);
  EXPECT_THAT(writer->ListReplays(), SizeIs(1));
}

}  // namespace
}  // namespace stepflow::eventbus
