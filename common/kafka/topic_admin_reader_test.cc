// TopicAdmin, TopicReader and the Producer's positioned and batched
// produce calls, against an in-process mock cluster.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/kafka/client.h"
#include "common/kafka/mock_cluster.h"
#include "common/kafka/topic_admin.h"
#include "common/kafka/topic_reader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::kafka {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;

class TopicAdminReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = MockKafkaCluster::Start();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    auto producer = Producer::Create(cluster_->bootstrap_servers());
    ASSERT_TRUE(producer.ok()) << producer.status();
    producer_ = std::move(*producer);
  }

  std::unique_ptr<MockKafkaCluster> cluster_;
  std::unique_ptr<Producer> producer_;
};

// A view of a compacted topic as TopicReader feeds it.
struct View {
  absl::Mutex mu;
  std::map<std::string, std::string> values ABSL_GUARDED_BY(mu);
  void Apply(const TopicRecord& record) {
    absl::MutexLock lock(&mu);
    if (record.value.has_value()) {
      values[record.key] = *record.value;
    } else {
      values.erase(record.key);
    }
  }
  std::map<std::string, std::string> Copy() {
    absl::MutexLock lock(&mu);
    return values;
  }
};

TEST(TopicCreationTest, Parses) {
  EXPECT_EQ(*ParseTopicCreation("admin"), TopicCreation::kAdminApi);
  EXPECT_EQ(*ParseTopicCreation("embedded"), TopicCreation::kEmbedded);
  EXPECT_EQ(*ParseTopicCreation("broker-default"),
            TopicCreation::kBrokerDefault);
  EXPECT_FALSE(ParseTopicCreation("auto").ok());
}

TEST_F(TopicAdminReaderTest, EmbeddedCreationIsIdempotent) {
  TopicAdmin admin({.brokers = "",
                    .mode = TopicCreation::kEmbedded,
                    .embedded = cluster_.get()});
  ASSERT_TRUE(admin
                  .EnsureTopic({.name = "t.embedded", .partitions = 3},
                               absl::Seconds(5))
                  .ok());
  ASSERT_TRUE(admin
                  .EnsureTopic({.name = "t.embedded", .partitions = 3},
                               absl::Seconds(5))
                  .ok());
  auto topics = ListTopics(cluster_->bootstrap_servers(), absl::Seconds(5));
  ASSERT_TRUE(topics.ok());
  EXPECT_THAT(*topics, Contains("t.embedded"));
}

TEST_F(TopicAdminReaderTest, BrokerDefaultCreationCreatesTopic) {
  TopicAdmin admin({.brokers = cluster_->bootstrap_servers(),
                    .mode = TopicCreation::kBrokerDefault});
  ASSERT_TRUE(
      admin.EnsureTopic({.name = "t.auto", .partitions = 1}, absl::Seconds(5))
          .ok());
  auto topics = ListTopics(cluster_->bootstrap_servers(), absl::Seconds(5));
  ASSERT_TRUE(topics.ok());
  EXPECT_THAT(*topics, Contains("t.auto"));
}

TEST_F(TopicAdminReaderTest, RejectsBadTopicNames) {
  TopicAdmin admin({.brokers = "",
                    .mode = TopicCreation::kEmbedded,
                    .embedded = cluster_.get()});
  EXPECT_EQ(
      admin.EnsureTopic({.name = "a b", .partitions = 1}, absl::Seconds(1))
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(admin
                .EnsureTopic({.name = std::string(250, 'a'), .partitions = 1},
                             absl::Seconds(1))
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(admin.EnsureTopic({.name = "ok", .partitions = 0}, absl::Seconds(1))
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TopicAdminReaderTest, AdminApiAgainstUnreachableBrokersFails) {
  TopicAdmin admin(
      {.brokers = "127.0.0.1:1", .mode = TopicCreation::kAdminApi});
  absl::Status status = admin.EnsureTopic({.name = "t", .partitions = 1},
                                          absl::Milliseconds(300));
  EXPECT_FALSE(status.ok());
}

TEST_F(TopicAdminReaderTest, ReaderSeesWritesAndTombstones) {
  ASSERT_TRUE(cluster_->CreateTopic("t.config", 2).ok());
  View view;
  auto reader =
      TopicReader::Start(cluster_->bootstrap_servers(), "t.config",
                         [&view](const TopicRecord& r) { view.Apply(r); });
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_TRUE((*reader)->WaitCaughtUp(absl::Seconds(10)).ok());
  EXPECT_TRUE(view.Copy().empty());

  auto a = producer_->Produce("t.config", "a", absl::string_view("1"),
                              absl::Seconds(5));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_GE(a->offset, 0);
  ASSERT_TRUE((*reader)->WaitFor(*a, absl::Seconds(5)).ok());
  EXPECT_EQ(view.Copy(), (std::map<std::string, std::string>{{"a", "1"}}));

  auto b = producer_->Produce("t.config", "b", absl::string_view("2"),
                              absl::Seconds(5));
  ASSERT_TRUE(b.ok());
  auto gone =
      producer_->Produce("t.config", "a", absl::nullopt, absl::Seconds(5));
  ASSERT_TRUE(gone.ok());
  ASSERT_TRUE((*reader)->WaitCaughtUp(absl::Seconds(5)).ok());
  EXPECT_EQ(view.Copy(), (std::map<std::string, std::string>{{"b", "2"}}));

  // A second reader started later rebuilds the same view.
  View replica;
  auto late = TopicReader::Start(
      cluster_->bootstrap_servers(), "t.config",
      [&replica](const TopicRecord& r) { replica.Apply(r); });
  ASSERT_TRUE(late.ok());
  ASSERT_TRUE((*late)->WaitCaughtUp(absl::Seconds(10)).ok());
  EXPECT_EQ(replica.Copy(), view.Copy());
}

TEST_F(TopicAdminReaderTest, ReaderWaitsForATopicCreatedLater) {
  View view;
  auto reader =
      TopicReader::Start(cluster_->bootstrap_servers(), "t.later",
                         [&view](const TopicRecord& r) { view.Apply(r); });
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->WaitCaughtUp(absl::Seconds(1)).code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE(cluster_->CreateTopic("t.later", 1).ok());
  auto at = producer_->Produce("t.later", "k", absl::string_view("v"),
                               absl::Seconds(5));
  ASSERT_TRUE(at.ok()) << at.status();
  ASSERT_TRUE((*reader)->WaitFor(*at, absl::Seconds(10)).ok());
  EXPECT_EQ(view.Copy().at("k"), "v");
}

TEST_F(TopicAdminReaderTest, ProduceAllReportsEachRecord) {
  ASSERT_TRUE(cluster_->CreateTopic("t.batch", 3).ok());
  std::vector<OutgoingRecord> records;
  for (int i = 0; i < 10; ++i) {
    records.push_back(
        {"t.batch", "key" + std::to_string(i), "value" + std::to_string(i)});
  }
  records.push_back({"t.missing", "k", std::string("v")});
  auto results = producer_->ProduceAll(records, absl::Seconds(10));
  ASSERT_EQ(results.size(), records.size());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_GE(results[i]->offset, 0);
  }
  EXPECT_EQ(results[10].status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TopicAdminReaderTest, ProduceAllFailsWhenTheBrokerIsDown) {
  ASSERT_TRUE(cluster_->CreateTopic("t.down", 1).ok());
  // Known topic first, so only delivery can fail.
  ASSERT_TRUE(
      producer_->ProduceSync("t.down", "k", "v", absl::Seconds(5)).ok());
  ASSERT_TRUE(cluster_->SetBrokerDown(-1).ok());
  auto results = producer_->ProduceAll({{"t.down", "k", std::string("v")}},
                                       absl::Seconds(1));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok());
  ASSERT_TRUE(cluster_->SetBrokerUp(-1).ok());
}

TEST_F(TopicAdminReaderTest, ProduceAllKeepsToItsTimeoutWithTheBrokersDown) {
  // Topics it does not know yet need a metadata request each, which waits
  // for the brokers: once per topic, and all within the call's timeout.
  ASSERT_TRUE(cluster_->SetBrokerDown(-1).ok());
  std::vector<OutgoingRecord> records;
  for (int i = 0; i < 6; ++i) {
    records.push_back({i % 2 == 0 ? "t.unknown.a" : "t.unknown.b", "k", std::string("v")});
  }
  const absl::Time start = absl::Now();
  auto results = producer_->ProduceAll(records, absl::Seconds(1));
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(cluster_->SetBrokerUp(-1).ok());
  ASSERT_EQ(results.size(), records.size());
  for (const auto& result : results) EXPECT_FALSE(result.ok());
  EXPECT_LT(took, absl::Seconds(3)) << "waited a timeout per record, not one for the call";
}

}  // namespace
}  // namespace stepflow::kafka
