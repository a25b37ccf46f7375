// Bad input through the real gateway: the right gRPC status, a message that
// names the problem, and no change to stored state.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/events.grpc.pb.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kValid[] = R"({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}})";
constexpr char kMachineArn[] = "arn:aws:states:us-east-1:123456789012:stateMachine:keep";

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = testing::TestCluster::Start({.shard_servers = 2, .logical_shards = 8,
                                                .eventbus = false});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
    stub_ = v1::StepFunctions::NewStub(cluster_->GatewayChannel()).release();
    v1::CreateStateMachineRequest create;
    create.set_name("keep");
    create.set_definition(kValid);
    v1::CreateStateMachineResponse created;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->CreateStateMachine(&context, create, &created).ok());
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete cluster_;
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << cluster_->Logs();
    // Whatever the test sent, the stored catalog is unchanged.
    v1::ListStateMachinesRequest list;
    v1::ListStateMachinesResponse listed;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ListStateMachines(&context, list, &listed).ok());
    ASSERT_EQ(listed.state_machines_size(), 1);
    EXPECT_EQ(listed.state_machines(0).state_machine_arn(), kMachineArn);
    v1::DescribeStateMachineRequest describe;
    describe.set_state_machine_arn(kMachineArn);
    v1::DescribeStateMachineResponse described;
    grpc::ClientContext context2;
    ASSERT_TRUE(stub_->DescribeStateMachine(&context2, describe, &described).ok());
    EXPECT_EQ(described.definition(), kValid);
  }

  grpc::Status Create(const std::string& name, const std::string& definition) {
    v1::CreateStateMachineRequest create;
    create.set_name(name);
    create.set_definition(definition);
    v1::CreateStateMachineResponse created;
    grpc::ClientContext context;
    return stub_->CreateStateMachine(&context, create, &created);
  }

  static testing::TestCluster* cluster_;
  static v1::StepFunctions::Stub* stub_;
};

testing::TestCluster* BadInputTest::cluster_ = nullptr;
v1::StepFunctions::Stub* BadInputTest::stub_ = nullptr;

TEST_F(BadInputTest, MalformedDefinitionsAreInvalidArgument) {
  struct Case {
    std::string definition;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"not json", "INVALID_JSON_DESCRIPTION"},
      {R"({"StartAt": "A", "States": {"A": {"Type": "Teleport", "End": true}}})",
       "'Teleport' is not a valid state type"},
      {R"({"States": {"A": {"Type": "Succeed"}}})", "SCHEMA_VALIDATION_FAILED: These fields are required: [StartAt] at /"},
      {R"({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}})",
       "MISSING_TRANSITION_TARGET: Missing 'Next' target: Nowhere at /States/A/Next"},
      {R"({"StartAt": "A", "States": {"A": {"Type": "Pass"}}})",
       "either a 'Next' field or 'End': true at /States/A"},
  };
  for (const Case& c : cases) {
    grpc::Status status = Create("broken", c.definition);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.definition;
    EXPECT_THAT(status.error_message(), StartsWith("InvalidDefinition: Invalid State Machine Definition"));
    EXPECT_THAT(status.error_message(), HasSubstr(c.expected));
  }
  EXPECT_EQ(Create("bad name", kValid).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(BadInputTest, UnknownNamesAreNotFound) {
  v1::DescribeStateMachineRequest describe;
  describe.set_state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:ghost");
  v1::DescribeStateMachineResponse described;
  grpc::ClientContext c1;
  grpc::Status status = stub_->DescribeStateMachine(&c1, describe, &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), StartsWith("StateMachineDoesNotExist"));

  v1::StartExecutionRequest start;
  start.set_state_machine_arn(describe.state_machine_arn());
  v1::StartExecutionResponse started;
  grpc::ClientContext c2;
  EXPECT_EQ(stub_->StartExecution(&c2, start, &started).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::DescribeExecutionRequest execution;
  execution.set_execution_arn("arn:aws:states:us-east-1:123456789012:execution:keep:nope");
  v1::DescribeExecutionResponse execution_described;
  grpc::ClientContext c3;
  status = stub_->DescribeExecution(&c3, execution, &execution_described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), StartsWith("ExecutionDoesNotExist"));

  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:nope");
  v1::GetActivityTaskResponse task;
  grpc::ClientContext c4;
  EXPECT_EQ(stub_->GetActivityTask(&c4, poll, &task).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::DescribeExecutionRequest malformed;
  malformed.set_execution_arn("not-an-arn");
  grpc::ClientContext c5;
  status = stub_->DescribeExecution(&c5, malformed, &execution_described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidArn"));
}

TEST_F(BadInputTest, ExistingNameWithDifferentContentIsAlreadyExists) {
  EXPECT_TRUE(Create("keep", kValid).ok());  // identical: idempotent
  grpc::Status status =
      Create("keep", R"({"StartAt": "B", "States": {"B": {"Type": "Succeed"}}})");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), StartsWith("StateMachineAlreadyExists"));
}

TEST_F(BadInputTest, PayloadLimitsAndJson) {
  v1::StartExecutionRequest start;
  start.set_state_machine_arn(kMachineArn);
  start.set_name("too-big");
  start.set_input(absl::StrCat(R"({"blob": ")", std::string(256 * 1024, 'x'), R"("})"));
  v1::StartExecutionResponse started;
  grpc::ClientContext c1;
  grpc::Status status = stub_->StartExecution(&c1, start, &started);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("262144"));

  start.set_name("not-json");
  start.set_input("{oops");
  grpc::ClientContext c2;
  status = stub_->StartExecution(&c2, start, &started);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidExecutionInput"));

  // Neither attempt created an execution.
  v1::ListExecutionsRequest list;
  list.set_state_machine_arn(kMachineArn);
  v1::ListExecutionsResponse listed;
  grpc::ClientContext c3;
  ASSERT_TRUE(stub_->ListExecutions(&c3, list, &listed).ok());
  EXPECT_EQ(listed.executions_size(), 0);

  std::string huge_definition = absl::StrCat(
      R"({"Comment": ")", std::string(1024 * 1024, 'c'), R"(", "StartAt": "A", "States": {"A": {"Type": "Succeed"}}})");
  EXPECT_EQ(Create("huge", huge_definition).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::SendTaskSuccessRequest success;
  success.set_task_token("forged");
  success.set_output("{}");
  v1::SendTaskSuccessResponse succeeded;
  grpc::ClientContext c4;
  status = stub_->SendTaskSuccess(&c4, success, &succeeded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidToken"));
}

TEST_F(BadInputTest, CatalogUpdatesVersionsAndAliases) {
  auto call_status = [](auto method, const auto& request, auto* response) {
    grpc::ClientContext context;
    return (stub_->*method)(&context, request, response);
  };
  using Stub = v1::StepFunctions::Stub;
  v1::UpdateStateMachineRequest update;
  update.set_state_machine_arn(kMachineArn);
  v1::UpdateStateMachineResponse updated;
  grpc::Status status = call_status(&Stub::UpdateStateMachine, update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("MissingRequiredParameter"));
  update.set_definition(R"({"StartAt": "Nowhere", "States": {}})");
  status = call_status(&Stub::UpdateStateMachine, update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidDefinition"));
  update.set_definition(kValid);
  update.set_version_description("without publish");
  status = call_status(&Stub::UpdateStateMachine, update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("ValidationException"));
  update.clear_version_description();
  update.set_state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:absent");
  status = call_status(&Stub::UpdateStateMachine, update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), StartsWith("StateMachineDoesNotExist"));

  v1::PublishStateMachineVersionRequest publish;
  publish.set_state_machine_arn(kMachineArn);
  publish.set_revision_id("stale-revision");
  v1::PublishStateMachineVersionResponse published;
  status = call_status(&Stub::PublishStateMachineVersion, publish, &published);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), StartsWith("ConflictException"));

  v1::DescribeStateMachineRequest describe;
  describe.set_state_machine_arn(std::string(kMachineArn) + ":7");
  v1::DescribeStateMachineResponse described;
  status = call_status(&Stub::DescribeStateMachine, describe, &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  describe.set_state_machine_arn(std::string(kMachineArn) + ":bad/alias");
  status = call_status(&Stub::DescribeStateMachine, describe, &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidArn"));

  v1::CreateStateMachineAliasRequest alias;
  alias.set_name("123");  // all digits would read as a version
  auto* route = alias.add_routing_configuration();
  route->set_state_machine_version_arn(std::string(kMachineArn) + ":1");
  route->set_weight(100);
  v1::CreateStateMachineAliasResponse alias_created;
  status = call_status(&Stub::CreateStateMachineAlias, alias, &alias_created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("ValidationException"));
  alias.set_name("live");
  route->set_weight(90);
  status = call_status(&Stub::CreateStateMachineAlias, alias, &alias_created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("must equal 100"));
  route->set_weight(100);
  route->set_state_machine_version_arn(kMachineArn);  // not a version
  status = call_status(&Stub::CreateStateMachineAlias, alias, &alias_created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  route->set_state_machine_version_arn(std::string(kMachineArn) + ":1");
  status = call_status(&Stub::CreateStateMachineAlias, alias, &alias_created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);  // no version 1 yet
  EXPECT_THAT(status.error_message(), StartsWith("ResourceNotFound"));

  v1::DescribeStateMachineAliasRequest describe_alias;
  describe_alias.set_state_machine_alias_arn(std::string(kMachineArn) + ":missing");
  v1::DescribeStateMachineAliasResponse alias_described;
  status = call_status(&Stub::DescribeStateMachineAlias, describe_alias, &alias_described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), StartsWith("ResourceNotFound"));

  v1::StartExecutionRequest start;
  start.set_state_machine_arn(std::string(kMachineArn) + ":missing");
  v1::StartExecutionResponse started;
  status = call_status(&Stub::StartExecution, start, &started);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), StartsWith("ResourceNotFound"));

  v1::ListStateMachineVersionsRequest versions;
  versions.set_state_machine_arn(kMachineArn);
  versions.set_next_token("not-a-number");
  v1::ListStateMachineVersionsResponse listed;
  status = call_status(&Stub::ListStateMachineVersions, versions, &listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidToken"));

  v1::RedriveExecutionRequest redrive;
  redrive.set_execution_arn("arn:aws:states:us-east-1:123456789012:execution:keep:nope");
  v1::RedriveExecutionResponse redriven;
  status = call_status(&Stub::RedriveExecution, redrive, &redriven);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), StartsWith("ExecutionDoesNotExist"));

  v1::ListExecutionsRequest list;
  list.set_state_machine_arn(kMachineArn);
  list.set_redrive_filter("SOMETIMES");
  v1::ListExecutionsResponse executions;
  status = call_status(&Stub::ListExecutions, list, &executions);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(BadInputTest, LaterFeaturesSayUnimplemented) {
  v1::TagResourceRequest tag;
  v1::TagResourceResponse tag_response;
  grpc::ClientContext c1;
  grpc::Status status = stub_->TagResource(&c1, tag, &tag_response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(status.error_message(), HasSubstr("TagResource is not implemented yet"));

  // Archives are implemented: an archive without a source is refused.
  auto events = v1::EventBridge::NewStub(cluster_->GatewayChannel());
  v1::CreateArchiveRequest archive;
  archive.set_archive_name("keep");
  v1::CreateArchiveResponse archive_response;
  grpc::ClientContext c2;
  status = events->CreateArchive(&c2, archive, &archive_response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("ValidationException"));
}

// PutEvents with no entries is refused as AWS refuses it.
TEST_F(BadInputTest, PutEventsNeedsEntries) {
  auto events = v1::EventBridge::NewStub(cluster_->GatewayChannel());
  v1::PutEventsRequest put;
  v1::PutEventsResponse put_response;
  grpc::ClientContext context;
  grpc::Status status = events->PutEvents(&context, put, &put_response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("ValidationException: "));
}

// TestEventPattern needs no event bus: the gateway answers it itself.
TEST_F(BadInputTest, TestEventPatternAnswersLikeAws) {
  auto events = v1::EventBridge::NewStub(cluster_->GatewayChannel());
  const std::string event =
      R"({"id": "1", "source": "shop", "detail-type": "Order", "account": "123456789012",
          "region": "us-east-1", "time": "2026-11-25T00:00:00Z", "detail": {"total": 150}})";
  auto test = [&](const std::string& pattern, const std::string& event_text,
                  v1::TestEventPatternResponse* response) {
    v1::TestEventPatternRequest request;
    request.set_event_pattern(pattern);
    request.set_event(event_text);
    grpc::ClientContext context;
    return events->TestEventPattern(&context, request, response);
  };
  v1::TestEventPatternResponse response;
  grpc::Status status = test(R"({"detail": {"total": [{"numeric": [">", 100]}]}})", event, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.result());
  status = test(R"({"source": ["other"]})", event, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(response.result());

  status = test(R"({"source": [{"prefix": 1}]})", event, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "Event pattern is not valid. Reason: prefix match pattern must be a string");
  status = test(R"({"source": ["shop"]})", R"({"source": "shop"})", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "Parameter Event is not valid.");
}

}  // namespace
}  // namespace stepflow
