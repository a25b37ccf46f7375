// The gateway against a shard service in its own process (as in
// `stepflow dev`): what it forwards for StartExecution, that a shard
// handler may answer after it has returned (from its group committer), and
// that a long poll the server answers empty before its time is made again.
#include "services/gateway/gateway.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/rpc/local_call.h"
#include "common/rpc/status.h"
#include "gtest/gtest.h"
#include "stepflow/internal/v1/shard.grpc.pb.h"
#include "stepflow/v1/states.grpc.pb.h"

namespace stepflow::gateway {
namespace {

namespace iv1 = internal::v1;

constexpr char kMachineArn[] = "arn:aws:states:us-east-1:123456789012:stateMachine:orders";
constexpr char kActivityArn[] = "arn:aws:states:us-east-1:123456789012:activity:charge";
// How long after a poll the recording shard answers it empty, as a server
// whose poller was woken for a backlog, or claimed for a task another poll
// took, does well before the poll's end.
constexpr absl::Duration kEarlyEmptyAfter = absl::Milliseconds(100);

// Records the starts it is given. A start named "later" is answered from
// another thread after the handler has returned, as the shard's group
// committer answers.
class RecordingShard final : public iv1::ShardService::Service {
 public:
  ~RecordingShard() override {
    std::vector<std::thread> answerers;
    {
      absl::MutexLock lock(&mu_);
      answerers.swap(answerers_);
    }
    for (std::thread& thread : answerers) thread.join();
  }

  grpc::Status StartExecution(grpc::ServerContext* context,
                              const iv1::StartExecutionShardRequest* request,
                              v1::StartExecutionResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      starts_.push_back(*request);
    }
    response->set_execution_arn(absl::StrCat("arn:test:", request->request().name()));
    if (request->request().name() != "later") return grpc::Status::OK;
    rpc::LocalServerContext::LaterAnswer* later = rpc::AnswerLaterOf(context);
    if (later == nullptr) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no answer offered");
    }
    {
      absl::MutexLock lock(&mu_);
      answerers_.emplace_back([answer = std::move(*later)]() mutable {
        absl::SleepFor(absl::Milliseconds(50));
        std::move(answer)(absl::OkStatus());
      });
    }
    *later = nullptr;
    // What the handler returns now is not the call's answer.
    return grpc::Status(grpc::StatusCode::INTERNAL, "not the answer");
  }

  // Answers the first `empty_polls` polls empty, each kEarlyEmptyAfter
  // later (from another thread, as the shard's task queue does), and the
  // next one at once with a task.
  void AnswerEmptyFirst(int empty_polls) {
    absl::MutexLock lock(&mu_);
    empty_polls_ = empty_polls;
  }
  // Answers every poll empty at once, as no server of ours should.
  void AnswerEmptyAtOnce() {
    absl::MutexLock lock(&mu_);
    empty_at_once_ = true;
  }

  grpc::Status PollActivityTasks(grpc::ServerContext* context,
                                 const iv1::PollActivityTasksRequest* request,
                                 iv1::PollActivityTasksResponse* response) override {
    absl::MutexLock lock(&mu_);
    polls_.push_back(*request);
    if (empty_at_once_) return grpc::Status::OK;
    if (static_cast<int>(polls_.size()) > empty_polls_) {
      v1::DeliveredActivityTask* task = response->add_tasks();
      task->set_task_token("token-1");
      task->set_input(R"({"n": 1})");
      return grpc::Status::OK;
    }
    rpc::LocalServerContext::LaterAnswer* later = rpc::AnswerLaterOf(context);
    if (later == nullptr) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no answer offered");
    }
    ++unanswered_polls_;
    answerers_.emplace_back([this, answer = std::move(*later)]() mutable {
      absl::SleepFor(kEarlyEmptyAfter);
      std::move(answer)(absl::OkStatus());
      absl::MutexLock lock(&mu_);
      --unanswered_polls_;
    });
    *later = nullptr;
    return grpc::Status(grpc::StatusCode::INTERNAL, "not the answer");
  }

  std::vector<iv1::StartExecutionShardRequest> starts() {
    absl::MutexLock lock(&mu_);
    return starts_;
  }
  std::vector<iv1::PollActivityTasksRequest> polls() {
    absl::MutexLock lock(&mu_);
    return polls_;
  }
  // Waits until every poll answered later has been answered.
  void AwaitPollsAnswered() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* unanswered) { return *unanswered == 0; }, &unanswered_polls_));
  }

 private:
  absl::Mutex mu_;
  std::vector<iv1::StartExecutionShardRequest> starts_ ABSL_GUARDED_BY(mu_);
  std::vector<iv1::PollActivityTasksRequest> polls_ ABSL_GUARDED_BY(mu_);
  int empty_polls_ ABSL_GUARDED_BY(mu_) = 1 << 30;
  bool empty_at_once_ ABSL_GUARDED_BY(mu_) = false;
  int unanswered_polls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> answerers_ ABSL_GUARDED_BY(mu_);
};

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GatewayOptions options;
    options.shard_map = config::ShardMap(16, {"in-process"});
    options.local_shard_services = {&shard_};
    options.listen_address = "127.0.0.1:0";
    options.new_execution_name = [] { return std::string("generated-1"); };
    auto gateway = Gateway::Start(std::move(options));
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
    stub_ = v1::StepFunctions::NewStub(gateway_->InProcessChannel());
  }
  void TearDown() override {
    if (gateway_) gateway_->Shutdown();
  }

  grpc::Status Start(const std::string& name, v1::StartExecutionResponse* response) {
    v1::StartExecutionRequest request;
    request.set_state_machine_arn(kMachineArn);
    request.set_name(name);
    request.set_input(R"({"n": 1})");
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return stub_->StartExecution(&context, request, response);
  }

  grpc::Status GetActivityTask(grpc::ClientContext* context, v1::GetActivityTaskResponse* response) {
    v1::GetActivityTaskRequest request;
    request.set_activity_arn(kActivityArn);
    request.set_worker_name("worker-1");
    return stub_->GetActivityTask(context, request, response);
  }

  RecordingShard shard_;  // outlives the gateway
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<v1::StepFunctions::Stub> stub_;
};

TEST_F(GatewayTest, MarksTheNamesItGenerates) {
  v1::StartExecutionResponse response;
  ASSERT_TRUE(Start("", &response).ok());
  ASSERT_TRUE(Start("chosen", &response).ok());
  std::vector<iv1::StartExecutionShardRequest> starts = shard_.starts();
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[0].request().name(), "generated-1");
  EXPECT_TRUE(starts[0].name_generated());
  EXPECT_EQ(starts[1].request().name(), "chosen");
  EXPECT_FALSE(starts[1].name_generated());
  // The shard resolves the revision the name's start runs.
  EXPECT_EQ(starts[1].resolve_arn(), kMachineArn);
}

TEST_F(GatewayTest, AShardHandlerMayAnswerAfterItReturned) {
  v1::StartExecutionResponse response;
  const absl::Time before = absl::Now();
  grpc::Status status = Start("later", &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(50));
  EXPECT_EQ(response.execution_arn(), "arn:test:later");
}

TEST_F(GatewayTest, ALongPollAnsweredEmptyEarlyIsMadeAgainUntilATaskComes) {
  shard_.AnswerEmptyFirst(3);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::GetActivityTaskResponse response;
  grpc::Status status = GetActivityTask(&context, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.task_token(), "token-1");
  EXPECT_EQ(response.input(), R"({"n": 1})");
  std::vector<iv1::PollActivityTasksRequest> polls = shard_.polls();
  ASSERT_EQ(polls.size(), 4u);
  // Each poll asks for what is left of the first one's time (its end is
  // the caller's deadline less the answer margin).
  EXPECT_GT(polls[0].wait_ms(), 17'000);
  EXPECT_LE(polls[0].wait_ms(), 19'000);
  for (size_t i = 1; i < polls.size(); ++i) {
    EXPECT_EQ(polls[i].activity_arn(), kActivityArn);
    EXPECT_EQ(polls[i].worker_name(), "worker-1");
    EXPECT_EQ(polls[i].max_tasks(), 1);
    EXPECT_LE(polls[i].wait_ms(),
              polls[i - 1].wait_ms() - absl::ToInt64Milliseconds(kEarlyEmptyAfter));
  }
}

TEST_F(GatewayTest, ALongPollAnswersEmptyOnlyWhenItsTimeIsUp) {
  grpc::ClientContext context;
  const absl::Time before = absl::Now();
  context.set_deadline(absl::ToChronoTime(before + absl::Seconds(3)));
  v1::GetActivityTaskResponse response;
  grpc::Status status = GetActivityTask(&context, &response);
  const absl::Duration took = absl::Now() - before;
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.task_token(), "");
  // Its end is 2 s in (the deadline less the answer margin); answered early
  // every 100 ms, the gateway polled again throughout.
  EXPECT_GE(took, absl::Milliseconds(1900));
  EXPECT_LT(took, absl::Seconds(3));
  EXPECT_GE(shard_.polls().size(), 10u);
  shard_.AwaitPollsAnswered();
}

// A server that kept answering polls empty at once would make the gateway
// poll again and again: after the first such answer, it waits a little,
// longer each time.
TEST_F(GatewayTest, PollsMadeAgainAfterQuickEmptyAnswersArePaced) {
  shard_.AnswerEmptyAtOnce();
  grpc::ClientContext context;
  const absl::Time before = absl::Now();
  context.set_deadline(absl::ToChronoTime(before + absl::Seconds(2)));
  v1::GetActivityTaskResponse response;
  grpc::Status status = GetActivityTask(&context, &response);
  const absl::Duration took = absl::Now() - before;
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.task_token(), "");
  // Its end is 1 s in; the pauses are 10, 20, 40, 80 ms, then 160 ms.
  EXPECT_GE(took, absl::Milliseconds(800));
  EXPECT_LT(took, absl::Seconds(2));
  const size_t polls = shard_.polls().size();
  EXPECT_GE(polls, 5u);
  EXPECT_LE(polls, 20u);
}

// The same for a stream's polls, which go on for as long as the stream has
// credits.
TEST_F(GatewayTest, StreamPollsMadeAgainAfterQuickEmptyAnswersArePaced) {
  shard_.AnswerEmptyAtOnce();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  std::unique_ptr<grpc::ClientReaderWriter<v1::StreamActivityTasksRequest,
                                           v1::StreamActivityTasksResponse>>
      stream = stub_->StreamActivityTasks(&context);
  v1::StreamActivityTasksRequest open;
  open.set_activity_arn(kActivityArn);
  open.set_worker_name("worker-1");
  open.set_credits(1);
  ASSERT_TRUE(stream->Write(open));
  absl::SleepFor(absl::Seconds(1));
  const size_t polls = shard_.polls().size();
  ASSERT_TRUE(stream->WritesDone());
  context.TryCancel();
  v1::StreamActivityTasksResponse response;
  while (stream->Read(&response)) {
    ADD_FAILURE() << "a message came from a server that had no task";
  }
  (void)stream->Finish();
  // The first poll looks the activity up; within the second come the
  // polls made at once, then after pauses of 10, 20, 40, 80 ms and then
  // 160 ms each: 12 in all. A second poll of the stream starting, with a
  // pacer of its own, whenever the first paused made it 23.
  EXPECT_GE(polls, 5u);
  EXPECT_LE(polls, 16u);
}

TEST_F(GatewayTest, ALongPollWhoseCallerWentAwayIsNotMadeAgain) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  std::thread canceller([&context] {
    absl::SleepFor(absl::Milliseconds(350));
    context.TryCancel();
  });
  v1::GetActivityTaskResponse response;
  grpc::Status status = GetActivityTask(&context, &response);
  canceller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  // The poll under way when the caller left is answered; none follows it.
  absl::SleepFor(kEarlyEmptyAfter * 3);
  shard_.AwaitPollsAnswered();
  const size_t polls = shard_.polls().size();
  EXPECT_GE(polls, 2u);
  EXPECT_LE(polls, 5u);
  absl::SleepFor(kEarlyEmptyAfter * 3);
  EXPECT_EQ(shard_.polls().size(), polls);
}

}  // namespace
}  // namespace stepflow::gateway
