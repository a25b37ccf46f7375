// Dispatcher: target input and execution names as pure functions, and
// delivery from a bus topic to a fake StartExecution over a mock cluster:
// events, rate() and cron() schedules, archives and (with the Replayer)
// replays.
#include "services/eventbus/dispatcher.h"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/kafka/client.h"
#include "common/kafka/mock_cluster.h"
#include "common/kafka/topic_admin.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/eventbus/archive.h"
#include "services/eventbus/catalog.h"
#include "services/eventbus/dead_letter.h"
#include "services/eventbus/replayer.h"
#include "services/eventbus/schedule.h"

namespace stepflow::eventbus {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

constexpr char kEvent[] =
    R"({"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"OrderPlaced",)"
    R"("source":"shop","account":"123456789012","time":"2023-11-14T22:13:20Z",)"
    R"("region":"us-east-1","resources":[],"detail":{"order":"o-1","total":12.5}})";
constexpr char kMachine[] =
    "arn:aws:states:us-east-1:123456789012:stateMachine:orders";

v1::Rule Rule() {
  v1::Rule rule;
  rule.set_name("big");
  rule.set_arn("arn:aws:events:us-east-1:123456789012:rule/orders/big");
  return rule;
}

std::string InputFor(const v1::Target& target) {
  auto event = json::Parse(kEvent);
  EXPECT_TRUE(event.ok());
  auto input = TargetInput(target, Rule(), *event, kEvent);
  EXPECT_TRUE(input.ok()) << input.status();
  return input.ok() ? *input : "";
}

TEST(TargetInputTest, WholeEventByDefault) {
  v1::Target target;
  EXPECT_EQ(InputFor(target), kEvent);
}

TEST(TargetInputTest, ConstantInput) {
  v1::Target target;
  target.set_input(R"({"fixed":true})");
  EXPECT_EQ(InputFor(target), R"({"fixed":true})");
}

TEST(TargetInputTest, InputPath) {
  v1::Target target;
  target.set_input_path("$.detail");
  EXPECT_EQ(InputFor(target), R"({"order":"o-1","total":12.5})");
  target.set_input_path("$.detail.missing");
  EXPECT_EQ(InputFor(target), "null");
}

TEST(TargetInputTest, InputTransformer) {
  v1::Target target;
  auto* transformer = target.mutable_input_transformer();
  (*transformer->mutable_input_paths_map())["order"] = "$.detail.order";
  (*transformer->mutable_input_paths_map())["total"] = "$.detail.total";
  transformer->set_input_template(
      R"({"id": "<order>", "amount": <total>, "raw": <order>, "rule": "<aws.events.rule-name>"})");
  EXPECT_EQ(InputFor(target),
            R"({"id": "o-1", "amount": 12.5, "raw": "o-1", "rule": "big"})");
  transformer->set_input_template("Order <order> costs <total>");
  EXPECT_EQ(InputFor(target), R"("Order o-1 costs 12.5")");
}

// AWS's predefined placeholders: the whole event, the rule's ARN and name,
// the event's ingestion time; an unknown placeholder is left as it is.
TEST(TargetInputTest, InputTransformerPredefinedPlaceholders) {
  v1::Target target;
  auto* transformer = target.mutable_input_transformer();
  (*transformer->mutable_input_paths_map())["total"] = "$.detail.total";
  transformer->set_input_template(
      R"({"event": <aws.events.event.json>, "arn": "<aws.events.rule-arn>", )"
      R"("name": <aws.events.rule-name>, )"
      R"("at": "<aws.events.event.ingestion-time>", "total": <total>})");
  auto input = json::Parse(InputFor(target));
  ASSERT_TRUE(input.ok());
  EXPECT_EQ(json::Serialize((*input)["event"]), kEvent);
  EXPECT_STREQ((*input)["arn"].GetString(), Rule().arn().c_str());
  EXPECT_STREQ((*input)["name"].GetString(), "big");
  EXPECT_STREQ((*input)["at"].GetString(), "2023-11-14T22:13:20Z");
  EXPECT_EQ((*input)["total"].GetDouble(), 12.5);

  // aws.events.event: the event without its detail.
  transformer->set_input_template(
      R"({"whole": <aws.events.event>, "kept": "<not.a.variable>"})");
  input = json::Parse(InputFor(target));
  ASSERT_TRUE(input.ok());
  // AWS names "detail-type" "detailType" there.
  json::Document without_detail = *json::Parse(kEvent);
  without_detail.RemoveMember("detail");
  EXPECT_FALSE((*input)["whole"].HasMember("detail-type"));
  EXPECT_STREQ((*input)["whole"]["detailType"].GetString(), "OrderPlaced");
  EXPECT_EQ((*input)["whole"].MemberCount(), without_detail.MemberCount());
  EXPECT_STREQ((*input)["kept"].GetString(), "<not.a.variable>");
}

// AWS's example: a JSON template with placeholders in and out of strings,
// also between other characters of a string and in escaped quotes.
TEST(TargetInputTest, InputTransformerPlaceholdersInsideStrings) {
  v1::Target target;
  auto* transformer = target.mutable_input_transformer();
  (*transformer->mutable_input_paths_map())["instance"] = "$.detail.order";
  (*transformer->mutable_input_paths_map())["status"] = "$.detail.total";
  (*transformer->mutable_input_paths_map())["event"] = "$.detail";
  transformer->set_input_template(
      R"({"myInstance": <instance>,"myStatus": "<instance> is in state \"<status>\""})");
  EXPECT_EQ(InputFor(target), R"({"myInstance": "o-1","myStatus": "o-1 is in state \"12.5\""})");
  // A text template: strings go in as their characters.
  transformer->set_input_template(R"(<instance> is in state "<status>")");
  EXPECT_EQ(InputFor(target), R"("o-1 is in state \"12.5\"")");
}

// As AWS records them: a path that finds nothing gives nothing inside a
// string, an object or array goes into text without its quotes, and one
// inside a string of a JSON template makes EventBridge deliver nothing.
TEST(TargetInputTest, InputTransformerMissingValuesAndObjectsInText) {
  v1::Target target;
  auto* transformer = target.mutable_input_transformer();
  (*transformer->mutable_input_paths_map())["missing"] = "$.detail.nothing";
  (*transformer->mutable_input_paths_map())["event"] = "$.detail";
  (*transformer->mutable_input_paths_map())["items"] = "$.resources";
  transformer->set_input_template(R"({"command": "<missing>", "raw": <missing>})");
  EXPECT_EQ(InputFor(target), R"({"command": "", "raw": null})");
  transformer->set_input_template("info extracted from detail <missing>");
  EXPECT_EQ(InputFor(target), R"("info extracted from detail ")");
  transformer->set_input_template("Payload of <event> and <items>");
  EXPECT_EQ(InputFor(target), R"("Payload of {order:o-1,total:12.5} and []")");
  transformer->set_input_template(R"({"payload": "<event>"})");
  json::Document event = *json::Parse(kEvent);
  EXPECT_FALSE(TargetInput(target, Rule(), event, kEvent).ok());
}

TEST(TargetExecutionNameTest, DeterministicAndDistinct) {
  const std::string name = TargetExecutionName(
      "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "arn:r", "t1");
  EXPECT_EQ(name, TargetExecutionName("6a7e8feb-b491-4cf7-a9f1-bf3703467718",
                                      "arn:r", "t1"));
  EXPECT_NE(name, TargetExecutionName("6a7e8feb-b491-4cf7-a9f1-bf3703467718",
                                      "arn:r", "t2"));
  EXPECT_NE(name, TargetExecutionName("6a7e8feb-b491-4cf7-a9f1-bf3703467718",
                                      "arn:r2", "t1"));
  EXPECT_NE(name, TargetExecutionName("7a7e8feb-b491-4cf7-a9f1-bf3703467718",
                                      "arn:r", "t1"));
  EXPECT_LE(name.size(), 80u);
  const std::string odd =
      TargetExecutionName(std::string(200, '/'), "arn:r", "t1");
  EXPECT_LE(odd.size(), 80u);
  EXPECT_EQ(odd.find('/'), std::string::npos);
}

// Records every StartExecution; fails the first `failures` with UNAVAILABLE.
struct FakeStarter {
  absl::Mutex mu;
  int failures = 0;
  // Every call fails with this, when set.
  absl::Status always = absl::OkStatus();
  std::vector<std::vector<std::string>> calls ABSL_GUARDED_BY(mu);
  absl::Status Start(const std::string& arn, const std::string& name,
                     const std::string& input) {
    absl::MutexLock lock(&mu);
    calls.push_back({arn, name, input});
    if (!always.ok()) return always;
    if (failures > 0) {
      --failures;
      return absl::UnavailableError("shard restarting");
    }
    return absl::OkStatus();
  }
  size_t WaitForCalls(size_t count, absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    auto enough = [this, count]() ABSL_SHARED_LOCKS_REQUIRED(mu) {
      return calls.size() >= count;
    };
    mu.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return calls.size();
  }
};

// Records every StartExecution's name and holds the call that starts
// `held_name` until Release; the others succeed at once.
struct GatedStarter {
  absl::Mutex mu;
  std::string held_name;
  bool released ABSL_GUARDED_BY(mu) = false;
  std::vector<std::string> names ABSL_GUARDED_BY(mu);
  absl::Status Start(const std::string& name) {
    absl::MutexLock lock(&mu);
    names.push_back(name);
    if (name == held_name) mu.Await(absl::Condition(&released));
    return absl::OkStatus();
  }
  void Release() {
    absl::MutexLock lock(&mu);
    released = true;
  }
  size_t Calls() {
    absl::MutexLock lock(&mu);
    return names.size();
  }
  size_t WaitForCalls(size_t count, absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    auto enough = [this, count]() ABSL_SHARED_LOCKS_REQUIRED(mu) {
      return names.size() >= count;
    };
    mu.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return names.size();
  }
};

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = kafka::MockKafkaCluster::Start();
    ASSERT_TRUE(cluster.ok());
    cluster_ = std::move(*cluster);
    auto producer = kafka::Producer::Create(cluster_->bootstrap_servers());
    ASSERT_TRUE(producer.ok());
    producer_ = std::move(*producer);
    admin_ = std::make_unique<kafka::TopicAdmin>(
        kafka::TopicAdminOptions{.brokers = "",
                                 .mode = kafka::TopicCreation::kEmbedded,
                                 .embedded = cluster_.get()});
    CatalogOptions options;
    options.brokers = cluster_->bootstrap_servers();
    options.admin = admin_.get();
    options.producer = producer_.get();
    auto catalog = Catalog::Start(options);
    ASSERT_TRUE(catalog.ok());
    catalog_ = std::move(*catalog);
    ASSERT_TRUE(catalog_->WaitReady(absl::Seconds(10)).ok());

    ASSERT_TRUE(admin_
                    ->EnsureTopic({.name = BusTopic("orders"), .partitions = 2},
                                  absl::Seconds(5))
                    .ok());
    v1::EventBus bus;
    bus.set_name("orders");
    ASSERT_TRUE(catalog_->PutBus(bus).ok());
    v1::Rule rule = Rule();
    rule.set_event_bus_name("orders");
    rule.set_state("ENABLED");
    rule.set_event_pattern(
        R"({"detail": {"total": [{"numeric": [">", 10]}]}})");
    ASSERT_TRUE(catalog_->PutRule(rule).ok());
    v1::Target target;
    target.set_id("t1");
    target.set_arn(kMachine);
    target.set_input_path("$.detail");
    ASSERT_TRUE(catalog_->PutTarget("orders", "big", target).ok());
  }

  std::unique_ptr<Dispatcher> StartDispatcher(
      FakeStarter* starter,
      const std::function<void(DispatcherOptions&)>& adjust = nullptr) {
    return StartDispatcherWith(
        [starter](const std::string& arn, const std::string& name,
                  const std::string& input) {
          return starter->Start(arn, name, input);
        },
        adjust);
  }

  std::unique_ptr<Dispatcher> StartDispatcherWith(
      StartExecutionFn start_execution,
      const std::function<void(DispatcherOptions&)>& adjust = nullptr) {
    DispatcherOptions options;
    options.dead_letter = [this](const std::string& topic,
                                 const std::string& key,
                                 const std::string& value) {
      absl::MutexLock lock(&dead_mu_);
      dead_letters_.push_back({key, value});
      dead_letter_topics_.push_back(topic);
      return absl::OkStatus();
    };
    options.brokers = cluster_->bootstrap_servers();
    options.catalog = catalog_.get();
    options.initial_backoff = absl::Milliseconds(10);
    // The mock broker hands a departed member's partitions over only after
    // its session times out.
    options.consumer_config = {{"session.timeout.ms", "6000"},
                               {"heartbeat.interval.ms", "500"}};
    options.start_execution = std::move(start_execution);
    if (adjust) adjust(options);
    auto dispatcher = Dispatcher::Start(std::move(options));
    EXPECT_TRUE(dispatcher.ok()) << dispatcher.status();
    return std::move(*dispatcher);
  }

  static std::string Event(const std::string& id, double total) {
    return absl::StrCat(
        R"({"version":"0","id":")", id,
        R"(","source":"shop","detail-type":"T","detail":{"total":)", total,
        "}}");
  }

  void Put(const std::string& id, double total) {
    ASSERT_TRUE(producer_
                    ->ProduceSync(BusTopic("orders"), id, Event(id, total),
                                  absl::Seconds(5))
                    .ok());
  }

  // Puts an event as a record with key `key`, which picks its partition;
  // where it was stored.
  kafka::RecordPosition PutWithKey(const std::string& key,
                                   const std::string& id, double total) {
    auto position =
        producer_->Produce(BusTopic("orders"), key,
                           absl::string_view(Event(id, total)), absl::Seconds(5));
    EXPECT_TRUE(position.ok()) << position.status();
    return position.ok() ? *position : kafka::RecordPosition{};
  }

  // The dispatchers' committed offsets of the orders bus, by partition
  // (-1: none committed).
  std::map<int32_t, int64_t> Committed() {
    std::map<int32_t, int64_t> committed;
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers",
                      cluster_->bootstrap_servers().c_str(), errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", DispatcherOptions().group_id.c_str(),
                      errstr, sizeof(errstr));
    rd_kafka_t* consumer =
        rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    EXPECT_NE(consumer, nullptr) << errstr;
    if (consumer == nullptr) return committed;
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(list, BusTopic("orders").c_str(), 0);
    rd_kafka_topic_partition_list_add(list, BusTopic("orders").c_str(), 1);
    const rd_kafka_resp_err_t err = rd_kafka_committed(consumer, list, 5000);
    EXPECT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
    for (int i = 0; i < list->cnt; ++i) {
      const int64_t offset = list->elems[i].offset;
      committed[list->elems[i].partition] = offset < 0 ? -1 : offset;
    }
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(consumer);
    return committed;
  }

  // Waits until partition `partition` has `offset` committed; the last
  // committed offset seen.
  int64_t WaitForCommitted(int32_t partition, int64_t offset,
                           absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    int64_t committed = Committed()[partition];
    while (committed < offset && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
      committed = Committed()[partition];
    }
    return committed;
  }

  std::unique_ptr<kafka::MockKafkaCluster> cluster_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::TopicAdmin> admin_;
  std::unique_ptr<Catalog> catalog_;
  absl::Mutex dead_mu_;
  std::vector<std::pair<std::string, std::string>> dead_letters_
      ABSL_GUARDED_BY(dead_mu_);
  // The topic of each of dead_letters_.
  std::vector<std::string> dead_letter_topics_ ABSL_GUARDED_BY(dead_mu_);
};

TEST_F(DispatcherTest, DeliversMatchingEventsOnceAndRetries) {
  FakeStarter starter;
  starter.failures = 2;
  Put("e-1", 50);  // matches
  Put("e-2", 5);   // does not
  Put("e-3", 11);  // matches
  {
    // One delivery at a time: the calls come in the order checked below.
    auto dispatcher = StartDispatcher(
        &starter, [](DispatcherOptions& options) {
          options.delivery_threads = 1;
        });
    // e-1 twice refused, then e-1 and e-3 accepted.
    ASSERT_EQ(starter.WaitForCalls(4, absl::Seconds(30)), 4u);
    absl::SleepFor(absl::Milliseconds(300));  // let the commits go out
    EXPECT_EQ(dispatcher->delivered(), 2);
    EXPECT_EQ(dispatcher->abandoned(), 0);
  }
  {
    absl::MutexLock lock(&starter.mu);
    ASSERT_THAT(starter.calls, SizeIs(4));
    EXPECT_EQ(starter.calls[0][0], kMachine);
    EXPECT_EQ(starter.calls[0][1],
              TargetExecutionName("e-1", Rule().arn(), "t1"));
    EXPECT_EQ(starter.calls[0][2], R"({"total":50})");
    EXPECT_EQ(starter.calls[2],
              starter.calls[0]);  // the retries use the same name
    EXPECT_EQ(starter.calls[3][2], R"({"total":11})");
    starter.calls.clear();
  }

  // Committed events are not delivered again to the group; new ones are,
  // and a disabled rule matches nothing.
  v1::Rule disabled = *catalog_->FindRule("orders", "big");
  Put("e-4", 99);
  auto dispatcher = StartDispatcher(&starter);
  ASSERT_EQ(starter.WaitForCalls(1, absl::Seconds(30)), 1u);
  disabled.set_state("DISABLED");
  ASSERT_TRUE(catalog_->PutRule(disabled).ok());
  Put("e-5", 99);
  absl::SleepFor(absl::Seconds(2));
  absl::MutexLock lock(&starter.mu);
  ASSERT_THAT(starter.calls, SizeIs(1));
  EXPECT_EQ(starter.calls[0][1],
            TargetExecutionName("e-4", Rule().arn(), "t1"));
}

// Events the broker dropped before the group read them (the embedded
// broker keeps 5 MiB per partition) are reported, not skipped silently:
// here the group committed an offset the broker no longer holds.
TEST_F(DispatcherTest, ReportsEventsTheBrokerDroppedBeforeDelivery) {
  FakeStarter starter;
  const kafka::RecordPosition first = PutWithKey("k", "e-first", 50);
  {
    auto dispatcher = StartDispatcher(&starter);
    ASSERT_EQ(starter.WaitForCalls(1, absl::Seconds(30)), 1u);
    ASSERT_GE(WaitForCommitted(first.partition, first.offset + 1, absl::Seconds(10)),
              first.offset + 1);
    EXPECT_EQ(dispatcher->lost(), 0);
  }
  // About 8 MiB of events that match no rule, on the same partition, while
  // no dispatcher reads: the broker drops the oldest.
  const std::string padding(1024, 'x');
  std::vector<kafka::OutgoingRecord> records;
  for (int i = 0; i < 8000; ++i) {
    records.push_back({BusTopic("orders"), "k",
                       absl::StrCat(R"({"version":"0","id":"pad-)", i,
                                    R"(","source":"shop","detail-type":"T","detail":{"total":1,"pad":")",
                                    padding, R"("}})")});
  }
  for (const auto& sent : producer_->ProduceAll(records, absl::Seconds(60))) {
    ASSERT_TRUE(sent.ok()) << sent.status();
  }
  const kafka::RecordPosition last = PutWithKey("k", "e-last", 60);
  ASSERT_EQ(last.partition, first.partition);

  auto dispatcher = StartDispatcher(&starter);
  ASSERT_EQ(starter.WaitForCalls(2, absl::Seconds(30)), 2u);  // e-last still arrives
  EXPECT_GT(dispatcher->lost(), 0);
  EXPECT_LT(dispatcher->lost(), 8000);
}

TEST_F(DispatcherTest, DeliversAPartitionConcurrentlyButCommitsOnlyItsPrefix) {
  GatedStarter starter;
  starter.held_name = TargetExecutionName("slow", Rule().arn(), "t1");
  // One partition: the held event first, then nine more.
  const kafka::RecordPosition held = PutWithKey("k", "slow", 50);
  for (int i = 1; i <= 9; ++i) {
    EXPECT_EQ(PutWithKey("k", absl::StrCat("e-", i), 50).partition,
              held.partition);
  }
  auto dispatcher = StartDispatcherWith(
      [&starter](const std::string&, const std::string& name,
                 const std::string&) { return starter.Start(name); },
      [](DispatcherOptions& options) { options.delivery_threads = 4; });
  // The nine later events are delivered while the first one still is.
  ASSERT_EQ(starter.WaitForCalls(10, absl::Seconds(30)), 10u);
  {
    absl::MutexLock lock(&starter.mu);
    EXPECT_THAT(starter.names, ::testing::Contains(starter.held_name));
  }
  // Yet nothing past the held event is committed, however many commit
  // rounds go by.
  const absl::Time until = absl::Now() + absl::Milliseconds(600);
  while (absl::Now() < until) {
    EXPECT_LE(Committed()[held.partition], held.offset);
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(dispatcher->delivered(), 9);
  starter.Release();
  EXPECT_EQ(WaitForCommitted(held.partition, held.offset + 10,
                             absl::Seconds(10)),
            held.offset + 10);
  EXPECT_EQ(dispatcher->delivered(), 10);
}

TEST_F(DispatcherTest, AFullPartitionWindowHoldsBackReading) {
  GatedStarter starter;
  starter.held_name = TargetExecutionName("slow", Rule().arn(), "t1");
  const kafka::RecordPosition held = PutWithKey("k", "slow", 50);
  for (int i = 1; i <= 9; ++i) PutWithKey("k", absl::StrCat("e-", i), 50);
  auto dispatcher = StartDispatcherWith(
      [&starter](const std::string&, const std::string& name,
                 const std::string&) { return starter.Start(name); },
      [](DispatcherOptions& options) {
        options.delivery_threads = 4;
        options.partition_window = 3;
      });
  // The held event and the two after it, and no more while it is held.
  ASSERT_EQ(starter.WaitForCalls(3, absl::Seconds(30)), 3u);
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(starter.Calls(), 3u);
  EXPECT_LE(Committed()[held.partition], held.offset);
  starter.Release();
  EXPECT_EQ(starter.WaitForCalls(10, absl::Seconds(10)), 10u);
  EXPECT_EQ(WaitForCommitted(held.partition, held.offset + 10,
                             absl::Seconds(10)),
            held.offset + 10);
}

TEST_F(DispatcherTest, GivesUpOnPermanentErrorsIntoTheDeadLetters) {
  FakeStarter starter;
  starter.always = absl::NotFoundError(
      "StateMachineDoesNotExist: State Machine Does Not Exist");
  Put("e-9", 77);
  auto dispatcher = StartDispatcher(&starter);
  ASSERT_EQ(starter.WaitForCalls(1, absl::Seconds(30)), 1u);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (dispatcher->abandoned() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(dispatcher->abandoned(), 1);
  EXPECT_EQ(dispatcher->delivered(), 0);
  absl::MutexLock lock(&dead_mu_);
  ASSERT_THAT(dead_letters_, SizeIs(1));
  EXPECT_EQ(dead_letters_[0].first, "e-9");
  auto record = json::Parse(dead_letters_[0].second);
  ASSERT_TRUE(record.ok());
  EXPECT_STREQ((*record)["rule"].GetString(), Rule().arn().c_str());
  EXPECT_STREQ((*record)["target"].GetString(), "t1");
  EXPECT_STREQ((*record)["event"]["id"].GetString(), "e-9");
  EXPECT_EQ((*record)["attempts"].GetInt(), 1);
  EXPECT_THAT(std::string((*record)["error"].GetString()),
              ::testing::HasSubstr("NOT_FOUND"));
  // No DeadLetterConfig: the shared topic.
  EXPECT_EQ(dead_letter_topics_[0], kSharedDeadLetterTopic);
}

// A target with a DeadLetterConfig has its dead letters written to its
// queue's topic; another target of the same rule without one keeps the
// shared topic.
TEST_F(DispatcherTest, DeadLettersGoToTheTargetsQueueTopic) {
  v1::Target with_queue = catalog_->ListTargets("orders", "big").at(0);
  with_queue.mutable_dead_letter_config()->set_arn(
      "arn:aws:sqs:us-east-1:123456789012:orders-dlq");
  ASSERT_TRUE(catalog_->PutTarget("orders", "big", with_queue).ok());
  v1::Target without = with_queue;
  without.set_id("t2");
  without.clear_dead_letter_config();
  ASSERT_TRUE(catalog_->PutTarget("orders", "big", without).ok());
  FakeStarter starter;
  starter.always = absl::NotFoundError(
      "StateMachineDoesNotExist: State Machine Does Not Exist");
  Put("e-queued", 77);
  auto dispatcher = StartDispatcher(&starter);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (dispatcher->abandoned() < 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(dispatcher->abandoned(), 2);
  absl::MutexLock lock(&dead_mu_);
  ASSERT_THAT(dead_letters_, SizeIs(2));
  std::map<std::string, std::string> topic_of;  // target -> topic
  for (size_t i = 0; i < dead_letters_.size(); ++i) {
    auto record = json::Parse(dead_letters_[i].second);
    ASSERT_TRUE(record.ok());
    EXPECT_STREQ((*record)["event"]["id"].GetString(), "e-queued");
    topic_of[(*record)["target"].GetString()] = dead_letter_topics_[i];
  }
  EXPECT_EQ(topic_of["t1"], "stepflow.dead-letter.orders-dlq");
  EXPECT_EQ(topic_of["t2"], kSharedDeadLetterTopic);
}

TEST(DeadLetterTopicTest, MapsSqsQueueArnsToTopics) {
  EXPECT_EQ(*DeadLetterTopicForArn("arn:aws:sqs:eu-west-1:123456789012:q_1-a"),
            "stepflow.dead-letter.q_1-a");
  EXPECT_EQ(
      *DeadLetterTopicForArn("arn:aws:sqs:eu-west-1:123456789012:jobs.fifo"),
      "stepflow.dead-letter.jobs.fifo");
  for (const char* bad :
       {"", "queue", "arn:aws:sns:eu-west-1:123456789012:q",
        "arn:aws:sqs:eu-west-1:1234:q", "arn:aws:sqs::123456789012:q",
        "arn:aws:sqs:eu-west-1:123456789012:", "arn:aws:sqs:eu-west-1:123456789012:a.b",
        "arn:aws:sqs:eu-west-1:123456789012:q:extra",
        "arn:aws:sqs:eu-west-1:123456789012:.fifo"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(DeadLetterTopicForArn(bad).status()))
        << bad;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      DeadLetterTopicForArn(absl::StrCat("arn:aws:sqs:eu-west-1:123456789012:",
                                         std::string(81, 'q')))
          .status()));
}

// A dead letter that cannot be written is tried again, and the event's
// offset is not committed until it is stored: a given-up delivery is
// dead-lettered, never dropped.
TEST_F(DispatcherTest, DeadLetterWritesAreRetriedBeforeTheCommit) {
  FakeStarter starter;
  starter.always = absl::NotFoundError(
      "StateMachineDoesNotExist: State Machine Does Not Exist");
  const kafka::RecordPosition at = PutWithKey("k", "e-dead", 77);
  std::atomic<bool> refuse{true};
  std::atomic<int> writes{0};
  auto dispatcher = StartDispatcher(
      &starter, [&refuse, &writes](DispatcherOptions& options) {
        auto store = options.dead_letter;
        options.dead_letter = [&refuse, &writes, store](
                                  const std::string& topic,
                                  const std::string& key,
                                  const std::string& value) {
          writes.fetch_add(1);
          if (refuse.load()) return absl::UnavailableError("broker down");
          return store(topic, key, value);
        };
      });
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       writes.load() < 2 && absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(20))) {
  }
  ASSERT_GE(writes.load(), 2);
  const absl::Time until = absl::Now() + absl::Milliseconds(600);
  while (absl::Now() < until) {
    EXPECT_LE(Committed()[at.partition], at.offset);
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(dispatcher->abandoned(), 0);

  refuse.store(false);
  EXPECT_EQ(WaitForCommitted(at.partition, at.offset + 1, absl::Seconds(10)),
            at.offset + 1);
  EXPECT_EQ(dispatcher->abandoned(), 1);
  EXPECT_EQ(starter.WaitForCalls(2, absl::ZeroDuration()), 1u);
  absl::MutexLock lock(&dead_mu_);
  ASSERT_THAT(dead_letters_, SizeIs(1));
  EXPECT_EQ(dead_letters_[0].first, "e-dead");
}

// The target's RetryPolicy bounds the attempts: MaximumRetryAttempts
// retries after the first attempt, then the dead letter.
TEST_F(DispatcherTest, RetryPolicyMaximumRetryAttempts) {
  v1::Target target = catalog_->ListTargets("orders", "big").at(0);
  target.mutable_retry_policy()->set_maximum_retry_attempts(2);
  ASSERT_TRUE(catalog_->PutTarget("orders", "big", target).ok());
  FakeStarter starter;
  starter.always = absl::UnavailableError("shard restarting");
  Put("e-retried", 77);
  auto dispatcher = StartDispatcher(&starter);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (dispatcher->abandoned() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(dispatcher->abandoned(), 1);
  absl::SleepFor(absl::Milliseconds(200));  // no further attempt comes
  EXPECT_EQ(starter.WaitForCalls(4, absl::ZeroDuration()), 3u);
  absl::MutexLock lock(&dead_mu_);
  ASSERT_THAT(dead_letters_, SizeIs(1));
  auto record = json::Parse(dead_letters_[0].second);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ((*record)["attempts"].GetInt(), 3);
  EXPECT_STREQ((*record)["event"]["id"].GetString(), "e-retried");
  EXPECT_STREQ((*record)["execution"].GetString(),
               TargetExecutionName("e-retried", Rule().arn(), "t1").c_str());
  EXPECT_THAT(std::string((*record)["error"].GetString()),
              ::testing::HasSubstr("shard restarting"));
}

// MaximumEventAgeInSeconds: no retry begins once the event is older, counted
// from when Kafka took it in (here the clock runs two minutes ahead).
TEST_F(DispatcherTest, RetryPolicyMaximumEventAge) {
  v1::Target target = catalog_->ListTargets("orders", "big").at(0);
  target.mutable_retry_policy()->set_maximum_event_age_in_seconds(60);
  ASSERT_TRUE(catalog_->PutTarget("orders", "big", target).ok());
  FakeStarter starter;
  starter.always = absl::UnavailableError("shard restarting");
  Put("e-old", 77);
  auto dispatcher = StartDispatcher(&starter, [](DispatcherOptions& options) {
    options.now = [] { return absl::Now() + absl::Minutes(2); };
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (dispatcher->abandoned() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(dispatcher->abandoned(), 1);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(starter.WaitForCalls(2, absl::ZeroDuration()), 1u);
  absl::MutexLock lock(&dead_mu_);
  ASSERT_THAT(dead_letters_, SizeIs(1));
  auto record = json::Parse(dead_letters_[0].second);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ((*record)["attempts"].GetInt(), 1);
  const std::string error = (*record)["error"].GetString();
  EXPECT_THAT(error, ::testing::HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(error, ::testing::HasSubstr("MaximumEventAgeInSeconds (60)"));
  EXPECT_THAT(error, ::testing::HasSubstr("shard restarting"));
}

TEST_F(DispatcherTest, ScheduledRulesFireOncePerPeriod) {
  v1::Rule every_minute;
  every_minute.set_name("every-minute");
  every_minute.set_arn(
      "arn:aws:events:us-east-1:123456789012:rule/every-minute");
  every_minute.set_event_bus_name("default");
  every_minute.set_state("ENABLED");
  every_minute.set_schedule_expression("rate(1 minute)");
  ASSERT_TRUE(catalog_->PutRule(every_minute).ok());
  v1::Target target;
  target.set_id("tick");
  target.set_arn(kMachine);
  target.set_input_path("$.resources[0]");
  ASSERT_TRUE(catalog_->PutTarget("default", "every-minute", target).ok());

  std::atomic<int64_t> now_seconds{1700000040 +
                                   30};  // half past a whole minute
  FakeStarter starter;
  DispatcherOptions options;
  options.brokers = cluster_->bootstrap_servers();
  options.catalog = catalog_.get();
  options.now = [&now_seconds] {
    return absl::FromUnixSeconds(now_seconds.load());
  };
  options.schedule_interval = absl::Milliseconds(20);
  options.start_execution = [&starter](const std::string& arn,
                                       const std::string& name,
                                       const std::string& input) {
    return starter.Start(arn, name, input);
  };
  auto dispatcher = Dispatcher::Start(std::move(options));
  ASSERT_TRUE(dispatcher.ok());
  absl::SleepFor(absl::Milliseconds(100));
  {
    absl::MutexLock lock(&starter.mu);
    EXPECT_THAT(starter.calls, SizeIs(0));  // no firing yet
  }
  now_seconds += 150;  // passes three whole minutes
  ASSERT_EQ(starter.WaitForCalls(3, absl::Seconds(10)), 3u);
  absl::SleepFor(absl::Milliseconds(200));
  absl::MutexLock lock(&starter.mu);
  ASSERT_THAT(starter.calls, SizeIs(3));
  EXPECT_EQ(starter.calls[0][2],
            R"("arn:aws:events:us-east-1:123456789012:rule/every-minute")");
  EXPECT_NE(starter.calls[0][1], starter.calls[1][1]);
  EXPECT_EQ(
      starter.calls[0][1],
      TargetExecutionName(ScheduledEventId(every_minute.arn(),
                                           absl::FromUnixSeconds(1700000100)),
                          every_minute.arn(), "tick"));
}

TEST_F(DispatcherTest, CronRulesFireAtTheirMinutes) {
  v1::Rule every_five;
  every_five.set_name("every-five");
  every_five.set_arn("arn:aws:events:us-east-1:123456789012:rule/every-five");
  every_five.set_event_bus_name("default");
  every_five.set_state("ENABLED");
  every_five.set_schedule_expression("cron(0/5 * * * ? *)");
  ASSERT_TRUE(catalog_->PutRule(every_five).ok());
  v1::Target target;
  target.set_id("tick");
  target.set_arn(kMachine);
  ASSERT_TRUE(catalog_->PutTarget("default", "every-five", target).ok());

  // 2023-11-14 22:14:30 UTC.
  std::atomic<int64_t> now_seconds{1700000070};
  FakeStarter starter;
  DispatcherOptions options;
  options.brokers = cluster_->bootstrap_servers();
  options.catalog = catalog_.get();
  options.now = [&now_seconds] {
    return absl::FromUnixSeconds(now_seconds.load());
  };
  options.schedule_interval = absl::Milliseconds(20);
  options.start_execution = [&starter](const std::string& arn,
                                       const std::string& name,
                                       const std::string& input) {
    return starter.Start(arn, name, input);
  };
  auto dispatcher = Dispatcher::Start(std::move(options));
  ASSERT_TRUE(dispatcher.ok());
  absl::SleepFor(absl::Milliseconds(100));
  now_seconds += 11 * 60;  // 22:25:30: fires at 22:15, 22:20 and 22:25
  ASSERT_EQ(starter.WaitForCalls(3, absl::Seconds(10)), 3u);
  absl::SleepFor(absl::Milliseconds(200));
  absl::MutexLock lock(&starter.mu);
  ASSERT_THAT(starter.calls, SizeIs(3));
  EXPECT_EQ(starter.calls[0][1],
            TargetExecutionName(ScheduledEventId(every_five.arn(),
                                                 absl::FromUnixSeconds(1700000100)),
                                every_five.arn(), "tick"));
  auto event = json::Parse(starter.calls[2][2]);  // the whole event
  ASSERT_TRUE(event.ok());
  EXPECT_STREQ((*event)["source"].GetString(), "aws.events");
  EXPECT_STREQ((*event)["detail-type"].GetString(), "Scheduled Event");
  EXPECT_STREQ((*event)["time"].GetString(), "2023-11-14T22:25:00Z");
  EXPECT_STREQ((*event)["resources"][0].GetString(), every_five.arn().c_str());
  EXPECT_EQ((*event)["detail"].MemberCount(), 0u);
}

// An archive takes the matching original events and counts them; a replay
// sends the window's archived events back, marked, to the rules it names,
// under execution names of their own, and they are not archived again.
TEST_F(DispatcherTest, ArchivesAndReplays) {
  v1::DescribeArchiveResponse archive;
  archive.set_archive_name("big-orders");
  archive.set_archive_arn("arn:aws:events:us-east-1:123456789012:archive/big-orders");
  archive.set_event_source_arn(EventBusArn(config::ArnScope(), "orders"));
  archive.set_event_pattern(R"({"detail": {"total": [{"numeric": [">", 40]}]}})");
  archive.set_state(kArchiveEnabled);
  *archive.mutable_creation_time() = ToTimestamp(absl::Now() - absl::Seconds(1));
  ASSERT_TRUE(admin_->EnsureTopic({.name = ArchiveTopic(archive)}, absl::Seconds(5)).ok());
  ASSERT_TRUE(catalog_->PutArchive(archive).ok());

  std::map<std::string, std::string> events;
  auto put = [this, &events](const std::string& id, int total, int64_t time) {
    const std::string event = absl::StrCat(
        R"({"version":"0","id":")", id, R"(","source":"shop","detail-type":"T",)",
        R"("time":")",
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(time),
                         absl::UTCTimeZone()),
        R"(","detail":{"total":)", total, "}}");
    EXPECT_TRUE(
        producer_->ProduceSync(BusTopic("orders"), id, event, absl::Seconds(5)).ok());
    events[id] = event;
    return event.size();
  };
  const size_t size_a = put("e-a", 50, 1000);  // archived, in the window
  put("e-b", 20, 1000);                        // delivered, not archived
  const size_t size_c = put("e-c", 60, 5000);  // archived, after the window

  FakeStarter starter;
  DispatcherOptions options;
  options.brokers = cluster_->bootstrap_servers();
  options.catalog = catalog_.get();
  options.replica_id = "replica-1";
  options.stats_interval = absl::Milliseconds(20);
  options.schedule_interval = absl::Milliseconds(20);
  options.archive_event = [this](const std::string& topic, const std::string& key,
                                 const std::string& value) {
    return producer_->ProduceSync(topic, key, value, absl::Seconds(5));
  };
  options.start_execution = [&starter](const std::string& arn,
                                       const std::string& name,
                                       const std::string& input) {
    return starter.Start(arn, name, input);
  };
  auto dispatcher = Dispatcher::Start(std::move(options));
  ASSERT_TRUE(dispatcher.ok()) << dispatcher.status();
  ASSERT_EQ(starter.WaitForCalls(3, absl::Seconds(30)), 3u);  // all three
  int64_t count = 0;
  int64_t bytes = 0;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(10);
       absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(20))) {
    catalog_->SumArchiveStats("big-orders", ArchiveIncarnation(archive), &count,
                              &bytes);
    if (count == 2) break;
  }
  EXPECT_EQ(count, 2);
  EXPECT_EQ(bytes, static_cast<int64_t>(size_a + size_c));
  EXPECT_EQ((*dispatcher)->archived(), 2);

  // A replay to another rule only: nothing for "big"; a cancelled one: nothing.
  // Then one to "big" of [500, 2000): e-a again, under a new name.
  auto replay = [&](const std::string& name, const std::string& filter) {
    v1::DescribeReplayResponse r;
    r.set_replay_name(name);
    r.set_state(kReplayStarting);
    r.set_event_source_arn(archive.archive_arn());
    r.mutable_destination()->set_arn(archive.event_source_arn());
    r.mutable_destination()->add_filter_arns(filter);
    r.mutable_event_start_time()->set_seconds(500);
    r.mutable_event_end_time()->set_seconds(2000);
    EXPECT_TRUE(catalog_->PutReplay(r).ok());
  };
  replay("elsewhere", "arn:aws:events:us-east-1:123456789012:rule/orders/other");
  replay("called-off", Rule().arn());
  ASSERT_TRUE(catalog_->RequestReplayCancel("called-off").ok());
  std::atomic<bool> owner{true};
  ReplayerOptions replayer_options;
  replayer_options.brokers = cluster_->bootstrap_servers();
  replayer_options.catalog = catalog_.get();
  replayer_options.producer = producer_.get();
  replayer_options.owns_replays = [&owner] { return owner.load(); };
  replayer_options.poll_interval = absl::Milliseconds(20);
  auto replayer = Replayer::Start(std::move(replayer_options));
  ASSERT_TRUE(replayer.ok()) << replayer.status();
  auto await_state = [&](const std::string& name, const std::string& state) {
    absl::optional<v1::DescribeReplayResponse> found;
    for (const absl::Time deadline = absl::Now() + absl::Seconds(20);
         absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(20))) {
      found = catalog_->FindReplay(name);
      if (found.has_value() && found->state() == state) break;
    }
    EXPECT_TRUE(found.has_value()) << name;
    if (found.has_value()) {
      EXPECT_EQ(found->state(), state) << name;
    }
    return found.value_or(v1::DescribeReplayResponse());
  };
  const v1::DescribeReplayResponse elsewhere = await_state("elsewhere", kReplayCompleted);
  EXPECT_EQ(elsewhere.event_last_replayed_time().seconds(), 1000);
  EXPECT_TRUE(elsewhere.has_replay_end_time());
  await_state("called-off", kReplayCancelled);
  absl::SleepFor(absl::Seconds(1));
  {
    absl::MutexLock lock(&starter.mu);
    EXPECT_THAT(starter.calls, SizeIs(3));
  }

  // An event archived twice (its delivery was repeated after a restart)
  // is replayed once.
  ASSERT_TRUE(producer_
                  ->ProduceSync(ArchiveTopic(archive), "e-a", events["e-a"], absl::Seconds(5))
                  .ok());

  // Only the owner runs replays; one left RUNNING by a replica that
  // stopped is run again from the start, under the same execution names.
  owner.store(false);
  replay("again", Rule().arn());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(catalog_->FindReplay("again")->state(), kReplayStarting);
  v1::DescribeReplayResponse interrupted = *catalog_->FindReplay("again");
  interrupted.set_state(kReplayRunning);
  ASSERT_TRUE(catalog_->PutReplay(interrupted).ok());
  owner.store(true);
  await_state("again", kReplayCompleted);
  ASSERT_EQ(starter.WaitForCalls(4, absl::Seconds(30)), 4u);
  absl::SleepFor(absl::Milliseconds(500));
  absl::MutexLock lock(&starter.mu);
  ASSERT_THAT(starter.calls, SizeIs(4));
  EXPECT_EQ(starter.calls[3][1],
            TargetExecutionName(ReplayDeliveryKey("e-a", "again"), Rule().arn(), "t1"));
  EXPECT_NE(starter.calls[3][1], starter.calls[0][1]);
  EXPECT_EQ(starter.calls[3][2], R"({"total":50})");
  EXPECT_EQ((*dispatcher)->archived(), 2);  // the replayed event was not archived
}

// UpdateArchive's changes take effect: a new pattern decides which later
// events are archived, and a new retention which archived events a replay
// still sends (counted from each event's time).
TEST_F(DispatcherTest, UpdatedArchivePatternAndRetentionApply) {
  v1::DescribeArchiveResponse archive;
  archive.set_archive_name("changing");
  archive.set_archive_arn(
      "arn:aws:events:us-east-1:123456789012:archive/changing");
  archive.set_event_source_arn(EventBusArn(config::ArnScope(), "orders"));
  archive.set_event_pattern(
      R"({"detail": {"total": [{"numeric": [">", 40]}]}})");
  archive.set_state(kArchiveEnabled);
  *archive.mutable_creation_time() =
      ToTimestamp(absl::Now() - absl::Seconds(1));
  ASSERT_TRUE(
      admin_->EnsureTopic({.name = ArchiveTopic(archive)}, absl::Seconds(5))
          .ok());
  ASSERT_TRUE(catalog_->PutArchive(archive).ok());

  const absl::Time now = absl::Now();
  auto put = [this](const std::string& id, int total, absl::Time time) {
    const std::string event = absl::StrCat(
        R"({"version":"0","id":")", id,
        R"(","source":"shop","detail-type":"T","time":")",
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone()),
        R"(","detail":{"total":)", total, "}}");
    ASSERT_TRUE(producer_
                    ->ProduceSync(BusTopic("orders"), id, event,
                                  absl::Seconds(5))
                    .ok());
  };
  FakeStarter starter;
  auto dispatcher = StartDispatcher(&starter, [this](DispatcherOptions& o) {
    o.replica_id = "replica-1";
    o.stats_interval = absl::Milliseconds(20);
    o.archive_event = [this](const std::string& topic, const std::string& key,
                             const std::string& value) {
      return producer_->ProduceSync(topic, key, value, absl::Seconds(5));
    };
  });
  auto archived_count = [&](int64_t want) {
    int64_t count = 0;
    int64_t bytes = 0;
    for (const absl::Time deadline = absl::Now() + absl::Seconds(10);
         absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(20))) {
      catalog_->SumArchiveStats("changing", ArchiveIncarnation(archive),
                                &count, &bytes);
      if (count >= want) break;
    }
    return count;
  };
  put("old-big", 50, now - absl::Hours(72));  // archived
  put("small", 20, now);                      // not archived: > 40 only
  ASSERT_EQ(starter.WaitForCalls(2, absl::Seconds(30)), 2u);
  EXPECT_EQ(archived_count(1), 1);

  archive.set_event_pattern(
      R"({"detail": {"total": [{"numeric": ["<", 30]}]}})");
  ASSERT_TRUE(catalog_->PutArchive(archive).ok());
  put("new-big", 50, now);    // no longer archived
  put("new-small", 25, now);  // archived now
  ASSERT_EQ(starter.WaitForCalls(4, absl::Seconds(30)), 4u);
  EXPECT_EQ(archived_count(2), 2);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(dispatcher->archived(), 2);

  // Retention cut to two days: a replay of the last four days sends the
  // event of today and not the one of three days ago.
  archive.set_retention_days(2);
  ASSERT_TRUE(catalog_->PutArchive(archive).ok());
  v1::DescribeReplayResponse replay;
  replay.set_replay_name("recent");
  replay.set_state(kReplayStarting);
  replay.set_event_source_arn(archive.archive_arn());
  replay.mutable_destination()->set_arn(archive.event_source_arn());
  *replay.mutable_event_start_time() = ToTimestamp(now - absl::Hours(96));
  *replay.mutable_event_end_time() = ToTimestamp(now + absl::Minutes(1));
  ASSERT_TRUE(catalog_->PutReplay(replay).ok());
  ReplayerOptions replayer_options;
  replayer_options.brokers = cluster_->bootstrap_servers();
  replayer_options.catalog = catalog_.get();
  replayer_options.producer = producer_.get();
  replayer_options.owns_replays = [] { return true; };
  replayer_options.poll_interval = absl::Milliseconds(20);
  auto replayer = Replayer::Start(std::move(replayer_options));
  ASSERT_TRUE(replayer.ok()) << replayer.status();
  ASSERT_EQ(starter.WaitForCalls(5, absl::Seconds(30)), 5u);
  absl::SleepFor(absl::Milliseconds(500));
  absl::MutexLock lock(&starter.mu);
  ASSERT_THAT(starter.calls, SizeIs(5));
  EXPECT_EQ(starter.calls[4][1],
            TargetExecutionName(ReplayDeliveryKey("new-small", "recent"),
                                Rule().arn(), "t1"));
}

}  // namespace
}  // namespace stepflow::eventbus
