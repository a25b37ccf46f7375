// States with "QueryLanguage": "JSONata": validation diagnostics, the
// deterministic environment of expressions, events and TestState. The
// table-driven AWS cases are in tests/conformance/asl/jsonata.json.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/asl/definition.h"
#include "common/asl/interpreter.h"
#include "common/json/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::asl {
namespace {

constexpr char kActivity[] = "arn:aws:states:us-east-1:123456789012:activity:work";

class JsonataStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    context_.execution_arn = "arn:aws:states:us-east-1:123456789012:execution:sm:e1";
    context_.execution_name = "e1";
    context_.state_machine_name = "sm";
    context_.mint_task_token = [](int64_t id) { return "token-" + std::to_string(id); };
  }
  Outcome Run(absl::string_view definition, absl::string_view input) {
    auto def = Definition::Parse(definition);
    EXPECT_TRUE(def.ok()) << def.status();
    if (!def.ok()) return {};
    def_ = *def;
    state_.Clear();
    Interpreter interpreter(*def_, context_);
    return interpreter.Start(&state_, input, now_);
  }
  static json::Document Parse(const std::string& text) {
    auto doc = json::Parse(text);
    EXPECT_TRUE(doc.ok()) << text;
    return doc.ok() ? std::move(*doc) : json::Document();
  }

  ExecutionContext context_;
  ::stepflow::internal::v1::ExecutionState state_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::shared_ptr<const Definition> def_;
};

TEST_F(JsonataStateTest, JsonPathFieldsAreRefusedWithTheirLocation) {
  auto diagnostics = ValidateDefinition(R"({"QueryLanguage": "JSONata", "StartAt": "P",
      "States": {"P": {"Type": "Pass", "InputPath": "$.a", "ResultPath": "$.b", "End": true}}})");
  ASSERT_EQ(diagnostics.size(), 2u);
  EXPECT_EQ(diagnostics[0].code, "SCHEMA_VALIDATION_FAILED");
  EXPECT_EQ(diagnostics[0].location, "/States/P/InputPath");
  EXPECT_EQ(diagnostics[1].location, "/States/P/ResultPath");
}

TEST_F(JsonataStateTest, ExpressionsMustCompile) {
  auto diagnostics = ValidateDefinition(R"({"QueryLanguage": "JSONata", "StartAt": "P",
      "States": {"P": {"Type": "Pass", "Output": {"a": ["{% 1 + %}"]}, "End": true}}})");
  ASSERT_EQ(diagnostics.size(), 1u);
  EXPECT_EQ(diagnostics[0].location, "/States/P/Output/a/0");
  EXPECT_NE(diagnostics[0].message.find("S0"), std::string::npos) << diagnostics[0].message;
}

TEST_F(JsonataStateTest, ValidJsonataDefinition) {
  EXPECT_TRUE(ValidateDefinition(R"({"QueryLanguage": "JSONata", "StartAt": "T",
      "States": {
        "T": {"Type": "Task", "Resource": ")" + std::string(kActivity) + R"(",
              "Arguments": {"x": "{% $states.input.x %}"}, "TimeoutSeconds": "{% 10 %}",
              "HeartbeatSeconds": 5, "Output": "{% $states.result %}",
              "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput %}",
                         "Next": "F"}],
              "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.ok %}", "Next": "W"}],
              "Default": "F"},
        "W": {"Type": "Wait", "Seconds": "{% 1 %}", "Next": "M"},
        "M": {"Type": "Map", "Items": "{% [1, 2] %}", "MaxConcurrency": "{% 1 %}",
              "ItemSelector": {"v": "{% $states.context.Map.Item.Value %}"},
              "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}},
              "End": true},
        "F": {"Type": "Fail", "Error": "{% 'E' %}", "Cause": "literal"}}})")
                  .empty());
}

TEST_F(JsonataStateTest, TimeAndIdsComeFromTheTransition) {
  const char* definition = R"({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
      "P": {"Type": "Pass", "End": true,
            "Output": {"now": "{% $now() %}", "id": "{% $uuid() %}", "r": "{% $random() %}"}}}})";
  context_.random_unit = [] { return 0.25; };
  Outcome first = Run(definition, "{}");
  ASSERT_EQ(first.closed_status, "SUCCEEDED") << first.cause;
  json::Document output = Parse(first.output);
  EXPECT_EQ(std::string(output["now"].GetString()), "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(output["r"].GetDouble(), 0.25);
  Outcome second = Run(definition, "{}");
  EXPECT_EQ(second.output, first.output);
}

TEST_F(JsonataStateTest, StateExitedCarriesAssignedVariables) {
  Outcome outcome = Run(R"({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
      "P": {"Type": "Pass", "Assign": {"x": "{% $states.input.v + 1 %}"}, "End": true}}})",
                        R"({"v": 1})");
  ASSERT_EQ(outcome.closed_status, "SUCCEEDED");
  const v1::HistoryEvent& exited = outcome.events[outcome.events.size() - 2];
  EXPECT_EQ(exited.type(), "PassStateExited");
  EXPECT_EQ(exited.state_exited_event_details().assigned_variables().at("x"), "2");
}

TEST_F(JsonataStateTest, QueryEvaluationErrorIsRecorded) {
  Outcome outcome = Run(R"({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
      "P": {"Type": "Pass", "Output": {"a": "{% $states.input.s + 1 %}"}, "End": true}}})",
                        R"({"s": "text"})");
  EXPECT_EQ(outcome.closed_status, "FAILED");
  EXPECT_EQ(outcome.error, "States.QueryEvaluationError");
  EXPECT_NE(outcome.cause.find("specified for the field 'Output/a' threw an error during "
                               "evaluation. T2001"),
            std::string::npos)
      << outcome.cause;
  const v1::HistoryEvent& failed = outcome.events[outcome.events.size() - 2];
  EXPECT_EQ(failed.type(), "EvaluationFailed");
  EXPECT_EQ(failed.evaluation_failed_event_details().location(), "Output/a");
  EXPECT_EQ(failed.evaluation_failed_event_details().state(), "P");
}

TEST_F(JsonataStateTest, FunctionResultIsAnUnsupportedResultType) {
  // Wherever an expression may yield a function: a nested Output field, an
  // Assign value, a Choice Condition.
  struct Case {
    const char* state;
    const char* location;
  };
  for (const Case& c : {
           Case{R"("Type": "Pass", "Output": {"a": {"b": "{% function($x){$x} %}"}}, "Next": "X")",
                "Output/a/b"},
           Case{R"("Type": "Pass", "Assign": {"f": "{% $sum %}"}, "Next": "X")", "Assign/f"},
           Case{R"("Type": "Choice", "Choices": [{"Condition": "{% $not %}", "Next": "X"}],
                  "Default": "X")",
                "Condition"},
       }) {
    Outcome outcome = Run(absl::StrCat(R"({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
        "P": {)", c.state, R"(}, "X": {"Type": "Succeed"}}})"),
                          "{}");
    EXPECT_EQ(outcome.error, "States.QueryEvaluationError") << c.location;
    EXPECT_NE(outcome.cause.find(absl::StrCat("specified for the field '", c.location,
                                              "' returned an unsupported result type.")),
              std::string::npos)
        << outcome.cause;
  }
}

TEST_F(JsonataStateTest, TestStateRunsJsonataStates) {
  v1::TestStateRequest request;
  request.set_definition(R"({"QueryLanguage": "JSONata", "Type": "Pass",
      "Output": {"v": "{% $states.input.v * 2 %}"}, "Assign": {"seen": "{% $old + 1 %}"},
      "Next": "Later"})");
  request.set_input(R"({"v": 7})");
  request.set_inspection_level("DEBUG");
  request.set_variables(R"({"old": 1})");
  auto response = TestState(request, context_);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status(), "SUCCEEDED");
  EXPECT_EQ(response->next_state(), "Later");
  EXPECT_EQ(response->output(), R"({"v":14})");
  EXPECT_EQ(response->inspection_data().variables(), R"({"old":1,"seen":2})");

  request.set_definition(absl::StrCat(R"({"QueryLanguage": "JSONata", "Type": "Task",
      "Resource": ")", kActivity, R"(", "Arguments": {"q": "{% $states.input.v %}"},
      "Output": "{% $states.result.r %}",
      "Catch": [{"ErrorEquals": ["Boom"], "Output": "{% $states.errorOutput.Cause %}",
                 "Next": "Handler"}],
      "End": true})"));
  request.mutable_mock()->set_result(R"({"r": "done"})");
  auto task = TestState(request, context_);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->status(), "SUCCEEDED");
  EXPECT_EQ(task->output(), R"("done")");
  EXPECT_EQ(task->inspection_data().after_arguments(), R"({"q":7})");

  request.mutable_mock()->clear_result();
  request.mutable_mock()->mutable_error_output()->set_error("Boom");
  request.mutable_mock()->mutable_error_output()->set_cause("why");
  auto caught = TestState(request, context_);
  ASSERT_TRUE(caught.ok()) << caught.status();
  EXPECT_EQ(caught->status(), "CAUGHT_ERROR");
  EXPECT_EQ(caught->output(), R"("why")");
  EXPECT_EQ(caught->next_state(), "Handler");
}

TEST_F(JsonataStateTest, TestStateRunsJsonataParallelAndMapWithAMock) {
  v1::TestStateRequest request;
  request.set_definition(R"({"QueryLanguage": "JSONata", "Type": "Parallel",
      "Arguments": {"x": "{% $states.input.a %}"},
      "Output": {"sum": "{% $sum($states.result) %}", "in": "{% $states.input.a %}"},
      "Assign": {"first": "{% $states.result[0] %}"}, "Next": "After",
      "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}},
                   {"StartAt": "C", "States": {"C": {"Type": "Pass", "End": true}}}]})");
  request.set_input(R"({"a": 1})");
  request.set_inspection_level("DEBUG");
  request.mutable_mock()->set_result("[2, 3]");
  auto parallel = TestState(request, context_);
  ASSERT_TRUE(parallel.ok()) << parallel.status();
  EXPECT_EQ(parallel->status(), "SUCCEEDED");
  EXPECT_EQ(parallel->next_state(), "After");
  EXPECT_EQ(parallel->output(), R"({"sum":5,"in":1})");
  // AWS records neither the Arguments nor the mock of a Parallel state.
  EXPECT_EQ(parallel->inspection_data().after_arguments(), "");
  EXPECT_EQ(parallel->inspection_data().result(), "");
  EXPECT_EQ(parallel->inspection_data().variables(), R"({"first":2})");

  // A mocked error goes through Retry, then Catch (Output over
  // $states.errorOutput).
  request.set_definition(R"({"QueryLanguage": "JSONata", "Type": "Map",
      "Items": "{% $states.input.items %}", "End": true,
      "Retry": [{"ErrorEquals": ["Boom"], "MaxAttempts": 1}],
      "Catch": [{"ErrorEquals": ["Boom"], "Output": "{% $states.errorOutput.Cause %}",
                 "Next": "Handler"}],
      "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}})");
  request.set_input(R"({"items": [1, 2]})");
  request.mutable_mock()->Clear();
  request.mutable_mock()->mutable_error_output()->set_error("Boom");
  request.mutable_mock()->mutable_error_output()->set_cause("why");
  auto retriable = TestState(request, context_);
  ASSERT_TRUE(retriable.ok()) << retriable.status();
  EXPECT_EQ(retriable->status(), "RETRIABLE");
  request.mutable_state_configuration()->set_retrier_retry_count(1);
  auto caught = TestState(request, context_);
  ASSERT_TRUE(caught.ok()) << caught.status();
  EXPECT_EQ(caught->status(), "CAUGHT_ERROR");
  EXPECT_EQ(caught->output(), R"("why")");
  EXPECT_EQ(caught->next_state(), "Handler");

  // A mocked result: Output defaults to it; Items is still evaluated.
  request.mutable_mock()->Clear();
  request.mutable_mock()->set_result("[10, 20]");
  auto map = TestState(request, context_);
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->status(), "SUCCEEDED");
  EXPECT_EQ(map->output(), "[10,20]");
  EXPECT_EQ(map->inspection_data().after_items_path(), "");
  EXPECT_TRUE(map->inspection_data().has_max_concurrency());
  EXPECT_EQ(map->inspection_data().max_concurrency(), 0);
  request.set_input(R"({"items": "not an array"})");
  auto bad_items = TestState(request, context_);
  ASSERT_TRUE(bad_items.ok()) << bad_items.status();
  EXPECT_EQ(bad_items->status(), "FAILED");
  EXPECT_EQ(bad_items->error(), "States.QueryEvaluationError");

  // With an ItemReader the items are state_configuration.map_item_reader_data,
  // not the input.
  v1::TestStateRequest reader;
  reader.set_definition(R"({"QueryLanguage": "JSONata", "Type": "Map", "End": true,
      "MaxConcurrency": 1,
      "ItemReader": {"ReaderConfig": {"InputType": "JSON"},
                     "Resource": "arn:aws:states:::s3:getObject",
                     "Arguments": {"Bucket": "{% $states.input.Bucket %}", "Key": "k"}},
      "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}})");
  reader.set_input(R"({"Bucket": "b"})");
  reader.set_inspection_level("DEBUG");
  reader.mutable_mock()->set_result("[1, 4, 9]");
  reader.mutable_state_configuration()->set_map_item_reader_data("[1, 2, 3]");
  auto read = TestState(reader, context_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->status(), "SUCCEEDED");
  EXPECT_EQ(read->output(), "[1,4,9]");
  EXPECT_EQ(read->inspection_data().max_concurrency(), 1);

  // A Task may name any service when it is mocked: nothing is called.
  v1::TestStateRequest lambda;
  lambda.set_definition(R"({"QueryLanguage": "JSONata", "Type": "Task", "End": true,
      "Resource": "arn:aws:states:::lambda:invoke",
      "Arguments": {"FunctionName": "f", "Payload": "{% $states.input %}"}})");
  lambda.mutable_mock()->set_result(R"({"StatusCode": 200, "Payload": {"ok": true}})");
  auto invoked = TestState(lambda, context_);
  ASSERT_TRUE(invoked.ok()) << invoked.status();
  EXPECT_EQ(invoked->output(), R"({"StatusCode":200,"Payload":{"ok":true}})");
  lambda.mutable_mock()->Clear();
  EXPECT_EQ(TestState(lambda, context_).status().code(), absl::StatusCode::kInvalidArgument);
  // Another ARN (a function's) is taken as is; an integration with a
  // pattern no service has is still refused.
  lambda.set_definition(R"({"Type": "Task", "End": true,
      "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f"})");
  lambda.mutable_mock()->set_result("1");
  auto function = TestState(lambda, context_);
  ASSERT_TRUE(function.ok()) << function.status();
  EXPECT_EQ(function->output(), "1");
  lambda.set_definition(R"({"Type": "Task", "End": true,
      "Resource": "arn:aws:states:::lambda:invoke.later"})");
  auto bad_pattern = TestState(lambda, context_);
  ASSERT_FALSE(bad_pattern.ok());
  EXPECT_THAT(std::string(bad_pattern.status().message()),
              ::testing::HasSubstr("INVALID_RESOURCE"));

  // Without a mock: refused, as on AWS.
  request.mutable_mock()->Clear();
  EXPECT_EQ(TestState(request, context_).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace stepflow::asl
