// The execution API and the state machine catalog through a real gateway
// and three shard servers: listings that page across shards, filters,
// execution names as idempotency keys, StopExecution, RedriveExecution,
// revisions, versions, aliases with weighted routing, and retention of
// closed executions.
#include <grpcpp/grpcpp.h>

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Stub = v1::StepFunctions::Stub;

constexpr char kActivityArn[] = "arn:aws:states:us-east-1:123456789012:activity:approve";

// Fails when the input says so, succeeds otherwise; never waits.
constexpr char kChoiceDefinition[] = R"({"StartAt": "Check", "States": {
  "Check": {"Type": "Choice",
            "Choices": [{"Variable": "$.fail", "BooleanEquals": true, "Next": "Boom"}],
            "Default": "Ok"},
  "Boom": {"Type": "Fail", "Error": "Told", "Cause": "the input asked for it"},
  "Ok": {"Type": "Succeed"}}})";

std::string PassDefinition(const std::string& result) {
  return absl::StrCat(R"({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": ")", result,
                      R"(", "End": true}}})");
}

std::string TaskDefinition() {
  return absl::StrCat(R"({"StartAt": "Approve", "States": {"Approve": {"Type": "Task",
    "Resource": ")", kActivityArn, R"(", "End": true}}})");
}

class ExecutionApiTest : public ::testing::Test {
 protected:
  void SetUp() override { StartCluster({}); }
  void TearDown() override {
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
  }

  void StartCluster(std::vector<std::string> shard_flags) {
    auto cluster = testing::TestCluster::Start({.shard_servers = 3, .logical_shards = 16,
                                                .eventbus = false,
                                                .shard_flags = std::move(shard_flags)});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    stub_ = v1::StepFunctions::NewStub(cluster_->GatewayChannel());
  }

  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response,
                    absl::Duration timeout = absl::Seconds(20)) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return (stub_.get()->*method)(&context, request, response);
  }

  std::string CreateMachine(const std::string& name, const std::string& definition,
                            bool publish = false, std::string* version_arn = nullptr) {
    v1::CreateStateMachineRequest create;
    create.set_name(name);
    create.set_definition(definition);
    create.set_role_arn("arn:aws:iam::123456789012:role/stepflow");
    create.set_publish(publish);
    v1::CreateStateMachineResponse created;
    grpc::Status status = Call(&Stub::CreateStateMachine, create, &created);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (version_arn != nullptr) *version_arn = created.state_machine_version_arn();
    return created.state_machine_arn();
  }

  void CreateActivity() {
    v1::CreateActivityRequest activity;
    activity.set_name("approve");
    v1::CreateActivityResponse created;
    ASSERT_TRUE(Call(&Stub::CreateActivity, activity, &created).ok());
  }

  grpc::Status TryStart(const std::string& machine, const std::string& name,
                        const std::string& input, std::string* execution_arn) {
    v1::StartExecutionRequest start;
    start.set_state_machine_arn(machine);
    start.set_name(name);
    start.set_input(input);
    v1::StartExecutionResponse started;
    grpc::Status status = Call(&Stub::StartExecution, start, &started);
    *execution_arn = started.execution_arn();
    return status;
  }

  std::string Start(const std::string& machine, const std::string& name,
                    const std::string& input = "{}") {
    std::string arn;
    grpc::Status status = TryStart(machine, name, input, &arn);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return arn;
  }

  v1::DescribeExecutionResponse Describe(const std::string& arn) {
    v1::DescribeExecutionRequest request;
    request.set_execution_arn(arn);
    v1::DescribeExecutionResponse response;
    grpc::Status status = Call(&Stub::DescribeExecution, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  v1::DescribeExecutionResponse AwaitClosed(const std::string& arn) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    v1::DescribeExecutionResponse response;
    do {
      response = Describe(arn);
      if (response.status() != "RUNNING") break;
      absl::SleepFor(absl::Milliseconds(20));
    } while (absl::Now() < deadline);
    return response;
  }

  // Every page of a listing; fails the test on an error.
  std::vector<v1::ExecutionListItem> ListAll(v1::ListExecutionsRequest request, int* pages) {
    std::vector<v1::ExecutionListItem> items;
    *pages = 0;
    do {
      v1::ListExecutionsResponse page;
      grpc::Status status = Call(&Stub::ListExecutions, request, &page);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      ++*pages;
      items.insert(items.end(), page.executions().begin(), page.executions().end());
      request.set_next_token(page.next_token());
    } while (!request.next_token().empty());
    return items;
  }

  std::vector<v1::HistoryEvent> History(const std::string& arn) {
    v1::GetExecutionHistoryRequest request;
    request.set_execution_arn(arn);
    v1::GetExecutionHistoryResponse response;
    grpc::Status status = Call(&Stub::GetExecutionHistory, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.events().begin(), response.events().end()};
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<Stub> stub_;
};

TEST_F(ExecutionApiTest, ListingsPageAcrossShardsNewestFirstWithFilters) {
  const std::string machine = CreateMachine("choices", kChoiceDefinition);
  std::set<std::string> started;
  for (int i = 0; i < 25; ++i) {
    started.insert(Start(machine, absl::StrCat("run-", i),
                         i % 3 == 0 ? R"({"fail": true})" : R"({"fail": false})"));
  }
  for (const std::string& arn : started) AwaitClosed(arn);

  v1::ListExecutionsRequest request;
  request.set_state_machine_arn(machine);
  request.set_max_results(7);
  int pages = 0;
  std::vector<v1::ExecutionListItem> items = ListAll(request, &pages);
  EXPECT_EQ(pages, 4);
  ASSERT_EQ(items.size(), 25u);
  std::set<std::string> listed;
  for (size_t i = 0; i < items.size(); ++i) {
    listed.insert(items[i].execution_arn());
    EXPECT_EQ(items[i].state_machine_arn(), machine);
    if (i > 0) {
      const auto& newer = items[i - 1].start_date();
      const auto& older = items[i].start_date();
      EXPECT_TRUE(newer.seconds() > older.seconds() ||
                  (newer.seconds() == older.seconds() && newer.nanos() >= older.nanos()))
          << "not newest first at " << i;
    }
  }
  EXPECT_EQ(listed, started);

  request.set_status_filter("FAILED");
  request.set_max_results(4);
  items = ListAll(request, &pages);
  EXPECT_EQ(items.size(), 9u);
  EXPECT_EQ(pages, 3);
  for (const auto& item : items) EXPECT_EQ(item.status(), "FAILED");
  request.set_status_filter("SUCCEEDED");
  request.clear_max_results();
  items = ListAll(request, &pages);
  EXPECT_EQ(items.size(), 16u);
  EXPECT_EQ(pages, 1);

  // Bad tokens and page sizes.
  v1::ListExecutionsResponse page;
  request.set_next_token("%%%not-a-token");
  grpc::Status status = Call(&Stub::ListExecutions, request, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidToken"));
  request.set_next_token("c29tZXRoaW5nLWVsc2U");  // valid base64, not a token of ours
  status = Call(&Stub::ListExecutions, request, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidToken"));
  request.clear_next_token();
  request.set_max_results(1001);
  status = Call(&Stub::ListExecutions, request, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("ValidationException"));
}

TEST_F(ExecutionApiTest, HistoryPagesBothWaysAndCanOmitData) {
  const std::string machine = CreateMachine("choices", kChoiceDefinition);
  const std::string arn = Start(machine, "once", R"({"fail": false, "secret": 42})");
  AwaitClosed(arn);
  std::vector<v1::HistoryEvent> all = History(arn);
  ASSERT_EQ(all.size(), 6u);

  v1::GetExecutionHistoryRequest request;
  request.set_execution_arn(arn);
  request.set_max_results(4);
  request.set_reverse_order(true);
  std::vector<int64_t> ids;
  do {
    v1::GetExecutionHistoryResponse page;
    ASSERT_TRUE(Call(&Stub::GetExecutionHistory, request, &page).ok());
    for (const auto& event : page.events()) ids.push_back(event.id());
    request.set_next_token(page.next_token());
  } while (!request.next_token().empty());
  EXPECT_THAT(ids, ElementsAre(6, 5, 4, 3, 2, 1));

  request.set_reverse_order(false);
  request.set_max_results(0);
  request.set_include_execution_data(false);
  v1::GetExecutionHistoryResponse bare;
  ASSERT_TRUE(Call(&Stub::GetExecutionHistory, request, &bare).ok());
  ASSERT_EQ(bare.events_size(), 6);
  EXPECT_EQ(bare.events(0).type(), "ExecutionStarted");
  EXPECT_TRUE(bare.events(0).execution_started_event_details().input().empty());
  EXPECT_FALSE(all[0].execution_started_event_details().input().empty());
}

TEST_F(ExecutionApiTest, NamesAreIdempotencyKeys) {
  CreateActivity();
  const std::string machine = CreateMachine("approvals", TaskDefinition());
  const std::string arn = Start(machine, "order-1", R"({"order": 1})");
  // Same name and input while it runs: the same execution.
  EXPECT_EQ(Start(machine, "order-1", R"({"order": 1})"), arn);
  std::string other;
  grpc::Status status = TryStart(machine, "order-1", R"({"order": 2})", &other);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), StartsWith("ExecutionAlreadyExists"));

  // Once closed, the name cannot start another execution.
  v1::StopExecutionRequest stop;
  stop.set_execution_arn(arn);
  v1::StopExecutionResponse stopped;
  ASSERT_TRUE(Call(&Stub::StopExecution, stop, &stopped).ok());
  status = TryStart(machine, "order-1", R"({"order": 1})", &other);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), StartsWith("ExecutionAlreadyExists"));

  int pages = 0;
  v1::ListExecutionsRequest list;
  list.set_state_machine_arn(machine);
  EXPECT_EQ(ListAll(list, &pages).size(), 1u);
}

TEST_F(ExecutionApiTest, StopAbortsAndRefusesLateCompletions) {
  CreateActivity();
  const std::string machine = CreateMachine("approvals", TaskDefinition());
  const std::string arn = Start(machine, "to-stop");
  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(kActivityArn);
  poll.set_worker_name("w1");
  v1::GetActivityTaskResponse task;
  ASSERT_TRUE(Call(&Stub::GetActivityTask, poll, &task, absl::Seconds(30)).ok());
  ASSERT_FALSE(task.task_token().empty());

  v1::StopExecutionRequest stop;
  stop.set_execution_arn(arn);
  stop.set_error("Operator.Cancelled");
  stop.set_cause("no longer needed");
  v1::StopExecutionResponse stopped;
  ASSERT_TRUE(Call(&Stub::StopExecution, stop, &stopped).ok());
  v1::DescribeExecutionResponse described = Describe(arn);
  EXPECT_EQ(described.status(), "ABORTED");
  EXPECT_EQ(described.error(), "Operator.Cancelled");
  EXPECT_EQ(described.cause(), "no longer needed");
  EXPECT_EQ(described.stop_date().seconds(), stopped.stop_date().seconds());
  std::vector<v1::HistoryEvent> history = History(arn);
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.back().type(), "ExecutionAborted");
  EXPECT_EQ(history.back().execution_aborted_event_details().error(), "Operator.Cancelled");

  v1::SendTaskSuccessRequest late;
  late.set_task_token(task.task_token());
  late.set_output("{}");
  v1::SendTaskSuccessResponse late_response;
  grpc::Status status = Call(&Stub::SendTaskSuccess, late, &late_response);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.error_message(), StartsWith("TaskDoesNotExist"));

  // Stopping a closed execution changes nothing.
  v1::StopExecutionResponse again;
  stop.set_error("Other");
  ASSERT_TRUE(Call(&Stub::StopExecution, stop, &again).ok());
  EXPECT_EQ(again.stop_date().seconds(), stopped.stop_date().seconds());
  EXPECT_EQ(again.stop_date().nanos(), stopped.stop_date().nanos());
  EXPECT_EQ(Describe(arn).error(), "Operator.Cancelled");
  EXPECT_EQ(History(arn).size(), history.size());
}

TEST_F(ExecutionApiTest, RevisionsVersionsAndWeightedAliases) {
  std::string v1_arn;
  const std::string machine = CreateMachine("routed", PassDefinition("one"), true, &v1_arn);
  EXPECT_EQ(v1_arn, machine + ":1");
  const std::string before_update = Start(machine, "before-update");

  v1::DescribeStateMachineRequest describe;
  describe.set_state_machine_arn(machine);
  v1::DescribeStateMachineResponse first_revision;
  ASSERT_TRUE(Call(&Stub::DescribeStateMachine, describe, &first_revision).ok());

  v1::UpdateStateMachineRequest update;
  update.set_state_machine_arn(machine);
  update.set_definition(PassDefinition("two"));
  update.set_publish(true);
  update.set_version_description("second");
  v1::UpdateStateMachineResponse updated;
  ASSERT_TRUE(Call(&Stub::UpdateStateMachine, update, &updated).ok());
  EXPECT_EQ(updated.state_machine_version_arn(), machine + ":2");
  EXPECT_NE(updated.revision_id(), first_revision.revision_id());
  EXPECT_GT(updated.update_date().seconds(), 0);

  // The execution started before the update describes the revision it ran.
  v1::DescribeStateMachineForExecutionRequest for_execution;
  for_execution.set_execution_arn(before_update);
  v1::DescribeStateMachineForExecutionResponse ran;
  ASSERT_TRUE(Call(&Stub::DescribeStateMachineForExecution, for_execution, &ran).ok());
  EXPECT_EQ(ran.definition(), PassDefinition("one"));
  EXPECT_EQ(ran.revision_id(), first_revision.revision_id());

  // A version ARN runs that version.
  const std::string pinned = Start(v1_arn, "pinned");
  v1::DescribeExecutionResponse pinned_described = AwaitClosed(pinned);
  EXPECT_EQ(pinned_described.output(), R"("one")");
  EXPECT_EQ(pinned_described.state_machine_arn(), machine);
  EXPECT_EQ(pinned_described.state_machine_version_arn(), v1_arn);
  EXPECT_TRUE(pinned_described.state_machine_alias_arn().empty());

  describe.set_state_machine_arn(machine + ":2");
  v1::DescribeStateMachineResponse version;
  ASSERT_TRUE(Call(&Stub::DescribeStateMachine, describe, &version).ok());
  EXPECT_EQ(version.state_machine_arn(), machine + ":2");
  EXPECT_EQ(version.description(), "second");
  EXPECT_EQ(version.definition(), PassDefinition("two"));

  v1::CreateStateMachineAliasRequest alias;
  alias.set_name("live");
  alias.set_description("70/30");
  auto* heavy = alias.add_routing_configuration();
  heavy->set_state_machine_version_arn(v1_arn);
  heavy->set_weight(70);
  auto* light = alias.add_routing_configuration();
  light->set_state_machine_version_arn(machine + ":2");
  light->set_weight(30);
  v1::CreateStateMachineAliasResponse alias_created;
  ASSERT_TRUE(Call(&Stub::CreateStateMachineAlias, alias, &alias_created).ok());
  const std::string alias_arn = alias_created.state_machine_alias_arn();
  EXPECT_EQ(alias_arn, machine + ":live");

  std::map<std::string, int> by_version;
  std::vector<std::string> routed;
  for (int i = 0; i < 100; ++i) routed.push_back(Start(alias_arn, absl::StrCat("routed-", i)));
  for (const std::string& arn : routed) {
    v1::DescribeExecutionResponse described = AwaitClosed(arn);
    EXPECT_EQ(described.status(), "SUCCEEDED");
    EXPECT_EQ(described.state_machine_alias_arn(), alias_arn);
    ++by_version[described.state_machine_version_arn()];
    EXPECT_EQ(described.output(), described.state_machine_version_arn() == v1_arn
                                      ? R"("one")"
                                      : R"("two")");
  }
  EXPECT_EQ(by_version[v1_arn] + by_version[machine + ":2"], 100);
  EXPECT_GE(by_version[v1_arn], 55);
  EXPECT_LE(by_version[v1_arn], 85);
  // A retried named start through the alias is the same execution.
  std::string retried;
  grpc::Status status = TryStart(alias_arn, "routed-0", "{}", &retried);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);  // closed by now

  int pages = 0;
  v1::ListExecutionsRequest list;
  list.set_state_machine_arn(alias_arn);
  list.set_max_results(30);
  EXPECT_EQ(ListAll(list, &pages).size(), 100u);
  list.set_state_machine_arn(machine + ":2");
  std::vector<v1::ExecutionListItem> second = ListAll(list, &pages);
  EXPECT_EQ(static_cast<int>(second.size()), by_version[machine + ":2"]);
  for (const auto& item : second) {
    EXPECT_EQ(item.state_machine_version_arn(), machine + ":2");
    EXPECT_EQ(item.state_machine_alias_arn(), alias_arn);
  }
  list.set_state_machine_arn(v1_arn);
  EXPECT_EQ(static_cast<int>(ListAll(list, &pages).size()), by_version[v1_arn] + 1);  // + pinned
  list.set_state_machine_arn(machine);
  EXPECT_EQ(ListAll(list, &pages).size(), 102u);

  // A version an alias routes to cannot be deleted.
  v1::DeleteStateMachineVersionRequest delete_version;
  delete_version.set_state_machine_version_arn(machine + ":2");
  v1::DeleteStateMachineVersionResponse deleted;
  status = Call(&Stub::DeleteStateMachineVersion, delete_version, &deleted);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), StartsWith("ConflictException"));
  EXPECT_THAT(status.error_message(), HasSubstr(alias_arn));

  // Re-pointing the alias frees it.
  v1::UpdateStateMachineAliasRequest repoint;
  repoint.set_state_machine_alias_arn(alias_arn);
  auto* all_v1 = repoint.add_routing_configuration();
  all_v1->set_state_machine_version_arn(v1_arn);
  all_v1->set_weight(100);
  v1::UpdateStateMachineAliasResponse repointed;
  ASSERT_TRUE(Call(&Stub::UpdateStateMachineAlias, repoint, &repointed).ok());
  v1::DescribeStateMachineAliasRequest describe_alias;
  describe_alias.set_state_machine_alias_arn(alias_arn);
  v1::DescribeStateMachineAliasResponse alias_described;
  ASSERT_TRUE(Call(&Stub::DescribeStateMachineAlias, describe_alias, &alias_described).ok());
  ASSERT_EQ(alias_described.routing_configuration_size(), 1);
  EXPECT_EQ(alias_described.description(), "70/30");
  ASSERT_TRUE(Call(&Stub::DeleteStateMachineVersion, delete_version, &deleted).ok());

  v1::ListStateMachineVersionsRequest versions;
  versions.set_state_machine_arn(machine);
  v1::ListStateMachineVersionsResponse listed_versions;
  ASSERT_TRUE(Call(&Stub::ListStateMachineVersions, versions, &listed_versions).ok());
  ASSERT_EQ(listed_versions.state_machine_versions_size(), 1);
  EXPECT_EQ(listed_versions.state_machine_versions(0).state_machine_version_arn(), v1_arn);

  v1::ListStateMachineAliasesRequest aliases;
  aliases.set_state_machine_arn(machine);
  v1::ListStateMachineAliasesResponse listed_aliases;
  ASSERT_TRUE(Call(&Stub::ListStateMachineAliases, aliases, &listed_aliases).ok());
  ASSERT_EQ(listed_aliases.state_machine_aliases_size(), 1);
  v1::DeleteStateMachineAliasRequest delete_alias;
  delete_alias.set_state_machine_alias_arn(alias_arn);
  v1::DeleteStateMachineAliasResponse alias_deleted;
  ASSERT_TRUE(Call(&Stub::DeleteStateMachineAlias, delete_alias, &alias_deleted).ok());
  std::string none;
  status = TryStart(alias_arn, "after-delete", "{}", &none);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), StartsWith("ResourceNotFound"));
}

TEST_F(ExecutionApiTest, RedriveRunsTheFailedTaskAgain) {
  CreateActivity();
  const std::string machine = CreateMachine("approvals", TaskDefinition());
  const std::string arn = Start(machine, "flaky", R"({"order": 5})");
  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(kActivityArn);
  poll.set_worker_name("w1");
  v1::GetActivityTaskResponse task;
  ASSERT_TRUE(Call(&Stub::GetActivityTask, poll, &task, absl::Seconds(30)).ok());
  ASSERT_FALSE(task.task_token().empty());
  v1::SendTaskFailureRequest failure;
  failure.set_task_token(task.task_token());
  failure.set_error("Upstream.Down");
  v1::SendTaskFailureResponse failed;
  ASSERT_TRUE(Call(&Stub::SendTaskFailure, failure, &failed).ok());
  v1::DescribeExecutionResponse described = AwaitClosed(arn);
  ASSERT_EQ(described.status(), "FAILED");
  EXPECT_EQ(described.redrive_status(), "REDRIVABLE");

  v1::RedriveExecutionRequest redrive;
  redrive.set_execution_arn(arn);
  v1::RedriveExecutionResponse redriven;
  grpc::Status status = Call(&Stub::RedriveExecution, redrive, &redriven);
  ASSERT_TRUE(status.ok()) << status.error_message();
  described = Describe(arn);
  EXPECT_EQ(described.status(), "RUNNING");
  EXPECT_EQ(described.redrive_count(), 1);
  EXPECT_TRUE(described.error().empty());

  v1::GetActivityTaskResponse again;
  ASSERT_TRUE(Call(&Stub::GetActivityTask, poll, &again, absl::Seconds(30)).ok());
  ASSERT_FALSE(again.task_token().empty());
  EXPECT_EQ(again.input(), task.input());
  v1::SendTaskSuccessRequest success;
  success.set_task_token(again.task_token());
  success.set_output(R"({"approved": true})");
  v1::SendTaskSuccessResponse succeeded;
  ASSERT_TRUE(Call(&Stub::SendTaskSuccess, success, &succeeded).ok());
  described = AwaitClosed(arn);
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_EQ(described.output(), R"({"approved":true})");
  std::vector<std::string> types;
  for (const auto& event : History(arn)) types.push_back(event.type());
  EXPECT_THAT(types, ElementsAre("ExecutionStarted", "TaskStateEntered", "ActivityScheduled",
                                 "ActivityStarted", "ActivityFailed", "ExecutionFailed",
                                 "ExecutionRedriven", "TaskStateEntered", "ActivityScheduled",
                                 "ActivityStarted", "ActivitySucceeded", "TaskStateExited",
                                 "ExecutionSucceeded"));

  status = Call(&Stub::RedriveExecution, redrive, &redriven);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), StartsWith("ExecutionNotRedrivable"));
  int pages = 0;
  v1::ListExecutionsRequest list;
  list.set_state_machine_arn(machine);
  list.set_redrive_filter("REDRIVEN");
  std::vector<v1::ExecutionListItem> items = ListAll(list, &pages);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].redrive_count(), 1);
  list.set_redrive_filter("NOT_REDRIVEN");
  EXPECT_TRUE(ListAll(list, &pages).empty());
}

TEST_F(ExecutionApiTest, ClosedExecutionsArePurgedAfterRetention) {
  StartCluster({"--execution-retention-seconds", "2", "--retention-sweep-seconds", "1"});
  CreateActivity();
  const std::string quick = CreateMachine("quick", PassDefinition("x"));
  const std::string waits = CreateMachine("waits", TaskDefinition());
  const std::string done = Start(quick, "done");
  const std::string running = Start(waits, "running");
  EXPECT_EQ(AwaitClosed(done).status(), "SUCCEEDED");

  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  grpc::Status status;
  do {
    absl::SleepFor(absl::Milliseconds(200));
    v1::DescribeExecutionRequest request;
    request.set_execution_arn(done);
    v1::DescribeExecutionResponse response;
    status = Call(&Stub::DescribeExecution, request, &response);
  } while (status.ok() && absl::Now() < deadline);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), StartsWith("ExecutionDoesNotExist"));
  int pages = 0;
  v1::ListExecutionsRequest list;
  list.set_state_machine_arn(quick);
  EXPECT_TRUE(ListAll(list, &pages).empty());
  EXPECT_EQ(Describe(running).status(), "RUNNING");
}

}  // namespace
}  // namespace stepflow
