// Worker SDK: serve a Stepflow activity from C++.
//
// A Worker runs `concurrency` handler threads fed by one StreamActivityTasks
// call: the service pushes tasks as they come, never more than the Worker
// has free handlers for (each finished task grants one more credit). With
// `delivery = kPoll`, or against a service without streaming, each handler
// thread long-polls GetActivityTask itself instead. Every task's result is
// reported on the task stream with the credit it frees (answered there), or
// with SendTaskSuccess / SendTaskFailure when there is no stream.
// While a handler runs, a helper thread can send SendTaskHeartbeat for it
// every `heartbeat_interval`. Server errors make a poller back off
// exponentially, with jitter, up to `max_backoff`; a poller never spins.
//
//   namespace worker = stepflow::worker;
//   worker::WorkerOptions options;
//   options.endpoint = "localhost:7233";
//   options.activity_arn =
//       "arn:aws:states:us-east-1:123456789012:activity:charge-card";
//   options.concurrency = 4;
//   worker::Worker w(options, [](const worker::Task& task) {
//     if (task.input.empty()) {
//       return worker::TaskResult::Failure("BadInput", "empty input");
//     }
//     return worker::TaskResult::Success(R"({"charged": true})");
//   });
//   absl::Status started = w.Start();
//   if (!started.ok()) { ... }
//   ...                      // e.g. until SIGTERM
//   w.Stop();                // stop polling, finish in-flight tasks
//
// Delivery is at-least-once: a task whose result could not be reported (or
// that timed out) is handed out again by the service, so handlers should be
// idempotent.
#ifndef STEPFLOW_SERVICES_WORKER_WORKER_H_
#define STEPFLOW_SERVICES_WORKER_WORKER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "prometheus/registry.h"
#include "stepflow/v1/states.grpc.pb.h"

namespace stepflow::worker {

// How tasks reach the Worker.
enum class Delivery {
  kStream,  // StreamActivityTasks with credits (falls back to kPoll if the
            // service answers UNIMPLEMENTED)
  kPoll,    // GetActivityTask long polls, one per handler thread
};

struct Task;

struct WorkerOptions {
  // gRPC target of the StepFunctions service ("host:port"); used only when
  // the Worker is not given a channel.
  std::string endpoint;
  // Full activity ARN
  // ("arn:aws:states:us-east-1:123456789012:activity:NAME").
  std::string activity_arn;
  // Recorded by the service in the ActivityStarted history event.
  std::string worker_name;
  // Handler threads, hence the most tasks run at once. At least 1.
  int concurrency = 1;
  Delivery delivery = Delivery::kStream;
  // How long the service holds a GetActivityTask call that finds no task
  // (60 s in Stepflow, as in AWS); the client deadline is this plus 5 s, so
  // a call that outlives it counts as a poll error.
  absl::Duration poll_timeout = absl::Seconds(60);
  // How often a heartbeat is sent for each running task; zero sends none.
  absl::Duration heartbeat_interval = absl::ZeroDuration();
  // First delay after a failed call; doubled per consecutive failure.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  // Longest delay between retries of a failing call.
  absl::Duration max_backoff = absl::Seconds(10);
  // Optional: called on the handler's thread once a task's result has been
  // reported (OK: the service took it, so the execution has moved on) or
  // the report has failed for good (its last error). Not called for
  // deferred or abandoned results. Must not block for long.
  std::function<void(const Task& task, const absl::Status& reported)> on_reported;
};

// One activity task, as handed to a TaskHandler.
struct Task {
  // Opaque; identifies the task to the service.
  std::string task_token;
  // The task's input, JSON text.
  std::string input;
  // Set (by the heartbeat thread) once the service has answered a heartbeat
  // with "this task no longer exists" (it timed out, or its execution
  // ended): the result will be dropped, so the handler may give up early.
  // Null when the Worker sends no heartbeats.
  std::shared_ptr<const std::atomic<bool>> cancelled;

  bool Cancelled() const { return cancelled != nullptr && cancelled->load(); }
};

// What a TaskHandler returns.
struct TaskResult {
  bool success = false;
  // JSON text; sent with SendTaskSuccess when `success`.
  std::string output;
  // Sent with SendTaskFailure when !`success`. The Worker truncates `error`
  // to 256 and `cause` to 32768 characters, AWS's limits.
  std::string error;
  std::string cause;

  // The handler handed the task token to someone else (the callback
  // pattern: e.g. a person who will approve); the Worker reports nothing
  // and that someone answers with SendTaskSuccess / SendTaskFailure.
  bool deferred = false;

  static TaskResult Success(std::string output);
  static TaskResult Failure(std::string error, std::string cause);
  static TaskResult Deferred();
};

// Called on a poller thread, once per task, possibly concurrently on several
// threads. A handler that throws reports error "HandlerException" with the
// exception's what() as cause.
using TaskHandler = std::function<TaskResult(const Task& task)>;

struct WorkerStats {
  // Tasks handed to the handler.
  uint64_t tasks_received = 0;
  // Handler results, by kind (whether or not the report then reached the
  // service).
  uint64_t tasks_succeeded = 0;
  uint64_t tasks_failed = 0;
  // Results dropped because a heartbeat had said the task was gone.
  uint64_t tasks_abandoned = 0;
  // GetActivityTask calls that failed (not counting those cancelled by Stop).
  uint64_t poll_errors = 0;
  // SendTaskSuccess / SendTaskFailure attempts that failed.
  uint64_t report_errors = 0;
  // SendTaskHeartbeat calls that succeeded / failed.
  uint64_t heartbeats_sent = 0;
  uint64_t heartbeat_errors = 0;
  // Handlers running right now.
  uint64_t tasks_in_flight = 0;
};

// Polls for and runs the tasks of one activity.
//
// Lifetime: Start() once, Stop() (or the destructor) once it should end; a
// Worker cannot be restarted. The destructor calls Stop().
//
// Thread-safety: all public methods may be called concurrently from any
// thread, except that Stop() and the destructor must not be called from a
// handler (they wait for handlers to return).
class Worker {
 public:
  // `channel` defaults to an insecure channel to `options.endpoint`.
  // Metrics are registered in `registry` when it is not null:
  //   stepflow_worker_tasks_total{activity,outcome="succeeded"|"failed"}
  //   stepflow_worker_task_seconds{activity}  (handler run time, histogram)
  //   stepflow_worker_tasks_in_flight{activity}
  //   stepflow_worker_poll_errors_total{activity}
  //   stepflow_worker_report_errors_total{activity}
  //   stepflow_worker_heartbeats_total{activity,outcome="ok"|"error"}
  Worker(WorkerOptions options, TaskHandler handler,
         std::shared_ptr<grpc::Channel> channel = nullptr,
         std::shared_ptr<prometheus::Registry> registry = nullptr);
  ~Worker();

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Validates the options and starts the threads. INVALID_ARGUMENT for bad
  // options, FAILED_PRECONDITION if called twice or after Stop(). It does not
  // wait for the service to be reachable: until it is, pollers back off.
  [[nodiscard]] absl::Status Start();

  // Stops polling (pending long polls are cancelled at once), waits for the
  // handlers in flight to return and their results to be reported, then
  // returns. Idempotent; concurrent callers all wait for the end.
  void Stop();

  // Blocks until the Worker has stopped (a Stop() has completed). Returns at
  // once if it was never started.
  void Wait();

  WorkerStats stats() const;

 private:
  enum class State { kNew, kRunning, kStopping, kStopped };

  // A running task the heartbeat thread keeps alive.
  struct InFlight {
    std::string task_token;
    absl::Time next_heartbeat;
    std::shared_ptr<std::atomic<bool>> cancelled;
  };

  struct Metrics;

  void PollLoop(int index);
  // Delivery::kStream: the stream reader, and the handler threads it feeds.
  void StreamLoop();
  void HandlerLoop(int index);
  // Tells the service that one more task can be taken.
  void GrantCredit();
  // Runs the handler and reports its result; true when the credit the
  // task frees went to the service with the report.
  bool RunTask(const std::string& task_token, const std::string& input);
  // Sends the result, retrying transient errors a few times; the last
  // attempt's status. `*credit_sent` is set once a report went over the
  // task stream with the freed credit.
  absl::Status Report(const std::string& task_token, const TaskResult& result,
                      bool* credit_sent);
  // Sends `report` on the task stream (with one credit when
  // `grant_credit`) and waits for its answer; nothing when there is no
  // stream or it ended before answering.
  std::optional<grpc::Status> ReportOnStream(stepflow::v1::TaskReport report,
                                             bool grant_credit);
  void HeartbeatLoop();

  // Sleeps for the `failures`-th backoff delay, or less if the Worker is
  // being stopped and `interruptible`.
  void Backoff(int failures, bool interruptible);
  absl::Duration BackoffDelay(int failures);

  bool StoppingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return state_ != State::kRunning;
  }

  const WorkerOptions options_;
  const TaskHandler handler_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<stepflow::v1::StepFunctions::Stub> stub_;
  std::unique_ptr<Metrics> metrics_;

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kNew;
  // Contexts of the GetActivityTask calls in progress, cancelled by Stop().
  absl::flat_hash_set<grpc::ClientContext*> polls_ ABSL_GUARDED_BY(mu_);
  // Tasks to heartbeat, by a sequence number of this Worker.
  absl::flat_hash_map<uint64_t, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  uint64_t next_task_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool heartbeat_stop_ ABSL_GUARDED_BY(mu_) = false;
  // Signalled when in_flight_ gains a task or heartbeat_stop_ is set.
  absl::CondVar heartbeat_cv_;
  // Delivery::kStream state.
  grpc::ClientContext* stream_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::deque<stepflow::v1::DeliveredActivityTask> ready_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  // The stream reader has ended (stop, or fall-back to polling).
  bool stream_done_ ABSL_GUARDED_BY(mu_) = false;
  // Reports sent on the stream, waiting for their answers, by report id.
  struct PendingReport {
    bool done = false;
    bool lost = false;  // the stream ended first
    grpc::Status status;
  };
  absl::flat_hash_map<uint64_t, PendingReport*> pending_reports_ ABSL_GUARDED_BY(mu_);
  uint64_t next_report_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool fall_back_to_poll_ ABSL_GUARDED_BY(mu_) = false;
  // Guards the stream for writes (credit grants come from handler threads).
  absl::Mutex write_mu_;
  grpc::ClientReaderWriter<stepflow::v1::StreamActivityTasksRequest,
                           stepflow::v1::StreamActivityTasksResponse>* stream_
      ABSL_GUARDED_BY(write_mu_) = nullptr;
  // Touched only by Start() and by the Stop() caller that moved the state
  // to kStopping.
  std::vector<std::thread> pollers_;
  std::thread stream_reader_;
  std::thread heartbeater_;

  struct AtomicStats {
    std::atomic<uint64_t> tasks_received{0};
    std::atomic<uint64_t> tasks_succeeded{0};
    std::atomic<uint64_t> tasks_failed{0};
    std::atomic<uint64_t> tasks_abandoned{0};
    std::atomic<uint64_t> poll_errors{0};
    std::atomic<uint64_t> report_errors{0};
    std::atomic<uint64_t> heartbeats_sent{0};
    std::atomic<uint64_t> heartbeat_errors{0};
    std::atomic<uint64_t> tasks_in_flight{0};
  };
  AtomicStats stats_;
};

}  // namespace stepflow::worker

#endif  // STEPFLOW_SERVICES_WORKER_WORKER_H_
