// `stepflow dev`: the whole cluster in one process, stopped with Ctrl-C
// (SIGINT), its data surviving a restart.
#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/child_process.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using ::testing::HasSubstr;

class DevClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("stepflow-dev-test-", getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    port_ = testing::PickFreePort();
    metrics_port_ = testing::PickFreePort();
  }
  void TearDown() override {
    if (HasFailure() && dev_) std::cerr << dev_->LogTail();
    dev_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartDev() {
    auto dev = testing::ChildProcess::Start(
        "stepflow-dev",
        {STEPFLOW_CLI_BIN, "dev", "--data-dir", (dir_ / "data").string(), "--listen",
         absl::StrCat("127.0.0.1:", port_), "--metrics-listen",
         absl::StrCat("127.0.0.1:", metrics_port_), "--shards", "32"},
        (dir_ / "dev.log").string());
    ASSERT_TRUE(dev.ok()) << dev.status();
    dev_ = std::move(*dev);
    auto ready = dev_->WaitForOutput("Press Ctrl-C to stop.", absl::Seconds(60));
    ASSERT_TRUE(ready.ok()) << ready.status();
    ASSERT_TRUE(testing::WaitServing(address(), absl::Seconds(10)).ok());
    api_ = std::make_unique<testing::StepFunctionsClient>(
        grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
    stub_ = api_->stub();
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  std::string CreateActivity(const std::string& name) { return api_->CreateActivity(name); }
  // Creates state machine `name`, one Task on `activity_arn`; its ARN.
  std::string CreateTaskMachine(const std::string& name, const std::string& activity_arn) {
    return api_->CreateStateMachine(
        name, absl::StrCat(R"({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": ")",
                           activity_arn, R"(", "End": true}}})"));
  }

  std::filesystem::path dir_;
  int port_ = 0;
  int metrics_port_ = 0;
  std::unique_ptr<testing::ChildProcess> dev_;
  std::unique_ptr<testing::StepFunctionsClient> api_;
  v1::StepFunctions::Stub* stub_ = nullptr;  // api_'s
};

TEST_F(DevClusterTest, PrintsEndpointsStopsOnCtrlCAndKeepsData) {
  ASSERT_NO_FATAL_FAILURE(StartDev());
  std::string log = dev_->LogTail();
  EXPECT_THAT(log, HasSubstr(absl::StrCat("gateway (public API): 127.0.0.1:", port_)));
  EXPECT_THAT(log, HasSubstr("kafka (embedded):"));
  EXPECT_THAT(log, HasSubstr("eventbus:"));
  EXPECT_THAT(log, HasSubstr(absl::StrCat("metrics:              http://127.0.0.1:", metrics_port_)));

  v1::CreateStateMachineRequest create;
  create.set_name("dev-machine");
  create.set_definition(R"({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": true}, "End": true}}})");
  v1::CreateStateMachineResponse created;
  grpc::ClientContext c1;
  ASSERT_TRUE(stub_->CreateStateMachine(&c1, create, &created).ok());
  v1::StartExecutionRequest start;
  start.set_state_machine_arn(created.state_machine_arn());
  start.set_name("first");
  v1::StartExecutionResponse started;
  grpc::ClientContext c2;
  ASSERT_TRUE(stub_->StartExecution(&c2, start, &started).ok());

  auto metrics = testing::HttpGet(absl::StrCat("127.0.0.1:", metrics_port_), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics, HasSubstr("method=\"StartExecution\""));
  // The gateway calls the shard server in its process directly (no shard
  // RPC metrics); the shard's own metrics are there.
  EXPECT_THAT(*metrics, HasSubstr("stepflow_shard_transitions_total 1"));

  EXPECT_EQ(dev_->Stop(SIGINT, absl::Seconds(20)), 0);
  EXPECT_THAT(dev_->LogTail(), HasSubstr("Stepflow dev cluster stopped."));

  ASSERT_NO_FATAL_FAILURE(StartDev());
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(started.execution_arn());
  v1::DescribeExecutionResponse described;
  grpc::ClientContext c3;
  ASSERT_TRUE(stub_->DescribeExecution(&c3, describe, &described).ok());
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_EQ(described.output(), R"({"ok":true})");
  EXPECT_EQ(dev_->Stop(SIGTERM, absl::Seconds(20)), 0);
}

// The gateway calls the shard server of its process directly: the caller's
// deadline still ends the gateway's and the shard's work on a synchronous
// start (the execution runs on).
TEST_F(DevClusterTest, InProcessCallsKeepTheCallersDeadline) {
  ASSERT_NO_FATAL_FAILURE(StartDev());
  v1::CreateStateMachineRequest create;
  create.set_name("dev-slow");
  create.set_type("EXPRESS");
  create.set_definition(R"({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": true}}})");
  v1::CreateStateMachineResponse created;
  grpc::ClientContext c1;
  ASSERT_TRUE(stub_->CreateStateMachine(&c1, create, &created).ok());

  v1::StartSyncExecutionRequest start;
  start.set_state_machine_arn(created.state_machine_arn());
  start.set_name("short-deadline");
  v1::StartSyncExecutionResponse response;
  grpc::ClientContext c2;
  c2.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
  EXPECT_EQ(stub_->StartSyncExecution(&c2, start, &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);

  // The gateway's handler returned soon after the deadline (its metrics
  // count a call only once it has returned), not when the Wait ends.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  bool handled = false;
  while (!handled && absl::Now() < give_up) {
    auto metrics = testing::HttpGet(absl::StrCat("127.0.0.1:", metrics_port_), "/metrics");
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    handled = absl::StrContains(*metrics, "method=\"StartSyncExecution\"");
    if (!handled) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(handled) << "the synchronous start was still being served 10 s after its deadline";
  EXPECT_EQ(dev_->Stop(SIGTERM, absl::Seconds(20)), 0);
}

// In one process the gateway's stream polls wait in the task queue without
// a thread: tasks still come only against credits, their reports are
// answered on the stream, and a stream cancelled while its polls wait
// ends, and lets the cluster stop, promptly.
TEST_F(DevClusterTest, StreamsKeepToCreditsAndEndPromptly) {
  ASSERT_NO_FATAL_FAILURE(StartDev());
  const std::string activity_arn = CreateActivity("dev-work");
  const std::string machine_arn = CreateTaskMachine("dev-task", activity_arn);
  ASSERT_FALSE(machine_arn.empty());

  grpc::ClientContext stream_context;
  auto stream = api_->OpenTaskStream(&stream_context, activity_arn, "dev-streamer", /*credits=*/1);

  std::vector<std::string> executions;
  for (int i = 0; i < 3; ++i) {
    v1::StartExecutionRequest start;
    start.set_state_machine_arn(machine_arn);
    start.set_input(absl::StrCat(R"({"i": )", i, "}"));
    v1::StartExecutionResponse started;
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->StartExecution(&c, start, &started).ok());
    executions.push_back(started.execution_arn());
  }
  // Reads messages until `tasks` tasks and `answers` answers came.
  int tasks_seen = 0;
  int answers_seen = 0;
  std::vector<std::string> tokens;
  auto read_until = [&](int tasks, int answers) {
    v1::StreamActivityTasksResponse message;
    while ((tasks_seen < tasks || answers_seen < answers) && stream->Read(&message)) {
      for (const auto& task : message.tasks()) tokens.push_back(task.task_token());
      tasks_seen += message.tasks_size();
      for (const auto& answer : message.answers()) EXPECT_EQ(answer.code(), 0) << answer.message();
      answers_seen += message.answers_size();
    }
  };
  read_until(1, 0);
  ASSERT_EQ(tasks_seen, 1);
  // One credit: the other two tasks wait, however long.
  v1::StreamActivityTasksRequest report;
  auto* success = report.add_reports();
  success->set_report_id(1);
  success->mutable_success()->set_task_token(tokens[0]);
  success->mutable_success()->set_output("{}");
  ASSERT_TRUE(stream->Write(report));
  read_until(1, 1);
  absl::SleepFor(absl::Milliseconds(1500));
  v1::StreamActivityTasksRequest more;
  more.set_credits(2);
  ASSERT_TRUE(stream->Write(more));
  read_until(3, 1);
  ASSERT_EQ(tasks_seen, 3) << "a task came without a credit, or none came with one";
  v1::StreamActivityTasksRequest rest;
  for (int i = 1; i < 3; ++i) {
    auto* r = rest.add_reports();
    r->set_report_id(static_cast<uint64_t>(i + 1));
    r->mutable_success()->set_task_token(tokens[static_cast<size_t>(i)]);
    r->mutable_success()->set_output("{}");
  }
  rest.set_credits(1);  // a poll waits again, for nothing
  ASSERT_TRUE(stream->Write(rest));
  read_until(3, 3);
  EXPECT_EQ(answers_seen, 3);
  for (const std::string& execution : executions) {
    v1::DescribeExecutionRequest describe;
    describe.set_execution_arn(execution);
    v1::DescribeExecutionResponse described;
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->DescribeExecution(&c, describe, &described).ok());
    EXPECT_EQ(described.status(), "SUCCEEDED") << execution;
  }

  const absl::Time cancelled_at = absl::Now();
  stream_context.TryCancel();
  v1::StreamActivityTasksResponse ignored;
  while (stream->Read(&ignored)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(dev_->Stop(SIGTERM, absl::Seconds(20)), 0);
  EXPECT_LT(absl::Now() - cancelled_at, absl::Seconds(10));
}

// A worker on a stream returns each task's credit with its report. The
// credit waits as a poll before the report's transition runs, so the
// execution's next task goes to it in that transition's own write: every
// task of a workflow of several is a sync match, none goes through the
// backlog (and a hand-over transition of its own).
TEST_F(DevClusterTest, ANextTaskMeetsTheCreditItsReportReturned) {
  ASSERT_NO_FATAL_FAILURE(StartDev());
  const std::string activity_arn = CreateActivity("dev-steps");
  const std::string task = absl::StrCat(R"({"Type": "Task", "Resource": ")", activity_arn, R"(", )");
  const std::string machine_arn = api_->CreateStateMachine(
      "dev-steps", absl::StrCat(R"({"StartAt": "A", "States": {"A": )", task, R"("Next": "B"}, "B": )",
                                task, R"("Next": "C"}, "C": )", task, R"("End": true}}})"));
  ASSERT_FALSE(machine_arn.empty());

  grpc::ClientContext stream_context;
  auto stream = api_->OpenTaskStream(&stream_context, activity_arn, "dev-steps", /*credits=*/1);
  const std::string label = "activity=\"dev-steps\"";
  auto metric = [&](const std::string& result) {
    auto page = testing::HttpGet(absl::StrCat("127.0.0.1:", metrics_port_), "/metrics");
    EXPECT_TRUE(page.ok()) << page.status();
    double total = 0;
    for (absl::string_view line : absl::StrSplit(page.value_or(""), '\n')) {
      if (!absl::StartsWith(line, "stepflow_activity_polls_total{") ||
          !absl::StrContains(line, label) ||
          !absl::StrContains(line, absl::StrCat("result=\"", result, "\""))) {
        continue;
      }
      double value = 0;
      if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) total += value;
    }
    return total;
  };

  v1::StartExecutionRequest start;
  start.set_state_machine_arn(machine_arn);
  start.set_input("{}");
  v1::StartExecutionResponse started;
  {
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->StartExecution(&c, start, &started).ok());
  }
  uint64_t report_id = 0;
  int answers = 0;
  // The first task may come before the first poll waited (it looks the
  // activity up first): it is not counted.
  double sync_before = 0;
  double backlog_before = 0;
  v1::StreamActivityTasksResponse message;
  while (answers < 3 && stream->Read(&message)) {
    for (const auto& answer : message.answers()) {
      EXPECT_EQ(answer.code(), 0) << answer.message();
      ++answers;
    }
    if (message.tasks_size() == 0) continue;
    if (report_id == 0) {
      sync_before = metric("sync_match");
      backlog_before = metric("backlog");
    }
    v1::StreamActivityTasksRequest report;
    for (const auto& delivered : message.tasks()) {
      auto* success = report.add_reports();
      success->set_report_id(++report_id);
      success->mutable_success()->set_task_token(delivered.task_token());
      success->mutable_success()->set_output("{}");
    }
    report.set_credits(message.tasks_size());
    ASSERT_TRUE(stream->Write(report));
  }
  EXPECT_EQ(report_id, 3u);
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(started.execution_arn());
  v1::DescribeExecutionResponse described;
  {
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->DescribeExecution(&c, describe, &described).ok());
  }
  EXPECT_EQ(described.status(), "SUCCEEDED");
  EXPECT_EQ(metric("sync_match") - sync_before, 2);
  EXPECT_EQ(metric("backlog") - backlog_before, 0);

  stream_context.TryCancel();
  v1::StreamActivityTasksResponse ignored;
  while (stream->Read(&ignored)) {
  }
  (void)stream->Finish();
}

// Idle long polls do not hold up a stop: a poll waits in its task queue
// without a thread, the first one of an activity too (made again where it
// may look the activity up), and notices its caller going away within a
// second, not after a thread's recheck.
TEST_F(DevClusterTest, IdleLongPollsDoNotHoldUpAStop) {
  ASSERT_NO_FATAL_FAILURE(StartDev());
  const std::string activity_arn = CreateActivity("dev-idle");
  ASSERT_FALSE(activity_arn.empty());

  constexpr int kPolls = 4;
  grpc::CompletionQueue queue;
  struct Poll {
    grpc::ClientContext context;
    v1::GetActivityTaskResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::GetActivityTaskResponse>> call;
  };
  std::vector<Poll> polls(kPolls);
  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(activity_arn);
  poll.set_worker_name("idle");
  for (Poll& p : polls) {
    p.context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(65)));
    p.call = stub_->AsyncGetActivityTask(&p.context, poll, &queue);
    p.call->Finish(&p.response, &p.status, &p);
  }
  // Long enough for them to wait in the queue.
  absl::SleepFor(absl::Milliseconds(500));
  const absl::Time stopping = absl::Now();
  EXPECT_EQ(dev_->Stop(SIGTERM, absl::Seconds(30)), 0);
  EXPECT_LT(absl::Now() - stopping, absl::Seconds(10));
  for (int i = 0; i < kPolls; ++i) {
    void* tag = nullptr;
    bool ok = false;
    ASSERT_TRUE(queue.Next(&tag, &ok));
    EXPECT_TRUE(static_cast<Poll*>(tag)->response.task_token().empty());
  }
  queue.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (queue.Next(&tag, &ok)) {
  }
}

// In one process the gateway's long poll waits in the shard's task queue
// without a thread: one whose caller went away gets no task, the next
// poll does.
TEST_F(DevClusterTest, LongPollsThatWentAwayGetNoTask) {
  ASSERT_NO_FATAL_FAILURE(StartDev());
  const std::string activity_arn = CreateActivity("dev-gone");
  const std::string machine_arn = CreateTaskMachine("dev-gone", activity_arn);
  ASSERT_FALSE(machine_arn.empty());

  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(activity_arn);
  poll.set_worker_name("gone");
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    // Waiting in the queue when it goes.
    EXPECT_EQ(api_->PollAndGoAway(poll, absl::Milliseconds(500)).error_code(),
              grpc::StatusCode::CANCELLED);
    absl::SleepFor(absl::Milliseconds(300));
    v1::StartExecutionRequest start;
    start.set_state_machine_arn(machine_arn);
    start.set_input(absl::StrCat(R"({"round": )", round, "}"));
    v1::StartExecutionResponse started;
    grpc::ClientContext c3;
    ASSERT_TRUE(stub_->StartExecution(&c3, start, &started).ok());
    v1::GetActivityTaskRequest here = poll;
    here.set_worker_name("here");
    v1::GetActivityTaskResponse task;
    grpc::ClientContext c4;
    c4.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    const absl::Time asked = absl::Now();
    ASSERT_TRUE(stub_->GetActivityTask(&c4, here, &task).ok());
    EXPECT_FALSE(task.task_token().empty()) << "the task went to the poll that went away";
    EXPECT_LT(absl::Now() - asked, absl::Seconds(5));
    if (task.task_token().empty()) break;
    v1::SendTaskSuccessRequest success;
    success.set_task_token(task.task_token());
    success.set_output("{}");
    v1::SendTaskSuccessResponse succeeded;
    grpc::ClientContext c5;
    ASSERT_TRUE(stub_->SendTaskSuccess(&c5, success, &succeeded).ok());
  }
  EXPECT_EQ(dev_->Stop(SIGTERM, absl::Seconds(20)), 0);
}

TEST_F(DevClusterTest, RefusesADifferentShardCount) {
  ASSERT_NO_FATAL_FAILURE(StartDev());
  EXPECT_EQ(dev_->Stop(SIGINT, absl::Seconds(20)), 0);
  auto dev = testing::ChildProcess::Start(
      "stepflow-dev",
      {STEPFLOW_CLI_BIN, "dev", "--data-dir", (dir_ / "data").string(), "--listen",
       absl::StrCat("127.0.0.1:", port_), "--metrics-listen", "", "--shards", "64"},
      (dir_ / "dev2.log").string());
  ASSERT_TRUE(dev.ok());
  auto line = (*dev)->WaitForOutput("logical shards, but", absl::Seconds(30));
  EXPECT_TRUE(line.ok()) << line.status();
  EXPECT_EQ((*dev)->Stop(SIGTERM, absl::Seconds(10)), 1);
}

}  // namespace
}  // namespace stepflow
