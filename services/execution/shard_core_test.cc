#include "services/execution/shard_core.h"

#include <filesystem>

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
// cluster does.
class LoopbackPeers : public Peers {
 public:
  ShardCore* core = nullptr;
  absl::Status EnqueueActivityTask(const iv1::ActivityTask& task) override {
    return core->EnqueueActivityTask(task);
  }
  absl::Status RecordActivityStarted(const iv1::RecordActivityStartedRequest& r) override {
    return core->RecordActivityStarted(r);
  }
  absl::Status ActivityScheduleFailed(const iv1::ActivityScheduleFailedRequest& r) override {
    return core->ActivityScheduleFailed(r);
  }
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
    core_.reset();
    std::filesystem::remove_all(dir_);
  }
  absl::Status Open(uint32_t shards) {
    core_.reset();
    ShardCoreOptions options;
    options.data_dir = dir_.string();
    options.shard_count = shards;
    options.clock = &clock_;
    auto core = ShardCore::Open(options, &peers_);
    if (!core.ok()) return core.status();
    core_ = std::move(*core);
    peers_.core = core_.get();
    return absl::OkStatus();
  }

  iv1::StateMachineRecord CreateMachine() {
    v1::CreateStateMachineRequest create;
    create.set_name("orders");
    create.set_definition(kDefinition);
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

  std::vector<std::string> HistoryTypes(const std::string& arn) {
    v1::GetExecutionHistoryRequest request;
    request.set_execution_arn(arn);
    v1::GetExecutionHistoryResponse response;
    EXPECT_TRUE(core_->GetExecutionHistory(request, &response).ok());
    std::vector<std::string> types;
    for (const auto& e : response.events()) types.push_back(e.type());
    return types;
  }

  v1::DescribeExecutionResponse Describe(const std::string& arn) {
    v1::DescribeExecutionRequest request;
    request.set_execution_arn(arn);
    v1::DescribeExecutionResponse response;
    EXPECT_TRUE(core_->DescribeExecution(request, &response).ok());
    return response;
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
  v1::SendTaskSuccessRequest success;
  success.set_task_token(task.task_token());
  success.set_output(R"({"charged": true})");
  ASSERT_TRUE(core_->SendTaskSuccess(success).ok());
  auto described = Describe(arn);
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_EQ(described.output(), R"({"order":7,"prep":"ready","result":{"charged":true}})");
  EXPECT_THAT(HistoryTypes(arn),
              ElementsAre("ExecutionStarted", "PassStateEntered", "PassStateExited",
                          "TaskStateEntered", "ActivityScheduled", "ActivityStarted",
                          "ActivitySucceeded", "TaskStateExited", "SucceedStateEntered",
                          "SucceedStateExited", "ExecutionSucceeded"));
  // A second answer for the same task is refused.
  auto again = core_->SendTaskSuccess(success);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.message()), ::testing::StartsWith("TaskTimedOut"));
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
  EXPECT_EQ(core_->SendTaskSuccess(late).code(), absl::StatusCode::kFailedPrecondition);
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

TEST_F(ShardCoreTest, ShardCountIsFixed) {
  auto status = Open(32);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("16 logical shards"));
  EXPECT_TRUE(Open(16).ok());
}

}  // namespace
}  // namespace stepflow::execution
