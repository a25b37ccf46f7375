// Scenario "react to an event" (examples/subscription-expired) end to end:
// a rule on a custom bus matches a "Subscription Expired" event and starts an
// EXPRESS workflow that disables the subscription's resources and e-mails
// the customer in parallel (two activities served by stepflow-worker
// processes running the example's scripts), then puts a "Subscription
// Processed" event back on the bus, whose own rule starts an audit workflow.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/json/json.h"
#include "gtest/gtest.h"
#include "stepflow/v1/events.grpc.pb.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/child_process.h"
#include "tests/fixture/cluster.h"
#include "tests/fixture/example_files.h"

namespace stepflow {
namespace {

using Stub = v1::StepFunctions::Stub;

constexpr char kExample[] = "subscription-expired";

std::string ExampleFile(const std::string& name) { return testing::ExampleFile(kExample, name); }

class SubscriptionExpiredTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::TestCluster::Start({.shard_servers = 2, .logical_shards = 8});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    api_ = std::make_unique<testing::StepFunctionsClient>(cluster_->GatewayChannel());
    events_ = v1::EventBridge::NewStub(cluster_->GatewayChannel());
  }
  void TearDown() override {
    for (auto& worker : workers_) worker->Stop(SIGTERM, absl::Seconds(10));
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
  }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    return context;
  }

  void Rule(const std::string& name, const std::string& pattern, const std::string& target_arn,
            const std::string& input_path) {
    v1::PutRuleRequest rule;
    rule.set_name(name);
    rule.set_event_bus_name("subscriptions");
    rule.set_event_pattern(pattern);
    v1::PutRuleResponse ruled;
    grpc::Status status = events_->PutRule(Context().get(), rule, &ruled);
    ASSERT_TRUE(status.ok()) << status.error_message();
    v1::PutTargetsRequest targets;
    targets.set_rule(name);
    targets.set_event_bus_name("subscriptions");
    v1::Target* target = targets.add_targets();
    target->set_id("workflow");
    target->set_arn(target_arn);
    target->set_input_path(input_path);
    v1::PutTargetsResponse targeted;
    status = events_->PutTargets(Context().get(), targets, &targeted);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(targeted.failed_entry_count(), 0);
  }

  void StartWorker(const std::string& activity, const std::string& script) {
    auto worker = testing::ChildProcess::Start(
        activity,
        {STEPFLOW_WORKER_BIN, "--endpoint", cluster_->gateway_address(), "--activity", activity,
         "--", "/bin/sh", testing::ExamplePath(kExample, script)},
        absl::StrCat(cluster_->work_dir(), "/", activity, ".log"));
    ASSERT_TRUE(worker.ok()) << worker.status();
    workers_.push_back(std::move(*worker));
  }

  std::vector<v1::ExecutionListItem> Executions(const std::string& machine) {
    v1::ListExecutionsRequest request;
    request.set_state_machine_arn(machine);
    v1::ListExecutionsResponse response;
    EXPECT_TRUE(api_->Call(&Stub::ListExecutions, request, &response).ok());
    return {response.executions().begin(), response.executions().end()};
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<testing::StepFunctionsClient> api_;
  std::unique_ptr<v1::EventBridge::Stub> events_;
  std::vector<std::unique_ptr<testing::ChildProcess>> workers_;
};

TEST_F(SubscriptionExpiredTest, ExpiredSubscriptionIsProcessedAndAnnounced) {
  api_->CreateActivity("disable-resources");
  api_->CreateActivity("email-customer");
  const std::string process = api_->CreateStateMachine(
      "process-subscription", ExampleFile("process-subscription.asl.json"), "EXPRESS");
  const std::string audit = api_->CreateStateMachine(
      "audit", R"({"StartAt": "Record", "States": {"Record": {"Type": "Pass", "End": true}}})");
  {
    v1::CreateEventBusRequest bus;
    bus.set_name("subscriptions");
    v1::CreateEventBusResponse created;
    grpc::Status status = events_->CreateEventBus(Context().get(), bus, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_NO_FATAL_FAILURE(Rule("subscription-expired", ExampleFile("expired-rule.json"), process, ""));
  ASSERT_NO_FATAL_FAILURE(Rule("subscription-processed",
                               R"({"source": ["subscriptions.workflow"],
                                   "detail-type": ["Subscription Processed"]})",
                               audit, "$.detail"));
  ASSERT_NO_FATAL_FAILURE(StartWorker("disable-resources", "disable-resources.sh"));
  ASSERT_NO_FATAL_FAILURE(StartWorker("email-customer", "email-customer.sh"));

  v1::PutEventsRequest put;
  for (const char* type : {"Subscription Expired", "Subscription Renewed"}) {
    v1::PutEventsRequestEntry* entry = put.add_entries();
    entry->set_event_bus_name("subscriptions");
    entry->set_source("billing");
    entry->set_detail_type(type);
    entry->set_detail(R"({"subscriptionId": "sub-42", "customer": "ada@example.com"})");
  }
  v1::PutEventsResponse accepted;
  ASSERT_TRUE(events_->PutEvents(Context().get(), put, &accepted).ok());
  ASSERT_EQ(accepted.failed_entry_count(), 0);

  std::vector<v1::ExecutionListItem> audited;
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  while (absl::Now() < deadline && (audited = Executions(audit)).empty()) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_EQ(audited.size(), 1u);
  auto processed = json::Parse(api_->Describe(audited[0].execution_arn()).input());
  ASSERT_TRUE(processed.ok());
  EXPECT_EQ(std::string((*processed)["subscriptionId"].GetString()), "sub-42");
  ASSERT_TRUE((*processed)["resourcesDisabled"].IsArray());
  EXPECT_EQ(std::string((*processed)["resourcesDisabled"][0].GetString()), "vm-sub-42");
  EXPECT_EQ(std::string((*processed)["customerEmailed"].GetString()), "ada@example.com");
  // Only the expired subscription started the workflow, once.
  std::vector<v1::ExecutionListItem> runs = Executions(process);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status(), "SUCCEEDED");
}

}  // namespace
}  // namespace stepflow
