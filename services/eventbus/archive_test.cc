#include "services/eventbus/archive.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/eventbus/catalog.h"
#include "services/eventbus/dispatcher.h"

namespace stepflow::eventbus {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::DescribeReplayResponse Window(int64_t start, int64_t end) {
  v1::DescribeReplayResponse replay;
  replay.set_replay_name("again");
  replay.mutable_event_start_time()->set_seconds(start);
  replay.mutable_event_end_time()->set_seconds(end);
  return replay;
}

TEST(ArchiveNamesTest, ArnsAndTopics) {
  const config::ArnScope scope;
  EXPECT_EQ(ArchiveArn(scope, "keep"),
            "arn:aws:events:us-east-1:123456789012:archive/keep");
  EXPECT_EQ(ReplayArn(scope, "again"),
            "arn:aws:events:us-east-1:123456789012:replay/again");
  EXPECT_EQ(ArchiveNameFromArn(scope, ArchiveArn(scope, "keep")), "keep");
  EXPECT_EQ(ArchiveNameFromArn(scope, ArchiveArn(scope, "")), absl::nullopt);
  EXPECT_EQ(
      ArchiveNameFromArn(scope, "arn:aws:events:eu-west-1:1:archive/keep"),
      absl::nullopt);
  EXPECT_EQ(BusNameFromArn(EventBusArn(scope, "orders")), "orders");
  EXPECT_EQ(BusNameFromArn("arn:x:events:r:1:event-bus/default"), "default");
  EXPECT_EQ(BusNameFromArn("orders"), "");

  v1::DescribeArchiveResponse archive;
  archive.set_archive_name("keep");
  archive.mutable_creation_time()->set_seconds(1700000000);
  archive.mutable_creation_time()->set_nanos(123000000);
  EXPECT_EQ(ArchiveIncarnation(archive), "1700000000123");
  EXPECT_EQ(ArchiveTopic(archive), "stepflow.archive.keep.1700000000123");
  // A re-created archive of the same name reads another topic.
  v1::DescribeArchiveResponse again = archive;
  again.mutable_creation_time()->set_seconds(1700000001);
  EXPECT_NE(ArchiveTopic(again), ArchiveTopic(archive));
  archive.set_archive_name(std::string(300, 'a'));
  EXPECT_EQ(ArchiveTopic(archive).size(), 249u);
  EXPECT_THAT(ArchiveTopic(archive), StartsWith("stepflow.archive.aaa"));
}

TEST(ReplayStateTest, FinishedAndVisibleStates) {
  for (const char* over : {kReplayCompleted, kReplayCancelled, kReplayFailed})
    EXPECT_TRUE(ReplayFinished(over)) << over;
  for (const char* on : {kReplayStarting, kReplayRunning, kReplayCancelling})
    EXPECT_FALSE(ReplayFinished(on)) << on;
  v1::DescribeReplayResponse replay;
  replay.set_state(kReplayRunning);
  EXPECT_EQ(VisibleReplayState(replay, false), kReplayRunning);
  EXPECT_EQ(VisibleReplayState(replay, true), kReplayCancelling);
  replay.set_state(kReplayStarting);
  EXPECT_EQ(VisibleReplayState(replay, true), kReplayCancelling);
  // Cancelled too late: the replay had completed.
  replay.set_state(kReplayCompleted);
  EXPECT_EQ(VisibleReplayState(replay, true), kReplayCompleted);
}

TEST(ReplaySendsTest, WindowIsHalfOpenAndRetentionApplies) {
  const v1::DescribeReplayResponse replay = Window(1000, 2000);
  const absl::Time now = absl::FromUnixSeconds(2000 + 86400 * 10);
  EXPECT_FALSE(ReplaySends(replay, 0, absl::FromUnixSeconds(999), now));
  EXPECT_TRUE(ReplaySends(replay, 0, absl::FromUnixSeconds(1000), now));
  EXPECT_TRUE(ReplaySends(replay, 0, absl::FromUnixSeconds(1999), now));
  EXPECT_FALSE(ReplaySends(replay, 0, absl::FromUnixSeconds(2000), now));
  // Kept 10 days: events of 1000..2000 are more than 10 days old at `now`
  // except those from 2000 - ... on; with 11 days all are kept.
  EXPECT_FALSE(ReplaySends(replay, 10, absl::FromUnixSeconds(1500), now));
  EXPECT_TRUE(ReplaySends(replay, 11, absl::FromUnixSeconds(1500), now));
}

TEST(ReplayedEventTest, MarksTheEnvelope) {
  const std::string original =
      R"({"version":"0","id":"e-1","time":"2026-11-26T10:00:00Z","detail":{}})";
  absl::optional<std::string> replayed = ReplayedEvent(original, "again");
  ASSERT_TRUE(replayed.has_value());
  EXPECT_THAT(*replayed, HasSubstr(R"("replay-name":"again")"));
  absl::StatusOr<json::Document> event = json::Parse(*replayed);
  ASSERT_TRUE(event.ok());
  EXPECT_EQ(ReplayNameOf(*event), "again");
  EXPECT_EQ(EventTime(*event), absl::FromUnixSeconds(1795687200));
  // Replayed again by another replay: one field, the new name.
  absl::optional<std::string> twice = ReplayedEvent(*replayed, "later");
  ASSERT_TRUE(twice.has_value());
  EXPECT_THAT(*twice, HasSubstr(R"("replay-name":"later")"));
  EXPECT_THAT(*twice, ::testing::Not(HasSubstr("again")));
  EXPECT_FALSE(ReplayedEvent("not json", "again").has_value());
  EXPECT_FALSE(ReplayedEvent("[1]", "again").has_value());

  absl::StatusOr<json::Document> plain = json::Parse(original);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(ReplayNameOf(*plain), "");
  absl::StatusOr<json::Document> no_time = json::Parse(R"({"id":"x"})");
  EXPECT_EQ(EventTime(*no_time), absl::nullopt);
}

TEST(ReplayDeliveryTest, ReplaysGetExecutionNamesOfTheirOwn) {
  const std::string rule = "arn:aws:events:us-east-1:123456789012:rule/r";
  const std::string id = "6f1c2f4e-0000-4000-8000-000000000001";
  EXPECT_EQ(ReplayDeliveryKey(id, ""), id);
  const std::string original =
      TargetExecutionName(ReplayDeliveryKey(id, ""), rule, "t");
  const std::string first =
      TargetExecutionName(ReplayDeliveryKey(id, "a"), rule, "t");
  const std::string second =
      TargetExecutionName(ReplayDeliveryKey(id, "b"), rule, "t");
  EXPECT_NE(first, original);
  EXPECT_NE(second, first);
  // Sent twice by one replay (after a restart): the same name, started once.
  EXPECT_EQ(TargetExecutionName(ReplayDeliveryKey(id, "a"), rule, "t"), first);
  EXPECT_LE(first.size(), 80u);

  v1::DescribeReplayResponse replay;
  EXPECT_TRUE(ReplayTargetsRule(replay, rule));
  replay.mutable_destination()->add_filter_arns(rule);
  EXPECT_TRUE(ReplayTargetsRule(replay, rule));
  EXPECT_FALSE(ReplayTargetsRule(replay, rule + "2"));
}

TEST(TimestampTest, RoundTrips) {
  const absl::Time time = absl::FromUnixMillis(1795658400123);
  EXPECT_EQ(FromTimestamp(ToTimestamp(time)), time);
  EXPECT_EQ(ToTimestamp(time).nanos(), 123000000);
}

}  // namespace
}  // namespace stepflow::eventbus
