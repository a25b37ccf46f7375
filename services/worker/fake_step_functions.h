// FakeStepFunctions: an in-process stand-in for the activity part of the
// StepFunctions service, for tests of workers. It implements GetActivityTask
// (a real long poll over a task queue), SendTaskSuccess, SendTaskFailure and
// SendTaskHeartbeat (and, once enabled, StreamActivityTasks with reports on
// the stream), records every call, and can be told to fail them.
//
//   FakeStepFunctionsServer server;          // listens on 127.0.0.1:0
//   server.fake().AddTask("token-1", R"({"n": 1})");
//   Worker worker(options, handler, server.NewChannel());
//   ASSERT_TRUE(server.fake().WaitForResults(1, absl::Seconds(5)));
//
// Thread-safety: every method may be called from any thread.
#ifndef STEPFLOW_SERVICES_WORKER_FAKE_STEP_FUNCTIONS_H_
#define STEPFLOW_SERVICES_WORKER_FAKE_STEP_FUNCTIONS_H_

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/server.h"
#include "stepflow/v1/states.grpc.pb.h"

namespace stepflow::worker {

class FakeStepFunctions final : public stepflow::v1::StepFunctions::Service {
 public:
  // A SendTaskSuccess or SendTaskFailure the fake accepted.
  struct Result {
    std::string task_token;
    bool success = false;
    std::string output;
    std::string error;
    std::string cause;
  };

  // Queues a task for the next poller.
  void AddTask(std::string task_token, std::string input);
  // How long a GetActivityTask waits for a task before answering with an
  // empty token. Default 60 s.
  void SetPollHold(absl::Duration hold);
  // The next `count` GetActivityTask calls (all, if -1) fail with `status`.
  void FailPolls(grpc::Status status, int count);
  // The next `count` SendTaskSuccess / SendTaskFailure calls fail with
  // `status` (and are not recorded as results).
  void FailReports(grpc::Status status, int count);
  // Every SendTaskHeartbeat from now on answers `status`.
  void SetHeartbeatStatus(grpc::Status status);
  // Serves StreamActivityTasks from now on (UNIMPLEMENTED before): queued
  // tasks go out against credits, and reports on the stream are taken (or
  // failed, see FailReports) like the unary calls and answered there.
  void EnableStreaming();
  // Ends the open streams (as a restarting service would), unanswered
  // reports included.
  void DropStreams();
  // Wakes every pending poll (it answers empty) and makes new ones answer
  // empty at once; call before shutting the server down.
  void Shutdown();

  // Calls received so far.
  int polls() const;
  // GetActivityTask calls being held right now.
  int pending_polls() const;
  int heartbeats(const std::string& task_token) const;
  std::vector<Result> results() const;
  // Reports that came on a stream, and credits granted on streams.
  int stream_reports() const;
  int stream_credits() const;
  // Of each GetActivityTask call, in order.
  std::vector<std::string> worker_names() const;
  std::vector<std::string> activity_arns() const;

  // Each waits until the count reaches `n`; false on timeout.
  bool WaitForPolls(int n, absl::Duration timeout) const;
  bool WaitForPendingPolls(int n, absl::Duration timeout) const;
  bool WaitForHeartbeats(const std::string& task_token, int n,
                         absl::Duration timeout) const;
  bool WaitForResults(size_t n, absl::Duration timeout) const;

  grpc::Status GetActivityTask(
      grpc::ServerContext* context,
      const stepflow::v1::GetActivityTaskRequest* request,
      stepflow::v1::GetActivityTaskResponse* response) override;
  grpc::Status SendTaskSuccess(
      grpc::ServerContext* context,
      const stepflow::v1::SendTaskSuccessRequest* request,
      stepflow::v1::SendTaskSuccessResponse* response) override;
  grpc::Status SendTaskFailure(
      grpc::ServerContext* context,
      const stepflow::v1::SendTaskFailureRequest* request,
      stepflow::v1::SendTaskFailureResponse* response) override;
  grpc::Status SendTaskHeartbeat(
      grpc::ServerContext* context,
      const stepflow::v1::SendTaskHeartbeatRequest* request,
      stepflow::v1::SendTaskHeartbeatResponse* response) override;
  grpc::Status StreamActivityTasks(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<stepflow::v1::StreamActivityTasksResponse,
                               stepflow::v1::StreamActivityTasksRequest>* stream) override;

 private:
  struct QueuedTask {
    std::string task_token;
    std::string input;
  };

  // Takes the next injected report failure, if any.
  bool NextReportFailure(grpc::Status* status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a success or failure report unless a failure is injected.
  grpc::Status TakeReport(Result result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::deque<QueuedTask> tasks_ ABSL_GUARDED_BY(mu_);
  absl::Duration poll_hold_ ABSL_GUARDED_BY(mu_) = absl::Seconds(60);
  grpc::Status poll_failure_ ABSL_GUARDED_BY(mu_);
  int poll_failures_left_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status report_failure_ ABSL_GUARDED_BY(mu_);
  int report_failures_left_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status heartbeat_status_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  int polls_ ABSL_GUARDED_BY(mu_) = 0;
  int pending_polls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int> heartbeats_ ABSL_GUARDED_BY(mu_);
  std::vector<Result> results_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> worker_names_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> activity_arns_ ABSL_GUARDED_BY(mu_);
  bool streaming_ ABSL_GUARDED_BY(mu_) = false;
  // Bumped by DropStreams: streams opened before end.
  int stream_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int stream_reports_ ABSL_GUARDED_BY(mu_) = 0;
  int stream_credits_ ABSL_GUARDED_BY(mu_) = 0;
};

// A gRPC server on 127.0.0.1 (a free port) serving a FakeStepFunctions.
class FakeStepFunctionsServer {
 public:
  FakeStepFunctionsServer();
  // Shuts the fake and the server down.
  ~FakeStepFunctionsServer();

  FakeStepFunctions& fake() { return fake_; }
  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }
  std::shared_ptr<grpc::Channel> NewChannel() const;

 private:
  FakeStepFunctions fake_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace stepflow::worker

#endif  // STEPFLOW_SERVICES_WORKER_FAKE_STEP_FUNCTIONS_H_
