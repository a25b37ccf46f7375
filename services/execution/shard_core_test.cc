#include "common/json/json.h"
#include "services/execution/shard_core.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "common/config/sharding.h"
#include "common/storage/failing_wal_env.h"
#include "services/execution/keys.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::execution {
namespace {

using ::testing::ElementsAre;
namespace iv1 = internal::v1;

constexpr char kDefinition[] = R"({"StartAt": "Prepare", "States": {
  "Prepare": {"Type": "Pass", "Result": "ready", "ResultPath": "$.prep", "Next": "Work"},
  "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
           "ResultPath": "$.result", "Next": "Done"},
  "Done": {"Type": "Succeed"}}})";

// Loops outbox deliveries back into the same core, as a single-server
// cluster does. A test that opens a core again sets `core` after Open
// returns, while the new core's outbox may already deliver: until then
// deliveries are refused UNAVAILABLE (and retried), never sent to the core
// that was closed.
class LoopbackPeers : public Peers {
 public:
  void set_core(ShardCore* new_core) {
    absl::MutexLock lock(&core_mu_);
    core_ = new_core;
  }
  void Attach(ShardCore* core) override {
    if (attach_delay > absl::ZeroDuration()) absl::SleepFor(attach_delay);
    set_core(core);
  }
  absl::Status EnqueueActivityTask(const iv1::ActivityTask& task) override {
    if (missing_remote_activities) return absl::NotFoundError("ActivityDoesNotExist: gone");
    return WithCore([&](ShardCore* core) { return core->EnqueueActivityTask(task); });
  }
  absl::Status RecordActivityStarted(const iv1::RecordActivityStartedRequest& r) override {
    return WithCore([&](ShardCore* core) { return core->RecordActivityStarted(r); });
  }
  absl::Status ActivityScheduleFailed(const iv1::ActivityScheduleFailedRequest& r) override {
    return WithCore([&](ShardCore* core) { return core->ActivityScheduleFailed(r); });
  }
  absl::Status CancelActivityTask(const iv1::ActivityTask& task) override {
    if (cancel_hook) cancel_hook(task);
    return WithCore([&](ShardCore* core) { return core->CancelActivityTask(task); });
  }
  absl::Status CheckActivityExists(const std::string& activity_arn) override {
    std::optional<absl::Status> answer;
    absl::Duration delay;
    {
      absl::MutexLock lock(&mu);
      answer = remote_check_answer_;
      delay = remote_check_delay_;
    }
    if (delay > absl::ZeroDuration()) absl::SleepFor(delay);
    // Counted once answered, so that a test waiting for the count finds
    // the answer taken.
    absl::Cleanup counted = [this] { remote_checks.fetch_add(1); };
    if (answer.has_value()) return *answer;
    return WithCore([&](ShardCore* core) { return core->CheckActivityExists(activity_arn); });
  }
  // Tests of activities on another server: what their owner answers (the
  // core's own record when unset), and how long it takes. The core may ask
  // from a thread of its own.
  void set_remote_check_answer(std::optional<absl::Status> answer) {
    absl::MutexLock lock(&mu);
    remote_check_answer_ = std::move(answer);
  }
  void set_remote_check_delay(absl::Duration delay) {
    absl::MutexLock lock(&mu);
    remote_check_delay_ = delay;
  }
  // Waits up to 10 s for the owner to have answered `count` questions.
  bool AwaitRemoteChecks(int count) {
    const absl::Time end = absl::Now() + absl::Seconds(10);
    while (remote_checks.load() < count && absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    return remote_checks.load() == count;
  }
  std::vector<absl::Status> PublishEvents(
      absl::Span<const iv1::PublishEvent* const> events) override {
    {
      absl::MutexLock lock(&mu);
      publish_calls.emplace_back();
      for (const iv1::PublishEvent* event : events) publish_calls.back().push_back(event->key());
    }
    std::vector<absl::Status> outcomes;
    for (const iv1::PublishEvent* event : events) outcomes.push_back(PublishEvent(*event));
    return outcomes;
  }
  absl::Status PublishEvent(const iv1::PublishEvent& event) {
    if (publish_hook) {
      if (absl::Status status = publish_hook(event); !status.ok()) return status;
    }
    {
      absl::ReaderMutexLock lock(&core_mu_);
      if (core_ == nullptr) ++calls_without_core;
    }
    absl::MutexLock lock(&mu);
    published.push_back(event);
    return absl::OkStatus();
  }
  absl::Status StartChildExecution(const std::string&, const std::string&,
                                   iv1::StartExecutionShardRequest start,
                                   v1::StartExecutionResponse* response) override {
    return WithCore([&](ShardCore* core) {
      iv1::ResolveStateMachineRequest lookup;
      lookup.set_arn(start.request().state_machine_arn());
      lookup.set_routing_key(start.request().name());
      auto resolved = core->ResolveStateMachine(lookup);
      if (!resolved.ok()) return resolved.status();
      *start.mutable_state_machine() = resolved->state_machine();
      start.set_version_arn(resolved->version_arn());
      start.set_alias_arn(resolved->alias_arn());
      return core->StartExecution(start, response);
    });
  }
  absl::Status ProduceEvent(const iv1::PublishEvent& event) override {
    if (absl::StrContains(event.topic(), "missing")) return absl::NotFoundError("no such topic");
    return PublishEvent(event);
  }
  absl::Status CompleteServiceTask(const iv1::ServiceTaskResult& result) override {
    return WithCore([&](ShardCore* core) { return core->CompleteServiceTask(result); });
  }
  absl::Status StopExecution(const v1::StopExecutionRequest& request) override {
    v1::StopExecutionResponse response;
    return WithCore([&](ShardCore* core) { return core->StopExecution(request, &response); });
  }
  std::vector<iv1::PublishEvent> Published() {
    absl::MutexLock lock(&mu);
    return published;
  }
  absl::Mutex mu;
  std::vector<iv1::PublishEvent> published;
  // The keys of each PublishEvents call's events.
  std::vector<std::vector<std::string>> publish_calls;
  // Runs before an event is published: a failure refuses it. Set before the
  // core opens.
  std::function<absl::Status(const iv1::PublishEvent&)> publish_hook;
  // Runs before a task's cancellation is delivered. Set before the core
  // opens.
  std::function<void(const iv1::ActivityTask&)> cancel_hook;
  // Tests of activities on another server: their queue partitions refuse
  // tasks as unknown.
  bool missing_remote_activities = false;
  // How many times the activity's owner answered.
  std::atomic<int> remote_checks{0};
  // How long Attach takes; set before the core opens.
  absl::Duration attach_delay;
  // Calls made while no core was attached: those that need one are
  // answered UNAVAILABLE.
  std::atomic<int> calls_without_core{0};

 private:
  std::optional<absl::Status> remote_check_answer_ ABSL_GUARDED_BY(mu);
  absl::Duration remote_check_delay_ ABSL_GUARDED_BY(mu);
  // Runs `call` with the core, holding core_mu_ (shared) so the core is not
  // replaced meanwhile.
  template <typename Call>
  absl::Status WithCore(Call call) {
    absl::ReaderMutexLock lock(&core_mu_);
    if (core_ == nullptr) {
      ++calls_without_core;
      return absl::UnavailableError("no core open yet");
    }
    return call(core_);
  }
  absl::Mutex core_mu_;
  ShardCore* core_ ABSL_GUARDED_BY(core_mu_) = nullptr;
};

class ShardCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("shard_core_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(Open(16).ok());
  }
  void TearDown() override {
    peers_.set_core(nullptr);
    core_.reset();
    std::filesystem::remove_all(dir_);
  }
  absl::Status Open(uint32_t shards) {
    peers_.set_core(nullptr);
    core_.reset();
    ShardCoreOptions options;
    options.data_dir = dir_.string();
    options.shard_count = shards;
    options.replicas = replicas_;
    options.clock = &clock_;
    options.status_events_topic = status_events_topic_;
    options.registry = &registry_;
    options.execution_logs_topic = "stepflow.execution-logs";
    options.max_queued_task_bytes = max_queued_task_bytes_;
    options.recent_express_bytes = recent_express_bytes_;
    options.store_env = store_env_;
    options.on_store_failure = on_store_failure_;
    auto core = ShardCore::Open(options, &peers_);
    if (!core.ok()) return core.status();
    core_ = std::move(*core);
    return absl::OkStatus();
  }

  // Closes the core, hands its store, opened alone, to `fn`, and opens the
  // core again.
  void WithStoreAlone(const std::function<void(storage::Store& store)>& fn) {
    peers_.set_core(nullptr);
    core_.reset();
    {
      storage::StoreOptions options;
      options.path = dir_.string();
      auto store = storage::Store::Open(options);
      ASSERT_TRUE(store.ok()) << store.status();
      fn(**store);
    }
    ASSERT_TRUE(Open(16).ok());
  }

  std::string status_events_topic_;
  // Registered into by every core this test opens (each Open adds to the
  // same series, as a restarted server's would start over).
  prometheus::Registry registry_;
  // stepflow_outbox_deliveries_total{item, outcome}; with `outcome` empty,
  // stepflow_outbox_delay_seconds{item}'s count of observations.
  double OutboxMetric(const std::string& item, const std::string& outcome) {
    double value = 0;
    for (const prometheus::MetricFamily& family : registry_.Collect()) {
      const bool delay = family.name == "stepflow_outbox_delay_seconds";
      if (family.name != (outcome.empty() ? "stepflow_outbox_delay_seconds"
                                          : "stepflow_outbox_deliveries_total")) {
        continue;
      }
      for (const prometheus::ClientMetric& metric : family.metric) {
        std::map<std::string, std::string> labels;
        for (const auto& label : metric.label) labels[label.name] = label.value;
        if (labels["item"] != item || (!delay && labels["outcome"] != outcome)) continue;
        value += delay ? static_cast<double>(metric.histogram.sample_count) : metric.counter.value;
      }
    }
    return value;
  }
  uint64_t max_queued_task_bytes_ = uint64_t{512} << 20;
  size_t recent_express_bytes_ = size_t{8} << 20;
  int replicas_ = 1;  // this core is server 0 of them
  rocksdb::Env* store_env_ = nullptr;  // must outlive core_
  std::function<void(const absl::Status&)> on_store_failure_;

  // The state machine (and the activity "work" its tasks use), logging
  // its executions' events at `logging_level` when one is given.
  iv1::StateMachineRecord CreateMachine(const std::string& name = "orders",
                                        const std::string& definition = kDefinition,
                                        const std::string& type = "STANDARD",
                                        const std::string& logging_level = "") {
    v1::CreateStateMachineRequest create;
    create.set_name(name);
    create.set_definition(definition);
    create.set_type(type);
    if (!logging_level.empty()) {
      create.mutable_logging_configuration()->set_level(logging_level);
    }
    v1::CreateStateMachineResponse created;
    EXPECT_TRUE(core_->CreateStateMachine(create, &created).ok());
    v1::CreateActivityRequest activity;
    activity.set_name("work");
    v1::CreateActivityResponse activity_created;
    EXPECT_TRUE(core_->CreateActivity(activity, &activity_created).ok());
    auto record = core_->GetStateMachineRecord(created.state_machine_arn());
    EXPECT_TRUE(record.ok());
    return *record;
  }

  // What was published, by execution, in the order it was published: the
  // ids of its log records, and its status changes.
  struct PublishedByExecution {
    std::map<std::string, std::vector<int64_t>> log_ids;
    std::map<std::string, std::vector<std::string>> statuses;
  };
  // Once `expected` events have been published (or 20 s passed).
  PublishedByExecution AwaitPublished(size_t expected) {
    const absl::Time end = absl::Now() + absl::Seconds(20);
    while (peers_.Published().size() < expected && absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    PublishedByExecution published;
    for (const iv1::PublishEvent& event : peers_.Published()) {
      auto parsed = json::Parse(event.value());
      EXPECT_TRUE(parsed.ok()) << event.value();
      if (!parsed.ok()) continue;
      if (event.topic() == "stepflow.execution-logs") {
        published.log_ids[event.key()].push_back(std::stoll((*parsed)["id"].GetString()));
      } else {
        published.statuses[event.key()].push_back((*parsed)["detail"]["status"].GetString());
      }
    }
    return published;
  }

  std::string Start(const iv1::StateMachineRecord& machine, const std::string& name,
                    const std::string& input) {
    iv1::StartExecutionShardRequest start;
    *start.mutable_state_machine() = machine;
    start.mutable_request()->set_name(name);
    start.mutable_request()->set_input(input);
    v1::StartExecutionResponse started;
    absl::Status status = core_->StartExecution(start, &started);
    EXPECT_TRUE(status.ok()) << status;
    return started.execution_arn();
  }

  v1::GetActivityTaskResponse Poll(absl::Duration wait = absl::Seconds(5)) {
    v1::GetActivityTaskRequest poll;
    poll.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:work");
    poll.set_worker_name("w1");
    v1::GetActivityTaskResponse task;
    EXPECT_TRUE(core_->GetActivityTask(poll, &task, absl::Now() + wait, nullptr).ok());
    return task;
  }

  // The first page of the execution's history.
  v1::GetExecutionHistoryResponse History(const std::string& arn) {
    v1::GetExecutionHistoryRequest request;
    request.set_execution_arn(arn);
    v1::GetExecutionHistoryResponse response;
    absl::Status status = core_->GetExecutionHistory(request, &response);
    EXPECT_TRUE(status.ok()) << status;
    return response;
  }

  std::vector<std::string> HistoryTypes(const std::string& arn) {
    const v1::GetExecutionHistoryResponse history = History(arn);
    std::vector<std::string> types;
    for (const auto& e : history.events()) types.push_back(e.type());
    return types;
  }

  // Answers a task with SendTaskSuccess.
  absl::Status SendSuccess(const std::string& task_token,
                           const std::string& output = "{}") {
    v1::SendTaskSuccessRequest success;
    success.set_task_token(task_token);
    success.set_output(output);
    return core_->SendTaskSuccess(success);
  }

  v1::DescribeExecutionResponse Describe(const std::string& arn) {
    v1::DescribeExecutionRequest request;
    request.set_execution_arn(arn);
    v1::DescribeExecutionResponse response;
    EXPECT_TRUE(core_->DescribeExecution(request, &response).ok());
    return response;
  }

  // Timers fire and the outbox delivers asynchronously: waits for the
  // execution to close.
  void AwaitClosed(const std::string& arn) {
    for (int i = 0; i < 300 && Describe(arn).status() == "RUNNING"; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  // Until a poller of the activity "work" waits in line.
  void AwaitWaitingPoller() {
    const std::string activity = "arn:aws:states:us-east-1:123456789012:activity:work";
    for (int i = 0; i < 1000 && core_->WaitingPollers(activity) == 0; ++i) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_EQ(core_->WaitingPollers(activity), 1u);
  }

  // The outbox delivers asynchronously; wait for history to reach a length.
  void AwaitHistory(const std::string& arn, size_t length) {
    for (int i = 0; i < 200 && HistoryTypes(arn).size() < length; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  std::filesystem::path dir_;
  clock::FakeClock clock_{absl::FromUnixSeconds(1764000000)};
  LoopbackPeers peers_;
  std::unique_ptr<ShardCore> core_;
};

TEST_F(ShardCoreTest, ExecutionRunsThroughActivityAndSurvivesRestart) {
  auto machine = CreateMachine();
  std::string arn = Start(machine, "run-1", R"({"order": 7})");
  v1::GetActivityTaskResponse task = Poll();
  ASSERT_FALSE(task.task_token().empty());
  EXPECT_EQ(task.input(), R"({"order":7,"prep":"ready"})");
  AwaitHistory(arn, 6);
  EXPECT_THAT(HistoryTypes(arn),
              ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                          "TaskStateEntered", "ActivityScheduled", "ActivityStarted"));

  // Restart before the worker answers: the task token still works.
  ASSERT_TRUE(Open(16).ok());
  EXPECT_EQ(Describe(arn).status(), "RUNNING");
  ASSERT_TRUE(SendSuccess(task.task_token(), R"({"charged": true})").ok());
  auto described = Describe(arn);
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_EQ(described.output(), R"({"order":7,"prep":"ready","result":{"charged":true}})");
  EXPECT_THAT(HistoryTypes(arn),
              ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                          "TaskStateEntered", "ActivityScheduled", "ActivityStarted",
                          "ActivitySucceeded", "TaskStateExited", "SucceedStateEntered",
                          "SucceedStateExited", "ExecutionSucceeded"));
  // A second answer for the same task is refused.
  auto again = SendSuccess(task.task_token(), R"({"charged": true})");
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.message()), ::testing::StartsWith("TaskTimedOut"));
}

// A write the disk fails: the transition's caller gets UNAVAILABLE and
// nothing of it is applied, the core refuses every later transition until
// it is opened again (its server exits for that, told once), and opening
// it again recovers everything written before.
TEST_F(ShardCoreTest, AFailedWriteAppliesNothingAndReopeningRecovers) {
  // Both outlive the core, which is closed here: TearDown is too late.
  storage::testing::FailingWalEnv wal;
  std::atomic<int> failures{0};
  absl::Cleanup close_first = [this] {
    peers_.set_core(nullptr);
    core_.reset();
  };
  store_env_ = wal.env();
  on_store_failure_ = [&failures](const absl::Status& status) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    ++failures;
  };
  ASSERT_TRUE(Open(16).ok());
  auto machine = CreateMachine();
  const std::string running = Start(machine, "running", R"({"order": 1})");
  v1::GetActivityTaskResponse task = Poll();
  ASSERT_FALSE(task.task_token().empty());
  AwaitHistory(running, 6);  // ActivityStarted is written

  wal.set_failing(true);
  iv1::StartExecutionShardRequest start;
  *start.mutable_state_machine() = machine;
  start.mutable_request()->set_name("refused");
  start.mutable_request()->set_input("{}");
  v1::StartExecutionResponse started;
  EXPECT_EQ(core_->StartExecution(start, &started).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(SendSuccess(task.task_token()).code(), absl::StatusCode::kUnavailable);
  wal.set_failing(false);
  // The disk would take it now, but what the log holds is in doubt.
  EXPECT_EQ(SendSuccess(task.task_token()).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(core_->StartExecution(start, &started).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(failures.load(), 1);
  // Nothing of them was applied in memory either.
  EXPECT_EQ(Describe(running).status(), "RUNNING");
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(absl::StrReplaceAll(running, {{":running", ":refused"}}));
  v1::DescribeExecutionResponse described;
  EXPECT_EQ(core_->DescribeExecution(describe, &described).code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(Open(16).ok());
  EXPECT_EQ(Describe(running).status(), "RUNNING");
  ASSERT_TRUE(SendSuccess(task.task_token(), R"({"charged": true})").ok());
  EXPECT_EQ(Describe(running).status(), "SUCCEEDED");
  EXPECT_EQ(Describe(running).output(), R"({"order":1,"prep":"ready","result":{"charged":true}})");
  EXPECT_EQ(Start(machine, "refused", "{}"), describe.execution_arn());
  EXPECT_EQ(failures.load(), 1);
}

TEST_F(ShardCoreTest, StatusChangesArePublishedThroughTheOutbox) {
  status_events_topic_ = "stepflow.events.default";
  ASSERT_TRUE(Open(16).ok());
  auto machine = CreateMachine();
  std::string arn = Start(machine, "watched", R"({"order": 9})");
  v1::GetActivityTaskResponse task = Poll();
  ASSERT_FALSE(task.task_token().empty());
  ASSERT_TRUE(SendSuccess(task.task_token()).ok());
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (peers_.Published().size() < 2 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::vector<iv1::PublishEvent> published = peers_.Published();
  ASSERT_EQ(published.size(), 2u);
  std::vector<std::string> statuses;
  for (const iv1::PublishEvent& event : published) {
    EXPECT_EQ(event.topic(), "stepflow.events.default");
    EXPECT_EQ(event.key(), arn);
    auto envelope = json::Parse(event.value());
    ASSERT_TRUE(envelope.ok()) << event.value();
    EXPECT_STREQ((*envelope)["source"].GetString(), "aws.states");
    EXPECT_STREQ((*envelope)["detail-type"].GetString(), "Step Functions Execution Status Change");
    EXPECT_STREQ((*envelope)["resources"][0].GetString(), arn.c_str());
    const json::Value& detail = (*envelope)["detail"];
    EXPECT_STREQ(detail["executionArn"].GetString(), arn.c_str());
    EXPECT_STREQ(detail["input"].GetString(), R"({"order": 9})");
    statuses.push_back(detail["status"].GetString());
    if (statuses.back() == "SUCCEEDED") {
      EXPECT_TRUE(detail["stopDate"].IsInt64());
      EXPECT_TRUE(detail["output"].IsString());
    } else {
      EXPECT_TRUE(detail["stopDate"].IsNull());
      EXPECT_TRUE(detail["output"].IsNull());
    }
  }
  EXPECT_THAT(statuses, ::testing::UnorderedElementsAre("RUNNING", "SUCCEEDED"));
  // Each change has its own event id.
  EXPECT_NE(json::Parse(published[0].value()).value()["id"].GetString(),
            std::string(json::Parse(published[1].value()).value()["id"].GetString()));
}

TEST_F(ShardCoreTest, EventsOfManyExecutionsArePublishedTogether) {
  // The first event is held at the bus while ten more executions start:
  // their events then go out in one call, not one call each, and the
  // events of one execution never share a call (their order would not hold).
  auto first_call = std::make_shared<std::atomic<bool>>(true);
  auto release = std::make_shared<absl::Notification>();
  peers_.publish_hook = [first_call, release](const iv1::PublishEvent&) {
    if (first_call->exchange(false)) release->WaitForNotificationWithTimeout(absl::Seconds(20));
    return absl::OkStatus();
  };
  status_events_topic_ = "stepflow.events.default";
  ASSERT_TRUE(Open(16).ok());
  auto machine = CreateMachine();
  std::vector<std::string> arns = {Start(machine, "held", "{}")};
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (first_call->load() && absl::Now() < end) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_FALSE(first_call->load()) << "the first event never reached the bus";
  for (int i = 0; i < 10; ++i) arns.push_back(Start(machine, absl::StrCat("run-", i), "{}"));
  release->Notify();
  for (size_t i = 0; i < arns.size(); ++i) {
    v1::GetActivityTaskResponse task = Poll();
    ASSERT_FALSE(task.task_token().empty());
    ASSERT_TRUE(SendSuccess(task.task_token()).ok());
  }
  while (peers_.Published().size() < 2 * arns.size() && absl::Now() < end + absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(peers_.Published().size(), 2 * arns.size());
  std::map<std::string, std::vector<std::string>> statuses;
  for (const iv1::PublishEvent& event : peers_.Published()) {
    statuses[event.key()].push_back(
        json::Parse(event.value()).value()["detail"]["status"].GetString());
  }
  for (const std::string& arn : arns) {
    EXPECT_THAT(statuses[arn], ElementsAre("RUNNING", "SUCCEEDED")) << arn;
  }
  absl::MutexLock lock(&peers_.mu);
  size_t largest_call = 0;
  for (const std::vector<std::string>& keys : peers_.publish_calls) {
    largest_call = std::max(largest_call, keys.size());
    EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size())
        << "two events of one execution in one call: " << absl::StrJoin(keys, ", ");
  }
  EXPECT_GE(largest_call, 10u);
  EXPECT_EQ(OutboxMetric("event", "delivered"), 2.0 * arns.size());
  EXPECT_EQ(OutboxMetric("event", ""), 2.0 * arns.size());
  EXPECT_EQ(OutboxMetric("event", "retried"), 0);
}

TEST_F(ShardCoreTest, OutboxItemsThatFailDoNotHoldBackTheOnesBehindThem) {
  // 300 events the bus refuses fill a whole outbox scan; an event behind
  // them still goes out, and the refused ones are tried again, not in a
  // tight loop, until the bus takes them.
  struct Refusing {
    std::atomic<bool> refuse{true};
    std::atomic<int> attempts_of_first{0};
    std::string first_key;
  };
  auto refusing = std::make_shared<Refusing>();
  peers_.publish_hook = [refusing](const iv1::PublishEvent& event) {
    if (!absl::StrContains(event.key(), ":stuck-")) return absl::OkStatus();
    if (event.key() == refusing->first_key) refusing->attempts_of_first.fetch_add(1);
    if (refusing->refuse.load()) return absl::UnavailableError("broker down");
    return absl::OkStatus();
  };
  status_events_topic_ = "stepflow.events.default";
  ASSERT_TRUE(Open(16).ok());
  auto machine = CreateMachine(
      "passes", R"({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}})");
  std::vector<std::string> stuck;
  for (int i = 0; i < 300; ++i) {
    stuck.push_back(Start(machine, absl::StrCat("stuck-", i), "{}"));
    if (i == 0) refusing->first_key = stuck[0];
  }
  const absl::Time started = absl::Now();
  const std::string free_arn = Start(machine, "free", "{}");
  auto published_keys = [&] {
    std::set<std::string> keys;
    for (const iv1::PublishEvent& event : peers_.Published()) keys.insert(event.key());
    return keys;
  };
  while (!published_keys().contains(free_arn) && absl::Now() < started + absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(published_keys().contains(free_arn)) << "held back behind the refused events";
  EXPECT_EQ(published_keys().size(), 1u);
  // Tried again with a growing pause (50 ms doubling to 5 s): a few times
  // in two seconds, not hundreds.
  absl::SleepFor(started + absl::Seconds(2) - absl::Now());
  const int attempts = refusing->attempts_of_first.load();
  EXPECT_GE(attempts, 2);
  EXPECT_LE(attempts, 12);
  refusing->refuse.store(false);
  const absl::Time end = absl::Now() + absl::Seconds(15);
  while (published_keys().size() < stuck.size() + 1 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(published_keys().size(), stuck.size() + 1);
  EXPECT_EQ(OutboxMetric("event", "delivered"), stuck.size() + 1.0);
  EXPECT_GE(OutboxMetric("event", "retried"), 2.0 * stuck.size());
}

TEST_F(ShardCoreTest, ABusThatHangsHoldsBackNoOtherOutboxItem) {
  // Every event waits at the bus until released. A stopped execution's
  // task cancellation, an outbox item of the other lane, is delivered
  // meanwhile.
  auto release = std::make_shared<absl::Notification>();
  peers_.publish_hook = [release](const iv1::PublishEvent&) {
    release->WaitForNotificationWithTimeout(absl::Seconds(20));
    return absl::OkStatus();
  };
  status_events_topic_ = "stepflow.events.default";
  ASSERT_TRUE(Open(16).ok());
  auto machine = CreateMachine();
  const std::string arn = Start(machine, "stopped", "{}");
  v1::StopExecutionRequest stop;
  stop.set_execution_arn(arn);
  v1::StopExecutionResponse stopped;
  ASSERT_TRUE(core_->StopExecution(stop, &stopped).ok());
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (OutboxMetric("cancel_activity_task", "delivered") < 1 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(OutboxMetric("cancel_activity_task", "delivered"), 1);
  EXPECT_TRUE(peers_.Published().empty()) << "the bus was to hold every event until now";
  release->Notify();
  while (peers_.Published().size() < 2 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  std::vector<std::string> statuses;
  for (const iv1::PublishEvent& event : peers_.Published()) {
    statuses.push_back(json::Parse(event.value()).value()["detail"]["status"].GetString());
  }
  EXPECT_THAT(statuses, ElementsAre("RUNNING", "ABORTED"));
}

// Events stored before they had a lane of their own (in the outbox of the
// other items) are still published after an upgrade.
TEST_F(ShardCoreTest, EventsLeftInTheSharedOutboxArePublished) {
  status_events_topic_ = "stepflow.events.default";
  ASSERT_TRUE(Open(16).ok());
  WithStoreAlone([&](storage::Store& store) {
    iv1::OutboxItem item;
    item.mutable_publish_event()->set_topic("stepflow.events.default");
    item.mutable_publish_event()->set_key("arn:aws:states:us-east-1:123456789012:execution:m:old");
    item.mutable_publish_event()->set_value(R"({"left": "behind"})");
    storage::WriteBatch batch;
    batch.Put(*store.Family(keys::kOutbox), keys::OutboxKey(1000), item.SerializeAsString());
    ASSERT_TRUE(store.Write(batch, /*sync=*/true).ok());
  });
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (peers_.Published().empty() && absl::Now() < end) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(peers_.Published().size(), 1u);
  EXPECT_EQ(peers_.Published()[0].value(), R"({"left": "behind"})");
}

TEST_F(ShardCoreTest, ASlowDeliveryHoldsBackNoOtherOutboxItem) {
  // The cancellation of one stopped execution's task hangs at its
  // receiver (a peer that does not answer); another's is delivered
  // meanwhile, in the same lane.
  auto release = std::make_shared<absl::Notification>();
  peers_.cancel_hook = [release](const iv1::ActivityTask& task) {
    if (absl::StrContains(task.task_id(), ":slow#")) {
      release->WaitForNotificationWithTimeout(absl::Seconds(20));
    }
  };
  ASSERT_TRUE(Open(16).ok());
  auto machine = CreateMachine();
  auto stop = [&](const std::string& arn) {
    v1::StopExecutionRequest request;
    request.set_execution_arn(arn);
    v1::StopExecutionResponse stopped;
    ASSERT_TRUE(core_->StopExecution(request, &stopped).ok());
  };
  const std::string slow = Start(machine, "slow", "{}");
  const std::string quick = Start(machine, "quick", "{}");
  stop(slow);
  absl::SleepFor(absl::Milliseconds(100));  // its delivery is under way
  stop(quick);
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (OutboxMetric("cancel_activity_task", "delivered") < 1 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(OutboxMetric("cancel_activity_task", "delivered"), 1);
  release->Notify();
  while (OutboxMetric("cancel_activity_task", "delivered") < 2 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(OutboxMetric("cancel_activity_task", "delivered"), 2);
}

TEST_F(ShardCoreTest, QueuedTaskSurvivesRestart) {
  auto machine = CreateMachine();
  std::string arn = Start(machine, "run-q", "{}");
  // Let the outbox hand the task to the queue, then restart before polling.
  for (int i = 0; i < 100; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(Open(16).ok());
  v1::GetActivityTaskResponse task = Poll();
  ASSERT_FALSE(task.task_token().empty());
  v1::SendTaskFailureRequest failure;
  failure.set_task_token(task.task_token());
  failure.set_error("CardDeclined");
  failure.set_cause("insufficient funds");
  ASSERT_TRUE(core_->SendTaskFailure(failure).ok());
  auto described = Describe(arn);
  EXPECT_EQ(described.status(), "FAILED");
  EXPECT_EQ(described.error(), "CardDeclined");
  EXPECT_EQ(HistoryTypes(arn).back(), "ExecutionFailed");
}

// A task whose queue partition is on this server is queued by its
// transition's own write (no outbox hop, no second write): it is there as
// soon as the start returns, survives a restart right after, and is
// delivered exactly once.
TEST_F(ShardCoreTest, LocalEnqueueIsPartOfTheStartAndDeliveredOnce) {
  auto machine = CreateMachine();
  const DurabilityStats before = core_->Stats();
  std::string arn = Start(machine, "local", "{}");
  EXPECT_EQ(core_->Stats().synced_writes - before.synced_writes, 1u);
  ASSERT_TRUE(Open(16).ok());  // at once: nothing left for an outbox to do
  v1::GetActivityTaskResponse task = Poll(absl::Milliseconds(200));
  ASSERT_FALSE(task.task_token().empty());
  EXPECT_TRUE(Poll(absl::Milliseconds(200)).task_token().empty());
  ASSERT_TRUE(Open(16).ok());
  EXPECT_TRUE(Poll(absl::Milliseconds(200)).task_token().empty());
  ASSERT_TRUE(SendSuccess(task.task_token()).ok());
  EXPECT_EQ(Describe(arn).status(), "SUCCEEDED");
}

// An enqueue from an outbox (another server's, in a cluster) is idempotent
// by task id while the id is kept: a day or two, by the day it came. Older
// days are dropped whole by the retention sweep, so ids do not pile up; a
// repeat after that queues the task again. A task queued by its own
// transition leaves no id at all, and ids of stores from before ids had
// days go with the first sweep; queued tasks stay.
TEST_F(ShardCoreTest, EnqueuedTaskIdsAreKeptForADayOrTwoThenDropped) {
  auto machine = CreateMachine();
  const std::string arn = Start(machine, "repeated", "{}");
  v1::GetActivityTaskResponse first = Poll(absl::Milliseconds(500));
  ASSERT_FALSE(first.task_token().empty());

  // What the tasks family holds: task ids and backlog records.
  auto stored = [&](char kind) {
    size_t count = 0;
    WithStoreAlone([&](storage::Store& store) {
      EXPECT_TRUE(store
                      .Scan(*store.Family(keys::kTasks), "", "", false,
                            [&](std::string_view key, std::string_view) {
                              count += key.size() > 4 && key[4] == kind;
                              return true;
                            })
                      .ok());
    });
    return count;
  };
  EXPECT_EQ(stored('i'), 0u) << "a task queued by its own transition keeps no id";

  iv1::ActivityTask task;
  task.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:work");
  task.set_task_token(first.task_token());
  task.set_input("{}");
  task.set_task_id(arn + "#from-outbox");
  ASSERT_TRUE(core_->EnqueueActivityTask(task).ok());
  ASSERT_TRUE(core_->EnqueueActivityTask(task).ok());  // the outbox repeats it
  EXPECT_EQ(Poll(absl::Milliseconds(500)).task_token(), first.task_token());
  EXPECT_TRUE(Poll(absl::Milliseconds(100)).task_token().empty()) << "queued once";
  iv1::ActivityTask cancelled = task;
  cancelled.set_task_id(arn + "#cancelled-first");
  ASSERT_TRUE(core_->CancelActivityTask(cancelled).ok());
  ASSERT_TRUE(core_->EnqueueActivityTask(cancelled).ok());
  EXPECT_TRUE(Poll(absl::Milliseconds(100)).task_token().empty()) << "cancelled before it came";

  // The next day, yesterday's ids still count, and the sweep keeps them.
  clock_.Advance(absl::Hours(24));
  ASSERT_TRUE(core_->PurgeExpiredExecutions().ok());
  ASSERT_TRUE(core_->EnqueueActivityTask(task).ok());
  EXPECT_TRUE(Poll(absl::Milliseconds(100)).task_token().empty());
  EXPECT_EQ(stored('i'), 2u);

  // A task waiting in the backlog, and an id from before ids had days: the
  // first sweep after a start drops that one.
  iv1::ActivityTask waiting = task;
  waiting.set_task_id(arn + "#waiting");
  ASSERT_TRUE(core_->EnqueueActivityTask(waiting).ok());
  WithStoreAlone([&](storage::Store& store) {
    storage::WriteBatch legacy;
    legacy.Put(*store.Family(keys::kTasks), keys::ShardPrefix(3) + "i" + arn + "#before-days", "");
    ASSERT_TRUE(store.Write(legacy, /*sync=*/true).ok());
  });
  ASSERT_NE(core_, nullptr);
  ASSERT_TRUE(core_->PurgeExpiredExecutions().ok());  // unless the timer thread's did
  EXPECT_EQ(stored('i'), 3u);
  EXPECT_EQ(stored('q'), 1u);

  // The day after: the first day's ids are dropped.
  clock_.Advance(absl::Hours(24));
  ASSERT_TRUE(core_->PurgeExpiredExecutions().ok());
  EXPECT_EQ(stored('i'), 1u) << "the waiting task's id, from yesterday";
  EXPECT_EQ(stored('q'), 1u);
  EXPECT_EQ(Poll(absl::Milliseconds(500)).task_token(), first.task_token()) << "still queued";
  ASSERT_TRUE(core_->EnqueueActivityTask(task).ok());
  EXPECT_EQ(Poll(absl::Milliseconds(500)).task_token(), first.task_token())
      << "its id is gone: a repeat this late is queued again";
  ASSERT_TRUE(SendSuccess(first.task_token()).ok());
  EXPECT_EQ(Describe(arn).status(), "SUCCEEDED");
}

// A timer no state waits for any more goes with the transition that let it
// go: a heartbeat's replaces the one before, and the task's answer takes
// its timeout's and heartbeat's; nothing is left to fire for nothing. The
// timers a state still waits for stay, and fire.
TEST_F(ShardCoreTest, TimersNoStateWaitsForAreDeletedWithTheirTransition) {
  auto machine = CreateMachine("timed", R"({"StartAt": "Work", "States": {
    "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
             "TimeoutSeconds": 300, "HeartbeatSeconds": 60, "Next": "Nap"},
    "Nap": {"Type": "Wait", "Seconds": 30, "End": true}}})");
  const std::string arn = Start(machine, "timed-1", "{}");
  // Timer keys stored for the execution, by fire time.
  auto stored_timers = [&] {
    std::vector<absl::Time> fire_times;
    WithStoreAlone([&](storage::Store& store) {
      EXPECT_TRUE(store
                      .Scan(*store.Family(keys::kTimers), "", "", false,
                            [&](std::string_view key, std::string_view) {
                              if (key.find(arn) != std::string_view::npos) {
                                fire_times.push_back(absl::FromUnixMillis(
                                    static_cast<int64_t>(storage::DecodeUint64(key))));
                              }
                              return true;
                            })
                      .ok());
    });
    return fire_times;
  };
  const absl::Time start = clock_.Now();
  EXPECT_THAT(stored_timers(), ElementsAre(start + absl::Seconds(300)));
  v1::GetActivityTaskResponse task = Poll();
  ASSERT_FALSE(task.task_token().empty());
  EXPECT_THAT(stored_timers(),
              ElementsAre(start + absl::Seconds(60), start + absl::Seconds(300)));
  for (int i = 1; i <= 2; ++i) {
    clock_.Advance(absl::Seconds(10));
    v1::SendTaskHeartbeatRequest heartbeat;
    heartbeat.set_task_token(task.task_token());
    ASSERT_TRUE(core_->SendTaskHeartbeat(heartbeat).ok());
    EXPECT_THAT(stored_timers(), ElementsAre(start + absl::Seconds(10 * i + 60),
                                             start + absl::Seconds(300)))
        << "heartbeat " << i;
  }
  ASSERT_TRUE(SendSuccess(task.task_token()).ok());
  EXPECT_THAT(stored_timers(), ElementsAre(start + absl::Seconds(20 + 30))) << "the Wait's only";
  clock_.Advance(absl::Seconds(30));
  AwaitClosed(arn);
  EXPECT_EQ(Describe(arn).status(), "SUCCEEDED");
  EXPECT_THAT(stored_timers(), ::testing::IsEmpty());
}

// A poller already waiting is handed the task by the start's own write,
// which records ActivityStarted with its worker name: no backlog record, no
// write of its own, nothing to deliver again after a restart.
TEST_F(ShardCoreTest, WaitingPollerIsHandedTheTaskByTheStartsWrite) {
  auto machine = CreateMachine();
  v1::GetActivityTaskResponse task;
  std::thread poller([&] { task = Poll(absl::Seconds(10)); });
  AwaitWaitingPoller();
  const DurabilityStats before = core_->Stats();
  std::string arn = Start(machine, "handed", "{}");
  poller.join();
  ASSERT_FALSE(task.task_token().empty());
  EXPECT_EQ(core_->Stats().synced_writes - before.synced_writes, 1u);
  EXPECT_THAT(HistoryTypes(arn),
              ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                          "TaskStateEntered", "ActivityScheduled", "ActivityStarted"));
  ASSERT_TRUE(Open(16).ok());
  EXPECT_TRUE(Poll(absl::Milliseconds(200)).task_token().empty());
  ASSERT_TRUE(SendSuccess(task.task_token()).ok());
  EXPECT_EQ(Describe(arn).status(), "SUCCEEDED");
  v1::GetExecutionHistoryRequest history;
  history.set_execution_arn(arn);
  v1::GetExecutionHistoryResponse events;
  ASSERT_TRUE(core_->GetExecutionHistory(history, &events).ok());
  ASSERT_GE(events.events_size(), 6);
  EXPECT_EQ(events.events(5).activity_started_event_details().worker_name(), "w1");
}

// The tasks an execution schedules later meet a waiting poller the same
// way: the next one by the previous one's result, a retry by the timer
// that ends its backoff. Each is one write, ActivityStarted included.
TEST_F(ShardCoreTest, WaitingPollerIsHandedTheNextTaskAndTheRetryByTheirTransitionsWrite) {
  auto machine = CreateMachine("two-steps", R"({"StartAt": "First", "States": {
    "First": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
              "Next": "Second"},
    "Second": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
               "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 5}], "End": true}}})");
  const std::string arn = Start(machine, "two-steps-1", "{}");
  v1::GetActivityTaskResponse first = Poll();
  ASSERT_FALSE(first.task_token().empty());

  // Handed by the first task's result.
  v1::GetActivityTaskResponse second;
  std::thread poller([&] { second = Poll(absl::Seconds(10)); });
  AwaitWaitingPoller();
  DurabilityStats before = core_->Stats();
  ASSERT_TRUE(SendSuccess(first.task_token()).ok());
  poller.join();
  ASSERT_FALSE(second.task_token().empty());
  EXPECT_EQ(core_->Stats().synced_writes - before.synced_writes, 1u);
  std::vector<std::string> types = HistoryTypes(arn);
  ASSERT_GE(types.size(), 2u);
  EXPECT_THAT(std::vector<std::string>(types.end() - 2, types.end()),
              ElementsAre("ActivityScheduled", "ActivityStarted"));

  // Handed by the timer that ends the retry's backoff.
  v1::SendTaskFailureRequest failure;
  failure.set_task_token(second.task_token());
  failure.set_error("Flaky");
  ASSERT_TRUE(core_->SendTaskFailure(failure).ok());
  v1::GetActivityTaskResponse retry;
  poller = std::thread([&] { retry = Poll(absl::Seconds(10)); });
  AwaitWaitingPoller();
  before = core_->Stats();
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(core_->FireDueTimers().ok());
  poller.join();
  ASSERT_FALSE(retry.task_token().empty());
  EXPECT_NE(retry.task_token(), second.task_token());
  EXPECT_EQ(core_->Stats().synced_writes - before.synced_writes, 1u);
  types = HistoryTypes(arn);
  EXPECT_THAT(std::vector<std::string>(types.end() - 2, types.end()),
              ElementsAre("ActivityScheduled", "ActivityStarted"));

  // Nothing is left in the backlog to be delivered again, after a restart
  // either.
  ASSERT_TRUE(Open(16).ok());
  EXPECT_TRUE(Poll(absl::Milliseconds(200)).task_token().empty());
  ASSERT_TRUE(SendSuccess(retry.task_token()).ok());
  EXPECT_EQ(Describe(arn).status(), "SUCCEEDED");
}

// A claimed poller whose caller has gone by the time the task is handed to
// it puts the task back into the backlog, durably: it is delivered once,
// after a restart too.
TEST_F(ShardCoreTest, HandedTaskOfAGonePollerGoesBackToTheBacklog) {
  auto machine = CreateMachine();
  std::atomic<bool> gone{false};
  absl::Status polled;
  v1::GetActivityTaskResponse lost;
  std::thread poller([&] {
    v1::GetActivityTaskRequest poll;
    poll.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:work");
    poll.set_worker_name("gone");
    polled = core_->GetActivityTask(poll, &lost, absl::Now() + absl::Seconds(10),
                                    [&] { return gone.load(); });
  });
  AwaitWaitingPoller();
  gone = true;  // noticed only once it is woken: by the hand-over
  std::string arn = Start(machine, "returned", "{}");
  poller.join();
  ASSERT_TRUE(polled.ok()) << polled;
  EXPECT_TRUE(lost.task_token().empty());
  ASSERT_TRUE(Open(16).ok());
  v1::GetActivityTaskResponse task = Poll(absl::Milliseconds(500));
  ASSERT_FALSE(task.task_token().empty());
  EXPECT_TRUE(Poll(absl::Milliseconds(200)).task_token().empty());
  ASSERT_TRUE(SendSuccess(task.task_token()).ok());
  EXPECT_EQ(Describe(arn).status(), "SUCCEEDED");
}

// A poll that waits without a thread (a local call from a gRPC callback
// thread) is handed the task by the start's write, as a waiting Take is,
// and answered from there.
TEST_F(ShardCoreTest, PollWaitingWithoutAThreadIsHandedTheTaskByTheStartsWrite) {
  auto machine = CreateMachine();
  EXPECT_TRUE(Poll(absl::ZeroDuration()).task_token().empty());  // looks the activity up
  iv1::PollActivityTasksRequest request;
  request.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:work");
  request.set_worker_name("w1");
  request.set_max_tasks(4);
  request.set_wait_ms(10000);
  iv1::PollActivityTasksResponse response;
  absl::Notification answered;
  absl::Status answer_status;
  ShardCore::AnswerLater answer = [&](absl::Status status) {
    answer_status = std::move(status);
    answered.Notify();
  };
  ASSERT_EQ(core_->PollActivityTasksLater(request, &response, absl::Now() + absl::Seconds(10),
                                          [] { return false; }, &answer),
            ShardCore::LaterPoll::kWaiting);
  EXPECT_FALSE(answer) << "the answer was not taken";
  AwaitWaitingPoller();
  std::string arn = Start(machine, "handed-later", "{}");
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(answer_status.ok()) << answer_status;
  ASSERT_EQ(response.tasks_size(), 1);
  EXPECT_THAT(HistoryTypes(arn),
              ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                          "TaskStateEntered", "ActivityScheduled", "ActivityStarted"));
  EXPECT_TRUE(Poll(absl::Milliseconds(200)).task_token().empty());
  ASSERT_TRUE(SendSuccess(response.tasks(0).task_token()).ok());
  EXPECT_EQ(Describe(arn).status(), "SUCCEEDED");

  // A poll with a backlog to take, or of an activity not looked up, is
  // left to PollActivityTasks, its answer untouched.
  request.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:nope");
  ShardCore::AnswerLater unused = [](absl::Status) {};
  EXPECT_EQ(core_->PollActivityTasksLater(request, &response, absl::Now() + absl::Seconds(1),
                                          [] { return false; }, &unused),
            ShardCore::LaterPoll::kDeclined);
  EXPECT_TRUE(unused);
}

// Its caller gone by the time the task is handed to it (claimed while
// still there), the task goes back into the backlog, durably.
TEST_F(ShardCoreTest, HandedTaskOfAPollGoneWhileWaitingWithoutAThreadGoesBackToTheBacklog) {
  auto machine = CreateMachine();
  EXPECT_TRUE(Poll(absl::ZeroDuration()).task_token().empty());
  iv1::PollActivityTasksRequest request;
  request.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:work");
  request.set_worker_name("gone");
  request.set_max_tasks(1);
  request.set_wait_ms(10000);
  iv1::PollActivityTasksResponse response;
  absl::Notification answered;
  ShardCore::AnswerLater answer = [&](absl::Status) { answered.Notify(); };
  // Still there when claimed (the first look), gone when handed.
  std::atomic<int> looks{0};
  ASSERT_EQ(core_->PollActivityTasksLater(request, &response, absl::Now() + absl::Seconds(10),
                                          [&looks] { return looks.fetch_add(1) >= 1; }, &answer),
            ShardCore::LaterPoll::kWaiting);
  AwaitWaitingPoller();
  std::string arn = Start(machine, "returned-later", "{}");
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(response.tasks_size(), 0);
  v1::GetActivityTaskResponse task;
  for (int i = 0; i < 100 && task.task_token().empty(); ++i) task = Poll(absl::Milliseconds(50));
  ASSERT_FALSE(task.task_token().empty());
  ASSERT_TRUE(Open(16).ok());
  EXPECT_TRUE(Poll(absl::Milliseconds(200)).task_token().empty())
      << "delivered again after a restart";
  ASSERT_TRUE(SendSuccess(task.task_token()).ok());
  EXPECT_EQ(Describe(arn).status(), "SUCCEEDED");
}

// Polls and watches that wait without a thread answer empty at their
// deadline, however short, not when the timer loop next happens to wake
// (up to a second later); one whose time is up as it comes, when no task
// waits, is answered at once without waiting at all.
TEST_F(ShardCoreTest, PollsWaitingWithoutAThreadAnswerAtTheirDeadline) {
  CreateMachine();
  EXPECT_TRUE(Poll(absl::ZeroDuration()).task_token().empty());  // looks the activity up
  // Let the timer loop settle into its longest sleep.
  absl::SleepFor(absl::Milliseconds(50));
  for (const int max_tasks : {1, 0}) {
    SCOPED_TRACE(max_tasks == 0 ? "watch" : "poll");
    for (const absl::Duration wait : {absl::ZeroDuration(), absl::Milliseconds(50)}) {
      iv1::PollActivityTasksRequest request;
      request.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:work");
      request.set_max_tasks(max_tasks);
      request.set_wait_ms(absl::ToInt64Milliseconds(wait));
      iv1::PollActivityTasksResponse response;
      absl::Notification answered;
      ShardCore::AnswerLater answer = [&](absl::Status) { answered.Notify(); };
      const absl::Time asked = absl::Now();
      const ShardCore::LaterPoll poll = core_->PollActivityTasksLater(
          request, &response, absl::Now() + absl::Seconds(10), [] { return false; }, &answer);
      if (wait == absl::ZeroDuration()) {
        ASSERT_EQ(poll, ShardCore::LaterPoll::kAnswered);
        EXPECT_TRUE(answer) << "the answer was taken";
      } else {
        ASSERT_EQ(poll, ShardCore::LaterPoll::kWaiting);
        ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(5)));
      }
      EXPECT_LT(absl::Now() - asked, wait + absl::Milliseconds(300));
      EXPECT_EQ(response.tasks_size(), 0);
      EXPECT_FALSE(response.backlog());
      // The loop sleeps its longest again before the next one.
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
}

TEST_F(ShardCoreTest, EmptyPollTimesOut) {
  CreateMachine();
  absl::Time start = absl::Now();
  v1::GetActivityTaskResponse task = Poll(absl::Milliseconds(200));
  EXPECT_TRUE(task.task_token().empty());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(190));
  v1::GetActivityTaskRequest unknown;
  unknown.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:nope");
  v1::GetActivityTaskResponse none;
  EXPECT_EQ(core_->GetActivityTask(unknown, &none, absl::Now(), nullptr).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ShardCoreTest, NamesAreIdempotencyKeys) {
  auto machine = CreateMachine();
  std::string arn = Start(machine, "same", R"({"a":1})");
  EXPECT_EQ(Start(machine, "same", R"({"a":1})"), arn);
  iv1::StartExecutionShardRequest start;
  *start.mutable_state_machine() = machine;
  start.mutable_request()->set_name("same");
  start.mutable_request()->set_input(R"({"a":2})");
  v1::StartExecutionResponse started;
  auto status = core_->StartExecution(start, &started);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(status.message()), ::testing::StartsWith("ExecutionAlreadyExists"));
}

TEST_F(ShardCoreTest, CatalogRules) {
  auto machine = CreateMachine();
  v1::CreateStateMachineRequest create;
  create.set_name("orders");
  create.set_definition(kDefinition);
  v1::CreateStateMachineResponse created;
  EXPECT_TRUE(core_->CreateStateMachine(create, &created).ok());  // same content
  create.set_definition(R"({"StartAt":"A","States":{"A":{"Type":"Succeed"}}})");
  EXPECT_EQ(core_->CreateStateMachine(create, &created).code(), absl::StatusCode::kAlreadyExists);
  v1::DescribeStateMachineRequest describe;
  describe.set_state_machine_arn(machine.state_machine_arn());
  v1::DescribeStateMachineResponse described;
  ASSERT_TRUE(core_->DescribeStateMachine(describe, &described).ok());
  EXPECT_EQ(described.definition(), kDefinition);  // unchanged by the refused create
  iv1::ListShardRequest list;
  iv1::ListStateMachinesShardResponse listed;
  ASSERT_TRUE(core_->ListStateMachines(list, &listed).ok());
  ASSERT_EQ(listed.state_machines_size(), 1);
  v1::DeleteStateMachineRequest del;
  del.set_state_machine_arn(machine.state_machine_arn());
  ASSERT_TRUE(core_->DeleteStateMachine(del).ok());
  EXPECT_EQ(core_->DescribeStateMachine(describe, &described).code(), absl::StatusCode::kNotFound);
}

TEST_F(ShardCoreTest, StopAbortsAndRefusesLateResults) {
  auto machine = CreateMachine();
  std::string arn = Start(machine, "stop-me", "{}");
  v1::GetActivityTaskResponse task = Poll();
  v1::StopExecutionRequest stop;
  stop.set_execution_arn(arn);
  stop.set_error("Cancelled");
  v1::StopExecutionResponse stopped;
  ASSERT_TRUE(core_->StopExecution(stop, &stopped).ok());
  EXPECT_EQ(Describe(arn).status(), "ABORTED");
  EXPECT_EQ(HistoryTypes(arn).back(), "ExecutionAborted");
  v1::SendTaskSuccessRequest late;
  late.set_task_token(task.task_token());
  late.set_output("{}");
  auto refused = core_->SendTaskSuccess(late);
  EXPECT_EQ(refused.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(refused.message()), ::testing::StartsWith("TaskDoesNotExist"));
}

// Tasks of EXPRESS executions wait in memory: queueing and handing them
// out writes nothing synced, and a restart of the queue's server loses
// them, while a STANDARD task queued beside them is recovered.
TEST_F(ShardCoreTest, ExpressActivityTasksWaitInMemory) {
  auto standard = CreateMachine();  // also creates the activity "work"
  v1::CreateStateMachineRequest create;
  create.set_name("express-orders");
  create.set_type("EXPRESS");
  create.set_definition(kDefinition);
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto express = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(express.ok());

  const DurabilityStats before = core_->Stats();
  const std::string served = Start(*express, "served", "{}");
  v1::GetActivityTaskResponse task = Poll();
  ASSERT_FALSE(task.task_token().empty());
  ASSERT_TRUE(SendSuccess(task.task_token(), R"({"charged": true})").ok());
  EXPECT_EQ(Describe(served).status(), "SUCCEEDED");
  // The asynchronous start's record is the only synced write.
  EXPECT_EQ(core_->Stats().synced_writes - before.synced_writes, 1u);

  const std::string lost = Start(*express, "lost", "{}");
  const std::string kept = Start(standard, "kept", "{}");
  absl::SleepFor(absl::Seconds(1));  // the outbox queues both tasks
  ASSERT_TRUE(Open(16).ok());
  task = Poll();
  ASSERT_FALSE(task.task_token().empty());
  ASSERT_TRUE(SendSuccess(task.task_token(), R"({"charged": true})").ok());
  EXPECT_EQ(Describe(kept).status(), "SUCCEEDED");
  EXPECT_TRUE(Poll(absl::Milliseconds(300)).task_token().empty());
  // The EXPRESS execution waits on; its 5-minute limit ends it.
  EXPECT_EQ(Describe(lost).status(), "RUNNING");
  clock_.Advance(absl::Minutes(6));
  ASSERT_TRUE(core_->FireDueTimers().ok());
  EXPECT_EQ(Describe(lost).status(), "TIMED_OUT");
}

// The task backlog lives in memory: past its bound new starts are refused
// at once, and admitted again once workers have taken tasks.
TEST_F(ShardCoreTest, StartsAreRefusedWhileTheTaskBacklogIsTooLarge) {
  max_queued_task_bytes_ = 4096;
  ASSERT_TRUE(Open(16).ok());
  auto machine = CreateMachine();
  const std::string input = absl::StrCat(R"({"pad": ")", std::string(1500, 'x'), R"("})");
  for (int i = 0; i < 3; ++i) Start(machine, absl::StrCat("queued-", i), input);
  absl::SleepFor(absl::Seconds(1));  // the outbox queues the three tasks
  iv1::StartExecutionShardRequest start;
  *start.mutable_state_machine() = machine;
  start.mutable_request()->set_name("refused");
  start.mutable_request()->set_input(input);
  v1::StartExecutionResponse response;
  absl::Status refused = core_->StartExecution(start, &response);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.message()),
              ::testing::StartsWith("ThrottlingException: Rate exceeded (the activity task backlog"));
  ASSERT_FALSE(Poll().task_token().empty());
  ASSERT_FALSE(Poll().task_token().empty());
  EXPECT_TRUE(core_->StartExecution(start, &response).ok());
}

TEST_F(ShardCoreTest, StopCancelsQueuedTasks) {
  auto machine = CreateMachine();
  std::string arn = Start(machine, "never-polled", "{}");
  // Let the outbox queue the task first.
  absl::SleepFor(absl::Milliseconds(300));
  v1::StopExecutionRequest stop;
  stop.set_execution_arn(arn);
  v1::StopExecutionResponse stopped;
  ASSERT_TRUE(core_->StopExecution(stop, &stopped).ok());
  absl::SleepFor(absl::Seconds(1));  // the outbox delivers the cancel
  EXPECT_TRUE(Poll(absl::Milliseconds(200)).task_token().empty());
  // Also after a restart (the backlog on disk lost it too).
  ASSERT_TRUE(Open(16).ok());
  EXPECT_TRUE(Poll(absl::Milliseconds(200)).task_token().empty());
}

TEST_F(ShardCoreTest, MissingActivityFailsExecution) {
  auto machine = CreateMachine();
  v1::DeleteActivityRequest del;
  del.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:work");
  ASSERT_TRUE(core_->DeleteActivity(del).ok());
  std::string arn = Start(machine, "orphan", "{}");
  for (int i = 0; i < 200 && Describe(arn).status() == "RUNNING"; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  auto described = Describe(arn);
  EXPECT_EQ(described.status(), "FAILED");
  EXPECT_EQ(described.error(), "States.Runtime");
  EXPECT_EQ(described.cause(),
            "An error occurred while executing the state 'Work' (entered at the event id #4). "
            "The activity arn:aws:states:us-east-1:123456789012:activity:work does not exist.");
  // Looked up before scheduling, as on AWS.
  EXPECT_THAT(HistoryTypes(arn),
              ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                          "TaskStateEntered", "ExecutionFailed"));
}

// A two-server cluster seen from server 0: the execution is on a shard of
// this server, its activity on one of the other. Returns the execution ARN.
std::string StartWithRemoteActivity(ShardCore& core, const std::string& name) {
  std::string activity;
  for (int i = 0; activity.empty(); ++i) {
    std::string candidate = absl::StrCat("arn:aws:states:us-east-1:123456789012:activity:far-", i);
    if (!config::Owns(config::ShardOf(candidate, 16), 0, 2)) activity = candidate;
  }
  iv1::StartExecutionShardRequest start;
  iv1::StateMachineRecord& machine = *start.mutable_state_machine();
  machine.set_name("remote");
  machine.set_state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:remote");
  machine.set_type("STANDARD");
  machine.set_revision_id("r1");
  machine.set_definition(absl::StrCat(R"({"StartAt": "Work", "States": {
      "Work": {"Type": "Task", "Resource": ")", activity, R"(", "End": true}}})"));
  for (int i = 0;; ++i) {
    std::string candidate = absl::StrCat(name, "-", i);
    auto arn = absl::StrCat("arn:aws:states:us-east-1:123456789012:execution:remote:", candidate);
    if (!config::Owns(config::ShardOf(arn, 16), 0, 2)) continue;
    start.mutable_request()->set_name(candidate);
    start.mutable_request()->set_input("{}");
    v1::StartExecutionResponse started;
    absl::Status status = core.StartExecution(start, &started);
    EXPECT_TRUE(status.ok()) << status;
    return started.execution_arn();
  }
}

TEST_F(ShardCoreTest, MissingActivityOnAnotherServerFailsBeforeScheduling) {
  replicas_ = 2;
  ASSERT_TRUE(Open(16).ok());
  peers_.set_remote_check_answer(absl::NotFoundError("ActivityDoesNotExist: gone"));
  std::string arn = StartWithRemoteActivity(*core_, "early");
  EXPECT_EQ(Describe(arn).status(), "FAILED");
  EXPECT_THAT(HistoryTypes(arn), ElementsAre("ExecutionStarted", "TaskStateEntered",
                                             "ExecutionFailed"));
}

// An activity ARN held by the other of two servers, with a queue
// partition on this one (server 0 of 2, 16 shards).
std::string RemoteActivityWithLocalPartition(const std::string& base) {
  for (int i = 0;; ++i) {
    const std::string candidate =
        absl::StrCat("arn:aws:states:us-east-1:123456789012:activity:", base, "-", i);
    if (config::Owns(config::ShardOf(candidate, 16), 0, 2)) continue;
    for (int partition = 0; partition < config::kDefaultTaskQueuePartitions; ++partition) {
      if (config::Owns(config::ShardOf(config::TaskQueuePartitionKey(candidate, partition), 16), 0,
                       2)) {
        return candidate;
      }
    }
  }
}

// A burst of look-ups of an activity on another server (the first polls of
// a fleet of workers) asks its owner once; they all take its answer.
TEST_F(ShardCoreTest, ConcurrentLookUpsOfARemoteActivityAskItsOwnerOnce) {
  replicas_ = 2;
  ASSERT_TRUE(Open(16).ok());
  const std::string activity = RemoteActivityWithLocalPartition("fleet");
  peers_.set_remote_check_answer(absl::OkStatus());
  peers_.set_remote_check_delay(absl::Milliseconds(300));
  // Eight look-ups at once; their answers.
  auto look_up_at_once = [&](const std::string& activity) {
    constexpr int kCallers = 8;
    absl::Notification go;
    std::vector<absl::Status> answers(kCallers);
    std::vector<std::thread> callers;
    for (int i = 0; i < kCallers; ++i) {
      callers.emplace_back([&, i] {
        go.WaitForNotification();
        answers[i] = core_->LookUpActivity(activity);
      });
    }
    go.Notify();
    for (std::thread& caller : callers) caller.join();
    return answers;
  };
  for (const absl::Status& answer : look_up_at_once(activity)) {
    EXPECT_TRUE(answer.ok()) << answer;
  }
  EXPECT_EQ(peers_.remote_checks.load(), 1);

  // Once the confirmation has expired, look-ups take it at once while one
  // question goes to the owner in the background; its refusal drops it.
  peers_.set_remote_check_answer(absl::NotFoundError("ActivityDoesNotExist: gone"));
  absl::SleepFor(absl::Seconds(2));  // past the confirmation's lifetime
  peers_.remote_checks = 0;
  const absl::Time asked = absl::Now();
  for (const absl::Status& answer : look_up_at_once(activity)) {
    EXPECT_TRUE(answer.ok()) << answer;
  }
  EXPECT_LT(absl::Now() - asked, absl::Milliseconds(250)) << "waited for the owner";
  EXPECT_TRUE(peers_.AwaitRemoteChecks(1));
  EXPECT_TRUE(absl::IsNotFound(core_->LookUpActivity(activity)));
  EXPECT_EQ(peers_.remote_checks.load(), 2);

  // A refusal is every waiting caller's too, and is not kept.
  const std::string missing = RemoteActivityWithLocalPartition("missing");
  peers_.remote_checks = 0;
  for (const absl::Status& answer : look_up_at_once(missing)) {
    EXPECT_TRUE(absl::IsNotFound(answer)) << answer;
  }
  EXPECT_EQ(peers_.remote_checks.load(), 1);
  EXPECT_TRUE(absl::IsNotFound(core_->LookUpActivity(missing)));
  EXPECT_EQ(peers_.remote_checks.load(), 2);
}

// While an activity's owner cannot be reached, an activity it confirmed
// before still counts (its partitions here go on serving workers), the
// owner asked again once a lifetime; one never confirmed does not, and a
// refusal drops the confirmation.
TEST_F(ShardCoreTest, AnActivityConfirmedBeforeCountsWhileItsOwnerIsUnreachable) {
  replicas_ = 2;
  ASSERT_TRUE(Open(16).ok());
  const std::string activity = RemoteActivityWithLocalPartition("outage");
  peers_.set_remote_check_answer(absl::UnavailableError("connection refused"));
  EXPECT_TRUE(absl::IsUnavailable(core_->LookUpActivity(activity)));
  peers_.set_remote_check_answer(absl::OkStatus());
  ASSERT_TRUE(core_->LookUpActivity(activity).ok());
  absl::SleepFor(absl::Seconds(2));  // past the confirmation's lifetime
  peers_.set_remote_check_answer(absl::UnavailableError("connection refused"));
  peers_.remote_checks = 0;
  EXPECT_TRUE(core_->LookUpActivity(activity).ok());
  EXPECT_TRUE(core_->LookUpActivity(activity).ok());
  EXPECT_TRUE(peers_.AwaitRemoteChecks(1)) << "asked once, in the background";
  // Kept for another lifetime: not asked again meanwhile.
  EXPECT_TRUE(core_->LookUpActivity(activity).ok());
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(peers_.remote_checks.load(), 1);
  absl::SleepFor(absl::Seconds(2));
  peers_.set_remote_check_answer(absl::NotFoundError("ActivityDoesNotExist: gone"));
  EXPECT_TRUE(core_->LookUpActivity(activity).ok());  // the expired confirmation
  EXPECT_TRUE(peers_.AwaitRemoteChecks(2));
  EXPECT_TRUE(absl::IsNotFound(core_->LookUpActivity(activity)));
  peers_.set_remote_check_answer(absl::UnavailableError("connection refused"));
  EXPECT_TRUE(absl::IsUnavailable(core_->LookUpActivity(activity)));
}

// An activity with tasks queued here counts too while its owner cannot be
// reached, also after a restart of this server that forgot every
// confirmation: a partition queues a task only once the activity is
// confirmed, so its stored tasks are that proof.
TEST_F(ShardCoreTest, AnActivityWithTasksQueuedHereCountsWhileItsOwnerIsUnreachable) {
  replicas_ = 2;
  ASSERT_TRUE(Open(16).ok());
  const std::string activity = RemoteActivityWithLocalPartition("queued");
  iv1::ActivityTask task;
  task.set_activity_arn(activity);
  task.set_task_token("token-of-a-remote-execution");
  task.set_input("{}");
  task.set_task_id("arn:aws:states:us-east-1:123456789012:execution:m:e#1");
  for (int partition = 0;; ++partition) {
    ASSERT_LT(partition, config::kDefaultTaskQueuePartitions);
    if (config::Owns(config::ShardOf(config::TaskQueuePartitionKey(activity, partition), 16), 0,
                     2)) {
      task.set_partition(partition);
      break;
    }
  }
  peers_.set_remote_check_answer(absl::OkStatus());  // confirmed by its owner
  ASSERT_TRUE(core_->EnqueueActivityTask(task).ok());

  ASSERT_TRUE(Open(16).ok());  // a restart: the task is loaded, nothing is confirmed
  peers_.set_remote_check_answer(absl::UnavailableError("connection refused"));
  peers_.remote_checks = 0;
  EXPECT_TRUE(core_->LookUpActivity(activity).ok());
  EXPECT_EQ(peers_.remote_checks.load(), 1) << "the owner is still asked";
  // One with no task here is not taken to exist.
  EXPECT_TRUE(
      absl::IsUnavailable(core_->LookUpActivity(RemoteActivityWithLocalPartition("unqueued"))));
  // A refusal, once the owner is asked again, still counts over the
  // queued tasks.
  peers_.set_remote_check_answer(absl::NotFoundError("ActivityDoesNotExist: gone"));
  absl::SleepFor(absl::Seconds(2));  // past the lifetime the first answer gave
  EXPECT_TRUE(core_->LookUpActivity(activity).ok());
  EXPECT_TRUE(peers_.AwaitRemoteChecks(3));
  EXPECT_TRUE(absl::IsNotFound(core_->LookUpActivity(activity)));
}

// A restart delivers what its outbox holds at once, often to this server
// itself: its peers must have the core before the core's threads call them
// (a server whose peers did not yet crashed at start-up).
TEST_F(ShardCoreTest, ARestartedCoreIsAttachedToItsPeersBeforeItDeliversItsOutbox) {
  auto refusing = std::make_shared<std::atomic<bool>>(true);
  auto refused = std::make_shared<std::atomic<int>>(0);
  peers_.publish_hook = [refusing, refused](const iv1::PublishEvent&) {
    if (!*refusing) return absl::OkStatus();
    ++*refused;
    return absl::UnavailableError("broker down");
  };
  status_events_topic_ = "stepflow.events.default";
  ASSERT_TRUE(Open(16).ok());
  Start(CreateMachine(), "published-after-restart", "{}");
  for (int i = 0; i < 500 && refused->load() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_GT(refused->load(), 0) << "the status change never left the outbox";
  peers_.set_core(nullptr);
  core_.reset();

  *refusing = false;
  peers_.calls_without_core = 0;
  // Had the core's threads started before the hand-over, they would call
  // during this pause.
  peers_.attach_delay = absl::Milliseconds(300);
  ASSERT_TRUE(Open(16).ok());
  EXPECT_EQ(AwaitPublished(1).statuses.size(), 1u) << "the stored event was not delivered";
  EXPECT_EQ(peers_.calls_without_core.load(), 0);
}

TEST_F(ShardCoreTest, UnreachableActivityOwnerSchedulesThenTheQueueReportsItMissing) {
  replicas_ = 2;
  ASSERT_TRUE(Open(16).ok());
  // The activity's server does not answer: the execution goes on, and the
  // partition that cannot queue the task reports it (the late path).
  peers_.set_remote_check_answer(absl::UnavailableError("connection refused"));
  peers_.missing_remote_activities = true;
  std::string arn = StartWithRemoteActivity(*core_, "late");
  AwaitClosed(arn);
  auto described = Describe(arn);
  EXPECT_EQ(described.status(), "FAILED");
  EXPECT_EQ(described.error(), "States.Runtime");
  EXPECT_THAT(described.cause(), ::testing::HasSubstr("does not exist."));
  EXPECT_THAT(HistoryTypes(arn), ElementsAre("ExecutionStarted", "TaskStateEntered",
                                             "ActivityScheduled", "ExecutionFailed"));
}

TEST_F(ShardCoreTest, HistoryPagination) {
  auto machine = CreateMachine();
  std::string arn = Start(machine, "pages", "{}");
  AwaitHistory(arn, 5);
  v1::GetExecutionHistoryRequest request;
  request.set_execution_arn(arn);
  request.set_max_results(2);
  std::vector<int64_t> ids;
  do {
    v1::GetExecutionHistoryResponse page;
    ASSERT_TRUE(core_->GetExecutionHistory(request, &page).ok());
    for (const auto& e : page.events()) ids.push_back(e.id());
    request.set_next_token(page.next_token());
  } while (!request.next_token().empty());
  EXPECT_THAT(ids, ElementsAre(1, 2, 3, 4, 5));
  request.clear_next_token();
  request.set_reverse_order(true);
  request.set_max_results(1);
  v1::GetExecutionHistoryResponse last;
  ASSERT_TRUE(core_->GetExecutionHistory(request, &last).ok());
  EXPECT_EQ(last.events(0).id(), 5);
  request.set_next_token("garbage");
  EXPECT_EQ(core_->GetExecutionHistory(request, &last).code(), absl::StatusCode::kInvalidArgument);
}

// Each transition's events are one stored chunk; pages of any size, from
// either end, cut through chunks and still list every event once, in
// order. Events stored one per key (as older stores keep them) read the
// same.
TEST_F(ShardCoreTest, HistoryPagesCutThroughTransitionsChunksAndReadOldOnes) {
  auto machine = CreateMachine();
  std::string arn = Start(machine, "chunks", "{}");
  ASSERT_TRUE(SendSuccess(Poll().task_token()).ok());
  AwaitClosed(arn);
  v1::GetExecutionHistoryRequest all_request;
  all_request.set_execution_arn(arn);
  v1::GetExecutionHistoryResponse all;
  ASSERT_TRUE(core_->GetExecutionHistory(all_request, &all).ok());
  std::vector<int64_t> expected;
  for (const auto& e : all.events()) expected.push_back(e.id());
  ASSERT_GE(expected.size(), 8u);
  for (size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(expected[i], static_cast<int64_t>(i + 1));

  auto paged = [&](int page, bool reverse) {
    v1::GetExecutionHistoryRequest request;
    request.set_execution_arn(arn);
    request.set_max_results(page);
    request.set_reverse_order(reverse);
    std::vector<int64_t> ids;
    for (int pages = 0; pages < 100; ++pages) {
      v1::GetExecutionHistoryResponse response;
      EXPECT_TRUE(core_->GetExecutionHistory(request, &response).ok());
      EXPECT_LE(response.events_size(), page);
      for (const auto& e : response.events()) ids.push_back(e.id());
      if (response.next_token().empty()) break;
      request.set_next_token(response.next_token());
    }
    return ids;
  };
  std::vector<int64_t> reversed(expected.rbegin(), expected.rend());
  auto check_pages = [&] {
    for (int page = 1; page <= 5; ++page) {
      EXPECT_EQ(paged(page, false), expected) << "page " << page;
      EXPECT_EQ(paged(page, true), reversed) << "page " << page << ", reverse";
    }
  };
  check_pages();

  // The same events, one per key.
  WithStoreAlone([&](storage::Store& store) {
    const storage::FamilyId history = *store.Family(keys::kHistory);
    const uint32_t shard = config::ShardOf(arn, 16);
    storage::WriteBatch batch;
    int chunks = 0;
    ASSERT_TRUE(store
                    .Scan(history, keys::HistoryPrefix(shard, arn), "", false,
                          [&](std::string_view key, std::string_view value) {
                            ++chunks;
                            batch.Delete(history, key);
                            iv1::HistoryChunk chunk;
                            EXPECT_TRUE(chunk.ParseFromArray(value.data(),
                                                             static_cast<int>(value.size())));
                            for (const auto& event : chunk.events()) {
                              batch.Put(history, keys::HistoryKey(shard, arn, event.id()),
                                        event.SerializeAsString());
                            }
                            return true;
                          })
                    .ok());
    // One per transition: the start, the hand-over, the result.
    EXPECT_EQ(chunks, 3);
    ASSERT_TRUE(store.Write(batch, /*sync=*/true).ok());
  });
  ASSERT_NE(core_, nullptr);
  check_pages();
}

// A state's output is most often the next state's input: a chunk stores
// such a payload once, and reading the history puts it back in every event.
TEST_F(ShardCoreTest, HistoryStoresAPayloadOnceWhereAChunkRepeatsIt) {
  auto machine = CreateMachine("shaped", R"({"StartAt": "A", "States": {
    "A": {"Type": "Pass", "Next": "B"},
    "B": {"Type": "Pass", "Next": "Work"},
    "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
             "End": true}}})");
  const std::string payload = absl::StrCat(R"({"blob":")", std::string(2000, 'x'), R"("})");
  const std::string arn = Start(machine, "big", payload);
  auto check = [&](const v1::GetExecutionHistoryResponse& response) {
    int payloads = 0;
    for (const v1::HistoryEvent& event : response.events()) {
      SCOPED_TRACE(event.type());
      if (event.has_execution_started_event_details()) {
        EXPECT_EQ(event.execution_started_event_details().input(), payload);
        ++payloads;
      } else if (event.has_state_entered_event_details()) {
        EXPECT_EQ(event.state_entered_event_details().input(), payload);
        ++payloads;
      } else if (event.has_state_exited_event_details()) {
        EXPECT_EQ(event.state_exited_event_details().output(), payload);
        ++payloads;
      } else if (event.has_activity_scheduled_event_details()) {
        EXPECT_EQ(event.activity_scheduled_event_details().input(), payload);
        ++payloads;
      }
    }
    // Started; A, B entered and exited; Work entered; its task scheduled.
    EXPECT_EQ(payloads, 7);
  };
  const v1::GetExecutionHistoryResponse before = History(arn);
  check(before);

  // What the store holds: the start's chunk carries the payload once.
  size_t stored = 0;
  int shared = 0;
  std::string first_key;
  std::string first_value;
  WithStoreAlone([&](storage::Store& store) {
    const storage::FamilyId history_family = *store.Family(keys::kHistory);
    const uint32_t shard = config::ShardOf(arn, 16);
    ASSERT_TRUE(store
                    .Scan(history_family, keys::HistoryPrefix(shard, arn), "", false,
                          [&](std::string_view key, std::string_view value) {
                            stored += value.size();
                            iv1::HistoryChunk chunk;
                            EXPECT_TRUE(chunk.ParseFromArray(value.data(),
                                                             static_cast<int>(value.size())));
                            shared += chunk.shared_payloads_size();
                            if (first_key.empty()) {
                              first_key = std::string(key);
                              first_value = std::string(value);
                            }
                            return true;
                          })
                    .ok());
  });
  ASSERT_NE(core_, nullptr);
  EXPECT_EQ(shared, 6);
  EXPECT_LT(stored, 2 * payload.size()) << "7 copies of the payload, stored once";
  // A restart reads it back the same.
  ASSERT_TRUE(Open(16).ok());
  const v1::GetExecutionHistoryResponse reopened = History(arn);
  check(reopened);
  ASSERT_EQ(reopened.events_size(), before.events_size());
  for (int i = 0; i < before.events_size(); ++i) {
    EXPECT_EQ(reopened.events(i).SerializeAsString(), before.events(i).SerializeAsString());
  }

  // A reference that points nowhere is corrupt data, not an event without
  // its payload.
  iv1::HistoryChunk corrupt;
  ASSERT_TRUE(corrupt.ParseFromString(first_value));
  ASSERT_GT(corrupt.shared_payloads_size(), 0);
  corrupt.mutable_shared_payloads(0)->set_from(corrupt.events_size());
  WithStoreAlone([&](storage::Store& store) {
    storage::WriteBatch batch;
    batch.Put(*store.Family(keys::kHistory), first_key, corrupt.SerializeAsString());
    ASSERT_TRUE(store.Write(batch, /*sync=*/true).ok());
  });
  ASSERT_NE(core_, nullptr);
  v1::GetExecutionHistoryRequest request;
  request.set_execution_arn(arn);
  v1::GetExecutionHistoryResponse response;
  EXPECT_EQ(core_->GetExecutionHistory(request, &response).code(), absl::StatusCode::kDataLoss);
}

TEST_F(ShardCoreTest, DurableTimersFireAfterRestart) {
  v1::CreateStateMachineRequest create;
  create.set_name("waiter");
  create.set_definition(R"({"StartAt": "W", "States": {
    "W": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
    "Done": {"Type": "Pass", "Result": "woke", "End": true}}})");
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());
  std::string arn = Start(*machine, "sleepy", "{}");
  ASSERT_TRUE(core_->FireDueTimers().ok());
  EXPECT_EQ(Describe(arn).status(), "RUNNING");  // not due yet

  ASSERT_TRUE(Open(16).ok());  // the timer is on disk, not only in memory
  clock_.Advance(absl::Hours(2));  // late: fires at once on recovery
  ASSERT_TRUE(core_->FireDueTimers().ok());
  auto described = Describe(arn);
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_EQ(described.output(), R"("woke")");
  EXPECT_THAT(HistoryTypes(arn),
              ElementsAre("ExecutionStarted", "WaitStateEntered", "WaitStateExited",
                          "PassStateEntered", "PassStateExited", "ExecutionSucceeded"));
  // Firing again finds nothing to do.
  ASSERT_TRUE(core_->FireDueTimers().ok());
  EXPECT_EQ(HistoryTypes(arn).size(), 6u);
}

TEST_F(ShardCoreTest, ExpressExecutionsTimeOutAfterFiveMinutes) {
  v1::CreateStateMachineRequest create;
  create.set_name("slow-express");
  create.set_type("EXPRESS");
  create.set_definition(R"({"StartAt": "W", "States": {
    "W": {"Type": "Wait", "Seconds": 600, "End": true}}})");
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());
  std::string arn = Start(*machine, "long-wait", "{}");
  clock_.Advance(absl::Seconds(299));
  ASSERT_TRUE(core_->FireDueTimers().ok());
  EXPECT_EQ(Describe(arn).status(), "RUNNING");
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(core_->FireDueTimers().ok());
  auto described = Describe(arn);
  EXPECT_EQ(described.status(), "TIMED_OUT");
  EXPECT_EQ(described.error(), "States.Timeout");
  // No history for EXPRESS executions, as on AWS.
  v1::GetExecutionHistoryRequest history;
  history.set_execution_arn(arn);
  v1::GetExecutionHistoryResponse events;
  absl::Status refused = core_->GetExecutionHistory(history, &events);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(),
            "InvalidArn: Invalid Arn: 'Resource type not valid in this context: express'");
  EXPECT_EQ(events.events_size(), 0);
}

TEST_F(ShardCoreTest, EveryOpenIsANewOwnershipEpoch) {
  const uint64_t first = core_->owner_epoch();
  EXPECT_GE(first, 1u);
  ASSERT_TRUE(Open(16).ok());
  EXPECT_EQ(core_->owner_epoch(), first + 1);
}

TEST_F(ShardCoreTest, ShardCountIsFixed) {
  auto status = Open(32);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("16 logical shards"));
  EXPECT_TRUE(Open(16).ok());
}

constexpr char kOnePass[] = R"({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}})";

// Opens a core over `machine_definition`, starts one execution and
// returns its ARN; the tests below then reopen the folder (a restart) and
// move the clock past durable timers.
TEST_F(ShardCoreTest, ExecutionTimeoutIsADurableTimer) {
  v1::CreateStateMachineRequest create;
  create.set_name("bounded");
  create.set_definition(R"({"StartAt": "W", "TimeoutSeconds": 30, "States": {
    "W": {"Type": "Wait", "Seconds": 3600, "End": true}}})");
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());
  const std::string arn = Start(*machine, "bounded-1", "{}");
  ASSERT_TRUE(Open(16).ok());
  clock_.Advance(absl::Seconds(31));
  ASSERT_TRUE(core_->FireDueTimers().ok());
  EXPECT_EQ(Describe(arn).status(), "TIMED_OUT");
  EXPECT_EQ(HistoryTypes(arn).back(), "ExecutionTimedOut");
}

TEST_F(ShardCoreTest, TaskTimeoutFiresAfterRestartAndIsCaught) {
  CreateMachine();
  v1::CreateStateMachineRequest create;
  create.set_name("slow-task");
  create.set_definition(R"({"StartAt": "Work", "States": {
    "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
             "TimeoutSeconds": 60,
             "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "Gave up"}], "End": true},
    "Gave up": {"Type": "Pass", "Result": "timed out", "End": true}}})");
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());
  const std::string arn = Start(*machine, "slow-1", "{}");
  ASSERT_TRUE(Open(16).ok());
  clock_.Advance(absl::Seconds(61));
  ASSERT_TRUE(core_->FireDueTimers().ok());
  const auto described = Describe(arn);
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_EQ(described.output(), R"("timed out")");
  const auto types = HistoryTypes(arn);
  EXPECT_NE(std::find(types.begin(), types.end(), "ActivityTimedOut"), types.end());
}

TEST_F(ShardCoreTest, HeartbeatTimeoutFiresAfterRestartAndIsRetried) {
  CreateMachine();
  v1::CreateStateMachineRequest create;
  create.set_name("silent-worker");
  create.set_definition(R"({"StartAt": "Work", "States": {
    "Work": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
             "HeartbeatSeconds": 10,
             "Retry": [{"ErrorEquals": ["States.HeartbeatTimeout"], "IntervalSeconds": 1,
                        "MaxAttempts": 1}],
             "End": true}}})");
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());
  const std::string arn = Start(*machine, "silent-1", "{}");
  const v1::GetActivityTaskResponse first = Poll();
  ASSERT_FALSE(first.task_token().empty());
  AwaitHistory(arn, 5);  // ... ActivityStarted arms the heartbeat timer
  ASSERT_TRUE(Open(16).ok());
  clock_.Advance(absl::Seconds(11));
  ASSERT_TRUE(core_->FireDueTimers().ok());
  clock_.Advance(absl::Seconds(2));  // the retry interval
  ASSERT_TRUE(core_->FireDueTimers().ok());
  const v1::GetActivityTaskResponse second = Poll();
  ASSERT_FALSE(second.task_token().empty());
  EXPECT_NE(second.task_token(), first.task_token());
  ASSERT_TRUE(SendSuccess(second.task_token(), R"("done")").ok());
  EXPECT_EQ(Describe(arn).status(), "SUCCEEDED");
}

TEST_F(ShardCoreTest, TransitionsShareFsyncsAndAreCounted) {
  v1::CreateStateMachineRequest create;
  create.set_name("quick");
  create.set_definition(kOnePass);
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());
  const DurabilityStats before = core_->Stats();
  std::vector<std::thread> starters;
  for (int t = 0; t < 8; ++t) {
    starters.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) Start(*machine, absl::StrCat("q-", t, "-", i), "{}");
    });
  }
  for (std::thread& starter : starters) starter.join();
  const DurabilityStats after = core_->Stats();
  EXPECT_EQ(after.transitions - before.transitions, 200u);
  EXPECT_GE(after.synced_writes - before.synced_writes, 200u);
  // Every synced write is covered by some fsync; concurrent ones may share.
  EXPECT_GT(after.wal_syncs, before.wal_syncs);
  EXPECT_LE(after.wal_syncs - before.wal_syncs, after.synced_writes - before.synced_writes);
}

// Starts resolve the state machine's record from a cache: every update,
// publish, delete and re-create shows in the next resolution.
TEST_F(ShardCoreTest, ResolutionFollowsEveryChangeOfTheStateMachine) {
  ASSERT_TRUE(Open(16).ok());
  auto machine = CreateMachine("cached", kOnePass);
  iv1::ResolveStateMachineRequest resolve;
  resolve.set_arn(machine.state_machine_arn());
  auto first = core_->ResolveStateMachine(resolve);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->state_machine().revision_id(), machine.revision_id());

  v1::UpdateStateMachineRequest update;
  update.set_state_machine_arn(machine.state_machine_arn());
  update.set_definition(R"({"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}})");
  v1::UpdateStateMachineResponse updated;
  ASSERT_TRUE(core_->UpdateStateMachine(update, &updated).ok());
  auto second = core_->ResolveStateMachine(resolve);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->state_machine().revision_id(), updated.revision_id());
  EXPECT_NE(second->state_machine().revision_id(), machine.revision_id());
  EXPECT_EQ(second->state_machine().definition(), update.definition());

  v1::PublishStateMachineVersionRequest publish;
  publish.set_state_machine_arn(machine.state_machine_arn());
  v1::PublishStateMachineVersionResponse published;
  ASSERT_TRUE(core_->PublishStateMachineVersion(publish, &published).ok());
  auto third = core_->ResolveStateMachine(resolve);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->state_machine().last_version(), 1);

  v1::DeleteStateMachineRequest del;
  del.set_state_machine_arn(machine.state_machine_arn());
  ASSERT_TRUE(core_->DeleteStateMachine(del).ok());
  EXPECT_EQ(core_->ResolveStateMachine(resolve).status().code(), absl::StatusCode::kNotFound);

  auto again = CreateMachine("cached", kOnePass);
  auto fourth = core_->ResolveStateMachine(resolve);
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  EXPECT_EQ(fourth->state_machine().revision_id(), again.revision_id());
  EXPECT_EQ(fourth->state_machine().last_version(), 0);
}

// A caller that may not wait (a gRPC callback thread) gets through only
// EXPRESS executions that end within their start; any other start is
// declined with nothing done, and succeeds when made again by a caller
// that may wait.
TEST_F(ShardCoreTest, StartsThatWouldWaitAreDeclinedWithNothingDone) {
  ASSERT_TRUE(Open(16).ok());
  auto quick = CreateMachine("quick", kOnePass, "EXPRESS");
  auto standard = CreateMachine("durable", kOnePass);
  auto waits = CreateMachine(
      "waits", R"({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": true}}})",
      "EXPRESS");
  auto try_start = [&](const iv1::StateMachineRecord& machine, const std::string& name,
                       bool* declined) {
    iv1::StartExecutionShardRequest request;
    *request.mutable_state_machine() = machine;
    request.mutable_request()->set_name(name);
    request.mutable_request()->set_input("{}");
    v1::StartExecutionResponse response;
    *declined = false;
    EXPECT_TRUE(core_->StartExecution(request, &response, declined).ok());
    return response.execution_arn();
  };
  auto exists = [&](const std::string& arn) {
    v1::DescribeExecutionRequest request;
    request.set_execution_arn(arn);
    v1::DescribeExecutionResponse response;
    return core_->DescribeExecution(request, &response).ok();
  };
  auto execution_arn = [](const iv1::StateMachineRecord& machine, const std::string& name) {
    return absl::StrCat(
        absl::StrReplaceAll(machine.state_machine_arn(), {{":stateMachine:", ":execution:"}}),
        ":", name);
  };
  const std::string standard_arn = execution_arn(standard, "s-1");
  const DurabilityStats before = core_->Stats();
  bool declined = false;
  EXPECT_EQ(try_start(standard, "s-1", &declined), "");
  EXPECT_TRUE(declined);
  // The first start of a revision stores its definition: declined too.
  EXPECT_EQ(try_start(quick, "q-0", &declined), "");
  EXPECT_TRUE(declined);
  EXPECT_EQ(core_->Stats().transitions, before.transitions);
  EXPECT_FALSE(exists(standard_arn));
  // Made again where waiting is allowed, both start.
  EXPECT_EQ(Describe(Start(standard, "s-1", "{}")).status(), "SUCCEEDED");
  EXPECT_EQ(Describe(Start(quick, "q-0", "{}")).status(), "SUCCEEDED");

  // Now the revision's definition is known: an EXPRESS start that ends at
  // once goes through, with no synced write.
  const DurabilityStats cached = core_->Stats();
  const std::string quick_arn = try_start(quick, "q-1", &declined);
  EXPECT_FALSE(declined);
  ASSERT_FALSE(quick_arn.empty());
  EXPECT_EQ(Describe(quick_arn).status(), "SUCCEEDED");
  EXPECT_EQ(core_->Stats().synced_writes, cached.synced_writes);
  // Its name is taken as for any start.
  iv1::StartExecutionShardRequest again;
  *again.mutable_state_machine() = quick;
  again.mutable_request()->set_name("q-1");
  again.mutable_request()->set_input(R"({"other": true})");
  v1::StartExecutionResponse refused;
  bool ignored = false;
  EXPECT_EQ(core_->StartExecution(again, &refused, &ignored).code(),
            absl::StatusCode::kAlreadyExists);

  // An EXPRESS execution that waits needs a synced start record: declined,
  // nothing stored, then started by a caller that may wait.
  Start(waits, "w-0", "{}");
  const std::string waiting_arn = execution_arn(waits, "w-1");
  EXPECT_EQ(try_start(waits, "w-1", &declined), "");
  EXPECT_TRUE(declined);
  EXPECT_FALSE(exists(waiting_arn));
  EXPECT_EQ(Describe(Start(waits, "w-1", "{}")).status(), "RUNNING");

  // Synchronous starts: answered at once when the execution ends at once,
  // declined untouched otherwise.
  auto try_sync_start = [&](const iv1::StateMachineRecord& machine, const std::string& name,
                            bool* declined) {
    iv1::StartSyncExecutionShardRequest request;
    *request.mutable_start()->mutable_state_machine() = machine;
    request.mutable_start()->mutable_request()->set_name(name);
    request.mutable_start()->mutable_request()->set_input("{}");
    v1::DescribeExecutionResponse closed;
    *declined = false;
    EXPECT_TRUE(core_->StartSyncExecution(request, absl::Now() + absl::Seconds(5), nullptr,
                                          &closed, declined)
                    .ok());
    return closed;
  };
  EXPECT_EQ(try_sync_start(quick, "q-sync", &declined).status(), "SUCCEEDED");
  EXPECT_FALSE(declined);
  EXPECT_EQ(try_sync_start(waits, "w-sync", &declined).execution_arn(), "");
  EXPECT_TRUE(declined);
  EXPECT_FALSE(exists(execution_arn(waits, "w-sync")));
}

// A name the gateway generated is taken as unused: an asynchronous EXPRESS
// start that ends at once runs without looking for an execution of that
// name (a repeated start runs again, which AWS allows for asynchronous
// EXPRESS starts); a name the caller chose is still an idempotency key.
TEST_F(ShardCoreTest, GeneratedNamesOfExpressStartsAreNotLookedUp) {
  ASSERT_TRUE(Open(16).ok());
  auto quick = CreateMachine("quick", kOnePass, "EXPRESS");
  Start(quick, "warm", "{}");  // stores the revision's definition
  auto start = [&](const std::string& input, bool generated) {
    iv1::StartExecutionShardRequest request;
    *request.mutable_state_machine() = quick;
    request.mutable_request()->set_name("0b5e2c1e-6d0f-4c4e-9a57-1d2f3e4a5b6c");
    request.mutable_request()->set_input(input);
    request.set_name_generated(generated);
    v1::StartExecutionResponse response;
    bool declined = false;
    absl::Status status = core_->StartExecution(request, &response, &declined);
    EXPECT_FALSE(declined);
    return status;
  };
  const DurabilityStats before = core_->Stats();
  ASSERT_TRUE(start(R"({"run": 1})", true).ok());
  ASSERT_TRUE(start(R"({"run": 2})", true).ok());
  const DurabilityStats after = core_->Stats();
  EXPECT_EQ(after.closed - before.closed, 2u);
  EXPECT_EQ(after.synced_writes, before.synced_writes);
  // The later run is the one described.
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(absl::StrCat(
      absl::StrReplaceAll(quick.state_machine_arn(), {{":stateMachine:", ":execution:"}}), ":",
      "0b5e2c1e-6d0f-4c4e-9a57-1d2f3e4a5b6c"));
  v1::DescribeExecutionResponse described;
  ASSERT_TRUE(core_->DescribeExecution(describe, &described).ok());
  EXPECT_EQ(described.input(), R"({"run": 2})");
  // Chosen by the caller, the same name with another input is refused.
  EXPECT_EQ(start(R"({"run": 3})", false).code(), absl::StatusCode::kAlreadyExists);
}

// So is a STANDARD start's, answered by the group committer or not: the
// execution is stored and runs; the same name chosen by a caller is then
// refused, as any taken name is.
TEST_F(ShardCoreTest, GeneratedNamesOfStandardStartsAreNotLookedUp) {
  auto machine = CreateMachine();
  Start(machine, "warm", "{}");  // caches the revision's definition
  auto request = [&](const std::string& name, bool generated) {
    iv1::StartExecutionShardRequest start;
    *start.mutable_state_machine() = machine;
    start.mutable_request()->set_name(name);
    start.mutable_request()->set_input(R"({"n": 1})");
    start.set_name_generated(generated);
    return start;
  };
  absl::Notification answered;
  absl::Status answer;
  ShardCore::AnswerLater later = [&](absl::Status status) {
    answer = status;
    answered.Notify();
  };
  bool declined = false;
  v1::StartExecutionResponse later_started;
  ASSERT_TRUE(core_->StartExecution(request("5e1d6c2a-later", true), &later_started, &declined,
                                    &later)
                  .ok());
  ASSERT_FALSE(declined);
  ASSERT_FALSE(static_cast<bool>(later)) << "the committer answers";
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(answer.ok()) << answer;
  v1::StartExecutionResponse started;
  ASSERT_TRUE(core_->StartExecution(request("5e1d6c2a-waited", true), &started).ok());
  for (const std::string& arn : {later_started.execution_arn(), started.execution_arn()}) {
    EXPECT_EQ(Describe(arn).status(), "RUNNING") << arn;
    EXPECT_THAT(HistoryTypes(arn), ElementsAre("ExecutionStarted", "PassStateEntered",
                                               "PassStateExited", "TaskStateEntered",
                                               "ActivityScheduled"));
  }
  iv1::StartExecutionShardRequest chosen = request("5e1d6c2a-waited", false);
  chosen.mutable_request()->set_input(R"({"n": 2})");
  v1::StartExecutionResponse refused;
  EXPECT_EQ(core_->StartExecution(chosen, &refused).code(), absl::StatusCode::kAlreadyExists);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(SendSuccess(Poll().task_token()).ok());
  EXPECT_EQ(Describe(started.execution_arn()).status(), "SUCCEEDED");
}

// A STANDARD start made where no thread may wait (a gRPC callback thread)
// is not declined when its caller can take the answer later: the group
// committer writes it and answers once it is durable. A second start of
// the same name meanwhile waits for that write (or declines), and then
// gets the idempotent answer.
TEST_F(ShardCoreTest, StartsOnThreadsThatMayNotWaitAreAnsweredByTheGroupCommitter) {
  ASSERT_TRUE(Open(16).ok());
  auto standard = CreateMachine("durable", kOnePass);
  Start(standard, "warm", "{}");  // stores the revision's definition
  auto request = [&](const std::string& name) {
    iv1::StartExecutionShardRequest start;
    *start.mutable_state_machine() = standard;
    start.mutable_request()->set_name(name);
    start.mutable_request()->set_input(R"({"n": 1})");
    return start;
  };
  const DurabilityStats before = core_->Stats();
  absl::Mutex mu;
  int answered = 0;
  std::vector<absl::Status> statuses;
  std::vector<v1::StartExecutionResponse> responses(20);
  for (int i = 0; i < 20; ++i) {
    bool declined = false;
    ShardCore::AnswerLater later = [&](absl::Status status) {
      absl::MutexLock lock(&mu);
      ++answered;
      statuses.push_back(status);
    };
    absl::Status status = core_->StartExecution(request(absl::StrCat("later-", i)), &responses[i],
                                                &declined, &later);
    ASSERT_TRUE(status.ok()) << status;
    if (declined) {
      // Its shard is locked until an earlier start's write is done: the
      // start did nothing and kept the answer; made again where it may
      // wait, as the server does on its pool.
      ASSERT_GT(i, 0);
      ASSERT_TRUE(static_cast<bool>(later));
      ASSERT_TRUE(core_->StartExecution(request(absl::StrCat("later-", i)), &responses[i]).ok());
      std::move(later)(absl::OkStatus());
      continue;
    }
    ASSERT_FALSE(static_cast<bool>(later)) << "the answer was not taken";
    if (i == 0) {
      // The same name at once, from a thread that may wait: it waits for
      // the write and finds the execution, closed by now, so the name is
      // taken (had it not waited, it would have started a second one).
      iv1::StartExecutionShardRequest again = request("later-0");
      v1::StartExecutionResponse response;
      EXPECT_EQ(core_->StartExecution(again, &response).code(),
                absl::StatusCode::kAlreadyExists);
    }
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* n) { return *n == 20; }, &answered));
    for (const absl::Status& status : statuses) EXPECT_TRUE(status.ok()) << status;
  }
  const DurabilityStats after = core_->Stats();
  EXPECT_EQ(after.closed - before.closed, 20u);
  EXPECT_GT(after.synced_writes, before.synced_writes);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Describe(responses[i].execution_arn()).status(), "SUCCEEDED") << i;
    EXPECT_TRUE(responses[i].has_start_date());
  }
  // A caller offering nothing to answer later is declined as before.
  v1::StartExecutionResponse response;
  bool declined = false;
  EXPECT_TRUE(core_->StartExecution(request("plain"), &response, &declined).ok());
  EXPECT_TRUE(declined);
}

// A transition holds its execution's lock until its write is durable: a
// later transition of that execution waits (or declines), one of another
// execution of the same logical shard does not.
TEST_F(ShardCoreTest, ATransitionsFsyncHoldsUpItsExecutionOnly) {
  // Outlives the core, which is closed here: TearDown is too late.
  storage::testing::FailingWalEnv wal;
  absl::Cleanup close_first = [this] {
    peers_.set_core(nullptr);
    core_.reset();
  };
  store_env_ = wal.env();
  // One logical shard, so every execution is in it: a new data folder (the
  // count is fixed when one is made).
  peers_.set_core(nullptr);
  core_.reset();
  std::filesystem::remove_all(dir_);
  const absl::Status opened = Open(1);
  ASSERT_TRUE(opened.ok()) << opened;
  auto machine = CreateMachine();
  // Two executions whose locks differ (a lock is one of 4096 stripes).
  auto lock_of = [&](const std::string& name) {
    return config::StableHash(
               absl::StrCat("arn:aws:states:us-east-1:123456789012:execution:orders:", name)) %
           4096;
  };
  std::string other = "second";
  for (int i = 0; lock_of(other) == lock_of("first"); ++i) other = absl::StrCat("second-", i);
  const std::string first = Start(machine, "first", "{}");
  const std::string second = Start(machine, other, "{}");
  std::map<std::string, std::string> tokens;  // by execution
  for (int i = 0; i < 2; ++i) {
    v1::GetActivityTaskResponse task = Poll();
    ASSERT_FALSE(task.task_token().empty());
    auto content = tasktoken::TaskTokenCodec::Peek(task.task_token());
    ASSERT_TRUE(content.ok());
    tokens[content->execution_arn()] = task.task_token();
  }
  ASSERT_EQ(tokens.size(), 2u);

  wal.set_sync_delay_ms(800);
  absl::Mutex mu;
  std::vector<absl::Status> answers;
  auto answer_later = [&]() -> ShardCore::AnswerLater {
    return [&](absl::Status status) {
      absl::MutexLock lock(&mu);
      answers.push_back(std::move(status));
    };
  };
  auto succeed = [&](const std::string& execution, bool* declined) {
    v1::SendTaskSuccessRequest success;
    success.set_task_token(tokens[execution]);
    success.set_output("{}");
    ShardCore::AnswerLater later = answer_later();
    absl::Status status = core_->SendTaskSuccess(success, declined, &later);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(static_cast<bool>(later), *declined) << "the answer is taken unless declined";
  };
  bool declined = false;
  succeed(first, &declined);
  EXPECT_FALSE(declined);
  // The first one's write is in its fsync now. Its execution's next
  // transition declines (a caller that may wait waits)...
  v1::SendTaskHeartbeatRequest heartbeat;
  heartbeat.set_task_token(tokens[first]);
  bool heartbeat_declined = false;
  EXPECT_TRUE(core_->SendTaskHeartbeat(heartbeat, &heartbeat_declined).ok());
  EXPECT_TRUE(heartbeat_declined);
  // ...another execution's goes on.
  succeed(second, &declined);
  EXPECT_FALSE(declined) << "held up by another execution's fsync";
  {
    absl::MutexLock lock(&mu);
    auto both = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return answers.size() == 2; };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&both), absl::Seconds(20)));
    for (const absl::Status& status : answers) EXPECT_TRUE(status.ok()) << status;
  }
  wal.set_sync_delay_ms(0);
  EXPECT_EQ(Describe(first).status(), "SUCCEEDED");
  EXPECT_EQ(Describe(second).status(), "SUCCEEDED");
}

// Task results made where no thread may wait are answered by the group
// committer once durable (and the execution's shard stays locked until
// then, so a later result waits for it). Without an answer to take, a
// STANDARD one is declined having done nothing, and an EXPRESS one is
// written at once.
TEST_F(ShardCoreTest, TaskResultsOnThreadsThatMayNotWaitAreAnsweredOnceDurable) {
  ASSERT_TRUE(Open(16).ok());
  for (const std::string type : {"STANDARD", "EXPRESS"}) {
    SCOPED_TRACE(type);
    auto machine = CreateMachine(absl::StrCat("results-", type), kDefinition, type);
    const std::string arn = Start(machine, "r-1", "{}");
    v1::GetActivityTaskResponse task = Poll();
    ASSERT_FALSE(task.task_token().empty());
    v1::SendTaskSuccessRequest success;
    success.set_task_token(task.task_token());
    success.set_output(R"({"ok": true})");

    bool declined = false;
    if (type == "STANDARD") {
      EXPECT_TRUE(core_->SendTaskSuccess(success, &declined).ok());
      EXPECT_TRUE(declined);
      EXPECT_EQ(Describe(arn).status(), "RUNNING");
      declined = false;
    } else {
      // Written at once: a heartbeat, which the execution takes and goes on.
      v1::SendTaskHeartbeatRequest heartbeat;
      heartbeat.set_task_token(task.task_token());
      EXPECT_TRUE(core_->SendTaskHeartbeat(heartbeat, &declined).ok());
      EXPECT_FALSE(declined);
      EXPECT_EQ(Describe(arn).status(), "RUNNING");
    }
    absl::Notification answered;
    absl::Status answer;
    ShardCore::AnswerLater later = [&](absl::Status status) {
      answer = status;
      answered.Notify();
    };
    ASSERT_TRUE(core_->SendTaskSuccess(success, &declined, &later).ok());
    EXPECT_FALSE(declined);
    EXPECT_FALSE(static_cast<bool>(later)) << "the answer was not taken";
    // The same result again, from a thread that may wait: it waits for the
    // first one's write, and finds the task no longer awaited.
    EXPECT_EQ(core_->SendTaskSuccess(success).code(), absl::StatusCode::kFailedPrecondition);
    ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_TRUE(answer.ok()) << answer;
    v1::DescribeExecutionResponse described = Describe(arn);
    EXPECT_EQ(described.status(), "SUCCEEDED");
    EXPECT_THAT(described.output(), ::testing::HasSubstr(R"("result":{"ok":true})"));
  }
}

// Asynchronous EXPRESS starts that end within the start write nothing:
// the recent ones stay in memory, where DescribeExecution, StopExecution,
// ListExecutions and name checks find them, within a byte bound (oldest
// first out); a restart forgets them, as AWS keeps none.
// An EXPRESS execution that waited (for a task, here) is stored while it
// runs, so that it goes on after a crash; its closing transition deletes
// its keys, and from then on it is kept in memory only, as those that end
// within their start are.
TEST_F(ShardCoreTest, ClosedExpressExecutionsLeaveTheStoreForMemory) {
  ASSERT_TRUE(Open(16).ok());
  auto machine = CreateMachine("express-waits", kDefinition, "EXPRESS");
  const std::string left = Start(machine, "left", "{}");
  v1::GetActivityTaskResponse task = Poll();
  ASSERT_FALSE(task.task_token().empty());
  ASSERT_TRUE(SendSuccess(task.task_token(), R"({"charged": true})").ok());
  const std::string running = Start(machine, "running", "{}");

  v1::DescribeExecutionResponse described = Describe(left);
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_THAT(described.output(), ::testing::HasSubstr(R"("charged":true)"));
  // Its task is over, as a stored closed execution's would be.
  EXPECT_EQ(SendSuccess(task.task_token()).code(), absl::StatusCode::kFailedPrecondition);
  // Listed once, from memory; the running one from the store.
  iv1::ListShardRequest list;
  list.set_state_machine_arn(machine.state_machine_arn());
  list.set_limit(100);
  iv1::ListExecutionsShardResponse listed;
  ASSERT_TRUE(core_->ListExecutions(list, &listed).ok());
  std::map<std::string, std::string> statuses;
  for (const auto& execution : listed.executions()) {
    EXPECT_TRUE(statuses.emplace(execution.execution_arn(), execution.status()).second)
        << execution.execution_arn() << " listed twice";
  }
  EXPECT_THAT(statuses, ::testing::UnorderedElementsAre(::testing::Pair(left, "SUCCEEDED"),
                                                        ::testing::Pair(running, "RUNNING")));
  // Its name, chosen by the caller, stays taken.
  iv1::StartExecutionShardRequest again;
  *again.mutable_state_machine() = machine;
  again.mutable_request()->set_name("left");
  again.mutable_request()->set_input("{}");
  v1::StartExecutionResponse refused;
  EXPECT_EQ(core_->StartExecution(again, &refused).code(), absl::StatusCode::kAlreadyExists);

  // The store holds the running one only: no record, listing entry or
  // retention entry of the closed one (and so no purge to run later).
  auto keys_of = [](storage::Store& store, const char* family) {
    std::vector<std::string> found;
    EXPECT_TRUE(store
                    .Scan(*store.Family(family), "", "", false,
                          [&](std::string_view key, std::string_view) {
                            found.emplace_back(key);
                            return true;
                          })
                    .ok());
    return found;
  };
  auto names = [](const std::vector<std::string>& keys, const std::string& arn) {
    return std::count_if(keys.begin(), keys.end(), [&](const std::string& key) {
      return absl::StrContains(key, arn);
    });
  };
  WithStoreAlone([&](storage::Store& store) {
    const std::vector<std::string> records = keys_of(store, keys::kExecutions);
    EXPECT_EQ(names(records, left), 0);
    EXPECT_EQ(names(records, running), 1);
    const std::vector<std::string> listing = keys_of(store, keys::kVisibility);
    EXPECT_EQ(names(listing, left), 0);
    EXPECT_EQ(names(listing, running), 1);
    EXPECT_EQ(names(keys_of(store, keys::kRetention), left), 0);
    EXPECT_EQ(names(keys_of(store, keys::kTimers), left), 0);
  });
  // A restart forgets the closed one; the running one waits on.
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(left);
  v1::DescribeExecutionResponse gone;
  EXPECT_EQ(core_->DescribeExecution(describe, &gone).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Describe(running).status(), "RUNNING");
}

// A caller waiting for an EXPRESS execution's close gets it from the
// transition that closed it, also when the memory keeps no closed ones.
TEST_F(ShardCoreTest, AwaitedExpressExecutionsAreAnsweredFromTheirClose) {
  recent_express_bytes_ = 0;
  ASSERT_TRUE(Open(16).ok());
  auto machine = CreateMachine("express-awaited", kDefinition, "EXPRESS");
  const std::string arn = Start(machine, "awaited", "{}");
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(arn);
  describe.set_included_data("METADATA_ONLY");
  absl::Status awaited;
  v1::DescribeExecutionResponse closed;
  std::thread waiter([&] {
    awaited = core_->AwaitExecutionClosed(describe, absl::Now() + absl::Seconds(20), nullptr,
                                          &closed);
  });
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (core_->AwaitedExecutions() == 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  v1::GetActivityTaskResponse task = Poll();
  ASSERT_FALSE(task.task_token().empty());
  ASSERT_TRUE(SendSuccess(task.task_token()).ok());
  waiter.join();
  ASSERT_TRUE(awaited.ok()) << awaited;
  EXPECT_EQ(closed.status(), "SUCCEEDED");
  EXPECT_EQ(closed.execution_arn(), arn);
  EXPECT_TRUE(closed.output().empty());  // METADATA_ONLY
  // Nothing keeps it afterwards.
  v1::DescribeExecutionResponse gone;
  EXPECT_EQ(core_->DescribeExecution(describe, &gone).code(), absl::StatusCode::kNotFound);
}

TEST_F(ShardCoreTest, RecentClosedExpressExecutionsStayInMemoryOnly) {
  ASSERT_TRUE(Open(16).ok());
  auto machine = CreateMachine("bulk", kOnePass, "EXPRESS");
  const DurabilityStats before = core_->Stats();
  std::vector<std::string> arns;
  for (int i = 0; i < 300; ++i) arns.push_back(Start(machine, absl::StrCat("b-", i), "{}"));
  const DurabilityStats after = core_->Stats();
  EXPECT_EQ(after.transitions - before.transitions, 300u);
  EXPECT_EQ(after.closed - before.closed, 300u);
  EXPECT_EQ(after.synced_writes - before.synced_writes, 0u);
  for (const std::string& arn : arns) EXPECT_EQ(Describe(arn).status(), "SUCCEEDED") << arn;
  v1::GetExecutionHistoryRequest history;
  history.set_execution_arn(arns.back());
  v1::GetExecutionHistoryResponse events;
  absl::Status no_history = core_->GetExecutionHistory(history, &events);
  EXPECT_THAT(std::string(no_history.message()), ::testing::StartsWith("InvalidArn"));
  v1::StopExecutionRequest stop;
  stop.set_execution_arn(arns.back());
  v1::StopExecutionResponse stopped;
  EXPECT_TRUE(core_->StopExecution(stop, &stopped).ok());
  EXPECT_TRUE(stopped.has_stop_date());
  // A name stays taken while it is remembered.
  iv1::StartExecutionShardRequest again;
  *again.mutable_state_machine() = machine;
  again.mutable_request()->set_name("b-299");
  again.mutable_request()->set_input("{}");
  v1::StartExecutionResponse refused;
  EXPECT_EQ(core_->StartExecution(again, &refused).code(), absl::StatusCode::kAlreadyExists);

  // Listed at once, newest first, in pages that continue where they ended.
  iv1::ListShardRequest list;
  list.set_state_machine_arn(machine.state_machine_arn());
  list.set_limit(1000);
  iv1::ListExecutionsShardResponse listed;
  ASSERT_TRUE(core_->ListExecutions(list, &listed).ok());
  EXPECT_EQ(listed.executions_size(), 300);
  list.set_limit(120);
  std::set<std::string> paged;
  while (true) {
    iv1::ListExecutionsShardResponse page;
    ASSERT_TRUE(core_->ListExecutions(list, &page).ok());
    for (const auto& record : page.executions()) paged.insert(record.execution_arn());
    if (page.executions_size() < 120) break;
    const auto& last = page.executions(page.executions_size() - 1);
    list.set_after_key(keys::VisibilitySortKey(
        absl::FromUnixSeconds(last.start_date().seconds()) +
            absl::Nanoseconds(last.start_date().nanos()),
        last.execution_arn()));
  }
  EXPECT_EQ(paged.size(), 300u);

  // Nothing was stored: a restart forgets them.
  ASSERT_TRUE(Open(16).ok());
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(arns[0]);
  v1::DescribeExecutionResponse gone;
  EXPECT_EQ(core_->DescribeExecution(describe, &gone).code(), absl::StatusCode::kNotFound);
  // ...and their names: one can be used again.
  again.mutable_request()->set_name("b-0");
  EXPECT_TRUE(core_->StartExecution(again, &refused).ok());

  // The byte bound keeps the newest.
  recent_express_bytes_ = 16 << 10;
  ASSERT_TRUE(Open(16).ok());
  machine = CreateMachine("bulk-2", kOnePass, "EXPRESS");
  arns.clear();
  for (int i = 0; i < 300; ++i) arns.push_back(Start(machine, absl::StrCat("c-", i), "{}"));
  describe.set_execution_arn(arns[0]);
  EXPECT_EQ(core_->DescribeExecution(describe, &gone).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Describe(arns.back()).status(), "SUCCEEDED");
  list.clear_after_key();
  list.set_state_machine_arn(machine.state_machine_arn());
  list.set_limit(1000);
  listed.Clear();
  ASSERT_TRUE(core_->ListExecutions(list, &listed).ok());
  EXPECT_GT(listed.executions_size(), 0);
  EXPECT_LT(listed.executions_size(), 300);
  // A name outlives its record: starting c-0 again is still refused (an
  // event redelivered to its target starts nothing twice).
  *again.mutable_state_machine() = machine;
  again.mutable_request()->set_name("c-0");
  EXPECT_EQ(core_->StartExecution(again, &refused).code(), absl::StatusCode::kAlreadyExists);
  again.mutable_request()->set_name("c-300");
  EXPECT_TRUE(core_->StartExecution(again, &refused).ok());

  // A name the cluster generated goes with its record (a caller that did
  // not choose it does not repeat it; AWS refuses no repeated EXPRESS name):
  // described while the record is kept, free once the byte bound dropped it.
  auto start_generated = [&](const std::string& name) {
    iv1::StartExecutionShardRequest request;
    *request.mutable_state_machine() = machine;
    request.mutable_request()->set_name(name);
    request.mutable_request()->set_input("{}");
    request.set_name_generated(true);
    v1::StartExecutionResponse response;
    EXPECT_TRUE(core_->StartExecution(request, &response).ok()) << name;
    return response.execution_arn();
  };
  const std::string first_generated = start_generated("g-0");
  EXPECT_EQ(Describe(first_generated).status(), "SUCCEEDED");
  for (int i = 1; i < 300; ++i) start_generated(absl::StrCat("g-", i));
  describe.set_execution_arn(first_generated);
  EXPECT_EQ(core_->DescribeExecution(describe, &gone).code(), absl::StatusCode::kNotFound);
  again.mutable_request()->set_name("g-0");
  EXPECT_TRUE(core_->StartExecution(again, &refused).ok());
  // A chosen name is still refused after its record went (c-1 above).
  again.mutable_request()->set_name("c-1");
  EXPECT_EQ(core_->StartExecution(again, &refused).code(), absl::StatusCode::kAlreadyExists);
}

// EXPRESS transitions skip the fsync: a synchronous start that ends within
// the start stores nothing but its definition, an asynchronous one syncs
// only its start, unless it ended within the start; neither publishes the
// STANDARD-only status-change events; closed ones go after the short
// EXPRESS retention.
TEST_F(ShardCoreTest, ExpressExecutionsRunWithoutFsyncsAndLeaveSoon) {
  status_events_topic_ = "stepflow.events.default";
  ASSERT_TRUE(Open(16).ok());
  v1::CreateStateMachineRequest create;
  create.set_name("fast");
  create.set_type("EXPRESS");
  create.set_definition(R"({"StartAt": "A", "States": {
    "A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": true}}})");
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());

  DurabilityStats before = core_->Stats();
  iv1::StartSyncExecutionShardRequest sync_start;
  *sync_start.mutable_start()->mutable_state_machine() = *machine;
  sync_start.mutable_start()->mutable_request()->set_name("sync-1");
  sync_start.mutable_start()->mutable_request()->set_input(R"({"n": 1})");
  v1::DescribeExecutionResponse closed;
  ASSERT_TRUE(core_->StartSyncExecution(sync_start, absl::Now() + absl::Seconds(10), nullptr,
                                        &closed)
                  .ok());
  EXPECT_EQ(closed.status(), "SUCCEEDED");
  EXPECT_EQ(closed.output(), R"({"n":1})");
  DurabilityStats after = core_->Stats();
  EXPECT_EQ(after.transitions - before.transitions, 1u);
  EXPECT_EQ(after.synced_writes - before.synced_writes, 0u);

  // Nothing is kept of them (AWS describes no EXPRESS execution), and a
  // name is no idempotency key for EXPRESS.
  for (const char* input : {R"({"n": 2})", R"({"n": 3})"}) {
    sync_start.mutable_start()->mutable_request()->set_name("sync-2");
    sync_start.mutable_start()->mutable_request()->set_input(input);
    sync_start.set_included_data("METADATA_ONLY");
    v1::DescribeExecutionResponse quick;
    ASSERT_TRUE(core_->StartSyncExecution(sync_start, absl::Now() + absl::Seconds(10), nullptr,
                                          &quick)
                    .ok());
    EXPECT_EQ(quick.status(), "SUCCEEDED");
    EXPECT_TRUE(quick.output().empty());
    EXPECT_FALSE(quick.output_details().included());
    EXPECT_TRUE(quick.has_stop_date());
    EXPECT_EQ(quick.name(), "sync-2");
  }
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(
      absl::StrReplaceAll(closed.execution_arn(), {{"sync-1", "sync-2"}}));
  v1::DescribeExecutionResponse unknown;
  EXPECT_EQ(core_->DescribeExecution(describe, &unknown).code(), absl::StatusCode::kNotFound);

  // An asynchronous start that ended at once has run: nothing to redo
  // after a crash, so no fsync; it is described until the retention ends.
  before = core_->Stats();
  const std::string async_arn = Start(*machine, "async-1", "{}");
  after = core_->Stats();
  EXPECT_EQ(after.synced_writes - before.synced_writes, 0u);
  EXPECT_EQ(Describe(async_arn).status(), "SUCCEEDED");
  // One that goes on must be run again after a crash: its start is synced.
  auto waiting = CreateMachine("fast-wait", R"({"StartAt": "W", "States": {
    "W": {"Type": "Wait", "Seconds": 1, "End": true}}})", "EXPRESS");
  before = core_->Stats();
  const std::string waiting_arn = Start(waiting, "async-2", "{}");
  after = core_->Stats();
  EXPECT_EQ(after.synced_writes - before.synced_writes, 1u);
  EXPECT_EQ(Describe(waiting_arn).status(), "RUNNING");

  // A STANDARD machine does publish (one event: it starts and succeeds in
  // one transition), and only its event comes.
  auto standard = CreateMachine("standard-one", kOnePass);
  const std::string standard_arn = Start(standard, "std-1", "{}");
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (peers_.Published().empty() && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  absl::SleepFor(absl::Milliseconds(200));
  std::vector<iv1::PublishEvent> published = peers_.Published();
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].key(), standard_arn);

  // Ten minutes after closing, the EXPRESS ones are gone; the STANDARD one stays.
  clock_.Advance(absl::Minutes(11));
  ASSERT_TRUE(core_->PurgeExpiredExecutions().ok());
  describe.set_execution_arn(async_arn);
  v1::DescribeExecutionResponse gone;
  EXPECT_EQ(core_->DescribeExecution(describe, &gone).code(), absl::StatusCode::kNotFound);
  describe.set_execution_arn(closed.execution_arn());
  EXPECT_EQ(core_->DescribeExecution(describe, &gone).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Describe(standard_arn).status(), "SUCCEEDED");
}

// A clock that parks one thread's calls while closed, to hold a transition
// in flight (the core's own threads read it too).
class GateClock : public clock::Clock {
 public:
  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    if (closed_ && std::this_thread::get_id() == parked_thread_) {
      ++parked_;
      mu_.Await(absl::Condition(+[](bool* closed) { return !*closed; }, &closed_));
      --parked_;
    }
    return absl::FromUnixSeconds(1764000000);
  }
  // Parks the calling thread's later calls.
  void CloseForThisThread() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    parked_thread_ = std::this_thread::get_id();
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    closed_ = false;
  }
  void AwaitParked() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(+[](int* parked) { return *parked > 0; }, &parked_));
  }

 private:
  absl::Mutex mu_;
  bool closed_ = false;
  std::thread::id parked_thread_;
  int parked_ = 0;
};

TEST(ShardCoreAdmissionTest, StartsAreRefusedAtOnceWhileTransitionsAreInFlight) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("shard_core_admission_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  GateClock clock;
  LoopbackPeers peers;
  ShardCoreOptions options;
  options.data_dir = dir.string();
  options.shard_count = 16;
  options.clock = &clock;
  options.max_inflight_transitions = 1;
  auto core = ShardCore::Open(options, &peers);
  ASSERT_TRUE(core.ok()) << core.status();
  v1::CreateStateMachineRequest create;
  create.set_name("quick");
  create.set_definition(kOnePass);
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE((*core)->CreateStateMachine(create, &created).ok());
  auto machine = (*core)->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());

  auto start = [&](const std::string& name) {
    iv1::StartExecutionShardRequest request;
    *request.mutable_state_machine() = *machine;
    request.mutable_request()->set_name(name);
    request.mutable_request()->set_input("{}");
    v1::StartExecutionResponse response;
    return (*core)->StartExecution(request, &response);
  };
  absl::Status held_status;
  std::thread held([&] {
    clock.CloseForThisThread();
    held_status = start("held");
  });
  clock.AwaitParked();
  const absl::Time asked = absl::Now();
  absl::Status refused = start("refused");
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_LT(absl::Now() - asked, absl::Seconds(1));
  EXPECT_EQ((*core)->Stats().rejected, 1u);
  clock.Open();
  held.join();
  EXPECT_TRUE(held_status.ok()) << held_status;
  EXPECT_TRUE(start("after").ok());
  peers.set_core(nullptr);
  core->reset();
  std::filesystem::remove_all(dir);
}

TEST(ShardCoreDataDirTest, UnusableOrCorruptFoldersAreReportedNotIgnored) {
  const std::filesystem::path root =
      std::filesystem::temp_directory_path() / ("shard_core_datadir_" + std::to_string(getpid()));
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  clock::FakeClock clock(absl::FromUnixSeconds(1764000000));
  LoopbackPeers peers;
  ShardCoreOptions options;
  options.shard_count = 16;
  options.clock = &clock;

  // A path that cannot be a folder (runs as root too, unlike permissions).
  { std::ofstream(root / "plain-file") << "not a folder"; }
  options.data_dir = (root / "plain-file" / "data").string();
  auto unusable = ShardCore::Open(options, &peers);
  ASSERT_FALSE(unusable.ok());
  EXPECT_THAT(std::string(unusable.status().message()),
              ::testing::HasSubstr(options.data_dir));

  // A database whose manifest is damaged refuses to open.
  options.data_dir = (root / "data").string();
  {
    auto core = ShardCore::Open(options, &peers);
    ASSERT_TRUE(core.ok()) << core.status();
  }
  int damaged = 0;
  for (const auto& entry : std::filesystem::directory_iterator(options.data_dir)) {
    if (entry.path().filename().string().rfind("MANIFEST-", 0) == 0) {
      std::ofstream(entry.path(), std::ios::binary | std::ios::trunc) << "garbage garbage";
      ++damaged;
    }
  }
  ASSERT_GT(damaged, 0);
  auto corrupt = ShardCore::Open(options, &peers);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_THAT(std::string(corrupt.status().message()), ::testing::HasSubstr(options.data_dir));
  std::filesystem::remove_all(root);
}

constexpr char kSucceedOnly[] = R"({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "v2", "End": true}}})";

TEST_F(ShardCoreTest, UpdateMakesRevisionsAndExecutionsKeepTheirs) {
  auto machine = CreateMachine();
  std::string arn = Start(machine, "old-revision", "{}");
  v1::UpdateStateMachineRequest update;
  update.set_state_machine_arn(machine.state_machine_arn());
  update.set_definition(kSucceedOnly);
  v1::UpdateStateMachineResponse updated;
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(core_->UpdateStateMachine(update, &updated).ok());
  EXPECT_NE(updated.revision_id(), machine.revision_id());
  EXPECT_EQ(updated.update_date().seconds(), absl::ToUnixSeconds(clock_.Now()));
  // The same content again is no new revision.
  v1::UpdateStateMachineResponse again;
  ASSERT_TRUE(core_->UpdateStateMachine(update, &again).ok());
  EXPECT_EQ(again.revision_id(), updated.revision_id());

  v1::DescribeStateMachineForExecutionRequest for_execution;
  for_execution.set_execution_arn(arn);
  v1::DescribeStateMachineForExecutionResponse described;
  ASSERT_TRUE(core_->DescribeStateMachineForExecution(for_execution, &described).ok());
  EXPECT_EQ(described.definition(), kDefinition);
  EXPECT_EQ(described.revision_id(), machine.revision_id());

  auto current = core_->GetStateMachineRecord(machine.state_machine_arn());
  ASSERT_TRUE(current.ok());
  std::string fresh = Start(*current, "new-revision", "{}");
  EXPECT_EQ(Describe(fresh).status(), "SUCCEEDED");
  EXPECT_EQ(Describe(arn).status(), "RUNNING");  // still waits in its Task state

  update.set_state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:nope");
  EXPECT_EQ(core_->UpdateStateMachine(update, &again).code(), absl::StatusCode::kNotFound);
}

TEST_F(ShardCoreTest, VersionsArePublishedOncePerRevision) {
  auto machine = CreateMachine();
  const std::string& sm = machine.state_machine_arn();
  v1::PublishStateMachineVersionRequest publish;
  publish.set_state_machine_arn(sm);
  publish.set_description("first");
  v1::PublishStateMachineVersionResponse v1_published;
  ASSERT_TRUE(core_->PublishStateMachineVersion(publish, &v1_published).ok());
  EXPECT_EQ(v1_published.state_machine_version_arn(), sm + ":1");
  v1::PublishStateMachineVersionResponse same;
  ASSERT_TRUE(core_->PublishStateMachineVersion(publish, &same).ok());
  EXPECT_EQ(same.state_machine_version_arn(), sm + ":1");

  publish.set_revision_id("not-the-current-one");
  auto conflict = core_->PublishStateMachineVersion(publish, &same);
  EXPECT_EQ(conflict.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(conflict.message()), ::testing::StartsWith("ConflictException"));

  v1::UpdateStateMachineRequest update;
  update.set_state_machine_arn(sm);
  update.set_definition(kSucceedOnly);
  update.set_publish(true);
  update.set_version_description("second");
  v1::UpdateStateMachineResponse updated;
  ASSERT_TRUE(core_->UpdateStateMachine(update, &updated).ok());
  EXPECT_EQ(updated.state_machine_version_arn(), sm + ":2");

  v1::ListStateMachineVersionsRequest list;
  list.set_state_machine_arn(sm);
  list.set_max_results(1);
  std::vector<std::string> listed;
  do {
    v1::ListStateMachineVersionsResponse page;
    ASSERT_TRUE(core_->ListStateMachineVersions(list, &page).ok());
    for (const auto& item : page.state_machine_versions()) {
      listed.push_back(item.state_machine_version_arn());
    }
    list.set_next_token(page.next_token());
  } while (!list.next_token().empty());
  EXPECT_THAT(listed, ElementsAre(sm + ":2", sm + ":1"));  // newest first

  v1::DescribeStateMachineRequest describe;
  describe.set_state_machine_arn(sm + ":1");
  v1::DescribeStateMachineResponse first;
  ASSERT_TRUE(core_->DescribeStateMachine(describe, &first).ok());
  EXPECT_EQ(first.state_machine_arn(), sm + ":1");
  EXPECT_EQ(first.definition(), kDefinition);
  EXPECT_EQ(first.description(), "first");
  EXPECT_EQ(first.revision_id(), machine.revision_id());

  // Version numbers are never reused.
  v1::DeleteStateMachineVersionRequest del;
  del.set_state_machine_version_arn(sm + ":2");
  ASSERT_TRUE(core_->DeleteStateMachineVersion(del).ok());
  update.set_definition(R"({"StartAt": "B", "States": {"B": {"Type": "Succeed"}}})");
  update.clear_version_description();
  ASSERT_TRUE(core_->UpdateStateMachine(update, &updated).ok());
  EXPECT_EQ(updated.state_machine_version_arn(), sm + ":3");
}

TEST_F(ShardCoreTest, AliasesRouteByWeightAndProtectTheirVersions) {
  auto machine = CreateMachine();
  const std::string& sm = machine.state_machine_arn();
  v1::PublishStateMachineVersionRequest publish;
  publish.set_state_machine_arn(sm);
  v1::PublishStateMachineVersionResponse published;
  ASSERT_TRUE(core_->PublishStateMachineVersion(publish, &published).ok());
  v1::UpdateStateMachineRequest update;
  update.set_state_machine_arn(sm);
  update.set_definition(kSucceedOnly);
  update.set_publish(true);
  v1::UpdateStateMachineResponse updated;
  ASSERT_TRUE(core_->UpdateStateMachine(update, &updated).ok());

  v1::CreateStateMachineAliasRequest create;
  create.set_name("live");
  auto* first = create.add_routing_configuration();
  first->set_state_machine_version_arn(sm + ":1");
  first->set_weight(70);
  auto* second = create.add_routing_configuration();
  second->set_state_machine_version_arn(sm + ":2");
  second->set_weight(30);
  v1::CreateStateMachineAliasResponse created;
  ASSERT_TRUE(core_->CreateStateMachineAlias(create, &created).ok());
  EXPECT_EQ(created.state_machine_alias_arn(), sm + ":live");
  ASSERT_TRUE(core_->CreateStateMachineAlias(create, &created).ok());  // identical: idempotent
  create.set_description("other");
  EXPECT_EQ(core_->CreateStateMachineAlias(create, &created).code(),
            absl::StatusCode::kAlreadyExists);
  create.clear_description();
  create.mutable_routing_configuration(1)->set_state_machine_version_arn(sm + ":9");
  create.set_name("broken");
  EXPECT_EQ(core_->CreateStateMachineAlias(create, &created).code(), absl::StatusCode::kNotFound);

  std::map<std::string, int> picks;
  for (int i = 0; i < 200; ++i) {
    iv1::ResolveStateMachineRequest resolve;
    resolve.set_arn(sm + ":live");
    resolve.set_routing_key(absl::StrCat("execution-", i));
    auto resolved = core_->ResolveStateMachine(resolve);
    ASSERT_TRUE(resolved.ok()) << resolved.status();
    EXPECT_EQ(resolved->alias_arn(), sm + ":live");
    ++picks[resolved->version_arn()];
    // The same key picks the same version.
    auto again = core_->ResolveStateMachine(resolve);
    EXPECT_EQ(again->version_arn(), resolved->version_arn());
  }
  EXPECT_GT(picks[sm + ":1"], 110);
  EXPECT_GT(picks[sm + ":2"], 30);

  v1::DeleteStateMachineVersionRequest del;
  del.set_state_machine_version_arn(sm + ":2");
  auto refused = core_->DeleteStateMachineVersion(del);
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr(sm + ":live"));

  v1::UpdateStateMachineAliasRequest move;
  move.set_state_machine_alias_arn(sm + ":live");
  auto* only = move.add_routing_configuration();
  only->set_state_machine_version_arn(sm + ":1");
  only->set_weight(100);
  v1::UpdateStateMachineAliasResponse moved;
  ASSERT_TRUE(core_->UpdateStateMachineAlias(move, &moved).ok());
  ASSERT_TRUE(core_->DeleteStateMachineVersion(del).ok());

  v1::ListStateMachineAliasesRequest list;
  list.set_state_machine_arn(sm);
  v1::ListStateMachineAliasesResponse listed;
  ASSERT_TRUE(core_->ListStateMachineAliases(list, &listed).ok());
  ASSERT_EQ(listed.state_machine_aliases_size(), 1);
  v1::DeleteStateMachineAliasRequest remove;
  remove.set_state_machine_alias_arn(sm + ":live");
  ASSERT_TRUE(core_->DeleteStateMachineAlias(remove).ok());
  v1::DescribeStateMachineAliasRequest describe;
  describe.set_state_machine_alias_arn(sm + ":live");
  v1::DescribeStateMachineAliasResponse described;
  EXPECT_EQ(core_->DescribeStateMachineAlias(describe, &described).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ShardCoreTest, ClosedExecutionsArePurgedAfterRetention) {
  ShardCoreOptions options;
  peers_.set_core(nullptr);
  core_.reset();
  options.data_dir = dir_.string();
  options.shard_count = 16;
  options.clock = &clock_;
  options.execution_retention = absl::Hours(24);
  auto core = ShardCore::Open(options, &peers_);
  ASSERT_TRUE(core.ok());
  core_ = std::move(*core);

  v1::CreateStateMachineRequest create;
  create.set_name("quick");
  create.set_definition(kSucceedOnly);
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());
  std::string done = Start(*machine, "done", "{}");
  auto waiting_machine = CreateMachine();
  std::string running = Start(waiting_machine, "running", "{}");
  ASSERT_EQ(Describe(done).status(), "SUCCEEDED");

  clock_.Advance(absl::Hours(23));
  ASSERT_TRUE(core_->PurgeExpiredExecutions().ok());
  EXPECT_EQ(Describe(done).status(), "SUCCEEDED");
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(core_->PurgeExpiredExecutions().ok());
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(done);
  v1::DescribeExecutionResponse gone;
  auto status = core_->DescribeExecution(describe, &gone);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), ::testing::StartsWith("ExecutionDoesNotExist"));
  v1::GetExecutionHistoryRequest history;
  history.set_execution_arn(done);
  v1::GetExecutionHistoryResponse events;
  EXPECT_EQ(core_->GetExecutionHistory(history, &events).code(), absl::StatusCode::kNotFound);
  iv1::ListShardRequest list;
  list.set_state_machine_arn(created.state_machine_arn());
  iv1::ListExecutionsShardResponse listed;
  ASSERT_TRUE(core_->ListExecutions(list, &listed).ok());
  EXPECT_EQ(listed.executions_size(), 0);
  // Running executions are kept, and the name is free again.
  EXPECT_EQ(Describe(running).status(), "RUNNING");
  EXPECT_EQ(Start(*machine, "done", "{}"), done);
}

// A Choice without a Default fails with States.NoChoiceMatched until the
// execution was redriven once.
constexpr char kGatedParallel[] = R"({"StartAt": "Both", "States": {
  "Both": {"Type": "Parallel", "End": true, "Branches": [
    {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": true}}},
    {"StartAt": "Gate", "States": {
      "Gate": {"Type": "Choice", "Choices": [
        {"Variable": "$$.Execution.RedriveCount", "NumericGreaterThan": 0, "Next": "B"}]},
      "B": {"Type": "Pass", "Parameters": {"redrives.$": "$$.Execution.RedriveCount"},
            "End": true}}}]}}})";

TEST_F(ShardCoreTest, RedriveRerunsOnlyWhatFailed) {
  v1::CreateStateMachineRequest create;
  create.set_name("gated");
  create.set_definition(kGatedParallel);
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());
  std::string arn = Start(*machine, "gated-1", "{}");
  // The failing branch reaches the Parallel when its timer fires.
  AwaitClosed(arn);
  auto failed = Describe(arn);
  ASSERT_EQ(failed.status(), "FAILED");
  EXPECT_EQ(failed.error(), "States.NoChoiceMatched");
  EXPECT_EQ(failed.redrive_status(), "REDRIVABLE");
  EXPECT_EQ(failed.redrive_count(), 0);

  v1::RedriveExecutionRequest redrive;
  redrive.set_execution_arn(arn);
  redrive.set_client_token("token-1");
  v1::RedriveExecutionResponse redriven;
  ASSERT_TRUE(core_->RedriveExecution(redrive, &redriven).ok());
  auto described = Describe(arn);
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_EQ(described.output(), R"(["a",{"redrives":1}])");
  EXPECT_EQ(described.redrive_count(), 1);
  EXPECT_EQ(described.redrive_date().seconds(), redriven.redrive_date().seconds());
  EXPECT_EQ(described.redrive_status(), "NOT_REDRIVABLE");
  EXPECT_EQ(described.redrive_status_reason(), "Execution is SUCCEEDED and cannot be redriven");

  std::vector<std::string> types = HistoryTypes(arn);
  EXPECT_EQ(std::count(types.begin(), types.end(), "ExecutionRedriven"), 1);
  // Branch A succeeded on the first run and ran once; the gate ran twice.
  EXPECT_EQ(std::count(types.begin(), types.end(), "PassStateEntered"), 2);
  EXPECT_EQ(std::count(types.begin(), types.end(), "ChoiceStateEntered"), 2);
  EXPECT_EQ(types.back(), "ExecutionSucceeded");

  // The same client token again answers the same; a new one is refused.
  v1::RedriveExecutionResponse again;
  ASSERT_TRUE(core_->RedriveExecution(redrive, &again).ok());
  EXPECT_EQ(again.redrive_date().seconds(), redriven.redrive_date().seconds());
  redrive.set_client_token("token-2");
  auto refused = core_->RedriveExecution(redrive, &again);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), ::testing::StartsWith("ExecutionNotRedrivable"));
}

TEST_F(ShardCoreTest, RedriveWindowIsFourteenDays) {
  auto machine = CreateMachine();
  std::string arn = Start(machine, "late", "{}");
  v1::StopExecutionRequest stop;
  stop.set_execution_arn(arn);
  v1::StopExecutionResponse stopped;
  v1::RedriveExecutionRequest redrive;
  redrive.set_execution_arn(arn);
  v1::RedriveExecutionResponse redriven;
  auto running = core_->RedriveExecution(redrive, &redriven);
  EXPECT_EQ(running.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(running.message()), ::testing::HasSubstr("RUNNING"));
  ASSERT_TRUE(core_->StopExecution(stop, &stopped).ok());
  EXPECT_EQ(Describe(arn).redrive_status(), "REDRIVABLE");
  clock_.Advance(absl::Hours(24 * 14 + 1));
  auto late = core_->RedriveExecution(redrive, &redriven);
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(late.message()), ::testing::HasSubstr("14 days"));
}

// Item 2 fails until the execution was redriven; one iteration at a time.
constexpr char kGatedMap[] = R"({"StartAt": "Each", "States": {
  "Each": {"Type": "Map", "MaxConcurrency": 1, "End": true,
    "ItemProcessor": {"StartAt": "Gate", "States": {
      "Gate": {"Type": "Choice", "Choices": [{"Or": [
        {"Variable": "$$.Execution.RedriveCount", "NumericGreaterThan": 0},
        {"Not": {"Variable": "$", "NumericEquals": 2}}], "Next": "Done"}]},
      "Done": {"Type": "Pass", "End": true}}}}}})";

TEST_F(ShardCoreTest, RedriveKeepsSucceededMapIterations) {
  v1::CreateStateMachineRequest create;
  create.set_name("gated-map");
  create.set_definition(kGatedMap);
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());
  std::string arn = Start(*machine, "items", "[1, 2, 3]");
  AwaitClosed(arn);
  ASSERT_EQ(Describe(arn).status(), "FAILED");
  v1::RedriveExecutionRequest redrive;
  redrive.set_execution_arn(arn);
  v1::RedriveExecutionResponse redriven;
  ASSERT_TRUE(core_->RedriveExecution(redrive, &redriven).ok());
  auto described = Describe(arn);
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_EQ(described.output(), "[1,2,3]");
  std::vector<std::string> types = HistoryTypes(arn);
  // Item 1 ran once, item 2 twice, item 3 once (after the redrive).
  EXPECT_EQ(std::count(types.begin(), types.end(), "ChoiceStateEntered"), 4);
  EXPECT_EQ(std::count(types.begin(), types.end(), "MapIterationStarted"), 3);
  EXPECT_EQ(std::count(types.begin(), types.end(), "MapIterationSucceeded"), 3);
}

// AwaitExecutionClosed: woken by the transition that closes the execution.
// Nested workflows: the states:startExecution integration.
class NestedWorkflowTest : public ShardCoreTest {
 protected:
  std::string CreateNamed(const std::string& name, const std::string& definition) {
    return CreateMachine(name, definition).state_machine_arn();
  }
  std::string StartNamed(const std::string& machine_arn, const std::string& name,
                         const std::string& input) {
    auto machine = core_->GetStateMachineRecord(machine_arn);
    EXPECT_TRUE(machine.ok());
    return Start(*machine, name, input);
  }
  // The outbox runs the calls on its own threads.
  v1::DescribeExecutionResponse AwaitClosed(const std::string& arn) {
    v1::DescribeExecutionResponse described;
    for (int i = 0; i < 500; ++i) {
      described = Describe(arn);
      if (described.status() != "RUNNING") break;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return described;
  }
  // A parent with one Task of `resource` starting `child_arn` with `input`.
  std::string Parent(const std::string& name, const std::string& resource,
                     const std::string& child_arn, const std::string& extra = "") {
    return CreateNamed(name, absl::StrCat(R"({"StartAt": "Call", "States": {"Call": {
      "Type": "Task", "Resource": ")", resource, R"(",
      "Parameters": {"StateMachineArn": ")", child_arn, R"(", "Name": "kid",
                     "Input": {"x.$": "$.x", "token.$": "$$.Task.Token"}})", extra,
                                          R"(, "End": true}}})"));
  }
};

TEST_F(NestedWorkflowTest, Sync2WaitsForTheChildAndReturnsItsOutputAsJson) {
  std::string child = CreateNamed("child", R"json({"StartAt": "P", "States": {
    "P": {"Type": "Pass", "Parameters": {"doubled.$": "States.MathAdd($.x, $.x)"}, "End": true}}})json");
  std::string parent = Parent("parent", "arn:aws:states:::states:startExecution.sync:2", child);
  std::string arn = StartNamed(parent, "p1", R"({"x": 21})");
  auto closed = AwaitClosed(arn);
  ASSERT_EQ(closed.status(), "SUCCEEDED") << closed.error() << " " << closed.cause();
  auto output = json::Parse(closed.output());
  ASSERT_TRUE(output.ok());
  EXPECT_EQ((*output)["Status"].GetString(), std::string("SUCCEEDED"));
  EXPECT_EQ((*output)["Output"]["doubled"].GetInt(), 42);
  EXPECT_EQ((*output)["Input"]["x"].GetInt(), 21);
  EXPECT_EQ((*output)["Name"].GetString(), std::string("kid"));
  EXPECT_TRUE((*output)["StartDate"].IsInt64());
  EXPECT_THAT(HistoryTypes(arn),
              ElementsAre("ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted",
                          "TaskSubmitted", "TaskSucceeded", "TaskStateExited",
                          "ExecutionSucceeded"));
  const std::string child_arn = (*output)["ExecutionArn"].GetString();
  EXPECT_EQ(child_arn, "arn:aws:states:us-east-1:123456789012:execution:child:kid");
  EXPECT_EQ(Describe(child_arn).status(), "SUCCEEDED");

  v1::GetExecutionHistoryRequest history;
  history.set_execution_arn(arn);
  v1::GetExecutionHistoryResponse events;
  ASSERT_TRUE(core_->GetExecutionHistory(history, &events).ok());
  const auto& scheduled = events.events(2).task_scheduled_event_details();
  EXPECT_EQ(scheduled.resource_type(), "states");
  EXPECT_EQ(scheduled.resource(), "startExecution.sync:2");
  EXPECT_EQ(scheduled.region(), "us-east-1");
  EXPECT_THAT(scheduled.parameters(), ::testing::HasSubstr(R"("StateMachineArn")"));
}

TEST_F(NestedWorkflowTest, SyncFailureIsTaskFailedWithTheChildAsCause) {
  std::string child = CreateNamed("failing", R"({"StartAt": "F", "States": {
    "F": {"Type": "Fail", "Error": "SomeFailure", "Cause": "it broke"}}})");
  std::string parent = Parent("parent", "arn:aws:states:::states:startExecution.sync", child);
  std::string arn = StartNamed(parent, "p1", R"({"x": 1})");
  auto closed = AwaitClosed(arn);
  ASSERT_EQ(closed.status(), "FAILED");
  EXPECT_EQ(closed.error(), "States.TaskFailed");
  auto cause = json::Parse(closed.cause());
  ASSERT_TRUE(cause.ok()) << closed.cause();
  EXPECT_EQ((*cause)["Error"].GetString(), std::string("SomeFailure"));
  EXPECT_EQ((*cause)["Cause"].GetString(), std::string("it broke"));
  EXPECT_EQ((*cause)["Status"].GetString(), std::string("FAILED"));
  // .sync gives the input as text.
  ASSERT_TRUE((*cause)["Input"].IsString());
  EXPECT_FALSE(cause->HasMember("Output"));
}

TEST_F(NestedWorkflowTest, RequestResponseAnswersAtOnceAndMissingMachinesFailTheTask) {
  std::string child = CreateNamed("slow", R"({"StartAt": "W", "States": {
    "W": {"Type": "Wait", "Seconds": 3600, "End": true}}})");
  std::string parent = Parent("parent", "arn:aws:states:::states:startExecution", child);
  std::string arn = StartNamed(parent, "p1", R"({"x": 1})");
  auto closed = AwaitClosed(arn);
  ASSERT_EQ(closed.status(), "SUCCEEDED");
  auto output = json::Parse(closed.output());
  ASSERT_TRUE(output.ok());
  const std::string child_arn = (*output)["ExecutionArn"].GetString();
  EXPECT_EQ(Describe(child_arn).status(), "RUNNING");
  EXPECT_THAT(HistoryTypes(arn),
              ElementsAre("ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted",
                          "TaskSucceeded", "TaskStateExited", "ExecutionSucceeded"));

  std::string orphan = Parent("orphan", "arn:aws:states:::states:startExecution",
                              "arn:aws:states:us-east-1:123456789012:stateMachine:nowhere");
  std::string failed_arn = StartNamed(orphan, "o1", R"({"x": 1})");
  auto failed = AwaitClosed(failed_arn);
  ASSERT_EQ(failed.status(), "FAILED");
  EXPECT_EQ(failed.error(), "StepFunctions.StateMachineDoesNotExistException");
  EXPECT_THAT(failed.cause(), ::testing::HasSubstr("Error Code: StateMachineDoesNotExist"));
  EXPECT_THAT(HistoryTypes(failed_arn),
              ElementsAre("ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted",
                          "TaskFailed", "ExecutionFailed"));
}

TEST_F(NestedWorkflowTest, WaitForTaskTokenCompletesWithTheTokenHoldersAnswer) {
  std::string child = CreateNamed("holder", R"({"StartAt": "W", "States": {
    "W": {"Type": "Wait", "Seconds": 3600, "End": true}}})");
  std::string parent =
      Parent("parent", "arn:aws:states:::states:startExecution.waitForTaskToken", child);
  std::string arn = StartNamed(parent, "p1", R"({"x": 5})");
  AwaitHistory(arn, 5);
  EXPECT_THAT(HistoryTypes(arn), ElementsAre("ExecutionStarted", "TaskStateEntered",
                                             "TaskScheduled", "TaskStarted", "TaskSubmitted"));
  auto child_input = json::Parse(
      Describe("arn:aws:states:us-east-1:123456789012:execution:holder:kid").input());
  ASSERT_TRUE(child_input.ok());
  ASSERT_TRUE(SendSuccess((*child_input)["token"].GetString(), R"({"approved": true})").ok());
  auto closed = AwaitClosed(arn);
  ASSERT_EQ(closed.status(), "SUCCEEDED");
  EXPECT_EQ(closed.output(), R"({"approved":true})");
  // The outbox's call made again (as after a crash) starts nothing new and
  // a late answer changes nothing.
  iv1::ServiceTaskResult late;
  late.set_task_token((*child_input)["token"].GetString());
  late.set_kind(iv1::ServiceTaskResult::SUBMITTED);
  late.set_output("{}");
  EXPECT_TRUE(core_->CompleteServiceTask(late).ok());
  EXPECT_EQ(HistoryTypes(arn).size(), 8u);
}

TEST_F(NestedWorkflowTest, SyncStartOfAnotherCallersRunningExecutionIsRefused) {
  std::string child = CreateNamed("busy", R"({"StartAt": "W", "States": {
    "W": {"Type": "Wait", "Seconds": 3600, "End": true}}})");
  StartNamed(child, "shared", R"({"x":1})");
  std::string parent = CreateNamed("parent", absl::StrCat(R"({"StartAt": "Call", "States": {
    "Call": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync",
             "Parameters": {"StateMachineArn": ")", child, R"(", "Name": "shared",
                            "Input": {"x": 1}}, "End": true}}})"));
  auto closed = AwaitClosed(StartNamed(parent, "p1", "{}"));
  EXPECT_EQ(closed.status(), "FAILED");
  EXPECT_EQ(closed.error(), "StepFunctions.ExecutionAlreadyExistsException");
}

TEST_F(NestedWorkflowTest, BadParametersFailTheTaskWithTheServicesValidationError) {
  auto failed = [&](const std::string& name, const std::string& resource,
                    const std::string& parameters) {
    std::string machine = CreateNamed(name, absl::StrCat(R"({"StartAt": "T", "States": {"T": {
      "Type": "Task", "Resource": ")", resource, R"(", "Parameters": )", parameters,
                                                         R"(, "End": true}}})"));
    return AwaitClosed(StartNamed(machine, "run", "{}"));
  };
  auto no_arn = failed("no-arn", "arn:aws:states:::states:startExecution.sync",
                       R"({"Name": "x"})");
  EXPECT_EQ(no_arn.status(), "FAILED");
  EXPECT_EQ(no_arn.error(), "StepFunctions.ValidationException");
  EXPECT_THAT(no_arn.cause(), ::testing::HasSubstr("stateMachineArn"));
  auto bad_input =
      failed("bad-input", "arn:aws:states:::states:startExecution",
             R"({"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:x",
                 "Input": "{not json"})");
  EXPECT_EQ(bad_input.error(), "StepFunctions.InvalidExecutionInputException");
  auto no_entries = failed("no-entries", "arn:aws:states:::events:putEvents",
                           R"({"Entries": []})");
  EXPECT_EQ(no_entries.status(), "FAILED");
  EXPECT_EQ(no_entries.error(), "EventBridge.ValidationException");
}

TEST_F(NestedWorkflowTest, StoppingTheParentStopsTheChildItWaitsFor) {
  std::string child = CreateNamed("long", R"({"StartAt": "W", "States": {
    "W": {"Type": "Wait", "Seconds": 3600, "End": true}}})");
  std::string parent = Parent("parent", "arn:aws:states:::states:startExecution.sync", child);
  std::string arn = StartNamed(parent, "p1", R"({"x": 1})");
  AwaitHistory(arn, 5);
  const std::string child_arn = "arn:aws:states:us-east-1:123456789012:execution:long:kid";
  ASSERT_EQ(Describe(child_arn).status(), "RUNNING");
  v1::StopExecutionRequest stop;
  stop.set_execution_arn(arn);
  v1::StopExecutionResponse stopped;
  ASSERT_TRUE(core_->StopExecution(stop, &stopped).ok());
  EXPECT_EQ(AwaitClosed(child_arn).status(), "ABORTED");
  EXPECT_EQ(Describe(arn).status(), "ABORTED");
}

TEST_F(NestedWorkflowTest, PutEventsPublishesEnvelopesAndReportsFailedEntries) {
  std::string machine = CreateNamed("publisher", R"({"StartAt": "Put", "States": {"Put": {
    "Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
    "Parameters": {"Entries": [
      {"Source": "orders", "DetailType": "Order Placed", "Detail": {"id.$": "$.id"}},
      {"Source": "orders", "DetailType": "Order Placed", "Detail": "{\"raw\": 1}",
       "Resources": ["arn:aws:sqs:us-east-1:123456789012:q"], "EventBusName": "default"}]},
    "End": true}}})");
  std::string arn = StartNamed(machine, "ok", R"({"id": 7})");
  auto closed = AwaitClosed(arn);
  ASSERT_EQ(closed.status(), "SUCCEEDED") << closed.error() << " " << closed.cause();
  auto output = json::Parse(closed.output());
  ASSERT_TRUE(output.ok());
  EXPECT_EQ((*output)["FailedEntryCount"].GetInt(), 0);
  ASSERT_EQ((*output)["Entries"].Size(), 2u);
  std::vector<iv1::PublishEvent> published = peers_.Published();
  std::vector<json::Document> events;
  for (const auto& event : published) {
    if (event.topic() != "stepflow.events.default") continue;
    auto parsed = json::Parse(event.value());
    ASSERT_TRUE(parsed.ok());
    events.push_back(std::move(*parsed));
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["detail"]["id"].GetInt(), 7);
  EXPECT_EQ(events[0]["id"].GetString(),
            std::string((*output)["Entries"][0]["EventId"].GetString()));
  ASSERT_EQ(events[0]["resources"].Size(), 2u);
  EXPECT_EQ(events[0]["resources"][1].GetString(), arn);
  ASSERT_EQ(events[1]["resources"].Size(), 3u);
  EXPECT_EQ(events[1]["detail"]["raw"].GetInt(), 1);
  EXPECT_THAT(HistoryTypes(arn),
              ElementsAre("ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted",
                          "TaskSucceeded", "TaskStateExited", "ExecutionSucceeded"));

  std::string bad = CreateNamed("bad-publisher", R"({"StartAt": "Put", "States": {"Put": {
    "Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
    "Parameters": {"Entries": [
      {"Source": "orders", "DetailType": "Order Placed", "Detail": {"fine": true}},
      {"Source": "orders", "DetailType": "Order Placed", "Detail": "\"jsonstring\""},
      {"Source": "orders", "DetailType": "x", "Detail": {}, "EventBusName": "missing"}]},
    "End": true}}})");
  std::string bad_arn = StartNamed(bad, "bad", "{}");
  auto failed = AwaitClosed(bad_arn);
  ASSERT_EQ(failed.status(), "FAILED");
  EXPECT_EQ(failed.error(), "EventBridge.FailedEntry");
  auto cause = json::Parse(failed.cause());
  ASSERT_TRUE(cause.ok());
  EXPECT_EQ((*cause)["FailedEntryCount"].GetInt(), 2);
  EXPECT_TRUE((*cause)["Entries"][0].HasMember("EventId"));
  EXPECT_EQ((*cause)["Entries"][1]["ErrorCode"].GetString(), std::string("MalformedDetail"));
  EXPECT_EQ((*cause)["Entries"][2]["ErrorCode"].GetString(),
            std::string("ResourceNotFoundException"));
}

TEST_F(NestedWorkflowTest, PutEventsWaitForTaskTokenWaitsForTheAnswer) {
  std::string machine = CreateNamed("approval", R"({"StartAt": "Ask", "States": {"Ask": {
    "Type": "Task", "Resource": "arn:aws:states:::events:putEvents.waitForTaskToken",
    "Parameters": {"Entries": [{"Source": "approvals", "DetailType": "Approval Needed",
                                "Detail": {"token.$": "$$.Task.Token"}}]},
    "HeartbeatSeconds": 600, "End": true}}})");
  std::string arn = StartNamed(machine, "a1", "{}");
  AwaitHistory(arn, 5);
  EXPECT_THAT(HistoryTypes(arn), ElementsAre("ExecutionStarted", "TaskStateEntered",
                                             "TaskScheduled", "TaskStarted", "TaskSubmitted"));
  std::string token;
  for (const auto& event : peers_.Published()) {
    auto parsed = json::Parse(event.value());
    if (parsed.ok() && parsed->HasMember("detail") && (*parsed)["detail"].HasMember("token")) {
      token = (*parsed)["detail"]["token"].GetString();
    }
  }
  ASSERT_FALSE(token.empty());
  v1::SendTaskHeartbeatRequest heartbeat;
  heartbeat.set_task_token(token);
  EXPECT_TRUE(core_->SendTaskHeartbeat(heartbeat).ok());
  v1::SendTaskFailureRequest failure;
  failure.set_task_token(token);
  failure.set_error("Rejected");
  failure.set_cause("no budget");
  ASSERT_TRUE(core_->SendTaskFailure(failure).ok());
  auto closed = AwaitClosed(arn);
  EXPECT_EQ(closed.status(), "FAILED");
  EXPECT_EQ(closed.error(), "Rejected");
  EXPECT_EQ(HistoryTypes(arn).back(), "ExecutionFailed");
}

TEST_F(ShardCoreTest, EventsOfOneExecutionArePublishedInTheOrderTheyHappened) {
  // Publishing takes a while, and some events are refused the first time:
  // delivered concurrently, they would come out of order.
  // (Owned by the hook: the core, closed after the test's body, may still
  // call it.)
  struct Publishing {
    std::atomic<int> calls{0};
    absl::Mutex mu;
    std::set<std::string> refused_once ABSL_GUARDED_BY(mu);
  };
  auto publishing = std::make_shared<Publishing>();
  peers_.publish_hook = [publishing](const iv1::PublishEvent& event) {
    const int n = publishing->calls.fetch_add(1);
    absl::SleepFor(absl::Microseconds(200 + (n * 7919) % 800));
    if (n % 11 != 3) return absl::OkStatus();
    absl::MutexLock lock(&publishing->mu);
    if (!publishing->refused_once.insert(event.value()).second) return absl::OkStatus();
    return absl::UnavailableError("broker busy");
  };
  status_events_topic_ = "stepflow.events.default";
  ASSERT_TRUE(Open(16).ok());
  // Each execution writes a dozen log records in one transition and its
  // status changes in two.
  std::string definition = R"({"StartAt": "P0", "States": {)";
  for (int i = 0; i < 5; ++i) {
    absl::StrAppend(&definition, "\"P", i, "\": {\"Type\": \"Pass\", \"Next\": \"P", i + 1,
                    "\"},");
  }
  absl::StrAppend(&definition, R"("P5": {"Type": "Task", "Resource": ")",
                  "arn:aws:states:us-east-1:123456789012:activity:work",
                  R"(", "End": true}}})");
  const iv1::StateMachineRecord machine = CreateMachine("logged-in-order", definition, "STANDARD", "ALL");
  std::vector<std::string> arns;
  for (int i = 0; i < 6; ++i) arns.push_back(Start(machine, absl::StrCat("run-", i), "{}"));
  for (size_t i = 0; i < arns.size(); ++i) {
    v1::GetActivityTaskResponse task = Poll();
    ASSERT_FALSE(task.task_token().empty());
    ASSERT_TRUE(SendSuccess(task.task_token()).ok());
  }
  for (const std::string& arn : arns) ASSERT_EQ(Describe(arn).status(), "SUCCEEDED");

  // Per execution: 17 log records (started, 5 passes entered and exited,
  // the task's entered, scheduled, started, succeeded and exited, and the
  // execution's end) and 2 status changes.
  PublishedByExecution published = AwaitPublished(arns.size() * 19);
  EXPECT_GT(publishing->calls.load(), static_cast<int>(arns.size() * 19));  // some were refused
  EXPECT_GT(OutboxMetric("event", "retried"), 0);
  for (const std::string& arn : arns) {
    const std::vector<int64_t>& ids = published.log_ids[arn];
    EXPECT_EQ(ids.size(), 17u) << arn;
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << arn << ": " << absl::StrJoin(ids, ",");
    EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), ids.size()) << arn;
    EXPECT_THAT(published.statuses[arn], ElementsAre("RUNNING", "SUCCEEDED")) << arn;
  }
}

TEST_F(ShardCoreTest, EventsOfOneExecutionStayInOrderUnderConcurrentTransitions) {
  // Transitions of many executions on many shards at once: some commit
  // while others' writes are still under way, so outbox items land behind
  // what a scan has already delivered.
  peers_.publish_hook = [](const iv1::PublishEvent&) {
    absl::SleepFor(absl::Microseconds(100));
    return absl::OkStatus();
  };
  status_events_topic_ = "stepflow.events.default";
  ASSERT_TRUE(Open(16).ok());
  const std::string work = "arn:aws:states:us-east-1:123456789012:activity:work";
  const std::string definition = absl::StrCat(
      R"({"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "T1"},)",
      R"("T1": {"Type": "Task", "Resource": ")", work, R"(", "Next": "T2"},)",
      R"("T2": {"Type": "Task", "Resource": ")", work, R"(", "Next": "T3"},)",
      R"("T3": {"Type": "Task", "Resource": ")", work, R"(", "End": true}}})");
  const iv1::StateMachineRecord machine = CreateMachine("logged-concurrently", definition, "STANDARD", "ALL");

  constexpr int kExecutions = 32;
  constexpr int kTasks = kExecutions * 3;
  std::atomic<int> answered{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (answered.load() < kTasks) {
        v1::GetActivityTaskRequest poll;
        poll.set_activity_arn(work);
        v1::GetActivityTaskResponse task;
        if (!core_->GetActivityTask(poll, &task, absl::Now() + absl::Milliseconds(200), nullptr)
                 .ok() ||
            task.task_token().empty()) {
          continue;
        }
        if (SendSuccess(task.task_token()).ok()) answered.fetch_add(1);
      }
    });
  }
  std::vector<std::string> arns(kExecutions);
  std::vector<std::thread> starters;
  for (int t = 0; t < 4; ++t) {
    starters.emplace_back([&, t] {
      for (int i = t; i < kExecutions; i += 4) arns[i] = Start(machine, absl::StrCat("c-", i), "{}");
    });
  }
  for (std::thread& starter : starters) starter.join();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (answered.load() < kTasks && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  answered.store(kTasks);  // ends the workers either way
  for (std::thread& worker : workers) worker.join();

  std::map<std::string, size_t> history_sizes;
  size_t expected = 0;
  for (const std::string& arn : arns) {
    ASSERT_EQ(Describe(arn).status(), "SUCCEEDED") << arn;
    history_sizes[arn] = HistoryTypes(arn).size();
    expected += history_sizes[arn] + 2;  // every event is logged, and two status changes
  }
  PublishedByExecution published = AwaitPublished(expected);
  for (const std::string& arn : arns) {
    const std::vector<int64_t>& ids = published.log_ids[arn];
    EXPECT_EQ(ids.size(), history_sizes[arn]) << arn;
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << arn << ": " << absl::StrJoin(ids, ",");
    EXPECT_THAT(published.statuses[arn], ElementsAre("RUNNING", "SUCCEEDED")) << arn;
  }
}

TEST_F(ShardCoreTest, LoggingLevelsChooseWhichEventsAreLogged) {
  const std::string definition = R"({"StartAt": "P", "States": {
    "P": {"Type": "Pass", "Next": "F"},
    "F": {"Type": "Fail", "Error": "Broken", "Cause": "on purpose"}}})";
  auto logged = [&](const std::string& level, bool include_data) {
    v1::CreateStateMachineRequest create;
    create.set_name(absl::StrCat("logged-", level, include_data ? "-data" : ""));
    create.set_type("EXPRESS");
    create.set_definition(definition);
    v1::LoggingConfiguration* logging = create.mutable_logging_configuration();
    logging->set_level(level);
    logging->set_include_execution_data(include_data);
    logging->add_destinations()->mutable_cloud_watch_logs_log_group()->set_log_group_arn(
        "arn:aws:logs:us-east-1:123456789012:log-group:flows:*");
    v1::CreateStateMachineResponse created;
    EXPECT_TRUE(core_->CreateStateMachine(create, &created).ok());
    auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
    EXPECT_TRUE(machine.ok());
    const std::string arn = Start(*machine, "run", R"({"secret": 1})");
    EXPECT_EQ(Describe(arn).status(), "FAILED");
    // The outbox delivers a transition's items concurrently, so they may
    // arrive in any order: wait until the last one came and the count
    // stopped growing, then order them by event id.
    std::vector<json::Document> records;
    size_t stable_polls = 0;
    size_t last_count = 0;
    for (int i = 0; i < 100; ++i) {
      records.clear();
      bool ended = false;
      for (const auto& event : peers_.Published()) {
        if (event.topic() != "stepflow.execution-logs" || event.key() != arn) continue;
        auto parsed = json::Parse(event.value());
        EXPECT_TRUE(parsed.ok());
        if (!parsed.ok()) continue;
        ended = ended || std::string((*parsed)["type"].GetString()) == "ExecutionFailed";
        records.push_back(std::move(*parsed));
      }
      stable_polls = records.size() == last_count ? stable_polls + 1 : 0;
      last_count = records.size();
      if (ended && stable_polls >= 3) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    std::sort(records.begin(), records.end(), [](const json::Document& a, const json::Document& b) {
      return std::stoll(a["id"].GetString()) < std::stoll(b["id"].GetString());
    });
    return records;
  };
  auto all = logged("ALL", /*include_data=*/false);
  std::vector<std::string> types;
  for (const auto& record : all) types.push_back(record["type"].GetString());
  EXPECT_THAT(types, ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                                 "FailStateEntered", "ExecutionFailed"));
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(std::string(all[0]["id"].GetString()), "1");
  EXPECT_EQ(std::string(all[0]["previous_event_id"].GetString()), "0");
  EXPECT_TRUE(all[0]["event_timestamp"].IsString());
  EXPECT_FALSE(all[0]["details"].HasMember("input"));  // execution data left out
  EXPECT_EQ(std::string(all.back()["details"]["error"].GetString()), "Broken");
  EXPECT_EQ(std::string(all[0]["log_group_arn"].GetString()),
            "arn:aws:logs:us-east-1:123456789012:log-group:flows:*");

  auto with_data = logged("ALL", /*include_data=*/true);
  ASSERT_FALSE(with_data.empty());
  EXPECT_EQ(std::string(with_data[0]["details"]["input"].GetString()), R"({"secret": 1})");

  auto error = logged("ERROR", false);
  types.clear();
  for (const auto& record : error) types.push_back(record["type"].GetString());
  EXPECT_THAT(types, ElementsAre("FailStateEntered", "ExecutionFailed"));
  auto fatal = logged("FATAL", false);
  ASSERT_EQ(fatal.size(), 1u);
  EXPECT_EQ(std::string(fatal[0]["type"].GetString()), "ExecutionFailed");
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_TRUE(logged("OFF", false).empty());
}

class AwaitExecutionClosedTest : public ShardCoreTest {
 protected:
  absl::Status Await(const std::string& arn, absl::Time deadline,
                     v1::DescribeExecutionResponse* response,
                     const std::function<bool()>& cancelled = nullptr) {
    v1::DescribeExecutionRequest request;
    request.set_execution_arn(arn);
    return core_->AwaitExecutionClosed(request, deadline, cancelled, response);
  }

  void Succeed(const std::string& task_token) {
    v1::SendTaskSuccessRequest success;
    success.set_task_token(task_token);
    success.set_output(R"({"charged": true})");
    ASSERT_TRUE(core_->SendTaskSuccess(success).ok());
  }
  // Polls the next task of "work" and answers it as Succeed does.
  void SucceedNextTask() {
    v1::GetActivityTaskResponse task = Poll();
    ASSERT_FALSE(task.task_token().empty());
    Succeed(task.task_token());
  }
};

TEST_F(AwaitExecutionClosedTest, AnswersAsSoonAsTheExecutionCloses) {
  auto machine = CreateMachine();
  std::string arn = Start(machine, "run-1", R"({"order": 7})");
  absl::Status awaited;
  v1::DescribeExecutionResponse closed;
  absl::Time answered_at;
  std::thread waiter([&] {
    awaited = Await(arn, absl::Now() + absl::Seconds(60), &closed);
    answered_at = absl::Now();
  });
  v1::GetActivityTaskResponse task = Poll();
  ASSERT_FALSE(task.task_token().empty());
  absl::SleepFor(absl::Milliseconds(100));  // the waiter is waiting by now
  const absl::Time succeeded_at = absl::Now();
  Succeed(task.task_token());
  waiter.join();
  ASSERT_TRUE(awaited.ok()) << awaited;
  EXPECT_EQ(closed.status(), "SUCCEEDED");
  EXPECT_EQ(closed.output(), R"({"order":7,"prep":"ready","result":{"charged":true}})");
  EXPECT_LT(answered_at - succeeded_at, absl::Seconds(1));
  EXPECT_EQ(core_->AwaitedExecutions(), 0u);

  // A closed execution answers at once.
  v1::DescribeExecutionResponse again;
  const absl::Time before = absl::Now();
  ASSERT_TRUE(Await(arn, absl::Now() + absl::Seconds(60), &again).ok());
  EXPECT_LT(absl::Now() - before, absl::Seconds(1));
  EXPECT_EQ(again.status(), "SUCCEEDED");

  v1::DescribeExecutionResponse missing;
  EXPECT_EQ(Await(arn + "-missing", absl::Now() + absl::Seconds(1), &missing).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(AwaitExecutionClosedTest, DeadlineOrCancellationEndsTheWaitNotTheExecution) {
  auto machine = CreateMachine();
  std::string arn = Start(machine, "run-1", "{}");
  v1::DescribeExecutionResponse response;
  const absl::Time before = absl::Now();
  absl::Status timed_out = Await(arn, absl::Now() + absl::Milliseconds(300), &response);
  EXPECT_EQ(timed_out.code(), absl::StatusCode::kDeadlineExceeded) << timed_out;
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));

  std::atomic<bool> gone{false};
  absl::Status cancelled;
  std::thread waiter([&] {
    cancelled = Await(arn, absl::Now() + absl::Seconds(60), &response, [&] { return gone.load(); });
  });
  absl::SleepFor(absl::Milliseconds(100));
  gone = true;
  waiter.join();
  EXPECT_EQ(cancelled.code(), absl::StatusCode::kCancelled) << cancelled;
  EXPECT_EQ(core_->AwaitedExecutions(), 0u);  // nothing left behind

  // The execution ran on and still closes; a new waiter sees it.
  EXPECT_EQ(Describe(arn).status(), "RUNNING");
  v1::GetActivityTaskResponse task = Poll();
  ASSERT_FALSE(task.task_token().empty());
  Succeed(task.task_token());
  ASSERT_TRUE(Await(arn, absl::Now() + absl::Seconds(5), &response).ok());
  EXPECT_EQ(response.status(), "SUCCEEDED");
}

TEST_F(AwaitExecutionClosedTest, ManyWaitersAreWokenOnlyByTheirExecution) {
  auto machine = CreateMachine();
  std::string closing = Start(machine, "closing", "{}");
  std::string running = Start(machine, "running", "{}");
  constexpr int kWaiters = 24;
  std::vector<absl::Status> closing_results(kWaiters), running_results(kWaiters);
  std::vector<std::string> closing_status(kWaiters);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      v1::DescribeExecutionResponse response;
      closing_results[i] = Await(closing, absl::Now() + absl::Seconds(60), &response);
      closing_status[i] = response.status();
    });
    threads.emplace_back([&, i] {
      v1::DescribeExecutionResponse response;
      running_results[i] = Await(running, absl::Now() + absl::Seconds(2), &response);
    });
  }
  // Both executions wait for a task; answer the one of `closing`.
  for (int polled = 0; polled < 2; ++polled) {
    v1::GetActivityTaskResponse task = Poll();
    ASSERT_FALSE(task.task_token().empty());
    auto content = tasktoken::TaskTokenCodec::Peek(task.task_token());
    ASSERT_TRUE(content.ok());
    if (content->execution_arn() == closing) Succeed(task.task_token());
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kWaiters; ++i) {
    EXPECT_TRUE(closing_results[i].ok()) << closing_results[i];
    EXPECT_EQ(closing_status[i], "SUCCEEDED");
    EXPECT_EQ(running_results[i].code(), absl::StatusCode::kDeadlineExceeded);
  }
  EXPECT_EQ(Describe(running).status(), "RUNNING");
  EXPECT_EQ(core_->AwaitedExecutions(), 0u);
}

TEST_F(AwaitExecutionClosedTest, SyncStartOfAnExecutionThatEndsAtOnce) {
  v1::CreateStateMachineRequest create;
  create.set_name("quick");
  create.set_type("EXPRESS");
  create.set_definition(R"({"StartAt": "Fail", "States": {
    "Fail": {"Type": "Fail", "Error": "Broken", "Cause": "on purpose"}}})");
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());
  iv1::StartSyncExecutionShardRequest request;
  *request.mutable_start()->mutable_state_machine() = *machine;
  request.mutable_start()->mutable_request()->set_name("once");
  request.mutable_start()->mutable_request()->set_input("{}");
  v1::DescribeExecutionResponse response;
  absl::Status status =
      core_->StartSyncExecution(request, absl::Now() + absl::Seconds(5), nullptr, &response);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(response.status(), "FAILED");
  EXPECT_EQ(response.error(), "Broken");
  EXPECT_EQ(response.cause(), "on purpose");
  EXPECT_TRUE(response.has_stop_date());
}

// A caller that takes the answer later: what it was answered, once.
struct LaterAnswers {
  absl::Mutex mu;
  std::vector<absl::Status> statuses ABSL_GUARDED_BY(mu);

  ShardCore::AnswerLater Take() {
    return [this](absl::Status status) {
      absl::MutexLock lock(&mu);
      statuses.push_back(std::move(status));
    };
  }
  // Waits up to `wait` for `count` answers; the answers so far.
  std::vector<absl::Status> Await(size_t count, absl::Duration wait = absl::Seconds(10)) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return statuses.size() >= count; };
    mu.AwaitWithTimeout(absl::Condition(&enough), wait);
    return statuses;
  }
  // The one answer, once it came (within 10 s); an error that says so
  // when none or more came.
  absl::Status Only() {
    std::vector<absl::Status> answered = Await(1);
    if (answered.size() == 1) return answered[0];
    return absl::InternalError(absl::StrCat(answered.size(), " answers"));
  }
};

class SyncStartWithoutAThreadTest : public AwaitExecutionClosedTest {
 protected:
  void SetUp() override {
    AwaitExecutionClosedTest::SetUp();
    machine_ = CreateMachine("express-orders", kDefinition, "EXPRESS");
  }

  // StartSyncExecution from a caller that takes the answer later, first
  // on a thread that may not block and, if the start declines there (the
  // first start of a definition reads it), again on one that may, as
  // callers do; whether the start took the answer. `declined`: whether the
  // first try declined.
  bool StartSync(const std::string& name, absl::Time deadline,
                 v1::DescribeExecutionResponse* response, LaterAnswers* answers,
                 std::function<bool()> cancelled = nullptr, bool* declined = nullptr) {
    iv1::StartSyncExecutionShardRequest request;
    *request.mutable_start()->mutable_state_machine() = machine_;
    request.mutable_start()->mutable_request()->set_name(name);
    request.mutable_start()->mutable_request()->set_input(R"({"order": 7})");
    bool would_block = false;
    ShardCore::AnswerLater answer = answers->Take();
    absl::Status status = core_->StartSyncExecution(request, deadline, cancelled, response,
                                                    &would_block, /*resolved=*/nullptr, &answer);
    EXPECT_TRUE(status.ok()) << status;
    if (declined != nullptr) *declined = would_block;
    if (would_block) {
      EXPECT_TRUE(answer) << "a declined start keeps the answer";
      status = core_->StartSyncExecution(request, deadline, cancelled, response,
                                         /*would_block=*/nullptr, /*resolved=*/nullptr, &answer);
      EXPECT_TRUE(status.ok()) << status;
    }
    return !answer;
  }

  // AwaitExecutionClosedLater of `arn`, answered to `answers`.
  void AwaitLater(const std::string& arn, v1::DescribeExecutionResponse* response,
                  LaterAnswers* answers) {
    v1::DescribeExecutionRequest request;
    request.set_execution_arn(arn);
    core_->AwaitExecutionClosedLater(request, absl::Now() + absl::Seconds(60), nullptr, response,
                                     answers->Take());
  }

  iv1::StateMachineRecord machine_;
};

TEST_F(SyncStartWithoutAThreadTest, TheClosingTransitionAnswersTheStart) {
  // The start runs on the caller's thread, which may not block, and
  // returns with its task scheduled: the answer comes with the close.
  // The first start declines (its definition is read), then waits on a
  // thread that may block; the second runs on the first thread.
  for (const bool first : {true, false}) {
    SCOPED_TRACE(first ? "the first start" : "a later start");
    LaterAnswers answers;
    v1::DescribeExecutionResponse response;
    bool declined = false;
    ASSERT_TRUE(StartSync(first ? "sync-1" : "sync-2", absl::Now() + absl::Seconds(60),
                          &response, &answers, nullptr, &declined));
    EXPECT_EQ(declined, first);
    EXPECT_TRUE(answers.Await(1, absl::Milliseconds(200)).empty());
    EXPECT_EQ(core_->AwaitedExecutions(), 1u);

    SucceedNextTask();
    const absl::Status answered = answers.Only();
    ASSERT_TRUE(answered.ok()) << answered;
    EXPECT_EQ(response.status(), "SUCCEEDED");
    EXPECT_EQ(response.output(), R"({"order":7,"prep":"ready","result":{"charged":true}})");
    EXPECT_TRUE(response.has_stop_date());
    EXPECT_EQ(core_->AwaitedExecutions(), 0u);
    // Answered once only.
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_EQ(answers.Await(2, absl::ZeroDuration()).size(), 1u);
  }
}

TEST_F(SyncStartWithoutAThreadTest, DeadlineOrCallerGoneEndTheWaitNotTheExecution) {
  LaterAnswers timed_out;
  v1::DescribeExecutionResponse response;
  const absl::Time before = absl::Now();
  ASSERT_TRUE(StartSync("sync-late", absl::Now() + absl::Milliseconds(300), &response,
                        &timed_out));
  absl::Status answered = timed_out.Only();
  EXPECT_EQ(answered.code(), absl::StatusCode::kDeadlineExceeded) << answered;
  EXPECT_THAT(std::string(answered.message()), ::testing::HasSubstr("sync-late"));
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - before, absl::Seconds(3));

  std::atomic<bool> gone{false};
  LaterAnswers cancelled;
  v1::DescribeExecutionResponse other;
  ASSERT_TRUE(StartSync("sync-gone", absl::Now() + absl::Seconds(60), &other, &cancelled,
                        [&] { return gone.load(); }));
  EXPECT_TRUE(cancelled.Await(1, absl::Milliseconds(300)).empty());
  gone = true;
  answered = cancelled.Only();
  EXPECT_EQ(answered.code(), absl::StatusCode::kCancelled) << answered;
  EXPECT_EQ(core_->AwaitedExecutions(), 0u);

  // Both executions run on; answering their tasks answers nobody again.
  SucceedNextTask();
  SucceedNextTask();
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(timed_out.Await(2, absl::ZeroDuration()).size(), 1u);
  EXPECT_EQ(cancelled.Await(2, absl::ZeroDuration()).size(), 1u);
}

TEST_F(SyncStartWithoutAThreadTest, AStopAnswersEveryWaitingStart) {
  LaterAnswers answers;
  std::vector<v1::DescribeExecutionResponse> responses(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(StartSync(absl::StrCat("sync-", i), absl::Now() + absl::Seconds(60),
                          &responses[i], &answers));
  }
  EXPECT_EQ(core_->AwaitedExecutions(), 3u);
  core_->Shutdown();
  std::vector<absl::Status> answered = answers.Await(3, absl::Seconds(1));
  ASSERT_EQ(answered.size(), 3u);
  for (const absl::Status& status : answered) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  }
}

TEST_F(SyncStartWithoutAThreadTest, AwaitingLaterAnExecutionNotRunningAnswersAtOnce) {
  std::string arn = Start(CreateMachine(), "standard-1", "{}");
  SucceedNextTask();

  LaterAnswers answers;
  v1::DescribeExecutionResponse closed;
  AwaitLater(arn, &closed, &answers);
  v1::DescribeExecutionResponse missing;
  AwaitLater(arn + "-missing", &missing, &answers);
  std::vector<absl::Status> answered = answers.Await(2, absl::ZeroDuration());
  ASSERT_EQ(answered.size(), 2u);
  EXPECT_TRUE(answered[0].ok()) << answered[0];
  EXPECT_EQ(closed.status(), "SUCCEEDED");
  EXPECT_EQ(answered[1].code(), absl::StatusCode::kNotFound) << answered[1];
  EXPECT_EQ(core_->AwaitedExecutions(), 0u);
}

TEST_F(SyncStartWithoutAThreadTest, AStandardExecutionAwaitedLaterIsReadAgainAsItCloses) {
  // A STANDARD execution stays stored when it closes: the waiter reads it.
  std::string arn = Start(CreateMachine(), "standard-2", R"({"order": 8})");
  LaterAnswers answers;
  v1::DescribeExecutionResponse closed;
  AwaitLater(arn, &closed, &answers);
  EXPECT_TRUE(answers.Await(1, absl::Milliseconds(100)).empty());
  SucceedNextTask();
  const absl::Status answered = answers.Only();
  EXPECT_TRUE(answered.ok()) << answered;
  EXPECT_EQ(closed.status(), "SUCCEEDED");
  EXPECT_EQ(closed.output(), R"({"order":8,"prep":"ready","result":{"charged":true}})");
}

// --- Map runs ---------------------------------------------------------------

// A distributed Map over $.items whose children each wait for the "work"
// activity, two at a time; no failure is tolerated.
constexpr char kMapRunDefinition[] = R"({"StartAt": "M", "States": {
  "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "Label": "chunk",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
          "StartAt": "W", "States": {
            "W": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:work",
                  "End": true}}},
        "End": true}}})";

class MapRunTest : public ShardCoreTest {
 protected:
  iv1::StateMachineRecord CreateBatchMachine() {
    return CreateMachine("batch", kMapRunDefinition);
  }

  std::string OnlyMapRun(const std::string& execution_arn) {
    v1::ListMapRunsRequest request;
    request.set_execution_arn(execution_arn);
    v1::ListMapRunsResponse response;
    EXPECT_TRUE(core_->ListMapRuns(request, &response).ok());
    EXPECT_EQ(response.map_runs_size(), 1);
    return response.map_runs_size() == 1 ? response.map_runs(0).map_run_arn() : "";
  }

  v1::DescribeMapRunResponse DescribeRun(const std::string& map_run_arn) {
    v1::DescribeMapRunRequest request;
    request.set_map_run_arn(map_run_arn);
    v1::DescribeMapRunResponse response;
    absl::Status status = core_->DescribeMapRun(request, &response);
    EXPECT_TRUE(status.ok()) << status;
    return response;
  }

  // Every child execution, following next_token with pages of `page`.
  std::vector<v1::ExecutionListItem> Children(const std::string& map_run_arn, int page) {
    std::vector<v1::ExecutionListItem> all;
    v1::ListExecutionsRequest request;
    request.set_map_run_arn(map_run_arn);
    request.set_max_results(page);
    for (int pages = 0; pages < 100; ++pages) {
      v1::ListExecutionsResponse response;
      absl::Status status = core_->ListMapRunExecutions(request, &response);
      EXPECT_TRUE(status.ok()) << status;
      EXPECT_LE(response.executions_size(), page);
      for (const auto& item : response.executions()) all.push_back(item);
      if (response.next_token().empty()) break;
      request.set_next_token(response.next_token());
    }
    return all;
  }

  // Polls one task; fails the test when none comes.
  std::string NextToken() {
    v1::GetActivityTaskResponse task = Poll();
    EXPECT_FALSE(task.task_token().empty());
    return task.task_token();
  }

  void Succeed(const std::string& token) {
    absl::Status status = SendSuccess(token);
    EXPECT_TRUE(status.ok()) << status;
  }
};

TEST_F(MapRunTest, DescribeListUpdateAndRedrive) {
  auto machine = CreateBatchMachine();
  const std::string arn = Start(machine, "nightly", R"({"items": [1, 2, 3, 4, 5]})");
  const std::string run_arn = OnlyMapRun(arn);
  EXPECT_THAT(run_arn, ::testing::StartsWith(
                           "arn:aws:states:us-east-1:123456789012:mapRun:batch/chunk:"));

  auto described = DescribeRun(run_arn);
  EXPECT_EQ(described.execution_arn(), arn);
  EXPECT_EQ(described.status(), "RUNNING");
  EXPECT_EQ(described.max_concurrency(), 2);
  EXPECT_EQ(described.execution_counts().running(), 2);
  EXPECT_EQ(described.execution_counts().pending(), 3);
  EXPECT_EQ(described.execution_counts().total(), 5);
  EXPECT_EQ(described.item_counts().running(), 2);
  EXPECT_EQ(described.item_counts().total(), 5);
  EXPECT_EQ(described.start_date().seconds(), 1764000000);
  EXPECT_FALSE(described.has_stop_date());

  // The running children, and one of them described by its own ARN.
  auto children = Children(run_arn, 10);
  ASSERT_EQ(children.size(), 2u);
  EXPECT_THAT(children[0].execution_arn(),
              ::testing::StartsWith("arn:aws:states:us-east-1:123456789012:execution:batch/chunk:"));
  EXPECT_EQ(children[0].map_run_arn(), run_arn);
  EXPECT_EQ(children[0].status(), "RUNNING");
  EXPECT_EQ(children[0].item_count(), 1);
  auto child = Describe(children[0].execution_arn());
  EXPECT_EQ(child.status(), "RUNNING");
  EXPECT_EQ(child.map_run_arn(), run_arn);
  EXPECT_EQ(child.name(), children[0].name());

  // Four at once from now on.
  clock_.Advance(absl::Seconds(1));
  v1::UpdateMapRunRequest update;
  update.set_map_run_arn(run_arn);
  update.set_max_concurrency(4);
  v1::UpdateMapRunResponse updated;
  ASSERT_TRUE(core_->UpdateMapRun(update, &updated).ok());
  described = DescribeRun(run_arn);
  EXPECT_EQ(described.max_concurrency(), 4);
  EXPECT_EQ(described.execution_counts().running(), 4);
  EXPECT_EQ(described.execution_counts().pending(), 1);
  EXPECT_EQ(HistoryTypes(arn).back(), "MapRunStarted");  // no event for an update

  // Two succeed (the fifth child starts), one fails: the run fails, and
  // the children still running are aborted with it.
  Succeed(NextToken());
  Succeed(NextToken());
  v1::SendTaskFailureRequest failure;
  failure.set_task_token(NextToken());
  failure.set_error("Broken");
  ASSERT_TRUE(core_->SendTaskFailure(failure).ok());
  EXPECT_EQ(Describe(arn).status(), "FAILED");
  described = DescribeRun(run_arn);
  EXPECT_EQ(described.status(), "FAILED");
  EXPECT_TRUE(described.has_stop_date());
  EXPECT_EQ(described.execution_counts().succeeded(), 2);
  EXPECT_EQ(described.execution_counts().failed(), 1);
  EXPECT_EQ(described.execution_counts().aborted(), 2);
  EXPECT_EQ(described.execution_counts().pending(), 0);
  EXPECT_EQ(described.item_counts().failed(), 1);
  EXPECT_EQ(Children(run_arn, 2).size(), 5u);

  // Nothing to update once it stopped.
  auto refused = core_->UpdateMapRun(update, &updated);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), ::testing::StartsWith("ValidationException"));

  // A redrive runs the same map run again: the failed and aborted children.
  clock_.Advance(absl::Seconds(1));
  v1::RedriveExecutionRequest redrive;
  redrive.set_execution_arn(arn);
  v1::RedriveExecutionResponse redriven;
  ASSERT_TRUE(core_->RedriveExecution(redrive, &redriven).ok());
  auto types = HistoryTypes(arn);
  ASSERT_GE(types.size(), 2u);
  EXPECT_EQ(types[types.size() - 1], "MapRunRedriven");
  EXPECT_EQ(types[types.size() - 2], "ExecutionRedriven");
  described = DescribeRun(run_arn);
  EXPECT_EQ(described.status(), "RUNNING");
  EXPECT_EQ(described.redrive_count(), 1);
  EXPECT_EQ(described.redrive_date().seconds(), 1764000002);
  EXPECT_FALSE(described.has_stop_date());
  EXPECT_EQ(described.execution_counts().running(), 3);
  EXPECT_EQ(described.execution_counts().succeeded(), 2);
  for (int i = 0; i < 3; ++i) Succeed(NextToken());
  EXPECT_EQ(Describe(arn).status(), "SUCCEEDED");
  described = DescribeRun(run_arn);
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_EQ(described.execution_counts().succeeded(), 5);
  EXPECT_EQ(described.item_counts().succeeded(), 5);

  // Pages of two: every child once, newest first.
  children = Children(run_arn, 2);
  ASSERT_EQ(children.size(), 5u);
  std::set<std::string> names;
  for (size_t i = 0; i < children.size(); ++i) {
    names.insert(children[i].name());
    EXPECT_EQ(children[i].status(), "SUCCEEDED");
    if (i > 0) {
      EXPECT_GE(children[i - 1].start_date().seconds(), children[i].start_date().seconds());
    }
  }
  EXPECT_EQ(names.size(), 5u);
  // The map run index survives a restart.
  ASSERT_TRUE(Open(16).ok());
  EXPECT_EQ(DescribeRun(run_arn).status(), "SUCCEEDED");
}

TEST_F(MapRunTest, UnknownRunsAndBadTokens) {
  auto machine = CreateBatchMachine();
  const std::string arn = Start(machine, "nightly", R"({"items": [1]})");
  const std::string run_arn = OnlyMapRun(arn);

  // Same routing hash, another id: not found. Not a map run ARN: invalid.
  v1::DescribeMapRunRequest request;
  request.set_map_run_arn(run_arn.substr(0, run_arn.size() - 4) + "ffff");
  v1::DescribeMapRunResponse response;
  auto missing = core_->DescribeMapRun(request, &response);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), ::testing::StartsWith("ResourceNotFound"));
  request.set_map_run_arn("arn:aws:states:us-east-1:123456789012:mapRun:batch/chunk:nope");
  EXPECT_EQ(core_->DescribeMapRun(request, &response).code(),
            absl::StatusCode::kInvalidArgument);

  v1::ListMapRunsRequest list;
  list.set_execution_arn(arn);
  list.set_next_token("7");
  v1::ListMapRunsResponse runs;
  auto bad = core_->ListMapRuns(list, &runs);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), ::testing::StartsWith("InvalidToken"));
  list.set_execution_arn("arn:aws:states:us-east-1:123456789012:execution:batch:absent");
  list.clear_next_token();
  EXPECT_EQ(core_->ListMapRuns(list, &runs).code(), absl::StatusCode::kNotFound);

  v1::ListExecutionsRequest children;
  children.set_map_run_arn(run_arn);
  children.set_next_token("not-a-token");
  v1::ListExecutionsResponse listed;
  auto bad_children = core_->ListMapRunExecutions(children, &listed);
  EXPECT_THAT(std::string(bad_children.message()), ::testing::StartsWith("InvalidToken"));

  // Stopping the execution aborts its map run and the running child.
  v1::StopExecutionRequest stop;
  stop.set_execution_arn(arn);
  v1::StopExecutionResponse stopped;
  ASSERT_TRUE(core_->StopExecution(stop, &stopped).ok());
  auto described = DescribeRun(run_arn);
  EXPECT_EQ(described.status(), "ABORTED");
  EXPECT_EQ(described.execution_counts().aborted(), 1);
  EXPECT_EQ(described.execution_counts().running(), 0);

  // Purged with its execution once the retention ends.
  clock_.Advance(absl::Hours(24 * 91));
  ASSERT_TRUE(core_->PurgeExpiredExecutions().ok());
  request.set_map_run_arn(run_arn);
  EXPECT_EQ(core_->DescribeMapRun(request, &response).code(), absl::StatusCode::kNotFound);
}

TEST_F(MapRunTest, ListMapRunsPagesNewestFirst) {
  // Three distributed Maps in a row, each over the input, children Pass.
  std::string states;
  for (int i = 1; i <= 3; ++i) {
    absl::StrAppend(&states, i == 1 ? "" : ",", R"("M)", i, R"(": {"Type": "Map", "Label": "m)",
                    i, R"(", "ItemsPath": "$.items", "ResultPath": null,
      "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "P)", i, R"(", "States": {"P)", i, R"(": {"Type": "Pass", "End": true}}}, )",
                    i == 3 ? R"("End": true})" : absl::StrCat(R"("Next": "M)", i + 1, R"("})"));
  }
  v1::CreateStateMachineRequest create;
  create.set_name("triple");
  create.set_definition(absl::StrCat(R"({"StartAt": "M1", "States": {)", states, "}}"));
  v1::CreateStateMachineResponse created;
  ASSERT_TRUE(core_->CreateStateMachine(create, &created).ok());
  auto machine = core_->GetStateMachineRecord(created.state_machine_arn());
  ASSERT_TRUE(machine.ok());
  const std::string arn = Start(*machine, "three", R"({"items": [1, 2]})");
  EXPECT_EQ(Describe(arn).status(), "SUCCEEDED");

  std::vector<std::string> listed;
  v1::ListMapRunsRequest request;
  request.set_execution_arn(arn);
  request.set_max_results(2);
  for (int pages = 0; pages < 5; ++pages) {
    v1::ListMapRunsResponse response;
    ASSERT_TRUE(core_->ListMapRuns(request, &response).ok());
    EXPECT_LE(response.map_runs_size(), 2);
    for (const auto& run : response.map_runs()) {
      listed.push_back(run.map_run_arn());
      EXPECT_EQ(run.execution_arn(), arn);
      EXPECT_TRUE(run.has_stop_date());
    }
    if (response.next_token().empty()) break;
    request.set_next_token(response.next_token());
  }
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_THAT(listed[0], ::testing::HasSubstr(":mapRun:triple/m3:"));
  EXPECT_THAT(listed[1], ::testing::HasSubstr(":mapRun:triple/m2:"));
  EXPECT_THAT(listed[2], ::testing::HasSubstr(":mapRun:triple/m1:"));
  for (const std::string& run : listed) {
    auto described = DescribeRun(run);
    EXPECT_EQ(described.status(), "SUCCEEDED");
    EXPECT_EQ(described.execution_counts().succeeded(), 2);
  }
}

}  // namespace
}  // namespace stepflow::execution
