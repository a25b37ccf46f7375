// Event buses end to end: real gateway processes and the Kafka-protocol
// broker (stepflow-kafka-mock) started by the test fixture. Events are read
// back from the bus topic by kcat, a Kafka client of its own in a process of
// its own, so what is checked is what Kafka holds.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "common/json/json.h"
#include "common/rpc/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/events.grpc.pb.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/child_process.h"
#include "tests/fixture/cluster.h"
#include "tests/fixture/kcat.h"

namespace stepflow {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;
using testing::ReadTopicWithKcat;
using testing::TopicRecord;

constexpr char kPassMachine[] =
    R"({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}})";

class EventBusE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster =
        testing::TestCluster::Start({.shard_servers = 1, .logical_shards = 4});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    stub_ = v1::EventBridge::NewStub(cluster_->GatewayChannel());
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << cluster_->Logs();
  }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(20));
    return context;
  }

  static grpc::Status CreateBus(v1::EventBridge::Stub* stub,
                                const std::string& name) {
    v1::CreateEventBusRequest request;
    request.set_name(name);
    v1::CreateEventBusResponse response;
    return stub->CreateEventBus(Context().get(), request, &response);
  }

  static grpc::Status PutRule(v1::EventBridge::Stub* stub,
                              const std::string& bus, const std::string& name,
                              const std::string& pattern) {
    v1::PutRuleRequest request;
    request.set_name(name);
    request.set_event_bus_name(bus);
    request.set_event_pattern(pattern);
    v1::PutRuleResponse response;
    return stub->PutRule(Context().get(), request, &response);
  }

  static std::vector<std::string> RuleNames(v1::EventBridge::Stub* stub,
                                            const std::string& bus, int limit) {
    std::vector<std::string> names;
    v1::ListRulesRequest request;
    request.set_event_bus_name(bus);
    request.set_limit(limit);
    for (int page = 0; page < 100; ++page) {
      v1::ListRulesResponse response;
      grpc::Status status =
          stub->ListRules(Context().get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      EXPECT_LE(response.rules_size(), limit);
      for (const auto& rule : response.rules()) names.push_back(rule.name());
      if (response.next_token().empty()) break;
      request.set_next_token(response.next_token());
    }
    return names;
  }

  static testing::TestCluster* cluster_;
  std::unique_ptr<v1::EventBridge::Stub> stub_;
};

testing::TestCluster* EventBusE2eTest::cluster_ = nullptr;

// What Kafka holds is read back by kcat, an independent Kafka client: one
// record per accepted entry, keyed by its event id, holding AWS's envelope
// of that entry, and nothing for the refused entries.
TEST_F(EventBusE2eTest, PutEventsStoresExactlyTheAcceptedEvents) {
  ASSERT_TRUE(CreateBus(stub_.get(), "payments").ok());
  grpc::Status duplicate = CreateBus(stub_.get(), "payments");
  EXPECT_EQ(duplicate.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  v1::DescribeEventBusRequest describe;
  describe.set_name("payments");
  v1::DescribeEventBusResponse bus;
  ASSERT_TRUE(stub_->DescribeEventBus(Context().get(), describe, &bus).ok());
  // arn:aws:events:REGION:ACCOUNT:event-bus/payments
  const std::vector<std::string> arn = absl::StrSplit(bus.arn(), ':');
  ASSERT_EQ(arn.size(), 6u) << bus.arn();

  const absl::Time stated_time = absl::FromUnixSeconds(1700000000);
  v1::PutEventsRequest request;
  std::set<int> valid;
  for (int i = 0; i < 10; ++i) {
    v1::PutEventsRequestEntry* entry = request.add_entries();
    entry->set_source("shop.payments");
    entry->set_detail_type("PaymentTaken");
    entry->set_event_bus_name(i == 3 ? "no-such-bus" : "payments");
    entry->set_detail(
        i == 5 ? "not json"
               : absl::StrCat(R"({"n":)", i, R"(,"card":{"last4":"4242"}})"));
    if (i == 7) entry->clear_source();
    if (i % 2 == 0)
      entry->add_resources(absl::StrCat("arn:aws:shop:::order/", i));
    if (i == 8)
      entry->mutable_time()->set_seconds(absl::ToUnixSeconds(stated_time));
    if (i != 3 && i != 5 && i != 7) valid.insert(i);
  }
  const absl::Time before = absl::Now() - absl::Seconds(1);
  v1::PutEventsResponse response;
  grpc::Status status = stub_->PutEvents(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const absl::Time after = absl::Now() + absl::Seconds(1);
  ASSERT_THAT(response.entries(), SizeIs(10));
  // An event for a bus that does not exist gets an id and goes nowhere, as
  // on AWS.
  EXPECT_EQ(response.failed_entry_count(), 2);
  EXPECT_TRUE(response.entries(3).error_code().empty());
  EXPECT_FALSE(response.entries(3).event_id().empty());
  EXPECT_EQ(response.entries(5).error_code(), "MalformedDetail");
  EXPECT_EQ(response.entries(7).error_code(), "InvalidArgument");
  std::map<std::string, int> entry_of_id;
  for (int i : valid) {
    ASSERT_FALSE(response.entries(i).event_id().empty()) << i;
    entry_of_id[response.entries(i).event_id()] = i;
  }

  const std::string kcat_log = absl::StrCat(cluster_->work_dir(), "/kcat.log");
  absl::StatusOr<std::vector<TopicRecord>> stored = ReadTopicWithKcat(
      cluster_->kafka_bootstrap(), "stepflow.events.payments", kcat_log);
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_THAT(*stored, SizeIs(valid.size()));
  std::set<std::string> seen;
  for (const TopicRecord& record : *stored) {
    SCOPED_TRACE(record.value);
    absl::StatusOr<json::Document> event = json::Parse(record.value);
    ASSERT_TRUE(event.ok()) << event.status();
    ASSERT_TRUE(event->IsObject());
    ASSERT_TRUE(event->HasMember("id") && (*event)["id"].IsString());
    const std::string id = (*event)["id"].GetString();
    EXPECT_EQ(record.key, id);
    ASSERT_EQ(entry_of_id.count(id), 1u) << "not an accepted event's id";
    EXPECT_TRUE(seen.insert(id).second) << "stored twice";
    const int i = entry_of_id[id];
    std::vector<std::string> fields;
    for (const auto& member : event->GetObject())
      fields.push_back(member.name.GetString());
    EXPECT_THAT(fields, ::testing::ElementsAre(
                            "version", "id", "detail-type", "source", "account",
                            "time", "region", "resources", "detail"));
    EXPECT_EQ(std::string((*event)["version"].GetString()), "0");
    EXPECT_EQ(std::string((*event)["detail-type"].GetString()), "PaymentTaken");
    EXPECT_EQ(std::string((*event)["source"].GetString()), "shop.payments");
    EXPECT_EQ(std::string((*event)["region"].GetString()), arn[3]);
    EXPECT_EQ(std::string((*event)["account"].GetString()), arn[4]);
    absl::Time time;
    std::string error;
    ASSERT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%SZ",
                                (*event)["time"].GetString(), &time, &error))
        << error;
    if (i == 8) {
      EXPECT_EQ(time, stated_time);
    } else {
      EXPECT_GE(time, before);
      EXPECT_LE(time, after);
    }
    const json::Value& resources = (*event)["resources"];
    ASSERT_TRUE(resources.IsArray());
    if (i % 2 == 0) {
      ASSERT_EQ(resources.Size(), 1u);
      EXPECT_EQ(std::string(resources[0].GetString()),
                absl::StrCat("arn:aws:shop:::order/", i));
    } else {
      EXPECT_EQ(resources.Size(), 0u);
    }
    EXPECT_EQ(json::Serialize((*event)["detail"]),
              absl::StrCat(R"({"n":)", i, R"(,"card":{"last4":"4242"}})"));
  }
  EXPECT_EQ(seen.size(), valid.size());
}

TEST_F(EventBusE2eTest, RulesAcrossGatewayReplicas) {
  ASSERT_TRUE(CreateBus(stub_.get(), "orders").ok());
  grpc::Status invalid = PutRule(stub_.get(), "orders", "bad",
                                 R"({"detail": {"n": [{"numeric": [">"]}]}})");
  EXPECT_EQ(invalid.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(invalid.error_message(),
              ::testing::StartsWith("InvalidEventPatternException: Event "
                                    "pattern is not valid. Reason: "));
  std::vector<std::string> created;
  for (int i = 0; i < 7; ++i) {
    const std::string name = absl::StrCat("rule-", i);
    ASSERT_TRUE(
        PutRule(stub_.get(), "orders", name, R"({"source": ["shop"]})").ok());
    created.push_back(name);
  }
  EXPECT_EQ(RuleNames(stub_.get(), "orders", 3), created);
  EXPECT_EQ(RuleNames(stub_.get(), "orders", 100), created);

  // A second gateway replica reads the same catalog from Kafka.
  const int port = testing::PickFreePort();
  auto second = testing::ChildProcess::Start(
      "gateway-2",
      {STEPFLOW_GATEWAY_BIN, "--shard-servers", cluster_->shard_address(0),
       "--shards", "4", "--listen", absl::StrCat("127.0.0.1:", port),
       "--kafka-brokers", cluster_->kafka_bootstrap(), "--kafka-topic-creation",
       "broker-default"},
      absl::StrCat(cluster_->work_dir(), "/gateway-2.log"));
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE((*second)->WaitForOutput("listening on", absl::Seconds(30)).ok())
      << (*second)->LogTail();
  auto stub2 = v1::EventBridge::NewStub(
      rpc::MakeChannel(absl::StrCat("127.0.0.1:", port)));
  EXPECT_EQ(RuleNames(stub2.get(), "orders", 2), created);
  v1::DescribeEventBusRequest describe;
  describe.set_name("orders");
  v1::DescribeEventBusResponse described;
  ASSERT_TRUE(
      stub2->DescribeEventBus(Context().get(), describe, &described).ok());

  // A change through the second replica reaches the first within a second.
  v1::DisableRuleRequest disable;
  disable.set_name("rule-2");
  disable.set_event_bus_name("orders");
  v1::DisableRuleResponse disabled;
  ASSERT_TRUE(stub2->DisableRule(Context().get(), disable, &disabled).ok());
  v1::DeleteRuleRequest remove;
  remove.set_name("rule-6");
  remove.set_event_bus_name("orders");
  v1::DeleteRuleResponse removed;
  ASSERT_TRUE(stub2->DeleteRule(Context().get(), remove, &removed).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  std::string state;
  while (absl::Now() < deadline) {
    v1::DescribeRuleRequest rule;
    rule.set_name("rule-2");
    rule.set_event_bus_name("orders");
    v1::DescribeRuleResponse rule_described;
    ASSERT_TRUE(
        stub_->DescribeRule(Context().get(), rule, &rule_described).ok());
    state = rule_described.state();
    if (state == "DISABLED" &&
        RuleNames(stub_.get(), "orders", 100).size() == 6)
      break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(state, "DISABLED");
  created.pop_back();
  EXPECT_EQ(RuleNames(stub_.get(), "orders", 4), created);
  EXPECT_EQ((*second)->Stop(SIGTERM, absl::Seconds(10)), 0);
}

// The eventbus delivers a matching event to the rule's target: one
// execution of the right state machine with the InputPath's part of the
// event; a non-matching event starts nothing.
TEST_F(EventBusE2eTest, MatchingEventStartsTheTargetWorkflow) {
  auto states = v1::StepFunctions::NewStub(cluster_->GatewayChannel());
  const std::string machine_arn =
      testing::StepFunctionsClient(cluster_->GatewayChannel())
          .CreateStateMachine("on-order", kPassMachine);
  ASSERT_FALSE(machine_arn.empty());

  ASSERT_TRUE(CreateBus(stub_.get(), "shop").ok());
  ASSERT_TRUE(
      PutRule(
          stub_.get(), "shop", "placed",
          R"({"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 10]}]}})")
          .ok());
  v1::PutTargetsRequest targets;
  targets.set_rule("placed");
  targets.set_event_bus_name("shop");
  v1::Target* target = targets.add_targets();
  target->set_id("start-order");
  target->set_arn(machine_arn);
  target->set_input_path("$.detail");
  v1::PutTargetsResponse targeted;
  ASSERT_TRUE(stub_->PutTargets(Context().get(), targets, &targeted).ok());
  ASSERT_EQ(targeted.failed_entry_count(), 0);

  v1::PutEventsRequest events;
  for (int total : {5, 42}) {
    v1::PutEventsRequestEntry* entry = events.add_entries();
    entry->set_source("shop");
    entry->set_detail_type("OrderPlaced");
    entry->set_event_bus_name("shop");
    entry->set_detail(
        absl::StrCat(R"({"order":"o-)", total, R"(","total":)", total, "}"));
  }
  v1::PutEventsResponse put;
  ASSERT_TRUE(stub_->PutEvents(Context().get(), events, &put).ok());
  ASSERT_EQ(put.failed_entry_count(), 0);

  v1::ListExecutionsRequest list;
  list.set_state_machine_arn(machine_arn);
  v1::ListExecutionsResponse listed;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    listed.Clear();
    ASSERT_TRUE(states->ListExecutions(Context().get(), list, &listed).ok());
    if (listed.executions_size() > 0) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_EQ(listed.executions_size(), 1) << cluster_->Logs();
  // The execution name starts with the event's id.
  EXPECT_EQ(listed.executions(0).name().substr(0, 36),
            put.entries(1).event_id());
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(listed.executions(0).execution_arn());
  v1::DescribeExecutionResponse described;
  ASSERT_TRUE(
      states->DescribeExecution(Context().get(), describe, &described).ok());
  EXPECT_EQ(described.input(), R"({"order":"o-42","total":42})");

  // Redelivery starts nothing twice: a second eventbus in a consumer group
  // of its own reads every event again and delivers the matching one again.
  const int metrics_port = testing::PickFreePort();
  auto again = testing::ChildProcess::Start(
      "eventbus-2",
      {STEPFLOW_EVENTBUS_BIN, "--kafka-brokers", cluster_->kafka_bootstrap(),
       "--gateway", cluster_->gateway_address(), "--group-id", "redelivery",
       "--listen", "127.0.0.1:0", "--metrics-listen",
       absl::StrCat("127.0.0.1:", metrics_port)},
      absl::StrCat(cluster_->work_dir(), "/eventbus-2.log"));
  ASSERT_TRUE(again.ok()) << again.status();
  const std::string started =
      R"(stepflow_eventbus_deliveries_total{outcome="started"} 1)";
  std::string metrics;
  const absl::Time redelivered_by = absl::Now() + absl::Seconds(60);
  while (absl::Now() < redelivered_by) {
    auto page =
        testing::HttpGet(absl::StrCat("127.0.0.1:", metrics_port), "/metrics");
    if (page.ok()) metrics = *page;
    if (metrics.find(started) != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_THAT(metrics, HasSubstr(started)) << (*again)->LogTail();
  EXPECT_EQ((*again)->Stop(SIGTERM, absl::Seconds(10)), 0);

  // Still one execution: the other event does not match, the redelivered
  // one had started already.
  listed.Clear();
  ASSERT_TRUE(states->ListExecutions(Context().get(), list, &listed).ok());
  EXPECT_EQ(listed.executions_size(), 1);
}

// A delivery that cannot succeed (the target state machine does not exist)
// is given up into the target's DeadLetterConfig queue, i.e. its Kafka topic
// stepflow.dead-letter.QUEUE, read back by kcat: the event, rule, target
// and reason.
TEST_F(EventBusE2eTest, GivenUpDeliveryLandsInTheTargetsDeadLetterTopic) {
  std::string missing_arn =
      testing::StepFunctionsClient(cluster_->GatewayChannel())
          .CreateStateMachine("dlq-probe", kPassMachine);
  ASSERT_FALSE(missing_arn.empty());
  missing_arn.replace(missing_arn.rfind("dlq-probe"), 9, "dlq-missing");

  ASSERT_TRUE(CreateBus(stub_.get(), "returns").ok());
  ASSERT_TRUE(PutRule(stub_.get(), "returns", "refund",
                      R"({"detail-type": ["RefundAsked"]})")
                  .ok());
  v1::PutTargetsRequest targets;
  targets.set_rule("refund");
  targets.set_event_bus_name("returns");
  v1::Target* target = targets.add_targets();
  target->set_id("refund-missing");
  target->set_arn(missing_arn);
  target->mutable_dead_letter_config()->set_arn(
      "arn:aws:sqs:us-east-1:123456789012:refunds-dlq");
  v1::PutTargetsResponse targeted;
  ASSERT_TRUE(stub_->PutTargets(Context().get(), targets, &targeted).ok());
  ASSERT_EQ(targeted.failed_entry_count(), 0)
      << targeted.failed_entries(0).error_message();

  v1::PutEventsRequest events;
  v1::PutEventsRequestEntry* entry = events.add_entries();
  entry->set_source("shop");
  entry->set_detail_type("RefundAsked");
  entry->set_event_bus_name("returns");
  entry->set_detail(R"({"order":"o-7"})");
  v1::PutEventsResponse put;
  ASSERT_TRUE(stub_->PutEvents(Context().get(), events, &put).ok());
  ASSERT_EQ(put.failed_entry_count(), 0);
  const std::string event_id = put.entries(0).event_id();

  const std::string kcat_log =
      absl::StrCat(cluster_->work_dir(), "/kcat-dlq.log");
  std::vector<TopicRecord> records;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    auto read = ReadTopicWithKcat(cluster_->kafka_bootstrap(),
                                  "stepflow.dead-letter.refunds-dlq", kcat_log);
    if (read.ok() && !read->empty()) {
      records = std::move(*read);
      break;
    }
    absl::SleepFor(absl::Milliseconds(500));
  }
  ASSERT_THAT(records, SizeIs(1)) << cluster_->Logs();
  EXPECT_EQ(records[0].key, event_id);
  auto record = json::Parse(records[0].value);
  ASSERT_TRUE(record.ok()) << records[0].value;
  EXPECT_STREQ((*record)["event"]["id"].GetString(), event_id.c_str());
  EXPECT_STREQ((*record)["target"].GetString(), "refund-missing");
  EXPECT_THAT(std::string((*record)["rule"].GetString()),
              HasSubstr("rule/returns/refund"));
  EXPECT_THAT(std::string((*record)["error"].GetString()),
              HasSubstr("NOT_FOUND"));
}

// An InputTransformer target: the execution's input is the template with
// the event's values and AWS's predefined placeholders filled in.
TEST_F(EventBusE2eTest, InputTransformerShapesTheExecutionInput) {
  testing::StepFunctionsClient states(cluster_->GatewayChannel());
  const std::string machine = states.CreateStateMachine(
      "on-shipment",
      R"({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}})");
  ASSERT_TRUE(CreateBus(stub_.get(), "shipping").ok());
  ASSERT_TRUE(PutRule(stub_.get(), "shipping", "shipped",
                      R"({"detail-type": ["Shipped"]})")
                  .ok());
  v1::PutTargetsRequest targets;
  targets.set_rule("shipped");
  targets.set_event_bus_name("shipping");
  v1::Target* target = targets.add_targets();
  target->set_id("notify");
  target->set_arn(machine);
  auto* transformer = target->mutable_input_transformer();
  (*transformer->mutable_input_paths_map())["parcel"] = "$.detail.parcel";
  (*transformer->mutable_input_paths_map())["weight"] = "$.detail.kg";
  transformer->set_input_template(
      R"({"parcel": <parcel>, "label": "parcel <parcel>", "kg": <weight>, )"
      R"("rule": <aws.events.rule-name>, "event": <aws.events.event.json>})");
  v1::PutTargetsResponse targeted;
  ASSERT_TRUE(stub_->PutTargets(Context().get(), targets, &targeted).ok());
  ASSERT_EQ(targeted.failed_entry_count(), 0);

  v1::PutEventsRequest events;
  v1::PutEventsRequestEntry* entry = events.add_entries();
  entry->set_source("shop.shipping");
  entry->set_detail_type("Shipped");
  entry->set_event_bus_name("shipping");
  entry->set_detail(R"({"parcel": "p-9", "kg": 2.5})");
  v1::PutEventsResponse put;
  ASSERT_TRUE(stub_->PutEvents(Context().get(), events, &put).ok());
  ASSERT_EQ(put.failed_entry_count(), 0);

  v1::ListExecutionsRequest list;
  list.set_state_machine_arn(machine);
  v1::ListExecutionsResponse listed;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(60);
       absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(200))) {
    listed.Clear();
    ASSERT_TRUE(
        states.Call(&v1::StepFunctions::Stub::ListExecutions, list, &listed)
            .ok());
    if (listed.executions_size() > 0) break;
  }
  ASSERT_EQ(listed.executions_size(), 1) << cluster_->Logs();
  absl::StatusOr<json::Document> input = json::Parse(
      states.Describe(listed.executions(0).execution_arn()).input());
  ASSERT_TRUE(input.ok());
  EXPECT_EQ(std::string((*input)["parcel"].GetString()), "p-9");
  EXPECT_EQ(std::string((*input)["label"].GetString()), "parcel p-9");
  EXPECT_EQ((*input)["kg"].GetDouble(), 2.5);
  EXPECT_EQ(std::string((*input)["rule"].GetString()), "shipped");
  EXPECT_EQ(std::string((*input)["event"]["id"].GetString()),
            put.entries(0).event_id());
  EXPECT_EQ(json::Serialize((*input)["event"]["detail"]),
            R"({"parcel":"p-9","kg":2.5})");
}

// Workflows react to each other: "A succeeded" lands on the default bus as
// AWS's status change event, and a rule on it starts B with its detail.
TEST_F(EventBusE2eTest, ExecutionStatusChangeStartsAnotherWorkflow) {
  testing::StepFunctionsClient states(cluster_->GatewayChannel());
  const std::string upstream = states.CreateStateMachine(
      "upstream", R"({"StartAt": "Done", "States": {"Done": {"Type": "Pass",
        "Result": {"shipped": true}, "End": true}}})");
  const std::string downstream = states.CreateStateMachine(
      "downstream", R"({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}})");
  ASSERT_TRUE(PutRule(stub_.get(), "default", "on-upstream-success",
                      absl::StrCat(R"({"source": ["aws.states"],
                        "detail-type": ["Step Functions Execution Status Change"],
                        "detail": {"status": ["SUCCEEDED"], "stateMachineArn": [")",
                                   upstream, R"("]}})"))
                  .ok());
  v1::PutTargetsRequest targets;
  targets.set_rule("on-upstream-success");
  v1::Target* target = targets.add_targets();
  target->set_id("downstream");
  target->set_arn(downstream);
  target->set_input_path("$.detail");
  v1::PutTargetsResponse targeted;
  ASSERT_TRUE(stub_->PutTargets(Context().get(), targets, &targeted).ok());
  ASSERT_EQ(targeted.failed_entry_count(), 0);

  const std::string run = states.StartExecution(upstream, R"({"order": 5})", "order-5");
  EXPECT_EQ(states.AwaitClosed(run).status(), "SUCCEEDED");

  v1::ListExecutionsRequest list;
  list.set_state_machine_arn(downstream);
  v1::ListExecutionsResponse listed;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    listed.Clear();
    ASSERT_TRUE(states.Call(&v1::StepFunctions::Stub::ListExecutions, list, &listed).ok());
    if (listed.executions_size() > 0) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  // Only the SUCCEEDED change matched, not RUNNING.
  ASSERT_EQ(listed.executions_size(), 1) << cluster_->Logs();
  v1::DescribeExecutionResponse started = states.Describe(listed.executions(0).execution_arn());
  auto detail = json::Parse(started.input());
  ASSERT_TRUE(detail.ok()) << started.input();
  EXPECT_EQ(std::string((*detail)["executionArn"].GetString()), run);
  EXPECT_EQ(std::string((*detail)["status"].GetString()), "SUCCEEDED");
  EXPECT_EQ(std::string((*detail)["output"].GetString()), R"({"shipped":true})");
  EXPECT_EQ(std::string((*detail)["input"].GetString()), R"({"order": 5})");
}

// Archives, replays and cron schedules together (one test, so the minute a
// cron rule waits for passes while the replay runs): events put on a bus
// are archived; a replay of a time window re-sends the window's events to
// the one rule it names, which starts new executions for them and for no
// other event; the replayed events are not archived again. A cron rule
// due at the next whole minute starts its target once with AWS's Scheduled
// Event, although two eventbus replicas fire it.
TEST_F(EventBusE2eTest, ReplayedWindowAndCronRuleStartExecutions) {
  // A second replica in the fixture eventbus's consumer group, started
  // first so that the group has settled before events flow.
  auto replica = testing::ChildProcess::Start(
      "eventbus-3",
      {STEPFLOW_EVENTBUS_BIN, "--kafka-brokers", cluster_->kafka_bootstrap(),
       "--gateway", cluster_->gateway_address(), "--listen", "127.0.0.1:0"},
      absl::StrCat(cluster_->work_dir(), "/eventbus-3.log"));
  ASSERT_TRUE(replica.ok()) << replica.status();
  ASSERT_TRUE(
      (*replica)->WaitForOutput("listening on", absl::Seconds(30)).ok())
      << (*replica)->LogTail();
  testing::StepFunctionsClient states(cluster_->GatewayChannel());
  const std::string pass =
      R"({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}})";
  const std::string on_event = states.CreateStateMachine("on-replayable", pass);
  const std::string on_cron = states.CreateStateMachine("on-cron", pass);
  auto executions_of = [&](const std::string& machine) {
    v1::ListExecutionsRequest list;
    list.set_state_machine_arn(machine);
    v1::ListExecutionsResponse listed;
    EXPECT_TRUE(
        states.Call(&v1::StepFunctions::Stub::ListExecutions, list, &listed).ok());
    return listed;
  };
  auto await_executions = [&](const std::string& machine, int count,
                              absl::Duration timeout) {
    v1::ListExecutionsResponse listed;
    const absl::Time deadline = absl::Now() + timeout;
    do {
      listed = executions_of(machine);
      if (listed.executions_size() >= count) break;
      absl::SleepFor(absl::Milliseconds(200));
    } while (absl::Now() < deadline);
    return listed;
  };

  // The cron rule: due at the first whole minute at least 5 s away.
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilMinute due =
      absl::ToCivilMinute(absl::Now() + absl::Seconds(5), utc) + 1;
  const std::string cron = absl::StrCat("cron(", due.minute(), " ", due.hour(), " ",
                                        due.day(), " ", due.month(), " ? ",
                                        due.year(), ")");
  v1::PutRuleRequest cron_rule;
  cron_rule.set_name("at-the-minute");
  cron_rule.set_schedule_expression(cron);
  v1::PutRuleResponse cron_rule_arn;
  grpc::Status status = stub_->PutRule(Context().get(), cron_rule, &cron_rule_arn);
  ASSERT_TRUE(status.ok()) << cron << ": " << status.error_message();
  const std::string cron_arn = cron_rule_arn.rule_arn();
  v1::PutTargetsRequest cron_targets;
  cron_targets.set_rule("at-the-minute");
  cron_targets.add_targets()->set_id("cron-target");
  cron_targets.mutable_targets(0)->set_arn(on_cron);
  v1::PutTargetsResponse targeted;
  ASSERT_TRUE(stub_->PutTargets(Context().get(), cron_targets, &targeted).ok());
  ASSERT_EQ(targeted.failed_entry_count(), 0);
  cron_rule.set_name("never-valid");
  cron_rule.set_schedule_expression("cron(0 12 * * * *)");
  status = stub_->PutRule(Context().get(), cron_rule, &cron_rule_arn);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "ValidationException: Parameter ScheduleExpression is not valid.");

  // A bus with an archive, a rule starting on-replayable and a rule that
  // the replay leaves out.
  ASSERT_TRUE(CreateBus(stub_.get(), "replayable").ok());
  // The new bus's topic makes the group rebalance. Archiving is at least
  // once: an event read before that rebalance and again after it would be
  // archived twice, so the events whose archive is counted wait until the
  // group has handed out the new topic's partitions.
  ASSERT_TRUE((*replica)
                  ->WaitForOutput("stepflow.events.replayable/", absl::Seconds(30))
                  .ok())
      << (*replica)->LogTail();
  v1::DescribeEventBusRequest describe_bus;
  describe_bus.set_name("replayable");
  v1::DescribeEventBusResponse bus;
  ASSERT_TRUE(stub_->DescribeEventBus(Context().get(), describe_bus, &bus).ok());
  v1::CreateArchiveRequest archive;
  archive.set_archive_name("replayable-all");
  archive.set_event_source_arn(bus.arn());
  v1::CreateArchiveResponse archived;
  status = stub_->CreateArchive(Context().get(), archive, &archived);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::string machine_of_other =
      states.CreateStateMachine("on-replayable-other", pass);
  v1::PutRuleResponse rule_arn;
  for (const auto& [rule, machine] :
       {std::pair<std::string, std::string>{"replayed-rule", on_event},
        std::pair<std::string, std::string>{"other-rule", machine_of_other}}) {
    v1::PutRuleRequest put_rule;
    put_rule.set_name(rule);
    put_rule.set_event_bus_name("replayable");
    put_rule.set_event_pattern(R"({"source": ["shop"]})");
    v1::PutRuleResponse put;
    ASSERT_TRUE(stub_->PutRule(Context().get(), put_rule, &put).ok());
    if (rule == "replayed-rule") rule_arn = put;
    v1::PutTargetsRequest targets;
    targets.set_rule(rule);
    targets.set_event_bus_name("replayable");
    v1::Target* target = targets.add_targets();
    target->set_id("t");
    target->set_arn(machine);
    target->set_input_path("$.detail");
    ASSERT_TRUE(stub_->PutTargets(Context().get(), targets, &targeted).ok());
    ASSERT_EQ(targeted.failed_entry_count(), 0);
  }

  // Six events: n = 0..2 half an hour ago, 3..4 ten minutes ago (the
  // replay's window is [15, 5) minutes ago), 5 two minutes ago.
  const absl::Time now = absl::Now();
  const absl::Duration ages[] = {absl::Minutes(30), absl::Minutes(30),
                                 absl::Minutes(30), absl::Minutes(10),
                                 absl::Minutes(10), absl::Minutes(2)};
  v1::PutEventsRequest events;
  for (int n = 0; n < 6; ++n) {
    v1::PutEventsRequestEntry* entry = events.add_entries();
    entry->set_source("shop");
    entry->set_detail_type("OrderPlaced");
    entry->set_event_bus_name("replayable");
    entry->set_detail(absl::StrCat(R"({"n":)", n, "}"));
    entry->mutable_time()->set_seconds(absl::ToUnixSeconds(now - ages[n]));
  }
  v1::PutEventsResponse put;
  ASSERT_TRUE(stub_->PutEvents(Context().get(), events, &put).ok());
  ASSERT_EQ(put.failed_entry_count(), 0);
  ASSERT_EQ(await_executions(on_event, 6, absl::Seconds(30)).executions_size(), 6)
      << cluster_->Logs();
  ASSERT_EQ(await_executions(machine_of_other, 6, absl::Seconds(30)).executions_size(), 6);

  v1::DescribeArchiveRequest describe_archive;
  describe_archive.set_archive_name("replayable-all");
  v1::DescribeArchiveResponse archive_described;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(15);
       absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(200))) {
    ASSERT_TRUE(stub_->DescribeArchive(Context().get(), describe_archive,
                                       &archive_described)
                    .ok());
    if (archive_described.event_count() >= 6) break;
  }
  EXPECT_EQ(archive_described.event_count(), 6);
  EXPECT_GT(archive_described.size_bytes(), 6 * 100);

  v1::StartReplayRequest replay;
  replay.set_replay_name("last-quarter-hour");
  replay.set_event_source_arn(archived.archive_arn());
  replay.mutable_event_start_time()->set_seconds(
      absl::ToUnixSeconds(now - absl::Minutes(15)));
  replay.mutable_event_end_time()->set_seconds(
      absl::ToUnixSeconds(now - absl::Minutes(5)));
  replay.mutable_destination()->set_arn(bus.arn());
  replay.mutable_destination()->add_filter_arns(rule_arn.rule_arn());
  v1::StartReplayResponse started;
  status = stub_->StartReplay(Context().get(), replay, &started);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(started.state(), "STARTING");

  v1::DescribeReplayRequest describe_replay;
  describe_replay.set_replay_name("last-quarter-hour");
  v1::DescribeReplayResponse replay_described;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(200))) {
    ASSERT_TRUE(stub_->DescribeReplay(Context().get(), describe_replay,
                                      &replay_described)
                    .ok());
    if (replay_described.state() == "COMPLETED") break;
  }
  ASSERT_EQ(replay_described.state(), "COMPLETED") << cluster_->Logs();
  EXPECT_EQ(replay_described.event_last_replayed_time().seconds(),
            absl::ToUnixSeconds(now - absl::Minutes(10)));
  EXPECT_TRUE(replay_described.has_replay_end_time());

  // Two new executions, for n = 3 and 4, and nothing for the rule the
  // replay left out.
  v1::ListExecutionsResponse listed = await_executions(on_event, 8, absl::Seconds(30));
  ASSERT_EQ(listed.executions_size(), 8) << cluster_->Logs();
  absl::SleepFor(absl::Seconds(2));
  listed = executions_of(on_event);
  EXPECT_EQ(listed.executions_size(), 8);
  std::multiset<std::string> inputs;
  for (const v1::ExecutionListItem& execution : listed.executions())
    inputs.insert(states.Describe(execution.execution_arn()).input());
  EXPECT_EQ(inputs.count(R"({"n":3})"), 2u);
  EXPECT_EQ(inputs.count(R"({"n":4})"), 2u);
  for (const char* once : {R"({"n":0})", R"({"n":1})", R"({"n":2})", R"({"n":5})"})
    EXPECT_EQ(inputs.count(once), 1u) << once;
  EXPECT_EQ(executions_of(machine_of_other).executions_size(), 6);
  // Replayed events are not archived again.
  ASSERT_TRUE(
      stub_->DescribeArchive(Context().get(), describe_archive, &archive_described).ok());
  EXPECT_EQ(archive_described.event_count(), 6);

  // The cron rule fired on both replicas, at its minute, and started its
  // target once, with a Scheduled Event.
  listed = await_executions(on_cron, 1, absl::Seconds(70));
  ASSERT_EQ(listed.executions_size(), 1) << cron << "\n" << cluster_->Logs();
  absl::StatusOr<std::string> fired =
      (*replica)->WaitForOutput("scheduled rule fired", absl::Seconds(10));
  ASSERT_TRUE(fired.ok()) << (*replica)->LogTail();
  EXPECT_THAT(*fired, HasSubstr(cron_arn));
  bool fixture_fired = false;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(10);
       !fixture_fired && absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(100))) {
    std::ifstream log(absl::StrCat(cluster_->work_dir(), "/eventbus.log"));
    for (std::string line; std::getline(log, line);) {
      if (absl::StrContains(line, "scheduled rule fired") &&
          absl::StrContains(line, cron_arn))
        fixture_fired = true;
    }
  }
  EXPECT_TRUE(fixture_fired) << "the fixture's eventbus did not fire " << cron;
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(executions_of(on_cron).executions_size(), 1);
  absl::StatusOr<json::Document> scheduled =
      json::Parse(states.Describe(listed.executions(0).execution_arn()).input());
  ASSERT_TRUE(scheduled.ok());
  EXPECT_EQ(std::string((*scheduled)["source"].GetString()), "aws.events");
  EXPECT_EQ(std::string((*scheduled)["detail-type"].GetString()), "Scheduled Event");
  ASSERT_EQ((*scheduled)["resources"].Size(), 1u);
  EXPECT_EQ(std::string((*scheduled)["resources"][0].GetString()), cron_arn);
  EXPECT_TRUE((*scheduled)["detail"].IsObject());
  EXPECT_EQ((*scheduled)["detail"].MemberCount(), 0u);
  EXPECT_EQ(std::string((*scheduled)["time"].GetString()),
            absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromCivil(due, utc), utc));
}

}  // namespace
}  // namespace stepflow
