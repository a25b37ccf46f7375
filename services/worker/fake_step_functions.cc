#include "services/worker/fake_step_functions.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace stepflow::worker {
namespace {

// How often a held poll checks whether its client went away: sync gRPC
// handlers are not told.
constexpr absl::Duration kCancelCheck = absl::Milliseconds(10);

}  // namespace

void FakeStepFunctions::AddTask(std::string task_token, std::string input) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(QueuedTask{std::move(task_token), std::move(input)});
}

void FakeStepFunctions::SetPollHold(absl::Duration hold) {
  absl::MutexLock lock(&mu_);
  poll_hold_ = hold;
}

void FakeStepFunctions::FailPolls(grpc::Status status, int count) {
  absl::MutexLock lock(&mu_);
  poll_failure_ = std::move(status);
  poll_failures_left_ = count;
}

void FakeStepFunctions::FailReports(grpc::Status status, int count) {
  absl::MutexLock lock(&mu_);
  report_failure_ = std::move(status);
  report_failures_left_ = count;
}

void FakeStepFunctions::SetHeartbeatStatus(grpc::Status status) {
  absl::MutexLock lock(&mu_);
  heartbeat_status_ = std::move(status);
}

void FakeStepFunctions::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

int FakeStepFunctions::polls() const {
  absl::MutexLock lock(&mu_);
  return polls_;
}

int FakeStepFunctions::pending_polls() const {
  absl::MutexLock lock(&mu_);
  return pending_polls_;
}

int FakeStepFunctions::heartbeats(const std::string& task_token) const {
  absl::MutexLock lock(&mu_);
  auto it = heartbeats_.find(task_token);
  return it == heartbeats_.end() ? 0 : it->second;
}

std::vector<FakeStepFunctions::Result> FakeStepFunctions::results() const {
  absl::MutexLock lock(&mu_);
  return results_;
}

std::vector<std::string> FakeStepFunctions::worker_names() const {
  absl::MutexLock lock(&mu_);
  return worker_names_;
}

std::vector<std::string> FakeStepFunctions::activity_arns() const {
  absl::MutexLock lock(&mu_);
  return activity_arns_;
}

bool FakeStepFunctions::WaitForPolls(int n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto reached = [this, n]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return polls_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

bool FakeStepFunctions::WaitForPendingPolls(int n,
                                            absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_polls_ >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

bool FakeStepFunctions::WaitForHeartbeats(const std::string& task_token, int n,
                                          absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto reached = [this, &task_token, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = heartbeats_.find(task_token);
    return it != heartbeats_.end() && it->second >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

bool FakeStepFunctions::WaitForResults(size_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return results_.size() >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

grpc::Status FakeStepFunctions::GetActivityTask(
    grpc::ServerContext* context,
    const stepflow::v1::GetActivityTaskRequest* request,
    stepflow::v1::GetActivityTaskResponse* response) {
  absl::MutexLock lock(&mu_);
  ++polls_;
  worker_names_.push_back(request->worker_name());
  activity_arns_.push_back(request->activity_arn());
  if (poll_failures_left_ != 0) {
    if (poll_failures_left_ > 0) --poll_failures_left_;
    return poll_failure_;
  }
  const absl::Time give_up = absl::Now() + poll_hold_;
  ++pending_polls_;
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !tasks_.empty() || shutdown_;
  };
  while (!ready() && !context->IsCancelled() && absl::Now() < give_up) {
    mu_.AwaitWithTimeout(absl::Condition(&ready),
                         std::min(kCancelCheck, give_up - absl::Now()));
  }
  --pending_polls_;
  if (!tasks_.empty() && !shutdown_ && !context->IsCancelled()) {
    response->set_task_token(tasks_.front().task_token);
    response->set_input(tasks_.front().input);
    tasks_.pop_front();
  }
  return grpc::Status::OK;
}

bool FakeStepFunctions::NextReportFailure(grpc::Status* status) {
  if (report_failures_left_ == 0) return false;
  if (report_failures_left_ > 0) --report_failures_left_;
  *status = report_failure_;
  return true;
}

grpc::Status FakeStepFunctions::TakeReport(Result result) {
  grpc::Status failure;
  if (NextReportFailure(&failure)) return failure;
  results_.push_back(std::move(result));
  return grpc::Status::OK;
}

namespace {

FakeStepFunctions::Result SuccessOf(const stepflow::v1::SendTaskSuccessRequest& request) {
  FakeStepFunctions::Result result;
  result.task_token = request.task_token();
  result.success = true;
  result.output = request.output();
  return result;
}

FakeStepFunctions::Result FailureOf(const stepflow::v1::SendTaskFailureRequest& request) {
  FakeStepFunctions::Result result;
  result.task_token = request.task_token();
  result.success = false;
  result.error = request.error();
  result.cause = request.cause();
  return result;
}

}  // namespace

grpc::Status FakeStepFunctions::SendTaskSuccess(
    grpc::ServerContext* context,
    const stepflow::v1::SendTaskSuccessRequest* request,
    stepflow::v1::SendTaskSuccessResponse* response) {
  absl::MutexLock lock(&mu_);
  return TakeReport(SuccessOf(*request));
}

grpc::Status FakeStepFunctions::SendTaskFailure(
    grpc::ServerContext* context,
    const stepflow::v1::SendTaskFailureRequest* request,
    stepflow::v1::SendTaskFailureResponse* response) {
  absl::MutexLock lock(&mu_);
  return TakeReport(FailureOf(*request));
}

void FakeStepFunctions::EnableStreaming() {
  absl::MutexLock lock(&mu_);
  streaming_ = true;
}

void FakeStepFunctions::DropStreams() {
  absl::MutexLock lock(&mu_);
  ++stream_generation_;
}

int FakeStepFunctions::stream_reports() const {
  absl::MutexLock lock(&mu_);
  return stream_reports_;
}

int FakeStepFunctions::stream_credits() const {
  absl::MutexLock lock(&mu_);
  return stream_credits_;
}

grpc::Status FakeStepFunctions::StreamActivityTasks(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<stepflow::v1::StreamActivityTasksResponse,
                             stepflow::v1::StreamActivityTasksRequest>* stream) {
  stepflow::v1::StreamActivityTasksRequest first;
  int generation;
  int64_t credits = 0;
  bool closed = false;
  {
    absl::MutexLock lock(&mu_);
    if (!streaming_) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no streams here");
    generation = stream_generation_;
  }
  if (!stream->Read(&first)) return grpc::Status::OK;
  absl::Mutex write_mu;
  auto take = [&](const stepflow::v1::StreamActivityTasksRequest& request) {
    stepflow::v1::StreamActivityTasksResponse answers;
    {
      absl::MutexLock lock(&mu_);
      if (!request.activity_arn().empty()) {
        activity_arns_.push_back(request.activity_arn());
        worker_names_.push_back(request.worker_name());
      }
      credits += request.credits();
      stream_credits_ += request.credits();
      for (const stepflow::v1::TaskReport& report : request.reports()) {
        ++stream_reports_;
        grpc::Status status =
            report.has_success() ? TakeReport(SuccessOf(report.success()))
            : report.has_failure()
                ? TakeReport(FailureOf(report.failure()))
                : grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "not a result");
        auto* answer = answers.add_answers();
        answer->set_report_id(report.report_id());
        answer->set_code(status.error_code());
        answer->set_message(status.error_message());
      }
    }
    if (answers.answers_size() == 0) return;
    absl::MutexLock lock(&write_mu);
    stream->Write(answers);
  };
  take(first);
  std::thread reader([&] {
    stepflow::v1::StreamActivityTasksRequest more;
    while (stream->Read(&more)) take(more);
    absl::MutexLock lock(&mu_);
    closed = true;
  });
  while (true) {
    stepflow::v1::StreamActivityTasksResponse message;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return closed || shutdown_ || generation != stream_generation_ ||
               (credits > 0 && !tasks_.empty());
      };
      // Rechecks now and then for a caller that went away.
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(50));
      if (closed || shutdown_ || generation != stream_generation_ || context->IsCancelled()) {
        break;
      }
      while (credits > 0 && !tasks_.empty()) {
        auto* task = message.add_tasks();
        task->set_task_token(std::move(tasks_.front().task_token));
        task->set_input(std::move(tasks_.front().input));
        tasks_.pop_front();
        --credits;
      }
    }
    if (message.tasks_size() == 0) continue;
    absl::MutexLock lock(&write_mu);
    if (!stream->Write(message)) break;
  }
  context->TryCancel();  // unblocks the reader
  reader.join();
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream ended");
}

grpc::Status FakeStepFunctions::SendTaskHeartbeat(
    grpc::ServerContext* context,
    const stepflow::v1::SendTaskHeartbeatRequest* request,
    stepflow::v1::SendTaskHeartbeatResponse* response) {
  absl::MutexLock lock(&mu_);
  ++heartbeats_[request->task_token()];
  return heartbeat_status_;
}

FakeStepFunctionsServer::FakeStepFunctionsServer() {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&fake_);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    // Tests cannot go on without it; say why instead of failing later.
    fprintf(stderr, "FakeStepFunctionsServer: cannot listen on 127.0.0.1\n");
    abort();
  }
  address_ = absl::StrCat("127.0.0.1:", port);
}

FakeStepFunctionsServer::~FakeStepFunctionsServer() {
  fake_.Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
}

std::shared_ptr<grpc::Channel> FakeStepFunctionsServer::NewChannel() const {
  return grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
}

}  // namespace stepflow::worker
