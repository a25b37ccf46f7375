#include "services/worker/worker.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/rpc/server.h"
#include "common/rpc/status.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace stepflow::worker {
namespace {

constexpr char kComponent[] = "worker";

// Added to poll_timeout for the client deadline of a long poll, so the
// service's own timeout (an empty answer) normally comes first.
constexpr absl::Duration kPollDeadlineSlack = absl::Seconds(5);
constexpr absl::Duration kReportTimeout = absl::Seconds(10);
constexpr absl::Duration kMaxHeartbeatTimeout = absl::Seconds(10);
// Attempts at reporting one result before it is given up (the service then
// times the task out and it may be retried).
constexpr int kReportAttempts = 5;
// AWS's limits on SendTaskFailure.
constexpr size_t kMaxErrorChars = 256;
constexpr size_t kMaxCauseChars = 32768;

// Cuts `s` to at most `max_bytes` without splitting a UTF-8 sequence.
void TruncateUtf8(std::string* s, size_t max_bytes) {
  if (s->size() <= max_bytes) return;
  size_t end = max_bytes;
  // Back up over continuation bytes (10xxxxxx) to a sequence start.
  while (end > 0 && (static_cast<unsigned char>((*s)[end]) & 0xC0) == 0x80) {
    --end;
  }
  s->resize(end);
}

// Calls worth repeating: the service was unreachable, overloaded or slow.
bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::ABORTED;
}

// The service's answers meaning the task token is no longer valid
// (TaskDoesNotExist, TaskTimedOut, InvalidToken).
bool IsTaskGone(grpc::StatusCode code) {
  return code == grpc::StatusCode::NOT_FOUND ||
         code == grpc::StatusCode::FAILED_PRECONDITION ||
         code == grpc::StatusCode::INVALID_ARGUMENT;
}

}  // namespace

TaskResult TaskResult::Success(std::string output) {
  TaskResult result;
  result.success = true;
  result.output = std::move(output);
  return result;
}

TaskResult TaskResult::Failure(std::string error, std::string cause) {
  TaskResult result;
  result.success = false;
  result.error = std::move(error);
  result.cause = std::move(cause);
  return result;
}

TaskResult TaskResult::Deferred() {
  TaskResult result;
  result.deferred = true;
  return result;
}

struct Worker::Metrics {
  prometheus::Counter* succeeded;
  prometheus::Counter* failed;
  prometheus::Histogram* task_seconds;
  prometheus::Gauge* in_flight;
  prometheus::Counter* poll_errors;
  prometheus::Counter* report_errors;
  prometheus::Counter* heartbeats_ok;
  prometheus::Counter* heartbeats_error;
};

Worker::Worker(WorkerOptions options, TaskHandler handler,
               std::shared_ptr<grpc::Channel> channel,
               std::shared_ptr<prometheus::Registry> registry)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      channel_(std::move(channel)) {
  if (registry == nullptr) return;
  const std::string& activity = options_.activity_arn;
  auto& tasks = prometheus::BuildCounter()
                    .Name("stepflow_worker_tasks_total")
                    .Help(
                        "Activity tasks handled by this worker, by the "
                        "handler's outcome.")
                    .Register(*registry);
  auto& seconds = prometheus::BuildHistogram()
                      .Name("stepflow_worker_task_seconds")
                      .Help("Time the handler took per task.")
                      .Register(*registry);
  auto& in_flight = prometheus::BuildGauge()
                        .Name("stepflow_worker_tasks_in_flight")
                        .Help("Tasks whose handler is running.")
                        .Register(*registry);
  auto& poll_errors = prometheus::BuildCounter()
                          .Name("stepflow_worker_poll_errors_total")
                          .Help("GetActivityTask calls that failed.")
                          .Register(*registry);
  auto& report_errors =
      prometheus::BuildCounter()
          .Name("stepflow_worker_report_errors_total")
          .Help("SendTaskSuccess/SendTaskFailure attempts that failed.")
          .Register(*registry);
  auto& heartbeats = prometheus::BuildCounter()
                         .Name("stepflow_worker_heartbeats_total")
                         .Help("SendTaskHeartbeat calls, by outcome.")
                         .Register(*registry);
  metrics_ = std::make_unique<Metrics>();
  metrics_->succeeded =
      &tasks.Add({{"activity", activity}, {"outcome", "succeeded"}});
  metrics_->failed =
      &tasks.Add({{"activity", activity}, {"outcome", "failed"}});
  metrics_->task_seconds = &seconds.Add(
      {{"activity", activity}}, prometheus::Histogram::BucketBoundaries{
                                    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5,
                                    10, 30, 60, 300, 900, 3600});
  metrics_->in_flight = &in_flight.Add({{"activity", activity}});
  metrics_->poll_errors = &poll_errors.Add({{"activity", activity}});
  metrics_->report_errors = &report_errors.Add({{"activity", activity}});
  metrics_->heartbeats_ok =
      &heartbeats.Add({{"activity", activity}, {"outcome", "ok"}});
  metrics_->heartbeats_error =
      &heartbeats.Add({{"activity", activity}, {"outcome", "error"}});
}

Worker::~Worker() { Stop(); }

absl::Status Worker::Start() {
  if (options_.activity_arn.empty()) {
    return absl::InvalidArgumentError("worker: activity_arn is empty");
  }
  if (options_.concurrency < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker: concurrency must be at least 1, got ", options_.concurrency));
  }
  if (options_.poll_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("worker: poll_timeout must be positive");
  }
  if (options_.heartbeat_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "worker: heartbeat_interval must not be negative");
  }
  if (options_.initial_backoff <= absl::ZeroDuration() ||
      options_.max_backoff < options_.initial_backoff) {
    return absl::InvalidArgumentError(
        "worker: need 0 < initial_backoff <= max_backoff");
  }
  if (!handler_) {
    return absl::InvalidArgumentError("worker: no handler");
  }
  if (channel_ == nullptr && options_.endpoint.empty()) {
    return absl::InvalidArgumentError(
        "worker: neither a channel nor an endpoint");
  }

  absl::MutexLock lock(&mu_);
  if (state_ != State::kNew) {
    return absl::FailedPreconditionError(
        "worker: Start() called twice or after Stop()");
  }
  if (channel_ == nullptr) channel_ = rpc::MakeChannel(options_.endpoint);
  stub_ = stepflow::v1::StepFunctions::NewStub(channel_);
  state_ = State::kRunning;
  for (int i = 0; i < options_.concurrency; ++i) {
    if (options_.delivery == Delivery::kStream) {
      pollers_.emplace_back([this, i] { HandlerLoop(i); });
    } else {
      pollers_.emplace_back([this, i] { PollLoop(i); });
    }
  }
  if (options_.delivery == Delivery::kStream) {
    stream_reader_ = std::thread([this] { StreamLoop(); });
  }
  if (options_.heartbeat_interval > absl::ZeroDuration()) {
    heartbeater_ = std::thread([this] { HeartbeatLoop(); });
  }
  log::Info(kComponent, "started",
            {{"activity", options_.activity_arn},
             {"worker_name", options_.worker_name},
             {"concurrency", options_.concurrency}});
  return absl::OkStatus();
}

void Worker::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kNew) {
      state_ = State::kStopped;
      return;
    }
    if (state_ != State::kRunning) {
      // Another caller is stopping (or has stopped) the Worker.
      mu_.Await(absl::Condition(
          +[](State* s) { return *s == State::kStopped; }, &state_));
      return;
    }
    state_ = State::kStopping;
    for (grpc::ClientContext* poll : polls_) poll->TryCancel();
    if (stream_context_ != nullptr) stream_context_->TryCancel();
    log::Info(kComponent, "stopping",
              {{"activity", options_.activity_arn},
               {"in_flight", stats_.tasks_in_flight.load()}});
  }
  // Outside the lock: pollers need it to finish their tasks.
  if (stream_reader_.joinable()) stream_reader_.join();
  for (std::thread& poller : pollers_) poller.join();
  {
    absl::MutexLock lock(&mu_);
    heartbeat_stop_ = true;
    heartbeat_cv_.SignalAll();
  }
  if (heartbeater_.joinable()) heartbeater_.join();
  absl::MutexLock lock(&mu_);
  state_ = State::kStopped;
  log::Info(kComponent, "stopped", {{"activity", options_.activity_arn}});
}

void Worker::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](State* s) { return *s == State::kStopped || *s == State::kNew; },
      &state_));
}

WorkerStats Worker::stats() const {
  WorkerStats s;
  s.tasks_received = stats_.tasks_received.load();
  s.tasks_succeeded = stats_.tasks_succeeded.load();
  s.tasks_failed = stats_.tasks_failed.load();
  s.tasks_abandoned = stats_.tasks_abandoned.load();
  s.poll_errors = stats_.poll_errors.load();
  s.report_errors = stats_.report_errors.load();
  s.heartbeats_sent = stats_.heartbeats_sent.load();
  s.heartbeat_errors = stats_.heartbeat_errors.load();
  s.tasks_in_flight = stats_.tasks_in_flight.load();
  return s;
}

absl::Duration Worker::BackoffDelay(int failures) {
  absl::Duration delay = options_.initial_backoff;
  for (int i = 1; i < failures && delay < options_.max_backoff; ++i) {
    delay *= 2;
  }
  delay = std::min(delay, options_.max_backoff);
  // "Equal jitter": somewhere in [delay/2, delay], so pollers that failed
  // together do not retry in lockstep, yet never retry at once.
  thread_local absl::BitGen bitgen;
  return delay / 2 + delay / 2 * absl::Uniform(bitgen, 0.0, 1.0);
}

void Worker::Backoff(int failures, bool interruptible) {
  absl::Duration delay = BackoffDelay(failures);
  if (!interruptible) {
    absl::SleepFor(delay);
    return;
  }
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(this, &Worker::StoppingLocked), delay);
}

void Worker::PollLoop(int index) {
  stepflow::v1::GetActivityTaskRequest request;
  request.set_activity_arn(options_.activity_arn);
  request.set_worker_name(options_.worker_name);
  // An empty answer sooner than this means the service is not holding polls
  // (e.g. it is shutting down): back off rather than spin.
  const absl::Duration quick_empty =
      std::min(absl::Seconds(1), options_.poll_timeout / 2);
  int failures = 0;
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(
        absl::Now() + options_.poll_timeout + kPollDeadlineSlack));
    {
      absl::MutexLock lock(&mu_);
      if (StoppingLocked()) break;
      polls_.insert(&context);
    }
    stepflow::v1::GetActivityTaskResponse response;
    const absl::Time started = absl::Now();
    grpc::Status status = stub_->GetActivityTask(&context, request, &response);
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      polls_.erase(&context);
      stopping = StoppingLocked();
    }
    if (!status.ok()) {
      if (stopping) break;  // Most likely cancelled by Stop().
      ++failures;
      stats_.poll_errors.fetch_add(1);
      if (metrics_ != nullptr) metrics_->poll_errors->Increment();
      absl::Status error = rpc::FromGrpcStatus(status);
      // A wrong ARN or a missing activity will not fix itself; say so louder.
      log::Level level = IsTransient(status.error_code()) ? log::Level::kWarn
                                                          : log::Level::kError;
      log::Write(level, kComponent, "GetActivityTask failed; backing off",
                 {{"activity", options_.activity_arn},
                  {"poller", index},
                  {"consecutive_failures", failures},
                  {"error", error}});
      Backoff(failures, /*interruptible=*/true);
      continue;
    }
    if (response.task_token().empty()) {
      if (absl::Now() - started < quick_empty) {
        ++failures;
        log::Debug(kComponent, "empty poll returned early; backing off",
                   {{"poller", index}, {"consecutive_failures", failures}});
        Backoff(failures, /*interruptible=*/true);
      } else {
        failures = 0;
      }
      continue;
    }
    failures = 0;
    RunTask(response.task_token(), response.input());
  }
}

void Worker::StreamLoop() {
  int failures = 0;
  while (true) {
    grpc::ClientContext context;
    int credits;
    {
      absl::MutexLock lock(&mu_);
      if (StoppingLocked()) break;
      stream_context_ = &context;
      credits = options_.concurrency - busy_ - static_cast<int>(ready_.size());
    }
    auto stream = stub_->StreamActivityTasks(&context);
    stepflow::v1::StreamActivityTasksRequest open;
    open.set_activity_arn(options_.activity_arn);
    open.set_worker_name(options_.worker_name);
    open.set_credits(std::max(0, credits));
    bool open_sent;
    {
      absl::MutexLock lock(&write_mu_);
      open_sent = stream->Write(open);
      if (open_sent) stream_ = stream.get();
    }
    stepflow::v1::StreamActivityTasksResponse message;
    while (open_sent && stream->Read(&message)) {
      failures = 0;
      absl::MutexLock lock(&mu_);
      for (stepflow::v1::DeliveredActivityTask& task : *message.mutable_tasks()) {
        ready_.push_back(std::move(task));
      }
      for (const stepflow::v1::TaskReportAnswer& answer : message.answers()) {
        auto it = pending_reports_.find(answer.report_id());
        if (it == pending_reports_.end()) continue;  // its reporter gave up
        it->second->status =
            grpc::Status(static_cast<grpc::StatusCode>(answer.code()), answer.message());
        it->second->done = true;
      }
    }
    {
      absl::MutexLock lock(&write_mu_);
      stream_ = nullptr;
    }
    {
      // Reports still unanswered will not be: their reporters go unary.
      absl::MutexLock lock(&mu_);
      for (auto& [id, pending] : pending_reports_) {
        pending->lost = true;
        pending->done = true;
      }
    }
    grpc::Status status = stream->Finish();
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      stream_context_ = nullptr;
      stopping = StoppingLocked();
    }
    if (stopping) break;
    if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      log::Warn(kComponent, "the service cannot stream tasks; long-polling instead",
                {{"activity", options_.activity_arn}});
      absl::MutexLock lock(&mu_);
      fall_back_to_poll_ = true;
      break;
    }
    ++failures;
    stats_.poll_errors.fetch_add(1);
    if (metrics_ != nullptr) metrics_->poll_errors->Increment();
    log::Write(IsTransient(status.error_code()) || status.ok() ? log::Level::kWarn
                                                               : log::Level::kError,
               kComponent, "task stream ended; reconnecting after a backoff",
               {{"activity", options_.activity_arn},
                {"consecutive_failures", failures},
                {"error", rpc::FromGrpcStatus(status)}});
    Backoff(failures, /*interruptible=*/true);
  }
  absl::MutexLock lock(&mu_);
  stream_done_ = true;
}

void Worker::HandlerLoop(int index) {
  while (true) {
    stepflow::v1::DeliveredActivityTask task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Worker* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
            return !w->ready_.empty() || w->stream_done_;
          },
          this));
      if (ready_.empty()) {
        // The stream is over: on a stop, tasks already received have been
        // run; on a service without streaming, this thread polls instead.
        if (!fall_back_to_poll_) return;
        break;
      }
      task = std::move(ready_.front());
      ready_.pop_front();
      ++busy_;
    }
    const bool credit_sent = RunTask(task.task_token(), task.input());
    {
      absl::MutexLock lock(&mu_);
      --busy_;
    }
    if (!credit_sent) GrantCredit();
  }
  PollLoop(index);
}

void Worker::GrantCredit() {
  absl::MutexLock lock(&write_mu_);
  if (stream_ == nullptr) return;  // a new stream will count free handlers
  stepflow::v1::StreamActivityTasksRequest more;
  more.set_credits(1);
  stream_->Write(more);
}

bool Worker::RunTask(const std::string& task_token, const std::string& input) {
  stats_.tasks_received.fetch_add(1);
  stats_.tasks_in_flight.fetch_add(1);
  if (metrics_ != nullptr) metrics_->in_flight->Increment();
  Task task;
  task.task_token = task_token;
  task.input = input;
  const bool heartbeats = options_.heartbeat_interval > absl::ZeroDuration();
  uint64_t id = 0;
  if (heartbeats) {
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    task.cancelled = cancelled;
    absl::MutexLock lock(&mu_);
    id = next_task_id_++;
    in_flight_[id] =
        InFlight{task_token, absl::Now() + options_.heartbeat_interval,
                 std::move(cancelled)};
    heartbeat_cv_.Signal();
  }
  log::Debug(kComponent, "task received",
             {{"activity", options_.activity_arn},
              {"input_bytes", static_cast<uint64_t>(input.size())}});

  const absl::Time started = absl::Now();
  TaskResult result;
  try {
    result = handler_(task);
  } catch (const std::exception& e) {
    result = TaskResult::Failure("HandlerException", e.what());
  } catch (...) {
    result = TaskResult::Failure("HandlerException", "unknown exception");
  }
  const absl::Duration elapsed = absl::Now() - started;

  if (heartbeats) {
    absl::MutexLock lock(&mu_);
    in_flight_.erase(id);
  }
  stats_.tasks_in_flight.fetch_sub(1);
  if (result.success) {
    stats_.tasks_succeeded.fetch_add(1);
  } else if (!result.deferred) {
    stats_.tasks_failed.fetch_add(1);
  }
  if (metrics_ != nullptr) {
    metrics_->in_flight->Decrement();
    metrics_->task_seconds->Observe(absl::ToDoubleSeconds(elapsed));
    if (!result.deferred) (result.success ? metrics_->succeeded : metrics_->failed)->Increment();
  }
  if (result.deferred) {
    log::Debug(kComponent, "task handed on; its token's holder will answer",
               {{"activity", options_.activity_arn}});
    return false;
  }
  if (task.Cancelled()) {
    stats_.tasks_abandoned.fetch_add(1);
    log::Info(
        kComponent, "task no longer exists; result dropped",
        {{"activity", options_.activity_arn}, {"success", result.success}});
    return false;
  }
  bool credit_sent = false;
  absl::Status reported = Report(task_token, result, &credit_sent);
  if (options_.on_reported) options_.on_reported(task, reported);
  return credit_sent;
}

std::optional<grpc::Status> Worker::ReportOnStream(stepflow::v1::TaskReport report,
                                                   bool grant_credit) {
  PendingReport pending;
  {
    absl::MutexLock lock(&mu_);
    report.set_report_id(next_report_id_++);
    pending_reports_[report.report_id()] = &pending;
  }
  const uint64_t id = report.report_id();
  bool written = false;
  {
    absl::MutexLock lock(&write_mu_);
    if (stream_ != nullptr) {
      stepflow::v1::StreamActivityTasksRequest request;
      *request.add_reports() = std::move(report);
      if (grant_credit) request.set_credits(1);
      written = stream_->Write(request);
    }
  }
  absl::MutexLock lock(&mu_);
  if (written) {
    mu_.AwaitWithTimeout(absl::Condition(&pending.done), kReportTimeout);
  }
  pending_reports_.erase(id);
  if (!written || pending.lost) return std::nullopt;
  if (!pending.done) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        "no answer to the report on the task stream in time");
  }
  return pending.status;
}

absl::Status Worker::Report(const std::string& task_token, const TaskResult& result,
                            bool* credit_sent) {
  bool success = result.success;
  std::string error = result.error;
  std::string cause = result.cause;
  TruncateUtf8(&error, kMaxErrorChars);
  TruncateUtf8(&cause, kMaxCauseChars);
  for (int attempt = 1; attempt <= kReportAttempts; ++attempt) {
    stepflow::v1::TaskReport report;
    if (success) {
      report.mutable_success()->set_task_token(task_token);
      report.mutable_success()->set_output(result.output);
    } else {
      report.mutable_failure()->set_task_token(task_token);
      report.mutable_failure()->set_error(error);
      report.mutable_failure()->set_cause(cause);
    }
    // Over the task stream when there is one, with the credit the
    // finished task frees; else (or when the stream went away before
    // answering) as a unary call. A report whose stream broke after it
    // reached the service is made again, which the service then refuses
    // as a repeat.
    std::optional<grpc::Status> streamed;
    if (options_.delivery == Delivery::kStream) {
      streamed = ReportOnStream(report, /*grant_credit=*/!*credit_sent);
      if (streamed.has_value()) *credit_sent = true;
    }
    grpc::Status status;
    if (streamed.has_value()) {
      status = *streamed;
    } else {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + kReportTimeout));
      if (success) {
        stepflow::v1::SendTaskSuccessResponse response;
        status = stub_->SendTaskSuccess(&context, report.success(), &response);
      } else {
        stepflow::v1::SendTaskFailureResponse response;
        status = stub_->SendTaskFailure(&context, report.failure(), &response);
      }
    }
    if (status.ok()) {
      log::Debug(kComponent, "result reported",
                 {{"activity", options_.activity_arn}, {"success", success}});
      return absl::OkStatus();
    }
    stats_.report_errors.fetch_add(1);
    if (metrics_ != nullptr) metrics_->report_errors->Increment();
    absl::Status reported = rpc::FromGrpcStatus(status);
    if (success && status.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
        absl::StartsWith(status.error_message(), "InvalidOutput")) {
      // Fail the task now rather than leave it to time out.
      log::Warn(kComponent, "output rejected; reporting a failure instead",
                {{"activity", options_.activity_arn}, {"error", reported}});
      success = false;
      error = "InvalidOutput";
      cause = status.error_message();
      TruncateUtf8(&cause, kMaxCauseChars);
      continue;
    }
    if (!IsTransient(status.error_code())) {
      log::Error(kComponent, "result rejected",
                 {{"activity", options_.activity_arn},
                  {"success", success},
                  {"error", reported}});
      return reported;
    }
    if (attempt == kReportAttempts) {
      log::Error(kComponent, "could not report result; giving up",
                 {{"activity", options_.activity_arn},
                  {"attempts", attempt},
                  {"error", reported}});
      return reported;
    }
    log::Warn(kComponent, "reporting result failed; retrying",
              {{"activity", options_.activity_arn},
               {"attempt", attempt},
               {"error", reported}});
    // Not cut short by Stop(): reporting results is part of finishing.
    Backoff(attempt, /*interruptible=*/false);
  }
  return absl::InternalError("no report attempt was made");
}

void Worker::HeartbeatLoop() {
  const absl::Duration interval = options_.heartbeat_interval;
  const absl::Duration timeout = std::min(interval, kMaxHeartbeatTimeout);
  struct Due {
    uint64_t id;
    std::string task_token;
  };
  absl::MutexLock lock(&mu_);
  while (!heartbeat_stop_) {
    const absl::Time now = absl::Now();
    absl::Time next = absl::InfiniteFuture();
    std::vector<Due> due;
    for (auto& [id, task] : in_flight_) {
      if (task.next_heartbeat <= now) {
        due.push_back(Due{id, task.task_token});
        task.next_heartbeat = now + interval;
      }
      next = std::min(next, task.next_heartbeat);
    }
    if (due.empty()) {
      heartbeat_cv_.WaitWithDeadline(&mu_, next);
      continue;
    }
    mu_.Unlock();
    std::vector<uint64_t> gone;
    for (const Due& d : due) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
      stepflow::v1::SendTaskHeartbeatRequest request;
      request.set_task_token(d.task_token);
      stepflow::v1::SendTaskHeartbeatResponse response;
      grpc::Status status =
          stub_->SendTaskHeartbeat(&context, request, &response);
      if (status.ok()) {
        stats_.heartbeats_sent.fetch_add(1);
        if (metrics_ != nullptr) metrics_->heartbeats_ok->Increment();
        continue;
      }
      stats_.heartbeat_errors.fetch_add(1);
      if (metrics_ != nullptr) metrics_->heartbeats_error->Increment();
      absl::Status error = rpc::FromGrpcStatus(status);
      if (IsTaskGone(status.error_code())) {
        log::Warn(kComponent, "heartbeat: task no longer exists",
                  {{"activity", options_.activity_arn}, {"error", error}});
        gone.push_back(d.id);
      } else {
        log::Warn(kComponent, "heartbeat failed",
                  {{"activity", options_.activity_arn}, {"error", error}});
      }
    }
    mu_.Lock();
    for (uint64_t id : gone) {
      auto it = in_flight_.find(id);
      if (it == in_flight_.end()) continue;  // The handler already returned.
      it->second.cancelled->store(true);
      it->second.next_heartbeat = absl::InfiniteFuture();
    }
  }
}

}  // namespace stepflow::worker
