// The EventBridge API of an in-process gateway over an in-process mock
// Kafka cluster: buses, PutEvents (read back from the bus topic), rules and
// targets. No shard server is needed for any of these calls.
#include "services/eventbus/envelope.h"
#include "services/gateway/event_bridge.h"

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/json/json.h"
#include "common/kafka/mock_cluster.h"
#include "common/kafka/topic_reader.h"
#include "common/rpc/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/gateway/gateway.h"

namespace stepflow::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr char kStateMachineArn[] =
    "arn:aws:states:us-east-1:123456789012:stateMachine:orders";

TEST(PutEventsEntrySizeTest, CountsAsAws) {
  v1::PutEventsRequestEntry entry;
  entry.set_source("abc");
  entry.set_detail_type("de");
  entry.set_detail("{}");
  EXPECT_EQ(PutEventsEntrySize(entry), 7u);
  entry.add_resources("r1");
  entry.mutable_time()->set_seconds(1);
  EXPECT_EQ(PutEventsEntrySize(entry), 7u + 2 + 14);
}

TEST(EventEnvelopeTest, WritesAwsEnvelope) {
  v1::PutEventsRequestEntry entry;
  entry.set_source("shop");
  entry.set_detail_type("OrderPlaced");
  entry.set_detail(R"({"total": 12.5})");
  entry.add_resources("arn:aws:x");
  const std::string envelope = eventbus::EventEnvelope(config::ArnScope(), "id-1", entry,
                                             absl::FromUnixSeconds(1700000000));
  EXPECT_EQ(
      envelope,
      R"({"version":"0","id":"id-1","detail-type":"OrderPlaced","source":"shop",)"
      R"("account":"123456789012","time":"2023-11-14T22:13:20Z","region":"us-east-1",)"
      R"("resources":["arn:aws:x"],"detail":{"total":12.5}})");
}

class EventBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = kafka::MockKafkaCluster::Start();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    GatewayOptions options;
    options.shard_map = config::ShardMap(16, {"127.0.0.1:1"});  // unused here
    options.listen_address = "127.0.0.1:0";
    options.kafka_brokers = cluster_->bootstrap_servers();
    options.kafka_topic_creation = kafka::TopicCreation::kEmbedded;
    options.embedded_kafka = cluster_.get();
    options.event_bus_partitions = 2;
    auto gateway = Gateway::Start(std::move(options));
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = std::move(*gateway);
    stub_ = v1::EventBridge::NewStub(rpc::MakeChannel(gateway_->address()));
  }

  void TearDown() override {
    if (gateway_) gateway_->Shutdown();
    gateway_.reset();
  }

  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (v1::EventBridge::Stub::*method)(
                        grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(20));
    return (stub_.get()->*method)(&context, request, response);
  }

  grpc::Status CreateBus(const std::string& name) {
    v1::CreateEventBusRequest request;
    request.set_name(name);
    v1::CreateEventBusResponse response;
    return Call(&v1::EventBridge::Stub::CreateEventBus, request, &response);
  }

  grpc::Status PutRule(const std::string& name, const std::string& bus,
                       const std::string& pattern) {
    v1::PutRuleRequest request;
    request.set_name(name);
    request.set_event_bus_name(bus);
    request.set_event_pattern(pattern);
    v1::PutRuleResponse response;
    return Call(&v1::EventBridge::Stub::PutRule, request, &response);
  }

  // Every event on `topic`, as JSON text, waiting until `expected` are there.
  std::vector<std::string> ReadTopic(const std::string& topic,
                                     size_t expected) {
    absl::Mutex mu;
    std::vector<std::string> values;
    auto reader =
        kafka::TopicReader::Start(cluster_->bootstrap_servers(), topic,
                                  [&](const kafka::TopicRecord& record) {
                                    absl::MutexLock lock(&mu);
                                    values.push_back(record.value.value_or(""));
                                  });
    EXPECT_TRUE(reader.ok());
    EXPECT_TRUE((*reader)->WaitCaughtUp(absl::Seconds(10)).ok());
    reader->reset();
    EXPECT_THAT(values, SizeIs(expected));
    return values;
  }

  std::unique_ptr<kafka::MockKafkaCluster> cluster_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<v1::EventBridge::Stub> stub_;
};

TEST_F(EventBridgeTest, BusLifecycle) {
  v1::CreateEventBusRequest create;
  create.set_name("orders");
  create.set_description("shop orders");
  v1::CreateEventBusResponse created;
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::CreateEventBus, create, &created).ok());
  EXPECT_EQ(created.event_bus_arn(),
            "arn:aws:events:us-east-1:123456789012:event-bus/orders");

  grpc::Status again = CreateBus("orders");
  EXPECT_EQ(again.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(again.error_message(),
            "ResourceAlreadyExistsException: Event bus orders already exists.");
  EXPECT_EQ(CreateBus("default").error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  grpc::Status bad = CreateBus("bad name");
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), StartsWith("ValidationException: "));
  EXPECT_EQ(CreateBus("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CreateBus(std::string(257, 'a')).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::DescribeEventBusRequest describe;
  describe.set_name("arn:aws:events:us-east-1:123456789012:event-bus/orders");
  v1::DescribeEventBusResponse described;
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::DescribeEventBus, describe, &described)
          .ok());
  EXPECT_EQ(described.name(), "orders");
  EXPECT_EQ(described.description(), "shop orders");
  EXPECT_TRUE(described.has_creation_time());
  describe.set_name("");
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::DescribeEventBus, describe, &described)
          .ok());
  EXPECT_EQ(described.name(), "default");

  // The bus has its topic, with the configured partition count.
  auto topics =
      kafka::ListTopics(cluster_->bootstrap_servers(), absl::Seconds(5));
  ASSERT_TRUE(topics.ok());
  EXPECT_THAT(*topics, testing::Contains("stepflow.events.orders"));

  ASSERT_TRUE(CreateBus("orders-2").ok());
  ASSERT_TRUE(CreateBus("zeta").ok());
  // Pages of two: default, orders | orders-2, zeta.
  v1::ListEventBusesRequest list;
  list.set_limit(2);
  v1::ListEventBusesResponse page;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::ListEventBuses, list, &page).ok());
  ASSERT_THAT(page.event_buses(), SizeIs(2));
  EXPECT_EQ(page.event_buses(0).name(), "default");
  EXPECT_EQ(page.event_buses(1).name(), "orders");
  ASSERT_FALSE(page.next_token().empty());
  list.set_next_token(page.next_token());
  v1::ListEventBusesResponse page2;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::ListEventBuses, list, &page2).ok());
  ASSERT_THAT(page2.event_buses(), SizeIs(2));
  EXPECT_EQ(page2.event_buses(1).name(), "zeta");
  EXPECT_TRUE(page2.next_token().empty());
  v1::ListEventBusesRequest prefixed;
  prefixed.set_name_prefix("orders");
  v1::ListEventBusesResponse orders;
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::ListEventBuses, prefixed, &orders).ok());
  EXPECT_THAT(orders.event_buses(), SizeIs(2));
  v1::ListEventBusesRequest too_many;
  too_many.set_limit(101);
  EXPECT_EQ(Call(&v1::EventBridge::Stub::ListEventBuses, too_many, &orders)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::DeleteEventBusRequest remove;
  v1::DeleteEventBusResponse removed;
  remove.set_name("default");
  grpc::Status keep =
      Call(&v1::EventBridge::Stub::DeleteEventBus, remove, &removed);
  EXPECT_EQ(keep.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  remove.set_name("orders");
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::DeleteEventBus, remove, &removed).ok());
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::DeleteEventBus, remove, &removed).ok());
  describe.set_name("orders");
  grpc::Status gone =
      Call(&v1::EventBridge::Stub::DescribeEventBus, describe, &described);
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(gone.error_message(),
            "ResourceNotFoundException: Event bus orders does not exist.");
}

TEST_F(EventBridgeTest, PutEventsStoresValidEntriesOnly) {
  ASSERT_TRUE(CreateBus("orders").ok());
  v1::PutEventsRequest request;
  auto add = [&request](const std::string& source, const std::string& type,
                        const std::string& detail, const std::string& bus) {
    v1::PutEventsRequestEntry* entry = request.add_entries();
    entry->set_source(source);
    entry->set_detail_type(type);
    entry->set_detail(detail);
    entry->set_event_bus_name(bus);
    return entry;
  };
  add("shop", "OrderPlaced", R"({"n": 1})", "orders")
      ->add_resources("arn:aws:r");
  add("", "OrderPlaced", R"({"n": 2})", "orders");
  add("shop", "OrderPlaced", R"([1, 2])", "orders");
  add("shop", "OrderPlaced", R"({"n": 4})", "nope");
  add("shop", "OrderPlaced", R"({"n": 5})",
      "arn:aws:events:us-east-1:123456789012:event-bus/orders")
      ->mutable_time()
      ->set_seconds(1700000000);
  add("shop", "", R"({"n": 6})", "orders");
  add("shop", "OrderPlaced", "", "orders");
  add("shop", "OrderPlaced", R"({"n": 8})", "");
  add("shop", "OrderPlaced", R"({"n": 9})",
      "arn:aws:events:eu-west-1:123456789012:event-bus/orders");
  add("shop", "OrderPlaced", R"({"n": 10})", "bad name");
  v1::PutEventsResponse response;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::PutEvents, request, &response).ok());
  ASSERT_THAT(response.entries(), SizeIs(10));
  EXPECT_EQ(response.failed_entry_count(), 6);
  EXPECT_EQ(response.entries(8).error_code(), "ResourceNotFoundException");
  EXPECT_EQ(response.entries(9).error_code(), "InvalidArgument");
  EXPECT_FALSE(response.entries(0).event_id().empty());
  EXPECT_EQ(response.entries(1).error_code(), "InvalidArgument");
  EXPECT_EQ(
      response.entries(1).error_message(),
      "Parameter Source is not valid. Reason: Source is a required argument.");
  EXPECT_EQ(response.entries(2).error_code(), "MalformedDetail");
  // A bus of this account that does not exist: accepted and dropped, as on
  // AWS (test_put_events_nonexistent_event_bus).
  EXPECT_TRUE(response.entries(3).error_code().empty());
  EXPECT_FALSE(response.entries(3).event_id().empty());
  EXPECT_FALSE(response.entries(4).event_id().empty());
  EXPECT_EQ(response.entries(5).error_code(), "InvalidArgument");
  EXPECT_EQ(response.entries(6).error_code(), "InvalidArgument");
  EXPECT_FALSE(response.entries(7).event_id().empty());
  for (int i : {0, 4, 7}) EXPECT_TRUE(response.entries(i).error_code().empty());

  std::vector<std::string> stored = ReadTopic("stepflow.events.orders", 2);
  std::map<std::string, std::string> by_id;
  for (const std::string& text : stored) {
    auto event = json::Parse(text);
    ASSERT_TRUE(event.ok()) << text;
    by_id[(*event)["id"].GetString()] = text;
    EXPECT_STREQ((*event)["version"].GetString(), "0");
    EXPECT_STREQ((*event)["source"].GetString(), "shop");
    EXPECT_STREQ((*event)["detail-type"].GetString(), "OrderPlaced");
    EXPECT_STREQ((*event)["region"].GetString(), "us-east-1");
    EXPECT_STREQ((*event)["account"].GetString(), "123456789012");
  }
  ASSERT_TRUE(by_id.count(response.entries(0).event_id()));
  EXPECT_THAT(by_id[response.entries(0).event_id()],
              HasSubstr(R"("resources":["arn:aws:r"])"));
  EXPECT_THAT(by_id[response.entries(0).event_id()],
              HasSubstr(R"("detail":{"n":1})"));
  ASSERT_TRUE(by_id.count(response.entries(4).event_id()));
  EXPECT_THAT(by_id[response.entries(4).event_id()],
              HasSubstr(R"("time":"2023-11-14T22:13:20Z")"));
  ReadTopic("stepflow.events.default", 1);
}

TEST_F(EventBridgeTest, PutEventsRequestLimits) {
  v1::PutEventsRequest empty;
  v1::PutEventsResponse response;
  EXPECT_EQ(
      Call(&v1::EventBridge::Stub::PutEvents, empty, &response).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  v1::PutEventsRequest eleven;
  for (int i = 0; i < 11; ++i) {
    auto* entry = eleven.add_entries();
    entry->set_source("s");
    entry->set_detail_type("t");
    entry->set_detail("{}");
  }
  grpc::Status status =
      Call(&v1::EventBridge::Stub::PutEvents, eleven, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("less than or equal to 10"));
  v1::PutEventsRequest big;
  for (int i = 0; i < 2; ++i) {
    auto* entry = big.add_entries();
    entry->set_source("s");
    entry->set_detail_type("t");
    entry->set_detail(
        absl::StrCat(R"({"x":")", std::string(130 * 1024, 'a'), R"("})"));
  }
  status = Call(&v1::EventBridge::Stub::PutEvents, big, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "ValidationException: Total size of the entries in the request is "
            "over the limit.");
}

TEST_F(EventBridgeTest, PutEventsReportsBrokerFailureAsInternalFailure) {
  // The catalog is read once first, so only the event write meets the outage.
  v1::PutEventsRequest request;
  auto* entry = request.add_entries();
  entry->set_source("s");
  entry->set_detail_type("t");
  entry->set_detail("{}");
  v1::PutEventsResponse response;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::PutEvents, request, &response).ok());
  ASSERT_EQ(response.failed_entry_count(), 0);
  ASSERT_TRUE(cluster_->SetBrokerDown(-1).ok());
  v1::PutEventsResponse failed;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(3));
  ASSERT_TRUE(stub_->PutEvents(&context, request, &failed).ok());
  ASSERT_THAT(failed.entries(), SizeIs(1));
  EXPECT_EQ(failed.failed_entry_count(), 1);
  EXPECT_EQ(failed.entries(0).error_code(), "InternalFailure");
  EXPECT_TRUE(failed.entries(0).event_id().empty());
  ASSERT_TRUE(cluster_->SetBrokerUp(-1).ok());
}

TEST_F(EventBridgeTest, RulesAndTargets) {
  ASSERT_TRUE(CreateBus("orders").ok());
  grpc::Status invalid = PutRule("r", "orders", R"({"source": "shop"})");
  EXPECT_EQ(invalid.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(invalid.error_message(),
            "InvalidEventPatternException: Event pattern is not valid. Reason: "
            "\"source\" must be "
            "an object or an array");
  EXPECT_EQ(PutRule("r", "nope", R"({"source": ["shop"]})").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(
      PutRule("bad name", "orders", R"({"source": ["shop"]})").error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PutRule("r", "orders", "").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  for (const char* name : {"rule-a", "rule-b", "rule-c", "other"}) {
    ASSERT_TRUE(PutRule(name, "orders", R"({"source": ["shop"]})").ok())
        << name;
  }

  v1::PutRuleRequest scheduled;
  scheduled.set_name("nightly");
  scheduled.set_schedule_expression("cron(0 3 * * ? *)");
  v1::PutRuleResponse scheduled_arn;
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::PutRule, scheduled, &scheduled_arn).ok());
  EXPECT_EQ(scheduled_arn.rule_arn(),
            "arn:aws:events:us-east-1:123456789012:rule/nightly");
  for (const char* bad :
       {"rate(1 minutes)", "rate(5 seconds)", "cron(0 3 * *)", "every day",
        "cron(0 3 * * * *)", "cron(0 3 ? * ? *)", "cron(60 3 * * ? *)",
        "cron(0 3 ? * 3#6 *)", "cron(0 3 * * ? 2200)", "cron(0 3 L,2 * ? *)"}) {
    v1::PutRuleRequest wrong = scheduled;
    wrong.set_schedule_expression(bad);
    grpc::Status refused =
        Call(&v1::EventBridge::Stub::PutRule, wrong, &scheduled_arn);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_EQ(
        refused.error_message(),
        "ValidationException: Parameter ScheduleExpression is not valid.");
  }
  scheduled.set_event_bus_name("orders");
  EXPECT_EQ(Call(&v1::EventBridge::Stub::PutRule, scheduled, &scheduled_arn)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::ListRulesRequest list;
  list.set_event_bus_name("orders");
  list.set_name_prefix("rule-");
  list.set_limit(2);
  v1::ListRulesResponse page;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::ListRules, list, &page).ok());
  ASSERT_THAT(page.rules(), SizeIs(2));
  EXPECT_EQ(page.rules(0).name(), "rule-a");
  EXPECT_EQ(page.rules(0).arn(),
            "arn:aws:events:us-east-1:123456789012:rule/orders/rule-a");
  EXPECT_EQ(page.rules(0).state(), "ENABLED");
  list.set_next_token(page.next_token());
  v1::ListRulesResponse page2;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::ListRules, list, &page2).ok());
  ASSERT_THAT(page2.rules(), SizeIs(1));
  EXPECT_EQ(page2.rules(0).name(), "rule-c");
  EXPECT_TRUE(page2.next_token().empty());

  v1::DisableRuleRequest disable;
  disable.set_name("rule-a");
  disable.set_event_bus_name("orders");
  v1::DisableRuleResponse disabled;
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::DisableRule, disable, &disabled).ok());
  v1::DescribeRuleRequest describe;
  describe.set_name("rule-a");
  describe.set_event_bus_name("orders");
  v1::DescribeRuleResponse described;
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::DescribeRule, describe, &described).ok());
  EXPECT_EQ(described.state(), "DISABLED");
  EXPECT_EQ(described.event_pattern(), R"({"source": ["shop"]})");
  EXPECT_EQ(described.created_by(), "123456789012");
  v1::EnableRuleRequest enable;
  enable.set_name("rule-a");
  enable.set_event_bus_name("orders");
  v1::EnableRuleResponse enabled;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::EnableRule, enable, &enabled).ok());
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::DescribeRule, describe, &described).ok());
  EXPECT_EQ(described.state(), "ENABLED");
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::DisableRule, disable, &disabled).ok());
  enable.set_name("missing");
  EXPECT_EQ(
      Call(&v1::EventBridge::Stub::EnableRule, enable, &enabled).error_code(),
      grpc::StatusCode::NOT_FOUND);
  describe.set_name("missing");
  grpc::Status missing =
      Call(&v1::EventBridge::Stub::DescribeRule, describe, &described);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.error_message(),
            "ResourceNotFoundException: Rule missing does not exist on "
            "EventBus orders.");

  v1::PutTargetsRequest targets;
  targets.set_rule("rule-a");
  targets.set_event_bus_name("orders");
  auto* target = targets.add_targets();
  target->set_id("t1");
  target->set_arn(kStateMachineArn);
  target->set_input_path("$.detail");
  target->mutable_retry_policy()->set_maximum_retry_attempts(0);
  target->mutable_retry_policy()->set_maximum_event_age_in_seconds(3600);
  target->mutable_dead_letter_config()->set_arn(
      "arn:aws:sqs:us-east-1:123456789012:orders-dlq");
  auto* wrong = targets.add_targets();
  wrong->set_id("t2");
  wrong->set_arn("arn:aws:sqs:us-east-1:123456789012:queue");
  auto* too_many_retries = targets.add_targets();
  too_many_retries->set_id("t3");
  too_many_retries->set_arn(kStateMachineArn);
  too_many_retries->mutable_retry_policy()->set_maximum_retry_attempts(186);
  auto* too_young = targets.add_targets();
  too_young->set_id("t4");
  too_young->set_arn(kStateMachineArn);
  too_young->mutable_retry_policy()->set_maximum_event_age_in_seconds(59);
  v1::PutTargetsResponse put;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::PutTargets, targets, &put).ok());
  EXPECT_EQ(put.failed_entry_count(), 3);
  ASSERT_THAT(put.failed_entries(), SizeIs(3));
  EXPECT_EQ(put.failed_entries(0).target_id(), "t2");
  EXPECT_EQ(put.failed_entries(0).error_code(), "ValidationException");
  EXPECT_EQ(put.failed_entries(1).target_id(), "t3");
  EXPECT_EQ(put.failed_entries(1).error_code(), "ValidationException");
  EXPECT_THAT(put.failed_entries(1).error_message(),
              HasSubstr("maximumRetryAttempts' failed to satisfy constraint: "
                        "Member must have value less than or equal to 185"));
  EXPECT_EQ(put.failed_entries(2).target_id(), "t4");
  EXPECT_THAT(put.failed_entries(2).error_message(),
              HasSubstr("maximumEventAgeInSeconds' failed to satisfy "
                        "constraint: Member must have value greater than or "
                        "equal to 60"));
  // The accepted target's dead-letter topic exists before it is stored.
  auto dead_letter_topics =
      kafka::ListTopics(cluster_->bootstrap_servers(), absl::Seconds(5));
  ASSERT_TRUE(dead_letter_topics.ok());
  EXPECT_THAT(*dead_letter_topics,
              testing::Contains("stepflow.dead-letter.orders-dlq"));

  // A rule has at most 5 targets (t1 is stored): more fail the whole call.
  v1::PutTargetsRequest more;
  more.set_rule("rule-a");
  more.set_event_bus_name("orders");
  auto* bad_path = more.add_targets();
  bad_path->set_id("t5");
  bad_path->set_arn(kStateMachineArn);
  (*bad_path->mutable_input_transformer()->mutable_input_paths_map())["x"] =
      "detail.x";
  bad_path->mutable_input_transformer()->set_input_template("<x>");
  auto* reserved = more.add_targets();
  reserved->set_id("t6");
  reserved->set_arn(kStateMachineArn);
  (*reserved->mutable_input_transformer()
        ->mutable_input_paths_map())["aws.events.rule-name"] = "$.detail";
  reserved->mutable_input_transformer()->set_input_template("<aws.events.rule-name>");
  auto* no_template = more.add_targets();
  no_template->set_id("t7");
  no_template->set_arn(kStateMachineArn);
  (*no_template->mutable_input_transformer()->mutable_input_paths_map())["x"] =
      "$.detail";
  auto* sns_dead_letters = more.add_targets();
  sns_dead_letters->set_id("t8");
  sns_dead_letters->set_arn(kStateMachineArn);
  sns_dead_letters->mutable_dead_letter_config()->set_arn(
      "arn:aws:sns:us-east-1:123456789012:topic");
  v1::PutTargetsRequest too_many = more;
  too_many.add_targets()->CopyFrom(*no_template);
  too_many.mutable_targets(4)->set_id("t9");
  grpc::Status refusal = Call(&v1::EventBridge::Stub::PutTargets, too_many, &put);
  EXPECT_EQ(refusal.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(refusal.error_message(),
            "LimitExceededException: The requested resource exceeds the maximum number allowed.");
  put.Clear();
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::PutTargets, more, &put).ok());
  EXPECT_EQ(put.failed_entry_count(), 4);
  ASSERT_THAT(put.failed_entries(), SizeIs(4));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(put.failed_entries(i).target_id(), absl::StrCat("t", i + 5));
    EXPECT_EQ(put.failed_entries(i).error_code(), "ValidationException");
  }
  EXPECT_THAT(put.failed_entries(0).error_message(),
              HasSubstr("not a JSONPath starting with $"));
  EXPECT_THAT(put.failed_entries(1).error_message(), HasSubstr("reserved"));
  EXPECT_THAT(put.failed_entries(2).error_message(), HasSubstr("inputTemplate"));
  EXPECT_THAT(put.failed_entries(3).error_message(),
              HasSubstr("Parameter DeadLetterConfig.Arn is not valid"));

  // What AWS refuses for the whole call, in its words.
  v1::PutTargetsRequest bad_id;
  bad_id.set_rule("rule-a");
  bad_id.set_event_bus_name("orders");
  bad_id.add_targets()->set_id("!@#$@!#$");
  bad_id.mutable_targets(0)->set_arn(kStateMachineArn);
  refusal = Call(&v1::EventBridge::Stub::PutTargets, bad_id, &put);
  EXPECT_EQ(refusal.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(refusal.error_message(),
            "ValidationException: 1 validation error detected: Value '!@#$@!#$' at "
            "'targets.1.member.id' failed to satisfy constraint: Member must satisfy regular "
            "expression pattern: [\\.\\-_A-Za-z0-9]+");
  v1::PutTargetsRequest two_inputs = bad_id;
  two_inputs.mutable_targets(0)->set_id("t1");
  two_inputs.mutable_targets(0)->set_input("{}");
  two_inputs.mutable_targets(0)->set_input_path("$.detail");
  refusal = Call(&v1::EventBridge::Stub::PutTargets, two_inputs, &put);
  EXPECT_EQ(refusal.error_message(),
            "ValidationException: Only one of Input, InputPath, or InputTransformer must be "
            "provided for target t1.");
  v1::PutTargetsRequest unknown_placeholder = bad_id;
  unknown_placeholder.mutable_targets(0)->set_id("t1");
  unknown_placeholder.mutable_targets(0)->mutable_input_transformer()->set_input_template(
      R"({"command": <notdefinedkey>})");
  refusal = Call(&v1::EventBridge::Stub::PutTargets, unknown_placeholder, &put);
  EXPECT_EQ(refusal.error_message(),
            "ValidationException: InputTemplate for target t1 contains invalid placeholder "
            "notdefinedkey.");

  v1::ListTargetsByRuleRequest list_targets;
  list_targets.set_rule("rule-a");
  list_targets.set_event_bus_name("orders");
  v1::ListTargetsByRuleResponse listed;
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::ListTargetsByRule, list_targets, &listed)
          .ok());
  ASSERT_THAT(listed.targets(), SizeIs(1));
  EXPECT_EQ(listed.targets(0).input_path(), "$.detail");
  ASSERT_TRUE(listed.targets(0).retry_policy().has_maximum_retry_attempts());
  EXPECT_EQ(listed.targets(0).retry_policy().maximum_retry_attempts(), 0);
  EXPECT_EQ(listed.targets(0).retry_policy().maximum_event_age_in_seconds(),
            3600);
  EXPECT_EQ(listed.targets(0).dead_letter_config().arn(),
            "arn:aws:sqs:us-east-1:123456789012:orders-dlq");

  v1::ListRuleNamesByTargetRequest by_target;
  by_target.set_target_arn(kStateMachineArn);
  by_target.set_event_bus_name("orders");
  v1::ListRuleNamesByTargetResponse rule_names;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::ListRuleNamesByTarget, by_target,
                   &rule_names)
                  .ok());
  EXPECT_THAT(rule_names.rule_names(), ElementsAre("rule-a"));

  v1::DeleteRuleRequest remove;
  remove.set_name("rule-a");
  remove.set_event_bus_name("orders");
  v1::DeleteRuleResponse removed;
  grpc::Status refused =
      Call(&v1::EventBridge::Stub::DeleteRule, remove, &removed);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(refused.error_message(),
            "ValidationException: Rule can't be deleted since it has targets.");
  v1::RemoveTargetsRequest untarget;
  untarget.set_rule("rule-a");
  untarget.set_event_bus_name("orders");
  untarget.add_ids("t1");
  v1::RemoveTargetsResponse untargeted;
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::RemoveTargets, untarget, &untargeted).ok());
  EXPECT_EQ(untargeted.failed_entry_count(), 0);
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::DeleteRule, remove, &removed).ok());
  describe.set_name("rule-a");
  EXPECT_EQ(Call(&v1::EventBridge::Stub::DescribeRule, describe, &described)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST(EventBridgeWithoutKafkaTest, AnswersUnavailable) {
  GatewayOptions options;
  options.shard_map = config::ShardMap(16, {"127.0.0.1:1"});
  options.listen_address = "127.0.0.1:0";
  auto gateway = Gateway::Start(std::move(options));
  ASSERT_TRUE(gateway.ok());
  auto stub = v1::EventBridge::NewStub(rpc::MakeChannel((*gateway)->address()));
  grpc::ClientContext context;
  v1::ListEventBusesRequest request;
  v1::ListEventBusesResponse response;
  EXPECT_EQ(stub->ListEventBuses(&context, request, &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  (*gateway)->Shutdown();
}

// Archives: AWS's fields, errors, filters and pages; the definition is in
// the catalog and the archive's topic exists.
TEST_F(EventBridgeTest, ArchiveBookkeeping) {
  ASSERT_TRUE(CreateBus("orders").ok());
  const std::string orders_arn =
      "arn:aws:events:us-east-1:123456789012:event-bus/orders";
  const std::string default_arn =
      "arn:aws:events:us-east-1:123456789012:event-bus/default";
  v1::CreateArchiveRequest create;
  create.set_archive_name("orders-all");
  create.set_event_source_arn(orders_arn);
  create.set_description("every order");
  create.set_retention_days(7);
  v1::CreateArchiveResponse created;
  grpc::Status status =
      Call(&v1::EventBridge::Stub::CreateArchive, create, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(created.archive_arn(),
            "arn:aws:events:us-east-1:123456789012:archive/orders-all");
  EXPECT_EQ(created.state(), "ENABLED");
  EXPECT_TRUE(created.has_creation_time());

  status = Call(&v1::EventBridge::Stub::CreateArchive, create, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(status.error_message(),
            "ResourceAlreadyExistsException: Archive orders-all already exists.");

  v1::CreateArchiveRequest bad = create;
  bad.set_archive_name("x");
  bad.set_event_pattern(R"({"detail": {"n": [{"numeric": [">"]}]}})");
  status = Call(&v1::EventBridge::Stub::CreateArchive, bad, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidEventPatternException: "));
  bad.set_event_pattern("");
  bad.set_event_source_arn(
      "arn:aws:events:us-east-1:123456789012:event-bus/nowhere");
  status = Call(&v1::EventBridge::Stub::CreateArchive, bad, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), StartsWith("ResourceNotFoundException: "));
  bad.set_event_source_arn(orders_arn);
  bad.set_archive_name(std::string(49, 'a'));
  EXPECT_EQ(Call(&v1::EventBridge::Stub::CreateArchive, bad, &created).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad.set_archive_name("x");
  bad.set_retention_days(-1);
  EXPECT_EQ(Call(&v1::EventBridge::Stub::CreateArchive, bad, &created).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  for (const char* name : {"default-a", "default-b", "default-c"}) {
    v1::CreateArchiveRequest more;
    more.set_archive_name(name);
    more.set_event_source_arn(default_arn);
    more.set_event_pattern(R"({"source": ["shop"]})");
    ASSERT_TRUE(Call(&v1::EventBridge::Stub::CreateArchive, more, &created).ok())
        << name;
  }

  v1::DescribeArchiveRequest describe;
  describe.set_archive_name("orders-all");
  v1::DescribeArchiveResponse described;
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::DescribeArchive, describe, &described).ok());
  EXPECT_EQ(described.archive_name(), "orders-all");
  EXPECT_EQ(described.event_source_arn(), orders_arn);
  EXPECT_EQ(described.description(), "every order");
  EXPECT_EQ(described.retention_days(), 7);
  EXPECT_EQ(described.event_count(), 0);
  EXPECT_EQ(described.size_bytes(), 0);
  describe.set_archive_name("missing");
  status = Call(&v1::EventBridge::Stub::DescribeArchive, describe, &described);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(),
            "ResourceNotFoundException: Archive missing does not exist.");

  v1::UpdateArchiveRequest update;
  update.set_archive_name("orders-all");
  update.set_retention_days(0);
  update.set_event_pattern(R"({"source": ["shop"]})");
  v1::UpdateArchiveResponse updated;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::UpdateArchive, update, &updated).ok());
  EXPECT_EQ(updated.archive_arn(),
            "arn:aws:events:us-east-1:123456789012:archive/orders-all");
  describe.set_archive_name("orders-all");
  ASSERT_TRUE(
      Call(&v1::EventBridge::Stub::DescribeArchive, describe, &described).ok());
  EXPECT_EQ(described.retention_days(), 0);
  EXPECT_EQ(described.description(), "every order");  // unchanged
  EXPECT_EQ(described.event_pattern(), R"({"source": ["shop"]})");
  update.set_archive_name("missing");
  EXPECT_EQ(Call(&v1::EventBridge::Stub::UpdateArchive, update, &updated).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Filters and pages.
  auto names = [&](v1::ListArchivesRequest request) {
    std::vector<std::string> out;
    request.set_limit(2);
    for (int page = 0; page < 10; ++page) {
      v1::ListArchivesResponse listed;
      grpc::Status listed_status =
          Call(&v1::EventBridge::Stub::ListArchives, request, &listed);
      EXPECT_TRUE(listed_status.ok()) << listed_status.error_message();
      EXPECT_LE(listed.archives_size(), 2);
      for (const v1::Archive& archive : listed.archives())
        out.push_back(archive.archive_name());
      if (listed.next_token().empty()) break;
      request.set_next_token(listed.next_token());
    }
    return out;
  };
  EXPECT_THAT(names({}), ElementsAre("default-a", "default-b", "default-c",
                                     "orders-all"));
  v1::ListArchivesRequest by_prefix;
  by_prefix.set_name_prefix("default-");
  EXPECT_THAT(names(by_prefix), ElementsAre("default-a", "default-b", "default-c"));
  v1::ListArchivesRequest by_source;
  by_source.set_event_source_arn(orders_arn);
  EXPECT_THAT(names(by_source), ElementsAre("orders-all"));
  v1::ListArchivesRequest by_state;
  by_state.set_state("DISABLED");
  EXPECT_THAT(names(by_state), ElementsAre());
  by_state.set_state("SLEEPING");
  v1::ListArchivesResponse listed;
  EXPECT_EQ(Call(&v1::EventBridge::Stub::ListArchives, by_state, &listed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::DeleteArchiveRequest remove;
  remove.set_archive_name("default-b");
  v1::DeleteArchiveResponse removed;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::DeleteArchive, remove, &removed).ok());
  EXPECT_EQ(Call(&v1::EventBridge::Stub::DeleteArchive, remove, &removed).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(names({}), ElementsAre("default-a", "default-c", "orders-all"));
}

// Replays: checks, states and cancelling, with no eventbus running them
// (so they stay STARTING until cancelled).
TEST_F(EventBridgeTest, ReplayBookkeeping) {
  ASSERT_TRUE(CreateBus("orders").ok());
  ASSERT_TRUE(PutRule("placed", "orders", R"({"source": ["shop"]})").ok());
  const std::string orders_arn =
      "arn:aws:events:us-east-1:123456789012:event-bus/orders";
  v1::CreateArchiveRequest archive;
  archive.set_archive_name("orders-all");
  archive.set_event_source_arn(orders_arn);
  v1::CreateArchiveResponse archived;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::CreateArchive, archive, &archived).ok());

  const int64_t now = absl::ToUnixSeconds(absl::Now());
  v1::StartReplayRequest start;
  start.set_replay_name("again");
  start.set_event_source_arn(archived.archive_arn());
  start.mutable_event_start_time()->set_seconds(now - 3600);
  start.mutable_event_end_time()->set_seconds(now - 60);
  start.mutable_destination()->set_arn(orders_arn);
  start.mutable_destination()->add_filter_arns(
      "arn:aws:events:us-east-1:123456789012:rule/orders/placed");

  auto refused = [&](const std::function<void(v1::StartReplayRequest*)>& change) {
    v1::StartReplayRequest request = start;
    change(&request);
    v1::StartReplayResponse response;
    return Call(&v1::EventBridge::Stub::StartReplay, request, &response);
  };
  grpc::Status status = refused([&](v1::StartReplayRequest* r) {
    r->mutable_event_end_time()->set_seconds(now - 7200);
  });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "ValidationException: Parameter EventEndTime is not valid. Reason: "
            "EventStartTime must be before EventEndTime.");
  status = refused([&](v1::StartReplayRequest* r) { r->clear_event_start_time(); });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  status = refused([&](v1::StartReplayRequest* r) {
    r->mutable_destination()->set_arn(
        "arn:aws:events:us-east-1:123456789012:event-bus/default");
  });
  EXPECT_THAT(status.error_message(), HasSubstr("Cross event bus replay is not permitted"));
  status = refused([&](v1::StartReplayRequest* r) {
    r->set_event_source_arn("arn:aws:events:us-east-1:123456789012:archive/none");
  });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "ValidationException: Parameter EventSourceArn is not valid. Reason: Archive none "
            "does not exist.");
  status = refused([&](v1::StartReplayRequest* r) {
    r->mutable_destination()->set_arn("arn:aws:events:us-east-1:123456789012:event-bus/gone");
  });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "ResourceNotFoundException: Event bus gone does not exist.");
  status = refused([&](v1::StartReplayRequest* r) {
    r->mutable_destination()->set_filter_arns(
        0, "arn:aws:events:us-east-1:123456789012:rule/orders/none");
  });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::StartReplayResponse started;
  status = Call(&v1::EventBridge::Stub::StartReplay, start, &started);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(started.replay_arn(),
            "arn:aws:events:us-east-1:123456789012:replay/again");
  EXPECT_EQ(started.state(), "STARTING");
  EXPECT_TRUE(started.has_replay_start_time());
  status = Call(&v1::EventBridge::Stub::StartReplay, start, &started);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(status.error_message(),
            "ResourceAlreadyExistsException: Replay again already exists.");

  v1::DescribeReplayRequest describe;
  describe.set_replay_name("again");
  v1::DescribeReplayResponse described;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::DescribeReplay, describe, &described).ok());
  EXPECT_EQ(described.replay_arn(), started.replay_arn());
  EXPECT_EQ(described.state(), "STARTING");
  EXPECT_EQ(described.event_source_arn(), archived.archive_arn());
  EXPECT_EQ(described.destination().arn(), orders_arn);
  EXPECT_THAT(described.destination().filter_arns(), SizeIs(1));
  EXPECT_EQ(described.event_start_time().seconds(), now - 3600);
  EXPECT_EQ(described.event_end_time().seconds(), now - 60);

  v1::ListReplaysRequest list;
  list.set_state("STARTING");
  v1::ListReplaysResponse listed;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::ListReplays, list, &listed).ok());
  ASSERT_THAT(listed.replays(), SizeIs(1));
  EXPECT_EQ(listed.replays(0).replay_name(), "again");

  v1::CancelReplayRequest cancel;
  cancel.set_replay_name("again");
  v1::CancelReplayResponse cancelled;
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::CancelReplay, cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.replay_arn(), started.replay_arn());
  EXPECT_EQ(cancelled.state(), "CANCELLING");
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::DescribeReplay, describe, &described).ok());
  EXPECT_EQ(described.state(), "CANCELLING");
  status = Call(&v1::EventBridge::Stub::CancelReplay, cancel, &cancelled);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), StartsWith("IllegalStatusException: "));
  list.set_state("STARTING");
  listed.Clear();
  ASSERT_TRUE(Call(&v1::EventBridge::Stub::ListReplays, list, &listed).ok());
  EXPECT_THAT(listed.replays(), SizeIs(0));

  cancel.set_replay_name("missing");
  EXPECT_EQ(Call(&v1::EventBridge::Stub::CancelReplay, cancel, &cancelled).error_code(),
            grpc::StatusCode::NOT_FOUND);
  describe.set_replay_name("missing");
  EXPECT_EQ(Call(&v1::EventBridge::Stub::DescribeReplay, describe, &described).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // At most kMaxActiveReplays replays that are not over ("again" is still
  // CANCELLING: nothing ran it).
  for (int i = 1; i < kMaxActiveReplays; ++i) {
    v1::StartReplayRequest more = start;
    more.set_replay_name(absl::StrCat("more-", i));
    ASSERT_TRUE(Call(&v1::EventBridge::Stub::StartReplay, more, &started).ok()) << i;
  }
  // An end in the future is valid (AWS takes it); this one meets the limit.
  start.set_replay_name("one-too-many");
  start.mutable_event_end_time()->set_seconds(now + 60);
  status = Call(&v1::EventBridge::Stub::StartReplay, start, &started);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(),
            "LimitExceededException: The requested resource exceeds the maximum number allowed.");
}

}  // namespace
}  // namespace stepflow::gateway
