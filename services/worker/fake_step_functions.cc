#include "services/worker/fake_step_functions.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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

grpc::Status FakeStepFunctions::SendTaskSuccess(
    grpc::ServerContext* context,
    const stepflow::v1::SendTaskSuccessRequest* request,
    stepflow::v1::SendTaskSuccessResponse* response) {
  absl::MutexLock lock(&mu_);
  grpc::Status failure;
  if (NextReportFailure(&failure)) return failure;
  Result result;
  result.task_token = request->task_token();
  result.success = true;
  result.output = request->output();
  results_.push_back(std::move(result));
  return grpc::Status::OK;
}

grpc::Status FakeStepFunctions::SendTaskFailure(
    grpc::ServerContext* context,
    const stepflow::v1::SendTaskFailureRequest* request,
    stepflow::v1::SendTaskFailureResponse* response) {
  absl::MutexLock lock(&mu_);
  grpc::Status failure;
  if (NextReportFailure(&failure)) return failure;
  Result result;
  result.task_token = request->task_token();
  result.success = false;
  result.error = request->error();
  result.cause = request->cause();
  results_.push_back(std::move(result));
  return grpc::Status::OK;
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
