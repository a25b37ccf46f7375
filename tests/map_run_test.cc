// The Map Run APIs through a real gateway and three shard servers: a
// distributed Map whose children wait on activity tasks, observed with
// DescribeMapRun while it runs, widened with UpdateMapRun, listed with
// ListMapRuns and ListExecutions(map_run_arn) page by page, and described
// again once it has finished; the map run ARN alone routes to the parent's
// shard wherever that is.
#include <grpcpp/grpcpp.h>

#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using Stub = v1::StepFunctions::Stub;

constexpr char kActivityArn[] = "arn:aws:states:us-east-1:123456789012:activity:chunk-work";
constexpr int kItems = 12;

// Children wait for "chunk-work", three at a time.
std::string FanOutDefinition() {
  return absl::StrCat(R"({"StartAt": "Fan", "States": {
    "Fan": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 3, "Label": "fan",
            "ItemProcessor": {
              "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
              "StartAt": "Work", "States": {
                "Work": {"Type": "Task", "Resource": ")", kActivityArn, R"(", "End": true}}},
            "End": true}}})");
}

constexpr char kQuickDefinition[] = R"({"StartAt": "Fan", "States": {
  "Fan": {"Type": "Map", "Label": "quick",
          "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
          "End": true}}})";

class MapRunApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::TestCluster::Start(
        {.shard_servers = 3, .logical_shards = 16, .eventbus = false});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    api_ = std::make_unique<testing::StepFunctionsClient>(cluster_->GatewayChannel());
  }
  void TearDown() override {
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
  }

  std::vector<v1::MapRunListItem> MapRuns(const std::string& execution_arn) {
    v1::ListMapRunsRequest request;
    request.set_execution_arn(execution_arn);
    v1::ListMapRunsResponse response;
    grpc::Status status = api_->Call(&Stub::ListMapRuns, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.map_runs().begin(), response.map_runs().end()};
  }

  v1::DescribeMapRunResponse DescribeRun(const std::string& map_run_arn) {
    v1::DescribeMapRunRequest request;
    request.set_map_run_arn(map_run_arn);
    v1::DescribeMapRunResponse response;
    grpc::Status status = api_->Call(&Stub::DescribeMapRun, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // DescribeMapRun until `done` holds (children start as the outbox
  // delivers their tasks' transitions), at most 20 s.
  v1::DescribeMapRunResponse AwaitRun(
      const std::string& map_run_arn,
      const std::function<bool(const v1::DescribeMapRunResponse&)>& done) {
    v1::DescribeMapRunResponse described;
    for (const absl::Time end = absl::Now() + absl::Seconds(20); absl::Now() < end;) {
      described = DescribeRun(map_run_arn);
      if (done(described)) return described;
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "map run never reached the awaited state: " << described.DebugString();
    return described;
  }

  // Every child execution, in pages of `page`, checking each page's size.
  std::vector<v1::ExecutionListItem> Children(const std::string& map_run_arn, int page) {
    std::vector<v1::ExecutionListItem> all;
    v1::ListExecutionsRequest request;
    request.set_map_run_arn(map_run_arn);
    request.set_max_results(page);
    for (int pages = 0; pages < 50; ++pages) {
      v1::ListExecutionsResponse response;
      grpc::Status status = api_->Call(&Stub::ListExecutions, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      EXPECT_LE(response.executions_size(), page);
      all.insert(all.end(), response.executions().begin(), response.executions().end());
      if (response.next_token().empty()) break;
      request.set_next_token(response.next_token());
    }
    return all;
  }

  // One task of chunk-work; empty when none came within the poll.
  std::string TakeTask() {
    v1::GetActivityTaskRequest request;
    request.set_activity_arn(kActivityArn);
    request.set_worker_name("map-run-test");
    v1::GetActivityTaskResponse response;
    grpc::Status status =
        api_->Call(&Stub::GetActivityTask, request, &response, absl::Seconds(70));
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.task_token();
  }

  void Succeed(const std::string& token) {
    v1::SendTaskSuccessRequest request;
    request.set_task_token(token);
    request.set_output(R"({"done": true})");
    v1::SendTaskSuccessResponse response;
    grpc::Status status = api_->Call(&Stub::SendTaskSuccess, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<testing::StepFunctionsClient> api_;
};

TEST_F(MapRunApiTest, ObserveWidenListAndFinish) {
  api_->CreateActivity("chunk-work");
  const std::string machine = api_->CreateStateMachine("fanout", FanOutDefinition());
  std::string items;
  for (int i = 0; i < kItems; ++i) absl::StrAppend(&items, i == 0 ? "" : ",", i);
  const std::string execution =
      api_->StartExecution(machine, absl::StrCat(R"({"items": [)", items, "]}"), "wide");

  auto runs = MapRuns(execution);
  ASSERT_EQ(runs.size(), 1u);
  const std::string run_arn = runs[0].map_run_arn();
  EXPECT_THAT(run_arn, StartsWith("arn:aws:states:us-east-1:123456789012:mapRun:fanout/fan:"));
  EXPECT_EQ(runs[0].execution_arn(), execution);
  EXPECT_EQ(runs[0].state_machine_arn(), machine);

  // Three children run; the other nine wait.
  auto described = DescribeRun(run_arn);
  EXPECT_EQ(described.status(), "RUNNING");
  EXPECT_EQ(described.execution_arn(), execution);
  EXPECT_EQ(described.max_concurrency(), 3);
  EXPECT_EQ(described.execution_counts().running(), 3);
  EXPECT_EQ(described.execution_counts().pending(), kItems - 3);
  EXPECT_EQ(described.execution_counts().total(), kItems);
  EXPECT_EQ(described.item_counts().total(), kItems);
  std::vector<std::string> tokens;
  for (int i = 0; i < 3; ++i) tokens.push_back(TakeTask());

  // Six at once from now on: three more children start, and their tasks
  // come while none of the first three has been answered.
  v1::UpdateMapRunRequest update;
  update.set_map_run_arn(run_arn);
  update.set_max_concurrency(6);
  v1::UpdateMapRunResponse updated;
  grpc::Status status = api_->Call(&Stub::UpdateMapRun, update, &updated);
  ASSERT_TRUE(status.ok()) << status.error_message();
  described = DescribeRun(run_arn);
  EXPECT_EQ(described.max_concurrency(), 6);
  EXPECT_EQ(described.execution_counts().running(), 6);
  EXPECT_EQ(described.execution_counts().pending(), kItems - 6);
  for (int i = 0; i < 3; ++i) tokens.push_back(TakeTask());
  std::set<std::string> distinct(tokens.begin(), tokens.end());
  EXPECT_EQ(distinct.size(), 6u);
  EXPECT_EQ(distinct.count(""), 0u);

  // The six running children, in pages of four; one described by its ARN.
  auto children = Children(run_arn, 4);
  ASSERT_EQ(children.size(), 6u);
  std::set<std::string> child_arns;
  for (const auto& child : children) {
    child_arns.insert(child.execution_arn());
    EXPECT_THAT(child.execution_arn(),
                StartsWith("arn:aws:states:us-east-1:123456789012:execution:fanout/fan:"));
    EXPECT_EQ(child.status(), "RUNNING");
    EXPECT_EQ(child.map_run_arn(), run_arn);
  }
  EXPECT_EQ(child_arns.size(), 6u);
  auto child = api_->Describe(children[0].execution_arn());
  EXPECT_EQ(child.status(), "RUNNING");
  EXPECT_EQ(child.map_run_arn(), run_arn);

  // Answer every task until the run is done.
  for (const std::string& token : tokens) Succeed(token);
  for (int answered = 6; answered < kItems; ++answered) {
    std::string token = TakeTask();
    ASSERT_FALSE(token.empty());
    Succeed(token);
  }
  EXPECT_EQ(api_->AwaitClosed(execution).status(), "SUCCEEDED");
  described = AwaitRun(run_arn, [](const auto& d) { return d.status() != "RUNNING"; });
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_TRUE(described.has_stop_date());
  EXPECT_EQ(described.execution_counts().succeeded(), kItems);
  EXPECT_EQ(described.execution_counts().running(), 0);
  EXPECT_EQ(described.item_counts().succeeded(), kItems);
  EXPECT_EQ(described.item_counts().total(), kItems);

  children = Children(run_arn, 5);
  ASSERT_EQ(children.size(), static_cast<size_t>(kItems));
  child_arns.clear();
  for (size_t i = 0; i < children.size(); ++i) {
    child_arns.insert(children[i].execution_arn());
    EXPECT_EQ(children[i].status(), "SUCCEEDED");
    EXPECT_TRUE(children[i].has_stop_date());
    if (i > 0) {
      const auto& newer = children[i - 1].start_date();
      const auto& older = children[i].start_date();
      EXPECT_TRUE(newer.seconds() > older.seconds() ||
                  (newer.seconds() == older.seconds() && newer.nanos() >= older.nanos()));
    }
  }
  EXPECT_EQ(child_arns.size(), static_cast<size_t>(kItems));

  // A finished run cannot be updated.
  status = api_->Call(&Stub::UpdateMapRun, update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("ValidationException"));
}

TEST_F(MapRunApiTest, RoutesFromTheArnAloneAndRefusesBadInput) {
  const std::string machine = api_->CreateStateMachine("quick", kQuickDefinition);
  // Executions spread over the three servers; each map run is found from
  // its ARN wherever its parent lives.
  for (int i = 0; i < 8; ++i) {
    const std::string execution =
        api_->StartExecution(machine, "[1, 2, 3]", absl::StrCat("run-", i));
    EXPECT_EQ(api_->AwaitClosed(execution).status(), "SUCCEEDED");
    auto runs = MapRuns(execution);
    ASSERT_EQ(runs.size(), 1u);
    auto described = DescribeRun(runs[0].map_run_arn());
    EXPECT_EQ(described.execution_arn(), execution);
    EXPECT_EQ(described.status(), "SUCCEEDED");
    EXPECT_EQ(described.execution_counts().succeeded(), 3);
    EXPECT_EQ(Children(runs[0].map_run_arn(), 2).size(), 3u);
  }
  const std::string execution = api_->StartExecution(machine, "[1]", "last");
  const std::string run_arn = MapRuns(execution).at(0).map_run_arn();

  v1::DescribeMapRunRequest describe;
  v1::DescribeMapRunResponse described;
  describe.set_map_run_arn("arn:aws:states:us-east-1:123456789012:mapRun:quick/quick:nope");
  grpc::Status status = api_->Call(&Stub::DescribeMapRun, describe, &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidArn"));
  describe.set_map_run_arn(run_arn.substr(0, run_arn.size() - 4) + "0000");
  status = api_->Call(&Stub::DescribeMapRun, describe, &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), StartsWith("ResourceNotFound"));

  v1::UpdateMapRunRequest update;
  v1::UpdateMapRunResponse updated;
  update.set_map_run_arn(run_arn);
  update.set_max_concurrency(-1);
  status = api_->Call(&Stub::UpdateMapRun, update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("maxConcurrency"));
  update.clear_max_concurrency();
  update.set_tolerated_failure_percentage(101);
  status = api_->Call(&Stub::UpdateMapRun, update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("toleratedFailurePercentage"));

  v1::ListMapRunsRequest list;
  v1::ListMapRunsResponse listed;
  list.set_execution_arn(execution);
  list.set_next_token("bogus");
  status = api_->Call(&Stub::ListMapRuns, list, &listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidToken"));
  list.set_execution_arn("arn:aws:states:us-east-1:123456789012:execution:quick:absent");
  list.clear_next_token();
  status = api_->Call(&Stub::ListMapRuns, list, &listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  v1::ListExecutionsRequest children;
  v1::ListExecutionsResponse children_listed;
  children.set_map_run_arn(run_arn);
  children.set_state_machine_arn(machine);
  status = api_->Call(&Stub::ListExecutions, children, &children_listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  children.clear_state_machine_arn();
  children.set_next_token("bogus");
  status = api_->Call(&Stub::ListExecutions, children, &children_listed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidToken"));
}

}  // namespace
}  // namespace stepflow
