#include "tools/cli/render.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.pb.h"

namespace stepflow::cli {
namespace {

google::protobuf::Timestamp At(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(seconds);
  timestamp.set_nanos(nanos);
  return timestamp;
}

constexpr int64_t k2024May1Noon = 1714564800;  // 2024-05-01T12:00:00Z

std::vector<std::string> Keys(const json::Value& object) {
  std::vector<std::string> keys;
  for (const auto& member : object.GetObject()) {
    keys.push_back(member.name.GetString());
  }
  return keys;
}

TEST(RenderTest, HistoryEventHasAwsKeysNumbersAndIsoTimestamp) {
  v1::HistoryEvent event;
  *event.mutable_timestamp() = At(k2024May1Noon, 250000000);
  event.set_type("TaskStateEntered");
  event.set_id(3);
  event.set_previous_event_id(2);
  auto* details = event.mutable_state_entered_event_details();
  details->set_name("Charge");
  details->set_input(R"({"order":7})");
  details->mutable_input_details()->set_truncated(true);

  absl::StatusOr<json::Document> doc = ToJson(event);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_THAT(Keys(*doc), ::testing::ElementsAre("timestamp", "type", "id",
                                                 "previousEventId",
                                                 "stateEnteredEventDetails"));
  EXPECT_STREQ((*doc)["timestamp"].GetString(), "2024-05-01T12:00:00.250Z");
  EXPECT_STREQ((*doc)["type"].GetString(), "TaskStateEntered");
  ASSERT_TRUE((*doc)["id"].IsInt64());  // int64: a number, not "3"
  EXPECT_EQ((*doc)["id"].GetInt64(), 3);
  ASSERT_TRUE((*doc)["previousEventId"].IsInt64());
  EXPECT_EQ((*doc)["previousEventId"].GetInt64(), 2);
  const json::Value& entered = (*doc)["stateEnteredEventDetails"];
  EXPECT_STREQ(entered["name"].GetString(), "Charge");
  // JSON documents stay strings, as in the AWS CLI.
  EXPECT_STREQ(entered["input"].GetString(), R"({"order":7})");
  EXPECT_TRUE(entered["inputDetails"]["truncated"].GetBool());
}

TEST(RenderTest, ExecutionDataDetailsShowFalseFlagsAsAwsDoes) {
  v1::HistoryEvent event;
  event.set_type("PassStateExited");
  event.set_id(3);
  auto* details = event.mutable_state_exited_event_details();
  details->set_name("P");
  details->set_output("{}");
  details->mutable_output_details()->set_truncated(false);
  absl::StatusOr<json::Document> doc = ToJson(event);
  ASSERT_TRUE(doc.ok()) << doc.status();
  const json::Value& output_details = (*doc)["stateExitedEventDetails"]["outputDetails"];
  ASSERT_TRUE(output_details.HasMember("truncated"));
  EXPECT_FALSE(output_details["truncated"].GetBool());
}

TEST(RenderTest, Int64InsideDetailsIsANumber) {
  v1::HistoryEvent event;
  event.set_type("ActivityScheduled");
  event.set_id(5);
  auto* details = event.mutable_activity_scheduled_event_details();
  details->set_resource("arn:aws:states:us-east-1:123456789012:activity:a");
  details->set_timeout_in_seconds(60);
  details->set_heartbeat_in_seconds(10);

  absl::StatusOr<json::Document> doc = ToJson(event);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_FALSE(doc->HasMember("previousEventId"));  // 0 = none: omitted
  EXPECT_FALSE(doc->HasMember("timestamp"));        // unset: omitted
  const json::Value& scheduled = (*doc)["activityScheduledEventDetails"];
  EXPECT_EQ(scheduled["timeoutInSeconds"].GetInt64(), 60);
  EXPECT_EQ(scheduled["heartbeatInSeconds"].GetInt64(), 10);
}

TEST(RenderTest, DescribeExecutionResponse) {
  v1::DescribeExecutionResponse response;
  response.set_execution_arn(
      "arn:aws:states:us-east-1:123456789012:execution:Orders:run-1");
  response.set_state_machine_arn(
      "arn:aws:states:us-east-1:123456789012:stateMachine:Orders");
  response.set_name("run-1");
  response.set_status("SUCCEEDED");
  *response.mutable_start_date() = At(k2024May1Noon);
  *response.mutable_stop_date() = At(k2024May1Noon + 1, 5000000);
  response.set_input("{}");
  response.set_output(R"({"ok":true})");
  response.mutable_input_details()->set_included(true);
  response.set_redrive_status("NOT_REDRIVABLE");

  absl::StatusOr<json::Document> doc = ToJson(response);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_THAT(Keys(*doc), ::testing::ElementsAre(
                              "executionArn", "stateMachineArn", "name",
                              "status", "startDate", "stopDate", "input",
                              "output", "redriveStatus", "inputDetails"));
  EXPECT_STREQ((*doc)["startDate"].GetString(), "2024-05-01T12:00:00Z");
  EXPECT_STREQ((*doc)["stopDate"].GetString(), "2024-05-01T12:00:01.005Z");
  EXPECT_STREQ((*doc)["status"].GetString(), "SUCCEEDED");
  EXPECT_TRUE((*doc)["inputDetails"]["included"].GetBool());
}

TEST(RenderTest, PrettyPrintsWithTwoSpaces) {
  v1::CreateStateMachineResponse response;
  response.set_state_machine_arn("arn:sm");
  *response.mutable_creation_date() = At(k2024May1Noon);
  absl::StatusOr<std::string> text = RenderJson(response);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text,
            "{\n"
            "  \"stateMachineArn\": \"arn:sm\",\n"
            "  \"creationDate\": \"2024-05-01T12:00:00Z\"\n"
            "}\n");
}

TEST(RenderTest, TopLevelListsAreAlwaysPresent) {
  v1::ListStateMachinesResponse empty;
  absl::StatusOr<std::string> text = RenderJson(empty);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "{\n  \"stateMachines\": []\n}\n");

  v1::ListStateMachinesResponse page;
  page.set_next_token("t2");
  auto* item = page.add_state_machines();
  item->set_state_machine_arn("arn:a");
  item->set_type("STANDARD");
  absl::StatusOr<json::Document> doc = ToJson(page);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_THAT(Keys(*doc), ::testing::ElementsAre("stateMachines", "nextToken"));
  EXPECT_STREQ((*doc)["stateMachines"][0]["stateMachineArn"].GetString(),
               "arn:a");
}

TEST(RenderTest, FormatTimestamp) {
  EXPECT_EQ(FormatTimestamp(At(k2024May1Noon)), "2024-05-01T12:00:00Z");
  EXPECT_EQ(FormatTimestamp(google::protobuf::Timestamp()), "-");
}

}  // namespace
}  // namespace stepflow::cli
