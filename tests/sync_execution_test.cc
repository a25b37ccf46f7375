// StartSyncExecution through a real gateway and three shard servers: the
// call answers with the end of an EXPRESS execution (succeeded, failed, or
// after an activity's worker answered), refuses STANDARD machines and bad
// input, and gives up at the caller's deadline while the execution runs on.
#include <grpcpp/grpcpp.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/config/sharding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/child_process.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using ::testing::StartsWith;
using Stub = v1::StepFunctions::Stub;

constexpr char kActivityArn[] = "arn:aws:states:us-east-1:123456789012:activity:review";

// Fails when the input says so, passes a greeting on otherwise.
constexpr char kChoiceDefinition[] = R"({"StartAt": "Check", "States": {
  "Check": {"Type": "Choice",
            "Choices": [{"Variable": "$.fail", "BooleanEquals": true, "Next": "Boom"}],
            "Default": "Greet"},
  "Greet": {"Type": "Pass", "Result": "hello", "ResultPath": "$.greeting", "End": true},
  "Boom": {"Type": "Fail", "Error": "Told", "Cause": "the input asked for it"}}})";

std::string TaskDefinition() {
  return absl::StrCat(R"({"StartAt": "Review", "States": {"Review": {"Type": "Task",
    "Resource": ")", kActivityArn, R"(", "End": true}}})");
}

class SyncExecutionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::TestCluster::Start(
        {.shard_servers = 3, .logical_shards = 16, .eventbus = false});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    stub_ = v1::StepFunctions::NewStub(cluster_->GatewayChannel());
  }
  void TearDown() override {
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
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
                            const std::string& type, std::string* version_arn = nullptr) {
    v1::CreateStateMachineRequest create;
    create.set_name(name);
    create.set_definition(definition);
    create.set_type(type);
    create.set_role_arn("arn:aws:iam::123456789012:role/stepflow");
    create.set_publish(version_arn != nullptr);
    v1::CreateStateMachineResponse created;
    grpc::Status status = Call(&Stub::CreateStateMachine, create, &created);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (version_arn != nullptr) *version_arn = created.state_machine_version_arn();
    return created.state_machine_arn();
  }

  grpc::Status StartSync(const std::string& arn, const std::string& name, const std::string& input,
                         v1::StartSyncExecutionResponse* response,
                         absl::Duration timeout = absl::Seconds(20)) {
    v1::StartSyncExecutionRequest request;
    request.set_state_machine_arn(arn);
    request.set_name(name);
    request.set_input(input);
    return Call(&Stub::StartSyncExecution, request, response, timeout);
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<Stub> stub_;
};

TEST_F(SyncExecutionTest, AnswersWithTheEndOfTheExecution) {
  std::string version_arn;
  const std::string machine = CreateMachine("greeter", kChoiceDefinition, "EXPRESS", &version_arn);

  v1::StartSyncExecutionResponse succeeded;
  grpc::Status status = StartSync(machine, "ok-1", R"({"who": "you", "fail": false})", &succeeded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(succeeded.status(), "SUCCEEDED");
  EXPECT_EQ(succeeded.output(), R"({"who":"you","fail":false,"greeting":"hello"})");
  EXPECT_EQ(succeeded.input(), R"({"who": "you", "fail": false})");
  EXPECT_EQ(succeeded.name(), "ok-1");
  EXPECT_EQ(succeeded.state_machine_arn(), machine);
  EXPECT_EQ(succeeded.execution_arn(),
            "arn:aws:states:us-east-1:123456789012:execution:greeter:ok-1");
  EXPECT_TRUE(succeeded.error().empty());
  EXPECT_TRUE(succeeded.has_start_date());
  EXPECT_TRUE(succeeded.has_stop_date());
  EXPECT_GE(succeeded.billing_details().billed_duration_in_milliseconds(), 100);
  EXPECT_EQ(succeeded.billing_details().billed_duration_in_milliseconds() % 100, 0);
  EXPECT_EQ(succeeded.billing_details().billed_memory_used_in_mb(), 64);

  v1::StartSyncExecutionResponse failed;
  status = StartSync(machine, "", R"({"fail": true})", &failed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(failed.status(), "FAILED");
  EXPECT_EQ(failed.error(), "Told");
  EXPECT_EQ(failed.cause(), "the input asked for it");
  EXPECT_TRUE(failed.output().empty());
  EXPECT_FALSE(failed.name().empty());  // generated

  // Through a published version too. An execution that ends within its
  // start is not kept (AWS describes no EXPRESS execution), and its name
  // may be used again.
  for (int i = 0; i < 2; ++i) {
    v1::StartSyncExecutionResponse versioned;
    status = StartSync(version_arn, "v-1", R"({"fail": false})", &versioned);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(versioned.status(), "SUCCEEDED");
    EXPECT_EQ(versioned.state_machine_arn(), version_arn);
    v1::DescribeExecutionRequest describe;
    describe.set_execution_arn(versioned.execution_arn());
    v1::DescribeExecutionResponse described;
    EXPECT_EQ(Call(&Stub::DescribeExecution, describe, &described).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(SyncExecutionTest, RefusesStandardMachinesAndBadInput) {
  const std::string standard = CreateMachine("standard", kChoiceDefinition, "STANDARD");
  v1::StartSyncExecutionResponse response;
  grpc::Status status = StartSync(standard, "s-1", "{}", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("StateMachineTypeNotSupported"));

  const std::string express = CreateMachine("express", kChoiceDefinition, "EXPRESS");
  status = StartSync(express, "bad-json", "{not json", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidExecutionInput"));

  status = StartSync(express, "bad name?", "{}", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidName"));

  status = StartSync("arn:aws:states:us-east-1:123456789012:nothing", "n", "{}", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("InvalidArn"));

  status = StartSync("arn:aws:states:us-east-1:123456789012:stateMachine:absent", "n", "{}",
                     &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), StartsWith("StateMachineDoesNotExist"));

  v1::StartSyncExecutionRequest traced;
  traced.set_state_machine_arn(express);
  traced.set_trace_header(std::string(257, 'x'));
  status = Call(&Stub::StartSyncExecution, traced, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SyncExecutionTest, AnswersOnceTheActivityTaskIsDone) {
  v1::CreateActivityRequest activity;
  activity.set_name("review");
  v1::CreateActivityResponse activity_created;
  ASSERT_TRUE(Call(&Stub::CreateActivity, activity, &activity_created).ok());
  const std::string machine = CreateMachine("reviewed", TaskDefinition(), "EXPRESS");

  // A worker that takes one task and answers it.
  std::thread worker([&] {
    v1::GetActivityTaskRequest poll;
    poll.set_activity_arn(kActivityArn);
    poll.set_worker_name("reviewer");
    v1::GetActivityTaskResponse task;
    grpc::Status polled = Call(&Stub::GetActivityTask, poll, &task, absl::Seconds(30));
    ASSERT_TRUE(polled.ok()) << polled.error_message();
    ASSERT_FALSE(task.task_token().empty());
    EXPECT_EQ(task.input(), R"({"doc":1})");
    absl::SleepFor(absl::Milliseconds(200));
    v1::SendTaskSuccessRequest success;
    success.set_task_token(task.task_token());
    success.set_output(R"({"approved":true})");
    v1::SendTaskSuccessResponse sent;
    grpc::Status answered = Call(&Stub::SendTaskSuccess, success, &sent);
    EXPECT_TRUE(answered.ok()) << answered.error_message();
  });
  v1::StartSyncExecutionResponse response;
  grpc::Status status = StartSync(machine, "task-1", R"({"doc":1})", &response);
  worker.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), "SUCCEEDED");
  EXPECT_EQ(response.output(), R"({"approved":true})");
  EXPECT_GE(response.billing_details().billed_duration_in_milliseconds(), 200);
}

TEST_F(SyncExecutionTest, CallerDeadlineEndsTheCallNotTheExecution) {
  v1::CreateActivityRequest activity;
  activity.set_name("review");
  v1::CreateActivityResponse activity_created;
  ASSERT_TRUE(Call(&Stub::CreateActivity, activity, &activity_created).ok());
  const std::string machine = CreateMachine("slow", TaskDefinition(), "EXPRESS");

  v1::StartSyncExecutionResponse response;
  grpc::Status status = StartSync(machine, "slow-1", "{}", &response, absl::Seconds(2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);

  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn("arn:aws:states:us-east-1:123456789012:execution:slow:slow-1");
  v1::DescribeExecutionResponse described;
  ASSERT_TRUE(Call(&Stub::DescribeExecution, describe, &described).ok());
  EXPECT_EQ(described.status(), "RUNNING");
}

// StartSyncExecution calls whose executions wait (here for an activity
// task) hold no thread while they wait, in the gateway or a shard server:
// the transition that closes an execution answers its call.
TEST_F(SyncExecutionTest, WaitingSyncExecutionsHoldNoThreads) {
  v1::CreateActivityRequest activity;
  activity.set_name("review");
  v1::CreateActivityResponse activity_created;
  ASSERT_TRUE(Call(&Stub::CreateActivity, activity, &activity_created).ok());
  const std::string machine = CreateMachine("waiting", TaskDefinition(), "EXPRESS");
  // One execution of the machine on each shard server first: a server's
  // first start of a definition reads it and, since that may wait, is made
  // on a thread of its pool; a burst of such starts leaves the pool's
  // threads lingering a while.
  for (int server = 0, n = 0; server < 3; ++n) {
    const std::string name = absl::StrCat("first-", n);
    const std::string arn =
        absl::StrCat("arn:aws:states:us-east-1:123456789012:execution:waiting:", name);
    if (static_cast<int>(config::ShardOf(arn, 16) % 3) != server) continue;
    v1::StartExecutionRequest start;
    start.set_state_machine_arn(machine);
    start.set_name(name);
    start.set_input(R"({"first":true})");
    v1::StartExecutionResponse started;
    ASSERT_TRUE(Call(&Stub::StartExecution, start, &started).ok());
    v1::GetActivityTaskRequest poll;
    poll.set_activity_arn(kActivityArn);
    v1::GetActivityTaskResponse task;
    ASSERT_TRUE(Call(&Stub::GetActivityTask, poll, &task, absl::Seconds(30)).ok());
    ASSERT_FALSE(task.task_token().empty());
    v1::SendTaskSuccessRequest success;
    success.set_task_token(task.task_token());
    success.set_output("{}");
    v1::SendTaskSuccessResponse sent;
    ASSERT_TRUE(Call(&Stub::SendTaskSuccess, success, &sent).ok());
    ++server;
  }
  const std::vector<pid_t> pids = cluster_->ServerPids();
  auto total_threads = [&] {
    int total = 0;
    for (pid_t pid : pids) total += testing::ThreadCount(pid);
    return total;
  };

  // Calls in flight; each answer is counted by its status.
  struct Calls {
    absl::Mutex mu;
    int answered ABSL_GUARDED_BY(mu) = 0;
    std::map<std::string, int> statuses ABSL_GUARDED_BY(mu);
  } calls;
  constexpr int kCalls = 400;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<v1::StartSyncExecutionRequest> requests(kCalls);
  std::vector<v1::StartSyncExecutionResponse> responses(kCalls);
  const int threads_before = total_threads();
  for (int i = 0; i < kCalls; ++i) {
    // Ten at a time: a start whose state machine another server owns asks
    // that server on a thread of its pool, and a burst of them leaves
    // threads lingering that have nothing to do with waiting.
    if (i % 10 == 0) absl::SleepFor(absl::Milliseconds(25));
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    contexts.back()->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    requests[i].set_state_machine_arn(machine);
    requests[i].set_name(absl::StrCat("wait-", i));
    requests[i].set_input(absl::StrCat(R"({"doc":)", i, "}"));
    stub_->async()->StartSyncExecution(
        contexts.back().get(), &requests[i], &responses[i],
        [&calls, &responses, i](grpc::Status status) {
          absl::MutexLock lock(&calls.mu);
          ++calls.answered;
          ++calls.statuses[status.ok() ? responses[i].status()
                                       : absl::StrCat("code ", status.error_code())];
        });
  }
  // Every execution has started and waits for its task by now.
  absl::SleepFor(absl::Seconds(3));
  const int threads_waiting = total_threads();
  {
    absl::MutexLock lock(&calls.mu);
    EXPECT_EQ(calls.answered, 0);
  }
  std::cout << "threads of the gateway and the shard servers: " << threads_before << " -> "
            << threads_waiting << " with " << kCalls << " sync executions waiting\n";
  // A thread per waiting call would add 400. (gRPC's own threads come and
  // go by dozens under load.)
  EXPECT_LT(threads_waiting - threads_before, kCalls / 4);

  // A worker answers every task; each answer ends a call.
  for (int done = 0; done < kCalls; ++done) {
    v1::GetActivityTaskRequest poll;
    poll.set_activity_arn(kActivityArn);
    v1::GetActivityTaskResponse task;
    grpc::Status polled = Call(&Stub::GetActivityTask, poll, &task, absl::Seconds(30));
    ASSERT_TRUE(polled.ok()) << polled.error_message();
    ASSERT_FALSE(task.task_token().empty()) << "after " << done << " tasks";
    v1::SendTaskSuccessRequest success;
    success.set_task_token(task.task_token());
    success.set_output(task.input());
    v1::SendTaskSuccessResponse sent;
    grpc::Status answered = Call(&Stub::SendTaskSuccess, success, &sent);
    ASSERT_TRUE(answered.ok()) << answered.error_message();
  }
  absl::MutexLock lock(&calls.mu);
  auto all_answered = [&calls]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(calls.mu) {
    return calls.answered == kCalls;
  };
  calls.mu.AwaitWithTimeout(absl::Condition(&all_answered), absl::Seconds(30));
  EXPECT_EQ(calls.answered, kCalls);
  EXPECT_EQ(calls.statuses, (std::map<std::string, int>{{"SUCCEEDED", kCalls}}));
  for (int i = 0; i < kCalls; ++i) {
    if (responses[i].status() != "SUCCEEDED") continue;
    EXPECT_EQ(responses[i].output(), absl::StrCat(R"({"doc":)", i, "}"));
  }
}

}  // namespace
}  // namespace stepflow
