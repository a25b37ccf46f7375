// Activity task queues through a real gateway and three shard servers:
// partitions spread over the servers without starving any poller, batch
// polls, streaming delivery with credits, workers in several processes,
// a worker killed mid-task whose attempt times out and is retried on
// another worker (its late completion refused), tasks for a server that is
// down holding back no others, forged tokens, the
// callback pattern across a restart of every process, and idle long polls
// that cost no CPU.
#include <grpcpp/grpcpp.h>

#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "absl/functional/function_ref.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/config/sharding.h"
#include "common/json/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

using ::testing::HasSubstr;
using Stub = v1::StepFunctions::Stub;

constexpr char kArnPrefix[] = "arn:aws:states:us-east-1:123456789012:activity:";

class ActivityQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::TestCluster::Start(
        {.shard_servers = 3, .logical_shards = 16, .eventbus = false});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    api_ = std::make_unique<testing::StepFunctionsClient>(cluster_->GatewayChannel());
    stub_ = api_->stub();
  }
  void TearDown() override {
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
  }

  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response,
                    absl::Duration timeout = absl::Seconds(20)) {
    return api_->Call(method, request, response, timeout);
  }
  std::string CreateActivity(const std::string& name) { return api_->CreateActivity(name); }
  std::string CreateMachine(const std::string& name, const std::string& definition) {
    return api_->CreateStateMachine(name, definition);
  }
  using TaskStream = testing::StepFunctionsClient::TaskStream;
  std::unique_ptr<TaskStream> OpenStream(grpc::ClientContext* context, const std::string& activity,
                                         const std::string& worker, int credits) {
    return api_->OpenTaskStream(context, activity, worker, credits);
  }
  std::string Start(const std::string& machine, const std::string& input) {
    return api_->StartExecution(machine, input);
  }
  v1::DescribeExecutionResponse WaitClosed(const std::string& execution) {
    return api_->AwaitClosed(execution);
  }
  std::vector<v1::HistoryEvent> History(const std::string& execution) {
    return api_->History(execution);
  }

  // Reports the task of `token` done.
  void Succeed(const std::string& token) {
    v1::SendTaskSuccessRequest success;
    success.set_task_token(token);
    success.set_output("{}");
    v1::SendTaskSuccessResponse succeeded;
    grpc::Status status = Call(&Stub::SendTaskSuccess, success, &succeeded);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  // Gets the task of the one-Task `execution` (whose input says "waiting")
  // with `poll` (10 s), answers it and checks that the execution succeeds;
  // `missing` says what a poll that got nothing means.
  void TakeWaitingTaskAndSucceed(const v1::GetActivityTaskRequest& poll,
                                 const std::string& execution, const std::string& missing) {
    v1::GetActivityTaskResponse task;
    grpc::Status status = Call(&Stub::GetActivityTask, poll, &task, absl::Seconds(10));
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_FALSE(task.task_token().empty()) << missing;
    EXPECT_THAT(task.input(), HasSubstr("waiting"));
    Succeed(task.task_token());
    EXPECT_EQ(WaitClosed(execution).status(), "SUCCEEDED");
  }

  // An activity `base`-N whose queue has a partition away from the
  // activity's own server (`home`), its one-Task machine, and the name of
  // an execution whose record and first task are both on servers other
  // than `home`.
  struct AwayFromHome {
    std::string activity_name;
    std::string activity;
    std::string machine;
    int home = -1;
    std::string execution_name;
  };
  AwayFromHome ExecutionAwayFromHome(const std::string& base);

  // A poll with a 3 s deadline while nothing comes: an empty token, about
  // a second before the deadline.
  void ExpectEmptyInTime(const v1::GetActivityTaskRequest& poll) {
    v1::GetActivityTaskResponse task;
    const absl::Time asked = absl::Now();
    grpc::Status status = Call(&Stub::GetActivityTask, poll, &task, absl::Seconds(3));
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(task.task_token().empty());
    EXPECT_GE(absl::Now() - asked, absl::Milliseconds(1500));
    EXPECT_LT(absl::Now() - asked, absl::Seconds(3));
  }

  // Makes `poll` (with `timeout`), runs `meanwhile` once it waits on the
  // servers, and returns what it got.
  v1::GetActivityTaskResponse PollWhile(const v1::GetActivityTaskRequest& poll,
                                        absl::Duration timeout,
                                        absl::FunctionRef<void()> meanwhile) {
    v1::GetActivityTaskResponse task;
    grpc::Status status;
    std::thread waiting([&] { status = Call(&Stub::GetActivityTask, poll, &task, timeout); });
    absl::SleepFor(absl::Milliseconds(500));
    meanwhile();
    waiting.join();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return task;
  }

  int CountEvents(const std::string& execution, const std::string& type) {
    int count = 0;
    for (const v1::HistoryEvent& event : History(execution)) count += event.type() == type;
    return count;
  }

  // Waits until the history of `execution` has `count` events of `type`.
  bool WaitForEvents(const std::string& execution, const std::string& type, int count,
                     absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      if (CountEvents(execution, type) >= count) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<testing::StepFunctionsClient> api_;
  Stub* stub_ = nullptr;
};

std::string TaskDefinition(const std::string& activity, const std::string& extra = "") {
  return absl::StrCat(R"({"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": ")",
                      activity, R"(", )", extra, R"( "End": true}}})");
}

TEST_F(ActivityQueueTest, BatchPollsGatherTasksFromEveryPartition) {
  const std::string activity = CreateActivity("gather");
  const std::string machine = CreateMachine("gather", TaskDefinition(activity));
  constexpr int kExecutions = 40;
  std::vector<std::string> executions;
  for (int i = 0; i < kExecutions; ++i) {
    executions.push_back(Start(machine, absl::StrCat(R"({"n": )", i, "}")));
  }
  // One poller must get all of them, though the tasks sit in partitions on
  // three servers.
  std::set<std::string> tokens;
  const absl::Time end = absl::Now() + absl::Seconds(30);
  while (static_cast<int>(tokens.size()) < kExecutions && absl::Now() < end) {
    v1::GetActivityTasksRequest poll;
    poll.set_activity_arn(activity);
    poll.set_worker_name("batcher");
    poll.set_max_tasks(7);
    v1::GetActivityTasksResponse batch;
    grpc::Status status = Call(&Stub::GetActivityTasks, poll, &batch, absl::Seconds(70));
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(batch.tasks_size(), 7);
    for (const v1::DeliveredActivityTask& task : batch.tasks()) {
      EXPECT_TRUE(tokens.insert(task.task_token()).second) << "a task was delivered twice";
      v1::SendTaskSuccessRequest done;
      done.set_task_token(task.task_token());
      done.set_output(task.input());
      v1::SendTaskSuccessResponse ok;
      ASSERT_TRUE(Call(&Stub::SendTaskSuccess, done, &ok).ok());
    }
  }
  EXPECT_EQ(tokens.size(), static_cast<size_t>(kExecutions));
  for (const std::string& execution : executions) {
    EXPECT_EQ(WaitClosed(execution).status(), "SUCCEEDED");
  }

  // Bad batch sizes and unknown activities are refused.
  v1::GetActivityTasksRequest bad;
  bad.set_activity_arn(activity);
  v1::GetActivityTasksResponse none;
  bad.set_max_tasks(0);
  EXPECT_EQ(Call(&Stub::GetActivityTasks, bad, &none).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad.set_max_tasks(101);
  EXPECT_EQ(Call(&Stub::GetActivityTasks, bad, &none).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad.set_max_tasks(1);
  bad.set_activity_arn(absl::StrCat(kArnPrefix, "nobody"));
  grpc::Status missing = Call(&Stub::GetActivityTasks, bad, &none);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(missing.error_message(), HasSubstr("ActivityDoesNotExist"));
}

TEST_F(ActivityQueueTest, StreamSendsNoMoreTasksThanCredits) {
  const std::string activity = CreateActivity("streamed");
  const std::string machine = CreateMachine("streamed", TaskDefinition(activity));

  grpc::ClientContext context;
  auto stream = OpenStream(&context, activity, "streamer", 2);

  absl::Mutex mu;
  std::vector<v1::DeliveredActivityTask> received;
  std::thread reader([&] {
    v1::StreamActivityTasksResponse message;
    while (stream->Read(&message)) {
      absl::MutexLock lock(&mu);
      for (const v1::DeliveredActivityTask& task : message.tasks()) received.push_back(task);
    }
  });
  auto received_count = [&] {
    absl::MutexLock lock(&mu);
    return received.size();
  };
  auto wait_for = [&](size_t count) {
    const absl::Time end = absl::Now() + absl::Seconds(20);
    while (received_count() < count && absl::Now() < end) absl::SleepFor(absl::Milliseconds(20));
    return received_count();
  };

  std::vector<std::string> executions;
  for (int i = 0; i < 5; ++i) executions.push_back(Start(machine, absl::StrCat(R"({"i": )", i, "}")));
  EXPECT_EQ(wait_for(2), 2u);
  // Out of credits: nothing more arrives, though three tasks wait.
  absl::SleepFor(absl::Milliseconds(1500));
  EXPECT_EQ(received_count(), 2u);

  v1::StreamActivityTasksRequest more;
  more.set_credits(3);
  ASSERT_TRUE(stream->Write(more));
  EXPECT_EQ(wait_for(5), 5u);

  std::vector<v1::DeliveredActivityTask> tasks;
  {
    absl::MutexLock lock(&mu);
    tasks = received;
  }
  for (const v1::DeliveredActivityTask& task : tasks) {
    v1::SendTaskSuccessRequest done;
    done.set_task_token(task.task_token());
    done.set_output(task.input());
    v1::SendTaskSuccessResponse ok;
    ASSERT_TRUE(Call(&Stub::SendTaskSuccess, done, &ok).ok());
  }
  for (const std::string& execution : executions) {
    EXPECT_EQ(WaitClosed(execution).status(), "SUCCEEDED");
  }
  // Half-closing ends the stream cleanly.
  stream->WritesDone();
  reader.join();
  grpc::Status finished = stream->Finish();
  EXPECT_TRUE(finished.ok()) << finished.error_message();
}

// Results go back on the stream that delivered the tasks, each answered
// there as the unary call would be: the first success closes its
// execution, a repeated one and a forged token are refused with AWS's
// errors, and a heartbeat is taken.
TEST_F(ActivityQueueTest, StreamCarriesReportsAndTheirAnswers) {
  const std::string activity = CreateActivity("reported");
  const std::string machine = CreateMachine("reported", TaskDefinition(activity));

  grpc::ClientContext context;
  auto stream = OpenStream(&context, activity, "reporter", 2);
  const std::string first = Start(machine, R"({"n": 1})");
  const std::string second = Start(machine, R"({"n": 2})");

  std::vector<v1::DeliveredActivityTask> tasks;
  v1::StreamActivityTasksResponse message;
  while (tasks.size() < 2 && stream->Read(&message)) {
    EXPECT_EQ(message.answers_size(), 0);
    for (const auto& task : message.tasks()) tasks.push_back(task);
  }
  ASSERT_EQ(tasks.size(), 2u);
  auto task_of = [&](const std::string& n) {
    for (const auto& task : tasks) {
      if (absl::StrContains(task.input(), n)) return task;
    }
    ADD_FAILURE() << "no task with input " << n;
    return v1::DeliveredActivityTask();
  };
  const v1::DeliveredActivityTask one = task_of("1");
  const v1::DeliveredActivityTask two = task_of("2");

  v1::StreamActivityTasksRequest reports;
  auto* heartbeat = reports.add_reports();
  heartbeat->set_report_id(10);
  heartbeat->mutable_heartbeat()->set_task_token(two.task_token());
  auto* success = reports.add_reports();
  success->set_report_id(11);
  success->mutable_success()->set_task_token(one.task_token());
  success->mutable_success()->set_output(R"({"one": true})");
  auto* forged = reports.add_reports();
  forged->set_report_id(12);
  forged->mutable_success()->set_task_token("bm90LWEtdG9rZW4");
  forged->mutable_success()->set_output("{}");
  auto* bad_output = reports.add_reports();
  bad_output->set_report_id(13);
  bad_output->mutable_success()->set_task_token(two.task_token());
  bad_output->mutable_success()->set_output("{not json");
  auto* failure = reports.add_reports();
  failure->set_report_id(14);
  failure->mutable_failure()->set_task_token(two.task_token());
  failure->mutable_failure()->set_error("Broken");
  failure->mutable_failure()->set_cause("on purpose");
  reports.add_reports()->set_report_id(15);  // says nothing
  ASSERT_TRUE(stream->Write(reports));

  // Answers may come in any order (the reports run at once).
  std::map<uint64_t, v1::TaskReportAnswer> answers;
  while (answers.size() < 6 && stream->Read(&message)) {
    EXPECT_EQ(message.tasks_size(), 0);
    for (const auto& answer : message.answers()) answers[answer.report_id()] = answer;
  }
  ASSERT_EQ(answers.size(), 6u);
  EXPECT_EQ(answers[11].code(), 0) << answers[11].message();
  EXPECT_EQ(answers[12].code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_THAT(answers[12].message(), HasSubstr("InvalidToken"));
  EXPECT_EQ(answers[13].code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_THAT(answers[13].message(), HasSubstr("InvalidOutput"));
  EXPECT_EQ(answers[15].code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  // The heartbeat and the failure of task two race each other: the
  // heartbeat is taken, or refused because the task had failed already.
  EXPECT_EQ(answers[14].code(), 0) << answers[14].message();
  if (answers[10].code() != 0) {
    EXPECT_THAT(answers[10].message(), HasSubstr("Task"));
  }

  EXPECT_EQ(WaitClosed(first).output(), R"({"one":true})");
  v1::DescribeExecutionResponse failed = WaitClosed(second);
  EXPECT_EQ(failed.status(), "FAILED");
  EXPECT_EQ(failed.error(), "Broken");

  // A result reported twice is refused the second time.
  v1::StreamActivityTasksRequest again;
  auto* repeat = again.add_reports();
  repeat->set_report_id(20);
  repeat->mutable_success()->set_task_token(one.task_token());
  repeat->mutable_success()->set_output("{}");
  ASSERT_TRUE(stream->Write(again));
  // Half-closed at once: the answer still comes before the stream ends.
  stream->WritesDone();
  ASSERT_TRUE(stream->Read(&message));
  ASSERT_EQ(message.answers_size(), 1);
  EXPECT_EQ(message.answers(0).report_id(), 20u);
  EXPECT_NE(message.answers(0).code(), 0);
  EXPECT_FALSE(stream->Read(&message));
  grpc::Status finished = stream->Finish();
  EXPECT_TRUE(finished.ok()) << finished.error_message();
}

// A worker that goes away while its stream waits for tasks takes none with
// it: the next task goes to a stream still there, at once.
TEST_F(ActivityQueueTest, TasksGoToStreamsStillThereNotToOnesThatWentAway) {
  const std::string activity = CreateActivity("survivor");
  const std::string machine = CreateMachine("survivor", TaskDefinition(activity));
  grpc::ClientContext gone_context;
  auto gone = OpenStream(&gone_context, activity, "gone", 1);
  // Long enough for its poll to be waiting on the shard.
  absl::SleepFor(absl::Milliseconds(300));
  gone_context.TryCancel();
  v1::StreamActivityTasksResponse message;
  EXPECT_FALSE(gone->Read(&message));
  EXPECT_EQ(gone->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The cancellation reaches the gateway a moment later.
  absl::SleepFor(absl::Milliseconds(200));

  grpc::ClientContext here_context;
  auto here = OpenStream(&here_context, activity, "here", 1);
  const absl::Time started = absl::Now();
  const std::string execution = Start(machine, R"({"for": "here"})");
  ASSERT_TRUE(here->Read(&message));
  ASSERT_EQ(message.tasks_size(), 1);
  EXPECT_THAT(message.tasks(0).input(), HasSubstr("here"));
  // Not after a task timeout: the stream that went away never held it.
  EXPECT_LT(absl::Now() - started, absl::Seconds(10));
  v1::StreamActivityTasksRequest report;
  auto* success = report.add_reports();
  success->set_report_id(1);
  success->mutable_success()->set_task_token(message.tasks(0).task_token());
  success->mutable_success()->set_output("{}");
  ASSERT_TRUE(here->Write(report));
  ASSERT_TRUE(here->Read(&message));
  ASSERT_EQ(message.answers_size(), 1);
  EXPECT_EQ(message.answers(0).code(), 0) << message.answers(0).message();
  here->WritesDone();
  EXPECT_FALSE(here->Read(&message));
  EXPECT_TRUE(here->Finish().ok());
  v1::DescribeExecutionResponse done = WaitClosed(execution);
  EXPECT_EQ(done.status(), "SUCCEEDED");
  for (const v1::HistoryEvent& event : History(execution)) {
    if (event.type() == "ActivityStarted") {
      EXPECT_EQ(event.activity_started_event_details().worker_name(), "here");
    }
  }
}

// `count` long polls of `activity_arn` made at once, without a thread each.
class WaitingPolls {
 public:
  WaitingPolls(Stub* stub, const std::string& activity_arn, int count, absl::Duration timeout) {
    v1::GetActivityTaskRequest request;
    request.set_activity_arn(activity_arn);
    for (int i = 0; i < count; ++i) {
      auto poll = std::make_unique<Poll>();
      poll->context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
      poll->reader = stub->AsyncGetActivityTask(&poll->context, request, &queue_);
      poll->reader->Finish(&poll->response, &poll->status, poll.get());
      polls_.push_back(std::move(poll));
    }
  }
  // Ends the polls not answered yet (a test that failed half-way).
  ~WaitingPolls() {
    CancelAll();
    queue_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (queue_.Next(&tag, &ok)) {
    }
  }

  void CancelAll() {
    for (auto& poll : polls_) poll->context.TryCancel();
  }
  // Waits for every answer: each is empty, and OK or one of `codes`.
  void ExpectAllEmpty(const std::set<grpc::StatusCode>& codes) {
    for (; answered_ < polls_.size(); ++answered_) {
      void* tag = nullptr;
      bool ok = false;
      ASSERT_TRUE(queue_.Next(&tag, &ok));
      const Poll* done = static_cast<const Poll*>(tag);
      EXPECT_TRUE(done->status.ok() || codes.count(done->status.error_code()) > 0)
          << done->status.error_code() << " " << done->status.error_message();
      EXPECT_TRUE(done->response.task_token().empty());
    }
  }

 private:
  struct Poll {
    grpc::ClientContext context;
    v1::GetActivityTaskResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::GetActivityTaskResponse>> reader;
  };
  grpc::CompletionQueue queue_;
  std::vector<std::unique_ptr<Poll>> polls_;
  size_t answered_ = 0;
};

// How many of the three servers hold partitions of `activity_arn`'s queue.
size_t PartitionServers(const std::string& activity_arn) {
  std::set<uint32_t> servers;
  for (int partition = 0; partition < config::kDefaultTaskQueuePartitions; ++partition) {
    servers.insert(config::ShardOf(config::TaskQueuePartitionKey(activity_arn, partition), 16) % 3);
  }
  return servers.size();
}

// The first name of `base`-0, `base`-1, ... whose queue's partitions are
// held by one server (`spread` false) or by more than one.
std::string ActivityNameOn(const std::string& base, bool spread) {
  for (int i = 0;; ++i) {
    std::string name = absl::StrCat(base, "-", i);
    if ((PartitionServers(absl::StrCat(kArnPrefix, name)) > 1) == spread) return name;
  }
}

// Unary long polls, both when one server holds the whole queue (one
// asynchronous call there, no thread waiting in the gateway) and when
// several do: an empty answer before the caller's deadline, a batch, and a
// poll that went away gets nothing (its task goes to the next poll).
TEST_F(ActivityQueueTest, LongPollsAnswerEmptyInTimeAndGiveNothingToPollsThatWentAway) {
  for (const bool spread : {false, true}) {
    SCOPED_TRACE(spread ? "partitions on several servers" : "partitions on one server");
    const std::string name = ActivityNameOn(spread ? "spread" : "solo", spread);
    const std::string activity = CreateActivity(name);
    const std::string machine = CreateMachine(name, TaskDefinition(activity));

    // Nothing comes: an empty token, a second before the caller's deadline.
    v1::GetActivityTaskRequest poll;
    poll.set_activity_arn(activity);
    poll.set_worker_name("patient");
    ExpectEmptyInTime(poll);

    // A poll that goes away while it waits (long enough for it to wait on
    // the shard servers).
    EXPECT_EQ(api_->PollAndGoAway(poll, absl::Milliseconds(300)).error_code(),
              grpc::StatusCode::CANCELLED);
    // The cancellation reaches the servers a moment later.
    absl::SleepFor(absl::Milliseconds(300));
    const std::string first = Start(machine, R"({"n": 1})");
    const absl::Time asked = absl::Now();
    poll.set_worker_name("here");
    v1::GetActivityTaskResponse task;
    ASSERT_TRUE(Call(&Stub::GetActivityTask, poll, &task).ok());
    ASSERT_FALSE(task.task_token().empty());
    EXPECT_THAT(task.input(), HasSubstr(R"("n":1)"));
    // Not after a task timeout: the poll that went away never held it.
    EXPECT_LT(absl::Now() - asked, absl::Seconds(10));
    Succeed(task.task_token());
    EXPECT_EQ(WaitClosed(first).status(), "SUCCEEDED");
    for (const v1::HistoryEvent& event : History(first)) {
      if (event.type() == "ActivityStarted") {
        EXPECT_EQ(event.activity_started_event_details().worker_name(), "here");
      }
    }

    // A batch takes what waits, up to its size.
    std::vector<std::string> executions;
    for (int n = 2; n <= 4; ++n) executions.push_back(Start(machine, absl::StrCat(R"({"n": )", n, "}")));
    v1::GetActivityTasksRequest batch;
    batch.set_activity_arn(activity);
    batch.set_worker_name("batch");
    batch.set_max_tasks(2);
    std::set<std::string> inputs;
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (inputs.size() < 3 && absl::Now() < give_up) {
      v1::GetActivityTasksResponse tasks;
      ASSERT_TRUE(Call(&Stub::GetActivityTasks, batch, &tasks, absl::Seconds(5)).ok());
      EXPECT_LE(tasks.tasks_size(), 2);
      for (const v1::DeliveredActivityTask& delivered : tasks.tasks()) {
        EXPECT_TRUE(inputs.insert(delivered.input()).second) << delivered.input();
        Succeed(delivered.task_token());
      }
    }
    EXPECT_EQ(inputs.size(), 3u);
    for (const std::string& execution : executions) {
      EXPECT_EQ(WaitClosed(execution).status(), "SUCCEEDED");
    }

    // A task that comes while a poll waits reaches it at once, whichever
    // partition it lands on.
    for (int n = 5; n <= 6; ++n) {
      poll.set_worker_name("waiting");
      absl::Time started;
      std::string execution;
      const v1::GetActivityTaskResponse waited = PollWhile(poll, absl::Seconds(30), [&] {
        started = absl::Now();
        execution = Start(machine, absl::StrCat(R"({"n": )", n, "}"));
      });
      ASSERT_FALSE(waited.task_token().empty());
      EXPECT_THAT(waited.input(), HasSubstr(absl::StrCat(R"("n":)", n)));
      EXPECT_LT(absl::Now() - started, absl::Seconds(5));
      Succeed(waited.task_token());
      EXPECT_EQ(WaitClosed(execution).status(), "SUCCEEDED");
    }
  }
}

// The server (of three, with 16 logical shards) that holds `key`.
int ServerOf(const std::string& key) { return static_cast<int>(config::ShardOf(key, 16) % 3); }

// The server that holds partition `partition` of `activity_arn`'s queue.
int ServerOfPartition(const std::string& activity_arn, int partition) {
  return ServerOf(config::TaskQueuePartitionKey(activity_arn, partition));
}

// An activity name `base`-N whose queue has a partition on another server
// than the activity itself: the activity's server (`home`) and that one.
struct AwayPartition {
  std::string name;
  int home = -1;
  int away = -1;
};
AwayPartition ActivityWithAPartitionAway(const std::string& base) {
  for (int i = 0;; ++i) {
    AwayPartition found{absl::StrCat(base, "-", i)};
    const std::string arn = absl::StrCat(kArnPrefix, found.name);
    found.home = ServerOf(arn);
    for (int partition = 0; partition < config::kDefaultTaskQueuePartitions; ++partition) {
      if (ServerOfPartition(arn, partition) != found.home) {
        found.away = ServerOfPartition(arn, partition);
      }
    }
    if (found.away >= 0) return found;
  }
}

// The ARN of execution `name` of `machine`, and the server its first
// task's queue partition is on: a task's partition follows its id, the
// execution's ARN and the id of its ActivityScheduled event (3 in a
// one-Task machine; the tests using this check it).
std::string ExecutionArnOf(const std::string& machine, const std::string& name) {
  return absl::StrCat(absl::StrReplaceAll(machine, {{":stateMachine:", ":execution:"}}), ":",
                      name);
}
int ServerOfFirstTask(const std::string& activity_arn, const std::string& execution_arn) {
  return ServerOfPartition(activity_arn,
                           static_cast<int>(config::ShardOf(absl::StrCat(execution_arn, "#3"),
                                                            config::kDefaultTaskQueuePartitions)));
}

// The first name `base`-N of an execution of `machine` for which `wanted`
// holds, given the execution's ARN and the server of its first task.
std::string ExecutionNameWhere(
    const std::string& machine, const std::string& activity_arn, const std::string& base,
    const std::function<bool(const std::string& execution_arn, int task_server)>& wanted) {
  for (int i = 0;; ++i) {
    const std::string candidate = absl::StrCat(base, "-", i);
    const std::string execution = ExecutionArnOf(machine, candidate);
    if (wanted(execution, ServerOfFirstTask(activity_arn, execution))) return candidate;
  }
}

ActivityQueueTest::AwayFromHome ActivityQueueTest::ExecutionAwayFromHome(
    const std::string& base) {
  const AwayPartition chosen = ActivityWithAPartitionAway(base);
  AwayFromHome found;
  found.home = chosen.home;
  found.activity_name = chosen.name;
  found.activity = CreateActivity(chosen.name);
  found.machine = CreateMachine(chosen.name, TaskDefinition(found.activity));
  found.execution_name = ExecutionNameWhere(
      found.machine, found.activity, "away",
      [&](const std::string& execution, int task_server) {
        return ServerOf(execution) != found.home && task_server != found.home;
      });
  return found;
}

// A long poll of a queue spread over several servers while one of them is
// down: it answers empty in time, and a poll made while the server was
// down gets a task that lands there once it is back, at once (not when
// the poll's watches on the other servers end).
TEST_F(ActivityQueueTest, SpreadPollsGoOnWhileAServerIsDown) {
  // The server that goes down holds a partition, but not the activity
  // itself (without which no server could tell that it exists).
  const AwayPartition chosen = ActivityWithAPartitionAway("outage");
  const int down = chosen.away;
  const std::string activity = CreateActivity(chosen.name);
  const std::string machine = CreateMachine(chosen.name, TaskDefinition(activity));
  // An execution whose task goes to a partition of that server.
  const std::string late_name = ExecutionNameWhere(
      machine, activity, "late", [&](const std::string&, int task_server) {
        return task_server == down;
      });

  cluster_->KillShard(down);
  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(activity);
  poll.set_worker_name("through-outage");
  ExpectEmptyInTime(poll);

  absl::Time started;
  std::string execution;
  const v1::GetActivityTaskResponse task = PollWhile(poll, absl::Seconds(40), [&] {
    ASSERT_TRUE(cluster_->RestartShard(down).ok());
    started = absl::Now();
    execution = api_->StartExecution(machine, R"({"late": true})", late_name);
  });
  ASSERT_FALSE(task.task_token().empty());
  EXPECT_THAT(task.input(), HasSubstr("late"));
  EXPECT_LT(absl::Now() - started, absl::Seconds(15));
  Succeed(task.task_token());
  EXPECT_EQ(WaitClosed(execution).status(), "SUCCEEDED");
  int scheduled_id = 0;
  for (const v1::HistoryEvent& event : History(execution)) {
    if (event.type() == "ActivityScheduled") scheduled_id = static_cast<int>(event.id());
  }
  EXPECT_EQ(scheduled_id, 3) << "the task's partition was computed for another id";
}

// While the server holding an activity is down, the other servers'
// partitions go on serving its workers: a task waiting on one of them is
// delivered (they confirmed the activity before).
TEST_F(ActivityQueueTest, TasksElsewhereAreDeliveredWhileTheActivitysServerIsDown) {
  const AwayFromHome chosen = ExecutionAwayFromHome("homeless");
  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(chosen.activity);
  poll.set_worker_name("through-outage");
  // Every server holding a partition looks the activity up.
  ExpectEmptyInTime(poll);
  const std::string execution = api_->StartExecution(chosen.machine, R"({"waiting": true})",
                                                     chosen.execution_name);

  cluster_->KillShard(chosen.home);
  absl::SleepFor(absl::Milliseconds(2500));  // past the servers' confirmations
  TakeWaitingTaskAndSucceed(poll, execution, "no task while the activity's server is down");
  ASSERT_TRUE(cluster_->RestartShard(chosen.home).ok());
}

// Tasks that a server cannot hand to a partition on a server that is down
// wait in its outbox; more of them than one outbox scan holds do not hold
// back a task behind them for a partition on a third server.
TEST_F(ActivityQueueTest, TasksForAServerThatIsDownHoldBackNoOthers) {
  // An activity on server `home` with partitions on both other servers:
  // `down`, which goes down, and `up`.
  std::string name;
  int home = -1, down = -1, up = -1;
  for (int i = 0; down < 0; ++i) {
    name = absl::StrCat("backlogged-", i);
    const std::string arn = absl::StrCat(kArnPrefix, name);
    home = ServerOf(arn);
    std::set<int> away;
    for (int partition = 0; partition < config::kDefaultTaskQueuePartitions; ++partition) {
      if (ServerOfPartition(arn, partition) != home) away.insert(ServerOfPartition(arn, partition));
    }
    if (away.size() == 2) {
      down = *away.begin();
      up = *away.rbegin();
    }
  }
  const std::string activity = CreateActivity(name);
  const std::string machine = CreateMachine(name, TaskDefinition(activity));
  // Executions recorded on `home`, so their tasks leave through its outbox.
  std::vector<std::string> stuck_names;
  for (int i = 0; stuck_names.size() < 300; ++i) {
    const std::string candidate = absl::StrCat("stuck-", i);
    const std::string execution = ExecutionArnOf(machine, candidate);
    if (ServerOf(execution) == home && ServerOfFirstTask(activity, execution) == down) {
      stuck_names.push_back(candidate);
    }
  }
  const std::string free_name = ExecutionNameWhere(
      machine, activity, "free", [&](const std::string& execution, int task_server) {
        return ServerOf(execution) == home && task_server == up;
      });

  cluster_->KillShard(down);
  for (const std::string& stuck : stuck_names) {
    api_->StartExecution(machine, R"({"stuck": true})", stuck);
  }
  const std::string execution = api_->StartExecution(machine, R"({"waiting": true})", free_name);
  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(activity);
  poll.set_worker_name("beside-the-backlog");
  TakeWaitingTaskAndSucceed(poll, execution, "the task waited behind those for the server down");

  // Once the server is back, the others are delivered too.
  ASSERT_TRUE(cluster_->RestartShard(down).ok());
  v1::GetActivityTaskResponse task;
  grpc::Status status = Call(&Stub::GetActivityTask, poll, &task, absl::Seconds(20));
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(task.task_token().empty());
  EXPECT_THAT(task.input(), HasSubstr("stuck"));
}

// Long polls and a task stream waiting on a queue spread over several
// servers do not hold up a stop of the cluster: the gateway ends them and
// exits well within its grace.
TEST_F(ActivityQueueTest, WaitingSpreadPollsDoNotHoldUpAStop) {
  const std::string activity = CreateActivity(ActivityNameOn("stopping", true));
  WaitingPolls polls(stub_, activity, 20, absl::Seconds(60));
  grpc::ClientContext stream_context;
  std::unique_ptr<TaskStream> stream = OpenStream(&stream_context, activity, "streaming", 4);
  absl::SleepFor(absl::Seconds(1));  // all of them waiting on the servers

  const absl::Time stopping = absl::Now();
  ASSERT_TRUE(cluster_->Restart().ok());
  // The gateway's grace is 10 s: a poll it could not end would use it up.
  EXPECT_LT(absl::Now() - stopping, absl::Seconds(8));
  polls.ExpectAllEmpty({grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::CANCELLED});
  v1::StreamActivityTasksResponse message;
  while (stream->Read(&message)) EXPECT_EQ(message.tasks_size(), 0);
  EXPECT_FALSE(stream->Finish().ok());
}

TEST_F(ActivityQueueTest, StreamRefusesBadRequests) {
  const std::string activity = CreateActivity("picky");
  // `later` is written after the first request; a negative grant is
  // refused in any request.
  auto open_stream = [&](const std::string& arn, int credits,
                         std::optional<int> later = std::nullopt) {
    grpc::ClientContext context;
    auto stream = OpenStream(&context, arn, "", credits);
    if (later.has_value()) {
      v1::StreamActivityTasksRequest more;
      more.set_credits(*later);
      stream->Write(more);
    }
    // The server ends the stream with the error (no half-close here: that
    // would end it cleanly before the activity is looked up).
    v1::StreamActivityTasksResponse message;
    EXPECT_FALSE(stream->Read(&message));
    return stream->Finish();
  };
  grpc::Status negative = open_stream(activity, -1);
  EXPECT_EQ(negative.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(negative.error_message(), HasSubstr("credits"));
  grpc::Status negative_later = open_stream(activity, 1, -1);
  EXPECT_EQ(negative_later.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(negative_later.error_message(), HasSubstr("credits"));
  grpc::Status not_an_arn = open_stream("picky", 1);
  EXPECT_EQ(not_an_arn.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status missing = open_stream(absl::StrCat(kArnPrefix, "nobody"), 1);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(missing.error_message(), HasSubstr("ActivityDoesNotExist"));
}

TEST_F(ActivityQueueTest, WorkersInSeveralProcessesServeManyExecutions) {
  const std::string activity = CreateActivity("echo");
  const std::string machine = CreateMachine("echo", TaskDefinition(activity));
  // Two streaming workers and one that long-polls.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(cluster_
                    ->StartWorker(activity, {"cat"},
                                  {"--concurrency", "4", "--worker-name", absl::StrCat("w", i),
                                   "--delivery", i == 2 ? "poll" : "stream"})
                    .ok());
  }
  constexpr int kExecutions = 60;
  std::vector<std::string> executions;
  for (int i = 0; i < kExecutions; ++i) {
    executions.push_back(Start(machine, absl::StrCat(R"({"order": )", i, "}")));
  }
  std::set<std::string> served_by;
  for (int i = 0; i < kExecutions; ++i) {
    v1::DescribeExecutionResponse done = WaitClosed(executions[i]);
    EXPECT_EQ(done.status(), "SUCCEEDED") << done.error() << " " << done.cause();
    EXPECT_EQ(done.output(), absl::StrCat(R"({"order":)", i, "}"));
    for (const v1::HistoryEvent& event : History(executions[i])) {
      if (event.type() == "ActivityStarted") {
        served_by.insert(event.activity_started_event_details().worker_name());
      }
    }
  }
  // Every worker took part (each of 60 tasks goes to whichever is free).
  EXPECT_EQ(served_by, (std::set<std::string>{"w0", "w1", "w2"}));
  EXPECT_TRUE(cluster_->StopWorkers().ok());
}

TEST_F(ActivityQueueTest, KilledWorkerTimesOutAndIsRetriedElsewhere) {
  const std::string activity = CreateActivity("fragile");
  const std::string machine = CreateMachine(
      "fragile",
      TaskDefinition(activity, R"("HeartbeatSeconds": 2, "Retry": [{"ErrorEquals":
        ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 1}],)"));
  const std::string execution = Start(machine, R"({"job": 7})");

  // Attempt 1: a worker takes the task and goes silent.
  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(activity);
  poll.set_worker_name("silent");
  v1::GetActivityTaskResponse first;
  ASSERT_TRUE(Call(&Stub::GetActivityTask, poll, &first, absl::Seconds(70)).ok());
  ASSERT_FALSE(first.task_token().empty());

  // Attempt 2: a worker process that heartbeats, then is killed -9.
  auto doomed = cluster_->StartWorker(
      activity, {"sleep", "20"}, {"--worker-name", "doomed", "--heartbeat-seconds", "0.5"});
  ASSERT_TRUE(doomed.ok()) << doomed.status();
  ASSERT_TRUE(WaitForEvents(execution, "ActivityStarted", 2));
  absl::SleepFor(absl::Seconds(3));  // longer than HeartbeatSeconds: the heartbeats keep it
  EXPECT_EQ(CountEvents(execution, "ActivityTimedOut"), 1);
  (*doomed)->Kill();

  // Attempt 3: a healthy worker finishes the work.
  ASSERT_TRUE(cluster_->StartWorker(activity, {"cat"}, {"--worker-name", "healthy"}).ok());
  v1::DescribeExecutionResponse done = WaitClosed(execution);
  EXPECT_EQ(done.status(), "SUCCEEDED") << done.error() << " " << done.cause();
  EXPECT_EQ(done.output(), R"({"job":7})");
  EXPECT_EQ(CountEvents(execution, "ActivityScheduled"), 3);
  EXPECT_EQ(CountEvents(execution, "ActivityTimedOut"), 2);
  std::vector<std::string> workers;
  for (const v1::HistoryEvent& event : History(execution)) {
    if (event.type() == "ActivityStarted") {
      workers.push_back(event.activity_started_event_details().worker_name());
    }
  }
  EXPECT_THAT(workers, ::testing::ElementsAre("silent", "doomed", "healthy"));

  // The silent worker wakes up: its attempt is gone.
  v1::SendTaskSuccessRequest late;
  late.set_task_token(first.task_token());
  late.set_output("{}");
  v1::SendTaskSuccessResponse ignored;
  grpc::Status refused = Call(&Stub::SendTaskSuccess, late, &ignored);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("TaskTimedOut"));
}

TEST_F(ActivityQueueTest, ForgedAndAlteredTokensAreRefused) {
  const std::string activity = CreateActivity("guarded");
  const std::string machine = CreateMachine("guarded", TaskDefinition(activity));
  const std::string execution = Start(machine, "{}");
  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(activity);
  v1::GetActivityTaskResponse task;
  ASSERT_TRUE(Call(&Stub::GetActivityTask, poll, &task, absl::Seconds(70)).ok());
  ASSERT_FALSE(task.task_token().empty());

  std::string altered = task.task_token();
  altered[altered.size() / 2] = altered[altered.size() / 2] == 'A' ? 'B' : 'A';
  for (const std::string& token : {altered, std::string("bm90LWEtdG9rZW4"), task.task_token() + "x"}) {
    v1::SendTaskSuccessRequest forged;
    forged.set_task_token(token);
    forged.set_output(R"({"stolen": true})");
    v1::SendTaskSuccessResponse response;
    grpc::Status status = Call(&Stub::SendTaskSuccess, forged, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << token;
    EXPECT_THAT(status.error_message(), HasSubstr("InvalidToken"));
  }
  v1::SendTaskSuccessRequest genuine;
  genuine.set_task_token(task.task_token());
  genuine.set_output(R"({"fair": true})");
  v1::SendTaskSuccessResponse ok;
  ASSERT_TRUE(Call(&Stub::SendTaskSuccess, genuine, &ok).ok());
  EXPECT_EQ(WaitClosed(execution).output(), R"({"fair":true})");
}

// Human approval: the task hands its token to someone (here: the task
// input, as a notification would carry it); the execution waits, across a
// restart of every process, until that someone answers.
TEST_F(ActivityQueueTest, CallbackTokenIsAnsweredAfterEveryProcessRestarted) {
  const std::string activity = CreateActivity("notify-approver");
  const std::string machine = CreateMachine("approval", absl::StrCat(R"({
    "StartAt": "NotifyApprover", "States": {
      "NotifyApprover": {"Type": "Task", "Resource": ")", activity, R"(",
        "Parameters": {"application.$": "$.application", "token.$": "$$.Task.Token"},
        "ResultPath": "$.review", "Next": "Approved"},
      "Approved": {"Type": "Choice",
        "Choices": [{"Variable": "$.review.approved", "BooleanEquals": true, "Next": "Open"}],
        "Default": "Reject"},
      "Open": {"Type": "Pass", "Result": "Approved", "ResultPath": "$.status", "End": true},
      "Reject": {"Type": "Pass", "Result": "Rejected", "ResultPath": "$.status", "End": true}}})"));
  const std::string execution = Start(machine, R"({"application": "A-17"})");

  // The notifier takes the task and passes the token on; it never answers.
  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(activity);
  poll.set_worker_name("notifier");
  v1::GetActivityTaskResponse task;
  ASSERT_TRUE(Call(&Stub::GetActivityTask, poll, &task, absl::Seconds(70)).ok());
  auto input = json::Parse(task.input());
  ASSERT_TRUE(input.ok()) << task.input();
  const std::string token = (*input)["token"].GetString();
  EXPECT_EQ(token, task.task_token());

  ASSERT_TRUE(cluster_->Restart().ok());
  api_->Reconnect(cluster_->GatewayChannel());
  stub_ = api_->stub();
  v1::DescribeExecutionRequest describe;
  describe.set_execution_arn(execution);
  v1::DescribeExecutionResponse running;
  ASSERT_TRUE(Call(&Stub::DescribeExecution, describe, &running).ok());
  EXPECT_EQ(running.status(), "RUNNING");

  // The approver answers with the token, days later in real life.
  v1::SendTaskHeartbeatRequest heartbeat;
  heartbeat.set_task_token(token);
  v1::SendTaskHeartbeatResponse beat;
  EXPECT_TRUE(Call(&Stub::SendTaskHeartbeat, heartbeat, &beat).ok());
  v1::SendTaskSuccessRequest answer;
  answer.set_task_token(token);
  answer.set_output(R"({"approved": true, "by": "j.doe"})");
  v1::SendTaskSuccessResponse ok;
  grpc::Status answered = Call(&Stub::SendTaskSuccess, answer, &ok);
  ASSERT_TRUE(answered.ok()) << answered.error_message();
  v1::DescribeExecutionResponse done = WaitClosed(execution);
  EXPECT_EQ(done.status(), "SUCCEEDED");
  EXPECT_EQ(done.output(),
            R"({"application":"A-17","review":{"approved":true,"by":"j.doe"},"status":"Approved"})");
}

// Sums the samples of `metric` whose labels contain `label` over the
// /metrics pages of every shard server.
double ShardMetric(testing::TestCluster& cluster, int servers, const std::string& metric,
                   const std::string& label) {
  double total = 0;
  for (int i = 0; i < servers; ++i) {
    auto page = testing::HttpGet(cluster.shard_metrics_address(i), "/metrics");
    if (!page.ok()) continue;
    for (absl::string_view line : absl::StrSplit(*page, '\n')) {
      if (!absl::StartsWith(line, metric + "{") || !absl::StrContains(line, label)) continue;
      double value = 0;
      if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) total += value;
    }
  }
  return total;
}

// The same when the server holding the task restarted during the outage,
// and so could not confirm the activity with its server since: the task
// it stored is the proof (a partition queues tasks of confirmed
// activities only).
TEST_F(ActivityQueueTest, ARestartedServerDeliversItsStoredTasksWhileTheActivitysServerIsDown) {
  const AwayFromHome chosen = ExecutionAwayFromHome("orphaned");
  const int task_server =
      ServerOfFirstTask(chosen.activity, ExecutionArnOf(chosen.machine, chosen.execution_name));
  // No worker polls yet: the task waits, stored, in its partition.
  const std::string execution = api_->StartExecution(chosen.machine, R"({"waiting": true})",
                                                     chosen.execution_name);
  const std::string label = absl::StrCat("activity=\"", chosen.activity_name, "\"");
  const absl::Time end = absl::Now() + absl::Seconds(20);
  while (ShardMetric(*cluster_, 3, "stepflow_activity_backlog_tasks", label) < 1 &&
         absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(ShardMetric(*cluster_, 3, "stepflow_activity_backlog_tasks", label), 1);
  cluster_->KillShard(chosen.home);
  cluster_->KillShard(task_server);
  ASSERT_TRUE(cluster_->RestartShard(task_server).ok());

  v1::GetActivityTaskRequest poll;
  poll.set_activity_arn(chosen.activity);
  poll.set_worker_name("after-restart");
  TakeWaitingTaskAndSucceed(poll, execution, "no task from the restarted server");
  ASSERT_TRUE(cluster_->RestartShard(chosen.home).ok());
}

TEST_F(ActivityQueueTest, BacklogAndPollMetricsShowTheQueue) {
  const std::string activity = CreateActivity("metered");
  const std::string machine = CreateMachine("metered", TaskDefinition(activity));
  const std::string label = R"(activity="metered")";
  for (int i = 0; i < 3; ++i) Start(machine, "{}");
  // The tasks wait: the backlog shows them, with their age.
  const absl::Time end = absl::Now() + absl::Seconds(20);
  while (ShardMetric(*cluster_, 3, "stepflow_activity_backlog_tasks", label) < 3 &&
         absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(ShardMetric(*cluster_, 3, "stepflow_activity_backlog_tasks", label), 3);
  absl::SleepFor(absl::Milliseconds(1500));  // ages are refreshed every second
  EXPECT_GT(ShardMetric(*cluster_, 3, "stepflow_activity_backlog_age_seconds", label), 0.5);

  int taken = 0;
  while (taken < 3) {
    v1::GetActivityTasksRequest poll;
    poll.set_activity_arn(activity);
    poll.set_max_tasks(3);
    v1::GetActivityTasksResponse batch;
    ASSERT_TRUE(Call(&Stub::GetActivityTasks, poll, &batch, absl::Seconds(70)).ok());
    taken += batch.tasks_size();
  }
  EXPECT_EQ(ShardMetric(*cluster_, 3, "stepflow_activity_backlog_tasks", label), 0);
  EXPECT_EQ(ShardMetric(*cluster_, 3, "stepflow_activity_polls_total",
                        R"(activity="metered",result="backlog")"),
            3);
  EXPECT_EQ(ShardMetric(*cluster_, 3, "stepflow_activity_schedule_to_start_seconds_count", label),
            3);
  EXPECT_GT(ShardMetric(*cluster_, 3, "stepflow_activity_schedule_to_start_seconds_sum", label),
            1.0);
}

using testing::CpuSeconds;
using testing::ThreadCount;

// Idle long polls cost no CPU, whether one server holds the activity's
// queue or several do; they wait without a thread, in the servers' task
// queues and, when several servers hold the queue, as the gateway's
// waiting watches.
TEST_F(ActivityQueueTest, ThousandIdleLongPollsCostNoCpu) {
  const std::vector<pid_t> pids = cluster_->ServerPids();
  auto total_cpu = [&] {
    double total = 0;
    for (pid_t pid : pids) total += CpuSeconds(pid);
    return total;
  };
  auto total_threads = [&] {
    int total = 0;
    for (pid_t pid : pids) total += ThreadCount(pid);
    return total;
  };
  constexpr absl::Duration kWindow = absl::Seconds(4);
  // What the servers use with nothing to do (Kafka clients, timers)...
  absl::SleepFor(absl::Seconds(1));
  double before = total_cpu();
  absl::SleepFor(kWindow);
  const double idle = total_cpu() - before;

  for (const bool spread : {false, true}) {
    SCOPED_TRACE(spread ? "partitions on several servers" : "partitions on one server");
    const std::string activity = CreateActivity(ActivityNameOn(spread ? "quiet-spread" : "quiet", spread));
    // One poll first, so that every server has looked the activity up: a
    // burst of polls that find it unknown waits for the lookup on threads
    // of the servers' pools, which linger for a while after the burst.
    v1::GetActivityTaskRequest first;
    first.set_activity_arn(activity);
    v1::GetActivityTaskResponse nothing;
    const grpc::Status first_status =
        Call(&Stub::GetActivityTask, first, &nothing, absl::Milliseconds(1500));
    ASSERT_TRUE(first_status.ok()) << first_status.error_message();
    const int threads_before = total_threads();
    constexpr int kPolls = 1000;
    WaitingPolls polls(stub_, activity, kPolls, absl::Seconds(90));
    // ...and with 1,000 polls waiting, once they have reached their servers.
    absl::SleepFor(absl::Seconds(3));
    const int threads_polling = total_threads();
    // The lesser of two windows: a neighbour's burst of load on this shared
    // machine can inflate one.
    double polling = 0;
    for (int window = 0; window < 2; ++window) {
      before = total_cpu();
      absl::SleepFor(kWindow);
      const double used = total_cpu() - before;
      polling = window == 0 ? used : std::min(polling, used);
      if (polling - idle < 0.02 * absl::ToDoubleSeconds(kWindow)) break;
    }
    std::cout << (spread ? "spread" : "one server") << ": servers' CPU in " << kWindow << ": "
              << idle << " s idle, " << polling << " s with " << kPolls
              << " long polls waiting; threads " << threads_before << " -> " << threads_polling
              << "\n";
    // The polls add less than 2% of one core for the gateway and three shard
    // servers together.
    EXPECT_LT(polling - idle, 0.02 * absl::ToDoubleSeconds(kWindow))
        << polling << " CPU seconds in " << kWindow << " with " << kPolls << " idle polls, "
        << idle << " without";
    // A poll holds no thread, in the gateway or a server. (gRPC's own
    // threads come and go by dozens under load, more for the four watches
    // of each spread poll; a thread per poll would add a thousand.)
    EXPECT_LT(threads_polling - threads_before, spread ? kPolls / 2 : kPolls / 4);

    polls.CancelAll();
    polls.ExpectAllEmpty({grpc::StatusCode::CANCELLED});
  }
}

}  // namespace
}  // namespace stepflow
