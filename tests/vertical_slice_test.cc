// The first vertical slice, end to end through real processes: a gateway,
// two shard servers, the eventbus, the Kafka-protocol broker and
// stepflow-worker; restarts included.
#include <grpcpp/grpcpp.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/internal/v1/shard.grpc.pb.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace iv1 = internal::v1;

constexpr char kActivityArn[] = "arn:aws:states:us-east-1:123456789012:activity:enrich";

std::string Definition(const std::string& activity_arn) {
  return absl::StrCat(R"({
    "Comment": "Pass, Task, Succeed",
    "StartAt": "Prepare",
    "States": {
      "Prepare": {"Type": "Pass", "Parameters": {"order.$": "$.order", "stage": "prepared"},
                  "Next": "Enrich"},
      "Enrich": {"Type": "Task", "Resource": ")", activity_arn, R"(",
                 "ResultPath": "$.enriched", "Next": "Done"},
      "Done": {"Type": "Succeed"}
    }})");
}

class VerticalSliceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::TestCluster::Start({.shard_servers = 2, .logical_shards = 16});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    Connect();
  }
  void TearDown() override {
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
  }
  void Connect() { stub_ = v1::StepFunctions::NewStub(cluster_->GatewayChannel()); }

  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (v1::StepFunctions::Stub::*method)(grpc::ClientContext*,
                                                                    const Request&, Response*),
                    const Request& request, Response* response) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    return (stub_.get()->*method)(&context, request, response);
  }

  std::string CreateMachine(const std::string& name) {
    v1::CreateActivityRequest activity;
    activity.set_name("enrich");
    v1::CreateActivityResponse activity_response;
    EXPECT_TRUE(Call(&v1::StepFunctions::Stub::CreateActivity, activity, &activity_response).ok());
    EXPECT_EQ(activity_response.activity_arn(), kActivityArn);
    v1::CreateStateMachineRequest create;
    create.set_name(name);
    create.set_definition(Definition(kActivityArn));
    create.set_type("STANDARD");
    create.set_role_arn("arn:aws:iam::123456789012:role/stepflow");
    v1::CreateStateMachineResponse created;
    grpc::Status status = Call(&v1::StepFunctions::Stub::CreateStateMachine, create, &created);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return created.state_machine_arn();
  }

  std::string Start(const std::string& machine, const std::string& name,
                    const std::string& input) {
    v1::StartExecutionRequest start;
    start.set_state_machine_arn(machine);
    start.set_name(name);
    start.set_input(input);
    v1::StartExecutionResponse started;
    grpc::Status status = Call(&v1::StepFunctions::Stub::StartExecution, start, &started);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return started.execution_arn();
  }

  v1::DescribeExecutionResponse Describe(const std::string& arn) {
    v1::DescribeExecutionRequest request;
    request.set_execution_arn(arn);
    v1::DescribeExecutionResponse response;
    grpc::Status status = Call(&v1::StepFunctions::Stub::DescribeExecution, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  v1::DescribeExecutionResponse AwaitClosed(const std::string& arn) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    v1::DescribeExecutionResponse response;
    do {
      response = Describe(arn);
      if (response.status() != "RUNNING") break;
      absl::SleepFor(absl::Milliseconds(50));
    } while (absl::Now() < deadline);
    return response;
  }

  std::vector<std::string> HistoryTypes(const std::string& arn) {
    v1::GetExecutionHistoryRequest request;
    request.set_execution_arn(arn);
    v1::GetExecutionHistoryResponse response;
    grpc::Status status = Call(&v1::StepFunctions::Stub::GetExecutionHistory, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> types;
    for (const auto& event : response.events()) types.push_back(event.type());
    return types;
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<v1::StepFunctions::Stub> stub_;
};

// The worker answers {"score": N} where N is the order number doubled.
const std::vector<std::string> kDoubler = {
    "/bin/sh", "-c",
    "read input; n=$(echo \"$input\" | sed 's/.*\"order\":\\([0-9]*\\).*/\\1/'); "
    "echo \"{\\\"score\\\": $((n * 2))}\""};

TEST_F(VerticalSliceTest, ExecutionsRunThroughWorkersAcrossShardsAndRestarts) {
  const std::string machine = CreateMachine("orders");
  ASSERT_FALSE(machine.empty());

  // Executions started before any worker runs wait in their Task state.
  std::vector<std::string> executions;
  for (int i = 0; i < 12; ++i) {
    executions.push_back(Start(machine, absl::StrCat("order-", i), absl::StrCat(R"({"order": )", i, "}")));
  }
  for (const auto& arn : executions) EXPECT_EQ(Describe(arn).status(), "RUNNING");

  // Routing: both shard servers own some of these executions.
  for (int ordinal = 0; ordinal < 2; ++ordinal) {
    auto shard = iv1::ShardService::NewStub(cluster_->ShardChannel(ordinal));
    grpc::ClientContext context;
    iv1::ListShardRequest request;
    request.set_state_machine_arn(machine);
    iv1::ListExecutionsShardResponse response;
    ASSERT_TRUE(shard->ListExecutions(&context, request, &response).ok());
    EXPECT_GT(response.executions_size(), 0) << "shard server " << ordinal << " owns none";
    EXPECT_LT(response.executions_size(), 12);
  }

  auto worker = cluster_->StartWorker("enrich", kDoubler);
  ASSERT_TRUE(worker.ok()) << worker.status();
  for (int i = 0; i < 12; ++i) {
    auto described = AwaitClosed(executions[i]);
    EXPECT_EQ(described.status(), "SUCCEEDED") << described.error() << " " << described.cause();
    EXPECT_EQ(described.output(),
              absl::StrCat(R"({"order":)", i, R"(,"stage":"prepared","enriched":{"score":)",
                           i * 2, "}}"));
  }
  EXPECT_THAT(HistoryTypes(executions[0]),
              ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                          "TaskStateEntered", "ActivityScheduled", "ActivityStarted",
                          "ActivitySucceeded", "TaskStateExited", "SucceedStateEntered",
                          "SucceedStateExited", "ExecutionSucceeded"));
  ASSERT_TRUE(cluster_->StopWorkers().ok());

  v1::ListExecutionsRequest list;
  list.set_state_machine_arn(machine);
  list.set_status_filter("SUCCEEDED");
  v1::ListExecutionsResponse listed;
  ASSERT_TRUE(Call(&v1::StepFunctions::Stub::ListExecutions, list, &listed).ok());
  EXPECT_EQ(listed.executions_size(), 12);

  // One execution waits on its task while the whole cluster restarts.
  const std::string waiting = Start(machine, "across-restart", R"({"order": 21})");
  absl::SleepFor(absl::Milliseconds(300));  // let the task reach its queue
  ASSERT_TRUE(cluster_->Restart().ok()) << cluster_->Logs();
  Connect();

  // Everything stored before the restart is still there.
  EXPECT_EQ(Describe(executions[3]).status(), "SUCCEEDED");
  EXPECT_EQ(HistoryTypes(executions[3]).size(), 11u);
  EXPECT_EQ(Describe(waiting).status(), "RUNNING");
  v1::DescribeStateMachineRequest describe_machine;
  describe_machine.set_state_machine_arn(machine);
  v1::DescribeStateMachineResponse machine_described;
  ASSERT_TRUE(Call(&v1::StepFunctions::Stub::DescribeStateMachine, describe_machine,
                   &machine_described).ok());
  EXPECT_EQ(machine_described.definition(), Definition(kActivityArn));

  // A worker started after the restart finishes the waiting execution.
  ASSERT_TRUE(cluster_->StartWorker("enrich", kDoubler).ok());
  auto finished = AwaitClosed(waiting);
  EXPECT_EQ(finished.status(), "SUCCEEDED") << finished.cause();
  EXPECT_THAT(finished.output(), HasSubstr(R"("enriched":{"score":42})"));
}

TEST_F(VerticalSliceTest, FailingWorkerFailsExecution) {
  const std::string machine = CreateMachine("failing");
  ASSERT_TRUE(cluster_
                  ->StartWorker("enrich", {"/bin/sh", "-c",
                                           "echo '{\"error\": \"OrderRejected\", \"cause\": "
                                           "\"out of stock\"}'; exit 3"})
                  .ok());
  const std::string arn = Start(machine, "rejected", R"({"order": 1})");
  auto described = AwaitClosed(arn);
  EXPECT_EQ(described.status(), "FAILED");
  EXPECT_EQ(described.error(), "OrderRejected");
  EXPECT_EQ(described.cause(), "out of stock");
  EXPECT_THAT(HistoryTypes(arn),
              ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                          "TaskStateEntered", "ActivityScheduled", "ActivityStarted",
                          "ActivityFailed", "ExecutionFailed"));
}

TEST_F(VerticalSliceTest, KillNineLosesNothingCommitted) {
  const std::string machine = CreateMachine("crashy");
  const std::string arn = Start(machine, "before-crash", R"({"order": 5})");
  absl::SleepFor(absl::Milliseconds(300));
  cluster_->KillAll();
  ASSERT_TRUE(cluster_->StartAll().ok()) << cluster_->Logs();
  Connect();
  EXPECT_EQ(Describe(arn).status(), "RUNNING");
  EXPECT_THAT(HistoryTypes(arn), ElementsAre("ExecutionStarted", "PassStateEntered",
                                             "PassStateExited", "TaskStateEntered",
                                             "ActivityScheduled"));
  ASSERT_TRUE(cluster_->StartWorker("enrich", kDoubler).ok());
  EXPECT_EQ(AwaitClosed(arn).status(), "SUCCEEDED");
}

// The gateway retries a shard server that is down (UNAVAILABLE) within the
// caller's deadline, for the calls it forwards without blocking a thread.
TEST_F(VerticalSliceTest, GatewayWaitsForAShardServerThatComesBack) {
  const std::string machine = CreateMachine("patient");
  const std::string before = Start(machine, "before-outage", R"({"order": 1})");
  cluster_->KillShard(0);
  cluster_->KillShard(1);
  const absl::Time down_at = absl::Now();
  // The start waits in the gateway while this thread restarts the servers
  // (a child process dies with the thread that launched it).
  std::string during;
  absl::Duration waited;
  std::thread starter([&] {
    during = Start(machine, "during-outage", R"({"order": 2})");
    waited = absl::Now() - down_at;
  });
  absl::SleepFor(absl::Milliseconds(1500));
  const absl::Status restarted_0 = cluster_->RestartShard(0);
  const absl::Status restarted_1 = cluster_->RestartShard(1);
  starter.join();
  ASSERT_TRUE(restarted_0.ok()) << restarted_0;
  ASSERT_TRUE(restarted_1.ok()) << restarted_1;
  EXPECT_FALSE(during.empty());
  // It was answered only once the servers were back.
  EXPECT_GE(waited, absl::Milliseconds(1400));
  EXPECT_EQ(Describe(during).status(), "RUNNING");
  EXPECT_EQ(Describe(before).status(), "RUNNING");
}

TEST_F(VerticalSliceTest, EveryProcessServesHealthAndMetrics) {
  for (int i = 0; i < 2; ++i) {
    auto serving = testing::IsServing(cluster_->shard_address(i), absl::Seconds(5));
    ASSERT_TRUE(serving.ok());
    EXPECT_TRUE(*serving);
  }
  CreateMachine("metered");
  auto page = testing::HttpGet(cluster_->gateway_metrics_address(), "/metrics");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(*page, HasSubstr("stepflow_rpc_server_handled_total"));
  EXPECT_THAT(*page, HasSubstr("method=\"CreateStateMachine\""));
  EXPECT_THAT(*page, HasSubstr("stepflow_rpc_server_handling_seconds"));
}

}  // namespace
}  // namespace stepflow
