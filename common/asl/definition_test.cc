#include "common/asl/definition.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::asl {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> Codes(absl::string_view text) {
  std::vector<std::string> codes;
  for (const auto& d : ValidateDefinition(text)) codes.push_back(d.code + "@" + d.location);
  return codes;
}

TEST(DefinitionTest, ParsesValidDefinition) {
  auto def = Definition::Parse(R"({
    "Comment": "c", "StartAt": "A",
    "States": {
      "A": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.r", "Next": "B"},
      "B": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:w",
            "TimeoutSeconds": 30, "HeartbeatSeconds": 5, "InputPath": null, "Next": "C"},
      "C": {"Type": "Succeed"}
    }})");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ((*def)->start_at(), "A");
  const State* b = (*def)->FindState("B");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, StateType::kTask);
  EXPECT_EQ(b->timeout_seconds.value, 30);
  EXPECT_EQ(b->input_path.kind, PathField::Kind::kNull);
  EXPECT_EQ((*def)->FindState("A")->result_path.path->text(), "$.r");
}

TEST(DefinitionTest, ReportsProblemsWithLocations) {
  EXPECT_THAT(Codes("not json"), ::testing::ElementsAre("INVALID_JSON_DESCRIPTION@/"));
  EXPECT_THAT(Codes(R"({"States": {"A": {"Type": "Succeed"}}})"),
              ::testing::Contains("SCHEMA_VALIDATION_FAILED@/"));
  EXPECT_THAT(Codes(R"({"StartAt": "A", "States": {"A": {"Type": "Bogus"}}})"),
              ::testing::ElementsAre("SCHEMA_VALIDATION_FAILED@/States/A/Type"));
  EXPECT_THAT(Codes(R"({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Z"}}})"),
              ::testing::ElementsAre("MISSING_TRANSITION_TARGET@/States/A/Next"));
  EXPECT_THAT(Codes(R"({"StartAt": "Z", "States": {"A": {"Type": "Succeed"}}})"),
              ::testing::Contains("MISSING_TRANSITION_TARGET@/StartAt"));
  EXPECT_THAT(Codes(R"({"StartAt": "A", "States": {"A": {"Type": "Pass"}}})"),
              ::testing::Contains("SCHEMA_VALIDATION_FAILED@/States/A"));
  EXPECT_THAT(Codes(R"({"StartAt": "A", "States": {"A": {"Type": "Succeed"},
                                                   "B": {"Type": "Succeed"}}})"),
              ::testing::ElementsAre("UNREACHABLE_STATE@/States/B"));
  EXPECT_THAT(Codes(R"({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true,
                                                         "Resource": "x"}}})"),
              ::testing::ElementsAre("SCHEMA_VALIDATION_FAILED@/States/A/Resource"));
  EXPECT_THAT(Codes(R"({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true,
                                                         "InputPath": "nope"}}})"),
              ::testing::ElementsAre("INVALID_JSON_PATH@/States/A/InputPath"));
}

TEST(DefinitionTest, IntrinsicPathArgumentsMustBePaths) {
  auto pass = [](absl::string_view call) {
    return absl::StrCat(R"({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true,
                           "Parameters": {"r.$": ")",
                        call, R"("}}}})");
  };
  EXPECT_THAT(Codes(pass("States.Format('{}', $.abc.['def ghi'])")), ::testing::IsEmpty());
  EXPECT_THAT(Codes(pass("States.ArrayLength($.items[*].id)")), ::testing::IsEmpty());
  EXPECT_THAT(Codes(pass("States.ArrayLength($.items[?(@.id)])")), ::testing::IsEmpty());
  EXPECT_THAT(Codes(pass("States.ArrayLength($.items[?(@.id)")),
              ::testing::ElementsAre("SCHEMA_VALIDATION_FAILED@/States/A/Parameters/r.$"));
  auto fail = R"json({"StartAt": "A", "States": {"A": {"Type": "Fail",
                  "ErrorPath": "States.Format('{}', $.a[?(@.x ==])"}}})json";
  EXPECT_THAT(Codes(fail), ::testing::ElementsAre("SCHEMA_VALIDATION_FAILED@/States/A/ErrorPath"));
}

// AWS's recordings (test_invalid_credentials_field): Credentials must name
// the role.
TEST(DefinitionTest, CredentialsNeedARoleArn) {
  auto task = [](absl::string_view credentials) {
    return absl::StrCat(R"({"StartAt": "State0", "States": {"State0": {"Type": "Task",
      "Resource": "arn:aws:states:::states:startExecution", "Parameters": {"StateMachineArn": "x"},
      "Credentials": )",
                        credentials, R"(, "End": true}}})");
  };
  EXPECT_THAT(Codes(task("{}")),
              ::testing::ElementsAre("SCHEMA_VALIDATION_FAILED@/States/State0/Credentials"));
  EXPECT_THAT(ValidateDefinition(task(R"({"InvalidField": "invalid"})"))[0].message,
              "The field 'RoleArn' is required but was missing");
  EXPECT_THAT(Codes(task(R"({"RoleArn": "arn:aws:iam::123456789012:role/r"})")),
              ::testing::IsEmpty());
  EXPECT_THAT(Codes(task(R"({"RoleArn.$": "$.role"})")), ::testing::IsEmpty());
}

// AWS's recordings (test_illegal_callbacks): an EXPRESS machine may not wait
// on a service integration, however deep the Task.
TEST(DefinitionTest, ExpressRefusesIntegrationsThatWait) {
  auto def = Definition::Parse(R"({"StartAt": "P", "States": {"P": {"Type": "Parallel",
    "End": true, "Branches": [{"StartAt": "StartExecution", "States": {
      "StartExecution": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": "x"}, "Next": "Publish"},
      "Publish": {"Type": "Task", "Resource": "arn:aws:states:::events:putEvents.waitForTaskToken",
        "Parameters": {"Entries": []}, "Next": "Work"},
      "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:w",
        "End": true}}}]}}})");
  ASSERT_TRUE(def.ok()) << def.status();
  std::vector<Diagnostic> express = ExpressDiagnostics(**def);
  ASSERT_EQ(express.size(), 2u);  // activities stay allowed
  EXPECT_EQ(InvalidDefinitionMessage({express[0]}),
            "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: Express state machine "
            "does not support '.waitForTaskToken' service integration  at "
            "/States/P/Branches/0/States/Publish/Resource'");
  EXPECT_EQ(InvalidDefinitionMessage({express[1]}),
            "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: Express state machine "
            "does not support '.sync' service integration at "
            "/States/P/Branches/0/States/StartExecution/Resource'");
}

TEST(DefinitionTest, ParseErrorCarriesAwsMessage) {
  auto def = Definition::Parse(R"({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}})");
  ASSERT_FALSE(def.ok());
  EXPECT_EQ(def.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(def.status().message(),
            "InvalidDefinition: Invalid State Machine Definition: 'MISSING_TRANSITION_TARGET: "
            "Missing 'Next' target: B at /States/A/Next'");
}

TEST(DefinitionTest, ServiceIntegrationResources) {
  std::string error;
  auto sync2 = ParseIntegration("arn:aws:states:::states:startExecution.sync:2", &error);
  ASSERT_TRUE(sync2.has_value());
  EXPECT_EQ(sync2->service, "states");
  EXPECT_EQ(sync2->action, "startExecution");
  EXPECT_EQ(sync2->pattern, IntegrationPattern::kSync2);
  EXPECT_EQ(sync2->resource_name, "startExecution.sync:2");
  auto put = ParseIntegration("arn:aws-us-gov:states:::events:putEvents.waitForTaskToken", &error);
  ASSERT_TRUE(put.has_value());
  EXPECT_EQ(put->pattern, IntegrationPattern::kWaitForTaskToken);
  auto plain = ParseIntegration("arn:aws:states:::states:startExecution", &error);
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->pattern, IntegrationPattern::kRequestResponse);
  // Activities are not integrations.
  EXPECT_FALSE(ParseIntegration("arn:aws:states:us-east-1:123456789012:activity:a", &error));
  EXPECT_TRUE(error.empty());
  // putEvents has no .sync; services this release does not run are named.
  EXPECT_FALSE(ParseIntegration("arn:aws:states:::events:putEvents.sync", &error));
  EXPECT_THAT(error, ::testing::HasSubstr("is not recognized"));
  error.clear();
  EXPECT_FALSE(ParseIntegration("arn:aws:states:::lambda:invoke", &error));
  EXPECT_THAT(error, ::testing::HasSubstr("is not supported"));

  auto definition = Definition::Parse(R"({"StartAt": "A", "States": {"A": {"Type": "Task",
      "Resource": "arn:aws:states:::states:startExecution.sync",
      "Parameters": {"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:c"},
      "End": true}}})");
  ASSERT_TRUE(definition.ok()) << definition.status();
  const State* task = (*definition)->root().Find("A");
  ASSERT_NE(task, nullptr);
  EXPECT_TRUE(task->integration.present());
  EXPECT_EQ(task->integration.pattern, IntegrationPattern::kSync);
  auto refused = Definition::Parse(R"({"StartAt": "A", "States": {"A": {"Type": "Task",
      "Resource": "arn:aws:states:::sqs:sendMessage", "End": true}}})");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("INVALID_RESOURCE"));
}

}  // namespace
}  // namespace stepflow::asl
